#include "quantizer/quantize.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/int8_layout.h"

namespace sarai::quant {

Status to_float(const std::string& name, const Tensor& t, std::vector<float>& out) {
  const int64_t n = t.numel();
  out.resize(static_cast<size_t>(n));
  switch (t.dtype()) {
    case DType::kFloat32:
      if (n) std::memcpy(out.data(), t.raw(), static_cast<size_t>(n) * 4);
      break;
    case DType::kFloat16:
    case DType::kBFloat16:
    case DType::kFloat64:
      for (int64_t i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<float>(t.float_at(i));
      break;
    default:
      return Status::error("tensor '" + name + "': weights of dtype " + dtype_name(t.dtype()) +
                           " cannot be quantized (float32, float16, bfloat16 or float64 expected)");
  }
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(out[static_cast<size_t>(i)]))
      return Status::error("tensor '" + name + "': element " + std::to_string(i) + " is " +
                           (std::isnan(out[static_cast<size_t>(i)]) ? "NaN" : "infinite") +
                           "; weights must be finite to quantize");
  return Status::ok();
}

void quantize_symmetric(const float* w, int64_t outer, int64_t channels, int64_t inner, int8_t* q,
                        float* scales) {
  for (int64_t c = 0; c < channels; ++c) {
    float amax = 0.f;
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) amax = std::fmax(amax, std::fabs(w[(o * channels + c) * inner + i]));
    scales[c] = amax > 0.f ? amax / 127.f : 1.f;
  }
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t c = 0; c < channels; ++c) {
      const float inv = 1.f / scales[c];
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t idx = (o * channels + c) * inner + i;
        // nearbyint rounds half to even in the default rounding mode.
        float r = std::nearbyint(w[idx] * inv);
        r = std::fmin(127.f, std::fmax(-127.f, r));
        q[idx] = static_cast<int8_t>(r);
      }
    }
}

void pack_n16k4(const int8_t* q, int64_t K, int64_t N, int8_t* out, int32_t* sums) {
  std::memset(out, 0, static_cast<size_t>(int8::packed_size(K, N)));
  for (int64_t n = 0; n < N; ++n) sums[n] = 0;
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const int8_t v = q[k * N + n];
      out[int8::packed_index(k, n, K)] = v;
      sums[n] += v;
    }
}

void row_sums(const int8_t* q, int64_t rows, int64_t cols, int32_t* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    int32_t s = 0;
    for (int64_t c = 0; c < cols; ++c) s += q[r * cols + c];
    sums[r] = s;
  }
}

}  // namespace sarai::quant
