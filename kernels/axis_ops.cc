// Ops along one axis: LogSoftmax, Hardmax (float32; Softmax's opset rules),
// CumSum and TopK.
//
// Each views its input as [outer, n, inner] around the axis (n values
// `inner` elements apart) and handles the outer * inner groups
// independently; LogSoftmax, Hardmax and CumSum in parallel.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kGrainElems = 16384;

struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};

// [outer, n, inner] of shape s around axis; with coerce_2d (Softmax-style
// ops before opset 13) n covers every dim from `axis` on.
AxisView axis_view(const Shape& s, int axis, bool coerce_2d) {
  AxisView v;
  const size_t ax = static_cast<size_t>(axis);
  for (size_t d = 0; d < ax; ++d) v.outer *= s[d];
  if (coerce_2d) {
    for (size_t d = ax; d < s.size(); ++d) v.n *= s[d];
  } else {
    v.n = ax < s.size() ? s[ax] : 1;
    for (size_t d = ax + 1; d < s.size(); ++d) v.inner *= s[d];
  }
  return v;
}

// The axis of a Softmax-family op: before opset 13 the input is coerced to
// 2-D at `axis` (default 1; axis == rank allowed); from 13 on it is one dim
// (default -1).
Expected<AxisView> softmax_family_view(const KernelContext& ctx, const Tensor& x, int64_t axis_attr) {
  const int rank = x.rank();
  const bool coerce_2d = ctx.opset() < 13;
  int axis;
  if (coerce_2d) {
    if (axis_attr < -rank || axis_attr > rank)
      return Status::error("attribute 'axis' " + std::to_string(axis_attr) + " is out of range for rank " +
                           std::to_string(rank));
    axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  } else {
    SARAI_ASSIGN_OR_RETURN(axis, normalize_axis(axis_attr, rank, "attribute 'axis'"));
  }
  return axis_view(x.shape(), axis, coerce_2d);
}

Status require_float_input(const KernelContext& ctx, const char* name) {
  if (!ctx.has_input(0)) return Status::error(std::string("missing required input '") + name + "' (input 0)");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input '") + name + "' must be float32, got " + dtype_name(x.dtype()));
  return Status::ok();
}

// fn(group_base, ...) for each of the outer * inner groups, in parallel.
template <class Fn>
void for_each_group(const AxisView& v, Fn fn) {
  parallel_for(v.outer * v.inner, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(v.n, 1)),
               [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) fn((w / v.inner) * v.n * v.inner + w % v.inner);
  });
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareLogSoftmax(const Node& node, int64_t opset) {
  return prepared_int(node, "axis", opset < 13 ? 1 : -1);
}

// LogSoftmax: x - max - log(sum(exp(x - max))) per group, the sum in double.
Status LogSoftmax(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float_input(ctx, "input"));
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis, ctx.prepared<int64_t>(PrepareLogSoftmax));
  SARAI_ASSIGN_OR_RETURN(const AxisView v, softmax_family_view(ctx, x, *axis));
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (ctx.skip_compute(y) || y.numel() == 0) return Status::ok();
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  for_each_group(v, [&](int64_t base) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < v.n; ++j) mx = std::max(mx, px[base + j * v.inner]);
    double sum = 0;
    for (int64_t j = 0; j < v.n; ++j) sum += std::exp(static_cast<double>(px[base + j * v.inner]) - mx);
    const double lse = static_cast<double>(mx) + std::log(sum);
    for (int64_t j = 0; j < v.n; ++j) py[base + j * v.inner] = static_cast<float>(px[base + j * v.inner] - lse);
  });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareHardmax(const Node& node, int64_t opset) {
  return prepared_int(node, "axis", opset < 13 ? 1 : -1);
}

// Hardmax: 1 at the first maximum of each group, 0 elsewhere.
Status Hardmax(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float_input(ctx, "input"));
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis, ctx.prepared<int64_t>(PrepareHardmax));
  SARAI_ASSIGN_OR_RETURN(const AxisView v, softmax_family_view(ctx, x, *axis));
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (ctx.skip_compute(y) || y.numel() == 0) return Status::ok();
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  for_each_group(v, [&](int64_t base) {
    int64_t at = 0;
    for (int64_t j = 1; j < v.n; ++j)
      if (px[base + j * v.inner] > px[base + at * v.inner]) at = j;
    for (int64_t j = 0; j < v.n; ++j) py[base + j * v.inner] = j == at ? 1.f : 0.f;
  });
  return Status::ok();
}

// CumSum(x, axis): running sums along the scalar `axis` input, in the
// element type (integers wrap); exclusive starts each sum at 0 before the
// element, reverse runs from the end.
namespace {
template <class T, bool = std::is_integral_v<T>> struct Accum { using type = T; };
template <class T> struct Accum<T, true> { using type = std::make_unsigned_t<T>; };
struct CumSumParams {
  bool exclusive = false, reverse = false;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareCumSum(const Node& node, int64_t) {
  CumSumParams p;
  SARAI_ASSIGN_OR_RETURN(p.exclusive, attr_flag(node, "exclusive", false));
  SARAI_ASSIGN_OR_RETURN(p.reverse, attr_flag(node, "reverse", false));
  return prepared_data(p);
}

Status CumSum(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'x' (input 0)");
  if (!ctx.has_input(1)) return Status::error("missing required input 'axis' (input 1)");
  SARAI_ASSIGN_OR_RETURN(const CumSumParams* p, ctx.prepared<CumSumParams>(PrepareCumSum));
  const Tensor& x = ctx.input(0);
  const Tensor& a = ctx.input(1);
  if ((a.dtype() != DType::kInt64 && a.dtype() != DType::kInt32) || a.numel() != 1 || a.rank() > 1)
    return Status::error(std::string("input 'axis' must be an int32 or int64 scalar, got ") + dtype_name(a.dtype()) +
                         " " + shape_to_string(a.shape()));
  SARAI_ASSIGN_OR_RETURN(const int axis, normalize_axis(a.int_at(0), x.rank(), "input 'axis'"));
  const AxisView v = axis_view(x.shape(), axis, false);
  const bool excl = p->exclusive, rev = p->reverse;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    // Integers add in their unsigned type (wrapping).
    using U = typename Accum<T>::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
    if (ctx.skip_compute(y) || y.numel() == 0) return;
    const T* px = x.data<T>();
    T* py = y.mutable_data<T>();
    for_each_group(v, [&](int64_t base) {
      U acc{};
      for (int64_t k = 0; k < v.n; ++k) {
        const int64_t off = base + (rev ? v.n - 1 - k : k) * v.inner;
        const U xv = static_cast<U>(px[off]);
        if (excl) {
          py[off] = static_cast<T>(acc);
          acc = static_cast<U>(acc + xv);
        } else {
          acc = static_cast<U>(acc + xv);
          py[off] = static_cast<T>(acc);
        }
      }
    });
  };
  bool ok = true;
  switch (x.dtype()) {
    case DType::kFloat32: run(float{}); break;
    case DType::kFloat64: run(double{}); break;
    case DType::kInt32: run(int32_t{}); break;
    case DType::kInt64: run(int64_t{}); break;
    case DType::kUInt32: run(uint32_t{}); break;
    case DType::kUInt64: run(uint64_t{}); break;
    default: ok = false;
  }
  if (!ok)
    return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                         " for input 'x' (supported: float32, float64, int32, int64, uint32, uint64)");
  return Status::ok();
}

// TopK(X, K): the k largest (largest = 0: smallest) values along `axis`
// (default -1) and their int64 indices; equal values keep the lower index
// first, NaN counts as the largest. Before opset 10 k is an attribute. The
// output is always sorted (sorted = 0 leaves the order open).
namespace {
struct TopKParams {
  int64_t axis = -1, k = -1;  // k: the attribute (< 10)
  bool largest = true;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareTopK(const Node& node, int64_t opset) {
  TopKParams p;
  p.axis = node.attr_int("axis", -1);
  if (opset < 10) {
    p.k = node.attr_int("k", -1);
    if (p.k < 0) return Status::error("attribute 'k' must be given and non-negative, got " + std::to_string(p.k));
  }
  SARAI_ASSIGN_OR_RETURN(p.largest, attr_flag(node, "largest", true));
  SARAI_ASSIGN_OR_RETURN(const bool sorted, attr_flag(node, "sorted", true));
  (void)sorted;
  return prepared_data(p);
}

Status TopK(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'X' (input 0)");
  SARAI_ASSIGN_OR_RETURN(const TopKParams* p, ctx.prepared<TopKParams>(PrepareTopK));
  const Tensor& x = ctx.input(0);
  int64_t k = p->k;
  if (ctx.opset() >= 10) {
    if (!ctx.has_input(1)) return Status::error("missing required input 'K' (input 1)");
    const Tensor& kt = ctx.input(1);
    if (kt.dtype() != DType::kInt64 || kt.numel() != 1 || kt.rank() > 1)
      return Status::error(std::string("input 'K' must be a 1-element int64 tensor, got ") + dtype_name(kt.dtype()) +
                           " " + shape_to_string(kt.shape()));
    k = kt.int_at(0);
  }
  if (x.rank() == 0) return Status::error("input 'X' must have rank >= 1, got a scalar");
  SARAI_ASSIGN_OR_RETURN(const int axis, normalize_axis(p->axis, x.rank(), "attribute 'axis'"));
  const AxisView v = axis_view(x.shape(), axis, false);
  if (k < 0 || k > v.n)
    return Status::error("k = " + std::to_string(k) + " is out of range for axis " + std::to_string(axis) +
                         " of size " + std::to_string(v.n));
  Shape out_shape = x.shape();
  out_shape[static_cast<size_t>(axis)] = k;
  const bool largest = p->largest;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor& values = ctx.allocate_output(0, x.dtype(), out_shape);
    Tensor& indices = ctx.allocate_output(1, DType::kInt64, out_shape);
    int64_t* idx = ctx.workspace<int64_t>(v.n);
    if (values.numel() == 0) return;
    const T* px = x.data<T>();
    T* pv = values.mutable_data<T>();
    int64_t* pi = indices.mutable_data<int64_t>();
    for (int64_t g = 0; g < v.outer * v.inner; ++g) {
      const int64_t o = g / v.inner, i = g % v.inner;
      const T* xg = px + o * v.n * v.inner + i;
      for (int64_t j = 0; j < v.n; ++j) idx[j] = j;
      // a before b: the more extreme value (NaN most extreme when largest,
      // least when smallest), then the lower index.
      auto before = [&](int64_t a, int64_t b) {
        const T va = xg[a * v.inner], vb = xg[b * v.inner];
        if constexpr (std::is_floating_point_v<T>) {
          const bool na = std::isnan(va), nb = std::isnan(vb);
          if (na || nb) {
            if (na && nb) return a < b;
            return largest ? na : nb;
          }
        }
        if (va != vb) return largest ? va > vb : va < vb;
        return a < b;
      };
      std::partial_sort(idx, idx + k, idx + v.n, before);
      const int64_t ob = o * k * v.inner + i;
      for (int64_t j = 0; j < k; ++j) {
        pv[ob + j * v.inner] = xg[idx[j] * v.inner];
        pi[ob + j * v.inner] = idx[j];
      }
    }
  };
  if (!visit_float_or_int(x.dtype(), run))
    return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                         " for input 'X' (supported: float32, float64 and integer types)");
  return Status::ok();
}

}  // namespace sarai::kernels

// Det: the determinant of each [M, M] matrix of X [..., M, M] (float32 or
// float64), by LU decomposition with partial pivoting in double.
namespace sarai::kernels {

Status Det(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'X' (input 0)");
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  if (rank < 2 || x.dim(rank - 1) != x.dim(rank - 2))
    return Status::error("input 'X' must be [..., M, M], got " + shape_to_string(x.shape()));
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kFloat64)
    return Status::error(std::string("input 'X' must be float32 or float64, got ") + dtype_name(x.dtype()));
  const int64_t m = x.dim(rank - 1);
  Shape out(x.shape().begin(), x.shape().end() - 2);
  if (has_zero_dim(out)) {  // no matrices (m * m may not even fit)
    ctx.allocate_output(0, x.dtype(), out);
    return Status::ok();
  }
  double* a = ctx.workspace<double>(m * m);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor& y = ctx.allocate_output(0, x.dtype(), out);
    const T* px = x.data<T>();
    T* py = y.mutable_data<T>();
    for (int64_t b = 0; b < y.numel(); ++b) {
      for (int64_t i = 0; i < m * m; ++i) a[i] = static_cast<double>(px[b * m * m + i]);
      double det = 1;
      for (int64_t c = 0; c < m && det != 0; ++c) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < m; ++r)
          if (std::fabs(a[r * m + c]) > std::fabs(a[piv * m + c])) piv = r;
        if (a[piv * m + c] == 0) {
          det = 0;
          break;
        }
        if (piv != c) {
          for (int64_t k = 0; k < m; ++k) std::swap(a[c * m + k], a[piv * m + k]);
          det = -det;
        }
        det *= a[c * m + c];
        for (int64_t r = c + 1; r < m; ++r) {
          const double f = a[r * m + c] / a[c * m + c];
          for (int64_t k = c; k < m; ++k) a[r * m + k] -= f * a[c * m + k];
        }
      }
      py[b] = static_cast<T>(det);
    }
  };
  if (x.dtype() == DType::kFloat32) run(float{});
  else run(double{});
  return Status::ok();
}

}  // namespace sarai::kernels
