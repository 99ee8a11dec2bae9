// vec_kernels(): picks the VecKernels table once from max_isa()
// (runtime/cpu_isa.h: cpuid, XCR0 and the SARAI_MAX_ISA cap). The table's
// levels are coarser than the INT8 ones: scalar -> sse2 (the x86-64
// baseline), avx2 and avx2_vnni -> avx2 (+FMA), avx512_vnni and amx -> avx512.
#include "kernels/vec_kernels.h"
#include "runtime/cpu_isa.h"

namespace sarai::kernels {
namespace {

const VecKernels& choose() {
  switch (max_isa()) {
    case Isa::kAmx:
    case Isa::kAvx512Vnni: return vec_kernels_avx512();
    case Isa::kAvx2Vnni:
    case Isa::kAvx2: return vec_kernels_avx2();
    case Isa::kScalar: break;
  }
  return vec_kernels_sse2();
}

}  // namespace

const VecKernels& vec_kernels() {
  static const VecKernels& table = choose();
  return table;
}

}  // namespace sarai::kernels
