// Measuring a quantized model against its FP32 reference, shared by
// `sarai-rt compare` and `sarai-rt convert --auto-keep-fp32`: input sets
// from a folder, the end-to-end error, and the error per quantized node.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "quantizer/accuracy.h"
#include "runtime/kernel.h"
#include "runtime/session.h"

namespace sarai::cli {

struct InputSet {
  std::string name;  // the folder, or "--input/--random"
  std::vector<NamedTensor> tensors;
};

// DIR/*.npy is one set; otherwise every subfolder of DIR holding .npy files
// is one (sorted by name). Each file is NAME.npy for graph input NAME,
// checked against `session`'s declaration.
Expected<std::vector<InputSet>> read_input_sets(const Session& session, const std::string& dir);

// The lowest cosine over the reference's outputs, accumulated over `sets`.
Expected<double> min_output_cosine(Session& reference, Session& test, const std::vector<InputSet>& sets);

bool is_quantized(const Node& n);

// Per quantized node of the test model: its output against the reference's
// value of the same name, (a) as the INT8 chain computed it (accumulated)
// and (b) with the node alone fed the reference's exact inputs (local).
// Both models run unfused so every value keeps its exported name.
struct LayerError {
  std::string node, op, output;
  quant::OutputError local, accumulated;
};

class PerLayer {
 public:
  Status init(std::shared_ptr<const Model> ref, std::shared_ptr<const Model> test, int threads,
              const KernelTable& kernels) {
    kernels_ = &kernels;
    test_model_ = test;
    const Graph& tg = test->graph;
    for (const Node& n : tg.nodes) {
      if (!is_quantized(n) || n.outputs.empty() || n.outputs[0] == kNoValue) continue;
      const std::string& out = tg.values[static_cast<size_t>(n.outputs[0])].name;
      if (ref->graph.find_value(out) == kNoValue) continue;  // renamed by the converter: no reference
      layers_.push_back({n.name, n.op_type, out, {}, {}});
      nodes_.push_back(&n);
      want_test_.insert(out);
      want_ref_.insert(out);
      for (int v : n.inputs)
        if (v != kNoValue && !tg.values[static_cast<size_t>(v)].is_initializer)
          want_ref_.insert(tg.values[static_cast<size_t>(v)].name);
    }
    SessionOptions o;
    o.num_threads = threads;
    o.fuse = false;
    o.fuse_patterns = false;
    auto capture = [](const std::set<std::string>* want, std::map<std::string, Tensor>* into, const Graph* g) {
      return [=](const Node& n, std::span<const Tensor> outs) {
        for (size_t k = 0; k < outs.size(); ++k) {
          if (n.outputs[k] == kNoValue || !outs[k].defined()) continue;
          const std::string& name = g->values[static_cast<size_t>(n.outputs[k])].name;
          if (want->count(name)) (*into)[name] = outs[k].clone();
        }
      };
    };
    for (int k = 0; k < 2; ++k) {
      const auto& m = k == 0 ? ref : test;
      SessionOptions ok = o;
      ok.observer = capture(k == 0 ? &want_ref_ : &want_test_, k == 0 ? &ref_values_ : &test_values_, &m->graph);
      auto s = Session::create(m, kernels, ok);
      if (!s) return s.status();
      (k == 0 ? ref_ : test_) = std::move(*s);
    }
    return Status::ok();
  }

  size_t size() const { return layers_.size(); }

  Status add(const std::vector<NamedTensor>& inputs) {
    ref_values_.clear();
    test_values_.clear();
    SARAI_RETURN_IF_ERROR(ref_->run(inputs).status());
    SARAI_RETURN_IF_ERROR(test_->run(inputs).status());
    // Graph inputs feed quantized nodes too.
    for (const NamedTensor& t : inputs) ref_values_[t.name] = t.tensor;
    const Graph& tg = test_model_->graph;
    for (size_t i = 0; i < layers_.size(); ++i) {
      LayerError& l = layers_[i];
      const Tensor& expect = ref_values_[l.output];
      if (!expect.defined()) continue;
      SARAI_RETURN_IF_ERROR(l.accumulated.add(expect, test_values_[l.output]));
      const Node& n = *nodes_[i];
      std::vector<const Tensor*> in;
      for (int v : n.inputs) {
        if (v == kNoValue) {
          in.push_back(nullptr);
          continue;
        }
        const Value& val = tg.values[static_cast<size_t>(v)];
        auto it = ref_values_.find(val.name);
        in.push_back(val.is_initializer ? &val.initializer : it == ref_values_.end() ? nullptr : &it->second);
        if (!in.back()) return Status::error(n.describe() + ": the reference has no value '" + val.name + "'");
      }
      std::vector<Tensor> outs(n.outputs.size());
      KernelContext ctx(n, tg.opset, in, outs, ref_->num_threads());
      SARAI_RETURN_IF_ERROR(kernels_->find(n.op_type, tg.opset, n.domain)(ctx));
      SARAI_RETURN_IF_ERROR(l.local.add(expect, outs[0]));
    }
    return Status::ok();
  }

  // Most damaged first: by local relative L2 error.
  std::vector<const LayerError*> sorted() const {
    std::vector<const LayerError*> r;
    for (const LayerError& l : layers_) r.push_back(&l);
    std::stable_sort(r.begin(), r.end(), [](const LayerError* x, const LayerError* y) {
      return x->local.relative_l2() > y->local.relative_l2();
    });
    return r;
  }

 private:
  const KernelTable* kernels_ = nullptr;
  std::shared_ptr<const Model> test_model_;
  std::vector<LayerError> layers_;
  std::vector<const Node*> nodes_;
  std::set<std::string> want_ref_, want_test_;
  std::map<std::string, Tensor> ref_values_, test_values_;
  std::unique_ptr<Session> ref_, test_;
};


}  // namespace sarai::cli
