// Tests for kernels/conv.cc: Conv and ConvTranspose against naive loops
// written here (any spatial rank), plus hand-computed cases from the ONNX
// backend tests and the error messages.
// Float tolerance for every sgemm comparison: |a-b| <= 1e-4 + 1e-4*|b|.
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "tests/int8_reference.h"
#include "tests/test_util.h"

// The case tables below list only the leading fields they need.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace sarai {
namespace {

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
constexpr double kTol = 1e-4;
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

// A conv configuration; pads are resolved (begin, end) by the test itself.
using test::ConvCase;

// Direct definition: Y[n, m, o] = B[m] + sum_{c, k} W[m, c, k] X[n, g*Cg + c, o*s - pb + k*d].
Tensor naive_conv(const Tensor& x, const Tensor& w, const Tensor* b, int64_t group, const Ints& s,
                  const Ints& d, const Ints& pb, const Ints& out) {
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0), cg = c / group, mg = m / group;
  Ints in(x.shape().begin() + 2, x.shape().end()), k(w.shape().begin() + 2, w.shape().end());
  Shape ys = {n, m};
  ys.insert(ys.end(), out.begin(), out.end());
  Tensor y = Tensor::allocate(DType::kFloat32, ys);
  const int64_t os = prod(out), is = prod(in), ks = prod(k);
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t mi = 0; mi < m; ++mi) {
      const int64_t g = mi / mg;
      for (int64_t oi = 0; oi < os; ++oi) {
        Ints o = unravel(oi, out);
        double acc = b ? b->data<float>()[mi] : 0.0;
        for (int64_t ci = 0; ci < cg; ++ci)
          for (int64_t ki = 0; ki < ks; ++ki) {
            Ints kk = unravel(ki, k);
            int64_t flat = 0;
            bool inside = true;
            for (size_t dd = 0; dd < in.size(); ++dd) {
              int64_t p = o[dd] * s[dd] - pb[dd] + kk[dd] * d[dd];
              inside = inside && p >= 0 && p < in[dd];
              flat = flat * in[dd] + p;
            }
            if (!inside) continue;
            acc += double(w.data<float>()[(mi * cg + ci) * ks + ki]) *
                   x.data<float>()[(bi * c + g * cg + ci) * is + flat];
          }
        y.mutable_data<float>()[(bi * m + mi) * os + oi] = float(acc);
      }
    }
  return y;
}

void check_conv(const ConvCase& cc, uint32_t seed) {
  const size_t nsp = cc.x.size() - 2;
  Tensor x = random_tensor(cc.x, seed), w = random_tensor(cc.w, seed + 1);
  Tensor b = random_tensor({cc.w[0]}, seed + 2);
  Node node = make_node("Conv", cc.bias ? 3 : 2);
  cc.set_attrs(node);
  Ints s = cc.strides.empty() ? Ints(nsp, 1) : cc.strides;
  Ints d = cc.dilations.empty() ? Ints(nsp, 1) : cc.dilations;
  Ints pads = cc.pads.empty() ? Ints(2 * nsp, 0) : cc.pads;
  // Resolve pads and output size the way the spec states it.
  Ints pb(nsp), out(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t in = cc.x[i + 2], ek = (cc.w[i + 2] - 1) * d[i] + 1;
    if (cc.auto_pad == "SAME_UPPER" || cc.auto_pad == "SAME_LOWER") {
      out[i] = (in + s[i] - 1) / s[i];
      int64_t total = std::max<int64_t>(0, (out[i] - 1) * s[i] + ek - in);
      pb[i] = cc.auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
    } else if (cc.auto_pad == "VALID") {
      pb[i] = 0;
      out[i] = (in - ek) / s[i] + 1;
    } else {
      pb[i] = pads[i];
      out[i] = (in + pads[i] + pads[i + nsp] - ek) / s[i] + 1;
    }
  }
  std::vector<Tensor> inputs = {x, w};
  if (cc.bias) inputs.push_back(b);
  Tensor y = run1(kernels::Conv, node, inputs);
  Tensor expect = naive_conv(x, w, cc.bias ? &b : nullptr, cc.group, s, d, pb, out);
  EXPECT_TRUE(tensors_near(y, expect, kTol, kTol))
      << "X " << shape_to_string(cc.x) << " W " << shape_to_string(cc.w) << " group " << cc.group
      << " strides " << shape_to_string(s) << " dilations " << shape_to_string(d) << " pads "
      << shape_to_string(pads) << " auto_pad '" << cc.auto_pad << "'";
}

TEST(Conv, HandComputedBackendCase) {
  // test_basic_conv_with_padding: 5x5 ramp, 3x3 ones, pads 1.
  std::vector<float> xv(25);
  for (int i = 0; i < 25; ++i) xv[i] = float(i);
  Tensor x = make_tensor<float>({1, 1, 5, 5}, xv);
  Tensor w = make_tensor<float>({1, 1, 3, 3}, std::vector<float>(9, 1.f));
  Node node = make_node("Conv", 2);
  node.attrs["kernel_shape"] = attr_ints({3, 3});
  node.attrs["pads"] = attr_ints({1, 1, 1, 1});
  Tensor y = run1(kernels::Conv, node, {x, w});
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({1, 1, 5, 5},
                                                 {12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108,
                                                  117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84})));
}

TEST(Conv, MatchesNaive2D) {
  const std::vector<ConvCase> cases = {
      {{2, 3, 9, 8}, {4, 3, 3, 3}},                                           // plain
      {{1, 3, 9, 8}, {5, 3, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},             // stride + pads
      {{1, 4, 10, 11}, {6, 2, 3, 2}, 2, {1, 2}, {2, 1}, {0, 1, 2, 0}},        // groups, dilation, asymmetric pads
      {{2, 6, 7, 7}, {6, 1, 3, 3}, 6, {1, 1}, {}, {1, 1, 1, 1}},             // depthwise
      {{1, 5, 9, 10}, {5, 1, 5, 3}, 5, {2, 1}, {2, 3}, {3, 0, 1, 2}},        // depthwise, dilated, strided
      {{1, 4, 6, 6}, {8, 1, 3, 3}, 4, {}, {}, {1, 1, 1, 1}},                 // depthwise multiplier 2
      {{2, 8, 5, 6}, {16, 8, 1, 1}},                                          // pointwise
      {{1, 8, 7, 6}, {4, 8, 1, 1}, 1, {2, 2}},                                // strided 1x1
      {{1, 3, 9, 8}, {4, 3, 3, 3}, 1, {2, 2}, {}, {}, {}, {}, "SAME_UPPER"},
      {{1, 3, 8, 8}, {4, 3, 4, 4}, 1, {1, 1}, {}, {}, {}, {}, "SAME_UPPER"},
      {{1, 3, 8, 8}, {4, 3, 4, 4}, 1, {1, 1}, {}, {}, {}, {}, "SAME_LOWER"},
      {{1, 3, 9, 8}, {4, 3, 3, 2}, 1, {2, 3}, {}, {}, {}, {}, "VALID"},
      {{1, 2, 5, 5}, {3, 2, 2, 2}, 1, {}, {}, {}, {}, {}, "", false},                 // no bias
  };
  // Under 1 and 2 threads, to cover the parallel im2col and depthwise loops.
  int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    uint32_t seed = 100;
    for (const ConvCase& cc : cases) check_conv(cc, seed += 3);
  }
  set_num_threads(saved);
}

TEST(Conv, MatchesNaive1DAnd3D) {
  const std::vector<ConvCase> cases = {
      {{2, 3, 17}, {4, 3, 3}},                                  // 1-D
      {{1, 4, 20}, {6, 2, 5}, 2, {3}, {2}, {2, 1}},             // 1-D groups, stride, dilation, pads
      {{1, 4, 15}, {4, 1, 3}, 4, {2}, {1}, {1, 2}},             // 1-D depthwise
      {{1, 3, 16}, {2, 3, 4}, 1, {2}, {}, {}, {}, {}, "SAME_UPPER"},    // 1-D SAME
      {{1, 2, 5, 6, 4}, {3, 2, 3, 2, 2}, 1, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 0}},  // 3-D
      {{1, 3, 4, 5, 6}, {3, 1, 2, 2, 3}, 3, {}, {}, {}, {}, {}, "SAME_LOWER"},  // 3-D depthwise (im2col path)
  };
  uint32_t seed = 300;
  for (const ConvCase& cc : cases) check_conv(cc, seed += 3);
}

// Conv's blocked im2col path (kernels/conv.cc block_plan): with 64 input
// channels per group and a 3x3 kernel (576 col rows) the output positions
// split into blocks of about 256, whose edges fall mid-line; 64 or more
// output channels on one short output also split the channels. Each case
// under 1 and 2 threads against the naive loops, and the two results
// bitwise equal (the blocks do not depend on the thread count).
TEST(Conv, BlockedIm2colMatchesNaive) {
  const std::vector<ConvCase> cases = {
      {{1, 64, 23, 45}, {8, 64, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},                 // 4 blocks, lines of 45
      {{1, 64, 12, 21}, {96, 64, 3, 3}, 1, {}, {}, {1, 1, 1, 1}},                // 1 block, 2 channel blocks
      {{2, 64, 50, 41}, {6, 64, 3, 3}, 1, {2, 2}, {2, 2}, {2, 1, 2, 3}},         // stride, dilation, asymmetric pads
      {{1, 64, 30, 40}, {5, 64, 3, 3}, 1, {1, 3}, {3, 1}, {0, 2, 1, 0}},         // stride 3 on the last dim
      {{1, 128, 20, 30}, {16, 64, 3, 3}, 2, {}, {}, {1, 1, 1, 1}},               // groups
      {{1, 64, 21, 33}, {7, 64, 3, 3}, 1, {}, {}, {}, {}, {}, "SAME_LOWER", false},  // no bias
      {{1, 64, 9, 9}, {4, 64, 3, 3}, 1, {1, 1}, {4, 4}, {4, 4, 4, 4}},          // taps mostly in the padding
      {{1, 64, 700}, {8, 64, 9}, 1, {}, {}, {3, 5}},                              // 1-D
      {{1, 32, 8, 12, 14}, {4, 32, 2, 3, 3}, 1, {}, {}, {0, 1, 1, 1, 0, 1}},      // 3-D
  };
  const int saved = num_threads();
  uint32_t seed = 500;
  for (const ConvCase& cc : cases) {
    check_conv(cc, seed += 3);
    Tensor x = random_tensor(cc.x, seed), w = random_tensor(cc.w, seed + 1);
    Tensor b = random_tensor({cc.w[0]}, seed + 2);
    Node node = make_node("Conv", 3);
    cc.set_attrs(node);
    set_num_threads(1);
    Tensor y1 = run1(kernels::Conv, node, {x, w, b});
    set_num_threads(2);
    Tensor y2 = run1(kernels::Conv, node, {x, w, b});
    EXPECT_TRUE(tensors_equal(y2, y1)) << cc.str();
  }
  set_num_threads(saved);
}

TEST(Conv, KernelShapeAttributeMustMatchW) {
  Node node = make_node("Conv", 2);
  node.attrs["kernel_shape"] = attr_ints({3, 2});
  std::string msg = run_error(kernels::Conv, node, {random_tensor({1, 1, 5, 5}, 1), random_tensor({1, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "kernel_shape [3, 2] does not match W [1, 1, 3, 3]");
}

TEST(Conv, Errors) {
  Node node = make_node("Conv", 3);
  // W channels vs C / group.
  std::string msg = run_error(kernels::Conv, node,
                            {random_tensor({1, 4, 5, 5}, 1), random_tensor({2, 3, 3, 3}, 2), Tensor()});
  EXPECT_HAS(msg, "W [2, 3, 3, 3] has 3 input channels per group");
  EXPECT_HAS(msg, "needs 4");
  // M divisible by group.
  Node g2 = make_node("Conv", 2);
  g2.attrs["group"] = attr_int(2);
  msg = run_error(kernels::Conv, g2, {random_tensor({1, 4, 5, 5}, 1), random_tensor({3, 2, 3, 3}, 2)});
  EXPECT_HAS(msg, "output channels 3");
  EXPECT_HAS(msg, "not divisible by group 2");
  // C divisible by group.
  msg = run_error(kernels::Conv, g2, {random_tensor({1, 3, 5, 5}, 1), random_tensor({2, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "input channels 3");
  // pads length.
  Node p = make_node("Conv", 2);
  p.attrs["pads"] = attr_ints({1, 1});
  msg = run_error(kernels::Conv, p, {random_tensor({1, 1, 5, 5}, 1), random_tensor({1, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "pads [1, 1] must have 4 values");
  // Kernel larger than the padded input.
  msg = run_error(kernels::Conv, make_node("Conv", 2),
                {random_tensor({1, 1, 2, 5}, 1), random_tensor({1, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "larger than the padded input [1, 1, 2, 5]");
  // Bias length.
  msg = run_error(kernels::Conv, node,
                {random_tensor({1, 1, 5, 5}, 1), random_tensor({2, 1, 3, 3}, 2), random_tensor({3}, 3)});
  EXPECT_HAS(msg, "bias B [3] must be [2]");
  // Bad auto_pad, dtype, rank.
  Node ap = make_node("Conv", 2);
  ap.attrs["auto_pad"] = attr_string("SAME");
  msg = run_error(kernels::Conv, ap, {random_tensor({1, 1, 5, 5}, 1), random_tensor({1, 1, 3, 3}, 2)});
  EXPECT_HAS(msg, "auto_pad 'SAME'");
  msg = run_error(kernels::Conv, make_node("Conv", 2),
                {make_tensor<int64_t>({1, 1, 1}, {1}), make_tensor<int64_t>({1, 1, 1}, {1})});
  EXPECT_HAS(msg, "only float32");
  msg = run_error(kernels::Conv, make_node("Conv", 2), {random_tensor({1, 5}, 1), random_tensor({1, 5}, 2)});
  EXPECT_HAS(msg, "must have rank >= 3");
}

// ------------------------------------------------------------- ConvTranspose

// Scatter definition: Y[n, g*Mg + m, i*s - pb + k*d] += X[n, g*Cg + c, i] W[g*Cg + c, m, k].
Tensor naive_conv_transpose(const Tensor& x, const Tensor& w, const Tensor* b, int64_t group,
                            const Ints& s, const Ints& d, const Ints& pb, const Ints& out) {
  const int64_t n = x.dim(0), c = x.dim(1), mg = w.dim(1), m = mg * group, cg = c / group;
  Ints in(x.shape().begin() + 2, x.shape().end()), k(w.shape().begin() + 2, w.shape().end());
  Shape ys = {n, m};
  ys.insert(ys.end(), out.begin(), out.end());
  Tensor y = Tensor::allocate(DType::kFloat32, ys);
  const int64_t os = prod(out), is = prod(in), ks = prod(k);
  std::vector<double> acc(static_cast<size_t>(y.numel()), 0.0);
  for (int64_t bi = 0; bi < n; ++bi)
    for (int64_t ci = 0; ci < c; ++ci) {
      const int64_t g = ci / cg;
      for (int64_t ii = 0; ii < is; ++ii) {
        Ints i = unravel(ii, in);
        for (int64_t mi = 0; mi < mg; ++mi)
          for (int64_t ki = 0; ki < ks; ++ki) {
            Ints kk = unravel(ki, k);
            int64_t flat = 0;
            bool inside = true;
            for (size_t dd = 0; dd < in.size(); ++dd) {
              int64_t o = i[dd] * s[dd] - pb[dd] + kk[dd] * d[dd];
              inside = inside && o >= 0 && o < out[dd];
              flat = flat * out[dd] + o;
            }
            if (!inside) continue;
            acc[static_cast<size_t>((bi * m + g * mg + mi) * os + flat)] +=
                double(x.data<float>()[(bi * c + ci) * is + ii]) * w.data<float>()[(ci * mg + mi) * ks + ki];
          }
      }
    }
  for (int64_t i = 0; i < y.numel(); ++i)
    y.mutable_data<float>()[i] = float(acc[static_cast<size_t>(i)] + (b ? b->data<float>()[(i / os) % m] : 0.0));
  return y;
}

void check_conv_transpose(const ConvCase& cc, uint32_t seed) {
  const size_t nsp = cc.x.size() - 2;
  Tensor x = random_tensor(cc.x, seed), w = random_tensor(cc.w, seed + 1);
  Tensor b = random_tensor({cc.w[1] * cc.group}, seed + 2);
  Node node = make_node("ConvTranspose", 3);
  cc.set_attrs(node);
  Ints s = cc.strides.empty() ? Ints(nsp, 1) : cc.strides;
  Ints d = cc.dilations.empty() ? Ints(nsp, 1) : cc.dilations;
  Ints pads = cc.pads.empty() ? Ints(2 * nsp, 0) : cc.pads;
  Ints op = cc.output_padding.empty() ? Ints(nsp, 0) : cc.output_padding;
  Ints pb(nsp), out(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    const int64_t in = cc.x[i + 2], ek = (cc.w[i + 2] - 1) * d[i] + 1;
    const int64_t full = s[i] * (in - 1) + op[i] + ek;
    int64_t want = -1;
    if (!cc.output_shape.empty()) want = cc.output_shape[i];
    else if (cc.auto_pad == "SAME_UPPER" || cc.auto_pad == "SAME_LOWER") want = in * s[i];
    if (want >= 0) {
      int64_t total = full - want;
      // A longer output than the data covers gets zeros at the end.
      pb[i] = total < 0 ? 0 : cc.auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      out[i] = want;
    } else {
      pb[i] = pads[i];
      out[i] = full - pads[i] - pads[i + nsp];
    }
  }
  Tensor y = run1(kernels::ConvTranspose, node, {x, w, b});
  Tensor expect = naive_conv_transpose(x, w, &b, cc.group, s, d, pb, out);
  EXPECT_TRUE(tensors_near(y, expect, kTol, kTol))
      << "X " << shape_to_string(cc.x) << " W " << shape_to_string(cc.w) << " group " << cc.group
      << " strides " << shape_to_string(s) << " pads " << shape_to_string(pads);
}

TEST(ConvTranspose, MatchesNaive) {
  const std::vector<ConvCase> cases = {
      {{1, 2, 4, 5}, {2, 3, 3, 3}},                                         // plain
      {{2, 3, 4, 4}, {3, 2, 3, 3}, 1, {2, 2}, {}, {1, 1, 1, 1}},           // stride + pads
      {{1, 4, 3, 5}, {4, 2, 3, 2}, 2, {2, 1}, {2, 1}, {0, 1, 1, 0}, {1, 0}},  // groups, dilation, output_padding
      {{1, 3, 5, 4}, {3, 1, 3, 3}, 3, {2, 2}},                               // depthwise transposed
      {{1, 2, 3, 3}, {2, 2, 3, 3}, 1, {3, 2}, {}, {}, {}, {10, 8}},          // output_shape
      {{1, 2, 3, 3}, {2, 2, 3, 3}, 1, {2, 2}, {}, {}, {}, {}, "SAME_UPPER"},
      {{1, 2, 3, 3}, {2, 2, 3, 3}, 1, {2, 2}, {}, {}, {}, {}, "SAME_LOWER"},
      {{1, 3, 7}, {3, 2, 4}, 1, {3}, {2}, {1, 2}},                           // 1-D
      {{1, 2, 3, 2, 3}, {2, 2, 2, 3, 2}, 1, {2, 1, 2}, {1, 1, 1}, {0, 1, 0, 0, 0, 1}},  // 3-D
  };
  int saved = num_threads();
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    uint32_t seed = 500;
    for (const ConvCase& cc : cases) check_conv_transpose(cc, seed += 3);
  }
  set_num_threads(saved);
}

TEST(ConvTranspose, HandComputedAutopadSame) {
  // test_convtranspose_autopad_same from the ONNX backend tests.
  Tensor x = make_tensor<float>({1, 1, 3, 3}, {0, 1, 2, 3, 4, 5, 6, 7, 8});
  Tensor w = make_tensor<float>({1, 2, 3, 3}, std::vector<float>(18, 1.f));
  Node node = make_node("ConvTranspose", 2);
  node.attrs["auto_pad"] = attr_string("SAME_UPPER");
  node.attrs["strides"] = attr_ints({2, 2});
  Tensor y = run1(kernels::ConvTranspose, node, {x, w});
  std::vector<float> plane = {0, 0, 1, 1, 3, 2, 0, 0, 1, 1, 3, 2, 3, 3, 8, 5, 12, 7,
                              3, 3, 7, 4, 9, 5, 9, 9, 20, 11, 24, 13, 6, 6, 13, 7, 15, 8};
  std::vector<float> both = plane;
  both.insert(both.end(), plane.begin(), plane.end());
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({1, 2, 6, 6}, both)));
}

TEST(ConvTranspose, OutputShapeMayIncludeBatchAndChannels) {
  Tensor x = random_tensor({1, 1, 3, 3}, 1), w = random_tensor({1, 2, 3, 3}, 2);
  Node node = make_node("ConvTranspose", 2);
  node.attrs["strides"] = attr_ints({3, 2});
  node.attrs["output_shape"] = attr_ints({1, 2, 10, 8});
  Tensor y = run1(kernels::ConvTranspose, node, {x, w});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 10, 8}));
}

TEST(ConvTranspose, Errors) {
  Node node = make_node("ConvTranspose", 2);
  std::string msg = run_error(kernels::ConvTranspose, node,
                            {random_tensor({1, 3, 4, 4}, 1), random_tensor({2, 2, 3, 3}, 2)});
  EXPECT_HAS(msg, "W [2, 2, 3, 3] must have 3 input channels");
  Node g = make_node("ConvTranspose", 2);
  g.attrs["group"] = attr_int(2);
  msg = run_error(kernels::ConvTranspose, g, {random_tensor({1, 3, 4, 4}, 1), random_tensor({3, 2, 3, 3}, 2)});
  EXPECT_HAS(msg, "not divisible by group 2");
  Node p = make_node("ConvTranspose", 2);
  p.attrs["pads"] = attr_ints({3, 3, 3, 3});
  msg = run_error(kernels::ConvTranspose, p, {random_tensor({1, 1, 2, 2}, 1), random_tensor({1, 1, 2, 2}, 2)});
  EXPECT_HAS(msg, "output spatial dim 0 would be -3");
  Node op = make_node("ConvTranspose", 2);
  op.attrs["output_padding"] = attr_ints({1});
  msg = run_error(kernels::ConvTranspose, op, {random_tensor({1, 1, 2, 2}, 1), random_tensor({1, 1, 2, 2}, 2)});
  EXPECT_HAS(msg, "output_padding [1] must have 2 values");
}

}  // namespace
}  // namespace sarai
