// Attribute and output-shape logic of the sliding-window ops: every
// convolution (the FP32 ones in conv.cc, the quantized QConv and
// QConvTranspose in qmatmul_qconv.cc, ConvInteger in quant_ops.cc) and the
// pools (pool.cc), so they accept exactly the same attributes, with the
// same messages.
//
// Two steps, as TFLite Micro's Prepare and Eval:
//  - read_*_attrs, once per node (the ops' PrepareFn, at session creation):
//    every check that needs no input shape. Values in range, auto_pad one
//    of its strings, and the lists' lengths agreeing with each other.
//  - resolve_* / forward_extents, on each run: the lists against the
//    actual spatial rank, and the output extents, in checked int64.
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

enum class AutoPad { kNotSet, kSameUpper, kSameLower, kValid };

// kernel_shape, strides, dilations, pads and auto_pad: what every
// sliding-window op reads. A list is empty when the node does not set it
// (the default applies once the spatial rank is known).
struct WindowAttrs {
  Ints kernel, strides, dilations, pads;
  AutoPad auto_pad = AutoPad::kNotSet;
};

// Conv family: the window attributes, group and (ConvTranspose) the
// output_padding and output_shape lists (empty when absent).
struct ConvAttrs {
  WindowAttrs window;
  int64_t group = 1;
  Ints output_padding, output_shape;
};

// Reads and checks the window attributes: kernel_shape, strides and
// dilations >= 1, pads >= 0, auto_pad one of its four strings, no list
// empty, and every list given the length the others imply.
Status read_window_attrs(const Node& node, WindowAttrs* a);

// The same plus group >= 1 and, with `transpose`, output_padding (>= 0,
// and below its dim's stride or dilation) and output_shape (spatial dims >= 1)
// where the lists say how many spatial dims there are.
Status read_conv_attrs(const Node& node, bool transpose, ConvAttrs* a);

// The window attributes against X [N, C, spatial...]: fills g's nsp, in,
// strides, dilations, pad_begin / pad_end (defaults for absent lists) and
// kernel when kernel_shape is set. Errors for lists of another length.
Status resolve_window(const WindowAttrs& a, const Shape& x, ConvGeometry* g);

// g.out for a forward window (Conv, the pools), from a resolved window:
// auto_pad's padding or the explicit pads, then floor (or ceil_mode's ceil)
// of the strided span, all in checked int64.
Status forward_extents(AutoPad auto_pad, bool ceil_mode, const Shape& x, ConvGeometry* g);

// Conv: validates a.group against x [N, C, spatial...] and w [M, C/group,
// k...], and computes the output spatial sizes. x and w must have the same
// rank >= 3.
Status resolve_conv(const ConvAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g);

// ConvTranspose: x [N, C, spatial...], w [C, M/group, k...]; also
// output_padding and output_shape.
Status resolve_conv_transpose(const ConvAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g);

// Both from the node's attributes in one call, with the group given (for
// callers without a prepared ConvAttrs: the tests).
Status resolve_conv(const Node& node, const Shape& x, const Shape& w, int64_t group, ConvGeometry* g);
Status resolve_conv_transpose(const Node& node, const Shape& x, const Shape& w, int64_t group,
                              ConvGeometry* g);

}  // namespace sarai::kernels::convgeo
