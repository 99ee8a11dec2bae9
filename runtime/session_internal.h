// Session's private parts shared by its three source files (not for
// other code): session.cc creates sessions and runs calls (run contexts,
// the result cache); session_plan.cc plans memory per shape signature and
// decides weight residency under a budget; session_execute.cc walks the
// nodes of one call.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "runtime/memory_plan.h"
#include "runtime/session.h"

namespace sarai {
namespace session_detail {

inline constexpr uint64_t kAlign = 64;
inline constexpr size_t kMaxPlans = 8;  // shape signatures kept; the least recently used goes first
inline std::string mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

}  // namespace session_detail

// A plan for one shape signature: where each node's outputs and workspace
// live in the arena, and how the weights are treated under the budget.
struct Session::Plan {
  std::vector<int64_t> out_offset;    // per node output (Session::out_begin_): arena offset, -1 when not planned
  std::vector<uint64_t> out_capacity;
  std::vector<int64_t> ws_offset;     // per node position
  std::vector<uint64_t> ws_capacity;
  std::vector<uint8_t> release;       // streaming: per weight range, release after use
  std::vector<int> value_buffer;      // per value: its buffer (SessionOptions::check_overlaps)
  MemoryReport report;
  std::atomic<bool> stale{false};  // a run met a size the plan did not foresee
  uint64_t last_use = 0;  // Session::plan_clock_ at its last run (LRU eviction; mutex_)
};

// What one call in flight writes: the arena and the reused scratch of a run.
// Kept in Session::contexts_ for the next call, so that a planned run
// allocates nothing.
struct Session::RunContext {
  ~RunContext() { std::free(arena); }
  // Frees the arena and takes its bytes off `total` (Session::arena_bytes_,
  // with mutex_ held).
  void free_arena(uint64_t& total) {
    std::free(arena);
    arena = nullptr;
    total -= arena_capacity;
    arena_capacity = 0;
  }
  uint8_t* arena = nullptr;
  uint64_t arena_capacity = 0;  // counted in Session::arena_bytes_
  std::vector<Tensor> values;   // per graph value, during a run
  std::vector<const Tensor*> node_inputs;
  std::vector<Tensor> node_outputs;
  struct SymbolBinding {
    const std::string* symbol;
    int64_t value;
    const std::string* input;
  };
  std::vector<SymbolBinding> symbols;
  std::vector<int64_t> signature;
  std::vector<double> node_ms;  // SessionOptions::profile: this call's, merged into Session::node_ms_
};

// What a planning pass learns: every buffer's size and lifetime, and which
// buffer each value, node output and workspace is.
struct Recording {
  Recording(size_t values, size_t outputs, size_t positions)
      : value_buffer(values, -1), out_buffer(outputs, -1), ws_buffer(positions, -1) {}
  std::vector<BufferLifetime> buffers;
  std::vector<const uint8_t*> base;  // storage of each buffer during the pass
  std::vector<int> value_buffer;     // per value, -1: not in the arena
  std::vector<int> out_buffer;       // like Plan::out_offset
  std::vector<int> ws_buffer;        // per node position
};

}  // namespace sarai
