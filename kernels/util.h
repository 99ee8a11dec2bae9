// Small helpers shared by the op kernels: axis normalization, broadcasting.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::kernels {

// Calls fn(T{}) with the C++ type of an integer dtype; false for others.
template <class Fn>
bool visit_int(DType t, Fn&& fn) {
  switch (t) {
    case DType::kInt8: fn(int8_t{}); return true;
    case DType::kUInt8: fn(uint8_t{}); return true;
    case DType::kInt16: fn(int16_t{}); return true;
    case DType::kUInt16: fn(uint16_t{}); return true;
    case DType::kInt32: fn(int32_t{}); return true;
    case DType::kUInt32: fn(uint32_t{}); return true;
    case DType::kInt64: fn(int64_t{}); return true;
    case DType::kUInt64: fn(uint64_t{}); return true;
    default: return false;
  }
}

// The same for float32 and the integer dtypes.
template <class Fn>
bool visit_numeric(DType t, Fn&& fn) {
  if (t != DType::kFloat32) return visit_int(t, fn);
  fn(float{});
  return true;
}

// Maps a possibly negative axis into [0, rank); an error naming the
// attribute when it is out of range.
Expected<int> normalize_axis(int64_t axis, int rank, const char* what = "axis");

// The NumPy broadcast of several shapes, or an error naming both shapes.
Expected<Shape> broadcast_shapes(const std::vector<Shape>& shapes);

// Element strides of `in` as seen from the broadcast shape `out` (right
// aligned; 0 along broadcast dims). out.size() >= in.size().
std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out);

// Calls fn(out_index, offsets) for every element of `out`, where offsets[k]
// is the element offset into input k with strides strides[k]. Walks the
// index with an odometer, so the cost per element is O(1) amortized.
template <class Fn>
void for_each_broadcast(const Shape& out, const std::vector<std::vector<int64_t>>& strides, Fn&& fn) {
  const size_t rank = out.size();
  const size_t k = strides.size();
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  if (total == 0) return;
  std::vector<int64_t> idx(rank, 0), off(k, 0);
  for (int64_t i = 0; i < total; ++i) {
    fn(i, off.data());
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      for (size_t j = 0; j < k; ++j) off[j] += strides[j][d];
      if (idx[d] < out[d]) break;
      for (size_t j = 0; j < k; ++j) off[j] -= strides[j][d] * out[d];
      idx[d] = 0;
    }
  }
}

}  // namespace sarai::kernels
