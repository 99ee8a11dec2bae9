// ONNX model -> .sarai blob, streaming: the library side of `sarai-rt
// convert` (tools/ owns the command line, the progress bar and signals).
//
// The graph is rewritten per the plan (quantizer/plan.h): a quantized
// MatMul / Gemm becomes QMatMul (attrs K, N), Conv QConv (Conv's attrs +
// weight_shape), ConvTranspose QConvTranspose (attrs + weight_shape), all in
// domain "sarai", reading X, W.q, W.scale, W.wsum and the bias (see
// kernels/cpu/int8_layout.h); with static ranges, each also gets x_min and
// x_max. Every other tensor is written as it is. The bodies of If / Loop /
// Scan are converted the same way, at any depth (ONNX lets a body read an
// outer initializer: such a shared tensor is stored once); with
// recurrent = "int8", LSTM / GRU / RNN become QLSTM / QGRU / QRNN.
//
// Tensors are visited one at a time, in the source's order: each weight is
// read from its mapping (quant::to_float), quantized, packed and written,
// and its source pages are then released from the process, so peak memory
// is a constant plus O(largest tensor) however big the model is.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "quantizer/calibration.h"
#include "quantizer/plan.h"
#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai::quant {

inline constexpr const char* kConverterVersion = "sarai-rt 0.1.0";

struct ConvertOptions : QuantOptions {
  // Called from the calling thread after each tensor and within big ones
  // (about every 8 MB). total_bytes = the source .onnx file (hashed) plus
  // every tensor read.
  std::function<void(uint64_t done_bytes, uint64_t total_bytes)> progress;
  // When it becomes true: stop, remove the temp file, return "interrupted".
  const std::atomic<bool>* cancel = nullptr;
  std::string command_line;  // recorded in the metadata ("options")
  // More key-value pairs for the blob's metadata (e.g. what
  // `convert --auto-keep-fp32` chose and measured).
  std::vector<std::pair<std::string, std::string>> extra_metadata;
  // Static activation quantization: the calibrated range of each quantized
  // node's input X, by value name (quantizer/calibration.h). When not empty,
  // every quantized node gets attributes x_min and x_max from it (a node
  // whose X has no range is an error); empty = dynamic quantization.
  ActivationRanges activation_ranges;
  // How the blob's fused attention blocks run (SessionOptions::attention =
  // kModel reads it): "int8" (per-row scales; kernels/attention.cc),
  // "int8-per-tensor" or "fp32". Written as metadata "attention".
  std::string attention = "int8";
  // LSTM / GRU / RNN: "fp32" (weights as they are) or "int8" (W and R per
  // direction as N16K4 INT8 with a scale per gate row; the nodes become
  // sarai::QLSTM / QGRU / QRNN, kernels/recurrent.cc). Metadata "recurrent".
  std::string recurrent = "fp32";
  // Depthwise convolutions (group = C > 1): "per-channel" (each input
  // channel quantized with its own scale and zero point at run time:
  // attribute x_per_channel = 1 on the QConv, with or without
  // activation_ranges) or "per-tensor" (dynamic, or the calibrated range
  // when activation_ranges is set). Metadata "depthwise_activations":
  // per-channel, per-tensor or static.
  std::string depthwise_activations = "per-channel";
  // MatMul / Gemm: "per-row" (each row of X, a token, quantized with its own
  // scale and zero point at run time: attribute x_per_row = 1 on the
  // QMatMul) or "per-tensor" (one dynamic range per call). Under
  // activation_ranges every QMatMul takes its calibrated range instead.
  // Metadata "matmul_activations": per-row, per-tensor or static.
  std::string matmul_activations = "per-row";
};

struct ConvertSummary {
  // Counts cover every graph, subgraphs (If / Loop / Scan bodies) included;
  // a tensor several graphs share is counted (and stored) once.
  int quantized = 0;       // weights stored as INT8
  int kept_fp32 = 0;       // MatMul/Gemm/Conv/ConvTranspose weights left in FP32
  int other_tensors = 0;   // every other tensor written as is (biases, tables...)
  uint64_t bytes_in = 0;   // the source: .onnx file + its external data files
  uint64_t bytes_out = 0;  // the blob's size
  double seconds = 0;
  // Node indices refer to the source graph after promote_constants: the
  // model's graph, or (WeightChoice::scope not empty) that subgraph.
  std::vector<WeightChoice> choices;
  // With static ranges: quantized layers inside subgraphs, which keep
  // dynamic activation ranges (calibration measures the main graph only).
  int dynamic_subgraph_layers = 0;
};

// Streams `model` into a blob at out_path: writes out_path + ".tmp-<pid>" in
// the same folder and renames it on success; on any error or cancel the
// temp file is removed and out_path is untouched. The source files are never
// written. `model.graph` is rewritten in place (the caller loaded it for
// this). Errors are one line naming the file, tensor or node.
Expected<ConvertSummary> convert_to_blob(Model& model, const std::string& out_path, const ConvertOptions& opt);

// Whether quantized layer `c` of graph g quantizes its X per channel at run
// time (a depthwise conv under depthwise_activations "per-channel"): such a
// layer takes no static range, so --static does not measure one for it.
bool x_per_channel_at_run_time(const Graph& g, const WeightChoice& c, const ConvertOptions& opt);

// depthwise_activations and matmul_activations hold known values (the
// error names out_path); convert_to_blob checks it first thing.
Status check_activation_schemes(const ConvertOptions& opt, const std::string& out_path);

// "--per-tensor --keep-fp32 'a*' --min-elements 1024": the options as
// recorded when ConvertOptions::command_line is empty.
std::string canonical_options(const QuantOptions& o);

}  // namespace sarai::quant
