// The FP32 GEMM behind MatMul and Gemm (kernels/matmul.cc), exposed for the
// benchmarks (bench/qgemm_bench.cc) so they time exactly what those ops run.
#pragma once

#include <cstdint>

#include "runtime/status.h"

namespace sarai::kernels {

// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C through oneDNN's
// dnnl_sgemm, threaded by oneDNN on num_threads() (runtime/parallel.h).
// Handles m, n or k = 0 like MatMul/Gemm do.
Status fp32_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc);

}  // namespace sarai::kernels
