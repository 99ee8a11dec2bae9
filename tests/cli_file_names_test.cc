// The CLI's folders of .npy files by tensor name (loader/tensor_file_name.h):
// `run --output-dir` writes outputs with odd names (spaces, quotes,
// slashes, UTF-8, '%', '..', a 300-byte name) to escaped file names, and
// `compare --inputs-dir` reads that folder back as the inputs of a model
// whose inputs have those names; unknown and doubled files are errors.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "loader/npy.h"
#include "loader/tensor_file_name.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace sarai {
namespace {

using test::CliResult;
using test::run_cli;

const std::vector<std::string>& odd_names() {
  static const std::vector<std::string> names = {
      "{\"1\": \"1_minute_timer\"}", "a/b c", "..", "caf\xC3\xA9", "50%", "it's", std::string(300, 'n'),
      std::string(299, 'n') + "m"};
  return names;
}

// x [2, 3] -> Identity -> each odd name (a graph output).
onnx::ModelProto writer_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  test::set_tensor_type(g->add_input(), "x", {2, 3});
  int i = 0;
  for (const std::string& name : odd_names()) {
    auto* n = g->add_node();
    n->set_op_type(i % 2 ? "Identity" : "Relu");
    n->set_name("node" + std::to_string(i++));
    n->add_input("x");
    n->add_output(name);
    test::set_tensor_type(g->add_output(), name, {2, 3});
  }
  return m;
}

// Each odd name is an input [2, 3]; y is their sum.
onnx::ModelProto reader_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  const auto& names = odd_names();
  for (const std::string& name : names) test::set_tensor_type(g->add_input(), name, {2, 3});
  std::string acc = names[0];
  for (size_t i = 1; i < names.size(); ++i) {
    auto* n = g->add_node();
    n->set_op_type("Add");
    n->set_name("add" + std::to_string(i));
    n->add_input(acc);
    n->add_input(names[i]);
    acc = i + 1 == names.size() ? "y" : "s" + std::to_string(i);
    n->add_output(acc);
  }
  test::set_tensor_type(g->add_output(), "y", {2, 3});
  return m;
}

TEST(CliFileNames, RunWritesEscapedNamesAndCompareReadsThemBack) {
  const std::string dir = test::temp_dir("names");
  test::save(writer_model(), dir + "/writer.onnx");
  test::save(reader_model(), dir + "/reader.onnx");
  const Tensor x = test::make_tensor<float>({2, 3}, {-1, 2, -3, 4, -5, 6});
  ASSERT_TRUE(write_npy(dir + "/x.npy", x).is_ok());
  CliResult r = run_cli({"run", dir + "/writer.onnx", "--input", "x=" + dir + "/x.npy", "--output-dir", dir + "/sets"});
  ASSERT_EQ(r.code, 0) << r.err;

  std::set<std::string> files;
  for (const auto& e : fs::directory_iterator(dir + "/sets")) files.insert(e.path().filename().string());
  std::set<std::string> expected;
  for (const std::string& n : odd_names()) expected.insert(tensor_file_name(n));
  EXPECT_EQ(files, expected);
  for (const char* f : {"%7B%221%22%3A%20%221_minute_timer%22%7D.npy", "a%2Fb%20c.npy", "%2E..npy", "caf%C3%A9.npy",
                        "50%25.npy", "it%27s.npy"})
    EXPECT_TRUE(files.count(f)) << f;
  for (const std::string& f : files) EXPECT_LE(f.size(), kMaxStemBytes + 4) << f;
  auto quoted = read_npy(dir + "/sets/it%27s.npy");
  ASSERT_TRUE(quoted.has_value()) << quoted.message();
  EXPECT_TRUE(test::tensors_equal(*quoted, x));

  // The folder is the reader model's input set: every file, the hashed long
  // names included, maps back to its input.
  r = run_cli({"compare", dir + "/reader.onnx", dir + "/reader.onnx", "--inputs-dir", dir + "/sets"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("1 input set"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("thresholds held"), std::string::npos) << r.out;

  // A file for no input: named, decoded, in one line.
  fs::copy_file(dir + "/sets/50%25.npy", dir + "/sets/what%20is%20this.npy");
  r = run_cli({"compare", dir + "/reader.onnx", dir + "/reader.onnx", "--inputs-dir", dir + "/sets"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("what%20is%20this.npy: " + dir + "/reader.onnx: the model has no input 'what is this'"),
            std::string::npos)
      << r.err;
  fs::remove(dir + "/sets/what%20is%20this.npy");

  // The same input twice, escaped and verbatim: refused, naming both files.
  fs::copy_file(dir + "/sets/it%27s.npy", dir + "/sets/it's.npy");
  r = run_cli({"compare", dir + "/reader.onnx", dir + "/reader.onnx", "--inputs-dir", dir + "/sets"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("it's.npy: input 'it's' already comes from it%27s.npy"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace sarai
