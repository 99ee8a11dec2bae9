// The Reduce family against a naive double reference (every op, both axes
// forms, keepdims), empty-set identities, integer types, and ArgMax/ArgMin;
// every error message.
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_int;
using test::attr_ints;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;
using test::tensors_near;

struct Op {
  const char* name;
  KernelFn fn;
  double init;
  std::function<double(double, double)> fold;  // acc, x
  std::function<double(double, int64_t)> finish;
};

const std::vector<Op>& ops() {
  static const std::vector<Op> v = {
      {"ReduceSum", kernels::ReduceSum, 0, [](double a, double x) { return a + x; }, [](double a, int64_t) { return a; }},
      {"ReduceMean", kernels::ReduceMean, 0, [](double a, double x) { return a + x; },
       [](double a, int64_t n) { return a / static_cast<double>(n); }},
      {"ReduceMax", kernels::ReduceMax, -INFINITY, [](double a, double x) { return std::max(a, x); },
       [](double a, int64_t) { return a; }},
      {"ReduceMin", kernels::ReduceMin, INFINITY, [](double a, double x) { return std::min(a, x); },
       [](double a, int64_t) { return a; }},
      {"ReduceProd", kernels::ReduceProd, 1, [](double a, double x) { return a * x; }, [](double a, int64_t) { return a; }},
      {"ReduceL1", kernels::ReduceL1, 0, [](double a, double x) { return a + std::fabs(x); },
       [](double a, int64_t) { return a; }},
      {"ReduceL2", kernels::ReduceL2, 0, [](double a, double x) { return a + x * x; },
       [](double a, int64_t) { return std::sqrt(a); }},
      {"ReduceLogSum", kernels::ReduceLogSum, 0, [](double a, double x) { return a + x; },
       [](double a, int64_t) { return std::log(a); }},
      {"ReduceLogSumExp", kernels::ReduceLogSumExp, 0, [](double a, double x) { return a + std::exp(x); },
       [](double a, int64_t) { return std::log(a); }},
      {"ReduceSumSquare", kernels::ReduceSumSquare, 0, [](double a, double x) { return a + x * x; },
       [](double a, int64_t) { return a; }},
  };
  return v;
}

// The op over the `reduced` dims of float x, in double.
Tensor naive(const Op& op, const Tensor& x, const std::vector<bool>& reduced, bool keepdims) {
  const Shape& s = x.shape();
  Shape kept = s, out;
  for (size_t d = 0; d < s.size(); ++d) {
    if (reduced[d]) kept[d] = 1;
    if (!reduced[d] || keepdims) out.push_back(kept[d]);
  }
  std::vector<double> acc(static_cast<size_t>(numel_of(kept)), op.init);
  std::vector<int64_t> idx(s.size());
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t r = i, o = 0;
    for (size_t d = s.size(); d-- > 0;) {
      idx[d] = r % s[d];
      r /= s[d];
    }
    for (size_t d = 0; d < s.size(); ++d) o = o * kept[d] + (reduced[d] ? 0 : idx[d]);
    acc[static_cast<size_t>(o)] = op.fold(acc[static_cast<size_t>(o)], x.data<float>()[i]);
  }
  Tensor y = Tensor::allocate(DType::kFloat32, out);
  const int64_t count = x.numel() / static_cast<int64_t>(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) y.mutable_data<float>()[i] = static_cast<float>(op.finish(acc[i], count));
  return y;
}

TEST(Reduce, EveryOpAxesSweepBothForms) {
  set_num_threads(2);
  const Shape s = {3, 1, 4, 5, 2};
  Tensor x = random_tensor(s, 21, 0.5f, 1.5f);  // positive: LogSum is defined
  const std::vector<std::vector<int64_t>> axes_cases = {{}, {0}, {2}, {-1}, {2, 3}, {0, 2}, {0, 4}, {1, 3}, {3, -5}};
  for (const Op& op : ops()) {
    const int64_t since = std::string(op.name) == "ReduceSum" ? 13 : 18;
    for (const auto& axes : axes_cases) {
      std::vector<bool> reduced(5, axes.empty());
      for (int64_t a : axes) reduced[static_cast<size_t>(a < 0 ? a + 5 : a)] = true;
      for (int64_t keep : {0, 1}) {
        Tensor want = naive(op, x, reduced, keep != 0);
        Node old_form = make_node(op.name, 1);
        if (!axes.empty()) old_form.attrs["axes"] = attr_ints(axes);
        old_form.attrs["keepdims"] = attr_int(keep);
        EXPECT_TRUE(tensors_near(run1(op.fn, old_form, {x}, since - 1), want, 1e-5, 1e-5))
            << op.name << " attribute axes " << shape_to_string(axes) << " keepdims " << keep;
        Node new_form = make_node(op.name, 2);
        new_form.attrs["keepdims"] = attr_int(keep);
        Tensor axes_t = axes.empty() ? Tensor() : make_tensor<int64_t>({static_cast<int64_t>(axes.size())}, axes);
        EXPECT_TRUE(tensors_near(run1(op.fn, new_form, {x, axes_t}, since), want, 1e-5, 1e-5))
            << op.name << " input axes " << shape_to_string(axes) << " keepdims " << keep;
      }
    }
    // Long rows and wide columns (the parallel paths).
    Tensor big = random_tensor({40, 1500}, 22, 0.9f, 1.1f);
    for (int64_t axis : {0, 1}) {
      Node n = make_node(op.name, 1);
      n.attrs["axes"] = attr_ints({axis});
      EXPECT_TRUE(tensors_near(run1(op.fn, n, {big}, 11), naive(op, big, {axis == 0, axis == 1}, true), 1e-4, 1e-4))
          << op.name << " axis " << axis;
    }
  }
  set_num_threads(1);
}

TEST(Reduce, EmptySetIdentitiesAndNoop) {
  Tensor empty = Tensor::allocate(DType::kFloat32, {2, 0, 3});
  Node n = make_node("ReduceX", 1);
  n.attrs["axes"] = attr_ints({1});
  n.attrs["keepdims"] = attr_int(0);
  const float inf = std::numeric_limits<float>::infinity();
  struct Want { KernelFn fn; float v; };
  for (const Want& w : {Want{kernels::ReduceSum, 0.f}, Want{kernels::ReduceProd, 1.f}, Want{kernels::ReduceMax, -inf},
                        Want{kernels::ReduceMin, inf}, Want{kernels::ReduceL1, 0.f}, Want{kernels::ReduceL2, 0.f},
                        Want{kernels::ReduceSumSquare, 0.f}, Want{kernels::ReduceLogSum, -inf},
                        Want{kernels::ReduceLogSumExp, -inf}}) {
    Tensor y = run1(w.fn, n, {empty}, 11);
    ASSERT_EQ(y.shape(), (Shape{2, 3}));
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(y.data<float>()[i], w.v);
  }
  EXPECT_TRUE(std::isnan(run1(kernels::ReduceMean, n, {empty}, 11).data<float>()[0]));
  // Integers: the type's limits for Max/Min.
  Tensor ie = Tensor::allocate(DType::kInt32, {0, 2});
  Node n0 = make_node("ReduceMax", 1);
  n0.attrs["axes"] = attr_ints({0});
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceMax, n0, {ie}, 11),
                            make_tensor<int32_t>({1, 2}, {INT32_MIN, INT32_MIN})));
  // ReduceSum at 13: axes is an input; noop_with_empty_axes returns the input.
  Tensor x = make_tensor<float>({2, 2}, {1, 2, 3, 4});
  Node noop = make_node("ReduceSum", 2);
  noop.attrs["noop_with_empty_axes"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSum, noop, {x, Tensor()}, 13), x));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSum, make_node("ReduceSum", 2), {x, make_tensor<int64_t>({1}, {-1})}, 13),
                            make_tensor<float>({2, 1}, {3, 7})));
}

TEST(Reduce, IntegerTypesAndNaN) {
  Tensor xi = make_tensor<int64_t>({2, 3}, {1, -2, 3, 4, 5, -6});
  Node n = make_node("R", 1);
  n.attrs["axes"] = attr_ints({1});
  n.attrs["keepdims"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSum, n, {xi}, 11), make_tensor<int64_t>({2}, {2, 3})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceProd, n, {xi}, 11), make_tensor<int64_t>({2}, {-6, -120})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceMax, n, {xi}, 11), make_tensor<int64_t>({2}, {3, 5})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceMin, n, {xi}, 11), make_tensor<int64_t>({2}, {-2, -6})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceL1, n, {xi}, 11), make_tensor<int64_t>({2}, {6, 15})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSumSquare, n, {xi}, 11), make_tensor<int64_t>({2}, {14, 77})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceMean, n, {xi}, 11), make_tensor<int64_t>({2}, {0, 1})));
  Tensor xu = make_tensor<uint8_t>({3}, {200, 3, 100});
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceMax, make_node("ReduceMax", 1), {xu}, 13), make_tensor<uint8_t>({1}, {200})));
  // Wraps like the element type: 200 + 3 + 100 = 303 = 47 mod 256.
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSum, make_node("ReduceSum", 1), {xu}, 11), make_tensor<uint8_t>({1}, {47})));
  Tensor xd = make_tensor<double>({2}, {1.5, 2.5});
  EXPECT_TRUE(tensors_equal(run1(kernels::ReduceSum, make_node("ReduceSum", 1), {xd}, 11), make_tensor<double>({1}, {4.0})));
  Tensor xn = make_tensor<float>({3}, {1.f, NAN, 3.f});
  EXPECT_TRUE(std::isnan(run1(kernels::ReduceMax, make_node("ReduceMax", 1), {xn}, 13).data<float>()[0]));
  EXPECT_TRUE(std::isnan(run1(kernels::ReduceMin, make_node("ReduceMin", 1), {xn}, 13).data<float>()[0]));
}

TEST(Reduce, Errors) {
  Tensor x = random_tensor({2, 3}, 1);
  Node n = make_node("ReduceMax", 1);
  n.attrs["axes"] = attr_ints({2});
  EXPECT_HAS(run_error(kernels::ReduceMax, n, {x}, 13), "axes value 2 is out of range for rank 2");
  n.attrs["axes"] = attr_ints({1, -1});
  EXPECT_HAS(run_error(kernels::ReduceMax, n, {x}, 13), "axes [1, -1] name axis 1 twice");
  n.attrs["axes"] = attr_ints({0, 0});
  EXPECT_HAS(run_error(kernels::ReduceMax, n, {x}, 13), "axes [0, 0] name axis 0 twice");
  EXPECT_HAS(run_error(kernels::ReduceSum, make_node("ReduceSum", 2), {x, make_tensor<float>({1}, {0.f})}, 13),
             "input 'axes' must be int64, got float32");
  EXPECT_HAS(run_error(kernels::ReduceL2, make_node("ReduceL2", 2), {x, make_tensor<int64_t>({1, 1}, {0})}, 18),
             "input 'axes' must be 1-D, got shape [1, 1]");
  EXPECT_HAS(run_error(kernels::ReduceProd, make_node("ReduceProd", 1), {make_tensor<bool>({1}, {true})}, 13),
             "unsupported dtype bool for input 'data'");
  EXPECT_HAS(run_error(kernels::ReduceMin, make_node("ReduceMin", 0), {}, 13), "missing required input 'data'");
  Node k = make_node("ReduceLogSum", 1);
  k.attrs["keepdims"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::ReduceLogSum, k, {x}, 13), "attribute 'keepdims' must be 0 or 1, got 2");
  // Hostile: an empty input whose kept dims would overflow int64.
  Node last = make_node("ReduceSum", 1);
  last.attrs["axes"] = attr_ints({2});
  EXPECT_HAS(run_error(kernels::ReduceSum, last, {Tensor::allocate(DType::kFloat32, {int64_t{1} << 62, 4, 0})}, 11),
             "has too many elements");
  Node e = make_node("ReduceSum", 2);
  e.attrs["noop_with_empty_axes"] = attr_int(3);
  EXPECT_HAS(run_error(kernels::ReduceSum, e, {x}, 13), "attribute 'noop_with_empty_axes' must be 0 or 1, got 3");
}

TEST(ArgMinMax, AxesKeepdimsLastIndexAndErrors) {
  Tensor x = make_tensor<float>({2, 3}, {2, 5, 5, 7, 1, 7});
  Node n = make_node("ArgMax", 1);
  n.attrs["axis"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::ArgMax, n, {x}, 13), make_tensor<int64_t>({2, 1}, {1, 0})));
  n.attrs["select_last_index"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::ArgMax, n, {x}, 13), make_tensor<int64_t>({2, 1}, {2, 2})));
  Node m = make_node("ArgMin", 1);
  m.attrs["axis"] = attr_int(-2);
  m.attrs["keepdims"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::ArgMin, m, {x}, 13), make_tensor<int64_t>({3}, {0, 1, 0})));
  m.attrs["select_last_index"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::ArgMin, m, {make_tensor<int32_t>({2, 1}, {4, 4})}, 13),
                            make_tensor<int64_t>({1}, {1})));
  // Default axis 0; NaN is the extreme.
  EXPECT_TRUE(tensors_equal(run1(kernels::ArgMax, make_node("ArgMax", 1), {make_tensor<float>({3}, {1.f, NAN, 9.f})}, 13),
                            make_tensor<int64_t>({1}, {1})));
  // Empty outputs are fine; an empty axis with outputs is not.
  EXPECT_EQ(run1(kernels::ArgMax, n, {Tensor::allocate(DType::kFloat32, {0, 3})}, 13).shape(), (Shape{0, 1}));
  EXPECT_HAS(run_error(kernels::ArgMax, n, {Tensor::allocate(DType::kFloat32, {2, 0})}, 13),
             "input 'data' [2, 0] has no elements along axis 1");
  n.attrs["axis"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::ArgMax, n, {x}, 13), "attribute 'axis' 2 is out of range for rank 2");
  EXPECT_HAS(run_error(kernels::ArgMin, make_node("ArgMin", 1), {make_tensor<bool>({1}, {true})}, 13),
             "unsupported dtype bool for input 'data'");
  Node f = make_node("ArgMin", 1);
  f.attrs["select_last_index"] = attr_int(5);
  EXPECT_HAS(run_error(kernels::ArgMin, f, {x}, 13), "attribute 'select_last_index' must be 0 or 1, got 5");
  EXPECT_HAS(run_error(kernels::ArgMin, make_node("ArgMin", 0), {}, 13), "missing required input 'data'");
}

}  // namespace
}  // namespace sarai
