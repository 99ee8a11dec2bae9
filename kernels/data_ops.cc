// Data-movement ops (Transpose, Concat, Slice, Split, Gather), Cast, and the
// constant producers (Constant, ConstantOfShape, Range).
//
// Everything that only moves elements works on bytes: an element is
// dtype_size(dtype) bytes, so one code path serves every dtype. Transpose and
// Slice are both "gather a dense output from a strided view of the input",
// done by strided_copy() below.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/vec_kernels.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Bytes moved per parallel chunk; below this, threading costs more than it saves.
constexpr int64_t kGrainBytes = 64 * 1024;

std::string ints_to_string(const Shape& v) { return shape_to_string(v); }

Status require_storable(DType t, const char* what) {
  if (dtype_size(t) == 0)
    return Status::error(std::string(what) + " has unsupported dtype " + dtype_name(t));
  return Status::ok();
}

template <size_t N> struct Bytes { unsigned char b[N]; };

// Copies `n` elements of size sizeof(T) from src (element stride `stride`,
// may be 0 or negative) to contiguous dst.
template <class T>
void copy_run(unsigned char* dst, const unsigned char* src, int64_t n, int64_t stride) {
  T* d = reinterpret_cast<T*>(dst);
  for (int64_t j = 0; j < n; ++j) std::memcpy(d + j, src + j * stride * static_cast<int64_t>(sizeof(T)), sizeof(T));
}

// The strided_copy case where the innermost output dim is strided in the
// input but another dim `j` is contiguous there (a transpose of the two
// innermost axes, e.g. [B, S, D] -> [B, D, S]): copy in kTile x kTile tiles so
// both the reads along j and the writes along the last dim stay in cache.
// 4- and 2-byte elements go through vec_kernels().transpose_x32 / _x16
// (8x8 blocks in registers above level scalar), the others element by
// element.
template <class T>
void tiled_copy(unsigned char* dst_b, const unsigned char* src_b, const Shape& shape,
                const Shape& strides, size_t j) {
  constexpr int64_t kTile = 64;
  const size_t last = shape.size() - 1;
  Shape dst_st(shape.size(), 1);
  for (size_t k = shape.size(); k-- > 1;) dst_st[k - 1] = dst_st[k] * shape[k];
  SmallVector<size_t, 8> outer_dims;
  int64_t outer = 1;
  for (size_t k = 0; k < last; ++k)
    if (k != j) { outer_dims.push_back(k); outer *= shape[k]; }
  const int64_t nj = shape[j], nl = shape[last];
  const int64_t sj = strides[j], sl = strides[last], dj = dst_st[j];
  const int64_t j_tiles = (nj + kTile - 1) / kTile;
  T* dst = reinterpret_cast<T*>(dst_b);
  const T* src = reinterpret_cast<const T*>(src_b);
  // 4- and 2-byte T: in registers.
  [[maybe_unused]] const auto transpose_x32 = vec_kernels().transpose_x32;
  [[maybe_unused]] const auto transpose_x16 = vec_kernels().transpose_x16;
  parallel_for(outer * j_tiles, std::max<int64_t>(1, kGrainBytes / (kTile * nl * static_cast<int64_t>(sizeof(T)))),
               [&](int64_t begin, int64_t end) {
    for (int64_t w = begin; w < end; ++w) {
      int64_t rem = w / j_tiles, so = 0, d_o = 0;
      for (size_t q = outer_dims.size(); q-- > 0;) {
        const size_t k = outer_dims[q];
        so += (rem % shape[k]) * strides[k];
        d_o += (rem % shape[k]) * dst_st[k];
        rem /= shape[k];
      }
      const int64_t j0 = (w % j_tiles) * kTile, j1 = std::min(nj, j0 + kTile);
      for (int64_t l0 = 0; l0 < nl; l0 += kTile) {
        const int64_t l1 = std::min(nl, l0 + kTile);
        // sj == 1 (the caller's choice of j): a plain 2-D transpose.
        if constexpr (sizeof(T) == 4) {
          transpose_x32(src + so + l0 * sl + j0, sl, dst + d_o + j0 * dj + l0, dj, j1 - j0, l1 - l0);
        } else if constexpr (sizeof(T) == 2) {
          transpose_x16(src + so + l0 * sl + j0, sl, dst + d_o + j0 * dj + l0, dj, j1 - j0, l1 - l0);
        } else {
          for (int64_t a = j0; a < j1; ++a) {
            T* d = dst + d_o + a * dj;
            const T* s = src + so + a * sj;
            for (int64_t l = l0; l < l1; ++l) d[l] = s[l * sl];
          }
        }
      }
    }
  });
}

// dst[i] = src[base + sum_k idx_k * strides[k]] for every index of `out`,
// dst dense in row-major order; strides in elements (may be negative).
// Dims that are contiguous with their inner neighbour are merged first, so
// the innermost loop covers the longest run possible; a unit-stride run is
// one memcpy.
void strided_copy(void* dst_v, const void* src_v, int64_t base, const Shape& out_shape,
                  const Shape& in_strides, size_t es) {
  Shape shape, strides;
  for (size_t k = 0; k < out_shape.size(); ++k) {
    if (out_shape[k] == 0) return;
    if (out_shape[k] == 1) continue;
    if (!shape.empty() && strides.back() == in_strides[k] * out_shape[k]) {
      shape.back() *= out_shape[k];
      strides.back() = in_strides[k];
    } else {
      shape.push_back(out_shape[k]);
      strides.push_back(in_strides[k]);
    }
  }
  auto* dst = static_cast<unsigned char*>(dst_v);
  const auto* src = static_cast<const unsigned char*>(src_v) + base * static_cast<int64_t>(es);
  if (shape.empty()) {  // one element
    std::memcpy(dst, src, es);
    return;
  }
  const size_t rank = shape.size();
  const int64_t row = shape[rank - 1];
  const int64_t row_stride = strides[rank - 1];
  if (row_stride != 1 && row >= 8) {
    for (size_t j = 0; j + 1 < rank; ++j) {
      if (strides[j] != 1 || shape[j] < 8) continue;
      switch (es) {
        case 1: tiled_copy<uint8_t>(dst, src, shape, strides, j); return;
        case 2: tiled_copy<uint16_t>(dst, src, shape, strides, j); return;
        case 4: tiled_copy<uint32_t>(dst, src, shape, strides, j); return;
        case 8: tiled_copy<uint64_t>(dst, src, shape, strides, j); return;
        default: break;
      }
    }
  }
  int64_t rows = 1;
  for (size_t k = 0; k + 1 < rank; ++k) rows *= shape[k];
  const int64_t row_bytes = row * static_cast<int64_t>(es);

  parallel_for(rows, std::max<int64_t>(1, kGrainBytes / row_bytes), [&](int64_t begin, int64_t end) {
    Shape idx(rank - 1, 0);
    int64_t off = 0;  // element offset of the current row's first element
    for (int64_t rem = begin, k = static_cast<int64_t>(rank) - 2; k >= 0; --k) {
      size_t uk = static_cast<size_t>(k);
      idx[uk] = rem % shape[uk];
      rem /= shape[uk];
      off += idx[uk] * strides[uk];
    }
    for (int64_t r = begin; r < end; ++r) {
      unsigned char* d = dst + r * row_bytes;
      const unsigned char* s = src + off * static_cast<int64_t>(es);
      if (row_stride == 1) {
        std::memcpy(d, s, static_cast<size_t>(row_bytes));
      } else {
        switch (es) {
          case 1: copy_run<uint8_t>(d, s, row, row_stride); break;
          case 2: copy_run<uint16_t>(d, s, row, row_stride); break;
          case 4: copy_run<uint32_t>(d, s, row, row_stride); break;
          case 8: copy_run<uint64_t>(d, s, row, row_stride); break;
          default:
            for (int64_t j = 0; j < row; ++j)
              std::memcpy(d + j * static_cast<int64_t>(es), s + j * row_stride * static_cast<int64_t>(es), es);
        }
      }
      for (size_t k = rank - 1; k-- > 0;) {
        off += strides[k];
        if (++idx[k] < shape[k]) break;
        off -= strides[k] * shape[k];
        idx[k] = 0;
      }
    }
  });
}

// Row-major element strides of `s`. An empty shape has nothing to address
// and its strides could overflow ([0, 2^62, 4]): all 0 then.
Shape dense_strides(const Shape& s) {
  if (has_zero_dim(s)) return Shape(s.size(), 0);
  Shape st(s.size(), 1);
  for (size_t k = s.size(); k-- > 1;) st[k - 1] = st[k] * s[k];
  return st;
}

}  // namespace

// ---------------------------------------------------------------- Transpose

// perm, checked once: a permutation of 0..len-1 (its length must still
// match each input's rank).
namespace {
struct TransposeParams {
  bool has_perm = false;
  Shape perm;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareTranspose(const Node& node, int64_t /*opset*/) {
  TransposeParams p;
  p.has_perm = node.has_attr("perm");
  const std::span<const int64_t> pv = node.attr_ints_view("perm");
  p.perm.assign(pv.begin(), pv.end());
  const int64_t r = static_cast<int64_t>(p.perm.size());
  Shape seen(p.perm.size(), 0);
  for (int64_t v : p.perm) {
    if (v < 0 || v >= r || seen[static_cast<size_t>(v)])
      return Status::error("perm " + ints_to_string(p.perm) + " is not a permutation of 0.." + std::to_string(r - 1));
    seen[static_cast<size_t>(v)] = 1;
  }
  return prepared_data(std::move(p));
}

Status Transpose(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  SARAI_ASSIGN_OR_RETURN(const TransposeParams* p, ctx.prepared<TransposeParams>(PrepareTranspose));
  const Tensor& x = ctx.input(0);
  SARAI_RETURN_IF_ERROR(require_storable(x.dtype(), "input 'data'"));
  const int r = x.rank();
  Shape perm;
  if (p->has_perm) {
    perm = p->perm;
    if (static_cast<int>(perm.size()) != r)
      return Status::error("perm " + ints_to_string(perm) + " has " + std::to_string(perm.size()) +
                           " entries but the input " + shape_to_string(x.shape()) + " has rank " +
                           std::to_string(r));
  } else {
    for (int i = r - 1; i >= 0; --i) perm.push_back(i);
  }
  Shape out(static_cast<size_t>(r));
  const Shape in_st = dense_strides(x.shape());
  Shape st(static_cast<size_t>(r));
  for (int k = 0; k < r; ++k) {
    out[static_cast<size_t>(k)] = x.dim(static_cast<int>(perm[static_cast<size_t>(k)]));
    st[static_cast<size_t>(k)] = in_st[static_cast<size_t>(perm[static_cast<size_t>(k)])];
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  strided_copy(y.mutable_raw(), x.raw(), 0, out, st, dtype_size(x.dtype()));
  return Status::ok();
}

// ------------------------------------------------------------------- Concat

// axis, required (no default in any opset the runtime runs), read once.
Expected<std::shared_ptr<const void>> PrepareConcat(const Node& node, int64_t /*opset*/) {
  if (!node.has_attr("axis")) return Status::error("missing required attribute 'axis'");
  return prepared_int(node, "axis", 0);
}

Status Concat(KernelContext& ctx) {
  if (ctx.num_inputs() == 0 || !ctx.has_input(0)) return Status::error("needs at least one input");
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_attr, ctx.prepared<int64_t>(PrepareConcat));
  const Tensor& first = ctx.input(0);
  SARAI_RETURN_IF_ERROR(require_storable(first.dtype(), "input 0"));
  const int r = first.rank();
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(*axis_attr, r, "axis"));
  Shape out = first.shape();
  out[static_cast<size_t>(axis)] = 0;
  for (int i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return Status::error("input " + std::to_string(i) + " is missing");
    const Tensor& t = ctx.input(i);
    if (t.dtype() != first.dtype())
      return Status::error("input " + std::to_string(i) + " has dtype " + dtype_name(t.dtype()) +
                           " but input 0 has " + dtype_name(first.dtype()));
    bool ok = t.rank() == r;
    for (int k = 0; ok && k < r; ++k) ok = k == axis || t.dim(k) == first.dim(k);
    if (!ok)
      return Status::error("input " + std::to_string(i) + " has shape " + shape_to_string(t.shape()) +
                           ", which does not match input 0's shape " + shape_to_string(first.shape()) +
                           " outside axis " + std::to_string(axis));
    // Empty inputs may carry any dim along the axis: their sum can overflow.
    if (__builtin_add_overflow(out[static_cast<size_t>(axis)], t.dim(axis), &out[static_cast<size_t>(axis)]))
      return Status::error("the inputs' sizes along axis " + std::to_string(axis) + " sum past int64 (input " +
                           std::to_string(i) + " has shape " + shape_to_string(t.shape()) + ")");
  }
  const size_t es = dtype_size(first.dtype());
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, first.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();

  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= out[static_cast<size_t>(k)];
  for (int k = axis + 1; k < r; ++k) inner *= out[static_cast<size_t>(k)];
  const int64_t out_block = out[static_cast<size_t>(axis)] * inner * static_cast<int64_t>(es);
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  parallel_for(outer, std::max<int64_t>(1, kGrainBytes / out_block), [&](int64_t begin, int64_t end) {
    for (int64_t o = begin; o < end; ++o) {
      unsigned char* d = dst + o * out_block;
      for (int i = 0; i < ctx.num_inputs(); ++i) {
        const Tensor& t = ctx.input(i);
        const int64_t block = t.dim(axis) * inner * static_cast<int64_t>(es);
        if (block == 0) continue;
        std::memcpy(d, static_cast<const unsigned char*>(t.raw()) + o * block, static_cast<size_t>(block));
        d += block;
      }
    }
  });
  return Status::ok();
}

// -------------------------------------------------------------------- Slice

namespace {
// Before opset 10, Slice's starts/ends/axes are attributes.
struct SliceAttrs {
  Shape starts, ends, axes;
  bool have_axes = false;
};

// The lengths of the lists that must match, or an error naming them.
Status check_slice_lengths(const Shape& starts, const Shape& ends, bool have_axes, const Shape& axes,
                           bool have_steps, const Shape& steps) {
  const size_t n = starts.size();
  if (ends.size() != n || (have_axes && axes.size() != n) || (have_steps && steps.size() != n))
    return Status::error("starts " + ints_to_string(starts) + ", ends " + ints_to_string(ends) +
                         (have_axes ? ", axes " + ints_to_string(axes) : "") +
                         (have_steps ? ", steps " + ints_to_string(steps) : "") +
                         " must have the same length");
  return Status::ok();
}
}  // namespace

Expected<std::shared_ptr<const void>> PrepareSlice(const Node& node, int64_t opset) {
  SliceAttrs p;
  if (opset >= 10) return prepared_data(std::move(p));  // inputs, read per run
  if (!node.has_attr("starts") || !node.has_attr("ends"))
    return Status::error("missing required attribute 'starts' or 'ends'");
  const std::span<const int64_t> sv = node.attr_ints_view("starts"), ev = node.attr_ints_view("ends"),
                                 av = node.attr_ints_view("axes");
  p.starts.assign(sv.begin(), sv.end());
  p.ends.assign(ev.begin(), ev.end());
  p.have_axes = node.has_attr("axes");
  p.axes.assign(av.begin(), av.end());
  SARAI_RETURN_IF_ERROR(check_slice_lengths(p.starts, p.ends, p.have_axes, p.axes, false, Shape()));
  return prepared_data(std::move(p));
}

// starts/ends/axes/steps: attributes before opset 10, inputs 1..4 after.
// Per axis (ONNX's clamping): a negative start/end counts from the end; for
// step > 0 both clamp to [0, dim]; for step < 0 start clamps to [0, dim-1]
// and end to [-1, dim-1]. INT64_MAX / INT64_MIN ends mean "to the edge".
Status Slice(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  SARAI_RETURN_IF_ERROR(require_storable(x.dtype(), "input 'data'"));
  const int r = x.rank();
  Shape starts, ends, axes, steps;
  bool have_axes = false, have_steps = false;
  if (ctx.opset() < 10) {
    SARAI_ASSIGN_OR_RETURN(const SliceAttrs* p, ctx.prepared<SliceAttrs>(PrepareSlice));
    starts = p->starts;
    ends = p->ends;
    axes = p->axes;
    have_axes = p->have_axes;
  } else {
    if (!ctx.has_input(1) || !ctx.has_input(2))
      return Status::error("missing required input 'starts' or 'ends'");
    SARAI_ASSIGN_OR_RETURN(starts, int_list_input(ctx, 1, "starts"));
    SARAI_ASSIGN_OR_RETURN(ends, int_list_input(ctx, 2, "ends"));
    have_axes = ctx.has_input(3);
    if (have_axes) { SARAI_ASSIGN_OR_RETURN(axes, int_list_input(ctx, 3, "axes")); }
    have_steps = ctx.has_input(4);
    if (have_steps) { SARAI_ASSIGN_OR_RETURN(steps, int_list_input(ctx, 4, "steps")); }
  }
  const size_t n = starts.size();
  SARAI_RETURN_IF_ERROR(check_slice_lengths(starts, ends, have_axes, axes, have_steps, steps));
  if (!have_axes) {
    axes.resize(n);
    for (size_t i = 0; i < n; ++i) axes[i] = static_cast<int64_t>(i);
  }
  if (!have_steps) steps.assign(n, 1);

  Shape out = x.shape();
  const Shape in_st = dense_strides(x.shape());
  Shape st = in_st;
  Shape seen(static_cast<size_t>(r), 0);
  int64_t base = 0;
  for (size_t i = 0; i < n; ++i) {
    SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(axes[i], r, "axes value"));
    const size_t a = static_cast<size_t>(ax);
    if (seen[a]) return Status::error("axes " + ints_to_string(axes) + " repeat axis " + std::to_string(ax));
    seen[a] = 1;
    const int64_t dim = x.dim(ax), step = steps[i];
    if (step == 0) return Status::error("steps " + ints_to_string(steps) + " contain 0");
    int64_t s = starts[i], e = ends[i];
    if (s < 0) s += dim;  // no overflow: dim >= 0 and s < 0
    if (e < 0) e += dim;
    int64_t count;
    if (dim == 0) {
      count = 0;
    } else if (step > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      count = e > s ? (e - s - 1) / step + 1 : 0;  // ceil((e - s) / step) without overflow
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      // -step overflows only for INT64_MIN, which takes one element.
      count = s <= e ? 0 : step == std::numeric_limits<int64_t>::min() ? 1 : (s - e - 1) / -step + 1;
    }
    out[a] = count;
    if (count > 0) base += s * in_st[a];
    st[a] = count > 1 ? step * in_st[a] : in_st[a];
  }
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  strided_copy(y.mutable_raw(), x.raw(), base, out, st, dtype_size(x.dtype()));
  return Status::ok();
}

// -------------------------------------------------------------------- Split

namespace {
// Split's attributes, checked once: the `split` sizes (opset < 13) and
// num_outputs (opset 18), both against the node's output count.
struct SplitParams {
  bool has_split = false;
  Shape split;
  int64_t num_outputs = 0;  // 0: not given
};

// Sizes that cannot split anything: a wrong count, a negative size, or a
// sum past int64. On success *total is their sum.
Status check_split_sizes(const Shape& sizes, int nout, int64_t* total) {
  if (static_cast<int>(sizes.size()) != nout)
    return Status::error("split " + ints_to_string(sizes) + " has " + std::to_string(sizes.size()) +
                         " entries but the node has " + std::to_string(nout) + " outputs");
  *total = 0;
  for (int64_t s : sizes) {
    if (s < 0) return Status::error("split " + ints_to_string(sizes) + " has a negative size");
    if (__builtin_add_overflow(*total, s, total))
      return Status::error("split " + ints_to_string(sizes) + " sums past int64");
  }
  return Status::ok();
}
}  // namespace

Expected<std::shared_ptr<const void>> PrepareSplit(const Node& node, int64_t opset) {
  SplitParams p;
  const int nout = static_cast<int>(node.outputs.size());
  if (opset < 13 && node.has_attr("split")) {
    const std::span<const int64_t> sv = node.attr_ints_view("split");
    p.has_split = true;
    p.split.assign(sv.begin(), sv.end());
    int64_t total;
    SARAI_RETURN_IF_ERROR(check_split_sizes(p.split, nout, &total));
  } else if (opset >= 18 && node.has_attr("num_outputs")) {
    const int64_t k = node.attr_int("num_outputs", 0);
    if (k != nout)
      return Status::error("num_outputs " + std::to_string(k) + " does not match the node's " +
                           std::to_string(nout) + " outputs");
    if (k <= 0) return Status::error("num_outputs " + std::to_string(k) + " must be positive");
    p.num_outputs = k;
  }
  return prepared_data(std::move(p));
}

// Sizes along the axis: `split` attribute (opset < 13) or input (>= 13);
// else `num_outputs` (opset 18: ceil(dim / n) per output, the last one
// smaller); else equal parts, one per output.
Status Split(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  SARAI_ASSIGN_OR_RETURN(const SplitParams* p, ctx.prepared<SplitParams>(PrepareSplit));
  const Tensor& x = ctx.input(0);
  SARAI_RETURN_IF_ERROR(require_storable(x.dtype(), "input 'input'"));
  const int r = x.rank();
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(ctx.node().attr_int("axis", 0), r, "axis"));
  const int64_t dim = x.dim(axis);
  const int nout = ctx.num_outputs();
  Shape sizes;
  if (p->has_split) {
    sizes = p->split;
  } else if (ctx.opset() >= 13 && ctx.has_input(1)) {
    SARAI_ASSIGN_OR_RETURN(sizes, int_list_input(ctx, 1, "split"));
  } else if (p->num_outputs > 0) {
    const int64_t k = p->num_outputs;
    const int64_t chunk = dim / k + (dim % k != 0);  // ceil(dim / k); dim + k - 1 could overflow
    int64_t left = dim;
    for (int64_t i = 0; i < k; ++i) {
      sizes.push_back(std::min(chunk, left));
      left -= sizes.back();
    }
  } else {
    if (nout <= 0) return Status::error("has no outputs");
    if (dim % nout != 0)
      return Status::error("cannot split axis " + std::to_string(axis) + " of size " +
                           std::to_string(dim) + " into " + std::to_string(nout) + " equal parts");
    sizes.assign(static_cast<size_t>(nout), dim / nout);
  }
  int64_t total;
  SARAI_RETURN_IF_ERROR(check_split_sizes(sizes, nout, &total));
  if (total != dim)
    return Status::error("split " + ints_to_string(sizes) + " sums to " + std::to_string(total) +
                         " but axis " + std::to_string(axis) + " of input shape " +
                         shape_to_string(x.shape()) + " has size " + std::to_string(dim));

  const size_t es = dtype_size(x.dtype());
  // Only an output with elements is copied, and then x has elements and
  // these products fit; an empty x's could overflow ([0, 2^62, 4]).
  int64_t outer = 0, inner = 0;
  if (!has_zero_dim(x.shape())) {
    outer = inner = 1;
    for (int k = 0; k < axis; ++k) outer *= x.dim(k);
    for (int k = axis + 1; k < r; ++k) inner *= x.dim(k);
  }
  const int64_t in_block = dim * inner * static_cast<int64_t>(es);
  const auto* src = static_cast<const unsigned char*>(x.raw());
  int64_t offset = 0;  // along the axis, in elements of `inner`
  for (int i = 0; i < nout; ++i) {
    const int64_t size = sizes[static_cast<size_t>(i)];
    const int64_t start = offset;
    offset += size;
    if (!ctx.wants_output(i)) continue;
    Shape os = x.shape();
    os[static_cast<size_t>(axis)] = size;
    Tensor& y = ctx.allocate_output(i, x.dtype(), os);
    if (y.numel() == 0 || ctx.skip_compute(y)) continue;
    const int64_t block = size * inner * static_cast<int64_t>(es);
    auto* dst = static_cast<unsigned char*>(y.mutable_raw());
    parallel_for(outer, std::max<int64_t>(1, kGrainBytes / block), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; ++o)
        std::memcpy(dst + o * block, src + o * in_block + start * inner * static_cast<int64_t>(es),
                    static_cast<size_t>(block));
    });
  }
  return Status::ok();
}

// ------------------------------------------------------------------- Gather

// axis (default 0), read once.
Expected<std::shared_ptr<const void>> PrepareGather(const Node& node, int64_t /*opset*/) {
  return prepared_int(node, "axis", 0);
}

// out = data[:axis] + indices.shape + data[axis+1:];
// out[o, j, i] = data[o, idx[j], i] with idx[j] < 0 counting from the end.
Status Gather(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  if (!ctx.has_input(1)) return Status::error("missing required input 'indices'");
  const Tensor& ind = ctx.input(1);
  SARAI_RETURN_IF_ERROR(require_storable(x.dtype(), "input 'data'"));
  if (ind.dtype() != DType::kInt64 && ind.dtype() != DType::kInt32)
    return Status::error(std::string("input 'indices' must be int64 or int32, got ") + dtype_name(ind.dtype()));
  const int r = x.rank();
  if (r == 0) return Status::error("input 'data' must have rank >= 1, got a scalar");
  SARAI_ASSIGN_OR_RETURN(const int64_t* axis_attr, ctx.prepared<int64_t>(PrepareGather));
  SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(*axis_attr, r, "axis"));
  const int64_t dim = x.dim(axis);
  const int64_t n = ind.numel();
  for (int64_t j = 0; j < n; ++j) {
    const int64_t v = ind.int_at(j);
    if (v < -dim || v >= dim)
      return Status::error("index " + std::to_string(v) + " is out of range for axis " +
                           std::to_string(axis) + " of size " + std::to_string(dim) +
                           " (data shape " + shape_to_string(x.shape()) + ")");
  }
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), ind.shape().begin(), ind.shape().end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  const size_t es = dtype_size(x.dtype());
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();

  int64_t outer = 1, inner = 1;
  for (int k = 0; k < axis; ++k) outer *= x.dim(k);
  for (int k = axis + 1; k < r; ++k) inner *= x.dim(k);
  const int64_t block = inner * static_cast<int64_t>(es);
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  parallel_for(outer * n, std::max<int64_t>(1, kGrainBytes / block), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / n, v = ind.int_at(t % n);  // checked above
      std::memcpy(dst + t * block, src + (o * dim + (v < 0 ? v + dim : v)) * block,
                  static_cast<size_t>(block));
    }
  });
  return Status::ok();
}

// --------------------------------------------------------------------- Cast

namespace {

struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
struct Bool8 { uint8_t v; };

template <class T> inline constexpr bool kIsFloaty =
    std::is_floating_point_v<T> || std::is_same_v<T, F16> || std::is_same_v<T, BF16>;

template <class S> double to_double(S s) {
  if constexpr (std::is_same_v<S, F16>) return half_to_float(s.bits);
  else if constexpr (std::is_same_v<S, BF16>) return bf16_to_float(s.bits);
  else if constexpr (std::is_same_v<S, Bool8>) return s.v ? 1.0 : 0.0;
  else return static_cast<double>(s);
}

// Float to integer truncates toward zero; NaN gives 0 and out-of-range
// values saturate (C++ leaves both undefined; ONNX does not say).
template <class D> D from_double(double v) {
  if constexpr (std::is_same_v<D, F16>) return F16{float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, BF16>) return BF16{float_to_bf16(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, Bool8>) return Bool8{static_cast<uint8_t>(v != 0)};
  else if constexpr (std::is_floating_point_v<D>) return static_cast<D>(v);
  else {
    if (std::isnan(v)) return D{0};
    constexpr double lo = static_cast<double>(std::numeric_limits<D>::min());
    constexpr double hi = static_cast<double>(std::numeric_limits<D>::max());
    if (v <= lo) return std::numeric_limits<D>::min();
    if (v >= hi) return std::numeric_limits<D>::max();
    return static_cast<D>(v);
  }
}

template <class D, class S> D convert(S s) {
  if constexpr (kIsFloaty<S> || kIsFloaty<D>) {
    if constexpr (std::is_same_v<S, Bool8>) return from_double<D>(s.v ? 1.0 : 0.0);
    else if constexpr (!kIsFloaty<S> && std::is_floating_point_v<D>) return static_cast<D>(s);
    else return from_double<D>(to_double(s));
  } else if constexpr (std::is_same_v<D, Bool8>) {
    if constexpr (std::is_same_v<S, Bool8>) return s;
    else return Bool8{static_cast<uint8_t>(s != 0)};
  } else if constexpr (std::is_same_v<S, Bool8>) {
    return static_cast<D>(s.v != 0);
  } else {
    return static_cast<D>(s);  // integer to integer: modular, as in C++20
  }
}

template <class T> struct Tag { using type = T; };

// Calls fn(Tag<T>{}) for the C++ type of `t`; false when there is none.
template <class Fn> bool visit_dtype(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(Tag<float>{}); return true;
    case DType::kFloat64: fn(Tag<double>{}); return true;
    case DType::kFloat16: fn(Tag<F16>{}); return true;
    case DType::kBFloat16: fn(Tag<BF16>{}); return true;
    case DType::kInt8: fn(Tag<int8_t>{}); return true;
    case DType::kUInt8: fn(Tag<uint8_t>{}); return true;
    case DType::kInt16: fn(Tag<int16_t>{}); return true;
    case DType::kUInt16: fn(Tag<uint16_t>{}); return true;
    case DType::kInt32: fn(Tag<int32_t>{}); return true;
    case DType::kUInt32: fn(Tag<uint32_t>{}); return true;
    case DType::kInt64: fn(Tag<int64_t>{}); return true;
    case DType::kUInt64: fn(Tag<uint64_t>{}); return true;
    case DType::kBool: fn(Tag<Bool8>{}); return true;
    default: return false;
  }
}

// Names of the ONNX element types the runtime has no DType for.
std::string onnx_type_name(int64_t code) {
  switch (code) {
    case 0: return "UNDEFINED";
    case 8: return "STRING";
    case 14: return "COMPLEX64";
    case 15: return "COMPLEX128";
    case 17: return "FLOAT8E4M3FN";
    case 18: return "FLOAT8E4M3FNUZ";
    case 19: return "FLOAT8E5M2";
    case 20: return "FLOAT8E5M2FNUZ";
    case 21: return "UINT4";
    case 22: return "INT4";
    case 23: return "FLOAT4E2M1";
    default: return "unknown type";
  }
}

// float32 <-> float16 for Cast's two float16 loops: the same bits as
// runtime/tensor.h's half_to_float / float_to_half (round to nearest even,
// NaN -> sign | 0x7e00, overflow -> inf; checked for every float and every
// half by tests/data_ops_test.cc), without their calls and branches per
// element. A float16 model upcast at load keeps each of its own
// Cast(to=FLOAT16) as that Cast and a Cast back (loader/fp16_upcast.h):
// imgly's segmenter runs 39 such pairs on maps of up to 64 x 1024 x 1024.
inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, em = h & 0x7fffu;
  // A normal half: exponent and mantissa moved into float's fields (a
  // normal float), rebiased by 2^(127 - 15); a subnormal one is em * 2^-24.
  // Both exact, and no subnormal float on the way (a caller's DAZ is safe).
  const float scaled = em < 0x400u ? static_cast<float>(em) * 0x1p-24f : std::bit_cast<float>(em << 13) * 0x1p112f;
  const uint32_t bits = em >= 0x7c00u ? 0x7f800000u | ((em & 0x3ffu) << 13) : std::bit_cast<uint32_t>(scaled);
  return std::bit_cast<float>(sign | bits);
}

inline uint16_t float_to_half_bits(float v) {
  const uint32_t u = std::bit_cast<uint32_t>(v);
  const uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  uint32_t h;
  if (a >= 0x47800000u) {  // >= 2^16 (or inf, NaN): inf or the quiet NaN
    h = a > 0x7f800000u ? 0x7e00u : 0x7c00u;
  } else if (a < 0x38800000u) {  // below 2^-14: a half subnormal or zero
    // Adding 0.5 aligns the value's bits to half's subnormal step (2^-24)
    // and the FPU rounds to nearest even.
    const float magic = 0.5f;
    h = std::bit_cast<uint32_t>(std::bit_cast<float>(a) + magic) - std::bit_cast<uint32_t>(magic);
  } else {  // normal: rebias, round to nearest even on the 13 dropped bits
    h = (a + ((15u - 127u) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
  }
  return static_cast<uint16_t>(sign | h);
}

}  // namespace

// `to` (a type the runtime stores) and `saturate` (a flag, opset 19),
// checked once.
Expected<std::shared_ptr<const void>> PrepareCast(const Node& node, int64_t opset) {
  if (!node.has_attr("to")) return Status::error("missing required attribute 'to'");
  const int64_t to = node.attr_int("to", 0);
  DType dt;
  if (to < std::numeric_limits<int32_t>::min() || to > std::numeric_limits<int32_t>::max() || !dtype_from_onnx(static_cast<int32_t>(to), &dt) ||
      dtype_size(dt) == 0)
    return Status::error("target type 'to' = " + std::to_string(to) + " (" + onnx_type_name(to) +
                         ") is not supported");
  // saturate only matters for the float8 types, which are refused above.
  if (opset >= 19) SARAI_RETURN_IF_ERROR(attr_flag(node, "saturate", true).status());
  return prepared_data(dt);
}

Status Cast(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 0");
  const Tensor& x = ctx.input(0);
  SARAI_ASSIGN_OR_RETURN(const DType* to, ctx.prepared<DType>(PrepareCast));
  const DType dt = *to;
  if (dtype_size(x.dtype()) == 0)
    return Status::error(std::string("input dtype ") + dtype_name(x.dtype()) + " is not supported");
  if (dt == x.dtype()) {
    ctx.set_output(0, x);
    return Status::ok();
  }
  Tensor& y = ctx.allocate_output(0, dt, x.shape());
  if (ctx.skip_compute(y)) return Status::ok();  // only a large float output
  const int64_t n = x.numel();
  const void* src = x.raw();
  void* dst = y.mutable_raw();
  if (x.dtype() == DType::kFloat32 && dt == DType::kFloat16) {
    const float* s = static_cast<const float*>(src);
    uint16_t* d = static_cast<uint16_t*>(dst);
    parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = float_to_half_bits(s[i]);
    });
    return Status::ok();
  }
  if (x.dtype() == DType::kFloat16 && dt == DType::kFloat32) {
    const uint16_t* s = static_cast<const uint16_t*>(src);
    float* d = static_cast<float*>(dst);
    parallel_for(n, 16384, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) d[i] = half_bits_to_float(s[i]);
    });
    return Status::ok();
  }
  visit_dtype(x.dtype(), [&](auto stag) {
    using S = typename decltype(stag)::type;
    visit_dtype(dt, [&](auto dtag) {
      using D = typename decltype(dtag)::type;
      const S* s = static_cast<const S*>(src);
      D* d = static_cast<D*>(dst);
      parallel_for(n, 16384, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) d[i] = convert<D>(s[i]);
      });
    });
  });
  return Status::ok();
}

// CastLike(input, target_type): Cast to target_type's dtype (its values
// are not read). Cast reads its target from the prepared data, which this
// call points at the dtype for the length of the call.
Status CastLike(KernelContext& ctx) {
  if (!ctx.has_input(1)) return Status::error("missing required input 'target_type' (input 1)");
  const DType to = ctx.input(1).dtype();
  if (dtype_size(to) == 0)
    return Status::error(std::string("input 'target_type' has dtype ") + dtype_name(to) + ", which is not supported");
  if (ctx.opset() >= 19) SARAI_RETURN_IF_ERROR(attr_flag(ctx.node(), "saturate", true).status());
  ctx.set_prepared(&to);
  return Cast(ctx);
}

// ----------------------------------------------------------------- Constant

// The value, decoded once into a tensor: exactly one of the value
// attributes, numeric and dense.
Expected<std::shared_ptr<const void>> PrepareConstant(const Node& node, int64_t /*opset*/) {
  for (const char* name : {"sparse_value", "value_string", "value_strings"})
    if (node.has_attr(name))
      return Status::error(std::string("attribute '") + name + "' is unsupported (only numeric dense "
                           "tensors are; sparse and string constants are not)");
  int given = 0;
  for (const char* name : {"value", "value_float", "value_floats", "value_int", "value_ints"}) given += node.has_attr(name);
  if (given == 0)
    return Status::error("has none of the attributes value, value_float, value_floats, value_int, value_ints");
  if (given > 1)
    return Status::error("has " + std::to_string(given) +
                         " of the attributes value, value_float, value_floats, value_int, value_ints (exactly one "
                         "is allowed)");
  Tensor t;
  if (const Attribute* a = node.attr("value")) {
    if (a->kind != Attribute::Kind::kTensor)
      return Status::error("attribute 'value' must be a tensor");
    if (dtype_size(a->t.dtype()) == 0)
      return Status::error(std::string("attribute 'value' has unsupported dtype ") + dtype_name(a->t.dtype()));
    t = a->t;
  } else if (const Attribute* f = node.attr("value_float")) {
    t = Tensor::allocate(DType::kFloat32, {});
    t.mutable_data<float>()[0] = f->f;
  } else if (const Attribute* i = node.attr("value_int")) {
    t = Tensor::allocate(DType::kInt64, {});
    t.mutable_data<int64_t>()[0] = i->i;
  } else if (const Attribute* fs = node.attr("value_floats")) {
    t = Tensor::allocate(DType::kFloat32, {static_cast<int64_t>(fs->floats.size())});
    if (!fs->floats.empty()) std::memcpy(t.mutable_raw(), fs->floats.data(), fs->floats.size() * sizeof(float));
  } else {
    const Attribute* is = node.attr("value_ints");
    t = Tensor::allocate(DType::kInt64, {static_cast<int64_t>(is->ints.size())});
    if (!is->ints.empty()) std::memcpy(t.mutable_raw(), is->ints.data(), is->ints.size() * sizeof(int64_t));
  }
  return prepared_data(std::move(t));
}

Status Constant(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const Tensor* value, ctx.prepared<Tensor>(PrepareConstant));
  ctx.set_output(0, *value);
  return Status::ok();
}

// ---------------------------------------------------------- ConstantOfShape

namespace {
// ConstantOfShape's value: its dtype and bytes (in the node's attribute,
// which outlives the session); none means float 0.
struct FillValue {
  DType dtype = DType::kFloat32;
  const void* value = nullptr;
};
}  // namespace

Expected<std::shared_ptr<const void>> PrepareConstantOfShape(const Node& node, int64_t /*opset*/) {
  FillValue p;
  if (const Attribute* a = node.attr("value")) {
    if (a->kind != Attribute::Kind::kTensor || a->t.numel() != 1)
      return Status::error("attribute 'value' must be a one-element tensor" +
                           (a->kind == Attribute::Kind::kTensor ? ", got shape " + shape_to_string(a->t.shape())
                                                                : std::string()));
    p.dtype = a->t.dtype();
    if (dtype_size(p.dtype) == 0)
      return Status::error(std::string("attribute 'value' has unsupported dtype ") + dtype_name(p.dtype));
    p.value = a->t.raw();
  }
  return prepared_data(p);
}

Status ConstantOfShape(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'input'");
  const Tensor& s = ctx.input(0);
  if (s.dtype() != DType::kInt64 && s.dtype() != DType::kInt32)
    return Status::error(std::string("input 'input' must be int64, got ") + dtype_name(s.dtype()));
  if (s.rank() > 1)
    return Status::error("input 'input' must be 1-D, got shape " + shape_to_string(s.shape()));
  Shape out(static_cast<size_t>(s.numel()));
  for (int64_t i = 0; i < s.numel(); ++i) out[static_cast<size_t>(i)] = s.int_at(i);
  SARAI_ASSIGN_OR_RETURN(const FillValue* fill, ctx.prepared<FillValue>(PrepareConstantOfShape));
  const DType dt = fill->dtype;
  const void* value = fill->value;
  const size_t es = dtype_size(dt);
  auto n = checked_numel(out, es);
  if (!n) return Status::error("invalid output shape " + shape_to_string(out) + ": " + n.message());
  const auto* v = static_cast<const unsigned char*>(value);
  if (!value || std::all_of(v, v + es, [](unsigned char c) { return c == 0; })) {
    ctx.allocate_output_zeroed(0, dt, out);  // the default value, 0
    return Status::ok();
  }
  Tensor& y = ctx.allocate_output(0, dt, out);
  if (*n == 0 || ctx.skip_compute(y)) return Status::ok();
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  parallel_for(*n, 16384, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) std::memcpy(dst + i * static_cast<int64_t>(es), v, es);
  });
  return Status::ok();
}

// -------------------------------------------------------------------- Range

namespace {

// ceil(a / b) for b != 0, with C++'s truncating division corrected.
__int128 ceil_div(__int128 a, __int128 b) {
  __int128 q = a / b;
  if (a % b != 0 && ((a > 0) == (b > 0))) ++q;
  return q;
}

template <class T>
Status range_impl(KernelContext& ctx, const Tensor& ts, const Tensor& tl, const Tensor& td) {
  const T start = ts.data<T>()[0], limit = tl.data<T>()[0], delta = td.data<T>()[0];
  if (delta == 0) return Status::error("delta is 0");
  int64_t n;
  // Spec: number_of_elements = max(ceil((limit - start) / delta), 0), and
  // output[i] = start + i * delta, computed in T.
  if constexpr (std::is_floating_point_v<T>) {
    const double c = std::ceil(static_cast<double>(static_cast<T>((limit - start) / delta)));
    if (!std::isfinite(c) || c > static_cast<double>(int64_t{1} << 40))
      return Status::error("start " + std::to_string(start) + ", limit " + std::to_string(limit) +
                           ", delta " + std::to_string(delta) + " give an unusable element count");
    n = c > 0 ? static_cast<int64_t>(c) : 0;  // a huge negative c must not be cast
  } else {
    const __int128 c = ceil_div(static_cast<__int128>(limit) - start, delta);
    if (c > (__int128{1} << 40))
      return Status::error("start " + std::to_string(start) + ", limit " + std::to_string(limit) +
                           ", delta " + std::to_string(delta) + " give too many elements");
    n = c > 0 ? static_cast<int64_t>(c) : 0;
  }
  Tensor& y = ctx.allocate_output(0, ts.dtype(), {n});
  T* p = y.mutable_data<T>();
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>)
      p[i] = start + static_cast<T>(i) * delta;
    else
      p[i] = static_cast<T>(static_cast<__int128>(start) + static_cast<__int128>(i) * delta);
  }
  return Status::ok();
}

}  // namespace

Status Range(KernelContext& ctx) {
  const char* names[3] = {"start", "limit", "delta"};
  for (int i = 0; i < 3; ++i) {
    if (!ctx.has_input(i)) return Status::error(std::string("missing required input '") + names[i] + "'");
    if (ctx.input(i).numel() != 1)
      return Status::error(std::string("input '") + names[i] + "' must be a scalar, got shape " +
                           shape_to_string(ctx.input(i).shape()));
    if (ctx.input(i).dtype() != ctx.input(0).dtype())
      return Status::error(std::string("input '") + names[i] + "' has dtype " + dtype_name(ctx.input(i).dtype()) +
                           " but 'start' has " + dtype_name(ctx.input(0).dtype()));
  }
  const Tensor &s = ctx.input(0), &l = ctx.input(1), &d = ctx.input(2);
  switch (s.dtype()) {
    case DType::kFloat32: return range_impl<float>(ctx, s, l, d);
    case DType::kFloat64: return range_impl<double>(ctx, s, l, d);
    case DType::kInt16: return range_impl<int16_t>(ctx, s, l, d);
    case DType::kInt32: return range_impl<int32_t>(ctx, s, l, d);
    case DType::kInt64: return range_impl<int64_t>(ctx, s, l, d);
    default:
      return Status::error(std::string("inputs have dtype ") + dtype_name(s.dtype()) +
                           "; Range supports float32, float64, int16, int32, int64");
  }
}

// Pad (opsets 2-21): constant, reflect, edge and (opset 19) wrap.
// Opset < 11 takes `pads` and a float `value` as attributes; from 11 `pads`
// (int64 [2 * rank], or [2 * len(axes)] with opset 18's `axes` input) and an
// optional scalar `constant_value` of X's dtype are inputs. Negative pads
// crop. Each output coordinate maps to a source coordinate per axis:
// reflect mirrors without repeating the edge (period 2 (n - 1), any pad
// size, as numpy.pad), edge clamps, wrap takes it modulo n.
namespace {
enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// The source index of output coordinate c - begin on an axis of n, or -1
// (constant padding).
int64_t pad_source(int64_t c, int64_t n, PadMode mode) {
  if (c >= 0 && c < n) return c;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return c < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((c % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      int64_t k = ((c % period) + period) % period;
      return k < n ? k : period - k;
    }
  }
  return -1;
}
}  // namespace

Expected<std::shared_ptr<const void>> PreparePad(const Node& node, int64_t opset) {
  const std::string_view m = node.attr_string_view("mode", "constant");
  PadMode mode;
  if (m == "constant") mode = PadMode::kConstant;
  else if (m == "reflect") mode = PadMode::kReflect;
  else if (m == "edge") mode = PadMode::kEdge;
  else if (m == "wrap" && opset >= 19) mode = PadMode::kWrap;
  else
    return Status::error("attribute 'mode' is '" + std::string(m) + "'; expected constant, reflect, edge" +
                         (opset >= 19 ? " or wrap" : " (wrap needs opset 19)"));
  return prepared_data(mode);
}

Status Pad(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'data'");
  SARAI_ASSIGN_OR_RETURN(const PadMode* mode_p, ctx.prepared<PadMode>(PreparePad));
  const PadMode mode = *mode_p;
  const Tensor& x = ctx.input(0);
  const int rank = x.rank();
  const size_t es = dtype_size(x.dtype());
  if (es == 0) return Status::error(std::string("unsupported input dtype ") + dtype_name(x.dtype()));
  Shape pads;
  Shape axes;
  std::vector<unsigned char> value(es, 0);
  if (ctx.opset() < 11) {
    const Attribute* a = ctx.node().find_attr("pads");
    if (!a) return Status::error("attribute 'pads' is missing");
    pads.assign(a->ints.begin(), a->ints.end());
    const float v = attr_float_of(ctx.node(), "value", 0.f);
    if (x.dtype() != DType::kFloat32 && v != 0.f)
      return Status::error(std::string("attribute 'value' needs float32 data, got ") + dtype_name(x.dtype()));
    if (x.dtype() == DType::kFloat32) std::memcpy(value.data(), &v, es);
  } else {
    if (!ctx.has_input(1)) return Status::error("missing required input 'pads'");
    SARAI_ASSIGN_OR_RETURN(pads, int_list_input(ctx, 1, "pads"));
    if (ctx.has_input(2)) {
      const Tensor& cv = ctx.input(2);
      if (cv.dtype() != x.dtype())
        return Status::error(std::string("input 'constant_value' has dtype ") + dtype_name(cv.dtype()) +
                             "; it must be the data's, " + dtype_name(x.dtype()));
      if (cv.numel() != 1)
        return Status::error("input 'constant_value' " + shape_to_string(cv.shape()) + " must hold one value");
      std::memcpy(value.data(), cv.raw(), es);
    }
    if (ctx.has_input(3)) {
      SARAI_ASSIGN_OR_RETURN(axes, int_list_input(ctx, 3, "axes"));
    }
  }
  if (axes.empty())
    for (int d = 0; d < rank; ++d) axes.push_back(d);
  if (pads.size() != 2 * axes.size())
    return Status::error("pads " + shape_to_string(pads) + " must hold 2 values per padded axis (" +
                         std::to_string(2 * axes.size()) + ") for data " + shape_to_string(x.shape()));
  Shape begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  std::vector<bool> seen(static_cast<size_t>(rank), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    SARAI_ASSIGN_OR_RETURN(const int ax, normalize_axis(axes[i], rank, "input 'axes'"));
    if (seen[static_cast<size_t>(ax)]) return Status::error("input 'axes' names axis " + std::to_string(ax) + " twice");
    seen[static_cast<size_t>(ax)] = true;
    begin[static_cast<size_t>(ax)] = pads[i];
    end[static_cast<size_t>(ax)] = pads[i + axes.size()];
  }
  Shape out(static_cast<size_t>(rank), 0);
  for (int d = 0; d < rank; ++d) {
    const size_t u = static_cast<size_t>(d);
    int64_t o = 0;
    if (__builtin_add_overflow(x.dim(d), begin[u], &o) || __builtin_add_overflow(o, end[u], &o) || o < 0)
      return Status::error("pads " + shape_to_string(pads) + " give axis " + std::to_string(d) + " of data " +
                           shape_to_string(x.shape()) + " a negative or too large size");
    if (mode != PadMode::kConstant && x.dim(d) == 0 && o > 0)
      return Status::error("axis " + std::to_string(d) + " of data " + shape_to_string(x.shape()) +
                           " is empty: nothing to pad from in this mode");
    out[u] = o;
  }
  SARAI_RETURN_IF_ERROR(checked_numel(out, es).status());
  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const auto* src = static_cast<const unsigned char*>(x.raw());
  auto* dst = static_cast<unsigned char*>(y.mutable_raw());
  if (rank == 0) {
    std::memcpy(dst, src, es);
    return Status::ok();
  }
  // Source index per output coordinate, per axis (-1: constant).
  std::vector<std::vector<int64_t>> map(static_cast<size_t>(rank));
  for (int d = 0; d < rank; ++d) {
    auto& m = map[static_cast<size_t>(d)];
    m.resize(static_cast<size_t>(out[static_cast<size_t>(d)]));
    for (int64_t o = 0; o < out[static_cast<size_t>(d)]; ++o)
      m[static_cast<size_t>(o)] = pad_source(o - begin[static_cast<size_t>(d)], x.dim(d), mode);
  }
  Shape in_strides(static_cast<size_t>(rank), 1);
  for (int d = rank - 2; d >= 0; --d) in_strides[static_cast<size_t>(d)] = in_strides[static_cast<size_t>(d) + 1] * x.dim(d + 1);
  const int64_t row = out[static_cast<size_t>(rank - 1)];
  const int64_t rows = y.numel() / row;
  const auto& last = map[static_cast<size_t>(rank - 1)];
  parallel_for(rows, std::max<int64_t>(1, 16384 / row), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      // The outer coordinates of row r, and its source row (or none).
      int64_t rem = r, off = 0;
      bool constant_row = false;
      for (int d = rank - 2; d >= 0; --d) {
        const int64_t o = rem % out[static_cast<size_t>(d)];
        rem /= out[static_cast<size_t>(d)];
        const int64_t si = map[static_cast<size_t>(d)][static_cast<size_t>(o)];
        if (si < 0) constant_row = true;
        else off += si * in_strides[static_cast<size_t>(d)];
      }
      unsigned char* drow = dst + static_cast<size_t>(r * row) * es;
      for (int64_t o = 0; o < row; ++o) {
        const int64_t si = constant_row ? -1 : last[static_cast<size_t>(o)];
        std::memcpy(drow + static_cast<size_t>(o) * es, si < 0 ? value.data() : src + static_cast<size_t>(off + si) * es, es);
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
