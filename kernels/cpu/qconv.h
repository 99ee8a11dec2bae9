// The fast integer cores of QConv and QConvTranspose (domain "sarai",
// contract in kernels/cpu/int8_layout.h), bit-exact with the scalar references
// qref::conv_u8s8 / qref::conv_transpose_u8s8 (kernels/cpu/qref.h) on every
// ISA level and for every thread count. One file per path (qconv_im2col.cc,
// qconv_grouped.cc, qconv_transpose.cc; qconv_internal.h says what they
// share), the entry points in qconv.cc.
//
//   group == 1 (W packed N16K4 as [K = C*taps, N = M]): per batch image,
//     blocks of output positions are unfolded (im2col) into u8 rows, one row
//     per output position, K = C*taps bytes in W's k order (c * taps + r),
//     taps in the padding reading the zero point z_x exactly as the
//     reference (the taps of one kernel line read consecutive input bytes
//     and are copied 8 bytes at a time); qgemm_u8s8_s32 (kernels/cpu/qgemm.h)
//     multiplies the block by the packed weights in place (GEMM row =
//     output position, column = channel), and a transposing epilogue
//     (16 x 16 float tiles, vectorized along channels then along positions)
//     writes y[b][m][position]. Blocks hold up to 1536 positions, sized so
//     the u8 rows (~384 KB) and the int32 block (~512 KB) stay in L2, and
//     are reused: memory stays small for long sequences. (The GEMM's own
//     strided epilogue, ldy_m = 1, measured 1.8x slower on whisper's
//     80 -> 512 k3 conv: it is scalar.)
//   group > 1 (incl. depthwise; W plain [M, C/group, taps]): a direct kernel
//     over a zero-point-padded copy of the input: per output channel, int32
//     accumulation of x_q * w over (channel, tap), the innermost loop running
//     over a line of output positions (vectorized; u8 × s8 products are
//     exact in int16), then the epilogue over that channel.
//   QConvTranspose (W plain [C, M/group, taps]): per output channel, per
//     (input channel, tap) accumulation of (x_q - z_x) * w into the outputs
//     the inputs reach (the reference's compensated core: the same integer
//     sums in another order, and integer addition is exact). Each output
//     line is accumulated split by stride phase, so the inner loop is
//     contiguous (vectorized) for every stride.
//
// The vectorized loops (the direct kernels', the transposing epilogue:
// qconv_loops.h) are compiled for AVX-512BW and AVX2 as well as the baseline
// and picked from the platform table by the micro-kernel's ISA level, so
// SARAI_MAX_ISA (and the tests' per-level loop) moves them too.
#pragma once

#include <cstdint>

#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"

namespace sarai::kernels {

// The float epilogue of a convolution, per output y[b][m][o] (o flat over
// the output's spatial dims), with QgemmEpilogue's operations and order:
//   v = float(acc - comp[m]) * cscale[m] + bias[m] (+ residual[b][m][o]), then
//   Relu or Gelu (vec_kernels().gelu over the finished row, as the GEMM driver)
// comp/bias may be null (0), residual null (none). y and residual are the
// whole [B, M, spatial...] tensors.
struct QconvEpilogue {
  const int32_t* comp = nullptr;    // [M]
  const float* cscale = nullptr;    // [M], required
  const float* bias = nullptr;      // [M]
  const float* residual = nullptr;  // [B, M, out...]
  QgemmActivation act = QgemmActivation::kNone;
  float* y = nullptr;               // [B, M, out...]
};

// Every function below needs scratch memory (im2col blocks, a zero-point
// padded input, per-thread accumulator rows): `scratch`, 64-byte aligned, of
// qconv_scratch_bytes(p) (QConv) or qconv_transpose_scratch_bytes(p)
// (QConvTranspose) bytes, sized for the current num_threads()
// (runtime/parallel.h). The ops take it from their KernelContext's
// workspace, so a planned run allocates nothing; with scratch = nullptr the
// call allocates its own (tests, benchmarks).
int64_t qconv_scratch_bytes(const qref::ConvProblem& p);
int64_t qconv_transpose_scratch_bytes(const qref::ConvProblem& p);

// QConv: y = epilogue(qref::conv_u8s8(p, xq, zp, w)) computed fast. p.packed
// selects the layout of w exactly as for the reference (packed requires
// group 1). uk picks the ISA level (nullptr: qgemm_default_ukernel()).
// Requires C/group * taps <= qref::kMaxReduction.
// zp_c: a zero point per input channel ([C], replacing zp) for a depthwise
// conv whose X was quantized per channel (quantize_u8_per_channel); only
// depthwise problems (C == group > 1) take it.
void qconv_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                const QconvEpilogue& ep, const QgemmUkernel* uk = nullptr, void* scratch = nullptr,
                const uint8_t* zp_c = nullptr);

// The raw accumulators, acc[b][m][o], equal to qref::conv_u8s8's: for tests
// and for ops that need the integers.
void qconv_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    int32_t* acc, const QgemmUkernel* uk = nullptr, void* scratch = nullptr,
                    const uint8_t* zp_c = nullptr);

// QConvTranspose: y = epilogue(qref::conv_transpose_u8s8(p, xq, zp, w)); the
// core is already compensated, so ep.comp should be null.
void qconv_transpose_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                          const int8_t* w, const QconvEpilogue& ep,
                          const QgemmUkernel* uk = nullptr, void* scratch = nullptr);

// The raw (compensated) accumulators, equal to qref::conv_transpose_u8s8's.
void qconv_transpose_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                              const int8_t* w, int32_t* acc, const QgemmUkernel* uk = nullptr,
                              void* scratch = nullptr);

}  // namespace sarai::kernels
