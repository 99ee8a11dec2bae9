// Tests for kernels/index_ops.cc: OneHot, NonZero, GatherND, ScatterND,
// GatherElements, ScatterElements/Scatter, Tile, Trilu, EyeLike,
// DepthToSpace, SpaceToDepth, Compress, ReverseSequence, Unique. Small
// hand-checked cases, every attribute, and every error message.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/session.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_int;
using test::attr_string;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_equal;

Node node(const std::string& op, int inputs, int outputs = 1) { return test::make_node(op, inputs, outputs); }
Node node(const std::string& op, int inputs, std::map<std::string, Attribute> attrs, int outputs = 1) {
  Node n = test::make_node(op, inputs, outputs);
  for (auto& [k, v] : attrs) n.attrs[k] = v;
  return n;
}
Tensor f32(Shape s, std::vector<float> v) { return make_tensor<float>(std::move(s), v); }
Tensor i64(Shape s, std::vector<int64_t> v) { return make_tensor<int64_t>(std::move(s), v); }
Tensor iota(Shape s) {
  std::vector<float> v(static_cast<size_t>(numel_of(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return f32(std::move(s), v);
}

TEST(OneHot, AxesNegativeIndicesAndErrors) {
  const Tensor values = f32({2}, {0, 5});
  // Default axis -1: [3] -> [3, 4]; -1 counts from the end (opset 11), 7 is out of range.
  const Tensor ind = i64({3}, {1, -1, 7});
  EXPECT_TRUE(tensors_equal(run1(kernels::OneHot, node("OneHot", 3), {ind, i64({}, {4}), values}, 11),
                            f32({3, 4}, {0, 5, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0})));
  // Opset 9: negative indices are out of range.
  EXPECT_TRUE(tensors_equal(run1(kernels::OneHot, node("OneHot", 3), {ind, i64({}, {4}), values}, 9),
                            f32({3, 4}, {0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})));
  // axis 0 with float indices and a float depth: [2] -> [3, 2].
  const Tensor y = run1(kernels::OneHot, node("OneHot", 3, {{"axis", attr_int(0)}}),
                        {f32({2}, {2.7f, 0}), f32({1}, {3.f}), i64({2}, {-1, 1})}, 11);
  EXPECT_TRUE(tensors_equal(y, i64({3, 2}, {-1, 1, -1, -1, 1, -1})));
  const Tensor nan = f32({1}, {std::numeric_limits<float>::quiet_NaN()});
  EXPECT_TRUE(tensors_equal(run1(kernels::OneHot, node("OneHot", 3), {nan, i64({}, {2}), values}, 11), f32({1, 2}, {0, 0})));

  const Node n = node("OneHot", 3);
  EXPECT_HAS(run_error(kernels::OneHot, n, {make_tensor<bool>({1}, {true}), i64({}, {2}), values}), "input 'indices' must be numeric, got bool");
  EXPECT_HAS(run_error(kernels::OneHot, n, {ind, make_tensor<bool>({1}, {true}), values}), "input 'depth' must be numeric, got bool");
  EXPECT_HAS(run_error(kernels::OneHot, n, {ind, i64({2}, {2, 2}), values}), "input 'depth' must hold one value, got shape [2]");
  EXPECT_HAS(run_error(kernels::OneHot, n, {ind, i64({}, {2}), f32({3}, {0, 1, 2})}), "input 'values' must hold two values [off, on], got shape [3]");
  EXPECT_HAS(run_error(kernels::OneHot, n, {ind, i64({}, {0}), values}), "input 'depth' is 0.000000; it must be a positive count");
  EXPECT_HAS(run_error(kernels::OneHot, node("OneHot", 3, {{"axis", attr_int(2)}}), {ind, i64({}, {2}), values}), "axis");
  EXPECT_HAS(run_error(kernels::OneHot, n, {ind, Tensor(), values}), "missing required input 'depth'");
}

TEST(NonZero, CoordinatesScalarEmptyAndErrors) {
  const Tensor x = f32({2, 3}, {0, 1, -0.f, std::numeric_limits<float>::quiet_NaN(), 0, 2});
  EXPECT_TRUE(tensors_equal(run1(kernels::NonZero, node("NonZero", 1), {x}), i64({2, 3}, {0, 1, 1, 1, 0, 2})));
  EXPECT_TRUE(tensors_equal(run1(kernels::NonZero, node("NonZero", 1), {make_tensor<bool>({3}, {false, true, true})}), i64({1, 2}, {1, 2})));
  EXPECT_TRUE(tensors_equal(run1(kernels::NonZero, node("NonZero", 1), {i64({}, {3})}), i64({1, 1}, {0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::NonZero, node("NonZero", 1), {f32({2, 0}, {})}), i64({2, 0}, {})));
  EXPECT_TRUE(tensors_equal(run1(kernels::NonZero, node("NonZero", 1), {f32({2}, {0, 0})}), i64({1, 0}, {})));
  EXPECT_HAS(run_error(kernels::NonZero, node("NonZero", 1), {Tensor()}), "missing required input 'X'");
}

TEST(GatherND, BatchDimsNegativeIndicesAndErrors) {
  const Tensor x = iota({2, 2, 2});
  // k = 2 of rank 3: slices of [2].
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherND, node("GatherND", 2), {x, i64({2, 2}, {0, 1, 1, -2})}),
                            f32({2, 2}, {2, 3, 4, 5})));
  // k = 3: elements.
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherND, node("GatherND", 2), {x, i64({1, 3}, {1, 1, 1})}), f32({1}, {7})));
  // batch_dims 1: per batch entry, indices [1] into [2, 2].
  const Node b1 = node("GatherND", 2, {{"batch_dims", attr_int(1)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherND, b1, {x, i64({2, 1}, {1, 0})}), f32({2, 2}, {2, 3, 4, 5})));
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherND, b1, {x, i64({2, 0, 2}, {})}), f32({2, 0}, {})));

  const Node n = node("GatherND", 2);
  EXPECT_HAS(run_error(kernels::GatherND, n, {x, f32({1}, {0})}), "input 'indices' must be int64 or int32, got float32");
  EXPECT_HAS(run_error(kernels::GatherND, n, {x, i64({}, {0})}), "inputs 'data' [2, 2, 2] and 'indices' [] must both have rank >= 1");
  EXPECT_HAS(run_error(kernels::GatherND, node("GatherND", 2, {{"batch_dims", attr_int(-1)}}), {x, i64({1}, {0})}),
             "attribute 'batch_dims' is -1; it must be >= 0");
  EXPECT_HAS(run_error(kernels::GatherND, node("GatherND", 2, {{"batch_dims", attr_int(2)}}), {x, i64({2, 1}, {0, 0})}),
             "attribute 'batch_dims' is 2; it must be less than the ranks of data [2, 2, 2] and indices [2, 1]");
  EXPECT_HAS(run_error(kernels::GatherND, b1, {x, i64({3, 1}, {0, 0, 0})}), "the first 1 (batch) dims of data [2, 2, 2] and indices [3, 1] differ");
  EXPECT_HAS(run_error(kernels::GatherND, n, {x, i64({1, 4}, {0, 0, 0, 0})}),
             "the last dim of indices [1, 4] is 4; it must be in [1, 3] for data [2, 2, 2] and batch_dims 0");
  EXPECT_HAS(run_error(kernels::GatherND, n, {x, i64({1, 2}, {0, 2})}), "index 2 is out of range for axis 1 of size 2 (data shape [2, 2, 2])");
  EXPECT_HAS(run_error(kernels::GatherND, n, {x, i64({1, 2}, {-3, 0})}), "index -3 is out of range for axis 0 of size 2");
}

TEST(ScatterND, ReductionsAndErrors) {
  const Tensor x = f32({4}, {1, 2, 3, 4});
  const Tensor ind = i64({3, 1}, {1, 3, 1});
  const Tensor upd = f32({3}, {10, 20, 30});
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, node("ScatterND", 3), {x, ind, upd}), f32({4}, {1, 30, 3, 20})));
  auto red = [](const char* r) { return node("ScatterND", 3, {{"reduction", attr_string(r)}}); };
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, red("add"), {x, ind, upd}, 16), f32({4}, {1, 42, 3, 24})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, red("mul"), {x, ind, upd}, 16), f32({4}, {1, 600, 3, 80})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, red("max"), {x, i64({2, 1}, {-4, 2}), f32({2}, {0, 9})}, 18), f32({4}, {1, 2, 9, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, red("min"), {x, i64({2, 1}, {0, 2}), f32({2}, {0, 9})}, 18), f32({4}, {0, 2, 3, 4})));
  // Slices (k = 1 of rank 2), integers wrapping on overflow, k = 0 (whole tensor).
  const Tensor m = i64({2, 2}, {1, 2, 3, std::numeric_limits<int64_t>::max()});
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, red("add"), {m, i64({1, 1}, {1}), i64({1, 2}, {1, 1})}, 16),
                            i64({2, 2}, {1, 2, 4, std::numeric_limits<int64_t>::min()})));
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterND, node("ScatterND", 3), {m, i64({0}, {}), i64({2, 2}, {5, 6, 7, 8})}), i64({2, 2}, {5, 6, 7, 8})));
  // float16 through float.
  Tensor h = Tensor::allocate(DType::kFloat16, {1});
  h.mutable_data<uint16_t>()[0] = float_to_half(1.5f);
  const Tensor hy = run1(kernels::ScatterND, red("add"), {h, i64({1, 1}, {0}), h}, 16);
  EXPECT_EQ(half_to_float(hy.data<uint16_t>()[0]), 3.f);

  EXPECT_HAS(run_error(kernels::ScatterND, node("ScatterND", 3), {x, ind, i64({3}, {1, 2, 3})}), "input 'updates' has dtype int64; it must be the data's, float32");
  EXPECT_HAS(run_error(kernels::ScatterND, red("add"), {make_tensor<bool>({1}, {true}), i64({1, 1}, {0}), make_tensor<bool>({1}, {false})}, 16),
             "reduction 'add' needs numeric data, got bool");
  EXPECT_HAS(run_error(kernels::ScatterND, red("max"), {x, ind, upd}, 16), "attribute 'reduction' is 'max'; expected none, add or mul (max and min need opset 18)");
  EXPECT_HAS(run_error(kernels::ScatterND, red("add"), {x, ind, upd}, 13), "attribute 'reduction' is 'add'; expected none (add and mul need opset 16)");
  EXPECT_HAS(run_error(kernels::ScatterND, red("sum"), {x, ind, upd}, 18), "attribute 'reduction' is 'sum'; expected none, add, mul, max or min");
  EXPECT_HAS(run_error(kernels::ScatterND, node("ScatterND", 3), {x, i64({}, {0}), upd}), "must both have rank >= 1");
  EXPECT_HAS(run_error(kernels::ScatterND, node("ScatterND", 3), {x, i64({1, 2}, {0, 0}), upd}),
             "the last dim of indices [1, 2] is 2; it must be at most the rank of data [4]");
  EXPECT_HAS(run_error(kernels::ScatterND, node("ScatterND", 3), {x, ind, f32({2}, {1, 2})}),
             "input 'updates' has shape [2]; expected [3] for data [4] and indices [3, 1]");
  EXPECT_HAS(run_error(kernels::ScatterND, node("ScatterND", 3), {x, i64({1, 1}, {4}), f32({1}, {0})}), "index 4 is out of range for axis 0 of size 4");
}

TEST(GatherElements, AxesAndErrors) {
  const Tensor x = iota({2, 3});
  const Node a1 = node("GatherElements", 2, {{"axis", attr_int(1)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherElements, a1, {x, i64({2, 2}, {2, 0, -1, 1})}), f32({2, 2}, {2, 0, 5, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherElements, node("GatherElements", 2), {x, i64({3, 1}, {1, 0, 1})}), f32({3, 1}, {3, 0, 3})));
  EXPECT_TRUE(tensors_equal(run1(kernels::GatherElements, a1, {x, i64({2, 0}, {})}), f32({2, 0}, {})));

  EXPECT_HAS(run_error(kernels::GatherElements, a1, {f32({}, {1}), i64({}, {0})}), "input 'data' must have rank >= 1, got a scalar");
  EXPECT_HAS(run_error(kernels::GatherElements, a1, {x, i64({2}, {0, 0})}), "input 'indices' [2] must have the rank of data [2, 3]");
  EXPECT_HAS(run_error(kernels::GatherElements, node("GatherElements", 2, {{"axis", attr_int(2)}}), {x, i64({1, 1}, {0})}), "axis");
  EXPECT_HAS(run_error(kernels::GatherElements, a1, {x, i64({3, 1}, {0, 0, 0})}), "input 'indices' [3, 1] is larger than data [2, 3] on axis 0");
  EXPECT_HAS(run_error(kernels::GatherElements, a1, {x, i64({1, 1}, {3})}), "index 3 is out of range for axis 1 of size 3 (data shape [2, 3])");
}

TEST(ScatterElements, ReductionsScatterAliasAndErrors) {
  const Tensor x = f32({2, 2}, {1, 2, 3, 4});
  const Node a1 = node("ScatterElements", 3, {{"axis", attr_int(1)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterElements, a1, {x, i64({2, 1}, {1, -2}), f32({2, 1}, {9, 8})}), f32({2, 2}, {1, 9, 8, 4})));
  // Duplicates: the last wins (none) or they combine.
  const Tensor dup = i64({1, 2}, {0, 0});
  const Tensor u = f32({1, 2}, {5, 6});
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterElements, a1, {x, dup, u}), f32({2, 2}, {6, 2, 3, 4})));
  Node add = a1;
  add.attrs["reduction"] = attr_string("add");
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterElements, add, {x, dup, u}, 16), f32({2, 2}, {12, 2, 3, 4})));
  add.attrs["reduction"] = attr_string("min");
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterElements, add, {x, dup, u}, 18), f32({2, 2}, {1, 2, 3, 4})));
  // Scatter (opset 9-10) is the same op; axis 0 by default.
  EXPECT_TRUE(tensors_equal(run1(kernels::ScatterElements, node("Scatter", 3), {x, i64({1, 2}, {1, 0}), u}, 9), f32({2, 2}, {1, 6, 5, 4})));
  EXPECT_HAS(run_error(kernels::ScatterElements, a1, {x, dup, f32({2, 1}, {1, 2})}), "input 'updates' has shape [2, 1]; it must be the indices', [1, 2]");
  EXPECT_HAS(run_error(kernels::ScatterElements, a1, {x, dup, i64({1, 2}, {1, 2})}), "input 'updates' has dtype int64; it must be the data's, float32");
  EXPECT_HAS(run_error(kernels::ScatterElements, a1, {x, i64({1, 1}, {-3}), f32({1, 1}, {1})}), "index -3 is out of range for axis 1 of size 2");
  EXPECT_HAS(run_error(kernels::ScatterElements, a1, {x, Tensor(), u}), "missing required input 'indices'");
}

TEST(Tile, RepeatsScalarEmptyAndErrors) {
  const Tensor x = f32({2, 2}, {1, 2, 3, 4});
  EXPECT_TRUE(tensors_equal(run1(kernels::Tile, node("Tile", 2), {x, i64({2}, {2, 2})}),
                            f32({4, 4}, {1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Tile, node("Tile", 2), {x, i64({2}, {1, 3})}), f32({2, 6}, {1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Tile, node("Tile", 2), {x, i64({2}, {0, 3})}), f32({0, 6}, {})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Tile, node("Tile", 2), {f32({}, {7}), i64({0}, {})}), f32({}, {7})));
  EXPECT_HAS(run_error(kernels::Tile, node("Tile", 2), {x, i64({1}, {2})}), "input 'repeats' [2] must hold one value per axis of input [2, 2]");
  EXPECT_HAS(run_error(kernels::Tile, node("Tile", 2), {x, i64({2}, {1, -1})}), "input 'repeats' [1, -1] has a negative value");
  EXPECT_HAS(run_error(kernels::Tile, node("Tile", 2), {x, i64({2}, {1, std::numeric_limits<int64_t>::max()})}), "too large");
  EXPECT_HAS(run_error(kernels::Tile, node("Tile", 2), {x, f32({2}, {1, 1})}), "input 'repeats' must be int64 or int32, got float32");
}

TEST(Trilu, UpperLowerKAndErrors) {
  const Tensor x = iota({3, 3});
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, node("Trilu", 1), {x}, 14), f32({3, 3}, {0, 1, 2, 0, 4, 5, 0, 0, 8})));
  const Node lower = node("Trilu", 2, {{"upper", attr_int(0)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, lower, {x, i64({}, {-1})}, 14), f32({3, 3}, {0, 0, 0, 3, 0, 0, 6, 7, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, node("Trilu", 2), {x, i64({}, {1})}, 14), f32({3, 3}, {0, 1, 2, 0, 0, 5, 0, 0, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, node("Trilu", 2), {x, i64({}, {-9})}, 14), x));
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, lower, {x, i64({}, {std::numeric_limits<int64_t>::min()})}, 14), f32({3, 3}, std::vector<float>(9, 0))));
  EXPECT_TRUE(tensors_equal(run1(kernels::Trilu, lower, {iota({2, 1, 2}), i64({}, {std::numeric_limits<int64_t>::max()})}, 14), iota({2, 1, 2})));
  EXPECT_HAS(run_error(kernels::Trilu, node("Trilu", 1), {f32({2}, {1, 2})}, 14), "input [2] must have rank >= 2");
  EXPECT_HAS(run_error(kernels::Trilu, node("Trilu", 2), {x, i64({2}, {1, 2})}, 14), "input 'k' must hold one value, got shape [2]");
  EXPECT_HAS(run_error(kernels::Trilu, node("Trilu", 2), {x, f32({}, {1})}, 14), "input 'k' must be int64 or int32, got float32");
  EXPECT_HAS(run_error(kernels::EyeLike, node("EyeLike", 1), {Tensor()}), "missing required input 'input'");
  EXPECT_HAS(run_error(kernels::Trilu, node("Trilu", 1, {{"upper", attr_int(2)}}), {x}, 14), "upper");
}

TEST(EyeLike, DiagonalsDtypesAndErrors) {
  const Tensor x = f32({2, 3}, {9, 9, 9, 9, 9, 9});
  EXPECT_TRUE(tensors_equal(run1(kernels::EyeLike, node("EyeLike", 1), {x}), f32({2, 3}, {1, 0, 0, 0, 1, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::EyeLike, node("EyeLike", 1, {{"k", attr_int(1)}, {"dtype", attr_int(7)}}), {x}),
                            i64({2, 3}, {0, 1, 0, 0, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::EyeLike, node("EyeLike", 1, {{"k", attr_int(-1)}}), {x}), f32({2, 3}, {0, 0, 0, 1, 0, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::EyeLike, node("EyeLike", 1, {{"k", attr_int(3)}}), {x}), f32({2, 3}, {0, 0, 0, 0, 0, 0})));
  EXPECT_TRUE(tensors_equal(run1(kernels::EyeLike, node("EyeLike", 1, {{"dtype", attr_int(9)}}), {x}), make_tensor<bool>({2, 3}, {true, false, false, false, true, false})));
  EXPECT_HAS(run_error(kernels::EyeLike, node("EyeLike", 1), {f32({3}, {1, 2, 3})}), "input [3] must be 2-D");
  EXPECT_HAS(run_error(kernels::EyeLike, node("EyeLike", 1, {{"dtype", attr_int(8)}}), {x}), "attribute 'dtype' is 8, not a supported tensor dtype");
  EXPECT_HAS(run_error(kernels::EyeLike, node("EyeLike", 1, {{"dtype", attr_int(99)}}), {x}), "attribute 'dtype' is 99, not a supported tensor dtype");
}

TEST(DepthToSpace, ModesSpaceToDepthRoundTripAndErrors) {
  const Tensor x = iota({1, 4, 1, 2});
  // DCR: depth channel (i*2 + j)*1 + 0 -> space (h*2 + i, w*2 + j).
  const Node dcr = node("DepthToSpace", 1, {{"blocksize", attr_int(2)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::DepthToSpace, dcr, {x}), f32({1, 1, 2, 4}, {0, 2, 1, 3, 4, 6, 5, 7})));
  Node crd = dcr;
  crd.attrs["mode"] = attr_string("CRD");
  const Tensor x2 = iota({1, 8, 1, 1});
  EXPECT_TRUE(tensors_equal(run1(kernels::DepthToSpace, crd, {x2}), f32({1, 2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7})));
  EXPECT_TRUE(tensors_equal(run1(kernels::DepthToSpace, dcr, {x2}), f32({1, 2, 2, 2}, {0, 2, 4, 6, 1, 3, 5, 7})));
  const Node s2d = node("SpaceToDepth", 1, {{"blocksize", attr_int(2)}});
  const Tensor space = iota({2, 3, 4, 6});
  EXPECT_TRUE(tensors_equal(run1(kernels::DepthToSpace, dcr, {run1(kernels::SpaceToDepth, s2d, {space})}), space));
  EXPECT_EQ(run1(kernels::SpaceToDepth, s2d, {space}).shape(), (Shape{2, 12, 2, 3}));

  EXPECT_HAS(run_error(kernels::DepthToSpace, node("DepthToSpace", 1), {x}), "missing required attribute 'blocksize'");
  EXPECT_HAS(run_error(kernels::DepthToSpace, node("DepthToSpace", 1, {{"blocksize", attr_int(0)}}), {x}), "attribute 'blocksize' is 0; it must be positive");
  Node bad = dcr;
  bad.attrs["mode"] = attr_string("RCD");
  EXPECT_HAS(run_error(kernels::DepthToSpace, bad, {x}), "attribute 'mode' is 'RCD'; expected DCR or CRD");
  EXPECT_HAS(run_error(kernels::DepthToSpace, dcr, {iota({4, 1, 2})}), "input [4, 1, 2] must be 4-D [N, C, H, W]");
  EXPECT_HAS(run_error(kernels::DepthToSpace, dcr, {iota({1, 6, 1, 1})}), "channels of input [1, 6, 1, 1] are not a multiple of blocksize^2 = 4");
  EXPECT_HAS(run_error(kernels::DepthToSpace, dcr, {f32({1, 0, 1LL << 62, 1}, {})}), "blocksize 2 makes input [1, 0, 4611686018427387904, 1] too large");
  EXPECT_HAS(run_error(kernels::SpaceToDepth, s2d, {iota({1, 1, 3, 2})}), "height and width of input [1, 1, 3, 2] are not multiples of blocksize 2");
  EXPECT_HAS(run_error(kernels::SpaceToDepth, node("SpaceToDepth", 1, {{"blocksize", attr_int(int64_t{1} << 31)}}), {f32({1, 2, 0, 0}, {})}),
             "blocksize 2147483648 makes input [1, 2, 0, 0] too large");
  Node s2d_mode = s2d;
  s2d_mode.attrs["mode"] = attr_string("DCR");
  EXPECT_HAS(run_error(kernels::SpaceToDepth, s2d_mode, {space}), "SpaceToDepth has no attribute 'mode'");
}

TEST(Compress, AxesShortConditionAndErrors) {
  const Tensor x = iota({3, 2});
  const Tensor c = make_tensor<bool>({3}, {false, true, true});
  EXPECT_TRUE(tensors_equal(run1(kernels::Compress, node("Compress", 2, {{"axis", attr_int(0)}}), {x, c}), f32({2, 2}, {2, 3, 4, 5})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Compress, node("Compress", 2, {{"axis", attr_int(-1)}}), {x, make_tensor<bool>({1}, {true})}), f32({3, 1}, {0, 2, 4})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Compress, node("Compress", 2), {x, c}), f32({2}, {1, 2})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Compress, node("Compress", 2), {x, make_tensor<bool>({8}, {false, false, false, false, false, true, false, false})}), f32({1}, {5})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Compress, node("Compress", 2), {x, make_tensor<bool>({0}, {})}), f32({0}, {})));
  EXPECT_HAS(run_error(kernels::Compress, node("Compress", 2), {x, i64({3}, {0, 1, 1})}), "input 'condition' must be bool, got int64");
  EXPECT_HAS(run_error(kernels::Compress, node("Compress", 2), {x, make_tensor<bool>({1, 1}, {true})}), "input 'condition' must be 1-D, got shape [1, 1]");
  EXPECT_HAS(run_error(kernels::Compress, node("Compress", 2, {{"axis", attr_int(1)}}), {x, c}),
             "input 'condition' is true at 2, past the 2 slices of input [3, 2]");
  EXPECT_HAS(run_error(kernels::Compress, node("Compress", 2, {{"axis", attr_int(2)}}), {x, c}), "axis");
  EXPECT_HAS(run_error(kernels::Compress, node("Compress", 2), {x, Tensor()}), "missing required input 'condition'");
}

TEST(ReverseSequence, AxesAndErrors) {
  const Tensor x = iota({3, 2});  // [time 3, batch 2]
  EXPECT_TRUE(tensors_equal(run1(kernels::ReverseSequence, node("ReverseSequence", 2), {x, i64({2}, {3, 2})}, 10),
                            f32({3, 2}, {4, 3, 2, 1, 0, 5})));
  const Node bt = node("ReverseSequence", 2, {{"batch_axis", attr_int(0)}, {"time_axis", attr_int(1)}});
  EXPECT_TRUE(tensors_equal(run1(kernels::ReverseSequence, bt, {iota({2, 3, 1}), i64({2}, {0, 2})}, 10), f32({2, 3, 1}, {0, 1, 2, 4, 3, 5})));
  EXPECT_HAS(run_error(kernels::ReverseSequence, node("ReverseSequence", 2, {{"time_axis", attr_int(1)}}), {x, i64({2}, {1, 1})}, 10),
             "attributes 'time_axis' 1 and 'batch_axis' 1 must be 0 and 1 in some order");
  EXPECT_HAS(run_error(kernels::ReverseSequence, node("ReverseSequence", 2), {f32({2}, {1, 2}), i64({2}, {1, 1})}, 10), "input [2] must have rank >= 2");
  EXPECT_HAS(run_error(kernels::ReverseSequence, node("ReverseSequence", 2), {x, i64({3}, {1, 1, 1})}, 10),
             "input 'sequence_lens' [3] must be [2] (the batch size of input [3, 2])");
  EXPECT_HAS(run_error(kernels::ReverseSequence, node("ReverseSequence", 2), {x, i64({2}, {1, 4})}, 10), "sequence_lens[1] is 4; it must be in [0, 3]");
}

TEST(Unique, SortedUnsortedAxisAndErrors) {
  const Node n = node("Unique", 1, {{"sorted", attr_int(0)}}, 4);
  const Tensor x = f32({6}, {2, 1, 1, 3, 4, 3});
  auto r = test::run_kernel(kernels::Unique, n, {x}, 11);
  ASSERT_TRUE(r.has_value()) << r.status().message();
  EXPECT_TRUE(tensors_equal((*r)[0], f32({4}, {2, 1, 3, 4})));
  EXPECT_TRUE(tensors_equal((*r)[1], i64({4}, {0, 1, 3, 4})));
  EXPECT_TRUE(tensors_equal((*r)[2], i64({6}, {0, 1, 1, 2, 3, 2})));
  EXPECT_TRUE(tensors_equal((*r)[3], i64({4}, {1, 2, 2, 1})));
  auto s = test::run_kernel(kernels::Unique, node("Unique", 1, 4), {x}, 11);
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(tensors_equal((*s)[0], f32({4}, {1, 2, 3, 4})));
  EXPECT_TRUE(tensors_equal((*s)[1], i64({4}, {1, 0, 3, 4})));
  EXPECT_TRUE(tensors_equal((*s)[2], i64({6}, {1, 0, 0, 2, 3, 2})));
  EXPECT_TRUE(tensors_equal((*s)[3], i64({4}, {2, 1, 2, 1})));
  // Rows along axis 0 of int64 data; NaN groups with NaN (float64).
  const Tensor m = i64({3, 2}, {1, 0, 0, 1, 1, 0});
  EXPECT_TRUE(tensors_equal(run1(kernels::Unique, node("Unique", 1, {{"axis", attr_int(-2)}}), {m}, 11), i64({2, 2}, {0, 1, 1, 0})));
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const Tensor d = run1(kernels::Unique, node("Unique", 1), {make_tensor<double>({3}, {nan, 1, nan})}, 11);
  ASSERT_EQ(d.numel(), 2);
  EXPECT_EQ(d.data<double>()[0], 1.0);
  EXPECT_TRUE(std::isnan(d.data<double>()[1]));
  EXPECT_TRUE(tensors_equal(run1(kernels::Unique, node("Unique", 1), {f32({0}, {})}, 11), f32({0}, {})));

  EXPECT_HAS(run_error(kernels::Unique, node("Unique", 1, {{"sorted", attr_int(2)}}), {x}, 11), "sorted");
  EXPECT_HAS(run_error(kernels::Unique, node("Unique", 1, {{"axis", attr_int(1)}}), {x}, 11), "axis");
  EXPECT_HAS(run_error(kernels::Unique, node("Unique", 1), {Tensor::allocate(DType::kFloat16, {2})}, 11),
             "input 'X' has dtype float16; Unique supports float32, float64, bool and the integer dtypes");
}

// NonZero, Compress and Unique in a session: their output sizes change with
// the values between runs of the same input shape; the planned run that
// meets a larger output serves it from the heap (a plan miss) and is right.
TEST(NonZero, DataDependentShapesInASession) {
  auto m = std::make_shared<Model>();
  m->path = "nonzero.onnx";
  Graph& g = m->graph;
  g.opset = 13;
  const int x = test::add_input(g, "x");
  const int r = test::add_node(g, "Relu", "", {x}, "r");
  const int nz = test::add_node(g, "NonZero", "", {r}, "nz");
  const int u = test::add_node(g, "Unique", "", {r}, "u");
  g.outputs = {nz, u};
  auto s = test::session_on(m, SessionOptions{});
  ASSERT_TRUE(s);
  const std::vector<std::vector<float>> runs = {{0, -1, 2, 0, 0, 0}, {1, 2, 3, 4, 5, 6}, {0, 0, 0, 0, 0, 0}, {1, 2, 3, 4, 5, 6}};
  for (const auto& v : runs) {
    std::vector<NamedTensor> out;
    ASSERT_TRUE(s->run({{"x", f32({2, 3}, v)}}, &out).is_ok());
    ASSERT_EQ(out.size(), 2u);
    std::vector<int64_t> rows, cols;
    std::vector<float> uniq;
    for (size_t i = 0; i < v.size(); ++i)
      if (v[i] > 0) rows.push_back(static_cast<int64_t>(i / 3)), cols.push_back(static_cast<int64_t>(i % 3));
    for (float f : v) uniq.push_back(std::max(f, 0.f));
    std::sort(uniq.begin(), uniq.end());
    uniq.erase(std::unique(uniq.begin(), uniq.end()), uniq.end());
    rows.insert(rows.end(), cols.begin(), cols.end());
    EXPECT_TRUE(tensors_equal(out[0].tensor, i64({2, static_cast<int64_t>(cols.size())}, rows)));
    EXPECT_TRUE(tensors_equal(out[1].tensor, f32({static_cast<int64_t>(uniq.size())}, uniq)));
  }
}

}  // namespace
}  // namespace sarai
