// The standard ONNX quantization ops, so the runtime runs the quantized
// ONNX models `sarai-rt convert --to onnx` writes (and others'):
// DynamicQuantizeLinear, QuantizeLinear, DequantizeLinear (per tensor and
// per axis), MatMulInteger and ConvInteger. Plain loops the compiler
// vectorizes (ConvInteger over an unfolded block of positions); the
// pre-quantized models' chains run as QConv / QMatMul instead
// (runtime/fuse.h: fuse_integer_ops).
//
//   QuantizeLinear:   y = saturate(round_half_even(x / y_scale) + y_zero_point)
//   DequantizeLinear: y = (x - x_zero_point) * x_scale
//   MatMulInteger:    Y = Σ_k (A[m][k] - a_zp) * (B[k][n] - b_zp)      (int32)
//   ConvInteger:      Conv over (x - x_zp) and (w - w_zp[m]), the padding
//                     reading x = x_zp (a 0 after the subtraction)    (int32)
// Integer outputs wrap modulo 2^32 like the int32 arithmetic of other
// runtimes (computed in int64 and cast, so never undefined behaviour).
//
// Not supported, with a clear error: blocked quantization (opset 21
// block_size), float8 / int4 types, float16 scales.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/conv_geometry.h"
#include "kernels/kernels.h"
#include "kernels/cpu/quantize_activations.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

std::string str(int64_t v) { return std::to_string(v); }

bool is_quant_type(DType t) {
  return t == DType::kUInt8 || t == DType::kInt8 || t == DType::kUInt16 || t == DType::kInt16;
}

void quant_range(DType t, float* lo, float* hi) {
  switch (t) {
    case DType::kUInt8: *lo = 0; *hi = 255; return;
    case DType::kInt8: *lo = -128; *hi = 127; return;
    case DType::kUInt16: *lo = 0; *hi = 65535; return;
    default: *lo = -32768; *hi = 32767; return;  // kInt16
  }
}

void store_int(Tensor& t, int64_t i, int32_t v) {
  switch (t.dtype()) {
    case DType::kUInt8: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v); return;
    case DType::kInt8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(v); return;
    case DType::kUInt16: t.mutable_data<uint16_t>()[i] = static_cast<uint16_t>(v); return;
    case DType::kInt16: t.mutable_data<int16_t>()[i] = static_cast<int16_t>(v); return;
    default: assert(false);
  }
}

// Quantize- and DequantizeLinear's attributes (PrepareQuantizeLinear).
struct QuantAttrs {
  int64_t axis = 1;  // its range depends on x's rank: checked per run
  bool has_output_dtype = false;
  DType output_dtype = DType::kUInt8;
};

// The attributes both ops share, checked once: blocked quantization (opset 21
// block_size) is refused.
Expected<QuantAttrs> quant_attrs(const Node& node) {
  QuantAttrs a;
  const int64_t bs = node.attr_int("block_size", 0);
  if (bs != 0)
    return Status::error("block_size " + str(bs) + " (blocked quantization) is not supported");
  a.axis = node.attr_int("axis", 1);
  return a;
}

// How a scale (and its zero point) maps onto x: per tensor (one value) or
// per axis (one value per index of x's dim `axis`).
struct AxisLayout {
  bool per_axis = false;
  int64_t outer = 1, channels = 1, inner = 1;  // x viewed as [outer, channels, inner]
};

// Validates scale (and zero point, if any) against x for Quantize- and
// DequantizeLinear; `scale_name` / `zp_name` are the ONNX input names.
Status axis_layout(const KernelContext& ctx, const QuantAttrs& attrs, const char* scale_name, const char* zp_name,
                   AxisLayout* l) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  if (scale.dtype() != DType::kFloat32)
    return Status::error(std::string(scale_name) + " has dtype " + dtype_name(scale.dtype()) +
                         "; only float32 scales are supported");
  if (scale.numel() == 1 && scale.rank() <= 1) {
    l->per_axis = false;
  } else {
    if (scale.rank() != 1)
      return Status::error(std::string(scale_name) + " " + shape_to_string(scale.shape()) +
                           " must be a scalar (per tensor) or 1-D (per axis)");
    SARAI_ASSIGN_OR_RETURN(int axis, normalize_axis(attrs.axis, x.rank()));
    if (scale.dim(0) != x.dim(axis))
      return Status::error(std::string(scale_name) + " " + shape_to_string(scale.shape()) +
                           " must have one value per index of axis " + str(axis) + " of x " +
                           shape_to_string(x.shape()));
    l->per_axis = true;
    l->channels = x.dim(axis);
    // An empty x has no element to visit, and its products could overflow
    // ([0, 2^62, 4]).
    if (has_zero_dim(x.shape())) {
      l->outer = 0;
    } else {
      for (int d = 0; d < axis; ++d) l->outer *= x.dim(d);
      for (int d = axis + 1; d < x.rank(); ++d) l->inner *= x.dim(d);
    }
  }
  if (ctx.has_input(2) && ctx.input(2).shape() != scale.shape() &&
      !(ctx.input(2).numel() == 1 && scale.numel() == 1))
    return Status::error(std::string(zp_name) + " " + shape_to_string(ctx.input(2).shape()) +
                         " must have the shape of " + scale_name + " " +
                         shape_to_string(scale.shape()));
  return Status::ok();
}

// Calls fn(i, c) for every element i of x with its scale index c.
template <class Fn>
void for_each_channel(const AxisLayout& l, int64_t numel, Fn&& fn) {
  if (!l.per_axis) {
    for (int64_t i = 0; i < numel; ++i) fn(i, 0);
    return;
  }
  int64_t i = 0;
  for (int64_t o = 0; o < l.outer; ++o)
    for (int64_t c = 0; c < l.channels; ++c)
      for (int64_t j = 0; j < l.inner; ++j) fn(i++, c);
}

// A zero-point tensor's values as int32 (0 when absent).
std::vector<int32_t> int_values(const KernelContext& ctx, int i, int64_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n), 0);
  if (!ctx.has_input(i)) return v;
  const Tensor& t = ctx.input(i);
  for (int64_t j = 0; j < n && j < t.numel(); ++j) v[static_cast<size_t>(j)] = static_cast<int32_t>(t.int_at(j));
  return v;
}

// Output dtype of MatMulInteger / ConvInteger operands: u8 or i8.
Status require_u8_or_i8(const Tensor& t, const char* name) {
  if (t.dtype() != DType::kUInt8 && t.dtype() != DType::kInt8)
    return Status::error(std::string("input ") + name + " has dtype " + dtype_name(t.dtype()) +
                         "; must be uint8 or int8");
  return Status::ok();
}

Status require_zp_dtype(const KernelContext& ctx, int i, const char* name, DType want) {
  if (!ctx.has_input(i)) return Status::ok();
  if (ctx.input(i).dtype() != want)
    return Status::error(std::string("zero point ") + name + " has dtype " +
                         dtype_name(ctx.input(i).dtype()) + " but its operand is " + dtype_name(want));
  return Status::ok();
}

// Integer tensor as int32 values, v[i] = t[i] - zp(i).
template <class Zp>
std::vector<int32_t> shifted(const Tensor& t, Zp&& zp) {
  std::vector<int32_t> v(static_cast<size_t>(t.numel()));
  const bool u8 = t.dtype() == DType::kUInt8;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const int32_t raw = u8 ? t.data<uint8_t>()[i] : t.data<int8_t>()[i];
    v[static_cast<size_t>(i)] = raw - zp(i);
  }
  return v;
}

}  // namespace

Status DynamicQuantizeLinear(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("DynamicQuantizeLinear needs input x");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32)
    return Status::error("input x has dtype " + std::string(dtype_name(x.dtype())) +
                         "; DynamicQuantizeLinear takes float32");
  Tensor& y = ctx.allocate_output(0, DType::kUInt8, x.shape());
  const QuantParams p = quantize_u8(x.data<float>(), x.numel(), y.mutable_data<uint8_t>());
  if (ctx.num_outputs() > 1) ctx.allocate_output(1, DType::kFloat32, {}).mutable_data<float>()[0] = p.scale;
  if (ctx.num_outputs() > 2)
    ctx.allocate_output(2, DType::kUInt8, {}).mutable_data<uint8_t>()[0] = p.zero_point;
  return Status::ok();
}

// QuantizeLinear also checks saturate (opset 19; it only matters for float8
// outputs, which are refused) and output_dtype (opset 21; 0 means unset).
Expected<std::shared_ptr<const void>> PrepareQuantizeLinear(const Node& node, int64_t opset) {
  SARAI_ASSIGN_OR_RETURN(QuantAttrs a, quant_attrs(node));
  if (opset >= 19) SARAI_RETURN_IF_ERROR(attr_flag(node, "saturate", true).status());
  const Attribute* od = node.attr("output_dtype");
  if (od && od->i != 0) {
    if (od->i < INT32_MIN || od->i > INT32_MAX || !dtype_from_onnx(static_cast<int32_t>(od->i), &a.output_dtype))
      return Status::error("output_dtype " + str(od->i) + " is not a supported type");
    if (!is_quant_type(a.output_dtype))
      return Status::error("output type " + std::string(dtype_name(a.output_dtype)) +
                           " is not supported (uint8, int8, uint16, int16)");
    a.has_output_dtype = true;
  }
  return prepared_data(a);
}

Expected<std::shared_ptr<const void>> PrepareDequantizeLinear(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(QuantAttrs a, quant_attrs(node));
  return prepared_data(a);
}

Status QuantizeLinear(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error("QuantizeLinear needs inputs x and y_scale");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32 && x.dtype() != DType::kInt32 && x.dtype() != DType::kFloat64 &&
      x.dtype() != DType::kFloat16 && x.dtype() != DType::kBFloat16)
    return Status::error("input x has dtype " + std::string(dtype_name(x.dtype())) +
                         "; QuantizeLinear takes float32, float16, bfloat16, float64 or int32");
  SARAI_ASSIGN_OR_RETURN(const QuantAttrs* attrs, ctx.prepared<QuantAttrs>(PrepareQuantizeLinear));
  AxisLayout l;
  SARAI_RETURN_IF_ERROR(axis_layout(ctx, *attrs, "y_scale", "y_zero_point", &l));
  DType out = attrs->output_dtype;
  if (ctx.has_input(2)) {
    const DType zt = ctx.input(2).dtype();
    if (attrs->has_output_dtype && zt != out)
      return Status::error("output_dtype " + std::string(dtype_name(out)) +
                           " differs from y_zero_point's dtype " + dtype_name(zt));
    out = zt;
  }
  if (!is_quant_type(out))
    return Status::error("output type " + std::string(dtype_name(out)) +
                         " is not supported (uint8, int8, uint16, int16)");
  const std::vector<int32_t> zp = int_values(ctx, 2, l.channels);
  const float* scale = ctx.input(1).data<float>();
  float lo, hi;
  quant_range(out, &lo, &hi);
  Tensor& y = ctx.allocate_output(0, out, x.shape());
  const bool f32 = x.dtype() == DType::kFloat32;
  if (f32 && !l.per_axis && (out == DType::kUInt8 || out == DType::kInt8)) {
    // The QDQ models' activations: the vector kernel of DynamicQuantizeLinear
    // (the same x / scale, round half to even, + zero point, saturate), in
    // parallel. int8 is the uint8 grid of zero point + 128, shifted back;
    // NaN gives 0 as below.
    const bool s8 = out == DType::kInt8;
    QuantParams p;
    p.scale = scale[0];
    p.zero_point = static_cast<uint8_t>(zp[0] + (s8 ? 128 : 0));
    uint8_t* py = static_cast<uint8_t*>(y.mutable_raw());
    quantize_u8_with(x.data<float>(), x.numel(), p, py);
    if (s8) {
      const float* px = x.data<float>();
      parallel_for(x.numel(), int64_t{1} << 15, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) py[i] = px[i] != px[i] ? uint8_t{0} : static_cast<uint8_t>(py[i] ^ 0x80u);
      });
    }
    return Status::ok();
  }
  for_each_channel(l, x.numel(), [&](int64_t i, int64_t c) {
    const float v = f32 ? x.data<float>()[i] : static_cast<float>(x.float_at(i));
    float q = std::nearbyint(v / scale[c]) + static_cast<float>(zp[static_cast<size_t>(c)]);
    q = std::isnan(q) ? 0.f : std::clamp(q, lo, hi);
    store_int(y, i, static_cast<int32_t>(q));
  });
  return Status::ok();
}

Status DequantizeLinear(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error("DequantizeLinear needs inputs x and x_scale");
  const Tensor& x = ctx.input(0);
  if (!is_quant_type(x.dtype()) && x.dtype() != DType::kInt32)
    return Status::error("input x has dtype " + std::string(dtype_name(x.dtype())) +
                         "; DequantizeLinear takes uint8, int8, uint16, int16 or int32");
  SARAI_RETURN_IF_ERROR(require_zp_dtype(ctx, 2, "x_zero_point", x.dtype()));
  SARAI_ASSIGN_OR_RETURN(const QuantAttrs* attrs, ctx.prepared<QuantAttrs>(PrepareDequantizeLinear));
  AxisLayout l;
  SARAI_RETURN_IF_ERROR(axis_layout(ctx, *attrs, "x_scale", "x_zero_point", &l));
  const std::vector<int32_t> zp = int_values(ctx, 2, l.channels);
  const float* scale = ctx.input(1).data<float>();
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, x.shape());
  float* py = y.mutable_data<float>();
  if (!l.per_axis && (x.dtype() == DType::kUInt8 || x.dtype() == DType::kInt8)) {
    // Per tensor, 8-bit: the same (x - zp) * scale, typed and in parallel.
    const float s = scale[0];
    const int32_t z = zp[0];
    const bool u8 = x.dtype() == DType::kUInt8;
    parallel_for(x.numel(), int64_t{1} << 15, [&](int64_t b, int64_t e) {
      if (u8) {
        const uint8_t* px = x.data<uint8_t>();
        for (int64_t i = b; i < e; ++i) py[i] = static_cast<float>(int32_t{px[i]} - z) * s;
      } else {
        const int8_t* px = x.data<int8_t>();
        for (int64_t i = b; i < e; ++i) py[i] = static_cast<float>(int32_t{px[i]} - z) * s;
      }
    });
    return Status::ok();
  }
  for_each_channel(l, x.numel(), [&](int64_t i, int64_t c) {
    // In int64: an int32 x minus its zero point may leave int32.
    const int64_t d = x.int_at(i) - zp[static_cast<size_t>(c)];
    py[i] = static_cast<float>(d) * scale[c];
  });
  return Status::ok();
}

Status MatMulInteger(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error("MatMulInteger needs inputs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(require_u8_or_i8(a, "A"));
  SARAI_RETURN_IF_ERROR(require_u8_or_i8(b, "B"));
  SARAI_RETURN_IF_ERROR(require_zp_dtype(ctx, 2, "a_zero_point", a.dtype()));
  SARAI_RETURN_IF_ERROR(require_zp_dtype(ctx, 3, "b_zero_point", b.dtype()));
  if (a.rank() == 0 || b.rank() == 0)
    return Status::error("MatMulInteger inputs must have rank >= 1, got A " +
                         shape_to_string(a.shape()) + " and B " + shape_to_string(b.shape()));
  Shape as = a.shape(), bs = b.shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), kb = bs[bs.size() - 2], n = bs.back();
  if (k != kb)
    return Status::error("MatMulInteger inner dimensions differ: A " + shape_to_string(a.shape()) +
                         " has K=" + str(k) + " but B " + shape_to_string(b.shape()) +
                         " has K=" + str(kb));
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Expected<Shape> batch_or = broadcast_shapes({a_batch, b_batch});
  if (!batch_or)
    return Status::error("MatMulInteger batch dims of A " + shape_to_string(a.shape()) + " and B " +
                         shape_to_string(b.shape()) + " cannot be broadcast");
  const Shape batch = *batch_or;

  // a_zero_point: scalar, per row [M], or per batch and row [..., M, 1]
  // (A's shape with K replaced by 1). b_zero_point likewise per column: [N]
  // or [..., 1, N]. zp_index maps an element of A (or B) to its zero point.
  auto zp_mode = [](const KernelContext& c, int i, const Shape& operand, bool rows, int64_t len,
                    const char* name, int* mode) -> Status {
    *mode = 0;
    if (!c.has_input(i) || c.input(i).numel() == 1) return Status::ok();
    if (operand.size() < 2)
      return Status::error(std::string(name) + " " + shape_to_string(c.input(i).shape()) +
                           " must be a scalar for a 1-D operand");
    const Shape& zs = c.input(i).shape();
    Shape per_batch = operand;
    per_batch[rows ? operand.size() - 1 : operand.size() - 2] = 1;
    if (zs.size() == 1 && zs[0] == len) {
      *mode = 1;
    } else if (zs == per_batch) {
      *mode = 2;
    } else {
      return Status::error(std::string(name) + " " + shape_to_string(zs) +
                           " must be a scalar, [" + str(len) + "] or " +
                           shape_to_string(per_batch));
    }
    return Status::ok();
  };
  int a_mode = 0, b_mode = 0;
  SARAI_RETURN_IF_ERROR(zp_mode(ctx, 2, a.shape(), true, m, "a_zero_point", &a_mode));
  SARAI_RETURN_IF_ERROR(zp_mode(ctx, 3, b.shape(), false, n, "b_zero_point", &b_mode));
  const std::vector<int32_t> azp =
      int_values(ctx, 2, ctx.has_input(2) ? ctx.input(2).numel() : 1);
  const std::vector<int32_t> bzp =
      int_values(ctx, 3, ctx.has_input(3) ? ctx.input(3).numel() : 1);
  // A element i = ((batch * M + row) * K + col): per-row index i / K.
  const std::vector<int32_t> av = shifted(a, [&](int64_t i) {
    const int64_t row = i / k;
    return azp[static_cast<size_t>(a_mode == 0 ? 0 : a_mode == 1 ? row % m : row)];
  });
  // B element i = ((batch * K + row) * N + col): per-column index col, per
  // batch index batch * N + col.
  const std::vector<int32_t> bv = shifted(b, [&](int64_t i) {
    const int64_t col = i % n, bi = i / (k * n);
    return bzp[static_cast<size_t>(b_mode == 0 ? 0 : b_mode == 1 ? col : bi * n + col)];
  });

  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  Tensor& y = ctx.allocate_output(0, DType::kInt32, out_shape);
  if (y.numel() == 0) return Status::ok();
  const int64_t nbatch = numel_of(batch);
  std::vector<int64_t> a_off(static_cast<size_t>(nbatch)), b_off(static_cast<size_t>(nbatch));
  for_each_broadcast(batch, {broadcast_strides(a_batch, batch), broadcast_strides(b_batch, batch)},
                     [&](int64_t i, const int64_t* off) {
    a_off[static_cast<size_t>(i)] = off[0] * m * k;
    b_off[static_cast<size_t>(i)] = off[1] * k * n;
  });
  int32_t* py = y.mutable_data<int32_t>();
  parallel_for(nbatch * m, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t bi = bm / m, row = bm % m;
      const int32_t* ar = av.data() + a_off[static_cast<size_t>(bi)] + row * k;
      const int32_t* bmat = bv.data() + b_off[static_cast<size_t>(bi)];
      // Row by row of B, contiguous (vectorized); uint32 arithmetic wraps
      // as the int64 sums cast to int32 would (equal modulo 2^32).
      uint32_t* acc = reinterpret_cast<uint32_t*>(py + bm * n);
      std::fill(acc, acc + n, 0u);
      for (int64_t t = 0; t < k; ++t) {
        const uint32_t at = static_cast<uint32_t>(ar[t]);
        if (at == 0) continue;
        const int32_t* br = bmat + t * n;
        for (int64_t j = 0; j < n; ++j) acc[j] += at * static_cast<uint32_t>(br[j]);
      }
    }
  });
  return Status::ok();
}

Status ConvInteger(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error("ConvInteger needs inputs x and w");
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  SARAI_RETURN_IF_ERROR(require_u8_or_i8(x, "x"));
  SARAI_RETURN_IF_ERROR(require_u8_or_i8(w, "w"));
  SARAI_RETURN_IF_ERROR(require_zp_dtype(ctx, 2, "x_zero_point", x.dtype()));
  SARAI_RETURN_IF_ERROR(require_zp_dtype(ctx, 3, "w_zero_point", w.dtype()));
  if (x.rank() < 3)
    return Status::error("input x " + shape_to_string(x.shape()) +
                         " must have rank >= 3 ([N, C, spatial...])");
  SARAI_ASSIGN_OR_RETURN(const convgeo::ConvAttrs* a, ctx.prepared<convgeo::ConvAttrs>(PrepareConv));
  const int64_t group = a->group;
  convgeo::ConvGeometry g;
  SARAI_RETURN_IF_ERROR(convgeo::resolve_conv(*a, x.shape(), w.shape(), &g));
  const int64_t batch = x.dim(0), c = x.dim(1), m = w.dim(0);
  if (ctx.has_input(2) && ctx.input(2).numel() != 1)
    return Status::error("x_zero_point " + shape_to_string(ctx.input(2).shape()) +
                         " must be a scalar (per-tensor)");
  if (ctx.has_input(3) && ctx.input(3).numel() != 1 &&
      !(ctx.input(3).rank() == 1 && ctx.input(3).dim(0) == m))
    return Status::error("w_zero_point " + shape_to_string(ctx.input(3).shape()) +
                         " must be a scalar or [" + str(m) + "] (per output channel)");
  const int32_t xzp = int_values(ctx, 2, 1)[0];
  const bool w_per_channel = ctx.has_input(3) && ctx.input(3).numel() != 1;
  const std::vector<int32_t> wzp = int_values(ctx, 3, w_per_channel ? m : 1);
  const int64_t ks = g.kernel_size(), cg = c / group, mg = m / group, kg = cg * ks;
  const std::vector<int32_t> xv = shifted(x, [&](int64_t) { return xzp; });
  const std::vector<int32_t> wv = shifted(w, [&](int64_t i) {
    return wzp[static_cast<size_t>(w_per_channel ? i / kg : 0)];
  });

  Shape out_shape = {batch, m};
  out_shape.insert(out_shape.end(), g.out.begin(), g.out.end());
  Tensor& y = ctx.allocate_output(0, DType::kInt32, out_shape);
  if (y.numel() == 0) return Status::ok();
  const std::vector<int64_t> taps = convgeo::tap_table(g);
  const int64_t in_size = g.in_size(), out_size = g.out_size();
  int32_t* py = y.mutable_data<int32_t>();
  // Per (image, group, block of kBlock output positions): the block's
  // shifted inputs unfolded into col[k][j] (k = ci * taps + r, 0 for a
  // padding tap), then per output channel acc[j] += w[k] * col[k][j], a
  // contiguous loop the compiler vectorizes. uint32 arithmetic wraps as the
  // int64 sums cast to int32 would (the same value modulo 2^32).
  constexpr int64_t kBlock = 256;
  const int64_t blocks = (out_size + kBlock - 1) / kBlock;
  parallel_for(batch * group * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint32_t> col(static_cast<size_t>(kg * kBlock)), acc(static_cast<size_t>(kBlock));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bi = task / (group * blocks), grp = task / blocks % group, o0 = task % blocks * kBlock;
      const int64_t len = std::min(kBlock, out_size - o0);
      const int32_t* xs = xv.data() + (bi * c + grp * cg) * in_size;
      for (int64_t ci = 0; ci < cg; ++ci)
        for (int64_t r = 0; r < ks; ++r) {
          uint32_t* dst = col.data() + (ci * ks + r) * kBlock;
          const int32_t* xc = xs + ci * in_size;
          for (int64_t j = 0; j < len; ++j) {
            const int64_t t = taps[static_cast<size_t>((o0 + j) * ks + r)];
            dst[j] = t >= 0 ? static_cast<uint32_t>(xc[t]) : 0u;  // pad: x - x_zp = 0
          }
        }
      for (int64_t oc = grp * mg; oc < (grp + 1) * mg; ++oc) {
        const int32_t* ws = wv.data() + oc * kg;
        uint32_t* a = acc.data();
        std::fill(a, a + len, 0u);
        for (int64_t k = 0; k < kg; ++k) {
          const uint32_t wk = static_cast<uint32_t>(ws[k]);
          if (wk == 0) continue;
          const uint32_t* src = col.data() + k * kBlock;
          for (int64_t j = 0; j < len; ++j) a[j] += wk * src[j];
        }
        int32_t* out = py + (bi * m + oc) * out_size + o0;
        for (int64_t j = 0; j < len; ++j) out[j] = static_cast<int32_t>(a[j]);
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
