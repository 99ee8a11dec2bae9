#include "quantizer/eval/calibrated_convert.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "kernels/kernels.h"
#include "loader/blob_reader.h"
#include "loader/onnx_loader.h"
#include "quantizer/plan.h"

namespace fs = std::filesystem;

namespace sarai::eval {

Status open_calibration(const std::string& model_path, const std::string& calibration_dir, int threads,
                        Calibration* c) {
  c->model_path = model_path;
  register_kernels(c->kernels);
  c->options.num_threads = threads;
  // Each weight's pages are released after use, so measuring a model of any
  // size keeps convert's memory bounded (the FP32 weights are never all
  // resident at once).
  c->options.stream_weights = true;
  auto m = load_onnx(model_path);
  if (!m) return m.status();
  c->model = *m;
  auto s = Session::create(c->model, c->kernels, c->options);
  if (!s) return s.status();
  c->session = std::move(*s);
  auto sets = read_input_sets(*c->session, calibration_dir);
  if (!sets) return sets.status();
  c->sets = std::move(*sets);
  return Status::ok();
}

Expected<const ReferenceOutputs*> reference_outputs(Calibration& c) {
  if (!c.reference) {
    auto r = ReferenceOutputs::run(*c.session, c.sets);
    if (!r) return r.status();
    c.reference = std::make_unique<ReferenceOutputs>(std::move(*r));
  }
  return c.reference.get();
}

Status measure_static_ranges(const Calibration& c, const quant::RangeOptions& ro, quant::ConvertOptions* opt) {
  Graph g = c.model->graph;
  quant::promote_constants(g);
  std::set<std::string> names;
  // Depthwise convs quantizing X per channel at run time take no range.
  for (const quant::WeightChoice& w : quant::plan_quantization(g, *opt).choices)
    if (w.quantize && !quant::x_per_channel_at_run_time(g, w, *opt))
      names.insert(g.values[static_cast<size_t>(g.nodes[static_cast<size_t>(w.node)].inputs[0])].name);
  auto ranges = calibrate_ranges(c.model, c.sets, names, ro, c.session->num_threads(), c.kernels);
  if (!ranges) return ranges.status();
  opt->activation_ranges = std::move(*ranges);
  opt->extra_metadata.emplace_back("static.method", quant::range_method_name(ro.method));
  if (ro.method == quant::RangeMethod::kPercentile) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", ro.percentile);
    opt->extra_metadata.emplace_back("static.percentile", buf);
  }
  opt->extra_metadata.emplace_back("static.calibration_sets", std::to_string(c.sets.size()));
  opt->extra_metadata.emplace_back("static.ranges", std::to_string(opt->activation_ranges.size()));
  return Status::ok();
}

Expected<AutoKeepFp32> choose_fp32_layers(Calibration& cal, double target_cosine, const std::string& trial_path,
                                          quant::ConvertOptions* opt) {
  const KernelTable& kernels = cal.kernels;
  const std::vector<InputSet>& sets = cal.sets;
  // The reference runs once; every trial and every layer is measured against it.
  auto ref = reference_outputs(cal);
  if (!ref) return ref.status();

  // A trial blob is renamed into place and removed at once (the caller may
  // remove trial_path on a second signal in between).
  std::shared_ptr<Model> last_blob;
  auto trial = [&](const std::vector<std::string>& keep) -> Expected<double> {
    auto source = load_onnx(cal.model_path);
    if (!source) return source.status();
    quant::ConvertOptions o = *opt;
    o.progress = nullptr;
    for (const std::string& k : keep) o.keep_fp32.push_back(quant::glob_escape(k));
    auto r = quant::convert_to_blob(**source, trial_path, o);
    if (!r) return r.status();
    auto blob = load_blob(trial_path);
    std::error_code ec;
    fs::remove(trial_path, ec);  // the mapping stays valid
    if (!blob) return blob.status();
    last_blob = *blob;
    auto s = Session::create(*blob, kernels, cal.options);
    if (!s) return s.status();
    return min_output_cosine(**ref, **s, sets);
  };

  AutoKeepFp32 r;
  auto plain = trial({});
  if (!plain) return plain.status();
  r.plain_cosine = r.cosine = *plain;
  if (*plain < target_cosine) {
    // Rank by single-layer sensitivity: each quantized layer alone in INT8
    // (every other in FP32), measured end to end on the calibration sets.
    // A layer's own error can be small and still be amplified downstream
    // (or be large and washed out), which a local measure cannot see.
    auto sens = single_layer_sensitivity(cal.model, **ref, last_blob, sets, kernels, cal.options);
    if (!sens) return sens.status();
    std::stable_sort(sens->begin(), sens->end(), [](const Sensitivity& x, const Sensitivity& y) { return x.cosine < y.cosine; });
    std::vector<std::string> ranked;
    for (const Sensitivity& e : *sens) ranked.push_back(e.node);
    if (ranked.empty()) return Status::error(cal.model_path + ": --auto-keep-fp32: no quantized layer to keep in FP32");
    size_t lo = 1, hi = ranked.size();
    while (lo < hi) {
      const size_t mid = (lo + hi) / 2;
      auto c = trial(std::vector<std::string>(ranked.begin(), ranked.begin() + static_cast<long>(mid)));
      if (!c) return c.status();
      if (*c >= target_cosine)
        hi = mid;
      else
        lo = mid + 1;
    }
    r.kept.assign(ranked.begin(), ranked.begin() + static_cast<long>(lo));
    auto c = trial(r.kept);  // the measured cosine of the final choice
    if (!c) return c.status();
    r.cosine = *c;
    if (r.cosine < target_cosine)
      return Status::error(cal.model_path + ": --auto-keep-fp32: even with all " + std::to_string(ranked.size()) +
                           " quantized layers in FP32 the cosine is " + std::to_string(r.cosine) + " < " +
                           std::to_string(target_cosine));
    r.ranked = ranked.size();
  }
  std::string kept;
  for (const std::string& k : r.kept) kept += (kept.empty() ? "" : ",") + k;
  char buf[64];
  for (const std::string& k : r.kept) opt->keep_fp32.push_back(quant::glob_escape(k));
  std::snprintf(buf, sizeof buf, "%.6f", r.plain_cosine);
  opt->extra_metadata.emplace_back("auto_keep_fp32.plain_int8_cosine", buf);
  std::snprintf(buf, sizeof buf, "%.6f", r.cosine);
  opt->extra_metadata.emplace_back("auto_keep_fp32.cosine", buf);
  std::snprintf(buf, sizeof buf, "%g", target_cosine);
  opt->extra_metadata.emplace_back("auto_keep_fp32.target_cosine", buf);
  opt->extra_metadata.emplace_back("auto_keep_fp32.calibration_sets", std::to_string(sets.size()));
  opt->extra_metadata.emplace_back("auto_keep_fp32.nodes", kept);
  return r;
}

}  // namespace sarai::eval
