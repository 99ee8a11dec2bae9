// Attention in INT8 (kernels/attention.cc, precision "int8" and
// "int8-per-tensor"): equal bit for bit to the scheme written out plainly
// below, independent of the thread count, close to float32, and in float32
// where the INT8 path cannot be right (NaN, inf). Also the session option and
// the blob metadata that choose it (runtime/fuse.h).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/vec_kernels.h"
#include "kernels/kernels.h"
#include "loader/onnx_loader.h"
#include "loader/blob_reader.h"
#include "quantizer/convert.h"
#include "quantizer/eval/eval.h"
#include "runtime/parallel.h"
#include "runtime/session.h"
#include "onnx_builder.h"
#include "test_util.h"

namespace sarai {
namespace {

Node attention_node(float divisor, const std::string& precision) {
  Node n = test::make_node("Attention", 3);
  n.attrs["divisor"] = test::attr_float(divisor);
  if (!precision.empty()) n.attrs["precision"] = test::attr_string(precision);
  return n;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

Tensor run_attention(const std::string& precision, const std::vector<Tensor>& in, float divisor, int threads = 1) {
  set_num_threads(threads);
  auto r = test::run_kernel(kernels::Attention, attention_node(divisor, precision), in, 17, threads);
  set_num_threads(1);
  EXPECT_TRUE(r.has_value()) << r.message();
  return r.has_value() ? (*r)[0] : Tensor();
}

// round_half_even(x / scale) clamped to [-127, 127]; 0 for scale 0.
int quant_s8(float x, float scale) {
  if (scale == 0.f) return 0;
  return static_cast<int>(std::min(127.f, std::max(-127.f, std::nearbyint(x / scale))));
}
// vec_kernels().quantize_u8 written out: saturate(round_half_even(x / scale) + zp).
int quant_u8(float x, float scale, int zp) {
  return static_cast<int>(std::min(255.f, std::max(0.f, std::nearbyint(x / scale) + static_cast<float>(zp))));
}
float amax(const float* x, int64_t n, int64_t stride = 1) {
  float m = 0.f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i * stride]));
  return m;
}

// The INT8 scheme of kernels/attention.cc written out for Q [B, T, d],
// KT [B, d, S], V [B, S, e] (no broadcasting), in the same float operations
// and order; softmax (and per row its u8 quantization) is the vector kernel
// both share.
Tensor reference(const Tensor& q, const Tensor& kt, const Tensor& v, float divisor, bool per_tensor) {
  const int64_t nb = q.dim(0), t = q.dim(1), d = q.dim(2), s = kt.dim(2), e = v.dim(2);
  Tensor o = Tensor::allocate(DType::kFloat32, {nb, t, e});
  const float qt = amax(q.data<float>(), q.numel()) / 127.f;
  const float kts = amax(kt.data<float>(), kt.numel()) / 127.f;
  const float vts = amax(v.data<float>(), v.numel()) / 127.f;
  for (int64_t b = 0; b < nb; ++b) {
    const float* Q = q.data<float>() + b * t * d;
    const float* K = kt.data<float>() + b * d * s;
    const float* V = v.data<float>() + b * s * e;
    std::vector<float> ks(s), vs(s);
    std::vector<int> k8(d * s), v8(s * e), kcomp(s, 0);
    for (int64_t j = 0; j < s; ++j) ks[j] = per_tensor ? kts : amax(K + j, d, s) / 127.f;
    for (int64_t r = 0; r < d; ++r)
      for (int64_t j = 0; j < s; ++j) kcomp[j] += k8[r * s + j] = quant_s8(K[r * s + j], ks[j]);
    for (int64_t r = 0; r < s; ++r) {
      vs[r] = per_tensor ? vts : amax(V + r * e, e) / 127.f;
      for (int64_t c = 0; c < e; ++c) v8[r * e + c] = quant_s8(V[r * e + c], vs[r]);
    }
    for (int64_t i = 0; i < t; ++i) {
      const float qs = per_tensor ? qt : amax(Q + i * d, d) / 127.f;
      std::vector<int> q8(d);
      for (int64_t r = 0; r < d; ++r) q8[r] = quant_u8(Q[i * d + r], qs == 0.f ? 1.f : qs, 128);
      const float rq = qs / divisor;
      const int64_t sq = int8::round_up(s, kernels::kSoftmaxU8Pad);
      std::vector<float> p(sq, 0.f);
      std::vector<int32_t> accs(s), comp(s);
      for (int64_t j = 0; j < s; ++j) {
        int32_t acc = 0;
        for (int64_t r = 0; r < d; ++r) acc += q8[r] * k8[r * s + j];
        accs[j] = acc;
        comp[j] = 128 * kcomp[j];
        float x = static_cast<float>(acc - comp[j]) * ks[j];
        p[j] = x + 0.f;  // the GEMM epilogue's absent bias
      }
      std::vector<int> p8(s);
      float ps;
      if (per_tensor) {
        for (int64_t j = 0; j < s; ++j) p[j] = p[j] * rq;
        kernels::vec_kernels().softmax_row(p.data(), p.data(), s);
        for (int64_t j = 0; j < s; ++j) p[j] = p[j] * vs[j];
        ps = vts / 255.f;
        for (int64_t j = 0; j < s; ++j) p8[j] = quant_u8(p[j], ps == 0.f ? 1.f : ps, 0);
      } else {
        // The scores u = a x + ln vs from the accumulators, softmax,
        // P' = P vs and its u8 quantization: the vector kernels tested on
        // their own in vec_kernels_test.
        std::vector<uint8_t> u(s);
        std::vector<float> lnw(sq, 0.f), invw(sq, 0.f);
        for (int64_t j = 0; j < s; ++j) {
          const float w = vs[j] == 0.f ? 1.f : vs[j];
          lnw[j] = std::log(w);
          invw[j] = 1.f / w;
        }
        const auto& vk = kernels::vec_kernels();
        std::vector<float> m(kernels::kScoresMaxLanes, -std::numeric_limits<float>::infinity());
        vk.attention_scores(accs.data(), s, 1, s, comp.data(), ks.data(), &rq, lnw.data(), p.data(), sq, m.data());
        ps = vk.softmax_u8_row(p.data(), s, *std::max_element(m.begin(), m.end()), invw.data(), u.data());
        for (int64_t j = 0; j < s; ++j) p8[j] = u[j];
      }
      for (int64_t c = 0; c < e; ++c) {
        int32_t acc = 0;
        for (int64_t j = 0; j < s; ++j) acc += p8[j] * v8[j * e + c];
        o.mutable_data<float>()[(b * t + i) * e + c] = (static_cast<float>(acc) * 1.f + 0.f) * ps;
      }
    }
  }
  return o;
}

struct Dims {
  int64_t b, t, s, d, e;
};

// Tails of every loop: T past the 32-row blocks and the 4-row tiles, S and e
// past the 16-column panels, d and S past the 4-deep k-groups.
const Dims kDims[] = {{1, 1, 1, 1, 1},   {2, 5, 17, 3, 7},    {1, 37, 45, 8, 5},
                      {2, 33, 100, 63, 17}, {1, 70, 300, 64, 64}, {3, 4, 16, 4, 16}};

TEST(AttentionInt8, EqualsThePlainSchemeBitForBit) {
  for (const bool per_tensor : {false, true})
    for (const Dims& z : kDims) {
      const Tensor q = test::random_tensor({z.b, z.t, z.d}, 1, -3.f, 3.f);
      const Tensor kt = test::random_tensor({z.b, z.d, z.s}, 2, -2.f, 2.f);
      const Tensor v = test::random_tensor({z.b, z.s, z.e}, 3);
      const float div = std::sqrt(static_cast<float>(z.d));
      const Tensor got = run_attention(per_tensor ? "int8-per-tensor" : "int8", {q, kt, v}, div);
      EXPECT_TRUE(test::tensors_equal(got, reference(q, kt, v, div, per_tensor)))
          << "T " << z.t << " S " << z.s << " d " << z.d << " e " << z.e << " per_tensor " << per_tensor;
    }
}

// Values at the ends of the ranges: each row's largest magnitude quantizes
// to ±127 (Q, K, V) and the largest probability to 255; all-zero rows of Q
// and V (scale 0) give the float result of zeros.
TEST(AttentionInt8, ExtremeAndZeroRows) {
  Tensor q = test::random_tensor({1, 9, 12}, 4, -1.f, 1.f);
  Tensor kt = test::random_tensor({1, 12, 21}, 5, -1.f, 1.f);
  Tensor v = test::random_tensor({1, 21, 18}, 6, -1.f, 1.f);
  float* pq = q.mutable_data<float>();
  for (int64_t i = 0; i < 12; ++i) pq[i] = 0.f;      // row 0 all zero
  pq[12] = 1e4f, pq[13] = -1e4f;                       // row 1: huge, sharp softmax
  float* pv = v.mutable_data<float>();
  for (int64_t c = 0; c < 18; ++c) pv[5 * 18 + c] = 0.f;  // V row 5 all zero
  for (int64_t c = 0; c < 18; ++c) pv[7 * 18 + c] = c % 2 ? 3e3f : -3e3f;
  for (const char* p : {"int8", "int8-per-tensor"}) {
    const Tensor got = run_attention(p, {q, kt, v}, 2.f);
    EXPECT_TRUE(test::tensors_equal(got, reference(q, kt, v, 2.f, std::string(p) == "int8-per-tensor"))) << p;
    const Tensor want = run_attention("fp32", {q, kt, v}, 2.f);
    for (int64_t i = 0; i < got.numel(); ++i) ASSERT_TRUE(std::isfinite(got.data<float>()[i])) << p << " " << i;
    // Per tensor, the huge rows take the whole range (0.878 here): what
    // per-row scales are for.
    if (std::string(p) == "int8") {
      EXPECT_GT(test::cosine(got, want), 0.999);
    }
  }
}

TEST(AttentionInt8, ResultsDoNotDependOnTheThreadCount) {
  const Tensor q = test::random_tensor({4, 100, 64}, 7, -3.f, 3.f);
  const Tensor kt = test::random_tensor({4, 64, 150}, 8, -3.f, 3.f);
  const Tensor v = test::random_tensor({4, 150, 40}, 9);
  for (const char* p : {"int8", "int8-per-tensor"}) {
    const Tensor one = run_attention(p, {q, kt, v}, 8.f, 1);
    EXPECT_TRUE(same_bits(one, run_attention(p, {q, kt, v}, 8.f, 2))) << p;
    EXPECT_TRUE(same_bits(one, run_attention(p, {q, kt, v}, 8.f, 3))) << p;
  }
}

// Broadcast batch dims take the same path: each entry equals the entry run alone.
TEST(AttentionInt8, BroadcastBatchEqualsEachEntryAlone) {
  const Tensor q = test::random_tensor({2, 3, 37, 8}, 1, -2.f, 2.f);
  const Tensor kt = test::random_tensor({1, 3, 8, 45}, 2, -2.f, 2.f);
  const Tensor v = test::random_tensor({3, 45, 5}, 3);
  const Tensor got = run_attention("int8", {q, kt, v}, 2.f);
  ASSERT_EQ(got.shape(), (Shape{2, 3, 37, 5}));
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t h = 0; h < 3; ++h) {
      Tensor qa = Tensor::allocate(DType::kFloat32, {1, 37, 8}), ka = Tensor::allocate(DType::kFloat32, {1, 8, 45}),
             va = Tensor::allocate(DType::kFloat32, {1, 45, 5});
      std::memcpy(qa.mutable_raw(), q.data<float>() + (a * 3 + h) * 37 * 8, qa.nbytes());
      std::memcpy(ka.mutable_raw(), kt.data<float>() + h * 8 * 45, ka.nbytes());
      std::memcpy(va.mutable_raw(), v.data<float>() + h * 45 * 5, va.nbytes());
      const Tensor one = reference(qa, ka, va, 2.f, false);
      EXPECT_EQ(std::memcmp(one.raw(), got.data<float>() + (a * 3 + h) * 37 * 5, one.nbytes()), 0) << a << " " << h;
    }
}

// Whisper-like statistics (d 64, divisor 8, T = S = 300): per-row scaling
// keeps cosine >= 0.999 against float32; per tensor is measured beside it.
TEST(AttentionInt8, CloseToFloat32) {
  Tensor q = test::random_tensor({6, 300, 64}, 21, -2.f, 2.f);
  Tensor kt = test::random_tensor({6, 64, 300}, 22, -2.f, 2.f);
  Tensor v = test::random_tensor({6, 300, 64}, 23, -1.f, 1.f);
  // Rows of very different sizes (what per-row scales are for).
  for (int64_t i = 0; i < 6 * 300; i += 7)
    for (int64_t c = 0; c < 64; ++c) q.mutable_data<float>()[i * 64 + c] *= 8.f, v.mutable_data<float>()[i * 64 + c] *= 10.f;
  const Tensor want = run_attention("fp32", {q, kt, v}, 8.f);
  const double row = test::cosine(run_attention("int8", {q, kt, v}, 8.f), want);
  const double tensor = test::cosine(run_attention("int8-per-tensor", {q, kt, v}, 8.f), want);
  EXPECT_GE(row, 0.999);
  std::printf("cosine vs float32: per row %.6f, per tensor %.6f\n", row, tensor);
  EXPECT_GT(row, tensor);
}

// A NaN in a Q row sends that row's block to float32 (the INT8 path would
// quantize it to 0); an inf in V sends the whole op there.
TEST(AttentionInt8, NonFiniteInputsRunInFloat32) {
  Tensor q = test::random_tensor({1, 70, 16}, 31);
  const Tensor kt = test::random_tensor({1, 16, 40}, 32);
  Tensor v = test::random_tensor({1, 40, 8}, 33);
  q.mutable_data<float>()[40 * 16 + 3] = std::numeric_limits<float>::quiet_NaN();  // row 40: block 32..63
  const Tensor got = run_attention("int8", {q, kt, v}, 4.f);
  const Tensor f32 = run_attention("fp32", {q, kt, v}, 4.f);
  const Tensor i8 = reference(q, kt, v, 4.f, false);
  const float* g = got.data<float>();
  EXPECT_TRUE(std::isnan(g[40 * 8]));
  EXPECT_EQ(std::memcmp(g, i8.data<float>(), 32 * 8 * sizeof(float)), 0);                  // block 0: INT8
  EXPECT_EQ(std::memcmp(g + 32 * 8, f32.data<float>() + 32 * 8, 32 * 8 * sizeof(float)), 0);  // block 1: float32
  v.mutable_data<float>()[5] = std::numeric_limits<float>::infinity();
  EXPECT_TRUE(same_bits(run_attention("int8", {q, kt, v}, 4.f), run_attention("fp32", {q, kt, v}, 4.f)));
}

TEST(AttentionInt8, UnknownPrecisionIsRefused) {
  const Tensor q = test::random_tensor({1, 4, 8}, 1);
  const Tensor kt = test::random_tensor({1, 8, 6}, 2);
  const Tensor v = test::random_tensor({1, 6, 3}, 3);
  EXPECT_HAS(test::run_error(kernels::Attention, attention_node(1.f, "int4"), {q, kt, v}),
             "attribute 'precision' is 'int4'; expected fp32, int8 or int8-per-tensor");
}

// q, kt, v -> MatMul -> Div(8) -> Softmax -> MatMul: the chain the fuser
// turns into Attention.
std::shared_ptr<Model> attention_chain() {
  auto m = std::make_shared<Model>();
  m->path = "chain";
  Graph& g = m->graph;
  g.opset = 17;
  for (const char* name : {"q", "kt", "v"}) test::add_input(g, name);
  int s = test::add_node(g, "MatMul", "", {g.inputs[0], g.inputs[1]}, "qk");
  s = test::add_node(g, "Div", "", {s, test::add_init(g, "eight", test::make_tensor<float>({}, {8.f}))}, "div");
  s = test::add_node(g, "Softmax", "", {s}, "softmax", {{"axis", test::attr_int(-1)}});
  s = test::add_node(g, "MatMul", "", {s, g.inputs[2]}, "out");
  g.outputs = {s};
  return m;
}

Tensor run_chain(std::shared_ptr<Model> m, SessionOptions o, const std::vector<Tensor>& in) {
  KernelTable table;
  register_kernels(table);
  o.num_threads = 1;
  auto s = Session::create(std::move(m), table, o);
  EXPECT_TRUE(s.has_value()) << s.message();
  if (!s.has_value()) return {};
  auto y = (*s)->run({{"q", in[0]}, {"kt", in[1]}, {"v", in[2]}});
  EXPECT_TRUE(y.has_value()) << y.message();
  return y.has_value() ? (*y)[0].tensor : Tensor();
}

// SessionOptions::attention picks the fused op's precision; kModel follows
// the model's "attention" metadata (float32 when absent).
TEST(AttentionInt8, SessionOptionAndModelMetadataChooseThePrecision) {
  const std::vector<Tensor> in = {test::random_tensor({2, 40, 64}, 1, -2.f, 2.f),
                                  test::random_tensor({2, 64, 50}, 2, -2.f, 2.f), test::random_tensor({2, 50, 16}, 3)};
  const Tensor f32 = run_attention("fp32", in, 8.f);
  const Tensor i8 = run_attention("int8", in, 8.f);
  const Tensor t8 = run_attention("int8-per-tensor", in, 8.f);
  ASSERT_FALSE(same_bits(f32, i8));
  SessionOptions o;
  EXPECT_TRUE(same_bits(run_chain(attention_chain(), o, in), f32));  // kModel, no metadata
  o.attention = AttentionPrecision::kInt8;
  EXPECT_TRUE(same_bits(run_chain(attention_chain(), o, in), i8));
  o.attention = AttentionPrecision::kInt8PerTensor;
  EXPECT_TRUE(same_bits(run_chain(attention_chain(), o, in), t8));
  auto m = attention_chain();
  m->metadata.emplace_back("attention", "int8");
  o.attention = AttentionPrecision::kModel;
  EXPECT_TRUE(same_bits(run_chain(m, o, in), i8));
  o.attention = AttentionPrecision::kFloat32;
  EXPECT_TRUE(same_bits(run_chain(m, o, in), f32));
}

TEST(AttentionInt8, UnknownMetadataValueIsRefused) {
  auto m = attention_chain();
  m->metadata.emplace_back("attention", "int3");
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(m, table, SessionOptions{});
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), "chain: metadata 'attention' is 'int3'; expected fp32, int8 or int8-per-tensor");
}

// compare --per-layer: with the test model's attention in INT8, each fused
// block is a layer (local and accumulated errors) and has a single-layer
// sensitivity; in fp32 there is none.
TEST(AttentionInt8, PerLayerReportsTheAttentionBlocks) {
  const std::vector<Tensor> in = {test::random_tensor({2, 40, 64}, 1, -2.f, 2.f),
                                  test::random_tensor({2, 64, 50}, 2, -2.f, 2.f), test::random_tensor({2, 50, 16}, 3)};
  const std::vector<eval::InputSet> sets = {{"one", {{"q", in[0]}, {"kt", in[1]}, {"v", in[2]}}}};
  KernelTable kernels;
  register_kernels(kernels);
  const auto ref = attention_chain(), test_model = attention_chain();
  eval::PerLayer none;
  ASSERT_TRUE(none.init(ref, test_model, 1, kernels).is_ok());
  EXPECT_EQ(none.size(), 0u);
  eval::PerLayer layers;
  ASSERT_TRUE(layers.init(ref, test_model, 1, kernels, "int8").is_ok());
  ASSERT_EQ(layers.size(), 1u);
  ASSERT_TRUE(layers.add(sets[0].tensors).is_ok());
  const eval::LayerError& l = *layers.sorted()[0];
  EXPECT_EQ(l.node, "out_node");  // the last MatMul's (test::add_node names it)
  EXPECT_EQ(l.op, "Attention");
  EXPECT_GT(l.local.cosine(), 0.999);
  EXPECT_LT(l.local.cosine(), 1.0);  // it did run in INT8
  SessionOptions o;
  o.num_threads = 1;
  KernelTable t2;
  register_kernels(t2);
  auto rs = Session::create(ref, t2, o);
  ASSERT_TRUE(rs.has_value());
  auto outs = eval::ReferenceOutputs::run(**rs, sets);
  ASSERT_TRUE(outs.has_value()) << outs.message();
  auto sens = eval::single_layer_sensitivity(ref, *outs, test_model, sets, kernels, o, "int8");
  ASSERT_TRUE(sens.has_value()) << sens.message();
  ASSERT_EQ(sens->size(), 1u);
  EXPECT_EQ((*sens)[0].node, "out_node");
  EXPECT_GT((*sens)[0].cosine, 0.999);
  EXPECT_LT((*sens)[0].cosine, 1.0);
}

// convert records the choice in the blob ("attention" metadata, int8 by
// default), the blob's session follows it, and a bad value is refused.
TEST(AttentionInt8, ConvertRecordsTheChoiceInTheBlob) {
  const std::string src = test::test_setting("SARAI_SOURCE_DIR") + "/tests/fixtures/whisper_tiny_encoder.onnx";
  const std::string dir = test::temp_dir("attention_convert");
  const Tensor mel = test::random_tensor({1, 80, 200}, 5);
  auto run_blob = [&](const std::string& path, AttentionPrecision p) {
    auto m = load_blob(path);
    EXPECT_TRUE(m.has_value()) << m.message();
    KernelTable table;
    register_kernels(table);
    SessionOptions o;
    o.num_threads = 1;
    o.attention = p;
    auto s = Session::create(*m, table, o);
    EXPECT_TRUE(s.has_value()) << s.message();
    auto y = (*s)->run({{"mel", mel}});
    EXPECT_TRUE(y.has_value()) << y.message();
    return (*y)[0].tensor;
  };
  auto metadata = [](const std::string& path) {
    auto m = load_blob(path);
    std::string v = "(absent)";
    for (const auto& [k, val] : (*m)->metadata)
      if (k == "attention") v = val;
    return v;
  };
  for (const char* choice : {"", "fp32", "int8-per-tensor"}) {
    auto model = load_onnx(src);
    ASSERT_TRUE(model.has_value());
    quant::ConvertOptions opt;
    if (*choice) opt.attention = choice;
    const std::string out = dir + "/m_" + (*choice ? choice : "default") + ".sarai";
    ASSERT_TRUE(quant::convert_to_blob(**model, out, opt).has_value());
    const std::string want = *choice ? choice : "int8";
    EXPECT_EQ(metadata(out), want);
    const AttentionPrecision explicit_p = want == "fp32" ? AttentionPrecision::kFloat32
                                          : want == "int8" ? AttentionPrecision::kInt8
                                                           : AttentionPrecision::kInt8PerTensor;
    EXPECT_TRUE(same_bits(run_blob(out, AttentionPrecision::kModel), run_blob(out, explicit_p))) << want;
  }
  auto model = load_onnx(src);
  ASSERT_TRUE(model.has_value());
  quant::ConvertOptions bad;
  bad.attention = "int4";
  auto r = quant::convert_to_blob(**model, dir + "/bad.sarai", bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_HAS(r.message(), "bad.sarai: attention 'int4' is not fp32, int8 or int8-per-tensor");
}

}  // namespace
}  // namespace sarai
