// The ONNX operator-form quantized ops with quantized outputs (opset 10):
// QLinearMatMul and QLinearConv, on the integer cores of MatMulInteger and
// ConvInteger (kernels/quant_ops.cc: int32 accumulation, loops the compiler
// vectorizes) and one requantization pass:
//
//   acc[.., n]  = Σ_k (a - a_zp) (b - b_zp[n])           (+ B[n] for Conv)
//   y           = saturate(round_half_even(acc * m[n]) + y_zp)
//   m[n]        = a_scale * b_scale[n] / y_scale          (float32)
//
// as ONNX Runtime computes it (the multiplier and the product in float32),
// which is exact per the spec for every case of the ONNX backend tests.
// Weight scales and zero points are per tensor or per output channel
// (QLinearMatMul: per column of B, [N]; QLinearConv: [M]); the activation's
// and the output's are per tensor. x and w (a and b) may be uint8 or int8
// independently; the output takes y_zero_point's type. Pre-quantized models
// whose QLinear ops sit between QuantizeLinear and DequantizeLinear run on
// the INT8 kernels instead (runtime/fuse.h: fuse_qdq).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

bool is_8bit(DType t) { return t == DType::kUInt8 || t == DType::kInt8; }

// The inputs both ops share (QLinearMatMul: a, b; QLinearConv: x, w), by
// index: operand, scale, zero point.
struct QInput {
  int data, scale, zp;
  const char* name;  // "a", "x", ...
};

// An operand's dtype (uint8 / int8) and its scale's shape: one value, or
// (per_channel) one per output channel.
Status check_operand(const KernelContext& ctx, const QInput& in, int64_t channels, bool per_channel) {
  const Tensor& t = ctx.input(in.data);
  if (!is_8bit(t.dtype()))
    return Status::error(std::string("input ") + in.name + " has dtype " + dtype_name(t.dtype()) +
                         "; must be uint8 or int8");
  const Tensor& s = ctx.input(in.scale);
  const std::string sname = std::string(in.name) + "_scale";
  if (s.dtype() != DType::kFloat32)
    return Status::error(sname + " has dtype " + dtype_name(s.dtype()) + "; only float32 scales are supported");
  const bool one = s.numel() == 1 && s.rank() <= 1;
  const bool vec = per_channel && s.rank() == 1 && s.dim(0) == channels;
  if (!one && !vec)
    return Status::error(sname + " " + shape_to_string(s.shape()) + " must be a scalar" +
                         (per_channel ? " or [" + str(channels) + "] (per output channel)" : std::string(" (per tensor)")));
  if (ctx.has_input(in.zp)) {
    const Tensor& z = ctx.input(in.zp);
    const std::string zname = std::string(in.name) + "_zero_point";
    if (z.dtype() != t.dtype())
      return Status::error(zname + " has dtype " + dtype_name(z.dtype()) + " but " + in.name + " is " +
                           dtype_name(t.dtype()));
    const bool zone = z.numel() == 1 && z.rank() <= 1;
    const bool zvec = per_channel && z.rank() == 1 && z.dim(0) == channels;
    if (!zone && !zvec)
      return Status::error(zname + " " + shape_to_string(z.shape()) + " must be a scalar" +
                           (per_channel ? " or [" + str(channels) + "] (per output channel)" : std::string(" (per tensor)")));
  }
  return Status::ok();
}

// y_scale (float32, one value) and y_zero_point (uint8 / int8, one value;
// absent: uint8 0): the output's dtype.
Expected<DType> check_output_params(const KernelContext& ctx, int scale, int zp) {
  const Tensor& s = ctx.input(scale);
  if (s.dtype() != DType::kFloat32)
    return Status::error(std::string("y_scale has dtype ") + dtype_name(s.dtype()) +
                         "; only float32 scales are supported");
  if (s.numel() != 1 || s.rank() > 1)
    return Status::error("y_scale " + shape_to_string(s.shape()) + " must be a scalar (per tensor)");
  if (!ctx.has_input(zp)) return DType::kUInt8;
  const Tensor& z = ctx.input(zp);
  if (!is_8bit(z.dtype()))
    return Status::error(std::string("y_zero_point has dtype ") + dtype_name(z.dtype()) + "; must be uint8 or int8");
  if (z.numel() != 1 || z.rank() > 1)
    return Status::error("y_zero_point " + shape_to_string(z.shape()) + " must be a scalar (per tensor)");
  return z.dtype();
}

// The float multipliers a_scale * b_scale[n] / y_scale, n < channels, into m.
void multipliers(const KernelContext& ctx, int a_scale, int b_scale, int y_scale, int64_t channels, float* m) {
  const float sa = ctx.input(a_scale).data<float>()[0], sy = ctx.input(y_scale).data<float>()[0];
  const Tensor& sb = ctx.input(b_scale);
  for (int64_t n = 0; n < channels; ++n) m[n] = sa * sb.data<float>()[sb.numel() == 1 ? 0 : n] / sy;
}

// y[i] = saturate(round_half_even(acc[i] * m[ch(i)]) + zp) for
// acc viewed as [outer, channels, inner] (per-channel multipliers on the
// middle axis; QLinearMatMul: inner = 1).
template <class T>
void requantize(const int32_t* acc, const float* m, int64_t outer, int64_t channels, int64_t inner, int32_t zp, T* y) {
  constexpr float lo = std::is_same_v<T, uint8_t> ? 0.f : -128.f, hi = std::is_same_v<T, uint8_t> ? 255.f : 127.f;
  const float fzp = static_cast<float>(zp);
  parallel_for(outer * channels, std::max<int64_t>(1, 4096 / std::max<int64_t>(inner, 1)), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const float mult = m[r % channels];
      const int32_t* a = acc + r * inner;
      T* out = y + r * inner;
      for (int64_t j = 0; j < inner; ++j) {
        // nearbyint: round half to even in the default rounding mode; the
        // zero point is added after rounding (an integer, so exact).
        const float v = std::nearbyint(static_cast<float>(a[j]) * mult) + fzp;
        out[j] = static_cast<T>(std::clamp(v, lo, hi));  // NaN cannot occur: finite scales checked
      }
    }
  });
}

// Runs `core` (MatMulInteger or ConvInteger) on the given inputs into an
// int32 tensor, in a context of its own (heap memory) that shares this
// node and its prepared data.
Expected<Tensor> integer_core(KernelContext& ctx, Status (*core)(KernelContext&), std::vector<const Tensor*> inputs,
                              const void* prepared) {
  std::vector<Tensor> out(1);
  KernelContext inner(ctx.node(), ctx.opset(), inputs, out, ctx.num_threads());
  if (prepared != nullptr) inner.set_prepared(prepared);
  SARAI_RETURN_IF_ERROR(core(inner));
  return std::move(out[0]);
}

Status check_finite(const KernelContext& ctx, std::initializer_list<int> scales) {
  for (int i : scales) {
    const Tensor& s = ctx.input(i);
    for (int64_t j = 0; j < s.numel(); ++j)
      if (!std::isfinite(s.data<float>()[j]) || (i == scales.end()[-1] && s.data<float>()[j] == 0.f))
        return Status::error("scales must be finite and y_scale non-zero");
  }
  return Status::ok();
}

template <class T>
void write_output(const Tensor& acc, const float* m, int64_t outer, int64_t channels, int64_t inner, int32_t zp,
                  Tensor& y) {
  requantize<T>(acc.data<int32_t>(), m, outer, channels, inner, zp, y.mutable_data<T>());
}

void write_any(const Tensor& acc, const float* m, int64_t outer, int64_t channels, int64_t inner, int32_t zp, Tensor& y) {
  if (y.dtype() == DType::kUInt8) write_output<uint8_t>(acc, m, outer, channels, inner, zp, y);
  else write_output<int8_t>(acc, m, outer, channels, inner, zp, y);
}

}  // namespace

// QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point,
// y_scale, y_zero_point): NumPy matmul semantics (MatMulInteger's shapes).
Status QLinearMatMul(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i))
      return Status::error("QLinearMatMul needs inputs a, a_scale, b, b_scale and y_scale (zero points optional)");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  if (a.rank() == 0 || b.rank() == 0)
    return Status::error("QLinearMatMul inputs must have rank >= 1, got a " + shape_to_string(a.shape()) + " and b " +
                         shape_to_string(b.shape()));
  const int64_t n = b.rank() == 1 ? 1 : b.dim(b.rank() - 1);
  SARAI_RETURN_IF_ERROR(check_operand(ctx, {0, 1, 2, "a"}, 1, /*per_channel=*/false));
  SARAI_RETURN_IF_ERROR(check_operand(ctx, {3, 4, 5, "b"}, n, /*per_channel=*/b.rank() > 1));
  SARAI_ASSIGN_OR_RETURN(const DType out_type, check_output_params(ctx, 6, 7));
  SARAI_RETURN_IF_ERROR(check_finite(ctx, {1, 4, 6}));
  const Tensor* azp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* bzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  SARAI_ASSIGN_OR_RETURN(Tensor acc, integer_core(ctx, MatMulInteger, {&a, &b, azp, bzp}, nullptr));
  Tensor& y = ctx.allocate_output(0, out_type, acc.shape());
  if (y.numel() == 0) return Status::ok();
  float* m = ctx.workspace<float>(n);
  if (ctx.skip_compute(y)) return Status::ok();
  multipliers(ctx, 1, 4, 6, n, m);
  const int32_t zp = ctx.has_input(7) ? static_cast<int32_t>(ctx.input(7).int_at(0)) : 0;
  write_any(acc, m, y.numel() / n, n, 1, zp, y);
  return Status::ok();
}

// QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale,
// y_zero_point, B): Conv's attributes and shapes (ConvInteger's core);
// B int32 [M] is added to the accumulator before the requantization.
Status QLinearConv(KernelContext& ctx) {
  for (int i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i))
      return Status::error("QLinearConv needs inputs x, x_scale, w, w_scale and y_scale (zero points and B optional)");
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* attrs, ctx.prepared<convgeo::ConvAttrs>(PrepareConv));
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  if (w.rank() < 3) return Status::error("w " + shape_to_string(w.shape()) + " must have rank >= 3 ([M, C/group, k...])");
  const int64_t M = w.dim(0);
  SARAI_RETURN_IF_ERROR(check_operand(ctx, {0, 1, 2, "x"}, 1, /*per_channel=*/false));
  SARAI_RETURN_IF_ERROR(check_operand(ctx, {3, 4, 5, "w"}, M, /*per_channel=*/true));
  SARAI_ASSIGN_OR_RETURN(const DType out_type, check_output_params(ctx, 6, 7));
  SARAI_RETURN_IF_ERROR(check_finite(ctx, {1, 4, 6}));
  const Tensor* bias = ctx.has_input(8) ? &ctx.input(8) : nullptr;
  if (bias != nullptr) {
    if (bias->dtype() != DType::kInt32)
      return Status::error(std::string("B has dtype ") + dtype_name(bias->dtype()) + "; QLinearConv's bias is int32");
    if (bias->rank() != 1 || bias->dim(0) != M)
      return Status::error("B " + shape_to_string(bias->shape()) + " must be [" + str(M) + "] (one value per output channel)");
  }
  const Tensor* xzp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* wzp = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  SARAI_ASSIGN_OR_RETURN(Tensor acc, integer_core(ctx, ConvInteger, {&x, &w, xzp, wzp}, attrs));
  Tensor& y = ctx.allocate_output(0, out_type, acc.shape());
  if (y.numel() == 0) return Status::ok();
  float* m = ctx.workspace<float>(M);
  if (ctx.skip_compute(y)) return Status::ok();
  multipliers(ctx, 1, 4, 6, M, m);
  const int64_t batch = acc.dim(0), inner = acc.numel() / (batch * M);
  if (bias != nullptr) {
    // In uint32: wraps as int32 accumulation does, without undefined behaviour.
    int32_t* pa = acc.mutable_data<int32_t>();
    const int32_t* pb = bias->data<int32_t>();
    for (int64_t r = 0; r < batch * M; ++r) {
      const uint32_t bv = static_cast<uint32_t>(pb[r % M]);
      for (int64_t j = 0; j < inner; ++j)
        pa[r * inner + j] = static_cast<int32_t>(static_cast<uint32_t>(pa[r * inner + j]) + bv);
    }
  }
  const int32_t zp = ctx.has_input(7) ? static_cast<int32_t>(ctx.input(7).int_at(0)) : 0;
  write_any(acc, m, batch, M, inner, zp, y);
  return Status::ok();
}

}  // namespace sarai::kernels
