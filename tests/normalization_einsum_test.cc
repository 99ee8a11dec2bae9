// Tests for InstanceNormalization, GroupNormalization, LpNormalization,
// MeanVarianceNormalization, LRN (kernels/normalization.cc) and Einsum
// (kernels/einsum.cc): hand-checked values, every attribute, every error
// message; Einsum also against naive loops for matmul-like contractions.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_ints;
using test::attr_string;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;
using test::tensors_near;

Node node(const std::string& op, int inputs, std::map<std::string, Attribute> attrs = {}) {
  Node n = test::make_node(op, inputs);
  for (auto& [k, v] : attrs) n.attrs[k] = v;
  return n;
}
Tensor f32(Shape s, std::vector<float> v) { return make_tensor<float>(std::move(s), v); }
Tensor f64(Shape s, std::vector<double> v) { return make_tensor<double>(std::move(s), v); }
Tensor i64(Shape s, std::vector<int64_t> v) { return make_tensor<int64_t>(std::move(s), v); }

TEST(InstanceNormalization, PlanesAndErrors) {
  // Channels [1, 3] and [4, 6]: mean 2 and 5, variance 1.
  const Tensor x = f32({1, 2, 2}, {1, 3, 4, 6});
  const Node n = node("InstanceNormalization", 3, {{"epsilon", attr_float(0.f)}});
  EXPECT_TRUE(tensors_near(run1(kernels::InstanceNormalization, n, {x, f32({2}, {2, 1}), f32({2}, {0.5f, 7})}),
                           f32({1, 2, 2}, {-1.5f, 2.5f, 6, 8})));
  // Default epsilon 1e-5 over a 4-D input.
  const Tensor y = run1(kernels::InstanceNormalization, node("InstanceNormalization", 3), {f32({1, 1, 1, 2}, {0, 2}), f32({1}, {1}), f32({1}, {0})});
  EXPECT_NEAR(y.data<float>()[1], 1 / std::sqrt(1 + 1e-5), 1e-6);
  EXPECT_TRUE(tensors_equal(run1(kernels::InstanceNormalization, n, {f32({0, 2, 2}, {}), f32({2}, {1, 1}), f32({2}, {0, 0})}), f32({0, 2, 2}, {})));

  EXPECT_HAS(run_error(kernels::InstanceNormalization, n, {f32({2}, {1, 2}), f32({2}, {1, 1}), f32({2}, {0, 0})}),
             "input 'input' [2] must have rank >= 2 [N, C, ...]");
  EXPECT_HAS(run_error(kernels::InstanceNormalization, n, {x, f32({3}, {1, 1, 1}), f32({2}, {0, 0})}),
             "input 'scale' must have shape [2] (the channels of X [1, 2, 2]), got [3]");
  EXPECT_HAS(run_error(kernels::InstanceNormalization, n, {x, f32({2}, {1, 1}), i64({2}, {0, 0})}), "input 'B' must be float32, got int64");
  EXPECT_HAS(run_error(kernels::InstanceNormalization, node("InstanceNormalization", 3, {{"epsilon", attr_float(-1.f)}}), {x, f32({2}, {1, 1}), f32({2}, {0, 0})}),
             "attribute 'epsilon' is -1.000000; it must be finite and >= 0");
}

TEST(GroupNormalization, PerGroupPerChannelAndErrors) {
  // 4 channels of 2 in 2 groups: group 0 = [0, 1, 2, 3] (mean 1.5, var 1.25),
  // group 1 = [3, 5, 3, 5] (mean 4, var 1).
  const Tensor x = f32({1, 4, 2}, {0, 1, 2, 3, 3, 5, 3, 5});
  const float s = 1 / std::sqrt(1.25f);
  Node n = node("GroupNormalization", 3, {{"num_groups", attr_int(2)}, {"epsilon", attr_float(0.f)}});
  EXPECT_TRUE(tensors_near(run1(kernels::GroupNormalization, n, {x, f32({2}, {2, 1}), f32({2}, {0, 9})}, 18),
                           f32({1, 4, 2}, {-3 * s, -s, s, 3 * s, 8, 10, 8, 10})));
  // Opset 21: per-channel scale and bias.
  EXPECT_TRUE(tensors_near(run1(kernels::GroupNormalization, n, {x, f32({4}, {1, 2, 1, 1}), f32({4}, {0, 1, 2, 3})}, 21),
                           f32({1, 4, 2}, {-1.5f * s, -0.5f * s, 2 * 0.5f * s + 1, 2 * 1.5f * s + 1, 1, 3, 2, 4})));

  EXPECT_HAS(run_error(kernels::GroupNormalization, node("GroupNormalization", 3), {x, f32({2}, {1, 1}), f32({2}, {0, 0})}, 18),
             "missing required attribute 'num_groups'");
  EXPECT_HAS(run_error(kernels::GroupNormalization, node("GroupNormalization", 3, {{"num_groups", attr_int(0)}}), {x, f32({2}, {1, 1}), f32({2}, {0, 0})}, 18),
             "attribute 'num_groups' is 0; it must be positive");
  EXPECT_HAS(run_error(kernels::GroupNormalization, node("GroupNormalization", 3, {{"num_groups", attr_int(3)}}), {x, f32({3}, {1, 1, 1}), f32({3}, {0, 0, 0})}, 18),
             "the 4 channels of X [1, 4, 2] do not split into num_groups = 3 groups");
  EXPECT_HAS(run_error(kernels::GroupNormalization, n, {x, f32({4}, {1, 1, 1, 1}), f32({4}, {0, 0, 0, 0})}, 18),
             "input 'scale' must have shape [2] (num_groups of X [1, 4, 2]), got [4]");
  EXPECT_HAS(run_error(kernels::GroupNormalization, n, {x, f32({2}, {1, 1}), f32({2}, {0, 0})}, 21),
             "input 'scale' must have shape [4] (the channels of X [1, 4, 2]), got [2]");
  EXPECT_HAS(run_error(kernels::GroupNormalization, n, {f32({4}, {1, 2, 3, 4}), f32({2}, {1, 1}), f32({2}, {0, 0})}, 18),
             "input 'X' [4] must have rank >= 2 [N, C, ...]");
  Node stash = n;
  stash.attrs["stash_type"] = attr_int(0);
  EXPECT_HAS(run_error(kernels::GroupNormalization, stash, {x, f32({4}, {1, 1, 1, 1}), f32({4}, {0, 0, 0, 0})}, 21),
             "attribute 'stash_type' is 0; only 1 (float32) is supported");
}

TEST(LpNormalization, PAxisAndErrors) {
  EXPECT_TRUE(tensors_near(run1(kernels::LpNormalization, node("LpNormalization", 1), {f32({1, 2}, {3, 4})}), f32({1, 2}, {0.6f, 0.8f})));
  EXPECT_TRUE(tensors_near(run1(kernels::LpNormalization, node("LpNormalization", 1, {{"p", attr_int(1)}}), {f32({1, 2}, {3, -4})}),
                           f32({1, 2}, {3.f / 7, -4.f / 7})));
  EXPECT_TRUE(tensors_near(run1(kernels::LpNormalization, node("LpNormalization", 1, {{"axis", attr_int(0)}}), {f32({2, 2}, {3, 0, 4, 2})}),
                           f32({2, 2}, {0.6f, 0, 0.8f, 1})));
  EXPECT_TRUE(std::isnan(run1(kernels::LpNormalization, node("LpNormalization", 1), {f32({1, 1}, {0})}).data<float>()[0]));
  EXPECT_HAS(run_error(kernels::LpNormalization, node("LpNormalization", 1, {{"p", attr_int(3)}}), {f32({1}, {1})}), "attribute 'p' is 3; expected 1 or 2");
  EXPECT_HAS(run_error(kernels::LpNormalization, node("LpNormalization", 1, {{"axis", attr_int(2)}}), {f32({1, 2}, {1, 1})}), "axis");
}

TEST(MeanVarianceNormalization, AxesAndErrors) {
  // Default axes [0, 2, 3]: one channel [1, 3, 5, 7]: mean 4, std sqrt(5).
  const float s = 1 / (std::sqrt(5.f) + 1e-9f);
  EXPECT_TRUE(tensors_near(run1(kernels::MeanVarianceNormalization, node("MeanVarianceNormalization", 1), {f32({2, 1, 2, 1}, {1, 3, 5, 7})}),
                           f32({2, 1, 2, 1}, {-3 * s, -s, s, 3 * s})));
  const Node a1 = node("MeanVarianceNormalization", 1, {{"axes", attr_ints({-1})}});
  EXPECT_TRUE(tensors_near(run1(kernels::MeanVarianceNormalization, a1, {f32({2, 2}, {1, 3, 5, 5})}), f32({2, 2}, {-1, 1, 0, 0})));
  EXPECT_HAS(run_error(kernels::MeanVarianceNormalization, node("MeanVarianceNormalization", 1, {{"axes", attr_ints({1, 1})}}), {f32({2, 2}, {1, 3, 5, 5})}),
             "attribute 'axes' [1, 1] names axis 1 twice");
  EXPECT_HAS(run_error(kernels::MeanVarianceNormalization, node("MeanVarianceNormalization", 1, {{"axes", attr_ints({1, -1})}}), {f32({2, 2}, {1, 3, 5, 5})}),
             "attribute 'axes' [1, -1] names axis 1 twice");
  EXPECT_HAS(run_error(kernels::MeanVarianceNormalization, node("MeanVarianceNormalization", 1), {f32({2, 2}, {1, 3, 5, 5})}), "axes");
}

TEST(LRN, WindowsAndErrors) {
  // size 2: channel c sums c and c + 1; alpha 1, beta 1, bias 1 -> x / (1 + sq / 2).
  const Node n = node("LRN", 1, {{"size", attr_int(2)}, {"alpha", attr_float(1)}, {"beta", attr_float(1)}, {"bias", attr_float(1)}});
  EXPECT_TRUE(tensors_near(run1(kernels::LRN, n, {f32({1, 3, 1, 1}, {1, 2, 3})}), f32({1, 3, 1, 1}, {1 / 3.5f, 2 / 7.5f, 3 / 5.5f})));
  // size 3: c - 1 .. c + 1, defaults alpha 1e-4, beta 0.75, bias 1.
  const Tensor y = run1(kernels::LRN, node("LRN", 1, {{"size", attr_int(3)}}), {f32({1, 2, 1}, {1, 2})});
  EXPECT_NEAR(y.data<float>()[0], 1 / std::pow(1 + 1e-4 / 3 * 5, 0.75), 1e-6);
  EXPECT_TRUE(tensors_equal(run1(kernels::LRN, node("LRN", 1, {{"size", attr_int(std::numeric_limits<int64_t>::max())}}), {f32({1, 1}, {0})}), f32({1, 1}, {0})));
  EXPECT_HAS(run_error(kernels::LRN, node("LRN", 1), {f32({1, 1}, {1})}), "missing required attribute 'size'");
  EXPECT_HAS(run_error(kernels::LRN, node("LRN", 1, {{"size", attr_int(0)}}), {f32({1, 1}, {1})}), "attribute 'size' is 0; it must be positive");
  EXPECT_HAS(run_error(kernels::LRN, node("LRN", 1, {{"size", attr_int(1)}, {"beta", attr_float(INFINITY)}}), {f32({1, 1}, {1})}),
             "attributes 'alpha', 'beta' and 'bias' must be finite");
  EXPECT_HAS(run_error(kernels::LRN, node("LRN", 1, {{"size", attr_int(1)}}), {f32({1}, {1})}), "input 'X' [1] must have rank >= 2 [N, C, ...]");
}

Node einsum(const std::string& eq, int inputs) { return node("Einsum", inputs, {{"equation", attr_string(eq)}}); }

TEST(Einsum, EquationsAgainstLoops) {
  const Tensor a = test::random_tensor({2, 3, 4}, 1), b = test::random_tensor({2, 4, 5}, 2);
  // Batched matmul, with spaces in the equation.
  Tensor want = Tensor::allocate(DType::kFloat32, {2, 3, 5});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 5; ++j) {
        double s = 0;
        for (int64_t k = 0; k < 4; ++k) s += double(a.data<float>()[(n * 3 + i) * 4 + k]) * b.data<float>()[(n * 4 + k) * 5 + j];
        want.mutable_data<float>()[(n * 3 + i) * 5 + j] = static_cast<float>(s);
      }
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("bij, bjk -> bik", 2), {a, b}, 12), want));
  // Implicit output: "bij,bjk" keeps i, k (once-only labels, sorted) -> [3, 5] summed over b, j.
  const Tensor imp = run1(kernels::Einsum, einsum("bij,bjk", 2), {a, b}, 12);
  EXPECT_EQ(imp.shape(), (Shape{3, 5}));
  EXPECT_NEAR(imp.data<float>()[0], want.data<float>()[0] + want.data<float>()[15], 1e-5);
  // Transpose, sum, inner product, trace, diagonal, outer product.
  const Tensor m = f64({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ij->ji", 1), {m}, 12), f64({2, 2}, {1, 3, 2, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ij->i", 1), {m}, 12), f64({2}, {3, 7})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ij->", 1), {m}, 12), f64({}, {10})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("i,i", 2), {f64({2}, {1, 2}), f64({2}, {3, 4})}, 12), f64({}, {11})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ii", 1), {m}, 12), f64({}, {5})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ii->i", 1), {m}, 12), f64({2}, {1, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("i,j->ij", 2), {i64({2}, {1, 2}), i64({2}, {3, 4})}, 12), i64({2, 2}, {3, 4, 6, 8})));
  // Ellipsis: batch diagonal, broadcasting of a 1 against 2, implicit "..." first.
  const Tensor bd = f64({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("...ii->...i", 1), {bd}, 12), f64({2, 2}, {1, 4, 5, 8})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("...j,...j->...", 2), {f64({2, 2}, {1, 2, 3, 4}), f64({1, 2}, {1, 1})}, 12), f64({2}, {3, 7})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("j...,j", 2), {f64({2, 2}, {1, 2, 3, 4}), f64({2}, {1, 10})}, 12), f64({2}, {31, 42})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("Ab,b->A", 2), {m, f64({2}, {1, 0})}, 12), f64({2}, {1, 3})));
  // Three inputs; an empty summed label gives zeros.
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("i,i,i->", 3), {f64({2}, {1, 2}), f64({2}, {3, 4}), f64({2}, {2, 2})}, 12), f64({}, {22})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ij,jk->ik", 2), {f64({2, 0}, {}), f64({0, 1}, {})}, 12), f64({2, 1}, {0, 0})));
  // Two float32 inputs take the GEMM path: diagonals, broadcasts, a label
  // only one input has (summed there), empty K.
  const Tensor mf = f32({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("ii,i->i", 2), {mf, f32({2}, {1, 10})}, 12), f32({2}, {1, 40})));
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("ij,j", 2), {mf, f32({2}, {1, 10})}, 12), f32({2}, {21, 43})));
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("ij,k->k", 2), {mf, f32({2}, {1, 10})}, 12), f32({2}, {10, 100})));
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("...j,...j->...", 2), {mf, f32({1, 2}, {1, 1})}, 12), f32({2}, {3, 7})));
  EXPECT_TRUE(tensors_near(run1(kernels::Einsum, einsum("ij,jk->ki", 2), {mf, f32({2, 1}, {1, 10})}, 12), f32({1, 2}, {21, 43})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Einsum, einsum("ij,jk->ik", 2), {f32({2, 0}, {}), f32({0, 1}, {})}, 12), f32({2, 1}, {0, 0})));
}

TEST(Einsum, Errors) {
  const Tensor m = f32({2, 2}, {1, 2, 3, 4});
  EXPECT_HAS(run_error(kernels::Einsum, node("Einsum", 1), {m}, 12), "missing required attribute 'equation'");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("i.j", 1), {m}, 12), "attribute 'equation' 'i.j' has a '.' outside an ellipsis '...'");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("...i...", 1), {m}, 12), "has two ellipses in one term");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("i1", 1), {m}, 12), "attribute 'equation' 'i1' has character '1'; labels are letters");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij->i->j", 1), {m}, 12), "has more than one output term");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij->ii", 1), {m}, 12), "names an output label twice");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij->k", 1), {m}, 12), "has an output label that no input has");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij->...", 1), {m}, 12), "has an output label that no input has");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij,jk", 1), {m}, 12), "the equation has 2 input terms but the node has 1 inputs");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij", 1), {make_tensor<bool>({1, 1}, {true})}, 12),
             "input 0 has dtype bool; Einsum supports float32, float64, int32 and int64");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij,jk", 2), {m, i64({2, 2}, {1, 2, 3, 4})}, 12), "input 1 has dtype int64 but input 0 has float32");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ijk", 1), {m}, 12), "input 0 [2, 2] does not have the 3 dims its term names");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ijk...", 1), {m}, 12), "input 0 [2, 2] does not have the 3 or more dims its term names");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij,jk", 2), {m, f32({3, 1}, {1, 2, 3})}, 12), "label 'j' is 2 in one place and 3 in input 1 [3, 1]");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("...,...", 2), {m, f32({3}, {1, 2, 3})}, 12),
             "the '...' dims of input 1 [3] do not broadcast with the other inputs'");
  EXPECT_HAS(run_error(kernels::Einsum, einsum("ij,jk", 2), {m, Tensor()}, 12), "missing input 1");
}

}  // namespace
}  // namespace sarai
