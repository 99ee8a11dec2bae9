#include "loader/model_file.h"

#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"

namespace sarai {

// A missing, unreadable or non-regular file fails in the loaders' one way
// of opening (runtime/mapped_file.h open_regular_file): "PATH: cannot open:
// ..." or "PATH: not a regular file", an I/O error.
Expected<std::shared_ptr<Model>> open_model_file(const std::string& path, bool verify_blob) {
  if (looks_like_blob(path)) return load_blob(path, verify_blob);
  return load_onnx(path);
}

}  // namespace sarai
