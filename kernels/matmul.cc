// MatMul and Gemm on float32, computed with oneDNN's row-major dnnl_sgemm.
//
// MatMul follows numpy.matmul: a 1-D A is [K] -> [1, K] and a 1-D B is
// [K] -> [K, 1], the added dim being dropped from the result; the batch dims
// (all but the last two) broadcast. Each batch entry is one sgemm call. When
// B is a plain matrix, A's batch dims are folded into M (A is contiguous), so
// the transformer case [B, T, D] x [D, E] is a single large sgemm.
//
// Gemm: Y = alpha * op(A) * op(B) + beta * C, with C broadcast
// unidirectionally to [M, N]. C is required before opset 11.
#include <algorithm>
#include <mutex>
#include <string>

#include "kernels/fp32_gemm.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "oneapi/dnnl/dnnl.h"
#include "runtime/memory_stats.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

// Row-major C[m x n] = alpha * op(A) * op(B) + beta * C. oneDNN rejects
// leading dimensions of 0, so they are clamped to 1 for empty operands.
Status sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
             int64_t ldc) {
  if (m == 0 || n == 0) return Status::ok();
  if (k == 0) {
    // op(A) * op(B) is all zeros; oneDNN's handling of K = 0 is not
    // documented, so scale C here.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return Status::ok();
  }
  dnnl_status_t st;
  {
    // oneDNN's sgemm mallocs its packing buffers per call: attribute them
    // to oneDNN, not to the runtime (runtime/memory_stats.h).
    ForeignAllocationScope foreign;
    st = dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha, a,
                    std::max<int64_t>(lda, 1), b, std::max<int64_t>(ldb, 1), beta, c,
                    std::max<int64_t>(ldc, 1));
  }
  if (st != dnnl_success)
    return Status::error("oneDNN sgemm failed (status " + std::to_string(static_cast<int>(st)) +
                         ") for M=" + std::to_string(m) + " N=" + std::to_string(n) +
                         " K=" + std::to_string(k));
  return Status::ok();
}

Status require_float(const Tensor& t, const char* what) {
  if (t.dtype() != DType::kFloat32)
    return Status::error(std::string("input '") + what + "' has dtype " + dtype_name(t.dtype()) +
                         "; only float32 is supported");
  return Status::ok();
}

// Below this many multiply-adds per batch entry, one sgemm does not fill the
// threads; run the entries in parallel instead (oneDNN then runs each call on
// the calling thread, since it is inside an OpenMP parallel region).
constexpr int64_t kSmallGemmFlops = 64 * 64 * 64;

}  // namespace

Status MatMul(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1))
    return Status::error("MatMul needs two inputs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(require_float(a, "A"));
  SARAI_RETURN_IF_ERROR(require_float(b, "B"));
  if (a.rank() == 0 || b.rank() == 0)
    return Status::error("MatMul inputs must have rank >= 1, got A " + shape_to_string(a.shape()) +
                         " and B " + shape_to_string(b.shape()));

  // Promote 1-D operands to matrices.
  Shape as = a.shape(), bs = b.shape();
  const bool a_vec = as.size() == 1, b_vec = bs.size() == 1;
  if (a_vec) as.insert(as.begin(), 1);
  if (b_vec) bs.push_back(1);
  const int64_t m = as[as.size() - 2], k = as.back();
  const int64_t kb = bs[bs.size() - 2], n = bs.back();
  if (k != kb)
    return Status::error("MatMul inner dimensions differ: A " + shape_to_string(a.shape()) +
                         " has K=" + std::to_string(k) + " but B " + shape_to_string(b.shape()) +
                         " has K=" + std::to_string(kb));

  Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  Expected<Shape> batch_or = broadcast_shapes({a_batch, b_batch});
  if (!batch_or)
    return Status::error("MatMul batch dims of A " + shape_to_string(a.shape()) + " and B " +
                         shape_to_string(b.shape()) + " cannot be broadcast");
  const Shape batch = *batch_or;

  Shape out_shape = batch;
  if (!a_vec) out_shape.push_back(m);
  if (!b_vec) out_shape.push_back(n);
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, out_shape);
  if (y.numel() == 0) return Status::ok();
  // B is one matrix shared by every batch entry: fold A's batch into M.
  const bool fold = (b_batch.empty() || numel_of(b_batch) == 1) && numel_of(a_batch) == numel_of(batch);
  const int64_t nbatch = numel_of(batch);
  // Per batch entry: the offsets of its A and B matrices.
  int64_t* a_off = fold ? nullptr : ctx.workspace<int64_t>(2 * nbatch);
  int64_t* b_off = fold ? nullptr : a_off + nbatch;
  if (ctx.skip_compute(y)) return Status::ok();
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* py = y.mutable_data<float>();
  if (fold) return sgemm(false, false, nbatch * m, n, k, 1.f, pa, k, pb, n, 0.f, py, n);

  for_each_broadcast(batch, {broadcast_strides(a_batch, batch), broadcast_strides(b_batch, batch)},
                     [&](int64_t i, const int64_t* off) {
                       a_off[i] = off[0] * m * k;
                       b_off[i] = off[1] * k * n;
                     });
  auto run = [&](int64_t i) {
    return sgemm(false, false, m, n, k, 1.f, pa + a_off[i], k, pb + b_off[i], n, 0.f, py + i * m * n, n);
  };
  // Batch entries split evenly over the threads (the attention heads,
  // [1, H, T, d] x [1, H, d, T]) also run one single-threaded sgemm per
  // entry: no barrier inside each call, and each thread's panels stay in its
  // own cache.
  const bool even_batches = nbatch % num_threads() == 0;
  // m * n fits (the output's element count); times k it may not.
  int64_t flops;
  const bool small = !__builtin_mul_overflow(m * n, k, &flops) && flops < kSmallGemmFlops;
  if ((small || even_batches) && nbatch > 1 && num_threads() > 1) {
    // The first error wins; no per-entry Status array (that would allocate).
    std::mutex mu;
    Status error;
    parallel_for(nbatch, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        Status st = run(i);
        if (st.is_ok()) continue;
        std::lock_guard<std::mutex> lock(mu);
        if (error.is_ok()) error = std::move(st);
      }
    });
    return error;
  }
  for (int64_t i = 0; i < nbatch; ++i) SARAI_RETURN_IF_ERROR(run(i));
  return Status::ok();
}

namespace {
struct GemmParams {
  bool ta = false, tb = false;
  float alpha = 1.f, beta = 1.f;
};
}  // namespace

// transA and transB are flags (0 or 1), checked once.
Expected<std::shared_ptr<const void>> PrepareGemm(const Node& node, int64_t /*opset*/) {
  GemmParams p;
  SARAI_ASSIGN_OR_RETURN(p.ta, attr_flag(node, "transA", false));
  SARAI_ASSIGN_OR_RETURN(p.tb, attr_flag(node, "transB", false));
  p.alpha = node.attr_float("alpha", 1.f);
  p.beta = node.attr_float("beta", 1.f);
  return prepared_data(p);
}

Status Gemm(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return Status::error("Gemm needs inputs A and B");
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  SARAI_RETURN_IF_ERROR(require_float(a, "A"));
  SARAI_RETURN_IF_ERROR(require_float(b, "B"));
  const bool has_c = ctx.has_input(2);
  if (!has_c && ctx.opset() < 11)
    return Status::error("Gemm input C is required before opset 11 (model opset " +
                         std::to_string(ctx.opset()) + ")");
  if (a.rank() != 2 || b.rank() != 2)
    return Status::error("Gemm inputs A and B must be 2-D, got A " + shape_to_string(a.shape()) +
                         " and B " + shape_to_string(b.shape()));
  SARAI_ASSIGN_OR_RETURN(const GemmParams* p, ctx.prepared<GemmParams>(PrepareGemm));
  const bool ta = p->ta, tb = p->tb;
  const float alpha = p->alpha, beta = p->beta;

  const int64_t m = ta ? a.dim(1) : a.dim(0);
  const int64_t k = ta ? a.dim(0) : a.dim(1);
  const int64_t kb = tb ? b.dim(1) : b.dim(0);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  if (k != kb)
    return Status::error("Gemm inner dimensions differ: A " + shape_to_string(a.shape()) +
                         (ta ? " (transA=1)" : "") + " has K=" + std::to_string(k) + " but B " +
                         shape_to_string(b.shape()) + (tb ? " (transB=1)" : "") +
                         " has K=" + std::to_string(kb));

  const bool use_c = has_c && beta != 0.f;
  const Shape mn = {m, n};
  if (use_c) {
    const Tensor& c = ctx.input(2);
    SARAI_RETURN_IF_ERROR(require_float(c, "C"));
    const Shape& cs = c.shape();
    // Unidirectional broadcast: C's shape right-aligned against [M, N].
    bool ok = cs.size() <= 2;
    for (size_t i = 0; ok && i < cs.size(); ++i) {
      int64_t want = mn[2 - cs.size() + i];
      ok = cs[i] == want || cs[i] == 1;
    }
    if (!ok)
      return Status::error("Gemm input C " + shape_to_string(cs) +
                           " cannot be broadcast to the output [" + std::to_string(m) + ", " +
                           std::to_string(n) + "]");
  }
  Tensor& y = ctx.allocate_output(0, DType::kFloat32, mn);
  if (ctx.skip_compute(y)) return Status::ok();
  float* py = y.mutable_data<float>();
  float gemm_beta = 0.f;
  if (use_c) {
    const Tensor& c = ctx.input(2);
    const Shape st = broadcast_strides(c.shape(), mn);
    const float* pc = c.data<float>();
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) py[i * n + j] = pc[i * st[0] + j * st[1]];
    gemm_beta = beta;
  }
  return sgemm(ta, tb, m, n, k, alpha, a.data<float>(), a.dim(1), b.data<float>(), b.dim(1),
               gemm_beta, py, n);
}

Status fp32_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                 const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
                 int64_t ldc) {
  return sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace sarai::kernels
