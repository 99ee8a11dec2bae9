#include "quantizer/plan.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>
#include <tuple>

#include "runtime/fuse.h"

namespace sarai::quant {

namespace {

bool is_float_dtype(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kFloat64;
}

int input_or_none(const Node& n, size_t i) {
  return i < n.inputs.size() ? n.inputs[i] : kNoValue;
}

bool is_graph_output(const Graph& g, int v) {
  return std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
}

// The first --keep-fp32 pattern that matches `name`, or nullptr.
const std::string* matching_glob(const std::vector<std::string>& globs, const std::string& name) {
  for (const std::string& p : globs)
    if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return &p;
  return nullptr;
}

// Gemm's C can become QMatMul's bias when it is the same for every row:
// a float32 constant of shape [N], [1, N], [1], [1, 1] or a scalar.
bool gemm_bias_is_per_column(const Value& c, int64_t n) {
  if (!c.is_initializer || c.initializer.dtype() != DType::kFloat32) return false;
  const Shape& s = c.initializer.shape();
  if (s.size() > 2) return false;
  if (s.size() == 2 && s[0] != 1) return false;
  return s.empty() || s.back() == 1 || s.back() == n;
}

// The structural reason a node's weight cannot be quantized ("" when it can),
// and the output-channel axis.
std::string structural_check(const Graph& g, const Node& n, WeightRole role, int w, int* axis) {
  if (w == kNoValue || !g.values[static_cast<size_t>(w)].is_initializer) return "fp32: weight is not a constant";
  const Tensor& t = g.values[static_cast<size_t>(w)].initializer;
  if (!is_float_dtype(t.dtype())) return std::string("fp32: weight dtype ") + dtype_name(t.dtype()) + " is not a float type";
  const int rank = t.rank();
  switch (role) {
    case WeightRole::kMatMul:
      if (rank != 2) return "fp32: MatMul weight of rank " + std::to_string(rank);
      *axis = 1;
      break;
    case WeightRole::kGemm: {
      if (n.attr_int("transA", 0) != 0) return "fp32: Gemm with transA=1";
      if (rank != 2) return "fp32: Gemm weight of rank " + std::to_string(rank);
      const bool trans_b = n.attr_int("transB", 0) != 0;
      *axis = trans_b ? 0 : 1;
      const int c = input_or_none(n, 2);
      if (c != kNoValue && !gemm_bias_is_per_column(g.values[static_cast<size_t>(c)], t.dim(*axis)))
        return "fp32: Gemm bias C is not a float32 constant of shape [N] or [1, N]";
      break;
    }
    case WeightRole::kConv: {
      if (rank < 3) return "fp32: Conv weight of rank " + std::to_string(rank);
      const int64_t group = n.attr_int("group", 1);
      if (group < 1 || t.dim(0) % group != 0)
        return "fp32: Conv group " + std::to_string(group) + " does not divide " + std::to_string(t.dim(0)) +
               " output channels";
      *axis = 0;
      break;
    }
    case WeightRole::kConvTranspose: {
      if (rank < 3) return "fp32: ConvTranspose weight of rank " + std::to_string(rank);
      const int64_t group = n.attr_int("group", 1);
      if (group < 1 || t.dim(0) % group != 0)
        return "fp32: ConvTranspose group " + std::to_string(group) + " does not divide " +
               std::to_string(t.dim(0)) + " input channels";
      *axis = 1;
      break;
    }
  }
  if (t.numel() == 0) return "fp32: weight is empty";
  return "";
}

}  // namespace

std::string glob_escape(const std::string& name) {
  std::string r;
  for (char c : name) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

const char* role_name(WeightRole r) {
  switch (r) {
    case WeightRole::kMatMul: return "MatMul";
    case WeightRole::kGemm: return "Gemm";
    case WeightRole::kConv: return "Conv";
    case WeightRole::kConvTranspose: return "ConvTranspose";
  }
  return "?";
}

void promote_constants(Graph& g) {
  std::vector<bool> drop(g.nodes.size(), false);
  bool any = false;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op_type != "Constant" || !(n.domain.empty() || n.domain == "ai.onnx")) continue;
    if (n.outputs.size() != 1 || n.outputs[0] == kNoValue) continue;
    const Attribute* a = n.attr("value");
    if (!a || a->kind != Attribute::Kind::kTensor || !a->t.defined()) continue;
    const int v = n.outputs[0];
    if (is_graph_output(g, v)) continue;
    g.values[static_cast<size_t>(v)].set_initializer(a->t);
    drop[i] = true;
    any = true;
  }
  if (any) remove_nodes(g, drop);
}

QuantPlan plan_quantization(const Graph& g, const QuantOptions& o) {
  QuantPlan plan;
  // What the first quantized reader of a weight fixed: nodes that would
  // quantize the same weight another way (other axis, group or Gemm alpha)
  // keep it in FP32 instead of getting a second INT8 copy.
  using Form = std::tuple<WeightRole, int, int64_t, float>;
  std::map<int, std::pair<Form, int>> quantized_as;  // weight -> (form, node)

  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!(n.domain.empty() || n.domain == "ai.onnx")) continue;
    WeightRole role;
    if (n.op_type == "MatMul") role = WeightRole::kMatMul;
    else if (n.op_type == "Gemm") role = WeightRole::kGemm;
    else if (n.op_type == "Conv") role = WeightRole::kConv;
    else if (n.op_type == "ConvTranspose") role = WeightRole::kConvTranspose;
    else continue;

    WeightChoice c;
    c.node = static_cast<int>(i);
    c.role = role;
    c.weight_value = input_or_none(n, 1);
    int axis = -1;
    c.reason = structural_check(g, n, role, c.weight_value, &axis);
    c.axis = axis;
    if (c.reason.empty() && role == WeightRole::kConvTranspose && !o.per_tensor && n.attr_int("group", 1) > 1) {
      // Its output channel g * (M/g) + m spans two axes of W [C, M/g, k...];
      // blob format v1 records one channel axis per quantized tensor.
      c.reason = "fp32: ConvTranspose with group " + std::to_string(n.attr_int("group", 1)) +
                 " needs per-tensor scales (--per-tensor)";
    }
    if (c.reason.empty()) {
      const Value& w = g.values[static_cast<size_t>(c.weight_value)];
      const int64_t elements = w.initializer.numel();
      if (const std::string* p = matching_glob(o.keep_fp32, n.name)) {
        c.reason = "fp32: node '" + n.name + "' matches --keep-fp32 '" + *p + "'";
      } else if (const std::string* q = matching_glob(o.keep_fp32, w.name)) {
        c.reason = "fp32: matches --keep-fp32 '" + *q + "'";
      } else if (elements < o.min_elements) {
        c.reason = "fp32: " + std::to_string(elements) + " elements < --min-elements " +
                   std::to_string(o.min_elements);
      }
    }
    if (c.reason.empty()) {
      // Roles that share one stored form: MatMul and Gemm(transB=0) both
      // pack W[K, N] as is.
      const WeightRole form_role = role == WeightRole::kGemm && axis == 1 ? WeightRole::kMatMul : role;
      const float alpha = role == WeightRole::kGemm ? n.attr_float("alpha", 1.f) : 1.f;
      const Form form{form_role, axis, n.attr_int("group", 1), alpha};
      auto it = quantized_as.find(c.weight_value);
      if (it != quantized_as.end() && it->second.first != form) {
        c.reason = "fp32: weight is already quantized differently for node '" +
                   g.nodes[static_cast<size_t>(it->second.second)].name + "'";
      } else {
        if (it == quantized_as.end()) quantized_as.emplace(c.weight_value, std::make_pair(form, c.node));
        c.quantize = true;
        c.reason = o.per_tensor ? "int8 per-tensor" : "int8 per-channel (axis " + std::to_string(axis) + ")";
      }
    }
    plan.choices.push_back(std::move(c));
  }
  return plan;
}

}  // namespace sarai::quant
