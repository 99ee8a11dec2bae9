// Shape-only ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity) and the
// shape queries/broadcasts built on them (Shape, Expand).
//
// Reshape, Flatten, Squeeze, Unsqueeze and Identity never copy: the output is
// a new handle on the input's storage (Tensor::reshaped), so they cost O(rank).
// Expand is the one op here that writes memory; it moves elements by byte
// size, so one code path serves every dtype.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

std::string ints_to_string(const Shape& v) { return shape_to_string(v); }

// Squeeze's and Unsqueeze's axes attribute (before opset 13).
struct AxesAttr {
  bool present = false;
  Shape axes;
};

}  // namespace

// The axes attribute, checked once: no value twice (a negative alias of
// another axis depends on the rank, checked per run).
Expected<std::shared_ptr<const void>> PrepareSqueezeAxes(const Node& node, int64_t opset) {
  AxesAttr p;
  if (opset < 13) {
    p.present = node.has_attr("axes");
    const std::span<const int64_t> v = node.attr_ints_view("axes");
    p.axes.assign(v.begin(), v.end());
    if (const int64_t* r = first_repeat(p.axes))
      return Status::error("axes " + ints_to_string(p.axes) + " name axis " + std::to_string(*r) + " more than once");
  }
  return prepared_data(std::move(p));
}

namespace {

// The axes of Squeeze/Unsqueeze: an attribute before opset 13, an optional
// input from 13 on. `present` reports whether any were given.
Expected<Shape> axes_operand(KernelContext& ctx, bool* present) {
  if (ctx.opset() < 13) {
    SARAI_ASSIGN_OR_RETURN(const AxesAttr* p, ctx.prepared<AxesAttr>(PrepareSqueezeAxes));
    *present = p->present;
    return p->axes;
  }
  *present = ctx.has_input(1);
  if (!*present) return Shape();
  return int_list_input(ctx, 1, "axes");
}

}  // namespace

// Reshape: 0 copies the input dim (unless allowzero=1, opset 14), one -1 is
// inferred from the element count.
Status Reshape(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  Shape spec;
  if (ctx.has_input(1)) {
    SARAI_ASSIGN_OR_RETURN(spec, int_list_input(ctx, 1, "shape"));
  } else if (ctx.opset() < 5 && ctx.node().has_attr("shape")) {
    const std::span<const int64_t> v = ctx.node().attr_ints_view("shape");
    spec.assign(v.begin(), v.end());
  } else {
    return Status::error("missing required input 'shape'");
  }
  const bool allowzero = ctx.opset() >= 14 && ctx.node().attr_int("allowzero", 0) != 0;

  Shape out(spec.size());
  int infer = -1;
  for (size_t i = 0; i < spec.size(); ++i) {
    int64_t d = spec[i];
    if (d == 0 && !allowzero) {
      if (i >= x.shape().size())
        return Status::error("shape " + ints_to_string(spec) + " copies dim " + std::to_string(i) +
                             " (0) but the input " + shape_to_string(x.shape()) + " has rank " +
                             std::to_string(x.rank()));
      out[i] = x.shape()[i];
    } else if (d == -1) {
      if (infer >= 0)
        return Status::error("shape " + ints_to_string(spec) + " has more than one -1");
      infer = static_cast<int>(i);
      out[i] = 1;
    } else if (d < 0) {
      return Status::error("shape " + ints_to_string(spec) + " has invalid dim " + std::to_string(d));
    } else {
      out[i] = d;
    }
  }
  SARAI_ASSIGN_OR_RETURN(int64_t known, checked_numel(out));
  const int64_t n = x.numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      return Status::error("cannot reshape input of shape " + shape_to_string(x.shape()) + " (" +
                           std::to_string(n) + " elements) to " + ints_to_string(spec));
    out[static_cast<size_t>(infer)] = n / known;
  } else if (known != n) {
    return Status::error("cannot reshape input of shape " + shape_to_string(x.shape()) + " (" +
                         std::to_string(n) + " elements) to " + ints_to_string(spec) + " (" +
                         std::to_string(known) + " elements)");
  }
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::ok();
}

// Flatten's axis (default 1), read once; its range depends on the rank.
Expected<std::shared_ptr<const void>> PrepareFlatten(const Node& node, int64_t /*opset*/) {
  return prepared_int(node, "axis", 1);
}

// Flatten: [d0..d(axis-1)] x [d(axis)..] as a 2-D view; axis in [-r, r].
Status Flatten(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_attr, ctx.prepared<int64_t>(PrepareFlatten));
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  int64_t axis = *axis_attr;
  if (axis < -r || axis > r)
    return Status::error("axis " + std::to_string(axis) + " is out of range for rank " +
                         std::to_string(r) + " (must be in [" + std::to_string(-r) + ", " +
                         std::to_string(r) + "])");
  if (axis < 0) axis += r;
  int64_t outer, inner;
  if (!checked_product(x.shape(), 0, static_cast<size_t>(axis), &outer) ||
      !checked_product(x.shape(), static_cast<size_t>(axis), x.shape().size(), &inner))
    return Status::error("input shape " + shape_to_string(x.shape()) + " flattened at axis " +
                         std::to_string(axis) + " has a dim past int64");
  ctx.set_output(0, x.reshaped({outer, inner}));
  return Status::ok();
}

Status Squeeze(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  const int r = x.rank();
  bool present = false;
  SARAI_ASSIGN_OR_RETURN(Shape axes, axes_operand(ctx, &present));
  Shape drop(static_cast<size_t>(r), 0);  // flags, inline (std::vector<bool> allocates)
  if (!present) {
    for (int i = 0; i < r; ++i) drop[static_cast<size_t>(i)] = x.dim(i) == 1;
  } else {
    for (int64_t a : axes) {
      SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, r, "axes value"));
      if (drop[static_cast<size_t>(ax)])
        return Status::error("axes " + ints_to_string(axes) + " name axis " + std::to_string(ax) +
                             " more than once");
      if (x.dim(ax) != 1)
        return Status::error("cannot squeeze axis " + std::to_string(a) + ": dim is " +
                             std::to_string(x.dim(ax)) + " in input shape " +
                             shape_to_string(x.shape()));
      drop[static_cast<size_t>(ax)] = 1;
    }
  }
  Shape out;
  for (int i = 0; i < r; ++i)
    if (!drop[static_cast<size_t>(i)]) out.push_back(x.dim(i));
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::ok();
}

// Unsqueeze: axes index the OUTPUT, whose rank is rank(x) + len(axes).
Status Unsqueeze(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  bool present = false;
  SARAI_ASSIGN_OR_RETURN(Shape axes, axes_operand(ctx, &present));
  if (!present) return Status::error("missing required 'axes'");
  // Each axis adds a dim; more than int can count is no shape.
  if (axes.size() > static_cast<size_t>(std::numeric_limits<int>::max() - x.rank()))
    return Status::error("axes has " + std::to_string(axes.size()) + " entries, too many for a shape");
  const int out_rank = x.rank() + static_cast<int>(axes.size());
  Shape inserted(static_cast<size_t>(out_rank), 0);  // flags
  for (int64_t a : axes) {
    SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, out_rank, "axes value"));
    if (inserted[static_cast<size_t>(ax)])
      return Status::error("axes " + ints_to_string(axes) + " name output axis " +
                           std::to_string(ax) + " more than once");
    inserted[static_cast<size_t>(ax)] = 1;
  }
  Shape out(static_cast<size_t>(out_rank));
  int src = 0;
  for (int i = 0; i < out_rank; ++i)
    out[static_cast<size_t>(i)] = inserted[static_cast<size_t>(i)] ? 1 : x.dim(src++);
  ctx.set_output(0, x.reshaped(std::move(out)));
  return Status::ok();
}

namespace {
// Shape's start/end (opset 15); any values are valid, clamped per run.
struct ShapeRange {
  int64_t start = 0;
  bool has_end = false;
  int64_t end = 0;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareShape(const Node& node, int64_t opset) {
  ShapeRange p;
  if (opset >= 15) {
    p.start = node.attr_int("start", 0);
    p.has_end = node.has_attr("end");
    p.end = node.attr_int("end", 0);
  }
  return prepared_data(p);
}

// Shape: int64 dims of the input, dims[start:end] from opset 15 (Python
// slicing: negative values count from the end, both clamped to [0, rank]).
Status ShapeOp(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  SARAI_ASSIGN_OR_RETURN(const ShapeRange* range, ctx.prepared<ShapeRange>(PrepareShape));
  const Tensor& x = ctx.input(0);
  const int64_t r = x.rank();
  int64_t start = range->start, end = range->has_end ? range->end : r;
  auto clamp = [r](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + r : v, 0, r); };
  start = clamp(start);
  end = clamp(end);
  const int64_t n = std::max<int64_t>(end - start, 0);
  Tensor& y = ctx.allocate_output(0, DType::kInt64, {n});
  int64_t* p = y.mutable_data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = x.dim(static_cast<int>(start + i));
  return Status::ok();
}

// Size: the element count as an int64 scalar.
Status Size(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Shape& s = ctx.input(0).shape();
  int64_t n = 0;
  if (!has_zero_dim(s) && !checked_product(s, 0, s.size(), &n))
    return Status::error("the element count of input " + shape_to_string(s) + " passes int64");
  Tensor& y = ctx.allocate_output(0, DType::kInt64, {});
  *y.mutable_data<int64_t>() = has_zero_dim(s) ? 0 : n;
  return Status::ok();
}

Status Identity(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  ctx.set_output(0, ctx.input(0));
  return Status::ok();
}

// Expand: two-way NumPy broadcast of the input with the `shape` input (a dim
// of 1 in `shape` keeps the input's dim). Rows along the last output dim are
// either a contiguous copy or a repeat of one element.
Status Expand(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  if (!ctx.has_input(1)) return Status::error("missing required input 'shape'");
  SARAI_ASSIGN_OR_RETURN(Shape spec, int_list_input(ctx, 1, "shape"));
  for (int64_t d : spec)
    if (d < 0)
      return Status::error("shape " + ints_to_string(spec) + " has negative dim " + std::to_string(d));
  auto bs = broadcast_shapes({x.shape(), spec});
  if (!bs)
    return Status::error("cannot expand input of shape " + shape_to_string(x.shape()) +
                         " to shape " + ints_to_string(spec) + ": " + bs.message());
  Shape out = std::move(*bs);
  const size_t es = dtype_size(x.dtype());
  if (es == 0) return Status::error(std::string("unsupported input dtype ") + dtype_name(x.dtype()));
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();

  if (out.empty()) {  // scalar to scalar
    std::memcpy(y.mutable_raw(), x.raw(), es);
    return Status::ok();
  }
  const Shape st = broadcast_strides(x.shape(), out);
  const size_t rank = out.size();
  const int64_t row = out[rank - 1];
  const int64_t row_stride = st[rank - 1];  // 1 (copy) or 0 (repeat)
  const int64_t rows = y.numel() / row;
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());

  parallel_for(rows, std::max<int64_t>(1, 16384 / row), [&](int64_t begin, int64_t end) {
    // Odometer over the outer dims, started at row `begin`.
    Shape idx(rank - 1, 0);
    int64_t off = 0;
    for (int64_t rem = begin, d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
      idx[static_cast<size_t>(d)] = rem % out[static_cast<size_t>(d)];
      rem /= out[static_cast<size_t>(d)];
      off += idx[static_cast<size_t>(d)] * st[static_cast<size_t>(d)];
    }
    for (int64_t r = begin; r < end; ++r) {
      unsigned char* d = dst + static_cast<size_t>(r * row) * es;
      const unsigned char* s = src + static_cast<size_t>(off) * es;
      if (row_stride != 0) {
        std::memcpy(d, s, static_cast<size_t>(row) * es);
      } else {
        for (int64_t j = 0; j < row; ++j) std::memcpy(d + static_cast<size_t>(j) * es, s, es);
      }
      for (size_t k = rank - 1; k-- > 0;) {
        off += st[k];
        if (++idx[k] < out[k]) break;
        off -= st[k] * out[k];
        idx[k] = 0;
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
