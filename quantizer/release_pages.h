// Giving a read-only file mapping's pages back after a tensor is done with.
//
// Reading a 4.4 GB model through mmap makes every touched page count in the
// process's resident set until the mapping goes away, although the kernel
// can reload them from the file at any time. madvise(MADV_DONTNEED) on a
// read-only file mapping just unmaps those pages from this process (they stay
// in the page cache; touching them again faults them back in). On anonymous
// or written memory it would discard data, so the converter only calls it on
// ranges FileMappedRanges says are read-only file mappings.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace sarai::quant {

// madvise(MADV_DONTNEED) over [p, p + n) rounded out to whole pages.
// Precondition: the range lies in a read-only file mapping.
void release_pages(const void* p, size_t n);

// A snapshot of the process's read-only file mappings (/proc/self/maps).
class FileMappedRanges {
 public:
  // Empty (contains() always false) where /proc/self/maps is unreadable.
  // With `only_files`, only mappings of those files count (a library's
  // RELRO segment is read-only and file-backed too, but was written).
  static FileMappedRanges current(const std::vector<std::string>& only_files = {});
  // Whether [p, p + n) lies inside one read-only file mapping.
  bool contains(const void* p, size_t n) const;

 private:
  std::vector<std::pair<uintptr_t, uintptr_t>> ranges_;  // [begin, end), sorted
};

}  // namespace sarai::quant
