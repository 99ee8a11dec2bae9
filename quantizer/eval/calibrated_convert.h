// What `sarai-rt convert --static` and `--auto-keep-fp32` measure before
// converting: the FP32 reference and its calibration input sets, the static
// activation ranges, and the fewest layers to keep in FP32. Each step adds
// its choices (ranges, keep_fp32 patterns, metadata) to the ConvertOptions
// that the final conversion then uses; nothing here prints (the CLI,
// tools/cli/cmd_convert.cc, reports the results).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "quantizer/calibration.h"
#include "quantizer/convert.h"
#include "quantizer/eval/eval.h"
#include "runtime/kernel.h"
#include "runtime/session.h"

namespace sarai::eval {

// The FP32 reference and the calibration input sets, shared by --static
// and --auto-keep-fp32.
struct Calibration {
  std::string model_path;  // the source .onnx, loaded again for each --auto-keep-fp32 trial
  KernelTable kernels;
  std::shared_ptr<Model> model;
  std::unique_ptr<Session> session;
  std::vector<InputSet> sets;
  SessionOptions options;
  // The reference's outputs on `sets`, once computed (reference_outputs).
  std::unique_ptr<ReferenceOutputs> reference;
};

// The reference's outputs on the calibration sets, run on the first call
// and kept for --auto-keep-fp32's trials and convert's accuracy check.
Expected<const ReferenceOutputs*> reference_outputs(Calibration& c);

// Loads `model_path` and a session on it (every registered kernel,
// `threads` threads, weights streamed so the FP32 weights are never all
// resident at once), then the input sets of `calibration_dir`
// (read_input_sets).
Status open_calibration(const std::string& model_path, const std::string& calibration_dir, int threads,
                        Calibration* c);

// --static: the range of every input X of a node the plan for *opt
// quantizes, measured on the FP32 model over the calibration sets, into
// opt->activation_ranges; the method and the counts go into
// opt->extra_metadata ("static.*").
Status measure_static_ranges(const Calibration& c, const quant::RangeOptions& ro, quant::ConvertOptions* opt);

// --auto-keep-fp32: measures plain INT8 on the calibration sets; if it
// misses `target_cosine`, ranks the quantized nodes by their single-layer
// sensitivity (end to end, the node alone in INT8) and finds the fewest of
// the most damaging to keep in FP32 (binary search on the count: keeping
// more layers in FP32 only brings the model closer). Each trial is a real
// conversion with *opt (the static ranges when measure_static_ranges chose
// them) into `trial_path`, loaded and removed at once, and measured end to
// end. On success the chosen nodes are appended to opt->keep_fp32 and the
// figures to opt->extra_metadata ("auto_keep_fp32.*"); an error when even
// every quantized layer in FP32 misses the target.
struct AutoKeepFp32 {
  double plain_cosine = 1;         // lowest output cosine of plain INT8
  double cosine = 1;               // ... of the final choice
  std::vector<std::string> kept;   // the nodes kept in FP32, most damaging first
  size_t ranked = 0;               // quantized nodes ranked (0: plain INT8 met the target)
};
Expected<AutoKeepFp32> choose_fp32_layers(Calibration& c, double target_cosine, const std::string& trial_path,
                                          quant::ConvertOptions* opt);

}  // namespace sarai::eval
