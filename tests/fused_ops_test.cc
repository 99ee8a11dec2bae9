// The ops the graph fusions create (runtime/fuse.h): ScaledSoftmax,
// Attention, and the fused inputs of QMatMul (residual, activation). Their
// results against the unfused kernels, and every error message.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "test_util.h"

namespace sarai {
namespace {

using test::make_node;
using test::run1;
using test::run_error;

Node attention_node(float divisor) {
  Node n = make_node("Attention", 3);
  n.attrs["divisor"] = test::attr_float(divisor);
  return n;
}

// Attention with broadcasting batch dims equals MatMul -> ScaledSoftmax ->
// MatMul run as three kernels (up to sgemm's rounding of row blocks).
TEST(Attention, MatchesTheUnfusedChainWithBroadcastBatch) {
  const Tensor q = test::random_tensor({2, 3, 37, 8}, 1, -2.f, 2.f);
  const Tensor kt = test::random_tensor({1, 3, 8, 45}, 2, -2.f, 2.f);
  const Tensor v = test::random_tensor({3, 45, 5}, 3);
  const Tensor got = run1(kernels::Attention, attention_node(2.828f), {q, kt, v});
  const Tensor scores = run1(kernels::MatMul, make_node("MatMul", 2), {q, kt});
  Node sm = make_node("ScaledSoftmax", 1);
  sm.attrs["divisor"] = test::attr_float(2.828f);
  const Tensor probs = run1(kernels::ScaledSoftmax, sm, {scores});
  const Tensor want = run1(kernels::MatMul, make_node("MatMul", 2), {probs, v});
  ASSERT_EQ(got.shape(), (Shape{2, 3, 37, 5}));
  EXPECT_TRUE(test::tensors_near(got, want, 1e-6, 1e-5));
}

TEST(Attention, Errors) {
  const Tensor q = test::random_tensor({2, 4, 8}, 1);
  const Tensor kt = test::random_tensor({2, 8, 6}, 2);
  const Tensor v = test::random_tensor({2, 6, 3}, 3);
  EXPECT_HAS(run_error(kernels::Attention, make_node("Attention", 3), {q, kt, v}),
             "attribute 'divisor' is missing");
  EXPECT_HAS(run_error(kernels::Attention, attention_node(1.f), {q, kt, Tensor()}), "input V is missing");
  EXPECT_HAS(run_error(kernels::Attention, attention_node(1.f),
                      {test::make_tensor<int32_t>({1, 1}, {1}), kt, v}),
             "input Q has dtype int32; Attention takes float32");
  EXPECT_HAS(run_error(kernels::Attention, attention_node(1.f), {test::random_tensor({8}, 4), kt, v}),
             "input Q [8] must have rank >= 2");
  EXPECT_HAS(run_error(kernels::Attention, attention_node(1.f), {q, test::random_tensor({2, 7, 6}, 5), v}),
             "must be [..., T, d], [..., d, S], [..., S, e]");
  EXPECT_HAS(run_error(kernels::Attention, attention_node(1.f), {q, test::random_tensor({3, 8, 6}, 5), v}),
             "batch dims of Q [2, 4, 8], KT [3, 8, 6] and V [2, 6, 3] cannot be broadcast");
}

TEST(ScaledSoftmax, Errors) {
  const Tensor x = test::random_tensor({2, 5}, 1);
  EXPECT_HAS(run_error(kernels::ScaledSoftmax, make_node("ScaledSoftmax", 1), {x}),
             "attribute 'divisor' is missing");
  Node n = make_node("ScaledSoftmax", 1);
  n.attrs["divisor"] = test::attr_float(2.f);
  EXPECT_HAS(run_error(kernels::ScaledSoftmax, n, {test::make_tensor<float>({}, {1.f})}),
             "input must have rank >= 1 (a scalar has no last axis)");
}

// A QMatMul with K = 4, N = 16 and all-zero weights, plus fused inputs.
Node qmatmul_node() {
  Node n = make_node("QMatMul", 6);
  n.domain = "sarai";
  n.attrs["K"] = test::attr_int(4);
  n.attrs["N"] = test::attr_int(16);
  return n;
}

std::vector<Tensor> qmatmul_inputs(Tensor residual) {
  return {test::random_tensor({3, 4}, 1),
          test::make_tensor<int8_t>({int8::packed_size(4, 16)},
                                    std::vector<int8_t>(static_cast<size_t>(int8::packed_size(4, 16)), 0)),
          test::make_tensor<float>({1}, {0.5f}),
          test::make_tensor<int32_t>({16}, std::vector<int32_t>(16, 0)),
          Tensor(),
          std::move(residual)};
}

TEST(QMatMulFusion, BroadcastResidualAndReluAfterTheGemm) {
  // Zero weights: y = 0, so out = relu(0 + r) broadcast over the rows.
  Node n = qmatmul_node();
  n.attrs["activation"] = test::attr_string("Relu");
  const Tensor r = test::make_tensor<float>({16}, {-1, 2, -3, 4, 5, -6, 7, 8, -9, 10, 11, 12, -13, 14, 15, 16});
  const Tensor out = run1(kernels::QMatMul, n, qmatmul_inputs(r));
  ASSERT_EQ(out.shape(), (Shape{3, 16}));
  for (int64_t i = 0; i < out.numel(); ++i) {
    const float want = std::max(0.f, r.data<float>()[i % 16]);
    EXPECT_EQ(out.data<float>()[i], want) << i;
  }
}

TEST(QMatMulFusion, Errors) {
  EXPECT_HAS(run_error(kernels::QMatMul, qmatmul_node(), qmatmul_inputs(test::make_tensor<int32_t>({16}, std::vector<int32_t>(16, 0)))),
             "fused residual has dtype int32; it must be float32");
  EXPECT_HAS(run_error(kernels::QMatMul, qmatmul_node(), qmatmul_inputs(test::random_tensor({5}, 2))),
             "cannot be broadcast");
  Node n = qmatmul_node();
  n.attrs["activation"] = test::attr_string("Tanh");
  EXPECT_HAS(run_error(kernels::QMatMul, n, qmatmul_inputs(Tensor())),
             "attribute activation = \"Tanh\" is not supported (Relu and Gelu are)");
}

}  // namespace
}  // namespace sarai
