// The AVX2 micro-kernel of the INT8 GEMM, 4 rows x 16 channels over k in
// groups of 4 (kernels/cpu/qgemm.h), and the AVX2 epilogue row it shares
// with the AVX-VNNI kernel (qgemm_u8s8_4x16c4__avx2_vnni.cc), reading the
// N16K4 weights in place. Only reached through the platform table after the
// cpuid/XCR0 checks.
//
// A ymm holds half of a 64-byte N16K4 block (panel p, k-group g): channels
// 0..7 of the panel with their 4 consecutive k bytes each, then (next 32
// bytes) channels 8..15. Both tiles are 4 rows × 1 panel: 8 ymm accumulators,
// int32 lane c of accumulator (i, h) summing row i's products for channel
// 8h + c. K tail: the weights are zero-padded to Kp = round_up(K, 4), so the
// last partial group only needs its activation bytes zero-extended (built
// from the valid bytes, never read past a[m][K-1]).
//
// AVX2 without VNNI: vpmaddubsw adds pairs of u8 × s8 products into int16
// WITH saturation (255·127·2 = 64770 > 32767), so it is not used. We use
// vpmaddwd on int16 operands instead: its products and pair sums are int32,
// |a·w + a'·w'| <= 2·255·128 = 65280, so nothing saturates or wraps, for
// w = -128 as well. Read as 16 int16 lanes, a half block has in lane 2c the
// k bytes 0 (low) and 1 (high) of channel c and in lane 2c+1 the k bytes 2
// and 3, so two shifts sign-extend them in place, with no shuffle:
//   even = srai16(slli16(w, 8), 8)     lanes (w[k0][c], w[k2][c])
//   odd  = srai16(w, 8)                lanes (w[k1][c], w[k3][c])
// and with x = a0 | a1 << 8 | a2 << 16 | a3 << 24 broadcast as int32,
//   xe = x & 0x00ff00ff                lanes (a0, a2), zero-extended
//   xo = srli16(x, 8)                  lanes (a1, a3), zero-extended
// int32 lane c of vpmaddwd(xe, even) + vpmaddwd(xo, odd) is
// Σ_{t<4} a_t * w[k_t][c]: already in channel order, no horizontal add.
// Per k-group of the 4 × 16 tile: 16 vpmaddwd + 16 vpaddd, 6 shifts for the
// weights (shared by the rows), 2 ops per row for the activations (shared by
// the 16 channels). Measured at M=1500, K=N=2048, 1 thread on an earlier
// machine's AMD EPYC (Zen 5 class), before the packed path below, best of
// 10 by thread CPU time: this scheme
// ~157 GOPS; activations zero-extended with vpunpcklbw, weights with
// vpmovsxbw, vpmaddwd into 4 accumulators per row and 16 channels, vphaddd
// at the end (2 rows × 16) ~150 GOPS; the split a = 2 (a >> 1) + (a & 1)
// (2 vpmaddubsw + 2 vpmaddwd per 8 channels, 4 rows) ~98 GOPS.
//
// Packed path (QgemmUkernel::pack_a / tile_packed, what the driver uses
// whenever K <= 32768): the analysis above counts, per k-group of the 4 × 16
// tile, 16 vpmaddwd (2 per cycle on Zen 3's FP0/FP3: 8 cycles) against ~50
// vector uops for 4 pipes (~12.5 cycles), i.e. ~0.64 of the multiply peak;
// measured 0.59. pack_a builds (xe, xo) once per row block, shared by all
// panels, so a row costs two vbroadcastss loads (load-only on Zen, unlike
// vpbroadcastd ymm, m32) instead of broadcast + and + shift: 38 vector uops
// + 10 loads per group. The 4-row k loop is inline assembly: with
// intrinsics GCC 12 spilled 2 accumulators and added 8 register copies per
// group, and the loop is bound by dispatch (6 macro-ops per cycle), so that
// version gained only ~2 %. Measured on this machine's AMD EPYC (Zen 3),
// 1 thread, K=N=2048 (docs/BENCHMARKS.md, issue 15 item 2): M=1500 ~0.59 ->
// ~0.71 of the vpmaddwd peak, M=150 ~0.60 -> ~0.72; M < 4 keeps `tile`.
// Tried after that: pre-expanding each panel's 512-deep k-block to int16
// once per row block (no shifts: 32 vector uops per group) measured no
// faster (1.02-1.05x), so the 6 shifts are not what is left.
//
// Tile shape: 4 rows × 1 panel = 8 accumulators leaves room for the weights
// (2 ymm for VNNI, 4 for AVX2) and the activations in 16 ymm registers. A
// panel's weights for the driver's 2048-deep k-block (32 KB) stay in L1
// across the row tiles of a row block. For AVX-VNNI, 2 rows × 2 panels
// measured ~5 % slower (~382 vs ~402 GOPS).
//
// Every loop over a tile's rows carries `#pragma GCC unroll` (MR <= 4):
// unrolled that early, GCC 12 turns the accumulator arrays into registers;
// left to itself it kept them on the stack, a load and a store per update
// (measured ~30 % slower for AVX-VNNI). The AVX2 group needs 17 live ymm, so
// a few accumulators still spill; the tile above is the fastest we measured
// regardless.
#include <cassert>
#include <cstring>

#include "kernels/cpu/qgemm_4x16c4_avx2_common.h"

namespace sarai::kernels {
namespace avx2_4x16c4 {
namespace {

// --- AVX2: vpmaddwd on even/odd k bytes (exactness: see the top comment).
// acc[i][h] += row i's products with one 64-byte block (x: load_group).
template <int MR>
SARAI_AVX2 inline void group_avx2(__m256i (&acc)[MR][2], const int32_t (&x)[MR], const int8_t* block) {
  __m256i even[2], odd[2];
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h) {
    const __m256i wv = load256(block + h * kHalfBytes);
    even[h] = _mm256_srai_epi16(_mm256_slli_epi16(wv, 8), 8);
    odd[h] = _mm256_srai_epi16(wv, 8);
  }
  const __m256i low_bytes = _mm256_set1_epi16(0x00ff);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m256i xv = _mm256_set1_epi32(x[i]);
    const __m256i xe = _mm256_and_si256(xv, low_bytes), xo = _mm256_srli_epi16(xv, 8);
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xe, even[h]));
      acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xo, odd[h]));
    }
  }
}

// Software prefetch distance of `tile` (M = 1..3, the GEMV-like calls that
// read each weight byte once): 8 blocks = 512 bytes = 8 cache lines ahead.
// The exact AVX2 group spends ~18 uops per 64-byte line, so the out-of-order
// window holds few lines' loads and the hardware prefetcher alone left the
// cold GEMV at ~0.65 of the memory bandwidth (oneDNN's FP32 sgemm, ~4 uops
// per line, reaches 1.0). Measured on AMD EPYC family 25 model 17 (Zen 4)
// under SARAI_MAX_ISA=avx2, qgemm_bench BM_qgemm/M:1/.../nthr:1/cold:1,
// medians of 3, alternating builds (docs/BENCHMARKS.md): K 2048 x N 8192
// 809-821 -> 711-746 us, K 8192 x N 2048 849-863 -> 717-786 us; distances 4
// and 8 measured alike, 16 and 32 no gain; warm calls unchanged. Past the
// last block it touches the next panel (read next anyway) or memory after
// the weights: a prefetch never faults.
constexpr int64_t kPrefetchGroups = 8;

// c[i][0..15] (+)= Σ over groups [0, groups) (+ one tail group of kt bytes)
// for i < MR; `a` points at a[row0][k0], `w` at the block (panel, group g0).
template <int MR>
SARAI_AVX2 void tile_avx2(const uint8_t* a, int64_t lda, const int8_t* w, int64_t groups, int64_t kt,
               int32_t* c, int64_t ldc, bool accumulate) {
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  int32_t x[MR];
  // The partial last group first (int32 sums: the order is free), so the
  // main loop has a single body.
  if (kt != 0) {
    load_group<MR>(x, a + groups * int8::kGroupK, lda, kt);
    group_avx2<MR>(acc, x, w + groups * kBlockBytes);
  }
  for (int64_t g = 0; g < groups; ++g) {
    // The weights' next lines, kPrefetchGroups blocks ahead (see below).
    _mm_prefetch(reinterpret_cast<const char*>(w + (g + kPrefetchGroups) * kBlockBytes), _MM_HINT_T0);
    load_group<MR>(x, a + g * int8::kGroupK, lda, int8::kGroupK);
    group_avx2<MR>(acc, x, w + g * kBlockBytes);
  }
  store_tile<MR>(acc, c, ldc, accumulate);
}

SARAI_AVX2 void tile_avx2_rows(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w,
                    int64_t pstride, int64_t panels, int64_t groups, int64_t kt, int32_t* c,
                    int64_t ldc, bool accumulate) {
  assert(panels == 1 && rows >= 1 && rows <= kMR);
  switch (rows) {
    case 1: return tile_avx2<1>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 2: return tile_avx2<2>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 3: return tile_avx2<3>(a, lda, w, groups, kt, c, ldc, accumulate);
    default: return tile_avx2<4>(a, lda, w, groups, kt, c, ldc, accumulate);
  }
}

// --- The packed path (QgemmUkernel::pack_a / tile_packed): the activations'
// (xe, xo) pairs are built once per row block by pack_a, so a k-group of the
// tile takes them with two broadcast loads per row (load-port work, no
// vector ALU uop) instead of broadcast + and + shift.

// Row i of a, k bytes, into ap + i * ldap as uint16 lanes (a0, a2, a1, a3)
// per k-group: the little-endian int32 pair (xe, xo) of the top comment.
SARAI_AVX2 void pack_a_avx2(const uint8_t* a, int64_t lda, int64_t rows, int64_t k, uint8_t* ap,
                            int64_t ldap) {
  for (int64_t i = 0; i < rows; ++i) {
    const uint8_t* src = a + i * lda;
    uint8_t* dst = ap + i * ldap;
    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) {
      // 16 bytes -> 16 uint16, then lanes (0, 1, 2, 3) -> (0, 2, 1, 3) in
      // every group of 4 (imm 0xD8 = 3,1,2,0).
      __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + kk)));
      v = _mm256_shufflehi_epi16(_mm256_shufflelo_epi16(v, 0xD8), 0xD8);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 2 * kk), v);
    }
    for (; kk < k; kk += int8::kGroupK) {  // the last groups, the partial one zero-padded
      uint16_t b[4] = {0, 0, 0, 0};
      for (int64_t t = 0; t < int8::kGroupK && kk + t < k; ++t) b[t] = src[kk + t];
      const uint16_t out[4] = {b[0], b[2], b[1], b[3]};
      std::memcpy(dst + 2 * kk, out, sizeof out);
    }
  }
}

// 4 bytes at p broadcast to the 8 int32 lanes with vbroadcastss: a pure
// load on AMD Zen (no vector ALU uop, unlike vpbroadcastd ymm, m32).
SARAI_AVX2 inline __m256i bcast32(const uint8_t* p) {
  return _mm256_castps_si256(_mm256_broadcast_ss(reinterpret_cast<const float*>(p)));
}

// tile_avx2 on packed activations: `ap` at the tile's first row and group.
template <int MR>
SARAI_AVX2 void tile_avx2_packed(const uint8_t* ap, int64_t ldap, const int8_t* w, int64_t groups,
                                 int32_t* c, int64_t ldc, bool accumulate) {
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  for (int64_t g = 0; g < groups; ++g) {
    const int8_t* block = w + g * kBlockBytes;
    // One half block at a time, the broadcasts reloaded for the second
    // (loads are cheap, registers are not): 8 accumulators + 2 weights +
    // 2 activations + temporaries fit in 16 ymm, so nothing spills.
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const __m256i wv = load256(block + h * kHalfBytes);
      const __m256i even = _mm256_srai_epi16(_mm256_slli_epi16(wv, 8), 8);
      const __m256i odd = _mm256_srai_epi16(wv, 8);
      // An opaque copy of the pointer per half, so GCC reloads the
      // broadcasts rather than keeping h = 0's alive in registers (it did,
      // and spilled accumulators).
      const uint8_t* ag = ap + g * 8;
      __asm__ volatile("" : "+r"(ag));
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const uint8_t* p = ag + i * ldap;
        const __m256i xe = bcast32(p), xo = bcast32(p + 4);
        acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xe, even));
        acc[i][h] = _mm256_add_epi32(acc[i][h], _mm256_madd_epi16(xo, odd));
      }
    }
  }
  store_tile<MR>(acc, c, ldc, accumulate);
}

// The full 4-row tile's k loop in assembly. GCC 12 (intrinsics above, MR = 4)
// kept live more temporaries than the 16 ymm hold, spilling accumulators
// and adding register copies; the loop is dispatch-bound (6 macro-ops per
// cycle on Zen 3), so every extra instruction costs. Here: ymm0..7 the
// accumulators (row i, half h in ymm 2i + h), ymm8..11 the even/odd weights,
// ymm12/15 the broadcast activations, ymm13/14 the products; per k-group
// 2 loads + 6 shifts + 8 broadcast loads + 16 vpmaddwd + 16 vpaddd.
SARAI_AVX2 void tile_avx2_packed_4(const uint8_t* ap, int64_t ldap, const int8_t* w, int64_t groups,
                                   int32_t* c, int64_t ldc, bool accumulate) {
  alignas(32) __m256i acc[4][2];
  const uint8_t* a1 = ap + ldap;
  const uint8_t* a2 = ap + 2 * ldap;
  const uint8_t* a3 = a1 + 2 * ldap;
  int64_t g = 0;
#define SARAI_ROW(A, ACC0, ACC1)                              \
  "vbroadcastss (%[" #A "],%[g],8), %%ymm12\n\t"               \
  "vbroadcastss 4(%[" #A "],%[g],8), %%ymm15\n\t"              \
  "vpmaddwd %%ymm8, %%ymm12, %%ymm13\n\t"                      \
  "vpmaddwd %%ymm9, %%ymm12, %%ymm14\n\t"                      \
  "vpaddd %%ymm13, %%" ACC0 ", %%" ACC0 "\n\t"                  \
  "vpaddd %%ymm14, %%" ACC1 ", %%" ACC1 "\n\t"                  \
  "vpmaddwd %%ymm10, %%ymm15, %%ymm13\n\t"                     \
  "vpmaddwd %%ymm11, %%ymm15, %%ymm14\n\t"                     \
  "vpaddd %%ymm13, %%" ACC0 ", %%" ACC0 "\n\t"                  \
  "vpaddd %%ymm14, %%" ACC1 ", %%" ACC1 "\n\t"
  __asm__ volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vpxor %%xmm1, %%xmm1, %%xmm1\n\t"
      "vpxor %%xmm2, %%xmm2, %%xmm2\n\t"
      "vpxor %%xmm3, %%xmm3, %%xmm3\n\t"
      "vpxor %%xmm4, %%xmm4, %%xmm4\n\t"
      "vpxor %%xmm5, %%xmm5, %%xmm5\n\t"
      "vpxor %%xmm6, %%xmm6, %%xmm6\n\t"
      "vpxor %%xmm7, %%xmm7, %%xmm7\n\t"
      "test %[n], %[n]\n\t"
      "jle 2f\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vmovdqu (%[w]), %%ymm10\n\t"
      "vmovdqu 32(%[w]), %%ymm11\n\t"
      "vpsllw $8, %%ymm10, %%ymm8\n\t"
      "vpsllw $8, %%ymm11, %%ymm9\n\t"
      "vpsraw $8, %%ymm8, %%ymm8\n\t"
      "vpsraw $8, %%ymm9, %%ymm9\n\t"
      "vpsraw $8, %%ymm10, %%ymm10\n\t"
      "vpsraw $8, %%ymm11, %%ymm11\n\t"
      SARAI_ROW(a0, "ymm0", "ymm1")
      SARAI_ROW(a1, "ymm2", "ymm3")
      SARAI_ROW(a2, "ymm4", "ymm5")
      SARAI_ROW(a3, "ymm6", "ymm7")
      "add $64, %[w]\n\t"
      "inc %[g]\n\t"
      "cmp %[g], %[n]\n\t"
      "jne 1b\n"
      "2:\n\t"
      "vmovdqa %%ymm0, 0(%[acc])\n\t"
      "vmovdqa %%ymm1, 32(%[acc])\n\t"
      "vmovdqa %%ymm2, 64(%[acc])\n\t"
      "vmovdqa %%ymm3, 96(%[acc])\n\t"
      "vmovdqa %%ymm4, 128(%[acc])\n\t"
      "vmovdqa %%ymm5, 160(%[acc])\n\t"
      "vmovdqa %%ymm6, 192(%[acc])\n\t"
      "vmovdqa %%ymm7, 224(%[acc])\n\t"
      : [w] "+r"(w), [g] "+r"(g)
      : [a0] "r"(ap), [a1] "r"(a1), [a2] "r"(a2), [a3] "r"(a3), [n] "r"(groups), [acc] "r"(&acc[0][0])
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
#undef SARAI_ROW
  store_tile<4>(acc, c, ldc, accumulate);
}

SARAI_AVX2 void tile_avx2_packed_rows(const uint8_t* ap, int64_t ldap, int64_t rows, const int8_t* w,
                                      int64_t pstride, int64_t panels, int64_t groups, int32_t* c,
                                      int64_t ldc, bool accumulate) {
  assert(panels == 1 && rows >= 1 && rows <= kMR);
  switch (rows) {
    case 1: return tile_avx2_packed<1>(ap, ldap, w, groups, c, ldc, accumulate);
    case 2: return tile_avx2_packed<2>(ap, ldap, w, groups, c, ldc, accumulate);
    case 3: return tile_avx2_packed<3>(ap, ldap, w, groups, c, ldc, accumulate);
    default: return tile_avx2_packed_4(ap, ldap, w, groups, c, ldc, accumulate);
  }
}

// --- The epilogue (both ISAs): 8 outputs; kMasked: only the lanes of `mask`
// are read and written. Separate mul and add: the scalar order.
template <bool kMasked>
SARAI_AVX2 inline void epilogue8(const int32_t* acc, const int32_t* comp, const float* cscale,
                      const QuantParams* row, const float* bias, const float* residual, QgemmActivation act,
                      float* y, __m256i mask) {
  const auto load_i = [mask](const int32_t* p) SARAI_AVX2 {
    return kMasked ? _mm256_maskload_epi32(p, mask) : load256(p);
  };
  const auto load_f = [mask](const float* p) SARAI_AVX2 {
    return kMasked ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
  };
  __m256i v = load_i(acc);
  __m256 cs = load_f(cscale);
  if (comp) {
    __m256i c = load_i(comp);
    if (row) {  // the row's constants: z_x * wsum (low 32 bits: modular), s_x * scale
      c = _mm256_mullo_epi32(_mm256_set1_epi32(row->zero_point), c);
      cs = _mm256_mul_ps(_mm256_set1_ps(row->scale), cs);
    }
    v = _mm256_sub_epi32(v, c);
  }
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), cs);
  f = _mm256_add_ps(f, bias ? load_f(bias) : _mm256_setzero_ps());
  if (residual) f = _mm256_add_ps(f, load_f(residual));
  if (act == QgemmActivation::kRelu) {
    // v < 0 ? 0 : v: clear the lanes that compare less than zero (NaN, -0 kept).
    f = _mm256_andnot_ps(_mm256_cmp_ps(f, _mm256_setzero_ps(), _CMP_LT_OQ), f);
  }
  if (kMasked)
    _mm256_maskstore_ps(y, mask, f);
  else
    _mm256_storeu_ps(y, f);
}

}  // namespace

SARAI_AVX2 void epilogue_row(const int32_t* acc, int64_t n, const int32_t* comp, const float* cscale,
                             const QuantParams* row, const float* bias, const float* residual, QgemmActivation act,
                             float* y) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    epilogue8<false>(acc + j, comp ? comp + j : nullptr, cscale + j, row, bias ? bias + j : nullptr,
                     residual ? residual + j : nullptr, act, y + j, /*mask, unused=*/__m256i{});
  if (j < n) {
    // Lanes [0, n - j): masked loads never touch memory past element n - 1.
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n - j)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    epilogue8<true>(acc + j, comp ? comp + j : nullptr, cscale + j, row, bias ? bias + j : nullptr,
                    residual ? residual + j : nullptr, act, y + j, mask);
  }
}


}  // namespace avx2_4x16c4

namespace {
// Below one full tile of rows (GEMV, M = 1..3) the loop is bound by the
// weights' traffic, not the ALU, and packing measured slower at M=1
// (docs/BENCHMARKS.md): those keep reading a in place.
const QgemmUkernel kTable = {Isa::kAvx2, avx2_4x16c4::kMR, 1, avx2_4x16c4::tile_avx2_rows,
                             avx2_4x16c4::epilogue_row, /*epilogue_row_stream=*/nullptr,
                             avx2_4x16c4::pack_a_avx2, avx2_4x16c4::tile_avx2_packed_rows,
                             /*pack_min_rows=*/avx2_4x16c4::kMR};
}  // namespace

const QgemmUkernel& qgemm_u8s8_4x16c4__avx2() { return kTable; }

}  // namespace sarai::kernels
