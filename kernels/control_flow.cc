// Control flow: If, Loop and Scan run their subgraphs through the runners
// the session made for the node (runtime/kernel.h's SubgraphRunner; each a
// session of its own, planned once per shape signature like the model).
//
// A body's outputs come back in buffers the runner reuses: Loop and Scan
// alternate two output sets, so from the third iteration on an iteration
// whose shapes repeat allocates nothing. Carried values go from one
// iteration's outputs to the next one's inputs as handles, without a copy;
// the node's own outputs are copied out once, at the end (Scan's and Loop's
// stacked outputs row by row as the iterations produce them).
#include <algorithm>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/util.h"

namespace sarai::kernels {

namespace {

Expected<std::shared_ptr<const void>> NoSession(const Node& node, int64_t) {
  return Status::error(node.op_type + " runs its subgraphs only inside a session (Session::create prepares them)");
}

Expected<SubgraphRunner*> body_of(KernelContext& ctx, std::string_view attr) {
  SARAI_ASSIGN_OR_RETURN(const ControlFlowBodies* b, ctx.prepared<ControlFlowBodies>(NoSession));
  SubgraphRunner* r = b->find(attr);
  if (r == nullptr) return Status::error("attribute '" + std::string(attr) + "' (a graph) is missing");
  return r;
}

// The runner's inputs for one call: every name, the captured outer values
// bound; the formal ones are the caller's to set.
std::vector<NamedTensor> body_inputs(KernelContext& ctx, const SubgraphRunner& body) {
  const Graph& g = body.graph();
  std::vector<NamedTensor> in(g.inputs.size());
  for (size_t i = 0; i < g.inputs.size(); ++i) in[i].name = g.values[static_cast<size_t>(g.inputs[i])].name;
  for (size_t k = 0; k < body.capture_source.size(); ++k)
    in[static_cast<size_t>(body.formal_inputs) + k].tensor = ctx.input(body.capture_source[k]);
  return in;
}

Status copy_out(KernelContext& ctx, int i, const Tensor& src) {
  if (!ctx.wants_output(i)) return Status::ok();
  Tensor& dst = ctx.allocate_output(i, src.dtype(), src.shape());
  if (src.nbytes()) std::memcpy(dst.mutable_raw(), src.raw(), src.nbytes());
  return Status::ok();
}

Expected<bool> scalar_bool(const Tensor& t, const char* what) {
  if (t.numel() != 1)
    return Status::error(std::string(what) + " must hold one value, got " + shape_to_string(t.shape()));
  if (t.dtype() != DType::kBool) return Status::error(std::string(what) + " must be bool, got " + dtype_name(t.dtype()));
  return t.data<uint8_t>()[0] != 0;
}

// The stacked output of a body output over the iterations: the shape each
// iteration gives, checked to repeat, and where its rows go.
struct Stack {
  Tensor* out = nullptr;    // allocated on the first iteration
  Shape each;               // one iteration's shape
  int axis = 0;             // where the iteration axis goes in the output
  int64_t outer = 0, inner_bytes = 0;
};

// An output of `count` iterations stacked along `axis` of each iteration's
// shape (empty iterations: the declared shape's fixed dims, or 0).
Shape stacked_shape(const Shape& each, int axis, int64_t count) {
  Shape s = each;
  s.insert(s.begin() + axis, count);
  return s;
}

Shape declared_shape(const Value& v) {
  Shape s;
  for (const Dim& d : v.dims) s.push_back(d.is_fixed() ? d.value : 0);
  return s;
}

// Puts one iteration's output at row `pos` of stack k (allocating the node's
// output on the first iteration).
Status stack_row(KernelContext& ctx, int out_index, Stack& st, const Tensor& src, int64_t pos, int64_t count,
                 const char* what) {
  if (st.out == nullptr) {
    st.each = src.shape();
    if (st.axis < 0) st.axis += static_cast<int>(st.each.size()) + 1;
    if (st.axis < 0 || st.axis > static_cast<int>(st.each.size()))
      return Status::error(std::string(what) + " axis is out of range for rank " + std::to_string(st.each.size() + 1));
    st.outer = 1;
    for (int d = 0; d < st.axis; ++d) st.outer *= st.each[static_cast<size_t>(d)];
    st.inner_bytes = static_cast<int64_t>(src.nbytes()) / std::max<int64_t>(st.outer, 1);
    st.out = &ctx.allocate_output(out_index, src.dtype(), stacked_shape(st.each, st.axis, count));
  } else if (src.shape() != st.each || src.dtype() != st.out->dtype()) {
    return Status::error(std::string(what) + " " + std::to_string(out_index) + " is " + dtype_name(src.dtype()) + " " +
                         shape_to_string(src.shape()) + " in one iteration and " + dtype_name(st.out->dtype()) + " " +
                         shape_to_string(st.each) + " in another; it must not change");
  }
  auto* dst = static_cast<uint8_t*>(st.out->mutable_raw());
  const auto* s = static_cast<const uint8_t*>(src.raw());
  for (int64_t o = 0; o < st.outer; ++o)
    std::memcpy(dst + (o * count + pos) * st.inner_bytes, s + o * st.inner_bytes, static_cast<size_t>(st.inner_bytes));
  return Status::ok();
}

}  // namespace

Status If(KernelContext& ctx) {
  if (ctx.node().explicit_inputs() != 1) return Status::error("takes one input (cond), got " + std::to_string(ctx.node().explicit_inputs()));
  SARAI_ASSIGN_OR_RETURN(const bool cond, scalar_bool(ctx.input(0), "input 'cond'"));
  const char* branch = cond ? "then_branch" : "else_branch";
  SARAI_ASSIGN_OR_RETURN(SubgraphRunner* body, body_of(ctx, branch));
  if (body->formal_inputs != 0)
    return Status::error(std::string(branch) + " declares " + std::to_string(body->formal_inputs) + " inputs; it must have none");
  const Graph& g = body->graph();
  if (g.outputs.size() != static_cast<size_t>(ctx.num_outputs()))
    return Status::error(std::string(branch) + " has " + std::to_string(g.outputs.size()) + " outputs; the node has " +
                         std::to_string(ctx.num_outputs()));
  std::vector<NamedTensor> out;
  SARAI_RETURN_IF_ERROR(body->run(body_inputs(ctx, *body), &out));
  for (int i = 0; i < ctx.num_outputs(); ++i) SARAI_RETURN_IF_ERROR(copy_out(ctx, i, out[static_cast<size_t>(i)].tensor));
  return Status::ok();
}

Status Loop(KernelContext& ctx) {
  const int explicit_in = ctx.node().explicit_inputs();
  if (explicit_in < 2) return Status::error("takes inputs M, cond and the loop-carried values, got " + std::to_string(explicit_in));
  const int n_carried = explicit_in - 2;
  SARAI_ASSIGN_OR_RETURN(SubgraphRunner* body, body_of(ctx, "body"));
  const Graph& g = body->graph();
  if (body->formal_inputs != 2 + n_carried)
    return Status::error("body takes " + std::to_string(body->formal_inputs) + " inputs; with " + std::to_string(n_carried) +
                         " loop-carried values it must take " + std::to_string(2 + n_carried) +
                         " (iteration number, condition, the carried values)");
  const int n_scan = static_cast<int>(g.outputs.size()) - 1 - n_carried;
  if (n_scan < 0)
    return Status::error("body has " + std::to_string(g.outputs.size()) + " outputs; it must have at least " +
                         std::to_string(1 + n_carried) + " (condition, the carried values)");
  if (ctx.num_outputs() != n_carried + n_scan)
    return Status::error("has " + std::to_string(ctx.num_outputs()) + " outputs; its body gives " + std::to_string(n_carried) +
                         " carried values and " + std::to_string(n_scan) + " scan outputs");

  int64_t trips = INT64_MAX;
  if (ctx.has_input(0)) {
    const Tensor& m = ctx.input(0);
    if (m.dtype() != DType::kInt64 || m.numel() != 1)
      return Status::error("input 'M' must be one int64, got " + std::string(dtype_name(m.dtype())) + " " + shape_to_string(m.shape()));
    trips = m.data<int64_t>()[0];
  }
  bool cond = true;
  if (ctx.has_input(1)) {
    SARAI_ASSIGN_OR_RETURN(cond, scalar_bool(ctx.input(1), "input 'cond'"));
  } else if (!ctx.has_input(0)) {
    return Status::error("has neither a trip count M nor a condition: it would never end");
  }

  std::vector<NamedTensor> in = body_inputs(ctx, *body);
  Tensor iter = Tensor::allocate(DType::kInt64, {});
  Tensor cond_in = Tensor::allocate(DType::kBool, {});
  in[0].tensor = iter;
  in[1].tensor = cond_in;
  for (int j = 0; j < n_carried; ++j) in[static_cast<size_t>(2 + j)].tensor = ctx.input(2 + j);

  // Scan outputs grow as the iterations go (their count is known only at
  // the end when cond decides): bytes appended, copied out once.
  std::vector<std::vector<uint8_t>> scan_bytes(static_cast<size_t>(n_scan));
  std::vector<Shape> scan_shape(static_cast<size_t>(n_scan));
  std::vector<DType> scan_dtype(static_cast<size_t>(n_scan), DType::kUndefined);
  std::vector<NamedTensor> out_sets[2];
  int64_t i = 0;
  for (; i < trips && cond; ++i) {
    iter.mutable_data<int64_t>()[0] = i;
    cond_in.mutable_data<uint8_t>()[0] = cond ? 1 : 0;
    std::vector<NamedTensor>& out = out_sets[i % 2];
    SARAI_RETURN_IF_ERROR(body->run(in, &out));
    SARAI_ASSIGN_OR_RETURN(cond, scalar_bool(out[0].tensor, "body output 0 (the condition)"));
    for (int j = 0; j < n_carried; ++j) in[static_cast<size_t>(2 + j)].tensor = out[static_cast<size_t>(1 + j)].tensor;
    for (int k = 0; k < n_scan; ++k) {
      const Tensor& t = out[static_cast<size_t>(1 + n_carried + k)].tensor;
      auto& bytes = scan_bytes[static_cast<size_t>(k)];
      if (i == 0) {
        scan_shape[static_cast<size_t>(k)] = t.shape();
        scan_dtype[static_cast<size_t>(k)] = t.dtype();
      } else if (t.shape() != scan_shape[static_cast<size_t>(k)] || t.dtype() != scan_dtype[static_cast<size_t>(k)]) {
        return Status::error("scan output " + std::to_string(k) + " is " + dtype_name(t.dtype()) + " " + shape_to_string(t.shape()) +
                             " in iteration " + std::to_string(i) + " and " + dtype_name(scan_dtype[static_cast<size_t>(k)]) + " " +
                             shape_to_string(scan_shape[static_cast<size_t>(k)]) + " before; it must not change");
      }
      const auto* p = static_cast<const uint8_t*>(t.raw());
      bytes.insert(bytes.end(), p, p + t.nbytes());
    }
  }
  for (int j = 0; j < n_carried; ++j) SARAI_RETURN_IF_ERROR(copy_out(ctx, j, in[static_cast<size_t>(2 + j)].tensor));
  for (int k = 0; k < n_scan; ++k) {
    const int o = n_carried + k;
    if (!ctx.wants_output(o)) continue;
    const Value& declared = g.values[static_cast<size_t>(g.outputs[static_cast<size_t>(1 + n_carried + k)])];
    Shape each = i > 0 ? scan_shape[static_cast<size_t>(k)] : declared_shape(declared);
    DType dt = i > 0 ? scan_dtype[static_cast<size_t>(k)]
                     : (declared.dtype == DType::kUndefined ? DType::kFloat32 : declared.dtype);
    Tensor& dst = ctx.allocate_output(o, dt, stacked_shape(each, 0, i));
    const auto& bytes = scan_bytes[static_cast<size_t>(k)];
    if (!bytes.empty()) std::memcpy(dst.mutable_raw(), bytes.data(), bytes.size());
  }
  return Status::ok();
}

namespace {

// An axis list attribute of Scan: `count` entries (default 0), each in
// [-rank, rank) of its tensor, made non-negative later by the caller.
Expected<std::vector<int64_t>> scan_list(const Node& node, const char* name, int count) {
  std::vector<int64_t> v = node.attr_ints(name);
  if (!node.has_attr(name)) v.assign(static_cast<size_t>(count), 0);
  if (static_cast<int>(v.size()) != count)
    return Status::error(std::string(name) + " has " + std::to_string(v.size()) + " entries; it must have " + std::to_string(count));
  return v;
}

}  // namespace

Status Scan(KernelContext& ctx) {
  const Node& node = ctx.node();
  const int explicit_in = node.explicit_inputs();
  const int64_t m_attr = node.attr_int("num_scan_inputs", -1);
  if (m_attr < 1 || m_attr > explicit_in)
    return Status::error("num_scan_inputs is " + std::to_string(m_attr) + "; it must be in [1, " + std::to_string(explicit_in) +
                         "] (the node has " + std::to_string(explicit_in) + " inputs)");
  const int n_scan_in = static_cast<int>(m_attr);
  const int n_state = explicit_in - n_scan_in;
  SARAI_ASSIGN_OR_RETURN(SubgraphRunner* body, body_of(ctx, "body"));
  const Graph& g = body->graph();
  if (body->formal_inputs != explicit_in)
    return Status::error("body takes " + std::to_string(body->formal_inputs) + " inputs; it must take " +
                         std::to_string(explicit_in) + " (" + std::to_string(n_state) + " states, " + std::to_string(n_scan_in) +
                         " scan slices)");
  const int n_scan_out = static_cast<int>(g.outputs.size()) - n_state;
  if (n_scan_out < 0 || ctx.num_outputs() != n_state + n_scan_out)
    return Status::error("body has " + std::to_string(g.outputs.size()) + " outputs and the node " + std::to_string(ctx.num_outputs()) +
                         "; both must be the " + std::to_string(n_state) + " states and then the scan outputs");
  SARAI_ASSIGN_OR_RETURN(std::vector<int64_t> in_axes, scan_list(node, "scan_input_axes", n_scan_in));
  SARAI_ASSIGN_OR_RETURN(std::vector<int64_t> in_dirs, scan_list(node, "scan_input_directions", n_scan_in));
  SARAI_ASSIGN_OR_RETURN(std::vector<int64_t> out_axes, scan_list(node, "scan_output_axes", n_scan_out));
  SARAI_ASSIGN_OR_RETURN(std::vector<int64_t> out_dirs, scan_list(node, "scan_output_directions", n_scan_out));
  for (int64_t d : in_dirs)
    if (d != 0 && d != 1) return Status::error("scan_input_directions holds " + std::to_string(d) + "; each must be 0 or 1");
  for (int64_t d : out_dirs)
    if (d != 0 && d != 1) return Status::error("scan_output_directions holds " + std::to_string(d) + "; each must be 0 or 1");

  // The sequence length, the same along every scan input's axis; each
  // slice's shape and how to gather it (outer blocks of inner bytes).
  int64_t len = -1;
  struct Slicer {
    int64_t outer = 1, inner_bytes = 0, len = 0;
  };
  std::vector<Slicer> slicers(static_cast<size_t>(n_scan_in));
  std::vector<NamedTensor> in = body_inputs(ctx, *body);
  for (int s = 0; s < n_state; ++s) in[static_cast<size_t>(s)].tensor = ctx.input(s);
  for (int m = 0; m < n_scan_in; ++m) {
    const Tensor& x = ctx.input(n_state + m);
    int64_t axis = in_axes[static_cast<size_t>(m)];
    if (axis < -x.rank() || axis >= x.rank())
      return Status::error("scan_input_axes[" + std::to_string(m) + "] = " + std::to_string(axis) + " is out of range for input " +
                           std::to_string(n_state + m) + " of rank " + std::to_string(x.rank()));
    if (axis < 0) axis += x.rank();
    const int64_t l = x.shape()[static_cast<size_t>(axis)];
    if (len >= 0 && l != len)
      return Status::error("scan input " + std::to_string(n_state + m) + " has " + std::to_string(l) +
                           " steps along its scan axis; an earlier one has " + std::to_string(len));
    len = l;
    Shape slice = x.shape();
    slice.erase(slice.begin() + axis);
    Slicer& sl = slicers[static_cast<size_t>(m)];
    for (int64_t d = 0; d < axis; ++d) sl.outer *= x.shape()[static_cast<size_t>(d)];
    sl.len = l;
    sl.inner_bytes = 1;
    for (size_t d = static_cast<size_t>(axis) + 1; d < x.shape().size(); ++d) sl.inner_bytes *= x.shape()[d];
    sl.inner_bytes *= static_cast<int64_t>(dtype_size(x.dtype()));
    in[static_cast<size_t>(n_state + m)].tensor = Tensor::allocate(x.dtype(), slice);
  }

  std::vector<Stack> stacks(static_cast<size_t>(n_scan_out));
  for (int k = 0; k < n_scan_out; ++k) stacks[static_cast<size_t>(k)].axis = static_cast<int>(out_axes[static_cast<size_t>(k)]);
  std::vector<NamedTensor> out_sets[2];
  for (int64_t t = 0; t < len; ++t) {
    for (int m = 0; m < n_scan_in; ++m) {
      const Slicer& sl = slicers[static_cast<size_t>(m)];
      const int64_t step = in_dirs[static_cast<size_t>(m)] ? len - 1 - t : t;
      const auto* src = static_cast<const uint8_t*>(ctx.input(n_state + m).raw());
      auto* dst = static_cast<uint8_t*>(in[static_cast<size_t>(n_state + m)].tensor.mutable_raw());
      for (int64_t o = 0; o < sl.outer; ++o)
        std::memcpy(dst + o * sl.inner_bytes, src + (o * sl.len + step) * sl.inner_bytes, static_cast<size_t>(sl.inner_bytes));
    }
    std::vector<NamedTensor>& out = out_sets[t % 2];
    SARAI_RETURN_IF_ERROR(body->run(in, &out));
    for (int s = 0; s < n_state; ++s) in[static_cast<size_t>(s)].tensor = out[static_cast<size_t>(s)].tensor;
    for (int k = 0; k < n_scan_out; ++k) {
      if (!ctx.wants_output(n_state + k)) continue;
      const int64_t pos = out_dirs[static_cast<size_t>(k)] ? len - 1 - t : t;
      SARAI_RETURN_IF_ERROR(stack_row(ctx, n_state + k, stacks[static_cast<size_t>(k)], out[static_cast<size_t>(n_state + k)].tensor,
                                      pos, len, "scan output"));
    }
  }
  for (int s = 0; s < n_state; ++s) SARAI_RETURN_IF_ERROR(copy_out(ctx, s, in[static_cast<size_t>(s)].tensor));
  for (int k = 0; k < n_scan_out; ++k) {
    if (stacks[static_cast<size_t>(k)].out != nullptr || !ctx.wants_output(n_state + k)) continue;
    // No iteration ran: the declared shape, with the (empty) scan axis.
    const Value& declared = g.values[static_cast<size_t>(g.outputs[static_cast<size_t>(n_state + k)])];
    Shape each = declared_shape(declared);
    int axis = static_cast<int>(out_axes[static_cast<size_t>(k)]);
    if (axis < 0) axis += static_cast<int>(each.size()) + 1;
    axis = std::clamp(axis, 0, static_cast<int>(each.size()));
    ctx.allocate_output(n_state + k, declared.dtype == DType::kUndefined ? DType::kFloat32 : declared.dtype,
                        stacked_shape(each, axis, 0));
  }
  return Status::ok();
}

}  // namespace sarai::kernels
