// The integer cores of the quantized ops QMatMul, QConv and QConvTranspose
// (domain "sarai", contract in kernels/cpu/int8_layout.h), exposed so tests can
// check them for exact int32 equality and the fast kernels of later issues
// can be tested against them bit for bit. Scalar, plain loops, no tricks:
// these are the oracle. The ops themselves (quantize X, these cores, the
// float epilogue) are declared in kernels/kernels.h.
#pragma once

#include <cstdint>

#include "kernels/conv_geometry.h"

namespace sarai::kernels::qref {

// The largest reduction length whose int32 accumulator cannot overflow:
// |Σ_k x_q w| <= 255 * 127 * K <= INT32_MAX.
inline constexpr int64_t kMaxReduction = 2147483647LL / (255 * 127);  // 66311

// acc[m][n] = Σ_k a[m][k] * w[k][n] (row-major a [M, K], acc [M, N]), with
// w read in place from the N16K4 layout: w[k][n] = w[int8::packed_index(k, n, K)].
// No zero-point compensation: that is the epilogue's job.
void gemm_u8s8_n16k4(int64_t M, int64_t K, int64_t N, const uint8_t* a, const int8_t* w,
                     int32_t* acc);

// One quantized convolution problem. `packed`: W is N16K4 [K = C*k..., N = M]
// (group must be 1); otherwise plain ONNX [M, C/group, k...].
struct ConvProblem {
  int64_t batch = 1, C = 1, M = 1, group = 1;
  bool packed = false;
  convgeo::ConvGeometry g;
};

// QConv: acc[b][m][o] = Σ_{c < C/group, r < taps} x_q[b][grp*Cg + c][tap(o, r)] * W(m, c*taps + r)
// where grp = m / (M/group) and x_q = zp at taps in the padding (x = 0
// there). Raw, like gemm_u8s8_n16k4: the epilogue subtracts zp * wsum[m].
// zp_c (optional, [C]): input channel c's padding reads zp_c[c] instead
// (X quantized per channel).
void conv_u8s8(const ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w, int32_t* acc,
               const uint8_t* zp_c = nullptr);

// QConvTranspose, already compensated: acc[b][ch][o] = Σ (x_q - zp) * w_q
// over the (input position, channel, tap) triples that reach output o of
// channel ch = grp*(M/group) + m. The set of triples varies near the
// borders, so a per-channel wsum cannot compensate: the reference subtracts
// zp per product. W is plain [C, M/group, k...].
void conv_transpose_u8s8(const ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                         int32_t* acc);

}  // namespace sarai::kernels::qref
