// kernels/resize.cc's replication path (nearest resizes whose every axis
// takes input floor(x / k) at an integer factor k): the same bytes as the
// general path (SetResizeReplication(false)) and as a plain reference
// written here, over ranks 3-5, factors 1..8 on various axes, odd sizes,
// the opset 10 and 11+ input forms, scales and sizes, several dtypes; and
// which mode combinations take it (ResizeReplicationRuns) while the others
// still give the general path's result.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_string;
using test::make_node;
using test::make_tensor;
using test::tensors_equal;
using Ints = std::vector<int64_t>;

Tensor f32(std::vector<float> v) { return make_tensor<float>({int64_t(v.size())}, v); }
Tensor i64(Ints v) { return make_tensor<int64_t>({int64_t(v.size())}, v); }

// Distinct bytes per element; float32 with -0.0, a NaN payload and
// infinities among them, so a copy that goes through arithmetic shows.
Tensor pattern(DType dt, const Shape& shape, uint32_t seed) {
  Tensor t = Tensor::allocate(dt, shape);
  auto* b = static_cast<uint8_t*>(t.mutable_raw());
  uint32_t s = seed * 2654435761u + 1;
  for (size_t i = 0; i < t.nbytes(); ++i) {
    s = s * 1664525u + 1013904223u;
    b[i] = static_cast<uint8_t>(s >> 24);
  }
  if (dt == DType::kFloat32) {
    float* f = t.mutable_data<float>();
    for (int64_t i = 0; i < t.numel(); ++i) f[i] = static_cast<float>(i % 97) * 0.25f - 7.f;
    const uint32_t nan_payload = 0x7fa00001u;  // a signalling NaN with a payload
    if (t.numel() > 0) f[0] = -0.f;
    if (t.numel() > 1) std::memcpy(&f[1], &nan_payload, 4);
    if (t.numel() > 2) f[2] = -std::numeric_limits<float>::infinity();
  }
  return t;
}

// y[o] = x[o_d / k_d]: what the replication path must write.
Tensor replicated(const Tensor& x, const Ints& k) {
  Shape out = x.shape();
  for (size_t d = 0; d < out.size(); ++d) out[d] *= k[d];
  Tensor y = Tensor::allocate(x.dtype(), out);
  const size_t es = dtype_size(x.dtype());
  for (int64_t i = 0; i < y.numel(); ++i) {
    int64_t rem = i, src = 0, stride = 1;
    for (size_t d = out.size(); d-- > 0;) {
      const int64_t o = rem % out[d];
      rem /= out[d];
      src += o / k[d] * stride;
      stride *= x.shape()[d];
    }
    std::memcpy(static_cast<uint8_t*>(y.mutable_raw()) + static_cast<size_t>(i) * es,
                static_cast<const uint8_t*>(x.raw()) + static_cast<size_t>(src) * es, es);
  }
  return y;
}

struct Form {
  const char* name;
  int64_t opset;
  bool sizes;  // sizes input (opset 11+) instead of scales
};

Node nearest_node(int64_t opset, const std::string& coord, const std::string& nearest_mode) {
  Node n = make_node("Resize", opset < 11 ? 2 : 4);
  n.attrs["mode"] = attr_string("nearest");
  if (opset >= 11) {
    n.attrs["coordinate_transformation_mode"] = attr_string(coord);
    n.attrs["nearest_mode"] = attr_string(nearest_mode);
  }
  return n;
}

std::vector<Tensor> resize_inputs(const Tensor& x, const Form& f, const std::vector<double>& scale) {
  std::vector<float> s;
  Ints sizes;
  for (size_t d = 0; d < scale.size(); ++d) {
    s.push_back(static_cast<float>(scale[d]));
    sizes.push_back(static_cast<int64_t>(std::floor(scale[d] * static_cast<double>(x.shape()[d]))));
  }
  if (f.opset < 11) return {x, f32(s)};
  if (f.sizes) return {x, Tensor(), Tensor(), i64(sizes)};
  return {x, Tensor(), f32(s), Tensor()};
}

// One run at `threads`, with the replication path on or off; `took` gets
// whether it ran.
Tensor run_resize(const Node& n, const std::vector<Tensor>& in, int64_t opset, int threads, bool fast, bool* took) {
  kernels::SetResizeReplication(fast);
  const int64_t before = kernels::ResizeReplicationRuns();
  auto out = test::run_kernel(kernels::Resize, n, in, opset, threads);
  kernels::SetResizeReplication(true);
  if (took != nullptr) *took = kernels::ResizeReplicationRuns() != before;
  EXPECT_TRUE(out.has_value()) << out.status().message();
  return out.has_value() ? (*out)[0] : Tensor();
}

const Form kForms[] = {{"opset10", 10, false}, {"scales13", 13, false}, {"sizes13", 13, true}, {"sizes19", 19, true}};

TEST(ResizeReplication, EqualsTheGeneralPathAndTheReferenceOverRanksFactorsAndForms) {
  const std::vector<Shape> shapes = {{2, 3, 5}, {1, 3, 7, 5}, {2, 1, 3, 4, 3}, {1, 5, 1, 9}};
  const std::vector<DType> dtypes = {DType::kFloat32, DType::kUInt8, DType::kInt64, DType::kFloat16};
  int cases = 0;
  for (const Shape& shape : shapes) {
    const size_t r = shape.size();
    for (int64_t k = 1; k <= 8; ++k) {
      // The factor on the last axis, the last two (as in det: H and W), an
      // outer axis, and a mix with one axis at 1.
      std::vector<Ints> patterns = {Ints(r, 1), Ints(r, 1), Ints(r, 1), Ints(r, 1)};
      patterns[0][r - 1] = k;
      patterns[1][r - 1] = patterns[1][r - 2] = k;
      patterns[2][0] = k;
      patterns[3][r - 2] = k;
      patterns[3][0] = 1 + k % 3;
      for (const Ints& kf : patterns) {
        std::vector<double> scale(kf.begin(), kf.end());
        for (const Form& f : kForms) {
          const DType dt = dtypes[static_cast<size_t>(cases) % dtypes.size()];
          SCOPED_TRACE(std::string(f.name) + " X " + shape_to_string(shape) + " k " +
                       shape_to_string(Shape(kf.begin(), kf.end())) + " " + dtype_name(dt));
          const Tensor x = pattern(dt, shape, static_cast<uint32_t>(cases));
          const Node n = nearest_node(f.opset, "asymmetric", "floor");
          const auto in = resize_inputs(x, f, scale);
          const Tensor want = replicated(x, kf);
          bool took = false;
          const Tensor general = run_resize(n, in, f.opset, 1, /*fast=*/false, &took);
          EXPECT_FALSE(took);
          EXPECT_TRUE(tensors_equal(general, want));
          for (int threads : {1, 3}) {
            const Tensor fast = run_resize(n, in, f.opset, threads, /*fast=*/true, &took);
            EXPECT_TRUE(took) << threads << " threads";
            EXPECT_TRUE(tensors_equal(fast, want)) << threads << " threads";
          }
          ++cases;
        }
      }
    }
  }
  EXPECT_EQ(cases, 4 * 8 * 4 * 4);
}

// The mode combinations and factors, at scales k (and sizes k * in): the
// ones the header comment of kernels/resize.cc lists take the path, the
// rest do not; both give the general path's bytes.
TEST(ResizeReplication, WhichModesTakeItAndTheRestStayGeneral) {
  struct Combo {
    const char* coord;
    const char* nearest_mode;
    std::vector<double> scale;  // on X [1, 2, 7, 5]
    bool fast;
  };
  const Combo combos[] = {
      {"asymmetric", "floor", {1, 1, 2, 2}, true},
      {"asymmetric", "floor", {1, 1, 8, 3}, true},
      {"asymmetric", "floor", {1, 1, 1, 1}, true},
      {"asymmetric", "round_prefer_floor", {1, 1, 2, 2}, true},
      {"asymmetric", "round_prefer_floor", {1, 1, 3, 3}, false},  // 2/3 rounds up
      {"asymmetric", "round_prefer_ceil", {1, 1, 2, 2}, false},  // 1/2 rounds up
      {"asymmetric", "ceil", {1, 1, 2, 1}, false},
      {"asymmetric", "ceil", {1, 1, 1, 1}, true},
      {"half_pixel", "round_prefer_floor", {1, 1, 2, 2}, true},
      {"half_pixel", "round_prefer_floor", {1, 1, 3, 5}, true},
      {"half_pixel", "round_prefer_ceil", {1, 1, 4, 7}, true},
      {"pytorch_half_pixel", "round_prefer_floor", {1, 1, 2, 4}, true},
      {"half_pixel", "floor", {1, 1, 2, 2}, false},
      {"half_pixel", "ceil", {1, 1, 2, 2}, false},
      {"tf_half_pixel_for_nn", "floor", {1, 1, 3, 2}, true},
      {"tf_half_pixel_for_nn", "round_prefer_floor", {1, 1, 2, 2}, false},
      {"align_corners", "floor", {1, 1, 2, 2}, false},
      {"align_corners", "round_prefer_floor", {1, 1, 1, 1}, true},
      {"asymmetric", "floor", {1, 1, 1.5, 2}, false},  // a non-integer factor
      {"asymmetric", "floor", {1, 1, 2, 0.6}, false},  // downsampling
      {"asymmetric", "floor", {1, 1, 2.5, 2.5}, false},
  };
  const Tensor x = pattern(DType::kFloat32, {1, 2, 7, 5}, 3);
  for (const Combo& c : combos) {
    for (const Form& f : {Form{"scales", 11, false}, Form{"sizes", 11, true}}) {
      SCOPED_TRACE(std::string(c.coord) + " + " + c.nearest_mode + " at " + std::to_string(c.scale[2]) + " x " +
                   std::to_string(c.scale[3]) + ", " + f.name);
      const Node n = nearest_node(11, c.coord, c.nearest_mode);
      const auto in = resize_inputs(x, f, c.scale);
      bool took = false;
      const Tensor general = run_resize(n, in, 11, 1, false, nullptr);
      const Tensor got = run_resize(n, in, 11, 2, true, &took);
      // Sizes floor(2.5 * 7) = 17 is not 2.5 * 7: its factor differs, still
      // non-integer; sizes of an integer factor take the same path.
      EXPECT_EQ(took, c.fast);
      EXPECT_TRUE(tensors_equal(got, general));
    }
  }
}

TEST(ResizeReplication, OtherCasesStayGeneral) {
  const Tensor x = pattern(DType::kFloat32, {1, 1, 3, 4}, 5);
  // tf_crop_and_resize with a full roi at factor 2, and linear at factor 1
  // (its tables collapse to one tap, but only nearest copies bytes).
  Node crop = nearest_node(13, "tf_crop_and_resize", "floor");
  bool took = true;
  run_resize(crop, {x, f32({0, 0, 0, 0, 1, 1, 1, 1}), f32({1, 1, 2, 2}), Tensor()}, 13, 1, true, &took);
  EXPECT_FALSE(took);
  Node lin = make_node("Resize", 4);
  lin.attrs["mode"] = attr_string("linear");
  lin.attrs["coordinate_transformation_mode"] = attr_string("asymmetric");
  const Tensor y = run_resize(lin, {x, Tensor(), f32({1, 1, 1, 1}), Tensor()}, 13, 1, true, &took);
  EXPECT_FALSE(took);
  EXPECT_EQ(y.shape(), x.shape());
  // Opset 10 downsampling (ceil) and a factor on a size-1 axis by sizes.
  Node n10 = nearest_node(10, "", "");
  run_resize(n10, {x, f32({1, 1, 0.5f, 1})}, 10, 1, true, &took);
  EXPECT_FALSE(took);
  const Tensor one = pattern(DType::kFloat32, {1, 1, 1, 3}, 6);
  const Tensor big = run_resize(nearest_node(13, "asymmetric", "floor"), {one, Tensor(), Tensor(), i64({1, 1, 5, 3})},
                                13, 2, true, &took);
  EXPECT_TRUE(took);
  EXPECT_TRUE(tensors_equal(big, replicated(one, {1, 1, 5, 1})));
}

// The general path copies nearest's tap: -0.0 and NaN payloads keep their
// bits (before the replication path it computed 0 + 1 * 1 * x).
TEST(ResizeReplication, GeneralNearestCopiesFloatBits) {
  const Tensor x = pattern(DType::kFloat32, {1, 1, 2, 3}, 7);
  const Tensor y = run_resize(nearest_node(13, "align_corners", "floor"), {x, Tensor(), Tensor(), i64({1, 1, 3, 5})},
                              13, 1, false, nullptr);
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 5}));
  uint32_t bits0 = 0, bits1 = 0, want1 = 0;
  std::memcpy(&bits0, &y.data<float>()[0], 4);
  std::memcpy(&bits1, &y.data<float>()[2], 4);  // x index 2 * 2 / 4 = 1: the NaN with a payload
  std::memcpy(&want1, &x.data<float>()[1], 4);
  EXPECT_EQ(bits0, 0x80000000u);
  EXPECT_EQ(bits1, want1);
  // tf_crop_and_resize's extrapolation value on float32 nearest.
  Node crop = nearest_node(13, "tf_crop_and_resize", "floor");
  crop.attrs["extrapolation_value"] = test::attr_float(-3.5f);
  const Tensor c = run_resize(crop, {x, f32({0, 0, 0, 0, 1, 1, 1, 2}), Tensor(), i64({1, 1, 2, 3})}, 13, 1, false,
                              nullptr);
  ASSERT_EQ(c.shape(), (Shape{1, 1, 2, 3}));
  EXPECT_EQ(c.data<float>()[5], -3.5f);  // x 2 maps to 4 > in - 1
}

}  // namespace
}  // namespace sarai
