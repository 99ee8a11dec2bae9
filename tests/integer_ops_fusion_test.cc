// Pre-quantized ONNX models in operator form (runtime/fuse.h:
// fuse_integer_ops): quantize_dynamic's DynamicQuantizeLinear ->
// ConvInteger / MatMulInteger -> Cast -> Mul chains run as QConv / QMatMul
// on requantized weights. Checks, on graphs built exactly as quantize_dynamic
// writes them: the rewrite happens (node counts), its outputs are within the
// weight requantization of the plain ops' (fuse_patterns off) and within
// INT8 error of the float model on the dequantized weights, and every chain
// that does not match exactly is left to the plain ops, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/fuse.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

using Attrs = std::map<std::string, Attribute>;

struct Pattern {
  const char* name;
  bool conv = true;
  bool s8 = false;              // int8 weights and zero points (else uint8)
  bool zp_per_channel = false;  // w_zp [M] (else a scalar)
  bool scale_per_channel = false;  // Conv: w_scale [M, 1, 1]; MatMul: [N]
  Shape ws;                     // Conv [M, C/g, k...]; MatMul [K, N]
  Shape x;
  int64_t group = 1;
  std::vector<int64_t> strides = {}, pads = {};
  bool bias = true;             // Conv: Add(Reshape(b, [1, -1, 1, 1])); MatMul: Add(b [N])
};

int64_t channels(const Pattern& p) { return p.conv ? p.ws[0] : p.ws[1]; }

// The integer weight, zero points and scales of one pattern, and the float
// weight they stand for: (Wq - zp[ch]) * scale[ch].
struct Weights {
  Tensor q, zp, scale, bias;
  Tensor dequantized;
};

Weights make_weights(const Pattern& p, uint32_t seed) {
  Weights w;
  const int64_t M = channels(p), n = numel_of(p.ws);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> val(p.s8 ? -128 : 0, p.s8 ? 127 : 255);
  std::vector<int32_t> q(static_cast<size_t>(n)), zp(static_cast<size_t>(p.zp_per_channel ? M : 1));
  for (auto& v : q) v = val(rng);
  for (size_t c = 0; c < zp.size(); ++c) zp[c] = p.s8 ? static_cast<int32_t>(c % 7) - 3 : 100 + static_cast<int32_t>(c * 13 % 60);
  std::vector<float> scale(static_cast<size_t>(p.scale_per_channel ? M : 1));
  for (size_t c = 0; c < scale.size(); ++c) scale[c] = 0.004f + 0.001f * static_cast<float>(c % 5);
  if (p.s8) {
    w.q = test::make_tensor<int8_t>(p.ws, std::vector<int8_t>(q.begin(), q.end()));
    w.zp = test::make_tensor<int8_t>(p.zp_per_channel ? Shape{M} : Shape{}, std::vector<int8_t>(zp.begin(), zp.end()));
  } else {
    w.q = test::make_tensor<uint8_t>(p.ws, std::vector<uint8_t>(q.begin(), q.end()));
    w.zp = test::make_tensor<uint8_t>(p.zp_per_channel ? Shape{M} : Shape{}, std::vector<uint8_t>(zp.begin(), zp.end()));
  }
  Shape sshape = {};
  if (p.scale_per_channel) sshape = p.conv ? Shape{M, 1, 1} : Shape{M};
  w.scale = test::make_tensor<float>(sshape, scale);
  std::vector<float> bias;
  for (int64_t c = 0; c < M; ++c) bias.push_back(0.1f * static_cast<float>(c % 7) - 0.3f);
  w.bias = test::make_tensor<float>({M}, bias);
  w.dequantized = Tensor::allocate(DType::kFloat32, p.ws);
  float* d = w.dequantized.mutable_data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t ch = p.conv ? i / (n / M) : i % M;
    const int32_t z = zp[static_cast<size_t>(p.zp_per_channel ? ch : 0)];
    d[i] = static_cast<float>(q[static_cast<size_t>(i)] - z) * scale[static_cast<size_t>(p.scale_per_channel ? ch : 0)];
  }
  return w;
}

Attrs conv_attrs(const Pattern& p) {
  Attrs a;
  a["group"] = test::attr_int(p.group);
  a["kernel_shape"] = test::attr_ints({p.ws[2], p.ws[3]});
  if (!p.strides.empty()) a["strides"] = test::attr_ints(p.strides);
  if (!p.pads.empty()) a["pads"] = test::attr_ints(p.pads);
  return a;
}

// A node with several outputs (test::add_node makes one).
std::vector<int> add_multi(Graph& g, const std::string& op, std::vector<int> inputs, const std::vector<std::string>& outs) {
  Node n;
  n.name = outs[0] + "_node";
  n.op_type = op;
  n.inputs = std::move(inputs);
  for (const std::string& o : outs) {
    const int v = g.add_value(o);
    g.values[static_cast<size_t>(v)].producer = static_cast<int>(g.nodes.size());
    n.outputs.push_back(v);
  }
  g.nodes.push_back(std::move(n));
  return g.nodes.back().outputs;
}

struct Dql {
  int xq, scale, zp;
};

Dql add_dql(Graph& g, int x, const std::string& prefix) {
  const auto o = add_multi(g, "DynamicQuantizeLinear", {x}, {prefix + "xq", prefix + "x_scale", prefix + "x_zp"});
  return {o[0], o[1], o[2]};
}

// Everything quantize_dynamic writes for one op after the DQL; returns the
// op's float output. `weight` etc. may be given as values instead.
struct Parts {
  int w = kNoValue, zp = kNoValue, scale = kNoValue;  // kNoValue: initializers from Weights
  int x_scale = kNoValue;                              // kNoValue: the DQL's
  int x_zp = kNoValue;                                 // kNoValue: the DQL's
  int64_t cast_to = 1;
  bool omit_w_zp = false;  // ConvInteger / MatMulInteger with 3 inputs (w_zp = 0)
  // Conv: the scale product (w_scale [M]) put on the channel axis before the
  // output Mul: none, Reshape(s, `view_shape`), Unsqueeze(s, axes input
  // `view_axes`), or Unsqueeze with an axes attribute (opset < 13).
  enum class View { kNone, kReshape, kUnsqueezeInput, kUnsqueezeAttr } view = View::kNone;
  std::vector<int64_t> view_shape = {1, -1, 1, 1}, view_axes = {1, 2};
};

int add_chain(Graph& g, const Dql& d, const Pattern& p, const Weights& w, const std::string& pre,
              const Parts& parts = {}) {
  const int wv = parts.w != kNoValue ? parts.w : test::add_init(g, pre + "w_quantized", w.q);
  const int zv = parts.zp != kNoValue ? parts.zp : test::add_init(g, pre + "w_zero_point", w.zp);
  const int sv = parts.scale != kNoValue ? parts.scale : test::add_init(g, pre + "w_scale", w.scale);
  int s = test::add_node(g, "Mul", "", {parts.x_scale != kNoValue ? parts.x_scale : d.scale, sv}, pre + "scales_mul");
  using View = Parts::View;
  if (parts.view == View::kReshape) {
    const int64_t r = static_cast<int64_t>(parts.view_shape.size());
    const int shape = test::add_init(g, pre + "scale_shape", test::make_tensor<int64_t>({r}, parts.view_shape));
    s = test::add_node(g, "Reshape", "", {s, shape}, pre + "scale_view");
  } else if (parts.view == View::kUnsqueezeInput) {
    const int64_t r = static_cast<int64_t>(parts.view_axes.size());
    const int axes = test::add_init(g, pre + "scale_axes", test::make_tensor<int64_t>({r}, parts.view_axes));
    s = test::add_node(g, "Unsqueeze", "", {s, axes}, pre + "scale_view");
  } else if (parts.view == View::kUnsqueezeAttr) {
    s = test::add_node(g, "Unsqueeze", "", {s}, pre + "scale_view", {{"axes", test::attr_ints(parts.view_axes)}});
  }
  const int xz = parts.x_zp != kNoValue ? parts.x_zp : d.zp;
  std::vector<int> in = {d.xq, wv, xz, zv};
  if (parts.omit_w_zp) in.pop_back();
  const int yi = p.conv ? test::add_node(g, "ConvInteger", "", in, pre + "int_out", conv_attrs(p))
                        : test::add_node(g, "MatMulInteger", "", in, pre + "int_out");
  const int c = test::add_node(g, "Cast", "", {yi}, pre + "cast", {{"to", test::attr_int(parts.cast_to)}});
  int y = test::add_node(g, "Mul", "", {c, s}, pre + "scaled");
  if (!p.bias) return y;
  if (p.conv) {
    const int b = test::add_init(g, pre + "bias", w.bias);
    const int shape = test::add_init(g, pre + "bias_shape", test::make_tensor<int64_t>({4}, {1, -1, 1, 1}));
    const int r = test::add_node(g, "Reshape", "", {b, shape}, pre + "bias_reshaped");
    return test::add_node(g, "Add", "", {y, r}, pre + "y");
  }
  return test::add_node(g, "Add", "", {y, test::add_init(g, pre + "bias", w.bias)}, pre + "y");
}

std::shared_ptr<Model> new_model(Graph** g, int* x) {
  auto m = std::make_shared<Model>();
  m->path = "integer_ops.onnx";
  *g = &m->graph;
  (*g)->opset = 17;
  *x = test::add_input(**g, "x");
  return m;
}

std::shared_ptr<Model> quantized_model(const Pattern& p, const Weights& w) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  g->outputs = {add_chain(*g, add_dql(*g, x, ""), p, w, "")};
  return m;
}

// The float op the chain stands for, on the dequantized weight.
std::shared_ptr<Model> float_model(const Pattern& p, const Weights& w) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  const int wv = test::add_init(*g, "w", w.dequantized);
  if (p.conv) {
    std::vector<int> in = {x, wv};
    if (p.bias) in.push_back(test::add_init(*g, "b", w.bias));
    g->outputs = {test::add_node(*g, "Conv", "", in, "y", conv_attrs(p))};
  } else {
    int y = test::add_node(*g, "MatMul", "", {x, wv}, "mm");
    if (p.bias) y = test::add_node(*g, "Add", "", {y, test::add_init(*g, "b", w.bias)}, "y");
    g->outputs = {y};
  }
  return m;
}

SessionOptions options(bool fuse_patterns, int threads = 1) {
  SessionOptions o;
  o.num_threads = threads;
  o.fuse_patterns = fuse_patterns;
  return o;
}

std::vector<Tensor> run(const std::unique_ptr<Session>& s, const Tensor& x) {
  std::vector<Tensor> out;
  if (!s) return out;
  auto r = s->run({{"x", x}});
  EXPECT_TRUE(r.has_value()) << r.status().message();
  if (r)
    for (auto& t : *r) out.push_back(t.tensor);
  return out;
}

double max_abs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, std::fabs(static_cast<double>(t.data<float>()[i])));
  return m;
}

int count_op(const Graph& g, const std::string& op) {
  return static_cast<int>(std::count_if(g.nodes.begin(), g.nodes.end(), [&](const Node& n) { return n.op_type == op; }));
}

// Fused against unfused (same activation quantization; the weight
// requantized to s8: at most half a step of max|w| / 127 per weight) and
// against the float model (plus the activation's u8 rounding).
void expect_close(const Tensor& got, const Tensor& want, double rel, const std::string& what) {
  ASSERT_TRUE(got.defined() && want.defined()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_GT(test::cosine(got, want), 0.999) << what;
  EXPECT_TRUE(test::tensors_near(got, want, rel * max_abs(want), 0)) << what;
}

const Pattern kPatterns[] = {
    {"conv_u8_per_tensor", true, false, false, false, {8, 3, 3, 3}, {1, 3, 9, 11}, 1, {}, {1, 1, 1, 1}},
    {"conv_s8_per_channel_strided", true, true, true, true, {20, 6, 3, 3}, {2, 6, 7, 8}, 1, {2, 2}, {1, 0, 1, 0}},
    {"conv_u8_grouped", true, false, true, true, {12, 2, 3, 3}, {1, 6, 10, 10}, 3, {2, 2}, {1, 1, 1, 1}},
    {"conv_s8_depthwise_no_bias", true, true, false, true, {8, 1, 3, 3}, {1, 8, 6, 6}, 8, {}, {1, 1, 1, 1}, false},
    {"conv_u8_pointwise", true, false, false, false, {17, 5, 1, 1}, {1, 5, 4, 4}},
    {"matmul_u8_2d", false, false, false, false, {24, 20}, {5, 24}},
    {"matmul_s8_3d_per_channel", false, true, true, true, {33, 18}, {2, 7, 33}},
    {"matmul_u8_per_channel_zp_no_bias", false, false, true, false, {16, 40}, {3, 16}, 1, {}, {}, false},
};

TEST(IntegerOpsFusion, RewritesQuantizeDynamicChainsAndMatchesThePlainOps) {
  for (const Pattern& p : kPatterns) {
    SCOPED_TRACE(p.name);
    const Weights w = make_weights(p, 7);
    const Tensor x = test::random_tensor(p.x, 3, -2.f, 3.f);
    auto plain = test::session_on(quantized_model(p, w), options(false));
    auto reference = test::session_on(float_model(p, w), options(false));
    ASSERT_TRUE(plain && reference);
    EXPECT_EQ(count_op(plain->graph(), p.conv ? "ConvInteger" : "MatMulInteger"), 1);
    const Tensor want_plain = run(plain, x).at(0);
    const Tensor want_float = run(reference, x).at(0);
    for (int threads : {1, 2}) {
      SCOPED_TRACE(threads);
      auto fused = test::session_on(quantized_model(p, w), options(true, threads));
      ASSERT_TRUE(fused);
      // The whole chain (and the bias Add) is one node.
      EXPECT_EQ(fused->graph().nodes.size(), 1u);
      const Node& n = fused->graph().nodes[0];
      EXPECT_EQ(n.domain, "sarai");
      if (p.conv) EXPECT_TRUE(n.op_type == "QConv" || n.op_type == "Fp32Conv") << n.op_type;
      else EXPECT_EQ(n.op_type, "QMatMul");
      const std::vector<Tensor> got = run(fused, x);
      ASSERT_EQ(got.size(), 1u);
      expect_close(got[0], want_plain, 0.02, "against the plain ops");
      expect_close(got[0], want_float, 0.03, "against the float model");
    }
  }
}

// Weights whose Wq - w_zp fit in ±127 are kept as they are (only the scale
// moves into the op): the fused ops compute the plain ops' integers and
// the same float epilogue.
TEST(IntegerOpsFusion, WeightsThatFitInt8StayExact) {
  for (const Pattern& p : kPatterns) {
    SCOPED_TRACE(p.name);
    Weights w = make_weights(p, 11);
    // Conv: u8 weights within 127 of their zero points (100..159); s8 ones in [-120, 120].
    for (int64_t i = 0; i < w.q.numel(); ++i) {
      if (p.s8) w.q.mutable_data<int8_t>()[i] = static_cast<int8_t>(w.q.data<int8_t>()[i] * 120 / 128);
      else w.q.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(100 + w.q.data<uint8_t>()[i] % 128);
    }
    const Tensor x = test::random_tensor(p.x, 3, -2.f, 3.f);
    SessionOptions int8_everywhere = options(true);
    int8_everywhere.fp32_fallback = Fp32Fallback::kOff;  // the pointwise conv would run in FP32 without VNNI
    auto fused = test::session_on(quantized_model(p, w), int8_everywhere);
    auto plain = test::session_on(quantized_model(p, w), options(false));
    ASSERT_TRUE(fused && plain);
    ASSERT_EQ(fused->graph().nodes.size(), 1u);
    const Tensor got = run(fused, x).at(0), want = run(plain, x).at(0);
    EXPECT_TRUE(test::tensors_near(got, want, 1e-6 * max_abs(want), 1e-6));
  }
}

// Without a weight zero point (0), and a Conv's per-channel scale as
// [1, M, 1, 1].
TEST(IntegerOpsFusion, OmittedWeightZeroPointAndFourDimensionalScale) {
  for (bool conv : {true, false}) {
    SCOPED_TRACE(conv);
    const Pattern& p = conv ? kPatterns[1] : kPatterns[6];  // s8 weights, per-channel scales
    Weights w = make_weights(p, 13);
    const int64_t M = channels(p);
    if (conv) w.scale = test::make_tensor<float>({1, M, 1, 1}, std::vector<float>(w.scale.data<float>(), w.scale.data<float>() + M));
    auto build = [&] {
      Graph* g;
      int x;
      auto m = new_model(&g, &x);
      Parts parts;
      parts.omit_w_zp = true;
      g->outputs = {add_chain(*g, add_dql(*g, x, ""), p, w, "", parts)};
      return m;
    };
    auto fused = test::session_on(build(), options(true));
    auto plain = test::session_on(build(), options(false));
    ASSERT_TRUE(fused && plain);
    EXPECT_EQ(fused->graph().nodes.size(), 1u);
    const Tensor x = test::random_tensor(p.x, 6, -2.f, 3.f);
    expect_close(run(fused, x).at(0), run(plain, x).at(0), 0.02, "no w_zp");
  }
}

// A Conv's per-channel scale as a vector [M] (quantize_dynamic-style
// per-channel weights), put on the channel axis by a Reshape or an
// Unsqueeze between the scale Mul and the output Mul: fused like [M, 1, 1].
// Views that do not put M on the channel axis stay plain ops.
TEST(IntegerOpsFusion, PerChannelConvScaleVectorThroughAView) {
  const Pattern& p = kPatterns[1];  // conv_s8_per_channel_strided: per-channel zp and scale
  Weights w = make_weights(p, 17);
  const int64_t M = channels(p);
  w.scale = test::make_tensor<float>({M}, std::vector<float>(w.scale.data<float>(), w.scale.data<float>() + M));
  using View = Parts::View;
  struct Case {
    const char* name;
    View view;
    std::vector<int64_t> shape, axes;
    int64_t opset;
    bool fused;
  };
  const Case cases[] = {
      {"reshape_1_m_1_1", View::kReshape, {1, -1, 1, 1}, {}, 17, true},
      {"reshape_m_1_1", View::kReshape, {M, 1, 1}, {}, 17, true},
      {"unsqueeze_input_m_1_1", View::kUnsqueezeInput, {}, {1, 2}, 17, true},
      {"unsqueeze_input_1_m_1_1_negative_axes", View::kUnsqueezeInput, {}, {0, -1, -2}, 17, true},
      {"unsqueeze_attr_m_1_1", View::kUnsqueezeAttr, {}, {1, 2}, 11, true},
      // M on the last axis, or on axis 0 of a rank-4 view: not per channel.
      {"reshape_last_axis", View::kReshape, {1, 1, 1, -1}, {}, 17, false},
      {"reshape_axis0_rank4", View::kReshape, {-1, 1, 1, 1}, {}, 17, false},
      {"unsqueeze_rank2", View::kUnsqueezeInput, {}, {1}, 17, false},
      {"unsqueeze_repeated_axis", View::kUnsqueezeInput, {}, {1, 1}, 17, false},
  };
  const Tensor x = test::random_tensor(p.x, 21, -2.f, 3.f);
  auto reference = test::session_on(float_model(p, w), options(false));
  ASSERT_TRUE(reference);
  const Tensor want_float = run(reference, x).at(0);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto build = [&] {
      Graph* g;
      int xv;
      auto m = new_model(&g, &xv);
      g->opset = c.opset;
      Parts parts;
      parts.view = c.view;
      parts.view_shape = c.shape;
      parts.view_axes = c.axes;
      g->outputs = {add_chain(*g, add_dql(*g, xv, ""), p, w, "", parts)};
      return m;
    };
    auto plain = test::session_on(build(), options(false));
    auto fused = test::session_on(build(), options(true));
    if (!c.fused) {
      // Not per channel: an invalid broadcast or another meaning; nothing
      // is rewritten, so the fused session is the plain graph.
      ASSERT_TRUE(fused);
      EXPECT_EQ(count_op(fused->graph(), "ConvInteger"), 1);
      EXPECT_EQ(count_op(fused->graph(), "QConv") + count_op(fused->graph(), "Fp32Conv"), 0);
      continue;
    }
    ASSERT_TRUE(fused && plain);
    EXPECT_EQ(fused->graph().nodes.size(), 1u);
    const Tensor got = run(fused, x).at(0);
    expect_close(got, run(plain, x).at(0), 0.02, "against the plain ops");
    expect_close(got, want_float, 0.03, "against the float model");
  }
  // Without a view, [N, M, H, W] * [M] broadcasts over W: not per channel.
  auto bare = test::session_on(quantized_model(p, w), options(true));
  if (bare) {
    EXPECT_EQ(count_op(bare->graph(), "ConvInteger"), 1);
  }
}

TEST(IntegerOpsFusion, KeepsTheAddAsAnOpWithoutTheEpilogueFusion) {
  const Pattern& p = kPatterns[5];  // matmul_u8_2d: its bias is an Add of an initializer
  const Weights w = make_weights(p, 7);
  SessionOptions o = options(true);
  o.fuse = false;
  auto s = test::session_on(quantized_model(p, w), o);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->graph().nodes.size(), 2u);
  EXPECT_EQ(count_op(s->graph(), "QMatMul"), 1);
  EXPECT_EQ(count_op(s->graph(), "Add"), 1);
  const Tensor x = test::random_tensor(p.x, 3, -2.f, 3.f);
  auto plain = test::session_on(quantized_model(p, w), options(false));
  expect_close(run(s, x).at(0), run(plain, x).at(0), 0.02, "unfused Add");
}

TEST(IntegerOpsFusion, ConvFollowedByReluFoldsBiasAndRelu) {
  const Pattern& p = kPatterns[1];
  const Weights w = make_weights(p, 5);
  auto build = [&] {
    Graph* g;
    int x;
    auto m = new_model(&g, &x);
    const int y = add_chain(*g, add_dql(*g, x, ""), p, w, "");
    g->outputs = {test::add_node(*g, "Relu", "", {y}, "r")};
    return m;
  };
  auto fused = test::session_on(build(), options(true));
  auto plain = test::session_on(build(), options(false));
  ASSERT_TRUE(fused && plain);
  ASSERT_EQ(fused->graph().nodes.size(), 1u);
  EXPECT_EQ(fused->graph().nodes[0].attr_string("activation", ""), "Relu");
  const Tensor x = test::random_tensor(p.x, 4, -2.f, 3.f);
  expect_close(run(fused, x).at(0), run(plain, x).at(0), 0.02, "Conv + bias + Relu");
}

TEST(IntegerOpsFusion, SharedDynamicQuantizeLinearFeedsBothAndGoes) {
  const Pattern a = kPatterns[0];
  Pattern b = kPatterns[0];
  b.ws = {5, 3, 1, 1};
  b.pads = {};
  b.s8 = true;
  const Weights wa = make_weights(a, 1), wb = make_weights(b, 2);
  auto build = [&] {
    Graph* g;
    int x;
    auto m = new_model(&g, &x);
    const Dql d = add_dql(*g, x, "");
    const int ya = add_chain(*g, d, a, wa, "a_");
    const int yb = add_chain(*g, d, b, wb, "b_");
    g->outputs = {ya, yb};
    return m;
  };
  auto fused = test::session_on(build(), options(true));
  auto plain = test::session_on(build(), options(false));
  ASSERT_TRUE(fused && plain);
  EXPECT_EQ(fused->graph().nodes.size(), 2u);
  EXPECT_EQ(count_op(fused->graph(), "DynamicQuantizeLinear"), 0);
  const Tensor x = test::random_tensor(a.x, 9, -1.f, 2.f);
  const auto got = run(fused, x), want = run(plain, x);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(want.size(), 2u);
  expect_close(got[0], want[0], 0.02, "first");
  expect_close(got[1], want[1], 0.02, "second");
}

TEST(IntegerOpsFusion, KeepsTheDqlWhileSomethingElseReadsIt) {
  const Pattern& p = kPatterns[0];
  const Weights w = make_weights(p, 1);
  auto build = [&] {
    Graph* g;
    int x;
    auto m = new_model(&g, &x);
    const Dql d = add_dql(*g, x, "");
    g->outputs = {add_chain(*g, d, p, w, ""), d.scale};
    return m;
  };
  auto fused = test::session_on(build(), options(true));
  ASSERT_TRUE(fused);
  EXPECT_EQ(count_op(fused->graph(), "DynamicQuantizeLinear"), 1);
  EXPECT_EQ(count_op(fused->graph(), "QConv") + count_op(fused->graph(), "Fp32Conv"), 1);
  EXPECT_EQ(count_op(fused->graph(), "ConvInteger"), 0);
  auto plain = test::session_on(build(), options(false));
  const Tensor x = test::random_tensor(p.x, 2, -1.f, 2.f);
  const auto got = run(fused, x), want = run(plain, x);
  ASSERT_EQ(got.size(), 2u);
  expect_close(got[0], want.at(0), 0.02, "y");
  EXPECT_TRUE(test::tensors_near(got[1], want.at(1), 0, 0));
}

// Each variant breaks one piece of the pattern: the session must leave the
// chain to the plain ops (same bytes as without fuse_patterns).
TEST(IntegerOpsFusion, LeavesEveryChainThatDoesNotMatchExactly) {
  const Pattern conv = kPatterns[0];
  const Pattern mm = kPatterns[5];
  struct Variant {
    const char* name;
    const Pattern* p;
    std::function<std::vector<int>(Graph&, int, const Weights&)> build;  // returns the outputs
    std::vector<std::pair<std::string, Tensor>> extra_inputs;
    bool compare = true;  // false: outputs hold NaN
  };
  const Weights wc = make_weights(conv, 3), wm = make_weights(mm, 3);
  Pattern conv_vector_scale = conv;  // w_scale [M], broadcast over W, not over channels
  conv_vector_scale.ws = {11, 3, 3, 3};
  conv_vector_scale.x = {1, 3, 5, 11};
  conv_vector_scale.scale_per_channel = true;
  Weights wv = make_weights(conv_vector_scale, 4);
  wv.scale = test::make_tensor<float>({11}, std::vector<float>(wv.scale.data<float>(), wv.scale.data<float>() + 11));
  std::vector<Variant> variants = {
      {"weight_is_an_input", &conv,
       [&](Graph& g, int x, const Weights& w) {
         const int wi = test::add_input(g, "w_in", DType::kUInt8);
         Parts parts;
         parts.w = wi;
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), conv, w, "", parts)};
       },
       {{"w_in", wc.q}}},
      {"zero_point_is_an_input", &conv,
       [&](Graph& g, int x, const Weights& w) {
         const int zi = test::add_input(g, "zp_in", DType::kUInt8);
         Parts parts;
         parts.zp = zi;
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), conv, w, "", parts)};
       },
       {{"zp_in", wc.zp}}},
      {"scale_is_an_input", &mm,
       [&](Graph& g, int x, const Weights& w) {
         const int si = test::add_input(g, "scale_in");
         Parts parts;
         parts.scale = si;
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), mm, w, "", parts)};
       },
       {{"scale_in", wm.scale}}},
      {"scale_of_another_dql", &mm,
       [&](Graph& g, int x, const Weights& w) {
         const Dql other = add_dql(g, x, "other_");
         Parts parts;
         parts.x_scale = other.scale;
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), mm, w, "", parts), other.xq};
       },
       {}},
      {"zero_point_of_another_dql", &mm,
       [&](Graph& g, int x, const Weights& w) {
         const Dql other = add_dql(g, x, "other_");
         Parts parts;
         parts.x_zp = other.zp;
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), mm, w, "", parts), other.scale};
       },
       {}},
      {"integer_output_read_twice", &mm,
       [&](Graph& g, int x, const Weights& w) {
         const int y = add_chain(g, add_dql(g, x, ""), mm, w, "");
         return std::vector<int>{y, g.find_value("int_out")};
       },
       {}},
      {"cast_output_is_a_graph_output", &conv,
       [&](Graph& g, int x, const Weights& w) {
         const int y = add_chain(g, add_dql(g, x, ""), conv, w, "");
         return std::vector<int>{y, g.find_value("cast")};
       },
       {}},
      {"cast_through_double", &mm,
       [&](Graph& g, int x, const Weights& w) {
         // Cast to DOUBLE and back: the Mul does not read a Cast to FLOAT
         // of the integer op.
         const Dql d = add_dql(g, x, "");
         const int wv = test::add_init(g, "w_quantized", w.q);
         const int zv = test::add_init(g, "w_zero_point", w.zp);
         const int sv = test::add_init(g, "w_scale", w.scale);
         const int s = test::add_node(g, "Mul", "", {d.scale, sv}, "scales_mul");
         const int yi = test::add_node(g, "MatMulInteger", "", {d.xq, wv, d.zp, zv}, "int_out");
         const int c = test::add_node(g, "Cast", "", {yi}, "cast", {{"to", test::attr_int(11)}});
         const int c2 = test::add_node(g, "Cast", "", {c}, "cast2", {{"to", test::attr_int(1)}});
         return std::vector<int>{test::add_node(g, "Mul", "", {c2, s}, "scaled")};
       },
       {}},
      {"conv_scale_over_the_last_axis", &conv_vector_scale,
       [&](Graph& g, int x, const Weights&) {
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), conv_vector_scale, wv, "")};
       },
       {}},
      {"non_finite_scale", &mm,
       [&](Graph& g, int x, const Weights& w) {
         Parts parts;
         parts.scale = test::add_init(g, "bad_scale", test::make_tensor<float>({}, {INFINITY}));
         return std::vector<int>{add_chain(g, add_dql(g, x, ""), mm, w, "", parts)};
       },
       {},
       false},
  };
  for (const Variant& v : variants) {
    SCOPED_TRACE(v.name);
    const Weights& w = v.p == &mm ? wm : wc;
    auto build = [&] {
      Graph* g;
      int x;
      auto m = new_model(&g, &x);
      g->outputs = v.build(*g, x, w);
      return m;
    };
    // The rewrite itself: nothing to do.
    auto model = build();
    EXPECT_EQ(fuse_integer_ops(model->graph), 0);
    auto fused = test::session_on(build(), options(true));
    auto plain = test::session_on(build(), options(false));
    ASSERT_TRUE(fused && plain);
    EXPECT_EQ(count_op(fused->graph(), v.p->conv ? "ConvInteger" : "MatMulInteger"), 1);
    std::vector<NamedTensor> in = {{"x", test::random_tensor(v.p->x, 5, -1.f, 2.f)}};
    for (const auto& [name, t] : v.extra_inputs) in.push_back({name, t});
    auto got = fused->run(in);
    auto want = plain->run(in);
    ASSERT_TRUE(got.has_value()) << got.status().message();
    ASSERT_TRUE(want.has_value()) << want.status().message();
    ASSERT_EQ(got->size(), want->size());
    if (!v.compare) continue;
    for (size_t i = 0; i < got->size(); ++i) EXPECT_TRUE(test::tensors_near((*got)[i].tensor, (*want)[i].tensor, 0, 0));
  }
}

// A reduction past the INT8 ops' int32 bound (qref::kMaxReduction) stays
// with MatMulInteger, which accumulates without that limit.
TEST(IntegerOpsFusion, LeavesReductionsPastTheInt8BoundToThePlainOps) {
  Pattern p = kPatterns[5];
  p.ws = {66312, 2};
  p.x = {1, 66312};
  const Weights w = make_weights(p, 5);
  auto model = quantized_model(p, w);
  EXPECT_EQ(fuse_integer_ops(model->graph), 0);
  p.ws = {66311, 2};
  p.x = {1, 66311};
  auto at_bound = quantized_model(p, make_weights(p, 5));
  EXPECT_EQ(fuse_integer_ops(at_bound->graph), 1);
}

TEST(IntegerOpsFusion, LeavesGraphsWithoutThePatternAlone) {
  Graph* g;
  int x;
  auto m = new_model(&g, &x);
  g->outputs = {test::add_node(*g, "Relu", "", {x}, "y")};
  EXPECT_EQ(fuse_integer_ops(m->graph), 0);
  EXPECT_EQ(m->graph.nodes.size(), 1u);
}

}  // namespace
}  // namespace sarai
