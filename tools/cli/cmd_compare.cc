// sarai-rt compare: a quantized model against its FP32 reference on the
// same inputs — per output cosine, MSE, MAE, max abs error, relative L2 and
// argmax agreement, the speed-up from the same run, and an exit code that
// says whether the thresholds held (so it can gate a deployment).
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "loader/model_file.h"
#include "quantizer/accuracy.h"
#include "quantizer/eval/eval.h"
#include "runtime/quantized_op.h"
#include "runtime/session.h"
#include "tools/cli/cli.h"

namespace sarai::cli {
namespace {

// Quantized nodes (QMatMul / QConv / QConvTranspose / QLSTM / QGRU / QRNN)
// inside g's subgraphs, at any depth.
int quantized_in_subgraphs(const Graph& g, bool inside = false) {
  int n = 0;
  for (const Node& node : g.nodes) {
    if (inside && (qop::is_quantized(node) || (node.domain == "sarai" && (node.op_type == "QLSTM" ||
                                                                      node.op_type == "QGRU" || node.op_type == "QRNN"))))
      ++n;
    for (const auto& [name, attr] : node.attrs)
      if (attr.g) n += quantized_in_subgraphs(*attr.g, true);
  }
  return n;
}

}  // namespace

int cmd_compare(const CompareArgs& a) {
  KernelTable kernels;
  register_kernels(kernels);
  SessionOptions opts;
  opts.num_threads = a.threads;
  std::unique_ptr<Session> sessions[2];
  std::shared_ptr<Model> models[2];
  const std::string paths[2] = {a.reference, a.test};
  for (int k = 0; k < 2; ++k) {
    auto model = open_model_file(paths[k]);
    if (!model) return fail(model.message());
    models[k] = *model;
    SessionOptions o = opts;
    if (k == 1) o.attention = attention_precision(a.attention);  // the reference keeps its own
    auto s = Session::create(*model, kernels, o);
    if (!s) return fail(s.message());
    sessions[k] = std::move(*s);
  }
  Session& ref = *sessions[0];
  Session& test = *sessions[1];

  std::vector<eval::InputSet> sets;
  if (!a.inputs_dir.empty()) {
    if (!a.inputs.empty() || !a.randoms.empty()) return fail("--inputs-dir cannot be combined with --input/--random");
    auto s = eval::read_input_sets(ref, a.inputs_dir);
    if (!s) return fail(s.message());
    sets = std::move(*s);
  } else {
    auto in = read_inputs(ref, a.inputs, a.randoms, a.seed);
    if (!in) return fail(in.message());
    sets.push_back({"--input/--random", std::move(*in)});
  }
  for (const eval::InputSet& set : sets)
    for (const NamedTensor& t : set.tensors)
      if (Status st = test.check_input(t); !st) return fail(set.name + ": " + st.message());

  eval::PerLayer layers;
  std::string attention = "fp32";  // the test model's: its fused attention blocks are layers too
  bool per_layer = a.per_layer;  // off when every quantized node is inside a subgraph
  if (a.per_layer) {
    auto p = attention_precision_for(*models[1], attention_precision(a.attention));
    if (!p) return fail(p.message());
    attention = *p;
    if (Status st = layers.init(models[0], models[1], ref.num_threads(), kernels, attention); !st)
      return fail(st.message());
    const int in_subgraphs = quantized_in_subgraphs(models[1]->graph);
    if (in_subgraphs > 0)
      std::fprintf(stderr,
                   "note: --per-layer measures the main graph's layers; %d quantized node%s inside subgraphs "
                   "(If / Loop / Scan bodies) %s not listed\n",
                   in_subgraphs, in_subgraphs == 1 ? "" : "s", in_subgraphs == 1 ? "is" : "are");
    if (layers.size() == 0 && in_subgraphs == 0)
      return fail(a.test + ": --per-layer: no quantized node whose output the reference also has");
    per_layer = layers.size() > 0;
  }
  auto compared = eval::compare_outputs(ref, test, sets, a.runs);
  if (!compared) return fail(compared.message());
  const std::vector<std::string>& names = compared->names;
  const std::vector<quant::OutputError>& errors = compared->errors;
  const double ref_ms = compared->reference_ms, test_ms = compared->test_ms;
  if (per_layer) {
    for (const eval::InputSet& set : sets)
      if (Status st = layers.add(set.tensors); !st) return fail(set.name + ": --per-layer: " + st.message());
    if (layers.spilled_bytes() > 0)
      std::fprintf(stderr,
                   "note: --per-layer kept %.1f MB of the test model's layer outputs in memory and wrote %.1f MB "
                   "to a temporary file (TMPDIR), read back layer by layer\n",
                   static_cast<double>(layers.peak_test_held_bytes()) / 1e6,
                   static_cast<double>(layers.spilled_bytes()) / 1e6);
    SessionOptions so;
    so.num_threads = ref.num_threads();
    auto ref_out = eval::ReferenceOutputs::run(ref, sets);
    if (!ref_out) return fail("--per-layer: " + ref_out.message());
    auto sens = eval::single_layer_sensitivity(models[0], *ref_out, models[1], sets, kernels, so, attention);
    if (!sens) return fail("--per-layer: " + sens.message());
    layers.set_sensitivity(*sens);
  }

  // The verdict: every output within every threshold that was given.
  bool held = true;
  std::vector<std::string> failures;
  for (size_t i = 0; i < names.size(); ++i) {
    const quant::OutputError& e = errors[i];
    char buf[160];
    if (!(e.cosine() >= a.min_cosine)) {
      std::snprintf(buf, sizeof buf, "'%s': cosine %.6f < %.6g", names[i].c_str(), e.cosine(), a.min_cosine);
      failures.push_back(buf);
    }
    if (a.max_mse >= 0 && !(e.mse() <= a.max_mse)) {
      std::snprintf(buf, sizeof buf, "'%s': MSE %.6g > %.6g", names[i].c_str(), e.mse(), a.max_mse);
      failures.push_back(buf);
    }
    if (a.max_mae >= 0 && !(e.mae() <= a.max_mae)) {
      std::snprintf(buf, sizeof buf, "'%s': MAE %.6g > %.6g", names[i].c_str(), e.mae(), a.max_mae);
      failures.push_back(buf);
    }
  }
  held = failures.empty();
  const double speedup = test_ms > 0 ? ref_ms / test_ms : 0;

  if (a.json) {
    std::printf("{\"reference\": %s, \"test\": %s, \"input_sets\": %zu, \"threads\": %d, "
                "\"reference_ms\": %.3f, \"test_ms\": %.3f, \"speedup\": %.3f, \"outputs\": [",
                json_string(a.reference).c_str(), json_string(a.test).c_str(), sets.size(), ref.num_threads(), ref_ms,
                test_ms, speedup);
    for (size_t i = 0; i < names.size(); ++i) {
      const quant::OutputError& e = errors[i];
      std::printf("%s{\"name\": %s, \"cosine\": %.9f, \"mse\": %.9g, \"mae\": %.9g, \"max_abs\": %.9g, "
                  "\"relative_l2\": %.9g, \"argmax_agreement\": %.6f, \"rows\": %lld, \"elements\": %lld}",
                  i ? ", " : "", json_string(names[i]).c_str(), e.cosine(), e.mse(), e.mae(), e.max_abs(), e.relative_l2(),
                  e.argmax_agreement(), static_cast<long long>(e.rows()), static_cast<long long>(e.elements()));
    }
    std::printf("]");
    if (per_layer) {
      std::printf(", \"layers\": [");
      bool first = true;
      for (const eval::LayerError* l : layers.sorted()) {
        std::printf("%s{\"node\": %s, \"op\": %s, \"output\": %s, \"alone_cosine\": %.9f, \"local_cosine\": %.9f, "
                    "\"local_relative_l2\": %.9g, \"accumulated_cosine\": %.9f, \"accumulated_relative_l2\": %.9g}",
                    first ? "" : ", ", json_string(l->node).c_str(), json_string(l->op).c_str(),
                    json_string(l->output).c_str(), l->alone_cosine, l->local.cosine(), l->local.relative_l2(),
                    l->accumulated.cosine(), l->accumulated.relative_l2());
        first = false;
      }
      std::printf("]");
    }
    std::printf(", \"thresholds_held\": %s}\n", held ? "true" : "false");
  } else {
    std::printf("reference %s (%.1f ms) vs test %s (%.1f ms): %.2fx faster, %zu input set%s, %d thread%s\n",
                a.reference.c_str(), ref_ms, a.test.c_str(), test_ms, speedup, sets.size(), sets.size() == 1 ? "" : "s",
                ref.num_threads(), ref.num_threads() == 1 ? "" : "s");
    std::printf("%-24s %10s %12s %12s %12s %12s %9s\n", "output", "cosine", "MSE", "MAE", "max abs", "rel L2",
                "argmax");
    for (size_t i = 0; i < names.size(); ++i) {
      const quant::OutputError& e = errors[i];
      std::printf("%-24s %10.6f %12.4g %12.4g %12.4g %12.4g %8.2f%%\n", names[i].c_str(), e.cosine(), e.mse(),
                  e.mae(), e.max_abs(), e.relative_l2(), 100 * e.argmax_agreement());
    }
    if (held) {
      char limits[96] = "";
      if (a.max_mse >= 0) std::snprintf(limits, sizeof limits, ", MSE <= %g", a.max_mse);
      if (a.max_mae >= 0)
        std::snprintf(limits + std::strlen(limits), sizeof limits - std::strlen(limits), ", MAE <= %g", a.max_mae);
      std::printf("thresholds held (cosine >= %g%s)\n", a.min_cosine, limits);
    }
    if (per_layer) {
      std::printf("\nper quantized node, most damaging first (alone: the model's output cosine with only this node "
                  "in INT8; local: the node's output, alone on the reference's inputs; accumulated: the node's output "
                  "along the INT8 chain)\n");
      std::printf("%-36s %-14s %12s %12s %12s %12s %12s\n", "node", "op", "alone cos", "local cos", "local relL2",
                  "accum cos", "accum relL2");
      for (const eval::LayerError* l : layers.sorted())
        std::printf("%-36s %-14s %12.6f %12.6f %12.4g %12.6f %12.4g\n", l->node.c_str(), l->op.c_str(),
                    l->alone_cosine, l->local.cosine(), l->local.relative_l2(), l->accumulated.cosine(),
                    l->accumulated.relative_l2());
    }
    for (const std::string& f : failures) std::printf("threshold not held: %s\n", f.c_str());
  }
  return held ? 0 : 3;
}

}  // namespace sarai::cli
