// sarai-rt: the command line. The only code in the project that knows about
// argv, stdout and exit codes; everything else returns Status.
//
//   sarai-rt run MODEL [--input NAME=FILE.npy]... [--random NAME=DxDxD]...
//                [--output-dir DIR] [--threads N] [--runs N] [--seed S]
//   sarai-rt inspect MODEL
//
// Exit 0 on success; otherwise one line on stderr and a non-zero code
// (1: the model or the inputs are wrong, 2: the command line is wrong).

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/npy.h"
#include "loader/onnx_loader.h"
#include "runtime/session.h"

namespace fs = std::filesystem;
using namespace sarai;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "sarai-rt: error: %s\n", message.c_str());
  return 1;
}

// "NAME=REST" -> {NAME, REST}; NAME may not be empty.
bool split_assignment(const std::string& s, std::string* name, std::string* rest) {
  size_t eq = s.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == s.size()) return false;
  *name = s.substr(0, eq);
  *rest = s.substr(eq + 1);
  return true;
}

Expected<Shape> parse_dims(const std::string& text) {
  Shape shape;
  size_t i = 0;
  while (i <= text.size()) {
    size_t x = text.find_first_of("x,", i);
    std::string part = text.substr(i, x == std::string::npos ? std::string::npos : x - i);
    if (part.empty() || part.size() > 12 || part.find_first_not_of("0123456789") != std::string::npos)
      return Status::error("'" + text + "' is not a shape like 1x80x3000");
    shape.push_back(std::stoll(part));
    if (x == std::string::npos) break;
    i = x + 1;
  }
  auto n = checked_numel(shape, 8);
  if (!n) return n.status();
  if (*n > (int64_t{1} << 32)) return Status::error("shape " + text + " is too large for a random input");
  return shape;
}

// Deterministic random values of the model's declared dtype: floats in
// [-1, 1), integers in [0, 10), bools at random.
Tensor random_input(DType dtype, const Shape& shape, std::mt19937_64& rng) {
  Tensor t = Tensor::allocate(dtype, shape);
  std::uniform_real_distribution<float> uf(-1.f, 1.f);
  std::uniform_int_distribution<int> ui(0, 9);
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (dtype) {
      case DType::kFloat32: t.mutable_data<float>()[i] = uf(rng); break;
      case DType::kFloat64: t.mutable_data<double>()[i] = uf(rng); break;
      case DType::kFloat16: t.mutable_data<uint16_t>()[i] = float_to_half(uf(rng)); break;
      case DType::kInt64: t.mutable_data<int64_t>()[i] = ui(rng); break;
      case DType::kInt32: t.mutable_data<int32_t>()[i] = ui(rng); break;
      case DType::kInt8: t.mutable_data<int8_t>()[i] = static_cast<int8_t>(ui(rng)); break;
      case DType::kUInt8: t.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(ui(rng)); break;
      case DType::kBool: t.mutable_data<uint8_t>()[i] = ui(rng) & 1; break;
      default: break;  // left zero
    }
  }
  return t;
}

// Output names may hold characters a file name cannot ('/', ':').
std::string file_name_for(const std::string& value_name) {
  std::string s = value_name;
  for (char& c : s)
    if (c == '/' || c == '\\' || c == ':' || c == '\0') c = '_';
  if (s.empty() || s == "." || s == "..") s = "output_" + s;
  return s + ".npy";
}

std::string human_bytes(uint64_t b) {
  char buf[64];
  if (b >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", b / double(1ull << 30));
  else if (b >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", b / double(1ull << 20));
  else if (b >= (1ull << 10)) std::snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  return buf;
}

struct RunArgs {
  std::string model;
  std::vector<std::string> inputs;
  std::vector<std::string> randoms;
  std::string output_dir;
  int threads = 0;
  int runs = 1;
  uint64_t seed = 0;
  bool profile = false;
};

// Time per op type over all runs, largest first, with each op's share.
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
}

int cmd_run(const RunArgs& a) {
  auto model = load_onnx(a.model);
  if (!model) return fail(model.message());
  KernelTable kernels;
  register_fp32_kernels(kernels);
  SessionOptions opts;
  opts.num_threads = a.threads;
  opts.profile = a.profile;
  auto session = Session::create(*model, kernels, opts);
  if (!session) return fail(session.message());
  const Graph& g = (*session)->graph();

  std::vector<NamedTensor> inputs;
  auto seen = [&](const std::string& name) {
    return std::any_of(inputs.begin(), inputs.end(), [&](const NamedTensor& t) { return t.name == name; });
  };
  for (const std::string& spec : a.inputs) {
    std::string name, file;
    if (!split_assignment(spec, &name, &file)) return fail("--input '" + spec + "' must be NAME=FILE.npy");
    if (seen(name)) return fail("input '" + name + "' is given twice");
    auto t = read_npy(file);
    if (!t) return fail(t.message());
    NamedTensor in{name, std::move(*t)};
    Status st = (*session)->check_input(in);
    if (!st) return fail(file + ": " + st.message());
    inputs.push_back(std::move(in));
  }
  std::mt19937_64 rng(a.seed);
  for (const std::string& spec : a.randoms) {
    std::string name, dims;
    if (!split_assignment(spec, &name, &dims)) return fail("--random '" + spec + "' must be NAME=DxDxD");
    if (seen(name)) return fail("input '" + name + "' is given twice");
    auto shape = parse_dims(dims);
    if (!shape) return fail("--random " + spec + ": " + shape.message());
    int id = g.find_value(name);
    DType dtype = id == kNoValue ? DType::kFloat32 : g.values[static_cast<size_t>(id)].dtype;
    if (dtype == DType::kUndefined) dtype = DType::kFloat32;
    NamedTensor in{name, random_input(dtype, *shape, rng)};
    Status st = (*session)->check_input(in);
    if (!st) return fail("--random " + spec + ": " + st.message());
    inputs.push_back(std::move(in));
  }

  std::printf("model %s: %zu nodes, %d thread%s\n", a.model.c_str(), g.nodes.size(), (*session)->num_threads(),
              (*session)->num_threads() == 1 ? "" : "s");
  std::vector<NamedTensor> outputs;
  std::vector<double> times;
  for (int r = 0; r < a.runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto out = (*session)->run(inputs);
    auto t1 = std::chrono::steady_clock::now();
    if (!out) return fail(out.message());
    double ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
    times.push_back(ms);
    std::printf("run %d: %.3f ms\n", r + 1, ms);
    outputs = std::move(*out);
  }
  if (times.size() > 1) {
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    size_t n = sorted.size();
    double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    std::printf("median of %zu runs: %.3f ms (min %.3f, max %.3f)\n", n, median, sorted.front(), sorted.back());
  }

  if (a.profile) print_profile(**session, a.runs);
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
      std::string path = (fs::path(a.output_dir) / file_name_for(o.name)).string();
      Status st = write_npy(path, t);
      if (!st) return fail(st.message());
      line += "  -> " + path;
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

int cmd_inspect(const std::string& path) {
  auto loaded = load_onnx(path);
  if (!loaded) return fail(loaded.message());
  const Model& m = **loaded;
  const Graph& g = m.graph;
  std::printf("model: %s\n", path.c_str());
  std::printf("producer: %s %s, IR version %lld\n", m.producer_name.empty() ? "(unknown)" : m.producer_name.c_str(),
              m.producer_version.c_str(), static_cast<long long>(m.ir_version));
  std::printf("opset: %lld (default domain)\n", static_cast<long long>(g.opset));
  std::printf("inputs:\n");
  for (int id : g.inputs) {
    const Value& v = g.values[static_cast<size_t>(id)];
    std::printf("  %s: %s\n", v.name.c_str(), describe_value_type(v).c_str());
  }
  std::printf("outputs:\n");
  for (int id : g.outputs) {
    const Value& v = g.values[static_cast<size_t>(id)];
    std::printf("  %s: %s\n", v.name.c_str(), describe_value_type(v).c_str());
  }
  KernelTable kernels;
  register_fp32_kernels(kernels);
  std::map<std::string, int> hist;
  for (const Node& n : g.nodes) hist[KernelTable::key(n.domain, n.op_type)]++;
  std::vector<std::pair<std::string, int>> ops(hist.begin(), hist.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
  std::printf("ops (%zu nodes):\n", g.nodes.size());
  int unsupported = 0;
  for (const auto& [op, count] : ops) {
    auto sep = op.find("::");
    bool ok = sep == std::string::npos ? kernels.find(op, g.opset) != nullptr
                                       : kernels.find(op.substr(sep + 2), g.opset, op.substr(0, sep)) != nullptr;
    unsupported += !ok;
    std::printf("  %-24s %6d%s\n", op.c_str(), count, ok ? "" : "  (unsupported)");
  }
  int64_t count = 0;
  uint64_t bytes = 0;
  int n_init = 0;
  for (const Value& v : g.values)
    if (v.is_initializer) { ++n_init; count += v.initializer.numel(); bytes += v.initializer.nbytes(); }
  std::printf("parameters: %lld in %d initializers, %s\n", static_cast<long long>(count), n_init, human_bytes(bytes).c_str());
  if (m.external_data.empty()) {
    std::printf("external data: none\n");
  } else {
    std::printf("external data:\n");
    for (const ExternalDataFile& f : m.external_data)
      std::printf("  %s: %s, %d tensors, %s referenced\n", f.location.c_str(), human_bytes(f.file_size).c_str(),
                  f.tensor_count, human_bytes(f.bytes_used).c_str());
  }
  if (unsupported) std::printf("note: %d op type%s not supported by this runtime\n", unsupported, unsupported > 1 ? "s are" : " is");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"sarai-rt: run ONNX models on CPUs, fast and in little memory"};
  app.require_subcommand(1);

  RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run", "Run a model (FP32 reference path) and write its outputs");
  run_cmd->add_option("model", run.model, "Model file (.onnx)")->required();
  run_cmd->add_option("--input", run.inputs, "An input from a NumPy file: NAME=FILE.npy (repeatable)");
  run_cmd->add_option("--random", run.randoms, "A random input of this shape: NAME=DxDxD (repeatable)");
  run_cmd->add_option("--output-dir", run.output_dir, "Write each output as DIR/<output name>.npy");
  run_cmd->add_option("--threads", run.threads, "Threads for intra-op parallelism (default: physical cores)")
      ->check(CLI::Range(0, 1024));
  run_cmd->add_option("--runs", run.runs, "Run this many times and print each time")->check(CLI::Range(1, 1000000));
  run_cmd->add_option("--seed", run.seed, "Seed for --random inputs");
  run_cmd->add_flag("--profile", run.profile, "Print the time spent per op type");

  std::string inspect_path;
  CLI::App* inspect_cmd = app.add_subcommand("inspect", "Describe a model: inputs, outputs, ops, parameters, data files");
  inspect_cmd->add_option("model", inspect_path, "Model file (.onnx)")->required();

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
  try {
    if (*run_cmd) return cmd_run(run);
    if (*inspect_cmd) return cmd_inspect(inspect_path);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  }
  return 2;
}
