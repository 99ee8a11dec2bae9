// VecKernels for the x86-64 baseline, SSE2 (4 floats per vector, no FMA);
// see vec_kernels.h. Also what SARAI_MAX_ISA=scalar selects.
#include <cstdint>

#include "kernels/vec_kernels.h"

namespace sarai::kernels {
namespace {

constexpr int kW = 4;
constexpr const char* kIsaName = "sse2";
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
static inline vf fmadd(vf a, vf b, vf c) { return a * b + c; }

#include "kernels/vec_body.h"

}  // namespace

const VecKernels& vec_kernels_sse2() { return kTable; }

}  // namespace sarai::kernels
