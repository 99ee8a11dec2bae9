// The Python module `sarai_rt`: ONNX Runtime's InferenceSession surface over
// the public C++ API (include/sarai_rt/sarai_rt.hpp), so that code written
// for onnxruntime changes one import.
//
//   sess = sarai_rt.InferenceSession("model.sarai", threads=2)
//   [y] = sess.run(None, {"mel": mel})        # numpy in, numpy out
//
// Inputs: a NumPy array of the declared dtype that is C-contiguous, aligned
// and in native byte order is read in place; any other array of that dtype
// (a slice, a transpose, a byte-swapped array) is copied first; an array of
// another dtype is a BadInput error, as in ONNX Runtime (never a silent
// conversion). Python scalars and lists are converted to the declared dtype.
// Outputs: NumPy arrays over the runtime's own output buffers (no copy),
// freed when the last array referring to them goes.
//
// The GIL is released while a model runs. One session serves concurrent
// run() calls from several Python threads (runtime/session.h); close()
// waits for the calls in flight. Errors are exceptions whose class follows
// the API's ErrorCategory (sarai_rt.Error and subclasses).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "sarai_rt/sarai_rt.hpp"

namespace py = pybind11;

namespace {

// The exception classes, one per ErrorCategory, created at import.
struct Exceptions {
  py::object base, invalid_model, unsupported_op, bad_input, out_of_memory_budget, io, invalid_argument, internal;
};
Exceptions* g_exceptions = nullptr;

py::object new_exception(py::module_& m, const char* name, py::tuple bases, const char* doc) {
  const std::string qualified = std::string("sarai_rt.") + name;
  py::object cls = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(qualified.c_str(), doc, bases.ptr(), nullptr));
  if (!cls) throw py::error_already_set();
  m.attr(name) = cls;
  return cls;
}

[[noreturn]] void raise(const sarai_rt::Error& e) {
  const Exceptions& x = *g_exceptions;
  const py::object* cls = &x.internal;
  switch (e.category) {
    case sarai_rt::ErrorCategory::kInvalidModel: cls = &x.invalid_model; break;
    case sarai_rt::ErrorCategory::kUnsupportedOp: cls = &x.unsupported_op; break;
    case sarai_rt::ErrorCategory::kBadInput: cls = &x.bad_input; break;
    case sarai_rt::ErrorCategory::kOutOfMemoryBudget: cls = &x.out_of_memory_budget; break;
    case sarai_rt::ErrorCategory::kIo: cls = &x.io; break;
    case sarai_rt::ErrorCategory::kInvalidArgument: cls = &x.invalid_argument; break;
    case sarai_rt::ErrorCategory::kInternal: break;
  }
  PyErr_SetString(cls->ptr(), e.message.c_str());
  throw py::error_already_set();
}

[[noreturn]] void raise(sarai_rt::ErrorCategory category, const std::string& message) {
  raise(sarai_rt::Error{category, message});
}

// ONNX Runtime's type strings ("tensor(float)", ...).
const char* onnx_type_string(sarai_rt::DType d) {
  using D = sarai_rt::DType;
  switch (d) {
    case D::kFloat32: return "tensor(float)";
    case D::kUInt8: return "tensor(uint8)";
    case D::kInt8: return "tensor(int8)";
    case D::kUInt16: return "tensor(uint16)";
    case D::kInt16: return "tensor(int16)";
    case D::kInt32: return "tensor(int32)";
    case D::kInt64: return "tensor(int64)";
    case D::kBool: return "tensor(bool)";
    case D::kFloat16: return "tensor(float16)";
    case D::kFloat64: return "tensor(double)";
    case D::kUInt32: return "tensor(uint32)";
    case D::kUInt64: return "tensor(uint64)";
  }
  return "tensor(undefined)";
}

// The NumPy dtype of `d`, or nullopt for an element type NumPy lacks: the
// API's dtype names ("float32", "bool", ...) are NumPy's.
std::optional<py::dtype> numpy_dtype(sarai_rt::DType d) {
  const char* name = sarai_rt::dtype_name(d);
  if (std::string_view(name) == "unknown") return std::nullopt;
  return py::dtype(name);
}

// ONNX Runtime's NodeArg: name, shape (ints, symbol strings, None for an
// unnamed open dim), type.
struct NodeArg {
  std::string name;
  py::list shape;
  std::string type;
};

NodeArg node_arg(const sarai_rt::TensorInfo& t) {
  NodeArg a;
  a.name = t.name;
  for (size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] >= 0)
      a.shape.append(t.shape[i]);
    else if (!t.symbols[i].empty())
      a.shape.append(t.symbols[i]);
    else
      a.shape.append(py::none());
  }
  a.type = onnx_type_string(t.dtype);
  return a;
}

// ONNX Runtime's SessionOptions, RunOptions and their enums, so that code
// written for onnxruntime sets them unchanged. sarai-rt honours
// intra_op_num_threads; the settings that only tune ONNX Runtime's own
// machinery (graph optimisation, arenas, memory patterns, inter-op threads,
// execution mode and order, logging, determinism: sarai-rt's results are
// already the same for every thread count) are kept and have no effect.
// Settings whose effect a caller would look for (a profile file, an
// optimised model written to disk, custom-op libraries) are refused when
// the session opens, naming the setting.
enum class QuantType { kQInt8 = 0, kQUInt8 = 1 };  // onnxruntime.quantization.QuantType's values
enum class GraphOptimizationLevel { kDisableAll = 0, kEnableBasic = 1, kEnableExtended = 2, kEnableAll = 99 };
enum class ExecutionMode { kSequential = 0, kParallel = 1 };
enum class ExecutionOrder { kDefault = 0, kPriorityBased = 1, kMemoryEfficient = 2 };

// ONNX Runtime's ModelMetadata.
struct ModelMetadata {
  std::string producer_name, graph_name, domain, description, graph_description;
  int64_t version = 0;
  py::dict custom_metadata_map;
};

struct SessionOptions {
  int intra_op_num_threads = 0;  // 0: one per physical core
  int inter_op_num_threads = 0;
  GraphOptimizationLevel graph_optimization_level = GraphOptimizationLevel::kEnableAll;
  ExecutionMode execution_mode = ExecutionMode::kSequential;
  ExecutionOrder execution_order = ExecutionOrder::kDefault;
  int log_severity_level = 2, log_verbosity_level = 0;
  std::string logid, optimized_model_filepath, profile_file_prefix = "onnxruntime_profile_";
  bool enable_cpu_mem_arena = true, enable_mem_pattern = true, enable_mem_reuse = true;
  bool enable_profiling = false, use_deterministic_compute = false;
  std::map<std::string, std::string> config;
  std::vector<std::string> custom_op_libraries;
};

// get_session_config_entry / get_run_config_entry: the value, or an error
// naming the missing key.
std::string config_entry(const std::map<std::string, std::string>& config, const char* owner, const std::string& key) {
  auto it = config.find(key);
  if (it == config.end()) raise(sarai_rt::ErrorCategory::kInvalidArgument, std::string(owner) + ": no config entry '" + key + "'");
  return it->second;
}

struct RunOptions {
  int log_severity_level = 2, log_verbosity_level = 0;
  std::string logid, run_tag;
  bool terminate = false, only_execute_path_to_fetches = false;
  std::map<std::string, std::string> config;
};

class InferenceSession {
 public:
  InferenceSession(const py::object& path_like, const py::object& sess_options, const py::object& providers,
                   const py::object& provider_options, std::optional<int> threads, std::optional<uint64_t> max_memory_mb,
                   int cache_size, const py::object& /*disabled_optimizers: no effect*/) {
    // A str or any os.PathLike, or, as ONNX Runtime takes too, the model's
    // bytes (bytes, bytearray or memoryview; copied, see
    // Session::open_memory), named "<bytes>" in errors.
    py::object model_bytes;
    if (py::isinstance<py::bytes>(path_like)) {
      model_bytes = path_like;
    } else if (py::isinstance<py::bytearray>(path_like) || py::isinstance<py::memoryview>(path_like)) {
      model_bytes = py::module_::import("builtins").attr("bytes")(path_like);  // immutable while the GIL is released
    }
    path_ = model_bytes ? std::string("<bytes>") : py::module_::import("os").attr("fspath")(path_like).cast<std::string>();
    const std::string& path = path_;
    sarai_rt::Options o;
    o.threads = threads.value_or(0);
    o.max_memory_mb = max_memory_mb.value_or(0);
    o.cache_size = cache_size;
    // ONNX Runtime's arguments, so existing calls keep working: the CPU
    // provider is the only one, and SessionOptions.intra_op_num_threads
    // gives the thread count when `threads` does not. Another provider's
    // name is dropped with a warning, as ONNX Runtime drops the providers
    // its build lacks (an application that lists CUDA first still runs);
    // what is not a provider name at all is an error.
    if (!providers.is_none()) {
      for (py::handle p : providers) {
        py::object name = py::isinstance<py::tuple>(p) ? py::reinterpret_borrow<py::tuple>(p)[0] : py::reinterpret_borrow<py::object>(p);
        if (!py::isinstance<py::str>(name))
          raise(sarai_rt::ErrorCategory::kInvalidArgument,
                path + ": provider " + py::repr(name).cast<std::string>() + " is not a provider name");
        if (name.cast<std::string>() != "CPUExecutionProvider")
          py::module_::import("warnings").attr("warn")(
              "sarai_rt: " + path + ": provider '" + name.cast<std::string>() +
                  "' is not available (sarai-rt has only 'CPUExecutionProvider'); it runs on the CPU",
              py::module_::import("builtins").attr("RuntimeWarning"));
      }
    }
    if (!providers.is_none() && !provider_options.is_none() && py::len(provider_options) != py::len(providers))
      raise(sarai_rt::ErrorCategory::kInvalidArgument,
            path + ": provider_options has " + std::to_string(py::len(provider_options)) + " entries for " +
                std::to_string(py::len(providers)) + " providers (one dict per provider)");
    if (py::isinstance<SessionOptions>(sess_options)) {
      options_ = sess_options.cast<SessionOptions>();
      const SessionOptions& so = options_;
      auto refuse = [&](const std::string& what) {
        raise(sarai_rt::ErrorCategory::kInvalidArgument, path + ": sess_options." + what + " is not supported by sarai-rt");
      };
      if (so.enable_profiling) refuse("enable_profiling (per-node times: `sarai-rt run MODEL --profile`)");
      if (!so.optimized_model_filepath.empty()) refuse("optimized_model_filepath (sarai-rt writes no optimised model)");
      if (!so.custom_op_libraries.empty())
        refuse("register_custom_ops_library('" + so.custom_op_libraries.front() + "') (no custom-op libraries)");
    } else if (!sess_options.is_none() && py::hasattr(sess_options, "intra_op_num_threads")) {
      // Another object that looks like ONNX Runtime's (e.g. onnxruntime's own).
      options_.intra_op_num_threads = sess_options.attr("intra_op_num_threads").cast<int>();
    } else if (!sess_options.is_none()) {
      throw py::type_error(path + ": sess_options must be a sarai_rt.SessionOptions, got " +
                           py::repr(sess_options).cast<std::string>());
    }
    if (!threads) o.threads = options_.intra_op_num_threads;
    std::optional<sarai_rt::Result<sarai_rt::Session>> opened;
    std::string_view b;  // the bytes object's own buffer, kept alive by model_bytes
    if (model_bytes) b = model_bytes.cast<py::bytes>();
    {
      py::gil_scoped_release nogil;
      if (model_bytes) {
        opened.emplace(sarai_rt::Session::open_memory(b.data(), b.size(), o, path));
      } else {
        opened.emplace(sarai_rt::Session::open(path, o));
      }
    }
    if (!*opened) raise(opened->error());
    session_.emplace(std::move(opened->value()));
    for (const auto& t : session_->inputs()) inputs_.push_back(node_arg(t));
    for (const auto& t : session_->outputs()) outputs_.push_back(node_arg(t));
  }

  const std::vector<NodeArg>& get_inputs() const { return inputs_; }
  const std::vector<NodeArg>& get_outputs() const { return outputs_; }
  py::list get_providers() const { return py::cast(std::vector<std::string>{"CPUExecutionProvider"}); }
  py::dict get_provider_options() const {
    py::dict d;
    d["CPUExecutionProvider"] = py::dict();
    return d;
  }
  const SessionOptions& get_session_options() const { return options_; }
  ModelMetadata get_modelmeta() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    if (!session_) raise(sarai_rt::ErrorCategory::kInvalidArgument, path_ + ": get_modelmeta on a closed session");
    const sarai_rt::ModelMetadata& m = session_->metadata();
    ModelMetadata r{m.producer_name, m.graph_name, m.domain, m.description, m.graph_description, m.version, py::dict()};
    for (const auto& [k, v] : m.custom) r.custom_metadata_map[py::str(k)] = py::str(v);
    return r;
  }

  py::list run(const py::object& output_names, const py::dict& input_feed, const py::object& run_options) {
    std::shared_lock<std::shared_mutex> lock(mutex_, std::defer_lock);
    {
      py::gil_scoped_release nogil;  // close() may hold the lock while it waits for other runs
      lock.lock();
    }
    if (!session_) raise(sarai_rt::ErrorCategory::kInvalidArgument, path_ + ": run on a closed session");
    // RunOptions.terminate set before the call: no run, as in ONNX Runtime
    // (a run already going is not interrupted).
    if (py::isinstance<RunOptions>(run_options) && run_options.cast<const RunOptions&>().terminate)
      raise(sarai_rt::ErrorCategory::kInvalidArgument, path_ + ": run_options.terminate is set: the run was not started");

    // Which outputs, in the caller's order.
    const std::vector<sarai_rt::TensorInfo>& outs = session_->outputs();
    std::vector<size_t> picked;
    if (output_names.is_none()) {
      for (size_t i = 0; i < outs.size(); ++i) picked.push_back(i);
    } else {
      for (py::handle h : output_names) {
        if (!py::isinstance<py::str>(h)) throw py::type_error(path_ + ": output names must be strings, got " + py::repr(h).cast<std::string>());
        const std::string name = h.cast<std::string>();
        size_t i = 0;
        while (i < outs.size() && outs[i].name != name) ++i;
        if (i == outs.size()) {
          std::string all;
          for (const auto& o : outs) all += (all.empty() ? "" : ", ") + o.name;
          raise(sarai_rt::ErrorCategory::kBadInput, path_ + ": the model has no output '" + name + "' (its outputs: " + all + ")");
        }
        picked.push_back(i);
      }
    }

    // The inputs: views of the caller's arrays where they can be read in
    // place. `keep` holds every array (the caller's or our copy) until the
    // run is over.
    std::vector<sarai_rt::TensorView> views;
    std::vector<py::array> keep;
    for (auto [key, value] : input_feed) {
      if (!py::isinstance<py::str>(key)) throw py::type_error(path_ + ": input names must be strings, got " + py::repr(key).cast<std::string>());
      const std::string name = key.cast<std::string>();
      const sarai_rt::TensorInfo* info = nullptr;
      for (const auto& t : session_->inputs())
        if (t.name == name) info = &t;
      if (!info) {
        std::string all;
        for (const auto& t : session_->inputs()) all += (all.empty() ? "" : ", ") + t.name;
        raise(sarai_rt::ErrorCategory::kBadInput, path_ + ": the model has no input '" + name + "' (its inputs: " + all + ")");
      }
      const std::optional<py::dtype> want = numpy_dtype(info->dtype);
      if (!want)
        raise(sarai_rt::ErrorCategory::kBadInput, path_ + ": input '" + name + "' has a dtype NumPy cannot hold");
      py::array arr;
      if (py::isinstance<py::array>(value)) {
        arr = py::reinterpret_borrow<py::array>(value);
        // The declared element type, in any byte order (kind and size name
        // one type each).
        if (arr.dtype().kind() != want->kind() || arr.dtype().itemsize() != want->itemsize())
          raise(sarai_rt::ErrorCategory::kBadInput, path_ + ": input '" + name + "' must be " + onnx_type_string(info->dtype) +
                                                       ", got a NumPy array of " + py::str(arr.dtype()).cast<std::string>());
        // In place only when it is C-contiguous, aligned and native-endian;
        // anything else is copied into such an array.
        const int flags = arr.flags();
        const bool direct = (flags & py::array::c_style) && (flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) &&
                            arr.dtype().equal(*want);
        if (!direct)
          arr = py::reinterpret_steal<py::array>(
              py::module_::import("numpy").attr("array")(arr, py::arg("dtype") = *want, py::arg("order") = "C").release());
      } else {
        // A Python scalar or (nested) list: converted to the declared dtype.
        arr = py::reinterpret_steal<py::array>(
            py::module_::import("numpy").attr("array")(value, py::arg("dtype") = *want, py::arg("order") = "C").release());
      }
      sarai_rt::TensorView v;
      v.name = name;
      v.dtype = info->dtype;
      v.shape.assign(arr.shape(), arr.shape() + arr.ndim());
      v.data = arr.data();
      views.push_back(std::move(v));
      keep.push_back(std::move(arr));
    }

    std::optional<sarai_rt::Result<std::vector<sarai_rt::Tensor>>> result;
    {
      py::gil_scoped_release nogil;
      result.emplace(session_->run(views));
    }
    if (!*result) raise(result->error());

    // Outputs without a copy: each array's base is a capsule that owns the
    // output tensor (its storage is ours alone, so the array is writable).
    py::list arrays;
    for (size_t i : picked) {
      auto* t = new sarai_rt::Tensor(std::move((*result)->at(i)));
      py::capsule owner(t, [](void* p) { delete static_cast<sarai_rt::Tensor*>(p); });
      const std::optional<py::dtype> dt = numpy_dtype(t->dtype());
      if (!dt) raise(sarai_rt::ErrorCategory::kInternal, path_ + ": output '" + t->name() + "' has a dtype NumPy cannot hold");
      std::vector<py::ssize_t> shape(t->shape().begin(), t->shape().end());
      arrays.append(py::array(*dt, shape, {}, const_cast<void*>(t->data()), owner));
    }
    return arrays;
  }

  py::dict cache_counters() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    if (!session_) raise(sarai_rt::ErrorCategory::kInvalidArgument, path_ + ": cache_counters on a closed session");
    const sarai_rt::CacheCounters c = session_->cache_counters();
    py::dict d;
    d["hits"] = c.hits;
    d["misses"] = c.misses;
    d["entries"] = c.entries;
    d["bytes"] = c.bytes;
    return d;
  }

  // Frees the session (its arenas, plans, mappings) now rather than when
  // Python collects the object; waits for runs in flight. Idempotent.
  void close() {
    py::gil_scoped_release nogil;
    std::unique_lock<std::shared_mutex> lock(mutex_);
    session_.reset();
  }
  bool closed() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return !session_;
  }

 private:
  std::string path_;
  mutable std::shared_mutex mutex_;  // run: shared; close: exclusive
  std::optional<sarai_rt::Session> session_;
  std::vector<NodeArg> inputs_, outputs_;
  SessionOptions options_;
};

// sarai_rt::convert with the GIL released; Ctrl-C (a pending signal, as
// PyErr_CheckSignals reports it at each progress call) stops it and raises
// KeyboardInterrupt, with nothing written.
void convert_or_raise(const std::string& src, const std::string& dst, sarai_rt::ConvertOptions o,
                      sarai_rt::ConvertSummary* out) {
  bool interrupted = false;
  o.progress = [&interrupted](uint64_t, uint64_t) {
    py::gil_scoped_acquire gil;
    interrupted = PyErr_CheckSignals() != 0;  // leaves the exception set for the caller
    return !interrupted;
  };
  std::optional<sarai_rt::Result<sarai_rt::ConvertSummary>> r;
  {
    py::gil_scoped_release nogil;
    r.emplace(sarai_rt::convert(src, dst, o));
  }
  if (interrupted) throw py::error_already_set();
  if (!*r) raise(r->error());
  *out = r->value();
}

}  // namespace

PYBIND11_MODULE(sarai_rt, m) {
  m.doc() = "sarai-rt: ONNX models in INT8 on the CPU, with ONNX Runtime's InferenceSession API";
  m.attr("__version__") = sarai_rt::version();
  m.def("isa_level", &sarai_rt::isa_level,
        "The kernels' instruction-set level in this process: 'scalar', 'avx2', 'avx2_vnni', 'avx512_vnni' or 'amx'.");
  if (const char* w = sarai_rt::isa_cap_warning())
    py::module_::import("warnings").attr("warn")(std::string("sarai_rt: ") + w, py::module_::import("builtins").attr("RuntimeWarning"));

  // Exceptions: sarai_rt.Error (a RuntimeError) and one subclass per
  // category, each also deriving from the built-in a caller may already
  // catch (ValueError for bad inputs, OSError for I/O, ...).
  static Exceptions ex;
  py::module_ builtins = py::module_::import("builtins");
  ex.base = new_exception(m, "Error", py::make_tuple(builtins.attr("RuntimeError")), "Any sarai-rt failure.");
  ex.invalid_model = new_exception(m, "InvalidModel", py::make_tuple(ex.base), "The file is not a model sarai-rt can read, or its graph is broken.");
  ex.unsupported_op = new_exception(m, "UnsupportedOp", py::make_tuple(ex.base, builtins.attr("NotImplementedError")),
                                    "The model uses an op sarai-rt lacks.");
  ex.bad_input = new_exception(m, "BadInput", py::make_tuple(ex.base, builtins.attr("ValueError")),
                               "An input's name, dtype, rank, shape or data does not fit the model.");
  ex.out_of_memory_budget = new_exception(m, "OutOfMemoryBudget", py::make_tuple(ex.base, builtins.attr("MemoryError")),
                                          "max_memory_mb cannot hold the run.");
  ex.io = new_exception(m, "IoError", py::make_tuple(ex.base, builtins.attr("OSError")),
                        "A file cannot be opened, read or mapped.");
  ex.invalid_argument = new_exception(m, "InvalidArgument", py::make_tuple(ex.base, builtins.attr("ValueError")),
                                      "A misuse of the API (a bad option, a closed session).");
  ex.internal = new_exception(m, "InternalError", py::make_tuple(ex.base), "A failure inside a kernel.");
  g_exceptions = &ex;

  py::class_<NodeArg>(m, "NodeArg", "A declared input or output: name, shape (ints; symbol strings or None where open), type.")
      .def_readonly("name", &NodeArg::name)
      .def_readonly("shape", &NodeArg::shape)
      .def_readonly("type", &NodeArg::type)
      .def("__repr__", [](const NodeArg& a) {
        return "NodeArg(name='" + a.name + "', type='" + a.type + "', shape=" + py::repr(a.shape).cast<std::string>() + ")";
      });

  py::enum_<GraphOptimizationLevel>(m, "GraphOptimizationLevel", "ONNX Runtime's; no effect in sarai-rt.")
      .value("ORT_DISABLE_ALL", GraphOptimizationLevel::kDisableAll)
      .value("ORT_ENABLE_BASIC", GraphOptimizationLevel::kEnableBasic)
      .value("ORT_ENABLE_EXTENDED", GraphOptimizationLevel::kEnableExtended)
      .value("ORT_ENABLE_ALL", GraphOptimizationLevel::kEnableAll);
  py::enum_<ExecutionMode>(m, "ExecutionMode", "ONNX Runtime's; no effect in sarai-rt.")
      .value("ORT_SEQUENTIAL", ExecutionMode::kSequential)
      .value("ORT_PARALLEL", ExecutionMode::kParallel);
  py::enum_<ExecutionOrder>(m, "ExecutionOrder", "ONNX Runtime's; no effect in sarai-rt.")
      .value("DEFAULT", ExecutionOrder::kDefault)
      .value("PRIORITY_BASED", ExecutionOrder::kPriorityBased)
      .value("MEMORY_EFFICIENT", ExecutionOrder::kMemoryEfficient);

  py::class_<SessionOptions>(m, "SessionOptions",
                             "ONNX Runtime's SessionOptions. sarai-rt honours intra_op_num_threads (0: one thread per "
                             "physical core); the other tuning settings are kept and have no effect; enable_profiling, "
                             "optimized_model_filepath and register_custom_ops_library are refused when a session opens.")
      .def(py::init<>())
      .def_readwrite("intra_op_num_threads", &SessionOptions::intra_op_num_threads)
      .def_readwrite("inter_op_num_threads", &SessionOptions::inter_op_num_threads)
      .def_readwrite("graph_optimization_level", &SessionOptions::graph_optimization_level)
      .def_readwrite("execution_mode", &SessionOptions::execution_mode)
      .def_readwrite("execution_order", &SessionOptions::execution_order)
      .def_readwrite("log_severity_level", &SessionOptions::log_severity_level)
      .def_readwrite("log_verbosity_level", &SessionOptions::log_verbosity_level)
      .def_readwrite("logid", &SessionOptions::logid)
      .def_readwrite("optimized_model_filepath", &SessionOptions::optimized_model_filepath)
      .def_readwrite("profile_file_prefix", &SessionOptions::profile_file_prefix)
      .def_readwrite("enable_cpu_mem_arena", &SessionOptions::enable_cpu_mem_arena)
      .def_readwrite("enable_mem_pattern", &SessionOptions::enable_mem_pattern)
      .def_readwrite("enable_mem_reuse", &SessionOptions::enable_mem_reuse)
      .def_readwrite("enable_profiling", &SessionOptions::enable_profiling)
      .def_readwrite("use_deterministic_compute", &SessionOptions::use_deterministic_compute)
      .def("add_session_config_entry",
           [](SessionOptions& o, const std::string& key, const std::string& value) { o.config[key] = value; })
      .def("get_session_config_entry",
           [](const SessionOptions& o, const std::string& key) { return config_entry(o.config, "SessionOptions", key); })
      .def("add_free_dimension_override_by_name",
           [](SessionOptions& o, const std::string& name, int64_t value) {
             o.config["sarai.free_dimension_override." + name] = std::to_string(value);
           },
           "Kept, no effect: sarai-rt plans memory for the shapes each run brings.")
      .def("register_custom_ops_library",
           [](SessionOptions& o, const std::string& path) { o.custom_op_libraries.push_back(path); });

  py::class_<RunOptions>(m, "RunOptions",
                         "ONNX Runtime's RunOptions: terminate set before run() refuses the run; the rest has no effect.")
      .def(py::init<>())
      .def_readwrite("log_severity_level", &RunOptions::log_severity_level)
      .def_readwrite("log_verbosity_level", &RunOptions::log_verbosity_level)
      .def_readwrite("logid", &RunOptions::logid)
      .def_readwrite("run_tag", &RunOptions::run_tag)
      .def_readwrite("terminate", &RunOptions::terminate)
      .def_readwrite("only_execute_path_to_fetches", &RunOptions::only_execute_path_to_fetches)
      .def("add_run_config_entry",
           [](RunOptions& o, const std::string& key, const std::string& value) { o.config[key] = value; })
      .def("get_run_config_entry",
           [](const RunOptions& o, const std::string& key) { return config_entry(o.config, "RunOptions", key); });

  // sarai-rt convert from Python (no accuracy check), and ONNX Runtime's
  // quantize_dynamic on top of it, so an offline script changes its import
  // too: `from sarai_rt.quantization import quantize_dynamic, QuantType`.
  m.def(
      "convert",
      [](const py::object& src, const py::object& dst, std::optional<std::string> to, bool per_channel,
         std::optional<std::vector<std::string>> keep_fp32, int64_t min_elements, const std::string& attention,
         const std::string& recurrent, const std::string& onnx_weights, const std::string& depthwise_activations,
         const std::string& matmul_activations) {
        sarai_rt::ConvertOptions o;
        o.to = to.value_or("");
        o.per_tensor = !per_channel;
        o.keep_fp32 = keep_fp32.value_or(std::vector<std::string>{});
        o.min_elements = min_elements;
        o.attention = attention;
        o.recurrent = recurrent;
        o.onnx_weights = onnx_weights;
        o.depthwise_activations = depthwise_activations;
        o.matmul_activations = matmul_activations;
        const py::object fspath = py::module_::import("os").attr("fspath");
        const std::string s = fspath(src).cast<std::string>(), d = fspath(dst).cast<std::string>();
        sarai_rt::ConvertSummary c;
        convert_or_raise(s, d, o, &c);
        py::dict out;
        out["format"] = c.format;
        out["quantized"] = c.quantized;
        out["kept_fp32"] = c.kept_fp32;
        out["bytes_in"] = c.bytes_in;
        out["bytes_out"] = c.bytes_out;
        out["seconds"] = c.seconds;
        return out;
      },
      py::arg("model_input"), py::arg("model_output"), py::kw_only(), py::arg("to") = py::none(),
      py::arg("per_channel") = true, py::arg("keep_fp32") = py::none(), py::arg("min_elements") = 0,
      py::arg("attention") = "int8", py::arg("recurrent") = "fp32", py::arg("onnx_weights") = "u8",
      py::arg("depthwise_activations") = "per-channel", py::arg("matmul_activations") = "per-row",
      "Quantizes an ONNX model's weights to INT8 (sarai-rt convert without its accuracy check), in bounded "
      "memory, into a .sarai blob or, for a model_output ending in .onnx (or to='onnx'), a quantized ONNX model "
      "for ONNX Runtime. Returns a summary dict.");

  py::module_ quantization = m.def_submodule("quantization", "ONNX Runtime's quantize_dynamic, on sarai-rt convert.");
  py::module_::import("sys").attr("modules")["sarai_rt.quantization"] = quantization;
  py::enum_<QuantType>(quantization, "QuantType")
      .value("QInt8", QuantType::kQInt8)
      .value("QUInt8", QuantType::kQUInt8);
  quantization.def(
      "quantize_dynamic",
      [](const py::object& model_input, const py::object& model_output, const py::object& op_types_to_quantize,
         std::optional<bool> per_channel, bool reduce_range, std::optional<QuantType> weight_type,
         const py::object& nodes_to_quantize,
         std::optional<std::vector<std::string>> nodes_to_exclude, bool /*use_external_data_format*/,
         const py::object& /*extra_options*/) {
        auto refuse = [](const std::string& what) {
          raise(sarai_rt::ErrorCategory::kInvalidArgument, "quantize_dynamic: " + what);
        };
        if (!op_types_to_quantize.is_none())
          refuse("op_types_to_quantize is not supported: sarai-rt quantizes every MatMul, Gemm, Conv and "
                 "ConvTranspose weight; leave nodes out with nodes_to_exclude");
        if (!nodes_to_quantize.is_none())
          refuse("nodes_to_quantize is not supported: leave nodes out with nodes_to_exclude");
        const py::object fspath = py::module_::import("os").attr("fspath");
        const std::string out = fspath(model_output).cast<std::string>();
        sarai_rt::ConvertOptions o;
        // Unset per_channel: per output channel (sarai-rt's default, and the
        // more accurate); per_channel=False asks for ONNX Runtime's default.
        o.per_tensor = per_channel.has_value() && !*per_channel;
        o.keep_fp32_names = nodes_to_exclude.value_or(std::vector<std::string>{});
        // The ONNX export's weight encoding: unset or QUInt8 = u8 (exact on
        // every CPU; ONNX Runtime's own default QInt8 is wrong on x86 CPUs
        // without VNNI, so it is used only when asked for), QInt8 = s8,
        // reduce_range = 7-bit s7 (exact everywhere at s8's speed).
        o.onnx_weights = reduce_range ? "s7" : weight_type == QuantType::kQInt8 ? "s8" : "u8";
        sarai_rt::ConvertSummary unused;
        convert_or_raise(fspath(model_input).cast<std::string>(), out, o, &unused);
      },
      py::arg("model_input"), py::arg("model_output"), py::arg("op_types_to_quantize") = py::none(),
      py::arg("per_channel") = py::none(), py::arg("reduce_range") = false, py::arg("weight_type") = py::none(),
      py::arg("nodes_to_quantize") = py::none(), py::arg("nodes_to_exclude") = py::none(),
      py::arg("use_external_data_format") = false, py::arg("extra_options") = py::none(),
      "ONNX Runtime's quantize_dynamic in bounded memory: model_output ending in .onnx gets a quantized ONNX "
      "model (weight_type unset or QUInt8: u8 weights, exact on every CPU; QInt8: s8, wrong on x86 CPUs without "
      "VNNI in ONNX Runtime; reduce_range: 7-bit s7, exact everywhere); any other name gets a .sarai blob. Weights "
      "per output channel unless per_channel=False; nodes_to_exclude stay FP32; extra_options and "
      "use_external_data_format (the export always writes its weights to model_output + '.data') have no effect.");

  m.def("get_available_providers", [] { return std::vector<std::string>{"CPUExecutionProvider"}; });
  m.def("get_all_providers", [] { return std::vector<std::string>{"CPUExecutionProvider"}; });
  m.def("get_device", [] { return std::string("CPU"); });
  m.def("get_version_string", [] { return std::string(sarai_rt::version()); });
  m.def("set_default_logger_severity", [](int) {}, "Kept for ONNX Runtime's callers; sarai-rt does not log.");

  py::class_<ModelMetadata>(m, "ModelMetadata",
                            "ONNX Runtime's: the model's description (for a .sarai blob, its source model's).")
      .def_readonly("producer_name", &ModelMetadata::producer_name)
      .def_readonly("graph_name", &ModelMetadata::graph_name)
      .def_readonly("domain", &ModelMetadata::domain)
      .def_readonly("description", &ModelMetadata::description)
      .def_readonly("graph_description", &ModelMetadata::graph_description)
      .def_readonly("version", &ModelMetadata::version)
      .def_readonly("custom_metadata_map", &ModelMetadata::custom_metadata_map);

  py::class_<InferenceSession>(m, "InferenceSession",
                               "A model (.onnx on the FP32 path, .sarai in INT8) ready to run; ONNX Runtime's API.")
      .def(py::init<const py::object&, const py::object&, const py::object&, const py::object&, std::optional<int>,
                    std::optional<uint64_t>, int, const py::object&>(),
           py::arg("path_or_bytes"), py::arg("sess_options") = py::none(), py::arg("providers") = py::none(),
           py::arg("provider_options") = py::none(), py::kw_only(), py::arg("threads") = py::none(),
           py::arg("max_memory_mb") = py::none(), py::arg("cache_size") = 0, py::arg("disabled_optimizers") = py::none(),
           "As ONNX Runtime's: path_or_bytes (a path, or the model's bytes, copied), sess_options (SessionOptions: "
           "intra_op_num_threads), providers (only 'CPUExecutionProvider'; others are dropped with a RuntimeWarning, "
           "as ONNX Runtime drops those its build lacks), provider_options (one dict per "
           "provider, no effect). sarai-rt's own, by keyword: threads (overrides intra_op_num_threads; default "
           "one per physical core), max_memory_mb (a budget for the whole process; weights stream when needed), "
           "cache_size (result-cache entries; 0: off).")
      .def("get_inputs", &InferenceSession::get_inputs)
      .def("get_outputs", &InferenceSession::get_outputs)
      .def("get_providers", &InferenceSession::get_providers)
      .def("get_provider_options", &InferenceSession::get_provider_options)
      .def("get_session_options", &InferenceSession::get_session_options)
      .def("get_modelmeta", &InferenceSession::get_modelmeta)
      .def("run", &InferenceSession::run, py::arg("output_names"), py::arg("input_feed"), py::arg("run_options") = py::none(),
           "Runs the model; returns the outputs named (None: all, in declaration order) as NumPy arrays.")
      .def("cache_counters", &InferenceSession::cache_counters, "The result cache's hits, misses, entries and bytes.")
      .def("close", &InferenceSession::close, "Frees the session now; later calls raise InvalidArgument.")
      .def_property_readonly("closed", &InferenceSession::closed)
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](InferenceSession& s, py::args) { s.close(); });
}
