// The INT8 GEMM behind QMatMul and QConv:
//
//   acc[m][n] = Σ_k a[m][k] * w[k][n]        (u8 × s8 → int32, exact)
//   y[m][n]   = act(float(acc[m][n] - comp[n]) * cscale[n] + bias[n] + residual[m][n])
//
// with w read in place from the N16K4 layout (kernels/cpu/int8_layout.h) of a
// mapped blob: never repacked, per run or per load. Bit-exact with the scalar
// reference (qref::gemm_u8s8_n16k4 + the ops' float epilogue) on every ISA,
// for every thread count, as long as K <= qref::kMaxReduction.
//
// Structure (BLIS/XNNPACK style): one portable driver (qgemm.cc) owns
// blocking, threading and the epilogue; each ISA supplies a QgemmUkernel: a
// register-tile micro-kernel and a vectorized epilogue row. The driver runs
// the micro-kernel over a (row block × panel group) task into a small int32
// buffer on the stack and applies the epilogue while that buffer is in L1,
// so no M×N int32 matrix is ever written.
//
// ISA levels (runtime/cpu_isa.h; SARAI_MAX_ISA caps the choice), one
// micro-kernel file each in kernels/cpu/:
//   avx512_vnni  qgemm_u8s8_4x64c4__avx512_vnni.cc  vpdpbusd zmm, 4 rows × 4 panels
//   avx2_vnni    qgemm_u8s8_4x16c4__avx2_vnni.cc    vpdpbusd ymm (AVX-VNNI)
//   avx2         qgemm_u8s8_4x16c4__avx2.cc         vpmaddwd, exact (no pair saturation)
//   scalar       qgemm_u8s8_4x16c4__scalar.cc       plain C++
#pragma once

#include <cstdint>

#include "kernels/cpu/quantize_activations.h"
#include "runtime/cpu_isa.h"

namespace sarai::kernels {

enum class QgemmActivation : int { kNone = 0, kRelu = 1, kGelu = 2 };

// The float epilogue. Per output (m, n), in this order and with these float
// operations only (no FMA contraction: these files build with
// -ffp-contract=off), so every ISA and the unfused graph agree bit for bit:
//   v = float(acc - comp[n])            int32 subtraction, modular
//   v = v * cscale[n] + bias[n]         (two roundings; bias 0 when absent)
//   v = v + residual[m * ldr_m + n * ldr_n]   when residual != nullptr
//   v = v < 0 ? 0 : v                   when act == kRelu (NaN stays NaN, -0 stays
//                                       -0: the Relu op's formula)
//   v = gelu(v)                         when act == kGelu: vec_kernels().gelu,
//                                       the Gelu op's own function, run by the
//                                       driver over each finished row segment
//   y[m * ldy_m + n * ldy_n] = v
// comp[n] = z_x * wsum[n] (the activation zero point's compensation,
// kernels/cpu/int8_layout.h); cscale[n] = s_x * scale[n].
//
// Per-row activations (row_x != nullptr: row m of `a` quantized with its own
// (s_x, z_x) = row_x[m], QMatMul's x_per_row): comp and cscale then hold the
// channel factors wsum[n] and scale[n], and row m's constants are
//   comp[n] = z_x[m] * wsum[n]      (int32, modular)
//   cscale[n] = s_x[m] * scale[n]   (one float multiply)
// formed in registers by the epilogue row: the very numbers a per-tensor
// call with row m's (s_x, z_x) would take, so row m's outputs equal that
// call's bit for bit.
struct QgemmEpilogue {
  const int32_t* comp = nullptr;    // [N]; nullptr: no compensation (required with row_x)
  const float* cscale = nullptr;    // [N], required
  const QuantParams* row_x = nullptr;  // [M]; nullptr: (s_x, z_x) already folded into comp, cscale
  const float* bias = nullptr;      // [N]; nullptr: none
  const float* residual = nullptr;  // nullptr: none
  int64_t ldr_m = 0, ldr_n = 1;
  QgemmActivation act = QgemmActivation::kNone;
  float* y = nullptr;
  int64_t ldy_m = 0, ldy_n = 1;
};

// One ISA's pieces.
struct QgemmUkernel {
  Isa isa;
  int mr;  // rows per full tile
  int np;  // 16-channel panels per full tile (np * 16 columns)
  // c[i * ldc + j] (+)= Σ_{g < groups} Σ_{t < 4} a[i * lda + 4g + t] * W(g, t, j)
  //                    + (when kt > 0) Σ_{t < kt} a[i * lda + 4 groups + t] * W(groups, t, j)
  // for i < rows (1..mr) and j < panels * 16 (panels 1..np), where W(g, t, j)
  // is byte (j / 16) * pstride + g * 64 + (j % 16) * 4 + t of w: `w` points
  // at the 64-byte block of the tile's first panel and first k-group,
  // `pstride` is the byte distance between panels (Kp * 16). kt in 0..3: the
  // reduction's last, partial group; the micro-kernel never reads a past
  // a[i * lda + 4 groups + kt - 1]. accumulate = false overwrites c.
  // Columns of padding channels (beyond N in the last panel) come out as 0
  // (their weights are zero) and the driver ignores them.
  void (*tile)(const uint8_t* a, int64_t lda, int64_t rows, const int8_t* w, int64_t pstride,
               int64_t panels, int64_t groups, int64_t kt, int32_t* c, int64_t ldc,
               bool accumulate);
  // The epilogue over one row segment with contiguous output (ldy_n == 1,
  // ldr_n == 1): for j < n, y[j] = epilogue(acc[j]) with comp, cscale, bias
  // already offset to the segment's first channel (bias/comp may be null,
  // residual may be null). act is kNone or kRelu (the driver applies kGelu).
  // row != nullptr: the row's own (s_x, z_x), comp and cscale being the
  // channel factors wsum and scale (QgemmEpilogue::row_x; comp not null):
  // the constants are row->zero_point * comp[j] and row->scale * cscale[j].
  void (*epilogue_row)(const int32_t* acc, int64_t n, const int32_t* comp, const float* cscale,
                       const QuantParams* row, const float* bias, const float* residual, QgemmActivation act,
                       float* y);
  // The same, writing y with non-temporal stores (bypassing the caches), or
  // nullptr. The driver uses it when y is larger than kStreamBytes: there
  // the stores' read-for-ownership misses cost more than the consumer's
  // later read from memory (measured: bench/qgemm_bench, M=1500 K=512
  // N=2048, 423 -> 644 GOPS on one thread).
  void (*epilogue_row_stream)(const int32_t* acc, int64_t n, const int32_t* comp,
                              const float* cscale, const QuantParams* row, const float* bias,
                              const float* residual, QgemmActivation act, float* y) = nullptr;
  // Optional packed-activation path (nullptr for the micro-kernels that read
  // a in place). pack_a expands rows [0, rows) of a (k bytes each, never
  // reading past a[i * lda + k - 1]) into ap, row i at ap + i * ldap
  // (ldap >= 2 * Kp): per k-group g < Kp / 4, 8 bytes holding the uint16
  // lanes (a[4g], a[4g + 2], a[4g + 1], a[4g + 3]), zero-extended, the bytes
  // past k as 0. tile_packed is `tile` on that form: `ap` at the tile's first
  // row and first group, `groups` whole groups (the tail already padded, so
  // no kt). The driver packs a row block once and runs every panel over it
  // (when m >= pack_min_rows), so the expansion is not redone per panel.
  void (*pack_a)(const uint8_t* a, int64_t lda, int64_t rows, int64_t k, uint8_t* ap,
                 int64_t ldap) = nullptr;
  void (*tile_packed)(const uint8_t* ap, int64_t ldap, int64_t rows, const int8_t* w,
                      int64_t pstride, int64_t panels, int64_t groups, int32_t* c, int64_t ldc,
                      bool accumulate) = nullptr;
  int64_t pack_min_rows = 1;
};

// The micro-kernel of one ISA, or nullptr when this build has none for it or
// the CPU/OS lacks it (ignores SARAI_MAX_ISA; amx returns nullptr: no AMX
// micro-kernel of our own yet). From the platform table.
const QgemmUkernel* qgemm_ukernel(Isa isa);
// The best micro-kernel allowed under max_isa() (platform().qgemm); never
// nullptr (scalar).
const QgemmUkernel& qgemm_default_ukernel();

// y = epilogue(a · W): a is row-major [m, k] with row stride lda (u8), W the
// N16K4-packed [k, n] weights. Threads with parallel_for unless `threaded` is
// false (a caller already inside a parallel region, e.g. Attention's blocks).
// uk = nullptr uses qgemm_default_ukernel().
void qgemm_u8s8(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                int64_t n, const QgemmEpilogue& ep, const QgemmUkernel* uk = nullptr,
                bool threaded = true);

// The GEMM's finished blocks handed to `sink` instead of the float epilogue:
// sink(ctx, acc, ldacc, m0, rows, n0, cols) gets acc[i * ldacc + j] =
// acc[m0 + i][n0 + j] for i < rows, j < cols, once per block, on the thread
// that computed it, while the block is in L1 (for ops whose epilogue is not
// the float one: Attention's scores). Threads as qgemm_u8s8.
using QgemmSink = void (*)(void* ctx, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0,
                           int64_t cols);
void qgemm_u8s8_blocks(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed, int64_t n,
                       QgemmSink sink, void* ctx, const QgemmUkernel* uk = nullptr, bool threaded = true);

// The raw accumulators, c[i * ldc + j] = acc[i][j]: for tests and for ops
// that need the integers.
void qgemm_u8s8_s32(const uint8_t* a, int64_t m, int64_t k, int64_t lda, const int8_t* w_packed,
                    int64_t n, int32_t* c, int64_t ldc, const QgemmUkernel* uk = nullptr);

// The scalar epilogue_row, the reference the vector ones must equal.
void qgemm_epilogue_row_scalar(const int32_t* acc, int64_t n, const int32_t* comp,
                               const float* cscale, const QuantParams* row, const float* bias,
                               const float* residual, QgemmActivation act, float* y);

// The micro-kernels, named by contract, tile and level as XNNPACK names
// its own (u8 x s8 -> s32, mr rows x np * 16 channels, k in groups of 4
// "c4", after "__" the ISA level), each defined in the file of that name.
// Reach them through the platform table (kernels/cpu/platform.h) or
// qgemm_ukernel(), which check the CPU.
const QgemmUkernel& qgemm_u8s8_4x16c4__scalar();
const QgemmUkernel& qgemm_u8s8_4x16c4__avx2();
const QgemmUkernel& qgemm_u8s8_4x16c4__avx2_vnni();
const QgemmUkernel& qgemm_u8s8_4x64c4__avx512_vnni();

}  // namespace sarai::kernels
