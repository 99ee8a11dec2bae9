#include "tests/int8_reference.h"

#include <cctype>

#include "kernels/cpu/quantize_activations.h"
#include "tests/test_util.h"

namespace sarai::test {

float epilogue_ref(int32_t acc, int32_t comp, float cscale, float bias, const float* residual,
                   kernels::QgemmActivation act) {
  float v = kernels::dequantize_acc(static_cast<int32_t>(int64_t{acc} - comp), cscale, bias);
  if (residual != nullptr) v = v + *residual;
  if (act == kernels::QgemmActivation::kRelu) v = v < 0.f ? 0.f : v;
  return v;
}

double dequantize_ref(int64_t acc, int64_t comp, float x_scale, float w_scale) {
  return double(x_scale) * w_scale * double(acc - comp);
}

std::string ConvCase::str() const {
  std::string s = "X " + shape_to_string(x) + " W " + shape_to_string(w) + " group " + std::to_string(group);
  const std::pair<const char*, const std::vector<int64_t>*> lists[] = {
      {"strides", &strides}, {"dilations", &dilations}, {"pads", &pads},
      {"output_padding", &output_padding}, {"output_shape", &output_shape}};
  for (const auto& [name, v] : lists)
    if (!v->empty()) s += std::string(" ") + name + " " + shape_to_string(*v);
  if (!auto_pad.empty()) s += " auto_pad " + auto_pad;
  if (!bias) s += " no bias";
  return s;
}

std::string ConvCase::name() const {
  std::string n;
  for (char c : str()) {
    if (std::isalnum(static_cast<unsigned char>(c))) n += c;
    else if (!n.empty() && n.back() != '_') n += '_';
  }
  while (!n.empty() && n.back() == '_') n.pop_back();
  return n;
}

void ConvCase::set_attrs(Node& node) const {
  node.attrs["group"] = attr_int(group);
  if (!strides.empty()) node.attrs["strides"] = attr_ints(strides);
  if (!dilations.empty()) node.attrs["dilations"] = attr_ints(dilations);
  if (!pads.empty()) node.attrs["pads"] = attr_ints(pads);
  if (!output_padding.empty()) node.attrs["output_padding"] = attr_ints(output_padding);
  if (!output_shape.empty()) node.attrs["output_shape"] = attr_ints(output_shape);
  if (!auto_pad.empty()) node.attrs["auto_pad"] = attr_string(auto_pad);
}

}  // namespace sarai::test
