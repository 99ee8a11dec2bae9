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
  // The group-1 epilogue: the GEMM's int32 block acc[i][m] (row i = output
  // position i, ld lda, ni rows) to y[m * ldy + i] for channels [m0, m0 + nm),
  // transposing through 16 x 16 float tiles: first v = float(acc - comp) *
  // cs + bias along the channels, then + res[m * ldy + i] (res may be y) and
  // Relu along the positions (QgemmEpilogue's order; act is kNone or kRelu).
  void (*transpose_epilogue)(const int32_t* acc, int64_t lda, int64_t ni, int64_t m0, int64_t nm,
                             const int32_t* comp, const float* cs, const float* bias,
                             const float* res, float* y, int64_t ldy, QgemmActivation act);
};

// Per-level tables, defined in qconv_loops.cc; reach them through the
// platform table (it checks the CPU).
const QconvLoops& qconv_loops__scalar();
const QconvLoops& qconv_loops__avx2();
const QconvLoops& qconv_loops__avx512_vnni();

}  // namespace sarai::kernels
