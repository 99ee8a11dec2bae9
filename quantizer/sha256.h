// SHA-256 (FIPS 180-4), for the source model's digest recorded in a blob's
// metadata: the sum users used to compare by hand after copying a model.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "runtime/status.h"

namespace sarai::quant {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t n);
  // The digest; the object must not be updated afterwards.
  std::array<uint8_t, 32> finish();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string to_hex(const uint8_t* p, size_t n);
std::string sha256_hex(const void* data, size_t n);

// Hex digest of a file read in 1 MiB pieces (never mapped: reading a big
// file must not grow the process's resident memory). `on_bytes(n)` is called
// after each piece; returning false stops with the error "interrupted".
Expected<std::string> sha256_file(const std::string& path,
                                  const std::function<bool(uint64_t)>& on_bytes = {});

}  // namespace sarai::quant
