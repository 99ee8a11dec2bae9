// TEMPORARY allocation probe for the kernel work (delete before commit).
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <gtest/gtest.h>
#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "runtime/memory_stats.h"
#include "runtime/parallel.h"
#include "runtime/session.h"
#include "test_util.h"
namespace {
std::atomic<bool> g_on{false};
std::atomic<long> g_ours{0}, g_foreign{0};
inline void count_one() {
  if (!g_on.load(std::memory_order_relaxed)) return;
  (sarai::ForeignAllocationScope::active() ? g_foreign : g_ours).fetch_add(1, std::memory_order_relaxed);
}
}  // namespace
extern "C" {
void* __libc_malloc(size_t); void __libc_free(void*); void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t); void* __libc_memalign(size_t, size_t);
void* malloc(size_t n) { count_one(); return __libc_malloc(n); }
void free(void* p) { __libc_free(p); }
void* calloc(size_t a, size_t b) { count_one(); return __libc_calloc(a, b); }
void* realloc(void* p, size_t n) { count_one(); return __libc_realloc(p, n); }
void* aligned_alloc(size_t a, size_t n) { count_one(); return __libc_memalign(a, n); }
void* memalign(size_t a, size_t n) { count_one(); return __libc_memalign(a, n); }
int posix_memalign(void** r, size_t a, size_t n) { count_one(); *r = __libc_memalign(a, n); return *r ? 0 : ENOMEM; }
}
using namespace sarai;

struct Case { const char* path; const char* input; Shape shape; };
static std::vector<Case> cases() {
  const std::string src = test::test_setting("SARAI_SOURCE_DIR");
  static std::string wt = src + "/tests/fixtures/whisper_tiny_encoder.onnx", cnn = src + "/tests/fixtures/small_cnn.onnx";
  return {{wt.c_str(), "mel", {1, 80, 200}}, {"/tmp/probe/wt.sarai", "mel", {1, 80, 200}},
          {cnn.c_str(), "image", {1, 3, 64, 96}}, {"/tmp/probe/cnn.sarai", "image", {1, 3, 64, 96}}};
}
static std::shared_ptr<Model> load(const std::string& p) {
  if (p.size() > 6 && p.substr(p.size() - 6) == ".sarai") return *load_blob(p);
  return *load_onnx(p);
}

// Whole-session counts (the lead's Session::run, outputs reused).
TEST(KernProbe, SessionRuns) {
  KernelTable k; register_kernels(k);
  for (int threads : {1, 2})
    for (const Case& c : cases()) {
      auto m = load(c.path);
      auto s = Session::create(m, k, SessionOptions{threads});
      ASSERT_TRUE(s.has_value()) << s.message();
      std::vector<NamedTensor> in{{c.input, test::random_tensor(c.shape, 1)}}, out;
      for (int r = 0; r < 4; ++r) {
        g_ours = 0; g_foreign = 0; g_on = true;
        Status st = (*s)->run(in, &out);
        g_on = false;
        ASSERT_TRUE(st.is_ok()) << st.message();
        if (r >= 2) printf("%s t%d run %d: %ld ours, %ld in oneDNN scope\n", c.path, threads, r, g_ours.load(), g_foreign.load());
      }
    }
}

// Per node: our own executor loop, outputs and workspaces at fixed offsets
// of one arena (no reuse), so only the kernels' own allocations count.
TEST(KernProbe, PerNode) {
  KernelTable k; register_kernels(k);
  for (int threads : {1, 2})
  for (const Case& c : cases()) {
    set_num_threads(threads);
    auto m = load(c.path);
    const Graph& g = m->graph;
    auto order = *g.topological_order();
    std::vector<KernelFn> fns;
    for (int id : order) {
      const Node& n = g.nodes[static_cast<size_t>(id)];
      fns.push_back(k.find(n.op_type, g.opset, n.domain));
      ASSERT_TRUE(fns.back()) << n.op_type;
    }
    std::vector<Tensor> values(g.values.size());
    for (size_t i = 0; i < g.values.size(); ++i) if (g.values[i].is_initializer) values[i] = g.values[i].initializer;
    values[static_cast<size_t>(g.find_value(c.input))] = test::random_tensor(c.shape, 1);
    std::vector<const Tensor*> ins; ins.reserve(64);
    std::vector<Tensor> outs; outs.reserve(64);
    // Pass 1: shape only, record sizes.
    std::vector<std::vector<uint64_t>> out_bytes(order.size());
    std::vector<uint64_t> ws_bytes(order.size());
    auto run_node = [&](size_t pos, NodeMemory* mem) -> Status {
      const Node& n = g.nodes[static_cast<size_t>(order[pos])];
      ins.clear();
      for (int v : n.inputs) ins.push_back(v != kNoValue && values[static_cast<size_t>(v)].defined() ? &values[static_cast<size_t>(v)] : nullptr);
      outs.clear(); outs.resize(n.outputs.size());
      KernelContext ctx(n, g.opset, ins, outs, threads, mem);
      Status st = fns[pos](ctx);
      if (!st.is_ok()) return st;
      for (size_t j = 0; j < n.outputs.size(); ++j)
        if (n.outputs[j] != kNoValue) values[static_cast<size_t>(n.outputs[j])] = std::move(outs[j]);
      return st;
    };
    for (size_t pos = 0; pos < order.size(); ++pos) {
      NodeMemory mem; mem.mode = NodeMemory::Mode::kShapeOnly;
      ASSERT_TRUE(run_node(pos, &mem).is_ok());
      const Node& n = g.nodes[static_cast<size_t>(order[pos])];
      for (int v : n.outputs) out_bytes[pos].push_back(v == kNoValue ? 0 : values[static_cast<size_t>(v)].nbytes());
      ws_bytes[pos] = mem.workspace_used;
    }
    // Layout.
    uint64_t total = 0;
    std::vector<std::vector<int64_t>> off(order.size());
    std::vector<int64_t> ws_off(order.size());
    for (size_t pos = 0; pos < order.size(); ++pos) {
      for (uint64_t b : out_bytes[pos]) { off[pos].push_back(static_cast<int64_t>(total)); total += (b + 63) / 64 * 64 + 64; }
      ws_off[pos] = static_cast<int64_t>(total); total += ws_bytes[pos] + 64;
    }
    uint8_t* arena = static_cast<uint8_t*>(std::aligned_alloc(64, (total + 63) / 64 * 64));
    std::vector<std::vector<uint64_t>> caps(out_bytes);
    for (auto& v : caps) for (auto& b : v) b = (b + 63) / 64 * 64;
    std::map<std::string, long> per_op;
    for (int r = 0; r < 3; ++r) {
      for (size_t pos = 0; pos < order.size(); ++pos) {
        NodeMemory mem; mem.mode = NodeMemory::Mode::kPlanned; mem.arena = arena;
        mem.output_offset = off[pos].data(); mem.output_capacity = caps[pos].data();
        mem.workspace_offset = ws_off[pos]; mem.workspace_capacity = ws_bytes[pos];
        g_ours = 0; g_foreign = 0; g_on = true;
        Status st = run_node(pos, &mem);
        g_on = false;
        ASSERT_TRUE(st.is_ok()) << st.message();
        if (mem.plan_miss) printf("  plan miss at %zu\n", pos);
        const Node& n = g.nodes[static_cast<size_t>(order[pos])];
        if (r == 2 && g_ours > 0) per_op[n.domain + "::" + n.op_type] += g_ours;
        if (r == 2 && g_ours > 0) printf("  t%d %s node %zu %s (%s): %ld ours, %ld oneDNN\n", threads, c.path, pos, n.op_type.c_str(), n.name.c_str(), g_ours.load(), g_foreign.load());
      }
    }
    long sum = 0;
    for (auto& [op, nallocs] : per_op) { printf("  %s t%d %s: %ld\n", c.path, threads, op.c_str(), nallocs); sum += nallocs; }
    printf("%s t%d: %ld kernel allocations per run (oneDNN excluded)\n", c.path, threads, sum);
    std::free(arena);
  }
}
