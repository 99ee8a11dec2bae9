// Writes a .sarai blob (loader/blob_format.h, docs/blob-format.md), one
// tensor at a time, so the writer holds a constant-size buffer whatever the
// model's size.
//
// The file is written to a temp path in the target folder; finish() fsyncs
// it, renames it over the final path and fsyncs the folder. A writer that is
// destroyed (or abort()ed) before finish() removes its temp file, so a
// failed or interrupted convert leaves nothing behind.
//
//   auto w = BlobWriter::create(out + ".tmp-123", out);
//   int32_t q = *(*w)->add_tensor({"w.q", DType::kInt8, {K, N}, Layout::kPackedN16K4,
//                                  Scheme::kInt8PerChannel, /*axis=*/1}, bytes, size);
//   ... add the scale and sum tensors, then set_companions(q, scale, -1, sum) ...
//   Status s = (*w)->finish(graph, value_tensor);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "loader/blob_format.h"
#include "runtime/atomic_file.h"
#include "runtime/graph.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::blob {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape dims;                    // the logical shape ([K, N] for a packed weight)
  Layout layout = Layout::kPlain;
  Scheme scheme = Scheme::kNone;
  int32_t axis = -1;             // output-channel axis (per-channel), else -1
  int32_t scale_tensor = -1, zero_point_tensor = -1, sum_tensor = -1;  // table indices
};

// For finish(): the tensor index of each value of a subgraph, keyed by the
// subgraph (as the graph given to finish() holds it); -1 entries that are
// initializers are added as plain tensors. Subgraphs not listed have all
// their initializers added as plain tensors.
using SubgraphTensors = std::map<const Graph*, std::vector<int32_t>>;

class Stream;  // blob_writer.cc: the stream encoding of META, GRAPH, TENSORS

class BlobWriter {
 public:
  // Creates tmp_path (O_CREAT|O_EXCL; it must be in the same folder as
  // final_path so the final rename is atomic). Errors name the file.
  static Expected<std::unique_ptr<BlobWriter>> create(const std::string& tmp_path, const std::string& final_path);
  ~BlobWriter();  // not finished -> close and unlink tmp_path
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  // Appends one tensor's bytes to DATA (64-byte aligned, 4096 from 64 KiB
  // on), computing its CRC32C; returns its tensor-table index. `size` must
  // be what dtype/dims/layout imply (packed: int8::packed_size(K, N)), else
  // an error naming the tensor. Write errors (ENOSPC...) name the file and
  // the reason; after one, every later call fails with the same error.
  Expected<int32_t> add_tensor(const TensorSpec& spec, const void* data, uint64_t size);
  // Sets the companions of a quantized tensor added earlier (the companions
  // are usually written after it). Checked in finish().
  void set_companions(int32_t tensor, int32_t scale, int32_t zero_point, int32_t sum);
  void set_metadata(std::vector<std::pair<std::string, std::string>> kv);

  // value_tensor[v] = tensor index of graph value v, or -1. Tensor-valued
  // attributes (e.g. Constant's value) are appended to DATA here. Writes
  // META, GRAPH, TENSORS, the section table and the header (with
  // checksums), fsyncs the file, renames tmp_path -> final_path, fsyncs the
  // folder. On error the temp file is removed and final_path is untouched.
  Status finish(const Graph& graph, const std::vector<int32_t>& value_tensor, const SubgraphTensors* subgraphs = nullptr);
  // Closes and unlinks tmp_path now; later calls fail.
  void abort();

  uint64_t bytes_written() const { return pos_; }  // bytes of the file so far
  const std::string& tmp_path() const { return file_->tmp_path(); }
  int tensor_count() const { return static_cast<int>(entries_.size()); }

 private:
  struct Entry {
    TensorSpec spec;
    uint64_t offset = 0, size = 0;
    uint32_t crc = 0;
  };
  BlobWriter() = default;
  Status fail(const std::string& what, int err);
  Status append(const void* data, uint64_t n);
  Status append_zeros(uint64_t n);
  Status flush();
  Status check_entries() const;
  struct GraphTensors;
  // Adds a graph's TENSOR attributes (and a subgraph's initializers), at
  // any depth, as tensors named prefix + "node.attr" / prefix + value.
  Status add_graph_tensors(const Graph& graph, const std::string& prefix, bool sub, GraphTensors* out);
  Status write_graph(Stream& g, const Graph& graph, const std::vector<int32_t>& value_tensor, const GraphTensors& tensors,
                     bool sub);
  void close_and_unlink();

  std::unique_ptr<AtomicFile> file_;  // runtime/atomic_file.h
  bool done_ = false;
  Status error_;                 // sticky after the first failure
  std::vector<uint8_t> buf_;
  size_t buf_used_ = 0;
  uint64_t pos_ = 0;             // logical file position (written + buffered)
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, std::string>> metadata_;
  const SubgraphTensors* subgraphs_ = nullptr;  // during finish()
};

// For a signal handler: sarai::unlink_unfinished_temp_files_from_signal_handler
// (runtime/atomic_file.h) removes every unfinished writer's temp file.
using sarai::unlink_unfinished_temp_files_from_signal_handler;

}  // namespace sarai::blob
