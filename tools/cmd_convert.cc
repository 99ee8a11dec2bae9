// sarai-rt convert (ONNX -> .sarai blob or quantized ONNX) and sarai-rt
// verify (every checksum of a blob).
//
// convert writes a temp file beside the output and renames it at the end; on
// SIGINT/SIGTERM the converter stops at the next tensor boundary (or within a
// large tensor), removes the temp file and exits 130/143. A second signal
// removes the temp file from the handler itself and exits at once.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/atomic_file.h"
#include "quantizer/convert.h"
#include "quantizer/onnx_export.h"
#include "kernels/kernels.h"
#include "runtime/session.h"
#include "tools/cli.h"
#include "tools/eval.h"

namespace fs = std::filesystem;

namespace sarai::cli {
namespace {

std::atomic<bool> g_cancel{false};
volatile sig_atomic_t g_signal = 0;
char g_trial_path[4096];  // --auto-keep-fp32's trial blob, removed by the handler on a second signal

void on_signal(int sig) {
  if (g_signal != 0) {  // second signal: clean up here and leave now
    unlink_unfinished_temp_files_from_signal_handler();  // every writer's temp file (quantizer/atomic_file.h)
    if (g_trial_path[0]) ::unlink(g_trial_path);
    ::_exit(128 + sig);
  }
  g_signal = sig;
  g_cancel.store(true);
}

void set_trial_path(const std::string& p) { std::snprintf(g_trial_path, sizeof g_trial_path, "%s", p.c_str()); }

// Progress on stderr: a redrawn bar on a terminal, a line every ~5 % or
// 10 s otherwise, nothing with --quiet.
class Progress {
 public:
  explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO)), start_(Clock::now()) {}

  void update(uint64_t done, uint64_t total) {
    if (quiet_ || total == 0) return;
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start_).count();
    const double since = std::chrono::duration<double>(now - last_).count();
    const int percent = static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total));
    if (tty_) {
      if (since < 0.1 && done < total) return;
    } else if (!(percent >= last_percent_ + 5 || since >= 10 || (done == total && last_percent_ < 100))) {
      return;
    }
    last_ = now;
    last_percent_ = percent;
    const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    char line[256];
    if (tty_) {
      char bar[31];
      const int filled = percent * 30 / 100;
      for (int i = 0; i < 30; ++i) bar[i] = i < filled ? '#' : '.';
      bar[30] = '\0';
      std::snprintf(line, sizeof line, "\r[%s] %3d %%  %s / %s  %s/s  ETA %.0f s   ", bar, percent,
                    human_bytes(done).c_str(), human_bytes(total).c_str(), human_bytes(static_cast<uint64_t>(rate)).c_str(),
                    eta);
    } else {
      std::snprintf(line, sizeof line, "convert: %s of %s (%d %%), %s/s, ETA %.0f s\n", human_bytes(done).c_str(),
                    human_bytes(total).c_str(), percent, human_bytes(static_cast<uint64_t>(rate)).c_str(), eta);
    }
    std::fputs(line, stderr);
    std::fflush(stderr);
  }

  void finish() {
    if (!quiet_ && tty_) std::fputs("\n", stderr);
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool quiet_, tty_;
  Clock::time_point start_, last_{};
  int last_percent_ = -1;
};

// The output must not be (or, for --to onnx, its .data file must not be) one
// of the source files: convert never writes its input.
Status check_output_is_not_source(const Model& m, const std::string& out, bool onnx) {
  std::error_code ec;
  std::vector<fs::path> sources = {fs::path(m.path)};
  fs::path dir = fs::path(m.path).has_parent_path() ? fs::path(m.path).parent_path() : fs::path(".");
  for (const ExternalDataFile& f : m.external_data) sources.push_back(dir / f.location);
  std::vector<std::string> outputs = {out};
  if (onnx) outputs.push_back(out + ".data");
  for (const std::string& o : outputs)
    for (const fs::path& s : sources)
      if (fs::exists(o, ec) && fs::equivalent(o, s, ec))
        return Status::error(o + ": is the source file " + s.string() + "; convert never overwrites its input");
  fs::path parent = fs::path(out).has_parent_path() ? fs::path(out).parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) return Status::error(out + ": folder " + parent.string() + " does not exist");
  return Status::ok();
}


// A node name as a --keep-fp32 pattern that matches only itself.
std::string glob_escape(const std::string& name) {
  std::string r;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

// The FP32 reference and the calibration input sets, shared by --static
// and --auto-keep-fp32.
struct Calibration {
  KernelTable kernels;
  std::shared_ptr<Model> model;
  std::unique_ptr<Session> session;
  std::vector<InputSet> sets;
  SessionOptions options;
};

Status open_calibration(const ConvertArgs& a, Calibration* c) {
  register_kernels(c->kernels);
  c->options.num_threads = a.threads;
  // Each weight's pages are released after use, so measuring a model of any
  // size keeps convert's memory bounded (the FP32 weights are never all
  // resident at once).
  c->options.stream_weights = true;
  auto m = load_onnx(a.model);
  if (!m) return m.status();
  c->model = *m;
  auto s = Session::create(c->model, c->kernels, c->options);
  if (!s) return s.status();
  c->session = std::move(*s);
  auto sets = read_input_sets(*c->session, a.calibration);
  if (!sets) return sets.status();
  c->sets = std::move(*sets);
  return Status::ok();
}

// --static: the range of every input X of a node the plan quantizes,
// measured on the FP32 model over the calibration sets.
Status measure_static_ranges(const ConvertArgs& a, const Calibration& c, quant::ConvertOptions* opt) {
  quant::RangeOptions ro;
  auto method = quant::parse_range_method(a.calibration_method);
  if (!method) return method.status();
  ro.method = *method;
  ro.percentile = a.percentile;
  Graph g = c.model->graph;
  quant::promote_constants(g);
  std::set<std::string> names;
  for (const quant::WeightChoice& w : quant::plan_quantization(g, *opt).choices)
    if (w.quantize) names.insert(g.values[static_cast<size_t>(g.nodes[static_cast<size_t>(w.node)].inputs[0])].name);
  auto ranges = calibrate_ranges(c.model, c.sets, names, ro, c.session->num_threads(), c.kernels);
  if (!ranges) return ranges.status();
  opt->activation_ranges = std::move(*ranges);
  opt->extra_metadata.emplace_back("static.method", quant::range_method_name(ro.method));
  if (ro.method == quant::RangeMethod::kPercentile) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", ro.percentile);
    opt->extra_metadata.emplace_back("static.percentile", buf);
  }
  opt->extra_metadata.emplace_back("static.calibration_sets", std::to_string(c.sets.size()));
  opt->extra_metadata.emplace_back("static.ranges", std::to_string(opt->activation_ranges.size()));
  std::printf("static activation ranges (%s) of %zu layer input%s from %zu calibration set%s\n",
              quant::range_method_name(ro.method), opt->activation_ranges.size(),
              opt->activation_ranges.size() == 1 ? "" : "s", c.sets.size(), c.sets.size() == 1 ? "" : "s");
  return Status::ok();
}

// --auto-keep-fp32: measure plain INT8 on the calibration sets; if it misses
// the target, rank the quantized nodes by their single-layer sensitivity
// (end to end, the node alone in INT8) and find the fewest of the most
// damaging to keep in FP32 (binary search on the count:
// keeping more layers in FP32 only brings the model closer). Each trial is a
// real conversion into a temp file beside the output, measured end to end
// (with the static ranges when --static chose them).
Status choose_fp32_layers(const ConvertArgs& a, Calibration& cal, quant::ConvertOptions* opt) {
  const KernelTable& kernels = cal.kernels;
  const std::vector<InputSet>& sets = cal.sets;
  // The reference runs once; every trial and every layer is measured against it.
  auto ref = ReferenceOutputs::run(*cal.session, sets);
  if (!ref) return ref.status();

  // A trial blob is renamed into place and removed at once; a second signal
  // in between removes it from the handler.
  const std::string trial_path = a.output + ".auto-" + std::to_string(::getpid());
  set_trial_path(trial_path);
  std::shared_ptr<Model> last_blob;
  auto trial = [&](const std::vector<std::string>& keep) -> Expected<double> {
    auto source = load_onnx(a.model);
    if (!source) return source.status();
    quant::ConvertOptions o = *opt;
    o.progress = nullptr;
    for (const std::string& k : keep) o.keep_fp32.push_back(glob_escape(k));
    auto r = quant::convert_to_blob(**source, trial_path, o);
    if (!r) return r.status();
    auto blob = load_blob(trial_path);
    std::error_code ec;
    fs::remove(trial_path, ec);  // the mapping stays valid
    if (!blob) return blob.status();
    last_blob = *blob;
    auto s = Session::create(*blob, kernels, cal.options);
    if (!s) return s.status();
    return min_output_cosine(*ref, **s, sets);
  };

  auto plain = trial({});
  if (!plain) return plain.status();
  std::vector<std::string> keep;
  double cosine = *plain;
  std::string ranked_note;
  if (*plain < a.target_cosine) {
    // Rank by single-layer sensitivity: each quantized layer alone in INT8
    // (every other in FP32), measured end to end on the calibration sets.
    // A layer's own error can be small and still be amplified downstream
    // (or be large and washed out), which a local measure cannot see.
    auto sens = single_layer_sensitivity(cal.model, *ref, last_blob, sets, kernels, cal.options);
    if (!sens) return sens.status();
    std::stable_sort(sens->begin(), sens->end(), [](const Sensitivity& x, const Sensitivity& y) { return x.cosine < y.cosine; });
    std::vector<std::string> ranked;
    for (const Sensitivity& e : *sens) ranked.push_back(e.node);
    if (ranked.empty()) return Status::error(a.model + ": --auto-keep-fp32: no quantized layer to keep in FP32");
    size_t lo = 1, hi = ranked.size();
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      auto c = trial(std::vector<std::string>(ranked.begin(), ranked.begin() + static_cast<long>(mid)));
      if (!c) return c.status();
      if (*c >= a.target_cosine)
        hi = mid;
      else
        lo = mid + 1;
    }
    keep.assign(ranked.begin(), ranked.begin() + static_cast<long>(lo));
    auto c = trial(keep);  // the measured cosine of the final choice
    if (!c) return c.status();
    cosine = *c;
    if (cosine < a.target_cosine)
      return Status::error(a.model + ": --auto-keep-fp32: even with all " + std::to_string(ranked.size()) +
                           " quantized layers in FP32 the cosine is " + std::to_string(cosine) + " < " +
                           std::to_string(a.target_cosine));
    ranked_note = std::to_string(ranked.size());
  }
  set_trial_path(std::string());
  std::string kept;
  for (const std::string& k : keep) kept += (kept.empty() ? "" : ",") + k;
  char buf[64];
  for (const std::string& k : keep) opt->keep_fp32.push_back(glob_escape(k));
  std::snprintf(buf, sizeof buf, "%.6f", *plain);
  opt->extra_metadata.emplace_back("auto_keep_fp32.plain_int8_cosine", buf);
  std::snprintf(buf, sizeof buf, "%.6f", cosine);
  opt->extra_metadata.emplace_back("auto_keep_fp32.cosine", buf);
  std::snprintf(buf, sizeof buf, "%g", a.target_cosine);
  opt->extra_metadata.emplace_back("auto_keep_fp32.target_cosine", buf);
  opt->extra_metadata.emplace_back("auto_keep_fp32.calibration_sets", std::to_string(sets.size()));
  opt->extra_metadata.emplace_back("auto_keep_fp32.nodes", kept);
  std::printf("auto mixed precision on %zu calibration set%s: plain INT8 cosine %.6f %s target %g; ", sets.size(),
              sets.size() == 1 ? "" : "s", *plain, *plain >= a.target_cosine ? ">=" : "<", a.target_cosine);
  if (keep.empty())
    std::printf("no layer kept in FP32\n");
  else
    std::printf("%zu of %s quantized layers kept in FP32 (%s): cosine %.6f\n", keep.size(), ranked_note.c_str(),
                kept.c_str(), cosine);
  return Status::ok();
}

}  // namespace

int cmd_convert(const ConvertArgs& a) {
  if (a.to != "sarai" && a.to != "onnx") return fail("--to must be 'sarai' or 'onnx', not '" + a.to + "'");
  const auto t0 = std::chrono::steady_clock::now();
  auto loaded = load_onnx(a.model);
  if (!loaded) return fail(loaded.message());
  Model& model = **loaded;
  Status st = check_output_is_not_source(model, a.output, a.to == "onnx");
  if (!st) return fail(st.message());

  Progress progress(a.quiet);
  quant::ConvertOptions opt;
  opt.per_tensor = a.per_tensor;
  opt.keep_fp32 = a.keep_fp32;
  opt.min_elements = a.min_elements;
  opt.command_line = a.command_line;
  opt.cancel = &g_cancel;
  opt.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (a.static_ranges || a.auto_keep_fp32) {
    const char* what = a.static_ranges ? "--static" : "--auto-keep-fp32";
    if (a.calibration.empty()) return fail(std::string(what) + " needs --calibration DIR (the input sets to measure on)");
    if (a.to != "sarai") return fail(std::string(what) + " writes a .sarai blob (not --to " + a.to + ")");
    Calibration cal;
    Status st = open_calibration(a, &cal);
    if (st && a.static_ranges) st = measure_static_ranges(a, cal, &opt);
    if (st && a.auto_keep_fp32) st = choose_fp32_layers(a, cal, &opt);
    if (!st)
      return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal)
                      : fail(st.message());
  } else if (!a.calibration.empty()) {
    return fail("--calibration is only used with --static or --auto-keep-fp32");
  }
  if (const ConvertArgs defaults;
      !a.static_ranges && (a.calibration_method != defaults.calibration_method || a.percentile != defaults.percentile))
    return fail("--calibration-method and --percentile are only used with --static");

  int quantized = 0, kept = 0, others = -1;
  uint64_t bytes_in = 0, bytes_out = 0;
  if (a.to == "sarai") {
    auto r = quant::convert_to_blob(model, a.output, opt);
    progress.finish();
    if (!r) return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal) : fail(r.message());
    quantized = r->quantized;
    kept = r->kept_fp32;
    others = r->other_tensors;
    bytes_in = r->bytes_in;
    bytes_out = r->bytes_out;
  } else {
    auto r = quant::export_quantized_onnx(model, a.output, opt);
    progress.finish();
    if (!r) return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal) : fail(r.message());
    quantized = r->quantized;
    kept = r->kept_fp32;
    bytes_in = r->bytes_in;
    bytes_out = r->bytes_out;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("converted %s -> %s\n", a.model.c_str(), a.output.c_str());
  std::printf("  weights: %d quantized to INT8, %d kept in FP32", quantized, kept);
  if (others >= 0) std::printf("; %d other tensors stored as they are", others);
  std::printf("\n");
  std::printf("  size: %s -> %s (%.1f %%)\n", human_bytes(bytes_in).c_str(), human_bytes(bytes_out).c_str(),
              bytes_in ? 100.0 * static_cast<double>(bytes_out) / static_cast<double>(bytes_in) : 0.0);
  std::printf("  time: %.2f s (%s/s of input)\n", seconds,
              human_bytes(seconds > 0 ? static_cast<uint64_t>(static_cast<double>(bytes_in) / seconds) : 0).c_str());
  return 0;
}

int cmd_verify(const std::string& path) {
  VerifyStats stats;
  Status st = verify_blob(path, &stats);
  if (!st) return fail(st.message());
  std::printf("%s: OK: %d tensors, %s checked, every checksum matches (%.2f s, %s/s)\n", path.c_str(), stats.tensors,
              human_bytes(stats.bytes_checked).c_str(), stats.seconds,
              human_bytes(stats.seconds > 0 ? static_cast<uint64_t>(static_cast<double>(stats.bytes_checked) / stats.seconds)
                                            : 0)
                  .c_str());
  return 0;
}

}  // namespace sarai::cli
