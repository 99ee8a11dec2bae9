// sarai-rt bench: the figures users track for a model (.onnx on the FP32
// path, .sarai in INT8): load time, first run, latency percentiles, runs per
// second and peak RSS, as text or one JSON object.
//
// With --sweep, a --threads list or --compare it is the users' grid search:
// one row per input shape x thread count, each with its own first run,
// warm-up and timed runs, and with --compare a second model timed on the same
// inputs in the same rounds.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
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

// A sweep of more rows than this is a typo, not a plan (each row is runs x
// the model's latency).
constexpr size_t kMaxSweepRows = 1000;

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Nearest-rank percentile of sorted values (p in (0, 100]).
double percentile(const std::vector<double>& sorted, double p) {
  const size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size(), std::max<size_t>(rank, 1)) - 1];
}

struct Latency {
  double p50 = 0, p90 = 0, p99 = 0, min = 0, max = 0;
};

Latency latency_of(std::vector<double> times) {
  std::sort(times.begin(), times.end());
  return {percentile(times, 50), percentile(times, 90), percentile(times, 99), times.front(), times.back()};
}

SessionOptions session_options(const BenchArgs& a, int threads) {
  SessionOptions opts;
  opts.num_threads = threads;
  opts.max_memory_bytes = a.max_memory_mb * 1000000;
  opts.cache_size = a.cache_size;
  opts.attention = attention_precision(a.attention);  // both models' with --compare
  return opts;
}

// One run, its wall time appended to `times`.
Status timed_run(Session& s, const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs,
                 std::vector<double>* times) {
  const auto t = std::chrono::steady_clock::now();
  Status st = s.run(inputs, outputs);
  times->push_back(ms_since(t));
  return st;
}

// A wrong command line: one line on stderr, exit code 2 as for CLI11's own
// errors (sarai_rt.cc).
int bad_command_line(const std::string& message) {
  fail(message + " (see sarai-rt bench --help)");
  return 2;
}

// --threads: "N" (0 = one per physical core, as before lists existed) or
// "N,N,..." with every N in 1..1024.
Expected<std::vector<int>> parse_thread_counts(const std::string& text) {
  std::vector<int> counts;
  size_t i = 0;
  while (true) {
    const size_t comma = text.find(',', i);
    const std::string part = text.substr(i, comma == std::string::npos ? std::string::npos : comma - i);
    if (part.empty()) return Status::error("--threads '" + text + "': an empty thread count");
    const bool digits = part.find_first_not_of("0123456789") == std::string::npos;
    const bool negative = part[0] == '-' && part.size() > 1 &&
                          part.find_first_not_of("0123456789", 1) == std::string::npos;
    if (!digits && !negative) return Status::error("--threads '" + text + "': '" + part + "' is not a thread count");
    const long long n = negative || part.size() > 5 ? -1 : std::stoll(part);
    if (n < 0 || n > 1024) return Status::error("--threads '" + text + "': " + part + " is not in 0..1024");
    counts.push_back(static_cast<int>(n));
    if (comma == std::string::npos) break;
    i = comma + 1;
  }
  if (counts.size() > 1 && std::find(counts.begin(), counts.end(), 0) != counts.end())
    return Status::error("--threads '" + text + "': a list holds counts of 1 or more (0, one per core, only alone)");
  return counts;
}

// "1x{2,4}x{5,6}" -> 1x2x5, 1x2x6, 1x4x5, 1x4x6: every combination of the
// groups, the last varying fastest (as a shell expands it). Groups do not nest.
Expected<std::vector<std::string>> expand_braces(const std::string& text) {
  std::vector<std::string> out{""};
  size_t i = 0;
  while (true) {
    const size_t open = text.find_first_of("{}", i);
    const std::string literal = text.substr(i, open == std::string::npos ? std::string::npos : open - i);
    for (std::string& s : out) s += literal;
    if (open == std::string::npos) break;
    if (text[open] == '}') return Status::error("'}' without a '{' before it");
    const size_t close = text.find_first_of("{}", open + 1);
    if (close == std::string::npos) return Status::error("'{' without a '}' after it");
    if (text[close] == '{') return Status::error("'{' inside '{...}' (groups do not nest)");
    const std::string group = text.substr(open, close - open + 1);
    std::vector<std::string> values;
    for (size_t j = open + 1;;) {
      const size_t comma = std::min(text.find(',', j), close);
      values.push_back(text.substr(j, comma - j));
      if (values.back().empty())
        return Status::error(group == "{}" ? "'{}' is an empty list" : "an empty value in '" + group + "'");
      if (comma == close) break;
      j = comma + 1;
    }
    if (out.size() * values.size() > kMaxSweepRows)
      return Status::error("more than " + std::to_string(kMaxSweepRows) + " shapes");
    std::vector<std::string> next;
    for (const std::string& prefix : out)
      for (const std::string& v : values) next.push_back(prefix + v);
    out = std::move(next);
    i = close + 1;
  }
  return out;
}

// One swept input: its name, the shapes its --sweep expands to ("1x80x300",
// ...) and the --sweep as given, for messages.
struct SweepAxis {
  std::string name;
  std::vector<std::string> dims;
  std::string spec;
};

// --compare's model must take the inputs `model` takes: the same names and
// dtypes, ranks and fixed dims where both declare them (symbols may differ).
Status check_same_inputs(const BenchArgs& a, const Graph& ga, const Graph& gb) {
  auto declared = [](const Graph& g, const std::string& name) -> const Value* {
    for (int id : g.inputs)
      if (g.values[static_cast<size_t>(id)].name == name) return &g.values[static_cast<size_t>(id)];
    return nullptr;
  };
  const std::string where = "--compare " + a.compare + ": ";
  for (int id : ga.inputs) {
    const Value& va = ga.values[static_cast<size_t>(id)];
    const Value* vb = declared(gb, va.name);
    if (!vb) return Status::error(where + "it has no input '" + va.name + "', which " + a.model + " has");
    bool same = va.dtype == vb->dtype || va.dtype == DType::kUndefined || vb->dtype == DType::kUndefined;
    if (va.has_shape && vb->has_shape) {
      same = same && va.dims.size() == vb->dims.size();
      for (size_t d = 0; same && d < va.dims.size(); ++d)
        same = !va.dims[d].is_fixed() || !vb->dims[d].is_fixed() || va.dims[d].value == vb->dims[d].value;
    }
    if (!same)
      return Status::error(where + "its input '" + va.name + "' is " + describe_value_type(*vb) + ", " + a.model +
                           "'s is " + describe_value_type(va));
  }
  for (int id : gb.inputs)
    if (!declared(ga, gb.values[static_cast<size_t>(id)].name))
      return Status::error(where + "its input '" + gb.values[static_cast<size_t>(id)].name + "' is not an input of " +
                           a.model);
  return Status::ok();
}

// The inputs of one row: --input and --random as given, then each swept
// input at this row's shape as one more --random (the same values for every
// model and thread count: the generator restarts from --seed), each checked
// against the session's declarations.
Expected<std::vector<NamedTensor>> row_inputs(const BenchArgs& a, const Session& s, const std::vector<SweepAxis>& axes,
                                              const std::vector<size_t>& pick) {
  std::vector<std::string> randoms = a.randoms;
  for (size_t k = 0; k < axes.size(); ++k) randoms.push_back(axes[k].name + "=" + axes[k].dims[pick[k]]);
  auto inputs = read_inputs(s, a.inputs, randoms, a.seed);
  if (inputs) return inputs;
  // read_inputs names the --random it made; name the --sweep the user wrote.
  for (size_t k = 0; k < axes.size(); ++k) {
    const std::string made = "--random " + randoms[a.randoms.size() + k] + ": ";
    if (inputs.message().compare(0, made.size(), made) == 0)
      return Status::error("--sweep " + axes[k].spec + " at " + axes[k].dims[pick[k]] + ": " +
                           inputs.message().substr(made.size()));
  }
  return inputs.status();
}

std::string row_label(const std::vector<SweepAxis>& axes, const std::vector<size_t>& pick) {
  std::string s;
  for (size_t k = 0; k < axes.size(); ++k) s += (k ? " " : "") + axes[k].name + "=" + axes[k].dims[pick[k]];
  return s.empty() ? "the inputs" : s;
}

// What one model measured in one row.
struct RowFigures {
  double first_ms = 0;
  Latency lat;
  uint64_t arena_bytes = 0;
};

std::string figures_json(const RowFigures& f) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"first_run_ms\": %.3f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"min_ms\": %.3f, "
                "\"max_ms\": %.3f, \"arena_mb\": %.1f",
                f.first_ms, f.lat.p50, f.lat.p90, f.lat.p99, f.lat.min, f.lat.max,
                static_cast<double>(f.arena_bytes) / 1e6);
  return buf;
}

int bench_sweep(const BenchArgs& a, const std::vector<int>& thread_counts) {
  if (!a.feeds.empty())
    return bad_command_line("--feed streams one model; it does not combine with --sweep, --compare or a --threads list");
  if (a.callers != 1)
    return bad_command_line("--callers times one model at a time; it does not combine with --sweep, --compare or "
                            "a --threads list");
  std::vector<SweepAxis> axes;
  size_t rows_per_count = 1;
  for (const std::string& spec : a.sweep) {
    SweepAxis axis;
    axis.spec = spec;
    std::string text, name, rest;
    if (!split_assignment(spec, &axis.name, &text))
      return bad_command_line("--sweep '" + spec + "' must be NAME=DIMS, e.g. mel=1x80x{300,1000}");
    for (const SweepAxis& other : axes)
      if (other.name == axis.name) return bad_command_line("--sweep: input '" + axis.name + "' is swept twice");
    for (const std::vector<std::string>* given : {&a.inputs, &a.randoms})
      for (const std::string& g : *given)
        if (split_assignment(g, &name, &rest) && name == axis.name)
          return bad_command_line("--sweep " + spec + ": input '" + name + "' is also given by " +
                                  (given == &a.inputs ? "--input" : "--random"));
    auto dims = expand_braces(text);
    if (!dims) return bad_command_line("--sweep " + spec + ": " + dims.message());
    for (const std::string& d : *dims)
      if (auto shape = parse_dims(d); !shape) return bad_command_line("--sweep " + spec + ": " + shape.message());
    axis.dims = std::move(*dims);
    rows_per_count *= axis.dims.size();
    if (rows_per_count > kMaxSweepRows) break;
    axes.push_back(std::move(axis));
  }
  if (rows_per_count * thread_counts.size() > kMaxSweepRows)
    return bad_command_line("--sweep: more than " + std::to_string(kMaxSweepRows) + " rows");
  // Row r of a thread count picks axis k's value (r / stride_k) % size_k,
  // the last axis varying fastest.
  std::vector<std::vector<size_t>> picks(rows_per_count, std::vector<size_t>(axes.size()));
  for (size_t r = 0; r < rows_per_count; ++r)
    for (size_t k = axes.size(), stride = 1; k-- > 0; stride *= axes[k].dims.size())
      picks[r][k] = (r / stride) % axes[k].dims.size();

  const bool ab = !a.compare.empty();
  const std::vector<std::string> paths = ab ? std::vector<std::string>{a.model, a.compare}
                                            : std::vector<std::string>{a.model};
  std::vector<size_t> widths;
  for (const SweepAxis& axis : axes) {
    size_t w = axis.name.size();
    for (const std::string& d : axis.dims) w = std::max(w, d.size());
    widths.push_back(w);
  }
  std::string json_rows;
  for (size_t ti = 0; ti < thread_counts.size(); ++ti) {
    // One session per model and thread count, alive for its rows only.
    std::vector<std::unique_ptr<Session>> sessions;
    for (const std::string& path : paths) {
      auto s = open_session(path, /*verify_blob=*/false, session_options(a, thread_counts[ti]));
      if (!s) return fail(s.message());
      sessions.push_back(std::move(*s));
    }
    if (ti == 0) {
      // Every row's inputs are checked against both models before any is
      // timed, so a wrong shape costs no wait.
      if (ab)
        if (Status st = check_same_inputs(a, sessions[0]->graph(), sessions[1]->graph()); !st) return fail(st.message());
      for (const std::vector<size_t>& pick : picks) {
        auto in = row_inputs(a, *sessions[0], axes, pick);
        if (!in) return fail(in.message());
        for (size_t m = 1; m < sessions.size(); ++m)
          for (const NamedTensor& t : *in)
            if (Status st = sessions[m]->check_input(t); !st)
              return fail("--compare " + paths[m] + ": " + row_label(axes, pick) + ": " + st.message());
      }
      if (!a.json) {
        if (ab)
          std::printf("A %s, B %s: ISA %s; per row a first run of each, %d warm-up round%s, %d timed rounds "
                      "alternating A,B and B,A\n",
                      a.model.c_str(), a.compare.c_str(), isa_name(max_isa()), a.warmup, a.warmup == 1 ? "" : "s",
                      a.runs);
        else
          std::printf("model %s: ISA %s; per row a first run, %d warm-up run%s, %d timed runs\n", a.model.c_str(),
                      isa_name(max_isa()), a.warmup, a.warmup == 1 ? "" : "s", a.runs);
        for (size_t k = 0; k < axes.size(); ++k) std::printf("%-*s  ", static_cast<int>(widths[k]), axes[k].name.c_str());
        if (ab)
          std::printf("threads  A P50 ms  A P99 ms  B P50 ms  B P99 ms  B/A P50\n");
        else
          std::printf("threads  first ms    P50 ms    P90 ms    P99 ms    max ms  arena MB\n");
      }
    }
    for (const std::vector<size_t>& pick : picks) {
      const int threads = sessions[0]->num_threads();
      const std::string label =
          row_label(axes, pick) + ", " + std::to_string(threads) + " thread" + (threads == 1 ? "" : "s");
      auto inputs = row_inputs(a, *sessions[0], axes, pick);
      if (!inputs) return fail(inputs.message());
      std::vector<RowFigures> figs(sessions.size());
      std::vector<std::vector<NamedTensor>> outputs(sessions.size());
      std::vector<std::vector<double>> times(sessions.size());
      auto run_failed = [&](size_t m, const Status& st) {  // the session's messages mostly name the model already
        const bool named = st.message().compare(0, paths[m].size(), paths[m]) == 0;
        return fail(label + ": " + (named ? "" : paths[m] + ": ") + st.message());
      };
      for (size_t m = 0; m < sessions.size(); ++m) {
        auto plan = sessions[m]->prepare(*inputs);
        if (!plan) return run_failed(m, plan.status());
        figs[m].arena_bytes = plan->arena_bytes;
        std::vector<double> first;
        if (Status st = timed_run(*sessions[m], *inputs, &outputs[m], &first); !st) return run_failed(m, st);
        figs[m].first_ms = first[0];
      }
      for (int w = 0; w < a.warmup; ++w)
        for (size_t m = 0; m < sessions.size(); ++m)
          if (Status st = sessions[m]->run(*inputs, &outputs[m]); !st) return run_failed(m, st);
      // Rounds A,B then B,A: each model runs first as often as second and
      // follows itself as often as the other, so drift (heat, the other
      // builds on the machine) and cache warmth hit both alike.
      for (int r = 0; r < a.runs; ++r)
        for (size_t i = 0; i < sessions.size(); ++i) {
          const size_t m = r % 2 ? sessions.size() - 1 - i : i;
          if (Status st = timed_run(*sessions[m], *inputs, &outputs[m], &times[m]); !st) return run_failed(m, st);
        }
      for (size_t m = 0; m < sessions.size(); ++m) figs[m].lat = latency_of(times[m]);
      if (a.json) {
        std::string row = "{\"inputs\": {";
        for (size_t k = 0; k < inputs->size(); ++k) {
          row += (k ? ", " : "") + json_string((*inputs)[k].name) + ": [";
          const Shape& shape = (*inputs)[k].tensor.shape();
          for (size_t d = 0; d < shape.size(); ++d) row += (d ? ", " : "") + std::to_string(shape[d]);
          row += "]";
        }
        row += "}, \"threads\": " + std::to_string(threads) + ", ";
        if (ab) {
          char ratio[64];
          std::snprintf(ratio, sizeof ratio, "%.4f", figs[1].lat.p50 / figs[0].lat.p50);
          row += "\"a\": {" + figures_json(figs[0]) + "}, \"b\": {" + figures_json(figs[1]) +
                 "}, \"ratio_p50\": " + ratio + "}";
        } else {
          row += figures_json(figs[0]) + "}";
        }
        json_rows += (json_rows.empty() ? "" : ", ") + row;
        continue;
      }
      for (size_t k = 0; k < axes.size(); ++k)
        std::printf("%-*s  ", static_cast<int>(widths[k]), axes[k].dims[pick[k]].c_str());
      if (ab)
        std::printf("%7d  %8.2f  %8.2f  %8.2f  %8.2f  %7.3f\n", threads, figs[0].lat.p50, figs[0].lat.p99,
                    figs[1].lat.p50, figs[1].lat.p99, figs[1].lat.p50 / figs[0].lat.p50);
      else
        std::printf("%7d  %8.2f  %8.2f  %8.2f  %8.2f  %8.2f  %8.1f\n", threads, figs[0].first_ms, figs[0].lat.p50,
                    figs[0].lat.p90, figs[0].lat.p99, figs[0].lat.max, static_cast<double>(figs[0].arena_bytes) / 1e6);
      std::fflush(stdout);  // a long sweep shows each row as it ends
    }
  }
  const double peak_rss_mb = static_cast<double>(process_memory().peak_rss_bytes) / 1e6;
  if (a.json) {
    std::printf("{\"model\": %s, %s\"isa\": %s, \"warmup\": %d, \"runs\": %d, \"peak_rss_mb\": %.1f, \"rows\": [%s]}\n",
                json_string(a.model).c_str(), ab ? ("\"compare\": " + json_string(a.compare) + ", ").c_str() : "",
                json_string(isa_name(max_isa())).c_str(), a.warmup, a.runs, peak_rss_mb, json_rows.c_str());
    return 0;
  }
  std::printf("peak RSS (VmHWM) over the sweep %.1f MB\n", peak_rss_mb);
  return 0;
}

}  // namespace

int cmd_bench(const BenchArgs& a) {
  auto thread_counts = parse_thread_counts(a.threads);
  if (!thread_counts) return bad_command_line(thread_counts.message());
  if (!a.sweep.empty() || !a.compare.empty() || thread_counts->size() > 1) return bench_sweep(a, *thread_counts);

  const auto t0 = std::chrono::steady_clock::now();
  auto session = open_session(a.model, /*verify_blob=*/false, session_options(a, thread_counts->front()));
  if (!session) return fail(session.message());
  auto inputs = read_inputs(**session, a.inputs, a.randoms, a.seed);
  if (!inputs) return fail(inputs.message());
  auto plan = (*session)->prepare(*inputs);
  if (!plan) return fail(plan.message());
  const double load_ms = ms_since(t0);  // open + create + plan (input generation included: small)

  // --feed: (output index, input index) pairs, checked against the model.
  if (!a.feeds.empty() && a.callers != 1) return bad_command_line("--feed streams on one caller; drop --callers");
  std::vector<std::pair<size_t, size_t>> feeds;
  const Graph& graph = (*session)->graph();
  for (const std::string& f : a.feeds) {
    std::string out_name, in_name;
    if (!split_assignment(f, &out_name, &in_name)) return bad_command_line("--feed '" + f + "' must be OUT=IN");
    size_t o = graph.outputs.size(), i = inputs->size();
    for (size_t k = 0; k < graph.outputs.size(); ++k)
      if (graph.values[static_cast<size_t>(graph.outputs[k])].name == out_name) o = k;
    for (size_t k = 0; k < inputs->size(); ++k)
      if ((*inputs)[k].name == in_name) i = k;
    if (o == graph.outputs.size()) return fail(a.model + ": --feed " + f + ": the model has no output '" + out_name + "'");
    if (i == inputs->size()) return fail(a.model + ": --feed " + f + ": the model has no input '" + in_name + "'");
    (*inputs)[i].tensor = (*inputs)[i].tensor.clone();  // ours to overwrite
    feeds.emplace_back(o, i);
  }
  // Copies each fed output into its input (not timed: the caller's work).
  auto feed = [&](const std::vector<NamedTensor>& out) -> Status {
    for (auto [o, i] : feeds) {
      const Tensor& src = out[o].tensor;
      Tensor& dst = (*inputs)[i].tensor;
      if (src.dtype() != dst.dtype() || src.shape() != dst.shape())
        return Status::error(a.model + ": --feed: output '" + out[o].name + "' is " + dtype_name(src.dtype()) + " " +
                             shape_to_string(src.shape()) + ", input '" + (*inputs)[i].name + "' is " +
                             dtype_name(dst.dtype()) + " " + shape_to_string(dst.shape()));
      if (src.nbytes()) std::memcpy(dst.mutable_raw(), src.raw(), src.nbytes());
    }
    return Status::ok();
  };

  std::vector<NamedTensor> outputs;
  auto t1 = std::chrono::steady_clock::now();
  if (Status st = (*session)->run(*inputs, &outputs); !st) return fail(st.message());
  const double first_ms = ms_since(t1);
  if (Status st = feed(outputs); !st) return fail(st.message());

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
    for (int i = 0; st && i < a.warmup; ++i) {
      st = (*session)->run(*inputs, &out);
      if (st) st = feed(out);
    }
    ++ready;
    if (c == 0) {  // the starter: once everyone is warm
      while (ready.load() < callers) std::this_thread::yield();
      t_all = std::chrono::steady_clock::now();
      go = true;
    }
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; st && i < a.runs; ++i) {
      st = timed_run(**session, *inputs, &out, &times);
      if (st) st = feed(out);
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
  const ProcessMemory pm = process_memory();
  const Latency lat = latency_of(times);
  const double p50 = lat.p50, p90 = lat.p90, p99 = lat.p99;
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
        first_ms, a.warmup, a.runs, p50, p90, p99, lat.max, lat.min, static_cast<double>(times.size()) / total_s,
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
  // Sub-millisecond steps (a VAD chunk) need more than one decimal.
  const int dp = p50 < 10 ? 3 : 1;
  std::printf("latency over %zu runs (after %d warm-up): P50 %.*f ms  P90 %.*f ms  P99 %.*f ms  max %.*f ms\n", times.size(),
              a.warmup, dp, p50, dp, p90, dp, p99, dp, lat.max);
  if (!feeds.empty()) {
    std::printf("streaming           each run one step, state fed back:");
    for (auto [o, i] : feeds) std::printf(" %s -> %s", outputs[o].name.c_str(), (*inputs)[i].name.c_str());
    std::printf("\n");
  }
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
