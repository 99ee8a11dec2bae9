// The quantization math shared by the blob converter and the ONNX exporter:
// symmetric INT8 per output channel (or per tensor), the VNNI packing, and
// the per-channel sums the u8-activation kernels subtract.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"
#include "kernels/cpu/int8_layout.h"

namespace sarai::quant {

// Copies a float32 / float16 / bfloat16 / float64 tensor into `out` as
// float32; an error naming the tensor for any other dtype, or for a NaN or
// infinite value (with its flat index).
Status to_float(const std::string& name, const Tensor& t, std::vector<float>& out);

// Symmetric quantization of w viewed as [outer, channels, inner] with one
// scale per channel (channels == 1: per tensor): scale[c] = max|w| / 127
// over the channel (1 when the channel is all zero, so q = 0 and nothing
// divides by zero), q = round-half-even(w / scale[c]) in [-127, 127].
// Then |dequantized - w| <= scale[c] / 2 for every element.
void quantize_symmetric(const float* w, int64_t outer, int64_t channels, int64_t inner, int8_t* q,
                        float* scales);

// One weight, given inv = 1 / its channel's scale: round-half-even(clamp(w *
// inv, ±127)), equal to quantize_symmetric's clamp(nearbyint(w * inv))
// (clamping first changes nothing: ±127 are integers) but vectorizable: for
// |x| <= 127, adding 1.5 * 2^23 leaves a float whose unit in the last place
// is 1, so the addition itself rounds x to an integer, half to even in the
// default rounding mode. quantize_weight() (quantize_weight.h), the fast
// path of both writers (the blob converter and the ONNX exporter),
// quantizes through it.
// The function itself lives in kernels/cpu/int8_layout.h
// (int8::quantize_s8), so that the runtime's own weight preparation
// (runtime/fuse_integer.cc) rounds the same way without linking the quantizer.
inline int8_t quantize_one(float w, float inv) { return int8::quantize_s8(w, inv); }

// Packs q, row-major [K, N], into the kernels' N16K4 layout (see
// kernels/cpu/int8_layout.h; `out` holds int8::packed_size(K, N) bytes), and
// writes sums[n] = Σ_k q[k][n].
void pack_n16k4(const int8_t* q, int64_t K, int64_t N, int8_t* out, int32_t* sums);

// Σ over each row of q, row-major [rows, cols] (plain layout: one output
// channel per row).
void row_sums(const int8_t* q, int64_t rows, int64_t cols, int32_t* sums);

}  // namespace sarai::quant
