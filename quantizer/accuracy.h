// How close a quantized model's outputs are to the FP32 reference: the
// figures users gate a deployment on (cosine, MSE, MAE, max abs error,
// relative L2, argmax agreement), accumulated over any number of input
// sets so a folder of inputs gives one verdict per output.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai::quant {

class OutputError {
 public:
  // Adds one (reference, test) pair: same shape, float32/float64/float16.
  // An error names the mismatch (shape or dtype).
  Status add(const Tensor& reference, const Tensor& test);

  int64_t elements() const { return n_; }
  // 1 when both are all zeros; 0 when exactly one is.
  double cosine() const;
  double mse() const { return n_ ? diff_sq_ / static_cast<double>(n_) : 0; }
  double mae() const { return n_ ? abs_sum_ / static_cast<double>(n_) : 0; }
  double max_abs() const { return max_abs_; }
  // ||test - ref|| / ||ref|| (0 when both are zero, infinity when only ref is).
  double relative_l2() const;
  // Fraction of rows (all but the last axis) whose argmax along the last
  // axis agrees; 1 for outputs of rank 0.
  double argmax_agreement() const { return rows_ ? static_cast<double>(rows_agree_) / static_cast<double>(rows_) : 1; }
  int64_t rows() const { return rows_; }
  // Non-finite values met in the test output (each also fails cosine).
  int64_t non_finite() const { return non_finite_; }

 private:
  int64_t n_ = 0, rows_ = 0, rows_agree_ = 0, non_finite_ = 0;
  double dot_ = 0, ref_sq_ = 0, test_sq_ = 0, diff_sq_ = 0, abs_sum_ = 0, max_abs_ = 0;
};

}  // namespace sarai::quant
