// Variadic Max/Min/Sum/Mean, Mod, BitShift, PRelu, the element-wise math
// of activation.cc, and the axis ops (LogSoftmax, Hardmax, CumSum, TopK):
// hand-checked values, edge cases and every error message.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

Tensor f32(Shape s, std::vector<float> v) { return make_tensor<float>(s, v); }

TEST(Variadic, BroadcastOneToManyInputsAndTypes) {
  Tensor a = f32({2, 1}, {1, 5});
  Tensor b = f32({3}, {4, 2, 6});
  Tensor c = f32({}, {3});
  EXPECT_TRUE(tensors_equal(run1(kernels::Max, make_node("Max", 3), {a, b, c}),
                            f32({2, 3}, {4, 3, 6, 5, 5, 6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Min, make_node("Min", 3), {a, b, c}),
                            f32({2, 3}, {1, 1, 1, 3, 2, 3})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sum, make_node("Sum", 3), {a, b, c}),
                            f32({2, 3}, {8, 6, 10, 12, 10, 14})));
  EXPECT_TRUE(tensors_near(run1(kernels::Mean, make_node("Mean", 2), {a, b}),
                           f32({2, 3}, {2.5f, 1.5f, 3.5f, 4.5f, 3.5f, 5.5f})));
  // One input: a copy.
  EXPECT_TRUE(tensors_equal(run1(kernels::Sum, make_node("Sum", 1), {b}), b));
  // NaN propagates through Max/Min.
  EXPECT_TRUE(std::isnan(run1(kernels::Max, make_node("Max", 2), {f32({1}, {NAN}), f32({1}, {1})}).data<float>()[0]));
  EXPECT_TRUE(std::isnan(run1(kernels::Min, make_node("Min", 2), {f32({1}, {1}), f32({1}, {NAN})}).data<float>()[0]));
  // Integers and doubles for Max/Min; float16 through float32.
  EXPECT_TRUE(tensors_equal(run1(kernels::Max, make_node("Max", 2),
                                 {make_tensor<int64_t>({2}, {-3, 7}), make_tensor<int64_t>({2}, {-4, 8})}),
                            make_tensor<int64_t>({2}, {-3, 8})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Min, make_node("Min", 2),
                                 {make_tensor<uint8_t>({2}, {3, 200}), make_tensor<uint8_t>({1}, {100})}),
                            make_tensor<uint8_t>({2}, {3, 100})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sum, make_node("Sum", 2), {make_tensor<double>({1}, {0.5}), make_tensor<double>({1}, {2})}),
                            make_tensor<double>({1}, {2.5})));
  Tensor h1 = Tensor::allocate(DType::kFloat16, {2}), h2 = Tensor::allocate(DType::kFloat16, {2});
  h1.mutable_data<uint16_t>()[0] = float_to_half(1.5f);
  h1.mutable_data<uint16_t>()[1] = float_to_half(-2.f);
  h2.mutable_data<uint16_t>()[0] = float_to_half(0.5f);
  h2.mutable_data<uint16_t>()[1] = float_to_half(3.f);
  Tensor hm = run1(kernels::Max, make_node("Max", 2), {h1, h2});
  ASSERT_EQ(hm.dtype(), DType::kFloat16);
  EXPECT_EQ(half_to_float(hm.data<uint16_t>()[0]), 1.5f);
  EXPECT_EQ(half_to_float(hm.data<uint16_t>()[1]), 3.f);
  // Many inputs (past the inline shape storage) and an empty broadcast.
  std::vector<Tensor> many(10, f32({1}, {1}));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sum, make_node("Sum", 10), many), f32({1}, {10})));
  EXPECT_EQ(run1(kernels::Max, make_node("Max", 2), {Tensor::allocate(DType::kFloat32, {0, 3}), b}).shape(), (Shape{0, 3}));
}

TEST(Variadic, Errors) {
  Tensor a = f32({2}, {1, 2});
  EXPECT_HAS(run_error(kernels::Max, make_node("Max", 0), {}), "needs at least one input");
  EXPECT_HAS(run_error(kernels::Max, make_node("Max", 2), {a, make_tensor<int32_t>({2}, {1, 2})}),
             "input 'data_1' must have the dtype of input 'data_0' (float32), got int32");
  EXPECT_HAS(run_error(kernels::Sum, make_node("Sum", 2), {a, f32({3}, {1, 2, 3})}), "[2]");
  EXPECT_HAS(run_error(kernels::Sum, make_node("Sum", 2), {a, Tensor()}), "missing input 'data_1' (input 1)");
  EXPECT_HAS(run_error(kernels::Mean, make_node("Mean", 1), {make_tensor<int32_t>({1}, {1})}),
             "unsupported dtype int32 for the inputs of Mean (supported: float32, float64, float16)");
  EXPECT_HAS(run_error(kernels::Max, make_node("Max", 1), {make_tensor<bool>({1}, {true})}),
             "unsupported dtype bool for the inputs of Max (supported: float32, float64, float16 and integer types)");
}

TEST(ModBitShiftPRelu, ValuesAndErrors) {
  Tensor a = make_tensor<int32_t>({4}, {-4, 7, 5, 4});
  Tensor b = make_tensor<int32_t>({4}, {7, -3, 3, -1});
  EXPECT_TRUE(tensors_equal(run1(kernels::Mod, make_node("Mod", 2), {a, b}), make_tensor<int32_t>({4}, {3, -2, 2, 0})));
  Node fm = make_node("Mod", 2);
  fm.attrs["fmod"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::Mod, fm, {a, b}), make_tensor<int32_t>({4}, {-4, 1, 2, 0})));
  EXPECT_TRUE(tensors_near(run1(kernels::Mod, fm, {f32({2}, {-4.5f, 5.5f}), f32({1}, {2.f})}), f32({2}, {-0.5f, 1.5f})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Mod, make_node("Mod", 2), {make_tensor<int32_t>({1}, {INT32_MIN}), make_tensor<int32_t>({1}, {-1})}),
                            make_tensor<int32_t>({1}, {0})));
  EXPECT_HAS(run_error(kernels::Mod, make_node("Mod", 2), {f32({1}, {1}), f32({1}, {1})}),
             "attribute 'fmod' must be 1 for float32 inputs");
  EXPECT_HAS(run_error(kernels::Mod, make_node("Mod", 2), {a, make_tensor<int32_t>({2}, {1, 0})}), "[2]");
  EXPECT_HAS(run_error(kernels::Mod, make_node("Mod", 2), {a, make_tensor<int32_t>({1}, {0})}),
             "integer modulo by zero: input 'B' (int32 [1]) has a zero at flat index 0");
  EXPECT_HAS(run_error(kernels::Mod, make_node("Mod", 2), {make_tensor<bool>({1}, {true}), make_tensor<bool>({1}, {true})}),
             "unsupported dtype bool for inputs 'A' and 'B'");
  fm.attrs["fmod"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::Mod, fm, {a, b}), "attribute 'fmod' must be 0 or 1, got 2");

  Node left = make_node("BitShift", 2);
  left.attrs["direction"] = attr_string("LEFT");
  Node right = make_node("BitShift", 2);
  right.attrs["direction"] = attr_string("RIGHT");
  Tensor x = make_tensor<uint8_t>({3}, {16, 4, 1});
  Tensor s = make_tensor<uint8_t>({3}, {1, 2, 9});
  EXPECT_TRUE(tensors_equal(run1(kernels::BitShift, left, {x, s}), make_tensor<uint8_t>({3}, {32, 16, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::BitShift, right, {x, s}), make_tensor<uint8_t>({3}, {8, 1, 0})));
  EXPECT_HAS(run_error(kernels::BitShift, make_node("BitShift", 2), {x, s}),
             "attribute 'direction' must be \"LEFT\" or \"RIGHT\", got \"\"");
  EXPECT_HAS(run_error(kernels::BitShift, left, {make_tensor<int32_t>({1}, {1}), make_tensor<int32_t>({1}, {1})}),
             "unsupported dtype int32 for inputs 'X' and 'Y' (supported: uint8, uint16, uint32, uint64)");

  Tensor px = f32({2, 3}, {-1, 2, -3, 4, -5, 6});
  EXPECT_TRUE(tensors_near(run1(kernels::PRelu, make_node("PRelu", 2), {px, f32({3}, {0.1f, 0.2f, 0.3f})}),
                           f32({2, 3}, {-0.1f, 2, -0.9f, 4, -1.0f, 6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::PRelu, make_node("PRelu", 2), {make_tensor<int32_t>({2}, {-3, 3}), make_tensor<int32_t>({1}, {2})}),
                            make_tensor<int32_t>({2}, {-6, 3})));
  EXPECT_HAS(run_error(kernels::PRelu, make_node("PRelu", 2), {f32({3}, {1, 2, 3}), f32({2, 3}, {1, 2, 3, 4, 5, 6})}),
             "input 'slope' [2, 3] does not broadcast to X's shape [3]");
  EXPECT_HAS(run_error(kernels::PRelu, make_node("PRelu", 2), {px, Tensor()}), "missing required input 'slope' (input 1)");
}

TEST(ElementwiseMath, AgainstStdAndHandValues) {
  Tensor x = f32({5}, {-2.f, -0.5f, 0.f, 0.5f, 2.f});
  struct Case { KernelFn fn; double (*ref)(double); };
  for (const Case& c : {Case{kernels::Sin, [](double v) { return std::sin(v); }},
                        Case{kernels::Cos, [](double v) { return std::cos(v); }},
                        Case{kernels::Tan, [](double v) { return std::tan(v); }},
                        Case{kernels::Atan, [](double v) { return std::atan(v); }},
                        Case{kernels::Sinh, [](double v) { return std::sinh(v); }},
                        Case{kernels::Cosh, [](double v) { return std::cosh(v); }},
                        Case{kernels::Asinh, [](double v) { return std::asinh(v); }},
                        Case{kernels::Softplus, [](double v) { return std::log1p(std::exp(v)); }},
                        Case{kernels::Softsign, [](double v) { return v / (1 + std::fabs(v)); }},
                        Case{kernels::Mish, [](double v) { return v * std::tanh(std::log1p(std::exp(v))); }}}) {
    Tensor want = Tensor::allocate(DType::kFloat32, {5});
    for (int i = 0; i < 5; ++i) want.mutable_data<float>()[i] = static_cast<float>(c.ref(x.data<float>()[i]));
    EXPECT_TRUE(tensors_near(run1(c.fn, make_node("Op", 1), {x}), want, 1e-6, 1e-6));
  }
  Tensor unit = f32({3}, {-0.5f, 0.f, 0.5f});
  EXPECT_TRUE(tensors_near(run1(kernels::Asin, make_node("Asin", 1), {unit}), f32({3}, {-0.5235988f, 0, 0.5235988f})));
  EXPECT_TRUE(tensors_near(run1(kernels::Acos, make_node("Acos", 1), {unit}), f32({3}, {2.0943951f, 1.5707964f, 1.0471976f})));
  EXPECT_TRUE(tensors_near(run1(kernels::Atanh, make_node("Atanh", 1), {unit}), f32({3}, {-0.5493061f, 0, 0.5493061f})));
  EXPECT_TRUE(tensors_near(run1(kernels::Acosh, make_node("Acosh", 1), {f32({2}, {1.f, 2.f})}), f32({2}, {0.f, 1.3169579f})));
  // Softplus does not overflow for large inputs.
  EXPECT_EQ(run1(kernels::Softplus, make_node("Softplus", 1), {f32({1}, {1000.f})}).data<float>()[0], 1000.f);
  // Round: halves to even.
  EXPECT_TRUE(tensors_equal(run1(kernels::Round, make_node("Round", 1), {f32({6}, {0.5f, 1.5f, 2.5f, -1.5f, -0.4f, 2.6f})}),
                            f32({6}, {0, 2, 2, -2, -0.f, 3})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sign, make_node("Sign", 1), {f32({3}, {-2, 0, 3})}), f32({3}, {-1, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sign, make_node("Sign", 1), {make_tensor<int64_t>({3}, {-9, 0, 9})}),
                            make_tensor<int64_t>({3}, {-1, 0, 1})));
  EXPECT_TRUE(std::isnan(run1(kernels::Sign, make_node("Sign", 1), {f32({1}, {NAN})}).data<float>()[0]));
  EXPECT_HAS(run_error(kernels::Sign, make_node("Sign", 1), {make_tensor<bool>({1}, {true})}),
             "input 'input' must be float32 or an integer type, got bool");
  EXPECT_HAS(run_error(kernels::Sin, make_node("Sin", 1), {make_tensor<int32_t>({1}, {1})}),
             "input 'input' must be float32, got int32");
}

TEST(ElementwiseMath, ParameterizedActivations) {
  Tensor x = f32({4}, {-2.f, -0.5f, 0.5f, 2.f});
  Node elu = make_node("Elu", 1);
  elu.attrs["alpha"] = attr_float(2.f);
  EXPECT_TRUE(tensors_near(run1(kernels::Elu, elu, {x}),
                           f32({4}, {static_cast<float>(2 * std::expm1(-2.0)), static_cast<float>(2 * std::expm1(-0.5)), 0.5f, 2.f})));
  Node selu = make_node("Selu", 1);
  selu.attrs["alpha"] = attr_float(2.f);
  selu.attrs["gamma"] = attr_float(3.f);
  EXPECT_TRUE(tensors_near(run1(kernels::Selu, selu, {x}),
                           f32({4}, {static_cast<float>(3 * (2 * std::exp(-2.0) - 2)), static_cast<float>(3 * (2 * std::exp(-0.5) - 2)), 1.5f, 6.f})));
  Node celu = make_node("Celu", 1);
  celu.attrs["alpha"] = attr_float(2.f);
  EXPECT_TRUE(tensors_near(run1(kernels::Celu, celu, {x}),
                           f32({4}, {static_cast<float>(2 * std::expm1(-1.0)), static_cast<float>(2 * std::expm1(-0.25)), 0.5f, 2.f})));
  celu.attrs["alpha"] = attr_float(0.f);
  EXPECT_HAS(run_error(kernels::Celu, celu, {x}), "attribute 'alpha' must be finite and non-zero, got 0");
  Node tr = make_node("ThresholdedRelu", 1);
  tr.attrs["alpha"] = attr_float(0.5f);
  EXPECT_TRUE(tensors_equal(run1(kernels::ThresholdedRelu, tr, {x}), f32({4}, {0, 0, 0, 2})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ThresholdedRelu, make_node("ThresholdedRelu", 1), {x}), f32({4}, {0, 0, 0, 2})));
  Node sh = make_node("Shrink", 1);
  sh.attrs["bias"] = attr_float(1.f);
  sh.attrs["lambd"] = attr_float(1.f);
  EXPECT_TRUE(tensors_equal(run1(kernels::Shrink, sh, {x}), f32({4}, {-1, 0, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Shrink, make_node("Shrink", 1), {x}), f32({4}, {-2, 0, 0, 2})));

  const float inf = std::numeric_limits<float>::infinity();
  Tensor y = f32({4}, {inf, -inf, NAN, 1.f});
  EXPECT_TRUE(tensors_equal(run1(kernels::IsNaN, make_node("IsNaN", 1), {y}), make_tensor<bool>({4}, {false, false, true, false})));
  EXPECT_TRUE(tensors_equal(run1(kernels::IsInf, make_node("IsInf", 1), {y}), make_tensor<bool>({4}, {true, true, false, false})));
  Node pos = make_node("IsInf", 1);
  pos.attrs["detect_negative"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::IsInf, pos, {y}), make_tensor<bool>({4}, {true, false, false, false})));
  Node neg = make_node("IsInf", 1);
  neg.attrs["detect_positive"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::IsInf, neg, {y}), make_tensor<bool>({4}, {false, true, false, false})));
  neg.attrs["detect_positive"] = attr_int(7);
  EXPECT_HAS(run_error(kernels::IsInf, neg, {y}), "attribute 'detect_positive' must be 0 or 1, got 7");
  EXPECT_HAS(run_error(kernels::IsNaN, make_node("IsNaN", 1), {make_tensor<int32_t>({1}, {1})}),
             "input 'X' must be float32, got int32");
}

TEST(AxisOps, LogSoftmaxAndHardmaxBothOpsetForms) {
  Tensor x = f32({2, 2, 2}, {1, 2, 3, 4, 4, 1, 1, 4});
  // Opset 13: along the last axis.
  Tensor ls = run1(kernels::LogSoftmax, make_node("LogSoftmax", 1), {x}, 13);
  const float a = static_cast<float>(-std::log1p(std::exp(1.0))), b = static_cast<float>(-std::log1p(std::exp(-1.0)));
  const float c = static_cast<float>(-std::log1p(std::exp(3.0))), d = static_cast<float>(-std::log1p(std::exp(-3.0)));
  EXPECT_TRUE(tensors_near(ls, f32({2, 2, 2}, {a, b, a, b, d, c, c, d}), 1e-6, 1e-6));
  // Opset 11, axis 1: each [2, 2] block is one row.
  Tensor ls11 = run1(kernels::LogSoftmax, make_node("LogSoftmax", 1), {x}, 11);
  double s = std::exp(1.0) + std::exp(2.0) + std::exp(3.0) + std::exp(4.0);
  EXPECT_NEAR(ls11.data<float>()[0], 1.0 - std::log(s), 1e-6);
  EXPECT_NEAR(ls11.data<float>()[3], 4.0 - std::log(s), 1e-6);
  Node ax = make_node("Hardmax", 1);
  ax.attrs["axis"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::Hardmax, ax, {x}, 13), f32({2, 2, 2}, {0, 0, 1, 1, 1, 0, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Hardmax, ax, {x}, 11), f32({2, 2, 2}, {0, 0, 0, 1, 1, 0, 0, 0})));
  // Ties: the first maximum.
  EXPECT_TRUE(tensors_equal(run1(kernels::Hardmax, make_node("Hardmax", 1), {f32({3}, {2, 2, 1})}, 13), f32({3}, {1, 0, 0})));
  ax.attrs["axis"] = attr_int(3);
  EXPECT_HAS(run_error(kernels::Hardmax, ax, {x}, 13), "attribute 'axis' 3 is out of range for rank 3");
  ax.attrs["axis"] = attr_int(4);
  EXPECT_HAS(run_error(kernels::LogSoftmax, ax, {x}, 11), "attribute 'axis' 4 is out of range for rank 3");
  EXPECT_HAS(run_error(kernels::LogSoftmax, make_node("LogSoftmax", 1), {make_tensor<int32_t>({1}, {1})}, 13),
             "input 'input' must be float32, got int32");
  EXPECT_EQ(run1(kernels::LogSoftmax, make_node("LogSoftmax", 1), {Tensor::allocate(DType::kFloat32, {0, 3})}, 13).shape(),
            (Shape{0, 3}));
}

TEST(AxisOps, CumSumFlagsTypesAndErrors) {
  Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor ax1 = make_tensor<int64_t>({}, {1});
  Tensor ax0 = make_tensor<int32_t>({1}, {-2});
  Node n = make_node("CumSum", 2);
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, n, {x, ax1}), f32({2, 3}, {1, 3, 6, 4, 9, 15})));
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, n, {x, ax0}), f32({2, 3}, {1, 2, 3, 5, 7, 9})));
  n.attrs["exclusive"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, n, {x, ax1}), f32({2, 3}, {0, 1, 3, 0, 4, 9})));
  n.attrs["reverse"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, n, {x, ax1}), f32({2, 3}, {5, 3, 0, 11, 6, 0})));
  n.attrs["exclusive"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, n, {x, ax1}), f32({2, 3}, {6, 5, 3, 15, 11, 6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::CumSum, make_node("CumSum", 2), {make_tensor<int32_t>({3}, {INT32_MAX, 1, 1}), make_tensor<int64_t>({}, {0})}),
                            make_tensor<int32_t>({3}, {INT32_MAX, INT32_MIN, INT32_MIN + 1})));
  EXPECT_HAS(run_error(kernels::CumSum, make_node("CumSum", 2), {x, make_tensor<int64_t>({2}, {0, 1})}),
             "input 'axis' must be an int32 or int64 scalar, got int64 [2]");
  EXPECT_HAS(run_error(kernels::CumSum, make_node("CumSum", 2), {x, make_tensor<int64_t>({}, {2})}),
             "input 'axis' 2 is out of range for rank 2");
  EXPECT_HAS(run_error(kernels::CumSum, make_node("CumSum", 2), {x, Tensor()}), "missing required input 'axis' (input 1)");
  EXPECT_HAS(run_error(kernels::CumSum, make_node("CumSum", 2), {make_tensor<bool>({1}, {true}), make_tensor<int64_t>({}, {0})}),
             "unsupported dtype bool for input 'x'");
  Node bad = make_node("CumSum", 2);
  bad.attrs["reverse"] = attr_int(-1);
  EXPECT_HAS(run_error(kernels::CumSum, bad, {x, ax1}), "attribute 'reverse' must be 0 or 1, got -1");
}

TEST(AxisOps, TopKTiesSmallestAxisAndErrors) {
  Tensor x = f32({2, 4}, {3, 1, 3, 2, 0, 5, 5, -1});
  Tensor k2 = make_tensor<int64_t>({1}, {2});
  auto out = run_kernel(kernels::TopK, make_node("TopK", 2, 2), {x, k2}, 11);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_TRUE(tensors_equal((*out)[0], f32({2, 2}, {3, 3, 5, 5})));
  EXPECT_TRUE(tensors_equal((*out)[1], make_tensor<int64_t>({2, 2}, {0, 2, 1, 2})));
  Node small = make_node("TopK", 2, 2);
  small.attrs["largest"] = attr_int(0);
  small.attrs["axis"] = attr_int(0);
  out = run_kernel(kernels::TopK, small, {x, make_tensor<int64_t>({1}, {1})}, 11);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_TRUE(tensors_equal((*out)[0], f32({1, 4}, {0, 1, 3, -1})));
  EXPECT_TRUE(tensors_equal((*out)[1], make_tensor<int64_t>({1, 4}, {1, 0, 0, 1})));
  // Opset 1-9: k is an attribute.
  Node old = make_node("TopK", 1, 2);
  old.attrs["k"] = attr_int(1);
  out = run_kernel(kernels::TopK, old, {make_tensor<int32_t>({3}, {4, 9, 9})}, 9);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_TRUE(tensors_equal((*out)[0], make_tensor<int32_t>({1}, {9})));
  EXPECT_TRUE(tensors_equal((*out)[1], make_tensor<int64_t>({1}, {1})));
  // NaN counts as the largest.
  out = run_kernel(kernels::TopK, make_node("TopK", 2, 2), {f32({3}, {1, NAN, 2}), make_tensor<int64_t>({1}, {1})}, 11);
  ASSERT_TRUE(out.has_value());
  EXPECT_EQ((*out)[1].data<int64_t>()[0], 1);
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 2, 2), {x, make_tensor<int64_t>({1}, {5})}, 11),
             "k = 5 is out of range for axis 1 of size 4");
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 2, 2), {x, make_tensor<int32_t>({1}, {1})}, 11),
             "input 'K' must be a 1-element int64 tensor, got int32 [1]");
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 1, 2), {x}, 9), "attribute 'k' must be given and non-negative, got -1");
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 2, 2), {f32({}, {1}), k2}, 11), "input 'X' must have rank >= 1, got a scalar");
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 2, 2), {make_tensor<bool>({2}, {true, false}), k2}, 11),
             "unsupported dtype bool for input 'X'");
  EXPECT_HAS(run_error(kernels::TopK, make_node("TopK", 2, 2), {x}, 11), "missing required input 'K' (input 1)");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

using test::attr_int;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

TEST(Loss, NllReductionsWeightsIgnoreIndexAndErrors) {
  // input [N=2, C=3] of log-probabilities, target [2].
  Tensor x = make_tensor<float>({2, 3}, {-1, -2, -3, -4, -5, -6});
  Tensor t = make_tensor<int64_t>({2}, {2, 0});
  Node none = make_node("NegativeLogLikelihoodLoss", 2);
  none.attrs["reduction"] = attr_string("none");
  EXPECT_TRUE(tensors_equal(run1(kernels::NegativeLogLikelihoodLoss, none, {x, t}, 13), make_tensor<float>({2}, {3, 4})));
  EXPECT_TRUE(tensors_near(run1(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {x, t}, 13),
                           make_tensor<float>({}, {3.5f})));
  Node sum = make_node("NLL", 3);
  sum.attrs["reduction"] = attr_string("sum");
  Tensor w = make_tensor<float>({3}, {0.5f, 1, 2});
  EXPECT_TRUE(tensors_near(run1(kernels::NegativeLogLikelihoodLoss, sum, {x, t, w}, 13), make_tensor<float>({}, {8.f})));
  // Weighted mean: (2*3 + 0.5*4) / (2 + 0.5).
  EXPECT_TRUE(tensors_near(run1(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 3), {x, t, w}, 13),
                           make_tensor<float>({}, {3.2f})));
  // ignore_index: the ignored element counts neither in the sum nor the count.
  Node ii = make_node("NLL", 2);
  ii.attrs["ignore_index"] = attr_int(-1);
  EXPECT_TRUE(tensors_near(run1(kernels::NegativeLogLikelihoodLoss, ii, {x, make_tensor<int64_t>({2}, {-1, 1})}, 13),
                           make_tensor<float>({}, {5.f})));
  // [N, C, D]: target [N, D].
  Tensor x3 = make_tensor<double>({1, 2, 2}, {-1, -2, -3, -4});
  Node none3 = make_node("NLL", 2);
  none3.attrs["reduction"] = attr_string("none");
  EXPECT_TRUE(tensors_equal(run1(kernels::NegativeLogLikelihoodLoss, none3, {x3, make_tensor<int32_t>({1, 2}, {1, 0})}, 13),
                            make_tensor<double>({1, 2}, {3, 2})));
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {x, make_tensor<int64_t>({2}, {3, 0})}, 13),
             "target value 3 at flat index 0 is out of range for 3 classes");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {x, make_tensor<int64_t>({3}, {0, 0, 0})}, 13),
             "input 'target' must have shape [2] (input [2, 3] without dim 1), got [3]");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {x, make_tensor<float>({2}, {0, 0})}, 13),
             "input 'target' must be int32 or int64, got float32");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {make_tensor<float>({2}, {0, 0}), t}, 13),
             "input 'input' must have rank >= 2 ([N, C, ...]), got [2]");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 2), {make_tensor<int32_t>({2, 1}, {0, 0}), t}, 13),
             "input 'input' must be float32 or float64, got int32");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 3), {x, t, make_tensor<float>({2}, {1, 1})}, 13),
             "input 'weight' must have shape [3], got [2]");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 3), {x, t, make_tensor<double>({3}, {1, 1, 1})}, 13),
             "input 'weight' must have the dtype of 'input' (float32), got float64");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, make_node("NLL", 1), {x}, 13), "missing required input 'target' (input 1)");
  Node bad = make_node("NLL", 2);
  bad.attrs["reduction"] = attr_string("avg");
  EXPECT_HAS(run_error(kernels::NegativeLogLikelihoodLoss, bad, {x, t}, 13),
             "attribute 'reduction' must be \"none\", \"sum\" or \"mean\", got \"avg\"");
}

TEST(Loss, SoftmaxCrossEntropyWithLogProb) {
  Tensor s = make_tensor<float>({2, 2}, {0, 0, 1, 3});
  Tensor l = make_tensor<int64_t>({2}, {0, 1});
  auto out = run_kernel(kernels::SoftmaxCrossEntropyLoss, make_node("SCE", 2, 2), {s, l}, 13);
  ASSERT_TRUE(out.has_value()) << out.message();
  const double lp0 = std::log(0.5), lp1 = 3 - std::log(std::exp(1.0) + std::exp(3.0));
  EXPECT_TRUE(tensors_near((*out)[0], make_tensor<float>({}, {static_cast<float>(-(lp0 + lp1) / 2)})));
  EXPECT_TRUE(tensors_near((*out)[1], make_tensor<float>({2, 2}, {static_cast<float>(lp0), static_cast<float>(lp0),
                                                                  static_cast<float>(1 - 3 + lp1), static_cast<float>(lp1)})));
  // Without the log_prob output.
  EXPECT_TRUE(tensors_near(run1(kernels::SoftmaxCrossEntropyLoss, make_node("SCE", 2), {s, l}, 13),
                           make_tensor<float>({}, {static_cast<float>(-(lp0 + lp1) / 2)})));
  EXPECT_HAS(run_error(kernels::SoftmaxCrossEntropyLoss, make_node("SCE", 2), {s, make_tensor<int64_t>({2, 1}, {0, 0})}, 13),
             "input 'labels' must have shape [2] (scores [2, 2] without dim 1), got [2, 1]");
  EXPECT_HAS(run_error(kernels::SoftmaxCrossEntropyLoss, make_node("SCE", 1), {s}, 13), "missing required input 'labels' (input 1)");
}

TEST(Dropout, InferenceIdentityMaskAndTrainingRefused) {
  Tensor x = make_tensor<float>({3}, {1, -2, 3});
  auto out = run_kernel(kernels::Dropout, make_node("Dropout", 1, 2), {x}, 13);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_TRUE(tensors_equal((*out)[0], x));
  EXPECT_TRUE(tensors_equal((*out)[1], make_tensor<bool>({3}, {true, true, true})));
  out = run_kernel(kernels::Dropout, make_node("Dropout", 1, 2), {x}, 9);
  ASSERT_TRUE(out.has_value()) << out.message();
  EXPECT_TRUE(tensors_equal((*out)[1], make_tensor<float>({3}, {1, 1, 1})));
  Tensor r = make_tensor<float>({}, {0.5f});
  EXPECT_TRUE(tensors_equal(run1(kernels::Dropout, make_node("Dropout", 3), {x, r, make_tensor<bool>({}, {false})}, 13), x));
  EXPECT_HAS(run_error(kernels::Dropout, make_node("Dropout", 3), {x, r, make_tensor<bool>({}, {true})}, 13),
             "training_mode = true is not supported (inference runtime)");
  EXPECT_HAS(run_error(kernels::Dropout, make_node("Dropout", 3), {x, r, make_tensor<float>({}, {1})}, 13),
             "input 'training_mode' must be a bool scalar, got float32 []");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

using test::make_node;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;
using test::tensors_near;

TEST(CastLikeGlobalMaxPoolDet, ValuesAndErrors) {
  Tensor x = make_tensor<float>({3}, {1.7f, -2.2f, 0.f});
  EXPECT_TRUE(tensors_equal(run1(kernels::CastLike, make_node("CastLike", 2), {x, make_tensor<int32_t>({1}, {0})}, 15),
                            make_tensor<int32_t>({3}, {1, -2, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::CastLike, make_node("CastLike", 2), {x, make_tensor<double>({0}, {})}, 15),
                            make_tensor<double>({3}, {1.7f, -2.2f, 0.f})));
  EXPECT_HAS(run_error(kernels::CastLike, make_node("CastLike", 2), {x, Tensor()}, 15),
             "missing required input 'target_type' (input 1)");

  Tensor p = make_tensor<float>({1, 2, 2, 2}, {1, 5, 3, 2, -1, -4, -2, -3});
  EXPECT_TRUE(tensors_equal(run1(kernels::GlobalMaxPool, make_node("GlobalMaxPool", 1), {p}),
                            make_tensor<float>({1, 2, 1, 1}, {5, -1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::GlobalMaxPool, make_node("GlobalMaxPool", 1), {Tensor::allocate(DType::kFloat32, {1, 1, 0})}),
                            make_tensor<float>({1, 1, 1}, {-INFINITY})));
  EXPECT_HAS(run_error(kernels::GlobalMaxPool, make_node("GlobalMaxPool", 1), {make_tensor<float>({2}, {1, 2})}),
             "input 'X' [2] must have rank >= 2 ([N, C, spatial...])");
  EXPECT_HAS(run_error(kernels::GlobalMaxPool, make_node("GlobalMaxPool", 1), {make_tensor<int32_t>({1, 1}, {1})}),
             "input 'X' must be float32 or float64, got int32");

  // Batched: [[1, 2], [3, 4]] -> -2; a row swap flips the sign; singular -> 0.
  Tensor m = make_tensor<float>({3, 2, 2}, {1, 2, 3, 4, 0, 1, 1, 0, 1, 2, 2, 4});
  EXPECT_TRUE(tensors_near(run1(kernels::Det, make_node("Det", 1), {m}), make_tensor<float>({3}, {-2, -1, 0})));
  Tensor m3 = make_tensor<double>({3, 3}, {2, 0, 1, 1, 3, 2, 1, 1, 2});
  EXPECT_TRUE(tensors_near(run1(kernels::Det, make_node("Det", 1), {m3}), make_tensor<double>({}, {6})));
  // No matrices: an empty output, without a workspace of m * m.
  EXPECT_EQ(run1(kernels::Det, make_node("Det", 1), {Tensor::allocate(DType::kFloat32, {0, int64_t{1} << 40, int64_t{1} << 40})}).shape(),
            (Shape{0}));
  EXPECT_TRUE(tensors_equal(run1(kernels::Det, make_node("Det", 1), {Tensor::allocate(DType::kFloat32, {2, 0, 0})}),
                            make_tensor<float>({2}, {1, 1})));
  EXPECT_HAS(run_error(kernels::Det, make_node("Det", 1), {make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})}),
             "input 'X' must be [..., M, M], got [2, 3]");
  EXPECT_HAS(run_error(kernels::Det, make_node("Det", 1), {make_tensor<int32_t>({1, 1}, {1})}),
             "input 'X' must be float32 or float64, got int32");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

using test::attr_int;
using test::make_node;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;

TEST(NonMaxSuppression, SelectionThresholdsCenterBoxesAndErrors) {
  // Box 1 overlaps box 0 (IoU 0.81 > 0.5); box 2 is apart.
  Tensor boxes = make_tensor<float>({1, 3, 4}, {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, 10, 1, 11});
  Tensor scores = make_tensor<float>({1, 1, 3}, {0.9f, 0.95f, 0.3f});
  Tensor max3 = make_tensor<int64_t>({1}, {3});
  Tensor iou = make_tensor<float>({1}, {0.5f});
  Node n = make_node("NonMaxSuppression", 5);
  EXPECT_TRUE(tensors_equal(run1(kernels::NonMaxSuppression, n, {boxes, scores, max3, iou, Tensor()}, 11),
                            make_tensor<int64_t>({2, 3}, {0, 0, 1, 0, 0, 2})));
  // score_threshold (strict), max_output_boxes_per_class, no max = nothing.
  EXPECT_TRUE(tensors_equal(run1(kernels::NonMaxSuppression, n, {boxes, scores, max3, iou, make_tensor<float>({1}, {0.3f})}, 11),
                            make_tensor<int64_t>({1, 3}, {0, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::NonMaxSuppression, n, {boxes, scores, make_tensor<int64_t>({1}, {1}), iou}, 11),
                            make_tensor<int64_t>({1, 3}, {0, 0, 1})));
  EXPECT_EQ(run1(kernels::NonMaxSuppression, make_node("NonMaxSuppression", 2), {boxes, scores}, 11).shape(), (Shape{0, 3}));
  // Center-point boxes; flipped corners are the same box.
  Node c = make_node("NonMaxSuppression", 4);
  c.attrs["center_point_box"] = attr_int(1);
  Tensor cb = make_tensor<float>({1, 2, 4}, {0.5f, 0.5f, 1, 1, 0.5f, 0.6f, 1, 1});
  EXPECT_TRUE(tensors_equal(run1(kernels::NonMaxSuppression, c, {cb, make_tensor<float>({1, 1, 2}, {0.5f, 0.6f}), max3, iou}, 11),
                            make_tensor<int64_t>({1, 3}, {0, 0, 1})));
  Tensor flipped = make_tensor<float>({1, 2, 4}, {1, 1, 0, 0, 0, 0, 1, 1});
  EXPECT_TRUE(tensors_equal(run1(kernels::NonMaxSuppression, n, {flipped, make_tensor<float>({1, 1, 2}, {0.5f, 0.6f}), max3, iou}, 11),
                            make_tensor<int64_t>({1, 3}, {0, 0, 1})));
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, n, {make_tensor<float>({1, 3}, {0, 0, 1}), scores}, 11),
             "input 'boxes' must be [batches, boxes, 4], got [1, 3]");
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, n, {boxes, make_tensor<float>({1, 1, 2}, {0, 0})}, 11),
             "input 'scores' must be [1, classes, 3] (boxes [1, 3, 4]), got [1, 1, 2]");
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, n, {boxes, scores, make_tensor<int32_t>({1}, {3})}, 11),
             "input 'max_output_boxes_per_class' must be a 1-element int64 tensor, got int32 [1]");
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, n, {boxes, make_tensor<int32_t>({1, 1, 3}, {0, 0, 0})}, 11),
             "inputs 'boxes' and 'scores' must be float32, got float32 and int32");
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, n, {boxes}, 11), "missing required input 'scores' (input 1)");
  c.attrs["center_point_box"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::NonMaxSuppression, c, {boxes, scores}, 11), "attribute 'center_point_box' must be 0 or 1, got 2");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

using test::attr_int;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;
using test::tensors_near;

TEST(GridSample, ModesPaddingAlignCornersAndErrors) {
  // X [1, 1, 2, 2] = [[1, 2], [3, 4]].
  Tensor x = make_tensor<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  // The center, a corner (-1, -1), and a point outside (2, 0).
  Tensor g = make_tensor<float>({1, 1, 3, 2}, {0, 0, -1, -1, 2, 0});
  Node n = make_node("GridSample", 2);
  // align_corners 0: -1 is the outer edge, so the corner reads 1/4 of pixel (0, 0).
  EXPECT_TRUE(tensors_near(run1(kernels::GridSample, n, {x, g}, 16), make_tensor<float>({1, 1, 1, 3}, {2.5f, 0.25f, 0.f})));
  // align_corners 1: (2, 0) is pixel (1.5, 0.5), half on column 1 (2, 4), half on zeros.
  n.attrs["align_corners"] = attr_int(1);
  EXPECT_TRUE(tensors_near(run1(kernels::GridSample, n, {x, g}, 16), make_tensor<float>({1, 1, 1, 3}, {2.5f, 1.f, 1.5f})));
  n.attrs["padding_mode"] = attr_string("border");
  EXPECT_TRUE(tensors_near(run1(kernels::GridSample, n, {x, g}, 16), make_tensor<float>({1, 1, 1, 3}, {2.5f, 1.f, 3.f})));
  n.attrs["padding_mode"] = attr_string("reflection");
  // x = 2 -> 1.5 in pixels, reflected at 1 to 0.5: (1 + 2) / 2 on row 0.5.
  EXPECT_TRUE(tensors_near(run1(kernels::GridSample, n, {x, g}, 16), make_tensor<float>({1, 1, 1, 3}, {2.5f, 1.f, 2.5f})));
  Node near = make_node("GridSample", 2);
  near.attrs["mode"] = attr_string("nearest");
  near.attrs["align_corners"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::GridSample, near, {x, make_tensor<float>({1, 1, 1, 2}, {0.9f, -0.9f})}, 16),
                            make_tensor<float>({1, 1, 1, 1}, {2})));
  // Bicubic at a pixel center reproduces the pixel.
  Node cub = make_node("GridSample", 2);
  cub.attrs["mode"] = attr_string("bicubic");
  cub.attrs["align_corners"] = attr_int(1);
  cub.attrs["padding_mode"] = attr_string("border");
  EXPECT_TRUE(tensors_near(run1(kernels::GridSample, cub, {x, make_tensor<float>({1, 1, 1, 2}, {1, -1})}, 16),
                           make_tensor<float>({1, 1, 1, 1}, {2})));
  // Hostile grid values read zeros, not garbage.
  EXPECT_TRUE(tensors_equal(run1(kernels::GridSample, make_node("GridSample", 2), {x, make_tensor<float>({1, 1, 1, 2}, {1e30f, NAN})}, 16),
                            make_tensor<float>({1, 1, 1, 1}, {0})));
  EXPECT_HAS(run_error(kernels::GridSample, make_node("GridSample", 2), {x, make_tensor<float>({1, 1, 1, 3}, {0, 0, 0})}, 16),
             "input 'grid' must be [1, H_out, W_out, 2], got [1, 1, 1, 3]");
  EXPECT_HAS(run_error(kernels::GridSample, make_node("GridSample", 2), {make_tensor<float>({2}, {0, 0}), g}, 16),
             "input 'X' must be [N, C, H, W], got [2]");
  EXPECT_HAS(run_error(kernels::GridSample, make_node("GridSample", 2), {x, Tensor()}, 16), "missing required input 'grid' (input 1)");
  Node bad = make_node("GridSample", 2);
  bad.attrs["mode"] = attr_string("linear");
  EXPECT_HAS(run_error(kernels::GridSample, bad, {x, g}, 16),
             "attribute 'mode' must be \"bilinear\", \"nearest\" or \"bicubic\", got \"linear\"");
  bad.attrs["mode"] = attr_string("nearest");
  bad.attrs["padding_mode"] = attr_string("wrap");
  EXPECT_HAS(run_error(kernels::GridSample, bad, {x, g}, 16),
             "attribute 'padding_mode' must be \"zeros\", \"border\" or \"reflection\", got \"wrap\"");
}

}  // namespace
}  // namespace sarai
