// The fast QConv / QConvTranspose cores (kernels/qconv.h): im2col + the INT8
// GEMM for group 1, direct vectorized kernels for grouped convolutions and
// for ConvTranspose. Every output element is computed from the same integer
// products as the reference, by exactly one thread, whatever the thread
// count; the float epilogue performs the reference's operations in its
// order (this file builds with -ffp-contract=off, see CMakeLists.txt).
#include "kernels/qconv.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <vector>

#include "kernels/int8_layout.h"
#include "kernels/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

using convgeo::ConvGeometry;
// Per-spatial-dim lists: inline, no heap allocation per call.
using Ints = Shape;

// Carves the scratch memory of one call into 64-byte aligned arrays. With a
// null base it only measures (the *_scratch_bytes functions run the same
// carving code, so the sizes cannot drift apart).
class Carver {
 public:
  explicit Carver(uint8_t* base) : base_(base) {}
  template <class T> T* take(int64_t count) {
    T* r = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += (std::max<int64_t>(count, 0) * static_cast<int64_t>(sizeof(T)) + 63) / 64 * 64;
    return r;
  }
  int64_t used() const { return used_; }

 private:
  uint8_t* base_;
  int64_t used_ = 0;
};

// Scratch memory for a call that was given none (tests, benchmarks): owned
// here, on the heap.
class OwnedScratch {
 public:
  OwnedScratch(void* given, int64_t bytes) {
    if (given) {
      p_ = static_cast<uint8_t*>(given);
      return;
    }
    own_.resize(static_cast<size_t>(bytes + 64));
    const uintptr_t a = reinterpret_cast<uintptr_t>(own_.data());
    p_ = own_.data() + ((64 - a % 64) % 64);
  }
  uint8_t* get() const { return p_; }

 private:
  std::vector<uint8_t> own_;
  uint8_t* p_ = nullptr;
};

// ---------------------------------------------------------------- epilogue

// y[j] = act(float(acc[j] - comp) * cs + bias (+ res[j])) over one output
// channel's contiguous row: QgemmEpilogue's operations, in its order.
template <bool kRes, bool kRelu>
inline void epilogue_row_impl(const int32_t* acc, int64_t n, int32_t comp, float cs, float bias,
                              const float* res, float* y) {
  for (int64_t j = 0; j < n; ++j) {
    float v = static_cast<float>(
        static_cast<int32_t>(static_cast<uint32_t>(acc[j]) - static_cast<uint32_t>(comp)));
    v = v * cs;
    v = v + bias;
    if constexpr (kRes) v = v + res[j];
    if constexpr (kRelu) v = v < 0.f ? 0.f : v;
    y[j] = v;
  }
}

void channel_epilogue(const QconvEpilogue& ep, int64_t m, const int32_t* acc, int64_t n,
                      const float* res, float* y) {
  const int32_t comp = ep.comp ? ep.comp[m] : 0;
  const float cs = ep.cscale[m], bias = ep.bias ? ep.bias[m] : 0.f;
  const bool relu = ep.act == QgemmActivation::kRelu;
  if (res != nullptr) {
    if (relu) epilogue_row_impl<true, true>(acc, n, comp, cs, bias, res, y);
    else epilogue_row_impl<true, false>(acc, n, comp, cs, bias, res, y);
  } else {
    if (relu) epilogue_row_impl<false, true>(acc, n, comp, cs, bias, nullptr, y);
    else epilogue_row_impl<false, false>(acc, n, comp, cs, bias, nullptr, y);
  }
  // The Gelu op's own function over the finished row, as the GEMM driver does.
  if (ep.act == QgemmActivation::kGelu) vec_kernels().gelu(y, y, n);
}

// ------------------------------------------------- vectorized inner loops
//
// The direct kernels' two loops, compiled for the baseline, AVX2 and
// AVX-512BW (function-level target attributes: the always_inline bodies are
// inlined into each, no shared inline function is compiled for a higher
// ISA). A u8 × s8 product, and (u8 - zp) × s8, fits in int16 exactly
// (|v| <= 255 * 128 = 32640), which lets the compilers use 16-bit multiplies.

// acc[o] += x[o * S] * w for o < n (S = 0: runtime stride s).
template <int S>
__attribute__((always_inline)) inline void axpy_body(int32_t* __restrict acc,
                                                     const uint8_t* __restrict x, int64_t s,
                                                     int64_t n, int16_t w) {
  const int64_t st = S > 0 ? S : s;
  for (int64_t o = 0; o < n; ++o)
    acc[o] += static_cast<int16_t>(static_cast<int16_t>(x[o * st]) * w);
}

// acc[i] += (x[i] - zp) * w for i < n.
__attribute__((always_inline)) inline void axpy_zp_body(int32_t* __restrict acc,
                                                        const uint8_t* __restrict x, int64_t n,
                                                        int16_t zp, int16_t w) {
  for (int64_t i = 0; i < n; ++i)
    acc[i] += static_cast<int16_t>(static_cast<int16_t>(static_cast<int16_t>(x[i]) - zp) * w);
}

#define SARAI_QCONV_LOOPS(suffix, attr)                                                          \
  attr void axpy_##suffix(int32_t* acc, const uint8_t* x, int64_t s, int64_t n, int16_t w) {     \
    if (s == 1) axpy_body<1>(acc, x, 1, n, w);                                                    \
    else if (s == 2) axpy_body<2>(acc, x, 2, n, w);                                               \
    else axpy_body<0>(acc, x, s, n, w);                                                           \
  }                                                                                               \
  attr void axpy_zp_##suffix(int32_t* acc, const uint8_t* x, int64_t n, int16_t zp, int16_t w) { \
    axpy_zp_body(acc, x, n, zp, w);                                                               \
  }

SARAI_QCONV_LOOPS(base, )
SARAI_QCONV_LOOPS(avx2, __attribute__((target("avx2"))))
SARAI_QCONV_LOOPS(avx512, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#undef SARAI_QCONV_LOOPS

struct Loops {
  void (*axpy)(int32_t*, const uint8_t*, int64_t, int64_t, int16_t);
  void (*axpy_zp)(int32_t*, const uint8_t*, int64_t, int16_t, int16_t);
};

// The loops of the micro-kernel's level (its isa is supported by the CPU:
// qgemm_ukernel checked).
Loops loops_for(const QgemmUkernel& uk) {
  switch (uk.isa) {
    case Isa::kAmx:
    case Isa::kAvx512Vnni: return {axpy_avx512, axpy_zp_avx512};
    case Isa::kAvx2Vnni:
    case Isa::kAvx2: return {axpy_avx2, axpy_zp_avx2};
    case Isa::kScalar: break;
  }
  return {axpy_base, axpy_zp_base};
}

// The group-1 epilogue: the GEMM's int32 block acc[i][m] (row i = output
// position o0 + i, ld lda) to y[m][o0 + i], transposing through a small
// float tile: first v = float(acc - comp) * cs + bias, vectorized along the
// channels, then + residual and the activation, vectorized along the
// positions (the QgemmEpilogue order of operations either way).
constexpr int kTile = 16;

template <bool kRes, bool kRelu>
__attribute__((always_inline)) inline void transpose_epilogue_body(
    const int32_t* __restrict acc, int64_t lda, int64_t ni, int64_t m0, int64_t nm,
    const int32_t* __restrict comp, const float* __restrict cs, const float* __restrict bias,
    const float* res, float* y, int64_t ldy) {  // res may be y itself
  alignas(64) float tile[kTile][kTile];  // [position][channel]
  alignas(64) int32_t cp[kTile];
  alignas(64) float sc[kTile], bi[kTile];
  for (int64_t mb = m0; mb < m0 + nm; mb += kTile) {
    const int64_t tm = std::min<int64_t>(kTile, m0 + nm - mb);
    for (int64_t j = 0; j < kTile; ++j) {
      const int64_t m = mb + std::min<int64_t>(j, tm - 1);
      cp[j] = comp ? comp[m] : 0;
      sc[j] = cs[m];
      bi[j] = bias ? bias[m] : 0.f;
    }
    for (int64_t i0 = 0; i0 < ni; i0 += kTile) {
      const int64_t ti = std::min<int64_t>(kTile, ni - i0);
      if (tm == kTile) {
        for (int64_t i = 0; i < ti; ++i) {
          const int32_t* a = acc + (i0 + i) * lda + mb;
          for (int j = 0; j < kTile; ++j) {
            float v = static_cast<float>(
                static_cast<int32_t>(static_cast<uint32_t>(a[j]) - static_cast<uint32_t>(cp[j])));
            v = v * sc[j];
            tile[i][j] = v + bi[j];
          }
        }
      } else {
        for (int64_t i = 0; i < ti; ++i) {
          const int32_t* a = acc + (i0 + i) * lda + mb;
          for (int64_t j = 0; j < tm; ++j) {
            float v = static_cast<float>(
                static_cast<int32_t>(static_cast<uint32_t>(a[j]) - static_cast<uint32_t>(cp[j])));
            v = v * sc[j];
            tile[i][j] = v + bi[j];
          }
        }
      }
      for (int64_t j = 0; j < tm; ++j) {
        float* yr = y + (mb + j) * ldy + i0;
        const float* rr = kRes ? res + (mb + j) * ldy + i0 : nullptr;
        if (ti == kTile) {
          for (int i = 0; i < kTile; ++i) {
            float v = tile[i][j];
            if constexpr (kRes) v = v + rr[i];
            if constexpr (kRelu) v = v < 0.f ? 0.f : v;
            yr[i] = v;
          }
        } else {
          for (int64_t i = 0; i < ti; ++i) {
            float v = tile[i][j];
            if constexpr (kRes) v = v + rr[i];
            if constexpr (kRelu) v = v < 0.f ? 0.f : v;
            yr[i] = v;
          }
        }
      }
    }
  }
}

using TransposeEpilogueFn = void (*)(const int32_t*, int64_t, int64_t, int64_t, int64_t,
                                     const int32_t*, const float*, const float*, const float*,
                                     float*, int64_t, QgemmActivation);

#define SARAI_QCONV_TEPI(suffix, attr)                                                            \
  attr void transpose_epilogue_##suffix(const int32_t* acc, int64_t lda, int64_t ni, int64_t m0, \
                                        int64_t nm, const int32_t* comp, const float* cs,          \
                                        const float* bias, const float* res, float* y,            \
                                        int64_t ldy, QgemmActivation act) {                       \
    const bool relu = act == QgemmActivation::kRelu;                                              \
    if (res != nullptr) {                                                                         \
      if (relu) transpose_epilogue_body<true, true>(acc, lda, ni, m0, nm, comp, cs, bias, res, y, ldy);   \
      else transpose_epilogue_body<true, false>(acc, lda, ni, m0, nm, comp, cs, bias, res, y, ldy);       \
    } else {                                                                                      \
      if (relu) transpose_epilogue_body<false, true>(acc, lda, ni, m0, nm, comp, cs, bias, res, y, ldy);  \
      else transpose_epilogue_body<false, false>(acc, lda, ni, m0, nm, comp, cs, bias, res, y, ldy);      \
    }                                                                                             \
  }

SARAI_QCONV_TEPI(base, )
SARAI_QCONV_TEPI(avx2, __attribute__((target("avx2"))))
SARAI_QCONV_TEPI(avx512, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#undef SARAI_QCONV_TEPI

TransposeEpilogueFn transpose_epilogue_for(const QgemmUkernel& uk) {
  switch (uk.isa) {
    case Isa::kAmx:
    case Isa::kAvx512Vnni: return transpose_epilogue_avx512;
    case Isa::kAvx2Vnni:
    case Isa::kAvx2: return transpose_epilogue_avx2;
    case Isa::kScalar: break;
  }
  return transpose_epilogue_base;
}

// Row-major strides of dims (last dim contiguous).
Ints strides_of(const Ints& dims) {
  Ints st(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) st[d - 1] = st[d] * dims[d];
  return st;
}

// Unravels flat index i over dims into c.
inline void unravel(int64_t i, const Ints& dims, int64_t* c) {
  for (size_t d = dims.size(); d-- > 0;) {
    c[d] = i % dims[d];
    i /= dims[d];
  }
}

// ---------------------------------------------------------- group 1: im2col

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

// The group-1 path's scratch: one block of u8 rows and its int32 results.
struct PackedScratch {
  uint8_t* rows;  // [block_rows * lda]
  int32_t* c;     // [block_rows * M]
};

PackedScratch carve_packed(const qref::ConvProblem& p, Carver& cv) {
  const int64_t K = p.C * p.g.kernel_size(), lda = K + 8;  // Im2col::K(), lda()
  const int64_t br = block_rows(K, p.M, p.g.out_size());
  PackedScratch s;
  s.rows = cv.take<uint8_t>(br * lda);
  s.c = cv.take<int32_t>(br * p.M);
  return s;
}

// Runs gemm(b, buf, lda, o0, rows) per block of output positions of image b, after
// filling buf with those rows (in parallel: each row is a plain copy, so the
// thread count cannot change it). buf holds block_rows() rows.
template <class Gemm>
void im2col_blocks(const qref::ConvProblem& p, const Im2col& im, const uint8_t* xq, uint8_t zp,
                   uint8_t* buf, Gemm&& gemm) {
  const int64_t out_size = p.g.out_size(), K = im.K(), lda = im.lda();
  assert(lda == K + 8);
  const int64_t in_img = p.C * p.g.in_size();
  const int64_t br = block_rows(K, p.M, out_size);
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
      gemm(b, buf, lda, o0, rows);
    }
  }
}

void conv_packed(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                 const QconvEpilogue& ep, const QgemmUkernel& uk, uint8_t* scratch) {
  const Im2col im(p.g, p.C);
  const int64_t out_size = p.g.out_size(), K = im.K();
  const TransposeEpilogueFn tepi = transpose_epilogue_for(uk);
  const bool gelu = ep.act == QgemmActivation::kGelu;
  const QgemmActivation act = gelu ? QgemmActivation::kNone : ep.act;
  Carver cv(scratch);
  const PackedScratch sc = carve_packed(p, cv);
  int32_t* c = sc.c;
  im2col_blocks(p, im, xq, zp, sc.rows, [&](int64_t b, const uint8_t* a, int64_t lda, int64_t o0, int64_t rows) {
    qgemm_u8s8_s32(a, rows, K, lda, w, p.M, c, p.M, &uk);
    // y[b][m][o0 + i] from c[i][m], in chunks of channels.
    const int64_t img = b * p.M * out_size + o0;
    const int64_t chunks = (p.M + kTile - 1) / kTile;
    const int64_t grain = rows * p.M < (int64_t{1} << 15) ? chunks : 1;
    parallel_for(chunks, grain, [&](int64_t c0, int64_t c1) {
      const int64_t m0 = c0 * kTile, nm = std::min(p.M, c1 * kTile) - m0;
      tepi(c, p.M, rows, m0, nm, ep.comp, ep.cscale, ep.bias,
           ep.residual ? ep.residual + img : nullptr, ep.y + img, out_size, act);
      if (gelu)
        for (int64_t m = m0; m < m0 + nm; ++m) {
          float* yr = ep.y + img + m * out_size;
          vec_kernels().gelu(yr, yr, rows);
        }
    });
  });
}

void conv_packed_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                     int32_t* acc, const QgemmUkernel& uk, uint8_t* scratch) {
  const Im2col im(p.g, p.C);
  const int64_t out_size = p.g.out_size(), K = im.K();
  Carver cv(scratch);
  const PackedScratch sc = carve_packed(p, cv);
  int32_t* c = sc.c;
  im2col_blocks(p, im, xq, zp, sc.rows, [&](int64_t b, const uint8_t* a, int64_t lda, int64_t o0, int64_t rows) {
    qgemm_u8s8_s32(a, rows, K, lda, w, p.M, c, p.M, &uk);
    for (int64_t m = 0; m < p.M; ++m)
      for (int64_t i = 0; i < rows; ++i)
        acc[(b * p.M + m) * out_size + o0 + i] = c[static_cast<size_t>(i * p.M + m)];
  });
}

// ------------------------------------------------ group > 1: direct kernel

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

// sink(b, m, row) receives each output channel's int32 row acc[b][m][:].
template <class Sink>
void conv_grouped(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                  const QgemmUkernel& uk, uint8_t* scratch, Sink&& sink) {
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
  const Loops lp = loops_for(uk);
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
            if (wv != 0) lp.axpy(row, xc + koff[r], s_last, out_last, wv);
          }
        }
      }
      sink(b, m, acc);
    }
  });
}

// ------------------------------------------------------- ConvTranspose

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

template <class Sink>
void conv_transpose(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    const QgemmUkernel& uk, uint8_t* scratch, Sink&& sink) {
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
  const Loops lp = loops_for(uk);
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
              lp.axpy_zp(split + (lidx * line + at[kk] + lo[kk]), xrow + lo[kk], hi[kk] - lo[kk], zp, wv);
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
      sink(b, ch, acc);
    }
  });
}

}  // namespace

int64_t qconv_scratch_bytes(const qref::ConvProblem& p) {
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return 0;
  Carver cv(nullptr);
  if (p.packed) carve_packed(p, cv);
  else carve_grouped(p, cv);
  return cv.used();
}

int64_t qconv_transpose_scratch_bytes(const qref::ConvProblem& p) {
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return 0;
  Carver cv(nullptr);
  carve_transpose(p, cv);
  return cv.used();
}

void qconv_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                const QconvEpilogue& ep, const QgemmUkernel* uk, void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  assert(!p.packed || p.group == 1);
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_scratch_bytes(p));
  if (p.packed) return conv_packed(p, xq, zp, w, ep, u, sc.get());
  const int64_t out_size = p.g.out_size();
  conv_grouped(p, xq, zp, w, u, sc.get(), [&](int64_t b, int64_t m, const int32_t* row) {
    const int64_t off = (b * p.M + m) * out_size;
    channel_epilogue(ep, m, row, out_size, ep.residual ? ep.residual + off : nullptr, ep.y + off);
  });
}

void qconv_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    int32_t* acc, const QgemmUkernel* uk, void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  assert(!p.packed || p.group == 1);
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_scratch_bytes(p));
  if (p.packed) return conv_packed_s32(p, xq, zp, w, acc, u, sc.get());
  const int64_t out_size = p.g.out_size();
  conv_grouped(p, xq, zp, w, u, sc.get(), [&](int64_t b, int64_t m, const int32_t* row) {
    std::memcpy(acc + (b * p.M + m) * out_size, row, static_cast<size_t>(out_size) * sizeof(int32_t));
  });
}

void qconv_transpose_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                          const int8_t* w, const QconvEpilogue& ep, const QgemmUkernel* uk,
                          void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_transpose_scratch_bytes(p));
  const int64_t out_size = p.g.out_size();
  conv_transpose(p, xq, zp, w, u, sc.get(), [&](int64_t b, int64_t ch, const int32_t* row) {
    const int64_t off = (b * p.M + ch) * out_size;
    channel_epilogue(ep, ch, row, out_size, ep.residual ? ep.residual + off : nullptr, ep.y + off);
  });
}

void qconv_transpose_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                              const int8_t* w, int32_t* acc, const QgemmUkernel* uk,
                              void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_transpose_scratch_bytes(p));
  const int64_t out_size = p.g.out_size();
  conv_transpose(p, xq, zp, w, u, sc.get(), [&](int64_t b, int64_t ch, const int32_t* row) {
    std::memcpy(acc + (b * p.M + ch) * out_size, row, static_cast<size_t>(out_size) * sizeof(int32_t));
  });
}

}  // namespace sarai::kernels
