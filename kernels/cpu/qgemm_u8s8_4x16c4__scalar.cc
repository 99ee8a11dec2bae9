// The scalar micro-kernel of the INT8 GEMM, 4 rows x 16 channels over k in
// groups of 4 (kernels/cpu/qgemm.h): the obvious loops, one output at a
// time, with the scalar epilogue row (qgemm.cc). What level scalar runs, and
// the reference the vector micro-kernels are tested against.
#include <cstdint>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kBlockBytes = int8::kPanelN * int8::kGroupK;  // 64

void tile_scalar(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w, int64_t pstride,
                 int64_t panels, int64_t groups, int64_t kt, int32_t* c, int64_t ldc,
                 bool accumulate) {
  const int64_t kk = groups * int8::kGroupK + kt;
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < panels * int8::kPanelN; ++j) {
      const int8_t* wj = w + (j / int8::kPanelN) * pstride + (j % int8::kPanelN) * int8::kGroupK;
      int32_t s = accumulate ? c[i * ldc + j] : 0;
      for (int64_t k = 0; k < kk; ++k)
        s += static_cast<int32_t>(a[i * lda + k]) *
             static_cast<int32_t>(wj[(k / int8::kGroupK) * kBlockBytes + k % int8::kGroupK]);
      c[i * ldc + j] = s;
    }
  }
}

const QgemmUkernel kTable = {Isa::kScalar, 4, 1, tile_scalar, qgemm_epilogue_row_scalar};

}  // namespace

const QgemmUkernel& qgemm_u8s8_4x16c4__scalar() { return kTable; }

}  // namespace sarai::kernels
