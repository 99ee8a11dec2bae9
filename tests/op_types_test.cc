// The op schema's input types (kernels/registry.cc's .types, runtime/kernel.h's
// check_input_types): Session::create refuses a node whose input has a known
// dtype its op does not take, in one line naming the model, the node, the
// input, its type and the types the op takes there; inputs of an unknown
// dtype are left to the kernel. Also the registry: every op declares its
// types, and each declaration is well formed.
#include <string>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "runtime/kernel.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

using namespace dtypes;

// x (dtype `xt`, [2, 3]) and the initializers `inits` -> one node `op` -> y.
std::shared_ptr<Model> one_node(const std::string& op, DType xt, std::vector<Tensor> inits = {},
                                const std::string& domain = "", int64_t opset = 17) {
  auto m = std::make_shared<Model>();
  m->path = "types_test.onnx";
  Graph& g = m->graph;
  g.opset = opset;
  const int x = test::add_input(g, "x", xt);
  std::vector<int> in = {x};
  for (size_t i = 0; i < inits.size(); ++i) in.push_back(test::add_init(g, test::numbered("w", i + 1), inits[i]));
  g.outputs = {test::add_node(g, op, domain, in, "y")};
  return m;
}

using test::create_error;
using test::create_session;

TEST(OpTypes, GraphInputOfATypeTheOpDoesNotTakeIsRefused) {
  const std::string msg = create_error(one_node("Sqrt", DType::kInt64));
  EXPECT_EQ(msg, "types_test.onnx: node 'y_node' (Sqrt): input 0 ('x') is int64; Sqrt takes float32 there");
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  EXPECT_EQ(create_error(one_node("Relu", DType::kBool)),
            "types_test.onnx: node 'y_node' (Relu): input 0 ('x') is bool; Relu takes float32, integers there");
  EXPECT_EQ(create_error(one_node("Not", DType::kFloat32)),
            "types_test.onnx: node 'y_node' (Not): input 0 ('x') is float32; Not takes bool there");
}

TEST(OpTypes, InitializerOfATypeTheOpDoesNotTakeIsRefused) {
  // MatMul runs float32 only; the weight is an int64 initializer.
  EXPECT_EQ(create_error(one_node("MatMul", DType::kFloat32, {test::make_tensor<int64_t>({3, 2}, {1, 2, 3, 4, 5, 6})})),
            "types_test.onnx: node 'y_node' (MatMul): input 1 ('w1') is int64; MatMul takes float32 there");
  // Reshape's data takes any type, its shape only int32/int64.
  EXPECT_EQ(create_error(one_node("Reshape", DType::kBool, {test::make_tensor<float>({2}, {3, 2})})),
            "types_test.onnx: node 'y_node' (Reshape): input 1 ('w1') is float32; Reshape takes int32, int64 there");
  // Pow's base and exponent take different sets (the later input, through
  // a per-input declaration).
  EXPECT_EQ(create_error(one_node("Pow", DType::kUInt8, {test::make_tensor<float>({1}, {2})})),
            "types_test.onnx: node 'y_node' (Pow): input 0 ('x') is uint8; Pow takes float32, int32, int64 there");
}

TEST(OpTypes, RuntimeOwnOpsAreCheckedToo) {
  EXPECT_EQ(create_error(one_node("Gelu", DType::kInt32, {}, "sarai")),
            "types_test.onnx: node 'y_node' (Gelu): input 0 ('x') is int32; Gelu takes float32 there");
}

TEST(OpTypes, DeclaredTypesRun) {
  // Reshape of bool data by an int64 shape; Where's bool condition and
  // int32 values.
  auto s = create_session(one_node("Reshape", DType::kBool, {test::make_tensor<int64_t>({2}, {3, 2})}));
  ASSERT_TRUE(s) << s.status().message();
  std::vector<NamedTensor> out;
  ASSERT_TRUE((*s)->run({{"x", test::make_tensor<bool>({2, 3}, {true, false, true, false, true, false})}}, &out).is_ok());
  EXPECT_EQ(out[0].tensor.shape(), (Shape{3, 2}));
  EXPECT_EQ(out[0].tensor.dtype(), DType::kBool);
  auto w = create_session(one_node("Where", DType::kBool,
                           {test::make_tensor<int32_t>({3}, {1, 2, 3}), test::make_tensor<int32_t>({3}, {4, 5, 6})}));
  ASSERT_TRUE(w) << w.status().message();
  ASSERT_TRUE((*w)->run({{"x", test::make_tensor<bool>({2, 3}, {true, false, true, false, true, false})}}, &out).is_ok());
  EXPECT_EQ(out[0].tensor.data<int32_t>()[1], 5);
}

// A value the model gives no dtype is not checked at creation: the kernel
// refuses it when it runs, naming the input.
TEST(OpTypes, UnknownDtypeIsLeftToTheKernel) {
  auto s = create_session(one_node("Sqrt", DType::kUndefined));
  ASSERT_TRUE(s) << s.status().message();
  std::vector<NamedTensor> out;
  const Status st = (*s)->run({{"x", test::make_tensor<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6})}}, &out);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("input 'X' must be float32, got int64"), std::string::npos) << st.message();
}

// An omitted optional input ("") is not checked; the inputs after it are.
TEST(OpTypes, OmittedInputsAreSkipped) {
  auto m = one_node("Clip", DType::kFloat32);
  Graph& g = m->graph;
  Node& n = g.nodes[0];
  n.inputs.push_back(kNoValue);
  n.inputs.push_back(test::add_init(g, "hi", test::make_tensor<float>({}, {1.f})));
  EXPECT_TRUE(create_session(m));
  g.nodes[0].inputs.back() = test::add_init(g, "on", test::make_tensor<bool>({}, {true}));
  EXPECT_EQ(create_error(m), "types_test.onnx: node 'y_node' (Clip): input 2 ('on') is bool; Clip takes float32, "
                         "integers there");
}

TEST(OpTypes, CheckInputTypesAlone) {
  OpSchema schema;
  schema.types = {{kAllInputs, kNumeric}, {1, kI64}};  // a later entry wins for input 1
  EXPECT_EQ(schema.input_types(0), kNumeric);
  EXPECT_EQ(schema.input_types(1), kI64);
  EXPECT_EQ(schema.input_types(7), kNumeric);
  OpSchema none;
  EXPECT_EQ(none.input_types(0), 0u);  // no declaration: not checked
  Graph g;
  const int a = g.add_value("a"), b = g.add_value("b");
  g.values[static_cast<size_t>(a)].dtype = DType::kFloat32;
  g.values[static_cast<size_t>(b)].dtype = DType::kInt32;
  Node n;
  n.name = "n";
  n.op_type = "Op";
  n.inputs = {a, b};
  EXPECT_EQ(check_input_types(n, schema, g).message(), "node 'n' (Op): input 1 ('b') is int32; Op takes int64 there");
  EXPECT_TRUE(check_input_types(n, none, g).is_ok());
  // A control-flow node's implicit inputs (outer values its subgraphs read)
  // are not the op's own: never checked.
  n.implicit_inputs = 1;
  EXPECT_TRUE(check_input_types(n, schema, g).is_ok());
}

TEST(OpTypes, TypeSetNames) {
  EXPECT_EQ(type_set_name(kAny), "any");
  EXPECT_EQ(type_set_name(kF32), "float32");
  EXPECT_EQ(type_set_name(kFloat | kF16), "float32, float64, float16");
  EXPECT_EQ(type_set_name(kInts), "int8, uint8, int16, uint16, int32, uint32, int64, uint64");
  EXPECT_EQ(type_set_name(kNumeric | kBool), "float32, float64, integers, bool");
  EXPECT_EQ(type_set_name(kIndex), "int32, int64");
  EXPECT_EQ(type_set_name(0), "none");
}

// Every op declares the types of its inputs (an op without inputs declares
// none), with well-formed entries; the types column of docs/ops.md comes
// from these.
TEST(OpTypes, EveryRegisteredOpDeclaresItsTypes) {
  KernelTable table;
  register_kernels(table);
  int ops = 0;
  for (const std::string& key : table.op_types()) {
    const size_t sep = key.find("::");
    const std::string domain = sep == std::string::npos ? "" : key.substr(0, sep);
    const std::string op = sep == std::string::npos ? key : key.substr(sep + 2);
    bool seen = false;
    for (int64_t opset = 1; opset <= 21; ++opset) {
      const OpSchema* s = table.schema(op, opset, domain);
      if (s == nullptr) continue;
      seen = true;
      EXPECT_TRUE(s->types_declared) << key << " declares no input types (add .types(...) in kernels/registry.cc)";
      for (const InputTypes& t : s->types) {
        EXPECT_GE(t.first, 0) << key;
        EXPECT_LE(t.first, t.last) << key;
        EXPECT_NE(t.types, 0u) << key << " input " << t.first << " takes no type";
        EXPECT_EQ(t.types & ~kAny, 0u) << key << " input " << t.first << " names a type no tensor here can have";
      }
    }
    EXPECT_TRUE(seen) << key;
    ++ops;
  }
  EXPECT_GT(ops, 150);
}

}  // namespace
}  // namespace sarai
