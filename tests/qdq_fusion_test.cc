// Pre-quantized ONNX models in QDQ form (runtime/fuse.h: fuse_qdq_ops):
// Conv / MatMul / Gemm between DequantizeLinear(QuantizeLinear(x)) and
// DequantizeLinear(constant integer weight) run as QConv / QMatMul with the
// model's static activation scale. Checks, on graphs built as
// quantize_static(quant_format=QDQ) writes them: the rewrite happens (node
// counts), the outputs equal the plain Q/DQ ops' within one step of the
// output's grid (the same integers; the float epilogue rounds differently)
// and the float model's within the quantization error, and every graph that
// does not match is left to the plain ops, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/fuse.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

enum class Op { kConv, kMatMul, kGemm };

struct Case {
  const char* name;
  Op op = Op::kConv;
  bool per_channel = true;   // weight scale per output channel (else one value)
  bool s8_act = false;       // activation grid int8 (else uint8)
  bool u8_weight = false;    // uint8 weights with zero point 128 (else int8, zero point 0)
  Shape ws;                  // Conv [M, C/g, k, k]; MatMul [K, N]; Gemm [N, K] (transB) or [K, N]
  Shape x;
  int64_t group = 1;
  bool trans_b = false;
  bool bias = true;          // Conv / Gemm: DequantizeLinear(int32 bias)
  bool output_qdq = true;    // QuantizeLinear -> DequantizeLinear on the output
};

const Case kCases[] = {
    {"conv_per_channel", Op::kConv, true, false, false, {8, 3, 3, 3}, {1, 3, 9, 10}},
    {"conv_per_tensor_s8_act", Op::kConv, false, true, false, {6, 4, 3, 3}, {2, 4, 7, 7}},
    {"conv_grouped_u8_weight", Op::kConv, true, false, true, {6, 2, 3, 3}, {1, 6, 8, 8}, 3},
    {"conv_no_bias_no_output_qdq", Op::kConv, true, false, false, {5, 3, 1, 1}, {1, 3, 6, 6}, 1, false, false, false},
    {"matmul_per_channel_3d", Op::kMatMul, true, false, false, {24, 10}, {2, 5, 24}, 1, false, false},
    {"matmul_per_tensor_s8_act", Op::kMatMul, false, true, false, {16, 12}, {7, 16}, 1, false, false},
    {"gemm_trans_b_bias", Op::kGemm, true, false, false, {9, 20}, {4, 20}, 1, true},
    {"gemm_bias_u8_weight", Op::kGemm, true, false, true, {20, 9}, {4, 20}, 1, false},
};

int64_t channels(const Case& c) {
  return c.op == Op::kConv || (c.op == Op::kGemm && c.trans_b) ? c.ws[0] : c.ws[1];
}
int channel_axis(const Case& c) { return c.op == Op::kConv || (c.op == Op::kGemm && c.trans_b) ? 0 : 1; }

struct Weights {
  Tensor q, zp, scale, bias_q, bias_scale, dequantized, bias;
};

constexpr float kXScale = 0.03f;
int32_t x_zp(const Case& c) { return c.s8_act ? -10 : 118; }

Weights make_weights(const Case& c, uint32_t seed) {
  Weights w;
  const int64_t M = channels(c), n = numel_of(c.ws);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> val(-127, 127);
  std::vector<float> scale(static_cast<size_t>(c.per_channel ? M : 1));
  for (size_t i = 0; i < scale.size(); ++i) scale[i] = 0.002f + 0.0007f * static_cast<float>(i % 6);
  const Shape ss = c.per_channel ? Shape{M} : Shape{};
  w.scale = test::make_tensor<float>(ss, scale);
  std::vector<int32_t> q(static_cast<size_t>(n));
  for (auto& v : q) v = val(rng);
  const int zp = c.u8_weight ? 128 : 0;
  if (c.u8_weight) {
    std::vector<uint8_t> u(q.size());
    for (size_t i = 0; i < q.size(); ++i) u[i] = static_cast<uint8_t>(q[i] + zp);
    w.q = test::make_tensor<uint8_t>(c.ws, u);
    w.zp = test::make_tensor<uint8_t>(ss, std::vector<uint8_t>(scale.size(), static_cast<uint8_t>(zp)));
  } else {
    w.q = test::make_tensor<int8_t>(c.ws, std::vector<int8_t>(q.begin(), q.end()));
    w.zp = test::make_tensor<int8_t>(ss, std::vector<int8_t>(scale.size(), 0));
  }
  // The float weight: channel of element i on the channel axis.
  const int64_t inner = channel_axis(c) == 0 ? n / M : 1;
  w.dequantized = Tensor::allocate(DType::kFloat32, c.ws);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ch = channel_axis(c) == 0 ? i / inner : i % M;
    w.dequantized.mutable_data<float>()[i] = static_cast<float>(q[static_cast<size_t>(i)]) * scale[c.per_channel ? ch : 0];
  }
  // Bias int32 with scale x_scale * w_scale[m] (quantize_static's).
  std::vector<int32_t> bq(static_cast<size_t>(M));
  std::vector<float> bs(static_cast<size_t>(M)), b(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    bq[static_cast<size_t>(m)] = static_cast<int32_t>(m * 37 % 200) - 100;
    bs[static_cast<size_t>(m)] = kXScale * scale[c.per_channel ? m : 0];
    b[static_cast<size_t>(m)] = static_cast<float>(bq[static_cast<size_t>(m)]) * bs[static_cast<size_t>(m)];
  }
  w.bias_q = test::make_tensor<int32_t>({M}, bq);
  w.bias_scale = test::make_tensor<float>({M}, bs);
  w.bias = test::make_tensor<float>({M}, b);
  return w;
}

using Attrs = std::map<std::string, Attribute>;

Attrs op_attrs(const Case& c) {
  Attrs a;
  if (c.op == Op::kConv) {
    a["group"] = test::attr_int(c.group);
    a["pads"] = test::attr_ints({1, 1, 1, 1});
  } else if (c.op == Op::kGemm) {
    a["transB"] = test::attr_int(c.trans_b ? 1 : 0);
  }
  return a;
}

const char* op_name(const Case& c) { return c.op == Op::kConv ? "Conv" : c.op == Op::kMatMul ? "MatMul" : "Gemm"; }

std::shared_ptr<Model> new_model(Graph** g, int* x) {
  auto m = std::make_shared<Model>();
  m->path = "qdq.onnx";
  *g = &m->graph;
  (*g)->opset = 17;
  *x = test::add_input(**g, "x");
  return m;
}

Tensor zp_tensor(bool s8, int32_t v) {
  return s8 ? test::make_tensor<int8_t>({}, {static_cast<int8_t>(v)}) : test::make_tensor<uint8_t>({}, {static_cast<uint8_t>(v)});
}

// Q -> DQ of v with one scale and zero point (separate initializers for
// the two nodes, as quantize_static writes them; `dq_scale` may differ).
int add_qdq(Graph& g, int v, const std::string& pre, float scale, bool s8, int32_t zp, float dq_scale = 0) {
  const int s1 = test::add_init(g, pre + "q_scale", test::make_tensor<float>({}, {scale}));
  const int z1 = test::add_init(g, pre + "q_zp", zp_tensor(s8, zp));
  const int q = test::add_node(g, "QuantizeLinear", "", {v, s1, z1}, pre + "quantized");
  const int s2 = test::add_init(g, pre + "dq_scale", test::make_tensor<float>({}, {dq_scale != 0 ? dq_scale : scale}));
  const int z2 = test::add_init(g, pre + "dq_zp", zp_tensor(s8, zp));
  return test::add_node(g, "DequantizeLinear", "", {q, s2, z2}, pre + "dequantized");
}

// Knobs for the graphs that must not be rewritten.
struct Variant {
  float dq_scale = 0;       // the activation DQ's scale (0: the Q's)
  int weight_axis = -100;   // the weight DQ's axis attribute (-100: the right one)
  float gemm_alpha = 1.f;
  bool float_weight_input = false;  // the weight DQ reads a graph input, not an initializer
  float x_scale = 0;        // the activation's scale and zero point (0: kXScale, x_zp(c))
  int x_zero_point = 0;
};

std::shared_ptr<Model> qdq_model(const Case& c, const Weights& w, const Variant& v = {}) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  const float xs = v.x_scale != 0 ? v.x_scale : kXScale;
  const int xdq = add_qdq(*g, x, "x_", xs, c.s8_act, v.x_scale != 0 ? v.x_zero_point : x_zp(c), v.dq_scale != 0 ? v.dq_scale : xs);
  int wq;
  if (v.float_weight_input) {
    wq = test::add_input(*g, "w_input", w.q.dtype());
  } else {
    wq = test::add_init(*g, "w_quantized", w.q);
  }
  Attrs dq_attrs;
  dq_attrs["axis"] = test::attr_int(v.weight_axis != -100 ? v.weight_axis : channel_axis(c));
  const int wdq = test::add_node(*g, "DequantizeLinear", "",
                                 {wq, test::add_init(*g, "w_scale", w.scale), test::add_init(*g, "w_zp", w.zp)},
                                 "w_dequantized", dq_attrs);
  std::vector<int> in = {xdq, wdq};
  if (c.bias && c.op != Op::kMatMul) {
    Attrs a0;
    a0["axis"] = test::attr_int(0);
    in.push_back(test::add_node(*g, "DequantizeLinear", "",
                                {test::add_init(*g, "b_quantized", w.bias_q), test::add_init(*g, "b_scale", w.bias_scale)},
                                "b_dequantized", a0));
  }
  Attrs attrs = op_attrs(c);
  if (c.op == Op::kGemm && v.gemm_alpha != 1.f) attrs["alpha"] = test::attr_float(v.gemm_alpha);
  int y = test::add_node(*g, op_name(c), "", in, "y", attrs);
  if (c.output_qdq) y = add_qdq(*g, y, "y_", 0.05f, false, 128);
  g->outputs = {y};
  return m;
}

// The float op on the dequantized weights (and the activation's QDQ kept,
// so that only the output rounding and the op's own rounding differ).
std::shared_ptr<Model> float_model(const Case& c, const Weights& w) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  std::vector<int> in = {x, test::add_init(*g, "w", w.dequantized)};
  if (c.bias && c.op != Op::kMatMul) in.push_back(test::add_init(*g, "b", w.bias));
  g->outputs = {test::add_node(*g, op_name(c), "", in, "y", op_attrs(c))};
  return m;
}

SessionOptions options(bool fuse_patterns, int threads = 1) {
  SessionOptions o;
  o.num_threads = threads;
  o.fuse_patterns = fuse_patterns;
  o.fp32_fallback = Fp32Fallback::kOff;  // INT8 everywhere, whatever this machine's ISA
  return o;
}

Tensor run(const std::unique_ptr<Session>& s, const Tensor& x) {
  if (!s) return Tensor();
  auto r = s->run({{"x", x}});
  EXPECT_TRUE(r.has_value()) << r.status().message();
  return r && !r->empty() ? (*r)[0].tensor : Tensor();
}

int count_op(const Graph& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.op_type == op; }));
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(static_cast<double>(t.data<float>()[i])));
  return m;
}

// Activations on the grid's range (uint8: [-118, 137] steps; int8: [-118, 137]).
Tensor input_for(const Case& c, uint32_t seed) { return test::random_tensor(c.x, seed, -3.2f, 3.8f); }

TEST(QdqFusion, RewritesQuantizeStaticGraphsAndMatchesThePlainOps) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    const Weights w = make_weights(c, 5);
    const Tensor x = input_for(c, 9);
    auto plain = test::session_on(qdq_model(c, w), options(false));
    auto reference = test::session_on(float_model(c, w), options(false));
    ASSERT_TRUE(plain && reference);
    const Tensor want_plain = run(plain, x), want_float = run(reference, x);
    for (int threads : {1, 2}) {
      SCOPED_TRACE(threads);
      auto fused = test::session_on(qdq_model(c, w), options(true, threads));
      ASSERT_TRUE(fused);
      const Graph& g = fused->graph();
      EXPECT_EQ(count_op(g, c.op == Op::kConv ? "QConv" : "QMatMul"), 1);
      EXPECT_EQ(count_op(g, op_name(c)), 0);
      // Only the output's Q -> DQ pair is left.
      EXPECT_EQ(count_op(g, "QuantizeLinear"), c.output_qdq ? 1 : 0);
      EXPECT_EQ(count_op(g, "DequantizeLinear"), c.output_qdq ? 1 : 0);
      EXPECT_EQ(g.nodes.size(), c.output_qdq ? 3u : 1u);
      const Tensor got = run(fused, x);
      ASSERT_EQ(got.shape(), want_plain.shape());
      // The same integers and static scale: within one output step (0.05)
      // of the plain ops, the float epilogue's rounding apart.
      const double step = c.output_qdq ? 0.05 : 1e-4 * max_abs(want_plain);
      EXPECT_TRUE(test::tensors_near(got, want_plain, step * 1.001, 0)) << "against the plain Q/DQ ops";
      // The QDQ model's own error against the float model (its activation
      // and output grids) is not made worse.
      EXPECT_GT(test::cosine(got, want_float), std::min(0.999, test::cosine(want_plain, want_float) - 1e-3))
          << "against the float model";
    }
  }
}

// Weights that are int8 in [-127, 127] with zero point 0 (quantize_static's
// symmetric weights), and an activation scale that range_for reproduces:
// without an output QDQ the fused op computes the plain ops' integer sums.
TEST(QdqFusion, SymmetricWeightsStayExact) {
  const Case& c = kCases[3];  // conv_no_bias_no_output_qdq
  const Weights w = make_weights(c, 12);
  const Tensor x = input_for(c, 4);
  auto fused = test::session_on(qdq_model(c, w), options(true));
  auto plain = test::session_on(qdq_model(c, w), options(false));
  ASSERT_TRUE(fused && plain);
  ASSERT_EQ(fused->graph().nodes.size(), 1u);
  const Tensor want = run(plain, x);
  EXPECT_TRUE(test::tensors_near(run(fused, x), want, 1e-5 * max_abs(want), 1e-6));
}

// Activation grids whose (scale, zero point) no float range reproduces
// with the first guess [-z s, (255 - z) s] (two of PaddleOCR det's), the
// ends of the zero-point range, and an int8 grid: all fused, all within
// one output step of the plain ops.
TEST(QdqFusion, ActivationGridsOfEveryKindFuse) {
  const Case& c = kCases[0];  // conv_per_channel, uint8 activations
  const Weights w = make_weights(c, 5);
  struct Grid {
    float scale;
    int zp;
  };
  for (const Grid& grid : {Grid{0.0555075f, 105}, Grid{0.024228895f, 45}, Grid{0.03f, 0}, Grid{0.03f, 255},
                           Grid{0.0123457f, 200}}) {
    SCOPED_TRACE(std::to_string(grid.scale) + " " + std::to_string(grid.zp));
    Variant v;
    v.x_scale = grid.scale;
    v.x_zero_point = grid.zp;
    auto fused = test::session_on(qdq_model(c, w, v), options(true));
    auto plain = test::session_on(qdq_model(c, w, v), options(false));
    ASSERT_TRUE(fused && plain);
    EXPECT_EQ(count_op(fused->graph(), "QConv"), 1);
    const Tensor x = input_for(c, 3);
    EXPECT_TRUE(test::tensors_near(run(fused, x), run(plain, x), 0.05 * 1.001, 0));
  }
}

TEST(QdqFusion, LeavesGraphsThatDoNotMatch) {
  struct Bad {
    const char* name;
    const Case* c;
    Variant v;
  };
  Variant other_scale;
  other_scale.dq_scale = 0.031f;  // the activation's Q and DQ disagree
  Variant wrong_axis;
  wrong_axis.weight_axis = 1;  // Conv weight per axis 1: not the output channel
  Variant alpha;
  alpha.gemm_alpha = 0.5f;
  Variant input_weight;
  input_weight.float_weight_input = true;
  const Bad bad[] = {
      {"activation_scales_differ", &kCases[0], other_scale},
      {"weight_axis_not_output_channels", &kCases[0], wrong_axis},
      {"gemm_alpha", &kCases[6], alpha},
      {"weight_not_constant", &kCases[4], input_weight},
  };
  for (const Bad& b : bad) {
    SCOPED_TRACE(b.name);
    const Case& c = *b.c;
    Weights w = make_weights(c, 3);
    if (b.v.weight_axis == 1) {
      // Conv weight [8, 3, 3, 3] with a scale per index of axis 1 (3 values).
      w.scale = test::make_tensor<float>({3}, {0.002f, 0.003f, 0.004f});
      w.zp = test::make_tensor<int8_t>({3}, {0, 0, 0});
    }
    auto fused = test::session_on(qdq_model(c, w, b.v), options(true));
    auto plain = test::session_on(qdq_model(c, w, b.v), options(false));
    ASSERT_TRUE(fused && plain);
    EXPECT_EQ(count_op(fused->graph(), op_name(c)), 1);
    EXPECT_EQ(count_op(fused->graph(), "QConv") + count_op(fused->graph(), "QMatMul"), 0);
    std::vector<NamedTensor> in = {{"x", input_for(c, 2)}};
    if (b.v.float_weight_input) in.push_back({"w_input", w.q});
    auto r1 = fused->run(in);
    auto r2 = plain->run(in);
    ASSERT_TRUE(r1.has_value() && r2.has_value());
    EXPECT_TRUE(test::tensors_equal((*r1)[0].tensor, (*r2)[0].tensor));
  }
}

TEST(QdqFusion, SharedActivationQdqFeedsTwoOpsAndGoes) {
  // One Q -> DQ read by two Convs: both fused, the pair removed after both.
  const Case& c = kCases[0];
  const Weights w = make_weights(c, 8);
  auto build = [&] {
    Graph* g;
    int x;
    auto m = new_model(&g, &x);
    const int xdq = add_qdq(*g, x, "x_", kXScale, false, x_zp(c));
    std::vector<int> outs;
    for (const char* pre : {"a_", "b_"}) {
      Attrs dq_attrs;
      dq_attrs["axis"] = test::attr_int(0);
      const int wdq = test::add_node(*g, "DequantizeLinear", "",
                                     {test::add_init(*g, std::string(pre) + "w", w.q),
                                      test::add_init(*g, std::string(pre) + "w_scale", w.scale)},
                                     std::string(pre) + "w_dq", dq_attrs);
      outs.push_back(test::add_node(*g, "Conv", "", {xdq, wdq}, std::string(pre) + "y", op_attrs(c)));
    }
    g->outputs = outs;
    return m;
  };
  auto fused = test::session_on(build(), options(true));
  auto plain = test::session_on(build(), options(false));
  ASSERT_TRUE(fused && plain);
  EXPECT_EQ(count_op(fused->graph(), "QConv"), 2);
  EXPECT_EQ(fused->graph().nodes.size(), 2u);
  const Tensor x = input_for(c, 1);
  auto r1 = fused->run({{"x", x}});
  auto r2 = plain->run({{"x", x}});
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  for (size_t i = 0; i < 2; ++i)
    EXPECT_TRUE(test::tensors_near((*r1)[i].tensor, (*r2)[i].tensor, 1e-5 * max_abs((*r2)[i].tensor), 1e-6));
}

TEST(QdqFusion, KeepsTheActivationQdqWhileSomethingElseReadsIt) {
  const Case& c = kCases[4];  // matmul_per_channel_3d
  const Weights w = make_weights(c, 8);
  auto build = [&] {
    auto m = qdq_model(c, w);
    Graph& g = m->graph;
    // The activation's DQ output is also a graph output.
    g.outputs.push_back(g.find_value("x_dequantized"));
    return m;
  };
  auto fused = test::session_on(build(), options(true));
  ASSERT_TRUE(fused);
  EXPECT_EQ(count_op(fused->graph(), "QMatMul"), 1);
  // The activation's pair stays, and the output's.
  EXPECT_EQ(count_op(fused->graph(), "QuantizeLinear"), 2);
  EXPECT_EQ(count_op(fused->graph(), "DequantizeLinear"), 2);
  auto plain = test::session_on(build(), options(false));
  const Tensor x = input_for(c, 3);
  auto r1 = fused->run({{"x", x}});
  auto r2 = plain->run({{"x", x}});
  ASSERT_TRUE(r1.has_value() && r2.has_value());
  EXPECT_TRUE(test::tensors_equal((*r1)[1].tensor, (*r2)[1].tensor));
}

// ---- Operator form with quantized outputs: QuantizeLinear -> QLinearConv /
// QLinearMatMul -> DequantizeLinear.

std::shared_ptr<Model> qlinear_model(const Case& c, const Weights& w, bool same_x_scale = true) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  const int xs = test::add_init(*g, "x_scale", test::make_tensor<float>({}, {kXScale}));
  const int xz = test::add_init(*g, "x_zp", zp_tensor(c.s8_act, x_zp(c)));
  const int xq = test::add_node(*g, "QuantizeLinear", "", {x, xs, xz}, "xq");
  const int op_xs = same_x_scale ? xs : test::add_init(*g, "op_x_scale", test::make_tensor<float>({}, {0.031f}));
  const int ys = test::add_init(*g, "y_scale", test::make_tensor<float>({}, {0.05f}));
  const int yz = test::add_init(*g, "y_zp", zp_tensor(false, 128));
  std::vector<int> in = {xq, op_xs, xz, test::add_init(*g, "w", w.q), test::add_init(*g, "w_scale", w.scale),
                         test::add_init(*g, "w_zp", w.zp), ys, yz};
  const bool conv = c.op == Op::kConv;
  if (conv && c.bias) in.push_back(test::add_init(*g, "b", w.bias_q));
  const int yq = test::add_node(*g, conv ? "QLinearConv" : "QLinearMatMul", "", in, "yq", conv ? op_attrs(c) : Attrs{});
  g->outputs = {test::add_node(*g, "DequantizeLinear", "", {yq, ys, yz}, "y")};
  return m;
}

TEST(QdqFusion, QLinearOpsBetweenQuantizeAndDequantizeRunOnTheInt8Kernels) {
  for (const Case* c : {&kCases[0], &kCases[1], &kCases[2], &kCases[4], &kCases[5]}) {
    SCOPED_TRACE(c->name);
    const Weights w = make_weights(*c, 6);
    const Tensor x = input_for(*c, 7);
    auto plain = test::session_on(qlinear_model(*c, w), options(false));
    auto reference = test::session_on(float_model(*c, w), options(false));
    ASSERT_TRUE(plain && reference);
    const Tensor want = run(plain, x), want_float = run(reference, x);
    for (int threads : {1, 2}) {
      auto fused = test::session_on(qlinear_model(*c, w), options(true, threads));
      ASSERT_TRUE(fused);
      const Graph& g = fused->graph();
      EXPECT_EQ(count_op(g, c->op == Op::kConv ? "QConv" : "QMatMul"), 1);
      EXPECT_EQ(count_op(g, "QLinearConv") + count_op(g, "QLinearMatMul"), 0);
      // QConv -> QuantizeLinear (the output's requantization) -> DequantizeLinear.
      EXPECT_EQ(count_op(g, "QuantizeLinear"), 1);
      EXPECT_EQ(g.nodes.size(), 3u);
      const Tensor got = run(fused, x);
      // The same integers; the requantization may move an output by one step.
      EXPECT_TRUE(test::tensors_near(got, want, 0.05 * 1.001, 0));
      EXPECT_GT(test::cosine(got, want_float), std::min(0.999, test::cosine(want, want_float) - 1e-3));
    }
  }
}

TEST(QdqFusion, QLinearWithAnotherActivationScaleStaysPlain) {
  const Case& c = kCases[0];
  const Weights w = make_weights(c, 6);
  auto fused = test::session_on(qlinear_model(c, w, /*same_x_scale=*/false), options(true));
  auto plain = test::session_on(qlinear_model(c, w, false), options(false));
  ASSERT_TRUE(fused && plain);
  EXPECT_EQ(count_op(fused->graph(), "QLinearConv"), 1);
  const Tensor x = input_for(c, 7);
  EXPECT_TRUE(test::tensors_equal(run(fused, x), run(plain, x)));
}

}  // namespace
}  // namespace sarai
