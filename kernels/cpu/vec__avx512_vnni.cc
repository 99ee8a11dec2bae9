// VecKernels for level avx512_vnni: AVX-512 F/DQ (16 floats per vector),
// which that level guarantees; see vec_kernels.h. Only
// the functions with the target attribute below use AVX-512, and they are only
// reached through the platform table (kernels/cpu/platform.h) after its cpuid and XCR0 checks.
#include <immintrin.h>

#include <cstdint>

#include "kernels/cpu/vec_kernels.h"

namespace sarai::kernels {
namespace {

#define SARAI_VEC_TARGET __attribute__((target("avx512f,avx512dq,avx2,fma")))

constexpr int kW = 16;
constexpr const char* kIsaName = "avx512_vnni";
typedef float vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
SARAI_VEC_TARGET static inline vf fmadd(vf a, vf b, vf c) {
  return (vf)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)c);
}
// vpermps (the masked form: GCC 12's _mm512_permutexvar_ps trips
// -Wmaybe-uninitialized, as its cvtepi32_epi8 does below).
#define SARAI_VEC_LOOKUP8 1
SARAI_VEC_TARGET static inline vf lookup8(vf t, vi idx) {
  return (vf)_mm512_mask_permutexvar_ps((__m512)t, 0xffff, (__m512i)idx, (__m512)t);
}
// Lanes in [0, 255]: vpmovdb (AVX-512F) truncates each dword to its byte.
// (The store form: GCC 12's _mm512_cvtepi32_epi8 trips -Wmaybe-uninitialized.)
SARAI_VEC_TARGET static inline void pack_u8(uint8_t* p, vi a, vi b, vi c, vi d) {
  _mm512_mask_cvtepi32_storeu_epi8(p, 0xffff, (__m512i)a);
  _mm512_mask_cvtepi32_storeu_epi8(p + 16, 0xffff, (__m512i)b);
  _mm512_mask_cvtepi32_storeu_epi8(p + 32, 0xffff, (__m512i)c);
  _mm512_mask_cvtepi32_storeu_epi8(p + 48, 0xffff, (__m512i)d);
}

#include "kernels/cpu/transpose_x16_8x8_sse2.h"
#include "kernels/cpu/transpose_x32_8x8_avx2.h"
#include "kernels/cpu/vec_body.h"

#undef SARAI_VEC_TARGET
#undef SARAI_VEC_LOOKUP8

}  // namespace

const VecKernels& vec_kernels__avx512_vnni() { return kTable; }

}  // namespace sarai::kernels
