// The C API (include/sarai_rt/sarai_rt.h) over the C++ API: handles are the
// C++ objects behind opaque structs, errors are sarai_rt_status objects, and
// nothing throws across the boundary (an allocation failure inside is
// caught and reported as SARAI_RT_INTERNAL).
#include "include/sarai_rt/sarai_rt.h"

#include <new>
#include <string>
#include <utility>
#include <vector>

#include "include/sarai_rt/sarai_rt.hpp"

struct sarai_rt_status {
  sarai_rt_code code;
  std::string message;
};

struct sarai_rt_session {
  sarai_rt::Session session;
};

struct sarai_rt_outputs {
  std::vector<sarai_rt::Tensor> tensors;
};

namespace {

// Returned when a status itself cannot be allocated: never NULL, which would
// read as success; sarai_rt_status_free leaves it alone.
sarai_rt_status g_out_of_memory{SARAI_RT_INTERNAL, "sarai-rt: out of memory"};

sarai_rt_status* make_status(sarai_rt_code code, std::string message) {
  sarai_rt_status* s = new (std::nothrow) sarai_rt_status{code, std::move(message)};
  return s ? s : &g_out_of_memory;
}

sarai_rt_status* from_error(const sarai_rt::Error& e) {
  return make_status(static_cast<sarai_rt_code>(e.category), e.message);
}

sarai_rt_status* null_argument(const char* function, const char* what) {
  return make_status(SARAI_RT_INVALID_ARGUMENT, std::string(function) + ": " + what + " is NULL");
}

// Runs `body` and turns an escaping exception (std::bad_alloc, in practice)
// into a status.
template <class F>
sarai_rt_status* guarded(const char* function, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    return make_status(SARAI_RT_INTERNAL, std::string(function) + ": " + e.what());
  } catch (...) {
    return make_status(SARAI_RT_INTERNAL, std::string(function) + ": unknown failure");
  }
}

sarai_rt_status* tensor_info(const std::vector<sarai_rt::TensorInfo>& list, const char* function, size_t index,
                             const char** name, sarai_rt_dtype* dtype, size_t* rank, const int64_t** dims) {
  if (index >= list.size())
    return make_status(SARAI_RT_INVALID_ARGUMENT, std::string(function) + ": index " + std::to_string(index) +
                                                      " is out of range (" + std::to_string(list.size()) + ")");
  const sarai_rt::TensorInfo& t = list[index];
  if (name) *name = t.name.c_str();
  if (dtype) *dtype = static_cast<sarai_rt_dtype>(t.dtype);
  if (rank) *rank = t.shape.size();
  if (dims) *dims = t.shape.data();
  return nullptr;
}

}  // namespace

extern "C" {

const char* sarai_rt_version(void) { return sarai_rt::version(); }
const char* sarai_rt_isa_level(void) { return sarai_rt::isa_level(); }
const char* sarai_rt_isa_cap_warning(void) { return sarai_rt::isa_cap_warning(); }

sarai_rt_code sarai_rt_status_code(const sarai_rt_status* status) { return status ? status->code : SARAI_RT_OK; }

const char* sarai_rt_status_message(const sarai_rt_status* status) {
  return status ? status->message.c_str() : "";
}

void sarai_rt_status_free(sarai_rt_status* status) {
  if (status != &g_out_of_memory) delete status;
}

const char* sarai_rt_dtype_name(sarai_rt_dtype dtype) {
  return sarai_rt::dtype_name(static_cast<sarai_rt::DType>(dtype));
}

size_t sarai_rt_dtype_size(sarai_rt_dtype dtype) { return sarai_rt::dtype_size(static_cast<sarai_rt::DType>(dtype)); }

namespace {

sarai_rt::Options options_of(const sarai_rt_options* options) {
  sarai_rt::Options o;
  if (options) {
    o.threads = options->threads;
    o.max_memory_mb = options->max_memory_mb;
    o.cache_size = options->cache_size;
  }
  return o;
}

}  // namespace

sarai_rt_status* sarai_rt_session_open(const char* path, const sarai_rt_options* options, sarai_rt_session** out) {
  if (path == nullptr) return null_argument("sarai_rt_session_open", "path");
  if (out == nullptr) return null_argument("sarai_rt_session_open", "out");
  *out = nullptr;
  return guarded("sarai_rt_session_open", [&]() -> sarai_rt_status* {
    auto session = sarai_rt::Session::open(path, options_of(options));
    if (!session) return from_error(session.error());
    *out = new sarai_rt_session{std::move(*session)};
    return nullptr;
  });
}

sarai_rt_status* sarai_rt_session_open_memory(const void* data, size_t size, const sarai_rt_options* options,
                                              sarai_rt_session** out) {
  if (data == nullptr && size > 0) return null_argument("sarai_rt_session_open_memory", "data");
  if (out == nullptr) return null_argument("sarai_rt_session_open_memory", "out");
  *out = nullptr;
  return guarded("sarai_rt_session_open_memory", [&]() -> sarai_rt_status* {
    auto session = sarai_rt::Session::open_memory(data, size, options_of(options));
    if (!session) return from_error(session.error());
    *out = new sarai_rt_session{std::move(*session)};
    return nullptr;
  });
}

void sarai_rt_session_close(sarai_rt_session* session) { delete session; }

sarai_rt_status* sarai_rt_convert(const char* src, const char* dst, const sarai_rt_convert_options* options,
                                  int* quantized, int* kept_fp32) {
  if (src == nullptr) return null_argument("sarai_rt_convert", "src");
  if (dst == nullptr) return null_argument("sarai_rt_convert", "dst");
  if (options && options->keep_fp32 == nullptr && options->keep_fp32_count > 0)
    return null_argument("sarai_rt_convert", "options->keep_fp32");
  return guarded("sarai_rt_convert", [&]() -> sarai_rt_status* {
    sarai_rt::ConvertOptions o;
    if (options) {
      if (options->to) o.to = options->to;
      o.per_tensor = options->per_tensor != 0;
      for (size_t i = 0; i < options->keep_fp32_count; ++i) {
        if (options->keep_fp32[i] == nullptr)
          return make_status(SARAI_RT_INVALID_ARGUMENT,
                             "sarai_rt_convert: options->keep_fp32[" + std::to_string(i) + "] is NULL");
        o.keep_fp32.push_back(options->keep_fp32[i]);
      }
      o.min_elements = options->min_elements;
      if (options->attention) o.attention = options->attention;
      if (options->recurrent) o.recurrent = options->recurrent;
      if (options->onnx_weights) o.onnx_weights = options->onnx_weights;
      if (options->depthwise_activations) o.depthwise_activations = options->depthwise_activations;
      if (options->matmul_activations) o.matmul_activations = options->matmul_activations;
    }
    auto r = sarai_rt::convert(src, dst, o);
    if (!r) return from_error(r.error());
    if (quantized) *quantized = r->quantized;
    if (kept_fp32) *kept_fp32 = r->kept_fp32;
    return nullptr;
  });
}

sarai_rt_status* sarai_rt_session_input_count(const sarai_rt_session* session, size_t* count) {
  if (session == nullptr) return null_argument("sarai_rt_session_input_count", "session");
  if (count == nullptr) return null_argument("sarai_rt_session_input_count", "count");
  *count = session->session.inputs().size();
  return nullptr;
}

sarai_rt_status* sarai_rt_session_output_count(const sarai_rt_session* session, size_t* count) {
  if (session == nullptr) return null_argument("sarai_rt_session_output_count", "session");
  if (count == nullptr) return null_argument("sarai_rt_session_output_count", "count");
  *count = session->session.outputs().size();
  return nullptr;
}

sarai_rt_status* sarai_rt_session_input_info(const sarai_rt_session* session, size_t index, const char** name,
                                             sarai_rt_dtype* dtype, size_t* rank, const int64_t** dims) {
  if (session == nullptr) return null_argument("sarai_rt_session_input_info", "session");
  return tensor_info(session->session.inputs(), "sarai_rt_session_input_info", index, name, dtype, rank, dims);
}

sarai_rt_status* sarai_rt_session_output_info(const sarai_rt_session* session, size_t index, const char** name,
                                              sarai_rt_dtype* dtype, size_t* rank, const int64_t** dims) {
  if (session == nullptr) return null_argument("sarai_rt_session_output_info", "session");
  return tensor_info(session->session.outputs(), "sarai_rt_session_output_info", index, name, dtype, rank, dims);
}

sarai_rt_status* sarai_rt_session_metadata(const sarai_rt_session* session, const char** producer_name,
                                           const char** graph_name, const char** domain, const char** description,
                                           const char** graph_description, int64_t* version) {
  if (session == nullptr) return null_argument("sarai_rt_session_metadata", "session");
  const sarai_rt::ModelMetadata& m = session->session.metadata();
  if (producer_name) *producer_name = m.producer_name.c_str();
  if (graph_name) *graph_name = m.graph_name.c_str();
  if (domain) *domain = m.domain.c_str();
  if (description) *description = m.description.c_str();
  if (graph_description) *graph_description = m.graph_description.c_str();
  if (version) *version = m.version;
  return nullptr;
}

sarai_rt_status* sarai_rt_session_custom_metadata_count(const sarai_rt_session* session, size_t* count) {
  if (session == nullptr) return null_argument("sarai_rt_session_custom_metadata_count", "session");
  if (count == nullptr) return null_argument("sarai_rt_session_custom_metadata_count", "count");
  *count = session->session.metadata().custom.size();
  return nullptr;
}

sarai_rt_status* sarai_rt_session_custom_metadata(const sarai_rt_session* session, size_t index, const char** key,
                                                  const char** value) {
  if (session == nullptr) return null_argument("sarai_rt_session_custom_metadata", "session");
  const auto& custom = session->session.metadata().custom;
  if (index >= custom.size())
    return make_status(SARAI_RT_INVALID_ARGUMENT, "sarai_rt_session_custom_metadata: index " + std::to_string(index) +
                                                      " is out of range (" + std::to_string(custom.size()) + ")");
  if (key) *key = custom[index].first.c_str();
  if (value) *value = custom[index].second.c_str();
  return nullptr;
}

sarai_rt_status* sarai_rt_session_run(sarai_rt_session* session, const sarai_rt_tensor* inputs, size_t count,
                                      sarai_rt_outputs** outputs) {
  if (session == nullptr) return null_argument("sarai_rt_session_run", "session");
  if (outputs == nullptr) return null_argument("sarai_rt_session_run", "outputs");
  if (inputs == nullptr && count > 0) return null_argument("sarai_rt_session_run", "inputs");
  *outputs = nullptr;
  return guarded("sarai_rt_session_run", [&]() -> sarai_rt_status* {
    std::vector<sarai_rt::TensorView> views;
    views.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      const sarai_rt_tensor& t = inputs[i];
      if (t.name == nullptr)
        return make_status(SARAI_RT_BAD_INPUT, "sarai_rt_session_run: input " + std::to_string(i) + " has no name");
      if (t.dims == nullptr && t.rank > 0)
        return make_status(SARAI_RT_BAD_INPUT, std::string("sarai_rt_session_run: input '") + t.name +
                                                   "' has rank " + std::to_string(t.rank) + " but no dims");
      views.push_back({t.name, static_cast<sarai_rt::DType>(t.dtype), std::vector<int64_t>(t.dims, t.dims + t.rank),
                       t.data});
    }
    auto result = session->session.run(views);
    if (!result) return from_error(result.error());
    *outputs = new sarai_rt_outputs{std::move(*result)};
    return nullptr;
  });
}

sarai_rt_status* sarai_rt_outputs_count(const sarai_rt_outputs* outputs, size_t* count) {
  if (outputs == nullptr) return null_argument("sarai_rt_outputs_count", "outputs");
  if (count == nullptr) return null_argument("sarai_rt_outputs_count", "count");
  *count = outputs->tensors.size();
  return nullptr;
}

sarai_rt_status* sarai_rt_outputs_get(const sarai_rt_outputs* outputs, size_t index, sarai_rt_tensor* tensor) {
  if (outputs == nullptr) return null_argument("sarai_rt_outputs_get", "outputs");
  if (tensor == nullptr) return null_argument("sarai_rt_outputs_get", "tensor");
  if (index >= outputs->tensors.size())
    return make_status(SARAI_RT_INVALID_ARGUMENT, "sarai_rt_outputs_get: index " + std::to_string(index) +
                                                      " is out of range (" +
                                                      std::to_string(outputs->tensors.size()) + ")");
  const sarai_rt::Tensor& t = outputs->tensors[index];
  tensor->name = t.name().c_str();
  tensor->dtype = static_cast<sarai_rt_dtype>(t.dtype());
  tensor->rank = t.shape().size();
  tensor->dims = t.shape().data();
  tensor->data = t.data();
  return nullptr;
}

void sarai_rt_outputs_free(sarai_rt_outputs* outputs) { delete outputs; }

sarai_rt_status* sarai_rt_session_cache_counters(const sarai_rt_session* session, uint64_t* hits, uint64_t* misses,
                                                 uint64_t* bytes) {
  if (session == nullptr) return null_argument("sarai_rt_session_cache_counters", "session");
  const sarai_rt::CacheCounters c = session->session.cache_counters();
  if (hits) *hits = c.hits;
  if (misses) *misses = c.misses;
  if (bytes) *bytes = c.bytes;
  return nullptr;
}

}  // extern "C"
