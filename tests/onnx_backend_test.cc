// Runs the ONNX backend node test cases (generated at build time by
// tests/onnx_backend/generate_node_data.py with Debian's python3-onnx) for
// every case whose ops the runtime registers. One ctest entry per case.
//
// Tolerance: the ONNX backend's own, |actual - expected| <= 1e-7 + 1e-3 * |expected|;
// integer and bool outputs must match exactly.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <vector>

#include "kernels/kernels.h"
#include "loader/onnx_loader.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace sarai {
namespace {

// Cases we register the ops for but do not run, and why. Keep each reason
// specific; remove the entry when the reason goes away.
const std::map<std::string, std::string>& skip_list() {
  static const std::map<std::string, std::string> kSkip = {
      // Training mode of BatchNormalization (running statistics outputs) is
      // not an inference feature.
      {"test_batchnorm_epsilon_training_mode", "BatchNormalization training_mode=1 is not supported (inference runtime)"},
      {"test_batchnorm_example_training_mode", "BatchNormalization training_mode=1 is not supported (inference runtime)"},
      // Non-tensor types: the IR has tensors only.
      {"test_identity_opt", "optional types are not supported (tensors only)"},
      {"test_identity_sequence", "sequence types are not supported (tensors only)"},
      {"test_if_seq", "sequence types are not supported (tensors only)"},
      {"test_if_opt", "optional types are not supported (tensors only)"},
      {"test_loop13_seq", "sequence types are not supported (tensors only)"},
      {"test_loop16_seq_none", "optional and sequence types are not supported (tensors only)"},
      // Scan-8 (a batch axis and sequence_lens) predates the opsets we load (9-21).
      {"test_scan_sum", "opset 8 Scan: the loader reads opsets 9-21"},
      // String tensors: no model in scope carries them.
      {"test_cast_FLOAT_to_STRING", "string tensors are not supported"},
      {"test_cast_STRING_to_FLOAT", "string tensors are not supported"},
      {"test_castlike_FLOAT_to_STRING_expanded", "string tensors are not supported"},
      {"test_castlike_STRING_to_FLOAT_expanded", "string tensors are not supported"},
      // onnx 1.12's reference truncates float -> bfloat16; we round to
      // nearest even, as ONNX Runtime does and as later onnx references do.
      {"test_cast_FLOAT_to_BFLOAT16", "onnx 1.12 expects truncation; we round to nearest even"},
      {"test_castlike_FLOAT_to_BFLOAT16_expanded", "onnx 1.12 expects truncation; we round to nearest even"},
      // The case declares input 'like' as [3, 4] but its data is [1]: a bug
      // in the onnx 1.12 test data, which our input check rightly reports.
      {"test_castlike_BFLOAT16_to_FLOAT_expanded", "test data does not match the model's declared input shape"},
      {"test_training_dropout", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_training_dropout_default", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_training_dropout_default_mask", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_training_dropout_mask", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_training_dropout_zero_ratio", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_training_dropout_zero_ratio_mask", "Dropout training_mode=true is not supported (inference runtime)"},
      {"test_castlike_FLOAT_to_STRING", "string tensors are not supported"},
      {"test_castlike_STRING_to_FLOAT", "string tensors are not supported"},
      {"test_castlike_FLOAT_to_BFLOAT16", "onnx 1.12 expects truncation; we round to nearest even"},
      {"test_castlike_BFLOAT16_to_FLOAT", "test data does not match the model's declared input shape"},
  };
  return kSkip;
}

std::string data_dir() {
  const char* env = std::getenv("SARAI_ONNX_NODE_DATA");
  return env ? env : SARAI_ONNX_NODE_DATA;
}

struct Case {
  std::string name;
};

std::vector<Case> applicable_cases() {
  KernelTable table;
  register_kernels(table);
  std::vector<Case> cases;
  std::ifstream index(data_dir() + "/index.tsv");
  std::string line;
  while (std::getline(index, line)) {
    auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    std::string name = line.substr(0, tab);
    line = line.substr(0, line.find('\t', tab + 1));  // name and ops; eligibility is OnnxNodeData.Coverage's
    std::stringstream ops(line.substr(tab + 1));
    std::string op;
    bool all_registered = true;
    // Opset 21 is the newest we accept; a registered op always has some
    // kernel there, which is all this pre-filter needs to know.
    while (std::getline(ops, op, ','))
      if (!table.find(op, 21) && !table.find(op, 9)) all_registered = false;
    if (all_registered) cases.push_back({name});
  }
  return cases;
}

// ONNX writes each case at its op's since-version. A few of our ops date
// from before opset 9 (the oldest we load) and are unchanged through opset
// 21; their cases are valid at opset 9, so run them there.
const std::set<std::string> kUnchangedSinceBefore9 = {"GlobalAveragePool", "HardSigmoid", "And", "Or", "Xor", "Not",
    "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Elu", "Selu", "Softplus", "Softsign", "GlobalMaxPool",
    "InstanceNormalization"};  // opsets 1-7, next version 22

std::string model_path_for(const fs::path& dir) {
  const std::string path = (dir / "model.onnx").string();
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  if (!m.ParseFromIstream(&in)) return path;
  bool old = false;
  for (auto& op : *m.mutable_opset_import())
    if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() < 9) { old = true; op.set_version(9); }
  if (!old) return path;
  for (const auto& n : m.graph().node())
    if (!kUnchangedSinceBefore9.count(n.op_type())) return path;  // let the loader reject it
  std::string bumped = test::temp_dir("opset9") + "/model.onnx";
  test::save(m, bumped);
  return bumped;
}

// onnx 1.12 stores bfloat16 test tensors as uint16 (the same bits): read
// them as the type the model declares.
Tensor as_declared(Tensor t, DType declared) {
  if (t.dtype() == DType::kUInt16 && declared == DType::kBFloat16)
    return Tensor::wrap(DType::kBFloat16, t.shape(), t.raw(), std::make_shared<Tensor>(t), false);
  return t;
}

class OnnxNodeTest : public ::testing::TestWithParam<Case> {};

TEST_P(OnnxNodeTest, MatchesExpectedOutputs) {
  const std::string& name = GetParam().name;
  auto skip = skip_list().find(name);
  if (skip != skip_list().end()) GTEST_SKIP() << skip->second;

  const fs::path dir = fs::path(data_dir()) / "node" / name;
  auto model = load_onnx(model_path_for(dir));
  ASSERT_TRUE(model.has_value()) << model.message();
  KernelTable table;
  register_kernels(table);
  auto session = Session::create(*model, table, SessionOptions{1});
  ASSERT_TRUE(session.has_value()) << session.message();
  const Graph& g = (*session)->graph();

  int sets = 0;
  for (int s = 0; fs::exists(dir / ("test_data_set_" + std::to_string(s))); ++s, ++sets) {
    const fs::path set = dir / ("test_data_set_" + std::to_string(s));
    std::vector<NamedTensor> inputs;
    for (size_t i = 0; i < g.inputs.size(); ++i) {
      auto t = load_tensor_proto_file((set / ("input_" + std::to_string(i) + ".pb")).string());
      ASSERT_TRUE(t.has_value()) << t.message();
      const Value& v = g.values[static_cast<size_t>(g.inputs[i])];
      inputs.push_back({v.name, as_declared(std::move(*t), v.dtype)});
    }
    auto outputs = (*session)->run(inputs);
    ASSERT_TRUE(outputs.has_value()) << outputs.message();
    for (size_t o = 0; o < outputs->size(); ++o) {
      auto expected = load_tensor_proto_file((set / ("output_" + std::to_string(o) + ".pb")).string());
      ASSERT_TRUE(expected.has_value()) << expected.message();
      const Tensor& actual = (*outputs)[o].tensor;
      *expected = as_declared(std::move(*expected), actual.dtype());
      bool exact = expected->dtype() != DType::kFloat32 && expected->dtype() != DType::kFloat64 &&
                   expected->dtype() != DType::kFloat16;
      if (exact)
        EXPECT_TRUE(test::tensors_equal(actual, *expected)) << "output '" << (*outputs)[o].name << "', data set " << s;
      else
        EXPECT_TRUE(test::tensors_near(actual, *expected, 1e-7, 1e-3)) << "output '" << (*outputs)[o].name << "', data set " << s;
    }
  }
  EXPECT_GT(sets, 0) << "case has no test data";
}

INSTANTIATE_TEST_SUITE_P(Node, OnnxNodeTest, ::testing::ValuesIn(applicable_cases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// The index itself must be there: without it every case above would vanish
// silently and the suite would pass on nothing.
TEST(OnnxNodeData, IndexListsCasesForRegisteredOps) {
  std::ifstream index(data_dir() + "/index.tsv");
  ASSERT_TRUE(index.good()) << "missing " << data_dir() << "/index.tsv (build target onnx_node_data)";
  EXPECT_GT(applicable_cases().size(), 200u);
}

// The denominator: of the cases in the runtime's scope (index.tsv column 3,
// written by generate_node_data.py: tensor types only, no sequence/optional/
// string data, no training op), how many run here (every op registered, not
// in skip_list()). Prints and records one line, lists the ops that block
// the most eligible cases, and fails when the count drops below the floor
// (today's value: raise it as coverage grows, never lower it).
constexpr size_t kCoverageFloor = 847;

TEST(OnnxNodeData, Coverage) {
  KernelTable table;
  register_kernels(table);
  std::ifstream index(data_dir() + "/index.tsv");
  ASSERT_TRUE(index.good()) << "missing " << data_dir() << "/index.tsv";
  size_t total = 0, eligible = 0, run = 0;
  std::map<std::string, size_t> blocked;  // op -> eligible cases it keeps from running
  std::string line;
  while (std::getline(index, line)) {
    std::vector<std::string> cols;
    std::stringstream ls(line);
    for (std::string c; std::getline(ls, c, '\t');) cols.push_back(c);
    ASSERT_GE(cols.size(), 3u) << "index.tsv line without an eligibility column: " << line;
    ++total;
    if (cols[2] != "1") continue;
    ++eligible;
    std::stringstream ops(cols[1]);
    bool all = true;
    for (std::string op; std::getline(ops, op, ',');)
      if (!table.find(op, 21) && !table.find(op, 9)) {
        all = false;
        ++blocked[op];
      }
    if (all && !skip_list().count(cols[0])) ++run;
  }
  char pct[16];
  std::snprintf(pct, sizeof pct, "%.1f", eligible ? 100.0 * static_cast<double>(run) / static_cast<double>(eligible) : 0.0);
  const std::string summary = "ONNX backend node tests: " + std::to_string(run) + " run of " + std::to_string(eligible) +
                              " eligible (" + pct + " %), " + std::to_string(total) + " total";
  std::cout << summary << "\n";
  ::testing::Test::RecordProperty("coverage", summary);
  std::vector<std::pair<size_t, std::string>> top;
  for (const auto& [op, n] : blocked) top.push_back({n, op});
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.first != b.first ? a.first > b.first : a.second < b.second; });
  std::cout << "Unregistered ops blocking the most eligible cases:";
  for (size_t i = 0; i < top.size() && i < 15; ++i) std::cout << " " << top[i].second << " " << top[i].first;
  std::cout << "\n";
  EXPECT_GE(run, kCoverageFloor) << summary << ": below the floor of " << kCoverageFloor << " cases";
}

}  // namespace
}  // namespace sarai
