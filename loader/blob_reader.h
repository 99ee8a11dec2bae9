// Reading .sarai blobs (loader/blob_format.h, docs/blob-format.md).
//
// load_blob maps the file and validates the header, the section table and
// the META/GRAPH/TENSORS streams, but never touches tensor bytes: opening
// costs the same for any model size, and the weights are used in place from
// the mapping. verify_blob additionally reads every byte once: each tensor's
// CRC32C, the DATA checksum and every padding byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loader/blob_format.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai {

class MappedFile;  // runtime/mapped_file.h

struct BlobTensorInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape dims;          // logical dims ([K, N] for a packed weight)
  blob::TensorEntry entry;
};

struct BlobInfo {
  blob::BlobHeader header;
  std::vector<blob::BlobSection> sections;  // in table order
  std::vector<std::pair<std::string, std::string>> metadata;
  std::vector<BlobTensorInfo> tensors;
};

// A source model's description as blob META entries ("source.producer_name",
// "source.domain", "source.doc_string", "source.graph_doc_string",
// "source.model_version", "source.props.KEY"; empty fields left out), as
// convert writes them, and back, as load_blob restores Model::description.
std::vector<std::pair<std::string, std::string>> description_metadata(const ModelDescription& d);
ModelDescription description_from_metadata(const std::vector<std::pair<std::string, std::string>>& meta);

// True when the file's first 8 bytes are the blob magic.
bool looks_like_blob(const std::string& path);
// The same for bytes already in memory.
bool starts_like_blob(const uint8_t* data, uint64_t size);

// Maps the file, validates everything but the tensor bytes and returns a
// Model whose initializers are read-only views into the mapping (a packed
// weight is a 1-D int8 tensor of its bytes); Model::keepalive holds the
// mapping. With verify=true the full verify_blob pass runs first. `info`,
// when given, receives the decoded header and tables.
Expected<std::shared_ptr<Model>> load_blob(const std::string& path, bool verify = false, BlobInfo* info = nullptr);
// The same for a file the caller has mapped (open_model_file: one open for
// the sniffing and the loading).
Expected<std::shared_ptr<Model>> load_blob(std::shared_ptr<const MappedFile> file, bool verify = false,
                                           BlobInfo* info = nullptr);

struct VerifyStats {
  uint64_t bytes_checked = 0;
  int tensors = 0;
  double seconds = 0;
};

// Everything load_blob checks, plus every tensor CRC, the DATA checksum,
// zero padding and that no two tensors overlap. Reports the first problem as
// one line, e.g. "FILE: truncated at byte N of M", "FILE: checksum mismatch
// in tensor 'X'", "FILE: section GRAPH [a, b) overlaps section TENSORS [c, d)".
Status verify_blob(const std::string& path, VerifyStats* stats = nullptr);

// Entry points over bytes already in memory, for tests and the fuzzer.
// `owner` keeps `data` alive for the returned Model's tensors; `name` stands
// for the file name in messages.
namespace blob_internal {
Expected<std::shared_ptr<Model>> load_blob_bytes(const uint8_t* data, uint64_t size, std::shared_ptr<const void> owner,
                                                 const std::string& name, bool verify, BlobInfo* info = nullptr);
Status verify_blob_bytes(const uint8_t* data, uint64_t size, const std::string& name, VerifyStats* stats = nullptr);
// Recomputes the META/GRAPH/TENSORS section checksums and the header
// checksum in place, where the header and section table are intact enough
// to find them. Tests and the fuzzer use it to build blobs that are wrong in
// one structural way but pass the checksums.
void reseal(uint8_t* data, uint64_t size);
}  // namespace blob_internal

}  // namespace sarai
