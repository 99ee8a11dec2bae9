// INT8 end to end: converted fixture models run on the fast INT8 kernels
// and stay within cosine 0.999 of the FP32 path; epilogue fusion
// (runtime/fuse.h) changes no bit; GELU-chain fusion stays within float
// rounding; results do not depend on the thread count. The ISA level is whatever max_isa() allows: tests/CMakeLists.txt
// runs this file again under each SARAI_MAX_ISA level (ctest isa.*).
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/cpu_isa.h"
#include "runtime/fuse.h"
#include "runtime/session.h"
#include "onnx_builder.h"
#include "test_util.h"

namespace sarai {
namespace {

using test::fixture;

using test::cosine;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

Tensor run_once(std::shared_ptr<const Model> m, const std::string& input, const Tensor& x,
                SessionOptions o) {
  KernelTable table;
  register_kernels(table);
  auto session = Session::create(std::move(m), table, o);
  EXPECT_TRUE(session.has_value()) << session.message();
  if (!session.has_value()) return {};
  auto y = (*session)->run({{input, x}});
  EXPECT_TRUE(y.has_value()) << y.message();
  return y.has_value() ? (*y)[0].tensor : Tensor{};
}

struct Case {
  const char* model;
  const char* input;
  Shape shape;
  double measured_cos;  // INT8 vs FP32, when the gate was set (test_util.h)
};

class Int8EndToEnd : public ::testing::TestWithParam<Case> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, Int8EndToEnd,
                         ::testing::Values(Case{"whisper_tiny_encoder.onnx", "mel", {1, 80, 300}, 0.999934},
                                           Case{"small_cnn.onnx", "image", {1, 3, 64, 96}, 0.999924}),
                         [](const auto& info) {
                           std::string s = info.param.model;
                           return s.substr(0, s.find('.'));
                         });

TEST_P(Int8EndToEnd, CloseToFp32FusionExactThreadInvariant) {
  const Case& c = GetParam();
  const std::string dir = test::temp_dir("int8");
  auto fp32 = load_onnx(fixture(c.model));
  auto source = load_onnx(fixture(c.model));
  ASSERT_TRUE(fp32.has_value() && source.has_value());
  ASSERT_TRUE(quant::convert_to_blob(**source, dir + "/m.sarai", {}).has_value());
  auto blob = load_blob(dir + "/m.sarai");
  ASSERT_TRUE(blob.has_value()) << blob.message();
  const Tensor x = test::random_tensor(c.shape, 11);

  const Tensor ref = run_once(*fp32, c.input, x, SessionOptions{2});
  SessionOptions chain{2};
  chain.fuse_patterns = false;
  const Tensor ref_chain = run_once(*fp32, c.input, x, chain);
  const Tensor fused2 = run_once(*blob, c.input, x, SessionOptions{2});
  SessionOptions unfused{2};
  unfused.fuse = false;
  const Tensor plain2 = run_once(*blob, c.input, x, unfused);
  const Tensor fused1 = run_once(*blob, c.input, x, SessionOptions{1});
  const Tensor fused3 = run_once(*blob, c.input, x, SessionOptions{3});
  ASSERT_EQ(ref.shape(), fused2.shape());
  test::expect_cosine_near_measured(cosine(ref, fused2), c.measured_cos,
                                    c.model + std::string(" at ") + isa_name(max_isa()));
  EXPECT_TRUE(same_bits(fused2, plain2)) << "epilogue fusion changed the output";
  // The fused GELU rounds once where the exported chain rounds five times.
  EXPECT_GE(cosine(ref, ref_chain), 0.9999999);
  EXPECT_TRUE(same_bits(fused2, fused1)) << "1 thread differs from 2";
  EXPECT_TRUE(same_bits(fused2, fused3)) << "3 threads differ from 2";
}

// A hand-built graph exercising every fold: bias Add, residual Add whose
// operand broadcasts (the op's fallback path), Relu, and a residual of the
// exact shape (the epilogue path).
struct Built {
  std::shared_ptr<Model> model;
};

using test::add_node;
using test::add_init;
using test::add_input;

std::shared_ptr<Model> build_fusable(int64_t K, int64_t N) {
  auto m = std::make_shared<Model>();
  m->path = "fusable";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = add_input(g, "x");
  const int r = add_input(g, "r");  // [rows, N], broadcasts against y [2, rows, N]
  auto qmatmul = [&](const std::string& name, int in, uint32_t seed) {
    std::vector<int8_t> w(static_cast<size_t>(int8::packed_size(K, N)), 0);
    std::vector<int32_t> wsum(static_cast<size_t>(N), 0);
    uint32_t s = seed;
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) {
        s = s * 1664525u + 1013904223u;
        const int8_t v = static_cast<int8_t>(static_cast<int>(s >> 24) % 255 - 127);
        w[static_cast<size_t>(int8::packed_index(k, n, K))] = v;
        wsum[static_cast<size_t>(n)] += v;
      }
    const int wi = add_init(g, name + ".w", test::make_tensor<int8_t>({int8::packed_size(K, N)}, w));
    const int si = add_init(g, name + ".scale", test::random_tensor({N}, seed + 1, 1e-3f, 2e-2f));
    const int ws = add_init(g, name + ".wsum", test::make_tensor<int32_t>({N}, wsum));
    return add_node(g, "QMatMul", "sarai", {in, wi, si, ws}, name,
                    {{"K", test::attr_int(K)}, {"N", test::attr_int(N)}});
  };
  // a = relu(qmatmul(x) + bias + r)   (bias fold, broadcast residual, Relu)
  int a = qmatmul("a", x, 3);
  a = add_node(g, "Add", "", {a, add_init(g, "a.bias", test::random_tensor({N}, 4))}, "a_b");
  a = add_node(g, "Add", "", {r, a}, "a_r");
  a = add_node(g, "Relu", "", {a}, "a_relu");
  // b = qmatmul(a) + a   (exact-shape residual in the epilogue; K == N)
  int b = qmatmul("b", a, 5);
  b = add_node(g, "Add", "", {b, a}, "out");
  g.outputs = {b};
  return m;
}

TEST(Fuse, FoldsBiasResidualReluAndKeepsEveryBit) {
  const int64_t K = 24, N = 24;
  auto model = build_fusable(K, N);
  Graph fused = model->graph;
  EXPECT_EQ(fuse_quantized_epilogues(fused), 4);  // bias, residual, Relu, residual
  ASSERT_EQ(fused.nodes.size(), 2u);
  EXPECT_EQ(fused.nodes[0].inputs.size(), 6u);
  EXPECT_EQ(fused.nodes[0].attr_string("activation", ""), "Relu");
  EXPECT_EQ(fused.nodes[1].outputs[0], fused.outputs[0]);

  KernelTable table;
  register_kernels(table);
  const Tensor x = test::random_tensor({2, 5, K}, 8, -3.f, 3.f);
  const Tensor r = test::random_tensor({5, N}, 9);
  std::vector<Tensor> outs;
  for (bool fuse : {true, false}) {
    SessionOptions o{1};
    o.fuse = fuse;
    auto session = Session::create(model, table, o);
    ASSERT_TRUE(session.has_value()) << session.message();
    auto y = (*session)->run({{"x", x}, {"r", r}});
    ASSERT_TRUE(y.has_value()) << y.message();
    outs.push_back((*y)[0].tensor);
  }
  ASSERT_EQ(outs[0].shape(), (Shape{2, 5, N}));
  EXPECT_TRUE(same_bits(outs[0], outs[1]));
}

TEST(Fuse, LeavesGraphOutputsAndSharedValuesAlone) {
  auto model = build_fusable(16, 16);
  Graph g = model->graph;
  // Make the first QMatMul's output a graph output: nothing may fold into it.
  g.outputs.push_back(g.nodes[0].outputs[0]);
  const size_t before = g.nodes.size();
  const int folded = fuse_quantized_epilogues(g);
  EXPECT_EQ(folded, 1);  // only the second QMatMul's residual Add
  EXPECT_EQ(g.nodes.size(), before - 1);
}

// x -> Div(sqrt 8) -> Softmax, and the exported erf-GELU chain on another
// branch: the first pair becomes one ScaledSoftmax (bit-identical), the
// chain one Gelu (within float rounding).
TEST(Fuse, ScaledSoftmaxIsBitIdenticalAndGeluChainIsClose) {
  auto m = std::make_shared<Model>();
  m->path = "patterns";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = add_input(g, "x");
  auto scalar = [&](const std::string& name, float v) {
    return add_init(g, name, test::make_tensor<float>({}, {v}));
  };
  int s = add_node(g, "Div", "", {x, scalar("c", 2.8284271f)}, "scores");
  Node& sm = g.nodes[static_cast<size_t>(g.values[add_node(g, "Softmax", "", {s}, "probs")].producer)];
  sm.attrs["axis"] = test::attr_int(-1);
  int d = add_node(g, "Div", "", {x, scalar("sqrt2", 1.4142135f)}, "d");
  d = add_node(g, "Erf", "", {d}, "e");
  d = add_node(g, "Add", "", {scalar("one", 1.f), d}, "a");
  d = add_node(g, "Mul", "", {d, x}, "m");
  d = add_node(g, "Mul", "", {d, scalar("half", 0.5f)}, "gelu");
  g.outputs = {g.find_value("probs"), d};

  Graph fused = g;
  EXPECT_EQ(fuse_scaled_softmax(fused), 1);
  EXPECT_EQ(fuse_gelu(fused), 1);
  EXPECT_EQ(fused.nodes.size(), 2u);

  KernelTable table;
  register_kernels(table);
  const Tensor in = test::random_tensor({3, 7, 37}, 12, -6.f, 6.f);
  std::vector<std::vector<NamedTensor>> outs;
  for (bool on : {true, false}) {
    SessionOptions o{1};
    o.fuse_patterns = on;
    auto session = Session::create(m, table, o);
    ASSERT_TRUE(session.has_value()) << session.message();
    auto y = (*session)->run({{"x", in}});
    ASSERT_TRUE(y.has_value()) << y.message();
    outs.push_back(*y);
  }
  EXPECT_TRUE(same_bits(outs[0][0].tensor, outs[1][0].tensor));
  const Tensor& a = outs[0][1].tensor;
  const Tensor& b = outs[1][1].tensor;
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.numel(); ++i)
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], 2e-6f * (1.f + std::abs(b.data<float>()[i])))
        << "at " << i << " x = " << in.data<float>()[i];
}

// Dividing by a constant 0 or NaN before a Softmax is legal ONNX (every
// score becomes inf or NaN): such a pair stays unfused, since ScaledSoftmax
// refuses that divisor, and the session still runs it.
TEST(Fuse, ZeroOrNanDivisorStaysUnfusedAndRuns) {
  for (float divisor : {0.f, std::nanf("")}) {
    auto m = std::make_shared<Model>();
    m->path = "div_softmax";
    Graph& g = m->graph;
    g.opset = 17;
    const int x = add_input(g, "x");
    const int s = add_node(g, "Div", "", {x, add_init(g, "c", test::make_tensor<float>({}, {divisor}))}, "scores");
    Node& sm = g.nodes[static_cast<size_t>(g.values[add_node(g, "Softmax", "", {s}, "probs")].producer)];
    sm.attrs["axis"] = test::attr_int(-1);
    g.outputs = {g.find_value("probs")};
    Graph fused = g;
    EXPECT_EQ(fuse_scaled_softmax(fused), 0) << divisor;
    KernelTable table;
    register_kernels(table);
    auto session = Session::create(m, table, SessionOptions{1});
    ASSERT_TRUE(session.has_value()) << session.message();
    auto y = (*session)->run({{"x", test::random_tensor({2, 5}, 3)}});
    ASSERT_TRUE(y.has_value()) << y.message();
    EXPECT_TRUE(std::isnan((*y)[0].tensor.data<float>()[0])) << divisor;
  }
}

}  // namespace
}  // namespace sarai
