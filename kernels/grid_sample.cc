// GridSample (opset 16, 4-D): X [N, C, H, W] sampled at grid [N, Ho, Wo, 2]
// (x then y, normalized to [-1, 1]) -> [N, C, Ho, Wo], float32.
//
// mode bilinear / nearest (halves to even) / bicubic (A = -0.75);
// padding_mode zeros (taps outside read 0) / border (coordinates clamped) /
// reflection (coordinates reflected at the borders); align_corners maps
// -1 and 1 to the centers (1) or the outer edges (0) of the corner pixels.
// Bilinear and nearest pad the sampling coordinate; bicubic pads each of its
// 16 taps, as PyTorch's grid_sample (the reference of ONNX's test data).
#include <cmath>
#include <string>

#include "kernels/kernels.h"
#include "kernels/util.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

enum class Mode { kBilinear, kNearest, kBicubic };
enum class Pad { kZeros, kBorder, kReflection };

struct GridSampleParams {
  Mode mode = Mode::kBilinear;
  Pad pad = Pad::kZeros;
  bool align_corners = false;
};

double unnormalize(double c, int64_t size, bool align) {
  return align ? (c + 1) / 2 * static_cast<double>(size - 1) : ((c + 1) * static_cast<double>(size) - 1) / 2;
}

// Reflects c into [lo2 / 2, hi2 / 2] (lo2, hi2: twice the bounds).
double reflect(double c, double lo2, double hi2) {
  if (lo2 == hi2) return 0;
  const double mn = lo2 / 2, span = (hi2 - lo2) / 2;
  c = std::fabs(c - mn);
  const double extra = std::fmod(c, span);
  const double flips = std::floor(c / span);
  return std::fmod(flips, 2) == 0 ? extra + mn : span - extra + mn;
}

double clampd(double v, double lo, double hi) { return v < lo ? lo : (v > hi ? hi : v); }

// The padding of a coordinate (border, reflection); zeros leaves it.
double pad_coord(double c, int64_t size, Pad pad, bool align) {
  const double hi = static_cast<double>(size - 1);
  if (pad == Pad::kBorder) return clampd(c, 0, hi);
  if (pad == Pad::kReflection) {
    c = align ? reflect(c, 0, 2 * hi) : reflect(c, -1, 2 * static_cast<double>(size) - 1);
    return clampd(c, 0, hi);
  }
  return c;
}

// The pixel at integer (y, x) of one [H, W] plane, 0 outside.
float at(const float* plane, int64_t H, int64_t W, int64_t y, int64_t x) {
  return (y >= 0 && y < H && x >= 0 && x < W) ? plane[y * W + x] : 0.f;
}

// A coordinate as an index; far outside (or NaN) maps to -2 (outside).
int64_t index_of(double v) { return (v > -1e15 && v < 1e15) ? static_cast<int64_t>(v) : -2; }

double cubic1(double x) { constexpr double A = -0.75; return ((A + 2) * x - (A + 3)) * x * x + 1; }
double cubic2(double x) { constexpr double A = -0.75; return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }

}  // namespace

Expected<std::shared_ptr<const void>> PrepareGridSample(const Node& node, int64_t /*opset*/) {
  GridSampleParams p;
  const std::string_view mode = node.attr_string_view("mode", "bilinear");
  if (mode == "bilinear") p.mode = Mode::kBilinear;
  else if (mode == "nearest") p.mode = Mode::kNearest;
  else if (mode == "bicubic") p.mode = Mode::kBicubic;
  else return Status::error("attribute 'mode' must be \"bilinear\", \"nearest\" or \"bicubic\", got \"" + std::string(mode) + "\"");
  const std::string_view pad = node.attr_string_view("padding_mode", "zeros");
  if (pad == "zeros") p.pad = Pad::kZeros;
  else if (pad == "border") p.pad = Pad::kBorder;
  else if (pad == "reflection") p.pad = Pad::kReflection;
  else return Status::error("attribute 'padding_mode' must be \"zeros\", \"border\" or \"reflection\", got \"" + std::string(pad) + "\"");
  SARAI_ASSIGN_OR_RETURN(p.align_corners, attr_flag(node, "align_corners", false));
  return prepared_data(p);
}

Status GridSample(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'X' (input 0)");
  if (!ctx.has_input(1)) return Status::error("missing required input 'grid' (input 1)");
  SARAI_ASSIGN_OR_RETURN(const GridSampleParams* p, ctx.prepared<GridSampleParams>(PrepareGridSample));
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  if (x.dtype() != DType::kFloat32 || grid.dtype() != DType::kFloat32)
    return Status::error(std::string("inputs 'X' and 'grid' must be float32, got ") + dtype_name(x.dtype()) + " and " +
                         dtype_name(grid.dtype()));
  if (x.rank() != 4) return Status::error("input 'X' must be [N, C, H, W], got " + shape_to_string(x.shape()));
  if (grid.rank() != 4 || grid.dim(0) != x.dim(0) || grid.dim(3) != 2)
    return Status::error("input 'grid' must be [" + std::to_string(x.dim(0)) + ", H_out, W_out, 2], got " +
                         shape_to_string(grid.shape()));
  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3), Ho = grid.dim(1), Wo = grid.dim(2);
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, Shape{N, C, Ho, Wo});
  if (ctx.skip_compute(y) || y.numel() == 0) return Status::ok();
  const float* px = x.data<float>();
  const float* pg = grid.data<float>();
  float* py = y.mutable_data<float>();
  const GridSampleParams q = *p;
  const bool empty_plane = H == 0 || W == 0;
  parallel_for(N * Ho * Wo, 1024, [&](int64_t b, int64_t e) {
    for (int64_t w = b; w < e; ++w) {
      const int64_t n = w / (Ho * Wo), o = w % (Ho * Wo);
      const double gx = unnormalize(pg[w * 2], W, q.align_corners);
      const double gy = unnormalize(pg[w * 2 + 1], H, q.align_corners);
      for (int64_t c = 0; c < C; ++c) {
        const float* plane = px + (n * C + c) * H * W;
        double v = 0;
        if (empty_plane) {
          v = 0;
        } else if (q.mode == Mode::kBicubic) {
          const double fx = std::floor(gx), fy = std::floor(gy);
          const double tx = gx - fx, ty = gy - fy;
          const double cx[4] = {cubic2(tx + 1), cubic1(tx), cubic1(1 - tx), cubic2(2 - tx)};
          const double cy[4] = {cubic2(ty + 1), cubic1(ty), cubic1(1 - ty), cubic2(2 - ty)};
          for (int j = 0; j < 4; ++j) {
            double row = 0;
            for (int i = 0; i < 4; ++i) {
              const double tapx = pad_coord(fx - 1 + i, W, q.pad, q.align_corners);
              const double tapy = pad_coord(fy - 1 + j, H, q.pad, q.align_corners);
              row += cx[i] * at(plane, H, W, index_of(tapy), index_of(tapx));
            }
            v += cy[j] * row;
          }
        } else {
          const double ix = pad_coord(gx, W, q.pad, q.align_corners);
          const double iy = pad_coord(gy, H, q.pad, q.align_corners);
          if (q.mode == Mode::kNearest) {
            const double rx = std::nearbyint(ix), ry = std::nearbyint(iy);
            v = at(plane, H, W, index_of(ry), index_of(rx));
          } else if (index_of(ix) != -2 && index_of(iy) != -2) {
            const double x0 = std::floor(ix), y0 = std::floor(iy);
            const double ax = ix - x0, ay = iy - y0;
            const int64_t xi = static_cast<int64_t>(x0), yi = static_cast<int64_t>(y0);
            v = (1 - ay) * ((1 - ax) * at(plane, H, W, yi, xi) + ax * at(plane, H, W, yi, xi + 1)) +
                ay * ((1 - ax) * at(plane, H, W, yi + 1, xi) + ax * at(plane, H, W, yi + 1, xi + 1));
          }
        }
        py[(n * C + c) * Ho * Wo + o] = static_cast<float>(v);
      }
    }
  });
  return Status::ok();
}

}  // namespace sarai::kernels
