// Tests for kernels/quant_ops.cc: DynamicQuantizeLinear, QuantizeLinear,
// DequantizeLinear, MatMulInteger, ConvInteger. The ONNX backend cases run
// too (tests/onnx_backend_test.cc); these add per-axis, int8, zero-point
// shapes, rounding ties, saturation and the error messages. Integer outputs
// are compared exactly; float outputs (DequantizeLinear) exactly as well,
// since (x - zp) * scale is one float rounding in the kernel and here.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_int;
using test::attr_ints;
using test::make_node;
using test::make_tensor;
using test::run_kernel;
using test::tensors_equal;

std::vector<Tensor> run(KernelFn fn, const Node& node, const std::vector<Tensor>& in, int64_t opset = 13) {
  auto r = run_kernel(fn, node, in, opset);
  EXPECT_TRUE(r.has_value()) << r.message();
  return r.has_value() ? *r : std::vector<Tensor>(static_cast<size_t>(node.outputs.size()));
}

std::string run_err(KernelFn fn, const Node& node, const std::vector<Tensor>& in, int64_t opset = 13) {
  auto r = run_kernel(fn, node, in, opset);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? std::string() : r.message();
}

template <class T>
std::vector<T> random_ints(int64_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = static_cast<T>(u(rng));
  return v;
}

// ---- DynamicQuantizeLinear

TEST(DynamicQuantizeLinear, BackendExamples) {
  Node node = make_node("DynamicQuantizeLinear", 1, 3);
  // Values from onnx's own numpy formula (scale 0.019607844, zero point 153).
  auto out = run(kernels::DynamicQuantizeLinear, node,
                 {make_tensor<float>({6}, {0, 2, -3, -2.5f, 1.34f, 0.5f})}, 11);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({6}, {153, 255, 0, 26, 221, 179})));
  EXPECT_EQ(out[1].shape(), Shape{});
  EXPECT_FLOAT_EQ(out[1].data<float>()[0], 0.019607844f);
  EXPECT_TRUE(tensors_equal(out[2], make_tensor<uint8_t>({}, {153})));
  // All negative: zero point 255.
  out = run(kernels::DynamicQuantizeLinear, node,
            {make_tensor<float>({2, 3}, {-1.0f, -2.1f, -1.3f, -2.5f, -3.34f, -4.0f})}, 11);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({2, 3}, {191, 121, 172, 96, 42, 0})));
  EXPECT_EQ(out[2].data<uint8_t>()[0], 255);
}

TEST(DynamicQuantizeLinear, AllZeroUsesScaleOneAndBadDtypeIsAnError) {
  Node node = make_node("DynamicQuantizeLinear", 1, 3);
  auto out = run(kernels::DynamicQuantizeLinear, node, {make_tensor<float>({3}, {0, 0, 0})}, 11);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({3}, {0, 0, 0})));
  EXPECT_EQ(out[1].data<float>()[0], 1.f);
  EXPECT_EQ(out[2].data<uint8_t>()[0], 0);
  EXPECT_HAS(run_err(kernels::DynamicQuantizeLinear, node, {make_tensor<int32_t>({1}, {1})}, 11),
             "input x has dtype int32; DynamicQuantizeLinear takes float32");
}

// ---- QuantizeLinear / DequantizeLinear

TEST(QuantizeLinear, PerTensorRoundsHalfToEvenAndSaturates) {
  Node node = make_node("QuantizeLinear", 3);
  auto out = run(kernels::QuantizeLinear, node,
                 {make_tensor<float>({6}, {0, 2, 3, 1000, -254, -1000}), make_tensor<float>({}, {2}),
                  make_tensor<uint8_t>({}, {128})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({6}, {128, 129, 130, 255, 1, 0})));
  // int8: ties to even (2.5 -> 2, 3.5 -> 4, -2.5 -> -2), range [-128, 127].
  out = run(kernels::QuantizeLinear, node,
            {make_tensor<float>({6}, {2.5f, 3.5f, -2.5f, 500, -500, 0.49f}), make_tensor<float>({1}, {1}),
             make_tensor<int8_t>({1}, {0})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int8_t>({6}, {2, 4, -2, 127, -128, 0})));
  // No zero point: uint8 with zero point 0.
  Node two = make_node("QuantizeLinear", 2);
  out = run(kernels::QuantizeLinear, two, {make_tensor<float>({3}, {-1, 7, 300}), make_tensor<float>({}, {1})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({3}, {0, 7, 255})));
}

TEST(QuantizeLinear, PerAxis) {
  Node node = make_node("QuantizeLinear", 3);
  // Backend case test_quantizelinear_axis (exact multiples).
  Tensor x = make_tensor<float>({1, 3, 3, 2}, {-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44,
                                               245, -485, -960, -270, -375, -470});
  auto out = run(kernels::QuantizeLinear, node,
                 {x, make_tensor<float>({3}, {2, 4, 5}), make_tensor<uint8_t>({3}, {84, 24, 196})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<uint8_t>({1, 3, 3, 2}, {3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13,
                                                                        245, 99, 4, 142, 121, 102})));
  // axis = -1 on a [2, 3] int8 output; 10 / 4 = 2.5 rounds to 2 (even).
  node.attrs["axis"] = attr_int(-1);
  out = run(kernels::QuantizeLinear, node,
            {make_tensor<float>({2, 3}, {1, 1, 1, 10, 10, 10}), make_tensor<float>({3}, {1, 2, 4}),
             make_tensor<int8_t>({3}, {0, -1, 1})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int8_t>({2, 3}, {1, -1, 1, 10, 4, 3})));
}

TEST(QuantizeLinear, Errors) {
  Node node = make_node("QuantizeLinear", 3);
  Tensor x = make_tensor<float>({1, 3, 2}, std::vector<float>(6, 1.f));
  EXPECT_HAS(run_err(kernels::QuantizeLinear, node,
                     {x, make_tensor<float>({2}, {1, 1}), make_tensor<uint8_t>({2}, {0, 0})}),
             "y_scale [2] must have one value per index of axis 1 of x [1, 3, 2]");
  EXPECT_HAS(run_err(kernels::QuantizeLinear, node,
                     {x, make_tensor<float>({3}, {1, 1, 1}), make_tensor<uint8_t>({}, {0})}),
             "y_zero_point [] must have the shape of y_scale [3]");
  EXPECT_HAS(run_err(kernels::QuantizeLinear, node,
                     {x, make_tensor<float>({}, {1}), make_tensor<int32_t>({}, {0})}),
             "output type int32 is not supported (uint8, int8, uint16, int16)");
  EXPECT_HAS(run_err(kernels::QuantizeLinear, node,
                     {x, make_tensor<int32_t>({}, {1}), make_tensor<uint8_t>({}, {0})}),
             "y_scale has dtype int32; only float32 scales are supported");
  Node axis = node;
  axis.attrs["axis"] = attr_int(3);
  EXPECT_HAS(run_err(kernels::QuantizeLinear, axis,
                     {x, make_tensor<float>({3}, {1, 1, 1}), make_tensor<uint8_t>({3}, {0, 0, 0})}),
             "axis");
  Node blocked = node;
  blocked.attrs["block_size"] = attr_int(2);
  EXPECT_HAS(run_err(kernels::QuantizeLinear, blocked,
                     {x, make_tensor<float>({}, {1}), make_tensor<uint8_t>({}, {0})}, 21),
             "block_size 2 (blocked quantization) is not supported");
  EXPECT_HAS(run_err(kernels::QuantizeLinear, node,
                     {make_tensor<uint8_t>({1}, {1}), make_tensor<float>({}, {1})}),
             "input x has dtype uint8; QuantizeLinear takes float32");
}

TEST(DequantizeLinear, PerTensorPerAxisInt8AndInt32) {
  Node node = make_node("DequantizeLinear", 3);
  auto out = run(kernels::DequantizeLinear, node,
                 {make_tensor<uint8_t>({4}, {0, 3, 128, 255}), make_tensor<float>({}, {2}),
                  make_tensor<uint8_t>({}, {128})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<float>({4}, {-256, -250, 0, 254})));
  out = run(kernels::DequantizeLinear, node,
            {make_tensor<int8_t>({2, 2}, {-128, 127, -1, 5}), make_tensor<float>({2}, {0.5f, 2}),
             make_tensor<int8_t>({2}, {-128, 1})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<float>({2, 2}, {0, 252, 63.5f, 8})));
  node.attrs["axis"] = attr_int(0);
  out = run(kernels::DequantizeLinear, node,
            {make_tensor<int8_t>({2, 2}, {-128, 127, -1, 5}), make_tensor<float>({2}, {0.5f, 2}),
             make_tensor<int8_t>({2}, {-128, 1})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<float>({2, 2}, {0, 127.5f, -4, 8})));
  Node two = make_node("DequantizeLinear", 2);
  out = run(kernels::DequantizeLinear, two,
            {make_tensor<int32_t>({3}, {-1000000, 0, 2147483647}), make_tensor<float>({}, {0.5f})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<float>({3}, {-500000, 0, 2147483647.0f * 0.5f})));
}

TEST(DequantizeLinear, Errors) {
  Node node = make_node("DequantizeLinear", 3);
  EXPECT_HAS(run_err(kernels::DequantizeLinear, node,
                     {make_tensor<uint8_t>({2}, {1, 2}), make_tensor<float>({}, {1}), make_tensor<int8_t>({}, {0})}),
             "zero point x_zero_point has dtype int8 but its operand is uint8");
  EXPECT_HAS(run_err(kernels::DequantizeLinear, node,
                     {make_tensor<float>({2}, {1, 2}), make_tensor<float>({}, {1}), make_tensor<float>({}, {0})}),
             "input x has dtype float32; DequantizeLinear takes uint8, int8, uint16, int16 or int32");
  EXPECT_HAS(run_err(kernels::DequantizeLinear, node,
                     {make_tensor<uint8_t>({2, 2}, {1, 2, 3, 4}), make_tensor<float>({2, 1}, {1, 1}),
                      make_tensor<uint8_t>({2, 1}, {0, 0})}),
             "x_scale [2, 1] must be a scalar (per tensor) or 1-D (per axis)");
}

// ---- MatMulInteger

// Y[b][m][n] = Σ_k (A - azp(b, m)) (B - bzp(b, n)) over A [B?, M, K], B [K, N] or [B, K, N].
template <class TA, class TB>
std::vector<int32_t> naive_mmi(const std::vector<TA>& a, const std::vector<TB>& b, int64_t batch, int64_t m,
                               int64_t k, int64_t n, bool b_batched, const std::vector<int>& azp,
                               const std::vector<int>& bzp, int a_mode, int b_mode) {
  std::vector<int32_t> y;
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        int32_t s = 0;
        const int za = azp[static_cast<size_t>(a_mode == 0 ? 0 : a_mode == 1 ? i : bi * m + i)];
        const int zb = bzp[static_cast<size_t>(b_mode == 0 ? 0 : b_mode == 1 ? j : bi * n + j)];
        for (int64_t t = 0; t < k; ++t)
          s += (int32_t{a[static_cast<size_t>((bi * m + i) * k + t)]} - za) *
               (int32_t{b[static_cast<size_t>(((b_batched ? bi : 0) * k + t) * n + j)]} - zb);
        y.push_back(s);
      }
  return y;
}

TEST(MatMulInteger, BackendExample) {
  Node node = make_node("MatMulInteger", 4);
  auto out = run(kernels::MatMulInteger, node,
                 {make_tensor<uint8_t>({4, 3}, {11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0}),
                  make_tensor<uint8_t>({3, 2}, {1, 4, 2, 5, 3, 6}), make_tensor<uint8_t>({1}, {12}),
                  make_tensor<uint8_t>({1}, {0})}, 10);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({4, 2}, {-38, -83, -44, -98, -50, -113, -56, -128})));
}

TEST(MatMulInteger, TypesZeroPointShapesAndBroadcast) {
  const int64_t batch = 2, m = 3, k = 7, n = 5;
  auto a_u8 = random_ints<uint8_t>(batch * m * k, 1, 0, 255);
  auto a_i8 = random_ints<int8_t>(batch * m * k, 2, -128, 127);
  auto b_i8 = random_ints<int8_t>(k * n, 3, -128, 127);
  auto b_u8 = random_ints<uint8_t>(batch * k * n, 4, 0, 255);
  Node node = make_node("MatMulInteger", 4);
  Node two = make_node("MatMulInteger", 2);
  // u8 x s8, no zero points, A batched over a plain B.
  auto out = run(kernels::MatMulInteger, two, {make_tensor<uint8_t>({batch, m, k}, a_u8), make_tensor<int8_t>({k, n}, b_i8)});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({batch, m, n},
                                                         naive_mmi(a_u8, b_i8, batch, m, k, n, false, {0}, {0}, 0, 0))));
  // s8 x u8, per-row A zero points [M] and per-column B zero points [N], B batched.
  std::vector<int> azp = {-3, 0, 7}, bzp = {0, 1, 128, 200, 255};
  out = run(kernels::MatMulInteger, node,
            {make_tensor<int8_t>({batch, m, k}, a_i8), make_tensor<uint8_t>({batch, k, n}, b_u8),
             make_tensor<int8_t>({m}, {-3, 0, 7}), make_tensor<uint8_t>({n}, {0, 1, 128, 200, 255})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({batch, m, n},
                                                         naive_mmi(a_i8, b_u8, batch, m, k, n, true, azp, bzp, 1, 1))));
  // Per batch and row [B, M, 1], per batch and column [B, 1, N].
  std::vector<int> azp2 = {1, 2, 3, -4, -5, -6}, bzp2 = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
  out = run(kernels::MatMulInteger, node,
            {make_tensor<int8_t>({batch, m, k}, a_i8), make_tensor<uint8_t>({batch, k, n}, b_u8),
             make_tensor<int8_t>({batch, m, 1}, {1, 2, 3, -4, -5, -6}),
             make_tensor<uint8_t>({batch, 1, n}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({batch, m, n},
                                                         naive_mmi(a_i8, b_u8, batch, m, k, n, true, azp2, bzp2, 2, 2))));
  // 1-D A and B: a scalar.
  out = run(kernels::MatMulInteger, two, {make_tensor<uint8_t>({3}, {1, 2, 255}), make_tensor<int8_t>({3}, {-128, 3, 127})});
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({}, {-128 + 6 + 255 * 127})));
}

TEST(MatMulInteger, Errors) {
  Node node = make_node("MatMulInteger", 4);
  Tensor a = make_tensor<uint8_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = make_tensor<int8_t>({3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_HAS(run_err(kernels::MatMulInteger, make_node("MatMulInteger", 2), {a, make_tensor<int8_t>({2, 2}, {1, 2, 3, 4})}),
             "MatMulInteger inner dimensions differ: A [2, 3] has K=3 but B [2, 2] has K=2");
  EXPECT_HAS(run_err(kernels::MatMulInteger, make_node("MatMulInteger", 2), {make_tensor<float>({2, 3}, std::vector<float>(6)), b}),
             "input A has dtype float32; must be uint8 or int8");
  EXPECT_HAS(run_err(kernels::MatMulInteger, node, {a, b, make_tensor<uint8_t>({3}, {0, 0, 0}), make_tensor<int8_t>({}, {0})}),
             "a_zero_point [3] must be a scalar, [2] or [2, 1]");
  EXPECT_HAS(run_err(kernels::MatMulInteger, node, {a, b, make_tensor<uint8_t>({}, {0}), make_tensor<int8_t>({3}, {0, 0, 0})}),
             "b_zero_point [3] must be a scalar, [2] or [1, 2]");
  EXPECT_HAS(run_err(kernels::MatMulInteger, node, {a, b, make_tensor<int8_t>({}, {0}), make_tensor<int8_t>({}, {0})}),
             "zero point a_zero_point has dtype int8 but its operand is uint8");
  EXPECT_HAS(run_err(kernels::MatMulInteger, node,
                     {make_tensor<uint8_t>({2}, {1, 2}), make_tensor<int8_t>({2}, {1, 2}), make_tensor<uint8_t>({}, {0}),
                      make_tensor<int8_t>({2}, {0, 0})}),
             "b_zero_point [2] must be a scalar for a 1-D operand");
}

// ---- ConvInteger

TEST(ConvInteger, BackendExamples) {
  Tensor x = make_tensor<uint8_t>({1, 1, 3, 3}, {2, 3, 4, 5, 6, 7, 8, 9, 10});
  Tensor w = make_tensor<uint8_t>({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor zp = make_tensor<uint8_t>({}, {1});
  Node node = make_node("ConvInteger", 3);
  auto out = run(kernels::ConvInteger, node, {x, w, zp}, 10);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({1, 1, 2, 2}, {12, 16, 24, 28})));
  node.attrs["pads"] = attr_ints({1, 1, 1, 1});
  out = run(kernels::ConvInteger, node, {x, w, zp}, 10);
  EXPECT_TRUE(tensors_equal(out[0], make_tensor<int32_t>({1, 1, 4, 4}, {1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15,
                                                                        7, 15, 17, 9})));
}

TEST(ConvInteger, GroupsStridesPerChannelWeightZeroPointMatchFloatConv) {
  // Integers below 2^24 are exact in float: the FP32 Conv on (x - x_zp) and
  // (w - w_zp[m]) as floats is an exact oracle.
  const Shape xs = {2, 4, 7, 6}, ws = {6, 2, 3, 2};
  auto xv = random_ints<uint8_t>(2 * 4 * 7 * 6, 11, 0, 255);
  auto wv = random_ints<int8_t>(6 * 2 * 3 * 2, 12, -128, 127);
  const int xzp = 131;
  const std::vector<int8_t> wzp = {0, -1, 5, 127, -128, 3};
  std::vector<float> xf(xv.size()), wf(wv.size());
  for (size_t i = 0; i < xv.size(); ++i) xf[i] = float(int(xv[i]) - xzp);
  for (size_t i = 0; i < wv.size(); ++i) wf[i] = float(int(wv[i]) - wzp[i / 12]);
  Node ci = make_node("ConvInteger", 4), cf = make_node("Conv", 2);
  for (Node* n : {&ci, &cf}) {
    n->attrs["group"] = attr_int(2);
    n->attrs["strides"] = attr_ints({2, 1});
    n->attrs["dilations"] = attr_ints({1, 2});
    n->attrs["pads"] = attr_ints({1, 0, 2, 1});
  }
  auto yi = run(kernels::ConvInteger, ci,
                {make_tensor<uint8_t>(xs, xv), make_tensor<int8_t>(ws, wv), make_tensor<uint8_t>({}, {131}),
                 make_tensor<int8_t>({6}, wzp)}, 10);
  auto yf = run(kernels::Conv, cf, {make_tensor<float>(xs, xf), make_tensor<float>(ws, wf)});
  ASSERT_EQ(yi[0].shape(), yf[0].shape());
  for (int64_t i = 0; i < yi[0].numel(); ++i)
    ASSERT_EQ(yi[0].data<int32_t>()[i], static_cast<int32_t>(yf[0].data<float>()[i])) << "at " << i;
}

TEST(ConvInteger, SeveralBlocksOfOutputPositionsMatchFloatConv) {
  // 2 images x 2 groups x 575 output positions: blocks of 256 positions,
  // the last one partial (kernels/quant_ops.cc).
  const Shape xs = {2, 4, 23, 25}, ws = {6, 2, 3, 3};
  auto xv = random_ints<uint8_t>(2 * 4 * 23 * 25, 21, 0, 255);
  auto wv = random_ints<uint8_t>(6 * 2 * 3 * 3, 22, 0, 255);
  const int xzp = 7;
  const std::vector<uint8_t> wzp = {210, 0, 128, 255, 1, 90};
  std::vector<float> xf(xv.size()), wf(wv.size());
  for (size_t i = 0; i < xv.size(); ++i) xf[i] = float(int(xv[i]) - xzp);
  for (size_t i = 0; i < wv.size(); ++i) wf[i] = float(int(wv[i]) - wzp[i / 18]);
  Node ci = make_node("ConvInteger", 4), cf = make_node("Conv", 2);
  for (Node* n : {&ci, &cf}) {
    n->attrs["group"] = attr_int(2);
    n->attrs["pads"] = attr_ints({1, 1, 1, 1});
  }
  auto yi = run(kernels::ConvInteger, ci,
                {make_tensor<uint8_t>(xs, xv), make_tensor<uint8_t>(ws, wv), make_tensor<uint8_t>({}, {7}),
                 make_tensor<uint8_t>({6}, wzp)}, 10);
  auto yf = run(kernels::Conv, cf, {make_tensor<float>(xs, xf), make_tensor<float>(ws, wf)});
  ASSERT_EQ(yi[0].shape(), yf[0].shape());
  for (int64_t i = 0; i < yi[0].numel(); ++i)
    ASSERT_EQ(yi[0].data<int32_t>()[i], static_cast<int32_t>(yf[0].data<float>()[i])) << "at " << i;
}

TEST(ConvInteger, Errors) {
  Tensor x = make_tensor<uint8_t>({1, 2, 3, 3}, std::vector<uint8_t>(18, 1));
  Tensor w = make_tensor<int8_t>({3, 2, 2, 2}, std::vector<int8_t>(24, 1));
  Node node = make_node("ConvInteger", 4);
  EXPECT_HAS(run_err(kernels::ConvInteger, node, {x, w, make_tensor<uint8_t>({2}, {1, 1}), make_tensor<int8_t>({}, {0})}, 10),
             "x_zero_point [2] must be a scalar (per-tensor)");
  EXPECT_HAS(run_err(kernels::ConvInteger, node, {x, w, make_tensor<uint8_t>({}, {1}), make_tensor<int8_t>({2}, {0, 0})}, 10),
             "w_zero_point [2] must be a scalar or [3] (per output channel)");
  EXPECT_HAS(run_err(kernels::ConvInteger, make_node("ConvInteger", 2),
                     {x, make_tensor<int8_t>({3, 1, 2, 2}, std::vector<int8_t>(12, 1))}, 10),
             "W [3, 1, 2, 2] has 1 input channels per group but X [1, 2, 3, 3] with group 1 needs 2");
  EXPECT_HAS(run_err(kernels::ConvInteger, make_node("ConvInteger", 2),
                     {make_tensor<int32_t>({1, 2, 3, 3}, std::vector<int32_t>(18)), w}, 10),
             "input x has dtype int32; must be uint8 or int8");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

// The per-tensor float32 -> uint8 / int8 path (the vector kernel, in
// parallel over a tensor past one grain) and the per-tensor 8-bit
// DequantizeLinear path, against the spec's formula element by element:
// ties, saturation, infinities and NaN (0) included.
TEST(QuantizeLinear, PerTensorFastPathsMatchTheFormula) {
  const int64_t n = 70001;
  std::vector<float> x(static_cast<size_t>(n));
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-9.f, 9.f);
  for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = u(rng);
  const float scale = 0.0625f;  // x / scale exact: ties at k + 0.5
  for (int64_t i = 0; i < 64; ++i) x[static_cast<size_t>(i)] = (static_cast<float>(i) - 32.f + 0.5f) * scale;
  x[100] = INFINITY;
  x[101] = -INFINITY;
  x[102] = NAN;
  for (bool s8 : {false, true}) {
    SCOPED_TRACE(s8);
    const int zp = s8 ? -7 : 131;
    const Tensor zt = s8 ? make_tensor<int8_t>({}, {static_cast<int8_t>(zp)}) : make_tensor<uint8_t>({}, {static_cast<uint8_t>(zp)});
    auto y = run(kernels::QuantizeLinear, make_node("QuantizeLinear", 3),
                 {make_tensor<float>({n}, x), make_tensor<float>({}, {scale}), zt});
    ASSERT_EQ(y[0].dtype(), s8 ? DType::kInt8 : DType::kUInt8);
    const float lo = s8 ? -128.f : 0.f, hi = s8 ? 127.f : 255.f;
    for (int64_t i = 0; i < n; ++i) {
      float q = std::nearbyint(x[static_cast<size_t>(i)] / scale) + static_cast<float>(zp);
      q = std::isnan(q) ? 0.f : std::clamp(q, lo, hi);
      const int got = s8 ? int{y[0].data<int8_t>()[i]} : int{y[0].data<uint8_t>()[i]};
      ASSERT_EQ(got, static_cast<int>(q)) << "at " << i << " x = " << x[static_cast<size_t>(i)];
    }
    // And back.
    auto d = run(kernels::DequantizeLinear, make_node("DequantizeLinear", 3), {y[0], make_tensor<float>({}, {scale}), zt});
    for (int64_t i = 0; i < n; ++i) {
      const int q = s8 ? int{y[0].data<int8_t>()[i]} : int{y[0].data<uint8_t>()[i]};
      ASSERT_EQ(d[0].data<float>()[i], static_cast<float>(q - zp) * scale) << "at " << i;
    }
  }
}

}  // namespace
}  // namespace sarai
