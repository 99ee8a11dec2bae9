// Tensors: a dtype, a shape and a pointer into some storage.
//
// A Tensor is a cheap handle: copies share the storage (a heap buffer, a
// memory-mapped file region or protobuf-owned bytes kept alive by an opaque
// owner). Views (Reshape, Squeeze, Identity...) are new handles on the same
// storage with another shape. Storage that comes from a read-only mapping is
// marked read-only; writing through it is a programming error (asserted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/small_vector.h"
#include "runtime/status.h"

namespace sarai {

// Numeric values are ONNX's TensorProto.DataType codes, so they are stable
// and documented elsewhere; the runtime supports the subset below.
enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
};

// Bytes per element; 0 for kUndefined and kString (not storable as raw bytes).
size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "float32", "int64", ...
bool dtype_from_onnx(int32_t code, DType* out);

// Up to 8 dims inline (no heap allocation per shape); see small_vector.h.
using Shape = SmallVector<int64_t, 8>;

std::string shape_to_string(const Shape& s);  // "[1, 80, 3000]"
// Product of the dims; an error when a dim is negative or the product (or
// the byte size for elem_size) overflows int64.
Expected<int64_t> checked_numel(const Shape& s, size_t elem_size = 1);
// Product of the dims (0 for an empty shape's tensor without multiplying
// the others, which may be huge).
inline int64_t numel_of(const Shape& s) {
  for (int64_t d : s)
    if (d == 0) return 0;
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

class Tensor {
 public:
  Tensor() = default;

  // A new zero-filled tensor on the heap, 64-byte aligned. The shape must
  // already be validated (non-negative, no overflow).
  static Tensor allocate(DType dtype, Shape shape);
  // A tensor over memory someone else owns; `owner` keeps it alive.
  static Tensor wrap(DType dtype, Shape shape, const void* data,
                     std::shared_ptr<const void> owner, bool read_only);
  // A deep copy into fresh heap storage.
  Tensor clone() const;
  // The same storage under another shape with the same element count.
  Tensor reshaped(Shape shape) const;

  bool defined() const { return dtype_ != DType::kUndefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[static_cast<size_t>(i)]; }
  int64_t numel() const { return numel_of(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  bool read_only() const { return read_only_; }
  // How many handles share this tensor's storage owner (0 when nothing owns
  // it, e.g. planned arena memory); 1 means this handle is the only one.
  long owner_use_count() const { return owner_.use_count(); }

  const void* raw() const { return data_; }
  void* mutable_raw() {
    assert(!read_only_ && "write to read-only tensor storage");
    return const_cast<void*>(data_);
  }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }
  template <class T> T* mutable_data() { return static_cast<T*>(mutable_raw()); }
  template <class T> std::span<const T> span() const {
    return {data<T>(), static_cast<size_t>(numel())};
  }

  // Reads element i of an integer or float tensor as int64 / double
  // (for shape-carrying inputs such as Reshape's shape or Slice's starts).
  int64_t int_at(int64_t i) const;
  double float_at(int64_t i) const;
  std::vector<int64_t> to_int_vector() const;

 private:
  DType dtype_ = DType::kUndefined;
  Shape shape_;
  std::shared_ptr<const void> owner_;
  const void* data_ = nullptr;
  bool read_only_ = false;
};

// A tensor with the graph value name it binds to (Session::run's inputs and
// outputs).
struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// IEEE half <-> float conversions (round to nearest even).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
// bfloat16 <-> float: exact one way; round to nearest even the other, a NaN
// staying a quiet NaN.
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

}  // namespace sarai
