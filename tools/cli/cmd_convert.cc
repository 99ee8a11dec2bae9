// sarai-rt convert (ONNX -> .sarai blob or quantized ONNX) and sarai-rt
// verify (every checksum of a blob).
//
// convert writes a temp file beside the output and renames it at the end; on
// SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGPIPE/SIGXFSZ the converter stops at the
// next tensor boundary (or within a large tensor), removes the temp file and
// exits 128 + the signal. A second signal removes the temp file from the
// handler itself and exits at once. Temp files a SIGKILL left are removed by
// the next convert to the same output, which says so.
//
// Then (unless --no-check) convert measures what it wrote against the FP32
// source: on --calibration's sets, or on one generated input set (saying so
// and how it was made), weights streamed so memory stays bounded; below
// --warn-cosine it names the layers with the largest INT8 error and
// suggests --auto-keep-fp32. A check that cannot run is skipped with its
// reason and never fails the conversion. A signal during the check stops it
// at the next step (the output is complete by then) and exits 128 + signal.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/model_file.h"
#include "loader/onnx_loader.h"
#include "runtime/atomic_file.h"
#include "quantizer/convert.h"
#include "quantizer/eval/accuracy_check.h"
#include "quantizer/eval/calibrated_convert.h"
#include "quantizer/onnx_export.h"
#include "tools/cli/cli.h"

namespace fs = std::filesystem;

namespace sarai::cli {
namespace {

std::atomic<bool> g_cancel{false};
volatile sig_atomic_t g_signal = 0;
char g_trial_path[4096];  // --auto-keep-fp32's trial blob, removed by the handler on a second signal

void on_signal(int sig) {
  if (g_signal != 0) {  // second signal: clean up here and leave now
    unlink_unfinished_temp_files_from_signal_handler();  // every writer's temp file (runtime/atomic_file.h)
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

// --static (quantizer/eval/calibrated_convert.h), the result printed.
Status measure_static_ranges(const ConvertArgs& a, const eval::Calibration& c, quant::ConvertOptions* opt) {
  quant::RangeOptions ro;
  auto method = quant::parse_range_method(a.calibration_method);
  if (!method) return method.status();
  ro.method = *method;
  ro.percentile = a.percentile;
  SARAI_RETURN_IF_ERROR(eval::measure_static_ranges(c, ro, opt));
  std::printf("static activation ranges (%s) of %zu layer input%s from %zu calibration set%s\n",
              quant::range_method_name(ro.method), opt->activation_ranges.size(),
              opt->activation_ranges.size() == 1 ? "" : "s", c.sets.size(), c.sets.size() == 1 ? "" : "s");
  return Status::ok();
}

// --auto-keep-fp32 (quantizer/eval/calibrated_convert.h), its trial blob
// beside the output and named for the signal handler meanwhile; the result
// printed.
Status choose_fp32_layers(const ConvertArgs& a, eval::Calibration& cal, quant::ConvertOptions* opt) {
  const std::string trial_path = a.output + ".auto-" + std::to_string(::getpid());
  set_trial_path(trial_path);
  auto r = eval::choose_fp32_layers(cal, a.target_cosine, trial_path, opt);
  if (!r) return r.status();
  set_trial_path(std::string());
  std::string kept;
  for (const std::string& k : r->kept) kept += (kept.empty() ? "" : ",") + k;
  const size_t sets = cal.sets.size();
  std::printf("auto mixed precision on %zu calibration set%s: plain INT8 cosine %.6f %s target %g; ", sets,
              sets == 1 ? "" : "s", r->plain_cosine, r->plain_cosine >= a.target_cosine ? ">=" : "<", a.target_cosine);
  if (r->kept.empty())
    std::printf("no layer kept in FP32\n");
  else
    std::printf("%zu of %zu quantized layers kept in FP32 (%s): cosine %.6f\n", r->kept.size(), r->ranked, kept.c_str(),
                r->cosine);
  return Status::ok();
}

// Generated inputs for the accuracy check: a symbolic first dim of an input
// of rank >= 2 (a batch) is 1, every other symbolic dim 64; the values are
// `run --random`'s (random_input), seed 0.
constexpr int64_t kGeneratedBatch = 1, kGeneratedOther = 64;
constexpr const char* kGeneratedValues = "floats uniform in [-1, 1), integers in [0, 10), bools at random; seed 0";
constexpr size_t kWorstLayers = 5;

int interrupted_during_check(const std::string& out) {
  std::fprintf(stderr, "sarai-rt: interrupted; %s is complete, its accuracy check did not finish\n", out.c_str());
  return 128 + g_signal;
}

std::string joined(const std::vector<std::string>& v, const char* sep) {
  std::string r;
  for (const std::string& x : v) r += (r.empty() ? "" : sep) + x;
  return r;
}

// Below --warn-cosine: the layers with the largest INT8 error of their own
// (cheap: both models run once more per set) and what to do about it.
void warn_low_cosine(const ConvertArgs& a, double cosine, std::shared_ptr<const Model> ref, std::shared_ptr<const Model> test,
                     const std::vector<eval::InputSet>& sets, const KernelTable& kernels, bool generated) {
  std::printf("warning: min cosine %.6f is below --warn-cosine %g: INT8 loses accuracy on this model\n", cosine,
              a.warn_cosine);
  std::vector<std::string> names;
  if (a.to == "onnx") {
    std::printf("  worst layers: not ranked for --to onnx (convert to .sarai to see them)\n");
  } else {
    auto attention = attention_precision_for(*test, AttentionPrecision::kModel);
    auto worst = attention ? eval::worst_layers_by_local_error(ref, test, sets, a.threads, kernels, *attention,
                                                               kWorstLayers, &g_cancel)
                           : Expected<std::vector<eval::LayerRank>>(attention.status());
    if (g_signal) return;
    if (!worst) {
      std::printf("  worst layers: not ranked (%s)\n", worst.message().c_str());
    } else if (worst->empty()) {
      std::printf("  worst layers: not ranked (no quantized node's output has a name the FP32 model shares)\n");
    } else {
      std::string list;
      for (const eval::LayerRank& l : *worst) {
        char buf[64];
        std::snprintf(buf, sizeof buf, ", %.4g", l.relative_l2);
        list += (list.empty() ? "" : "; ") + l.node + " (" + l.op + buf + ")";
        names.push_back(l.node);
      }
      std::printf("  worst layers by their own INT8 error (each quantized node's output computed from the FP32 "
                  "model's inputs to it, relative L2 to FP32's): %s\n", list.c_str());
    }
  }
  if (a.to == "onnx")
    std::printf("  try: --keep-fp32 NODE for the worst layers, or convert to .sarai with --auto-keep-fp32 --calibration "
                "DIR (the fewest layers kept in FP32 that reach --target-cosine)\n");
  else
    std::printf("  try: --auto-keep-fp32 --calibration DIR (realistic input sets; keeps the fewest layers in FP32 that "
                "reach --target-cosine)%s%s; `sarai-rt compare --per-layer` ranks layers by their effect on the "
                "outputs\n",
                names.empty() ? "" : ", or --keep-fp32 ", names.empty() ? "" : quant::glob_escape(names[0]).c_str());
  if (generated) std::printf("  these inputs were generated: realistic inputs may give a different figure\n");
}

// convert's last step: the output against the FP32 source on `cal`'s sets
// (the calibration session reused), or on one generated set when cal is
// null. Returns the exit code: 0 (also when the check is skipped), 128 +
// signal when interrupted.
int check_accuracy(const ConvertArgs& a, eval::Calibration* cal) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool generated = cal == nullptr;
  std::string how;  // how generated inputs were made
  auto skipped = [&](const std::string& why) {
    if (g_signal) return interrupted_during_check(a.output);
    std::printf("accuracy check skipped: %s%s\n", why.c_str(), generated ? "; pass --calibration DIR" : "");
    return 0;
  };
  KernelTable own_kernels;
  SessionOptions opts;
  opts.num_threads = a.threads;
  opts.stream_weights = true;  // bounded memory for a model of any size
  std::shared_ptr<Model> ref_model;
  std::unique_ptr<Session> own_session;
  Session* ref_session = nullptr;
  std::vector<eval::InputSet> own_sets;
  const std::vector<eval::InputSet>* sets = nullptr;
  if (cal) {
    ref_model = cal->model;
    ref_session = cal->session.get();
    sets = &cal->sets;
  } else {
    register_kernels(own_kernels);
    auto m = load_onnx(a.model);
    if (!m) return skipped(m.message());
    ref_model = *m;
    auto s = Session::create(ref_model, own_kernels, opts);
    if (!s) return skipped(s.message());
    own_session = std::move(*s);
    ref_session = own_session.get();
    std::mt19937_64 rng(0);
    auto gen = eval::generate_inputs(ref_model->graph, kGeneratedBatch, kGeneratedOther,
                                     [&](DType t, const Shape& shape) { return random_input(t, shape, rng); });
    if (!gen) return skipped("cannot generate inputs: " + gen.message());
    how = kGeneratedValues;
    if (!gen->resolved.empty()) how += "; symbolic dims " + joined(gen->resolved, ", ");
    for (const NamedTensor& t : gen->set.tensors)
      if (Status st = ref_session->check_input(t); !st) return skipped("generated inputs (" + how + "): " + st.message());
    own_sets.push_back(std::move(gen->set));
    sets = &own_sets;
  }
  const KernelTable& kernels = cal ? cal->kernels : own_kernels;

  auto test_model = open_model_file(a.output);
  if (!test_model) return skipped(test_model.message());
  auto test = Session::create(*test_model, kernels, opts);
  if (!test)
    return skipped(a.to == "onnx" ? "this runtime cannot run the exported model: " + test.message() : test.message());
  if (g_signal) return interrupted_during_check(a.output);

  eval::ReferenceOutputs own_ref;
  const eval::ReferenceOutputs* ref = nullptr;
  if (cal) {
    auto r = eval::reference_outputs(*cal);
    if (!r) return skipped("the FP32 model failed: " + r.message());
    ref = *r;
  } else {
    auto r = eval::ReferenceOutputs::run(*ref_session, *sets);
    if (!r) return skipped("the FP32 model does not run on generated inputs (" + how + "): " + r.message());
    own_ref = std::move(*r);
    ref = &own_ref;
  }
  if (g_signal) return interrupted_during_check(a.output);
  auto c = eval::check_accuracy(*ref, **test, *sets, &g_cancel);
  if (!c) return skipped((generated ? "" : a.output + ": ") + c.message());
  if (g_signal) return interrupted_during_check(a.output);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const size_t n = sets->size(), outs = c->names.size();
  std::printf("accuracy vs FP32 on %zu %s set%s: min cosine %.6f over %zu output%s (worst: %s), %.2f s\n", n,
              generated ? "generated input" : "calibration", n == 1 ? "" : "s", c->min_cosine, outs,
              outs == 1 ? "" : "s", c->worst.c_str(), seconds);
  if (c->skipped)
    std::printf("  %zu output%s not float (indices, masks): not compared\n", c->skipped, c->skipped == 1 ? "" : "s");
  if (generated) std::printf("  generated inputs: %s\n", how.c_str());
  if (!(c->min_cosine >= a.warn_cosine))
    warn_low_cosine(a, c->min_cosine, ref_model, *test_model, *sets, kernels, generated);
  if (g_signal) return interrupted_during_check(a.output);
  return 0;
}

}  // namespace

// Figures: docs/BENCHMARKS.md, "convert --to onnx: weight encodings for
// ONNX Runtime"; the reasoning: quantizer/onnx_export.h.
const char* const kOnnxWeightsHelp =
    "With --to onnx: how MatMul weights are stored for ONNX Runtime (MatMulInteger). "
    "u8 (default): uint8, zero point 128; exact on every CPU; 1.06-1.12x s8's time on an AVX2-only CPU, and on "
    "x86 CPUs with VNNI its integer GEMMs run at about half VNNI's rate (16-bit multiplies). "
    "s8: int8; fastest on x86 CPUs with VNNI or AMX, but WRONG on x86 CPUs without VNNI (AVX2-only, "
    "AVX-512 without VNNI), where ONNX Runtime's vpmaddubsw saturates. "
    "s7: int8 in [-63, 63]; exact on every CPU at s8's speed, one bit less weight precision. "
    "Conv weights are u8 under every choice (ONNX Runtime's int8 ConvInteger is 2.6x slower)";

int cmd_convert(const ConvertArgs& a) {
  if (a.to != "sarai" && a.to != "onnx") return fail("--to must be 'sarai' or 'onnx', not '" + a.to + "'");
  quant::OnnxExportOptions onnx_opt;
  if (!a.onnx_weights.empty()) {
    if (a.to != "onnx") return fail("--onnx-weights is only used with --to onnx");
    auto w = quant::parse_onnx_weights(a.onnx_weights);
    if (!w) return fail(w.message());
    onnx_opt.weights = *w;
  }
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
  opt.attention = a.attention;
  opt.recurrent = a.recurrent;
  opt.depthwise_activations = a.depthwise_activations;
  opt.matmul_activations = a.matmul_activations;
  opt.command_line = a.command_line;
  opt.cancel = &g_cancel;
  opt.progress = [&](uint64_t done, uint64_t total) { progress.update(done, total); };

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // Every signal that would end the process by default and can be caught:
  // the terminal's (INT, QUIT, HUP), kill's TERM, a closed pipe (PIPE, e.g.
  // `convert ... 2>&1 | head -1`), the file size limit (XFSZ). SIGKILL
  // cannot be caught: its temp files are removed by the next writer to the
  // same output (runtime/atomic_file.h).
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGXFSZ}) sigaction(sig, &sa, nullptr);
  if (a.no_check && a.warn_cosine_given) return fail("--warn-cosine is not used with --no-check");
  // The calibration sets, opened before converting (a bad folder fails
  // before anything is written); the accuracy check reuses the session.
  std::unique_ptr<eval::Calibration> cal;
  if (a.static_ranges || a.auto_keep_fp32) {
    const char* what = a.static_ranges ? "--static" : "--auto-keep-fp32";
    if (a.calibration.empty()) return fail(std::string(what) + " needs --calibration DIR (the input sets to measure on)");
    if (a.to != "sarai") return fail(std::string(what) + " writes a .sarai blob (not --to " + a.to + ")");
  } else if (!a.calibration.empty() && a.no_check) {
    return fail("--calibration is only used with --static, --auto-keep-fp32 or the accuracy check (not with --no-check)");
  }
  if (!a.calibration.empty()) {
    cal = std::make_unique<eval::Calibration>();
    Status st = eval::open_calibration(a.model, a.calibration, a.threads, cal.get());
    if (st && a.static_ranges) st = measure_static_ranges(a, *cal, &opt);
    if (st && a.auto_keep_fp32) st = choose_fp32_layers(a, *cal, &opt);
    if (!st)
      return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal)
                      : fail(st.message());
  }
  if (const ConvertArgs defaults;
      !a.static_ranges && (a.calibration_method != defaults.calibration_method || a.percentile != defaults.percentile))
    return fail("--calibration-method and --percentile are only used with --static");

  if (a.to == "onnx" && a.recurrent != "fp32") return fail("--recurrent int8 is only used with --to sarai");
  int quantized = 0, kept = 0, others = -1, dynamic_subgraph_layers = 0, unranked_subgraph_layers = 0;
  uint64_t bytes_in = 0, bytes_out = 0;
  if (a.to == "sarai") {
    auto r = quant::convert_to_blob(model, a.output, opt);
    progress.finish();
    report_removed_stale_temp_files();
    if (!r) return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal) : fail(r.message());
    quantized = r->quantized;
    kept = r->kept_fp32;
    others = r->other_tensors;
    dynamic_subgraph_layers = r->dynamic_subgraph_layers;
    if (a.auto_keep_fp32)
      for (const quant::WeightChoice& c : r->choices) unranked_subgraph_layers += !c.scope.empty() && c.quantize;
    bytes_in = r->bytes_in;
    bytes_out = r->bytes_out;
  } else {
    auto r = quant::export_quantized_onnx(model, a.output, opt, onnx_opt);
    progress.finish();
    report_removed_stale_temp_files();
    if (!r) return g_signal ? (std::fprintf(stderr, "sarai-rt: interrupted; nothing written\n"), 128 + g_signal) : fail(r.message());
    quantized = r->quantized;
    kept = r->kept_fp32;
    bytes_in = r->bytes_in;
    bytes_out = r->bytes_out;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("converted %s -> %s\n", a.model.c_str(), a.output.c_str());
  std::printf("  weights: %d quantized to INT8", quantized);
  if (a.to == "onnx") std::printf(" (--onnx-weights %s)", quant::onnx_weights_name(onnx_opt.weights));
  std::printf(", %d kept in FP32", kept);
  if (others >= 0) std::printf("; %d other tensors stored as they are", others);
  std::printf("\n");
  if (unranked_subgraph_layers > 0)
    std::printf("  --auto-keep-fp32: %d quantized layer%s inside subgraphs %s not ranked (INT8 unless --keep-fp32 "
                "names them)\n",
                unranked_subgraph_layers, unranked_subgraph_layers == 1 ? "" : "s",
                unranked_subgraph_layers == 1 ? "was" : "were");
  if (dynamic_subgraph_layers > 0)
    std::printf("  --static: %d quantized layer%s inside subgraphs keep dynamic activation ranges (calibration "
                "measures the main graph only)\n",
                dynamic_subgraph_layers, dynamic_subgraph_layers == 1 ? "" : "s");
  std::printf("  size: %s -> %s (%.1f %%)\n", human_bytes(bytes_in).c_str(), human_bytes(bytes_out).c_str(),
              bytes_in ? 100.0 * static_cast<double>(bytes_out) / static_cast<double>(bytes_in) : 0.0);
  std::printf("  time: %.2f s (%s/s of input)\n", seconds,
              human_bytes(seconds > 0 ? static_cast<uint64_t>(static_cast<double>(bytes_in) / seconds) : 0).c_str());
  std::fflush(stdout);
  if (a.no_check) return 0;
  if (g_signal) return interrupted_during_check(a.output);
  return check_accuracy(a, cal.get());
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
