// Epilogue fusion for the quantized ops (runtime/fuse.h).
#include "runtime/fuse.h"

#include <algorithm>
#include <vector>

namespace sarai {
namespace {

bool is_quantized_gemm(const Node& n) {
  return n.domain == "sarai" && (n.op_type == "QMatMul" || n.op_type == "QConv");
}

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
  if (p.op_type != "QMatMul" || has(p, 4) || has(p, 5) || p.has_attr("activation")) return false;
  const Value& b = g.values[v];
  return b.is_initializer && b.initializer.dtype() == DType::kFloat32 && b.initializer.rank() == 1 &&
         b.initializer.dim(0) == channels(p);
}

}  // namespace

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
      if (!c.domain.empty() || c.outputs.size() != 1) continue;
      bool fold = false;
      if (c.op_type == "Add" && c.inputs.size() == 2 && c.inputs[0] != c.inputs[1]) {
        const int other = c.inputs[0] == y ? c.inputs[1] : c.inputs[0];
        if (other == kNoValue) continue;
        if (is_bias_for(g, p, other)) {
          if (p.inputs.size() < 5) p.inputs.resize(5, kNoValue);
          p.inputs[4] = other;
          fold = true;
        } else if (!has(p, 5) && !p.has_attr("activation")) {
          if (p.inputs.size() < 6) p.inputs.resize(6, kNoValue);
          p.inputs[5] = other;
          fold = true;
        }
      } else if (c.op_type == "Relu" && c.inputs.size() == 1 && !p.has_attr("activation")) {
        Attribute a;
        a.kind = Attribute::Kind::kString;
        a.s = "Relu";
        p.attrs["activation"] = a;
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
  if (folded == 0) return 0;
  std::vector<Node> kept;
  kept.reserve(g.nodes.size() - static_cast<size_t>(folded));
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (!dead[i]) kept.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(kept);
  for (Value& v : g.values) v.producer = -1;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (int o : g.nodes[i].outputs)
      if (o != kNoValue) g.values[static_cast<size_t>(o)].producer = static_cast<int>(i);
  return folded;
}

}  // namespace sarai
