// End-to-end tests of the sarai-rt command line: success paths, --help on
// every subcommand, and every bad input, each asserting its one-line message.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <limits>

#include "loader/blob_reader.h"
#include "loader/npy.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace sarai {
namespace {

using test::CliResult;
using test::run_cli;

using test::fixture;

// A failed command prints exactly one line, on stderr, that contains `needle`.
void expect_one_line_error(const CliResult& r, const std::string& needle) {
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "more than one line on stderr: " << r.err;
}

TEST(Cli, HelpOnEverySubcommand) {
  for (std::vector<std::string> args : {std::vector<std::string>{"--help"}, {"run", "--help"}, {"inspect", "--help"}}) {
    CliResult r = run_cli(args);
    EXPECT_EQ(r.code, 0) << args.front();
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << r.out;
  }
  EXPECT_NE(run_cli({"run", "--help"}).out.find("--output-dir"), std::string::npos);
}

// docs/ops.md holds the table `sarai-rt ops --markdown` prints, from its
// header line "| op | opsets |" to the end.
TEST(Docs, OpsMdMatchesTheKernelTable) {
  CliResult r = run_cli({"ops", "--markdown"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string doc = test::read_file(test::test_setting("SARAI_SOURCE_DIR") + "/docs/ops.md");
  const size_t at = doc.find("\n| op | opsets |");
  ASSERT_NE(at, std::string::npos) << "docs/ops.md has no table";
  EXPECT_EQ(doc.substr(at + 1), r.out) << "docs/ops.md is stale: regenerate its table (see its first lines)";
  EXPECT_NE(r.out.find("| LSTM | 9-21 |"), std::string::npos);
  EXPECT_NE(r.out.find("| sarai::QMatMul | any |"), std::string::npos);
  // The input types column (kernels/registry.cc's .types).
  EXPECT_NE(r.out.find("| Relu | 9-21 | float32, integers |"), std::string::npos);
  EXPECT_NE(r.out.find("| Gather | 9-21 | 0: any; 1: int32, int64 | axis |"), std::string::npos);
  CliResult text = run_cli({"ops"});
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find(" ops\n"), std::string::npos) << text.out;
}

TEST(Cli, InspectFixture) {
  CliResult r = run_cli({"inspect", fixture("whisper_tiny_encoder.onnx")});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("mel: float32 [1, 80, frames]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MatMul"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("parameters: "), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("unsupported"), std::string::npos) << r.out;
}

// An ONNX model's description and metadata_props, and the blob's copy of
// them: one line per key, control characters escaped, long values cut.
TEST(Cli, InspectShowsMetadataPropsOnOneLineEach) {
  const std::string dir = test::temp_dir("inspect_props");
  onnx::ModelProto mp = test::matmul_chain_model({1, 16, 64}, {1, 16, 64},
                                                 {test::random_tensor({64, 64}, 1, -0.2f, 0.2f)}, {"mm"});
  mp.set_domain("ai.example");
  mp.set_model_version(3);
  mp.set_doc_string("a\trecognizer");
  std::string chars;
  for (int i = 0; i < 300; ++i) chars += "\xc3\xa9\n";
  for (const auto& [k, v] : {std::pair<std::string, std::string>{"character", chars}, {"shape", "[3, 48, 320]"}}) {
    auto* p = mp.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  test::save(mp, dir + "/m.onnx");
  CliResult r = run_cli({"inspect", dir + "/m.onnx"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_HAS(r.out, "domain: ai.example, model version 3\n");
  EXPECT_HAS(r.out, "description: a\\trecognizer\n");
  EXPECT_HAS(r.out, "metadata_props:\n  character: \xc3\xa9\\n\xc3\xa9\\n");
  EXPECT_HAS(r.out, "... (900 bytes)\n  shape: [3, 48, 320]\n");
  ASSERT_EQ(run_cli({"convert", dir + "/m.onnx", "-o", dir + "/m.sarai", "-q", "--no-check"}).code, 0);
  r = run_cli({"inspect", dir + "/m.sarai"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_HAS(r.out, "  source.props.character: \xc3\xa9\\n");
  EXPECT_HAS(r.out, "... (900 bytes)\n  source.props.shape: [3, 48, 320]\n");
  EXPECT_HAS(r.out, "  source.doc_string: a\\trecognizer\n");
}

TEST(Cli, InspectShowsExternalData) {
  std::string dir = test::temp_dir("ext");
  auto m = test::add_model({4, 4});
  test::externalize(m, "w", dir, "model.onnx.data");
  test::save(m, dir + "/model.onnx");
  CliResult r = run_cli({"inspect", dir + "/model.onnx"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("model.onnx.data: 64 B, 1 tensors"), std::string::npos) << r.out;
}

TEST(Cli, RunWritesOutputsAsNpy) {
  std::string dir = test::temp_dir("run");
  test::save(test::add_model(), dir + "/model.onnx");
  ASSERT_TRUE(write_npy(dir + "/x.npy", test::make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})).is_ok());
  CliResult r = run_cli({"run", dir + "/model.onnx", "--input", "x=" + dir + "/x.npy", "--output-dir", dir + "/out",
                         "--runs", "3", "--threads", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("run 3: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("median of 3 runs"), std::string::npos) << r.out;
  auto y = read_npy(dir + "/out/y.npy");
  ASSERT_TRUE(y.has_value()) << y.message();
  EXPECT_TRUE(test::tensors_equal(*y, test::make_tensor<float>({2, 3}, {1, 3, 5, 7, 9, 11})));
}

// Output names that would collide as file names ('a/b' and 'a_b'), or be
// hidden ('.h'), get unique, reversible names: %XX for every byte outside
// [A-Za-z0-9_+-.] and a leading '.'.
TEST(Cli, RunOutputFileNamesAreUniqueAndReversible) {
  std::string dir = test::temp_dir("run_names");
  auto m = test::add_model();
  auto* g = m.mutable_graph();
  const char* names[] = {"a/b", "a_b", ".h", "50%"};
  for (const char* name : names) {
    auto* n = g->add_node();
    n->set_op_type("Identity");
    n->set_name(std::string("id ") + name);
    n->add_input("y");
    n->add_output(name);
    test::set_tensor_type(g->add_output(), name, {2, 3});
  }
  test::save(m, dir + "/model.onnx");
  ASSERT_TRUE(write_npy(dir + "/x.npy", test::make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})).is_ok());
  CliResult r = run_cli({"run", dir + "/model.onnx", "--input", "x=" + dir + "/x.npy", "--output-dir", dir + "/out"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* file : {"y.npy", "a%2Fb.npy", "a_b.npy", "%2Eh.npy", "50%25.npy"}) {
    auto t = read_npy(dir + "/out/" + file);
    ASSERT_TRUE(t.has_value()) << t.message() << "\n" << r.out;
    EXPECT_TRUE(test::tensors_equal(*t, test::make_tensor<float>({2, 3}, {1, 3, 5, 7, 9, 11}))) << file;
  }
  size_t files = 0;
  for (const auto& e : fs::directory_iterator(dir + "/out")) files += e.is_regular_file();
  EXPECT_EQ(files, 5u) << "no temporary or extra file is left";
}

TEST(Cli, RunFixtureWithRandomInputAtSeveralLengths) {
  for (const char* frames : {"1x80x100", "1x80x37"}) {
    CliResult r = run_cli({"run", fixture("whisper_tiny_encoder.onnx"), "--random", std::string("mel=") + frames});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_NE(r.out.find("output 'encoder_out': float32 [1, "), std::string::npos) << r.out;
  }
}

// --profile: the time per op type, then the slowest nodes with what tells
// one convolution from another (the fixture has a strided Conv).
TEST(Cli, ProfileListsOpTypesAndTheSlowestNodes) {
  CliResult r = run_cli({"run", fixture("whisper_tiny_encoder.onnx"), "--random", "mel=1x80x100", "--runs", "2", "--profile"});
  ASSERT_EQ(r.code, 0) << r.err;
  const size_t by_op = r.out.find("profile (mean per run, by op type):\n"), slowest = r.out.find("slowest 10 nodes (mean per run):\n");
  ASSERT_NE(by_op, std::string::npos) << r.out;
  ASSERT_NE(slowest, std::string::npos) << r.out;
  EXPECT_LT(by_op, slowest);
  size_t lines = 0;
  for (size_t at = r.out.find('\n', slowest); at != std::string::npos && r.out.compare(at + 1, 2, "  ") == 0;
       at = r.out.find('\n', at + 1))
    ++lines;
  EXPECT_EQ(lines, 10u) << r.out.substr(slowest);
  // Which nodes are the 10 slowest depends on the machine (under a
  // sanitizer the GELUs overtake the strided Conv), so check the lines that
  // are there: every Conv line names its kernel, conv2's its stride; conv1
  // (a fifth of the run) is always among them.
  const std::string list = r.out.substr(slowest);
  EXPECT_NE(list.find("node '/conv1/Conv' (Conv) kernel [3]"), std::string::npos) << list;
  const size_t conv2 = list.find("node '/conv2/Conv' (Conv)");
  if (conv2 != std::string::npos) {
    EXPECT_EQ(list.compare(conv2, 48, "node '/conv2/Conv' (Conv) kernel [3] strides [2]"), 0) << list;
  }
}

TEST(Cli, ReportMemoryAndBudget) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  CliResult r = run_cli({"run", model, "--random", "mel=1x80x200", "--runs", "2", "--report-memory"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("session ready in"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory plan: activation arena"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("memory: peak RSS (VmHWM)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("budget none"), std::string::npos) << r.out;

  CliResult roomy = run_cli({"run", model, "--random", "mel=1x80x200", "--max-memory-mb", "100000"});
  ASSERT_EQ(roomy.code, 0) << roomy.err;
  EXPECT_NE(roomy.out.find("memory budget 100000.0 MB: everything fits"), std::string::npos) << roomy.out;

  // Too small even for the activations: one line, before any run.
  CliResult tiny = run_cli({"run", model, "--random", "mel=1x80x200", "--max-memory-mb", "1"});
  expect_one_line_error(tiny, "whisper_tiny_encoder.onnx: a memory budget of 1.0 MB is too small: running needs at least");
  EXPECT_EQ(tiny.out.find("run 1:"), std::string::npos) << tiny.out;
  expect_one_line_error(run_cli({"run", model, "--max-memory-mb", "0"}), "--max-memory-mb");
}

// bench --feed: a stream whose state (y = x + w) is fed back each run; the
// errors name the model and the wrong name or shape.
TEST(Cli, BenchFeedsTheStateBack) {
  const std::string dir = test::temp_dir("feed");
  test::save(test::add_model({2, 3}), dir + "/add.onnx");
  const std::string model = dir + "/add.onnx";
  CliResult r = run_cli({"bench", model, "--random", "x=2x3", "--runs", "5", "--feed", "y=x"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("streaming           each run one step, state fed back: y -> x"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("latency over 5 runs"), std::string::npos) << r.out;
  expect_one_line_error(run_cli({"bench", model, "--random", "x=2x3", "--feed", "z=x"}),
                        model + ": --feed z=x: the model has no output 'z'");
  expect_one_line_error(run_cli({"bench", model, "--random", "x=2x3", "--feed", "y=q"}),
                        model + ": --feed y=q: the model has no input 'q'");
  expect_one_line_error(run_cli({"bench", model, "--random", "x=2x3", "--feed", "yx"}), "--feed 'yx' must be OUT=IN");
  expect_one_line_error(run_cli({"bench", model, "--random", "x=2x3", "--feed", "y=x", "--threads", "1,2"}),
                        "--feed streams one model");
  expect_one_line_error(run_cli({"bench", model, "--random", "x=2x3", "--feed", "y=x", "--callers", "2"}),
                        "--feed streams on one caller");
  // y broadcasts x [1, 3] + w [2, 3] to [2, 3]: it cannot feed x back.
  test::save(test::add_model({2, 3}), dir + "/b.onnx");
  onnx::ModelProto m = test::add_model({2, 3});
  m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_value(1);
  test::save(m, dir + "/b.onnx");
  expect_one_line_error(run_cli({"bench", dir + "/b.onnx", "--random", "x=1x3", "--feed", "y=x"}),
                        "--feed: output 'y' is float32 [2, 3], input 'x' is float32 [1, 3]");
}

TEST(Cli, BenchPrintsTheUsersFigures) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  CliResult r = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "5", "--warmup", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* line : {"load (open + plan)", "first run", "latency over 5 runs (after 0 warm-up): P50",
                           "P90", "P99", "runs/s", "peak RSS (VmHWM)"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " in: " << r.out;
  CliResult j = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "3", "--json", "--max-memory-mb",
                         "100000"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(j.out.front(), '{');
  for (const char* key : {"\"load_ms\": ", "\"first_run_ms\": ", "\"p50_ms\": ", "\"p99_ms\": ",
                          "\"runs_per_s\": ", "\"peak_rss_mb\": ", "\"budget_mb\": 100000.0", "\"streaming\": false"})
    EXPECT_NE(j.out.find(key), std::string::npos) << key << " in: " << j.out;
  expect_one_line_error(run_cli({"bench", model, "--random", "mel=1x80x100", "--max-memory-mb", "1"}),
                        "a memory budget of 1.0 MB is too small");
  expect_one_line_error(run_cli({"bench", model, "--random", "x=1x80x100"}), "the model has no input 'x'");

  // With a result cache, the same input is served from it after the first
  // run: 2 warm-up + 4 timed runs are hits.
  CliResult c = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "4", "--warmup", "2", "--cache-size",
                         "1"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("result cache        size 1: 6 hits, 1 misses (hit rate 85.7 %)"), std::string::npos)
      << c.out;
  CliResult cj = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "3", "--warmup", "0", "--json",
                          "--cache-size", "4"});
  ASSERT_EQ(cj.code, 0) << cj.err;
  for (const char* key : {"\"cache_size\": 4", "\"cache_hits\": 3", "\"cache_misses\": 1", "\"cache_hit_rate_pct\": 75.00"})
    EXPECT_NE(cj.out.find(key), std::string::npos) << key << " in: " << cj.out;
  CliResult off = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "2"});
  EXPECT_EQ(off.out.find("result cache"), std::string::npos) << "off by default: " << off.out;

  // Several callers on one session: every caller's runs are timed, each
  // call in flight has its own run context and arena.
  CliResult two = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "3", "--warmup", "1", "--threads", "1",
                           "--callers", "2"});
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_NE(two.out.find("latency over 6 runs"), std::string::npos) << two.out;
  EXPECT_NE(two.out.find("(2 callers on one session, 3 runs each; "), std::string::npos) << two.out;
  CliResult twoj = run_cli({"bench", model, "--random", "mel=1x80x100", "--runs", "3", "--threads", "1", "--callers",
                            "2", "--json"});
  ASSERT_EQ(twoj.code, 0) << twoj.err;
  EXPECT_NE(twoj.out.find("\"callers\": 2, \"run_contexts\": "), std::string::npos) << twoj.out;
  EXPECT_NE(twoj.out.find("\"runs\": 3, "), std::string::npos) << twoj.out;
  EXPECT_NE(run_cli({"bench", model, "--random", "mel=1x80x100", "--callers", "0"}).code, 0);
}

// --attention: convert records it, run/compare override it per run, and
// compare --per-layer lists the INT8 attention blocks; a bad value is one line.
TEST(Cli, AttentionPrecisionIsChosenAtConvertAndPerRun) {
  const std::string dir = test::temp_dir("cli_attention");
  const std::string onnx = fixture("whisper_tiny_encoder.onnx"), blob = dir + "/m.sarai";
  ASSERT_EQ(run_cli({"convert", onnx, "-o", blob, "-q", "--attention", "int8-per-tensor"}).code, 0);
  CliResult info = run_cli({"inspect", blob});
  EXPECT_NE(info.out.find("attention"), std::string::npos) << info.out;
  EXPECT_NE(info.out.find("int8-per-tensor"), std::string::npos) << info.out;
  // The blob's choice by default; --attention overrides it.
  auto output = [&](const std::string& tag, const std::string& attention) {
    std::vector<std::string> args = {"run", blob, "--random", "mel=1x80x300", "--output-dir", dir + "/" + tag};
    if (!attention.empty()) args.insert(args.end(), {"--attention", attention});
    EXPECT_EQ(run_cli(args).code, 0) << tag;
    return test::read_file(dir + "/" + tag + "/encoder_out.npy");
  };
  const std::string by_model = output("model", ""), per_tensor = output("tensor", "int8-per-tensor");
  EXPECT_FALSE(by_model.empty());
  EXPECT_EQ(by_model, per_tensor);
  EXPECT_NE(by_model, output("row", "int8"));
  CliResult row = run_cli({"compare", onnx, blob, "--random", "mel=1x80x300", "--runs", "1", "--attention", "int8",
                           "--per-layer"});
  EXPECT_EQ(row.code, 0) << row.out << row.err;
  EXPECT_NE(row.out.find("/blocks.0/attn/MatMul_1              Attention"), std::string::npos) << row.out;
  CliResult fp32 = run_cli({"compare", onnx, blob, "--random", "mel=1x80x300", "--runs", "1", "--attention", "fp32",
                            "--per-layer"});
  EXPECT_EQ(fp32.code, 0);
  EXPECT_EQ(fp32.out.find(" Attention "), std::string::npos) << fp32.out;
  EXPECT_EQ(run_cli({"run", blob, "--random", "mel=1x80x100", "--attention", "int8"}).code, 0);
  expect_one_line_error(run_cli({"run", blob, "--random", "mel=1x80x100", "--attention", "int4"}), "--attention");
  expect_one_line_error(run_cli({"convert", onnx, "-o", dir + "/x.sarai", "--attention", "int4"}), "--attention");
}

TEST(Cli, CompareReportsMetricsAndGatesOnThresholds) {
  const std::string dir = test::temp_dir("compare");
  const std::string ref = fixture("whisper_tiny_encoder.onnx");
  ASSERT_EQ(run_cli({"convert", ref, "-o", dir + "/m.sarai", "-q"}).code, 0);
  CliResult ok = run_cli({"compare", ref, dir + "/m.sarai", "--random", "mel=1x80x120", "--max-mse", "0.01",
                          "--max-mae", "0.05"});
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  for (const char* text : {"cosine", "MSE", "MAE", "max abs", "rel L2", "argmax", "encoder_out", "faster",
                           "thresholds held"})
    EXPECT_NE(ok.out.find(text), std::string::npos) << text << " in: " << ok.out;
  // A threshold no INT8 model meets: exit 3, and the failing output named.
  CliResult strict = run_cli({"compare", ref, dir + "/m.sarai", "--random", "mel=1x80x120", "--min-cosine", "1.5"});
  EXPECT_EQ(strict.code, 3) << strict.out << strict.err;
  EXPECT_NE(strict.out.find("threshold not held: 'encoder_out': cosine"), std::string::npos) << strict.out;
  CliResult json = run_cli({"compare", ref, dir + "/m.sarai", "--random", "mel=1x80x120", "--json", "--max-mae", "0"});
  EXPECT_EQ(json.code, 3);
  EXPECT_NE(json.out.find("\"thresholds_held\": false"), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"name\": \"encoder_out\", \"cosine\": 0.99"), std::string::npos) << json.out;

  // Per layer: every quantized node by its real name, local and
  // accumulated; the first layer's input is exact, so both agree there.
  CliResult layers = run_cli({"compare", ref, dir + "/m.sarai", "--random", "mel=1x80x120", "--per-layer"});
  ASSERT_EQ(layers.code, 0) << layers.err;
  for (const char* node : {"/conv1/Conv", "/conv2/Conv", "/blocks.0/fc1/MatMul", "/blocks.1/attn/out/MatMul"})
    EXPECT_NE(layers.out.find(node), std::string::npos) << node << " in: " << layers.out;
  const size_t conv1 = layers.out.find("/conv1/Conv");
  ASSERT_NE(conv1, std::string::npos);
  const std::string row = layers.out.substr(conv1, layers.out.find('\n', conv1) - conv1);
  double alone_cos = 0, local_cos = 0, local_l2 = 0, acc_cos = 0, acc_l2 = 0;
  char name[64], op[32];
  ASSERT_EQ(std::sscanf(row.c_str(), "%63s %31s %lf %lf %lf %lf %lf", name, op, &alone_cos, &local_cos, &local_l2,
                        &acc_cos, &acc_l2),
            7)
      << row;
  EXPECT_STREQ(op, "QConv");
  EXPECT_GT(alone_cos, 0.999);
  EXPECT_LT(alone_cos, 1.0);
  EXPECT_GT(local_cos, 0.999);
  EXPECT_DOUBLE_EQ(local_cos, acc_cos);
  EXPECT_DOUBLE_EQ(local_l2, acc_l2);
  CliResult layers_json =
      run_cli({"compare", ref, dir + "/m.sarai", "--random", "mel=1x80x120", "--per-layer", "--json"});
  EXPECT_NE(layers_json.out.find("\"layers\": [{\"node\": "), std::string::npos) << layers_json.out;
  EXPECT_NE(layers_json.out.find("\"alone_cosine\": 0.99"), std::string::npos) << layers_json.out;

  // A folder of input sets: one subfolder per set, NAME.npy per input.
  for (const char* set : {"a", "b"}) {
    fs::create_directories(dir + "/sets/" + set);
    ASSERT_TRUE(write_npy(dir + "/sets/" + set + "/mel.npy", test::random_tensor({1, 80, 64}, set[0])).is_ok());
  }
  CliResult many = run_cli({"compare", ref, dir + "/m.sarai", "--inputs-dir", dir + "/sets"});
  ASSERT_EQ(many.code, 0) << many.err;
  EXPECT_NE(many.out.find("2 input sets"), std::string::npos) << many.out;

  expect_one_line_error(run_cli({"compare", ref, dir + "/m.sarai", "--inputs-dir", dir + "/none"}),
                        "/none: not a folder");
  // Outputs are matched by name.
  onnx::ModelProto y = test::add_model({2, 3});
  test::save(y, dir + "/y.onnx");
  y.mutable_graph()->mutable_output(0)->set_name("z");
  y.mutable_graph()->mutable_node(0)->set_output(0, "z");
  test::save(y, dir + "/z.onnx");
  expect_one_line_error(run_cli({"compare", dir + "/y.onnx", dir + "/z.onnx", "--random", "x=2x3"}),
                        "z.onnx: has no output 'y' (an output of " + dir + "/y.onnx)");
  expect_one_line_error(run_cli({"compare", ref, fixture("small_cnn.onnx"), "--random", "mel=1x80x64"}),
                        "small_cnn.onnx: the model has no input 'mel'");
}

// test::sensitive_chain_model (tests/onnx_builder.h): plain INT8 misses a
// 0.999 cosine; keeping "second" in FP32 reaches it.
std::string sensitive_model(const std::string& dir) {
  test::save(test::sensitive_chain_model(), dir + "/sensitive.onnx");
  return dir + "/sensitive.onnx";
}

TEST(Cli, AutoKeepFp32ReachesTheTargetWherePlainInt8DoesNot) {
  const std::string dir = test::temp_dir("autofp32");
  const std::string model = sensitive_model(dir);
  for (int s = 0; s < 3; ++s) {
    fs::create_directories(dir + "/calib/" + std::to_string(s));
    ASSERT_TRUE(write_npy(dir + "/calib/" + std::to_string(s) + "/x.npy", test::random_tensor({1, 16, 64}, 40 + s)).is_ok());
  }
  ASSERT_EQ(run_cli({"convert", model, "-o", dir + "/plain.sarai", "-q"}).code, 0);
  CliResult plain = run_cli({"compare", model, dir + "/plain.sarai", "--inputs-dir", dir + "/calib", "--min-cosine", "0.999"});
  EXPECT_EQ(plain.code, 3) << "plain INT8 should miss the target: " << plain.out;
  // Single-layer sensitivity names the culprit: "second" alone in INT8
  // misses the target and comes first; "first" alone does not.
  CliResult layers = run_cli({"compare", model, dir + "/plain.sarai", "--inputs-dir", dir + "/calib", "--per-layer"});
  const size_t table = layers.out.find("most damaging first");
  ASSERT_NE(table, std::string::npos) << layers.out;
  const size_t second = layers.out.find("\nsecond ", table), first = layers.out.find("\nfirst ", table);
  ASSERT_NE(second, std::string::npos) << layers.out;
  ASSERT_NE(first, std::string::npos) << layers.out;
  EXPECT_LT(second, first) << layers.out;
  double alone_second = 0, alone_first = 0;
  ASSERT_EQ(std::sscanf(layers.out.c_str() + second, " second %*s %lf", &alone_second), 1);
  ASSERT_EQ(std::sscanf(layers.out.c_str() + first, " first %*s %lf", &alone_first), 1);
  EXPECT_LT(alone_second, 0.999);
  EXPECT_GT(alone_first, 0.999);

  CliResult conv = run_cli({"convert", model, "-o", dir + "/auto.sarai", "-q", "--auto-keep-fp32", "--target-cosine",
                            "0.999", "--calibration", dir + "/calib"});
  ASSERT_EQ(conv.code, 0) << conv.out << conv.err;
  EXPECT_NE(conv.out.find("1 of 2 quantized layers kept in FP32 (second)"), std::string::npos) << conv.out;
  CliResult meta = run_cli({"inspect", dir + "/auto.sarai"});
  EXPECT_NE(meta.out.find("auto_keep_fp32.nodes"), std::string::npos) << meta.out;
  EXPECT_NE(meta.out.find("auto_keep_fp32.cosine"), std::string::npos) << meta.out;
  // Fresh inputs, not the calibration ones: the target holds there too.
  CliResult check = run_cli({"compare", model, dir + "/auto.sarai", "--random", "x=1x16x64", "--seed", "99",
                             "--min-cosine", "0.999"});
  EXPECT_EQ(check.code, 0) << check.out;
  // Nothing left behind but the blobs.
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_TRUE(e.is_directory() || e.path().extension() == ".sarai" || e.path().extension() == ".onnx") << e.path();

  expect_one_line_error(run_cli({"convert", model, "-o", dir + "/x.sarai", "--auto-keep-fp32"}),
                        "--auto-keep-fp32 needs --calibration DIR");
  expect_one_line_error(run_cli({"convert", model, "-o", dir + "/x.sarai", "--calibration", dir + "/calib", "--no-check"}),
                        "--calibration is only used with --static, --auto-keep-fp32 or the accuracy check (not with "
                        "--no-check)");
  // The accuracy check reused the calibration sets (and session).
  EXPECT_NE(conv.out.find("accuracy vs FP32 on 3 calibration sets: min cosine "), std::string::npos) << conv.out;
}

// convert --static: the calibrated ranges land in the blob as QMatMul
// attributes and the kernels use them. On a single MatMul calibrated on the
// very input it then runs, min/max static quantization must reproduce the
// dynamic per-tensor blob bit for bit (the same range, hence the same
// parameters).
TEST(Cli, StaticCalibrationRoundTrip) {
  const std::string dir = test::temp_dir("static");
  const std::string one = dir + "/one.onnx";
  test::save(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {test::random_tensor({64, 32}, 3, -0.2f, 0.2f)}, {"only"}),
             one);
  const Tensor x = test::random_tensor({1, 16, 64}, 5, -1.f, 3.f);
  fs::create_directories(dir + "/calib/0");
  ASSERT_TRUE(write_npy(dir + "/calib/0/x.npy", x).is_ok());
  ASSERT_EQ(run_cli({"convert", one, "-o", dir + "/dyn.sarai", "-q", "--matmul-activations", "per-tensor"}).code, 0);
  CliResult conv = run_cli({"convert", one, "-o", dir + "/static.sarai", "-q", "--static", "--calibration", dir + "/calib"});
  ASSERT_EQ(conv.code, 0) << conv.out << conv.err;
  EXPECT_NE(conv.out.find("static activation ranges (minmax) of 1 layer input from 1 calibration set"), std::string::npos)
      << conv.out;

  // The blob: the node carries x's range folded from 0, and the metadata says how.
  auto blob = load_blob(dir + "/static.sarai", /*verify=*/true);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Node* node = nullptr;
  for (const Node& n : (*blob)->graph.nodes)
    if (n.name == "only") node = &n;
  ASSERT_NE(node, nullptr);
  ASSERT_EQ(node->op_type, "QMatMul");
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x.numel(); ++i) lo = std::min(lo, x.data<float>()[i]), hi = std::max(hi, x.data<float>()[i]);
  EXPECT_EQ(node->attr_float("x_min", 99), lo);
  EXPECT_EQ(node->attr_float("x_max", 99), hi);
  CliResult meta = run_cli({"inspect", dir + "/static.sarai"});
  EXPECT_NE(meta.out.find("static.method: minmax"), std::string::npos) << meta.out;
  EXPECT_NE(meta.out.find("static.calibration_sets: 1"), std::string::npos) << meta.out;

  // Run both blobs on the calibration input: identical bits.
  for (const char* b : {"dyn", "static"})
    ASSERT_EQ(run_cli({"run", dir + "/" + b + ".sarai", "--input", "x=" + dir + "/calib/0/x.npy", "--output-dir",
                       dir + "/out_" + b}).code, 0);
  auto yd = read_npy(dir + "/out_dyn/y.npy"), ys = read_npy(dir + "/out_static/y.npy");
  ASSERT_TRUE(yd.has_value() && ys.has_value());
  EXPECT_TRUE(test::tensors_equal(*ys, *yd));
  // On other inputs, static is still close to FP32.
  EXPECT_EQ(run_cli({"compare", one, dir + "/static.sarai", "--random", "x=1x16x64", "--seed", "7", "--min-cosine",
                     "0.999"}).code, 0);

  // Percentile: a narrower range than min/max, recorded in the metadata.
  ASSERT_EQ(run_cli({"convert", one, "-o", dir + "/pct.sarai", "-q", "--static", "--calibration", dir + "/calib",
                     "--calibration-method", "percentile", "--percentile", "99"}).code, 0);
  auto pct = load_blob(dir + "/pct.sarai");
  ASSERT_TRUE(pct.has_value()) << pct.message();
  for (const Node& n : (*pct)->graph.nodes)
    if (n.name == "only") {
      EXPECT_GT(n.attr_float("x_min", 99), lo);
      EXPECT_LT(n.attr_float("x_max", 99), hi);
      EXPECT_LE(n.attr_float("x_min", 99), 0.f);
    }
  meta = run_cli({"inspect", dir + "/pct.sarai"});
  EXPECT_NE(meta.out.find("static.percentile: 99"), std::string::npos) << meta.out;

  // --static composes with --auto-keep-fp32: the trials use the static ranges.
  const std::string sens = sensitive_model(dir);
  CliResult both = run_cli({"convert", sens, "-o", dir + "/both.sarai", "-q", "--static", "--auto-keep-fp32",
                            "--target-cosine", "0.999", "--calibration", dir + "/calib"});
  ASSERT_EQ(both.code, 0) << both.out << both.err;
  EXPECT_NE(both.out.find("static activation ranges (minmax) of 2 layer inputs"), std::string::npos) << both.out;
  EXPECT_NE(both.out.find("kept in FP32 (second)"), std::string::npos) << both.out;

  // A real graph: the whisper-tiny fixture, whose first QConv reads the
  // graph input itself (its range comes from the sets, not an observer).
  for (int k = 0; k < 2; ++k) {
    fs::create_directories(dir + "/wcal/" + std::to_string(k));
    ASSERT_TRUE(write_npy(dir + "/wcal/" + std::to_string(k) + "/mel.npy", test::random_tensor({1, 80, 200}, 60 + k)).is_ok());
  }
  const std::string tiny = fixture("whisper_tiny_encoder.onnx");
  CliResult wconv = run_cli({"convert", tiny, "-o", dir + "/w.sarai", "-q", "--static", "--calibration", dir + "/wcal",
                             "--calibration-method", "percentile"});
  ASSERT_EQ(wconv.code, 0) << wconv.out << wconv.err;
  auto wblob = load_blob(dir + "/w.sarai");
  ASSERT_TRUE(wblob.has_value()) << wblob.message();
  int with_range = 0, quantized = 0;
  for (const Node& n : (*wblob)->graph.nodes) {
    if (n.domain != "sarai") continue;
    ++quantized;
    with_range += n.has_attr("x_min") && n.has_attr("x_max") && n.attr_float("x_max", 0) > 0;
  }
  EXPECT_GT(quantized, 0);
  EXPECT_EQ(with_range, quantized);
  CliResult wcmp = run_cli({"compare", tiny, dir + "/w.sarai", "--random", "mel=1x80x200", "--seed", "3", "--min-cosine",
                            "0.999"});
  EXPECT_EQ(wcmp.code, 0) << wcmp.out << wcmp.err;

  expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.sarai", "--static"}),
                        "--static needs --calibration DIR");
  expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.onnx", "--to", "onnx", "--static", "--calibration",
                                 dir + "/calib"}),
                        "--static writes a .sarai blob (not --to onnx)");
  expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.sarai", "--static", "--calibration", dir + "/calib",
                                 "--calibration-method", "entropy"}),
                        "calibration method 'entropy' is not known (minmax or percentile)");
  expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.sarai", "--percentile", "99.9"}),
                        "--calibration-method and --percentile are only used with --static");
  // Calibration data no finite range can hold, named by value.
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    const std::string d = dir + (std::isnan(bad) ? "/nan" : "/inf");
    fs::create_directories(d + "/0");
    Tensor t = test::random_tensor({1, 16, 64}, 1);
    float* p = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::isnan(bad) ? bad : (i == 5 ? bad : p[i]);
    ASSERT_TRUE(write_npy(d + "/0/x.npy", t).is_ok());
    expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.sarai", "--static", "--calibration", d}),
                          std::isnan(bad) ? "value 'x' got no finite value on the calibration sets"
                                          : "value 'x' holds an infinite value; no finite range can quantize it");
  }
  // --per-layer against a blob of another model: the missing value is named.
  ASSERT_EQ(run_cli({"convert", sens, "-o", dir + "/sens.sarai", "-q"}).code, 0);
  expect_one_line_error(run_cli({"compare", one, dir + "/sens.sarai", "--random", "x=1x16x64", "--per-layer"}),
                        "--per-layer: node 'second' (QMatMul): the reference has no value 'h0'");
  // A calibration set that does not fit the model.
  fs::create_directories(dir + "/bad/0");
  ASSERT_TRUE(write_npy(dir + "/bad/0/x.npy", test::random_tensor({1, 16, 63}, 1)).is_ok());
  expect_one_line_error(run_cli({"convert", one, "-o", dir + "/x.sarai", "--static", "--calibration", dir + "/bad"}),
                        "bad/0/x.npy");
  EXPECT_FALSE(fs::exists(dir + "/x.sarai"));
}

// An unknown SARAI_MAX_ISA is ignored, and the CLI says so in one line
// (the runtime itself never prints).
TEST(Cli, WarnsOfAnUnknownIsaCap) {
  CliResult r = run_cli({"run", fixture("small_cnn.onnx"), "--random", "image=1x3x16x16"}, "SARAI_MAX_ISA=avx9");
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "sarai-rt: warning: SARAI_MAX_ISA=avx9 is not a level (scalar, avx2, avx2_vnni, avx512_vnni or "
                   "amx); it is ignored\n");
  CliResult ok = run_cli({"run", fixture("small_cnn.onnx"), "--random", "image=1x3x16x16"}, "SARAI_MAX_ISA=scalar");
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_EQ(ok.err, "");
  EXPECT_NE(ok.out.find("ISA scalar"), std::string::npos) << ok.out;
}

TEST(CliErrors, MissingModel) {
  expect_one_line_error(run_cli({"run", "/nonexistent.onnx"}), "sarai-rt: error: /nonexistent.onnx: cannot open: No such file or directory");
  expect_one_line_error(run_cli({"inspect", "/nonexistent.onnx"}), "/nonexistent.onnx: cannot open");
}

TEST(CliErrors, GarbageModel) {
  std::string dir = test::temp_dir("garbage");
  test::write_file(dir + "/model.onnx", "this is not protobuf at all \xff\xff");
  expect_one_line_error(run_cli({"run", dir + "/model.onnx"}), "model.onnx: not a valid ONNX model");
  expect_one_line_error(run_cli({"inspect", dir + "/model.onnx"}), "model.onnx: not a valid ONNX model");
}

TEST(CliErrors, BadModelsFromTheLoader) {
  std::string dir = test::temp_dir("bad");
  auto m = test::add_model();
  test::externalize(m, "w", dir, "weights.bin");
  fs::resize_file(dir + "/weights.bin", 8);
  test::save(m, dir + "/model.onnx");
  expect_one_line_error(run_cli({"run", dir + "/model.onnx"}), "tensor 'w': external data 'weights.bin': offset 0 + length 24 is past the end");
  expect_one_line_error(run_cli({"inspect", dir + "/model.onnx"}), "is past the end of the file (8 bytes)");

  auto opset = test::add_model();
  opset.mutable_opset_import(0)->set_version(30);
  test::save(opset, dir + "/opset.onnx");
  expect_one_line_error(run_cli({"run", dir + "/opset.onnx"}), "opset.onnx: opset 30 of the default domain is not supported");
}

TEST(CliErrors, UnsupportedOpsListedOnce) {
  std::string dir = test::temp_dir("ops");
  auto m = test::add_model();
  m.mutable_graph()->mutable_node(0)->set_op_type("StringNormalizer");
  test::save(m, dir + "/model.onnx");
  expect_one_line_error(run_cli({"run", dir + "/model.onnx"}), "1 unsupported op at opset 17: StringNormalizer (1 node, e.g. 'add0')");
  CliResult r = run_cli({"inspect", dir + "/model.onnx"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("StringNormalizer"), std::string::npos);
  EXPECT_NE(r.out.find("(unsupported)"), std::string::npos);
}

TEST(CliErrors, InputFileProblems) {
  std::string dir = test::temp_dir("inputs");
  test::save(test::add_model(), dir + "/model.onnx");
  const std::string model = dir + "/model.onnx";
  ASSERT_TRUE(write_npy(dir + "/int.npy", Tensor::allocate(DType::kInt64, {2, 3})).is_ok());
  ASSERT_TRUE(write_npy(dir + "/shape.npy", Tensor::allocate(DType::kFloat32, {3, 2})).is_ok());
  ASSERT_TRUE(write_npy(dir + "/ok.npy", Tensor::allocate(DType::kFloat32, {2, 3})).is_ok());
  test::write_file(dir + "/junk.npy", "junk");

  expect_one_line_error(run_cli({"run", model, "--input", "x=" + dir + "/int.npy"}),
                        "int.npy: " + model + ": input 'x' must be float32 [2, 3], got int64 [2, 3]");
  expect_one_line_error(run_cli({"run", model, "--input", "x=" + dir + "/shape.npy"}),
                        "shape.npy: " + model + ": input 'x' must be float32 [2, 3], got float32 [3, 2] (dim 0 must be 2)");
  expect_one_line_error(run_cli({"run", model, "--input", "x=" + dir + "/junk.npy"}), "junk.npy: not a NumPy .npy file");
  expect_one_line_error(run_cli({"run", model, "--input", "x=" + dir + "/none.npy"}), "none.npy: cannot open");
  expect_one_line_error(run_cli({"run", model, "--input", "nope=" + dir + "/ok.npy"}), "the model has no input 'nope' (its inputs: x)");
  expect_one_line_error(run_cli({"run", model, "--input", dir + "/ok.npy"}), "must be NAME=FILE.npy");
  expect_one_line_error(run_cli({"run", model}), "missing input 'x' (float32 [2, 3])");
  expect_one_line_error(run_cli({"run", model, "--input", "x=" + dir + "/ok.npy", "--random", "x=2x3"}), "input 'x' is given twice");
  expect_one_line_error(run_cli({"run", model, "--random", "x=2xq"}), "'2xq' is not a shape like 1x80x3000");
  expect_one_line_error(run_cli({"run", model, "--random", "x=4x3"}), "(dim 0 must be 2)");
}

TEST(CliErrors, BadCommandLine) {
  CliResult r = run_cli({"run"});
  EXPECT_EQ(r.code, 2);
  expect_one_line_error(r, "model is required");
  expect_one_line_error(run_cli({"frobnicate"}), "sarai-rt: error: ");
  expect_one_line_error(run_cli({"run", "m.onnx", "--threads", "-3"}), "--threads");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

TEST(CliConvert, ConvertVerifyInspectAndRunABlob) {
  std::string dir = test::temp_dir("convert");
  const std::string blob = dir + "/w.sarai";
  CliResult c = run_cli({"convert", fixture("whisper_tiny_encoder.onnx"), "-o", blob, "--quiet"});
  ASSERT_EQ(c.code, 0) << c.err;
  EXPECT_NE(c.out.find("weights: 14 quantized to INT8, 0 kept in FP32"), std::string::npos) << c.out;
  EXPECT_TRUE(c.err.empty()) << "--quiet printed: " << c.err;
  CliResult v = run_cli({"verify", blob});
  ASSERT_EQ(v.code, 0) << v.err;
  EXPECT_NE(v.out.find("every checksum matches"), std::string::npos) << v.out;
  CliResult i = run_cli({"inspect", blob});
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_NE(i.out.find("packed n16k4"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("source.sha256: "), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("sarai::QMatMul"), std::string::npos) << i.out;
  CliResult r = run_cli({"run", blob, "--verify", "--random", "mel=1x80x200", "--output-dir", dir + "/out"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir + "/out/encoder_out.npy"));
}

TEST(CliConvert, KeepFp32AndMinElementsShowInTheBlob) {
  std::string dir = test::temp_dir("keep");
  CliResult c = run_cli({"convert", fixture("whisper_tiny_encoder.onnx"), "-o", dir + "/w.sarai", "--quiet",
                         "--keep-fp32", "conv1*", "--min-elements", "20000"});
  ASSERT_EQ(c.code, 0) << c.err;
  CliResult i = run_cli({"inspect", dir + "/w.sarai"});
  EXPECT_NE(i.out.find("matches --keep-fp32 'conv1*'"), std::string::npos) << i.out;
  EXPECT_NE(i.out.find("< --min-elements 20000"), std::string::npos) << i.out;
}

TEST(CliConvert, Errors) {
  std::string dir = test::temp_dir("converr");
  const std::string src = dir + "/m.onnx";
  fs::copy_file(fixture("small_cnn.onnx"), src);
  const auto before = test::read_file(src);
  expect_one_line_error(run_cli({"convert", src, "-o", dir + "/missing/x.sarai", "-q"}), "does not exist");
  expect_one_line_error(run_cli({"convert", src, "-o", src, "-q"}), "convert never overwrites its input");
  expect_one_line_error(run_cli({"convert", src, "-o", dir + "/x.sarai", "--to", "tflite"}), "--to must be 'sarai' or 'onnx'");
  expect_one_line_error(run_cli({"convert", dir + "/none.onnx", "-o", dir + "/x.sarai"}), "none.onnx: cannot open");
  expect_one_line_error(run_cli({"convert", src, "-o", dir + "/x.sarai", "--depthwise-activations", "per-row"}),
                        "--depthwise-activations: per-row not in {per-channel,per-tensor}");
  expect_one_line_error(run_cli({"convert", src, "-o", dir + "/x.sarai", "--matmul-activations", "per-channel"}),
                        "--matmul-activations: per-channel not in {per-row,per-tensor}");
  EXPECT_EQ(test::read_file(src), before) << "convert changed its source";
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_EQ(e.path().filename(), "m.onnx") << "left behind: " << e.path();
}

// ------------------------------------------------ convert's accuracy check

// The lowest cosine in convert's "accuracy vs FP32 on ..." line; -9 when
// the line is missing.
double check_cosine(const std::string& out) {
  const size_t at = out.find("accuracy vs FP32 on ");
  if (at == std::string::npos) return -9;
  const size_t c = out.find("min cosine ", at);
  double cos = -9;
  if (c == std::string::npos || std::sscanf(out.c_str() + c, "min cosine %lf", &cos) != 1) return -9;
  return cos;
}

// x [1, 16, 64] -> MatMul "first" -> h0 -> MatMul "second" -> y: w0's first
// column is 3000x the others, so h0 holds one huge channel and INT8 h0 (one
// range for all channels) rounds the small ones, the only ones w1 reads, to
// almost nothing. "second" is the layer that quantizes badly.
std::string outlier_model(const std::string& dir) {
  Tensor w0 = test::random_tensor({64, 64}, 1, -0.2f, 0.2f), w1 = test::random_tensor({64, 32}, 2, -0.2f, 0.2f);
  for (int64_t i = 0; i < 64; ++i) w0.mutable_data<float>()[i * 64] *= 3000;
  for (int64_t j = 0; j < 32; ++j) w1.mutable_data<float>()[j] = 0;
  test::save(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {w0, w1}, {"first", "second"}), dir + "/outlier.onnx");
  return dir + "/outlier.onnx";
}

TEST(CliConvertCheck, LineOnGeneratedInputs) {
  const std::string dir = test::temp_dir("check");
  CliResult c = run_cli({"convert", fixture("small_cnn.onnx"), "-o", dir + "/cnn.sarai", "-q"});
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("accuracy vs FP32 on 1 generated input set: min cosine "), std::string::npos) << c.out;
  const double cos = check_cosine(c.out);
  EXPECT_GT(cos, 0.99) << c.out;
  EXPECT_LE(cos, 1.0 + 1e-9) << c.out;
  EXPECT_NE(c.out.find(" over 1 output (worst: "), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("\n  generated inputs: floats uniform in [-1, 1), integers in [0, 10), bools at random; seed 0"),
            std::string::npos)
      << c.out;
  EXPECT_EQ(c.out.find("warning"), std::string::npos) << c.out;
  // A symbolic dim is resolved to a stated value.
  CliResult w = run_cli({"convert", fixture("whisper_tiny_encoder.onnx"), "-o", dir + "/w.sarai", "-q"});
  ASSERT_EQ(w.code, 0) << w.out << w.err;
  EXPECT_NE(w.out.find("; symbolic dims frames=64\n"), std::string::npos) << w.out;
  EXPECT_GT(check_cosine(w.out), 0.99) << w.out;
  // --to onnx: the exported model runs here (MatMulInteger/ConvInteger) and is checked the same way.
  CliResult o = run_cli({"convert", fixture("small_cnn.onnx"), "-o", dir + "/cnn.onnx", "--to", "onnx", "-q"});
  ASSERT_EQ(o.code, 0) << o.out << o.err;
  EXPECT_GT(check_cosine(o.out), 0.99) << o.out;
  // --no-check: no check at all.
  CliResult n = run_cli({"convert", fixture("small_cnn.onnx"), "-o", dir + "/n.sarai", "-q", "--no-check"});
  ASSERT_EQ(n.code, 0) << n.out << n.err;
  EXPECT_EQ(n.out.find("accuracy"), std::string::npos) << n.out;
  EXPECT_TRUE(fs::exists(dir + "/n.sarai"));
  EXPECT_NE(run_cli({"convert", "--help"}).out.find("--no-check"), std::string::npos);
}

TEST(CliConvertCheck, WarningNamesTheBadLayer) {
  const std::string dir = test::temp_dir("checkwarn");
  const std::string model = outlier_model(dir);
  CliResult c = run_cli({"convert", model, "-o", dir + "/o.sarai", "-q"});
  ASSERT_EQ(c.code, 0) << c.out << c.err;  // a warning, not a failure
  const double cos = check_cosine(c.out);
  EXPECT_LT(cos, 0.98) << c.out;
  EXPECT_GT(cos, -1.0) << c.out;
  EXPECT_NE(c.out.find("\nwarning: min cosine "), std::string::npos) << c.out;
  EXPECT_NE(c.out.find(" is below --warn-cosine 0.98: INT8 loses accuracy on this model\n"), std::string::npos) << c.out;
  const size_t list = c.out.find("worst layers by their own INT8 error");
  ASSERT_NE(list, std::string::npos) << c.out;
  const size_t second = c.out.find(": second (QMatMul, ", list), first = c.out.find("; first (QMatMul, ", list);
  EXPECT_NE(second, std::string::npos) << c.out;
  EXPECT_NE(first, std::string::npos) << c.out;
  EXPECT_LT(second, first) << c.out;
  EXPECT_NE(c.out.find("try: --auto-keep-fp32 --calibration DIR"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("or --keep-fp32 second;"), std::string::npos) << c.out;
  EXPECT_NE(c.out.find("these inputs were generated: realistic inputs may give a different figure"), std::string::npos)
      << c.out;

  // On calibration sets: the figure `compare` gives on them, and no word of generated inputs.
  for (int s = 0; s < 2; ++s) {
    fs::create_directories(dir + "/calib/" + std::to_string(s));
    ASSERT_TRUE(write_npy(dir + "/calib/" + std::to_string(s) + "/x.npy", test::random_tensor({1, 16, 64}, 7 + s)).is_ok());
  }
  CliResult cal = run_cli({"convert", model, "-o", dir + "/c.sarai", "-q", "--calibration", dir + "/calib"});
  ASSERT_EQ(cal.code, 0) << cal.out << cal.err;
  EXPECT_NE(cal.out.find("accuracy vs FP32 on 2 calibration sets: min cosine "), std::string::npos) << cal.out;
  EXPECT_NE(cal.out.find(" over 1 output (worst: y)"), std::string::npos) << cal.out;
  EXPECT_NE(cal.out.find(": second (QMatMul, "), std::string::npos) << cal.out;
  EXPECT_EQ(cal.out.find("generated"), std::string::npos) << cal.out;
  CliResult cmp = run_cli({"compare", model, dir + "/c.sarai", "--inputs-dir", dir + "/calib", "--runs", "1"});
  const size_t row = cmp.out.find("\ny ");
  ASSERT_NE(row, std::string::npos) << cmp.out;
  double cmp_cos = -9;
  ASSERT_EQ(std::sscanf(cmp.out.c_str() + row, " y %lf", &cmp_cos), 1) << cmp.out;
  EXPECT_NEAR(check_cosine(cal.out), cmp_cos, 2e-6) << cal.out << cmp.out;

  // --warn-cosine moves the line; -1 never warns.
  CliResult quiet = run_cli({"convert", model, "-o", dir + "/q.sarai", "-q", "--warn-cosine", "-1"});
  ASSERT_EQ(quiet.code, 0) << quiet.out << quiet.err;
  EXPECT_GT(check_cosine(quiet.out), -1.0) << quiet.out;
  EXPECT_EQ(quiet.out.find("warning"), std::string::npos) << quiet.out;
  // ... and a stricter one warns where 0.98 does not: the CNN fixture (about 0.99999).
  CliResult strict = run_cli({"convert", fixture("small_cnn.onnx"), "-o", dir + "/s.sarai", "-q", "--warn-cosine", "1"});
  ASSERT_EQ(strict.code, 0) << strict.out << strict.err;
  EXPECT_GT(check_cosine(strict.out), 0.99) << strict.out;
  EXPECT_NE(strict.out.find("is below --warn-cosine 1: INT8 loses accuracy"), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("(QConv, "), std::string::npos) << strict.out;
  // --to onnx: the layers are not ranked there, and the advice fits the format.
  CliResult onnx = run_cli({"convert", model, "-o", dir + "/o.onnx", "--to", "onnx", "-q"});
  ASSERT_EQ(onnx.code, 0) << onnx.out << onnx.err;
  EXPECT_LT(check_cosine(onnx.out), 0.98) << onnx.out;
  EXPECT_NE(onnx.out.find("worst layers: not ranked for --to onnx (convert to .sarai to see them)"), std::string::npos)
      << onnx.out;
  EXPECT_NE(onnx.out.find("try: --keep-fp32 NODE"), std::string::npos) << onnx.out;
}

TEST(CliConvertCheck, SkippedWithItsReason) {
  const std::string dir = test::temp_dir("checkskip");
  // An input that declares no shape: nothing to generate from.
  onnx::ModelProto m = test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {test::random_tensor({64, 32}, 3)}, {"only"});
  m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  test::save(m, dir + "/noshape.onnx");
  CliResult c = run_cli({"convert", dir + "/noshape.onnx", "-o", dir + "/n.sarai", "-q"});
  ASSERT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_NE(c.out.find("\naccuracy check skipped: cannot generate inputs: input 'x' declares no shape; pass "
                       "--calibration DIR\n"),
            std::string::npos)
      << c.out;
  EXPECT_TRUE(fs::exists(dir + "/n.sarai"));
  EXPECT_EQ(run_cli({"verify", dir + "/n.sarai"}).code, 0);

  // A data-dependent input: generated values make the FP32 model fail.
  onnx::ModelProto r = test::matmul_chain_model({4, 64}, {4, 32}, {test::random_tensor({64, 32}, 3)}, {"only"});
  auto* g = r.mutable_graph();
  g->mutable_node(0)->set_output(0, "h");
  auto* reshape = g->add_node();
  reshape->set_op_type("Reshape");
  reshape->set_name("reshape");
  reshape->add_input("h");
  reshape->add_input("shape");
  reshape->add_output("y");
  test::set_tensor_type(g->add_input(), "shape", {3}, onnx::TensorProto::INT64);
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->clear_shape();
  test::save(r, dir + "/reshape.onnx");
  CliResult d = run_cli({"convert", dir + "/reshape.onnx", "-o", dir + "/r.sarai", "-q"});
  ASSERT_EQ(d.code, 0) << d.out << d.err;
  EXPECT_NE(d.out.find("\naccuracy check skipped: the FP32 model does not run on generated inputs (floats uniform in "
                       "[-1, 1), integers in [0, 10), bools at random; seed 0): "),
            std::string::npos)
      << d.out;
  EXPECT_NE(d.out.find("; pass --calibration DIR\n"), std::string::npos) << d.out;
  EXPECT_EQ(std::count(d.out.begin(), d.out.end(), '\n'), 5) << d.out;  // 4 lines of summary, 1 of the check
  EXPECT_TRUE(fs::exists(dir + "/r.sarai"));
}

TEST(CliConvertCheck, BadOptions) {
  const std::string dir = test::temp_dir("checkopts");
  const std::string src = fixture("small_cnn.onnx");
  for (const char* bad : {"2", "-1.5", "nan", "abc", ""}) {
    CliResult r = run_cli({"convert", src, "-o", dir + "/x.sarai", "--warn-cosine", bad});
    EXPECT_EQ(r.code, 2) << bad;
    expect_one_line_error(r, std::string("--warn-cosine: must be a cosine in [-1, 1], not '") + bad + "'");
  }
  expect_one_line_error(run_cli({"convert", src, "-o", dir + "/x.sarai", "--warn-cosine", "0.9", "--no-check"}),
                        "--warn-cosine is not used with --no-check");
  for (const auto& e : fs::directory_iterator(dir)) ADD_FAILURE() << "left behind: " << e.path();
}

TEST(CliConvert, VerifyNamesTheDamage) {
  std::string dir = test::temp_dir("damage");
  const std::string blob = dir + "/c.sarai";
  ASSERT_EQ(run_cli({"convert", fixture("small_cnn.onnx"), "-o", blob, "-q"}).code, 0);
  std::string bytes = test::read_file(blob);
  test::write_file(dir + "/cut.sarai", bytes.substr(0, bytes.size() / 2));
  expect_one_line_error(run_cli({"verify", dir + "/cut.sarai"}),
                        "cut.sarai: truncated at byte " + std::to_string(bytes.size() / 2) + " of " + std::to_string(bytes.size()));
  BlobInfo info;
  ASSERT_TRUE(load_blob(blob, false, &info).has_value());
  const BlobTensorInfo* largest = &info.tensors[0];
  for (const BlobTensorInfo& t : info.tensors)
    if (t.entry.size > largest->entry.size) largest = &t;
  std::string flipped = bytes;
  flipped[largest->entry.offset + largest->entry.size / 2] ^= 0x40;
  test::write_file(dir + "/flip.sarai", flipped);
  expect_one_line_error(run_cli({"verify", dir + "/flip.sarai"}),
                        "flip.sarai: checksum mismatch in tensor '" + largest->name + "'");
  expect_one_line_error(run_cli({"run", dir + "/flip.sarai", "--verify", "--random", "image=1x3x64x64"}),
                        "checksum mismatch in tensor '");
  expect_one_line_error(run_cli({"verify", fixture("small_cnn.onnx")}), "not a .sarai blob (bad magic)");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

// z = Add(x, w) with both inputs of symbolic dims [xa, xb] and [wa, wb], so
// any pair of broadcastable shapes goes through the checks and prepare()
// refuses the rest.
onnx::ModelProto symbolic_add_model() {
  onnx::ModelProto m = test::add_model({1, 1});
  auto* g = m.mutable_graph();
  g->clear_initializer();
  test::set_tensor_type(g->add_input(), "w", {1, 1});
  for (int i = 0; i < g->input_size(); ++i)
    for (int d = 0; d < 2; ++d)
      g->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(d)->set_dim_param(
          g->input(i).name() + "abc"[d]);
  g->clear_output();
  g->add_output()->set_name("y");
  return m;
}

// The rows a text sweep printed: the lines after the column header, before
// the peak RSS line.
std::vector<std::string> sweep_rows(const std::string& out) {
  std::vector<std::string> rows;
  bool in_table = false;
  for (size_t i = 0; i < out.size();) {
    const size_t nl = out.find('\n', i);
    const std::string line = out.substr(i, nl - i);
    i = nl == std::string::npos ? out.size() : nl + 1;
    if (line.rfind("peak RSS", 0) == 0) break;
    if (in_table) rows.push_back(line);
    if (line.find("threads  ") != std::string::npos) in_table = true;
  }
  return rows;
}

// The table has these rows, each starting with its prefix.
void expect_rows(const std::string& out, const std::vector<std::string>& prefixes) {
  const std::vector<std::string> rows = sweep_rows(out);
  ASSERT_EQ(rows.size(), prefixes.size()) << out;
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i].rfind(prefixes[i], 0), 0u) << prefixes[i] << ": " << out;
}

size_t count(const std::string& s, const std::string& needle) {
  size_t n = 0;
  for (size_t i = s.find(needle); i != std::string::npos; i = s.find(needle, i + 1)) ++n;
  return n;
}

TEST(CliBenchSweep, RowsForEveryShapeAndThreadCount) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  CliResult r = run_cli({"bench", model, "--sweep", "mel=1x80x{200,100}", "--threads", "1,2", "--runs", "2",
                         "--warmup", "0"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("ISA "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mel       threads  first ms    P50 ms    P90 ms    P99 ms    max ms  arena MB"),
            std::string::npos) << r.out;
  // Thread counts outermost, the shapes in the order given.
  expect_rows(r.out, {"1x80x200        1  ", "1x80x100        1  ", "1x80x200        2  ", "1x80x100        2  "});
  EXPECT_NE(r.out.find("peak RSS (VmHWM) over the sweep"), std::string::npos) << r.out;

  CliResult j = run_cli({"bench", model, "--sweep", "mel=1x80x{100,200}", "--threads", "1", "--runs", "2", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(j.out.front(), '{');
  EXPECT_EQ(count(j.out, "\n"), 1u) << "one JSON object on one line: " << j.out;
  for (const char* key : {"\"isa\": ", "\"warmup\": 1, \"runs\": 2, ", "\"peak_rss_mb\": ",
                          "\"rows\": [{\"inputs\": {\"mel\": [1, 80, 100]}, \"threads\": 1, \"first_run_ms\": ",
                          "{\"inputs\": {\"mel\": [1, 80, 200]}, \"threads\": 1, ", "\"p50_ms\": ", "\"p90_ms\": ",
                          "\"p99_ms\": ", "\"min_ms\": ", "\"max_ms\": ", "\"arena_mb\": "})
    EXPECT_NE(j.out.find(key), std::string::npos) << key << " in: " << j.out;
  EXPECT_EQ(count(j.out, "\"threads\": "), 2u) << j.out;

  // A --threads list alone sweeps the thread counts on the given inputs.
  CliResult t = run_cli({"bench", model, "--random", "mel=1x80x100", "--threads", "2,1", "--runs", "1", "--json"});
  ASSERT_EQ(t.code, 0) << t.err;
  EXPECT_NE(t.out.find("\"threads\": 2, "), std::string::npos) << t.out;
  EXPECT_NE(t.out.find("\"threads\": 1, "), std::string::npos) << t.out;
  EXPECT_EQ(t.out.find("load_ms"), std::string::npos) << "a sweep, not the single-run report: " << t.out;

  // --threads N alone is the report it always was.
  CliResult one = run_cli({"bench", model, "--random", "mel=1x80x100", "--threads", "1", "--runs", "2"});
  ASSERT_EQ(one.code, 0) << one.err;
  EXPECT_NE(one.out.find(": 1 thread, ISA "), std::string::npos) << one.out;
  EXPECT_NE(one.out.find("latency over 2 runs (after 1 warm-up): P50"), std::string::npos) << one.out;
}

// Groups in several dims and several --sweep inputs: every combination, the
// last group (of the last --sweep) varying fastest.
TEST(CliBenchSweep, CartesianProductOfGroupsAndInputs) {
  const std::string dir = test::temp_dir("sweep_product");
  test::save(symbolic_add_model(), dir + "/add.onnx");
  CliResult r = run_cli({"bench", dir + "/add.onnx", "--sweep", "x={1,2}x{3,4}", "--sweep", "w=1x{1}", "--threads",
                         "1", "--runs", "1", "--warmup", "0", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  size_t at = 0;
  for (const char* x : {"[1, 3]", "[1, 4]", "[2, 3]", "[2, 4]"}) {
    at = r.out.find(std::string("{\"x\": ") + x + ", \"w\": [1, 1]}", at);
    EXPECT_NE(at, std::string::npos) << x << " in order in: " << r.out;
  }
  EXPECT_EQ(count(r.out, "\"threads\": "), 4u) << r.out;
  CliResult two = run_cli({"bench", dir + "/add.onnx", "--sweep", "x=2x{3,1}", "--sweep", "w=1x{1,3}", "--runs", "1",
                           "--warmup", "0"});
  ASSERT_EQ(two.code, 0) << two.err;
  EXPECT_NE(two.out.find("x    w    threads"), std::string::npos) << two.out;
  expect_rows(two.out, {"2x3  1x1", "2x3  1x3", "2x1  1x1", "2x1  1x3"});
}

TEST(CliBenchSweep, CompareTimesBothModelsWithTheRatio) {
  const std::string dir = test::temp_dir("sweep_compare");
  const std::string onnx = fixture("whisper_tiny_encoder.onnx"), blob = dir + "/w.sarai";
  ASSERT_EQ(run_cli({"convert", onnx, "-o", blob, "-q"}).code, 0);
  CliResult r = run_cli({"bench", onnx, "--compare", blob, "--sweep", "mel=1x80x{100,200}", "--threads", "1",
                         "--runs", "3", "--warmup", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("A " + onnx + ", B " + blob + ": ISA "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("1 warm-up round, 3 timed rounds alternating A,B and B,A"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("mel       threads  A P50 ms  A P99 ms  B P50 ms  B P99 ms  B/A P50"), std::string::npos)
      << r.out;
  EXPECT_EQ(sweep_rows(r.out).size(), 2u) << r.out;
  CliResult j = run_cli({"bench", onnx, "--compare", blob, "--random", "mel=1x80x100", "--runs", "2", "--json"});
  ASSERT_EQ(j.code, 0) << j.err;
  for (const std::string& key : {"\"model\": \"" + onnx + "\", \"compare\": \"" + blob + "\", ",
                                 std::string("\"a\": {\"first_run_ms\": "), std::string("}, \"b\": {\"first_run_ms\": "),
                                 std::string("\"ratio_p50\": ")})
    EXPECT_NE(j.out.find(key), std::string::npos) << key << " in: " << j.out;
  EXPECT_EQ(count(j.out, "\"threads\": "), 1u) << j.out;
}

TEST(CliBenchSweep, BadSweepsThreadsAndModelsNameWhatIsWrong) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  auto bench = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"bench", model, "--runs", "1", "--warmup", "0"});
    return run_cli(args);
  };
  std::string threads_1_to_101 = "1";
  for (int t = 2; t <= 101; ++t) threads_1_to_101 += "," + std::to_string(t);
  // The command line: exit code 2, as for CLI11's own errors.
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--sweep", "mel=1x80x{100,200"}, "--sweep mel=1x80x{100,200: '{' without a '}' after it"},
           {{"--sweep", "mel=1x80x100}"}, "--sweep mel=1x80x100}: '}' without a '{' before it"},
           {{"--sweep", "mel=1x{80,{1}}x100"}, "'{' inside '{...}' (groups do not nest)"},
           {{"--sweep", "mel=1x80x{}"}, "--sweep mel=1x80x{}: '{}' is an empty list"},
           {{"--sweep", "mel=1x80x{100,}"}, "an empty value in '{100,}'"},
           {{"--sweep", "mel=1x80x{a,100}"}, "--sweep mel=1x80x{a,100}: '1x80xa' is not a shape like 1x80x3000"},
           {{"--sweep", "1x80x{100}"}, "--sweep '1x80x{100}' must be NAME=DIMS"},
           {{"--sweep", "mel=1x80x{100}", "--sweep", "mel=1x80x{200}"}, "--sweep: input 'mel' is swept twice"},
           {{"--sweep", "mel=1x80x{100}", "--random", "mel=1x80x100"},
            "--sweep mel=1x80x{100}: input 'mel' is also given by --random"},
           {{"--sweep", "mel={1,2,3,4,5,6,7,8,9,10}x{1,2,3,4,5,6,7,8,9,10}x{1,2,3,4,5,6,7,8,9,10,11}"},
            "more than 1000 shapes"},
           {{"--sweep", "mel=1x80x{1,2,3,4,5,6,7,8,9,10}", "--threads", threads_1_to_101}, "--sweep: more than 1000 rows"},
           {{"--sweep", "mel=1x80x{100}", "--threads", "1,0"},
            "--threads '1,0': a list holds counts of 1 or more (0, one per core, only alone)"},
           {{"--threads", "1,,2"}, "--threads '1,,2': an empty thread count"},
           {{"--threads", "2,"}, "--threads '2,': an empty thread count"},
           {{"--threads", "-1"}, "--threads '-1': -1 is not in 0..1024"},
           {{"--threads", "1,-2"}, "--threads '1,-2': -2 is not in 0..1024"},
           {{"--threads", "1,2000"}, "--threads '1,2000': 2000 is not in 0..1024"},
           {{"--threads", "one"}, "--threads 'one': 'one' is not a thread count"},
           {{"--sweep", "mel=1x80x{100}", "--callers", "2"}, "--callers times one model at a time"},
       }) {
    std::vector<std::string> all = args;
    if (std::find(all.begin(), all.end(), "--sweep") == all.end()) all.insert(all.end(), {"--random", "mel=1x80x100"});
    CliResult r = bench(all);
    expect_one_line_error(r, message);
    EXPECT_EQ(r.code, 2) << message;
    EXPECT_TRUE(r.out.empty()) << message << ": " << r.out;
  }
  // The model: exit code 1, before any row is timed.
  const std::string dir = test::temp_dir("sweep_errors");
  test::save(test::add_model({2, 3}), dir + "/add23.onnx");
  test::save(test::add_model({2, 4}), dir + "/add24.onnx");
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--sweep", "x=1x{2,3}"}, "--sweep x=1x{2,3} at 1x2: " + model + ": the model has no input 'x'"},
           {{"--sweep", "mel=1x{80,81}x100"}, "--sweep mel=1x{80,81}x100 at 1x81x100: "},
           {{"--sweep", "mel=1x80x{100}", "--compare", dir + "/add23.onnx"},
            "--compare " + dir + "/add23.onnx: it has no input 'mel', which " + model + " has"},
           {{"--sweep", "mel=1x80x{100}", "--compare", dir + "/none.sarai"}, "none.sarai: cannot open"},
       }) {
    CliResult r = bench(args);
    expect_one_line_error(r, message);
    EXPECT_EQ(r.code, 1) << message;
    EXPECT_TRUE(r.out.empty()) << message << ": " << r.out;
  }
  CliResult dims = run_cli({"bench", dir + "/add23.onnx", "--compare", dir + "/add24.onnx", "--random", "x=2x3"});
  expect_one_line_error(dims, "--compare " + dir + "/add24.onnx: its input 'x' is float32 [2, 4], " + dir +
                                  "/add23.onnx's is float32 [2, 3]");
  test::save(symbolic_add_model(), dir + "/sym.onnx");
  CliResult extra = run_cli({"bench", dir + "/add23.onnx", "--compare", dir + "/sym.onnx", "--random", "x=2x3"});
  expect_one_line_error(extra, "--compare " + dir + "/sym.onnx: its input 'w' is not an input of " + dir +
                                   "/add23.onnx");
  // A shape every declaration accepts but the graph refuses (Add cannot
  // broadcast [2, 3] with [1, 4]): the row is named, after the rows before it.
  CliResult refused = run_cli({"bench", dir + "/sym.onnx", "--sweep", "x=2x3", "--sweep", "w=1x{3,4}", "--runs", "1",
                               "--threads", "1"});
  expect_one_line_error(refused, "x=2x3 w=1x4, 1 thread: " + dir + "/sym.onnx: node 'add0' (Add)");
  EXPECT_EQ(refused.code, 1);
  EXPECT_EQ(sweep_rows(refused.out).size(), 1u) << refused.out;
}

}  // namespace
}  // namespace sarai
