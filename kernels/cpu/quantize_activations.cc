#include "kernels/cpu/quantize_activations.h"

#include <algorithm>
#include <cmath>

#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Floats per thread at least (128 KiB: tens of microseconds of work, well
// above the cost of waking the pool), and at most this many range blocks.
constexpr int64_t kGrain = int64_t{1} << 15;
constexpr int64_t kMaxBlocks = 64;

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
  // round(x / scale) + zp, then saturate: round before adding the zero point,
  // as the spec writes it (vec_kernels.h; what saturate_u8 above does for one
  // value). Elementwise, so the chunking cannot change a result.
  const VecKernels& vk = vec_kernels();
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    vk.quantize_u8(x + begin, end - begin, p.scale, p.zero_point, out + begin);
  });
}

QuantParams quantize_u8(const float* x, int64_t n, uint8_t* out) {
  // Range pass: lo = x[i] < lo ? x[i] : lo (hi alike) from 0, NaN ignored.
  // Each thread folds one contiguous run of blocks from 0, 0 into its first
  // block's slot; the slots are then folded in order. Min and max are exact
  // and every fold starts at 0, so the result is the sequential loop's bit
  // for bit whatever the thread count (vec_kernels.h, minmax).
  const VecKernels& vk = vec_kernels();
  float lo = 0.f, hi = 0.f;
  const int64_t blocks = std::min<int64_t>(kMaxBlocks, n / kGrain);
  if (blocks <= 1) {
    vk.minmax(x, n, &lo, &hi);
  } else {
    float block_lo[kMaxBlocks] = {}, block_hi[kMaxBlocks] = {};
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
      const int64_t begin = n * b0 / blocks, end = n * b1 / blocks;
      vk.minmax(x + begin, end - begin, &block_lo[b0], &block_hi[b0]);
    });
    for (int64_t b = 0; b < blocks; ++b) {
      lo = block_lo[b] < lo ? block_lo[b] : lo;
      hi = block_hi[b] > hi ? block_hi[b] : hi;
    }
  }
  QuantParams p = choose_u8_params(lo, hi);
  quantize_u8_with(x, n, p, out);
  return p;
}

void quantize_u8_per_channel(const float* x, int64_t batch, int64_t channels, int64_t plane, uint8_t* out,
                             QuantParams* params) {
  const VecKernels& vk = vec_kernels();
  const int64_t grain = std::max<int64_t>(1, kGrain / std::max<int64_t>(1, batch * plane));
  parallel_for(channels, grain, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      // Every image's plane folded from 0, 0: min and max are exact, so the
      // order cannot change them.
      float lo = 0.f, hi = 0.f;
      for (int64_t b = 0; b < batch; ++b) vk.minmax(x + (b * channels + c) * plane, plane, &lo, &hi);
      const QuantParams p = choose_u8_params(lo, hi);
      params[c] = p;
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t off = (b * channels + c) * plane;
        vk.quantize_u8(x + off, plane, p.scale, p.zero_point, out + off);
      }
    }
  });
}

}  // namespace sarai::kernels
