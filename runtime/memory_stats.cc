#include "runtime/memory_stats.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

namespace sarai {

ProcessMemory process_memory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %llu kB", &kb) == 1) m.rss_bytes = kb * 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %llu kB", &kb) == 1) m.peak_rss_bytes = kb * 1024;
  }
  return m;
}

uint64_t resident_bytes(std::span<const std::span<const uint8_t>> regions) {
  if (regions.empty()) return 0;
  // smaps lists each mapping ("start-end perms ...") followed by its
  // fields; the Rss of a mapping counts for every region it overlaps, in
  // proportion to the overlap (regions are whole-file mappings in practice,
  // so the share is exact).
  std::ifstream in("/proc/self/smaps");
  std::string line;
  uint64_t total = 0;
  uint64_t lo = 0, hi = 0, overlap = 0;
  while (std::getline(in, line)) {
    unsigned long long a = 0, b = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx ", &a, &b) == 2 && line.find(':') > line.find(' ')) {
      lo = a;
      hi = b;
      overlap = 0;
      for (const auto& r : regions) {
        const uint64_t rb = reinterpret_cast<uintptr_t>(r.data()), re = rb + r.size();
        const uint64_t x = std::max<uint64_t>(lo, rb), y = std::min<uint64_t>(hi, re);
        if (x < y) overlap += y - x;
      }
      continue;
    }
    unsigned long long kb = 0;
    if (overlap && std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1)
      total += static_cast<uint64_t>(static_cast<double>(kb) * 1024 * static_cast<double>(overlap) /
                                     static_cast<double>(hi - lo));
  }
  return total;
}

}  // namespace sarai
