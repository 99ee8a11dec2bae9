// sarai-rt bench: the figures users track for a model (.onnx on the FP32
// path, .sarai in INT8): load time, first run, latency percentiles, runs per
// second and peak RSS, as text or one JSON object.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>
#include <atomic>

#include "runtime/cpu_isa.h"
#include "runtime/memory_stats.h"
#include "runtime/session.h"
#include "tools/cli/cli.h"

namespace sarai::cli {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Nearest-rank percentile of sorted values (p in (0, 100]).
double percentile(const std::vector<double>& sorted, double p) {
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

}  // namespace

int cmd_bench(const BenchArgs& a) {
  const auto t0 = std::chrono::steady_clock::now();
  SessionOptions opts;
  opts.num_threads = a.threads;
  opts.max_memory_bytes = a.max_memory_mb * 1000000;
  opts.cache_size = a.cache_size;
  opts.attention = attention_precision(a.attention);
  auto session = open_session(a.model, /*verify_blob=*/false, opts);
  if (!session) return fail(session.message());
  auto inputs = read_inputs(**session, a.inputs, a.randoms, a.seed);
  if (!inputs) return fail(inputs.message());
  auto plan = (*session)->prepare(*inputs);
  if (!plan) return fail(plan.message());
  const double load_ms = ms_since(t0);  // open + create + plan (input generation included: small)

  std::vector<NamedTensor> outputs;
  auto t1 = std::chrono::steady_clock::now();
  if (Status st = (*session)->run(*inputs, &outputs); !st) return fail(st.message());
  const double first_ms = ms_since(t1);

  // Every caller warms up (so each has its run context), waits for the
  // others, then times its runs; the wall time runs from the start signal
  // to the last caller's end. Caller 0 is this thread, whose OpenMP team
  // and output buffers the first run has already set up, as with one caller.
  const int callers = a.callers;
  std::vector<std::vector<double>> caller_times(static_cast<size_t>(callers));
  std::vector<std::string> errors(static_cast<size_t>(callers));
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::chrono::steady_clock::time_point t_all;
  auto call = [&](int c, std::vector<NamedTensor>& out) {
    std::vector<double>& times = caller_times[static_cast<size_t>(c)];
    times.reserve(static_cast<size_t>(a.runs));
    Status st = Status::ok();
    for (int i = 0; st && i < a.warmup; ++i) st = (*session)->run(*inputs, &out);
    ++ready;
    if (c == 0) {  // the starter: once everyone is warm
      while (ready.load() < callers) std::this_thread::yield();
      t_all = std::chrono::steady_clock::now();
      go = true;
    }
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; st && i < a.runs; ++i) {
      const auto t = std::chrono::steady_clock::now();
      st = (*session)->run(*inputs, &out);
      times.push_back(ms_since(t));
    }
    if (!st) errors[static_cast<size_t>(c)] = st.message();
  };
  std::vector<std::thread> pool;
  for (int c = 1; c < callers; ++c)
    pool.emplace_back([&call, c] {
      std::vector<NamedTensor> out;
      call(c, out);
    });
  call(0, outputs);
  for (std::thread& t : pool) t.join();
  for (const std::string& e : errors)
    if (!e.empty()) return fail(e);
  std::vector<double> times;
  for (const auto& ct : caller_times) times.insert(times.end(), ct.begin(), ct.end());
  const double total_s = ms_since(t_all) / 1000.0;
  std::sort(times.begin(), times.end());
  const ProcessMemory pm = process_memory();
  const double p50 = percentile(times, 50), p90 = percentile(times, 90), p99 = percentile(times, 99);
  const double mb = 1e6;
  const CacheStats cache = (*session)->cache_stats();
  const uint64_t lookups = cache.hits + cache.misses;
  const double hit_rate = lookups ? 100.0 * static_cast<double>(cache.hits) / static_cast<double>(lookups) : 0.0;

  if (a.json) {
    std::printf(
        "{\"model\": %s, \"threads\": %d, \"isa\": %s, \"load_ms\": %.3f, \"first_run_ms\": %.3f, "
        "\"warmup\": %d, \"runs\": %d, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f, "
        "\"min_ms\": %.3f, \"runs_per_s\": %.3f, \"peak_rss_mb\": %.1f, \"arena_mb\": %.1f, "
        "\"mapped_weights_mb\": %.1f, \"resident_weights_mb\": %.1f, \"budget_mb\": %.1f, \"streaming\": %s, "
        "\"cache_size\": %d, \"cache_hits\": %llu, \"cache_misses\": %llu, \"cache_hit_rate_pct\": %.2f, "
        "\"cache_mb\": %.3f, \"callers\": %d, \"run_contexts\": %d, \"arenas_mb\": %.1f}\n",
        json_string(a.model).c_str(), (*session)->num_threads(), json_string(isa_name(max_isa())).c_str(), load_ms,
        first_ms, a.warmup, a.runs, p50, p90, p99, times.back(), times.front(), static_cast<double>(times.size()) / total_s,
        static_cast<double>(pm.peak_rss_bytes) / mb, static_cast<double>(plan->arena_bytes) / mb,
        static_cast<double>(plan->mapped_weight_bytes) / mb,
        static_cast<double>((*session)->resident_weight_bytes()) / mb, static_cast<double>(plan->budget_bytes) / mb,
        plan->streaming ? "true" : "false", a.cache_size, static_cast<unsigned long long>(cache.hits),
        static_cast<unsigned long long>(cache.misses), hit_rate, static_cast<double>(cache.bytes) / mb, callers,
        (*session)->run_contexts(), static_cast<double>((*session)->arena_bytes()) / mb);
    return 0;
  }
  std::printf("model %s: %d thread%s, ISA %s\n", a.model.c_str(), (*session)->num_threads(),
              (*session)->num_threads() == 1 ? "" : "s", isa_name(max_isa()));
  std::printf("load (open + plan)  %10.1f ms\n", load_ms);
  std::printf("first run           %10.1f ms\n", first_ms);
  std::printf("latency over %zu runs (after %d warm-up): P50 %.1f ms  P90 %.1f ms  P99 %.1f ms  max %.1f ms\n", times.size(),
              a.warmup, p50, p90, p99, times.back());
  std::printf("throughput          %10.2f runs/s", static_cast<double>(times.size()) / total_s);
  if (callers > 1)
    std::printf("  (%d callers on one session, %d runs each; %d run contexts, arenas %.1f MB in all)", callers, a.runs,
                (*session)->run_contexts(), static_cast<double>((*session)->arena_bytes()) / mb);
  std::printf("\n");
  std::printf("peak RSS (VmHWM)    %10.1f MB  (arena %.1f MB, weights %.1f MB mapped, %.1f MB resident%s)\n",
              static_cast<double>(pm.peak_rss_bytes) / mb, static_cast<double>(plan->arena_bytes) / mb,
              static_cast<double>(plan->mapped_weight_bytes) / mb,
              static_cast<double>((*session)->resident_weight_bytes()) / mb,
              plan->budget_bytes ? (", budget " + std::to_string(a.max_memory_mb) + " MB" +
                                    (plan->streaming ? ", streaming weights" : ""))
                                       .c_str()
                                 : "");
  if (a.cache_size > 0)
    std::printf("result cache        size %d: %llu hits, %llu misses (hit rate %.1f %%), %.2f MB held\n",
                a.cache_size, static_cast<unsigned long long>(cache.hits),
                static_cast<unsigned long long>(cache.misses), hit_rate, static_cast<double>(cache.bytes) / mb);
  return 0;
}

}  // namespace sarai::cli
