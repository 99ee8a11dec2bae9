// NonMaxSuppression (opset 10+): greedy per-class selection of boxes.
//
// For each batch b and class c, the boxes whose score passes
// score_threshold (strictly greater) are taken by descending score (equal
// scores: lower index first); a box is kept unless its IoU with a box kept
// before is greater than iou_threshold, until max_output_boxes_per_class are
// kept. The output lists [b, c, box] rows in batch, class, selection order.
#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/kernels.h"
#include "kernels/util.h"

namespace sarai::kernels {
namespace {

struct Box {
  float y1, x1, y2, x2;  // y1 <= y2, x1 <= x2
};

Box corners(const float* b, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    const float hw = b[2] / 2, hh = b[3] / 2;
    return {b[1] - hh, b[0] - hw, b[1] + hh, b[0] + hw};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

// Whether IoU(a, b) > threshold; boxes without area never suppress.
bool suppresses(const Box& a, const Box& b, float threshold) {
  const float area_a = (a.y2 - a.y1) * (a.x2 - a.x1), area_b = (b.y2 - b.y1) * (b.x2 - b.x1);
  if (!(area_a > 0) || !(area_b > 0)) return false;
  const float ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  const float iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (!(ih > 0) || !(iw > 0)) return false;
  const float inter = ih * iw;
  return inter / (area_a + area_b - inter) > threshold;
}

// A scalar (or 1-element) optional input, else `def`.
template <class T>
Expected<T> scalar_input(const KernelContext& ctx, int i, const char* name, DType dt, T def) {
  if (!ctx.has_input(i)) return def;
  const Tensor& t = ctx.input(i);
  if (t.dtype() != dt || t.numel() != 1)
    return Status::error(std::string("input '") + name + "' must be a 1-element " + dtype_name(dt) + " tensor, got " +
                         dtype_name(t.dtype()) + " " + shape_to_string(t.shape()));
  return t.data<T>()[0];
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareNonMaxSuppression(const Node& node, int64_t /*opset*/) {
  SARAI_ASSIGN_OR_RETURN(const bool center, attr_flag(node, "center_point_box", false));
  return prepared_data(center);
}

Status NonMaxSuppression(KernelContext& ctx) {
  if (!ctx.has_input(0)) return Status::error("missing required input 'boxes' (input 0)");
  if (!ctx.has_input(1)) return Status::error("missing required input 'scores' (input 1)");
  SARAI_ASSIGN_OR_RETURN(const bool* center_p, ctx.prepared<bool>(PrepareNonMaxSuppression));
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.dtype() != DType::kFloat32 || scores.dtype() != DType::kFloat32)
    return Status::error(std::string("inputs 'boxes' and 'scores' must be float32, got ") + dtype_name(boxes.dtype()) +
                         " and " + dtype_name(scores.dtype()));
  if (boxes.rank() != 3 || boxes.dim(2) != 4)
    return Status::error("input 'boxes' must be [batches, boxes, 4], got " + shape_to_string(boxes.shape()));
  const int64_t B = boxes.dim(0), N = boxes.dim(1);
  if (scores.rank() != 3 || scores.dim(0) != B || scores.dim(2) != N)
    return Status::error("input 'scores' must be [" + std::to_string(B) + ", classes, " + std::to_string(N) +
                         "] (boxes " + shape_to_string(boxes.shape()) + "), got " + shape_to_string(scores.shape()));
  const int64_t C = scores.dim(1);
  SARAI_ASSIGN_OR_RETURN(const int64_t max_out,
                         scalar_input<int64_t>(ctx, 2, "max_output_boxes_per_class", DType::kInt64, int64_t{0}));
  SARAI_ASSIGN_OR_RETURN(const float iou_threshold, scalar_input<float>(ctx, 3, "iou_threshold", DType::kFloat32, 0.f));
  const bool has_score_threshold = ctx.has_input(4);
  SARAI_ASSIGN_OR_RETURN(const float score_threshold,
                         scalar_input<float>(ctx, 4, "score_threshold", DType::kFloat32, 0.f));

  // The selections go to a workspace (at most min(N, max_out) per class),
  // then to the output, whose size is only known at the end.
  const int64_t per_class = std::min(N, std::max<int64_t>(max_out, 0));
  int64_t* selected = ctx.workspace<int64_t>(B * C * per_class * 3);
  int64_t* order = ctx.workspace<int64_t>(N);
  int64_t* kept = ctx.workspace<int64_t>(per_class);
  int64_t nsel = 0;
  const float* pb = boxes.data<float>();
  const float* ps = scores.data<float>();
  const bool center = *center_p;
  for (int64_t b = 0; b < B && per_class > 0; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const float* s = ps + (b * C + c) * N;
      int64_t n = 0;
      for (int64_t i = 0; i < N; ++i)
        if (!has_score_threshold || s[i] > score_threshold) order[n++] = i;
      std::stable_sort(order, order + n, [&](int64_t i, int64_t j) { return s[i] > s[j]; });
      int64_t nkept = 0;
      for (int64_t o = 0; o < n && nkept < per_class; ++o) {
        const int64_t i = order[o];
        const Box bi = corners(pb + (b * N + i) * 4, center);
        bool drop = false;
        for (int64_t k = 0; k < nkept && !drop; ++k)
          drop = suppresses(corners(pb + (b * N + kept[k]) * 4, center), bi, iou_threshold);
        if (drop) continue;
        kept[nkept++] = i;
        selected[nsel * 3] = b;
        selected[nsel * 3 + 1] = c;
        selected[nsel * 3 + 2] = i;
        ++nsel;
      }
    }
  Tensor& y = ctx.allocate_output(0, DType::kInt64, Shape{nsel, 3});
  std::copy(selected, selected + nsel * 3, y.mutable_data<int64_t>());
  return Status::ok();
}

}  // namespace sarai::kernels
