// A read-only memory mapping of a whole file. Weights live in mappings and
// are used in place: the runtime never copies them into anonymous memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "runtime/status.h"

namespace sarai {

class MappedFile {
 public:
  // Maps `path` read-only. Errors name the file and the reason (missing,
  // not a regular file, permission...). An empty file maps to size 0.
  static Expected<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace sarai
