// Dynamic per-tensor u8 quantization of activations (ONNX
// DynamicQuantizeLinear) and the float epilogue of the quantized ops: the
// two pieces of arithmetic every INT8 kernel (reference and fast) must share
// bit for bit, so they live in one place.
#pragma once

#include <cstdint>

namespace sarai::kernels {

struct QuantParams {
  float scale = 1.f;
  uint8_t zero_point = 0;
};

// ONNX DynamicQuantizeLinear, all in float32 as its reference does:
//   lo = min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255
//   zero_point = saturate(round_half_even(0 - lo / scale))
// When hi == lo (x all zero, or empty) the scale is 1 and the zero point 0,
// as ONNX Runtime does (onnx's reference would report 1/255; the quantized
// values, all 0, are the same).
QuantParams choose_u8_params(float lo, float hi);

// out[i] = saturate(round_half_even(x[i] / p.scale) + p.zero_point), in
// float: a true division, rounded, then the zero point added.
// NaN maps to 0 (never undefined behaviour); NaN is ignored for the range.
// Both run the vector kernels of vec_kernels.h (minmax, quantize_u8) over
// chunks with parallel_for once n reaches a few 10^4 floats; the results are
// those of the plain scalar loops, bit for bit, for any ISA and thread count
// (tests/quantize_activations_test.cc keeps that scalar code as its oracle).
void quantize_u8_with(const float* x, int64_t n, QuantParams p, uint8_t* out);

// choose_u8_params over x's range (min and max folded from 0, so the range
// always holds 0), then quantize_u8_with.
QuantParams quantize_u8(const float* x, int64_t n, uint8_t* out);

// Per channel (a depthwise QConv's X, attribute x_per_channel; with batch 1
// and channels = rows, plane = K: QMatMul's X per row, x_per_row): x is
// [batch, channels, plane] and channel c gets its own params[c], chosen as
// quantize_u8 chooses them over the channel's values in every image, then
// its planes are quantized with them (quantize_u8_with's arithmetic).
// Channels run in parallel; each result is the sequential loop's, bit for
// bit, for any ISA and thread count.
void quantize_u8_per_channel(const float* x, int64_t batch, int64_t channels, int64_t plane, uint8_t* out,
                             QuantParams* params);

// The epilogue of QMatMul / QConv / QConvTranspose for one output, with the
// exact float operation order every kernel must use to stay bit-exact with
// the reference:
//   y = float(acc - zp * wsum) * (s_x * scale[n]) + bias[n]
// `comp_acc` is the compensated int32 accumulator (acc - zp * wsum) and
// `combined_scale` is s_x * scale[n], computed in float once per channel.
inline float dequantize_acc(int32_t comp_acc, float combined_scale, float bias) {
  return static_cast<float>(comp_acc) * combined_scale + bias;
}

}  // namespace sarai::kernels
