// `convert` quantizes the weights inside subgraphs (If / Loop bodies, at
// any depth) with the main graph's rules: the blob loads, runs close to
// FP32, stores a weight several graphs share once, names each choice with
// its subgraph, and says what --static leaves dynamic there; and the
// writer's errors for subgraph tensor tables.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/npy.h"
#include "loader/onnx_loader.h"
#include "quantizer/blob_writer.h"
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

constexpr int kF = onnx::TensorProto::FLOAT, kB = onnx::TensorProto::BOOL, kI64 = onnx::TensorProto::INT64;

// A float initializer of pseudo-random values in [-0.5, 0.5).
void weight(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims, uint32_t seed) {
  Shape s(dims.begin(), dims.end());
  test::add_float_initializer(g, name, test::random_tensor(s, seed, -0.5f, 0.5f));
}
onnx::ModelProto model_of(const onnx::GraphProto& g) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  *m.mutable_graph() = g;
  return m;
}
// A branch y = MatMul(x, w) named `mm` (w from the branch or outside).
onnx::GraphProto matmul_branch(const std::string& name, const std::string& w, const std::string& mm) {
  onnx::GraphProto b;
  b.set_name(name);
  node(&b, "MatMul", {"x", w}, {name + "_y"}, mm);
  typed(b.add_output(), name + "_y", kF, {2, 48});
  return b;
}

// y = If(c) then x · w_outer (an outer initializer the loader copies into
// the branch) else x · w_else (the branch's own); `shared`: both branches
// read w_outer.
onnx::ModelProto if_model(bool shared) {
  onnx::GraphProto g;
  g.set_name("if_model");
  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "x", kF, {2, 64});
  weight(&g, "w_outer", {64, 48}, 1);
  onnx::GraphProto then_g = matmul_branch("then", "w_outer", "mm_then");
  onnx::GraphProto else_g = matmul_branch("else", shared ? "w_outer" : "w_else", "mm_else");
  if (!shared) weight(&else_g, "w_else", {64, 48}, 2);
  auto* n = node(&g, "If", {"c"}, {"y"}, "cond");
  graph_attr(n, "then_branch", then_g);
  graph_attr(n, "else_branch", else_g);
  typed(g.add_output(), "y", kF, {2, 48});
  return model_of(g);
}

// If(c) then [If(c2) then x · w_deep else x · w_deep2] else x · w_else.
onnx::ModelProto nested_model() {
  onnx::GraphProto g;
  g.set_name("nested");
  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "c2", kB, {});
  typed(g.add_input(), "x", kF, {2, 64});
  onnx::GraphProto inner_then = matmul_branch("ithen", "w_deep", "mm_deep");
  weight(&inner_then, "w_deep", {64, 48}, 3);
  onnx::GraphProto inner_else = matmul_branch("ielse", "w_deep2", "mm_deep2");
  weight(&inner_else, "w_deep2", {64, 48}, 4);
  onnx::GraphProto outer_then;
  outer_then.set_name("othen");
  auto* inner = node(&outer_then, "If", {"c2"}, {"othen_y"}, "inner");
  graph_attr(inner, "then_branch", inner_then);
  graph_attr(inner, "else_branch", inner_else);
  typed(outer_then.add_output(), "othen_y", kF, {2, 48});
  onnx::GraphProto outer_else = matmul_branch("oelse", "w_else", "mm_else");
  weight(&outer_else, "w_else", {64, 48}, 5);
  auto* n = node(&g, "If", {"c"}, {"y"}, "outer");
  graph_attr(n, "then_branch", outer_then);
  graph_attr(n, "else_branch", outer_else);
  typed(g.add_output(), "y", kF, {2, 48});
  return model_of(g);
}

// A Loop of 3 iterations whose body runs v = Relu(Conv(v, w_conv)), v
// [1, 8, 6, 6], w_conv [8, 8, 3, 3] a body initializer.
onnx::ModelProto loop_conv_model() {
  onnx::GraphProto g;
  g.set_name("loop_conv");
  typed(g.add_input(), "v0", kF, {1, 8, 6, 6});
  auto* trip = g.add_initializer();
  trip->set_name("trip");
  trip->set_data_type(kI64);
  trip->add_int64_data(3);
  onnx::GraphProto body;
  body.set_name("body");
  typed(body.add_input(), "i", kI64, {});
  typed(body.add_input(), "cond_in", kB, {});
  typed(body.add_input(), "v", kF, {1, 8, 6, 6});
  weight(&body, "w_conv", {8, 8, 3, 3}, 6);
  node(&body, "Identity", {"cond_in"}, {"cond_out"}, "keep_going");
  auto* conv = node(&body, "Conv", {"v", "w_conv"}, {"cv"}, "conv_body");
  ints_attr(conv, "pads", {1, 1, 1, 1});
  node(&body, "Relu", {"cv"}, {"v_next"}, "relu_body");
  typed(body.add_output(), "cond_out", kB, {});
  typed(body.add_output(), "v_next", kF, {1, 8, 6, 6});
  auto* loop = node(&g, "Loop", {"trip", "", "v0"}, {"v_final"}, "loop");
  graph_attr(loop, "body", body);
  typed(g.add_output(), "v_final", kF, {1, 8, 6, 6});
  return model_of(g);
}

Tensor bool_scalar(bool b) {
  Tensor t = Tensor::allocate(DType::kBool, {});
  t.mutable_data<uint8_t>()[0] = b;
  return t;
}

std::string meta(const Model& m, const std::string& key) {
  for (const auto& [k, v] : m.metadata)
    if (k == key) return v;
  return "<absent>";
}

struct Converted {
  std::string dir;
  std::shared_ptr<Model> onnx, blob;
  BlobInfo info;
  quant::ConvertSummary summary;
};

// Saves m, converts it with `opt`, loads both (ASSERTs inside: check
// HasFatalFailure).
void convert(const onnx::ModelProto& m, const std::string& tag, const quant::ConvertOptions& opt, Converted* c) {
  c->dir = test::temp_dir(tag);
  test::save(m, c->dir + "/model.onnx");
  auto src = load_onnx(c->dir + "/model.onnx");
  ASSERT_TRUE(src.has_value()) << src.message();
  auto r = quant::convert_to_blob(**src, c->dir + "/model.sarai", opt);
  ASSERT_TRUE(r.has_value()) << r.message();
  c->summary = *r;
  auto blob = load_blob(c->dir + "/model.sarai", /*verify=*/true, &c->info);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  c->blob = *blob;
  auto onnx = load_onnx(c->dir + "/model.onnx");
  ASSERT_TRUE(onnx.has_value()) << onnx.message();
  c->onnx = *onnx;
}

// The first output of both models on `inputs`: (FP32, blob).
std::pair<Tensor, Tensor> run_both(const Converted& c, const std::vector<NamedTensor>& inputs) {
  std::vector<Tensor> outs;
  for (auto model : {c.onnx, c.blob}) {
    auto s = test::session_on(model, SessionOptions{1});
    if (!s) return {};
    auto r = s->run(inputs);
    EXPECT_TRUE(r.has_value()) << r.message();
    if (!r) return {};
    outs.push_back((*r)[0].tensor);
  }
  return {outs[0], outs[1]};
}

int count_int8(const BlobInfo& info) {
  int n = 0;
  for (const auto& t : info.tensors) n += t.dtype == DType::kInt8;
  return n;
}
int count_float_of(const BlobInfo& info, int64_t numel) {
  int n = 0;
  for (const auto& t : info.tensors) n += t.dtype == DType::kFloat32 && numel_of(t.dims) == numel;
  return n;
}

const Node* find_node(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

TEST(SubgraphQuant, IfBranchesQuantizedAndRunClose) {
  Converted c;
  convert(if_model(/*shared=*/false), "sq_if", {}, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 2);
  EXPECT_EQ(c.summary.kept_fp32, 0);
  EXPECT_EQ(count_int8(c.info), 2);
  // Neither FP32 weight is still stored: w_outer is read only by the branch.
  EXPECT_EQ(count_float_of(c.info, 64 * 48), 0);
  const Node* n = find_node(c.blob->graph, "cond");
  ASSERT_NE(n, nullptr);
  const Node* mm = find_node(*n->attr("then_branch")->g, "mm_then");
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->op_type, "QMatMul");
  EXPECT_EQ(mm->domain, "sarai");
  EXPECT_EQ(find_node(*n->attr("else_branch")->g, "mm_else")->op_type, "QMatMul");
  EXPECT_EQ(meta(*c.blob, "choice:cond.then_branch/w_outer"), "int8 per-channel (axis 1)");
  EXPECT_EQ(meta(*c.blob, "choice:cond.else_branch/w_else"), "int8 per-channel (axis 1)");
  int scoped = 0;
  for (const auto& ch : c.summary.choices) scoped += ch.scope == "cond.then_branch/" || ch.scope == "cond.else_branch/";
  EXPECT_EQ(scoped, 2);
  const Tensor x = test::random_tensor({2, 64}, 9);
  for (bool branch : {true, false}) {
    auto [ref, got] = run_both(c, {{"c", bool_scalar(branch)}, {"x", x}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_GE(test::cosine(ref, got), 0.99) << "branch " << branch;
    EXPECT_FALSE(test::tensors_equal(ref, got));  // INT8, not the FP32 weights
  }
}

// One outer weight read by both branches: quantized once, stored once.
TEST(SubgraphQuant, SharedOuterWeightStoredOnce) {
  Converted c;
  convert(if_model(/*shared=*/true), "sq_shared", {}, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 1);
  EXPECT_EQ(count_int8(c.info), 1);
  EXPECT_EQ(count_float_of(c.info, 64 * 48), 0);
  const Tensor x = test::random_tensor({2, 64}, 10);
  for (bool branch : {true, false}) {
    auto [ref, got] = run_both(c, {{"c", bool_scalar(branch)}, {"x", x}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_GE(test::cosine(ref, got), 0.99);
  }
  // Kept in FP32 everywhere (--keep-fp32 on the weight's name): one FP32
  // copy in the blob, not one per graph.
  quant::ConvertOptions keep;
  keep.keep_fp32 = {"w_outer"};
  Converted k;
  convert(if_model(/*shared=*/true), "sq_shared_fp32", keep, &k);
  if (HasFatalFailure()) return;
  EXPECT_EQ(k.summary.quantized, 0);
  EXPECT_EQ(k.summary.kept_fp32, 1);
  EXPECT_EQ(count_float_of(k.info, 64 * 48), 1);
  EXPECT_EQ(meta(*k.blob, "choice:cond.else_branch/w_outer"), "fp32: matches --keep-fp32 'w_outer'");
  auto [ref, got] = run_both(k, {{"c", bool_scalar(false)}, {"x", x}});
  ASSERT_TRUE(ref.defined() && got.defined());
  EXPECT_TRUE(test::tensors_equal(ref, got));
}

// A weight made by a Constant node outside the body (Silero v5 keeps its
// LSTM weights so): the body captures it, and convert makes it the body's
// constant, quantized there, and drops it from the If's implicit inputs.
TEST(SubgraphQuant, ConstantOutsideTheBody) {
  onnx::GraphProto g;
  g.set_name("const_outside");
  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "x", kF, {2, 64});
  auto* k = node(&g, "Constant", {}, {"w_const"}, "make_w");
  auto* a = k->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  {
    const Tensor t = test::random_tensor({64, 48}, 15, -0.5f, 0.5f);
    auto* tp = a->mutable_t();
    tp->set_data_type(kF);
    tp->add_dims(64);
    tp->add_dims(48);
    for (int64_t i = 0; i < t.numel(); ++i) tp->add_float_data(t.data<float>()[i]);
  }
  auto* n = node(&g, "If", {"c"}, {"y"}, "cond");
  graph_attr(n, "then_branch", matmul_branch("then", "w_const", "mm_then"));
  graph_attr(n, "else_branch", matmul_branch("else", "w_const", "mm_else"));
  typed(g.add_output(), "y", kF, {2, 48});
  Converted c;
  convert(model_of(g), "sq_const", {}, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 1);
  EXPECT_EQ(count_float_of(c.info, 64 * 48), 0);
  const Node* iff = find_node(c.blob->graph, "cond");
  ASSERT_NE(iff, nullptr);
  EXPECT_EQ(iff->implicit_inputs, 1);  // x only
  EXPECT_EQ(find_node(*iff->attr("else_branch")->g, "mm_else")->op_type, "QMatMul");
  for (bool branch : {true, false}) {
    auto [ref, got] = run_both(c, {{"c", bool_scalar(branch)}, {"x", test::random_tensor({2, 64}, 16)}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_GE(test::cosine(ref, got), 0.99);
  }
}

TEST(SubgraphQuant, LoopBodyConv) {
  Converted c;
  convert(loop_conv_model(), "sq_loop", {}, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 1);
  const Node* loop = find_node(c.blob->graph, "loop");
  ASSERT_NE(loop, nullptr);
  EXPECT_EQ(find_node(*loop->attr("body")->g, "conv_body")->op_type, "QConv");
  EXPECT_EQ(meta(*c.blob, "choice:loop.body/w_conv"), "int8 per-channel (axis 0)");
  auto [ref, got] = run_both(c, {{"v0", test::random_tensor({1, 8, 6, 6}, 11, 0.f, 1.f)}});
  ASSERT_TRUE(ref.defined() && got.defined());
  EXPECT_GE(test::cosine(ref, got), 0.99);
}

TEST(SubgraphQuant, NestedDepthTwo) {
  Converted c;
  convert(nested_model(), "sq_nested", {}, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 3);
  EXPECT_EQ(count_int8(c.info), 3);
  EXPECT_EQ(meta(*c.blob, "choice:outer.then_branch/inner.then_branch/w_deep"), "int8 per-channel (axis 1)");
  EXPECT_EQ(meta(*c.blob, "choice:outer.then_branch/inner.else_branch/w_deep2"), "int8 per-channel (axis 1)");
  const Node* outer = find_node(c.blob->graph, "outer");
  ASSERT_NE(outer, nullptr);
  const Node* inner = find_node(*outer->attr("then_branch")->g, "inner");
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(find_node(*inner->attr("then_branch")->g, "mm_deep")->op_type, "QMatMul");
  const Tensor x = test::random_tensor({2, 64}, 12);
  for (auto [a, b] : {std::pair{true, true}, {true, false}, {false, true}}) {
    auto [ref, got] = run_both(c, {{"c", bool_scalar(a)}, {"c2", bool_scalar(b)}, {"x", x}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_GE(test::cosine(ref, got), 0.99) << a << b;
  }
}

// --keep-fp32, --min-elements and --per-tensor apply inside subgraphs.
TEST(SubgraphQuant, OptionsApplyInsideSubgraphs) {
  {
    quant::ConvertOptions o;
    o.keep_fp32 = {"mm_deep"};
    Converted c;
    convert(nested_model(), "sq_opt_keep", o, &c);
    if (HasFatalFailure()) return;
    EXPECT_EQ(c.summary.quantized, 2);
    EXPECT_EQ(c.summary.kept_fp32, 1);
    EXPECT_EQ(meta(*c.blob, "choice:outer.then_branch/inner.then_branch/w_deep"),
              "fp32: node 'mm_deep' matches --keep-fp32 'mm_deep'");
    auto [ref, got] = run_both(c, {{"c", bool_scalar(true)}, {"c2", bool_scalar(true)}, {"x", test::random_tensor({2, 64}, 13)}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_TRUE(test::tensors_equal(ref, got));  // that branch is all FP32
  }
  {
    quant::ConvertOptions o;
    o.min_elements = 64 * 48 + 1;
    Converted c;
    convert(nested_model(), "sq_opt_min", o, &c);
    if (HasFatalFailure()) return;
    EXPECT_EQ(c.summary.quantized, 0);
    EXPECT_EQ(c.summary.kept_fp32, 3);
    EXPECT_EQ(meta(*c.blob, "choice:outer.else_branch/w_else"), "fp32: 3072 elements < --min-elements 3073");
  }
  {
    quant::ConvertOptions o;
    o.per_tensor = true;
    Converted c;
    convert(nested_model(), "sq_opt_pt", o, &c);
    if (HasFatalFailure()) return;
    EXPECT_EQ(c.summary.quantized, 3);
    EXPECT_EQ(meta(*c.blob, "choice:outer.else_branch/w_else"), "int8 per-tensor");
    for (const auto& t : c.info.tensors) {
      if (t.dtype == DType::kInt8) {
        EXPECT_EQ(t.entry.scheme, blob::Scheme::kInt8PerTensor) << t.name;
      }
    }
    auto [ref, got] = run_both(c, {{"c", bool_scalar(false)}, {"c2", bool_scalar(true)}, {"x", test::random_tensor({2, 64}, 14)}});
    ASSERT_TRUE(ref.defined() && got.defined());
    EXPECT_GE(test::cosine(ref, got), 0.99);
  }
}

// With static ranges, the layers inside subgraphs (which calibration does
// not measure) keep dynamic ranges, counted and recorded.
TEST(SubgraphQuant, StaticLeavesSubgraphLayersDynamic) {
  quant::ConvertOptions o;
  o.activation_ranges["x"] = quant::ActivationRange{-1.f, 1.f};
  Converted c;
  convert(if_model(/*shared=*/false), "sq_static", o, &c);
  if (HasFatalFailure()) return;
  EXPECT_EQ(c.summary.quantized, 2);
  EXPECT_EQ(c.summary.dynamic_subgraph_layers, 2);
  EXPECT_EQ(meta(*c.blob, "static.subgraph_layers"),
            "2 quantized layers inside subgraphs use dynamic activation ranges (calibration measures the main graph "
            "only)");
  const Node* n = find_node(c.blob->graph, "cond");
  ASSERT_NE(n, nullptr);
  EXPECT_FALSE(find_node(*n->attr("then_branch")->g, "mm_then")->has_attr("x_min"));
}

// The CLI prints counts that include subgraph weights, and inspect lists
// their choices.
TEST(SubgraphQuant, CliConvertAndInspect) {
  const std::string dir = test::temp_dir("sq_cli");
  test::save(nested_model(), dir + "/m.onnx");
  test::CliResult r = test::run_cli({"convert", dir + "/m.onnx", "-o", dir + "/m.sarai", "-q"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_HAS(r.out, "weights: 3 quantized to INT8, 0 kept in FP32");
  test::CliResult i = test::run_cli({"inspect", dir + "/m.sarai"});
  ASSERT_EQ(i.code, 0) << i.err;
  EXPECT_HAS(i.out, "outer.then_branch/inner.then_branch/w_deep: int8 per-channel (axis 1)");
  // compare --per-layer: the quantized nodes are all inside subgraphs; it
  // says so and still compares the outputs.
  ASSERT_TRUE(write_npy(dir + "/c.npy", bool_scalar(true)));
  ASSERT_TRUE(write_npy(dir + "/c2.npy", bool_scalar(false)));
  ASSERT_TRUE(write_npy(dir + "/x.npy", test::random_tensor({2, 64}, 17)));
  test::CliResult c = test::run_cli({"compare", dir + "/m.onnx", dir + "/m.sarai", "--input", "c=" + dir + "/c.npy",
                                     "--input", "c2=" + dir + "/c2.npy", "--input", "x=" + dir + "/x.npy",
                                     "--per-layer", "--min-cosine", "0.99"});
  EXPECT_EQ(c.code, 0) << c.out << c.err;
  EXPECT_HAS(c.err, "note: --per-layer measures the main graph's layers; 3 quantized nodes inside subgraphs "
                    "(If / Loop / Scan bodies) are not listed");
  EXPECT_HAS(c.out, "thresholds held");
}

TEST(SubgraphQuant, Errors) {
  // Nested deeper than the blob reader reads.
  onnx::GraphProto cur;
  cur.set_name("l0");
  node(&cur, "Identity", {"x"}, {"l0_y"}, "id0");
  typed(cur.add_output(), "l0_y", kF, {2, 64});
  for (int d = 1; d <= 17; ++d) {
    onnx::GraphProto up;
    const std::string nm = test::numbered("l", static_cast<size_t>(d));
    up.set_name(nm);
    auto* n = node(&up, "If", {"c"}, {nm + "_y"}, test::numbered("if", static_cast<size_t>(d)));
    graph_attr(n, "then_branch", cur);
    onnx::GraphProto flat;  // the else branches stay one level deep
    flat.set_name(nm + "_else");
    node(&flat, "Identity", {"x"}, {nm + "_e"}, nm + "_id");
    typed(flat.add_output(), nm + "_e", kF, {2, 64});
    graph_attr(n, "else_branch", flat);
    typed(up.add_output(), nm + "_y", kF, {2, 64});
    cur = up;
  }
  onnx::GraphProto g = cur;
  g.set_name("deep");
  typed(g.add_input(), "c", kB, {});
  typed(g.add_input(), "x", kF, {2, 64});
  const std::string dir = test::temp_dir("sq_err");
  test::save(model_of(g), dir + "/deep.onnx");
  auto src = load_onnx(dir + "/deep.onnx");
  ASSERT_TRUE(src.has_value()) << src.message();
  auto r = quant::convert_to_blob(**src, dir + "/deep.sarai", {});
  ASSERT_FALSE(r.has_value());
  EXPECT_HAS(r.message(), "subgraphs nest deeper than 16");

  // An unknown --recurrent value.
  quant::ConvertOptions o;
  o.recurrent = "int4";
  auto src2 = load_onnx(dir + "/deep.onnx");
  ASSERT_TRUE(src2.has_value());
  auto r2 = quant::convert_to_blob(**src2, dir + "/x.sarai", o);
  ASSERT_FALSE(r2.has_value());
  EXPECT_HAS(r2.message(), "recurrent 'int4' is not fp32 or int8");
}

// BlobWriter::finish with a subgraph tensor table that does not fit.
TEST(SubgraphQuant, WriterSubgraphTableErrors) {
  auto sub = std::make_shared<Graph>();
  sub->name = "body";
  const int a = sub->add_value("a");
  sub->inputs.push_back(a);
  sub->outputs.push_back(a);
  Graph top;
  top.opset = 17;
  const int c = test::add_input(top, "c", DType::kBool);
  const int y = top.add_value("y");
  Node n;
  n.name = "if0";
  n.op_type = "If";
  n.inputs = {c};
  n.outputs = {y};
  Attribute ga;
  ga.kind = Attribute::Kind::kGraph;
  ga.g = sub;
  n.attrs["then_branch"] = ga;
  top.values[static_cast<size_t>(y)].producer = 0;
  top.nodes.push_back(n);
  top.outputs.push_back(y);
  const std::string dir = test::temp_dir("sq_writer");
  for (int which = 0; which < 2; ++which) {
    auto w = blob::BlobWriter::create(dir + "/b.sarai.tmp", dir + "/b.sarai");
    ASSERT_TRUE(w.has_value()) << w.message();
    blob::SubgraphTensors subs;
    subs[sub.get()] = which == 0 ? std::vector<int32_t>{} : std::vector<int32_t>{5};
    Status st = (*w)->finish(top, std::vector<int32_t>(top.values.size(), -1), &subs);
    ASSERT_FALSE(st);
    if (which == 0) EXPECT_HAS(st.message(), "subgraph 'if0.then_branch/' has 1 values but 0 tensor entries");
    else EXPECT_HAS(st.message(), "value 'if0.then_branch/a' names tensor 5 of 0");
  }
}

}  // namespace
}  // namespace sarai
