// sarai-rt: the command line. The only code in the project that knows about
// argv, stdout and exit codes; everything else returns Status.
//
//   sarai-rt run MODEL [--input NAME=FILE.npy]... [--random NAME=DxDxD]...
//                [--output-dir DIR] [--threads N] [--runs N] [--seed S] [--verify]
//                [--max-memory-mb N] [--report-memory]
//   sarai-rt compare REF.onnx TEST.sarai [--input ... | --random ... | --inputs-dir DIR] [--min-cosine C]
//                    [--max-mse X] [--max-mae X] [--per-layer] [--runs N] [--threads N] [--json]
//   sarai-rt bench MODEL [--input NAME=FILE.npy | --random NAME=DxDxD]... [--warmup N] [--runs N]
//                  [--threads N[,N]...] [--sweep NAME=Dx{D,D}xD]... [--compare MODEL2]
//                  [--max-memory-mb N] [--json]
//   sarai-rt inspect MODEL
//   sarai-rt convert MODEL.onnx -o OUT.sarai [--per-tensor] [--keep-fp32 GLOB]...
//                [--min-elements N] [--to sarai|onnx] [--onnx-weights u8|s8|s7] [--quiet]
//                [--calibration DIR] [--warn-cosine C] [--no-check]
//   sarai-rt verify MODEL.sarai
//
// Exit 0 on success; otherwise one line on stderr and a non-zero code
// (1: the model or the inputs are wrong, 2: the command line is wrong,
// 128+signal: interrupted).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "runtime/cpu_isa.h"
#include "tools/cli/cli.h"

#ifdef SARAI_WITH_MIMALLOC
#include <mimalloc.h>
#endif

using namespace sarai::cli;

namespace {
// The input and thread options run, bench and compare share (bench, whose
// --threads also takes a list, passes threads = nullptr and adds its own).
void add_input_options(CLI::App* cmd, std::vector<std::string>* inputs, std::vector<std::string>* randoms,
                       uint64_t* seed, int* threads) {
  cmd->add_option("--input", *inputs, "An input from a NumPy file: NAME=FILE.npy (repeatable)");
  cmd->add_option("--random", *randoms, "A random input of this shape: NAME=DxDxD (repeatable)");
  cmd->add_option("--seed", *seed, "Seed for --random inputs");
  if (threads)
    cmd->add_option("--threads", *threads, "Threads for intra-op parallelism (default: physical cores)")
        ->check(CLI::Range(0, 1024));
}
// run, bench and compare (the model under test): the fused attention's
// precision for this session (SessionOptions::attention), for A/B runs.
void add_attention_option(CLI::App* cmd, std::string* attention) {
  cmd->add_option("--attention", *attention,
                  "Fused attention in fp32, int8 (per-row scales) or int8-per-tensor; default: model, "
                  "what the blob's metadata says (convert --attention), fp32 for .onnx")
      ->check(CLI::IsMember({"model", "fp32", "int8", "int8-per-tensor"}));
}
}  // namespace

int main(int argc, char** argv) {
#ifdef SARAI_WITH_MIMALLOC
  // Activations of long sequences are tens of MB each and are freed after
  // their last use; mimalloc returns such blocks to the OS, so every run
  // page-faults them in again, 4 KB at a time (measured: most of the FP32
  // whisper time at 3000 frames, docs/BENCHMARKS.md). 2 MB pages cut the
  // faults 512-fold. MIMALLOC_LARGE_OS_PAGES=0 in the environment overrides
  // this. The memory planner (a later issue) removes the churn itself.
  mi_option_set_default(mi_option_large_os_pages, 1);
#endif
  CLI::App app{"sarai-rt: run ONNX models on CPUs in INT8, fast and in little memory"};
  app.require_subcommand(1);

  RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run", "Run a model (.onnx on the FP32 path, .sarai in INT8) and write its outputs");
  run_cmd->add_option("model", run.model, "Model file (.onnx or .sarai)")->required();
  add_input_options(run_cmd, &run.inputs, &run.randoms, &run.seed, &run.threads);
  add_attention_option(run_cmd, &run.attention);
  run_cmd->add_option("--output-dir", run.output_dir,
                      "Write each output as DIR/<output name>.npy; bytes of the name outside [A-Za-z0-9_+-.] (and "
                      "a leading '.') are written %XX, so 'a/b' is a%2Fb.npy, and decoding gives the name back "
                      "(names past 200 bytes so escaped end in ~HASH); compare --inputs-dir reads the same names");
  run_cmd->add_option("--runs", run.runs, "Run this many times and print each time")->check(CLI::Range(1, 1000000));
  run_cmd->add_flag("--profile", run.profile, "Print the time spent per op type and the 10 slowest nodes");
  run_cmd->add_flag("--verify", run.verify, "Check every checksum of a .sarai blob before running");
  run_cmd->add_option("--max-memory-mb", run.max_memory_mb,
                      "Memory budget for the whole process in MB (1 MB = 10^6 bytes): stream the weights if they do "
                      "not fit, fail before running if the activations do not")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  run_cmd->add_flag("--report-memory", run.report_memory,
                    "Print the memory plan, peak RSS (VmHWM), resident weight bytes and the budget");

  BenchArgs bench;
  CLI::App* bench_cmd = app.add_subcommand(
      "bench", "Time a model: load, first run, P50/P90/P99/max latency, runs per second, peak RSS");
  bench_cmd->add_option("model", bench.model, "Model file (.onnx or .sarai)")->required();
  add_input_options(bench_cmd, &bench.inputs, &bench.randoms, &bench.seed, /*threads=*/nullptr);
  add_attention_option(bench_cmd, &bench.attention);
  bench_cmd->add_option("--threads", bench.threads,
                        "Threads for intra-op parallelism (default 0: physical cores), or a list of counts, "
                        "e.g. 1,2,4: a sweep over them")
      ->type_name("N[,N...]");
  bench_cmd->add_option("--sweep", bench.sweep,
                        "A random input at several shapes, e.g. mel=1x80x{300,1000,3000} ({a,b} groups in any dims; "
                        "repeatable): one row per combination and thread count, with P50/P90/P99 each")
      ->type_name("NAME=DIMS");
  bench_cmd->add_option("--compare", bench.compare,
                        "A second model (e.g. the .sarai blob of an .onnx) timed on the same inputs in alternating "
                        "rounds (A,B then B,A), with the ratio of the medians B/A per row")
      ->type_name("MODEL2");
  bench_cmd->add_option("--warmup", bench.warmup, "Untimed runs after the first (default 1)")
      ->check(CLI::Range(0, 1000000));
  bench_cmd->add_option("--runs", bench.runs, "Timed runs (default 20)")->check(CLI::Range(1, 1000000));
  bench_cmd->add_option("--max-memory-mb", bench.max_memory_mb,
                        "Memory budget for the whole process in MB, as for run")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 40));
  bench_cmd->add_option("--cache-size", bench.cache_size,
                        "Result cache of N entries (default 0: off); identical inputs are then served from it, "
                        "and the hit rate is reported")
      ->check(CLI::Range(0, 1000000));
  bench_cmd->add_option("--callers", bench.callers,
                        "Threads calling the one session at once, each for --runs timed runs (default 1); "
                        "with --threads T each call uses T threads")
      ->check(CLI::Range(1, 256));
  bench_cmd->add_option("--feed", bench.feeds,
                        "OUT=IN: after every run, input IN takes output OUT's value (a streaming model's state fed "
                        "back, e.g. --feed stateN=state); each run is then one step of the stream (repeatable)");
  bench_cmd->add_flag("--json", bench.json, "Print one JSON object instead of text");

  CompareArgs cmp;
  CLI::App* compare_cmd = app.add_subcommand(
      "compare", "Compare a quantized model with its FP32 reference on the same inputs: cosine, MSE, MAE, max abs "
                 "error, relative L2, argmax agreement per output, and the speed-up; exit 3 if a threshold fails");
  compare_cmd->add_option("reference", cmp.reference, "FP32 reference model (.onnx)")->required();
  compare_cmd->add_option("test", cmp.test, "Model to check (.sarai, or .onnx)")->required();
  add_input_options(compare_cmd, &cmp.inputs, &cmp.randoms, &cmp.seed, &cmp.threads);
  add_attention_option(compare_cmd, &cmp.attention);
  compare_cmd->add_option("--inputs-dir", cmp.inputs_dir,
                          "Input sets: DIR/NAME.npy, or one subfolder of NAME.npy files per set (NAME as run "
                          "--output-dir writes it, %XX-escaped, or the input's name as is)");
  compare_cmd->add_option("--min-cosine", cmp.min_cosine, "Lowest acceptable cosine per output (default 0.98)");
  compare_cmd->add_option("--max-mse", cmp.max_mse, "Highest acceptable MSE per output");
  compare_cmd->add_option("--max-mae", cmp.max_mae, "Highest acceptable MAE per output");
  compare_cmd->add_option("--runs", cmp.runs, "Timed runs per model and input set (median; default 3)")
      ->check(CLI::Range(1, 1000000));
  compare_cmd->add_flag("--per-layer", cmp.per_layer,
                        "Also, per quantized node: the model's output cosine with only that node in INT8 (alone), "
                        "and the node's own error, local (on the reference's inputs) and accumulated (along the INT8 "
                        "chain); most damaging first");
  compare_cmd->add_flag("--json", cmp.json, "Print one JSON object instead of text");

  std::string inspect_path;
  CLI::App* inspect_cmd = app.add_subcommand("inspect", "Describe a model: inputs, outputs, ops, parameters, data files; "
                                                        "for a .sarai blob also its metadata and tensor table");
  inspect_cmd->add_option("model", inspect_path, "Model file (.onnx or .sarai)")->required();

  bool ops_markdown = false;
  CLI::App* ops_cmd = app.add_subcommand("ops", "List the ops this build runs: domain, opsets, attributes, INT8 path");
  ops_cmd->add_flag("--markdown", ops_markdown, "Print the table of docs/ops.md");

  ConvertArgs conv;
  CLI::App* convert_cmd = app.add_subcommand(
      "convert", "Quantize an ONNX model's weights to INT8 per output channel, streaming, into a .sarai blob "
                 "(or, with --to onnx, into a quantized ONNX model for ONNX Runtime), then measure it against the FP32 "
                 "model");
  convert_cmd->add_option("model", conv.model, "Source model (.onnx, with its external data)")->required();
  convert_cmd->add_option("-o,--output", conv.output, "Output file (.sarai, or .onnx with --to onnx)")->required();
  convert_cmd->add_option("--to", conv.to, "Output format: sarai (default) or onnx");
  convert_cmd->add_option("--onnx-weights", conv.onnx_weights, kOnnxWeightsHelp);
  convert_cmd->add_flag("--per-tensor", conv.per_tensor, "One scale per weight tensor instead of per output channel");
  convert_cmd->add_option("--keep-fp32", conv.keep_fp32,
                          "Keep matching weights in FP32: a node name, a weight name or a glob (repeatable)");
  convert_cmd->add_option("--min-elements", conv.min_elements, "Keep weights with fewer elements in FP32")
      ->check(CLI::Range(int64_t{0}, INT64_MAX));
  convert_cmd->add_flag("-q,--quiet", conv.quiet, "No progress output");
  convert_cmd->add_flag("--auto-keep-fp32", conv.auto_keep_fp32,
                        "Mixed precision: keep the fewest layers in FP32 (most damaging first, measured per layer on "
                        "--calibration) that reach --target-cosine; the choice goes into the blob's metadata");
  convert_cmd->add_option("--target-cosine", conv.target_cosine,
                          "With --auto-keep-fp32: lowest cosine to FP32 over every output (default 0.999)")
      ->check(CLI::Range(-1.0, 1.0));
  convert_cmd->add_option("--attention", conv.attention,
                          "Fused attention blocks at run time (blob metadata; `run --attention` overrides): int8 "
                          "(default: Q, K, V and the probabilities quantized per row), int8-per-tensor, or fp32")
      ->check(CLI::IsMember({"fp32", "int8", "int8-per-tensor"}));
  convert_cmd->add_option("--recurrent", conv.recurrent,
                          "LSTM / GRU / RNN gate GEMMs: fp32 (default: weights as they are) or int8 (W and R per "
                          "gate row, run on the INT8 kernels; blob only)")
      ->check(CLI::IsMember({"fp32", "int8"}));
  convert_cmd->add_option("--depthwise-activations", conv.depthwise_activations,
                          "Depthwise convolutions' input X: per-channel (default: each channel its own scale and zero "
                          "point, chosen at run time, also with --static) or per-tensor (with --static: the calibrated "
                          "range)")
      ->check(CLI::IsMember({"per-channel", "per-tensor"}));
  convert_cmd->add_option("--matmul-activations", conv.matmul_activations,
                          "MatMul / Gemm input X: per-row (default: each row, a token, its own scale and zero point, "
                          "chosen at run time) or per-tensor (one range per call; ONNX DynamicQuantizeLinear's "
                          "scheme). --static uses the calibrated range either way; --to onnx exports per-tensor")
      ->check(CLI::IsMember({"per-row", "per-tensor"}));
  convert_cmd->add_option("--calibration", conv.calibration,
                          "Input sets for --static, --auto-keep-fp32 and the accuracy check: DIR/NAME.npy, or one "
                          "subfolder of NAME.npy per set (NAME as run --output-dir writes it, %XX-escaped, or as is)");
  convert_cmd->add_flag("--static", conv.static_ranges,
                        "Static activation quantization: each quantized layer's input range is measured on "
                        "--calibration and stored in the blob (no range pass at run time)");
  convert_cmd->add_option("--calibration-method", conv.calibration_method,
                          "With --static: minmax (the whole observed range, default) or percentile (clip the tails)");
  convert_cmd->add_option("--percentile", conv.percentile,
                          "With --calibration-method percentile: the share of values kept on each side (default 99.99)")
      ->check(CLI::Range(50.0, 100.0));
  convert_cmd->add_option("--threads", conv.threads,
                          "Threads for the calibration runs, --auto-keep-fp32 measurements and the accuracy check")
      ->check(CLI::Range(0, 1024));
  convert_cmd->add_flag("--no-check", conv.no_check,
                        "Skip the accuracy check: by default convert ends by running the output and the FP32 model "
                        "on --calibration's sets (or on generated inputs, saying so) and prints the lowest output "
                        "cosine, with a warning naming the worst layers below --warn-cosine");
  CLI::Option* warn_cosine =
      convert_cmd
          ->add_option("--warn-cosine", conv.warn_cosine,
                       "Warn when the accuracy check's lowest output cosine is below this (default 0.98)")
          ->check(CLI::Validator(
              [](std::string& v) -> std::string {
                char* end = nullptr;
                const double c = std::strtod(v.c_str(), &end);
                if (v.empty() || *end != '\0' || !(c >= -1.0 && c <= 1.0))
                  return "must be a cosine in [-1, 1], not '" + v + "'";
                return std::string();
              },
              "COSINE"));

  std::string verify_path;
  CLI::App* verify_cmd = app.add_subcommand("verify", "Check every checksum and structural invariant of a .sarai blob");
  verify_cmd->add_option("model", verify_path, "Blob (.sarai)")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::fprintf(stderr, "sarai-rt: error: %s (see sarai-rt --help)\n", what.c_str());
    return 2;
  }
  conv.warn_cosine_given = warn_cosine->count() > 0;
  for (int i = 0; i < argc; ++i) conv.command_line += (i ? " " : "") + std::string(argv[i]);
  if (const char* w = sarai::isa_cap_warning()) std::fprintf(stderr, "sarai-rt: warning: %s\n", w);
  try {
    if (*run_cmd) return cmd_run(run);
    if (*bench_cmd) return cmd_bench(bench);
    if (*compare_cmd) return cmd_compare(cmp);
    if (*inspect_cmd) return cmd_inspect(inspect_path);
    if (*ops_cmd) return cmd_ops(ops_markdown);
    if (*convert_cmd) return cmd_convert(conv);
    if (*verify_cmd) return cmd_verify(verify_path);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  }
  return 2;
}
