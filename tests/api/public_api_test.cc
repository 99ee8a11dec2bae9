// The public API (include/sarai_rt/) through libsarai_rt.so: the C++ and
// the C API give the internal Session's outputs bit for bit; declared
// inputs/outputs; every error category, each naming the file or input; the
// session stays usable after a bad call. (tests/api/check_embedding.sh
// builds docs/embedding.md's programs against the installed package.)
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "include/sarai_rt/sarai_rt.h"
#include "include/sarai_rt/sarai_rt.hpp"
#include "kernels/kernels.h"
#include "loader/onnx_loader.h"
#include "runtime/cpu_isa.h"
#include "quantizer/convert.h"
#include "quantizer/onnx_export.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace {

using sarai::test::fixture;

// The internal Session's output for `x`, as the reference.
sarai::Tensor internal_output(const std::string& model, const sarai::Tensor& x) {
  auto m = sarai::load_onnx(model);
  EXPECT_TRUE(m.has_value());
  sarai::KernelTable table;
  sarai::register_kernels(table);
  auto s = sarai::Session::create(*m, table, sarai::SessionOptions{1});
  EXPECT_TRUE(s.has_value());
  auto y = (*s)->run({{"mel", x}});
  EXPECT_TRUE(y.has_value());
  return (*y)[0].tensor;
}

TEST(PublicApi, CppAndCGiveTheInternalOutputsBitForBit) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  const sarai::Tensor x = sarai::test::random_tensor({1, 80, 200}, 3);
  const sarai::Tensor want = internal_output(model, x);

  EXPECT_STREQ(sarai_rt::version(), SARAI_RT_VERSION);
  EXPECT_STREQ(sarai_rt_version(), SARAI_RT_VERSION);
  auto session = sarai_rt::Session::open(model, {.threads = 1});
  ASSERT_TRUE(session.ok()) << session.error().message;
  ASSERT_EQ(session->inputs().size(), 1u);
  const sarai_rt::TensorInfo& in = session->inputs()[0];
  EXPECT_EQ(in.name, "mel");
  EXPECT_EQ(in.dtype, sarai_rt::DType::kFloat32);
  ASSERT_EQ(in.shape.size(), 3u);
  EXPECT_EQ(in.shape[1], 80);
  EXPECT_EQ(in.shape[2], -1) << "frames is open";
  EXPECT_FALSE(in.symbols[2].empty());
  ASSERT_EQ(session->outputs().size(), 1u);

  auto out = session->run({{"mel", sarai_rt::DType::kFloat32, {1, 80, 200}, x.raw()}});
  ASSERT_TRUE(out.ok()) << out.error().message;
  ASSERT_EQ(out->size(), 1u);
  const sarai_rt::Tensor& y = (*out)[0];
  EXPECT_EQ(y.name(), session->outputs()[0].name);
  EXPECT_EQ(y.shape(), std::vector<int64_t>(want.shape().begin(), want.shape().end()));
  ASSERT_EQ(y.size_bytes(), want.nbytes());
  EXPECT_EQ(std::memcmp(y.data(), want.raw(), want.nbytes()), 0);

  sarai_rt_session* cs = nullptr;
  const sarai_rt_options opts = {1, 0, 0};
  ASSERT_EQ(sarai_rt_session_open(model.c_str(), &opts, &cs), nullptr);
  size_t n = 0;
  ASSERT_EQ(sarai_rt_session_input_count(cs, &n), nullptr);
  EXPECT_EQ(n, 1u);
  const char* name = nullptr;
  sarai_rt_dtype dtype;
  size_t rank = 0;
  const int64_t* dims = nullptr;
  ASSERT_EQ(sarai_rt_session_input_info(cs, 0, &name, &dtype, &rank, &dims), nullptr);
  EXPECT_STREQ(name, "mel");
  EXPECT_EQ(dtype, SARAI_RT_FLOAT32);
  ASSERT_EQ(rank, 3u);
  EXPECT_EQ(dims[2], -1);
  const int64_t shape[] = {1, 80, 200};
  const sarai_rt_tensor input = {"mel", SARAI_RT_FLOAT32, 3, shape, x.raw()};
  sarai_rt_outputs* outs = nullptr;
  ASSERT_EQ(sarai_rt_session_run(cs, &input, 1, &outs), nullptr);
  sarai_rt_tensor t;
  ASSERT_EQ(sarai_rt_outputs_get(outs, 0, &t), nullptr);
  EXPECT_EQ(t.rank, static_cast<size_t>(want.rank()));
  EXPECT_EQ(std::memcmp(t.data, want.raw(), want.nbytes()), 0);
  sarai_rt_status* bad = sarai_rt_outputs_get(outs, 1, &t);
  EXPECT_EQ(sarai_rt_status_code(bad), SARAI_RT_INVALID_ARGUMENT);
  EXPECT_HAS(std::string(sarai_rt_status_message(bad)), "index 1 is out of range (1)");
  sarai_rt_status_free(bad);
  sarai_rt_outputs_free(outs);
  sarai_rt_session_close(cs);
}

TEST(PublicApi, EveryErrorCategoryNamesWhatIsWrong) {
  using sarai_rt::ErrorCategory;
  const std::string dir = sarai::test::temp_dir("api");
  auto missing = sarai_rt::Session::open(dir + "/none.onnx");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().category, ErrorCategory::kIo);
  EXPECT_HAS(missing.error().message, "none.onnx: cannot open: No such file or directory");
  auto folder = sarai_rt::Session::open(dir);
  ASSERT_FALSE(folder.ok());
  EXPECT_EQ(folder.error().category, ErrorCategory::kIo);
  EXPECT_HAS(folder.error().message, "not a regular file");

  sarai::test::write_file(dir + "/junk.onnx", "this is not a model");
  auto junk = sarai_rt::Session::open(dir + "/junk.onnx");
  ASSERT_FALSE(junk.ok());
  EXPECT_EQ(junk.error().category, ErrorCategory::kInvalidModel);
  EXPECT_HAS(junk.error().message, "junk.onnx");

  onnx::ModelProto m = sarai::test::add_model({2, 3});
  m.mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
  sarai::test::save(m, dir + "/unsupported.onnx");
  auto unsupported = sarai_rt::Session::open(dir + "/unsupported.onnx");
  ASSERT_FALSE(unsupported.ok());
  EXPECT_EQ(unsupported.error().category, ErrorCategory::kUnsupportedOp);
  EXPECT_HAS(unsupported.error().message, "NoSuchOp");

  EXPECT_EQ(sarai_rt::Session::open(fixture("small_cnn.onnx"), {.threads = -1}).error().category,
            ErrorCategory::kInvalidArgument);

  // Bad inputs: each names the input; the session runs fine afterwards.
  auto s = sarai_rt::Session::open(fixture("whisper_tiny_encoder.onnx"), {.threads = 1});
  ASSERT_TRUE(s.ok());
  const std::vector<float> x(80 * 50, 0.25f);
  const std::vector<int32_t> xi(80 * 50, 1);
  struct Bad {
    sarai_rt::TensorView view;
    const char* says;
  };
  const Bad bad[] = {
      {{"wrong", sarai_rt::DType::kFloat32, {1, 80, 50}, x.data()}, "no input 'wrong'"},
      {{"mel", sarai_rt::DType::kInt32, {1, 80, 50}, xi.data()}, "input 'mel' must be float32"},
      {{"mel", sarai_rt::DType::kFloat32, {80, 50}, x.data()}, "input 'mel' must be"},
      {{"mel", sarai_rt::DType::kFloat32, {1, 81, 50}, x.data()}, "input 'mel' must be"},
      {{"mel", sarai_rt::DType::kFloat32, {1, 80, -5}, x.data()}, "input 'mel' has a negative or huge dimension"},
      {{"mel", sarai_rt::DType::kFloat32, {1, 80, 50}, nullptr}, "input 'mel' has no data"},
      {{"mel", static_cast<sarai_rt::DType>(99), {1, 80, 50}, x.data()}, "unknown dtype code 99"},
  };
  for (const Bad& b : bad) {
    auto r = s->run({b.view});
    ASSERT_FALSE(r.ok()) << b.says;
    EXPECT_EQ(r.error().category, ErrorCategory::kBadInput) << r.error().message;
    EXPECT_HAS(r.error().message, b.says);
  }
  auto none = s->run({});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().category, ErrorCategory::kBadInput);
  EXPECT_HAS(none.error().message, "missing input 'mel'");
  auto good = s->run({{"mel", sarai_rt::DType::kFloat32, {1, 80, 50}, x.data()}});
  EXPECT_TRUE(good.ok()) << good.error().message;

  // A budget below the process itself.
  auto tight = sarai_rt::Session::open(fixture("whisper_tiny_encoder.onnx"), {.max_memory_mb = 1});
  ASSERT_TRUE(tight.ok());
  auto r = tight->run({{"mel", sarai_rt::DType::kFloat32, {1, 80, 50}, x.data()}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().category, ErrorCategory::kOutOfMemoryBudget);
  EXPECT_HAS(r.error().message, "is too small");

  // The C API: categories as codes, NULL arguments refused.
  sarai_rt_session* cs = nullptr;
  sarai_rt_status* st = sarai_rt_session_open((dir + "/none.onnx").c_str(), nullptr, &cs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_IO);
  EXPECT_EQ(cs, nullptr);
  sarai_rt_status_free(st);
  st = sarai_rt_session_open(nullptr, nullptr, &cs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "path is NULL");
  sarai_rt_status_free(st);
  EXPECT_EQ(sarai_rt_status_code(nullptr), SARAI_RT_OK);
}

TEST(PublicApi, IsaLevelIsTheRuntimes) {
  EXPECT_STREQ(sarai_rt::isa_level(), sarai::isa_name(sarai::max_isa()));
  EXPECT_STREQ(sarai_rt_isa_level(), sarai_rt::isa_level());
  EXPECT_EQ(sarai_rt_isa_cap_warning(), sarai_rt::isa_cap_warning());
}

TEST(PublicApi, ResultCacheCountersThroughBothApis) {
  const std::string model = fixture("whisper_tiny_encoder.onnx");
  const std::vector<float> x(80 * 40, 0.5f);
  auto s = sarai_rt::Session::open(model, {.threads = 1, .cache_size = 2});
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(s->run({{"mel", sarai_rt::DType::kFloat32, {1, 80, 40}, x.data()}}).ok());
  EXPECT_EQ(s->cache_counters().hits, 2u);
  EXPECT_EQ(s->cache_counters().misses, 1u);
  EXPECT_EQ(s->cache_counters().entries, 1u);
  sarai_rt_session* cs = nullptr;
  const sarai_rt_options opts = {1, 0, 4};
  ASSERT_EQ(sarai_rt_session_open(model.c_str(), &opts, &cs), nullptr);
  const int64_t shape[] = {1, 80, 40};
  const sarai_rt_tensor input = {"mel", SARAI_RT_FLOAT32, 3, shape, x.data()};
  for (int i = 0; i < 2; ++i) {
    sarai_rt_outputs* outs = nullptr;
    ASSERT_EQ(sarai_rt_session_run(cs, &input, 1, &outs), nullptr);
    sarai_rt_outputs_free(outs);
  }
  uint64_t hits = 0, misses = 0, bytes = 0;
  ASSERT_EQ(sarai_rt_session_cache_counters(cs, &hits, &misses, &bytes), nullptr);
  EXPECT_EQ(hits, 1u);
  EXPECT_EQ(misses, 1u);
  EXPECT_GT(bytes, x.size() * sizeof(float));
  sarai_rt_session_close(cs);
}

}  // namespace

namespace {

// One C API run of whisper-tiny on `t`; the status's code, and the message
// in *message.
sarai_rt_code c_run(sarai_rt_session* s, const sarai_rt_tensor& t, std::string* message, std::vector<float>* out) {
  sarai_rt_outputs* outs = nullptr;
  sarai_rt_status* st = sarai_rt_session_run(s, &t, 1, &outs);
  const sarai_rt_code code = sarai_rt_status_code(st);
  *message = sarai_rt_status_message(st);
  sarai_rt_status_free(st);
  if (code == SARAI_RT_OK && out) {
    sarai_rt_tensor y{};
    sarai_rt_status* g = sarai_rt_outputs_get(outs, 0, &y);
    EXPECT_EQ(g, nullptr);
    sarai_rt_status_free(g);
    size_t n = 1;
    for (size_t d = 0; d < y.rank; ++d) n *= static_cast<size_t>(y.dims[d]);
    const auto* p = static_cast<const float*>(y.data);
    out->assign(p, p + n);
  }
  sarai_rt_outputs_free(outs);
  return code;
}

}  // namespace

// The bad inputs of the C++ test above, through the C API: each a
// SARAI_RT_BAD_INPUT status naming the input, the session usable after
// each; a cut blob and a NULL session are refused with their own codes.
TEST(PublicApi, BadInputsThroughTheCApi) {
  sarai_rt_session* s = nullptr;
  sarai_rt_options o{1, 0, 0};
  sarai_rt_status* st = sarai_rt_session_open(fixture("whisper_tiny_encoder.onnx").c_str(), &o, &s);
  ASSERT_EQ(st, nullptr) << sarai_rt_status_message(st);
  const std::vector<float> x(80 * 50, 0.25f);
  const std::vector<int32_t> xi(80 * 50, 1);
  const int64_t good_dims[] = {1, 80, 50}, rank2[] = {80, 50}, wide[] = {1, 81, 50};
  std::string message;
  std::vector<float> want, got;
  ASSERT_EQ(c_run(s, {"mel", SARAI_RT_FLOAT32, 3, good_dims, x.data()}, &message, &want), SARAI_RT_OK) << message;
  struct Bad {
    sarai_rt_tensor t;
    const char* says;
  };
  const Bad bad[] = {
      {{"wrong", SARAI_RT_FLOAT32, 3, good_dims, x.data()}, "no input 'wrong'"},
      {{"mel", SARAI_RT_INT32, 3, good_dims, xi.data()}, "input 'mel' must be float32"},
      {{"mel", SARAI_RT_FLOAT32, 2, rank2, x.data()}, "input 'mel' must be"},
      {{"mel", SARAI_RT_FLOAT32, 3, wide, x.data()}, "input 'mel' must be"},
      {{"mel", SARAI_RT_FLOAT32, 3, good_dims, nullptr}, "input 'mel' has no data"},
      {{nullptr, SARAI_RT_FLOAT32, 3, good_dims, x.data()}, "input 0 has no name"},
  };
  for (const Bad& b : bad) {
    const sarai_rt_code code = c_run(s, b.t, &message, nullptr);
    EXPECT_TRUE(code == SARAI_RT_BAD_INPUT || code == SARAI_RT_INVALID_ARGUMENT) << b.says << ": " << message;
    EXPECT_HAS(message, b.says);
    ASSERT_EQ(c_run(s, {"mel", SARAI_RT_FLOAT32, 3, good_dims, x.data()}, &message, &got), SARAI_RT_OK) << message;
    EXPECT_EQ(got, want) << "after: " << b.says;
  }
  sarai_rt_outputs* outs = nullptr;
  st = sarai_rt_session_run(s, nullptr, 0, &outs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_BAD_INPUT);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "missing input 'mel'");
  sarai_rt_status_free(st);
  st = sarai_rt_session_run(nullptr, nullptr, 0, &outs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
  sarai_rt_status_free(st);
  sarai_rt_session_close(s);

  // A blob cut short: an invalid model (or unreadable file), naming it.
  const std::string dir = sarai::test::temp_dir("c_api_bad");
  auto m = sarai::load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(m.has_value());
  const std::string blob = dir + "/w.sarai";
  ASSERT_TRUE(sarai::quant::convert_to_blob(**m, blob, {}).has_value());
  std::string bytes = sarai::test::read_file(blob);
  sarai::test::write_file(dir + "/cut.sarai", bytes.substr(0, bytes.size() / 3));
  sarai_rt_session* cut = nullptr;
  st = sarai_rt_session_open((dir + "/cut.sarai").c_str(), &o, &cut);
  EXPECT_TRUE(sarai_rt_status_code(st) == SARAI_RT_INVALID_MODEL || sarai_rt_status_code(st) == SARAI_RT_IO);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "cut.sarai");
  EXPECT_EQ(cut, nullptr);
  sarai_rt_status_free(st);
}

// A model given as bytes (ONNX Runtime's CreateSessionFromArray): an ONNX
// model and a blob each give their file's outputs bit for bit, through C++
// and C, after the caller's buffer is gone; errors name "<memory>" (or the
// C++ caller's name); an ONNX model's external data resolves against the
// working directory.
TEST(PublicApi, ModelsFromMemoryRunAsFromTheirFiles) {
  using sarai_rt::ErrorCategory;
  const std::string dir = sarai::test::temp_dir("api_memory");
  const std::string onnx_path = fixture("whisper_tiny_encoder.onnx"), blob = dir + "/w.sarai";
  auto m = sarai::load_onnx(onnx_path);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(sarai::quant::convert_to_blob(**m, blob, {}).has_value());
  const std::vector<float> x(80 * 40, 0.5f);
  const sarai_rt::TensorView in{"mel", sarai_rt::DType::kFloat32, {1, 80, 40}, x.data()};
  for (const std::string& path : {onnx_path, blob}) {
    auto from_file = sarai_rt::Session::open(path, {.threads = 1});
    ASSERT_TRUE(from_file.ok()) << from_file.error().message;
    auto want = from_file->run({in});
    ASSERT_TRUE(want.ok()) << want.error().message;
    std::string bytes = sarai::test::read_file(path);
    auto session = sarai_rt::Session::open_memory(bytes.data(), bytes.size(), {.threads = 1});
    ASSERT_TRUE(session.ok()) << session.error().message;
    bytes.assign(bytes.size(), '\0');  // copied at open: the caller's buffer no longer matters
    auto got = session->run({in});
    ASSERT_TRUE(got.ok()) << got.error().message;
    ASSERT_EQ((*got)[0].size_bytes(), (*want)[0].size_bytes()) << path;
    EXPECT_EQ(std::memcmp((*got)[0].data(), (*want)[0].data(), (*want)[0].size_bytes()), 0) << path;
    EXPECT_EQ(session->inputs()[0].name, "mel");

    bytes = sarai::test::read_file(path);
    sarai_rt_session* cs = nullptr;
    const sarai_rt_options opts = {1, 0, 0};
    sarai_rt_status* st = sarai_rt_session_open_memory(bytes.data(), bytes.size(), &opts, &cs);
    ASSERT_EQ(st, nullptr) << sarai_rt_status_message(st);
    bytes.clear();
    bytes.shrink_to_fit();
    std::string message;
    std::vector<float> c_out;
    const int64_t dims[] = {1, 80, 40};
    ASSERT_EQ(c_run(cs, {"mel", SARAI_RT_FLOAT32, 3, dims, x.data()}, &message, &c_out), SARAI_RT_OK) << message;
    ASSERT_EQ(c_out.size() * sizeof(float), (*want)[0].size_bytes());
    EXPECT_EQ(std::memcmp(c_out.data(), (*want)[0].data(), (*want)[0].size_bytes()), 0) << path;
    sarai_rt_session_close(cs);
  }

  const std::string junk = "this is not a model";
  auto bad = sarai_rt::Session::open_memory(junk.data(), junk.size());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().category, ErrorCategory::kInvalidModel);
  EXPECT_HAS(bad.error().message, "<memory>: not a valid ONNX model");
  auto named = sarai_rt::Session::open_memory(junk.data(), junk.size(), {}, "encoder bytes");
  EXPECT_HAS(named.error().message, "encoder bytes: not a valid ONNX model");
  const std::string blob_bytes = sarai::test::read_file(blob);
  auto cut = sarai_rt::Session::open_memory(blob_bytes.data(), blob_bytes.size() / 3);
  ASSERT_FALSE(cut.ok());
  EXPECT_HAS(cut.error().message, "<memory>: ");
  auto empty = sarai_rt::Session::open_memory(junk.data(), 0);
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().category, ErrorCategory::kInvalidModel);
  EXPECT_HAS(empty.error().message, "<memory>: the model is empty (0 bytes)");
  EXPECT_EQ(sarai_rt::Session::open_memory(nullptr, 10).error().category, ErrorCategory::kInvalidArgument);
  EXPECT_EQ(sarai_rt::Session::open_memory(junk.data(), junk.size(), {.threads = -1}).error().category,
            ErrorCategory::kInvalidArgument);

  // External data: relative to the working directory, as in ONNX Runtime.
  onnx::ModelProto ext = sarai::test::matmul_chain_model({1, 8}, {1, 8}, {sarai::test::random_tensor({8, 8}, 2)}, {"mm"});
  onnx::TensorProto* w = ext.mutable_graph()->mutable_initializer(0);
  w->clear_raw_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* loc = w->add_external_data();
  loc->set_key("location");
  loc->set_value("no_such_weights.bin");
  std::string ext_bytes;
  ASSERT_TRUE(ext.SerializeToString(&ext_bytes));
  auto missing = sarai_rt::Session::open_memory(ext_bytes.data(), ext_bytes.size());
  ASSERT_FALSE(missing.ok());
  EXPECT_HAS(missing.error().message, "<memory>: tensor '" + w->name() + "': external data 'no_such_weights.bin': file not found");

  sarai_rt_session* cs = nullptr;
  sarai_rt_status* st = sarai_rt_session_open_memory(junk.data(), junk.size(), nullptr, &cs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_MODEL);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "<memory>: not a valid ONNX model");
  EXPECT_EQ(cs, nullptr);
  sarai_rt_status_free(st);
  st = sarai_rt_session_open_memory(nullptr, 5, nullptr, &cs);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "data is NULL");
  sarai_rt_status_free(st);
}

// ONNX Runtime's ModelMetadata through both APIs: the ONNX model's own
// description and metadata_props; a blob converted from it answers the
// same (convert keeps them as source.* metadata), and so does the quantized
// ONNX of `convert --to onnx` (next to its sarai.* keys).
TEST(PublicApi, ModelMetadataSurvivesConvertAndExport) {
  const std::string dir = sarai::test::temp_dir("api_meta");
  onnx::ModelProto mp = sarai::test::matmul_chain_model({1, 16, 64}, {1, 16, 64},
                                                        {sarai::test::random_tensor({64, 64}, 1, -0.2f, 0.2f)}, {"mm"});
  mp.set_producer_name("pytorch");
  mp.set_domain("ai.example");
  mp.set_doc_string("a test model");
  mp.set_model_version(7);
  mp.mutable_graph()->set_name("main_graph");
  mp.mutable_graph()->set_doc_string("its graph");
  const std::vector<std::pair<std::string, std::string>> props = {
      {"character", "a\nb\nc\xc3\xa9"}, {"n_audio_layer", "4"}, {"empty", ""}};
  for (const auto& [k, v] : props) {
    auto* p = mp.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  }
  const std::string onnx_path = dir + "/m.onnx";
  sarai::test::save(mp, onnx_path);
  auto m = sarai::load_onnx(onnx_path);
  ASSERT_TRUE(m.has_value()) << m.message();
  ASSERT_TRUE(sarai::quant::convert_to_blob(**m, dir + "/m.sarai", {}).has_value());
  ASSERT_TRUE(sarai::quant::export_quantized_onnx(**m, dir + "/q.onnx", {}, {}).has_value());

  for (const std::string& path : {onnx_path, dir + "/m.sarai", dir + "/q.onnx"}) {
    SCOPED_TRACE(path);
    const bool exported = path == dir + "/q.onnx";
    auto s = sarai_rt::Session::open(path, {.threads = 1});
    ASSERT_TRUE(s.ok()) << s.error().message;
    const sarai_rt::ModelMetadata& md = s->metadata();
    EXPECT_EQ(md.producer_name, exported ? "sarai-rt" : "pytorch");
    EXPECT_EQ(md.graph_name, "main_graph");
    EXPECT_EQ(md.domain, "ai.example");
    if (!exported) {
      EXPECT_EQ(md.description, "a test model");  // the export describes its quantization
    }
    EXPECT_EQ(md.graph_description, "its graph");
    EXPECT_EQ(md.version, 7);
    std::vector<std::pair<std::string, std::string>> custom = md.custom;
    if (exported) {  // the source's first, then the export's own
      ASSERT_GE(custom.size(), props.size() + 2);
      EXPECT_EQ(custom[props.size()].first, "sarai.source");
      custom.resize(props.size());
    }
    EXPECT_EQ(custom, props);

    // The C API: the same strings, owned by the session.
    sarai_rt_session* c = nullptr;
    sarai_rt_options o{};
    o.threads = 1;
    ASSERT_EQ(sarai_rt_session_open(path.c_str(), &o, &c), nullptr);
    const char *producer = nullptr, *graph = nullptr, *domain = nullptr, *doc = nullptr, *graph_doc = nullptr;
    int64_t version = 0;
    ASSERT_EQ(sarai_rt_session_metadata(c, &producer, &graph, &domain, &doc, &graph_doc, &version), nullptr);
    EXPECT_EQ(std::string(producer), md.producer_name);
    EXPECT_EQ(std::string(graph), "main_graph");
    EXPECT_EQ(std::string(domain), "ai.example");
    EXPECT_EQ(std::string(doc), md.description);
    EXPECT_EQ(std::string(graph_doc), "its graph");
    EXPECT_EQ(version, 7);
    ASSERT_EQ(sarai_rt_session_metadata(c, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr), nullptr);
    size_t count = 0;
    ASSERT_EQ(sarai_rt_session_custom_metadata_count(c, &count), nullptr);
    ASSERT_EQ(count, md.custom.size());
    for (size_t i = 0; i < count; ++i) {
      const char *k = nullptr, *v = nullptr;
      ASSERT_EQ(sarai_rt_session_custom_metadata(c, i, &k, &v), nullptr);
      EXPECT_EQ(std::string(k), md.custom[i].first);
      EXPECT_EQ(std::string(v), md.custom[i].second);
    }
    sarai_rt_status* st = sarai_rt_session_custom_metadata(c, count, nullptr, nullptr);
    EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
    EXPECT_HAS(std::string(sarai_rt_status_message(st)),
               "sarai_rt_session_custom_metadata: index " + std::to_string(count) + " is out of range");
    sarai_rt_status_free(st);
    st = sarai_rt_session_custom_metadata_count(c, nullptr);
    EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
    sarai_rt_status_free(st);
    sarai_rt_session_close(c);
  }
}

// sarai_rt::convert: a blob equal to the internal converter's output, the
// ONNX export chosen by the file name, and errors by category.
TEST(PublicApi, ConvertWritesBlobsAndQuantizedOnnx) {
  const std::string dir = sarai::test::temp_dir("api_convert");
  const std::string src = fixture("whisper_tiny_encoder.onnx");
  auto blob = sarai_rt::convert(src, dir + "/w.sarai");
  ASSERT_TRUE(blob.ok()) << blob.error().message;
  EXPECT_EQ(blob->format, "sarai");
  EXPECT_GT(blob->quantized, 0);
  EXPECT_EQ(blob->kept_fp32, 0);
  auto m = sarai::load_onnx(src);
  ASSERT_TRUE(m.has_value());
  ASSERT_TRUE(sarai::quant::convert_to_blob(**m, dir + "/internal.sarai", {}).has_value());
  sarai_rt::Session a = std::move(sarai_rt::Session::open(dir + "/w.sarai", {.threads = 1}).value());
  sarai_rt::Session b = std::move(sarai_rt::Session::open(dir + "/internal.sarai", {.threads = 1}).value());
  const sarai::Tensor x = sarai::test::random_tensor({1, 80, 30}, 5);
  const sarai_rt::TensorView in{"mel", sarai_rt::DType::kFloat32, {1, 80, 30}, x.raw()};
  auto ya = a.run({in}), yb = b.run({in});
  ASSERT_TRUE(ya.ok() && yb.ok());
  ASSERT_EQ(ya->at(0).size_bytes(), yb->at(0).size_bytes());
  EXPECT_EQ(std::memcmp(ya->at(0).data(), yb->at(0).data(), ya->at(0).size_bytes()), 0);

  sarai_rt::ConvertOptions keep;
  keep.keep_fp32 = {"*"};
  auto kept = sarai_rt::convert(src, dir + "/kept.sarai", keep);
  ASSERT_TRUE(kept.ok()) << kept.error().message;
  EXPECT_EQ(kept->quantized, 0);
  EXPECT_EQ(kept->kept_fp32, blob->quantized);
  // By exact name a "*" is only a name: no node or weight is called that.
  sarai_rt::ConvertOptions named;
  named.keep_fp32_names = {"*"};
  auto none_kept = sarai_rt::convert(src, dir + "/named.sarai", named);
  ASSERT_TRUE(none_kept.ok()) << none_kept.error().message;
  EXPECT_EQ(none_kept->kept_fp32, 0);

  // X's schemes: per tensor gives the internal converter's per-tensor blob
  // (through the C API too), not the default's numbers.
  sarai_rt::ConvertOptions pt;
  pt.matmul_activations = "per-tensor";
  pt.depthwise_activations = "per-tensor";
  ASSERT_TRUE(sarai_rt::convert(src, dir + "/pt.sarai", pt).ok());
  sarai_rt_convert_options cpt{};
  cpt.matmul_activations = "per-tensor";
  cpt.depthwise_activations = "per-tensor";
  ASSERT_EQ(sarai_rt_convert(src.c_str(), (dir + "/c_pt.sarai").c_str(), &cpt, nullptr, nullptr), nullptr);
  sarai::quant::ConvertOptions ipt;
  ipt.matmul_activations = "per-tensor";
  ipt.depthwise_activations = "per-tensor";
  auto m2 = sarai::load_onnx(src);
  ASSERT_TRUE(m2.has_value());
  ASSERT_TRUE(sarai::quant::convert_to_blob(**m2, dir + "/internal_pt.sarai", ipt).has_value());
  sarai_rt::Session ipt_s = std::move(sarai_rt::Session::open(dir + "/internal_pt.sarai", {.threads = 1}).value());
  auto yi = ipt_s.run({in});
  ASSERT_TRUE(yi.ok());
  for (const char* name : {"/pt.sarai", "/c_pt.sarai"}) {
    sarai_rt::Session s = std::move(sarai_rt::Session::open(dir + name, {.threads = 1}).value());
    auto y = s.run({in});
    ASSERT_TRUE(y.ok());
    EXPECT_EQ(std::memcmp(y->at(0).data(), yi->at(0).data(), yi->at(0).size_bytes()), 0) << name;
    EXPECT_NE(std::memcmp(y->at(0).data(), ya->at(0).data(), ya->at(0).size_bytes()), 0) << name;
  }

  auto q = sarai_rt::convert(src, dir + "/q.onnx");
  ASSERT_TRUE(q.ok()) << q.error().message;
  EXPECT_EQ(q->format, "onnx");
  EXPECT_EQ(q->quantized, blob->quantized);

  sarai_rt::ConvertOptions bad;
  bad.onnx_weights = "s4";
  auto r = sarai_rt::convert(src, dir + "/b.onnx", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().category, sarai_rt::ErrorCategory::kInvalidArgument);
  EXPECT_HAS(r.error().message, "s4");
  for (const char* out : {"/b.sarai", "/b.onnx"}) {
    bad = {};
    bad.matmul_activations = "per-channel";
    r = sarai_rt::convert(src, dir + out, bad);
    ASSERT_FALSE(r.ok()) << out;
    EXPECT_EQ(r.error().category, sarai_rt::ErrorCategory::kInvalidArgument);
    EXPECT_HAS(r.error().message, std::string(out).substr(1) + ": matmul activations 'per-channel' are not per-row or per-tensor");
    bad = {};
    bad.depthwise_activations = "per-row";
    r = sarai_rt::convert(src, dir + out, bad);
    ASSERT_FALSE(r.ok()) << out;
    EXPECT_HAS(r.error().message, "depthwise activations 'per-row' are not per-channel or per-tensor");
    EXPECT_FALSE(std::filesystem::exists(dir + out));
  }
  bad = {};
  bad.to = "tflite";
  r = sarai_rt::convert(src, dir + "/b.tflite", bad);
  ASSERT_FALSE(r.ok());
  EXPECT_HAS(r.error().message, "format 'tflite' is not sarai or onnx");
  r = sarai_rt::convert(dir + "/missing.onnx", dir + "/b.sarai");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().category, sarai_rt::ErrorCategory::kIo);
  EXPECT_HAS(r.error().message, "missing.onnx");
  // The C API: the same conversion, its options, its errors.
  int quantized = -1, kept_c = -1;
  ASSERT_EQ(sarai_rt_convert(src.c_str(), (dir + "/c.sarai").c_str(), nullptr, &quantized, &kept_c), nullptr);
  EXPECT_EQ(quantized, blob->quantized);
  EXPECT_EQ(kept_c, 0);
  EXPECT_EQ(sarai::test::read_file(dir + "/c.sarai").size(), sarai::test::read_file(dir + "/w.sarai").size());
  const char* keep_all[] = {"*"};
  sarai_rt_convert_options co{};
  co.keep_fp32 = keep_all;
  co.keep_fp32_count = 1;
  co.to = "onnx";
  ASSERT_EQ(sarai_rt_convert(src.c_str(), (dir + "/c_kept.bin").c_str(), &co, &quantized, &kept_c), nullptr);
  EXPECT_EQ(quantized, 0);
  EXPECT_EQ(kept_c, blob->quantized);
  co = {};
  co.onnx_weights = "s4";
  sarai_rt_status* st = sarai_rt_convert(src.c_str(), (dir + "/c.onnx").c_str(), &co, nullptr, nullptr);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "s4");
  sarai_rt_status_free(st);
  co = {};
  co.keep_fp32_count = 2;
  st = sarai_rt_convert(src.c_str(), (dir + "/c.sarai").c_str(), &co, nullptr, nullptr);
  EXPECT_EQ(sarai_rt_status_code(st), SARAI_RT_INVALID_ARGUMENT);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "sarai_rt_convert: options->keep_fp32 is NULL");
  sarai_rt_status_free(st);
  st = sarai_rt_convert(nullptr, "x", nullptr, nullptr, nullptr);
  EXPECT_HAS(std::string(sarai_rt_status_message(st)), "sarai_rt_convert: src is NULL");
  sarai_rt_status_free(st);

  // Never over its source.
  sarai::test::write_file(dir + "/src.onnx", sarai::test::read_file(src));
  r = sarai_rt::convert(dir + "/src.onnx", dir + "/src.onnx");
  ASSERT_FALSE(r.ok());
  EXPECT_HAS(r.error().message, "overwrite the source");
  EXPECT_EQ(sarai::test::read_file(dir + "/src.onnx"), sarai::test::read_file(src));
}

// ConvertOptions::progress: called with growing byte counts; returning
// false stops the conversion with nothing written.
TEST(PublicApi, ConvertProgressCanStopIt) {
  const std::string dir = sarai::test::temp_dir("api_convert_stop");
  const std::string src = fixture("whisper_tiny_encoder.onnx");
  for (const std::string& out : {dir + "/w.sarai", dir + "/w.onnx"}) {
    SCOPED_TRACE(out);
    std::vector<std::pair<uint64_t, uint64_t>> calls;
    sarai_rt::ConvertOptions o;
    o.progress = [&](uint64_t done, uint64_t total) {
      calls.emplace_back(done, total);
      return true;
    };
    auto r = sarai_rt::convert(src, out, o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_GE(calls.size(), 2u);
    for (size_t i = 0; i < calls.size(); ++i) {
      EXPECT_LE(calls[i].first, calls[i].second);
      if (i > 0) {
        EXPECT_GE(calls[i].first, calls[i - 1].first);
      }
    }
    std::filesystem::remove(out);
    std::filesystem::remove(out + ".data");  // the ONNX export's weights
    int seen = 0;
    o.progress = [&](uint64_t, uint64_t) { return ++seen < 2; };
    r = sarai_rt::convert(src, out, o);
    ASSERT_FALSE(r.ok());
    EXPECT_HAS(r.error().message, "interrupted");
    EXPECT_EQ(seen, 2);  // not called again once it said stop
    EXPECT_FALSE(std::filesystem::exists(out));
    EXPECT_FALSE(std::filesystem::exists(out + ".data"));
    for (const auto& e : std::filesystem::directory_iterator(dir))
      EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
  }
}
