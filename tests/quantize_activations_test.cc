// The vectorized DynamicQuantizeLinear (VecKernels::minmax / quantize_u8 of
// every ISA table, and kernels::quantize_u8 / quantize_u8_with over threads)
// against the scalar code it replaced, kept below as the oracle: memcmp
// equal for random data, special values (NaN, +-inf, -0, subnormals, huge),
// every tail length, exact .5 ties and a sweep over the float bit patterns.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/quantize_activations.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"
#include "runtime/parallel.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using kernels::QuantParams;
using kernels::VecKernels;

// ---- The oracle: kernels/cpu/quantize_activations.cc as it was before the
// vector kernels, verbatim but for the names.
namespace oracle {

uint8_t saturate_u8(float v) {
  if (!(v > 0.f)) return 0;  // also NaN
  if (v >= 255.f) return 255;
  return static_cast<uint8_t>(std::nearbyint(v));
}

QuantParams choose_u8_params(float lo, float hi) {
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  QuantParams p;
  if (!(hi > lo)) return p;
  p.scale = (hi - lo) / 255.f;
  const float zp = 0.f - lo / p.scale;
  p.zero_point = saturate_u8(std::clamp(zp, 0.f, 255.f));
  return p;
}

void quantize_u8_with(const float* x, int64_t n, float scale, uint8_t zero_point, uint8_t* out) {
  const float zp = static_cast<float>(zero_point);
  for (int64_t i = 0; i < n; ++i) out[i] = saturate_u8(std::nearbyint(x[i] / scale) + zp);
}

void range(const float* x, int64_t n, float* lo_io, float* hi_io) {
  float lo = *lo_io, hi = *hi_io;
  for (int64_t i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  *lo_io = lo;
  *hi_io = hi;
}

QuantParams quantize_u8(const float* x, int64_t n, uint8_t* out) {
  float lo = 0.f, hi = 0.f;
  range(x, n, &lo, &hi);
  QuantParams p = choose_u8_params(lo, hi);
  quantize_u8_with(x, n, p.scale, p.zero_point, out);
  return p;
}

}  // namespace oracle

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kMax = std::numeric_limits<float>::max();
constexpr float kDenorm = std::numeric_limits<float>::denorm_min();
constexpr float kMinNormal = std::numeric_limits<float>::min();

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Values where a shortcut would go wrong: signed zeros, NaNs (quiet,
// signaling, negative), infinities, subnormals, the ends of the magic-number
// range (2^22, 2^23, 2^24), float extremes, .5 ties.
std::vector<float> special_values() {
  std::vector<float> v = {0.f,     -0.f,    kNaN,       -kNaN,     from_bits(0x7f800001u),
                          from_bits(0xffc12345u), kInf, -kInf,   kMax,      -kMax,
                          kDenorm, -kDenorm, kMinNormal, -kMinNormal, 1e-30f,
                          -1e-30f, 0.5f,    -0.5f,      1.5f,      -1.5f,
                          2.5f,    -2.5f,   127.5f,     128.5f,    254.5f,
                          255.f,   255.5f,  256.f,      -255.5f,   -256.f,
                          4194304.f, -4194304.f, 4194304.5f, -4194304.5f, 8388608.f,
                          -8388608.f, 8388607.5f, 12582912.f, -12582912.f, 16777216.f,
                          -16777216.f, 16777215.f, 1e30f,   -1e30f,    3.4e38f,
                          1.f,     -1.f,    0.49999997f, -0.49999997f, 0.50000006f};
  return v;
}

std::vector<float> random_floats(size_t n, uint32_t seed, float sigma = 3.f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, sigma);
  std::vector<float> x(n);
  for (float& f : x) f = d(rng);
  return x;
}

// Random data with a special value at ~1 in 16 positions.
std::vector<float> mixed_floats(size_t n, uint32_t seed) {
  std::vector<float> x = random_floats(n, seed);
  const std::vector<float> sp = special_values();
  std::mt19937 rng(seed + 1000);
  for (float& f : x)
    if (rng() % 16 == 0) f = sp[rng() % sp.size()];
  return x;
}

// Index of the first differing byte, or -1.
template <class T>
int64_t first_mismatch(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return 0;
  if (a.empty()) return -1;
  if (std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0) return -1;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  return -1;
}

// ---- Each ISA table, skipped where the CPU/OS lacks it (the same tests as
// the platform table's: avx2 for the avx2 levels, avx512_vnni above).

class VecQuantize : public test::VecTableTest {
 protected:
  // The table's quantize_u8 against the oracle on x[0..n), memcmp equal.
  void check_quantize(const float* x, int64_t n, float scale, uint8_t zp, const std::string& what) {
    std::vector<uint8_t> want(static_cast<size_t>(n) + 1, 0xa5), got(static_cast<size_t>(n) + 1, 0xa5);
    oracle::quantize_u8_with(x, n, scale, zp, want.data());
    vk_->quantize_u8(x, n, scale, zp, got.data());
    const int64_t i = first_mismatch(got, want);
    if (i == -1) return;
    const float xi = i < n ? x[i] : 0.f;
    FAIL() << what << ": n " << n << " scale " << scale << " zp " << int{zp} << " at " << i << ": x " << xi
           << " (bits 0x" << std::hex << bits(xi) << std::dec << ") got " << int{got[i]} << " want "
           << int{want[i]} << (i == n ? " (wrote past n)" : "");
  }

  // The table's minmax against the oracle's fold, bit for bit.
  void check_minmax(const float* x, int64_t n, float lo0, float hi0, const std::string& what) {
    float want_lo = lo0, want_hi = hi0, got_lo = lo0, got_hi = hi0;
    oracle::range(x, n, &want_lo, &want_hi);
    vk_->minmax(x, n, &got_lo, &got_hi);
    ASSERT_EQ(bits(got_lo), bits(want_lo)) << what << ": n " << n << " start " << lo0 << " lo " << got_lo
                                           << " want " << want_lo;
    ASSERT_EQ(bits(got_hi), bits(want_hi)) << what << ": n " << n << " start " << hi0 << " hi " << got_hi
                                           << " want " << want_hi;
  }
};

TEST_P(VecQuantize, MinMaxEqualsScalarFoldOverTailsAndOffsets) {
  const std::vector<float> x = mixed_floats(300, 1);
  const std::vector<float> plain = random_floats(300, 2);
  // Starts on both sides of 0 (DynamicQuantizeLinear's 0, 0 among them): exact.
  const float starts[][2] = {{0.f, 0.f}, {-0.f, -0.f}, {-1.f, 1.f}, {-100.f, 100.f}, {-kInf, kInf}};
  for (int64_t off = 0; off < 4; ++off)
    for (int64_t n = 0; n <= 70; ++n)
      for (const auto& s : starts) {
        check_minmax(x.data() + off, n, s[0], s[1], "mixed");
        check_minmax(plain.data() + off, n, s[0], s[1], "plain");
      }
  for (int64_t n : {100, 127, 128, 129, 255, 256, 257}) {
    check_minmax(x.data(), n, 0.f, 0.f, "mixed");
    check_minmax(plain.data(), n, 0.f, 0.f, "plain");
  }
  // A plain min/max (start +inf/-inf): exact where the data holds no zero.
  for (int64_t n = 0; n <= 70; ++n) check_minmax(plain.data() + 1, n, kInf, -kInf, "plain inf start");
}

TEST_P(VecQuantize, MinMaxExtremesAnywhereAndAllNaN) {
  // One extreme at each position of a run of small values: every lane,
  // accumulator and tail slot gets to hold the answer.
  for (int64_t n = 1; n <= 70; ++n)
    for (int64_t at = 0; at < n; ++at) {
      std::vector<float> x(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) x[i] = 0.25f * static_cast<float>(i % 7) - 0.75f;
      x[at] = -5.f - static_cast<float>(at);
      check_minmax(x.data(), n, 0.f, 0.f, "min at " + std::to_string(at));
      x[at] = 5.f + static_cast<float>(at);
      check_minmax(x.data(), n, 0.f, 0.f, "max at " + std::to_string(at));
      x[at] = -kInf;
      check_minmax(x.data(), n, 0.f, 0.f, "-inf at " + std::to_string(at));
    }
  // Empty or all NaN: the start comes back unchanged, whatever it is.
  const std::vector<float> nans(70, kNaN);
  for (int64_t n = 0; n <= 70; ++n) {
    float lo = 0.f, hi = 0.f;
    vk_->minmax(nans.data(), n, &lo, &hi);
    EXPECT_EQ(bits(lo), bits(0.f));
    EXPECT_EQ(bits(hi), bits(0.f));
    lo = kInf, hi = -kInf;
    vk_->minmax(nans.data(), n, &lo, &hi);
    EXPECT_EQ(lo, kInf);
    EXPECT_EQ(hi, -kInf);
    lo = -0.f, hi = -0.f;
    vk_->minmax(nans.data(), n, &lo, &hi);
    EXPECT_EQ(bits(lo), bits(-0.f));
    EXPECT_EQ(bits(hi), bits(-0.f));
  }
  // All -0 from 0, 0: the fold never moves (-0 is not below +0).
  const std::vector<float> negzero(70, -0.f);
  for (int64_t n = 0; n <= 70; ++n) check_minmax(negzero.data(), n, 0.f, 0.f, "-0");
}

TEST_P(VecQuantize, QuantizeEqualsScalarOverTailsAndOffsets) {
  for (uint32_t seed = 0; seed < 4; ++seed) {
    const std::vector<float> x = seed % 2 ? mixed_floats(400, seed) : random_floats(400, seed);
    QuantParams p;
    {
      float lo = 0.f, hi = 0.f;
      oracle::range(x.data(), 300, &lo, &hi);
      p = oracle::choose_u8_params(lo, hi);
    }
    for (int64_t off = 0; off < 4; ++off)
      for (int64_t n = 0; n <= 70; ++n) {
        check_quantize(x.data() + off, n, p.scale, p.zero_point, "seed " + std::to_string(seed));
        check_quantize(x.data() + off, n, 0.037f, 131, "seed " + std::to_string(seed));
      }
    for (int64_t n : {127, 128, 129, 255, 256, 257, 399})
      check_quantize(x.data(), n, p.scale, p.zero_point, "seed " + std::to_string(seed));
  }
}

TEST_P(VecQuantize, QuantizeSpecialValuesAndScales) {
  std::vector<float> x = special_values();
  std::mt19937 rng(7);
  // Every special value in every lane position: the list, then rotations.
  std::vector<float> all;
  for (int r = 0; r < 67; ++r) {
    all.insert(all.end(), x.begin(), x.end());
    std::rotate(x.begin(), x.begin() + 1, x.end());
  }
  const float scales[] = {1.f,    0.5f,       1.f / 255.f, 0.0123f, 3.f / 1024.f, 7.25f,
                          1e-38f, kDenorm,    1e30f,       kMax,    kInf,         0.f,
                          -0.f,   -1.f,       -0.3f,       kNaN,    -kInf,        2.f / 255.f};
  for (float s : scales)
    for (int zp : {0, 1, 2, 3, 127, 128, 129, 254, 255}) {
      check_quantize(all.data(), static_cast<int64_t>(all.size()), s, static_cast<uint8_t>(zp), "specials");
      for (int64_t n = 0; n <= 70; ++n)
        check_quantize(all.data() + n, n, s, static_cast<uint8_t>(zp), "specials tail");
    }
}

TEST_P(VecQuantize, HalfwayCasesRoundToEvenBeforeTheZeroPoint) {
  // x / scale == k + 0.5 exactly (scales of few mantissa bits), and the
  // floats on either side. An odd zero point tells rounding before adding it
  // (the spec) from rounding after.
  const float scales[] = {1.f, 0.25f, 3.f / 1024.f, 0x1p-20f, 6.f, 0x1p-140f, 0x1p100f};
  for (float s : scales) {
    std::vector<float> x;
    std::vector<int> k_of;
    for (int k = -300; k <= 300; ++k) {
      const float t = static_cast<float>(k) + 0.5f;
      const float v = t * s;
      ASSERT_EQ(v / s, t) << "scale " << s << " k " << k;  // really a tie
      x.push_back(v);
      x.push_back(std::nextafter(v, kInf));
      x.push_back(std::nextafter(v, -kInf));
      k_of.push_back(k);
    }
    for (int zp : {0, 1, 2, 127, 128, 129, 254, 255}) {
      const auto uzp = static_cast<uint8_t>(zp);
      for (int64_t n = 0; n <= 70; ++n) check_quantize(x.data() + 7, n, s, uzp, "ties tail");
      check_quantize(x.data(), static_cast<int64_t>(x.size()), s, uzp, "ties");
      // And the oracle itself, with integers: the tie k + 0.5 goes to the
      // even one of k, k + 1, then + zp, saturated.
      std::vector<uint8_t> q(x.size());
      vk_->quantize_u8(x.data(), static_cast<int64_t>(x.size()), s, uzp, q.data());
      for (size_t j = 0; j < k_of.size(); ++j) {
        const int k = k_of[j];
        const int r = (k % 2 == 0) ? k : k + 1;
        const int want = std::clamp(r + zp, 0, 255);
        ASSERT_EQ(int{q[3 * j]}, want) << "scale " << s << " zp " << zp << " tie " << k << ".5";
      }
    }
  }
}

TEST_P(VecQuantize, QuantizeSweepOverFloatBitPatterns) {
  // ~1M bit patterns spread over all 2^32 (both signs, subnormals, NaN
  // payloads, infinities), under a few representative parameters.
  std::vector<float> x;
  for (uint64_t u = 0; u <= 0xffffffffu; u += 4093) x.push_back(from_bits(static_cast<uint32_t>(u)));
  x.push_back(from_bits(0x7f800000u));
  x.push_back(from_bits(0xff800000u));
  const struct {
    float scale;
    uint8_t zp;
  } params[] = {{1.f, 0}, {1.f, 255}, {0.0123f, 131}, {1e-30f, 128}, {1e30f, 1}, {kDenorm, 7}};
  for (const auto& p : params)
    check_quantize(x.data(), static_cast<int64_t>(x.size()), p.scale, p.zp, "sweep");
  float lo = 0.f, hi = 0.f, want_lo = 0.f, want_hi = 0.f;
  vk_->minmax(x.data(), static_cast<int64_t>(x.size()), &lo, &hi);
  oracle::range(x.data(), static_cast<int64_t>(x.size()), &want_lo, &want_hi);
  EXPECT_EQ(bits(lo), bits(want_lo));
  EXPECT_EQ(bits(hi), bits(want_hi));
}

INSTANTIATE_TEST_SUITE_P(Isa, VecQuantize, ::testing::Values("scalar", "avx2", "avx512_vnni"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// ---- The public entry points (the process's table, chunked over threads).

class ThreadCount : public ::testing::Test {
 protected:
  void TearDown() override { set_num_threads(1); }
};

void check_public(const std::vector<float>& x, const std::string& what) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> want(x.size()), got(x.size());
  const QuantParams pw = oracle::quantize_u8(x.data(), n, want.data());
  for (int threads : {1, 2, 3, 5}) {
    set_num_threads(threads);
    std::fill(got.begin(), got.end(), uint8_t{0xa5});
    const QuantParams pg = kernels::quantize_u8(x.data(), n, got.data());
    ASSERT_EQ(bits(pg.scale), bits(pw.scale)) << what << " threads " << threads;
    ASSERT_EQ(pg.zero_point, pw.zero_point) << what << " threads " << threads;
    ASSERT_EQ(first_mismatch(got, want), -1) << what << " threads " << threads;
    std::fill(got.begin(), got.end(), uint8_t{0xa5});
    kernels::quantize_u8_with(x.data(), n, pw, got.data());
    ASSERT_EQ(first_mismatch(got, want), -1) << what << " (with) threads " << threads;
  }
}

TEST_F(ThreadCount, QuantizeU8EqualsScalarForAnyThreadCount) {
  // Small, around the chunk grain (2^15) and the block cap (64 blocks), and
  // one Whisper-sized activation (1500 x 2048).
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{69}, int64_t{32767}, int64_t{65535}, int64_t{65536},
                    int64_t{65537}, int64_t{100003}, int64_t{64} * 32768 + 5, int64_t{1500} * 2048}) {
    const std::vector<float> x = mixed_floats(static_cast<size_t>(n), static_cast<uint32_t>(n));
    check_public(x, "mixed n " + std::to_string(n));
  }
  // The extremes in the last element, the first, alone among NaNs; one sign
  // only; all NaN; all zero (scale 1, zero point 0).
  const size_t big = 200001;
  std::vector<float> x = random_floats(big, 9);
  x.back() = -50.f;
  check_public(x, "min last");
  x.front() = 60.f;
  check_public(x, "max first");
  for (float& f : x) f = std::abs(f) + 1.f;
  check_public(x, "all positive");
  for (float& f : x) f = -f;
  check_public(x, "all negative");
  std::fill(x.begin(), x.end(), kNaN);
  x[big / 2] = 3.f;
  check_public(x, "one number among NaNs");
  std::fill(x.begin(), x.end(), kNaN);
  check_public(x, "all NaN");
  std::fill(x.begin(), x.end(), -0.f);
  check_public(x, "all -0");
  x[77] = kInf;
  x[big - 3] = -kInf;
  check_public(x, "infinities");
  x[5] = kMax;
  x[6] = -kMax;  // hi - lo overflows: scale inf
  check_public(x, "float range");
}

// Per channel (a depthwise QConv's X, x_per_channel): channel c's params
// and bytes are the oracle's quantize_u8 over channel c's values gathered
// from every image, bit for bit, for any thread count; among the channels
// a narrow one next to a wide one, one all zero, one all NaN, one with
// infinities.
TEST_F(ThreadCount, QuantizeU8PerChannelEqualsScalarPerChannel) {
  struct Dims {
    int64_t batch, channels, plane;
  };
  for (const Dims d : {Dims{1, 1, 1}, Dims{1, 5, 7}, Dims{2, 16, 960}, Dims{1, 40, 3840}, Dims{3, 7, 33}}) {
    const std::string what = "batch " + std::to_string(d.batch) + " channels " + std::to_string(d.channels) +
                             " plane " + std::to_string(d.plane);
    std::vector<float> x = mixed_floats(static_cast<size_t>(d.batch * d.channels * d.plane), 77);
    const auto at = [&](int64_t b, int64_t c, int64_t i) -> float& {
      return x[static_cast<size_t>((b * d.channels + c) * d.plane + i)];
    };
    for (int64_t b = 0; b < d.batch; ++b)
      for (int64_t i = 0; i < d.plane; ++i) {
        if (d.channels > 1) at(b, 1, i) *= 1e-3f;  // narrow next to channel 0
        if (d.channels > 2) at(b, 2, i) = 0.f;
        if (d.channels > 3) at(b, 3, i) = kNaN;
        if (d.channels > 4 && i == 0) at(b, 4, i) = b % 2 ? kInf : -kInf;
      }
    std::vector<uint8_t> want(x.size());
    std::vector<QuantParams> want_p(static_cast<size_t>(d.channels));
    for (int64_t c = 0; c < d.channels; ++c) {
      std::vector<float> ch;
      for (int64_t b = 0; b < d.batch; ++b)
        for (int64_t i = 0; i < d.plane; ++i) ch.push_back(at(b, c, i));
      std::vector<uint8_t> q(ch.size());
      want_p[static_cast<size_t>(c)] = oracle::quantize_u8(ch.data(), static_cast<int64_t>(ch.size()), q.data());
      for (int64_t b = 0; b < d.batch; ++b)
        for (int64_t i = 0; i < d.plane; ++i)
          want[static_cast<size_t>((b * d.channels + c) * d.plane + i)] = q[static_cast<size_t>(b * d.plane + i)];
    }
    for (int threads : {1, 2, 3}) {
      set_num_threads(threads);
      std::vector<uint8_t> got(x.size(), 0xa5);
      std::vector<QuantParams> got_p(static_cast<size_t>(d.channels));
      kernels::quantize_u8_per_channel(x.data(), d.batch, d.channels, d.plane, got.data(), got_p.data());
      for (int64_t c = 0; c < d.channels; ++c) {
        ASSERT_EQ(bits(got_p[static_cast<size_t>(c)].scale), bits(want_p[static_cast<size_t>(c)].scale))
            << what << " channel " << c << " threads " << threads;
        ASSERT_EQ(got_p[static_cast<size_t>(c)].zero_point, want_p[static_cast<size_t>(c)].zero_point)
            << what << " channel " << c << " threads " << threads;
      }
      ASSERT_EQ(first_mismatch(got, want), -1) << what << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace sarai
