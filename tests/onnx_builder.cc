#include "tests/onnx_builder.h"
#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sarai::test {

namespace fs = std::filesystem;

std::string temp_dir(const std::string& tag) {
  std::string base = test_setting("SARAI_TEST_TMP");
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "no_test";
  for (char& c : name)
    if (c == '/') c = '_';
  fs::path dir = fs::path(base.empty() ? "/tmp/sarai-tests" : base) / (name + "." + tag + "." + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void set_tensor_type(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

void add_float_initializer(onnx::GraphProto* g, const std::string& name, const Tensor& t) {
  auto* init = g->add_initializer();
  init->set_name(name);
  init->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : t.shape()) init->add_dims(d);
  init->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
}

void set_tensor_type(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims,
                     int32_t elem) {
  set_tensor_type(vi, name, dims);
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem);
}

void add_initializer(onnx::GraphProto* g, const std::string& name, const Tensor& t) {
  auto* init = g->add_initializer();
  init->set_name(name);
  init->set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.shape()) init->add_dims(d);
  init->set_raw_data(std::string(static_cast<const char*>(t.raw()), t.nbytes()));
}

Tensor to_float16(const Tensor& f32) {
  Tensor h = Tensor::allocate(DType::kFloat16, f32.shape());
  for (int64_t i = 0; i < f32.numel(); ++i) h.mutable_data<uint16_t>()[i] = float_to_half(f32.data<float>()[i]);
  return h;
}

Tensor to_float32(const Tensor& f16) {
  Tensor f = Tensor::allocate(DType::kFloat32, f16.shape());
  for (int64_t i = 0; i < f16.numel(); ++i) f.mutable_data<float>()[i] = half_to_float(f16.data<uint16_t>()[i]);
  return f;
}

onnx::ModelProto matmul_chain_model(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims,
                                    const std::vector<Tensor>& weights, const std::vector<std::string>& node_names) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("matmul_chain");
  set_tensor_type(g->add_input(), "x", in_dims);
  set_tensor_type(g->add_output(), "y", out_dims);
  const size_t n = weights.size();
  for (size_t i = 0; i < n; ++i) {
    add_float_initializer(g, numbered("w", i), weights[i]);
    auto* node = g->add_node();
    node->set_name(node_names[i]);
    node->set_op_type("MatMul");
    node->add_input(i == 0 ? std::string("x") : numbered("h", i - 1));
    node->add_input(numbered("w", i));
    node->add_output(i + 1 == n ? std::string("y") : numbered("h", i));
  }
  return m;
}

onnx::ModelProto sensitive_chain_model() {
  auto weight = [](int64_t k, int64_t n, uint32_t seed, bool big_col0, bool zero_row0) {
    Tensor w = random_tensor({k, n}, seed, -0.2f, 0.2f);
    float* p = w.mutable_data<float>();
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < n; ++j) {
        if (big_col0 && j == 0) p[i * n + j] *= 300;
        if (zero_row0 && i == 0) p[i * n + j] = 0;
      }
    return w;
  };
  return matmul_chain_model({1, 16, 64}, {1, 16, 32}, {weight(64, 64, 1, true, false), weight(64, 32, 2, false, true)},
                            {"first", "second"});
}

onnx::ModelProto add_model(const std::vector<int64_t>& dims) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("sarai-tests");
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("add");
  set_tensor_type(g->add_input(), "x", dims);
  set_tensor_type(g->add_output(), "y", dims);
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : dims) { w->add_dims(d); n *= d; }
  std::string raw(static_cast<size_t>(n) * 4, '\0');
  for (int64_t i = 0; i < n; ++i) {
    float v = static_cast<float>(i);
    std::memcpy(&raw[static_cast<size_t>(i) * 4], &v, 4);
  }
  w->set_raw_data(raw);
  auto* node = g->add_node();
  node->set_name("add0");
  node->set_op_type("Add");
  node->add_input(std::string("x"));
  node->add_input(std::string("w"));
  node->add_output(std::string("y"));
  return m;
}

void externalize(onnx::ModelProto& m, const std::string& name, const std::string& dir,
                 const std::string& location, uint64_t offset) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() != name) continue;
    std::string raw = t.raw_data();
    fs::path path = fs::path(dir) / location;
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      if (!f) f.open(path, std::ios::out | std::ios::binary);
      f.seekp(static_cast<std::streamoff>(offset));
      f.write(raw.data(), static_cast<std::streamsize>(raw.size()));
    }
    t.clear_raw_data();
    t.set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const std::string& k, const std::string& v) {
      auto* e = t.add_external_data();
      e->set_key(k);
      e->set_value(v);
    };
    add("location", location);
    add("offset", std::to_string(offset));
    add("length", std::to_string(raw.size()));
    return;
  }
  ADD_FAILURE() << "externalize: no initializer " << name;
}

void save(const onnx::ModelProto& m, const std::string& path) {
  std::ofstream f(path, std::ios::binary);
  ASSERT_TRUE(m.SerializeToOstream(&f)) << path;
}

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void typed(onnx::ValueInfoProto* vi, const std::string& name, int elem, const std::vector<int64_t>& dims,
           bool has_shape) {
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem);
  if (!has_shape) return;
  auto* shape = tt->mutable_shape();
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

onnx::NodeProto* node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                      std::vector<std::string> out, const std::string& name) {
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name(name.empty() ? op + "_" + std::to_string(g->node_size()) : name);
  for (auto& s : in) n->add_input(s);
  for (auto& s : out) n->add_output(s);
  return n;
}

void graph_attr(onnx::NodeProto* n, const std::string& name, const onnx::GraphProto& g) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::GRAPH);
  *a->mutable_g() = g;
}

void ints_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void int_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

}  // namespace sarai::test
