// Tests for kernels/qlinear_ops.cc: QLinearMatMul and QLinearConv. The ONNX
// backend cases (test_qlinearmatmul_2D/3D, test_qlinearconv) run too; these
// add int8 operands and outputs, per-channel weight scales and zero points,
// batch broadcasting, grouped / strided / padded convolutions with a bias,
// rounding ties, saturation and every error message. Outputs are compared
// exactly with a naive loop here: the int32 sum in int64, then
// round_half_even(float(acc) * (s_a * s_b[n] / s_y)) + y_zp, saturated.
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
using test::run1;
using test::run_error;
using test::scalar;
using test::tensors_equal;

template <class T>
std::vector<T> random_ints(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(std::is_same_v<T, uint8_t> ? 0 : -128, std::is_same_v<T, uint8_t> ? 255 : 127);
  std::vector<T> v(static_cast<size_t>(n));
  for (T& x : v) x = static_cast<T>(u(rng));
  return v;
}

int32_t at(const Tensor& t, int64_t i) {
  return t.dtype() == DType::kUInt8 ? int32_t{t.data<uint8_t>()[i]} : int32_t{t.data<int8_t>()[i]};
}

// The requantization of one accumulator, as the spec's formula in float32.
int32_t requant(int64_t acc, float sa, float sb, float sy, int32_t zp, bool u8) {
  const float m = sa * sb / sy;
  const float v = std::nearbyint(static_cast<float>(static_cast<int32_t>(acc)) * m) + static_cast<float>(zp);
  return static_cast<int32_t>(std::clamp(v, u8 ? 0.f : -128.f, u8 ? 255.f : 127.f));
}


Tensor output_like(DType t, const Shape& s, const std::vector<int32_t>& v) {
  Tensor y = Tensor::allocate(t, s);
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DType::kUInt8) y.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v[i]);
    else y.mutable_data<int8_t>()[i] = static_cast<int8_t>(v[i]);
  }
  return y;
}

// ---- QLinearMatMul

TEST(QLinearMatMul, BackendExample2D) {
  // onnx's test_qlinearmatmul_2D.
  const Tensor y = run1(kernels::QLinearMatMul, make_node("QLinearMatMul", 8),
                        {make_tensor<uint8_t>({2, 4}, {208, 236, 0, 238, 3, 214, 255, 29}), scalar(0.0066f),
                         scalar<uint8_t>(113),
                         make_tensor<uint8_t>({4, 3}, {152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247}),
                         scalar(0.00705f), scalar<uint8_t>(114), scalar(0.0107f), scalar<uint8_t>(118)},
                        10);
  EXPECT_TRUE(tensors_equal(y, make_tensor<uint8_t>({2, 3}, {168, 115, 255, 1, 66, 151})));
}

struct MatMulCase {
  const char* name;
  Shape a, b;
  DType ta, tb, ty;
  bool per_column;  // b_scale and b_zero_point [N]
};

template <class T>
Tensor ints_tensor(const Shape& s, uint32_t seed) {
  return make_tensor<T>(s, random_ints<T>(numel_of(s), seed));
}

Tensor ints_of(DType t, const Shape& s, uint32_t seed) {
  return t == DType::kUInt8 ? ints_tensor<uint8_t>(s, seed) : ints_tensor<int8_t>(s, seed);
}

Tensor zp_of(DType t, const Shape& s, int base) {
  std::vector<int32_t> v(static_cast<size_t>(numel_of(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = base + static_cast<int32_t>(i * 7 % 23) - 11;
  return output_like(t, s, v);
}

TEST(QLinearMatMul, MatchesTheNaiveFormula) {
  const MatMulCase cases[] = {
      {"u8u8u8_2d", {5, 7}, {7, 6}, DType::kUInt8, DType::kUInt8, DType::kUInt8, false},
      {"u8s8s8_per_column", {4, 9}, {9, 5}, DType::kUInt8, DType::kInt8, DType::kInt8, true},
      {"s8s8u8_batched_broadcast", {2, 3, 3, 8}, {3, 8, 4}, DType::kInt8, DType::kInt8, DType::kUInt8, true},
      {"u8u8_vector_a", {6}, {6, 3}, DType::kUInt8, DType::kUInt8, DType::kUInt8, false},
      {"u8u8_empty", {0, 4}, {4, 3}, DType::kUInt8, DType::kUInt8, DType::kUInt8, false},
  };
  for (const MatMulCase& c : cases) {
    SCOPED_TRACE(c.name);
    const Tensor a = ints_of(c.ta, c.a, 1), b = ints_of(c.tb, c.b, 2);
    const int64_t K = c.b[c.b.size() - 2], N = c.b.back();
    const Shape bs = c.per_column ? Shape{N} : Shape{};
    std::vector<float> bscale(static_cast<size_t>(numel_of(bs)));
    for (size_t i = 0; i < bscale.size(); ++i) bscale[i] = 0.01f + 0.003f * static_cast<float>(i);
    const Tensor azp = zp_of(c.ta, {}, c.ta == DType::kUInt8 ? 128 : 0);
    const Tensor bzp = zp_of(c.tb, bs, c.tb == DType::kUInt8 ? 120 : 3);
    const Tensor yzp = zp_of(c.ty, {}, c.ty == DType::kUInt8 ? 130 : -5);
    const float sa = 0.02f, sy = 0.9f;
    const Tensor y = run1(kernels::QLinearMatMul, make_node("QLinearMatMul", 8),
                          {a, scalar(sa), azp, b, make_tensor<float>(bs, bscale), bzp, scalar(sy), yzp}, 10);
    // Naive: A as [batch_a, M, K], B as [batch_b, K, N]; these shapes
    // broadcast by repeating the smaller batch.
    const Shape as = c.a.size() == 1 ? Shape{1, c.a[0]} : c.a;
    const int64_t M = as[as.size() - 2];
    const int64_t na = M * K > 0 ? a.numel() / (M * K) : 1, nb = K * N > 0 ? b.numel() / (K * N) : 1;  // empty: no batches to walk
    const int64_t batches = std::max(na, nb);
    std::vector<int32_t> want;
    for (int64_t bi = 0; bi < batches; ++bi)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          int64_t acc = 0;
          const int32_t zb = at(bzp, bzp.numel() == 1 ? 0 : n);
          for (int64_t k = 0; k < K; ++k)
            acc += int64_t{at(a, (bi % na) * M * K + m * K + k) - at(azp, 0)} *
                   (at(b, (bi % nb) * K * N + k * N + n) - zb);
          want.push_back(requant(acc, sa, bscale[bscale.size() == 1 ? 0 : static_cast<size_t>(n)], sy, at(yzp, 0),
                                 c.ty == DType::kUInt8));
        }
    ASSERT_EQ(y.dtype(), c.ty);
    ASSERT_EQ(y.numel(), static_cast<int64_t>(want.size()));
    EXPECT_TRUE(tensors_equal(y, output_like(c.ty, y.shape(), want)));
  }
}

TEST(QLinearMatMul, RoundsHalfToEvenAndSaturates) {
  // Multiplier 1 / 2: accumulators 1, 3, 5, -1, -3 are ties (0.5, 1.5,
  // 2.5, -0.5, -1.5 -> 0, 2, 2, -0, -2); 600 and -600 saturate.
  const Tensor a = make_tensor<int8_t>({7, 1}, {1, 3, 5, -1, -3, 120, -120});
  const Tensor b = make_tensor<int8_t>({1, 1}, {1});
  const Tensor b5 = make_tensor<int8_t>({1, 1}, {5});
  Tensor y = run1(kernels::QLinearMatMul, make_node("QLinearMatMul", 8),
                  {a, scalar(1.f), scalar<int8_t>(0), b, scalar(1.f), scalar<int8_t>(0), scalar(2.f),
                   scalar<int8_t>(0)},
                  10);
  EXPECT_TRUE(tensors_equal(y, make_tensor<int8_t>({7, 1}, {0, 2, 2, 0, -2, 60, -60})));
  y = run1(kernels::QLinearMatMul, make_node("QLinearMatMul", 8),
           {a, scalar(1.f), scalar<int8_t>(0), b5, scalar(1.f), scalar<int8_t>(0), scalar(2.f),
            scalar<uint8_t>(10)},
           10);
  // 5/2 = 2.5 -> 2, 15/2 = 7.5 -> 8, 25/2 -> 12, -2.5 -> -2, -7.5 -> -8; + 10; 300 + 10 -> 255; -300 -> 0.
  EXPECT_TRUE(tensors_equal(y, make_tensor<uint8_t>({7, 1}, {12, 18, 22, 8, 2, 255, 0})));
}

TEST(QLinearMatMul, OmittedZeroPointsAreZeroAndTheOutputUint8) {
  Node node = make_node("QLinearMatMul", 8);
  node.inputs[2] = node.inputs[5] = node.inputs[7] = kNoValue;
  const Tensor y = run1(kernels::QLinearMatMul, node,
                        {make_tensor<uint8_t>({1, 2}, {3, 4}), scalar(1.f), Tensor(),
                         make_tensor<uint8_t>({2, 1}, {5, 6}), scalar(1.f), Tensor(), scalar(4.f), Tensor()},
                        10);
  EXPECT_TRUE(tensors_equal(y, make_tensor<uint8_t>({1, 1}, {10})));  // 39 / 4 = 9.75
}

TEST(QLinearMatMul, Errors) {
  const Node node = make_node("QLinearMatMul", 8);
  const Tensor a = make_tensor<uint8_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor b = make_tensor<uint8_t>({3, 2}, {1, 2, 3, 4, 5, 6});
  auto inputs = [&] {
    return std::vector<Tensor>{a, scalar(0.1f), scalar<uint8_t>(1), b, scalar(0.2f), scalar<uint8_t>(2),
                               scalar(0.3f), scalar<uint8_t>(3)};
  };
  auto err = [&](int i, Tensor t) {
    auto in = inputs();
    in[static_cast<size_t>(i)] = std::move(t);
    return run_error(kernels::QLinearMatMul, node, in, 10);
  };
  Node missing = node;
  missing.inputs[4] = kNoValue;
  auto in = inputs();
  in[4] = Tensor();
  EXPECT_HAS(run_error(kernels::QLinearMatMul, missing, in, 10), "needs inputs a, a_scale, b, b_scale and y_scale");
  EXPECT_HAS(err(0, make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6})), "input a has dtype float32; must be uint8 or int8");
  EXPECT_HAS(err(3, make_tensor<int32_t>({3, 2}, {1, 2, 3, 4, 5, 6})), "input b has dtype int32");
  EXPECT_HAS(err(0, scalar<uint8_t>(1)), "inputs must have rank >= 1");
  EXPECT_HAS(err(1, make_tensor<float>({2}, {1, 2})), "a_scale [2] must be a scalar (per tensor)");
  EXPECT_HAS(err(1, make_tensor<double>({}, {1})), "a_scale has dtype float64; only float32 scales");
  EXPECT_HAS(err(4, make_tensor<float>({3}, {1, 2, 3})), "b_scale [3] must be a scalar or [2] (per output channel)");
  EXPECT_HAS(err(2, scalar<int8_t>(1)), "a_zero_point has dtype int8 but a is uint8");
  EXPECT_HAS(err(5, make_tensor<uint8_t>({3}, {1, 2, 3})), "b_zero_point [3] must be a scalar or [2]");
  EXPECT_HAS(err(6, make_tensor<float>({2}, {1, 2})), "y_scale [2] must be a scalar (per tensor)");
  EXPECT_HAS(err(6, make_tensor<int32_t>({}, {1})), "y_scale has dtype int32");
  EXPECT_HAS(err(7, make_tensor<int32_t>({}, {1})), "y_zero_point has dtype int32; must be uint8 or int8");
  EXPECT_HAS(err(7, make_tensor<uint8_t>({2}, {1, 2})), "y_zero_point [2] must be a scalar (per tensor)");
  EXPECT_HAS(err(6, scalar(0.f)), "scales must be finite and y_scale non-zero");
  EXPECT_HAS(err(1, scalar(NAN)), "scales must be finite");
  EXPECT_HAS(err(3, make_tensor<uint8_t>({4, 2}, {1, 2, 3, 4, 5, 6, 7, 8})), "inner dimensions differ");
}

// ---- QLinearConv

struct ConvCase {
  const char* name;
  Shape x, w;
  int64_t group;
  std::vector<int64_t> strides, pads;
  DType tx, tw, ty;
  bool per_channel, bias;
};

TEST(QLinearConv, MatchesTheNaiveFormula) {
  const ConvCase cases[] = {
      {"u8u8u8_padded", {1, 3, 6, 5}, {4, 3, 3, 3}, 1, {1, 1}, {1, 1, 1, 1}, DType::kUInt8, DType::kUInt8,
       DType::kUInt8, false, true},
      {"u8s8s8_per_channel_strided", {2, 4, 7, 6}, {6, 4, 3, 2}, 1, {2, 1}, {1, 0, 0, 1}, DType::kUInt8,
       DType::kInt8, DType::kInt8, true, true},
      {"s8s8u8_grouped_no_bias", {1, 6, 5, 5}, {9, 2, 3, 3}, 3, {1, 1}, {0, 0, 0, 0}, DType::kInt8, DType::kInt8,
       DType::kUInt8, true, false},
      {"u8s8_depthwise", {1, 4, 4, 4}, {4, 1, 3, 3}, 4, {1, 1}, {1, 1, 1, 1}, DType::kUInt8, DType::kInt8,
       DType::kUInt8, true, true},
  };
  for (const ConvCase& c : cases) {
    SCOPED_TRACE(c.name);
    const int64_t M = c.w[0], C = c.x[1], cg = C / c.group, mg = M / c.group, kh = c.w[2], kw = c.w[3];
    const Tensor x = ints_of(c.tx, c.x, 5), w = ints_of(c.tw, c.w, 6);
    const Shape cs = c.per_channel ? Shape{M} : Shape{};
    std::vector<float> wscale(static_cast<size_t>(numel_of(cs)));
    for (size_t i = 0; i < wscale.size(); ++i) wscale[i] = 0.004f + 0.0013f * static_cast<float>(i);
    const Tensor xzp = zp_of(c.tx, {}, c.tx == DType::kUInt8 ? 100 : -3);
    const Tensor wzp = zp_of(c.tw, cs, c.tw == DType::kUInt8 ? 128 : 0);
    const Tensor yzp = zp_of(c.ty, {}, c.ty == DType::kUInt8 ? 90 : 4);
    std::vector<int32_t> bias(static_cast<size_t>(M));
    for (int64_t m = 0; m < M; ++m) bias[static_cast<size_t>(m)] = static_cast<int32_t>(m * 97 % 400) - 200;
    const float sx = 0.05f, sy = 0.3f;
    Node node = make_node("QLinearConv", c.bias ? 9 : 8);
    node.attrs["group"] = attr_int(c.group);
    node.attrs["strides"] = attr_ints(c.strides);
    node.attrs["pads"] = attr_ints(c.pads);
    std::vector<Tensor> in = {x, scalar(sx), xzp, w, make_tensor<float>(cs, wscale), wzp, scalar(sy), yzp};
    if (c.bias) in.push_back(make_tensor<int32_t>({M}, bias));
    const Tensor y = run1(kernels::QLinearConv, node, in, 10);
    const int64_t H = c.x[2], W = c.x[3];
    const int64_t OH = (H + c.pads[0] + c.pads[2] - kh) / c.strides[0] + 1;
    const int64_t OW = (W + c.pads[1] + c.pads[3] - kw) / c.strides[1] + 1;
    std::vector<int32_t> want;
    for (int64_t n = 0; n < c.x[0]; ++n)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            const int64_t g = m / mg;
            const int32_t zw = at(wzp, wzp.numel() == 1 ? 0 : m);
            int64_t acc = c.bias ? bias[static_cast<size_t>(m)] : 0;
            for (int64_t ci = 0; ci < cg; ++ci)
              for (int64_t r = 0; r < kh; ++r)
                for (int64_t s = 0; s < kw; ++s) {
                  const int64_t ih = oh * c.strides[0] - c.pads[0] + r, iw = ow * c.strides[1] - c.pads[1] + s;
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;  // padding: x = x_zp
                  const int32_t xv = at(x, ((n * C + g * cg + ci) * H + ih) * W + iw) - at(xzp, 0);
                  acc += int64_t{xv} * (at(w, ((m * cg + ci) * kh + r) * kw + s) - zw);
                }
            want.push_back(requant(acc, sx, wscale[wscale.size() == 1 ? 0 : static_cast<size_t>(m)], sy,
                                   at(yzp, 0), c.ty == DType::kUInt8));
          }
    ASSERT_EQ(y.shape(), (Shape{c.x[0], M, OH, OW}));
    EXPECT_TRUE(tensors_equal(y, output_like(c.ty, y.shape(), want)));
  }
}

TEST(QLinearConv, EmptyBatch) {
  const Tensor y = run1(kernels::QLinearConv, make_node("QLinearConv", 8),
                        {make_tensor<uint8_t>({0, 2, 3, 3}, {}), scalar(1.f), scalar<uint8_t>(0),
                         make_tensor<uint8_t>({1, 2, 1, 1}, {1, 1}), scalar(1.f), scalar<uint8_t>(0), scalar(1.f),
                         scalar<uint8_t>(0)},
                        10);
  EXPECT_EQ(y.shape(), (Shape{0, 1, 3, 3}));
}

TEST(QLinearConv, Errors) {
  const Node node = make_node("QLinearConv", 9);
  const Tensor x = make_tensor<uint8_t>({1, 2, 3, 3}, std::vector<uint8_t>(18, 7));
  const Tensor w = make_tensor<int8_t>({2, 2, 1, 1}, {1, 2, 3, 4});
  auto inputs = [&] {
    return std::vector<Tensor>{x, scalar(0.1f), scalar<uint8_t>(1), w, make_tensor<float>({2}, {0.1f, 0.2f}),
                               make_tensor<int8_t>({2}, {0, 0}), scalar(0.3f), scalar<int8_t>(3),
                               make_tensor<int32_t>({2}, {5, 6})};
  };
  auto err = [&](int i, Tensor t) {
    auto in = inputs();
    in[static_cast<size_t>(i)] = std::move(t);
    return run_error(kernels::QLinearConv, node, in, 10);
  };
  // The valid inputs run.
  EXPECT_EQ(run1(kernels::QLinearConv, node, inputs(), 10).dtype(), DType::kInt8);
  Node missing = node;
  missing.inputs[6] = kNoValue;
  auto in = inputs();
  in[6] = Tensor();
  EXPECT_HAS(run_error(kernels::QLinearConv, missing, in, 10), "needs inputs x, x_scale, w, w_scale and y_scale");
  EXPECT_HAS(err(3, scalar<int8_t>(1)), "w [] must have rank >= 3");
  EXPECT_HAS(err(0, make_tensor<float>({1, 2, 3, 3}, std::vector<float>(18, 1.f))), "input x has dtype float32");
  EXPECT_HAS(err(4, make_tensor<float>({3}, {1, 2, 3})), "w_scale [3] must be a scalar or [2] (per output channel)");
  EXPECT_HAS(err(5, make_tensor<int8_t>({1, 2}, {0, 0})), "w_zero_point [1, 2] must be a scalar or [2]");
  EXPECT_HAS(err(5, make_tensor<uint8_t>({2}, {0, 0})), "w_zero_point has dtype uint8 but w is int8");
  EXPECT_HAS(err(2, make_tensor<uint8_t>({2}, {0, 0})), "x_zero_point [2] must be a scalar (per tensor)");
  EXPECT_HAS(err(8, make_tensor<float>({2}, {1, 2})), "B has dtype float32; QLinearConv's bias is int32");
  EXPECT_HAS(err(8, make_tensor<int32_t>({3}, {1, 2, 3})), "B [3] must be [2] (one value per output channel)");
  EXPECT_HAS(err(4, make_tensor<float>({2}, {1.f, INFINITY})), "scales must be finite");
  EXPECT_HAS(err(3, make_tensor<int8_t>({2, 3, 1, 1}, {1, 2, 3, 4, 5, 6})), "");  // ConvInteger's channel check
  Node bad_group = node;
  bad_group.attrs["group"] = attr_int(0);
  EXPECT_HAS(run_error(kernels::QLinearConv, bad_group, inputs(), 10), "group");
}

}  // namespace
}  // namespace sarai
