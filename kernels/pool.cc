// GlobalAveragePool, AveragePool and MaxPool over any number of spatial dims.
//
// A pooling window along spatial dim d for output o covers the input
// positions i = o*stride - pad_begin + k*dilation, k in [0, kernel). The
// window is a cartesian product of per-dim position lists, so each dim's
// in-bounds positions and counts are computed once per output coordinate and
// combined per output element:
//   valid  = taps inside the input           (the AveragePool divisor
//                                             when count_include_pad = 0)
//   padded = taps inside [-pad_begin, in + pad_end)  (the divisor when
//            count_include_pad = 1; taps past the end pad, which only
//            ceil_mode creates, never count)
#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Per-spatial-dim lists are inline Shapes: no heap allocation per run.
using Ints = Shape;

std::string ints_str(const Ints& v) { return shape_to_string(v); }

struct PoolGeometry {
  int nsp = 0;
  Ints in, out, kernel, strides, dilations, pad_begin, pad_end;
};

// Resolves kernel_shape, strides, dilations, pads, auto_pad and ceil_mode
// against X's shape.
Status pool_geometry(const KernelContext& ctx, PoolGeometry* g) {
  const Node& node = ctx.node();
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  const size_t n = static_cast<size_t>(x.rank() - 2);
  g->nsp = static_cast<int>(n);
  g->in.assign(x.shape().begin() + 2, x.shape().end());
  if (!node.has_attr("kernel_shape"))
    return Status::error("missing required attribute kernel_shape");
  g->kernel = attr_ints_or(node, "kernel_shape", Ints());
  if (g->kernel.size() != n)
    return Status::error("kernel_shape " + ints_str(g->kernel) + " must have " + std::to_string(n) +
                         " values for input " + shape_to_string(x.shape()));
  g->strides = attr_ints_or(node, "strides", Ints(n, 1));
  g->dilations = attr_ints_or(node, "dilations", Ints(n, 1));
  if (g->strides.size() != n)
    return Status::error("strides " + ints_str(g->strides) + " must have " + std::to_string(n) +
                         " values for input " + shape_to_string(x.shape()));
  if (g->dilations.size() != n)
    return Status::error("dilations " + ints_str(g->dilations) + " must have " + std::to_string(n) +
                         " values for input " + shape_to_string(x.shape()));
  const Ints pads = attr_ints_or(node, "pads", Ints(2 * n, 0));
  if (pads.size() != 2 * n)
    return Status::error("pads " + ints_str(pads) + " must have " + std::to_string(2 * n) +
                         " values (begin and end per spatial dim) for input " +
                         shape_to_string(x.shape()));
  for (size_t i = 0; i < n; ++i) {
    if (g->kernel[i] < 1)
      return Status::error("kernel_shape " + ints_str(g->kernel) + " must be >= 1");
    if (g->strides[i] < 1)
      return Status::error("strides " + ints_str(g->strides) + " must be >= 1");
    if (g->dilations[i] < 1)
      return Status::error("dilations " + ints_str(g->dilations) + " must be >= 1");
  }
  for (int64_t p : pads)
    if (p < 0) return Status::error("pads " + ints_str(pads) + " must be >= 0");
  g->pad_begin.assign(pads.begin(), pads.begin() + static_cast<long>(n));
  g->pad_end.assign(pads.begin() + static_cast<long>(n), pads.end());

  const std::string_view auto_pad = node.attr_string_view("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID")
    return Status::error("auto_pad '" + std::string(auto_pad) +
                         "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  const bool ceil_mode = ctx.opset() >= 10 && node.attr_int("ceil_mode", 0) != 0;

  g->out.resize(n);
  // Every extent below in checked int64 arithmetic: hostile kernel_shape,
  // dilations or pads must fail here, not wrap into a small shape.
  auto overflow = [&](const char* what, size_t i) {
    return Status::error(std::string(what) + " along spatial dim " + std::to_string(i) +
                         " overflows 64-bit integers (kernel_shape " + ints_str(g->kernel) + ", dilations " +
                         ints_str(g->dilations) + ", pads " + ints_str(pads) + ")");
  };
  for (size_t i = 0; i < n; ++i) {
    int64_t ek;
    if (!checked_mul_add(g->kernel[i] - 1, g->dilations[i], 1, &ek))
      return overflow("the dilated kernel", i);
    const int64_t s = g->strides[i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      g->out[i] = g->in[i] / s + (g->in[i] % s != 0);
      int64_t reach;
      if (!checked_mul_add(g->out[i] - 1, s, ek, &reach))
        return overflow("the padded extent", i);
      const int64_t total = std::max<int64_t>(0, reach - g->in[i]);
      g->pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g->pad_end[i] = total - g->pad_begin[i];
      continue;
    }
    if (auto_pad == "VALID") g->pad_begin[i] = g->pad_end[i] = 0;
    int64_t span;
    if (__builtin_add_overflow(g->in[i], g->pad_begin[i], &span) || __builtin_add_overflow(span, g->pad_end[i], &span))
      return overflow("the padded input", i);
    span -= ek;  // both >= 0: no overflow
    if (span < 0)
      return Status::error("kernel_shape " + ints_str(g->kernel) + " with dilations " +
                           ints_str(g->dilations) + " is larger than the padded input " +
                           shape_to_string(x.shape()) + " (pads " + ints_str(g->pad_begin) + " + " +
                           ints_str(g->pad_end) + ") along spatial dim " + std::to_string(i));
    g->out[i] = span / s + (ceil_mode && span % s != 0) + 1;
    // A window must start inside the input or the begin padding; ceil_mode
    // may otherwise add one that lies entirely in the end padding.
    if (ceil_mode && static_cast<__int128>(g->out[i] - 1) * s >= static_cast<__int128>(g->in[i]) + g->pad_begin[i])
      --g->out[i];
  }
  return Status::ok();
}

// For each spatial dim and output coordinate, its window: the in-bounds
// input positions first, first + dil, ... (count of them: the taps k of a
// window whose position o*stride - pad_begin + k*dil is inside form one
// range of k), and the number of taps inside the padded extent.
struct DimWindow {
  int64_t first = 0, count = 0, padded = 0;
};

// The windows of every dim, dim after dim (sum of g.out entries), into
// `table` (a workspace of window_table_size(g) entries).
int64_t window_table_size(const PoolGeometry& g) {
  int64_t n = 0;
  for (int64_t o : g.out) n += o;
  return n;
}

// ceil(a / b) for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

void window_table(const PoolGeometry& g, DimWindow* table) {
  for (size_t d = 0; d < static_cast<size_t>(g.nsp); ++d) {
    const int64_t s = g.strides[d], dil = g.dilations[d], k = g.kernel[d];
    const int64_t pb = g.pad_begin[d], in = g.in[d], pe = g.pad_end[d];
    for (int64_t o = 0; o < g.out[d]; ++o) {
      const int64_t start = o * s - pb;  // position of tap 0
      // Taps with lo <= start + t*dil < hi: t in [ceil((lo-start)/dil), ceil((hi-start)/dil)).
      auto taps_in = [&](int64_t lo, int64_t hi, int64_t* t0) {
        const int64_t a = std::clamp<int64_t>(ceil_div(lo - start, dil), 0, k);
        const int64_t b = std::clamp<int64_t>(ceil_div(hi - start, dil), a, k);
        *t0 = a;
        return b - a;
      };
      DimWindow& w = table[o];
      int64_t t0 = 0, unused = 0;
      w.count = taps_in(0, in, &t0);
      w.first = start + t0 * dil;
      w.padded = taps_in(-pb, in + pe, &unused);
    }
    table += g.out[d];
  }
}

// Calls fn(out_flat, valid, padded, window) for every output position of one
// plane, where window(visit) calls visit(in_flat, spatial_index) for each
// in-bounds tap. Spelled as an odometer over the output and, per output,
// over the per-dim positions (the last dim fastest).
template <class Fn>
void for_each_window(const PoolGeometry& g, const DimWindow* table, Fn&& fn) {
  const size_t n = static_cast<size_t>(g.nsp);
  const int64_t out_size = numel_of(g.out);
  // wins[d]: dim d's windows in the table.
  SmallVector<const DimWindow*, 8> wins(n);
  for (size_t d = 0, at = 0; d < n; at += static_cast<size_t>(g.out[d]), ++d) wins[d] = table + at;
  Ints o(n, 0), pick(n, 0), idx(n, 0);
  for (int64_t flat = 0; flat < out_size; ++flat) {
    int64_t valid = 1, padded = 1;
    for (size_t d = 0; d < n; ++d) {
      valid *= wins[d][o[d]].count;
      padded *= wins[d][o[d]].padded;
    }
    auto visit_all = [&](auto&& visit) {
      if (valid == 0) return;
      std::fill(pick.begin(), pick.end(), 0);
      while (true) {
        int64_t in_flat = 0;
        for (size_t d = 0; d < n; ++d) {
          idx[d] = wins[d][o[d]].first + pick[d] * g.dilations[d];
          in_flat = in_flat * g.in[d] + idx[d];
        }
        visit(in_flat, idx);
        size_t d = n;
        while (d-- > 0) {
          if (++pick[d] < wins[d][o[d]].count) break;
          pick[d] = 0;
        }
        if (d == static_cast<size_t>(-1)) return;
      }
    };
    fn(flat, valid, padded, visit_all);
    for (size_t d = n; d-- > 0;) {
      if (++o[d] < g.out[d]) break;
      o[d] = 0;
    }
  }
}

Shape pooled_shape(const Tensor& x, const PoolGeometry& g) {
  Shape s = {x.dim(0), x.dim(1)};
  s.insert(s.end(), g.out.begin(), g.out.end());
  return s;
}

template <class T>
void max_pool(const PoolGeometry& g, const Tensor& x, Tensor& y, int64_t* indices,
              bool column_major, const DimWindow* tables) {
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t in_size = numel_of(g.in), out_size = numel_of(g.out);
  const T* px = x.data<T>();
  T* py = y.mutable_data<T>();
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const T* src = px + p * in_size;
      T* dst = py + p * out_size;
      for_each_window(g, tables, [&](int64_t o, int64_t, int64_t, auto&& visit_all) {
        T best = std::numeric_limits<T>::lowest();
        int64_t best_at = -1;
        Ints best_idx;  // inline: no allocation per window
        visit_all([&](int64_t i, const Ints& idx) {
          if (best_at < 0 || src[i] > best) {
            best = src[i];
            best_at = i;
            if (indices && column_major) best_idx = idx;
          }
        });
        dst[o] = best;
        if (indices) {
          int64_t spatial = best_at < 0 ? 0 : best_at;
          if (column_major && best_at >= 0) {
            // storage_order = 1: the first spatial dim varies fastest.
            spatial = 0;
            for (size_t d = best_idx.size(); d-- > 0;) spatial = spatial * g.in[d] + best_idx[d];
          }
          indices[p * out_size + o] = p * in_size + spatial;
        }
      });
    }
  });
}

}  // namespace

Status GlobalAveragePool(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input X");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input X has dtype ") + dtype_name(x.dtype()) +
                         "; only float32 is supported");
  if (x.rank() < 2)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 2 ([N, C, spatial...])");
  Shape out = x.shape();
  for (size_t i = 2; i < out.size(); ++i) out[i] = 1;
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out);
  if (ctx.skip_compute(y)) return Status::ok();
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t size = planes == 0 ? 0 : x.numel() / planes;
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      double sum = 0;
      for (int64_t i = 0; i < size; ++i) sum += px[p * size + i];
      py[p] = size == 0 ? 0.f : static_cast<float>(sum / static_cast<double>(size));
    }
  });
  return Status::ok();
}

Status AveragePool(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input X");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error(std::string("input X has dtype ") + dtype_name(x.dtype()) +
                         "; only float32 is supported");
  PoolGeometry g;
  SARAI_RETURN_IF_ERROR(pool_geometry(ctx, &g));
  const bool include_pad = attr_int_of(ctx.node(), "count_include_pad", 0) != 0;
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, pooled_shape(x, g));
  auto* tables = ctx.workspace<DimWindow>(window_table_size(g));
  if (ctx.skip_compute(y)) return Status::ok();
  window_table(g, tables);
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t in_size = numel_of(g.in), out_size = numel_of(g.out);
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* src = px + p * in_size;
      float* dst = py + p * out_size;
      for_each_window(g, tables, [&](int64_t o, int64_t valid, int64_t padded, auto&& visit_all) {
        float sum = 0.f;
        visit_all([&](int64_t i, const Ints&) { sum += src[i]; });
        const int64_t count = include_pad ? padded : valid;
        dst[o] = count == 0 ? 0.f : sum / static_cast<float>(count);
      });
    }
  });
  return Status::ok();
}

Status MaxPool(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input X");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kInt8 && x.dtype() != DType::kUInt8)
    return Status::error(std::string("input X has dtype ") + dtype_name(x.dtype()) +
                         "; only float32, int8 and uint8 are supported");
  PoolGeometry g;
  SARAI_RETURN_IF_ERROR(pool_geometry(ctx, &g));
  const int64_t storage_order = ctx.node().attr_int("storage_order", 0);
  if (storage_order != 0 && storage_order != 1)
    return Status::error("storage_order " + std::to_string(storage_order) + " must be 0 or 1");
  const Shape out_shape = pooled_shape(x, g);
  Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
  int64_t* indices = nullptr;
  if (ctx.wants_output(1))
    indices = ctx.allocate_output(1, DType::kInt64, out_shape).mutable_data<int64_t>();
  auto* tables = ctx.workspace<DimWindow>(window_table_size(g));
  // The int64 indices are never skipped (skip_compute refuses integers).
  if (!indices && ctx.skip_compute(y)) return Status::ok();
  window_table(g, tables);
  switch (x.dtype()) {
    case DType::kFloat32:
      max_pool<float>(g, x, y, indices, storage_order == 1, tables);
      break;
    case DType::kInt8:
      max_pool<int8_t>(g, x, y, indices, storage_order == 1, tables);
      break;
    default:
      max_pool<uint8_t>(g, x, y, indices, storage_order == 1, tables);
      break;
  }
  return Status::ok();
}

}  // namespace sarai::kernels
