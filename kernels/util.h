// Small helpers shared by the op kernels: axis normalization, broadcasting,
// attribute and input reading that does not allocate.
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/graph.h"
#include "runtime/kernel.h"
#include "runtime/parallel.h"
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

// The same for float32, float64 and the integer dtypes.
template <class Fn>
bool visit_float_or_int(DType t, Fn&& fn) {
  if (t == DType::kFloat32) fn(float{});
  else if (t == DType::kFloat64) fn(double{});
  else return visit_int(t, fn);
  return true;
}

// *r = a * b + c in int64; false when any step overflows. For shape
// arithmetic fed by attributes (kernel extents, padded sizes), which must
// fail rather than wrap.
inline bool checked_mul_add(int64_t a, int64_t b, int64_t c, int64_t* r) {
  int64_t p;
  return !__builtin_mul_overflow(a, b, &p) && !__builtin_add_overflow(p, c, r);
}

// *r = s[begin] * ... * s[end - 1]; false when it overflows int64. A
// tensor's element count fits, but part of an empty tensor's shape need not
// ([0, 2^62, 4]: the dims after the 0).
inline bool checked_product(const Shape& s, size_t begin, size_t end, int64_t* r) {
  *r = 1;
  for (size_t i = begin; i < end; ++i)
    if (__builtin_mul_overflow(*r, s[i], r)) return false;
  return true;
}

// The first value of `v` that repeats an earlier one (an axes attribute
// naming an axis twice), or nullptr.
inline const int64_t* first_repeat(const Shape& v) {
  for (auto it = v.begin(); it != v.end(); ++it)
    if (std::find(v.begin(), it, *it) != it) return &*it;
  return nullptr;
}

// Whether a shape has a 0 dim (no elements). Unlike numel_of() == 0 it
// cannot overflow on [2^62, 4, 0].
inline bool has_zero_dim(const Shape& s) { return std::find(s.begin(), s.end(), 0) != s.end(); }

// What a PrepareFn returns: `p`, owned by the session (runtime/kernel.h).
template <class T> Expected<std::shared_ptr<const void>> prepared_data(T p) {
  return std::shared_ptr<const void>(std::make_shared<const T>(std::move(p)));
}

// What a PrepareFn returns for an op whose one int attribute needs no check
// beyond its type (an axis checked against each input's rank per run):
// the value, or `def` when absent.
inline Expected<std::shared_ptr<const void>> prepared_int(const Node& node, std::string_view name, int64_t def) {
  const Attribute* a = node.find_attr(name);
  return prepared_data(a ? a->i : def);
}

// An int attribute that is a flag: `def` when absent, else it must be 0 or 1
// (a 2 is a typo, not a "true").
Expected<bool> attr_flag(const Node& node, std::string_view name, bool def);

// Maps a possibly negative axis into [0, rank); an error naming the
// attribute when it is out of range.
Expected<int> normalize_axis(int64_t axis, int rank, const char* what = "axis");

// node.attr_int / attr_float for keys longer than 15 characters: those
// would build a heap-allocated std::string key on every run (Node::find_attr).
inline int64_t attr_int_of(const Node& node, std::string_view k, int64_t def) {
  const Attribute* a = node.find_attr(k);
  return a ? a->i : def;
}
inline float attr_float_of(const Node& node, std::string_view k, float def) {
  const Attribute* a = node.find_attr(k);
  return a ? a->f : def;
}

// An ints attribute copied into an inline Shape (Node::attr_ints copies into
// a heap-allocated std::vector on every call), or `def` when it is absent.
inline Shape attr_ints_or(const Node& node, std::string_view k, Shape def) {
  const Attribute* a = node.find_attr(k);
  return a ? Shape(a->ints.begin(), a->ints.end()) : def;
}

// Reads a 1-D (or scalar) int32/int64 input such as Reshape's `shape` or
// Slice's `starts` into an inline Shape (no heap allocation up to 8 values);
// `what` names it in errors.
Expected<Shape> int_list_input(const KernelContext& ctx, int i, const char* what);

// How many per-thread slices a workspace needs: parallel_for runs on up to
// num_threads() threads (runtime/parallel.h), which the session sets to the
// context's count; a kernel called directly may see either.
inline int thread_slots(const KernelContext& ctx) { return std::max(ctx.num_threads(), num_threads()); }

// The NumPy broadcast of several shapes, or an error naming both shapes.
Expected<Shape> broadcast_shapes(std::span<const Shape> shapes);
inline Expected<Shape> broadcast_shapes(std::initializer_list<Shape> shapes) {
  return broadcast_shapes(std::span<const Shape>(shapes.begin(), shapes.size()));
}

// Element strides of `in` as seen from the broadcast shape `out` (right
// aligned; 0 along broadcast dims). out.size() >= in.size().
Shape broadcast_strides(const Shape& in, const Shape& out);

// Calls fn(out_index, offsets) for every element of `out`, where offsets[k]
// is the element offset into input k with strides strides[k]. Walks the
// index with an odometer, so the cost per element is O(1) amortized. No
// heap allocation for rank <= 8.
template <size_t K, class Fn>
void for_each_broadcast(const Shape& out, const Shape (&strides)[K], Fn&& fn) {
  const size_t rank = out.size();
  int64_t total = 1;
  for (int64_t d : out) total *= d;
  if (total == 0) return;
  Shape idx(rank, 0);
  int64_t off[K] = {};
  for (int64_t i = 0; i < total; ++i) {
    fn(i, static_cast<const int64_t*>(off));
    for (size_t d = rank; d-- > 0;) {
      ++idx[d];
      for (size_t j = 0; j < K; ++j) off[j] += strides[j][d];
      if (idx[d] < out[d]) break;
      for (size_t j = 0; j < K; ++j) off[j] -= strides[j][d] * out[d];
      idx[d] = 0;
    }
  }
}

}  // namespace sarai::kernels
