// Static activation ranges from calibration data: what `sarai-rt convert
// --calibration DIR --static` stores in the blob (attributes x_min / x_max
// of each QMatMul / QConv / QConvTranspose, see kernels/qmatmul_qconv.cc), so the
// kernels skip the per-call range pass of dynamic quantization.
//
// One ActivationStats per quantized input, fed every calibration set in two
// passes: observe_range (min and max), then, for the percentile method,
// observe_histogram (a histogram over the final [min, max]). Two passes
// keep the histogram's bins fixed, so it never has to be re-binned and the
// result does not depend on the order of the sets.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/status.h"

namespace sarai::quant {

enum class RangeMethod {
  kMinMax,      // the whole observed range: nothing ever saturates on the calibration data
  kPercentile,  // clip the tails: [q(1 - p), q(p)] of all observed values, p = percentile / 100
};

struct RangeOptions {
  RangeMethod method = RangeMethod::kMinMax;
  double percentile = 99.99;  // kPercentile only, in (50, 100]
};

// "minmax" / "percentile" (the --calibration-method spelling).
Expected<RangeMethod> parse_range_method(const std::string& s);
const char* range_method_name(RangeMethod m);

struct ActivationRange {
  float lo = 0, hi = 0;  // always lo <= 0 <= hi (the u8 grid must hold 0 exactly)
};

class ActivationStats {
 public:
  static constexpr int kBins = 4096;

  // Pass 1. NaN is ignored (as the dynamic range pass does); ±inf is an
  // error, since no finite range holds it.
  Status observe_range(const float* x, int64_t n);
  // Pass 2 (kPercentile only), after every set went through pass 1.
  void observe_histogram(const float* x, int64_t n);
  // The range to store. min and max are folded from 0, as in
  // DynamicQuantizeLinear; the percentile range never exceeds them.
  ActivationRange range(const RangeOptions& o) const;

  int64_t count() const { return count_; }
  float min() const { return lo_; }
  float max() const { return hi_; }

 private:
  float lo_ = 0, hi_ = 0;
  int64_t count_ = 0;
  std::vector<uint64_t> hist_;  // kBins over [lo_, hi_], filled by pass 2
  int64_t hist_count_ = 0;
};

// The value names of the inputs X of the nodes the converter will quantize,
// and their ranges: what ConvertOptions::activation_ranges holds.
using ActivationRanges = std::map<std::string, ActivationRange>;

}  // namespace sarai::quant
