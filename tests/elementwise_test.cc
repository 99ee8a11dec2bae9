// Add, Sub, Mul, Div, Pow, Equal, Where against hand values and a naive
// broadcasting loop written here (index arithmetic per element, no plan).
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

using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

// Flat offset into a tensor of shape `in` for the output multi-index `idx`
// (NumPy broadcasting, right aligned).
int64_t naive_offset(const Shape& in, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  const size_t lead = idx.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d) off = off * in[d] + (in[d] == 1 ? 0 : idx[lead + d]);
  return off;
}

Shape naive_broadcast(const std::vector<Shape>& shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes)
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      if (s[i] != 1) o = s[i];
    }
  return out;
}

// Calls fn(out_flat, offsets...) for each output element.
template <class Fn>
void naive_for_each(const std::vector<Shape>& shapes, Fn fn) {
  const Shape out = naive_broadcast(shapes);
  const int64_t total = numel_of(out);
  std::vector<int64_t> idx(out.size());
  for (int64_t i = 0; i < total; ++i) {
    int64_t r = i;
    for (size_t d = out.size(); d-- > 0;) {
      idx[d] = r % out[d];
      r /= out[d];
    }
    std::vector<int64_t> offs;
    for (const Shape& s : shapes) offs.push_back(naive_offset(s, idx));
    fn(i, offs);
  }
}

template <class T, class Op>
Tensor naive_binary(const Tensor& a, const Tensor& b, DType out_dtype, Op op) {
  Tensor r = Tensor::allocate(out_dtype, naive_broadcast({a.shape(), b.shape()}));
  naive_for_each({a.shape(), b.shape()}, [&](int64_t i, const std::vector<int64_t>& o) {
    op(r, i, a.data<T>()[o[0]], b.data<T>()[o[1]]);
  });
  return r;
}

Tensor run1(KernelFn fn, const char* op, const std::vector<Tensor>& inputs, int64_t opset = 17) {
  Node node = make_node(op, static_cast<int>(inputs.size()));
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_TRUE(r.has_value()) << r.message();
  return r.has_value() ? (*r)[0] : Tensor();
}

std::string run_error(KernelFn fn, const char* op, const std::vector<Tensor>& inputs, int64_t opset = 17) {
  Node node = make_node(op, static_cast<int>(inputs.size()));
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_FALSE(r.has_value());
  return r.message();
}

// Shape pairs covering each path: equal shapes, scalar, bias along the last
// dim, per-row column, both sides broadcast, empty, and rows longer than a
// parallel block.
const std::vector<std::pair<Shape, Shape>> kShapePairs = {
    {{2, 3, 4}, {2, 3, 4}}, {{2, 3, 4}, {4}},       {{2, 3, 4}, {3, 1}},   {{2, 1, 4}, {1, 3, 1}},
    {{}, {2, 3}},           {{5}, {1}},             {{1}, {5}},            {{2, 3, 4, 5}, {2, 1, 4, 1}},
    {{3, 1}, {1, 4}},       {{0, 3}, {3}},          {{}, {}},              {{1, 1}, {1}},
    {{3, 40000}, {40000}},  {{20001, 3}, {20001, 1}}, {{7, 1, 5}, {7, 6, 5}},
};

TEST(Elementwise, FloatArithmeticMatchesNaiveBroadcast) {
  set_num_threads(2);
  struct Case { KernelFn fn; const char* name; float (*op)(float, float); };
  const Case cases[] = {
      {kernels::Add, "Add", [](float x, float y) { return x + y; }},
      {kernels::Sub, "Sub", [](float x, float y) { return x - y; }},
      {kernels::Mul, "Mul", [](float x, float y) { return x * y; }},
      {kernels::Div, "Div", [](float x, float y) { return x / y; }},
  };
  uint32_t seed = 1;
  for (const auto& [sa, sb] : kShapePairs) {
    for (bool swap : {false, true}) {
      const Shape& s0 = swap ? sb : sa;
      const Shape& s1 = swap ? sa : sb;
      Tensor a = random_tensor(s0, seed++, -2.f, 2.f);
      Tensor b = random_tensor(s1, seed++, 0.5f, 2.f);
      for (const Case& c : cases) {
        Tensor got = run1(c.fn, c.name, {a, b});
        Tensor want = naive_binary<float>(a, b, DType::kFloat32, [&](Tensor& r, int64_t i, float x, float y) {
          r.mutable_data<float>()[i] = c.op(x, y);
        });
        EXPECT_TRUE(tensors_equal(got, want)) << c.name << " " << shape_to_string(s0) << " with "
                                              << shape_to_string(s1);
      }
    }
  }
  set_num_threads(1);
}

// A scalar operand of -0 keeps its sign in the vector kernels: x * -0 is
// -0 for x > 0 (a broadcast written as 0 + c once turned it into +0).
TEST(Elementwise, ScalarNegativeZeroKeepsItsSign) {
  const Tensor x = test::random_tensor({37}, 3, 0.5f, 2.f);
  const Tensor z = test::make_tensor<float>({}, {-0.f});
  const Tensor mul = run1(kernels::Mul, "Mul", {x, z});
  const Tensor div = run1(kernels::Div, "Div", {x, z});
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_TRUE(std::signbit(mul.data<float>()[i])) << i;
    EXPECT_EQ(div.data<float>()[i], -std::numeric_limits<float>::infinity()) << i;
  }
}

TEST(Elementwise, HandValues) {
  Tensor a = make_tensor<float>({2, 2}, {1, 2, 3, 4});
  Tensor b = make_tensor<float>({2}, {10, 20});
  EXPECT_TRUE(tensors_equal(run1(kernels::Add, "Add", {a, b}), make_tensor<float>({2, 2}, {11, 22, 13, 24})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sub, "Sub", {a, b}), make_tensor<float>({2, 2}, {-9, -18, -7, -16})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Mul, "Mul", {b, a}), make_tensor<float>({2, 2}, {10, 40, 30, 80})));
  Tensor c = make_tensor<float>({2, 1}, {2, 4});
  EXPECT_TRUE(tensors_equal(run1(kernels::Div, "Div", {a, c}), make_tensor<float>({2, 2}, {0.5f, 1, 0.75f, 1})));
  // Float division by zero follows IEEE.
  Tensor z = run1(kernels::Div, "Div", {a, make_tensor<float>({}, {0.f})});
  EXPECT_TRUE(std::isinf(z.data<float>()[0]));
}

TEST(Elementwise, IntegerArithmetic) {
  Tensor a = make_tensor<int64_t>({4}, {7, -7, 7, -7});
  Tensor b = make_tensor<int64_t>({4}, {2, 2, -2, -2});
  // C truncation toward zero, not floor.
  EXPECT_TRUE(tensors_equal(run1(kernels::Div, "Div", {a, b}), make_tensor<int64_t>({4}, {3, -3, -3, 3})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Mul, "Mul", {a, b}), make_tensor<int64_t>({4}, {14, -14, -14, 14})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Sub, "Sub", {a, b}), make_tensor<int64_t>({4}, {5, -9, 9, -5})));

  // Shape arithmetic style: int64 [N] op scalar.
  Tensor shape = make_tensor<int64_t>({3}, {1, 80, 3000});
  Tensor two = make_tensor<int64_t>({}, {2});
  EXPECT_TRUE(tensors_equal(run1(kernels::Div, "Div", {shape, two}), make_tensor<int64_t>({3}, {0, 40, 1500})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Add, "Add", {two, shape}), make_tensor<int64_t>({3}, {3, 82, 3002})));

  // Wrapping, never UB: INT64_MAX + 1, INT32_MIN / -1, INT32_MAX * 2.
  const int64_t i64max = std::numeric_limits<int64_t>::max();
  EXPECT_TRUE(tensors_equal(run1(kernels::Add, "Add", {make_tensor<int64_t>({1}, {i64max}), make_tensor<int64_t>({1}, {1})}),
                            make_tensor<int64_t>({1}, {std::numeric_limits<int64_t>::min()})));
  const int32_t i32min = std::numeric_limits<int32_t>::min();
  Tensor a32 = make_tensor<int32_t>({3}, {i32min, 9, std::numeric_limits<int32_t>::max()});
  EXPECT_TRUE(tensors_equal(run1(kernels::Div, "Div", {a32, make_tensor<int32_t>({1}, {-1})}),
                            make_tensor<int32_t>({3}, {i32min, -9, -std::numeric_limits<int32_t>::max()})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Mul, "Mul", {a32, make_tensor<int32_t>({1}, {2})}),
                            make_tensor<int32_t>({3}, {0, 18, -2})));

  // uint8 wraps modulo 256 (test_add_uint8).
  EXPECT_TRUE(tensors_equal(run1(kernels::Add, "Add", {make_tensor<uint8_t>({2}, {250, 3}), make_tensor<uint8_t>({2}, {10, 4})}),
                            make_tensor<uint8_t>({2}, {4, 7})));
}

TEST(Elementwise, IntegerMatchesNaiveBroadcast) {
  Tensor a = make_tensor<int32_t>({2, 3, 1}, {1, -2, 3, -4, 5, -6});
  Tensor b = make_tensor<int32_t>({4}, {1, -3, 7, 2});
  Tensor got = run1(kernels::Div, "Div", {a, b});
  Tensor want = naive_binary<int32_t>(a, b, DType::kInt32, [](Tensor& r, int64_t i, int32_t x, int32_t y) {
    r.mutable_data<int32_t>()[i] = x / y;
  });
  EXPECT_TRUE(tensors_equal(got, want));
}

TEST(Elementwise, Errors) {
  Tensor i = make_tensor<int64_t>({3}, {1, 2, 3});
  std::string msg = run_error(kernels::Div, "Div", {i, make_tensor<int64_t>({3}, {1, 0, 1})});
  EXPECT_NE(msg.find("integer division by zero"), std::string::npos) << msg;
  EXPECT_NE(msg.find("flat index 1"), std::string::npos) << msg;
  msg = run_error(kernels::Div, "Div", {make_tensor<int32_t>({1}, {5}), make_tensor<int32_t>({}, {0})});
  EXPECT_NE(msg.find("division by zero"), std::string::npos) << msg;

  msg = run_error(kernels::Add, "Add", {i, make_tensor<float>({3}, {1, 2, 3})});
  EXPECT_NE(msg.find("must have the same dtype, got int64 and float32"), std::string::npos) << msg;
  msg = run_error(kernels::Mul, "Mul", {random_tensor({2, 3}, 1), random_tensor({4}, 2)});
  EXPECT_NE(msg.find("[2, 3] and [4] cannot be broadcast"), std::string::npos) << msg;
  msg = run_error(kernels::Sub, "Sub", {make_tensor<bool>({1}, {true}), make_tensor<bool>({1}, {true})});
  EXPECT_NE(msg.find("unsupported dtype bool"), std::string::npos) << msg;
  msg = run_error(kernels::Add, "Add", {i, Tensor()});
  EXPECT_NE(msg.find("missing required input 'B'"), std::string::npos) << msg;
}

TEST(Pow, FloatAndMixedExponentTypes) {
  Tensor x = make_tensor<float>({3}, {1, 2, 3});
  EXPECT_TRUE(tensors_near(run1(kernels::Pow, "Pow", {x, make_tensor<float>({3}, {4, 5, 6})}),
                           make_tensor<float>({3}, {1, 32, 729})));
  EXPECT_TRUE(tensors_near(run1(kernels::Pow, "Pow", {x, make_tensor<int64_t>({3}, {4, 5, 6})}),
                           make_tensor<float>({3}, {1, 32, 729})));
  EXPECT_TRUE(tensors_near(run1(kernels::Pow, "Pow", {x, make_tensor<int32_t>({}, {-1})}),
                           make_tensor<float>({3}, {1, 0.5f, 1.f / 3})));
  EXPECT_TRUE(tensors_near(run1(kernels::Pow, "Pow", {make_tensor<float>({2, 1}, {2, 4}), make_tensor<float>({2}, {0.5f, 2})}),
                           make_tensor<float>({2, 2}, {std::sqrt(2.f), 4, 2, 16})));
  // Integer base (test_pow_types_int64_int64, int32_float32).
  EXPECT_TRUE(tensors_equal(run1(kernels::Pow, "Pow", {make_tensor<int64_t>({3}, {1, 2, 3}), make_tensor<int64_t>({3}, {4, 5, 6})}),
                            make_tensor<int64_t>({3}, {1, 32, 729})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Pow, "Pow", {make_tensor<int32_t>({3}, {1, 2, 3}), make_tensor<float>({3}, {4, 5, 6})}),
                            make_tensor<int32_t>({3}, {1, 32, 729})));

  Tensor big = random_tensor({4, 33}, 5, 0.1f, 3.f);
  Tensor e = random_tensor({33}, 6, -2.f, 2.f);
  Tensor want = naive_binary<float>(big, e, DType::kFloat32, [](Tensor& r, int64_t i, float a, float b) {
    r.mutable_data<float>()[i] = static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
  });
  EXPECT_TRUE(tensors_near(run1(kernels::Pow, "Pow", {big, e}), want, 0, 1e-6));
}

TEST(Pow, Errors) {
  std::string msg = run_error(kernels::Pow, "Pow", {make_tensor<bool>({1}, {true}), make_tensor<float>({1}, {1})});
  EXPECT_NE(msg.find("unsupported dtype bool for input 'X'"), std::string::npos) << msg;
  msg = run_error(kernels::Pow, "Pow", {make_tensor<float>({1}, {1}), make_tensor<bool>({1}, {true})});
  EXPECT_NE(msg.find("unsupported dtype bool for input 'Y'"), std::string::npos) << msg;
  msg = run_error(kernels::Pow, "Pow", {random_tensor({3}, 1), random_tensor({2}, 1)});
  EXPECT_NE(msg.find("cannot be broadcast"), std::string::npos) << msg;
}

TEST(Equal, Types) {
  Tensor a = make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, NAN});
  Tensor b = make_tensor<float>({3}, {1, 5, NAN});
  EXPECT_TRUE(tensors_equal(run1(kernels::Equal, "Equal", {a, b}),
                            make_tensor<bool>({2, 3}, {true, false, false, false, true, false})));
  Tensor i = make_tensor<int64_t>({3, 1}, {1, 2, 3});
  Tensor j = make_tensor<int64_t>({2}, {2, 3});
  EXPECT_TRUE(tensors_equal(run1(kernels::Equal, "Equal", {i, j}),
                            make_tensor<bool>({3, 2}, {false, false, true, false, false, true})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Equal, "Equal", {make_tensor<int32_t>({2}, {-1, 4}), make_tensor<int32_t>({}, {4})}),
                            make_tensor<bool>({2}, {false, true})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Equal, "Equal", {make_tensor<bool>({2}, {true, false}), make_tensor<bool>({2}, {true, true})}),
                            make_tensor<bool>({2}, {true, false})));

  std::string msg = run_error(kernels::Equal, "Equal", {i, make_tensor<int32_t>({1}, {1})});
  EXPECT_NE(msg.find("must have the same dtype, got int64 and int32"), std::string::npos) << msg;
}

// Greater/Less/GreaterOrEqual/LessOrEqual and And/Or/Xor (values: the ONNX
// backend node tests): NaN compares false, and every error message.
TEST(Compare, NanAndErrors) {
  Tensor a = make_tensor<float>({3}, {1, NAN, 3});
  Tensor b = make_tensor<float>({}, {2});
  EXPECT_TRUE(tensors_equal(run1(kernels::Greater, "Greater", {a, b}), make_tensor<bool>({3}, {false, false, true})));
  EXPECT_TRUE(tensors_equal(run1(kernels::LessOrEqual, "LessOrEqual", {a, b}), make_tensor<bool>({3}, {true, false, false})));
  EXPECT_TRUE(tensors_equal(run1(kernels::GreaterOrEqual, "GreaterOrEqual", {make_tensor<uint8_t>({2}, {0, 255}), make_tensor<uint8_t>({1}, {255})}),
                            make_tensor<bool>({2}, {false, true})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Less, "Less", {make_tensor<int64_t>({2}, {-5, 5}), make_tensor<int64_t>({1}, {0})}),
                            make_tensor<bool>({2}, {true, false})));
  const Tensor t = make_tensor<bool>({2, 1}, {true, false}), u = make_tensor<bool>({2}, {true, false});
  EXPECT_TRUE(tensors_equal(run1(kernels::Xor, "Xor", {t, u}), make_tensor<bool>({2, 2}, {false, true, true, false})));
  EXPECT_TRUE(tensors_equal(run1(kernels::And, "And", {t, u}), make_tensor<bool>({2, 2}, {true, false, false, false})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Or, "Or", {t, u}), make_tensor<bool>({2, 2}, {true, true, true, false})));

  std::string msg = run_error(kernels::Greater, "Greater", {t, u});
  EXPECT_NE(msg.find("unsupported dtype bool for inputs 'A' and 'B' (supported: float32 and integer types)"), std::string::npos) << msg;
  msg = run_error(kernels::Less, "Less", {a, make_tensor<int32_t>({1}, {1})});
  EXPECT_NE(msg.find("must have the same dtype, got float32 and int32"), std::string::npos) << msg;
  msg = run_error(kernels::And, "And", {t, a});
  EXPECT_NE(msg.find("input 'B' must be bool, got float32"), std::string::npos) << msg;
  msg = run_error(kernels::Or, "Or", {make_tensor<bool>({3}, {true, true, true}), u});
  EXPECT_NE(msg.find("cannot be broadcast"), std::string::npos) << msg;
}

TEST(Where, BroadcastAndDtypes) {
  set_num_threads(2);
  Tensor cond = make_tensor<bool>({2, 1}, {true, false});
  Tensor x = make_tensor<float>({3}, {1, 2, 3});
  Tensor y = make_tensor<float>({2, 3}, {-1, -2, -3, -4, -5, -6});
  EXPECT_TRUE(tensors_equal(run1(kernels::Where, "Where", {cond, x, y}), make_tensor<float>({2, 3}, {1, 2, 3, -4, -5, -6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Where, "Where", {cond, make_tensor<int64_t>({}, {7}), make_tensor<int64_t>({1, 2}, {8, 9})}),
                            make_tensor<int64_t>({2, 2}, {7, 7, 8, 9})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Where, "Where", {cond, make_tensor<uint8_t>({1}, {1}), make_tensor<uint8_t>({1}, {2})}),
                            make_tensor<uint8_t>({2, 1}, {1, 2})));

  // Random three-way broadcast against the naive loop.
  const Shape sc = {4, 1, 5000}, sx = {3, 1}, sy = {1, 3, 5000};
  Tensor c = Tensor::allocate(DType::kBool, sc);
  for (int64_t k = 0; k < c.numel(); ++k) c.mutable_data<uint8_t>()[k] = (k * 7919) % 3 == 0;
  Tensor xi = make_tensor<int32_t>(sx, {10, 20, 30});
  Tensor yi = Tensor::allocate(DType::kInt32, sy);
  for (int64_t k = 0; k < yi.numel(); ++k) yi.mutable_data<int32_t>()[k] = static_cast<int32_t>(-k);
  Tensor want = Tensor::allocate(DType::kInt32, naive_broadcast({sc, sx, sy}));
  naive_for_each({sc, sx, sy}, [&](int64_t i, const std::vector<int64_t>& o) {
    want.mutable_data<int32_t>()[i] = c.data<uint8_t>()[o[0]] ? xi.data<int32_t>()[o[1]] : yi.data<int32_t>()[o[2]];
  });
  EXPECT_TRUE(tensors_equal(run1(kernels::Where, "Where", {c, xi, yi}), want));
  set_num_threads(1);
}

TEST(Where, Errors) {
  Tensor x = make_tensor<float>({2}, {1, 2});
  std::string msg = run_error(kernels::Where, "Where", {x, x, x});
  EXPECT_NE(msg.find("input 'condition' must be bool, got float32"), std::string::npos) << msg;
  Tensor c = make_tensor<bool>({2}, {true, false});
  msg = run_error(kernels::Where, "Where", {c, x, make_tensor<int64_t>({2}, {1, 2})});
  EXPECT_NE(msg.find("inputs 'X' and 'Y' must have the same dtype"), std::string::npos) << msg;
  msg = run_error(kernels::Where, "Where", {make_tensor<bool>({3}, {true, false, true}), x, x});
  EXPECT_NE(msg.find("cannot be broadcast"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sarai
