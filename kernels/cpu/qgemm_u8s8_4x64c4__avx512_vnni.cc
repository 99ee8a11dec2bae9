// The AVX-512 VNNI micro-kernel of the INT8 GEMM, 4 rows x 64 channels (4
// panels) over k in groups of 4, and its epilogue (kernels/cpu/qgemm.h),
// reading the N16K4 weights in place. Only reached through the platform
// table (kernels/cpu/platform.h) after the cpuid/XCR0 checks.
//
// One 64-byte block of N16K4 (panel p, k-group g) holds, for each of the 16
// channels of the panel, its 4 consecutive k values: exactly the s8 operand
// of vpdpbusd. Broadcasting the 4 activation bytes a[m][4g..4g+3] as one
// int32 to all 16 lanes makes lane j of
//   acc = vpdpbusd(acc, bcast(a[m][4g..4g+3]), block(p, g))
// add Σ_{t<4} a[m][4g+t] * w[4g+t][16p+j] into acc: u8 × s8 products, summed
// in int32 without intermediate saturation, so the result equals the scalar
// reference exactly. K tail: the weights are zero-padded to Kp = round_up(K, 4),
// so the last partial group only needs its activation bytes zero-extended
// (built from the valid bytes, never read past a[m][K-1]).
//
// Tile: 4 rows × 4 panels = 16 zmm accumulators; per k-group 4 weight loads
// + 4 broadcasts feed 16 vpdpbusd (vpdpbusd's latency needs >= 8 independent
// chains at 2 per cycle). The driver (qgemm.cc) blocks K by 2048, so a
// tile's weights (4 * 2048 * 16 bytes = 128 KB) stay in L2 across the row
// tiles of a row block. Measured on this machine's AMD EPYC (Zen 5), 1
// thread, bench/qgemm_bench, medians of 5 (peak 978 GOPS):
//   - the accumulators as named variables fed through inline asm (below):
//     M=1500 K=N=2048 ~890-910 GOPS (0.91 of peak), K=8192 ~790; with the
//     intrinsic GCC 12 added 32 register copies per 16 vpdpbusd and the same
//     tile ran ~640-675 (0.68);
//   - k-blocks of 2048 vs 1024 vs 512: within noise at K=2048, 2048 best at
//     K=8192 (~790 vs ~740-770);
//   - with the intrinsic version, 4x2 ran ~600 and 6x4 / 8x3 (24
//     accumulators, as an array) spilled to ~345.
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"

// Only this file's own functions get AVX-512 code, each through its own
// target attribute (GCC and clang alike; clang has no `#pragma GCC target`):
// the headers above are compiled for the baseline, so no shared inline
// function (std::min, int8::round_up...) can come out of this file with
// AVX-512 instructions in it and be picked by the linker for callers on
// older CPUs. Lambdas need the attribute too.
#define SARAI_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vnni")))

namespace sarai::kernels {
namespace {

constexpr int64_t kPanelBytesPerGroup = int8::kPanelN * int8::kGroupK;  // 64

SARAI_AVX512_VNNI inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The last, partial group: kt in 1..3 valid bytes, zero-extended.
SARAI_AVX512_VNNI inline int32_t load_tail(const uint8_t* p, int64_t kt) {
  uint8_t b[4] = {0, 0, 0, 0};
  for (int64_t t = 0; t < kt; ++t) b[t] = p[t];
  return load_u32(b);
}

// c[i][16 j + lane] (+)= Σ over groups [0, groups) (+ one tail group of kt
// bytes) for i < MR, j < NR. `a` points at a[row0][k0], `w` at block
// (panel0, group g0), `pstride` is the byte distance between panels.
// `last_mask` masks the lanes of panel NR-1 (the N tail); other panels are full.
// acc += Σ4 u8(a) * s8(b) per int32 lane, in place. Inline asm, not
// _mm512_dpbusd_epi32: GCC 12's pattern for the intrinsic does not tie the
// accumulator to the result, so it computed each product in another register
// and copied the accumulator there and back: 32 vmovdqa per 16 vpdpbusd in
// the 4x4 tile's loop (seen in objdump), ~10 % of the throughput.
#define SARAI_DPBUSD(acc, av, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(av), "v"(b))

// One k-group of one row of the tile: broadcast the row's 4 activation
// bytes (a32), multiply-accumulate into the row's NR accumulators.
#define SARAI_TILE_ROW(i, a32)                          \
  if constexpr (MR > i) {                               \
    const __m512i av = _mm512_set1_epi32(a32);          \
    if constexpr (NR > 0) SARAI_DPBUSD(c##i##0, av, b0); \
    if constexpr (NR > 1) SARAI_DPBUSD(c##i##1, av, b1); \
    if constexpr (NR > 2) SARAI_DPBUSD(c##i##2, av, b2); \
    if constexpr (NR > 3) SARAI_DPBUSD(c##i##3, av, b3); \
  }
#define SARAI_TILE_STORE(i, j)                                                   \
  if constexpr (MR > i && NR > j) {                                              \
    int32_t* out = c + i * ldc + j * int8::kPanelN;                              \
    __m512i v = c##i##j;                                                         \
    if (accumulate) v = _mm512_add_epi32(v, _mm512_loadu_si512(out));            \
    _mm512_storeu_si512(out, v);                                                 \
  }

// The accumulators are 16 named variables, not an array, so each lives in
// one register across the loop (an array passed to the asm by reference was
// kept in memory).
template <int MR, int NR>
SARAI_AVX512_VNNI void tile(const uint8_t* a, int64_t lda, const int8_t* w, int64_t pstride, int64_t groups,
          int64_t kt, int32_t* c, int64_t ldc, bool accumulate) {
  static_assert(MR >= 1 && MR <= 4 && NR >= 1 && NR <= 4);
  const __m512i z = _mm512_setzero_si512();
  __m512i c00 = z, c01 = z, c02 = z, c03 = z, c10 = z, c11 = z, c12 = z, c13 = z;
  __m512i c20 = z, c21 = z, c22 = z, c23 = z, c30 = z, c31 = z, c32 = z, c33 = z;
  const uint8_t* a0 = a;
  const uint8_t* a1 = a + lda;
  const uint8_t* a2 = a + 2 * lda;
  const uint8_t* a3 = a + 3 * lda;
  const int8_t* wp = w;
  __m512i b0 = z, b1 = z, b2 = z, b3 = z;
  auto load_b = [&](const int8_t* p) SARAI_AVX512_VNNI {
    b0 = _mm512_loadu_si512(p);
    if constexpr (NR > 1) b1 = _mm512_loadu_si512(p + pstride);
    if constexpr (NR > 2) b2 = _mm512_loadu_si512(p + 2 * pstride);
    if constexpr (NR > 3) b3 = _mm512_loadu_si512(p + 3 * pstride);
  };
  for (int64_t g = 0; g < groups; ++g, wp += kPanelBytesPerGroup) {
    load_b(wp);
    SARAI_TILE_ROW(0, load_u32(a0 + 4 * g))
    SARAI_TILE_ROW(1, load_u32(a1 + 4 * g))
    SARAI_TILE_ROW(2, load_u32(a2 + 4 * g))
    SARAI_TILE_ROW(3, load_u32(a3 + 4 * g))
  }
  if (kt != 0) {
    load_b(wp);
    SARAI_TILE_ROW(0, load_tail(a0 + 4 * groups, kt))
    SARAI_TILE_ROW(1, load_tail(a1 + 4 * groups, kt))
    SARAI_TILE_ROW(2, load_tail(a2 + 4 * groups, kt))
    SARAI_TILE_ROW(3, load_tail(a3 + 4 * groups, kt))
  }
  SARAI_TILE_STORE(0, 0) SARAI_TILE_STORE(0, 1) SARAI_TILE_STORE(0, 2) SARAI_TILE_STORE(0, 3)
  SARAI_TILE_STORE(1, 0) SARAI_TILE_STORE(1, 1) SARAI_TILE_STORE(1, 2) SARAI_TILE_STORE(1, 3)
  SARAI_TILE_STORE(2, 0) SARAI_TILE_STORE(2, 1) SARAI_TILE_STORE(2, 2) SARAI_TILE_STORE(2, 3)
  SARAI_TILE_STORE(3, 0) SARAI_TILE_STORE(3, 1) SARAI_TILE_STORE(3, 2) SARAI_TILE_STORE(3, 3)
}

#undef SARAI_DPBUSD
#undef SARAI_TILE_ROW
#undef SARAI_TILE_STORE

using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, int64_t, int64_t,
                        int32_t*, int64_t, bool);

constexpr int kMR = 4;  // rows per full tile (the driver's row block, 64, must be a multiple)
constexpr int kNR = 4;  // 16-channel panels per full tile (kNR * 16 <= 64)

// Every partial tile (fewer rows or panels at the edges) is its own
// instance, so the accumulator arrays are sized at compile time and stay in
// registers.
template <int MR>
TileFn tile_for_panels(int64_t np) {
  switch (np) {
    case 1: return tile<MR, 1>;
    case 2: return tile<MR, (kNR >= 2 ? 2 : 1)>;
    case 3: return tile<MR, (kNR >= 3 ? 3 : 1)>;
    default: return tile<MR, (kNR >= 4 ? 4 : 1)>;
  }
}

TileFn tile_for(int64_t rows, int64_t np) {
  switch (rows) {
    case 1: return tile_for_panels<1>(np);
    case 2: return tile_for_panels<(kMR >= 2 ? 2 : 1)>(np);
    case 3: return tile_for_panels<(kMR >= 3 ? 3 : 1)>(np);
    case 4: return tile_for_panels<(kMR >= 4 ? 4 : 1)>(np);
    case 5: return tile_for_panels<(kMR >= 5 ? 5 : 1)>(np);
    case 6: return tile_for_panels<(kMR >= 6 ? 6 : 1)>(np);
    case 7: return tile_for_panels<(kMR >= 7 ? 7 : 1)>(np);
    default: return tile_for_panels<(kMR >= 8 ? 8 : 1)>(np);
  }
}

SARAI_AVX512_VNNI void tile_avx512_vnni(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w, int64_t pstride,
                     int64_t panels, int64_t groups, int64_t kt, int32_t* c, int64_t ldc,
                     bool accumulate) {
  tile_for(rows, panels)(a, lda, w, pstride, groups, kt, c, ldc, accumulate);
}

// 16 outputs of the epilogue; `mask` selects the valid lanes. Separate mul
// and add (this file builds with -ffp-contract=off): the scalar order.
// kStream: full, 64-byte aligned vectors go out with non-temporal stores.
template <bool kStream>
SARAI_AVX512_VNNI inline void epilogue16(const int32_t* acc, const int32_t* comp, const float* cscale,
                       const QuantParams* row, const float* bias, const float* residual, QgemmActivation act,
                       float* y, __mmask16 mask) {
  __m512i v = _mm512_maskz_loadu_epi32(mask, acc);
  __m512 cs = _mm512_maskz_loadu_ps(mask, cscale);
  if (comp) {
    __m512i c = _mm512_maskz_loadu_epi32(mask, comp);
    if (row) {  // the row's constants: z_x * wsum (low 32 bits: modular), s_x * scale
      c = _mm512_mullo_epi32(_mm512_set1_epi32(row->zero_point), c);
      cs = _mm512_mul_ps(_mm512_set1_ps(row->scale), cs);
    }
    v = _mm512_sub_epi32(v, c);
  }
  // (maskz form: GCC 12 warns falsely on the plain one's undefined source)
  __m512 f = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, v), cs);
  f = _mm512_add_ps(f, bias ? _mm512_maskz_loadu_ps(mask, bias) : _mm512_setzero_ps());
  if (residual) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(mask, residual));
  if (act == QgemmActivation::kRelu) {
    // v < 0 ? 0 : v: clear the lanes that compare less than zero (NaN, -0 kept).
    const __mmask16 neg = _mm512_cmp_ps_mask(f, _mm512_setzero_ps(), _CMP_LT_OQ);
    f = _mm512_mask_mov_ps(f, neg, _mm512_setzero_ps());
  }
  if (kStream && mask == 0xffff && (reinterpret_cast<uintptr_t>(y) & 63) == 0)
    _mm512_stream_ps(y, f);
  else
    _mm512_mask_storeu_ps(y, mask, f);
}

template <bool kStream>
SARAI_AVX512_VNNI void epilogue_row_avx512(const int32_t* acc, int64_t n, const int32_t* comp, const float* cscale,
                                           const QuantParams* row, const float* bias, const float* residual,
                                           QgemmActivation act, float* y) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    epilogue16<kStream>(acc + j, comp ? comp + j : nullptr, cscale + j, row, bias ? bias + j : nullptr,
                        residual ? residual + j : nullptr, act, y + j, 0xffff);
  if (j < n)
    epilogue16<kStream>(acc + j, comp ? comp + j : nullptr, cscale + j, row, bias ? bias + j : nullptr,
                        residual ? residual + j : nullptr, act, y + j,
                        static_cast<__mmask16>((1u << (n - j)) - 1u));
}

const QgemmUkernel kTable = {Isa::kAvx512Vnni, kMR, kNR, tile_avx512_vnni, epilogue_row_avx512<false>,
                             epilogue_row_avx512<true>};

}  // namespace

const QgemmUkernel& qgemm_u8s8_4x64c4__avx512_vnni() { return kTable; }

}  // namespace sarai::kernels

