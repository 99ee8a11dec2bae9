// CRC32C (Castagnoli), the checksum of .sarai blobs. Uses the SSE4.2 crc32
// instruction when the CPU has it (checked once), a table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sarai {

// Extends `crc` (0 to start) over `n` bytes; crc32c(crc32c(0, a), b) equals
// the checksum of a followed by b.
uint32_t crc32c(uint32_t crc, const void* data, size_t n);

}  // namespace sarai
