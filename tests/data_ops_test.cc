// Tests for kernels/data_ops.cc: Transpose, Concat, Slice, Split, Gather,
// Cast, Constant, ConstantOfShape, Range. Data movement is checked exactly
// against naive index loops written here.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_float;
using test::attr_floats;
using test::attr_int;
using test::attr_ints;
using test::attr_string;
using test::attr_tensor;
using test::make_node;
using test::make_tensor;
using test::random_tensor;
using test::run1;
using test::run_error;
using test::run_kernel;
using test::tensors_equal;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

Tensor i64(std::vector<int64_t> v) {
  int64_t n = static_cast<int64_t>(v.size());
  return make_tensor<int64_t>({n}, v);
}

// Tensor of `shape` whose element i is i (as T), so positions are visible.
template <class T> Tensor iota(Shape shape) {
  std::vector<T> v(static_cast<size_t>(numel_of(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<T>(i);
  return make_tensor<T>(std::move(shape), v);
}

Expected<std::vector<Tensor>> run(KernelFn fn, const Node& node, const std::vector<Tensor>& in,
                                  int64_t opset = 17) {
  return run_kernel(fn, node, in, opset);
}
// Row-major multi-index of flat index i in `s`.
std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t k = s.size(); k-- > 0;) {
    idx[k] = i % s[k];
    i /= s[k];
  }
  return idx;
}
int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t off = 0;
  for (size_t k = 0; k < s.size(); ++k) off = off * s[k] + idx[k];
  return off;
}

// Sets the shared pool to 2 threads for one test so the parallel paths run.
struct TwoThreads {
  int saved = num_threads();
  TwoThreads() { set_num_threads(2); }
  ~TwoThreads() { set_num_threads(saved); }
};

// ---------------------------------------------------------------- Transpose

template <class T>
Tensor naive_transpose(const Tensor& x, const std::vector<int64_t>& perm) {
  Shape out(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) out[k] = x.shape()[static_cast<size_t>(perm[k])];
  Tensor y = Tensor::allocate(x.dtype(), out);
  for (int64_t i = 0; i < y.numel(); ++i) {
    std::vector<int64_t> oi = unravel(i, out), ii(perm.size());
    for (size_t k = 0; k < perm.size(); ++k) ii[static_cast<size_t>(perm[k])] = oi[k];
    y.mutable_data<T>()[i] = x.data<T>()[ravel(ii, x.shape())];
  }
  return y;
}

TEST(Transpose, EveryPermOfRank4MatchesNaive) {
  TwoThreads threads;
  Tensor xf = random_tensor({2, 3, 4, 5}, 7);
  Tensor xb = iota<int8_t>({2, 3, 4, 5});
  Tensor xl = iota<int64_t>({3, 1, 17, 9});
  std::vector<int64_t> perm = {0, 1, 2, 3};
  do {
    Node n = make_node("Transpose", 1);
    n.attrs["perm"] = attr_ints(perm);
    EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {xf}), naive_transpose<float>(xf, perm)))
        << shape_to_string(perm);
    EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {xb}), naive_transpose<int8_t>(xb, perm)))
        << shape_to_string(perm);
    EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {xl}), naive_transpose<int64_t>(xl, perm)))
        << shape_to_string(perm);
  } while (std::next_permutation(perm.begin(), perm.end()));
}

TEST(Transpose, DefaultReversesAndLargeParallel) {
  TwoThreads threads;
  Tensor x = iota<float>({2, 3, 4});
  EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, make_node("Transpose", 1), {x}),
                            naive_transpose<float>(x, {2, 1, 0})));
  Tensor big = random_tensor({64, 96, 40}, 8);
  Node n = make_node("Transpose", 1);
  n.attrs["perm"] = attr_ints({1, 0, 2});
  EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {big}), naive_transpose<float>(big, {1, 0, 2})));
  n.attrs["perm"] = attr_ints({0, 2, 1});
  EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {big}), naive_transpose<float>(big, {0, 2, 1})));
  // The tiled path (inner output dim strided, another contiguous) with
  // partial tiles and every element size.
  Tensor b8 = iota<int8_t>({3, 70, 137});
  Tensor b64 = iota<int64_t>({3, 70, 137});
  for (std::vector<int64_t> p : {std::vector<int64_t>{0, 2, 1}, {2, 1, 0}, {1, 2, 0}}) {
    n.attrs["perm"] = attr_ints(p);
    EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {b8}), naive_transpose<int8_t>(b8, p)));
    EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {b64}), naive_transpose<int64_t>(b64, p)));
  }
  // Scalars and zero-size tensors.
  EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, make_node("Transpose", 1), {make_tensor<float>({}, {3})}),
                            make_tensor<float>({}, {3})));
  EXPECT_EQ(run1(kernels::Transpose, make_node("Transpose", 1), {Tensor::allocate(DType::kFloat32, {0, 3})}).shape(),
            (Shape{3, 0}));
}

// A float32 tensor of random 32-bit words (NaN payloads, subnormals and
// all): a transpose must move the bits.
Tensor random_words(Shape shape, uint32_t seed) {
  Tensor t = Tensor::allocate(DType::kFloat32, shape);
  uint32_t* w = static_cast<uint32_t*>(t.mutable_raw());
  for (int64_t i = 0; i < t.numel(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    w[i] = seed;
  }
  return t;
}

// The 4- and 2-byte tiled paths (vec_kernels().transpose_x32, _x16) at 1
// and 2 threads, on shapes whose sides are not multiples of the 8x8 blocks
// nor of the 64x64 tiles: the encoder's K transpose (0, 2, 3, 1), the heads
// transpose (0, 2, 1, 3) (memcpy'd rows), and a matrix (1, 0).
TEST(Transpose, FourAndTwoByteTilesMatchNaiveAtOneAndTwoThreads) {
  const int saved = num_threads();
  struct Case {
    Shape shape;
    std::vector<int64_t> perm;
  };
  const Case cases[] = {
      {{1, 37, 3, 29}, {0, 2, 3, 1}}, {{2, 150, 5, 67}, {0, 2, 3, 1}}, {{3, 70, 5, 19}, {0, 2, 3, 1}},
      {{1, 37, 3, 29}, {0, 2, 1, 3}}, {{2, 67, 5, 9}, {0, 2, 1, 3}},   {{75, 131}, {1, 0}},
      {{131, 75}, {1, 0}},            {{9, 1}, {1, 0}},                 {{200, 13}, {1, 0}},
  };
  for (int threads : {1, 2}) {
    set_num_threads(threads);
    for (const Case& c : cases) {
      const Tensor x = random_words(c.shape, static_cast<uint32_t>(c.shape[0] * 7 + c.shape[1]));
      Node n = make_node("Transpose", 1);
      n.attrs["perm"] = attr_ints(c.perm);
      EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {x}), naive_transpose<float>(x, c.perm)))
          << shape_to_string(c.shape) << " perm " << shape_to_string(c.perm) << " at " << threads << " threads";
      // The 2-byte path (transpose_x16): the same words as float16.
      Tensor h = Tensor::allocate(DType::kFloat16, c.shape);
      std::memcpy(h.mutable_raw(), x.raw(), h.nbytes());
      EXPECT_TRUE(tensors_equal(run1(kernels::Transpose, n, {h}), naive_transpose<uint16_t>(h, c.perm)))
          << "float16 " << shape_to_string(c.shape) << " perm " << shape_to_string(c.perm) << " at " << threads
          << " threads";
    }
  }
  set_num_threads(saved);
}

TEST(Transpose, BadPerm) {
  Node n = make_node("Transpose", 1);
  n.attrs["perm"] = attr_ints({0, 0, 1});
  EXPECT_HAS(run_error(kernels::Transpose, n, {iota<float>({2, 3, 4})}), "perm [0, 0, 1] is not a permutation");
  n.attrs["perm"] = attr_ints({1, 0});
  EXPECT_HAS(run_error(kernels::Transpose, n, {iota<float>({2, 3, 4})}), "has rank 3");
}

// ------------------------------------------------------------------- Concat

TEST(Concat, AlongEachAxisMatchesNaive) {
  TwoThreads threads;
  for (int64_t axis = -3; axis < 3; ++axis) {
    const int a = static_cast<int>(axis < 0 ? axis + 3 : axis);
    Shape s0 = {2, 3, 4}, s1 = s0, s2 = s0;
    s1[static_cast<size_t>(a)] = 1;
    s2[static_cast<size_t>(a)] = 0;  // zero-size input along the axis
    Tensor x0 = random_tensor(s0, 1), x1 = random_tensor(s1, 2), x2 = random_tensor(s2, 3);
    Node n = make_node("Concat", 4);
    n.attrs["axis"] = attr_int(axis);
    Tensor y = run1(kernels::Concat, n, {x0, x2, x1, x0});
    Shape os = s0;
    os[static_cast<size_t>(a)] = 2 * s0[static_cast<size_t>(a)] + 1;
    ASSERT_EQ(y.shape(), os);
    for (int64_t i = 0; i < y.numel(); ++i) {
      std::vector<int64_t> idx = unravel(i, os);
      int64_t& c = idx[static_cast<size_t>(a)];
      const int64_t d0 = s0[static_cast<size_t>(a)];
      float want;
      if (c < d0) want = x0.data<float>()[ravel(idx, s0)];
      else if (c < d0 + 1) { c -= d0; want = x1.data<float>()[ravel(idx, s1)]; }
      else { c -= d0 + 1; want = x0.data<float>()[ravel(idx, s0)]; }
      ASSERT_EQ(y.data<float>()[i], want) << "axis " << axis << " element " << i;
    }
  }
}

TEST(Concat, Int64Vectors) {
  Node n = make_node("Concat", 3);
  n.attrs["axis"] = attr_int(0);
  EXPECT_TRUE(tensors_equal(run1(kernels::Concat, n, {i64({1, 2}), i64({}), i64({3})}), i64({1, 2, 3})));
}

TEST(Concat, Errors) {
  Node n = make_node("Concat", 2);
  n.attrs["axis"] = attr_int(1);
  std::string msg = run_error(kernels::Concat, n, {iota<float>({2, 3}), iota<float>({3, 3})});
  EXPECT_HAS(msg, "[3, 3]");
  EXPECT_HAS(msg, "[2, 3]");
  EXPECT_HAS(run_error(kernels::Concat, n, {iota<float>({2, 3}), iota<int64_t>({2, 3})}), "dtype int64");
  n.attrs["axis"] = attr_int(2);
  EXPECT_HAS(run_error(kernels::Concat, n, {iota<float>({2, 3}), iota<float>({2, 3})}), "axis 2 is out of range");
}

// -------------------------------------------------------------------- Slice

// Python's slice.indices(): the clamping ONNX Slice specifies.
std::vector<int64_t> py_slice(int64_t start, int64_t stop, int64_t step, int64_t len) {
  const int64_t lower = step < 0 ? -1 : 0, upper = step < 0 ? len - 1 : len;
  auto fix = [&](int64_t v) {
    if (v < 0) { v = v < -len ? lower : v + len; if (v < lower) v = lower; }
    else if (v > upper) v = upper;
    return v;
  };
  start = fix(start);
  stop = fix(stop);
  std::vector<int64_t> r;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) r.push_back(i);
  return r;
}

Tensor naive_slice(const Tensor& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                   const std::vector<int64_t>& axes, const std::vector<int64_t>& steps) {
  const size_t r = x.shape().size();
  std::vector<std::vector<int64_t>> pick(r);
  for (size_t k = 0; k < r; ++k) {
    pick[k].resize(static_cast<size_t>(x.shape()[k]));
    std::iota(pick[k].begin(), pick[k].end(), 0);
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    size_t a = static_cast<size_t>(axes[i] < 0 ? axes[i] + static_cast<int64_t>(r) : axes[i]);
    pick[a] = py_slice(starts[i], ends[i], steps[i], x.shape()[a]);
  }
  Shape out(r);
  for (size_t k = 0; k < r; ++k) out[k] = static_cast<int64_t>(pick[k].size());
  Tensor y = Tensor::allocate(x.dtype(), out);
  for (int64_t i = 0; i < y.numel(); ++i) {
    std::vector<int64_t> idx = unravel(i, out);
    for (size_t k = 0; k < r; ++k) idx[k] = pick[k][static_cast<size_t>(idx[k])];
    y.mutable_data<float>()[i] = x.data<float>()[ravel(idx, x.shape())];
  }
  return y;
}

TEST(Slice, InputFormMatchesNaive) {
  TwoThreads threads;
  Tensor x = random_tensor({20, 10, 5}, 11);
  struct Case { std::vector<int64_t> starts, ends, axes, steps; };
  std::vector<Case> cases = {
      {{0, 0}, {3, 10}, {0, 1}, {1, 1}},                    // test_slice
      {{0}, {-1}, {1}, {1}},                                // test_slice_neg
      {{1000}, {1000}, {1}, {1}},                           // start out of bounds
      {{1}, {1000}, {1}, {1}},                              // end out of bounds
      {{20, 10, 4}, {0, 0, 1}, {0, 1, 2}, {-1, -3, -2}},    // negative steps
      {{0, 0, 3}, {20, 10, 4}, {0, -2, -1}, {1, 1, 1}},     // negative axes
      {{-1}, {kMin}, {1}, {-1}},                            // reverse a whole axis
      {{kMax}, {kMin}, {0}, {-2}},                          // INT64 extremes, step -2
      {{2}, {kMax}, {2}, {2}},                              // INT64_MAX end
      {{-100}, {100}, {0}, {7}},
      {{5}, {2}, {1}, {1}},                                 // empty
      {{3, 1}, {-3, 9}, {2, 1}, {1, 3}},
      {{0}, {kMax}, {0}, {kMax}},                           // one element
  };
  for (const Case& c : cases) {
    Node n = make_node("Slice", 5);
    Tensor y = run1(kernels::Slice, n, {x, i64(c.starts), i64(c.ends), i64(c.axes), i64(c.steps)}, 13);
    EXPECT_TRUE(tensors_equal(y, naive_slice(x, c.starts, c.ends, c.axes, c.steps)))
        << "starts " << shape_to_string(c.starts) << " ends " << shape_to_string(c.ends) << " axes "
        << shape_to_string(c.axes) << " steps " << shape_to_string(c.steps);
  }
}

TEST(Slice, DefaultAxesStepsAndInt32Inputs) {
  Tensor x = random_tensor({20, 10, 5}, 12);
  Tensor want = naive_slice(x, {0, 0, 3}, {20, 10, 4}, {0, 1, 2}, {1, 1, 1});
  EXPECT_TRUE(tensors_equal(run1(kernels::Slice, make_node("Slice", 3), {x, i64({0, 0, 3}), i64({20, 10, 4})}), want));
  EXPECT_TRUE(tensors_equal(
      run1(kernels::Slice, make_node("Slice", 4), {x, i64({0, 0, 3}), i64({20, 10, 4}), i64({0, 1, 2})}), want));
  // Omitted axes ("") with steps present.
  EXPECT_TRUE(tensors_equal(
      run1(kernels::Slice, make_node("Slice", 5), {x, i64({0, 0, 3}), i64({20, 10, 4}), Tensor(), i64({1, 1, 1})}), want));
  Tensor s32 = make_tensor<int32_t>({1}, {-2}), e32 = make_tensor<int32_t>({1}, {-5}),
         a32 = make_tensor<int32_t>({1}, {0}), st32 = make_tensor<int32_t>({1}, {-1});
  EXPECT_TRUE(tensors_equal(run1(kernels::Slice, make_node("Slice", 5), {x, s32, e32, a32, st32}),
                            naive_slice(x, {-2}, {-5}, {0}, {-1})));
}

TEST(Slice, AttributeFormOpset9) {
  Tensor x = random_tensor({4, 6}, 13);
  Node n = make_node("Slice", 1);
  n.attrs["starts"] = attr_ints({1, -4});
  n.attrs["ends"] = attr_ints({kMax, 5});
  EXPECT_TRUE(tensors_equal(run1(kernels::Slice, n, {x}, 9), naive_slice(x, {1, -4}, {kMax, 5}, {0, 1}, {1, 1})));
  n.attrs["axes"] = attr_ints({1});
  n.attrs["starts"] = attr_ints({2});
  n.attrs["ends"] = attr_ints({3});
  EXPECT_TRUE(tensors_equal(run1(kernels::Slice, n, {x}, 9), naive_slice(x, {2}, {3}, {1}, {1})));
}

TEST(Slice, AnyDtype) {
  Tensor x = iota<int64_t>({3, 4});
  Tensor y = run1(kernels::Slice, make_node("Slice", 5), {x, i64({3}), i64({0}), i64({1}), i64({-2})});
  EXPECT_TRUE(tensors_equal(y, make_tensor<int64_t>({3, 2}, {3, 1, 7, 5, 11, 9})));
}

TEST(Slice, Errors) {
  Tensor x = random_tensor({4, 6}, 13);
  EXPECT_HAS(run_error(kernels::Slice, make_node("Slice", 5), {x, i64({0}), i64({2}), i64({0}), i64({0})}),
             "steps [0] contain 0");
  EXPECT_HAS(run_error(kernels::Slice, make_node("Slice", 3), {x, i64({0, 1}), i64({2})}), "same length");
  EXPECT_HAS(run_error(kernels::Slice, make_node("Slice", 4), {x, i64({0, 1}), i64({2, 2}), i64({1, -1})}),
             "repeat axis 1");
  EXPECT_HAS(run_error(kernels::Slice, make_node("Slice", 4), {x, i64({0}), i64({2}), i64({2})}),
             "axes value 2 is out of range");
  EXPECT_HAS(run_error(kernels::Slice, make_node("Slice", 3), {x, make_tensor<float>({1}, {0}), i64({2})}),
             "'starts' must be int64");
}

// -------------------------------------------------------------------- Split

TEST(Split, EqualPartsDefault) {
  Tensor x = iota<float>({6});
  auto r = run(kernels::Split, make_node("Split", 1, 3), {x});
  ASSERT_TRUE(r.has_value()) << r.message();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<float>({2}, {0, 1})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<float>({2}, {2, 3})));
  EXPECT_TRUE(tensors_equal((*r)[2], make_tensor<float>({2}, {4, 5})));
}

TEST(Split, AttributeFormOpset11And2D) {
  Tensor x = iota<float>({2, 6});
  Node n = make_node("Split", 1, 2);
  n.attrs["axis"] = attr_int(-1);
  n.attrs["split"] = attr_ints({2, 4});
  auto r = run(kernels::Split, n, {x}, 11);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<float>({2, 2}, {0, 1, 6, 7})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<float>({2, 4}, {2, 3, 4, 5, 8, 9, 10, 11})));
}

TEST(Split, InputFormOpset13AnyDtype) {
  Tensor x = iota<int64_t>({2, 3, 2});
  Node n = make_node("Split", 2, 2);
  n.attrs["axis"] = attr_int(1);
  auto r = run(kernels::Split, n, {x, i64({1, 2})}, 13);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<int64_t>({2, 1, 2}, {0, 1, 6, 7})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<int64_t>({2, 2, 2}, {2, 3, 4, 5, 8, 9, 10, 11})));
  // Zero-size splits of an empty tensor.
  auto z = run(kernels::Split, make_node("Split", 2, 3), {Tensor::allocate(DType::kFloat32, {0}), i64({0, 0, 0})}, 13);
  ASSERT_TRUE(z.has_value()) << z.message();
  for (const Tensor& t : *z) EXPECT_EQ(t.shape(), (Shape{0}));
}

TEST(Split, NumOutputsUnevenOpset18) {
  Tensor x = iota<float>({7});
  Node n = make_node("Split", 1, 3);
  n.attrs["num_outputs"] = attr_int(3);
  auto r = run(kernels::Split, n, {x}, 18);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(tensors_equal((*r)[0], make_tensor<float>({3}, {0, 1, 2})));
  EXPECT_TRUE(tensors_equal((*r)[1], make_tensor<float>({3}, {3, 4, 5})));
  EXPECT_TRUE(tensors_equal((*r)[2], make_tensor<float>({1}, {6})));
  n.attrs["num_outputs"] = attr_int(4);
  EXPECT_HAS(run_error(kernels::Split, n, {x}, 18), "num_outputs 4 does not match");
}

TEST(Split, Errors) {
  Tensor x = iota<float>({7});
  EXPECT_HAS(run_error(kernels::Split, make_node("Split", 1, 2), {x}), "cannot split axis 0 of size 7 into 2 equal parts");
  std::string msg = run_error(kernels::Split, make_node("Split", 2, 2), {x, i64({3, 3})});
  EXPECT_HAS(msg, "split [3, 3] sums to 6");
  EXPECT_HAS(msg, "[7]");
  EXPECT_HAS(run_error(kernels::Split, make_node("Split", 2, 2), {x, i64({7})}), "has 1 entries but the node has 2 outputs");
}

// ------------------------------------------------------------------- Gather

template <class T>
Tensor naive_gather(const Tensor& x, const std::vector<int64_t>& idx, const Shape& ishape, int axis) {
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), ishape.begin(), ishape.end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  Tensor y = Tensor::allocate(x.dtype(), out);
  const size_t ir = ishape.size();
  for (int64_t i = 0; i < y.numel(); ++i) {
    std::vector<int64_t> oi = unravel(i, out);
    std::vector<int64_t> jj(oi.begin() + axis, oi.begin() + axis + static_cast<int64_t>(ir));
    int64_t v = idx[static_cast<size_t>(ravel(jj, ishape))];
    if (v < 0) v += x.shape()[static_cast<size_t>(axis)];
    std::vector<int64_t> xi(oi.begin(), oi.begin() + axis);
    xi.push_back(v);
    xi.insert(xi.end(), oi.begin() + axis + static_cast<int64_t>(ir), oi.end());
    y.mutable_data<T>()[i] = x.data<T>()[ravel(xi, x.shape())];
  }
  return y;
}

TEST(Gather, EveryAxisNegativeIndicesMatchesNaive) {
  TwoThreads threads;
  Tensor x = random_tensor({3, 4, 5}, 21);
  const std::vector<int64_t> idx = {0, -1, 2, 1, -3, 2};
  for (int axis = 0; axis < 3; ++axis) {
    Node n = make_node("Gather", 2);
    n.attrs["axis"] = attr_int(axis - 3);
    Tensor y = run1(kernels::Gather, n, {x, make_tensor<int64_t>({2, 3}, idx)});
    EXPECT_TRUE(tensors_equal(y, naive_gather<float>(x, idx, {2, 3}, axis))) << "axis " << axis;
    std::vector<int32_t> idx32(idx.begin(), idx.end());
    Tensor y32 = run1(kernels::Gather, n, {x, make_tensor<int32_t>({6}, idx32)});
    EXPECT_TRUE(tensors_equal(y32, naive_gather<float>(x, idx, {6}, axis))) << "axis " << axis;
  }
}

TEST(Gather, ScalarIndexAndInt64Data) {
  Tensor shape = i64({2, 7, 512});  // the Shape -> Gather(0-d) pattern
  Tensor y = run1(kernels::Gather, make_node("Gather", 2), {shape, make_tensor<int64_t>({}, {1})});
  EXPECT_TRUE(tensors_equal(y, make_tensor<int64_t>({}, {7})));
  Tensor emb = iota<uint8_t>({4, 3});
  EXPECT_TRUE(tensors_equal(run1(kernels::Gather, make_node("Gather", 2), {emb, i64({3, 0})}),
                            make_tensor<uint8_t>({2, 3}, {9, 10, 11, 0, 1, 2})));
}

TEST(Gather, OutOfRangeIndex) {
  Tensor x = random_tensor({3, 4}, 21);
  Node n = make_node("Gather", 2);
  n.attrs["axis"] = attr_int(1);
  std::string msg = run_error(kernels::Gather, n, {x, i64({0, 4})});
  EXPECT_HAS(msg, "index 4 is out of range for axis 1 of size 4");
  EXPECT_HAS(run_error(kernels::Gather, n, {x, i64({-5})}), "index -5");
  EXPECT_HAS(run_error(kernels::Gather, n, {x, make_tensor<float>({1}, {0})}), "'indices' must be int64");
}

// --------------------------------------------------------------------- Cast

Node cast_node(int64_t to) {
  Node n = make_node("Cast", 1);
  n.attrs["to"] = attr_int(to);
  return n;
}

TEST(Cast, FloatToIntegersTruncatesTowardZero) {
  Tensor x = make_tensor<float>({6}, {1.9f, -1.9f, 0.5f, -0.5f, 127.f, 3e9f});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(7), {x}),
                            make_tensor<int64_t>({6}, {1, -1, 0, 0, 127, 3000000000LL})));
  // Out of range saturates (NaN -> 0): a documented choice, C++ leaves it undefined.
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(6), {x}),
                            make_tensor<int32_t>({6}, {1, -1, 0, 0, 127, 2147483647})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(3), {x}),
                            make_tensor<int8_t>({6}, {1, -1, 0, 0, 127, 127})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(2), {x}),
                            make_tensor<uint8_t>({6}, {1, 0, 0, 0, 127, 255})));
  Tensor nan = make_tensor<float>({1}, {std::nanf("")});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(7), {nan}), make_tensor<int64_t>({1}, {0})));
}

TEST(Cast, ToAndFromBool) {
  Tensor x = make_tensor<float>({4}, {0.f, -0.f, 0.25f, -3.f});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(9), {x}), make_tensor<bool>({4}, {false, false, true, true})));
  Tensor b = make_tensor<bool>({3}, {true, false, true});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(1), {b}), make_tensor<float>({3}, {1, 0, 1})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(7), {b}), make_tensor<int64_t>({3}, {1, 0, 1})));
  Tensor i = make_tensor<int64_t>({3}, {0, 256, -1});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(9), {i}), make_tensor<bool>({3}, {false, true, true})));
}

// Cast's own float32 <-> float16 loops (data_ops.cc) give the bits of
// runtime/tensor.h's half_to_float / float_to_half: every half, and floats
// across the whole bit range (a stride of 997 patterns, plus the 13 dropped
// mantissa bits' rounding cases around every exponent: ties, one below and
// one above, odd and even), checked exhaustively over all 2^32 floats once
// when written.
TEST(Cast, Float16LoopsMatchTheScalarConversions) {
  TwoThreads threads;
  std::vector<uint16_t> halves(65536);
  std::iota(halves.begin(), halves.end(), uint16_t{0});
  Tensor h = Tensor::allocate(DType::kFloat16, {65536});
  std::memcpy(h.mutable_data<uint16_t>(), halves.data(), halves.size() * 2);
  Tensor f = run1(kernels::Cast, cast_node(1), {h});
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = half_to_float(static_cast<uint16_t>(i));
    ASSERT_EQ(std::memcmp(&f.data<float>()[i], &want, 4), 0) << "half 0x" << std::hex << i;
  }
  std::vector<uint32_t> bits;
  for (uint64_t u = 0; u < (uint64_t{1} << 32); u += 997) bits.push_back(static_cast<uint32_t>(u));
  for (uint32_t top = 0; top < 512; ++top)  // sign and exponent
    for (uint32_t low : {0x0u, 0x1u, 0xfffu, 0x1000u, 0x1001u, 0x1fffu, 0x2000u, 0x3000u, 0x7fffffu, 0x7ff000u, 0x7fefffu})
      bits.push_back(top << 23 | low);
  Tensor x = Tensor::allocate(DType::kFloat32, {static_cast<int64_t>(bits.size())});
  std::memcpy(x.mutable_data<float>(), bits.data(), bits.size() * 4);
  Tensor y = run1(kernels::Cast, cast_node(10), {x});
  for (size_t i = 0; i < bits.size(); ++i)
    ASSERT_EQ(y.data<uint16_t>()[i], float_to_half(x.data<float>()[i])) << "float bits 0x" << std::hex << bits[i];
}

TEST(Cast, IntegerConversions) {
  Tensor i = make_tensor<int64_t>({4}, {-1, 300, 7, 1LL << 40});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(1), {i}),
                            make_tensor<float>({4}, {-1.f, 300.f, 7.f, 1099511627776.f})));
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(11), {i}),
                            make_tensor<double>({4}, {-1.0, 300.0, 7.0, 1099511627776.0})));
  // Integer narrowing is modular, as in C++ (and NumPy).
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(2), {i}), make_tensor<uint8_t>({4}, {255, 44, 7, 0})));
  Tensor u32 = run1(kernels::Cast, cast_node(12), {i});
  ASSERT_EQ(u32.dtype(), DType::kUInt32);
  EXPECT_EQ(u32.data<uint32_t>()[0], 0xffffffffu);
  Tensor back = run1(kernels::Cast, cast_node(7), {u32});
  EXPECT_TRUE(tensors_equal(back, make_tensor<int64_t>({4}, {4294967295LL, 300, 7, 0})));
  Tensor i32 = run1(kernels::Cast, cast_node(6), {make_tensor<uint8_t>({2}, {200, 5})});
  EXPECT_TRUE(tensors_equal(i32, make_tensor<int32_t>({2}, {200, 5})));
}

TEST(Cast, HalfAndBFloat16RoundTrip) {
  TwoThreads threads;
  Tensor x = random_tensor({40000}, 31, -100.f, 100.f);
  Tensor h = run1(kernels::Cast, cast_node(10), {x});
  ASSERT_EQ(h.dtype(), DType::kFloat16);
  EXPECT_EQ(h.data<uint16_t>()[0], float_to_half(x.data<float>()[0]));
  Tensor back = run1(kernels::Cast, cast_node(1), {h});
  EXPECT_TRUE(test::tensors_near(back, x, 0, 1.0 / 1024));
  Tensor hd = run1(kernels::Cast, cast_node(11), {h});
  EXPECT_TRUE(test::tensors_near(hd, run1(kernels::Cast, cast_node(11), {back}), 0, 0));

  Tensor b = run1(kernels::Cast, cast_node(16), {make_tensor<float>({4}, {1.0f, 0.48033667f, -2.5f, INFINITY})});
  ASSERT_EQ(b.dtype(), DType::kBFloat16);
  // 0.48033667f = 0x3EF5_EF0B; rounds to nearest even -> 0x3EF6.
  EXPECT_EQ(b.data<uint16_t>()[0], 0x3F80);
  EXPECT_EQ(b.data<uint16_t>()[1], 0x3EF6);
  EXPECT_EQ(b.data<uint16_t>()[2], 0xC020);
  EXPECT_EQ(b.data<uint16_t>()[3], 0x7F80);
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(1), {b}),
                            make_tensor<float>({4}, {1.0f, 0.48046875f, -2.5f, INFINITY})));
  // Half -> int truncates like float.
  Tensor hi = run1(kernels::Cast, cast_node(6), {run1(kernels::Cast, cast_node(10), {make_tensor<float>({2}, {-2.75f, 9.5f})})});
  EXPECT_TRUE(tensors_equal(hi, make_tensor<int32_t>({2}, {-2, 9})));
}

TEST(Cast, SameTypeAndUnsupportedTarget) {
  Tensor x = make_tensor<float>({2}, {1, 2});
  EXPECT_TRUE(tensors_equal(run1(kernels::Cast, cast_node(1), {x}), x));
  EXPECT_HAS(run_error(kernels::Cast, cast_node(17), {x}, 19), "'to' = 17 (FLOAT8E4M3FN) is not supported");
  EXPECT_HAS(run_error(kernels::Cast, cast_node(8), {x}), "'to' = 8 (STRING) is not supported");
  EXPECT_HAS(run_error(kernels::Cast, cast_node(99), {x}), "'to' = 99");
  EXPECT_HAS(run_error(kernels::Cast, make_node("Cast", 1), {x}), "missing required attribute 'to'");
}

// ----------------------------------------------------------------- Constant

TEST(Constant, AllValueForms) {
  Tensor v = make_tensor<int32_t>({2, 2}, {1, 2, 3, 4});
  Node n = make_node("Constant", 0);
  n.attrs["value"] = attr_tensor(v);
  Tensor y = run1(kernels::Constant, n, {});
  EXPECT_TRUE(tensors_equal(y, v));
  EXPECT_EQ(y.raw(), v.raw());

  Node f = make_node("Constant", 0);
  f.attrs["value_float"] = attr_float(2.5f);
  EXPECT_TRUE(tensors_equal(run1(kernels::Constant, f, {}, 12), make_tensor<float>({}, {2.5f})));
  Node fs = make_node("Constant", 0);
  fs.attrs["value_floats"] = attr_floats({1.f, -2.f});
  EXPECT_TRUE(tensors_equal(run1(kernels::Constant, fs, {}, 12), make_tensor<float>({2}, {1.f, -2.f})));
  Node i = make_node("Constant", 0);
  i.attrs["value_int"] = attr_int(-7);
  EXPECT_TRUE(tensors_equal(run1(kernels::Constant, i, {}, 12), make_tensor<int64_t>({}, {-7})));
  Node is = make_node("Constant", 0);
  is.attrs["value_ints"] = attr_ints({3, 4, 5});
  EXPECT_TRUE(tensors_equal(run1(kernels::Constant, is, {}, 12), i64({3, 4, 5})));
}

TEST(Constant, UnsupportedForms) {
  Node s = make_node("Constant", 0);
  s.attrs["value_string"] = attr_string("hello");
  EXPECT_HAS(run_error(kernels::Constant, s, {}), "'value_string' is unsupported");
  Node sp = make_node("Constant", 0);
  sp.attrs["sparse_value"] = attr_tensor(make_tensor<float>({1}, {1}));
  EXPECT_HAS(run_error(kernels::Constant, sp, {}), "'sparse_value' is unsupported");
  EXPECT_HAS(run_error(kernels::Constant, make_node("Constant", 0), {}), "has none of the attributes");
}

// ---------------------------------------------------------- ConstantOfShape

TEST(ConstantOfShape, DefaultAndValue) {
  Tensor y = run1(kernels::ConstantOfShape, make_node("ConstantOfShape", 1), {i64({2, 3})});
  EXPECT_TRUE(tensors_equal(y, make_tensor<float>({2, 3}, {0, 0, 0, 0, 0, 0})));
  Node n = make_node("ConstantOfShape", 1);
  n.attrs["value"] = attr_tensor(make_tensor<int64_t>({1}, {-9}));
  EXPECT_TRUE(tensors_equal(run1(kernels::ConstantOfShape, n, {i64({3})}), i64({-9, -9, -9})));
  n.attrs["value"] = attr_tensor(make_tensor<float>({1}, {1.5f}));
  EXPECT_TRUE(tensors_equal(run1(kernels::ConstantOfShape, n, {i64({})}), make_tensor<float>({}, {1.5f})));
  EXPECT_EQ(run1(kernels::ConstantOfShape, n, {i64({4, 0})}).shape(), (Shape{4, 0}));
}

TEST(ConstantOfShape, Errors) {
  Node n = make_node("ConstantOfShape", 1);
  n.attrs["value"] = attr_tensor(make_tensor<float>({2}, {1, 2}));
  EXPECT_HAS(run_error(kernels::ConstantOfShape, n, {i64({3})}), "one-element tensor, got shape [2]");
  EXPECT_HAS(run_error(kernels::ConstantOfShape, make_node("ConstantOfShape", 1), {i64({2, -1})}), "negative dimension -1");
}

// -------------------------------------------------------------------- Range

TEST(Range, IntegerAndFloat) {
  auto range = [](Tensor s, Tensor l, Tensor d) { return run1(kernels::Range, make_node("Range", 3), {s, l, d}, 11); };
  auto s64 = [](int64_t v) { return make_tensor<int64_t>({}, {v}); };
  auto s32 = [](int32_t v) { return make_tensor<int32_t>({}, {v}); };
  auto f32 = [](float v) { return make_tensor<float>({}, {v}); };
  EXPECT_TRUE(tensors_equal(range(s64(0), s64(5), s64(2)), i64({0, 2, 4})));
  EXPECT_TRUE(tensors_equal(range(s64(10), s64(4), s64(-3)), i64({10, 7})));
  EXPECT_TRUE(tensors_equal(range(s64(10), s64(4), s64(3)), i64({})));
  EXPECT_TRUE(tensors_equal(range(s32(-3), s32(0), s32(1)), make_tensor<int32_t>({3}, {-3, -2, -1})));
  EXPECT_TRUE(tensors_equal(range(f32(1.f), f32(2.f), f32(0.25f)), make_tensor<float>({4}, {1.f, 1.25f, 1.5f, 1.75f})));
  EXPECT_TRUE(tensors_equal(range(f32(3.f), f32(1.f), f32(-0.5f)), make_tensor<float>({4}, {3.f, 2.5f, 2.f, 1.5f})));
  EXPECT_EQ(range(f32(0.f), f32(1.f), f32(0.3f)).shape(), (Shape{4}));
}

TEST(Range, Errors) {
  Node n = make_node("Range", 3);
  auto s64 = [](int64_t v) { return make_tensor<int64_t>({}, {v}); };
  EXPECT_HAS(run_error(kernels::Range, n, {s64(0), s64(5), s64(0)}, 11), "delta is 0");
  EXPECT_HAS(run_error(kernels::Range, n, {s64(0), make_tensor<float>({}, {5}), s64(1)}, 11), "'limit' has dtype float32");
  EXPECT_HAS(run_error(kernels::Range, n, {s64(0), i64({5, 6}), s64(1)}, 11), "'limit' must be a scalar");
  EXPECT_HAS(run_error(kernels::Range, n, {make_tensor<uint8_t>({}, {0}), make_tensor<uint8_t>({}, {5}),
                                         make_tensor<uint8_t>({}, {1})}, 11),
             "dtype uint8");
}

}  // namespace
}  // namespace sarai

namespace sarai {
namespace {

Node pad_node(const std::string& mode, int inputs = 2) {
  Node n = test::make_node("Pad", inputs);
  if (!mode.empty()) n.attrs["mode"] = test::attr_string(mode);
  return n;
}

// Pad beyond the ONNX 1.12 node tests (constant, edge, reflect on 2-D):
// wrap, axes, negative pads, reflect and wrap wider than the data, the
// opset < 11 attribute form, integer data with constant_value, and errors.
TEST(Pad, ModesAxesCropAndErrors) {
  using test::make_tensor;
  using test::run1;
  using test::run_error;
  const Tensor x = make_tensor<float>({1, 3}, {1, 2, 3});
  const Tensor pads = make_tensor<int64_t>({4}, {0, 4, 0, 2});  // 4 before, 2 after on axis 1
  auto row = [](const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); };
  EXPECT_EQ(row(run1(kernels::Pad, pad_node("reflect"), {x, pads})), (std::vector<float>{1, 2, 3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(row(run1(kernels::Pad, pad_node("edge"), {x, pads})), (std::vector<float>{1, 1, 1, 1, 1, 2, 3, 3, 3}));
  EXPECT_EQ(row(run1(kernels::Pad, pad_node("wrap"), {x, pads}, 19)), (std::vector<float>{3, 1, 2, 3, 1, 2, 3, 1, 2}));
  const Tensor seven = make_tensor<float>({}, {7});
  EXPECT_EQ(row(run1(kernels::Pad, pad_node("", 3), {x, pads, seven})), (std::vector<float>{7, 7, 7, 7, 1, 2, 3, 7, 7}));
  // Negative pads crop; axes (opset 18) pick the padded axes.
  const Tensor crop = run1(kernels::Pad, pad_node("", 4), {x, make_tensor<int64_t>({2}, {-1, 1}), Tensor(), make_tensor<int64_t>({1}, {-1})}, 18);
  EXPECT_EQ(crop.shape(), (Shape{1, 3}));
  EXPECT_EQ(row(crop), (std::vector<float>{2, 3, 0}));
  // Opset < 11: pads and value are attributes.
  Node old = test::make_node("Pad", 1);
  old.attrs["pads"] = test::attr_ints({1, 0, 0, 1});
  old.attrs["value"] = test::attr_float(-1.f);
  const Tensor o = run1(kernels::Pad, old, {x}, 9);
  EXPECT_EQ(o.shape(), (Shape{2, 4}));
  EXPECT_EQ(row(o), (std::vector<float>{-1, -1, -1, -1, 1, 2, 3, -1}));
  // Integers with a constant value, a single-element axis reflected.
  const Tensor xi = make_tensor<int64_t>({2, 1}, {5, 6});
  const Tensor yi = run1(kernels::Pad, pad_node("reflect"), {xi, make_tensor<int64_t>({4}, {1, 2, 0, 0})});
  EXPECT_TRUE(test::tensors_equal(yi, make_tensor<int64_t>({3, 3}, {6, 6, 6, 5, 5, 5, 6, 6, 6})));
  const Tensor ci = run1(kernels::Pad, pad_node("", 3), {xi, make_tensor<int64_t>({4}, {0, 0, 0, 1}), make_tensor<int64_t>({1}, {9})});
  EXPECT_TRUE(test::tensors_equal(ci, make_tensor<int64_t>({2, 2}, {5, 9, 6, 9})));

  EXPECT_HAS(run_error(kernels::Pad, pad_node("wrap"), {x, pads}, 18), "attribute 'mode' is 'wrap'; expected constant, reflect, edge (wrap needs opset 19)");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("mirror"), {x, pads}, 19), "attribute 'mode' is 'mirror'; expected constant, reflect, edge or wrap");
  EXPECT_HAS(run_error(kernels::Pad, pad_node(""), {x, make_tensor<int64_t>({2}, {1, 1})}),
             "pads [1, 1] must hold 2 values per padded axis (4) for data [1, 3]");
  EXPECT_HAS(run_error(kernels::Pad, pad_node(""), {x, make_tensor<int64_t>({4}, {0, -4, 0, 0})}),
             "pads [0, -4, 0, 0] give axis 1 of data [1, 3] a negative or too large size");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("edge"), {make_tensor<float>({1, 0}, {}), pads}),
             "axis 1 of data [1, 0] is empty: nothing to pad from in this mode");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("", 3), {x, pads, make_tensor<int64_t>({}, {1})}),
             "input 'constant_value' has dtype int64; it must be the data's, float32");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("", 3), {x, pads, make_tensor<float>({2}, {1, 2})}),
             "input 'constant_value' [2] must hold one value");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("", 4), {x, make_tensor<int64_t>({4}, {0, 0, 0, 0}), Tensor(), make_tensor<int64_t>({2}, {1, -1})}, 18),
             "input 'axes' names axis 1 twice");
  EXPECT_HAS(run_error(kernels::Pad, pad_node("", 1), {x}), "missing required input 'pads'");
  Node no_pads = test::make_node("Pad", 1);
  EXPECT_HAS(run_error(kernels::Pad, no_pads, {x}, 9), "attribute 'pads' is missing");
  old.attrs["value"] = test::attr_float(2.f);
  EXPECT_HAS(run_error(kernels::Pad, old, {xi}, 9), "attribute 'value' needs float32 data, got int64");
}

}  // namespace
}  // namespace sarai
