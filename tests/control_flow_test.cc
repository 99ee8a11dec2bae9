// If, Loop and Scan: subgraphs read from ONNX (outer-scope values, nested
// subgraphs), run through the session, compared with values worked out by
// hand; and every error their loader and kernels report.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <string>
#include <thread>
#include <vector>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::graph_attr;
using test::int_attr;
using test::ints_attr;
using test::node;
using test::typed;

// Float tensors from literal lists.
Tensor make_tensor(Shape shape, std::vector<float> v) { return test::make_tensor<float>(shape, v); }

// Small protobuf builders: values, nodes, graphs.
constexpr int kF = onnx::TensorProto::FLOAT, kI64 = onnx::TensorProto::INT64, kB = onnx::TensorProto::BOOL;

void float_init(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims, const std::vector<float>& v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(kF);
  for (int64_t d : dims) t->add_dims(d);
  for (float x : v) t->add_float_data(x);
}
void int_init(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims, const std::vector<int64_t>& v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(kI64);
  for (int64_t d : dims) t->add_dims(d);
  for (int64_t x : v) t->add_int64_data(x);
}
onnx::ModelProto model_of(const onnx::GraphProto& g, int opset = 17) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(opset);
  *m.mutable_graph() = g;
  return m;
}

struct Loaded {
  std::unique_ptr<Session> session;
  std::string error;  // load or create error
};
Loaded open(const onnx::ModelProto& m, const std::string& tag, SessionOptions opt = SessionOptions{1}) {
  const std::string path = test::temp_dir(tag) + "/model.onnx";
  test::save(m, path);
  auto model = load_onnx(path);
  if (!model) return {nullptr, model.message()};
  KernelTable table;
  register_kernels(table);
  auto s = Session::create(*model, table, opt);
  if (!s) return {nullptr, s.message()};
  return {std::move(*s), ""};
}

Tensor bool_scalar(bool b) {
  Tensor t = Tensor::allocate(DType::kBool, {});
  t.mutable_data<uint8_t>()[0] = b;
  return t;
}
Tensor int_scalar(int64_t v) {
  Tensor t = Tensor::allocate(DType::kInt64, {});
  t.mutable_data<int64_t>()[0] = v;
  return t;
}
std::vector<float> floats(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

// y = If(c) then x + w (w an outer initializer; x an outer input) else
// If(c2) then x * x else [x, x] concatenated (a nested If whose branches
// read x two levels up; the branches' shapes differ).
onnx::ModelProto nested_if_model() {
  onnx::GraphProto inner_then, inner_else, then_g, else_g, g;
  node(&inner_then, "Mul", {"x", "x"}, {"sq"});
  typed(inner_then.add_output(), "sq", kF, {}, false);
  auto* cat = node(&inner_else, "Concat", {"x", "x"}, {"cat"});
  int_attr(cat, "axis", 0);
  typed(inner_else.add_output(), "cat", kF, {}, false);

  node(&then_g, "Add", {"x", "w"}, {"sum"});
  typed(then_g.add_output(), "sum", kF, {}, false);
  auto* inner = node(&else_g, "If", {"c2"}, {"inner_y"}, "inner_if");
  graph_attr(inner, "then_branch", inner_then);
  graph_attr(inner, "else_branch", inner_else);
  typed(else_g.add_output(), "inner_y", kF, {}, false);

  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "c2", kB, {});
  typed(g.add_input(), "x", kF, {3});
  float_init(&g, "w", {3}, {10, 20, 30});
  auto* top = node(&g, "If", {"c"}, {"y"}, "outer_if");
  graph_attr(top, "then_branch", then_g);
  graph_attr(top, "else_branch", else_g);
  typed(g.add_output(), "y", kF, {}, false);
  return model_of(g);
}

TEST(ControlFlow, NestedIfReadsOuterValuesAndInitializers) {
  auto l = open(nested_if_model(), "nested_if");
  ASSERT_EQ(l.error, "");
  Tensor x = make_tensor({3}, {1, 2, 3});
  auto run = [&](bool c, bool c2) {
    auto out = l.session->run({{"c", bool_scalar(c)}, {"c2", bool_scalar(c2)}, {"x", x}});
    EXPECT_TRUE(out.has_value()) << out.message();
    return out ? floats((*out)[0].tensor) : std::vector<float>{};
  };
  EXPECT_EQ(run(true, false), (std::vector<float>{11, 22, 33}));
  EXPECT_EQ(run(false, true), (std::vector<float>{1, 4, 9}));
  EXPECT_EQ(run(false, false), (std::vector<float>{1, 2, 3, 1, 2, 3}));
  // Again, now that every branch has its plans: same answers.
  EXPECT_EQ(run(false, true), (std::vector<float>{1, 4, 9}));
  EXPECT_EQ(run(true, true), (std::vector<float>{11, 22, 33}));
}

TEST(ControlFlow, TheOuterNodeListsWhatItsSubgraphsRead) {
  const std::string path = test::temp_dir("implicit") + "/model.onnx";
  test::save(nested_if_model(), path);
  auto model = load_onnx(path);
  ASSERT_TRUE(model.has_value()) << model.message();
  const Graph& g = (*model)->graph;
  const Node& top = g.nodes[0];
  // c (its own) + c2 and x (read inside); w is copied in as an initializer.
  EXPECT_EQ(top.explicit_inputs(), 1);
  ASSERT_EQ(top.implicit_inputs, 2);
  std::vector<std::string> names;
  for (int v : top.inputs) names.push_back(g.values[static_cast<size_t>(v)].name);
  EXPECT_EQ(names, (std::vector<std::string>{"c", "x", "c2"}));
  const Graph& then_g = *top.attr("then_branch")->g;
  const int w = then_g.find_value("w");
  ASSERT_NE(w, kNoValue);
  EXPECT_TRUE(then_g.values[static_cast<size_t>(w)].is_initializer);
  EXPECT_EQ(then_g.captures.size(), 1u);  // x
}

// Loop: M trips or until the body's condition turns false; carried (sum,
// a [1] float that grows to [k]) and one scan output (i * 2 as float).
onnx::ModelProto loop_model(bool with_m, bool with_cond) {
  onnx::GraphProto body, g;
  typed(body.add_input(), "i", kI64, {});
  typed(body.add_input(), "cond_in", kB, {});
  typed(body.add_input(), "acc_in", kF, {}, false);
  // cond_out = i < limit (limit from outside); acc_out = acc_in + step (outer)
  node(&body, "Less", {"i", "limit"}, {"cond_out"});
  node(&body, "Add", {"acc_in", "step"}, {"acc_out"});
  auto* cast = node(&body, "Cast", {"i"}, {"i_f"});
  int_attr(cast, "to", kF);
  node(&body, "Add", {"i_f", "i_f"}, {"twice"});
  typed(body.add_output(), "cond_out", kB, {});
  typed(body.add_output(), "acc_out", kF, {}, false);
  typed(body.add_output(), "twice", kF, {});

  typed(g.add_input(), "M", kI64, {});
  typed(g.add_input(), "limit", kI64, {});
  typed(g.add_input(), "acc0", kF, {2});
  typed(g.add_input(), "c0", kB, {});
  float_init(&g, "step", {2}, {1, 0.5f});
  auto* loop = node(&g, "Loop", {with_m ? "M" : "", with_cond ? "c0" : "", "acc0"}, {"acc", "scan"}, "loop");
  graph_attr(loop, "body", body);
  typed(g.add_output(), "acc", kF, {}, false);
  typed(g.add_output(), "scan", kF, {}, false);
  return model_of(g);
}

TEST(ControlFlow, LoopStopsAtTheTripCountOrTheCondition) {
  auto l = open(loop_model(true, true), "loop");
  ASSERT_EQ(l.error, "");
  Tensor acc0 = make_tensor({2}, {0, 0});
  auto run = [&](int64_t m, int64_t limit, bool c0) {
    return l.session->run({{"M", int_scalar(m)}, {"limit", int_scalar(limit)}, {"acc0", acc0}, {"c0", bool_scalar(c0)}});
  };
  // M = 5, the condition stays true (i < 100): 5 iterations.
  auto r = run(5, 100, true);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{5, 2.5f}));
  EXPECT_EQ((*r)[1].tensor.shape(), (Shape{5}));
  EXPECT_EQ(floats((*r)[1].tensor), (std::vector<float>{0, 2, 4, 6, 8}));
  // The body says stop after i = 2 (2 < 2 is false): 3 iterations.
  r = run(100, 2, true);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{3, 1.5f}));
  EXPECT_EQ(floats((*r)[1].tensor), (std::vector<float>{0, 2, 4}));
  // cond false at entry, and M = 0: no iteration; the carried value passes
  // through and the scan output is empty.
  for (auto [m, c] : {std::pair<int64_t, bool>{5, false}, {0, true}}) {
    r = run(m, 100, c);
    ASSERT_TRUE(r.has_value()) << r.message();
    EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{0, 0}));
    EXPECT_EQ((*r)[1].tensor.shape(), (Shape{0}));
  }
  // Many iterations, repeated: same answers, and the plans are made once.
  for (int rep = 0; rep < 3; ++rep) {
    r = run(1000, 5000, true);
    ASSERT_TRUE(r.has_value()) << r.message();
    EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{1000, 500}));
    EXPECT_EQ((*r)[1].tensor.numel(), 1000);
    EXPECT_EQ((*r)[1].tensor.data<float>()[999], 1998);
  }
}

TEST(ControlFlow, LoopWithoutTripCountOrWithoutCondition) {
  Tensor acc0 = make_tensor({2}, {0, 0});
  {
    auto l = open(loop_model(false, true), "loop_nom");  // until the body stops it
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"M", int_scalar(0)}, {"limit", int_scalar(3)}, {"acc0", acc0}, {"c0", bool_scalar(true)}});
    ASSERT_TRUE(r.has_value()) << r.message();
    EXPECT_EQ(floats((*r)[1].tensor), (std::vector<float>{0, 2, 4, 6}));
  }
  {
    auto l = open(loop_model(true, false), "loop_nocond");  // M trips, whatever the body says
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"M", int_scalar(4)}, {"limit", int_scalar(0)}, {"acc0", acc0}, {"c0", bool_scalar(true)}});
    ASSERT_TRUE(r.has_value()) << r.message();
    EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{1, 0.5f}));  // the body's false cond ends it after one trip
  }
  {
    auto l = open(loop_model(false, false), "loop_never");
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"M", int_scalar(4)}, {"limit", int_scalar(0)}, {"acc0", acc0}, {"c0", bool_scalar(true)}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("node 'loop' (Loop): has neither a trip count M nor a condition: it would never end"), std::string::npos)
        << r.message();
  }
}

// Scan: a running sum over rows (state [2]), with the rows taken along
// axis 1 of a [2, 4] input, optionally in reverse, and the partial sums
// stacked along output axis `out_axis`.
onnx::ModelProto scan_model(int64_t in_dir, int64_t out_axis, int64_t out_dir) {
  onnx::GraphProto body, g;
  typed(body.add_input(), "s_in", kF, {2});
  typed(body.add_input(), "col", kF, {2});
  node(&body, "Add", {"s_in", "col"}, {"s_out"});
  node(&body, "Identity", {"s_out"}, {"partial"});
  typed(body.add_output(), "s_out", kF, {2});
  typed(body.add_output(), "partial", kF, {2});
  typed(g.add_input(), "s0", kF, {2});
  typed(g.add_input(), "x", kF, {2, 4});
  auto* scan = node(&g, "Scan", {"s0", "x"}, {"s", "stack"}, "scan");
  graph_attr(scan, "body", body);
  int_attr(scan, "num_scan_inputs", 1);
  ints_attr(scan, "scan_input_axes", {1});
  ints_attr(scan, "scan_input_directions", {in_dir});
  ints_attr(scan, "scan_output_axes", {out_axis});
  ints_attr(scan, "scan_output_directions", {out_dir});
  typed(g.add_output(), "s", kF, {}, false);
  typed(g.add_output(), "stack", kF, {}, false);
  return model_of(g);
}

TEST(ControlFlow, ScanAxesAndDirections) {
  Tensor s0 = make_tensor({2}, {100, 200});
  Tensor x = make_tensor({2, 4}, {1, 2, 3, 4, 10, 20, 30, 40});
  struct Case {
    int64_t in_dir, out_axis, out_dir;
    Shape shape;
    std::vector<float> stack;
  };
  const std::vector<Case> cases = {
      // forward: partial sums per step, stacked as rows [4, 2]
      {0, 0, 0, {4, 2}, {101, 210, 103, 230, 106, 260, 110, 300}},
      // stacked along axis 1: [2, 4]
      {0, 1, 0, {2, 4}, {101, 103, 106, 110, 210, 230, 260, 300}},
      // reverse input: columns 4, 3, 2, 1
      {1, 0, 0, {4, 2}, {104, 240, 107, 270, 109, 290, 110, 300}},
      // reverse output: last step first; axis -1 is axis 1 of [2, 4]
      {0, -1, 1, {2, 4}, {110, 106, 103, 101, 300, 260, 230, 210}},
  };
  for (const Case& c : cases) {
    auto l = open(scan_model(c.in_dir, c.out_axis, c.out_dir), "scan");
    ASSERT_EQ(l.error, "");
    for (int rep = 0; rep < 2; ++rep) {
      auto r = l.session->run({{"s0", s0}, {"x", x}});
      ASSERT_TRUE(r.has_value()) << r.message();
      EXPECT_EQ(floats((*r)[0].tensor), (std::vector<float>{110, 300}));
      EXPECT_EQ((*r)[1].tensor.shape(), c.shape) << c.in_dir << c.out_axis << c.out_dir;
      EXPECT_EQ(floats((*r)[1].tensor), c.stack) << c.in_dir << c.out_axis << c.out_dir;
    }
  }
}

TEST(ControlFlow, ConcurrentRunsOfOneSession) {
  auto l = open(loop_model(true, true), "loop_mt", SessionOptions{1});
  ASSERT_EQ(l.error, "");
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        const int64_t m = 10 + t * 7 + rep;
        auto r = l.session->run({{"M", int_scalar(m)}, {"limit", int_scalar(1000)}, {"acc0", make_tensor({2}, {0, 0})},
                                 {"c0", bool_scalar(true)}});
        if (!r || (*r)[0].tensor.data<float>()[0] != static_cast<float>(m) || (*r)[1].tensor.numel() != m) ++bad[static_cast<size_t>(t)];
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, (std::vector<int>(4, 0)));
}

// A model with subgraphs converts to a blob (format 2 stores them, their
// weights as they are) that runs as the ONNX file does, and a MatMul
// beside them is still quantized.
TEST(ControlFlow, SubgraphsRoundTripThroughTheBlob) {
  onnx::ModelProto m = loop_model(true, true);
  auto* g = m.mutable_graph();
  // acc -> MatMul(wm) -> z at the top level: the one weight to quantize.
  std::vector<float> wm(2 * 64);
  for (size_t i = 0; i < wm.size(); ++i) wm[i] = 0.01f * static_cast<float>(static_cast<int>(i % 13) - 6);
  float_init(g, "wm", {2, 64}, wm);
  node(g, "Unsqueeze", {"acc", "axes0"}, {"acc2"});
  int_init(g, "axes0", {1}, {0});
  node(g, "MatMul", {"acc2", "wm"}, {"z"}, "mm");
  typed(g->add_output(), "z", kF, {}, false);
  const std::string dir = test::temp_dir("cf_blob");
  test::save(m, dir + "/model.onnx");
  auto src = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(src.has_value()) << src.message();
  auto conv = quant::convert_to_blob(**src, dir + "/model.sarai", {});
  ASSERT_TRUE(conv.has_value()) << conv.message();
  EXPECT_EQ(conv->quantized, 1);
  BlobInfo info;
  auto blob = load_blob(dir + "/model.sarai", /*verify=*/true, &info);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  EXPECT_EQ(info.header.format_version, 2u);
  auto onnx = load_onnx(dir + "/model.onnx");
  ASSERT_TRUE(onnx.has_value()) << onnx.message();
  KernelTable table;
  register_kernels(table);
  std::vector<std::vector<NamedTensor>> outs;
  for (auto model : {*onnx, *blob}) {
    auto s = Session::create(model, table, SessionOptions{1});
    ASSERT_TRUE(s.has_value()) << s.message();
    auto r = (*s)->run({{"M", int_scalar(7)}, {"limit", int_scalar(5)}, {"acc0", make_tensor({2}, {1, 2})}, {"c0", bool_scalar(true)}});
    ASSERT_TRUE(r.has_value()) << r.message();
    outs.push_back(std::move(*r));
  }
  EXPECT_TRUE(test::tensors_equal(outs[1][0].tensor, outs[0][0].tensor));  // the loop's, exact
  EXPECT_TRUE(test::tensors_equal(outs[1][1].tensor, outs[0][1].tensor));
  EXPECT_GT(test::cosine(outs[1][2].tensor, outs[0][2].tensor), 0.999);   // the INT8 MatMul
  // The loop body's nodes and the If's nested branches survive in the blob.
  bool found = false;
  for (const Node& n : (*blob)->graph.nodes)
    if (n.op_type == "Loop") {
      found = true;
      ASSERT_TRUE(n.attr("body")->g);
      EXPECT_EQ(n.attr("body")->g->nodes.size(), 4u);
      EXPECT_EQ(n.implicit_inputs, 1);  // limit (step, an initializer, is copied into the body)
    }
  EXPECT_TRUE(found);

  // Nested subgraphs too.
  test::save(nested_if_model(), dir + "/if.onnx");
  auto src2 = load_onnx(dir + "/if.onnx");
  ASSERT_TRUE(src2.has_value());
  ASSERT_TRUE(quant::convert_to_blob(**src2, dir + "/if.sarai", {}).has_value());
  auto blob2 = load_blob(dir + "/if.sarai", /*verify=*/true);
  ASSERT_TRUE(blob2.has_value()) << blob2.message();
  auto s2 = Session::create(*blob2, table, SessionOptions{1});
  ASSERT_TRUE(s2.has_value()) << s2.message();
  auto r2 = (*s2)->run({{"c", bool_scalar(false)}, {"c2", bool_scalar(true)}, {"x", make_tensor({3}, {1, 2, 3})}});
  ASSERT_TRUE(r2.has_value()) << r2.message();
  EXPECT_EQ(floats((*r2)[0].tensor), (std::vector<float>{1, 4, 9}));
}

// `sarai-rt inspect` counts the nodes and constants inside subgraphs and
// names an unsupported op found there.
TEST(ControlFlow, InspectLooksInsideSubgraphs) {
  onnx::ModelProto m = nested_if_model();
  auto* then_g = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
  float_init(then_g, "inner_w", {4}, {1, 2, 3, 4});
  auto* k = node(then_g, "Constant", {}, {"k"});
  auto* a = k->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(kF);
  a->mutable_t()->add_dims(5);
  for (int i = 0; i < 5; ++i) a->mutable_t()->add_float_data(1);
  node(then_g, "NoSuchOp", {"k"}, {"unused"});
  const std::string dir = test::temp_dir("cf_inspect");
  test::save(m, dir + "/model.onnx");
  const test::CliResult r = test::run_cli({"inspect", dir + "/model.onnx"});
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string& out = r.out;
  EXPECT_NE(out.find("ops (1 nodes, and 6 more inside subgraphs):"), std::string::npos) << out;
  EXPECT_NE(out.find("NoSuchOp"), std::string::npos) << out;
  EXPECT_NE(out.find("(unsupported)"), std::string::npos) << out;
  // w [3] (once, though the branch copies it in), inner_w [4], the Constant's 5.
  EXPECT_NE(out.find("parameters: 12 in 2 initializers and 1 Constant nodes"), std::string::npos) << out;
}

// A float16 model with subgraphs: the bodies are upcast too (their float16
// initializers and values), the model's float16 input and output keep their
// type at the interface.
TEST(ControlFlow, Float16BodiesAreUpcast) {
  constexpr int kH = onnx::TensorProto::FLOAT16;
  onnx::GraphProto then_g, else_g, g;
  auto* w = then_g.add_initializer();
  w->set_name("w16");
  w->set_data_type(kH);
  w->add_dims(3);
  for (float v : {0.5f, 1.5f, -2.0f}) w->add_int32_data(float_to_half(v));
  node(&then_g, "Add", {"x", "w16"}, {"sum"});
  typed(then_g.add_output(), "sum", kH, {3});
  node(&else_g, "Mul", {"x", "x"}, {"sq"});
  typed(else_g.add_output(), "sq", kH, {3});
  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "x", kH, {3});
  auto* top = node(&g, "If", {"c"}, {"y"}, "if16");
  graph_attr(top, "then_branch", then_g);
  graph_attr(top, "else_branch", else_g);
  typed(g.add_output(), "y", kH, {3});
  auto l = open(model_of(g), "cf_fp16");
  ASSERT_EQ(l.error, "");
  Tensor x = Tensor::allocate(DType::kFloat16, {3});
  for (int i = 0; i < 3; ++i) x.mutable_data<uint16_t>()[i] = float_to_half(static_cast<float>(i + 1));
  for (bool c : {true, false}) {
    auto r = l.session->run({{"c", bool_scalar(c)}, {"x", x}});
    ASSERT_TRUE(r.has_value()) << r.message();
    const Tensor& y = (*r)[0].tensor;
    ASSERT_EQ(y.dtype(), DType::kFloat16);
    const std::vector<float> want = c ? std::vector<float>{1.5f, 3.5f, 1.0f} : std::vector<float>{1, 4, 9};
    for (int i = 0; i < 3; ++i) EXPECT_EQ(half_to_float(y.data<uint16_t>()[i]), want[static_cast<size_t>(i)]) << c << i;
  }
}

TEST(ControlFlow, Errors) {
  // An unsupported op inside a branch is listed with the model's own.
  {
    onnx::ModelProto m = nested_if_model();
    auto* then_g = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
    then_g->mutable_node(0)->set_op_type("NoSuchOp");
    auto l = open(m, "cf_unsupported");
    EXPECT_NE(l.error.find("1 unsupported op at opset 17: NoSuchOp (1 node, e.g. 'Add_1')"), std::string::npos) << l.error;
  }
  // A name no scope defines.
  {
    onnx::ModelProto m = nested_if_model();
    auto* then_g = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
    then_g->mutable_node(0)->set_input(1, "nowhere");
    auto l = open(m, "cf_unknown_name");
    EXPECT_NE(l.error.find("node 'outer_if' (If) then_branch: node 'Add_1' (Add) reads 'nowhere', which no node, input or "
                           "initializer provides"),
              std::string::npos)
        << l.error;
  }
  // A bad attribute inside a body names the body.
  {
    onnx::ModelProto m = scan_model(0, 0, 0);
    auto* body = m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g();
    int_attr(body->mutable_node(0), "stride", 2);
    auto l = open(m, "cf_bad_attr");
    EXPECT_NE(l.error.find("node 'scan' (Scan) body"), std::string::npos) << l.error;
    EXPECT_NE(l.error.find("'stride'"), std::string::npos) << l.error;
  }
  // Run-time errors: a cond that is not one bool; branches that disagree
  // with the node; scan inputs of different lengths; bad directions.
  {
    auto l = open(nested_if_model(), "cf_cond");
    ASSERT_EQ(l.error, "");
    Tensor two = Tensor::allocate(DType::kBool, {2});
    two.mutable_data<uint8_t>()[0] = two.mutable_data<uint8_t>()[1] = 1;
    // The declared input is a scalar: the session's input check answers first.
    auto r = l.session->run({{"c", two}, {"c2", bool_scalar(true)}, {"x", make_tensor({3}, {1, 2, 3})}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("input 'c' must be bool []"), std::string::npos) << r.message();
  }
  {
    onnx::ModelProto m = nested_if_model();
    m.mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type()->clear_shape();
    auto l = open(m, "cf_cond2");
    ASSERT_EQ(l.error, "");
    Tensor two = Tensor::allocate(DType::kBool, {2});
    auto r = l.session->run({{"c", two}, {"c2", bool_scalar(true)}, {"x", make_tensor({3}, {1, 2, 3})}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("node 'outer_if' (If): input 'cond' must hold one value, got [2]"), std::string::npos) << r.message();
  }
  {
    onnx::ModelProto m = nested_if_model();
    m.mutable_graph()->mutable_node(0)->add_output("extra");
    auto l = open(m, "cf_outputs");
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"c", bool_scalar(true)}, {"c2", bool_scalar(true)}, {"x", make_tensor({3}, {1, 2, 3})}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("then_branch has 1 outputs; the node has 2"), std::string::npos) << r.message();
  }
  {
    onnx::ModelProto m = scan_model(0, 0, 0);
    auto* g = m.mutable_graph();
    typed(g->add_input(), "x2", kF, {2, 5});
    auto* scan = g->mutable_node(0);
    scan->set_input(1, "x");
    scan->add_input("x2");
    scan->mutable_attribute(1)->set_i(2);  // num_scan_inputs
    scan->mutable_attribute(0)->mutable_g()->add_input()->CopyFrom(scan->attribute(0).g().input(1));
    scan->mutable_attribute(0)->mutable_g()->mutable_input(2)->set_name("col2");
    auto* axes = scan->mutable_attribute(2);
    axes->add_ints(1);
    scan->mutable_attribute(3)->add_ints(0);
    auto l = open(m, "cf_scan_len");
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"s0", make_tensor({2}, {0, 0})}, {"x", make_tensor({2, 4}, std::vector<float>(8, 1))},
                             {"x2", make_tensor({2, 5}, std::vector<float>(10, 1))}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("node 'scan' (Scan): scan input 2 has 5 steps along its scan axis; an earlier one has 4"),
              std::string::npos)
        << r.message();
  }
  {
    auto l = open(scan_model(2, 0, 0), "cf_scan_dir");
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"s0", make_tensor({2}, {0, 0})}, {"x", make_tensor({2, 4}, std::vector<float>(8, 1))}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("scan_input_directions holds 2; each must be 0 or 1"), std::string::npos) << r.message();
  }
  {
    auto l = open(scan_model(0, 3, 0), "cf_scan_axis");
    ASSERT_EQ(l.error, "");
    auto r = l.session->run({{"s0", make_tensor({2}, {0, 0})}, {"x", make_tensor({2, 4}, std::vector<float>(8, 1))}});
    ASSERT_FALSE(r.has_value());
    EXPECT_NE(r.message().find("scan output axis is out of range for rank 2"), std::string::npos) << r.message();
  }
  // Without a session, the kernel says what it needs.
  {
    Node n;
    n.name = "lone";
    n.op_type = "If";
    Tensor c = bool_scalar(true);
    const Tensor* ins[] = {&c};
    std::vector<Tensor> outs(1);
    n.inputs = {0};
    n.outputs = {1};
    KernelContext ctx(n, 17, ins, outs, 1);
    Status st = invoke_kernel(kernels::If, ctx);
    EXPECT_NE(st.message().find("If runs its subgraphs only inside a session"), std::string::npos) << st.message();
  }
}

}  // namespace
}  // namespace sarai
