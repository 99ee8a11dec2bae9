// Dispatch of the QMatMul int32 core (kernels/qgemm.h): cpuid + XCR0 +
// SARAI_MAX_CPU_ISA, decided once into a function pointer.
#include "kernels/qgemm.h"

#include <cpuid.h>

#include <cstdlib>
#include <cstring>

#include "kernels/qlinear.h"

namespace sarai::kernels {
namespace {

using QgemmFn = void (*)(const uint8_t*, int64_t, int64_t, int64_t, const int8_t*, int64_t,
                         int32_t*, int64_t);

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}

bool detect_avx512vnni() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return false;
  if (!(c & (1u << 27))) return false;  // OSXSAVE: xgetbv is usable
  if ((xgetbv0() & 0xe6) != 0xe6) return false;  // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return false;
  const bool avx512f = b & (1u << 16), avx512bw = b & (1u << 30), vnni = c & (1u << 11);
  return avx512f && avx512bw && vnni;
}

// SARAI_MAX_CPU_ISA=sse2|avx2 caps below avx512 (anything else, or unset,
// allows avx512), as in vec_dispatch.cc.
bool capped_below_avx512() {
  const char* env = std::getenv("SARAI_MAX_CPU_ISA");
  if (env == nullptr) return false;
  return std::strcmp(env, "sse2") == 0 || std::strcmp(env, "avx2") == 0;
}

// qref's signature is (M, K, N, a, w, acc) with dense a and acc.
void ref_core(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w, int64_t n,
              int32_t* c, int64_t ldc) {
  if (lda == k && ldc == n) {
    qref::gemm_u8s8_n16k4(m, k, n, a, w, c);
    return;
  }
  for (int64_t i = 0; i < m; ++i) qref::gemm_u8s8_n16k4(1, k, n, a + i * lda, w, c + i * ldc);
}

struct Choice {
  QgemmFn fn;
  const char* isa;
};

Choice choose() {
  if (cpu_has_avx512vnni() && !capped_below_avx512())
    return {qgemm_u8s8_n16k4_avx512vnni, "avx512vnni"};
  return {ref_core, "ref"};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

}  // namespace

bool cpu_has_avx512vnni() {
  static const bool has = detect_avx512vnni();
  return has;
}

const char* qgemm_u8s8_n16k4_isa() { return chosen().isa; }

void qgemm_u8s8_n16k4(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                      int64_t n, int32_t* c, int64_t ldc) {
  chosen().fn(a, m, k, lda, w_packed, n, c, ldc);
}

}  // namespace sarai::kernels
