// The quantizer: the math (round trip, packing, the fused converter loop
// against the reference), the plan's decisions and reasons, SHA-256,
// page release, and convert_to_blob end to end through the blob reader.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "kernels/kernels.h"
#include "runtime/session.h"
#include "quantizer/plan.h"
#include "quantizer/quantize.h"
#include "quantizer/quantize_weight.h"
#include "quantizer/release_pages.h"
#include "quantizer/sha256.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

namespace fs = std::filesystem;
using quant::WeightChoice;
using quant::WeightForm;
using quant::WeightRole;

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// ---------------------------------------------------------------- round trip

// dequantize(quantize(w)) is within half a step of w, per channel, for w
// viewed as [outer, channels, inner].
void expect_round_trip(const std::vector<float>& w, int64_t outer, int64_t channels, int64_t inner) {
  std::vector<int8_t> q(w.size());
  std::vector<float> scales(static_cast<size_t>(channels));
  quant::quantize_symmetric(w.data(), outer, channels, inner, q.data(), scales.data());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const size_t idx = static_cast<size_t>((o * channels + c) * inner + i);
        const float s = scales[static_cast<size_t>(c)];
        ASSERT_GE(q[idx], -127) << "@" << idx;
        ASSERT_LE(std::fabs(q[idx] * s - w[idx]), s / 2 * (1 + 1e-6f))
            << "@[o=" << o << " c=" << c << " i=" << i << "] w=" << w[idx] << " q=" << int(q[idx]) << " scale=" << s;
      }
}

TEST(QuantizeMath, RoundTripWithinHalfStepPerChannel) {
  for (auto [outer, channels, inner] : {std::tuple<int64_t, int64_t, int64_t>{64, 48, 1}, {1, 16, 100}, {7, 5, 3}}) {
    auto w = random_floats(outer * channels * inner, 11);
    // Channels of very different ranges: per-channel scales must follow.
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < inner; ++i) w[static_cast<size_t>((o * channels + c) * inner + i)] *= std::pow(2.f, c % 9 - 4);
    expect_round_trip(w, outer, channels, inner);
  }
}

TEST(QuantizeMath, AllZeroChannelHasScaleOneAndZeros) {
  auto w = random_floats(4 * 3, 5);
  for (int k = 0; k < 4; ++k) w[static_cast<size_t>(k * 3 + 1)] = 0.f;  // channel 1 of [4, 3]
  std::vector<int8_t> q(w.size());
  std::vector<float> s(3);
  quant::quantize_symmetric(w.data(), 4, 3, 1, q.data(), s.data());
  EXPECT_EQ(s[1], 1.f);
  for (int k = 0; k < 4; ++k) EXPECT_EQ(q[static_cast<size_t>(k * 3 + 1)], 0);
  expect_round_trip(w, 4, 3, 1);
}

TEST(QuantizeMath, OutlierOnlyCoarsensItsOwnChannel) {
  auto w = random_floats(32 * 4, 6, -0.01f, 0.01f);
  w[5 * 4 + 2] = 100.f;  // one outlier in channel 2
  std::vector<int8_t> q(w.size());
  std::vector<float> s(4);
  quant::quantize_symmetric(w.data(), 32, 4, 1, q.data(), s.data());
  EXPECT_FLOAT_EQ(s[2], 100.f / 127.f);
  EXPECT_EQ(q[5 * 4 + 2], 127);
  for (int c : {0, 1, 3}) EXPECT_LT(s[static_cast<size_t>(c)], 0.01f / 127.f * 1.0001f) << "channel " << c;
  expect_round_trip(w, 32, 4, 1);
}

TEST(QuantizeMath, SingleElementTensor) {
  for (float x : {0.5f, -3.f, 0.f}) {
    std::vector<float> w{x};
    std::vector<int8_t> q(1);
    float s = 0;
    quant::quantize_symmetric(w.data(), 1, 1, 1, q.data(), &s);
    EXPECT_EQ(q[0], x == 0.f ? 0 : (x > 0 ? 127 : -127));
    EXPECT_FLOAT_EQ(q[0] * s, x);
  }
}

TEST(QuantizeMath, ToFloatReadsEverySourceDtype) {
  const std::vector<float> values{0.5f, -1.25f, 3.f, 0.f, -0.0078125f, 64.f};
  Tensor f16 = Tensor::allocate(DType::kFloat16, {2, 3});
  Tensor bf16 = Tensor::allocate(DType::kBFloat16, {2, 3});
  Tensor f64 = Tensor::allocate(DType::kFloat64, {2, 3});
  for (size_t i = 0; i < values.size(); ++i) {
    f16.mutable_data<uint16_t>()[i] = float_to_half(values[i]);
    uint32_t bits;
    std::memcpy(&bits, &values[i], 4);
    bf16.mutable_data<uint16_t>()[i] = static_cast<uint16_t>(bits >> 16);  // exact for these values
    f64.mutable_data<double>()[i] = values[i];
  }
  for (const Tensor* t : {&f16, &bf16, &f64}) {
    std::vector<float> out;
    ASSERT_TRUE(quant::to_float("w", *t, out).is_ok()) << dtype_name(t->dtype());
    EXPECT_EQ(out, values) << dtype_name(t->dtype());
    expect_round_trip(out, 2, 3, 1);
  }
  Tensor i64 = test::make_tensor<int64_t>({2}, {1, 2});
  std::vector<float> out;
  Status s = quant::to_float("emb.idx", i64, out);
  EXPECT_EQ(s.message(),
            "tensor 'emb.idx': weights of dtype int64 cannot be quantized (float32, float16, bfloat16 or float64 expected)");
}

TEST(QuantizeMath, NanAndInfNameTheTensorAndElement) {
  std::vector<float> out;
  Tensor t = test::make_tensor<float>({2, 2}, {1.f, 2.f, NAN, 4.f});
  EXPECT_EQ(quant::to_float("enc.fc1.weight", t, out).message(),
            "tensor 'enc.fc1.weight': element 2 is NaN; weights must be finite to quantize");
  Tensor u = test::make_tensor<float>({3}, {1.f, -INFINITY, 0.f});
  EXPECT_EQ(quant::to_float("w2", u, out).message(), "tensor 'w2': element 1 is infinite; weights must be finite to quantize");
  Tensor h = Tensor::allocate(DType::kFloat16, {2});
  h.mutable_data<uint16_t>()[1] = 0x7c00;  // +inf
  EXPECT_EQ(quant::to_float("h", h, out).message(), "tensor 'h': element 1 is infinite; weights must be finite to quantize");
}

// ------------------------------------------------------------------ packing

TEST(QuantizeMath, PackN16K4MatchesTheLayoutFormulaWithTails) {
  for (int64_t K : {1, 3, 4, 5, 8, 13}) {
    for (int64_t N : {1, 15, 16, 17, 40}) {
      std::vector<int8_t> q(static_cast<size_t>(K * N));
      std::mt19937 rng(static_cast<uint32_t>(K * 100 + N));
      for (auto& v : q) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      const int64_t size = int8::packed_size(K, N);
      ASSERT_EQ(size, ((K + 3) / 4 * 4) * ((N + 15) / 16 * 16));
      std::vector<int8_t> packed(static_cast<size_t>(size), 99);
      std::vector<int32_t> sums(static_cast<size_t>(N));
      quant::pack_n16k4(q.data(), K, N, packed.data(), sums.data());
      // Naive: walk the blocks in file order.
      std::vector<int8_t> expect;
      const int64_t Kp = (K + 3) / 4 * 4, Np = (N + 15) / 16 * 16;
      for (int64_t panel = 0; panel < Np / 16; ++panel)
        for (int64_t kg = 0; kg < Kp / 4; ++kg)
          for (int64_t j = 0; j < 16; ++j)
            for (int64_t r = 0; r < 4; ++r) {
              const int64_t k = kg * 4 + r, n = panel * 16 + j;
              expect.push_back(k < K && n < N ? q[static_cast<size_t>(k * N + n)] : 0);
            }
      ASSERT_EQ(packed, expect) << "K=" << K << " N=" << N;
      for (int64_t n = 0; n < N; ++n) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k) s += q[static_cast<size_t>(k * N + n)];
        ASSERT_EQ(sums[static_cast<size_t>(n)], s) << "K=" << K << " N=" << N << " n=" << n;
      }
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n)
          ASSERT_EQ(packed[static_cast<size_t>(int8::packed_index(k, n, K))], q[static_cast<size_t>(k * N + n)]);
    }
  }
}

// The converter's fused loop (quantize_weight) is bit-identical to the
// reference (quantize_symmetric, then pack_n16k4 / row_sums / column sums)
// for every form.
struct Reference {
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<int32_t> sums;
};

Reference reference(const std::vector<float>& w, const WeightForm& f, bool per_tensor, float factor) {
  Reference r;
  const int64_t K = f.K, N = f.N;
  std::vector<int8_t> raw(w.size());
  r.scales.resize(per_tensor ? 1 : static_cast<size_t>(N));
  r.sums.resize(static_cast<size_t>(N));
  using Kind = WeightForm::Kind;
  if (per_tensor) {
    quant::quantize_symmetric(w.data(), 1, 1, static_cast<int64_t>(w.size()), raw.data(), r.scales.data());
  } else if (f.kind == Kind::kPackedKN || f.kind == Kind::kPlainKN) {
    quant::quantize_symmetric(w.data(), K, N, 1, raw.data(), r.scales.data());
  } else if (f.kind == Kind::kPlainConvTranspose) {
    // [G, C/G, M/G, inner]: channels of group g are g*(M/G) + m.
    const int64_t G = f.group, Cg = f.C / G, Mg = N / G;
    for (int64_t g = 0; g < G; ++g)
      quant::quantize_symmetric(w.data() + g * Cg * Mg * f.inner, Cg, Mg, f.inner, raw.data() + g * Cg * Mg * f.inner,
                                r.scales.data() + g * Mg);
  } else {
    quant::quantize_symmetric(w.data(), 1, N, K, raw.data(), r.scales.data());
  }
  for (float& s : r.scales) s *= factor;
  switch (f.kind) {
    case Kind::kPackedKN:
      r.q.resize(static_cast<size_t>(int8::packed_size(K, N)));
      quant::pack_n16k4(raw.data(), K, N, r.q.data(), r.sums.data());
      break;
    case Kind::kPackedNK: {
      std::vector<int8_t> t(raw.size());
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) t[static_cast<size_t>(k * N + n)] = raw[static_cast<size_t>(n * K + k)];
      r.q.resize(static_cast<size_t>(int8::packed_size(K, N)));
      quant::pack_n16k4(t.data(), K, N, r.q.data(), r.sums.data());
      break;
    }
    case Kind::kPlainRows:
      r.q = raw;
      quant::row_sums(raw.data(), N, K, r.sums.data());
      break;
    case Kind::kPlainKN:
      r.q = raw;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) r.sums[static_cast<size_t>(n)] += raw[static_cast<size_t>(k * N + n)];
      break;
    case Kind::kPlainConvTranspose: {
      r.q = raw;
      const int64_t G = f.group, Cg = f.C / G, Mg = N / G;
      for (int64_t c = 0; c < f.C; ++c)
        for (int64_t m = 0; m < Mg; ++m)
          for (int64_t i = 0; i < f.inner; ++i)
            r.sums[static_cast<size_t>((c / Cg) * Mg + m)] += raw[static_cast<size_t>((c * Mg + m) * f.inner + i)];
      break;
    }
  }
  return r;
}

void expect_fused_equals_reference(const WeightForm& f, bool per_tensor, float factor, uint32_t seed) {
  SCOPED_TRACE("kind=" + std::to_string(static_cast<int>(f.kind)) + " K=" + std::to_string(f.K) +
               " N=" + std::to_string(f.N) + " per_tensor=" + std::to_string(per_tensor));
  auto w = random_floats(f.numel(), seed, -0.99f, 0.99f);
  if (per_tensor) {
    // Exact ties for round-half-even: max |w| = 127/128 makes the scale
    // exactly 2^-7, and (k + 0.5) / 128 falls halfway between two steps.
    for (size_t i = 0; i < w.size(); i += 3) w[i] = (std::floor(w[i] * 128.f) + 0.5f) / 128.f;
    w[0] = -127.f / 128.f;
  }
  Reference r = reference(w, f, per_tensor, factor);
  std::vector<int8_t> q(static_cast<size_t>(f.q_bytes()), 99);
  std::vector<float> scales(per_tensor ? 1 : static_cast<size_t>(f.N));
  std::vector<int32_t> sums(static_cast<size_t>(f.N));
  int batches = 0;
  ASSERT_TRUE(quant::quantize_weight(w.data(), f, per_tensor, factor, q.data(), scales.data(), sums.data(),
                                     [&](double) { ++batches; return true; }));
  EXPECT_GE(batches, 1);
  ASSERT_EQ(q, r.q);
  ASSERT_EQ(scales, r.scales);
  ASSERT_EQ(sums, r.sums);
}

TEST(QuantizeWeight, FusedLoopMatchesReferenceForEveryForm) {
  using Kind = WeightForm::Kind;
  uint32_t seed = 1;
  for (bool per_tensor : {false, true}) {
    for (int64_t K : {1, 3, 4, 7, 64}) {
      for (int64_t N : {1, 15, 16, 17, 50}) {
        for (Kind kind : {Kind::kPackedKN, Kind::kPackedNK, Kind::kPlainRows}) {
          WeightForm f;
          f.kind = kind;
          f.K = K;
          f.N = N;
          expect_fused_equals_reference(f, per_tensor, kind == Kind::kPackedKN ? 0.5f : 1.f, seed++);
        }
      }
    }
    for (auto [C, Mg, G, inner] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{4, 3, 1, 9}, {6, 2, 3, 4}, {8, 1, 8, 1}}) {
      WeightForm f;
      f.kind = Kind::kPlainConvTranspose;
      f.C = C;
      f.group = G;
      f.N = Mg * G;
      f.inner = inner;
      f.K = C / G * inner;
      expect_fused_equals_reference(f, per_tensor, 1.f, seed++);
    }
  }
  // The ONNX exporter's plain [K, N] form (seeds of its own, so the forms
  // above keep their data), across more than one 256-column strip.
  seed = 1000;
  for (bool per_tensor : {false, true})
    for (int64_t K : {1, 3, 4, 7, 64})
      for (int64_t N : {1, 15, 16, 17, 50, 257, 600}) {
        WeightForm f;
        f.kind = Kind::kPlainKN;
        f.K = K;
        f.N = N;
        expect_fused_equals_reference(f, per_tensor, 1.f, seed++);
      }
}

TEST(QuantizeWeight, StopsBetweenBatchesWhenAsked) {
  WeightForm f;
  f.K = 1024;
  f.N = 4096;  // 16 MB of floats: at least two 8 MB batches
  std::vector<float> w(static_cast<size_t>(f.numel()), 0.25f);
  std::vector<int8_t> q(static_cast<size_t>(f.q_bytes()));
  std::vector<float> s(static_cast<size_t>(f.N));
  std::vector<int32_t> sums(static_cast<size_t>(f.N));
  int calls = 0;
  std::vector<double> fractions;
  EXPECT_TRUE(quant::quantize_weight(w.data(), f, false, 1.f, q.data(), s.data(), sums.data(), [&](double x) {
    fractions.push_back(x);
    return true;
  }));
  ASSERT_GE(fractions.size(), 2u);
  EXPECT_DOUBLE_EQ(fractions.back(), 1.0);
  EXPECT_FALSE(quant::quantize_weight(w.data(), f, false, 1.f, q.data(), s.data(), sums.data(),
                                      [&](double) { return ++calls < 1; }));
  EXPECT_EQ(calls, 1);
}

// --------------------------------------------------------------------- plan

// A tiny graph builder for plan tests.
struct GraphBuilder {
  Graph g;
  int input(const std::string& name) { return test::add_input(g, name); }
  int init(const std::string& name, Tensor t) { return test::add_init(g, name, std::move(t)); }
  int node(const std::string& op, const std::string& name, std::vector<int> inputs,
           std::map<std::string, Attribute> attrs = {}) {
    Node n;
    n.op_type = op;
    n.name = name;
    n.inputs = std::move(inputs);
    n.attrs = std::move(attrs);
    const int out = g.add_value(name + ".out");
    n.outputs.push_back(out);
    g.values[static_cast<size_t>(out)].producer = static_cast<int>(g.nodes.size());
    g.nodes.push_back(std::move(n));
    return out;
  }
};

const WeightChoice& choice_for(const quant::QuantPlan& p, const Graph& g, const std::string& node) {
  for (const WeightChoice& c : p.choices)
    if (g.nodes[static_cast<size_t>(c.node)].name == node) return c;
  static WeightChoice none;
  ADD_FAILURE() << "no choice for node " << node;
  return none;
}

TEST(Plan, DecisionsAndReasons) {
  GraphBuilder b;
  int x = b.input("x");
  int w1 = b.init("enc.0.fc.weight", test::random_tensor({8, 16}, 1));
  int w2 = b.init("enc.1.fc.weight", test::random_tensor({8, 16}, 2));
  int w3 = b.init("small", test::random_tensor({4, 4}, 3));
  int w4 = b.init("w3d", test::random_tensor({2, 8, 16}, 4));
  int wi = b.init("ints", test::make_tensor<int64_t>({2, 2}, {1, 2, 3, 4}));
  int conv_w = b.init("conv.weight", test::random_tensor({16, 3, 3, 3}, 5));
  int dw = b.init("dw.weight", test::random_tensor({16, 1, 3, 3}, 6));
  int ct = b.init("up.weight", test::random_tensor({16, 8, 2, 2}, 7));
  int ct2 = b.init("up2.weight", test::random_tensor({16, 4, 2, 2}, 8));
  b.node("MatMul", "mm_keep_by_weight", {x, w1});
  b.node("MatMul", "mm_ok", {x, w2});
  b.node("MatMul", "mm_small", {x, w3});
  b.node("MatMul", "mm_3d", {x, w4});
  b.node("MatMul", "mm_ints", {x, wi});
  int y = b.node("Relu", "relu", {x});
  b.node("MatMul", "mm_dynamic", {x, y});
  b.node("Conv", "conv", {x, conv_w});
  b.node("Conv", "depthwise", {x, dw}, {{"group", test::attr_int(16)}});
  b.node("ConvTranspose", "up", {x, ct});
  b.node("ConvTranspose", "up_grouped", {x, ct2}, {{"group", test::attr_int(2)}});
  b.node("MatMul", "head.proj", {x, w2});  // shares w2 with mm_ok

  quant::QuantOptions o;
  o.keep_fp32 = {"enc.0.*", "head.*"};
  o.min_elements = 20;
  auto p = quant::plan_quantization(b.g, o);
  ASSERT_EQ(p.choices.size(), 11u);

  auto expect = [&](const std::string& node, bool q, int axis, const std::string& reason) {
    const WeightChoice& c = choice_for(p, b.g, node);
    EXPECT_EQ(c.quantize, q) << node;
    EXPECT_EQ(c.reason, reason) << node;
    if (q) {
      EXPECT_EQ(c.axis, axis) << node;
    }
  };
  expect("mm_keep_by_weight", false, 1, "fp32: matches --keep-fp32 'enc.0.*'");
  expect("mm_ok", true, 1, "int8 per-channel (axis 1)");
  expect("mm_small", false, 1, "fp32: 16 elements < --min-elements 20");
  expect("mm_3d", false, 1, "fp32: MatMul weight of rank 3");
  expect("mm_ints", false, 1, "fp32: weight dtype int64 is not a float type");
  expect("mm_dynamic", false, 1, "fp32: weight is not a constant");
  expect("conv", true, 0, "int8 per-channel (axis 0)");
  expect("depthwise", true, 0, "int8 per-channel (axis 0)");
  expect("up", true, 1, "int8 per-channel (axis 1)");
  expect("up_grouped", false, 1, "fp32: ConvTranspose with group 2 needs per-tensor scales (--per-tensor)");
  expect("head.proj", false, 1, "fp32: node 'head.proj' matches --keep-fp32 'head.*'");
  EXPECT_EQ(choice_for(p, b.g, "mm_ok").weight_value, w2);
  EXPECT_EQ(choice_for(p, b.g, "head.proj").weight_value, w2);
  EXPECT_EQ(choice_for(p, b.g, "conv").role, WeightRole::kConv);
  EXPECT_EQ(choice_for(p, b.g, "up").role, WeightRole::kConvTranspose);

  o = {};
  o.per_tensor = true;
  p = quant::plan_quantization(b.g, o);
  EXPECT_EQ(choice_for(p, b.g, "mm_ok").reason, "int8 per-tensor");
  EXPECT_EQ(choice_for(p, b.g, "head.proj").reason, "int8 per-tensor");
  EXPECT_TRUE(choice_for(p, b.g, "mm_small").quantize);  // no --min-elements
  EXPECT_EQ(choice_for(p, b.g, "up_grouped").reason, "int8 per-tensor");
}

TEST(Plan, GemmBothTransBAndItsLimits) {
  GraphBuilder b;
  int x = b.input("x");
  int w = b.init("w", test::random_tensor({8, 16}, 1));    // [K, N]
  int wt = b.init("wt", test::random_tensor({16, 8}, 2));  // [N, K]
  int bias = b.init("bias", test::random_tensor({16}, 3));
  int bias_row = b.init("bias_row", test::random_tensor({1, 16}, 4));
  int bias_2d = b.init("bias_2d", test::random_tensor({4, 16}, 5));
  int bias_i = b.init("bias_int", test::make_tensor<int64_t>({16}, std::vector<int64_t>(16, 1)));
  b.node("Gemm", "g0", {x, w, bias});
  b.node("Gemm", "g1", {x, wt, bias_row}, {{"transB", test::attr_int(1)}});
  b.node("Gemm", "g_ta", {x, w}, {{"transA", test::attr_int(1)}});
  b.node("Gemm", "g_c2d", {x, w, bias_2d});
  b.node("Gemm", "g_cint", {x, wt, bias_i}, {{"transB", test::attr_int(1)}});
  b.node("Gemm", "g_nobias", {x, wt}, {{"transB", test::attr_int(1)}, {"alpha", test::attr_float(2.f)}});
  auto p = quant::plan_quantization(b.g, {});
  ASSERT_EQ(p.choices.size(), 6u);
  EXPECT_TRUE(choice_for(p, b.g, "g0").quantize);
  EXPECT_EQ(choice_for(p, b.g, "g0").axis, 1);
  EXPECT_EQ(choice_for(p, b.g, "g0").reason, "int8 per-channel (axis 1)");
  EXPECT_TRUE(choice_for(p, b.g, "g1").quantize);
  EXPECT_EQ(choice_for(p, b.g, "g1").axis, 0);
  EXPECT_EQ(choice_for(p, b.g, "g1").reason, "int8 per-channel (axis 0)");
  EXPECT_EQ(choice_for(p, b.g, "g_ta").reason, "fp32: Gemm with transA=1");
  EXPECT_EQ(choice_for(p, b.g, "g_c2d").reason, "fp32: Gemm bias C is not a float32 constant of shape [N] or [1, N]");
  EXPECT_EQ(choice_for(p, b.g, "g_cint").reason, "fp32: Gemm bias C is not a float32 constant of shape [N] or [1, N]");
  // g_nobias reads wt like g1 but with alpha 2: a second INT8 copy with other
  // scales is not made.
  EXPECT_EQ(choice_for(p, b.g, "g_nobias").reason, "fp32: weight is already quantized differently for node 'g1'");
}

TEST(Plan, SharedWeightQuantizedOnceForCompatibleReaders) {
  GraphBuilder b;
  int x = b.input("x");
  int w = b.init("tied", test::random_tensor({8, 16}, 1));
  b.node("MatMul", "a", {x, w});
  b.node("Gemm", "b", {x, w});
  b.node("Gemm", "c", {x, w}, {{"transB", test::attr_int(1)}});
  auto p = quant::plan_quantization(b.g, {});
  EXPECT_TRUE(choice_for(p, b.g, "a").quantize);
  EXPECT_TRUE(choice_for(p, b.g, "b").quantize);  // same [K, N] packing
  EXPECT_FALSE(choice_for(p, b.g, "c").quantize);
  EXPECT_EQ(choice_for(p, b.g, "c").reason, "fp32: weight is already quantized differently for node 'a'");
}

TEST(Plan, PromoteConstantsTurnsConstantNodesIntoInitializers) {
  GraphBuilder b;
  int x = b.input("x");
  Tensor wt = test::random_tensor({8, 4}, 1);
  int w = b.node("Constant", "const_w", {}, {{"value", test::attr_tensor(wt)}});
  int f = b.node("Constant", "const_f", {}, {{"value_float", test::attr_float(1.f)}});  // not a tensor: stays
  int y = b.node("MatMul", "mm", {x, w});
  int z = b.node("Add", "add", {y, f});
  int out_c = b.node("Constant", "const_out", {}, {{"value", test::attr_tensor(test::random_tensor({2}, 2))}});
  b.g.outputs = {z, out_c};
  quant::promote_constants(b.g);
  ASSERT_EQ(b.g.nodes.size(), 4u);
  EXPECT_EQ(b.g.nodes[0].name, "const_f");
  EXPECT_EQ(b.g.nodes[1].name, "mm");
  EXPECT_EQ(b.g.nodes[2].name, "add");
  EXPECT_EQ(b.g.nodes[3].name, "const_out");  // a graph output: left alone
  const Value& wv = b.g.values[static_cast<size_t>(w)];
  EXPECT_TRUE(wv.is_initializer);
  EXPECT_EQ(wv.producer, -1);
  EXPECT_TRUE(wv.has_shape);
  EXPECT_EQ(wv.dtype, DType::kFloat32);
  EXPECT_EQ(wv.initializer.raw(), wt.raw());
  EXPECT_EQ(b.g.values[static_cast<size_t>(f)].producer, 0);
  EXPECT_EQ(b.g.values[static_cast<size_t>(y)].producer, 1);
  EXPECT_EQ(b.g.values[static_cast<size_t>(z)].producer, 2);
  EXPECT_EQ(b.g.values[static_cast<size_t>(out_c)].producer, 3);
  ASSERT_TRUE(b.g.topological_order().has_value());
  auto p = quant::plan_quantization(b.g, {});
  ASSERT_EQ(p.choices.size(), 1u);
  EXPECT_TRUE(p.choices[0].quantize);
}

// ------------------------------------------------------------------ SHA-256

TEST(Sha256, StandardVectors) {
  EXPECT_EQ(quant::sha256_hex("", 0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(quant::sha256_hex("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  EXPECT_EQ(quant::sha256_hex(two_blocks.data(), two_blocks.size()),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // One million 'a', fed in odd-sized pieces across block boundaries.
  quant::Sha256 h;
  const std::string piece(997, 'a');
  size_t left = 1000000;
  while (left) {
    const size_t n = std::min(left, piece.size());
    h.update(piece.data(), n);
    left -= n;
  }
  auto d = h.finish();
  EXPECT_EQ(quant::to_hex(d.data(), d.size()), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileDigestAndErrors) {
  const std::string dir = test::temp_dir("sha");
  test::write_file(dir + "/abc.txt", "abc");
  auto d = quant::sha256_file(dir + "/abc.txt");
  ASSERT_TRUE(d.has_value()) << d.message();
  EXPECT_EQ(*d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  auto missing = quant::sha256_file(dir + "/nope.onnx");
  EXPECT_EQ(missing.message(), dir + "/nope.onnx: cannot open: No such file or directory");
  auto stopped = quant::sha256_file(dir + "/abc.txt", [](uint64_t) { return false; });
  EXPECT_EQ(stopped.message(), "interrupted");
}

// ------------------------------------------------------------ page release

TEST(ReleasePages, OnlyReadOnlyFileMappingsQualifyAndDataSurvives) {
  const std::string dir = test::temp_dir("pages");
  const std::string path = dir + "/data.bin";
  std::string bytes(1 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7);
  test::write_file(path, bytes);
  int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  void* m = ::mmap(nullptr, bytes.size(), PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ASSERT_NE(m, MAP_FAILED);
  const char* p = static_cast<const char*>(m);
  auto ranges = quant::FileMappedRanges::current();
  EXPECT_TRUE(ranges.contains(p + 100, 5000));
  EXPECT_TRUE(ranges.contains(p, bytes.size()));
  // Past the end of the mapping (only this file's mappings: a neighbour
  // could be another read-only file).
  EXPECT_FALSE(quant::FileMappedRanges::current({path}).contains(p + 1, bytes.size()));
  std::vector<char> heap(1 << 16);
  EXPECT_FALSE(ranges.contains(heap.data(), heap.size()));
  int local = 0;
  EXPECT_FALSE(ranges.contains(&local, sizeof(local)));

  EXPECT_TRUE(quant::FileMappedRanges::current({path}).contains(p, bytes.size()));
  EXPECT_FALSE(quant::FileMappedRanges::current({dir + "/other.bin"}).contains(p, bytes.size()));

  volatile char sink = 0;
  for (size_t i = 0; i < bytes.size(); i += 4096) sink = sink + p[i];
  quant::release_pages(p + 10, bytes.size() - 20);
  EXPECT_EQ(std::memcmp(p, bytes.data(), bytes.size()), 0);  // faulted back in from the file
  ::munmap(m, bytes.size());
}

// ------------------------------------------------------------ convert_to_blob

using test::fixture;

std::vector<std::string> dir_entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::string meta(const Model& m, const std::string& key) {
  for (const auto& [k, v] : m.metadata)
    if (k == key) return v;
  return "<missing " + key + ">";
}

int count_ops(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += node.op_type == op;
  return n;
}

const Tensor& initializer(const Graph& g, const std::string& name) {
  const int v = g.find_value(name);
  static const Tensor kNone;
  if (v == kNoValue || !g.values[static_cast<size_t>(v)].is_initializer) {
    ADD_FAILURE() << "no initializer '" << name << "'";
    return kNone;
  }
  return g.values[static_cast<size_t>(v)].initializer;
}

// Every initializer of the blob that is stored as is has the same bytes as
// the source's tensor of the same name; returns how many were compared.
int expect_fp32_tensors_identical(const Graph& source, const Graph& blob_graph) {
  int compared = 0;
  for (const Value& v : blob_graph.values) {
    if (!v.is_initializer) continue;
    const int sv = source.find_value(v.name);
    if (sv == kNoValue) continue;  // a new tensor (W.q, W.scale, W.wsum, bias)
    const Value& s = source.values[static_cast<size_t>(sv)];
    EXPECT_TRUE(s.is_initializer) << v.name;
    EXPECT_TRUE(test::tensors_equal(v.initializer, s.initializer)) << v.name;
    ++compared;
  }
  return compared;
}

// MatMul/Gemm's X: per row by default; per tensor when asked; the
// calibrated range under static ranges (no x_per_row). A value the converter
// does not know is refused, naming the output.
TEST(Convert, MatmulActivationsPerRowPerTensorOrStatic) {
  const std::string dir = test::temp_dir("matmul_activations");
  for (int variant = 0; variant < 3; ++variant) {
    auto src = load_onnx(fixture("whisper_tiny_encoder.onnx"));
    ASSERT_TRUE(src.has_value()) << src.message();
    quant::ConvertOptions o;
    if (variant == 1) o.matmul_activations = "per-tensor";
    if (variant == 2)
      for (const Node& n : (*src)->graph.nodes)
        if (n.op_type == "MatMul" || n.op_type == "Conv" || n.op_type == "Gemm")
          o.activation_ranges[(*src)->graph.values[static_cast<size_t>(n.inputs[0])].name] = {-4.f, 4.f};
    const std::string path = dir + "/v" + std::to_string(variant) + ".sarai";
    auto sum = quant::convert_to_blob(**src, path, o);
    ASSERT_TRUE(sum.has_value()) << sum.message();
    auto blob = load_blob(path, true);
    ASSERT_TRUE(blob.has_value()) << blob.message();
    int qmatmuls = 0;
    for (const Node& n : (*blob)->graph.nodes) {
      if (n.op_type != "QMatMul") continue;
      ++qmatmuls;
      EXPECT_EQ(n.has_attr("x_per_row"), variant == 0) << n.name << " variant " << variant;
      EXPECT_EQ(n.has_attr("x_min"), variant == 2) << n.name << " variant " << variant;
    }
    EXPECT_EQ(qmatmuls, 12);
    EXPECT_EQ(meta(**blob, "matmul_activations"), variant == 0 ? "per-row" : variant == 1 ? "per-tensor" : "static");
  }
  auto src = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(src.has_value());
  quant::ConvertOptions bad;
  bad.matmul_activations = "per-channel";
  auto r = quant::convert_to_blob(**src, dir + "/bad.sarai", bad);
  ASSERT_FALSE(r.has_value());
  EXPECT_HAS(r.message(), "bad.sarai: matmul activations 'per-channel' are not per-row or per-tensor");
  EXPECT_FALSE(fs::exists(dir + "/bad.sarai"));
  quant::ConvertOptions bad_dw;
  bad_dw.depthwise_activations = "per-row";
  r = quant::convert_to_blob(**src, dir + "/bad.sarai", bad_dw);
  ASSERT_FALSE(r.has_value());
  EXPECT_HAS(r.message(), "bad.sarai: depthwise activations 'per-row' are not per-channel or per-tensor");
}

TEST(Convert, WhisperEncoderFixture) {
  const std::string dir = test::temp_dir("whisper");
  const std::string src_path = fixture("whisper_tiny_encoder.onnx");
  auto model = load_onnx(src_path);
  ASSERT_TRUE(model.has_value()) << model.message();
  quant::ConvertOptions o;
  std::vector<std::pair<uint64_t, uint64_t>> calls;
  o.progress = [&](uint64_t d, uint64_t t) { calls.emplace_back(d, t); };
  const std::string out = dir + "/whisper.sarai";
  auto sum = quant::convert_to_blob(**model, out, o);
  ASSERT_TRUE(sum.has_value()) << sum.message();
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"whisper.sarai"});  // no temp file left

  // Summary: 12 linear layers (4 of the 16 MatMuls multiply activations) and 2 convs.
  EXPECT_EQ(sum->quantized, 14);
  EXPECT_EQ(sum->kept_fp32, 0);
  EXPECT_GT(sum->other_tensors, 0);
  EXPECT_EQ(sum->bytes_in, fs::file_size(src_path));
  EXPECT_EQ(sum->bytes_out, fs::file_size(out));
  EXPECT_LT(sum->bytes_out, sum->bytes_in * 3 / 5);
  EXPECT_EQ(sum->choices.size(), 18u);
  // Progress: monotonic, ends at total.
  ASSERT_GE(calls.size(), 10u);
  for (size_t i = 1; i < calls.size(); ++i) {
    ASSERT_GE(calls[i].first, calls[i - 1].first) << "call " << i;
    ASSERT_EQ(calls[i].second, calls[0].second);
  }
  EXPECT_EQ(calls.back().first, calls.back().second);

  auto blob = load_blob(out, /*verify=*/true);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Graph& g = (*blob)->graph;
  EXPECT_EQ(count_ops(g, "QMatMul"), 12);
  EXPECT_EQ(count_ops(g, "QConv"), 2);
  EXPECT_EQ(count_ops(g, "MatMul"), 4);
  EXPECT_EQ(count_ops(g, "Conv"), 0);
  EXPECT_EQ(count_ops(g, "Constant"), 0);  // promoted to initializers

  // The source, loaded again untouched (convert rewrote the first copy).
  auto fresh = load_onnx(src_path);
  ASSERT_TRUE(fresh.has_value());
  quant::promote_constants((*fresh)->graph);
  EXPECT_GT(expect_fp32_tensors_identical((*fresh)->graph, g), 50);

  // Each QMatMul: inputs (X, W.q, W.scale, W.wsum), attrs K and N, and the
  // packed bytes are exactly the reference quantize + pack of the source.
  int checked = 0;
  for (const Node& n : g.nodes) {
    if (n.op_type != "QMatMul") continue;
    EXPECT_EQ(n.domain, "sarai");
    ASSERT_EQ(n.inputs.size(), 4u) << n.name;
    const std::string wq = g.values[static_cast<size_t>(n.inputs[1])].name;
    ASSERT_EQ(wq.substr(wq.size() - 2), ".q");
    const std::string wname = wq.substr(0, wq.size() - 2);
    EXPECT_EQ(g.values[static_cast<size_t>(n.inputs[2])].name, wname + ".scale");
    EXPECT_EQ(g.values[static_cast<size_t>(n.inputs[3])].name, wname + ".wsum");
    EXPECT_EQ(g.find_value(wname), kNoValue) << wname << " is read only by its QMatMul: not kept";
    const Tensor& w = initializer((*fresh)->graph, wname);
    const int64_t K = w.dim(0), N = w.dim(1);
    EXPECT_EQ(n.attr_int("K", -1), K);
    EXPECT_EQ(n.attr_int("N", -1), N);
    EXPECT_EQ(n.attr_int("x_per_row", 0), 1) << n.name;  // convert's default: X per row
    std::vector<float> wf(w.span<float>().begin(), w.span<float>().end());
    std::vector<int8_t> q(wf.size());
    std::vector<float> scales(static_cast<size_t>(N));
    quant::quantize_symmetric(wf.data(), K, N, 1, q.data(), scales.data());
    std::vector<int8_t> packed(static_cast<size_t>(int8::packed_size(K, N)));
    std::vector<int32_t> sums(static_cast<size_t>(N));
    quant::pack_n16k4(q.data(), K, N, packed.data(), sums.data());
    const Tensor& tq = initializer(g, wq);
    ASSERT_EQ(tq.dtype(), DType::kInt8);
    ASSERT_EQ(tq.shape(), Shape{int8::packed_size(K, N)});
    EXPECT_EQ(std::memcmp(tq.raw(), packed.data(), packed.size()), 0) << wq;
    EXPECT_TRUE(test::tensors_equal(initializer(g, wname + ".scale"), test::make_tensor<float>({N}, scales)));
    EXPECT_TRUE(test::tensors_equal(initializer(g, wname + ".wsum"), test::make_tensor<int32_t>({N}, sums)));
    ++checked;
  }
  EXPECT_EQ(checked, 12);
  EXPECT_EQ(meta(**blob, "matmul_activations"), "per-row");
  for (const Node& n : g.nodes) {
    if (n.op_type != "QConv") continue;
    EXPECT_EQ(n.attr_ints("weight_shape").size(), 3u) << n.name;
    EXPECT_EQ(n.attr_ints("kernel_shape"), (std::vector<int64_t>{3})) << "Conv's attributes are kept";
    EXPECT_EQ(n.inputs.size(), 5u) << "with the bias";
  }

  // Metadata.
  const Model& m = **blob;
  EXPECT_EQ(meta(m, "source.file"), "whisper_tiny_encoder.onnx");
  auto digest = quant::sha256_file(src_path);
  ASSERT_TRUE(digest.has_value());
  EXPECT_EQ(meta(m, "source.sha256"), *digest);
  EXPECT_EQ(meta(m, "source.bytes"), std::to_string(fs::file_size(src_path)));
  EXPECT_EQ(meta(m, "converter"), "sarai-rt 0.1.0");
  EXPECT_EQ(meta(m, "options"), "--min-elements 0");
  EXPECT_EQ(meta(m, "weight_layout"), "n16k4 v1");
  EXPECT_EQ(meta(m, "choice:onnx::MatMul_240"), "int8 per-channel (axis 1)");  // blocks.0 query
  EXPECT_EQ(meta(m, "choice:conv1.weight"), "int8 per-channel (axis 0)");
  EXPECT_EQ(meta(m, "choice:/blocks.0/attn/Transpose_1_output_0"), "fp32: weight is not a constant");
  int choice_keys = 0;
  for (const auto& kv : m.metadata) choice_keys += kv.first.rfind("choice:", 0) == 0;
  EXPECT_EQ(choice_keys, 18);
}

TEST(Convert, SmallCnnPackedAndGroupedConvs) {
  const std::string dir = test::temp_dir("cnn");
  auto model = load_onnx(fixture("small_cnn.onnx"));
  ASSERT_TRUE(model.has_value()) << model.message();
  quant::ConvertOptions o;
  o.command_line = "sarai-rt convert small_cnn.onnx -o cnn.sarai";
  auto sum = quant::convert_to_blob(**model, dir + "/cnn.sarai", o);
  ASSERT_TRUE(sum.has_value()) << sum.message();
  EXPECT_EQ(sum->quantized, 8);
  BlobInfo info;
  auto blob = load_blob(dir + "/cnn.sarai", /*verify=*/true, &info);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Graph& g = (*blob)->graph;
  EXPECT_EQ(count_ops(g, "QConv"), 8);
  EXPECT_EQ(count_ops(g, "Conv"), 0);
  EXPECT_EQ(meta(**blob, "options"), o.command_line);
  auto fresh = load_onnx(fixture("small_cnn.onnx"));
  ASSERT_TRUE(fresh.has_value());
  quant::promote_constants((*fresh)->graph);
  EXPECT_GT(expect_fp32_tensors_identical((*fresh)->graph, g), 5);
  int plain = 0, packed = 0;
  for (const Node& n : g.nodes) {
    if (n.op_type != "QConv") continue;
    const std::string wq = g.values[static_cast<size_t>(n.inputs[1])].name;
    const auto ws = n.attr_ints("weight_shape");
    ASSERT_EQ(ws.size(), 4u);
    const BlobTensorInfo* t = nullptr;
    for (const auto& ti : info.tensors)
      if (ti.name == wq) t = &ti;
    ASSERT_NE(t, nullptr) << wq;
    EXPECT_EQ(t->entry.scheme, blob::Scheme::kInt8PerChannel);
    // Depthwise convs quantize X per channel at run time (kernels/qmatmul_qconv.cc).
    EXPECT_EQ(n.attr_int("x_per_channel", 0), n.attr_int("group", 1) > 1 ? 1 : 0) << n.name;
    if (n.attr_int("group", 1) == 1) {
      ++packed;
      EXPECT_EQ(t->entry.layout, blob::Layout::kPackedN16K4) << wq;
      EXPECT_EQ(t->dims, (Shape{ws[1] * ws[2] * ws[3], ws[0]})) << wq;
      EXPECT_EQ(t->entry.axis, 1);
    } else {
      ++plain;
      EXPECT_EQ(t->entry.layout, blob::Layout::kPlain) << wq;
      EXPECT_EQ(t->dims, (Shape{ws[0], ws[1], ws[2], ws[3]})) << wq;
      EXPECT_EQ(t->entry.axis, 0);
      EXPECT_EQ(initializer(g, wq).shape(), t->dims);
    }
  }
  EXPECT_EQ(packed, 7);
  EXPECT_EQ(plain, 1);  // the depthwise conv
  EXPECT_EQ(meta(**blob, "depthwise_activations"), "per-channel");

  // Per tensor (0: dynamic, 2: with static ranges, the calibrated range
  // for the depthwise conv too), and static ranges with the default (1: the
  // depthwise conv stays per channel, the others take their range).
  for (int variant = 0; variant < 3; ++variant) {
    auto src = load_onnx(fixture("small_cnn.onnx"));
    ASSERT_TRUE(src.has_value());
    quant::ConvertOptions vo;
    if (variant != 1) vo.depthwise_activations = "per-tensor";
    if (variant != 0)
      for (const Node& n : (*src)->graph.nodes)
        if (n.op_type == "Conv") vo.activation_ranges[(*src)->graph.values[static_cast<size_t>(n.inputs[0])].name] = {-1.f, 1.f};
    const std::string path = dir + "/v" + std::to_string(variant) + ".sarai";
    ASSERT_TRUE(quant::convert_to_blob(**src, path, vo).has_value()) << variant;
    auto vb = load_blob(path, true);
    ASSERT_TRUE(vb.has_value()) << vb.message();
    int dw = 0;
    for (const Node& n : (*vb)->graph.nodes) {
      if (n.op_type != "QConv") continue;
      const bool depthwise = n.attr_int("group", 1) > 1;
      dw += depthwise;
      EXPECT_EQ(n.has_attr("x_per_channel"), variant == 1 && depthwise) << n.name << " variant " << variant;
      EXPECT_EQ(n.has_attr("x_min"), variant == 2 || (variant == 1 && !depthwise)) << n.name << " variant " << variant;
    }
    EXPECT_EQ(dw, 1);
    EXPECT_EQ(meta(**vb, "depthwise_activations"), variant == 0 ? "per-tensor" : variant == 1 ? "per-channel" : "static");
  }

  // --per-tensor: one scale each.
  auto again = load_onnx(fixture("small_cnn.onnx"));
  ASSERT_TRUE(again.has_value());
  quant::ConvertOptions pt;
  pt.per_tensor = true;
  ASSERT_TRUE(quant::convert_to_blob(**again, dir + "/pt.sarai", pt).has_value());
  BlobInfo pinfo;
  auto pblob = load_blob(dir + "/pt.sarai", true, &pinfo);
  ASSERT_TRUE(pblob.has_value()) << pblob.message();
  int quantized = 0;
  for (const auto& ti : pinfo.tensors) {
    if (ti.entry.scheme == blob::Scheme::kNone) continue;
    ++quantized;
    EXPECT_EQ(ti.entry.scheme, blob::Scheme::kInt8PerTensor);
    ASSERT_GE(ti.entry.scale_tensor, 0);
    EXPECT_EQ(pinfo.tensors[static_cast<size_t>(ti.entry.scale_tensor)].dims, Shape{1});
  }
  EXPECT_EQ(quantized, 8);
  EXPECT_EQ(meta(**pblob, "options"), "--per-tensor --min-elements 0");
}

// An in-memory model (no source file) with Gemms and a shared weight.
struct GemmModel {
  GraphBuilder b;
  Model m;
  Tensor w, wt, c;
  GemmModel() {
    int x = b.input("x");
    w = test::random_tensor({8, 20}, 1);    // [K, N]
    wt = test::random_tensor({20, 8}, 2);   // [N, K]
    c = test::random_tensor({20}, 3);
    int wv = b.init("w", w);
    int wtv = b.init("wt", wt);
    int cv = b.init("c", c);
    int y0 = b.node("Gemm", "g0", {x, wtv, cv},
                    {{"transB", test::attr_int(1)}, {"alpha", test::attr_float(2.f)}, {"beta", test::attr_float(0.5f)}});
    int y1 = b.node("Gemm", "g1", {x, wv, cv});
    int y2 = b.node("MatMul", "mm", {x, wv});
    int tr = b.node("Transpose", "tied", {wv});  // reads w as FP32 too
    b.g.outputs = {y0, y1, y2, tr};
    b.g.opset = 17;
    m.graph = b.g;
  }
};

TEST(Convert, GemmFoldsAlphaAndBetaAndSharedWeightStaysFp32) {
  const std::string dir = test::temp_dir("gemm");
  GemmModel gm;
  auto sum = quant::convert_to_blob(gm.m, dir + "/g.sarai", {});
  ASSERT_TRUE(sum.has_value()) << sum.message();
  EXPECT_EQ(sum->quantized, 2);
  auto blob = load_blob(dir + "/g.sarai", true);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Graph& g = (*blob)->graph;
  EXPECT_EQ(count_ops(g, "QMatMul"), 3);
  // w is read by the Transpose: kept in FP32 next to w.q.
  EXPECT_TRUE(test::tensors_equal(initializer(g, "w"), gm.w));
  EXPECT_EQ(g.find_value("wt"), kNoValue);
  EXPECT_TRUE(test::tensors_equal(initializer(g, "c"), gm.c));  // g1's bias as is
  for (const Node& n : g.nodes) {
    if (n.name == "g0") {
      ASSERT_EQ(n.inputs.size(), 5u);
      EXPECT_EQ(n.attr_int("K", -1), 8);
      EXPECT_EQ(n.attr_int("N", -1), 20);
      EXPECT_FALSE(n.has_attr("alpha"));
      const Tensor& bias = initializer(g, g.values[static_cast<size_t>(n.inputs[4])].name);
      for (int i = 0; i < 20; ++i) EXPECT_FLOAT_EQ(bias.data<float>()[i], 0.5f * gm.c.data<float>()[i]);
      // Scales: per row of wt (output channel), times alpha.
      const Tensor& s = initializer(g, "wt.scale");
      for (int n_ = 0; n_ < 20; ++n_) {
        float amax = 0;
        for (int k = 0; k < 8; ++k) amax = std::max(amax, std::fabs(gm.wt.data<float>()[n_ * 8 + k]));
        EXPECT_FLOAT_EQ(s.data<float>()[n_], 2.f * amax / 127.f);
      }
    } else if (n.name == "g1" || n.name == "mm") {
      EXPECT_EQ(g.values[static_cast<size_t>(n.inputs[1])].name, "w.q") << "one INT8 copy for both";
      EXPECT_EQ(n.inputs.size(), n.name == "g1" ? 5u : 4u);
    }
  }
}

TEST(Convert, NanWeightNamesTheTensorAndLeavesNothing) {
  const std::string dir = test::temp_dir("nan");
  GemmModel gm;
  const_cast<float*>(gm.wt.data<float>())[37] = NAN;
  auto sum = quant::convert_to_blob(gm.m, dir + "/g.sarai", {});
  ASSERT_FALSE(sum.has_value());
  EXPECT_EQ(sum.message(), "tensor 'wt': element 37 is NaN; weights must be finite to quantize");
  EXPECT_TRUE(dir_entries(dir).empty());
}

TEST(Convert, StaticRangesMustCoverEveryQuantizedNode) {
  // One range given, for a value no quantized node reads: the first
  // quantized node without one is named, and nothing is written.
  const std::string dir = test::temp_dir("static_missing");
  auto model = load_onnx(fixture("small_cnn.onnx"));
  ASSERT_TRUE(model.has_value()) << model.message();
  quant::ConvertOptions o;
  o.activation_ranges["not_an_input"] = {-1.f, 1.f};
  auto sum = quant::convert_to_blob(**model, dir + "/s.sarai", o);
  ASSERT_FALSE(sum.has_value());
  EXPECT_EQ(sum.message(), fixture("small_cnn.onnx") +
                               ": node '/stem/stem.0/Conv' (Conv): no calibrated range for its input 'image' "
                               "(static quantization needs one for every quantized node)");
  EXPECT_TRUE(dir_entries(dir).empty());
}

TEST(Convert, NanInAFileModelNamesTheFile) {
  const std::string dir = test::temp_dir("nanfile");
  onnx::ModelProto mp = test::add_model({2, 3});
  // Turn Add into MatMul with a [3, 2] weight holding an infinity.
  auto* graph = mp.mutable_graph();
  graph->mutable_node(0)->set_op_type("MatMul");
  auto* init = graph->mutable_initializer(0);
  init->clear_dims();
  init->add_dims(3);
  init->add_dims(2);
  init->clear_float_data();
  init->clear_raw_data();
  for (float v : {1.f, 2.f, 3.f, INFINITY, 5.f, 6.f}) init->add_float_data(v);
  graph->mutable_output(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(1)->set_dim_value(2);
  const std::string path = dir + "/inf.onnx";
  test::save(mp, path);
  auto model = load_onnx(path);
  ASSERT_TRUE(model.has_value()) << model.message();
  auto sum = quant::convert_to_blob(**model, dir + "/out.sarai", {});
  ASSERT_FALSE(sum.has_value());
  EXPECT_EQ(sum.message(), path + ": tensor '" + init->name() + "': element 3 is infinite; weights must be finite to quantize");
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"inf.onnx"});
}

TEST(Convert, CancelMidwayLeavesNoFile) {
  const std::string dir = test::temp_dir("cancel");
  auto model = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(model.has_value());
  std::atomic<bool> cancel{false};
  quant::ConvertOptions o;
  o.cancel = &cancel;
  int calls = 0;
  bool saw_temp = false;
  o.progress = [&](uint64_t, uint64_t) {
    if (++calls == 20) {
      saw_temp = !dir_entries(dir).empty();
      cancel = true;
    }
  };
  auto sum = quant::convert_to_blob(**model, dir + "/w.sarai", o);
  ASSERT_FALSE(sum.has_value());
  EXPECT_EQ(sum.message(), "interrupted");
  EXPECT_TRUE(saw_temp) << "the temp file existed mid-way";
  EXPECT_TRUE(dir_entries(dir).empty());
}

TEST(Convert, OutputPathErrorsLeaveNothingBehind) {
  const std::string dir = test::temp_dir("paths");
  auto model = load_onnx(fixture("small_cnn.onnx"));
  ASSERT_TRUE(model.has_value());
  const std::string out = dir + "/missing/cnn.sarai";
  auto sum = quant::convert_to_blob(**model, out, {});
  ASSERT_FALSE(sum.has_value());
  EXPECT_EQ(sum.message(), "cannot write '" + out + "': folder '" + dir + "/missing' does not exist");
  EXPECT_TRUE(dir_entries(dir).empty());

  sum = quant::convert_to_blob(**model, dir, {});
  EXPECT_EQ(sum.message(), "cannot write '" + dir + "': it is a folder");

  // The source itself as the output: refused, source untouched.
  const std::string copy = dir + "/src.onnx";
  fs::copy_file(fixture("small_cnn.onnx"), copy);
  auto before = quant::sha256_file(copy);
  auto m2 = load_onnx(copy);
  ASSERT_TRUE(m2.has_value());
  sum = quant::convert_to_blob(**m2, copy, {});
  EXPECT_EQ(sum.message(), "cannot write '" + copy + "': it is the source file '" + copy + "'; choose another output path");
  EXPECT_EQ(*quant::sha256_file(copy), *before);
  EXPECT_EQ(dir_entries(dir), std::vector<std::string>{"src.onnx"});
}

TEST(Convert, KeepFp32AndMinElementsRecordedPerWeight) {
  const std::string dir = test::temp_dir("keep");
  auto model = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(model.has_value());
  quant::ConvertOptions o;
  o.keep_fp32 = {"/blocks.0/*", "conv1.weight"};
  o.min_elements = 20000;
  auto sum = quant::convert_to_blob(**model, dir + "/w.sarai", o);
  ASSERT_TRUE(sum.has_value()) << sum.message();
  auto blob = load_blob(dir + "/w.sarai");
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Model& m = **blob;
  EXPECT_EQ(meta(m, "options"), "--keep-fp32 '/blocks.0/*' --keep-fp32 'conv1.weight' --min-elements 20000");
  EXPECT_EQ(meta(m, "choice:onnx::MatMul_240"),
            "fp32: node '/blocks.0/attn/query/MatMul' matches --keep-fp32 '/blocks.0/*'");
  EXPECT_EQ(meta(m, "choice:conv1.weight"), "fp32: matches --keep-fp32 'conv1.weight'");
  EXPECT_EQ(meta(m, "choice:onnx::MatMul_253"), "fp32: 16384 elements < --min-elements 20000");  // blocks.1 query
  EXPECT_EQ(meta(m, "choice:onnx::MatMul_264"), "int8 per-channel (axis 1)");                     // blocks.1 fc1
  EXPECT_EQ(sum->quantized, 3);  // blocks.1 fc1, fc2 and conv2
  EXPECT_EQ(sum->kept_fp32, 11);
  EXPECT_EQ(count_ops(m.graph, "QMatMul"), 2);
  EXPECT_EQ(count_ops(m.graph, "QConv"), 1);
  auto fresh = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(fresh.has_value());
  EXPECT_TRUE(test::tensors_equal(initializer(m.graph, "onnx::MatMul_240"), initializer((*fresh)->graph, "onnx::MatMul_240")));
}

// The converted blob runs on the INT8 kernels and stays close to FP32: the
// graph rewrite and the kernels agree on the IR conventions.
using test::cosine;

void expect_blob_close_to_fp32(const std::string& fixture_name, const std::string& input, Shape shape,
                               bool per_tensor, double measured_cos) {
  SCOPED_TRACE(fixture_name + (per_tensor ? " per-tensor" : " per-channel"));
  const std::string dir = test::temp_dir("run");
  auto fp32 = load_onnx(fixture(fixture_name));
  auto source = load_onnx(fixture(fixture_name));
  ASSERT_TRUE(fp32.has_value() && source.has_value());
  quant::ConvertOptions o;
  o.per_tensor = per_tensor;
  ASSERT_TRUE(quant::convert_to_blob(**source, dir + "/m.sarai", o).has_value());
  auto blob = load_blob(dir + "/m.sarai");
  ASSERT_TRUE(blob.has_value()) << blob.message();
  KernelTable table;
  register_kernels(table);
  Tensor x = test::random_tensor(shape, 7);
  std::vector<Tensor> outs;
  for (std::shared_ptr<Model> m : {*fp32, *blob}) {
    auto session = Session::create(m, table);
    ASSERT_TRUE(session.has_value()) << session.message();
    auto y = (*session)->run({{input, x}});
    ASSERT_TRUE(y.has_value()) << y.message();
    outs.push_back((*y)[0].tensor);
  }
  ASSERT_EQ(outs[0].shape(), outs[1].shape());
  test::expect_cosine_near_measured(cosine(outs[0], outs[1]), measured_cos,
                                    fixture_name + (per_tensor ? " per-tensor" : " per-channel"));
}

TEST(Convert, BlobRunsCloseToFp32) {
  expect_blob_close_to_fp32("whisper_tiny_encoder.onnx", "mel", {1, 80, 64}, false, 0.999934);
  expect_blob_close_to_fp32("small_cnn.onnx", "image", {1, 3, 32, 48}, false, 0.999936);
  expect_blob_close_to_fp32("small_cnn.onnx", "image", {1, 3, 32, 48}, true, 0.999938);
}

// The names convert (and the session's passes) give the values they add:
// the base when free, else base.2, base.3, ... skipping every taken one.
TEST(GraphFreshName, SkipsTakenNames) {
  Graph g;
  EXPECT_EQ(g.fresh_name("w"), "w");
  g.add_value("w");
  EXPECT_EQ(g.fresh_name("w"), "w.2");
  g.add_value("w.2");
  g.add_value("w.3");
  EXPECT_EQ(g.fresh_name("w"), "w.4");
  EXPECT_EQ(g.fresh_name("w.2"), "w.2.2");
  EXPECT_EQ(g.fresh_name("x"), "x");
}

}  // namespace
}  // namespace sarai
