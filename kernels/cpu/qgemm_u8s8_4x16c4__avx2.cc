// The AVX2 micro-kernel of the INT8 GEMM, 4 rows x 16 channels over k in
// groups of 4 (kernels/cpu/qgemm.h), and the AVX2 epilogue row it shares
// with the AVX-VNNI kernel (qgemm_u8s8_4x16c4__avx2_vnni.cc), reading the
// N16K4 weights in place. Only reached through the platform table after the
// cpuid/XCR0 checks.
//
// A ymm holds half of a 64-byte N16K4 block (panel p, k-group g): channels
// 0..7 of the panel with their 4 consecutive k bytes each, then (next 32
// bytes) channels 8..15. Both tiles are 4 rows × 1 panel: 8 ymm accumulators,
// int32 lane c of accumulator (i, h) summing row i's products for channel
// 8h + c. K tail: the weights are zero-padded to Kp = round_up(K, 4), so the
// last partial group only needs its activation bytes zero-extended (built
// from the valid bytes, never read past a[m][K-1]).
//
// AVX2 without VNNI: vpmaddubsw adds pairs of u8 × s8 products into int16
// WITH saturation (255·127·2 = 64770 > 32767), so it is not used. We use
// vpmaddwd on int16 operands instead: its products and pair sums are int32,
// |a·w + a'·w'| <= 2·255·128 = 65280, so nothing saturates or wraps, for
// w = -128 as well. Read as 16 int16 lanes, a half block has in lane 2c the
// k bytes 0 (low) and 1 (high) of channel c and in lane 2c+1 the k bytes 2
// and 3, so two shifts sign-extend them in place, with no shuffle:
//   even = srai16(slli16(w, 8), 8)     lanes (w[k0][c], w[k2][c])
//   odd  = srai16(w, 8)                lanes (w[k1][c], w[k3][c])
// and with x = a0 | a1 << 8 | a2 << 16 | a3 << 24 broadcast as int32,
//   xe = x & 0x00ff00ff                lanes (a0, a2), zero-extended
//   xo = srli16(x, 8)                  lanes (a1, a3), zero-extended
// int32 lane c of vpmaddwd(xe, even) + vpmaddwd(xo, odd) is
// Σ_{t<4} a_t * w[k_t][c]: already in channel order, no horizontal add.
// Per k-group of the 4 × 16 tile: 16 vpmaddwd + 16 vpaddd, 6 shifts for the
// weights (shared by the rows), 2 ops per row for the activations (shared by
// the 16 channels). Measured at M=1500, K=N=2048, 1 thread on this machine's
// AMD EPYC (Zen 5 class), best of 10 by thread CPU time: this scheme
// ~157 GOPS; activations zero-extended with vpunpcklbw, weights with
// vpmovsxbw, vpmaddwd into 4 accumulators per row and 16 channels, vphaddd
// at the end (2 rows × 16) ~150 GOPS; the split a = 2 (a >> 1) + (a & 1)
// (2 vpmaddubsw + 2 vpmaddwd per 8 channels, 4 rows) ~98 GOPS.
//
// Tile shape: 4 rows × 1 panel = 8 accumulators leaves room for the weights
// (2 ymm for VNNI, 4 for AVX2) and the activations in 16 ymm registers. A
// panel's weights for the driver's 2048-deep k-block (32 KB) stay in L1
// across the row tiles of a row block. For AVX-VNNI, 2 rows × 2 panels
// measured ~5 % slower (~382 vs ~402 GOPS).
//
// Every loop over a tile's rows carries `#pragma GCC unroll` (MR <= 4):
// unrolled that early, GCC 12 turns the accumulator arrays into registers;
// left to itself it kept them on the stack, a load and a store per update
// (measured ~30 % slower for AVX-VNNI). The AVX2 group needs 17 live ymm, so
// a few accumulators still spill; the tile above is the fastest we measured
// regardless.
#include <cassert>

#include "kernels/cpu/qgemm_4x16c4_avx2_common.h"

namespace sarai::kernels {
namespace avx2_4x16c4 {
namespace {

// --- AVX2: vpmaddwd on even/odd k bytes (exactness: see the top comment).
// acc[i][h] += row i's products with one 64-byte block (x: load_group).
template <int MR>
SARAI_AVX2 inline void group_avx2(__m256i (&acc)[MR][2], const int32_t (&x)[MR], const int8_t* block) {
  __m256i even[2], odd[2];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    const __m256i wv = load256(block + h * kHalfBytes);
    even[h] = _mm256_srai_epi16(_mm256_slli_epi16(wv, 8), 8);
    odd[h] = _mm256_srai_epi16(wv, 8);
  }
  const __m256i low_bytes = _mm256_set1_epi16(0x00ff);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m256i xv = _mm256_set1_epi32(x[i]);
    const __m256i xe = _mm256_and_si256(xv, low_bytes), xo = _mm256_srli_epi16(xv, 8);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xe, even[h]));
      acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xo, odd[h]));
    }
  }
}

// c[i][0..15] (+)= Σ over groups [0, groups) (+ one tail group of kt bytes)
// for i < MR; `a` points at a[row0][k0], `w` at the block (panel, group g0).
template <int MR>
SARAI_AVX2 void tile_avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t groups, int64_t kt,
               int32_t* c, int64_t ldc, bool accumulate) {
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  int32_t x[MR];
  // The partial last group first (int32 sums: the order is free), so the
  // main loop has a single body.
  if (kt != 0) {
    load_group<MR>(x, a + groups * int8::kGroupK, lda, kt);
    group_avx2<MR>(acc, x, w + groups * kBlockBytes);
  }
  for (int64_t g = 0; g < groups; ++g) {
    load_group<MR>(x, a + g * int8::kGroupK, lda, int8::kGroupK);
    group_avx2<MR>(acc, x, w + g * kBlockBytes);
  }
  store_tile<MR>(acc, c, ldc, accumulate);
}

SARAI_AVX2 void tile_avx2_rows(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w,
                    int64_t pstride, int64_t panels, int64_t groups, int64_t kt, int32_t* c,
                    int64_t ldc, bool accumulate) {
  assert(panels == 1 && rows >= 1 && rows <= kMR);
  switch (rows) {
    case 1: return tile_avx2<1>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 2: return tile_avx2<2>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 3: return tile_avx2<3>(a, lda, w, groups, kt, c, ldc, accumulate);
    default: return tile_avx2<4>(a, lda, w, groups, kt, c, ldc, accumulate);
  }
}

// --- The epilogue (both ISAs): 8 outputs; kMasked: only the lanes of `mask`
// are read and written. Separate mul and add: the scalar order.
template <bool kMasked>
SARAI_AVX2 inline void epilogue8(const int32_t* acc, const int32_t* comp, const float* cscale,
                      const float* bias, const float* residual, QgemmActivation act, float* y,
                      __m256i mask) {
  const auto load_i = [mask](const int32_t* p) SARAI_AVX2 {
    return kMasked ? _mm256_maskload_epi32(p, mask) : load256(p);
  };
  const auto load_f = [mask](const float* p) SARAI_AVX2 {
    return kMasked ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
  };
  __m256i v = load_i(acc);
  if (comp) v = _mm256_sub_epi32(v, load_i(comp));
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), load_f(cscale));
  f = _mm256_add_ps(f, bias ? load_f(bias) : _mm256_setzero_ps());
  if (residual) f = _mm256_add_ps(f, load_f(residual));
  if (act == QgemmActivation::kRelu) {
    // v < 0 ? 0 : v: clear the lanes that compare less than zero (NaN, -0 kept).
    f = _mm256_andnot_ps(_mm256_cmp_ps(f, _mm256_setzero_ps(), _CMP_LT_OQ), f);
  }
  if (kMasked)
    _mm256_maskstore_ps(y, mask, f);
  else
    _mm256_storeu_ps(y, f);
}

}  // namespace

SARAI_AVX2 void epilogue_row(const int32_t* acc, int64_t n, const int32_t* comp, const float* cscale,
                       const float* bias, const float* residual, QgemmActivation act, float* y) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    epilogue8<false>(acc + j, comp ? comp + j : nullptr, cscale + j, bias ? bias + j : nullptr,
                     residual ? residual + j : nullptr, act, y + j, /*mask, unused=*/__m256i{});
  if (j < n) {
    // Lanes [0, n - j): masked loads never touch memory past element n - 1.
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    epilogue8<true>(acc + j, comp ? comp + j : nullptr, cscale + j, bias ? bias + j : nullptr,
                    residual ? residual + j : nullptr, act, y + j, mask);
  }
}


}  // namespace avx2_4x16c4

namespace {
const QgemmUkernel kTable = {Isa::kAvx2, avx2_4x16c4::kMR, 1, avx2_4x16c4::tile_avx2_rows,
                             avx2_4x16c4::epilogue_row};
}  // namespace

const QgemmUkernel& qgemm_u8s8_4x16c4__avx2() { return kTable; }

}  // namespace sarai::kernels
