// `convert --recurrent int8`: LSTM / GRU / RNN become sarai::QLSTM / QGRU /
// QRNN with W and R stored as INT8 per gate row, and run close to the FP32
// layers (cosine) in every direction, with biases, states, peepholes,
// sequence lengths, layout 1 and inside an If body; the default keeps them
// FP32; and every error of the INT8 kernels and of the option.
#include <gtest/gtest.h>

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

constexpr int kF = onnx::TensorProto::FLOAT, kI32 = onnx::TensorProto::INT32, kB = onnx::TensorProto::BOOL;

void typed(onnx::ValueInfoProto* vi, const std::string& name, int elem, const std::vector<int64_t>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  auto* s = tt->mutable_shape();
  for (int64_t d : dims) s->add_dim()->set_dim_value(d);
}
void untyped_output(onnx::GraphProto* g, const std::string& name) {
  auto* vi = g->add_output();
  vi->set_name(name);
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(kF);
}

struct Layer {
  std::string op = "LSTM";
  std::string direction = "forward";
  int64_t seq = 5, batch = 3, in = 24, hid = 32;
  bool bias = true, states = true, peepholes = false, lens = false, lbr = false, layout1 = false;
  bool in_if = false;     // the layer inside an If's then branch
  bool unsqueeze = false; // W and R made from 2-D constants by Slice / Concat / Unsqueeze (Silero v5's form)
  int opset = 14;
};

int gates(const std::string& op) { return op == "LSTM" ? 4 : op == "GRU" ? 3 : 1; }

// X (and sequence_lens) as inputs, W R B P initial_h initial_c as
// initializers; outputs Y, Y_h (, Y_c).
onnx::ModelProto layer_model(const Layer& l) {
  const int64_t nd = l.direction == "bidirectional" ? 2 : 1, gh = gates(l.op) * l.hid;
  onnx::GraphProto g;
  g.set_name("rnn");
  typed(g.add_input(), "X", kF, l.layout1 ? std::vector<int64_t>{l.batch, l.seq, l.in} : std::vector<int64_t>{l.seq, l.batch, l.in});
  if (l.lens) typed(g.add_input(), "lens", kI32, {l.batch});
  if (l.unsqueeze) {
    test::add_float_initializer(&g, "W2", test::random_tensor({gh, l.in}, 1, -0.4f, 0.4f));
    test::add_float_initializer(&g, "R2", test::random_tensor({gh, l.hid}, 2, -0.4f, 0.4f));
    test::add_initializer(&g, "axes0", test::make_tensor<int64_t>({1}, {0}));
    // W = Unsqueeze(Concat(W2[half:], W2[:half])) (a gate reorder, as
    // PyTorch exports it), R = Unsqueeze(R2).
    test::add_initializer(&g, "s0", test::make_tensor<int64_t>({1}, {0}));
    test::add_initializer(&g, "half", test::make_tensor<int64_t>({1}, {gh / 2}));
    test::add_initializer(&g, "big", test::make_tensor<int64_t>({1}, {INT64_MAX}));
    test::add_initializer(&g, "step1", test::make_tensor<int64_t>({1}, {1}));
    auto add = [&](const std::string& op, const std::string& name, std::vector<std::string> ins, const std::string& out) {
      auto* u = g.add_node();
      u->set_op_type(op);
      u->set_name(name);
      for (auto& i : ins) u->add_input(i);
      u->add_output(out);
      return u;
    };
    add("Slice", "slice_hi", {"W2", "half", "big", "axes0", "step1"}, "W_hi");
    add("Slice", "slice_lo", {"W2", "s0", "half"}, "W_lo");
    auto* cat = add("Concat", "concat_W", {"W_hi", "W_lo"}, "W_cat");
    auto* a = cat->add_attribute();
    a->set_name("axis");
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(0);
    add("Unsqueeze", "unsqueeze_W", {"W_cat", "axes0"}, "W");
    add("Unsqueeze", "unsqueeze_R", {"R2", "axes0"}, "R");
  } else {
    test::add_float_initializer(&g, "W", test::random_tensor({nd, gh, l.in}, 1, -0.4f, 0.4f));
    test::add_float_initializer(&g, "R", test::random_tensor({nd, gh, l.hid}, 2, -0.4f, 0.4f));
  }
  if (l.bias) test::add_float_initializer(&g, "B", test::random_tensor({nd, 2 * gh}, 3, -0.2f, 0.2f));
  const Shape state = l.layout1 ? Shape{l.batch, nd, l.hid} : Shape{nd, l.batch, l.hid};
  if (l.states) {
    test::add_float_initializer(&g, "h0", test::random_tensor(state, 4, -0.5f, 0.5f));
    if (l.op == "LSTM") test::add_float_initializer(&g, "c0", test::random_tensor(state, 5, -0.5f, 0.5f));
  }
  if (l.peepholes) test::add_float_initializer(&g, "P", test::random_tensor({nd, 3 * l.hid}, 6, -0.3f, 0.3f));
  onnx::GraphProto* body = &g;
  onnx::GraphProto then_g;
  if (l.in_if) {
    typed(g.add_input(), "c", kB, {});
    then_g.set_name("then");
    body = &then_g;
  }
  auto* n = body->add_node();
  n->set_op_type(l.op);
  n->set_name("rnn_layer");
  for (const std::string& s : {std::string("X"), std::string("W"), std::string("R"), std::string(l.bias ? "B" : ""),
                               std::string(l.lens ? "lens" : ""), std::string(l.states ? "h0" : "")})
    n->add_input(s);
  if (l.op == "LSTM") {
    n->add_input(l.states ? "c0" : "");
    n->add_input(l.peepholes ? "P" : "");
  }
  n->add_output("Y");
  n->add_output("Y_h");
  if (l.op == "LSTM") n->add_output("Y_c");
  auto add_attr = [&](const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  };
  add_attr("hidden_size", l.hid);
  {
    auto* a = n->add_attribute();
    a->set_name("direction");
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(l.direction);
  }
  if (l.op == "GRU") add_attr("linear_before_reset", l.lbr ? 1 : 0);
  if (l.layout1) add_attr("layout", 1);
  if (l.in_if) {
    // The branch's outputs: Y and Y_h (as Silero's If returns its LSTM's).
    untyped_output(&then_g, "Y");
    untyped_output(&then_g, "Y_h");
    onnx::GraphProto else_g;
    else_g.set_name("else");
    auto* a = else_g.add_node();
    a->set_op_type("Identity");
    a->set_name("else_y");
    a->add_input("Yc");
    a->add_output("Ye");
    auto* b = else_g.add_node();
    b->set_op_type("Identity");
    b->set_name("else_h");
    b->add_input("Yhc");
    b->add_output("Yhe");
    untyped_output(&else_g, "Ye");
    untyped_output(&else_g, "Yhe");
    const Shape y = {l.seq, nd, l.batch, l.hid};
    test::add_float_initializer(&g, "Yc", Tensor::allocate(DType::kFloat32, y));
    test::add_float_initializer(&g, "Yhc", Tensor::allocate(DType::kFloat32, state));
    auto* iff = g.add_node();
    iff->set_op_type("If");
    iff->set_name("gate");
    iff->add_input("c");
    iff->add_output("out_y");
    iff->add_output("out_h");
    for (auto [name, gp] : {std::pair<const char*, onnx::GraphProto*>{"then_branch", &then_g}, {"else_branch", &else_g}}) {
      auto* at = iff->add_attribute();
      at->set_name(name);
      at->set_type(onnx::AttributeProto::GRAPH);
      *at->mutable_g() = *gp;
    }
    untyped_output(&g, "out_y");
    untyped_output(&g, "out_h");
  } else {
    untyped_output(&g, "Y");
    untyped_output(&g, "Y_h");
    if (l.op == "LSTM") untyped_output(&g, "Y_c");
  }
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(l.opset);
  *m.mutable_graph() = g;
  return m;
}

std::string meta(const Model& m, const std::string& key) {
  for (const auto& [k, v] : m.metadata)
    if (k == key) return v;
  return "<absent>";
}

const Node* find_node(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return &n;
    for (const auto& [k, a] : n.attrs)
      if (a.g)
        if (const Node* f = find_node(*a.g, name)) return f;
  }
  return nullptr;
}

struct Result {
  quant::ConvertSummary summary;
  std::shared_ptr<Model> blob;
  std::vector<double> cosines;  // per output
};

// Converts the layer's model with `opt`, runs it and the ONNX model on the
// same inputs, returns each output's cosine.
void convert_and_compare(const Layer& l, const quant::ConvertOptions& opt, const std::string& tag, Result* res) {
  const std::string dir = test::temp_dir(tag);
  test::save(layer_model(l), dir + "/m.onnx");
  auto src = load_onnx(dir + "/m.onnx");
  ASSERT_TRUE(src.has_value()) << src.message();
  auto r = quant::convert_to_blob(**src, dir + "/m.sarai", opt);
  ASSERT_TRUE(r.has_value()) << r.message();
  res->summary = *r;
  auto blob = load_blob(dir + "/m.sarai", /*verify=*/true);
  ASSERT_TRUE(blob.has_value()) << blob.message();
  res->blob = *blob;
  auto onnx = load_onnx(dir + "/m.onnx");
  ASSERT_TRUE(onnx.has_value());
  std::vector<NamedTensor> in = {
      {"X", test::random_tensor(l.layout1 ? Shape{l.batch, l.seq, l.in} : Shape{l.seq, l.batch, l.in}, 7)}};
  if (l.lens) {
    std::vector<int32_t> v;
    for (int64_t i = 0; i < l.batch; ++i) v.push_back(static_cast<int32_t>(l.seq - i % (l.seq + 1)));
    in.push_back({"lens", test::make_tensor<int32_t>({l.batch}, v)});
  }
  if (l.in_if) {
    Tensor c = Tensor::allocate(DType::kBool, {});
    c.mutable_data<uint8_t>()[0] = 1;
    in.push_back({"c", c});
  }
  std::vector<std::vector<NamedTensor>> outs;
  for (auto model : {*onnx, *blob}) {
    auto s = test::session_on(model, SessionOptions{1});
    ASSERT_TRUE(s);
    auto o = s->run(in);
    ASSERT_TRUE(o.has_value()) << o.message();
    // On 2 and 3 threads (a bidirectional layer then runs its directions at
    // once), FP32 and INT8 alike: the same bits as on one thread.
    for (int threads : {2, 3}) {
      auto st = test::session_on(model, SessionOptions{threads});
      ASSERT_TRUE(st);
      auto ot = st->run(in);
      ASSERT_TRUE(ot.has_value()) << ot.message();
      ASSERT_EQ(ot->size(), o->size());
      for (size_t i = 0; i < o->size(); ++i)
        EXPECT_TRUE(test::tensors_equal((*ot)[i].tensor, (*o)[i].tensor))
            << (*o)[i].name << " on " << threads << " threads (" << (model == *blob ? "INT8" : "FP32") << ")";
    }
    outs.push_back(std::move(*o));
  }
  ASSERT_EQ(outs[0].size(), outs[1].size());
  for (size_t i = 0; i < outs[0].size(); ++i) res->cosines.push_back(test::cosine(outs[0][i].tensor, outs[1][i].tensor));
}

quant::ConvertOptions int8_recurrent() {
  quant::ConvertOptions o;
  o.recurrent = "int8";
  return o;
}

TEST(RecurrentInt8, EveryOpAndDirectionCloseToFp32) {
  for (const std::string op : {"LSTM", "GRU", "RNN"})
    for (const std::string dir : {"forward", "reverse", "bidirectional"})
      for (bool lbr : {false, true}) {
        if (lbr && op != "GRU") continue;
        Layer l;
        l.op = op;
        l.direction = dir;
        l.lbr = lbr;
        l.peepholes = op == "LSTM";
        SCOPED_TRACE(op + " " + dir + (lbr ? " lbr" : ""));
        Result r;
        convert_and_compare(l, int8_recurrent(), "rq_" + op + dir + (lbr ? "_lbr" : ""), &r);
        if (HasFatalFailure()) return;
        EXPECT_EQ(r.summary.quantized, 2);  // W and R
        const Node* n = find_node(r.blob->graph, "rnn_layer");
        ASSERT_NE(n, nullptr);
        EXPECT_EQ(n->op_type, "Q" + op);
        EXPECT_EQ(n->domain, "sarai");
        EXPECT_EQ(meta(*r.blob, "recurrent"), "int8");
        EXPECT_EQ(meta(*r.blob, "choice:W"), "int8 per gate row");
        EXPECT_EQ(meta(*r.blob, "choice:R"), "int8 per gate row");
        for (double c : r.cosines) EXPECT_GE(c, 0.99);
      }
}

TEST(RecurrentInt8, LensNoBiasNoStatesLayoutPerTensor) {
  {
    Layer l;
    l.lens = true;
    l.direction = "bidirectional";
    Result r;
    convert_and_compare(l, int8_recurrent(), "rq_lens", &r);
    if (HasFatalFailure()) return;
    for (double c : r.cosines) EXPECT_GE(c, 0.99);
  }
  {
    Layer l;
    l.op = "GRU";
    l.bias = false;
    l.states = false;
    Result r;
    convert_and_compare(l, int8_recurrent(), "rq_bare", &r);
    if (HasFatalFailure()) return;
    for (double c : r.cosines) EXPECT_GE(c, 0.99);
  }
  {
    Layer l;
    l.layout1 = true;
    l.direction = "reverse";
    Result r;
    convert_and_compare(l, int8_recurrent(), "rq_layout", &r);
    if (HasFatalFailure()) return;
    for (double c : r.cosines) EXPECT_GE(c, 0.99);
  }
  {
    Layer l;
    l.op = "RNN";
    quant::ConvertOptions o = int8_recurrent();
    o.per_tensor = true;
    Result r;
    convert_and_compare(l, o, "rq_pt", &r);
    if (HasFatalFailure()) return;
    EXPECT_EQ(meta(*r.blob, "choice:W"), "int8 per-tensor");
    for (double c : r.cosines) EXPECT_GE(c, 0.98);
  }
  {
    // Opset 13: the node's layout attribute is dropped (the FP32 op ignores it there).
    Layer l;
    l.opset = 13;
    Result r;
    convert_and_compare(l, int8_recurrent(), "rq_opset13", &r);
    if (HasFatalFailure()) return;
    EXPECT_FALSE(find_node(r.blob->graph, "rnn_layer")->has_attr("layout"));
    for (double c : r.cosines) EXPECT_GE(c, 0.99);
  }
}

// Silero's shape: an LSTM inside an If branch (weights quantized in the
// subgraph).
TEST(RecurrentInt8, InsideIfBody) {
  Layer l;
  l.in_if = true;
  l.seq = 1;
  l.batch = 1;
  l.in = 64;
  l.hid = 64;
  Result r;
  convert_and_compare(l, int8_recurrent(), "rq_if", &r);
  if (HasFatalFailure()) return;
  EXPECT_EQ(r.summary.quantized, 2);
  EXPECT_EQ(find_node(r.blob->graph, "rnn_layer")->op_type, "QLSTM");
  EXPECT_EQ(meta(*r.blob, "choice:gate.then_branch/W"), "int8 per gate row");
  for (double c : r.cosines) EXPECT_GE(c, 0.99);
}

// W and R made from 2-D constants by Slice / Concat / Unsqueeze (Silero
// v5): folded into constants and quantized; the sources are not stored.
TEST(RecurrentInt8, UnsqueezedWeightsFolded) {
  Layer l;
  l.unsqueeze = true;
  Result r;
  convert_and_compare(l, int8_recurrent(), "rq_unsq", &r);
  if (HasFatalFailure()) return;
  EXPECT_EQ(r.summary.quantized, 2);
  EXPECT_EQ(find_node(r.blob->graph, "rnn_layer")->op_type, "QLSTM");
  for (const char* n : {"unsqueeze_W", "concat_W", "slice_hi", "slice_lo"}) EXPECT_EQ(find_node(r.blob->graph, n), nullptr) << n;
  for (const Value& v : r.blob->graph.values) {
    EXPECT_NE(v.name, "W2");
    EXPECT_NE(v.name, "W_cat");
  }
  // Without --recurrent int8 nothing is folded.
  Result f;
  convert_and_compare(l, {}, "rq_unsq_fp32", &f);
  if (HasFatalFailure()) return;
  EXPECT_NE(find_node(f.blob->graph, "concat_W"), nullptr);
  for (double c : f.cosines) EXPECT_EQ(c, 1.0);
  for (double c : r.cosines) EXPECT_GE(c, 0.99);
}

// The default and the FP32 reasons: the layer stays as it is.
TEST(RecurrentInt8, DefaultAndKeptLayersStayFp32) {
  {
    Layer l;
    Result r;
    convert_and_compare(l, {}, "rq_default", &r);
    if (HasFatalFailure()) return;
    EXPECT_EQ(r.summary.quantized, 0);
    EXPECT_EQ(find_node(r.blob->graph, "rnn_layer")->op_type, "LSTM");
    EXPECT_EQ(meta(*r.blob, "recurrent"), "fp32");
    EXPECT_EQ(meta(*r.blob, "choice:W"), "fp32: recurrent layer (convert --recurrent int8 quantizes its gate GEMMs)");
    for (double c : r.cosines) EXPECT_EQ(c, 1.0);
  }
  {
    Layer l;
    quant::ConvertOptions o = int8_recurrent();
    o.keep_fp32 = {"rnn_*"};
    Result r;
    convert_and_compare(l, o, "rq_keep", &r);
    if (HasFatalFailure()) return;
    EXPECT_EQ(find_node(r.blob->graph, "rnn_layer")->op_type, "LSTM");
    EXPECT_EQ(meta(*r.blob, "choice:R"), "fp32: node 'rnn_layer' matches --keep-fp32 'rnn_*'");
  }
  {
    Layer l;
    quant::ConvertOptions o = int8_recurrent();
    o.min_elements = 1 << 20;
    Result r;
    convert_and_compare(l, o, "rq_min", &r);
    if (HasFatalFailure()) return;
    EXPECT_EQ(find_node(r.blob->graph, "rnn_layer")->op_type, "LSTM");
    EXPECT_EQ(meta(*r.blob, "choice:W"), "fp32: 7168 elements (W and R) < --min-elements 1048576");
  }
}

// The CLI option, and that --to onnx refuses it.
TEST(RecurrentInt8, Cli) {
  const std::string dir = test::temp_dir("rq_cli");
  test::save(layer_model(Layer{}), dir + "/m.onnx");
  test::CliResult r = test::run_cli({"convert", dir + "/m.onnx", "-o", dir + "/m.sarai", "-q", "--recurrent", "int8"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_HAS(r.out, "weights: 2 quantized to INT8");
  test::CliResult bad = test::run_cli({"convert", dir + "/m.onnx", "-o", dir + "/q.onnx", "--to", "onnx", "--recurrent", "int8"});
  EXPECT_NE(bad.code, 0);
  EXPECT_HAS(bad.err, "--recurrent int8 is only used with --to sarai");
}

// The INT8 kernels' own checks, on hand-built inputs.
Tensor packed(int64_t k, int64_t n) {
  Tensor q = Tensor::allocate(DType::kInt8, {int8::packed_size(k, n)});
  std::fill(q.mutable_data<int8_t>(), q.mutable_data<int8_t>() + q.numel(), int8_t{1});
  return q;
}
Tensor filled_f(Shape s, float v) {
  Tensor t = Tensor::allocate(DType::kFloat32, s);
  std::fill(t.mutable_data<float>(), t.mutable_data<float>() + t.numel(), v);
  return t;
}
Tensor filled_i(int64_t n, int32_t v) {
  Tensor t = Tensor::allocate(DType::kInt32, {n});
  std::fill(t.mutable_data<int32_t>(), t.mutable_data<int32_t>() + n, v);
  return t;
}
// QLSTM inputs for X [2, 1, 3], hidden 4: X, B, lens, h0, c0, P, W(q, s, sum), R(q, s, sum).
std::vector<Tensor> qlstm_inputs() {
  return {test::random_tensor({2, 1, 3}, 1), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(),
          packed(3, 16), filled_f({16}, 0.01f), filled_i(16, 3), packed(4, 16), filled_f({16}, 0.01f), filled_i(16, 4)};
}
Node qnode(const std::string& op, int inputs) {
  Node n = test::make_node(op, inputs, op == "QLSTM" ? 3 : 2);
  n.domain = "sarai";
  n.attrs["hidden_size"] = test::attr_int(4);
  return n;
}

TEST(RecurrentInt8, KernelComputesWithPackedWeights) {
  // All-ones weights with scale 0.01: the INT8 result is near the FP32
  // LSTM's with W = R = 0.01.
  Node n = qnode("QLSTM", 12);
  auto q = test::run_kernel(kernels::QLSTM, n, qlstm_inputs());
  ASSERT_TRUE(q.has_value()) << q.message();
  Node f = test::make_node("LSTM", 3, 3);
  f.attrs["hidden_size"] = test::attr_int(4);
  auto ref = test::run_kernel(kernels::LSTM, f, {qlstm_inputs()[0], filled_f({1, 16, 3}, 0.01f), filled_f({1, 16, 4}, 0.01f)});
  ASSERT_TRUE(ref.has_value()) << ref.message();
  EXPECT_GE(test::cosine((*q)[0], (*ref)[0]), 0.999);
}

TEST(RecurrentInt8, KernelErrors) {
  {
    Node n = qnode("QLSTM", 12);
    n.attrs.erase("hidden_size");
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, qlstm_inputs()), "QLSTM needs attribute 'hidden_size'");
  }
  {
    Node n = qnode("QLSTM", 11);
    auto in = qlstm_inputs();
    in.pop_back();
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in),
               "QLSTM with 1 direction takes 12 inputs (X, B, sequence_lens, initial_h, initial_c, P, then W and R "
               "quantized per direction), got 11");
  }
  {
    Node n = qnode("QLSTM", 12);
    auto in = qlstm_inputs();
    in[0] = Tensor();
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in), "QLSTM needs input X (input 0 is missing)");
  }
  {
    Node n = qnode("QLSTM", 12);
    auto in = qlstm_inputs();
    in[6] = packed(8, 16);
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in),
               "input 'W' of direction 0 must be int8 [64] (N16K4 bytes of K = 3, N = 16), got int8 [128]");
  }
  {
    Node n = qnode("QLSTM", 12);
    auto in = qlstm_inputs();
    in[7] = filled_f({3}, 1.f);
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in),
               "input 'W' of direction 0: scale must be float32 [16] or [1], got float32 [3]");
  }
  {
    Node n = qnode("QLSTM", 12);
    auto in = qlstm_inputs();
    in[11] = filled_i(4, 0);
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in),
               "input 'R' of direction 0: wsum must be int32 [16], got int32 [4]");
  }
  {
    Node n = qnode("QLSTM", 12);
    n.attrs["input_size"] = test::attr_int(4);
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, qlstm_inputs()),
               "input 'X' [2, 1, 3] has input_size 3 but the quantized W was made for 4 (attribute input_size)");
  }
  {
    // A hostile hidden_size: the packed size would overflow.
    Node n = qnode("QLSTM", 12);
    n.attrs["hidden_size"] = test::attr_int(int64_t{1} << 58);
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, qlstm_inputs()),
               "input 'W' of direction 0: K = 3, N = 1152921504606846976 are too large");
  }
  {
    Node n = qnode("QLSTM", 12);
    auto in = qlstm_inputs();
    in[9] = Tensor();
    EXPECT_HAS(test::run_error(kernels::QLSTM, n, in), "input 'R' of direction 0 is missing its q tensor");
  }
  {
    // QGRU: R in two parts; no initial_c or P.
    Node n = qnode("QGRU", 15);
    std::vector<Tensor> in = {test::random_tensor({2, 1, 3}, 1), Tensor(), Tensor(), Tensor(),
                              filled_f({1, 1, 4}, 0.f), Tensor(),
                              packed(3, 12), filled_f({12}, 0.01f), filled_i(12, 3),
                              packed(4, 8), filled_f({8}, 0.01f), filled_i(8, 4),
                              packed(4, 4), filled_f({4}, 0.01f), filled_i(4, 4)};
    EXPECT_HAS(test::run_error(kernels::QGRU, n, in), "QGRU takes no initial_c or P (inputs 4 and 5 must be empty)");
    in[4] = Tensor();
    in[12] = packed(8, 4);
    EXPECT_HAS(test::run_error(kernels::QGRU, n, in), "input 'Rh' of direction 0 must be int8 [64]");
    in[12] = packed(4, 4);
    EXPECT_TRUE(test::run_kernel(kernels::QGRU, n, in).has_value());
  }
}

}  // namespace
}  // namespace sarai
