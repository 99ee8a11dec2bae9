// transpose_x32's 8x8 block on ymm registers (kTB, transpose_block; see
// vec_body.h), for the levels avx2 and avx512_vnni: included by
// vec__avx2.cc and vec__avx512_vnni.cc inside their own namespace, before
// vec_body.h, so every function carries that level's SARAI_VEC_TARGET
// (which includes AVX2). Not a normal header: no include guard, no
// includes, static functions only.
//
// Source rows r and r + 4 go into one ymm's halves (vinsertf128 from
// memory, no lane-crossing shuffle), t[r] for the low 4 columns, u[r] for
// the high 4; a 4x4 transpose within each 128-bit lane (unpack, then
// shufps) turns t[0..3] into output rows 0..3 (lane 0 from source rows
// 0..3, lane 1 from rows 4..7) and u[0..3] into rows 4..7. 8 inserts + 16
// in-lane shuffles per 64 words, all bit copies.
//
// At avx512_vnni a 16x16 block on zmm (the same scheme a level wider: a
// broadcast load and three vinsertf32x4 per register, 32 in-lane shuffles
// per 256 words) was 8-12 % slower on Zen 4, which splits 512-bit shuffles
// in two (docs/BENCHMARKS.md; the code is in commit afbef50), so that
// level uses this one too.
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

