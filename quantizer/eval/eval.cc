#include "quantizer/eval/eval.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader/npy.h"
#include "loader/tensor_file_name.h"
#include "runtime/atomic_file.h"
#include "runtime/fuse.h"
#include "runtime/mapped_file.h"
#include "runtime/quantized_op.h"

namespace fs = std::filesystem;

namespace sarai::eval {

using qop::is_quantized;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

Expected<std::vector<InputSet>> read_input_sets(const Session& session, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::error(dir + ": not a folder");
  // File names map to input names by loader/tensor_file_name.h (the rule
  // `run --output-dir` writes), or are the input's name itself.
  std::vector<std::string> input_names;
  for (int v : session.graph().inputs) input_names.push_back(session.graph().values[static_cast<size_t>(v)].name);
  auto read_set = [&](const fs::path& folder) -> Expected<InputSet> {
    InputSet set{folder.string(), {}};
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(folder, ec))
      if (e.is_regular_file() && e.path().extension() == ".npy") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::map<std::string, fs::path> seen;
    for (const fs::path& f : files) {
      const std::string name = match_tensor_file(f.filename().string(), input_names);
      if (auto [it, fresh] = seen.emplace(name, f); !fresh)
        return Status::error(f.string() + ": input '" + name + "' already comes from " + it->second.filename().string());
      auto t = read_npy(f.string());
      if (!t) return t.status();
      NamedTensor in{name, std::move(*t)};
      if (Status st = session.check_input(in); !st) return Status::error(f.string() + ": " + st.message());
      set.tensors.push_back(std::move(in));
    }
    return set;
  };
  std::vector<InputSet> sets;
  auto top = read_set(dir);
  if (!top) return top.status();
  if (!top->tensors.empty()) {
    sets.push_back(std::move(*top));
    return sets;
  }
  std::vector<fs::path> subdirs;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory()) subdirs.push_back(e.path());
  std::sort(subdirs.begin(), subdirs.end());
  for (const fs::path& d : subdirs) {
    auto s = read_set(d);
    if (!s) return s.status();
    if (!s->tensors.empty()) sets.push_back(std::move(*s));
  }
  if (sets.empty()) return Status::error(dir + ": no .npy files (NAME.npy per input, in DIR or in its subfolders)");
  return sets;
}

namespace {
// One untimed run (planning, page faults), then `runs` timed ones; returns
// their median time (0 without timed runs); *out gets the outputs.
Expected<double> timed(Session& s, const std::vector<NamedTensor>& in, int runs, std::vector<NamedTensor>* out) {
  if (Status st = s.run(in, out); !st) return st;
  std::vector<double> ms;
  for (int r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    if (Status st = s.run(in, out); !st) return st;
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return ms.empty() ? 0.0 : median(ms);
}
}  // namespace

namespace {
// Every reference output, by name, must be an output of the test model.
Expected<std::vector<std::string>> matched_outputs(const Session& reference, const Session& test) {
  std::vector<std::string> names;
  const Graph& rg = reference.graph();
  const Graph& tg = test.graph();
  for (int id : rg.outputs) {
    const std::string& n = rg.values[static_cast<size_t>(id)].name;
    const int tid = tg.find_value(n);
    if (tid == kNoValue || std::find(tg.outputs.begin(), tg.outputs.end(), tid) == tg.outputs.end())
      return Status::error(test.model().path + ": has no output '" + n + "' (an output of " +
                           reference.model().path + ")");
    names.push_back(n);
  }
  return names;
}

// Adds one set's error of each named output to errors[i].
Status add_errors(const std::vector<std::string>& names, const std::vector<NamedTensor>& ref_out,
                  const std::vector<NamedTensor>& test_out, const std::string& set,
                  std::vector<quant::OutputError>* errors) {
  for (size_t i = 0; i < names.size(); ++i) {
    auto find = [&](const std::vector<NamedTensor>& outs) {
      return std::find_if(outs.begin(), outs.end(), [&](const NamedTensor& t) { return t.name == names[i]; });
    };
    Status st = (*errors)[i].add(find(ref_out)->tensor, find(test_out)->tensor);
    if (!st) return Status::error(set + ": output '" + names[i] + "': " + st.message());
  }
  return Status::ok();
}
}  // namespace

Expected<Comparison> compare_outputs(Session& reference, Session& test, const std::vector<InputSet>& sets, int runs) {
  Comparison c;
  auto names = matched_outputs(reference, test);
  if (!names) return names.status();
  c.names = std::move(*names);
  c.errors.resize(c.names.size());
  std::vector<NamedTensor> ref_out, test_out;
  for (const InputSet& set : sets) {
    auto rm = timed(reference, set.tensors, runs, &ref_out);
    if (!rm) return Status::error(set.name + ": " + rm.message());
    auto tm = timed(test, set.tensors, runs, &test_out);
    if (!tm) return Status::error(set.name + ": " + tm.message());
    c.reference_ms += *rm;
    c.test_ms += *tm;
    SARAI_RETURN_IF_ERROR(add_errors(c.names, ref_out, test_out, set.name, &c.errors));
  }
  return c;
}

Expected<ReferenceOutputs> ReferenceOutputs::run(Session& reference, const std::vector<InputSet>& sets) {
  ReferenceOutputs r;
  r.session = &reference;
  for (const InputSet& set : sets) {
    auto out = reference.run(set.tensors);
    if (!out) return Status::error(set.name + ": " + out.message());
    r.per_set.push_back(std::move(*out));
  }
  return r;
}

Expected<double> min_output_cosine(const ReferenceOutputs& reference, Session& test, const std::vector<InputSet>& sets) {
  auto names = matched_outputs(*reference.session, test);
  if (!names) return names.status();
  std::vector<quant::OutputError> errors(names->size());
  std::vector<NamedTensor> test_out;
  for (size_t k = 0; k < sets.size(); ++k) {
    if (Status st = test.run(sets[k].tensors, &test_out); !st) return Status::error(sets[k].name + ": " + st.message());
    SARAI_RETURN_IF_ERROR(add_errors(*names, reference.per_set[k], test_out, sets[k].name, &errors));
  }
  double worst = 1;
  for (const quant::OutputError& e : errors) worst = std::min(worst, e.cosine());
  return worst;
}

Expected<quant::ActivationRanges> calibrate_ranges(std::shared_ptr<const Model> ref, const std::vector<InputSet>& sets,
                                                   const std::set<std::string>& names, const quant::RangeOptions& o,
                                                   int threads, const KernelTable& kernels) {
  std::map<std::string, quant::ActivationStats> stats;
  for (const std::string& n : names) stats[n];
  int pass = 0;
  Status failed = Status::ok();
  auto observe = [&](const std::string& name, const Tensor& t) {
    auto it = stats.find(name);
    if (it == stats.end() || !failed) return;
    if (t.dtype() != DType::kFloat32) {
      failed = Status::error("value '" + name + "' has dtype " + dtype_name(t.dtype()) + "; static ranges are for float32");
      return;
    }
    if (pass == 0) {
      Status st = it->second.observe_range(t.data<float>(), t.numel());
      if (!st) failed = Status::error("value '" + name + "' " + st.message());
    } else {
      it->second.observe_histogram(t.data<float>(), t.numel());
    }
  };
  SessionOptions so;
  so.num_threads = threads;
  so.fuse = false;
  so.fuse_patterns = false;
  so.stream_weights = true;  // convert stays in bounded memory: weight pages are released after use
  const Graph& g = ref->graph;
  so.observer = [&](const Node& n, std::span<const Tensor> outs) {
    for (size_t k = 0; k < outs.size(); ++k)
      if (n.outputs[k] != kNoValue && outs[k].defined()) observe(g.values[static_cast<size_t>(n.outputs[k])].name, outs[k]);
  };
  auto session = Session::create(ref, kernels, so);
  if (!session) return session.status();
  const int passes = o.method == quant::RangeMethod::kPercentile ? 2 : 1;
  for (pass = 0; pass < passes; ++pass) {
    for (const Value& v : g.values)
      if (v.is_initializer) observe(v.name, v.initializer);
    for (const InputSet& set : sets) {
      for (const NamedTensor& t : set.tensors) observe(t.name, t.tensor);
      if (Status st = (*session)->run(set.tensors).status(); !st) return Status::error(set.name + ": " + st.message());
      if (!failed) return Status::error(set.name + ": " + failed.message());
    }
  }
  quant::ActivationRanges ranges;
  for (const auto& [name, s] : stats) {
    if (s.count() == 0)
      return Status::error(ref->path + ": value '" + name + "' got no finite value on the calibration sets");
    ranges[name] = s.range(o);
  }
  return ranges;
}

Expected<std::shared_ptr<Model>> with_one_quantized_node(std::shared_ptr<const Model> ref,
                                                         std::shared_ptr<const Model> quantized,
                                                         const std::string& node) {
  auto find_node = [&](const Graph& g) -> int {
    for (size_t i = 0; i < g.nodes.size(); ++i)
      if (g.nodes[i].name == node) return static_cast<int>(i);
    return -1;
  };
  const Graph& qg = quantized->graph;
  const int qi = find_node(qg);
  if (qi < 0 || !is_quantized(qg.nodes[static_cast<size_t>(qi)]))
    return Status::error(quantized->path + ": has no quantized node '" + node + "'");
  auto m = std::make_shared<Model>(*ref);
  Graph& g = m->graph;
  const int ri = find_node(g);
  if (ri < 0) return Status::error(ref->path + ": has no node '" + node + "'");
  Node n = qg.nodes[static_cast<size_t>(qi)];
  for (int& v : n.inputs) {
    if (v == kNoValue) continue;
    const Value& qv = qg.values[static_cast<size_t>(v)];
    int mine = g.find_value(qv.name);
    if (mine == kNoValue) {  // a tensor the converter made: W.q, W.scale, W.wsum, a Gemm bias
      if (!qv.is_initializer)
        return Status::error(quantized->path + ": node '" + node + "' reads '" + qv.name + "', which " + ref->path +
                             " does not have");
      mine = g.add_value(qv.name);
      Value& nv = g.values[static_cast<size_t>(mine)];
      nv = qv;
      nv.producer = -1;
    }
    v = mine;
  }
  for (int& v : n.outputs) {
    if (v == kNoValue) continue;
    v = g.find_value(qg.values[static_cast<size_t>(v)].name);
    if (v == kNoValue) return Status::error(ref->path + ": node '" + node + "' has an output the reference lacks");
  }
  g.nodes[static_cast<size_t>(ri)] = std::move(n);
  for (const auto& [domain, version] : quantized->opset_imports) m->opset_imports.emplace(domain, version);
  m->keepalive.push_back(quantized);
  m->keepalive.push_back(ref);
  m->mapped_regions.insert(m->mapped_regions.end(), quantized->mapped_regions.begin(), quantized->mapped_regions.end());
  return m;
}

namespace {
// A copy of `m` whose MatMul -> Div -> Softmax -> MatMul chains are fused
// Attention ops of `precision` (runtime/fuse.h).
std::shared_ptr<Model> with_fused_attention(const Model& m, const std::string& precision) {
  auto f = std::make_shared<Model>(m);
  fuse_scaled_softmax(f->graph);
  fuse_attention(f->graph, precision);
  return f;
}
bool is_int8_attention(const Node& n) {
  return n.domain == "sarai" && n.op_type == "Attention" && n.attr_string("precision", "fp32") != "fp32";
}
}  // namespace

Expected<std::vector<Sensitivity>> single_layer_sensitivity(std::shared_ptr<const Model> ref_model,
                                                            const ReferenceOutputs& ref,
                                                            std::shared_ptr<const Model> test,
                                                            const std::vector<InputSet>& sets,
                                                            const KernelTable& kernels, const SessionOptions& options,
                                                            const std::string& attention) {
  std::vector<Sensitivity> r;
  for (const Node& n : test->graph.nodes) {
    if (!is_quantized(n)) continue;
    auto one = with_one_quantized_node(ref_model, test, n.name);
    if (!one) return one.status();
    auto s = Session::create(*one, kernels, options);
    if (!s) return s.status();
    auto c = min_output_cosine(ref, **s, sets);
    if (!c) return c.status();
    r.push_back({n.name, *c});
  }
  if (attention == "fp32") return r;
  // Each attention block alone: the reference with its chains fused in fp32
  // but this one in `attention`.
  const auto fused = with_fused_attention(*ref_model, "fp32");
  for (size_t i = 0; i < fused->graph.nodes.size(); ++i) {
    if (fused->graph.nodes[i].op_type != "Attention" || fused->graph.nodes[i].domain != "sarai") continue;
    auto one = std::make_shared<Model>(*fused);
    Node& n = one->graph.nodes[i];
    n.attrs["precision"] = Attribute::of_string(attention);
    SessionOptions o = options;
    o.attention = AttentionPrecision::kFloat32;  // no further fusion changes it
    auto s = Session::create(one, kernels, o);
    if (!s) return s.status();
    auto c = min_output_cosine(ref, **s, sets);
    if (!c) return c.status();
    r.push_back({n.name, *c});
  }
  return r;
}

SpillFile::~SpillFile() {
  if (fd_ >= 0) ::close(fd_);
}

Status SpillFile::put(const std::string& name, const Tensor& t) {
  if (fd_ < 0) {
    const char* tmp = std::getenv("TMPDIR");
    dir_ = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
    // Unlinked from the start (O_TMPFILE), or at once where the file system
    // lacks it: nothing is left behind, whatever ends the process.
    fd_ = ::open(dir_.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd_ < 0 && errno == EOPNOTSUPP) {
      std::string path = dir_ + "/sarai-rt-spill-XXXXXX";
      fd_ = ::mkostemp(path.data(), O_CLOEXEC);
      if (fd_ >= 0) ::unlink(path.c_str());
    }
    if (fd_ < 0)
      return Status::error("cannot create a temporary file in " + dir_ + " (TMPDIR) for the test model's layer "
                           "outputs: " + std::strerror(errno));
  }
  const uint64_t offset = end_;
  if (const int err = pwrite_fully(fd_, t.raw(), t.nbytes(), offset); err != 0)
    return Status::error("cannot write the test model's layer outputs to a temporary file in " + dir_ +
                         " (TMPDIR): " + std::strerror(err));
  end_ += t.nbytes();
  written_ += t.nbytes();
  entries_[name] = {t.dtype(), t.shape(), offset};
  return Status::ok();
}

Expected<Tensor> SpillFile::take(const std::string& name) {
  auto it = entries_.find(name);
  if (it == entries_.end()) return Status::error("no spilled value '" + name + "'");
  Tensor t = Tensor::allocate(it->second.dtype, it->second.shape);
  if (const int err = pread_fully(fd_, t.mutable_raw(), t.nbytes(), it->second.offset); err != 0)
    return Status::error("cannot read '" + name + "' back from the temporary file in " + dir_ + ": " +
                         std::strerror(err));
  entries_.erase(it);
  return t;
}

void SpillFile::clear() {
  entries_.clear();
  end_ = 0;
  // Should it fail, puts write over the old bytes from offset 0 all the
  // same; only the disk space stays taken until the file is closed.
  if (fd_ >= 0) (void)!::ftruncate(fd_, 0);
}

Status PerLayer::init(std::shared_ptr<const Model> ref, std::shared_ptr<const Model> test, int threads,
                      const KernelTable& kernels, const std::string& attention, bool stream_weights,
                      bool accumulated) {
  kernels_ = &kernels;
  stream_weights_ = stream_weights;
  accumulated_ = accumulated;
  if (attention != "fp32") test = with_fused_attention(*test, attention);
  test_model_ = test;
  const Graph& tg = test->graph;
  for (const Node& n : tg.nodes) {
    if (!(is_quantized(n) || is_int8_attention(n)) || n.outputs.empty() || n.outputs[0] == kNoValue) continue;
    const std::string& out = tg.values[static_cast<size_t>(n.outputs[0])].name;
    if (ref->graph.find_value(out) == kNoValue) continue;  // renamed by the converter: no reference
    const size_t i = layers_.size();
    layers_.push_back({n.name, n.op_type, out, {}, {}});
    nodes_.push_back(&n);
    want_test_.insert(out);
    std::set<std::string> needs = {out};
    for (int v : n.inputs)
      if (v != kNoValue && !tg.values[static_cast<size_t>(v)].is_initializer)
        needs.insert(tg.values[static_cast<size_t>(v)].name);
    for (const std::string& name : needs) needed_by_[name].push_back(i);
    needs_.emplace_back(needs.begin(), needs.end());
  }
  SessionOptions o;
  o.num_threads = threads;
  o.fuse = false;
  o.fuse_patterns = false;
  o.stream_weights = stream_weights;
  {
    SessionOptions ok = o;
    const Graph* g = &ref->graph;
    ok.observer = [this, g](const Node& n, std::span<const Tensor> outs) {
      for (size_t k = 0; k < outs.size(); ++k) {
        if (n.outputs[k] == kNoValue || !outs[k].defined()) continue;
        const std::string& name = g->values[static_cast<size_t>(n.outputs[k])].name;
        if (!needed_by_.count(name) || ref_values_.count(name)) continue;
        ref_values_[name] = outs[k].clone();
        captured_.insert(name);
        held_bytes_ += outs[k].nbytes();
        peak_held_bytes_ = std::max(peak_held_bytes_, held_bytes_);
        on_ref_value(name);
      }
    };
    auto s = Session::create(ref, kernels, ok);
    if (!s) return s.status();
    ref_ = std::move(*s);
  }
  if (accumulated_) {
    SessionOptions ok = o;
    const Graph* g = &test->graph;
    ok.observer = [this, g](const Node& n, std::span<const Tensor> outs) {
      for (size_t k = 0; k < outs.size(); ++k) {
        if (n.outputs[k] == kNoValue || !outs[k].defined()) continue;
        const std::string& name = g->values[static_cast<size_t>(n.outputs[k])].name;
        if (!want_test_.count(name) || !failed_) continue;
        const uint64_t bytes = outs[k].nbytes();
        if (test_held_ + bytes <= test_limit_) {
          test_values_[name] = outs[k].clone();
          test_held_ += bytes;
          peak_test_held_ = std::max(peak_test_held_, test_held_);
        } else if (Status st = spill_.put(name, outs[k]); !st) {
          failed_ = st;
        }
      }
    };
    auto s = Session::create(test, kernels, ok);
    if (!s) return s.status();
    test_ = std::move(*s);
  }
  return Status::ok();
}

void PerLayer::on_ref_value(const std::string& name) {
  if (!failed_) return;
  auto it = needed_by_.find(name);
  if (it == needed_by_.end()) return;
  for (size_t i : it->second) {
    if (done_[i] || !std::all_of(needs_[i].begin(), needs_[i].end(),
                                 [&](const std::string& v) { return ref_values_.count(v) > 0; }))
      continue;
    if (Status st = measure(i); !st) {
      failed_ = st;
      return;
    }
  }
}

Status PerLayer::measure(size_t i) {
  done_[i] = true;
  LayerError& l = layers_[i];
  const Tensor& expect = ref_values_.at(l.output);
  if (accumulated_) {
    auto t = test_values_.find(l.output);
    if (t != test_values_.end()) {
      SARAI_RETURN_IF_ERROR(l.accumulated.add(expect, t->second));
      test_held_ -= t->second.nbytes();
      test_values_.erase(t);
    } else if (spill_.has(l.output)) {
      SARAI_ASSIGN_OR_RETURN(const Tensor back, spill_.take(l.output));
      SARAI_RETURN_IF_ERROR(l.accumulated.add(expect, back));
    } else {
      SARAI_RETURN_IF_ERROR(l.accumulated.add(expect, Tensor()));
    }
  }
  const Node& n = *nodes_[i];
  const Graph& tg = test_model_->graph;
  std::vector<const Tensor*> in;
  for (int v : n.inputs) {
    const Value* val = v == kNoValue ? nullptr : &tg.values[static_cast<size_t>(v)];
    in.push_back(val == nullptr ? nullptr : val->is_initializer ? &val->initializer : &ref_values_.at(val->name));
  }
  std::vector<Tensor> outs(n.outputs.size());
  KernelContext ctx(n, tg.opset, in, outs, ref_->num_threads());
  SARAI_RETURN_IF_ERROR(invoke_kernel(kernels_->find(n.op_type, tg.opset, n.domain), ctx));
  SARAI_RETURN_IF_ERROR(l.local.add(expect, outs[0]));
  // The quantized weights' pages go back, as the sessions' own do.
  if (stream_weights_)
    for (int v : n.inputs)
      if (v != kNoValue && tg.values[static_cast<size_t>(v)].is_initializer) {
        const Tensor& w = tg.values[static_cast<size_t>(v)].initializer;
        const std::span<const uint8_t> pages = mapped_pages(test_model_->mapped_regions, w.raw(), w.nbytes());
        if (!pages.empty()) ::madvise(const_cast<uint8_t*>(pages.data()), pages.size(), MADV_DONTNEED);
      }
  // Drop what no pending layer needs any more.
  for (const std::string& name : needs_[i])
    if (--uses_left_.at(name) == 0) {
      auto it = ref_values_.find(name);
      if (captured_.erase(name)) held_bytes_ -= it->second.nbytes();
      ref_values_.erase(it);
    }
  return Status::ok();
}

void PerLayer::drop_values() {
  ref_values_.clear();
  test_values_.clear();
  spill_.clear();
  test_held_ = 0;
  captured_.clear();
  held_bytes_ = 0;
}

Status PerLayer::add(const std::vector<NamedTensor>& inputs) {
  drop_values();
  failed_ = Status::ok();
  done_.assign(layers_.size(), false);
  uses_left_.clear();
  for (const auto& [name, layers] : needed_by_) uses_left_[name] = layers.size();
  if (accumulated_) {
    SARAI_RETURN_IF_ERROR(test_->run(inputs).status());
    SARAI_RETURN_IF_ERROR(failed_);  // a spill that failed
  }
  // Graph inputs feed quantized nodes too (views: the caller's tensors).
  for (const NamedTensor& t : inputs)
    if (needed_by_.count(t.name)) ref_values_[t.name] = t.tensor;
  for (const NamedTensor& t : inputs) on_ref_value(t.name);
  SARAI_RETURN_IF_ERROR(failed_);
  SARAI_RETURN_IF_ERROR(ref_->run(inputs).status());
  SARAI_RETURN_IF_ERROR(failed_);
  // A layer whose output the reference produced but not every input.
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (done_[i] || !ref_values_.count(layers_[i].output)) continue;
    for (const std::string& v : needs_[i])
      if (!ref_values_.count(v)) return Status::error(nodes_[i]->describe() + ": the reference has no value '" + v + "'");
  }
  drop_values();
  return Status::ok();
}
void PerLayer::set_sensitivity(const std::vector<Sensitivity>& s) {
  for (LayerError& l : layers_)
    for (const Sensitivity& e : s)
      if (e.node == l.node) l.alone_cosine = e.cosine;
}

std::vector<const LayerError*> PerLayer::sorted() const {
  std::vector<const LayerError*> r;
  for (const LayerError& l : layers_) r.push_back(&l);
  std::stable_sort(r.begin(), r.end(), [](const LayerError* x, const LayerError* y) {
    auto alone = [](const LayerError* l) { return l->alone_cosine >= -1 ? l->alone_cosine : 2.0; };  // unmeasured last
    if (alone(x) != alone(y)) return alone(x) < alone(y);
    return x->local.relative_l2() > y->local.relative_l2();
  });
  return r;
}

}  // namespace sarai::eval
