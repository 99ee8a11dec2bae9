// VecKernels for levels avx2 and avx2_vnni: AVX2 + FMA (8 floats per
// vector); see vec_kernels.h. Only
// the functions with the target attribute below use AVX2, and they are only
// reached through the platform table (kernels/cpu/platform.h) after its cpuid and XCR0 checks.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_kernels.h"

namespace sarai::kernels {
namespace {

#define SARAI_VEC_TARGET __attribute__((target("avx2,fma")))

constexpr int kW = 8;
constexpr const char* kIsaName = "avx2";
typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
SARAI_VEC_TARGET static inline vf fmadd(vf a, vf b, vf c) {
  return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c);
}
// vpermps.
#define SARAI_VEC_LOOKUP8 1
SARAI_VEC_TARGET static inline vf lookup8(vf t, vi idx) { return (vf)_mm256_permutevar8x32_ps((__m256)t, (__m256i)idx); }
// Lanes in [0, 255]. The packs work per 128-bit half, leaving the 4-byte
// groups as a0-3 b0-3 c0-3 d0-3 a4-7 b4-7 c4-7 d4-7; one dword permute
// puts them in order.
SARAI_VEC_TARGET static inline void pack_u8(uint8_t* p, vi a, vi b, vi c, vi d) {
  const __m256i ab = _mm256_packs_epi32((__m256i)a, (__m256i)b);
  const __m256i cd = _mm256_packs_epi32((__m256i)c, (__m256i)d);
  const __m256i r = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd),
                                                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), r);
}

#include "kernels/cpu/transpose_x16_8x8_sse2.h"
#include "kernels/cpu/transpose_x32_8x8_avx2.h"
#include "kernels/cpu/vec_body.h"

#undef SARAI_VEC_TARGET
#undef SARAI_VEC_LOOKUP8

}  // namespace

const VecKernels& vec_kernels__avx2() { return kTable; }

}  // namespace sarai::kernels
