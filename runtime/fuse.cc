// Epilogue fusion for the quantized ops (runtime/fuse.h).
#include "runtime/fuse.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "runtime/quantized_op.h"

namespace sarai {
namespace {

// The quantized ops that take a fused epilogue (kBias, kResidual):
// QConvTranspose has none.
bool is_quantized_gemm(const Node& n) { return qop::is_quantized(n) && n.op_type != "QConvTranspose"; }

bool has(const Node& n, size_t i) { return n.inputs.size() > i && n.inputs[i] != kNoValue; }

// consumers[v] = indices of the live nodes reading value v (once per node).
std::vector<std::vector<int>> consumers_of(const Graph& g, const std::vector<bool>& dead) {
  std::vector<std::vector<int>> c(g.values.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (dead[i]) continue;
    for (int v : g.nodes[i].inputs)
      if (v != kNoValue && (c[v].empty() || c[v].back() != static_cast<int>(i)))
        c[v].push_back(static_cast<int>(i));
  }
  return c;
}

// P's channel count N for a bias: QMatMul's attribute.
int64_t channels(const Node& p) { return p.attr_int("N", -1); }

bool is_bias_for(const Graph& g, const Node& p, int v) {
  if (p.op_type != "QMatMul" || has(p, qop::kBias) || has(p, qop::kResidual) || p.has_attr("activation")) return false;
  const Value& b = g.values[v];
  return b.is_initializer && b.initializer.dtype() == DType::kFloat32 && b.initializer.rank() == 1 &&
         b.initializer.dim(0) == channels(p);
}

// The float value of a one-element float32 constant: an initializer or a
// Constant node's `value`; nullopt otherwise.
std::optional<float> scalar_constant(const Graph& g, int v) {
  if (v == kNoValue) return std::nullopt;
  const Value& val = g.values[static_cast<size_t>(v)];
  const Tensor* t = nullptr;
  if (val.is_initializer) {
    t = &val.initializer;
  } else if (val.producer >= 0) {
    const Node& n = g.nodes[static_cast<size_t>(val.producer)];
    if (n.op_type == "Constant" && n.domain.empty())
      if (const Attribute* a = n.attr("value"); a != nullptr && a->kind == Attribute::Kind::kTensor)
        t = &a->t;
  }
  if (t == nullptr || t->dtype() != DType::kFloat32 || t->numel() != 1) return std::nullopt;
  return t->data<float>()[0];
}

bool near(std::optional<float> v, double want) {
  return v.has_value() && std::abs(*v - want) <= 1e-6 * std::abs(want);
}

// The operand of a two-input node that is not `v`, or kNoValue.
int other_input(const Node& n, int v) {
  if (n.inputs.size() != 2) return kNoValue;
  if (n.inputs[0] == v) return n.inputs[1];
  if (n.inputs[1] == v) return n.inputs[0];
  return kNoValue;
}

// The single live consumer of v with this default-domain op type, or -1.
int only_consumer(const std::vector<std::vector<int>>& consumers, const Graph& g, int v,
                  const char* op) {
  if (consumers[static_cast<size_t>(v)].size() != 1) return -1;
  const int c = consumers[static_cast<size_t>(v)][0];
  const Node& n = g.nodes[static_cast<size_t>(c)];
  return n.op_type == op && n.domain.empty() && n.outputs.size() == 1 ? c : -1;
}

bool is_output(const Graph& g, int v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}


}  // namespace

int fuse_gelu(Graph& g) {
  std::vector<bool> dead(g.nodes.size(), false);
  const auto consumers = consumers_of(g, dead);
  int fused = 0;
  for (size_t di = 0; di < g.nodes.size(); ++di) {
    const Node& div = g.nodes[di];
    if (dead[di] || div.op_type != "Div" || !div.domain.empty() || div.inputs.size() != 2 ||
        div.outputs.size() != 1 || !near(scalar_constant(g, div.inputs[1]), 1.4142135623730951))
      continue;
    const int x = div.inputs[0];
    const int d = div.outputs[0];
    const int erf = only_consumer(consumers, g, d, "Erf");
    if (erf < 0 || is_output(g, d)) continue;
    const int e = g.nodes[static_cast<size_t>(erf)].outputs[0];
    const int add = only_consumer(consumers, g, e, "Add");
    if (add < 0 || is_output(g, e) || !near(scalar_constant(g, other_input(g.nodes[static_cast<size_t>(add)], e)), 1.0))
      continue;
    const int a = g.nodes[static_cast<size_t>(add)].outputs[0];
    const int mul1 = only_consumer(consumers, g, a, "Mul");
    if (mul1 < 0 || is_output(g, a) || other_input(g.nodes[static_cast<size_t>(mul1)], a) != x) continue;
    const int m = g.nodes[static_cast<size_t>(mul1)].outputs[0];
    const int mul2 = only_consumer(consumers, g, m, "Mul");
    if (mul2 < 0 || is_output(g, m) || !near(scalar_constant(g, other_input(g.nodes[static_cast<size_t>(mul2)], m)), 0.5))
      continue;
    // Div becomes the Gelu node; the other four go.
    Node& gelu = g.nodes[di];
    gelu.op_type = "Gelu";
    gelu.domain = "sarai";
    gelu.inputs = {x};
    gelu.outputs = {g.nodes[static_cast<size_t>(mul2)].outputs[0]};
    gelu.attrs.clear();
    for (int dn : {erf, add, mul1, mul2}) dead[static_cast<size_t>(dn)] = true;
    ++fused;
  }
  if (fused > 0) remove_nodes(g, dead);
  return fused;
}

int fuse_scaled_softmax(Graph& g) {
  if (g.opset < 13) return 0;  // Softmax's axis meant a 2-D coercion before opset 13
  std::vector<bool> dead(g.nodes.size(), false);
  const auto consumers = consumers_of(g, dead);
  int fused = 0;
  for (size_t di = 0; di < g.nodes.size(); ++di) {
    const Node& div = g.nodes[di];
    if (div.op_type != "Div" || !div.domain.empty() || div.inputs.size() != 2 || div.outputs.size() != 1)
      continue;
    const std::optional<float> c = scalar_constant(g, div.inputs[1]);
    if (!c.has_value() || is_output(g, div.outputs[0])) continue;
    // ScaledSoftmax refuses a 0, inf or NaN divisor (kernels/normalization.cc);
    // a model that divides by one still runs, unfused, as ONNX says.
    if (!std::isfinite(*c) || *c == 0.f) continue;
    const int sm = only_consumer(consumers, g, div.outputs[0], "Softmax");
    if (sm < 0 || g.nodes[static_cast<size_t>(sm)].attr_int("axis", -1) != -1) continue;
    Node& n = g.nodes[static_cast<size_t>(sm)];
    n.op_type = "ScaledSoftmax";
    n.domain = "sarai";
    n.inputs = {div.inputs[0]};
    n.attrs["divisor"] = Attribute::of_float(*c);
    dead[di] = true;
    ++fused;
  }
  if (fused > 0) remove_nodes(g, dead);
  return fused;
}

int fuse_attention(Graph& g, const std::string& precision) {
  std::vector<bool> dead(g.nodes.size(), false);
  const auto consumers = consumers_of(g, dead);
  int fused = 0;
  for (size_t si = 0; si < g.nodes.size(); ++si) {
    const Node& sm = g.nodes[si];
    if (sm.op_type != "ScaledSoftmax" || sm.domain != "sarai" || sm.inputs.size() != 1 ||
        sm.outputs.size() != 1)
      continue;
    const int scores = sm.inputs[0], probs = sm.outputs[0];
    const Value& sv = g.values[static_cast<size_t>(scores)];
    if (sv.producer < 0 || is_output(g, scores) || is_output(g, probs)) continue;
    const size_t mi = static_cast<size_t>(sv.producer);
    const Node& mm1 = g.nodes[mi];
    if (dead[mi] || mm1.op_type != "MatMul" || !mm1.domain.empty() || mm1.inputs.size() != 2 ||
        consumers[static_cast<size_t>(scores)].size() != 1)
      continue;
    const int mm2 = only_consumer(consumers, g, probs, "MatMul");
    if (mm2 < 0 || g.nodes[static_cast<size_t>(mm2)].inputs.size() != 2 ||
        g.nodes[static_cast<size_t>(mm2)].inputs[0] != probs)
      continue;
    Node& out = g.nodes[static_cast<size_t>(mm2)];
    Attribute divisor = *sm.attr("divisor");
    out.inputs = {mm1.inputs[0], mm1.inputs[1], out.inputs[1]};
    out.op_type = "Attention";
    out.domain = "sarai";
    out.attrs.clear();
    out.attrs["divisor"] = divisor;
    if (precision != "fp32") out.attrs["precision"] = Attribute::of_string(precision.c_str());
    dead[mi] = dead[si] = true;
    ++fused;
  }
  if (fused > 0) remove_nodes(g, dead);
  return fused;
}

int fuse_quantized_epilogues(Graph& g) {
  std::vector<bool> dead(g.nodes.size(), false);
  int folded = 0;
  bool changed = true;
  while (changed) {
    changed = false;
    const auto consumers = consumers_of(g, dead);
    for (size_t pi = 0; pi < g.nodes.size(); ++pi) {
      if (dead[pi] || !is_quantized_gemm(g.nodes[pi])) continue;
      Node& p = g.nodes[pi];
      if (p.outputs.size() != 1) continue;
      const int y = p.outputs[0];
      if (std::find(g.outputs.begin(), g.outputs.end(), y) != g.outputs.end()) continue;
      if (consumers[y].size() != 1) continue;
      Node& c = g.nodes[consumers[y][0]];
      if (c.outputs.size() != 1 || !(c.domain.empty() || (c.domain == "sarai" && c.op_type == "Gelu")))
        continue;
      bool fold = false;
      if (c.op_type == "Add" && c.inputs.size() == 2 && c.inputs[0] != c.inputs[1]) {
        const int other = c.inputs[0] == y ? c.inputs[1] : c.inputs[0];
        if (other == kNoValue) continue;
        if (is_bias_for(g, p, other)) {
          if (p.inputs.size() <= qop::kBias) p.inputs.resize(qop::kBias + 1, kNoValue);
          p.inputs[qop::kBias] = other;
          fold = true;
        } else if (!has(p, qop::kResidual) && !p.has_attr("activation")) {
          if (p.inputs.size() <= qop::kResidual) p.inputs.resize(qop::kResidual + 1, kNoValue);
          p.inputs[qop::kResidual] = other;
          fold = true;
        }
      } else if (c.op_type == "Relu" && c.inputs.size() == 1 && !p.has_attr("activation")) {
        p.attrs["activation"] = Attribute::of_string("Relu");
        fold = true;
      } else if (c.op_type == "Gelu" && c.domain == "sarai" && !p.has_attr("activation")) {
        p.attrs["activation"] = Attribute::of_string("Gelu");
        fold = true;
      }
      if (!fold) continue;
      p.outputs[0] = c.outputs[0];
      p.name += "+" + c.name;
      dead[static_cast<size_t>(consumers[y][0])] = true;
      ++folded;
      changed = true;
      break;  // consumers are stale now
    }
  }
  if (folded > 0) remove_nodes(g, dead);
  return folded;
}

void remove_nodes(Graph& g, const std::vector<bool>& dead) {
  std::vector<Node> kept;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  for (Value& v : g.values) v.producer = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int o : g.nodes[i].outputs)
      if (o != kNoValue) g.values[static_cast<size_t>(o)].producer = static_cast<int>(i);
}

}  // namespace sarai
