// How INT8 weights are laid out for the kernels that read them in place from
// a mapped .sarai blob, and the contract of the quantized ops.
//
// Layout version 1 (blob::Layout::kPackedN16K4) for a weight matrix W[K][N]
// (K = reduction, N = output channels): N is split into panels of 16
// channels and K into groups of 4; each (panel, k-group) is one 64-byte
// block holding, for channel n = 0..15 of the panel, its 4 consecutive k
// values. That is the operand of one AVX-512 VNNI `vpdpbusd` (16 int32
// lanes, each the dot product of 4 u8 activations with 4 s8 weights); the
// AVX2 kernels read half a block. K is padded to a multiple of 4 and N to a
// multiple of 16 with zero weights, so tails need no special loads.
//
//   byte(k, n) = ((n / 16) * (Kp / 4) + k / 4) * 64 + (n % 16) * 4 + k % 4
//   Kp = round_up(K, 4), Np = round_up(N, 16), size = Kp * Np bytes
//
// Grouped convolutions (group > 1, incl. depthwise) keep ONNX's plain OIHW
// order instead (per output channel, its C/group * kh * kw weights in a
// row): packing a handful of channels per group into 16-wide panels would
// waste most of the bytes.
//
// Quantized ops (domain "sarai"), written by the quantizer in place of the
// float op, all with dynamic per-tensor u8 activations (zero point z_x,
// scale s_x, as ONNX DynamicQuantizeLinear), s8 weights, int32 accumulation:
//   QMatMul(X float[..., K], W int8 packed [K, N], scale float[N] or [1],
//           wsum int32[N], bias float[N]?) -> Y float[..., N]
//   QConv(X, W int8 [M, C/g, k...] (packed as [K = C*k..., N = M] when
//         group == 1, plain otherwise), scale, wsum, bias?) with Conv's
//         attributes -> Y
//   QConvTranspose(X, W int8 [C, M/g, k...] plain, scale float[M] or [1],
//         wsum int32[M] (unused, kept for uniformity), bias?) with
//         ConvTranspose's attributes -> Y
// Each may carry float attributes x_min and x_max (`convert --static`): X's
// calibrated range, which replaces the per-call range of X (values outside
// it saturate); see kernels/qmatmul_qconv.cc. A depthwise QConv (group = C)
// may carry int attribute x_per_channel = 1 instead: X quantized per input
// channel, each with its own s_x and z_x; a QMatMul may carry x_per_row = 1:
// each row m of X (a token) with its own s_x[m] and z_x[m].
// Y[m][n] = s_x * scale[n] * (Σ_k x_q[m][k] * w[k][n] - z_x * wsum[n]) + bias[n]
// because x = s_x (x_q - z_x) and w = scale[n] * w_q, so
// x·w = s_x scale[n] (Σ x_q w_q - z_x Σ w_q): the second sum is wsum, a
// constant precomputed at convert time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sarai::int8 {

inline constexpr uint32_t kWeightLayoutVersion = 1;
inline constexpr int64_t kPanelN = 16;
inline constexpr int64_t kGroupK = 4;

inline constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline constexpr int64_t packed_size(int64_t k, int64_t n) { return round_up(k, kGroupK) * round_up(n, kPanelN); }
inline constexpr int64_t packed_index(int64_t k, int64_t n, int64_t K) {
  return ((n / kPanelN) * (round_up(K, kGroupK) / kGroupK) + k / kGroupK) * (kPanelN * kGroupK) +
         (n % kPanelN) * kGroupK + k % kGroupK;
}

// One weight, given inv = 1 / its channel's scale (max |w| / 127):
// round-half-even(clamp(w * inv, ±127)) without calling nearbyint, so loops
// over it vectorize: for |x| <= 127, adding 1.5 * 2^23 leaves a float whose
// unit in the last place is 1, so the addition rounds x to an integer, half
// to even. The converter (quantizer/quantize.h: quantize_one) and the
// session's rewrite of pre-quantized ONNX ops (runtime/fuse_integer.cc)
// both quantize through it.
inline int8_t quantize_s8(float w, float inv) {
  float x = w * inv;
  x = x < -127.f ? -127.f : x;
  x = x > 127.f ? 127.f : x;
  x = (x + 12582912.f) - 12582912.f;
  return static_cast<int8_t>(static_cast<int32_t>(x));
}

}  // namespace sarai::int8
