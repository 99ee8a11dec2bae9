// What the process holds: peak and current RSS, how much of a mapped
// region is resident, and a count of allocations made by libraries we do
// not control (oneDNN), so tests can tell them from our own.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sarai {

struct ProcessMemory {
  uint64_t rss_bytes = 0;       // VmRSS
  uint64_t peak_rss_bytes = 0;  // VmHWM: the high-water mark of RSS
};
// From /proc/self/status; zeros where it cannot be read.
ProcessMemory process_memory();

// Bytes of [begin, begin + size) currently mapped into this process (the
// Rss of those pages in /proc/self/smaps), for the resident share of the
// weight mappings.
uint64_t resident_bytes(std::span<const std::span<const uint8_t>> regions);

// Marks a call into a library that allocates on its own (oneDNN's sgemm
// mallocs a packing buffer per call). While any thread is inside such a
// scope, allocation counting hooks (tests/memory_test.cc) attribute what
// they see to the library instead of to the runtime.
class ForeignAllocationScope {
 public:
  ForeignAllocationScope() { depth_.fetch_add(1, std::memory_order_relaxed); }
  ~ForeignAllocationScope() { depth_.fetch_sub(1, std::memory_order_relaxed); }
  ForeignAllocationScope(const ForeignAllocationScope&) = delete;
  ForeignAllocationScope& operator=(const ForeignAllocationScope&) = delete;
  static bool active() { return depth_.load(std::memory_order_relaxed) > 0; }

 private:
  static inline std::atomic<int> depth_{0};
};

}  // namespace sarai
