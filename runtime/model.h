// A loaded model: the graph plus everything that keeps its constant data
// alive (file mappings, the parsed source). Produced by loader/, consumed by
// runtime/session.h; it never refers to protobuf types.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "runtime/graph.h"

namespace sarai {

struct ExternalDataFile {
  std::string location;      // as written in the model (relative to its folder)
  uint64_t file_size = 0;
  uint64_t bytes_used = 0;   // sum of the tensor lengths that point into it
  int tensor_count = 0;
};

// The model's description as ONNX's ModelProto holds it (what ONNX
// Runtime's ModelMetadata reports; the graph's name is Graph::name). A blob
// carries its source's under the "source.*" metadata keys
// (quantizer/convert.cc), and the blob reader gets it back from them.
struct ModelDescription {
  std::string producer_name, domain, doc_string, graph_doc_string;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> props;  // metadata_props, in file order
};

struct Model {
  std::string path;
  int64_t ir_version = 0;
  std::string producer_name;
  std::string producer_version;
  std::map<std::string, int64_t> opset_imports;  // domain ("" = ONNX) -> version
  Graph graph;
  std::vector<ExternalDataFile> external_data;
  // Key-value metadata (a .sarai blob's META section; empty for ONNX).
  std::vector<std::pair<std::string, std::string>> metadata;
  ModelDescription description;
  // Owners of the bytes that initializers point into (mappings, the parsed
  // protobuf). Opaque on purpose: only the loader knows what they are.
  std::vector<std::shared_ptr<const void>> keepalive;
  // The read-only file mappings that initializers may point into (a blob,
  // ONNX external data). Weights there are paged in on use and can be
  // released again (runtime/session.h's streaming mode); weights elsewhere
  // live in anonymous memory.
  std::vector<std::span<const uint8_t>> mapped_regions;

  int64_t parameter_count() const;
  uint64_t parameter_bytes() const;
};

inline int64_t Model::parameter_count() const {
  int64_t n = 0;
  for (const Value& v : graph.values)
    if (v.is_initializer) n += v.initializer.numel();
  return n;
}

inline uint64_t Model::parameter_bytes() const {
  uint64_t n = 0;
  for (const Value& v : graph.values)
    if (v.is_initializer) n += v.initializer.nbytes();
  return n;
}

}  // namespace sarai
