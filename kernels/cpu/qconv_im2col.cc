// QConv with group 1 (kernels/cpu/qconv.h): blocks of output positions
// unfolded (im2col) into u8 rows, multiplied by the packed weights in place
// with the INT8 GEMM, and a transposing epilogue into y[b][m][position]
// (qconv_loops.h). With at least as many blocks as threads, each thread
// takes whole blocks (fill, unthreaded GEMM whose 64 x 64 tiles go straight
// to the epilogue: qgemm_u8s8_blocks): one parallel region per op, the
// FP32 Conv's scheme. With fewer, the threads share each block (three
// regions a block). Either way the sums and the epilogue's float
// operations are the same, so results do not depend on the thread count.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/cpu/platform.h"
#include "kernels/cpu/qconv_internal.h"
#include "runtime/parallel.h"

namespace sarai::kernels::qconv_detail {
namespace {


// Unfolds output positions into GEMM rows: row o holds, at k = c * taps + r,
// x_q[c][tap(o, r)] or zp when the tap falls into the padding.
//
// The taps of one kernel line (the k_last taps that differ only in the last
// spatial dim) sit next to each other in a row (k = (c * lines + q) * k_last
// + j) and, with dilation 1 along that dim, read k_last consecutive input
// bytes: where the whole line is inside the input, the row gets them with one
// 8-byte load and store ("chunk"), the store's excess bytes overwritten by
// the next chunk of the row (chunks are written in increasing order) or
// falling into the row's slack (row stride lda() = K + 8). Other lines go
// tap by tap. Runs of positions along the last spatial dim share the
// per-line bounds.
class Im2col {
 public:
  Im2col(const ConvGeometry& g, int64_t C) : g_(g), C_(C) {
    const size_t n = static_cast<size_t>(g.nsp), L = n - 1;
    ks_ = g.kernel_size();
    kl_ = g.kernel[L];
    lines_ = ks_ / kl_;
    in_size_ = g.in_size();
    instride_ = strides_of(g.in);
    chunked_ = g.dilations[L] == 1 && kl_ <= kChunk;
    // Per line q: the outer-dim offsets k_d * dil_d (d < L) of its taps
    // (only fill_run, for up to kMaxLines lines, reads them).
    if (lines_ > kMaxLines) return;
    kc_.resize(static_cast<size_t>(lines_) * n);
    Ints k(n);
    for (int64_t q = 0; q < lines_; ++q) {
      unravel(q * kl_, g.kernel, k.data());
      for (size_t d = 0; d < L; ++d) kc_[static_cast<size_t>(q) * n + d] = k[d] * g.dilations[d];
    }
  }

  int64_t K() const { return C_ * ks_; }
  int64_t lda() const { return K() + kChunk; }

  // Rows [o0, o0 + rows) of image x (x_q[C][in...]; `avail` bytes may be
  // read from x on) into dst (row stride lda()).
  void fill(const uint8_t* x, int64_t avail, uint8_t zp, int64_t o0, int64_t rows,
            uint8_t* dst) const {
    const int64_t out_last = g_.out[static_cast<size_t>(g_.nsp) - 1];
    for (int64_t o = o0; o < o0 + rows;) {
      const int64_t len = std::min(out_last - o % out_last, o0 + rows - o);
      if (lines_ <= kMaxLines)
        fill_run(x, avail, zp, o, len, dst + (o - o0) * lda());
      else
        fill_rows_by_tap(x, zp, o, len, dst + (o - o0) * lda());
      o += len;
    }
  }

 private:
  static constexpr int64_t kChunk = 8, kMaxLines = 16;

  // Positions o .. o + len - 1, all on one line of the last dim. The
  // per-line tables are local arrays so the byte stores into dst cannot
  // alias them (the compiler keeps them out of memory reloads).
  void fill_run(const uint8_t* x, int64_t avail, uint8_t zp, int64_t o, int64_t len,
                uint8_t* dst) const {
    const size_t n = static_cast<size_t>(g_.nsp), L = n - 1;
    const int64_t s = g_.strides[L], dl = g_.dilations[L], in_last = g_.in[L];
    const int64_t ld = lda(), C = C_, kl = kl_, lines = lines_, in_size = in_size_;
    // Per line q: outer_in = its outer coordinates are inside the input;
    // off = input offset of its tap 0 at run position 0 (may be negative);
    // p0 = that tap's last-dim position; [lo, hi) = run positions where all
    // its taps are inside.
    bool outer_in[kMaxLines];
    int64_t off[kMaxLines], p0s[kMaxLines], lo[kMaxLines], hi[kMaxLines];
    int64_t base_last = 0;
    for (int64_t q = 0; q < lines; ++q) {
      int64_t rem = o, outer = 0;
      bool inside = true;
      // Output coordinates of o, from the last dim up.
      for (size_t d = n; d-- > 0;) {
        const int64_t oc = rem % g_.out[d];
        rem /= g_.out[d];
        const int64_t b = oc * g_.strides[d] - g_.pad_begin[d];
        if (d == L) {
          base_last = b;
          continue;
        }
        const int64_t p = b + kc_[static_cast<size_t>(q) * n + d];
        inside = inside && p >= 0 && p < g_.in[d];
        outer += p * instride_[d];
      }
      const int64_t p0 = base_last, ext = (kl - 1) * dl;
      outer_in[q] = inside;
      off[q] = outer + p0;
      p0s[q] = p0;
      // Position i: tap 0 reads p0 + i*s >= 0, the last tap p0 + ext + i*s < in_last.
      const int64_t l = p0 >= 0 ? 0 : (-p0 + s - 1) / s;
      const int64_t h = p0 + ext >= in_last ? 0 : (in_last - p0 - ext + s - 1) / s;
      lo[q] = std::min(l, len);
      hi[q] = inside && chunked_ ? std::clamp(h, lo[q], len) : lo[q];
    }
    // Chunk (c, q) of row i may spill into chunk (c, q + 1) or (c + 1, 0) of
    // the same row: c and q increase in the outer loops, so those are
    // written later. The positions run innermost.
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t q = 0; q < lines; ++q) {
        uint8_t* chunk = dst + (c * lines + q) * kl;
        const int64_t src = c * in_size + off[q];  // tap 0's input byte at position 0
        if (!outer_in[q]) {
          for (int64_t i = 0; i < len; ++i)
            for (int64_t j = 0; j < kl; ++j) chunk[i * ld + j] = zp;
          continue;
        }
        // The fast range, cut where an 8-byte load would pass `avail`.
        int64_t h = hi[q];
        if (h > lo[q] && src + (h - 1) * s + kChunk > avail)
          h = std::clamp<int64_t>(avail - kChunk - src < 0 ? 0 : (avail - kChunk - src) / s + 1, lo[q], h);
        auto slow = [&](int64_t i) {
          const int64_t pi = p0s[q] + i * s;  // last-dim position of tap 0
          for (int64_t j = 0; j < kl; ++j) {
            const int64_t p = pi + j * dl;
            chunk[i * ld + j] = p >= 0 && p < in_last ? x[src + i * s + j * dl] : zp;
          }
        };
        for (int64_t i = 0; i < lo[q]; ++i) slow(i);
        if (h > lo[q]) {
          const uint8_t* xs = x + (src + lo[q] * s);
          uint8_t* ds = chunk + lo[q] * ld;
          for (int64_t i = 0; i < h - lo[q]; ++i) {
            uint64_t v;
            std::memcpy(&v, xs + i * s, kChunk);
            std::memcpy(ds + i * ld, &v, kChunk);
          }
        }
        for (int64_t i = h; i < len; ++i) slow(i);
      }
    }
  }

  // Any number of kernel lines: tap by tap, from the tap's coordinates.
  void fill_rows_by_tap(const uint8_t* x, uint8_t zp, int64_t o0, int64_t rows, uint8_t* dst) const {
    const size_t n = static_cast<size_t>(g_.nsp);
    Ints oc(n), k(n);
    for (int64_t i = 0; i < rows; ++i) {
      unravel(o0 + i, g_.out, oc.data());
      uint8_t* row = dst + i * lda();
      for (int64_t r = 0; r < ks_; ++r) {
        unravel(r, g_.kernel, k.data());
        bool inside = true;
        int64_t off = 0;
        for (size_t d = 0; d < n; ++d) {
          const int64_t p = oc[d] * g_.strides[d] - g_.pad_begin[d] + k[d] * g_.dilations[d];
          inside = inside && p >= 0 && p < g_.in[d];
          off += p * instride_[d];
        }
        for (int64_t c = 0; c < C_; ++c) row[c * ks_ + r] = inside ? x[c * in_size_ + off] : zp;
      }
    }
  }

  const ConvGeometry& g_;
  int64_t C_, ks_ = 1, kl_ = 1, lines_ = 1, in_size_ = 0;
  bool chunked_ = false;
  Ints instride_;
  SmallVector<int64_t, kMaxLines * 4> kc_;  // inline up to 4 spatial dims
};

// Output positions per block: a multiple of kBlockQuantum (whole GEMM row
// blocks, 64 or 96 rows) between kBlockQuantum and 1536, with about
// kIm2colBytes of u8 rows and kAccBytes of int32 accumulators, so both stay
// in L2.
constexpr int64_t kIm2colBytes = int64_t{384} << 10;
constexpr int64_t kAccBytes = int64_t{512} << 10;
constexpr int64_t kBlockQuantum = 192;

int64_t block_rows(int64_t K, int64_t M, int64_t out_size) {
  const int64_t by_k = kIm2colBytes / std::max<int64_t>(K, 1);
  const int64_t by_m = kAccBytes / (4 * std::max<int64_t>(M, 1));
  const int64_t r = std::clamp<int64_t>(std::min(by_k, by_m) / kBlockQuantum * kBlockQuantum,
                                        kBlockQuantum, 8 * kBlockQuantum);
  return std::min(r, out_size);
}

// How a call for `threads` threads cuts the output positions.
// Per thread (each thread unfolds, multiplies and writes whole blocks on its
// own: one parallel region per op) when every thread gets a block of
// block_rows(); then, with few blocks, their count per image is rounded up
// to a multiple of the threads (rows a multiple of 64, the GEMM's row
// block) so the threads get even shares: 3 blocks of 1536 on 2 threads
// become 4 of 960. Shared otherwise (big K over few positions): the
// threads work together on each block (fill, GEMM, epilogue: three
// regions a block). One thread: per thread (no team at all, and no int32
// block: the GEMM's tiles go to the epilogue).
struct Blocking {
  int64_t rows;     // positions per block
  int64_t per_img;  // blocks per image
  bool per_thread;
};

Blocking blocking(const qref::ConvProblem& p, int64_t K, int64_t threads) {
  const int64_t out_size = p.g.out_size();
  Blocking bl;
  bl.rows = block_rows(K, p.M, out_size);
  bl.per_img = (out_size + bl.rows - 1) / bl.rows;
  bl.per_thread = p.batch * bl.per_img >= threads;
  if (bl.per_thread && threads > 1 && p.batch * bl.per_img < 8 * threads) {
    const int64_t want = (bl.per_img + threads - 1) / threads * threads;
    const int64_t r = ((out_size + want - 1) / want + 63) / 64 * 64;
    if (r < bl.rows) {
      bl.rows = r;
      bl.per_img = (out_size + r - 1) / r;
    }
  }
  return bl;
}

// The group-1 path's scratch: per thread (`slots` of them) one block of u8
// rows, or, shared, one block of u8 rows and its int32 results.
struct PackedScratch {
  Blocking bl;        // the cut the scratch was sized for
  uint8_t* rows;      // [slots][block_rows * lda], 64-byte aligned slices
  int64_t slot_bytes; // bytes between slices
  int32_t* c;         // [block_rows * M], the shared scheme only
};

// For `slots` = num_threads() threads (kernels/cpu/qconv.h, the same
// count im2col_blocks sees): per thread, one slice each; shared, one slice
// and c.
PackedScratch carve_packed(const qref::ConvProblem& p, int64_t slots, Carver& cv) {
  const int64_t K = p.C * p.g.kernel_size(), lda = K + 8;  // Im2col::K(), lda()
  PackedScratch s;
  s.bl = blocking(p, K, slots);
  const int64_t br = s.bl.rows;
  s.slot_bytes = (br * lda + 63) / 64 * 64;
  s.rows = cv.take<uint8_t>((s.bl.per_thread ? slots : 1) * s.slot_bytes);
  s.c = s.bl.per_thread ? nullptr : cv.take<int32_t>(br * p.M);
  return s;
}

// Runs gemm(b, buf, lda, o0, rows, threaded) per block of output positions
// of image b, after filling buf (Blocking::rows rows) with those rows, cut
// as sc.bl says (carve_packed, for num_threads()).
// Per thread (Blocking::per_thread): blocks split among threads, each filling its
// own slice of sc.rows and calling gemm with threaded = false. Shared: block
// by block, the fill in parallel (each row is a plain copy, so the thread
// count cannot change it), gemm with threaded = true.
template <class Gemm>
void im2col_blocks(const qref::ConvProblem& p, const Im2col& im, const uint8_t* xq, uint8_t zp,
                   const PackedScratch& sc, Gemm&& gemm) {
  const int64_t out_size = p.g.out_size(), K = im.K(), lda = im.lda();
  assert(lda == K + 8);
  const int64_t in_img = p.C * p.g.in_size();
  const Blocking& bl = sc.bl;
  const int64_t br = bl.rows, per_img = bl.per_img, blocks = p.batch * per_img;
  if (bl.per_thread) {
    parallel_for(blocks, 1, [&](int64_t t0, int64_t t1) {
      uint8_t* buf = sc.rows + thread_index() * sc.slot_bytes;
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t b = t / per_img, o0 = t % per_img * br;
        const int64_t rows = std::min(br, out_size - o0);
        im.fill(xq + b * in_img, (p.batch - b) * in_img, zp, o0, rows, buf);
        gemm(b, buf, lda, o0, rows, /*threaded=*/false);
      }
    });
    return;
  }
  uint8_t* buf = sc.rows;
  for (int64_t b = 0; b < p.batch; ++b) {
    const uint8_t* x = xq + b * in_img;
    const int64_t avail = (p.batch - b) * in_img;  // bytes readable from x
    for (int64_t o0 = 0; o0 < out_size; o0 += br) {
      const int64_t rows = std::min(br, out_size - o0);
      // Below ~16 KB a thread team costs more than it saves.
      const int64_t grain = rows * K < (int64_t{1} << 14) ? rows : 16;
      parallel_for(rows, grain, [&](int64_t r0, int64_t r1) {
        im.fill(x, avail, zp, o0 + r0, r1 - r0, buf + r0 * lda);
      });
      gemm(b, buf, lda, o0, rows, /*threaded=*/true);
    }
  }
}

// The per-thread scheme's sinks: each GEMM block (<= 64 positions x 64
// channels, in L1) straight into y (through the transposing epilogue) or
// acc.
struct EpilogueSink {
  const qref::ConvProblem* p;
  const QconvEpilogue* ep;
  const QconvLoops* loops;
  QgemmActivation act;
  int64_t img, o0;  // y offset of image b's channel 0, the block's first position
  static void run(void* ctx, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0,
                  int64_t cols) {
    const EpilogueSink& s = *static_cast<const EpilogueSink*>(ctx);
    const QconvEpilogue& ep = *s.ep;
    const int64_t out_size = s.p->g.out_size(), off = s.img + n0 * out_size + s.o0 + m0;
    s.loops->transpose_epilogue(acc, ldacc, rows, 0, cols, ep.comp ? ep.comp + n0 : nullptr, ep.cscale + n0,
                                ep.bias ? ep.bias + n0 : nullptr, ep.residual ? ep.residual + off : nullptr,
                                ep.y + off, out_size, s.act);
  }
};

struct S32Sink {
  int32_t* acc;  // image b's channel 0, the block's first position
  int64_t out_size;
  static void run(void* ctx, const int32_t* blk, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0,
                  int64_t cols) {
    const S32Sink& s = *static_cast<const S32Sink*>(ctx);
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < rows; ++i) s.acc[(n0 + j) * s.out_size + m0 + i] = blk[i * ldacc + j];
  }
};

}  // namespace

int64_t packed_scratch_bytes(const qref::ConvProblem& p) {
  Carver cv(nullptr);
  carve_packed(p, num_threads(), cv);
  return cv.used();
}

void conv_packed(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                 const QconvEpilogue& ep, const QgemmUkernel& uk, const QconvLoops& loops,
                 uint8_t* scratch) {
  const Im2col im(p.g, p.C);
  const int64_t out_size = p.g.out_size(), K = im.K();
  const bool gelu = ep.act == QgemmActivation::kGelu;
  const QgemmActivation act = gelu ? QgemmActivation::kNone : ep.act;
  Carver cv(scratch);
  const PackedScratch sc = carve_packed(p, num_threads(), cv);
  int32_t* c = sc.c;
  im2col_blocks(p, im, xq, zp, sc,
                [&](int64_t b, const uint8_t* a, int64_t lda, int64_t o0, int64_t rows, bool threaded) {
    const int64_t img = b * p.M * out_size + o0;
    // GELU per channel over the block's positions, as the Gelu op would.
    const auto gelu_rows = [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; ++m) {
        float* yr = ep.y + img + m * out_size;
        platform().vec->gelu(yr, yr, rows);
      }
    };
    if (!threaded) {
      EpilogueSink s{&p, &ep, &loops, act, b * p.M * out_size, o0};
      qgemm_u8s8_blocks(a, rows, K, lda, w, p.M, &EpilogueSink::run, &s, &uk, /*threaded=*/false);
      if (gelu) gelu_rows(0, p.M);
      return;
    }
    qgemm_u8s8_s32(a, rows, K, lda, w, p.M, c, p.M, &uk);
    // y[b][m][o0 + i] from c[i][m], in chunks of channels.
    const int64_t chunks = (p.M + kTile - 1) / kTile;
    const int64_t grain = rows * p.M < (int64_t{1} << 15) ? chunks : 1;
    parallel_for(chunks, grain, [&](int64_t c0, int64_t c1) {
      const int64_t m0 = c0 * kTile, nm = std::min(p.M, c1 * kTile) - m0;
      loops.transpose_epilogue(c, p.M, rows, m0, nm, ep.comp, ep.cscale, ep.bias,
           ep.residual ? ep.residual + img : nullptr, ep.y + img, out_size, act);
      if (gelu) gelu_rows(m0, m0 + nm);
    });
  });
}

void conv_packed_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                     int32_t* acc, const QgemmUkernel& uk, uint8_t* scratch) {
  const Im2col im(p.g, p.C);
  const int64_t out_size = p.g.out_size(), K = im.K();
  Carver cv(scratch);
  const PackedScratch sc = carve_packed(p, num_threads(), cv);
  int32_t* c = sc.c;
  im2col_blocks(p, im, xq, zp, sc,
                [&](int64_t b, const uint8_t* a, int64_t lda, int64_t o0, int64_t rows, bool threaded) {
    if (!threaded) {
      S32Sink s{acc + b * p.M * out_size + o0, out_size};
      qgemm_u8s8_blocks(a, rows, K, lda, w, p.M, &S32Sink::run, &s, &uk, /*threaded=*/false);
      return;
    }
    qgemm_u8s8_s32(a, rows, K, lda, w, p.M, c, p.M, &uk);
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t i = 0; i < rows; ++i)
        acc[(b * p.M + m) * out_size + o0 + i] = c[static_cast<size_t>(i * p.M + m)];
  });
}

}  // namespace sarai::kernels::qconv_detail
