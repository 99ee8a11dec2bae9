// Tests for kernels/qmatmul_qconv.cc (QMatMul, QConv, QConvTranspose, domain
// "sarai") and kernels/cpu/quantize_activations.cc.
//
// The integer cores must equal naive int32 loops written here exactly
// (ASSERT_EQ, reported as "@[m x n] M=.. N=.. K=.."). The ops' float outputs
// are compared with the same formula evaluated in double from the test's own
// quantization and accumulators; the one float tolerance of this file:
//   |y - expected| <= 1e-6 * (|s_x scale (acc - zp wsum)| + |bias|) + 1e-30
// (float(acc) and s_x * scale[n] each round once: a few 1e-8 relative).
// Accuracy against the FP32 ops: cosine >= 0.999 on random data.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "kernels/cpu/qref.h"
#include "kernels/cpu/quantize_activations.h"
#include "quantizer/quantize.h"
#include "runtime/parallel.h"
#include "tests/int8_reference.h"
#include "tests/test_util.h"

// The case tables below list only the leading fields they need.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_ints;
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;

using Ints = std::vector<int64_t>;
using kernels::QuantParams;

// ---- The test's own DynamicQuantizeLinear (written from the spec, in
// double where exactness allows; the scale division is float32 as the spec's
// reference computes it).
double round_half_even(double v) {
  const double f = std::floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

uint8_t sat_u8(double v) { return static_cast<uint8_t>(std::clamp(v, 0.0, 255.0)); }

std::vector<uint8_t> spec_dql(const std::vector<float>& x, QuantParams* p) {
  float lo = 0, hi = 0;
  for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
  p->scale = hi == lo ? 1.f : (hi - lo) / 255.f;
  p->zero_point = hi == lo ? 0 : sat_u8(round_half_even(std::clamp(0.f - lo / p->scale, 0.f, 255.f)));
  std::vector<uint8_t> q(x.size());
  for (size_t i = 0; i < x.size(); ++i)
    q[i] = sat_u8(round_half_even(x[i] / p->scale) + p->zero_point);
  return q;
}

// Random x whose DynamicQuantizeLinear zero point is exactly `zp`: the range
// is [-zp, 255 - zp] (scale 1), both ends present, the rest inside.
std::vector<float> x_with_zero_point(int64_t n, int zp, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(static_cast<float>(-zp), static_cast<float>(255 - zp));
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = u(rng);
  x[0] = static_cast<float>(-zp);
  if (n > 1) x[1] = static_cast<float>(255 - zp);
  return x;
}

std::vector<int8_t> random_i8(int64_t n, uint32_t seed, int lo = -127, int hi = 127) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> u(lo, hi);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (int8_t& x : v) x = static_cast<int8_t>(u(rng));
  return v;
}

std::vector<float> random_floats(int64_t n, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = u(rng);
  return v;
}

// Packs row-major w[K][N] with the quantizer's packer; also checks its sums
// against the naive ones.
std::vector<int8_t> pack(const std::vector<int8_t>& w, int64_t K, int64_t N, std::vector<int32_t>* sums) {
  std::vector<int8_t> packed(static_cast<size_t>(int8::packed_size(K, N)));
  sums->assign(static_cast<size_t>(N), 0);
  quant::pack_n16k4(w.data(), K, N, packed.data(), sums->data());
  for (int64_t n = 0; n < N; ++n) {
    int32_t s = 0;
    for (int64_t k = 0; k < K; ++k) s += w[static_cast<size_t>(k * N + n)];
    EXPECT_EQ(s, (*sums)[static_cast<size_t>(n)]) << "wsum of channel " << n;
  }
  return packed;
}

// |y - e| within this file's tolerance, e = dot + bias, dot from
// test::dequantize_ref (tests/int8_reference.h).
::testing::AssertionResult near_formula(const Tensor& y, const std::vector<double>& dot,
                                        const std::vector<double>& bias_of) {
  if (y.numel() != static_cast<int64_t>(dot.size()))
    return ::testing::AssertionFailure() << "size " << y.numel() << " vs " << dot.size();
  for (size_t i = 0; i < dot.size(); ++i) {
    const double e = dot[i] + bias_of[i], a = y.data<float>()[i];
    if (std::fabs(a - e) > 1e-6 * (std::fabs(dot[i]) + std::fabs(bias_of[i])) + 1e-30)
      return ::testing::AssertionFailure() << "at " << i << ": " << a << " vs " << e;
  }
  return ::testing::AssertionSuccess();
}

using test::cosine;

// ---- quantize_u8

TEST(QuantizeU8, MatchesSpecAndForcedZeroPoints) {
  for (int zp : {0, 1, 127, 128, 255}) {
    std::vector<float> x = x_with_zero_point(1000, zp, 7u + static_cast<uint32_t>(zp));
    QuantParams want;
    std::vector<uint8_t> q_want = spec_dql(x, &want);
    ASSERT_EQ(want.zero_point, zp);
    std::vector<uint8_t> q(x.size());
    QuantParams got = kernels::quantize_u8(x.data(), static_cast<int64_t>(x.size()), q.data());
    EXPECT_EQ(got.zero_point, want.zero_point);
    EXPECT_EQ(got.scale, want.scale);
    EXPECT_EQ(q, q_want) << "zp " << zp;
  }
  for (uint32_t seed = 0; seed < 20; ++seed) {
    std::vector<float> x = random_floats(333, seed, -3.f + 0.2f * seed, 1.f + 0.1f * seed);
    QuantParams want;
    std::vector<uint8_t> q_want = spec_dql(x, &want), q(x.size());
    QuantParams got = kernels::quantize_u8(x.data(), 333, q.data());
    EXPECT_EQ(got.zero_point, want.zero_point) << "seed " << seed;
    EXPECT_EQ(got.scale, want.scale);
    EXPECT_EQ(q, q_want) << "seed " << seed;
  }
}

TEST(QuantizeU8, HalfwayRoundsToEvenAndZeroRangeUsesScaleOne) {
  // Range [-127.5, 127.5]: scale 1, zero point round(127.5) = 128 (even).
  std::vector<float> x = {-127.5f, 127.5f, 0.5f, 1.5f, 2.5f, -0.5f};
  std::vector<uint8_t> q(x.size());
  QuantParams p = kernels::quantize_u8(x.data(), 6, q.data());
  EXPECT_EQ(p.scale, 1.f);
  EXPECT_EQ(p.zero_point, 128);
  EXPECT_EQ(q, (std::vector<uint8_t>{0, 255, 128, 130, 130, 128}));
  std::vector<float> zeros(5, 0.f);
  p = kernels::quantize_u8(zeros.data(), 5, q.data());
  EXPECT_EQ(p.scale, 1.f);
  EXPECT_EQ(p.zero_point, 0);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(q[static_cast<size_t>(i)], 0);
  // NaN and infinities never crash; NaN is ignored for the range.
  std::vector<float> odd = {NAN, 1.f, -1.f}, plain = {1.f, -1.f};
  QuantParams want;
  std::vector<uint8_t> q_want = spec_dql(plain, &want);
  p = kernels::quantize_u8(odd.data(), 3, q.data());
  EXPECT_EQ(p.zero_point, want.zero_point);
  EXPECT_EQ(p.scale, want.scale);
  EXPECT_EQ(q[0], 0);  // NaN
  EXPECT_EQ(q[1], q_want[0]);
  EXPECT_EQ(q[2], q_want[1]);
  std::vector<float> inf = {INFINITY, -1.f};
  kernels::quantize_u8(inf.data(), 2, q.data());  // no crash, no UB (checked under UBSan)
}

// ---- QMatMul

TEST(QMatMulCore, EqualsNaiveIntegerLoopOverTails) {
  for (int64_t K : {1, 2, 3, 5, 7, 13, 31, 61, 127, 251}) {
    for (int64_t N : {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 33}) {
      for (int64_t M : {1, 3}) {
        const uint32_t seed = static_cast<uint32_t>(K * 1000 + N * 10 + M);
        std::vector<int8_t> w = random_i8(K * N, seed);
        std::vector<uint8_t> a(static_cast<size_t>(M * K));
        std::mt19937 rng(seed + 2);
        for (auto& v : a) v = static_cast<uint8_t>(rng() & 255);
        std::vector<int32_t> sums;
        std::vector<int8_t> packed = pack(w, K, N, &sums);
        std::vector<int32_t> acc(static_cast<size_t>(M * N));
        kernels::qref::gemm_u8s8_n16k4(M, K, N, a.data(), packed.data(), acc.data());
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            int32_t want = 0;
            for (int64_t k = 0; k < K; ++k)
              want += int32_t{a[static_cast<size_t>(m * K + k)]} * w[static_cast<size_t>(k * N + n)];
            ASSERT_EQ(acc[static_cast<size_t>(m * N + n)], want)
                << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K;
          }
      }
    }
  }
}

TEST(QMatMulCore, ActivationsAt255WithWeightsAtPlusMinus127AreExact) {
  // The case vpmaddubsw saturates (255*127*2 > 32767); exact here, up to
  // the largest K whose sum still fits int32.
  for (int64_t K : {int64_t{2}, int64_t{64}, int64_t{1031}, kernels::qref::kMaxReduction}) {
    const int64_t N = 17;
    std::vector<int8_t> w(static_cast<size_t>(K * N));
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) w[static_cast<size_t>(k * N + n)] = n % 2 ? -127 : 127;
    std::vector<int32_t> sums;
    std::vector<int8_t> packed = pack(w, K, N, &sums);
    std::vector<uint8_t> a(static_cast<size_t>(K), 255);
    std::vector<int32_t> acc(static_cast<size_t>(N));
    kernels::qref::gemm_u8s8_n16k4(1, K, N, a.data(), packed.data(), acc.data());
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(int64_t{acc[static_cast<size_t>(n)]}, (n % 2 ? -1 : 1) * 255 * 127 * K)
          << "@[0 x " << n << "] K=" << K;
  }
}

struct QMatMulInputs {
  std::vector<Tensor> tensors;  // X, W, scale, wsum, bias?
  std::vector<int8_t> w;        // row-major [K, N]
  std::vector<int32_t> sums;
  std::vector<float> scale, bias;
};

QMatMulInputs qmatmul_inputs(const Shape& x_shape, const std::vector<float>& x, int64_t K, int64_t N,
                             bool per_tensor, bool with_bias, uint32_t seed) {
  QMatMulInputs in;
  in.w = random_i8(K * N, seed);
  std::vector<int8_t> packed = pack(in.w, K, N, &in.sums);
  in.scale = random_floats(per_tensor ? 1 : N, seed + 1, 0.001f, 0.05f);
  in.bias = with_bias ? random_floats(N, seed + 2, -2, 2) : std::vector<float>(static_cast<size_t>(N), 0.f);
  in.tensors = {make_tensor<float>(x_shape, x), make_tensor<int8_t>({int8::packed_size(K, N)}, packed),
                make_tensor<float>({static_cast<int64_t>(in.scale.size())}, in.scale),
                make_tensor<int32_t>({N}, in.sums)};
  if (with_bias) in.tensors.push_back(make_tensor<float>({N}, in.bias));
  return in;
}

Node qmatmul_node(int64_t K, int64_t N, bool with_bias) {
  Node node = make_node("QMatMul", with_bias ? 5 : 4);
  node.domain = "sarai";
  node.attrs["K"] = attr_int(K);
  node.attrs["N"] = attr_int(N);
  return node;
}

// Checks QMatMul on x [rows, K] against the formula from spec_dql + naive acc.
void check_qmatmul(const Shape& x_shape, const std::vector<float>& x, int64_t K, int64_t N,
                   bool per_tensor, bool with_bias, uint32_t seed) {
  SCOPED_TRACE("X " + shape_to_string(x_shape) + " K=" + std::to_string(K) + " N=" + std::to_string(N) +
               (per_tensor ? " per-tensor" : "") + (with_bias ? " bias" : ""));
  QMatMulInputs in = qmatmul_inputs(x_shape, x, K, N, per_tensor, with_bias, seed);
  Tensor y = run1(kernels::QMatMul, qmatmul_node(K, N, with_bias), in.tensors);
  Shape want_shape(x_shape.begin(), x_shape.end() - 1);
  want_shape.push_back(N);
  ASSERT_EQ(y.shape(), want_shape);
  QuantParams p;
  std::vector<uint8_t> xq = spec_dql(x, &p);
  const int64_t rows = static_cast<int64_t>(x.size()) / K;
  std::vector<double> dot, bias;
  for (int64_t m = 0; m < rows; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k)
        acc += int64_t{xq[static_cast<size_t>(m * K + k)]} * in.w[static_cast<size_t>(k * N + n)];
      dot.push_back(test::dequantize_ref(acc, int64_t{p.zero_point} * in.sums[static_cast<size_t>(n)], p.scale,
                                         in.scale[per_tensor ? 0 : static_cast<size_t>(n)]));
      bias.push_back(in.bias[static_cast<size_t>(n)]);
    }
  EXPECT_TRUE(near_formula(y, dot, bias));
}

TEST(QMatMul, MatchesFormulaForForcedZeroPointsAndTails) {
  uint32_t seed = 1;
  for (int zp : {0, 1, 127, 128, 255})
    for (int64_t K : {1, 3, 17, 61})
      for (int64_t N : {1, 5, 16, 17, 33}) {
        const int64_t rows = 3;
        check_qmatmul({rows, K}, x_with_zero_point(rows * K, zp, seed), K, N, /*per_tensor=*/false,
                      /*with_bias=*/(seed % 2) == 0, seed);
        ++seed;
      }
}

TEST(QMatMul, PerTensorScaleBatchedAndVectorInputs) {
  check_qmatmul({2, 3, 13}, random_floats(78, 5, -2, 3), 13, 9, /*per_tensor=*/true, true, 11);
  check_qmatmul({2, 3, 13}, random_floats(78, 6, -2, 3), 13, 9, /*per_tensor=*/true, false, 12);
  check_qmatmul({29}, random_floats(29, 7), 29, 31, false, true, 13);
  // Gemm's C as [1, N] is accepted as the bias.
  QMatMulInputs in = qmatmul_inputs({2, 5}, random_floats(10, 8), 5, 4, false, true, 14);
  Tensor y1 = run1(kernels::QMatMul, qmatmul_node(5, 4, true), in.tensors);
  in.tensors[4] = in.tensors[4].reshaped({1, 4});
  Tensor y2 = run1(kernels::QMatMul, qmatmul_node(5, 4, true), in.tensors);
  EXPECT_TRUE(test::tensors_equal(y1, y2));
}

TEST(QMatMul, SaturationCaseThroughTheOp) {
  // X all at its maximum: x_q = 255 everywhere (zero point 0).
  const int64_t K = 67, N = 18;
  std::vector<float> x(static_cast<size_t>(2 * K), 3.25f);
  QMatMulInputs in = qmatmul_inputs({2, K}, x, K, N, false, false, 21);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) in.w[static_cast<size_t>(k * N + n)] = n % 3 ? 127 : -127;
  in.tensors[1] = make_tensor<int8_t>({int8::packed_size(K, N)}, pack(in.w, K, N, &in.sums));
  in.tensors[3] = make_tensor<int32_t>({N}, in.sums);
  Tensor y = run1(kernels::QMatMul, qmatmul_node(K, N, false), in.tensors);
  QuantParams p;
  std::vector<uint8_t> xq = spec_dql(x, &p);
  ASSERT_EQ(xq[0], 255);
  ASSERT_EQ(p.zero_point, 0);
  for (int64_t n = 0; n < N; ++n) {
    const double want = double(p.scale) * in.scale[static_cast<size_t>(n)] * (n % 3 ? 1 : -1) * 255 * 127 * K;
    EXPECT_NEAR(y.data<float>()[n], want, 1e-6 * std::fabs(want)) << "n " << n;
  }
}

TEST(QMatMul, CloseToFp32MatMul) {
  // The last element: INT8 vs FP32 cosine when the gate was set (test_util.h).
  using Case = std::tuple<int64_t, int64_t, int64_t, double>;
  for (auto [M, K, N, measured] : {Case{8, 64, 48, 0.999993}, Case{5, 384, 100, 0.999988}, Case{1, 1500, 33, 0.999981}}) {
    Tensor x = random_tensor({M, K}, 1, -1, 1), w = random_tensor({K, N}, 2, -0.2f, 0.2f);
    Tensor b = random_tensor({N}, 3);
    std::vector<int8_t> q(static_cast<size_t>(K * N));
    std::vector<float> scales(static_cast<size_t>(N));
    quant::quantize_symmetric(w.data<float>(), K, N, 1, q.data(), scales.data());
    std::vector<int32_t> sums;
    std::vector<int8_t> packed = pack(q, K, N, &sums);
    Tensor yq = run1(kernels::QMatMul, qmatmul_node(K, N, true),
                     {x, make_tensor<int8_t>({int8::packed_size(K, N)}, packed), make_tensor<float>({N}, scales),
                      make_tensor<int32_t>({N}, sums), b});
    Node gemm = make_node("Gemm", 3);
    Tensor yf = run1(kernels::Gemm, gemm, {x, w, b});
    test::expect_cosine_near_measured(cosine(yq, yf), measured,
                                      "M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N));
  }
}

TEST(QMatMul, Errors) {
  QMatMulInputs in = qmatmul_inputs({2, 5}, random_floats(10, 1), 5, 4, false, true, 1);
  auto with = [&](int i, Tensor t) {
    std::vector<Tensor> v = in.tensors;
    v[static_cast<size_t>(i)] = std::move(t);
    return v;
  };
  Node node = qmatmul_node(5, 4, true);
  Node no_k = node;
  no_k.attrs.erase("K");
  EXPECT_HAS(run_error(kernels::QMatMul, no_k, in.tensors), "attribute K (reduction size) is missing");
  Node bad_n = node;
  bad_n.attrs["N"] = attr_int(0);
  EXPECT_HAS(run_error(kernels::QMatMul, bad_n, in.tensors), "attribute N = 0 must be >= 1");
  Node huge_k = node;
  huge_k.attrs["K"] = attr_int(70000);
  EXPECT_HAS(run_error(kernels::QMatMul, huge_k, in.tensors),
             "K = 70000 exceeds the int32 accumulator bound 66311");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(0, make_tensor<int32_t>({2, 5}, std::vector<int32_t>(10)))),
             "input X has dtype int32; QMatMul takes float32");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(1, make_tensor<int8_t>({63}, std::vector<int8_t>(63)))),
             "packed W [63] must be [128] (N16K4 bytes of K = 5, N = 4)");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(1, make_tensor<uint8_t>({128}, std::vector<uint8_t>(128)))),
             "input W has dtype uint8; QMatMul takes int8");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(0, random_tensor({2, 6}, 1))),
             "input X [2, 6] must end in K = 5");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(2, random_tensor({3}, 1))),
             "scale [3] must be [4] (per output channel) or [1] (per tensor)");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(3, make_tensor<int32_t>({5}, std::vector<int32_t>(5)))),
             "wsum [5] must be [4] (one weight sum per output channel)");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(3, random_tensor({4}, 1))),
             "input wsum has dtype float32; QMatMul takes int32");
  EXPECT_HAS(run_error(kernels::QMatMul, node, with(4, random_tensor({2, 4}, 1))),
             "bias [2, 4] must be [4] (one value per output channel)");
  std::vector<Tensor> three(in.tensors.begin(), in.tensors.begin() + 3);
  EXPECT_HAS(run_error(kernels::QMatMul, qmatmul_node(5, 4, false), three),
             "QMatMul needs inputs X, W, scale and wsum (bias is optional)");
}

// ---- Per-row activations (attribute x_per_row = 1, convert's default)

Node per_row(Node n) {
  n.attrs["x_per_row"] = attr_int(1);
  return n;
}

// Row m of a per-row QMatMul is the per-tensor op on row m alone, bit for
// bit: the same (s_x, z_x), the same integers, the same epilogue constants
// (built in registers instead of per call). Tails of K and N, batched X, a
// zero row (scale 1, zero point 0), an all-positive and an all-negative row
// (zero points 0 and 255), a NaN and an infinity, a fused residual and Relu.
TEST(QMatMulPerRow, EachRowIsThePerTensorOpOnThatRowBitForBit) {
  uint32_t seed = 40;
  for (int64_t K : {1, 3, 17, 64, 129})
    for (int64_t N : {1, 16, 17, 70}) {
      const Shape xs = {2, 3, K};
      const int64_t rows = 6;
      std::vector<float> x = random_floats(rows * K, seed, -1.5f, 2.f);
      for (int64_t k = 0; k < K; ++k) {
        x[static_cast<size_t>(1 * K + k)] = 0.f;
        x[static_cast<size_t>(2 * K + k)] = 0.25f + 0.5f * static_cast<float>(k % 5);
        x[static_cast<size_t>(3 * K + k)] = -0.5f - 100.f * static_cast<float>(k % 3);
      }
      // A NaN (ignored by the range, quantized to 0) and an infinity (an
      // infinite scale: the row's outputs are NaN) stay in their own rows.
      x[static_cast<size_t>(4 * K + K / 2)] = std::nanf("");
      x[static_cast<size_t>(5 * K)] = std::numeric_limits<float>::infinity();
      for (int fused = 0; fused < 2; ++fused) {
        SCOPED_TRACE("K=" + std::to_string(K) + " N=" + std::to_string(N) + (fused ? " residual+Relu" : ""));
        QMatMulInputs in = qmatmul_inputs(xs, x, K, N, /*per_tensor=*/seed % 2 == 0, /*with_bias=*/true, seed);
        Node node = qmatmul_node(K, N, true);
        std::vector<float> res;
        if (fused) {
          res = random_floats(rows * N, seed + 7, -1.f, 1.f);
          in.tensors.push_back(make_tensor<float>({2, 3, N}, res));
          node = make_node("QMatMul", 6);
          node.domain = "sarai";
          node.attrs = qmatmul_node(K, N, true).attrs;
          node.attrs["activation"] = attr_string("Relu");
        }
        Tensor y = run1(kernels::QMatMul, per_row(node), in.tensors);
        ASSERT_EQ(y.shape(), (Shape{2, 3, N}));
        for (int64_t i = 0; i < 4 * N; ++i) ASSERT_TRUE(std::isfinite(y.data<float>()[i])) << "rows 0..3, element " << i;
        for (int64_t m = 0; m < rows; ++m) {
          std::vector<Tensor> one = in.tensors;
          one[0] = make_tensor<float>({1, K}, std::vector<float>(x.begin() + m * K, x.begin() + (m + 1) * K));
          if (fused) one[5] = make_tensor<float>({1, N}, std::vector<float>(res.begin() + m * N, res.begin() + (m + 1) * N));
          Tensor want = run1(kernels::QMatMul, node, one);
          ASSERT_EQ(std::memcmp(y.data<float>() + m * N, want.data<float>(), static_cast<size_t>(N) * sizeof(float)), 0)
              << "row " << m;
        }
      }
      ++seed;
    }
}

// One row (a transformer's sink token) 1000x the others: one range per call
// leaves the other rows a level or two; a range per row keeps them.
TEST(QMatMulPerRow, AnOutlierRowNoLongerFlattensTheOthers) {
  const int64_t M = 8, K = 96, N = 40;
  std::vector<float> x = random_floats(M * K, 3, -1.f, 1.f);
  for (int64_t k = 0; k < K; ++k) x[static_cast<size_t>(k)] *= 1000.f;  // row 0
  Tensor w = random_tensor({K, N}, 4, -0.2f, 0.2f);
  std::vector<int8_t> q(static_cast<size_t>(K * N));
  std::vector<float> scales(static_cast<size_t>(N));
  quant::quantize_symmetric(w.data<float>(), K, N, 1, q.data(), scales.data());
  std::vector<int32_t> sums;
  std::vector<int8_t> packed = pack(q, K, N, &sums);
  const std::vector<Tensor> in = {make_tensor<float>({M, K}, x), make_tensor<int8_t>({int8::packed_size(K, N)}, packed),
                                  make_tensor<float>({N}, scales), make_tensor<int32_t>({N}, sums)};
  Tensor per_tensor = run1(kernels::QMatMul, qmatmul_node(K, N, false), in);
  Tensor rows = run1(kernels::QMatMul, per_row(qmatmul_node(K, N, false)), in);
  Tensor ref = run1(kernels::MatMul, make_node("MatMul", 2), {in[0], w});
  // Rows 1..M-1 only: the outlier row itself is fine either way.
  const auto rest = [&](const Tensor& t) {
    return make_tensor<float>({M - 1, N}, std::vector<float>(t.data<float>() + N, t.data<float>() + M * N));
  };
  const double c_tensor = cosine(rest(per_tensor), rest(ref)), c_row = cosine(rest(rows), rest(ref));
  EXPECT_LT(c_tensor, 0.9) << "the case must hurt one range per call";
  EXPECT_GT(c_row, 0.9999);
  EXPECT_GT(cosine(rows, ref), 0.9999);
}

TEST(QMatMulPerRow, ResultsDoNotDependOnThreadCount) {
  const int64_t M = 150, K = 515, N = 200;  // above the threading threshold
  QMatMulInputs in = qmatmul_inputs({M, K}, random_floats(M * K, 9, -3.f, 1.f), K, N, false, true, 10);
  const int saved = num_threads();
  Tensor first;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    Tensor y = run1(kernels::QMatMul, per_row(qmatmul_node(K, N, true)), in.tensors);
    if (threads == 1) first = y;
    else EXPECT_TRUE(test::tensors_equal(y, first)) << threads << " threads";
  }
  set_num_threads(saved);
}

TEST(QMatMulPerRow, Errors) {
  QMatMulInputs in = qmatmul_inputs({2, 5}, random_floats(10, 1), 5, 4, false, true, 1);
  Node two = qmatmul_node(5, 4, true);
  two.attrs["x_per_row"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::QMatMul, two, in.tensors), "attribute 'x_per_row' must be 0 or 1, got 2");
  Node ranged = per_row(qmatmul_node(5, 4, true));
  ranged.attrs["x_min"] = attr_float(-1);
  ranged.attrs["x_max"] = attr_float(1);
  EXPECT_HAS(run_error(kernels::QMatMul, ranged, in.tensors),
             "attribute x_per_row = 1 cannot go with a static range (x_min, x_max)");
}

// ---- Static activation ranges (attributes x_min / x_max, from `convert --static`)

Node with_range(Node n, float lo, float hi) {
  n.attrs["x_min"] = attr_float(lo);
  n.attrs["x_max"] = attr_float(hi);
  return n;
}

TEST(QMatMulStatic, TheObservedRangeGivesTheDynamicResultBitForBit) {
  // The range quantize_u8 would measure (folded from 0) as a static range:
  // the same parameters, so the same bits.
  const int64_t K = 37, N = 21;
  std::vector<float> x = random_floats(4 * K, 3, -0.75f, 2.5f);
  QMatMulInputs in = qmatmul_inputs({4, K}, x, K, N, false, true, 4);
  float lo = 0, hi = 0;
  for (float v : x) lo = std::min(lo, v), hi = std::max(hi, v);
  Tensor dyn = run1(kernels::QMatMul, qmatmul_node(K, N, true), in.tensors);
  Tensor fixed = run1(kernels::QMatMul, with_range(qmatmul_node(K, N, true), lo, hi), in.tensors);
  EXPECT_TRUE(test::tensors_equal(fixed, dyn));
}

TEST(QMatMulStatic, ValuesOutsideTheRangeSaturate) {
  // Range [-1, 1]: x in [-3, 3] clips to the grid's ends, and the op equals
  // the formula with the fixed parameters and saturated codes.
  const int64_t K = 29, N = 17;
  std::vector<float> x = random_floats(3 * K, 7, -3.f, 3.f);
  QMatMulInputs in = qmatmul_inputs({3, K}, x, K, N, false, false, 8);
  Tensor y = run1(kernels::QMatMul, with_range(qmatmul_node(K, N, false), -1.f, 1.f), in.tensors);
  const QuantParams p = kernels::choose_u8_params(-1.f, 1.f);
  std::vector<double> dot, bias;
  int clipped = 0;
  for (int64_t m = 0; m < 3; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float v = x[static_cast<size_t>(m * K + k)];
        const uint8_t q = sat_u8(round_half_even(v / p.scale) + p.zero_point);
        clipped += n == 0 && (q == 0 || q == 255);
        acc += int64_t{q} * in.w[static_cast<size_t>(k * N + n)];
      }
      dot.push_back(test::dequantize_ref(acc, int64_t{p.zero_point} * in.sums[static_cast<size_t>(n)], p.scale,
                                         in.scale[static_cast<size_t>(n)]));
      bias.push_back(0);
    }
  EXPECT_GT(clipped, 3 * K / 3) << "the case must clip";
  EXPECT_TRUE(near_formula(y, dot, bias));
}

TEST(QMatMulStatic, Errors) {
  QMatMulInputs in = qmatmul_inputs({2, 5}, random_floats(10, 1), 5, 4, false, true, 1);
  Node node = qmatmul_node(5, 4, true);
  Node only_min = node;
  only_min.attrs["x_min"] = attr_float(-1);
  EXPECT_HAS(run_error(kernels::QMatMul, only_min, in.tensors),
             "attribute x_max is missing (a static activation range needs both x_min and x_max)");
  Node ints = with_range(node, -1, 1);
  ints.attrs["x_max"] = attr_int(1);
  EXPECT_HAS(run_error(kernels::QMatMul, ints, in.tensors), "attributes x_min and x_max must be floats");
  EXPECT_HAS(run_error(kernels::QMatMul, with_range(node, 2, 1), in.tensors),
             "static activation range [x_min, x_max] = [2.000000, 1.000000] must be finite with x_min <= x_max");
  EXPECT_HAS(run_error(kernels::QMatMul, with_range(node, -1, std::nanf("")), in.tensors), "must be finite");
}

// ---- QConv / QConvTranspose

// The geometry (test::ConvCase: strides, dilations and pads only), bias or
// not, and how the activations and weights are quantized.
struct QConvCase : test::ConvCase {
  int zp = -1;  // force this activation zero point (-1: random data)
  bool per_tensor = false;
};

Ints unravel(int64_t i, const Ints& dims) {
  Ints r(dims.size());
  for (size_t d = dims.size(); d-- > 0;) r[d] = i % dims[d], i /= dims[d];
  return r;
}

int64_t prod(const Ints& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

// What the test needs from one case, resolved from explicit attributes.
struct Resolved {
  size_t nsp;
  Ints s, d, pb, pe, in, k, out;
};

Resolved resolve(const QConvCase& cc, bool transpose) {
  Resolved r;
  r.nsp = cc.x.size() - 2;
  r.s = cc.strides.empty() ? Ints(r.nsp, 1) : cc.strides;
  r.d = cc.dilations.empty() ? Ints(r.nsp, 1) : cc.dilations;
  Ints pads = cc.pads.empty() ? Ints(2 * r.nsp, 0) : cc.pads;
  r.pb.assign(pads.begin(), pads.begin() + static_cast<long>(r.nsp));
  r.pe.assign(pads.begin() + static_cast<long>(r.nsp), pads.end());
  r.in.assign(cc.x.begin() + 2, cc.x.end());
  r.k.assign(cc.w.begin() + 2, cc.w.end());
  for (size_t i = 0; i < r.nsp; ++i) {
    const int64_t ek = (r.k[i] - 1) * r.d[i] + 1;
    r.out.push_back(transpose ? r.s[i] * (r.in[i] - 1) + ek - r.pb[i] - r.pe[i]
                              : (r.in[i] + r.pb[i] + r.pe[i] - ek) / r.s[i] + 1);
  }
  return r;
}

Node conv_node(const char* op, const QConvCase& cc, bool with_weight_shape) {
  Node node = make_node(op, cc.bias ? 5 : 4);
  node.domain = "sarai";
  cc.set_attrs(node);
  if (with_weight_shape) node.attrs["weight_shape"] = attr_ints(cc.w);
  return node;
}

struct ConvData {
  std::vector<float> x, scale, bias;
  std::vector<int8_t> w;  // ONNX layout
  std::vector<int32_t> sums;
  std::vector<Tensor> inputs;
};

// Builds QConv's inputs: W packed as [K = C*k, N = M] for group 1, plain otherwise.
ConvData qconv_data(const QConvCase& cc, uint32_t seed, bool transpose) {
  ConvData cd;
  const int64_t xn = prod(cc.x), wn = prod(cc.w);
  cd.x = cc.zp >= 0 ? x_with_zero_point(xn, cc.zp, seed) : random_floats(xn, seed, -1.5f, 2.5f);
  cd.w = random_i8(wn, seed + 1);
  const int64_t m = transpose ? cc.w[1] * cc.group : cc.w[0];
  cd.scale = random_floats(cc.per_tensor ? 1 : m, seed + 2, 0.001f, 0.05f);
  cd.bias = cc.bias ? random_floats(m, seed + 3, -1, 1) : std::vector<float>(static_cast<size_t>(m), 0.f);
  Tensor w;
  if (!transpose && cc.group == 1) {
    const int64_t K = wn / m;
    std::vector<int8_t> kn(static_cast<size_t>(wn));  // [K, M] view of W [M, K]
    for (int64_t oc = 0; oc < m; ++oc)
      for (int64_t k = 0; k < K; ++k) kn[static_cast<size_t>(k * m + oc)] = cd.w[static_cast<size_t>(oc * K + k)];
    w = make_tensor<int8_t>({int8::packed_size(K, m)}, pack(kn, K, m, &cd.sums));
  } else {
    w = make_tensor<int8_t>(cc.w, cd.w);
    cd.sums.assign(static_cast<size_t>(m), 0);
    if (!transpose)
      for (int64_t i = 0; i < wn; ++i) cd.sums[static_cast<size_t>(i / (wn / m))] += cd.w[static_cast<size_t>(i)];
  }
  cd.inputs = {make_tensor<float>(cc.x, cd.x), w,
               make_tensor<float>({static_cast<int64_t>(cd.scale.size())}, cd.scale),
               make_tensor<int32_t>({m}, cd.sums)};
  if (cc.bias) cd.inputs.push_back(make_tensor<float>({m}, cd.bias));
  return cd;
}

// Naive QConv: acc[b][m][o] = Σ x_q * w with x_q = zp outside the input.
std::vector<int32_t> naive_conv_acc(const QConvCase& cc, const Resolved& r, const std::vector<uint8_t>& xq,
                                    uint8_t zp, const std::vector<int8_t>& w) {
  const int64_t n = cc.x[0], c = cc.x[1], m = cc.w[0], cg = c / cc.group, mg = m / cc.group;
  const int64_t os = prod(r.out), is = prod(r.in), ks = prod(r.k);
  std::vector<int32_t> acc;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t oc = 0; oc < m; ++oc)
      for (int64_t oi = 0; oi < os; ++oi) {
        const Ints o = unravel(oi, r.out);
        int32_t s = 0;
        for (int64_t ci = 0; ci < cg; ++ci)
          for (int64_t ki = 0; ki < ks; ++ki) {
            const Ints kk = unravel(ki, r.k);
            int64_t flat = 0;
            bool inside = true;
            for (size_t dd = 0; dd < r.nsp; ++dd) {
              const int64_t p = o[dd] * r.s[dd] - r.pb[dd] + kk[dd] * r.d[dd];
              inside = inside && p >= 0 && p < r.in[dd];
              flat = flat * r.in[dd] + p;
            }
            const int32_t xv = inside ? xq[static_cast<size_t>((b * c + (oc / mg) * cg + ci) * is + flat)] : zp;
            s += xv * w[static_cast<size_t>((oc * cg + ci) * ks + ki)];
          }
        acc.push_back(s);
      }
  return acc;
}

// Naive QConvTranspose, compensated: acc[b][ch][o] = Σ (x_q - zp) * w.
std::vector<int32_t> naive_convt_acc(const QConvCase& cc, const Resolved& r, const std::vector<uint8_t>& xq,
                                     uint8_t zp, const std::vector<int8_t>& w) {
  const int64_t n = cc.x[0], c = cc.x[1], mg = cc.w[1], m = mg * cc.group, cg = c / cc.group;
  const int64_t os = prod(r.out), is = prod(r.in), ks = prod(r.k);
  std::vector<int32_t> acc(static_cast<size_t>(n * m * os), 0);
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ci = 0; ci < c; ++ci)
      for (int64_t ii = 0; ii < is; ++ii) {
        const Ints i = unravel(ii, r.in);
        const int32_t xv = int32_t{xq[static_cast<size_t>((b * c + ci) * is + ii)]} - zp;
        for (int64_t mi = 0; mi < mg; ++mi)
          for (int64_t ki = 0; ki < ks; ++ki) {
            const Ints kk = unravel(ki, r.k);
            int64_t flat = 0;
            bool inside = true;
            for (size_t dd = 0; dd < r.nsp; ++dd) {
              const int64_t p = i[dd] * r.s[dd] - r.pb[dd] + kk[dd] * r.d[dd];
              inside = inside && p >= 0 && p < r.out[dd];
              flat = flat * r.out[dd] + p;
            }
            if (!inside) continue;
            const int64_t ch = (ci / cg) * mg + mi;
            acc[static_cast<size_t>((b * m + ch) * os + flat)] += xv * w[static_cast<size_t>((ci * mg + mi) * ks + ki)];
          }
      }
  return acc;
}

void check_qconv(const QConvCase& cc, uint32_t seed, bool transpose) {
  const char* op = transpose ? "QConvTranspose" : "QConv";
  SCOPED_TRACE(std::string(op) + " " + cc.str() + " zp " + std::to_string(cc.zp));
  const Resolved r = resolve(cc, transpose);
  ConvData cd = qconv_data(cc, seed, transpose);
  QuantParams p;
  const std::vector<uint8_t> xq = spec_dql(cd.x, &p);
  if (cc.zp >= 0) {
    ASSERT_EQ(p.zero_point, cc.zp);
  }
  const int64_t m = transpose ? cc.w[1] * cc.group : cc.w[0];
  const std::vector<int32_t> want = transpose ? naive_convt_acc(cc, r, xq, p.zero_point, cd.w)
                                              : naive_conv_acc(cc, r, xq, p.zero_point, cd.w);

  // The integer core, exactly.
  Node node = conv_node(op, cc, /*with_weight_shape=*/true);
  kernels::qref::ConvProblem prob;
  prob.batch = cc.x[0];
  prob.C = cc.x[1];
  prob.M = m;
  prob.group = cc.group;
  prob.packed = !transpose && cc.group == 1;
  Status st = transpose ? kernels::convgeo::resolve_conv_transpose(node, cc.x, cc.w, cc.group, &prob.g)
                        : kernels::convgeo::resolve_conv(node, cc.x, cc.w, cc.group, &prob.g);
  ASSERT_TRUE(st.is_ok()) << st.message();
  ASSERT_EQ(prob.g.out, r.out);
  std::vector<int32_t> acc(want.size());
  const int8_t* w = cd.inputs[1].data<int8_t>();
  if (transpose)
    kernels::qref::conv_transpose_u8s8(prob, xq.data(), p.zero_point, w, acc.data());
  else
    kernels::qref::conv_u8s8(prob, xq.data(), p.zero_point, w, acc.data());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(acc[i], want[i]) << "@ flat output " << i;

  // The op, against the formula.
  Tensor y = run1(transpose ? kernels::QConvTranspose : kernels::QConv, node, cd.inputs);
  Shape want_shape = {cc.x[0], m};
  want_shape.insert(want_shape.end(), r.out.begin(), r.out.end());
  ASSERT_EQ(y.shape(), want_shape);
  const int64_t os = prod(r.out);
  std::vector<double> dot, bias;
  for (size_t i = 0; i < want.size(); ++i) {
    const size_t ch = static_cast<size_t>((static_cast<int64_t>(i) / os) % m);
    const int64_t comp = transpose ? 0 : int64_t{p.zero_point} * cd.sums[ch];
    dot.push_back(test::dequantize_ref(want[i], comp, p.scale, cd.scale[cc.per_tensor ? 0 : ch]));
    bias.push_back(cd.bias[ch]);
  }
  EXPECT_TRUE(near_formula(y, dot, bias));
}

const std::vector<QConvCase>& conv_cases() {
  static const std::vector<QConvCase> cases = {
      {{{2, 3, 17}, {4, 3, 3}}},                                                      // 1-D
      {{{1, 4, 20}, {6, 2, 5}, 2, {3}, {2}, {2, 1}}},                                 // 1-D groups, stride, dilation, pads
      {{{1, 4, 15}, {4, 1, 3}, 4, {2}, {1}, {1, 2}, {}, {}, "", false}},              // 1-D depthwise, no bias
      {{{1, 5, 23}, {17, 5, 3}, 1, {2}, {}, {1, 1}}, 128},                            // whisper-style front end
      {{{2, 3, 9, 8}, {4, 3, 3, 3}, 1, {}, {}, {}}, 0},                               // 2-D
      {{{1, 3, 9, 8}, {5, 3, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}}, 255, true},         // stride + pads, per tensor
      {{{1, 4, 10, 11}, {6, 2, 3, 2}, 2, {1, 2}, {2, 1}, {0, 1, 2, 0}}, 1},           // groups, asymmetric pads
      {{{2, 6, 7, 7}, {6, 1, 3, 3}, 6, {1, 1}, {}, {1, 1, 1, 1}}, 127},               // depthwise
      {{{1, 4, 6, 6}, {8, 1, 3, 3}, 4, {}, {}, {1, 1, 1, 1}, {}, {}, "", false}},     // depthwise multiplier 2
      {{{1, 7, 5, 6}, {33, 7, 1, 1}}},                                                // pointwise, N tail
      {{{1, 2, 5, 6, 4}, {3, 2, 3, 2, 2}, 1, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 0}}}, // 3-D
  };
  return cases;
}

TEST(QConv, CoreExactAndOpMatchesFormula) {
  const int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    uint32_t seed = 100;
    for (const QConvCase& cc : conv_cases()) check_qconv(cc, seed += 5, /*transpose=*/false);
  }
  set_num_threads(saved);
}

TEST(QConvTranspose, CoreExactAndOpMatchesFormula) {
  const std::vector<QConvCase> cases = {
      {{{1, 3, 7}, {3, 2, 3}}},                                                       // 1-D
      {{{2, 4, 6}, {4, 3, 4}, 2, {2}, {1}, {1, 2}}, 128},                             // 1-D groups, stride, pads
      {{{1, 2, 4, 5}, {2, 3, 3, 3}, 1, {2, 2}, {1, 2}, {1, 0, 0, 1}, {}, {}, "", false}, 0}, // 2-D, dilation
      {{{1, 3, 5, 5}, {3, 1, 3, 3}, 3, {2, 1}, {}, {1, 1, 1, 1}}, 255, true},         // depthwise, per tensor
  };
  uint32_t seed = 500;
  for (const QConvCase& cc : cases) check_qconv(cc, seed += 5, /*transpose=*/true);
}

TEST(QConv, AutoPadEqualsExplicitPads) {
  // SAME_UPPER on 9x8 with a 3x3 kernel, stride 2: total pads 2 and 1 ->
  // begin (1, 0), end (1, 1).
  QConvCase cc{{{1, 3, 9, 8}, {4, 3, 3, 3}, 1, {2, 2}, {}, {1, 0, 1, 1}}};
  ConvData cd = qconv_data(cc, 9, false);
  Tensor explicit_pads = run1(kernels::QConv, conv_node("QConv", cc, true), cd.inputs);
  QConvCase same = cc;
  same.pads.clear();
  Node node = conv_node("QConv", same, true);
  node.attrs["auto_pad"] = attr_string("SAME_UPPER");
  Tensor y = run1(kernels::QConv, node, cd.inputs);
  EXPECT_TRUE(test::tensors_equal(y, explicit_pads));
}

// QConv / QConvTranspose against the FP32 ops on the dequantized-free path:
// the float weights quantized per output channel the way the converter does.
TEST(QConvStatic, TheObservedRangeGivesTheDynamicResultBitForBit) {
  // Grouped and packed (group 1) convolutions, and transposed ones.
  const QConvCase conv[] = {conv_cases()[1], conv_cases()[4]};
  const QConvCase convt[] = {{{{1, 3, 7}, {3, 2, 3}}}, {{{2, 4, 6}, {4, 3, 4}, 2, {2}, {1}, {1, 2}}}};
  for (bool transpose : {false, true})
    for (const QConvCase& cc : transpose ? convt : conv) {
      SCOPED_TRACE(transpose ? "QConvTranspose" : "QConv");
      ConvData cd = qconv_data(cc, 31, transpose);
      float lo = 0, hi = 0;
      for (float v : cd.x) lo = std::min(lo, v), hi = std::max(hi, v);
      const char* op = transpose ? "QConvTranspose" : "QConv";
      auto fn = transpose ? kernels::QConvTranspose : kernels::QConv;
      Node node = conv_node(op, cc, /*with_weight_shape=*/true);
      Tensor dyn = run1(fn, node, cd.inputs);
      Tensor fixed = run1(fn, with_range(node, lo, hi), cd.inputs);
      EXPECT_TRUE(test::tensors_equal(fixed, dyn));
      // A narrower range changes the result (the attributes are used).
      Tensor narrow = run1(fn, with_range(node, lo / 2, hi / 2), cd.inputs);
      EXPECT_FALSE(test::tensors_equal(narrow, dyn));
      EXPECT_HAS(run_error(fn, with_range(node, 1, -1), cd.inputs), "must be finite with x_min <= x_max");
    }
}

TEST(QConv, CloseToFp32Conv) {
  // measured: INT8 vs FP32 cosine when the gate was set (test_util.h).
  struct Case { Shape x, w; int64_t group; Ints pads; bool transpose; double measured; };
  const std::vector<Case> cases = {
      {{1, 16, 50}, {32, 16, 3}, 1, {1, 1}, false, 0.999985},
      {{1, 8, 12, 12}, {16, 8, 3, 3}, 1, {1, 1, 1, 1}, false, 0.999984},
      {{1, 8, 12, 12}, {8, 2, 3, 3}, 4, {0, 0, 0, 0}, false, 0.999984},
      {{1, 8, 12, 12}, {8, 1, 3, 3}, 8, {1, 1, 1, 1}, false, 0.999988},
      {{1, 8, 9, 9}, {8, 4, 3, 3}, 1, {1, 1, 1, 1}, true, 0.999979},
  };
  uint32_t seed = 40;
  for (const Case& c : cases) {
    Tensor x = random_tensor(c.x, seed++, -1, 1), w = random_tensor(c.w, seed++, -0.3f, 0.3f);
    const int64_t m = c.transpose ? c.w[1] * c.group : c.w[0];
    Tensor b = random_tensor({m}, seed++, -0.1f, 0.1f);
    const int64_t wn = w.numel();
    std::vector<int8_t> q(static_cast<size_t>(wn));
    std::vector<float> scales(static_cast<size_t>(m));
    if (c.transpose) {  // channel axis 1 (group 1 here)
      quant::quantize_symmetric(w.data<float>(), c.w[0], m, wn / (c.w[0] * m), q.data(), scales.data());
    } else {
      quant::quantize_symmetric(w.data<float>(), 1, m, wn / m, q.data(), scales.data());
    }
    std::vector<int32_t> sums(static_cast<size_t>(m), 0);
    Tensor wq;
    if (!c.transpose && c.group == 1) {
      const int64_t K = wn / m;
      std::vector<int8_t> kn(static_cast<size_t>(wn));
      for (int64_t oc = 0; oc < m; ++oc)
        for (int64_t k = 0; k < K; ++k) kn[static_cast<size_t>(k * m + oc)] = q[static_cast<size_t>(oc * K + k)];
      wq = make_tensor<int8_t>({int8::packed_size(K, m)}, pack(kn, K, m, &sums));
    } else {
      wq = make_tensor<int8_t>(c.w, q);
      if (!c.transpose) quant::row_sums(q.data(), m, wn / m, sums.data());
    }
    Node qn = make_node(c.transpose ? "QConvTranspose" : "QConv", 5);
    qn.domain = "sarai";
    Node fn = make_node(c.transpose ? "ConvTranspose" : "Conv", 3);
    for (Node* n : {&qn, &fn}) {
      n->attrs["group"] = attr_int(c.group);
      n->attrs["pads"] = attr_ints(c.pads);
    }
    qn.attrs["weight_shape"] = attr_ints(c.w);
    Tensor yq = run1(c.transpose ? kernels::QConvTranspose : kernels::QConv, qn,
                     {x, wq, make_tensor<float>({m}, scales), make_tensor<int32_t>({m}, sums), b});
    Tensor yf = run1(c.transpose ? kernels::ConvTranspose : kernels::Conv, fn, {x, w, b});
    ASSERT_EQ(yq.shape(), yf.shape());
    test::expect_cosine_near_measured(cosine(yq, yf), c.measured,
                                      "X " + shape_to_string(c.x) + " W " + shape_to_string(c.w));
  }
}

TEST(QConv, Errors) {
  QConvCase cc{{{1, 4, 6, 6}, {6, 4, 3, 3}}};
  ConvData cd = qconv_data(cc, 3, false);
  auto with = [&](int i, Tensor t) {
    std::vector<Tensor> v = cd.inputs;
    v[static_cast<size_t>(i)] = std::move(t);
    return v;
  };
  Node node = conv_node("QConv", cc, true);
  EXPECT_HAS(run_error(kernels::QConv, conv_node("QConv", cc, false), cd.inputs),
             "attribute weight_shape (the ONNX weight shape) is missing; it is required when W is packed");
  Node bad_ws = node;
  bad_ws.attrs["weight_shape"] = attr_ints({6, 4, 3});
  EXPECT_HAS(run_error(kernels::QConv, bad_ws, cd.inputs), "weight_shape [6, 4, 3] must have the rank of X [1, 4, 6, 6]");
  bad_ws.attrs["weight_shape"] = attr_ints({6, 3, 3, 3});
  EXPECT_HAS(run_error(kernels::QConv, bad_ws, cd.inputs),
             "W [6, 3, 3, 3] has 3 input channels per group but X [1, 4, 6, 6] with group 1 needs 4");
  EXPECT_HAS(run_error(kernels::QConv, node, with(1, make_tensor<int8_t>({10}, std::vector<int8_t>(10)))),
             "packed W [10] must be [576] (N16K4 bytes of K = 36, N = 6 for weight_shape [6, 4, 3, 3])");
  EXPECT_HAS(run_error(kernels::QConv, node, with(0, random_tensor({4, 6}, 1))),
             "input X [4, 6] must have rank >= 3");
  EXPECT_HAS(run_error(kernels::QConv, node, with(2, random_tensor({5}, 1))),
             "scale [5] must be [6] (per output channel) or [1] (per tensor)");
  Node strides = node;
  strides.attrs["strides"] = attr_ints({1});
  EXPECT_HAS(run_error(kernels::QConv, strides, cd.inputs), "strides [1] must have 2 values for input [1, 4, 6, 6]");
  // Grouped: W plain, its shape must be weight_shape.
  QConvCase gc{{{1, 4, 6, 6}, {6, 2, 3, 3}, 2}};
  ConvData gd = qconv_data(gc, 4, false);
  Node gnode = conv_node("QConv", gc, true);
  gnode.attrs["weight_shape"] = attr_ints({6, 2, 3, 2});
  EXPECT_HAS(run_error(kernels::QConv, gnode, gd.inputs),
             "W [6, 2, 3, 3] must be the plain weight [6, 2, 3, 2] (group 2 > 1 is not packed)");
  Node big = conv_node("QConv", gc, true);
  gd.inputs[0] = Tensor::allocate(DType::kFloat32, {1, 4 * 8000, 3, 3});
  big.attrs["weight_shape"] = attr_ints({6, 16000, 3, 3});
  gd.inputs[1] = Tensor::allocate(DType::kInt8, {6, 16000, 3, 3});
  EXPECT_HAS(run_error(kernels::QConv, big, gd.inputs),
             "K (C/group * kernel taps) = 144000 exceeds the int32 accumulator bound 66311");
  QConvCase tc{{{1, 3, 7}, {3, 2, 3}}};
  ConvData td = qconv_data(tc, 5, true);
  Node tnode = conv_node("QConvTranspose", tc, false);
  Node tws = conv_node("QConvTranspose", tc, true);
  tws.attrs["weight_shape"] = attr_ints({3, 2, 2});
  EXPECT_HAS(run_error(kernels::QConvTranspose, tws, td.inputs),
             "W [3, 2, 3] must be the plain weight [3, 2, 2] (QConvTranspose weights are not packed)");
  EXPECT_HAS(run_error(kernels::QConvTranspose, tnode, {td.inputs[0], td.inputs[1], td.inputs[2],
                                                      make_tensor<int32_t>({3}, {0, 0, 0}), td.inputs[4]}),
             "wsum [3] must be [2] (one weight sum per output channel)");
}

}  // namespace
}  // namespace sarai
