#include "loader/model_file.h"

#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "runtime/mapped_file.h"

namespace sarai {

namespace {

Expected<std::shared_ptr<Model>> load_mapped(const std::shared_ptr<MappedFile>& file, bool verify_blob) {
  if (starts_like_blob(file->data(), file->size())) return load_blob(std::shared_ptr<const MappedFile>(file), verify_blob);
  return load_onnx(*file);
}

}  // namespace

// A missing, unreadable or non-regular file fails in the loaders' one way
// of opening (runtime/mapped_file.h open_regular_file): "PATH: cannot open:
// ..." or "PATH: not a regular file", an I/O error.
Expected<std::shared_ptr<Model>> open_model_file(const std::string& path, bool verify_blob) {
  auto file = MappedFile::open(path);  // once: the file sniffed is the file loaded
  if (!file) return file.status();
  return load_mapped(*file, verify_blob);
}

Expected<std::shared_ptr<Model>> open_model_memory(const void* data, uint64_t size, const std::string& name,
                                                   bool verify_blob) {
  auto file = MappedFile::copy_of(data, size, name);
  if (!file) return file.status();
  return load_mapped(*file, verify_blob);
}

}  // namespace sarai
