// Tests for kernels/shape_ops.cc: Reshape, Flatten, Squeeze, Unsqueeze,
// Shape, Identity, Expand.
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/util.h"
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
using test::run_kernel;
using test::tensors_equal;

Tensor i64(std::vector<int64_t> v) {
  int64_t n = static_cast<int64_t>(v.size());
  return make_tensor<int64_t>({n}, v);
}

// ------------------------------------------------------------------ Reshape

TEST(Reshape, IsAViewWithNewShape) {
  Tensor x = random_tensor({2, 3, 4}, 1);
  Tensor y = run1(kernels::Reshape, make_node("Reshape", 2), {x, i64({4, 6})});
  EXPECT_EQ(y.shape(), (Shape{4, 6}));
  EXPECT_EQ(y.raw(), x.raw());
}

TEST(Reshape, ZeroCopiesDimAndMinusOneInfers) {
  Tensor x = random_tensor({2, 3, 4}, 1);
  Node n = make_node("Reshape", 2);
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({0, -1})}).shape(), (Shape{2, 12}));
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({-1, 0, 2})}).shape(), (Shape{4, 3, 2}));
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({0, 0, 0})}).shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({-1})}).shape(), (Shape{24}));
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({2, 3, 2, 2})}).shape(), (Shape{2, 3, 2, 2}));
  // Int32 shape accepted too.
  EXPECT_EQ(run1(kernels::Reshape, n, {x, make_tensor<int32_t>({2}, {6, 4})}).shape(), (Shape{6, 4}));
}

TEST(Reshape, AllowZeroKeepsZeroOpset14) {
  Tensor x = Tensor::allocate(DType::kFloat32, {0, 3, 4});
  Node n = make_node("Reshape", 2);
  n.attrs["allowzero"] = attr_int(1);
  EXPECT_EQ(run1(kernels::Reshape, n, {x, i64({3, 4, 0})}, 14).shape(), (Shape{3, 4, 0}));
  // Without allowzero a 0 copies the input dim: [3, 4, 4] has 48 elements, not 0.
  Node n0 = make_node("Reshape", 2);
  std::string msg = run_error(kernels::Reshape, n0, {x, i64({3, 4, 0})}, 14);
  EXPECT_HAS(msg, "[0, 3, 4]");
}

TEST(Reshape, ErrorsNameShapes) {
  Tensor x = random_tensor({2, 3, 4}, 1);
  Node n = make_node("Reshape", 2);
  std::string msg = run_error(kernels::Reshape, n, {x, i64({5, 5})});
  EXPECT_HAS(msg, "[2, 3, 4]");
  EXPECT_HAS(msg, "[5, 5]");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({-1, -1})}), "more than one -1");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({5, -1})}), "24 elements");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({-2, 12})}), "invalid dim -2");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, make_tensor<float>({2}, {4, 6})}), "must be int64");
}

// ------------------------------------------------------------------ Flatten

TEST(Flatten, AxisForms) {
  Tensor x = random_tensor({2, 3, 4, 5}, 2);
  auto shape_for = [&](int64_t axis, int64_t opset) {
    Node n = make_node("Flatten", 1);
    n.attrs["axis"] = attr_int(axis);
    Tensor y = run1(kernels::Flatten, n, {x}, opset);
    EXPECT_EQ(y.raw(), x.raw());
    return y.shape();
  };
  EXPECT_EQ(run1(kernels::Flatten, make_node("Flatten", 1), {x}).shape(), (Shape{2, 60}));
  EXPECT_EQ(shape_for(0, 9), (Shape{1, 120}));
  EXPECT_EQ(shape_for(2, 9), (Shape{6, 20}));
  EXPECT_EQ(shape_for(4, 9), (Shape{120, 1}));
  EXPECT_EQ(shape_for(-1, 13), (Shape{24, 5}));
  EXPECT_EQ(shape_for(-4, 13), (Shape{1, 120}));
}

TEST(Flatten, AxisOutOfRange) {
  Node n = make_node("Flatten", 1);
  n.attrs["axis"] = attr_int(5);
  EXPECT_HAS(run_error(kernels::Flatten, n, {random_tensor({2, 3, 4, 5}, 2)}), "axis 5 is out of range for rank 4");
}

// ------------------------------------------------------------------ Squeeze

TEST(Squeeze, AttributeFormBeforeOpset13) {
  Tensor x = random_tensor({1, 3, 1, 5}, 3);
  Node n = make_node("Squeeze", 1);
  n.attrs["axes"] = attr_ints({0, -2});
  Tensor y = run1(kernels::Squeeze, n, {x}, 11);
  EXPECT_EQ(y.shape(), (Shape{3, 5}));
  EXPECT_EQ(y.raw(), x.raw());
}

TEST(Squeeze, InputFormAndNoAxes) {
  Tensor x = random_tensor({1, 3, 1, 5}, 3);
  EXPECT_EQ(run1(kernels::Squeeze, make_node("Squeeze", 2), {x, i64({2})}, 13).shape(), (Shape{1, 3, 5}));
  EXPECT_EQ(run1(kernels::Squeeze, make_node("Squeeze", 1), {x}, 13).shape(), (Shape{3, 5}));
  EXPECT_EQ(run1(kernels::Squeeze, make_node("Squeeze", 1), {x}, 11).shape(), (Shape{3, 5}));
  // Omitted optional input ("") at opset 13.
  EXPECT_EQ(run1(kernels::Squeeze, make_node("Squeeze", 2), {x, Tensor()}, 13).shape(), (Shape{3, 5}));
  // Every dim is 1: a scalar.
  EXPECT_EQ(run1(kernels::Squeeze, make_node("Squeeze", 1), {random_tensor({1, 1}, 3)}, 13).shape(), (Shape{}));
}

TEST(Squeeze, Errors) {
  Tensor x = random_tensor({1, 3, 1, 5}, 3);
  std::string msg = run_error(kernels::Squeeze, make_node("Squeeze", 2), {x, i64({1})}, 13);
  EXPECT_HAS(msg, "cannot squeeze axis 1");
  EXPECT_HAS(msg, "[1, 3, 1, 5]");
  EXPECT_HAS(run_error(kernels::Squeeze, make_node("Squeeze", 2), {x, i64({4})}, 13), "out of range for rank 4");
}

// ---------------------------------------------------------------- Unsqueeze

TEST(Unsqueeze, AttributeAndInputForms) {
  Tensor x = random_tensor({3, 4}, 4);
  Node n = make_node("Unsqueeze", 1);
  n.attrs["axes"] = attr_ints({0, 3});
  Tensor y = run1(kernels::Unsqueeze, n, {x}, 11);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 4, 1}));
  EXPECT_EQ(y.raw(), x.raw());
  // Axes refer to the output rank (4 here): -1 is the last output axis.
  EXPECT_EQ(run1(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({-1, 1})}, 13).shape(),
            (Shape{3, 1, 4, 1}));
  EXPECT_EQ(run1(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({3, 1})}, 13).shape(),
            (Shape{3, 1, 4, 1}));
  // Scalar -> [1].
  EXPECT_EQ(run1(kernels::Unsqueeze, make_node("Unsqueeze", 2), {make_tensor<int64_t>({}, {7}), i64({0})}, 13).shape(),
            (Shape{1}));
}

TEST(Unsqueeze, Errors) {
  Tensor x = random_tensor({3, 4}, 4);
  EXPECT_HAS(run_error(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({1, -3})}, 13), "more than once");
  EXPECT_HAS(run_error(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({3})}, 13), "out of range for rank 3");
  EXPECT_HAS(run_error(kernels::Unsqueeze, make_node("Unsqueeze", 1), {x}, 11), "axes");
}

// -------------------------------------------------------------------- Shape

TEST(Shape, AllDimsAndStartEnd) {
  Tensor x = random_tensor({3, 4, 5}, 5);
  EXPECT_TRUE(tensors_equal(run1(kernels::ShapeOp, make_node("Shape", 1), {x}, 13), i64({3, 4, 5})));
  auto with = [&](std::vector<std::pair<std::string, int64_t>> attrs, int64_t opset) {
    Node n = make_node("Shape", 1);
    for (auto& [k, v] : attrs) n.attrs[k] = attr_int(v);
    return run1(kernels::ShapeOp, n, {x}, opset);
  };
  EXPECT_TRUE(tensors_equal(with({{"start", 1}}, 15), i64({4, 5})));
  EXPECT_TRUE(tensors_equal(with({{"end", 1}}, 15), i64({3})));
  EXPECT_TRUE(tensors_equal(with({{"start", -1}}, 15), i64({5})));
  EXPECT_TRUE(tensors_equal(with({{"end", -1}}, 15), i64({3, 4})));
  EXPECT_TRUE(tensors_equal(with({{"start", 1}, {"end", -1}}, 15), i64({4})));
  EXPECT_TRUE(tensors_equal(with({{"start", -10}}, 15), i64({3, 4, 5})));
  EXPECT_TRUE(tensors_equal(with({{"end", 10}}, 15), i64({3, 4, 5})));
  EXPECT_TRUE(tensors_equal(with({{"start", 2}, {"end", 1}}, 15), i64({})));
  // Before opset 15 start/end do not exist.
  EXPECT_TRUE(tensors_equal(with({{"start", 1}}, 13), i64({3, 4, 5})));
  // Scalar input -> empty shape.
  EXPECT_TRUE(tensors_equal(run1(kernels::ShapeOp, make_node("Shape", 1), {make_tensor<float>({}, {1})}),
                            i64({})));
}

// ----------------------------------------------------------------- Identity

TEST(Identity, SameStorage) {
  Tensor x = make_tensor<int64_t>({2}, {1, 2});
  Tensor y = run1(kernels::Identity, make_node("Identity", 1), {x});
  EXPECT_EQ(y.raw(), x.raw());
  EXPECT_TRUE(tensors_equal(y, x));
}

// ------------------------------------------------------------------- Expand

// Naive broadcast reference: out[i] = x[sum of idx_k * stride_k].
Tensor naive_expand(const Tensor& x, const Shape& out) {
  Tensor y = Tensor::allocate(DType::kFloat32, out);
  std::vector<int64_t> st = kernels::broadcast_strides(x.shape(), out);
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, off = 0;
    for (size_t k = out.size(); k-- > 0;) {
      off += (rem % out[k]) * st[k];
      rem /= out[k];
    }
    y.mutable_data<float>()[i] = x.data<float>()[off];
  }
  return y;
}

TEST(Expand, MatchesNaiveBroadcast) {
  struct Case { Shape in; std::vector<int64_t> shape; Shape out; };
  std::vector<Case> cases = {
      {{3, 1}, {2, 1, 6}, {2, 3, 6}},
      {{3, 1}, {3, 4}, {3, 4}},
      {{1, 4}, {3, 4}, {3, 4}},
      {{3, 4}, {1, 1}, {3, 4}},       // two-way: 1s in shape keep the input dims
      {{2, 1, 5}, {4, 1, 3, 1}, {4, 2, 3, 5}},
      {{}, {2, 3}, {2, 3}},
      {{5}, {}, {5}},
      {{1}, {0, 3}, {0, 3}},
  };
  uint32_t seed = 10;
  for (const Case& c : cases) {
    Tensor x = random_tensor(c.in, seed++);
    Tensor y = run1(kernels::Expand, make_node("Expand", 2), {x, i64(c.shape)});
    ASSERT_EQ(y.shape(), c.out) << shape_to_string(c.in);
    EXPECT_TRUE(tensors_equal(y, naive_expand(x, c.out))) << shape_to_string(c.in);
  }
}

TEST(Expand, Int64AndMultithreaded) {
  Tensor x = make_tensor<int64_t>({3, 1}, {1, 2, 3});
  auto r = run_kernel(kernels::Expand, make_node("Expand", 2), {x, i64({2, 3, 2})}, 17, /*num_threads=*/2);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<int64_t>({2, 3, 2}, {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3})));
}

TEST(Expand, IncompatibleShape) {
  std::string msg = run_error(kernels::Expand, make_node("Expand", 2), {random_tensor({3, 4}, 1), i64({2, 4})});
  EXPECT_HAS(msg, "[3, 4]");
  EXPECT_HAS(msg, "[2, 4]");
  EXPECT_HAS(run_error(kernels::Expand, make_node("Expand", 2), {random_tensor({3}, 1), i64({-1, 3})}),
             "negative dim -1");
}

}  // namespace
}  // namespace sarai
