// Vectorized float32 row kernels behind one table of function pointers per
// ISA level, in the compute layer's platform table (kernels/cpu/platform.h):
// SSE2 (the x86-64 baseline) at level scalar, AVX2+FMA at avx2 and
// avx2_vnni, AVX-512 F/DQ at avx512_vnni and amx. Each table's file
// (vec__<level>.cc) compiles vec_body.h with its level's target attribute per
// function, so the binary itself still runs on any x86-64, and
// SARAI_MAX_ISA (runtime/cpu_isa.h) moves this family with the others.
//
// The kernels work on contiguous rows; the ops in activation.cc,
// normalization.cc and elementwise.cc keep shapes, broadcasting, threading
// and validation. No kernel allocates or fails.
//
// Numerics (all three ISAs run the same algorithms; FMA where available):
//   exp(x): x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r, scaled
//     by 2^n in two steps so results down to the subnormals are right.
//     About 2 ulp; exp(-inf) = 0; NaN stays NaN.
//   erf(x): the faithfully rounded erff of N. Juffa (also MLAS's erf):
//     odd polynomial for |x| <= 0.921875, 1 - exp(-poly(|x|)) above,
//     exactly +-1 for |x| >= 4 (and +-inf).
//   gelu(x): 0.5 x (1 + erf(x / sqrt 2)) with an erf of its own at avx2
//     and up, 8 degree-7 pieces picked per lane by a table lookup (vpermps,
//     no exp): 6.4e-8 absolute on erf (tools/scripts/fit_gelu_erf.py),
//     1.9-2.6x faster than through the erf above, which level scalar
//     keeps (SSE2 has no variable permute).
//   softmax/layernorm rows accumulate in float with one partial sum per
//     lane, which is well within the 1e-5 relative tolerance of the tests.
#pragma once

#include <cstdint>

namespace sarai::kernels {

enum class VecBinaryOp : int { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

// softmax_u8_row reads its float rows in whole groups of this many lanes
// (4 vectors of the widest level): callers round their buffers up to it.
constexpr int64_t kSoftmaxU8Pad = 64;
// attention_scores' partial maxima per row (the widest level's lanes).
constexpr int64_t kScoresMaxLanes = 16;

struct VecKernels {
  const char* isa;  // the level it is named after: "avx512_vnni", "avx2" or "scalar"
  // y = softmax(x) over one contiguous row of n > 0 floats (y may alias x).
  void (*softmax_row)(const float* x, float* y, int64_t n);
  // Element-wise maps over n floats (y may alias x).
  void (*erf)(const float* x, float* y, int64_t n);
  void (*gelu)(const float* x, float* y, int64_t n);  // 0.5 x (1 + erf(x / sqrt 2))
  void (*sigmoid)(const float* x, float* y, int64_t n);
  void (*hard_sigmoid)(const float* x, float* y, int64_t n, float alpha, float beta);
  void (*hard_swish)(const float* x, float* y, int64_t n);
  // min(max(x, lo), hi) by comparisons: NaN stays NaN, lo > hi gives hi.
  void (*clip)(const float* x, float* y, int64_t n, float lo, float hi);
  // r[i] = a[i * sa] op b[i * sb] with sa, sb in {0, 1} (0: a scalar side).
  void (*binary)(VecBinaryOp op, const float* a, int64_t sa, const float* b, int64_t sb, float* r,
                 int64_t n);
  // One LayerNormalization row of n > 0 floats:
  //   y = (x - mean) / sqrt(var + eps) * scale + bias, var = mean((x - mean)^2),
  // also returning mean and 1 / sqrt(var + eps).
  void (*layernorm_row)(const float* x, float* y, const float* scale, const float* bias, int64_t n,
                        float eps, float* mean, float* inv_std);
  // The range pass of DynamicQuantizeLinear: folds the n floats into
  // [*lo, *hi] exactly like the scalar loop
  //   lo = x[i] < lo ? x[i] : lo;  hi = x[i] > hi ? x[i] : hi;
  // NaN compares false and is ignored; n == 0 or all NaN leaves *lo, *hi as
  // they were. Min and max are exact, so lanes, chunks and threads may fold
  // in any order: with *lo <= 0 <= *hi (DynamicQuantizeLinear starts at 0, 0)
  // the result is the scalar loop's bit for bit. (Only a zero extreme beyond
  // the start, e.g. *lo = +inf and x = {-0, +0}, may come out as either zero.)
  void (*minmax)(const float* x, int64_t n, float* lo, float* hi);
  // out[i] = saturate_u8(round_half_even(x[i] / scale) + zero_point), NaN -> 0:
  // a true division, rounded before the zero point is added, in float, then
  // clamped to [0, 255]; bit-identical to the scalar quantize_u8_with
  // (kernels/cpu/quantize_activations.h) for every input, scale and zero point.
  void (*quantize_u8)(const float* x, int64_t n, float scale, uint8_t zero_point, uint8_t* out);
  // The INT8 attention's scores (kernels/attention.cc) from a block of its
  // QKᵀ accumulators, the GEMM's epilogue and the softmax's first pass in
  // one: for rows i < rows and columns j < n,
  //   u[i * ldu + j] = fma(a[i], float(acc[i * ldacc + j] - comp[j]) * ks[j], lnw[j])
  // (the subtraction modular, as in the GEMM epilogue; a[i] = Q's row scale
  // / divisor, ks K's column scales, lnw = ln of V's row scales), and keeps
  // row i's running maximum as kScoresMaxLanes partial maxima,
  // rowmax[i * kScoresMaxLanes + l] (start them at -inf; the row's maximum
  // is the largest of them, and NaN is ignored). Writes u[i * ldu + 0 .. n - 1]
  // only.
  void (*attention_scores)(const int32_t* acc, int64_t ldacc, int64_t rows, int64_t n, const int32_t* comp,
                           const float* ks, const float* a, const float* lnw, float* u, int64_t ldu,
                           float* rowmax);
  // The INT8 attention's probabilities for one row of n > 0 scores u with
  // maximum m (attention_scores' u and rowmax), weighted and quantized in
  // one pass, nothing written but the bytes: with invw = 1 / w for the
  // weights w > 0 whose logarithms u holds (V's row scales),
  //   E[j] = exp(u[j] - m)   (<= 1; exactly 1 where u[j] = m)
  //   out[j] = round_half_even(255 E[j])   (255 at the maximum)
  // and returns 1 / (255 Σ_j E[j] invw[j]), the scale of out. For
  // u = a x + ln w, out[j] * scale is softmax(a x)[j] w[j] to within half a
  // step of max_j softmax(a x)[j] w[j] / 255 (E[j] = p[j] / max p for
  // p = softmax(a x) w). Reads u and invw up to index
  // round_up(n, kSoftmaxU8Pad) - 1 (values past n ignored, NaN included),
  // writes out[0 .. n - 1] only. Its exp is a cheaper one (vec_body.h,
  // vexp_softmax: 2.4e-6 relative, nothing below e^-87). A NaN or +inf in
  // u, or a scale that is not a normal float (an overflowing sum), returns
  // NaN (the caller then runs the row in float32); -inf is a probability 0.
  float (*softmax_u8_row)(const float* u, int64_t n, float m, const float* invw, uint8_t* out);
  // m[j] = max(m[j], max_{r < rows} |x[r * ldx + j]|) for j < n (NaN
  // ignored, as in minmax; inf counts).
  void (*col_abs_max)(const float* x, int64_t ldx, int64_t rows, int64_t n, float* m);
  // One k-group of an INT8 GEMM operand into the N16K4 packing
  // (kernels/cpu/int8_layout.h), for the operands the INT8 attention makes
  // at run time: rows t < rows <= 4 of x (row stride ldx), columns j < n,
  //   q[t][j] = round_half_even(x[t * ldx + j] / div) clamped to [-127, 127],
  //   div = col_div[j] when col_div is non-null, else row_div[t]
  // (a true division, rounded, then rounded to an integer, as quantize_u8
  // with zero point 128 minus 128). Writes the 4 bytes of each column j,
  // dst[(j / 16) * pstride + (j % 16) * 4 + t] (0 for t >= rows), leaving
  // the columns past n alone, and adds q[t][j] over t to colsum[j] when
  // colsum is non-null. Returns false when an x is inf or NaN (the bytes
  // are then meaningless).
  bool (*pack_s8_k4)(const float* x, int64_t ldx, int64_t rows, int64_t n, const float* col_div,
                     const float* row_div, int8_t* dst, int64_t pstride, int32_t* colsum);
  // A transpose of 32-bit words (any 4-byte dtype; bit copies, NaN
  // payloads kept): for i < m, k < n,
  //   dst[i * ldd + k] = src[k * lds + i]
  // reading and writing those elements only (lds and ldd may be negative;
  // m or n may be 0). Strided_copy's tiles (kernels/data_ops.cc: Transpose)
  // come here. Level scalar is the plain loop; avx2 and
  // avx512_vnni swap 8x8 blocks in ymm registers
  // (transpose_x32_8x8_avx2.h), the edges past whole blocks by the plain
  // loop.
  void (*transpose_x32)(const uint32_t* src, int64_t lds, uint32_t* dst, int64_t ldd, int64_t m, int64_t n);
  // The same for 16-bit words (float16, bfloat16, int16): level scalar the
  // plain loop, avx2 and avx512_vnni 8x8 blocks in xmm registers
  // (transpose_x16_8x8_sse2.h).
  void (*transpose_x16)(const uint16_t* src, int64_t lds, uint16_t* dst, int64_t ldd, int64_t m, int64_t n);
};

// The table of max_isa(): platform().vec (kernels/cpu/platform.h).
const VecKernels& vec_kernels();

// Per-level tables, defined in their files; reach them through the platform
// table (it checks cpuid and XCR0).
const VecKernels& vec_kernels__scalar();
const VecKernels& vec_kernels__avx2();
const VecKernels& vec_kernels__avx512_vnni();

}  // namespace sarai::kernels
