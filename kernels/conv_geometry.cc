// See conv_geometry.h.
#include "kernels/conv_geometry.h"

#include <algorithm>
#include <cassert>
#include <string_view>

#include "kernels/util.h"

namespace sarai::kernels::convgeo {
namespace {

std::string ints_str(const Ints& v) { return shape_to_string(v); }
std::string str(int64_t v) { return std::to_string(v); }

// The kernels' work and scratch grow as positions x taps x channels (im2col
// rows over the output positions, ConvTranspose's col matrix over the
// input ones): that product must stay a sane element count, so no size
// computed from it can wrap.
Status check_extent(const char* what, const Ints& positions, const ConvGeometry& g, int64_t channels,
                    const Shape& x) {
  int64_t n = channels;
  for (const Ints* v : {&positions, &g.kernel})
    for (int64_t d : *v)
      if (__builtin_mul_overflow(n, d, &n) || n > (int64_t{1} << 40))
        return Status::error(std::string(what) + " spatial dims " + ints_str(positions) + " with kernel " +
                             ints_str(g.kernel) + " and " + str(channels) + " channels for X " + shape_to_string(x) +
                             " are too large (more than 2^40 multiply-adds per image)");
  return Status::ok();
}

// One ints attribute: empty when absent; present but empty is an error
// (every op here has at least one spatial dim).
Status read_list(const Node& node, const char* name, Ints* v) {
  const Attribute* a = node.find_attr(name);
  if (a == nullptr) return Status::ok();
  if (a->ints.empty()) return Status::error(std::string(name) + " [] is empty; it needs values per spatial dim");
  v->assign(a->ints.begin(), a->ints.end());
  return Status::ok();
}

Status check_at_least(const char* name, const Ints& v, int64_t min) {
  for (int64_t d : v)
    if (d < min) return Status::error(std::string(name) + " " + ints_str(v) + " must be >= " + str(min));
  return Status::ok();
}

// The spatial rank the node's lists imply before any input is seen: the
// first list given sets it, every later one must agree.
class ListRank {
 public:
  // `per_dim` values per spatial dim: 2 for pads (begin and end).
  Status add(const char* name, const Ints& v, size_t per_dim) {
    if (v.empty()) return Status::ok();
    if (v.size() % per_dim != 0)
      return Status::error(std::string(name) + " " + ints_str(v) +
                           " must have an even number of values (begin and end per spatial dim)");
    if (name_ == nullptr) {
      name_ = name;
      list_ = &v;
      n_ = v.size() / per_dim;
    } else if (v.size() != n_ * per_dim) {
      return Status::error(std::string(name) + " " + ints_str(v) + " must have " + str(static_cast<int64_t>(n_ * per_dim)) +
                           " values (" + (per_dim == 2 ? "begin and end" : "one") + " per spatial dim of " + name_ +
                           " " + ints_str(*list_) + ")");
    }
    return Status::ok();
  }
  bool known() const { return name_ != nullptr; }
  size_t n() const { return n_; }

 private:
  const char* name_ = nullptr;
  const Ints* list_ = nullptr;
  size_t n_ = 0;
};

Ints or_default(const Ints& v, size_t n, int64_t def) { return v.empty() ? Ints(n, def) : v; }

// ONNX Runtime's (and PyTorch's) rule: output_padding extends the output
// by less than one stride (or dilation) step; more would add positions no
// input reaches. `strides` and `dilations` have output_padding's length.
Status check_output_padding(const Ints& out_pad, const Ints& strides, const Ints& dilations) {
  for (size_t i = 0; i < out_pad.size(); ++i)
    if (out_pad[i] >= std::max(strides[i], dilations[i]))
      return Status::error("output_padding " + ints_str(out_pad) + " is " + str(out_pad[i]) + " along spatial dim " +
                           str(static_cast<int64_t>(i)) + "; it must be smaller than the stride " + str(strides[i]) +
                           " or the dilation " + str(dilations[i]) + " there");
  return Status::ok();
}

// output_shape's spatial dims from index `first` on must be >= 1.
Status check_output_shape(const Ints& os, size_t first) {
  for (size_t i = first; i < os.size(); ++i)
    if (os[i] < 1) return Status::error("output_shape " + ints_str(os) + " must have spatial dims >= 1");
  return Status::ok();
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

Status check_group(int64_t group) {
  if (group < 1) return Status::error("group " + str(group) + " must be >= 1");
  return Status::ok();
}

// g->kernel: kernel_shape when set (it must match W), else W's spatial dims.
Status kernel_from_w(const Ints& kernel_attr, const Shape& w, ConvGeometry* g) {
  const Ints w_spatial(w.begin() + 2, w.end());
  if (kernel_attr.empty()) {
    for (int64_t d : w_spatial)
      if (d < 1)
        return Status::error("W " + shape_to_string(w) + " has an empty kernel (spatial dims " + ints_str(w_spatial) +
                             "); they must be >= 1");
    g->kernel = w_spatial;
  } else if (kernel_attr != w_spatial) {
    return Status::error("kernel_shape " + ints_str(kernel_attr) + " does not match W " + shape_to_string(w) +
                         " (spatial dims " + ints_str(w_spatial) + ")");
  }
  return Status::ok();
}

// read_window_attrs, also telling the rank the lists imply (`rank` views
// a's lists).
Status read_window(const Node& node, WindowAttrs* a, ListRank* rank) {
  SARAI_RETURN_IF_ERROR(read_list(node, "kernel_shape", &a->kernel));
  SARAI_RETURN_IF_ERROR(read_list(node, "strides", &a->strides));
  SARAI_RETURN_IF_ERROR(read_list(node, "dilations", &a->dilations));
  SARAI_RETURN_IF_ERROR(read_list(node, "pads", &a->pads));
  SARAI_RETURN_IF_ERROR(rank->add("kernel_shape", a->kernel, 1));
  SARAI_RETURN_IF_ERROR(rank->add("strides", a->strides, 1));
  SARAI_RETURN_IF_ERROR(rank->add("dilations", a->dilations, 1));
  SARAI_RETURN_IF_ERROR(rank->add("pads", a->pads, 2));
  SARAI_RETURN_IF_ERROR(check_at_least("kernel_shape", a->kernel, 1));
  // The pools count a window's taps (AveragePool's count_include_pad
  // divisor) as the product of the kernel dims.
  if (!checked_numel(a->kernel).has_value())
    return Status::error("kernel_shape " + ints_str(a->kernel) + " has more taps than 64-bit integers count");
  SARAI_RETURN_IF_ERROR(check_at_least("strides", a->strides, 1));
  SARAI_RETURN_IF_ERROR(check_at_least("dilations", a->dilations, 1));
  SARAI_RETURN_IF_ERROR(check_at_least("pads", a->pads, 0));
  const std::string_view ap = node.attr_string_view("auto_pad", "NOTSET");
  if (ap == "NOTSET") a->auto_pad = AutoPad::kNotSet;
  else if (ap == "SAME_UPPER") a->auto_pad = AutoPad::kSameUpper;
  else if (ap == "SAME_LOWER") a->auto_pad = AutoPad::kSameLower;
  else if (ap == "VALID") a->auto_pad = AutoPad::kValid;
  else
    return Status::error("auto_pad '" + std::string(ap) + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
  return Status::ok();
}

}  // namespace

Status read_window_attrs(const Node& node, WindowAttrs* a) {
  ListRank rank;
  return read_window(node, a, &rank);
}

Status read_conv_attrs(const Node& node, bool transpose, ConvAttrs* a) {
  ListRank rank;
  SARAI_RETURN_IF_ERROR(read_window(node, &a->window, &rank));
  a->group = node.attr_int("group", 1);
  SARAI_RETURN_IF_ERROR(check_group(a->group));
  if (!transpose) return Status::ok();
  SARAI_RETURN_IF_ERROR(read_list(node, "output_padding", &a->output_padding));
  SARAI_RETURN_IF_ERROR(check_at_least("output_padding", a->output_padding, 0));
  // An empty output_shape means none (as ONNX Runtime reads it).
  a->output_shape = attr_ints_or(node, "output_shape", Ints());
  // output_padding must agree with the rank the window lists imply, but
  // does not set it alone: with no strides its values would be checked
  // against the default stride 1 before its length is (at run, against X).
  const WindowAttrs& w = a->window;
  if (rank.known()) SARAI_RETURN_IF_ERROR(rank.add("output_padding", a->output_padding, 1));
  if (!rank.known()) {
    // output_shape is [spatial...] or [N, C, spatial...]: past its first
    // two values (or all of one or two), every value is a spatial dim.
    return check_output_shape(a->output_shape, a->output_shape.size() > 2 ? 2 : 0);
  }
  const size_t n = rank.n();
  SARAI_RETURN_IF_ERROR(check_output_padding(a->output_padding, or_default(w.strides, n, 1), or_default(w.dilations, n, 1)));
  const size_t os = a->output_shape.size();
  if (os != 0 && os != n && os != n + 2)
    return Status::error("output_shape " + ints_str(a->output_shape) + " must have " + str(static_cast<int64_t>(n)) +
                         " spatial dims (or " + str(static_cast<int64_t>(n + 2)) + " values with N and C), as the " +
                         "other lists have");
  return check_output_shape(a->output_shape, os - std::min(os, n));
}

Status resolve_window(const WindowAttrs& a, const Shape& x, ConvGeometry* g) {
  assert(x.size() >= 3);
  const size_t n = x.size() - 2;
  g->nsp = static_cast<int>(n);
  g->in.assign(x.begin() + 2, x.end());
  auto wrong_length = [&](const char* name, const Ints& v, size_t want, const char* what) {
    return Status::error(std::string(name) + " " + ints_str(v) + " must have " + str(static_cast<int64_t>(want)) +
                         " values" + what + " for input " + shape_to_string(x));
  };
  if (!a.kernel.empty() && a.kernel.size() != n) return wrong_length("kernel_shape", a.kernel, n, "");
  g->kernel = a.kernel;
  g->strides = or_default(a.strides, n, 1);
  g->dilations = or_default(a.dilations, n, 1);
  if (g->strides.size() != n) return wrong_length("strides", g->strides, n, "");
  if (g->dilations.size() != n) return wrong_length("dilations", g->dilations, n, "");
  const Ints pads = or_default(a.pads, 2 * n, 0);
  if (pads.size() != 2 * n) return wrong_length("pads", pads, 2 * n, " (begin and end per spatial dim)");
  g->pad_begin.assign(pads.begin(), pads.begin() + static_cast<long>(n));
  g->pad_end.assign(pads.begin() + static_cast<long>(n), pads.end());
  return Status::ok();
}

Status forward_extents(AutoPad auto_pad, bool ceil_mode, const Shape& x, ConvGeometry* g) {
  const size_t n = static_cast<size_t>(g->nsp);
  g->out.resize(n);
  // Every extent in checked int64 arithmetic: hostile kernel_shape,
  // dilations or pads must fail here, not wrap into a small shape.
  auto overflow = [&](const char* what, size_t i) {
    return Status::error(std::string(what) + " along spatial dim " + str(static_cast<int64_t>(i)) +
                         " overflows 64-bit integers (kernel_shape " + ints_str(g->kernel) + ", dilations " +
                         ints_str(g->dilations) + ", pads " + ints_str(g->pad_begin) + " + " + ints_str(g->pad_end) + ")");
  };
  for (size_t i = 0; i < n; ++i) {
    int64_t ek;  // dilated kernel extent
    if (!checked_mul_add(g->kernel[i] - 1, g->dilations[i], 1, &ek)) return overflow("the dilated kernel", i);
    const int64_t s = g->strides[i];
    if (auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower) {
      g->out[i] = g->in[i] / s + (g->in[i] % s != 0);
      int64_t reach;
      if (!checked_mul_add(g->out[i] - 1, s, ek, &reach)) return overflow("the padded extent", i);
      const int64_t total = std::max<int64_t>(0, reach - g->in[i]);
      g->pad_begin[i] = auto_pad == AutoPad::kSameUpper ? total / 2 : total - total / 2;
      g->pad_end[i] = total - g->pad_begin[i];
      continue;
    }
    if (auto_pad == AutoPad::kValid) g->pad_begin[i] = g->pad_end[i] = 0;
    int64_t span;
    if (__builtin_add_overflow(g->in[i], g->pad_begin[i], &span) || __builtin_add_overflow(span, g->pad_end[i], &span))
      return overflow("the padded input", i);
    span -= ek;  // both >= 0: no overflow
    if (span < 0)
      return Status::error("kernel_shape " + ints_str(g->kernel) + " with dilations " + ints_str(g->dilations) +
                           " is larger than the padded input " + shape_to_string(x) + " (pads " +
                           ints_str(g->pad_begin) + " + " + ints_str(g->pad_end) + ") along spatial dim " +
                           str(static_cast<int64_t>(i)));
    g->out[i] = span / s + (ceil_mode && span % s != 0) + 1;
    // A window must start inside the input or the begin padding; ceil_mode
    // may otherwise add one that lies entirely in the end padding.
    if (ceil_mode && static_cast<__int128>(g->out[i] - 1) * s >= static_cast<__int128>(g->in[i]) + g->pad_begin[i])
      --g->out[i];
  }
  return Status::ok();
}

Status resolve_conv(const ConvAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g) {
  SARAI_RETURN_IF_ERROR(check_ranks(x, w));
  const int64_t c = x[1], m = w[0], group = a.group;
  if (c % group != 0)
    return Status::error("input channels " + str(c) + " of X " + shape_to_string(x) + " are not divisible by group " +
                         str(group));
  if (w[1] != c / group)
    return Status::error("W " + shape_to_string(w) + " has " + str(w[1]) + " input channels per group but X " +
                         shape_to_string(x) + " with group " + str(group) + " needs " + str(c / group));
  if (m % group != 0)
    return Status::error("output channels " + str(m) + " of W " + shape_to_string(w) + " are not divisible by group " +
                         str(group));
  SARAI_RETURN_IF_ERROR(resolve_window(a.window, x, g));
  SARAI_RETURN_IF_ERROR(kernel_from_w(a.window.kernel, w, g));
  SARAI_RETURN_IF_ERROR(forward_extents(a.window.auto_pad, /*ceil_mode=*/false, x, g));
  return check_extent("output", g->out, *g, c, x);
}

Status resolve_conv_transpose(const ConvAttrs& a, const Shape& x, const Shape& w, ConvGeometry* g) {
  SARAI_RETURN_IF_ERROR(check_ranks(x, w));
  const int64_t c = x[1], group = a.group;
  if (w[0] != c)
    return Status::error("W " + shape_to_string(w) + " must have " + str(c) + " input channels (dim 0) to match X " +
                         shape_to_string(x));
  if (c % group != 0)
    return Status::error("input channels " + str(c) + " of X " + shape_to_string(x) + " are not divisible by group " +
                         str(group));
  SARAI_RETURN_IF_ERROR(resolve_window(a.window, x, g));
  SARAI_RETURN_IF_ERROR(kernel_from_w(a.window.kernel, w, g));
  const AutoPad auto_pad = a.window.auto_pad;
  const size_t nsp = static_cast<size_t>(g->nsp);
  const Ints out_pad = or_default(a.output_padding, nsp, 0);
  if (out_pad.size() != nsp)
    return Status::error("output_padding " + ints_str(out_pad) + " must have " + str(g->nsp) + " values");
  SARAI_RETURN_IF_ERROR(check_output_padding(out_pad, g->strides, g->dilations));
  Ints out_shape_attr = a.output_shape;
  if (!out_shape_attr.empty()) {
    // Either the spatial dims or the whole shape; keep the spatial dims.
    if (out_shape_attr.size() == nsp + 2) out_shape_attr.erase(out_shape_attr.begin(), out_shape_attr.begin() + 2);
    if (out_shape_attr.size() != nsp)
      return Status::error("output_shape " + ints_str(a.output_shape) + " must have " + str(g->nsp) +
                           " spatial dims for X " + shape_to_string(x));
    SARAI_RETURN_IF_ERROR(check_output_shape(out_shape_attr, 0));
  }
  g->out.resize(nsp);
  // The first dim output_shape asks past the data's reach: its reach and total_padding.
  int64_t unreachable = -1, reach_of_it = 0, total_of_it = 0;
  for (size_t i = 0; i < nsp; ++i) {
    int64_t ek, full;
    if (!checked_mul_add(g->kernel[i] - 1, g->dilations[i], 1, &ek))
      return Status::error("the dilated kernel along spatial dim " + str(static_cast<int64_t>(i)) +
                           " overflows 64-bit integers");
    if (!checked_mul_add(g->strides[i], g->in[i] - 1, out_pad[i], &full) || __builtin_add_overflow(full, ek, &full))
      return Status::error("the full output extent along spatial dim " + str(static_cast<int64_t>(i)) +
                           " overflows 64-bit integers");
    int64_t want = -1;
    if (!out_shape_attr.empty())
      want = out_shape_attr[i];
    else if ((auto_pad == AutoPad::kSameUpper || auto_pad == AutoPad::kSameLower) &&
             __builtin_mul_overflow(g->in[i], g->strides[i], &want))
      return Status::error("input x stride along spatial dim " + str(static_cast<int64_t>(i)) +
                           " overflows 64-bit integers");
    if (want >= 0) {
      // total_padding = full - output_shape (SAME_UPPER puts the smaller half first).
      const int64_t total = full - want;  // both >= 0: no overflow
      if (total < 0) {
        // Output longer than the data: zeros (the bias) at the end, as
        // ONNX Runtime does; by no more than an output_padding could add.
        g->pad_begin[i] = 0;
        int64_t reach;
        if (!__builtin_add_overflow(full - out_pad[i], std::max(g->strides[i], g->dilations[i]) - 1, &reach) &&
            want > reach && unreachable < 0) {
          unreachable = static_cast<int64_t>(i);
          reach_of_it = reach;
          total_of_it = total;
        }
      } else if (auto_pad == AutoPad::kSameUpper) {
        g->pad_begin[i] = total / 2;
      } else {
        g->pad_begin[i] = total - total / 2;
      }
      g->pad_end[i] = total - g->pad_begin[i];
      g->out[i] = want;
    } else {
      if (auto_pad == AutoPad::kValid) g->pad_begin[i] = g->pad_end[i] = 0;
      g->out[i] = full - g->pad_begin[i] - g->pad_end[i];  // pads >= 0, full >= 1: no overflow
    }
    if (g->out[i] <= 0)
      return Status::error("output spatial dim " + str(static_cast<int64_t>(i)) + " would be " + str(g->out[i]) +
                           " for X " + shape_to_string(x) + ", W " + shape_to_string(w) + ", pads " +
                           ints_str(g->pad_begin) + " + " + ints_str(g->pad_end));
  }
  const int64_t channels = std::max(c, w[1] * group);
  SARAI_RETURN_IF_ERROR(check_extent("output", g->out, *g, channels, x));
  SARAI_RETURN_IF_ERROR(check_extent("input", g->in, *g, channels, x));
  // After the size checks, so a hostile output_shape is reported as too large.
  if (unreachable >= 0) {
    const size_t i = static_cast<size_t>(unreachable);
    return Status::error("output_shape " + ints_str(a.output_shape) + " asks for " + str(g->out[i]) +
                         " along spatial dim " + str(unreachable) + ", but X " + shape_to_string(x) +
                         " with kernel_shape " + ints_str(g->kernel) + ", strides " + ints_str(g->strides) +
                         " and dilations " + ints_str(g->dilations) + " allow at most " + str(reach_of_it) +
                         " there (total_padding would be " + str(total_of_it) +
                         "; the output may pass the data by less than max(stride, dilation), as output_padding)");
  }
  return Status::ok();
}

namespace {

// The node's attributes with `group` in place of its own.
Status attrs_with_group(const Node& node, bool transpose, int64_t group, ConvAttrs* a) {
  SARAI_RETURN_IF_ERROR(read_conv_attrs(node, transpose, a));
  a->group = group;
  return check_group(group);
}

}  // namespace

Status resolve_conv(const Node& node, const Shape& x, const Shape& w, int64_t group, ConvGeometry* g) {
  ConvAttrs a;
  SARAI_RETURN_IF_ERROR(attrs_with_group(node, /*transpose=*/false, group, &a));
  return resolve_conv(a, x, w, g);
}

Status resolve_conv_transpose(const Node& node, const Shape& x, const Shape& w, int64_t group, ConvGeometry* g) {
  ConvAttrs a;
  SARAI_RETURN_IF_ERROR(attrs_with_group(node, /*transpose=*/true, group, &a));
  return resolve_conv_transpose(a, x, w, g);
}

}  // namespace sarai::kernels::convgeo
