#include "loader/npy.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "runtime/atomic_file.h"
#include "runtime/mapped_file.h"

namespace sarai {
namespace {

struct Descr {
  const char* code;  // without the byte-order character
  DType dtype;
};
constexpr Descr kDescrs[] = {
    {"f4", DType::kFloat32}, {"f2", DType::kFloat16}, {"f8", DType::kFloat64}, {"i8", DType::kInt64},
    {"i4", DType::kInt32},   {"i2", DType::kInt16},   {"i1", DType::kInt8},    {"u1", DType::kUInt8},
    {"u2", DType::kUInt16},  {"u4", DType::kUInt32},  {"u8", DType::kUInt64},  {"b1", DType::kBool},
};

// Finds `'key':` in the header dict and returns the text after the colon.
bool find_key(const std::string& h, const std::string& key, size_t* pos) {
  size_t k = h.find("'" + key + "'");
  if (k == std::string::npos) return false;
  size_t colon = h.find(':', k);
  if (colon == std::string::npos) return false;
  *pos = colon + 1;
  while (*pos < h.size() && h[*pos] == ' ') ++*pos;
  return true;
}


// Sequential reads from a mapped file, bounds-checked.
class Reader {
 public:
  explicit Reader(const MappedFile& f) : p_(f.data()), size_(f.size()) {}
  bool read(void* out, uint64_t n) {
    if (n > size_ - at_) return false;
    if (n) std::memcpy(out, p_ + at_, n);
    at_ += n;
    return true;
  }
  uint64_t remaining() const { return size_ - at_; }

 private:
  const uint8_t* p_;
  uint64_t size_, at_ = 0;
};

}  // namespace

Expected<Tensor> read_npy(const std::string& path) {
  // Mapped, so only a regular file is read (a FIFO is refused, not waited on).
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  Reader in(**file);
  char magic[8];
  if (!in.read(magic, 8) || std::memcmp(magic, "\x93NUMPY", 6) != 0)
    return Status::error(path + ": not a NumPy .npy file (bad magic)");
  const int major = static_cast<unsigned char>(magic[6]);
  uint32_t header_len = 0;
  if (major == 1) {
    unsigned char b[2];
    if (!in.read(reinterpret_cast<char*>(b), 2)) return Status::error(path + ": truncated .npy header");
    header_len = b[0] | (b[1] << 8);
  } else if (major == 2 || major == 3) {
    unsigned char b[4];
    if (!in.read(reinterpret_cast<char*>(b), 4)) return Status::error(path + ": truncated .npy header");
    header_len = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<uint32_t>(b[3]) << 24);
    if (header_len > (1u << 20)) return Status::error(path + ": .npy header of " + std::to_string(header_len) + " bytes is too large");
  } else {
    return Status::error(path + ": .npy format version " + std::to_string(major) + " is not supported");
  }
  std::string h(header_len, '\0');
  if (!in.read(h.data(), header_len)) return Status::error(path + ": truncated .npy header");

  size_t pos;
  if (!find_key(h, "descr", &pos) || pos >= h.size() || (h[pos] != '\'' && h[pos] != '"'))
    return Status::error(path + ": .npy header has no 'descr'");
  size_t end = h.find(h[pos], pos + 1);
  if (end == std::string::npos) return Status::error(path + ": .npy header has a malformed 'descr'");
  std::string descr = h.substr(pos + 1, end - pos - 1);
  if (descr.size() == 3 && descr[0] == '>' && descr.substr(1) != "i1" && descr.substr(1) != "u1" && descr.substr(1) != "b1")
    return Status::error(path + ": big-endian data ('" + descr + "') is not supported");
  std::string code = descr.size() == 3 && (descr[0] == '<' || descr[0] == '|' || descr[0] == '=' || descr[0] == '>')
                         ? descr.substr(1) : descr;
  DType dtype = DType::kUndefined;
  for (const Descr& d : kDescrs)
    if (code == d.code) dtype = d.dtype;
  if (dtype == DType::kUndefined) return Status::error(path + ": dtype '" + descr + "' is not supported");

  if (!find_key(h, "fortran_order", &pos)) return Status::error(path + ": .npy header has no 'fortran_order'");
  if (h.compare(pos, 4, "True") == 0) return Status::error(path + ": Fortran-order arrays are not supported (save with C order)");

  if (!find_key(h, "shape", &pos) || pos >= h.size() || h[pos] != '(')
    return Status::error(path + ": .npy header has no 'shape'");
  size_t close = h.find(')', pos);
  if (close == std::string::npos) return Status::error(path + ": .npy header has a malformed 'shape'");
  Shape shape;
  std::string dims = h.substr(pos + 1, close - pos - 1);
  size_t i = 0;
  while (i < dims.size()) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) ++i;
    if (i >= dims.size()) break;
    size_t j = i;
    while (j < dims.size() && dims[j] >= '0' && dims[j] <= '9') ++j;
    if (j == i || j - i > 18) return Status::error(path + ": .npy header has a malformed 'shape' (" + dims + ")");
    shape.push_back(std::stoll(dims.substr(i, j - i)));
    i = j;
  }
  auto n = checked_numel(shape, dtype_size(dtype));
  if (!n) return Status::error(path + ": " + n.message());
  const uint64_t want = static_cast<uint64_t>(*n) * dtype_size(dtype);

  const uint64_t have = in.remaining();
  if (have < want)
    return Status::error(path + ": truncated: " + std::string(dtype_name(dtype)) + " " + shape_to_string(shape) +
                         " needs " + std::to_string(want) + " bytes of data, the file has " + std::to_string(have));
  Tensor t = Tensor::allocate(dtype, shape);
  if (!in.read(t.mutable_raw(), want)) return Status::error(path + ": read error");
  return t;
}

Status write_npy(const std::string& path, const Tensor& t) {
  const char* code = nullptr;
  for (const Descr& d : kDescrs)
    if (d.dtype == t.dtype()) code = d.code;
  if (!code) return Status::error(path + ": cannot write dtype " + std::string(dtype_name(t.dtype())) + " as .npy");
  std::string descr = std::string(dtype_size(t.dtype()) == 1 ? "|" : "<") + code;
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) shape += std::to_string(t.shape()[i]) + (t.shape().size() == 1 ? "," : (i + 1 < t.shape().size() ? ", " : ""));
  shape += ")";
  std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  size_t padded = (total + 63) / 64 * 64;
  header.append(padded - total, ' ');
  header += '\n';
  // Written whole under a temporary name, then renamed: an interrupted or
  // failed write (a full disk) leaves no partial .npy (runtime/atomic_file.h).
  int err = 0;
  auto out = AtomicFile::create(path + ".tmp-" + std::to_string(::getpid()), path, &err);
  if (!out) return Status::error(ErrorCode::kIo, path + ": cannot create: " + std::strerror(err));
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lenb[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
  if ((err = out->write_all("\x93NUMPY\x01\x00", 8)) != 0 || (err = out->write_all(lenb, 2)) != 0 ||
      (err = out->write_all(header.data(), header.size())) != 0 ||
      (err = out->write_all(t.raw(), static_cast<size_t>(t.nbytes()))) != 0 || (err = out->commit()) != 0)
    return Status::error(ErrorCode::kIo, path + ": write failed: " + std::strerror(err));  // the temp file is removed
  return Status::ok();
}

}  // namespace sarai
