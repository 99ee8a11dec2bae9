#include "quantizer/quantize_weight.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "quantizer/quantize.h"
#include "runtime/parallel.h"

namespace sarai::quant {

namespace {

constexpr int64_t kPanel = int8::kPanelN;  // 16
constexpr int64_t kGroup = int8::kGroupK;  // 4
constexpr int64_t kBatchBytes = 8 << 20;
constexpr int64_t kStripPanels = 32;  // 512 columns: 2 KB of each row per strip
constexpr int64_t kPlainStrip = 256;  // kPlainKN's columns per task in step 3

inline float absmax(float a, float x) {
  const float ax = std::fabs(x);
  return ax > a ? ax : a;
}

// max |x| over n floats; 16 independent lanes so it vectorizes without
// -ffast-math (a plain max reduction would not).
float row_absmax(const float* x, int64_t n) {
  float lane[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) lane[l] = absmax(lane[l], x[i + l]);
  float a = 0.f;
  for (; i < n; ++i) a = absmax(a, x[i]);
  for (float l : lane) a = absmax(a, l);
  return a;
}

// amax[n] = max_k |w[k][n]| for n in [n0, n1), n1 - n0 <= 512.
void column_absmax(const float* w, int64_t K, int64_t N, int64_t n0, int64_t n1, float* amax) {
  float acc[kStripPanels * kPanel] = {};
  const int64_t width = n1 - n0;
  for (int64_t k = 0; k < K; ++k) {
    const float* row = w + k * N + n0;
    // Fixed 16-wide steps: -O2's cheap vector cost model takes these.
    int64_t j = 0;
    for (; j + 16 <= width; j += 16)
      for (int l = 0; l < 16; ++l) acc[j + l] = absmax(acc[j + l], row[j + l]);
    for (; j < width; ++j) acc[j] = absmax(acc[j], row[j]);
  }
  std::copy(acc, acc + width, amax + n0);
}

// Runs fn(begin, end) over [0, units) in batches of about kBatchBytes of
// input, in parallel within each batch, reporting after each.
template <class Fn>
bool batched(int64_t units, int64_t unit_bytes, const std::function<bool(double)>& batch_done, Fn&& fn) {
  const int64_t per_batch = std::max<int64_t>(1, kBatchBytes / std::max<int64_t>(1, unit_bytes));
  for (int64_t b = 0; b < units; b += per_batch) {
    const int64_t e = std::min(units, b + per_batch);
    parallel_for(e - b, 1, [&](int64_t lo, int64_t hi) { fn(b + lo, b + hi); });
    if (batch_done && !batch_done(static_cast<double>(e) / static_cast<double>(units))) return false;
  }
  return true;
}

}  // namespace

int64_t WeightForm::numel() const {
  return kind == Kind::kPlainConvTranspose ? C * (N / group) * inner : K * N;
}

int64_t WeightForm::q_bytes() const { return packed() ? int8::packed_size(K, N) : numel(); }

WeightForm weight_form(const WeightChoice& c, const Node& node, const Shape& shape) {
  WeightForm f;
  const int64_t numel = numel_of(shape);
  switch (c.role) {
    case WeightRole::kMatMul:
    case WeightRole::kGemm:
      if (c.axis == 1) {
        f.kind = WeightForm::Kind::kPackedKN;
        f.K = shape[0];
        f.N = shape[1];
      } else {
        f.kind = WeightForm::Kind::kPackedNK;
        f.N = shape[0];
        f.K = shape[1];
      }
      break;
    case WeightRole::kConv:
      f.kind = node.attr_int("group", 1) == 1 ? WeightForm::Kind::kPackedNK : WeightForm::Kind::kPlainRows;
      f.N = shape[0];
      f.K = numel / shape[0];
      break;
    case WeightRole::kConvTranspose:
      f.kind = WeightForm::Kind::kPlainConvTranspose;
      f.group = node.attr_int("group", 1);
      f.C = shape[0];
      f.N = shape[1] * f.group;
      f.inner = numel / (shape[0] * shape[1]);
      f.K = f.C / f.group * f.inner;  // elements per output channel
      break;
  }
  return f;
}

bool quantize_weight(const float* w, const WeightForm& f, bool per_tensor, float scale_factor, int8_t* q,
                     float* scales, int32_t* sums, const std::function<bool(double)>& batch_done) {
  using Kind = WeightForm::Kind;
  const int64_t K = f.K, N = f.N;
  const int64_t panels = (N + kPanel - 1) / kPanel;
  const int64_t Kp = int8::round_up(K, kGroup);
  // ConvTranspose: element (c, m, i) of channel g * Mg + m, g = c / Cg.
  const int64_t Mg = f.group > 0 ? N / f.group : 0, Cg = f.group > 0 ? f.C / f.group : 0;
  auto ct_index = [&](int64_t ch, int64_t c_in_group, int64_t i) {
    const int64_t g = ch / Mg, m = ch % Mg;
    return ((g * Cg + c_in_group) * Mg + m) * f.inner + i;
  };

  // 1. max |w| per output channel.
  std::vector<float> amax(static_cast<size_t>(N), 0.f);
  switch (f.kind) {
    case Kind::kPackedKN:
    case Kind::kPlainKN:
      // Column strips of whole rows: a strip's rows are contiguous runs, so
      // each page of w is visited once per strip, not once per panel.
      parallel_for(panels, kStripPanels, [&](int64_t p0, int64_t p1) {
        for (int64_t n0 = p0 * kPanel; n0 < std::min(N, p1 * kPanel); n0 += kStripPanels * kPanel)
          column_absmax(w, K, N, n0, std::min({N, p1 * kPanel, n0 + kStripPanels * kPanel}), amax.data());
      });
      break;
    case Kind::kPackedNK:
    case Kind::kPlainRows:
      parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          amax[static_cast<size_t>(n)] = row_absmax(w + n * K, K);
        }
      });
      break;
    case Kind::kPlainConvTranspose:
      parallel_for(N, 16, [&](int64_t n0, int64_t n1) {
        for (int64_t ch = n0; ch < n1; ++ch) {
          float a = 0.f;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < f.inner; ++i) a = absmax(a, w[ct_index(ch, c, i)]);
          amax[static_cast<size_t>(ch)] = a;
        }
      });
      break;
  }

  // 2. Scales (quantize_symmetric's: max|w| / 127, or 1 for an all-zero
  // channel) and their inverses.
  std::vector<float> inv(static_cast<size_t>(N));
  if (per_tensor) {
    float a = 0.f;
    for (float x : amax) a = std::max(a, x);
    const float s = a > 0.f ? a / 127.f : 1.f;
    std::fill(inv.begin(), inv.end(), 1.f / s);
    scales[0] = s * scale_factor;
  } else {
    for (int64_t n = 0; n < N; ++n) {
      const float a = amax[static_cast<size_t>(n)];
      const float s = a > 0.f ? a / 127.f : 1.f;
      inv[static_cast<size_t>(n)] = 1.f / s;
      scales[n] = s * scale_factor;
    }
  }
  const float* iv = inv.data();

  // 3. Quantize, lay out and sum.
  switch (f.kind) {
    case Kind::kPackedKN: {
      // Strips of up to kStripPanels panels: quantize 4 rows of the strip
      // (contiguous reads), then scatter them into the strip's blocks, one
      // 64-byte block per panel.
      const int64_t strips = (panels + kStripPanels - 1) / kStripPanels;
      return batched(strips, K * kStripPanels * kPanel * 4, batch_done, [&](int64_t s0, int64_t s1) {
        int8_t tile[kGroup][kStripPanels * kPanel];
        int32_t s[kStripPanels * kPanel];
        for (int64_t st = s0; st < s1; ++st) {
          const int64_t p0 = st * kStripPanels, np = std::min(kStripPanels, panels - p0);
          const int64_t n0 = p0 * kPanel, width = std::min(np * kPanel, N - n0), padded = np * kPanel;
          std::fill(s, s + padded, 0);
          for (int64_t kg = 0; kg < Kp / kGroup; ++kg) {
            for (int64_t r = 0; r < kGroup; ++r) {
              const int64_t k = kg * kGroup + r;
              int8_t* t = tile[r];
              if (k < K) {
                const float* row = w + k * N + n0;
                const float* in = iv + n0;
                for (int64_t j = 0; j < width; ++j) t[j] = quantize_one(row[j], in[j]);
                std::fill(t + width, t + padded, int8_t{0});
              } else {
                std::fill(t, t + padded, int8_t{0});
              }
              for (int64_t j = 0; j < padded; ++j) s[j] += t[j];
            }
            for (int64_t p = 0; p < np; ++p) {
              int8_t* blk = q + ((p0 + p) * (Kp / kGroup) + kg) * (kPanel * kGroup);
              for (int64_t j = 0; j < kPanel; ++j)
                for (int64_t r = 0; r < kGroup; ++r) blk[j * kGroup + r] = tile[r][p * kPanel + j];
            }
          }
          std::copy(s, s + width, sums + n0);
        }
      });
    }
    case Kind::kPackedNK:
      return batched(panels, K * kPanel * 4, batch_done, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
          const int64_t n0 = p * kPanel, nn = std::min(kPanel, N - n0);
          int8_t* panel = q + p * (Kp / kGroup) * (kPanel * kGroup);
          for (int64_t j = 0; j < kPanel; ++j) {
            int8_t* dst = panel + j * kGroup;  // channel j's 4 bytes in each block
            if (j >= nn) {
              for (int64_t kg = 0; kg < Kp / kGroup; ++kg)
                std::fill(dst + kg * kPanel * kGroup, dst + kg * kPanel * kGroup + kGroup, int8_t{0});
              continue;
            }
            const float* row = w + (n0 + j) * K;
            const float in = iv[n0 + j];
            int32_t s = 0;
            for (int64_t k = 0; k < Kp; ++k) {
              const int8_t v = k < K ? quantize_one(row[k], in) : int8_t{0};
              dst[(k / kGroup) * (kPanel * kGroup) + k % kGroup] = v;
              s += v;
            }
            sums[n0 + j] = s;
          }
        }
      });
    case Kind::kPlainRows:
      return batched(N, K * 4, batch_done, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
          const float* row = w + n * K;
          int8_t* dst = q + n * K;
          const float in = iv[n];
          int32_t s = 0;
          for (int64_t k = 0; k < K; ++k) {
            dst[k] = quantize_one(row[k], in);
            s += dst[k];
          }
          sums[n] = s;
        }
      });
    case Kind::kPlainKN:
      // Column strips of whole rows: each row's run of the strip is read and
      // written contiguously.
      return batched((N + kPlainStrip - 1) / kPlainStrip, K * kPlainStrip * 4, batch_done, [&](int64_t s0, int64_t s1) {
        int32_t s[kPlainStrip];
        for (int64_t st = s0; st < s1; ++st) {
          const int64_t n0 = st * kPlainStrip, width = std::min(kPlainStrip, N - n0);
          std::fill(s, s + width, 0);
          for (int64_t k = 0; k < K; ++k) {
            const float* row = w + k * N + n0;
            const float* in = iv + n0;
            int8_t* dst = q + k * N + n0;
            for (int64_t j = 0; j < width; ++j) {
              dst[j] = quantize_one(row[j], in[j]);
              s[j] += dst[j];
            }
          }
          std::copy(s, s + width, sums + n0);
        }
      });
    case Kind::kPlainConvTranspose:
      return batched(N, K * 4, batch_done, [&](int64_t n0, int64_t n1) {
        for (int64_t ch = n0; ch < n1; ++ch) {
          const float in = iv[ch];
          int32_t s = 0;
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < f.inner; ++i) {
              const int64_t idx = ct_index(ch, c, i);
              q[idx] = quantize_one(w[idx], in);
              s += q[idx];
            }
          sums[ch] = s;
        }
      });
  }
  return true;
}

}  // namespace sarai::quant
