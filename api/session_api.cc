// The public C++ API (include/sarai_rt/sarai_rt.hpp) over the loader and
// the runtime's Session. Inputs are wrapped without a copy; outputs are the
// session's own output tensors, handed over (their storage is shared, not
// copied).
#include "include/sarai_rt/sarai_rt.hpp"

#include <atomic>

#include "kernels/kernels.h"
#include "loader/model_file.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "quantizer/onnx_export.h"
#include "runtime/cpu_isa.h"
#include "runtime/session.h"

namespace sarai_rt {
namespace {

Error make_error(ErrorCategory category, std::string message) { return Error{category, std::move(message)}; }

// The category of an internal error: its code where it has one, else where
// it arose (`fallback`).
Error from_status(const sarai::Status& st, ErrorCategory fallback) {
  switch (st.code()) {
    case sarai::ErrorCode::kIo: return make_error(ErrorCategory::kIo, st.message());
    case sarai::ErrorCode::kUnsupportedOp: return make_error(ErrorCategory::kUnsupportedOp, st.message());
    case sarai::ErrorCode::kBadInput: return make_error(ErrorCategory::kBadInput, st.message());
    case sarai::ErrorCode::kOutOfMemoryBudget: return make_error(ErrorCategory::kOutOfMemoryBudget, st.message());
    case sarai::ErrorCode::kUnspecified: break;
  }
  return make_error(fallback, st.message());
}

bool is_public_dtype(sarai::DType t) {
  switch (t) {
    case sarai::DType::kFloat32: case sarai::DType::kUInt8: case sarai::DType::kInt8: case sarai::DType::kUInt16:
    case sarai::DType::kInt16: case sarai::DType::kInt32: case sarai::DType::kInt64: case sarai::DType::kBool:
    case sarai::DType::kFloat16: case sarai::DType::kFloat64: case sarai::DType::kUInt32: case sarai::DType::kUInt64:
      return true;
    default: return false;
  }
}

TensorInfo info_of(const sarai::Value& v) {
  TensorInfo t;
  t.name = v.name;
  t.dtype = static_cast<DType>(v.dtype);
  for (const sarai::Dim& d : v.dims) {
    t.shape.push_back(d.is_fixed() ? d.value : -1);
    t.symbols.push_back(d.is_fixed() ? std::string() : d.symbol);
  }
  return t;
}

}  // namespace

const char* version() { return "0.1.0"; }

const char* isa_level() { return sarai::isa_name(sarai::max_isa()); }

const char* isa_cap_warning() { return sarai::isa_cap_warning(); }

const char* category_name(ErrorCategory c) {
  switch (c) {
    case ErrorCategory::kInvalidModel: return "invalid model";
    case ErrorCategory::kUnsupportedOp: return "unsupported op";
    case ErrorCategory::kBadInput: return "bad input";
    case ErrorCategory::kOutOfMemoryBudget: return "out of memory budget";
    case ErrorCategory::kIo: return "I/O";
    case ErrorCategory::kInvalidArgument: return "invalid argument";
    case ErrorCategory::kInternal: return "internal";
  }
  return "unknown";
}

const char* dtype_name(DType d) {
  return is_public_dtype(static_cast<sarai::DType>(d)) ? sarai::dtype_name(static_cast<sarai::DType>(d)) : "unknown";
}

size_t dtype_size(DType d) {
  return is_public_dtype(static_cast<sarai::DType>(d)) ? sarai::dtype_size(static_cast<sarai::DType>(d)) : 0;
}

int64_t Tensor::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

struct Session::Impl {
  std::unique_ptr<sarai::Session> session;
  std::vector<TensorInfo> inputs, outputs;
  ModelMetadata metadata;

  // The session on a loaded model: open's and open_memory's common part.
  static Result<Session> create(const std::shared_ptr<sarai::Model>& model, const Options& options);
};

Session::Session(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;
Session::~Session() = default;

namespace {

std::optional<Error> check_options(const std::string& path, const Options& options) {
  if (options.threads < 0 || options.cache_size < 0)
    return make_error(ErrorCategory::kInvalidArgument, path + ": threads and cache_size must be >= 0");
  if (options.max_memory_mb > (uint64_t{1} << 40))
    return make_error(ErrorCategory::kInvalidArgument, path + ": max_memory_mb is larger than 2^40");
  return std::nullopt;
}

}  // namespace

Result<Session> Session::open(const std::string& path, const Options& options) {
  if (auto bad = check_options(path, options)) return *bad;
  // A missing or unreadable file is an I/O error, never a broken model.
  auto model = sarai::open_model_file(path);
  if (!model) return from_status(model.status(), ErrorCategory::kInvalidModel);
  return Impl::create(*model, options);
}

Result<Session> Session::open_memory(const void* data, size_t size, const Options& options, const std::string& name) {
  if (auto bad = check_options(name, options)) return *bad;
  if (data == nullptr && size > 0) return make_error(ErrorCategory::kInvalidArgument, name + ": no data for " + std::to_string(size) + " bytes");
  if (size == 0) return make_error(ErrorCategory::kInvalidModel, name + ": the model is empty (0 bytes)");
  auto model = sarai::open_model_memory(data, size, name);
  if (!model) return from_status(model.status(), ErrorCategory::kInvalidModel);
  return Impl::create(*model, options);
}

Result<Session> Session::Impl::create(const std::shared_ptr<sarai::Model>& model, const Options& options) {
  sarai::KernelTable table;
  sarai::register_kernels(table);
  sarai::SessionOptions so;
  so.num_threads = options.threads;
  so.max_memory_bytes = options.max_memory_mb * 1000000;
  so.cache_size = options.cache_size;
  auto created = sarai::Session::create(model, table, so);
  if (!created) return from_status(created.status(), ErrorCategory::kInvalidModel);
  auto impl = std::make_unique<Impl>();
  impl->session = std::move(*created);
  const sarai::Graph& g = impl->session->graph();
  for (int id : g.inputs) impl->inputs.push_back(info_of(g.values[static_cast<size_t>(id)]));
  for (int id : g.outputs) impl->outputs.push_back(info_of(g.values[static_cast<size_t>(id)]));
  const sarai::ModelDescription& d = model->description;
  ModelMetadata& md = impl->metadata;
  md.producer_name = d.producer_name;
  md.graph_name = model->graph.name;
  md.domain = d.domain;
  md.description = d.doc_string;
  md.graph_description = d.graph_doc_string;
  md.version = d.model_version;
  md.custom = d.props;
  return Session(std::move(impl));
}

const std::vector<TensorInfo>& Session::inputs() const { return impl_->inputs; }
const std::vector<TensorInfo>& Session::outputs() const { return impl_->outputs; }
const ModelMetadata& Session::metadata() const { return impl_->metadata; }

Result<std::vector<Tensor>> Session::run(const std::vector<TensorView>& inputs) {
  if (!impl_) return make_error(ErrorCategory::kInvalidArgument, "run on a moved-from session");
  const std::string& path = impl_->session->model().path;
  std::vector<sarai::NamedTensor> bound;
  for (const TensorView& in : inputs) {
    if (!is_public_dtype(static_cast<sarai::DType>(in.dtype)))
      return make_error(ErrorCategory::kBadInput, path + ": input '" + in.name + "' has an unknown dtype code " +
                                                      std::to_string(static_cast<int>(in.dtype)));
    sarai::Shape shape;
    int64_t n = 1;
    for (int64_t d : in.shape) {
      if (d < 0 || (d > 0 && n > (int64_t{1} << 40) / d))
        return make_error(ErrorCategory::kBadInput, path + ": input '" + in.name + "' has a negative or huge dimension");
      n *= d;
      shape.push_back(d);
    }
    if (in.data == nullptr && n > 0)
      return make_error(ErrorCategory::kBadInput, path + ": input '" + in.name + "' has no data");
    bound.push_back({in.name, sarai::Tensor::wrap(static_cast<sarai::DType>(in.dtype), std::move(shape), in.data,
                                                  nullptr, /*read_only=*/true)});
  }
  auto out = impl_->session->run(bound);
  if (!out) return from_status(out.status(), ErrorCategory::kInternal);
  std::vector<Tensor> result;
  result.reserve(out->size());
  for (sarai::NamedTensor& o : *out) {
    Tensor t;
    t.name_ = o.name;
    t.dtype_ = static_cast<DType>(o.tensor.dtype());
    t.shape_.assign(o.tensor.shape().begin(), o.tensor.shape().end());
    t.data_ = o.tensor.raw();
    t.bytes_ = o.tensor.nbytes();
    t.owner_ = std::make_shared<sarai::Tensor>(std::move(o.tensor));  // keeps the storage alive
    result.push_back(std::move(t));
  }
  return result;
}

CacheCounters Session::cache_counters() const {
  const sarai::CacheStats c = impl_->session->cache_stats();
  return CacheCounters{c.hits, c.misses, c.entries, c.bytes};
}

Result<ConvertSummary> convert(const std::string& src, const std::string& dst, const ConvertOptions& options) {
  ConvertSummary sum;
  sum.format = options.to;
  if (sum.format.empty())
    sum.format = dst.size() >= 5 && dst.compare(dst.size() - 5, 5, ".onnx") == 0 ? "onnx" : "sarai";
  if (sum.format != "sarai" && sum.format != "onnx")
    return make_error(ErrorCategory::kInvalidArgument, dst + ": format '" + sum.format + "' is not sarai or onnx");
  if (options.min_elements < 0)
    return make_error(ErrorCategory::kInvalidArgument, dst + ": min_elements must be >= 0");
  sarai::quant::ConvertOptions o;
  o.per_tensor = options.per_tensor;
  o.keep_fp32 = options.keep_fp32;
  for (const std::string& n : options.keep_fp32_names) o.keep_fp32.push_back(sarai::quant::glob_escape(n));
  o.min_elements = options.min_elements;
  o.attention = options.attention;
  o.recurrent = options.recurrent;
  o.depthwise_activations = options.depthwise_activations;
  o.matmul_activations = options.matmul_activations;
  // Checked for both formats: the ONNX export ignores them (per tensor), but
  // a misspelt value is still an error.
  if (sarai::Status st = sarai::quant::check_activation_schemes(o, dst); !st)
    return make_error(ErrorCategory::kInvalidArgument, st.message());
  sarai::quant::OnnxExportOptions onnx;
  if (sum.format == "onnx") {
    auto w = sarai::quant::parse_onnx_weights(options.onnx_weights);
    if (!w) return make_error(ErrorCategory::kInvalidArgument, dst + ": " + w.message());
    onnx.weights = *w;
    if (options.recurrent != "fp32")
      return make_error(ErrorCategory::kInvalidArgument, dst + ": recurrent '" + options.recurrent +
                                                             "' is for .sarai blobs; the ONNX export keeps fp32");
  }
  // Like open(): a missing or unreadable file is an I/O error.
  auto model = sarai::load_onnx(src);
  if (!model) return from_status(model.status(), ErrorCategory::kInvalidModel);
  std::atomic<bool> stop{false};
  if (options.progress) {
    o.cancel = &stop;
    o.progress = [&](uint64_t done, uint64_t total) {
      if (!stop.load(std::memory_order_relaxed) && !options.progress(done, total)) stop = true;
    };
  }
  // Both converters' summaries have these fields.
  auto summarize = [&](const auto& r) -> Result<ConvertSummary> {
    if (!r) return from_status(r.status(), ErrorCategory::kInvalidArgument);
    sum.quantized = r->quantized;
    sum.kept_fp32 = r->kept_fp32;
    sum.bytes_in = r->bytes_in;
    sum.bytes_out = r->bytes_out;
    sum.seconds = r->seconds;
    return sum;
  };
  if (sum.format == "sarai") return summarize(sarai::quant::convert_to_blob(**model, dst, o));
  return summarize(sarai::quant::export_quantized_onnx(**model, dst, o, onnx));
}

}  // namespace sarai_rt
