// Opening a model file, whichever its kind: the one entry point of the
// public API (api/session_api.cc) and of the CLI (tools/cli/cli_util.cc).
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai {

// A .sarai blob (recognised by its magic, whatever the file's name) or an
// ONNX model with its external data. A path that does not exist, or is not
// a regular file (a directory, a FIFO that would block), fails as I/O
// (ErrorCode::kIo) before anything opens it. verify_blob: check every
// checksum of a blob first (sarai-rt run --verify).
Expected<std::shared_ptr<Model>> open_model_file(const std::string& path, bool verify_blob = false);

// The same from a model's bytes in memory (copied first: MappedFile::copy_of),
// `name` standing for the path in errors and Model::path. An ONNX model's
// external data resolves against the working directory, as ONNX Runtime's
// does for a model given as bytes.
Expected<std::shared_ptr<Model>> open_model_memory(const void* data, uint64_t size, const std::string& name,
                                                   bool verify_blob = false);

}  // namespace sarai
