// Measuring a quantized model against its FP32 reference, shared by
// `sarai-rt compare` and `sarai-rt convert --static/--auto-keep-fp32`
// (quantizer/eval/calibrated_convert.h): input sets from a folder, the
// end-to-end error, calibration ranges, single-layer sensitivity and the
// error per quantized node. Nothing here prints: every failure is a Status
// for the caller (the CLI) to report.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "quantizer/accuracy.h"
#include "quantizer/calibration.h"
#include "runtime/kernel.h"
#include "runtime/session.h"

namespace sarai::eval {

// The median of `v` (the mean of the middle two for an even count); v
// must not be empty.
double median(std::vector<double> v);

struct InputSet {
  std::string name;  // the folder, or "--input/--random"
  std::vector<NamedTensor> tensors;
};

// DIR/*.npy is one set; otherwise every subfolder of DIR holding .npy files
// is one (sorted by name). Each file is the file name of a graph input's
// name (loader/tensor_file_name.h: "a%2Fb.npy" for "a/b", what `run
// --output-dir` writes) or NAME.npy verbatim, checked against `session`'s
// declaration; two files for one input are an error.
Expected<std::vector<InputSet>> read_input_sets(const Session& session, const std::string& dir);

// Both models on every set: each reference output's error in the test
// model (matched by name; an error when the test model lacks one), summed
// over the sets, and the sum over the sets of each model's median time over
// `runs` timed runs after one untimed run (runs = 0: the untimed run only,
// times 0). Errors name the set.
struct Comparison {
  std::vector<std::string> names;
  std::vector<quant::OutputError> errors;
  double reference_ms = 0, test_ms = 0;
};
Expected<Comparison> compare_outputs(Session& reference, Session& test, const std::vector<InputSet>& sets, int runs);

// The reference's outputs on every set, computed once for the many test
// models that --auto-keep-fp32 and single-layer sensitivity measure
// against it.
struct ReferenceOutputs {
  Session* session = nullptr;
  std::vector<std::vector<NamedTensor>> per_set;  // indexed like the sets
  static Expected<ReferenceOutputs> run(Session& reference, const std::vector<InputSet>& sets);
};

// The lowest cosine over the reference's outputs, accumulated over `sets`
// (the sets `reference` was run on).
Expected<double> min_output_cosine(const ReferenceOutputs& reference, Session& test, const std::vector<InputSet>& sets);

// Static activation quantization (`convert --static`): the FP32 model
// `ref` runs unfused (every value keeps its exported name) on every set,
// once for min/max and, for the percentile method, once more for the
// histograms; returns the range of each value named in `names` (graph
// inputs and float32 initializers included). A name that never gets a
// value is an error naming it.
Expected<quant::ActivationRanges> calibrate_ranges(std::shared_ptr<const Model> ref, const std::vector<InputSet>& sets,
                                                   const std::set<std::string>& names, const quant::RangeOptions& o,
                                                   int threads, const KernelTable& kernels);

// Single-layer sensitivity: `ref` with only the node named `node` replaced
// by its quantized version from `quantized` (a blob converted from ref; the
// node keeps its name). Its new inputs (W.q, scales, sums, a folded bias)
// are copied from `quantized` as views, and the result keeps both models
// alive. Nothing is converted or copied, so every layer can be measured on
// its own end to end.
Expected<std::shared_ptr<Model>> with_one_quantized_node(std::shared_ptr<const Model> ref,
                                                         std::shared_ptr<const Model> quantized,
                                                         const std::string& node);

// Single-layer sensitivity of every quantized node of `test` (a blob
// converted from `ref_model`, whose outputs on `sets` are `ref`): the lowest output
// cosine over `sets` with that node alone in INT8 and every other node
// FP32. In test's node order; most damaging = lowest cosine. With
// `attention` "int8" or "int8-per-tensor" (the test model's, from
// attention_precision_for), also each fused attention block (named after its
// last MatMul) alone in that precision, after the quantized nodes.
struct Sensitivity {
  std::string node;
  double cosine = 1;
};
Expected<std::vector<Sensitivity>> single_layer_sensitivity(std::shared_ptr<const Model> ref_model,
                                                            const ReferenceOutputs& ref,
                                                            std::shared_ptr<const Model> test,
                                                            const std::vector<InputSet>& sets,
                                                            const KernelTable& kernels, const SessionOptions& options,
                                                            const std::string& attention = "fp32");

// Per quantized node of the test model: its output against the reference's
// value of the same name, (a) as the INT8 chain computed it (accumulated)
// and (b) with the node alone fed the reference's exact inputs (local).
// Both models run unfused so every value keeps its exported name.
struct LayerError {
  std::string node, op, output;
  quant::OutputError local, accumulated;
  double alone_cosine = -2;  // single-layer sensitivity when measured (set_sensitivity), else < -1
};

// Tensors written to an unlinked temporary file (in $TMPDIR, else /tmp)
// and read back once: what PerLayer holds of the test model beyond its
// memory limit. The file is created at the first put() and gone with the
// object (or emptied by clear()).
class SpillFile {
 public:
  SpillFile() = default;
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;
  ~SpillFile();
  Status put(const std::string& name, const Tensor& t);
  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  // The tensor `name` (put before), read back; then forgotten.
  Expected<Tensor> take(const std::string& name);
  // Forgets every tensor and empties the file.
  void clear();
  uint64_t bytes_written() const { return written_; }  // over the object's life

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    uint64_t offset = 0;
  };
  int fd_ = -1;
  std::string dir_;
  uint64_t end_ = 0, written_ = 0;
  std::map<std::string, Entry> entries_;
};

class PerLayer {
 public:
  PerLayer() = default;
  // The sessions' observers point at this object: it stays where init() found it.
  PerLayer(const PerLayer&) = delete;
  PerLayer& operator=(const PerLayer&) = delete;
  // Sessions for both models, unfused, capturing the values it needs.
  // With `attention` other than "fp32" the test model's attention chains are
  // fused (runtime/fuse.h) and each block is a layer like a quantized node
  // (op "Attention", output its last MatMul's). With `stream_weights` both
  // models' weight pages are released after use (bounded memory). With
  // `accumulated` false only the local errors are measured and the test
  // model never runs: memory then stays bounded by the reference's own run
  // plus the few values that wait for a layer (see add()).
  Status init(std::shared_ptr<const Model> ref, std::shared_ptr<const Model> test, int threads,
              const KernelTable& kernels, const std::string& attention = "fp32", bool stream_weights = false,
              bool accumulated = true);
  size_t size() const { return layers_.size(); }
  // Runs both models on one input set and adds every layer's errors. The
  // local errors are measured while the reference runs: a layer is run
  // (its quantized node on the reference's inputs to it) as soon as the
  // reference has produced those inputs and its output, and each captured
  // value is dropped once no pending layer needs it. The accumulated errors
  // need the test model's layer outputs, all of them held from its run.
  Status add(const std::vector<NamedTensor>& inputs);
  // Adds each layer's single-layer sensitivity (matched by node name).
  void set_sensitivity(const std::vector<Sensitivity>& s);
  // Most damaged first: by single-layer sensitivity when measured, then by
  // local relative L2 error.
  std::vector<const LayerError*> sorted() const;
  // The largest total of captured reference values held at once by add()
  // so far, in bytes (what the local errors cost in memory).
  uint64_t peak_held_bytes() const { return peak_held_bytes_; }
  // The accumulated errors hold the test model's layer outputs from its run
  // until the reference's run reaches each layer: in memory up to this many
  // bytes (default 256 MiB), the rest in a SpillFile, so a long input on a
  // large model does not hold gigabytes. Set before add().
  void set_memory_limit(uint64_t bytes) { test_limit_ = bytes; }
  uint64_t peak_test_held_bytes() const { return peak_test_held_; }  // in memory, at once
  uint64_t spilled_bytes() const { return spill_.bytes_written(); }

 private:
  // A newly captured reference value: measures the layers it completes.
  void on_ref_value(const std::string& name);
  // Layer i's local (and accumulated) error; its inputs and output are in ref_values_.
  Status measure(size_t i);
  // Forgets every value held for one input set (and empties the spill file).
  void drop_values();

  const KernelTable* kernels_ = nullptr;
  std::shared_ptr<const Model> test_model_;
  std::vector<LayerError> layers_;
  std::vector<const Node*> nodes_;
  bool stream_weights_ = false, accumulated_ = true;
  std::set<std::string> want_test_;
  // Per reference value a layer needs (its non-constant inputs, its
  // output): the layers that need it.
  std::map<std::string, std::vector<size_t>> needed_by_;
  std::vector<std::vector<std::string>> needs_;  // per layer: those values
  // add()'s state: values at hand, how many pending layers still need each,
  // which layers are done, the first error met inside the observer.
  std::map<std::string, Tensor> ref_values_, test_values_;
  SpillFile spill_;  // test values past test_limit_
  uint64_t test_limit_ = uint64_t{256} << 20, test_held_ = 0, peak_test_held_ = 0;
  std::set<std::string> captured_;  // the ref_values_ that are copies (not the caller's inputs)
  std::map<std::string, size_t> uses_left_;
  std::vector<bool> done_;
  Status failed_ = Status::ok();
  uint64_t held_bytes_ = 0, peak_held_bytes_ = 0;
  std::unique_ptr<Session> ref_, test_;
};

}  // namespace sarai::eval
