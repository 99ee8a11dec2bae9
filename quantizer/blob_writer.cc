#include "quantizer/blob_writer.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <limits>
#include <map>

#include "kernels/cpu/int8_layout.h"
#include "runtime/atomic_file.h"
#include "runtime/crc32c.h"

namespace sarai::blob {

static_assert(std::endian::native == std::endian::little, "the blob writer stores integers in native order");

namespace {

constexpr size_t kBufferSize = 8u << 20;      // one write() per 8 MB
constexpr uint64_t kDataOffset = kPageAlignment;  // header + table, then zeros up to the first page

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

bool too_long(const std::string& s) { return s.size() > std::numeric_limits<uint32_t>::max(); }

// Attribute::Kind (IR order) -> blob::AttrKind (file codes).
AttrKind attr_kind(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::kFloat: return AttrKind::kFloat;
    case Attribute::Kind::kInt: return AttrKind::kInt;
    case Attribute::Kind::kString: return AttrKind::kString;
    case Attribute::Kind::kTensor: return AttrKind::kTensor;
    case Attribute::Kind::kFloats: return AttrKind::kFloats;
    case Attribute::Kind::kInts: return AttrKind::kInts;
    case Attribute::Kind::kStrings: return AttrKind::kStrings;
    case Attribute::Kind::kGraph: return AttrKind::kGraph;
  }
  return AttrKind::kGraph;
}

void put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }

}  // namespace

// The stream encoding of META, GRAPH and TENSORS (blob_format.h).
class Stream {
 public:
  void u8(uint8_t v) { b_.push_back(static_cast<char>(v)); }
  void u32(uint32_t v) { raw(&v, 4); }
  void i32(int32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void f32(float v) { raw(&v, 4); }
  void str(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    b_.append(s);
  }
  void count(size_t n) { u32(static_cast<uint32_t>(n)); }
  const std::string& bytes() const { return b_; }

 private:
  void raw(const void* p, size_t n) { b_.append(static_cast<const char*>(p), n); }
  std::string b_;
};

Expected<std::unique_ptr<BlobWriter>> BlobWriter::create(const std::string& tmp_path, const std::string& final_path) {
  int err = 0;
  std::unique_ptr<AtomicFile> file = AtomicFile::create(tmp_path, final_path, &err);
  if (err == EXDEV) return Status::error(tmp_path + ": the temp file must be in the folder of " + final_path);
  if (!file) return Status::error(tmp_path + ": cannot create: " + std::strerror(err));
  std::unique_ptr<BlobWriter> w(new BlobWriter());
  w->file_ = std::move(file);
  w->buf_.resize(kBufferSize);
  // The header and section table are written last (pwrite at 0); DATA
  // starts on the first page boundary.
  Status s = w->append_zeros(kDataOffset);
  if (!s) return s;
  return w;
}

BlobWriter::~BlobWriter() {
  if (!done_) close_and_unlink();
}

void BlobWriter::close_and_unlink() {
  if (file_) file_->discard();
  done_ = true;
}

void BlobWriter::abort() {
  if (done_) return;
  close_and_unlink();
  if (error_) error_ = Status::error(tmp_path() + ": aborted");
}

Status BlobWriter::fail(const std::string& what, int err) {
  error_ = Status::error(tmp_path() + ": " + what + ": " + std::strerror(err));
  return error_;
}

Status BlobWriter::flush() {
  if (const int err = file_->write_all(buf_.data(), buf_used_); err != 0) return fail("cannot write", err);
  buf_used_ = 0;
  return Status::ok();
}

Status BlobWriter::append(const void* data, uint64_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    if (buf_used_ == 0 && n >= buf_.size()) {
      // Large runs skip the copy: write straight from the caller's memory.
      const size_t w = static_cast<size_t>(std::min<uint64_t>(n, 1u << 30));
      if (const int err = file_->write_all(p, w); err != 0) return fail("cannot write", err);
      p += w;
      n -= w;
      pos_ += w;
      continue;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(n, buf_.size() - buf_used_));
    std::memcpy(buf_.data() + buf_used_, p, take);
    buf_used_ += take;
    p += take;
    n -= take;
    pos_ += take;
    if (buf_used_ == buf_.size()) SARAI_RETURN_IF_ERROR(flush());
  }
  return Status::ok();
}

Status BlobWriter::append_zeros(uint64_t n) {
  static const uint8_t kZeros[4096] = {};
  while (n > 0) {
    uint64_t take = std::min<uint64_t>(n, sizeof kZeros);
    SARAI_RETURN_IF_ERROR(append(kZeros, take));
    n -= take;
  }
  return Status::ok();
}

Expected<int32_t> BlobWriter::add_tensor(const TensorSpec& spec, const void* data, uint64_t size) {
  if (done_) return error_ ? Status::error(tmp_path() + ": the blob is already finished") : error_;
  if (!error_) return error_;
  const std::string who = "tensor '" + spec.name + "'";
  if (too_long(spec.name)) return Status::error("tensor name longer than 4 GB");
  const size_t esize = dtype_size(spec.dtype);
  if (esize == 0) return Status::error(who + ": dtype " + dtype_name(spec.dtype) + " cannot be stored in a blob");
  if (spec.dims.size() > kMaxRank)
    return Status::error(who + ": rank " + std::to_string(spec.dims.size()) + " is more than " + std::to_string(kMaxRank));
  auto numel = checked_numel(spec.dims, esize);
  if (!numel) return Status::error(who + ": " + numel.message());
  uint64_t expected = static_cast<uint64_t>(*numel) * esize;
  if (spec.layout == Layout::kPackedN16K4) {
    if (spec.dtype != DType::kInt8 || spec.dims.size() != 2)
      return Status::error(who + ": the N16K4 layout holds int8 [K, N] weights, not " + dtype_name(spec.dtype) + " " +
                           shape_to_string(spec.dims));
    if (spec.dims[0] > (int64_t{1} << 40) || spec.dims[1] > (int64_t{1} << 40))
      return Status::error(who + ": dims " + shape_to_string(spec.dims) + " are too large to pack");
    expected = static_cast<uint64_t>(int8::packed_size(spec.dims[0], spec.dims[1]));
  } else if (spec.layout != Layout::kPlain) {
    return Status::error(who + ": unknown layout " + std::to_string(static_cast<int>(spec.layout)));
  }
  if (size != expected)
    return Status::error(who + ": " + std::to_string(size) + " bytes given, but " + dtype_name(spec.dtype) + " " +
                         shape_to_string(spec.dims) + (spec.layout == Layout::kPackedN16K4 ? " packed N16K4" : "") +
                         " takes " + std::to_string(expected));
  if (spec.scheme != Scheme::kNone) {
    if (spec.scheme != Scheme::kInt8PerChannel && spec.scheme != Scheme::kInt8PerTensor)
      return Status::error(who + ": unknown scheme " + std::to_string(static_cast<int>(spec.scheme)));
    if (spec.dtype != DType::kInt8) return Status::error(who + ": a quantized tensor must be int8");
    if (spec.scheme == Scheme::kInt8PerChannel && (spec.axis < 0 || spec.axis >= static_cast<int32_t>(spec.dims.size())))
      return Status::error(who + ": channel axis " + std::to_string(spec.axis) + " is out of range for " +
                           shape_to_string(spec.dims));
    if (spec.scheme == Scheme::kInt8PerTensor && spec.axis != -1)
      return Status::error(who + ": a per-tensor quantized tensor has axis -1");
  } else if (spec.axis != -1 || spec.scale_tensor != -1 || spec.zero_point_tensor != -1 || spec.sum_tensor != -1) {
    return Status::error(who + ": an unquantized tensor has no axis, scale, zero point or sum");
  }
  if (entries_.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    return Status::error(who + ": too many tensors");

  const uint64_t align = size >= kPageAlignThreshold ? kPageAlignment : kTensorAlignment;
  SARAI_RETURN_IF_ERROR(append_zeros(align_up(pos_, align) - pos_));
  Entry e;
  e.spec = spec;
  e.offset = pos_;
  e.size = size;
  // CRC and write in 8 MB steps so each step's bytes are still in cache.
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t crc = 0;
  for (uint64_t done = 0; done < size;) {
    uint64_t step = std::min<uint64_t>(size - done, kBufferSize);
    crc = crc32c(crc, p + done, static_cast<size_t>(step));
    SARAI_RETURN_IF_ERROR(append(p + done, step));
    done += step;
  }
  e.crc = crc;
  entries_.push_back(std::move(e));
  return static_cast<int32_t>(entries_.size() - 1);
}

void BlobWriter::set_companions(int32_t tensor, int32_t scale, int32_t zero_point, int32_t sum) {
  if (tensor < 0 || static_cast<size_t>(tensor) >= entries_.size()) {
    if (error_) error_ = Status::error(tmp_path() + ": set_companions: no tensor " + std::to_string(tensor));
    return;
  }
  TensorSpec& s = entries_[static_cast<size_t>(tensor)].spec;
  s.scale_tensor = scale;
  s.zero_point_tensor = zero_point;
  s.sum_tensor = sum;
}

void BlobWriter::set_metadata(std::vector<std::pair<std::string, std::string>> kv) { metadata_ = std::move(kv); }

// The invariants the reader checks on companions, checked here too so a
// converter bug fails at write time instead of producing a blob no one reads.
Status BlobWriter::check_entries() const {
  const int32_t n = static_cast<int32_t>(entries_.size());
  for (const Entry& e : entries_) {
    const TensorSpec& s = e.spec;
    const std::string who = "tensor '" + s.name + "'";
    if (s.scheme == Scheme::kNone) {
      if (s.scale_tensor != -1 || s.zero_point_tensor != -1 || s.sum_tensor != -1)
        return Status::error(who + ": an unquantized tensor has no scale, zero point or sum");
      continue;
    }
    const int64_t channels = s.scheme == Scheme::kInt8PerChannel ? s.dims[static_cast<size_t>(s.axis)] : 1;
    auto check = [&](int32_t idx, const char* role, DType want, bool required) -> Status {
      if (idx == -1 && !required) return Status::ok();
      if (idx < 0 || idx >= n)
        return Status::error(who + ": " + role + " tensor index " + std::to_string(idx) + " is out of range");
      const TensorSpec& c = entries_[static_cast<size_t>(idx)].spec;
      if (c.dtype != want || c.scheme != Scheme::kNone || c.layout != Layout::kPlain || numel_of(c.dims) != channels)
        return Status::error(who + ": its " + role + " tensor '" + c.name + "' must be plain " + dtype_name(want) +
                             " with " + std::to_string(channels) + " elements, not " + dtype_name(c.dtype) + " " +
                             shape_to_string(c.dims));
      return Status::ok();
    };
    SARAI_RETURN_IF_ERROR(check(s.scale_tensor, "scale", DType::kFloat32, true));
    SARAI_RETURN_IF_ERROR(check(s.zero_point_tensor, "zero point", DType::kInt8, false));
    SARAI_RETURN_IF_ERROR(check(s.sum_tensor, "sum", DType::kInt32, false));
  }
  return Status::ok();
}

// The tensors finish() adds for one graph: its TENSOR attributes (per
// node, in attribute order) and, for a subgraph, its initializers; and the
// same for each subgraph, by (node, attribute).
struct BlobWriter::GraphTensors {
  std::vector<std::vector<int32_t>> attr_tensor;
  std::vector<int32_t> value_tensor;  // subgraphs only (the caller gives the model graph's)
  std::map<std::pair<size_t, std::string>, std::unique_ptr<GraphTensors>> sub;
};

Status BlobWriter::add_graph_tensors(const Graph& graph, const std::string& prefix, bool sub, GraphTensors* out) {
  out->attr_tensor.resize(graph.nodes.size());
  if (sub) {
    out->value_tensor.assign(graph.values.size(), -1);
    const std::vector<int32_t>* given = nullptr;
    if (subgraphs_) {
      auto it = subgraphs_->find(&graph);
      if (it != subgraphs_->end()) given = &it->second;
    }
    if (given && given->size() != graph.values.size())
      return Status::error(tmp_path() + ": subgraph '" + prefix + "' has " + std::to_string(graph.values.size()) +
                           " values but " + std::to_string(given->size()) + " tensor entries");
    for (size_t v = 0; v < graph.values.size(); ++v) {
      const Value& val = graph.values[v];
      if (given && (*given)[v] != -1) {
        if ((*given)[v] < -1 || (*given)[v] >= static_cast<int32_t>(entries_.size()))
          return Status::error(tmp_path() + ": value '" + prefix + val.name + "' names tensor " +
                               std::to_string((*given)[v]) + " of " + std::to_string(entries_.size()));
        out->value_tensor[v] = (*given)[v];
        continue;
      }
      if (!val.is_initializer) continue;
      TensorSpec spec;
      spec.name = prefix + val.name;
      spec.dtype = val.initializer.dtype();
      spec.dims = val.initializer.shape();
      auto idx = add_tensor(spec, val.initializer.raw(), val.initializer.nbytes());
      if (!idx) return idx.status();
      out->value_tensor[v] = *idx;
    }
  }
  for (size_t ni = 0; ni < graph.nodes.size(); ++ni) {
    const Node& node = graph.nodes[ni];
    for (const auto& [name, a] : node.attrs) {
      if (a.kind == Attribute::Kind::kGraph && a.g) {
        auto child = std::make_unique<GraphTensors>();
        SARAI_RETURN_IF_ERROR(add_graph_tensors(*a.g, prefix + node.name + "." + name + "/", /*sub=*/true, child.get()));
        out->sub[{ni, name}] = std::move(child);
        continue;
      }
      if (a.kind != Attribute::Kind::kTensor) continue;
      if (!a.t.defined())
        return Status::error(node.describe() + ": tensor attribute '" + name + "' has no tensor");
      TensorSpec spec;
      spec.name = prefix + node.name + "." + name;
      spec.dtype = a.t.dtype();
      spec.dims = a.t.shape();
      auto idx = add_tensor(spec, a.t.raw(), a.t.nbytes());
      if (!idx) return idx.status().with_prefix(node.describe() + ": ");
      out->attr_tensor[ni].push_back(*idx);
    }
  }
  return Status::ok();
}

// GRAPH's encoding of one graph (docs/blob-format.md 5.2): the model's
// graph after its opset; a subgraph as a GRAPH attribute's payload, with
// its captures at the end.
Status BlobWriter::write_graph(Stream& g, const Graph& graph, const std::vector<int32_t>& value_tensor,
                               const GraphTensors& tensors, bool sub) {
  g.str(graph.name);
  g.count(graph.values.size());
  for (size_t vi = 0; vi < graph.values.size(); ++vi) {
    const Value& v = graph.values[vi];
    g.str(v.name);
    g.i32(static_cast<int32_t>(v.dtype));
    g.u8(v.has_shape ? 1 : 0);
    if (v.dims.size() > kMaxRank)
      return Status::error(tmp_path() + ": value '" + v.name + "' has rank " + std::to_string(v.dims.size()));
    g.count(v.dims.size());
    for (const Dim& d : v.dims) {
      g.i64(d.is_fixed() ? d.value : -1);
      g.str(d.is_fixed() ? std::string() : d.symbol);
    }
    g.i32(value_tensor[vi]);
  }
  g.count(graph.nodes.size());
  for (size_t ni = 0; ni < graph.nodes.size(); ++ni) {
    const Node& n = graph.nodes[ni];
    g.str(n.name);
    g.str(n.op_type);
    g.str(n.domain);
    g.count(n.inputs.size());
    for (int x : n.inputs) g.i32(x);
    g.count(n.outputs.size());
    for (int x : n.outputs) g.i32(x);
    g.count(n.attrs.size());
    size_t next_attr_tensor = 0;
    for (const auto& [name, a] : n.attrs) {  // std::map: sorted, as the reader rebuilds it
      g.str(name);
      AttrKind k = attr_kind(a.kind);
      g.u8(static_cast<uint8_t>(k));
      switch (k) {
        case AttrKind::kFloat: g.f32(a.f); break;
        case AttrKind::kInt: g.i64(a.i); break;
        case AttrKind::kString: g.str(a.s); break;
        case AttrKind::kTensor: g.i32(tensors.attr_tensor[ni][next_attr_tensor++]); break;
        case AttrKind::kFloats: g.count(a.floats.size()); for (float f : a.floats) g.f32(f); break;
        case AttrKind::kInts: g.count(a.ints.size()); for (int64_t i : a.ints) g.i64(i); break;
        case AttrKind::kStrings: g.count(a.strings.size()); for (const auto& s : a.strings) g.str(s); break;
        case AttrKind::kGraph: {
          g.u8(a.g ? 1 : 0);
          if (!a.g) break;
          const GraphTensors& st = *tensors.sub.at({ni, name});
          SARAI_RETURN_IF_ERROR(write_graph(g, *a.g, st.value_tensor, st, /*sub=*/true));
          break;
        }
      }
    }
    g.count(static_cast<size_t>(n.implicit_inputs));
  }
  g.count(graph.inputs.size());
  for (int x : graph.inputs) g.i32(x);
  g.count(graph.outputs.size());
  for (int x : graph.outputs) g.i32(x);
  if (sub) {
    g.count(graph.captures.size());
    for (int x : graph.captures) g.i32(x);
  }
  return Status::ok();
}

Status BlobWriter::finish(const Graph& graph, const std::vector<int32_t>& value_tensor,
                          const SubgraphTensors* subgraphs) {
  if (done_) return error_ ? Status::error(tmp_path() + ": the blob is already finished") : error_;
  subgraphs_ = subgraphs;
  Status st = [&]() -> Status {
    SARAI_RETURN_IF_ERROR(error_);
    if (value_tensor.size() != graph.values.size())
      return Status::error(tmp_path() + ": value_tensor has " + std::to_string(value_tensor.size()) +
                           " entries for " + std::to_string(graph.values.size()) + " values");
    // Tensor-valued attributes, and the initializers of subgraphs, go to
    // DATA like every other tensor.
    GraphTensors top;
    SARAI_RETURN_IF_ERROR(add_graph_tensors(graph, "", /*sub=*/false, &top));
    SARAI_RETURN_IF_ERROR(check_entries().with_prefix(tmp_path() + ": "));
    const int32_t ntensors = static_cast<int32_t>(entries_.size());
    for (size_t v = 0; v < value_tensor.size(); ++v)
      if (value_tensor[v] < -1 || value_tensor[v] >= ntensors)
        return Status::error(tmp_path() + ": value '" + graph.values[v].name + "' names tensor " +
                             std::to_string(value_tensor[v]) + " of " + std::to_string(ntensors));

    // Zero-pad DATA to 64 bytes: the next section starts there.
    SARAI_RETURN_IF_ERROR(append_zeros(align_up(pos_, kTensorAlignment) - pos_));
    BlobSection data{SectionKind::kData, 0, kDataOffset, pos_ - kDataOffset};
    {
      uint32_t c = 0;
      for (const Entry& e : entries_) c = crc32c(c, &e.crc, 4);
      data.crc32c = c;
    }

    Stream meta;
    meta.count(metadata_.size());
    for (const auto& [k, v] : metadata_) {
      if (too_long(k) || too_long(v)) return Status::error(tmp_path() + ": metadata entry longer than 4 GB");
      meta.str(k);
      meta.str(v);
    }

    Stream g;
    g.i64(graph.opset);
    SARAI_RETURN_IF_ERROR(write_graph(g, graph, value_tensor, top, /*sub=*/false));

    Stream t;
    t.count(entries_.size());
    for (const Entry& e : entries_) {
      const TensorSpec& s = e.spec;
      t.str(s.name);
      t.i32(static_cast<int32_t>(s.dtype));
      t.count(s.dims.size());
      for (int64_t d : s.dims) t.i64(d);
      t.u8(static_cast<uint8_t>(s.layout));
      t.u8(static_cast<uint8_t>(s.scheme));
      t.i32(s.axis);
      t.i32(s.scale_tensor);
      t.i32(s.zero_point_tensor);
      t.i32(s.sum_tensor);
      t.u64(e.offset);
      t.u64(e.size);
      t.u32(e.crc);
    }

    // META, GRAPH, TENSORS after DATA, each at a 64-byte boundary.
    BlobSection sections[4] = {data};
    const Stream* streams[3] = {&meta, &g, &t};
    const SectionKind kinds[3] = {SectionKind::kMeta, SectionKind::kGraph, SectionKind::kTensors};
    for (int i = 0; i < 3; ++i) {
      SARAI_RETURN_IF_ERROR(append_zeros(align_up(pos_, kTensorAlignment) - pos_));
      const std::string& b = streams[i]->bytes();
      sections[i + 1] = BlobSection{kinds[i], crc32c(0, b.data(), b.size()), pos_, b.size()};
      SARAI_RETURN_IF_ERROR(append(b.data(), b.size()));
    }
    SARAI_RETURN_IF_ERROR(flush());
    const uint64_t file_size = pos_;

    // Header and section table, then the header checksum over both.
    uint8_t head[kHeaderSize + 4 * kSectionEntrySize] = {};
    std::memcpy(head + HeaderLayout::kMagicOffset, kMagic, sizeof kMagic);
    put32(head + HeaderLayout::kFormatVersion, kFormatVersion);
    put32(head + HeaderLayout::kHeaderSize, kHeaderSize);
    put64(head + HeaderLayout::kFileSize, file_size);
    put64(head + HeaderLayout::kSectionTableOffset, kHeaderSize);
    put32(head + HeaderLayout::kSectionCount, 4);
    put32(head + HeaderLayout::kWeightLayoutVersion, int8::kWeightLayoutVersion);
    put32(head + HeaderLayout::kFlags, 0);
    for (int i = 0; i < 4; ++i) {
      uint8_t* p = head + kHeaderSize + i * kSectionEntrySize;
      put32(p + 0, static_cast<uint32_t>(sections[i].kind));
      put32(p + 4, sections[i].crc32c);
      put64(p + 8, sections[i].offset);
      put64(p + 16, sections[i].size);
    }
    put32(head + HeaderLayout::kChecksum, crc32c(0, head, sizeof head));
    if (const int err = file_->pwrite_all(head, sizeof head, 0); err != 0) return fail("cannot write the header", err);
    if (const int err = file_->sync_close(); err != 0) return fail("cannot fsync and close", err);
    if (const int err = file_->commit(); err != 0)
      return Status::error(tmp_path() + ": cannot rename to " + file_->final_path() + ": " + std::strerror(err));
    done_ = true;
    return Status::ok();
  }();
  subgraphs_ = nullptr;
  if (!st) {
    if (error_) error_ = st;
    if (!done_) close_and_unlink();
  }
  return st;
}

}  // namespace sarai::blob
