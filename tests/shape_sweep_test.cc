// Issue 16, class 1, the sweep over every shape function: attacker-chosen
// starts, sizes, counts and dims (INT64_MIN/MAX, negative, huge) must give one
// clear message or a correct result, never wrapped int64 arithmetic. The
// empty tensors with huge dims ([0, 2^62, 4]: zero elements, so a tensor may
// have that shape) catch the products of a part of a shape, which only an
// empty tensor can overflow; UBSan (tools/build.sh asan) flags any left.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "test_util.h"

namespace sarai {
namespace {

using test::attr_int;
using test::attr_ints;
using test::make_node;
using test::make_tensor;
using test::run1;
using test::run_error;

constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t k2p62 = int64_t{1} << 62;

Tensor i64(std::vector<int64_t> v) { return make_tensor<int64_t>({static_cast<int64_t>(v.size())}, v); }
using test::scalar;

// No elements, but dims whose product wraps int64.
Tensor empty_huge() { return Tensor::allocate(DType::kFloat32, {0, k2p62, 4}); }

// ------------------------------------------------------------------- Slice

TEST(ShapeSweep, SliceExtremeStartsEndsSteps) {
  const Tensor x = i64({0, 1, 2, 3, 4});
  Node n = make_node("Slice", 5);
  Tensor y = run1(kernels::Slice, n, {x, i64({kMin}), i64({kMax}), Tensor(), i64({1})});
  EXPECT_EQ(y.shape(), (Shape{5}));
  // step INT64_MIN: -step would overflow; it takes one element, the start.
  y = run1(kernels::Slice, n, {x, i64({kMax}), i64({kMin}), Tensor(), i64({kMin})});
  ASSERT_EQ(y.shape(), (Shape{1}));
  EXPECT_EQ(y.data<int64_t>()[0], 4);
  y = run1(kernels::Slice, n, {x, i64({1}), i64({kMax}), Tensor(), i64({kMax})});
  ASSERT_EQ(y.shape(), (Shape{1}));
  EXPECT_EQ(y.data<int64_t>()[0], 1);
  y = run1(kernels::Slice, n, {x, i64({-1}), i64({kMin}), Tensor(), i64({-2})});
  ASSERT_EQ(y.shape(), (Shape{3}));
  EXPECT_EQ(y.data<int64_t>()[2], 0);
  EXPECT_HAS(run_error(kernels::Slice, n, {x, i64({0}), i64({5}), Tensor(), i64({0})}), "contain 0");
  EXPECT_HAS(run_error(kernels::Slice, n, {x, i64({0}), i64({5}), i64({kMin}), Tensor()}),
             "axes value -9223372036854775808 is out of range for rank 1");
}

TEST(ShapeSweep, SliceOfAnEmptyTensorWithHugeDims) {
  Node n = make_node("Slice", 4);
  const Tensor y = run1(kernels::Slice, n, {empty_huge(), i64({0}), i64({2}), i64({1})});
  EXPECT_EQ(y.shape(), (Shape{0, 2, 4}));
}

// -------------------------------------------------------------------- Split

TEST(ShapeSweep, SplitSizesThatOverflowOrAreNegative) {
  const Tensor x = make_tensor<float>({4}, {1, 2, 3, 4});
  Node n = make_node("Split", 2, 2);
  EXPECT_HAS(run_error(kernels::Split, n, {x, i64({kMax, 1})}), "split [9223372036854775807, 1] sums past int64");
  EXPECT_HAS(run_error(kernels::Split, n, {x, i64({kMax, kMax})}), "sums past int64");
  EXPECT_HAS(run_error(kernels::Split, n, {x, i64({5, -1})}), "split [5, -1] has a negative size");
  EXPECT_HAS(run_error(kernels::Split, n, {x, i64({1, 2})}), "sums to 3 but axis 0");
  Node k = make_node("Split", 1, 2);
  k.attrs["num_outputs"] = attr_int(3);
  EXPECT_HAS(run_error(kernels::Split, k, {x}, 18), "num_outputs 3 does not match the node's 2 outputs");
}

TEST(ShapeSweep, SplitOfAnEmptyTensorWithHugeDims) {
  Node n = make_node("Split", 1, 2);
  n.attrs["axis"] = attr_int(2);
  auto out = test::run_kernel(kernels::Split, n, {empty_huge()});
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ((*out)[1].shape(), (Shape{0, k2p62, 2}));
  // num_outputs: ceil(dim / n) without forming dim + n - 1.
  Node k = make_node("Split", 1, 2);
  k.attrs["num_outputs"] = attr_int(2);
  k.attrs["axis"] = attr_int(1);
  out = test::run_kernel(kernels::Split, k, {Tensor::allocate(DType::kFloat32, {kMax, 0})}, 18);
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ((*out)[0].shape(), (Shape{kMax, 0}));
  k.attrs["axis"] = attr_int(0);
  out = test::run_kernel(kernels::Split, k, {Tensor::allocate(DType::kFloat32, {kMax, 0})}, 18);
  ASSERT_TRUE(out) << out.status().message();
  EXPECT_EQ((*out)[0].shape(), (Shape{kMax / 2 + 1, 0}));
  EXPECT_EQ((*out)[1].shape(), (Shape{kMax / 2, 0}));
}

// ------------------------------------------------------ Reshape, Flatten, ...

TEST(ShapeSweep, ReshapeProductThatOverflows) {
  Node n = make_node("Reshape", 2);
  const Tensor x = Tensor::allocate(DType::kFloat32, {0, 4});
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({-1, k2p62, k2p62})}), "has more elements than fit in 64 bits");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({kMin, 0})}), "has invalid dim -9223372036854775808");
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({-1, -1})}), "has more than one -1");
  // -1 next to a 0 (allowzero): the known count is 0, nothing to divide by.
  n.attrs["allowzero"] = attr_int(1);
  EXPECT_HAS(run_error(kernels::Reshape, n, {x, i64({-1, 0})}), "cannot reshape input of shape [0, 4]");
}

TEST(ShapeSweep, FlattenOfAnEmptyTensorWithHugeDims) {
  Node n = make_node("Flatten", 1);
  n.attrs["axis"] = attr_int(1);
  EXPECT_HAS(run_error(kernels::Flatten, n, {empty_huge()}),
             "input shape [0, 4611686018427387904, 4] flattened at axis 1 has a dim past int64");
  n.attrs["axis"] = attr_int(2);
  EXPECT_EQ(run1(kernels::Flatten, n, {empty_huge()}).shape(), (Shape{0, 4}));
  n.attrs["axis"] = attr_int(kMin);
  EXPECT_HAS(run_error(kernels::Flatten, n, {empty_huge()}), "is out of range for rank 3");
}

TEST(ShapeSweep, SqueezeUnsqueezeAxes) {
  const Tensor x = Tensor::allocate(DType::kFloat32, {1, 3});
  EXPECT_HAS(run_error(kernels::Squeeze, make_node("Squeeze", 2), {x, i64({0, -2})}),
             "axes [0, -2] name axis 0 more than once");
  EXPECT_HAS(run_error(kernels::Squeeze, make_node("Squeeze", 2), {x, i64({kMin})}), "is out of range for rank 2");
  EXPECT_HAS(run_error(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({kMax})}), "is out of range for rank 3");
  EXPECT_HAS(run_error(kernels::Unsqueeze, make_node("Unsqueeze", 2), {x, i64({0, -4})}), "more than once");
}

TEST(ShapeSweep, TransposeOfAnEmptyTensorWithHugeDims) {
  Node n = make_node("Transpose", 1);
  n.attrs["perm"] = attr_ints({2, 0, 1});
  EXPECT_EQ(run1(kernels::Transpose, n, {empty_huge()}).shape(), (Shape{4, 0, k2p62}));
  n.attrs["perm"] = attr_ints({0, 0, 1});
  EXPECT_HAS(run_error(kernels::Transpose, n, {empty_huge()}), "is not a permutation of 0..2");
  n.attrs["perm"] = attr_ints({0, 1, kMin});
  EXPECT_HAS(run_error(kernels::Transpose, n, {empty_huge()}), "is not a permutation of 0..2");
}

TEST(ShapeSweep, ConcatAxisSumThatOverflows) {
  Node n = make_node("Concat", 2);
  n.attrs["axis"] = attr_int(1);
  const Tensor a = Tensor::allocate(DType::kFloat32, {0, k2p62});
  EXPECT_HAS(run_error(kernels::Concat, n, {a, a}),
             "the inputs' sizes along axis 1 sum past int64 (input 1 has shape [0, 4611686018427387904])");
  n.attrs["axis"] = attr_int(0);
  EXPECT_EQ(run1(kernels::Concat, n, {a, a}).shape(), (Shape{0, k2p62}));
}

TEST(ShapeSweep, GatherIndicesAtTheInt64Limits) {
  Node n = make_node("Gather", 2);
  const Tensor x = make_tensor<float>({3}, {1, 2, 3});
  EXPECT_HAS(run_error(kernels::Gather, n, {x, i64({kMin})}), "index -9223372036854775808 is out of range for axis 0");
  EXPECT_HAS(run_error(kernels::Gather, n, {x, i64({kMax})}), "index 9223372036854775807 is out of range");
  EXPECT_EQ(run1(kernels::Gather, n, {x, i64({-3})}).data<float>()[0], 1.f);
}

TEST(ShapeSweep, ShapeStartEndAtTheInt64Limits) {
  Node n = make_node("Shape", 1);
  n.attrs["start"] = attr_int(kMin);
  n.attrs["end"] = attr_int(kMax);
  EXPECT_EQ(run1(kernels::ShapeOp, n, {empty_huge()}, 15).shape(), (Shape{3}));
  n.attrs["start"] = attr_int(kMax);
  n.attrs["end"] = attr_int(kMin);
  EXPECT_EQ(run1(kernels::ShapeOp, n, {empty_huge()}, 15).shape(), (Shape{0}));
}

TEST(ShapeSweep, ConstantOfShapeNegativeOrHuge) {
  Node n = make_node("ConstantOfShape", 1);
  EXPECT_HAS(run_error(kernels::ConstantOfShape, n, {i64({2, kMin})}), "negative dimension -9223372036854775808");
  EXPECT_HAS(run_error(kernels::ConstantOfShape, n, {i64({k2p62, k2p62})}), "has more elements than fit in 64 bits");
  EXPECT_HAS(run_error(kernels::ConstantOfShape, n, {i64({k2p62 / 2, 2})}), "is larger than fits in 64-bit byte offsets");
  EXPECT_EQ(run1(kernels::ConstantOfShape, n, {i64({0, k2p62, 4})}).shape(), (Shape{0, k2p62, 4}));
}

TEST(ShapeSweep, ExpandToAnEmptyShapeWithHugeDims) {
  Node n = make_node("Expand", 2);
  EXPECT_EQ(run1(kernels::Expand, n, {make_tensor<float>({1}, {1.f}), i64({0, k2p62, 4})}).shape(),
            (Shape{0, k2p62, 4}));
  EXPECT_HAS(run_error(kernels::Expand, n, {make_tensor<float>({1}, {1.f}), i64({kMin})}), "has negative dim");
}

// -------------------------------------------------------------------- Range

TEST(ShapeSweep, RangeCountsAtTheLimits) {
  Node n = make_node("Range", 3);
  EXPECT_HAS(run_error(kernels::Range, n, {scalar<int64_t>(kMin), scalar<int64_t>(kMax), scalar<int64_t>(1)}),
             "give too many elements");
  EXPECT_HAS(run_error(kernels::Range, n, {scalar<int64_t>(kMax), scalar<int64_t>(kMin), scalar<int64_t>(-1)}),
             "give too many elements");
  EXPECT_HAS(run_error(kernels::Range, n, {scalar<int64_t>(0), scalar<int64_t>(1), scalar<int64_t>(0)}), "delta is 0");
  // limit - start = -(2^64 - 1), delta INT64_MIN: two elements.
  Tensor y = run1(kernels::Range, n, {scalar<int64_t>(kMax), scalar<int64_t>(kMin), scalar<int64_t>(kMin)});
  ASSERT_EQ(y.shape(), (Shape{2}));
  EXPECT_EQ(y.data<int64_t>()[1], -1);
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_HAS(run_error(kernels::Range, n, {scalar(0.f), scalar(inf), scalar(1.f)}), "give an unusable element count");
  EXPECT_HAS(run_error(kernels::Range, n, {scalar(0.f), scalar(1.f), scalar(nan)}), "give an unusable element count");
  EXPECT_HAS(run_error(kernels::Range, n, {scalar(0.f), scalar(1e30f), scalar(1.f)}), "give an unusable element count");
  EXPECT_HAS(run_error(kernels::Range, n, {scalar(0.f), scalar(1.f), scalar(0.f)}), "delta is 0");
  // A count of -1e30: empty, not a float-to-int64 cast out of range.
  y = run1(kernels::Range, n, {scalar(0.f), scalar(-1e30f), scalar(1.f)});
  EXPECT_EQ(y.shape(), (Shape{0}));
  y = run1(kernels::Range, n, {scalar(0.0), scalar(-1e300), scalar(1.0)});
  EXPECT_EQ(y.shape(), (Shape{0}));
}

// ----------------------------------- ops that take products of the input's dims

TEST(ShapeSweep, NormalizationsOfAnEmptyTensorWithHugeDims) {
  Node s = make_node("Softmax", 1);
  s.attrs["axis"] = attr_int(0);
  EXPECT_EQ(run1(kernels::Softmax, s, {empty_huge()}, 13).shape(), (Shape{0, k2p62, 4}));
  EXPECT_EQ(run1(kernels::Softmax, s, {empty_huge()}, 11).shape(), (Shape{0, k2p62, 4}));
  Node l = make_node("LayerNormalization", 2);
  l.attrs["axis"] = attr_int(1);
  EXPECT_EQ(run1(kernels::LayerNormalization, l, {empty_huge(), make_tensor<float>({4}, {1, 1, 1, 1})}).shape(),
            (Shape{0, k2p62, 4}));
  Node b = make_node("BatchNormalization", 5);
  const Tensor x = Tensor::allocate(DType::kFloat32, {0, 1, k2p62, 4});
  const Tensor p = make_tensor<float>({1}, {1.f});
  EXPECT_EQ(run1(kernels::BatchNormalization, b, {x, p, p, p, p}).shape(), (Shape{0, 1, k2p62, 4}));
}

TEST(ShapeSweep, BroadcastsAndQuantizationOfAnEmptyTensorWithHugeDims) {
  EXPECT_EQ(run1(kernels::Add, make_node("Add", 2), {empty_huge(), make_tensor<float>({1}, {1.f})}).shape(),
            (Shape{0, k2p62, 4}));
  const Tensor xi = Tensor::allocate(DType::kInt32, {0, k2p62, 4});
  EXPECT_EQ(run1(kernels::Div, make_node("Div", 2), {xi, make_tensor<int32_t>({1}, {0})}).shape(),
            (Shape{0, k2p62, 4}));
  Node q = make_node("QuantizeLinear", 2);
  q.attrs["axis"] = attr_int(0);
  EXPECT_EQ(run1(kernels::QuantizeLinear, q, {empty_huge(), Tensor::allocate(DType::kFloat32, {0})}).shape(),
            (Shape{0, k2p62, 4}));
  Node d = make_node("DequantizeLinear", 2);
  d.attrs["axis"] = attr_int(0);
  EXPECT_EQ(run1(kernels::DequantizeLinear, d,
                 {Tensor::allocate(DType::kUInt8, {0, k2p62, 4}), Tensor::allocate(DType::kFloat32, {0})})
                .shape(),
            (Shape{0, k2p62, 4}));
  q.attrs["output_dtype"] = attr_int(int64_t{1} << 32 | 2);  // 2 (uint8) once truncated to int32
  EXPECT_HAS(run_error(kernels::QuantizeLinear, q, {empty_huge(), Tensor::allocate(DType::kFloat32, {0})}, 21),
             "output_dtype 4294967298 is not a supported type");
}

}  // namespace
}  // namespace sarai
