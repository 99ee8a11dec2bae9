#include "quantizer/convert.h"

#include <fnmatch.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "kernels/cpu/int8_layout.h"
#include "loader/blob_format.h"
#include "loader/blob_reader.h"
#include "quantizer/blob_writer.h"
#include "quantizer/quantize.h"
#include "quantizer/quantize_weight.h"
#include "quantizer/release_pages.h"
#include "quantizer/sha256.h"
#include "runtime/fuse.h"

namespace sarai::quant {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSaraiDomain = "sarai";

// One weight stored as INT8 (possibly read by several quantized nodes).
struct QWeight {
  int source = kNoValue;  // the FP32 weight's value index in the output graph
  WeightForm form;
  WeightRole role = WeightRole::kMatMul;
  float alpha = 1.f;      // Gemm's alpha, folded into the scales
  bool keep_fp32 = false; // another reader (or a graph output) still needs the FP32 tensor
  int q = kNoValue, scale = kNoValue, sum = kNoValue;  // new values
};

int add_const_value(Graph& g, const std::string& name, DType dtype, const Shape& shape) {
  const int v = g.add_value(g.fresh_name(name));
  Value& val = g.values[static_cast<size_t>(v)];
  val.dtype = dtype;
  val.has_shape = true;
  for (int64_t d : shape) val.dims.push_back(Dim{d, ""});
  val.is_initializer = true;  // its bytes are produced while streaming
  return v;
}

// A graph without the values in `drop` (no node or graph output may read
// them), every index remapped.
Graph without_values(const Graph& g, const std::vector<bool>& drop) {
  Graph out;
  out.name = g.name;
  out.opset = g.opset;
  std::vector<int> map(g.values.size(), kNoValue);
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (drop[v]) continue;
    map[v] = out.add_value(g.values[v].name);
    Value& nv = out.values.back();
    const std::string name = nv.name;
    nv = g.values[v];
    nv.name = name;
  }
  auto remap = [&](std::vector<int>& ids) {
    for (int& id : ids)
      if (id != kNoValue) id = map[static_cast<size_t>(id)];
  };
  out.nodes = g.nodes;
  for (Node& n : out.nodes) {
    remap(n.inputs);
    remap(n.outputs);
  }
  out.inputs = g.inputs;
  out.outputs = g.outputs;
  out.captures = g.captures;
  remap(out.inputs);
  remap(out.outputs);
  remap(out.captures);
  return out;
}

// Gemm's C as QMatMul's bias: beta * C broadcast to [N], or C itself when
// that is already what it is.
int gemm_bias(Graph& g, const Node& n, int64_t N) {
  const int c = n.inputs.size() > 2 ? n.inputs[2] : kNoValue;
  if (c == kNoValue) return kNoValue;
  const float beta = n.attr_float("beta", 1.f);
  const Tensor src = g.values[static_cast<size_t>(c)].initializer;
  if (beta == 1.f && src.rank() == 1 && src.dim(0) == N) return c;
  Tensor b = Tensor::allocate(DType::kFloat32, {N});
  const float* s = src.data<float>();
  for (int64_t i = 0; i < N; ++i) b.mutable_data<float>()[i] = beta * s[src.numel() == 1 ? 0 : i];
  const int v = add_const_value(g, n.name + ".bias", DType::kFloat32, {N});
  g.values[static_cast<size_t>(v)].initializer = b;
  return v;
}

std::string choice_key(const Graph& g, const WeightChoice& c, const std::string& prefix) {
  if (c.weight_value == kNoValue) return "choice:" + prefix + g.nodes[static_cast<size_t>(c.node)].name;
  return "choice:" + prefix + g.values[static_cast<size_t>(c.weight_value)].name;
}

// "choice:<weight>" = reason, one per weight (several readers with
// different outcomes: "node 'a': ...; node 'b': ..."); a subgraph's keys
// carry its prefix ("choice:If_0.then_branch/w").
std::vector<std::pair<std::string, std::string>> choice_metadata(const Graph& g, const QuantPlan& plan,
                                                                 const std::string& prefix) {
  std::map<std::string, std::vector<const WeightChoice*>> by_key;
  std::vector<std::string> order;
  for (const WeightChoice& c : plan.choices) {
    const std::string k = choice_key(g, c, prefix);
    if (!by_key.count(k)) order.push_back(k);
    by_key[k].push_back(&c);
  }
  std::vector<std::pair<std::string, std::string>> kv;
  for (const std::string& k : order) {
    const auto& cs = by_key[k];
    bool same = std::all_of(cs.begin(), cs.end(), [&](const WeightChoice* c) { return c->reason == cs[0]->reason; });
    std::string v;
    if (same) {
      v = cs[0]->reason;
    } else {
      for (const WeightChoice* c : cs) {
        if (!v.empty()) v += "; ";
        v += "node '" + g.nodes[static_cast<size_t>(c->node)].name + "': " + c->reason;
      }
    }
    kv.emplace_back(k, v);
  }
  return kv;
}

// A body's captures that the enclosing graph now holds as initializers (a
// Constant node there that promote_constants turned into one) become the
// body's own initializers, the same tensor, as the loader does for outer
// initializers: so a weight made by a Constant outside the body is a
// constant where it is used. True when any was inlined.
bool inline_constant_captures(const Graph& outer, Graph& body) {
  std::vector<int> still;
  for (int c : body.captures) {
    Value& v = body.values[static_cast<size_t>(c)];
    const int ov = outer.find_value(v.name);
    if (ov == kNoValue || !outer.values[static_cast<size_t>(ov)].is_initializer) {
      still.push_back(c);
      continue;
    }
    v.set_initializer(outer.values[static_cast<size_t>(ov)].initializer);
  }
  const bool any = still.size() != body.captures.size();
  body.captures = std::move(still);
  return any;
}

// Integers of a constant int32 / int64 tensor of rank <= 1 (false otherwise).
bool const_ints(const Graph& g, int v, std::vector<int64_t>* out) {
  if (v == kNoValue) return false;
  const Value& val = g.values[static_cast<size_t>(v)];
  if (!val.is_initializer || !val.initializer.defined() || val.initializer.rank() > 1) return false;
  const Tensor& t = val.initializer;
  out->clear();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (t.dtype() == DType::kInt64) out->push_back(t.data<int64_t>()[i]);
    else if (t.dtype() == DType::kInt32) out->push_back(t.data<int32_t>()[i]);
    else return false;
  }
  return true;
}

// The value of Unsqueeze / Slice / Concat on constant inputs (an undefined
// Tensor when the node is not one this folds or its inputs are invalid:
// the kernel then reports them at run time).
Tensor fold_node(const Graph& g, const Node& n) {
  auto in = [&](size_t i) -> const Tensor* {
    if (i >= n.inputs.size() || n.inputs[i] == kNoValue) return nullptr;
    const Value& v = g.values[static_cast<size_t>(n.inputs[i])];
    return v.is_initializer && v.initializer.defined() ? &v.initializer : nullptr;
  };
  const Tensor* x = in(0);
  if (!x || dtype_size(x->dtype()) == 0) return Tensor();
  const size_t es = dtype_size(x->dtype());
  const int64_t rank = x->rank();
  if (n.op_type == "Unsqueeze") {
    std::vector<int64_t> axes;
    if (g.opset >= 13 ? !const_ints(g, n.inputs.size() > 1 ? n.inputs[1] : kNoValue, &axes) : false) return Tensor();
    if (g.opset < 13) axes = n.attr_ints("axes");
    const int64_t r = rank + static_cast<int64_t>(axes.size());
    if (axes.empty() || r > 32) return Tensor();
    std::vector<bool> is_new(static_cast<size_t>(r), false);
    for (int64_t a : axes) {
      if (a < 0) a += r;
      if (a < 0 || a >= r || is_new[static_cast<size_t>(a)]) return Tensor();
      is_new[static_cast<size_t>(a)] = true;
    }
    Shape shape;
    for (int64_t d = 0, k = 0; d < r; ++d) shape.push_back(is_new[static_cast<size_t>(d)] ? 1 : x->dim(static_cast<int>(k++)));
    return x->reshaped(shape);
  }
  if (n.op_type == "Slice") {
    if (g.opset < 10) return Tensor();
    std::vector<int64_t> starts, ends, axes, steps;
    if (!const_ints(g, n.inputs.size() > 1 ? n.inputs[1] : kNoValue, &starts) ||
        !const_ints(g, n.inputs.size() > 2 ? n.inputs[2] : kNoValue, &ends) || starts.size() != ends.size())
      return Tensor();
    if (n.inputs.size() > 3 && n.inputs[3] != kNoValue) {
      if (!const_ints(g, n.inputs[3], &axes)) return Tensor();
    } else {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (n.inputs.size() > 4 && n.inputs[4] != kNoValue) {
      if (!const_ints(g, n.inputs[4], &steps)) return Tensor();
    } else {
      steps.assign(starts.size(), 1);
    }
    if (axes.size() != starts.size() || steps.size() != starts.size()) return Tensor();
    std::vector<int64_t> first(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1);
    Shape shape = x->shape();
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (size_t i = 0; i < axes.size(); ++i) {
      int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
      if (a < 0 || a >= rank || seen[static_cast<size_t>(a)] || steps[i] == 0) return Tensor();
      seen[static_cast<size_t>(a)] = true;
      const int64_t dim = x->dim(static_cast<int>(a));
      int64_t b = starts[i], e = ends[i];
      // A step past the dim takes one element at most, as the clamped one does.
      const int64_t st = std::clamp<int64_t>(steps[i], -dim - 1, dim + 1);
      if (b < 0) b = std::max<int64_t>(b, -dim - 1) + dim;  // no overflow for INT64_MIN
      if (e < 0) e = std::max<int64_t>(e, -dim - 1) + dim;
      int64_t len;
      if (st > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        len = e > b ? (e - b - 1) / st + 1 : 0;
      } else {
        b = std::clamp<int64_t>(b, -1, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        len = b > e ? (b - e - 1) / (-st) + 1 : 0;
      }
      first[static_cast<size_t>(a)] = b;
      step[static_cast<size_t>(a)] = st;
      shape[static_cast<size_t>(a)] = len;
    }
    Tensor out = Tensor::allocate(x->dtype(), shape);
    const int64_t total = out.numel();
    std::vector<int64_t> stride(static_cast<size_t>(rank), 1), idx(static_cast<size_t>(rank), 0);
    for (int64_t d = rank - 2; d >= 0; --d) stride[static_cast<size_t>(d)] = stride[static_cast<size_t>(d) + 1] * x->dim(static_cast<int>(d) + 1);
    const auto* src = static_cast<const uint8_t*>(x->raw());
    auto* dst = static_cast<uint8_t*>(out.mutable_raw());
    for (int64_t o = 0; o < total; ++o) {
      int64_t off = 0;
      for (int64_t d = 0; d < rank; ++d)
        off += (first[static_cast<size_t>(d)] + idx[static_cast<size_t>(d)] * step[static_cast<size_t>(d)]) * stride[static_cast<size_t>(d)];
      std::memcpy(dst + o * static_cast<int64_t>(es), src + off * static_cast<int64_t>(es), es);
      for (int64_t d = rank - 1; d >= 0; --d) {
        if (++idx[static_cast<size_t>(d)] < shape[static_cast<size_t>(d)]) break;
        idx[static_cast<size_t>(d)] = 0;
      }
    }
    return out;
  }
  if (n.op_type == "Concat") {
    int64_t axis = n.attr_int("axis", 0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return Tensor();
    Shape shape = x->shape();
    shape[static_cast<size_t>(axis)] = 0;
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const Tensor* t = in(i);
      if (!t || t->dtype() != x->dtype() || t->rank() != rank) return Tensor();
      for (int64_t d = 0; d < rank; ++d)
        if (d != axis && t->dim(static_cast<int>(d)) != x->dim(static_cast<int>(d))) return Tensor();
      shape[static_cast<size_t>(axis)] += t->dim(static_cast<int>(axis));
    }
    Tensor out = Tensor::allocate(x->dtype(), shape);
    int64_t outer = 1, inner = 1;
    for (int64_t d = 0; d < axis; ++d) outer *= shape[static_cast<size_t>(d)];
    for (int64_t d = axis + 1; d < rank; ++d) inner *= shape[static_cast<size_t>(d)];
    auto* dst = static_cast<uint8_t*>(out.mutable_raw());
    for (int64_t o = 0; o < outer; ++o)
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const Tensor* t = in(i);
        const size_t bytes = static_cast<size_t>(t->dim(static_cast<int>(axis)) * inner) * es;
        if (bytes) std::memcpy(dst, static_cast<const uint8_t*>(t->raw()) + static_cast<size_t>(o) * bytes, bytes);
        dst += bytes;
      }
    return out;
  }
  return Tensor();
}

// Constant chains that make a recurrent layer's W or R (Unsqueeze, Slice,
// Concat of constants: PyTorch exports LSTM weights as Unsqueeze(Concat(
// Slice(weight_ih) x 4)) to reorder the gates, Silero VAD v5 / v6) become
// initializers, so `--recurrent int8` sees constant weights. Only values
// that feed a W or R are folded; what the folded nodes read is appended to
// `consumed` (read in the source: dropped when nothing else reads them).
void fold_recurrent_weights(Graph& g, std::vector<Tensor>* consumed) {
  std::vector<bool> wanted(g.values.size(), false);
  std::vector<int> stack;
  for (const Node& n : g.nodes)
    if (n.domain.empty() && (n.op_type == "LSTM" || n.op_type == "GRU" || n.op_type == "RNN"))
      for (size_t i : {1u, 2u})
        if (i < n.inputs.size() && n.inputs[i] != kNoValue && !wanted[static_cast<size_t>(n.inputs[i])]) {
          wanted[static_cast<size_t>(n.inputs[i])] = true;
          stack.push_back(n.inputs[i]);
        }
  while (!stack.empty()) {
    const int v = stack.back();
    stack.pop_back();
    const int p = g.values[static_cast<size_t>(v)].producer;
    if (p < 0) continue;
    const Node& n = g.nodes[static_cast<size_t>(p)];
    if (!n.domain.empty() || (n.op_type != "Unsqueeze" && n.op_type != "Slice" && n.op_type != "Concat")) continue;
    const size_t data_inputs = n.op_type == "Concat" ? n.inputs.size() : 1;
    for (size_t i = 0; i < data_inputs && i < n.inputs.size(); ++i)
      if (n.inputs[i] != kNoValue && !wanted[static_cast<size_t>(n.inputs[i])]) {
        wanted[static_cast<size_t>(n.inputs[i])] = true;
        stack.push_back(n.inputs[i]);
      }
  }
  std::vector<bool> drop(g.nodes.size(), false);
  bool any = false;
  for (bool changed = true; changed;) {
    changed = false;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node& n = g.nodes[i];
      if (drop[i] || !n.domain.empty() || n.outputs.size() != 1 || n.outputs[0] == kNoValue ||
          !wanted[static_cast<size_t>(n.outputs[0])] ||
          std::find(g.outputs.begin(), g.outputs.end(), n.outputs[0]) != g.outputs.end())
        continue;
      Tensor t = fold_node(g, n);
      if (!t.defined()) continue;
      for (int in : n.inputs)
        if (in != kNoValue) consumed->push_back(g.values[static_cast<size_t>(in)].initializer);
      g.values[static_cast<size_t>(n.outputs[0])].set_initializer(t);
      drop[i] = true;
      any = changed = true;
    }
  }
  if (any) remove_nodes(g, drop);
}

// Subgraphs nest at most this deep (the blob reader's limit).
constexpr int kMaxConvertDepth = 16;

// A tensor's identity: the loader copies an outer initializer into each body
// that reads it as the same handle, so equal keys are the same bytes.
using TensorKey = std::tuple<const void*, uint64_t, int, std::vector<int64_t>>;
TensorKey tensor_key(const Tensor& t) {
  return {t.raw(), t.nbytes(), static_cast<int>(t.dtype()), t.shape().to_vector()};
}

// How a weight is quantized: equal forms give equal bytes.
std::string form_key(const QWeight& qw, bool per_tensor) {
  const WeightForm& f = qw.form;
  return std::to_string(static_cast<int>(f.kind)) + ":" + std::to_string(f.K) + ":" + std::to_string(f.N) + ":" +
         std::to_string(f.C) + ":" + std::to_string(f.group) + ":" + std::to_string(f.inner) + ":" +
         std::to_string(static_cast<int>(qw.role == WeightRole::kConvTranspose)) + ":" + std::to_string(qw.alpha) + ":" +
         (per_tensor ? "t" : "c");
}

// A recurrent layer's W or R stored as INT8 (`--recurrent int8`): per
// direction, per part (GRU's R: the z and r rows, then the h rows), Wᵀ
// packed N16K4 with a scale per gate row.
struct RWeight {
  int source = kNoValue;
  int64_t dirs = 1, rows = 0, K = 0;               // the ONNX weight [dirs, rows, K]
  std::vector<std::pair<int64_t, int64_t>> parts;  // (first row, rows) in each direction
  std::vector<std::array<int, 3>> values;          // q, scale, wsum per (direction, part)
  bool keep_fp32 = false;
};

// One graph of the model being converted: the main graph or a subgraph.
struct GraphJob {
  std::unique_ptr<Graph> own_src;  // a subgraph's copy (after promote_constants)
  Graph* src = nullptr;
  int depth = 0;
  int parent = -1;                 // index in the job list
  size_t parent_node = 0;          // the node of the parent holding this body
  std::string attr;                // its attribute ("then_branch", "body")
  std::string prefix;              // "" or "If_0.then_branch/" (tensor and choice names)
  std::string where;               // "node 'If_0' (If) then_branch" for errors
  QuantPlan plan;
  Graph g;                         // the rewritten graph, before compaction
  std::map<int, QWeight> qweights; // by source weight value
  std::map<int, RWeight> rweights; // recurrent W / R by source value
  std::vector<std::pair<std::string, std::string>> rchoices;  // "choice:<W>" for recurrent layers
  int recurrent_quantized = 0;     // layers rewritten
  std::vector<bool> drop;
  std::vector<int> new_index;      // g's value -> out's
  std::shared_ptr<Graph> out;      // compacted
  std::vector<int32_t> value_tensor;
};

bool is_float_weight(const Value& v) {
  if (!v.is_initializer || !v.initializer.defined()) return false;
  const DType t = v.initializer.dtype();
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kFloat64;
}

const std::string* matching_glob(const std::vector<std::string>& globs, const std::string& name) {
  for (const std::string& p : globs)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return &p;
  return nullptr;
}

// Why a recurrent node's W and R cannot be stored as INT8 ("" when they can).
std::string recurrent_check(const Graph& g, const Node& n, const ConvertOptions& opt) {
  if (opt.recurrent != "int8") return "fp32: recurrent layer (convert --recurrent int8 quantizes its gate GEMMs)";
  const int gates = n.op_type == "LSTM" ? 4 : n.op_type == "GRU" ? 3 : 1;
  const int w = n.inputs.size() > 1 ? n.inputs[1] : kNoValue, r = n.inputs.size() > 2 ? n.inputs[2] : kNoValue;
  if (n.inputs.empty() || n.inputs[0] == kNoValue) return "fp32: input X is missing";
  if (w == kNoValue || r == kNoValue || !is_float_weight(g.values[static_cast<size_t>(w)]) ||
      !is_float_weight(g.values[static_cast<size_t>(r)]))
    return "fp32: W and R are not both float constants";
  if (w == r) return "fp32: W and R are the same tensor";
  const Tensor& wt = g.values[static_cast<size_t>(w)].initializer;
  const Tensor& rt = g.values[static_cast<size_t>(r)].initializer;
  if (wt.rank() != 3 || rt.rank() != 3) return "fp32: W or R is not 3-D";
  const int64_t nd = n.attr_string("direction", "forward") == "bidirectional" ? 2 : 1;
  const int64_t hid = rt.dim(2);
  if (hid <= 0 || wt.dim(2) <= 0 || wt.dim(0) != nd || rt.dim(0) != nd || wt.dim(1) != gates * hid ||
      rt.dim(1) != gates * hid || n.attr_int("hidden_size", hid) != hid)
    return "fp32: W " + shape_to_string(wt.shape()) + " and R " + shape_to_string(rt.shape()) +
           " do not match the layer (the kernel reports it)";
  if (wt.dim(2) > int64_t{1} << 16 || hid > int64_t{1} << 16) return "fp32: input or hidden size above 65536";
  if (const std::string* p = matching_glob(opt.keep_fp32, n.name))
    return "fp32: node '" + n.name + "' matches --keep-fp32 '" + *p + "'";
  for (int v : {w, r})
    if (const std::string* p = matching_glob(opt.keep_fp32, g.values[static_cast<size_t>(v)].name))
      return "fp32: matches --keep-fp32 '" + *p + "'";
  const int64_t elements = wt.numel() + rt.numel();
  if (elements < opt.min_elements)
    return "fp32: " + std::to_string(elements) + " elements (W and R) < --min-elements " +
           std::to_string(opt.min_elements);
  return "";
}

// LSTM / GRU / RNN nodes -> QLSTM / QGRU / QRNN (kernels/recurrent.cc) when
// `--recurrent int8` and the weights allow; every such node's W and R get a
// choice entry either way.
Status rewrite_recurrent(const Graph& src, const ConvertOptions& opt, GraphJob& job) {
  Graph& g = job.g;
  for (size_t ni = 0; ni < src.nodes.size(); ++ni) {
    const Node& n = src.nodes[ni];
    if (!n.domain.empty() || (n.op_type != "LSTM" && n.op_type != "GRU" && n.op_type != "RNN")) continue;
    std::string reason = recurrent_check(src, n, opt);
    const int w = n.inputs.size() > 1 ? n.inputs[1] : kNoValue, r = n.inputs.size() > 2 ? n.inputs[2] : kNoValue;
    const bool gru = n.op_type == "GRU";
    if (reason.empty()) {
      // A weight another recurrent node already split differently stays FP32.
      for (int v : {w, r}) {
        auto it = job.rweights.find(v);
        if (it != job.rweights.end() && it->second.parts.size() != (v == r && gru ? 2u : 1u))
          reason = "fp32: weight is already quantized differently for another recurrent layer";
      }
    }
    if (reason.empty() && (job.qweights.count(w) || job.qweights.count(r)))
      reason = "fp32: weight is also a quantized MatMul / Gemm / Conv weight";
    if (!reason.empty()) {
      for (int v : {w, r})
        if (v != kNoValue) job.rchoices.emplace_back("choice:" + job.prefix + src.values[static_cast<size_t>(v)].name, reason);
      continue;
    }
    const std::string per = opt.per_tensor ? "int8 per-tensor" : "int8 per gate row";
    Node& out = g.nodes[ni];
    std::vector<int> in = {n.inputs[0]};
    for (size_t i : {3u, 4u, 5u, 6u, 7u}) in.push_back(i < n.inputs.size() ? n.inputs[i] : kNoValue);
    const Tensor& rt = src.values[static_cast<size_t>(r)].initializer;
    const int64_t hid = rt.dim(2);
    for (int v : {w, r}) {
      const Tensor& t = src.values[static_cast<size_t>(v)].initializer;
      auto [it, fresh] = job.rweights.try_emplace(v);
      RWeight& rw = it->second;
      if (fresh) {
        rw.source = v;
        rw.dirs = t.dim(0);
        rw.rows = t.dim(1);
        rw.K = t.dim(2);
        if (v == r && gru) rw.parts = {{0, 2 * hid}, {2 * hid, hid}};
        else rw.parts = {{0, rw.rows}};
        const std::string& name = src.values[static_cast<size_t>(v)].name;
        for (int64_t d = 0; d < rw.dirs; ++d)
          for (size_t part = 0; part < rw.parts.size(); ++part) {
            const std::string base = name + ".d" + std::to_string(d) + (rw.parts.size() > 1 ? "p" + std::to_string(part) : "");
            const int64_t rows = rw.parts[part].second;
            rw.values.push_back({add_const_value(g, base + ".q", DType::kInt8, {int8::packed_size(rw.K, rows)}),
                                 add_const_value(g, base + ".scale", DType::kFloat32, {opt.per_tensor ? int64_t{1} : rows}),
                                 add_const_value(g, base + ".wsum", DType::kInt32, {rows})});
          }
      }
      job.rchoices.emplace_back("choice:" + job.prefix + src.values[static_cast<size_t>(v)].name, per);
    }
    const RWeight& rw_w = job.rweights[w];
    const RWeight& rw_r = job.rweights[r];
    for (int64_t d = 0; d < rw_w.dirs; ++d) {
      for (int k : rw_w.values[static_cast<size_t>(d)]) in.push_back(k);
      for (size_t part = 0; part < rw_r.parts.size(); ++part)
        for (int k : rw_r.values[static_cast<size_t>(d) * rw_r.parts.size() + part]) in.push_back(k);
    }
    out.op_type = "Q" + n.op_type;
    out.domain = kSaraiDomain;
    out.inputs = std::move(in);
    out.attrs["hidden_size"] = Attribute::of_int(hid);
    out.attrs["input_size"] = Attribute::of_int(src.values[static_cast<size_t>(w)].initializer.dim(2));
    if (src.opset < 14) out.attrs.erase("layout");
    ++job.recurrent_quantized;
  }
  return Status::ok();
}

// Rewrites job.g from job.src per job.plan: quantized nodes become
// QMatMul / QConv / QConvTranspose reading new Q values. `static_x`: give
// each the calibrated range of its input.
Status rewrite_graph(const Model& model, const ConvertOptions& opt, bool static_x, GraphJob& job) {
  const Graph& src = *job.src;
  job.g = src;
  Graph& g = job.g;
  const std::string prefix = model.path + ": " + (job.where.empty() ? "" : job.where + ": ");
  for (const WeightChoice& c : job.plan.choices) {
    if (!c.quantize) continue;
    const Node& n = src.nodes[static_cast<size_t>(c.node)];
    auto [it, fresh] = job.qweights.try_emplace(c.weight_value);
    QWeight& qw = it->second;
    if (fresh) {
      const Value& w = src.values[static_cast<size_t>(c.weight_value)];
      qw.source = c.weight_value;
      qw.role = c.role;
      qw.form = weight_form(c, n, w.initializer.shape());
      qw.alpha = c.role == WeightRole::kGemm ? n.attr_float("alpha", 1.f) : 1.f;
      const Shape q_ir_shape = qw.form.packed() ? Shape{qw.form.q_bytes()} : w.initializer.shape();
      qw.q = add_const_value(g, w.name + ".q", DType::kInt8, q_ir_shape);
      qw.scale = add_const_value(g, w.name + ".scale", DType::kFloat32,
                                 {opt.per_tensor ? int64_t{1} : qw.form.N});
      qw.sum = add_const_value(g, w.name + ".wsum", DType::kInt32, {qw.form.N});
    }
    Node& out = g.nodes[static_cast<size_t>(c.node)];
    const int x = n.inputs[0];
    const int bias = c.role == WeightRole::kGemm ? gemm_bias(g, n, qw.form.N)
                                                 : (n.inputs.size() > 2 ? n.inputs[2] : kNoValue);
    out.domain = kSaraiDomain;
    out.inputs = {x, qw.q, qw.scale, qw.sum};
    if (bias != kNoValue) out.inputs.push_back(bias);
    if (c.role == WeightRole::kMatMul || c.role == WeightRole::kGemm) {
      out.op_type = "QMatMul";
      out.attrs.clear();
      out.attrs["K"] = Attribute::of_int(qw.form.K);
      out.attrs["N"] = Attribute::of_int(qw.form.N);
      // A row (token) far larger than the others, as transformers' sink
      // tokens are, would leave them few levels under one range per call.
      if (!static_x && opt.matmul_activations == "per-row") out.attrs["x_per_row"] = Attribute::of_int(1);
    } else {
      out.op_type = c.role == WeightRole::kConv ? "QConv" : "QConvTranspose";
      out.attrs["weight_shape"] =
          Attribute::of_ints(src.values[static_cast<size_t>(c.weight_value)].initializer.shape().to_vector());
    }
    // Depthwise: each output reads one input channel, whose range after a
    // BatchNorm can be far narrower than the tensor's; its own scale, chosen
    // at run time, keeps its resolution at no measurable cost
    // (kernels/qmatmul_qconv.cc), and beats one calibrated range too
    // (PaddleOCR rec: 0.9917 against 0.9860 with --static), so it applies
    // under --static as well unless per-tensor is asked for.
    const bool x_per_channel = x_per_channel_at_run_time(src, c, opt);
    if (x_per_channel) out.attrs["x_per_channel"] = Attribute::of_int(1);
    if (static_x && !x_per_channel) {
      const std::string& xname = src.values[static_cast<size_t>(x)].name;
      auto r = opt.activation_ranges.find(xname);
      if (r == opt.activation_ranges.end())
        return Status::error(prefix + n.describe() + ": no calibrated range for its input '" + xname +
                             "' (static quantization needs one for every quantized node)");
      out.attrs["x_min"] = Attribute::of_float(r->second.lo);
      out.attrs["x_max"] = Attribute::of_float(r->second.hi);
    }
  }
  return rewrite_recurrent(src, opt, job);
}

Status check_output_path(const Model& model, const std::string& out_path) {
  if (out_path.empty()) return Status::error("no output path given");
  const fs::path out(out_path);
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return Status::error("cannot write '" + out_path + "': folder '" + dir.string() + "' does not exist");
  if (!fs::is_directory(dir, ec))
    return Status::error("cannot write '" + out_path + "': '" + dir.string() + "' is not a folder");
  if (fs::is_directory(out, ec)) return Status::error("cannot write '" + out_path + "': it is a folder");
  if (fs::exists(out, ec)) {
    std::vector<fs::path> sources;
    if (!model.path.empty()) sources.push_back(model.path);
    const fs::path model_dir = fs::path(model.path).has_parent_path() ? fs::path(model.path).parent_path() : ".";
    for (const ExternalDataFile& e : model.external_data) sources.push_back(model_dir / e.location);
    for (const fs::path& s : sources)
      if (fs::equivalent(out, s, ec))
        return Status::error("cannot write '" + out_path + "': it is the source file '" + s.string() +
                             "'; choose another output path");
  }
  return Status::ok();
}

}  // namespace

std::string canonical_options(const QuantOptions& o) {
  std::string s;
  if (o.per_tensor) s += "--per-tensor";
  for (const std::string& g : o.keep_fp32) s += std::string(s.empty() ? "" : " ") + "--keep-fp32 '" + g + "'";
  s += std::string(s.empty() ? "" : " ") + "--min-elements " + std::to_string(o.min_elements);
  return s;
}

bool x_per_channel_at_run_time(const Graph& g, const WeightChoice& c, const ConvertOptions& opt) {
  if (!c.quantize || c.role != WeightRole::kConv || opt.depthwise_activations != "per-channel") return false;
  const Shape& ws = g.values[static_cast<size_t>(c.weight_value)].initializer.shape();
  return g.nodes[static_cast<size_t>(c.node)].attr_int("group", 1) > 1 && ws.size() >= 3 && ws[1] == 1;
}

Status check_activation_schemes(const ConvertOptions& opt, const std::string& out_path) {
  if (opt.depthwise_activations != "per-channel" && opt.depthwise_activations != "per-tensor")
    return Status::error(out_path + ": depthwise activations '" + opt.depthwise_activations +
                         "' are not per-channel or per-tensor");
  if (opt.matmul_activations != "per-row" && opt.matmul_activations != "per-tensor")
    return Status::error(out_path + ": matmul activations '" + opt.matmul_activations +
                         "' are not per-row or per-tensor");
  return Status::ok();
}

Expected<ConvertSummary> convert_to_blob(Model& model, const std::string& out_path, const ConvertOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  SARAI_RETURN_IF_ERROR(check_output_path(model, out_path));
  if (opt.attention != "fp32" && opt.attention != "int8" && opt.attention != "int8-per-tensor")
    return Status::error(out_path + ": attention '" + opt.attention + "' is not fp32, int8 or int8-per-tensor");
  SARAI_RETURN_IF_ERROR(check_activation_schemes(opt, out_path));
  if (opt.recurrent != "fp32" && opt.recurrent != "int8")
    return Status::error(out_path + ": recurrent '" + opt.recurrent + "' is not fp32 or int8");
  auto cancelled = [&] { return opt.cancel && opt.cancel->load(std::memory_order_relaxed); };
  const Status interrupted = Status::error("interrupted");

  promote_constants(model.graph);
  std::vector<Tensor> folded;  // what folded constant nodes read
  if (opt.recurrent == "int8") fold_recurrent_weights(model.graph, &folded);
  ConvertSummary summary;

  // ---- Every graph of the model: the main graph, then the bodies of its
  // If / Loop / Scan nodes at any depth (pre-order), each planned and
  // rewritten with the same rules.
  std::vector<std::unique_ptr<GraphJob>> jobs;
  {
    auto top = std::make_unique<GraphJob>();
    top->src = &model.graph;
    jobs.push_back(std::move(top));
  }
  for (size_t j = 0; j < jobs.size(); ++j) {
    GraphJob& job = *jobs[j];
    if (job.depth > kMaxConvertDepth)
      return Status::error(model.path + ": " + job.where + ": subgraphs nest deeper than " +
                           std::to_string(kMaxConvertDepth));
    Graph& parent = *job.src;
    for (size_t ni = 0; ni < parent.nodes.size(); ++ni) {
      Node& n = parent.nodes[ni];
      bool inlined = false;
      for (const auto& [name, a] : n.attrs) {
        if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
        auto child = std::make_unique<GraphJob>();
        child->own_src = std::make_unique<Graph>(*a.g);
        inlined |= inline_constant_captures(parent, *child->own_src);
        promote_constants(*child->own_src);
        if (opt.recurrent == "int8") fold_recurrent_weights(*child->own_src, &folded);
        child->src = child->own_src.get();
        child->depth = job.depth + 1;
        child->parent = static_cast<int>(j);
        child->parent_node = ni;
        child->attr = name;
        child->prefix = job.prefix + n.name + "." + name + "/";
        child->where = (job.where.empty() ? "" : job.where + ", ") + n.describe() + " " + name;
        jobs.push_back(std::move(child));
      }
      if (inlined) {
        // The bodies no longer capture the outer constants: drop them from
        // the node's implicit inputs.
        const size_t first = static_cast<size_t>(n.explicit_inputs());
        std::vector<int> kept(n.inputs.begin(), n.inputs.begin() + static_cast<long>(first));
        for (size_t i = first; i < n.inputs.size(); ++i)
          if (!parent.values[static_cast<size_t>(n.inputs[i])].is_initializer) kept.push_back(n.inputs[i]);
        n.implicit_inputs = static_cast<int>(kept.size() - first);
        n.inputs = std::move(kept);
      }
    }
  }
  for (auto& jp : jobs) {
    GraphJob& job = *jp;
    job.plan = plan_quantization(*job.src, opt);
    for (const WeightChoice& c : job.plan.choices) {
      summary.choices.push_back(c);
      summary.choices.back().scope = job.prefix;
    }
    const bool static_x = !opt.activation_ranges.empty() && job.depth == 0;
    SARAI_RETURN_IF_ERROR(rewrite_graph(model, opt, static_x, job));
    if (!opt.activation_ranges.empty() && job.depth > 0)
      for (const WeightChoice& c : job.plan.choices) summary.dynamic_subgraph_layers += c.quantize;
  }

  // ---- Which FP32 tensors are still read, anywhere: an outer initializer
  // is copied into the bodies that read it (the same tensor), so a weight
  // is dropped only when no graph reads it in FP32 any more.
  std::set<TensorKey> read_before, read_after;
  for (const Tensor& t : folded) read_before.insert(tensor_key(t));
  for (auto& jp : jobs) {
    const Graph& src = *jp->src;
    auto note = [](const Graph& g, int v, std::set<TensorKey>& into) {
      const Value& val = g.values[static_cast<size_t>(v)];
      if (val.is_initializer && val.initializer.defined()) into.insert(tensor_key(val.initializer));
    };
    for (const Node& n : src.nodes)
      for (int v : n.inputs)
        if (v != kNoValue) note(src, v, read_before);
    for (int v : src.outputs) note(src, v, read_before);
    for (const Node& n : jp->g.nodes)
      for (int v : n.inputs)
        if (v != kNoValue) note(jp->g, v, read_after);
    for (int v : jp->g.outputs) note(jp->g, v, read_after);
  }
  // Drop what the rewrite orphaned (quantized weights, replaced Gemm biases);
  // initializers nobody read in the source are kept as they were. Children
  // first, so each parent's nodes get their rewritten bodies.
  for (size_t jr = jobs.size(); jr-- > 0;) {
    GraphJob& job = *jobs[jr];
    const Graph& src = *job.src;
    Graph& g = job.g;
    std::vector<bool> drop(g.values.size(), false);
    for (size_t v = 0; v < src.values.size(); ++v) {
      const Value& val = src.values[v];
      if (!val.is_initializer || !val.initializer.defined()) continue;
      const TensorKey k = tensor_key(val.initializer);
      drop[v] = read_before.count(k) && !read_after.count(k);
    }
    for (auto& [w, qw] : job.qweights) qw.keep_fp32 = !drop[static_cast<size_t>(w)];
    for (auto& [w, rw] : job.rweights) rw.keep_fp32 = !drop[static_cast<size_t>(w)];
    job.new_index.assign(g.values.size(), kNoValue);
    for (size_t v = 0, k = 0; v < g.values.size(); ++v)
      if (!drop[v]) job.new_index[v] = static_cast<int>(k++);
    job.drop = std::move(drop);
    job.out = std::make_shared<Graph>(without_values(g, job.drop));
    job.value_tensor.assign(job.out->values.size(), -1);
    if (job.parent >= 0) {
      Graph& pg = jobs[static_cast<size_t>(job.parent)]->g;
      pg.nodes[job.parent_node].attrs[job.attr].g = job.out;
    }
  }

  // ---- Sizes for progress.
  uint64_t source_bytes = 0, onnx_bytes = 0;
  std::error_code ec;
  if (!model.path.empty()) {
    onnx_bytes = fs::file_size(model.path, ec);
    if (ec) return Status::error(model.path + ": cannot read the file size: " + ec.message());
  }
  source_bytes = onnx_bytes;
  for (const ExternalDataFile& e : model.external_data) source_bytes += e.file_size;
  uint64_t total = onnx_bytes, done = 0;
  for (auto& jp : jobs) {
    const Graph& src = *jp->src;
    for (size_t v = 0; v < src.values.size(); ++v)
      if (src.values[v].is_initializer &&
          (!jp->drop[v] || jp->qweights.count(static_cast<int>(v)) || jp->rweights.count(static_cast<int>(v))))
        total += src.values[v].initializer.nbytes();
    for (size_t v = src.values.size(); v < jp->new_index.size(); ++v)  // new Gemm biases
      if (jp->new_index[v] != kNoValue && jp->out->values[static_cast<size_t>(jp->new_index[v])].initializer.defined())
        total += jp->out->values[static_cast<size_t>(jp->new_index[v])].initializer.nbytes();
  }
  auto report = [&] {
    if (opt.progress) opt.progress(done, total);
  };
  report();

  // ---- Metadata: the source's digest first (it reads the whole .onnx).
  std::vector<std::pair<std::string, std::string>> meta;
  meta.emplace_back("source.file", model.path.empty() ? "" : fs::path(model.path).filename().string());
  if (!model.path.empty()) {
    auto digest = sha256_file(model.path, [&](uint64_t n) {
      done += n;
      report();
      return !cancelled();
    });
    if (!digest) return digest.status();
    meta.emplace_back("source.sha256", *digest);
  }
  meta.emplace_back("source.bytes", std::to_string(source_bytes));
  // The source's description, so the blob answers for the model it stands
  // in for (ONNX Runtime's ModelMetadata: loader/blob_reader.cc reads it back).
  for (auto& kv : description_metadata(model.description)) meta.push_back(std::move(kv));
  meta.emplace_back("converter", kConverterVersion);
  meta.emplace_back("options", opt.command_line.empty() ? canonical_options(opt) : opt.command_line);
  meta.emplace_back("weight_layout", "n16k4 v" + std::to_string(int8::kWeightLayoutVersion));
  meta.emplace_back("attention", opt.attention);
  meta.emplace_back("recurrent", opt.recurrent);
  meta.emplace_back("depthwise_activations", opt.depthwise_activations == "per-channel" || opt.activation_ranges.empty()
                                                ? opt.depthwise_activations
                                                : "static");
  meta.emplace_back("matmul_activations", opt.activation_ranges.empty() ? opt.matmul_activations : "static");
  for (auto& jp : jobs) {
    for (auto& kv : choice_metadata(*jp->src, jp->plan, jp->prefix)) meta.push_back(std::move(kv));
    for (auto& kv : jp->rchoices) meta.push_back(kv);
  }
  if (summary.dynamic_subgraph_layers > 0)
    meta.emplace_back("static.subgraph_layers",
                      std::to_string(summary.dynamic_subgraph_layers) + " quantized layers inside subgraphs use dynamic "
                      "activation ranges (calibration measures the main graph only)");
  for (const auto& kv : opt.extra_metadata) meta.push_back(kv);

  // ---- Stream the tensors.
  const std::string tmp_path = out_path + ".tmp-" + std::to_string(::getpid());
  auto writer_or = blob::BlobWriter::create(tmp_path, out_path);
  if (!writer_or) return writer_or.status();
  std::unique_ptr<blob::BlobWriter> writer = std::move(writer_or).value();
  writer->set_metadata(std::move(meta));

  std::vector<std::string> mapped_files;
  {
    const fs::path model_dir = fs::path(model.path).has_parent_path() ? fs::path(model.path).parent_path() : ".";
    for (const ExternalDataFile& e : model.external_data) mapped_files.push_back((model_dir / e.location).string());
  }
  const FileMappedRanges mapped =
      mapped_files.empty() ? FileMappedRanges() : FileMappedRanges::current(mapped_files);
  auto release = [&](const Tensor& t) {
    if (t.nbytes() && mapped.contains(t.raw(), t.nbytes())) release_pages(t.raw(), t.nbytes());
  };
  // A tensor several graphs hold (an outer initializer copied into bodies)
  // is stored once; so is a weight quantized the same way in several graphs.
  std::map<TensorKey, int32_t> stored;
  std::map<std::pair<TensorKey, std::string>, std::array<int32_t, 3>> stored_q;
  std::map<std::pair<TensorKey, std::string>, std::vector<int32_t>> stored_r;  // recurrent: 3 per matrix
  std::set<TensorKey> fp32_weights;  // MatMul/Gemm/Conv/ConvTranspose weights kept in FP32
  std::set<std::pair<TensorKey, std::string>> quantized_weights;

  std::vector<float> fbuf;
  std::vector<int8_t> qbuf;
  std::vector<float> sbuf;
  std::vector<int32_t> sumbuf;
  for (auto& jp : jobs) {
    GraphJob& job = *jp;
    const Graph& src = *job.src;
    const Graph& g = *job.out;
    std::vector<int32_t>& value_tensor = job.value_tensor;
    auto write_as_is = [&](int v_out, const Tensor& t) -> Expected<bool> {
      const TensorKey key = tensor_key(t);
      if (auto it = stored.find(key); it != stored.end()) {
        value_tensor[static_cast<size_t>(v_out)] = it->second;
        return false;
      }
      const Value& val = g.values[static_cast<size_t>(v_out)];
      blob::TensorSpec spec;
      spec.name = job.prefix + val.name;
      spec.dtype = t.dtype();
      spec.dims = t.shape();
      auto idx = writer->add_tensor(spec, t.raw(), t.nbytes());
      if (!idx) return idx.status();
      value_tensor[static_cast<size_t>(v_out)] = *idx;
      stored.emplace(key, *idx);
      return true;
    };

    // A recurrent layer's W or R: each direction's matrix (GRU's R: each
    // part) quantized per gate row as Wᵀ [K, rows] packed N16K4.
    auto write_recurrent = [&](GraphJob& jb, const Value& wv, RWeight& rw) -> Status {
      const Tensor& w = wv.initializer;
      const uint64_t start = done;
      const int v_out = jb.new_index[static_cast<size_t>(rw.source)];
      if (rw.keep_fp32) {
        auto fresh = write_as_is(v_out, w);
        if (!fresh) return fresh.status();
      }
      const std::pair<TensorKey, std::string> qkey{tensor_key(w), "recurrent:" + std::to_string(rw.parts.size()) +
                                                                      (opt.per_tensor ? ":t" : ":c")};
      auto st = stored_r.find(qkey);
      if (st == stored_r.end()) {
        SARAI_RETURN_IF_ERROR(to_float(wv.name, w, fbuf).with_prefix(model.path.empty() ? "" : model.path + ": "));
        release(w);
        std::vector<int32_t> idx;
        for (int64_t d = 0; d < rw.dirs; ++d)
          for (size_t part = 0; part < rw.parts.size(); ++part) {
            if (cancelled()) return interrupted;
            const auto [row0, rows] = rw.parts[part];
            WeightForm f;
            f.kind = WeightForm::Kind::kPackedNK;
            f.N = rows;
            f.K = rw.K;
            qbuf.resize(static_cast<size_t>(f.q_bytes()));
            sbuf.resize(opt.per_tensor ? 1 : static_cast<size_t>(rows));
            sumbuf.resize(static_cast<size_t>(rows));
            quantize_weight(fbuf.data() + (d * rw.rows + row0) * rw.K, f, opt.per_tensor, 1.f, qbuf.data(), sbuf.data(),
                            sumbuf.data());
            const std::array<int, 3>& vals = rw.values[static_cast<size_t>(d) * rw.parts.size() + part];
            auto name = [&](int k) { return jb.prefix + jb.out->values[static_cast<size_t>(jb.new_index[static_cast<size_t>(vals[static_cast<size_t>(k)])])].name; };
            blob::TensorSpec scale_spec;
            scale_spec.name = name(1);
            scale_spec.dtype = DType::kFloat32;
            scale_spec.dims = {static_cast<int64_t>(sbuf.size())};
            auto si = writer->add_tensor(scale_spec, sbuf.data(), sbuf.size() * sizeof(float));
            if (!si) return si.status();
            blob::TensorSpec sum_spec;
            sum_spec.name = name(2);
            sum_spec.dtype = DType::kInt32;
            sum_spec.dims = {rows};
            auto ui = writer->add_tensor(sum_spec, sumbuf.data(), sumbuf.size() * sizeof(int32_t));
            if (!ui) return ui.status();
            blob::TensorSpec q_spec;
            q_spec.name = name(0);
            q_spec.dtype = DType::kInt8;
            q_spec.dims = {f.K, f.N};
            q_spec.layout = blob::Layout::kPackedN16K4;
            q_spec.scheme = opt.per_tensor ? blob::Scheme::kInt8PerTensor : blob::Scheme::kInt8PerChannel;
            q_spec.axis = opt.per_tensor ? -1 : 1;
            q_spec.scale_tensor = *si;
            q_spec.sum_tensor = opt.per_tensor ? -1 : *ui;
            auto qi = writer->add_tensor(q_spec, qbuf.data(), qbuf.size());
            if (!qi) return qi.status();
            idx.insert(idx.end(), {*qi, *si, *ui});
          }
        st = stored_r.emplace(qkey, std::move(idx)).first;
        ++summary.quantized;
      }
      for (size_t i = 0; i < rw.values.size(); ++i)
        for (size_t k = 0; k < 3; ++k)
          jb.value_tensor[static_cast<size_t>(jb.new_index[static_cast<size_t>(rw.values[i][k])])] = st->second[3 * i + k];
      done = start + w.nbytes();
      report();
      return Status::ok();
    };

    for (size_t v = 0; v < job.new_index.size(); ++v) {
      if (cancelled()) {
        writer->abort();
        return interrupted;
      }
      auto qit = v < src.values.size() ? job.qweights.find(static_cast<int>(v)) : job.qweights.end();
      const bool is_new = v >= src.values.size();
      const int v_out = job.new_index[v];
      if (auto rit = v < src.values.size() ? job.rweights.find(static_cast<int>(v)) : job.rweights.end();
          rit != job.rweights.end()) {
        SARAI_RETURN_IF_ERROR(write_recurrent(job, src.values[v], rit->second));
        continue;
      }
      if (qit == job.qweights.end()) {
        // Written as is: every kept initializer with bytes (new Q tensors are
        // written with their source weight below).
        if (v_out == kNoValue) continue;
        const Value& val = g.values[static_cast<size_t>(v_out)];
        if (!val.is_initializer || !val.initializer.defined()) continue;
        auto fresh = write_as_is(v_out, val.initializer);
        if (!fresh) return fresh.status();
        if (!is_new) release(val.initializer);
        done += val.initializer.nbytes();
        if (*fresh) ++summary.other_tensors;
        report();
        continue;
      }

      QWeight& qw = qit->second;
      const Value& wv = src.values[v];
      const Tensor& w = wv.initializer;
      const uint64_t wbytes = w.nbytes();
      const uint64_t start = done;
      const WeightForm& f = qw.form;
      const TensorKey wkey = tensor_key(w);
      const std::pair<TensorKey, std::string> qkey{wkey, form_key(qw, opt.per_tensor)};
      if (qw.keep_fp32) {
        auto fresh = write_as_is(v_out, w);
        if (!fresh) return fresh.status();
      }
      const int vq = job.new_index[static_cast<size_t>(qw.q)], vs = job.new_index[static_cast<size_t>(qw.scale)],
                vsum = job.new_index[static_cast<size_t>(qw.sum)];
      if (auto it = stored_q.find(qkey); it != stored_q.end()) {
        // Quantized the same way in another graph: its tensors serve here too.
        value_tensor[static_cast<size_t>(vq)] = it->second[0];
        value_tensor[static_cast<size_t>(vs)] = it->second[1];
        value_tensor[static_cast<size_t>(vsum)] = it->second[2];
        done = start + wbytes;
        report();
        continue;
      }
      SARAI_RETURN_IF_ERROR(to_float(wv.name, w, fbuf).with_prefix(model.path.empty() ? "" : model.path + ": "));
      release(w);
      done = start + wbytes / 4;
      report();

      qbuf.resize(static_cast<size_t>(f.q_bytes()));
      sbuf.resize(opt.per_tensor ? 1 : static_cast<size_t>(f.N));
      sumbuf.resize(static_cast<size_t>(f.N));
      const bool finished = quantize_weight(fbuf.data(), f, opt.per_tensor, qw.alpha, qbuf.data(), sbuf.data(),
                                            sumbuf.data(), [&](double frac) {
                                              done = start + wbytes / 4 +
                                                     static_cast<uint64_t>(frac * static_cast<double>(wbytes - wbytes / 4));
                                              report();
                                              return !cancelled();
                                            });
      if (!finished) {
        writer->abort();
        return interrupted;
      }
      blob::TensorSpec scale_spec;
      scale_spec.name = job.prefix + g.values[static_cast<size_t>(vs)].name;
      scale_spec.dtype = DType::kFloat32;
      scale_spec.dims = {static_cast<int64_t>(sbuf.size())};
      auto si = writer->add_tensor(scale_spec, sbuf.data(), sbuf.size() * sizeof(float));
      if (!si) return si.status();
      blob::TensorSpec sum_spec;
      sum_spec.name = job.prefix + g.values[static_cast<size_t>(vsum)].name;
      sum_spec.dtype = DType::kInt32;
      sum_spec.dims = {f.N};
      auto ui = writer->add_tensor(sum_spec, sumbuf.data(), sumbuf.size() * sizeof(int32_t));
      if (!ui) return ui.status();
      blob::TensorSpec q_spec;
      q_spec.name = job.prefix + g.values[static_cast<size_t>(vq)].name;
      q_spec.dtype = DType::kInt8;
      q_spec.dims = f.packed() ? Shape{f.K, f.N} : w.shape();
      q_spec.layout = f.packed() ? blob::Layout::kPackedN16K4 : blob::Layout::kPlain;
      q_spec.scheme = opt.per_tensor ? blob::Scheme::kInt8PerTensor : blob::Scheme::kInt8PerChannel;
      // Per-tensor: one scale, but the sums stay per channel (the kernels need
      // Σ_k w[k][n] for every n); the format ties a companion's size to the
      // scheme's channel count, so they are then only the node's input.
      q_spec.axis = opt.per_tensor ? -1 : f.packed() ? 1 : (qw.role == WeightRole::kConvTranspose ? 1 : 0);
      q_spec.scale_tensor = *si;
      q_spec.sum_tensor = opt.per_tensor ? -1 : *ui;
      auto qi = writer->add_tensor(q_spec, qbuf.data(), qbuf.size());
      if (!qi) return qi.status();
      value_tensor[static_cast<size_t>(vq)] = *qi;
      value_tensor[static_cast<size_t>(vs)] = *si;
      value_tensor[static_cast<size_t>(vsum)] = *ui;
      stored_q.emplace(qkey, std::array<int32_t, 3>{*qi, *si, *ui});
      quantized_weights.insert(qkey);
      done = start + wbytes;
      ++summary.quantized;
      report();
    }
    // FP32-kept weights of MatMul/Gemm/Conv/ConvTranspose (counted once each).
    for (const WeightChoice& c : job.plan.choices)
      if (!c.quantize && c.weight_value != kNoValue && src.values[static_cast<size_t>(c.weight_value)].is_initializer &&
          !job.qweights.count(c.weight_value))
        fp32_weights.insert(tensor_key(src.values[static_cast<size_t>(c.weight_value)].initializer));
  }
  if (cancelled()) {
    writer->abort();
    return interrupted;
  }
  summary.kept_fp32 = static_cast<int>(fp32_weights.size());
  summary.other_tensors -= summary.kept_fp32;

  blob::SubgraphTensors subs;
  for (size_t j = 1; j < jobs.size(); ++j) subs[jobs[j]->out.get()] = jobs[j]->value_tensor;
  SARAI_RETURN_IF_ERROR(writer->finish(*jobs[0]->out, jobs[0]->value_tensor, &subs));
  summary.bytes_in = source_bytes;
  summary.bytes_out = fs::file_size(out_path, ec);
  if (ec) summary.bytes_out = writer->bytes_written();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace sarai::quant
