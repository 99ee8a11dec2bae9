// Einsum (opset 12): any equation of letters and one "..." per term, with
// an explicit ("->") or implicit output (the labels used once, in ASCII
// order, after the broadcast "..." dims), repeated labels in one term
// (diagonals) and sums over the labels the output drops.
//
// Each distinct label (a letter, or one dim of the broadcast "...") gets an
// extent and, per input, a stride: the sum of the strides of the dims it
// names (so "ii" walks the diagonal), 0 where a "..." dim broadcasts. The
// output is then one loop over the output labels around one over the summed
// labels, multiplying the inputs' elements at their running offsets.
// Products accumulate in double (float inputs) or wrap in 64 bits (integers).
// Two float32 inputs go through the FP32 GEMM instead (gemm_path below).
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/fp32_gemm.h"
#include "kernels/kernels.h"
#include "kernels/util.h"

namespace sarai::kernels {
namespace {

constexpr int kLetters = 52;   // label ids 0-51: 'A'-'Z' then 'a'-'z' (ASCII order)
constexpr int kEllipsis = -1;  // the "..." of a term

// The equation, parsed once: each input term's labels and the output's.
struct EinsumEquation {
  std::vector<std::vector<int>> inputs;
  std::vector<int> output;
  bool explicit_output = false;
};

int label_of(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return 26 + (c - 'a');
  return -2;
}

// One term ("ab...c"): its labels, "..." as kEllipsis (at most once).
Expected<std::vector<int>> parse_term(const std::string& eq, size_t b, size_t e) {
  std::vector<int> t;
  bool ellipsis = false;
  for (size_t i = b; i < e; ++i) {
    if (eq[i] == '.') {
      if (i + 3 > e || eq.compare(i, 3, "...") != 0)
        return Status::error("attribute 'equation' '" + eq + "' has a '.' outside an ellipsis '...'");
      if (ellipsis) return Status::error("attribute 'equation' '" + eq + "' has two ellipses in one term");
      ellipsis = true;
      t.push_back(kEllipsis);
      i += 2;
      continue;
    }
    const int l = label_of(eq[i]);
    if (l < 0)
      return Status::error("attribute 'equation' '" + eq + "' has character '" + std::string(1, eq[i]) +
                           "'; labels are letters");
    t.push_back(l);
  }
  return t;
}

}  // namespace

Expected<std::shared_ptr<const void>> PrepareEinsum(const Node& node, int64_t /*opset*/) {
  const Attribute* a = node.find_attr("equation");
  if (!a) return Status::error("missing required attribute 'equation'");
  std::string eq;
  for (char c : a->s)
    if (c != ' ') eq += c;
  EinsumEquation p;
  const size_t arrow = eq.find("->");
  const size_t lhs_end = arrow == std::string::npos ? eq.size() : arrow;
  size_t b = 0;
  while (true) {
    const size_t comma = eq.find(',', b);
    const size_t e = comma == std::string::npos || comma > lhs_end ? lhs_end : comma;
    SARAI_ASSIGN_OR_RETURN(std::vector<int> t, parse_term(eq, b, e));
    p.inputs.push_back(std::move(t));
    if (e == lhs_end) break;
    b = e + 1;
  }
  if (arrow != std::string::npos) {
    p.explicit_output = true;
    if (eq.find("->", arrow + 2) != std::string::npos || eq.find(',', arrow) != std::string::npos)
      return Status::error("attribute 'equation' '" + eq + "' has more than one output term");
    SARAI_ASSIGN_OR_RETURN(p.output, parse_term(eq, arrow + 2, eq.size()));
    bool in_ellipsis = false;
    for (const auto& t : p.inputs) in_ellipsis |= std::count(t.begin(), t.end(), kEllipsis) > 0;
    for (size_t i = 0; i < p.output.size(); ++i) {
      const int l = p.output[i];
      if (std::find(p.output.begin(), p.output.begin() + static_cast<std::ptrdiff_t>(i), l) != p.output.begin() + static_cast<std::ptrdiff_t>(i))
        return Status::error("attribute 'equation' '" + eq + "' names an output label twice");
      bool found = l == kEllipsis ? in_ellipsis : false;
      for (const auto& t : p.inputs) found |= l != kEllipsis && std::find(t.begin(), t.end(), l) != t.end();
      if (!found)
        return Status::error("attribute 'equation' '" + eq + "' has an output label that no input has");
    }
  }
  return prepared_data(std::move(p));
}

namespace {

template <class T, class Acc>
void einsum_loop(const std::vector<const T*>& in, T* out, const std::vector<int64_t>& size,
                 const std::vector<int64_t>& stride, size_t num_out) {
  const size_t L = size.size(), K = in.size();
  int64_t out_n = 1, sum_n = 1;
  for (size_t l = 0; l < L; ++l) (l < num_out ? out_n : sum_n) *= size[l];
  std::vector<int64_t> idx(L, 0), off(K, 0);
  // Advances labels [lo, L) of the odometer; the offsets follow.
  auto advance = [&](size_t lo) {
    for (size_t d = L; d-- > lo;) {
      ++idx[d];
      for (size_t k = 0; k < K; ++k) off[k] += stride[k * L + d];
      if (idx[d] < size[d]) return;
      for (size_t k = 0; k < K; ++k) off[k] -= stride[k * L + d] * size[d];
      idx[d] = 0;
    }
  };
  for (int64_t o = 0; o < out_n; ++o) {
    Acc acc = 0;
    for (int64_t s = 0; s < sum_n; ++s) {
      Acc p = static_cast<Acc>(in[0][off[0]]);
      for (size_t k = 1; k < K; ++k) {
        if constexpr (std::is_integral_v<Acc>)
          p = static_cast<Acc>(static_cast<uint64_t>(p) * static_cast<uint64_t>(static_cast<Acc>(in[k][off[k]])));
        else
          p *= static_cast<Acc>(in[k][off[k]]);
      }
      if constexpr (std::is_integral_v<Acc>) acc = static_cast<Acc>(static_cast<uint64_t>(acc) + static_cast<uint64_t>(p));
      else acc += p;
      if (L > num_out) advance(num_out);
    }
    out[o] = static_cast<T>(acc);
    // The summed labels are back at 0; step the output labels.
    if (num_out > 0) {
      for (size_t d = num_out; d-- > 0;) {
        ++idx[d];
        for (size_t k = 0; k < K; ++k) off[k] += stride[k * L + d];
        if (idx[d] < size[d]) break;
        for (size_t k = 0; k < K; ++k) off[k] -= stride[k * L + d] * size[d];
        idx[d] = 0;
      }
    }
  }
}

// The matmul form of a two-input contraction: every label is a batch
// label (output, both inputs), an M label (output, input 0 only), an N label
// (output, input 1 only) or a K label (summed; a label only one input names
// is summed with stride 0 in the other). Inputs are gathered into
// [batch, M, K] and [batch, K, N], multiplied by the project's FP32 GEMM per
// batch entry into [batch, M, N], and that is scattered to the output. The
// gathers follow the label strides, so diagonals and broadcasts need no
// special case.
struct GemmPlan {
  std::vector<size_t> batch, m, n, k;  // positions in the label order
  int64_t nb = 1, nm = 1, nn = 1, nk = 1;
  // nb * (nm * nk + nk * nn + nm * nn) floats; false when that overflows.
  bool workspace(int64_t* r) const {
    int64_t a, b, c, s;
    return !__builtin_mul_overflow(nm, nk, &a) && !__builtin_mul_overflow(nk, nn, &b) &&
           !__builtin_mul_overflow(nm, nn, &c) && !__builtin_add_overflow(a, b, &s) && !__builtin_add_overflow(s, c, &s) &&
           !__builtin_mul_overflow(nb, s, r);
  }
};

GemmPlan plan_gemm(const std::vector<int>& order, const std::vector<int64_t>& size, size_t num_out,
                   const std::vector<uint8_t>& present, size_t nl) {
  GemmPlan p;
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t id = static_cast<size_t>(order[i]);
    const bool a = present[id], b = present[nl + id];
    // Products saturate: an overflowing plan is refused by workspace().
    auto mul = [&](int64_t& v) { if (__builtin_mul_overflow(v, size[i], &v)) v = INT64_MAX; };
    if (i >= num_out) { p.k.push_back(i); mul(p.nk); }
    else if (a && b) { p.batch.push_back(i); mul(p.nb); }
    else if (a) { p.m.push_back(i); mul(p.nm); }
    else { p.n.push_back(i); mul(p.nn); }
  }
  return p;
}

// dst[i] = src[offset of the i-th index of `labels` (row-major)], using
// input k's strides.
void gather(const float* src, float* dst, const std::vector<size_t>& labels, const std::vector<int64_t>& size,
            const std::vector<int64_t>& stride, size_t k, size_t L) {
  const size_t r = labels.size();
  int64_t total = 1;
  for (size_t l : labels) total *= size[l];
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t i = 0; i < total; ++i) {
    dst[i] = src[off];
    for (size_t d = r; d-- > 0;) {
      const size_t l = labels[d];
      ++idx[d];
      off += stride[k * L + l];
      if (idx[d] < size[l]) break;
      off -= stride[k * L + l] * size[l];
      idx[d] = 0;
    }
  }
}

Status gemm_path(const GemmPlan& p, const float* const in[2], const std::vector<int64_t>& stride,
                 const std::vector<int64_t>& size, size_t num_out, float* y, float* ws) {
  const size_t L = size.size();
  float* a = ws;
  float* b = a + p.nb * p.nm * p.nk;
  float* c = b + p.nb * p.nk * p.nn;
  std::vector<size_t> la(p.batch), lb(p.batch), lc(p.batch);
  la.insert(la.end(), p.m.begin(), p.m.end());
  la.insert(la.end(), p.k.begin(), p.k.end());
  lb.insert(lb.end(), p.k.begin(), p.k.end());
  lb.insert(lb.end(), p.n.begin(), p.n.end());
  gather(in[0], a, la, size, stride, 0, L);
  gather(in[1], b, lb, size, stride, 1, L);
  for (int64_t i = 0; i < p.nb; ++i)
    SARAI_RETURN_IF_ERROR(fp32_gemm(false, false, p.nm, p.nn, p.nk, 1.f, a + i * p.nm * p.nk, p.nk,
                                    b + i * p.nk * p.nn, p.nn, 0.f, c + i * p.nm * p.nn, p.nn));
  // The output's strides per label (row-major over the output labels), then
  // y[...] = c in (batch, M, N) order.
  std::vector<int64_t> ost(L, 0);
  for (size_t i = num_out, st = 1; i-- > 0;) {
    ost[i] = static_cast<int64_t>(st);
    st *= static_cast<size_t>(size[i]);
  }
  lc.insert(lc.end(), p.m.begin(), p.m.end());
  lc.insert(lc.end(), p.n.begin(), p.n.end());
  std::vector<int64_t> idx(lc.size(), 0);
  int64_t off = 0;
  const int64_t total = p.nb * p.nm * p.nn;
  for (int64_t i = 0; i < total; ++i) {
    y[off] = c[i];
    for (size_t d = lc.size(); d-- > 0;) {
      const size_t l = lc[d];
      ++idx[d];
      off += ost[l];
      if (idx[d] < size[l]) break;
      off -= ost[l] * size[l];
      idx[d] = 0;
    }
  }
  return Status::ok();
}

}  // namespace

Status Einsum(KernelContext& ctx) {
  SARAI_ASSIGN_OR_RETURN(const EinsumEquation* eq, ctx.prepared<EinsumEquation>(PrepareEinsum));
  const size_t K = eq->inputs.size();
  if (static_cast<size_t>(ctx.num_inputs()) != K)
    return Status::error("the equation has " + std::to_string(K) + " input terms but the node has " +
                         std::to_string(ctx.num_inputs()) + " inputs");
  DType dt = DType::kUndefined;
  for (size_t k = 0; k < K; ++k) {
    if (!ctx.has_input(static_cast<int>(k))) return Status::error("missing input " + std::to_string(k));
    const DType t = ctx.input(static_cast<int>(k)).dtype();
    if (t != DType::kFloat32 && t != DType::kFloat64 && t != DType::kInt32 && t != DType::kInt64)
      return Status::error("input " + std::to_string(k) + " has dtype " + dtype_name(t) +
                           "; Einsum supports float32, float64, int32 and int64");
    if (k > 0 && t != dt)
      return Status::error("input " + std::to_string(k) + " has dtype " + dtype_name(t) + " but input 0 has " + dtype_name(dt));
    dt = t;
  }
  // The "..." rank: the broadcast of every term's ellipsis dims.
  int64_t ell = 0;
  for (size_t k = 0; k < K; ++k) {
    const auto& t = eq->inputs[k];
    const int64_t letters = static_cast<int64_t>(t.size()) - (std::count(t.begin(), t.end(), kEllipsis) ? 1 : 0);
    const int64_t r = ctx.input(static_cast<int>(k)).rank();
    const bool has_ell = letters != static_cast<int64_t>(t.size());
    if (has_ell ? r < letters : r != letters)
      return Status::error("input " + std::to_string(k) + " " + shape_to_string(ctx.input(static_cast<int>(k)).shape()) +
                           " does not have the " + std::to_string(letters) + (has_ell ? " or more" : "") +
                           " dims its term names");
    if (has_ell) ell = std::max(ell, r - letters);
  }
  // Label ids: letters 0-51, "..." dims 52 + j (right-aligned across
  // terms). extent -1: not named by any input.
  const size_t nl = static_cast<size_t>(kLetters + ell);
  std::vector<int64_t> extent(nl, -1), count(nl, 0);
  std::vector<uint8_t> present(K * nl, 0);  // input k names label id
  // Calls fn(id, d) for each dim d of input k with its label id.
  auto for_dims = [&](size_t k, auto&& fn) {
    const auto& t = eq->inputs[k];
    const int64_t er = ctx.input(static_cast<int>(k)).rank() - static_cast<int64_t>(t.size()) + 1;
    int d = 0;
    for (int l : t) {
      if (l != kEllipsis) {
        fn(static_cast<size_t>(l), d++);
        continue;
      }
      for (int64_t j = 0; j < er; ++j) fn(static_cast<size_t>(kLetters + ell - er + j), d++);
    }
  };
  std::string bad;
  for (size_t k = 0; k < K && bad.empty(); ++k) {
    const Tensor& x = ctx.input(static_cast<int>(k));
    for_dims(k, [&](size_t id, int d) {
      const int64_t n = x.dim(d);
      ++count[id];
      present[k * nl + id] = 1;
      if (extent[id] == -1 || extent[id] == n) { extent[id] = n; return; }
      if (id >= static_cast<size_t>(kLetters) && (n == 1 || extent[id] == 1)) { extent[id] = std::max(extent[id], n); return; }
      if (!bad.empty()) return;
      if (id >= static_cast<size_t>(kLetters))
        bad = "the '...' dims of input " + std::to_string(k) + " " + shape_to_string(x.shape()) +
              " do not broadcast with the other inputs'";
      else
        bad = std::string("label '") + (id < 26 ? char('A' + id) : char('a' + id - 26)) + "' is " + std::to_string(extent[id]) +
              " in one place and " + std::to_string(n) + " in input " + std::to_string(k) + " " + shape_to_string(x.shape());
    });
  }
  if (!bad.empty()) return Status::error(bad);
  // Per input, each label's stride: the sum over the dims it names (a
  // diagonal for a repeated label); 0 where a "..." dim of 1 broadcasts.
  std::vector<int64_t> dim_stride(K * nl, 0);
  for (size_t k = 0; k < K; ++k) {
    const Tensor& x = ctx.input(static_cast<int>(k));
    Shape st(x.shape().size(), 1);
    for (size_t i = st.size(); i-- > 1;) st[i - 1] = st[i] * x.shape()[i];
    for_dims(k, [&](size_t id, int d) {
      if (x.dim(d) == extent[id]) dim_stride[k * nl + id] += st[static_cast<size_t>(d)];
    });
  }
  // The output labels.
  std::vector<int> out_labels;
  auto push_ellipsis = [&]() {
    for (int64_t j = 0; j < ell; ++j) out_labels.push_back(kLetters + static_cast<int>(j));
  };
  if (eq->explicit_output) {
    for (int l : eq->output) {
      if (l == kEllipsis) push_ellipsis();
      else out_labels.push_back(l);
    }
  } else {
    push_ellipsis();
    for (int l = 0; l < kLetters; ++l)
      if (count[static_cast<size_t>(l)] == 1) out_labels.push_back(l);
  }
  std::vector<int> order(out_labels);
  for (size_t id = 0; id < nl; ++id)
    if (extent[id] != -1 && std::find(out_labels.begin(), out_labels.end(), static_cast<int>(id)) == out_labels.end())
      order.push_back(static_cast<int>(id));
  std::vector<int64_t> size(order.size()), stride(K * order.size());
  Shape out_shape;
  for (size_t i = 0; i < order.size(); ++i) {
    const size_t id = static_cast<size_t>(order[i]);
    size[i] = extent[id];
    for (size_t k = 0; k < K; ++k) stride[k * order.size() + i] = dim_stride[k * nl + id];
    if (i < out_labels.size()) out_shape.push_back(extent[id]);
  }
  // Two float32 inputs: a batched GEMM on gathered copies (see gemm_path).
  GemmPlan plan;
  if (K == 2 && dt == DType::kFloat32) plan = plan_gemm(order, size, out_labels.size(), present, nl);
  // Only while the copies stay within a few times the data: a label one
  // input lacks is copied along it (broadcast), which could blow up.
  int64_t ws_elems = 0, out_elems = 1;
  for (int64_t e : out_shape) out_elems *= e;
  const bool gemm = K == 2 && dt == DType::kFloat32 && plan.workspace(&ws_elems) &&
                    ws_elems <= 4 * (ctx.input(0).numel() + ctx.input(1).numel() + out_elems) + 4096;
  Tensor& y = ctx.allocate_output(0, dt, out_shape);
  float* ws = gemm ? ctx.workspace<float>(ws_elems) : nullptr;
  if (y.numel() == 0 || ctx.skip_compute(y)) return Status::ok();
  if (gemm) {
    const float* in[2] = {ctx.input(0).data<float>(), ctx.input(1).data<float>()};
    return gemm_path(plan, in, stride, size, out_labels.size(), y.mutable_data<float>(), ws);
  }
  auto run = [&](auto z, auto acc) {
    using T = decltype(z);
    std::vector<const T*> in(K);
    for (size_t k = 0; k < K; ++k) in[k] = ctx.input(static_cast<int>(k)).data<T>();
    einsum_loop<T, decltype(acc)>(in, y.mutable_data<T>(), size, stride, out_labels.size());
  };
  switch (dt) {
    case DType::kFloat32: run(float{}, double{}); break;
    case DType::kFloat64: run(double{}, double{}); break;
    case DType::kInt32: run(int32_t{}, int64_t{}); break;
    default: run(int64_t{}, int64_t{}); break;
  }
  return Status::ok();
}

}  // namespace sarai::kernels
