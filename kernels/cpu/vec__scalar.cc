// VecKernels for level scalar: the x86-64 baseline, SSE2 (4 floats per
// vector, no FMA);
// see vec_kernels.h. Also what SARAI_MAX_ISA=scalar selects.
#include <emmintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_kernels.h"

namespace sarai::kernels {
namespace {

#define SARAI_VEC_TARGET  // the x86-64 baseline: no attribute
constexpr int kW = 4;
constexpr const char* kIsaName = "scalar";
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
static inline vf fmadd(vf a, vf b, vf c) { return a * b + c; }
// No lookup8 (SSE2 has no variable permute): GELU takes verf here.
// Lanes in [0, 255]: the signed saturating packs keep them as they are.
static inline void pack_u8(uint8_t* p, vi a, vi b, vi c, vi d) {
  const __m128i ab = _mm_packs_epi32((__m128i)a, (__m128i)b), cd = _mm_packs_epi32((__m128i)c, (__m128i)d);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(ab, cd));
}

// transpose_x32, transpose_x16: the plain loop (kept as the baseline the
// blocks are tested against; SSE2's 4x4 / 8x8 shuffles were not tried here).
constexpr int kTB = 0, kTB16 = 0;
[[maybe_unused]] static inline void transpose_block(const uint32_t*, int64_t, uint32_t*, int64_t) {}
[[maybe_unused]] static inline void transpose_block_x16(const uint16_t*, int64_t, uint16_t*, int64_t) {}

#include "kernels/cpu/vec_body.h"

#undef SARAI_VEC_TARGET

}  // namespace

const VecKernels& vec_kernels__scalar() { return kTable; }

}  // namespace sarai::kernels
