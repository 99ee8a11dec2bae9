// Conv / ConvTranspose attribute and output-shape logic, shared by every
// convolution: the FP32 ones (conv.cc) and the quantized ones (QConv,
// QConvTranspose in qlinear.cc; ConvInteger in quant_ops.cc), so a quantized
// conv accepts exactly what the float one does, with the same messages.
//
// The weight shape is passed explicitly (not read from a tensor) because a
// packed QConv weight is 1-D and carries its ONNX shape in the node's
// `weight_shape` attribute.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::kernels::convgeo {

// Per-spatial-dim lists are inline Shapes: resolving a geometry on every run
// allocates nothing (up to 8 spatial dims).
using Ints = Shape;

// Everything per spatial dim, resolved against the actual shapes.
struct ConvGeometry {
  int nsp = 0;           // number of spatial dims
  Ints in, out, kernel;  // spatial sizes
  Ints strides, dilations, pad_begin, pad_end;
  int64_t in_size() const { return numel_of(in); }
  int64_t out_size() const { return numel_of(out); }
  int64_t kernel_size() const { return numel_of(kernel); }
};

// Conv: validates group against x [N, C, spatial...] and w [M, C/group,
// k...], reads kernel_shape/strides/dilations/pads/auto_pad and computes
// the output spatial sizes. x and w must have the same rank >= 3.
Status resolve_conv(const Node& node, const Shape& x, const Shape& w, int64_t group,
                    ConvGeometry* g);

// ConvTranspose: x [N, C, spatial...], w [C, M/group, k...]; also
// output_padding and output_shape.
Status resolve_conv_transpose(const Node& node, const Shape& x, const Shape& w, int64_t group,
                              ConvGeometry* g);

// Calls fn(o, r, i) for every output position o (flat over g.out), every
// kernel tap r (flat over g.kernel) and the flat input offset i of the tap
// (-1 when it falls into the padding). Plain nested loops: for references.
template <class Fn>
void for_each_tap(const ConvGeometry& g, Fn&& fn) {
  const size_t n = static_cast<size_t>(g.nsp);
  Ints o(n, 0), k(n, 0);
  const int64_t out_size = g.out_size(), ksize = g.kernel_size();
  for (int64_t oi = 0; oi < out_size; ++oi) {
    int64_t rem = oi;
    for (size_t d = n; d-- > 0;) {
      o[d] = rem % g.out[d];
      rem /= g.out[d];
    }
    for (int64_t r = 0; r < ksize; ++r) {
      int64_t kr = r;
      for (size_t d = n; d-- > 0;) {
        k[d] = kr % g.kernel[d];
        kr /= g.kernel[d];
      }
      int64_t off = 0;
      bool inside = true;
      for (size_t d = 0; d < n; ++d) {
        const int64_t i = o[d] * g.strides[d] - g.pad_begin[d] + k[d] * g.dilations[d];
        inside = inside && i >= 0 && i < g.in[d];
        off = off * g.in[d] + i;
      }
      fn(oi, r, inside ? off : int64_t{-1});
    }
  }
}

// taps[o * kernel_size + r] = the offset for_each_tap reports for (o, r).
inline std::vector<int64_t> tap_table(const ConvGeometry& g) {
  const int64_t ks = g.kernel_size();
  std::vector<int64_t> taps(static_cast<size_t>(g.out_size() * ks));
  for_each_tap(g, [&](int64_t o, int64_t r, int64_t i) { taps[static_cast<size_t>(o * ks + r)] = i; });
  return taps;
}

}  // namespace sarai::kernels::convgeo
