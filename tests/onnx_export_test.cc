// Tests for quantizer/onnx_export.h (`sarai-rt convert --to onnx`): the
// written graph (op types, tensor dtypes and shapes, external data layout),
// the quantized weights (within half a step of the originals, per channel),
// the outputs (the exported model run by sarai-rt's own reference kernels,
// cosine >= 0.999 against the FP32 model; tests/ort/check_onnx_export.sh does
// the same in ONNX Runtime), the weight encodings (u8 default, s8, s7),
// atomic writing and every error message.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/onnx_loader.h"
#include "quantizer/onnx_export.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

namespace fs = std::filesystem;
using quant::ConvertOptions;
using quant::export_quantized_onnx;
using quant::OnnxExportOptions;
using quant::OnnxExportSummary;
using quant::OnnxWeights;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

using test::fixture;

// Files in `dir` (names only), sorted.
std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

::testing::AssertionResult no_temp_files(const std::string& dir) {
  for (const std::string& f : listing(dir))
    if (f.find(".tmp") != std::string::npos) return ::testing::AssertionFailure() << "temp file left: " << dir << "/" << f;
  return ::testing::AssertionSuccess();
}

onnx::ModelProto parse(const std::string& path) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(test::read_file(path))) << path;
  return m;
}

std::map<std::string, int> op_histogram(const onnx::ModelProto& m) {
  std::map<std::string, int> h;
  for (const auto& n : m.graph().node()) h[n.op_type()]++;
  return h;
}

const onnx::TensorProto* find_initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

// Every external tensor points into OUT.data at a 4096-aligned offset inside
// the file; returns how many there are.
int check_external_data(const onnx::ModelProto& m, const std::string& out) {
  const std::string data = out + ".data";
  EXPECT_TRUE(fs::exists(data)) << data;
  const uint64_t size = fs::exists(data) ? fs::file_size(data) : 0;
  int n = 0;
  for (const auto& t : m.graph().initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) {
      EXPECT_LT(t.raw_data().size(), 1024u) << t.name() << " is inline but not small";
      continue;
    }
    std::map<std::string, std::string> kv;
    for (const auto& e : t.external_data()) kv[e.key()] = e.value();
    EXPECT_EQ(kv["location"], fs::path(data).filename().string()) << t.name();
    const uint64_t offset = std::stoull(kv["offset"]), length = std::stoull(kv["length"]);
    EXPECT_EQ(offset % 4096, 0u) << t.name();
    EXPECT_LE(offset + length, size) << t.name();
    ++n;
  }
  return n;
}

// The op type of the first node of `g` that reads value v.
std::string reader_of(const Graph& g, int v) {
  for (const Node& n : g.nodes)
    if (std::find(n.inputs.begin(), n.inputs.end(), v) != n.inputs.end()) return n.op_type;
  return "";
}

// For every "<w>.q" in the exported model: the original weight <w> of the
// source, dequantized with "<w>.scale", is within half a step per element,
// which checks the channel axis of every scale. The scale tensor is shaped
// for its op: ConvInteger's broadcasts over the output ([1, M, 1...], the
// channel is W's axis 0); MatMulInteger's and ConvTranspose's over the weight
// ([N]; [1, M, 1...] or [C, M/g, 1...]). A 2-D q whose shape differs from
// W's is a Gemm transB = 1 weight stored transposed. `factor`: a Gemm's
// alpha, folded into its weight's scales. A uint8 q (the u8 encoding) is
// read with its zero point, the scalar "sarai.weight_zero_point" = 128;
// `levels`: the largest |q| allowed for an int8 q (127, or 63 for s7's
// MatMul weights); a uint8 q spans 127 on either side of its zero point.
void check_dequantized(const Model& src, const Model& out, int expected_weights,
                       const std::map<std::string, float>& factor = {}, int levels = 127) {
  int checked = 0;
  for (const Value& v : out.graph.values) {
    if (!v.is_initializer || v.name.size() < 3 || v.name.substr(v.name.size() - 2) != ".q") continue;
    const std::string wname = v.name.substr(0, v.name.size() - 2);
    const int wi = src.graph.find_value(wname), si = out.graph.find_value(wname + ".scale");
    ASSERT_NE(wi, kNoValue) << wname;
    ASSERT_NE(si, kNoValue) << wname << ".scale";
    const Tensor& w = src.graph.values[static_cast<size_t>(wi)].initializer;
    const Tensor& q = v.initializer;
    const Tensor& s = out.graph.values[static_cast<size_t>(si)].initializer;
    ASSERT_TRUE(q.dtype() == DType::kInt8 || q.dtype() == DType::kUInt8) << v.name;
    ASSERT_EQ(q.numel(), w.numel()) << v.name;
    int zero_point = 0;
    if (q.dtype() == DType::kUInt8) {
      const int zi = out.graph.find_value("sarai.weight_zero_point");
      ASSERT_NE(zi, kNoValue) << v.name << " is uint8 but the model has no weight zero point";
      const Tensor& z = out.graph.values[static_cast<size_t>(zi)].initializer;
      ASSERT_EQ(z.dtype(), DType::kUInt8);
      ASSERT_EQ(z.rank(), 0);
      zero_point = z.data<uint8_t>()[0];
      EXPECT_EQ(zero_point, 128);
    }
    // q as the signed value it stands for.
    auto qval = [&](int64_t i) {
      return q.dtype() == DType::kUInt8 ? int{q.data<uint8_t>()[i]} - zero_point : int{q.data<int8_t>()[i]};
    };
    const float* wf = w.data<float>();
    const float* sd = s.data<float>();
    const Shape& ws = w.shape();
    const Shape& qs = q.shape();
    const Shape& ss = s.shape();
    const bool transposed = ws.size() == 2 && qs != ws;  // Gemm transB = 1: [N, K] stored as [K, N]
    const bool conv = reader_of(out.graph, out.graph.find_value(v.name)) == "ConvInteger";
    for (int64_t i = 0; i < w.numel(); ++i) {
      // Index of element i in q, and of its scale: the scale tensor
      // broadcasts against q's shape (or against W for the transposed case).
      int64_t qi = i;
      if (transposed) qi = (i % ws[1]) * ws[0] + i / ws[1];
      int64_t si_flat = 0, stride_q = 1, stride_s = 1;
      const size_t r = qs.size(), rs = ss.size();
      for (size_t d = 0; d < r; ++d) {
        const size_t ad = r - 1 - d;
        const int64_t coord = (qi / stride_q) % qs[ad];
        stride_q *= qs[ad];
        if (d < rs) {
          const int64_t sdim = ss[rs - 1 - d];
          if (sdim != 1) si_flat += coord * stride_s;
          stride_s *= sdim;
        }
      }
      if (conv) si_flat = s.numel() == 1 ? 0 : qi / (q.numel() / qs[0]);
      const float f = factor.count(wname) ? factor.at(wname) : 1.f;
      const float scale = sd[si_flat] / f;
      const int qv = qval(qi);
      const float err = std::fabs(static_cast<float>(qv) * scale - wf[i]);
      if (!(err <= scale * 0.5f * 1.0001f + 1e-12f) || std::abs(qv) > (zero_point ? 127 : levels)) {
        ADD_FAILURE() << v.name << " element " << i << ": w " << wf[i] << ", q " << qv << ", scale " << scale
                      << ", levels " << levels;
        return;
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, expected_weights);
}

using test::cosine;

std::vector<NamedTensor> run_model(const std::string& path, const std::vector<NamedTensor>& in) {
  auto m = load_onnx(path);
  EXPECT_TRUE(m.has_value()) << m.message();
  if (!m) return {};
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(*m, table, SessionOptions{1});
  EXPECT_TRUE(s.has_value()) << s.message();
  if (!s) return {};
  auto out = (*s)->run(in);
  EXPECT_TRUE(out.has_value()) << out.message();
  return out ? *out : std::vector<NamedTensor>{};
}

// Exports `src` into dir/quantized.onnx; the summary, or a failed test.
Expected<OnnxExportSummary> export_to(const std::string& src, const std::string& out, const ConvertOptions& opt = {},
                                      const OnnxExportOptions& onnx = {}) {
  auto m = load_onnx(src);
  if (!m) return m.status();
  return export_quantized_onnx(**m, out, opt, onnx);
}

// measured_cos: the worst output's cosine when the gate was set (test_util.h).
void expect_close_outputs(const std::string& fp32, const std::string& int8, const std::vector<NamedTensor>& in,
                          double measured_cos) {
  auto a = run_model(fp32, in), b = run_model(int8, in);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  bool any_differs = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    test::expect_cosine_near_measured(cosine(a[i].tensor, b[i].tensor), measured_cos,
                                      fs::path(int8).filename().string() + " " + a[i].name);
    any_differs |= !test::tensors_equal(a[i].tensor, b[i].tensor);
  }
  EXPECT_TRUE(any_differs) << "identical outputs: was anything quantized?";
}

// ---- the fixtures

TEST(OnnxExport, WhisperTinyEncoder) {
  const std::string dir = test::temp_dir("whisper"), out = dir + "/quantized.onnx";
  const std::string src = fixture("whisper_tiny_encoder.onnx");
  std::vector<std::pair<uint64_t, uint64_t>> progress;
  ConvertOptions opt;
  opt.progress = [&](uint64_t done, uint64_t total) { progress.emplace_back(done, total); };
  opt.command_line = "convert --to onnx";
  auto s = export_to(src, out, opt);
  ASSERT_TRUE(s.has_value()) << s.message();
  EXPECT_EQ(s->quantized, 14);  // 2 Conv + 2 x (q, k, v, out, fc1, fc2)
  EXPECT_EQ(s->kept_fp32, 0);
  EXPECT_EQ(s->bytes_in, fs::file_size(src));
  EXPECT_EQ(s->bytes_out, fs::file_size(out) + fs::file_size(out + ".data"));
  EXPECT_LT(s->bytes_out, s->bytes_in * 6 / 10);
  ASSERT_FALSE(progress.empty());
  EXPECT_EQ(progress.back().first, progress.back().second);
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"quantized.onnx", "quantized.onnx.data"}));

  const onnx::ModelProto m = parse(out);
  EXPECT_EQ(m.producer_name(), "sarai-rt");
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).version(), 17);
  auto h = op_histogram(m);
  EXPECT_EQ(h["MatMulInteger"], 12);
  EXPECT_EQ(h["ConvInteger"], 2);
  EXPECT_EQ(h["Conv"], 0);
  // One DynamicQuantizeLinear per quantized activation: q, k and v share one.
  EXPECT_EQ(h["DynamicQuantizeLinear"], 2 + 2 * 4);
  EXPECT_EQ(h["MatMul"], 4);  // the attention products (no constant weight) stay
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "MatMul") continue;
    for (const auto& in : n.input()) EXPECT_EQ(find_initializer(m, in), nullptr) << n.name() << " reads " << in;
  }
  const onnx::TensorProto* q = find_initializer(m, "onnx::MatMul_251.q");  // fc1 of block 0: [128, 512]
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->data_type(), onnx::TensorProto::UINT8);  // the default encoding, u8 with zero point 128
  EXPECT_EQ(std::vector<int64_t>(q->dims().begin(), q->dims().end()), (std::vector<int64_t>{128, 512}));
  const onnx::TensorProto* sc = find_initializer(m, "onnx::MatMul_251.scale");
  ASSERT_NE(sc, nullptr);
  EXPECT_EQ(sc->data_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(std::vector<int64_t>(sc->dims().begin(), sc->dims().end()), (std::vector<int64_t>{512}));
  const onnx::TensorProto* cs = find_initializer(m, "conv1.weight.scale");
  ASSERT_NE(cs, nullptr);
  EXPECT_EQ(std::vector<int64_t>(cs->dims().begin(), cs->dims().end()), (std::vector<int64_t>{1, 128, 1}));
  EXPECT_EQ(find_initializer(m, "onnx::MatMul_251"), nullptr) << "the FP32 original is dropped";
  EXPECT_EQ(find_initializer(m, "conv1.bias"), nullptr) << "read only as conv1.bias.bcast";
  EXPECT_NE(find_initializer(m, "conv1.bias.bcast"), nullptr);
  EXPECT_GE(check_external_data(m, out), 14);

  auto src_model = load_onnx(src);
  auto out_model = load_onnx(out);
  ASSERT_TRUE(src_model.has_value() && out_model.has_value()) << out_model.message();
  check_dequantized(**src_model, **out_model, 14);
  expect_close_outputs(src, out, {{"mel", test::random_tensor({1, 80, 64}, 7, -2.f, 2.f)}}, 0.999922);
}

TEST(OnnxExport, StaticRangesAreRefused) {
  const std::string dir = test::temp_dir("export_static");
  ConvertOptions opt;
  opt.activation_ranges["x"] = {-1.f, 1.f};
  auto r = export_to(test::test_setting("SARAI_SOURCE_DIR") + "/tests/fixtures/small_cnn.onnx", dir + "/q.onnx", opt);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.message(), dir + "/q.onnx: static activation ranges are written to .sarai blobs only; the ONNX export "
                               "quantizes activations dynamically (DynamicQuantizeLinear)");
  EXPECT_FALSE(fs::exists(dir + "/q.onnx"));
}

TEST(OnnxExport, SmallCnn) {
  const std::string dir = test::temp_dir("cnn"), out = dir + "/cnn_int8.onnx";
  const std::string src = fixture("small_cnn.onnx");
  auto s = export_to(src, out);
  ASSERT_TRUE(s.has_value()) << s.message();
  EXPECT_EQ(s->quantized, 8);
  EXPECT_TRUE(no_temp_files(dir));
  const onnx::ModelProto m = parse(out);
  auto h = op_histogram(m);
  EXPECT_EQ(h["ConvInteger"], 8);  // including the depthwise one (group 16)
  EXPECT_EQ(h["Conv"], 0);
  EXPECT_EQ(h["DynamicQuantizeLinear"], 8);
  EXPECT_EQ(h["BatchNormalization"], 1);  // everything else as it was
  EXPECT_EQ(h["Resize"], 2);
  int grouped = 0;
  for (const auto& n : m.graph().node())
    for (const auto& a : n.attribute())
      if (n.op_type() == "ConvInteger" && a.name() == "group" && a.i() == 16) ++grouped;
  EXPECT_EQ(grouped, 1);
  check_external_data(m, out);
  auto src_model = load_onnx(src);
  auto out_model = load_onnx(out);
  ASSERT_TRUE(src_model.has_value() && out_model.has_value()) << out_model.message();
  check_dequantized(**src_model, **out_model, 8);
  expect_close_outputs(src, out, {{"image", test::random_tensor({1, 3, 32, 48}, 3, 0.f, 1.f)}}, 0.999978);
}

// ---- synthetic models: Gemm (transB, alpha, beta), grouped ConvTranspose,
// shared weights, options

onnx::TensorProto* add_init(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims,
                            uint32_t seed, float lo = -1.f, float hi = 1.f) {
  Tensor t = test::random_tensor(dims, seed, lo, hi);
  auto* p = g->add_initializer();
  p->set_name(name);
  p->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) p->add_dims(d);
  p->set_raw_data(t.raw(), t.nbytes());
  return p;
}

void add_io(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, const std::string& name,
                          std::vector<std::string> in, std::vector<std::string> out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

void set_int(onnx::NodeProto* n, const std::string& k, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void set_float(onnx::NodeProto* n, const std::string& k, float v) {
  auto* a = n->add_attribute();
  a->set_name(k);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

// x[3, 32] -> Gemm(W[16, 32], C[16], transB=1, alpha 0.5, beta 2) -> y1 [3, 16]
// x -> MatMul(S[32, 24]) -> y2 ; x -> MatMul(S) -> y3 ; Add(S, S) -> y4 (S shared, read FP32 too)
// z[1, 4, 5] -> ConvTranspose(T[4, 6, 3], B[6]) -> y5 [1, 6, 7]
// z -> ConvTranspose(U[4, 3, 3], group 2) -> y6 [1, 6, 7]  (per-channel: kept FP32 by the plan)
onnx::ModelProto synthetic_model(int64_t opset = 17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("synthetic");
  add_io(g->add_input(), "x", {3, 32});
  add_io(g->add_input(), "z", {1, 4, 5});
  add_init(g, "W", {16, 32}, 1);
  add_init(g, "C", {16}, 2);
  add_init(g, "S", {32, 24}, 3);
  add_init(g, "T", {4, 6, 3}, 4);
  add_init(g, "B", {6}, 5);
  add_init(g, "U", {4, 3, 3}, 6);
  auto* gemm = add_node(g, "Gemm", "gemm", {"x", "W", "C"}, {"y1"});
  set_int(gemm, "transB", 1);
  set_float(gemm, "alpha", 0.5f);
  set_float(gemm, "beta", 2.f);
  add_node(g, "MatMul", "mm_a", {"x", "S"}, {"y2"});
  add_node(g, "MatMul", "mm_b", {"x", "S"}, {"y3"});
  add_node(g, "Add", "add_s", {"S", "S"}, {"y4"});
  add_node(g, "ConvTranspose", "deconv", {"z", "T", "B"}, {"y5"});
  auto* ct = add_node(g, "ConvTranspose", "deconv_grouped", {"z", "U"}, {"y6"});
  set_int(ct, "group", 2);
  add_io(g->add_output(), "y1", {3, 16});
  add_io(g->add_output(), "y2", {3, 24});
  add_io(g->add_output(), "y3", {3, 24});
  add_io(g->add_output(), "y4", {32, 24});
  add_io(g->add_output(), "y5", {1, 6, 7});
  add_io(g->add_output(), "y6", {1, 6, 7});
  return m;
}

TEST(OnnxExport, GemmSharedWeightAndGroupedConvTranspose) {
  const std::string dir = test::temp_dir("synthetic"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  test::save(synthetic_model(), src);
  auto s = export_to(src, out);
  ASSERT_TRUE(s.has_value()) << s.message();
  EXPECT_EQ(s->quantized, 3);  // W, S (once, for both MatMuls), T
  EXPECT_EQ(s->kept_fp32, 1);  // U: grouped ConvTranspose needs --per-tensor
  const onnx::ModelProto m = parse(out);
  auto h = op_histogram(m);
  EXPECT_EQ(h["MatMulInteger"], 3);
  EXPECT_EQ(h["DynamicQuantizeLinear"], 1);  // x, shared by the Gemm and both MatMuls
  EXPECT_EQ(h["Gemm"], 0);
  EXPECT_EQ(h["ConvTranspose"], 2);
  // Gemm transB = 1: stored transposed as [K, N], alpha in the scales, beta in C.beta.
  const onnx::TensorProto* wq = find_initializer(m, "W.q");
  ASSERT_NE(wq, nullptr);
  EXPECT_EQ(std::vector<int64_t>(wq->dims().begin(), wq->dims().end()), (std::vector<int64_t>{32, 16}));
  EXPECT_EQ(find_initializer(m, "W"), nullptr);
  EXPECT_EQ(find_initializer(m, "C"), nullptr);
  ASSERT_NE(find_initializer(m, "C.beta"), nullptr);
  // S is also read by the Add: both forms are there.
  EXPECT_NE(find_initializer(m, "S"), nullptr);
  EXPECT_NE(find_initializer(m, "S.q"), nullptr);
  // ConvTranspose: int8 weights in ONNX's shape, a [1, M, 1] scale table
  // (channel axis 1), dequantized by Cast + Mul in front of the original op.
  const onnx::TensorProto* tq = find_initializer(m, "T.q");
  ASSERT_NE(tq, nullptr);
  EXPECT_EQ(tq->data_type(), onnx::TensorProto::INT8);
  EXPECT_EQ(std::vector<int64_t>(tq->dims().begin(), tq->dims().end()), (std::vector<int64_t>{4, 6, 3}));
  const onnx::TensorProto* ts = find_initializer(m, "T.scale");
  ASSERT_NE(ts, nullptr);
  EXPECT_EQ(std::vector<int64_t>(ts->dims().begin(), ts->dims().end()), (std::vector<int64_t>{1, 6, 1}));
  EXPECT_EQ(find_initializer(m, "T"), nullptr);
  EXPECT_NE(find_initializer(m, "U"), nullptr);
  EXPECT_EQ(find_initializer(m, "U.q"), nullptr);

  auto src_model = load_onnx(src);
  auto out_model = load_onnx(out);
  ASSERT_TRUE(src_model.has_value() && out_model.has_value()) << out_model.message();
  // Values: C.beta = 2 * C; W.scale carries alpha = 0.5.
  const Graph& og = (*out_model)->graph;
  const Tensor& cb = og.values[static_cast<size_t>(og.find_value("C.beta"))].initializer;
  const Tensor& c = (*src_model)->graph.values[static_cast<size_t>((*src_model)->graph.find_value("C"))].initializer;
  for (int64_t i = 0; i < 16; ++i) EXPECT_EQ(cb.data<float>()[i], 2.f * c.data<float>()[i]);
  const Tensor& w = (*src_model)->graph.values[static_cast<size_t>((*src_model)->graph.find_value("W"))].initializer;
  const Tensor& wsc = og.values[static_cast<size_t>(og.find_value("W.scale"))].initializer;
  for (int64_t n = 0; n < 16; ++n) {
    float amax = 0;
    for (int64_t k = 0; k < 32; ++k) amax = std::max(amax, std::fabs(w.data<float>()[n * 32 + k]));
    EXPECT_FLOAT_EQ(wsc.data<float>()[n], amax / 127.f * 0.5f) << "channel " << n;
  }
  check_dequantized(**src_model, **out_model, 3, {{"W", 0.5f}});

  expect_close_outputs(src, out, {{"x", test::random_tensor({3, 32}, 11)}, {"z", test::random_tensor({1, 4, 5}, 12)}},
                       0.999985);
}

TEST(OnnxExport, KeepFp32MinElementsAndPerTensor) {
  const std::string dir = test::temp_dir("options"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  test::save(synthetic_model(), src);
  ConvertOptions opt;
  opt.keep_fp32 = {"gem?"};   // by node name
  opt.min_elements = 40;      // U has 36 elements
  opt.per_tensor = true;
  auto s = export_to(src, out, opt);
  ASSERT_TRUE(s.has_value()) << s.message();
  EXPECT_EQ(s->quantized, 2);  // S, T
  EXPECT_EQ(s->kept_fp32, 2);  // W, U
  const onnx::ModelProto m = parse(out);
  auto h = op_histogram(m);
  EXPECT_EQ(h["Gemm"], 1);
  EXPECT_EQ(h["MatMulInteger"], 2);
  EXPECT_NE(find_initializer(m, "W"), nullptr);
  EXPECT_NE(find_initializer(m, "U"), nullptr);
  EXPECT_EQ(find_initializer(m, "U.q"), nullptr);
  for (const char* name : {"S.scale", "T.scale"}) {
    const onnx::TensorProto* sc = find_initializer(m, name);
    ASSERT_NE(sc, nullptr) << name;
    EXPECT_EQ(std::vector<int64_t>(sc->dims().begin(), sc->dims().end()), (std::vector<int64_t>{1})) << name;
  }
  auto src_model = load_onnx(src);
  auto out_model = load_onnx(out);
  ASSERT_TRUE(src_model.has_value() && out_model.has_value()) << out_model.message();
  check_dequantized(**src_model, **out_model, 2);
  expect_close_outputs(src, out, {{"x", test::random_tensor({3, 32}, 11)}, {"z", test::random_tensor({1, 4, 5}, 12)}},
                       0.999989);
}

TEST(OnnxExport, OldOpsetIsRaisedTo11) {
  const std::string dir = test::temp_dir("opset9"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  onnx::ModelProto model;
  model.set_ir_version(4);
  model.add_opset_import()->set_version(9);
  auto* g = model.mutable_graph();
  add_io(g->add_input(), "x", {3, 32});
  add_init(g, "S", {32, 24}, 3);
  add_node(g, "MatMul", "mm", {"x", "S"}, {"y"});
  add_io(g->add_output(), "y", {3, 24});
  test::save(model, src);
  auto s = export_to(src, out);
  ASSERT_TRUE(s.has_value()) << s.message();
  const onnx::ModelProto m = parse(out);
  ASSERT_EQ(m.opset_import_size(), 1);
  EXPECT_EQ(m.opset_import(0).version(), 11);
  EXPECT_GE(m.ir_version(), 7);
  expect_close_outputs(src, out, {{"x", test::random_tensor({3, 32}, 11)}}, 0.999985);
}

// ---- weight encodings (quantizer/onnx_export.h): u8 (default), s8, s7

// The integer op nodes (MatMulInteger, ConvInteger) of m.
std::vector<const onnx::NodeProto*> integer_nodes(const onnx::ModelProto& m) {
  std::vector<const onnx::NodeProto*> r;
  for (const auto& n : m.graph().node())
    if (n.op_type() == "MatMulInteger" || n.op_type() == "ConvInteger") r.push_back(&n);
  return r;
}

std::string metadata(const onnx::ModelProto& m, const std::string& key) {
  for (const auto& p : m.metadata_props())
    if (p.key() == key) return p.value();
  return "";
}

TEST(OnnxExport, WeightEncodingsOnWhisperTiny) {
  const std::string dir = test::temp_dir("encodings"), src = fixture("whisper_tiny_encoder.onnx");
  std::map<OnnxWeights, std::string> out;
  for (OnnxWeights w : {OnnxWeights::kU8, OnnxWeights::kS8, OnnxWeights::kS7}) {
    out[w] = dir + "/" + quant::onnx_weights_name(w) + ".onnx";
    OnnxExportOptions o;
    o.weights = w;
    auto s = export_to(src, out[w], {}, o);
    ASSERT_TRUE(s.has_value()) << s.message();
    EXPECT_EQ(s->quantized, 14);
  }
  const onnx::ModelProto u8 = parse(out[OnnxWeights::kU8]), s8 = parse(out[OnnxWeights::kS8]),
                         s7 = parse(out[OnnxWeights::kS7]);
  EXPECT_EQ(metadata(u8, "sarai.onnx_weights"), "u8");
  EXPECT_EQ(metadata(s8, "sarai.onnx_weights"), "s8");
  EXPECT_EQ(metadata(s7, "sarai.onnx_weights"), "s7");

  // u8: every integer op reads the one scalar uint8 zero point 128 as its
  // 4th input; s8 and s7: only the ConvIntegers (u8 under every choice),
  // the MatMulIntegers have no weight zero point (0).
  for (const onnx::ModelProto* m : {&u8, &s8, &s7}) {
    const onnx::TensorProto* zp = find_initializer(*m, "sarai.weight_zero_point");
    ASSERT_NE(zp, nullptr);
    EXPECT_EQ(zp->data_type(), onnx::TensorProto::UINT8);
    EXPECT_EQ(zp->dims_size(), 0);
    EXPECT_EQ(zp->raw_data(), std::string(1, '\x80'));
    ASSERT_EQ(integer_nodes(*m).size(), 14u);
    for (const onnx::NodeProto* n : integer_nodes(*m)) {
      const bool zero_point = m == &u8 || n->op_type() == "ConvInteger";
      ASSERT_EQ(n->input_size(), zero_point ? 4 : 3) << n->name();
      if (zero_point) {
        EXPECT_EQ(n->input(3), "sarai.weight_zero_point") << n->name();
      }
      const onnx::TensorProto* q = find_initializer(*m, n->input(1));
      ASSERT_NE(q, nullptr) << n->input(1);
      EXPECT_EQ(q->data_type(), zero_point ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8) << n->input(1);
    }
  }

  // The weights themselves: u8 = s8 + 128 byte for byte on the MatMuls (the
  // same integers after the zero point), the same bytes on the Convs, the
  // same scales; s7: the MatMuls' in [-63, 63] with the s8 scales times
  // 127 / 63, the Convs' as u8; each weight within half of its step
  // (check_dequantized).
  auto s8_model = load_onnx(out[OnnxWeights::kS8]), u8_model = load_onnx(out[OnnxWeights::kU8]),
       s7_model = load_onnx(out[OnnxWeights::kS7]), src_model = load_onnx(src);
  ASSERT_TRUE(s8_model.has_value() && u8_model.has_value() && s7_model.has_value() && src_model.has_value());
  int compared = 0;
  for (const Value& v : (*s8_model)->graph.values) {
    if (!v.is_initializer || v.name.size() < 3 || v.name.substr(v.name.size() - 2) != ".q") continue;
    const std::string base = v.name.substr(0, v.name.size() - 2);
    auto tensor = [&](const Model& m, const std::string& name) -> const Tensor& {
      const int i = m.graph.find_value(name);
      EXPECT_NE(i, kNoValue) << name;
      return m.graph.values[static_cast<size_t>(i == kNoValue ? m.graph.find_value(v.name) : i)].initializer;
    };
    const Tensor& qu = tensor(**u8_model, v.name);
    const Tensor& q7 = tensor(**s7_model, v.name);
    const bool conv = v.initializer.dtype() == DType::kUInt8;  // a ConvInteger's weight
    ASSERT_EQ(qu.dtype(), DType::kUInt8) << v.name;
    ASSERT_EQ(q7.dtype(), conv ? DType::kUInt8 : DType::kInt8) << v.name;
    ASSERT_EQ(qu.shape(), v.initializer.shape()) << v.name;
    ASSERT_EQ(q7.shape(), v.initializer.shape()) << v.name;
    for (int64_t i = 0; i < qu.numel(); ++i) {
      const int s8_value = conv ? int{v.initializer.data<uint8_t>()[i]} - 128 : int{v.initializer.data<int8_t>()[i]};
      ASSERT_EQ(int{qu.data<uint8_t>()[i]}, s8_value + 128) << v.name << " element " << i;
      if (conv) {
        ASSERT_EQ(q7.data<uint8_t>()[i], qu.data<uint8_t>()[i]) << v.name << " element " << i;
      }
    }
    const Tensor& sc8 = tensor(**s8_model, base + ".scale");
    const Tensor& scu = tensor(**u8_model, base + ".scale");
    const Tensor& sc7 = tensor(**s7_model, base + ".scale");
    ASSERT_EQ(sc8.numel(), scu.numel());
    ASSERT_EQ(sc8.numel(), sc7.numel());
    for (int64_t c = 0; c < sc8.numel(); ++c) {
      EXPECT_EQ(scu.data<float>()[c], sc8.data<float>()[c]) << base << " channel " << c;
      EXPECT_EQ(sc7.data<float>()[c], conv ? sc8.data<float>()[c] : sc8.data<float>()[c] * (127.f / 63.f))
          << base << " channel " << c;
    }
    ++compared;
  }
  EXPECT_EQ(compared, 14);
  check_dequantized(**src_model, **s7_model, 14, {}, /*levels=*/63);

  // Run by sarai-rt's reference integer kernels (exact, like MLAS's u8 x u8
  // and VNNI paths): u8 and s8 give the same outputs bit for bit; s7 is
  // within its coarser step of FP32.
  const std::vector<NamedTensor> in = {{"mel", test::random_tensor({1, 80, 64}, 7, -2.f, 2.f)}};
  auto a = run_model(out[OnnxWeights::kU8], in), b = run_model(out[OnnxWeights::kS8], in);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(a[0].tensor, b[0].tensor)) << "u8 and s8 exports differ";
  expect_close_outputs(src, out[OnnxWeights::kS7], in, 0.999858);  // u8 and s8: 0.999922 (WhisperTinyEncoder)
}

// ConvTranspose weights are dequantized in the graph (Cast + Mul) under
// every encoding, so they keep their full 8 bits as int8; the Gemm and the
// MatMuls take the chosen encoding.
TEST(OnnxExport, WeightEncodingsLeaveConvTransposeInt8) {
  const std::string dir = test::temp_dir("encodings_synthetic"), src = dir + "/model.onnx";
  test::save(synthetic_model(), src);
  for (OnnxWeights w : {OnnxWeights::kU8, OnnxWeights::kS7}) {
    const std::string out = dir + "/" + quant::onnx_weights_name(w) + ".onnx";
    OnnxExportOptions o;
    o.weights = w;
    auto s = export_to(src, out, {}, o);
    ASSERT_TRUE(s.has_value()) << s.message();
    const onnx::ModelProto m = parse(out);
    const onnx::TensorProto* tq = find_initializer(m, "T.q");
    ASSERT_NE(tq, nullptr);
    EXPECT_EQ(tq->data_type(), onnx::TensorProto::INT8) << quant::onnx_weights_name(w);
    int max_abs = 0;
    for (char c : tq->raw_data()) max_abs = std::max(max_abs, std::abs(int{static_cast<int8_t>(c)}));
    EXPECT_EQ(max_abs, 127) << quant::onnx_weights_name(w);
    for (const char* name : {"W.q", "S.q"}) {
      const onnx::TensorProto* q = find_initializer(m, name);
      ASSERT_NE(q, nullptr) << name;
      EXPECT_EQ(q->data_type(), w == OnnxWeights::kU8 ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8) << name;
    }
    auto src_model = load_onnx(src);
    auto out_model = load_onnx(out);
    ASSERT_TRUE(src_model.has_value() && out_model.has_value()) << out_model.message();
    // W carries the Gemm's alpha; T (ConvTranspose) is checked at 127 levels
    // like the rest, which is why it is not part of this call for s7.
    if (w == OnnxWeights::kU8) check_dequantized(**src_model, **out_model, 3, {{"W", 0.5f}});
    expect_close_outputs(src, out,
                         {{"x", test::random_tensor({3, 32}, 11)}, {"z", test::random_tensor({1, 4, 5}, 12)}},
                         w == OnnxWeights::kU8 ? 0.999985 : 0.999973);
  }
}

TEST(OnnxExportErrors, UnknownWeightEncoding) {
  for (const char* ok : {"u8", "s8", "s7"}) {
    auto w = quant::parse_onnx_weights(ok);
    ASSERT_TRUE(w.has_value()) << ok;
    EXPECT_STREQ(quant::onnx_weights_name(*w), ok);
  }
  for (const char* bad : {"s9", "", "U8", "int8"}) {
    auto w = quant::parse_onnx_weights(bad);
    ASSERT_FALSE(w.has_value()) << bad;
    EXPECT_EQ(w.message(), std::string("--onnx-weights must be u8, s8 or s7, not '") + bad + "'");
  }
}

// ---- errors: one line naming the file / tensor / node; nothing left behind

TEST(OnnxExportErrors, OldOpsetWithAnOpThatChanged) {
  const std::string dir = test::temp_dir("opset9clip"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  onnx::ModelProto model;
  model.set_ir_version(4);
  model.add_opset_import()->set_version(9);
  auto* g = model.mutable_graph();
  add_io(g->add_input(), "x", {3, 32});
  add_init(g, "S", {32, 24}, 3);
  add_node(g, "MatMul", "mm", {"x", "S"}, {"t"});
  add_node(g, "Clip", "relu6", {"t"}, {"y"});
  add_io(g->add_output(), "y", {3, 24});
  test::save(model, src);
  auto s = export_to(src, out);
  ASSERT_FALSE(s.has_value());
  EXPECT_CONTAINS(s.message(), src + ": opset 9 model: quantized ONNX needs opset 11 (DynamicQuantizeLinear), but "
                                     "node 'relu6' (Clip) changed meaning by then; re-export the model with opset >= 11");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"model.onnx"});
}

TEST(OnnxExportErrors, NanWeight) {
  const std::string dir = test::temp_dir("nan"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  onnx::ModelProto model = synthetic_model();
  for (auto& t : *model.mutable_graph()->mutable_initializer())
    if (t.name() == "S") {
      float nan = std::nanf("");
      std::memcpy(&(*t.mutable_raw_data())[5 * 4], &nan, 4);
    }
  test::save(model, src);
  auto s = export_to(src, out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.message(), src + ": tensor 'S': element 5 is NaN; weights must be finite to quantize");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"model.onnx"});
}

TEST(OnnxExportErrors, InfiniteWeightInExternalData) {
  const std::string dir = test::temp_dir("inf"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  onnx::ModelProto model = synthetic_model();
  for (auto& t : *model.mutable_graph()->mutable_initializer())
    if (t.name() == "W") {
      float inf = -INFINITY;
      std::memcpy(&(*t.mutable_raw_data())[100 * 4], &inf, 4);
    }
  test::externalize(model, "W", dir, "weights.bin");
  test::save(model, src);
  auto s = export_to(src, out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.message(), src + ": tensor 'W': element 100 is infinite; weights must be finite to quantize");
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"model.onnx", "weights.bin"}));
}

TEST(OnnxExportErrors, RefusesToOverwriteTheSource) {
  const std::string dir = test::temp_dir("overwrite"), src = dir + "/model.onnx";
  onnx::ModelProto model = synthetic_model();
  test::externalize(model, "W", dir, "q.onnx.data");
  test::save(model, src);
  const std::string before = test::read_file(src);
  auto s = export_to(src, src);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.message(), src + ": refusing to overwrite the source model " + src);
  // Its external data file would be out + ".data".
  auto s2 = export_to(src, dir + "/q.onnx");
  ASSERT_FALSE(s2.has_value());
  EXPECT_EQ(s2.message(), dir + "/q.onnx: refusing to overwrite the source's external data file " + dir + "/q.onnx.data");
  EXPECT_EQ(test::read_file(src), before);
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"model.onnx", "q.onnx.data"}));
}

TEST(OnnxExportErrors, MissingOutputFolder) {
  const std::string dir = test::temp_dir("nofolder"), out = dir + "/no/such/dir/q.onnx";
  auto s = export_to(fixture("small_cnn.onnx"), out);
  ASSERT_FALSE(s.has_value());
  EXPECT_CONTAINS(s.message(), out + ".data: cannot create " + out + ".data.tmp-");
  EXPECT_CONTAINS(s.message(), ": No such file or directory");
  EXPECT_TRUE(listing(dir).empty());
}

TEST(OnnxExportErrors, CancelMidwayLeavesNothing) {
  const std::string dir = test::temp_dir("cancel"), out = dir + "/q.onnx";
  std::atomic<bool> cancel{false};
  int calls = 0;
  ConvertOptions opt;
  opt.cancel = &cancel;
  opt.progress = [&](uint64_t, uint64_t) {
    if (++calls == 5) cancel = true;
  };
  auto s = export_to(fixture("whisper_tiny_encoder.onnx"), out, opt);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.message(), out + ": interrupted; nothing was written");
  EXPECT_EQ(calls, 5);
  EXPECT_TRUE(listing(dir).empty());
}

TEST(OnnxExportErrors, ExistingOutputIsReplacedOnlyOnSuccess) {
  const std::string dir = test::temp_dir("replace"), out = dir + "/q.onnx";
  test::write_file(out, "old model");
  test::write_file(out + ".data", "old data");
  std::atomic<bool> cancel{true};
  ConvertOptions opt;
  opt.cancel = &cancel;
  ASSERT_FALSE(export_to(fixture("small_cnn.onnx"), out, opt).has_value());
  EXPECT_EQ(test::read_file(out), "old model");
  EXPECT_EQ(test::read_file(out + ".data"), "old data");
  auto s = export_to(fixture("small_cnn.onnx"), out);
  ASSERT_TRUE(s.has_value()) << s.message();
  EXPECT_EQ(parse(out).producer_name(), "sarai-rt");
  EXPECT_EQ(listing(dir), (std::vector<std::string>{"q.onnx", "q.onnx.data"}));
}

TEST(OnnxExportErrors, SubgraphAttribute) {
  const std::string dir = test::temp_dir("subgraph"), src = dir + "/model.onnx", out = dir + "/q.onnx";
  onnx::ModelProto model = synthetic_model();
  auto* g = model.mutable_graph();
  auto* n = add_node(g, "If", "branch", {"cond"}, {"y7"});
  auto* a = n->add_attribute();
  a->set_name("then_branch");
  a->set_type(onnx::AttributeProto::GRAPH);
  a->mutable_g()->set_name("then");
  auto* cond = g->add_input();
  cond->set_name("cond");
  cond->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::BOOL);
  test::save(model, src);
  auto s = export_to(src, out);
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.message(), src + ": node 'branch' (If): attribute 'then_branch' is a subgraph or of a type the "
                               "ONNX exporter cannot write");
  EXPECT_EQ(listing(dir), std::vector<std::string>{"model.onnx"});
}

}  // namespace
}  // namespace sarai
