// The sliding-window ops' attributes are read and checked once per node
// (their PrepareFn: kernels/conv_geometry.h, issue 14): Conv, ConvTranspose,
// ConvInteger, AveragePool, MaxPool and the sarai domain's QConv,
// QConvTranspose and QMatMul refuse a bad attribute value at
// Session::create, in one line naming the model, the node and what is
// wrong, before any run. Also the shape arithmetic the prepared attributes
// feed (issue 16): ConvTranspose's output_shape and output_padding, the
// col matrix over ConvTranspose's input positions, and the INT8
// ConvTranspose core's stride-phase lines.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "runtime/kernel.h"
#include "runtime/session.h"
#include "test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::attr_ints;
using test::attr_string;

using Attrs = std::map<std::string, Attribute>;

// x (and the weight w when given) -> one node `op` -> y. Without a weight
// the session can still be created: the attribute checks come first.
// Opset 19: AveragePool takes dilations from there on.
std::shared_ptr<Model> one_node(const std::string& op, Attrs attrs, const std::string& domain = "",
                                const Tensor& w = Tensor()) {
  auto m = std::make_shared<Model>();
  m->path = "prepare_test.onnx";
  Graph& g = m->graph;
  g.opset = 19;
  const int x = test::add_input(g, "x");
  std::vector<int> in = {x};
  if (w.defined()) in.push_back(test::add_init(g, "w", w));
  g.outputs = {test::add_node(g, op, domain, in, "y", std::move(attrs))};
  return m;
}

using test::create_error;

std::string prefix(const std::string& op) { return "prepare_test.onnx: node 'y_node' (" + op + "): "; }

TEST(ConvPrepare, WindowAttributesAreRefusedAtCreation) {
  const std::pair<Attrs, std::string> cases[] = {
      {{{"strides", attr_ints({0, 1})}}, "strides [0, 1] must be >= 1"},
      {{{"dilations", attr_ints({1, -2})}}, "dilations [1, -2] must be >= 1"},
      {{{"kernel_shape", attr_ints({3, 0})}}, "kernel_shape [3, 0] must be >= 1"},
      // Its product wrapped AveragePool's count_include_pad divisor.
      {{{"kernel_shape", attr_ints({int64_t{1} << 32, int64_t{1} << 32})}},
       "kernel_shape [4294967296, 4294967296] has more taps than 64-bit integers count"},
      {{{"pads", attr_ints({0, -1, 0, 0})}}, "pads [0, -1, 0, 0] must be >= 0"},
      {{{"pads", attr_ints({1, 1, 1})}}, "pads [1, 1, 1] must have an even number of values (begin and end per "
                                         "spatial dim)"},
      {{{"strides", attr_ints({})}}, "strides [] is empty; it needs values per spatial dim"},
      {{{"auto_pad", attr_string("SAME")}}, "auto_pad 'SAME' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"},
      {{{"group", attr_int(0)}}, "group 0 must be >= 1"},
      {{{"kernel_shape", attr_ints({3, 3})}, {"dilations", attr_ints({1, 1, 1})}},
       "dilations [1, 1, 1] must have 2 values (one per spatial dim of kernel_shape [3, 3])"},
      {{{"strides", attr_ints({2})}, {"pads", attr_ints({0, 0, 0, 0})}},
       "pads [0, 0, 0, 0] must have 2 values (begin and end per spatial dim of strides [2])"},
  };
  for (const auto& [attrs, want] : cases) {
    for (const char* op : {"Conv", "ConvTranspose", "ConvInteger"}) {
      SCOPED_TRACE(op);
      EXPECT_EQ(create_error(one_node(op, attrs)), prefix(op) + want);
    }
    for (const char* op : {"QConv", "QConvTranspose"}) {
      SCOPED_TRACE(op);
      Attrs q = attrs;
      q["weight_shape"] = attr_ints({4, 2, 3, 3});
      EXPECT_EQ(create_error(one_node(op, q, "sarai")), prefix(op) + want);
    }
    if (attrs.count("group")) continue;  // the pools take no group
    for (const char* op : {"AveragePool", "MaxPool"}) {
      SCOPED_TRACE(op);
      Attrs p = attrs;
      if (!p.count("kernel_shape")) p["kernel_shape"] = attr_ints({2, 2});
      const std::string msg = create_error(one_node(op, p));
      // With kernel_shape [2, 2] added, a one-value list disagrees with it first.
      if (attrs.count("strides") && attrs.count("pads"))
        EXPECT_EQ(msg, prefix(op) + "strides [2] must have 2 values (one per spatial dim of kernel_shape [2, 2])");
      else
        EXPECT_EQ(msg, prefix(op) + want);
    }
  }
}

TEST(ConvPrepare, PoolAttributesAreRefusedAtCreation) {
  EXPECT_EQ(create_error(one_node("MaxPool", {})), prefix("MaxPool") + "missing required attribute kernel_shape");
  EXPECT_EQ(create_error(one_node("MaxPool", {{"kernel_shape", attr_ints({2, 2})}, {"storage_order", attr_int(2)}})),
            prefix("MaxPool") + "storage_order 2 must be 0 or 1");
  EXPECT_EQ(create_error(one_node("MaxPool", {{"kernel_shape", attr_ints({2, 2})}, {"ceil_mode", attr_int(3)}})),
            prefix("MaxPool") + "attribute 'ceil_mode' must be 0 or 1, got 3");
  EXPECT_EQ(create_error(one_node("AveragePool",
                                  {{"kernel_shape", attr_ints({2, 2})}, {"count_include_pad", attr_int(-1)}})),
            prefix("AveragePool") + "attribute 'count_include_pad' must be 0 or 1, got -1");
  EXPECT_EQ(create_error(one_node("AveragePool", {{"kernel_shape", attr_ints({2, 2})}, {"pads", attr_ints({1, 1})}})),
            prefix("AveragePool") + "pads [1, 1] must have 4 values (begin and end per spatial dim of kernel_shape [2, 2])");
}

TEST(ConvPrepare, TransposeAttributesAreRefusedAtCreation) {
  const std::pair<Attrs, std::string> cases[] = {
      {{{"output_padding", attr_ints({-1, 0})}}, "output_padding [-1, 0] must be >= 0"},
      {{{"strides", attr_ints({2, 2})}, {"output_padding", attr_ints({2, 0})}},
       "output_padding [2, 0] is 2 along spatial dim 0; it must be smaller than the stride 2 or the dilation 1 there"},
      // The dilation alone allows it too (ONNX Runtime's and PyTorch's rule).
      {{{"dilations", attr_ints({1, 3})}, {"output_padding", attr_ints({0, 3})}},
       "output_padding [0, 3] is 3 along spatial dim 1; it must be smaller than the stride 1 or the dilation 3 there"},
      {{{"kernel_shape", attr_ints({3, 3})}, {"output_padding", attr_ints({0})}},
       "output_padding [0] must have 2 values (one per spatial dim of kernel_shape [3, 3])"},
      {{{"output_shape", attr_ints({0, 5})}}, "output_shape [0, 5] must have spatial dims >= 1"},
      // Was ignored: a negative output_shape ran as if there was none.
      {{{"output_shape", attr_ints({1, 1, -5, 5})}}, "output_shape [1, 1, -5, 5] must have spatial dims >= 1"},
      {{{"kernel_shape", attr_ints({3, 3})}, {"output_shape", attr_ints({5, 5, 5})}},
       "output_shape [5, 5, 5] must have 2 spatial dims (or 4 values with N and C), as the other lists have"},
  };
  for (const auto& [attrs, want] : cases) {
    EXPECT_EQ(create_error(one_node("ConvTranspose", attrs)), prefix("ConvTranspose") + want);
    EXPECT_EQ(create_error(one_node("QConvTranspose", attrs, "sarai")), prefix("QConvTranspose") + want);
  }
}

TEST(ConvPrepare, QuantizedAttributesAreRefusedAtCreation) {
  const Attrs ws = {{"weight_shape", attr_ints({4, 2, 3, 3})}};
  auto with = [&](Attrs extra) {
    Attrs a = ws;
    a.insert(extra.begin(), extra.end());
    return a;
  };
  EXPECT_EQ(create_error(one_node("QConv", {}, "sarai")),
            prefix("QConv") + "attribute weight_shape (the ONNX weight shape) is missing; it is required when W is "
                              "packed (group 1)");
  EXPECT_EQ(create_error(one_node("QConv", {{"weight_shape", attr_ints({4, 0, 3, 3})}}, "sarai")),
            prefix("QConv") + "weight_shape [4, 0, 3, 3] must have dims >= 1");
  EXPECT_EQ(create_error(one_node("QConv", with({{"activation", attr_string("Tanh")}}), "sarai")),
            prefix("QConv") + "attribute activation = \"Tanh\" is not supported (Relu and Gelu are)");
  EXPECT_EQ(create_error(one_node("QConvTranspose", with({{"x_min", attr_float(2)}, {"x_max", attr_float(1)}}),
                                  "sarai")),
            prefix("QConvTranspose") + "static activation range [x_min, x_max] = [2.000000, 1.000000] must be "
                                       "finite with x_min <= x_max");
  const Attrs kn = {{"K", attr_int(8)}, {"N", attr_int(4)}};
  EXPECT_EQ(create_error(one_node("QMatMul", {{"N", attr_int(4)}}, "sarai")),
            prefix("QMatMul") + "attribute K (reduction size) is missing");
  EXPECT_EQ(create_error(one_node("QMatMul", {{"K", attr_int(8)}, {"N", attr_int(-1)}}, "sarai")),
            prefix("QMatMul") + "attribute N = -1 must be >= 1");
  EXPECT_EQ(create_error(one_node("QMatMul", {{"K", attr_int(70000)}, {"N", attr_int(4)}}, "sarai")),
            prefix("QMatMul") + "K = 70000 exceeds the int32 accumulator bound 66311 (255 * 127 * K must fit in "
                                "int32)");
  EXPECT_EQ(create_error(one_node("QMatMul", {{"K", attr_int(60000)}, {"N", attr_int(int64_t{1} << 32)}}, "sarai")),
            prefix("QMatMul") + "attributes K = 60000, N = 4294967296 are too large");
  Attrs only_min = kn;
  only_min["x_min"] = attr_float(-1);
  EXPECT_EQ(create_error(one_node("QMatMul", only_min, "sarai")),
            prefix("QMatMul") + "attribute x_max is missing (a static activation range needs both x_min and x_max)");
  Attrs gelu = kn;
  gelu["activation"] = attr_string("gelu");
  EXPECT_EQ(create_error(one_node("QMatMul", gelu, "sarai")),
            prefix("QMatMul") + "attribute activation = \"gelu\" is not supported (Relu and Gelu are)");
}

// The session hands each kernel the data its registered prepare function
// made; the kernel casts it to its own type, so both must be the same
// function.
TEST(ConvPrepare, RegistryPreparesWhatTheKernelsRead) {
  KernelTable t;
  register_kernels(t);
  EXPECT_EQ(t.schema("Conv", 17)->prepare, kernels::PrepareConv);
  EXPECT_EQ(t.schema("ConvInteger", 17)->prepare, kernels::PrepareConv);
  EXPECT_EQ(t.schema("ConvTranspose", 17)->prepare, kernels::PrepareConvTranspose);
  EXPECT_EQ(t.schema("AveragePool", 17)->prepare, kernels::PreparePool);
  EXPECT_EQ(t.schema("MaxPool", 17)->prepare, kernels::PreparePool);
  EXPECT_EQ(t.schema("QMatMul", 17, "sarai")->prepare, kernels::PrepareQMatMul);
  EXPECT_EQ(t.schema("QConv", 17, "sarai")->prepare, kernels::PrepareQConv);
  EXPECT_EQ(t.schema("QConvTranspose", 17, "sarai")->prepare, kernels::PrepareQConvTranspose);
}

// Prepared once, the attributes still apply on every run: a session's
// result equals the kernel's called directly (which prepares on the spot).
TEST(ConvPrepare, SessionRunsWithPreparedAttributes) {
  struct Case {
    std::string op;
    Attrs attrs;
    Tensor w;  // empty: no weight
  };
  const Case cases[] = {
      {"Conv", {{"strides", attr_ints({2, 1})}, {"pads", attr_ints({1, 0, 1, 2})}, {"dilations", attr_ints({1, 2})}},
       test::random_tensor({3, 2, 3, 3}, 5)},
      {"ConvTranspose",
       {{"strides", attr_ints({2, 3})}, {"output_padding", attr_ints({1, 2})}, {"auto_pad", attr_string("SAME_LOWER")}},
       test::random_tensor({2, 3, 3, 2}, 6)},
      {"MaxPool", {{"kernel_shape", attr_ints({3, 2})}, {"strides", attr_ints({2, 2})}, {"ceil_mode", attr_int(1)}}, {}},
      {"AveragePool",
       {{"kernel_shape", attr_ints({2, 3})}, {"pads", attr_ints({1, 1, 1, 1})}, {"count_include_pad", attr_int(1)}},
       {}},
  };
  const Tensor x = test::random_tensor({1, 2, 7, 6}, 4);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.op);
    auto s = test::session_on(one_node(c.op, c.attrs, "", c.w), SessionOptions{});
    ASSERT_TRUE(s);
    std::vector<NamedTensor> out;
    ASSERT_TRUE(s->run({{"x", x}}, &out).is_ok());
    Node direct = test::make_node(c.op, c.w.defined() ? 2 : 1);
    direct.attrs = c.attrs;
    const KernelFn fn = c.op == "Conv" ? kernels::Conv
                        : c.op == "ConvTranspose" ? kernels::ConvTranspose
                        : c.op == "MaxPool" ? kernels::MaxPool
                                            : kernels::AveragePool;
    const Tensor want =
        test::run1(fn, direct, c.w.defined() ? std::vector<Tensor>{x, c.w} : std::vector<Tensor>{x}, /*opset=*/19);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_TRUE(test::tensors_equal(out[0].tensor, want));
  }
}

// --------------------------------------------------------------- issue 16

// QConvTranspose's inputs: X float, W plain int8 [C, M/group, k...], one
// scale, the weight sums.
std::vector<Tensor> qconv_transpose_inputs(const Tensor& x, Shape w_shape) {
  const int64_t m = w_shape[1];
  Tensor w = Tensor::allocate(DType::kInt8, w_shape);
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data<int8_t>()[i] = static_cast<int8_t>(i % 7 - 3);
  return {x, w, test::make_tensor<float>({1}, {0.01f}), test::make_tensor<int32_t>({m}, std::vector<int32_t>(m, 0))};
}

Node qconv_transpose_node(Attrs attrs) {
  Node n = test::make_node("QConvTranspose", 4);
  n.domain = "sarai";
  n.attrs = std::move(attrs);
  return n;
}

// ONNX's total_padding = stride * (in - 1) + output_padding + dilated kernel
// - output_shape. A negative one (an output longer than the data) is
// accepted as ONNX Runtime does, with the extra positions at the end, up to
// what an output_padding could add; past that no input reaches them.
TEST(ConvPrepare, ConvTransposeOutputShapeBeyondTheDataIsRefused) {
  const Tensor x = test::random_tensor({1, 1, 3, 3}, 1);
  const Tensor w = test::random_tensor({1, 1, 3, 3}, 2);
  Node n = test::make_node("ConvTranspose", 2);
  n.attrs["strides"] = attr_ints({3, 2});
  // ONNX's own test_convtranspose_output_shape: total_padding -1 on both dims.
  n.attrs["output_shape"] = attr_ints({10, 8});
  EXPECT_EQ(test::run1(kernels::ConvTranspose, n, {x, w}).shape(), (Shape{1, 1, 10, 8}));
  n.attrs["output_shape"] = attr_ints({10, 9});
  const std::string want =
      "output_shape [10, 9] asks for 9 along spatial dim 1, but X [1, 1, 3, 3] with kernel_shape [3, 3], strides "
      "[3, 2] and dilations [1, 1] allow at most 8 there (total_padding would be -2; the output may pass the data "
      "by less than max(stride, dilation), as output_padding)";
  EXPECT_EQ(test::run_error(kernels::ConvTranspose, n, {x, w}), want);
  // The same for the INT8 op the converter writes, and ONNX's N and C in front.
  EXPECT_EQ(test::run_error(kernels::QConvTranspose, qconv_transpose_node(n.attrs), qconv_transpose_inputs(x, {1, 1, 3, 3})),
            want);
  n.attrs["output_shape"] = attr_ints({1, 1, 13, 8});
  EXPECT_HAS(test::run_error(kernels::ConvTranspose, n, {x, w}), "asks for 13 along spatial dim 0");
  // An explicit output_padding counts toward the same limit.
  n.attrs["output_padding"] = attr_ints({2, 1});
  n.attrs["output_shape"] = attr_ints({10, 9});
  EXPECT_HAS(test::run_error(kernels::ConvTranspose, n, {x, w}), "asks for 9 along spatial dim 1");
  n.attrs["output_shape"] = attr_ints({10, 8});
  EXPECT_EQ(test::run1(kernels::ConvTranspose, n, {x, w}).shape(), (Shape{1, 1, 10, 8}));
  // A small output_shape crops (pads >= 0): fine.
  n.attrs["output_shape"] = attr_ints({1, 2});
  EXPECT_EQ(test::run1(kernels::ConvTranspose, n, {x, w}).shape(), (Shape{1, 1, 1, 2}));
}

// output_padding's stride rule, where only X tells the rank: checked at run
// after its length.
TEST(ConvPrepare, ConvTransposeOutputPaddingCheckedAtRunWithoutOtherLists) {
  Node n = test::make_node("ConvTranspose", 2);
  n.attrs["output_padding"] = attr_ints({0, 1});
  const std::vector<Tensor> in = {test::random_tensor({1, 1, 3, 3}, 1), test::random_tensor({1, 1, 3, 3}, 2)};
  EXPECT_EQ(test::run_error(kernels::ConvTranspose, n, in),
            "output_padding [0, 1] is 1 along spatial dim 1; it must be smaller than the stride 1 or the dilation 1 "
            "there");
  n.attrs["output_padding"] = attr_ints({1});
  EXPECT_HAS(test::run_error(kernels::ConvTranspose, n, in), "output_padding [1] must have 2 values");
  n.attrs["output_padding"] = attr_ints({0, 1});
  n.attrs["dilations"] = attr_ints({1, 2});
  EXPECT_EQ(test::run1(kernels::ConvTranspose, n, in).shape(), (Shape{1, 1, 5, 8}));
}

// ConvTranspose's col matrix is (M/group * taps) x input positions: pads
// that crop the output to one position used to leave it unbounded (an
// 8 TiB workspace here).
TEST(ConvPrepare, ConvTransposeInputSideExtentIsChecked) {
  Node n = test::make_node("ConvTranspose", 2);
  n.attrs["pads"] = attr_ints({int64_t{1} << 20, 1022});
  const std::string msg = test::run_error(
      kernels::ConvTranspose, n, {Tensor::allocate(DType::kFloat32, {1, 1, int64_t{1} << 20}),
                                  Tensor::allocate(DType::kFloat32, {1, 2048, 1024})});
  EXPECT_EQ(msg,
            "input spatial dims [1048576] with kernel [1024] and 2048 channels for X [1, 1, 1048576] are too large "
            "(more than 2^40 multiply-adds per image)");
}

// The INT8 ConvTranspose core splits each last-dim output line into stride
// phases of ceil(out / stride) values: a stride far past the output (legal
// when that input dim is 1) made that line 2^41 values, or wrapped.
TEST(ConvPrepare, QConvTransposeStridePhasesAreBounded) {
  const Tensor x = test::random_tensor({1, 1, 1, 1}, 1);
  for (int64_t s : {int64_t{1} << 41, INT64_MAX}) {
    SCOPED_TRACE(s);
    const Node n = qconv_transpose_node({{"strides", attr_ints({1, s})}});
    EXPECT_EQ(test::run_error(kernels::QConvTranspose, n, qconv_transpose_inputs(x, {1, 2, 1, 1})),
              "strides [1, " + std::to_string(s) +
                  "] with output spatial dims [1, 1] are too large for the INT8 core (its last dim's stride phases "
                  "need stride * ceil(output / stride) values per output line)");
  }
  // A stride the line holds still runs, and the float op takes any.
  const Node ok = qconv_transpose_node({{"strides", attr_ints({1, 1 << 20})}});
  EXPECT_EQ(test::run1(kernels::QConvTranspose, ok, qconv_transpose_inputs(x, {1, 2, 1, 1})).shape(),
            (Shape{1, 2, 1, 1}));
  Node f = test::make_node("ConvTranspose", 2);
  f.attrs["strides"] = attr_ints({1, INT64_MAX});
  EXPECT_EQ(test::run1(kernels::ConvTranspose, f, {x, test::random_tensor({1, 2, 1, 1}, 2)}).shape(),
            (Shape{1, 2, 1, 1}));
}

}  // namespace
}  // namespace sarai
