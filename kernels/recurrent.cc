// The recurrent layers LSTM, GRU and RNN on float32, as ONNX defines them
// (opsets 7 and 14: `layout` from 14). One code path for the three:
//
//   1. per direction, the input projection of every time step in one GEMM,
//      XW[seq * batch, G * hidden] = X · Wᵀ (G = 4, 3, 1 gates; rows in X's
//      own order, so layout = 1 needs no transpose);
//   2. per step, the recurrent product h · Rᵀ for the whole batch (GRU with
//      linear_before_reset = 0: the z and r rows first, then (r ⊙ h) · Rhᵀ),
//      then the gates row by row, adding XW, the biases (Wb + Rb folded once
//      per direction), peepholes, clip and the activations.
//
// Scratch comes from one workspace; a run allocates nothing beyond it and
// the outputs. A bidirectional layer on one thread runs its directions one
// after the other; on more, both input projections (threaded GEMMs), then
// the two directions' steps at once, one thread each, on their own copy of
// the scratch (the same results as on one thread).
//
// Semantics follow ONNX's operator text and, where it is silent, ONNX
// Runtime: `clip` bounds every gate's pre-activation (not the cell state fed
// to h); input_forget sets f = 1 - i; activation_alpha / activation_beta are
// consumed in order by the activations that take an alpha / a beta
// (LeakyRelu, ThresholdedRelu, Elu: alpha; Affine, ScaledTanh, HardSigmoid:
// both), missing values taking the ONNX operators' defaults (LeakyRelu 0.01,
// ThresholdedRelu 1, Elu 1, HardSigmoid 0.2 / 0.5, Affine 1 / 0, ScaledTanh
// 1 / 1) and values left over refused; activation names match in any case,
// and a bidirectional layer given one direction's list uses it for both.
// The INT8 forms QLSTM / QGRU / QRNN (domain "sarai", written by `convert
// --recurrent int8`) run the same code with both gate GEMMs on the INT8
// core (kernels/cpu/qgemm.h, as QMatMul): X (all steps at once) and each
// step's h (GRU: also r ⊙ h) quantized dynamically to u8 per tensor, W and
// R read as N16K4-packed s8 per direction with a scale per gate row (or one
// per matrix), GRU's R in two parts (the z and r rows, then the h rows).
// Their inputs: X, B, sequence_lens, initial_h, initial_c, P (the last two
// LSTM only, but always in place), then per direction W.q, W.scale,
// W.wsum, R.q, R.scale, R.wsum (GRU: then Rh.q, Rh.scale, Rh.wsum); the
// attribute hidden_size is required, input_size (W's) is checked against
// X when present, layout is read at any opset.
// sequence_lens: each in [0, seq_length]; a reverse direction runs each
// sequence from its own last valid step; steps past a sequence's length are
// zeros in Y, its Y_h / Y_c are the state after its last step, and a length
// of 0 (a padding entry) gives zeros in Y, Y_h and Y_c.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"
#include "kernels/cpu/quantize_activations.h"
#include "kernels/cpu/vec_kernels.h"
#include "kernels/fp32_gemm.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

enum class Cell { kRnn, kGru, kLstm };

enum class Act : uint8_t {
  kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu, kSoftsign,
  kSoftplus
};

struct ActFn {
  Act kind = Act::kTanh;
  float alpha = 0.f, beta = 0.f;
};

struct RecurrentParams {
  Cell cell = Cell::kLstm;
  int gates = 4;          // 4 (LSTM: i o f c), 3 (GRU: z r h), 1 (RNN)
  int num_acts = 3;       // activations per direction: f g h, f g, f
  int direction = 0;      // 0 forward, 1 reverse, 2 bidirectional
  int num_dirs = 1;
  int64_t hidden = -1;    // -1: taken from R's shape
  bool has_clip = false;
  float clip = 0.f;
  bool input_forget = false;
  bool linear_before_reset = false;
  bool batch_major = false;  // layout = 1
  ActFn act[2][3];
};

struct ActInfo {
  const char* name;
  Act kind;
  bool takes_alpha, takes_beta;
  float alpha, beta;  // the defaults
};
constexpr ActInfo kActs[] = {
    {"Relu", Act::kRelu, false, false, 0.f, 0.f},
    {"Tanh", Act::kTanh, false, false, 0.f, 0.f},
    {"Sigmoid", Act::kSigmoid, false, false, 0.f, 0.f},
    {"Affine", Act::kAffine, true, true, 1.f, 0.f},
    {"LeakyRelu", Act::kLeakyRelu, true, false, 0.01f, 0.f},
    {"ThresholdedRelu", Act::kThresholdedRelu, true, false, 1.f, 0.f},
    {"ScaledTanh", Act::kScaledTanh, true, true, 1.f, 1.f},
    {"HardSigmoid", Act::kHardSigmoid, true, true, 0.2f, 0.5f},
    {"Elu", Act::kElu, true, false, 1.f, 0.f},
    {"Softsign", Act::kSoftsign, false, false, 0.f, 0.f},
    {"Softplus", Act::kSoftplus, false, false, 0.f, 0.f},
};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

Expected<std::shared_ptr<const void>> prepare(const Node& node, int64_t opset, Cell cell) {
  RecurrentParams p;
  p.cell = cell;
  p.gates = cell == Cell::kLstm ? 4 : cell == Cell::kGru ? 3 : 1;
  p.num_acts = cell == Cell::kLstm ? 3 : cell == Cell::kGru ? 2 : 1;

  const std::string_view dir = node.attr_string_view("direction", "forward");
  if (dir == "forward") p.direction = 0;
  else if (dir == "reverse") p.direction = 1;
  else if (dir == "bidirectional") p.direction = 2;
  else
    return Status::error("attribute 'direction' must be \"forward\", \"reverse\" or \"bidirectional\", got \"" +
                         std::string(dir) + "\"");
  p.num_dirs = p.direction == 2 ? 2 : 1;

  if (const Attribute* a = node.find_attr("hidden_size")) {
    if (a->i <= 0) return Status::error("attribute 'hidden_size' must be > 0, got " + std::to_string(a->i));
    p.hidden = a->i;
  }
  if (const Attribute* a = node.find_attr("clip")) {
    if (!(a->f > 0.f)) return Status::error("attribute 'clip' must be > 0, got " + std::to_string(a->f));
    p.has_clip = true;
    p.clip = a->f;
  }
  if (cell == Cell::kLstm) {
    SARAI_ASSIGN_OR_RETURN(p.input_forget, attr_flag(node, "input_forget", false));
  }
  if (cell == Cell::kGru) {
    SARAI_ASSIGN_OR_RETURN(p.linear_before_reset, attr_flag(node, "linear_before_reset", false));
  }
  if (opset >= 14) {
    const int64_t layout = node.attr_int("layout", 0);
    if (layout != 0 && layout != 1)
      return Status::error("attribute 'layout' must be 0 or 1, got " + std::to_string(layout));
    p.batch_major = layout == 1;
  }

  // Activations: the defaults, or num_acts per direction (num_acts alone
  // for a bidirectional layer: the same for both).
  const ActFn defaults[3] = {{cell == Cell::kRnn ? Act::kTanh : Act::kSigmoid}, {Act::kTanh}, {Act::kTanh}};
  for (int d = 0; d < 2; ++d)
    for (int k = 0; k < 3; ++k) p.act[d][k] = defaults[k];
  if (const Attribute* a = node.find_attr("activations")) {
    const size_t n = a->strings.size();
    const size_t want = static_cast<size_t>(p.num_acts * p.num_dirs);
    if (n != want && n != static_cast<size_t>(p.num_acts))
      return Status::error("attribute 'activations' has " + std::to_string(n) + " names; " + node.op_type +
                           " with direction \"" + std::string(dir) + "\" takes " + std::to_string(want));
    const Attribute* alphas = node.find_attr("activation_alpha");
    const Attribute* betas = node.find_attr("activation_beta");
    size_t next_alpha = 0, next_beta = 0;
    for (size_t i = 0; i < n; ++i) {
      const ActInfo* info = nullptr;
      for (const ActInfo& c : kActs)
        if (iequals(a->strings[i], c.name)) info = &c;
      if (info == nullptr)
        return Status::error("attribute 'activations' names an unknown activation \"" + a->strings[i] +
                             "\"; one of Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, "
                             "HardSigmoid, Elu, Softsign, Softplus");
      ActFn f{info->kind, info->alpha, info->beta};
      if (info->takes_alpha && alphas && next_alpha < alphas->floats.size()) f.alpha = alphas->floats[next_alpha++];
      if (info->takes_beta && betas && next_beta < betas->floats.size()) f.beta = betas->floats[next_beta++];
      p.act[i / static_cast<size_t>(p.num_acts)][i % static_cast<size_t>(p.num_acts)] = f;
    }
    if (n < want)
      for (int k = 0; k < p.num_acts; ++k) p.act[1][k] = p.act[0][k];
    if (alphas && next_alpha != alphas->floats.size())
      return Status::error("attribute 'activation_alpha' has " + std::to_string(alphas->floats.size()) +
                           " values but the activations take " + std::to_string(next_alpha));
    if (betas && next_beta != betas->floats.size())
      return Status::error("attribute 'activation_beta' has " + std::to_string(betas->floats.size()) +
                           " values but the activations take " + std::to_string(next_beta));
  } else {
    const Attribute* alphas = node.find_attr("activation_alpha");
    const Attribute* betas = node.find_attr("activation_beta");
    if ((alphas && !alphas->floats.empty()) || (betas && !betas->floats.empty()))
      return Status::error("attributes 'activation_alpha' / 'activation_beta' are given but the default "
                           "activations take none");
  }
  return prepared_data(p);
}

// tanh over n floats in place: 2 sigmoid(2|x|) - 1 with x's sign (the
// vectorized sigmoid; about 1.5e-7 absolute error), an odd polynomial below
// |x| = 0.125 where that difference would lose relative precision. `tmp`
// holds n floats.
void tanh_n(float* x, int64_t n, float* tmp) {
  for (int64_t i = 0; i < n; ++i) tmp[i] = 2.f * std::fabs(x[i]);
  vec_kernels().sigmoid(tmp, tmp, n);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], a = std::fabs(v), a2 = a * a;
    const float small = a * (1.f + a2 * (-1.f / 3 + a2 * (2.f / 15 + a2 * (-17.f / 315))));
    const float r = a < 0.125f ? small : 2.f * tmp[i] - 1.f;
    x[i] = std::copysign(r, v);
  }
}

// f(x) over n floats in place; `tmp` holds n floats.
void activate(const ActFn& f, float* x, int64_t n, float* tmp) {
  const float al = f.alpha, be = f.beta;
  switch (f.kind) {
    case Act::kSigmoid: vec_kernels().sigmoid(x, x, n); return;
    case Act::kTanh: tanh_n(x, n, tmp); return;
    case Act::kRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] < 0.f ? 0.f : x[i];
      return;
    case Act::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = al * x[i] + be;
      return;
    case Act::kLeakyRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0.f ? x[i] : al * x[i];
      return;
    case Act::kThresholdedRelu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= al ? x[i] : 0.f;
      return;
    case Act::kScaledTanh:
      for (int64_t i = 0; i < n; ++i) x[i] *= be;
      tanh_n(x, n, tmp);
      for (int64_t i = 0; i < n; ++i) x[i] *= al;
      return;
    case Act::kHardSigmoid: vec_kernels().hard_sigmoid(x, x, n, al, be); return;
    case Act::kElu:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0.f ? x[i] : al * std::expm1(x[i]);
      return;
    case Act::kSoftsign:
      for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (1.f + std::fabs(x[i]));
      return;
    case Act::kSoftplus:
      for (int64_t i = 0; i < n; ++i) {
        const float v = x[i];
        x[i] = v > 0.f ? v + std::log1p(std::exp(-v)) : std::log1p(std::exp(v));
      }
      return;
  }
}

// x = clamp(x, -c, c) (NaN stays NaN).
void clip_n(float* x, int64_t n, float c) { vec_kernels().clip(x, x, n, -c, c); }

// Below this many multiply-adds oneDNN's sgemm runs on the calling thread
// alone: a step of a small layer (Silero VAD's: 1 x 512 x 128) costs less
// than a parallel region's fork and barrier.
constexpr int64_t kThreadedMacs = int64_t{1} << 20;

// C[m x n] = A[m x k] · B[n x k]ᵀ (row-major, B's rows k long).
Status gemm_nt(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, float* c, int64_t ldc) {
  int64_t macs;
  const bool small = !__builtin_mul_overflow(m * n, k, &macs) && macs < kThreadedMacs;  // m * n <= an output's size
  const int threads = num_threads();
  if (small && threads > 1) set_num_threads(1);
  Status st = fp32_gemm(false, true, m, n, k, 1.f, a, lda, b, k, 0.f, c, ldc);
  if (small && threads > 1) set_num_threads(threads);
  return st;
}

// One quantized matrix of a QLSTM / QGRU / QRNN: Wᵀ as N16K4 [K, N] with
// its per-row (or one) scales and row sums.
struct QMat {
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  bool per_tensor = false;
  const int32_t* wsum = nullptr;
};

// The INT8 scratch: a's u8 copy and the epilogue's per-channel constants.
struct QScratch {
  uint8_t* aq = nullptr;   // >= m * k of every call
  float* cscale = nullptr; // [gh]
  int32_t* comp = nullptr; // [gh]
};

// C[m x n] = A[m x k] · Wᵀ with A quantized to u8 per tensor on the fly
// (QMatMul's scheme, kernels/qmatmul_qconv.cc).
void qgemm_nt(int64_t m, int64_t n, int64_t k, const float* a, const QMat& w, const QScratch& s, float* c,
              int64_t ldc) {
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.f);
    return;
  }
  const QuantParams xp = quantize_u8(a, m * k, s.aq);
  for (int64_t j = 0; j < n; ++j) {
    s.cscale[j] = xp.scale * w.scale[w.per_tensor ? 0 : j];
    s.comp[j] = static_cast<int32_t>(static_cast<uint32_t>(int64_t{xp.zero_point} * w.wsum[j]));
  }
  QgemmEpilogue ep;
  ep.comp = s.comp;
  ep.cscale = s.cscale;
  ep.y = c;
  ep.ldy_m = ldc;
  int64_t macs;
  const bool big = __builtin_mul_overflow(m * n, k, &macs) || macs >= kThreadedMacs;
  qgemm_u8s8(s.aq, m, k, k, w.q, n, ep, nullptr, /*threaded=*/big);
}

// Checks one quantized matrix (inputs first.. first + 2) of K x N.
Status read_qmat(const KernelContext& ctx, int first, const char* name, int64_t d, int64_t k, int64_t n, QMat* out) {
  const std::string who = std::string("input '") + name + "' of direction " + std::to_string(d);
  for (int i = 0; i < 3; ++i)
    if (!ctx.has_input(first + i))
      return Status::error(who + " is missing its " + (i == 0 ? "q" : i == 1 ? "scale" : "wsum") + " tensor");
  const Tensor& q = ctx.input(first);
  const Tensor& sc = ctx.input(first + 1);
  const Tensor& ws = ctx.input(first + 2);
  if (k > qref::kMaxReduction)
    return Status::error(who + ": K = " + std::to_string(k) + " exceeds the int32 accumulator bound " +
                         std::to_string(qref::kMaxReduction));
  if (n > (int64_t{1} << 40) / int8::round_up(std::max<int64_t>(k, 1), int8::kGroupK))
    return Status::error(who + ": K = " + std::to_string(k) + ", N = " + std::to_string(n) + " are too large");
  if (q.dtype() != DType::kInt8 || q.rank() != 1 || q.numel() != int8::packed_size(k, n))
    return Status::error(who + " must be int8 [" + std::to_string(int8::packed_size(k, n)) +
                         "] (N16K4 bytes of K = " + std::to_string(k) + ", N = " + std::to_string(n) + "), got " +
                         dtype_name(q.dtype()) + " " + shape_to_string(q.shape()));
  if (sc.dtype() != DType::kFloat32 || sc.rank() != 1 || (sc.numel() != n && sc.numel() != 1))
    return Status::error(who + ": scale must be float32 [" + std::to_string(n) + "] or [1], got " +
                         dtype_name(sc.dtype()) + " " + shape_to_string(sc.shape()));
  if (ws.dtype() != DType::kInt32 || ws.rank() != 1 || ws.numel() != n)
    return Status::error(who + ": wsum must be int32 [" + std::to_string(n) + "], got " + dtype_name(ws.dtype()) + " " +
                         shape_to_string(ws.shape()));
  out->q = q.data<int8_t>();
  out->scale = sc.data<float>();
  out->per_tensor = sc.numel() == 1 && n != 1;
  out->wsum = ws.data<int32_t>();
  return Status::ok();
}

Status require_float(const Tensor& t, const char* name) {
  if (t.dtype() != DType::kFloat32)
    return Status::error(std::string("input '") + name + "' must be float32, got " + dtype_name(t.dtype()));
  return Status::ok();
}

// `dims` names want's dims; "G" in it stands for the gate count (built
// only for the error: a run must not allocate).
Status require_shape(const Tensor& t, const char* name, const Shape& want, const char* dims, int gates = 0) {
  if (t.shape() == want) return Status::ok();
  std::string d = dims;
  if (const size_t g = d.find('G'); g != std::string::npos) d.replace(g, 1, std::to_string(gates));
  return Status::error(std::string("input '") + name + "' has shape " + shape_to_string(t.shape()) + "; expected " +
                       shape_to_string(want) + " " + d);
}

Status run_recurrent(KernelContext& ctx, PrepareFn prep, bool quantized) {
  SARAI_ASSIGN_OR_RETURN(const RecurrentParams* p, ctx.prepared<RecurrentParams>(prep));
  const bool lstm = p->cell == Cell::kLstm, gru = p->cell == Cell::kGru;
  const char* op = quantized ? (lstm ? "QLSTM" : gru ? "QGRU" : "QRNN") : lstm ? "LSTM" : gru ? "GRU" : "RNN";
  // Input positions: LSTM X W R B sequence_lens initial_h initial_c P;
  // the INT8 forms X B sequence_lens initial_h initial_c P, then the
  // quantized matrices per direction.
  struct { int b, lens, h0, c0, p; } at = quantized ? decltype(at){1, 2, 3, 4, 5} : decltype(at){3, 4, 5, 6, 7};
  const int rparts = quantized && gru ? 2 : 1;
  const int per_dir = 3 * (1 + rparts);
  const int64_t nd = p->num_dirs;
  if (quantized) {
    if (!ctx.has_input(0)) return Status::error(std::string(op) + " needs input X (input 0 is missing)");
    if (p->hidden < 0) return Status::error(std::string(op) + " needs attribute 'hidden_size'");
    const int want = 6 + static_cast<int>(nd) * per_dir;
    if (ctx.num_inputs() != want)
      return Status::error(std::string(op) + " with " + std::to_string(nd) + " direction" + (nd > 1 ? "s" : "") +
                           " takes " + std::to_string(want) + " inputs (X, B, sequence_lens, initial_h, initial_c, P, " +
                           "then W and R quantized per direction), got " + std::to_string(ctx.num_inputs()));
  } else {
    for (int i = 0; i < 3; ++i)
      if (!ctx.has_input(i))
        return Status::error(std::string(op) + " needs inputs X, W and R (input " + std::to_string(i) + " is missing)");
  }
  const Tensor& x = ctx.input(0);
  const Tensor* w = quantized ? nullptr : &ctx.input(1);
  const Tensor* r = quantized ? nullptr : &ctx.input(2);
  SARAI_RETURN_IF_ERROR(require_float(x, "X"));
  if (!quantized) {
    SARAI_RETURN_IF_ERROR(require_float(*w, "W"));
    SARAI_RETURN_IF_ERROR(require_float(*r, "R"));
  }
  if (x.rank() != 3)
    return Status::error("input 'X' must be 3-D " + std::string(p->batch_major ? "[batch_size, seq_length, input_size]"
                                                                                : "[seq_length, batch_size, input_size]") +
                         ", got " + shape_to_string(x.shape()));
  if (!quantized && r->rank() != 3)
    return Status::error("input 'R' must be 3-D [num_directions, " + std::to_string(p->gates) +
                         "*hidden_size, hidden_size], got " + shape_to_string(r->shape()));
  const int64_t seq = p->batch_major ? x.dim(1) : x.dim(0);
  const int64_t batch = p->batch_major ? x.dim(0) : x.dim(1);
  const int64_t in = x.dim(2);
  int64_t hid = p->hidden;
  if (hid < 0) {
    hid = r->dim(2);
    if (hid <= 0)
      return Status::error("hidden_size (attribute absent, taken from R " + shape_to_string(r->shape()) +
                           ") must be > 0");
  }
  int64_t gh;  // gates * hidden
  if (__builtin_mul_overflow(hid, int64_t{p->gates}, &gh))
    return Status::error("attribute 'hidden_size' " + std::to_string(hid) + " is too large");
  QMat qw[2], qr[2][2];
  if (quantized) {
    // The packed size cannot tell K = 3 from K = 4 (both pad to 4): the
    // attribute input_size, when present, must match X.
    if (const Attribute* is = ctx.node().find_attr("input_size"); is && is->i != in)
      return Status::error("input 'X' " + shape_to_string(x.shape()) + " has input_size " + std::to_string(in) +
                           " but the quantized W was made for " + std::to_string(is->i) + " (attribute input_size)");
    for (int64_t d = 0; d < nd; ++d) {
      const int base = 6 + static_cast<int>(d) * per_dir;
      SARAI_RETURN_IF_ERROR(read_qmat(ctx, base, "W", d, in, gh, &qw[d]));
      if (gru) {
        SARAI_RETURN_IF_ERROR(read_qmat(ctx, base + 3, "R", d, hid, 2 * hid, &qr[d][0]));
        SARAI_RETURN_IF_ERROR(read_qmat(ctx, base + 6, "Rh", d, hid, hid, &qr[d][1]));
      } else {
        SARAI_RETURN_IF_ERROR(read_qmat(ctx, base + 3, "R", d, hid, gh, &qr[d][0]));
      }
    }
  } else {
    SARAI_RETURN_IF_ERROR(require_shape(*w, "W", {nd, gh, in}, "(num_directions, G*hidden_size, input_size)", p->gates));
    SARAI_RETURN_IF_ERROR(require_shape(*r, "R", {nd, gh, hid}, "(num_directions, G*hidden_size, hidden_size)", p->gates));
  }
  const Tensor* b = ctx.has_input(at.b) ? &ctx.input(at.b) : nullptr;
  if (b) {
    SARAI_RETURN_IF_ERROR(require_float(*b, "B"));
    SARAI_RETURN_IF_ERROR(require_shape(*b, "B", {nd, 2 * gh}, "(num_directions, 2*G*hidden_size)", p->gates));
  }
  const Shape state_shape = p->batch_major ? Shape{batch, nd, hid} : Shape{nd, batch, hid};
  const char* state_dims = p->batch_major ? "(batch_size, num_directions, hidden_size)"
                                          : "(num_directions, batch_size, hidden_size)";
  const Tensor* h0 = ctx.has_input(at.h0) ? &ctx.input(at.h0) : nullptr;
  const Tensor* c0 = lstm && ctx.has_input(at.c0) ? &ctx.input(at.c0) : nullptr;
  const Tensor* peep = lstm && ctx.has_input(at.p) ? &ctx.input(at.p) : nullptr;
  if (quantized && !lstm && (ctx.has_input(at.c0) || ctx.has_input(at.p)))
    return Status::error(std::string(op) + " takes no initial_c or P (inputs 4 and 5 must be empty)");
  if (!quantized && !lstm && ctx.num_inputs() > 6)
    return Status::error(std::string(op) + " takes at most 6 inputs, got " + std::to_string(ctx.num_inputs()));
  if (h0) {
    SARAI_RETURN_IF_ERROR(require_float(*h0, "initial_h"));
    SARAI_RETURN_IF_ERROR(require_shape(*h0, "initial_h", state_shape, state_dims));
  }
  if (c0) {
    SARAI_RETURN_IF_ERROR(require_float(*c0, "initial_c"));
    SARAI_RETURN_IF_ERROR(require_shape(*c0, "initial_c", state_shape, state_dims));
  }
  if (peep) {
    SARAI_RETURN_IF_ERROR(require_float(*peep, "P"));
    SARAI_RETURN_IF_ERROR(require_shape(*peep, "P", {nd, 3 * hid}, "(num_directions, 3*hidden_size)"));
  }
  const Tensor* lens = ctx.has_input(at.lens) ? &ctx.input(at.lens) : nullptr;
  if (lens) {
    if (lens->dtype() != DType::kInt32 && lens->dtype() != DType::kInt64)
      return Status::error(std::string("input 'sequence_lens' must be int32 (or int64), got ") + dtype_name(lens->dtype()));
    SARAI_RETURN_IF_ERROR(require_shape(*lens, "sequence_lens", {batch}, "(batch_size)"));
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t v = lens->dtype() == DType::kInt32 ? lens->data<int32_t>()[i] : lens->data<int64_t>()[i];
      if (v < 0 || v > seq)
        return Status::error("input 'sequence_lens' has " + std::to_string(v) + " at index " + std::to_string(i) +
                             "; each length must be in [0, seq_length=" + std::to_string(seq) + "]");
    }
  }

  // Outputs.
  const bool want_y = ctx.wants_output(0), want_yh = ctx.wants_output(1), want_yc = lstm && ctx.wants_output(2);
  if (!lstm && ctx.num_outputs() > 2)
    return Status::error(std::string(op) + " has at most 2 outputs (Y, Y_h), got " + std::to_string(ctx.num_outputs()));
  Tensor* y = nullptr;
  Tensor* yh = nullptr;
  Tensor* yc = nullptr;
  if (want_y)
    y = &ctx.allocate_output(0, DType::kFloat32, p->batch_major ? Shape{batch, seq, nd, hid} : Shape{seq, nd, batch, hid});
  if (want_yh) yh = &ctx.allocate_output(1, DType::kFloat32, state_shape);
  if (want_yc) yc = &ctx.allocate_output(2, DType::kFloat32, state_shape);

  // Workspace: XW [seq * batch, gh], gates [batch, gh], the state h (and c)
  // [batch, hid], r ⊙ h for GRU [batch, hid], the folded bias [gh], Rbh
  // [hid], activation scratch [gh], lengths [batch]. A bidirectional layer
  // on two or more threads runs its two directions' time steps at once, one
  // thread each (their small per-step GEMMs would otherwise leave a core
  // idle or pay a barrier per step), each direction on its own copy of the
  // scratch (`copies`). Every GEMM of a step then runs on one thread, as on
  // one thread: the same results at any thread count.
  const int64_t copies = nd == 2 && num_threads() > 1 ? 2 : 1;
  const int64_t states = lstm || gru ? 2 : 1;
  int64_t rows, xw_n, bgh, total, ws_n;
  if (__builtin_mul_overflow(seq, batch, &rows) || __builtin_mul_overflow(rows, gh, &xw_n) ||
      __builtin_mul_overflow(batch, gh, &bgh) || !checked_mul_add(states + 1, bgh, xw_n, &total) ||
      !checked_mul_add(4, gh, total, &total) || __builtin_mul_overflow(copies, total, &ws_n))
    return Status::error("input 'X' " + shape_to_string(x.shape()) + " with hidden_size " + std::to_string(hid) +
                         " needs more scratch than can be addressed");
  const int64_t bh = batch * hid;  // <= batch * gh
  int64_t* len = ctx.workspace<int64_t>(batch);
  float* ws_all = ctx.workspace<float>(ws_n);
  QScratch qs_all[2];
  if (quantized)
    for (int64_t k = 0; k < copies; ++k) {
      qs_all[k].aq = ctx.workspace<uint8_t>(std::max(rows * in, bh));  // rows * in = X's numel
      qs_all[k].cscale = ctx.workspace<float>(gh);
      qs_all[k].comp = ctx.workspace<int32_t>(gh);
    }
  bool skip = want_y || want_yh || want_yc;
  if (y && !ctx.skip_compute(*y)) skip = false;
  if (yh && !ctx.skip_compute(*yh)) skip = false;
  if (yc && !ctx.skip_compute(*yc)) skip = false;
  if (skip || !(want_y || want_yh || want_yc)) return Status::ok();

  int64_t max_len = 0;
  for (int64_t i = 0; i < batch; ++i) {
    len[i] = !lens ? seq : lens->dtype() == DType::kInt32 ? lens->data<int32_t>()[i] : lens->data<int64_t>()[i];
    max_len = std::max(max_len, len[i]);
  }

  const float* px = x.data<float>();
  // One direction in two parts: its input projection, the one big GEMM
  // (threaded as the session's threads allow), then its time steps.
  // Direction d's copy of the scratch.
  const auto slot = [&](int64_t d) { return copies == 2 ? d : 0; };
  const auto project = [&](int64_t d) -> Status {
    float* xw = ws_all + slot(d) * total;
    const QScratch& qs = qs_all[slot(d)];
    if (max_len == 0) return Status::ok();
    if (quantized) qgemm_nt(rows, gh, in, px, qw[d], qs, xw, gh);
    else SARAI_RETURN_IF_ERROR(gemm_nt(rows, gh, in, px, in, w->data<float>() + d * gh * in, xw, gh));
    return Status::ok();
  };
  const auto steps = [&](int64_t d) -> Status {
    float* xw = ws_all + slot(d) * total;
    const QScratch& qs = qs_all[slot(d)];
    float* gates = xw + xw_n;
    float* h = gates + bgh;
    float* c = h + bh;   // LSTM
    float* rh = h + bh;  // GRU
    float* bias = h + (lstm || gru ? 2 : 1) * bh;
    float* tmp = bias + gh;  // 2 gh
    float* rbh = tmp + 2 * gh;
    const bool reverse = p->direction == 1 || (p->direction == 2 && d == 1);
    const ActFn* act = p->act[d];
    const float* rd = quantized ? nullptr : r->data<float>() + d * gh * hid;
    // Folded bias: Wb + Rb, except GRU's Rbh with linear_before_reset
    // (applied inside r ⊙ (h Rhᵀ + Rbh)).
    if (b) {
      const float* pb = b->data<float>() + d * 2 * gh;
      for (int64_t j = 0; j < gh; ++j) bias[j] = pb[j] + pb[gh + j];
      if (gru && p->linear_before_reset)
        for (int64_t j = 0; j < hid; ++j) {
          rbh[j] = pb[gh + 2 * hid + j];
          bias[2 * hid + j] = pb[2 * hid + j];
        }
    } else {
      std::fill(bias, bias + gh, 0.f);
      std::fill(rbh, rbh + hid, 0.f);
    }
    // Initial state.
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t off = (p->batch_major ? i * nd + d : d * batch + i) * hid;
      if (h0) std::memcpy(h + i * hid, h0->data<float>() + off, static_cast<size_t>(hid) * sizeof(float));
      else std::fill(h + i * hid, h + (i + 1) * hid, 0.f);
      if (lstm) {
        if (c0) std::memcpy(c + i * hid, c0->data<float>() + off, static_cast<size_t>(hid) * sizeof(float));
        else std::fill(c + i * hid, c + (i + 1) * hid, 0.f);
      }
    }
    if (gru && !p->linear_before_reset) std::fill(rh, rh + bh, 0.f);
    const float* pp = peep ? peep->data<float>() + d * 3 * hid : nullptr;

    for (int64_t s = 0; s < max_len; ++s) {
      // The recurrent product for every batch entry (finished ones too:
      // their rows are ignored).
      // (The INT8 GRU keeps R's h rows apart: 2 * hid rows here, then them.)
      const int64_t n1 = gru && (!p->linear_before_reset || quantized) ? 2 * hid : gh;
      if (quantized) qgemm_nt(batch, n1, hid, h, qr[d][0], qs, gates, gh);
      else SARAI_RETURN_IF_ERROR(gemm_nt(batch, n1, hid, h, hid, rd, gates, gh));
      if (quantized && gru && p->linear_before_reset) qgemm_nt(batch, hid, hid, h, qr[d][1], qs, gates + 2 * hid, gh);
      for (int64_t i = 0; i < batch; ++i) {
        if (s >= len[i]) continue;
        const int64_t t = reverse ? len[i] - 1 - s : s;
        const float* xr = xw + (p->batch_major ? i * seq + t : t * batch + i) * gh;
        float* g = gates + i * gh;
        float* hi = h + i * hid;
        if (lstm) {
          float* gi = g;
          float* go = g + hid;
          float* gf = g + 2 * hid;
          float* gc = g + 3 * hid;
          float* ci = c + i * hid;
          for (int64_t j = 0; j < gh; ++j) g[j] += xr[j] + bias[j];
          if (pp)
            for (int64_t j = 0; j < hid; ++j) {
              gi[j] += pp[j] * ci[j];
              gf[j] += pp[2 * hid + j] * ci[j];
            }
          if (p->has_clip) {
            clip_n(gi, hid, p->clip);
            clip_n(gf, 2 * hid, p->clip);  // f and c
          }
          activate(act[0], gi, hid, tmp);
          if (p->input_forget)
            for (int64_t j = 0; j < hid; ++j) gf[j] = 1.f - gi[j];
          else
            activate(act[0], gf, hid, tmp);
          activate(act[1], gc, hid, tmp);
          for (int64_t j = 0; j < hid; ++j) ci[j] = gf[j] * ci[j] + gi[j] * gc[j];
          if (pp)
            for (int64_t j = 0; j < hid; ++j) go[j] += pp[hid + j] * ci[j];
          if (p->has_clip) clip_n(go, hid, p->clip);
          activate(act[0], go, hid, tmp);
          float* hc = tmp + hid;
          std::memcpy(hc, ci, static_cast<size_t>(hid) * sizeof(float));
          activate(act[2], hc, hid, tmp);
          for (int64_t j = 0; j < hid; ++j) hi[j] = go[j] * hc[j];
        } else if (gru) {
          for (int64_t j = 0; j < 2 * hid; ++j) g[j] += xr[j] + bias[j];
          if (p->has_clip) clip_n(g, 2 * hid, p->clip);
          activate(act[0], g, 2 * hid, tmp);  // z and r
          float* gr = g + hid;
          float* gh_ = g + 2 * hid;
          if (p->linear_before_reset) {
            for (int64_t j = 0; j < hid; ++j) gh_[j] = xr[2 * hid + j] + bias[2 * hid + j] + gr[j] * (gh_[j] + rbh[j]);
          } else {
            float* rhi = rh + i * hid;
            for (int64_t j = 0; j < hid; ++j) rhi[j] = gr[j] * hi[j];
          }
        } else {
          for (int64_t j = 0; j < hid; ++j) g[j] += xr[j] + bias[j];
          if (p->has_clip) clip_n(g, hid, p->clip);
          activate(act[0], g, hid, tmp);
          std::memcpy(hi, g, static_cast<size_t>(hid) * sizeof(float));
        }
      }
      if (gru) {
        if (!p->linear_before_reset) {
          if (quantized) qgemm_nt(batch, hid, hid, rh, qr[d][1], qs, gates + 2 * hid, gh);
          else SARAI_RETURN_IF_ERROR(gemm_nt(batch, hid, hid, rh, hid, rd + 2 * hid * hid, gates + 2 * hid, gh));
        }
        for (int64_t i = 0; i < batch; ++i) {
          if (s >= len[i]) continue;
          const int64_t t = reverse ? len[i] - 1 - s : s;
          float* g = gates + i * gh;
          float* gz = g;
          float* gh_ = g + 2 * hid;
          float* hi = h + i * hid;
          if (!p->linear_before_reset) {
            const float* xr = xw + (p->batch_major ? i * seq + t : t * batch + i) * gh;
            for (int64_t j = 0; j < hid; ++j) gh_[j] += xr[2 * hid + j] + bias[2 * hid + j];
          }
          if (p->has_clip) clip_n(gh_, hid, p->clip);
          activate(act[1], gh_, hid, tmp);
          for (int64_t j = 0; j < hid; ++j) hi[j] = (1.f - gz[j]) * gh_[j] + gz[j] * hi[j];
        }
      }
      if (y) {
        float* py = y->mutable_data<float>();
        for (int64_t i = 0; i < batch; ++i) {
          if (s >= len[i]) continue;
          const int64_t t = reverse ? len[i] - 1 - s : s;
          float* dst = py + (p->batch_major ? (i * seq + t) * nd + d : (t * nd + d) * batch + i) * hid;
          std::memcpy(dst, h + i * hid, static_cast<size_t>(hid) * sizeof(float));
        }
      }
    }
    // Steps past each sequence's end: zeros in Y.
    if (y) {
      float* py = y->mutable_data<float>();
      for (int64_t i = 0; i < batch; ++i)
        for (int64_t t = len[i]; t < seq; ++t) {
          float* dst = py + (p->batch_major ? (i * seq + t) * nd + d : (t * nd + d) * batch + i) * hid;
          std::fill(dst, dst + hid, 0.f);
        }
    }
    for (int64_t i = 0; i < batch; ++i) {
      const int64_t off = (p->batch_major ? i * nd + d : d * batch + i) * hid;
      if (yh) {
        float* dst = yh->mutable_data<float>() + off;
        if (len[i] == 0) std::fill(dst, dst + hid, 0.f);
        else std::memcpy(dst, h + i * hid, static_cast<size_t>(hid) * sizeof(float));
      }
      if (yc) {
        float* dst = yc->mutable_data<float>() + off;
        if (len[i] == 0) std::fill(dst, dst + hid, 0.f);
        else std::memcpy(dst, c + i * hid, static_cast<size_t>(hid) * sizeof(float));
      }
    }
    return Status::ok();
  };

  if (copies == 1) {
    for (int64_t d = 0; d < nd; ++d) {
      SARAI_RETURN_IF_ERROR(project(d));
      SARAI_RETURN_IF_ERROR(steps(d));
    }
    return Status::ok();
  }
  for (int64_t d = 0; d < 2; ++d) SARAI_RETURN_IF_ERROR(project(d));
  Status st[2];
  parallel_for(2, 1, [&](int64_t begin, int64_t end) {
    const int outer = num_threads();
    set_num_threads(1);  // this thread's GEMMs: one thread, whichever thread this is
    for (int64_t d = begin; d < end; ++d) st[d] = steps(d);
    set_num_threads(outer);
  });
  SARAI_RETURN_IF_ERROR(st[0]);
  return st[1];
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareLSTM(const Node& node, int64_t opset) {
  return prepare(node, opset, Cell::kLstm);
}
Expected<std::shared_ptr<const void>> PrepareGRU(const Node& node, int64_t opset) {
  return prepare(node, opset, Cell::kGru);
}
Expected<std::shared_ptr<const void>> PrepareRNN(const Node& node, int64_t opset) {
  return prepare(node, opset, Cell::kRnn);
}

// The INT8 forms read `layout` at any opset (convert keeps it only where
// the source's opset has it).
Expected<std::shared_ptr<const void>> PrepareQLSTM(const Node& node, int64_t) {
  return prepare(node, 14, Cell::kLstm);
}
Expected<std::shared_ptr<const void>> PrepareQGRU(const Node& node, int64_t) { return prepare(node, 14, Cell::kGru); }
Expected<std::shared_ptr<const void>> PrepareQRNN(const Node& node, int64_t) { return prepare(node, 14, Cell::kRnn); }

Status LSTM(KernelContext& ctx) { return run_recurrent(ctx, PrepareLSTM, false); }
Status GRU(KernelContext& ctx) { return run_recurrent(ctx, PrepareGRU, false); }
Status RNN(KernelContext& ctx) { return run_recurrent(ctx, PrepareRNN, false); }
Status QLSTM(KernelContext& ctx) { return run_recurrent(ctx, PrepareQLSTM, true); }
Status QGRU(KernelContext& ctx) { return run_recurrent(ctx, PrepareQGRU, true); }
Status QRNN(KernelContext& ctx) { return run_recurrent(ctx, PrepareQRNN, true); }

}  // namespace sarai::kernels
