// The ISA detection's pure part (runtime/cpu_isa.h, cpu_detail::features_from)
// on the cpuid / XCR0 words of the CPU kinds sarai-rt meets, so a level this
// machine lacks (AVX-VNNI on Alder Lake, AMX on Sapphire Rapids) is still
// recognised from its bits, and an OS that does not save a register state
// turns its level off. Only the bits the detection reads are set.
#include <gtest/gtest.h>

#include "runtime/cpu_isa.h"

namespace sarai {
namespace {

using cpu_detail::CpuFeatures;
using cpu_detail::CpuidWords;
using cpu_detail::features_from;

constexpr uint32_t bit(int i) { return uint32_t{1} << i; }

constexpr uint32_t kLeaf1 = bit(27) | bit(28) | bit(12);  // OSXSAVE, AVX, FMA
constexpr uint32_t kAvx2 = bit(5);
constexpr uint32_t kAvx512 = bit(16) | bit(17) | bit(30) | bit(31);  // F, DQ, BW, VL
constexpr uint32_t kVnni512 = bit(11);                               // leaf 7 ecx
constexpr uint32_t kAmx = bit(24) | bit(25);                         // leaf 7 edx: AMX-TILE, AMX-INT8
constexpr uint32_t kAvxVnni = bit(4);                                // leaf 7.1 eax
constexpr uint64_t kYmmState = 0x7, kZmmState = 0xe7, kTileState = uint64_t{3} << 17;

CpuidWords words(uint32_t ebx, uint32_t ecx, uint32_t edx, uint32_t eax71, uint64_t xcr0) {
  CpuidWords w;
  w.leaf1_ecx = kLeaf1;
  w.has_leaf7 = true;
  w.leaf7_ebx = ebx;
  w.leaf7_ecx = ecx;
  w.leaf7_edx = edx;
  w.leaf7_1_eax = eax71;
  w.xcr0 = xcr0;
  return w;
}

std::string str(const CpuFeatures& f) {
  return std::string(f.avx2 ? "avx2 " : "") + (f.avx_vnni ? "avx_vnni " : "") + (f.avx512_vnni ? "avx512_vnni " : "") +
         (f.amx_int8 ? "amx" : "");
}

void expect(const CpuidWords& w, bool avx2, bool avx_vnni, bool avx512_vnni, bool amx, const char* cpu) {
  const CpuFeatures f = features_from(w);
  EXPECT_EQ(f.avx2, avx2) << cpu << ": " << str(f);
  EXPECT_EQ(f.avx_vnni, avx_vnni) << cpu << ": " << str(f);
  EXPECT_EQ(f.avx512_vnni, avx512_vnni) << cpu << ": " << str(f);
  EXPECT_EQ(f.amx_int8, amx) << cpu << ": " << str(f);
}

TEST(CpuIsa, EachCpuKindGetsItsLevels) {
  expect(words(kAvx2, 0, 0, 0, kYmmState), true, false, false, false, "Haswell .. Comet Lake, Zen 1-3");
  expect(words(kAvx2, 0, 0, kAvxVnni, kYmmState), true, true, false, false, "Alder Lake (AVX-VNNI, no AVX-512)");
  expect(words(kAvx2 | kAvx512, kVnni512, 0, 0, kZmmState), true, false, true, false, "Ice / Tiger Lake, Zen 4");
  expect(words(kAvx2 | kAvx512, kVnni512, 0, kAvxVnni, kZmmState), true, true, true, false, "Zen 5");
  expect(words(kAvx2 | kAvx512, kVnni512, kAmx, kAvxVnni, kZmmState | kTileState), true, true, true, true,
         "Sapphire Rapids");
}

TEST(CpuIsa, StateTheOsDoesNotSaveTurnsALevelOff) {
  // AVX-512 on the CPU, but the OS saves only up to YMM.
  expect(words(kAvx2 | kAvx512, kVnni512, 0, kAvxVnni, kYmmState), true, true, false, false, "no ZMM state");
  // AMX on the CPU, tile state not enabled (a kernel without AMX support).
  expect(words(kAvx2 | kAvx512, kVnni512, kAmx, 0, kZmmState), true, false, true, false, "no tile state");
  // No YMM state at all: nothing above scalar, whatever the CPU has.
  expect(words(kAvx2 | kAvx512, kVnni512, kAmx, kAvxVnni, 0x3), false, false, false, false, "no YMM state");
  CpuidWords no_osxsave = words(kAvx2, 0, 0, kAvxVnni, kYmmState);
  no_osxsave.leaf1_ecx &= ~bit(27);
  expect(no_osxsave, false, false, false, false, "no OSXSAVE");
  CpuidWords no_leaf7 = words(kAvx2, 0, 0, 0, kYmmState);
  no_leaf7.has_leaf7 = false;
  expect(no_leaf7, false, false, false, false, "max leaf < 7");
}

TEST(CpuIsa, LevelsNeedEveryPieceTheirKernelsUse) {
  // AVX-512 VNNI without DQ (the FP32 vector kernels of that level use it), or without VL.
  expect(words(kAvx2 | (kAvx512 & ~bit(17)), kVnni512, 0, 0, kZmmState), true, false, false, false, "no AVX-512 DQ");
  expect(words(kAvx2 | (kAvx512 & ~bit(31)), kVnni512, 0, 0, kZmmState), true, false, false, false, "no AVX-512 VL");
  // AVX-512 without VNNI (Skylake-X).
  expect(words(kAvx2 | kAvx512, 0, 0, 0, kZmmState), true, false, false, false, "Skylake-X");
  // The AVX-VNNI bit without AVX2 is no level: avx2_vnni needs both.
  expect(words(0, 0, 0, kAvxVnni, kYmmState), false, false, false, false, "AVX-VNNI bit alone");
  // No FMA: the AVX2 kernels use it.
  CpuidWords no_fma = words(kAvx2, 0, 0, 0, kYmmState);
  no_fma.leaf1_ecx &= ~bit(12);
  expect(no_fma, false, false, false, false, "no FMA");
}

// This machine: isa_supported agrees with its own words.
TEST(CpuIsa, ThisCpuAgreesWithItsWords) {
  const CpuFeatures f = features_from(cpu_detail::read_cpuid());
  EXPECT_EQ(isa_supported(Isa::kAvx2), f.avx2);
  EXPECT_EQ(isa_supported(Isa::kAvx2Vnni), f.avx2 && f.avx_vnni);
  EXPECT_EQ(isa_supported(Isa::kAvx512Vnni), f.avx512_vnni);
  EXPECT_EQ(isa_supported(Isa::kAmx), f.amx_int8);
  RecordProperty("features", str(f));
}

}  // namespace
}  // namespace sarai
