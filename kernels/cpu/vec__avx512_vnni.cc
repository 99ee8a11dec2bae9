// VecKernels for level avx512_vnni: AVX-512 F/DQ (16 floats per vector),
// which that level guarantees; see vec_kernels.h. Only
// the functions with the target attribute below use AVX-512, and they are only
// reached through the platform table (kernels/cpu/platform.h) after its cpuid and XCR0 checks.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_kernels.h"

namespace sarai::kernels {
namespace {

#define SARAI_VEC_TARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))

constexpr int kW = 16;
constexpr const char* kIsaName = "avx512_vnni";
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
SARAI_VEC_TARGET static inline vf fmadd(vf a, vf b, vf c) {
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}
// vpermps (the masked form: GCC 12's _mm512_permutexvar_ps trips
// -Wmaybe-uninitialized, as its cvtepi32_epi8 does below).
#define SARAI_VEC_LOOKUP8 1
SARAI_VEC_TARGET static inline vf lookup8(vf t, vi idx) {
  return (vf)_mm512_mask_permutexvar_ps((__m512)t, 0xffff, (__m512i)idx, (__m512)t);
}
// Lanes in [0, 255]: vpmovdb (AVX-512F) truncates each dword to its byte.
// (The store form: GCC 12's _mm512_cvtepi32_epi8 trips -Wmaybe-uninitialized.)
SARAI_VEC_TARGET static inline void pack_u8(uint8_t* p, vi a, vi b, vi c, vi d) {
  _mm512_mask_cvtepi32_storeu_epi8(p, 0xffff, (__m512i)a);
  _mm512_mask_cvtepi32_storeu_epi8(p + 16, 0xffff, (__m512i)b);
  _mm512_mask_cvtepi32_storeu_epi8(p + 32, 0xffff, (__m512i)c);
  _mm512_mask_cvtepi32_storeu_epi8(p + 48, 0xffff, (__m512i)d);
}

// transpose_x32's 16x16 block: vec__avx2.cc's 8x8 scheme a level wider.
// For each column quarter q, v[q][r] holds source rows r, r + 4, r + 8,
// r + 12 (columns 4q .. 4q + 3) in its four 128-bit lanes (a broadcast load and
// three vinsertf32x4 from memory); a 4x4 transpose within each lane
// (unpack, then shufps) makes v[q][c] output row 4q + c, lane L its
// columns 4L .. 4L + 3. 48 inserts + 32 in-lane shuffles per 256 words.
// (The unpacks' and the broadcast's masked forms: GCC 12's unmasked ones
// trip -Wmaybe-uninitialized, as lookup8's vpermps does.)
SARAI_VEC_TARGET static inline void transpose4_lanes(__m512 v[4]) {
  const __m512 ab0 = _mm512_mask_unpacklo_ps(v[0], 0xffff, v[0], v[1]);
  const __m512 ab1 = _mm512_mask_unpackhi_ps(v[0], 0xffff, v[0], v[1]);
  const __m512 cd0 = _mm512_mask_unpacklo_ps(v[2], 0xffff, v[2], v[3]);
  const __m512 cd1 = _mm512_mask_unpackhi_ps(v[2], 0xffff, v[2], v[3]);
  v[0] = _mm512_shuffle_ps(ab0, cd0, 0x44);
  v[1] = _mm512_shuffle_ps(ab0, cd0, 0xee);
  v[2] = _mm512_shuffle_ps(ab1, cd1, 0x44);
  v[3] = _mm512_shuffle_ps(ab1, cd1, 0xee);
}
constexpr int kTB = 16;
SARAI_VEC_TARGET static inline void transpose_block(const uint32_t* s, int64_t lds, uint32_t* d, int64_t ldd) {
  for (int q = 0; q < 4; ++q) {
    __m512 v[4];
    for (int r = 0; r < 4; ++r) {
      const float* p = reinterpret_cast<const float*>(s + r * lds + 4 * q);
      __m512 x = _mm512_maskz_broadcast_f32x4(0xffff, _mm_loadu_ps(p));  // a load; lanes 1-3 replaced
      x = _mm512_insertf32x4(x, _mm_loadu_ps(p + 4 * lds), 1);
      x = _mm512_insertf32x4(x, _mm_loadu_ps(p + 8 * lds), 2);
      v[r] = _mm512_insertf32x4(x, _mm_loadu_ps(p + 12 * lds), 3);
    }
    transpose4_lanes(v);
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(reinterpret_cast<float*>(d + (4 * q + c) * ldd), v[c]);
  }
}

#include "kernels/cpu/vec_body.h"

#undef SARAI_VEC_TARGET
#undef SARAI_VEC_LOOKUP8

}  // namespace

const VecKernels& vec_kernels__avx512_vnni() { return kTable; }

}  // namespace sarai::kernels
