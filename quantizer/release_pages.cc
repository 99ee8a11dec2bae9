#include "quantizer/release_pages.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

namespace sarai::quant {

void release_pages(const void* p, size_t n) {
  if (n == 0) return;
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page - 1) & ~(page - 1);
  // Failure only costs memory, never correctness: nothing to report.
  (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

FileMappedRanges FileMappedRanges::current(const std::vector<std::string>& only_files) {
  FileMappedRanges r;
  std::vector<std::string> wanted;
  for (const std::string& f : only_files) {
    std::error_code ec;
    auto c = std::filesystem::canonical(f, ec);
    if (!ec) wanted.push_back(c.string());
  }
  FILE* f = std::fopen("/proc/self/maps", "re");
  if (!f) return r;
  char line[4096];
  while (std::fgets(line, sizeof(line), f)) {
    // "begin-end perms offset dev inode   path"
    uintptr_t begin = 0, end = 0;
    char perms[8] = {0};
    unsigned long long offset = 0, inode = 0;
    char dev[32] = {0};
    int path_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %llx %31s %llu %n", &begin, &end, perms, &offset, dev,
                    &inode, &path_at) != 6)
      continue;
    // File-backed (inode != 0), readable, never writable: dropping its pages
    // loses nothing.
    if (inode == 0 || perms[0] != 'r' || perms[1] == 'w') continue;
    if (!only_files.empty()) {
      std::string path(line + path_at);
      while (!path.empty() && (path.back() == '\n' || path.back() == ' ')) path.pop_back();
      if (std::find(wanted.begin(), wanted.end(), path) == wanted.end()) continue;
    }
    if (!r.ranges_.empty() && r.ranges_.back().second == begin)
      r.ranges_.back().second = end;  // adjacent pieces of one mapping
    else
      r.ranges_.emplace_back(begin, end);
  }
  std::fclose(f);
  std::sort(r.ranges_.begin(), r.ranges_.end());
  return r;
}

bool FileMappedRanges::contains(const void* p, size_t n) const {
  const uintptr_t b = reinterpret_cast<uintptr_t>(p);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), std::make_pair(b, UINTPTR_MAX));
  if (it == ranges_.begin()) return false;
  --it;
  return b >= it->first && b < it->second && n <= it->second - b;
}

}  // namespace sarai::quant
