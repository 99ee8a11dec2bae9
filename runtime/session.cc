#include "runtime/session.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "runtime/cpu_isa.h"
#include "runtime/fuse.h"
#include "runtime/parallel.h"

namespace sarai {

std::string describe_value_type(const Value& v) {
  std::string s = v.dtype == DType::kUndefined ? "tensor" : dtype_name(v.dtype);
  if (!v.has_shape) return s + " of any shape";
  s += " [";
  for (size_t i = 0; i < v.dims.size(); ++i) s += (i ? ", " : "") + v.dims[i].to_string();
  return s + "]";
}

Expected<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model, const KernelTable& kernels,
                                                   SessionOptions options) {
  std::unique_ptr<Session> s(new Session());
  // Decide the ISA level now, before any kernel runs: it also caps oneDNN,
  // which only honours a cap set before its first primitive.
  max_isa();
  if (options.fuse || options.fuse_patterns) {
    // Fuse exported GELU chains and scaled softmaxes into one op each, fold element-wise ops into
    // the quantized ops' epilogues, on a copy of the model (tensors are
    // shared handles: no weight is copied).
    auto fused = std::make_shared<Model>(*model);
    int changes = 0;
    if (options.fuse_patterns) {
      changes += fuse_gelu(fused->graph);
      changes += fuse_scaled_softmax(fused->graph);
      changes += fuse_attention(fused->graph);
    }
    changes += options.fuse ? fuse_quantized_epilogues(fused->graph) : 0;
    if (changes > 0) model = std::move(fused);
  }
  const Graph& g = model->graph;
  auto order = g.topological_order();
  if (!order) return Status::error(model->path + ": " + order.message());
  s->order_ = std::move(*order);

  // Every op without a kernel, in one message: (op -> count, first node).
  std::map<std::string, std::pair<int, std::string>> missing;
  s->kernel_of_node_.resize(g.nodes.size(), nullptr);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    KernelFn fn = kernels.find(n.op_type, g.opset, n.domain);
    if (!fn) {
      auto& m = missing[KernelTable::key(n.domain, n.op_type)];
      if (m.first++ == 0) m.second = n.name;
    }
    s->kernel_of_node_[i] = fn;
  }
  if (!missing.empty()) {
    std::string msg = model->path + ": " + std::to_string(missing.size()) + " unsupported op" +
                      (missing.size() > 1 ? "s" : "") + " at opset " + std::to_string(g.opset) + ": ";
    bool first = true;
    for (const auto& [op, info] : missing) {
      msg += (first ? "" : ", ") + op + " (" + std::to_string(info.first) + " node" + (info.first > 1 ? "s" : "") +
             ", e.g. '" + info.second + "')";
      first = false;
    }
    return Status::error(msg);
  }
  s->last_use_ = g.last_uses(s->order_);
  s->num_threads_ = options.num_threads > 0 ? options.num_threads : physical_cores();
  s->profile_ = options.profile;
  if (s->profile_) s->node_ms_.assign(g.nodes.size(), 0.0);
  s->model_ = std::move(model);
  return s;
}

Status Session::check_input(const NamedTensor& in) const {
  const Graph& g = graph();
  const std::string& path = model_->path;
  int id = g.find_value(in.name);
  if (id == kNoValue || std::find(g.inputs.begin(), g.inputs.end(), id) == g.inputs.end()) {
    std::string names;
    for (int i : g.inputs) names += (names.empty() ? "" : ", ") + g.values[static_cast<size_t>(i)].name;
    return Status::error(path + ": the model has no input '" + in.name + "' (its inputs: " + names + ")");
  }
  const Value& v = g.values[static_cast<size_t>(id)];
  const Tensor& t = in.tensor;
  const std::string got = std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape());
  if (v.dtype != DType::kUndefined && v.dtype != t.dtype())
    return Status::error(path + ": input '" + in.name + "' must be " + describe_value_type(v) + ", got " + got);
  if (!v.has_shape) return Status::ok();
  if (static_cast<size_t>(t.rank()) != v.dims.size())
    return Status::error(path + ": input '" + in.name + "' must be " + describe_value_type(v) + " (rank " +
                         std::to_string(v.dims.size()) + "), got " + got);
  for (size_t d = 0; d < v.dims.size(); ++d)
    if (v.dims[d].is_fixed() && v.dims[d].value != t.shape()[d])
      return Status::error(path + ": input '" + in.name + "' must be " + describe_value_type(v) + ", got " + got +
                           " (dim " + std::to_string(d) + " must be " + std::to_string(v.dims[d].value) + ")");
  return Status::ok();
}

Status Session::bind_inputs(const std::vector<NamedTensor>& inputs, std::vector<Tensor>& values) const {
  const Graph& g = graph();
  const std::string& path = model_->path;
  // A symbolic dim ("frames") must take one value across all inputs.
  std::map<std::string, std::pair<int64_t, std::string>> symbols;  // symbol -> (value, input that set it)
  for (const NamedTensor& in : inputs) {
    SARAI_RETURN_IF_ERROR(check_input(in));
    int id = g.find_value(in.name);
    const Value& v = g.values[static_cast<size_t>(id)];
    for (size_t d = 0; v.has_shape && d < v.dims.size(); ++d) {
      const Dim& dim = v.dims[d];
      if (dim.is_fixed() || dim.symbol.empty()) continue;
      int64_t actual = in.tensor.shape()[d];
      auto [it, fresh] = symbols.emplace(dim.symbol, std::make_pair(actual, in.name));
      if (!fresh && it->second.first != actual)
        return Status::error(path + ": input '" + in.name + "' has " + dim.symbol + " = " + std::to_string(actual) +
                             ", but input '" + it->second.second + "' has " + dim.symbol + " = " +
                             std::to_string(it->second.first));
    }
    values[static_cast<size_t>(id)] = in.tensor;
  }
  for (int id : g.inputs) {
    if (!values[static_cast<size_t>(id)].defined()) {
      const Value& v = g.values[static_cast<size_t>(id)];
      return Status::error(path + ": missing input '" + v.name + "' (" + describe_value_type(v) + ")");
    }
  }
  return Status::ok();
}

Expected<std::vector<NamedTensor>> Session::run(const std::vector<NamedTensor>& inputs) {
  const Graph& g = graph();
  set_num_threads(num_threads_);
  std::vector<Tensor> values(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    if (g.values[i].is_initializer) values[i] = g.values[i].initializer;
  SARAI_RETURN_IF_ERROR(bind_inputs(inputs, values));

  for (size_t pos = 0; pos < order_.size(); ++pos) {
    const int node_id = order_[pos];
    const Node& node = g.nodes[static_cast<size_t>(node_id)];
    std::vector<const Tensor*> in;
    in.reserve(node.inputs.size());
    for (int v : node.inputs)
      in.push_back(v != kNoValue && values[static_cast<size_t>(v)].defined() ? &values[static_cast<size_t>(v)] : nullptr);
    std::vector<Tensor> outs(node.outputs.size());
    KernelContext ctx(node, g.opset, in, outs, num_threads_);
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Status st = kernel_of_node_[static_cast<size_t>(node_id)](ctx);
    if (profile_)
      node_ms_[static_cast<size_t>(node_id)] +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!st.is_ok()) return Status::error(model_->path + ": " + node.describe() + ": " + st.message());
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int v = node.outputs[k];
      if (v == kNoValue) continue;
      Tensor& out = ctx.outputs()[k];
      if (!out.defined())
        return Status::error(model_->path + ": " + node.describe() + ": produced no value for output " +
                             std::to_string(k) + " ('" + g.values[static_cast<size_t>(v)].name + "')");
      // An output nobody reads and the graph does not return dies at once.
      if (last_use_[static_cast<size_t>(v)] >= 0) values[static_cast<size_t>(v)] = std::move(out);
    }
    // Release what no later node reads.
    for (int v : node.inputs)
      if (v != kNoValue && last_use_[static_cast<size_t>(v)] == static_cast<int>(pos) &&
          !g.values[static_cast<size_t>(v)].is_initializer)
        values[static_cast<size_t>(v)] = Tensor();
  }

  std::vector<NamedTensor> outputs;
  for (int id : g.outputs) outputs.push_back({g.values[static_cast<size_t>(id)].name, values[static_cast<size_t>(id)]});
  return outputs;
}

}  // namespace sarai
