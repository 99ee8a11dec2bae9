// Shared pieces of the sarai-rt command line (tools/cli/ is the only code
// that knows about argv, stdout and exit codes). One file per subcommand:
// cmd_run.cc, cmd_bench.cc, cmd_compare.cc, cmd_inspect.cc, cmd_convert.cc (convert and verify).
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/model.h"
#include "runtime/session.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::cli {

// Prints "sarai-rt: error: MESSAGE" on stderr and returns 1.
int fail(const std::string& message);

// "NAME=REST" -> {NAME, REST}; NAME and REST may not be empty.
bool split_assignment(const std::string& s, std::string* name, std::string* rest);
// "1x80x3000" -> {1, 80, 3000}.
Expected<Shape> parse_dims(const std::string& text);
// Deterministic random values of `dtype`: floats in [-1, 1), integers in [0, 10).
Tensor random_input(DType dtype, const Shape& shape, std::mt19937_64& rng);
std::string human_bytes(uint64_t b);
// Says on stderr which stale temporary files the writers removed
// (runtime/atomic_file.h: left by a killed process).
void report_removed_stale_temp_files();
// s as a JSON string literal, quoted and escaped.
std::string json_string(const std::string& s);

// open_model_file (loader/model_file.h, as the public API opens files), then
// a Session on every registered kernel.
Expected<std::unique_ptr<Session>> open_session(const std::string& path, bool verify_blob, const SessionOptions& options);
// --attention's value ("model", "fp32", "int8", "int8-per-tensor"; CLI11
// checks the set) as SessionOptions::attention.
AttentionPrecision attention_precision(const std::string& v);

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> randoms;
  std::string output_dir;
  int threads = 0;
  int runs = 1;
  uint64_t seed = 0;
  bool profile = false;
  bool verify = false;
  uint64_t max_memory_mb = 0;  // 0: no budget
  bool report_memory = false;
  std::string attention = "model";  // attention_precision()
};

struct BenchArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> randoms;
  // --threads: N (0: one per physical core), or a list N,N,... of counts
  // >= 1, each a column of the sweep.
  std::string threads = "0";
  // --sweep NAME=DIMS: random inputs whose DIMS hold {a,b,...} groups; a
  // cell for every combination of them, of every --sweep and thread count.
  std::vector<std::string> sweep;
  // --compare MODEL2: timed in alternating rounds with `model` (A,B then
  // B,A), its figures and the ratio B/A per cell.
  std::string compare;
  int warmup = 1;
  int runs = 20;
  uint64_t seed = 0;
  uint64_t max_memory_mb = 0;
  int cache_size = 0;  // result cache entries (SessionOptions::cache_size)
  int callers = 1;     // threads calling run() on the one session at once
  // --feed OUT=IN: after every run, input IN takes output OUT's value (a
  // streaming model's state, e.g. Silero VAD's), so each run is one step.
  std::vector<std::string> feeds;
  bool json = false;
  std::string attention = "model";  // attention_precision()
};

struct CompareArgs {
  std::string reference;  // FP32 reference model
  std::string test;       // the model to check (a .sarai blob)
  std::vector<std::string> inputs;
  std::vector<std::string> randoms;
  std::string inputs_dir;
  int threads = 0;
  int runs = 3;            // timed runs per model and input set (median)
  uint64_t seed = 0;
  double min_cosine = 0.98;
  double max_mse = -1;     // < 0: not checked
  double max_mae = -1;
  bool per_layer = false;  // error of every quantized node, local and accumulated
  bool json = false;
  std::string attention = "model";  // the test model's; attention_precision()
};

struct ConvertArgs {
  std::string model;
  std::string output;
  std::string to = "sarai";
  std::string onnx_weights;  // --to onnx: u8 (when empty), s8 or s7 (quantizer/onnx_export.h)
  bool per_tensor = false;
  std::vector<std::string> keep_fp32;
  int64_t min_elements = 0;
  bool quiet = false;
  std::string command_line;
  // Mixed precision: keep the fewest layers in FP32 that bring the INT8
  // model to target_cosine on the calibration input sets.
  bool auto_keep_fp32 = false;
  double target_cosine = 0.999;
  std::string calibration;
  // Static activation ranges from the calibration sets (quantizer/calibration.h).
  bool static_ranges = false;
  std::string calibration_method = "minmax";
  std::string attention = "int8";  // quant::ConvertOptions::attention
  std::string recurrent = "fp32";  // quant::ConvertOptions::recurrent
  std::string depthwise_activations = "per-channel";  // quant::ConvertOptions::depthwise_activations
  std::string matmul_activations = "per-row";  // quant::ConvertOptions::matmul_activations
  double percentile = 99.99;
  int threads = 0;
  // The accuracy check after writing (cmd_convert.cc): the output against
  // the FP32 source, a warning below warn_cosine.
  bool no_check = false;
  double warn_cosine = 0.98;
  bool warn_cosine_given = false;
};

// The model's inputs from --input NAME=FILE.npy and --random NAME=DxDxD
// specs, each checked against its declaration.
Expected<std::vector<NamedTensor>> read_inputs(const Session& session, const std::vector<std::string>& files,
                                               const std::vector<std::string>& randoms, uint64_t seed);

int cmd_run(const RunArgs& a);
int cmd_bench(const BenchArgs& a);
// Exit code 0 when every threshold held, 3 when one did not, 1 on errors.
int cmd_compare(const CompareArgs& a);
int cmd_inspect(const std::string& path);
int cmd_ops(bool markdown);  // cmd_ops.cc: the ops this build runs (docs/ops.md)
int cmd_convert(const ConvertArgs& a);
extern const char* const kOnnxWeightsHelp;  // convert --onnx-weights, with what each choice costs
int cmd_verify(const std::string& path);

}  // namespace sarai::cli
