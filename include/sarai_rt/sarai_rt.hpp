// sarai-rt's public C++ API: open a model (.onnx or .sarai), ask for its
// inputs and outputs, run it. Errors are values (Result<T>) with a category,
// never exceptions. Nothing of the runtime's internals, and no dependency
// (protobuf, oneDNN), appears in this header; link sarai_rt::sarai_rt.
//
//   auto session = sarai_rt::Session::open("model.sarai", {.threads = 2});
//   if (!session) { std::puts(session.error().message.c_str()); return 1; }
//   auto outputs = session->run({{"mel", sarai_rt::DType::kFloat32, {1, 80, 3000}, data}});
//
// One Session serves concurrent run() calls from several threads: each call
// has an activation arena of its own (under max_memory_mb, a call whose
// arena would not fit waits for another to end); weights, plans and the
// result cache are shared. Each call uses `threads` threads, so give it
// cores / concurrent callers. The C API (sarai_rt.h) is built on this one.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#if defined(SARAI_RT_BUILDING)
#define SARAI_RT_API __attribute__((visibility("default")))
#else
#define SARAI_RT_API
#endif

namespace sarai_rt {

// "0.1.0": the library's version (also SARAI_RT_VERSION in sarai_rt.h).
SARAI_RT_API const char* version();

// The instruction-set level the kernels use in this process: "scalar",
// "avx2", "avx2_vnni", "avx512_vnni" or "amx" (the best this CPU has, capped
// by the environment variable SARAI_MAX_ISA).
SARAI_RT_API const char* isa_level();
// Why SARAI_MAX_ISA was ignored (a value that is not a level), or nullptr.
// The library never prints it; show it to whoever set the variable.
SARAI_RT_API const char* isa_cap_warning();

enum class ErrorCategory : int {
  kInvalidModel = 1,      // the file is not a model we can read, or its graph is broken
  kUnsupportedOp = 2,     // the model uses an op this runtime lacks
  kBadInput = 3,          // an input's name, dtype, rank, shape or data does not fit
  kOutOfMemoryBudget = 4, // max_memory_mb cannot hold the run
  kIo = 5,                // a file cannot be opened, read or mapped
  kInvalidArgument = 6,   // a misuse of the API itself (bad option, closed session)
  kInternal = 7,          // a failure inside a kernel that none of the above explains
};
// "invalid model", "unsupported op", "bad input", "out of memory budget", "I/O",
// "invalid argument", "internal".
SARAI_RT_API const char* category_name(ErrorCategory category);

struct Error {
  ErrorCategory category = ErrorCategory::kInternal;
  std::string message;  // one line naming the file, input or node
};

template <class T>
class Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Element types, numbered as ONNX's TensorProto numbers them.
enum class DType : int32_t {
  kFloat32 = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7,
  kBool = 9, kFloat16 = 10, kFloat64 = 11, kUInt32 = 12, kUInt64 = 13,
};
SARAI_RT_API const char* dtype_name(DType dtype);  // "float32", "int64", ...
SARAI_RT_API size_t dtype_size(DType dtype);       // bytes per element

// A declared input or output. shape[i] is -1 where the model leaves the
// dimension open; symbols[i] then holds its name (possibly empty).
struct TensorInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<std::string> symbols;
};

// An input, borrowed: `data` must hold the product of `shape` elements of
// `dtype`, C-contiguous, and stay valid during run(). It is not copied.
struct TensorView {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

// An output: owned memory, 64-byte aligned, C-contiguous.
class SARAI_RT_API Tensor {
 public:
  Tensor() = default;
  const std::string& name() const { return name_; }
  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const void* data() const { return data_; }
  template <class T> const T* data_as() const { return static_cast<const T*>(data_); }
  size_t size_bytes() const { return bytes_; }
  int64_t element_count() const;

 private:
  friend class Session;
  std::string name_;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  const void* data_ = nullptr;
  size_t bytes_ = 0;
  std::shared_ptr<const void> owner_;
};

struct Options {
  int threads = 0;             // 0: one per physical core
  uint64_t max_memory_mb = 0;  // a budget for the whole process (0: none); weights stream when needed
  int cache_size = 0;          // result cache entries (0: off): identical inputs return the stored outputs
};

// The model's own description, as ONNX Runtime's ModelMetadata reports it:
// for a .sarai blob, that of the ONNX model it was converted from.
struct ModelMetadata {
  std::string producer_name;      // e.g. "pytorch"
  std::string graph_name;
  std::string domain;
  std::string description;        // the model's doc_string
  std::string graph_description;  // the graph's doc_string
  int64_t version = 0;            // model_version
  std::vector<std::pair<std::string, std::string>> custom;  // metadata_props, in file order
};

struct CacheCounters {
  uint64_t hits = 0, misses = 0, entries = 0, bytes = 0;
};

class SARAI_RT_API Session {
 public:
  // Opens a model: an ONNX file (with its external data) or a .sarai blob,
  // memory-mapped; checks that every op is supported.
  static Result<Session> open(const std::string& path, const Options& options = {});
  // The same from a model's bytes in memory (ONNX Runtime's
  // CreateSessionFromArray): the bytes are copied (the caller may free them
  // once this returns) into an in-memory file that stays resident while the
  // session lives, so max_memory_mb cannot page its weights out as it does
  // a file's. `name` stands for the path in errors. An ONNX model's external
  // data resolves against the working directory, as in ONNX Runtime.
  static Result<Session> open_memory(const void* data, size_t size, const Options& options = {},
                                     const std::string& name = "<memory>");

  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  ~Session();

  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  const ModelMetadata& metadata() const;
  // Runs the model on every declared input (any order) and returns every
  // output, in declaration order.
  Result<std::vector<Tensor>> run(const std::vector<TensorView>& inputs);
  CacheCounters cache_counters() const;

 private:
  struct Impl;
  explicit Session(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Converting an ONNX model (`sarai-rt convert`, without its accuracy
// check): weights per output channel to INT8, streamed in bounded memory,
// into a .sarai blob, or (to = "onnx") a quantized ONNX model for ONNX
// Runtime (MatMulInteger / ConvInteger, weights in dst + ".data"). The
// output appears whole or not at all (written to a temporary file and
// renamed); the source is never written.
struct ConvertOptions {
  std::string to;                      // "sarai" or "onnx"; empty: "onnx" when dst ends in .onnx, else "sarai"
  bool per_tensor = false;             // one scale per weight instead of per output channel
  std::vector<std::string> keep_fp32;  // weights left in FP32: node names, weight names or globs
  std::vector<std::string> keep_fp32_names;  // the same by exact name (no glob characters read)
  int64_t min_elements = 0;            // weights with fewer elements stay FP32
  std::string attention = "int8";      // blob: "int8", "int8-per-tensor" or "fp32" (fused attention blocks)
  std::string recurrent = "fp32";      // blob: "fp32" or "int8" (LSTM / GRU / RNN gate GEMMs)
  // blob: how X is quantized at run time (`sarai-rt convert --help`); the
  // ONNX export is per tensor either way.
  std::string depthwise_activations = "per-channel";  // depthwise convs: "per-channel" or "per-tensor"
  std::string matmul_activations = "per-row";         // MatMul / Gemm: "per-row" or "per-tensor"
  std::string onnx_weights = "u8";     // to "onnx": "u8", "s8" or "s7" (see `sarai-rt convert --help`)
  // Called on the converting thread after each tensor and within big ones
  // (about every 8 MB) with the bytes done and in all; returning false
  // stops the conversion: nothing is written and convert() fails with
  // kInvalidArgument, "interrupted".
  std::function<bool(uint64_t done_bytes, uint64_t total_bytes)> progress;
};
struct ConvertSummary {
  std::string format;      // "sarai" or "onnx"
  int quantized = 0;       // weights stored as INT8
  int kept_fp32 = 0;       // MatMul / Gemm / Conv / ConvTranspose weights left in FP32
  uint64_t bytes_in = 0;   // the source: .onnx plus its external data
  uint64_t bytes_out = 0;  // what was written
  double seconds = 0;
};
SARAI_RT_API Result<ConvertSummary> convert(const std::string& src, const std::string& dst,
                                            const ConvertOptions& options = {});

}  // namespace sarai_rt
