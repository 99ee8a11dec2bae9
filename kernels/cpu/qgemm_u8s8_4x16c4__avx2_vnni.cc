// The AVX-VNNI micro-kernel of the INT8 GEMM, 4 rows x 16 channels over k
// in groups of 4 (kernels/cpu/qgemm.h): VEX vpdpbusd on ymm (Alder Lake and
// later, Zen 5), with the AVX2 kernel's loads, stores and epilogue row
// (qgemm_4x16c4_avx2_common.h). Only reached through the platform table
// after the cpuid/XCR0 checks. Tile shape and layout: see
// qgemm_u8s8_4x16c4__avx2.cc.
//
// AVX-VNNI: with the 4 activation bytes a[m][4g..4g+3] broadcast as one
// int32, lane c of vpdpbusd(acc, bcast, half block) adds
// Σ_{t<4} a[m][4g+t] * w[4g+t][c]: u8 × s8 products summed in int32 without
// intermediate saturation, so exact, like the AVX-512 VNNI kernel.
//
// Tested on CPUs without AVX-VNNI too: tests/CMakeLists.txt compiles this
// file a second time with SARAI_AVX2_VNNI_VIA_EVEX, which swaps the VEX
// instruction for vpdpbusd's EVEX encoding on ymm (AVX-512 VNNI + VL; the
// same operation on the same registers) and names the table
// qgemm_u8s8_4x16c4__avx2_vnni_evex, so an AVX-512 VNNI machine runs every
// avx2_vnni micro-kernel test on this code (tests/test_util.h).
#include <cassert>

#include "kernels/cpu/qgemm_4x16c4_avx2_common.h"

#ifdef SARAI_AVX2_VNNI_VIA_EVEX
#undef SARAI_AVX2_VNNI
#define SARAI_AVX2_VNNI __attribute__((target("avx512vnni,avx512vl,avx2,fma")))
#define SARAI_DPBUSD_YMM _mm256_dpbusd_epi32
#define SARAI_AVX2_VNNI_TABLE qgemm_u8s8_4x16c4__avx2_vnni_evex
#else
#define SARAI_DPBUSD_YMM _mm256_dpbusd_avx_epi32
#define SARAI_AVX2_VNNI_TABLE qgemm_u8s8_4x16c4__avx2_vnni
#endif

namespace sarai::kernels {
namespace avx2_4x16c4 {
namespace {

// --- AVX-VNNI: vpdpbusd ymm.
template <int MR>
SARAI_AVX2_VNNI inline void group_avx2_vnni(__m256i (&acc)[MR][2], const int32_t (&x)[MR], const int8_t* block) {
  const __m256i b0 = load256(block), b1 = load256(block + kHalfBytes);
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const __m256i xv = _mm256_set1_epi32(x[i]);
    acc[i][0] = SARAI_DPBUSD_YMM(acc[i][0], xv, b0);
    acc[i][1] = SARAI_DPBUSD_YMM(acc[i][1], xv, b1);
  }
}

// Same contract as tile_avx2.
template <int MR>
SARAI_AVX2_VNNI void tile_avx2_vnni(const uint8_t* a, int64_t lda, const int8_t* w, int64_t groups, int64_t kt,
                    int32_t* c, int64_t ldc, bool accumulate) {
  __m256i acc[MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_si256();
  int32_t x[MR];
  if (kt != 0) {  // the partial last group first, as in tile_avx2
    load_group<MR>(x, a + groups * int8::kGroupK, lda, kt);
    group_avx2_vnni<MR>(acc, x, w + groups * kBlockBytes);
  }
  for (int64_t g = 0; g < groups; ++g) {
    load_group<MR>(x, a + g * int8::kGroupK, lda, int8::kGroupK);
    group_avx2_vnni<MR>(acc, x, w + g * kBlockBytes);
  }
  store_tile<MR>(acc, c, ldc, accumulate);
}

SARAI_AVX2_VNNI void tile_avx2_vnni_rows(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w,
                         int64_t pstride, int64_t panels, int64_t groups, int64_t kt, int32_t* c,
                         int64_t ldc, bool accumulate) {
  assert(panels == 1 && rows >= 1 && rows <= kMR);
  switch (rows) {
    case 1: return tile_avx2_vnni<1>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 2: return tile_avx2_vnni<2>(a, lda, w, groups, kt, c, ldc, accumulate);
    case 3: return tile_avx2_vnni<3>(a, lda, w, groups, kt, c, ldc, accumulate);
    default: return tile_avx2_vnni<4>(a, lda, w, groups, kt, c, ldc, accumulate);
  }
}

}  // namespace
}  // namespace avx2_4x16c4

namespace {
const QgemmUkernel kTable = {Isa::kAvx2Vnni, avx2_4x16c4::kMR, 1, avx2_4x16c4::tile_avx2_vnni_rows,
                             avx2_4x16c4::epilogue_row};
}  // namespace

const QgemmUkernel& SARAI_AVX2_VNNI_TABLE() { return kTable; }

}  // namespace sarai::kernels
