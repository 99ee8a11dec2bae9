// QConv with group > 1 (kernels/cpu/qconv.h): direct kernels over a
// zero-point-padded copy of the input.
//   depthwise (C/group = 1, any channel multiplier): one parallel region
//     over (image, output channel); each thread pads its channel's input
//     into its own buffer (L1/L2 sized for OCR-like shapes) and runs the
//     dw_row micro-kernel (qconv_loops.h) over each output line, its
//     accumulators in registers over all taps, then the channel's epilogue.
//   other groups: per output channel, int32 accumulation of x_q * w over
//     (channel, tap), the innermost loop (QconvLoops::axpy) running over a
//     line of output positions.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/cpu/qconv_internal.h"
#include "runtime/parallel.h"

namespace sarai::kernels::qconv_detail {
namespace {


// x_q padded with zp so every tap of every output position is inside:
// spatial dims P_d = (out_d - 1) * s_d + (k_d - 1) * dil_d + 1, element
// p_d = x[p_d - pad_begin_d] (zp outside the input). Refers to x_q itself
// when no padding is needed.
class PaddedInput {
 public:
  // The padded dims, and whether x_q needs a padded copy at all.
  static Ints padded_dims(const ConvGeometry& g, bool* needed) {
    const size_t n = static_cast<size_t>(g.nsp);
    Ints dims(n);
    bool same = true;
    for (size_t d = 0; d < n; ++d) {
      dims[d] = (g.out[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1;
      same = same && dims[d] == g.in[d] && g.pad_begin[d] == 0;
    }
    *needed = !same;
    return dims;
  }
  // The bytes of the padded copy (0 when x_q is used as it is).
  static int64_t copy_bytes(const qref::ConvProblem& p) {
    bool needed = false;
    const Ints dims = padded_dims(p.g, &needed);
    return needed ? p.batch * p.C * numel_of(dims) : 0;
  }

  // buf: copy_bytes(p) bytes.
  PaddedInput(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, uint8_t* buf) {
    const ConvGeometry& g = p.g;
    const size_t n = static_cast<size_t>(g.nsp);
    bool needed = false;
    dims_ = padded_dims(g, &needed);
    size_ = numel_of(dims_);
    if (!needed) {
      data_ = xq;
      return;
    }
    const int64_t last = dims_[n - 1], in_last = g.in[n - 1], pb_last = g.pad_begin[n - 1];
    const int64_t rows_per_ch = size_ / last, in_size = g.in_size();
    const Ints in_stride = strides_of(g.in);
    // The valid run of the last dim: p in [lo, hi) reads x[p - pb_last].
    const int64_t lo = std::min(pb_last, last), hi = std::clamp<int64_t>(pb_last + in_last, lo, last);
    Ints outer(dims_.begin(), dims_.end() - 1);
    parallel_for(p.batch * p.C * rows_per_ch, 256, [&](int64_t begin, int64_t end) {
      Ints pc(n);
      for (int64_t t = begin; t < end; ++t) {
        const int64_t ch = t / rows_per_ch, row = t % rows_per_ch;
        uint8_t* dst = buf + ch * size_ + row * last;
        unravel(row, outer, pc.data());
        bool inside = true;
        int64_t src_off = 0;
        for (size_t d = 0; d + 1 < n; ++d) {
          const int64_t i = pc[d] - g.pad_begin[d];
          inside = inside && i >= 0 && i < g.in[d];
          src_off += i * in_stride[d];
        }
        if (!inside || hi <= lo) {
          std::memset(dst, zp, static_cast<size_t>(last));
          continue;
        }
        const uint8_t* src = xq + ch * in_size + src_off + (lo - pb_last);
        std::memset(dst, zp, static_cast<size_t>(lo));
        std::memcpy(dst + lo, src, static_cast<size_t>(hi - lo));
        std::memset(dst + hi, zp, static_cast<size_t>(last - hi));
      }
    });
    data_ = buf;
  }

  const uint8_t* channel(int64_t b_c) const { return data_ + b_c * size_; }
  const Ints& dims() const { return dims_; }

 private:
  Ints dims_;
  int64_t size_ = 0;
  const uint8_t* data_ = nullptr;
};

// The grouped path's scratch: the padded input, the taps' offsets in it,
// and one int32 row of accumulators per thread.
struct GroupedScratch {
  uint8_t* padded;  // [PaddedInput::copy_bytes]
  int64_t* koff;    // [taps]
  int32_t* acc;     // [num_threads() * out_size]
};

GroupedScratch carve_grouped(const qref::ConvProblem& p, Carver& cv) {
  GroupedScratch s;
  s.padded = cv.take<uint8_t>(PaddedInput::copy_bytes(p));
  s.koff = cv.take<int64_t>(p.g.kernel_size());
  s.acc = cv.take<int32_t>(num_threads() * p.g.out_size());
  return s;
}

// The depthwise path's scratch: per thread, one padded input channel
// (with dw_row's read slack), the weight pairs and one int32 output
// channel; the taps' offsets are shared.
struct DepthwiseScratch {
  int64_t chan_bytes = 0;  // one padded channel + slack, 64-byte multiple
  uint8_t* padded;         // [num_threads() * chan_bytes]
  int64_t* koff;           // [taps]
  int32_t* wp;             // [num_threads() * wp_stride]
  int64_t wp_stride = 0;
  int32_t* acc;            // [num_threads() * out_size]
};

DepthwiseScratch carve_depthwise(const qref::ConvProblem& p, Carver& cv) {
  bool needed = false;
  const int64_t nt = num_threads(), ks = p.g.kernel_size();
  DepthwiseScratch s;
  s.chan_bytes = (numel_of(PaddedInput::padded_dims(p.g, &needed)) + kDwRowSlack + 63) / 64 * 64;
  s.wp_stride = ((ks + 1) / 2 + 15) / 16 * 16;
  s.padded = cv.take<uint8_t>(nt * s.chan_bytes);
  s.koff = cv.take<int64_t>(ks);
  s.wp = cv.take<int32_t>(nt * s.wp_stride);
  s.acc = cv.take<int32_t>(nt * p.g.out_size());
  return s;
}

bool is_depthwise(const qref::ConvProblem& p) { return p.C == p.group; }

// Channel x (in dims g.in) into dst (dims `dims`, the padded ones), zp
// outside the input, then `slack` bytes of zp.
void pad_channel(const ConvGeometry& g, const Ints& dims, const uint8_t* x, uint8_t zp,
                 int64_t slack, uint8_t* dst) {
  const size_t n = static_cast<size_t>(g.nsp);
  const int64_t last = dims[n - 1], in_last = g.in[n - 1], pb_last = g.pad_begin[n - 1];
  const int64_t rows = numel_of(dims) / last;
  const Ints in_stride = strides_of(g.in);
  const int64_t lo = std::min(pb_last, last), hi = std::clamp<int64_t>(pb_last + in_last, lo, last);
  const Ints outer(dims.begin(), dims.end() - 1);
  Ints pc(n);
  for (int64_t row = 0; row < rows; ++row, dst += last) {
    unravel(row, outer, pc.data());
    bool inside = hi > lo;
    int64_t src_off = 0;
    for (size_t d = 0; d + 1 < n; ++d) {
      const int64_t i = pc[d] - g.pad_begin[d];
      inside = inside && i >= 0 && i < g.in[d];
      src_off += i * in_stride[d];
    }
    if (!inside) {
      std::memset(dst, zp, static_cast<size_t>(last));
      continue;
    }
    std::memset(dst, zp, static_cast<size_t>(lo));
    std::memcpy(dst + lo, x + src_off + (lo - pb_last), static_cast<size_t>(hi - lo));
    std::memset(dst + hi, zp, static_cast<size_t>(last - hi));
  }
  std::memset(dst, zp, static_cast<size_t>(slack));
}

void conv_depthwise(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const uint8_t* zp_c,
                    const int8_t* w, const QconvLoops& loops, uint8_t* scratch, const RowSink& sink) {
  const ConvGeometry& g = p.g;
  const size_t n = static_cast<size_t>(g.nsp);
  const int64_t mg = p.M / p.group, ks = g.kernel_size();
  const int64_t out_size = g.out_size(), out_last = g.out[n - 1], s_last = g.strides[n - 1];
  const int64_t outer_size = out_size / out_last, in_size = g.in_size();
  Carver cv(scratch);
  const DepthwiseScratch sc = carve_depthwise(p, cv);
  bool needed = false;
  const Ints pdims = PaddedInput::padded_dims(g, &needed);
  const int64_t pad_bytes = numel_of(pdims);
  const Ints pstride = strides_of(pdims);
  {
    Ints k(n);
    for (int64_t r = 0; r < ks; ++r) {
      unravel(r, g.kernel, k.data());
      int64_t off = 0;
      for (size_t d = 0; d < n; ++d) off += k[d] * g.dilations[d] * pstride[d];
      sc.koff[r] = off;
    }
  }
  const Ints outer_dims(g.out.begin(), g.out.end() - 1);
  // Below ~1 M multiply-adds a thread team costs more than it saves.
  const int64_t work = p.batch * p.M * out_size * ks;
  const int64_t grain = work < (int64_t{1} << 20) ? p.batch * p.M : 1;
  parallel_for(p.batch * p.M, grain, [&](int64_t begin, int64_t end) {
    const int64_t t = thread_index();
    uint8_t* xp = sc.padded + t * sc.chan_bytes;
    int32_t* wp = sc.wp + t * sc.wp_stride;
    int32_t* acc = sc.acc + t * out_size;
    Ints oc(n);
    int64_t padded_ch = -1;  // the (image, input channel) now in xp
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t b = bm / p.M, m = bm % p.M, ch = b * p.C + m / mg;
      if (ch != padded_ch) {
        pad_channel(g, pdims, xq + ch * in_size, zp_c ? zp_c[m / mg] : zp, sc.chan_bytes - pad_bytes, xp);
        padded_ch = ch;
      }
      dw_weight_pairs(w + m * ks, ks, wp);
      for (int64_t ov = 0; ov < outer_size; ++ov) {
        unravel(ov, outer_dims, oc.data());
        int64_t base = 0;
        for (size_t d = 0; d + 1 < n; ++d) base += oc[d] * g.strides[d] * pstride[d];
        loops.dw_row(xp + base, s_last, sc.koff, wp, ks, out_last, acc + ov * out_last);
      }
      sink(p, b, m, acc);
    }
  });
}

}  // namespace

int64_t grouped_scratch_bytes(const qref::ConvProblem& p) {
  Carver cv(nullptr);
  if (is_depthwise(p)) carve_depthwise(p, cv);
  else carve_grouped(p, cv);
  return cv.used();
}

void conv_grouped(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const uint8_t* zp_c, const int8_t* w,
                  const QconvLoops& loops, uint8_t* scratch, const RowSink& sink) {
  if (is_depthwise(p)) return conv_depthwise(p, xq, zp, zp_c, w, loops, scratch, sink);
  assert(zp_c == nullptr);
  const ConvGeometry& g = p.g;
  const size_t n = static_cast<size_t>(g.nsp);
  const int64_t cg = p.C / p.group, mg = p.M / p.group, ks = g.kernel_size();
  const int64_t out_size = g.out_size(), out_last = g.out[n - 1], s_last = g.strides[n - 1];
  const int64_t outer_size = out_size / out_last;
  Carver cv(scratch);
  const GroupedScratch sc = carve_grouped(p, cv);
  const PaddedInput xp(p, xq, zp, sc.padded);
  const Ints pstride = strides_of(xp.dims());
  // Per tap: its offset in the padded input.
  int64_t* koff = sc.koff;
  {
    Ints k(n);
    for (int64_t r = 0; r < ks; ++r) {
      unravel(r, g.kernel, k.data());
      int64_t off = 0;
      for (size_t d = 0; d < n; ++d) off += k[d] * g.dilations[d] * pstride[d];
      koff[r] = off;
    }
  }
  Ints outer_dims(g.out.begin(), g.out.end() - 1);
  // Below ~1 M multiply-adds a thread team costs more than it saves.
  const int64_t work = p.batch * p.M * out_size * cg * ks;
  const int64_t grain = work < (int64_t{1} << 20) ? p.batch * p.M : 1;
  parallel_for(p.batch * p.M, grain, [&](int64_t begin, int64_t end) {
    int32_t* acc = sc.acc + thread_index() * out_size;
    Ints oc(n);
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t b = bm / p.M, m = bm % p.M, grp = m / mg;
      const int8_t* wm = w + m * cg * ks;
      for (int64_t ov = 0; ov < outer_size; ++ov) {
        int32_t* row = acc + ov * out_last;
        std::fill(row, row + out_last, 0);
        unravel(ov, outer_dims, oc.data());
        int64_t base = 0;
        for (size_t d = 0; d + 1 < n; ++d) base += oc[d] * g.strides[d] * pstride[d];
        for (int64_t c = 0; c < cg; ++c) {
          const uint8_t* xc = xp.channel(b * p.C + grp * cg + c) + base;
          for (int64_t r = 0; r < ks; ++r) {
            const int16_t wv = wm[c * ks + r];
            if (wv != 0) loops.axpy(row, xc + koff[r], s_last, out_last, wv);
          }
        }
      }
      sink(p, b, m, acc);
    }
  });
}

}  // namespace sarai::kernels::qconv_detail
