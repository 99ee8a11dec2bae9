// The inputs of the runtime's quantized ops (domain "sarai": QMatMul, QConv,
// QConvTranspose), by name: what `sarai-rt convert` writes (slots 0-3), and
// what the epilogue fusion adds (4, 5; runtime/fuse.h). The converter, the
// fusion pass, the kernels (kernels/qmatmul_qconv.cc) and the op registry all use
// these names instead of the numbers; is_quantized() says which nodes
// these are (the fusion pass, and calibration/sensitivity in quantizer/eval/).
#pragma once

#include "runtime/graph.h"

namespace sarai::qop {

enum Input : int {
  kX = 0,          // float32 activation
  kWeight = 1,     // int8 weight (N16K4-packed or plain)
  kScale = 2,      // float32 per-channel (or per-tensor) weight scales
  kWeightSum = 3,  // int32 per-channel weight sums (zero-point compensation)
  kBias = 4,       // optional float32 [N], fused from an Add
  kResidual = 5,   // optional float32, output's shape, fused from an Add; may be overwritten by the output
};

// A node of one of the quantized ops (domain "sarai": QMatMul, QConv,
// QConvTranspose), the ones `sarai-rt convert` writes for quantized weights.
inline bool is_quantized(const Node& n) {
  return n.domain == "sarai" && (n.op_type == "QMatMul" || n.op_type == "QConv" || n.op_type == "QConvTranspose");
}

}  // namespace sarai::qop
