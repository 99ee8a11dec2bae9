// The depthwise row micro-kernel for AVX2 (kernels/cpu/qconv_loops.h,
// QconvLoops::dw_row): one output line of one channel,
//   acc[o] = Σ_{r < taps} x[o * s + koff[r]] * w[r]     for o < n,
// 16 outputs at a time with the accumulators in registers over every tap
// (the axpy path it replaces read and wrote its int32 row once per tap).
//
// Exactness (vpmaddwd; never vpmaddubsw, whose pair sums saturate): the taps go two at a
// time. x at the two taps' offsets, zero-extended to int16 (0..255), is
// interleaved (unpacklo/hi_epi16) and multiplied by the broadcast pair
// (w[r], w[r+1]) sign-extended to int16 (-128..127): vpmaddwd forms each
// 16 x 16-bit product exactly in 32 bits and adds the pair, |sum| <=
// 2 * 255 * 128 = 65280, exact in int32 (vpmaddwd's one wrapping case,
// both pairs -32768 * -32768, cannot occur in these ranges); the pair sums then add up in int32
// exactly as the reference's products do (|acc| <= 255 * 128 * taps, taps <=
// qref::kMaxReduction). An odd last tap pairs with weight 0. Integer
// addition is exact, so the order of the sums cannot change the result: the
// output equals qref::conv_u8s8 bit for bit at any thread count.
//
// The unpacks work within 128-bit lanes, so the low accumulator holds
// outputs {0-3, 8-11} and the high one {4-7, 12-15}; one vperm2i128 pair at
// the tile's end puts them back in order. Strides: s = 1 loads 16 bytes per
// tap; s = 2 loads 32 and keeps the even bytes (the low byte of each 16-bit
// lane, an AND); other strides use a scalar loop (no model seen yet needs
// them). The tile over n's tail computes 16 outputs (reading at most
// kDwRowSlack bytes past the last byte the formula uses) and stores the n
// it owes through a stack buffer.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/qconv_loops.h"

namespace sarai::kernels {
namespace {

template <int S>
__attribute__((target("avx2"), always_inline)) inline __m256i load_taps(const uint8_t* x) {
  if constexpr (S == 1) {
    return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
  } else {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
    return _mm256_and_si256(v, _mm256_set1_epi16(0x00ff));
  }
}

// 16 outputs starting at x (already offset to the tile's first output).
template <int S>
__attribute__((target("avx2"), always_inline)) inline void tile16(const uint8_t* x,
                                                                  const int64_t* koff,
                                                                  const int32_t* wp, int64_t taps,
                                                                  int32_t* out) {
  __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
  int64_t r = 0;
  for (; r + 1 < taps; r += 2) {
    const __m256i a = load_taps<S>(x + koff[r]);
    const __m256i b = load_taps<S>(x + koff[r + 1]);
    const __m256i w = _mm256_set1_epi32(wp[r / 2]);
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), w));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), w));
  }
  if (r < taps) {  // the odd last tap: its pair's weight is 0
    const __m256i a = load_taps<S>(x + koff[r]);
    const __m256i w = _mm256_set1_epi32(wp[r / 2]);
    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, a), w));
    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, a), w));
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), _mm256_permute2x128_si256(lo, hi, 0x20));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8), _mm256_permute2x128_si256(lo, hi, 0x31));
}

template <int S>
__attribute__((target("avx2"))) void row(const uint8_t* x, const int64_t* koff, const int32_t* wp,
                                         int64_t taps, int64_t n, int32_t* acc) {
  int64_t o = 0;
  for (; o + 16 <= n; o += 16) tile16<S>(x + o * S, koff, wp, taps, acc + o);
  if (o < n) {
    alignas(32) int32_t t[16];
    tile16<S>(x + o * S, koff, wp, taps, t);
    std::memcpy(acc + o, t, static_cast<size_t>(n - o) * sizeof(int32_t));
  }
}

}  // namespace

__attribute__((target("avx2"))) void qconv_dw_row_u8s8__avx2(const uint8_t* x, int64_t s,
                                                            const int64_t* koff, const int32_t* wp,
                                                            int64_t taps, int64_t n, int32_t* acc) {
  if (s == 1) return row<1>(x, koff, wp, taps, n, acc);
  if (s == 2) return row<2>(x, koff, wp, taps, n, acc);
  qconv_dw_row_u8s8__scalar(x, s, koff, wp, taps, n, acc);
}

}  // namespace sarai::kernels
