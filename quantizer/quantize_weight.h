// One weight, quantized and laid out the way its quantized op reads it, in
// one pass per tensor: the converter's inner loop.
//
// The results are bit-identical to quantize_symmetric() followed by
// pack_n16k4() / row_sums() (quantizer/quantize.h; tests/quantizer_test.cc
// checks it), but the work is done per 16-channel panel straight into the
// packed layout, in parallel over panels, in batches so the caller can
// report progress and stop between them.
#pragma once

#include <cstdint>
#include <functional>

#include "quantizer/plan.h"
#include "runtime/graph.h"

namespace sarai::quant {

struct WeightForm {
  enum class Kind {
    kPackedKN,       // W row-major [K, N] (MatMul, Gemm transB=0) -> N16K4
    kPackedNK,       // W row-major [N, K] (Gemm transB=1, Conv group 1 as [M, C*k...]) -> N16K4
    kPlainRows,      // W [M, rest], one output channel per row (grouped Conv): int8 as is
    kPlainConvTranspose,  // W [C, M/g, inner], channel (c / (C/g)) * (M/g) + m: int8 as is
    kPlainKN,        // W row-major [K, N], one channel per column: int8 as is (the ONNX
                     // exporter's MatMulInteger weight)
  };
  Kind kind = Kind::kPackedKN;
  int64_t K = 0;       // reduction size (packed, kPlainKN); elements per channel (kPlainRows)
  int64_t N = 0;       // output channels
  int64_t C = 0, group = 1, inner = 0;  // kPlainConvTranspose only

  bool packed() const { return kind == Kind::kPackedKN || kind == Kind::kPackedNK; }
  int64_t numel() const;     // elements of the source weight
  int64_t q_bytes() const;   // bytes of the int8 output (packed size when packed)
};

// The form a planned, quantized choice takes for `node` and weight `shape`.
WeightForm weight_form(const WeightChoice& c, const Node& node, const Shape& shape);

// Quantizes w (the ONNX weight, float32, `form.numel()` elements): writes
// `q` (form.q_bytes()), scales (form.N, or 1 when per_tensor; each then
// multiplied by `scale_factor`, Gemm's alpha) and sums (form.N). `batch_done`
// is called with the fraction done after each batch of about 8 MB of input,
// from the calling thread; returning false stops early (the outputs are then
// incomplete) and the function returns false.
bool quantize_weight(const float* w, const WeightForm& form, bool per_tensor, float scale_factor, int8_t* q,
                     float* scales, int32_t* sums, const std::function<bool(double)>& batch_done = {});

}  // namespace sarai::quant
