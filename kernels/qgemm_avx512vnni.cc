// qgemm_u8s8_n16k4_avx512vnni (kernels/qgemm.h): the QMatMul int32 core for
// AVX-512 VNNI, reading the N16K4 weights in place. This file is compiled
// with -mavx512f -mavx512bw -mavx512vnni (top-level CMakeLists.txt) and is
// only reached through qgemm_u8s8_n16k4 after cpuid/XCR0 checks.
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
// (built from the valid bytes, never read past a[m][K-1]). N tail: channels
// >= N of the last panel are computed on padding zeros and not stored
// (masked store).
//
// Tile: kMR rows × kNR panels = 8 zmm accumulators; per k-group kNR weight
// loads + kMR broadcasts feed kMR*kNR vpdpbusd. K is blocked by kKC so one
// tile's weights (kNR * kKC * 16 bytes = 64 KB) stay in L2 across the row
// tiles of a row block; partial sums over k-blocks go through c. (kKC = 512,
// 16 KB in L1, measured ~5 % slower at M=1500, K=N=2048 on this machine's
// AMD EPYC: the extra pass over c costs more than the L1 residency saves.)
#include <immintrin.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "kernels/int8_layout.h"
#include "kernels/qgemm.h"
#include "runtime/parallel.h"

// Only this file's own functions get AVX-512 code: the headers above are
// compiled for the baseline, so no shared inline function (std::min,
// int8::round_up...) can come out of this file with AVX-512 instructions in
// it and be picked by the linker for callers on older CPUs.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vnni")

namespace sarai::kernels {
namespace {

constexpr int kMR = 4;           // rows per tile
constexpr int kNR = 2;           // 16-channel panels per tile
constexpr int64_t kKC = 2048;    // k per block (multiple of 4)
constexpr int64_t kMB = 64;      // rows per parallel task (multiple of kMR)
constexpr int64_t kPanelBytesPerGroup = int8::kPanelN * int8::kGroupK;  // 64

inline int32_t load_u32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The last, partial group: kt in 1..3 valid bytes, zero-extended.
inline int32_t load_tail(const uint8_t* p, int64_t kt) {
  uint8_t b[4] = {0, 0, 0, 0};
  for (int64_t t = 0; t < kt; ++t) b[t] = p[t];
  return load_u32(b);
}

// c[i][16 j + lane] (+)= Σ over groups [0, groups) (+ one tail group of kt
// bytes) for i < MR, j < NR. `a` points at a[row0][k0], `w` at block
// (panel0, group g0), `pstride` is the byte distance between panels.
// `last_mask` masks the lanes of panel NR-1 (the N tail); other panels are full.
template <int MR, int NR>
void tile(const uint8_t* a, int64_t lda, const int8_t* w, int64_t pstride, int64_t groups,
          int64_t kt, int32_t* c, int64_t ldc, bool accumulate, __mmask16 last_mask) {
  __m512i acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_setzero_si512();
  const int8_t* wp = w;
  for (int64_t g = 0; g < groups; ++g, wp += kPanelBytesPerGroup) {
    __m512i b[NR];
    for (int j = 0; j < NR; ++j) b[j] = _mm512_loadu_si512(wp + j * pstride);
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(load_u32(a + i * lda + 4 * g));
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, b[j]);
    }
  }
  if (kt != 0) {
    __m512i b[NR];
    for (int j = 0; j < NR; ++j) b[j] = _mm512_loadu_si512(wp + j * pstride);
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(load_tail(a + i * lda + 4 * groups, kt));
      for (int j = 0; j < NR; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, b[j]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    for (int j = 0; j < NR; ++j) {
      int32_t* out = c + i * ldc + j * int8::kPanelN;
      const __mmask16 mask = j == NR - 1 ? last_mask : __mmask16(0xffff);
      __m512i v = acc[i][j];
      if (accumulate) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, out));
      _mm512_mask_storeu_epi32(out, mask, v);
    }
  }
}

using TileFn = void (*)(const uint8_t*, int64_t, const int8_t*, int64_t, int64_t, int64_t,
                        int32_t*, int64_t, bool, __mmask16);

template <int NR>
TileFn tile_for_rows(int64_t mr) {
  switch (mr) {
    case 1: return tile<1, NR>;
    case 2: return tile<2, NR>;
    case 3: return tile<3, NR>;
    default: return tile<4, NR>;
  }
}

}  // namespace

void qgemm_u8s8_n16k4_avx512vnni(const uint8_t* a, int64_t m, int64_t k, int64_t lda,
                                 const int8_t* w_packed, int64_t n, int32_t* c, int64_t ldc) {
  static_assert(kMR == 4 && kKC % int8::kGroupK == 0 && kMB % kMR == 0);
  assert(m >= 0 && k >= 1 && n >= 1 && lda >= k && ldc >= n);
  if (m == 0) return;
  const int64_t kp = int8::round_up(k, int8::kGroupK);
  const int64_t pstride = kp * int8::kPanelN;  // bytes per panel
  const int64_t panels = (n + int8::kPanelN - 1) / int8::kPanelN;
  const int64_t pairs = (panels + kNR - 1) / kNR;
  const int64_t mblocks = (m + kMB - 1) / kMB;
  const int64_t tasks = pairs * mblocks;
  // Below ~4 M multiply-adds a thread team costs more than it saves.
  const int64_t grain = m * n * k < (int64_t{1} << 22) ? tasks : 1;
  parallel_for(tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t pair = t / mblocks, mb = t % mblocks;  // row blocks inner: weights reused
      const int64_t p0 = pair * kNR, nr = std::min<int64_t>(kNR, panels - p0);
      const int64_t n_last = std::min<int64_t>(n - (p0 + nr - 1) * int8::kPanelN, int8::kPanelN);
      const __mmask16 last_mask = static_cast<__mmask16>((1u << n_last) - 1u);
      const int64_t m0 = mb * kMB, m1 = std::min(m, m0 + kMB);
      for (int64_t k0 = 0; k0 < k; k0 += kKC) {
        const int64_t k1 = std::min(k, k0 + kKC);
        const int64_t groups = (k1 - k0) / int8::kGroupK, kt = (k1 - k0) % int8::kGroupK;
        const int8_t* w = w_packed + p0 * pstride + (k0 / int8::kGroupK) * kPanelBytesPerGroup;
        for (int64_t r = m0; r < m1; r += kMR) {
          const int64_t mr = std::min<int64_t>(kMR, m1 - r);
          const TileFn fn = nr == 2 ? tile_for_rows<2>(mr) : tile_for_rows<1>(mr);
          fn(a + r * lda + k0, lda, w, pstride, groups, kt, c + r * ldc + p0 * int8::kPanelN, ldc,
             /*accumulate=*/k0 != 0, last_mask);
        }
      }
    }
  });
}

}  // namespace sarai::kernels

#pragma GCC pop_options
