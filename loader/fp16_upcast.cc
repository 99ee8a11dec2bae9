#include "loader/fp16_upcast.h"

#include <cstdlib>
#include <set>
#include <string>
#include <vector>

namespace sarai {
namespace {

constexpr int64_t kOnnxFloat = 1;
constexpr int64_t kOnnxFloat16 = 10;

// All 65536 halves as floats: the upcast is then one load per element
// (exact, NaN payloads and signs kept).
const float* half_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t h = 0; h < 65536; ++h) t[h] = half_to_float(static_cast<uint16_t>(h));
    return t;
  }();
  return table.data();
}

Tensor upcast(const Tensor& t) {
  Tensor out = Tensor::allocate(DType::kFloat32, t.shape());
  const int64_t n = t.numel();
  const uint16_t* src = t.data<uint16_t>();
  float* dst = out.mutable_data<float>();
  const float* table = half_table();
  for (int64_t i = 0; i < n; ++i) dst[i] = table[src[i]];
  return out;
}

bool is_cast_to_f16(const Node& n) {
  if (!n.domain.empty() || n.op_type != "Cast") return false;
  const Attribute* to = n.attr("to");
  return to && to->kind == Attribute::Kind::kInt && to->i == kOnnxFloat16;
}

bool has_f16_tensor_attr(const Node& n) {
  for (const auto& [k, a] : n.attrs)
    if (a.kind == Attribute::Kind::kTensor && a.t.dtype() == DType::kFloat16) return true;
  return false;
}

// Ops whose `dtype` attribute chooses their output type.
bool has_dtype_attr_f16(const Node& n) {
  static const std::set<std::string> kOps = {"EyeLike", "RandomNormal", "RandomUniform", "RandomNormalLike",
                                             "RandomUniformLike", "Bernoulli"};
  if (!n.domain.empty() || !kOps.count(n.op_type)) return false;
  const Attribute* d = n.attr("dtype");
  return d && d->kind == Attribute::Kind::kInt && d->i == kOnnxFloat16;
}

class Upcast {
 public:
  // sub: a subgraph (If/Loop/Scan body). Its inputs, outputs and captures
  // connect to values of the enclosing graph, which are float32 by now, so
  // they become float32 too: no Casts at its interface.
  explicit Upcast(Graph& g, bool sub = false) : g_(g), sub_(sub) {}

  bool needed() const {
    for (const Value& v : g_.values)
      if (v.dtype == DType::kFloat16 || (v.is_initializer && v.initializer.dtype() == DType::kFloat16)) return true;
    for (const Node& n : g_.nodes) {
      if (is_cast_to_f16(n) || has_f16_tensor_attr(n) || has_dtype_attr_f16(n)) return true;
      for (const auto& [k, a] : n.attrs)
        if (a.kind == Attribute::Kind::kGraph && a.g && Upcast(const_cast<Graph&>(*a.g), true).needed()) return true;
    }
    return false;
  }

  void run() {
    // Subgraphs first, each on a copy (they are shared, const handles).
    for (Node& n : g_.nodes)
      for (auto& [k, a] : n.attrs) {
        if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
        auto copy = std::make_shared<Graph>(*a.g);
        Upcast sub(*copy, /*sub=*/true);
        if (!sub.needed()) continue;
        sub.run();
        a.g = std::move(copy);
      }
    for (const Node& n : g_.nodes) node_names_.insert(n.name);
    const size_t n_values = g_.values.size();
    // Float16 in the source model, for each value (declared, or evident from
    // its producer when the model does not declare it).
    std::vector<bool> was_f16(n_values);
    for (size_t v = 0; v < n_values; ++v) was_f16[v] = source_is_f16(static_cast<int>(v));

    // CastLike to a float16 target: a Cast(to=FLOAT16), rounded below.
    for (Node& n : g_.nodes) {
      if (!n.domain.empty() || n.op_type != "CastLike" || n.inputs.size() < 2 || n.inputs[1] == kNoValue) continue;
      if (!was_f16[static_cast<size_t>(n.inputs[1])]) continue;
      n.op_type = "Cast";
      n.inputs.resize(1);
      n.attrs["to"] = Attribute::of_int(kOnnxFloat16);
      if (!n.outputs.empty() && n.outputs[0] != kNoValue) was_f16[static_cast<size_t>(n.outputs[0])] = true;
    }

    std::vector<int> readers(n_values, 0);
    for (const Node& n : g_.nodes)
      for (int v : n.inputs)
        if (v != kNoValue) ++readers[static_cast<size_t>(v)];
    std::vector<bool> is_output(n_values), is_input(n_values);
    for (int v : g_.outputs) is_output[static_cast<size_t>(v)] = true;
    for (int v : g_.inputs) is_input[static_cast<size_t>(v)] = true;
    keep_f16_.assign(n_values, false);

    // (a) initializers.
    for (Value& v : g_.values)
      if (v.is_initializer && v.initializer.dtype() == DType::kFloat16) {
        v.initializer = upcast(v.initializer);
        v.dtype = DType::kFloat32;
      }

    // (b) attributes.
    for (Node& n : g_.nodes)
      for (auto& [k, a] : n.attrs) {
        if (a.kind == Attribute::Kind::kTensor && a.t.dtype() == DType::kFloat16) a.t = upcast(a.t);
        if (k == "dtype" && has_dtype_attr_f16(n)) a.i = kOnnxFloat;
      }

    // (d) Cast(to=FLOAT16) inside the graph: Cast(to=FLOAT16) then
    // Cast(to=FLOAT), unless it makes a float16 output nothing else reads.
    const size_t n_nodes = g_.nodes.size();
    for (size_t i = 0; i < n_nodes; ++i) {
      if (!is_cast_to_f16(g_.nodes[i]) || g_.nodes[i].outputs.empty()) continue;
      const int y = g_.nodes[i].outputs[0];
      if (y == kNoValue) continue;
      const auto yi = static_cast<size_t>(y);
      if (!sub_ && is_output[yi] && was_f16[yi] && readers[yi] == 0) {
        keep_f16_[yi] = true;
        continue;
      }
      const int half = add_value(g_.values[yi].name + "__fp16", y, DType::kFloat16);
      g_.values[static_cast<size_t>(half)].producer = static_cast<int>(i);
      g_.nodes[i].outputs[0] = half;
      keep_f16_[static_cast<size_t>(half)] = true;
      g_.values[yi].dtype = DType::kFloat32;
      add_cast(g_.nodes[i].name + "__to_fp32", half, y, kOnnxFloat);
    }

    // (c) float16 graph outputs: the graph computes "<name>__fp32", a Cast
    // makes the output.
    std::set<int> done;
    for (int o : sub_ ? std::vector<int>() : std::vector<int>(g_.outputs)) {
      const auto oi = static_cast<size_t>(o);
      if (!was_f16[oi] || keep_f16_[oi] || is_input[oi] || !done.insert(o).second) continue;
      const int inner = add_value(g_.values[oi].name + "__fp32", o, DType::kFloat32);
      Value& out = g_.values[oi];
      Value& in = g_.values[static_cast<size_t>(inner)];
      if (out.producer >= 0) {
        for (int& w : g_.nodes[static_cast<size_t>(out.producer)].outputs)
          if (w == o) w = inner;
        in.producer = out.producer;
      } else if (out.is_initializer) {
        in.is_initializer = true;
        in.initializer = std::move(out.initializer);
        out.is_initializer = false;
        out.initializer = Tensor();
      }
      redirect_readers(o, inner);
      add_cast(out.name + "__to_fp16", inner, o, kOnnxFloat16);
      keep_f16_[oi] = true;
    }

    // (c) float16 graph inputs: a Cast to "<name>__fp32", which every reader
    // reads instead.
    for (int x : sub_ ? std::vector<int>() : g_.inputs) {
      const auto xi = static_cast<size_t>(x);
      if (g_.values[xi].dtype != DType::kFloat16) continue;
      keep_f16_[xi] = true;
      if (readers[xi] == 0) continue;
      const int inner = add_value(g_.values[xi].name + "__fp32", x, DType::kFloat32);
      redirect_readers(x, inner);
      add_cast(g_.values[xi].name + "__to_fp32", x, inner, kOnnxFloat);
    }

    // (b) every other float16 value.
    for (size_t v = 0; v < g_.values.size(); ++v)
      if (g_.values[v].dtype == DType::kFloat16 && !keep_f16_[v]) g_.values[v].dtype = DType::kFloat32;
  }

 private:
  bool source_is_f16(int v) const {
    const Value& val = g_.values[static_cast<size_t>(v)];
    if (val.dtype == DType::kFloat16) return true;
    if (val.dtype != DType::kUndefined || val.producer < 0) return false;
    const Node& p = g_.nodes[static_cast<size_t>(val.producer)];
    if (is_cast_to_f16(p) || has_dtype_attr_f16(p)) return true;
    if (p.domain.empty() && (p.op_type == "Constant" || p.op_type == "ConstantOfShape")) {
      const Attribute* a = p.attr("value");
      return a && a->kind == Attribute::Kind::kTensor && a->t.dtype() == DType::kFloat16;
    }
    return false;
  }

  std::string fresh(const std::string& base, bool node) const {
    auto taken = [&](const std::string& s) { return node ? node_names_.count(s) != 0 : g_.find_value(s) != kNoValue; };
    std::string s = base;
    for (int k = 1; taken(s); ++k) s = base + "_" + std::to_string(k);
    return s;
  }

  // A new value named like `base` (made unique) with `like`'s shape.
  int add_value(const std::string& base, int like, DType dtype) {
    const int id = g_.add_value(fresh(base, /*node=*/false));
    const Value& l = g_.values[static_cast<size_t>(like)];
    Value& v = g_.values[static_cast<size_t>(id)];
    v.dtype = dtype;
    v.has_shape = l.has_shape;
    v.dims = l.dims;
    keep_f16_.push_back(false);
    return id;
  }

  void add_cast(const std::string& base, int in, int out, int64_t to) {
    Node n;
    n.name = fresh(base, /*node=*/true);
    n.op_type = "Cast";
    n.inputs = {in};
    n.outputs = {out};
    n.attrs["to"] = Attribute::of_int(to);
    node_names_.insert(n.name);
    g_.values[static_cast<size_t>(out)].producer = static_cast<int>(g_.nodes.size());
    g_.nodes.push_back(std::move(n));
  }

  // Every node reading `from` reads `to` instead; a subgraph that captures
  // `from` by name captures `to` (renamed in a copy, at every depth).
  void redirect_readers(int from, int to) {
    for (Node& n : g_.nodes)
      for (size_t k = 0; k < n.inputs.size(); ++k) {
        if (n.inputs[k] != from) continue;
        n.inputs[k] = to;
        if (static_cast<int>(k) >= n.explicit_inputs())
          rename_captures(n, g_.values[static_cast<size_t>(from)].name, g_.values[static_cast<size_t>(to)].name);
      }
  }

  static void rename_captures(Node& n, const std::string& from, const std::string& to) {
    for (auto& [k, a] : n.attrs) {
      if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
      const int id = a.g->find_value(from);
      if (id == kNoValue) continue;
      auto copy = std::make_shared<Graph>(*a.g);
      copy->rename_value(id, to);
      for (Node& inner : copy->nodes)
        for (size_t j = static_cast<size_t>(inner.explicit_inputs()); j < inner.inputs.size(); ++j)
          if (inner.inputs[j] == id) rename_captures(inner, from, to);
      a.g = std::move(copy);
    }
  }

  Graph& g_;
  bool sub_ = false;
  std::set<std::string> node_names_;
  std::vector<bool> keep_f16_;  // values that stay float16: the interface, the Cast pairs' middles
};

}  // namespace

Expected<bool> fp16_upcast_enabled() {
  const char* env = std::getenv("SARAI_FP16_UPCAST");
  if (env == nullptr || *env == '\0') return true;
  const std::string v = env;
  if (v == "1" || v == "on") return true;
  if (v == "0" || v == "off") return false;
  return Status::error("SARAI_FP16_UPCAST='" + v + "' is not a setting (1/on or 0/off)");
}

Status upcast_float16(Model& model) {
  SARAI_ASSIGN_OR_RETURN(const bool enabled, fp16_upcast_enabled());
  if (!enabled) return Status::ok();
  Upcast pass(model.graph);
  if (pass.needed()) pass.run();
  return Status::ok();
}

}  // namespace sarai
