// transpose_x16's 8x8 block on xmm registers (kTB16, transpose_block_x16;
// see vec_body.h), for the levels avx2 and avx512_vnni: included by
// vec__avx2.cc and vec__avx512_vnni.cc inside their own namespace, before
// vec_body.h, so every function carries that level's SARAI_VEC_TARGET (the
// instructions themselves are SSE2's, VEX-encoded there). Not a normal
// header: no include guard, no includes, static functions only.
//
// Eight source rows of 8 words, three rounds of interleaving: 16-bit pairs
// of rows (r, r + 1), then 32-bit pairs of those (rows r .. r + 3), then
// 64-bit halves (rows 0 .. 7): column c of the source ends up as one
// register, output row c. 24 unpacks per 64 words, all bit copies.
constexpr int kTB16 = 8;
SARAI_VEC_TARGET static inline void transpose_block_x16(const uint16_t* s, int64_t lds, uint16_t* d, int64_t ldd) {
  __m128i r[8], a[8], b[8];
  for (int q = 0; q < 8; ++q) r[q] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + q * lds));
  for (int q = 0; q < 8; q += 2) {  // a[q]: columns 0-3 of rows q, q + 1 interleaved; a[q + 1]: 4-7
    a[q] = _mm_unpacklo_epi16(r[q], r[q + 1]);
    a[q + 1] = _mm_unpackhi_epi16(r[q], r[q + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // rows 4h .. 4h + 3: b[4h + p] holds columns 2p, 2p + 1
    const __m128i* x = a + 4 * h;
    b[4 * h + 0] = _mm_unpacklo_epi32(x[0], x[2]);
    b[4 * h + 1] = _mm_unpackhi_epi32(x[0], x[2]);
    b[4 * h + 2] = _mm_unpacklo_epi32(x[1], x[3]);
    b[4 * h + 3] = _mm_unpackhi_epi32(x[1], x[3]);
  }
  for (int p = 0; p < 4; ++p) {  // columns 2p, 2p + 1: rows 0-3 from b[p], rows 4-7 from b[4 + p]
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + (2 * p) * ldd), _mm_unpacklo_epi64(b[p], b[4 + p]));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + (2 * p + 1) * ldd), _mm_unpackhi_epi64(b[p], b[4 + p]));
  }
}
