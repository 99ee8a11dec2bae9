// Attribute values checked once per node (the ops' PrepareFn, issue 14):
// Session::create refuses a bad one in one line naming the node, before any
// run; good ones still run.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_ints;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

// x (float32 [2, 4], or no input for ops without inputs), then `inits` as
// initializers -> `op` with `nout` outputs y, y1, ... at `opset`.
std::shared_ptr<Model> model_of(const std::string& op, std::map<std::string, Attribute> attrs, int64_t opset,
                                int nout = 1, const std::string& domain = "", std::vector<Tensor> inits = {}) {
  auto m = std::make_shared<Model>();
  m->path = "prepared.onnx";
  Graph& g = m->graph;
  g.opset = opset;
  std::vector<int> in;
  if (op != "Constant") {
    const int x = test::add_input(g, "x");
    in = {x, x, x};
    in.resize(op == "Attention" ? 3 : op == "Gemm" ? 2 : 1);
    for (size_t i = 0; i < inits.size(); ++i)
      in.push_back(test::add_init(g, test::numbered("c", i), std::move(inits[i])));
  }
  g.outputs = {test::add_node(g, op, domain, in, "y", std::move(attrs))};
  Node& n = g.nodes.back();
  for (int i = 1; i < nout; ++i) {
    const int o = g.add_value(test::numbered("y", static_cast<size_t>(i)));
    g.values[static_cast<size_t>(o)].producer = 0;
    n.outputs.push_back(o);
    g.outputs.push_back(o);
  }
  return m;
}

using test::create_session;

// The one-line message of a Session::create that must fail.
std::string refusal(const std::string& op, std::map<std::string, Attribute> attrs, int64_t opset, int nout = 1,
                    const std::string& domain = "", std::vector<Tensor> inits = {}) {
  auto s = create_session(model_of(op, std::move(attrs), opset, nout, domain, std::move(inits)));
  EXPECT_FALSE(s) << op << ": the session was created";
  if (s) return "";
  const std::string msg = s.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind("prepared.onnx: node 'y_node' (" + op + "): ", 0), 0u) << msg;
  return msg;
}

// The input every model gets as x.
Tensor x_value() { return test::random_tensor({2, 4}, 1); }

// Runs m on x; `st` gets the run's status.
std::vector<NamedTensor> run_with_status(const std::shared_ptr<Model>& m, Status* st) {
  auto s = create_session(m);
  EXPECT_TRUE(s) << s.status().message();
  std::vector<NamedTensor> out;
  if (!s) return out;
  std::vector<NamedTensor> in;
  if (!m->graph.inputs.empty()) in.push_back({"x", x_value()});
  *st = (*s)->run(in, &out);
  return out;
}

std::vector<NamedTensor> run(const std::shared_ptr<Model>& m) {
  Status st = Status::ok();
  auto out = run_with_status(m, &st);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return out;
}

// The message of a run that must fail although the session was created: the
// checks that depend on the input's rank stay in the kernel.
std::string run_refusal(const std::shared_ptr<Model>& m) {
  Status st = Status::ok();
  run_with_status(m, &st);
  EXPECT_FALSE(st.is_ok()) << "the run succeeded";
  return st.message();
}

// x mapped elementwise by fn, for the expected outputs.
template <class Fn> Tensor map_x(Fn fn) {
  Tensor t = x_value();
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data<float>()[i] = fn(t.data<float>()[i]);
  return t;
}

TEST(PreparedAttrs, TransposePermMustBeAPermutation) {
  EXPECT_HAS(refusal("Transpose", {{"perm", attr_ints({0, 0})}}, 13), "perm [0, 0] is not a permutation of 0..1");
  EXPECT_HAS(refusal("Transpose", {{"perm", attr_ints({1, 2})}}, 13), "perm [1, 2] is not a permutation of 0..1");
  const auto out = run(model_of("Transpose", {{"perm", attr_ints({1, 0})}}, 13));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{4, 2}));
}

TEST(PreparedAttrs, SplitSizesAndNumOutputs) {
  EXPECT_HAS(refusal("Split", {{"axis", attr_int(1)}, {"split", attr_ints({5, -1})}}, 11, 2),
             "split [5, -1] has a negative size");
  EXPECT_HAS(refusal("Split", {{"split", attr_ints({kMax, 1})}}, 11, 2),
             "split [9223372036854775807, 1] sums past int64");
  EXPECT_HAS(refusal("Split", {{"split", attr_ints({4})}}, 11, 2), "split [4] has 1 entries but the node has 2 outputs");
  EXPECT_HAS(refusal("Split", {{"num_outputs", attr_int(3)}}, 18, 2), "num_outputs 3 does not match the node's 2 outputs");
  const auto out = run(model_of("Split", {{"axis", attr_int(1)}, {"split", attr_ints({1, 3})}}, 11, 2));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].tensor.shape(), (Shape{2, 3}));
}

TEST(PreparedAttrs, SliceAttributeForm) {
  EXPECT_HAS(refusal("Slice", {{"starts", attr_ints({0})}}, 9), "missing required attribute 'starts' or 'ends'");
  EXPECT_HAS(refusal("Slice", {{"starts", attr_ints({0})}, {"ends", attr_ints({1, 2})}}, 9),
             "starts [0], ends [1, 2] must have the same length");
  const auto out = run(model_of("Slice", {{"starts", attr_ints({1})}, {"ends", attr_ints({3})}, {"axes", attr_ints({1})}}, 9));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2, 2}));
}

TEST(PreparedAttrs, SqueezeUnsqueezeAxesWithoutRepeats) {
  EXPECT_HAS(refusal("Squeeze", {{"axes", attr_ints({0, 0})}}, 11), "axes [0, 0] name axis 0 more than once");
  EXPECT_HAS(refusal("Unsqueeze", {{"axes", attr_ints({1, 0, 1})}}, 11), "axes [1, 0, 1] name axis 1 more than once");
  const auto out = run(model_of("Unsqueeze", {{"axes", attr_ints({0, 3})}}, 11));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{1, 2, 4, 1}));
}

TEST(PreparedAttrs, CastTargetAndSaturate) {
  EXPECT_HAS(refusal("Cast", {}, 13), "missing required attribute 'to'");
  EXPECT_HAS(refusal("Cast", {{"to", attr_int(8)}}, 13), "target type 'to' = 8 (STRING) is not supported");
  EXPECT_HAS(refusal("Cast", {{"to", attr_int(int64_t{1} << 32 | 1)}}, 13), "is not supported");
  EXPECT_HAS(refusal("Cast", {{"to", attr_int(7)}, {"saturate", attr_int(2)}}, 19),
             "attribute 'saturate' must be 0 or 1, got 2");
  const auto out = run(model_of("Cast", {{"to", attr_int(7)}}, 13));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.dtype(), DType::kInt64);
}

TEST(PreparedAttrs, ConstantHasExactlyOneValue) {
  EXPECT_HAS(refusal("Constant", {}, 13),
             "has none of the attributes value, value_float, value_floats, value_int, value_ints");
  EXPECT_HAS(refusal("Constant", {{"value_int", attr_int(1)}, {"value_float", attr_float(2.f)}}, 13),
             "has 2 of the attributes value, value_float, value_floats, value_int, value_ints (exactly one is allowed)");
  EXPECT_HAS(refusal("Constant", {{"value_string", test::attr_string("a")}}, 13), "attribute 'value_string' is unsupported");
  for (int i = 0; i < 2; ++i) {  // decoded once, the same value every run
    const auto out = run(model_of("Constant", {{"value_ints", attr_ints({3, -1, kMax})}}, 13));
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(test::tensors_equal(out[0].tensor, test::make_tensor<int64_t>({3}, {3, -1, kMax})));
  }
}

TEST(PreparedAttrs, ConstantOfShapeValueHasOneElement) {
  EXPECT_HAS(refusal("ConstantOfShape", {{"value", test::attr_tensor(test::make_tensor<float>({2}, {1.f, 2.f}))}}, 13),
             "attribute 'value' must be a one-element tensor, got shape [2]");
}

TEST(PreparedAttrs, GemmTransposeFlags) {
  EXPECT_HAS(refusal("Gemm", {{"transA", attr_int(2)}}, 13), "attribute 'transA' must be 0 or 1, got 2");
  EXPECT_HAS(refusal("Gemm", {{"transB", attr_int(-1)}}, 13), "attribute 'transB' must be 0 or 1, got -1");
  const auto out = run(model_of("Gemm", {{"transB", attr_int(1)}}, 13));  // x [2, 4] * x^T
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2, 2}));
}

TEST(PreparedAttrs, DivisorIsFiniteAndNonZero) {
  EXPECT_HAS(refusal("ScaledSoftmax", {{"divisor", attr_float(0.f)}}, 17, 1, "sarai"),
             "attribute 'divisor' must be finite and non-zero, got 0");
  EXPECT_HAS(refusal("Attention", {{"divisor", attr_float(std::numeric_limits<float>::quiet_NaN())}}, 17, 1, "sarai"),
             "attribute 'divisor' must be finite and non-zero, got nan");
  EXPECT_HAS(refusal("ScaledSoftmax", {}, 17, 1, "sarai"), "attribute 'divisor' is missing");
  const auto out = run(model_of("ScaledSoftmax", {{"divisor", attr_float(2.f)}}, 17, 1, "sarai"));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2, 4}));
}

TEST(PreparedAttrs, ClipAndHardSigmoidReadTheirFloatsOnce) {
  // Any float is valid (min > max is defined), so nothing is refused; the
  // prepared values are the ones applied.
  auto out = run(model_of("Clip", {{"min", attr_float(-0.25f)}, {"max", attr_float(0.5f)}}, 6));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(out[0].tensor, map_x([](float v) { return std::min(std::max(v, -0.25f), 0.5f); })));
  out = run(model_of("HardSigmoid", {{"alpha", attr_float(0.5f)}, {"beta", attr_float(0.25f)}}, 6));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(test::tensors_near(out[0].tensor,
                                 map_x([](float v) { return std::min(std::max(0.5f * v + 0.25f, 0.f), 1.f); }),
                                 1e-6, 1e-6));
}

TEST(PreparedAttrs, SoftmaxAndScaledSoftmaxAxis) {
  // The axis's range depends on the input's rank: refused by the run.
  EXPECT_HAS(run_refusal(model_of("Softmax", {{"axis", attr_int(2)}}, 13)),
             "attribute 'axis' 2 is out of range for rank 2");
  // ScaledSoftmax normalizes the last axis only; another axis is no longer ignored.
  EXPECT_HAS(run_refusal(model_of("ScaledSoftmax", {{"divisor", attr_float(2.f)}, {"axis", attr_int(0)}}, 17, 1, "sarai")),
             "attribute 'axis' 0 is not supported for input of shape [2, 4] (ScaledSoftmax normalizes the last axis)");
  const auto last = run(model_of("ScaledSoftmax", {{"divisor", attr_float(2.f)}, {"axis", attr_int(1)}}, 17, 1, "sarai"));
  const auto cols = run(model_of("Softmax", {{"axis", attr_int(0)}}, 13));
  ASSERT_EQ(last.size(), 1u);
  ASSERT_EQ(cols.size(), 1u);
  for (int64_t j = 0; j < 4; ++j)  // axis 0: each column sums to 1
    EXPECT_NEAR(cols[0].tensor.data<float>()[j] + cols[0].tensor.data<float>()[4 + j], 1.f, 1e-6f);
}

TEST(PreparedAttrs, LayerNormalizationStashTypeWithStatistics) {
  const Tensor scale = test::make_tensor<float>({4}, {1, 1, 1, 1});
  EXPECT_HAS(refusal("LayerNormalization", {{"stash_type", attr_int(0)}}, 17, 2, "", {scale}),
             "attribute 'stash_type' 0 is not supported for the Mean/InvStdDev outputs (only 1, float32)");
  // Without Mean/InvStdDev the computation is float32 whatever stash_type says.
  const auto out = run(model_of("LayerNormalization", {{"stash_type", attr_int(0)}, {"epsilon", attr_float(1e-3f)}},
                                17, 1, "", {scale}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NEAR(out[0].tensor.data<float>()[0] + out[0].tensor.data<float>()[1] + out[0].tensor.data<float>()[2] +
                  out[0].tensor.data<float>()[3],
              0.f, 1e-5f);
}

TEST(PreparedAttrs, BatchNormalizationInferenceOnly) {
  const Tensor c4 = test::make_tensor<float>({4}, {0, 0, 0, 0}), ones = test::make_tensor<float>({4}, {1, 1, 1, 1});
  const std::vector<Tensor> params = {ones, c4, c4, ones};  // scale, B, mean, var
  EXPECT_HAS(refusal("BatchNormalization", {{"training_mode", attr_int(1)}}, 15, 1, "", params),
             "attribute 'training_mode' = 1 is not supported: only inference (training_mode = 0) is implemented");
  EXPECT_HAS(refusal("BatchNormalization", {}, 9, 3, "", params),
             "output 1 (running/saved statistics) is only produced in training mode");
  const auto out = run(model_of("BatchNormalization", {{"training_mode", attr_int(0)}, {"epsilon", attr_float(3.f)}},
                                15, 1, "", params));
  ASSERT_EQ(out.size(), 1u);  // x / sqrt(1 + 3)
  EXPECT_TRUE(test::tensors_near(out[0].tensor, map_x([](float v) { return v / 2.f; }), 1e-6, 1e-6));
}

TEST(PreparedAttrs, ReduceMeanAxesAndFlags) {
  EXPECT_HAS(refusal("ReduceMean", {{"axes", attr_ints({1, 0, 1})}}, 13), "axes [1, 0, 1] name axis 1 twice");
  EXPECT_HAS(refusal("ReduceMean", {{"keepdims", attr_int(2)}}, 13), "attribute 'keepdims' must be 0 or 1, got 2");
  EXPECT_HAS(refusal("ReduceMean", {{"noop_with_empty_axes", attr_int(-1)}}, 18),
             "attribute 'noop_with_empty_axes' must be 0 or 1, got -1");
  // -1 and 1 name the same axis only at rank 2: refused by the run.
  EXPECT_HAS(run_refusal(model_of("ReduceMean", {{"axes", attr_ints({-1, 1})}}, 13)), "axes [-1, 1] name axis 1 twice");
  auto out = run(model_of("ReduceMean", {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}, 13));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2}));
  out = run(model_of("ReduceMean", {{"noop_with_empty_axes", attr_int(1)}}, 18));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(out[0].tensor, x_value()));
}

TEST(PreparedAttrs, ConcatNeedsAxisGatherAndFlattenCheckItPerRun) {
  EXPECT_HAS(refusal("Concat", {}, 13), "missing required attribute 'axis'");
  auto out = run(model_of("Concat", {{"axis", attr_int(-1)}}, 13, 1, "", {Tensor::allocate(DType::kFloat32, {2, 3})}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2, 7}));
  EXPECT_HAS(run_refusal(model_of("Gather", {{"axis", attr_int(2)}}, 13, 1, "", {test::make_tensor<int64_t>({1}, {0})})),
             "axis 2 is out of range for rank 2");
  out = run(model_of("Gather", {{"axis", attr_int(1)}}, 13, 1, "", {test::make_tensor<int64_t>({3}, {3, 0, -1})}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2, 3}));
  EXPECT_HAS(run_refusal(model_of("Flatten", {{"axis", attr_int(3)}}, 13)), "axis 3 is out of range for rank 2");
  out = run(model_of("Flatten", {{"axis", attr_int(0)}}, 13));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{1, 8}));
}

TEST(PreparedAttrs, ShapeStartEnd) {
  // Any start/end is valid (clamped to the rank per run).
  auto out = run(model_of("Shape", {{"start", attr_int(-1)}}, 15));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(out[0].tensor, test::make_tensor<int64_t>({1}, {4})));
  out = run(model_of("Shape", {{"end", attr_int(-1)}}, 15));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(out[0].tensor, test::make_tensor<int64_t>({1}, {2})));
}

TEST(PreparedAttrs, QuantizeDequantizeLinear) {
  const Tensor scale = test::make_tensor<float>({}, {0.5f});
  EXPECT_HAS(refusal("QuantizeLinear", {{"saturate", attr_int(2)}}, 19, 1, "", {scale}),
             "attribute 'saturate' must be 0 or 1, got 2");
  // Opset 21's attributes are accepted by name; what the kernels cannot do
  // is refused by value, before running.
  EXPECT_HAS(refusal("QuantizeLinear", {{"block_size", attr_int(2)}}, 21, 1, "", {scale}),
             "block_size 2 (blocked quantization) is not supported");
  EXPECT_HAS(refusal("DequantizeLinear", {{"block_size", attr_int(2)}}, 21, 1, "", {scale}),
             "block_size 2 (blocked quantization) is not supported");
  EXPECT_HAS(refusal("QuantizeLinear", {{"output_dtype", attr_int(1)}}, 21, 1, "", {scale}),
             "output type float32 is not supported (uint8, int8, uint16, int16)");
  EXPECT_HAS(refusal("QuantizeLinear", {{"output_dtype", attr_int(99)}}, 21, 1, "", {scale}),
             "output_dtype 99 is not a supported type");
  EXPECT_HAS(refusal("QuantizeLinear", {{"output_dtype", attr_int(3)}}, 20, 1, "", {scale}),
             "'output_dtype'");  // not defined before opset 21
  {
    const auto q = run(model_of("QuantizeLinear", {{"output_dtype", attr_int(3)}, {"block_size", attr_int(0)}}, 21, 1, "",
                                {scale}));
    ASSERT_EQ(q.size(), 1u);
    EXPECT_EQ(q[0].tensor.dtype(), DType::kInt8);  // 3: INT8
  }
  EXPECT_HAS(run_refusal(model_of("QuantizeLinear", {{"axis", attr_int(2)}}, 13, 1, "",
                                  {test::make_tensor<float>({4}, {1, 1, 1, 1})})),
             "axis 2 is out of range for rank 2");
  const auto out = run(model_of("QuantizeLinear", {{"saturate", attr_int(1)}}, 19, 1, "",
                                {scale, test::make_tensor<int8_t>({}, {0})}));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.dtype(), DType::kInt8);
  // DequantizeLinear per axis 1 (its axis is read once): y = (x - zp[j]) * scale[j].
  auto m = std::make_shared<Model>();
  m->path = "prepared.onnx";
  Graph& g = m->graph;
  g.opset = 13;
  const int xq = test::add_init(g, "xq", test::make_tensor<uint8_t>({2, 2}, {1, 2, 3, 4}));
  const int s = test::add_init(g, "s", test::make_tensor<float>({2}, {1.f, 10.f}));
  const int zp = test::add_init(g, "zp", test::make_tensor<uint8_t>({2}, {1, 0}));
  g.outputs = {test::add_node(g, "DequantizeLinear", "", {xq, s, zp}, "y", {{"axis", attr_int(-1)}})};
  const auto dq = run(m);
  ASSERT_EQ(dq.size(), 1u);
  EXPECT_TRUE(test::tensors_equal(dq[0].tensor, test::make_tensor<float>({2, 2}, {0.f, 20.f, 2.f, 40.f})));
}

// Issue 17's indexing, normalization, Einsum and signal ops: attribute
// values refused at session creation; rank-dependent checks per run.
TEST(PreparedAttrs, IndexNormalizationEinsumAndSignalOps) {
  using test::attr_string;
  EXPECT_HAS(refusal("DepthToSpace", {{"blocksize", attr_int(0)}}, 13), "attribute 'blocksize' is 0; it must be positive");
  EXPECT_HAS(refusal("DepthToSpace", {{"blocksize", attr_int(2)}, {"mode", attr_string("XYZ")}}, 13), "attribute 'mode' is 'XYZ'; expected DCR or CRD");
  EXPECT_HAS(refusal("ScatterND", {{"reduction", attr_string("max")}}, 16), "attribute 'reduction' is 'max'");
  EXPECT_HAS(refusal("ScatterElements", {{"reduction", attr_string("sum")}}, 18), "attribute 'reduction' is 'sum'");
  EXPECT_HAS(refusal("GatherND", {{"batch_dims", attr_int(-1)}}, 13), "attribute 'batch_dims' is -1; it must be >= 0");
  EXPECT_HAS(refusal("Trilu", {{"upper", attr_int(2)}}, 14), "upper");
  EXPECT_HAS(refusal("EyeLike", {{"dtype", attr_int(8)}}, 13), "attribute 'dtype' is 8, not a supported tensor dtype");
  EXPECT_HAS(refusal("ReverseSequence", {{"time_axis", attr_int(2)}}, 10), "must be 0 and 1 in some order");
  EXPECT_HAS(refusal("Unique", {{"sorted", attr_int(5)}}, 11), "sorted");
  EXPECT_HAS(refusal("GroupNormalization", {{"num_groups", attr_int(0)}}, 18), "attribute 'num_groups' is 0; it must be positive");
  EXPECT_HAS(refusal("InstanceNormalization", {{"epsilon", attr_float(NAN)}}, 13), "attribute 'epsilon' is nan");
  EXPECT_HAS(refusal("LpNormalization", {{"p", attr_int(0)}}, 13), "attribute 'p' is 0; expected 1 or 2");
  EXPECT_HAS(refusal("MeanVarianceNormalization", {{"axes", attr_ints({0, 0})}}, 13), "attribute 'axes' [0, 0] names axis 0 twice");
  EXPECT_HAS(refusal("LRN", {}, 13), "missing required attribute 'size'");
  EXPECT_HAS(refusal("Einsum", {{"equation", attr_string("ij->k")}}, 12), "has an output label that no input has");
  EXPECT_HAS(refusal("DFT", {{"inverse", attr_int(1)}, {"onesided", attr_int(1)}}, 17), "attributes 'inverse' and 'onesided' are both 1");
  EXPECT_HAS(refusal("HannWindow", {{"output_datatype", attr_int(7)}}, 17), "attribute 'output_datatype' is 7");
  EXPECT_HAS(run_refusal(model_of("LpNormalization", {{"axis", attr_int(2)}}, 13)), "axis 2 is out of range");
  const auto out = run(model_of("LpNormalization", {{"p", attr_int(1)}}, 13));
  ASSERT_EQ(out.size(), 1u);
  double sum = 0;
  for (int64_t j = 0; j < 4; ++j) sum += std::fabs(out[0].tensor.data<float>()[j]);
  EXPECT_NEAR(sum, 1.0, 1e-6);
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

// Issue 17's ops: what their prepare functions refuse at Session::create.
TEST(PreparedAttrs, ReduceArgMathAxisAndLossOps) {
  using test::attr_float;
  using test::attr_int;
  using test::attr_ints;
  using test::attr_string;
  EXPECT_HAS(refusal("ReduceSum", {{"axes", attr_ints({0, 0})}}, 11), "axes [0, 0] name axis 0 twice");
  EXPECT_HAS(refusal("ReduceMax", {{"keepdims", attr_int(3)}}, 13), "attribute 'keepdims' must be 0 or 1, got 3");
  EXPECT_HAS(refusal("ArgMax", {{"select_last_index", attr_int(2)}}, 13),
             "attribute 'select_last_index' must be 0 or 1, got 2");
  EXPECT_HAS(refusal("Celu", {{"alpha", attr_float(0.f)}}, 13), "attribute 'alpha' must be finite and non-zero, got 0");
  EXPECT_HAS(refusal("IsInf", {{"detect_negative", attr_int(2)}}, 13), "attribute 'detect_negative' must be 0 or 1, got 2");
  EXPECT_HAS(refusal("TopK", {}, 9), "attribute 'k' must be given and non-negative, got -1");
  EXPECT_HAS(refusal("TopK", {{"largest", attr_int(3)}}, 11, 2, "", {test::make_tensor<int64_t>({1}, {1})}),
             "attribute 'largest' must be 0 or 1, got 3");
  const Tensor f = test::random_tensor({2, 4}, 2);
  EXPECT_HAS(refusal("Mod", {{"fmod", attr_int(2)}}, 13, 1, "", {f}), "attribute 'fmod' must be 0 or 1, got 2");
  EXPECT_HAS(refusal("BitShift", {{"direction", attr_string("UP")}}, 13, 1, "", {f}),
             "attribute 'direction' must be \"LEFT\" or \"RIGHT\", got \"UP\"");
  EXPECT_HAS(refusal("CumSum", {{"exclusive", attr_int(5)}}, 13, 1, "", {test::make_tensor<int64_t>({}, {0})}),
             "attribute 'exclusive' must be 0 or 1, got 5");
  EXPECT_HAS(refusal("NegativeLogLikelihoodLoss", {{"reduction", attr_string("avg")}}, 13, 1, "",
                     {test::make_tensor<int64_t>({2}, {0, 0})}),
             "attribute 'reduction' must be \"none\", \"sum\" or \"mean\", got \"avg\"");
  // Good values run.
  auto out = run(model_of("ReduceLogSumExp", {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}, 13));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{2}));
}

}  // namespace
}  // namespace sarai
