// What the two 4x16c4 micro-kernels on ymm registers share (AVX2:
// qgemm_u8s8_4x16c4__avx2.cc; AVX-VNNI: qgemm_u8s8_4x16c4__avx2_vnni.cc):
// the tile's constants, loading one k-group of activations, storing the
// tile, and the AVX2 epilogue row. Include only from those two files: every
// function here carries an AVX2 target attribute (so every copy the linker
// may pick is AVX2 code, only ever called from AVX2 code).
#pragma once

#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"

// Only the functions of this header and its two includers get AVX2 /
// AVX-VNNI code, each through its own target attribute (GCC and clang alike;
// clang has no `#pragma GCC target`): the headers above are compiled for the
// baseline, so no shared inline function of theirs can come out of these
// files with wide instructions in it and be picked by the linker for callers
// on older CPUs. The AVX2 functions leave
// out FMA so the epilogue cannot be contracted whatever the flags; the
// AVX-VNNI ones reuse the AVX2 helpers (a callee's ISA is a subset of its
// caller's, so they inline). Lambdas need the attribute too.
#define SARAI_AVX2 __attribute__((target("avx2")))
#define SARAI_AVX2_VNNI __attribute__((target("avxvnni,avx2,fma")))

namespace sarai::kernels::avx2_4x16c4 {

constexpr int kMR = 4;                                          // rows per tile
constexpr int64_t kBlockBytes = int8::kPanelN * int8::kGroupK;  // 64: 16 channels × 4 k
constexpr int64_t kHalfBytes = kBlockBytes / 2;                 // 32: 8 channels × 4 k

// Row i's activation bytes of one k-group, x[i] = a[i * lda + 0..n-1] as one
// int32, zero-extended: n = 4, or kt in 1..3 for the partial last group
// (never reads past a[i * lda + n - 1]).
template <int MR>
SARAI_AVX2 inline void load_group(int32_t (&x)[MR], const uint8_t* a, int64_t lda, int64_t n) {
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
    const uint8_t* p = a + i * lda;
    if (n == int8::kGroupK) {
      std::memcpy(&x[i], p, 4);
    } else {
      uint32_t v = p[0];
      if (n > 1) v |= uint32_t{p[1]} << 8;
      if (n > 2) v |= uint32_t{p[2]} << 16;
      x[i] = static_cast<int32_t>(v);
    }
  }
}

SARAI_AVX2 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// c[i][0..15] (+)= acc[i][0..1] for i < MR.
template <int MR>
SARAI_AVX2 inline void store_tile(const __m256i (&acc)[MR][2], int32_t* c, int64_t ldc, bool accumulate) {
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      int32_t* out = c + i * ldc + h * 8;
      __m256i v = acc[i][h];
      if (accumulate) v = _mm256_add_epi32(v, load256(out));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), v);
    }
  }
}

// The AVX2 epilogue row (both kernels' QgemmUkernel::epilogue_row), defined
// in qgemm_u8s8_4x16c4__avx2.cc.
void epilogue_row(const int32_t* acc, int64_t n, const int32_t* comp, const float* cscale, const QuantParams* row,
                  const float* bias, const float* residual, QgemmActivation act, float* y);

}  // namespace sarai::kernels::avx2_4x16c4
