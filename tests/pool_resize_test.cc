// Tests for kernels/pool.cc (GlobalAveragePool, AveragePool, MaxPool) and
// kernels/resize.cc (Resize). Hand-computed values come from the ONNX
// backend test cases (numpy reference in onnx/backend/test/case/node/);
// random cases are checked against naive loops written here.
#include <cmath>
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
using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_equal;
using test::tensors_near;

using Ints = std::vector<int64_t>;
Tensor ramp(Shape shape, float start = 1.f) {
  Tensor t = Tensor::allocate(DType::kFloat32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = start + float(i);
  return t;
}

Ints unravel(int64_t i, const Ints& dims) {
  Ints r(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    r[d] = i % dims[d];
    i /= dims[d];
  }
  return r;
}

int64_t prod(const Ints& v) {
  int64_t p = 1;
  for (int64_t x : v) p *= x;
  return p;
}

Node pool_node(const std::string& op, Ints kernel, Ints strides = {}, Ints pads = {}) {
  Node n = make_node(op, 1);
  n.attrs["kernel_shape"] = attr_ints(kernel);
  if (!strides.empty()) n.attrs["strides"] = attr_ints(strides);
  if (!pads.empty()) n.attrs["pads"] = attr_ints(pads);
  return n;
}

// ------------------------------------------------------------------ MaxPool

TEST(MaxPool, BackendPrecomputedPadsWithIndices) {
  Node n = pool_node("MaxPool", {5, 5}, {}, {2, 2, 2, 2});
  n.outputs.push_back(2);  // Indices
  auto r = run_kernel(kernels::MaxPool, n, {ramp({1, 1, 5, 5})});
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<float>({1, 1, 5, 5},
      {13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<int64_t>({1, 1, 5, 5},
      {12, 13, 14, 14, 14, 17, 18, 19, 19, 19, 22, 23, 24, 24, 24, 22, 23, 24, 24, 24, 22, 23, 24, 24, 24})));
}

TEST(MaxPool, IndicesColumnMajorAndAcrossPlanes) {
  // test_maxpool_with_argmax_2d_precomputed_strides: storage_order = 1.
  Node n = pool_node("MaxPool", {2, 2}, {2, 2});
  n.attrs["storage_order"] = attr_int(1);
  n.outputs.push_back(2);
  auto r = run_kernel(kernels::MaxPool, n, {ramp({1, 1, 5, 5})});
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<float>({1, 1, 2, 2}, {7, 9, 17, 19})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<int64_t>({1, 1, 2, 2}, {6, 16, 8, 18})));
  // Row-major indices count whole planes: plane p adds p * 25.
  Node rm = pool_node("MaxPool", {2, 2}, {2, 2});
  rm.outputs.push_back(2);
  r = run_kernel(kernels::MaxPool, rm, {ramp({2, 2, 5, 5})});
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<int64_t>({2, 2, 2, 2},
      {6, 8, 16, 18, 31, 33, 41, 43, 56, 58, 66, 68, 81, 83, 91, 93})));
}

TEST(MaxPool, BackendCeilDilationsSameAndUint8) {
  Node ceil = pool_node("MaxPool", {3, 3}, {2, 2});
  ceil.attrs["ceil_mode"] = attr_int(1);
  EXPECT_TRUE(tensors_equal(run1(kernels::MaxPool, ceil, {ramp({1, 1, 4, 4})}),
                            make_tensor<float>({1, 1, 2, 2}, {11, 12, 15, 16})));
  // ceil_mode only exists from opset 10; before that the floor size is used.
  EXPECT_EQ(run1(kernels::MaxPool, ceil, {ramp({1, 1, 4, 4})}, /*opset=*/9).shape(), (Shape{1, 1, 1, 1}));

  Node dil = pool_node("MaxPool", {2, 2}, {1, 1});
  dil.attrs["dilations"] = attr_ints({2, 2});
  EXPECT_TRUE(tensors_equal(run1(kernels::MaxPool, dil, {ramp({1, 1, 4, 4})}),
                            make_tensor<float>({1, 1, 2, 2}, {11, 12, 15, 16})));

  // test_maxpool_2d_precomputed_same_upper: 5x5, k3, s2 -> 3x3.
  Node same = pool_node("MaxPool", {3, 3}, {2, 2});
  same.attrs["auto_pad"] = attr_string("SAME_UPPER");
  EXPECT_TRUE(tensors_equal(run1(kernels::MaxPool, same, {ramp({1, 1, 5, 5})}),
                            make_tensor<float>({1, 1, 3, 3}, {7, 9, 10, 17, 19, 20, 22, 24, 25})));

  std::vector<uint8_t> xv(25);
  for (int i = 0; i < 25; ++i) xv[i] = uint8_t(i + 1);
  Tensor y = run1(kernels::MaxPool, pool_node("MaxPool", {5, 5}, {}, {2, 2, 2, 2}),
                  {make_tensor<uint8_t>({1, 1, 5, 5}, xv)}, /*opset=*/12);
  EXPECT_TRUE(tensors_equal(y, make_tensor<uint8_t>({1, 1, 5, 5},
      {13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25, 23, 24, 25, 25, 25})));
}

// ------------------------------------------------------------- AveragePool

TEST(AveragePool, BackendCases) {
  Node inc = pool_node("AveragePool", {5, 5}, {}, {2, 2, 2, 2});
  inc.attrs["count_include_pad"] = attr_int(1);
  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, inc, {ramp({1, 1, 5, 5})}),
                           make_tensor<float>({1, 1, 5, 5},
                               {2.52f, 3.6f, 4.8f, 4.08f, 3.24f, 4.56f, 6.4f, 8.4f, 7.04f, 5.52f, 7.2f, 10, 13,
                                10.8f, 8.4f, 6.96f, 9.6f, 12.4f, 10.24f, 7.92f, 6.12f, 8.4f, 10.8f, 8.88f, 6.84f})));
  // Without count_include_pad the corner averages the 3x3 in-bounds block.
  Tensor y = run1(kernels::AveragePool, pool_node("AveragePool", {5, 5}, {}, {2, 2, 2, 2}), {ramp({1, 1, 5, 5})});
  EXPECT_NEAR(y.data<float>()[0], 7.f, 1e-5);

  Node same = pool_node("AveragePool", {3, 3}, {2, 2});
  same.attrs["auto_pad"] = attr_string("SAME_UPPER");
  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, same, {ramp({1, 1, 5, 5})}),
                           make_tensor<float>({1, 1, 3, 3}, {4, 5.5f, 7, 11.5f, 13, 14.5f, 19, 20.5f, 22})));

  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, pool_node("AveragePool", {2, 2}, {2, 2}), {ramp({1, 1, 5, 5})}),
                           make_tensor<float>({1, 1, 2, 2}, {4, 6, 14, 16})));

  Node ceil = pool_node("AveragePool", {3, 3}, {2, 2});
  ceil.attrs["ceil_mode"] = attr_int(1);
  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, ceil, {ramp({1, 1, 4, 4})}),
                           make_tensor<float>({1, 1, 2, 2}, {6, 7.5f, 12, 13.5f})));
}

// Naive pooling straight from the definition (explicit pads only).
Tensor naive_pool(const Tensor& x, bool is_max, const Ints& k, const Ints& s, const Ints& d,
                  const Ints& pads, bool include_pad, bool ceil_mode) {
  const size_t nsp = k.size();
  Ints in(x.shape().begin() + 2, x.shape().end()), out(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    int64_t span = in[i] + pads[i] + pads[i + nsp] - ((k[i] - 1) * d[i] + 1);
    out[i] = (ceil_mode ? (span + s[i] - 1) / s[i] : span / s[i]) + 1;
    if (ceil_mode && (out[i] - 1) * s[i] >= in[i] + pads[i]) --out[i];
  }
  Shape ys = {x.dim(0), x.dim(1)};
  ys.insert(ys.end(), out.begin(), out.end());
  Tensor y = Tensor::allocate(DType::kFloat32, ys);
  const int64_t planes = x.dim(0) * x.dim(1), is = prod(in), os = prod(out), ks = prod(k);
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t oi = 0; oi < os; ++oi) {
      Ints o = unravel(oi, out);
      double acc = is_max ? -INFINITY : 0;
      int64_t count = 0;
      for (int64_t ki = 0; ki < ks; ++ki) {
        Ints kk = unravel(ki, k);
        bool inside = true, in_pad_extent = true;
        int64_t flat = 0;
        for (size_t dd = 0; dd < nsp; ++dd) {
          int64_t q = o[dd] * s[dd] - pads[dd] + kk[dd] * d[dd];
          inside = inside && q >= 0 && q < in[dd];
          in_pad_extent = in_pad_extent && q >= -pads[dd] && q < in[dd] + pads[dd + nsp];
          flat = flat * in[dd] + q;
        }
        if (inside) {
          float v = x.data<float>()[p * is + flat];
          acc = is_max ? std::max<double>(acc, v) : acc + v;
        }
        if (inside || (include_pad && in_pad_extent)) ++count;
      }
      y.mutable_data<float>()[p * os + oi] = float(is_max ? acc : acc / double(count));
    }
  return y;
}

TEST(Pool, MatchesNaive1D2D3D) {
  struct Case {
    Shape x;
    Ints k, s, d, pads;
    bool include_pad, ceil_mode;
  };
  const std::vector<Case> cases = {
      {{2, 3, 11}, {3}, {2}, {1}, {1, 0}, false, false},
      {{1, 2, 12}, {4}, {3}, {2}, {2, 1}, true, true},
      {{2, 2, 7, 9}, {3, 2}, {2, 3}, {1, 1}, {1, 0, 1, 1}, false, true},
      {{1, 3, 8, 8}, {3, 3}, {1, 2}, {2, 1}, {2, 1, 0, 1}, true, false},
      {{1, 2, 9, 10}, {2, 3}, {3, 2}, {1, 2}, {0, 0, 0, 0}, false, true},
      {{1, 2, 5, 6, 7}, {2, 3, 2}, {2, 1, 2}, {1, 1, 2}, {1, 0, 1, 0, 1, 1}, true, true},
  };
  // Also under 2 threads, to cover the parallel split over planes.
  int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    uint32_t seed = 40;
    for (const Case& c : cases) {
      Tensor x = random_tensor(c.x, ++seed);
      for (bool is_max : {true, false}) {
        Node n = pool_node(is_max ? "MaxPool" : "AveragePool", c.k, c.s, c.pads);
        n.attrs["dilations"] = attr_ints(c.d);
        n.attrs["ceil_mode"] = attr_int(c.ceil_mode);
        n.attrs["count_include_pad"] = attr_int(c.include_pad);
        Tensor y = run1(is_max ? kernels::MaxPool : kernels::AveragePool, n, {x}, /*opset=*/19);
        EXPECT_TRUE(tensors_near(y, naive_pool(x, is_max, c.k, c.s, c.d, c.pads, c.include_pad, c.ceil_mode)))
            << (is_max ? "MaxPool" : "AveragePool") << " X " << shape_to_string(c.x) << " kernel "
            << shape_to_string(c.k) << " pads " << shape_to_string(c.pads) << " threads " << threads;
      }
    }
  }
  set_num_threads(saved);
}

TEST(Pool, SameLowerPadsMoreAtTheBeginning) {
  // test_averagepool_2d_same_lower in 1-D: in 4, k 2, s 1 -> pad (1, 0).
  Node n = pool_node("AveragePool", {2});
  n.attrs["auto_pad"] = attr_string("SAME_LOWER");
  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, n, {ramp({1, 1, 4})}),
                           make_tensor<float>({1, 1, 4}, {1, 1.5f, 2.5f, 3.5f})));
  n.attrs["auto_pad"] = attr_string("SAME_UPPER");
  EXPECT_TRUE(tensors_near(run1(kernels::AveragePool, n, {ramp({1, 1, 4})}),
                           make_tensor<float>({1, 1, 4}, {1.5f, 2.5f, 3.5f, 4})));
  n.attrs["auto_pad"] = attr_string("VALID");
  n.attrs["pads"] = attr_ints({5, 5});  // ignored under VALID
  EXPECT_TRUE(tensors_near(run1(kernels::MaxPool, n, {ramp({1, 1, 4})}),
                           make_tensor<float>({1, 1, 3}, {2, 3, 4})));
}

TEST(Pool, Errors) {
  Node no_k = make_node("MaxPool", 1);
  EXPECT_HAS(run_error(kernels::MaxPool, no_k, {ramp({1, 1, 4, 4})}), "missing required attribute kernel_shape");
  EXPECT_HAS(run_error(kernels::AveragePool, pool_node("AveragePool", {2, 2}, {}, {1, 1}), {ramp({1, 1, 4, 4})}),
             "pads [1, 1] must have 4 values");
  EXPECT_HAS(run_error(kernels::MaxPool, pool_node("MaxPool", {5, 2}), {ramp({1, 1, 4, 4})}),
             "kernel_shape [5, 2] with dilations [1, 1] is larger than the padded input [1, 1, 4, 4]");
  EXPECT_HAS(run_error(kernels::MaxPool, pool_node("MaxPool", {2}), {ramp({1, 1, 4, 4})}),
             "kernel_shape [2] must have 2 values");
  EXPECT_HAS(run_error(kernels::AveragePool, pool_node("AveragePool", {1, 1}),
                     {make_tensor<int64_t>({1, 1, 1, 1}, {1})}),
             "only float32");
  Node so = pool_node("MaxPool", {2, 2});
  so.attrs["storage_order"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::MaxPool, so, {ramp({1, 1, 4, 4})}), "storage_order 2 must be 0 or 1");
  EXPECT_HAS(run_error(kernels::MaxPool, pool_node("MaxPool", {2}), {ramp({4, 4})}), "must have rank >= 3");
}

TEST(GlobalAveragePool, MatchesNaive) {
  Tensor x = random_tensor({2, 3, 5, 7}, 9);
  Tensor y = run1(kernels::GlobalAveragePool, make_node("GlobalAveragePool", 1), {x});
  Tensor expect = Tensor::allocate(DType::kFloat32, {2, 3, 1, 1});
  for (int p = 0; p < 6; ++p) {
    double s = 0;
    for (int i = 0; i < 35; ++i) s += x.data<float>()[p * 35 + i];
    expect.mutable_data<float>()[p] = float(s / 35);
  }
  EXPECT_TRUE(tensors_near(y, expect));
  // 1-D spatial.
  y = run1(kernels::GlobalAveragePool, make_node("GlobalAveragePool", 1), {ramp({1, 2, 4})});
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({1, 2, 1}, {2.5f, 6.5f})));
  EXPECT_HAS(run_error(kernels::GlobalAveragePool, make_node("GlobalAveragePool", 1),
                     {make_tensor<int32_t>({1, 1, 1}, {1})}),
             "only float32");
}

// ------------------------------------------------------------------ Resize

Tensor f32(std::vector<float> v) { return make_tensor<float>({int64_t(v.size())}, v); }
Tensor i64(std::vector<int64_t> v) { return make_tensor<int64_t>({int64_t(v.size())}, v); }

Node resize_node(const std::string& mode, const std::string& coord = "") {
  Node n = make_node("Resize", 4);
  n.attrs["mode"] = attr_string(mode);
  if (!coord.empty()) n.attrs["coordinate_transformation_mode"] = attr_string(coord);
  return n;
}

// Inputs in the opset 13+ form: (X, roi, scales, sizes), "" = omitted.
Tensor resize_scales(const Node& n, const Tensor& x, std::vector<float> scales, int64_t opset = 13) {
  return run1(kernels::Resize, n, {x, Tensor(), f32(scales), Tensor()}, opset);
}
Tensor resize_sizes(const Node& n, const Tensor& x, Ints sizes, int64_t opset = 13) {
  return run1(kernels::Resize, n, {x, Tensor(), Tensor(), i64(sizes)}, opset);
}

TEST(Resize, NearestBackendCases) {
  Node n = resize_node("nearest");
  Tensor x22 = ramp({1, 1, 2, 2});
  EXPECT_TRUE(tensors_equal(resize_scales(n, x22, {1, 1, 2, 3}),
      make_tensor<float>({1, 1, 4, 6}, {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4})));
  EXPECT_TRUE(tensors_equal(resize_scales(n, ramp({1, 1, 2, 4}), {1, 1, 0.6f, 0.6f}),
                            make_tensor<float>({1, 1, 1, 2}, {1, 3})));

  Tensor x44 = ramp({1, 1, 4, 4});
  Node floor_ac = resize_node("nearest", "align_corners");
  floor_ac.attrs["nearest_mode"] = attr_string("floor");
  EXPECT_TRUE(tensors_equal(resize_sizes(floor_ac, x44, {1, 1, 8, 8}), make_tensor<float>({1, 1, 8, 8},
      {1, 1, 1, 2, 2, 3, 3, 4, 1, 1, 1, 2, 2, 3, 3, 4, 1, 1, 1, 2, 2, 3, 3, 4, 5, 5, 5, 6, 6, 7, 7, 8,
       5, 5, 5, 6, 6, 7, 7, 8, 9, 9, 9, 10, 10, 11, 11, 12, 9, 9, 9, 10, 10, 11, 11, 12, 13, 13, 13, 14, 14, 15, 15, 16})));
  const std::vector<float> ceil_expect = {
      1, 2, 2, 3, 3, 4, 4, 4, 5, 6, 6, 7, 7, 8, 8, 8, 5, 6, 6, 7, 7, 8, 8, 8, 9, 10, 10, 11, 11, 12, 12, 12,
      9, 10, 10, 11, 11, 12, 12, 12, 13, 14, 14, 15, 15, 16, 16, 16, 13, 14, 14, 15, 15, 16, 16, 16, 13, 14, 14, 15, 15, 16, 16, 16};
  Node ceil_hp = resize_node("nearest", "half_pixel");
  ceil_hp.attrs["nearest_mode"] = attr_string("ceil");
  EXPECT_TRUE(tensors_equal(resize_sizes(ceil_hp, x44, {1, 1, 8, 8}), make_tensor<float>({1, 1, 8, 8}, ceil_expect)));
  Node rpc = resize_node("nearest", "asymmetric");
  rpc.attrs["nearest_mode"] = attr_string("round_prefer_ceil");
  EXPECT_TRUE(tensors_equal(resize_sizes(rpc, x44, {1, 1, 8, 8}), make_tensor<float>({1, 1, 8, 8}, ceil_expect)));
}

TEST(Resize, LinearBackendCases) {
  Tensor x22 = ramp({1, 1, 2, 2});
  EXPECT_TRUE(tensors_near(resize_scales(resize_node("linear"), x22, {1, 1, 2, 2}),
      make_tensor<float>({1, 1, 4, 4}, {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4})));
  EXPECT_TRUE(tensors_near(resize_scales(resize_node("linear", "align_corners"), x22, {1, 1, 2, 2}),
      make_tensor<float>({1, 1, 4, 4}, {1, 1.333333f, 1.666667f, 2, 1.666667f, 2, 2.333333f, 2.666667f,
                                        2.333333f, 2.666667f, 3, 3.333333f, 3, 3.333333f, 3.666667f, 4})));
  Tensor x24 = ramp({1, 1, 2, 4});
  EXPECT_TRUE(tensors_near(resize_scales(resize_node("linear"), x24, {1, 1, 0.6f, 0.6f}),
                           make_tensor<float>({1, 1, 1, 2}, {2.666667f, 4.333333f})));
  // align_corners uses the real-valued output length 2.4 as the reference does.
  EXPECT_TRUE(tensors_near(resize_scales(resize_node("linear", "align_corners"), x24, {1, 1, 0.6f, 0.6f}),
                           make_tensor<float>({1, 1, 1, 2}, {1, 3.142857f})));
  EXPECT_TRUE(tensors_near(resize_sizes(resize_node("linear", "pytorch_half_pixel"), ramp({1, 1, 4, 4}), {1, 1, 3, 1}),
                           make_tensor<float>({1, 1, 3, 1}, {1.666667f, 7, 12.33333f})));
}

TEST(Resize, TfCropAndResize) {
  Tensor x = ramp({1, 1, 4, 4});
  Node n = resize_node("linear", "tf_crop_and_resize");
  Tensor roi = f32({0, 0, 0.4f, 0.6f, 1, 1, 0.6f, 0.8f});
  EXPECT_TRUE(tensors_near(run1(kernels::Resize, n, {x, roi, Tensor(), i64({1, 1, 3, 3})}),
                           make_tensor<float>({1, 1, 3, 3}, {7.6f, 7.9f, 8.2f, 8.8f, 9.1f, 9.4f, 10, 10.3f, 10.6f})));
  n.attrs["extrapolation_value"] = attr_float(10.f);
  roi = f32({0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f});
  EXPECT_TRUE(tensors_near(run1(kernels::Resize, n, {x, roi, Tensor(), i64({1, 1, 3, 3})}),
                           make_tensor<float>({1, 1, 3, 3}, {7.6f, 10, 10, 12.4f, 10, 10, 10, 10, 10})));
  std::string msg = run_error(kernels::Resize, n, {x, Tensor(), Tensor(), i64({1, 1, 3, 3})});
  EXPECT_HAS(msg, "needs input 'roi'");
}

TEST(Resize, CubicBackendCases) {
  Tensor x = ramp({1, 1, 4, 4});
  Tensor y = resize_scales(resize_node("cubic"), x, {1, 1, 2, 2});
  ASSERT_EQ(y.shape(), (Shape{1, 1, 8, 8}));
  const float row0[] = {0.4726562f, 0.7695312f, 1.246094f, 1.875f, 2.28125f, 2.910156f, 3.386719f, 3.683594f};
  const float row7[] = {13.31641f, 13.61328f, 14.08984f, 14.71875f, 15.125f, 15.75391f, 16.23047f, 16.52734f};
  for (int i = 0; i < 8; ++i) {
    EXPECT_NEAR(y.data<float>()[i], row0[i], 1e-4) << i;
    EXPECT_NEAR(y.data<float>()[56 + i], row7[i], 1e-4) << i;
  }
  Node excl = resize_node("cubic");
  excl.attrs["cubic_coeff_a"] = attr_float(-0.5f);
  excl.attrs["exclude_outside"] = attr_int(1);
  EXPECT_TRUE(tensors_near(resize_scales(excl, x, {1, 1, 0.8f, 0.8f}),
      make_tensor<float>({1, 1, 3, 3}, {1.368127f, 2.669501f, 4.013337f, 6.573625f, 7.875f, 9.218835f,
                                        11.94897f, 13.25034f, 14.59418f}), 1e-4, 1e-5));
  y = resize_scales(resize_node("cubic", "asymmetric"), x, {1, 1, 2, 2});
  const float asym_row1[] = {2.625f, 3.03125f, 3.625f, 4.125f, 4.625f, 5.21875f, 5.625f, 5.71875f};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(y.data<float>()[8 + i], asym_row1[i], 1e-4) << i;
}

TEST(Resize, TrilinearReproducesALinearFunction) {
  // Multilinear interpolation is exact on an affine function, so with
  // align_corners (all source points inside) y = f(x_ori) for every axis.
  const Shape in = {3, 4, 5};
  Tensor x = Tensor::allocate(DType::kFloat32, in);
  auto f = [](double a, double b, double c) { return 1.5 * a - 2.0 * b + 0.25 * c + 3; };
  for (int64_t i = 0; i < x.numel(); ++i) {
    Ints ix = unravel(i, in);
    x.mutable_data<float>()[i] = float(f(double(ix[0]), double(ix[1]), double(ix[2])));
  }
  const Ints out = {5, 7, 3};
  Tensor y = resize_sizes(resize_node("linear", "align_corners"), x, out);
  Tensor expect = Tensor::allocate(DType::kFloat32, out);
  for (int64_t i = 0; i < expect.numel(); ++i) {
    Ints o = unravel(i, out);
    double src[3];
    for (int d = 0; d < 3; ++d) src[d] = double(o[d]) * double(in[d] - 1) / double(out[d] - 1);
    expect.mutable_data<float>()[i] = float(f(src[0], src[1], src[2]));
  }
  EXPECT_TRUE(tensors_near(y, expect, 1e-4, 1e-4));
}

TEST(Resize, Opset10And11InputForms) {
  // Opset 10: (X, scales), asymmetric nearest.
  Node n10 = make_node("Resize", 2);
  n10.attrs["mode"] = attr_string("nearest");
  EXPECT_TRUE(tensors_equal(run1(kernels::Resize, n10, {ramp({1, 1, 2, 2}), f32({1, 1, 2, 2})}, /*opset=*/10),
      make_tensor<float>({1, 1, 4, 4}, {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4})));
  Node l10 = make_node("Resize", 2);
  l10.attrs["mode"] = attr_string("linear");
  EXPECT_TRUE(tensors_near(run1(kernels::Resize, l10, {ramp({1, 1, 1, 2}), f32({1, 1, 1, 2})}, /*opset=*/10),
                           make_tensor<float>({1, 1, 1, 4}, {1, 1.5f, 2, 2})));
  // Opset 11: roi and scales present but empty, sizes given.
  Node n11 = resize_node("nearest");
  Tensor empty_f = Tensor::allocate(DType::kFloat32, {0});
  EXPECT_EQ(run1(kernels::Resize, n11, {ramp({1, 1, 2, 2}), empty_f, empty_f, i64({1, 1, 3, 5})}, /*opset=*/11).shape(),
            (Shape{1, 1, 3, 5}));
}

TEST(Resize, Opset18AxesAndAspectRatio) {
  Node n = resize_node("nearest");
  n.attrs["axes"] = attr_ints({-2, -1});
  Tensor x = ramp({1, 1, 2, 2});
  EXPECT_EQ(resize_scales(n, x, {2, 3}, 18).shape(), (Shape{1, 1, 4, 6}));
  n.attrs["keep_aspect_ratio_policy"] = attr_string("not_larger");
  Tensor y = resize_sizes(n, ramp({1, 1, 2, 4}), {7, 8}, 18);  // scale min(3.5, 2) = 2
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 8}));
  n.attrs["keep_aspect_ratio_policy"] = attr_string("not_smaller");
  EXPECT_EQ(resize_sizes(n, ramp({1, 1, 2, 4}), {7, 8}, 18).shape(), (Shape{1, 1, 7, 14}));
  // Before opset 18 the policy attribute does not exist.
  Node all = resize_node("nearest");
  all.attrs["keep_aspect_ratio_policy"] = attr_string("not_larger");
  EXPECT_EQ(resize_sizes(all, ramp({1, 1, 2, 4}), {1, 1, 7, 8}, 13).shape(), (Shape{1, 1, 7, 8}));
}

TEST(Resize, HalfPixelSymmetricOpset19) {
  // resize_downsample_scales_linear_half_pixel_symmetric: [1,2,3,4] * 0.6.
  Node n = resize_node("linear", "half_pixel_symmetric");
  EXPECT_TRUE(tensors_near(resize_scales(n, ramp({1, 1, 1, 4}), {1, 1, 1, 0.6f}, 19),
                           make_tensor<float>({1, 1, 1, 2}, {1.666667f, 3.333333f})));
  EXPECT_HAS(run_error(kernels::Resize, n, {ramp({1, 1, 1, 4}), Tensor(), f32({1, 1, 1, 0.6f}), Tensor()}, 18),
             "'half_pixel_symmetric' is not supported at opset 18");
}

TEST(Resize, TfHalfPixelForNnOpset11Only) {
  // x_ori = (x + 0.5) / scale: scale 2 on [1, 2] samples 0.25, 0.75, 1.25, 1.75.
  Node n = resize_node("nearest", "tf_half_pixel_for_nn");
  EXPECT_TRUE(tensors_equal(resize_scales(n, ramp({1, 2}), {1, 2}, 11),
                            make_tensor<float>({1, 4}, {1, 2, 2, 2})));
  EXPECT_HAS(run_error(kernels::Resize, n, {ramp({1, 2}), Tensor(), f32({1, 2}), Tensor()}, 13),
             "'tf_half_pixel_for_nn' is not supported at opset 13");
}

TEST(Resize, NearestOnIntegersLinearNeedsFloat) {
  Tensor x = make_tensor<int64_t>({1, 3}, {10, 20, 30});
  Tensor y = run1(kernels::Resize, resize_node("nearest", "asymmetric"),
                  {x, Tensor(), f32({1, 2}), Tensor()});
  EXPECT_TRUE(tensors_equal(y, make_tensor<int64_t>({1, 6}, {10, 10, 20, 20, 30, 30})));
  EXPECT_HAS(run_error(kernels::Resize, resize_node("linear"), {x, Tensor(), f32({1, 2}), Tensor()}),
             "mode 'linear' needs float32 input X, got int64");
}

TEST(Resize, Errors) {
  Tensor x = ramp({1, 1, 2, 2});
  EXPECT_HAS(run_error(kernels::Resize, resize_node("bilinear"), {x, Tensor(), f32({1, 1, 2, 2}), Tensor()}),
             "mode 'bilinear' is not one of nearest, linear, cubic");
  EXPECT_HAS(run_error(kernels::Resize, resize_node("nearest"), {x, Tensor(), f32({1, 1, 2, 2}), i64({1, 1, 4, 4})}),
             "only one of inputs 'scales' and 'sizes'");
  EXPECT_HAS(run_error(kernels::Resize, resize_node("nearest"), {x, Tensor(), Tensor(), Tensor()}),
             "one of inputs 'scales' and 'sizes' must be given");
  EXPECT_HAS(run_error(kernels::Resize, resize_node("nearest"), {x, Tensor(), f32({2, 2}), Tensor()}),
             "input 'scales' has 2 values but X [1, 1, 2, 2] needs 4");
  EXPECT_HAS(run_error(kernels::Resize, resize_node("nearest"), {x, Tensor(), f32({1, 1, 0, 2}), Tensor()}),
             "scales [1, 1, 0, 2] must all be > 0");
  Node nm = resize_node("nearest");
  nm.attrs["nearest_mode"] = attr_string("round");
  EXPECT_HAS(run_error(kernels::Resize, nm, {x, Tensor(), f32({1, 1, 2, 2}), Tensor()}), "nearest_mode 'round'");
  Node aa = resize_node("linear");
  aa.attrs["antialias"] = attr_int(1);
  EXPECT_HAS(run_error(kernels::Resize, aa, {x, Tensor(), f32({1, 1, 0.5f, 0.5f}), Tensor()}, 18),
             "antialias=1 is not supported when downsampling");
  // Upsampling with antialias is plain interpolation.
  EXPECT_EQ(run1(kernels::Resize, aa, {x, Tensor(), f32({1, 1, 2, 2}), Tensor()}, 18).shape(), (Shape{1, 1, 4, 4}));
  Node cm = resize_node("linear", "half_pixel_asymmetric");
  EXPECT_HAS(run_error(kernels::Resize, cm, {x, Tensor(), f32({1, 1, 2, 2}), Tensor()}),
             "coordinate_transformation_mode 'half_pixel_asymmetric'");
}

}  // namespace
}  // namespace sarai
