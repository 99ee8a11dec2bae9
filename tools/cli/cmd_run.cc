// sarai-rt run: load a model (.onnx or .sarai), run it, write its outputs.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "kernels/cpu/qgemm.h"
#include "loader/npy.h"
#include "loader/tensor_file_name.h"
#include "runtime/cpu_isa.h"
#include "runtime/memory_stats.h"
#include "runtime/session.h"
#include "quantizer/eval/eval.h"
#include "tools/cli/cli.h"

namespace fs = std::filesystem;

namespace sarai::cli {
namespace {

constexpr size_t kProfileTopNodes = 10;

// What tells one convolution or pool from another in a profile: its group
// (depthwise when it equals the channels), kernel and strides.
std::string window_summary(const Node& n) {
  std::string s;
  if (const Attribute* a = n.attr("group"); a && a->i != 1) s += " group " + std::to_string(a->i);
  if (const Attribute* a = n.attr("weight_shape"); a && !a->ints.empty()) s += " weight " + shape_to_string(a->ints);
  if (const Attribute* a = n.attr("kernel_shape")) s += " kernel " + shape_to_string(a->ints);
  if (const Attribute* a = n.attr("strides"); a && std::any_of(a->ints.begin(), a->ints.end(), [](int64_t v) { return v != 1; }))
    s += " strides " + shape_to_string(a->ints);
  return s;
}

// Time per op type over all runs, largest first, with each op's share; then
// the slowest nodes, the ones to look at first.
void print_profile(const Session& session, int runs) {
  const Graph& g = session.graph();
  std::map<std::string, std::pair<double, int>> by_op;
  double total = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    auto& e = by_op[g.nodes[i].op_type];
    e.first += session.node_times_ms()[i] / runs;
    e.second += 1;
    total += session.node_times_ms()[i] / runs;
  }
  std::vector<std::pair<std::string, std::pair<double, int>>> rows(by_op.begin(), by_op.end());
  std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) { return x.second.first > y.second.first; });
  std::printf("profile (mean per run, by op type):\n");
  for (const auto& [op, v] : rows)
    std::printf("  %-22s %10.3f ms %5.1f %%  (%d node%s)\n", op.c_str(), v.first, total > 0 ? 100 * v.first / total : 0.0,
                v.second, v.second == 1 ? "" : "s");
  std::vector<size_t> order(g.nodes.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const size_t top = std::min<size_t>(kProfileTopNodes, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(top), order.end(), [&](size_t a, size_t b) {
    return session.node_times_ms()[a] > session.node_times_ms()[b];
  });
  std::printf("slowest %zu node%s (mean per run):\n", top, top == 1 ? "" : "s");
  for (size_t k = 0; k < top; ++k) {
    const Node& n = g.nodes[order[k]];
    const double ms = session.node_times_ms()[order[k]] / runs;
    std::printf("  %10.3f ms %5.1f %%  %s%s\n", ms, total > 0 ? 100 * ms / total : 0.0, n.describe().c_str(),
                window_summary(n).c_str());
  }
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

void print_plan(const MemoryReport& r) {
  std::printf("memory plan: activation arena %s (%d buffers, %d in place; %s without reuse, lower bound %s), "
              "largest workspace %s, planned in %.1f ms\n",
              megabytes(r.arena_bytes).c_str(), r.buffers, r.in_place, megabytes(r.no_reuse_bytes).c_str(),
              megabytes(r.lower_bound_bytes).c_str(), megabytes(r.workspace_bytes).c_str(), r.plan_ms);
  std::printf("memory plan: weights %s mapped + %s in memory, largest node %s; runtime %s; outputs %s\n",
              megabytes(r.mapped_weight_bytes).c_str(), megabytes(r.heap_weight_bytes).c_str(),
              megabytes(r.largest_node_weight_bytes).c_str(), megabytes(r.runtime_bytes).c_str(),
              megabytes(r.output_bytes).c_str());
}

}  // namespace

Expected<std::vector<NamedTensor>> read_inputs(const Session& session, const std::vector<std::string>& files,
                                               const std::vector<std::string>& randoms, uint64_t seed) {
  const Graph& g = session.graph();
  std::vector<NamedTensor> inputs;
  auto seen = [&](const std::string& name) {
    return std::any_of(inputs.begin(), inputs.end(), [&](const NamedTensor& t) { return t.name == name; });
  };
  for (const std::string& spec : files) {
    std::string name, file;
    if (!split_assignment(spec, &name, &file)) return Status::error("--input '" + spec + "' must be NAME=FILE.npy");
    if (seen(name)) return Status::error("input '" + name + "' is given twice");
    auto t = read_npy(file);
    if (!t) return Status::error(t.message());
    NamedTensor in{name, std::move(*t)};
    Status st = session.check_input(in);
    if (!st) return Status::error(file + ": " + st.message());
    inputs.push_back(std::move(in));
  }
  std::mt19937_64 rng(seed);
  for (const std::string& spec : randoms) {
    std::string name, dims;
    if (!split_assignment(spec, &name, &dims)) return Status::error("--random '" + spec + "' must be NAME=DxDxD");
    if (seen(name)) return Status::error("input '" + name + "' is given twice");
    auto shape = parse_dims(dims);
    if (!shape) return Status::error("--random " + spec + ": " + shape.message());
    int id = g.find_value(name);
    DType dtype = id == kNoValue ? DType::kFloat32 : g.values[static_cast<size_t>(id)].dtype;
    if (dtype == DType::kUndefined) dtype = DType::kFloat32;
    NamedTensor in{name, random_input(dtype, *shape, rng)};
    Status st = session.check_input(in);
    if (!st) return Status::error("--random " + spec + ": " + st.message());
    inputs.push_back(std::move(in));
  }

  return inputs;
}

int cmd_run(const RunArgs& a) {
  const auto t_open = std::chrono::steady_clock::now();
  SessionOptions opts;
  opts.num_threads = a.threads;
  opts.profile = a.profile;
  opts.max_memory_bytes = a.max_memory_mb * 1000000;
  opts.attention = attention_precision(a.attention);
  auto session = open_session(a.model, a.verify, opts);
  if (!session) return fail(session.message());
  const double open_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_open).count();
  const Graph& g = (*session)->graph();

  auto read = read_inputs(**session, a.inputs, a.randoms, a.seed);
  if (!read) return fail(read.message());
  const std::vector<NamedTensor>& inputs = *read;

  // Which kernels run: users' first question when INT8 is slower than
  // they expect (SARAI_MAX_ISA caps it; oneDNN gets the same cap).
  std::printf("model %s: %zu nodes, %d thread%s, ISA %s (INT8 GEMM %s, oneDNN cap %s)\n", a.model.c_str(),
              g.nodes.size(), (*session)->num_threads(), (*session)->num_threads() == 1 ? "" : "s",
              isa_name(max_isa()), isa_name(kernels::qgemm_default_ukernel().isa), onednn_isa_name());
  // Plan memory (and check the budget) before the first run: a budget too
  // small fails here, before any work.
  auto plan = (*session)->prepare(inputs);
  if (!plan) return fail(plan.message());
  if (a.report_memory) {
    std::printf("session ready in %.1f ms (open %.1f ms + plan %.1f ms)\n", open_ms + plan->plan_ms, open_ms,
                plan->plan_ms);
    print_plan(*plan);
  }
  if (plan->budget_bytes)
    std::printf("memory budget %s: %s (needs about %s)\n", megabytes(plan->budget_bytes).c_str(),
                plan->streaming ? ("the weights do not fit: streaming them, " + megabytes(plan->pinned_weight_bytes) +
                                   " kept resident, every later node's weight pages released after use")
                                      .c_str()
                                : "everything fits, weights stay resident",
                megabytes(plan->needed_bytes).c_str());
  std::vector<NamedTensor> outputs;
  std::vector<double> times;
  for (int r = 0; r < a.runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    Status st = (*session)->run(inputs, &outputs);  // reuses the previous run's output buffers
    auto t1 = std::chrono::steady_clock::now();
    if (!st) return fail(st.message());
    double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    times.push_back(ms);
    std::printf("run %d: %.3f ms\n", r + 1, ms);
  }
  if (times.size() > 1) {
    const auto [lo, hi] = std::minmax_element(times.begin(), times.end());
    std::printf("median of %zu runs: %.3f ms (min %.3f, max %.3f)\n", times.size(), eval::median(times), *lo, *hi);
  }

  if (a.profile) print_profile(**session, a.runs);
  if (a.report_memory) {
    const ProcessMemory pm = process_memory();
    std::printf("memory: peak RSS (VmHWM) %s, RSS now %s, resident weights %s of %s mapped, budget %s\n",
                megabytes(pm.peak_rss_bytes).c_str(), megabytes(pm.rss_bytes).c_str(),
                megabytes((*session)->resident_weight_bytes()).c_str(), megabytes(plan->mapped_weight_bytes).c_str(),
                plan->budget_bytes ? megabytes(plan->budget_bytes).c_str() : "none");
    if ((*session)->plan_misses())
      std::printf("memory: %d allocation%s did not match the plan (shapes that depend on data) and were planned again\n",
                  (*session)->plan_misses(), (*session)->plan_misses() == 1 ? "" : "s");
  }
  if (!a.output_dir.empty()) {
    std::error_code ec;
    fs::create_directories(a.output_dir, ec);
    if (ec) return fail(a.output_dir + ": cannot create folder: " + ec.message());
  }
  for (const NamedTensor& o : outputs) {
    const Tensor& t = o.tensor;
    std::string line = "output '" + o.name + "': " + dtype_name(t.dtype()) + " " + shape_to_string(t.shape());
    if (t.numel() > 0 && (t.dtype() == DType::kFloat32 || t.dtype() == DType::kFloat64 || t.dtype() == DType::kFloat16)) {
      double lo = INFINITY, hi = -INFINITY, sum = 0;
      for (int64_t i = 0; i < t.numel(); ++i) {
        double v = t.float_at(i);
        lo = std::min(lo, v);
        hi = std::max(hi, v);
        sum += v;
      }
      char buf[128];
      std::snprintf(buf, sizeof buf, "  min %.6g  max %.6g  mean %.6g", lo, hi, sum / t.numel());
      line += buf;
    }
    if (!a.output_dir.empty()) {
      std::string path = (fs::path(a.output_dir) / tensor_file_name(o.name)).string();
      Status st = write_npy(path, t);
      report_removed_stale_temp_files();
      if (!st) return fail(st.message());
      line += "  -> " + path;
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}
}  // namespace sarai::cli
