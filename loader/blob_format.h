// The .sarai blob, format version 2 (version 1 is still read): a quantized model the runtime maps and
// uses in place. docs/blob-format.md is the full specification; this comment
// is the summary a reader needs next to the code.
//
// All integers little-endian. A file is:
//
//   Header        128 bytes at offset 0 (BlobHeader below)
//   Section table section_count entries of 32 bytes (BlobSection), at
//                 header.section_table_offset (= 128)
//   Sections      META, GRAPH, TENSORS: byte streams in the encoding below;
//                 DATA: tensor bytes, at a page (4096) boundary
//
// Checksums are CRC32C (Castagnoli). Each section has one in its table
// entry; each tensor has one in its tensor-table entry. The DATA section's
// checksum is the CRC32C of its tensors' checksums (u32 each, in table
// order), and every DATA byte outside a tensor must be zero. The header's
// `checksum` is the CRC32C of the header (with `checksum` zeroed) followed by
// the section table: it covers every section checksum, so a change to any
// byte of the file breaks at least one checksum in the chain.
//
// Stream encoding (META, GRAPH, TENSORS):
//   u8/u32/i32/u64/i64/f32  fixed-width little-endian
//   str                     u32 byte length, then that many UTF-8 bytes
//   META     u32 count, then count × (str key, str value)
//   GRAPH    i64 opset, str name,
//            u32 value_count × (str name, i32 dtype, u8 has_shape, u32 rank,
//                               rank × (i64 dim, str symbol), i32 tensor)
//              dim >= 0 is a fixed size; dim = -1 is symbolic (symbol may be
//              empty: unknown); tensor is a tensor-table index or -1.
//            u32 node_count × (str name, str op_type, str domain,
//                              u32 n × i32 input, u32 n × i32 output,
//                              u32 n × (str name, u8 kind, payload),
//                              u32 implicit_inputs)   [version 2]
//              input/output are value indices, -1 for an omitted optional one;
//              payload by kind (AttrKind): FLOAT f32, INT i64, STRING str,
//              TENSOR i32 tensor index, FLOATS u32 n × f32, INTS u32 n × i64,
//              STRINGS u32 n × str, GRAPH u8 present + (if 1) a subgraph:
//              the same grammar from `str name` on, then u32 n × i32 capture
//              [version 2; version 1: nothing].
//            u32 n × i32 graph input value, u32 n × i32 graph output value
//   TENSORS  u32 count × (str name, i32 dtype, u32 rank, rank × i64 dim,
//                         u8 layout, u8 scheme, i32 axis,
//                         i32 scale_tensor, i32 zero_point_tensor,
//                         i32 sum_tensor, u64 offset, u64 size, u32 crc32c)
//              dims are the logical shape (ONNX's); offset is from the start
//              of the file, inside DATA, 64-byte aligned (4096 when size >=
//              64 KiB); size is exactly what layout and shape imply.
//
// Quantized weights (scheme != kNone) are int8, symmetric (zero point 0,
// values in [-127, 127]), and name their companions by tensor index: scales
// (float32, one per output channel along `axis`, or one for per-tensor),
// and per-channel sums Σ_k w (int32, the u8 zero-point compensation the INT8
// kernels need). Their layout is the one the kernels read in place
// (kernels/cpu/int8_layout.h); header.weight_layout_version names its version,
// and a reader that does not know it refuses the file instead of misreading.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sarai::blob {

inline constexpr char kMagic[8] = {'S', 'A', 'R', 'A', 'I', 'B', 'L', 'B'};
inline constexpr uint32_t kFormatVersion = 2;  // 2: subgraphs, implicit inputs
inline constexpr uint32_t kOldestFormatVersion = 1;  // still read
inline constexpr uint32_t kHeaderSize = 128;
inline constexpr uint32_t kSectionEntrySize = 32;
inline constexpr uint64_t kTensorAlignment = 64;
inline constexpr uint64_t kPageAlignment = 4096;
inline constexpr uint64_t kPageAlignThreshold = 64 * 1024;  // tensors this large start on a page
inline constexpr uint32_t kMaxRank = 32;
// META keys "source.props.KEY": the source ONNX model's metadata_props
// (with source.producer_name, source.domain, source.doc_string,
// source.graph_doc_string, source.model_version: its description).
inline constexpr char kSourcePropsPrefix[] = "source.props.";

enum class SectionKind : uint32_t { kMeta = 1, kGraph = 2, kTensors = 3, kData = 4 };

// Byte offsets of the header fields.
struct HeaderLayout {
  static constexpr size_t kMagicOffset = 0;             // char[8]
  static constexpr size_t kFormatVersion = 8;           // u32
  static constexpr size_t kHeaderSize = 12;             // u32 (= 128)
  static constexpr size_t kFileSize = 16;               // u64
  static constexpr size_t kSectionTableOffset = 24;     // u64 (= 128)
  static constexpr size_t kSectionCount = 32;           // u32
  static constexpr size_t kWeightLayoutVersion = 36;    // u32
  static constexpr size_t kFlags = 40;                  // u32 (0; reserved)
  static constexpr size_t kChecksum = 44;               // u32: header + section table
  // bytes 48..127: zero (reserved)
};

struct BlobHeader {
  uint32_t format_version = kFormatVersion;
  uint64_t file_size = 0;
  uint64_t section_table_offset = kHeaderSize;
  uint32_t section_count = 0;
  uint32_t weight_layout_version = 0;
  uint32_t flags = 0;
  uint32_t checksum = 0;
};

struct BlobSection {
  SectionKind kind = SectionKind::kMeta;
  uint32_t crc32c = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  // 8 reserved zero bytes follow in the file entry.
};

enum class AttrKind : uint8_t {
  kFloat = 1, kInt = 2, kString = 3, kTensor = 4, kFloats = 5, kInts = 6, kStrings = 7, kGraph = 8,
};

enum class Layout : uint8_t {
  kPlain = 0,       // row-major in the logical shape, as ONNX stores it
  kPackedN16K4 = 1, // int8 [K, N] for the VNNI kernels, see kernels/cpu/int8_layout.h
};

enum class Scheme : uint8_t {
  kNone = 0,               // stored as is (float32 or any dtype)
  kInt8PerChannel = 1,     // symmetric int8, one scale per output channel
  kInt8PerTensor = 2,      // symmetric int8, one scale
};

struct TensorEntry {
  // name, dtype and dims are decoded into the reader's own types.
  Layout layout = Layout::kPlain;
  Scheme scheme = Scheme::kNone;
  int32_t axis = -1;
  int32_t scale_tensor = -1;
  int32_t zero_point_tensor = -1;  // -1: symmetric, all zero
  int32_t sum_tensor = -1;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t crc32c = 0;
};

}  // namespace sarai::blob
