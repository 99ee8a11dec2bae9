// The FP32 vector kernels (kernels/cpu/vec_kernels.h) at every ISA level this
// CPU has (scalar = SSE2, avx2, avx512_vnni; a table the CPU lacks is skipped), against
// scalar references written here from the definitions, in double where the
// kernel approximates (std::exp, std::erf) and in float where it must be
// exact (clip, hard sigmoid/swish, add/sub/mul/div). Lengths 0..70 cover
// every tail of 4, 8 and 16 lanes, offsets 0..3 the unaligned loads; a guard
// after each row catches a write past n; special values (NaN, +-inf, -0,
// subnormals, huge) are mixed in where the op defines them.
//
// The tolerances are ~10x the worst error measured on every table (noted
// beside each), so a kernel that loses accuracy fails while the rounding
// differences between scalar (SSE2, no FMA) and avx2/avx512_vnni (FMA) pass.
// (quantize_u8 and minmax: quantize_activations_test.cc, bit for bit.)
// transpose_x32 and _x16 are checked bit for bit, inside guard pages too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using kernels::VecBinaryOp;
using kernels::VecKernels;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kGuard = 12345.678f;
constexpr int64_t kMaxN = 70;

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::string sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  return buf;
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits(a) == bits(b); }

std::vector<float> uniform(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = d(rng);
  return v;
}

// Uniform values with one in 8 replaced by a special value.
std::vector<float> with_specials(size_t n, uint32_t seed, float lo, float hi) {
  std::vector<float> v = uniform(n, seed, lo, hi);
  const float sp[] = {0.f, -0.f, kInf, -kInf, kNaN, 1e-40f, -1e-40f, 1e30f, -1e30f, 88.f, -104.f, 4.f};
  std::mt19937 rng(seed + 7);
  for (float& f : v)
    if (rng() % 8 == 0) f = sp[rng() % (sizeof sp / sizeof sp[0])];
  return v;
}

// Worst error seen, in units of the check's tolerance scale.
struct Worst {
  double abs = 0, rel = 0;
  void see(double got, double want) {
    const double e = std::fabs(got - want);
    abs = std::max(abs, e);
    // Relative error only for normal floats (below, float cannot hold it).
    if (std::fabs(want) >= std::numeric_limits<float>::min()) rel = std::max(rel, e / std::fabs(want));
  }
};

class VecKernelsIsa : public test::VecTableTest {
 protected:
  // A unary map against `ref` (double), |got - want| <= abs_tol + rel_tol |want|,
  // over every length and offset; NaN where `ref` gives NaN; in place equal
  // to out of place; nothing written past n.
  template <class Fn, class Ref>
  void check_map(const char* what, Fn fn, Ref ref, const std::vector<float>& x, double abs_tol,
                 double rel_tol) {
    Worst worst;
    for (int64_t off = 0; off < 4; ++off) {
      for (int64_t n = 0; n <= kMaxN; ++n) {
        const float* in = x.data() + off + n * 3;
        std::vector<float> y(static_cast<size_t>(n) + 1, kGuard);
        fn(in, y.data(), n);
        ASSERT_EQ(bits(y[n]), bits(kGuard)) << what << ": wrote past n = " << n;
        std::vector<float> inplace(in, in + n);
        fn(inplace.data(), inplace.data(), n);
        for (int64_t i = 0; i < n; ++i) {
          const double want = ref(static_cast<double>(in[i]));
          ASSERT_TRUE(same_float(inplace[i], y[i])) << what << ": in place differs at x = " << in[i];
          if (std::isnan(want)) {
            ASSERT_TRUE(std::isnan(y[i])) << what << "(" << in[i] << ") = " << y[i] << ", want NaN";
            continue;
          }
          if (std::isinf(want)) {
            ASSERT_EQ(y[i], want) << what << "(" << in[i] << ")";
            continue;
          }
          worst.see(y[i], want);
          ASSERT_LE(std::fabs(y[i] - want), abs_tol + rel_tol * std::fabs(want))
              << what << "(" << in[i] << ") = " << y[i] << ", want " << want << " (n " << n << ")";
        }
      }
    }
    RecordProperty(std::string(what) + "_max_abs_err", sci(worst.abs));
    RecordProperty(std::string(what) + "_max_rel_err", sci(worst.rel));
  }
};

double ref_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double ref_gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

// erf: measured worst 4.9e-8 absolute, 7.3e-8 relative near 0 (sse2 and
// avx2 on an AMD EPYC Zen 3, 2026-12-04).
TEST_P(VecKernelsIsa, ErfMatchesStdErf) {
  const std::vector<float> x = with_specials(4 * kMaxN + 8, 1, -5.f, 5.f);
  check_map("erf", vk_->erf, [](double v) { return std::erf(v); }, x, 5e-7, 0);
  const std::vector<float> small = uniform(4 * kMaxN + 8, 2, -1e-3f, 1e-3f);  // relative accuracy near 0
  check_map("erf_small", vk_->erf, [](double v) { return std::erf(v); }, small, 0, 7e-7);
}

// GELU (its own piecewise erf at avx2 and up, vec_body.h kGeluErf; erf at
// level scalar): measured worst 4.1e-7 absolute (AMD EPYC Zen 4, all
// three levels, 2026-12-06); large negative x gives (-)0.
TEST_P(VecKernelsIsa, GeluMatchesDefinition) {
  std::vector<float> x = uniform(4 * kMaxN + 8, 3, -6.f, 6.f);
  for (size_t i = 0; i < x.size(); i += 9) x[i] = (i % 2) ? 1e30f : -1e30f;
  for (size_t i = 4; i < x.size(); i += 13) x[i] = kNaN;
  x[5] = kInf;
  check_map("gelu", vk_->gelu, ref_gelu, x, 3e-6, 3e-6);
}

// Sigmoid: measured worst 1.5e-7 relative; exp never overflows (+-inf: 1, 0).
TEST_P(VecKernelsIsa, SigmoidMatchesDefinition) {
  const std::vector<float> x = with_specials(4 * kMaxN + 8, 4, -30.f, 30.f);
  check_map("sigmoid", vk_->sigmoid, ref_sigmoid, x, 1e-30, 1.5e-6);
}

// Exact: the kernels compute alpha x + beta unfused, then compare, like this
// float code.
TEST_P(VecKernelsIsa, HardSigmoidHardSwishAndClipAreExact) {
  const std::vector<float> x = with_specials(4 * kMaxN + 8, 5, -8.f, 8.f);
  const auto hs = [](float v, float alpha, float beta) {
    float t = v * alpha;
    t = t + beta;
    t = t < 0.f ? 0.f : t;
    return t > 1.f ? 1.f : t;
  };
  for (int64_t off = 0; off < 4; ++off) {
    for (int64_t n = 0; n <= kMaxN; ++n) {
      const float* in = x.data() + off + 3 * n;
      std::vector<float> a(n + 1, kGuard), b(n + 1, kGuard), c(n + 1, kGuard), d(n + 1, kGuard);
      vk_->hard_sigmoid(in, a.data(), n, 0.2f, 0.5f);
      vk_->hard_swish(in, b.data(), n);
      vk_->clip(in, c.data(), n, -1.5f, 2.25f);
      vk_->clip(in, d.data(), n, 3.f, -3.f);  // lo > hi gives hi
      ASSERT_TRUE(bits(a[n]) == bits(kGuard) && bits(b[n]) == bits(kGuard) && bits(c[n]) == bits(kGuard) &&
                  bits(d[n]) == bits(kGuard))
          << "wrote past n = " << n;
      for (int64_t i = 0; i < n; ++i) {
        const float v = in[i];
        ASSERT_TRUE(same_float(a[i], hs(v, 0.2f, 0.5f))) << "hard_sigmoid(" << v << ") = " << a[i];
        ASSERT_TRUE(same_float(b[i], v * hs(v, 1.f / 6.f, 0.5f))) << "hard_swish(" << v << ") = " << b[i];
        const float lo = v < -1.5f ? -1.5f : v;
        ASSERT_TRUE(same_float(c[i], lo > 2.25f ? 2.25f : lo)) << "clip(" << v << ") = " << c[i];
        const float lo2 = v < 3.f ? 3.f : v;
        ASSERT_TRUE(same_float(d[i], lo2 > -3.f ? -3.f : lo2)) << "clip lo > hi (" << v << ") = " << d[i];
      }
    }
  }
}

// IEEE add/sub/mul/div round once, in every ISA: bit for bit with float,
// for both operands arrays, either one a scalar, or both scalars.
TEST_P(VecKernelsIsa, BinaryOpsAreExactForEveryBroadcast) {
  const std::vector<float> a = with_specials(4 * kMaxN + 8, 6, -3.f, 3.f);
  const std::vector<float> b = with_specials(4 * kMaxN + 8, 7, -3.f, 3.f);
  const VecBinaryOp ops[] = {VecBinaryOp::kAdd, VecBinaryOp::kSub, VecBinaryOp::kMul, VecBinaryOp::kDiv};
  const auto apply = [](VecBinaryOp op, float x, float y) {
    switch (op) {
      case VecBinaryOp::kAdd: return x + y;
      case VecBinaryOp::kSub: return x - y;
      case VecBinaryOp::kMul: return x * y;
      case VecBinaryOp::kDiv: return x / y;
    }
    return 0.f;
  };
  for (VecBinaryOp op : ops)
    for (int64_t sa = 0; sa <= 1; ++sa)
      for (int64_t sb = 0; sb <= 1; ++sb)
        for (int64_t off = 0; off < 4; ++off)
          for (int64_t n = 0; n <= kMaxN; ++n) {
            const float* pa = a.data() + off + 3 * n;
            const float* pb = b.data() + 3 * n + (3 - off);
            std::vector<float> r(n + 1, kGuard);
            vk_->binary(op, pa, sa, pb, sb, r.data(), n);
            ASSERT_EQ(bits(r[n]), bits(kGuard)) << "wrote past n = " << n;
            for (int64_t i = 0; i < n; ++i) {
              const float want = apply(op, pa[i * sa], pb[i * sb]);
              ASSERT_TRUE(same_float(r[i], want))
                  << "op " << static_cast<int>(op) << " sa " << sa << " sb " << sb << " n " << n << " i " << i
                  << ": " << pa[i * sa] << ", " << pb[i * sb] << " -> " << r[i] << ", want " << want;
            }
          }
}

// Softmax rows against double: measured worst 2.2e-6 relative (rows of up
// to 1000, inputs up to +-1000 so most terms underflow to 0); -inf inputs
// give exactly 0; in place equals out of place.
TEST_P(VecKernelsIsa, SoftmaxMatchesDouble) {
  Worst worst;
  for (float scale : {1.f, 30.f, 1000.f}) {
    const std::vector<float> x = uniform(1100, 8, -scale, scale);
    for (int64_t n : {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 70, 255, 1000}) {
      for (int64_t off = 0; off < 4; ++off) {
        std::vector<float> in(x.begin() + off, x.begin() + off + n);
        if (n > 2) in[1] = -kInf;
        std::vector<float> y(n + 1, kGuard);
        vk_->softmax_row(in.data(), y.data(), n);
        ASSERT_EQ(bits(y[n]), bits(kGuard)) << "wrote past n = " << n;
        double mx = -HUGE_VAL, sum = 0;
        for (float v : in) mx = std::max(mx, static_cast<double>(v));
        for (float v : in) sum += std::exp(v - mx);
        for (int64_t i = 0; i < n; ++i) {
          const double want = std::exp(in[i] - mx) / sum;
          if (in[i] == -kInf) {
            ASSERT_EQ(bits(y[i]), bits(0.f)) << "exp(-inf) must be 0";
            continue;
          }
          worst.see(y[i], want);
          ASSERT_LE(std::fabs(y[i] - want), 1e-30 + 2e-5 * want)
              << "n " << n << " scale " << scale << " i " << i << ": " << y[i] << ", want " << want;
        }
        std::vector<float> inplace = in;
        vk_->softmax_row(inplace.data(), inplace.data(), n);
        for (int64_t i = 0; i < n; ++i) ASSERT_TRUE(same_float(inplace[i], y[i])) << "in place, n " << n;
      }
    }
  }
  RecordProperty("softmax_max_rel_err", sci(worst.rel));
}

// The INT8 attention's fused probabilities (softmax, times w, to u8) from
// scores u = fma(a, x, ln w) and their maximum, as attention_scores makes
// them, against double: every byte within half a step (plus the float
// rounding of the exponent) of 255 p / pmax for p = softmax(a x) w, the
// returned scale within 1e-4 of pmax / (255 sum); the largest p gives
// exactly 255; nothing written past n; the lanes read past n (up to the
// padding) ignored, NaN included. Negative and zero multipliers, tiny
// weights, non-finite scores or maximum and an overflowing sum (a NaN scale
// back).
TEST_P(VecKernelsIsa, SoftmaxU8RowMatchesDouble) {
  Worst worst;
  double worst_scale = 0;
  const std::vector<float> wv = uniform(1600, 12, 0.01f, 2.f);
  const auto padded = [](int64_t n) { return int8::round_up(n, kernels::kSoftmaxU8Pad); };
  // The scores, their maximum and 1 / w, padded with `pad` past n.
  struct Row {
    std::vector<float> u, invw;
    float m = -kInf;
  };
  const auto make_row = [&](const float* x, float a, const float* w, int64_t n, float pad) {
    Row r{std::vector<float>(padded(n), pad), std::vector<float>(padded(n), pad)};
    for (int64_t j = 0; j < n; ++j) {
      r.u[j] = std::fma(a, x[j], std::log(w[j]));
      r.invw[j] = 1.f / w[j];
      r.m = std::max(r.m, r.u[j]);
    }
    return r;
  };
  for (float scale : {1.f, 30.f, 1000.f}) {
    const std::vector<float> x = uniform(1600, 11, -scale, scale);
    for (float a : {1.f, 0.125f, -0.3f, 0.f}) {
      for (int64_t n : {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 70, 127, 128, 129, 255, 1000, 1500}) {
        for (int64_t off = 0; off < 3; ++off) {
          std::vector<float> w(wv.begin() + off, wv.begin() + off + n);
          if (n > 3) w[2] = 1e-6f;
          const Row row = make_row(x.data() + off, a, w.data(), n, 0.f);
          std::vector<uint8_t> out(n + 1, 0xA5);
          const float ps = vk_->softmax_u8_row(row.u.data(), n, row.m, row.invw.data(), out.data());
          ASSERT_EQ(out[n], 0xA5) << "out written past n = " << n;
          double mx = -HUGE_VAL, sum = 0, pmax = 0;
          for (int64_t j = 0; j < n; ++j) mx = std::max(mx, static_cast<double>(a) * x[off + j]);
          std::vector<double> p(n);
          for (int64_t j = 0; j < n; ++j) {
            const double e = std::exp(static_cast<double>(a) * x[off + j] - mx);
            sum += e;
            p[j] = e * w[j];
            pmax = std::max(pmax, p[j]);
          }
          const std::string where = "n " + std::to_string(n) + " a " + std::to_string(a) + " x scale " +
                                    std::to_string(scale) + " off " + std::to_string(off);
          // The exponent a x + ln w rounds by up to ~6e-8 of its size
          // (~1000 here, minus the maximum), i.e. up to ~1e-4 relative.
          const double want_ps = pmax / (255 * sum);
          ASSERT_NEAR(ps, want_ps, 1e-4 * want_ps) << where;
          worst_scale = std::max(worst_scale, std::fabs(ps - want_ps) / want_ps);
          int at_max = 0;
          for (int64_t j = 0; j < n; ++j) {
            const double want = 255 * p[j] / pmax;
            worst.see(out[j], want);
            ASSERT_LE(std::fabs(out[j] - want), 0.5 + 0.03) << where << " j " << j;
            at_max += out[j] == 255;
          }
          ASSERT_GE(at_max, 1) << where;
          // NaN past n changes nothing.
          const Row nan_row = make_row(x.data() + off, a, w.data(), n, kNaN);
          std::vector<uint8_t> out2(n);
          const float ps2 = vk_->softmax_u8_row(nan_row.u.data(), n, nan_row.m, nan_row.invw.data(), out2.data());
          ASSERT_EQ(bits(ps2), bits(ps)) << "padding read, " << where;
          ASSERT_TRUE(std::equal(out2.begin(), out2.end(), out.begin())) << "padding read, " << where;
        }
      }
    }
  }
  RecordProperty("softmax_u8_max_abs_err_steps", sci(worst.abs));
  RecordProperty("softmax_u8_max_scale_rel_err", sci(worst_scale));
  const std::vector<float> x = uniform(40, 13, -5.f, 5.f), ones(40, 1.f);
  std::vector<uint8_t> out(40, 7);
  const auto run = [&](const std::vector<float>& xs, const std::vector<float>& w, float m_override = 0.f) {
    Row r = make_row(xs.data(), 1.f, w.data(), 40, 0.f);
    if (m_override != 0.f) r.m = m_override;
    return vk_->softmax_u8_row(r.u.data(), 40, r.m, r.invw.data(), out.data());
  };
  // Non-finite scores or maximum: the scale says so.
  for (float bad : {kInf, kNaN}) {
    std::vector<float> y = x;
    y[17] = bad;
    EXPECT_FALSE(std::isfinite(run(y, ones))) << bad;
  }
  EXPECT_FALSE(std::isfinite(run(x, ones, kNaN)));
  // A score of -inf is a probability of 0.
  std::vector<float> y = x;
  y[17] = -kInf;
  EXPECT_TRUE(std::isfinite(run(y, ones)));
  EXPECT_EQ(out[17], 0);
  // Weights so small that Σ E / w overflows: NaN, not a scale of 0.
  EXPECT_FALSE(std::isfinite(run(std::vector<float>(40, 1.f), std::vector<float>(40, 1e-38f))));
}

// attention_scores against its formula, bit for bit (FMA at levels avx2 and
// up, a multiply and an add at level scalar): rows 1..5 with strides wider
// than n, every n up to 70 (tails inside and across vectors), accumulators
// at the int32 extremes (the subtraction wraps, as in the GEMM epilogue),
// running maxima (kScoresMaxLanes partial ones per row) kept from earlier
// blocks; nothing written past n.
TEST_P(VecKernelsIsa, AttentionScoresMatchFormula) {
  const bool fused = std::string(vk_->isa) != "scalar";
  std::mt19937 rng(21);
  std::uniform_int_distribution<int32_t> any_int(std::numeric_limits<int32_t>::min(),
                                                  std::numeric_limits<int32_t>::max());
  std::uniform_int_distribution<int32_t> small_int(-300000, 300000);
  const std::vector<float> ksv = uniform(80, 22, 0.f, 0.05f), lnv = uniform(80, 23, -6.f, 1.f);
  for (int64_t rows = 1; rows <= 5; ++rows) {
    for (int64_t n = 1; n <= kMaxN; ++n) {
      const int64_t ldacc = n + 3, ldu = n + 5;
      std::vector<int32_t> acc(rows * ldacc), comp(n);
      for (auto& v : acc) v = rng() % 16 == 0 ? any_int(rng) : small_int(rng);
      for (auto& v : comp) v = rng() % 16 == 0 ? any_int(rng) : small_int(rng);
      constexpr int64_t kL = kernels::kScoresMaxLanes;
      std::vector<float> a(rows), rowmax(rows * kL, -kInf), u(rows * ldu, kGuard);
      for (int64_t i = 0; i < rows; ++i) {
        a[i] = (i % 2 ? -1.f : 1.f) * 0.01f * static_cast<float>(i + 1);
        if (i > 0) rowmax[i * kL + i % kL] = 1e3f * static_cast<float>(i - 2);  // a kept maximum, or not
      }
      const std::vector<float> start = rowmax;
      vk_->attention_scores(acc.data(), ldacc, rows, n, comp.data(), ksv.data(), a.data(), lnv.data(), u.data(),
                            ldu, rowmax.data());
      for (int64_t i = 0; i < rows; ++i) {
        float m = *std::max_element(start.begin() + i * kL, start.begin() + (i + 1) * kL);
        for (int64_t j = 0; j < n; ++j) {
          const float x = static_cast<float>(static_cast<int32_t>(static_cast<uint32_t>(acc[i * ldacc + j]) -
                                                                   static_cast<uint32_t>(comp[j]))) * ksv[j];
          const float want = fused ? std::fma(a[i], x, lnv[j]) : a[i] * x + lnv[j];
          ASSERT_EQ(bits(u[i * ldu + j]), bits(want)) << "rows " << rows << " n " << n << " i " << i << " j " << j;
          m = std::max(m, want);
        }
        ASSERT_EQ(bits(u[i * ldu + n]), bits(kGuard)) << "written past n = " << n;
        const float got = *std::max_element(rowmax.begin() + i * kL, rowmax.begin() + (i + 1) * kL);
        ASSERT_EQ(bits(got), bits(m)) << "rows " << rows << " n " << n << " i " << i;
      }
    }
  }
}

// col_abs_max against a plain loop: every n (tails), rows 0..5, a row
// stride wider than n, starting values kept, NaN ignored, inf counted.
TEST_P(VecKernelsIsa, ColAbsMaxMatchesLoop) {
  const std::vector<float> x = uniform(6 * 80, 14, -50.f, 50.f);
  for (int64_t n = 0; n <= kMaxN; ++n)
    for (int64_t rows = 0; rows <= 5; ++rows) {
      std::vector<float> m(n + 1, kGuard), want(n + 1, kGuard);
      for (int64_t j = 0; j < n; ++j) m[j] = want[j] = j % 3 == 0 ? 30.f : 0.f;
      vk_->col_abs_max(x.data(), 80, rows, n, m.data());
      for (int64_t j = 0; j < n; ++j)
        for (int64_t r = 0; r < rows; ++r) want[j] = std::max(want[j], std::fabs(x[r * 80 + j]));
      for (int64_t j = 0; j <= n; ++j) ASSERT_TRUE(same_float(m[j], want[j])) << "n " << n << " rows " << rows << " j " << j;
    }
  std::vector<float> y = uniform(2 * 20, 15, -1.f, 1.f);
  y[3] = kNaN, y[20 + 5] = -kInf;
  std::vector<float> m(20, 0.f);
  vk_->col_abs_max(y.data(), 20, 2, 20, m.data());
  EXPECT_TRUE(same_float(m[3], std::fabs(y[20 + 3]))) << "NaN is ignored";
  EXPECT_EQ(m[5], kInf);
}

// pack_s8_k4 against the N16K4 formula and round_half_even(x / div): every
// n up to 70 (tails inside and across 16-column panels), 1..4 rows, column
// and row divisors, ties (x / div = k + 0.5), values at and past +-127,
// zero divisors' stand-in 1; bytes past n and past the group untouched;
// colsum accumulated; inf and NaN reported.
TEST_P(VecKernelsIsa, PackS8K4MatchesFormula) {
  constexpr int64_t kLd = 75;
  std::vector<float> x = uniform(4 * kLd, 16, -3.f, 3.f);
  for (int64_t i = 0; i < 4 * kLd; i += 7) x[i] = static_cast<float>(i % 9) - 4.5f;  // ties
  x[1] = 127.4f, x[2] = -127.4f, x[kLd + 3] = 400.f, x[2 * kLd + 4] = -400.f;
  const std::vector<float> cdiv = uniform(kLd, 17, 0.01f, 1.f), rdiv = {1.f, 0.02f, 0.5f, 1.f};
  const auto q_of = [](float v, float dv) {
    return static_cast<int>(std::min(127.f, std::max(-127.f, std::nearbyint(v / dv))));
  };
  for (int per_col = 0; per_col < 2; ++per_col)
    for (int64_t rows = 1; rows <= 4; ++rows)
      for (int64_t n = 1; n <= kMaxN; ++n) {
        const int64_t panels = (n + 15) / 16, pstride = 64 * 3;  // as if K had 3 groups
        std::vector<int8_t> dst(panels * pstride + 64, 0x5A);
        std::vector<int32_t> colsum(n + 1, 7);
        const bool ok = vk_->pack_s8_k4(x.data(), kLd, rows, n, per_col ? cdiv.data() : nullptr, rdiv.data(),
                                        dst.data(), pstride, colsum.data());
        ASSERT_TRUE(ok);
        const std::string where = "n " + std::to_string(n) + " rows " + std::to_string(rows) +
                                  (per_col ? " column divisors" : " row divisors");
        for (int64_t p = 0; p < panels; ++p)
          for (int64_t b = 0; b < 64; ++b) {
            const int64_t j = p * 16 + b / 4, t = b % 4;
            const int8_t got = dst[p * pstride + b];
            if (j >= n) {
              ASSERT_EQ(got, 0x5A) << where << ": wrote column " << j;
              continue;
            }
            const int want = t < rows ? q_of(x[t * kLd + j], per_col ? cdiv[j] : rdiv[t]) : 0;
            ASSERT_EQ(got, want) << where << " j " << j << " t " << t;
          }
        for (int64_t p = 0; p < panels; ++p)
          for (int64_t b = 64; b < pstride && p * pstride + b < static_cast<int64_t>(dst.size()); ++b)
            ASSERT_EQ(dst[p * pstride + b], 0x5A) << where << ": wrote past the group";
        for (int64_t j = 0; j < n; ++j) {
          int want = 7;
          for (int64_t t = 0; t < rows; ++t) want += q_of(x[t * kLd + j], per_col ? cdiv[j] : rdiv[t]);
          ASSERT_EQ(colsum[j], want) << where << " j " << j;
        }
        ASSERT_EQ(colsum[n], 7) << where;
      }
  for (float bad : {kInf, -kInf, kNaN}) {
    std::vector<float> y = x;
    y[2 * kLd + 33] = bad;
    std::vector<int8_t> dst(5 * 64);
    EXPECT_FALSE(vk_->pack_s8_k4(y.data(), kLd, 3, 70, nullptr, rdiv.data(), dst.data(), 64, nullptr)) << bad;
    EXPECT_TRUE(vk_->pack_s8_k4(y.data(), kLd, 2, 70, nullptr, rdiv.data(), dst.data(), 64, nullptr))
        << "row 2 is not in the group";
  }
}

// LayerNorm rows against double, including a large common offset (the
// two-pass correction keeps it accurate; a naive float variance would be
// off by whole units at -3e4): measured worst 1.9e-6 absolute on outputs
// of magnitude ~4; mean and 1/std returned too.
TEST_P(VecKernelsIsa, LayerNormMatchesDouble) {
  Worst worst_y, worst_stats;
  const std::vector<float> scale = uniform(1100, 9, 0.5f, 1.5f), bias = uniform(1100, 10, -1.f, 1.f);
  for (float offset : {0.f, 1000.f, -3e4f}) {
    const std::vector<float> noise = uniform(1100, 11, -2.f, 2.f);
    for (int64_t n : {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 70, 255, 1000}) {
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) x[i] = offset + noise[i];
      std::vector<float> y(n + 1, kGuard);
      float mean = 0, inv_std = 0;
      const float eps = 1e-5f;
      vk_->layernorm_row(x.data(), y.data(), scale.data(), bias.data(), n, eps, &mean, &inv_std);
      ASSERT_EQ(bits(y[n]), bits(kGuard)) << "wrote past n = " << n;
      double m = 0, v = 0;
      for (float f : x) m += f;
      m /= n;
      for (float f : x) v += (f - m) * (f - m);
      v /= n;
      const double is = 1.0 / std::sqrt(v + eps);
      worst_stats.see(mean, m);
      worst_stats.see(inv_std, is);
      ASSERT_NEAR(mean, m, 1e-6 * (1 + std::fabs(m))) << "n " << n << " offset " << offset;
      ASSERT_NEAR(inv_std, is, 2e-5 * is) << "n " << n << " offset " << offset;
      for (int64_t i = 0; i < n; ++i) {
        const double want = (x[i] - m) * is * scale[i] + bias[i];
        worst_y.see(y[i], want);
        ASSERT_NEAR(y[i], want, 2e-5)
            << "n " << n << " offset " << offset << " i " << i;
      }
    }
  }
  RecordProperty("layernorm_max_abs_err", sci(worst_y.abs));
}

// transpose_x32 / transpose_x16 copy bits: dst[i * ldd + k] = src[k * lds + i]
// for i < m, k < n, every other word of dst untouched. m, n = 0..37 cross
// every tail of the 8x8 blocks (and of 16x16 ones, were a level to use
// them), with padded odd strides, a negative source stride, and random
// words (NaN payloads and subnormals among them, which a float copy must
// keep).
template <class W>
void check_transpose_exact(void (*fn)(const W*, int64_t, W*, int64_t, int64_t, int64_t), const char* what) {
  const W kDstGuard = static_cast<W>(0xdeadbeefu);
  std::mt19937 rng(41);
  for (int64_t m = 0; m <= 37; ++m) {
    for (int64_t n = 0; n <= 37; ++n) {
      for (const bool reversed : {false, true}) {
        const int64_t lds = m + 3, ldd = n + 5;
        std::vector<W> src(static_cast<size_t>((n + 1) * lds)), dst(static_cast<size_t>((m + 1) * ldd), kDstGuard);
        for (W& w : src) w = static_cast<W>(rng());
        // reversed: source row k at src0 - k * lds, the buffer's rows backwards.
        const W* src0 = reversed ? src.data() + n * lds : src.data();
        const int64_t step = reversed ? -lds : lds;
        fn(src0, step, dst.data(), ldd, m, n);
        for (int64_t i = 0; i <= m; ++i) {
          for (int64_t k = 0; k < ldd; ++k) {
            const W want = i < m && k < n ? src0[k * step + i] : kDstGuard;
            ASSERT_EQ(dst[static_cast<size_t>(i * ldd + k)], want)
                << what << " m " << m << " n " << n << (reversed ? " lds < 0" : "") << " at dst[" << i << "][" << k
                << "]";
          }
        }
      }
    }
  }
}

// The same with every buffer ending (or starting) at a guard page and
// dense strides (lds = m, ldd = n): a read or write outside the m x n words
// faults.
template <class W>
void check_transpose_guarded(void (*fn)(const W*, int64_t, W*, int64_t, int64_t, int64_t), const char* what) {
  for (const test::GuardSide side : {test::GuardSide::kAfter, test::GuardSide::kBefore}) {
    for (int64_t m : {1, 7, 8, 9, 15, 16, 17, 31, 33, 37}) {
      for (int64_t n : {1, 5, 8, 13, 16, 23, 32, 37}) {
        test::Guarded<W> src(m * n, side), dst(m * n, side);
        for (int64_t i = 0; i < m * n; ++i) src[i] = static_cast<W>(i * 2654435761u);
        fn(src.data(), m, dst.data(), n, m, n);
        for (int64_t i = 0; i < m; ++i)
          for (int64_t k = 0; k < n; ++k)
            ASSERT_EQ(dst[i * n + k], src[k * m + i]) << what << " m " << m << " n " << n << " at [" << i << "][" << k << "]";
      }
    }
  }
}

TEST_P(VecKernelsIsa, TransposeX32IsExact) { check_transpose_exact(vk_->transpose_x32, "transpose_x32"); }
TEST_P(VecKernelsIsa, TransposeX16IsExact) { check_transpose_exact(vk_->transpose_x16, "transpose_x16"); }
TEST_P(VecKernelsIsa, TransposeX32StaysInsideItsBuffers) {
  check_transpose_guarded(vk_->transpose_x32, "transpose_x32");
}
TEST_P(VecKernelsIsa, TransposeX16StaysInsideItsBuffers) {
  check_transpose_guarded(vk_->transpose_x16, "transpose_x16");
}

INSTANTIATE_TEST_SUITE_P(Isa, VecKernelsIsa, ::testing::Values("scalar", "avx2", "avx512_vnni"),
                         [](const auto& info) { return info.param; });

// vec_kernels() follows max_isa() (and so SARAI_MAX_ISA): the isa.<level>
// ctest entries run this under each cap.
TEST(VecKernelsDispatch, TableFollowsMaxIsa) {
  const char* want = "scalar";
  switch (max_isa()) {
    case Isa::kAmx:
    case Isa::kAvx512Vnni: want = "avx512_vnni"; break;
    case Isa::kAvx2Vnni:
    case Isa::kAvx2: want = "avx2"; break;
    case Isa::kScalar: break;
  }
  EXPECT_STREQ(kernels::vec_kernels().isa, want) << "max_isa " << isa_name(max_isa());
}

}  // namespace
}  // namespace sarai
