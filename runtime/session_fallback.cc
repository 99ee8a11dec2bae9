// FP32 where INT8 cannot win: the rule and the rewrite (session_fallback.h).
#include "runtime/session_fallback.h"

#include <cstdlib>
#include <string_view>

#include "kernels/cpu/int8_layout.h"
#include "runtime/quantized_op.h"
#include "runtime/session.h"

namespace sarai {

namespace {

bool has_vnni(Isa isa) { return isa == Isa::kAvx2Vnni || isa == Isa::kAvx512Vnni || isa == Isa::kAmx; }

const Tensor* initializer_input(const Graph& g, const Node& n, size_t i) {
  if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
  const Value& v = g.values[static_cast<size_t>(n.inputs[i])];
  return v.is_initializer ? &v.initializer : nullptr;
}

bool has_input(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i] != kNoValue; }

// What the rewrite of one node needs, all checked: the weight as ONNX
// shapes it, and where scale[ch] applies.
struct Dequant {
  Shape ws;            // ONNX weight shape
  int64_t channels = 0;  // output channels M
  const int8_t* q = nullptr;
  const float* scale = nullptr;
  bool per_tensor = false;
  bool packed = false;  // QConv group 1: N16K4 [K = C*k..., N = M]
  int64_t group = 1;
};

// The node's weight, when the rewrite can take it; false leaves the node
// INT8 (its kernel reports whatever is malformed).
bool read_dequant(const Graph& g, const Node& n, Dequant* d) {
  if (has_input(n, qop::kResidual) || n.has_attr("activation")) return false;
  const Tensor* w = initializer_input(g, n, qop::kWeight);
  const Tensor* s = initializer_input(g, n, qop::kScale);
  if (w == nullptr || s == nullptr || w->dtype() != DType::kInt8 || s->dtype() != DType::kFloat32) return false;
  if (n.has_attr("weight_shape")) {
    const std::vector<int64_t> a = n.attr_ints("weight_shape");
    d->ws = Shape(a.begin(), a.end());
  } else {
    d->ws = w->shape();
  }
  if (d->ws.size() < 3) return false;
  for (int64_t dim : d->ws)
    if (dim < 1 || dim > (int64_t{1} << 31)) return false;
  if (!checked_numel(d->ws, sizeof(float)).has_value()) return false;
  d->group = n.attr_int("group", 1);
  if (d->group < 1) return false;
  const bool transpose = n.op_type == "QConvTranspose";
  if (transpose) {
    if (w->shape() != d->ws || d->ws[0] % d->group != 0) return false;
    d->channels = d->ws[1] * d->group;
  } else {
    d->channels = d->ws[0];
    d->packed = d->group == 1;
    const int64_t k = numel_of(d->ws) / d->channels;
    if (d->packed ? (w->rank() != 1 || w->numel() != int8::packed_size(k, d->channels)) : w->shape() != d->ws)
      return false;
  }
  if (s->rank() > 1 || (s->numel() != d->channels && s->numel() != 1)) return false;
  if (has_input(n, qop::kBias)) {
    // The float ops take a bias [M] only (QMatMul's [1, M] comes from Gemm).
    const Value& b = g.values[static_cast<size_t>(n.inputs[qop::kBias])];
    if (b.is_initializer && (b.initializer.rank() != 1 || b.initializer.dim(0) != d->channels)) return false;
  }
  d->q = w->data<int8_t>();
  d->scale = s->data<float>();
  d->per_tensor = s->numel() == 1;
  return true;
}

// W = scale[ch] * q in the float op's layout: Conv [M, C/g, k...] from the
// N16K4 panel (k = (c, taps) flattened, as quantizer/quantize_weight.cc
// packs it), ConvTranspose [C, M/g, k...] as stored, channel (c / Cg) * Mg + m.
Tensor dequantize(const Dequant& d, bool transpose) {
  Tensor t = Tensor::allocate(DType::kFloat32, d.ws);
  float* out = t.mutable_data<float>();
  const int64_t total = numel_of(d.ws);
  auto sc = [&](int64_t ch) { return d.scale[d.per_tensor ? 0 : ch]; };
  if (transpose) {
    const int64_t C = d.ws[0], Mg = d.ws[1], inner = total / (C * Mg), Cg = C / d.group;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t m = 0; m < Mg; ++m) {
        const float s = sc((c / Cg) * Mg + m);
        const int64_t base = (c * Mg + m) * inner;
        for (int64_t i = 0; i < inner; ++i) out[base + i] = s * static_cast<float>(d.q[base + i]);
      }
  } else if (d.packed) {
    const int64_t M = d.channels, K = total / M;
    for (int64_t m = 0; m < M; ++m) {
      const float s = sc(m);
      for (int64_t k = 0; k < K; ++k) out[m * K + k] = s * static_cast<float>(d.q[int8::packed_index(k, m, K)]);
    }
  } else {
    const int64_t M = d.channels, K = total / M;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t k = 0; k < K; ++k) out[m * K + k] = sc(m) * static_cast<float>(d.q[m * K + k]);
  }
  return t;
}

}  // namespace

Expected<Fp32Fallback> fp32_fallback_mode(Fp32Fallback option) {
  if (option != Fp32Fallback::kAuto) return option;
  const char* env = std::getenv("SARAI_FP32_FALLBACK");
  if (env == nullptr || *env == '\0') return option;
  const std::string_view v(env);
  if (v == "auto") return Fp32Fallback::kAuto;
  if (v == "off") return Fp32Fallback::kOff;
  if (v == "force") return Fp32Fallback::kForce;
  return Status::error("SARAI_FP32_FALLBACK='" + std::string(v) + "' is not a mode (auto, off or force)");
}

namespace {

// Every value of attribute `name` is `v` (true when it is absent).
bool all_ints(const Node& n, const char* name, int64_t v) {
  for (int64_t x : n.attr_ints_view(name))
    if (x != v) return false;
  return true;
}

}  // namespace

std::string fp32_fallback_reason(const Node& n, const Shape& ws, Isa isa, bool force) {
  if (n.domain != "sarai" || ws.size() < 3 || n.attr_int("group", 1) != 1) return "";
  if (n.op_type == "QConvTranspose") {
    // At every level: the scatter kernel loses to GEMM + copy on VNNI too.
    // The shape Fp32ConvTranspose runs: every output position reached by
    // one tap (kernel = strides, dilation 1, no padding, output_padding or
    // output_shape).
    const auto strides = n.attr_ints_view("strides");
    if (strides.size() != ws.size() - 2 || !all_ints(n, "pads", 0) || !all_ints(n, "dilations", 1) ||
        !all_ints(n, "output_padding", 0) || n.has_attr("output_shape"))
      return "";
    for (size_t i = 2; i < ws.size(); ++i)
      if (ws[i] != strides[i - 2]) return "";
    return "ConvTranspose: the INT8 scatter kernel is slower than GEMM + copy";
  }
  if (n.op_type != "QConv") return "";
  const bool vnni = !force && has_vnni(isa);
  bool pointwise = all_ints(n, "strides", 1) && all_ints(n, "pads", 0);
  for (size_t i = 2; i < ws.size(); ++i) pointwise = pointwise && ws[i] == 1;
  if (pointwise) {
    const int64_t macs = ws[0] * ws[1];  // per output position: M x C
    const int64_t bound = vnni ? kPointwiseMaxMacsVnni : kPointwiseMaxMacs;
    if (macs > bound) return "";
    return "1x1 conv with C x M = " + std::to_string(macs) + " <= " + std::to_string(bound) +
           " MACs per position: quantizing and transposing X cost as much as the MACs";
  }
  // Any other group-1 conv (strides, pads, dilations): Fp32Conv runs it
  // through Conv's im2col path.
  const int64_t k = numel_of(ws) / ws[0];  // C x kernel taps
  const int64_t bound = vnni ? kSmallKMaxKVnni : kSmallKMaxK;
  if (k > bound) return "";
  return "conv with K = C x taps = " + std::to_string(k) + " <= " + std::to_string(bound) +
         ": quantizing X and its im2col cost as much as the MACs";
}

int apply_fp32_fallback(Graph& g, Fp32Fallback mode, uint64_t* fp32_bytes) {
  *fp32_bytes = 0;
  if (mode == Fp32Fallback::kOff) return 0;
  const Isa isa = max_isa();
  const bool force = mode == Fp32Fallback::kForce;
  int rewritten = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (n.domain != "sarai" || (n.op_type != "QConv" && n.op_type != "QConvTranspose")) continue;
    Dequant d;
    if (!read_dequant(g, n, &d)) continue;
    if (fp32_fallback_reason(n, d.ws, isa, force).empty()) continue;
    const uint64_t bytes = static_cast<uint64_t>(numel_of(d.ws)) * sizeof(float);
    if (bytes > kMaxNodeFp32Bytes || *fp32_bytes + bytes > kMaxFp32Bytes) continue;
    const bool transpose = n.op_type == "QConvTranspose";
    const std::string wname = g.fresh_name(g.values[static_cast<size_t>(n.inputs[qop::kWeight])].name + ".fp32");
    Tensor wf = dequantize(d, transpose);
    const int vid = g.add_value(wname);
    g.values[static_cast<size_t>(vid)].set_initializer(std::move(wf));
    Node& node = g.nodes[i];
    std::vector<int> inputs = {node.inputs[qop::kX], vid};
    if (has_input(node, qop::kBias)) inputs.push_back(node.inputs[qop::kBias]);
    node.inputs = std::move(inputs);
    node.op_type = transpose ? "Fp32ConvTranspose" : "Fp32Conv";
    node.attrs.erase("x_min");
    node.attrs.erase("x_max");
    node.attrs.erase("x_per_channel");
    node.attrs.erase("weight_shape");
    *fp32_bytes += bytes;
    ++rewritten;
  }
  return rewritten;
}

}  // namespace sarai
