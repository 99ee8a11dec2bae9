#include "quantizer/eval/accuracy_check.h"

#include <algorithm>
#include <map>

namespace sarai::eval {
namespace {

bool is_float(DType t) { return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16; }

const Tensor* find_output(const std::vector<NamedTensor>& outs, const std::string& name) {
  for (const NamedTensor& t : outs)
    if (t.name == name) return &t.tensor;
  return nullptr;
}

}  // namespace

Expected<GeneratedInputs> generate_inputs(const Graph& g, int64_t batch, int64_t other,
                                          const std::function<Tensor(DType, const Shape&)>& make,
                                          int64_t max_elements) {
  GeneratedInputs r;
  r.set.name = "generated";
  std::map<std::string, int64_t> symbols;
  for (int id : g.inputs) {
    const Value& v = g.values[static_cast<size_t>(id)];
    if (v.dtype == DType::kUndefined) return Status::error("input '" + v.name + "' declares no dtype");
    if (v.dtype == DType::kString) return Status::error("input '" + v.name + "' holds strings");
    if (!v.has_shape) return Status::error("input '" + v.name + "' declares no shape");
    Shape shape;
    for (size_t k = 0; k < v.dims.size(); ++k) {
      const Dim& d = v.dims[k];
      if (d.is_fixed()) {
        shape.push_back(d.value);
        continue;
      }
      const int64_t value = k == 0 && v.dims.size() >= 2 ? batch : other;
      if (d.symbol.empty()) {
        shape.push_back(value);
        r.resolved.push_back(v.name + "[" + std::to_string(k) + "]=" + std::to_string(value));
        continue;
      }
      auto [it, fresh] = symbols.emplace(d.symbol, value);
      if (fresh) r.resolved.push_back(d.symbol + "=" + std::to_string(value));
      shape.push_back(it->second);
    }
    auto n = checked_numel(shape, dtype_size(v.dtype));
    if (!n || *n > max_elements)
      return Status::error("input '" + v.name + "' of shape " + shape_to_string(shape) + " is too large to generate");
    r.set.tensors.push_back({v.name, make(v.dtype, shape)});
  }
  return r;
}

Expected<AccuracyCheck> check_accuracy(const ReferenceOutputs& reference, Session& test,
                                       const std::vector<InputSet>& sets, const std::atomic<bool>* cancel) {
  AccuracyCheck c;
  const Graph& rg = reference.session->graph();
  const Graph& tg = test.graph();
  for (int id : rg.outputs) {
    const std::string& n = rg.values[static_cast<size_t>(id)].name;
    const Tensor* first = reference.per_set.empty() ? nullptr : find_output(reference.per_set[0], n);
    if (first == nullptr || !is_float(first->dtype())) {
      ++c.skipped;
      continue;
    }
    const int tid = tg.find_value(n);
    if (tid == kNoValue || std::find(tg.outputs.begin(), tg.outputs.end(), tid) == tg.outputs.end())
      return Status::error(test.model().path + ": has no output '" + n + "'");
    c.names.push_back(n);
  }
  if (c.names.empty()) return Status::error("the model has no float output to compare");
  c.errors.resize(c.names.size());
  std::vector<NamedTensor> out;
  for (size_t k = 0; k < sets.size() && k < reference.per_set.size(); ++k) {
    if (cancel && cancel->load()) return Status::error("interrupted");
    if (Status st = test.run(sets[k].tensors, &out); !st) return Status::error(sets[k].name + ": " + st.message());
    for (size_t i = 0; i < c.names.size(); ++i) {
      const Tensor* r = find_output(reference.per_set[k], c.names[i]);
      const Tensor* t = find_output(out, c.names[i]);
      if (r == nullptr || t == nullptr)
        return Status::error(sets[k].name + ": output '" + c.names[i] + "' is missing");
      if (Status st = c.errors[i].add(*r, *t); !st)
        return Status::error(sets[k].name + ": output '" + c.names[i] + "': " + st.message());
    }
  }
  // A NaN cosine (non-finite values in the test output) counts as the worst.
  auto key = [](double cos) { return cos == cos ? cos : -3.0; };
  c.min_cosine = c.errors[0].cosine();
  c.worst = c.names[0];
  for (size_t i = 1; i < c.names.size(); ++i)
    if (key(c.errors[i].cosine()) < key(c.min_cosine)) {
      c.min_cosine = c.errors[i].cosine();
      c.worst = c.names[i];
    }
  return c;
}

Expected<std::vector<LayerRank>> worst_layers_by_local_error(std::shared_ptr<const Model> ref,
                                                             std::shared_ptr<const Model> test,
                                                             const std::vector<InputSet>& sets, int threads,
                                                             const KernelTable& kernels, const std::string& attention,
                                                             size_t count, const std::atomic<bool>* cancel) {
  PerLayer layers;
  SARAI_RETURN_IF_ERROR(
      layers.init(ref, test, threads, kernels, attention, /*stream_weights=*/true, /*accumulated=*/false));
  for (const InputSet& set : sets) {
    if (cancel && cancel->load()) return Status::error("interrupted");
    if (Status st = layers.add(set.tensors); !st) return Status::error(set.name + ": " + st.message());
  }
  std::vector<LayerRank> r;
  for (const LayerError* l : layers.sorted()) {
    if (r.size() >= count) break;
    r.push_back({l->node, l->op, l->local.relative_l2(), l->local.cosine()});
  }
  return r;
}

}  // namespace sarai::eval
