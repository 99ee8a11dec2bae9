// Attention (domain "sarai", made by runtime/fuse.h from
// MatMul -> ScaledSoftmax -> MatMul):
//
//   O[b] = softmax(Q[b] · KT[b] / divisor) · V[b]
//   Q [..., T, d], KT [..., d, S], V [..., S, e] -> O [..., T, e]
//
// with the batch dims broadcasting as in the two MatMuls (rank >= 2: the
// fusion only matches matrix products). The unfused graph
// materializes the [..., T, S] scores twice (8 heads × 1500 × 1500 floats =
// 72 MB per layer for a 30 s Whisper input) and streams them through memory
// three times; here each task takes one batch entry and a block of kRows
// query rows, computes its scores into its thread's slice of the workspace
// (kRows × S floats, in L2), divides and normalizes each row with the same vector
// kernels as Div and Softmax, and multiplies by V, so the scores never
// leave the cache. The scores and the output use oneDNN's sgemm like MatMul
// (single-threaded inside our parallel region); the results equal the
// unfused graph's up to the rounding of sgemm's blocking (a block of rows
// instead of the whole matrix), tested in tests/int8_e2e_test.cc.
#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/fp32_gemm.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kRows = 32;  // query rows per task

Status check_input(const KernelContext& ctx, int i, const char* name) {
  if (!ctx.has_input(i)) return Status::error(std::string("input ") + name + " is missing");
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DType::kFloat32)
    return Status::error(std::string("input ") + name + " has dtype " + dtype_name(t.dtype()) +
                         "; Attention takes float32");
  if (t.rank() < 2)
    return Status::error(std::string("input ") + name + " " + shape_to_string(t.shape()) +
                         " must have rank >= 2");
  return Status::ok();
}

}  // namespace

Status Attention(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_input(ctx, 0, "Q"));
  SARAI_RETURN_IF_ERROR(check_input(ctx, 1, "KT"));
  SARAI_RETURN_IF_ERROR(check_input(ctx, 2, "V"));
  SARAI_ASSIGN_OR_RETURN(const float* div, ctx.prepared<float>(PrepareDivisor));
  const float divisor = *div;
  const Tensor& q = ctx.input(0);
  const Tensor& kt = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const int64_t t = q.dim(q.rank() - 2), d = q.dim(q.rank() - 1);
  const int64_t s = kt.dim(kt.rank() - 1), e = v.dim(v.rank() - 1);
  if (kt.dim(kt.rank() - 2) != d || v.dim(v.rank() - 2) != s)
    return Status::error("inputs Q " + shape_to_string(q.shape()) + ", KT " +
                         shape_to_string(kt.shape()) + ", V " + shape_to_string(v.shape()) +
                         " must be [..., T, d], [..., d, S], [..., S, e]");
  // Batch dims broadcast as in the two MatMuls.
  const Shape qb(q.shape().begin(), q.shape().end() - 2);
  const Shape kb(kt.shape().begin(), kt.shape().end() - 2);
  const Shape vb(v.shape().begin(), v.shape().end() - 2);
  Expected<Shape> batch_or = broadcast_shapes({qb, kb, vb});
  if (!batch_or)
    return Status::error("batch dims of Q " + shape_to_string(q.shape()) + ", KT " +
                         shape_to_string(kt.shape()) + " and V " + shape_to_string(v.shape()) +
                         " cannot be broadcast");
  const Shape batch = *batch_or;
  Shape out_shape = batch;
  out_shape.push_back(t);
  out_shape.push_back(e);
  Tensor& o = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (o.numel() == 0) return Status::ok();
  const int64_t nbatch = numel_of(batch);
  // Per batch entry the offsets of its Q, KT and V matrices; per thread the
  // scores of one block of rows.
  const int slots = thread_slots(ctx);
  int64_t* q_off = s == 0 ? nullptr : ctx.workspace<int64_t>(3 * nbatch);
  float* scores = s == 0 ? nullptr : ctx.workspace<float>(kRows * s * slots);
  if (ctx.skip_compute(o)) return Status::ok();
  if (s == 0) {
    // softmax over an empty axis is empty and its product with V [.., 0, e]
    // is all zeros.
    std::fill(o.mutable_data<float>(), o.mutable_data<float>() + o.numel(), 0.f);
    return Status::ok();
  }
  int64_t* k_off = q_off + nbatch;
  int64_t* v_off = k_off + nbatch;
  for_each_broadcast(batch, {broadcast_strides(qb, batch), broadcast_strides(kb, batch), broadcast_strides(vb, batch)},
                     [&](int64_t i, const int64_t* off) {
                       q_off[i] = off[0] * t * d;
                       k_off[i] = off[1] * d * s;
                       v_off[i] = off[2] * s * e;
                     });
  const int64_t blocks = (t + kRows - 1) / kRows;
  const float* pq = q.data<float>();
  const float* pk = kt.data<float>();
  const float* pv = v.data<float>();
  float* po = o.mutable_data<float>();
  const auto& vk = vec_kernels();
  // The first error wins (oneDNN failing); no per-task Status array.
  std::mutex mu;
  Status error;
  parallel_for(nbatch * blocks, 1, [&](int64_t begin, int64_t end) {
    float* sc = scores + thread_index() * kRows * s;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, r0 = (task % blocks) * kRows;
      const int64_t rows = std::min(kRows, t - r0);
      Status st = fp32_gemm(false, false, rows, s, d, 1.f, pq + q_off[b] + r0 * d, d,
                            pk + k_off[b], s, 0.f, sc, s);
      for (int64_t i = 0; st.is_ok() && i < rows; ++i) {
        float* row = sc + i * s;
        vk.binary(VecBinaryOp::kDiv, row, 1, &divisor, 0, row, s);
        vk.softmax_row(row, row, s);
      }
      if (st.is_ok())
        st = fp32_gemm(false, false, rows, e, s, 1.f, sc, s, pv + v_off[b], e, 0.f,
                       po + (b * t + r0) * e, e);
      if (!st.is_ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.is_ok()) error = std::move(st);
      }
    }
  });
  return error;
}

}  // namespace sarai::kernels
