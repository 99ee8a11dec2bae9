#include "runtime/memory_plan.h"

#include <algorithm>
#include <map>
#include <queue>
#include <set>
#include <numeric>
#include <string>

namespace sarai {

namespace {

// The placed buffers, indexed by lifetime so that the ones alive together
// with a new buffer are found without scanning all of them: those alive at
// its first position (a segment tree over positions, each interval stored
// at the O(log P) nodes that cover it) and those born later within its
// lifetime (ordered by birth). Each is found once: a buffer alive at
// `first` was born at or before it.
class LiveIndex {
 public:
  explicit LiveIndex(int positions) : size_(1) {
    while (size_ < positions) size_ *= 2;
    cover_.resize(2 * static_cast<size_t>(size_));
  }
  void add(size_t i, const BufferLifetime& b) {
    for (int l = b.first + size_, r = b.last + size_ + 1; l < r; l /= 2, r /= 2) {
      if (l & 1) cover_[static_cast<size_t>(l++)].push_back(i);
      if (r & 1) cover_[static_cast<size_t>(--r)].push_back(i);
    }
    by_birth_.insert({b.first, i});
  }
  // Calls f(j) for each placed buffer alive at some position of [first, last].
  template <class F> void for_each_meeting(const BufferLifetime& b, F&& f) const {
    for (int n = b.first + size_; n >= 1; n /= 2)
      for (size_t j : cover_[static_cast<size_t>(n)]) f(j);
    for (auto it = by_birth_.upper_bound({b.first, SIZE_MAX}); it != by_birth_.end() && it->first <= b.last; ++it)
      f(it->second);
  }

 private:
  int size_;
  std::vector<std::vector<size_t>> cover_;
  std::set<std::pair<int, size_t>> by_birth_;
};

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
  int positions = 1;
  for (const BufferLifetime& b : buffers) positions = std::max(positions, b.last + 1);
  LiveIndex placed(positions);
  // Greedy by size costs the number of (buffer, live neighbour) pairs, which
  // is quadratic only when very many buffers are alive at once. Past a budget
  // of pairs (kPairsPerBuffer per buffer on average, or 1 M), the remaining buffers go
  // above everything placed: still correct, with no reuse for them.
  constexpr uint64_t kPairsPerBuffer = 64;
  uint64_t pairs_left = kPairsPerBuffer * std::max<uint64_t>(buffers.size(), 16384);
  std::vector<std::pair<uint64_t, uint64_t>> busy;  // [begin, end) of live neighbours
  for (size_t i : order) {
    const uint64_t need = align_up(buffers[i].bytes, alignment);
    if (need == 0) continue;
    busy.clear();
    if (pairs_left > 0)
      placed.for_each_meeting(buffers[i], [&](size_t j) {
        busy.push_back({layout.offsets[j], layout.offsets[j] + align_up(buffers[j].bytes, alignment)});
      });
    if (pairs_left == 0 || busy.size() > pairs_left) {  // past the budget: on top of everything
      pairs_left = 0;
      layout.offsets[i] = layout.size;
      layout.size += need;
      continue;
    }
    pairs_left -= busy.size();
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
    placed.add(i, buffers[i]);
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

// A sweep over positions: the buffers alive at one time, ordered by offset,
// must be disjoint, so each newcomer is checked against its two neighbours
// in memory (O(B log B), where comparing all pairs would be quadratic).
Status check_arena_layout(std::span<const BufferLifetime> buffers, const ArenaLayout& layout, uint64_t alignment) {
  if (layout.offsets.size() != buffers.size()) return Status::error("layout has the wrong number of offsets");
  std::vector<size_t> by_first;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const uint64_t ni = align_up(buffers[i].bytes, alignment);
    if (layout.offsets[i] % alignment) return Status::error("buffer " + std::to_string(i) + " is misaligned");
    if (ni && layout.offsets[i] + ni > layout.size)
      return Status::error("buffer " + std::to_string(i) + " ends past the arena");
    if (ni) by_first.push_back(i);
  }
  std::stable_sort(by_first.begin(), by_first.end(),
                   [&](size_t a, size_t b) { return buffers[a].first < buffers[b].first; });
  std::map<uint64_t, size_t> live;  // offset -> buffer, disjoint in memory
  std::priority_queue<std::pair<int, uint64_t>, std::vector<std::pair<int, uint64_t>>, std::greater<>> ends;  // (last, offset)
  auto overlap = [](size_t i, size_t j) {
    return Status::error("buffers " + std::to_string(std::min(i, j)) + " and " + std::to_string(std::max(i, j)) +
                         " are alive together and overlap in memory");
  };
  for (size_t i : by_first) {
    const BufferLifetime& b = buffers[i];
    while (!ends.empty() && ends.top().first < b.first) {
      live.erase(ends.top().second);
      ends.pop();
    }
    const uint64_t a = layout.offsets[i], e = a + align_up(b.bytes, alignment);
    auto next = live.lower_bound(a);
    if (next != live.end() && next->first < e) return overlap(i, next->second);
    if (next != live.begin()) {
      const size_t j = std::prev(next)->second;
      if (layout.offsets[j] + align_up(buffers[j].bytes, alignment) > a) return overlap(i, j);
    }
    live.emplace(a, i);
    ends.push({b.last, a});
  }
  return Status::ok();
}

}  // namespace sarai
