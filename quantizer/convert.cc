#include "quantizer/convert.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>

#include "kernels/cpu/int8_layout.h"
#include "loader/blob_format.h"
#include "quantizer/blob_writer.h"
#include "quantizer/quantize.h"
#include "quantizer/quantize_weight.h"
#include "quantizer/release_pages.h"
#include "quantizer/sha256.h"

namespace sarai::quant {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSaraiDomain = "sarai";

// One weight stored as INT8 (possibly read by several quantized nodes).
struct QWeight {
  int source = kNoValue;  // the FP32 weight's value index in the output graph
  WeightForm form;
  WeightRole role = WeightRole::kMatMul;
  float alpha = 1.f;      // Gemm's alpha, folded into the scales
  bool keep_fp32 = false; // another reader (or a graph output) still needs the FP32 tensor
  int q = kNoValue, scale = kNoValue, sum = kNoValue;  // new values
};

std::string unique_name(const Graph& g, const std::string& base) {
  if (g.find_value(base) == kNoValue) return base;
  for (int i = 1;; ++i) {
    std::string n = base + "_" + std::to_string(i);
    if (g.find_value(n) == kNoValue) return n;
  }
}

int add_const_value(Graph& g, const std::string& name, DType dtype, const Shape& shape) {
  const int v = g.add_value(unique_name(g, name));
  Value& val = g.values[static_cast<size_t>(v)];
  val.dtype = dtype;
  val.has_shape = true;
  for (int64_t d : shape) val.dims.push_back(Dim{d, ""});
  val.is_initializer = true;  // its bytes are produced while streaming
  return v;
}

Attribute float_attr(float v) {
  Attribute a;
  a.kind = Attribute::Kind::kFloat;
  a.f = v;
  return a;
}

Attribute int_attr(int64_t v) {
  Attribute a;
  a.kind = Attribute::Kind::kInt;
  a.i = v;
  return a;
}

// A graph without the values in `drop` (no node or graph output may read
// them), every index remapped.
Graph without_values(const Graph& g, const std::vector<bool>& drop) {
  Graph out;
  out.name = g.name;
  out.opset = g.opset;
  std::vector<int> map(g.values.size(), kNoValue);
  for (size_t v = 0; v < g.values.size(); ++v) {
    if (drop[v]) continue;
    map[v] = out.add_value(g.values[v].name);
    Value& nv = out.values.back();
    const std::string name = nv.name;
    nv = g.values[v];
    nv.name = name;
  }
  auto remap = [&](std::vector<int>& ids) {
    for (int& id : ids)
      if (id != kNoValue) id = map[static_cast<size_t>(id)];
  };
  out.nodes = g.nodes;
  for (Node& n : out.nodes) {
    remap(n.inputs);
    remap(n.outputs);
  }
  out.inputs = g.inputs;
  out.outputs = g.outputs;
  remap(out.inputs);
  remap(out.outputs);
  return out;
}

// Gemm's C as QMatMul's bias: beta * C broadcast to [N], or C itself when
// that is already what it is.
int gemm_bias(Graph& g, const Node& n, int64_t N) {
  const int c = n.inputs.size() > 2 ? n.inputs[2] : kNoValue;
  if (c == kNoValue) return kNoValue;
  const float beta = n.attr_float("beta", 1.f);
  const Tensor src = g.values[static_cast<size_t>(c)].initializer;
  if (beta == 1.f && src.rank() == 1 && src.dim(0) == N) return c;
  Tensor b = Tensor::allocate(DType::kFloat32, {N});
  const float* s = src.data<float>();
  for (int64_t i = 0; i < N; ++i) b.mutable_data<float>()[i] = beta * s[src.numel() == 1 ? 0 : i];
  const int v = add_const_value(g, n.name + ".bias", DType::kFloat32, {N});
  g.values[static_cast<size_t>(v)].initializer = b;
  return v;
}

std::string choice_key(const Graph& g, const WeightChoice& c) {
  if (c.weight_value == kNoValue) return "choice:" + g.nodes[static_cast<size_t>(c.node)].name;
  return "choice:" + g.values[static_cast<size_t>(c.weight_value)].name;
}

// "choice:<weight>" = reason, one per weight (several readers with
// different outcomes: "node 'a': ...; node 'b': ...").
std::vector<std::pair<std::string, std::string>> choice_metadata(const Graph& g, const QuantPlan& plan) {
  std::map<std::string, std::vector<const WeightChoice*>> by_key;
  std::vector<std::string> order;
  for (const WeightChoice& c : plan.choices) {
    const std::string k = choice_key(g, c);
    if (!by_key.count(k)) order.push_back(k);
    by_key[k].push_back(&c);
  }
  std::vector<std::pair<std::string, std::string>> kv;
  for (const std::string& k : order) {
    const auto& cs = by_key[k];
    bool same = std::all_of(cs.begin(), cs.end(), [&](const WeightChoice* c) { return c->reason == cs[0]->reason; });
    std::string v;
    if (same) {
      v = cs[0]->reason;
    } else {
      for (const WeightChoice* c : cs) {
        if (!v.empty()) v += "; ";
        v += "node '" + g.nodes[static_cast<size_t>(c->node)].name + "': " + c->reason;
      }
    }
    kv.emplace_back(k, v);
  }
  return kv;
}

Status check_output_path(const Model& model, const std::string& out_path) {
  if (out_path.empty()) return Status::error("no output path given");
  const fs::path out(out_path);
  const fs::path dir = out.has_parent_path() ? out.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::exists(dir, ec))
    return Status::error("cannot write '" + out_path + "': folder '" + dir.string() + "' does not exist");
  if (!fs::is_directory(dir, ec))
    return Status::error("cannot write '" + out_path + "': '" + dir.string() + "' is not a folder");
  if (fs::is_directory(out, ec)) return Status::error("cannot write '" + out_path + "': it is a folder");
  if (fs::exists(out, ec)) {
    std::vector<fs::path> sources;
    if (!model.path.empty()) sources.push_back(model.path);
    const fs::path model_dir = fs::path(model.path).has_parent_path() ? fs::path(model.path).parent_path() : ".";
    for (const ExternalDataFile& e : model.external_data) sources.push_back(model_dir / e.location);
    for (const fs::path& s : sources)
      if (fs::equivalent(out, s, ec))
        return Status::error("cannot write '" + out_path + "': it is the source file '" + s.string() +
                             "'; choose another output path");
  }
  return Status::ok();
}

}  // namespace

std::string canonical_options(const QuantOptions& o) {
  std::string s;
  if (o.per_tensor) s += "--per-tensor";
  for (const std::string& g : o.keep_fp32) s += std::string(s.empty() ? "" : " ") + "--keep-fp32 '" + g + "'";
  s += std::string(s.empty() ? "" : " ") + "--min-elements " + std::to_string(o.min_elements);
  return s;
}

Expected<ConvertSummary> convert_to_blob(Model& model, const std::string& out_path, const ConvertOptions& opt) {
  const auto t0 = std::chrono::steady_clock::now();
  SARAI_RETURN_IF_ERROR(check_output_path(model, out_path));
  if (opt.attention != "fp32" && opt.attention != "int8" && opt.attention != "int8-per-tensor")
    return Status::error(out_path + ": attention '" + opt.attention + "' is not fp32, int8 or int8-per-tensor");
  auto cancelled = [&] { return opt.cancel && opt.cancel->load(std::memory_order_relaxed); };
  const Status interrupted = Status::error("interrupted");

  promote_constants(model.graph);
  const Graph& src = model.graph;
  const QuantPlan plan = plan_quantization(src, opt);
  ConvertSummary summary;
  summary.choices = plan.choices;

  // ---- The output graph: a copy of the source with quantized nodes rewritten.
  Graph g = src;
  std::map<int, QWeight> qweights;  // by source weight value
  for (const WeightChoice& c : plan.choices) {
    if (!c.quantize) continue;
    const Node& n = src.nodes[static_cast<size_t>(c.node)];
    auto [it, fresh] = qweights.try_emplace(c.weight_value);
    QWeight& qw = it->second;
    if (fresh) {
      const Value& w = src.values[static_cast<size_t>(c.weight_value)];
      qw.source = c.weight_value;
      qw.role = c.role;
      qw.form = weight_form(c, n, w.initializer.shape());
      qw.alpha = c.role == WeightRole::kGemm ? n.attr_float("alpha", 1.f) : 1.f;
      const Shape q_ir_shape = qw.form.packed() ? Shape{qw.form.q_bytes()} : w.initializer.shape();
      qw.q = add_const_value(g, w.name + ".q", DType::kInt8, q_ir_shape);
      qw.scale = add_const_value(g, w.name + ".scale", DType::kFloat32,
                                 {opt.per_tensor ? int64_t{1} : qw.form.N});
      qw.sum = add_const_value(g, w.name + ".wsum", DType::kInt32, {qw.form.N});
    }
    Node& out = g.nodes[static_cast<size_t>(c.node)];
    const int x = n.inputs[0];
    const int bias = c.role == WeightRole::kGemm ? gemm_bias(g, n, qw.form.N)
                                                 : (n.inputs.size() > 2 ? n.inputs[2] : kNoValue);
    out.domain = kSaraiDomain;
    out.inputs = {x, qw.q, qw.scale, qw.sum};
    if (bias != kNoValue) out.inputs.push_back(bias);
    if (c.role == WeightRole::kMatMul || c.role == WeightRole::kGemm) {
      out.op_type = "QMatMul";
      out.attrs.clear();
      out.attrs["K"] = int_attr(qw.form.K);
      out.attrs["N"] = int_attr(qw.form.N);
    } else {
      out.op_type = c.role == WeightRole::kConv ? "QConv" : "QConvTranspose";
      Attribute ws;
      ws.kind = Attribute::Kind::kInts;
      ws.ints = src.values[static_cast<size_t>(c.weight_value)].initializer.shape().to_vector();
      out.attrs["weight_shape"] = ws;
    }
    if (!opt.activation_ranges.empty()) {
      const std::string& xname = src.values[static_cast<size_t>(x)].name;
      auto r = opt.activation_ranges.find(xname);
      if (r == opt.activation_ranges.end())
        return Status::error(model.path + ": " + n.describe() + ": no calibrated range for its input '" + xname +
                             "' (static quantization needs one for every quantized node)");
      out.attrs["x_min"] = float_attr(r->second.lo);
      out.attrs["x_max"] = float_attr(r->second.hi);
    }
  }
  // Which FP32 tensors are still read (quantized weights read elsewhere stay).
  std::vector<bool> read(g.values.size(), false);
  for (const Node& n : g.nodes)
    for (int v : n.inputs)
      if (v != kNoValue) read[static_cast<size_t>(v)] = true;
  for (int v : g.outputs) read[static_cast<size_t>(v)] = true;
  std::vector<bool> read_before(src.values.size(), false);
  for (const Node& n : src.nodes)
    for (int v : n.inputs)
      if (v != kNoValue) read_before[static_cast<size_t>(v)] = true;
  for (int v : src.outputs) read_before[static_cast<size_t>(v)] = true;
  // Drop what the rewrite orphaned (quantized weights, replaced Gemm biases);
  // initializers nobody read in the source are kept as they were.
  std::vector<bool> drop(g.values.size(), false);
  for (size_t v = 0; v < src.values.size(); ++v)
    drop[v] = src.values[v].is_initializer && read_before[v] && !read[v];
  for (auto& [w, qw] : qweights) qw.keep_fp32 = !drop[static_cast<size_t>(w)];
  // Indices in g before compaction -> after.
  std::vector<int> new_index(g.values.size(), kNoValue);
  for (size_t v = 0, k = 0; v < g.values.size(); ++v)
    if (!drop[v]) new_index[v] = static_cast<int>(k++);
  g = without_values(g, drop);

  // ---- Sizes for progress.
  uint64_t source_bytes = 0, onnx_bytes = 0;
  std::error_code ec;
  if (!model.path.empty()) {
    onnx_bytes = fs::file_size(model.path, ec);
    if (ec) return Status::error(model.path + ": cannot read the file size: " + ec.message());
  }
  source_bytes = onnx_bytes;
  for (const ExternalDataFile& e : model.external_data) source_bytes += e.file_size;
  uint64_t total = onnx_bytes, done = 0;
  for (size_t v = 0; v < src.values.size(); ++v)
    if (src.values[v].is_initializer && (!drop[v] || qweights.count(static_cast<int>(v))))
      total += src.values[v].initializer.nbytes();
  for (size_t v = src.values.size(); v < new_index.size(); ++v)  // new Gemm biases
    if (new_index[v] != kNoValue && g.values[static_cast<size_t>(new_index[v])].initializer.defined())
      total += g.values[static_cast<size_t>(new_index[v])].initializer.nbytes();
  auto report = [&] {
    if (opt.progress) opt.progress(done, total);
  };
  report();

  // ---- Metadata: the source's digest first (it reads the whole .onnx).
  std::vector<std::pair<std::string, std::string>> meta;
  meta.emplace_back("source.file", model.path.empty() ? "" : fs::path(model.path).filename().string());
  if (!model.path.empty()) {
    auto digest = sha256_file(model.path, [&](uint64_t n) {
      done += n;
      report();
      return !cancelled();
    });
    if (!digest) return digest.status();
    meta.emplace_back("source.sha256", *digest);
  }
  meta.emplace_back("source.bytes", std::to_string(source_bytes));
  meta.emplace_back("converter", kConverterVersion);
  meta.emplace_back("options", opt.command_line.empty() ? canonical_options(opt) : opt.command_line);
  meta.emplace_back("weight_layout", "n16k4 v" + std::to_string(int8::kWeightLayoutVersion));
  meta.emplace_back("attention", opt.attention);
  for (auto& kv : choice_metadata(src, plan)) meta.push_back(std::move(kv));
  for (const auto& kv : opt.extra_metadata) meta.push_back(kv);

  // ---- Stream the tensors.
  const std::string tmp_path = out_path + ".tmp-" + std::to_string(::getpid());
  auto writer_or = blob::BlobWriter::create(tmp_path, out_path);
  if (!writer_or) return writer_or.status();
  std::unique_ptr<blob::BlobWriter> writer = std::move(writer_or).value();
  writer->set_metadata(std::move(meta));
  std::vector<int32_t> value_tensor(g.values.size(), -1);

  std::vector<std::string> mapped_files;
  {
    const fs::path model_dir = fs::path(model.path).has_parent_path() ? fs::path(model.path).parent_path() : ".";
    for (const ExternalDataFile& e : model.external_data) mapped_files.push_back((model_dir / e.location).string());
  }
  const FileMappedRanges mapped =
      mapped_files.empty() ? FileMappedRanges() : FileMappedRanges::current(mapped_files);
  auto release = [&](const Tensor& t) {
    if (t.nbytes() && mapped.contains(t.raw(), t.nbytes())) release_pages(t.raw(), t.nbytes());
  };
  auto write_as_is = [&](int v_out, const Tensor& t) -> Status {
    const Value& val = g.values[static_cast<size_t>(v_out)];
    blob::TensorSpec spec;
    spec.name = val.name;
    spec.dtype = t.dtype();
    spec.dims = t.shape();
    auto idx = writer->add_tensor(spec, t.raw(), t.nbytes());
    if (!idx) return idx.status();
    value_tensor[static_cast<size_t>(v_out)] = *idx;
    return Status::ok();
  };

  std::vector<float> fbuf;
  std::vector<int8_t> qbuf;
  std::vector<float> sbuf;
  std::vector<int32_t> sumbuf;
  for (size_t v = 0; v < new_index.size(); ++v) {
    if (cancelled()) {
      writer->abort();
      return interrupted;
    }
    auto qit = v < src.values.size() ? qweights.find(static_cast<int>(v)) : qweights.end();
    const bool is_new = v >= src.values.size();
    const int v_out = new_index[v];
    if (qit == qweights.end()) {
      // Written as is: every kept initializer with bytes (new Q tensors are
      // written with their source weight below).
      if (v_out == kNoValue) continue;
      const Value& val = g.values[static_cast<size_t>(v_out)];
      if (!val.is_initializer || !val.initializer.defined()) continue;
      SARAI_RETURN_IF_ERROR(write_as_is(v_out, val.initializer));
      if (!is_new) release(val.initializer);
      done += val.initializer.nbytes();
      ++summary.other_tensors;
      report();
      continue;
    }

    QWeight& qw = qit->second;
    const Value& wv = src.values[v];
    const Tensor& w = wv.initializer;
    const uint64_t wbytes = w.nbytes();
    const uint64_t start = done;
    SARAI_RETURN_IF_ERROR(to_float(wv.name, w, fbuf).with_prefix(model.path.empty() ? "" : model.path + ": "));
    if (qw.keep_fp32) SARAI_RETURN_IF_ERROR(write_as_is(v_out, w));
    release(w);
    done = start + wbytes / 4;
    report();

    const WeightForm& f = qw.form;
    qbuf.resize(static_cast<size_t>(f.q_bytes()));
    sbuf.resize(opt.per_tensor ? 1 : static_cast<size_t>(f.N));
    sumbuf.resize(static_cast<size_t>(f.N));
    const bool finished = quantize_weight(fbuf.data(), f, opt.per_tensor, qw.alpha, qbuf.data(), sbuf.data(),
                                          sumbuf.data(), [&](double frac) {
                                            done = start + wbytes / 4 +
                                                   static_cast<uint64_t>(frac * static_cast<double>(wbytes - wbytes / 4));
                                            report();
                                            return !cancelled();
                                          });
    if (!finished) {
      writer->abort();
      return interrupted;
    }
    const int vq = new_index[static_cast<size_t>(qw.q)], vs = new_index[static_cast<size_t>(qw.scale)],
              vsum = new_index[static_cast<size_t>(qw.sum)];
    blob::TensorSpec scale_spec;
    scale_spec.name = g.values[static_cast<size_t>(vs)].name;
    scale_spec.dtype = DType::kFloat32;
    scale_spec.dims = {static_cast<int64_t>(sbuf.size())};
    auto si = writer->add_tensor(scale_spec, sbuf.data(), sbuf.size() * sizeof(float));
    if (!si) return si.status();
    blob::TensorSpec sum_spec;
    sum_spec.name = g.values[static_cast<size_t>(vsum)].name;
    sum_spec.dtype = DType::kInt32;
    sum_spec.dims = {f.N};
    auto ui = writer->add_tensor(sum_spec, sumbuf.data(), sumbuf.size() * sizeof(int32_t));
    if (!ui) return ui.status();
    blob::TensorSpec q_spec;
    q_spec.name = g.values[static_cast<size_t>(vq)].name;
    q_spec.dtype = DType::kInt8;
    q_spec.dims = f.packed() ? Shape{f.K, f.N} : w.shape();
    q_spec.layout = f.packed() ? blob::Layout::kPackedN16K4 : blob::Layout::kPlain;
    q_spec.scheme = opt.per_tensor ? blob::Scheme::kInt8PerTensor : blob::Scheme::kInt8PerChannel;
    // Per-tensor: one scale, but the sums stay per channel (the kernels need
    // Σ_k w[k][n] for every n); the format ties a companion's size to the
    // scheme's channel count, so they are then only the node's input.
    q_spec.axis = opt.per_tensor ? -1 : f.packed() ? 1 : (qw.role == WeightRole::kConvTranspose ? 1 : 0);
    q_spec.scale_tensor = *si;
    q_spec.sum_tensor = opt.per_tensor ? -1 : *ui;
    auto qi = writer->add_tensor(q_spec, qbuf.data(), qbuf.size());
    if (!qi) return qi.status();
    value_tensor[static_cast<size_t>(vq)] = *qi;
    value_tensor[static_cast<size_t>(vs)] = *si;
    value_tensor[static_cast<size_t>(vsum)] = *ui;
    done = start + wbytes;
    ++summary.quantized;
    report();
  }
  if (cancelled()) {
    writer->abort();
    return interrupted;
  }

  // FP32-kept weights of MatMul/Gemm/Conv/ConvTranspose (counted once each).
  std::set<int> fp32_weights;
  for (const WeightChoice& c : plan.choices)
    if (!c.quantize && c.weight_value != kNoValue && src.values[static_cast<size_t>(c.weight_value)].is_initializer &&
        !qweights.count(c.weight_value))
      fp32_weights.insert(c.weight_value);
  summary.kept_fp32 = static_cast<int>(fp32_weights.size());
  summary.other_tensors -= summary.kept_fp32;

  SARAI_RETURN_IF_ERROR(writer->finish(g, value_tensor));
  summary.bytes_in = source_bytes;
  summary.bytes_out = fs::file_size(out_path, ec);
  if (ec) summary.bytes_out = writer->bytes_written();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary;
}

}  // namespace sarai::quant
