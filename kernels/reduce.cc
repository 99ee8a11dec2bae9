// ReduceMean (float32), summing in double.
//
// The input's dims are coalesced into runs of kept and reduced dims (size-1
// dims dropped). The common layouts, [outer, reduced, inner] with any of the
// three absent, take a direct loop over rows or columns; anything else
// (e.g. axes = [0, 2] of a rank-3 tensor) takes a serial odometer walk.
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kGrainElems = 16384;
constexpr int64_t kColumnBlock = 1024;

struct ReduceParams {
  Shape axes;  // the attribute (before opset 18)
  bool keepdims = true, noop_with_empty_axes = false;
};

// The axes to reduce: attribute 'axes' before opset 18, optional input 1 from
// 18 on (empty when none are given).
Expected<Shape> reduce_axes(const KernelContext& ctx, const ReduceParams& p) {
  if (ctx.opset() < 18) return p.axes;
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

// Column blocks of mean_outer_red_inner: up to kColumnBlock adjacent columns.
int64_t column_block(int64_t inner) { return std::min(inner, kColumnBlock); }

// Sums of `red` values `inner` apart, for each of outer * inner outputs,
// divided by `red`: out[o * inner + i] = mean_j x[(o * red + j) * inner + i].
// For inner > 1, acc_ws holds column_block(inner) doubles per thread slot.
void mean_outer_red_inner(const float* x, float* y, int64_t outer, int64_t red, int64_t inner,
                          double* acc_ws) {
  const double inv = 1.0 / static_cast<double>(red);  // red == 0 gives NaN, as NumPy
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(red, 1)), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o) {
        const float* xr = x + o * red;
        double sum = 0;
        for (int64_t j = 0; j < red; ++j) sum += xr[j];
        y[o] = static_cast<float>(red == 0 ? std::numeric_limits<double>::quiet_NaN() : sum * inv);
      }
    });
    return;
  }
  // Column sums: blocks of up to kColumnBlock adjacent columns, read row by row.
  const int64_t block = column_block(inner);
  const int64_t nblocks = (inner + block - 1) / block;
  parallel_for(outer * nblocks, std::max<int64_t>(1, kGrainElems / std::max<int64_t>(red * block, 1)),
               [&](int64_t b, int64_t e) {
    double* acc = acc_ws + thread_index() * block;
    for (int64_t w = b; w < e; ++w) {
      const int64_t o = w / nblocks;
      const int64_t i0 = (w % nblocks) * block;
      const int64_t n = std::min(block, inner - i0);
      std::fill(acc, acc + block, 0.0);
      for (int64_t j = 0; j < red; ++j) {
        const float* xr = x + (o * red + j) * inner + i0;
        for (int64_t i = 0; i < n; ++i) acc[i] += xr[i];
      }
      float* yr = y + o * inner + i0;
      for (int64_t i = 0; i < n; ++i)
        yr[i] = static_cast<float>(red == 0 ? std::numeric_limits<double>::quiet_NaN() : acc[i] * inv);
    }
  });
}

}  // namespace

// The attributes, checked once: axes without a repeated value (a negative
// alias of another axis depends on the rank, checked per run), and the two
// flags 0 or 1 (ONNX Runtime reads a 2 as 0, this kernel read it as 1).
Expected<std::shared_ptr<const void>> PrepareReduceMean(const Node& node, int64_t opset) {
  ReduceParams p;
  if (opset < 18) {
    const std::span<const int64_t> v = node.attr_ints_view("axes");
    p.axes.assign(v.begin(), v.end());
    if (const int64_t* r = first_repeat(p.axes))
      return Status::error("axes " + shape_to_string(p.axes) + " name axis " + std::to_string(*r) + " twice");
  }
  SARAI_ASSIGN_OR_RETURN(p.keepdims, attr_flag(node, "keepdims", true));
  if (opset >= 18) {
    SARAI_ASSIGN_OR_RETURN(p.noop_with_empty_axes, attr_flag(node, "noop_with_empty_axes", false));
  }
  return prepared_data(std::move(p));
}

// ReduceMean: mean over `axes` (all axes when none are given, or the input
// unchanged when opset >= 18 and noop_with_empty_axes = 1); keepdims
// (default 1) keeps the reduced dims as 1.
Status ReduceMean(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'data' (input 0)");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input 'data' must be float32, got ") + dtype_name(x.dtype()));
  const int rank = x.rank();
  const Shape& xs = x.shape();
  SARAI_ASSIGN_OR_RETURN(const ReduceParams* p, ctx.prepared<ReduceParams>(PrepareReduceMean));
  const bool keepdims = p->keepdims;
  SARAI_ASSIGN_OR_RETURN(Shape axes, reduce_axes(ctx, *p));

  if (axes.empty() && p->noop_with_empty_axes) {
    ctx.set_output(0, x);
    return Status::ok();
  }
  Shape reduced(static_cast<size_t>(rank), axes.empty() ? 1 : 0);  // flags
  for (int64_t a : axes) {
    SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, rank, "axes value"));
    if (reduced[static_cast<size_t>(ax)])
      return Status::error("axes " + shape_to_string(axes) + " name axis " + std::to_string(ax) + " twice");
    reduced[static_cast<size_t>(ax)] = 1;
  }

  Shape out_shape;
  for (int d = 0; d < rank; ++d) {
    if (!reduced[static_cast<size_t>(d)]) out_shape.push_back(xs[static_cast<size_t>(d)]);
    else if (keepdims) out_shape.push_back(1);
  }
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();

  // Runs of equal kind: sizes and whether the run is reduced.
  Shape run_size, run_reduced;
  for (int d = 0; d < rank; ++d) {
    const int64_t size = xs[static_cast<size_t>(d)];
    if (size == 1) continue;
    const int64_t r = reduced[static_cast<size_t>(d)];
    if (!run_size.empty() && run_reduced.back() == r) {
      run_size.back() *= size;
    } else {
      run_size.push_back(size);
      run_reduced.push_back(r);
    }
  }
  // Fit the runs into [outer (kept), red (reduced), inner (kept)].
  int64_t outer = 1, red = 1, inner = 1;
  size_t k = 0;
  if (k < run_size.size() && !run_reduced[k]) outer = run_size[k++];
  if (k < run_size.size() && run_reduced[k]) red = run_size[k++];
  if (k < run_size.size() && !run_reduced[k]) inner = run_size[k++];
  if (k == run_size.size()) {
    double* acc = inner > 1 ? ctx.workspace<double>(column_block(inner) * thread_slots(ctx)) : nullptr;
    if (ctx.skip_compute(y)) return Status::ok();
    mean_outer_red_inner(x.data<float>(), y.mutable_data<float>(), outer, red, inner, acc);
    return Status::ok();
  }

  // General layout: walk the input once, adding each element into its output.
  const int64_t ny = y.numel();
  double* acc = ctx.workspace<double>(ny);
  if (ctx.skip_compute(y)) return Status::ok();
  Shape kept_shape(xs);
  for (int d = 0; d < rank; ++d)
    if (reduced[static_cast<size_t>(d)]) kept_shape[static_cast<size_t>(d)] = 1;
  std::fill(acc, acc + ny, 0.0);
  const float* px = x.data<float>();
  for_each_broadcast(xs, {broadcast_strides(kept_shape, xs)}, [&](int64_t i, const int64_t* off) { acc[off[0]] += px[i]; });
  const double count = static_cast<double>(x.numel()) / static_cast<double>(ny);
  float* py = y.mutable_data<float>();
  for (int64_t i = 0; i < ny; ++i) py[i] = static_cast<float>(acc[i] / count);
  return Status::ok();
}

}  // namespace sarai::kernels
