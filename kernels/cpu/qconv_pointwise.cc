// QConv 1x1 (group 1, every kernel dim 1, strides 1, no padding: a GEMM per
// image, y[m][o] = Σ_c W[c][m] x[c][o]) straight on the INT8 micro-kernels,
// in one parallel region per op (kernels/cpu/qconv.h).
//
// The general group-1 path (qconv_im2col.cc) runs three thread teams per
// block of up to 1536 positions: im2col, the GEMM driver, the transposing
// epilogue, each ending in a barrier, with the block's int32 results (up to
// 512 KB) between them. For a 1x1 convolution the im2col rows are just the
// input transposed (NCHW keeps a position's channels apart, the
// micro-kernels want them contiguous), so here each thread takes whole
// blocks of P positions of one image and, without leaving L2:
//   1. transposes x[c][o0 .. o0 + P) into u8 rows a[i][c] (and, for
//      micro-kernels with a packed path, expands them once: pack_a);
//   2. per panel group (np * 16 channels) runs the micro-kernel over the
//      block's rows, the whole reduction in one int32 block c[i][m];
//   3. turns those channels into y[m][o0 + i] at once (the transposing
//      epilogue of qconv_loops.h, then Gelu per row segment).
// Blocks are balanced over the threads (their count is a multiple of the
// thread count where the positions allow). Each output comes from the same
// integer sums as the reference's and the epilogue's per-element float
// operations, so the result does not depend on P or the thread count.
#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/platform.h"
#include "kernels/cpu/qconv_internal.h"
#include "runtime/parallel.h"

namespace sarai::kernels::qconv_detail {
namespace {

constexpr int64_t kMaxBlock = 64;   // positions per block (L2: c is P x M int32)
constexpr int64_t kKC = 2048;       // reduction per micro-kernel call (a multiple of 4)
constexpr int64_t kMaxCols = 64;    // np * 16 for every micro-kernel

// How the positions of one image are cut: `blocks` blocks of `rows`
// positions (the last may be shorter), rows a multiple of 4 (every mr).
struct Blocking {
  int64_t rows = 0, blocks = 0;
};

Blocking blocking(const qref::ConvProblem& p) {
  const int64_t out = p.g.out_size(), nt = num_threads();
  int64_t blocks = (out + kMaxBlock - 1) / kMaxBlock;
  // Round the block count up to a multiple of the threads (over the whole
  // batch) so each thread gets the same number of positions.
  const int64_t total = blocks * p.batch;
  if (nt > 1 && total % nt != 0 && out > 4 * nt) blocks += (nt - total % nt + p.batch - 1) / p.batch;
  Blocking b;
  b.rows = std::min(kMaxBlock, int8::round_up((out + blocks - 1) / blocks, 4));
  b.blocks = (out + b.rows - 1) / b.rows;
  return b;
}

struct PointwiseScratch {
  int64_t rows = 0, lda = 0, ldap = 0, ldc = 0;
  uint8_t* a;    // [nt][rows][lda]
  uint8_t* ap;   // [nt][rows][ldap] (micro-kernels with pack_a)
  int32_t* c;    // [nt][rows][ldc]
};

// The packed rows are sized for any micro-kernel (the ops size the scratch
// before the micro-kernel is known).
PointwiseScratch carve_pointwise(const qref::ConvProblem& p, Carver& cv) {
  const int64_t nt = num_threads(), K = p.C;
  PointwiseScratch s;
  s.rows = blocking(p).rows;
  s.lda = int8::round_up(K, 64);
  s.ldap = 2 * int8::round_up(K, int8::kGroupK);
  s.ldc = int8::round_up(p.M, kMaxCols);
  s.a = cv.take<uint8_t>(nt * s.rows * s.lda);
  s.ap = cv.take<uint8_t>(nt * s.rows * s.ldap);
  s.c = cv.take<int32_t>(nt * s.rows * s.ldc);
  return s;
}

// a[i][c] = x[c][i] for i < rows, c < K (x's rows `ld` apart).
void transpose_block(const uint8_t* x, int64_t ld, int64_t K, int64_t rows, uint8_t* a, int64_t lda) {
  // 4 positions per pass over the channels: each input row read in 4-byte
  // runs, each output row written in order.
  int64_t i = 0;
  for (; i + 4 <= rows; i += 4) {
    uint8_t* a0 = a + i * lda;
    for (int64_t c = 0; c < K; ++c) {
      const uint8_t* xc = x + c * ld + i;
      a0[c] = xc[0];
      a0[lda + c] = xc[1];
      a0[2 * lda + c] = xc[2];
      a0[3 * lda + c] = xc[3];
    }
  }
  for (; i < rows; ++i)
    for (int64_t c = 0; c < K; ++c) a[i * lda + c] = x[c * ld + i];
}

// Runs the pointwise convolution; sink(b, o0, rows, n0, cols, c, ldc) gets
// each finished (block, panel group): c[i][n0 .. n0 + cols) for i < rows.
template <class Sink>
void run_pointwise(const qref::ConvProblem& p, const uint8_t* xq, const int8_t* w,
                   const QgemmUkernel& uk, uint8_t* scratch, Sink&& sink) {
  const int64_t K = p.C, N = p.M, out = p.g.out_size();
  assert(uk.np * int8::kPanelN <= kMaxCols);
  Carver cv(scratch);
  const PointwiseScratch sc = carve_pointwise(p, cv);
  const Blocking bl = blocking(p);
  const bool packed = uk.pack_a != nullptr;
  const int64_t kp = int8::round_up(K, int8::kGroupK), pstride = kp * int8::kPanelN;
  const int64_t panels = (N + int8::kPanelN - 1) / int8::kPanelN;
  const int64_t pgroups = (panels + uk.np - 1) / uk.np;
  // Below ~4 M multiply-adds a thread team costs more than it saves (the
  // GEMM driver's cutoff).
  const int64_t items = p.batch * bl.blocks;
  const int64_t grain = p.batch * out * K * N < (int64_t{1} << 22) ? items : 1;
  parallel_for(items, grain, [&](int64_t begin, int64_t end) {
    const int64_t t = thread_index();
    uint8_t* a = sc.a + t * sc.rows * sc.lda;
    uint8_t* ap = sc.ap + t * sc.rows * sc.ldap;
    int32_t* c = sc.c + t * sc.rows * sc.ldc;
    for (int64_t it = begin; it < end; ++it) {
      const int64_t b = it / bl.blocks, o0 = (it % bl.blocks) * bl.rows;
      const int64_t rows = std::min(bl.rows, out - o0);
      transpose_block(xq + b * K * out + o0, out, K, rows, a, sc.lda);
      if (packed) uk.pack_a(a, sc.lda, rows, K, ap, sc.ldap);
      for (int64_t pg = 0; pg < pgroups; ++pg) {
        const int64_t p0 = pg * uk.np, np = std::min<int64_t>(uk.np, panels - p0);
        const int64_t n0 = p0 * int8::kPanelN, cols = std::min<int64_t>(np * int8::kPanelN, N - n0);
        for (int64_t k0 = 0; k0 < K; k0 += kKC) {
          const int64_t len = std::min(K, k0 + kKC) - k0;
          const int8_t* wk = w + p0 * pstride + (k0 / int8::kGroupK) * (int8::kPanelN * int8::kGroupK);
          for (int64_t r = 0; r < rows; r += uk.mr) {
            const int64_t mr = std::min<int64_t>(uk.mr, rows - r);
            if (packed)  // the K tail is zero-padded in the packed rows: whole groups
              uk.tile_packed(ap + r * sc.ldap + 2 * k0, sc.ldap, mr, wk, pstride, np,
                             (len + int8::kGroupK - 1) / int8::kGroupK, c + r * sc.ldc + n0, sc.ldc,
                             /*accumulate=*/k0 != 0);
            else
              uk.tile(a + r * sc.lda + k0, sc.lda, mr, wk, pstride, np, len / int8::kGroupK,
                      len % int8::kGroupK, c + r * sc.ldc + n0, sc.ldc, /*accumulate=*/k0 != 0);
          }
        }
        sink(b, o0, rows, n0, cols, c, sc.ldc);
      }
    }
  });
}

}  // namespace

bool is_pointwise(const qref::ConvProblem& p) {
  const ConvGeometry& g = p.g;
  if (!p.packed || p.group != 1) return false;
  for (size_t d = 0; d < static_cast<size_t>(g.nsp); ++d)
    if (g.kernel[d] != 1 || g.strides[d] != 1 || g.pad_begin[d] != 0 || g.out[d] != g.in[d]) return false;
  return true;
}

int64_t pointwise_scratch_bytes(const qref::ConvProblem& p) {
  Carver cv(nullptr);
  carve_pointwise(p, cv);
  return cv.used();
}

void conv_pointwise(const qref::ConvProblem& p, const uint8_t* xq, const int8_t* w,
                    const QconvEpilogue& ep, const QgemmUkernel& uk, const QconvLoops& loops,
                    uint8_t* scratch) {
  const int64_t out = p.g.out_size();
  const bool gelu = ep.act == QgemmActivation::kGelu;
  const QgemmActivation act = gelu ? QgemmActivation::kNone : ep.act;
  run_pointwise(p, xq, w, uk, scratch,
                [&](int64_t b, int64_t o0, int64_t rows, int64_t n0, int64_t cols, const int32_t* c, int64_t ldc) {
                  const int64_t img = b * p.M * out + o0;
                  loops.transpose_epilogue(c, ldc, rows, n0, cols, ep.comp, ep.cscale, ep.bias,
                                           ep.residual ? ep.residual + img : nullptr, ep.y + img, out, act);
                  if (gelu)
                    for (int64_t m = n0; m < n0 + cols; ++m) {
                      float* yr = ep.y + img + m * out;
                      platform().vec->gelu(yr, yr, rows);
                    }
                });
}

void conv_pointwise_s32(const qref::ConvProblem& p, const uint8_t* xq, const int8_t* w,
                        int32_t* acc, const QgemmUkernel& uk, uint8_t* scratch) {
  const int64_t out = p.g.out_size();
  run_pointwise(p, xq, w, uk, scratch,
                [&](int64_t b, int64_t o0, int64_t rows, int64_t n0, int64_t cols, const int32_t* c, int64_t ldc) {
                  for (int64_t m = n0; m < n0 + cols; ++m)
                    for (int64_t i = 0; i < rows; ++i) acc[(b * p.M + m) * out + o0 + i] = c[i * ldc + m];
                });
}

}  // namespace sarai::kernels::qconv_detail
