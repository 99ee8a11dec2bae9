// Conv / ConvTranspose attribute and output-shape logic, shared by every
// convolution: the FP32 ones (conv.cc) and the quantized ones (QConv,
// QConvTranspose in qmatmul_qconv.cc; ConvInteger in quant_ops.cc), so a quantized
// conv accepts exactly what the float one does, with the same messages.
//
// The geometry itself (ConvGeometry, for_each_tap) is the compute layer's:
// kernels/cpu/conv_geometry.h.
//
// The weight shape is passed explicitly (not read from a tensor) because a
// packed QConv weight is 1-D and carries its ONNX shape in the node's
// `weight_shape` attribute.
#pragma once

#include <cstdint>

#include "kernels/cpu/conv_geometry.h"
#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::kernels::convgeo {

// Conv: validates group against x [N, C, spatial...] and w [M, C/group,
// k...], reads kernel_shape/strides/dilations/pads/auto_pad and computes
// the output spatial sizes. x and w must have the same rank >= 3.
Status resolve_conv(const Node& node, const Shape& x, const Shape& w, int64_t group,
                    ConvGeometry* g);

// ConvTranspose: x [N, C, spatial...], w [C, M/group, k...]; also
// output_padding and output_shape.
Status resolve_conv_transpose(const Node& node, const Shape& x, const Shape& w, int64_t group,
                              ConvGeometry* g);

}  // namespace sarai::kernels::convgeo
