// Attribute values checked once per node (the ops' PrepareFn, issue 14):
// Session::create refuses a bad one in one line naming the node, before any
// run; good ones still run.
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

// x (float32 [2, 4], or no input for ops without inputs) -> `op` with
// `nout` outputs y, y1, ... at `opset`.
std::shared_ptr<Model> model_of(const std::string& op, std::map<std::string, Attribute> attrs, int64_t opset,
                                int nout = 1, const std::string& domain = "") {
  auto m = std::make_shared<Model>();
  m->path = "prepared.onnx";
  Graph& g = m->graph;
  g.opset = opset;
  std::vector<int> in;
  if (op != "Constant") {
    const int x = g.add_value("x");
    g.values[static_cast<size_t>(x)].dtype = DType::kFloat32;
    g.inputs = {x};
    in = {x, x, x};
    in.resize(op == "Attention" ? 3 : op == "Gemm" ? 2 : 1);
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

Expected<std::unique_ptr<Session>> create(std::shared_ptr<const Model> m) {
  KernelTable table;
  register_kernels(table);
  return Session::create(std::move(m), table, SessionOptions{});
}

// The one-line message of a Session::create that must fail.
std::string refusal(const std::string& op, std::map<std::string, Attribute> attrs, int64_t opset, int nout = 1,
                    const std::string& domain = "") {
  auto s = create(model_of(op, std::move(attrs), opset, nout, domain));
  EXPECT_FALSE(s) << op << ": the session was created";
  if (s) return "";
  const std::string msg = s.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind("prepared.onnx: node 'y_node' (" + op + "): ", 0), 0u) << msg;
  return msg;
}

std::vector<NamedTensor> run(const std::shared_ptr<Model>& m) {
  auto s = create(m);
  EXPECT_TRUE(s) << s.status().message();
  std::vector<NamedTensor> out;
  if (!s) return out;
  std::vector<NamedTensor> in;
  if (!m->graph.inputs.empty()) in.push_back({"x", test::random_tensor({2, 4}, 1)});
  const Status st = (*s)->run(in, &out);
  EXPECT_TRUE(st.is_ok()) << st.message();
  return out;
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

}  // namespace
}  // namespace sarai
