// Helpers for tests: build tensors, run one kernel, compare floats.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/graph.h"
#include "runtime/kernel.h"
#include "runtime/session.h"
#include "runtime/tensor.h"

namespace sarai::test {

// The FP32 vector table of the ISA level named "scalar", "avx2" or
// "avx512_vnni" (kernels/cpu/vec_kernels.h), or nullptr where this CPU lacks
// it (then skip): the platform table's row (kernels/cpu/platform.h).
const kernels::VecKernels* vec_table(const std::string& name);

// Tests over each FP32 vector table, the table's name as the parameter:
// vk_ is that table; the test is skipped where the CPU lacks it.
class VecTableTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    vk_ = vec_table(GetParam());
    if (vk_ == nullptr) GTEST_SKIP() << GetParam() << " is not supported by this CPU";
    ASSERT_STREQ(vk_->isa, GetParam().c_str());
  }
  const kernels::VecKernels* vk_ = nullptr;
};

template <class T> DType dtype_of();
template <> inline DType dtype_of<float>() { return DType::kFloat32; }
template <> inline DType dtype_of<double>() { return DType::kFloat64; }
template <> inline DType dtype_of<int64_t>() { return DType::kInt64; }
template <> inline DType dtype_of<int32_t>() { return DType::kInt32; }
template <> inline DType dtype_of<int8_t>() { return DType::kInt8; }
template <> inline DType dtype_of<uint8_t>() { return DType::kUInt8; }
template <> inline DType dtype_of<bool>() { return DType::kBool; }

template <class T>
Tensor make_tensor(Shape shape, const std::vector<T>& values);

// A rank-0 tensor of type T holding v (converted): scalar(0.5f),
// scalar<uint8_t>(113).
template <class T = void, class V>
Tensor scalar(V v) {
  using U = std::conditional_t<std::is_void_v<T>, V, T>;
  return make_tensor<U>({}, {static_cast<U>(v)});
}

template <class T>
Tensor make_tensor(Shape shape, const std::vector<T>& values) {
  Tensor t = Tensor::allocate(dtype_of<T>(), shape);
  EXPECT_EQ(static_cast<int64_t>(values.size()), t.numel()) << "make_tensor: value count";
  for (size_t i = 0; i < values.size() && static_cast<int64_t>(i) < t.numel(); ++i) {
    if constexpr (std::is_same_v<T, bool>)
      t.mutable_data<uint8_t>()[i] = values[i] ? 1 : 0;
    else
      t.mutable_data<T>()[i] = values[i];
  }
  return t;
}

// prefix followed by i in decimal ("w3"), built by appending: GCC 12 warns
// falsely (-Wrestrict, GCC bug 105329) on `"w" + std::to_string(i)` once
// inlined, so the tests name numbered things through this.
std::string numbered(const char* prefix, size_t i);

// The micro-kernel the tests run for a level: qgemm_ukernel(isa), or, for
// avx2_vnni on a CPU with AVX-512 VNNI but no AVX-VNNI (Zen 4, Ice Lake to
// Sapphire Rapids), the avx2_vnni kernel's code built with vpdpbusd's EVEX
// encoding (the same operation; qgemm_u8s8_4x16c4__avx2_vnni.cc), so that
// code is tested there too. nullptr when neither can run here.
const kernels::QgemmUkernel* ukernel_under_test(Isa isa);

// Tests over each QGEMM micro-kernel (kernels/cpu/qgemm.h), the ISA level as
// the parameter: uk_ is ukernel_under_test(level); the test is skipped where
// the CPU/OS can run neither.
class QgemmUkernelTest : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    uk_ = ukernel_under_test(GetParam());
    if (uk_ == nullptr) GTEST_SKIP() << "no " << isa_name(GetParam()) << " on this CPU/OS";
    ASSERT_EQ(uk_->isa, GetParam());
  }
  const kernels::QgemmUkernel* uk_ = nullptr;
};

// `count` elements of T at a PROT_NONE page: ending exactly where it begins
// (kAfter: any access past the last element faults) or starting right after
// it (kBefore: any access before the first faults).
enum class GuardSide { kAfter, kBefore };
class GuardedBytes {
 public:
  GuardedBytes(size_t bytes, GuardSide side);
  ~GuardedBytes();
  GuardedBytes(const GuardedBytes&) = delete;
  GuardedBytes& operator=(const GuardedBytes&) = delete;
  void* data() const { return data_; }

 private:
  size_t size_ = 0;
  char* base_ = nullptr;
  void* data_ = nullptr;
};
template <class T>
class Guarded {
 public:
  explicit Guarded(int64_t count, GuardSide side = GuardSide::kAfter)
      : bytes_(static_cast<size_t>(count) * sizeof(T), side) {}
  T* data() { return static_cast<T*>(bytes_.data()); }
  T& operator[](int64_t i) { return data()[i]; }

 private:
  GuardedBytes bytes_;
};

// Session::create on every registered kernel.
Expected<std::unique_ptr<Session>> create_session(std::shared_ptr<const Model> model, SessionOptions options = {});
// A Session on every registered kernel (a test failure, and nullptr, if
// create() fails).
std::unique_ptr<Session> session_on(std::shared_ptr<const Model> model, SessionOptions options);
// The message of a create_session that must fail: a test failure (and "")
// if the session was created, or if the message is not one line.
std::string create_error(std::shared_ptr<const Model> model, SessionOptions options = {});

// $NAME if set, else the build's default for it (SARAI_RT, SARAI_SOURCE_DIR,
// SARAI_TEST_TMP).
std::string test_setting(const char* name);

// The path of tests/fixtures/NAME in the source tree.
std::string fixture(const std::string& name);

// What one run of the CLI (test_setting("SARAI_RT")) gave.
struct CliResult {
  int code = -1;
  std::string out, err;
};
// Runs the CLI with `args`, each quoted for the shell; `env` ("NAME=value
// ..." words) goes before it. stdout and stderr go to a fresh folder.
CliResult run_cli(const std::vector<std::string>& args, const std::string& env = "");

// A tensor of `shape` filled with deterministic pseudo-random floats in
// [lo, hi) from `seed`.
Tensor random_tensor(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f);

// Cosine similarity of two float32 tensors of the same size (1 for equal
// non-zero tensors).
double cosine(const Tensor& a, const Tensor& b);

// The accuracy gate of the INT8 tests, set close to what is measured:
// fails when 1 - cos grows past 10 times the measured 1 - measured_cos (a
// 10x loss of accuracy), while rounding differences between ISAs and thread
// counts, far smaller, pass. Records cos as the property "cosine <what>"
// (--gtest_output=json shows it), so a changed figure is easy to re-measure.
void expect_cosine_near_measured(double cos, double measured_cos, const std::string& what);

// Row-major int8 w [K, N] -> the N16K4 bytes of kernels/cpu/int8_layout.h
// (zero padding), the layout the INT8 GEMM reads.
std::vector<int8_t> pack_n16k4(const std::vector<int8_t>& w, int64_t K, int64_t N);

// Builds a node with `num_inputs` inputs and `num_outputs` outputs (value ids
// 0..n-1 and n..) so a kernel can be called directly.
Node make_node(const std::string& op_type, int num_inputs, int num_outputs = 1);
Attribute attr_int(int64_t v);
Attribute attr_float(float v);
Attribute attr_ints(std::vector<int64_t> v);
Attribute attr_floats(std::vector<float> v);
Attribute attr_string(std::string v);
Attribute attr_tensor(Tensor t);

// Building IR graphs by hand: a graph input of `dtype` (appended to
// g.inputs; no shape declared), an initializer value, and a node (named
// "<out>_node") with one new output value `out`. Each returns the value id.
int add_input(Graph& g, const std::string& name, DType dtype = DType::kFloat32);
int add_init(Graph& g, const std::string& name, Tensor t);
int add_node(Graph& g, const std::string& op, const std::string& domain, std::vector<int> inputs,
             const std::string& out, std::map<std::string, Attribute> attrs = {});

// Runs `fn` on `node` with `inputs` (an undefined Tensor = omitted optional
// input) and returns the outputs or the kernel's error.
Expected<std::vector<Tensor>> run_kernel(KernelFn fn, const Node& node,
                                         const std::vector<Tensor>& inputs, int64_t opset = 17,
                                         int num_threads = 1);

// The first output of fn on node; an EXPECT failure (and an empty Tensor)
// when the kernel fails.
Tensor run1(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs, int64_t opset = 17);

// The message of a kernel run that must fail; an EXPECT failure (and "")
// when it succeeds.
std::string run_error(KernelFn fn, const Node& node, const std::vector<Tensor>& inputs,
                      int64_t opset = 17);

// Expects `text` inside the string `msg`, printing msg when it is not.
#define EXPECT_HAS(msg, text) EXPECT_NE((msg).find(text), std::string::npos) << "message: " << (msg)

// Element-wise comparison with |a-b| <= atol + rtol*|b|; reports the first
// mismatch with its flat index.
::testing::AssertionResult tensors_near(const Tensor& actual, const Tensor& expected,
                                        double atol = 1e-5, double rtol = 1e-5);
// Exact comparison (dtype, shape, bytes).
::testing::AssertionResult tensors_equal(const Tensor& actual, const Tensor& expected);

}  // namespace sarai::test
