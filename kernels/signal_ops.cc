// The ONNX audio front-end ops (opset 17): DFT (also opset 20's form with
// `axis` as an input), STFT, HannWindow, HammingWindow, BlackmanWindow and
// MelWeightMatrix. Float32 signals; the transforms run in double over a
// twiddle table (cos/sin of 2 pi k / N): a mixed-radix FFT, O(N log N) for
// lengths with small prime factors (400, 512), O(N^2) for a prime length.
#include <algorithm>
#include <cmath>
#include <complex>
#include <cstring>
#include <numbers>
#include <string>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

using cd = std::complex<double>;

// One scalar int input (a length or a step): its value, or an error.
Expected<int64_t> scalar_int_input(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i)) return Status::error(std::string("missing required input '") + name + "'");
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return Status::error(std::string("input '") + name + "' must be int64 or int32, got " + dtype_name(t.dtype()));
  if (t.numel() != 1)
    return Status::error(std::string("input '") + name + "' must hold one value, got shape " + shape_to_string(t.shape()));
  return t.int_at(0);
}

Expected<double> scalar_float_input(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i)) return Status::error(std::string("missing required input '") + name + "'");
  const Tensor& t = ctx.input(i);
  if (dtype_size(t.dtype()) == 0 || t.dtype() == DType::kBool)
    return Status::error(std::string("input '") + name + "' must be numeric, got " + dtype_name(t.dtype()));
  if (t.numel() != 1)
    return Status::error(std::string("input '") + name + "' must hold one value, got shape " + shape_to_string(t.shape()));
  return t.float_at(0);
}

// Mixed-radix decimation in time: the n values in[0], in[stride], ... of a
// transform of total length N into out[0..n), by the smallest prime factor
// p of n: p transforms of n / p, then per k the p outputs k + s n / p from
// the p partial results (in place, through tmp of p values). tw[e] =
// e^(-2 pi i e / N); conjugated for the inverse. O(n (sum of n's prime
// factors)): n log n for smooth lengths (400, 512), n^2 for a prime.
void fft(const cd* in, int64_t stride, int64_t n, int64_t N, cd* out, const cd* tw, bool inverse, cd* tmp) {
  if (n == 1) {
    out[0] = in[0];
    return;
  }
  int64_t p = 2;
  while (p * p <= n && n % p != 0) ++p;
  if (n % p != 0) p = n;
  const int64_t m = n / p;
  for (int64_t q = 0; q < p; ++q) fft(in + q * stride, stride * p, m, N, out + q * m, tw, inverse, tmp);
  const int64_t un = N / n, up = N / p;  // twiddle steps of W_n and W_p
  auto w = [&](int64_t e) { return inverse ? std::conj(tw[e]) : tw[e]; };
  for (int64_t k = 0; k < m; ++k) {
    for (int64_t q = 0; q < p; ++q) tmp[q] = out[q * m + k] * w((q * k % n) * un);
    for (int64_t s = 0; s < p; ++s) {
      cd acc = 0;
      for (int64_t q = 0; q < p; ++q) acc += tmp[q] * w((q * s % p) * up);
      out[s * m + k] = acc;
    }
  }
}

// The transform of n complex values `in` into its first `bins` outputs:
// out[k] = scale * sum_j in[j] e^(-+2 pi i j k / n), scale 1 / n for the
// inverse. tw holds e^(-2 pi i m / n) for m < n; work holds 2 n values.
void dft_line(const cd* in, cd* out, int64_t n, int64_t bins, bool inverse, const cd* tw, cd* work) {
  fft(in, 1, n, n, work, tw, inverse, work + n);
  const double scale = inverse ? 1.0 / static_cast<double>(n) : 1.0;
  for (int64_t k = 0; k < bins; ++k) out[k] = work[k] * scale;
}

void twiddles(cd* tw, int64_t n) {
  for (int64_t m = 0; m < n; ++m) {
    const double a = -2.0 * std::numbers::pi * static_cast<double>(m) / static_cast<double>(n);
    tw[m] = cd(std::cos(a), std::sin(a));
  }
}

struct DftAttrs {
  int64_t axis = 1;
  bool inverse = false, onesided = false;
};

}  // namespace

Expected<std::shared_ptr<const void>> PrepareDFT(const Node& node, int64_t /*opset*/) {
  DftAttrs a;
  a.axis = node.attr_int("axis", 1);
  SARAI_ASSIGN_OR_RETURN(a.inverse, attr_flag(node, "inverse", false));
  SARAI_ASSIGN_OR_RETURN(a.onesided, attr_flag(node, "onesided", false));
  if (a.inverse && a.onesided) return Status::error("attributes 'inverse' and 'onesided' are both 1; an inverse DFT is not one-sided");
  return prepared_data(a);
}

// DFT: input [batch, ..., n, ..., 1 (real) or 2 (complex)] transformed along
// `axis` (opset 17: attribute, default 1; opset 20: input 2, default -2),
// zero-padded or cut to dft_length (input 1); output [..., bins, ..., 2],
// bins = dft_length or, one-sided, dft_length / 2 + 1.
Status DFT(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'input'");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32) return Status::error(std::string("input 'input' must be float32, got ") + dtype_name(x.dtype()));
  SARAI_ASSIGN_OR_RETURN(const DftAttrs* a, ctx.prepared<DftAttrs>(PrepareDFT));
  const int r = x.rank();
  if (r < 3 || (x.dim(r - 1) != 1 && x.dim(r - 1) != 2))
    return Status::error("input 'input' " + shape_to_string(x.shape()) + " must be [batch, ..., 1 or 2] (real or complex)");
  int64_t axis_v = a->axis;
  if (ctx.opset() >= 20) {
    axis_v = -2;
    if (ctx.has_input(2)) {
      SARAI_ASSIGN_OR_RETURN(axis_v, scalar_int_input(ctx, 2, "axis"));
    }
  }
  if (axis_v < 0) axis_v += r;
  if (axis_v < 1 || axis_v > r - 2)
    return Status::error("axis " + std::to_string(ctx.opset() >= 20 ? axis_v : a->axis) + " is not a signal axis of input " +
                         shape_to_string(x.shape()) + " (1 to rank - 2)");
  const int axis = static_cast<int>(axis_v);
  const int64_t n_in = x.dim(axis);
  int64_t n = n_in;
  if (ctx.has_input(1)) {
    SARAI_ASSIGN_OR_RETURN(n, scalar_int_input(ctx, 1, "dft_length"));
    if (n < 1 || n > (int64_t{1} << 40))
      return Status::error("input 'dft_length' is " + std::to_string(n) + "; it must be positive");
  }
  if (n == 0)
    return Status::error("axis " + std::to_string(axis) + " of input " + shape_to_string(x.shape()) +
                         " is empty and no dft_length is given: nothing to transform");
  const bool complex_in = x.dim(r - 1) == 2;
  const int64_t bins = a->onesided ? n / 2 + 1 : n;
  Shape out = x.shape();
  out[static_cast<size_t>(axis)] = bins;
  out[static_cast<size_t>(r - 1)] = 2;
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out);
  cd* ws = ctx.workspace<cd>(n + 4 * n * thread_slots(ctx));
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  twiddles(ws, n);
  const int64_t outer = numel_of(Shape(x.shape().begin(), x.shape().begin() + axis));
  const int64_t inner = numel_of(Shape(x.shape().begin() + axis + 1, x.shape().end() - 1));
  const int64_t c = x.dim(r - 1);
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  parallel_for(outer * inner, 1, [&](int64_t b, int64_t e) {
    cd* line = ws + n + 4 * n * thread_index();
    cd* res = line + n;
    cd* work = res + n;
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / inner, i = t % inner;
      for (int64_t j = 0; j < n; ++j) {
        if (j >= n_in) { line[j] = 0; continue; }
        const float* p = px + ((o * n_in + j) * inner + i) * c;
        line[j] = cd(p[0], complex_in ? p[1] : 0.f);
      }
      dft_line(line, res, n, bins, a->inverse, ws, work);
      for (int64_t k = 0; k < bins; ++k) {
        float* q = py + ((o * bins + k) * inner + i) * 2;
        q[0] = static_cast<float>(res[k].real());
        q[1] = static_cast<float>(res[k].imag());
      }
    }
  });
  return Status::ok();
}

Expected<std::shared_ptr<const void>> PrepareSTFT(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(bool onesided, attr_flag(node, "onesided", true));
  return prepared_data(onesided);
}

// STFT: signal [batch, length, 1 or 2] cut in frames of frame_length
// (input 3, or the window's length) every frame_step samples, each
// multiplied by the window (input 2, default ones) and transformed:
// output [batch, frames, bins, 2], frames = 1 + (length - frame_length) /
// frame_step, bins = frame_length / 2 + 1 when one-sided (default).
Status STFT(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'signal'");
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DType::kFloat32) return Status::error(std::string("input 'signal' must be float32, got ") + dtype_name(x.dtype()));
  if (x.rank() != 3 || (x.dim(2) != 1 && x.dim(2) != 2))
    return Status::error("input 'signal' " + shape_to_string(x.shape()) + " must be [batch, length, 1 or 2]");
  SARAI_ASSIGN_OR_RETURN(const bool* onesided, ctx.prepared<bool>(PrepareSTFT));
  SARAI_ASSIGN_OR_RETURN(int64_t step, scalar_int_input(ctx, 1, "frame_step"));
  if (step < 1) return Status::error("input 'frame_step' is " + std::to_string(step) + "; it must be positive");
  const float* window = nullptr;
  int64_t fl = -1;
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.dtype() != DType::kFloat32 || w.rank() != 1)
      return Status::error("input 'window' must be 1-D float32, got " + std::string(dtype_name(w.dtype())) + " " + shape_to_string(w.shape()));
    window = w.data<float>();
    fl = w.dim(0);
  }
  if (ctx.has_input(3)) {
    SARAI_ASSIGN_OR_RETURN(int64_t l, scalar_int_input(ctx, 3, "frame_length"));
    if (fl != -1 && l != fl)
      return Status::error("input 'frame_length' is " + std::to_string(l) + " but the window has " + std::to_string(fl) + " values");
    fl = l;
  }
  if (fl == -1) return Status::error("neither input 'window' nor input 'frame_length' gives the frame length");
  const int64_t len = x.dim(1);
  if (fl < 1 || fl > len)
    return Status::error("the frame length " + std::to_string(fl) + " must be in [1, " + std::to_string(len) +
                         "] (the signal " + shape_to_string(x.shape()) + ")");
  const bool complex_in = x.dim(2) == 2;
  if (complex_in && *onesided) return Status::error("a complex signal has no one-sided transform (attribute 'onesided' is 1)");
  const int64_t frames = 1 + (len - fl) / step, bins = *onesided ? fl / 2 + 1 : fl, B = x.dim(0);
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, Shape{B, frames, bins, 2});
  cd* ws = ctx.workspace<cd>(fl + 4 * fl * thread_slots(ctx));
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  twiddles(ws, fl);
  const float* px = x.data<float>();
  float* py = y.mutable_data<float>();
  const int64_t c = x.dim(2);
  parallel_for(B * frames, 1, [&](int64_t b, int64_t e) {
    cd* line = ws + fl + 4 * fl * thread_index();
    cd* res = line + fl;
    cd* work = res + fl;
    for (int64_t t = b; t < e; ++t) {
      const int64_t bi = t / frames, f = t % frames;
      const float* p = px + (bi * len + f * step) * c;
      for (int64_t j = 0; j < fl; ++j) {
        const double w = window ? window[j] : 1.0;
        line[j] = cd(p[j * c] * w, complex_in ? p[j * c + 1] * w : 0.0);
      }
      dft_line(line, res, fl, bins, false, ws, work);
      float* q = py + t * bins * 2;
      for (int64_t k = 0; k < bins; ++k) {
        q[2 * k] = static_cast<float>(res[k].real());
        q[2 * k + 1] = static_cast<float>(res[k].imag());
      }
    }
  });
  return Status::ok();
}

namespace {

struct WindowAttrs {
  DType dtype = DType::kFloat32;
  bool periodic = true;
};

Expected<DType> output_datatype(const Node& node) {
  const int64_t v = node.attr_int("output_datatype", 1);
  DType t;
  if (v < 0 || v > 100 || !dtype_from_onnx(static_cast<int32_t>(v), &t) || (t != DType::kFloat32 && t != DType::kFloat64))
    return Status::error("attribute 'output_datatype' is " + std::to_string(v) + "; supported: 1 (float32), 11 (float64)");
  return t;
}

// A window of `size` values a0 - a1 cos(2 pi n / N) + a2 cos(4 pi n / N),
// N = size (periodic) or size - 1 (symmetric; a 1-value window is [1]).
Status cosine_window(KernelContext& ctx, const WindowAttrs& a, double a0, double a1, double a2) {
  SARAI_ASSIGN_OR_RETURN(int64_t size, scalar_int_input(ctx, 0, "size"));
  if (size < 0) return Status::error("input 'size' is " + std::to_string(size) + "; it must be >= 0");
  Tensor& y = ctx.allocate_output(0, a.dtype, Shape{size});
  const double N = static_cast<double>(a.periodic ? size : size - 1);
  for (int64_t i = 0; i < size; ++i) {
    const double t = 2.0 * std::numbers::pi * static_cast<double>(i) / N;
    const double v = size == 1 && !a.periodic ? 1.0 : a0 - a1 * std::cos(t) + a2 * std::cos(2 * t);
    if (a.dtype == DType::kFloat64) y.mutable_data<double>()[i] = v;
    else y.mutable_data<float>()[i] = static_cast<float>(v);
  }
  return Status::ok();
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareWindow(const Node& node, int64_t /*opset*/) {
  WindowAttrs a;
  SARAI_ASSIGN_OR_RETURN(a.dtype, output_datatype(node));
  SARAI_ASSIGN_OR_RETURN(a.periodic, attr_flag(node, "periodic", true));
  return prepared_data(a);
}

Status HannWindow(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const WindowAttrs* a, ctx.prepared<WindowAttrs>(PrepareWindow));
  return cosine_window(ctx, *a, 0.5, 0.5, 0.0);
}

Status HammingWindow(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const WindowAttrs* a, ctx.prepared<WindowAttrs>(PrepareWindow));
  return cosine_window(ctx, *a, 25.0 / 46.0, 21.0 / 46.0, 0.0);
}

Status BlackmanWindow(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const WindowAttrs* a, ctx.prepared<WindowAttrs>(PrepareWindow));
  return cosine_window(ctx, *a, 0.42, 0.5, 0.08);
}

Expected<std::shared_ptr<const void>> PrepareMelWeightMatrix(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(DType t, output_datatype(node));
  return prepared_data(t);
}

// MelWeightMatrix: [dft_length / 2 + 1, num_mel_bins] triangular filters
// between num_mel_bins + 2 points evenly spaced in mel (2595 log10(1 + f /
// 700)) from lower_edge_hertz to upper_edge_hertz, each point's spectrogram
// bin floor((dft_length + 1) f / sample_rate), as ONNX's reference.
Status MelWeightMatrix(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const DType* t, ctx.prepared<DType>(PrepareMelWeightMatrix));
  SARAI_ASSIGN_OR_RETURN(int64_t mels, scalar_int_input(ctx, 0, "num_mel_bins"));
  SARAI_ASSIGN_OR_RETURN(int64_t dft, scalar_int_input(ctx, 1, "dft_length"));
  SARAI_ASSIGN_OR_RETURN(int64_t rate, scalar_int_input(ctx, 2, "sample_rate"));
  SARAI_ASSIGN_OR_RETURN(double lo, scalar_float_input(ctx, 3, "lower_edge_hertz"));
  SARAI_ASSIGN_OR_RETURN(double hi, scalar_float_input(ctx, 4, "upper_edge_hertz"));
  if (mels < 1 || dft < 1 || rate < 1 || mels > (int64_t{1} << 24) || dft > (int64_t{1} << 40))
    return Status::error("num_mel_bins " + std::to_string(mels) + ", dft_length " + std::to_string(dft) + " and sample_rate " +
                         std::to_string(rate) + " must be positive");
  if (!(lo >= 0) || !(hi > lo) || !std::isfinite(hi))
    return Status::error("lower_edge_hertz " + std::to_string(lo) + " and upper_edge_hertz " + std::to_string(hi) +
                         " must satisfy 0 <= lower < upper");
  const int64_t spec = dft / 2 + 1;
  Tensor& y = ctx.allocate_output_zeroed(0, *t, Shape{spec, mels});
  int64_t* bin = ctx.workspace<int64_t>(mels + 2);
  const double lo_mel = 2595.0 * std::log10(1.0 + lo / 700.0), hi_mel = 2595.0 * std::log10(1.0 + hi / 700.0);
  const double step = (hi_mel - lo_mel) / static_cast<double>(mels + 2);
  for (int64_t i = 0; i < mels + 2; ++i) {
    const double hz = 700.0 * (std::pow(10.0, (static_cast<double>(i) * step + lo_mel) / 2595.0) - 1.0);
    // Clamped far past any spectrum (an upper edge near FLT_MAX overflows pow).
    const double v = std::floor(static_cast<double>(dft + 1) * hz / static_cast<double>(rate));
    bin[i] = static_cast<int64_t>(std::clamp(v, -9.0e15, 9.0e15));
  }
  auto set = [&](int64_t j, int64_t i, double v) {
    if (j < 0 || j >= spec) return;  // a filter edge past the spectrum: nothing to weight
    if (*t == DType::kFloat64) y.mutable_data<double>()[j * mels + i] = v;
    else y.mutable_data<float>()[j * mels + i] = static_cast<float>(v);
  };
  for (int64_t i = 0; i < mels; ++i) {
    const int64_t l = bin[i], c = bin[i + 1], h = bin[i + 2];
    if (c == l) set(c, i, 1.0);
    else
      for (int64_t j = std::max<int64_t>(l, -1); j <= std::min(c, spec); ++j)
        set(j, i, static_cast<double>(j - l) / static_cast<double>(c - l));
    if (h > c)
      for (int64_t j = std::max<int64_t>(c, -1); j < std::min(h, spec + 1); ++j)
        set(j, i, static_cast<double>(h - j) / static_cast<double>(h - c));
  }
  return Status::ok();
}

}  // namespace sarai::kernels
