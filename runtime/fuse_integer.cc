// Pre-quantized ONNX ops (quantize_dynamic's ConvInteger / MatMulInteger
// chains) onto the runtime's INT8 ops QConv / QMatMul (runtime/fuse.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <utility>
#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qref.h"
#include "kernels/cpu/quantize_activations.h"
#include "runtime/fuse.h"
#include "runtime/quantized_op.h"

namespace sarai {
namespace {

bool present(const Node& n, size_t i) { return i < n.inputs.size() && n.inputs[i] != kNoValue; }

bool is_op(const Node& n, const char* op) { return n.domain.empty() && n.op_type == op; }

const Tensor* initializer(const Graph& g, int v) {
  if (v == kNoValue) return nullptr;
  const Value& val = g.values[static_cast<size_t>(v)];
  return val.is_initializer ? &val.initializer : nullptr;
}

bool is_output(const Graph& g, int v) { return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end(); }

// readers[v] = the live nodes reading value v (once per node).
std::vector<std::vector<int>> readers_of(const Graph& g, const std::vector<bool>& dead) {
  std::vector<std::vector<int>> r(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (dead[i]) continue;
    for (int v : g.nodes[i].inputs)
      if (v != kNoValue && (r[static_cast<size_t>(v)].empty() || r[static_cast<size_t>(v)].back() != static_cast<int>(i)))
        r[static_cast<size_t>(v)].push_back(static_cast<int>(i));
  }
  return r;
}

// The one reader of v when v is not a graph output and that reader is the
// default-domain op `op` with one output; -1 otherwise.
int single_reader(const Graph& g, const std::vector<std::vector<int>>& readers, int v, const char* op) {
  if (v == kNoValue || is_output(g, v) || readers[static_cast<size_t>(v)].size() != 1) return -1;
  const int c = readers[static_cast<size_t>(v)][0];
  const Node& n = g.nodes[static_cast<size_t>(c)];
  return is_op(n, op) && n.outputs.size() == 1 && n.outputs[0] != kNoValue ? c : -1;
}

// The operand of a two-input node that is not v (kNoValue if v is not one
// of them, or both).
int other_operand(const Node& n, int v) {
  if (n.inputs.size() != 2 || n.inputs[0] == n.inputs[1]) return kNoValue;
  if (n.inputs[0] == v) return n.inputs[1];
  if (n.inputs[1] == v) return n.inputs[0];
  return kNoValue;
}

// An integer tensor's element i as int32 (uint8 or int8).
int32_t int_at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kUInt8 ? int32_t{t.data<uint8_t>()[i]} : int32_t{t.data<int8_t>()[i]};
}

// One matched ConvInteger / MatMulInteger, all checked.
struct Match {
  bool conv = false;
  int dql = -1, integer_op = -1, cast = -1, scale_mul = -1, out_mul = -1;
  int scale_view = -1;              // a Reshape / Unsqueeze of the [M] scale, or -1
  const Tensor* w = nullptr;       // uint8 / int8, Conv [M, C/g, k...], MatMul [K, N]
  const Tensor* w_zp = nullptr;    // null (zero), one value or one per channel
  const Tensor* w_scale = nullptr;  // float32: one value or one per channel
  int64_t channels = 0, K = 0;     // output channels; reduction per channel
  // The weight's layout: [channels, K] (Conv, Gemm with transB) or [K, channels].
  bool channel_major = false;
};

// w_scale's shape puts its values on the output channel axis of the op's
// result, whose rank is out_rank (Conv: axis 1; MatMul: the last one), or
// it holds one value whose broadcast keeps the result's shape.
bool scale_broadcasts_per_channel(const Tensor& s, int64_t channels, size_t out_rank, bool conv) {
  const size_t rank = static_cast<size_t>(s.rank());
  if (s.numel() == 1) return rank <= out_rank;
  if (s.numel() != channels) return false;
  if (!conv) return rank == 1;
  // [M, 1, ..., 1] (rank out_rank - 1) or [1, M, 1, ..., 1] (rank out_rank).
  if (rank != out_rank - 1 && rank != out_rank) return false;
  const size_t axis = rank == out_rank ? 1 : 0;
  for (size_t i = 0; i < rank; ++i)
    if (s.dim(static_cast<int>(i)) != (i == axis ? channels : 1)) return false;
  return true;
}

// A Conv's per-channel scale given as a vector [M] and put on the channel
// axis by a Reshape (constant shape) or an Unsqueeze (constant axes) whose
// result has the output's rank (or one less): the value reshaped (the
// scale Mul's [M] output), with *node the Reshape / Unsqueeze; kNoValue
// when s is not such a view.
int channel_view_of(const Graph& g, const std::vector<bool>& dead, int s, int64_t channels, size_t out_rank, int* node) {
  const int r = g.values[static_cast<size_t>(s)].producer;
  if (r < 0 || dead[static_cast<size_t>(r)] || is_output(g, s)) return kNoValue;
  const Node& n = g.nodes[static_cast<size_t>(r)];
  const bool reshape = is_op(n, "Reshape"), unsqueeze = is_op(n, "Unsqueeze");
  if (!(reshape || unsqueeze) || n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0] == kNoValue) return kNoValue;
  Shape view;
  if (reshape) {
    const Tensor* shape = n.inputs.size() == 2 ? initializer(g, n.inputs[1]) : nullptr;
    if (shape == nullptr || shape->dtype() != DType::kInt64 || shape->rank() != 1 || shape->numel() > 8) return kNoValue;
    for (int64_t j = 0; j < shape->numel(); ++j) {
      const int64_t d = shape->data<int64_t>()[j];
      view.push_back(d == -1 ? channels : d);  // -1 (or M) is the one non-1 dim below
    }
  } else {
    std::vector<int64_t> axes;
    if (n.inputs.size() == 2) {
      const Tensor* a = initializer(g, n.inputs[1]);
      if (a == nullptr || a->dtype() != DType::kInt64 || a->rank() != 1) return kNoValue;
      axes.assign(a->data<int64_t>(), a->data<int64_t>() + a->numel());
    } else if (n.inputs.size() == 1) {
      const Attribute* a = n.find_attr("axes");
      if (a == nullptr || a->kind != Attribute::Kind::kInts) return kNoValue;
      axes = a->ints;
    } else {
      return kNoValue;
    }
    const int64_t rank = static_cast<int64_t>(axes.size()) + 1;
    if (rank > 8) return kNoValue;
    view.assign(static_cast<size_t>(rank), 1);
    std::vector<bool> inserted(static_cast<size_t>(rank), false);
    for (int64_t a : axes) {
      if (a < 0) a += rank;
      if (a < 0 || a >= rank || inserted[static_cast<size_t>(a)]) return kNoValue;
      inserted[static_cast<size_t>(a)] = true;
    }
    for (int64_t j = 0; j < rank; ++j)
      if (!inserted[static_cast<size_t>(j)]) view[static_cast<size_t>(j)] = channels;
  }
  // [M, 1, ..., 1] (rank out_rank - 1) or [1, M, 1, ..., 1] (rank out_rank).
  if (view.size() != out_rank - 1 && view.size() != out_rank) return kNoValue;
  const size_t axis = view.size() == out_rank ? 1 : 0;
  for (size_t j = 0; j < view.size(); ++j)
    if (view[j] != (j == axis ? channels : 1)) return kNoValue;
  *node = r;
  return n.inputs[0];
}

bool match(const Graph& g, const std::vector<std::vector<int>>& readers, const std::vector<bool>& dead, size_t i,
           Match* m) {
  const Node& op = g.nodes[i];
  m->conv = is_op(op, "ConvInteger");
  if (dead[i] || !(m->conv || is_op(op, "MatMulInteger"))) return false;
  if (op.inputs.size() < 3 || op.inputs.size() > 4 || op.outputs.size() != 1 || !present(op, 0) || !present(op, 2))
    return false;
  m->integer_op = static_cast<int>(i);
  // xq and x_zp from one DynamicQuantizeLinear.
  const int xq = op.inputs[0];
  m->dql = g.values[static_cast<size_t>(xq)].producer;
  if (m->dql < 0 || dead[static_cast<size_t>(m->dql)]) return false;
  const Node& dql = g.nodes[static_cast<size_t>(m->dql)];
  if (!is_op(dql, "DynamicQuantizeLinear") || dql.inputs.size() != 1 || dql.inputs[0] == kNoValue ||
      dql.outputs.size() != 3 || dql.outputs[0] != xq || dql.outputs[1] == kNoValue || dql.outputs[2] != op.inputs[2])
    return false;
  // The weight and its zero point: constants of one integer type.
  m->w = initializer(g, op.inputs[1]);
  if (m->w == nullptr || (m->w->dtype() != DType::kUInt8 && m->w->dtype() != DType::kInt8)) return false;
  const Shape& ws = m->w->shape();
  if (m->conv ? ws.size() < 3 : ws.size() != 2) return false;
  for (int64_t d : ws)
    if (d < 1) return false;
  if (!checked_numel(ws, sizeof(float)).has_value()) return false;
  m->channels = m->conv ? ws[0] : ws[1];
  m->channel_major = m->conv;
  m->K = m->w->numel() / m->channels;
  if (m->K > kernels::qref::kMaxReduction) return false;  // past the INT8 ops' int32 bound; the plain ops take it
  if (m->conv && op.attr_int("group", 1) < 1) return false;
  if (present(op, 3)) {
    m->w_zp = initializer(g, op.inputs[3]);
    if (m->w_zp == nullptr || m->w_zp->dtype() != m->w->dtype() || m->w_zp->rank() > 1 ||
        (m->w_zp->numel() != 1 && m->w_zp->numel() != m->channels))
      return false;
  }
  // Cast(to = FLOAT), then Mul by x_scale * w_scale.
  m->cast = single_reader(g, readers, op.outputs[0], "Cast");
  if (m->cast < 0) return false;
  const Node& cast = g.nodes[static_cast<size_t>(m->cast)];
  if (cast.attr_int("to", 0) != 1 || cast.inputs.size() != 1) return false;
  m->out_mul = single_reader(g, readers, cast.outputs[0], "Mul");
  if (m->out_mul < 0) return false;
  int s = other_operand(g.nodes[static_cast<size_t>(m->out_mul)], cast.outputs[0]);
  if (s == kNoValue) return false;
  // A Conv's per-channel scale [M] (x_scale * w_scale[M]) viewed as [1, M, 1, 1].
  bool viewed = false;
  if (m->conv) {
    const int u = channel_view_of(g, dead, s, m->channels, ws.size(), &m->scale_view);
    if (u != kNoValue) s = u, viewed = true;
  }
  m->scale_mul = g.values[static_cast<size_t>(s)].producer;
  if (m->scale_mul < 0 || dead[static_cast<size_t>(m->scale_mul)]) return false;
  const Node& smul = g.nodes[static_cast<size_t>(m->scale_mul)];
  if (!is_op(smul, "Mul") || smul.outputs.size() != 1) return false;
  m->w_scale = initializer(g, other_operand(smul, dql.outputs[1]));
  if (m->w_scale == nullptr || m->w_scale->dtype() != DType::kFloat32) return false;
  const size_t out_rank = m->conv ? ws.size() : 0;  // MatMul: any rank >= 1 (rank-1 scales only)
  if (viewed) {
    // The view's input is the scale Mul's product x_scale * w_scale: [M]
    // exactly when w_scale is (x_scale is DynamicQuantizeLinear's scalar).
    if (m->w_scale->rank() != 1 || m->w_scale->numel() != m->channels) return false;
  } else if (!scale_broadcasts_per_channel(*m->w_scale, m->channels, m->conv ? out_rank : 1, m->conv)) {
    return false;
  }
  for (int64_t c = 0; c < m->w_scale->numel(); ++c)
    if (!std::isfinite(m->w_scale->data<float>()[c])) return false;
  return true;
}

int add_initializer(Graph& g, const std::string& base, Tensor t) {
  const int vid = g.add_value(g.fresh_name(base));
  g.values[static_cast<size_t>(vid)].set_initializer(std::move(t));
  return vid;
}

// The s8 weight (packed N16K4 unless a grouped Conv), per-channel scales and
// weight sums of the float weight (Wq - w_zp) * w_scale, quantized as
// `sarai-rt convert` does (q = int8::quantize_s8(w, 1 / scale), scale =
// max |w| / 127 per output channel, 1 for an all-zero channel), except that
// a channel whose max |Wq - w_zp| is at most 127 keeps |w_scale| as its
// scale: its s8 weights are then exactly ±(Wq - w_zp), no rounding added.
struct Prepared {
  Tensor q, scale, wsum;
};

Prepared prepare_weight(const Match& m, bool packed) {
  const int64_t N = m.channels, K = m.K;
  Prepared p;
  // Plain (grouped Conv): the ONNX weight shape, as the kernel checks.
  p.q = packed ? Tensor::allocate(DType::kInt8, {int8::packed_size(K, N)}) : Tensor::allocate(DType::kInt8, m.w->shape());
  p.scale = Tensor::allocate(DType::kFloat32, {N});
  p.wsum = Tensor::allocate(DType::kInt32, {N});
  int8_t* q = p.q.mutable_data<int8_t>();
  float* scale = p.scale.mutable_data<float>();
  int32_t* wsum = p.wsum.mutable_data<int32_t>();
  if (packed) std::fill(q, q + p.q.numel(), int8_t{0});  // the K and N padding
  // Element k of channel n in Wq: Conv [M, K] rows, MatMul [K, N] columns.
  auto src = [&](int64_t n, int64_t k) { return m.channel_major ? n * K + k : k * N + n; };
  for (int64_t n = 0; n < N; ++n) {
    const int32_t zp = m.w_zp == nullptr ? 0 : int_at(*m.w_zp, m.w_zp->numel() == 1 ? 0 : n);
    const float s = m.w_scale->data<float>()[m.w_scale->numel() == 1 ? 0 : n];
    int32_t amax = 0;
    for (int64_t k = 0; k < K; ++k) amax = std::max(amax, std::abs(int_at(*m.w, src(n, k)) - zp));
    // A channel whose integers already fit in ±127 keeps its scale, and
    // its weights stay exact (Wq - w_zp); only wider ones are rescaled.
    const float a = static_cast<float>(amax) * std::fabs(s);
    const float cs = !(a > 0.f && std::isfinite(a)) ? 1.f : amax <= 127 ? std::fabs(s) : a / 127.f;
    const float inv = 1.f / cs;
    int32_t sum = 0;
    for (int64_t k = 0; k < K; ++k) {
      const float w = static_cast<float>(int_at(*m.w, src(n, k)) - zp) * s;
      const int8_t v = int8::quantize_s8(w, inv);
      q[packed ? int8::packed_index(k, n, K) : n * K + k] = v;
      sum += v;
    }
    scale[n] = cs;
    wsum[n] = sum;
  }
  return p;
}

// The bias of a Conv's following Add(y, b) when b = Reshape(bias [M],
// [1, -1 or M, 1, ...]) of constants, that shape having the output's rank.
int reshaped_bias(const Graph& g, int b, int64_t channels, size_t out_rank) {
  const int r = b == kNoValue ? -1 : g.values[static_cast<size_t>(b)].producer;
  if (r < 0) return kNoValue;
  const Node& reshape = g.nodes[static_cast<size_t>(r)];
  if (!is_op(reshape, "Reshape") || reshape.inputs.size() != 2 || reshape.outputs.size() != 1) return kNoValue;
  const Tensor* bias = initializer(g, reshape.inputs[0]);
  const Tensor* shape = initializer(g, reshape.inputs[1]);
  if (bias == nullptr || shape == nullptr || bias->dtype() != DType::kFloat32 || bias->rank() != 1 ||
      bias->dim(0) != channels || shape->dtype() != DType::kInt64 || shape->rank() != 1 ||
      shape->numel() != static_cast<int64_t>(out_rank))
    return kNoValue;
  const int64_t* d = shape->data<int64_t>();
  for (size_t i = 0; i < out_rank; ++i)
    if (i == 1 ? (d[i] != -1 && d[i] != channels) : d[i] != 1) return kNoValue;
  return reshape.inputs[0];
}


// Node i is dead when none of its outputs is read or a graph output.
bool unread(const Graph& g, const std::vector<std::vector<int>>& readers, size_t i) {
  for (int o : g.nodes[i].outputs)
    if (o != kNoValue && (is_output(g, o) || !readers[static_cast<size_t>(o)].empty())) return false;
  return true;
}

}  // namespace

int fuse_integer_ops(Graph& g) {
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<int> maybe_unread;  // scale Muls, bias Reshapes, DQLs the rewrites stopped reading
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    // Readers are recomputed per candidate: each rewrite kills nodes (one
    // pass over the graph per ConvInteger / MatMulInteger node).
    if (!is_op(g.nodes[i], "ConvInteger") && !is_op(g.nodes[i], "MatMulInteger")) continue;
    const auto readers = readers_of(g, dead);
    Match m;
    if (!match(g, readers, dead, i, &m)) continue;
    const Node& op = g.nodes[i];
    const bool packed = !m.conv || op.attr_int("group", 1) == 1;
    Prepared p = prepare_weight(m, packed);
    const Shape ws = m.w->shape();  // m's tensors live in g.values, which grows below
    m.w = m.w_zp = m.w_scale = nullptr;
    const std::string base = g.values[static_cast<size_t>(op.inputs[1])].name;
    const int wq = add_initializer(g, base + ".s8", std::move(p.q));
    const int sc = add_initializer(g, base + ".s8_scale", std::move(p.scale));
    const int sum = add_initializer(g, base + ".s8_wsum", std::move(p.wsum));
    const Node& intop = g.nodes[i];
    const Node& dql = g.nodes[static_cast<size_t>(m.dql)];
    Node& out = g.nodes[static_cast<size_t>(m.out_mul)];
    out.name = intop.name + "+" + out.name;
    out.domain = "sarai";
    out.inputs = {dql.inputs[0], wq, sc, sum};
    if (m.conv) {
      out.op_type = "QConv";
      out.attrs = intop.attrs;
      out.attrs["weight_shape"] = Attribute::of_ints(std::vector<int64_t>(ws.begin(), ws.end()));
    } else {
      out.op_type = "QMatMul";
      out.attrs.clear();
      out.attrs["K"] = Attribute::of_int(m.K);
      out.attrs["N"] = Attribute::of_int(m.channels);
    }
    dead[i] = dead[static_cast<size_t>(m.cast)] = true;
    if (m.scale_view >= 0) maybe_unread.push_back(m.scale_view);
    maybe_unread.push_back(m.scale_mul);
    // A Conv's bias Add into the QConv.
    if (m.conv) {
      const auto now = readers_of(g, dead);
      const int y = out.outputs[0];
      const int add = single_reader(g, now, y, "Add");
      if (add >= 0) {
        Node& a = g.nodes[static_cast<size_t>(add)];
        const int b = other_operand(a, y);
        const int bias = reshaped_bias(g, b, m.channels, ws.size());
        if (bias != kNoValue) {
          out.inputs.push_back(bias);
          out.outputs = a.outputs;
          out.name += "+" + a.name;
          dead[static_cast<size_t>(add)] = true;
          maybe_unread.push_back(g.values[static_cast<size_t>(b)].producer);
        }
      }
    }
    maybe_unread.push_back(m.dql);
    ++fused;
  }
  if (fused == 0) return 0;
  // Until nothing changes: the scale views, then the scale Muls and bias
  // Reshapes they read, then the DQLs whose x_scale those read.
  for (bool changed = true; changed;) {
    changed = false;
    const auto readers = readers_of(g, dead);
    for (int n : maybe_unread)
      if (!dead[static_cast<size_t>(n)] && unread(g, readers, static_cast<size_t>(n)))
        dead[static_cast<size_t>(n)] = changed = true;
  }
  remove_nodes(g, dead);
  return fused;
}

// ---- QDQ form (quantize_static(quant_format=QDQ)): DequantizeLinear of
// constant integer weights into Conv / MatMul / Gemm whose activation comes
// through QuantizeLinear -> DequantizeLinear with a constant scale.
namespace {

// A scalar float32 initializer's value (finite, > 0), else nullopt.
std::optional<float> positive_scalar(const Graph& g, int v) {
  const Tensor* t = initializer(g, v);
  if (t == nullptr || t->dtype() != DType::kFloat32 || t->numel() != 1 || t->rank() > 1) return std::nullopt;
  const float f = t->data<float>()[0];
  if (!(std::isfinite(f) && f > 0.f)) return std::nullopt;
  return f;
}

// A zero point input of a Quantize/DequantizeLinear: dtype (uint8 or int8)
// and value; absent = uint8 0. false when not a one-value u8/s8 initializer.
bool scalar_zero_point(const Graph& g, const Node& n, DType* type, int32_t* zp) {
  if (!present(n, 2)) {
    *type = DType::kUInt8;
    *zp = 0;
    return true;
  }
  const Tensor* t = initializer(g, n.inputs[2]);
  if (t == nullptr || (t->dtype() != DType::kUInt8 && t->dtype() != DType::kInt8) || t->numel() != 1 || t->rank() > 1)
    return false;
  *type = t->dtype();
  *zp = int_at(*t, 0);
  return true;
}

// The activation side: v = DequantizeLinear(QuantizeLinear(x, s, z), s, z)
// with one constant scale and zero point on both (u8 or s8). Gives x, the
// two nodes and the u8 parameters of the same grid (an s8 grid is the u8
// one shifted by 128).
struct QdqInput {
  int x = kNoValue, q = -1, dq = -1;
  kernels::QuantParams params;
};

bool match_qdq_input(const Graph& g, const std::vector<bool>& dead, int v, QdqInput* in) {
  in->dq = v == kNoValue ? -1 : g.values[static_cast<size_t>(v)].producer;
  if (in->dq < 0 || dead[static_cast<size_t>(in->dq)]) return false;
  const Node& dq = g.nodes[static_cast<size_t>(in->dq)];
  if (!is_op(dq, "DequantizeLinear") || dq.outputs.size() != 1 || !present(dq, 0) || !present(dq, 1) ||
      dq.attr_int("block_size", 0) != 0)
    return false;
  in->q = g.values[static_cast<size_t>(dq.inputs[0])].producer;
  if (in->q < 0 || dead[static_cast<size_t>(in->q)]) return false;
  const Node& q = g.nodes[static_cast<size_t>(in->q)];
  if (!is_op(q, "QuantizeLinear") || q.outputs.size() != 1 || !present(q, 0) || !present(q, 1) ||
      q.attr_int("block_size", 0) != 0 || q.attr_int("output_dtype", 0) != 0)
    return false;
  const std::optional<float> sq = positive_scalar(g, q.inputs[1]), sd = positive_scalar(g, dq.inputs[1]);
  DType tq, td;
  int32_t zq, zd;
  if (!sq || !sd || *sq != *sd || !scalar_zero_point(g, q, &tq, &zq) || !scalar_zero_point(g, dq, &td, &zd) ||
      tq != td || zq != zd)
    return false;
  // x is float32: QuantizeLinear's x has its scale's type (opset 19+), and
  // the scale is float32.
  in->x = q.inputs[0];
  in->params.scale = *sq;
  in->params.zero_point = static_cast<uint8_t>(tq == DType::kInt8 ? zq + 128 : zq);
  return true;
}

// The static range [x_min, x_max] for QConv / QMatMul (which take their
// static quantization as a range) whose choose_u8_params gives exactly `p`:
// [-z s, (255 - z) s] with each end moved by up to 8 ulps until the float
// rounding of (hi - lo) / 255 and of -lo / scale lands on s and z (found for
// all but ~0.4 % of random (s, z)); otherwise that range itself, whose
// scale is then within an ulp or two of s (a value exactly between two
// steps may round the other way). nullopt for a scale the range cannot
// represent.
std::optional<std::pair<float, float>> range_for(kernels::QuantParams p) {
  const float lo0 = p.zero_point == 0 ? 0.f : -static_cast<float>(p.zero_point) * p.scale;
  const float hi0 = p.zero_point == 255 ? 0.f : static_cast<float>(255 - p.zero_point) * p.scale;
  if (!std::isfinite(lo0) || !std::isfinite(hi0) || !(hi0 > lo0)) return std::nullopt;
  auto moved = [](float v, int ulps) {
    for (; ulps > 0; --ulps) v = std::nextafter(v, INFINITY);
    for (; ulps < 0; ++ulps) v = std::nextafter(v, -INFINITY);
    return v;
  };
  for (int i = 0; i <= 16; ++i) {
    const int dl = p.zero_point == 0 ? 0 : (i % 2 ? -(i + 1) / 2 : i / 2);  // 0, -1, 1, -2, 2, ...
    for (int j = 0; j <= 16; ++j) {
      const int dh = p.zero_point == 255 ? 0 : (j % 2 ? -(j + 1) / 2 : j / 2);
      const float lo = moved(lo0, dl), hi = moved(hi0, dh);
      const kernels::QuantParams got = kernels::choose_u8_params(lo, hi);
      if (got.scale == p.scale && got.zero_point == p.zero_point) return std::make_pair(lo, hi);
    }
  }
  return std::make_pair(lo0, hi0);
}

// The weight side: DequantizeLinear(Wq, w_scale, w_zp) of initializers, per
// tensor or per axis along `channel_axis` of the 2-D or N-D weight.
bool match_qdq_weight(const Graph& g, const std::vector<bool>& dead, int v, int channel_axis, Match* m, int* dq_node) {
  *dq_node = v == kNoValue ? -1 : g.values[static_cast<size_t>(v)].producer;
  if (*dq_node < 0 || dead[static_cast<size_t>(*dq_node)]) return false;
  const Node& dq = g.nodes[static_cast<size_t>(*dq_node)];
  if (!is_op(dq, "DequantizeLinear") || dq.outputs.size() != 1 || !present(dq, 0) || !present(dq, 1) ||
      dq.attr_int("block_size", 0) != 0)
    return false;
  m->w = initializer(g, dq.inputs[0]);
  if (m->w == nullptr || (m->w->dtype() != DType::kUInt8 && m->w->dtype() != DType::kInt8)) return false;
  const Shape& ws = m->w->shape();
  if (ws.size() < 2 || channel_axis >= static_cast<int>(ws.size())) return false;
  for (int64_t d : ws)
    if (d < 1) return false;
  if (!checked_numel(ws, sizeof(float)).has_value()) return false;
  m->channels = ws[static_cast<size_t>(channel_axis)];
  m->K = m->w->numel() / m->channels;
  if (m->K > kernels::qref::kMaxReduction) return false;
  m->w_scale = initializer(g, dq.inputs[1]);
  if (m->w_scale == nullptr || m->w_scale->dtype() != DType::kFloat32) return false;
  const bool per_axis = !(m->w_scale->numel() == 1 && m->w_scale->rank() <= 1);
  if (per_axis) {
    int64_t axis = dq.attr_int("axis", 1);
    if (axis < 0) axis += static_cast<int64_t>(ws.size());
    if (axis != channel_axis || m->w_scale->rank() != 1 || m->w_scale->numel() != m->channels) return false;
  }
  for (int64_t c = 0; c < m->w_scale->numel(); ++c)
    if (!std::isfinite(m->w_scale->data<float>()[c])) return false;
  m->w_zp = nullptr;
  if (present(dq, 2)) {
    m->w_zp = initializer(g, dq.inputs[2]);
    if (m->w_zp == nullptr || m->w_zp->dtype() != m->w->dtype() || m->w_zp->shape() != m->w_scale->shape()) return false;
  }
  return true;
}

// A float bias [channels] (or [1, channels] for Gemm): a float32 initializer
// of that shape, or DequantizeLinear(int32 initializer [channels], scale
// per tensor or [channels], zero point 0 or absent) computed here as the op
// computes it. kNoValue-free result in *out; false when neither.
bool qdq_bias(const Graph& g, const std::vector<bool>& dead, int v, int64_t channels, bool gemm, Tensor* out,
              int* dq_node) {
  *dq_node = -1;
  auto shape_ok = [&](const Shape& s) {
    return (s.size() == 1 && s[0] == channels) || (gemm && s.size() == 2 && s[0] == 1 && s[1] == channels);
  };
  if (const Tensor* b = initializer(g, v)) {
    if (b->dtype() != DType::kFloat32 || !shape_ok(b->shape())) return false;
    *out = *b;
    return true;
  }
  const int p = g.values[static_cast<size_t>(v)].producer;
  if (p < 0 || dead[static_cast<size_t>(p)]) return false;
  const Node& dq = g.nodes[static_cast<size_t>(p)];
  if (!is_op(dq, "DequantizeLinear") || dq.outputs.size() != 1 || !present(dq, 0) || !present(dq, 1)) return false;
  const Tensor* q = initializer(g, dq.inputs[0]);
  const Tensor* sc = initializer(g, dq.inputs[1]);
  if (q == nullptr || sc == nullptr || q->dtype() != DType::kInt32 || !shape_ok(q->shape()) ||
      sc->dtype() != DType::kFloat32 || !(sc->numel() == 1 || (sc->rank() == 1 && sc->numel() == channels)))
    return false;
  if (sc->numel() != 1 && dq.attr_int("axis", 1) != static_cast<int64_t>(q->rank()) - 1 && dq.attr_int("axis", 1) != -1)
    return false;
  if (present(dq, 2)) {
    const Tensor* z = initializer(g, dq.inputs[2]);
    if (z == nullptr || z->dtype() != DType::kInt32) return false;
    for (int64_t i = 0; i < z->numel(); ++i)
      if (z->data<int32_t>()[i] != 0) return false;
  }
  *out = Tensor::allocate(DType::kFloat32, q->shape());
  for (int64_t c = 0; c < channels; ++c)
    out->mutable_data<float>()[c] =
        static_cast<float>(int64_t{q->data<int32_t>()[c]}) * sc->data<float>()[sc->numel() == 1 ? 0 : c];
  *dq_node = p;
  return true;
}

// QLinearConv / QLinearMatMul between QuantizeLinear and a constant weight:
// xq = QuantizeLinear(x, s, z) with s, z the op's x_scale and x_zero_point
// (equal constants). Fills in (x and the u8 grid), the weight match and the
// float bias (B * x_scale * w_scale[m]).
bool match_qlinear(const Graph& g, const std::vector<bool>& dead, size_t i, QdqInput* in, Match* m, Tensor* bias) {
  const Node& op = g.nodes[i];
  const bool conv = is_op(op, "QLinearConv");
  if (!conv && !is_op(op, "QLinearMatMul")) return false;
  if (op.outputs.size() != 1 || op.inputs.size() < 8 || op.inputs.size() > (conv ? 9u : 8u)) return false;
  for (int k = 0; k < 8; ++k)
    if (!present(op, static_cast<size_t>(k))) return false;
  if (conv && op.attr_int("group", 1) < 1) return false;
  in->q = g.values[static_cast<size_t>(op.inputs[0])].producer;
  if (in->q < 0 || dead[static_cast<size_t>(in->q)]) return false;
  const Node& q = g.nodes[static_cast<size_t>(in->q)];
  if (!is_op(q, "QuantizeLinear") || q.outputs.size() != 1 || !present(q, 0) || !present(q, 1) ||
      q.attr_int("block_size", 0) != 0 || q.attr_int("output_dtype", 0) != 0)
    return false;
  const std::optional<float> sq = positive_scalar(g, q.inputs[1]), so = positive_scalar(g, op.inputs[1]);
  const Tensor* zo = initializer(g, op.inputs[2]);
  DType tq;
  int32_t zq;
  if (!sq || !so || *sq != *so || !scalar_zero_point(g, q, &tq, &zq) || zo == nullptr || zo->dtype() != tq ||
      zo->numel() != 1 || int_at(*zo, 0) != zq)
    return false;
  if (!positive_scalar(g, op.inputs[6]) || initializer(g, op.inputs[7]) == nullptr) return false;
  in->x = q.inputs[0];
  in->params.scale = *sq;
  in->params.zero_point = static_cast<uint8_t>(tq == DType::kInt8 ? zq + 128 : zq);
  // The weight: constants, per tensor or per output channel.
  m->conv = conv;
  m->w = initializer(g, op.inputs[3]);
  m->w_scale = initializer(g, op.inputs[4]);
  m->w_zp = initializer(g, op.inputs[5]);
  if (m->w == nullptr || m->w_scale == nullptr || m->w_zp == nullptr) return false;
  if ((m->w->dtype() != DType::kUInt8 && m->w->dtype() != DType::kInt8) || m->w_zp->dtype() != m->w->dtype() ||
      m->w_scale->dtype() != DType::kFloat32)
    return false;
  const Shape& ws = m->w->shape();
  if (conv ? ws.size() < 3 : ws.size() != 2) return false;
  for (int64_t d : ws)
    if (d < 1) return false;
  if (!checked_numel(ws, sizeof(float)).has_value()) return false;
  m->channels = conv ? ws[0] : ws[1];
  m->channel_major = conv;
  m->K = m->w->numel() / m->channels;
  if (m->K > kernels::qref::kMaxReduction) return false;
  for (const Tensor* t : {m->w_scale, m->w_zp})
    if (!(t->numel() == 1 && t->rank() <= 1) && !(t->rank() == 1 && t->numel() == m->channels)) return false;
  for (int64_t c = 0; c < m->w_scale->numel(); ++c)
    if (!std::isfinite(m->w_scale->data<float>()[c])) return false;
  if (conv && present(op, 8)) {
    const Tensor* b = initializer(g, op.inputs[8]);
    if (b == nullptr || b->dtype() != DType::kInt32 || b->rank() != 1 || b->dim(0) != m->channels) return false;
    *bias = Tensor::allocate(DType::kFloat32, {m->channels});
    const float* wsc = m->w_scale->data<float>();
    for (int64_t c = 0; c < m->channels; ++c)
      bias->mutable_data<float>()[c] = static_cast<float>(b->data<int32_t>()[c]) *
                                       (*sq * wsc[m->w_scale->numel() == 1 ? 0 : c]);
  }
  return true;
}

// Rewrites node i into sarai::QConv / QMatMul reading x, with m's weight
// requantized once to the runtime's layout, an optional float bias and the
// static activation range; the new initializers are named after `base`.
void rewrite_as_qop(Graph& g, size_t i, Match& m, int x, const std::string& base, Tensor bias,
                    std::pair<float, float> range) {
  const bool packed = !m.conv || g.nodes[i].attr_int("group", 1) == 1;
  Prepared p = prepare_weight(m, packed);
  const Shape ws = m.w->shape();
  const int64_t channels = m.channels, K = m.K;
  m.w = m.w_zp = m.w_scale = nullptr;  // add_initializer may move the tensors they point into
  const int wq = add_initializer(g, base + ".s8", std::move(p.q));
  const int sc = add_initializer(g, base + ".s8_scale", std::move(p.scale));
  const int sum = add_initializer(g, base + ".s8_wsum", std::move(p.wsum));
  const int bv = bias.defined() ? add_initializer(g, base + ".bias", std::move(bias)) : kNoValue;
  Node& out = g.nodes[i];
  out.domain = "sarai";
  out.inputs = {x, wq, sc, sum};
  if (bv != kNoValue) out.inputs.push_back(bv);
  if (m.conv) {
    out.op_type = "QConv";
    out.attrs["weight_shape"] = Attribute::of_ints(std::vector<int64_t>(ws.begin(), ws.end()));
  } else {
    out.op_type = "QMatMul";
    out.attrs.clear();
    out.attrs["K"] = Attribute::of_int(K);
    out.attrs["N"] = Attribute::of_int(channels);
  }
  out.attrs["x_min"] = Attribute::of_float(range.first);
  out.attrs["x_max"] = Attribute::of_float(range.second);
}

}  // namespace

int fuse_qdq_ops(Graph& g) {
  std::vector<bool> dead(g.nodes.size(), false);
  std::vector<int> maybe_unread;  // the DequantizeLinear / QuantizeLinear nodes the rewrites stopped reading
  int fused = 0;
  std::vector<Node> requantize;  // QuantizeLinear nodes the QLinear rewrites add
  const size_t original = g.nodes.size();
  for (size_t i = 0; i < original; ++i) {
    {
      // QuantizeLinear -> QLinearConv / QLinearMatMul: QConv / QMatMul on x,
      // then QuantizeLinear(y, y_scale, y_zero_point) into the op's output.
      QdqInput in;
      Match m;
      Tensor bias;
      if (match_qlinear(g, dead, i, &in, &m, &bias)) {
        const std::optional<std::pair<float, float>> range = range_for(in.params);
        if (range) {
          const std::string base = g.values[static_cast<size_t>(g.nodes[i].inputs[3])].name;
          Node rq;  // made first: the rewrite replaces the inputs it reads
          rq.name = g.nodes[i].name + ".requantize";
          rq.op_type = "QuantizeLinear";
          rq.inputs = {kNoValue, g.nodes[i].inputs[6], g.nodes[i].inputs[7]};
          rq.outputs = g.nodes[i].outputs;
          rewrite_as_qop(g, i, m, in.x, base, std::move(bias), *range);
          // After the rewrite: add_value may move the weight tensors m points into.
          const int yf = g.add_value(g.fresh_name(g.values[static_cast<size_t>(rq.outputs[0])].name + ".float"));
          g.values[static_cast<size_t>(yf)].dtype = DType::kFloat32;
          rq.inputs[0] = yf;
          g.nodes[i].outputs = {yf};
          requantize.push_back(std::move(rq));
          maybe_unread.push_back(in.q);
          ++fused;
          continue;
        }
      }
    }
    const Node& op = g.nodes[i];
    const bool conv = is_op(op, "Conv"), matmul = is_op(op, "MatMul"), gemm = is_op(op, "Gemm");
    if (!(conv || matmul || gemm) || op.outputs.size() != 1 || op.inputs.size() < 2) continue;
    if (matmul && op.inputs.size() != 2) continue;
    if (conv && (op.inputs.size() > 3 || op.attr_int("group", 1) < 1)) continue;
    bool trans_b = false;
    if (gemm) {
      if (op.inputs.size() > 3 || op.attr_int("transA", 0) != 0 || op.attr_float("alpha", 1.f) != 1.f ||
          (present(op, 2) && op.attr_float("beta", 1.f) != 1.f))
        continue;
      trans_b = op.attr_int("transB", 0) != 0;
    }
    QdqInput in;
    if (!match_qdq_input(g, dead, op.inputs[0], &in)) continue;
    const std::optional<std::pair<float, float>> range = range_for(in.params);
    if (!range) continue;
    Match m;
    m.conv = conv;
    int w_dq = -1;
    const int channel_axis = conv || trans_b ? 0 : 1;
    if (!match_qdq_weight(g, dead, op.inputs[1], channel_axis, &m, &w_dq)) continue;
    if (!conv && m.w->rank() != 2) continue;
    if (conv && m.w->rank() < 3) continue;
    m.channel_major = channel_axis == 0;
    Tensor bias;
    int b_dq = -1;
    if (present(op, 2) && !qdq_bias(g, dead, op.inputs[2], m.channels, gemm, &bias, &b_dq)) continue;
    const std::string base = g.values[static_cast<size_t>(g.nodes[static_cast<size_t>(w_dq)].inputs[0])].name;
    rewrite_as_qop(g, i, m, in.x, base, std::move(bias), *range);
    for (int n : {in.dq, in.q, w_dq, b_dq})
      if (n >= 0) maybe_unread.push_back(n);
    ++fused;
  }
  if (fused == 0) return 0;
  for (Node& n : requantize) {
    g.nodes.push_back(std::move(n));
    dead.push_back(false);
  }
  for (bool changed = true; changed;) {
    changed = false;
    const auto readers = readers_of(g, dead);
    for (int n : maybe_unread)
      if (!dead[static_cast<size_t>(n)] && unread(g, readers, static_cast<size_t>(n)))
        dead[static_cast<size_t>(n)] = changed = true;
  }
  remove_nodes(g, dead);
  return fused;
}

}  // namespace sarai
