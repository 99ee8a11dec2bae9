// Which weights get quantized, and why: the decision shared by the .sarai
// converter (quantizer/convert.h) and the quantized-ONNX exporter.
//
// A weight is quantized when it is the constant weight input (an
// initializer) of a MatMul (input B, rank 2), a Gemm (input B, transA = 0,
// bias C absent or a per-column constant), a Conv or a ConvTranspose (input
// W), its dtype is a float type, and the options do not keep it in FP32.
// Every such node gets one WeightChoice with a one-line reason, quantized or
// not, so `inspect` and the blob's metadata can say what happened to each
// weight.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/graph.h"

namespace sarai::quant {

// A node or weight name as a keep_fp32 pattern that matches only itself
// (fnmatch's special characters escaped).
std::string glob_escape(const std::string& name);

struct QuantOptions {
  bool per_tensor = false;              // one scale per weight instead of per output channel
  std::vector<std::string> keep_fp32;   // fnmatch globs on node names or weight names
  int64_t min_elements = 0;             // smaller weights stay FP32
};

enum class WeightRole { kMatMul, kGemm, kConv, kConvTranspose };

struct WeightChoice {
  int node = -1;           // index in Graph::nodes
  int weight_value = -1;   // value index of the weight input (kNoValue when absent)
  WeightRole role = WeightRole::kMatMul;
  bool quantize = false;
  int axis = -1;           // output-channel axis in the ONNX weight shape
  std::string reason;      // "int8 per-channel (axis 1)", "fp32: Gemm with transA=1", ...
  std::string scope;       // the graph: "" for the model's, "If_0.then_branch/" for a subgraph (convert)
};

struct QuantPlan {
  std::vector<WeightChoice> choices;  // in node order
};

const char* role_name(WeightRole r);  // "MatMul", "Gemm", "Conv", "ConvTranspose"

// Constant nodes (default domain) whose `value` attribute is a tensor become
// initializers of their output value, and the nodes are removed (the
// PaddleOCR models keep every weight in Constant nodes). A Constant whose
// output is a graph output is left alone.
void promote_constants(Graph& g);

// Decides, for each MatMul / Gemm / Conv / ConvTranspose node, whether its
// weight is quantized. Weights must already be initializers (see
// promote_constants). A weight shared by several nodes is quantized once;
// nodes that read it without being quantized keep reading the FP32 tensor.
QuantPlan plan_quantization(const Graph& g, const QuantOptions& o);

}  // namespace sarai::quant
