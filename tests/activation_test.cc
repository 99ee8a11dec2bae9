// Unary activations against std:: functions evaluated in double, hand values
// and the error messages.
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

// Float tolerance for every transcendental comparison here.
constexpr double kAtol = 1e-6, kRtol = 1e-6;

// The same shape as x with ref(x) evaluated in double.
template <class Ref>
Tensor map_ref(const Tensor& x, Ref ref) {
  Tensor y = Tensor::allocate(DType::kFloat32, x.shape());
  for (int64_t i = 0; i < x.numel(); ++i)
    y.mutable_data<float>()[i] = static_cast<float>(ref(static_cast<double>(x.data<float>()[i])));
  return y;
}

TEST(Activation, UnaryMatchDoubleReference) {
  set_num_threads(2);
  Tensor x = random_tensor({3, 50001}, 7, -6.f, 6.f);  // several parallel chunks
  struct Case { KernelFn fn; const char* op; double (*ref)(double); };
  const Case cases[] = {
      {kernels::Erf, "Erf", [](double v) { return std::erf(v); }},
      {kernels::Tanh, "Tanh", [](double v) { return std::tanh(v); }},
      {kernels::Sigmoid, "Sigmoid", [](double v) { return 1.0 / (1.0 + std::exp(-v)); }},
      {kernels::Relu, "Relu", [](double v) { return v < 0 ? 0.0 : v; }},
  };
  for (const Case& c : cases)
    EXPECT_TRUE(tensors_near(run1(c.fn, make_node(c.op, 1), {x}), map_ref(x, c.ref), kAtol, kRtol)) << c.op;
  Tensor pos = random_tensor({1000}, 8, 0.f, 100.f);
  EXPECT_TRUE(tensors_near(run1(kernels::Sqrt, make_node("Sqrt", 1), {pos}),
                           map_ref(pos, [](double v) { return std::sqrt(v); }), kAtol, kRtol));
  set_num_threads(1);
}

TEST(Activation, HandValuesAndExtremes) {
  Tensor x = make_tensor<float>({5}, {-100.f, -1.f, 0.f, 1.f, 100.f});
  Tensor s = run1(kernels::Sigmoid, make_node("Sigmoid", 1), {x});
  EXPECT_NEAR(s.data<float>()[0], 0.f, 1e-40);
  EXPECT_NEAR(s.data<float>()[1], 0.26894142, 1e-7);
  EXPECT_FLOAT_EQ(s.data<float>()[2], 0.5f);
  EXPECT_FLOAT_EQ(s.data<float>()[4], 1.f);
  EXPECT_TRUE(tensors_equal(run1(kernels::Relu, make_node("Relu", 1), {x}), make_tensor<float>({5}, {0, 0, 0, 1, 100})));
  Tensor sq = run1(kernels::Sqrt, make_node("Sqrt", 1), {make_tensor<float>({3}, {4, 0, -1})});
  EXPECT_EQ(sq.data<float>()[0], 2.f);
  EXPECT_TRUE(std::isnan(sq.data<float>()[2]));
  // Relu on integers (opset 14).
  EXPECT_TRUE(tensors_equal(run1(kernels::Relu, make_node("Relu", 1), {make_tensor<int32_t>({3}, {-5, 0, 5})}, 14),
                            make_tensor<int32_t>({3}, {0, 0, 5})));
}

TEST(Activation, Gelu) {
  Tensor x = random_tensor({4, 257}, 9, -5.f, 5.f);
  Node none = make_node("Gelu", 1);
  Tensor want = map_ref(x, [](double v) { return 0.5 * v * (1 + std::erf(v / std::numbers::sqrt2)); });
  EXPECT_TRUE(tensors_near(run1(kernels::Gelu, none, {x}, 20), want, kAtol, kRtol));
  none.attrs["approximate"] = attr_string("none");
  EXPECT_TRUE(tensors_near(run1(kernels::Gelu, none, {x}, 20), want, kAtol, kRtol));

  Node tanh_node = make_node("Gelu", 1);
  tanh_node.attrs["approximate"] = attr_string("tanh");
  Tensor want_tanh = map_ref(x, [](double v) {
    return 0.5 * v * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (v + 0.044715 * v * v * v)));
  });
  EXPECT_TRUE(tensors_near(run1(kernels::Gelu, tanh_node, {x}, 20), want_tanh, kAtol, kRtol));
  // Hand value: gelu(1) = 0.5 (1 + erf(1/sqrt2)) = 0.8413447.
  EXPECT_NEAR(run1(kernels::Gelu, make_node("Gelu", 1), {make_tensor<float>({1}, {1.f})}, 20).data<float>()[0],
              0.8413447, 1e-6);

  Node bad = make_node("Gelu", 1);
  bad.attrs["approximate"] = attr_string("fast");
  std::string msg = run_error(kernels::Gelu, bad, {x}, 20);
  EXPECT_NE(msg.find("attribute 'approximate' must be \"none\" or \"tanh\", got \"fast\""), std::string::npos) << msg;
}

TEST(Activation, HardSigmoidAndHardSwish) {
  Tensor x = make_tensor<float>({5}, {-4.f, -1.f, 0.f, 1.f, 4.f});
  EXPECT_TRUE(tensors_near(run1(kernels::HardSigmoid, make_node("HardSigmoid", 1), {x}),
                           make_tensor<float>({5}, {0.f, 0.3f, 0.5f, 0.7f, 1.f})));
  Node hs = make_node("HardSigmoid", 1);
  hs.attrs["alpha"] = attr_float(0.5f);
  hs.attrs["beta"] = attr_float(0.6f);
  EXPECT_TRUE(tensors_near(run1(kernels::HardSigmoid, hs, {x}), make_tensor<float>({5}, {0.f, 0.1f, 0.6f, 1.f, 1.f})));
  EXPECT_TRUE(tensors_near(run1(kernels::HardSwish, make_node("HardSwish", 1), {x}, 14),
                           make_tensor<float>({5}, {0.f, -1.f / 3, 0.f, 2.f / 3, 4.f})));
}

TEST(Activation, FloatOnlyErrors) {
  Tensor i = make_tensor<int64_t>({2}, {1, 2});
  struct Case { KernelFn fn; const char* op; const char* expect; };
  const Case cases[] = {
      {kernels::Sqrt, "Sqrt", "input 'X' must be float32, got int64"},
      {kernels::Erf, "Erf", "input 'input' must be float32, got int64"},
      {kernels::Tanh, "Tanh", "input 'input' must be float32, got int64"},
      {kernels::Sigmoid, "Sigmoid", "input 'X' must be float32, got int64"},
      {kernels::HardSigmoid, "HardSigmoid", "must be float32, got int64"},
      {kernels::HardSwish, "HardSwish", "must be float32, got int64"},
      {kernels::Gelu, "Gelu", "must be float32, got int64"},
  };
  for (const Case& c : cases) {
    std::string msg = run_error(c.fn, make_node(c.op, 1), {i}, 20);
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.op << ": " << msg;
  }
  std::string msg = run_error(kernels::Relu, make_node("Relu", 1), {make_tensor<bool>({1}, {true})});
  EXPECT_NE(msg.find("input 'X' must be float32 or an integer type, got bool"), std::string::npos) << msg;
  msg = run_error(kernels::Relu, make_node("Relu", 1), {Tensor()});
  EXPECT_NE(msg.find("missing required input 'X'"), std::string::npos) << msg;
}

TEST(Clip, AttributeForm) {
  Tensor x = make_tensor<float>({5}, {-3.f, -1.f, 0.f, 1.f, 3.f});
  Node n = make_node("Clip", 1);
  n.attrs["min"] = attr_float(-1.5f);
  n.attrs["max"] = attr_float(2.f);
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, n, {x}, 6), make_tensor<float>({5}, {-1.5f, -1.f, 0.f, 1.f, 2.f})));
  Node only_max = make_node("Clip", 1);
  only_max.attrs["max"] = attr_float(0.f);
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, only_max, {x}, 6), make_tensor<float>({5}, {-3.f, -1.f, 0.f, 0.f, 0.f})));
  // The attributes are ignored from opset 11 on: no inputs means no clipping.
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, n, {x}, 11), x));

  std::string msg = run_error(kernels::Clip, n, {make_tensor<int32_t>({1}, {1})}, 6);
  EXPECT_NE(msg.find("input 'input' must be float32 (opset 6), got int32"), std::string::npos) << msg;
}

TEST(Clip, InputForm) {
  Tensor x = make_tensor<float>({5}, {-3.f, -1.f, 0.f, 1.f, NAN});
  Tensor lo = make_tensor<float>({}, {-1.f});
  Tensor hi = make_tensor<float>({}, {0.5f});
  Tensor y = run1(kernels::Clip, make_node("Clip", 3), {x, lo, hi}, 13);
  EXPECT_TRUE(tensors_equal(y, make_tensor<float>({5}, {-1.f, -1.f, 0.f, 0.5f, NAN})));
  // Omitted min (""), omitted max (trailing).
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 3), {x, Tensor(), hi}, 11),
                            make_tensor<float>({5}, {-3.f, -1.f, 0.f, 0.5f, NAN})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 2), {x, lo}, 12),
                            make_tensor<float>({5}, {-1.f, -1.f, 0.f, 1.f, NAN})));
  // min > max: everything becomes max.
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 3), {x, make_tensor<float>({}, {2.f}), hi}, 13),
                            make_tensor<float>({5}, {0.5f, 0.5f, 0.5f, 0.5f, NAN})));
  // Integers (opset 12+): int32, int64, int8 with its own limits.
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 3),
                                 {make_tensor<int64_t>({4}, {-9, 0, 5, 9}), make_tensor<int64_t>({}, {-2}),
                                  make_tensor<int64_t>({1}, {6})}, 13),
                            make_tensor<int64_t>({4}, {-2, 0, 5, 6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 2),
                                 {make_tensor<int32_t>({3}, {-9, 0, 9}), make_tensor<int32_t>({}, {0})}, 13),
                            make_tensor<int32_t>({3}, {0, 0, 9})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Clip, make_node("Clip", 3),
                                 {make_tensor<int8_t>({3}, {-128, 0, 127}), Tensor(), make_tensor<int8_t>({}, {0})}, 13),
                            make_tensor<int8_t>({3}, {-128, 0, 0})));
}

TEST(Clip, InputFormErrors) {
  Tensor x = make_tensor<float>({2}, {1.f, 2.f});
  std::string msg = run_error(kernels::Clip, make_node("Clip", 2), {x, make_tensor<float>({2}, {0.f, 1.f})}, 13);
  EXPECT_NE(msg.find("input 'min' must be a scalar, got shape [2]"), std::string::npos) << msg;
  msg = run_error(kernels::Clip, make_node("Clip", 3), {x, Tensor(), make_tensor<int64_t>({}, {1})}, 13);
  EXPECT_NE(msg.find("input 'max' must have the dtype of 'input' (float32), got int64"), std::string::npos) << msg;
  msg = run_error(kernels::Clip, make_node("Clip", 1), {make_tensor<bool>({1}, {true})}, 13);
  EXPECT_NE(msg.find("must be float32 or an integer type, got bool"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

// The unary ops added for issue 17 (their values are covered by the ONNX
// backend node tests): integer edge cases and every error message.
TEST(Activation, NegAbsNotLeakyReluSizeEdgesAndErrors) {
  using test::make_node;
  using test::make_tensor;
  using test::run1;
  using test::run_error;
  const int8_t lo = std::numeric_limits<int8_t>::min();
  const Tensor i8 = make_tensor<int8_t>({4}, {lo, -3, 0, 127});
  const Tensor neg = run1(kernels::Neg, make_node("Neg", 1), {i8});
  EXPECT_TRUE(test::tensors_equal(neg, make_tensor<int8_t>({4}, {lo, 3, 0, -127})));  // -(-128) wraps
  const Tensor abs = run1(kernels::Abs, make_node("Abs", 1), {i8});
  EXPECT_TRUE(test::tensors_equal(abs, make_tensor<int8_t>({4}, {lo, 3, 0, 127})));
  const Tensor u8 = make_tensor<uint8_t>({2}, {0, 255});
  EXPECT_TRUE(test::tensors_equal(run1(kernels::Abs, make_node("Abs", 1), {u8}), u8));
  EXPECT_TRUE(test::tensors_equal(run1(kernels::Not, make_node("Not", 1), {make_tensor<bool>({3}, {true, false, true})}),
                                  make_tensor<bool>({3}, {false, true, false})));
  Node leaky = make_node("LeakyRelu", 1);
  leaky.attrs["alpha"] = test::attr_float(0.5f);
  const Tensor l = run1(kernels::LeakyRelu, leaky, {make_tensor<float>({3}, {-2.f, 3.f, std::nanf("")})});
  EXPECT_EQ(l.data<float>()[0], -1.f);
  EXPECT_EQ(l.data<float>()[1], 3.f);
  EXPECT_TRUE(std::isnan(l.data<float>()[2]));
  const Tensor size = run1(kernels::Size, make_node("Size", 1), {make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})});
  EXPECT_TRUE(test::tensors_equal(size, make_tensor<int64_t>({}, {6})));

  EXPECT_HAS(run_error(kernels::Neg, make_node("Neg", 1), {u8}), "input 'X' must be float32 or a signed integer type, got uint8");
  EXPECT_HAS(run_error(kernels::Abs, make_node("Abs", 1), {make_tensor<bool>({1}, {true})}),
             "input 'X' must be float32 or an integer type, got bool");
  EXPECT_HAS(run_error(kernels::Not, make_node("Not", 1), {make_tensor<float>({1}, {1.f})}), "input 'X' must be bool, got float32");
  EXPECT_HAS(run_error(kernels::Log, make_node("Log", 1), {i8}), "input 'input' must be float32, got int8");
  EXPECT_HAS(run_error(kernels::Exp, make_node("Exp", 1), {i8}), "input 'input' must be float32, got int8");
  for (KernelFn fn : {kernels::Reciprocal, kernels::Floor, kernels::Ceil, kernels::LeakyRelu})
    EXPECT_HAS(run_error(fn, make_node("Op", 1), {i8}), "input 'X' must be float32, got int8");
  EXPECT_HAS(run_error(kernels::Size, make_node("Size", 1), {Tensor()}), "missing required input 0");
}

}  // namespace
}  // namespace sarai
