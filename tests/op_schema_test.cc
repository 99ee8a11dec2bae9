// The op schema's attribute lists (kernels/registry.cc, runtime/kernel.h's
// check_attributes): Session::create refuses a node with an attribute its op
// does not accept, one of another type, or one its opset does not define,
// in one line naming the model, the node, the attribute and what the op
// accepts; attributes the op accepts still run. Also the registry itself:
// every list is well formed.
#include <cmath>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "runtime/kernel.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

// x [1, 2, 5, 5] -> one node `op` (inputs x and, for Conv, a weight) -> y.
std::shared_ptr<Model> one_node(const std::string& op, std::map<std::string, Attribute> attrs, int64_t opset = 17,
                                const std::string& domain = "") {
  auto m = std::make_shared<Model>();
  m->path = "schema_test.onnx";
  Graph& g = m->graph;
  g.opset = opset;
  const int x = test::add_input(g, "x");
  std::vector<int> in = {x};
  if (op == "Conv") in.push_back(test::add_init(g, "w", test::random_tensor({3, 2, 3, 3}, 1)));
  g.outputs = {test::add_node(g, op, domain, in, "y", std::move(attrs))};
  return m;
}

using test::create_error;
using test::create_session;

TEST(OpSchema, MisspelledAttributeIsRefusedNamingNodeAttributeAndAccepted) {
  const std::string msg = create_error(one_node("Conv", {{"stride", test::attr_ints({2, 2})}}));
  EXPECT_EQ(msg,
            "schema_test.onnx: node 'y_node' (Conv): attribute 'stride' is not one Conv accepts (accepted: "
            "auto_pad, dilations, group, kernel_shape, pads, strides)");
  EXPECT_EQ(msg.find('\n'), std::string::npos);
}

TEST(OpSchema, AcceptedAttributesRun) {
  auto s = create_session(one_node("Conv", {{"strides", test::attr_ints({2, 2})}, {"pads", test::attr_ints({1, 1, 1, 1})},
                                    {"group", test::attr_int(1)}}));
  ASSERT_TRUE(s) << s.status().message();
  std::vector<NamedTensor> out;
  ASSERT_TRUE((*s)->run({{"x", test::random_tensor({1, 2, 5, 5}, 2)}}, &out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor.shape(), (Shape{1, 3, 3, 3}));  // stride 2 was applied
}

TEST(OpSchema, AttributeOfAnotherTypeIsRefused) {
  EXPECT_EQ(create_error(one_node("Conv", {{"group", test::attr_float(1.f)}})),
            "schema_test.onnx: node 'y_node' (Conv): attribute 'group' is a float; Conv takes an int");
  EXPECT_EQ(create_error(one_node("Relu", {{"alpha", test::attr_float(0.1f)}})),
            "schema_test.onnx: node 'y_node' (Relu): attribute 'alpha' is not one Relu accepts (it takes no "
            "attributes)");
}

TEST(OpSchema, AttributeOutsideItsOpsetsIsRefused) {
  // Squeeze's axes became an input at opset 13.
  EXPECT_TRUE(create_session(one_node("Squeeze", {{"axes", test::attr_ints({0})}}, 12)));
  const std::string msg = create_error(one_node("Squeeze", {{"axes", test::attr_ints({0})}}, 13));
  EXPECT_EQ(msg,
            "schema_test.onnx: node 'y_node' (Squeeze): attribute 'axes' is only defined at opsets 1-12, not at "
            "the model's opset 13 (accepted there: none)");
  // ReduceMean's noop_with_empty_axes arrived at opset 18.
  EXPECT_NE(create_error(one_node("ReduceMean", {{"noop_with_empty_axes", test::attr_int(1)}}, 17))
                .find("attribute 'noop_with_empty_axes' is only defined from opset 18, not at the model's opset 17 "
                      "(accepted there: axes, keepdims)"),
            std::string::npos);
}

TEST(OpSchema, RuntimeOwnOpsAreCheckedToo) {
  const std::string msg = create_error(one_node("ScaledSoftmax", {{"divisr", test::attr_float(8.f)}}, 17, "sarai"));
  EXPECT_NE(msg.find("node 'y_node' (ScaledSoftmax): attribute 'divisr' is not one ScaledSoftmax accepts "
                     "(accepted: axis, divisor)"),
            std::string::npos)
      << msg;
}

// Attribute values an op checks once per node (its PrepareFn) are refused
// when the session is created, before any run, naming the node.
TEST(OpSchema, PreparedValuesAreCheckedAtCreation) {
  Attribute bogus = test::attr_string("bogus");
  EXPECT_EQ(create_error(one_node("Resize", {{"mode", bogus}}, 13)),
            "schema_test.onnx: node 'y_node' (Resize): mode 'bogus' is not one of nearest, linear, cubic");
  EXPECT_EQ(create_error(one_node("Gelu", {{"approximate", bogus}}, 20)),
            "schema_test.onnx: node 'y_node' (Gelu): attribute 'approximate' must be \"none\" or \"tanh\", got "
            "\"bogus\"");
  auto ok = create_session(one_node("Gelu", {{"approximate", test::attr_string("tanh")}}, 20));
  ASSERT_TRUE(ok) << ok.status().message();
  std::vector<NamedTensor> out;
  Tensor x = test::random_tensor({1, 2, 5, 5}, 3);
  ASSERT_TRUE((*ok)->run({{"x", x}}, &out).is_ok());
  const float v = x.data<float>()[7], y = out[0].tensor.data<float>()[7];
  EXPECT_NEAR(y, 0.5 * v * (1 + std::tanh(0.7978845608 * (v + 0.044715 * v * v * v))), 1e-6);  // tanh form ran
}

TEST(OpSchema, RegistryListsAreWellFormed) {
  KernelTable table;
  register_kernels(table);
  for (const std::string& key : table.op_types()) {
    const size_t sep = key.find("::");
    const std::string domain = sep == std::string::npos ? "" : key.substr(0, sep);
    const std::string op = sep == std::string::npos ? key : key.substr(sep + 2);
    for (int64_t opset = 9; opset <= 21; ++opset) {
      const OpSchema* s = table.schema(op, opset, domain);
      if (s == nullptr) continue;
      std::set<std::string> names;
      for (const AttrSpec& a : s->attrs) {
        EXPECT_TRUE(names.insert(a.name).second) << key << " lists '" << a.name << "' twice";
        EXPECT_LE(a.since, a.until) << key << "." << a.name;
      }
    }
  }
}

}  // namespace
}  // namespace sarai
