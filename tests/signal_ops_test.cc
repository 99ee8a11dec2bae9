// Tests for kernels/signal_ops.cc: DFT (radix-2 and direct lengths,
// one-sided, inverse, dft_length, axes of opsets 17 and 20), STFT, the
// three windows and MelWeightMatrix; every error message.
#include <cmath>
#include <complex>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/kernels.h"
#include "tests/test_util.h"

namespace sarai {
namespace {

using test::attr_int;
using test::make_tensor;
using test::run1;
using test::run_error;
using test::tensors_near;

Node node(const std::string& op, int inputs, std::map<std::string, Attribute> attrs = {}) {
  Node n = test::make_node(op, inputs);
  for (auto& [k, v] : attrs) n.attrs[k] = v;
  return n;
}
Tensor f32(Shape s, std::vector<float> v) { return make_tensor<float>(std::move(s), v); }
Tensor i64(Shape s, std::vector<int64_t> v) { return make_tensor<int64_t>(std::move(s), v); }

// The direct DFT of real x, zero-padded or cut to n, as [n, 2] floats.
std::vector<float> naive_dft(const std::vector<float>& x, int64_t n, int64_t bins) {
  std::vector<float> out;
  for (int64_t k = 0; k < bins; ++k) {
    std::complex<double> s = 0;
    for (int64_t j = 0; j < n && j < static_cast<int64_t>(x.size()); ++j)
      s += static_cast<double>(x[static_cast<size_t>(j)]) * std::polar(1.0, -2 * std::numbers::pi * double(j * k) / double(n));
    out.push_back(static_cast<float>(s.real()));
    out.push_back(static_cast<float>(s.imag()));
  }
  return out;
}

TEST(DFT, LengthsSidesInverseAxesAndErrors) {
  const Tensor x = f32({1, 4, 1}, {1, 2, 3, 4});
  const Tensor X = run1(kernels::DFT, node("DFT", 1), {x});
  EXPECT_TRUE(tensors_near(X, f32({1, 4, 2}, {10, 0, -2, 2, -2, 0, -2, -2})));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1, {{"onesided", attr_int(1)}}), {x}), f32({1, 3, 2}, {10, 0, -2, 2, -2, 0})));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1, {{"inverse", attr_int(1)}}), {X}), f32({1, 4, 2}, {1, 0, 2, 0, 3, 0, 4, 0})));
  // Direct sum (length 3 and 6, zero-padded), cut (2).
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1), {f32({1, 3, 1}, {1, 1, 1})}), f32({1, 3, 2}, {3, 0, 0, 0, 0, 0})));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 2), {x, i64({}, {6})}), f32({1, 6, 2}, naive_dft({1, 2, 3, 4}, 6, 6))));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 2), {x, i64({}, {2})}), f32({1, 2, 2}, {3, 0, -1, 0})));
  // axis 2 of [1, 2, 2, 1] (opset 17), axis input -2 (opset 20) = axis 2.
  const Tensor m = f32({1, 2, 2, 1}, {1, 2, 3, 5});
  const Tensor rows = f32({1, 2, 2, 2}, {3, 0, -1, 0, 8, 0, -2, 0});
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1, {{"axis", attr_int(2)}}), {m}), rows));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 3), {m, Tensor(), i64({}, {-2})}, 20), rows));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1), {m}, 20), rows));
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1), {m}), f32({1, 2, 2, 2}, {4, 0, 7, 0, -2, 0, -3, 0})));
  // Every length 1-40 and 400 (2^4 5^2), 512, 401 (prime) agree with the direct sum.
  std::vector<int64_t> lengths = {400, 512, 401};
  for (int64_t len = 1; len <= 40; ++len) lengths.push_back(len);
  for (int64_t len : lengths) {
    std::vector<float> v(static_cast<size_t>(len));
    for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(static_cast<float>(i * i % 97));
    const Tensor got = run1(kernels::DFT, node("DFT", 1), {f32({1, len, 1}, v)});
    EXPECT_TRUE(tensors_near(got, f32({1, len, 2}, naive_dft(v, len, len)), 1e-3, 1e-4)) << "length " << len;
    // And the inverse brings the signal back.
    std::vector<float> back;
    for (float f : v) back.push_back(f), back.push_back(0);
    EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 1, {{"inverse", attr_int(1)}}), {got}), f32({1, len, 2}, back), 1e-5, 1e-4)) << "length " << len;
  }

  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 1), {i64({1, 2, 1}, {1, 2})}), "input 'input' must be float32, got int64");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 1), {f32({4, 1}, {1, 2, 3, 4})}), "input 'input' [4, 1] must be [batch, ..., 1 or 2] (real or complex)");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 1, {{"axis", attr_int(2)}}), {x}), "axis 2 is not a signal axis of input [1, 4, 1] (1 to rank - 2)");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 3), {x, Tensor(), i64({}, {0})}, 20), "axis 0 is not a signal axis");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 2), {x, i64({}, {0})}), "input 'dft_length' is 0; it must be positive");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 1, {{"onesided", attr_int(1)}}), {f32({1, 0, 1}, {})}),
             "axis 1 of input [1, 0, 1] is empty and no dft_length is given: nothing to transform");
  // An empty axis zero-padded to dft_length transforms zeros.
  EXPECT_TRUE(tensors_near(run1(kernels::DFT, node("DFT", 2), {f32({1, 0, 1}, {}), i64({}, {2})}), f32({1, 2, 2}, {0, 0, 0, 0})));
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 2), {x, i64({2}, {1, 2})}), "input 'dft_length' must hold one value, got shape [2]");
  EXPECT_HAS(run_error(kernels::DFT, node("DFT", 1, {{"inverse", attr_int(1)}, {"onesided", attr_int(1)}}), {x}),
             "attributes 'inverse' and 'onesided' are both 1; an inverse DFT is not one-sided");
}

TEST(STFT, FramesWindowAndErrors) {
  const Tensor sig = f32({1, 8, 1}, {0, 1, 2, 3, 4, 5, 6, 7});
  // frame_length 4, step 4: frames [0..3] and [4..7], 3 one-sided bins.
  std::vector<float> want = naive_dft({0, 1, 2, 3}, 4, 3), f2 = naive_dft({4, 5, 6, 7}, 4, 3);
  want.insert(want.end(), f2.begin(), f2.end());
  EXPECT_TRUE(tensors_near(run1(kernels::STFT, node("STFT", 4), {sig, i64({}, {4}), Tensor(), i64({}, {4})}), f32({1, 2, 3, 2}, want)));
  // Window [0, 1, 1, 0], step 3 -> frames at 0 and 3; two-sided.
  std::vector<float> w1 = naive_dft({0, 1, 2, 0}, 4, 4), w2 = naive_dft({0, 4, 5, 0}, 4, 4);
  w1.insert(w1.end(), w2.begin(), w2.end());
  EXPECT_TRUE(tensors_near(run1(kernels::STFT, node("STFT", 3, {{"onesided", attr_int(0)}}), {sig, i64({}, {3}), f32({4}, {0, 1, 1, 0})}),
                           f32({1, 2, 4, 2}, w1)));

  const Node n = node("STFT", 4);
  EXPECT_HAS(run_error(kernels::STFT, n, {i64({1, 8, 1}, {0, 1, 2, 3, 4, 5, 6, 7}), i64({}, {4}), Tensor(), i64({}, {4})}),
             "input 'signal' must be float32, got int64");
  EXPECT_HAS(run_error(kernels::STFT, n, {f32({8}, {0, 1, 2, 3, 4, 5, 6, 7}), i64({}, {4}), Tensor(), i64({}, {4})}),
             "input 'signal' [8] must be [batch, length, 1 or 2]");
  EXPECT_HAS(run_error(kernels::STFT, n, {sig, i64({}, {0}), Tensor(), i64({}, {4})}), "input 'frame_step' is 0; it must be positive");
  EXPECT_HAS(run_error(kernels::STFT, n, {sig, i64({}, {4}), f32({3}, {1, 1, 1}), i64({}, {4})}), "input 'frame_length' is 4 but the window has 3 values");
  EXPECT_HAS(run_error(kernels::STFT, n, {sig, i64({}, {4}), Tensor(), Tensor()}), "neither input 'window' nor input 'frame_length' gives the frame length");
  EXPECT_HAS(run_error(kernels::STFT, n, {sig, i64({}, {4}), Tensor(), i64({}, {9})}), "the frame length 9 must be in [1, 8] (the signal [1, 8, 1])");
  EXPECT_HAS(run_error(kernels::STFT, n, {sig, i64({}, {4}), i64({4}, {1, 1, 1, 1}), Tensor()}), "input 'window' must be 1-D float32, got int64 [4]");
  EXPECT_HAS(run_error(kernels::STFT, n, {f32({1, 4, 2}, {0, 0, 0, 0, 0, 0, 0, 0}), i64({}, {2}), Tensor(), i64({}, {2})}),
             "a complex signal has no one-sided transform (attribute 'onesided' is 1)");
  EXPECT_HAS(run_error(kernels::STFT, node("STFT", 4, {{"onesided", attr_int(3)}}), {sig, i64({}, {4}), Tensor(), i64({}, {4})}), "onesided");
}

TEST(Windows, PeriodicSymmetricDtypesAndErrors) {
  const Tensor four = i64({}, {4});
  EXPECT_TRUE(tensors_near(run1(kernels::HannWindow, node("HannWindow", 1), {four}), f32({4}, {0, 0.5f, 1, 0.5f})));
  EXPECT_TRUE(tensors_near(run1(kernels::HannWindow, node("HannWindow", 1, {{"periodic", attr_int(0)}}), {i64({}, {3})}), f32({3}, {0, 1, 0})));
  EXPECT_TRUE(tensors_near(run1(kernels::HammingWindow, node("HammingWindow", 1), {i64({}, {2})}), f32({2}, {4.f / 46, 1})));
  EXPECT_TRUE(tensors_near(run1(kernels::BlackmanWindow, node("BlackmanWindow", 1, {{"output_datatype", attr_int(11)}}), {four}),
                           make_tensor<double>({4}, {0, 0.34, 1, 0.34})));
  EXPECT_TRUE(tensors_near(run1(kernels::HannWindow, node("HannWindow", 1, {{"periodic", attr_int(0)}}), {i64({}, {1})}), f32({1}, {1})));
  EXPECT_EQ(run1(kernels::HannWindow, node("HannWindow", 1), {i64({}, {0})}).shape(), (Shape{0}));
  EXPECT_HAS(run_error(kernels::HannWindow, node("HannWindow", 1, {{"output_datatype", attr_int(7)}}), {four}),
             "attribute 'output_datatype' is 7; supported: 1 (float32), 11 (float64)");
  EXPECT_HAS(run_error(kernels::HannWindow, node("HannWindow", 1, {{"periodic", attr_int(2)}}), {four}), "periodic");
  EXPECT_HAS(run_error(kernels::HannWindow, node("HannWindow", 1), {i64({}, {-1})}), "input 'size' is -1; it must be >= 0");
  EXPECT_HAS(run_error(kernels::HannWindow, node("HannWindow", 1), {f32({}, {4})}), "input 'size' must be int64 or int32, got float32");
}

TEST(MelWeightMatrix, OnnxExampleAndErrors) {
  const Node n = node("MelWeightMatrix", 5);
  const Tensor y = run1(kernels::MelWeightMatrix, n, {i64({}, {8}), i64({}, {16}), i64({}, {8192}), f32({}, {0}), f32({}, {4096})});
  std::vector<float> want(9 * 8, 0.f);
  const int ones[][2] = {{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}, {5, 7}};
  for (auto& rc : ones) want[static_cast<size_t>(rc[0] * 8 + rc[1])] = 1.f;
  EXPECT_TRUE(tensors_near(y, f32({9, 8}, want)));
  // A wider band: rows past the spectrum are cut, weights stay in [0, 1].
  const Tensor w = run1(kernels::MelWeightMatrix, node("MelWeightMatrix", 5, {{"output_datatype", attr_int(11)}}),
                        {i64({}, {4}), i64({}, {8}), i64({}, {100}), f32({}, {10}), f32({}, {90})});
  ASSERT_EQ(w.shape(), (Shape{5, 4}));
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_TRUE(w.data<double>()[i] >= 0 && w.data<double>()[i] <= 1);
  // An upper edge near FLT_MAX: the far filter points are clamped, nothing overflows.
  const Tensor far = run1(kernels::MelWeightMatrix, n, {i64({}, {3}), i64({}, {8}), i64({}, {100}), f32({}, {0}), f32({}, {3e38f})});
  for (int64_t i = 0; i < far.numel(); ++i) EXPECT_TRUE(far.data<float>()[i] >= 0 && far.data<float>()[i] <= 1);
  EXPECT_HAS(run_error(kernels::MelWeightMatrix, n, {i64({}, {0}), i64({}, {16}), i64({}, {8192}), f32({}, {0}), f32({}, {4096})}),
             "num_mel_bins 0, dft_length 16 and sample_rate 8192 must be positive");
  EXPECT_HAS(run_error(kernels::MelWeightMatrix, n, {i64({}, {8}), i64({}, {16}), i64({}, {8192}), f32({}, {10}), f32({}, {10})}),
             "must satisfy 0 <= lower < upper");
  EXPECT_HAS(run_error(kernels::MelWeightMatrix, n, {i64({}, {8}), i64({}, {16}), i64({}, {8192}), f32({}, {0}), Tensor()}),
             "missing required input 'upper_edge_hertz'");
  EXPECT_HAS(run_error(kernels::MelWeightMatrix, n, {i64({}, {8}), i64({}, {16}), i64({}, {8192}), make_tensor<bool>({}, {true}), f32({}, {1})}),
             "input 'lower_edge_hertz' must be numeric, got bool");
}

}  // namespace
}  // namespace sarai
