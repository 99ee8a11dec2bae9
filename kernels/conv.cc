// Conv and ConvTranspose on float32, any number of spatial dims.
//
// Conv, per (batch n, group g), is one GEMM over an im2col matrix:
//   Y[n, g*Mg + m, o] = sum_r W[g*Mg + m, r] * col[r, o] (+ B[g*Mg + m])
// where r = (c, k) runs over the group's Cg input channels times the kernel
// taps, o over the output positions, and
//   col[(c, k), o] = X[n, g*Cg + c, o*stride - pad_begin + k*dilation]
// (0 outside the input). A 1x1 kernel with unit strides and no padding uses
// X itself as the col matrix. Depthwise convs (group == C == M) are a direct
// loop instead, since their im2col matrix would be as large as the work.
// Every other Conv builds col one block of output positions at a time
// (block_plan): each thread fills the block's columns into its own slice
// of a workspace that stays in cache (instead of the whole matrix: 2.4 GB
// for 64 channels, 3x3, at 1024x1024) and runs one single-threaded sgemm
// on it. The blocks depend on the shape only, so the result is the same at
// every thread count.
//
// ConvTranspose is the adjoint: col = W_g^T * X_g (one GEMM), then col2im
// scatters col[(m, k), i] into Y[n, g*Mg + m, i*stride - pad_begin + k*dilation].
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>

#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "oneapi/dnnl/dnnl.h"
#include "runtime/memory_stats.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

Status sgemm(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
             const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return Status::ok();
  if (k == 0) {
    if (beta == 0.f) std::fill(c, c + m * ldc, 0.f);
    return Status::ok();
  }
  dnnl_status_t st;
  {
    // oneDNN's sgemm mallocs its packing buffers per call: attribute them.
    ForeignAllocationScope foreign;
    st = dnnl_sgemm(trans_a ? 'T' : 'N', 'N', m, n, k, 1.f, a, std::max<int64_t>(lda, 1), b,
                    std::max<int64_t>(ldb, 1), beta, c, std::max<int64_t>(ldc, 1));
  }
  if (st != dnnl_success)
    return Status::error("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) +
                         ") for M=" + std::to_string(m) + " N=" + std::to_string(n) +
                         " K=" + std::to_string(k));
  return Status::ok();
}

using convgeo::ConvGeometry;

// Shape checks shared by both ops: X is [N, C, spatial...], W has X's rank,
// B (if given) is 1-D of length `bias_len`.
Status check_x_w(const KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return Status::error("missing required input X or W");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  for (int i = 0; i < 3; ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input(i).dtype() != DType::kFloat32)
      return Status::error(std::string("input ") + "XWB"[i] + " has dtype " +
                           dtype_name(ctx.input(i).dtype()) + "; only float32 is supported");
  }
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  if (w.rank() != x.rank())
    return Status::error("W " + shape_to_string(w.shape()) + " must have the rank of X " +
                         shape_to_string(x.shape()));
  return Status::ok();
}

Status check_bias(const KernelContext& ctx, int64_t m) {
  if (!ctx.has_input(2)) return Status::ok();
  const Tensor& b = ctx.input(2);
  if (b.rank() != 1 || b.dim(0) != m)
    return Status::error("bias B " + shape_to_string(b.shape()) + " must be [" + std::to_string(m) +
                         "] (one value per output channel)");
  return Status::ok();
}

// Fills each of `planes` planes of `plane_size` floats with the bias of its
// channel (plane p is channel p % channels), or with zeros without bias: the
// starting value of the kernels that accumulate into y (the output's memory
// is uninitialized, runtime/kernel.h).
void init_output(const KernelContext& ctx, float* y, int64_t planes, int64_t channels,
                 int64_t plane_size) {
  const float* b = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
  parallel_for(planes, 16, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p)
      std::fill(y + p * plane_size, y + (p + 1) * plane_size, b ? b[p % channels] : 0.f);
  });
}

// ceil(a / b) for b > 0 and any sign of a.
int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

// Splits flat kernel index `kidx` into per-dim offsets (row-major).
void unravel(int64_t idx, const Shape& dims, int64_t* out) {
  for (size_t d = dims.size(); d-- > 0;) {
    out[d] = idx % dims[d];
    idx /= dims[d];
  }
}

// The line (all dims but the last) that outer position `pos` reaches with
// kernel tap `kk`: pos[d] * stride - pad_begin + kk[d] * dilation for d <
// last, flattened over `extent` (the geometry's input dims for im2col, its
// output dims for col2im); -1 when it falls outside.
int64_t line_offset(const ConvGeometry& g, const int64_t* pos, const int64_t* kk, const Shape& extent,
                    int last) {
  int64_t base = 0;
  for (int d = 0; d < last; ++d) {
    const int64_t i = pos[d] * g.strides[d] - g.pad_begin[d] + kk[d] * g.dilations[d];
    if (i < 0 || i >= extent[d]) return -1;
    base = base * extent[d] + i;
  }
  return base;
}

// The blocks of Conv's im2col path: `blocks` equal runs of output positions
// (the first out % blocks of them one wider, none wider than `cols`), each
// at least kMinBlockCols wide when the output has that many (oneDNN sends a
// tail of a few columns to another kernel) and with its col slice near
// kBlockColBytes (Zen 3's L2; 128 KiB to 2 MiB measured the same within
// the noise, 1024-column minimums 1.5-2.5x slower at 512 channels, 32x32);
// `mblocks` splits the output channels when there are too few position
// blocks to keep the threads busy. Fixed counts, not num_threads(): the
// same bytes at every thread count.
constexpr int64_t kBlockColBytes = int64_t{1} << 19;
constexpr int64_t kMinBlockCols = 256;
constexpr int64_t kMaxBlockCols = 4096;
constexpr int64_t kMinBlockChannels = 32;
constexpr int64_t kMinTasks = 8;

struct BlockPlan {
  int64_t blocks = 1, cols = 0, mblocks = 1;
};

BlockPlan block_plan(int64_t rows, int64_t out_size, int64_t images, int64_t mg) {
  BlockPlan p;
  const int64_t want = std::clamp<int64_t>(kBlockColBytes / static_cast<int64_t>(sizeof(float)) /
                                               std::max<int64_t>(rows, 1),
                                           kMinBlockCols, kMaxBlockCols);
  p.blocks = std::max<int64_t>(1, out_size / want);
  p.cols = (out_size + p.blocks - 1) / p.blocks;
  const int64_t tasks = images * p.blocks;
  if (tasks < kMinTasks)
    p.mblocks = std::clamp<int64_t>(mg / kMinBlockChannels, 1, (kMinTasks + tasks - 1) / tasks);
  return p;
}

// col[(c, k), j] = X[c, o0 + j's input tap] for the `ncols` output positions
// from o0 on (flat over g.out), the Cg channels starting at `x`; col has
// row stride ncols. Positions are walked line by line (the last spatial
// dim): per line the taps inside the input are one copy (stride 1) or one
// strided gather, with zeros on either side.
void im2col_block(const ConvGeometry& g, const float* x, int64_t channels, int64_t o0, int64_t ncols,
                  float* col) {
  const int64_t ksize = g.kernel_size(), in_size = g.in_size();
  const int nsp = g.nsp, last = nsp - 1;
  const int64_t out_last = g.out[static_cast<size_t>(last)], w = g.in[static_cast<size_t>(last)];
  const int64_t s = g.strides[static_cast<size_t>(last)];
  const Shape outer_dims(g.out.begin(), g.out.end() - 1);
  Shape kk(static_cast<size_t>(nsp)), o(static_cast<size_t>(nsp));
  for (int64_t r = 0; r < channels * ksize; ++r) {
    const float* src = x + (r / ksize) * in_size;
    float* dst = col + r * ncols;
    unravel(r % ksize, g.kernel, kk.data());
    const int64_t shift = kk[last] * g.dilations[last] - g.pad_begin[last];
    // Output columns whose input column ol * s + shift is inside [0, w).
    const int64_t lo = std::clamp<int64_t>(ceil_div(-shift, s), 0, out_last);
    const int64_t hi = std::clamp<int64_t>(ceil_div(w - shift, s), lo, out_last);
    int64_t pos = o0;
    const int64_t end = o0 + ncols;
    while (pos < end) {
      const int64_t op = pos / out_last, ol0 = pos % out_last;
      const int64_t ol1 = std::min(out_last, ol0 + (end - pos));
      float* row = dst + (pos - o0) - ol0;  // row[ol] is position op * out_last + ol
      unravel(op, outer_dims, o.data());
      const int64_t base = line_offset(g, o.data(), kk.data(), g.in, last);
      if (base < 0) {
        std::fill(row + ol0, row + ol1, 0.f);
      } else {
        const float* line = src + base * w;  // line[ol * s + shift] is the tap of column ol
        const int64_t a = std::clamp(lo, ol0, ol1), b = std::clamp(hi, a, ol1);
        std::fill(row + ol0, row + a, 0.f);
        if (s == 1) {
          if (b > a) std::memcpy(row + a, line + a + shift, static_cast<size_t>(b - a) * sizeof(float));
        } else {
          for (int64_t ol = a; ol < b; ++ol) row[ol] = line[ol * s + shift];
        }
        std::fill(row + b, row + ol1, 0.f);
      }
      pos += ol1 - ol0;
    }
  }
}

// Adds col[(m, k), i] into y at i*stride - pad_begin + k*dilation, for
// `channels` output channels (each out_size floats). Each thread owns whole
// output channels, so the scatter needs no atomics.
void col2im(const ConvGeometry& g, const float* col, int64_t channels, float* y) {
  const int64_t ksize = g.kernel_size(), in_size = g.in_size(), out_size = g.out_size();
  const int nsp = g.nsp, last = nsp - 1;
  const int64_t in_last = g.in[static_cast<size_t>(last)];
  const int64_t outer = in_size / std::max<int64_t>(in_last, 1);
  const Shape outer_dims(g.in.begin(), g.in.end() - 1);
  parallel_for(channels, 1, [&](int64_t begin, int64_t end) {
    Shape kk(static_cast<size_t>(nsp)), i(static_cast<size_t>(nsp));
    for (int64_t m = begin; m < end; ++m) {
      float* dst = y + m * out_size;
      for (int64_t k = 0; k < ksize; ++k) {
        const float* src = col + (m * ksize + k) * in_size;
        unravel(k, g.kernel, kk.data());
        const int64_t s = g.strides[last];
        const int64_t shift = kk[last] * g.dilations[last] - g.pad_begin[last];
        const int64_t w = g.out[last];
        for (int64_t ip = 0; ip < outer; ++ip) {
          unravel(ip, outer_dims, i.data());
          const int64_t base = line_offset(g, i.data(), kk.data(), g.out, last);
          if (base < 0) continue;
          float* line = dst + base * w;
          const float* row = src + ip * in_last;
          for (int64_t il = 0; il < in_last; ++il) {
            int64_t o = il * s + shift;
            if (o >= 0 && o < w) line[o] += row[il];
          }
        }
      }
    }
  });
}

// Depthwise conv with 1 or 2 spatial dims (1-D is 2-D with H = 1), one
// output plane per (n, c), accumulated over the kernel taps directly.
void depthwise_2d(const ConvGeometry& g, const float* x, const float* w, int64_t planes,
                  int64_t channels, float* y) {
  const bool is1d = g.nsp == 1;
  const int64_t ih = is1d ? 1 : g.in[0], iw = g.in[g.nsp - 1];
  const int64_t oh = is1d ? 1 : g.out[0], ow = g.out[g.nsp - 1];
  const int64_t kh = is1d ? 1 : g.kernel[0], kw = g.kernel[g.nsp - 1];
  const int64_t sh = is1d ? 1 : g.strides[0], sw = g.strides[g.nsp - 1];
  const int64_t dh = is1d ? 1 : g.dilations[0], dw = g.dilations[g.nsp - 1];
  const int64_t ph = is1d ? 0 : g.pad_begin[0], pw = g.pad_begin[g.nsp - 1];
  parallel_for(planes, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const float* src = x + p * ih * iw;
      const float* ker = w + (p % channels) * kh * kw;
      float* dst = y + p * oh * ow;  // init_output wrote the bias (or 0)
      // Row by row, all taps on one output row while it is in L1; each
      // element still sums its taps in (a, b) order.
      for (int64_t r = 0; r < oh; ++r) {
        float* out = dst + r * ow;
        for (int64_t a = 0; a < kh; ++a) {
          const int64_t yi = r * sh - ph + a * dh;
          if (yi < 0 || yi >= ih) continue;
          for (int64_t b = 0; b < kw; ++b) {
            const float wv = ker[a * kw + b];
            // Output columns whose input column c*sw - pw + b*dw is inside.
            const int64_t shift = b * dw - pw;
            const int64_t c0 = std::clamp<int64_t>(ceil_div(-shift, sw), 0, ow);
            const int64_t c1 = std::clamp<int64_t>(ceil_div(iw - shift, sw), c0, ow);
            const float* line = src + yi * iw + shift;
            if (sw == 1) {
              for (int64_t c = c0; c < c1; ++c) out[c] += wv * line[c];
            } else {
              for (int64_t c = c0; c < c1; ++c) out[c] += wv * line[c * sw];
            }
          }
        }
      }
    }
  });
}

}  // namespace

// The attributes, read and checked once per node (conv_geometry.h).
Expected<std::shared_ptr<const void>> PrepareConv(const Node& node, int64_t) {
  convgeo::ConvAttrs a;
  SARAI_RETURN_IF_ERROR(convgeo::read_conv_attrs(node, /*transpose=*/false, &a));
  return prepared_data(std::move(a));
}

Expected<std::shared_ptr<const void>> PrepareConvTranspose(const Node& node, int64_t) {
  convgeo::ConvAttrs a;
  SARAI_RETURN_IF_ERROR(convgeo::read_conv_attrs(node, /*transpose=*/true, &a));
  return prepared_data(std::move(a));
}

Status Conv(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_x_w(ctx));
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* a, ctx.prepared<convgeo::ConvAttrs>(PrepareConv));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0);
  const int64_t group = a->group;
  ConvGeometry g;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv(*a, x.shape(), w.shape(), &g));
  SARAI_RETURN_IF_ERROR(check_bias(ctx, m));

  Shape out_shape = {n, m};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();
  const int64_t out_size = g.out_size(), in_size = g.in_size();
  const bool depthwise = group == c && group == m && g.nsp <= 2;
  const int64_t cg = c / group, mg = m / group, rows = cg * g.kernel_size();
  bool pointwise = true;
  for (size_t i = 0; i < static_cast<size_t>(g.nsp); ++i)
    pointwise = pointwise && g.kernel[i] == 1 && g.strides[i] == 1 && g.pad_begin[i] == 0 &&
                g.pad_end[i] == 0;
  const BlockPlan plan = block_plan(rows, out_size, n * group, mg);
  const int slots = thread_slots(ctx);
  float* col = depthwise || pointwise ? nullptr : ctx.workspace<float>(rows * plan.cols * slots);
  if (ctx.skip_compute(y)) return Status::ok();
  float* py = y.mutable_data<float>();
  const float* px = x.data<float>();
  const float* pw = w.data<float>();

  if (depthwise) {
    init_output(ctx, py, n * c, c, out_size);
    depthwise_2d(g, px, pw, n * c, c, py);
    return Status::ok();
  }

  // The GEMM adds to the bias (beta 1), or overwrites y (beta 0).
  const bool has_bias = ctx.has_input(2);
  const float beta = has_bias ? 1.f : 0.f;
  if (pointwise) {
    if (has_bias) init_output(ctx, py, n * m, m, out_size);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t gi = 0; gi < group; ++gi)
        SARAI_RETURN_IF_ERROR(sgemm(false, mg, out_size, rows, pw + gi * mg * rows, rows,
                                    px + (b * c + gi * cg) * in_size, out_size, beta,
                                    py + (b * m + gi * mg) * out_size, out_size));
    return Status::ok();
  }

  // Tasks (image and group, position block, channel block), channel blocks
  // innermost so that neighbours share a block's col when mblocks > 1 (each
  // task still fills its own).
  const float* bias = has_bias ? ctx.input(2).data<float>() : nullptr;
  const int64_t tasks = n * group * plan.blocks * plan.mblocks;
  std::atomic<bool> failed{false};
  Status first = Status::ok();
  std::mutex mu;
  parallel_for(tasks, 1, [&](int64_t t0, int64_t t1) {
    // oneDNN on one thread, also when this runs inline: a block's bytes
    // must not depend on the session's thread count.
    const int saved = num_threads();
    set_num_threads(1);
    float* colp = col + thread_index() * rows * plan.cols;
    for (int64_t t = t0; t < t1 && !failed.load(std::memory_order_relaxed); ++t) {
      const int64_t mb = t % plan.mblocks, blk = (t / plan.mblocks) % plan.blocks;
      const int64_t img = t / (plan.mblocks * plan.blocks), b = img / group, gi = img % group;
      const int64_t q = out_size / plan.blocks, rem = out_size % plan.blocks;
      const int64_t o0 = blk * q + std::min(blk, rem), nc = q + (blk < rem ? 1 : 0);
      const int64_t m0 = mg * mb / plan.mblocks, nm = mg * (mb + 1) / plan.mblocks - m0;
      if (nc <= 0 || nm <= 0) continue;
      im2col_block(g, px + (b * c + gi * cg) * in_size, cg, o0, nc, colp);
      const int64_t ch0 = gi * mg + m0;
      float* yb = py + (b * m + ch0) * out_size + o0;
      if (bias)
        for (int64_t r = 0; r < nm; ++r) std::fill(yb + r * out_size, yb + r * out_size + nc, bias[ch0 + r]);
      Status st = sgemm(false, nm, nc, rows, pw + ch0 * rows, rows, colp, nc, beta, yb, out_size);
      if (!st.is_ok() && !failed.exchange(true)) {
        std::lock_guard<std::mutex> lock(mu);
        first = st;
      }
    }
    set_num_threads(saved);
  });
  return first;
}

Status ConvTranspose(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_x_w(ctx));
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* a, ctx.prepared<convgeo::ConvAttrs>(PrepareConvTranspose));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const int64_t n = x.dim(0), c = x.dim(1);
  const int64_t group = a->group;
  ConvGeometry g;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv_transpose(*a, x.shape(), w.shape(), &g));
  const int64_t mg = w.dim(1), m = mg * group;
  SARAI_RETURN_IF_ERROR(check_bias(ctx, m));

  Shape out_shape = {n, m};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();
  const int64_t out_size = g.out_size(), in_size = g.in_size();
  const int64_t cg = c / group, rows = mg * g.kernel_size();
  float* col = ctx.workspace<float>(rows * in_size);
  if (ctx.skip_compute(y)) return Status::ok();
  float* py = y.mutable_data<float>();
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  // col2im adds into y: start from the bias (or zeros).
  init_output(ctx, py, n * m, m, out_size);

  for (int64_t b = 0; b < n; ++b) {
    for (int64_t gi = 0; gi < group; ++gi) {
      // col[(m, k), i] = sum_c W[g*Cg + c, m, k] * X[b, g*Cg + c, i]
      SARAI_RETURN_IF_ERROR(sgemm(true, rows, in_size, cg, pw + gi * cg * rows, rows,
                                  px + (b * c + gi * cg) * in_size, in_size, 0.f, col,
                                  in_size));
      col2im(g, col, mg, py + (b * m + gi * mg) * out_size);
    }
  }
  return Status::ok();
}

}  // namespace sarai::kernels
