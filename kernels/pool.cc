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
#include <memory>
#include <string>
#include <string_view>

#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Per-spatial-dim lists are inline Shapes: no heap allocation per run.
using Ints = Shape;

// A pooling window is a convolution's (kernels/conv_geometry.h): the same
// attributes, read by the same functions.
using PoolGeometry = convgeo::ConvGeometry;

// The attributes, read and checked once per node (PreparePool).
struct PoolAttrs {
  convgeo::WindowAttrs window;
  bool ceil_mode = false, count_include_pad = false;
  bool column_major = false;  // MaxPool's storage_order 1: Indices count the first spatial dim fastest
};

// Resolves the window attributes and ceil_mode against X's shape.
Status pool_geometry(const KernelContext& ctx, const PoolAttrs& a, PoolGeometry* g) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  SARAI_RETURN_IF_ERROR(convgeo::resolve_window(a.window, x.shape(), g));
  return convgeo::forward_extents(a.window.auto_pad, a.ceil_mode, x.shape(), g);
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

Expected<std::shared_ptr<const void>> PreparePool(const Node& node, int64_t opset) {
  PoolAttrs a;
  if (!node.has_attr("kernel_shape")) return Status::error("missing required attribute kernel_shape");
  SARAI_RETURN_IF_ERROR(convgeo::read_window_attrs(node, &a.window));
  // ceil_mode arrived in opset 10 (the schema refuses it before).
  SARAI_ASSIGN_OR_RETURN(a.ceil_mode, attr_flag(node, "ceil_mode", false));
  a.ceil_mode = a.ceil_mode && opset >= 10;
  SARAI_ASSIGN_OR_RETURN(a.count_include_pad, attr_flag(node, "count_include_pad", false));
  const int64_t storage_order = node.attr_int("storage_order", 0);
  if (storage_order != 0 && storage_order != 1)
    return Status::error("storage_order " + std::to_string(storage_order) + " must be 0 or 1");
  a.column_major = storage_order == 1;
  return prepared_data(std::move(a));
}

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
  SARAI_ASSIGN_OR_RETURN(const PoolAttrs* a, ctx.prepared<PoolAttrs>(PreparePool));
  PoolGeometry g;
  SARAI_RETURN_IF_ERROR(pool_geometry(ctx, *a, &g));
  const bool include_pad = a->count_include_pad;
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, pooled_shape(x, g));
  // An empty output bounds nothing: the window table (sum of the output
  // dims) could then be any size.
  if (y.numel() == 0) return Status::ok();
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
  SARAI_ASSIGN_OR_RETURN(const PoolAttrs* a, ctx.prepared<PoolAttrs>(PreparePool));
  PoolGeometry g;
  SARAI_RETURN_IF_ERROR(pool_geometry(ctx, *a, &g));
  const Shape out_shape = pooled_shape(x, g);
  Tensor& y = ctx.allocate_output(0, x.dtype(), out_shape);
  int64_t* indices = nullptr;
  if (ctx.wants_output(1))
    indices = ctx.allocate_output(1, DType::kInt64, out_shape).mutable_data<int64_t>();
  if (y.numel() == 0) return Status::ok();  // as in AveragePool
  auto* tables = ctx.workspace<DimWindow>(window_table_size(g));
  // The int64 indices are never skipped (skip_compute refuses integers).
  if (!indices && ctx.skip_compute(y)) return Status::ok();
  window_table(g, tables);
  switch (x.dtype()) {
    case DType::kFloat32:
      max_pool<float>(g, x, y, indices, a->column_major, tables);
      break;
    case DType::kInt8:
      max_pool<int8_t>(g, x, y, indices, a->column_major, tables);
      break;
    default:
      max_pool<uint8_t>(g, x, y, indices, a->column_major, tables);
      break;
  }
  return Status::ok();
}

}  // namespace sarai::kernels
