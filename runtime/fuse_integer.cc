// Pre-quantized ONNX ops (quantize_dynamic's ConvInteger / MatMulInteger
// chains) onto the runtime's INT8 ops QConv / QMatMul (runtime/fuse.h).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qref.h"
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
  const Tensor* w = nullptr;       // uint8 / int8, Conv [M, C/g, k...], MatMul [K, N]
  const Tensor* w_zp = nullptr;    // null (zero), one value or one per channel
  const Tensor* w_scale = nullptr;  // float32: one value or one per channel
  int64_t channels = 0, K = 0;     // output channels; reduction per channel
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
  const int s = other_operand(g.nodes[static_cast<size_t>(m->out_mul)], cast.outputs[0]);
  if (s == kNoValue) return false;
  m->scale_mul = g.values[static_cast<size_t>(s)].producer;
  if (m->scale_mul < 0 || dead[static_cast<size_t>(m->scale_mul)]) return false;
  const Node& smul = g.nodes[static_cast<size_t>(m->scale_mul)];
  if (!is_op(smul, "Mul") || smul.outputs.size() != 1) return false;
  m->w_scale = initializer(g, other_operand(smul, dql.outputs[1]));
  if (m->w_scale == nullptr || m->w_scale->dtype() != DType::kFloat32) return false;
  const size_t out_rank = m->conv ? ws.size() : 0;  // MatMul: any rank >= 1 (rank-1 scales only)
  if (!scale_broadcasts_per_channel(*m->w_scale, m->channels, m->conv ? out_rank : 1, m->conv)) return false;
  for (int64_t c = 0; c < m->w_scale->numel(); ++c)
    if (!std::isfinite(m->w_scale->data<float>()[c])) return false;
  return true;
}

Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

std::string fresh_name(const Graph& g, const std::string& base) {
  std::string name = base;
  for (int i = 2; g.find_value(name) != kNoValue; ++i) name = base + "." + std::to_string(i);
  return name;
}

int add_initializer(Graph& g, const std::string& base, Tensor t) {
  const int vid = g.add_value(fresh_name(g, base));
  Value& v = g.values[static_cast<size_t>(vid)];
  v.dtype = t.dtype();
  for (int64_t d : t.shape()) {
    Dim dd;
    dd.value = d;
    v.dims.push_back(dd);
  }
  v.has_shape = true;
  v.is_initializer = true;
  v.initializer = std::move(t);
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
  auto src = [&](int64_t n, int64_t k) { return m.conv ? n * K + k : k * N + n; };
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
      Attribute shape;
      shape.kind = Attribute::Kind::kInts;
      shape.ints.assign(ws.begin(), ws.end());
      out.attrs["weight_shape"] = shape;
    } else {
      out.op_type = "QMatMul";
      out.attrs.clear();
      out.attrs["K"] = int_attr(m.K);
      out.attrs["N"] = int_attr(m.channels);
    }
    dead[i] = dead[static_cast<size_t>(m.cast)] = true;
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
  // In order: the scale Muls and Reshapes, then the DQLs whose x_scale they read.
  for (int pass = 0; pass < 2; ++pass) {
    const auto readers = readers_of(g, dead);
    for (int n : maybe_unread) {
      const bool is_dql = is_op(g.nodes[static_cast<size_t>(n)], "DynamicQuantizeLinear");
      if (is_dql == (pass == 1) && !dead[static_cast<size_t>(n)] && unread(g, readers, static_cast<size_t>(n)))
        dead[static_cast<size_t>(n)] = true;
    }
  }
  remove_nodes(g, dead);
  return fused;
}

}  // namespace sarai
