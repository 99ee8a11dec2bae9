// sarai-rt ops: the ops this build runs, from the kernel table itself
// (kernels/registry.cc): op, domain, opsets, the types each input takes,
// accepted attributes, and how INT8 reaches it. `--markdown` prints the table docs/ops.md holds (a test
// checks the two agree, so the document cannot go stale).
#include <algorithm>
#include <cstdio>
#include <map>
#include <string>

#include "kernels/kernels.h"
#include "loader/onnx_loader.h"
#include "tools/cli/cli.h"

namespace sarai::cli {
namespace {

// How INT8 reaches an op (the rest run in their own precision, float32 for
// float tensors).
const std::map<std::string, std::string>& int8_notes() {
  static const std::map<std::string, std::string> notes = {
      {"MatMul", "`convert` quantizes a constant weight: sarai::QMatMul"},
      {"Gemm", "`convert` quantizes a constant weight: sarai::QMatMul"},
      {"Conv", "`convert` quantizes the weight: sarai::QConv"},
      {"ConvTranspose", "`convert` quantizes the weight: sarai::QConvTranspose"},
      {"sarai::QMatMul", "INT8 GEMM (u8 activations x s8 weights, per-channel scales)"},
      {"sarai::QConv", "INT8 convolution"},
      {"sarai::QConvTranspose", "INT8 transposed convolution"},
      {"sarai::Attention", "fused at session creation; INT8 Q/K/V and probabilities by `precision`"},
      {"MatMulInteger", "a quantize_dynamic chain (DynamicQuantizeLinear, Cast, Mul) fuses into sarai::QMatMul"},
      {"ConvInteger", "a quantize_dynamic chain (DynamicQuantizeLinear, Cast, Mul) fuses into sarai::QConv"},
      {"LSTM", "`convert --recurrent int8` quantizes constant W and R: sarai::QLSTM"},
      {"GRU", "`convert --recurrent int8` quantizes constant W and R: sarai::QGRU"},
      {"RNN", "`convert --recurrent int8` quantizes constant W and R: sarai::QRNN"},
      {"sarai::QLSTM", "INT8 gate GEMMs (per gate row scales), FP32 gates"},
      {"sarai::QGRU", "INT8 gate GEMMs (per gate row scales), FP32 gates"},
      {"sarai::QRNN", "INT8 gate GEMMs (per gate row scales), FP32 gates"},
      {"QLinearConv", "after a QuantizeLinear of the same scale, with a constant weight: sarai::QConv + QuantizeLinear"},
      {"QLinearMatMul", "after a QuantizeLinear of the same scale, with a constant weight: sarai::QMatMul + QuantizeLinear"},
      {"DequantizeLinear", "QDQ form: DequantizeLinear(QuantizeLinear(x)) and of a constant weight into Conv/MatMul/Gemm fuse into sarai::QConv / QMatMul"},
      {"If", "runs its branches as sessions of their own"},
      {"Loop", "runs its body as a session of its own"},
      {"Scan", "runs its body as a session of its own"},
  };
  return notes;
}

std::string opsets(const std::vector<std::pair<int64_t, int64_t>>& ranges, bool default_domain) {
  if (!default_domain) return "any";
  std::string s;
  for (auto [since, until] : ranges) {
    const int64_t lo = std::max(since, kMinOpset), hi = std::min(until, kMaxOpset);
    if (lo > hi) continue;
    s += (s.empty() ? "" : ", ") + std::to_string(lo) + (hi > lo ? "-" + std::to_string(hi) : "");
  }
  return s;
}

// The types column: "float32, float64" when every input takes the same
// set, else "0: float32; 1: int64", "2-: any" (input 2 and after).
std::string types_of(const OpSchema& schema) {
  if (schema.types.empty()) return schema.types_declared ? "(no inputs)" : "";
  if (schema.types.size() == 1 && schema.types[0].first == 0 && schema.types[0].last == kLastInput)
    return type_set_name(schema.types[0].types);
  std::string s;
  for (const InputTypes& t : schema.types) {
    std::string inputs = std::to_string(t.first);
    if (t.last == kLastInput) inputs += "-";
    else if (t.last != t.first) inputs += "-" + std::to_string(t.last);
    s += (s.empty() ? "" : "; ") + inputs + ": " + type_set_name(t.types);
  }
  return s;
}

}  // namespace

int cmd_ops(bool markdown) {
  KernelTable table;
  register_kernels(table);
  const auto keys = table.op_types();
  if (markdown) std::printf("| op | opsets | input types | attributes | INT8 |\n|---|---|---|---|---|\n");
  for (const std::string& key : keys) {
    const auto sep = key.find("::");
    const bool def = sep == std::string::npos;
    const std::string domain = def ? "" : key.substr(0, sep), op = def ? key : key.substr(sep + 2);
    const auto ranges = table.opset_ranges(key);
    const OpSchema* schema = table.schema(op, def ? std::min(ranges.back().second, kMaxOpset) : 1, domain);
    std::string attrs, types;
    if (schema) {
      for (const AttrSpec& a : schema->attrs) attrs += (attrs.empty() ? "" : ", ") + std::string(a.name);
      types = types_of(*schema);
    }
    auto note = int8_notes().find(key);
    const std::string int8 = note == int8_notes().end() ? "" : note->second;
    if (markdown)
      std::printf("| %s | %s | %s | %s | %s |\n", key.c_str(), opsets(ranges, def).c_str(), types.c_str(), attrs.c_str(),
                  int8.c_str());
    else
      std::printf("%-28s opsets %-10s types %s%s%s\n", key.c_str(), opsets(ranges, def).c_str(), types.c_str(),
                  int8.empty() ? "" : "  INT8: ", int8.c_str());
  }
  if (!markdown) std::printf("%zu ops\n", keys.size());
  return 0;
}

}  // namespace sarai::cli
