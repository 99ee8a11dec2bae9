// The geometry of a convolution, resolved per spatial dim: what the
// compute layer's convolution cores (kernels/cpu/qconv.h, qref.h) take. The
// op layer fills it from a node's attributes (kernels/conv_geometry.h).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/small_vector.h"

namespace sarai::kernels::convgeo {

// Per-spatial-dim lists are inline (the runtime's Shape type): resolving a
// geometry on every run allocates nothing (up to 8 spatial dims).
using Ints = SmallVector<int64_t, 8>;

inline int64_t product(const Ints& v) {
  int64_t n = 1;
  for (int64_t d : v) n *= d;
  return n;
}

// Everything per spatial dim, resolved against the actual shapes.
struct ConvGeometry {
  int nsp = 0;           // number of spatial dims
  Ints in, out, kernel;  // spatial sizes
  Ints strides, dilations, pad_begin, pad_end;
  int64_t in_size() const { return product(in); }
  int64_t out_size() const { return product(out); }
  int64_t kernel_size() const { return product(kernel); }
};

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
