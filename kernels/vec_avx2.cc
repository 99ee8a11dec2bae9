// VecKernels for AVX2 + FMA (8 floats per vector); see vec_kernels.h. Only
// the functions in the target region below use AVX2, and they are only
// reached through vec_kernels() after it checked cpuid and XCR0.
#include <immintrin.h>

#include <cstdint>

#include "kernels/vec_kernels.h"

namespace sarai::kernels {
namespace {

#pragma GCC push_options
#pragma GCC target("avx2,fma")

constexpr int kW = 8;
constexpr const char* kIsaName = "avx2";
typedef float vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
static inline vf fmadd(vf a, vf b, vf c) { return (vf)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }

#include "kernels/vec_body.h"

#pragma GCC pop_options

}  // namespace

const VecKernels& vec_kernels_avx2() { return kTable; }

}  // namespace sarai::kernels
