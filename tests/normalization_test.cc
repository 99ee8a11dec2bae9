// Softmax, LayerNormalization, BatchNormalization and ReduceMean against
// naive loops in double written here, hand values and error messages.
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
using test::attr_ints;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

// Float tolerance for every comparison against a double reference here.
constexpr double kAtol = 1e-6, kRtol = 1e-5;

std::vector<Tensor> run(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs, int64_t opset) {
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_TRUE(r.has_value()) << r.message();
  return r.has_value() ? *r : std::vector<Tensor>(node.outputs.size());
}

std::string run_error(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs, int64_t opset) {
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_FALSE(r.has_value());
  return r.message();
}

int64_t prod(const Shape& s, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t i = b; i < e; ++i) p *= s[i];
  return p;
}

// Softmax over index j of x viewed as [outer, n, inner].
Tensor naive_softmax(const Tensor& x, int64_t outer, int64_t n, int64_t inner) {
  Tensor y = Tensor::allocate(DType::kFloat32, x.shape());
  const float* px = x.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < n; ++j) mx = std::max<double>(mx, px[(o * n + j) * inner + i]);
      for (int64_t j = 0; j < n; ++j) sum += std::exp(px[(o * n + j) * inner + i] - mx);
      for (int64_t j = 0; j < n; ++j)
        y.mutable_data<float>()[(o * n + j) * inner + i] =
            static_cast<float>(std::exp(px[(o * n + j) * inner + i] - mx) / sum);
    }
  return y;
}

TEST(Softmax, Opset13AlongAxis) {
  set_num_threads(2);
  const Shape s = {3, 5, 7};
  Tensor x = random_tensor(s, 1, -5.f, 5.f);
  for (int64_t axis : {0, 1, 2, -1, -2}) {
    const size_t ax = static_cast<size_t>(axis < 0 ? axis + 3 : axis);
    Node n = make_node("Softmax", 1);
    n.attrs["axis"] = attr_int(axis);
    EXPECT_TRUE(tensors_near(run(kernels::Softmax, n, {x}, 13)[0],
                             naive_softmax(x, prod(s, 0, ax), s[ax], prod(s, ax + 1, 3)), kAtol, kRtol))
        << "axis " << axis;
  }
  // Default axis is -1 from opset 13.
  EXPECT_TRUE(tensors_near(run(kernels::Softmax, make_node("Softmax", 1), {x}, 13)[0],
                           naive_softmax(x, 15, 7, 1), kAtol, kRtol));
  Tensor big = random_tensor({300, 1000}, 2, -20.f, 20.f);
  EXPECT_TRUE(tensors_near(run(kernels::Softmax, make_node("Softmax", 1), {big}, 13)[0],
                           naive_softmax(big, 300, 1000, 1), kAtol, kRtol));
  set_num_threads(1);
}

TEST(Softmax, OldOpsetsCoerceTo2D) {
  const Shape s = {3, 4, 5};
  Tensor x = random_tensor(s, 3, -5.f, 5.f);
  // Default axis 1: rows of 4 * 5 elements.
  EXPECT_TRUE(tensors_near(run(kernels::Softmax, make_node("Softmax", 1), {x}, 11)[0],
                           naive_softmax(x, 3, 20, 1), kAtol, kRtol));
  Node n = make_node("Softmax", 1);
  n.attrs["axis"] = attr_int(0);
  EXPECT_TRUE(tensors_near(run(kernels::Softmax, n, {x}, 9)[0], naive_softmax(x, 1, 60, 1), kAtol, kRtol));
  n.attrs["axis"] = attr_int(-1);
  EXPECT_TRUE(tensors_near(run(kernels::Softmax, n, {x}, 12)[0], naive_softmax(x, 12, 5, 1), kAtol, kRtol));
}

TEST(Softmax, LargeNumbersAndErrors) {
  // test_softmax_large_number: the max is subtracted, so no inf/inf.
  Tensor x = make_tensor<float>({2, 4}, {0, 1, 2, 3, 10000, 10001, 10002, 10003});
  Tensor y = run(kernels::Softmax, make_node("Softmax", 1), {x}, 13)[0];
  const std::vector<float> row = {0.032058604f, 0.087144315f, 0.23688282f, 0.6439142f};
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({2, 4}, {row[0], row[1], row[2], row[3], row[0], row[1], row[2], row[3]})));

  Node n = make_node("Softmax", 1);
  n.attrs["axis"] = attr_int(2);
  std::string msg = run_error(kernels::Softmax, n, {x}, 13);
  EXPECT_NE(msg.find("attribute 'axis' 2 is out of range for rank 2"), std::string::npos) << msg;
  n.attrs["axis"] = attr_int(3);
  msg = run_error(kernels::Softmax, n, {x}, 11);
  EXPECT_NE(msg.find("attribute 'axis' 3 is out of range for rank 2"), std::string::npos) << msg;
  msg = run_error(kernels::Softmax, make_node("Softmax", 1), {make_tensor<int64_t>({1}, {1})}, 13);
  EXPECT_NE(msg.find("input 'input' must be float32, got int64"), std::string::npos) << msg;
}

// LayerNorm of x viewed as [rows, n] with per-column scale/bias of n values.
struct LnRef { Tensor y, mean, inv; };
LnRef naive_layernorm(const Tensor& x, size_t axis, const std::vector<float>& scale, const std::vector<float>& bias,
                      double eps) {
  const Shape& s = x.shape();
  const int64_t rows = prod(s, 0, axis), n = prod(s, axis, s.size());
  Shape stat(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(axis));
  stat.resize(s.size(), 1);
  LnRef r{Tensor::allocate(DType::kFloat32, s), Tensor::allocate(DType::kFloat32, stat),
          Tensor::allocate(DType::kFloat32, stat)};
  for (int64_t i = 0; i < rows; ++i) {
    const float* xr = x.data<float>() + i * n;
    double m = 0, v = 0;
    for (int64_t j = 0; j < n; ++j) m += xr[j];
    m /= static_cast<double>(n);
    for (int64_t j = 0; j < n; ++j) v += (xr[j] - m) * (xr[j] - m);
    v /= static_cast<double>(n);
    const double inv = 1 / std::sqrt(v + eps);
    for (int64_t j = 0; j < n; ++j)
      r.y.mutable_data<float>()[i * n + j] = static_cast<float>((xr[j] - m) * inv * scale[j] + bias[j]);
    r.mean.mutable_data<float>()[i] = static_cast<float>(m);
    r.inv.mutable_data<float>()[i] = static_cast<float>(inv);
  }
  return r;
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

TEST(LayerNormalization, MatchesNaiveForEachAxis) {
  const Shape s = {2, 3, 4, 5};
  // A large offset makes a one-pass float variance visibly wrong.
  Tensor x = random_tensor(s, 4, 100.f, 102.f);
  for (int64_t axis : {0, 1, 2, 3, -1, -3}) {
    const size_t ax = static_cast<size_t>(axis < 0 ? axis + 4 : axis);
    const Shape ns(s.begin() + static_cast<std::ptrdiff_t>(ax), s.end());
    Tensor scale = random_tensor(ns, 5);
    Tensor bias = random_tensor(ns, 6);
    Node n = make_node("LayerNormalization", 3, 3);
    n.attrs["axis"] = attr_int(axis);
    n.attrs["epsilon"] = attr_float(1e-3f);
    std::vector<Tensor> out = run(kernels::LayerNormalization, n, {x, scale, bias}, 17);
    LnRef ref = naive_layernorm(x, ax, values(scale), values(bias), static_cast<double>(1e-3f));
    EXPECT_TRUE(tensors_near(out[0], ref.y, 1e-5, kRtol)) << "axis " << axis;
    EXPECT_TRUE(tensors_near(out[1], ref.mean, kAtol, kRtol)) << "axis " << axis;
    EXPECT_TRUE(tensors_near(out[2], ref.inv, kAtol, kRtol)) << "axis " << axis;
  }
}

TEST(LayerNormalization, NoBiasBroadcastScaleAndOmittedOutputs) {
  Tensor x = make_tensor<float>({2, 2}, {1, 3, -2, 2});
  Tensor scale = make_tensor<float>({1}, {2});  // broadcasts over the normalized dim
  Node n = make_node("LayerNormalization", 2, 3);
  n.outputs[1] = kNoValue;  // Mean not requested
  n.attrs["epsilon"] = attr_float(0.f);
  std::vector<Tensor> out = run(kernels::LayerNormalization, n, {x, scale}, 17);
  EXPECT_TRUE(tensors_near(out[0], make_tensor<float>({2, 2}, {-2, 2, -2, 2})));
  EXPECT_FALSE(out[1].defined());
  EXPECT_TRUE(tensors_near(out[2], make_tensor<float>({2, 1}, {1.f, 0.5f})));

  // Large-dimension path with threads (Whisper-like [1, 1500, 384]).
  set_num_threads(2);
  Tensor big = random_tensor({1, 1500, 384}, 7);
  Tensor sc = random_tensor({384}, 8);
  Tensor bi = random_tensor({384}, 9);
  std::vector<Tensor> o = run(kernels::LayerNormalization, make_node("LayerNormalization", 3), {big, sc, bi}, 18);
  EXPECT_TRUE(tensors_near(o[0], naive_layernorm(big, 2, values(sc), values(bi), 1e-5).y, 1e-5, kRtol));
  set_num_threads(1);
}

TEST(LayerNormalization, Errors) {
  Tensor x = random_tensor({2, 3, 4}, 1);
  Node n = make_node("LayerNormalization", 3);
  std::string msg = run_error(kernels::LayerNormalization, n, {x, random_tensor({3}, 2), random_tensor({4}, 3)}, 17);
  EXPECT_NE(msg.find("input 'Scale' of shape [3] does not broadcast to the normalized shape [4]"), std::string::npos) << msg;
  msg = run_error(kernels::LayerNormalization, n, {x, random_tensor({4}, 2), random_tensor({2, 4}, 3)}, 17);
  EXPECT_NE(msg.find("input 'B' of shape [2, 4] does not broadcast"), std::string::npos) << msg;
  n.attrs["axis"] = attr_int(-4);
  msg = run_error(kernels::LayerNormalization, n, {x, random_tensor({4}, 2)}, 17);
  EXPECT_NE(msg.find("attribute 'axis' -4 is out of range [-3, 3]"), std::string::npos) << msg;
  msg = run_error(kernels::LayerNormalization, make_node("LayerNormalization", 1), {x}, 17);
  EXPECT_NE(msg.find("missing required input 'Scale'"), std::string::npos) << msg;
}

TEST(BatchNormalization, InferenceAcrossOpsets) {
  const Shape s = {2, 3, 4, 5};
  Tensor x = random_tensor(s, 1, -3.f, 3.f);
  Tensor scale = random_tensor({3}, 2);
  Tensor bias = random_tensor({3}, 3);
  Tensor mean = random_tensor({3}, 4);
  Tensor var = random_tensor({3}, 5, 0.5f, 2.f);
  Tensor want = Tensor::allocate(DType::kFloat32, s);
  const double eps = static_cast<double>(1e-2f);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = (i / 20) % 3;
    want.mutable_data<float>()[i] = static_cast<float>(
        (x.data<float>()[i] - mean.data<float>()[c]) / std::sqrt(var.data<float>()[c] + eps) * scale.data<float>()[c] +
        bias.data<float>()[c]);
  }
  Node n = make_node("BatchNormalization", 5);
  n.attrs["epsilon"] = attr_float(1e-2f);
  n.attrs["momentum"] = attr_float(0.9f);
  for (int64_t opset : {9, 14, 15}) {
    if (opset >= 14) n.attrs["training_mode"] = attr_int(0);
    EXPECT_TRUE(tensors_near(run(kernels::BatchNormalization, n, {x, scale, bias, mean, var}, opset)[0], want,
                             kAtol, kRtol))
        << "opset " << opset;
  }
  // test_batchnorm_example values, and a 1-D input (C = 1).
  Tensor y = run(kernels::BatchNormalization, make_node("BatchNormalization", 5),
                 {make_tensor<float>({3}, {-1, 0, 1}), make_tensor<float>({1}, {2}), make_tensor<float>({1}, {1}),
                  make_tensor<float>({1}, {0}), make_tensor<float>({1}, {1})}, 15)[0];
  const float k = static_cast<float>(2 / std::sqrt(1 + 1e-5));
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({3}, {1 - k, 1, 1 + k})));
}

TEST(BatchNormalization, Errors) {
  Tensor x = random_tensor({2, 3, 4}, 1);
  Tensor c3 = random_tensor({3}, 2, 0.5f, 1.f);
  Node n = make_node("BatchNormalization", 5);
  n.attrs["training_mode"] = attr_int(1);
  std::string msg = run_error(kernels::BatchNormalization, n, {x, c3, c3, c3, c3}, 15);
  EXPECT_NE(msg.find("attribute 'training_mode' = 1 is not supported"), std::string::npos) << msg;
  // Opset 9 training form: asks for the running statistics.
  msg = run_error(kernels::BatchNormalization, make_node("BatchNormalization", 5, 3), {x, c3, c3, c3, c3}, 9);
  EXPECT_NE(msg.find("only produced in training mode"), std::string::npos) << msg;
  msg = run_error(kernels::BatchNormalization, make_node("BatchNormalization", 5),
                  {x, c3, c3, random_tensor({4}, 3), c3}, 15);
  EXPECT_NE(msg.find("input 'input_mean' must have shape [3] (channels of X [2, 3, 4]), got [4]"), std::string::npos)
      << msg;
  msg = run_error(kernels::BatchNormalization, make_node("BatchNormalization", 5), {x, c3, c3, c3}, 15);
  EXPECT_NE(msg.find("missing required input 'input_var'"), std::string::npos) << msg;
}

// ReduceMean in double over the `reduced` dims of x, keepdims shape.
Tensor naive_reduce_mean(const Tensor& x, const std::vector<bool>& reduced, bool keepdims) {
  const Shape& s = x.shape();
  Shape kept = s, out;
  for (size_t d = 0; d < s.size(); ++d) {
    if (reduced[d]) kept[d] = 1;
    if (!reduced[d] || keepdims) out.push_back(kept[d]);
  }
  std::vector<double> acc(static_cast<size_t>(numel_of(kept)), 0.0);
  std::vector<int64_t> idx(s.size());
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t r = i, o = 0;
    for (size_t d = s.size(); d-- > 0;) {
      idx[d] = r % s[d];
      r /= s[d];
    }
    for (size_t d = 0; d < s.size(); ++d) o = o * kept[d] + (reduced[d] ? 0 : idx[d]);
    acc[static_cast<size_t>(o)] += x.data<float>()[i];
  }
  Tensor y = Tensor::allocate(DType::kFloat32, out);
  const double count = static_cast<double>(x.numel()) / static_cast<double>(acc.size());
  for (size_t i = 0; i < acc.size(); ++i) y.mutable_data<float>()[i] = static_cast<float>(acc[i] / count);
  return y;
}

TEST(ReduceMean, AxesSweepBothForms) {
  set_num_threads(2);
  const Shape s = {3, 1, 4, 5, 6};
  Tensor x = random_tensor(s, 11);
  const std::vector<std::vector<int64_t>> axes_cases = {
      {}, {0}, {1}, {2}, {4}, {-1}, {2, 3}, {0, 2}, {0, 4}, {1, 3}, {0, 1, 2, 3, 4}, {3, -5}, {2, 4}};
  for (const auto& axes : axes_cases) {
    std::vector<bool> reduced(5, axes.empty());
    for (int64_t a : axes) reduced[static_cast<size_t>(a < 0 ? a + 5 : a)] = true;
    for (int64_t keep : {0, 1}) {
      Tensor want = naive_reduce_mean(x, reduced, keep != 0);
      Node old_form = make_node("ReduceMean", 1);
      if (!axes.empty()) old_form.attrs["axes"] = attr_ints(axes);
      old_form.attrs["keepdims"] = attr_int(keep);
      EXPECT_TRUE(tensors_near(run(kernels::ReduceMean, old_form, {x}, 13)[0], want, kAtol, kRtol))
          << "opset 13 axes " << shape_to_string(axes) << " keepdims " << keep;

      Node new_form = make_node("ReduceMean", 2);
      new_form.attrs["keepdims"] = attr_int(keep);
      Tensor axes_t = axes.empty() ? Tensor() : make_tensor<int64_t>({static_cast<int64_t>(axes.size())}, axes);
      EXPECT_TRUE(tensors_near(run(kernels::ReduceMean, new_form, {x, axes_t}, 18)[0], want, kAtol, kRtol))
          << "opset 18 axes " << shape_to_string(axes) << " keepdims " << keep;
    }
  }
  // Long rows and wide columns (the parallel paths).
  Tensor big = random_tensor({64, 3000}, 12);
  for (int64_t axis : {0, 1}) {
    Node n = make_node("ReduceMean", 1);
    n.attrs["axes"] = attr_ints({axis});
    EXPECT_TRUE(tensors_near(run(kernels::ReduceMean, n, {big}, 17)[0],
                             naive_reduce_mean(big, {axis == 0, axis == 1}, true), kAtol, kRtol));
  }
  set_num_threads(1);
}

TEST(ReduceMean, HandValuesAndNoop) {
  // test_reduce_mean_do_not_keepdims_example.
  Tensor x = make_tensor<float>({3, 2, 2}, {5, 1, 20, 2, 30, 1, 40, 2, 55, 1, 60, 2});
  Node n = make_node("ReduceMean", 1);
  n.attrs["axes"] = attr_ints({1});
  n.attrs["keepdims"] = attr_int(0);
  EXPECT_TRUE(tensors_near(run(kernels::ReduceMean, n, {x}, 11)[0],
                           make_tensor<float>({3, 2}, {12.5f, 1.5f, 35.f, 1.5f, 57.5f, 1.5f})));
  // Opset 18: empty axes with noop_with_empty_axes = 1 is the identity...
  Node noop = make_node("ReduceMean", 2);
  noop.attrs["noop_with_empty_axes"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run(kernels::ReduceMean, noop, {x, Tensor()}, 18)[0], x));
  EXPECT_TRUE(tensors_equal(run(kernels::ReduceMean, noop, {x, make_tensor<int64_t>({0}, {})}, 18)[0], x));
  // ...and reduces everything without it.
  EXPECT_TRUE(tensors_near(run(kernels::ReduceMean, make_node("ReduceMean", 1), {x}, 18)[0],
                           make_tensor<float>({1, 1, 1}, {18.25f})));
}

TEST(ReduceMean, Errors) {
  Tensor x = random_tensor({2, 3}, 1);
  Node n = make_node("ReduceMean", 1);
  n.attrs["axes"] = attr_ints({2});
  std::string msg = run_error(kernels::ReduceMean, n, {x}, 13);
  EXPECT_NE(msg.find("axes value 2 is out of range for rank 2"), std::string::npos) << msg;
  n.attrs["axes"] = attr_ints({1, -1});
  msg = run_error(kernels::ReduceMean, n, {x}, 13);
  EXPECT_NE(msg.find("name axis 1 twice"), std::string::npos) << msg;
  msg = run_error(kernels::ReduceMean, make_node("ReduceMean", 2), {x, make_tensor<float>({1}, {0.f})}, 18);
  EXPECT_NE(msg.find("input 'axes' must be int64, got float32"), std::string::npos) << msg;
  msg = run_error(kernels::ReduceMean, make_node("ReduceMean", 1), {make_tensor<bool>({1}, {true})}, 13);
  EXPECT_NE(msg.find("unsupported dtype bool for input 'data'"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sarai
