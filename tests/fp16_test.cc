// Float16 ONNX models (loader/fp16_upcast.h): the graph the loader makes of
// them, their results against the same model in float32, `convert` to INT8
// and the blob's results, Cast to and from float16 inside the graph,
// float16 constants and attributes, float16 inputs and outputs through the
// API and `sarai-rt run`, and the errors for float16 tensors of the wrong
// size.
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "loader/blob_reader.h"
#include "loader/fp16_upcast.h"
#include "loader/npy.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/session.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::to_float16;
using test::to_float32;
constexpr int32_t kF32 = onnx::TensorProto::FLOAT;
constexpr int32_t kF16 = onnx::TensorProto::FLOAT16;

// Random values that a half holds exactly, as float32.
Tensor half_exact(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  return to_float32(to_float16(test::random_tensor(std::move(shape), seed, lo, hi)));
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                          std::vector<std::string> out, const std::string& name = "") {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name.empty() ? out[0] + "_node" : name);
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

void add_int_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void add_tensor_attr(onnx::NodeProto* n, const std::string& name, const Tensor& t) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::TENSOR);
  auto* tp = a->mutable_t();
  tp->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) tp->add_dims(d);
  tp->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
}

onnx::ModelProto empty_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  m.mutable_graph()->set_name("fp16");
  return m;
}

// x [1, 3, 8, 8] -> Conv (w0 [8, 3, 3, 3], b0, pads 1) -> Relu -> Flatten
// -> MatMul (w1 [512, 16]) -> Add (b1) -> y [1, 16], every tensor of type
// `elem`. The float32 and float16 models hold the same (half-exact) values.
onnx::ModelProto conv_mlp_model(int32_t elem) {
  onnx::ModelProto m = empty_model();
  auto* g = m.mutable_graph();
  test::set_tensor_type(g->add_input(), "x", {1, 3, 8, 8}, elem);
  test::set_tensor_type(g->add_output(), "y", {1, 16}, elem);
  auto init = [&](const std::string& name, Shape shape, uint32_t seed, float scale) {
    Tensor t = half_exact(std::move(shape), seed, -scale, scale);
    test::add_initializer(g, name, elem == kF16 ? to_float16(t) : t);
  };
  init("w0", {8, 3, 3, 3}, 1, 0.3f);
  init("b0", {8}, 2, 0.1f);
  init("w1", {512, 16}, 3, 0.08f);
  init("b1", {16}, 4, 0.1f);
  auto* conv = add_node(g, "Conv", {"x", "w0", "b0"}, {"c"}, "conv");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int i = 0; i < 4; ++i) pads->add_ints(1);
  add_node(g, "Relu", {"c"}, {"r"});
  add_node(g, "Flatten", {"r"}, {"f"});
  add_node(g, "MatMul", {"f", "w1"}, {"m"}, "matmul");
  add_node(g, "Add", {"m", "b1"}, {"y"});
  return m;
}

std::shared_ptr<Model> load(const onnx::ModelProto& m, const std::string& dir, const std::string& name = "m.onnx") {
  const std::string path = dir + "/" + name;
  test::save(m, path);
  auto model = load_onnx(path);
  EXPECT_TRUE(model.has_value()) << model.message();
  return model.has_value() ? *model : nullptr;
}

std::vector<Tensor> run(std::shared_ptr<const Model> model, const std::vector<NamedTensor>& inputs) {
  auto s = test::session_on(std::move(model), SessionOptions{2});
  if (!s) return {};
  auto out = s->run(inputs);
  EXPECT_TRUE(out.has_value()) << out.message();
  std::vector<Tensor> r;
  if (out.has_value())
    for (auto& o : *out) r.push_back(o.tensor);
  return r;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

const Value& value(const Model& m, const std::string& name) {
  const int id = m.graph.find_value(name);
  EXPECT_NE(id, kNoValue) << name;
  return m.graph.values[static_cast<size_t>(id < 0 ? 0 : id)];
}

TEST(Fp16, LoaderUpcastsWeightsAndCastsAtTheInterface) {
  const std::string dir = test::temp_dir("fp16");
  auto m = load(conv_mlp_model(kF16), dir);
  ASSERT_TRUE(m);
  const Graph& g = m->graph;
  // The interface keeps its names and float16.
  ASSERT_EQ(g.inputs.size(), 1u);
  ASSERT_EQ(g.outputs.size(), 1u);
  EXPECT_EQ(g.values[static_cast<size_t>(g.inputs[0])].name, "x");
  EXPECT_EQ(g.values[static_cast<size_t>(g.outputs[0])].name, "y");
  EXPECT_EQ(value(*m, "x").dtype, DType::kFloat16);
  EXPECT_EQ(value(*m, "y").dtype, DType::kFloat16);
  // Weights: float32 heap copies holding the same values.
  for (const char* w : {"w0", "b0", "w1", "b1"}) {
    const Value& v = value(*m, w);
    EXPECT_TRUE(v.is_initializer) << w;
    EXPECT_EQ(v.dtype, DType::kFloat32) << w;
    EXPECT_EQ(v.initializer.dtype(), DType::kFloat32) << w;
  }
  const Tensor w0 = half_exact({8, 3, 3, 3}, 1, -0.3f, 0.3f);
  EXPECT_TRUE(same_bits(value(*m, "w0").initializer, w0));
  // Nothing else is float16.
  for (const Value& v : g.values) {
    if (v.name != "x" && v.name != "y") {
      EXPECT_NE(v.dtype, DType::kFloat16) << v.name;
    }
  }
  // Cast(to=FLOAT) x -> x__fp32, read by the Conv; y__fp32 -> Cast(to=FLOAT16) -> y.
  ASSERT_EQ(g.nodes.size(), 7u);
  const Value& x32 = value(*m, "x__fp32");
  EXPECT_EQ(x32.dtype, DType::kFloat32);
  const Node& in_cast = g.nodes[static_cast<size_t>(x32.producer)];
  EXPECT_EQ(in_cast.op_type, "Cast");
  EXPECT_EQ(in_cast.attr_int("to", 0), 1);
  EXPECT_EQ(in_cast.inputs, std::vector<int>{g.inputs[0]});
  EXPECT_EQ(g.nodes[0].inputs[0], g.find_value("x__fp32"));
  const Node& out_cast = g.nodes[static_cast<size_t>(value(*m, "y").producer)];
  EXPECT_EQ(out_cast.op_type, "Cast");
  EXPECT_EQ(out_cast.attr_int("to", 0), 10);
  EXPECT_EQ(out_cast.inputs, std::vector<int>{g.find_value("y__fp32")});
  EXPECT_EQ(g.nodes[static_cast<size_t>(value(*m, "y__fp32").producer)].op_type, "Add");
  // The heap copies count as weights (4 bytes each).
  EXPECT_EQ(m->parameter_bytes(), 4u * (8 * 27 + 8 + 512 * 16 + 16));
}

TEST(Fp16, MatchesTheFloat32ModelRoundedToHalf) {
  const std::string dir = test::temp_dir("fp16");
  auto m16 = load(conv_mlp_model(kF16), dir, "m16.onnx");
  auto m32 = load(conv_mlp_model(kF32), dir, "m32.onnx");
  ASSERT_TRUE(m16 && m32);
  const Tensor x = half_exact({1, 3, 8, 8}, 7);
  auto y16 = run(m16, {{"x", to_float16(x)}});
  auto y32 = run(m32, {{"x", x}});
  ASSERT_EQ(y16.size(), 1u);
  ASSERT_EQ(y32.size(), 1u);
  EXPECT_EQ(y16[0].dtype(), DType::kFloat16);
  EXPECT_EQ(y16[0].shape(), (Shape{1, 16}));
  // The same float32 arithmetic, one rounding at the output.
  EXPECT_TRUE(same_bits(y16[0], to_float16(y32[0])));
  // A float32 input for the float16 model is refused by name.
  auto s = test::session_on(m16, SessionOptions{1});
  ASSERT_TRUE(s);
  auto bad = s->run({{"x", x}});
  ASSERT_FALSE(bad.has_value());
  EXPECT_HAS(bad.message(), "input 'x' must be float16 [1, 3, 8, 8], got float32 [1, 3, 8, 8]");
}

TEST(Fp16, ConvertQuantizesTheWeightsAndTheBlobRuns) {
  const std::string dir = test::temp_dir("fp16");
  auto m16 = load(conv_mlp_model(kF16), dir, "m16.onnx");
  auto src16 = load(conv_mlp_model(kF16), dir, "m16.onnx");
  auto src32 = load(conv_mlp_model(kF32), dir, "m32.onnx");
  ASSERT_TRUE(m16 && src16 && src32);
  auto sum = quant::convert_to_blob(*src16, dir + "/m16.sarai", {});
  ASSERT_TRUE(sum.has_value()) << sum.message();
  EXPECT_EQ(sum->quantized, 2);
  EXPECT_EQ(sum->kept_fp32, 0);
  ASSERT_TRUE(quant::convert_to_blob(*src32, dir + "/m32.sarai", {}).has_value());
  auto b16 = load_blob(dir + "/m16.sarai", /*verify=*/true);
  auto b32 = load_blob(dir + "/m32.sarai", /*verify=*/true);
  ASSERT_TRUE(b16.has_value()) << b16.message();
  ASSERT_TRUE(b32.has_value()) << b32.message();
  int q = 0;
  for (const Node& n : (*b16)->graph.nodes) q += n.op_type == "QConv" || n.op_type == "QMatMul";
  EXPECT_EQ(q, 2);
  EXPECT_EQ(value(**b16, "x").dtype, DType::kFloat16);
  EXPECT_EQ(value(**b16, "y").dtype, DType::kFloat16);

  const Tensor x = half_exact({1, 3, 8, 8}, 9);
  auto onnx16 = run(m16, {{"x", to_float16(x)}});
  auto blob16 = run(*b16, {{"x", to_float16(x)}});
  auto blob32 = run(*b32, {{"x", x}});
  ASSERT_EQ(onnx16.size(), 1u);
  ASSERT_EQ(blob16.size(), 1u);
  ASSERT_EQ(blob32.size(), 1u);
  ASSERT_EQ(blob16[0].dtype(), DType::kFloat16);
  // INT8 vs the float16 model (measured 0.999957 on a Zen 3, AVX2).
  test::expect_cosine_near_measured(test::cosine(to_float32(blob16[0]), to_float32(onnx16[0])), 0.999957,
                                    "fp16 blob vs fp16 onnx");
  // The same INT8 weights and arithmetic as the float32 model's blob.
  EXPECT_TRUE(same_bits(blob16[0], to_float16(blob32[0])));
}

// x float32 [6] -> Cast(to=FLOAT16) -> h -> Relu -> r -> Cast(to=FLOAT) -> y
// float32; also x -> Cast(to=FLOAT16) -> z, a float16 output.
TEST(Fp16, CastToFloat16InsideTheGraphRoundsToHalf) {
  const std::string dir = test::temp_dir("fp16");
  onnx::ModelProto p = empty_model();
  auto* g = p.mutable_graph();
  test::set_tensor_type(g->add_input(), "x", {6}, kF32);
  test::set_tensor_type(g->add_output(), "y", {6}, kF32);
  test::set_tensor_type(g->add_output(), "z", {6}, kF16);
  add_int_attr(add_node(g, "Cast", {"x"}, {"h"}), "to", kF16);
  add_node(g, "Relu", {"h"}, {"r"});
  add_int_attr(add_node(g, "Cast", {"r"}, {"y"}), "to", kF32);
  add_int_attr(add_node(g, "Cast", {"x"}, {"z"}), "to", kF16);
  auto m = load(p, dir);
  ASSERT_TRUE(m);
  // h is float32, computed through h__fp16; z is untouched.
  EXPECT_EQ(value(*m, "h").dtype, DType::kFloat32);
  EXPECT_EQ(value(*m, "h__fp16").dtype, DType::kFloat16);
  EXPECT_EQ(m->graph.nodes.size(), 5u);
  EXPECT_EQ(m->graph.nodes[3].outputs, std::vector<int>{m->graph.find_value("z")});
  EXPECT_EQ(value(*m, "z").dtype, DType::kFloat16);

  const std::vector<float> xs = {0.1f, 65519.f, 65520.f, 1e-8f, -3.14159f, 3e-5f};
  auto out = run(m, {{"x", test::make_tensor<float>({6}, xs)}});
  ASSERT_EQ(out.size(), 2u);
  ASSERT_EQ(out[0].dtype(), DType::kFloat32);
  ASSERT_EQ(out[1].dtype(), DType::kFloat16);
  const float* y = out[0].data<float>();
  EXPECT_EQ(y[0], 0.0999755859375f);       // the nearest half to 0.1
  EXPECT_EQ(y[1], 65504.f);                // the largest half
  EXPECT_EQ(y[2], INFINITY);               // past it: inf, as in float16
  EXPECT_EQ(y[3], 0.f);                    // below half's smallest subnormal
  EXPECT_EQ(y[4], 0.f);                    // Relu
  EXPECT_EQ(y[5], half_to_float(float_to_half(3e-5f)));  // a subnormal half
  EXPECT_NE(y[5], 3e-5f);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[1].data<uint16_t>()[i], float_to_half(xs[static_cast<size_t>(i)])) << i;
}

// Float16 Constant, ConstantOfShape and CastLike; a float16 input that is
// also an output; a float16 initializer that is an output; an undeclared
// output made by Cast(to=FLOAT16) that another node reads too.
TEST(Fp16, ConstantsAttributesAndInterfaceEdges) {
  const std::string dir = test::temp_dir("fp16");
  onnx::ModelProto p = empty_model();
  auto* g = p.mutable_graph();
  test::set_tensor_type(g->add_input(), "x", {3}, kF16);
  test::set_tensor_type(g->add_input(), "t", {3}, kF32);
  test::set_tensor_type(g->add_output(), "y", {3}, kF16);
  test::set_tensor_type(g->add_output(), "x", {3}, kF16);
  test::set_tensor_type(g->add_output(), "w", {3}, kF16);
  g->add_output()->set_name("u");  // no type: float16 because a Cast(to=FLOAT16) makes it
  const Tensor c = to_float16(test::make_tensor<float>({3}, {1.5f, -2.25f, 1000.f}));
  test::add_initializer(g, "w", to_float16(test::make_tensor<float>({3}, {0.5f, 0.25f, -1.f})));
  test::add_initializer(g, "shape", test::make_tensor<int64_t>({1}, {3}));
  add_tensor_attr(add_node(g, "Constant", {}, {"c"}), "value", c);
  add_tensor_attr(add_node(g, "ConstantOfShape", {"shape"}, {"k"}), "value",
                  to_float16(test::make_tensor<float>({1}, {0.5f})));
  add_node(g, "CastLike", {"t", "x"}, {"tl"});   // rounds t to half
  add_node(g, "Add", {"x", "c"}, {"a"});
  add_node(g, "Mul", {"a", "k"}, {"b"});
  add_node(g, "Add", {"b", "tl"}, {"y"});
  add_int_attr(add_node(g, "Cast", {"t"}, {"u"}), "to", kF16);
  add_node(g, "Add", {"u", "w"}, {"v"});
  test::set_tensor_type(g->add_output(), "v", {3}, kF16);
  auto m = load(p, dir);
  ASSERT_TRUE(m);
  for (const Node& n : m->graph.nodes) {
    for (const auto& [k, a] : n.attrs) {
      if (a.kind == Attribute::Kind::kTensor) {
        EXPECT_EQ(a.t.dtype(), DType::kFloat32) << n.name << "." << k;
      }
    }
  }
  EXPECT_EQ(value(*m, "w").producer >= 0, true);  // now made by a Cast from w__fp32
  EXPECT_TRUE(value(*m, "w__fp32").is_initializer);

  const Tensor x = to_float16(test::make_tensor<float>({3}, {0.1f, 2.f, -7.f}));
  const Tensor t = test::make_tensor<float>({3}, {0.1f, 1e-4f, 70000.f});
  auto out = run(m, {{"x", x}, {"t", t}});
  ASSERT_EQ(out.size(), 5u);
  for (const Tensor& o : out) EXPECT_EQ(o.dtype(), DType::kFloat16);
  auto hf = [](float f) { return half_to_float(float_to_half(f)); };
  const float xv[3] = {hf(0.1f), 2.f, -7.f}, cv[3] = {1.5f, -2.25f, 1000.f}, wv[3] = {0.5f, 0.25f, -1.f};
  for (int i = 0; i < 3; ++i) {
    const float tl = hf(t.data<float>()[i]);
    EXPECT_EQ(out[0].data<uint16_t>()[i], float_to_half((xv[i] + cv[i]) * 0.5f + tl)) << i;   // y
    EXPECT_EQ(out[1].data<uint16_t>()[i], x.data<uint16_t>()[i]) << i;                       // x as is
    EXPECT_EQ(out[2].data<uint16_t>()[i], float_to_half(wv[i])) << i;                        // w
    EXPECT_EQ(out[3].data<uint16_t>()[i], float_to_half(t.data<float>()[i])) << i;           // u
    EXPECT_EQ(out[4].data<uint16_t>()[i], float_to_half(tl + wv[i])) << i;                   // v
  }
}

TEST(Fp16, WrongByteLengthsAndTheSwitch) {
  const std::string dir = test::temp_dir("fp16");
  auto expect_load_error = [&](const onnx::ModelProto& p, const std::string& name, const std::string& msg) {
    test::save(p, dir + "/" + name);
    auto m = load_onnx(dir + "/" + name);
    ASSERT_FALSE(m.has_value()) << name;
    EXPECT_HAS(m.message(), msg);
  };
  {  // raw_data one byte short
    onnx::ModelProto p = conv_mlp_model(kF16);
    auto* w = p.mutable_graph()->mutable_initializer(1);
    w->mutable_raw_data()->pop_back();
    expect_load_error(p, "short.onnx", "tensor 'b0': raw_data holds 15 bytes, but float16 [8] needs 16");
  }
  {  // int32_data (one half per entry) with a value missing
    onnx::ModelProto p = conv_mlp_model(kF16);
    auto* w = p.mutable_graph()->mutable_initializer(1);
    w->clear_raw_data();
    for (int i = 0; i < 7; ++i) w->add_int32_data(0x3c00);
    expect_load_error(p, "count.onnx", "tensor 'b0': holds 7 values, but float16 [8] needs 8");
  }
  {  // a float16 Constant attribute of the wrong size
    onnx::ModelProto p = empty_model();
    auto* g = p.mutable_graph();
    test::set_tensor_type(g->add_output(), "c", {2}, kF16);
    add_tensor_attr(add_node(g, "Constant", {}, {"c"}, "k"), "value", to_float16(test::make_tensor<float>({3}, {1, 2, 3})));
    p.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_t()->set_dims(0, 2);
    expect_load_error(p, "attr.onnx", "tensor 'k.value': raw_data holds 6 bytes, but float16 [2] needs 4");
  }
  {  // a .npy float16 input with its data cut short
    Tensor x = to_float16(test::random_tensor({4, 4}, 1));
    ASSERT_TRUE(write_npy(dir + "/x.npy", x).is_ok());
    std::string bytes = test::read_file(dir + "/x.npy");
    EXPECT_NE(bytes.find("'descr': '<f2'"), std::string::npos);
    test::write_file(dir + "/cut.npy", bytes.substr(0, bytes.size() - 3));
    auto r = read_npy(dir + "/cut.npy");
    ASSERT_FALSE(r.has_value());
    EXPECT_HAS(r.message(), "cut.npy");
    auto back = read_npy(dir + "/x.npy");
    ASSERT_TRUE(back.has_value()) << back.message();
    EXPECT_TRUE(same_bits(*back, x));
  }
  // SARAI_FP16_UPCAST: off leaves the model as written (a session then
  // refuses the Conv's float16 input when it is created); a bad value is an
  // error naming it.
  test::save(conv_mlp_model(kF16), dir + "/m.onnx");
  ASSERT_EQ(setenv("SARAI_FP16_UPCAST", "0", 1), 0);
  auto off = load_onnx(dir + "/m.onnx");
  ASSERT_EQ(setenv("SARAI_FP16_UPCAST", "sometimes", 1), 0);
  auto bad = load_onnx(dir + "/m.onnx");
  unsetenv("SARAI_FP16_UPCAST");
  ASSERT_TRUE(off.has_value()) << off.message();
  EXPECT_EQ(value(**off, "w0").initializer.dtype(), DType::kFloat16);
  EXPECT_EQ((*off)->graph.nodes.size(), 5u);
  ASSERT_FALSE(bad.has_value());
  EXPECT_HAS(bad.message(), "m.onnx: SARAI_FP16_UPCAST='sometimes' is not a setting (1/on or 0/off)");
}

TEST(Fp16, CliRunReadsAndWritesFloat16Npy) {
  const std::string dir = test::temp_dir("fp16");
  test::save(conv_mlp_model(kF16), dir + "/m.onnx");
  const Tensor x = to_float16(test::random_tensor({1, 3, 8, 8}, 5));
  ASSERT_TRUE(write_npy(dir + "/x.npy", x).is_ok());
  const test::CliResult r =
      test::run_cli({"run", dir + "/m.onnx", "--input", "x=" + dir + "/x.npy", "--output-dir", dir + "/out"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  auto y = read_npy(dir + "/out/y.npy");
  ASSERT_TRUE(y.has_value()) << y.message();
  EXPECT_EQ(y->dtype(), DType::kFloat16);
  EXPECT_NE(test::read_file(dir + "/out/y.npy").find("'descr': '<f2'"), std::string::npos);
  auto m = load_onnx(dir + "/m.onnx");
  ASSERT_TRUE(m.has_value());
  auto expect = run(*m, {{"x", x}});
  ASSERT_EQ(expect.size(), 1u);
  EXPECT_TRUE(same_bits(*y, expect[0]));
}

}  // namespace
}  // namespace sarai
