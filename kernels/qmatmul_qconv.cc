// The quantized ops of domain "sarai": QMatMul, QConv, QConvTranspose
// (contract: kernels/cpu/int8_layout.h): validation, fusion inputs, the
// activation quantization and the call into the compute layer (kernels/cpu/:
// the fast cores qgemm.h / qconv.h, tested bit-exactly against the scalar
// reference cores qref.h).
//
// Why u8 activations with a zero point, not s8. vpdpbusd (AVX-512 VNNI,
// AVX-VNNI) multiplies u8 by s8 and nothing else; symmetric s8 activations
// would have to be shifted by +128 into u8 at run time and compensated by
// -128 Σw anyway (oneDNN's s8s8 path, 0-15 % slower), and would waste half
// the range of post-GELU/ReLU activations, which are mostly non-negative.
// Asymmetric u8 uses all 256 levels over [min(0, x), max(0, x)], matches
// ONNX DynamicQuantizeLinear (so `convert --to onnx` gives ONNX Runtime the
// same numbers), and its zero point costs one per-channel integer
// multiply-subtract in the epilogue:
//
// Every op runs in three steps:
//   1. x_q = quantize_u8(X): dynamic per-tensor u8 (s_x, z_x), ONNX
//      DynamicQuantizeLinear semantics (kernels/cpu/quantize_activations.h).
//      With static ranges (attributes x_min and x_max, from `convert
//      --static` calibration) the range pass is skipped: (s_x, z_x) =
//      choose_u8_params(x_min, x_max), and values outside saturate.
//      A depthwise QConv with x_per_channel = 1 (convert's default for
//      dynamic depthwise convs) quantizes each input channel with its own
//      (s_x[c], z_x[c]) (quantize_u8_per_channel): every output channel
//      reads one input channel, so s_x and z_x below become that channel's,
//      the padding reads z_x[c], and the identity holds channel by channel.
//      After a BatchNorm the channels' ranges differ by orders of magnitude;
//      one per-tensor scale leaves the narrow ones a few levels (PaddleOCR
//      v4 rec: output cosine 0.971 -> 0.992; docs/BENCHMARKS.md).
//      A QMatMul with x_per_row = 1 (convert's default for dynamic
//      MatMul/Gemm) quantizes each row of X (a token) with its own
//      (s_x[m], z_x[m]); below, s_x and z_x become row m's. One token far
//      larger than the rest (the "massive activations" of a sink token)
//      then costs only its own row's resolution.
//   2. acc = the int32 core (kernels/cpu/qref.h), weights read in place.
//   3. y = dequantize_acc(acc - z_x * wsum[n], s_x * scale[n], bias[n]).
//
// Why step 3 is right (MLAS writes its zero-point expansion next to its code;
// this is ours). With x = s_x (x_q - z_x) and w[k][n] = scale[n] w_q[k][n]
// (symmetric weights, zero point 0):
//   Σ_k x[k] w[k][n] = s_x scale[n] Σ_k (x_q[k] - z_x) w_q[k][n]
//                    = s_x scale[n] (Σ_k x_q[k] w_q[k][n] - z_x Σ_k w_q[k][n])
//                    = s_x scale[n] (acc[n] - z_x wsum[n])
// wsum[n] = Σ_k w_q[k][n] is a constant computed at convert time, so the
// core is a plain u8 x s8 dot product: exactly what vpdpbusd computes. For a
// convolution the padded taps read x_q = z_x (x = 0), so every output sees
// all K products and the same identity holds. ConvTranspose does not have
// that property (see conv_transpose_u8s8), so its core subtracts z_x itself.
// Integer bounds: |x_q - z_x| <= 255 and |w_q| <= 127, so every partial sum
// stays within 255 * 127 * K; the ops reject K > qref::kMaxReduction.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/fp32_gemm.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "kernels/cpu/qconv.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/quantize_activations.h"
#include "kernels/util.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/quantized_op.h"
#include "runtime/parallel.h"

namespace sarai::kernels {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

Status require_dtype(const KernelContext& ctx, int i, const char* name, DType want) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != want)
    return Status::error(std::string("input ") + name + " has dtype " + dtype_name(t.dtype()) +
                         "; " + ctx.node().op_type + " takes " + dtype_name(want));
  return Status::ok();
}

// X, W, scale, wsum present, X float32, W int8.
Status check_required(const KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2) || !ctx.has_input(3))
    return Status::error(ctx.node().op_type + " needs inputs X, W, scale and wsum (bias is optional)");
  SARAI_RETURN_IF_ERROR(require_dtype(ctx, 0, "X", DType::kFloat32));
  SARAI_RETURN_IF_ERROR(require_dtype(ctx, 1, "W", DType::kInt8));
  return Status::ok();
}

// scale float32 [channels] or [1]; wsum int32 [channels]; bias float32
// [channels] (or [1, channels], Gemm's C) when given.
Status check_channel_params(const KernelContext& ctx, int64_t channels) {
  SARAI_RETURN_IF_ERROR(require_dtype(ctx, 2, "scale", DType::kFloat32));
  SARAI_RETURN_IF_ERROR(require_dtype(ctx, 3, "wsum", DType::kInt32));
  const Tensor& scale = ctx.input(2);
  if (scale.rank() > 1 || (scale.numel() != channels && scale.numel() != 1))
    return Status::error("scale " + shape_to_string(scale.shape()) + " must be [" + str(channels) +
                         "] (per output channel) or [1] (per tensor)");
  const Tensor& wsum = ctx.input(3);
  if (wsum.rank() != 1 || wsum.dim(0) != channels)
    return Status::error("wsum " + shape_to_string(wsum.shape()) + " must be [" + str(channels) +
                         "] (one weight sum per output channel)");
  if (ctx.has_input(qop::kBias)) {
    SARAI_RETURN_IF_ERROR(require_dtype(ctx, 4, "bias", DType::kFloat32));
    const Tensor& b = ctx.input(qop::kBias);
    const bool ok = (b.rank() == 1 && b.dim(0) == channels) ||
                    (b.rank() == 2 && b.dim(0) == 1 && b.dim(1) == channels);
    if (!ok)
      return Status::error("bias " + shape_to_string(b.shape()) + " must be [" + str(channels) +
                           "] (one value per output channel)");
  }
  return Status::ok();
}

Status check_reduction(const char* what, int64_t k) {
  if (k > qref::kMaxReduction)
    return Status::error(std::string(what) + " = " + str(k) +
                         " exceeds the int32 accumulator bound " + str(qref::kMaxReduction) +
                         " (255 * 127 * K must fit in int32)");
  return Status::ok();
}

// Per-channel constants of the epilogue, in the op's workspace: cscale[n] =
// s_x * scale[n] and comp[n] = z_x * wsum[n] (modular int32, computed in
// int64 so a corrupt wsum is defined behaviour).
struct ChannelParams {
  float* cscale = nullptr;  // [channels]
  int32_t* comp = nullptr;  // [channels]
};

ChannelParams channel_workspace(KernelContext& ctx, int64_t channels) {
  ChannelParams p;
  p.cscale = ctx.workspace<float>(channels);
  p.comp = ctx.workspace<int32_t>(channels);
  return p;
}

// xps: X's one (s_x, z_x), or with `per` > 0 one pair per input channel,
// output channel n taking xps[n / per] (a depthwise conv's, `per` outputs
// per input channel).
void channel_params(const KernelContext& ctx, const QuantParams* xps, int64_t per, int64_t channels, bool compensate,
                    const ChannelParams& p) {
  const float* scale = ctx.input(2).data<float>();
  const bool per_tensor = ctx.input(2).numel() == 1;
  const int32_t* wsum = ctx.input(3).data<int32_t>();
  for (int64_t n = 0; n < channels; ++n) {
    const QuantParams& xp = xps[per > 0 ? n / per : 0];
    p.cscale[n] = xp.scale * scale[per_tensor ? 0 : n];
    p.comp[n] = compensate ? static_cast<int32_t>(static_cast<uint32_t>(int64_t{xp.zero_point} * wsum[n])) : 0;
  }
}

// What the graph fused into a quantized op (runtime/fuse.h): a residual
// input (index 5, added after the bias) and an activation (attribute
// "activation": "Relu"), applied in that order.
struct Fusion {
  const Tensor* residual = nullptr;
  QgemmActivation act = QgemmActivation::kNone;
  // The residual has exactly the op's own output shape: the GEMM epilogue
  // adds it. Otherwise finish_fusion broadcasts it afterwards.
  bool in_epilogue = false;

  // True when the epilogue applies everything fused (then y is output 0).
  bool epilogue_does_all() const { return residual == nullptr || in_epilogue; }
  // What the epilogue applies: the residual and activation, or neither when
  // finish_fusion has to apply both after a broadcast.
  const float* epilogue_residual() const {
    return residual != nullptr && in_epilogue ? residual->data<float>() : nullptr;
  }
  QgemmActivation epilogue_act() const { return epilogue_does_all() ? act : QgemmActivation::kNone; }
};

Expected<Fusion> read_fusion(const KernelContext& ctx, const Shape& y_shape, QgemmActivation act) {
  Fusion f;
  f.act = act;
  if (ctx.has_input(qop::kResidual)) {
    const Tensor& r = ctx.input(qop::kResidual);
    if (r.dtype() != DType::kFloat32)
      return Status::error(std::string("fused residual has dtype ") + dtype_name(r.dtype()) +
                           "; it must be float32");
    SARAI_RETURN_IF_ERROR(broadcast_shapes({y_shape, r.shape()}).status());
    f.residual = &r;
    f.in_epilogue = r.shape() == y_shape;
  }
  return f;
}

// The op's memory. `out` is output 0. `y` is where the core writes: output 0
// itself when the epilogue does all the fused work, else a workspace tensor
// (`core`) that finish_fusion then adds the broadcast residual to.
struct OpOutput {
  Tensor* out = nullptr;
  Tensor* y = nullptr;
  Tensor core;
};

// Allocates output 0 (and the core's workspace); `shape` is the core's.
// read_fusion checked that the residual broadcasts against it.
void allocate_op_output(KernelContext& ctx, const Fusion& f, const Shape& shape, OpOutput* o) {
  if (f.epilogue_does_all()) {
    o->out = o->y = &ctx.allocate_output(0, DType::kFloat32, shape);
    return;
  }
  o->out = &ctx.allocate_output(0, DType::kFloat32, *broadcast_shapes({shape, f.residual->shape()}));
  o->core = Tensor::wrap(DType::kFloat32, shape, ctx.workspace<float>(numel_of(shape)), nullptr,
                         /*read_only=*/false);
  o->y = &o->core;
}

// The op's output: y itself when the epilogue did all the fused work;
// otherwise out = act(y + residual) with NumPy broadcasting (the unfused
// graph's Add then Relu, the same float operations), written to output 0.
void finish_fusion(const Fusion& f, const OpOutput& o) {
  if (f.epilogue_does_all()) return;
  const Tensor& y = *o.y;
  Tensor& out = *o.out;
  const Shape& out_shape = out.shape();
  const float* py = y.data<float>();
  const float* pr = f.residual->data<float>();
  float* po = out.mutable_data<float>();
  const bool relu = f.act == QgemmActivation::kRelu;
  for_each_broadcast(out_shape, {broadcast_strides(y.shape(), out_shape), broadcast_strides(f.residual->shape(), out_shape)},
                     [&](int64_t i, const int64_t* off) {
    float v = py[off[0]] + pr[off[1]];
    if (relu) v = v < 0.f ? 0.f : v;
    po[i] = v;
  });
  if (f.act == QgemmActivation::kGelu) vec_kernels().gelu(po, po, out.numel());
}

// The activation's quantization: static when the node carries the
// calibrated range (float attributes x_min and x_max, both or neither),
// else dynamic (nullopt: quantize_u8 measures X's range on every call).
Expected<std::optional<QuantParams>> static_params(const Node& node) {
  const Attribute* lo = node.find_attr("x_min");
  const Attribute* hi = node.find_attr("x_max");
  if (lo == nullptr && hi == nullptr) return std::optional<QuantParams>();
  if (lo == nullptr || hi == nullptr)
    return Status::error(std::string("attribute ") + (lo ? "x_max" : "x_min") +
                         " is missing (a static activation range needs both x_min and x_max)");
  if (lo->kind != Attribute::Kind::kFloat || hi->kind != Attribute::Kind::kFloat)
    return Status::error("attributes x_min and x_max must be floats");
  if (!std::isfinite(lo->f) || !std::isfinite(hi->f) || lo->f > hi->f)
    return Status::error("static activation range [x_min, x_max] = [" + std::to_string(lo->f) + ", " +
                         std::to_string(hi->f) + "] must be finite with x_min <= x_max");
  return std::optional<QuantParams>(choose_u8_params(lo->f, hi->f));
}

// Step 1: X into xq with the static parameters, or dynamically.
QuantParams quantize_input(const std::optional<QuantParams>& fixed, const Tensor& x, uint8_t* xq) {
  if (!fixed) return quantize_u8(x.data<float>(), x.numel(), xq);
  quantize_u8_with(x.data<float>(), x.numel(), *fixed, xq);
  return *fixed;
}

// What every quantized op reads from its attributes besides its shape:
// the static activation range and the fused activation (runtime/fuse.h).
struct QuantAttrs {
  std::optional<QuantParams> fixed;
  QgemmActivation act = QgemmActivation::kNone;
};

Status read_quant_attrs(const Node& node, QuantAttrs* q) {
  SARAI_ASSIGN_OR_RETURN(q->fixed, static_params(node));
  if (node.has_attr("activation")) {
    const std::string_view act = node.attr_string_view("activation", "");
    if (act == "Relu") q->act = QgemmActivation::kRelu;
    else if (act == "Gelu") q->act = QgemmActivation::kGelu;
    else return Status::error("attribute activation = \"" + std::string(act) + "\" is not supported (Relu and Gelu are)");
  }
  return Status::ok();
}

// A 0/1 attribute asking for X's ranges at a finer grain than the tensor,
// chosen at run time (x_per_channel, x_per_row): true when 1. It excludes a
// static range.
Expected<bool> finer_x_attr(const Node& node, const char* name, const char* grain, const QuantAttrs& q) {
  SARAI_ASSIGN_OR_RETURN(const bool on, attr_flag(node, name, false));
  if (on && q.fixed)
    return Status::error(std::string("attribute ") + name + " = 1 cannot go with a static range (x_min, x_max): " +
                         "X is quantized either " + grain + " at run time or with the calibrated range");
  return on;
}

Expected<int64_t> positive_attr(const Node& node, const char* name, const char* meaning) {
  if (!node.has_attr(name))
    return Status::error(std::string("attribute ") + name + " (" + meaning + ") is missing");
  const int64_t v = node.attr_int(name, 0);
  if (v < 1) return Status::error(std::string("attribute ") + name + " = " + str(v) + " must be >= 1");
  return v;
}

// QMatMul's attributes, read and checked once per node (PrepareQMatMul).
struct QMatMulAttrs {
  int64_t k = 0, n = 0;
  QuantAttrs quant;
  bool per_row = false;  // x_per_row = 1: each row of X quantized with its own (s_x, z_x)
};

// QConv's and QConvTranspose's (PrepareQConv, PrepareQConvTranspose): the
// convolution's, the quantized ops' and the ONNX weight shape, which a
// packed weight (QConv with group 1) carries in the attribute weight_shape.
struct QConvAttrs {
  convgeo::ConvAttrs conv;
  QuantAttrs quant;
  bool per_channel = false;  // x_per_channel = 1: X quantized per channel (depthwise QConv)
  bool has_weight_shape = false;
  Shape weight_shape;
};

Expected<std::shared_ptr<const void>> prepare_qconv(const Node& node, bool transpose) {
  QConvAttrs a;
  SARAI_RETURN_IF_ERROR(convgeo::read_conv_attrs(node, transpose, &a.conv));
  SARAI_RETURN_IF_ERROR(read_quant_attrs(node, &a.quant));
  if (!transpose) {
    SARAI_ASSIGN_OR_RETURN(a.per_channel, finer_x_attr(node, "x_per_channel", "per channel", a.quant));
  }
  a.has_weight_shape = node.has_attr("weight_shape");
  if (!a.has_weight_shape) {
    if (!transpose && a.conv.group == 1)
      return Status::error("attribute weight_shape (the ONNX weight shape) is missing; it is "
                           "required when W is packed (group 1)");
    return prepared_data(std::move(a));
  }
  const Shape& ws = a.weight_shape = attr_ints_or(node, "weight_shape", {});
  for (int64_t d : ws)
    if (d < 1) return Status::error("weight_shape " + shape_to_string(ws) + " must have dims >= 1");
  if (!checked_numel(ws).has_value())
    return Status::error("weight_shape " + shape_to_string(ws) + " overflows int64");
  return prepared_data(std::move(a));
}

// The ONNX weight shape of a QConv/QConvTranspose: the weight_shape
// attribute, else W's own shape.
Expected<Shape> weight_shape(const KernelContext& ctx, const QConvAttrs& a) {
  if (!a.has_weight_shape) return ctx.input(1).shape();
  if (a.weight_shape.size() != static_cast<size_t>(ctx.input(0).rank()))
    return Status::error("weight_shape " + shape_to_string(a.weight_shape) + " must have the rank of X " +
                         shape_to_string(ctx.input(0).shape()));
  return a.weight_shape;
}

// The INT8 ConvTranspose core splits each output line of the last dim into
// its stride phases, stride * ceil(out / stride) values per line and
// thread (kernels/cpu/qconv_transpose.cc): with a stride far past the
// output (legal when that dim's input has length 1, or pads crop the
// output) that line must still be a sane size.
Status check_split_line(const convgeo::ConvGeometry& g) {
  const size_t last = static_cast<size_t>(g.nsp) - 1;
  const int64_t s = g.strides[last], out = g.out[last];
  int64_t line, lines;
  if (!checked_mul_add(s, out / s + (out % s != 0), 0, &line) ||
      __builtin_mul_overflow(line, g.out_size() / out, &lines) || lines > (int64_t{1} << 40))
    return Status::error("strides " + shape_to_string(g.strides) + " with output spatial dims " +
                         shape_to_string(g.out) + " are too large for the INT8 core (its last dim's stride " +
                         "phases need stride * ceil(output / stride) values per output line)");
  return Status::ok();
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareQMatMul(const Node& node, int64_t) {
  QMatMulAttrs a;
  SARAI_ASSIGN_OR_RETURN(a.k, positive_attr(node, "K", "reduction size"));
  SARAI_ASSIGN_OR_RETURN(a.n, positive_attr(node, "N", "output channels"));
  SARAI_RETURN_IF_ERROR(check_reduction("K", a.k));
  if (a.n > (int64_t{1} << 40) / int8::round_up(a.k, int8::kGroupK))
    return Status::error("attributes K = " + str(a.k) + ", N = " + str(a.n) + " are too large");
  SARAI_RETURN_IF_ERROR(read_quant_attrs(node, &a.quant));
  SARAI_ASSIGN_OR_RETURN(a.per_row, finer_x_attr(node, "x_per_row", "per row", a.quant));
  return prepared_data(std::move(a));
}

Expected<std::shared_ptr<const void>> PrepareQConv(const Node& node, int64_t) {
  return prepare_qconv(node, /*transpose=*/false);
}

Expected<std::shared_ptr<const void>> PrepareQConvTranspose(const Node& node, int64_t) {
  return prepare_qconv(node, /*transpose=*/true);
}

Status QMatMul(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_required(ctx));
  SARAI_ASSIGN_OR_RETURN(const QMatMulAttrs* a, ctx.prepared<QMatMulAttrs>(PrepareQMatMul));
  const int64_t k = a->k, n = a->n;
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (w.rank() != 1 || w.numel() != int8::packed_size(k, n))
    return Status::error("packed W " + shape_to_string(w.shape()) + " must be [" +
                         str(int8::packed_size(k, n)) + "] (N16K4 bytes of K = " + str(k) +
                         ", N = " + str(n) + ")");
  if (x.rank() < 1 || x.dim(x.rank() - 1) != k)
    return Status::error("input X " + shape_to_string(x.shape()) + " must end in K = " + str(k));
  SARAI_RETURN_IF_ERROR(check_channel_params(ctx, n));
  const std::optional<QuantParams>& fixed = a->quant.fixed;
  const int64_t rows = x.numel() / k;
  Shape out_shape(x.shape().begin(), x.shape().end() - 1);
  out_shape.push_back(n);
  SARAI_ASSIGN_OR_RETURN(const Fusion fusion, read_fusion(ctx, out_shape, a->quant.act));
  OpOutput o;
  allocate_op_output(ctx, fusion, out_shape, &o);
  if (o.y->numel() == 0) return Status::ok();  // so is the broadcast output
  // X quantized to u8 (quantize_u8 writes every byte) and the per-channel
  // constants, in the workspace.
  uint8_t* xq = ctx.workspace<uint8_t>(x.numel());
  const ChannelParams cp = channel_workspace(ctx, n);
  QuantParams* row_x = a->per_row ? ctx.workspace<QuantParams>(rows) : nullptr;
  // Planning pass: nothing read, the packed weights included.
  if (ctx.skip_compute(*o.out)) return Status::ok();
  if (row_x) {
    // Each row (token) its own range, so one outlier row does not flatten
    // the others (quantize_u8_per_channel over `rows` channels of K values);
    // the epilogue combines row m's (s_x, z_x) with the channel factors
    // scale[n] and wsum[n] (QgemmEpilogue::row_x).
    quantize_u8_per_channel(x.data<float>(), 1, rows, k, xq, row_x);
    const QuantParams unit{1.f, 1};  // channel_params then gives scale[n] and wsum[n] themselves
    channel_params(ctx, &unit, 0, n, /*compensate=*/true, cp);
  } else {
    const QuantParams xp = quantize_input(fixed, x, xq);
    channel_params(ctx, &xp, 0, n, /*compensate=*/true, cp);
  }
  QgemmEpilogue ep;
  ep.comp = cp.comp;
  ep.cscale = cp.cscale;
  ep.row_x = row_x;
  ep.bias = ctx.has_input(qop::kBias) ? ctx.input(qop::kBias).data<float>() : nullptr;
  ep.residual = fusion.epilogue_residual();
  ep.ldr_m = n;
  ep.act = fusion.epilogue_act();
  ep.y = o.y->mutable_data<float>();
  ep.ldy_m = n;
  qgemm_u8s8(xq, rows, k, /*lda=*/k, w.data<int8_t>(), n, ep);
  finish_fusion(fusion, o);
  return Status::ok();
}

Status QConv(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_required(ctx));
  SARAI_ASSIGN_OR_RETURN(const QConvAttrs* a, ctx.prepared<QConvAttrs>(PrepareQConv));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  const int64_t group = a->conv.group;
  const bool packed = group == 1;
  SARAI_ASSIGN_OR_RETURN(const Shape ws, weight_shape(ctx, *a));
  qref::ConvProblem p;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv(a->conv, x.shape(), ws, &p.g));
  p.batch = x.dim(0);
  p.C = x.dim(1);
  p.M = ws[0];
  p.group = group;
  p.packed = packed;
  const int64_t kg = ws[1] * p.g.kernel_size();  // reduction per output channel
  SARAI_RETURN_IF_ERROR(check_reduction("K (C/group * kernel taps)", kg));
  if (packed) {
    if (w.rank() != 1 || w.numel() != int8::packed_size(kg, p.M))
      return Status::error("packed W " + shape_to_string(w.shape()) + " must be [" +
                           str(int8::packed_size(kg, p.M)) + "] (N16K4 bytes of K = " + str(kg) +
                           ", N = " + str(p.M) + " for weight_shape " + shape_to_string(ws) + ")");
  } else if (w.shape() != ws) {
    return Status::error("W " + shape_to_string(w.shape()) + " must be the plain weight " +
                         shape_to_string(ws) + " (group " + str(group) + " > 1 is not packed)");
  }
  SARAI_RETURN_IF_ERROR(check_channel_params(ctx, p.M));
  const std::optional<QuantParams>& fixed = a->quant.fixed;
  // Per channel only where each output reads one input channel; with one
  // channel (group 1, packed) it is the per-tensor path.
  if (a->per_channel && p.C != group)
    return Status::error("attribute x_per_channel = 1 needs a depthwise conv (group = C), got group " + str(group) +
                         " over " + str(p.C) + " input channels");
  const bool per_channel = a->per_channel && !packed;

  Shape out_shape = {p.batch, p.M};
  out_shape.insert(out_shape.end(), p.g.out.begin(), p.g.out.end());
  SARAI_ASSIGN_OR_RETURN(const Fusion fusion, read_fusion(ctx, out_shape, a->quant.act));
  OpOutput o;
  allocate_op_output(ctx, fusion, out_shape, &o);
  if (o.y->numel() == 0) return Status::ok();
  uint8_t* xq = ctx.workspace<uint8_t>(x.numel());
  const ChannelParams cp = channel_workspace(ctx, p.M);
  void* scratch = ctx.workspace<uint8_t>(qconv_scratch_bytes(p));
  QuantParams* xps = per_channel ? ctx.workspace<QuantParams>(p.C) : nullptr;
  uint8_t* zps = per_channel ? ctx.workspace<uint8_t>(p.C) : nullptr;
  if (ctx.skip_compute(*o.out)) return Status::ok();
  QuantParams xp;
  if (per_channel) {
    // Output channel m reads input channel m / (M / C) alone, so its
    // constants take that channel's scale and zero point.
    quantize_u8_per_channel(x.data<float>(), p.batch, p.C, p.g.in_size(), xq, xps);
    for (int64_t c = 0; c < p.C; ++c) zps[c] = xps[c].zero_point;
    channel_params(ctx, xps, p.M / p.C, p.M, /*compensate=*/true, cp);
  } else {
    xp = quantize_input(fixed, x, xq);
    channel_params(ctx, &xp, 0, p.M, /*compensate=*/true, cp);
  }
  QconvEpilogue ep;
  ep.comp = cp.comp;
  ep.cscale = cp.cscale;
  ep.bias = ctx.has_input(qop::kBias) ? ctx.input(qop::kBias).data<float>() : nullptr;
  ep.residual = fusion.epilogue_residual();
  ep.act = fusion.epilogue_act();
  ep.y = o.y->mutable_data<float>();
  qconv_u8s8(p, xq, xp.zero_point, w.data<int8_t>(), ep, nullptr, scratch, zps);
  finish_fusion(fusion, o);
  return Status::ok();
}

Status QConvTranspose(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_required(ctx));
  SARAI_ASSIGN_OR_RETURN(const QConvAttrs* a, ctx.prepared<QConvAttrs>(PrepareQConvTranspose));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  SARAI_ASSIGN_OR_RETURN(const Shape ws, weight_shape(ctx, *a));
  if (w.shape() != ws)
    return Status::error("W " + shape_to_string(w.shape()) + " must be the plain weight " +
                         shape_to_string(ws) + " (QConvTranspose weights are not packed)");
  const int64_t group = a->conv.group;
  qref::ConvProblem p;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv_transpose(a->conv, x.shape(), ws, &p.g));
  p.batch = x.dim(0);
  p.C = x.dim(1);
  p.M = ws[1] * group;
  p.group = group;
  SARAI_RETURN_IF_ERROR(check_reduction("C/group * kernel taps", p.C / group * p.g.kernel_size()));
  SARAI_RETURN_IF_ERROR(check_split_line(p.g));
  SARAI_RETURN_IF_ERROR(check_channel_params(ctx, p.M));
  const std::optional<QuantParams>& fixed = a->quant.fixed;

  Shape out_shape = {p.batch, p.M};
  out_shape.insert(out_shape.end(), p.g.out.begin(), p.g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();
  uint8_t* xq = ctx.workspace<uint8_t>(x.numel());
  const ChannelParams cp = channel_workspace(ctx, p.M);
  void* scratch = ctx.workspace<uint8_t>(qconv_transpose_scratch_bytes(p));
  if (ctx.skip_compute(y)) return Status::ok();
  const QuantParams xp = quantize_input(fixed, x, xq);
  // The core subtracts the zero point itself: no wsum compensation.
  channel_params(ctx, &xp, 0, p.M, /*compensate=*/false, cp);
  QconvEpilogue ep;
  ep.cscale = cp.cscale;
  ep.bias = ctx.has_input(qop::kBias) ? ctx.input(qop::kBias).data<float>() : nullptr;
  ep.y = y.mutable_data<float>();
  qconv_transpose_u8s8(p, xq, xp.zero_point, w.data<int8_t>(), ep, nullptr, scratch);
  return Status::ok();
}

// The FP32 fallbacks (runtime/session_fallback.h): the float convolutions
// Session::create puts where INT8 cannot win, on the weight dequantized
// once at creation (W = scale[ch] * q). The 1x1 conv and the ConvTranspose
// with kernel = strides are each one GEMM (fp32_gemm: oneDNN's sgemm, as
// Conv and ConvTranspose run it) plus a copy (other group-1 convs are
// Conv's im2col path, below), computed in blocks of output positions that depend
// on the shape only (p / kFp32Columns of them), one single-threaded sgemm per block (oneDNN runs single-
// threaded inside our parallel region, as in kernels/attention.cc): the
// result is then the same at every thread count, which oneDNN's own
// partitioning does not guarantee (on this Zen 3, PaddleOCR det's FP32
// output differs between 1 and 3 threads).
namespace {

constexpr int64_t kFp32Columns = 256;

// X, W (float32, the rank of X, >= 3) and the bias [W.dim(channel_dim)].
Status check_fp32_inputs(const KernelContext& ctx, int channel_dim) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error(ctx.node().op_type + " needs inputs X and W (bias is optional)");
  for (int i = 0; i < 3; ++i)
    if (ctx.has_input(i)) SARAI_RETURN_IF_ERROR(require_dtype(ctx, i, i == 0 ? "X" : i == 1 ? "W" : "bias", DType::kFloat32));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (x.rank() < 3)
    return Status::error("input X " + shape_to_string(x.shape()) + " must have rank >= 3 ([N, C, spatial...])");
  if (w.rank() != x.rank())
    return Status::error("W " + shape_to_string(w.shape()) + " must have the rank of X " + shape_to_string(x.shape()));
  const int64_t channels = w.dim(channel_dim);
  if (ctx.has_input(2) && (ctx.input(2).rank() != 1 || ctx.input(2).dim(0) != channels))
    return Status::error("bias " + shape_to_string(ctx.input(2).shape()) + " must be [" + str(channels) +
                         "] (one value per output channel)");
  return Status::ok();
}

// Y[M, P] = W[M, K] · X[K, P] (+ bias[m]) for one image, in column blocks;
// trans_w: W is stored [K, M].
Status fp32_blocked_gemm(bool trans_w, int64_t m, int64_t k, int64_t p, const float* w, const float* x,
                         const float* bias, float* y) {
  std::atomic<bool> failed{false};
  Status first = Status::ok();
  std::mutex mu;
  // p / kFp32Columns blocks of equal size (at least kFp32Columns each): a
  // tail of a few columns would send oneDNN to another kernel (its GEMV for
  // one column) that rounds differently from the whole-matrix call.
  const int64_t blocks = std::max<int64_t>(1, p / kFp32Columns);
  parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
    // oneDNN on one thread, also when this runs inline (one block, or one
    // thread): a block's result must not depend on the session's threads.
    const int saved = num_threads();
    set_num_threads(1);
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t j = p * b / blocks, nb = p * (b + 1) / blocks - j;
      if (bias)
        for (int64_t r = 0; r < m; ++r) std::fill(y + r * p + j, y + r * p + j + nb, bias[r]);
      Status st = fp32_gemm(trans_w, false, m, nb, k, 1.f, w, trans_w ? m : k, x + j, p, bias ? 1.f : 0.f, y + j, p);
      if (!st.is_ok() && !failed.exchange(true)) {
        std::lock_guard<std::mutex> lock(mu);
        first = st;
      }
    }
    set_num_threads(saved);
  });
  return first;
}

}  // namespace

// Fp32Conv(X, W float [M, C, k...], bias?): any group-1 convolution
// (strides, pads, dilations, auto_pad as Conv reads them).
//  - 1x1, stride 1, unpadded: Y[b] = W · X[b] (+ bias), X itself the
//    column matrix, in fp32_blocked_gemm's fixed column blocks.
//  - Every other shape: Conv's im2col path (kernels/conv.cc), which builds
//    the column matrix one block of output positions at a time (blocks
//    fixed by the shape, in cache) and runs one single-threaded sgemm per
//    block, so it is already the same at every thread count. Only Conv's
//    1x1 path hands the whole GEMM to oneDNN's threads, hence the branch
//    above. Calling Conv rather than a second im2col here keeps one FP32
//    im2col in the tree (and the fallback's result is Conv's, bit for bit).
// Group > 1 is refused: the rewrite never makes it, and Conv's grouped 1x1
// path is not thread-count independent.
Status Fp32Conv(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* a, ctx.prepared<convgeo::ConvAttrs>(PrepareConv));
  SARAI_RETURN_IF_ERROR(check_fp32_inputs(ctx, /*channel_dim=*/0));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (a->group != 1)
    return Status::error("group " + str(a->group) + ": Fp32Conv runs group 1 convolutions only");
  convgeo::ConvGeometry g;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv(*a, x.shape(), w.shape(), &g));
  bool pointwise = true;
  for (int d = 0; d < g.nsp; ++d)
    pointwise = pointwise && g.kernel[d] == 1 && g.strides[d] == 1 && g.pad_begin[d] == 0 && g.pad_end[d] == 0;
  if (!pointwise) return Conv(ctx);
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0), p = g.out_size();
  Shape out_shape = {n, m};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  const float* bias = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
  for (int64_t b = 0; b < n; ++b)
    SARAI_RETURN_IF_ERROR(fp32_blocked_gemm(false, m, c, p, w.data<float>(), x.data<float>() + b * c * p, bias,
                                            y.mutable_data<float>() + b * m * p));
  return Status::ok();
}

// Fp32ConvTranspose(X, W float [C, M, k...], bias?): group 1, kernel =
// strides, no padding, dilation 1 (each output position is reached by
// exactly one tap): col[(m, r), i] = Σ_c W[c, (m, r)] X[c, i], then
// Y[m, i * stride + r] = bias[m] + col, the sum ConvTranspose's col2im
// forms (it starts from the bias and adds the one tap).
Status Fp32ConvTranspose(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* a, ctx.prepared<convgeo::ConvAttrs>(PrepareConvTranspose));
  SARAI_RETURN_IF_ERROR(check_fp32_inputs(ctx, /*channel_dim=*/1));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  convgeo::ConvGeometry g;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv_transpose(*a, x.shape(), w.shape(), &g));
  bool disjoint = a->group == 1;
  for (int d = 0; d < g.nsp; ++d)
    disjoint = disjoint && g.kernel[d] == g.strides[d] && g.dilations[d] == 1 && g.pad_begin[d] == 0 &&
               g.out[d] == g.in[d] * g.strides[d];
  if (!disjoint)
    return Status::error("W " + shape_to_string(w.shape()) + " with these attributes is not a group 1, unpadded "
                         "ConvTranspose whose kernel equals its strides, the only one Fp32ConvTranspose runs");
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(1), ks = g.kernel_size(), pin = g.in_size(), pout = g.out_size();
  Shape out_shape = {n, m};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();
  float* col = ctx.workspace<float>(m * ks * pin);
  if (ctx.skip_compute(y)) return Status::ok();
  const float* bias = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
  const size_t nsp = static_cast<size_t>(g.nsp);
  for (int64_t b = 0; b < n; ++b) {
    SARAI_RETURN_IF_ERROR(fp32_blocked_gemm(true, m * ks, c, pin, w.data<float>(), x.data<float>() + b * c * pin,
                                            nullptr, col));
    float* yb = y.mutable_data<float>() + b * m * pout;
    // Row (m, r) of col, one input line (the last dim) at a time: input
    // position i of the line lands at i * stride + r_last of its output line.
    const size_t last = nsp - 1;
    const int64_t in_last = g.in[last], s_last = g.strides[last], outer = pin / in_last;
    parallel_for(m * ks, 1, [&](int64_t r0, int64_t r1) {
      std::vector<int64_t> kk(nsp), ii(nsp);
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t ch = row / ks;
        int64_t rem = row % ks;
        for (size_t d = nsp; d-- > 0;) kk[d] = rem % g.kernel[d], rem /= g.kernel[d];
        const float bv = bias ? bias[ch] : 0.f;
        float* ych = yb + ch * pout;
        for (int64_t op = 0; op < outer; ++op) {
          int64_t q = op, base = 0;
          for (size_t d = last; d-- > 0;) ii[d] = q % g.in[d], q /= g.in[d];
          for (size_t d = 0; d < last; ++d) base = base * g.out[d] + ii[d] * g.strides[d] + kk[d];
          float* line = ych + base * g.out[last] + kk[last];
          const float* src = col + row * pin + op * in_last;
          for (int64_t i = 0; i < in_last; ++i) line[i * s_last] = bv + src[i];
        }
      }
    });
  }
  return Status::ok();
}

}  // namespace sarai::kernels
