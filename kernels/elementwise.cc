// NumPy-broadcasting binary ops (Add, Sub, Mul, Div, Pow, Equal) and Where.
//
// Every op runs on a BroadcastPlan: the output shape with its dims coalesced
// (size-1 dims dropped, neighbours merged when every input walks them the
// same way), so that the innermost coalesced dim has stride 1 or 0 in each
// input. The work is then a set of rows over that dim; the odometer only
// advances once per row, and the row loop specializes on "both contiguous",
// "one side constant" so it vectorizes. Equal shapes coalesce to one row,
// a scalar or a bias along the last dim to rows with a constant side.
//
// Integer arithmetic wraps (two's complement) instead of invoking signed
// overflow: the sums and products are formed in uint64_t and narrowed.
// Integer Div truncates toward zero like C; a zero divisor is an error.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Elements per parallel work item and per thread at least.
constexpr int64_t kBlock = 16384;
constexpr int64_t kGrainElems = 32768;

// Up to three inputs (Where); everything inline, so planning a broadcast
// allocates nothing.
constexpr size_t kMaxInputs = 3;

struct BroadcastPlan {
  Shape out;                        // the broadcast output shape
  Shape dims;                       // coalesced, never empty
  Shape strides[kMaxInputs];        // per input, over `dims`
};

Expected<BroadcastPlan> make_plan(std::initializer_list<Shape> shape_list) {
  const std::span<const Shape> shapes(shape_list.begin(), shape_list.size());
  assert(shapes.size() <= kMaxInputs);
  BroadcastPlan p;
  SARAI_ASSIGN_OR_RETURN(p.out, broadcast_shapes(shapes));
  // An empty output is never walked (for_each_row); its inputs' strides
  // could overflow ([0, 2^62, 4]).
  if (has_zero_dim(p.out)) {
    p.dims.push_back(0);
    for (size_t k = 0; k < shapes.size(); ++k) p.strides[k].push_back(0);
    return p;
  }
  Shape full[kMaxInputs];
  for (size_t k = 0; k < shapes.size(); ++k) full[k] = broadcast_strides(shapes[k], p.out);
  for (size_t d = 0; d < p.out.size(); ++d) {
    if (p.out[d] == 1) continue;
    bool merge = !p.dims.empty();
    for (size_t k = 0; merge && k < shapes.size(); ++k)
      merge = p.strides[k].back() == full[k][d] * p.out[d];
    if (merge) {
      p.dims.back() *= p.out[d];
      for (size_t k = 0; k < shapes.size(); ++k) p.strides[k].back() = full[k][d];
    } else {
      p.dims.push_back(p.out[d]);
      for (size_t k = 0; k < shapes.size(); ++k) p.strides[k].push_back(full[k][d]);
    }
  }
  if (p.dims.empty()) {  // all dims are 1 (or a scalar): one element
    p.dims.push_back(1);
    for (size_t k = 0; k < shapes.size(); ++k) p.strides[k].push_back(0);
  }
  return p;
}

// Calls fn(out_offset, in_offsets, n) over pieces of rows of the innermost
// coalesced dim; input k advances by plan.strides[k].back() (0 or 1) per
// element within a piece. Pieces are spread over the thread pool.
template <size_t K, class RowFn>
void for_each_row(const BroadcastPlan& p, RowFn&& fn) {
  const int64_t total = numel_of(p.out);
  if (total == 0) return;
  const size_t outer_rank = p.dims.size() - 1;
  const int64_t inner = p.dims.back();
  const int64_t rows = total / inner;
  const int64_t block = std::min(inner, kBlock);
  const int64_t nblocks = (inner + block - 1) / block;
  std::array<int64_t, K> inner_stride;
  for (size_t k = 0; k < K; ++k) inner_stride[k] = p.strides[k].back();

  parallel_for(rows * nblocks, std::max<int64_t>(1, kGrainElems / block),
               [&](int64_t begin, int64_t end) {
    int64_t row = begin / nblocks, blk = begin % nblocks;
    Shape idx(outer_rank, 0);
    std::array<int64_t, K> off{};
    for (size_t d = outer_rank, r = static_cast<size_t>(row); d-- > 0;) {
      const size_t size = static_cast<size_t>(p.dims[d]);
      idx[d] = static_cast<int64_t>(r % size);
      r /= size;
      for (size_t k = 0; k < K; ++k) off[k] += idx[d] * p.strides[k][d];
    }
    for (int64_t w = begin; w < end; ++w) {
      const int64_t start = blk * block;
      const int64_t n = std::min(block, inner - start);
      std::array<int64_t, K> in;
      for (size_t k = 0; k < K; ++k) in[k] = off[k] + start * inner_stride[k];
      fn(row * inner + start, in, n);
      if (++blk < nblocks) continue;
      blk = 0;
      ++row;
      for (size_t d = outer_rank; d-- > 0;) {
        ++idx[d];
        for (size_t k = 0; k < K; ++k) off[k] += p.strides[k][d];
        if (idx[d] < p.dims[d]) break;
        for (size_t k = 0; k < K; ++k) off[k] -= p.strides[k][d] * p.dims[d];
        idx[d] = 0;
      }
    }
  });
}

// r = op(a, b) over the plan, with the row loop specialized on which side is
// constant along the row.
template <class A, class B, class R, class Op>
void binary_loop(const BroadcastPlan& p, const A* a, const B* b, R* r, Op op) {
  const bool a_varies = p.strides[0].back() != 0;
  const bool b_varies = p.strides[1].back() != 0;
  for_each_row<2>(p, [&](int64_t o, const std::array<int64_t, 2>& in, int64_t n) {
    const A* pa = a + in[0];
    const B* pb = b + in[1];
    R* pr = r + o;
    if (a_varies && b_varies) {
      for (int64_t i = 0; i < n; ++i) pr[i] = op(pa[i], pb[i]);
    } else if (a_varies) {
      const B bv = *pb;
      for (int64_t i = 0; i < n; ++i) pr[i] = op(pa[i], bv);
    } else if (b_varies) {
      const A av = *pa;
      for (int64_t i = 0; i < n; ++i) pr[i] = op(av, pb[i]);
    } else {
      const R v = op(*pa, *pb);
      for (int64_t i = 0; i < n; ++i) pr[i] = v;
    }
  });
}

// Same order as VecBinaryOp, so the float path can cast.
enum class Arith { kAdd, kSub, kMul, kDiv };
static_assert(static_cast<int>(Arith::kDiv) == static_cast<int>(VecBinaryOp::kDiv));

template <class T>
T int_arith(Arith op, T a, T b) {
  // Wrapping arithmetic: conversions to and from uint64_t are modular.
  const uint64_t ua = static_cast<uint64_t>(a), ub = static_cast<uint64_t>(b);
  switch (op) {
    case Arith::kAdd: return static_cast<T>(ua + ub);
    case Arith::kSub: return static_cast<T>(ua - ub);
    case Arith::kMul: return static_cast<T>(ua * ub);
    case Arith::kDiv:
      // b != 0 was checked up front. MIN / -1 overflows (and traps on x86):
      // it wraps to MIN, i.e. the two's-complement negation of a.
      if constexpr (std::is_signed_v<T>)
        if (b == -1) return static_cast<T>(uint64_t{0} - ua);
      return static_cast<T>(a / b);
  }
  return T{};
}

Status require_inputs(const KernelContext& ctx, std::initializer_list<const char*> names) {
  int i = 0;
  for (const char* name : names) {
    if (!ctx.has_input(i))
      return Status::error(std::string("missing required input '") + name + "' (input " +
                           std::to_string(i) + ")");
    ++i;
  }
  return Status::ok();
}

Status same_dtype(const Tensor& a, const Tensor& b, const char* na, const char* nb) {
  if (a.dtype() == b.dtype()) return Status::ok();
  return Status::error(std::string("inputs '") + na + "' and '" + nb + "' must have the same dtype, got " +
                       dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()));
}

template <class T>
void run_int_arith(Arith op, const BroadcastPlan& p, const Tensor& a, const Tensor& b, Tensor& out) {
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pr = out.mutable_data<T>();
  switch (op) {
    case Arith::kAdd: binary_loop(p, pa, pb, pr, [](T x, T y) { return int_arith(Arith::kAdd, x, y); }); break;
    case Arith::kSub: binary_loop(p, pa, pb, pr, [](T x, T y) { return int_arith(Arith::kSub, x, y); }); break;
    case Arith::kMul: binary_loop(p, pa, pb, pr, [](T x, T y) { return int_arith(Arith::kMul, x, y); }); break;
    case Arith::kDiv: binary_loop(p, pa, pb, pr, [](T x, T y) { return int_arith(Arith::kDiv, x, y); }); break;
  }
}

Status arith(KernelContext& ctx, Arith op) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"A", "B"}));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(same_dtype(a, b, "A", "B"));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({a.shape(), b.shape()}));
  const DType dt = a.dtype();

  if (dt == DType::kFloat32) {
    Tensor& out = ctx.allocate_output(0, dt, plan.out);
    if (ctx.skip_compute(out)) return Status::ok();
    const float* pa = a.data<float>();
    const float* pb = b.data<float>();
    float* pr = out.mutable_data<float>();
    // The vectorized row kernel; the same IEEE operation per element.
    const auto binary = vec_kernels().binary;
    const VecBinaryOp vop = static_cast<VecBinaryOp>(static_cast<int>(op));
    const int64_t sa = plan.strides[0].back() != 0, sb = plan.strides[1].back() != 0;
    for_each_row<2>(plan, [&](int64_t o, const std::array<int64_t, 2>& in, int64_t n) {
      binary(vop, pa + in[0], sa, pb + in[1], sb, pr + o, n);
    });
    return Status::ok();
  }

  Status status;
  const bool is_int = visit_int(dt, [&](auto tag) {
    using T = decltype(tag);
    if (op == Arith::kDiv && !has_zero_dim(plan.out)) {
      const T* pb = b.data<T>();
      for (int64_t i = 0; i < b.numel(); ++i)
        if (pb[i] == 0) {
          status = Status::error("integer division by zero: input 'B' (" + std::string(dtype_name(dt)) +
                                 " " + shape_to_string(b.shape()) + ") has a zero at flat index " +
                                 std::to_string(i));
          return;
        }
    }
    Tensor& out = ctx.allocate_output(0, dt, plan.out);
    run_int_arith<T>(op, plan, a, b, out);
  });
  if (!is_int)
    return Status::error(std::string("unsupported dtype ") + dtype_name(dt) +
                         " for inputs 'A' and 'B' (supported: float32 and integer types)");
  return status;
}

}  // namespace

Status Add(KernelContext& ctx) { return arith(ctx, Arith::kAdd); }
Status Sub(KernelContext& ctx) { return arith(ctx, Arith::kSub); }
Status Mul(KernelContext& ctx) { return arith(ctx, Arith::kMul); }
Status Div(KernelContext& ctx) { return arith(ctx, Arith::kDiv); }

// Pow(X, Y): the output has X's dtype. Float bases use powf for a float
// exponent (what NumPy does for float32 ** float32) and double pow for an
// integer exponent; integer bases go through double pow and saturate.
Status Pow(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"X", "Y"}));
  const Tensor& x = ctx.input(0);
  const Tensor& y = ctx.input(1);
  const DType bt = x.dtype(), et = y.dtype();
  if (bt != DType::kFloat32 && bt != DType::kInt32 && bt != DType::kInt64)
    return Status::error(std::string("unsupported dtype ") + dtype_name(bt) +
                         " for input 'X' (base; supported: float32, int32, int64)");
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({x.shape(), y.shape()}));

  auto run = [&](auto base_tag, auto exp_tag) {
    using B = decltype(base_tag);
    using E = decltype(exp_tag);
    Tensor& out = ctx.allocate_output(0, bt, plan.out);
    if (ctx.skip_compute(out)) return;  // a large float output only
    binary_loop(plan, x.data<B>(), y.data<E>(), out.mutable_data<B>(), [](B a, E e) -> B {
      if constexpr (std::is_same_v<B, float> && std::is_same_v<E, float>) {
        return std::pow(a, e);
      } else if constexpr (std::is_same_v<B, float>) {
        return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(e)));
      } else {
        const double v = std::pow(static_cast<double>(a), static_cast<double>(e));
        // Saturate instead of the undefined out-of-range float->int conversion.
        if (std::isnan(v)) return B{0};
        if (v >= static_cast<double>(std::numeric_limits<B>::max())) return std::numeric_limits<B>::max();
        if (v <= static_cast<double>(std::numeric_limits<B>::lowest())) return std::numeric_limits<B>::lowest();
        return static_cast<B>(v);
      }
    });
  };
  auto with_base = [&](auto exp_tag) {
    if (bt == DType::kFloat32) run(float{}, exp_tag);
    else if (bt == DType::kInt32) run(int32_t{}, exp_tag);
    else run(int64_t{}, exp_tag);
  };
  if (et == DType::kFloat32) {
    with_base(float{});
  } else if (!visit_int(et, with_base)) {
    return Status::error(std::string("unsupported dtype ") + dtype_name(et) +
                         " for input 'Y' (exponent; supported: float32 and integer types)");
  }
  return Status::ok();
}

// Comparisons (A, B) -> bool (stored one byte per element, 0 or 1), NumPy
// broadcasting; float32 and the integer types, and bool for Equal (whose
// bytes compare as truth values). A NaN compares false, so Equal(NaN, NaN)
// is 0 as in ONNX.
namespace {
template <class Pred>
Status compare(KernelContext& ctx, Pred pred, bool bool_ok) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"A", "B"}));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(same_dtype(a, b, "A", "B"));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({a.shape(), b.shape()}));
  const DType dt = a.dtype();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor& out = ctx.allocate_output(0, DType::kBool, plan.out);
    binary_loop(plan, a.data<T>(), b.data<T>(), out.mutable_data<uint8_t>(),
                [&](T x, T y) -> uint8_t { return pred(x, y) ? 1 : 0; });
  };
  if (dt == DType::kFloat32) {
    run(float{});
  } else if (dt == DType::kBool && bool_ok) {
    Tensor& out = ctx.allocate_output(0, DType::kBool, plan.out);
    binary_loop(plan, a.data<uint8_t>(), b.data<uint8_t>(), out.mutable_data<uint8_t>(),
                [&](uint8_t x, uint8_t y) -> uint8_t { return pred(x != 0, y != 0) ? 1 : 0; });
  } else if (!visit_int(dt, run)) {
    return Status::error(std::string("unsupported dtype ") + dtype_name(dt) + " for inputs 'A' and 'B' (supported: float32" +
                         (bool_ok ? ", bool" : "") + " and integer types)");
  }
  return Status::ok();
}

// And, Or, Xor: bool inputs, broadcasting; any non-zero byte is true.
template <class Op>
Status logical(KernelContext& ctx, Op op) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"A", "B"}));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  for (const auto& [t, name] : {std::pair<const Tensor*, const char*>{&a, "A"}, {&b, "B"}})
    if (t->dtype() != DType::kBool)
      return Status::error(std::string("input '") + name + "' must be bool, got " + dtype_name(t->dtype()));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({a.shape(), b.shape()}));
  Tensor& out = ctx.allocate_output(0, DType::kBool, plan.out);
  binary_loop(plan, a.data<uint8_t>(), b.data<uint8_t>(), out.mutable_data<uint8_t>(),
              [&](uint8_t x, uint8_t y) -> uint8_t { return op(x != 0, y != 0) ? 1 : 0; });
  return Status::ok();
}
}  // namespace

Status Equal(KernelContext& ctx) {
  return compare(ctx, [](auto x, auto y) { return x == y; }, /*bool_ok=*/true);
}
Status Greater(KernelContext& ctx) {
  return compare(ctx, [](auto x, auto y) { return x > y; }, false);
}
Status Less(KernelContext& ctx) {
  return compare(ctx, [](auto x, auto y) { return x < y; }, false);
}
Status GreaterOrEqual(KernelContext& ctx) {
  return compare(ctx, [](auto x, auto y) { return x >= y; }, false);
}
Status LessOrEqual(KernelContext& ctx) {
  return compare(ctx, [](auto x, auto y) { return x <= y; }, false);
}
Status And(KernelContext& ctx) {
  return logical(ctx, [](bool x, bool y) { return x && y; });
}
Status Or(KernelContext& ctx) {
  return logical(ctx, [](bool x, bool y) { return x || y; });
}
Status Xor(KernelContext& ctx) {
  return logical(ctx, [](bool x, bool y) { return x != y; });
}

// Where(condition, X, Y): moves elements by size, so every dtype works.
Status Where(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"condition", "X", "Y"}));
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  if (c.dtype() != DType::kBool)
    return Status::error(std::string("input 'condition' must be bool, got ") + dtype_name(c.dtype()));
  SARAI_RETURN_IF_ERROR(same_dtype(x, y, "X", "Y"));
  const size_t size = dtype_size(x.dtype());
  if (size != 1 && size != 2 && size != 4 && size != 8)
    return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) + " for inputs 'X' and 'Y'");
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({c.shape(), x.shape(), y.shape()}));
  Tensor& out = ctx.allocate_output(0, x.dtype(), plan.out);
  if (ctx.skip_compute(out)) return Status::ok();

  auto run = [&](auto tag) {
    using T = decltype(tag);  // an unsigned integer of the element's size
    const uint8_t* pc = c.data<uint8_t>();
    const T* px = static_cast<const T*>(x.raw());
    const T* py = static_cast<const T*>(y.raw());
    T* pr = static_cast<T*>(out.mutable_raw());
    const int64_t sc = plan.strides[0].back(), sx = plan.strides[1].back(), sy = plan.strides[2].back();
    for_each_row<3>(plan, [&](int64_t o, const std::array<int64_t, 3>& in, int64_t n) {
      const uint8_t* rc = pc + in[0];
      const T* rx = px + in[1];
      const T* ry = py + in[2];
      T* rr = pr + o;
      for (int64_t i = 0; i < n; ++i) rr[i] = rc[i * sc] ? rx[i * sx] : ry[i * sy];
    });
  };
  switch (size) {
    case 1: run(uint8_t{}); break;
    case 2: run(uint16_t{}); break;
    case 4: run(uint32_t{}); break;
    default: run(uint64_t{}); break;
  }
  return Status::ok();
}

}  // namespace sarai::kernels

// ---------------------------------------------------------------------------
// Variadic Max, Min, Sum, Mean (1..N inputs, NumPy broadcasting), Mod,
// BitShift and PRelu.
namespace sarai::kernels {
namespace {

// Calls fn(T{}) for float32, float64 and (when ints) the integer types.
template <class Fn>
bool visit_arith(DType t, bool ints, Fn&& fn) {
  if (t == DType::kFloat32) { fn(float{}); return true; }
  if (t == DType::kFloat64) { fn(double{}); return true; }
  return ints && visit_int(t, fn);
}

// out = fold(op, inputs...) with broadcasting: input 0 is copied into the
// broadcast shape, then every further input is folded in place. float16
// inputs compute in float32 (through a float32 workspace). `finish` maps
// each result once at the end (Mean's division).
template <class Op, class Finish>
Status variadic(KernelContext& ctx, const char* what, bool ints, Op op, Finish finish) {
  const int n = ctx.num_inputs();
  if (n == 0) return Status::error("needs at least one input");
  Shape shapes_inline[8];
  std::vector<Shape> shapes_heap;  // only past 8 inputs
  if (n > 8) shapes_heap.resize(static_cast<size_t>(n));
  Shape* shapes = n > 8 ? shapes_heap.data() : shapes_inline;
  const DType dt = ctx.has_input(0) ? ctx.input(0).dtype() : DType::kUndefined;
  for (int i = 0; i < n; ++i) {
    if (!ctx.has_input(i))
      return Status::error("missing input 'data_" + std::to_string(i) + "' (input " + std::to_string(i) + ")");
    if (ctx.input(i).dtype() != dt)
      return Status::error("input 'data_" + std::to_string(i) + "' must have the dtype of input 'data_0' (" +
                           dtype_name(dt) + "), got " + dtype_name(ctx.input(i).dtype()));
    shapes[i] = ctx.input(i).shape();
  }
  SARAI_ASSIGN_OR_RETURN(Shape out_shape, broadcast_shapes(std::span<const Shape>(shapes, static_cast<size_t>(n))));
  auto run = [&](auto tag, auto* out, auto load) {
    using T = decltype(tag);
    const int64_t total = numel_of(out_shape);
    if (total == 0) return;
    for_each_broadcast(out_shape, {broadcast_strides(shapes[0], out_shape)},
                       [&](int64_t o, const int64_t* off) { out[o] = load(0, off[0]); });
    for (int k = 1; k < n; ++k) {
      auto plan = make_plan({out_shape, shapes[k]});
      if (!plan) return;  // cannot happen: shapes[k] broadcasts into out_shape
      const int kk = k;
      for_each_row<2>(*plan, [&](int64_t o, const std::array<int64_t, 2>& in, int64_t len) {
        const int64_t s = plan->strides[1].back();
        for (int64_t i = 0; i < len; ++i) out[o + i] = op(out[o + i], static_cast<T>(load(kk, in[1] + i * s)));
      });
    }
    for (int64_t i = 0; i < total; ++i) out[i] = finish(out[i], n);
  };
  if (dt == DType::kFloat16) {
    Tensor& y = ctx.allocate_output(0, dt, out_shape);
    float* acc = ctx.workspace<float>(y.numel());
    run(float{}, acc, [&](int k, int64_t i) { return half_to_float(ctx.input(k).data<uint16_t>()[i]); });
    uint16_t* py = y.mutable_data<uint16_t>();
    for (int64_t i = 0; i < y.numel(); ++i) py[i] = float_to_half(acc[i]);
    return Status::ok();
  }
  const bool ok = visit_arith(dt, ints, [&](auto tag) {
    using T = decltype(tag);
    Tensor& y = ctx.allocate_output(0, dt, out_shape);
    if (ctx.skip_compute(y)) return;
    run(T{}, y.mutable_data<T>(), [&](int k, int64_t i) { return ctx.input(k).data<T>()[i]; });
  });
  if (!ok)
    return Status::error(std::string("unsupported dtype ") + dtype_name(dt) + " for the inputs of " + what +
                         (ints ? " (supported: float32, float64, float16 and integer types)"
                               : " (supported: float32, float64, float16)"));
  return Status::ok();
}

struct Keep {
  template <class T> T operator()(T v, int) const { return v; }
};

// max / min that propagate NaN (as NumPy's maximum / minimum).
template <class T> T nan_max(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  return b > a ? b : a;
}
template <class T> T nan_min(T a, T b) {
  if constexpr (std::is_floating_point_v<T>)
    if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
  return b < a ? b : a;
}

}  // namespace

Status Max(KernelContext& ctx) {
  return variadic(ctx, "Max", true, [](auto a, auto b) { return nan_max(a, b); }, Keep{});
}
Status Min(KernelContext& ctx) {
  return variadic(ctx, "Min", true, [](auto a, auto b) { return nan_min(a, b); }, Keep{});
}
Status Sum(KernelContext& ctx) {
  return variadic(ctx, "Sum", false, [](auto a, auto b) { return a + b; }, Keep{});
}
Status Mean(KernelContext& ctx) {
  return variadic(ctx, "Mean", false, [](auto a, auto b) { return a + b; },
                  [](auto v, int n) { return static_cast<decltype(v)>(v / static_cast<decltype(v)>(n)); });
}

// Mod: fmod = 0 (integers only) takes the divisor's sign, as Python's %;
// fmod = 1 truncates, as C's fmod / %. An integer zero divisor is an error.
Expected<std::shared_ptr<const void>> PrepareMod(const Node& node, int64_t) {
  SARAI_ASSIGN_OR_RETURN(const bool fmod, attr_flag(node, "fmod", false));
  return prepared_data(fmod);
}

Status Mod(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"A", "B"}));
  SARAI_ASSIGN_OR_RETURN(const bool* fmod_p, ctx.prepared<bool>(PrepareMod));
  const bool fmod = *fmod_p;
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(same_dtype(a, b, "A", "B"));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({a.shape(), b.shape()}));
  const DType dt = a.dtype();
  const bool is_float = dt == DType::kFloat32 || dt == DType::kFloat64 || dt == DType::kFloat16;
  if (is_float && !fmod)
    return Status::error(std::string("attribute 'fmod' must be 1 for ") + dtype_name(dt) + " inputs");
  if (dt == DType::kFloat16) {
    Tensor& out = ctx.allocate_output(0, dt, plan.out);
    binary_loop(plan, a.data<uint16_t>(), b.data<uint16_t>(), out.mutable_data<uint16_t>(),
                [](uint16_t x, uint16_t y) { return float_to_half(std::fmod(half_to_float(x), half_to_float(y))); });
    return Status::ok();
  }
  Status status;
  const bool known = visit_arith(dt, true, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral_v<T>) {
      if (!has_zero_dim(plan.out)) {
        const T* pb = b.data<T>();
        for (int64_t i = 0; i < b.numel(); ++i)
          if (pb[i] == 0) {
            status = Status::error("integer modulo by zero: input 'B' (" + std::string(dtype_name(dt)) + " " +
                                   shape_to_string(b.shape()) + ") has a zero at flat index " + std::to_string(i));
            return;
          }
      }
    }
    Tensor& out = ctx.allocate_output(0, dt, plan.out);
    if (ctx.skip_compute(out)) return;
    binary_loop(plan, a.data<T>(), b.data<T>(), out.mutable_data<T>(), [fmod](T x, T y) -> T {
      if constexpr (std::is_floating_point_v<T>) {
        return std::fmod(x, y);
      } else {
        if constexpr (std::is_signed_v<T>)
          if (y == -1) return T{0};  // MIN % -1 traps on x86
        T r = static_cast<T>(x % y);
        if constexpr (std::is_signed_v<T>)
          if (!fmod && r != 0 && ((r < 0) != (y < 0))) r = static_cast<T>(r + y);
        return r;
      }
    });
  });
  if (!known)
    return Status::error(std::string("unsupported dtype ") + dtype_name(dt) +
                         " for inputs 'A' and 'B' (supported: float32, float64, float16 and integer types)");
  return status;
}

// BitShift: unsigned integers; direction "LEFT" or "RIGHT" (required).
// A shift by the type's width or more gives 0.
Expected<std::shared_ptr<const void>> PrepareBitShift(const Node& node, int64_t) {
  const std::string_view d = node.attr_string_view("direction", "");
  if (d != "LEFT" && d != "RIGHT")
    return Status::error("attribute 'direction' must be \"LEFT\" or \"RIGHT\", got \"" + std::string(d) + "\"");
  return prepared_data(d == "LEFT");
}

Status BitShift(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"X", "Y"}));
  SARAI_ASSIGN_OR_RETURN(const bool* left_p, ctx.prepared<bool>(PrepareBitShift));
  const bool left = *left_p;
  const Tensor& x = ctx.input(0);
  const Tensor& y = ctx.input(1);
  SARAI_RETURN_IF_ERROR(same_dtype(x, y, "X", "Y"));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({x.shape(), y.shape()}));
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Tensor& out = ctx.allocate_output(0, x.dtype(), plan.out);
    binary_loop(plan, x.data<T>(), y.data<T>(), out.mutable_data<T>(), [left](T v, T s) -> T {
      if (s >= sizeof(T) * 8) return T{0};
      return left ? static_cast<T>(v << s) : static_cast<T>(v >> s);
    });
  };
  switch (x.dtype()) {
    case DType::kUInt8: run(uint8_t{}); break;
    case DType::kUInt16: run(uint16_t{}); break;
    case DType::kUInt32: run(uint32_t{}); break;
    case DType::kUInt64: run(uint64_t{}); break;
    default:
      return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                           " for inputs 'X' and 'Y' (supported: uint8, uint16, uint32, uint64)");
  }
  return Status::ok();
}

// PRelu: x < 0 ? slope x : x, slope broadcasting to X's shape (not beyond).
Status PRelu(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_inputs(ctx, {"X", "slope"}));
  const Tensor& x = ctx.input(0);
  const Tensor& s = ctx.input(1);
  SARAI_RETURN_IF_ERROR(same_dtype(x, s, "X", "slope"));
  SARAI_ASSIGN_OR_RETURN(BroadcastPlan plan, make_plan({x.shape(), s.shape()}));
  if (plan.out != x.shape())
    return Status::error("input 'slope' " + shape_to_string(s.shape()) + " does not broadcast to X's shape " +
                         shape_to_string(x.shape()));
  const bool ok = visit_arith(x.dtype(), true, [&](auto tag) {
    using T = decltype(tag);
    Tensor& out = ctx.allocate_output(0, x.dtype(), plan.out);
    if (ctx.skip_compute(out)) return;
    binary_loop(plan, x.data<T>(), s.data<T>(), out.mutable_data<T>(), [](T v, T a) -> T {
      if constexpr (std::is_integral_v<T>) {
        if (v < T{0}) return static_cast<T>(static_cast<uint64_t>(v) * static_cast<uint64_t>(a));
        return v;
      } else {
        return v < T{0} ? a * v : v;
      }
    });
  });
  if (!ok)
    return Status::error(std::string("unsupported dtype ") + dtype_name(x.dtype()) +
                         " for inputs 'X' and 'slope' (supported: float32, float64 and integer types)");
  return Status::ok();
}

}  // namespace sarai::kernels
