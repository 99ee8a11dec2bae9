// Softmax, LayerNormalization and BatchNormalization (inference), float32.
//
// Numerics: Softmax subtracts the row max before exp. Contiguous rows
// (the last axis) run the vectorized float kernel of vec_kernels.h; strided
// groups sum in double. LayerNormalization takes the mean and the variance
// in float, vectorized, with two passes and a correction term (see
// vec_body.h) that keeps a large common offset from costing accuracy.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kGrainElems = 16384;

Status require_float(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i))
    return Status::error(std::string("missing required input '") + name + "' (input " + std::to_string(i) + ")");
  const DType t = ctx.input(i).dtype();
  if (t != DType::kFloat32)
    return Status::error(std::string("input '") + name + "' must be float32, got " + dtype_name(t));
  return Status::ok();
}

int64_t product(const Shape& s, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= s[i];
  return p;
}

// Softmax of `outer` independent groups of n values, each value `inner`
// floats apart (inner == 1: contiguous rows). For inner > 1, mx_ws and
// sum_ws hold `inner` values per thread slot (thread_index()).
void softmax_rows(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, float* mx_ws,
                  double* sum_ws) {
  if (inner == 1) {
    const auto softmax_row = vec_kernels().softmax_row;
    parallel_for(outer, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) softmax_row(x + r * n, y + r * n, n);
    });
    return;
  }
  // Strided groups: walk an [n, inner] block row by row, keeping one running
  // max and sum per column, so memory is read contiguously.
  parallel_for(outer, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n * inner, 1)), [&](int64_t b, int64_t e) {
    float* mx = mx_ws + thread_index() * inner;
    double* sum = sum_ws + thread_index() * inner;
    for (int64_t o = b; o < e; ++o) {
      const float* xb = x + o * n * inner;
      float* yb = y + o * n * inner;
      std::fill(mx, mx + inner, -std::numeric_limits<float>::infinity());
      std::fill(sum, sum + inner, 0.0);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) mx[i] = std::max(mx[i], xb[j * inner + i]);
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) {
          const float v = std::exp(xb[j * inner + i] - mx[i]);
          yb[j * inner + i] = v;
          sum[i] += v;
        }
      for (int64_t i = 0; i < inner; ++i) mx[i] = static_cast<float>(1.0 / sum[i]);  // reuse as 1/sum
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < inner; ++i) yb[j * inner + i] *= mx[i];
    }
  });
}

}  // namespace

// Softmax's axis, read once (its range depends on each input's rank).
Expected<std::shared_ptr<const void>> PrepareSoftmax(const Node& node, int64_t opset) {
  return prepared_int(node, "axis", opset < 13 ? 1 : -1);
}

// Softmax. Before opset 13 the input is coerced to 2-D [d0*..*d(axis-1),
// d(axis)*..*d(r-1)] (axis default 1) and each row is normalized; from 13 on
// the softmax runs along the single dim `axis` (default -1).
Status Softmax(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "input"));
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  const bool coerce_2d = ctx.opset() < 13;
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_p, ctx.prepared<int64_t>(PrepareSoftmax));
  const int64_t axis_attr = *axis_p;
  int axis;
  if (coerce_2d) {
    // The 2-D coercion accepts axis == rank (every row has one element).
    if (axis_attr < -rank || axis_attr > rank)
      return Status::error("attribute 'axis' " + std::to_string(axis_attr) + " is out of range for rank " +
                           std::to_string(rank));
    axis = static_cast<int>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  } else {
    SARAI_ASSIGN_OR_RETURN(axis, normalize_axis(axis_attr, rank, "attribute 'axis'"));
  }
  const Shape& s = x.shape();
  const size_t ax = static_cast<size_t>(axis);
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, s);
  // Only now the products fit: those of an empty x could overflow ([0, 2^62, 4]).
  if (has_zero_dim(s)) return Status::ok();
  const int64_t outer = product(s, 0, ax);
  const int64_t n = coerce_2d ? product(s, ax, s.size()) : s[ax];
  const int64_t inner = coerce_2d ? 1 : product(s, ax + 1, s.size());
  // Strided groups keep a running max and sum per column and thread.
  const int64_t per_thread = inner > 1 ? inner * thread_slots(ctx) : 0;
  float* mx = per_thread ? ctx.workspace<float>(per_thread) : nullptr;
  double* sum = per_thread ? ctx.workspace<double>(per_thread) : nullptr;
  if (ctx.skip_compute(y)) return Status::ok();
  softmax_rows(x.data<float>(), y.mutable_data<float>(), outer, n, inner, mx, sum);
  return Status::ok();
}

// ScaledSoftmax (domain "sarai", runtime/fuse.h): Softmax(X / divisor) over
// the last axis, in one pass per row: the row is divided into Y with the
// Div op's own vector kernel, then normalized in place, so the result is
// bit-identical to Div followed by Softmax.
// ScaledSoftmax's and Attention's divisor, checked once: a 0, inf or NaN
// divisor would turn every score into NaN or 0 without a word.
namespace {
Expected<float> divisor_attr(const Node& node) {
  if (!node.has_attr("divisor")) return Status::error("attribute 'divisor' is missing");
  const float divisor = node.attr_float("divisor", 1.f);
  if (!std::isfinite(divisor) || divisor == 0.f)
    return Status::error("attribute 'divisor' must be finite and non-zero, got " + std::to_string(divisor));
  return divisor;
}

struct ScaledSoftmaxParams {
  float divisor;
  int64_t axis;  // must name the last axis of each input (checked per run)
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareDivisor(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(const float divisor, divisor_attr(node));
  return prepared_data(divisor);
}

Expected<std::shared_ptr<const void>> PrepareScaledSoftmax(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(const float divisor, divisor_attr(node));
  return prepared_data(ScaledSoftmaxParams{divisor, attr_int_of(node, "axis", -1)});
}

Status ScaledSoftmax(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "input"));
  SARAI_ASSIGN_OR_RETURN(const ScaledSoftmaxParams* p, ctx.prepared<ScaledSoftmaxParams>(PrepareScaledSoftmax));
  const float divisor = p->divisor;
  const Tensor& x = ctx.input(0);
  if (x.rank() < 1) return Status::error("input must have rank >= 1 (a scalar has no last axis)");
  // The fusion writes no axis (Softmax's -1); any other must still be the last.
  SARAI_ASSIGN_OR_RETURN(const int axis, normalize_axis(p->axis, x.rank(), "attribute 'axis'"));
  if (axis != x.rank() - 1)
    return Status::error("attribute 'axis' " + std::to_string(p->axis) + " is not supported for input of shape " +
                         shape_to_string(x.shape()) + " (ScaledSoftmax normalizes the last axis)");
  const int64_t n = x.dim(x.rank() - 1);
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (x.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const int64_t rows = x.numel() / n;
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  const auto& vk = vec_kernels();
  parallel_for(rows, std::max<int64_t>(1, kGrainElems / n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      vk.binary(VecBinaryOp::kDiv, px + r * n, 1, &divisor, 0, py + r * n, n);
      vk.softmax_row(py + r * n, py + r * n, n);
    }
  });
  return Status::ok();
}

// LayerNormalization's attributes, read once. stash_type is the type of the
// Mean/InvStdDev outputs: only 1 (float32) when the node has them.
namespace {
struct LayerNormParams {
  int64_t axis;
  float epsilon;
};

// Whether the node has output i (an omitted optional output is kNoValue).
bool has_output(const Node& node, size_t i) { return i < node.outputs.size() && node.outputs[i] != kNoValue; }
}  // namespace

Expected<std::shared_ptr<const void>> PrepareLayerNormalization(const Node& node, int64_t /*opset*/) {
  const int64_t stash_type = node.attr_int("stash_type", 1);
  if ((has_output(node, 1) || has_output(node, 2)) && stash_type != 1)
    return Status::error("attribute 'stash_type' " + std::to_string(stash_type) +
                         " is not supported for the Mean/InvStdDev outputs (only 1, float32)");
  return prepared_data(LayerNormParams{node.attr_int("axis", -1), node.attr_float("epsilon", 1e-5f)});
}

// LayerNormalization (opset 17): normalizes over dims [axis, rank) (axis in
// [-r, r], default -1), then Y = normalized * Scale + B, where Scale and B
// broadcast to X.shape[axis:]. Optional outputs Mean and InvStdDev have shape
// X.shape[:axis] + [1] * (r - axis).
Status LayerNormalization(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "X"));
  SARAI_RETURN_IF_ERROR(require_float(ctx, 1, "Scale"));
  if (ctx.has_input(2)) SARAI_RETURN_IF_ERROR(require_float(ctx, 2, "B"));
  SARAI_ASSIGN_OR_RETURN(const LayerNormParams* p, ctx.prepared<LayerNormParams>(PrepareLayerNormalization));
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  const int64_t axis_attr = p->axis;
  if (axis_attr < -rank || axis_attr > rank)
    return Status::error("attribute 'axis' " + std::to_string(axis_attr) + " is out of range [-" +
                         std::to_string(rank) + ", " + std::to_string(rank) + "] for input 'X' of shape " +
                         shape_to_string(x.shape()));
  const size_t axis = static_cast<size_t>(axis_attr < 0 ? axis_attr + rank : axis_attr);
  const double epsilon = p->epsilon;

  const Shape& xs = x.shape();
  const Shape norm_shape(xs.begin() + static_cast<std::ptrdiff_t>(axis), xs.end());
  const int64_t rows = product(xs, 0, axis);

  // Scale and B, each unidirectionally broadcast to the normalized shape
  // (extra leading 1s ok): their shapes with those 1s dropped.
  Shape param_shape[2];
  for (int k = 0; k < 2; ++k) {
    if (k == 1 && !ctx.has_input(2)) continue;
    const char* name = k == 0 ? "Scale" : "B";
    const Tensor& p = ctx.input(k + 1);
    Shape& ps = param_shape[k];
    ps = p.shape();
    while (ps.size() > norm_shape.size() && ps.front() == 1) ps.erase(ps.begin());
    bool ok = ps.size() <= norm_shape.size();
    for (size_t i = 0; ok && i < ps.size(); ++i) {
      const int64_t d = norm_shape[norm_shape.size() - ps.size() + i];
      ok = ps[i] == d || ps[i] == 1;
    }
    if (!ok)
      return Status::error(std::string("input '") + name + "' of shape " + shape_to_string(p.shape()) +
                           " does not broadcast to the normalized shape " + shape_to_string(norm_shape) +
                           " (X " + shape_to_string(xs) + ", axis " + std::to_string(axis_attr) + ")");
  }

  Tensor& y = ctx.allocate_output(0, DType::kFloat32, xs);
  Shape stat_shape(xs.begin(), xs.begin() + static_cast<std::ptrdiff_t>(axis));
  stat_shape.resize(xs.size(), 1);
  float* mean_out = ctx.wants_output(1) ? ctx.allocate_output(1, DType::kFloat32, stat_shape).mutable_data<float>() : nullptr;
  float* inv_out = ctx.wants_output(2) ? ctx.allocate_output(2, DType::kFloat32, stat_shape).mutable_data<float>() : nullptr;
  if (rows == 0) return Status::ok();
  // With rows > 0 this fits (x's element count does); with rows == 0 it
  // could overflow ([0, 2^62, 4]).
  const int64_t n = numel_of(norm_shape);
  // Scale and B expanded to n floats each (they are small: one row).
  float* params = ctx.workspace<float>(2 * n);
  if (ctx.skip_compute(y)) return Status::ok();
  for (int k = 0; k < 2; ++k) {
    float* dst = params + k * n;
    if (k == 1 && !ctx.has_input(2)) {
      std::fill(dst, dst + n, 0.f);
      continue;
    }
    const float* src = ctx.input(k + 1).data<float>();
    for_each_broadcast(norm_shape, {broadcast_strides(param_shape[k], norm_shape)},
                       [&](int64_t i, const int64_t* off) { dst[i] = src[off[0]]; });
  }

  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  const float* scale = params;
  const float* bias = params + n;
  const auto layernorm_row = vec_kernels().layernorm_row;
  const float eps = static_cast<float>(epsilon);
  parallel_for(rows, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float* xr = px + r * n;
      float* yr = py + r * n;
      float mean, inv_std;
      layernorm_row(xr, yr, scale, bias, n, eps, &mean, &inv_std);
      if (mean_out) mean_out[r] = mean;
      if (inv_out) inv_out[r] = inv_std;
    }
  });
  return Status::ok();
}

// BatchNormalization's inference-only conditions and epsilon, checked once
// (momentum only matters in training).
Expected<std::shared_ptr<const void>> PrepareBatchNormalization(const Node& node, int64_t opset) {
  if (opset >= 14 && node.attr_int("training_mode", 0) != 0)
    return Status::error("attribute 'training_mode' = " + std::to_string(node.attr_int("training_mode", 0)) +
                         " is not supported: only inference (training_mode = 0) is implemented");
  for (size_t i = 1; i < node.outputs.size(); ++i)
    if (has_output(node, i))
      return Status::error("output " + std::to_string(i) +
                           " (running/saved statistics) is only produced in training mode, which is not "
                           "supported: only inference with the single output Y is implemented");
  if (opset < 9 && node.attr_int("spatial", 1) == 0)
    return Status::error("attribute 'spatial' = 0 is not supported (only spatial batch normalization)");
  return prepared_data(node.attr_float("epsilon", 1e-5f));
}

// BatchNormalization, inference form (opsets 9-15):
//   Y = (X - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c]
// over X of shape (N, C, D1, ...); a 1-D X of size N has C = 1. Training
// (training_mode = 1 from opset 14, or asking for the running statistics
// outputs before that) is not supported.
Status BatchNormalization(KernelContext& ctx) {
  static const char* const kNames[] = {"X", "scale", "B", "input_mean", "input_var"};
  for (int i = 0; i < 5; ++i) SARAI_RETURN_IF_ERROR(require_float(ctx, i, kNames[i]));
  SARAI_ASSIGN_OR_RETURN(const float* eps, ctx.prepared<float>(PrepareBatchNormalization));

  const Tensor& x = ctx.input(0);
  if (x.rank() < 1)
    return Status::error("input 'X' must have rank >= 1, got a scalar");
  const Shape& xs = x.shape();
  const int64_t channels = x.rank() == 1 ? 1 : xs[1];
  const int64_t batch = xs[0];
  for (int i = 1; i < 5; ++i) {
    const Tensor& p = ctx.input(i);
    if (p.rank() != 1 || p.dim(0) != channels)
      return Status::error(std::string("input '") + kNames[i] + "' must have shape [" + std::to_string(channels) +
                           "] (channels of X " + shape_to_string(xs) + "), got " + shape_to_string(p.shape()));
  }
  const double epsilon = *eps;

  Tensor& y = ctx.allocate_output(0, DType::kFloat32, xs);
  // Per channel: y = (x - mean) * a + bias with a = scale / sqrt(var + eps).
  float* a = ctx.workspace<float>(channels);
  if (ctx.skip_compute(y) || has_zero_dim(xs)) return Status::ok();
  // Only for an x with elements: an empty x's could overflow ([0, 3, 2^62, 4]).
  const int64_t spatial = x.rank() == 1 ? 1 : product(xs, 2, xs.size());
  const float* scale = ctx.input(1).data<float>();
  const float* bias = ctx.input(2).data<float>();
  const float* mean = ctx.input(3).data<float>();
  const float* var = ctx.input(4).data<float>();
  for (int64_t c = 0; c < channels; ++c)
    a[c] = static_cast<float>(scale[c] / std::sqrt(static_cast<double>(var[c]) + epsilon));

  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(batch * channels, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(spatial, 1)),
               [&](int64_t b, int64_t e) {
    for (int64_t plane = b; plane < e; ++plane) {
      const int64_t c = plane % channels;
      const float m = mean[c], s = a[c], bi = bias[c];
      const float* xp = px + plane * spatial;
      float* yp = py + plane * spatial;
      for (int64_t i = 0; i < spatial; ++i) yp[i] = (xp[i] - m) * s + bi;
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels

// ------------------------------------------- InstanceNormalization, GroupNormalization,
// LpNormalization, MeanVarianceNormalization, LRN (float32; statistics in double).

namespace sarai::kernels {
namespace {

// Normalizes `count` groups of `chunks` x `len` contiguous floats each:
// y = (x - mean) / sqrt(var + eps) * scale[s] + bias[s], the mean and the
// (population) variance over the group, s = scale_of(group, chunk).
template <class ScaleOf>
void normalize_groups(const float* x, float* y, int64_t count, int64_t chunks, int64_t len, double eps,
                      const float* scale, const float* bias, ScaleOf scale_of) {
  const int64_t n = chunks * len;
  parallel_for(count, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t g = b; g < e; ++g) {
      const float* xg = x + g * n;
      float* yg = y + g * n;
      double sum = 0;
      for (int64_t i = 0; i < n; ++i) sum += xg[i];
      const double mean = sum / static_cast<double>(n);
      double sq = 0;
      for (int64_t i = 0; i < n; ++i) sq += (xg[i] - mean) * (xg[i] - mean);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(n) + eps);
      for (int64_t c = 0; c < chunks; ++c) {
        const int64_t s = scale_of(g, c);
        const double a = inv * scale[s], m = mean, bi = bias[s];
        for (int64_t i = c * len; i < (c + 1) * len; ++i) yg[i] = static_cast<float>((xg[i] - m) * a + bi);
      }
    }
  });
}

Status require_vector(const KernelContext& ctx, int i, const char* name, int64_t size, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.rank() != 1 || t.dim(0) != size)
    return Status::error(std::string("input '") + name + "' must have shape [" + std::to_string(size) + "] (" + what +
                         " of X " + shape_to_string(ctx.input(0).shape()) + "), got " + shape_to_string(t.shape()));
  return Status::ok();
}

Expected<float> epsilon_attr(const Node& node) {
  const float eps = node.attr_float("epsilon", 1e-5f);
  if (!std::isfinite(eps) || eps < 0)
    return Status::error("attribute 'epsilon' is " + std::to_string(eps) + "; it must be finite and >= 0");
  return eps;
}

struct GroupNormParams {
  int64_t num_groups = 0;
  float epsilon = 1e-5f;
};

struct LpNormParams {
  int64_t axis = -1, p = 2;
};

struct LrnParams {
  int64_t size = 0;
  float alpha = 1e-4f, beta = 0.75f, bias = 1.f;
};

}  // namespace

Expected<std::shared_ptr<const void>> PrepareInstanceNormalization(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(float eps, epsilon_attr(node));
  return prepared_data(eps);
}

// InstanceNormalization: each (n, c) plane of X [N, C, ...] normalized on its
// own, then scaled and shifted by scale[c], B[c].
Status InstanceNormalization(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "input"));
  SARAI_RETURN_IF_ERROR(require_float(ctx, 1, "scale"));
  SARAI_RETURN_IF_ERROR(require_float(ctx, 2, "B"));
  SARAI_ASSIGN_OR_RETURN(const float* eps, ctx.prepared<float>(PrepareInstanceNormalization));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return Status::error("input 'input' " + shape_to_string(x.shape()) + " must have rank >= 2 [N, C, ...]");
  const int64_t C = x.dim(1);
  SARAI_RETURN_IF_ERROR(require_vector(ctx, 1, "scale", C, "the channels"));
  SARAI_RETURN_IF_ERROR(require_vector(ctx, 2, "B", C, "the channels"));
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (has_zero_dim(x.shape()) || ctx.skip_compute(y)) return Status::ok();
  const int64_t S = product(x.shape(), 2, x.shape().size());
  normalize_groups(x.data<float>(), y.mutable_data<float>(), x.dim(0) * C, 1, S, *eps, ctx.input(1).data<float>(),
                   ctx.input(2).data<float>(), [C](int64_t g, int64_t) { return g % C; });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareGroupNormalization(const Node& node, int64_t /*opset*/) {
  GroupNormParams p;
  const Attribute* g = node.find_attr("num_groups");
  if (!g) return Status::error("missing required attribute 'num_groups'");
  if (g->i < 1) return Status::error("attribute 'num_groups' is " + std::to_string(g->i) + "; it must be positive");
  p.num_groups = g->i;
  SARAI_ASSIGN_OR_RETURN(p.epsilon, epsilon_attr(node));
  const int64_t stash = node.attr_int("stash_type", 1);
  if (stash != 1)
    return Status::error("attribute 'stash_type' is " + std::to_string(stash) + "; only 1 (float32) is supported");
  return prepared_data(p);
}

// GroupNormalization (opsets 18, 21): the channels of X [N, C, ...] in
// num_groups groups of C / num_groups, each normalized over its channels
// and positions; scale and bias are per group (opset 18-20) or per channel (21).
Status GroupNormalization(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "X"));
  SARAI_RETURN_IF_ERROR(require_float(ctx, 1, "scale"));
  SARAI_RETURN_IF_ERROR(require_float(ctx, 2, "bias"));
  SARAI_ASSIGN_OR_RETURN(const GroupNormParams* p, ctx.prepared<GroupNormParams>(PrepareGroupNormalization));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return Status::error("input 'X' " + shape_to_string(x.shape()) + " must have rank >= 2 [N, C, ...]");
  const int64_t C = x.dim(1), G = p->num_groups;
  if (C % G != 0)
    return Status::error("the " + std::to_string(C) + " channels of X " + shape_to_string(x.shape()) +
                         " do not split into num_groups = " + std::to_string(G) + " groups");
  const bool per_channel = ctx.opset() >= 21;
  const int64_t ps = per_channel ? C : G;
  const char* what = per_channel ? "the channels" : "num_groups";
  SARAI_RETURN_IF_ERROR(require_vector(ctx, 1, "scale", ps, what));
  SARAI_RETURN_IF_ERROR(require_vector(ctx, 2, "bias", ps, what));
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (has_zero_dim(x.shape()) || ctx.skip_compute(y)) return Status::ok();
  const int64_t S = product(x.shape(), 2, x.shape().size()), cpg = C / G;
  normalize_groups(x.data<float>(), y.mutable_data<float>(), x.dim(0) * G, cpg, S, p->epsilon, ctx.input(1).data<float>(),
                   ctx.input(2).data<float>(),
                   [G, cpg, per_channel](int64_t g, int64_t c) { return per_channel ? (g % G) * cpg + c : g % G; });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareLpNormalization(const Node& node, int64_t /*opset*/) {
  LpNormParams p{node.attr_int("axis", -1), node.attr_int("p", 2)};
  if (p.p != 1 && p.p != 2) return Status::error("attribute 'p' is " + std::to_string(p.p) + "; expected 1 or 2");
  return prepared_data(p);
}

// LpNormalization: x / ||x||_p along axis (p 1 or 2). A zero vector gives
// NaN, as the division does in ONNX's reference and ONNX Runtime.
Status LpNormalization(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "input"));
  SARAI_ASSIGN_OR_RETURN(const LpNormParams* p, ctx.prepared<LpNormParams>(PrepareLpNormalization));
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(p->axis, x.rank(), "axis"));
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (has_zero_dim(x.shape()) || ctx.skip_compute(y)) return Status::ok();
  const size_t a = static_cast<size_t>(axis);
  const int64_t outer = product(x.shape(), 0, a), n = x.dim(axis), inner = product(x.shape(), a + 1, x.shape().size());
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  const bool l1 = p->p == 1;
  parallel_for(outer * inner, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(n, 1)), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t base = (t / inner) * n * inner + t % inner;
      double s = 0;
      for (int64_t j = 0; j < n; ++j) {
        const double v = px[base + j * inner];
        s += l1 ? std::fabs(v) : v * v;
      }
      const double norm = l1 ? s : std::sqrt(s);
      for (int64_t j = 0; j < n; ++j) py[base + j * inner] = static_cast<float>(px[base + j * inner] / norm);
    }
  });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareMeanVarianceNormalization(const Node& node, int64_t /*opset*/) {
  const Shape axes = attr_ints_or(node, "axes", Shape{0, 2, 3});
  if (const int64_t* r = first_repeat(axes))
    return Status::error("attribute 'axes' " + shape_to_string(axes) + " names axis " + std::to_string(*r) + " twice");
  return prepared_data(axes);
}

// MeanVarianceNormalization: (X - mean) / (sqrt(variance) + 1e-9), the mean
// and variance over `axes` (default [0, 2, 3]), as ONNX's function body.
Status MeanVarianceNormalization(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "X"));
  SARAI_ASSIGN_OR_RETURN(const Shape* axes, ctx.prepared<Shape>(PrepareMeanVarianceNormalization));
  const Tensor& x = ctx.input(0);
  Shape stat = x.shape(), seen(x.shape().size(), 0);
  for (int64_t a : *axes) {
    SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, x.rank(), "axes"));
    if (seen[static_cast<size_t>(ax)]++)
      return Status::error("attribute 'axes' " + shape_to_string(*axes) + " names axis " + std::to_string(ax) + " twice");
    stat[static_cast<size_t>(ax)] = 1;
  }
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  const int64_t groups = has_zero_dim(x.shape()) ? 0 : numel_of(stat);
  double* sum = ctx.workspace<double>(2 * groups);
  if (groups == 0 || ctx.skip_compute(y)) return Status::ok();
  double* sq = sum + groups;
  std::fill(sum, sum + 2 * groups, 0.0);
  const double count = static_cast<double>(x.numel() / groups);
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  const Shape strides[1] = {broadcast_strides(stat, x.shape())};
  for_each_broadcast(x.shape(), strides, [&](int64_t i, const int64_t* o) { sum[o[0]] += px[i]; });
  for (int64_t g = 0; g < groups; ++g) sum[g] /= count;
  for_each_broadcast(x.shape(), strides, [&](int64_t i, const int64_t* o) {
    const double d = px[i] - sum[o[0]];
    sq[o[0]] += d * d;
  });
  for (int64_t g = 0; g < groups; ++g) sq[g] = std::sqrt(sq[g] / count) + 1e-9;
  for_each_broadcast(x.shape(), strides, [&](int64_t i, const int64_t* o) {
    py[i] = static_cast<float>((px[i] - sum[o[0]]) / sq[o[0]]);
  });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareLRN(const Node& node, int64_t /*opset*/) {
  LrnParams p;
  const Attribute* s = node.find_attr("size");
  if (!s) return Status::error("missing required attribute 'size'");
  if (s->i < 1) return Status::error("attribute 'size' is " + std::to_string(s->i) + "; it must be positive");
  p.size = s->i;
  p.alpha = node.attr_float("alpha", 1e-4f);
  p.beta = node.attr_float("beta", 0.75f);
  p.bias = node.attr_float("bias", 1.f);
  if (!std::isfinite(p.alpha) || !std::isfinite(p.beta) || !std::isfinite(p.bias))
    return Status::error("attributes 'alpha', 'beta' and 'bias' must be finite");
  return prepared_data(p);
}

// LRN: y = x / (bias + alpha / size * sum of x^2 over the channels
// [c - floor((size - 1) / 2), c + ceil((size - 1) / 2)])^beta, X [N, C, ...].
Status LRN(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(require_float(ctx, 0, "X"));
  SARAI_ASSIGN_OR_RETURN(const LrnParams* p, ctx.prepared<LrnParams>(PrepareLRN));
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) return Status::error("input 'X' " + shape_to_string(x.shape()) + " must have rank >= 2 [N, C, ...]");
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  if (has_zero_dim(x.shape()) || ctx.skip_compute(y)) return Status::ok();
  const int64_t N = x.dim(0), C = x.dim(1), S = product(x.shape(), 2, x.shape().size());
  const int64_t before = (p->size - 1) / 2, after = p->size - 1 - before;
  const double k = static_cast<double>(p->alpha) / static_cast<double>(p->size);
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(N * C, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(S, 1)), [&](int64_t b, int64_t e) {
    for (int64_t nc = b; nc < e; ++nc) {
      const int64_t n = nc / C, c = nc % C;
      const int64_t lo = std::max<int64_t>(0, c - before), hi = std::min<int64_t>(C - 1, c > C - 1 - after ? C - 1 : c + after);
      for (int64_t s = 0; s < S; ++s) {
        double sq = 0;
        for (int64_t j = lo; j <= hi; ++j) {
          const double v = px[(n * C + j) * S + s];
          sq += v * v;
        }
        py[nc * S + s] = static_cast<float>(px[nc * S + s] / std::pow(p->bias + k * sq, static_cast<double>(p->beta)));
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
