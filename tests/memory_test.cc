// The memory planner (runtime/memory_plan.h) and the session's planned,
// budgeted and streaming runs (runtime/session.h).
//
// This executable replaces malloc & co. with counting wrappers, so the test
// "NoHeapAllocationAfterFirstRun" can see every allocation the process
// makes during a run (operator new goes through malloc). Allocations made
// inside a ForeignAllocationScope (oneDNN's sgemm packs into a buffer it
// mallocs per call) are counted apart. Under AddressSanitizer, which owns
// malloc, the wrappers are left out and that test is skipped.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/model_file.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "runtime/memory_plan.h"
#include "runtime/memory_stats.h"
#include "runtime/session.h"
#include "onnx_builder.h"
#include "test_util.h"

// GCC says ASan with __SANITIZE_ADDRESS__, clang with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define SARAI_COUNT_ALLOCATIONS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SARAI_COUNT_ALLOCATIONS 0
#endif
#endif
#ifndef SARAI_COUNT_ALLOCATIONS
#define SARAI_COUNT_ALLOCATIONS 1
#endif

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_ours{0}, g_foreign{0};
[[maybe_unused]] inline void count_one() {
  if (!g_counting.load(std::memory_order_relaxed)) return;
  (sarai::ForeignAllocationScope::active() ? g_foreign : g_ours).fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

#if SARAI_COUNT_ALLOCATIONS
extern "C" {
void* __libc_malloc(size_t);
void __libc_free(void*);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) {
  count_one();
  return __libc_malloc(n);
}
void free(void* p) { __libc_free(p); }
void* calloc(size_t n, size_t s) {
  count_one();
  return __libc_calloc(n, s);
}
void* realloc(void* p, size_t n) {
  count_one();
  return __libc_realloc(p, n);
}
void* memalign(size_t a, size_t n) {
  count_one();
  return __libc_memalign(a, n);
}
void* aligned_alloc(size_t a, size_t n) {
  count_one();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, size_t a, size_t n) {
  count_one();
  *out = __libc_memalign(a, n);
  return *out ? 0 : ENOMEM;
}
}
#endif

namespace sarai {
namespace {

using test::fixture;

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// ------------------------------------------------------------ plan_arena

TEST(MemoryPlan, DisjointLifetimesShareAndOverlappingOnesDoNot) {
  const std::vector<BufferLifetime> b = {{1000, 0, 1}, {1000, 2, 3}, {500, 1, 2}};
  const ArenaLayout l = plan_arena(b);
  ASSERT_TRUE(check_arena_layout(b, l).is_ok());
  EXPECT_EQ(l.offsets[0], l.offsets[1]);  // 0 dies before 1 is born
  EXPECT_EQ(l.size, 1024u + 512u);       // 64-byte aligned sizes
  EXPECT_EQ(arena_lower_bound(b), 1024u + 512u);
  const ArenaLayout apart = plan_arena(b, 64, /*reuse=*/false);
  EXPECT_EQ(apart.size, 1024u + 1024u + 512u);
  ASSERT_TRUE(check_arena_layout(b, apart).is_ok());
}

TEST(MemoryPlan, CheckerFindsOverlapsAndOverruns) {
  const std::vector<BufferLifetime> b = {{128, 0, 2}, {128, 1, 3}};
  ArenaLayout bad{{0, 64}, 192};
  EXPECT_HAS(check_arena_layout(b, bad).message(), "alive together and overlap");
  ArenaLayout short_arena{{0, 128}, 192};
  EXPECT_HAS(check_arena_layout(b, short_arena).message(), "ends past the arena");
}

TEST(MemoryPlan, RandomLifetimesNeverOverlapAndStayNearTheBound) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 60), positions = 1 + static_cast<int>(rng() % 40);
    std::vector<BufferLifetime> b;
    for (int i = 0; i < n; ++i) {
      const int first = static_cast<int>(rng() % positions);
      const int last = first + static_cast<int>(rng() % (positions - first + 1));
      const uint64_t bytes = rng() % 4 == 0 ? 0 : 1 + rng() % (1 << (4 + rng() % 14));
      b.push_back({bytes, first, last});
    }
    const ArenaLayout l = plan_arena(b);
    ASSERT_TRUE(check_arena_layout(b, l).is_ok()) << "trial " << trial << ": " << check_arena_layout(b, l).message();
    const uint64_t bound = arena_lower_bound(b);
    EXPECT_GE(l.size, bound);
    EXPECT_LE(l.size, plan_arena(b, 64, false).size);
    // Greedy by size is not optimal, but it is never far off on such sets.
    EXPECT_LE(static_cast<double>(l.size), 2.0 * static_cast<double>(bound) + 64) << "trial " << trial;
  }
}

// The layout greedy by size gives when every placed buffer is compared with
// every other (what plan_arena did before it indexed lifetimes): the
// indexed planner must give the very same offsets.
ArenaLayout plan_arena_all_pairs(const std::vector<BufferLifetime>& buffers, uint64_t alignment = 64) {
  ArenaLayout layout;
  layout.offsets.assign(buffers.size(), 0);
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return buffers[a].first < buffers[b].first;
  });
  std::vector<size_t> placed;
  for (size_t i : order) {
    const uint64_t need = align_up(buffers[i].bytes, alignment);
    if (need == 0) continue;
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (size_t j : placed)
      if (buffers[i].first <= buffers[j].last && buffers[j].first <= buffers[i].last)
        busy.push_back({layout.offsets[j], layout.offsets[j] + align_up(buffers[j].bytes, alignment)});
    std::sort(busy.begin(), busy.end());
    uint64_t best = UINT64_MAX, best_gap = UINT64_MAX, cursor = 0;
    for (const auto& [b, e] : busy) {
      if (b > cursor && b - cursor >= need && b - cursor < best_gap) {
        best = cursor;
        best_gap = b - cursor;
      }
      cursor = std::max(cursor, e);
    }
    if (best == UINT64_MAX) best = cursor;
    layout.offsets[i] = best;
    layout.size = std::max(layout.size, best + need);
    placed.push_back(i);
  }
  return layout;
}

TEST(MemoryPlan, IndexedPlannerGivesTheAllPairsLayout) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 200), positions = 1 + static_cast<int>(rng() % 300);
    std::vector<BufferLifetime> b;
    for (int i = 0; i < n; ++i) {
      const int first = static_cast<int>(rng() % positions);
      const int span = rng() % 8 == 0 ? positions : 1 + static_cast<int>(rng() % 6);
      const int last = std::min(positions - 1, first + static_cast<int>(rng() % span));
      const uint64_t bytes = rng() % 4 == 0 ? 0 : 1 + rng() % (1 << (4 + rng() % 14));
      b.push_back({bytes, first, last});
    }
    const ArenaLayout l = plan_arena(b), ref = plan_arena_all_pairs(b);
    ASSERT_EQ(l.offsets, ref.offsets) << "trial " << trial;
    ASSERT_EQ(l.size, ref.size) << "trial " << trial;
  }
}

// A long chain (each buffer read by the next node only) and a wide fan (all
// buffers alive to the end, as when one Concat reads them all): both must
// plan correctly. The fan exceeds the pair budget, so past it buffers are
// stacked; since they are all alive together that costs nothing.
TEST(MemoryPlan, LongChainsAndWideFansPlanCorrectly) {
  const int n = 100000;
  std::vector<BufferLifetime> chain, fan;
  for (int i = 0; i < n; ++i) {
    chain.push_back({static_cast<uint64_t>(64 + (i % 7) * 64), i, i + 1});
    fan.push_back({64, i, n});
  }
  const ArenaLayout lc = plan_arena(chain);
  ASSERT_TRUE(check_arena_layout(chain, lc).is_ok()) << check_arena_layout(chain, lc).message();
  EXPECT_LE(lc.size, 2 * arena_lower_bound(chain));
  const ArenaLayout lf = plan_arena(fan);
  ASSERT_TRUE(check_arena_layout(fan, lf).is_ok()) << check_arena_layout(fan, lf).message();
  EXPECT_EQ(lf.size, arena_lower_bound(fan));
  // The checker still catches one overlap among them.
  ArenaLayout bad = lf;
  bad.offsets[n / 2] = bad.offsets[n / 3];
  EXPECT_HAS(check_arena_layout(fan, bad).message(),
             "buffers " + std::to_string(n / 3) + " and " + std::to_string(n / 2) + " are alive together and overlap");
}

// ------------------------------------------------------------ random DAGs

using test::add_init;
using test::add_input;
using test::session_on;

// A node whose output is a new value "v<index>".
int add_node(Graph& g, const std::string& op, std::vector<int> in, std::map<std::string, Attribute> attrs = {}) {
  return test::add_node(g, op, "", std::move(in), test::numbered("v", g.values.size()), std::move(attrs));
}

// A random graph over x [R, C]: element-wise ops, views (Reshape), copies
// (Transpose), MatMul with a weight, Concat+Slice, and graph outputs picked
// among the values (some of them read later too).
std::shared_ptr<Model> random_dag(uint32_t seed, int64_t rows, int64_t cols) {
  std::mt19937 rng(seed);
  auto m = std::make_shared<Model>();
  m->path = "random_dag_" + std::to_string(seed);
  Graph& g = m->graph;
  g.opset = 17;
  const int x = add_input(g, "x");
  const int w = add_init(g, "w", test::random_tensor({cols, cols}, seed + 1, -0.2f, 0.2f));
  const int as_rc = add_init(g, "shape_rc", test::make_tensor<int64_t>({2}, {rows, cols}));
  const int as_cr = add_init(g, "shape_cr", test::make_tensor<int64_t>({2}, {cols, rows}));
  std::vector<int> rc = {x}, cr;  // values of shape [R, C] and [C, R]
  auto pick = [&](const std::vector<int>& v) { return v[rng() % v.size()]; };
  const int nodes = 8 + static_cast<int>(rng() % 30);
  for (int i = 0; i < nodes; ++i) {
    const bool use_cr = !cr.empty() && rng() % 3 == 0;
    std::vector<int>& pool = use_cr ? cr : rc;
    switch (rng() % 8) {
      case 0: case 1: {
        static const char* kBinary[] = {"Add", "Mul", "Sub"};
        pool.push_back(add_node(g, kBinary[rng() % 3], {pick(pool), pick(pool)}));
        break;
      }
      case 2: {
        static const char* kUnary[] = {"Relu", "Sigmoid", "Tanh"};
        pool.push_back(add_node(g, kUnary[rng() % 3], {pick(pool)}));
        break;
      }
      case 3:  // a view of the other shape
        (use_cr ? rc : cr).push_back(add_node(g, "Reshape", {pick(pool), use_cr ? as_rc : as_cr}));
        break;
      case 4:  // a copy of the other shape
        (use_cr ? rc : cr).push_back(add_node(g, "Transpose", {pick(pool)}, {{"perm", test::attr_ints({1, 0})}}));
        break;
      case 5:
        if (!use_cr) rc.push_back(add_node(g, "MatMul", {pick(rc), w}));
        break;
      case 6: {  // Concat then Slice back: a buffer twice the size, then a copy
        const int cat = add_node(g, "Concat", {pick(rc), pick(rc)}, {{"axis", test::attr_int(0)}});
        const int st = add_init(g, "st" + std::to_string(i), test::make_tensor<int64_t>({1}, {rows / 2}));
        const int en = add_init(g, "en" + std::to_string(i), test::make_tensor<int64_t>({1}, {rows / 2 + rows}));
        const int ax = add_init(g, "ax" + std::to_string(i), test::make_tensor<int64_t>({1}, {0}));
        rc.push_back(add_node(g, "Slice", {cat, st, en, ax}));
        break;
      }
      default:
        pool.push_back(add_node(g, "Relu", {add_node(g, "Add", {pick(pool), pick(pool)})}));
    }
  }
  g.outputs = {rc.back()};
  for (int k = 0; k < 2; ++k) {
    const int o = pick(rng() % 2 || cr.empty() ? rc : cr);
    if (std::find(g.outputs.begin(), g.outputs.end(), o) == g.outputs.end()) g.outputs.push_back(o);
  }
  return m;
}

// A session on `m` with every kernel registered (a failed expectation and
// nullptr if it cannot be made).
std::vector<NamedTensor> run_model(std::shared_ptr<const Model> m, const std::vector<NamedTensor>& inputs,
                                   SessionOptions o, int runs = 2, MemoryReport* report = nullptr) {
  std::unique_ptr<Session> s = session_on(std::move(m), o);
  if (!s) return {};
  std::vector<NamedTensor> out;
  for (int r = 0; r < runs; ++r) {
    Status st = s->run(inputs, &out);
    EXPECT_TRUE(st.is_ok()) << st.message();
    if (!st) return {};
  }
  if (report) {
    auto rep = s->prepare(inputs);
    EXPECT_TRUE(rep.has_value());
    if (rep.has_value()) *report = *rep;
  }
  EXPECT_EQ(s->plan_misses(), 0);
  return out;
}

void expect_same_outputs(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(same_bits(a[i].tensor, b[i].tensor)) << what << ": output '" << a[i].name << "' differs";
}

// Runs `m` with every buffer apart and with planned reuse (both checking
// live overlaps after every node) and expects the same bits; returns the
// planned session's report.
MemoryReport expect_reuse_changes_nothing(std::shared_ptr<const Model> m, const std::vector<NamedTensor>& in,
                                          const std::string& what) {
  SessionOptions apart;
  apart.reuse_buffers = false;
  apart.check_overlaps = true;
  SessionOptions reuse;
  reuse.check_overlaps = true;
  MemoryReport r;
  const auto a = run_model(m, in, apart);
  const auto b = run_model(m, in, reuse, 3, &r);
  expect_same_outputs(a, b, what);
  return r;
}

// The fixture's FP32 model and its INT8 blob (converted into `dir`).
std::pair<std::shared_ptr<Model>, std::shared_ptr<Model>> fixture_and_blob(const std::string& model,
                                                                           const std::string& dir) {
  auto fp32 = load_onnx(fixture(model));
  auto source = load_onnx(fixture(model));
  EXPECT_TRUE(fp32.has_value() && source.has_value());
  if (!fp32.has_value() || !source.has_value()) return {};
  const std::string path = dir + "/" + model + ".sarai";
  EXPECT_TRUE(quant::convert_to_blob(**source, path, {}).has_value());
  auto blob = load_blob(path);
  EXPECT_TRUE(blob.has_value()) << blob.message();
  if (!blob.has_value()) return {};
  return {*fp32, *blob};
}

class PoisonedMemory : public ::testing::Test {
 protected:
  void SetUp() override {
    was_ = poison_memory();
    set_poison_memory(true);  // stale arena bytes become NaN: reuse bugs show
  }
  void TearDown() override { set_poison_memory(was_); }
  bool was_ = false;
};

using PlannedRuns = PoisonedMemory;

TEST_F(PlannedRuns, RandomDagsMatchUnsharedBuffersAndNeverOverlap) {
  int in_place = 0, shared = 0;
  for (uint32_t seed = 1; seed <= 60; ++seed) {
    const int64_t rows = 4 + seed % 5 * 2, cols = 3 + seed % 7;
    auto m = random_dag(seed, rows, cols);
    const std::vector<NamedTensor> in = {{"x", test::random_tensor({rows, cols}, seed)}};
    const MemoryReport r = expect_reuse_changes_nothing(m, in, m->path);
    if (HasFailure()) return;
    in_place += r.in_place;
    shared += r.arena_bytes < r.no_reuse_bytes;
    EXPECT_GE(r.arena_bytes, r.lower_bound_bytes) << m->path;
  }
  // The property is only tested if the graphs exercise reuse.
  EXPECT_GT(in_place, 20);
  EXPECT_GT(shared, 40);
}

struct FixtureCase {
  const char* model;
  const char* input;
  Shape shape;
};

class FixtureModels : public PoisonedMemory, public ::testing::WithParamInterface<FixtureCase> {};

INSTANTIATE_TEST_SUITE_P(Fixtures, FixtureModels,
                         ::testing::Values(FixtureCase{"whisper_tiny_encoder.onnx", "mel", {1, 80, 200}},
                                           FixtureCase{"small_cnn.onnx", "image", {1, 3, 64, 96}}),
                         [](const auto& info) {
                           std::string s = info.param.model;
                           return s.substr(0, s.find('.'));
                         });

// FP32 model and its INT8 blob: planned (shared buffers, in place) runs give
// the bits of unshared ones, no two live values ever overlap, and a second
// shape signature gets a plan of its own.
TEST_P(FixtureModels, PlannedRunsMatchUnsharedAndNeverOverlap) {
  const FixtureCase& c = GetParam();
  const auto [fp32, blob] = fixture_and_blob(c.model, test::temp_dir("memory"));
  ASSERT_TRUE(fp32 && blob);
  Shape other = c.shape;
  other.back() /= 2;
  for (const auto& [name, model] : {std::pair{"fp32", fp32}, std::pair{"int8", blob}}) {
    for (const Shape& shape : {c.shape, other}) {
      const std::vector<NamedTensor> in = {{c.input, test::random_tensor(shape, 3)}};
      const MemoryReport r = expect_reuse_changes_nothing(model, in, std::string(name) + " " + shape_to_string(shape));
      EXPECT_LT(r.arena_bytes, r.no_reuse_bytes / 2) << name << ": reuse should at least halve the arena";
      EXPECT_GT(r.in_place, 0) << name;
    }
  }
}

// A chain of MatMuls x[4, 512] @ W_i[512, 512] (1 MB each) with the weights
// in an external data file: big enough weights that the kernel's fault-around
// (it maps up to 64 KB around a faulting page) does not blur what is resident.
std::string matmul_chain(const std::string& dir, int layers) {
  const Tensor w = test::random_tensor({512, 512}, 4, -0.06f, 0.06f);
  std::vector<std::string> names;
  for (int i = 0; i < layers; ++i) names.push_back(test::numbered("mm", static_cast<size_t>(i)));
  onnx::ModelProto m = test::matmul_chain_model({4, 512}, {4, 512}, std::vector<Tensor>(static_cast<size_t>(layers), w), names);
  for (int i = 0; i < layers; ++i)
    test::externalize(m, test::numbered("w", static_cast<size_t>(i)), dir, "chain.data",
                      static_cast<uint64_t>(i) * w.nbytes());
  test::save(m, dir + "/chain.onnx");
  return dir + "/chain.onnx";
}

// Streaming releases each node's weight pages after use: same bits as the
// normal mode, and the weights do not stay resident.
// Graph size (issue 16, class 4): a chain of many element-wise nodes, and
// one value read by many nodes whose outputs one Concat reads. Both plan
// and run with the right result; the chain is computed in place in one
// buffer. (Each takes about a second; with the in-place pass quadratic in
// the nodes, as it was, the chain alone took minutes.)
std::shared_ptr<Model> relu_graph(int n, bool fan) {
  auto m = std::make_shared<Model>();
  m->path = fan ? "fan" : "chain";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = add_input(g, "x");
  std::vector<int> reluts;
  int v = x;
  for (int i = 0; i < n; ++i) {
    v = add_node(g, "Relu", {fan ? x : v});
    reluts.push_back(v);
  }
  g.outputs = {fan ? add_node(g, "Concat", reluts, {{"axis", test::attr_int(0)}}) : v};
  return m;
}

TEST(GraphSize, ALongChainRunsInPlaceInOneBuffer) {
  const int n = 100000;
  const Tensor x = test::random_tensor({1, 64}, 3);
  MemoryReport r;
  const std::vector<NamedTensor> out = run_model(relu_graph(n, false), {{"x", x}}, SessionOptions{1}, 1, &r);
  ASSERT_EQ(out.size(), 1u);
  for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(out[0].tensor.float_at(i), std::max(x.float_at(i), 0.0)) << i;
  EXPECT_EQ(r.in_place, n - 1);  // all but the first: its input is the caller's
  EXPECT_LE(r.arena_bytes, 64u * 4);
}

TEST(GraphSize, OneValueReadByManyNodes) {
  const int n = 50000;
  const Tensor x = test::random_tensor({1, 8}, 4);
  MemoryReport r;
  const std::vector<NamedTensor> out = run_model(relu_graph(n, true), {{"x", x}}, SessionOptions{1}, 1, &r);
  ASSERT_EQ(out.size(), 1u);
  ASSERT_EQ(out[0].tensor.shape(), (Shape{n, 8}));
  for (int64_t i = 0; i < 8; ++i) {
    EXPECT_EQ(out[0].tensor.float_at(i), std::max(x.float_at(i), 0.0)) << i;
    EXPECT_EQ(out[0].tensor.float_at((n - 1) * 8 + i), std::max(x.float_at(i), 0.0)) << i;
  }
  EXPECT_EQ(r.buffers, n + 1);  // every Relu's output, all alive until the Concat, and the Concat's
}

// Two values that each fit in the machine's memory but not together (0.6 of
// it each, both read by one Add): the planning pass stops at the second,
// before touching a page of either, with the memory error code, and does
// not retry as a real run.
TEST(GraphSize, ValuesThatTogetherPassTheMachinesMemoryAreRefused) {
  const int64_t n = static_cast<int64_t>(static_cast<double>(machine_memory_bytes()) * 0.6) / 4;
  auto m = std::make_shared<Model>();
  m->path = "two_big";
  Graph& g = m->graph;
  g.opset = 17;
  const int x = add_input(g, "x");
  const int shape = add_init(g, "shape", test::make_tensor<int64_t>({1}, {n}));
  const int a = add_node(g, "Expand", {x, shape});
  const int b = add_node(g, "Expand", {x, shape});
  g.outputs = {add_node(g, "Add", {a, b})};
  std::unique_ptr<Session> s = session_on(m, SessionOptions{1});
  ASSERT_TRUE(s);
  const Status st = s->run({{"x", test::make_tensor<float>({1}, {1.f})}}, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kOutOfMemoryBudget);
  EXPECT_HAS(st.message(), "two_big: node 'v3_node' (Expand): the values alive at this node would hold " +
                               std::to_string(2 * align_up(static_cast<uint64_t>(n) * 4, 64)) +
                               " bytes, more than this machine's " + std::to_string(machine_memory_bytes()) +
                               " bytes of memory");
}

// A model asking for a large constant (ConstantOfShape, 1/5 of the
// machine's memory, filled with 1.0 and zeros) under a small budget: the
// planning pass neither fills nor zeroes its pages, so the budget's message
// comes before any of them is resident.
TEST(GraphSize, LargeConstantsAreNotWrittenByThePlanningPass) {
  const int64_t n = static_cast<int64_t>(machine_memory_bytes() / 5 / 4);
  for (float value : {1.f, 0.f}) {
    auto m = std::make_shared<Model>();
    m->path = "big_constant";
    Graph& g = m->graph;
    g.opset = 17;
    const int shape = add_init(g, "shape", test::make_tensor<int64_t>({1}, {n}));
    g.outputs = {add_node(g, "ConstantOfShape", {shape}, {{"value", test::attr_tensor(test::make_tensor<float>({1}, {value}))}})};
    SessionOptions o{1};
    o.max_memory_bytes = uint64_t{100} << 20;
    std::unique_ptr<Session> s = session_on(m, o);
    ASSERT_TRUE(s);
    const uint64_t before = process_memory().peak_rss_bytes;
    const Status st = s->run({}, nullptr);
    ASSERT_FALSE(st.is_ok());
    EXPECT_EQ(st.code(), ErrorCode::kOutOfMemoryBudget);
    EXPECT_HAS(st.message(), "big_constant: a memory budget of 104.9 MB is too small: running needs at least");
    EXPECT_LT(process_memory().peak_rss_bytes, before + (uint64_t{256} << 20)) << value;
  }
}

// Without a budget, activations and outputs that together pass the
// machine's memory are refused too, before running (0.55 of it for the
// constant in the arena, as much again for the output handed back).
TEST(GraphSize, ActivationsPastTheMachinesMemoryAreRefusedBeforeRunning) {
  const int64_t n = static_cast<int64_t>(static_cast<double>(machine_memory_bytes()) * 0.55) / 4;
  auto m = std::make_shared<Model>();
  m->path = "big_constant";
  Graph& g = m->graph;
  g.opset = 17;
  const int shape = add_init(g, "shape", test::make_tensor<int64_t>({1}, {n}));
  g.outputs = {add_node(g, "ConstantOfShape", {shape}, {{"value", test::attr_tensor(test::make_tensor<float>({1}, {1.f}))}})};
  std::unique_ptr<Session> s = session_on(m, SessionOptions{1});
  ASSERT_TRUE(s);
  const uint64_t before = process_memory().peak_rss_bytes;
  const Status st = s->run({}, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.code(), ErrorCode::kOutOfMemoryBudget);
  EXPECT_HAS(st.message(), "big_constant: running needs at least ");
  EXPECT_HAS(st.message(), "more than this machine's ");
  EXPECT_LT(process_memory().peak_rss_bytes, before + (uint64_t{256} << 20));
}

TEST(StreamingWeights, SameOutputsAndTheWeightsDoNotStayResident) {
  const std::string dir = test::temp_dir("stream");
  auto m = load_onnx(matmul_chain(dir, 8));
  ASSERT_TRUE(m.has_value()) << m.message();
  const std::vector<NamedTensor> in = {{"x", test::random_tensor({4, 512}, 5)}};
  KernelTable table;
  register_kernels(table);
  auto normal = Session::create(*m, table, SessionOptions{});
  ASSERT_TRUE(normal.has_value());
  std::vector<NamedTensor> expect, out;
  ASSERT_TRUE((*normal)->run(in, &expect).is_ok());
  EXPECT_GT((*normal)->resident_weight_bytes(), uint64_t{7} << 20) << "a normal run maps every weight in";

  SessionOptions o;
  o.stream_weights = true;
  auto s = Session::create(*m, table, o);
  ASSERT_TRUE(s.has_value()) << s.message();
  auto plan = (*s)->prepare(in);
  ASSERT_TRUE(plan.has_value()) << plan.message();
  EXPECT_TRUE(plan->streaming);
  EXPECT_EQ(plan->mapped_weight_bytes, uint64_t{8} << 20);
  EXPECT_EQ(plan->largest_node_weight_bytes, uint64_t{1} << 20);
  for (int r = 0; r < 2; ++r) ASSERT_TRUE((*s)->run(in, &out).is_ok());
  expect_same_outputs(expect, out, "streaming");
  EXPECT_LT((*s)->resident_weight_bytes(), plan->mapped_weight_bytes / 8)
      << "resident " << (*s)->resident_weight_bytes() << " of " << plan->mapped_weight_bytes;

  // A budget between "everything" and "one layer at a time" streams by
  // itself and keeps a prefix of the weights resident: 12 MB above what the
  // process, the activations and the outputs take, 16 MB of weights.
  auto m16 = load_onnx(matmul_chain(test::temp_dir("stream16"), 16));
  ASSERT_TRUE(m16.has_value()) << m16.message();
  o.stream_weights = false;
  o.max_memory_bytes = process_memory().rss_bytes + plan->arena_bytes + plan->output_bytes + (uint64_t{12} << 20);
  auto budget = Session::create(*m16, table, o);
  ASSERT_TRUE(budget.has_value());
  auto bp = (*budget)->prepare(in);
  ASSERT_TRUE(bp.has_value()) << bp.message();
  EXPECT_TRUE(bp->streaming);
  EXPECT_GT(bp->pinned_weight_bytes, 0u);
  EXPECT_LT(bp->pinned_weight_bytes, bp->mapped_weight_bytes);
  EXPECT_LE(bp->needed_bytes, o.max_memory_bytes);
  auto full = Session::create(*m16, table, SessionOptions{});
  ASSERT_TRUE(full.has_value());
  ASSERT_TRUE((*full)->run(in, &expect).is_ok());
  ASSERT_TRUE((*budget)->run(in, &out).is_ok());
  expect_same_outputs(expect, out, "budget");
}

// A blob given as bytes (loader/model_file.h open_model_memory) streams its
// weights like the file: the run releases each layer's pages with madvise,
// which on the in-memory copy (a memfd, not anonymous memory, whose pages
// would come back as zeros) pages them back in intact, so every run equals
// the file's bit for bit. Errors name the model as the caller called it.
TEST(StreamingWeights, ABlobFromMemoryStreamsLikeItsFile) {
  const std::string dir = test::temp_dir("stream_memory");
  auto src = load_onnx(matmul_chain(dir, 8));
  ASSERT_TRUE(src.has_value()) << src.message();
  const std::string blob = dir + "/chain.sarai";
  ASSERT_TRUE(quant::convert_to_blob(**src, blob, {}).has_value());
  std::string bytes = test::read_file(blob);
  auto from_file = open_model_file(blob);
  auto from_memory = open_model_memory(bytes.data(), bytes.size(), "<chain bytes>");
  ASSERT_TRUE(from_file.has_value()) << from_file.message();
  ASSERT_TRUE(from_memory.has_value()) << from_memory.message();
  auto cut = open_model_memory(bytes.data(), bytes.size() / 2, "<cut bytes>");
  ASSERT_FALSE(cut.has_value());
  EXPECT_HAS(cut.message(), "<cut bytes>: ");
  std::fill(bytes.begin(), bytes.end(), '\xff');  // the model is a copy: the caller's buffer may change or go
  EXPECT_EQ((*from_memory)->path, "<chain bytes>");
  const std::vector<NamedTensor> in = {{"x", test::random_tensor({4, 512}, 5)}};
  KernelTable table;
  register_kernels(table);
  SessionOptions o;
  o.stream_weights = true;
  std::vector<NamedTensor> expect, out;
  auto file_session = Session::create(*from_file, table, o);
  auto memory_session = Session::create(*from_memory, table, o);
  ASSERT_TRUE(file_session.has_value() && memory_session.has_value());
  ASSERT_TRUE((*file_session)->run(in, &expect).is_ok());
  for (int r = 0; r < 3; ++r) {
    ASSERT_TRUE((*memory_session)->run(in, &out).is_ok());
    expect_same_outputs(expect, out, "run " + std::to_string(r) + " of the blob from memory");
  }
}

// Plans are kept per input-shape signature, 8 at most; the least recently
// used goes first. With 9 shapes: after a hit on the first shape planned
// (also the smallest signature, which the old eviction removed), planning a
// ninth shape evicts the second, and the first is still served as planned.
// Outputs are the same whether a plan was reused or rebuilt.
TEST(PlanCache, EvictsTheLeastRecentlyUsedSignature) {
  auto m = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(m.has_value());
  std::unique_ptr<Session> s = session_on(*m, SessionOptions{1});
  ASSERT_TRUE(s);
  Session& session = *s;
  const auto input = [](int64_t frames) {
    return std::vector<NamedTensor>{{"mel", test::random_tensor({1, 80, frames}, static_cast<uint32_t>(frames))}};
  };
  const int64_t frames[] = {16, 18, 20, 22, 24, 26, 28, 30, 32};  // 9 signatures, ascending
  std::vector<Tensor> first(9);
  for (int i = 0; i < 8; ++i) {
    auto y = session.run(input(frames[i]));
    ASSERT_TRUE(y.has_value()) << y.message();
    first[i] = (*y)[0].tensor.clone();
  }
  EXPECT_EQ(session.plans_built(), 8);
  ASSERT_TRUE(session.run(input(frames[0])).has_value());  // a hit: frames[0] is now the most recent
  EXPECT_EQ(session.plans_built(), 8);
  ASSERT_TRUE(session.run(input(frames[8])).has_value());  // the 9th: evicts frames[1], the LRU
  EXPECT_EQ(session.plans_built(), 9);
  auto again = session.run(input(frames[0]));
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(session.plans_built(), 9) << "the most recently used plan was evicted";
  EXPECT_TRUE(test::tensors_equal((*again)[0].tensor, first[0]));
  auto rebuilt = session.run(input(frames[1]));  // evicted: planned again, same result
  ASSERT_TRUE(rebuilt.has_value());
  EXPECT_EQ(session.plans_built(), 10);
  EXPECT_TRUE(test::tensors_equal((*rebuilt)[0].tensor, first[1]));
}

// The result cache: off by default; a hit needs every input byte, dtype and
// shape equal (a one-bit change runs again); hits return copies (changing
// one does not change the next hit); least recently used evicted first;
// outputs equal an uncached session's.
TEST(ResultCache, HitsOnlyOnIdenticalInputsAndEvictsTheLeastRecentlyUsed) {
  auto m = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(m.has_value());
  std::unique_ptr<Session> plain = session_on(*m, SessionOptions{1});
  SessionOptions o{1};
  o.cache_size = 2;
  std::unique_ptr<Session> cached = session_on(*m, o);
  ASSERT_TRUE(plain && cached);
  Session& s = *cached;
  const auto input = [](uint32_t seed, int64_t frames) {
    return std::vector<NamedTensor>{{"mel", test::random_tensor({1, 80, frames}, seed)}};
  };
  const auto run = [](Session& session, const std::vector<NamedTensor>& in) {
    auto y = session.run(in);
    EXPECT_TRUE(y.has_value()) << y.message();
    return y.has_value() ? (*y)[0].tensor : Tensor();
  };
  EXPECT_EQ(plain->cache_stats().misses, 0u) << "off by default";
  const auto a = input(1, 40), b = input(2, 40), c = input(3, 48);
  const Tensor ya = run(s, a);
  EXPECT_TRUE(test::tensors_equal(ya, run(*plain, a)));
  EXPECT_EQ(s.cache_stats().misses, 1u);
  Tensor hit = run(s, input(1, 40));  // equal bytes in another tensor
  EXPECT_EQ(s.cache_stats().hits, 1u);
  EXPECT_TRUE(test::tensors_equal(hit, ya));
  hit.mutable_data<float>()[0] += 1.f;  // the caller owns what it got
  EXPECT_TRUE(test::tensors_equal(run(s, a), ya));
  EXPECT_EQ(s.cache_stats().hits, 2u);

  // One bit of one input differs: a miss, and the right output.
  std::vector<NamedTensor> a1 = input(1, 40);
  uint32_t bits;
  std::memcpy(&bits, a1[0].tensor.data<float>() + 1000, 4);
  bits ^= 1u;
  std::memcpy(a1[0].tensor.mutable_data<float>() + 1000, &bits, 4);
  EXPECT_TRUE(test::tensors_equal(run(s, a1), run(*plain, a1)));
  EXPECT_EQ(s.cache_stats().hits, 2u);
  EXPECT_EQ(s.cache_stats().misses, 2u);
  EXPECT_EQ(s.cache_stats().entries, 2u);
  const uint64_t two_entries = s.cache_stats().bytes;
  EXPECT_GT(two_entries, 2 * a[0].tensor.nbytes());

  // Entries now: a1 (newest), a. A hit on a leaves a1 the least recently
  // used, so b evicts a1 (a still hits, a1 runs again and evicts b), and c,
  // of another shape, evicts a.
  run(s, a);
  EXPECT_EQ(s.cache_stats().hits, 3u);
  EXPECT_TRUE(test::tensors_equal(run(s, b), run(*plain, b)));
  run(s, a);
  EXPECT_EQ(s.cache_stats().hits, 4u) << "a was evicted instead of a1";
  run(s, a1);
  EXPECT_EQ(s.cache_stats().hits, 4u) << "a1 should have been evicted";
  EXPECT_TRUE(test::tensors_equal(run(s, c), run(*plain, c)));
  EXPECT_EQ(s.cache_stats().entries, 2u);
  EXPECT_EQ(s.cache_stats().misses, 5u);
}

TEST(MemoryBudget, TooSmallFailsBeforeRunningAndSaysWhatIsNeeded) {
  auto m = load_onnx(fixture("whisper_tiny_encoder.onnx"));
  ASSERT_TRUE(m.has_value());
  KernelTable table;
  register_kernels(table);
  SessionOptions o;
  o.max_memory_bytes = 1000000;  // 1 MB: below the process itself
  auto s = Session::create(*m, table, o);
  ASSERT_TRUE(s.has_value());
  const std::vector<NamedTensor> in = {{"mel", test::random_tensor({1, 80, 200}, 1)}};
  auto plan = (*s)->prepare(in);
  ASSERT_FALSE(plan.has_value());
  EXPECT_HAS(plan.message(), "whisper_tiny_encoder.onnx: a memory budget of 1.0 MB is too small: running needs at least");
  EXPECT_HAS(plan.message(), "activations");
  EXPECT_HAS(plan.message(), "largest node's weights");
  auto run = (*s)->run(in);
  ASSERT_FALSE(run.has_value());
  EXPECT_HAS(run.message(), "too small");

  // A budget that holds everything keeps the weights resident.
  o.max_memory_bytes = uint64_t{64} << 30;
  auto roomy = Session::create(*m, table, o);
  ASSERT_TRUE(roomy.has_value());
  auto ok = (*roomy)->prepare(in);
  ASSERT_TRUE(ok.has_value()) << ok.message();
  EXPECT_FALSE(ok->streaming);
  EXPECT_LE(ok->needed_bytes, o.max_memory_bytes);
  EXPECT_GT(ok->arena_bytes, 0u);
}

// After the first run of a shape, a run allocates nothing of its own: every
// intermediate lives in the planned arena, kernels take their scratch from
// it, and the outputs land in the previous run's buffers.
TEST(PlannedMemory, NoHeapAllocationAfterFirstRun) {
  if (!SARAI_COUNT_ALLOCATIONS) GTEST_SKIP() << "the sanitizer owns malloc";
  const std::string dir = test::temp_dir("alloc");
  struct Item {
    std::string name;
    std::shared_ptr<const Model> model;
    std::vector<NamedTensor> inputs;
  };
  std::vector<Item> items;
  for (const FixtureCase& c : {FixtureCase{"whisper_tiny_encoder.onnx", "mel", {1, 80, 200}},
                               FixtureCase{"small_cnn.onnx", "image", {1, 3, 64, 96}}}) {
    const auto [fp32, blob] = fixture_and_blob(c.model, dir);
    ASSERT_TRUE(fp32 && blob);
    const std::vector<NamedTensor> in = {{c.input, test::random_tensor(c.shape, 9)}};
    items.push_back({std::string(c.model) + " (fp32)", fp32, in});
    items.push_back({std::string(c.model) + " (int8 blob)", blob, in});
  }
  KernelTable table;
  register_kernels(table);
  for (int threads : {1, 2}) {
    for (const Item& it : items) {
      auto s = Session::create(it.model, table, SessionOptions{threads});
      ASSERT_TRUE(s.has_value());
      std::vector<NamedTensor> out;
      ASSERT_TRUE((*s)->run(it.inputs, &out).is_ok());  // plans, sizes the arena
      ASSERT_TRUE((*s)->run(it.inputs, &out).is_ok());  // sizes the outputs
      g_ours = 0;
      g_foreign = 0;
      g_counting = true;
      Status st = (*s)->run(it.inputs, &out);
      g_counting = false;
      ASSERT_TRUE(st.is_ok()) << st.message();
      EXPECT_EQ(g_ours.load(), 0) << it.name << ", " << threads << " thread(s)";
      RecordProperty(it.name + " t" + std::to_string(threads) + " oneDNN allocations", std::to_string(g_foreign.load()));
      std::printf("%s, %d thread(s): %ld allocations of ours, %ld inside oneDNN\n", it.name.c_str(), threads,
                  g_ours.load(), g_foreign.load());
    }
  }
}

}  // namespace
}  // namespace sarai
