// Unary element-wise ops: Sqrt, Erf, Gelu, Relu, Sigmoid, Tanh, HardSigmoid,
// HardSwish, Clip. All float32; Relu and Clip also take integer tensors.
// Each is one loop over the flat buffer, split over the thread pool; the
// float32 paths except Sqrt and Tanh run the vectorized kernels of
// vec_kernels.h.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kGrain = 16384;

Status require_x(const KernelContext& ctx, const char* name = "X") {
  if (!ctx.has_input(0)) return Status::error(std::string("missing required input '") + name + "' (input 0)");
  return Status::ok();
}

// y = fn(x) elementwise into a fresh output of x's dtype and shape.
template <class T, class Fn>
void map_into(KernelContext& ctx, const Tensor& x, Fn fn) {
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.shape());
  if (ctx.skip_compute(y)) return;  // planning pass, large float output
  const T* px = x.data<T>();
  T* py = y.mutable_data<T>();
  parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) py[i] = fn(px[i]);
  });
}

// y = kernel(x) in chunks of the flat buffer, kernel one of vec_kernels().
template <class Kernel>
void map_vec_into(KernelContext& ctx, const Tensor& x, Kernel kernel) {
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (ctx.skip_compute(y)) return;
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(x.numel(), kGrain, [&](int64_t b, int64_t e) { kernel(px + b, py + b, e - b); });
}

template <class Kernel>
Status unary_vec(KernelContext& ctx, Kernel kernel, const char* name = "X") {
  SARAI_RETURN_IF_ERROR(require_x(ctx, name));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input '") + name + "' must be float32, got " + dtype_name(x.dtype()));
  map_vec_into(ctx, x, kernel);
  return Status::ok();
}

template <class Fn>
Status unary_float(KernelContext& ctx, Fn fn, const char* name = "X") {
  SARAI_RETURN_IF_ERROR(require_x(ctx, name));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input '") + name + "' must be float32, got " + dtype_name(x.dtype()));
  map_into<float>(ctx, x, fn);
  return Status::ok();
}

// min(max(x, lo), hi) by comparisons, so a NaN element stays NaN and lo > hi
// gives hi.
template <class T>
T clamp(T v, T lo, T hi) {
  const T a = v < lo ? lo : v;
  return a > hi ? hi : a;
}

}  // namespace

Status Sqrt(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::sqrt(x); });
}

Status Erf(KernelContext& ctx) {
  return unary_vec(ctx, vec_kernels().erf, "input");
}

Status Tanh(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::tanh(x); }, "input");
}

Status Sigmoid(KernelContext& ctx) {
  return unary_vec(ctx, vec_kernels().sigmoid);
}

// Gelu (opset 20):
//   none: 0.5 x (1 + erf(x / sqrt(2)))
//   tanh: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
// The approximation is read and checked once per node (PrepareGelu).
namespace {
struct GeluParams {
  bool tanh = false;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareGelu(const Node& node, int64_t opset) {
  const std::string_view approx = node.attr_string_view("approximate", "none");
  if (approx != "none" && approx != "tanh")
    return Status::error("attribute 'approximate' must be \"none\" or \"tanh\", got \"" + std::string(approx) + "\"");
  auto p = std::make_shared<GeluParams>();
  p->tanh = approx == "tanh";
  return std::shared_ptr<const void>(std::move(p));
}

Status Gelu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const GeluParams* p, ctx.prepared<GeluParams>(PrepareGelu));
  if (!p->tanh) return unary_vec(ctx, vec_kernels().gelu);
  constexpr float kC = static_cast<float>(0.7978845608028654);  // sqrt(2 / pi)
  return unary_float(ctx, [](float x) {
    return 0.5f * x * (1.f + std::tanh(kC * (x + 0.044715f * x * x * x)));
  });
}

Status Log(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::log(x); }, "input");
}
Status Exp(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::exp(x); }, "input");
}
Status Reciprocal(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return 1.f / x; });
}
Status Floor(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::floor(x); });
}
Status Ceil(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return std::ceil(x); });
}

// Neg and Abs: float32 and the signed integer types (Abs also unsigned,
// where it is the identity). The integers wrap as two's complement: the
// most negative value maps to itself, as in ONNX Runtime.
namespace {
template <class Fn>
Status signed_unary(KernelContext& ctx, bool unsigned_ok, Fn fn) {
  SARAI_RETURN_IF_ERROR(require_x(ctx));
  const Tensor& x = ctx.input(0);
  bool supported = true;
  const bool known = visit_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_unsigned_v<T>) {
      if (!unsigned_ok) supported = false;
      else map_into<T>(ctx, x, [](T v) { return v; });
    } else {
      map_into<T>(ctx, x, [&](T v) { return fn(v); });
    }
  });
  if (!known || !supported)
    return Status::error(std::string("input 'X' must be float32 or a") + (unsigned_ok ? "n" : " signed") +
                         " integer type, got " + dtype_name(x.dtype()));
  return Status::ok();
}
template <class T> T wrap_neg(T v) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::make_unsigned_t<T>>(0) - static_cast<std::make_unsigned_t<T>>(v));
  else
    return -v;
}
}  // namespace

Status Neg(KernelContext& ctx) {
  return signed_unary(ctx, /*unsigned_ok=*/false, [](auto v) { return wrap_neg(v); });
}
Status Abs(KernelContext& ctx) {
  return signed_unary(ctx, /*unsigned_ok=*/true, [](auto v) {
    if constexpr (std::is_floating_point_v<decltype(v)>) return std::fabs(v);
    else return v < 0 ? wrap_neg(v) : v;
  });
}

// Not: bool -> bool (any non-zero byte is true).
Status Not(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_x(ctx));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kBool)
    return Status::error(std::string("input 'X' must be bool, got ") + dtype_name(x.dtype()));
  Tensor& y = ctx.allocate_output(0, DType::kBool, x.shape());
  const uint8_t* px = x.data<uint8_t>();
  uint8_t* py = y.mutable_data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = px[i] == 0 ? 1 : 0;
  return Status::ok();
}

// LeakyRelu: x < 0 ? alpha x : x (alpha default 0.01, read once).
Expected<std::shared_ptr<const void>> PrepareLeakyRelu(const Node& node, int64_t) {
  return prepared_data(attr_float_of(node, "alpha", 0.01f));
}
Status LeakyRelu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const float* alpha, ctx.prepared<float>(PrepareLeakyRelu));
  const float a = *alpha;
  return unary_float(ctx, [a](float x) { return x < 0.f ? a * x : x; });
}

// Relu: float32 and (opset 14) the integer types.
Status Relu(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_x(ctx));
  const Tensor& x = ctx.input(0);
  const bool ok = visit_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    // x < 0 ? 0 : x keeps NaN as NaN; for float that is clip(x, 0, inf).
    if constexpr (std::is_same_v<T, float>) {
      const auto clip = vec_kernels().clip;
      map_vec_into(ctx, x, [=](const float* in, float* out, int64_t n) {
        clip(in, out, n, 0.f, std::numeric_limits<float>::infinity());
      });
    } else if constexpr (std::is_signed_v<T>)
      map_into<T>(ctx, x, [](T v) { return v < T{0} ? T{0} : v; });
    else
      map_into<T>(ctx, x, [](T v) { return v; });
  });
  if (!ok)
    return Status::error(std::string("input 'X' must be float32 or an integer type, got ") + dtype_name(x.dtype()));
  return Status::ok();
}

// HardSigmoid's alpha and beta, and Clip's bounds before opset 11: read once
// (any float is valid: the spec bounds neither, and min > max is defined).
namespace {
struct FloatPair {
  float a, b;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareHardSigmoid(const Node& node, int64_t /*opset*/) {
  return prepared_data(FloatPair{node.attr_float("alpha", 0.2f), node.attr_float("beta", 0.5f)});
}

Status HardSigmoid(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareHardSigmoid));
  const float alpha = p->a, beta = p->b;
  const auto kernel = vec_kernels().hard_sigmoid;
  return unary_vec(ctx, [=](const float* x, float* y, int64_t n) { kernel(x, y, n, alpha, beta); });
}

// HardSwish: x * HardSigmoid(x) with alpha = 1/6, beta = 0.5.
Status HardSwish(KernelContext& ctx) {
  return unary_vec(ctx, vec_kernels().hard_swish);
}

Expected<std::shared_ptr<const void>> PrepareClip(const Node& node, int64_t opset) {
  if (opset >= 11) return prepared_data(FloatPair{});  // bounds are inputs, read per run
  return prepared_data(FloatPair{node.attr_float("min", std::numeric_limits<float>::lowest()),
                                 node.attr_float("max", std::numeric_limits<float>::max())});
}

// Clip: before opset 11 the bounds are float attributes 'min'/'max'; from 11
// on they are optional scalar inputs 1 and 2 of the input's dtype. A missing
// bound is the dtype's limit. When min > max every element becomes max
// (min(max(x, lo), hi), as the spec says).
Status Clip(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_x(ctx, "input"));
  const Tensor& x = ctx.input(0);
  if (ctx.opset() < 11) {
    if (x.dtype() != DType::kFloat32)
      return Status::error(std::string("input 'input' must be float32 (opset ") + std::to_string(ctx.opset()) +
                           "), got " + dtype_name(x.dtype()));
    SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareClip));
    const float lo = p->a, hi = p->b;
    const auto clip = vec_kernels().clip;
    map_vec_into(ctx, x, [=](const float* in, float* out, int64_t n) { clip(in, out, n, lo, hi); });
    return Status::ok();
  }
  for (int i = 1; i <= 2; ++i) {
    if (!ctx.has_input(i)) continue;
    const Tensor& b = ctx.input(i);
    const char* name = i == 1 ? "min" : "max";
    if (b.dtype() != x.dtype())
      return Status::error(std::string("input '") + name + "' must have the dtype of 'input' (" +
                           dtype_name(x.dtype()) + "), got " + dtype_name(b.dtype()));
    if (b.numel() != 1)
      return Status::error(std::string("input '") + name + "' must be a scalar, got shape " +
                           shape_to_string(b.shape()));
  }
  const bool ok = visit_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T lo = ctx.has_input(1) ? ctx.input(1).data<T>()[0] : std::numeric_limits<T>::lowest();
    const T hi = ctx.has_input(2) ? ctx.input(2).data<T>()[0] : std::numeric_limits<T>::max();
    if constexpr (std::is_same_v<T, float>) {
      const auto clip = vec_kernels().clip;
      map_vec_into(ctx, x, [=](const float* in, float* out, int64_t n) { clip(in, out, n, lo, hi); });
    } else {
      map_into<T>(ctx, x, [=](T v) { return clamp(v, lo, hi); });
    }
  });
  if (!ok)
    return Status::error(std::string("input 'input' must be float32 or an integer type, got ") +
                         dtype_name(x.dtype()));
  return Status::ok();
}

}  // namespace sarai::kernels

// ---------------------------------------------------------------------------
// Element-wise math (float32): trigonometric and hyperbolic functions,
// Softplus, Softsign, Mish, Elu, Selu, Celu, ThresholdedRelu, Shrink,
// Round; Sign (float32 and integers); IsNaN, IsInf (float32 -> bool).
namespace sarai::kernels {

Status Sin(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::sin(x); }, "input"); }
Status Cos(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::cos(x); }, "input"); }
Status Tan(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::tan(x); }, "input"); }
Status Asin(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::asin(x); }, "input"); }
Status Acos(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::acos(x); }, "input"); }
Status Atan(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::atan(x); }, "input"); }
Status Sinh(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::sinh(x); }, "input"); }
Status Cosh(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::cosh(x); }, "input"); }
Status Asinh(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::asinh(x); }, "input"); }
Status Acosh(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::acosh(x); }, "input"); }
Status Atanh(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::atanh(x); }, "input"); }

namespace {
// log(1 + exp(x)) without overflow for large x.
inline float softplus(float x) {
  return x > 0.f ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}
}  // namespace

Status Softplus(KernelContext& ctx) { return unary_float(ctx, [](float x) { return softplus(x); }); }
Status Softsign(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return x / (1.f + std::fabs(x)); }, "input");
}
// Mish (opset 18): x tanh(softplus(x)).
Status Mish(KernelContext& ctx) {
  return unary_float(ctx, [](float x) { return x * std::tanh(softplus(x)); });
}
// Round: to the nearest integer, halves to even (the default FP rounding
// mode, which nothing here changes).
Status Round(KernelContext& ctx) { return unary_float(ctx, [](float x) { return std::nearbyint(x); }); }

// Elu (alpha 1), Selu (alpha, gamma), Celu (alpha != 0),
// ThresholdedRelu (alpha 1), Shrink (bias 0, lambd 0.5): attributes read once.
Expected<std::shared_ptr<const void>> PrepareElu(const Node& node, int64_t) {
  return prepared_data(FloatPair{node.attr_float("alpha", 1.f), 0.f});
}
Status Elu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareElu));
  const float a = p->a;
  return unary_float(ctx, [a](float x) { return x < 0.f ? a * std::expm1(x) : x; });
}

Expected<std::shared_ptr<const void>> PrepareSelu(const Node& node, int64_t) {
  return prepared_data(FloatPair{node.attr_float("alpha", 1.67326319217681884765625f),
                                 node.attr_float("gamma", 1.05070102214813232421875f)});
}
Status Selu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareSelu));
  const float a = p->a, g = p->b;
  return unary_float(ctx, [a, g](float x) { return x <= 0.f ? g * (a * std::exp(x) - a) : g * x; });
}

Expected<std::shared_ptr<const void>> PrepareCelu(const Node& node, int64_t) {
  const float alpha = node.attr_float("alpha", 1.f);
  if (alpha == 0.f || !std::isfinite(alpha))
    return Status::error("attribute 'alpha' must be finite and non-zero, got " + std::to_string(alpha));
  return prepared_data(FloatPair{alpha, 0.f});
}
// Celu: max(0, x) + min(0, alpha (exp(x / alpha) - 1)).
Status Celu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareCelu));
  const float a = p->a;
  return unary_float(ctx, [a](float x) {
    return std::max(0.f, x) + std::min(0.f, a * std::expm1(x / a));
  });
}

Expected<std::shared_ptr<const void>> PrepareThresholdedRelu(const Node& node, int64_t) {
  return prepared_data(FloatPair{node.attr_float("alpha", 1.f), 0.f});
}
Status ThresholdedRelu(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareThresholdedRelu));
  const float a = p->a;
  return unary_float(ctx, [a](float x) { return x > a ? x : 0.f; });
}

Expected<std::shared_ptr<const void>> PrepareShrink(const Node& node, int64_t) {
  return prepared_data(FloatPair{node.attr_float("bias", 0.f), node.attr_float("lambd", 0.5f)});
}
// Shrink: x < -lambd ? x + bias : x > lambd ? x - bias : 0.
Status Shrink(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const FloatPair* p, ctx.prepared<FloatPair>(PrepareShrink));
  const float bias = p->a, lambd = p->b;
  return unary_float(ctx, [=](float x) { return x < -lambd ? x + bias : (x > lambd ? x - bias : 0.f); }, "input");
}

// Sign: -1, 0 or 1 in the input's dtype (a NaN stays NaN).
Status Sign(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_x(ctx, "input"));
  const Tensor& x = ctx.input(0);
  const bool ok = visit_numeric(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    map_into<T>(ctx, x, [](T v) -> T {
      if constexpr (std::is_floating_point_v<T>) {
        if (std::isnan(v)) return v;
      }
      return v > T{0} ? T{1} : (v < T{0} ? static_cast<T>(-1) : T{0});
    });
  });
  if (!ok)
    return Status::error(std::string("input 'input' must be float32 or an integer type, got ") + dtype_name(x.dtype()));
  return Status::ok();
}

namespace {
template <class Pred>
Status float_predicate(KernelContext& ctx, Pred pred) {
  SARAI_RETURN_IF_ERROR(require_x(ctx));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input 'X' must be float32, got ") + dtype_name(x.dtype()));
  Tensor& y = ctx.allocate_output(0, DType::kBool, x.shape());
  const float* px = x.data<float>();
  uint8_t* py = y.mutable_data<uint8_t>();
  for (int64_t i = 0; i < x.numel(); ++i) py[i] = pred(px[i]) ? 1 : 0;
  return Status::ok();
}
struct IsInfParams {
  bool positive = true, negative = true;
};
}  // namespace

Status IsNaN(KernelContext& ctx) {
  return float_predicate(ctx, [](float v) { return std::isnan(v); });
}

Expected<std::shared_ptr<const void>> PrepareIsInf(const Node& node, int64_t) {
  IsInfParams p;
  SARAI_ASSIGN_OR_RETURN(p.positive, attr_flag(node, "detect_positive", true));
  SARAI_ASSIGN_OR_RETURN(p.negative, attr_flag(node, "detect_negative", true));
  return prepared_data(p);
}
// IsInf: +inf when detect_positive, -inf when detect_negative (both default 1).
Status IsInf(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const IsInfParams* p, ctx.prepared<IsInfParams>(PrepareIsInf));
  const bool pos = p->positive, neg = p->negative;
  return float_predicate(ctx, [=](float v) {
    return std::isinf(v) && ((v > 0 && pos) || (v < 0 && neg));
  });
}

}  // namespace sarai::kernels

// ---------------------------------------------------------------------------
// Dropout at inference: y = x; the optional mask is all true (bool; the
// data's dtype before opset 10). A training_mode input that is true is
// refused: this runtime does not train.
namespace sarai::kernels {

Status Dropout(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_x(ctx, "data"));
  const Tensor& x = ctx.input(0);
  if (ctx.has_input(2)) {
    const Tensor& t = ctx.input(2);
    if (t.dtype() != DType::kBool || t.numel() != 1)
      return Status::error(std::string("input 'training_mode' must be a bool scalar, got ") + dtype_name(t.dtype()) +
                           " " + shape_to_string(t.shape()));
    if (t.data<uint8_t>()[0] != 0) return Status::error("training_mode = true is not supported (inference runtime)");
  }
  ctx.set_output(0, x);
  if (ctx.wants_output(1)) {
    if (ctx.opset() < 10) {
      const bool ok = visit_numeric(x.dtype(), [&](auto tag) {
        using T = decltype(tag);
        Tensor& m = ctx.allocate_output(1, x.dtype(), x.shape());
        std::fill(m.mutable_data<T>(), m.mutable_data<T>() + m.numel(), T{1});
      });
      if (!ok) return Status::error(std::string("input 'data' must be float32 or an integer type, got ") + dtype_name(x.dtype()));
    } else {
      Tensor& m = ctx.allocate_output(1, DType::kBool, x.shape());
      std::fill(m.mutable_data<uint8_t>(), m.mutable_data<uint8_t>() + m.numel(), uint8_t{1});
    }
  }
  return Status::ok();
}

}  // namespace sarai::kernels
