// Which instruction sets this process may use: read once from cpuid and
// XCR0 (the CPU must have the instructions *and* the OS must save their
// register state), capped by SARAI_MAX_ISA. Every dispatching kernel family
// (the INT8 GEMMs, the FP32 vector kernels) asks max_isa(), and the same cap
// goes to oneDNN (dnnl_set_max_cpu_isa), so one variable moves everything:
//
//   SARAI_MAX_ISA=scalar|avx2|avx2_vnni|avx512_vnni|amx
//
// Levels are ordered; a cap above what the CPU has changes nothing. On a
// CPU with AVX-512 VNNI but no AVX-VNNI (Ice Lake, Tiger Lake), a cap of
// avx2_vnni has no VNNI at 256 bits to give, so it resolves to avx2. An
// unknown value is ignored; isa_cap_warning() says so (the runtime never
// prints: the CLI and the Python module pass it on).
//
// What each level means for our kernels:
//   scalar       portable C++ (the FP32 vector layer still uses SSE2, the
//                x86-64 baseline)
//   avx2         AVX2 + FMA; INT8 via vpmaddubsw/vpmaddwd (exact, see
//                kernels/cpu/qgemm_u8s8_4x16c4__avx2.cc)
//   avx2_vnni    AVX-VNNI (VEX vpdpbusd on ymm): Alder Lake and later, Zen 5
//   avx512_vnni  AVX-512 F/DQ/BW/VL + VNNI: Ice/Tiger Lake, Cascade Lake, Zen 4/5
//   amx          AMX-INT8 tiles: Sapphire Rapids. We have no AMX kernel of our
//                own yet (no AMX machine to test it on); at this level ours
//                run AVX-512 VNNI and oneDNN may use AMX.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace sarai {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx2Vnni = 2, kAvx512Vnni = 3, kAmx = 4 };

// "scalar", "avx2", "avx2_vnni", "avx512_vnni", "amx".
const char* isa_name(Isa isa);
std::optional<Isa> parse_isa(std::string_view name);

// True when the CPU and the OS support every instruction the level's kernels
// use (ignores SARAI_MAX_ISA). kScalar is always supported. Levels are not
// nested on every CPU: AVX-VNNI can be missing where AVX-512 VNNI is present.
bool isa_supported(Isa isa);

// The highest level this process uses: the best supported level not above
// SARAI_MAX_ISA. Decided on first call; the first call also sets oneDNN's
// cap to match (see onednn_isa_name).
Isa max_isa();

// True when kernels of this level may run now: supported and <= max_isa().
bool isa_allowed(Isa isa);

// Why SARAI_MAX_ISA was ignored (an unknown value), or nullptr.
const char* isa_cap_warning();

// The oneDNN cap that goes with max_isa(), as ONEDNN_MAX_CPU_ISA spells it
// ("SSE41", "AVX2", "AVX2_VNNI", "AVX512_CORE_VNNI", "AVX512_CORE_AMX"), or
// "ALL" when no cap was set.
const char* onednn_isa_name();

// The detection's pure part, for tests (tests/cpu_isa_test.cc): the cpuid
// and XCR0 words it reads, and what they make of each level.
namespace cpu_detail {
struct CpuidWords {
  uint32_t leaf1_ecx = 0;                              // OSXSAVE 27, AVX 28, FMA 12
  bool has_leaf7 = false;                              // max leaf >= 7
  uint32_t leaf7_ebx = 0, leaf7_ecx = 0, leaf7_edx = 0;  // sub-leaf 0
  uint32_t leaf7_1_eax = 0;                            // sub-leaf 1: AVX-VNNI 4
  uint64_t xcr0 = 0;                                   // the OS-enabled state (xgetbv 0)
};
struct CpuFeatures {
  bool avx2 = false;         // AVX2 + FMA, YMM state saved
  bool avx_vnni = false;     // VEX vpdpbusd (cpuid 7.1 eax bit 4)
  bool avx512_vnni = false;  // F + DQ + BW + VL + VNNI, opmask/ZMM state saved
  bool amx_int8 = false;     // AMX-TILE + AMX-INT8, tile state enabled in XCR0
};
CpuFeatures features_from(const CpuidWords& w);
CpuidWords read_cpuid();  // this CPU's
}  // namespace cpu_detail

}  // namespace sarai
