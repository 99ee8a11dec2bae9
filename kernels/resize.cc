// Resize (opsets 10-21): nearest, N-linear and cubic interpolation.
//
// Every output coordinate x along axis d maps back to an input coordinate
// x_ori by coordinate_transformation_mode, with scale = out/in when `sizes`
// is given, else the given scale, and out_len = scale * in (a real number,
// as in the ONNX reference):
//   half_pixel            (x + 0.5) / scale - 0.5
//   half_pixel_symmetric  the same, shifted by (in/2) * (1 - out/out_len)
//   pytorch_half_pixel    as half_pixel, but -0.5 when out_len == 1
//   align_corners         x * (in - 1) / (out_len - 1), 0 when out_len == 1
//   asymmetric            x / scale
//   tf_half_pixel_for_nn  (x + 0.5) / scale (opsets 11-12 only)
//   tf_crop_and_resize    roi_start*(in-1) + x*(roi_end-roi_start)*(in-1)/(out_len-1);
//                         outside [0, in-1] the output is extrapolation_value
// and then takes taps from the input (indices clamped to the edge, which is
// the reference's edge padding):
//   nearest  one tap chosen by nearest_mode (x_ori itself when integral)
//   linear   floor(x_ori) and the next, weights (1-r, r), r = x_ori - floor
//   cubic    floor-1 .. floor+2 with Keys' coefficients for cubic_coeff_a
//            (exclude_outside zeroes taps outside the input and renormalizes)
// Interpolation is separable, so the weight of an N-D tap is the product of
// its per-axis weights; axes that are not resized have a single tap.
//
// Replication path: when every axis's table, whatever the modes that made
// it, takes input floor(x / k) for output x with out = k * in (k = 1: the
// identity), the output is each input row with its elements repeated k
// times, written once and copied to the output rows that repeat it. It is
// chosen from the computed tables, so it copies exactly the bytes the
// general path would. The modes that give such tables, at an integer
// factor k (scales k, or sizes k * in):
//   asymmetric (and opset 10, which samples like it) + floor: x / k
//     rounds to a double whose floor is x / k for any x < 2^53 (the gap
//     to the next integer, >= 1 / k, exceeds half an ulp of x / k);
//   asymmetric + round_prefer_floor at k <= 2 (the frac is 0 or 1/2);
//   half_pixel, pytorch_half_pixel (out > 1), half_pixel_symmetric +
//     round_prefer_floor or round_prefer_ceil: (x + 0.5) / k - 0.5 is q +
//     (r + 0.5) / k - 0.5 for x = q k + r, strictly within 1/2 of q;
//   tf_half_pixel_for_nn + floor: q + (r + 0.5) / k, below q + 1;
// and any mode at k = 1 where the table is the identity. Not: ceil at
// k > 1, asymmetric + round_* at k > 2, half_pixel + floor or ceil (at
// k = 2, outputs 0, 1, 2, 3 map to -0.25, 0.25, 0.75, 1.25: floor takes
// 0 (clamped), 0, 0, 1), align_corners, tf_crop_and_resize, non-integer
// factors, and linear or cubic interpolation (tests/resize_replication_test.cc).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <string_view>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Per-axis lists: inline, no heap allocation per run (up to rank 8).
using Ints = Shape;
using Doubles = SmallVector<double, 8>;

// One axis's sampling table: for each output coordinate, `ntaps` (input
// index, weight) pairs, and whether the coordinate is outside a
// tf_crop_and_resize crop. The arrays live in the kernel's workspace.
struct AxisTaps {
  int ntaps = 1;
  int64_t* index = nullptr;  // [out * ntaps]
  float* weight = nullptr;   // [out * ntaps]
  uint8_t* outside = nullptr;  // [out]
};

// The taps per output coordinate before axis_taps() drops an axis to one.
int max_taps(std::string_view mode) { return mode == "nearest" ? 1 : mode == "linear" ? 2 : 4; }

// One (input offset, weight) combination of the outer axes' taps.
struct Combo {
  int64_t off;
  float w;
};

// Views of attribute strings (or literals): the node outlives the call, and
// no std::string is built (values like "round_prefer_floor" would allocate).
// No output dim past 2^40: far above any image or sequence, far below
// where the size arithmetic could wrap (and a double still holds it exactly).
constexpr double kMaxOutputDim = 1099511627776.0;

struct ResizeParams {
  std::string_view mode = "nearest";
  std::string_view coord = "half_pixel";
  std::string_view nearest_mode = "round_prefer_floor";
  bool opset10_nearest = false;  // opset 10: floor upsampling, ceil downsampling
  double cubic_a = -0.75;
  bool exclude_outside = false;
  float extrapolation = 0.f;
};

// True when the optional input i is present and non-empty (opsets 11-12
// pass "unused" roi/scales as empty tensors).
bool present(const KernelContext& ctx, int i) {
  return ctx.has_input(i) && ctx.input(i).numel() > 0;
}

std::string doubles_str(const Doubles& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v[i]);
    s += (i ? ", " : "") + std::string(buf);
  }
  return s + "]";
}

double source_coordinate(const ResizeParams& p, int64_t x, double scale, int64_t in, int64_t out,
                         double roi_start, double roi_end) {
  const double out_len = scale * static_cast<double>(in);
  const double xd = static_cast<double>(x);
  const std::string_view m = p.coord;
  if (m == "half_pixel") return (xd + 0.5) / scale - 0.5;
  if (m == "half_pixel_symmetric") {
    const double adjustment = static_cast<double>(out) / out_len;
    const double offset = static_cast<double>(in) / 2.0 * (1.0 - adjustment);
    return offset + (xd + 0.5) / scale - 0.5;
  }
  if (m == "pytorch_half_pixel") return out_len == 1.0 ? -0.5 : (xd + 0.5) / scale - 0.5;
  if (m == "align_corners")
    return out_len == 1.0 ? 0.0 : xd * static_cast<double>(in - 1) / (out_len - 1.0);
  if (m == "asymmetric") return xd / scale;
  if (m == "tf_half_pixel_for_nn") return (xd + 0.5) / scale;
  // tf_crop_and_resize
  const double span = (roi_end - roi_start) * static_cast<double>(in - 1);
  const double base = roi_start * static_cast<double>(in - 1);
  if (out_len == 1.0) return base + span / 2.0;
  return base + xd * span / (out_len - 1.0);
}

std::array<double, 4> cubic_coeffs(double r, double a) {
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
          ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
          ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) * ((1 - r) + 1) - 4 * a};
}

// Fills t (its arrays sized for max_taps(p.mode) taps per coordinate).
void axis_taps(const ResizeParams& p, int64_t in, int64_t out, double scale, double roi_start,
               double roi_end, AxisTaps& t) {
  t.ntaps = max_taps(p.mode);
  const size_t nt = static_cast<size_t>(t.ntaps);
  std::fill(t.outside, t.outside + out, uint8_t{0});
  auto clamp = [&](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
  for (int64_t x = 0; x < out; ++x) {
    const double xo = source_coordinate(p, x, scale, in, out, roi_start, roi_end);
    const size_t base = static_cast<size_t>(x) * nt;
    if (p.coord == "tf_crop_and_resize" && (xo < 0 || xo > static_cast<double>(in - 1)))
      t.outside[static_cast<size_t>(x)] = 1;
    const double fl = std::floor(xo);
    const double r = xo - fl;
    const int64_t i0 = static_cast<int64_t>(fl);
    if (p.mode == "nearest") {
      int64_t i = i0;
      if (p.opset10_nearest) {
        i = scale < 1.0 ? static_cast<int64_t>(std::ceil(xo)) : i0;
      } else if (r != 0) {
        const std::string_view nm = p.nearest_mode;
        bool up = nm == "ceil" || (nm == "round_prefer_floor" && r > 0.5) ||
                  (nm == "round_prefer_ceil" && r >= 0.5);
        i = up ? i0 + 1 : i0;
      }
      t.index[base] = clamp(i);
      t.weight[base] = 1.f;
    } else if (p.mode == "linear") {
      t.index[base] = clamp(i0);
      t.index[base + 1] = clamp(i0 + 1);
      t.weight[base] = static_cast<float>(1 - r);
      t.weight[base + 1] = static_cast<float>(r);
    } else {
      // The reference puts an integral x_ori third of its 4 taps with ratio
      // 1; second with ratio 0 gives the same coefficients (0, 1, 0, 0).
      const int64_t start = i0 - 1;
      std::array<double, 4> c = cubic_coeffs(r, p.cubic_a);
      if (p.exclude_outside) {
        double sum = 0;
        for (size_t k = 0; k < 4; ++k) {
          int64_t i = start + static_cast<int64_t>(k);
          if (i < 0 || i >= in) c[k] = 0;
          sum += c[k];
        }
        for (double& v : c) v = sum != 0 ? v / sum : 0;
      }
      for (size_t k = 0; k < 4; ++k) {
        t.index[base + k] = clamp(start + static_cast<int64_t>(k));
        t.weight[base + k] = static_cast<float>(c[k]);
      }
    }
  }
  // An axis where every output takes exactly one input with weight 1 (an
  // axis that is not resized) keeps one tap.
  if (t.ntaps > 1) {
    bool single = true;
    for (int64_t x = 0; x < out && single; ++x) {
      int ones = 0, zeros = 0;
      for (size_t k = 0; k < nt; ++k) {
        float w = t.weight[static_cast<size_t>(x) * nt + k];
        if (w == 1.f) ++ones;
        else if (w == 0.f) ++zeros;
      }
      single = ones == 1 && zeros == t.ntaps - 1;
    }
    if (single) {
      // Compact in place: entry x is written after entries < x were read,
      // and x <= x * nt, the first one it reads.
      for (int64_t x = 0; x < out; ++x) {
        int64_t idx = 0;
        for (size_t k = 0; k < nt; ++k)
          if (t.weight[static_cast<size_t>(x) * nt + k] == 1.f) idx = t.index[static_cast<size_t>(x) * nt + k];
        t.index[x] = idx;
      }
      std::fill(t.weight, t.weight + out, 1.f);
      t.ntaps = 1;
    }
  }
}

Status read_params(const Node& node, int64_t opset, ResizeParams* p) {
  p->mode = node.attr_string_view("mode", "nearest");
  if (p->mode != "nearest" && p->mode != "linear" && p->mode != "cubic")
    return Status::error("mode '" + std::string(p->mode) + "' is not one of nearest, linear, cubic");
  if (opset < 11) {
    if (p->mode == "cubic") return Status::error("mode 'cubic' needs opset 11 or later");
    // Opset 10 samples like Upsample: asymmetric coordinates.
    p->coord = "asymmetric";
    p->opset10_nearest = true;
    return Status::ok();
  }
  p->coord = node.attr_string_view("coordinate_transformation_mode", "half_pixel");
  static const char* kCoords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                  "tf_crop_and_resize"};
  const bool known =
      std::find(std::begin(kCoords), std::end(kCoords), p->coord) != std::end(kCoords) ||
      (p->coord == "half_pixel_symmetric" && opset >= 19) ||
      (p->coord == "tf_half_pixel_for_nn" && opset < 13);
  if (!known)
    return Status::error("coordinate_transformation_mode '" + std::string(p->coord) +
                         "' is not supported at opset " + std::to_string(opset));
  p->nearest_mode = node.attr_string_view("nearest_mode", "round_prefer_floor");
  if (p->nearest_mode != "round_prefer_floor" && p->nearest_mode != "round_prefer_ceil" &&
      p->nearest_mode != "floor" && p->nearest_mode != "ceil")
    return Status::error("nearest_mode '" + std::string(p->nearest_mode) +
                         "' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil");
  p->cubic_a = node.attr_float("cubic_coeff_a", -0.75f);
  p->exclude_outside = node.attr_int("exclude_outside", 0) != 0;
  p->extrapolation = attr_float_of(node, "extrapolation_value", 0.f);
  return Status::ok();
}

std::atomic<bool> g_replication_enabled{true};
thread_local int64_t t_replication_runs = 0;

// Per axis, k when the table takes input x / k for output x (out = k * in),
// else false.
bool replication_factors(const SmallVector<AxisTaps, 8>& taps, const Shape& in, const Shape& out, Ints* k) {
  for (size_t d = 0; d < in.size(); ++d) {
    const AxisTaps& t = taps[d];
    if (t.ntaps != 1 || in[d] <= 0 || out[d] % in[d] != 0) return false;
    const int64_t f = out[d] / in[d];
    for (int64_t x = 0; x < out[d]; ++x)
      if (t.outside[x] != 0 || t.index[x] != x / f) return false;
    k->push_back(f);
  }
  return true;
}

// dst[i * k + j] = src[i] for j < k, elements of type T (a byte copy).
template <class T>
void repeat_elements(const uint8_t* src, uint8_t* dst, int64_t n, int64_t k) {
  const T* s = reinterpret_cast<const T*>(src);
  T* o = reinterpret_cast<T*>(dst);
  if (k == 2) {
    for (int64_t i = 0; i < n; ++i) o[2 * i] = o[2 * i + 1] = s[i];
    return;
  }
  for (int64_t i = 0; i < n; ++i) std::fill(o + i * k, o + (i + 1) * k, s[i]);
}

void expand_row(const uint8_t* src, uint8_t* dst, int64_t n, int64_t k, size_t esize) {
  if (k == 1) {
    std::memcpy(dst, src, static_cast<size_t>(n) * esize);
    return;
  }
  switch (esize) {
    case 1: return repeat_elements<uint8_t>(src, dst, n, k);
    case 2: return repeat_elements<uint16_t>(src, dst, n, k);
    case 4: return repeat_elements<uint32_t>(src, dst, n, k);
    case 8: return repeat_elements<uint64_t>(src, dst, n, k);
    default:
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j)
          std::memcpy(dst + static_cast<size_t>(i * k + j) * esize, src + static_cast<size_t>(i) * esize, esize);
  }
}

// y = x replicated by k per axis: per input row (all axes but the last),
// its expanded row written once into the first output row it maps to,
// then copied to the others (the outer axes' k_d repeats: for NCHW, the k
// rows below it), in parallel over input rows.
void replicate(const uint8_t* px, uint8_t* py, const Shape& in, const Ints& k, size_t esize) {
  const int last = static_cast<int>(in.size()) - 1;
  const int64_t in_last = in[static_cast<size_t>(last)], kl = k[static_cast<size_t>(last)];
  const size_t in_row = static_cast<size_t>(in_last) * esize, out_row = in_row * static_cast<size_t>(kl);
  int64_t in_rows = 1, repeats = 1;
  Ints ostride(static_cast<size_t>(last), 1);  // output rows per step of outer axis d
  for (int d = last - 1; d >= 0; --d) {
    const size_t ud = static_cast<size_t>(d);
    in_rows *= in[ud];
    repeats *= k[ud];
    if (d + 1 < last) ostride[ud] = ostride[ud + 1] * in[ud + 1] * k[ud + 1];
  }
  // Chunks of about 64 KiB of output.
  const int64_t grain = std::max<int64_t>(1, 65536 / static_cast<int64_t>(out_row * static_cast<size_t>(repeats) + 1));
  parallel_for(in_rows, grain, [&](int64_t begin, int64_t end) {
    Ints i(static_cast<size_t>(last), 0), j(static_cast<size_t>(last), 0);
    for (int64_t rem = begin, d = last - 1; d >= 0; --d) {
      i[static_cast<size_t>(d)] = rem % in[static_cast<size_t>(d)];
      rem /= in[static_cast<size_t>(d)];
    }
    for (int64_t r = begin; r < end; ++r) {
      int64_t orow = 0;
      for (int d = 0; d < last; ++d) orow += i[static_cast<size_t>(d)] * k[static_cast<size_t>(d)] * ostride[static_cast<size_t>(d)];
      uint8_t* first = py + static_cast<size_t>(orow) * out_row;
      expand_row(px + static_cast<size_t>(r) * in_row, first, in_last, kl, esize);
      // The other repeats: j counts over [0, k_d) per outer axis, j = 0 done.
      for (int64_t n = 1; n < repeats; ++n) {
        int64_t off = 0;
        for (int d = last - 1; d >= 0; --d) {
          const size_t ud = static_cast<size_t>(d);
          if (++j[ud] < k[ud]) break;
          j[ud] = 0;
        }
        for (int d = 0; d < last; ++d) off += j[static_cast<size_t>(d)] * ostride[static_cast<size_t>(d)];
        std::memcpy(first + static_cast<size_t>(off) * out_row, first, out_row);
      }
      std::fill(j.begin(), j.end(), 0);
      for (int d = last - 1; d >= 0; --d) {
        const size_t ud = static_cast<size_t>(d);
        if (++i[ud] < in[ud]) break;
        i[ud] = 0;
      }
    }
  });
}

}  // namespace

void SetResizeReplication(bool enabled) { g_replication_enabled.store(enabled); }
int64_t ResizeReplicationRuns() { return t_replication_runs; }

// Once per node (the session's Prepare): the mode strings checked and kept
// as views of the node's attributes.
Expected<std::shared_ptr<const void>> PrepareResize(const Node& node, int64_t opset) {
  auto p = std::make_shared<ResizeParams>();
  SARAI_RETURN_IF_ERROR(read_params(node, opset, p.get()));
  return std::shared_ptr<const void>(std::move(p));
}

Status Resize(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input X");
  const Tensor& x = ctx.input(0);
  const Node& node = ctx.node();
  const int64_t opset = ctx.opset();
  const int rank = x.rank();
  if (rank < 1) return Status::error("input X must have rank >= 1, got a scalar");
  SARAI_ASSIGN_OR_RETURN(const ResizeParams* prepared, ctx.prepared<ResizeParams>(PrepareResize));
  const ResizeParams& p = *prepared;
  if (p.mode != "nearest" && x.dtype() != DType::kFloat32)
    return Status::error("mode '" + std::string(p.mode) + "' needs float32 input X, got " +
                         dtype_name(x.dtype()) + " (nearest works for any dtype)");
  if (dtype_size(x.dtype()) == 0)
    return Status::error(std::string("input X has unsupported dtype ") + dtype_name(x.dtype()));

  // Which inputs are where: opset 10 is (X, scales); 11+ is (X, roi, scales, sizes).
  const int scales_in = opset < 11 ? 1 : 2, sizes_in = opset < 11 ? -1 : 3;
  const bool has_scales = present(ctx, scales_in);
  const bool has_sizes = sizes_in > 0 && present(ctx, sizes_in);
  if (has_scales == has_sizes)
    return Status::error(has_scales ? "only one of inputs 'scales' and 'sizes' may be given"
                                    : "one of inputs 'scales' and 'sizes' must be given");

  // The axes the scales/sizes/roi refer to (opset 18 'axes'; all by default).
  Ints axes;
  if (opset >= 18 && node.has_attr("axes")) {
    for (int64_t a : node.attr_ints_view("axes")) {
      SARAI_ASSIGN_OR_RETURN(int ax, normalize_axis(a, rank, "axes"));
      if (std::find(axes.begin(), axes.end(), ax) != axes.end())
        return Status::error("axes " + shape_to_string(attr_ints_or(node, "axes", {})) + " repeats axis " +
                             std::to_string(ax));
      axes.push_back(ax);
    }
  } else {
    for (int d = 0; d < rank; ++d) axes.push_back(d);
  }
  const size_t na = axes.size();

  Doubles scale(static_cast<size_t>(rank), 1.0);
  Shape out = x.shape();
  if (has_scales) {
    const Tensor& s = ctx.input(scales_in);
    if (s.dtype() != DType::kFloat32)
      return Status::error(std::string("input 'scales' must be float32, got ") +
                           dtype_name(s.dtype()));
    if (static_cast<size_t>(s.numel()) != na)
      return Status::error("input 'scales' has " + std::to_string(s.numel()) + " values but X " +
                           shape_to_string(x.shape()) + " needs " + std::to_string(na));
    for (size_t i = 0; i < na; ++i) {
      const double v = s.float_at(static_cast<int64_t>(i));
      if (!(v > 0)) {
        Doubles all;
        for (int64_t j = 0; j < s.numel(); ++j) all.push_back(s.float_at(j));
        return Status::error("scales " + doubles_str(all) + " must all be > 0");
      }
      const size_t d = static_cast<size_t>(axes[i]);
      scale[d] = v;
      const double o = std::floor(v * static_cast<double>(x.shape()[d]));
      if (!(o < kMaxOutputDim))  // also +inf (the check above let +inf through)
        return Status::error("scales value " + std::to_string(v) + " makes output dim " + std::to_string(d) +
                             " of X " + shape_to_string(x.shape()) + " larger than 2^40");
      out[d] = static_cast<int64_t>(o);
    }
  } else {
    const Tensor& s = ctx.input(sizes_in);
    if (s.dtype() != DType::kInt64)
      return Status::error(std::string("input 'sizes' must be int64, got ") +
                           dtype_name(s.dtype()));
    if (static_cast<size_t>(s.numel()) != na)
      return Status::error("input 'sizes' has " + std::to_string(s.numel()) + " values but X " +
                           shape_to_string(x.shape()) + " needs " + std::to_string(na));
    Ints sizes(static_cast<size_t>(na));
    for (size_t i = 0; i < na; ++i) sizes[i] = s.int_at(static_cast<int64_t>(i));
    for (int64_t v : sizes)
      if (v < 0) return Status::error("sizes " + shape_to_string(sizes) + " must be >= 0");
    const std::string_view policy =
        opset >= 18 ? node.attr_string_view("keep_aspect_ratio_policy", "stretch") : "stretch";
    if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
      return Status::error("keep_aspect_ratio_policy '" + std::string(policy) +
                           "' is not one of stretch, not_larger, not_smaller");
    if (policy == "stretch") {
      for (size_t i = 0; i < na; ++i) {
        const size_t d = static_cast<size_t>(axes[i]);
        out[d] = sizes[i];
        scale[d] = x.shape()[d] == 0
                       ? 1.0
                       : static_cast<double>(sizes[i]) / static_cast<double>(x.shape()[d]);
      }
    } else {
      // One scale for all the axes, the one that keeps the result inside
      // (not_larger) or around (not_smaller) the requested box.
      double common = policy == "not_larger" ? INFINITY : 0.0;
      for (size_t i = 0; i < na; ++i) {
        const double in = static_cast<double>(x.shape()[static_cast<size_t>(axes[i])]);
        if (in == 0) continue;
        const double r = static_cast<double>(sizes[i]) / in;
        common = policy == "not_larger" ? std::min(common, r) : std::max(common, r);
      }
      if (!std::isfinite(common)) common = 1.0;
      for (size_t i = 0; i < na; ++i) {
        const size_t d = static_cast<size_t>(axes[i]);
        scale[d] = common;
        const double o = std::floor(common * static_cast<double>(x.shape()[d]) + 0.5);
        if (!(o < kMaxOutputDim))
          return Status::error("sizes " + shape_to_string(sizes) + " with keep_aspect_ratio_policy '" +
                               std::string(policy) + "' make output dim " + std::to_string(d) + " larger than 2^40");
        out[d] = static_cast<int64_t>(o);
      }
    }
  }

  Doubles roi_start(static_cast<size_t>(rank), 0.0), roi_end(static_cast<size_t>(rank), 1.0);
  if (p.coord == "tf_crop_and_resize") {
    if (!present(ctx, 1))
      return Status::error("coordinate_transformation_mode 'tf_crop_and_resize' needs input 'roi'");
    const Tensor& roi = ctx.input(1);
    if (static_cast<size_t>(roi.numel()) != 2 * na)
      return Status::error("input 'roi' has " + std::to_string(roi.numel()) + " values but X " +
                           shape_to_string(x.shape()) + " needs " + std::to_string(2 * na) +
                           " (starts then ends)");
    for (size_t i = 0; i < na; ++i) {
      roi_start[static_cast<size_t>(axes[i])] = roi.float_at(static_cast<int64_t>(i));
      roi_end[static_cast<size_t>(axes[i])] = roi.float_at(static_cast<int64_t>(na + i));
    }
  }

  if (opset >= 18 && node.attr_int("antialias", 0) != 0 && p.mode != "nearest") {
    for (int d = 0; d < rank; ++d)
      if (scale[static_cast<size_t>(d)] < 1.0)
        return Status::error("antialias=1 is not supported when downsampling (mode '" + std::string(p.mode) +
                             "', output " + shape_to_string(out) + " from X " +
                             shape_to_string(x.shape()) + ")");
  }
  for (int d = 0; d < rank; ++d)
    if (x.shape()[static_cast<size_t>(d)] == 0 && out[static_cast<size_t>(d)] > 0)
      return Status::error("cannot resize the empty dim " + std::to_string(d) + " of X " +
                           shape_to_string(x.shape()) + " to " + shape_to_string(out));

  Tensor& y = ctx.allocate_output(0, x.dtype(), out);
  if (y.numel() == 0) return Status::ok();

  // The per-axis tap tables, from the shapes and scales alone (cheap, and
  // needed to size the combinations below), in the workspace.
  const int mt = max_taps(p.mode);
  int64_t entries = 0;
  for (int64_t o : out) entries += o;
  int64_t* index_ws = ctx.workspace<int64_t>(entries * mt);
  float* weight_ws = ctx.workspace<float>(entries * mt);
  uint8_t* outside_ws = ctx.workspace<uint8_t>(entries);
  SmallVector<AxisTaps, 8> taps(static_cast<size_t>(rank));
  for (int d = 0, at = 0; d < rank; at += static_cast<int>(out[static_cast<size_t>(d)]), ++d) {
    const size_t ud = static_cast<size_t>(d);
    AxisTaps& t = taps[ud];
    t.index = index_ws + static_cast<int64_t>(at) * mt;
    t.weight = weight_ws + static_cast<int64_t>(at) * mt;
    t.outside = outside_ws + at;
    axis_taps(p, x.shape()[ud], out[ud], scale[ud], roi_start[ud], roi_end[ud], t);
  }
  const int last = rank - 1;
  // Per thread: two buffers of the outer axes' tap combinations.
  int64_t max_combos = 1;
  for (int d = 0; d < last; ++d) max_combos *= taps[static_cast<size_t>(d)].ntaps;
  Combo* combo_ws = ctx.workspace<Combo>(2 * max_combos * thread_slots(ctx));
  if (ctx.skip_compute(y)) return Status::ok();

  if (p.mode == "nearest" && g_replication_enabled.load(std::memory_order_relaxed)) {
    Ints k;
    if (replication_factors(taps, x.shape(), out, &k)) {
      ++t_replication_runs;
      replicate(static_cast<const uint8_t*>(x.raw()), static_cast<uint8_t*>(y.mutable_raw()), x.shape(), k,
                dtype_size(x.dtype()));
      return Status::ok();
    }
  }

  Ints in_strides(static_cast<size_t>(rank), 1);
  for (int d = rank - 1; d > 0; --d)
    in_strides[static_cast<size_t>(d - 1)] =
        in_strides[static_cast<size_t>(d)] * x.shape()[static_cast<size_t>(d)];

  const int64_t out_last = out[static_cast<size_t>(last)];
  const int64_t rows = y.numel() / out_last;
  const AxisTaps& lt = taps[static_cast<size_t>(last)];
  const size_t lnt = static_cast<size_t>(lt.ntaps);
  const int64_t lstride = in_strides[static_cast<size_t>(last)];
  const size_t esize = dtype_size(x.dtype());
  const auto* px = static_cast<const uint8_t*>(x.raw());
  auto* py = static_cast<uint8_t*>(y.mutable_raw());
  // Nearest copies its one tap's bytes whatever the dtype (as the
  // replication path does: 0 + 1 * 1 * -0.f would give +0.f).
  const bool copy_tap = x.dtype() != DType::kFloat32 || p.mode == "nearest";
  // extrapolation_value as one element of X's dtype, for nearest on non-float data.
  uint8_t extrapolated[8] = {};  // esize <= 8
  {
    const double e = p.extrapolation;
    auto put = [&](auto v) { std::memcpy(extrapolated, &v, sizeof v); };
    switch (x.dtype()) {
      case DType::kFloat64:
        put(e);
        break;
      case DType::kFloat32:
        put(p.extrapolation);
        break;
      case DType::kInt64:
        put(static_cast<int64_t>(e));
        break;
      case DType::kInt32:
        put(static_cast<int32_t>(e));
        break;
      case DType::kInt8:
        put(static_cast<int8_t>(e));
        break;
      case DType::kUInt8:
        put(static_cast<uint8_t>(e));
        break;
      case DType::kFloat16:
        put(float_to_half(static_cast<float>(e)));
        break;
      default:
        break;  // zeros
    }
  }

  parallel_for(rows, 4, [&](int64_t begin, int64_t end) {
    // The (input offset, weight) combinations of the outer axes for one row.
    Combo* combos = combo_ws + thread_index() * 2 * max_combos;
    Combo* next = combos + max_combos;
    int64_t ncombos = 0;
    Ints o(static_cast<size_t>(last));
    for (int64_t row = begin; row < end; ++row) {
      int64_t rem = row;
      for (int d = last - 1; d >= 0; --d) {
        o[static_cast<size_t>(d)] = rem % out[static_cast<size_t>(d)];
        rem /= out[static_cast<size_t>(d)];
      }
      bool outside = false;
      combos[0] = {0, 1.f};
      ncombos = 1;
      for (int d = 0; d < last; ++d) {
        const AxisTaps& t = taps[static_cast<size_t>(d)];
        const size_t od = static_cast<size_t>(o[static_cast<size_t>(d)]);
        outside = outside || t.outside[od];
        int64_t nn = 0;
        for (int64_t c = 0; c < ncombos; ++c)
          for (size_t k = 0; k < static_cast<size_t>(t.ntaps); ++k)
            next[nn++] = {combos[c].off + t.index[od * static_cast<size_t>(t.ntaps) + k] *
                                              in_strides[static_cast<size_t>(d)],
                          combos[c].w * t.weight[od * static_cast<size_t>(t.ntaps) + k]};
        std::swap(combos, next);
        ncombos = nn;
      }
      uint8_t* dst = py + static_cast<size_t>(row * out_last) * esize;
      if (copy_tap) {
        // Nearest on any dtype: a byte copy of the one tap.
        for (int64_t xl = 0; xl < out_last; ++xl) {
          if (outside || lt.outside[static_cast<size_t>(xl)]) {
            std::memcpy(dst + static_cast<size_t>(xl) * esize, extrapolated, esize);
            continue;
          }
          const int64_t off = combos[0].off + lt.index[static_cast<size_t>(xl)] * lstride;
          std::memcpy(dst + static_cast<size_t>(xl) * esize, px + static_cast<size_t>(off) * esize,
                      esize);
        }
        continue;
      }
      const float* src = reinterpret_cast<const float*>(px);
      float* yf = reinterpret_cast<float*>(dst);
      for (int64_t xl = 0; xl < out_last; ++xl) {
        if (outside || lt.outside[static_cast<size_t>(xl)]) {
          yf[xl] = p.extrapolation;
          continue;
        }
        float acc = 0.f;
        for (size_t k = 0; k < lnt; ++k) {
          const int64_t loff = lt.index[static_cast<size_t>(xl) * lnt + k] * lstride;
          const float lw = lt.weight[static_cast<size_t>(xl) * lnt + k];
          for (int64_t c = 0; c < ncombos; ++c) acc += combos[c].w * lw * src[combos[c].off + loff];
        }
        yf[xl] = acc;
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
