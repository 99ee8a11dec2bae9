// The contract between the executor and an op implementation.
//
// A kernel is a plain function `Status fn(KernelContext&)`. It reads its
// inputs and attributes through the context, infers its output shapes from
// the actual input shapes, asks the context for output storage and fills it.
// It returns an error (a one-line message; the executor prefixes the node)
// for anything the model can get wrong: bad attributes, mismatched shapes.
// Kernels are registered explicitly in kernels/registry.cc.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

class KernelContext {
 public:
  KernelContext(const Node& node, int64_t opset, std::vector<const Tensor*> inputs,
                int num_threads)
      : node_(node), opset_(opset), inputs_(std::move(inputs)),
        outputs_(node.outputs.size()), num_threads_(num_threads) {}

  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  int num_threads() const { return num_threads_; }

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  // True when input i exists and was not omitted (optional inputs may be "").
  bool has_input(int i) const {
    return i < num_inputs() && inputs_[static_cast<size_t>(i)] != nullptr;
  }
  const Tensor& input(int i) const {
    assert(has_input(i));
    return *inputs_[static_cast<size_t>(i)];
  }
  // Whether the graph wants output i (optional outputs may be omitted).
  bool wants_output(int i) const {
    return i < num_outputs() && node_.outputs[static_cast<size_t>(i)] != kNoValue;
  }

  // Fresh zeroed storage for output i.
  Tensor& allocate_output(int i, DType dtype, Shape shape) {
    outputs_[static_cast<size_t>(i)] = Tensor::allocate(dtype, std::move(shape));
    return outputs_[static_cast<size_t>(i)];
  }
  // Output i is an existing tensor (a view of an input, a constant).
  void set_output(int i, Tensor t) { outputs_[static_cast<size_t>(i)] = std::move(t); }
  std::vector<Tensor>& outputs() { return outputs_; }

 private:
  const Node& node_;
  int64_t opset_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor> outputs_;
  int num_threads_;
};

using KernelFn = Status (*)(KernelContext&);

// (domain, op_type) -> implementation. The default ONNX domain is "";
// "sarai" holds the runtime's own ops (the quantized ones the converter
// writes). An op may have several entries for disjoint opset ranges of the
// default domain; most kernels handle every opset form themselves by
// looking at ctx.opset().
class KernelTable {
 public:
  void add(const std::string& op_type, KernelFn fn, int64_t since_opset = 1,
           int64_t until_opset = INT64_MAX, const std::string& domain = "") {
    table_[key(domain, op_type)].push_back({since_opset, until_opset, fn});
  }
  void add_domain_op(const std::string& domain, const std::string& op_type, KernelFn fn) {
    add(op_type, fn, 1, INT64_MAX, domain);
  }
  KernelFn find(const std::string& op_type, int64_t opset, const std::string& domain = "") const {
    auto it = table_.find(key(domain, op_type));
    if (it == table_.end()) return nullptr;
    for (const Entry& e : it->second)
      if (opset >= e.since && opset <= e.until) return e.fn;
    return nullptr;
  }
  // "Op" for the default domain, "domain::Op" otherwise.
  std::vector<std::string> op_types() const {
    std::vector<std::string> r;
    for (const auto& [k, v] : table_) r.push_back(k);
    return r;
  }
  static std::string key(const std::string& domain, const std::string& op_type) {
    return domain.empty() ? op_type : domain + "::" + op_type;
  }

 private:
  struct Entry {
    int64_t since, until;
    KernelFn fn;
  };
  std::map<std::string, std::vector<Entry>> table_;
};

}  // namespace sarai
