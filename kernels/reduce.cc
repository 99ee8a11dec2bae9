// The Reduce family (ReduceSum, ReduceMean, ReduceMax, ReduceMin,
// ReduceProd, ReduceL1, ReduceL2, ReduceLogSum, ReduceLogSumExp,
// ReduceSumSquare) and ArgMax / ArgMin.
//
// Every reduction is a fold: acc = combine(acc, pre(x)) from the op's
// identity, then finish(acc, count). Floats fold in double; integers fold in
// 64 bits with wrapping arithmetic (Sum, Prod, SumSquare, L1, Max, Min) or in
// double (Mean, L2, LogSum, LogSumExp), narrowed with saturation.
//
// The input's dims are coalesced into runs of kept and reduced dims (size-1
// dims dropped). The common layouts, [outer, reduced, inner] with any of the
// three absent, take a direct loop over rows or columns; anything else
// (e.g. axes = [0, 2] of a rank-3 tensor) takes a serial odometer walk.
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
constexpr int64_t kColumnBlock = 1024;

enum class Red { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

struct ReduceParams {
  Shape axes;  // the attribute (before the axes became an input)
  bool keepdims = true, noop_with_empty_axes = false;
};

// The first opset where `axes` is an input: 13 for ReduceSum, 18 for the rest.
int64_t axes_input_since(std::string_view op_type) { return op_type == "ReduceSum" ? 13 : 18; }

// The axes to reduce: the attribute before axes_input_since, else optional
// input 1 (empty when none is given).
Expected<Shape> reduce_axes(const KernelContext& ctx, const ReduceParams& p) {
  if (ctx.opset() < axes_input_since(ctx.node().op_type)) return p.axes;
  if (!ctx.has_input(1)) return Shape();
  const Tensor& a = ctx.input(1);
  if (a.dtype() != DType::kInt64 && a.dtype() != DType::kInt32)
    return Status::error(std::string("input 'axes' must be int64, got ") + dtype_name(a.dtype()));
  if (a.rank() > 1)
    return Status::error("input 'axes' must be 1-D, got shape " + shape_to_string(a.shape()));
  Shape v(static_cast<size_t>(a.numel()));
  for (int64_t i = 0; i < a.numel(); ++i) v[static_cast<size_t>(i)] = a.int_at(i);
  return v;
}

// Column blocks of the column path: up to kColumnBlock adjacent columns.
int64_t column_block(int64_t inner) { return std::min(inner, kColumnBlock); }

// double -> integer T, saturating (NaN gives 0).
template <class T> T saturate(double v) {
  if (std::isnan(v)) return T{0};
  if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
  return static_cast<T>(v);
}

// The fold of reduction R over elements of type T.
template <Red R, class T>
struct Fold {
  static constexpr bool kFloat = std::is_floating_point_v<T>;
  static constexpr bool kInDouble =
      kFloat || R == Red::kMean || R == Red::kL2 || R == Red::kLogSum || R == Red::kLogSumExp;
  // Integers keep their own type for Max/Min, else a 64-bit word of their signedness.
  using Acc = std::conditional_t<kInDouble, double,
                                 std::conditional_t<R == Red::kMax || R == Red::kMin, T,
                                                    std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>>;

  static Acc identity() {
    if constexpr (R == Red::kMax) {
      if constexpr (kInDouble) return -std::numeric_limits<double>::infinity();
      else return std::numeric_limits<T>::lowest();
    } else if constexpr (R == Red::kMin) {
      if constexpr (kInDouble) return std::numeric_limits<double>::infinity();
      else return std::numeric_limits<T>::max();
    } else if constexpr (R == Red::kProd) {
      return Acc{1};
    } else {
      return Acc{0};
    }
  }
  static Acc pre(T x) {
    const Acc v = static_cast<Acc>(x);
    if constexpr (R == Red::kL1) {
      if constexpr (kInDouble) return std::fabs(v);
      else if constexpr (std::is_signed_v<T>) return v < 0 ? static_cast<Acc>(uint64_t{0} - static_cast<uint64_t>(v)) : v;
      else return v;
    } else if constexpr (R == Red::kL2 || R == Red::kSumSquare) {
      if constexpr (kInDouble) return v * v;
      else return static_cast<Acc>(static_cast<uint64_t>(v) * static_cast<uint64_t>(v));
    } else if constexpr (R == Red::kLogSumExp) {
      return std::exp(v);
    } else {
      return v;
    }
  }
  static Acc combine(Acc a, Acc b) {
    if constexpr (R == Red::kMax) {
      if constexpr (kInDouble) return (std::isnan(b) || b > a) ? b : a;  // NaN propagates
      else return b > a ? b : a;
    } else if constexpr (R == Red::kMin) {
      if constexpr (kInDouble) return (std::isnan(b) || b < a) ? b : a;
      else return b < a ? b : a;
    } else if constexpr (R == Red::kProd) {
      if constexpr (kInDouble) return a * b;
      else return static_cast<Acc>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
    } else {
      if constexpr (kInDouble) return a + b;
      else return static_cast<Acc>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
    }
  }
  static T finish(Acc a, int64_t count) {
    if constexpr (kInDouble) {
      double v = a;
      if constexpr (R == Red::kMean) v = count == 0 ? std::numeric_limits<double>::quiet_NaN() : a / static_cast<double>(count);
      if constexpr (R == Red::kL2) v = std::sqrt(a);
      if constexpr (R == Red::kLogSum || R == Red::kLogSumExp) v = std::log(a);
      if constexpr (kFloat) return static_cast<T>(v);
      else return saturate<T>(v);
    } else {
      return static_cast<T>(a);
    }
  }
};

// out[o * inner + i] = fold over j of x[(o * red + j) * inner + i]. For
// inner > 1, acc_ws holds column_block(inner) accumulators per thread slot.
template <class F, class T, class Acc>
void reduce_outer_red_inner(const T* x, T* y, int64_t outer, int64_t red, int64_t inner, Acc* acc_ws) {
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(red, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const T* xr = x + o * red;
        Acc acc = F::identity();
        for (int64_t j = 0; j < red; ++j) acc = F::combine(acc, F::pre(xr[j]));
        y[o] = F::finish(acc, red);
      }
    });
    return;
  }
  // Column folds: blocks of up to kColumnBlock adjacent columns, read row by row.
  const int64_t block = column_block(inner);
  const int64_t nblocks = (inner + block - 1) / block;
  parallel_for(outer * nblocks, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(red * block, 1)),
               [&](int64_t b, int64_t e) {
    Acc* acc = acc_ws + thread_index() * block;
    for (int64_t w = b; w < e; ++w) {
      const int64_t o = w / nblocks;
      const int64_t i0 = (w % nblocks) * block;
      const int64_t n = std::min(block, inner - i0);
      std::fill(acc, acc + block, F::identity());
      for (int64_t j = 0; j < red; ++j) {
        const T* xr = x + (o * red + j) * inner + i0;
        for (int64_t i = 0; i < n; ++i) acc[i] = F::combine(acc[i], F::pre(xr[i]));
      }
      T* yr = y + o * inner + i0;
      for (int64_t i = 0; i < n; ++i) yr[i] = F::finish(acc[i], red);
    }
  });
}

// The layout of one reduction, computed from the input shape and axes.
struct Layout {
  Shape out_shape, kept_shape;  // kept_shape: the input's with reduced dims 1
  bool simple = false;          // [outer, red, inner] fits
  int64_t outer = 1, red = 1, inner = 1;
};

Expected<Layout> reduce_layout(const Shape& xs, const Shape& axes, bool keepdims) {
  const int rank = static_cast<int>(xs.size());
  Shape reduced(static_cast<size_t>(rank), axes.empty() ? 1 : 0);  // flags
  for (int64_t a : axes) {
    SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, rank, "axes value"));
    if (reduced[static_cast<size_t>(ax)])
      return Status::error("axes " + shape_to_string(axes) + " name axis " + std::to_string(ax) + " twice");
    reduced[static_cast<size_t>(ax)] = 1;
  }
  Layout l;
  l.kept_shape = xs;
  for (int d = 0; d < rank; ++d) {
    if (reduced[static_cast<size_t>(d)]) l.kept_shape[static_cast<size_t>(d)] = 1;
    if (!reduced[static_cast<size_t>(d)]) l.out_shape.push_back(xs[static_cast<size_t>(d)]);
    else if (keepdims) l.out_shape.push_back(1);
  }
  if (has_zero_dim(l.out_shape)) return l;  // nothing to compute
  // Runs of equal kind: sizes and whether the run is reduced. A reduced
  // dim of size 0 is kept as a run (the empty fold gives the identity).
  Shape run_size, run_reduced;
  for (int d = 0; d < rank; ++d) {
    const int64_t size = xs[static_cast<size_t>(d)];
    if (size == 1) continue;
    const int64_t r = reduced[static_cast<size_t>(d)];
    if (!run_size.empty() && run_reduced.back() == r) {
      if (__builtin_mul_overflow(run_size.back(), size, &run_size.back()))
        return Status::error("input 'data' " + shape_to_string(xs) + " has too many elements");
    } else {
      run_size.push_back(size);
      run_reduced.push_back(r);
    }
  }
  size_t k = 0;
  if (k < run_size.size() && !run_reduced[k]) l.outer = run_size[k++];
  if (k < run_size.size() && run_reduced[k]) l.red = run_size[k++];
  if (k < run_size.size() && !run_reduced[k]) l.inner = run_size[k++];
  l.simple = k == run_size.size();
  return l;
}

template <Red R, class T>
Status reduce_typed(KernelContext& ctx, const Tensor& x, const Layout& l) {
  using F = Fold<R, T>;
  using Acc = typename F::Acc;
  Tensor& y = ctx.allocate_output(0, x.dtype(), l.out_shape);
  if (y.numel() == 0) return Status::ok();
  if (l.simple) {
    Acc* acc = l.inner > 1 ? ctx.workspace<Acc>(column_block(l.inner) * thread_slots(ctx)) : nullptr;
    if (ctx.skip_compute(y)) return Status::ok();
    reduce_outer_red_inner<F>(x.data<T>(), y.mutable_data<T>(), l.outer, l.red, l.inner, acc);
    return Status::ok();
  }
  // General layout: walk the input once, folding each element into its output.
  const int64_t ny = y.numel();
  Acc* acc = ctx.workspace<Acc>(ny);
  if (ctx.skip_compute(y)) return Status::ok();
  std::fill(acc, acc + ny, F::identity());
  const T* px = x.data<T>();
  for_each_broadcast(x.shape(), {broadcast_strides(l.kept_shape, x.shape())},
                     [&](int64_t i, const int64_t* off) { acc[off[0]] = F::combine(acc[off[0]], F::pre(px[i])); });
  const int64_t count = x.numel() / ny;
  T* py = y.mutable_data<T>();
  for (int64_t i = 0; i < ny; ++i) py[i] = F::finish(acc[i], count);
  return Status::ok();
}

// One reduction: reads the axes, handles noop_with_empty_axes, dispatches on dtype.
template <Red R>
Status reduce(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'data' (input 0)");
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const ReduceParams* p, ctx.prepared<ReduceParams>(PrepareReduce));
  SARAI_ASSIGN_OR_RETURN(Shape axes, reduce_axes(ctx, *p));
  if (axes.empty() && p->noop_with_empty_axes) {
    ctx.set_output(0, x);
    return Status::ok();
  }
  SARAI_ASSIGN_OR_RETURN(Layout l, reduce_layout(x.shape(), axes, p->keepdims));
  Status st;
  auto run = [&](auto tag) { st = reduce_typed<R, decltype(tag)>(ctx, x, l); };
  switch (x.dtype()) {
    case DType::kFloat32: run(float{}); break;
    case DType::kFloat64: run(double{}); break;
    case DType::kInt32: run(int32_t{}); break;
    case DType::kInt64: run(int64_t{}); break;
    case DType::kUInt32: run(uint32_t{}); break;
    case DType::kUInt64: run(uint64_t{}); break;
    case DType::kInt8: run(int8_t{}); break;
    case DType::kUInt8: run(uint8_t{}); break;
    default:
      return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                           " for input 'data' (supported: float32, float64 and integer types of 8, 32 or 64 bits)");
  }
  return st;
}

}  // namespace

// The attributes, checked once: axes without a repeated value (a negative
// alias of another axis depends on the rank, checked per run), and the two
// flags 0 or 1 (ONNX Runtime reads a 2 as 0, this kernel read it as 1).
Expected<std::shared_ptr<const void>> PrepareReduce(const Node& node, int64_t opset) {
  ReduceParams p;
  const int64_t since = axes_input_since(node.op_type);
  if (opset < since) {
    const std::span<const int64_t> v = node.attr_ints_view("axes");
    p.axes.assign(v.begin(), v.end());
    if (const int64_t* r = first_repeat(p.axes))
      return Status::error("axes " + shape_to_string(p.axes) + " name axis " + std::to_string(*r) + " twice");
  }
  SARAI_ASSIGN_OR_RETURN(p.keepdims, attr_flag(node, "keepdims", true));
  if (opset >= since) {
    SARAI_ASSIGN_OR_RETURN(p.noop_with_empty_axes, attr_flag(node, "noop_with_empty_axes", false));
  }
  return prepared_data(std::move(p));
}
Expected<std::shared_ptr<const void>> PrepareReduceMean(const Node& node, int64_t opset) {
  return PrepareReduce(node, opset);
}

// Each op reduces over `axes` (all axes when none are given, or returns the
// input unchanged when axes come as an input, none are given and
// noop_with_empty_axes = 1); keepdims (default 1) keeps the reduced dims as
// 1. An empty reduction gives the identity: 0 (Sum, L1, L2, SumSquare),
// 1 (Prod), -inf (Max, LogSum, LogSumExp), +inf (Min; the type's limits for
// integers), NaN (Mean).
Status ReduceSum(KernelContext& ctx) { return reduce<Red::kSum>(ctx); }
Status ReduceMean(KernelContext& ctx) { return reduce<Red::kMean>(ctx); }
Status ReduceMax(KernelContext& ctx) { return reduce<Red::kMax>(ctx); }
Status ReduceMin(KernelContext& ctx) { return reduce<Red::kMin>(ctx); }
Status ReduceProd(KernelContext& ctx) { return reduce<Red::kProd>(ctx); }
Status ReduceL1(KernelContext& ctx) { return reduce<Red::kL1>(ctx); }
Status ReduceL2(KernelContext& ctx) { return reduce<Red::kL2>(ctx); }
Status ReduceLogSum(KernelContext& ctx) { return reduce<Red::kLogSum>(ctx); }
Status ReduceLogSumExp(KernelContext& ctx) { return reduce<Red::kLogSumExp>(ctx); }
Status ReduceSumSquare(KernelContext& ctx) { return reduce<Red::kSumSquare>(ctx); }

// ArgMax / ArgMin: the int64 index of the first (select_last_index = 1:
// last) extreme along `axis` (default 0); keepdims (default 1). A NaN is
// the extreme once seen (as NumPy's argmax). An empty axis is an error.
namespace {
struct ArgParams {
  int64_t axis = 0;
  bool keepdims = true, select_last = false;
};

template <bool kMax, class T>
void arg_rows(const T* x, int64_t* y, int64_t outer, int64_t n, int64_t inner, bool last) {
  auto better = [&](T v, T best) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(best)) return last && std::isnan(v);
      if (std::isnan(v)) return true;
    }
    return kMax ? (last ? v >= best : v > best) : (last ? v <= best : v < best);
  };
  parallel_for(outer * inner, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t o = w / inner, i = w % inner;
      const T* xr = x + o * n * inner + i;
      T best = xr[0];
      int64_t at = 0;
      for (int64_t j = 1; j < n; ++j)
        if (better(xr[j * inner], best)) { best = xr[j * inner]; at = j; }
      y[w] = at;
    }
  });
}

template <bool kMax>
Status arg_extreme(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'data' (input 0)");
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const ArgParams* p, ctx.prepared<ArgParams>(PrepareArgMinMax));
  const int rank = x.rank();
  SARAI_ASSIGN_OR_RETURN(const int axis, normalize_axis(p->axis, std::max(rank, 1), "attribute 'axis'"));
  const Shape& xs = x.shape();
  const int64_t n = rank == 0 ? 1 : xs[static_cast<size_t>(axis)];
  Shape out;
  for (int d = 0; d < rank; ++d) {
    if (d != axis) out.push_back(xs[static_cast<size_t>(d)]);
    else if (p->keepdims) out.push_back(1);
  }
  if (n == 0 && !has_zero_dim(out))
    return Status::error("input 'data' " + shape_to_string(xs) + " has no elements along axis " + std::to_string(axis));
  Tensor& y = ctx.allocate_output(0, DType::kInt64, out);
  if (y.numel() == 0) return Status::ok();
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= xs[static_cast<size_t>(d)];
  for (int d = axis + 1; d < rank; ++d) inner *= xs[static_cast<size_t>(d)];
  int64_t* py = y.mutable_data<int64_t>();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    arg_rows<kMax>(x.data<T>(), py, outer, n, inner, p->select_last);
  };
  if (!visit_float_or_int(x.dtype(), run))
    return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                         " for input 'data' (supported: float32, float64 and integer types)");
  return Status::ok();
}
}  // namespace

Expected<std::shared_ptr<const void>> PrepareArgMinMax(const Node& node, int64_t /*opset*/) {
  ArgParams p;
  p.axis = node.attr_int("axis", 0);
  SARAI_ASSIGN_OR_RETURN(p.keepdims, attr_flag(node, "keepdims", true));
  SARAI_ASSIGN_OR_RETURN(p.select_last, attr_flag(node, "select_last_index", false));
  return prepared_data(p);
}

Status ArgMax(KernelContext& ctx) { return arg_extreme<true>(ctx); }
Status ArgMin(KernelContext& ctx) { return arg_extreme<false>(ctx); }

}  // namespace sarai::kernels

// GlobalMaxPool: the max over every spatial dim of [N, C, spatial...]
// (float32 or float64), kept as 1s; -inf when a spatial dim is 0.
namespace sarai::kernels {

Status GlobalMaxPool(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'X' (input 0)");
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2)
    return Status::error("input 'X' " + shape_to_string(x.shape()) + " must have rank >= 2 ([N, C, spatial...])");
  Shape out = x.shape();
  for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor& y = ctx.allocate_output(0, x.dtype(), out);
    if (ctx.skip_compute(y) || y.numel() == 0) return;
    int64_t red = 1;  // x.numel() / y.numel(), but defined when a spatial dim is 0
    for (size_t i = 2; i < x.shape().size(); ++i) red *= x.shape()[i];
    reduce_outer_red_inner<Fold<Red::kMax, T>>(x.data<T>(), y.mutable_data<T>(), y.numel(), red, int64_t{1},
                                               static_cast<double*>(nullptr));
  };
  if (x.dtype() == DType::kFloat32) run(float{});
  else if (x.dtype() == DType::kFloat64) run(double{});
  else return Status::error(std::string("input 'X' must be float32 or float64, got ") + dtype_name(x.dtype()));
  return Status::ok();
}

}  // namespace sarai::kernels
