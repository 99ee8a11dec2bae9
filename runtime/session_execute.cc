// Session's execution of one call (runtime/session.h): every node in order
// on the call's arena, weight prefetch and streaming release, the observer,
// and the overlap checks of the tests.
#include <sys/mman.h>

#include <chrono>
#include <cstring>

#include "runtime/parallel.h"
#include "runtime/session.h"
#include "runtime/session_internal.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels answer EINVAL, which we ignore
#endif

namespace sarai {

Status Session::execute(RunContext& ctx, Plan* plan, NodeMemory::Mode mode, Recording* rec) {
  const Graph& g = graph();
  set_num_threads(num_threads_);
  if (profile_ && ctx.node_ms.size() != g.nodes.size()) ctx.node_ms.assign(g.nodes.size(), 0.0);
  const bool streaming = plan && plan->report.streaming;
  // Weight pages: on a cold first run ask the kernel to read the next
  // node's weights ahead; when streaming, also map the current node's in one
  // call instead of a fault per page.
  // Unplanned passes count the bytes they hold (NodeMemory::live_bytes).
  const auto live_bytes = mode == NodeMemory::Mode::kPlanned ? nullptr : std::make_shared<std::atomic<uint64_t>>(0);
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
    if (mode != NodeMemory::Mode::kPlanned) mem.live_bytes = live_bytes;
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
    kctx.set_prepared(prepared_[static_cast<size_t>(node_id)].get());
    const auto t0 = profile_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Status st = invoke_kernel(kernel_of_node_[static_cast<size_t>(node_id)], kctx);
    if (profile_ && mode == NodeMemory::Mode::kPlanned)
      ctx.node_ms[static_cast<size_t>(node_id)] +=
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!st.is_ok()) return Status::error(st.code(), model_->path + ": " + node.describe() + ": " + st.message());
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

}  // namespace sarai
