#include "loader/onnx_loader.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "loader/fp16_upcast.h"
#include "runtime/mapped_file.h"

namespace sarai {
namespace {

namespace fs = std::filesystem;

// Parses a protobuf message from bytes, with the 2 GB limit protobuf has.
template <class Message>
bool parse_message(const uint8_t* data, uint64_t size, Message* msg) {
  if (size > static_cast<uint64_t>(INT_MAX)) return false;
  google::protobuf::io::ArrayInputStream raw(data, static_cast<int>(size));
  google::protobuf::io::CodedInputStream coded(&raw);
  coded.SetTotalBytesLimit(INT_MAX);
  return msg->ParseFromCodedStream(&coded) && coded.ConsumedEntireMessage();
}

// Resolves external data files relative to the model's folder, maps each
// once, and refuses locations that leave the folder.
class ExternalData {
 public:
  explicit ExternalData(const std::string& model_path) : model_path_(model_path) {
    fs::path p(model_path);
    dir_ = p.has_parent_path() ? p.parent_path() : fs::path(".");
  }

  Expected<const uint8_t*> bytes(const std::string& tensor, const std::string& location,
                                 uint64_t offset, uint64_t length) {
    const std::string where = model_path_ + ": tensor '" + tensor + "': external data '" + location + "'";
    if (location.empty()) return Status::error(model_path_ + ": tensor '" + tensor + "': external data has no location");
    fs::path loc(location);
    if (loc.is_absolute()) return Status::error(where + " is an absolute path; it must be relative to the model's folder");
    for (const fs::path& part : loc)
      if (part == "..") return Status::error(where + " contains '..'; it must stay inside the model's folder");
    std::error_code ec;
    fs::path dir_real = fs::weakly_canonical(dir_, ec);
    fs::path full = dir_ / loc;
    if (!fs::exists(full, ec)) return Status::error(where + ": file not found (" + full.string() + ")");
    fs::path real = fs::canonical(full, ec);
    if (ec) return Status::error(where + ": cannot resolve path: " + ec.message());
    auto [dir_end, real_it] = std::mismatch(dir_real.begin(), dir_real.end(), real.begin(), real.end());
    if (dir_end != dir_real.end())
      return Status::error(where + " resolves to " + real.string() + ", outside the model's folder (symlink?)");

    auto it = files_.find(real.string());
    if (it == files_.end()) {
      auto mapped = MappedFile::open(full.string());
      if (!mapped) return Status::error(where + ": " + mapped.message());
      it = files_.emplace(real.string(), Entry{*mapped, location, 0, 0}).first;
    }
    Entry& e = it->second;
    uint64_t size = e.file->size();
    if (offset > size || length > size - offset)
      return Status::error(where + ": offset " + std::to_string(offset) + " + length " + std::to_string(length) +
                           " is past the end of the file (" + std::to_string(size) + " bytes)");
    e.bytes_used += length;
    e.tensors += 1;
    return e.file->data() + offset;
  }

  void finish(Model& model) {
    for (auto& [real, e] : files_) {
      model.external_data.push_back({e.location, e.file->size(), e.bytes_used, e.tensors});
      model.keepalive.push_back(e.file);
      model.mapped_regions.push_back({e.file->data(), e.file->size()});
    }
  }

  Expected<uint64_t> size_of(const std::string& tensor, const std::string& location) {
    // Maps the file (if not yet) so a missing `length` can default to "to the end".
    auto b = bytes(tensor, location, 0, 0);
    if (!b) return b.status();
    fs::path real = fs::canonical(dir_ / fs::path(location));
    Entry& e = files_.at(real.string());
    e.tensors -= 1;  // the probe above is not a tensor
    return e.file->size();
  }

 private:
  struct Entry {
    std::shared_ptr<MappedFile> file;
    std::string location;
    uint64_t bytes_used;
    int tensors;
  };
  std::string model_path_;
  fs::path dir_;
  std::map<std::string, Entry> files_;
};

class Converter {
 public:
  Converter(std::string path, std::shared_ptr<const void> proto_owner)
      : path_(std::move(path)), external_(path_), owner_(std::move(proto_owner)) {}

  Expected<Tensor> tensor(const onnx::TensorProto& tp, const std::string& name);
  Status value_info(const onnx::ValueInfoProto& vi, Value* v);
  Status attribute(const onnx::AttributeProto& ap, const Node& node, Attribute* a);
  ExternalData& external() { return external_; }
  const std::string& path() const { return path_; }

 private:
  std::string prefix(const std::string& tensor_name) const {
    return path_ + ": tensor '" + tensor_name + "': ";
  }
  std::string path_;
  ExternalData external_;
  std::shared_ptr<const void> owner_;
};

// Copies `count` elements of a typed repeated field into a new tensor,
// converting each with `conv`.
template <class Field, class Out, class Conv>
Tensor copy_field(DType dtype, const Shape& shape, const Field& field, Conv conv) {
  Tensor t = Tensor::allocate(dtype, shape);
  Out* out = t.mutable_data<Out>();
  for (int i = 0; i < field.size(); ++i) out[i] = conv(field.Get(i));
  return t;
}

Expected<Tensor> Converter::tensor(const onnx::TensorProto& tp, const std::string& name) {
  DType dtype;
  if (!dtype_from_onnx(tp.data_type(), &dtype))
    return Status::error(prefix(name) + "data type " + std::to_string(tp.data_type()) + " is not supported");
  if (dtype == DType::kString) return Status::error(prefix(name) + "string tensors are not supported");
  if (tp.has_segment()) return Status::error(prefix(name) + "segmented tensors are not supported");
  Shape shape(tp.dims().begin(), tp.dims().end());
  auto numel_or = checked_numel(shape, dtype_size(dtype));
  if (!numel_or) return Status::error(prefix(name) + numel_or.message());
  const int64_t numel = *numel_or;
  const uint64_t nbytes = static_cast<uint64_t>(numel) * dtype_size(dtype);
  const std::string what = std::string(dtype_name(dtype)) + " " + shape_to_string(shape);

  if (tp.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    uint64_t offset = 0, length = 0;
    bool has_length = false;
    for (const auto& kv : tp.external_data()) {
      const std::string& k = kv.key();
      const std::string& v = kv.value();
      if (k == "location") {
        location = v;
      } else if (k == "offset" || k == "length") {
        char* end = nullptr;
        errno = 0;
        unsigned long long x = std::strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || errno != 0 || v[0] == '-')
          return Status::error(prefix(name) + "external data " + k + " '" + v + "' is not a non-negative integer");
        if (k == "offset") offset = x; else { length = x; has_length = true; }
      }
    }
    if (!has_length) {
      auto size = external_.size_of(name, location);
      if (!size) return size.status();
      length = *size >= offset ? *size - offset : 0;
      if (length > nbytes) length = nbytes;  // unspecified length: the tensor's own size
    }
    if (length != nbytes)
      return Status::error(prefix(name) + "external data length " + std::to_string(length) + " bytes does not match " +
                           what + " (" + std::to_string(nbytes) + " bytes)");
    auto bytes = external_.bytes(name, location, offset, length);
    if (!bytes) return bytes.status();
    const uint8_t* p = *bytes;
    // In place when aligned for the element type; else one copy (rare:
    // exporters align external tensors).
    if (reinterpret_cast<uintptr_t>(p) % dtype_size(dtype) == 0)
      return Tensor::wrap(dtype, shape, p, nullptr, /*read_only=*/true);
    Tensor t = Tensor::allocate(dtype, shape);
    if (nbytes) std::memcpy(t.mutable_raw(), p, nbytes);
    return t;
  }

  if (tp.has_raw_data()) {
    const std::string& raw = tp.raw_data();
    if (raw.size() != nbytes)
      return Status::error(prefix(name) + "raw_data holds " + std::to_string(raw.size()) + " bytes, but " + what +
                           " needs " + std::to_string(nbytes));
    if (reinterpret_cast<uintptr_t>(raw.data()) % dtype_size(dtype) == 0)
      return Tensor::wrap(dtype, shape, raw.data(), owner_, /*read_only=*/true);
    Tensor t = Tensor::allocate(dtype, shape);
    if (nbytes) std::memcpy(t.mutable_raw(), raw.data(), nbytes);
    return t;
  }

  // Typed fields: the field the spec assigns to each data type.
  auto count_error = [&](int have) {
    return Status::error(prefix(name) + "holds " + std::to_string(have) + " values, but " + what + " needs " +
                         std::to_string(numel));
  };
  auto same = [](auto x) { return x; };
  switch (dtype) {
    case DType::kFloat32:
      if (tp.float_data_size() != numel) return count_error(tp.float_data_size());
      return copy_field<decltype(tp.float_data()), float>(dtype, shape, tp.float_data(), same);
    case DType::kFloat64:
      if (tp.double_data_size() != numel) return count_error(tp.double_data_size());
      return copy_field<decltype(tp.double_data()), double>(dtype, shape, tp.double_data(), same);
    case DType::kInt64:
      if (tp.int64_data_size() != numel) return count_error(tp.int64_data_size());
      return copy_field<decltype(tp.int64_data()), int64_t>(dtype, shape, tp.int64_data(), same);
    case DType::kUInt32:
      if (tp.uint64_data_size() != numel) return count_error(tp.uint64_data_size());
      return copy_field<decltype(tp.uint64_data()), uint32_t>(dtype, shape, tp.uint64_data(),
                                                              [](uint64_t x) { return static_cast<uint32_t>(x); });
    case DType::kUInt64:
      if (tp.uint64_data_size() != numel) return count_error(tp.uint64_data_size());
      return copy_field<decltype(tp.uint64_data()), uint64_t>(dtype, shape, tp.uint64_data(), same);
    default:
      break;
  }
  // int32_data carries int32 and every narrower type, one value per entry.
  if (tp.int32_data_size() != numel) return count_error(tp.int32_data_size());
  const auto& f = tp.int32_data();
  switch (dtype) {
    case DType::kInt32: return copy_field<decltype(f), int32_t>(dtype, shape, f, same);
    case DType::kInt16: return copy_field<decltype(f), int16_t>(dtype, shape, f, [](int32_t x) { return static_cast<int16_t>(x); });
    case DType::kInt8: return copy_field<decltype(f), int8_t>(dtype, shape, f, [](int32_t x) { return static_cast<int8_t>(x); });
    case DType::kUInt16:
    case DType::kFloat16:
    case DType::kBFloat16:
      return copy_field<decltype(f), uint16_t>(dtype, shape, f, [](int32_t x) { return static_cast<uint16_t>(x); });
    case DType::kUInt8: return copy_field<decltype(f), uint8_t>(dtype, shape, f, [](int32_t x) { return static_cast<uint8_t>(x); });
    case DType::kBool: return copy_field<decltype(f), uint8_t>(dtype, shape, f, [](int32_t x) { return static_cast<uint8_t>(x != 0); });
    default:
      return Status::error(prefix(name) + "data type " + dtype_name(dtype) + " cannot be read from int32_data");
  }
}

Status Converter::value_info(const onnx::ValueInfoProto& vi, Value* v) {
  if (!vi.has_type()) return Status::ok();
  const onnx::TypeProto& type = vi.type();
  if (type.value_case() == onnx::TypeProto::VALUE_NOT_SET) return Status::ok();  // an empty type says nothing (exporters write them)
  if (!type.has_tensor_type())
    return Status::error(path_ + ": value '" + vi.name() + "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = type.tensor_type();
  if (tt.elem_type() != 0 && !dtype_from_onnx(tt.elem_type(), &v->dtype))
    return Status::error(path_ + ": value '" + vi.name() + "' has data type " + std::to_string(tt.elem_type()) +
                         ", which is not supported");
  if (tt.has_shape()) {
    v->has_shape = true;
    v->dims.clear();
    for (const auto& d : tt.shape().dim()) {
      Dim dim;
      if (d.has_dim_value()) {
        if (d.dim_value() < 0)
          return Status::error(path_ + ": value '" + vi.name() + "' has negative dimension " + std::to_string(d.dim_value()));
        dim.value = d.dim_value();
      } else if (d.has_dim_param()) {
        dim.symbol = d.dim_param();
      }
      v->dims.push_back(dim);
    }
  }
  return Status::ok();
}

Status Converter::attribute(const onnx::AttributeProto& ap, const Node& node, Attribute* a) {
  using A = onnx::AttributeProto;
  switch (ap.type()) {
    case A::FLOAT: a->kind = Attribute::Kind::kFloat; a->f = ap.f(); break;
    case A::INT: a->kind = Attribute::Kind::kInt; a->i = ap.i(); break;
    case A::STRING: a->kind = Attribute::Kind::kString; a->s = ap.s(); break;
    case A::FLOATS: a->kind = Attribute::Kind::kFloats; a->floats.assign(ap.floats().begin(), ap.floats().end()); break;
    case A::INTS: a->kind = Attribute::Kind::kInts; a->ints.assign(ap.ints().begin(), ap.ints().end()); break;
    case A::STRINGS: a->kind = Attribute::Kind::kStrings; a->strings.assign(ap.strings().begin(), ap.strings().end()); break;
    case A::TENSOR: {
      a->kind = Attribute::Kind::kTensor;
      auto t = tensor(ap.t(), node.name + "." + ap.name());
      if (!t) return t.status();
      a->t = std::move(*t);
      break;
    }
    case A::GRAPH:
    case A::GRAPHS:
      a->kind = Attribute::Kind::kGraph;  // subgraphs: only ops that use them (If, Loop) would, and they are unsupported
      break;
    default:
      // SPARSE_TENSOR(S), TYPE_PROTO(S), TENSORS: kept out of the IR; the op
      // that needs them reports it.
      a->kind = Attribute::Kind::kGraph;
      break;
  }
  return Status::ok();
}

bool is_default_domain(const std::string& d);

// A graph's scope while its nodes are read: names not defined in it are
// looked up in the enclosing graphs (ONNX's scoping for subgraphs).
struct Scope {
  Graph* g;
  const Scope* outer;
};

// Finds `name` in scope s, or makes it one of s's captured values when an
// enclosing graph defines it (an enclosing initializer is copied in as an
// initializer of s: a shared handle, so `convert` sees the weight where it
// is used). kNoValue when no graph in the chain has it.
int resolve(const Scope& s, const std::string& name) {
  int id = s.g->find_value(name);
  if (id != kNoValue || s.outer == nullptr) return id;
  const int outer_id = resolve(*s.outer, name);
  if (outer_id == kNoValue) return kNoValue;
  const Value ov = s.outer->g->values[static_cast<size_t>(outer_id)];
  id = s.g->add_value(name);
  Value& v = s.g->values[static_cast<size_t>(id)];
  if (ov.is_initializer) {
    v.set_initializer(ov.initializer);
  } else {
    v.dtype = ov.dtype;
    v.dims = ov.dims;
    v.has_shape = ov.has_shape;
    s.g->captures.push_back(id);
  }
  return id;
}

// Reads one graph (the model's, or a subgraph: then `outer` is the scope of
// the graph holding it and `where` names the node and attribute, as in
// "node 'If_3' (If) then_branch"; nested ones are joined by ", ").
Status convert_graph(Converter& conv, const onnx::GraphProto& gp, Graph& g, const Scope* outer, const std::string& where) {
  const std::string path = where.empty() ? conv.path() : conv.path() + ": " + where;
  g.name = gp.name();
  const int64_t opset = g.opset;
  const Scope scope{&g, outer};

  if (gp.sparse_initializer_size() > 0)
    return Status::error(path + ": sparse initializer '" + gp.sparse_initializer(0).values().name() + "' is not supported");

  for (const auto& tp : gp.initializer()) {
    if (tp.name().empty()) return Status::error(path + ": an initializer has no name");
    if (g.find_value(tp.name()) != kNoValue) return Status::error(path + ": initializer '" + tp.name() + "' is defined twice");
    auto t = conv.tensor(tp, tp.name());
    if (!t) return t.status();
    int id = g.add_value(tp.name());
    g.values[static_cast<size_t>(id)].set_initializer(std::move(*t));
  }
  for (const auto& vi : gp.input()) {
    int id = g.find_value(vi.name());
    if (id != kNoValue) continue;  // an initializer listed as input (IR < 4): a constant here
    if (vi.name().empty()) return Status::error(path + ": a graph input has no name");
    id = g.add_value(vi.name());
    SARAI_RETURN_IF_ERROR(conv.value_info(vi, &g.values[static_cast<size_t>(id)]));
    g.inputs.push_back(id);
  }

  // Nodes: outputs first (so inputs may refer to values produced later in
  // file order, which a valid but unsorted graph may do).
  std::set<std::string> used_names;
  std::vector<std::string> bad_domains;
  g.nodes.resize(static_cast<size_t>(gp.node_size()));
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node& n = g.nodes[static_cast<size_t>(i)];
    n.op_type = np.op_type();
    n.domain = is_default_domain(np.domain()) ? "" : np.domain();
    n.name = np.name();
    if (n.name.empty() || used_names.count(n.name)) n.name = n.op_type + "_" + std::to_string(i);
    used_names.insert(n.name);
    if (!n.domain.empty()) bad_domains.push_back(n.describe() + " in domain '" + n.domain + "'");
    for (const std::string& out : np.output()) {
      if (out.empty()) { n.outputs.push_back(kNoValue); continue; }
      int id = g.find_value(out);
      if (id != kNoValue) {
        const Value& v = g.values[static_cast<size_t>(id)];
        std::string by = v.producer >= 0 ? g.nodes[static_cast<size_t>(v.producer)].describe()
                         : v.is_initializer ? std::string("an initializer") : std::string("a graph input");
        return Status::error(path + ": " + n.describe() + " writes '" + out + "', which is already produced by " + by);
      }
      id = g.add_value(out);
      g.values[static_cast<size_t>(id)].producer = i;
      n.outputs.push_back(id);
    }
  }
  if (!bad_domains.empty()) {
    std::string msg = path + ": only the default ONNX domain is supported; ";
    for (size_t i = 0; i < bad_domains.size() && i < 5; ++i) msg += (i ? ", " : "") + bad_domains[i];
    if (bad_domains.size() > 5) msg += " and " + std::to_string(bad_domains.size() - 5) + " more";
    return Status::error(msg);
  }
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    Node& n = g.nodes[static_cast<size_t>(i)];
    for (const std::string& in : np.input()) {
      if (in.empty()) { n.inputs.push_back(kNoValue); continue; }
      int id = resolve(scope, in);
      if (id == kNoValue)
        return Status::error(path + ": " + n.describe() + " reads '" + in + "', which no node, input or initializer provides");
      n.inputs.push_back(id);
    }
    for (const auto& ap : np.attribute()) {
      Attribute a;
      SARAI_RETURN_IF_ERROR(conv.attribute(ap, n, &a));
      if (ap.type() == onnx::AttributeProto::GRAPH) {
        auto sub = std::make_shared<Graph>();
        sub->opset = opset;
        SARAI_RETURN_IF_ERROR(convert_graph(conv, ap.g(), *sub, &scope, (where.empty() ? "" : where + ", ") + n.describe() + " " + ap.name()));
        // What the subgraph reads from outside becomes an implicit input
        // here (resolved in this scope, so it may capture in turn).
        for (int c : sub->captures) {
          const int id = resolve(scope, sub->values[static_cast<size_t>(c)].name);
          if (std::find(n.inputs.end() - n.implicit_inputs, n.inputs.end(), id) == n.inputs.end()) {
            n.inputs.push_back(id);
            ++n.implicit_inputs;
          }
        }
        a.g = std::move(sub);
      }
      n.attrs[ap.name()] = std::move(a);
    }
  }
  for (const auto& vi : gp.output()) {
    int id = resolve(scope, vi.name());  // a subgraph may return an outer value as it is
    if (id == kNoValue) return Status::error(path + ": graph output '" + vi.name() + "' is not produced by any node");
    Value& v = g.values[static_cast<size_t>(id)];
    if (!v.is_initializer && v.producer < 0 && std::find(g.inputs.begin(), g.inputs.end(), id) == g.inputs.end() &&
        std::find(g.captures.begin(), g.captures.end(), id) == g.captures.end())
      return Status::error(path + ": graph output '" + vi.name() + "' is not produced by any node");
    Value declared;
    SARAI_RETURN_IF_ERROR(conv.value_info(vi, &declared));
    if (declared.dtype != DType::kUndefined) v.dtype = declared.dtype;
    if (declared.has_shape && !v.is_initializer) { v.has_shape = true; v.dims = declared.dims; }
    g.outputs.push_back(id);
  }
  for (const auto& vi : gp.value_info()) {
    int id = g.find_value(vi.name());
    if (id == kNoValue) continue;  // annotations of values that do not exist are harmless
    Value& v = g.values[static_cast<size_t>(id)];
    if (v.is_initializer) continue;
    Value declared;
    SARAI_RETURN_IF_ERROR(conv.value_info(vi, &declared));
    if (v.dtype == DType::kUndefined) v.dtype = declared.dtype;
    if (!v.has_shape && declared.has_shape) { v.has_shape = true; v.dims = declared.dims; }
  }

  auto order = g.topological_order();
  if (!order) return Status::error(path + ": " + order.message());
  return Status::ok();
}

bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

Expected<std::shared_ptr<Model>> convert_model(const std::string& path, std::shared_ptr<onnx::ModelProto> proto) {
  auto model = std::make_shared<Model>();
  model->path = path;
  model->ir_version = proto->ir_version();
  model->producer_name = proto->producer_name();
  model->producer_version = proto->producer_version();
  ModelDescription& d = model->description;
  d.producer_name = proto->producer_name();
  d.domain = proto->domain();
  d.doc_string = proto->doc_string();
  d.graph_doc_string = proto->graph().doc_string();
  d.model_version = proto->model_version();
  for (const auto& kv : proto->metadata_props()) d.props.emplace_back(kv.key(), kv.value());
  for (const auto& op : proto->opset_import())
    model->opset_imports[is_default_domain(op.domain()) ? "" : op.domain()] = op.version();
  if (!proto->has_graph()) return Status::error(path + ": not an ONNX model (it has no graph)");
  if (proto->ir_version() < 3 && proto->opset_import_size() == 0)
    return Status::error(path + ": IR version " + std::to_string(proto->ir_version()) + " is too old (opset imports are missing)");
  auto opset_it = model->opset_imports.find("");
  if (opset_it == model->opset_imports.end())
    return Status::error(path + ": the model does not import the default ONNX domain");
  const int64_t opset = opset_it->second;
  if (opset < kMinOpset || opset > kMaxOpset)
    return Status::error(path + ": opset " + std::to_string(opset) + " of the default domain is not supported (supported: " +
                         std::to_string(kMinOpset) + "-" + std::to_string(kMaxOpset) + ")");

  model->graph.opset = opset;
  Converter conv(path, proto);
  SARAI_RETURN_IF_ERROR(convert_graph(conv, proto->graph(), model->graph, nullptr, ""));
  // Float16 models run on the float32 kernels (loader/fp16_upcast.h).
  SARAI_RETURN_IF_ERROR(upcast_float16(*model).with_prefix(path + ": "));
  conv.external().finish(*model);
  model->keepalive.push_back(proto);
  return model;
}

}  // namespace

Expected<std::shared_ptr<Model>> load_onnx(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  return load_onnx(**file);
}

Expected<std::shared_ptr<Model>> load_onnx(const MappedFile& f) {
  const std::string& path = f.path();
  if (f.size() == 0) return Status::error(path + ": file is empty");
  if (f.size() > static_cast<uint64_t>(INT_MAX))
    return Status::error(path + ": " + std::to_string(f.size()) +
                         " bytes; protobuf cannot hold more than 2 GB: store the weights as external data");
  auto proto = std::make_shared<onnx::ModelProto>();
  if (!parse_message(f.data(), f.size(), proto.get()))
    return Status::error(path + ": not a valid ONNX model (protobuf parse failed: truncated or not a ModelProto)");
  return convert_model(path, std::move(proto));
}

Expected<Tensor> load_tensor_proto_file(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file) return file.status();
  auto proto = std::make_shared<onnx::TensorProto>();
  if (!parse_message((*file)->data(), (*file)->size(), proto.get()))
    return Status::error(path + ": not a valid TensorProto");
  Converter conv(path, proto);
  auto t = conv.tensor(*proto, proto->name());
  if (!t) return t.status();
  // Detach from the proto and any mapping: the caller owns a plain tensor.
  return t->clone();
}

}  // namespace sarai
