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

}  // namespace sarai
