#include "quantizer/onnx_export.h"

#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "runtime/atomic_file.h"
#include "quantizer/quantize.h"
#include "quantizer/quantize_weight.h"
#include "quantizer/release_pages.h"
#include "runtime/parallel.h"

namespace sarai::quant {

namespace {

namespace fs = std::filesystem;

constexpr uint64_t kAlign = 4096;       // external tensors' offsets (ONNX Runtime maps them in place)
constexpr uint64_t kInlineBelow = 1024;  // smaller tensors stay in the .onnx (onnx's size_threshold)
constexpr int64_t kQuantOpset = 11;      // DynamicQuantizeLinear

// One of the two output files (.onnx, .data): an AtomicFile
// (runtime/atomic_file.h: temp name, fsync, rename, folder fsync, signal
// cleanup) with the exporter's error wording and alignment padding.
class TempFile {
 public:
  Status open(const std::string& final_path) {
    const std::string temp = final_path + ".tmp-" + std::to_string(::getpid());
    int err = 0;
    file_ = AtomicFile::create(temp, final_path, &err);
    if (!file_) return Status::error(final_path + ": cannot create " + temp + ": " + std::strerror(err));
    return Status::ok();
  }

  Status write(const void* p, size_t n) {
    if (const int err = file_->write_all(p, n); err != 0)
      return Status::error(file_->tmp_path() + ": write failed at byte " + std::to_string(file_->size()) + ": " +
                           std::strerror(err));
    return Status::ok();
  }

  Status pad_to(uint64_t align) {
    static const char zeros[kAlign] = {};
    const uint64_t pad = (align - file_->size() % align) % align;
    return pad ? write(zeros, static_cast<size_t>(pad)) : Status::ok();
  }

  Status sync_close() {
    if (const int err = file_->sync_close(); err != 0)
      return Status::error(file_->tmp_path() + ": fsync or close failed: " + std::strerror(err));
    return Status::ok();
  }

  Status commit() {
    if (const int err = file_->commit(); err != 0)
      return Status::error(file_->final_path() + ": cannot rename " + file_->tmp_path() + " to it: " + std::strerror(err));
    return Status::ok();
  }

  // After commit: removes the final file again (the other half of the
  // output failed to commit).
  void revoke() {
    if (file_) file_->revoke();
  }

  uint64_t size() const { return file_ ? file_->size() : 0; }

 private:
  std::unique_ptr<AtomicFile> file_;  // removes its temp file unless committed
};

// The index of the first NaN or infinity in w, or -1.
int64_t first_non_finite(const float* w, int64_t n) {
  // Chunks in parallel, each reporting its first bad index; the smallest wins.
  std::vector<int64_t> first(static_cast<size_t>(std::max(1, num_threads())), -1);
  const int64_t chunks = static_cast<int64_t>(first.size());
  parallel_for(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = n * c / chunks, e = n * (c + 1) / chunks;
      int bad = 0;
      for (int64_t i = b; i < e; ++i) bad |= !std::isfinite(w[i]);
      if (!bad) continue;
      for (int64_t i = b; i < e; ++i)
        if (!std::isfinite(w[i])) { first[static_cast<size_t>(c)] = i; break; }
    }
  });
  for (int64_t f : first)
    if (f >= 0) return f;
  return -1;
}

bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

// Ops whose inputs or meaning changed between opset `from` (9 or 10) and 11,
// so raising the opset for DynamicQuantizeLinear would misread them.
bool changed_by_opset11(const std::string& op, int64_t from) {
  static const std::set<std::string> always = {"Clip", "Pad", "Resize", "Upsample", "Scatter"};
  static const std::set<std::string> before10 = {"Slice", "TopK", "Dropout"};
  return always.count(op) || (from < 10 && before10.count(op));
}

// The s7 encoding (onnx_export.h): every channel's 8-bit scale widened by
// 127 / 63 and w quantized again into [-63, 63], round half to even, w viewed
// as [outer, channels, inner] as for quantize_symmetric. Then u8 x s7 pairs
// stay within int16 in vpmaddubsw: 2 * 255 * 63 = 32130 <= 32767.
void narrow_to_7bit(const float* w, int64_t outer, int64_t channels, int64_t inner, int8_t* q, float* scales) {
  for (int64_t c = 0; c < channels; ++c) scales[c] *= 127.f / 63.f;
  parallel_for(outer * channels, std::max<int64_t>(1, 4096 / inner), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float inv = 1.f / scales[r % channels];
      for (int64_t i = r * inner; i < (r + 1) * inner; ++i)
        q[i] = static_cast<int8_t>(std::fmin(63.f, std::fmax(-63.f, std::nearbyint(w[i] * inv))));
    }
  });
}

// How one quantized weight was written: names of the int8 tensor and of its
// scale table (already shaped for the op that reads it).
struct QWeight {
  std::string q, scale;
  std::string dequantized;  // ConvTranspose: the Mul(Cast(q), scale) output, once emitted
  bool u8 = false;          // uint8 with zero point 128 (else int8, zero point 0)
};

class Exporter {
 public:
  Exporter(Model& model, const std::string& out, const ConvertOptions& opt, const OnnxExportOptions& onnx)
      : m_(model), g_(model.graph), out_(out), opt_(opt), onnx_(onnx) {}

  Expected<OnnxExportSummary> run();

 private:
  Status check_paths();
  Status decide();
  Status write_initializers();
  Status write_nodes();
  void write_value_infos();
  Status quantize(const WeightChoice& c, const Value& wv);

  Status add_tensor(const std::string& name, DType dtype, const Shape& shape, const void* data, size_t nbytes);
  std::string fresh(const std::string& base);
  onnx::NodeProto* add_node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                            std::vector<std::string> outputs);
  Status copy_attribute(const Node& n, const std::string& key, const Attribute& a, onnx::AttributeProto* ap);
  const std::array<std::string, 3>& dynamic_quantize(int x);
  Expected<std::vector<std::string>> integer_inputs(const std::array<std::string, 3>& x, const QWeight& qw);
  void add_dequantize(const std::string& p, const std::string& acc, const std::string& x_scale,
                      const std::string& w_scale, const std::string& bias, const std::string& y);
  Status rewrite_linear(const Node& n, const WeightChoice& c);
  Status rewrite_conv(const Node& n, const WeightChoice& c);
  Status rewrite_conv_transpose(const Node& n, const WeightChoice& c);
  Status copy_node(const Node& n, const std::map<size_t, std::string>& replaced_inputs = {});
  std::string value_name(int v) const { return v == kNoValue ? std::string() : g_.values[static_cast<size_t>(v)].name; }
  bool cancelled() const { return opt_.cancel && opt_.cancel->load(); }
  std::string where() const { return m_.path + ": "; }

  Model& m_;
  Graph& g_;
  std::string out_;
  const ConvertOptions& opt_;
  const OnnxExportOptions& onnx_;
  onnx::ModelProto proto_;
  onnx::GraphProto* gp_ = nullptr;
  TempFile onnx_file_, data_file_;
  std::string data_location_;

  QuantPlan plan_;
  std::map<int, const WeightChoice*> by_node_;   // node -> its quantized choice
  std::map<int, const WeightChoice*> by_weight_;  // weight -> the first quantized choice reading it
  std::vector<bool> needs_fp32_;                  // per value: read in its original form somewhere
  std::vector<bool> read_;                        // per value: read by some node
  std::map<int, QWeight> qweights_;
  std::map<int, std::array<std::string, 3>> dql_;  // activation -> (Xq, scale, zero point)
  std::map<std::pair<int, int>, std::string> bias_views_;  // (bias, rank) -> [1, M, 1...] copy
  std::string weight_zero_point_;                          // u8: the shared scalar 128, once written
  std::set<std::string> used_names_;
  FileMappedRanges mapped_;
  std::vector<int8_t> q_, scratch_;
  std::vector<float> scales_;
  uint64_t done_ = 0, total_ = 0;
  OnnxExportSummary summary_;
};

std::string Exporter::fresh(const std::string& base) {
  std::string name = base;
  for (int k = 1; used_names_.count(name); ++k) name = base + "_" + std::to_string(k);
  used_names_.insert(name);
  return name;
}

Status Exporter::check_paths() {
  std::error_code ec;
  const fs::path out = fs::weakly_canonical(fs::path(out_), ec);
  const fs::path data = fs::weakly_canonical(fs::path(out_ + ".data"), ec);
  const fs::path src = fs::weakly_canonical(fs::path(m_.path), ec);
  if (out == src || data == src) return Status::error(out_ + ": refusing to overwrite the source model " + m_.path);
  const fs::path dir = fs::path(m_.path).has_parent_path() ? fs::path(m_.path).parent_path() : fs::path(".");
  for (const ExternalDataFile& e : m_.external_data) {
    const fs::path f = fs::weakly_canonical(dir / e.location, ec);
    if (f == out || f == data)
      return Status::error(out_ + ": refusing to overwrite the source's external data file " + (dir / e.location).string());
  }
  if (fs::path(out_).filename().empty()) return Status::error(out_ + ": the output path names a folder, not a file");
  return Status::ok();
}

// The plan, narrowed to what this exporter writes, and who still needs each
// weight in its original form.
Status Exporter::decide() {
  promote_constants(g_);
  plan_ = plan_quantization(g_, opt_);
  for (WeightChoice& c : plan_.choices) {
    if (!c.quantize) continue;
    const Value& w = g_.values[static_cast<size_t>(c.weight_value)];
    if (w.initializer.dtype() != DType::kFloat32) {
      c.quantize = false;
      c.reason = std::string("fp32: ONNX export quantizes float32 weights only (") + dtype_name(w.initializer.dtype()) + ")";
      continue;
    }
    by_node_[c.node] = &c;
    by_weight_.emplace(c.weight_value, &c);
  }
  needs_fp32_.assign(g_.values.size(), false);
  read_.assign(g_.values.size(), false);
  for (int v : g_.outputs) needs_fp32_[static_cast<size_t>(v)] = true;
  for (size_t i = 0; i < g_.nodes.size(); ++i) {
    const Node& n = g_.nodes[i];
    auto it = by_node_.find(static_cast<int>(i));
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (n.inputs[k] == kNoValue) continue;
      read_[static_cast<size_t>(n.inputs[k])] = true;
      if (it != by_node_.end() && k == 1) continue;  // the weight, read quantized
      // The bias of a quantized Conv is read reshaped (B.bcast), a Gemm's C
      // with beta != 1 scaled (C.beta): the original is not needed for them.
      if (it != by_node_.end() && k == 2 &&
          (it->second->role == WeightRole::kConv ||
           (it->second->role == WeightRole::kGemm && n.attr_float("beta", 1.f) != 1.f)))
        continue;
      needs_fp32_[static_cast<size_t>(n.inputs[k])] = true;
    }
    for (const auto& [key, a] : n.attrs)
      if (a.kind == Attribute::Kind::kGraph)
        return Status::error(where() + n.describe() + ": attribute '" + key +
                             "' is a subgraph or of a type the ONNX exporter cannot write");
  }

  std::set<int> quantized, kept;
  for (const WeightChoice& c : plan_.choices) {
    if (c.weight_value == kNoValue || !g_.values[static_cast<size_t>(c.weight_value)].is_initializer) continue;
    (c.quantize ? quantized : kept).insert(c.weight_value);
  }
  for (int v : quantized) kept.erase(v);
  summary_.quantized = static_cast<int>(quantized.size());
  summary_.kept_fp32 = static_cast<int>(kept.size());

  // DynamicQuantizeLinear needs opset 11; ConvTranspose's weight-only path
  // (Cast + Mul) works at any opset.
  bool needs_dql = false;
  for (const auto& [node, c] : by_node_) needs_dql |= c->role != WeightRole::kConvTranspose;
  int64_t opset = g_.opset;
  if (needs_dql && opset < kQuantOpset) {
    for (const Node& n : g_.nodes)
      if (is_default_domain(n.domain) && changed_by_opset11(n.op_type, opset))
        return Status::error(where() + "opset " + std::to_string(opset) + " model: quantized ONNX needs opset " +
                             std::to_string(kQuantOpset) + " (DynamicQuantizeLinear), but " + n.describe() +
                             " changed meaning by then; re-export the model with opset >= 11");
    opset = kQuantOpset;
  }
  bool wrote_default = false;
  for (const auto& [domain, version] : m_.opset_imports) {
    auto* op = proto_.add_opset_import();
    op->set_domain(domain);
    op->set_version(domain.empty() ? std::max<int64_t>(version, opset) : version);
    wrote_default |= domain.empty();
  }
  if (!wrote_default) {
    auto* op = proto_.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
  }
  return Status::ok();
}

Status Exporter::add_tensor(const std::string& name, DType dtype, const Shape& shape, const void* data,
                            size_t nbytes) {
  onnx::TensorProto* t = gp_->add_initializer();
  t->set_name(name);
  t->set_data_type(static_cast<int32_t>(dtype));
  for (int64_t d : shape) t->add_dims(d);
  if (nbytes < kInlineBelow) {
    t->set_raw_data(data, nbytes);
    return Status::ok();
  }
  SARAI_RETURN_IF_ERROR(data_file_.pad_to(kAlign));
  const uint64_t offset = data_file_.size();
  SARAI_RETURN_IF_ERROR(data_file_.write(data, nbytes));
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto add = [&](const char* k, const std::string& v) {
    auto* e = t->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", data_location_);
  add("offset", std::to_string(offset));
  add("length", std::to_string(nbytes));
  return Status::ok();
}

// Quantizes one weight for the op of its first quantized reader (the plan
// guarantees every quantized reader wants the same form) and writes W.q and
// W.scale.
Status Exporter::quantize(const WeightChoice& c, const Value& wv) {
  const Tensor& t = wv.initializer;
  const float* w = t.data<float>();
  const int64_t numel = t.numel();
  const Shape& shape = t.shape();
  const Node& node = g_.nodes[static_cast<size_t>(c.node)];
  if (int64_t bad = first_non_finite(w, numel); bad >= 0)
    return Status::error(where() + "tensor '" + wv.name + "': element " + std::to_string(bad) + " is " +
                         (std::isnan(w[bad]) ? "NaN" : "infinite") + "; weights must be finite to quantize");
  const bool per_tensor = opt_.per_tensor;
  // MatMulInteger's weights take the chosen encoding; ConvInteger's are u8
  // whatever it is (onnx_export.h); ConvTranspose's are dequantized in the
  // graph and keep the full 8 bits as int8.
  const bool linear = c.role == WeightRole::kMatMul || c.role == WeightRole::kGemm;
  const bool seven_bit = linear && onnx_.weights == OnnxWeights::kS7;
  const bool unsigned_weights = c.role == WeightRole::kConv || (linear && onnx_.weights == OnnxWeights::kU8);
  q_.resize(static_cast<size_t>(numel));
  Shape q_shape = shape, scale_shape;
  std::vector<float> table;  // the scale tensor as written

  switch (c.role) {
    case WeightRole::kMatMul:
    case WeightRole::kGemm: {
      const float alpha = c.role == WeightRole::kGemm ? node.attr_float("alpha", 1.f) : 1.f;
      const int64_t N = shape[static_cast<size_t>(c.axis)], K = numel / N;
      scales_.assign(per_tensor ? 1 : static_cast<size_t>(N), 0.f);
      if (c.axis == 1) {  // W[K, N], as MatMulInteger reads it
        if (per_tensor) {
          quantize_symmetric(w, 1, 1, numel, q_.data(), scales_.data());
          if (seven_bit) narrow_to_7bit(w, 1, 1, numel, q_.data(), scales_.data());
        } else {  // the converter's loop, plain: equal to quantize_symmetric(w, K, N, 1, ...)
          WeightForm f;
          f.kind = WeightForm::Kind::kPlainKN;
          f.K = K;
          f.N = N;
          std::vector<int32_t> sums(static_cast<size_t>(N));  // not written to the ONNX file
          quantize_weight(w, f, /*per_tensor=*/false, 1.f, q_.data(), scales_.data(), sums.data());
          if (seven_bit) narrow_to_7bit(w, K, N, 1, q_.data(), scales_.data());
        }
      } else {  // Gemm transB = 1: W[N, K], stored transposed
        scratch_.resize(static_cast<size_t>(numel));
        quantize_symmetric(w, 1, per_tensor ? 1 : N, per_tensor ? numel : K, scratch_.data(), scales_.data());
        if (seven_bit) narrow_to_7bit(w, 1, per_tensor ? 1 : N, per_tensor ? numel : K, scratch_.data(), scales_.data());
        parallel_for(K, 64, [&](int64_t k0, int64_t k1) {
          for (int64_t k = k0; k < k1; ++k)
            for (int64_t n = 0; n < N; ++n) q_[static_cast<size_t>(k * N + n)] = scratch_[static_cast<size_t>(n * K + k)];
        });
        q_shape = {K, N};
      }
      for (float& s : scales_) s *= alpha;
      table = scales_;
      scale_shape = {static_cast<int64_t>(table.size())};
      break;
    }
    case WeightRole::kConv: {  // W[M, C/g, k...]: one channel per row
      const int64_t M = shape[0];
      scales_.assign(per_tensor ? 1 : static_cast<size_t>(M), 0.f);
      quantize_symmetric(w, 1, per_tensor ? 1 : M, per_tensor ? numel : numel / M, q_.data(), scales_.data());
      if (seven_bit) narrow_to_7bit(w, 1, per_tensor ? 1 : M, per_tensor ? numel : numel / M, q_.data(), scales_.data());
      table = scales_;
      scale_shape = per_tensor ? Shape{1} : Shape(shape.size(), 1);
      if (!per_tensor) scale_shape[1] = M;  // [1, M, 1...]: broadcasts over ConvInteger's output
      break;
    }
    case WeightRole::kConvTranspose: {  // W[C, M/g, k...], channel g * (M/g) + m, g = c / (C/g)
      const int64_t group = node.attr_int("group", 1), C = shape[0], Mg = shape[1];
      const int64_t Cg = C / group, inner = numel / (C * Mg);
      if (per_tensor) {
        scales_.assign(1, 0.f);
        quantize_symmetric(w, 1, 1, numel, q_.data(), scales_.data());
        table = scales_;
        scale_shape = {1};
        break;
      }
      scales_.assign(static_cast<size_t>(group * Mg), 0.f);
      for (int64_t gi = 0; gi < group; ++gi) {  // each group's block is contiguous: [C/g, M/g, inner]
        const int64_t off = gi * Cg * Mg * inner;
        quantize_symmetric(w + off, Cg, Mg, inner, q_.data() + off, scales_.data() + gi * Mg);
      }
      scale_shape = Shape(shape.size(), 1);
      if (group == 1) {
        scale_shape[1] = Mg;  // [1, M, 1...]
        table = scales_;
      } else {
        scale_shape[0] = C;  // [C, M/g, 1...]: the channel depends on both axes
        scale_shape[1] = Mg;
        table.resize(static_cast<size_t>(C * Mg));
        for (int64_t ci = 0; ci < C; ++ci)
          for (int64_t m = 0; m < Mg; ++m)
            table[static_cast<size_t>(ci * Mg + m)] = scales_[static_cast<size_t>((ci / Cg) * Mg + m)];
      }
      break;
    }
  }
  // u8: w8 + 128, which in two's complement is w8's bit pattern with the
  // top bit flipped.
  if (unsigned_weights)
    parallel_for(numel, int64_t{1} << 16, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) q_[static_cast<size_t>(i)] = static_cast<int8_t>(static_cast<uint8_t>(q_[static_cast<size_t>(i)]) ^ 0x80u);
    });
  QWeight& qw = qweights_[c.weight_value];
  qw.u8 = unsigned_weights;
  qw.q = fresh(wv.name + ".q");
  qw.scale = fresh(wv.name + ".scale");
  SARAI_RETURN_IF_ERROR(add_tensor(qw.q, unsigned_weights ? DType::kUInt8 : DType::kInt8, q_shape, q_.data(), q_.size()));
  return add_tensor(qw.scale, DType::kFloat32, scale_shape, table.data(), table.size() * sizeof(float));
}

Status Exporter::write_initializers() {
  for (const Value& v : g_.values)
    if (v.is_initializer) total_ += v.initializer.nbytes();
  for (size_t i = 0; i < g_.values.size(); ++i) {
    if (cancelled()) return Status::error(out_ + ": interrupted; nothing was written");
    const Value& v = g_.values[i];
    if (!v.is_initializer) continue;
    const Tensor& t = v.initializer;
    auto qc = by_weight_.find(static_cast<int>(i));
    if (qc != by_weight_.end()) SARAI_RETURN_IF_ERROR(quantize(*qc->second, v));
    // Written as it is when something reads it so, or nothing reads it at
    // all (left as the source had it).
    if (needs_fp32_[i] || !read_[i])
      SARAI_RETURN_IF_ERROR(add_tensor(v.name, t.dtype(), t.shape(), t.raw(), t.nbytes()));
    if (mapped_.contains(t.raw(), t.nbytes())) release_pages(t.raw(), t.nbytes());
    done_ += t.nbytes();
    if (opt_.progress) opt_.progress(done_, total_);
  }
  // The largest buffers are done with; the node pass needs only small ones.
  std::vector<int8_t>().swap(q_);
  std::vector<int8_t>().swap(scratch_);
  return Status::ok();
}

onnx::NodeProto* Exporter::add_node(const std::string& op, const std::string& name, std::vector<std::string> inputs,
                                    std::vector<std::string> outputs) {
  onnx::NodeProto* n = gp_->add_node();
  n->set_op_type(op);
  n->set_name(fresh(name));
  for (auto& s : inputs) n->add_input(std::move(s));
  for (auto& s : outputs) n->add_output(std::move(s));
  return n;
}

Status Exporter::copy_attribute(const Node& n, const std::string& key, const Attribute& a, onnx::AttributeProto* ap) {
  using A = onnx::AttributeProto;
  ap->set_name(key);
  switch (a.kind) {
    case Attribute::Kind::kFloat: ap->set_type(A::FLOAT); ap->set_f(a.f); break;
    case Attribute::Kind::kInt: ap->set_type(A::INT); ap->set_i(a.i); break;
    case Attribute::Kind::kString: ap->set_type(A::STRING); ap->set_s(a.s); break;
    case Attribute::Kind::kFloats:
      ap->set_type(A::FLOATS);
      for (float f : a.floats) ap->add_floats(f);
      break;
    case Attribute::Kind::kInts:
      ap->set_type(A::INTS);
      for (int64_t i : a.ints) ap->add_ints(i);
      break;
    case Attribute::Kind::kStrings:
      ap->set_type(A::STRINGS);
      for (const std::string& s : a.strings) ap->add_strings(s);
      break;
    case Attribute::Kind::kTensor: {
      ap->set_type(A::TENSOR);
      onnx::TensorProto* t = ap->mutable_t();
      t->set_data_type(static_cast<int32_t>(a.t.dtype()));
      for (int64_t d : a.t.shape()) t->add_dims(d);
      t->set_raw_data(a.t.raw(), a.t.nbytes());
      break;
    }
    case Attribute::Kind::kGraph:
      return Status::error(where() + n.describe() + ": attribute '" + key +
                           "' is a subgraph or of a type the ONNX exporter cannot write");
  }
  return Status::ok();
}

Status Exporter::copy_node(const Node& n, const std::map<size_t, std::string>& replaced_inputs) {
  std::vector<std::string> ins, outs;
  for (size_t k = 0; k < n.inputs.size(); ++k) {
    auto r = replaced_inputs.find(k);
    ins.push_back(r != replaced_inputs.end() ? r->second : value_name(n.inputs[k]));
  }
  for (int v : n.outputs) outs.push_back(value_name(v));
  onnx::NodeProto* p = gp_->add_node();
  p->set_op_type(n.op_type);
  p->set_name(n.name);
  if (!n.domain.empty()) p->set_domain(n.domain);
  for (auto& s : ins) p->add_input(std::move(s));
  for (auto& s : outs) p->add_output(std::move(s));
  for (const auto& [key, a] : n.attrs) SARAI_RETURN_IF_ERROR(copy_attribute(n, key, a, p->add_attribute()));
  return Status::ok();
}

// DynamicQuantizeLinear of activation x, shared by every quantized node that
// reads x (emitted before the first one, so before all of them).
const std::array<std::string, 3>& Exporter::dynamic_quantize(int x) {
  auto it = dql_.find(x);
  if (it != dql_.end()) return it->second;
  const std::string base = value_name(x);
  std::array<std::string, 3> o = {fresh(base + "_quantized"), fresh(base + "_scale"), fresh(base + "_zero_point")};
  add_node("DynamicQuantizeLinear", base + "_DynamicQuantizeLinear", {base}, {o[0], o[1], o[2]});
  return dql_.emplace(x, o).first->second;
}

// MatMulInteger's / ConvInteger's inputs: Xq, W.q, the activation's zero
// point and, for u8 weights, the weight zero point 128 (one scalar uint8
// initializer for every node that reads one: per tensor, which ConvInteger
// in ONNX Runtime requires). The expansion MLAS computes with it, per output element:
//   sum_k (x_k - zx)(w_k - 128) = sum x_k w_k - 128 sum x_k - zx sum w_k + K zx 128
// with w_k - 128 = the s8 weight, exactly.
Expected<std::vector<std::string>> Exporter::integer_inputs(const std::array<std::string, 3>& x, const QWeight& qw) {
  if (!qw.u8) return std::vector<std::string>{x[0], qw.q, x[2]};
  if (weight_zero_point_.empty()) {
    const uint8_t zp = 128;
    weight_zero_point_ = fresh("sarai.weight_zero_point");
    SARAI_RETURN_IF_ERROR(add_tensor(weight_zero_point_, DType::kUInt8, Shape{}, &zp, 1));
  }
  return std::vector<std::string>{x[0], qw.q, x[2], weight_zero_point_};
}

// The float tail of MatMulInteger / ConvInteger (names prefixed p):
//   y = Cast<float>(acc) * (x_scale * w_scale) [+ bias]
void Exporter::add_dequantize(const std::string& p, const std::string& acc, const std::string& x_scale,
                              const std::string& w_scale, const std::string& bias, const std::string& y) {
  const std::string cast = fresh(p + "Cast_output_0"), s = fresh(p + "scale_output_0");
  auto* to = add_node("Cast", p + "Cast", {acc}, {cast})->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT);
  add_node("Mul", p + "scale", {x_scale, w_scale}, {s});
  if (bias.empty()) {
    add_node("Mul", p + "Mul", {cast, s}, {y});
  } else {
    const std::string scaled = fresh(p + "Mul_output_0");
    add_node("Mul", p + "Mul", {cast, s}, {scaled});
    add_node("Add", p + "Add", {scaled, bias}, {y});
  }
}

Status Exporter::rewrite_linear(const Node& n, const WeightChoice& c) {
  const QWeight& qw = qweights_.at(c.weight_value);
  const auto& x = dynamic_quantize(n.inputs[0]);
  const std::string y = value_name(n.outputs[0]);
  std::string bias;
  if (c.role == WeightRole::kGemm && n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    const Value& cv = g_.values[static_cast<size_t>(n.inputs[2])];
    const float beta = n.attr_float("beta", 1.f);
    if (beta == 1.f) {
      bias = cv.name;
    } else {  // a per-column constant (the plan checked): beta folded in
      std::vector<float> b(cv.initializer.span<float>().begin(), cv.initializer.span<float>().end());
      for (float& f : b) f *= beta;
      bias = fresh(cv.name + ".beta");
      SARAI_RETURN_IF_ERROR(add_tensor(bias, DType::kFloat32, cv.initializer.shape(), b.data(), b.size() * 4));
    }
  }
  const std::string p = n.name + "/";
  const std::string mm = fresh(p + "MatMulInteger_output_0");
  auto ins = integer_inputs(x, qw);
  if (!ins) return ins.status();
  add_node("MatMulInteger", p + "MatMulInteger", std::move(*ins), {mm});
  add_dequantize(p, mm, x[1], qw.scale, bias, y);
  return Status::ok();
}

Status Exporter::rewrite_conv(const Node& n, const WeightChoice& c) {
  const QWeight& qw = qweights_.at(c.weight_value);
  const auto& x = dynamic_quantize(n.inputs[0]);
  const std::string y = value_name(n.outputs[0]);
  const int rank = g_.values[static_cast<size_t>(c.weight_value)].initializer.rank();
  std::string bias;
  if (n.inputs.size() > 2 && n.inputs[2] != kNoValue) {
    const int b = n.inputs[2];
    const Value& bv = g_.values[static_cast<size_t>(b)];
    if (!bv.is_initializer || bv.initializer.dtype() != DType::kFloat32 || bv.initializer.rank() != 1)
      return Status::error(where() + n.describe() + ": bias '" + bv.name +
                           "' is not a 1-D float32 constant; the quantized Conv needs one");
    auto it = bias_views_.find({b, rank});
    if (it == bias_views_.end()) {  // B[M] as [1, M, 1...], to add to ConvInteger's [N, M, ...] output
      Shape s(static_cast<size_t>(rank), 1);
      s[1] = bv.initializer.dim(0);
      const std::string name = fresh(bv.name + ".bcast");
      SARAI_RETURN_IF_ERROR(add_tensor(name, DType::kFloat32, s, bv.initializer.raw(), bv.initializer.nbytes()));
      it = bias_views_.emplace(std::make_pair(b, rank), name).first;
    }
    bias = it->second;
  }
  const std::string p = n.name + "/";
  const std::string ci = fresh(p + "ConvInteger_output_0");
  auto ins = integer_inputs(x, qw);
  if (!ins) return ins.status();
  onnx::NodeProto* conv = add_node("ConvInteger", p + "ConvInteger", std::move(*ins), {ci});
  for (const auto& [key, a] : n.attrs) SARAI_RETURN_IF_ERROR(copy_attribute(n, key, a, conv->add_attribute()));
  add_dequantize(p, ci, x[1], qw.scale, bias, y);
  return Status::ok();
}

Status Exporter::rewrite_conv_transpose(const Node& n, const WeightChoice& c) {
  QWeight& qw = qweights_.at(c.weight_value);
  if (qw.dequantized.empty()) {
    const std::string& w = value_name(c.weight_value);
    const std::string cast = fresh(w + ".q_float");
    qw.dequantized = fresh(w + ".dequantized");
    auto* cn = add_node("Cast", w + "/Cast", {qw.q}, {cast});
    auto* to = cn->add_attribute();
    to->set_name("to");
    to->set_type(onnx::AttributeProto::INT);
    to->set_i(onnx::TensorProto::FLOAT);
    add_node("Mul", w + "/dequantize", {cast, qw.scale}, {qw.dequantized});
  }
  return copy_node(n, {{size_t{1}, qw.dequantized}});
}

Status Exporter::write_nodes() {
  auto order = g_.topological_order();
  if (!order) return Status::error(where() + order.message());
  for (int i : *order) {
    const Node& n = g_.nodes[static_cast<size_t>(i)];
    auto it = by_node_.find(i);
    if (it == by_node_.end()) {
      SARAI_RETURN_IF_ERROR(copy_node(n));
      continue;
    }
    switch (it->second->role) {
      case WeightRole::kMatMul:
      case WeightRole::kGemm: SARAI_RETURN_IF_ERROR(rewrite_linear(n, *it->second)); break;
      case WeightRole::kConv: SARAI_RETURN_IF_ERROR(rewrite_conv(n, *it->second)); break;
      case WeightRole::kConvTranspose: SARAI_RETURN_IF_ERROR(rewrite_conv_transpose(n, *it->second)); break;
    }
  }
  return Status::ok();
}

void set_value_info(const Value& v, onnx::ValueInfoProto* vi) {
  vi->set_name(v.name);
  if (v.dtype == DType::kUndefined && !v.has_shape) return;
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  if (v.dtype != DType::kUndefined) tt->set_elem_type(static_cast<int32_t>(v.dtype));
  if (!v.has_shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : v.dims) {
    auto* dim = shape->add_dim();
    if (d.is_fixed()) dim->set_dim_value(d.value);
    else if (!d.symbol.empty()) dim->set_dim_param(d.symbol);
  }
}

void Exporter::write_value_infos() {
  for (int v : g_.inputs) set_value_info(g_.values[static_cast<size_t>(v)], gp_->add_input());
  for (int v : g_.outputs) set_value_info(g_.values[static_cast<size_t>(v)], gp_->add_output());
}

Expected<OnnxExportSummary> Exporter::run() {
  const auto t0 = std::chrono::steady_clock::now();
  SARAI_RETURN_IF_ERROR(check_paths());
  SARAI_RETURN_IF_ERROR(decide());
  for (const Value& v : g_.values) used_names_.insert(v.name);
  for (const Node& n : g_.nodes) used_names_.insert(n.name);

  // Only the source's external data files: their pages can be given back.
  std::vector<std::string> files;
  const fs::path dir = fs::path(m_.path).has_parent_path() ? fs::path(m_.path).parent_path() : fs::path(".");
  for (const ExternalDataFile& e : m_.external_data) files.push_back((dir / e.location).string());
  mapped_ = FileMappedRanges::current(files);

  data_location_ = fs::path(out_).filename().string() + ".data";
  SARAI_RETURN_IF_ERROR(data_file_.open(out_ + ".data"));
  SARAI_RETURN_IF_ERROR(onnx_file_.open(out_));

  proto_.set_ir_version(std::max<int64_t>(m_.ir_version, 7));
  proto_.set_producer_name("sarai-rt");
  std::string version = kConverterVersion;
  if (version.rfind("sarai-rt ", 0) == 0) version = version.substr(9);
  proto_.set_producer_version(version);
  proto_.set_doc_string(std::string("INT8 ") + (opt_.per_tensor ? "per-tensor" : "per-channel") +
                        " dynamic quantization (" + onnx_weights_name(onnx_.weights) +
                        " weights) by sarai-rt convert --to onnx from " + fs::path(m_.path).filename().string());
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = proto_.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  // The source's own description carries over (its metadata_props hold what
  // callers read through ONNX Runtime's get_modelmeta(): labels, a
  // recognizer's characters, a speech model's sizes).
  const ModelDescription& desc = m_.description;
  if (!desc.domain.empty()) proto_.set_domain(desc.domain);
  if (desc.model_version != 0) proto_.set_model_version(desc.model_version);
  for (const auto& [k, v] : desc.props)
    if (k != "sarai.source" && k != "sarai.onnx_weights" && k != "sarai.options") meta(k, v);  // ours, below
  meta("sarai.source", fs::path(m_.path).filename().string());
  meta("sarai.onnx_weights", onnx_weights_name(onnx_.weights));
  if (!opt_.command_line.empty()) meta("sarai.options", opt_.command_line);
  gp_ = proto_.mutable_graph();
  gp_->set_name(g_.name.empty() ? "main" : g_.name);
  if (!desc.graph_doc_string.empty()) gp_->set_doc_string(desc.graph_doc_string);

  SARAI_RETURN_IF_ERROR(write_initializers());
  if (cancelled()) return Status::error(out_ + ": interrupted; nothing was written");
  SARAI_RETURN_IF_ERROR(write_nodes());
  write_value_infos();

  const size_t size = proto_.ByteSizeLong();
  if (size > static_cast<size_t>(INT_MAX))
    return Status::error(out_ + ": the graph is " + std::to_string(size) + " bytes without its weights; protobuf cannot hold more than 2 GB");
  std::string bytes;
  if (!proto_.SerializeToString(&bytes)) return Status::error(out_ + ": protobuf serialization failed");
  SARAI_RETURN_IF_ERROR(onnx_file_.write(bytes.data(), bytes.size()));
  if (cancelled()) return Status::error(out_ + ": interrupted; nothing was written");
  SARAI_RETURN_IF_ERROR(data_file_.sync_close());
  SARAI_RETURN_IF_ERROR(onnx_file_.sync_close());
  summary_.bytes_out = data_file_.size() + onnx_file_.size();
  // Data first: a model file never points at a data file that is not there.
  SARAI_RETURN_IF_ERROR(data_file_.commit());
  if (Status s = onnx_file_.commit(); !s) {
    data_file_.revoke();
    return s;
  }
  std::error_code ec;
  summary_.bytes_in = fs::file_size(m_.path, ec);
  for (const ExternalDataFile& e : m_.external_data) summary_.bytes_in += e.file_size;
  summary_.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return summary_;
}

}  // namespace

const char* onnx_weights_name(OnnxWeights w) {
  switch (w) {
    case OnnxWeights::kU8: return "u8";
    case OnnxWeights::kS8: return "s8";
    case OnnxWeights::kS7: return "s7";
  }
  return "?";
}

Expected<OnnxWeights> parse_onnx_weights(const std::string& s) {
  for (OnnxWeights w : {OnnxWeights::kU8, OnnxWeights::kS8, OnnxWeights::kS7})
    if (s == onnx_weights_name(w)) return w;
  return Status::error("--onnx-weights must be u8, s8 or s7, not '" + s + "'");
}

Expected<OnnxExportSummary> export_quantized_onnx(Model& model, const std::string& out_path, const ConvertOptions& opt,
                                                  const OnnxExportOptions& onnx) {
  if (!opt.activation_ranges.empty())
    return Status::error(out_path + ": static activation ranges are written to .sarai blobs only; the ONNX "
                         "export quantizes activations dynamically (DynamicQuantizeLinear)");
  Exporter e(model, out_path, opt, onnx);
  return e.run();
}

}  // namespace sarai::quant
