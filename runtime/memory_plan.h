// Offsets for buffers with known lifetimes inside one arena.
//
// The executor (runtime/session.cc) records, for one input-shape signature,
// every buffer a run needs: intermediate values, kernel workspaces, each
// with its size and the span of node positions [first, last] during which
// it must hold its contents. plan_arena gives each buffer an offset so that
// no two buffers whose lifetimes intersect share a byte, and makes the arena
// small by letting buffers with disjoint lifetimes share memory.
//
// The method is "greedy by size" (Pisarchyk & Lee, "Efficient Memory
// Management for Deep Neural Net Inference", 2020; TFLite's arena planner
// works the same way): place buffers from the largest down, each at the
// lowest offset where it fits beside the already placed buffers that are
// alive at the same time. It is within a few percent of the lower bound
// (the largest sum of sizes alive at one position) on the networks we run.
// Its cost is O(B log B) plus the number of (buffer, neighbour alive at the
// same time) pairs; past 64 such pairs per buffer on average (1 M at least) (only graphs
// with thousands of buffers alive at once get there) the remaining buffers
// are stacked above the others instead: correct, without reuse for them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "runtime/status.h"

namespace sarai {

// n rounded up to a multiple of a.
constexpr uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

struct BufferLifetime {
  uint64_t bytes = 0;  // 0: no storage (the buffer gets offset 0)
  int first = 0;       // first node position that writes it
  int last = 0;        // last node position that reads it (inclusive)
};

struct ArenaLayout {
  std::vector<uint64_t> offsets;  // one per buffer, multiples of `alignment`
  uint64_t size = 0;              // arena bytes
};

// With reuse=false every buffer gets memory of its own (offsets in order),
// the layout the tests compare against.
ArenaLayout plan_arena(std::span<const BufferLifetime> buffers, uint64_t alignment = 64, bool reuse = true);

// The largest sum of (aligned) sizes alive at one position: no layout can be
// smaller.
uint64_t arena_lower_bound(std::span<const BufferLifetime> buffers, uint64_t alignment = 64);

// An error naming the first two buffers that are alive at the same time and
// overlap in memory, or that lie outside the arena; OK otherwise.
Status check_arena_layout(std::span<const BufferLifetime> buffers, const ArenaLayout& layout,
                          uint64_t alignment = 64);

}  // namespace sarai
