// Calibration and sensitivity as a library (quantizer/eval/): input sets
// from a folder, the end-to-end comparison, the graph surgery of
// single-layer sensitivity, calibration ranges, the error per layer, and
// what convert --static / --auto-keep-fp32 choose. The CLI
// (tests/cli_test.cc) checks the same through the printed reports; here
// every figure is compared with one computed another way.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/npy.h"
#include "loader/onnx_loader.h"
#include "quantizer/convert.h"
#include "quantizer/eval/accuracy_check.h"
#include "quantizer/eval/calibrated_convert.h"
#include "quantizer/eval/eval.h"
#include "tests/onnx_builder.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;

namespace sarai {
namespace {

using eval::InputSet;

std::shared_ptr<Model> load(const std::string& path) {
  auto m = load_onnx(path);
  EXPECT_TRUE(m.has_value()) << m.message();
  return m.has_value() ? *m : nullptr;
}

// `m` saved as dir/name.onnx and loaded.
std::shared_ptr<Model> saved(const onnx::ModelProto& m, const std::string& dir, const std::string& name) {
  test::save(m, dir + "/" + name + ".onnx");
  return load(dir + "/" + name + ".onnx");
}

// The model converted to a .sarai blob (every MatMul in INT8 unless kept)
// and loaded.
std::shared_ptr<Model> converted(const std::string& onnx_path, const std::string& out,
                                 std::vector<std::string> keep_fp32 = {}) {
  auto source = load_onnx(onnx_path);
  EXPECT_TRUE(source.has_value()) << source.message();
  if (!source.has_value()) return nullptr;
  quant::ConvertOptions o;
  o.keep_fp32 = std::move(keep_fp32);
  auto r = quant::convert_to_blob(**source, out, o);
  EXPECT_TRUE(r.has_value()) << r.message();
  auto blob = load_blob(out);
  EXPECT_TRUE(blob.has_value()) << blob.message();
  return blob.has_value() ? *blob : nullptr;
}

void write(const std::string& path, const Tensor& t) {
  fs::create_directories(fs::path(path).parent_path());
  ASSERT_TRUE(write_npy(path, t).is_ok()) << path;
}

// `count` input sets of x [1, 16, 64] from `seed` on.
std::vector<InputSet> chain_sets(int count, uint32_t seed) {
  std::vector<InputSet> sets;
  for (int s = 0; s < count; ++s)
    sets.push_back({test::numbered("set", static_cast<size_t>(s)),
                    {{"x", test::random_tensor({1, 16, 64}, seed + static_cast<uint32_t>(s))}}});
  return sets;
}

std::vector<std::string> op_types(const Graph& g) {
  std::vector<std::string> r;
  for (const Node& n : g.nodes) r.push_back(n.op_type);
  return r;
}

SessionOptions one_thread() {
  SessionOptions o;
  o.num_threads = 1;
  return o;
}

// --------------------------------------------------------------- input sets

TEST(EvalInputSets, FlatFolderIsOneSet) {
  const std::string dir = test::temp_dir("flat");
  auto model = saved(test::add_model({2, 3}), dir, "add");
  auto session = test::session_on(model, {});
  const Tensor x = test::random_tensor({2, 3}, 1);
  write(dir + "/in/x.npy", x);
  auto sets = eval::read_input_sets(*session, dir + "/in");
  ASSERT_TRUE(sets.has_value()) << sets.message();
  ASSERT_EQ(sets->size(), 1u);
  EXPECT_EQ((*sets)[0].name, dir + "/in");
  ASSERT_EQ((*sets)[0].tensors.size(), 1u);
  EXPECT_EQ((*sets)[0].tensors[0].name, "x");
  EXPECT_TRUE(test::tensors_equal((*sets)[0].tensors[0].tensor, x));
}

TEST(EvalInputSets, SubfoldersSortedAndEmptyOnesSkipped) {
  const std::string dir = test::temp_dir("sub");
  auto model = saved(test::add_model({2, 3}), dir, "add");
  auto session = test::session_on(model, {});
  const Tensor xb = test::random_tensor({2, 3}, 2), xa = test::random_tensor({2, 3}, 3);
  write(dir + "/in/b/x.npy", xb);
  write(dir + "/in/a/x.npy", xa);
  fs::create_directories(dir + "/in/c_empty");
  test::write_file(dir + "/in/c_empty/notes.txt", "not an input");
  auto sets = eval::read_input_sets(*session, dir + "/in");
  ASSERT_TRUE(sets.has_value()) << sets.message();
  ASSERT_EQ(sets->size(), 2u);
  EXPECT_EQ((*sets)[0].name, dir + "/in/a");
  EXPECT_EQ((*sets)[1].name, dir + "/in/b");
  EXPECT_TRUE(test::tensors_equal((*sets)[0].tensors[0].tensor, xa));
  EXPECT_TRUE(test::tensors_equal((*sets)[1].tensors[0].tensor, xb));
}

TEST(EvalInputSets, ErrorsNameTheFileOrFolder) {
  const std::string dir = test::temp_dir("errors");
  auto model = saved(test::add_model({2, 3}), dir, "add");
  auto session = test::session_on(model, {});

  write(dir + "/name/z.npy", test::random_tensor({2, 3}, 4));  // no input z
  auto s = eval::read_input_sets(*session, dir + "/name");
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), dir + "/name/z.npy: ");
  EXPECT_HAS(s.message(), "has no input 'z'");

  write(dir + "/dtype/1/x.npy", test::make_tensor<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6}));
  s = eval::read_input_sets(*session, dir + "/dtype");
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), dir + "/dtype/1/x.npy: ");
  EXPECT_HAS(s.message(), "input 'x' must be");

  fs::create_directories(dir + "/empty/sub");
  s = eval::read_input_sets(*session, dir + "/empty");
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), dir + "/empty: no .npy files");

  s = eval::read_input_sets(*session, dir + "/missing");
  ASSERT_FALSE(s.has_value());
  EXPECT_HAS(s.message(), dir + "/missing: not a folder");
}

// --------------------------------------------------------------- comparison

TEST(EvalCompare, IdenticalModelsAreExactAndAPerturbedOneIsNot) {
  const std::string dir = test::temp_dir("compare");
  const Tensor w = test::random_tensor({64, 32}, 5);
  Tensor w2 = w.clone();
  for (int64_t i = 0; i < w2.numel(); i += 7) w2.mutable_data<float>()[i] += 0.3f;
  auto ref_model = saved(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {w}, {"mm"}), dir, "ref");
  auto same_model = saved(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {w}, {"mm"}), dir, "same");
  auto off_model = saved(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {w2}, {"mm"}), dir, "off");
  auto ref = test::session_on(ref_model, one_thread());
  auto same = test::session_on(same_model, one_thread());
  auto off = test::session_on(off_model, one_thread());
  const std::vector<InputSet> sets = chain_sets(2, 10);

  auto c = eval::compare_outputs(*ref, *same, sets, /*runs=*/0);
  ASSERT_TRUE(c.has_value()) << c.message();
  ASSERT_EQ(c->names, std::vector<std::string>{"y"});
  ASSERT_EQ(c->errors.size(), 1u);
  EXPECT_DOUBLE_EQ(c->errors[0].cosine(), 1.0);
  EXPECT_EQ(c->errors[0].mse(), 0.0);
  EXPECT_EQ(c->errors[0].max_abs(), 0.0);
  EXPECT_EQ(c->errors[0].elements(), 2 * 16 * 32);  // summed over both sets
  EXPECT_EQ(c->reference_ms, 0.0);                  // no timed runs
  EXPECT_EQ(c->test_ms, 0.0);

  // The perturbed model: the error is the one of the outputs themselves.
  c = eval::compare_outputs(*ref, *off, sets, /*runs=*/2);
  ASSERT_TRUE(c.has_value()) << c.message();
  quant::OutputError expect;
  for (const InputSet& set : sets) {
    auto yr = ref->run(set.tensors), yo = off->run(set.tensors);
    ASSERT_TRUE(yr.has_value() && yo.has_value());
    ASSERT_TRUE(expect.add((*yr)[0].tensor, (*yo)[0].tensor).is_ok());
  }
  EXPECT_LT(c->errors[0].cosine(), 0.9999);
  EXPECT_NEAR(c->errors[0].cosine(), expect.cosine(), 1e-12);
  EXPECT_GT(c->errors[0].mse(), 0.0);
  EXPECT_NEAR(c->errors[0].mse(), expect.mse(), 1e-12);
  EXPECT_GT(c->reference_ms, 0.0);
  EXPECT_GT(c->test_ms, 0.0);

  // min_output_cosine against the reference's outputs computed once.
  auto outs = eval::ReferenceOutputs::run(*ref, sets);
  ASSERT_TRUE(outs.has_value()) << outs.message();
  ASSERT_EQ(outs->per_set.size(), 2u);
  auto worst = eval::min_output_cosine(*outs, *off, sets);
  ASSERT_TRUE(worst.has_value()) << worst.message();
  EXPECT_NEAR(*worst, expect.cosine(), 1e-12);
}

TEST(EvalCompare, TestModelWithoutTheReferenceOutputIsAnError) {
  const std::string dir = test::temp_dir("missing_output");
  auto ref_model = saved(test::add_model({2, 3}), dir, "ref");
  onnx::ModelProto other = test::add_model({2, 3});
  other.mutable_graph()->mutable_output(0)->set_name("z");
  other.mutable_graph()->mutable_node(0)->set_output(0, "z");
  auto other_model = saved(other, dir, "other");
  auto ref = test::session_on(ref_model, {});
  auto test_session = test::session_on(other_model, {});
  auto c = eval::compare_outputs(*ref, *test_session, {{"set", {{"x", test::random_tensor({2, 3}, 1)}}}}, 0);
  ASSERT_FALSE(c.has_value());
  EXPECT_HAS(c.message(), "other.onnx: has no output 'y'");
}

TEST(EvalMedian, OddAndEvenCounts) {
  EXPECT_EQ(eval::median({3, 1, 2}), 2.0);
  EXPECT_EQ(eval::median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(eval::median({7}), 7.0);
}

// ------------------------------------------------------------ graph surgery

// An FP32 model saved in a fresh folder, and its blob.
struct RefAndBlob {
  std::string dir, onnx;
  std::shared_ptr<Model> ref, blob;
};
RefAndBlob ref_and_blob(const std::string& tag, const onnx::ModelProto& m) {
  RefAndBlob t;
  t.dir = test::temp_dir(tag);
  t.onnx = t.dir + "/" + tag + ".onnx";
  test::save(m, t.onnx);
  t.ref = load(t.onnx);
  t.blob = converted(t.onnx, t.dir + "/" + tag + ".sarai");
  return t;
}

// x -> MatMul a -> MatMul b -> MatMul c -> y, all three quantizable.
RefAndBlob three_layers(const std::string& tag) {
  return ref_and_blob(tag, test::matmul_chain_model({1, 16, 64}, {1, 16, 64},
                                                    {test::random_tensor({64, 64}, 1, -0.2f, 0.2f),
                                                     test::random_tensor({64, 64}, 2, -0.2f, 0.2f),
                                                     test::random_tensor({64, 64}, 3, -0.2f, 0.2f)},
                                                    {"a", "b", "c"}));
}

TEST(EvalSurgery, WithOneQuantizedNodeReplacesExactlyThatNode) {
  RefAndBlob t = three_layers("surgery");
  ASSERT_TRUE(t.ref && t.blob);
  ASSERT_EQ(op_types(t.blob->graph), (std::vector<std::string>{"QMatMul", "QMatMul", "QMatMul"}));
  auto one = eval::with_one_quantized_node(t.ref, t.blob, "b");
  ASSERT_TRUE(one.has_value()) << one.message();
  const Graph& g = (*one)->graph;
  ASSERT_EQ(op_types(g), (std::vector<std::string>{"MatMul", "QMatMul", "MatMul"}));
  EXPECT_EQ(g.nodes[1].name, "b");
  EXPECT_EQ(g.nodes[1].domain, "sarai");
  EXPECT_EQ(g.nodes[0].domain, "");
  // b reads h0 (the reference's value) and its new initializers, and writes h1.
  EXPECT_EQ(g.values[static_cast<size_t>(g.nodes[1].inputs[0])].name, "h0");
  EXPECT_EQ(g.nodes[1].inputs[0], g.nodes[0].outputs[0]);
  EXPECT_EQ(g.nodes[1].outputs[0], g.nodes[2].inputs[0]);
  for (size_t k = 1; k < g.nodes[1].inputs.size(); ++k) {
    const int v = g.nodes[1].inputs[k];
    if (v == kNoValue) continue;
    EXPECT_TRUE(g.values[static_cast<size_t>(v)].is_initializer) << g.values[static_cast<size_t>(v)].name;
  }
  // The reference itself is untouched.
  EXPECT_EQ(op_types(t.ref->graph), (std::vector<std::string>{"MatMul", "MatMul", "MatMul"}));

  // It runs, close to FP32 but not equal to it.
  auto fp32 = test::session_on(t.ref, one_thread());
  auto mixed = test::session_on(*one, one_thread());
  const std::vector<NamedTensor> in = {{"x", test::random_tensor({1, 16, 64}, 9)}};
  auto yr = fp32->run(in), ym = mixed->run(in);
  ASSERT_TRUE(yr.has_value() && ym.has_value());
  const double cos = test::cosine((*yr)[0].tensor, (*ym)[0].tensor);
  EXPECT_GT(cos, 0.99);
  EXPECT_LT(cos, 1.0);
}

TEST(EvalSurgery, UnknownOrFp32NodeIsAnError) {
  RefAndBlob t = three_layers("surgery_errors");
  ASSERT_TRUE(t.ref && t.blob);
  auto none = eval::with_one_quantized_node(t.ref, t.blob, "nope");
  ASSERT_FALSE(none.has_value());
  EXPECT_HAS(none.message(), "has no quantized node 'nope'");
  auto kept = converted(t.onnx, t.dir + "/kept.sarai", {"c"});
  ASSERT_TRUE(kept);
  ASSERT_EQ(op_types(kept->graph), (std::vector<std::string>{"QMatMul", "QMatMul", "MatMul"}));
  auto fp32 = eval::with_one_quantized_node(t.ref, kept, "c");
  ASSERT_FALSE(fp32.has_value());
  EXPECT_HAS(fp32.message(), "has no quantized node 'c'");
}

// ---------------------------------------------------------------- sensitivity

TEST(EvalSensitivity, TheBadlyQuantizableLayerComesOut) {
  const RefAndBlob t = ref_and_blob("sensitivity", test::sensitive_chain_model());
  const std::shared_ptr<Model> ref_model = t.ref, blob = t.blob;
  ASSERT_TRUE(ref_model && blob);
  auto ref = test::session_on(ref_model, one_thread());
  const std::vector<InputSet> sets = chain_sets(3, 40);
  auto outs = eval::ReferenceOutputs::run(*ref, sets);
  ASSERT_TRUE(outs.has_value()) << outs.message();
  KernelTable kernels;
  register_kernels(kernels);
  auto sens = eval::single_layer_sensitivity(ref_model, *outs, blob, sets, kernels, one_thread());
  ASSERT_TRUE(sens.has_value()) << sens.message();
  ASSERT_EQ(sens->size(), 2u);  // in the blob's node order
  EXPECT_EQ((*sens)[0].node, "first");
  EXPECT_EQ((*sens)[1].node, "second");
  EXPECT_GT((*sens)[0].cosine, 0.999);
  EXPECT_LT((*sens)[1].cosine, 0.999);
  // Each figure is the model with that node alone in INT8, end to end.
  for (const eval::Sensitivity& s : *sens) {
    auto one = eval::with_one_quantized_node(ref_model, blob, s.node);
    ASSERT_TRUE(one.has_value()) << one.message();
    auto session = test::session_on(*one, one_thread());
    auto c = eval::min_output_cosine(*outs, *session, sets);
    ASSERT_TRUE(c.has_value()) << c.message();
    EXPECT_EQ(*c, s.cosine) << s.node;
  }
}

// ---------------------------------------------------------------- calibration

TEST(EvalCalibrate, MinMaxRangesAreTheObservedOnesFoldedFromZero) {
  const std::string dir = test::temp_dir("calibrate");
  const Tensor w = test::random_tensor({64, 32}, 3, -0.2f, 0.2f);
  auto model = saved(test::matmul_chain_model({1, 16, 64}, {1, 16, 32}, {w, test::random_tensor({32, 8}, 4)},
                                              {"one", "two"}),
                     dir, "two");
  std::vector<InputSet> sets;
  for (int s = 0; s < 2; ++s)
    sets.push_back({test::numbered("set", static_cast<size_t>(s)),
                    {{"x", test::random_tensor({1, 16, 64}, 20 + static_cast<uint32_t>(s), 0.5f, 3.f)}}});
  KernelTable kernels;
  register_kernels(kernels);
  quant::RangeOptions ro;
  auto ranges = eval::calibrate_ranges(model, sets, {"x", "h0", "w0"}, ro, 1, kernels);
  ASSERT_TRUE(ranges.has_value()) << ranges.message();
  ASSERT_EQ(ranges->size(), 3u);

  // Computed directly: x and w0 from their values, h0 = x w0 in double.
  float x_lo = 0, x_hi = 0, w_lo = 0, w_hi = 0;  // folded from 0
  double h_lo = 0, h_hi = 0;
  for (int64_t i = 0; i < w.numel(); ++i)
    w_lo = std::min(w_lo, w.data<float>()[i]), w_hi = std::max(w_hi, w.data<float>()[i]);
  for (const InputSet& set : sets) {
    const float* x = set.tensors[0].tensor.data<float>();
    for (int64_t i = 0; i < 16 * 64; ++i) x_lo = std::min(x_lo, x[i]), x_hi = std::max(x_hi, x[i]);
    for (int64_t r = 0; r < 16; ++r)
      for (int64_t n = 0; n < 32; ++n) {
        double acc = 0;
        for (int64_t k = 0; k < 64; ++k) acc += double{x[r * 64 + k]} * w.data<float>()[k * 32 + n];
        h_lo = std::min(h_lo, acc), h_hi = std::max(h_hi, acc);
      }
  }
  EXPECT_EQ(x_lo, 0.f);  // x >= 0.5: the fold shows
  EXPECT_EQ(ranges->at("x").lo, x_lo);
  EXPECT_EQ(ranges->at("x").hi, x_hi);
  EXPECT_EQ(ranges->at("w0").lo, w_lo);
  EXPECT_EQ(ranges->at("w0").hi, w_hi);
  EXPECT_NEAR(ranges->at("h0").lo, h_lo, 1e-4 * (h_hi - h_lo));
  EXPECT_NEAR(ranges->at("h0").hi, h_hi, 1e-4 * (h_hi - h_lo));

  // The percentile method clips inside the min/max range.
  ro.method = quant::RangeMethod::kPercentile;
  ro.percentile = 99;
  auto clipped = eval::calibrate_ranges(model, sets, {"h0"}, ro, 1, kernels);
  ASSERT_TRUE(clipped.has_value()) << clipped.message();
  EXPECT_LT(clipped->at("h0").hi - clipped->at("h0").lo, ranges->at("h0").hi - ranges->at("h0").lo);
  EXPECT_GE(clipped->at("h0").lo, ranges->at("h0").lo);
  EXPECT_LE(clipped->at("h0").hi, ranges->at("h0").hi);

  // A name that never gets a value is an error naming it.
  auto missing = eval::calibrate_ranges(model, sets, {"x", "nowhere"}, {}, 1, kernels);
  ASSERT_FALSE(missing.has_value());
  EXPECT_HAS(missing.message(), "value 'nowhere' got no finite value");
}

// ------------------------------------------------------------ error per layer

TEST(EvalPerLayer, LocalAndAccumulatedErrors) {
  const RefAndBlob t = ref_and_blob("per_layer", test::sensitive_chain_model());
  const std::shared_ptr<Model> ref_model = t.ref, blob = t.blob;
  ASSERT_TRUE(ref_model && blob);
  KernelTable kernels;
  register_kernels(kernels);
  eval::PerLayer layers;
  ASSERT_TRUE(layers.init(ref_model, blob, 1, kernels).is_ok());
  ASSERT_EQ(layers.size(), 2u);
  const std::vector<InputSet> sets = chain_sets(2, 50);
  for (const InputSet& set : sets) ASSERT_TRUE(layers.add(set.tensors).is_ok());

  // Unmeasured sensitivity: sorted by local relative L2 error, worst first.
  std::vector<const eval::LayerError*> sorted = layers.sorted();
  ASSERT_EQ(sorted.size(), 2u);
  const eval::LayerError* second = sorted[0];
  const eval::LayerError* first = sorted[1];
  ASSERT_EQ(second->node, "second");
  ASSERT_EQ(first->node, "first");
  EXPECT_EQ(first->op, "QMatMul");
  EXPECT_EQ(first->output, "h0");
  EXPECT_EQ(second->output, "y");
  EXPECT_GT(second->local.relative_l2(), first->local.relative_l2());
  EXPECT_LT(first->alone_cosine, -1);  // not measured
  EXPECT_EQ(first->local.elements(), 2 * 16 * 64);

  // "first" reads the graph input: alone and along the chain it computes
  // the same thing.
  EXPECT_EQ(first->local.cosine(), first->accumulated.cosine());
  EXPECT_EQ(first->local.mse(), first->accumulated.mse());
  EXPECT_GT(first->local.mse(), 0.0);
  // "second" reads h0: exact from the reference (local) or from INT8
  // "first" (accumulated), which differ.
  EXPECT_NE(second->local.mse(), second->accumulated.mse());
  // Its local error is that of the model with "second" alone in INT8, since
  // y is its output.
  auto ref = test::session_on(ref_model, one_thread());
  auto one = eval::with_one_quantized_node(ref_model, blob, "second");
  ASSERT_TRUE(one.has_value()) << one.message();
  auto alone = test::session_on(*one, one_thread());
  auto outs = eval::ReferenceOutputs::run(*ref, sets);
  ASSERT_TRUE(outs.has_value()) << outs.message();
  auto alone_cos = eval::min_output_cosine(*outs, *alone, sets);
  ASSERT_TRUE(alone_cos.has_value()) << alone_cos.message();
  EXPECT_NEAR(second->local.cosine(), *alone_cos, 1e-9);

  // Measured sensitivity comes first in the order: "first" ranked worse now.
  layers.set_sensitivity({{"first", 0.5}, {"second", 0.9}});
  sorted = layers.sorted();
  EXPECT_EQ(sorted[0]->node, "first");
  EXPECT_EQ(sorted[0]->alone_cosine, 0.5);
  EXPECT_EQ(sorted[1]->alone_cosine, 0.9);
}

// Local errors only (convert's warning): the test model never runs, each
// layer is measured while the reference runs, and a value is dropped once
// no pending layer needs it, so what is held stays one layer's input and
// output however long the chain. The local errors are those of the full
// measurement.
// A chain of 8 MatMuls m0..m7, x [1, 16, 64] -> y, and its blob.
RefAndBlob chain_of_8(const std::string& name, uint32_t seed) {
  std::vector<Tensor> weights;
  std::vector<std::string> names;
  for (uint32_t i = 0; i < 8; ++i) {
    weights.push_back(test::random_tensor({64, 64}, seed + i, -0.2f, 0.2f));
    names.push_back(test::numbered("m", i));
  }
  return ref_and_blob(name, test::matmul_chain_model({1, 16, 64}, {1, 16, 64}, weights, names));
}

TEST(EvalPerLayer, LocalOnlyHoldsOneLayerAtATime) {
  const RefAndBlob t = chain_of_8("local_only", 10);
  ASSERT_TRUE(t.ref && t.blob);
  KernelTable kernels;
  register_kernels(kernels);
  const std::vector<InputSet> sets = chain_sets(2, 60);
  eval::PerLayer full, local;
  ASSERT_TRUE(full.init(t.ref, t.blob, 1, kernels).is_ok());
  ASSERT_TRUE(local.init(t.ref, t.blob, 1, kernels, "fp32", /*stream_weights=*/true, /*accumulated=*/false).is_ok());
  ASSERT_EQ(full.size(), 8u);
  ASSERT_EQ(local.size(), 8u);
  for (const InputSet& set : sets) {
    ASSERT_TRUE(full.add(set.tensors).is_ok());
    ASSERT_TRUE(local.add(set.tensors).is_ok());
  }
  const uint64_t value_bytes = 16 * 64 * sizeof(float);
  // A layer's output, also the next one's input; the graph input is the
  // caller's and not counted. Holding the whole chain would be 8 values.
  EXPECT_LE(local.peak_held_bytes(), 2 * value_bytes);
  EXPECT_GE(local.peak_held_bytes(), value_bytes);
  std::vector<const eval::LayerError*> a = full.sorted(), b = local.sorted();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->node, b[i]->node);
    EXPECT_EQ(a[i]->local.relative_l2(), b[i]->local.relative_l2());
    EXPECT_EQ(a[i]->local.elements(), 2 * 16 * 64);
    EXPECT_GT(a[i]->local.relative_l2(), 0.0);
    EXPECT_EQ(a[i]->accumulated.elements(), 2 * 16 * 64);
    EXPECT_EQ(b[i]->accumulated.elements(), 0);  // not measured
  }
}

// The test model's layer outputs past the memory limit go to a temporary
// file and come back for the accumulated errors: the same errors, bit for
// bit, with at most the limit held in memory.
TEST(EvalPerLayer, TestOutputsPastTheLimitAreSpilledWithTheSameErrors) {
  const RefAndBlob t = chain_of_8("spill", 30);
  ASSERT_TRUE(t.ref && t.blob);
  KernelTable kernels;
  register_kernels(kernels);
  const std::vector<InputSet> sets = chain_sets(3, 70);
  const uint64_t value_bytes = 16 * 64 * sizeof(float);
  eval::PerLayer held, spilled;
  ASSERT_TRUE(held.init(t.ref, t.blob, 1, kernels).is_ok());
  ASSERT_TRUE(spilled.init(t.ref, t.blob, 1, kernels).is_ok());
  spilled.set_memory_limit(value_bytes);  // one layer output in memory, the other 7 spilled
  for (const InputSet& set : sets) {
    ASSERT_TRUE(held.add(set.tensors).is_ok());
    ASSERT_TRUE(spilled.add(set.tensors).is_ok());
  }
  EXPECT_EQ(held.spilled_bytes(), 0u);
  EXPECT_EQ(held.peak_test_held_bytes(), 8 * value_bytes);
  EXPECT_EQ(spilled.peak_test_held_bytes(), value_bytes);
  EXPECT_EQ(spilled.spilled_bytes(), 3 * 7 * value_bytes);
  std::vector<const eval::LayerError*> a = held.sorted(), b = spilled.sorted();
  ASSERT_EQ(a.size(), 8u);
  ASSERT_EQ(b.size(), 8u);
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]->node, b[i]->node);
    EXPECT_EQ(b[i]->accumulated.elements(), 3 * 16 * 64) << b[i]->node;
    EXPECT_EQ(a[i]->accumulated.relative_l2(), b[i]->accumulated.relative_l2()) << a[i]->node;
    EXPECT_EQ(a[i]->accumulated.cosine(), b[i]->accumulated.cosine()) << a[i]->node;
    EXPECT_EQ(a[i]->local.relative_l2(), b[i]->local.relative_l2()) << a[i]->node;
  }

  // A temporary folder that cannot take the file: add() fails, naming it.
  const char* saved = std::getenv("TMPDIR");
  const std::string keep = saved ? saved : "";
  ::setenv("TMPDIR", "/nonexistent-sarai-tmp", 1);
  eval::PerLayer nowhere;
  ASSERT_TRUE(nowhere.init(t.ref, t.blob, 1, kernels).is_ok());
  nowhere.set_memory_limit(0);
  const Status st = nowhere.add(sets[0].tensors);
  if (saved) ::setenv("TMPDIR", keep.c_str(), 1);
  else ::unsetenv("TMPDIR");
  ASSERT_FALSE(st.is_ok());
  EXPECT_HAS(st.message(), "cannot create a temporary file in /nonexistent-sarai-tmp (TMPDIR) for the test model's "
                           "layer outputs: No such file or directory");
}

// ------------------------------------------------ convert --static / --auto-keep-fp32

// Calibration sets of x [1, 16, 64] as subfolders of dir/calib.
std::string write_calibration(const std::string& dir, int count, uint32_t seed) {
  for (int s = 0; s < count; ++s)
    write(dir + "/calib/" + std::to_string(s) + "/x.npy",
          test::random_tensor({1, 16, 64}, seed + static_cast<uint32_t>(s)));
  return dir + "/calib";
}

std::string meta(const quant::ConvertOptions& o, const std::string& key) {
  for (const auto& [k, v] : o.extra_metadata)
    if (k == key) return v;
  return "<missing " + key + ">";
}

TEST(EvalConvert, AutoKeepFp32KeepsTheSensitiveLayer) {
  const std::string dir = test::temp_dir("auto");
  test::save(test::sensitive_chain_model(), dir + "/sensitive.onnx");
  const std::string calib = write_calibration(dir, 3, 40);
  eval::Calibration cal;
  ASSERT_TRUE(eval::open_calibration(dir + "/sensitive.onnx", calib, 1, &cal).is_ok());
  ASSERT_EQ(cal.sets.size(), 3u);

  quant::ConvertOptions opt;
  auto r = eval::choose_fp32_layers(cal, 0.999, dir + "/trial.sarai", &opt);
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_LT(r->plain_cosine, 0.999);
  EXPECT_GE(r->cosine, 0.999);
  EXPECT_EQ(r->kept, std::vector<std::string>{"second"});
  EXPECT_EQ(r->ranked, 2u);
  EXPECT_EQ(opt.keep_fp32, std::vector<std::string>{"second"});
  EXPECT_EQ(meta(opt, "auto_keep_fp32.nodes"), "second");
  EXPECT_EQ(meta(opt, "auto_keep_fp32.calibration_sets"), "3");
  EXPECT_EQ(meta(opt, "auto_keep_fp32.target_cosine"), "0.999");
  EXPECT_FALSE(fs::exists(dir + "/trial.sarai"));  // every trial removed

  // A target plain INT8 meets: nothing kept, nothing ranked.
  quant::ConvertOptions easy;
  r = eval::choose_fp32_layers(cal, 0.1, dir + "/trial.sarai", &easy);  // plain INT8: about 0.4
  ASSERT_TRUE(r.has_value()) << r.message();
  EXPECT_TRUE(r->kept.empty());
  EXPECT_EQ(r->ranked, 0u);
  EXPECT_EQ(r->cosine, r->plain_cosine);
  EXPECT_TRUE(easy.keep_fp32.empty());
  EXPECT_EQ(meta(easy, "auto_keep_fp32.nodes"), "");
}

TEST(EvalConvert, StaticRangesCoverEveryQuantizedInput) {
  const std::string dir = test::temp_dir("static");
  test::save(test::sensitive_chain_model(), dir + "/sensitive.onnx");
  const std::string calib = write_calibration(dir, 2, 60);
  eval::Calibration cal;
  ASSERT_TRUE(eval::open_calibration(dir + "/sensitive.onnx", calib, 1, &cal).is_ok());
  quant::ConvertOptions opt;
  opt.keep_fp32 = {"second"};  // only "first" quantized: only x measured
  ASSERT_TRUE(eval::measure_static_ranges(cal, {}, &opt).is_ok());
  ASSERT_EQ(opt.activation_ranges.size(), 1u);
  ASSERT_EQ(opt.activation_ranges.count("x"), 1u);
  float lo = 0, hi = 0;
  for (const InputSet& set : cal.sets)
    for (int64_t i = 0; i < set.tensors[0].tensor.numel(); ++i) {
      const float v = set.tensors[0].tensor.data<float>()[i];
      lo = std::min(lo, v), hi = std::max(hi, v);
    }
  EXPECT_EQ(opt.activation_ranges["x"].lo, lo);
  EXPECT_EQ(opt.activation_ranges["x"].hi, hi);
  EXPECT_EQ(meta(opt, "static.method"), "minmax");
  EXPECT_EQ(meta(opt, "static.calibration_sets"), "2");
  EXPECT_EQ(meta(opt, "static.ranges"), "1");

  opt.keep_fp32.clear();
  ASSERT_TRUE(eval::measure_static_ranges(cal, {}, &opt).is_ok());
  EXPECT_EQ(opt.activation_ranges.size(), 2u);  // x and h0
  EXPECT_EQ(opt.activation_ranges.count("h0"), 1u);
}

// Depthwise convs quantizing X per channel at run time (the default) take no
// static range, so none is measured for their input; per tensor, they do.
TEST(EvalConvert, StaticRangesSkipDepthwiseInputsQuantizedPerChannel) {
  const std::string dir = test::temp_dir("static_dw");
  write(dir + "/calib/0/image.npy", test::random_tensor({1, 3, 32, 40}, 3));
  eval::Calibration cal;
  ASSERT_TRUE(eval::open_calibration(test::fixture("small_cnn.onnx"), dir + "/calib", 1, &cal).is_ok());
  std::string dw_input;
  for (const Node& n : cal.model->graph.nodes)
    if (n.op_type == "Conv" && n.attr_int("group", 1) > 1) dw_input = cal.model->graph.values[static_cast<size_t>(n.inputs[0])].name;
  ASSERT_FALSE(dw_input.empty());
  quant::ConvertOptions per_channel, per_tensor;
  per_tensor.depthwise_activations = "per-tensor";
  ASSERT_TRUE(eval::measure_static_ranges(cal, {}, &per_channel).is_ok());
  ASSERT_TRUE(eval::measure_static_ranges(cal, {}, &per_tensor).is_ok());
  EXPECT_EQ(per_channel.activation_ranges.count(dw_input), 0u);
  EXPECT_EQ(per_tensor.activation_ranges.count(dw_input), 1u);
  EXPECT_EQ(per_tensor.activation_ranges.size(), per_channel.activation_ranges.size() + 1);
  EXPECT_EQ(meta(per_channel, "static.ranges"), std::to_string(per_channel.activation_ranges.size()));
}

TEST(EvalConvert, OpenCalibrationErrors) {
  const std::string dir = test::temp_dir("open");
  test::save(test::sensitive_chain_model(), dir + "/sensitive.onnx");
  eval::Calibration cal;
  Status st = eval::open_calibration(dir + "/sensitive.onnx", dir + "/nothing", 1, &cal);
  ASSERT_FALSE(st.is_ok());
  EXPECT_HAS(st.message(), dir + "/nothing: not a folder");
  eval::Calibration cal2;
  st = eval::open_calibration(dir + "/absent.onnx", dir, 1, &cal2);
  ASSERT_FALSE(st.is_ok());
  EXPECT_HAS(st.message(), "absent.onnx");
}

// ------------------------------------------------ convert's accuracy check

// A graph of inputs only, each {name, dtype, dims} (a dim < 0 is symbolic:
// named by `symbols` when non-empty there, unnamed otherwise).
struct DeclaredInput {
  std::string name;
  DType dtype;
  std::vector<int64_t> dims;
  std::vector<std::string> symbols;
  bool has_shape = true;
};
Graph inputs_graph(const std::vector<DeclaredInput>& decl) {
  Graph g;
  for (const DeclaredInput& d : decl) {
    const int id = g.add_value(d.name);
    Value& v = g.values[static_cast<size_t>(id)];
    v.dtype = d.dtype;
    v.has_shape = d.has_shape;
    for (size_t k = 0; k < d.dims.size(); ++k) {
      Dim dim;
      if (d.dims[k] >= 0) dim.value = d.dims[k];
      else if (k < d.symbols.size()) dim.symbol = d.symbols[k];
      v.dims.push_back(dim);
    }
    g.inputs.push_back(id);
  }
  return g;
}

TEST(EvalAccuracyCheck, GeneratedInputsResolveSymbolicDims) {
  const Graph g = inputs_graph({{"x", DType::kFloat32, {-1, 3, -1}, {"batch", "", "len"}},
                                {"ids", DType::kInt64, {-1}, {"len"}},
                                {"z", DType::kFloat32, {-1, -1}, {}},
                                {"n", DType::kInt64, {-1}, {}},
                                {"flag", DType::kBool, {2}, {}}});
  std::vector<std::pair<DType, Shape>> made;
  auto r = eval::generate_inputs(g, 1, 64, [&](DType t, const Shape& s) {
    made.emplace_back(t, s);
    return Tensor::allocate(t, s);
  });
  ASSERT_TRUE(r.has_value()) << r.message();
  ASSERT_EQ(r->set.tensors.size(), 5u);
  EXPECT_EQ(r->set.name, "generated");
  EXPECT_EQ(r->set.tensors[0].name, "x");
  EXPECT_EQ(r->set.tensors[0].tensor.shape(), (Shape{1, 3, 64}));
  EXPECT_EQ(r->set.tensors[1].tensor.shape(), (Shape{64}));  // "len" again, not a batch
  EXPECT_EQ(r->set.tensors[1].tensor.dtype(), DType::kInt64);
  EXPECT_EQ(r->set.tensors[2].tensor.shape(), (Shape{1, 64}));
  EXPECT_EQ(r->set.tensors[3].tensor.shape(), (Shape{64}));  // rank 1: not a batch
  EXPECT_EQ(r->set.tensors[4].tensor.shape(), (Shape{2}));
  EXPECT_EQ(r->resolved, (std::vector<std::string>{"batch=1", "len=64", "z[0]=1", "z[1]=64", "n[0]=64"}));
  ASSERT_EQ(made.size(), 5u);
  EXPECT_EQ(made[4].first, DType::kBool);

  // What cannot be generated, named.
  auto fill = [](DType t, const Shape& s) { return Tensor::allocate(t, s); };
  auto no_shape = eval::generate_inputs(inputs_graph({{"x", DType::kFloat32, {}, {}, false}}), 1, 64, fill);
  ASSERT_FALSE(no_shape.has_value());
  EXPECT_EQ(no_shape.message(), "input 'x' declares no shape");
  auto no_dtype = eval::generate_inputs(inputs_graph({{"x", DType::kUndefined, {2}, {}}}), 1, 64, fill);
  ASSERT_FALSE(no_dtype.has_value());
  EXPECT_EQ(no_dtype.message(), "input 'x' declares no dtype");
  auto strings = eval::generate_inputs(inputs_graph({{"s", DType::kString, {2}, {}}}), 1, 64, fill);
  ASSERT_FALSE(strings.has_value());
  EXPECT_EQ(strings.message(), "input 's' holds strings");
  auto big = eval::generate_inputs(inputs_graph({{"x", DType::kFloat32, {20, -1}, {}}}), 1, 64, fill, 1000);
  ASSERT_FALSE(big.has_value());
  EXPECT_EQ(big.message(), "input 'x' of shape [20, 64] is too large to generate");
  auto huge = eval::generate_inputs(inputs_graph({{"x", DType::kFloat32, {int64_t{1} << 40, int64_t{1} << 40}, {}}}),
                                    1, 64, fill);
  ASSERT_FALSE(huge.has_value());
  EXPECT_HAS(huge.message(), "is too large to generate");
}

// The sensitive chain with an int64 ArgMax output "idx" beside y (and,
// with `only_idx`, idx alone).
onnx::ModelProto chain_with_argmax(bool only_idx) {
  onnx::ModelProto m = test::sensitive_chain_model();
  auto* g = m.mutable_graph();
  auto* n = g->add_node();
  n->set_name("argmax");
  n->set_op_type("ArgMax");
  n->add_input("y");
  n->add_output("idx");
  auto* a = n->add_attribute();
  a->set_name("axis");
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(-1);
  if (only_idx) g->mutable_output()->DeleteSubrange(0, 1);
  test::set_tensor_type(g->add_output(), "idx", {1, 16, 1}, onnx::TensorProto::INT64);
  return m;
}

TEST(EvalAccuracyCheck, ComparesFloatOutputsAndNamesTheWorst) {
  const RefAndBlob t = ref_and_blob("check", chain_with_argmax(false));
  ASSERT_TRUE(t.ref && t.blob);
  auto ref = test::session_on(t.ref, one_thread());
  auto blob = test::session_on(t.blob, one_thread());
  const std::vector<InputSet> sets = chain_sets(2, 70);
  auto outs = eval::ReferenceOutputs::run(*ref, sets);
  ASSERT_TRUE(outs.has_value()) << outs.message();
  auto c = eval::check_accuracy(*outs, *blob, sets);
  ASSERT_TRUE(c.has_value()) << c.message();
  EXPECT_EQ(c->names, std::vector<std::string>{"y"});
  EXPECT_EQ(c->skipped, 1u);  // idx: int64
  EXPECT_EQ(c->worst, "y");
  auto expected = eval::min_output_cosine(*outs, *blob, sets);  // y is the only float output
  ASSERT_FALSE(expected.has_value());  // ... but min_output_cosine compares idx too, and cannot
  EXPECT_HAS(expected.message(), "idx");
  EXPECT_EQ(c->errors[0].elements(), 2 * 16 * 32);
  EXPECT_LT(c->min_cosine, 0.9999);
  EXPECT_GT(c->min_cosine, 0.0);
  EXPECT_EQ(c->min_cosine, c->errors[0].cosine());
  // Against itself: exact.
  auto self = eval::check_accuracy(*outs, *ref, sets);
  ASSERT_TRUE(self.has_value()) << self.message();
  EXPECT_NEAR(self->min_cosine, 1.0, 1e-12);

  std::atomic<bool> cancel{true};
  auto stopped = eval::check_accuracy(*outs, *blob, sets, &cancel);
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.message(), "interrupted");

  // Only an int64 output: nothing to compare.
  const RefAndBlob idx = ref_and_blob("check_idx", chain_with_argmax(true));
  ASSERT_TRUE(idx.ref && idx.blob);
  auto iref = test::session_on(idx.ref, one_thread());
  auto iblob = test::session_on(idx.blob, one_thread());
  auto iouts = eval::ReferenceOutputs::run(*iref, sets);
  ASSERT_TRUE(iouts.has_value()) << iouts.message();
  auto none = eval::check_accuracy(*iouts, *iblob, sets);
  ASSERT_FALSE(none.has_value());
  EXPECT_EQ(none.message(), "the model has no float output to compare");
}

TEST(EvalAccuracyCheck, WorstLayersByLocalError) {
  const RefAndBlob t = ref_and_blob("worst", test::sensitive_chain_model());
  ASSERT_TRUE(t.ref && t.blob);
  KernelTable kernels;
  register_kernels(kernels);
  const std::vector<InputSet> sets = chain_sets(2, 80);
  auto all = eval::worst_layers_by_local_error(t.ref, t.blob, sets, 1, kernels, "fp32", 5);
  ASSERT_TRUE(all.has_value()) << all.message();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].node, "second");
  EXPECT_EQ((*all)[0].op, "QMatMul");
  EXPECT_EQ((*all)[1].node, "first");
  EXPECT_GT((*all)[0].relative_l2, (*all)[1].relative_l2);
  EXPECT_LT((*all)[0].cosine, (*all)[1].cosine);
  auto one = eval::worst_layers_by_local_error(t.ref, t.blob, sets, 1, kernels, "fp32", 1);
  ASSERT_TRUE(one.has_value()) << one.message();
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].node, "second");
  std::atomic<bool> cancel{true};
  auto stopped = eval::worst_layers_by_local_error(t.ref, t.blob, sets, 1, kernels, "fp32", 5, &cancel);
  ASSERT_FALSE(stopped.has_value());
  EXPECT_EQ(stopped.message(), "interrupted");
}

TEST(EvalAccuracyCheck, CalibrationReferenceOutputsAreComputedOnce) {
  const std::string dir = test::temp_dir("calref");
  test::save(test::sensitive_chain_model(), dir + "/sensitive.onnx");
  eval::Calibration cal;
  ASSERT_TRUE(eval::open_calibration(dir + "/sensitive.onnx", write_calibration(dir, 2, 90), 1, &cal).is_ok());
  auto a = eval::reference_outputs(cal);
  ASSERT_TRUE(a.has_value()) << a.message();
  auto b = eval::reference_outputs(cal);
  ASSERT_TRUE(b.has_value()) << b.message();
  EXPECT_EQ(*a, *b);
  ASSERT_EQ((*a)->per_set.size(), 2u);
  EXPECT_EQ((*a)->session, cal.session.get());
}

TEST(EvalConvert, GlobEscapeMatchesOnlyTheName) {
  EXPECT_EQ(quant::glob_escape("plain/name.0"), "plain/name.0");
  EXPECT_EQ(quant::glob_escape("a*b?[c]\\d"), "a\\*b\\?\\[c\\]\\\\d");
}

}  // namespace
}  // namespace sarai
