#include "loader/model_file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"

namespace sarai {

Expected<std::shared_ptr<Model>> open_model_file(const std::string& path, bool verify_blob) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::error(ErrorCode::kIo, path + ": cannot open: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return Status::error(ErrorCode::kIo, path + ": not a regular file");
  if (looks_like_blob(path)) return load_blob(path, verify_blob);
  return load_onnx(path);
}

}  // namespace sarai
