// What `sarai-rt convert` measures after writing its output: the converted
// model against the FP32 source on the calibration sets, or on inputs
// generated from the declared shapes when there are none; and, when the
// result is poor, the quantized layers whose own INT8 error is largest.
// Nothing here prints (tools/cli/cmd_convert.cc reports the results).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "quantizer/accuracy.h"
#include "quantizer/eval/eval.h"
#include "runtime/kernel.h"
#include "runtime/session.h"

namespace sarai::eval {

// One input set for `g`'s inputs from their declarations: each symbolic or
// unknown dim is `batch` when it is the first dim of an input of rank >= 2,
// `other` otherwise (one value per symbol name, the first rule that met it);
// the values come from `make(dtype, shape)`. An error names the input that
// declares no shape or dtype, or whose tensor would exceed `max_elements`.
struct GeneratedInputs {
  InputSet set;
  // How each symbolic dim was resolved: "frames=64", or "x[3]=64" for an
  // unnamed dim of input x, in the order met.
  std::vector<std::string> resolved;
};
Expected<GeneratedInputs> generate_inputs(const Graph& g, int64_t batch, int64_t other,
                                          const std::function<Tensor(DType, const Shape&)>& make,
                                          int64_t max_elements = int64_t{1} << 28);

// The test model on every set against the reference's outputs (computed on
// the same sets): each float output of the reference (float32, float64,
// float16) with the test output of the same name; outputs of other dtypes
// (indices, masks) are counted in `skipped`. Stops with "interrupted" when
// *cancel is set between sets. An error when no output is float, names the
// set whose run fails, or an output the test model lacks.
struct AccuracyCheck {
  std::vector<std::string> names;
  std::vector<quant::OutputError> errors;
  size_t skipped = 0;
  double min_cosine = 1;
  std::string worst;  // the output of min_cosine
};
Expected<AccuracyCheck> check_accuracy(const ReferenceOutputs& reference, Session& test,
                                       const std::vector<InputSet>& sets, const std::atomic<bool>* cancel = nullptr);

// The quantized layers of `test` (a blob converted from `ref`) with the
// largest local error: each node's INT8 output computed from the FP32
// model's own inputs to it, against the FP32 output (PerLayer's local error,
// relative L2 over `sets`). Cheap: the FP32 model runs once per set,
// unfused, weights streamed, and each quantized node once more on the way,
// as soon as its inputs and FP32 output exist; memory stays that of the
// FP32 run plus the values a pending layer still needs. At most `count`,
// largest error first.
struct LayerRank {
  std::string node, op;
  double relative_l2 = 0, cosine = 1;
};
Expected<std::vector<LayerRank>> worst_layers_by_local_error(std::shared_ptr<const Model> ref,
                                                             std::shared_ptr<const Model> test,
                                                             const std::vector<InputSet>& sets, int threads,
                                                             const KernelTable& kernels, const std::string& attention,
                                                             size_t count, const std::atomic<bool>* cancel = nullptr);

}  // namespace sarai::eval
