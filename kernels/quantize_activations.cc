#include "kernels/quantize_activations.h"

#include <algorithm>
#include <cmath>

namespace sarai::kernels {
namespace {

// round_half_even(v) clamped to [0, 255]; NaN -> 0. std::nearbyint rounds
// half to even in the default FE_TONEAREST mode (the runtime never changes it).
inline uint8_t saturate_u8(float v) {
  if (!(v > 0.f)) return 0;  // also NaN
  if (v >= 255.f) return 255;
  return static_cast<uint8_t>(std::nearbyint(v));
}

}  // namespace

QuantParams choose_u8_params(float lo, float hi) {
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  QuantParams p;
  if (!(hi > lo)) return p;  // range 0 (or NaN): scale 1, zero point 0
  p.scale = (hi - lo) / 255.f;
  const float zp = 0.f - lo / p.scale;
  // Saturate first, then round (onnx's order; the same result for [0, 255]).
  p.zero_point = saturate_u8(std::clamp(zp, 0.f, 255.f));
  return p;
}

void quantize_u8_with(const float* x, int64_t n, QuantParams p, uint8_t* out) {
  const float zp = static_cast<float>(p.zero_point);
  for (int64_t i = 0; i < n; ++i) {
    // round(x / scale) + zp, then saturate: round before adding the zero
    // point, as the spec writes it (zp is an integer, so the order only
    // matters for NaN, which saturate_u8 maps to 0).
    out[i] = saturate_u8(std::nearbyint(x[i] / p.scale) + zp);
  }
}

QuantParams quantize_u8(const float* x, int64_t n, uint8_t* out) {
  float lo = 0.f, hi = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    // NaN compares false both ways and is ignored for the range.
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  QuantParams p = choose_u8_params(lo, hi);
  quantize_u8_with(x, n, p, out);
  return p;
}

}  // namespace sarai::kernels
