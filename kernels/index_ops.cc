// Indexing ops of the default domain: OneHot, NonZero, GatherND,
// GatherElements, ScatterND, ScatterElements (and opset 9-10's Scatter, the
// same op), Tile, Trilu, EyeLike, DepthToSpace, SpaceToDepth, Compress,
// ReverseSequence, Unique.
//
// Pure movement works on bytes (dtype_size), as in data_ops.cc; the scatter
// reductions and Unique's comparisons work on typed values. Every index is
// checked before the output is allocated, so a bad one writes nothing.
// NonZero, Compress and Unique have output shapes that depend on the input
// values: they always compute (never skip_compute), and a planned run that
// meets a larger output is a plan miss the session re-plans after
// (runtime/kernel.h, docs/memory.md).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

using std::to_string;

Status need_input(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i)) return Status::error(std::string("missing required input '") + name + "'");
  if (dtype_size(ctx.input(i).dtype()) == 0)
    return Status::error(std::string("input '") + name + "' has unsupported dtype " + dtype_name(ctx.input(i).dtype()));
  return Status::ok();
}

Status need_index_input(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i)) return Status::error(std::string("missing required input '") + name + "'");
  const DType t = ctx.input(i).dtype();
  if (t != DType::kInt64 && t != DType::kInt32)
    return Status::error(std::string("input '") + name + "' must be int64 or int32, got " + dtype_name(t));
  return Status::ok();
}

Status same_dtype(const Tensor& t, const char* name, const Tensor& data) {
  if (t.dtype() == data.dtype()) return Status::ok();
  return Status::error(std::string("input '") + name + "' has dtype " + dtype_name(t.dtype()) +
                       "; it must be the data's, " + dtype_name(data.dtype()));
}

// v on an axis of n (negative counts from the end), or -1 when out of range.
inline int64_t wrap_index(int64_t v, int64_t n) {
  if (v < -n || v >= n) return -1;
  return v < 0 ? v + n : v;
}

Status index_error(int64_t v, int axis, int64_t n, const Shape& data) {
  return Status::error("index " + to_string(v) + " is out of range for axis " + to_string(axis) + " of size " +
                       to_string(n) + " (data shape " + shape_to_string(data) + ")");
}

// Row-major element strides of `s`.
Shape strides_of(const Shape& s) {
  Shape st(s.size(), 1);
  for (size_t i = s.size(); i-- > 1;) st[i - 1] = st[i] * s[i];
  return st;
}

Shape concat_shapes(const Shape& a, size_t a_begin, size_t a_end, const Shape& b, size_t b_begin, size_t b_end) {
  Shape r(a.begin() + a_begin, a.begin() + a_end);
  r.insert(r.end(), b.begin() + b_begin, b.begin() + b_end);
  return r;
}

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// ------------------------------------------------------- scatter reductions

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

const char* reduction_name(Reduction r) {
  switch (r) {
    case Reduction::kNone: return "none";
    case Reduction::kAdd: return "add";
    case Reduction::kMul: return "mul";
    case Reduction::kMax: return "max";
    case Reduction::kMin: return "min";
  }
  return "none";
}

// ScatterND's and ScatterElements' attribute `reduction` (add and mul from
// opset 16, max and min from 18).
Expected<std::shared_ptr<const void>> prepare_reduction(const Node& node, int64_t opset) {
  const std::string_view r = node.attr_string_view("reduction", "none");
  Reduction red;
  if (r == "none") red = Reduction::kNone;
  else if (r == "add" && opset >= 16) red = Reduction::kAdd;
  else if (r == "mul" && opset >= 16) red = Reduction::kMul;
  else if (r == "max" && opset >= 18) red = Reduction::kMax;
  else if (r == "min" && opset >= 18) red = Reduction::kMin;
  else
    return Status::error("attribute 'reduction' is '" + std::string(r) + "'; expected " +
                         (opset >= 18   ? "none, add, mul, max or min"
                          : opset >= 16 ? "none, add or mul (max and min need opset 18)"
                                        : "none (add and mul need opset 16)"));
  return prepared_data(red);
}

bool arithmetic(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16 || t == DType::kBFloat16 ||
         visit_int(t, [](auto) {});
}

Status check_reduction(Reduction r, DType t) {
  if (r == Reduction::kNone || arithmetic(t)) return Status::ok();
  return Status::error(std::string("reduction '") + reduction_name(r) + "' needs numeric data, got " + dtype_name(t));
}

template <class T> T combine(T a, T b, Reduction r) {
  switch (r) {
    case Reduction::kNone: return b;
    case Reduction::kAdd:
      if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));  // wraps
      else return a + b;
    case Reduction::kMul:
      if constexpr (std::is_integral_v<T>) return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
      else return a * b;
    case Reduction::kMax: return std::max(a, b);
    case Reduction::kMin: return std::min(a, b);
  }
  return b;
}

// dst[i] = dst[i] (reduction) src[i] for n elements of dtype t (arithmetic).
void reduce_into(DType t, void* dst, const void* src, int64_t n, Reduction r) {
  if (t == DType::kFloat16 || t == DType::kBFloat16) {
    const bool bf = t == DType::kBFloat16;
    auto* d = static_cast<uint16_t*>(dst);
    const auto* s = static_cast<const uint16_t*>(src);
    for (int64_t i = 0; i < n; ++i) {
      const float a = bf ? bf16_to_float(d[i]) : half_to_float(d[i]);
      const float b = bf ? bf16_to_float(s[i]) : half_to_float(s[i]);
      const float c = combine(a, b, r);
      d[i] = bf ? float_to_bf16(c) : float_to_half(c);
    }
    return;
  }
  if (t == DType::kFloat64) {
    auto* d = static_cast<double*>(dst);
    const auto* s = static_cast<const double*>(src);
    for (int64_t i = 0; i < n; ++i) d[i] = combine(d[i], s[i], r);
    return;
  }
  visit_numeric(t, [&](auto z) {
    using T = decltype(z);
    auto* d = static_cast<T*>(dst);
    const auto* s = static_cast<const T*>(src);
    for (int64_t i = 0; i < n; ++i) d[i] = combine(d[i], s[i], r);
  });
}

// Copies or reduces n elements of es bytes from src into dst.
inline void put(DType t, size_t es, unsigned char* dst, const unsigned char* src, int64_t n, Reduction r) {
  if (r == Reduction::kNone) std::memcpy(dst, src, static_cast<size_t>(n) * es);
  else reduce_into(t, dst, src, n, r);
}

template <class T> void strided_copy_t(unsigned char* dst, int64_t ds, const unsigned char* src, int64_t ss, int64_t n) {
  T* d = reinterpret_cast<T*>(dst);
  const T* p = reinterpret_cast<const T*>(src);
  for (int64_t k = 0; k < n; ++k) d[k * ds] = p[k * ss];
}

// n elements of es bytes from src (element stride ss) to dst (stride ds).
void strided_copy(unsigned char* dst, int64_t ds, const unsigned char* src, int64_t ss, int64_t n, size_t es) {
  switch (es) {
    case 1: return strided_copy_t<uint8_t>(dst, ds, src, ss, n);
    case 2: return strided_copy_t<uint16_t>(dst, ds, src, ss, n);
    case 4: return strided_copy_t<uint32_t>(dst, ds, src, ss, n);
    case 8: return strided_copy_t<uint64_t>(dst, ds, src, ss, n);
    default:
      for (int64_t k = 0; k < n; ++k) std::memcpy(dst + static_cast<size_t>(k * ds) * es, src + static_cast<size_t>(k * ss) * es, es);
  }
}

// Element i of a tensor is non-zero (-0.0 is zero, NaN is not).
bool nonzero_at(DType t, const unsigned char* p, size_t es) {
  switch (t) {
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return v != 0.f; }
    case DType::kFloat64: { double v; std::memcpy(&v, p, 8); return v != 0.0; }
    case DType::kFloat16:
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p, 2); return (v & 0x7fffu) != 0; }
    default:
      for (size_t b = 0; b < es; ++b)
        if (p[b]) return true;
      return false;
  }
}

// The bytes of 1 in dtype t (EyeLike's diagonal).
void write_one(DType t, unsigned char* p) {
  switch (t) {
    case DType::kFloat32: { const float v = 1.f; std::memcpy(p, &v, 4); return; }
    case DType::kFloat64: { const double v = 1.0; std::memcpy(p, &v, 8); return; }
    case DType::kFloat16: { const uint16_t v = 0x3c00; std::memcpy(p, &v, 2); return; }
    case DType::kBFloat16: { const uint16_t v = 0x3f80; std::memcpy(p, &v, 2); return; }
    default: {  // integers and bool: 1 in the lowest byte (little endian)
      std::memset(p, 0, dtype_size(t));
      p[0] = 1;
      return;
    }
  }
}

// An optional int attribute (Compress's and Unique's axis).
struct OptionalAxis {
  bool has = false;
  int64_t axis = 0;
};
Expected<std::shared_ptr<const void>> prepare_optional_axis(const Node& node) {
  const Attribute* a = node.find_attr("axis");
  return prepared_data(OptionalAxis{a != nullptr, a ? a->i : 0});
}

}  // namespace

// ------------------------------------------------------------------- OneHot

Expected<std::shared_ptr<const void>> PrepareOneHot(const Node& node, int64_t /*opset*/) {
  return prepared_int(node, "axis", -1);
}

// out has indices' shape with `depth` inserted at axis; out[.., d, ..] is
// values[1] where d == indices[..] (negative counting from the end from
// opset 11) and values[0] elsewhere. Non-integer indices truncate; indices
// out of range (and NaN) give a row of values[0].
Status OneHot(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "indices"));
  SARAI_RETURN_IF_ERROR(need_input(ctx, 1, "depth"));
  SARAI_RETURN_IF_ERROR(need_input(ctx, 2, "values"));
  const Tensor &ind = ctx.input(0), &dep = ctx.input(1), &val = ctx.input(2);
  if (!arithmetic(ind.dtype()))
    return Status::error(std::string("input 'indices' must be numeric, got ") + dtype_name(ind.dtype()));
  if (!arithmetic(dep.dtype()))
    return Status::error(std::string("input 'depth' must be numeric, got ") + dtype_name(dep.dtype()));
  if (dep.numel() != 1)
    return Status::error("input 'depth' must hold one value, got shape " + shape_to_string(dep.shape()));
  if (val.numel() != 2)
    return Status::error("input 'values' must hold two values [off, on], got shape " + shape_to_string(val.shape()));
  const double dd = dep.float_at(0);
  if (!(dd >= 1) || dd > 9.0e18)
    return Status::error("input 'depth' is " + std::to_string(dd) + "; it must be a positive count");
  const int64_t depth = static_cast<int64_t>(dd);
  const int r = ind.rank();
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_attr, ctx.prepared<int64_t>(PrepareOneHot));
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(*axis_attr, r + 1, "axis"));
  Shape out = ind.shape();
  out.insert(out.begin() + axis, depth);
  const size_t es = dtype_size(val.dtype());
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, val.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const auto* off = static_cast<const unsigned char*>(val.raw());
  const unsigned char* on = off + es;
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  for (int64_t i = 0; i < y.numel(); ++i) std::memcpy(dst + i * es, off, es);
  const int64_t inner = product(ind.shape(), static_cast<size_t>(axis), ind.shape().size());
  const int64_t n = ind.numel();
  const bool negative_ok = ctx.opset() >= 11;
  for (int64_t i = 0; i < n; ++i) {
    const double v = ind.float_at(i);
    if (!(v > -static_cast<double>(depth) - 1) || !(v < static_cast<double>(depth))) continue;  // NaN too
    int64_t d = static_cast<int64_t>(v);
    if (d < 0) {
      if (!negative_ok || d < -depth) continue;
      d += depth;
    }
    const int64_t o = i / inner, in = i % inner;
    std::memcpy(dst + ((o * depth + d) * inner + in) * static_cast<int64_t>(es), on, es);
  }
  return Status::ok();
}

// ------------------------------------------------------------------ NonZero

// int64 [rank, count]: the coordinates of the non-zero elements in row-major
// order (a scalar counts as a one-element vector, as numpy does).
Status NonZero(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "X"));
  const Tensor& x = ctx.input(0);
  const size_t es = dtype_size(x.dtype());
  const auto* p = static_cast<const unsigned char*>(x.raw());
  const int64_t n = x.numel();
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += nonzero_at(x.dtype(), p + i * static_cast<int64_t>(es), es);
  const Shape xs = x.rank() == 0 ? Shape{1} : x.shape();
  const int64_t rank = static_cast<int64_t>(xs.size());
  Tensor& y = ctx.allocate_output(0, DType::kInt64, Shape{rank, count});
  if (count == 0) return Status::ok();
  int64_t* out = y.mutable_data<int64_t>();
  Shape idx(xs.size(), 0);
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (nonzero_at(x.dtype(), p + i * static_cast<int64_t>(es), es)) {
      for (int64_t d = 0; d < rank; ++d) out[d * count + c] = idx[static_cast<size_t>(d)];
      ++c;
    }
    for (size_t d = xs.size(); d-- > 0;) {
      if (++idx[d] < xs[d]) break;
      idx[d] = 0;
    }
  }
  return Status::ok();
}

// ----------------------------------------------------------------- GatherND

Expected<std::shared_ptr<const void>> PrepareGatherND(const Node& node, int64_t /*opset*/) {
  const int64_t b = node.attr_int("batch_dims", 0);
  if (b < 0) return Status::error("attribute 'batch_dims' is " + to_string(b) + "; it must be >= 0");
  return prepared_data(b);
}

// indices [..., k] picks slices data[b0.., i0, .., ik-1, :] where the first
// batch_dims dims of data and indices are shared;
// out = indices.shape[:-1] + data.shape[batch_dims + k:].
Status GatherND(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "data"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "indices"));
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  SARAI_ASSIGN_OR_RETURN(const int64_t* bp, ctx.prepared<int64_t>(PrepareGatherND));
  const int r = x.rank(), q = ind.rank();
  if (r < 1 || q < 1)
    return Status::error("inputs 'data' " + shape_to_string(x.shape()) + " and 'indices' " + shape_to_string(ind.shape()) +
                         " must both have rank >= 1");
  if (*bp >= std::min(r, q))
    return Status::error("attribute 'batch_dims' is " + to_string(*bp) + "; it must be less than the ranks of data " +
                         shape_to_string(x.shape()) + " and indices " + shape_to_string(ind.shape()));
  const size_t b = static_cast<size_t>(*bp);
  for (size_t i = 0; i < b; ++i)
    if (x.shape()[i] != ind.shape()[i])
      return Status::error("the first " + to_string(b) + " (batch) dims of data " + shape_to_string(x.shape()) +
                           " and indices " + shape_to_string(ind.shape()) + " differ");
  const int64_t k = ind.dim(q - 1);
  if (k < 1 || k > r - static_cast<int64_t>(b))
    return Status::error("the last dim of indices " + shape_to_string(ind.shape()) + " is " + to_string(k) +
                         "; it must be in [1, " + to_string(r - static_cast<int64_t>(b)) + "] for data " +
                         shape_to_string(x.shape()) + " and batch_dims " + to_string(b));
  const size_t kb = b + static_cast<size_t>(k);
  const int64_t batches = product(x.shape(), 0, b);
  const int64_t per_batch = product(ind.shape(), b, static_cast<size_t>(q - 1));
  const int64_t slice = product(x.shape(), kb, x.shape().size());
  const int64_t block = product(x.shape(), b, x.shape().size());
  const int64_t tuples = ind.numel() / k;
  for (int64_t t = 0; t < tuples; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = ind.int_at(t * k + j), n = x.dim(static_cast<int>(b) + static_cast<int>(j));
      if (wrap_index(v, n) < 0) return index_error(v, static_cast<int>(b + static_cast<size_t>(j)), n, x.shape());
    }
  const Shape out = concat_shapes(ind.shape(), 0, static_cast<size_t>(q - 1), x.shape(), kb, x.shape().size());
  const size_t es = dtype_size(x.dtype());
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const size_t bytes = static_cast<size_t>(slice) * es;
  for (int64_t bi = 0; bi < batches; ++bi)
    for (int64_t t = 0; t < per_batch; ++t) {
      const int64_t tt = bi * per_batch + t;
      int64_t off = 0;
      for (int64_t j = 0; j < k; ++j) {
        const int64_t n = x.dim(static_cast<int>(b) + static_cast<int>(j));
        off = off * n + wrap_index(ind.int_at(tt * k + j), n);
      }
      std::memcpy(dst + static_cast<size_t>(tt) * bytes, src + (bi * block + off * slice) * static_cast<int64_t>(es), bytes);
    }
  return Status::ok();
}

// ---------------------------------------------------------------- ScatterND

Expected<std::shared_ptr<const void>> PrepareScatterND(const Node& node, int64_t opset) {
  return prepare_reduction(node, opset);
}

// out = data, then for each tuple of indices [..., k] the slice
// data[i0, .., ik-1, :] takes (or is combined with) the matching updates
// slice, in order (later duplicates win for reduction none).
Status ScatterND(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "data"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "indices"));
  SARAI_RETURN_IF_ERROR(need_input(ctx, 2, "updates"));
  const Tensor &x = ctx.input(0), &ind = ctx.input(1), &upd = ctx.input(2);
  SARAI_RETURN_IF_ERROR(same_dtype(upd, "updates", x));
  SARAI_ASSIGN_OR_RETURN(const Reduction* red, ctx.prepared<Reduction>(PrepareScatterND));
  SARAI_RETURN_IF_ERROR(check_reduction(*red, x.dtype()));
  const int r = x.rank(), q = ind.rank();
  if (r < 1 || q < 1)
    return Status::error("inputs 'data' " + shape_to_string(x.shape()) + " and 'indices' " + shape_to_string(ind.shape()) +
                         " must both have rank >= 1");
  const int64_t k = ind.dim(q - 1);
  if (k > r)
    return Status::error("the last dim of indices " + shape_to_string(ind.shape()) + " is " + to_string(k) +
                         "; it must be at most the rank of data " + shape_to_string(x.shape()));
  const Shape want = concat_shapes(ind.shape(), 0, static_cast<size_t>(q - 1), x.shape(), static_cast<size_t>(k), x.shape().size());
  if (!(upd.shape() == want))
    return Status::error("input 'updates' has shape " + shape_to_string(upd.shape()) + "; expected " + shape_to_string(want) +
                         " for data " + shape_to_string(x.shape()) + " and indices " + shape_to_string(ind.shape()));
  const int64_t tuples = product(ind.shape(), 0, static_cast<size_t>(q - 1));
  for (int64_t t = 0; t < tuples && k > 0; ++t)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t v = ind.int_at(t * k + j), n = x.dim(static_cast<int>(j));
      if (wrap_index(v, n) < 0) return index_error(v, static_cast<int>(j), n, x.shape());
    }
  const size_t es = dtype_size(x.dtype());
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  std::memcpy(y.mutable_raw(), x.raw(), y.nbytes());
  const int64_t slice = product(x.shape(), static_cast<size_t>(k), x.shape().size());
  const auto* src = static_cast<const unsigned char*>(upd.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const int64_t eb = static_cast<int64_t>(es);
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = 0;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t n = x.dim(static_cast<int>(j));
      off = off * n + wrap_index(ind.int_at(t * k + j), n);
    }
    put(x.dtype(), es, dst + off * slice * eb, src + t * slice * eb, slice, *red);
  }
  return Status::ok();
}

// ------------------------------------------ GatherElements, ScatterElements

namespace {

// The shared checks of GatherElements and ScatterElements: indices of the
// data's rank, no larger than the data off the axis (each index addresses an
// element of data); every index in range. Returns the normalized axis.
Expected<int> check_elements(const Tensor& x, const Tensor& ind, int64_t axis_attr) {
  const int r = x.rank();
  if (r < 1) return Status::error("input 'data' must have rank >= 1, got a scalar");
  if (ind.rank() != r)
    return Status::error("input 'indices' " + shape_to_string(ind.shape()) + " must have the rank of data " +
                         shape_to_string(x.shape()));
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(axis_attr, r, "axis"));
  for (int d = 0; d < r; ++d)
    if (d != axis && ind.dim(d) > x.dim(d))
      return Status::error("input 'indices' " + shape_to_string(ind.shape()) + " is larger than data " +
                           shape_to_string(x.shape()) + " on axis " + to_string(d));
  const int64_t n = x.dim(axis);
  for (int64_t i = 0; i < ind.numel(); ++i) {
    const int64_t v = ind.int_at(i);
    if (wrap_index(v, n) < 0) return index_error(v, axis, n, x.shape());
  }
  return axis;
}

// Calls fn(i, data_offset) for element i of indices: the data offset of its
// position with the axis coordinate replaced by the index.
template <class Fn> void walk_elements(const Tensor& x, const Tensor& ind, int axis, Fn&& fn) {
  Shape st[1] = {strides_of(x.shape())};
  const int64_t axis_stride = st[0][static_cast<size_t>(axis)];
  st[0][static_cast<size_t>(axis)] = 0;
  const int64_t n = x.dim(axis);
  for_each_broadcast(ind.shape(), st, [&](int64_t i, const int64_t* off) {
    fn(i, off[0] + wrap_index(ind.int_at(i), n) * axis_stride);
  });
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareGatherElements(const Node& node, int64_t /*opset*/) {
  return prepared_int(node, "axis", 0);
}

// out[.., i_axis, ..] = data[.., indices[.., i_axis, ..], ..]; out has the indices' shape.
Status GatherElements(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "data"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "indices"));
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_attr, ctx.prepared<int64_t>(PrepareGatherElements));
  SARAI_ASSIGN_OR_RETURN(int axis, check_elements(x, ind, *axis_attr));
  Tensor& y = ctx.allocate_output(0, x.dtype(), ind.shape());
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const size_t es = dtype_size(x.dtype());
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const int64_t eb = static_cast<int64_t>(es);
  walk_elements(x, ind, axis, [&](int64_t i, int64_t off) { std::memcpy(dst + i * eb, src + off * eb, es); });
  return Status::ok();
}

// axis and reduction (ScatterElements from opset 16; Scatter has none).
struct ScatterElementsAttrs {
  int64_t axis = 0;
  Reduction reduction = Reduction::kNone;
};

Expected<std::shared_ptr<const void>> PrepareScatterElements(const Node& node, int64_t opset) {
  SARAI_ASSIGN_OR_RETURN(auto red, prepare_reduction(node, opset));
  const Attribute* a = node.find_attr("axis");
  return prepared_data(ScatterElementsAttrs{a ? a->i : 0, *static_cast<const Reduction*>(red.get())});
}

// out = data, then out[.., indices[.., j, ..], ..] takes (or is combined
// with) updates[.., j, ..], in order.
Status ScatterElements(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "data"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "indices"));
  SARAI_RETURN_IF_ERROR(need_input(ctx, 2, "updates"));
  const Tensor &x = ctx.input(0), &ind = ctx.input(1), &upd = ctx.input(2);
  SARAI_RETURN_IF_ERROR(same_dtype(upd, "updates", x));
  SARAI_ASSIGN_OR_RETURN(const ScatterElementsAttrs* at, ctx.prepared<ScatterElementsAttrs>(PrepareScatterElements));
  SARAI_RETURN_IF_ERROR(check_reduction(at->reduction, x.dtype()));
  if (!(upd.shape() == ind.shape()))
    return Status::error("input 'updates' has shape " + shape_to_string(upd.shape()) + "; it must be the indices', " +
                         shape_to_string(ind.shape()));
  SARAI_ASSIGN_OR_RETURN(int axis, check_elements(x, ind, at->axis));
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  std::memcpy(y.mutable_raw(), x.raw(), y.nbytes());
  const size_t es = dtype_size(x.dtype());
  const auto* src = static_cast<const unsigned char*>(upd.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const int64_t eb = static_cast<int64_t>(es);
  walk_elements(x, ind, axis, [&](int64_t i, int64_t off) { put(x.dtype(), es, dst + off * eb, src + i * eb, 1, at->reduction); });
  return Status::ok();
}

// --------------------------------------------------------------------- Tile

// out dim d = data dim d * repeats[d]; out[c] = data[c mod data dims].
Status Tile(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "input"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "repeats"));
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(Shape rep, int_list_input(ctx, 1, "repeats"));
  const int r = x.rank();
  if (static_cast<int>(rep.size()) != r)
    return Status::error("input 'repeats' " + shape_to_string(rep) + " must hold one value per axis of input " +
                         shape_to_string(x.shape()));
  Shape out(x.shape());
  for (int d = 0; d < r; ++d) {
    if (rep[static_cast<size_t>(d)] < 0)
      return Status::error("input 'repeats' " + shape_to_string(rep) + " has a negative value");
    if (__builtin_mul_overflow(x.dim(d), rep[static_cast<size_t>(d)], &out[static_cast<size_t>(d)]))
      return Status::error("input 'repeats' " + shape_to_string(rep) + " makes input " + shape_to_string(x.shape()) +
                           " too large");
  }
  const size_t es = dtype_size(x.dtype());
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  if (r == 0) {
    std::memcpy(dst, src, es);
    return Status::ok();
  }
  // Row by row (all axes but the last): the source row repeated along it.
  const Shape xst = strides_of(x.shape());
  const int64_t last = x.dim(r - 1), reps = rep[static_cast<size_t>(r - 1)];
  const size_t row_bytes = static_cast<size_t>(last) * es;
  const int64_t rows = y.numel() / out[static_cast<size_t>(r - 1)];
  Shape idx(static_cast<size_t>(r - 1), 0);
  for (int64_t row = 0; row < rows; ++row) {
    int64_t s = 0;
    for (int d = 0; d + 1 < r; ++d) s += (idx[static_cast<size_t>(d)] % x.dim(d)) * xst[static_cast<size_t>(d)];
    for (int64_t j = 0; j < reps; ++j) {
      std::memcpy(dst, src + s * static_cast<int64_t>(es), row_bytes);
      dst += row_bytes;
    }
    for (int d = r - 1; d-- > 0;) {
      if (++idx[static_cast<size_t>(d)] < out[static_cast<size_t>(d)]) break;
      idx[static_cast<size_t>(d)] = 0;
    }
  }
  return Status::ok();
}

// -------------------------------------------------------------------- Trilu

Expected<std::shared_ptr<const void>> PrepareTrilu(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(bool upper, attr_flag(node, "upper", true));
  return prepared_data(upper);
}

// The upper (j - i >= k) or lower (j - i <= k) triangle of each of the last
// two dims' matrices; zeros elsewhere.
Status Trilu(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "input"));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return Status::error("input " + shape_to_string(x.shape()) + " must have rank >= 2");
  int64_t k = 0;
  if (ctx.has_input(1)) {
    SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "k"));
    if (ctx.input(1).numel() != 1)
      return Status::error("input 'k' must hold one value, got shape " + shape_to_string(ctx.input(1).shape()));
    k = ctx.input(1).int_at(0);
  }
  SARAI_ASSIGN_OR_RETURN(const bool* upper, ctx.prepared<bool>(PrepareTrilu));
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const int64_t R = x.dim(x.rank() - 2), C = x.dim(x.rank() - 1), mats = x.numel() / (R * C);
  const size_t es = dtype_size(x.dtype());
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < R; ++i) {
      const size_t off = static_cast<size_t>((m * R + i) * C) * es;
      // Kept columns: [max(0, i + k), C) for upper, [0, min(C, i + k + 1)) for lower.
      int64_t lo = 0, hi = C;
      if (*upper) lo = std::clamp<int64_t>(k >= C ? C : k <= -R ? 0 : i + k, 0, C);
      else hi = std::clamp<int64_t>(k >= C ? C : k < -R ? 0 : i + k + 1, 0, C);
      std::memset(dst + off, 0, static_cast<size_t>(C) * es);
      if (hi > lo) std::memcpy(dst + off + static_cast<size_t>(lo) * es, src + off + static_cast<size_t>(lo) * es, static_cast<size_t>(hi - lo) * es);
    }
  return Status::ok();
}

// ------------------------------------------------------------------ EyeLike

struct EyeLikeAttrs {
  bool has_dtype = false;
  DType dtype = DType::kUndefined;
  int64_t k = 0;
};

Expected<std::shared_ptr<const void>> PrepareEyeLike(const Node& node, int64_t /*opset*/) {
  EyeLikeAttrs a;
  a.k = node.attr_int("k", 0);
  if (const Attribute* d = node.find_attr("dtype")) {
    if (d->i < INT32_MIN || d->i > INT32_MAX || !dtype_from_onnx(static_cast<int32_t>(d->i), &a.dtype) ||
        dtype_size(a.dtype) == 0)
      return Status::error("attribute 'dtype' is " + to_string(d->i) + ", not a supported tensor dtype");
    a.has_dtype = true;
  }
  return prepared_data(a);
}

// A 2-D tensor of the input's shape: ones on the diagonal j = i + k, zeros elsewhere.
Status EyeLike(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'input'");
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) return Status::error("input " + shape_to_string(x.shape()) + " must be 2-D");
  SARAI_ASSIGN_OR_RETURN(const EyeLikeAttrs* a, ctx.prepared<EyeLikeAttrs>(PrepareEyeLike));
  const DType t = a->has_dtype ? a->dtype : x.dtype();
  if (dtype_size(t) == 0) return Status::error(std::string("output dtype ") + dtype_name(t) + " is not supported");
  Tensor& y = ctx.allocate_output_zeroed(0, t, x.shape());
  if (ctx.skip_compute(y)) return Status::ok();
  const int64_t R = x.dim(0), C = x.dim(1);
  const size_t es = dtype_size(t);
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  if (a->k >= C || a->k <= -R) return Status::ok();
  for (int64_t i = std::max<int64_t>(0, -a->k); i < R && i + a->k < C; ++i)
    write_one(t, dst + static_cast<size_t>(i * C + i + a->k) * es);
  return Status::ok();
}

// ------------------------------------------------- DepthToSpace, SpaceToDepth

struct BlockAttrs {
  int64_t blocksize = 0;
  bool crd = false;
};

Expected<std::shared_ptr<const void>> PrepareDepthToSpace(const Node& node, int64_t /*opset*/) {
  BlockAttrs a;
  const Attribute* b = node.find_attr("blocksize");
  if (!b) return Status::error("missing required attribute 'blocksize'");
  if (b->i < 1 || b->i > (int64_t{1} << 31))
    return Status::error("attribute 'blocksize' is " + to_string(b->i) + "; it must be positive");
  a.blocksize = b->i;
  const std::string_view m = node.attr_string_view("mode", "DCR");
  if (m == "CRD") a.crd = true;
  else if (m != "DCR") return Status::error("attribute 'mode' is '" + std::string(m) + "'; expected DCR or CRD");
  return prepared_data(a);
}

Expected<std::shared_ptr<const void>> PrepareSpaceToDepth(const Node& node, int64_t opset) {
  if (node.find_attr("mode")) return Status::error("SpaceToDepth has no attribute 'mode'");
  return PrepareDepthToSpace(node, opset);
}

namespace {
// DepthToSpace (to_space) or SpaceToDepth on [N, C, H, W] with block b.
// Space side [N, Cs, Hs*b, Ws*b], depth side [N, Cs*b*b, Hs, Ws]:
// depth channel (i*b + j)*Cs + c (DCR) or c*b*b + i*b + j (CRD) holds
// space (c, h*b + i, w*b + j).
Status block_rearrange(KernelContext& ctx, bool to_space, const BlockAttrs& a) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "input"));
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) return Status::error("input " + shape_to_string(x.shape()) + " must be 4-D [N, C, H, W]");
  const int64_t b = a.blocksize, N = x.dim(0);
  int64_t Cs, Hs, Ws;
  if (to_space) {
    if (x.dim(1) % (b * b) != 0)
      return Status::error("channels of input " + shape_to_string(x.shape()) + " are not a multiple of blocksize^2 = " +
                           to_string(b * b));
    Cs = x.dim(1) / (b * b), Hs = x.dim(2), Ws = x.dim(3);
  } else {
    if (x.dim(2) % b != 0 || x.dim(3) % b != 0)
      return Status::error("height and width of input " + shape_to_string(x.shape()) +
                           " are not multiples of blocksize " + to_string(b));
    Cs = x.dim(1), Hs = x.dim(2) / b, Ws = x.dim(3) / b;
  }
  // Only an empty input can make these overflow (H or W of 0 divides by any b).
  int64_t h = Hs, w = Ws, cd = Cs;
  if (to_space ? (__builtin_mul_overflow(Hs, b, &h) || __builtin_mul_overflow(Ws, b, &w))
               : (__builtin_mul_overflow(Cs, b * b, &cd)))
    return Status::error("blocksize " + to_string(b) + " makes input " + shape_to_string(x.shape()) + " too large");
  const Shape out = to_space ? Shape{N, Cs, h, w} : Shape{N, cd, Hs, Ws};
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const size_t es = dtype_size(x.dtype());
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const int64_t Cd = Cs * b * b, Hsp = Hs * b, Wsp = Ws * b;
  // One row of Ws elements per (n, c, i, j, h): contiguous on the depth
  // side, every b-th element on the space side.
  const int64_t sstride = to_space ? 1 : b, dstride = to_space ? b : 1;
  parallel_for(N * Cs * b * b, std::max<int64_t>(1, 16384 / std::max<int64_t>(Hs * Ws, 1)), [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t j = t % b, i = (t / b) % b, c = (t / (b * b)) % Cs, n = t / (b * b * Cs);
      const int64_t cd = a.crd ? c * b * b + i * b + j : (i * b + j) * Cs + c;
      for (int64_t h = 0; h < Hs; ++h) {
        const int64_t depth_off = ((n * Cd + cd) * Hs + h) * Ws;
        const int64_t space_off = ((n * Cs + c) * Hsp + h * b + i) * Wsp + j;
        const int64_t so = to_space ? depth_off : space_off, d = to_space ? space_off : depth_off;
        strided_copy(dst + static_cast<size_t>(d) * es, dstride, src + static_cast<size_t>(so) * es, sstride, Ws, es);
      }
    }
  });
  return Status::ok();
}
}  // namespace

Status DepthToSpace(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const BlockAttrs* a, ctx.prepared<BlockAttrs>(PrepareDepthToSpace));
  return block_rearrange(ctx, true, *a);
}

Status SpaceToDepth(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const BlockAttrs* a, ctx.prepared<BlockAttrs>(PrepareSpaceToDepth));
  return block_rearrange(ctx, false, *a);
}

// ----------------------------------------------------------------- Compress

Expected<std::shared_ptr<const void>> PrepareCompress(const Node& node, int64_t /*opset*/) {
  return prepare_optional_axis(node);
}

// The slices along axis whose condition is true (without an axis: the
// elements of the flattened input). A condition shorter than the axis
// drops the rest; entries past the axis must be false.
Status Compress(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "input"));
  if (!ctx.has_input(1)) return Status::error("missing required input 'condition'");
  const Tensor &x = ctx.input(0), &cond = ctx.input(1);
  if (cond.dtype() != DType::kBool)
    return Status::error(std::string("input 'condition' must be bool, got ") + dtype_name(cond.dtype()));
  if (cond.rank() != 1) return Status::error("input 'condition' must be 1-D, got shape " + shape_to_string(cond.shape()));
  SARAI_ASSIGN_OR_RETURN(const OptionalAxis* oa, ctx.prepared<OptionalAxis>(PrepareCompress));
  int64_t outer = 1, n = x.numel(), inner = 1;
  int axis = 0;
  if (oa->has) {
    SARAI_ASSIGN_OR_RETURN(axis, normalize_axis(oa->axis, x.rank(), "axis"));
    outer = product(x.shape(), 0, static_cast<size_t>(axis));
    n = x.dim(axis);
    inner = product(x.shape(), static_cast<size_t>(axis) + 1, x.shape().size());
  }
  const auto* c = cond.data<uint8_t>();
  int64_t kept = 0;
  for (int64_t i = 0; i < cond.numel(); ++i) {
    if (!c[i]) continue;
    if (i >= n)
      return Status::error("input 'condition' is true at " + to_string(i) + ", past the " + to_string(n) +
                           " slices of input " + shape_to_string(x.shape()));
    ++kept;
  }
  Shape out = oa->has ? x.shape() : Shape{kept};
  if (oa->has) out[static_cast<size_t>(axis)] = kept;
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0) return Status::ok();
  const size_t es = dtype_size(x.dtype()), bytes = static_cast<size_t>(inner) * es;
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  const int64_t m = std::min(n, cond.numel());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < m; ++i)
      if (c[i]) {
        std::memcpy(dst, src + static_cast<size_t>(o * n + i) * bytes, bytes);
        dst += bytes;
      }
  return Status::ok();
}

// ---------------------------------------------------------- ReverseSequence

struct ReverseSequenceAttrs {
  int time_axis = 0, batch_axis = 1;
};

Expected<std::shared_ptr<const void>> PrepareReverseSequence(const Node& node, int64_t /*opset*/) {
  const int64_t t = node.attr_int("time_axis", 0), b = node.attr_int("batch_axis", 1);
  if ((t != 0 && t != 1) || (b != 0 && b != 1) || t == b)
    return Status::error("attributes 'time_axis' " + to_string(t) + " and 'batch_axis' " + to_string(b) +
                         " must be 0 and 1 in some order");
  return prepared_data(ReverseSequenceAttrs{static_cast<int>(t), static_cast<int>(b)});
}

// For each batch entry b, its first sequence_lens[b] time steps reversed;
// the rest copied.
Status ReverseSequence(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "input"));
  SARAI_RETURN_IF_ERROR(need_index_input(ctx, 1, "sequence_lens"));
  const Tensor &x = ctx.input(0), &lens = ctx.input(1);
  SARAI_ASSIGN_OR_RETURN(const ReverseSequenceAttrs* a, ctx.prepared<ReverseSequenceAttrs>(PrepareReverseSequence));
  if (x.rank() < 2) return Status::error("input " + shape_to_string(x.shape()) + " must have rank >= 2");
  const int64_t T = x.dim(a->time_axis), B = x.dim(a->batch_axis);
  if (lens.rank() != 1 || lens.dim(0) != B)
    return Status::error("input 'sequence_lens' " + shape_to_string(lens.shape()) + " must be [" + to_string(B) +
                         "] (the batch size of input " + shape_to_string(x.shape()) + ")");
  for (int64_t b = 0; b < B; ++b) {
    const int64_t l = lens.int_at(b);
    if (l < 0 || l > T)
      return Status::error("sequence_lens[" + to_string(b) + "] is " + to_string(l) + "; it must be in [0, " +
                           to_string(T) + "]");
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const size_t es = dtype_size(x.dtype());
  const size_t bytes = static_cast<size_t>(product(x.shape(), 2, x.shape().size())) * es;
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  auto at = [&](int64_t t, int64_t b) {
    return static_cast<size_t>(a->time_axis == 0 ? t * B + b : b * T + t) * bytes;
  };
  for (int64_t b = 0; b < B; ++b) {
    const int64_t l = lens.int_at(b);
    for (int64_t t = 0; t < T; ++t) std::memcpy(dst + at(t, b), src + at(t < l ? l - 1 - t : t, b), bytes);
  }
  return Status::ok();
}

// ------------------------------------------------------------------- Unique

struct UniqueAttrs {
  OptionalAxis axis;
  bool sorted = true;
};

Expected<std::shared_ptr<const void>> PrepareUnique(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(bool sorted, attr_flag(node, "sorted", true));
  const Attribute* a = node.find_attr("axis");
  return prepared_data(UniqueAttrs{{a != nullptr, a ? a->i : 0}, sorted});
}

namespace {
// A total order on values: NaN after everything, equal to NaN.
template <class T> int compare_values(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    const bool na = std::isnan(a), nb = std::isnan(b);
    if (na || nb) return na == nb ? 0 : (na ? 1 : -1);
  }
  return a < b ? -1 : (b < a ? 1 : 0);
}

template <class T>
Status unique_impl(KernelContext& ctx, const Tensor& x, bool has_axis, int axis, bool sorted) {
  int64_t outer = 1, n = x.numel(), inner = 1;
  if (has_axis) {
    outer = product(x.shape(), 0, static_cast<size_t>(axis));
    n = x.dim(axis);
    inner = product(x.shape(), static_cast<size_t>(axis) + 1, x.shape().size());
  }
  const T* v = x.data<T>();
  // Slice s is the elements v[(o * n + s) * inner + i], compared in (o, i) order.
  auto cmp = [&](int64_t s, int64_t t) {
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int c = compare_values(v[(o * n + s) * inner + i], v[(o * n + t) * inner + i]);
        if (c) return c;
      }
    return 0;
  };
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t s, int64_t t) { return cmp(s, t) < 0; });
  // Groups of equal slices, in sorted order: each group's first slice (the
  // smallest index, the sort being stable) and its size.
  std::vector<int64_t> first, count, group_of(static_cast<size_t>(n));
  for (size_t p = 0; p < order.size(); ++p) {
    if (p == 0 || cmp(order[p - 1], order[p]) != 0) {
      first.push_back(order[p]);
      count.push_back(0);
    }
    ++count.back();
    group_of[static_cast<size_t>(order[p])] = static_cast<int64_t>(first.size()) - 1;
  }
  const size_t g = first.size();
  std::vector<int64_t> pos(g);  // output position of each group
  std::iota(pos.begin(), pos.end(), 0);
  if (!sorted) {
    std::vector<int64_t> by_first(g);
    std::iota(by_first.begin(), by_first.end(), 0);
    std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return first[static_cast<size_t>(a)] < first[static_cast<size_t>(b)]; });
    for (size_t k = 0; k < g; ++k) pos[static_cast<size_t>(by_first[k])] = static_cast<int64_t>(k);
  }
  const int64_t G = static_cast<int64_t>(g);
  Shape ys = has_axis ? x.shape() : Shape{G};
  if (has_axis) ys[static_cast<size_t>(axis)] = G;
  Tensor& y = ctx.allocate_output(0, x.dtype(), ys);
  T* yo = y.mutable_data<T>();
  for (size_t k = 0; k < g; ++k)
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(yo + (o * G + pos[k]) * inner, v + (o * n + first[k]) * inner, static_cast<size_t>(inner) * sizeof(T));
  if (ctx.wants_output(1)) {
    int64_t* p = ctx.allocate_output(1, DType::kInt64, Shape{G}).mutable_data<int64_t>();
    for (size_t k = 0; k < g; ++k) p[pos[k]] = first[k];
  }
  if (ctx.wants_output(2)) {
    int64_t* p = ctx.allocate_output(2, DType::kInt64, Shape{n}).mutable_data<int64_t>();
    for (int64_t s = 0; s < n; ++s) p[s] = pos[static_cast<size_t>(group_of[static_cast<size_t>(s)])];
  }
  if (ctx.wants_output(3)) {
    int64_t* p = ctx.allocate_output(3, DType::kInt64, Shape{G}).mutable_data<int64_t>();
    for (size_t k = 0; k < g; ++k) p[pos[k]] = count[k];
  }
  return Status::ok();
}
}  // namespace

// The distinct elements (or slices along axis), sorted or in order of first
// occurrence, with each one's first index, each input's group and the
// group sizes.
Status Unique(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(need_input(ctx, 0, "X"));
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const UniqueAttrs* ua, ctx.prepared<UniqueAttrs>(PrepareUnique));
  const OptionalAxis* oa = &ua->axis;
  const bool sorted = ua->sorted;
  int axis = 0;
  if (oa->has) {
    SARAI_ASSIGN_OR_RETURN(axis, normalize_axis(oa->axis, x.rank(), "axis"));
  }
  switch (x.dtype()) {
    case DType::kFloat64: return unique_impl<double>(ctx, x, oa->has, axis, sorted);
    case DType::kBool: return unique_impl<uint8_t>(ctx, x, oa->has, axis, sorted);
    default: break;
  }
  Status st = Status::error(std::string("input 'X' has dtype ") + dtype_name(x.dtype()) +
                            "; Unique supports float32, float64, bool and the integer dtypes");
  visit_numeric(x.dtype(), [&](auto z) { st = unique_impl<decltype(z)>(ctx, x, oa->has, axis, sorted); });
  return st;
}

}  // namespace sarai::kernels
