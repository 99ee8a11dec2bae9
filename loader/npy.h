// NumPy .npy files (format versions 1.0-3.0, little-endian, C order): how
// inputs reach `sarai-rt run` and how outputs leave it.
#pragma once

#include <string>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

// Supported dtypes: float32, float16, float64, int64, int32, int16, int8,
// uint8, uint16, uint32, uint64, bool. Errors name the file.
Expected<Tensor> read_npy(const std::string& path);
// Writes a version 1.0 file; the header is padded so the data starts at a
// 64-byte boundary. Atomic: written as PATH.tmp-PID, renamed over PATH when
// complete; on failure nothing is left and an older PATH is untouched.
Status write_npy(const std::string& path, const Tensor& t);

}  // namespace sarai
