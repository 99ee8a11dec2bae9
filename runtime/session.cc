#include "runtime/session.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime/cpu_isa.h"
#include "runtime/crc32c.h"
#include "runtime/fuse.h"
#include "runtime/mapped_file.h"
#include "runtime/memory_plan.h"
#include "runtime/memory_stats.h"
#include "runtime/parallel.h"
#include "runtime/session_internal.h"

// Session's creation and calls (runtime/session.h): the checks of create(),
// input binding, run contexts, the result cache. Planning is in
// session_plan.cc, the walk over the nodes in session_execute.cc.
namespace sarai {

std::string describe_value_type(const Value& v) {
  std::string s = v.dtype == DType::kUndefined ? "tensor" : dtype_name(v.dtype);
  if (!v.has_shape) return s + " of any shape";
  s += " [";
  for (size_t i = 0; i < v.dims.size(); ++i) s += (i ? ", " : "") + v.dims[i].to_string();
  return s + "]";
}

Expected<std::string> attention_precision_for(const Model& model, AttentionPrecision option) {
  switch (option) {
    case AttentionPrecision::kFloat32: return std::string("fp32");
    case AttentionPrecision::kInt8: return std::string("int8");
    case AttentionPrecision::kInt8PerTensor: return std::string("int8-per-tensor");
    case AttentionPrecision::kModel: break;
  }
  std::string p = "fp32";
  for (const auto& [k, v] : model.metadata) {
    if (k != "attention") continue;
    if (v != "fp32" && v != "int8" && v != "int8-per-tensor")
      return Status::error(model.path + ": metadata 'attention' is '" + v + "'; expected fp32, int8 or int8-per-tensor");
    p = v;
  }
  return p;
}

namespace {

// Ops of subgraphs (at any depth) without a kernel, added to `missing` as
// Session::create counts the model's own.
void missing_in_subgraphs(const Node& n, const KernelTable& kernels,
                          std::map<std::string, std::pair<int, std::string>>& missing) {
  for (const auto& [name, a] : n.attrs) {
    if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
    for (const Node& sn : a.g->nodes) {
      if (!kernels.find(sn.op_type, a.g->opset, sn.domain)) {
        auto& m = missing[KernelTable::key(sn.domain, sn.op_type)];
        if (m.first++ == 0) m.second = sn.name;
      }
      missing_in_subgraphs(sn, kernels, missing);
    }
  }
}

// A subgraph run as a session of its own.
class SessionRunner : public SubgraphRunner {
 public:
  explicit SessionRunner(std::unique_ptr<Session> s) : s_(std::move(s)) {}
  const Graph& graph() const override { return s_->graph(); }
  Status run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) override {
    return s_->run(inputs, outputs);
  }

 private:
  std::unique_ptr<Session> s_;
};

// The sessions of node n's subgraphs (null when it has none). Each is a
// model of its own: the subgraph, with its captures appended to its inputs,
// keeping `parent` (whose bytes its weights view) alive; errors name the
// node and attribute through the model's path.
Expected<std::shared_ptr<ControlFlowBodies>> make_bodies(const std::shared_ptr<const Model>& parent, const Node& n,
                                                         const KernelTable& kernels, const SessionOptions& options) {
  std::shared_ptr<ControlFlowBodies> bodies;
  const Graph& pg = parent->graph;
  for (const auto& [name, a] : n.attrs) {
    if (a.kind != Attribute::Kind::kGraph || !a.g) continue;
    auto child = std::make_shared<Model>();
    child->path = parent->path + ": " + n.describe() + " " + name;
    child->ir_version = parent->ir_version;
    child->opset_imports = parent->opset_imports;
    child->metadata = parent->metadata;
    child->mapped_regions = parent->mapped_regions;
    child->keepalive.push_back(parent);
    child->graph = *a.g;
    Graph& cg = child->graph;
    const int formal = static_cast<int>(cg.inputs.size());
    std::vector<int> source;
    for (int c : cg.captures) {
      const std::string& cname = cg.values[static_cast<size_t>(c)].name;
      int from = -1;
      for (int k = n.explicit_inputs(); k < static_cast<int>(n.inputs.size()); ++k)
        if (n.inputs[static_cast<size_t>(k)] != kNoValue && pg.values[static_cast<size_t>(n.inputs[static_cast<size_t>(k)])].name == cname)
          from = k;
      if (from < 0)
        return Status::error(child->path + ": reads '" + cname + "' from the enclosing graph, but the node does not list it");
      source.push_back(from);
      cg.inputs.push_back(c);
    }
    cg.captures.clear();
    auto session = Session::create(std::move(child), kernels, options);
    if (!session) return session.status();
    auto runner = std::make_unique<SessionRunner>(std::move(*session));
    runner->formal_inputs = formal;
    runner->capture_source = std::move(source);
    if (!bodies) bodies = std::make_shared<ControlFlowBodies>();
    bodies->bodies.emplace_back(name, std::move(runner));
  }
  return bodies;
}

}  // namespace

Expected<std::unique_ptr<Session>> Session::create(std::shared_ptr<const Model> model, const KernelTable& kernels,
                                                   SessionOptions options) {
  std::unique_ptr<Session> s(new Session());
  // Decide the ISA level now, before any kernel runs: it also caps oneDNN,
  // which only honours a cap set before its first primitive.
  max_isa();
  SARAI_ASSIGN_OR_RETURN(const std::string attention, attention_precision_for(*model, options.attention));
  SARAI_ASSIGN_OR_RETURN(const Fp32Fallback fallback, fp32_fallback_mode(options.fp32_fallback));
  if (options.fuse || options.fuse_patterns || fallback != Fp32Fallback::kOff) {
    // On a copy of the model (tensors are shared handles: no weight is
    // copied): run in FP32 the quantized convolutions INT8 cannot make
    // faster here (before the epilogue fusion, so they keep their Add/Relu
    // as float ops), fuse exported GELU chains and scaled softmaxes into one
    // op each, fold element-wise ops into the quantized ops' epilogues.
    auto fused = std::make_shared<Model>(*model);
    // Pre-quantized ONNX ops (ConvInteger, MatMulInteger chains) become
    // QConv / QMatMul first, so that the rules below see them as well.
    int changes = options.fuse_patterns ? fuse_integer_ops(fused->graph) + fuse_qdq_ops(fused->graph) : 0;
    changes += s->fp32_nodes_ = apply_fp32_fallback(fused->graph, fallback, &s->fp32_bytes_);
    if (options.fuse_patterns) {
      changes += fuse_gelu(fused->graph);
      changes += fuse_scaled_softmax(fused->graph);
      changes += fuse_attention(fused->graph, attention);
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
  s->in_place_.resize(g.nodes.size());
  s->prepared_.resize(g.nodes.size());
  Status bad_attribute;  // the first node with an attribute (or an input type) its op does not accept
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    KernelFn fn = kernels.find(n.op_type, g.opset, n.domain);
    if (!fn) {
      auto& m = missing[KernelTable::key(n.domain, n.op_type)];
      if (m.first++ == 0) m.second = n.name;
    }
    s->kernel_of_node_[i] = fn;
    missing_in_subgraphs(n, kernels, missing);
    if (const OpSchema* schema = kernels.schema(n.op_type, g.opset, n.domain)) {
      s->in_place_[i] = schema->in_place;
      Status st = check_attributes(n, *schema, g.opset);
      if (st && schema->prepare != nullptr) {
        auto data = schema->prepare(n, g.opset);
        if (data) s->prepared_[i] = std::move(*data);
        else st = Status::error(n.describe() + ": " + data.message());
      }
      // The node's own attributes first, then what its inputs are.
      if (st) st = check_input_types(n, *schema, g);
      if (!st && bad_attribute.is_ok()) bad_attribute = Status::error(model->path + ": " + st.message());
    }
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
    return Status::error(ErrorCode::kUnsupportedOp, msg);
  }
  if (!bad_attribute) return bad_attribute;
  s->last_use_ = g.last_uses(s->order_);
  s->num_threads_ = options.num_threads > 0 ? options.num_threads : physical_cores();
  s->profile_ = options.profile;
  s->options_ = options;
  if (s->profile_) s->node_ms_.assign(g.nodes.size(), 0.0);
  // Control flow: each subgraph runs as a session of its own, with this
  // one's threads and choices (not its budget, cache, observer or profile),
  // handed to the node's kernel as its prepared data.
  SessionOptions body_options = options;
  body_options.num_threads = s->num_threads_;
  body_options.profile = false;
  body_options.observer = nullptr;
  body_options.cache_size = 0;
  body_options.max_memory_bytes = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto bodies = make_bodies(model, g.nodes[i], kernels, body_options);
    if (!bodies) return bodies.status();
    if (*bodies) s->prepared_[i] = std::move(*bodies);
  }
  s->out_begin_.push_back(0);
  for (int node_id : s->order_)
    s->out_begin_.push_back(s->out_begin_.back() + static_cast<int>(g.nodes[static_cast<size_t>(node_id)].outputs.size()));

  // Which weights each node reads, as page ranges of the file mappings
  // (released after use in streaming mode). Nothing here touches a weight.
  std::vector<bool> counted(g.values.size(), false);
  s->weight_begin_.push_back(0);
  for (int node_id : s->order_) {
    for (int v : g.nodes[static_cast<size_t>(node_id)].inputs) {
      if (v == kNoValue || !g.values[static_cast<size_t>(v)].is_initializer) continue;
      const Tensor& t = g.values[static_cast<size_t>(v)].initializer;
      const uint64_t n = t.nbytes();
      if (n == 0) continue;
      const std::span<const uint8_t> pages = mapped_pages(model->mapped_regions, t.raw(), n);
      if (!counted[static_cast<size_t>(v)]) {
        counted[static_cast<size_t>(v)] = true;
        (pages.empty() ? s->heap_weight_bytes_ : s->mapped_weight_bytes_) += n;
      }
      if (!pages.empty()) s->weight_ranges_.push_back(pages);
    }
    s->weight_begin_.push_back(static_cast<int>(s->weight_ranges_.size()));
  }
  s->weight_begin_.push_back(static_cast<int>(s->weight_ranges_.size()));  // a sentinel for "the next node"
  s->model_ = std::move(model);
  return s;
}

Session::~Session() = default;

Session::RunContext* Session::acquire_context() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!idle_.empty()) {
    RunContext* ctx = idle_.back();  // the most recently used: its pages are warm
    idle_.pop_back();
    return ctx;
  }
  contexts_.push_back(std::make_unique<RunContext>());
  idle_.reserve(contexts_.size());  // so that release_context never allocates
  return contexts_.back().get();
}

void Session::release_context(RunContext* ctx) {
  for (Tensor& t : ctx->values) t = Tensor();  // the caller's inputs, arena views
  {
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(ctx);
  }
  context_freed_.notify_all();
}

int Session::plans_built() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return plans_built_;
}

CacheStats Session::cache_stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return cache_stats_;
}

int Session::run_contexts() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int>(contexts_.size());
}

uint64_t Session::arena_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return arena_bytes_;
}

std::vector<double> Session::node_times_ms() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return node_ms_;
}

uint64_t Session::resident_weight_bytes() const { return resident_bytes(model_->mapped_regions); }

Status Session::check_input(const NamedTensor& in) const {
  const Graph& g = graph();
  const std::string& path = model_->path;
  int id = g.find_value(in.name);
  if (id == kNoValue || std::find(g.inputs.begin(), g.inputs.end(), id) == g.inputs.end()) {
    std::string names;
    for (int i : g.inputs) names += (names.empty() ? "" : ", ") + g.values[static_cast<size_t>(i)].name;
    return Status::error(ErrorCode::kBadInput, path + ": the model has no input '" + in.name + "' (its inputs: " + names + ")");
  }
  const Value& v = g.values[static_cast<size_t>(id)];
  const Tensor& t = in.tensor;
  // Built only for a message: a valid input costs no allocation.
  auto got = [&] { return std::string(dtype_name(t.dtype())) + " " + shape_to_string(t.shape()); };
  if (v.dtype != DType::kUndefined && v.dtype != t.dtype())
    return Status::error(ErrorCode::kBadInput, path + ": input '" + in.name + "' must be " + describe_value_type(v) + ", got " + got());
  if (!v.has_shape) return Status::ok();
  if (static_cast<size_t>(t.rank()) != v.dims.size())
    return Status::error(ErrorCode::kBadInput, path + ": input '" + in.name + "' must be " + describe_value_type(v) + " (rank " +
                         std::to_string(v.dims.size()) + "), got " + got());
  for (size_t d = 0; d < v.dims.size(); ++d)
    if (v.dims[d].is_fixed() && v.dims[d].value != t.shape()[d])
      return Status::error(ErrorCode::kBadInput, path + ": input '" + in.name + "' must be " + describe_value_type(v) + ", got " + got() +
                           " (dim " + std::to_string(d) + " must be " + std::to_string(v.dims[d].value) + ")");
  return Status::ok();
}

Status Session::bind_inputs(RunContext& ctx, const std::vector<NamedTensor>& inputs) {
  std::vector<Tensor>& values = ctx.values;
  const Graph& g = graph();
  const std::string& path = model_->path;
  values.resize(g.values.size());
  for (size_t i = 0; i < g.values.size(); ++i)
    values[i] = g.values[i].is_initializer ? g.values[i].initializer : Tensor();
  // A symbolic dim ("frames") must take one value across all inputs.
  auto& symbols = ctx.symbols;
  symbols.clear();
  for (const NamedTensor& in : inputs) {
    SARAI_RETURN_IF_ERROR(check_input(in));
    int id = g.find_value(in.name);
    const Value& v = g.values[static_cast<size_t>(id)];
    for (size_t d = 0; v.has_shape && d < v.dims.size(); ++d) {
      const Dim& dim = v.dims[d];
      if (dim.is_fixed() || dim.symbol.empty()) continue;
      int64_t actual = in.tensor.shape()[d];
      auto it = std::find_if(symbols.begin(), symbols.end(),
                             [&](const RunContext::SymbolBinding& b) { return *b.symbol == dim.symbol; });
      if (it == symbols.end())
        symbols.push_back({&dim.symbol, actual, &in.name});
      else if (it->value != actual)
        return Status::error(ErrorCode::kBadInput, path + ": input '" + in.name + "' has " + dim.symbol + " = " + std::to_string(actual) +
                             ", but input '" + *it->input + "' has " + dim.symbol + " = " +
                             std::to_string(it->value));
    }
    values[static_cast<size_t>(id)] = in.tensor;
  }
  for (int id : g.inputs) {
    if (!values[static_cast<size_t>(id)].defined()) {
      const Value& v = g.values[static_cast<size_t>(id)];
      return Status::error(ErrorCode::kBadInput, path + ": missing input '" + v.name + "' (" + describe_value_type(v) + ")");
    }
  }
  return Status::ok();
}

Status Session::run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs) {
  RunContext* ctx = acquire_context();
  Status st = Status::ok();
  auto planned = plan_for(*ctx, inputs);
  if (!planned) st = planned.status();
  if (st) st = fit_arena(*ctx, **planned);
  if (st) st = run_in(*ctx, *planned, outputs);
  release_context(ctx);
  return st;
}

Status Session::run_in(RunContext& ctx, const std::shared_ptr<Plan>& plan, std::vector<NamedTensor>* outputs) {
  const Graph& g = graph();
  uint32_t crc = 0;
  std::vector<Tensor> miss_inputs;  // a cache miss's inputs, for its entry
  if (options_.cache_size > 0) {
    crc = bound_inputs_crc(ctx);
    std::unique_lock<std::mutex> lock(mutex_);
    if (CacheEntry* hit = cache_lookup(ctx, crc)) {
      ++cache_stats_.hits;
      outputs->clear();
      for (const NamedTensor& o : hit->outputs) outputs->push_back({o.name, o.tensor.clone()});
      return Status::ok();
    }
    ++cache_stats_.misses;
    lock.unlock();
    // The run consumes the bound inputs (values die after their last
    // reader), so the entry's copies are taken now.
    for (int id : g.inputs) miss_inputs.push_back(ctx.values[static_cast<size_t>(id)].clone());
  }
  if (poison_memory()) std::memset(ctx.arena, 0xff, plan->report.arena_bytes);
  Status st = execute(ctx, plan.get(), NodeMemory::Mode::kPlanned, nullptr);  // on the inputs plan_for bound
  if (st) {
    // Hand the outputs over, into the caller's previous buffers when they
    // fit (then nothing is allocated).
    bool same = outputs->size() == g.outputs.size();
    for (size_t i = 0; same && i < g.outputs.size(); ++i)
      same = (*outputs)[i].name == g.values[static_cast<size_t>(g.outputs[i])].name;
    if (!same) {
      outputs->clear();
      for (int id : g.outputs) outputs->push_back({g.values[static_cast<size_t>(id)].name, Tensor()});
    }
    for (size_t i = 0; i < g.outputs.size(); ++i) {
      const Tensor& src = ctx.values[static_cast<size_t>(g.outputs[i])];
      Tensor& dst = (*outputs)[i].tensor;
      const bool reuse = dst.defined() && dst.dtype() == src.dtype() && dst.shape() == src.shape() &&
                         !dst.read_only() && dst.owner_use_count() == 1 && dst.raw() != src.raw();
      if (!reuse) dst = Tensor::allocate(src.dtype(), src.shape());
      if (src.nbytes()) std::memcpy(dst.mutable_raw(), src.raw(), src.nbytes());
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (st && options_.cache_size > 0) cache_store(crc, std::move(miss_inputs), *outputs);
  if (profile_) {
    for (size_t i = 0; i < ctx.node_ms.size(); ++i) node_ms_[i] += ctx.node_ms[i];
    std::fill(ctx.node_ms.begin(), ctx.node_ms.end(), 0.0);
  }
  if (plan->stale) {
    auto it = std::find_if(plans_.begin(), plans_.end(), [&](const auto& p) { return p.second == plan; });
    if (it != plans_.end()) plans_.erase(it);
  }
  return st;
}

uint32_t Session::bound_inputs_crc(const RunContext& ctx) const {
  uint32_t crc = 0;
  for (int id : graph().inputs) {
    const Tensor& t = ctx.values[static_cast<size_t>(id)];
    crc = crc32c(crc, t.raw(), t.nbytes());
  }
  return crc;
}

Session::CacheEntry* Session::cache_lookup(const RunContext& ctx, uint32_t crc) {
  const Graph& g = graph();
  for (auto it = cache_.begin(); it != cache_.end(); ++it) {
    if (it->crc != crc) continue;
    bool same = true;
    for (size_t i = 0; same && i < g.inputs.size(); ++i) {
      const Tensor& a = ctx.values[static_cast<size_t>(g.inputs[i])];
      const Tensor& b = it->inputs[i];
      same = a.dtype() == b.dtype() && a.shape() == b.shape() &&
             (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
    }
    if (!same) continue;
    cache_.splice(cache_.begin(), cache_, it);
    return &cache_.front();
  }
  return nullptr;
}

void Session::cache_store(uint32_t crc, std::vector<Tensor> inputs, const std::vector<NamedTensor>& outputs) {
  CacheEntry e;
  e.crc = crc;
  e.inputs = std::move(inputs);
  for (const Tensor& t : e.inputs) e.bytes += t.nbytes();
  for (const NamedTensor& o : outputs) {
    e.outputs.push_back({o.name, o.tensor.clone()});
    e.bytes += o.tensor.nbytes();
  }
  cache_stats_.bytes += e.bytes;
  cache_.push_front(std::move(e));
  while (cache_.size() > static_cast<size_t>(options_.cache_size)) {
    cache_stats_.bytes -= cache_.back().bytes;
    cache_.pop_back();
  }
  cache_stats_.entries = cache_.size();
}

Expected<std::vector<NamedTensor>> Session::run(const std::vector<NamedTensor>& inputs) {
  std::vector<NamedTensor> outputs;
  SARAI_RETURN_IF_ERROR(run(inputs, &outputs));
  return outputs;
}

}  // namespace sarai
