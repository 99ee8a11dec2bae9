// The accuracy metrics of `sarai-rt compare` (quantizer/accuracy.h) against
// hand-computed cases.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "quantizer/accuracy.h"
#include "test_util.h"

namespace sarai {
namespace {

using quant::OutputError;
using test::make_tensor;

TEST(OutputError, IdenticalOutputsAreExact) {
  const Tensor a = test::random_tensor({3, 5}, 1);
  OutputError e;
  ASSERT_TRUE(e.add(a, a).is_ok());
  EXPECT_DOUBLE_EQ(e.cosine(), 1.0);
  EXPECT_EQ(e.mse(), 0.0);
  EXPECT_EQ(e.mae(), 0.0);
  EXPECT_EQ(e.max_abs(), 0.0);
  EXPECT_EQ(e.relative_l2(), 0.0);
  EXPECT_EQ(e.argmax_agreement(), 1.0);
  EXPECT_EQ(e.rows(), 3);
  EXPECT_EQ(e.elements(), 15);
}

TEST(OutputError, KnownPerturbation) {
  // ref [1 2 3 4], test [1 2 3 5]: one element off by 1.
  OutputError e;
  ASSERT_TRUE(e.add(make_tensor<float>({4}, {1, 2, 3, 4}), make_tensor<float>({4}, {1, 2, 3, 5})).is_ok());
  EXPECT_NEAR(e.cosine(), 34.0 / (std::sqrt(30.0) * std::sqrt(39.0)), 1e-12);
  EXPECT_DOUBLE_EQ(e.mse(), 0.25);
  EXPECT_DOUBLE_EQ(e.mae(), 0.25);
  EXPECT_DOUBLE_EQ(e.max_abs(), 1.0);
  EXPECT_NEAR(e.relative_l2(), 1.0 / std::sqrt(30.0), 1e-12);
  EXPECT_EQ(e.argmax_agreement(), 1.0);  // both peak at index 3

  // Accumulating a second set weighs every element equally: 8 elements,
  // squared error 1 + 4.
  ASSERT_TRUE(e.add(make_tensor<float>({4}, {0, 0, 0, 0}), make_tensor<float>({4}, {0, 2, 0, 0})).is_ok());
  EXPECT_DOUBLE_EQ(e.mse(), 5.0 / 8);
  EXPECT_DOUBLE_EQ(e.mae(), 3.0 / 8);
  EXPECT_DOUBLE_EQ(e.max_abs(), 2.0);
  EXPECT_EQ(e.argmax_agreement(), 0.5);  // the second row's argmax moved from 0 to 1
}

TEST(OutputError, ArgmaxAlongTheLastAxis) {
  OutputError e;
  ASSERT_TRUE(e.add(make_tensor<float>({2, 2, 3}, {0, 1, 0, 5, 0, 0, 0, 0, 2, 1, 2, 3}),
                    make_tensor<float>({2, 2, 3}, {0, 1, 0, 0, 5, 0, 0, 0, 2, 3, 2, 1}))
                  .is_ok());
  EXPECT_EQ(e.rows(), 4);
  EXPECT_EQ(e.argmax_agreement(), 0.5);
}

TEST(OutputError, OppositeZeroAndNonFinite) {
  OutputError zero;
  ASSERT_TRUE(zero.add(make_tensor<float>({2}, {0, 0}), make_tensor<float>({2}, {0, 0})).is_ok());
  EXPECT_EQ(zero.cosine(), 1.0);
  OutputError one_zero;
  ASSERT_TRUE(one_zero.add(make_tensor<float>({2}, {0, 0}), make_tensor<float>({2}, {1, 0})).is_ok());
  EXPECT_EQ(one_zero.cosine(), 0.0);
  EXPECT_TRUE(std::isinf(one_zero.relative_l2()));
  OutputError opposite;
  ASSERT_TRUE(opposite.add(make_tensor<float>({2}, {1, 2}), make_tensor<float>({2}, {-1, -2})).is_ok());
  EXPECT_NEAR(opposite.cosine(), -1.0, 1e-12);
  OutputError nan;
  ASSERT_TRUE(nan.add(make_tensor<float>({2}, {1, 2}),
                      make_tensor<float>({2}, {1, std::numeric_limits<float>::quiet_NaN()}))
                  .is_ok());
  EXPECT_EQ(nan.non_finite(), 1);
  EXPECT_EQ(nan.cosine(), 0.0);
  EXPECT_TRUE(std::isinf(nan.max_abs()));
}

TEST(OutputError, MismatchesAreErrors) {
  OutputError e;
  EXPECT_HAS(e.add(make_tensor<float>({2}, {1, 2}), make_tensor<float>({1, 2}, {1, 2})).message(),
             "shape [1, 2] differs from the reference's [2]");
  EXPECT_HAS(e.add(make_tensor<int64_t>({2}, {1, 2}), make_tensor<int64_t>({2}, {1, 2})).message(),
             "float outputs only");
}

}  // namespace
}  // namespace sarai
