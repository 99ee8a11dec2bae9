// QConvTranspose (kernels/cpu/qconv.h): per output channel, per (input
// channel, tap), (x_q - z_x) * w accumulated into the outputs the inputs
// reach (QconvLoops::axpy_zp), each output line split by stride phase so the
// inner loop is contiguous for every stride.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/cpu/qconv_internal.h"
#include "runtime/parallel.h"

namespace sarai::kernels::qconv_detail {
namespace {


// sink(b, ch, row) receives each output channel's int32 row acc[b][ch][:].
//
// Input position i and tap k reach output t = i * s - pad_begin + k * dil
// (per dim) when 0 <= t < out. Along the last dim that is a scatter with
// stride s; to keep the inner loop contiguous (vectorized) for any stride,
// each output line is accumulated split into its s phases: output
// t = j * s + φ lives at [φ][j] of the line, so tap k (t0 = k * dil -
// pad_begin = q0 * s + φ, 0 <= φ < s) adds input i into [φ][i + q0], and the
// phases are interleaved back into the line at the end (s == 1: no split).
// The ConvTranspose path's scratch: per last-dim tap its landing place and
// input range, and per thread an output row and its stride-phase split.
struct TransposeScratch {
  int64_t *at, *lo, *hi;  // [k_last] each
  int32_t* acc;           // [num_threads() * out_size]
  int32_t* split;         // [num_threads() * out_lines * line] when stride > 1
};

// s * ceil(out_last / s): a line split into its stride phases.
int64_t split_line(const ConvGeometry& g) {
  const size_t L = static_cast<size_t>(g.nsp) - 1;
  const int64_t s = g.strides[L];
  return s * ((g.out[L] + s - 1) / s);
}

TransposeScratch carve_transpose(const qref::ConvProblem& p, Carver& cv) {
  const ConvGeometry& g = p.g;
  const size_t L = static_cast<size_t>(g.nsp) - 1;
  const int64_t k_last = g.kernel[L], out_size = g.out_size();
  const int64_t out_lines = out_size / g.out[L], threads = num_threads();
  TransposeScratch s;
  s.at = cv.take<int64_t>(k_last);
  s.lo = cv.take<int64_t>(k_last);
  s.hi = cv.take<int64_t>(k_last);
  s.acc = cv.take<int32_t>(threads * out_size);
  s.split = g.strides[L] > 1 ? cv.take<int32_t>(threads * out_lines * split_line(g)) : nullptr;
  return s;
}

}  // namespace

int64_t transpose_scratch_bytes(const qref::ConvProblem& p) {
  Carver cv(nullptr);
  carve_transpose(p, cv);
  return cv.used();
}

void conv_transpose(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    const QconvLoops& loops, uint8_t* scratch, const RowSink& sink) {
  const ConvGeometry& g = p.g;
  const size_t n = static_cast<size_t>(g.nsp), L = n - 1;
  const int64_t cg = p.C / p.group, mg = p.M / p.group, ks = g.kernel_size();
  const int64_t in_size = g.in_size(), out_size = g.out_size();
  const int64_t in_last = g.in[L], out_last = g.out[L], k_last = g.kernel[L];
  const int64_t s = g.strides[L], d_last = g.dilations[L], pb_last = g.pad_begin[L];
  const Ints in_outer(g.in.begin(), g.in.end() - 1), k_outer(g.kernel.begin(), g.kernel.end() - 1);
  const int64_t in_outer_size = in_last > 0 ? in_size / in_last : 0, k_outer_size = ks / k_last;
  const int64_t out_lines = out_size / out_last;
  const int64_t P = (out_last + s - 1) / s, line = s * P;  // split line: s phases of P
  assert(line == split_line(g));
  Carver cv(scratch);
  const TransposeScratch sc = carve_transpose(p, cv);
  Ints line_stride(n, 0);  // per outer dim: lines per unit step
  for (size_t d = L; d-- > 0;) line_stride[d] = d + 1 == L ? 1 : line_stride[d + 1] * g.out[d + 1];
  // Per last-dim tap k: where input 0 lands in the split line (phase * P +
  // q0) and the input range [lo, hi) that lands inside the output.
  int64_t *at = sc.at, *lo = sc.lo, *hi = sc.hi;
  for (int64_t k = 0; k < k_last; ++k) {
    const int64_t t0 = k * d_last - pb_last;
    const int64_t phase = ((t0 % s) + s) % s, q0 = (t0 - phase) / s;
    const int64_t pn = phase < out_last ? (out_last - phase + s - 1) / s : 0;  // outputs of this phase
    const size_t kk = static_cast<size_t>(k);
    at[kk] = phase * P + q0;
    lo[kk] = std::clamp<int64_t>(-q0, 0, in_last);
    hi[kk] = std::clamp<int64_t>(pn - q0, lo[kk], in_last);
  }
  const int64_t work = p.batch * p.M * in_size * cg * ks;
  const int64_t grain = work < (int64_t{1} << 20) ? p.batch * p.M : 1;
  parallel_for(p.batch * p.M, grain, [&](int64_t begin, int64_t end) {
    int32_t* acc = sc.acc + thread_index() * out_size;
    int32_t* split = s > 1 ? sc.split + thread_index() * out_lines * line : acc;
    Ints ic(n), kc(n);
    for (int64_t bch = begin; bch < end; ++bch) {
      const int64_t b = bch / p.M, ch = bch % p.M, grp = ch / mg, m = ch % mg;
      std::fill(split, split + out_lines * line, 0);
      for (int64_t c = 0; c < cg && in_size > 0; ++c) {
        const int64_t ci = grp * cg + c;
        const uint8_t* x = xq + (b * p.C + ci) * in_size;
        const int8_t* wk = w + (ci * mg + m) * ks;  // W[ci][m][:]
        for (int64_t io = 0; io < in_outer_size; ++io) {
          unravel(io, in_outer, ic.data());
          const uint8_t* xrow = x + io * in_last;
          for (int64_t ko = 0; ko < k_outer_size; ++ko) {
            unravel(ko, k_outer, kc.data());
            int64_t lidx = 0;
            bool inside = true;
            for (size_t d = 0; d < L; ++d) {
              const int64_t t = ic[d] * g.strides[d] - g.pad_begin[d] + kc[d] * g.dilations[d];
              inside = inside && t >= 0 && t < g.out[d];
              lidx += t * line_stride[d];
            }
            if (!inside) continue;
            const int8_t* wr = wk + ko * k_last;
            for (int64_t k = 0; k < k_last; ++k) {
              const int16_t wv = wr[k];
              const size_t kk = static_cast<size_t>(k);
              if (wv == 0 || hi[kk] <= lo[kk]) continue;
              loops.axpy_zp(split + (lidx * line + at[kk] + lo[kk]), xrow + lo[kk], hi[kk] - lo[kk], zp, wv);
            }
          }
        }
      }
      if (s > 1)
        for (int64_t l = 0; l < out_lines; ++l) {
          const int32_t* sl = split + l * line;
          int32_t* ol = acc + l * out_last;
          for (int64_t phase = 0; phase < s && phase < out_last; ++phase)
            for (int64_t j = 0; j * s + phase < out_last; ++j) ol[j * s + phase] = sl[phase * P + j];
        }
      sink(p, b, ch, acc);
    }
  });
}

}  // namespace sarai::kernels::qconv_detail
