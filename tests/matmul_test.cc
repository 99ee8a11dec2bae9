// Tests for kernels/matmul.cc: MatMul and Gemm against naive loops.
// Float tolerance for every sgemm comparison: |a-b| <= 1e-4 + 1e-4*|b|.
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_int;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_near;

constexpr double kTol = 1e-4;
// numpy.matmul written out: promote 1-D, broadcast batch, drop added dims.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  Shape as = a.shape(), bs = b.shape();
  const bool av = as.size() == 1, bv = bs.size() == 1;
  if (av) as.insert(as.begin(), 1);
  if (bv) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  Shape ab(as.begin(), as.end() - 2), bb(bs.begin(), bs.end() - 2);
  Shape batch = *kernels::broadcast_shapes({ab, bb});
  std::vector<int64_t> sa = kernels::broadcast_strides(ab, batch), sb = kernels::broadcast_strides(bb, batch);
  Shape out = batch;
  if (!av) out.push_back(m);
  if (!bv) out.push_back(n);
  Tensor y = Tensor::allocate(DType::kFloat32, out);
  const int64_t nb = numel_of(batch);
  for (int64_t i = 0; i < nb; ++i) {
    int64_t rem = i, oa = 0, ob = 0;
    for (size_t d = batch.size(); d-- > 0;) {
      int64_t idx = rem % batch[d];
      rem /= batch[d];
      oa += idx * sa[d];
      ob += idx * sb[d];
    }
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double acc = 0;
        for (int64_t j = 0; j < k; ++j)
          acc += double(a.data<float>()[oa * m * k + r * k + j]) * b.data<float>()[ob * k * n + j * n + c];
        y.mutable_data<float>()[i * m * n + r * n + c] = float(acc);
      }
  }
  return y;
}

TEST(MatMul, HandComputed2x2) {
  Tensor a = make_tensor<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = make_tensor<float>({3, 2}, {7, 8, 9, 10, 11, 12});
  Tensor y = run1(kernels::MatMul, make_node("MatMul", 2), {a, b});
  EXPECT_TRUE(tensors_near(y, make_tensor<float>({2, 2}, {58, 64, 139, 154})));
}

TEST(MatMul, MatchesNaiveOverShapes) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {7, 3}},              // plain
      {{7}, {7, 3}},                 // 1-D A
      {{5, 7}, {7}},                 // 1-D B
      {{7}, {7}},                    // dot product -> scalar
      {{2, 3, 5, 7}, {7, 4}},        // batch folded into M
      {{3, 5, 7}, {3, 7, 4}},        // equal batch
      {{2, 1, 5, 7}, {3, 7, 4}},     // broadcast batch both ways
      {{5, 7}, {2, 7, 4}},           // 2-D A with batched B
      {{1, 5, 7}, {4, 7, 6}},        // batch 1 A against batched B
      {{2, 3, 7}, {7}},              // batched A, 1-D B
      {{7}, {2, 7, 3}},              // 1-D A, batched B
      {{4, 65, 70}, {4, 70, 67}},    // odd sizes
      {{2, 0, 5}, {5, 3}},           // empty M
      {{2, 4, 0}, {0, 3}},           // K = 0 -> zeros
  };
  uint32_t seed = 1;
  for (const auto& [as, bs] : cases) {
    Tensor a = random_tensor(as, seed++), b = random_tensor(bs, seed++);
    Tensor y = run1(kernels::MatMul, make_node("MatMul", 2), {a, b});
    EXPECT_TRUE(tensors_near(y, naive_matmul(a, b), kTol, kTol))
        << "A " << shape_to_string(as) << " B " << shape_to_string(bs);
  }
}

TEST(MatMul, SmallBatchesInParallelMatchNaive) {
  // Many small matrices take the parallel_for path when threads > 1.
  int saved = num_threads();
  set_num_threads(2);
  Tensor a = random_tensor({12, 9, 16}, 3), b = random_tensor({12, 16, 9}, 4);
  Tensor y = run1(kernels::MatMul, make_node("MatMul", 2), {a, b});
  set_num_threads(saved);
  EXPECT_TRUE(tensors_near(y, naive_matmul(a, b), kTol, kTol));
}

TEST(MatMul, Errors) {
  Node n = make_node("MatMul", 2);
  std::string msg = run_error(kernels::MatMul, n, {random_tensor({2, 3}, 1), random_tensor({4, 5}, 2)});
  EXPECT_HAS(msg, "inner dimensions differ");
  EXPECT_HAS(msg, "[2, 3]");
  EXPECT_HAS(msg, "K=4");
  msg = run_error(kernels::MatMul, n, {random_tensor({2, 2, 3}, 1), random_tensor({3, 3, 5}, 2)});
  EXPECT_HAS(msg, "cannot be broadcast");
  msg = run_error(kernels::MatMul, n,
                {make_tensor<int64_t>({1, 1}, {1}), make_tensor<int64_t>({1, 1}, {1})});
  EXPECT_HAS(msg, "only float32");
}

// ------------------------------------------------------------------ Gemm

Tensor naive_gemm(const Tensor& a, const Tensor& b, const Tensor* c, bool ta, bool tb, float alpha,
                  float beta) {
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  Tensor y = Tensor::allocate(DType::kFloat32, {m, n});
  std::vector<int64_t> cs;
  if (c) cs = kernels::broadcast_strides(c->shape(), {m, n});
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        float av = ta ? a.data<float>()[p * a.dim(1) + i] : a.data<float>()[i * k + p];
        float bv = tb ? b.data<float>()[j * b.dim(1) + p] : b.data<float>()[p * n + j];
        acc += double(av) * bv;
      }
      acc *= alpha;
      if (c) acc += double(beta) * c->data<float>()[i * cs[0] + j * cs[1]];
      y.mutable_data<float>()[i * n + j] = float(acc);
    }
  return y;
}

TEST(Gemm, MatchesNaiveForTransposesAndBias) {
  const int64_t m = 13, k = 17, n = 11;
  const std::vector<Shape> c_shapes = {{}, {n}, {1, n}, {m, 1}, {m, n}, {1}};
  uint32_t seed = 10;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (const Shape& cshape : c_shapes) {
        Tensor a = random_tensor(ta ? Shape{k, m} : Shape{m, k}, seed++);
        Tensor b = random_tensor(tb ? Shape{n, k} : Shape{k, n}, seed++);
        Tensor c = random_tensor(cshape, seed++);
        Node node = make_node("Gemm", 3);
        node.attrs["transA"] = attr_int(ta);
        node.attrs["transB"] = attr_int(tb);
        node.attrs["alpha"] = attr_float(0.5f);
        node.attrs["beta"] = attr_float(2.f);
        Tensor y = run1(kernels::Gemm, node, {a, b, c});
        EXPECT_TRUE(tensors_near(y, naive_gemm(a, b, &c, ta, tb, 0.5f, 2.f), kTol, kTol))
            << "transA " << ta << " transB " << tb << " C " << shape_to_string(cshape);
      }
}

TEST(Gemm, OptionalCFromOpset11) {
  Tensor a = random_tensor({4, 6}, 1), b = random_tensor({6, 5}, 2);
  Node node = make_node("Gemm", 2);
  Tensor y = run1(kernels::Gemm, node, {a, b}, /*opset=*/13);
  EXPECT_TRUE(tensors_near(y, naive_gemm(a, b, nullptr, false, false, 1.f, 1.f), kTol, kTol));
  // Omitted as an empty optional input too.
  Node node3 = make_node("Gemm", 3);
  y = run1(kernels::Gemm, node3, {a, b, Tensor()}, /*opset=*/11);
  EXPECT_TRUE(tensors_near(y, naive_gemm(a, b, nullptr, false, false, 1.f, 1.f), kTol, kTol));
  std::string msg = run_error(kernels::Gemm, node, {a, b}, /*opset=*/9);
  EXPECT_HAS(msg, "input C is required before opset 11");
}

TEST(Gemm, Errors) {
  Node node = make_node("Gemm", 3);
  std::string msg = run_error(kernels::Gemm, node,
                            {random_tensor({4, 6}, 1), random_tensor({5, 5}, 2), random_tensor({5}, 3)});
  EXPECT_HAS(msg, "inner dimensions differ");
  msg = run_error(kernels::Gemm, node,
                {random_tensor({4, 6}, 1), random_tensor({6, 5}, 2), random_tensor({3, 5}, 3)});
  EXPECT_HAS(msg, "input C [3, 5] cannot be broadcast to the output [4, 5]");
  msg = run_error(kernels::Gemm, node,
                {random_tensor({2, 4, 6}, 1), random_tensor({6, 5}, 2), random_tensor({5}, 3)});
  EXPECT_HAS(msg, "must be 2-D");
}

}  // namespace
}  // namespace sarai
