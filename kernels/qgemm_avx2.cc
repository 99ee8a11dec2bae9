// TEMPORARY during development: the AVX2 / AVX-VNNI micro-kernels are being
// written; until then both levels use the scalar micro-kernel.
#include "kernels/qgemm.h"

namespace sarai::kernels {

const QgemmUkernel& qgemm_ukernel_avx2() {
  static const QgemmUkernel k = {Isa::kAvx2, qgemm_ukernel_scalar().mr, qgemm_ukernel_scalar().np,
                                 qgemm_ukernel_scalar().tile, qgemm_ukernel_scalar().epilogue_row};
  return k;
}
const QgemmUkernel& qgemm_ukernel_avx2_vnni() {
  static const QgemmUkernel k = {Isa::kAvx2Vnni, qgemm_ukernel_scalar().mr, qgemm_ukernel_scalar().np,
                                 qgemm_ukernel_scalar().tile, qgemm_ukernel_scalar().epilogue_row};
  return k;
}

}  // namespace sarai::kernels
