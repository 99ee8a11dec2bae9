#include "quantizer/calibration.h"

#include <algorithm>
#include <cmath>

namespace sarai::quant {

Expected<RangeMethod> parse_range_method(const std::string& s) {
  if (s == "minmax") return RangeMethod::kMinMax;
  if (s == "percentile") return RangeMethod::kPercentile;
  return Status::error("calibration method '" + s + "' is not known (minmax or percentile)");
}

const char* range_method_name(RangeMethod m) { return m == RangeMethod::kMinMax ? "minmax" : "percentile"; }

Status ActivationStats::observe_range(const float* x, int64_t n) {
  float lo = lo_, hi = hi_;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) continue;
    if (std::isinf(v)) return Status::error("holds an infinite value; no finite range can quantize it");
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
    ++count_;
  }
  lo_ = lo;
  hi_ = hi;
  return Status::ok();
}

void ActivationStats::observe_histogram(const float* x, int64_t n) {
  if (hist_.empty()) hist_.assign(kBins, 0);
  if (!(hi_ > lo_)) return;
  const double lo = lo_, per_bin = kBins / (static_cast<double>(hi_) - lo);
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    if (std::isnan(v)) continue;
    // Values outside pass 1's range (a set that changed between passes)
    // count in the end bins.
    const double b = std::floor((v - lo) * per_bin);
    ++hist_[static_cast<size_t>(std::clamp(b, 0.0, static_cast<double>(kBins - 1)))];
    ++hist_count_;
  }
}

ActivationRange ActivationStats::range(const RangeOptions& o) const {
  ActivationRange r{std::min(lo_, 0.f), std::max(hi_, 0.f)};
  if (o.method == RangeMethod::kMinMax || hist_count_ == 0 || !(hi_ > lo_)) return r;
  // Keep `keep` of the values on each side: the upper bound is the upper
  // edge of the bin where the count from below reaches keep, the lower
  // bound the lower edge of the bin where the count from above does
  // (bin edges round outwards, so the range errs on the wide side).
  const double keep = static_cast<double>(hist_count_) * (o.percentile / 100.0);
  const double width = (static_cast<double>(hi_) - lo_) / kBins;
  double below = 0, above = 0;
  int hi_bin = kBins - 1, lo_bin = 0;
  for (int b = 0; b < kBins; ++b) {
    below += static_cast<double>(hist_[static_cast<size_t>(b)]);
    if (below >= keep) {
      hi_bin = b;
      break;
    }
  }
  for (int b = kBins - 1; b >= 0; --b) {
    above += static_cast<double>(hist_[static_cast<size_t>(b)]);
    if (above >= keep) {
      lo_bin = b;
      break;
    }
  }
  const float hi = hi_bin == kBins - 1 ? hi_ : static_cast<float>(lo_ + width * (hi_bin + 1));
  const float lo = lo_bin == 0 ? lo_ : static_cast<float>(lo_ + width * lo_bin);
  r.lo = std::min(std::max(lo, lo_), 0.f);
  r.hi = std::max(std::min(hi, hi_), 0.f);
  return r;
}

}  // namespace sarai::quant
