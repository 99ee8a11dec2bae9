#include "loader/blob_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <set>

#include "kernels/cpu/int8_layout.h"
#include "runtime/crc32c.h"
#include "runtime/mapped_file.h"
#include "runtime/parallel.h"

namespace sarai {

static_assert(std::endian::native == std::endian::little, "the blob reader reads integers in native order");

namespace {

using blob::AttrKind;
using blob::BlobSection;
using blob::Layout;
using blob::Scheme;
using blob::SectionKind;

constexpr uint32_t kSectionCountV1 = 4;
constexpr uint64_t kTableEnd = blob::kHeaderSize + kSectionCountV1 * blob::kSectionEntrySize;

uint32_t get32(const uint8_t* p) { uint32_t v; std::memcpy(&v, p, 4); return v; }
uint64_t get64(const uint8_t* p) { uint64_t v; std::memcpy(&v, p, 8); return v; }

const char* section_name(SectionKind k) {
  switch (k) {
    case SectionKind::kMeta: return "META";
    case SectionKind::kGraph: return "GRAPH";
    case SectionKind::kTensors: return "TENSORS";
    case SectionKind::kData: return "DATA";
  }
  return "?";
}

std::string range(uint64_t a, uint64_t b) {
  std::string r = "[";  // built piece by piece: GCC 12 warns (-Wrestrict) on the one-expression form
  r += std::to_string(a);
  r += ", ";
  r += std::to_string(b);
  r += ")";
  return r;
}

// [off, off + size) lies inside [begin, end), without overflow.
bool inside(uint64_t off, uint64_t size, uint64_t begin, uint64_t end) {
  return off >= begin && off <= end && size <= end - off;
}

// A bounds-checked reader over one stream section. The first failure is
// sticky: later reads return zeros and the parser checks ok() at loop heads.
class Cursor {
 public:
  Cursor(const uint8_t* p, uint64_t n, const char* section, const std::string& file)
      : p_(p), n_(n), section_(section), file_(file) {}

  bool ok() const { return ok_; }
  Status status() const { return ok_ ? Status::ok() : Status::error(msg_); }
  uint64_t remaining() const { return n_ - pos_; }
  uint64_t pos() const { return pos_; }
  void context(std::string c) { ctx_ = std::move(c); }

  uint8_t u8() { uint8_t v = 0; take(&v, 1); return v; }
  uint32_t u32() { uint32_t v = 0; take(&v, 4); return v; }
  int32_t i32() { int32_t v = 0; take(&v, 4); return v; }
  uint64_t u64() { uint64_t v = 0; take(&v, 8); return v; }
  int64_t i64() { int64_t v = 0; take(&v, 8); return v; }
  float f32() { float v = 0; take(&v, 4); return v; }
  std::string str() {
    uint32_t len = u32();
    if (!ok_) return {};
    if (len > remaining()) {
      fail("a string of " + std::to_string(len) + " bytes at byte " + std::to_string(pos_) + " runs past the end (" +
           std::to_string(n_) + " bytes)");
      return {};
    }
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  // A u32 count of items taking at least `min_each` bytes each: refused
  // when the rest of the section cannot hold them, before anyone allocates.
  uint32_t count(uint64_t min_each, const char* what) {
    uint32_t n = u32();
    if (ok_ && static_cast<uint64_t>(n) * min_each > remaining()) {
      fail(std::to_string(n) + " " + what + " cannot fit in the remaining " + std::to_string(remaining()) + " bytes");
      return 0;
    }
    return ok_ ? n : 0;
  }
  void fail(const std::string& what) {
    if (!ok_) return;
    ok_ = false;
    msg_ = file_ + ": " + section_ + " section" + (ctx_.empty() ? "" : ", " + ctx_) + ": " + what;
  }

 private:
  void take(void* dst, uint64_t k) {
    if (!ok_) return;
    if (k > remaining()) {
      fail("truncated: " + std::to_string(k) + " bytes needed at byte " + std::to_string(pos_) + " of " +
           std::to_string(n_));
      return;
    }
    std::memcpy(dst, p_ + pos_, k);
    pos_ += k;
  }
  const uint8_t* p_;
  uint64_t n_, pos_ = 0;
  const char* section_;
  const std::string& file_;
  std::string ctx_, msg_;
  bool ok_ = true;
};

// What the parser produces; tensors' data are not touched.
struct Parsed {
  BlobInfo info;
  std::shared_ptr<Model> model;
  const BlobSection* sec[5] = {};  // by SectionKind
};

std::string tensor_dims_string(const Shape& d) { return shape_to_string(d); }

// ---------------------------------------------------------------- header
Status parse_header(const uint8_t* d, uint64_t size, const std::string& file, Parsed* out) {
  if (size == 0) return Status::error(file + ": file is empty (not a .sarai blob)");
  const uint64_t magic_len = std::min<uint64_t>(size, sizeof blob::kMagic);
  if (std::memcmp(d, blob::kMagic, magic_len) != 0) return Status::error(file + ": not a .sarai blob (bad magic)");
  // How long the file claims to be, for truncation messages.
  auto claimed = [&]() -> uint64_t {
    if (size >= blob::HeaderLayout::kFileSize + 8) {
      uint64_t fs = get64(d + blob::HeaderLayout::kFileSize);
      if (fs > size) return fs;
    }
    return kTableEnd;
  };
  auto truncated = [&]() {
    return Status::error(file + ": truncated at byte " + std::to_string(size) + " of " + std::to_string(claimed()));
  };
  if (size < blob::HeaderLayout::kFormatVersion + 4) return truncated();
  const uint32_t version = get32(d + blob::HeaderLayout::kFormatVersion);
  if (version < blob::kOldestFormatVersion || version > blob::kFormatVersion)
    return Status::error(file + ": format version " + std::to_string(version) + " is not supported (this build reads " +
                         std::to_string(blob::kOldestFormatVersion) + " to " + std::to_string(blob::kFormatVersion) + ")");
  if (size < kTableEnd) return truncated();

  blob::BlobHeader& h = out->info.header;
  h.format_version = version;
  const uint32_t header_size = get32(d + blob::HeaderLayout::kHeaderSize);
  h.file_size = get64(d + blob::HeaderLayout::kFileSize);
  h.section_table_offset = get64(d + blob::HeaderLayout::kSectionTableOffset);
  h.section_count = get32(d + blob::HeaderLayout::kSectionCount);
  h.weight_layout_version = get32(d + blob::HeaderLayout::kWeightLayoutVersion);
  h.flags = get32(d + blob::HeaderLayout::kFlags);
  h.checksum = get32(d + blob::HeaderLayout::kChecksum);
  if (header_size != blob::kHeaderSize)
    return Status::error(file + ": header size " + std::to_string(header_size) + " is not " +
                         std::to_string(blob::kHeaderSize));
  if (h.section_table_offset != blob::kHeaderSize)
    return Status::error(file + ": section table at byte " + std::to_string(h.section_table_offset) +
                         ", format version 1 has it at " + std::to_string(blob::kHeaderSize));
  if (h.section_count != kSectionCountV1)
    return Status::error(file + ": " + std::to_string(h.section_count) + " sections, format version 1 has " +
                         std::to_string(kSectionCountV1));

  // The checksum covers the header (checksum field zeroed) and the table.
  uint8_t zero[4] = {};
  uint32_t c = crc32c(0, d, blob::HeaderLayout::kChecksum);
  c = crc32c(c, zero, 4);
  c = crc32c(c, d + blob::HeaderLayout::kChecksum + 4, kTableEnd - blob::HeaderLayout::kChecksum - 4);
  if (c != h.checksum) return Status::error(file + ": checksum mismatch in the header or section table");

  if (size < h.file_size) return truncated();
  if (size > h.file_size)
    return Status::error(file + ": " + std::to_string(size) + " bytes, but the header says " +
                         std::to_string(h.file_size) + " (trailing bytes after the blob)");
  if (h.flags != 0) return Status::error(file + ": unknown header flags " + std::to_string(h.flags));
  for (size_t i = blob::HeaderLayout::kChecksum + 4; i < blob::kHeaderSize; ++i)
    if (d[i] != 0) return Status::error(file + ": reserved header byte " + std::to_string(i) + " is not zero");
  if (h.weight_layout_version != int8::kWeightLayoutVersion)
    return Status::error(file + ": weight layout version " + std::to_string(h.weight_layout_version) +
                         " is not supported (this build's kernels read " + std::to_string(int8::kWeightLayoutVersion) +
                         "): reconvert the model");

  // Section table: each kind once, inside the file, aligned, no overlaps.
  for (uint32_t i = 0; i < h.section_count; ++i) {
    const uint8_t* e = d + blob::kHeaderSize + i * blob::kSectionEntrySize;
    const uint32_t kind = get32(e);
    if (kind < 1 || kind > 4) return Status::error(file + ": section " + std::to_string(i) + " has unknown kind " + std::to_string(kind));
    if (get64(e + 24) != 0) return Status::error(file + ": reserved bytes of section entry " + std::to_string(i) + " are not zero");
    BlobSection s{static_cast<SectionKind>(kind), get32(e + 4), get64(e + 8), get64(e + 16)};
    if (out->sec[kind]) return Status::error(file + ": section " + section_name(s.kind) + " appears twice");
    out->info.sections.push_back(s);
    out->sec[kind] = &out->info.sections.back();
  }
  // (sections never reallocates past 4 entries: reserve before taking addresses)
  for (const BlobSection& s : out->info.sections) {
    const std::string name = section_name(s.kind);
    if (!inside(s.offset, s.size, 0, h.file_size))
      return Status::error(file + ": section " + name + " [" + std::to_string(s.offset) + ", +" + std::to_string(s.size) +
                           ") extends past the end of the file (" + std::to_string(h.file_size) + " bytes)");
    const uint64_t align = s.kind == SectionKind::kData ? blob::kPageAlignment : blob::kTensorAlignment;
    if (s.offset % align != 0)
      return Status::error(file + ": section " + name + " at byte " + std::to_string(s.offset) + " is not aligned to " +
                           std::to_string(align));
    if (s.offset < kTableEnd && s.size > 0)
      return Status::error(file + ": section " + name + " " + range(s.offset, s.offset + s.size) +
                           " overlaps the header and section table " + range(0, kTableEnd));
  }
  for (size_t i = 0; i < out->info.sections.size(); ++i)
    for (size_t j = 0; j < out->info.sections.size(); ++j) {
      const BlobSection& a = out->info.sections[i];
      const BlobSection& b = out->info.sections[j];
      if (i == j || a.size == 0 || b.size == 0) continue;
      if (a.offset < b.offset + b.size && b.offset < a.offset + a.size && (a.offset < b.offset || (a.offset == b.offset && i < j)))
        return Status::error(file + ": section " + section_name(a.kind) + " " + range(a.offset, a.offset + a.size) +
                             " overlaps section " + section_name(b.kind) + " " + range(b.offset, b.offset + b.size));
    }
  for (SectionKind k : {SectionKind::kMeta, SectionKind::kGraph, SectionKind::kTensors}) {
    const BlobSection& s = *out->sec[static_cast<int>(k)];
    if (crc32c(0, d + s.offset, static_cast<size_t>(s.size)) != s.crc32c)
      return Status::error(file + ": checksum mismatch in section " + section_name(k));
  }
  return Status::ok();
}

// ---------------------------------------------------------------- TENSORS
Status parse_tensors(const uint8_t* d, const std::string& file, Parsed* out) {
  const BlobSection& s = *out->sec[static_cast<int>(SectionKind::kTensors)];
  const BlobSection& data = *out->sec[static_cast<int>(SectionKind::kData)];
  Cursor c(d + s.offset, s.size, "TENSORS", file);
  const uint32_t n = c.count(/*min_each=*/54, "tensors");
  auto& tensors = out->info.tensors;
  tensors.reserve(n);
  for (uint32_t i = 0; i < n && c.ok(); ++i) {
    c.context("tensor " + std::to_string(i));
    BlobTensorInfo t;
    t.name = c.str();
    const int32_t code = c.i32();
    const uint32_t rank = c.u32();
    if (!c.ok()) break;
    const std::string who = file + ": tensor '" + t.name + "'";
    if (rank > blob::kMaxRank)
      return Status::error(who + " has rank " + std::to_string(rank) + " (at most " + std::to_string(blob::kMaxRank) + ")");
    for (uint32_t k = 0; k < rank; ++k) t.dims.push_back(c.i64());
    blob::TensorEntry& e = t.entry;
    const uint8_t layout = c.u8(), scheme = c.u8();
    e.axis = c.i32();
    e.scale_tensor = c.i32();
    e.zero_point_tensor = c.i32();
    e.sum_tensor = c.i32();
    e.offset = c.u64();
    e.size = c.u64();
    e.crc32c = c.u32();
    if (!c.ok()) break;
    if (!dtype_from_onnx(code, &t.dtype) || dtype_size(t.dtype) == 0)
      return Status::error(who + " has dtype code " + std::to_string(code) + ", which a blob cannot hold");
    const size_t esize = dtype_size(t.dtype);
    auto numel = checked_numel(t.dims, esize);
    if (!numel) {
      for (int64_t dim : t.dims)
        if (dim < 0) return Status::error(who + " dims " + tensor_dims_string(t.dims) + " have a negative dim");
      return Status::error(who + " dims " + tensor_dims_string(t.dims) + " overflow");
    }
    if (layout > static_cast<uint8_t>(Layout::kPackedN16K4))
      return Status::error(who + " has unknown layout " + std::to_string(layout));
    if (scheme > static_cast<uint8_t>(Scheme::kInt8PerTensor))
      return Status::error(who + " has unknown quantization scheme " + std::to_string(scheme));
    e.layout = static_cast<Layout>(layout);
    e.scheme = static_cast<Scheme>(scheme);
    uint64_t expected = static_cast<uint64_t>(*numel) * esize;
    if (e.layout == Layout::kPackedN16K4) {
      if (t.dtype != DType::kInt8 || rank != 2)
        return Status::error(who + " is " + dtype_name(t.dtype) + " " + tensor_dims_string(t.dims) +
                             ": the N16K4 layout holds int8 [K, N] weights only");
      // Padding K and N up can overflow where K * N did not.
      if (t.dims[0] > (int64_t{1} << 40) || t.dims[1] > (int64_t{1} << 40))
        return Status::error(who + " dims " + tensor_dims_string(t.dims) + " overflow");
      const int64_t kp = int8::round_up(t.dims[0], int8::kGroupK), np = int8::round_up(t.dims[1], int8::kPanelN);
      if (np != 0 && kp > std::numeric_limits<int64_t>::max() / np)
        return Status::error(who + " dims " + tensor_dims_string(t.dims) + " overflow");
      expected = static_cast<uint64_t>(int8::packed_size(t.dims[0], t.dims[1]));
    }
    if (e.size != expected)
      return Status::error(who + " has " + std::to_string(e.size) + " bytes, but " + dtype_name(t.dtype) + " " +
                           tensor_dims_string(t.dims) + (e.layout == Layout::kPackedN16K4 ? " packed N16K4" : "") +
                           " takes " + std::to_string(expected));
    if (!inside(e.offset, e.size, data.offset, data.offset + data.size))
      return Status::error(who + " [" + std::to_string(e.offset) + ", +" + std::to_string(e.size) +
                           ") is outside the DATA section " + range(data.offset, data.offset + data.size));
    const uint64_t align = e.size >= blob::kPageAlignThreshold ? blob::kPageAlignment : blob::kTensorAlignment;
    if (e.offset % align != 0)
      return Status::error(who + " at byte " + std::to_string(e.offset) + " is not aligned to " + std::to_string(align));
    tensors.push_back(std::move(t));
  }
  if (!c.ok()) return c.status();
  c.context("");
  if (c.remaining() != 0) return Status::error(file + ": TENSORS section has " + std::to_string(c.remaining()) + " bytes after its last entry");

  // Quantization parameters and companions, now that every entry is known.
  const int64_t count = static_cast<int64_t>(tensors.size());
  for (const BlobTensorInfo& t : tensors) {
    const blob::TensorEntry& e = t.entry;
    const std::string who = file + ": tensor '" + t.name + "'";
    if (e.scheme == Scheme::kNone) {
      if (e.axis != -1 || e.scale_tensor != -1 || e.zero_point_tensor != -1 || e.sum_tensor != -1)
        return Status::error(who + " is not quantized but has an axis, scale, zero point or sum");
      continue;
    }
    if (t.dtype != DType::kInt8) return Status::error(who + " is quantized but " + dtype_name(t.dtype) + ", not int8");
    int64_t channels = 1;
    if (e.scheme == Scheme::kInt8PerChannel) {
      if (e.axis < 0 || e.axis >= static_cast<int32_t>(t.dims.size()))
        return Status::error(who + " has channel axis " + std::to_string(e.axis) + ", out of range for " +
                             tensor_dims_string(t.dims));
      channels = t.dims[static_cast<size_t>(e.axis)];
    } else if (e.axis != -1) {
      return Status::error(who + " is quantized per tensor but has axis " + std::to_string(e.axis));
    }
    auto check = [&](int32_t idx, const char* role, DType want, bool required) -> Status {
      if (idx == -1 && !required) return Status::ok();
      if (idx < 0 || idx >= count)
        return Status::error(who + " names " + role + " tensor " + std::to_string(idx) + ", but the blob has " +
                             std::to_string(count) + " tensors");
      const BlobTensorInfo& ct = tensors[static_cast<size_t>(idx)];
      if (ct.dtype != want || ct.entry.scheme != Scheme::kNone || ct.entry.layout != Layout::kPlain ||
          numel_of(ct.dims) != channels)
        return Status::error(who + ": its " + role + " tensor '" + ct.name + "' is " + dtype_name(ct.dtype) + " " +
                             tensor_dims_string(ct.dims) + ", not plain " + dtype_name(want) + " with " +
                             std::to_string(channels) + " elements");
      return Status::ok();
    };
    SARAI_RETURN_IF_ERROR(check(e.scale_tensor, "scale", DType::kFloat32, true));
    SARAI_RETURN_IF_ERROR(check(e.zero_point_tensor, "zero point", DType::kInt8, false));
    SARAI_RETURN_IF_ERROR(check(e.sum_tensor, "sum", DType::kInt32, false));
  }
  return Status::ok();
}

// ---------------------------------------------------------------- META
Status parse_meta(const uint8_t* d, const std::string& file, Parsed* out) {
  const BlobSection& s = *out->sec[static_cast<int>(SectionKind::kMeta)];
  Cursor c(d + s.offset, s.size, "META", file);
  const uint32_t n = c.count(/*min_each=*/8, "metadata entries");
  for (uint32_t i = 0; i < n && c.ok(); ++i) {
    std::string k = c.str();
    std::string v = c.str();
    if (c.ok()) out->info.metadata.emplace_back(std::move(k), std::move(v));
  }
  if (!c.ok()) return c.status();
  if (c.remaining() != 0) return Status::error(file + ": META section has " + std::to_string(c.remaining()) + " bytes after its last entry");
  return Status::ok();
}

// A tensor-table entry as an IR tensor: a read-only view of the mapping.
Tensor tensor_view(const uint8_t* d, const BlobTensorInfo& t, const std::shared_ptr<const void>& owner) {
  Shape shape = t.entry.layout == Layout::kPackedN16K4 ? Shape{static_cast<int64_t>(t.entry.size)} : t.dims;
  return Tensor::wrap(t.dtype, std::move(shape), d + t.entry.offset, owner, /*read_only=*/true);
}

// ---------------------------------------------------------------- GRAPH
// Subgraphs nest at most this deep (a hostile file cannot recurse further).
constexpr int kMaxGraphDepth = 16;

// One graph's encoding (docs/blob-format.md 5.2) from its name on: the
// model's graph (depth 0), or a GRAPH attribute's subgraph, which ends with
// its captures. `file` prefixes errors ("f.sarai: node 'If_0' (If)
// then_branch" inside a subgraph). Format 1 has neither subgraphs nor
// implicit-input counts.
Status parse_graph_body(Cursor& c, const uint8_t* d, const std::string& file, const std::shared_ptr<const void>& owner,
                        const Parsed& out, Graph& g, int depth) {
  const int64_t ntensors = static_cast<int64_t>(out.info.tensors.size());
  const uint32_t version = out.info.header.format_version;
  g.name = c.str();
  const uint32_t nvalues = c.count(/*min_each=*/17, "values");
  if (nvalues > static_cast<uint32_t>(std::numeric_limits<int>::max())) c.fail("too many values");
  g.values.reserve(nvalues);
  for (uint32_t i = 0; i < nvalues && c.ok(); ++i) {
    c.context("value " + std::to_string(i));
    std::string name = c.str();
    const int32_t code = c.i32();
    const uint8_t has_shape = c.u8();
    const uint32_t rank = c.count(/*min_each=*/12, "dims");
    if (!c.ok()) break;
    const std::string who = file + ": value '" + name + "'";
    if (name.empty()) return Status::error(file + ": value " + std::to_string(i) + " has an empty name");
    if (g.find_value(name) != kNoValue) return Status::error(who + " is defined twice");
    DType dt = DType::kUndefined;
    if (code != 0 && !dtype_from_onnx(code, &dt)) return Status::error(who + " has unknown dtype code " + std::to_string(code));
    if (has_shape > 1) return Status::error(who + " has has_shape " + std::to_string(has_shape) + " (0 or 1)");
    if (rank > blob::kMaxRank) return Status::error(who + " has rank " + std::to_string(rank));
    std::vector<Dim> dims;
    for (uint32_t k = 0; k < rank && c.ok(); ++k) {
      Dim dim;
      dim.value = c.i64();
      dim.symbol = c.str();
      if (c.ok() && (dim.value < -1 || (dim.value >= 0 && !dim.symbol.empty())))
        return Status::error(who + " dim " + std::to_string(k) + " is " + std::to_string(dim.value) +
                             (dim.symbol.empty() ? "" : " '" + dim.symbol + "'") + ": a size >= 0, or -1 with an optional symbol");
      dims.push_back(std::move(dim));
    }
    const int32_t tensor = c.i32();
    if (!c.ok()) break;
    if (tensor < -1 || tensor >= ntensors)
      return Status::error(who + " names tensor " + std::to_string(tensor) + ", but the blob has " + std::to_string(ntensors) + " tensors");
    int id = g.add_value(name);
    Value& v = g.values[static_cast<size_t>(id)];
    v.dtype = dt;
    v.has_shape = has_shape != 0;
    v.dims = std::move(dims);
    if (tensor >= 0) {
      // The tensor entry is authoritative for an initializer's type and shape.
      const BlobTensorInfo& t = out.info.tensors[static_cast<size_t>(tensor)];
      v.set_initializer(tensor_view(d, t, owner));
    }
  }
  if (!c.ok()) return c.status();
  c.context("");
  const int64_t nv = static_cast<int64_t>(g.values.size());
  auto value_ok = [&](int32_t x, bool allow_none) { return (allow_none && x == kNoValue) || (x >= 0 && x < nv); };

  const uint32_t nnodes = c.count(/*min_each=*/24, "nodes");
  g.nodes.reserve(nnodes);
  for (uint32_t i = 0; i < nnodes && c.ok(); ++i) {
    c.context("node " + std::to_string(i));
    Node n;
    n.name = c.str();
    n.op_type = c.str();
    n.domain = c.str();
    if (!c.ok()) break;
    c.context(n.describe());
    const std::string who = file + ": " + n.describe();
    for (int pass = 0; pass < 2 && c.ok(); ++pass) {
      const uint32_t k = c.count(/*min_each=*/4, pass == 0 ? "inputs" : "outputs");
      for (uint32_t j = 0; j < k && c.ok(); ++j) {
        const int32_t x = c.i32();
        if (c.ok() && !value_ok(x, /*allow_none=*/true))
          return Status::error(who + (pass == 0 ? " input " : " output ") + std::to_string(j) + " is value " +
                               std::to_string(x) + ", but the graph has " + std::to_string(nv) + " values");
        (pass == 0 ? n.inputs : n.outputs).push_back(x);
      }
    }
    const uint32_t nattrs = c.count(/*min_each=*/5, "attributes");
    for (uint32_t j = 0; j < nattrs && c.ok(); ++j) {
      std::string name = c.str();
      const uint8_t kind = c.u8();
      if (!c.ok()) break;
      Attribute a;
      switch (static_cast<AttrKind>(kind)) {
        case AttrKind::kFloat: a.kind = Attribute::Kind::kFloat; a.f = c.f32(); break;
        case AttrKind::kInt: a.kind = Attribute::Kind::kInt; a.i = c.i64(); break;
        case AttrKind::kString: a.kind = Attribute::Kind::kString; a.s = c.str(); break;
        case AttrKind::kTensor: {
          a.kind = Attribute::Kind::kTensor;
          const int32_t t = c.i32();
          if (!c.ok()) break;
          if (t < 0 || t >= ntensors)
            return Status::error(who + " attribute '" + name + "' names tensor " + std::to_string(t) +
                                 ", but the blob has " + std::to_string(ntensors) + " tensors");
          a.t = tensor_view(d, out.info.tensors[static_cast<size_t>(t)], owner);
          break;
        }
        case AttrKind::kFloats: {
          a.kind = Attribute::Kind::kFloats;
          const uint32_t k = c.count(4, "floats");
          a.floats.reserve(k);
          for (uint32_t q = 0; q < k && c.ok(); ++q) a.floats.push_back(c.f32());
          break;
        }
        case AttrKind::kInts: {
          a.kind = Attribute::Kind::kInts;
          const uint32_t k = c.count(8, "ints");
          a.ints.reserve(k);
          for (uint32_t q = 0; q < k && c.ok(); ++q) a.ints.push_back(c.i64());
          break;
        }
        case AttrKind::kStrings: {
          a.kind = Attribute::Kind::kStrings;
          const uint32_t k = c.count(4, "strings");
          a.strings.reserve(k);
          for (uint32_t q = 0; q < k && c.ok(); ++q) a.strings.push_back(c.str());
          break;
        }
        case AttrKind::kGraph: {
          a.kind = Attribute::Kind::kGraph;
          if (version < 2) break;  // format 1: no payload
          const uint8_t present = c.u8();
          if (!c.ok() || present == 0) break;
          if (present != 1) return Status::error(who + " attribute '" + name + "' has graph flag " + std::to_string(present) + " (0 or 1)");
          if (depth + 1 > kMaxGraphDepth)
            return Status::error(who + " attribute '" + name + "': subgraphs nest deeper than " + std::to_string(kMaxGraphDepth));
          auto sub = std::make_shared<Graph>();
          sub->opset = g.opset;
          const std::string ctx = n.describe();
          SARAI_RETURN_IF_ERROR(parse_graph_body(c, d, who + " " + name, owner, out, *sub, depth + 1));
          c.context(ctx);
          a.g = std::move(sub);
          break;
        }
        default:
          return Status::error(who + " attribute '" + name + "' has unknown kind " + std::to_string(kind));
      }
      if (!c.ok()) break;
      if (!n.attrs.emplace(name, std::move(a)).second)
        return Status::error(who + " has attribute '" + name + "' twice");
    }
    if (version >= 2) {
      const uint32_t implicit = c.u32();
      if (c.ok() && implicit > n.inputs.size())
        return Status::error(who + " has " + std::to_string(implicit) + " implicit inputs but " + std::to_string(n.inputs.size()) +
                             " inputs");
      n.implicit_inputs = static_cast<int>(implicit);
    }
    g.nodes.push_back(std::move(n));
  }
  for (int pass = 0; pass < 2 && c.ok(); ++pass) {
    c.context(pass == 0 ? "graph inputs" : "graph outputs");
    const uint32_t k = c.count(/*min_each=*/4, pass == 0 ? "graph inputs" : "graph outputs");
    for (uint32_t j = 0; j < k && c.ok(); ++j) {
      const int32_t x = c.i32();
      if (c.ok() && !value_ok(x, /*allow_none=*/false))
        return Status::error(file + ": graph " + (pass == 0 ? "input " : "output ") + std::to_string(j) + " is value " +
                             std::to_string(x) + ", but the graph has " + std::to_string(nv) + " values");
      (pass == 0 ? g.inputs : g.outputs).push_back(x);
    }
  }
  if (depth > 0 && c.ok()) {
    c.context("captures");
    const uint32_t k = c.count(/*min_each=*/4, "captures");
    for (uint32_t j = 0; j < k && c.ok(); ++j) {
      const int32_t x = c.i32();
      if (c.ok() && !value_ok(x, /*allow_none=*/false))
        return Status::error(file + ": capture " + std::to_string(j) + " is value " + std::to_string(x) + ", but the graph has " +
                             std::to_string(nv) + " values");
      g.captures.push_back(x);
    }
  }
  if (!c.ok()) return c.status();

  // Producers: every value comes from exactly one place.
  std::vector<char> is_input(static_cast<size_t>(nv), 0);
  for (int x : g.captures) {  // provided by the enclosing graph
    Value& v = g.values[static_cast<size_t>(x)];
    if (v.is_initializer || is_input[static_cast<size_t>(x)])
      return Status::error(file + ": capture '" + v.name + "' is an initializer or listed twice");
    is_input[static_cast<size_t>(x)] = 1;
  }
  for (int x : g.inputs) {
    Value& v = g.values[static_cast<size_t>(x)];
    if (v.is_initializer) return Status::error(file + ": graph input '" + v.name + "' is an initializer");
    if (is_input[static_cast<size_t>(x)]) return Status::error(file + ": graph input '" + v.name + "' is listed twice");
    is_input[static_cast<size_t>(x)] = 1;
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (int x : g.nodes[i].outputs) {
      if (x == kNoValue) continue;
      Value& v = g.values[static_cast<size_t>(x)];
      if (v.is_initializer || is_input[static_cast<size_t>(x)] || v.producer >= 0)
        return Status::error(file + ": " + g.nodes[i].describe() + " writes '" + v.name + "', which is already " +
                             (v.is_initializer ? std::string("an initializer")
                              : is_input[static_cast<size_t>(x)] ? std::string("a graph input")
                                                                 : "produced by " + g.nodes[static_cast<size_t>(v.producer)].describe()));
      v.producer = static_cast<int>(i);
    }
  }
  auto provided = [&](int x) {
    const Value& v = g.values[static_cast<size_t>(x)];
    return v.is_initializer || v.producer >= 0 || is_input[static_cast<size_t>(x)];
  };
  for (const Node& n : g.nodes)
    for (int x : n.inputs)
      if (x != kNoValue && !provided(x))
        return Status::error(file + ": " + n.describe() + " reads '" + g.values[static_cast<size_t>(x)].name +
                             "', which no node, input or initializer provides");
  for (int x : g.outputs)
    if (!provided(x))
      return Status::error(file + ": graph output '" + g.values[static_cast<size_t>(x)].name + "' is not produced by any node");
  auto order = g.topological_order();
  if (!order) return Status::error(file + ": " + order.message());
  return Status::ok();
}

Status parse_graph(const uint8_t* d, const std::string& file, const std::shared_ptr<const void>& owner, Parsed* out) {
  const BlobSection& s = *out->sec[static_cast<int>(SectionKind::kGraph)];
  Cursor c(d + s.offset, s.size, "GRAPH", file);
  Graph& g = out->model->graph;
  g.opset = c.i64();
  SARAI_RETURN_IF_ERROR(parse_graph_body(c, d, file, owner, *out, g, 0));
  if (c.remaining() != 0) return Status::error(file + ": GRAPH section has " + std::to_string(c.remaining()) + " bytes after its end");
  return Status::ok();
}

Status parse(const uint8_t* d, uint64_t size, const std::string& file, const std::shared_ptr<const void>& owner, Parsed* out) {
  out->info.sections.reserve(kSectionCountV1);
  SARAI_RETURN_IF_ERROR(parse_header(d, size, file, out));
  SARAI_RETURN_IF_ERROR(parse_tensors(d, file, out));
  SARAI_RETURN_IF_ERROR(parse_meta(d, file, out));
  out->model = std::make_shared<Model>();
  out->model->path = file;
  SARAI_RETURN_IF_ERROR(parse_graph(d, file, owner, out));
  Model& m = *out->model;
  m.metadata = out->info.metadata;
  m.producer_name = "sarai blob";
  for (const auto& [k, v] : m.metadata)
    if (k == "converter") m.producer_name = v;  // "sarai-rt 0.1.0"
  m.producer_version = "(blob format " + std::to_string(out->info.header.format_version) + ")";
  m.description = description_from_metadata(m.metadata);
  m.opset_imports[""] = m.graph.opset;
  for (const Node& n : m.graph.nodes)
    if (!n.domain.empty()) m.opset_imports.emplace(n.domain, 1);
  if (owner) m.keepalive.push_back(owner);
  return Status::ok();
}

// ---------------------------------------------------------------- verify
// The checks that read DATA: overlaps, padding, tensor CRCs, DATA CRC.
Status check_data(const uint8_t* d, uint64_t size, const std::string& file, const Parsed& p) {
  const auto& tensors = p.info.tensors;
  const BlobSection& data = *p.sec[static_cast<int>(SectionKind::kData)];

  // Covered byte ranges, sorted; everything else must be zero.
  struct Span { uint64_t begin, end; int tensor; };  // tensor -1: header or a stream section
  std::vector<Span> spans;
  spans.reserve(tensors.size() + 4);
  spans.push_back({0, kTableEnd, -1});
  for (const BlobSection& s : p.info.sections)
    if (s.kind != SectionKind::kData && s.size > 0) spans.push_back({s.offset, s.offset + s.size, -1});
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].entry.size > 0)
      spans.push_back({tensors[i].entry.offset, tensors[i].entry.offset + tensors[i].entry.size, static_cast<int>(i)});
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.tensor < b.tensor); });
  for (size_t i = 1; i < spans.size(); ++i) {
    const Span& a = spans[i - 1];
    const Span& b = spans[i];
    // Sections were checked against each other; tensors lie inside DATA.
    if (b.begin < a.end && a.tensor >= 0 && b.tensor >= 0)
      return Status::error(file + ": tensor '" + tensors[static_cast<size_t>(a.tensor)].name + "' " + range(a.begin, a.end) +
                           " overlaps tensor '" + tensors[static_cast<size_t>(b.tensor)].name + "' " + range(b.begin, b.end));
  }
  uint64_t at = 0;
  for (size_t i = 0; i <= spans.size(); ++i) {
    const uint64_t gap_end = i < spans.size() ? spans[i].begin : size;
    for (uint64_t q = at; q < gap_end; ++q)
      if (d[q] != 0) {
        const bool in_data = q >= data.offset && q < data.offset + data.size;
        return Status::error(file + ": byte " + std::to_string(q) + " is not zero (padding " +
                             (in_data ? "between tensors in DATA" : "outside every section") + ")");
      }
    if (i < spans.size()) at = std::max(at, spans[i].end);
  }

  // Tensor CRCs, in parallel over byte-balanced runs of tensors.
  if (data.size > 0) {
    uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    uintptr_t b = reinterpret_cast<uintptr_t>(d + data.offset) & ~(page - 1);
    uintptr_t e = reinterpret_cast<uintptr_t>(d + data.offset + data.size);
    ::madvise(reinterpret_cast<void*>(b), e - b, MADV_SEQUENTIAL);  // advice only: errors do not matter
  }
  std::vector<uint32_t> crcs(tensors.size());
  const int64_t nt = static_cast<int64_t>(tensors.size());
  const int64_t runs = std::min<int64_t>(nt, int64_t{num_threads()} * 4);
  std::vector<int64_t> run_start;  // tensor index where each run begins
  {
    uint64_t total = 0;
    for (const auto& t : tensors) total += t.entry.size;
    uint64_t acc = 0;
    run_start.push_back(0);
    for (int64_t i = 0; i < nt; ++i) {
      acc += tensors[static_cast<size_t>(i)].entry.size;
      if (static_cast<int64_t>(run_start.size()) < runs && acc * static_cast<uint64_t>(runs) >= total * run_start.size() &&
          i + 1 < nt)
        run_start.push_back(i + 1);
    }
    run_start.push_back(nt);
  }
  parallel_for(static_cast<int64_t>(run_start.size()) - 1, 1, [&](int64_t rb, int64_t re) {
    for (int64_t r = rb; r < re; ++r)
      for (int64_t i = run_start[static_cast<size_t>(r)]; i < run_start[static_cast<size_t>(r) + 1]; ++i) {
        const auto& en = tensors[static_cast<size_t>(i)].entry;
        crcs[static_cast<size_t>(i)] = crc32c(0, d + en.offset, static_cast<size_t>(en.size));
      }
  });
  for (size_t i = 0; i < tensors.size(); ++i)
    if (crcs[i] != tensors[i].entry.crc32c) return Status::error(file + ": checksum mismatch in tensor '" + tensors[i].name + "'");
  uint32_t c = 0;
  for (const auto& t : tensors) c = crc32c(c, &t.entry.crc32c, 4);
  if (c != data.crc32c) return Status::error(file + ": checksum mismatch in section DATA");
  return Status::ok();
}

// Names come from the file and may hold any byte: escape control
// characters so every message stays one printable line.
Status one_line(const Status& s) {
  if (s) return s;
  std::string out;
  static const char kHex[] = "0123456789abcdef";
  for (char ch : s.message()) {
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x20 && u != 0x7f) {
      out += ch;
    } else if (ch == '\n') {
      out += "\\n";
    } else {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return Status::error(out);
}

Expected<std::shared_ptr<Model>> load_impl(const uint8_t* d, uint64_t size, std::shared_ptr<const void> owner,
                                           const std::string& file, bool verify, BlobInfo* info, VerifyStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  Parsed p;
  SARAI_RETURN_IF_ERROR(one_line(parse(d, size, file, owner, &p)));
  if (verify) SARAI_RETURN_IF_ERROR(one_line(check_data(d, size, file, p)));
  if (stats) {
    stats->bytes_checked = size;
    stats->tensors = static_cast<int>(p.info.tensors.size());
    stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  if (info) *info = std::move(p.info);
  return p.model;
}

// The description's string fields and their META keys (the version and
// the props have their own form).
constexpr std::pair<const char*, std::string ModelDescription::*> kDescriptionKeys[] = {
    {"source.producer_name", &ModelDescription::producer_name},
    {"source.domain", &ModelDescription::domain},
    {"source.doc_string", &ModelDescription::doc_string},
    {"source.graph_doc_string", &ModelDescription::graph_doc_string},
};
constexpr char kModelVersionKey[] = "source.model_version";

}  // namespace

std::vector<std::pair<std::string, std::string>> description_metadata(const ModelDescription& d) {
  std::vector<std::pair<std::string, std::string>> meta;
  for (const auto& [key, field] : kDescriptionKeys)
    if (!(d.*field).empty()) meta.emplace_back(key, d.*field);
  if (d.model_version != 0) meta.emplace_back(kModelVersionKey, std::to_string(d.model_version));
  for (const auto& [k, v] : d.props) meta.emplace_back(blob::kSourcePropsPrefix + k, v);
  return meta;
}

ModelDescription description_from_metadata(const std::vector<std::pair<std::string, std::string>>& meta) {
  ModelDescription d;
  const std::string props = blob::kSourcePropsPrefix;
  for (const auto& [k, v] : meta) {
    if (k == kModelVersionKey) d.model_version = std::strtoll(v.c_str(), nullptr, 10);
    else if (k.rfind(props, 0) == 0) d.props.emplace_back(k.substr(props.size()), v);
    for (const auto& [key, field] : kDescriptionKeys)
      if (k == key) d.*field = v;
  }
  return d;
}

bool starts_like_blob(const uint8_t* data, uint64_t size) {
  return size >= sizeof blob::kMagic && std::memcmp(data, blob::kMagic, sizeof blob::kMagic) == 0;
}

bool looks_like_blob(const std::string& path) {
  auto opened = open_regular_file(path);
  if (!opened) return false;
  const int fd = *opened;
  char m[sizeof blob::kMagic];
  const ssize_t n = ::pread(fd, m, sizeof m, 0);
  ::close(fd);
  return n > 0 && starts_like_blob(reinterpret_cast<const uint8_t*>(m), static_cast<uint64_t>(n));
}

Expected<std::shared_ptr<Model>> load_blob(const std::string& path, bool verify, BlobInfo* info) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  return load_blob(std::shared_ptr<const MappedFile>(*file), verify, info);
}

Expected<std::shared_ptr<Model>> load_blob(std::shared_ptr<const MappedFile> f, bool verify, BlobInfo* info) {
  const uint8_t* data = f->data();
  const uint64_t size = f->size();
  const std::string path = f->path();
  auto m = load_impl(data, size, std::move(f), path, verify, info, nullptr);
  if (m) (*m)->mapped_regions.push_back({data, size});
  return m;
}

Status verify_blob(const std::string& path, VerifyStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  std::shared_ptr<MappedFile> f = *file;
  auto m = load_impl(f->data(), f->size(), f, path, /*verify=*/true, nullptr, stats);
  if (stats) stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return m.status();
}

namespace blob_internal {

Expected<std::shared_ptr<Model>> load_blob_bytes(const uint8_t* data, uint64_t size, std::shared_ptr<const void> owner,
                                                 const std::string& name, bool verify, BlobInfo* info) {
  return load_impl(data, size, std::move(owner), name, verify, info, nullptr);
}

Status verify_blob_bytes(const uint8_t* data, uint64_t size, const std::string& name, VerifyStats* stats) {
  return load_impl(data, size, nullptr, name, /*verify=*/true, nullptr, stats).status();
}

void reseal(uint8_t* d, uint64_t size) {
  if (size < kTableEnd) return;
  for (uint32_t i = 0; i < kSectionCountV1; ++i) {
    uint8_t* e = d + blob::kHeaderSize + i * blob::kSectionEntrySize;
    const uint32_t kind = get32(e);
    const uint64_t off = get64(e + 8), n = get64(e + 16);
    if (kind < 1 || kind > 3 || !inside(off, n, 0, size)) continue;
    const uint32_t c = crc32c(0, d + off, static_cast<size_t>(n));
    std::memcpy(e + 4, &c, 4);
  }
  std::memset(d + blob::HeaderLayout::kChecksum, 0, 4);
  const uint32_t c = crc32c(0, d, kTableEnd);
  std::memcpy(d + blob::HeaderLayout::kChecksum, &c, 4);
}

}  // namespace blob_internal
}  // namespace sarai
