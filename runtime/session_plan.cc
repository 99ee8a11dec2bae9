// Session's memory planning (runtime/session.h, docs/memory.md): the
// planning pass, the arena layout with in-place outputs, weight residency
// under a budget, and the per-signature plan cache.
#include <algorithm>
#include <chrono>
#include <mutex>

#include "runtime/memory_plan.h"
#include "runtime/memory_stats.h"
#include "runtime/session.h"
#include "runtime/session_internal.h"

namespace sarai {
using session_detail::kAlign;
using session_detail::kMaxPlans;
using session_detail::mb;

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
  // More than the machine's memory would fail the real run all the more.
  if (!st && st.code() == ErrorCode::kOutOfMemoryBudget) return st;
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
  // A merged buffer forwards to the one that took it; forwards always point
  // at a buffer that began earlier, which no later merge moves, so a lookup
  // is one step, and the whole pass is linear in nodes and edges.
  int in_place = 0;
  std::vector<int> forward(rec.buffers.size());
  for (size_t b = 0; b < forward.size(); ++b) forward[b] = static_cast<int>(b);
  auto buffer_of = [&](int b) { return b < 0 ? b : forward[static_cast<size_t>(b)]; };
  if (options_.reuse_buffers) {
    for (size_t pos = 0; pos < positions; ++pos) {
      const Node& node = g.nodes[static_cast<size_t>(order_[pos])];
      if (node.outputs.empty()) continue;
      const int bo = buffer_of(rec.out_buffer[static_cast<size_t>(out_begin_[pos])]);
      if (bo < 0 || rec.buffers[static_cast<size_t>(bo)].first != static_cast<int>(pos)) continue;
      for (int j : in_place_[static_cast<size_t>(order_[pos])]) {
        if (j >= static_cast<int>(node.inputs.size()) || node.inputs[static_cast<size_t>(j)] == kNoValue) continue;
        const int vi = node.inputs[static_cast<size_t>(j)];
        const int bi = buffer_of(rec.value_buffer[static_cast<size_t>(vi)]);
        if (bi < 0 || bi == bo) continue;
        BufferLifetime& in = rec.buffers[static_cast<size_t>(bi)];
        const BufferLifetime& out = rec.buffers[static_cast<size_t>(bo)];
        if (in.last != static_cast<int>(pos) || in.bytes != out.bytes) continue;
        bool shared = false;
        for (int v : node.inputs)
          if (v != kNoValue && v != vi && buffer_of(rec.value_buffer[static_cast<size_t>(v)]) == bi) shared = true;
        if (shared) continue;
        in.last = out.last;
        rec.buffers[static_cast<size_t>(bo)].bytes = 0;
        forward[static_cast<size_t>(bo)] = bi;  // bo began at pos, after bi: bi itself never forwards
        ++in_place;
        break;
      }
    }
  }
  for (int& b : rec.value_buffer) b = buffer_of(b);
  for (int& b : rec.out_buffer) b = buffer_of(b);

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
  // Activations and outputs cannot be streamed: past the machine's memory,
  // running would only end in the OOM killer, budget or not.
  if (base > machine_memory_bytes())
    return Status::error(ErrorCode::kOutOfMemoryBudget,
                         model_->path + ": running needs at least " + mb(base) + " (activations " +
                             mb(r.arena_bytes + r.output_bytes) + ", the runtime itself " + mb(r.runtime_bytes) +
                             "), more than this machine's " + mb(machine_memory_bytes()) + " of memory");
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
  // The fresh plan of this signature, marked as used, or null (mutex_ held).
  auto cached = [&]() -> std::shared_ptr<Plan> {
    auto it = plans_.find(sig);
    if (it == plans_.end() || it->second->stale) return nullptr;
    it->second->last_use = ++plan_clock_;
    return it->second;
  };
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (std::shared_ptr<Plan> p = cached()) return p;
  }
  // Planned without the lock (other signatures' runs go on); a call that
  // planned the same signature meanwhile wins, and this plan is dropped.
  auto built = build_plan(ctx, inputs);
  if (!built) return built.status();
  SARAI_RETURN_IF_ERROR(bind_inputs(ctx, inputs));  // the planning pass consumed them
  SARAI_RETURN_IF_ERROR(decide_budget(**built));
  std::shared_ptr<Plan> plan = std::move(*built);
  std::lock_guard<std::mutex> lock(mutex_);
  if (std::shared_ptr<Plan> p = cached()) return p;
  plans_.erase(sig);  // a stale one
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
  ctx.free_arena(arena_bytes_);
  // Under a budget every call's arena counts: when this one does not fit
  // beside the others, free the idle ones' and, if that is not enough, wait
  // for calls in flight to end. (The plan's own check, decide_budget, saw
  // one arena; with none other allocated it always passes here.)
  const uint64_t budget = options_.max_memory_bytes;
  while (budget != 0 && arena_bytes_ != 0 && plan.report.needed_bytes + arena_bytes_ > budget) {
    bool freed = false;
    for (RunContext* idle : idle_) {
      if (!idle->arena) continue;
      idle->free_arena(arena_bytes_);
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

}  // namespace sarai
