// The inputs of the runtime's quantized ops (domain "sarai": QMatMul, QConv,
// QConvTranspose), by name: what `sarai-rt convert` writes (slots 0-3), and
// what the epilogue fusion adds (4, 5; runtime/fuse.h). The converter, the
// fusion pass, the kernels (kernels/qmatmul_qconv.cc) and the op registry all use
// these names instead of the numbers.
#pragma once

namespace sarai::qop {

enum Input : int {
  kX = 0,          // float32 activation
  kWeight = 1,     // int8 weight (N16K4-packed or plain)
  kScale = 2,      // float32 per-channel (or per-tensor) weight scales
  kWeightSum = 3,  // int32 per-channel weight sums (zero-point compensation)
  kBias = 4,       // optional float32 [N], fused from an Add
  kResidual = 5,   // optional float32, output's shape, fused from an Add; may be overwritten by the output
};

}  // namespace sarai::qop
