// The direct convolution kernels' inner loops and the group-1 transposing
// epilogue (kernels/cpu/qconv_loops.h), compiled for the baseline, AVX2 and
// AVX-512 (F/BW/VL, which level avx512_vnni guarantees) through
// function-level target attributes: the always_inline bodies are inlined
// into each, no shared inline function is compiled for a higher ISA. Also
// the per-channel epilogue of the direct kernels (scalar: a channel's row).
#include <algorithm>

#include "kernels/cpu/platform.h"
#include "kernels/cpu/qconv_internal.h"

namespace sarai::kernels {
namespace qconv_detail {
namespace {

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

}  // namespace

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
  if (ep.act == QgemmActivation::kGelu) platform().vec->gelu(y, y, n);
}


namespace {

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

SARAI_QCONV_LOOPS(scalar, )
SARAI_QCONV_LOOPS(avx2, __attribute__((target("avx2"))))
SARAI_QCONV_LOOPS(avx512_vnni, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#undef SARAI_QCONV_LOOPS

// The group-1 epilogue: the GEMM's int32 block acc[i][m] (row i = output
// position o0 + i, ld lda) to y[m][o0 + i], transposing through a small
// float tile: first v = float(acc - comp) * cs + bias, vectorized along the
// channels, then + residual and the activation, vectorized along the
// positions (the QgemmEpilogue order of operations either way).
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

SARAI_QCONV_TEPI(scalar, )
SARAI_QCONV_TEPI(avx2, __attribute__((target("avx2"))))
SARAI_QCONV_TEPI(avx512_vnni, __attribute__((target("avx512f,avx512bw,avx512vl"))))
#undef SARAI_QCONV_TEPI

const QconvLoops kScalar = {axpy_scalar, axpy_zp_scalar, qconv_dw_row_u8s8__scalar,
                            transpose_epilogue_scalar};
const QconvLoops kAvx2 = {axpy_avx2, axpy_zp_avx2, qconv_dw_row_u8s8__avx2, transpose_epilogue_avx2};
const QconvLoops kAvx512Vnni = {axpy_avx512_vnni, axpy_zp_avx512_vnni, qconv_dw_row_u8s8__avx2,
                                transpose_epilogue_avx512_vnni};

}  // namespace
}  // namespace qconv_detail

// The scalar depthwise row: the contract's formula, one output at a time
// (the weights unpacked from their pairs).
void qconv_dw_row_u8s8__scalar(const uint8_t* x, int64_t s, const int64_t* koff, const int32_t* wp,
                               int64_t taps, int64_t n, int32_t* acc) {
  for (int64_t o = 0; o < n; ++o) {
    const uint8_t* xo = x + o * s;
    int32_t sum = 0;
    for (int64_t r = 0; r < taps; ++r) {
      const uint32_t pair = static_cast<uint32_t>(wp[r / 2]);
      const int32_t w = static_cast<int16_t>(static_cast<uint16_t>(r % 2 ? pair >> 16 : pair));
      sum += static_cast<int32_t>(xo[koff[r]]) * w;
    }
    acc[o] = sum;
  }
}

const QconvLoops& qconv_loops__scalar() { return qconv_detail::kScalar; }
const QconvLoops& qconv_loops__avx2() { return qconv_detail::kAvx2; }
const QconvLoops& qconv_loops__avx512_vnni() { return qconv_detail::kAvx512Vnni; }

}  // namespace sarai::kernels
