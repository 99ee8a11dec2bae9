#include "runtime/memory_plan.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <string>

namespace sarai {

namespace {
bool lifetimes_meet(const BufferLifetime& x, const BufferLifetime& y) { return x.first <= y.last && y.first <= x.last; }
}  // namespace

ArenaLayout plan_arena(std::span<const BufferLifetime> buffers, uint64_t alignment, bool reuse) {
  ArenaLayout layout;
  layout.offsets.assign(buffers.size(), 0);
  if (!reuse) {
    for (size_t i = 0; i < buffers.size(); ++i) {
      layout.offsets[i] = layout.size;
      layout.size += align_up(buffers[i].bytes, alignment);
    }
    return layout;
  }
  // Largest first; ties by earlier start so the result is deterministic.
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (buffers[a].bytes != buffers[b].bytes) return buffers[a].bytes > buffers[b].bytes;
    return buffers[a].first < buffers[b].first;
  });
  std::vector<size_t> placed;  // indices already given an offset
  std::vector<std::pair<uint64_t, uint64_t>> busy;  // [begin, end) of live neighbours
  for (size_t i : order) {
    const uint64_t need = align_up(buffers[i].bytes, alignment);
    if (need == 0) continue;
    busy.clear();
    for (size_t j : placed)
      if (lifetimes_meet(buffers[i], buffers[j]))
        busy.push_back({layout.offsets[j], layout.offsets[j] + align_up(buffers[j].bytes, alignment)});
    std::sort(busy.begin(), busy.end());
    // The smallest gap that fits (best fit), else after the last neighbour.
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

uint64_t arena_lower_bound(std::span<const BufferLifetime> buffers, uint64_t alignment) {
  std::map<int, int64_t> delta;  // position -> change of live bytes
  for (const BufferLifetime& b : buffers) {
    const int64_t n = static_cast<int64_t>(align_up(b.bytes, alignment));
    delta[b.first] += n;
    delta[b.last + 1] -= n;
  }
  int64_t live = 0, peak = 0;
  for (const auto& [pos, d] : delta) {
    live += d;
    peak = std::max(peak, live);
  }
  return static_cast<uint64_t>(peak);
}

Status check_arena_layout(std::span<const BufferLifetime> buffers, const ArenaLayout& layout, uint64_t alignment) {
  if (layout.offsets.size() != buffers.size()) return Status::error("layout has the wrong number of offsets");
  for (size_t i = 0; i < buffers.size(); ++i) {
    const uint64_t ni = align_up(buffers[i].bytes, alignment);
    if (layout.offsets[i] % alignment) return Status::error("buffer " + std::to_string(i) + " is misaligned");
    if (ni && layout.offsets[i] + ni > layout.size)
      return Status::error("buffer " + std::to_string(i) + " ends past the arena");
    for (size_t j = i + 1; j < buffers.size(); ++j) {
      const uint64_t nj = align_up(buffers[j].bytes, alignment);
      if (!ni || !nj || !lifetimes_meet(buffers[i], buffers[j])) continue;
      const uint64_t a = layout.offsets[i], b = layout.offsets[j];
      if (a < b + nj && b < a + ni)
        return Status::error("buffers " + std::to_string(i) + " and " + std::to_string(j) +
                             " are alive together and overlap in memory");
    }
  }
  return Status::ok();
}

}  // namespace sarai
