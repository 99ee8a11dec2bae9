// The int32 core of QMatMul behind one dispatch function:
//   c[m][n] = Σ_k a[m][k] * w[k][n]   (u8 × s8 → int32, exact)
// with w read in place from the N16K4 layout (kernels/int8_layout.h), a
// row-major with row stride lda, c row-major with row stride ldc. The result
// equals qref::gemm_u8s8_n16k4 bit for bit (integer sums, no saturation:
// vpdpbusd adds four u8·s8 products straight into int32), as long as
// K <= qref::kMaxReduction.
//
// The implementation is chosen once per process, like vec_kernels(): the
// AVX-512 VNNI micro-kernel when cpuid reports AVX512F + AVX512BW +
// AVX512_VNNI, XCR0 says the OS saves opmask/ZMM state, and
// SARAI_MAX_CPU_ISA (sse2|avx2|avx512) does not cap it below avx512;
// otherwise the scalar reference.
#pragma once

#include <cstdint>

namespace sarai::kernels {

void qgemm_u8s8_n16k4(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                      int64_t n, int32_t* c, int64_t ldc);

// The name of the implementation qgemm_u8s8_n16k4 uses: "avx512vnni" or "ref".
const char* qgemm_u8s8_n16k4_isa();

// True when the CPU and OS support the VNNI kernel (ignores SARAI_MAX_CPU_ISA).
bool cpu_has_avx512vnni();

// The AVX-512 VNNI kernel itself (4 rows × 2 panels of 16 channels per tile,
// K in groups of 4); call only when cpu_has_avx512vnni(). Threads over
// (panel pairs × row blocks) with parallel_for when the problem is large.
void qgemm_u8s8_n16k4_avx512vnni(const uint8_t* a, int64_t m, int64_t k, int64_t lda,
                                 const int8_t* w_packed, int64_t n, int32_t* c, int64_t ldc);

}  // namespace sarai::kernels
