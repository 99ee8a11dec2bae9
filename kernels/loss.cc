// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12+),
// float32 and float64, as the evaluation of a loss (they have no training
// state).
//
// Both view the input as [N, C, D] (D = d1 * ... * dk, 1 for [N, C]) and the
// target as [N, D]: loss[n, d] = -w[t] * input[n, t, d] with t = target[n, d]
// (w = 1 without weights), 0 where t == ignore_index. reduction "none"
// returns loss in the target's shape, "sum" its sum, "mean" (the default)
// its sum over the sum of the w[t] of the elements not ignored (the plain
// mean when neither weights nor ignore_index are given). Sums in double.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "kernels/kernels.h"
#include "kernels/util.h"

namespace sarai::kernels {
namespace {

template <class T> DType dtype_of_t() { return std::is_same_v<T, float> ? DType::kFloat32 : DType::kFloat64; }

enum class Reduction { kNone, kSum, kMean };

struct LossParams {
  Reduction reduction = Reduction::kMean;
  bool has_ignore = false;
  int64_t ignore_index = 0;
};

Expected<std::shared_ptr<const void>> prepare_loss(const Node& node) {
  LossParams p;
  const std::string_view r = node.attr_string_view("reduction", "mean");
  if (r == "none") p.reduction = Reduction::kNone;
  else if (r == "sum") p.reduction = Reduction::kSum;
  else if (r == "mean") p.reduction = Reduction::kMean;
  else return Status::error("attribute 'reduction' must be \"none\", \"sum\" or \"mean\", got \"" + std::string(r) + "\"");
  if (const Attribute* a = node.find_attr("ignore_index")) {
    p.has_ignore = true;
    p.ignore_index = a->i;
  }
  return prepared_data(p);
}

// Checks the shapes: input [N, C, d1..dk] (rank >= 2), target [N, d1..dk]
// of int32/int64, weight [C] of the input's dtype. Sets C and D.
Status check_loss_inputs(const Tensor& x, const Tensor& target, const Tensor* weight, const char* xname,
                         const char* tname, int64_t* C, int64_t* D) {
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kFloat64)
    return Status::error(std::string("input '") + xname + "' must be float32 or float64, got " + dtype_name(x.dtype()));
  if (x.rank() < 2)
    return Status::error(std::string("input '") + xname + "' must have rank >= 2 ([N, C, ...]), got " +
                         shape_to_string(x.shape()));
  if (target.dtype() != DType::kInt64 && target.dtype() != DType::kInt32)
    return Status::error(std::string("input '") + tname + "' must be int32 or int64, got " + dtype_name(target.dtype()));
  Shape want;
  for (int d = 0; d < x.rank(); ++d)
    if (d != 1) want.push_back(x.dim(d));
  if (target.shape() != want)
    return Status::error(std::string("input '") + tname + "' must have shape " + shape_to_string(want) + " (" + xname +
                         " " + shape_to_string(x.shape()) + " without dim 1), got " + shape_to_string(target.shape()));
  *C = x.dim(1);
  *D = 1;
  for (int d = 2; d < x.rank(); ++d) *D *= x.dim(d);
  if (weight) {
    if (weight->dtype() != x.dtype())
      return Status::error(std::string("input 'weight' must have the dtype of '") + xname + "' (" +
                           dtype_name(x.dtype()) + "), got " + dtype_name(weight->dtype()));
    if (weight->rank() != 1 || weight->dim(0) != *C)
      return Status::error("input 'weight' must have shape [" + std::to_string(*C) + "], got " +
                           shape_to_string(weight->shape()));
  }
  return Status::ok();
}

// The loss from log-probabilities `lp` ([N, C, D] flat) into output 0.
template <class T>
Status nll(KernelContext& ctx, const LossParams& p, const T* lp, const Tensor& target, const T* w, int64_t N,
           int64_t C, int64_t D) {
  const int64_t count = N * D;
  // Every target not ignored must name a class.
  for (int64_t i = 0; i < count; ++i) {
    const int64_t t = target.int_at(i);
    if (p.has_ignore && t == p.ignore_index) continue;
    if (t < 0 || t >= C)
      return Status::error("target value " + std::to_string(t) + " at flat index " + std::to_string(i) +
                           " is out of range for " + std::to_string(C) + " classes");
  }
  T* out = nullptr;
  if (p.reduction == Reduction::kNone) out = ctx.allocate_output(0, dtype_of_t<T>(), target.shape()).template mutable_data<T>();
  double sum = 0, wsum = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t d = 0; d < D; ++d) {
      const int64_t i = n * D + d;
      const int64_t t = target.int_at(i);
      double loss = 0, wt = 0;
      if (!(p.has_ignore && t == p.ignore_index)) {
        wt = w ? static_cast<double>(w[t]) : 1.0;
        loss = -wt * static_cast<double>(lp[(n * C + t) * D + d]);
      }
      if (out) out[i] = static_cast<T>(loss);
      sum += loss;
      wsum += wt;
    }
  if (out) return Status::ok();
  double v = sum;
  if (p.reduction == Reduction::kMean) v = (w || p.has_ignore) ? sum / wsum : sum / static_cast<double>(count);
  ctx.allocate_output(0, dtype_of_t<T>(), Shape{}).template mutable_data<T>()[0] = static_cast<T>(v);
  return Status::ok();
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareLoss(const Node& node, int64_t /*opset*/) { return prepare_loss(node); }

// NegativeLogLikelihoodLoss(input, target, weight?): input holds
// log-probabilities.
Status NegativeLogLikelihoodLoss(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'input' (input 0)");
  if (!ctx.has_input(1)) return Status::error("missing required input 'target' (input 1)");
  SARAI_ASSIGN_OR_RETURN(const LossParams* p, ctx.prepared<LossParams>(PrepareLoss));
  const Tensor& x = ctx.input(0);
  const Tensor& target = ctx.input(1);
  const Tensor* weight = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  int64_t C = 0, D = 0;
  SARAI_RETURN_IF_ERROR(check_loss_inputs(x, target, weight, "input", "target", &C, &D));
  const int64_t N = x.dim(0);
  if (x.dtype() == DType::kFloat32)
    return nll<float>(ctx, *p, x.data<float>(), target, weight ? weight->data<float>() : nullptr, N, C, D);
  return nll<double>(ctx, *p, x.data<double>(), target, weight ? weight->data<double>() : nullptr, N, C, D);
}

// SoftmaxCrossEntropyLoss(scores, labels, weights?) -> (output, log_prob?):
// the log-softmax of scores along dim 1 (output 1 when wanted), then the
// negative log-likelihood loss of it.
Status SoftmaxCrossEntropyLoss(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'scores' (input 0)");
  if (!ctx.has_input(1)) return Status::error("missing required input 'labels' (input 1)");
  SARAI_ASSIGN_OR_RETURN(const LossParams* p, ctx.prepared<LossParams>(PrepareLoss));
  const Tensor& x = ctx.input(0);
  const Tensor& target = ctx.input(1);
  const Tensor* weight = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  int64_t C = 0, D = 0;
  SARAI_RETURN_IF_ERROR(check_loss_inputs(x, target, weight, "scores", "labels", &C, &D));
  const int64_t N = x.dim(0);
  auto run = [&](auto tag) -> Status {
    using T = decltype(tag);
    // log_prob: output 1 when wanted, else a workspace.
    T* lp = ctx.wants_output(1) ? ctx.allocate_output(1, x.dtype(), x.shape()).template mutable_data<T>()
                                : ctx.workspace<T>(x.numel());
    const T* px = x.data<T>();
    for (int64_t n = 0; n < N; ++n)
      for (int64_t d = 0; d < D; ++d) {
        const T* xs = px + n * C * D + d;
        T* ls = lp + n * C * D + d;
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t c = 0; c < C; ++c) mx = std::max(mx, static_cast<double>(xs[c * D]));
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += std::exp(static_cast<double>(xs[c * D]) - mx);
        const double lse = mx + std::log(s);
        for (int64_t c = 0; c < C; ++c) ls[c * D] = static_cast<T>(static_cast<double>(xs[c * D]) - lse);
      }
    return nll<T>(ctx, *p, lp, target, weight ? weight->data<T>() : nullptr, N, C, D);
  };
  return x.dtype() == DType::kFloat32 ? run(float{}) : run(double{});
}

}  // namespace sarai::kernels
