// See conv_geometry.h: a copy of kernels/conv.cc's attribute logic.
#include "kernels/conv_geometry.h"

#include <algorithm>
#include <string_view>

#include "kernels/util.h"

namespace sarai::kernels::convgeo {
namespace {

std::string ints_str(const Ints& v) { return shape_to_string(v); }

Status overflow(const std::string& what, size_t dim) {
  return Status::error(what + " along spatial dim " + std::to_string(dim) + " overflows 64-bit integers");
}

// The kernels' work and scratch grow as output positions x taps x channels
// (im2col rows, col2im columns): that product must stay a sane element
// count, so no size computed from it can wrap.
Status check_extent(const ConvGeometry& g, int64_t channels, const Shape& x) {
  int64_t n = channels;
  for (const Ints* v : {&g.out, &g.kernel})
    for (int64_t d : *v)
      if (__builtin_mul_overflow(n, d, &n) || n > (int64_t{1} << 40))
        return Status::error("output spatial dims " + ints_str(g.out) + " with kernel " + ints_str(g.kernel) +
                             " and " + std::to_string(channels) + " channels for X " + shape_to_string(x) +
                             " are too large (more than 2^40 multiply-adds per image)");
  return Status::ok();
}

// kernel_shape/strides/dilations/pads (not auto_pad), validated.
Status read_common_attrs(const Node& node, const Shape& x, const Shape& w, ConvGeometry* g) {
  g->nsp = static_cast<int>(x.size()) - 2;
  g->in.assign(x.begin() + 2, x.end());
  Ints w_spatial(w.begin() + 2, w.end());
  const size_t n = static_cast<size_t>(g->nsp);
  g->kernel = attr_ints_or(node, "kernel_shape", w_spatial);
  if (g->kernel != w_spatial)
    return Status::error("kernel_shape " + ints_str(g->kernel) + " does not match W " +
                         shape_to_string(w) + " (spatial dims " + ints_str(w_spatial) + ")");
  g->strides = attr_ints_or(node, "strides", Ints(n, 1));
  g->dilations = attr_ints_or(node, "dilations", Ints(n, 1));
  if (g->strides.size() != n)
    return Status::error("strides " + ints_str(g->strides) + " must have " + std::to_string(n) +
                         " values for input " + shape_to_string(x));
  if (g->dilations.size() != n)
    return Status::error("dilations " + ints_str(g->dilations) + " must have " + std::to_string(n) +
                         " values for input " + shape_to_string(x));
  for (size_t i = 0; i < n; ++i) {
    if (g->kernel[i] < 1)
      return Status::error("kernel_shape " + ints_str(g->kernel) + " must be >= 1");
    if (g->strides[i] < 1)
      return Status::error("strides " + ints_str(g->strides) + " must be >= 1");
    if (g->dilations[i] < 1)
      return Status::error("dilations " + ints_str(g->dilations) + " must be >= 1");
  }
  const Ints pads = attr_ints_or(node, "pads", Ints(2 * n, 0));
  if (pads.size() != 2 * n)
    return Status::error("pads " + ints_str(pads) + " must have " + std::to_string(2 * n) +
                         " values (begin and end per spatial dim) for input " + shape_to_string(x));
  for (int64_t p : pads)
    if (p < 0) return Status::error("pads " + ints_str(pads) + " must be >= 0");
  g->pad_begin.assign(pads.begin(), pads.begin() + static_cast<long>(n));
  g->pad_end.assign(pads.begin() + static_cast<long>(n), pads.end());
  return Status::ok();
}

Expected<std::string_view> read_auto_pad(const Node& node) {
  const std::string_view ap = node.attr_string_view("auto_pad", "NOTSET");
  if (ap != "NOTSET" && ap != "SAME_UPPER" && ap != "SAME_LOWER" && ap != "VALID")
    return Status::error("auto_pad '" + std::string(ap) +
                         "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  return ap;
}

Status check_ranks(const Shape& x, const Shape& w) {
  if (x.size() < 3)
    return Status::error("input X " + shape_to_string(x) + " must have rank >= 3 ([N, C, spatial...])");
  if (w.size() != x.size())
    return Status::error("W " + shape_to_string(w) + " must have the rank of X " + shape_to_string(x));
  for (int64_t d : w)
    if (d < 0) return Status::error("W shape " + shape_to_string(w) + " has a negative dim");
  if (w[0] < 1 || w[1] < 1)
    return Status::error("W " + shape_to_string(w) + " must have at least one channel in dims 0 and 1");
  return Status::ok();
}

}  // namespace

Status resolve_conv(const Node& node, const Shape& x, const Shape& w, int64_t group,
                    ConvGeometry* g) {
  SARAI_RETURN_IF_ERROR(check_ranks(x, w));
  const int64_t c = x[1], m = w[0];
  if (group < 1) return Status::error("group " + std::to_string(group) + " must be >= 1");
  if (c % group != 0)
    return Status::error("input channels " + std::to_string(c) + " of X " + shape_to_string(x) +
                         " are not divisible by group " + std::to_string(group));
  if (w[1] != c / group)
    return Status::error("W " + shape_to_string(w) + " has " + std::to_string(w[1]) +
                         " input channels per group but X " + shape_to_string(x) + " with group " +
                         std::to_string(group) + " needs " + std::to_string(c / group));
  if (m % group != 0)
    return Status::error("output channels " + std::to_string(m) + " of W " + shape_to_string(w) +
                         " are not divisible by group " + std::to_string(group));
  SARAI_RETURN_IF_ERROR(read_common_attrs(node, x, w, g));
  SARAI_ASSIGN_OR_RETURN(const std::string_view auto_pad, read_auto_pad(node));
  g->out.resize(static_cast<size_t>(g->nsp));
  for (size_t i = 0; i < static_cast<size_t>(g->nsp); ++i) {
    int64_t ek;  // dilated kernel extent
    if (!checked_mul_add(g->kernel[i] - 1, g->dilations[i], 1, &ek)) return overflow("the dilated kernel", i);
    const int64_t s = g->strides[i];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      g->out[i] = g->in[i] / s + (g->in[i] % s != 0);
      int64_t reach;
      if (!checked_mul_add(g->out[i] - 1, s, ek, &reach)) return overflow("the padded extent", i);
      const int64_t total = std::max<int64_t>(0, reach - g->in[i]);
      g->pad_begin[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g->pad_end[i] = total - g->pad_begin[i];
    } else {
      if (auto_pad == "VALID") g->pad_begin[i] = g->pad_end[i] = 0;
      int64_t padded;
      if (__builtin_add_overflow(g->in[i], g->pad_begin[i], &padded) ||
          __builtin_add_overflow(padded, g->pad_end[i], &padded))
        return overflow("pads " + ints_str(g->pad_begin) + " + " + ints_str(g->pad_end) + " added to the input", i);
      if (ek > padded)
        return Status::error("kernel " + ints_str(g->kernel) + " with dilations " +
                             ints_str(g->dilations) + " is larger than the padded input " +
                             shape_to_string(x) + " (pads " + ints_str(g->pad_begin) + " + " +
                             ints_str(g->pad_end) + ") along spatial dim " + std::to_string(i));
      g->out[i] = (padded - ek) / s + 1;
    }
  }
  return check_extent(*g, c, x);
}

Status resolve_conv_transpose(const Node& node, const Shape& x, const Shape& w, int64_t group,
                              ConvGeometry* g) {
  SARAI_RETURN_IF_ERROR(check_ranks(x, w));
  const int64_t c = x[1];
  if (group < 1) return Status::error("group " + std::to_string(group) + " must be >= 1");
  if (w[0] != c)
    return Status::error("W " + shape_to_string(w) + " must have " + std::to_string(c) +
                         " input channels (dim 0) to match X " + shape_to_string(x));
  if (c % group != 0)
    return Status::error("input channels " + std::to_string(c) + " of X " + shape_to_string(x) +
                         " are not divisible by group " + std::to_string(group));
  SARAI_RETURN_IF_ERROR(read_common_attrs(node, x, w, g));
  SARAI_ASSIGN_OR_RETURN(const std::string_view auto_pad, read_auto_pad(node));
  const size_t nsp = static_cast<size_t>(g->nsp);
  const Ints out_pad = attr_ints_or(node, "output_padding", Ints(nsp, 0));
  if (out_pad.size() != nsp)
    return Status::error("output_padding " + ints_str(out_pad) + " must have " +
                         std::to_string(nsp) + " values");
  for (int64_t p : out_pad)
    if (p < 0) return Status::error("output_padding " + ints_str(out_pad) + " must be >= 0");
  Ints out_shape_attr = attr_ints_or(node, "output_shape", Ints());
  if (!out_shape_attr.empty()) {
    // Either the spatial dims or the whole shape; keep the spatial dims.
    if (out_shape_attr.size() == nsp + 2)
      out_shape_attr.erase(out_shape_attr.begin(), out_shape_attr.begin() + 2);
    if (out_shape_attr.size() != nsp)
      return Status::error("output_shape " + ints_str(attr_ints_or(node, "output_shape", Ints())) +
                           " must have " + std::to_string(nsp) + " spatial dims for X " +
                           shape_to_string(x));
  }
  g->out.resize(nsp);
  for (size_t i = 0; i < nsp; ++i) {
    int64_t ek, full;
    if (!checked_mul_add(g->kernel[i] - 1, g->dilations[i], 1, &ek)) return overflow("the dilated kernel", i);
    if (!checked_mul_add(g->strides[i], g->in[i] - 1, out_pad[i], &full) || __builtin_add_overflow(full, ek, &full))
      return overflow("the full output extent", i);
    int64_t want = -1;
    if (!out_shape_attr.empty())
      want = out_shape_attr[i];
    else if ((auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") && __builtin_mul_overflow(g->in[i], g->strides[i], &want))
      return overflow("input x stride", i);
    if (want >= 0) {
      // total_padding = full - output_shape (SAME_UPPER puts the smaller half first).
      const int64_t total = full - want;  // both >= 0: no overflow
      if (total < 0)
        g->pad_begin[i] = 0;  // output longer than the data: zeros at the end
      else if (auto_pad == "SAME_UPPER")
        g->pad_begin[i] = total / 2;
      else
        g->pad_begin[i] = total - total / 2;
      g->pad_end[i] = total - g->pad_begin[i];
      g->out[i] = want;
    } else {
      if (auto_pad == "VALID") g->pad_begin[i] = g->pad_end[i] = 0;
      g->out[i] = full - g->pad_begin[i] - g->pad_end[i];  // pads >= 0, full >= 1: no overflow
    }
    if (g->out[i] <= 0)
      return Status::error("output spatial dim " + std::to_string(i) + " would be " +
                           std::to_string(g->out[i]) + " for X " + shape_to_string(x) + ", W " +
                           shape_to_string(w) + ", pads " + ints_str(g->pad_begin) + " + " +
                           ints_str(g->pad_end));
  }
  return check_extent(*g, std::max(c, w[1] * group), x);
}

}  // namespace sarai::kernels::convgeo
