// quantizer/calibration.h: the static activation ranges `convert --static`
// stores, on data whose answer is known by hand.
#include "quantizer/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace sarai::quant {
namespace {

ActivationRange range_of(const std::vector<std::vector<float>>& sets, RangeOptions o) {
  ActivationStats s;
  for (const auto& x : sets) EXPECT_TRUE(s.observe_range(x.data(), static_cast<int64_t>(x.size())).is_ok());
  if (o.method == RangeMethod::kPercentile)
    for (const auto& x : sets) s.observe_histogram(x.data(), static_cast<int64_t>(x.size()));
  return s.range(o);
}

TEST(Calibration, MinMaxIsTheObservedRangeFoldedFromZero) {
  const RangeOptions mm;
  ActivationRange r = range_of({{0.5f, -1.25f, 2.f}, {3.f, -0.5f}}, mm);
  EXPECT_EQ(r.lo, -1.25f);
  EXPECT_EQ(r.hi, 3.f);
  // All positive (post-ReLU): the range still holds 0.
  r = range_of({{0.5f, 2.f}}, mm);
  EXPECT_EQ(r.lo, 0.f);
  EXPECT_EQ(r.hi, 2.f);
  r = range_of({{-4.f, -2.f}}, mm);
  EXPECT_EQ(r.lo, -4.f);
  EXPECT_EQ(r.hi, 0.f);
  // NaN is skipped, as the dynamic range pass does.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  r = range_of({{nan, 1.f, nan, -1.f}}, mm);
  EXPECT_EQ(r.lo, -1.f);
  EXPECT_EQ(r.hi, 1.f);
}

TEST(Calibration, InfinityIsAnError) {
  ActivationStats s;
  const float x[] = {1.f, std::numeric_limits<float>::infinity()};
  Status st = s.observe_range(x, 2);
  ASSERT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("infinite"), std::string::npos) << st.message();
}

TEST(Calibration, PercentileClipsTheTailsOnly) {
  // 0, 1, ..., 99999 and one outlier at 1e6: min/max keeps the outlier, the
  // 99.9th percentile lands near 99900 (one bin is 1e6 / 4096 = 244 wide,
  // and bin edges round outwards), the lower end stays 0.
  std::vector<float> x;
  for (int i = 0; i < 100000; ++i) x.push_back(static_cast<float>(i));
  x.push_back(1e6f);
  EXPECT_EQ(range_of({x}, RangeOptions{}).hi, 1e6f);
  RangeOptions pct{RangeMethod::kPercentile, 99.9};
  ActivationRange r = range_of({x}, pct);
  const double bin = 1e6 / ActivationStats::kBins;
  EXPECT_EQ(r.lo, 0.f);
  EXPECT_GE(r.hi, 99900.0 - 1);
  EXPECT_LE(r.hi, 99900.0 + bin + 1);
  // Symmetric data: both tails clipped, each near its own quantile.
  std::vector<float> s;
  for (int i = -50000; i <= 50000; ++i) s.push_back(static_cast<float>(i) / 1000.f);  // [-50, 50]
  r = range_of({s}, RangeOptions{RangeMethod::kPercentile, 99.0});
  const double sbin = 100.0 / ActivationStats::kBins;
  EXPECT_NEAR(r.lo, -49.0, sbin + 1e-3);
  EXPECT_NEAR(r.hi, 49.0, sbin + 1e-3);
  // 100 keeps everything: the min/max range.
  r = range_of({s}, RangeOptions{RangeMethod::kPercentile, 100.0});
  EXPECT_EQ(r.lo, -50.f);
  EXPECT_EQ(r.hi, 50.f);
}

TEST(Calibration, SetsAreCombinedWhateverTheirOrder) {
  std::vector<float> a, b;
  for (int i = 0; i < 5000; ++i) a.push_back(std::sin(static_cast<float>(i)) * 3.f);
  for (int i = 0; i < 3000; ++i) b.push_back(std::cos(static_cast<float>(i)) * 5.f - 1.f);
  const RangeOptions pct{RangeMethod::kPercentile, 99.5};
  ActivationRange ab = range_of({a, b}, pct), ba = range_of({b, a}, pct);
  EXPECT_EQ(ab.lo, ba.lo);
  EXPECT_EQ(ab.hi, ba.hi);
  ActivationRange mm = range_of({a, b}, RangeOptions{});
  EXPECT_GE(ab.lo, mm.lo);
  EXPECT_LE(ab.hi, mm.hi);
  EXPECT_LT(ab.hi - ab.lo, mm.hi - mm.lo);
}

TEST(Calibration, AllZeroGivesTheZeroRange) {
  ActivationRange r = range_of({{0.f, 0.f, 0.f}}, RangeOptions{RangeMethod::kPercentile, 99.99});
  EXPECT_EQ(r.lo, 0.f);
  EXPECT_EQ(r.hi, 0.f);
}

TEST(Calibration, MethodNames) {
  EXPECT_EQ(*parse_range_method("minmax"), RangeMethod::kMinMax);
  EXPECT_EQ(*parse_range_method("percentile"), RangeMethod::kPercentile);
  auto bad = parse_range_method("entropy");
  ASSERT_FALSE(bad.has_value());
  EXPECT_NE(bad.message().find("'entropy' is not known (minmax or percentile)"), std::string::npos);
  EXPECT_STREQ(range_method_name(RangeMethod::kPercentile), "percentile");
}

}  // namespace
}  // namespace sarai::quant
