#include "quantizer/accuracy.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace sarai::quant {

Status OutputError::add(const Tensor& ref, const Tensor& test) {
  if (ref.shape() != test.shape())
    return Status::error("shape " + shape_to_string(test.shape()) + " differs from the reference's " +
                         shape_to_string(ref.shape()));
  auto is_float = [](DType t) { return t == DType::kFloat32 || t == DType::kFloat64 || t == DType::kFloat16; };
  if (!is_float(ref.dtype()) || !is_float(test.dtype()))
    return Status::error(std::string("cannot compare ") + dtype_name(test.dtype()) + " with " +
                         dtype_name(ref.dtype()) + " (float outputs only)");
  const int64_t n = ref.numel();
  const int64_t row = ref.rank() ? std::max<int64_t>(ref.shape().back(), 1) : 1;
  // Double accumulation: float sums over millions of elements drift.
  for (int64_t r0 = 0; r0 < n; r0 += row) {
    int64_t best_ref = r0, best_test = r0;
    for (int64_t i = r0; i < r0 + row && i < n; ++i) {
      const double a = ref.float_at(i), b = test.float_at(i);
      if (!std::isfinite(b)) ++non_finite_;
      dot_ += a * b;
      ref_sq_ += a * a;
      test_sq_ += b * b;
      const double d = b - a;
      diff_sq_ += d * d;
      abs_sum_ += std::fabs(d);
      max_abs_ = std::isnan(d) ? std::numeric_limits<double>::infinity() : std::max(max_abs_, std::fabs(d));
      if (a > ref.float_at(best_ref)) best_ref = i;
      if (b > test.float_at(best_test)) best_test = i;
    }
    if (ref.rank() > 0) {
      ++rows_;
      rows_agree_ += best_ref - r0 == best_test - r0;
    }
  }
  n_ += n;
  return Status::ok();
}

double OutputError::cosine() const {
  if (non_finite_) return 0;
  if (ref_sq_ == 0 && test_sq_ == 0) return 1;
  if (ref_sq_ == 0 || test_sq_ == 0) return 0;
  return dot_ / (std::sqrt(ref_sq_) * std::sqrt(test_sq_));
}

double OutputError::relative_l2() const {
  if (ref_sq_ == 0) return diff_sq_ == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff_sq_) / std::sqrt(ref_sq_);
}

}  // namespace sarai::quant
