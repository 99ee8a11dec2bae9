// The INT8 GEMM driver (kernels/cpu/qgemm.h) and the scalar epilogue row.
//
// Blocking: the output is cut into tasks of (up to kMB rows) × (one panel
// group of uk.np * 16 channels). Tasks are numbered panel-group-major, so
// consecutive tasks on one thread reuse the same weights (kKC * np * 16
// bytes: 128 KB for AVX-512's 4 panels, in L2) across row blocks. Within a
// task, K is walked in blocks of kKC, the micro-kernel accumulating into an
// int32 buffer on the stack (kMB × 64 int32 = 16 KB, in L1); after the last
// k-block the epilogue turns that buffer into y. Every output element is
// computed by exactly one task, from the same sequence of integer additions
// whatever the thread count, so results do not depend on threads.
//
// M = 1..16 (GEMV-like, the decoder's and streaming's case): a single row
// block, so the tasks are the panel groups and each weight byte is read
// from memory once per call (np sequential streams, which the hardware
// prefetcher follows: ~0.84 of the measured 1-thread bandwidth at M=1,
// K×N = 2048×8192, cold; docs/BENCHMARKS.md); the micro-kernel's row loop
// reuses it from registers.
//
// Packed activations (QgemmUkernel::pack_a, AVX2 only for now): the
// micro-kernel wants each activation k-group as int16 pairs, which it would
// otherwise rebuild from the bytes for every panel. drive_packed keeps
// drive()'s tasks and thread split but runs a thread's range row block by
// row block: each row block is expanded once into a per-thread buffer and
// all the thread's panels run over it; a weight panel then comes from L2/L3
// per row block instead of the activations per panel (docs/BENCHMARKS.md,
// issue 15 item 2).
#include "kernels/cpu/qgemm.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <memory>

#include <immintrin.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/platform.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kMB = 64;         // rows per task (a multiple of every micro-kernel's mr)
constexpr int64_t kKC = 2048;       // reduction per k-block (multiple of 4)
constexpr int64_t kMaxCols = 64;    // np * 16 <= kMaxCols for every ukernel
constexpr int64_t kBlockBytes = int8::kPanelN * int8::kGroupK;  // 64
// Outputs above this size are written with non-temporal stores when the
// micro-kernel offers them (QgemmUkernel::epilogue_row_stream): about the
// size of a core's L2 here, so a smaller y stays in cache for its consumer.
constexpr int64_t kStreamBytes = int64_t{2} << 20;

inline float epilogue_one(int32_t acc, int32_t comp, float cscale, float bias, const float* res,
                          QgemmActivation act) {
  float v = static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(acc) - static_cast<uint32_t>(comp)));
  v = v * cscale;
  v = v + bias;
  if (res != nullptr) v = v + *res;
  if (act == QgemmActivation::kRelu) v = v < 0.f ? 0.f : v;
  return v;
}

// A row's own constants from the channel factors (QgemmEpilogue::row_x):
// comp = z_x * wsum (modular), cscale = s_x * scale.
inline void row_constants(const QuantParams& row, int32_t* comp, float* cscale) {
  *comp = static_cast<int32_t>(static_cast<uint32_t>(row.zero_point) * static_cast<uint32_t>(*comp));
  *cscale = row.scale * *cscale;
}

// One task's output: rows [m0, m0 + rows), channels [n0, n0 + cols).
void apply_epilogue(const QgemmUkernel& uk, const QgemmEpilogue& ep, bool stream,
                    const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0,
                    int64_t cols) {
  assert(ep.row_x == nullptr || ep.comp != nullptr);
  const int32_t* comp = ep.comp ? ep.comp + n0 : nullptr;
  const float* cs = ep.cscale + n0;
  const float* bias = ep.bias ? ep.bias + n0 : nullptr;
  const bool gelu = ep.act == QgemmActivation::kGelu;
  const QgemmActivation act = gelu ? QgemmActivation::kNone : ep.act;
  const auto gelu_fn = platform().vec->gelu;
  // Stream big outputs past the caches, unless GELU rereads them at once.
  const auto row_fn = stream && !gelu && uk.epilogue_row_stream ? uk.epilogue_row_stream : uk.epilogue_row;
  if (ep.ldy_n == 1 && (ep.residual == nullptr || ep.ldr_n == 1)) {
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t m = m0 + i;
      const float* res = ep.residual ? ep.residual + m * ep.ldr_m + n0 : nullptr;
      float* y = ep.y + m * ep.ldy_m + n0;
      row_fn(acc + i * ldacc, cols, comp, cs, ep.row_x ? ep.row_x + m : nullptr, bias, res, act, y);
      if (gelu) gelu_fn(y, y, cols);
    }
    return;
  }
  // Strided output (e.g. QConv writing [channel][position]): channel-major
  // so each channel's run of positions is written contiguously when ldy_m == 1.
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t n = n0 + j;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t m = m0 + i;
      const float* res = ep.residual ? ep.residual + m * ep.ldr_m + n * ep.ldr_n : nullptr;
      float* y = ep.y + m * ep.ldy_m + n * ep.ldy_n;
      int32_t c = comp ? comp[j] : 0;
      float s = cs[j];
      if (ep.row_x) row_constants(ep.row_x[m], &c, &s);
      *y = epilogue_one(acc[i * ldacc + j], c, s, bias ? bias[j] : 0.f, res, act);
      if (gelu && ep.ldy_m != 1) gelu_fn(y, y, 1);
    }
    // Column-major output (ldy_m == 1): this channel's rows are contiguous.
    if (gelu && ep.ldy_m == 1) {
      float* y = ep.y + m0 + n * ep.ldy_n;
      gelu_fn(y, y, rows);
    }
  }
}

// The per-thread buffer of QgemmUkernel::pack_a's output (the packed path of
// drive). A thread_local allocated once, at the thread's first packed GEMM
// (so in a planned run's first run, never after: docs/memory.md), and kept:
// the driver's stack buffer pattern, too big for the stack. kPackBytes bounds
// the rows of a packed row block (kPackBytes / (2 Kp)), so it stays in L2.
constexpr int64_t kPackBytes = int64_t{256} << 10;

uint8_t* pack_buffer() {
  thread_local std::unique_ptr<uint8_t[]> buf;
  if (!buf) buf.reset(new uint8_t[kPackBytes]);
  return buf.get();
}

// Runs the blocked loops; `sink(acc, ldacc, m0, rows, n0, cols)` consumes
// each finished task. With a packed path (QgemmUkernel::pack_a), the tasks
// and their split among threads stay the same (panel-group-major numbering,
// contiguous ranges: the same balance), but each thread runs its range row
// block by row block, packing each row block once for all its panels.
template <class Sink>
void drive(const QgemmUkernel& uk, const uint8_t* a, int64_t m, int64_t k, int64_t lda,
           const int8_t* w_packed, int64_t n, bool threaded, Sink&& sink) {
  assert(m >= 0 && k >= 1 && n >= 1 && lda >= k);
  assert(uk.np * int8::kPanelN <= kMaxCols && kMB % uk.mr == 0);
  if (m == 0) return;
  const int64_t kp = int8::round_up(k, int8::kGroupK);
  const int64_t ldap = 2 * kp;  // a packed row
  // Rows per block: kMB, or for the packed path as many whole tiles as
  // kPackBytes holds (<= kMB); below one tile (K > 32768), no packing.
  int64_t mbp = kMB;
  bool packed = false;
  if (uk.pack_a != nullptr && m >= uk.pack_min_rows) {
    const int64_t fit = std::min(kMB, kPackBytes / ldap / uk.mr * uk.mr);
    if (fit >= uk.mr) mbp = fit, packed = true;
  }
  const int64_t pstride = kp * int8::kPanelN;
  const int64_t panels = (n + int8::kPanelN - 1) / int8::kPanelN;
  const int64_t pgroups = (panels + uk.np - 1) / uk.np;
  const int64_t mblocks = (m + mbp - 1) / mbp;
  const int64_t tasks = pgroups * mblocks;
  // Below ~4 M multiply-adds a thread team costs more than it saves.
  const int64_t grain = m * n * k < (int64_t{1} << 22) ? tasks : 1;
  const auto body = [&](int64_t begin, int64_t end) {
    alignas(64) int32_t acc[kMB * kMaxCols];
    uint8_t* ap = packed ? pack_buffer() : nullptr;  // holds row block `mb` when packed
    // Task (panel group pg, row block mb): every k-block into acc, then sink.
    const auto run = [&](int64_t pg, int64_t mb) {
      const int64_t p0 = pg * uk.np, np = std::min<int64_t>(uk.np, panels - p0);
      const int64_t n0 = p0 * int8::kPanelN, cols = std::min<int64_t>(np * int8::kPanelN, n - n0);
      const int64_t m0 = mb * mbp, rows = std::min(mbp, m - m0);
      const int64_t ldacc = np * int8::kPanelN;
      for (int64_t k0 = 0; k0 < k; k0 += kKC) {
        const int64_t len = std::min(k, k0 + kKC) - k0;
        const int8_t* w = w_packed + p0 * pstride + (k0 / int8::kGroupK) * kBlockBytes;
        for (int64_t r = 0; r < rows; r += uk.mr) {
          const int64_t mr = std::min<int64_t>(uk.mr, rows - r);
          if (packed)  // the K tail is zero-padded in the packed rows: whole groups
            uk.tile_packed(ap + r * ldap + 2 * k0, ldap, mr, w, pstride, np,
                           (len + int8::kGroupK - 1) / int8::kGroupK, acc + r * ldacc, ldacc,
                           /*accumulate=*/k0 != 0);
          else
            uk.tile(a + (m0 + r) * lda + k0, lda, mr, w, pstride, np, len / int8::kGroupK,
                    len % int8::kGroupK, acc + r * ldacc, ldacc, /*accumulate=*/k0 != 0);
        }
      }
      sink(acc, ldacc, m0, rows, n0, cols);
    };
    if (!packed) {
      for (int64_t t = begin; t < end; ++t) run(t / mblocks, t % mblocks);
      return;
    }
    const int64_t pg_first = begin / mblocks, pg_last = (end - 1) / mblocks;
    for (int64_t mb = 0; mb < mblocks; ++mb) {
      bool done = false;
      for (int64_t pg = pg_first; pg <= pg_last; ++pg) {
        const int64_t t = pg * mblocks + mb;
        if (t < begin || t >= end) continue;  // another thread's task
        if (!done) {
          const int64_t m0 = mb * mbp;
          uk.pack_a(a + m0 * lda, lda, std::min(mbp, m - m0), k, ap, ldap);
          done = true;
        }
        run(pg, mb);
      }
    }
  };
  if (threaded) parallel_for(tasks, grain, body);
  else body(0, tasks);
}

}  // namespace

void qgemm_epilogue_row_scalar(const int32_t* acc, int64_t n, const int32_t* comp,
                               const float* cscale, const QuantParams* row, const float* bias,
                               const float* residual, QgemmActivation act, float* y) {
  for (int64_t j = 0; j < n; ++j) {
    int32_t c = comp ? comp[j] : 0;
    float s = cscale[j];
    if (row) row_constants(*row, &c, &s);
    y[j] = epilogue_one(acc[j], c, s, bias ? bias[j] : 0.f, residual ? residual + j : nullptr, act);
  }
}

void qgemm_u8s8(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                int64_t n, const QgemmEpilogue& ep, const QgemmUkernel* uk, bool threaded) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  // An unthreaded call works on a block its caller rereads at once: no streaming.
  const bool stream = threaded && m * n * static_cast<int64_t>(sizeof(float)) > kStreamBytes;
  drive(u, a, m, k, lda, w_packed, n, threaded,
        [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0, int64_t cols) {
          apply_epilogue(u, ep, stream, acc, ldacc, m0, rows, n0, cols);
          // Non-temporal stores are weakly ordered: fence them on the thread
          // that made them, before the team's barrier hands y to readers.
          if (stream) _mm_sfence();
        });
}

void qgemm_u8s8_blocks(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed, int64_t n,
                       QgemmSink sink, void* ctx, const QgemmUkernel* uk, bool threaded) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  drive(u, a, m, k, lda, w_packed, n, threaded,
        [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0, int64_t cols) {
          sink(ctx, acc, ldacc, m0, rows, n0, cols);
        });
}

void qgemm_u8s8_s32(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                    int64_t n, int32_t* c, int64_t ldc, const QgemmUkernel* uk) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  drive(u, a, m, k, lda, w_packed, n, /*threaded=*/true,
        [&](const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0, int64_t cols) {
          for (int64_t i = 0; i < rows; ++i)
            std::memcpy(c + (m0 + i) * ldc + n0, acc + i * ldacc, static_cast<size_t>(cols) * sizeof(int32_t));
        });
}

}  // namespace sarai::kernels
