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

// transpose_x32's 8x8 block. Source rows r and r + 4 go into one ymm's
// halves (vinsertf128 from memory, no lane-crossing shuffle), t[r] for the
// low 4 columns, u[r] for the high 4; a 4x4 transpose within each 128-bit
// lane (unpack, then shufps) turns t[0..3] into output rows 0..3 (lane 0
// from source rows 0..3, lane 1 from rows 4..7) and u[0..3] into rows 4..7.
// 8 inserts + 16 in-lane shuffles per 64 words.
SARAI_VEC_TARGET static inline void transpose4_lanes(__m256 v[4]) {
  const __m256 ab0 = _mm256_unpacklo_ps(v[0], v[1]), ab1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 cd0 = _mm256_unpacklo_ps(v[2], v[3]), cd1 = _mm256_unpackhi_ps(v[2], v[3]);
  v[0] = _mm256_shuffle_ps(ab0, cd0, 0x44);
  v[1] = _mm256_shuffle_ps(ab0, cd0, 0xee);
  v[2] = _mm256_shuffle_ps(ab1, cd1, 0x44);
  v[3] = _mm256_shuffle_ps(ab1, cd1, 0xee);
}
constexpr int kTB = 8;
SARAI_VEC_TARGET static inline void transpose_block(const uint32_t* s, int64_t lds, uint32_t* d, int64_t ldd) {
  __m256 t[4], u[4];
  for (int r = 0; r < 4; ++r) {
    const float* lo = reinterpret_cast<const float*>(s + r * lds);
    const float* hi = reinterpret_cast<const float*>(s + (r + 4) * lds);
    t[r] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo)), _mm_loadu_ps(hi), 1);
    u[r] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(lo + 4)), _mm_loadu_ps(hi + 4), 1);
  }
  transpose4_lanes(t);
  transpose4_lanes(u);
  for (int r = 0; r < 4; ++r) {
    _mm256_storeu_ps(reinterpret_cast<float*>(d + r * ldd), t[r]);
    _mm256_storeu_ps(reinterpret_cast<float*>(d + (r + 4) * ldd), u[r]);
  }
}

#include "kernels/cpu/vec_body.h"

#undef SARAI_VEC_TARGET
#undef SARAI_VEC_LOOKUP8

}  // namespace

const VecKernels& vec_kernels__avx2() { return kTable; }

}  // namespace sarai::kernels
