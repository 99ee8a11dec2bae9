#include "tests/test_util.h"

#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>

#include "kernels/cpu/int8_layout.h"
#include "tests/onnx_builder.h"
#include "kernels/cpu/platform.h"
#include "kernels/kernels.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"

namespace sarai::kernels {
// tests/CMakeLists.txt: kernels/cpu/qgemm_u8s8_4x16c4__avx2_vnni.cc built
// with SARAI_AVX2_VNNI_VIA_EVEX.
const QgemmUkernel& qgemm_u8s8_4x16c4__avx2_vnni_evex();
}  // namespace sarai::kernels

namespace sarai::test {

double cosine(const Tensor& a, const Tensor& b) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double x = a.data<float>()[i], y = b.data<float>()[i];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / std::sqrt(aa * bb + 1e-30);
}

void expect_cosine_near_measured(double cos, double measured_cos, const std::string& what) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.8f", cos);
  ::testing::Test::RecordProperty("cosine " + what, buf);
  const double gate = 1.0 - 10.0 * (1.0 - measured_cos);
  EXPECT_GE(cos, gate) << what << ": cosine " << buf << ", measured " << measured_cos
                       << " when the gate was set (1 - cos may grow 10x at most)";
}

std::vector<int8_t> pack_n16k4(const std::vector<int8_t>& w, int64_t K, int64_t N) {
  std::vector<int8_t> p(static_cast<size_t>(int8::packed_size(K, N)), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      p[static_cast<size_t>(int8::packed_index(k, n, K))] = w[static_cast<size_t>(k * N + n)];
  return p;
}

const kernels::VecKernels* vec_table(const std::string& name) {
  const std::optional<Isa> isa = parse_isa(name);
  const kernels::Platform* p = isa ? kernels::platform_for(*isa) : nullptr;
  return p ? p->vec : nullptr;
}

const kernels::QgemmUkernel* ukernel_under_test(Isa isa) {
  if (const kernels::QgemmUkernel* uk = kernels::qgemm_ukernel(isa)) return uk;
  if (isa == Isa::kAvx2Vnni && isa_supported(Isa::kAvx512Vnni)) return &kernels::qgemm_u8s8_4x16c4__avx2_vnni_evex();
  return nullptr;
}

std::string numbered(const char* prefix, size_t i) {
  std::string s(prefix);
  s += std::to_string(i);
  return s;
}

GuardedBytes::GuardedBytes(size_t bytes, GuardSide side) {
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  size_ = (bytes + page - 1) / page * page + page;
  void* m = mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  EXPECT_NE(m, MAP_FAILED);
  base_ = static_cast<char*>(m);
  if (side == GuardSide::kAfter) {
    EXPECT_EQ(mprotect(base_ + size_ - page, page, PROT_NONE), 0);
    data_ = base_ + size_ - page - bytes;
  } else {
    EXPECT_EQ(mprotect(base_, page, PROT_NONE), 0);
    data_ = base_ + page;
  }
}

GuardedBytes::~GuardedBytes() { munmap(base_, size_); }

Expected<std::unique_ptr<Session>> create_session(std::shared_ptr<const Model> model, SessionOptions options) {
  KernelTable table;
  register_kernels(table);
  return Session::create(std::move(model), table, options);
}

std::unique_ptr<Session> session_on(std::shared_ptr<const Model> model, SessionOptions options) {
  auto s = create_session(std::move(model), options);
  EXPECT_TRUE(s.has_value()) << s.message();
  return s.has_value() ? std::move(*s) : nullptr;
}

std::string create_error(std::shared_ptr<const Model> model, SessionOptions options) {
  auto s = create_session(std::move(model), options);
  EXPECT_FALSE(s) << "the session was created";
  if (s) return "";
  const std::string msg = s.status().message();
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  return msg;
}

std::string fixture(const std::string& name) { return test_setting("SARAI_SOURCE_DIR") + "/tests/fixtures/" + name; }

std::string test_setting(const char* name) {
  if (const char* v = std::getenv(name)) return v;
  const std::string n = name;
#ifdef SARAI_RT_DEFAULT
  if (n == "SARAI_RT") return SARAI_RT_DEFAULT;
  if (n == "SARAI_SOURCE_DIR") return SARAI_SOURCE_DIR_DEFAULT;
  if (n == "SARAI_TEST_TMP") return SARAI_TEST_TMP_DEFAULT;
#endif
  return "";
}

Tensor random_tensor(Shape shape, uint32_t seed, float lo, float hi) {
  Tensor t = Tensor::allocate(DType::kFloat32, std::move(shape));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.mutable_data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

Node make_node(const std::string& op_type, int num_inputs, int num_outputs) {
  Node n;
  n.name = op_type + "_under_test";
  n.op_type = op_type;
  for (int i = 0; i < num_inputs; ++i) n.inputs.push_back(i);
  for (int i = 0; i < num_outputs; ++i) n.outputs.push_back(num_inputs + i);
  return n;
}

Attribute attr_int(int64_t v) { Attribute a; a.kind = Attribute::Kind::kInt; a.i = v; return a; }
Attribute attr_float(float v) { Attribute a; a.kind = Attribute::Kind::kFloat; a.f = v; return a; }
Attribute attr_ints(std::vector<int64_t> v) { Attribute a; a.kind = Attribute::Kind::kInts; a.ints = std::move(v); return a; }
Attribute attr_floats(std::vector<float> v) { Attribute a; a.kind = Attribute::Kind::kFloats; a.floats = std::move(v); return a; }
Attribute attr_string(std::string v) { Attribute a; a.kind = Attribute::Kind::kString; a.s = std::move(v); return a; }
Attribute attr_tensor(Tensor t) { Attribute a; a.kind = Attribute::Kind::kTensor; a.t = std::move(t); return a; }

int add_input(Graph& g, const std::string& name, DType dtype) {
  const int id = g.add_value(name);
  g.values[static_cast<size_t>(id)].dtype = dtype;
  g.inputs.push_back(id);
  return id;
}

int add_init(Graph& g, const std::string& name, Tensor t) {
  const int id = g.add_value(name);
  Value& v = g.values[static_cast<size_t>(id)];
  v.is_initializer = true;
  v.dtype = t.dtype();
  v.initializer = std::move(t);
  return id;
}

int add_node(Graph& g, const std::string& op, const std::string& domain, std::vector<int> inputs,
             const std::string& out, std::map<std::string, Attribute> attrs) {
  Node n;
  n.name = out + "_node";
  n.op_type = op;
  n.domain = domain;
  n.inputs = std::move(inputs);
  const int o = g.add_value(out);
  n.outputs = {o};
  n.attrs = std::move(attrs);
  g.values[static_cast<size_t>(o)].producer = static_cast<int>(g.nodes.size());
  g.nodes.push_back(std::move(n));
  return o;
}

Expected<std::vector<Tensor>> run_kernel(KernelFn fn, const Node& node,
                                         const std::vector<Tensor>& inputs, int64_t opset,
                                         int num_threads) {
  std::vector<const Tensor*> ptrs;
  for (const Tensor& t : inputs) ptrs.push_back(t.defined() ? &t : nullptr);
  std::vector<Tensor> outs(node.outputs.size());
  KernelContext ctx(node, opset, ptrs, outs, num_threads);
  Status s = invoke_kernel(fn, ctx);
  if (!s.is_ok()) return s;
  return outs;
}

Tensor run1(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs, int64_t opset) {
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_TRUE(r.has_value()) << r.message();
  return r.has_value() ? (*r)[0] : Tensor();
}

std::string run_error(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs, int64_t opset) {
  auto r = run_kernel(fn, node, inputs, opset);
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? std::string() : r.message();
}

::testing::AssertionResult tensors_near(const Tensor& a, const Tensor& e, double atol, double rtol) {
  if (a.dtype() != e.dtype())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(a.dtype()) << " vs expected " << dtype_name(e.dtype());
  if (a.shape() != e.shape())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(a.shape()) << " vs expected " << shape_to_string(e.shape());
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.float_at(i), y = e.float_at(i);
    if (std::isnan(x) && std::isnan(y)) continue;
    if (std::isinf(x) && x == y) continue;
    if (!(std::fabs(x - y) <= atol + rtol * std::fabs(y)))
      return ::testing::AssertionFailure() << "element " << i << ": " << x << " vs expected " << y
                                           << " (atol " << atol << ", rtol " << rtol << ")";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult tensors_equal(const Tensor& a, const Tensor& e) {
  if (a.dtype() != e.dtype())
    return ::testing::AssertionFailure() << "dtype " << dtype_name(a.dtype()) << " vs expected " << dtype_name(e.dtype());
  if (a.shape() != e.shape())
    return ::testing::AssertionFailure() << "shape " << shape_to_string(a.shape()) << " vs expected " << shape_to_string(e.shape());
  if (a.nbytes() && std::memcmp(a.raw(), e.raw(), a.nbytes()) != 0) {
    for (int64_t i = 0; i < a.numel(); ++i)
      if (a.float_at(i) != e.float_at(i))
        return ::testing::AssertionFailure() << "element " << i << ": " << a.float_at(i) << " vs expected " << e.float_at(i);
    return ::testing::AssertionFailure() << "bytes differ";
  }
  return ::testing::AssertionSuccess();
}

namespace {

std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

CliResult run_cli(const std::vector<std::string>& args, const std::string& env) {
  const std::string bin = test_setting("SARAI_RT");
  EXPECT_FALSE(bin.empty()) << "SARAI_RT is not set";
  const std::string dir = temp_dir("cli");
  std::string cmd = (env.empty() ? "" : "env " + env + " ") + shell_quote(bin);
  for (const std::string& a : args) cmd += " " + shell_quote(a);
  cmd += " >" + shell_quote(dir + "/out") + " 2>" + shell_quote(dir + "/err");
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_file(dir + "/out");
  r.err = read_file(dir + "/err");
  return r;
}

}  // namespace sarai::test
