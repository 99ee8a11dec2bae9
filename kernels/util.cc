#include "kernels/util.h"

#include <algorithm>

namespace sarai::kernels {

Expected<int> normalize_axis(int64_t axis, int rank, const char* what) {
  if (axis < -rank || axis >= rank)
    return Status::error(std::string(what) + " " + std::to_string(axis) +
                         " is out of range for rank " + std::to_string(rank));
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

Expected<bool> attr_flag(const Node& node, std::string_view name, bool def) {
  const Attribute* a = node.find_attr(name);
  if (a == nullptr) return def;
  if (a->i != 0 && a->i != 1)
    return Status::error("attribute '" + std::string(name) + "' must be 0 or 1, got " + std::to_string(a->i));
  return a->i == 1;
}

Expected<Shape> int_list_input(const KernelContext& ctx, int i, const char* what) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32)
    return Status::error(std::string("input '") + what + "' must be int64 or int32, got " +
                         dtype_name(t.dtype()));
  if (t.rank() > 1)
    return Status::error(std::string("input '") + what + "' must be 1-D, got shape " +
                         shape_to_string(t.shape()));
  Shape v(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) v[static_cast<size_t>(k)] = t.int_at(k);
  return v;
}

Expected<Shape> broadcast_shapes(std::span<const Shape> shapes) {
  size_t rank = 0;
  for (const Shape& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const Shape& s : shapes) {
    size_t off = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[off + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) { o = d; continue; }
      std::string all;
      for (const Shape& t : shapes) all += (all.empty() ? "" : " and ") + shape_to_string(t);
      return Status::error("shapes " + all + " cannot be broadcast together");
    }
  }
  return out;
}

Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape strides(out.size(), 0);
  int64_t stride = 1;
  for (size_t i = in.size(); i-- > 0;) {
    size_t o = out.size() - in.size() + i;
    strides[o] = in[i] == 1 ? 0 : stride;
    stride *= in[i];
  }
  return strides;
}

}  // namespace sarai::kernels
