// vec_kernels(): picks the VecKernels table once, from cpuid and XCR0 (the
// OS must save the YMM/ZMM state, not just the CPU have the instructions),
// capped by the environment variable SARAI_MAX_CPU_ISA (sse2, avx2, avx512).
#include <cpuid.h>

#include <cstdlib>
#include <cstring>

#include "kernels/vec_kernels.h"

namespace sarai::kernels {
namespace {

enum class Isa { kSse2 = 0, kAvx2 = 1, kAvx512 = 2 };

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

Isa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::kSse2;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx || !fma) return Isa::kSse2;
  const uint64_t xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return Isa::kSse2;  // XMM and YMM state
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::kSse2;
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17);
  if (!avx2) return Isa::kSse2;
  if (avx512f && avx512dq && (xcr0 & 0xe6) == 0xe6) return Isa::kAvx512;  // + opmask, ZMM state
  return Isa::kAvx2;
}

Isa cap(Isa isa) {
  const char* env = std::getenv("SARAI_MAX_CPU_ISA");
  if (env == nullptr || *env == '\0') return isa;
  Isa max = Isa::kAvx512;
  if (std::strcmp(env, "sse2") == 0) max = Isa::kSse2;
  else if (std::strcmp(env, "avx2") == 0) max = Isa::kAvx2;
  return static_cast<int>(isa) < static_cast<int>(max) ? isa : max;
}

const VecKernels& choose() {
  switch (cap(detect())) {
    case Isa::kAvx512: return vec_kernels_avx512();
    case Isa::kAvx2: return vec_kernels_avx2();
    default: return vec_kernels_sse2();
  }
}

}  // namespace

const VecKernels& vec_kernels() {
  static const VecKernels& table = choose();
  return table;
}

}  // namespace sarai::kernels
