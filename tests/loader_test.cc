// The ONNX loader: what it reads, and one test per way a model can be bad,
// each asserting the message.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/model_file.h"
#include "loader/npy.h"
#include "loader/onnx_loader.h"
#include "quantizer/sha256.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace sarai {
namespace {

using test::add_model;
using test::externalize;
using test::save;
using test::temp_dir;

// Loads `m` saved as dir/model.onnx and returns the error message ("" on success).
std::string load_error(const onnx::ModelProto& m, const std::string& dir) {
  std::string path = dir + "/model.onnx";
  save(m, path);
  auto r = load_onnx(path);
  return r.has_value() ? "" : r.message();
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE((haystack).find(needle), std::string::npos) << "message: " << (haystack)

// A value_info with an empty type (exporters write them: Silero VAD v5)
// says nothing; a sequence type is refused by name.
TEST(Loader, EmptyValueInfoTypeIsUnknownNotAnError) {
  std::string dir = temp_dir("empty_type");
  onnx::ModelProto m = add_model();
  auto* vi = m.mutable_graph()->add_value_info();
  vi->set_name("y");
  vi->mutable_type();
  EXPECT_EQ(load_error(m, dir), "");
  vi->mutable_type()->mutable_sequence_type();
  EXPECT_CONTAINS(load_error(m, dir), "value 'y' is not a tensor (sequences, maps and optionals are not supported)");
}

TEST(Loader, ReadsGraphAndInitializers) {
  std::string dir = temp_dir("ok");
  save(add_model(), dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  const Graph& g = (*m)->graph;
  EXPECT_EQ(g.opset, 17);
  ASSERT_EQ(g.inputs.size(), 1u);
  EXPECT_EQ(g.values[static_cast<size_t>(g.inputs[0])].name, "x");
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op_type, "Add");
  int w = g.find_value("w");
  ASSERT_NE(w, kNoValue);
  const Tensor& t = g.values[static_cast<size_t>(w)].initializer;
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.data<float>()[5], 5.f);
  EXPECT_EQ((*m)->parameter_count(), 6);
}

TEST(Loader, ExternalDataIsMappedInPlace) {
  std::string dir = temp_dir("ext");
  auto model = add_model({4, 8});
  externalize(model, "w", dir, "weights.bin", /*offset=*/4096);
  save(model, dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  const Tensor& t = (*m)->graph.values[static_cast<size_t>((*m)->graph.find_value("w"))].initializer;
  EXPECT_TRUE(t.read_only()) << "external weights must be a view of the mapping, not a copy";
  EXPECT_EQ(t.data<float>()[31], 31.f);
  ASSERT_EQ((*m)->external_data.size(), 1u);
  EXPECT_EQ((*m)->external_data[0].location, "weights.bin");
  EXPECT_EQ((*m)->external_data[0].tensor_count, 1);
  EXPECT_EQ((*m)->external_data[0].bytes_used, 128u);
}

TEST(Loader, ExternalDataInSeveralFilesAndSubfolders) {
  std::string dir = temp_dir("multi");
  fs::create_directories(dir + "/data");
  auto model = add_model({3});
  auto* b = model.mutable_graph()->add_initializer();
  *b = model.graph().initializer(0);
  b->set_name("b");
  auto* n = model.mutable_graph()->add_node();
  n->set_op_type("Add");
  n->add_input("y");
  n->add_input("b");
  n->add_output("z");
  model.mutable_graph()->mutable_output(0)->set_name("z");
  externalize(model, "w", dir, "data/w.bin");
  externalize(model, "b", dir, "b.bin");
  save(model, dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  EXPECT_EQ((*m)->external_data.size(), 2u);
}

// Weights past the 2 GB mark: offsets are 64-bit end to end. The data file
// is sparse, so the test needs no disk space.
TEST(Loader, ExternalDataBeyondTwoGigabytes) {
  std::string dir = temp_dir("big");
  const uint64_t offset = (uint64_t{5} << 30);  // 5 GiB
  auto model = add_model({2, 3});
  externalize(model, "w", dir, "big.bin", offset);
  save(model, dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  const Tensor& t = (*m)->graph.values[static_cast<size_t>((*m)->graph.find_value("w"))].initializer;
  EXPECT_EQ(t.data<float>()[5], 5.f);
  EXPECT_GT((*m)->external_data[0].file_size, offset);
}

TEST(LoaderErrors, EmptyFile) {
  std::string dir = temp_dir("empty");
  test::write_file(dir + "/model.onnx", "");
  auto r = load_onnx(dir + "/model.onnx");
  ASSERT_FALSE(r.has_value());
  EXPECT_CONTAINS(r.message(), "model.onnx: file is empty");
}

TEST(LoaderErrors, MissingFile) {
  auto r = load_onnx("/nonexistent/model.onnx");
  ASSERT_FALSE(r.has_value());
  EXPECT_CONTAINS(r.message(), "/nonexistent/model.onnx: cannot open: No such file");
}

TEST(LoaderErrors, GarbageBytes) {
  std::string dir = temp_dir("garbage");
  const char garbage[] = "\xff\xff\xff\xff garbage \x01\x02";
  test::write_file(dir + "/model.onnx", std::string(garbage, sizeof garbage - 1));
  auto r = load_onnx(dir + "/model.onnx");
  ASSERT_FALSE(r.has_value());
  EXPECT_CONTAINS(r.message(), "model.onnx: not a valid ONNX model");
}

TEST(LoaderErrors, TruncatedProtobufAtManyOffsets) {
  std::string dir = temp_dir("trunc");
  std::string bytes = add_model({8, 8}).SerializeAsString();
  int rejected = 0;
  for (size_t cut = 1; cut < bytes.size(); cut += 7) {
    test::write_file(dir + "/model.onnx", bytes.substr(0, cut));
    auto r = load_onnx(dir + "/model.onnx");
    if (!r.has_value()) {
      ++rejected;
      EXPECT_CONTAINS(r.message(), "model.onnx: ");
    }
  }
  // Most cuts land inside a field and must be rejected; a few land on a
  // field boundary and leave a smaller valid message, which later checks
  // (missing graph, missing values) catch or which is a valid model.
  EXPECT_GT(rejected, 0);
}

TEST(LoaderErrors, NoGraph) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  EXPECT_CONTAINS(load_error(m, temp_dir("nograph")), "has no graph");
}

TEST(LoaderErrors, MissingExternalDataFile) {
  std::string dir = temp_dir("missing");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  fs::remove(dir + "/weights.bin");
  EXPECT_CONTAINS(load_error(model, dir), "tensor 'w': external data 'weights.bin': file not found");
}

// The error of fn(), which must return within 10 s: an open() of a FIFO
// without a writer blocks forever, so a hang is a failure, not a timeout of
// the whole suite (the stuck thread is left behind; the process ends anyway).
template <class Fn>
std::string error_without_hanging(const char* what, Fn fn) {
  std::packaged_task<std::string()> task(fn);
  auto done = task.get_future();
  std::thread(std::move(task)).detach();
  if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << what << " blocked on a FIFO";
    return "";
  }
  return done.get();
}

template <class T>
std::string message_of(const Expected<T>& r) {
  return r.has_value() ? std::string("(no error)") : r.message();
}

// Every file the runtime reads must be a regular file, checked without
// blocking: a FIFO as external data, model, blob, .npy input or convert
// source is refused at once with "not a regular file".
TEST(LoaderErrors, FifosAreRefusedWithoutBlocking) {
  const std::string dir = temp_dir("fifo");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  fs::remove(dir + "/weights.bin");
  ASSERT_EQ(::mkfifo((dir + "/weights.bin").c_str(), 0600), 0);
  EXPECT_CONTAINS(error_without_hanging("external data", [&] { return load_error(model, dir); }),
                  "weights.bin");
  EXPECT_CONTAINS(error_without_hanging("external data", [&] { return load_error(model, dir); }),
                  "not a regular file");
  const std::string fifo = dir + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string want = fifo + ": not a regular file";
  EXPECT_EQ(error_without_hanging("load_onnx", [&] { return message_of(load_onnx(fifo)); }), want);
  EXPECT_EQ(error_without_hanging("open_model_file", [&] { return message_of(open_model_file(fifo)); }), want);
  EXPECT_EQ(error_without_hanging("load_blob", [&] { return message_of(load_blob(fifo)); }), want);
  EXPECT_EQ(error_without_hanging("read_npy", [&] { return message_of(read_npy(fifo)); }), want);
  EXPECT_EQ(error_without_hanging("sha256_file", [&] { return message_of(quant::sha256_file(fifo, {})); }), want);
  EXPECT_FALSE(looks_like_blob(fifo));
}

TEST(LoaderErrors, ExternalDataPastEndOfFile) {
  std::string dir = temp_dir("pastend");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  fs::resize_file(dir + "/weights.bin", 10);
  EXPECT_CONTAINS(load_error(model, dir), "tensor 'w': external data 'weights.bin': offset 0 + length 24 is past the end of the file (10 bytes)");
}

TEST(LoaderErrors, ExternalDataLengthDoesNotMatchShape) {
  std::string dir = temp_dir("len");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  auto* t = model.mutable_graph()->mutable_initializer(0);
  for (auto& kv : *t->mutable_external_data())
    if (kv.key() == "length") kv.set_value("20");
  EXPECT_CONTAINS(load_error(model, dir), "tensor 'w': external data length 20 bytes does not match float32 [2, 3] (24 bytes)");
}

TEST(LoaderErrors, ExternalDataBadOffsetText) {
  std::string dir = temp_dir("offtext");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  for (auto& kv : *model.mutable_graph()->mutable_initializer(0)->mutable_external_data())
    if (kv.key() == "offset") kv.set_value("-5");
  EXPECT_CONTAINS(load_error(model, dir), "tensor 'w': external data offset '-5' is not a non-negative integer");
}

TEST(LoaderErrors, ExternalDataAbsolutePath) {
  std::string dir = temp_dir("abs");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  for (auto& kv : *model.mutable_graph()->mutable_initializer(0)->mutable_external_data())
    if (kv.key() == "location") kv.set_value(dir + "/weights.bin");
  EXPECT_CONTAINS(load_error(model, dir), "is an absolute path; it must be relative to the model's folder");
}

TEST(LoaderErrors, ExternalDataDotDot) {
  std::string dir = temp_dir("dotdot");
  fs::create_directories(dir + "/model");
  auto model = add_model();
  externalize(model, "w", dir, "weights.bin");
  for (auto& kv : *model.mutable_graph()->mutable_initializer(0)->mutable_external_data())
    if (kv.key() == "location") kv.set_value("../weights.bin");
  EXPECT_CONTAINS(load_error(model, dir + "/model"), "external data '../weights.bin' contains '..'");
}

TEST(LoaderErrors, ExternalDataSymlinkOutOfFolder) {
  std::string dir = temp_dir("symlink");
  std::string outside = temp_dir("outside");
  auto model = add_model();
  externalize(model, "w", outside, "weights.bin");
  fs::create_symlink(outside + "/weights.bin", dir + "/weights.bin");
  EXPECT_CONTAINS(load_error(model, dir), "outside the model's folder (symlink?)");
}

TEST(LoaderErrors, DimsWhoseProductOverflows) {
  auto model = add_model();
  auto* t = model.mutable_graph()->mutable_initializer(0);
  t->clear_dims();
  t->add_dims(int64_t{1} << 40);
  t->add_dims(int64_t{1} << 40);
  EXPECT_CONTAINS(load_error(model, temp_dir("overflow")), "tensor 'w': shape [1099511627776, 1099511627776] has more elements than fit in 64 bits");
}

TEST(LoaderErrors, NegativeDim) {
  auto model = add_model();
  auto* t = model.mutable_graph()->mutable_initializer(0);
  t->set_dims(0, -2);
  EXPECT_CONTAINS(load_error(model, temp_dir("negdim")), "tensor 'w': negative dimension -2");
}

TEST(LoaderErrors, RawDataSizeMismatch) {
  auto model = add_model();
  model.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(20, '\0'));
  EXPECT_CONTAINS(load_error(model, temp_dir("raw")), "tensor 'w': raw_data holds 20 bytes, but float32 [2, 3] needs 24");
}

TEST(LoaderErrors, TypedFieldCountMismatch) {
  auto model = add_model();
  auto* t = model.mutable_graph()->mutable_initializer(0);
  t->clear_raw_data();
  t->add_float_data(1.f);
  EXPECT_CONTAINS(load_error(model, temp_dir("typed")), "tensor 'w': holds 1 values, but float32 [2, 3] needs 6");
}

TEST(LoaderErrors, UnsupportedDataType) {
  auto model = add_model();
  model.mutable_graph()->mutable_initializer(0)->set_data_type(14);  // complex64
  EXPECT_CONTAINS(load_error(model, temp_dir("dtype")), "tensor 'w': data type 14 is not supported");
}

TEST(LoaderErrors, OpsetTooOld) {
  auto model = add_model();
  model.mutable_opset_import(0)->set_version(8);
  EXPECT_CONTAINS(load_error(model, temp_dir("opset8")), "opset 8 of the default domain is not supported (supported: 9-21)");
}

TEST(LoaderErrors, OpsetTooNew) {
  auto model = add_model();
  model.mutable_opset_import(0)->set_version(22);
  EXPECT_CONTAINS(load_error(model, temp_dir("opset22")), "opset 22 of the default domain is not supported (supported: 9-21)");
}

TEST(LoaderErrors, OtherDomain) {
  auto model = add_model();
  auto* op = model.add_opset_import();
  op->set_domain("com.microsoft");
  op->set_version(1);
  model.mutable_graph()->mutable_node(0)->set_domain("com.microsoft");
  model.mutable_graph()->mutable_node(0)->set_op_type("FusedGemm");
  EXPECT_CONTAINS(load_error(model, temp_dir("domain")),
                  "only the default ONNX domain is supported; node 'add0' (FusedGemm) in domain 'com.microsoft'");
}

TEST(LoaderErrors, Cycle) {
  auto model = add_model();
  auto* g = model.mutable_graph();
  // y = Add(x, z); z = Relu(y): y and z feed each other.
  g->mutable_node(0)->set_input(1, "z");
  auto* relu = g->add_node();
  relu->set_name("relu0");
  relu->set_op_type("Relu");
  relu->add_input("y");
  relu->add_output("z");
  EXPECT_CONTAINS(load_error(model, temp_dir("cycle")), "graph has a cycle through node 'add0' (Add)");
}

TEST(LoaderErrors, NodeReadsUnknownValue) {
  auto model = add_model();
  model.mutable_graph()->mutable_node(0)->set_input(1, "nowhere");
  EXPECT_CONTAINS(load_error(model, temp_dir("unknown")), "node 'add0' (Add) reads 'nowhere', which no node, input or initializer provides");
}

TEST(LoaderErrors, ValueProducedTwice) {
  auto model = add_model();
  auto* n = model.mutable_graph()->add_node();
  n->set_name("again");
  n->set_op_type("Relu");
  n->add_input("x");
  n->add_output("y");
  EXPECT_CONTAINS(load_error(model, temp_dir("twice")), "node 'again' (Relu) writes 'y', which is already produced by node 'add0' (Add)");
}

TEST(LoaderErrors, OutputNotProduced) {
  auto model = add_model();
  model.mutable_graph()->mutable_output(0)->set_name("ghost");
  EXPECT_CONTAINS(load_error(model, temp_dir("ghost")), "graph output 'ghost' is not produced by any node");
}

TEST(SessionErrors, EveryUnsupportedOpInOneMessage) {
  auto model = add_model();
  auto* g = model.mutable_graph();
  const char* ops[][3] = {{"FooOp", "foo1", "y"}, {"BarOp", "bar1", "b1"}, {"FooOp", "foo2", "f2"}};
  std::string prev = "x";
  g->mutable_node(0)->set_output(0, "a0");
  prev = "a0";
  for (auto& o : ops) {
    auto* n = g->add_node();
    n->set_op_type(o[0]);
    n->set_name(o[1]);
    n->add_input(prev);
    n->add_output(std::string(o[2]) == "y" ? "t_foo" : o[2]);
    prev = n->output(0);
  }
  g->mutable_output(0)->set_name(prev);
  std::string dir = temp_dir("unsupported");
  save(model, dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(*m, table);
  ASSERT_FALSE(s.has_value());
  EXPECT_CONTAINS(s.message(), "model.onnx: 2 unsupported ops at opset 17: BarOp (1 node, e.g. 'bar1'), FooOp (2 nodes, e.g. 'foo1')");
}

TEST(SessionErrors, InputChecks) {
  std::string dir = temp_dir("inputs");
  save(add_model(), dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value());
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(*m, table, SessionOptions{1});
  ASSERT_TRUE(s.has_value()) << s.message();
  auto err = [&](std::vector<NamedTensor> in) {
    auto r = (*s)->run(in);
    return r.has_value() ? std::string() : r.message();
  };
  EXPECT_CONTAINS(err({}), "missing input 'x' (float32 [2, 3])");
  EXPECT_CONTAINS(err({{"q", Tensor::allocate(DType::kFloat32, {2, 3})}}), "the model has no input 'q' (its inputs: x)");
  EXPECT_CONTAINS(err({{"x", Tensor::allocate(DType::kInt64, {2, 3})}}), "input 'x' must be float32 [2, 3], got int64 [2, 3]");
  EXPECT_CONTAINS(err({{"x", Tensor::allocate(DType::kFloat32, {6})}}), "input 'x' must be float32 [2, 3] (rank 2), got float32 [6]");
  EXPECT_CONTAINS(err({{"x", Tensor::allocate(DType::kFloat32, {2, 4})}}), "(dim 1 must be 3)");
  auto ok = (*s)->run({{"x", test::make_tensor<float>({2, 3}, {1, 1, 1, 1, 1, 1})}});
  ASSERT_TRUE(ok.has_value()) << ok.message();
  EXPECT_EQ((*ok)[0].tensor.data<float>()[5], 6.f);
}

TEST(SessionErrors, SymbolicDimsMustAgreeAcrossInputs) {
  auto model = add_model();
  auto* g = model.mutable_graph();
  g->clear_initializer();
  auto* x2 = g->add_input();
  *x2 = g->input(0);
  x2->set_name("w");
  for (int i = 0; i < 2; ++i) {
    auto* d = g->mutable_input(i)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1);
    d->set_dim_param("len");
  }
  std::string dir = temp_dir("symbols");
  save(model, dir + "/model.onnx");
  auto m = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(m.has_value()) << m.message();
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(*m, table, SessionOptions{1});
  ASSERT_TRUE(s.has_value());
  auto r = (*s)->run({{"x", Tensor::allocate(DType::kFloat32, {2, 5})}, {"w", Tensor::allocate(DType::kFloat32, {2, 7})}});
  ASSERT_FALSE(r.has_value());
  EXPECT_CONTAINS(r.message(), "input 'w' has len = 7, but input 'x' has len = 5");
  auto ok = (*s)->run({{"x", Tensor::allocate(DType::kFloat32, {2, 5})}, {"w", Tensor::allocate(DType::kFloat32, {2, 5})}});
  EXPECT_TRUE(ok.has_value()) << ok.message();
}

}  // namespace
}  // namespace sarai
