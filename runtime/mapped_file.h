// A read-only memory mapping of a whole file. Weights live in mappings and
// are used in place: the runtime never copies them into anonymous memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace sarai {

// Opens `path` read-only when it is a regular file, and only then: the open
// itself never blocks (O_NONBLOCK), so a FIFO, a socket or a device is
// refused with "PATH: not a regular file" instead of hanging or streaming.
// Returns the descriptor (the caller closes it) and, when asked, the file's
// size, or an I/O error naming the path. Every file the runtime reads goes
// through here: models, external data, blobs, .npy inputs, a convert's
// source hash.
Expected<int> open_regular_file(const std::string& path, uint64_t* size = nullptr);

class MappedFile {
 public:
  // Maps `path` read-only. Errors name the file and the reason (missing,
  // not a regular file, permission...). An empty file maps to size 0.
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
  // A copy of `size` bytes held in an anonymous in-memory file (memfd) and
  // mapped like a file, so everything that reads mappings (and releases
  // their pages with madvise: a file's pages come back from the file, where
  // anonymous memory's would come back as zeros) works on it unchanged.
  // `name` stands for the path in path() and in every error. The copy stays
  // in memory while mapped: it has no file to page back in from.
  static Expected<std::shared_ptr<MappedFile>> copy_of(const void* data, uint64_t size, const std::string& name);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  // Maps `size` bytes of `fd` read-only and closes fd (also on failure).
  static Expected<std::shared_ptr<MappedFile>> map(int fd, uint64_t size, const std::string& path);
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

// The whole pages of the mapping in `regions` that holds bytes [p, p + n),
// clamped to that mapping: what madvise may page in or release for one
// tensor. Empty when no region holds all of them (heap memory) or n == 0.
std::span<const uint8_t> mapped_pages(const std::vector<std::span<const uint8_t>>& regions, const void* p,
                                      uint64_t n);

}  // namespace sarai
