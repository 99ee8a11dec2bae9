// Session: a loaded model made ready to run.
//
// create() checks once that every node has a kernel (listing every
// unsupported op in one message), fixes the execution order and notes which
// weight pages each node reads; no weight is touched except those of the
// few small convolutions it runs in FP32 (SessionOptions::fp32_fallback). run() validates
// the caller's inputs against the declared inputs (dtype, rank, fixed dims,
// and symbolic dims that must agree across inputs), plans memory once per
// input-shape signature (prepare(); docs/memory.md), then walks the nodes in
// order with every intermediate in one planned arena.
//
// Concurrent runs: run() and prepare() may be called from several threads
// at once on one session. What a run writes (its arena, the bound values,
// scratch) lives in a run context taken from a pool, one per call in
// flight, kept for the next call; the model, its weights, the kernels and
// the memory plans are shared (a plan is built once per shape signature and
// then only read). Each call uses num_threads OpenMP threads of its own, so
// concurrent callers x num_threads should not exceed the cores.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <span>
#include <memory>
#include <string>
#include <vector>

#include "runtime/kernel.h"
#include "runtime/model.h"
#include "runtime/session_fallback.h"
#include "runtime/status.h"

namespace sarai {

// How the fused attention blocks (runtime/fuse.h, kernels/attention.cc)
// compute their two products. kModel follows the model: a .sarai blob's
// "attention" metadata ("fp32", "int8" or "int8-per-tensor", written by
// `sarai-rt convert --attention`), fp32 when absent and for .onnx files.
enum class AttentionPrecision { kModel, kFloat32, kInt8, kInt8PerTensor };

// The fused attention's precision for `model` under `option`: "fp32",
// "int8" or "int8-per-tensor" (kModel: the "attention" metadata, "fp32" when
// absent); an error naming the model for a metadata value it does not know.
Expected<std::string> attention_precision_for(const Model& model, AttentionPrecision option);

struct SessionOptions {
  int num_threads = 0;  // 0: one per physical core
  bool profile = false; // time every node (see Session::node_times_ms)
  bool fuse = true;       // Add/Relu/Gelu into quantized ops' epilogues (runtime/fuse.h)
  bool fuse_patterns = true;  // GELU chains, Div+Softmax, attention, ConvInteger/MatMulInteger chains -> one op each (runtime/fuse.h)
  // The fused attention's precision (needs fuse_patterns; A/B per run).
  AttentionPrecision attention = AttentionPrecision::kModel;
  // Quantized convolutions that INT8 cannot make faster on this machine run
  // as the float op on their dequantized weights (runtime/session_fallback.h:
  // the rule, its memory bound, SARAI_FP32_FALLBACK). kOff: INT8 everywhere.
  Fp32Fallback fp32_fallback = Fp32Fallback::kAuto;
  // Planned activation memory: buffers whose lifetimes do not meet share
  // arena memory, and element-wise ops write over an input that dies with
  // them. false gives every buffer memory of its own (tests compare both).
  bool reuse_buffers = true;
  // A memory budget for the whole process (0: none); see prepare(). Each
  // run in flight has an arena of its own, and all of them count: a run
  // that would need a new arena beyond the budget waits for one in use.
  uint64_t max_memory_bytes = 0;
  // Stream the weights whatever the budget (tests; callers who know the
  // weights will not stay in the page cache anyway).
  bool stream_weights = false;
  // Called after every node of a run (not of the planning pass) with its
  // outputs; they live in the arena, so copy what you keep (Tensor::clone).
  // For analysis (sarai-rt compare --per-layer), not for speed. Concurrent
  // runs call it concurrently, each from its own thread.
  std::function<void(const Node&, std::span<const Tensor>)> observer = nullptr;
  // Tests: after every node, check that no two live values of different
  // buffers, and no workspace, share arena memory (a run error if they do).
  // It compares every pair of values after every node, so it is for test
  // graphs, not for large models.
  bool check_overlaps = false;
  // A result cache of this many entries (0: off): a run whose inputs are
  // identical to a cached run's (names, dtypes, shapes and every byte,
  // compared in full; a checksum only narrows the search) returns copies of
  // the stored outputs without running. Least recently used evicted first.
  // Each entry holds a copy of its inputs and outputs (cache_stats().bytes),
  // outside the memory budget and the no-allocation guarantee of planned runs.
  int cache_size = 0;
};

// The result cache's counters (SessionOptions::cache_size).
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;   // runs that looked and ran (0 while the cache is off)
  uint64_t entries = 0;
  uint64_t bytes = 0;    // inputs + outputs held
};

// What prepare() planned for one input-shape signature, and how it fits
// the budget. Byte counts; "runtime" is the process's resident memory
// before running, less any weight pages already mapped in.
struct MemoryReport {
  uint64_t arena_bytes = 0;          // activations + workspaces, one arena
  uint64_t no_reuse_bytes = 0;       // the same buffers without sharing
  uint64_t lower_bound_bytes = 0;    // most bytes alive at one node
  uint64_t workspace_bytes = 0;      // largest single kernel workspace
  uint64_t output_bytes = 0;         // graph outputs handed to the caller
  uint64_t mapped_weight_bytes = 0;  // weights read through file mappings
  uint64_t heap_weight_bytes = 0;    // weights in anonymous memory
  uint64_t largest_node_weight_bytes = 0;
  uint64_t runtime_bytes = 0;
  uint64_t budget_bytes = 0;         // 0: no budget
  bool streaming = false;            // weight pages released after use
  uint64_t pinned_weight_bytes = 0;  // streaming: weights kept resident anyway
  uint64_t needed_bytes = 0;         // the plan's peak for the chosen mode
  int buffers = 0;
  int in_place = 0;                  // outputs written over a dying input
  double plan_ms = 0;                // planning pass + layout
};

struct Recording;  // session.cc: what a planning pass learns

// "float32 [1, 80, frames]" for a declared value.
std::string describe_value_type(const Value& v);

class Session {
 public:
  static Expected<std::unique_ptr<Session>> create(std::shared_ptr<const Model> model, const KernelTable& kernels,
                                                   SessionOptions options = {});
  ~Session();

  const Model& model() const { return *model_; }
  const Graph& graph() const { return model_->graph; }
  // Nodes rewritten to FP32 at create (SessionOptions::fp32_fallback) and
  // the bytes of their dequantized weights (heap, counted as heap weights).
  int fp32_fallback_nodes() const { return fp32_nodes_; }
  uint64_t fp32_fallback_bytes() const { return fp32_bytes_; }
  int num_threads() const { return num_threads_; }

  // Checks one input against its declaration (name, dtype, rank, fixed
  // dims), so a caller can name the file it came from in the error.
  Status check_input(const NamedTensor& input) const;

  // Plans memory for the shapes of `inputs` (their values are not read) and
  // checks the budget, once per shape signature (run() calls it too):
  // a planning pass runs every kernel in shape-only mode to learn each
  // buffer's size and lifetime, then plan_arena lays them out. With a
  // budget, the weights stay resident if everything fits; otherwise the
  // session streams them (each node's weight pages are released after it
  // ran, except a prefix that fits); and if even the activations do not
  // fit, this fails with how much memory would be needed.
  Expected<MemoryReport> prepare(const std::vector<NamedTensor>& inputs);

  // Runs the model. The second form writes into *outputs, reusing their
  // storage when they are the previous run's outputs (same names, shapes,
  // sole owner): after the first run of a shape it then performs no heap
  // allocation of its own.
  Expected<std::vector<NamedTensor>> run(const std::vector<NamedTensor>& inputs);
  Status run(const std::vector<NamedTensor>& inputs, std::vector<NamedTensor>* outputs);

  // With SessionOptions::profile: milliseconds spent in each node (indexed
  // like graph().nodes), summed over every run so far.
  std::vector<double> node_times_ms() const;
  // Whether a planned run met a size its plan did not foresee (a shape that
  // depends on data); the next run plans again.
  int plan_misses() const { return plan_misses_.load(); }
  // Memory plans made so far: one per new input-shape signature, and again
  // for a signature whose plan was evicted (8 are kept, least recently used
  // first out) or went stale. Constant once the shapes in use are planned.
  int plans_built() const;
  CacheStats cache_stats() const;
  // Run contexts (arena + scratch) made so far: the most calls ever in
  // flight at once.
  int run_contexts() const;
  // Bytes of all run contexts' activation arenas now.
  uint64_t arena_bytes() const;
  // Bytes of the weight mappings resident in this process now.
  uint64_t resident_weight_bytes() const;

 private:
  struct Plan;
  struct RunContext;
  Session() = default;
  RunContext* acquire_context();
  void release_context(RunContext* ctx);
  Status bind_inputs(RunContext& ctx, const std::vector<NamedTensor>& inputs);
  // Binds `inputs` into ctx.values (checking them) and returns the plan for
  // their shape signature, building it first if needed.
  Expected<std::shared_ptr<Plan>> plan_for(RunContext& ctx, const std::vector<NamedTensor>& inputs);
  Expected<std::unique_ptr<Plan>> build_plan(RunContext& ctx, const std::vector<NamedTensor>& inputs);
  Status decide_budget(Plan& plan);
  // Makes ctx's arena hold `plan`'s; under a budget, waits until the other
  // calls' arenas leave room for it.
  Status fit_arena(RunContext& ctx, const Plan& plan);
  // Runs every node on the values bind_inputs put in ctx.values (and
  // consumes them: intermediates are released after their last reader).
  Status execute(RunContext& ctx, Plan* plan, NodeMemory::Mode mode, Recording* rec);
  void record(RunContext& ctx, size_t pos, const KernelContext& kctx, const NodeMemory& mem, Recording& rec);
  Status check_live_overlaps(const RunContext& ctx, size_t pos, const Plan& plan) const;
  Status run_in(RunContext& ctx, const std::shared_ptr<Plan>& plan, std::vector<NamedTensor>* outputs);

  // Fixed at create(), then only read.
  std::shared_ptr<const Model> model_;
  SessionOptions options_;
  std::vector<int> order_;
  std::vector<KernelFn> kernel_of_node_;
  std::vector<std::vector<int>> in_place_;  // per node: inputs its output 0 may overwrite (OpSchema)
  std::vector<std::shared_ptr<const void>> prepared_;  // per node: its op's prepared data (OpSchema::prepare), or null
  std::vector<int> last_use_;
  std::vector<int> out_begin_;  // node position -> index of its first output in per-output tables
  int num_threads_ = 1;
  bool profile_ = false;
  // Weights per node position, as page-aligned ranges of the mappings.
  std::vector<std::span<const uint8_t>> weight_ranges_;
  std::vector<int> weight_begin_;  // node position -> first range (size order+1)
  uint64_t mapped_weight_bytes_ = 0, heap_weight_bytes_ = 0;
  int fp32_nodes_ = 0;
  uint64_t fp32_bytes_ = 0;

  std::atomic<bool> weights_touched_{false};
  std::atomic<int> plan_misses_{0};

  // Guarded by mutex_: the plans, the run contexts, the result cache and
  // the profile.
  mutable std::mutex mutex_;
  std::condition_variable context_freed_;
  // Plans per shape signature (dtype, rank, dims of each graph input).
  std::map<std::vector<int64_t>, std::shared_ptr<Plan>> plans_;
  int plans_built_ = 0;
  uint64_t plan_clock_ = 0;  // counts plan uses, for LRU eviction
  std::vector<std::unique_ptr<RunContext>> contexts_;  // all of them
  std::vector<RunContext*> idle_;                       // those not in a call
  uint64_t arena_bytes_ = 0;                            // of all contexts
  std::vector<double> node_ms_;

  // The result cache: front is the most recently used.
  struct CacheEntry {
    uint32_t crc = 0;             // of the inputs' bytes: narrows the search, never decides
    std::vector<Tensor> inputs;   // copies, in graph input order
    std::vector<NamedTensor> outputs;
    uint64_t bytes = 0;
  };
  std::list<CacheEntry> cache_;
  CacheStats cache_stats_;
  uint32_t bound_inputs_crc(const RunContext& ctx) const;
  // The entry whose inputs equal those bound in ctx, moved to the front
  // (mutex_ held).
  CacheEntry* cache_lookup(const RunContext& ctx, uint32_t crc);
  // Stores `inputs` (copies taken before the run consumed them) with copies
  // of `outputs` as the newest entry, evicting the least recently used.
  void cache_store(uint32_t crc, std::vector<Tensor> inputs, const std::vector<NamedTensor>& outputs);
};

}  // namespace sarai
