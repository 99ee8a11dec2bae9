// The inner loops of the direct convolution kernels (kernels/cpu/qconv*.cc),
// one set per ISA level (kernels/cpu/platform.h), all computing the same
// integers and the same float operations in the same order.
#pragma once

#include <cstdint>

#include "kernels/cpu/qgemm.h"

namespace sarai::kernels {

struct QconvLoops {
  // acc[o] += x[o * s] * w for o < n (a u8 × s8 product is exact in int16).
  void (*axpy)(int32_t* acc, const uint8_t* x, int64_t s, int64_t n, int16_t w);
  // acc[i] += (x[i] - zp) * w for i < n.
  void (*axpy_zp)(int32_t* acc, const uint8_t* x, int64_t n, int16_t zp, int16_t w);
  // The depthwise row (every output channel reads one input channel):
  //   acc[o] = Σ_{r < taps} x[o * s + koff[r]] * w[r]   for o < n (overwrites)
  // with the weights given as int16 pairs, wp[i] = (uint16)w[2i] |
  // (uint16)w[2i + 1] << 16 (dw_weight_pairs; w[taps] = 0 when taps is
  // odd), koff[r] >= 0. May read up to kDwRowSlack bytes past the last byte
  // the formula uses (x[(n - 1) * s + max koff]); writes acc[0, n) only.
  void (*dw_row)(const uint8_t* x, int64_t s, const int64_t* koff, const int32_t* wp,
                 int64_t taps, int64_t n, int32_t* acc);
  // The group-1 epilogue: the GEMM's int32 block acc[i][m] (row i = output
  // position i, ld lda, ni rows) to y[m * ldy + i] for channels [m0, m0 + nm),
  // transposing through 16 x 16 float tiles: first v = float(acc - comp) *
  // cs + bias along the channels, then + res[m * ldy + i] (res may be y) and
  // Relu along the positions (QgemmEpilogue's order; act is kNone or kRelu).
  void (*transpose_epilogue)(const int32_t* acc, int64_t lda, int64_t ni, int64_t m0, int64_t nm,
                             const int32_t* comp, const float* cs, const float* bias,
                             const float* res, float* y, int64_t ldy, QgemmActivation act);
};

// How far past its last used input byte dw_row may read (its 16-output
// tiles' loads over the line's tail).
constexpr int64_t kDwRowSlack = 32;

// wp[0, (taps + 1) / 2) for dw_row from the s8 weights w[0, taps).
inline void dw_weight_pairs(const int8_t* w, int64_t taps, int32_t* wp) {
  for (int64_t r = 0; r < taps; r += 2) {
    const uint32_t a = static_cast<uint16_t>(int16_t{w[r]});
    const uint32_t b = r + 1 < taps ? static_cast<uint16_t>(int16_t{w[r + 1]}) : 0u;
    wp[r / 2] = static_cast<int32_t>(a | (b << 16));
  }
}

// The dw_row micro-kernels (qconv_dw_row_u8s8__<level>.cc; the scalar one
// in qconv_loops.cc). avx2 serves every level above it.
void qconv_dw_row_u8s8__scalar(const uint8_t* x, int64_t s, const int64_t* koff, const int32_t* wp,
                               int64_t taps, int64_t n, int32_t* acc);
void qconv_dw_row_u8s8__avx2(const uint8_t* x, int64_t s, const int64_t* koff, const int32_t* wp,
                             int64_t taps, int64_t n, int32_t* acc);

// Per-level tables, defined in qconv_loops.cc; reach them through the
// platform table (it checks the CPU).
const QconvLoops& qconv_loops__scalar();
const QconvLoops& qconv_loops__avx2();
const QconvLoops& qconv_loops__avx512_vnni();

}  // namespace sarai::kernels
