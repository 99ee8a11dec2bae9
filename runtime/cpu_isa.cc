// cpuid/XCR0 detection and the SARAI_MAX_ISA cap (runtime/cpu_isa.h).
#include "runtime/cpu_isa.h"

#include <cpuid.h>

#include <cstdlib>
#include <string>

#include "oneapi/dnnl/dnnl.h"

namespace sarai {
namespace {

constexpr const char* kNames[] = {"scalar", "avx2", "avx2_vnni", "avx512_vnni", "amx"};

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

}  // namespace

namespace cpu_detail {

CpuFeatures features_from(const CpuidWords& w) {
  CpuFeatures f;
  const bool osxsave = w.leaf1_ecx & (1u << 27), avx = w.leaf1_ecx & (1u << 28), fma = w.leaf1_ecx & (1u << 12);
  if (!osxsave || !avx || !fma) return f;
  if ((w.xcr0 & 0x6) != 0x6) return f;  // XMM and YMM state
  if (!w.has_leaf7) return f;
  f.avx2 = w.leaf7_ebx & (1u << 5);
  if (!f.avx2) return f;
  f.avx_vnni = w.leaf7_1_eax & (1u << 4);
  const bool zmm_state = (w.xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  // DQ too: the FP32 vector kernels of this level are built for it
  // (kernels/cpu/vec__avx512_vnni.cc). Every CPU with AVX-512 VNNI has it.
  const bool avx512f = w.leaf7_ebx & (1u << 16), avx512dq = w.leaf7_ebx & (1u << 17),
             avx512bw = w.leaf7_ebx & (1u << 30), avx512vl = w.leaf7_ebx & (1u << 31);
  const bool vnni512 = w.leaf7_ecx & (1u << 11);
  f.avx512_vnni = zmm_state && avx512f && avx512dq && avx512bw && avx512vl && vnni512;
  const bool amx_tile = w.leaf7_edx & (1u << 24), amx_int8 = w.leaf7_edx & (1u << 25);
  const bool tile_state = (w.xcr0 & (3ull << 17)) == (3ull << 17);  // XTILECFG, XTILEDATA
  f.amx_int8 = f.avx512_vnni && amx_tile && amx_int8 && tile_state;
  return f;
}

CpuidWords read_cpuid() {
  CpuidWords w;
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return w;
  w.leaf1_ecx = c;
  // xgetbv faults without OSXSAVE; cpuid leaf 7 needs max leaf >= 7.
  if (c & (1u << 27)) w.xcr0 = xgetbv0();
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return w;
  w.has_leaf7 = true;
  w.leaf7_ebx = b;
  w.leaf7_ecx = c;
  w.leaf7_edx = d;
  // Sub-leaf 1 (EAX of sub-leaf 0 is the highest sub-leaf): zeros when absent.
  if (a >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) w.leaf7_1_eax = a;
  return w;
}

}  // namespace cpu_detail

namespace {

using Features = cpu_detail::CpuFeatures;
Features detect() { return cpu_detail::features_from(cpu_detail::read_cpuid()); }

const Features& features() {
  static const Features f = detect();
  return f;
}

dnnl_cpu_isa_t onednn_cap(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return dnnl_cpu_isa_sse41;  // oneDNN's lowest level
    case Isa::kAvx2: return dnnl_cpu_isa_avx2;
    case Isa::kAvx2Vnni: return dnnl_cpu_isa_avx2_vnni;
    case Isa::kAvx512Vnni: return dnnl_cpu_isa_avx512_core_vnni;
    case Isa::kAmx: return dnnl_cpu_isa_avx512_core_amx;
  }
  return dnnl_cpu_isa_all;
}

const char* g_onednn_name = "ALL";
std::string g_cap_warning;  // set by decide(), read after it

Isa decide() {
  Isa cap = Isa::kAmx;
  bool capped = false;
  if (const char* env = std::getenv("SARAI_MAX_ISA"); env != nullptr && *env != '\0') {
    if (auto parsed = parse_isa(env)) {
      cap = *parsed;
      capped = true;
    } else {
      // The runtime never prints: the CLI and the Python module report it.
      g_cap_warning = std::string("SARAI_MAX_ISA=") + env +
                      " is not a level (scalar, avx2, avx2_vnni, avx512_vnni or amx); it is ignored";
    }
  }
  Isa best = Isa::kScalar;
  for (int i = static_cast<int>(cap); i > 0; --i) {
    if (isa_supported(static_cast<Isa>(i))) {
      best = static_cast<Isa>(i);
      break;
    }
  }
  if (capped) {
    // oneDNN reads ONEDNN_MAX_CPU_ISA itself; an explicit SARAI_MAX_ISA wins.
    // The call fails once oneDNN has created a primitive; we run first.
    static constexpr const char* kOnednn[] = {"SSE41", "AVX2", "AVX2_VNNI", "AVX512_CORE_VNNI",
                                              "AVX512_CORE_AMX"};
    if (dnnl_set_max_cpu_isa(onednn_cap(cap)) == dnnl_success)
      g_onednn_name = kOnednn[static_cast<int>(cap)];
  }
  return best;
}

}  // namespace

const char* isa_name(Isa isa) { return kNames[static_cast<int>(isa)]; }

std::optional<Isa> parse_isa(std::string_view name) {
  for (int i = 0; i < 5; ++i)
    if (name == kNames[i]) return static_cast<Isa>(i);
  return std::nullopt;
}

bool isa_supported(Isa isa) {
  const Features& f = features();
  switch (isa) {
    case Isa::kScalar: return true;
    case Isa::kAvx2: return f.avx2;
    case Isa::kAvx2Vnni: return f.avx2 && f.avx_vnni;
    case Isa::kAvx512Vnni: return f.avx512_vnni;
    case Isa::kAmx: return f.amx_int8;
  }
  return false;
}

Isa max_isa() {
  static const Isa isa = decide();
  return isa;
}

bool isa_allowed(Isa isa) {
  return isa_supported(isa) && static_cast<int>(isa) <= static_cast<int>(max_isa());
}

const char* isa_cap_warning() {
  max_isa();
  return g_cap_warning.empty() ? nullptr : g_cap_warning.c_str();
}

const char* onednn_isa_name() {
  max_isa();
  return g_onednn_name;
}

}  // namespace sarai
