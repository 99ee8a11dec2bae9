#include "runtime/session.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime/cpu_isa.h"
#include "runtime/crc32c.h"
#include "runtime/fuse.h"
#include "runtime/memory_plan.h"
#include "runtime/memory_stats.h"
#include "runtime/parallel.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL, which we ignore
#endif

namespace sarai {

namespace {
constexpr uint64_t kAlign = 64;
constexpr size_t kMaxPlans = 8;  // shape signatures kept; the least recently used goes first
std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

// Inputs an op may overwrite with its output (same size): each element is
// read before its position is written (audited per kernel; see
// docs/memory.md). Anything else gets an output buffer of its own.
std::span<const int> in_place_inputs(const Node& n) {
  static const int kBoth[] = {0, 1};
  static const int kFirst[] = {0};
  static const int kResidual[] = {5};  // the fused residual of QMatMul/QConv (runtime/fuse.h)
  const std::string& op = n.op_type;
  if (n.domain == "sarai") {
    if (op == "QMatMul" || op == "QConv") return kResidual;
    if (op == "Gelu" || op == "ScaledSoftmax") return kFirst;
    return {};
  }
  if (!n.domain.empty()) return {};
  if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return kBoth;
  // Pow: only the base; an exponent of another dtype can have the same bytes
  // in another shape.
  if (op == "Pow" || op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "Erf" || op == "Sqrt" ||
      op == "Gelu" || op == "Clip" || op == "HardSigmoid" || op == "HardSwish" || op == "Softmax" ||
      op == "LayerNormalization")
    return kFirst;
  return {};
}
}  // namespace

// A plan for one shape signature: where each node's outputs and workspace
// live in the arena, and how the weights are treated under the budget.
struct Session::Plan {
  std::vector<int64_t> out_offset;    // per node output (Session::out_begin_): arena offset, -1 when not planned
  std::vector<uint64_t> out_capacity;
  std::vector<int64_t> ws_offset;     // per node position
  std::vector<uint64_t> ws_capacity;
  std::vector<uint8_t> release;       // streaming: per weight range, release after use
  std::vector<int> value_buffer;      // per value: its buffer (SessionOptions::check_overlaps)
  MemoryReport report;
  std::atomic<bool> stale{false};  // a run met a size the plan did not foresee
  uint64_t last_use = 0;  // Session::plan_clock_ at its last run (LRU eviction; mutex_)
};

// What one call in flight writes: the arena and the reused scratch of a run.
// Kept in Session::contexts_ for the next call, so that a planned run
// allocates nothing.
struct Session::RunContext {
  ~RunContext() { std::free(arena); }
  uint8_t* arena = nullptr;
  uint64_t arena_capacity = 0;  // counted in Session::arena_bytes_
  std::vector<Tensor> values;   // per graph value, during a run
  std::vector<const Tensor*> node_inputs;
  std::vector<Tensor> node_outputs;
  struct SymbolBinding {
    const std::string* symbol;
    int64_t value;
    const std::string* input;
  };
  std::vector<SymbolBinding> symbols;
  std::vector<int64_t> signature;
  std::vector<double> node_ms;  // SessionOptions::profile: this call's, merged into Session::node_ms_
};

// What a planning pass learns: every buffer's size and lifetime, and which
// buffer each value, node output and workspace is.
struct Recording {
  Recording(size_t values, size_t outputs, size_t positions)
      : value_buffer(values, -1), out_buffer(outputs, -1), ws_buffer(positions, -1) {}
  std::vector<BufferLifetime> buffers;
  std::vector<const uint8_t*> base;  // storage of each buffer during the pass
  std::vector<int> value_buffer;     // per value, -1: not in the arena
  std::vector<int> out_buffer;       // like Plan::out_offset
  std::vector<int> ws_buffer;        // per node position
};

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
    return Status::error(ErrorCode::kUnsupportedOp, msg);
  }
  s->last_use_ = g.last_uses(s->order_);
  s->num_threads_ = options.num_threads > 0 ? options.num_threads : physical_cores();
  s->profile_ = options.profile;
  s->options_ = options;
  if (s->profile_) s->node_ms_.assign(g.nodes.size(), 0.0);
  s->out_begin_.push_back(0);
  for (int node_id : s->order_)
    s->out_begin_.push_back(s->out_begin_.back() + static_cast<int>(g.nodes[static_cast<size_t>(node_id)].outputs.size()));

  // Which weights each node reads, as page ranges of the file mappings
  // (released after use in streaming mode). Nothing here touches a weight.
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  std::vector<bool> counted(g.values.size(), false);
  s->weight_begin_.push_back(0);
  for (int node_id : s->order_) {
    for (int v : g.nodes[static_cast<size_t>(node_id)].inputs) {
      if (v == kNoValue || !g.values[static_cast<size_t>(v)].is_initializer) continue;
      const Tensor& t = g.values[static_cast<size_t>(v)].initializer;
      const auto* p = static_cast<const uint8_t*>(t.raw());
      const uint64_t n = t.nbytes();
      if (n == 0) continue;
      const std::span<const uint8_t>* region = nullptr;
      for (const auto& r : model->mapped_regions)
        if (p >= r.data() && p + n <= r.data() + r.size()) region = &r;
      if (!counted[static_cast<size_t>(v)]) {
        counted[static_cast<size_t>(v)] = true;
        (region ? s->mapped_weight_bytes_ : s->heap_weight_bytes_) += n;
      }
      if (!region) continue;
      const uint64_t lo = std::max<uint64_t>(reinterpret_cast<uintptr_t>(p) / page * page,
                                             reinterpret_cast<uintptr_t>(region->data()));
      const uint64_t hi = std::min<uint64_t>(align_up(reinterpret_cast<uintptr_t>(p) + n, page),
                                             reinterpret_cast<uintptr_t>(region->data() + region->size()));
      s->weight_ranges_.push_back({reinterpret_cast<const uint8_t*>(lo), hi - lo});
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

Expected<std::unique_ptr<Session::Plan>> Session::build_plan(RunContext& ctx, const std::vector<NamedTensor>& inputs) {
  const auto t0 = std::chrono::steady_clock::now();
  const Graph& g = graph();
  const size_t positions = order_.size();
  auto plan = std::make_unique<Plan>();
  const int outs = out_begin_.back();

  // The planning pass (on the inputs plan_for bound): every kernel runs in
  // shape-only mode (outputs in untouched pages, big float work skipped).
  // Should a kernel fail on the zero-filled stand-ins (a shape that depends
  // on float data), record a real run instead.
  Recording rec(g.values.size(), static_cast<size_t>(outs), positions);
  Status st = execute(ctx, nullptr, NodeMemory::Mode::kShapeOnly, &rec);
  if (!st) {
    rec = Recording(g.values.size(), static_cast<size_t>(outs), positions);
    SARAI_RETURN_IF_ERROR(bind_inputs(ctx, inputs));
    st = execute(ctx, nullptr, NodeMemory::Mode::kHeap, &rec);
    // The inputs passed their declared types, yet a node cannot take the
    // shapes they lead to: the caller's input is at fault, not a kernel.
    if (!st) return st.code() == ErrorCode::kUnspecified ? Status::error(ErrorCode::kBadInput, st.message()) : st;
  }
  MemoryReport& r = plan->report;
  for (int id : g.outputs) r.output_bytes += ctx.values[static_cast<size_t>(id)].nbytes();
  for (Tensor& t : ctx.values) t = Tensor();

  // In place: an element-wise op's output takes the buffer of an input that
  // dies at that op (same size, and no other input of the op shares it).
  int in_place = 0;
  if (options_.reuse_buffers) {
    for (size_t pos = 0; pos < positions; ++pos) {
      const Node& node = g.nodes[static_cast<size_t>(order_[pos])];
      if (node.outputs.empty()) continue;
      const int bo = rec.out_buffer[static_cast<size_t>(out_begin_[pos])];
      if (bo < 0 || rec.buffers[static_cast<size_t>(bo)].first != static_cast<int>(pos)) continue;
      for (int j : in_place_inputs(node)) {
        if (j >= static_cast<int>(node.inputs.size()) || node.inputs[static_cast<size_t>(j)] == kNoValue) continue;
        const int vi = node.inputs[static_cast<size_t>(j)];
        const int bi = rec.value_buffer[static_cast<size_t>(vi)];
        if (bi < 0 || bi == bo) continue;
        BufferLifetime& in = rec.buffers[static_cast<size_t>(bi)];
        const BufferLifetime& out = rec.buffers[static_cast<size_t>(bo)];
        if (in.last != static_cast<int>(pos) || in.bytes != out.bytes) continue;
        bool shared = false;
        for (int v : node.inputs)
          if (v != kNoValue && v != vi && rec.value_buffer[static_cast<size_t>(v)] == bi) shared = true;
        if (shared) continue;
        in.last = out.last;
        rec.buffers[static_cast<size_t>(bo)].bytes = 0;
        for (int& b : rec.value_buffer) b = b == bo ? bi : b;
        for (int& b : rec.out_buffer) b = b == bo ? bi : b;
        ++in_place;
        break;
      }
    }
  }

  const ArenaLayout layout = plan_arena(rec.buffers, kAlign, options_.reuse_buffers);
  if (options_.check_overlaps) {
    SARAI_RETURN_IF_ERROR(check_arena_layout(rec.buffers, layout, kAlign));
    plan->value_buffer = rec.value_buffer;
  }
  plan->out_offset.assign(static_cast<size_t>(outs), -1);
  plan->out_capacity.assign(static_cast<size_t>(outs), 0);
  for (size_t i = 0; i < static_cast<size_t>(outs); ++i) {
    const int b = rec.out_buffer[i];
    if (b < 0) continue;
    plan->out_offset[i] = static_cast<int64_t>(layout.offsets[static_cast<size_t>(b)]);
    plan->out_capacity[i] = align_up(rec.buffers[static_cast<size_t>(b)].bytes, kAlign);
  }
  plan->ws_offset.assign(positions, -1);
  plan->ws_capacity.assign(positions, 0);
  for (size_t pos = 0; pos < positions; ++pos) {
    const int b = rec.ws_buffer[pos];
    if (b < 0) continue;
    plan->ws_offset[pos] = static_cast<int64_t>(layout.offsets[static_cast<size_t>(b)]);
    plan->ws_capacity[pos] = align_up(rec.buffers[static_cast<size_t>(b)].bytes, kAlign);
    r.workspace_bytes = std::max(r.workspace_bytes, plan->ws_capacity[pos]);
  }
  r.arena_bytes = layout.size;
  r.lower_bound_bytes = arena_lower_bound(rec.buffers, kAlign);
  for (const BufferLifetime& b : rec.buffers) {
    r.no_reuse_bytes += align_up(b.bytes, kAlign);
    r.buffers += b.bytes > 0;
  }
  r.in_place = in_place;
  r.mapped_weight_bytes = mapped_weight_bytes_;
  r.heap_weight_bytes = heap_weight_bytes_;
  for (size_t pos = 0; pos < positions; ++pos) {
    uint64_t n = 0;
    for (int i = weight_begin_[pos]; i < weight_begin_[pos + 1]; ++i) n += weight_ranges_[static_cast<size_t>(i)].size();
    r.largest_node_weight_bytes = std::max(r.largest_node_weight_bytes, n);
  }
  r.plan_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return plan;
}

Status Session::decide_budget(Plan& plan) {
  MemoryReport& r = plan.report;
  const ProcessMemory now = process_memory();
  const uint64_t resident = resident_weight_bytes();
  r.runtime_bytes = now.rss_bytes > resident ? now.rss_bytes - resident : 0;
  r.budget_bytes = options_.max_memory_bytes;
  const uint64_t base = r.runtime_bytes + r.arena_bytes + r.output_bytes;
  const uint64_t all_resident = base + r.mapped_weight_bytes;
  plan.release.assign(weight_ranges_.size(), 0);
  r.streaming = false;
  r.pinned_weight_bytes = r.mapped_weight_bytes;
  r.needed_bytes = all_resident;
  if (!options_.stream_weights && (r.budget_bytes == 0 || all_resident <= r.budget_bytes)) return Status::ok();
  const uint64_t minimum = base + r.largest_node_weight_bytes;
  if (r.budget_bytes && minimum > r.budget_bytes)
    return Status::error(ErrorCode::kOutOfMemoryBudget, model_->path + ": a memory budget of " + mb(r.budget_bytes) + " is too small: running needs at least " +
                         mb(minimum) + " (activations " + mb(r.arena_bytes + r.output_bytes) + ", the largest node's weights " +
                         mb(r.largest_node_weight_bytes) + ", the runtime itself " + mb(r.runtime_bytes) + ")");
  // Streaming: keep the weights of the first nodes resident while they fit
  // beside the minimum, with a margin for what the estimate cannot see
  // (oneDNN's packing buffers, thread stacks, page tables: 6 to 9 MB on
  // the 1.1 B model; 4% of the budget, within [8, 64] MB), and release
  // every later node's weight pages after it ran.
  r.streaming = true;
  const uint64_t margin = std::clamp<uint64_t>(r.budget_bytes / 25, uint64_t{8} << 20, uint64_t{64} << 20);
  uint64_t room = r.budget_bytes > minimum + margin ? r.budget_bytes - minimum - margin : 0;  // 0 without a budget
  r.pinned_weight_bytes = 0;
  for (size_t i = 0; i < weight_ranges_.size(); ++i) {
    const uint64_t n = weight_ranges_[i].size();
    if (n <= room) {
      room -= n;
      r.pinned_weight_bytes += n;
    } else {
      plan.release[i] = 1;
      room = 0;  // keep the resident part a prefix: later small tensors stream too
    }
  }
  r.needed_bytes = minimum + r.pinned_weight_bytes;
  return Status::ok();
}

Expected<std::shared_ptr<Session::Plan>> Session::plan_for(RunContext& ctx, const std::vector<NamedTensor>& inputs) {
  const Graph& g = graph();
  SARAI_RETURN_IF_ERROR(bind_inputs(ctx, inputs));
  std::vector<int64_t>& sig = ctx.signature;
  sig.clear();
  for (int id : g.inputs) {
    const Tensor& t = ctx.values[static_cast<size_t>(id)];
    sig.push_back(static_cast<int64_t>(t.dtype()));
    sig.push_back(t.rank());
    for (int64_t d : t.shape()) sig.push_back(d);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(sig);
    if (it != plans_.end() && !it->second->stale) {
      it->second->last_use = ++plan_clock_;
      return it->second;
    }
  }
  // Planned without the lock (other signatures' runs go on); a call that
  // planned the same signature meanwhile wins, and this plan is dropped.
  auto built = build_plan(ctx, inputs);
  if (!built) return built.status();
  SARAI_RETURN_IF_ERROR(bind_inputs(ctx, inputs));  // the planning pass consumed them
  SARAI_RETURN_IF_ERROR(decide_budget(**built));
  std::shared_ptr<Plan> plan = std::move(*built);
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = plans_.find(sig);
  if (it != plans_.end() && !it->second->stale) {
    it->second->last_use = ++plan_clock_;
    return it->second;
  }
  if (it != plans_.end()) plans_.erase(it);
  if (plans_.size() >= kMaxPlans) {  // evict the least recently used (a few entries: a scan)
    auto lru = plans_.begin();
    for (auto p = plans_.begin(); p != plans_.end(); ++p)
      if (p->second->last_use < lru->second->last_use) lru = p;
    plans_.erase(lru);  // a call still running it keeps its shared_ptr
  }
  plan->last_use = ++plan_clock_;
  ++plans_built_;
  plans_[sig] = plan;
  return plan;
}

Status Session::fit_arena(RunContext& ctx, const Plan& plan) {
  const uint64_t need = std::max<uint64_t>(plan.report.arena_bytes, kAlign);
  if (need <= ctx.arena_capacity) return Status::ok();
  std::unique_lock<std::mutex> lock(mutex_);
  // This arena is too small: give it up first, so that a call waiting below
  // never holds memory the others wait for.
  std::free(ctx.arena);
  ctx.arena = nullptr;
  arena_bytes_ -= ctx.arena_capacity;
  ctx.arena_capacity = 0;
  // Under a budget every call's arena counts: when this one does not fit
  // beside the others, free the idle ones' and, if that is not enough, wait
  // for calls in flight to end. (The plan's own check, decide_budget, saw
  // one arena; with none other allocated it always passes here.)
  const uint64_t budget = options_.max_memory_bytes;
  while (budget != 0 && arena_bytes_ != 0 && plan.report.needed_bytes + arena_bytes_ > budget) {
    bool freed = false;
    for (RunContext* idle : idle_) {
      if (!idle->arena) continue;
      std::free(idle->arena);
      idle->arena = nullptr;
      arena_bytes_ -= idle->arena_capacity;
      idle->arena_capacity = 0;
      freed = true;
    }
    if (!freed) context_freed_.wait(lock);
  }
  ctx.arena = static_cast<uint8_t*>(std::aligned_alloc(kAlign, align_up(need, kAlign)));
  if (!ctx.arena) return Status::error(model_->path + ": cannot allocate the " + mb(need) + " activation arena");
  ctx.arena_capacity = need;
  arena_bytes_ += need;
  return Status::ok();
}

Expected<MemoryReport> Session::prepare(const std::vector<NamedTensor>& inputs) {
  RunContext* ctx = acquire_context();
  auto plan = plan_for(*ctx, inputs);
  release_context(ctx);
  if (!plan) return plan.status();
  return (*plan)->report;
}

Status Session::execute(RunContext& ctx, Plan* plan, NodeMemory::Mode mode, Recording* rec) {
  const Graph& g = graph();
  set_num_threads(num_threads_);
  if (profile_ && ctx.node_ms.size() != g.nodes.size()) ctx.node_ms.assign(g.nodes.size(), 0.0);
  const bool streaming = plan && plan->report.streaming;
  // Weight pages: on a cold first run ask the kernel to read the next
  // node's weights ahead; when streaming, also map the current node's in one
  // call instead of a fault per page.
  const bool prefetch = mode == NodeMemory::Mode::kPlanned && (streaming || !weights_touched_.load(std::memory_order_relaxed));

  for (size_t pos = 0; pos < order_.size(); ++pos) {
    const int node_id = order_[pos];
    const Node& node = g.nodes[static_cast<size_t>(node_id)];
    ctx.node_inputs.clear();
    for (int v : node.inputs)
      ctx.node_inputs.push_back(v != kNoValue && ctx.values[static_cast<size_t>(v)].defined() ? &ctx.values[static_cast<size_t>(v)]
                                                                                       : nullptr);
    ctx.node_outputs.clear();
    ctx.node_outputs.resize(node.outputs.size());
    NodeMemory mem;
    mem.mode = mode;
    if (plan) {
      const size_t ob = static_cast<size_t>(out_begin_[pos]);
      mem.arena = ctx.arena;
      mem.output_offset = plan->out_offset.data() + ob;
      mem.output_capacity = plan->out_capacity.data() + ob;
      mem.workspace_offset = plan->ws_offset[pos];
      mem.workspace_capacity = plan->ws_capacity[pos];
    }
    if (prefetch) {
      if (streaming)
        for (int i = weight_begin_[pos]; i < weight_begin_[pos + 1]; ++i)
          ::madvise(const_cast<uint8_t*>(weight_ranges_[static_cast<size_t>(i)].data()),
                    weight_ranges_[static_cast<size_t>(i)].size(), MADV_POPULATE_READ);
      if (pos + 1 < order_.size())
        for (int i = weight_begin_[pos + 1]; i < weight_begin_[pos + 2]; ++i)
          ::madvise(const_cast<uint8_t*>(weight_ranges_[static_cast<size_t>(i)].data()),
                    weight_ranges_[static_cast<size_t>(i)].size(), MADV_WILLNEED);
    }
    KernelContext kctx(node, g.opset, ctx.node_inputs, ctx.node_outputs, num_threads_, &mem);
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Status st = kernel_of_node_[static_cast<size_t>(node_id)](kctx);
    if (profile_ && mode == NodeMemory::Mode::kPlanned)
      ctx.node_ms[static_cast<size_t>(node_id)] +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!st.is_ok()) return Status::error(model_->path + ": " + node.describe() + ": " + st.message());
    if (options_.observer && mode != NodeMemory::Mode::kShapeOnly)
      options_.observer(node, std::span<const Tensor>(ctx.node_outputs.data(), ctx.node_outputs.size()));
    if (mem.plan_miss && plan) {
      plan->stale = true;
      ++plan_misses_;
    }
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int v = node.outputs[k];
      if (v == kNoValue) continue;
      if (!ctx.node_outputs[k].defined())
        return Status::error(model_->path + ": " + node.describe() + ": produced no value for output " +
                             std::to_string(k) + " ('" + g.values[static_cast<size_t>(v)].name + "')");
    }
    if (rec) record(ctx, pos, kctx, mem, *rec);
    for (size_t k = 0; k < node.outputs.size(); ++k) {
      int v = node.outputs[k];
      // An output nobody reads and the graph does not return dies at once.
      if (v != kNoValue && last_use_[static_cast<size_t>(v)] >= 0)
        ctx.values[static_cast<size_t>(v)] = std::move(ctx.node_outputs[k]);
    }
    // Release what no later node reads.
    for (int v : node.inputs)
      if (v != kNoValue && last_use_[static_cast<size_t>(v)] == static_cast<int>(pos) &&
          !g.values[static_cast<size_t>(v)].is_initializer)
        ctx.values[static_cast<size_t>(v)] = Tensor();
    if (plan && options_.check_overlaps) SARAI_RETURN_IF_ERROR(check_live_overlaps(ctx, pos, *plan));
    if (streaming)
      for (int i = weight_begin_[pos]; i < weight_begin_[pos + 1]; ++i)
        if (plan->release[static_cast<size_t>(i)])
          ::madvise(const_cast<uint8_t*>(weight_ranges_[static_cast<size_t>(i)].data()),
                    weight_ranges_[static_cast<size_t>(i)].size(), MADV_DONTNEED);
  }
  if (mode == NodeMemory::Mode::kPlanned) weights_touched_.store(true, std::memory_order_relaxed);
  return Status::ok();
}

Status Session::check_live_overlaps(const RunContext& ctx, size_t pos, const Plan& plan) const {
  const Graph& g = graph();
  const uint8_t* lo = ctx.arena;
  const uint8_t* hi = ctx.arena + plan.report.arena_bytes;
  auto in_arena = [&](const Tensor& t) {
    const auto* p = static_cast<const uint8_t*>(t.raw());
    return t.defined() && t.nbytes() > 0 && p >= lo && p < hi;
  };
  const int64_t ws = plan.ws_offset[pos];
  for (size_t a = 0; a < ctx.values.size(); ++a) {
    const Tensor& x = ctx.values[a];
    if (!in_arena(x)) continue;
    const auto* xa = static_cast<const uint8_t*>(x.raw());
    if (ws >= 0 && xa < ctx.arena + ws + plan.ws_capacity[pos] && ctx.arena + ws < xa + x.nbytes())
      return Status::error("plan overlap: value '" + g.values[a].name + "' shares memory with the workspace of " +
                           g.nodes[static_cast<size_t>(order_[pos])].describe());
    for (size_t b = a + 1; b < ctx.values.size(); ++b) {
      const Tensor& y = ctx.values[b];
      if (!in_arena(y) || plan.value_buffer[a] == plan.value_buffer[b]) continue;
      const auto* yb = static_cast<const uint8_t*>(y.raw());
      if (xa < yb + y.nbytes() && yb < xa + x.nbytes())
        return Status::error("plan overlap: live values '" + g.values[a].name + "' and '" + g.values[b].name +
                             "' share memory after " + g.nodes[static_cast<size_t>(order_[pos])].describe());
    }
  }
  return Status::ok();
}

void Session::record(RunContext& ctx, size_t pos, const KernelContext& kctx, const NodeMemory& mem, Recording& rec) {
  const Graph& g = graph();
  const Node& node = g.nodes[static_cast<size_t>(order_[pos])];
  const int p = static_cast<int>(pos);
  const size_t ob = static_cast<size_t>(out_begin_[pos]);
  for (size_t k = 0; k < node.outputs.size(); ++k) {
    const int v = node.outputs[k];
    const Tensor& t = ctx.node_outputs[k];
    int b = -1;
    if (kctx.allocated(static_cast<int>(k))) {
      // A new buffer, alive until the value's last reader (or at once when
      // nobody reads it; graph outputs live to the end).
      const int last = v == kNoValue ? p : std::max(p, last_use_[static_cast<size_t>(v)]);
      b = static_cast<int>(rec.buffers.size());
      rec.buffers.push_back({t.nbytes(), p, last});
      rec.base.push_back(static_cast<const uint8_t*>(t.raw()));
      rec.out_buffer[ob + k] = b;
    } else if (t.defined() && v != kNoValue) {
      // A view: if it points into an input's buffer, that buffer must live
      // as long as the view is read.
      const auto* q = static_cast<const uint8_t*>(t.raw());
      for (int in : node.inputs) {
        const int bi = in == kNoValue ? -1 : rec.value_buffer[static_cast<size_t>(in)];
        if (bi < 0) continue;
        const uint8_t* base = rec.base[static_cast<size_t>(bi)];
        if (q >= base && q < base + std::max<uint64_t>(rec.buffers[static_cast<size_t>(bi)].bytes, 1)) {
          b = bi;
          BufferLifetime& buf = rec.buffers[static_cast<size_t>(bi)];
          buf.last = std::max(buf.last, last_use_[static_cast<size_t>(v)]);
          break;
        }
      }
    }
    if (v != kNoValue) rec.value_buffer[static_cast<size_t>(v)] = b;
  }
  if (mem.workspace_used > 0) {
    rec.ws_buffer[pos] = static_cast<int>(rec.buffers.size());
    rec.buffers.push_back({mem.workspace_used, p, p});
    rec.base.push_back(nullptr);
  }
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
