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
// leave the cache.
//
// Attribute `precision` (set by the fuser from SessionOptions::attention or
// the blob's "attention" metadata) chooses how the two products run:
//
// "fp32" (default): oneDNN's sgemm like MatMul (single-threaded inside our
// parallel region); the results equal the unfused graph's up to the rounding
// of sgemm's blocking (a block of rows instead of the whole matrix), tested
// in tests/int8_e2e_test.cc.
//
// "int8": both products on the INT8 GEMM (kernels/cpu/qgemm.h), softmax in
// float between them. Symmetric s8 scales per row: per query row of Q (qs),
// per key row of K (ks, i.e. per column of KT), per value row of V (vs):
//   scores[t][s] = (Σ_d q8[t][d] k8[d][s]) · ks[s] · (qs[t] / divisor)
//   O[t][e]      = Σ_s P[t][s] vs[s] v8[s][e] = ps[t] · Σ_s p8[t][s] v8[s][e]
// V's per-row scale is folded into the probabilities before they are
// quantized (P' = P·vs, u8 with scale ps[t] = max_s P'[t][s] / 255 and zero
// point 0), so the reduction over s stays one integer sum. The vector
// kernels do softmax, P·vs and the quantization in two passes over a row
// of scores: P' / max P' = exp(a x + ln vs - M) for M = max (a x + ln vs),
// so attention_scores turns QKᵀ's accumulator blocks into u = a x + ln vs
// and the row maxima (the GEMM's epilogue), and softmax_u8_row makes the
// bytes from one exp per score, the softmax's sum (Σ exp(u - M) / vs) only
// entering ps. Q goes into the
// u8 × s8 kernels as q8 + 128, and comp[s] = 128 Σ_d k8[d][s] takes the
// offset back out, so the sums are exact on every ISA (the AVX2 kernel's
// vpmaddwd scheme never saturates) and the results do not depend on the
// thread count. K and V are quantized and packed once per batch entry (one
// parallel pass, four rows at a time by the vector kernel pack_s8_k4), Q
// and P per block of rows. "int8-per-tensor" is the same
// with one scale for all of Q, one for K, one for V and ps = vs / 255 (the
// A/B baseline for per-row scaling). Inputs with inf or NaN, d == 0, or
// S > qref::kMaxReduction run in float32 instead (the INT8 path would hide a
// NaN or overflow its sums).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "kernels/fp32_gemm.h"
#include "kernels/kernels.h"
#include "kernels/util.h"
#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace {

constexpr int64_t kRows = 32;  // query rows per task

enum class Precision : int { kFloat32, kInt8, kInt8PerTensor };

struct AttentionParams {
  float divisor;
  Precision precision;
};

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

// max |x| over n floats, or NaN/inf when one of them is not finite.
float abs_max(const float* x, int64_t n, int64_t stride = 1) {
  float m = 0.f;
  bool finite = true;
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i * stride];
    finite &= std::isfinite(v);
    m = std::max(m, std::fabs(v));
  }
  return finite ? m : NAN;
}

// The symmetric s8 scale of a row whose largest magnitude is amax.
inline float s8_scale(float amax) { return amax / 127.f; }

// The operands of the INT8 path for one batch entry (see the file comment).
struct Int8Entry {
  int8_t* k;       // KT [d, S] packed N16K4 (int8_layout.h)
  float* ks;       // [S]
  int32_t* kcomp;  // [S]: 128 Σ_d k8[d][s]
  int8_t* v;       // V [S, e] packed N16K4
  float* vs;       // [S]
  // softmax_u8_row's weights (per-row mode only): ln w and 1 / w for w =
  // vs, or 1 where vs is 0 (an all-zero V row adds nothing whatever its
  // probability), then zeros up to round_up(S, kSoftmaxU8Pad).
  float* lnvs;
  float* invvs;
};

// Quantizes and packs one batch entry's KT [d, S] and V [S, e], four rows
// (one k-group) at a time with the vector kernel pack_s8_k4. With
// `*_tensor_scale` >= 0 (per-tensor mode) every row uses that scale. `tmp`
// holds S floats. Returns false (and leaves the packing unfinished) when KT
// or V holds an inf or NaN. The values are those of round_half_even(x /
// scale) clamped to [-127, 127] (0 for scale 0); |x| <= amax keeps x / scale
// within +-127 (+ rounding).
bool pack_entry(const float* kt, const float* v, int64_t d, int64_t s, int64_t e, float k_tensor_scale,
                float v_tensor_scale, const Int8Entry& out, float* tmp) {
  const auto& vk = vec_kernels();
  const int64_t dp = int8::round_up(d, int8::kGroupK), sp = int8::round_up(s, int8::kGroupK);
  const int64_t kpanel = dp * int8::kPanelN;  // bytes per 16-column panel of KT
  const int64_t vpanel = sp * int8::kPanelN;
  // pack_s8_k4 writes every column below S (e) of every k-group: only the
  // last panel's padding columns need zeros.
  if (s % int8::kPanelN) std::memset(out.k + (s / int8::kPanelN) * kpanel, 0, static_cast<size_t>(kpanel));
  if (e % int8::kPanelN) std::memset(out.v + (e / int8::kPanelN) * vpanel, 0, static_cast<size_t>(vpanel));
  // K's scale per column of KT: the largest magnitude down the column.
  if (k_tensor_scale >= 0) {
    std::fill(out.ks, out.ks + s, k_tensor_scale);
  } else {
    std::fill(out.ks, out.ks + s, 0.f);
    vk.col_abs_max(kt, s, d, s, out.ks);
    for (int64_t j = 0; j < s; ++j) out.ks[j] = s8_scale(out.ks[j]);
  }
  // The divisors: 1 where the scale is 0 (the column is all zero).
  float* div = tmp;
  for (int64_t j = 0; j < s; ++j) div[j] = out.ks[j] == 0.f ? 1.f : out.ks[j];
  std::fill(out.kcomp, out.kcomp + s, 0);
  bool finite = true;
  for (int64_t r = 0; r < d; r += int8::kGroupK)
    finite &= vk.pack_s8_k4(kt + r * s, s, std::min(int8::kGroupK, d - r), s, div, nullptr,
                            out.k + (r / int8::kGroupK) * int8::kPanelN * int8::kGroupK, kpanel, out.kcomp);
  if (!finite) return false;
  for (int64_t j = 0; j < s; ++j) out.kcomp[j] *= 128;
  // V's scale per row.
  for (int64_t r = 0; r < s; r += int8::kGroupK) {
    const int64_t rows = std::min(int8::kGroupK, s - r);
    float rdiv[int8::kGroupK];
    for (int64_t t = 0; t < rows; ++t) {
      float scale = v_tensor_scale;
      if (scale < 0) {
        float lo = 0.f, hi = 0.f;  // NaN is ignored here and caught by pack_s8_k4
        vk.minmax(v + (r + t) * e, e, &lo, &hi);
        scale = s8_scale(std::max(-lo, hi));
      }
      if (!std::isfinite(scale)) return false;
      out.vs[r + t] = scale;
      rdiv[t] = scale == 0.f ? 1.f : scale;
    }
    if (!vk.pack_s8_k4(v + r * e, e, rows, e, nullptr, rdiv,
                       out.v + (r / int8::kGroupK) * int8::kPanelN * int8::kGroupK, vpanel, nullptr))
      return false;
  }
  if (v_tensor_scale >= 0) return true;  // per tensor: softmax_u8_row does not run
  const int64_t sq = int8::round_up(s, kSoftmaxU8Pad);
  for (int64_t j = 0; j < s; ++j) {
    const float w = out.vs[j] == 0.f ? 1.f : out.vs[j];
    out.lnvs[j] = std::log(w);
    out.invvs[j] = 1.f / w;
  }
  std::fill(out.lnvs + s, out.lnvs + sq, 0.f);
  std::fill(out.invvs + s, out.invvs + sq, 0.f);
  return true;
}

// qgemm_u8s8_blocks' sink for QKᵀ in the per-row INT8 mode: each finished
// block of accumulators becomes scores u (rows m0.., columns n0..) with
// the row maxima kept up to date (VecKernels::attention_scores).
struct ScoresSink {
  const VecKernels* vk;
  const int32_t* kcomp;
  const float* ks;
  const float* a;  // per row: Q's scale / divisor
  const float* lnvs;
  float* u;
  int64_t ldu;
  float rowmax[kRows * kScoresMaxLanes];  // kScoresMaxLanes partial maxima per row

  static void run(void* ctx, const int32_t* acc, int64_t ldacc, int64_t m0, int64_t rows, int64_t n0, int64_t cols) {
    auto* k = static_cast<ScoresSink*>(ctx);
    k->vk->attention_scores(acc, ldacc, rows, cols, k->kcomp + n0, k->ks + n0, k->a + m0, k->lnvs + n0,
                            k->u + m0 * k->ldu + n0, k->ldu, k->rowmax + m0 * kScoresMaxLanes);
  }
};

}  // namespace

Expected<std::shared_ptr<const void>> PrepareAttention(const Node& node, int64_t opset) {
  SARAI_ASSIGN_OR_RETURN(std::shared_ptr<const void> div, PrepareDivisor(node, opset));
  const std::string_view p = node.attr_string_view("precision", "fp32");
  Precision precision;
  if (p == "fp32") precision = Precision::kFloat32;
  else if (p == "int8") precision = Precision::kInt8;
  else if (p == "int8-per-tensor") precision = Precision::kInt8PerTensor;
  else
    return Status::error("attribute 'precision' is '" + std::string(p) +
                         "'; expected fp32, int8 or int8-per-tensor");
  return prepared_data(AttentionParams{*static_cast<const float*>(div.get()), precision});
}

Status Attention(KernelContext& ctx) {
  SARAI_RETURN_IF_ERROR(check_input(ctx, 0, "Q"));
  SARAI_RETURN_IF_ERROR(check_input(ctx, 1, "KT"));
  SARAI_RETURN_IF_ERROR(check_input(ctx, 2, "V"));
  SARAI_ASSIGN_OR_RETURN(const AttentionParams* params, ctx.prepared<AttentionParams>(PrepareAttention));
  const float divisor = params->divisor;
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
  // INT8 needs a reduction to quantize (d > 0) and sums that cannot overflow.
  const bool int8 = params->precision != Precision::kFloat32 && d > 0 && s > 0 &&
                    s <= qref::kMaxReduction && d <= qref::kMaxReduction;
  const bool per_tensor = params->precision == Precision::kInt8PerTensor;
  // Per batch entry the offsets of its Q, KT and V matrices; per thread the
  // scores of one block of rows.
  const int slots = thread_slots(ctx);
  int64_t* q_off = s == 0 ? nullptr : ctx.workspace<int64_t>(3 * nbatch);
  // Score rows are padded to sq floats for softmax_u8_row's reads.
  const int64_t sq = int8::round_up(s, kSoftmaxU8Pad);
  float* scores = s == 0 ? nullptr : ctx.workspace<float>(kRows * sq * slots);
  // INT8: the packed K and V of every batch entry, their row scales and K's
  // compensation; per thread one block's u8 Q and P and row scales.
  const int64_t kbytes = int8::packed_size(d, s), vbytes = int8::packed_size(s, e);
  int8_t* kpack = nullptr;
  int8_t* vpack = nullptr;
  float* kvscale = nullptr;
  int32_t* kcomp = nullptr;
  uint8_t* qa = nullptr;
  uint8_t* pa = nullptr;
  float* rowscale = nullptr;
  float* ones = nullptr;
  float* pack_tmp = nullptr;
  if (int8) {
    int64_t kall = 0, vall = 0, sall = 0;
    if (__builtin_mul_overflow(kbytes, nbatch, &kall) || __builtin_mul_overflow(vbytes, nbatch, &vall) ||
        __builtin_mul_overflow(2 * (s + sq), nbatch, &sall))
      return Status::error("the INT8 copies of KT " + shape_to_string(kt.shape()) + " and V " +
                           shape_to_string(v.shape()) + " over " + std::to_string(nbatch) +
                           " batch entries pass int64");
    kpack = ctx.workspace<int8_t>(kall);
    vpack = ctx.workspace<int8_t>(vall);
    kvscale = ctx.workspace<float>(sall);
    kcomp = ctx.workspace<int32_t>(s * nbatch);
    qa = ctx.workspace<uint8_t>(kRows * d * slots);
    pa = ctx.workspace<uint8_t>(kRows * s * slots);
    rowscale = ctx.workspace<float>(2 * kRows * slots);
    ones = ctx.workspace<float>(e);
    pack_tmp = ctx.workspace<float>(s * slots);
  }
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

  // One block of rows in float32.
  const auto float_block = [&](int64_t b, int64_t r0, int64_t rows, float* sc) {
    Status st = fp32_gemm(false, false, rows, s, d, 1.f, pq + q_off[b] + r0 * d, d, pk + k_off[b], s, 0.f, sc, s);
    for (int64_t i = 0; st.is_ok() && i < rows; ++i) {
      float* row = sc + i * s;
      vk.binary(VecBinaryOp::kDiv, row, 1, &divisor, 0, row, s);
      vk.softmax_row(row, row, s);
    }
    if (st.is_ok())
      st = fp32_gemm(false, false, rows, e, s, 1.f, sc, s, pv + v_off[b], e, 0.f, po + (b * t + r0) * e, e);
    return st;
  };

  // Batch entry b's slices of the INT8 workspaces.
  const auto entry = [&](int64_t b) {
    float* f = kvscale + b * 2 * (s + sq);  // ks [s], vs [s], lnvs [sq], invvs [sq]
    return Int8Entry{kpack + b * kbytes, f, kcomp + b * s, vpack + b * vbytes, f + s, f + 2 * s, f + 2 * s + sq};
  };
  // INT8: quantize and pack K and V per batch entry; a NaN or inf anywhere
  // sends the whole op to float32.
  bool use_int8 = int8;
  float q_tensor_scale = -1.f, v_tensor_scale = -1.f;
  if (use_int8) {
    float k_tensor_scale = -1.f;
    if (per_tensor) {
      // One scale per tensor: the largest magnitude of each whole input.
      const float qm = abs_max(pq, q.numel()), km = abs_max(pk, kt.numel()), vm = abs_max(pv, v.numel());
      q_tensor_scale = s8_scale(qm), k_tensor_scale = s8_scale(km), v_tensor_scale = s8_scale(vm);
      use_int8 = std::isfinite(qm) && std::isfinite(km) && std::isfinite(vm);
    }
    std::atomic<bool> finite{true};
    if (use_int8)
      parallel_for(nbatch, 1, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          if (!pack_entry(pk + k_off[b], pv + v_off[b], d, s, e, k_tensor_scale, v_tensor_scale, entry(b),
                          pack_tmp + thread_index() * s))
            finite.store(false, std::memory_order_relaxed);
        }
      });
    use_int8 = use_int8 && finite.load();
    std::fill(ones, ones + e, 1.f);
    // The score rows' padding is read (and ignored) by softmax_u8_row: give
    // it defined values once; the GEMMs only write columns below s.
    for (int64_t r = 0; r < kRows * slots; ++r) std::fill(scores + r * sq + s, scores + (r + 1) * sq, 0.f);
  }
  const QgemmUkernel& uk = qgemm_default_ukernel();

  // One block of rows in INT8; false when a Q row is not finite (the caller
  // then runs the block in float32).
  const auto int8_block = [&](int64_t b, int64_t r0, int64_t rows, float* sc, int slot) {
    const float* qrows = pq + q_off[b] + r0 * d;
    uint8_t* qb8 = qa + slot * kRows * d;
    uint8_t* pb8 = pa + slot * kRows * s;
    float* rq = rowscale + slot * 2 * kRows;  // per row qs / divisor, then ps
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = qrows + i * d;
      float scale = q_tensor_scale;  // per tensor: checked finite above
      if (scale < 0) {
        const float m = abs_max(row, d);
        if (!std::isfinite(m)) return false;
        scale = s8_scale(m);
      }
      vk.quantize_u8(row, d, scale == 0.f ? 1.f : scale, 128, qb8 + i * d);
      rq[i] = scale / divisor;
    }
    const Int8Entry ent = entry(b);
    float rowmax[kRows];  // per-row mode: each row's maximum score
    if (per_tensor) {
      QgemmEpilogue ep;
      ep.comp = ent.kcomp;
      ep.cscale = ent.ks;
      ep.y = sc;
      ep.ldy_m = sq;
      qgemm_u8s8(qb8, rows, d, d, ent.k, s, ep, &uk, /*threaded=*/false);
    } else {
      // The scores u = a x + ln vs and their row maxima straight from the
      // accumulator blocks (attention_scores): no separate epilogue pass.
      ScoresSink sink{&vk, ent.kcomp, ent.ks, rq, ent.lnvs, sc, sq, {}};
      std::fill(sink.rowmax, sink.rowmax + rows * kScoresMaxLanes, -std::numeric_limits<float>::infinity());
      qgemm_u8s8_blocks(qb8, rows, d, d, ent.k, s, &ScoresSink::run, &sink, &uk, /*threaded=*/false);
      for (int64_t i = 0; i < rows; ++i) {
        const float* m = sink.rowmax + i * kScoresMaxLanes;
        rowmax[i] = *std::max_element(m, m + kScoresMaxLanes);
      }
    }
    for (int64_t i = 0; i < rows; ++i) {
      float* row = sc + i * sq;
      float ps;
      if (per_tensor) {
        // P <= 1, so P' = P vs <= vs: the scale is fixed in advance.
        vk.binary(VecBinaryOp::kMul, row, 1, &rq[i], 0, row, s);
        vk.softmax_row(row, row, s);
        vk.binary(VecBinaryOp::kMul, row, 1, ent.vs, 1, row, s);
        ps = v_tensor_scale / 255.f;
        vk.quantize_u8(row, s, ps == 0.f ? 1.f : ps, 0, pb8 + i * s);
      } else {
        ps = vk.softmax_u8_row(row, s, rowmax[i], ent.invvs, pb8 + i * s);
        if (!std::isfinite(ps)) return false;
      }
      rq[kRows + i] = ps;
    }
    float* out = po + (b * t + r0) * e;
    QgemmEpilogue ep2;
    ep2.cscale = ones;
    ep2.y = out;
    ep2.ldy_m = e;
    qgemm_u8s8(pb8, rows, s, s, ent.v, e, ep2, &uk, /*threaded=*/false);
    for (int64_t i = 0; i < rows; ++i)
      vk.binary(VecBinaryOp::kMul, out + i * e, 1, &rq[kRows + i], 0, out + i * e, e);
    return true;
  };

  // The first error wins (oneDNN failing); no per-task Status array.
  std::mutex mu;
  Status error;
  parallel_for(nbatch * blocks, 1, [&](int64_t begin, int64_t end) {
    const int slot = thread_index();
    float* sc = scores + slot * kRows * sq;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / blocks, r0 = (task % blocks) * kRows;
      const int64_t rows = std::min(kRows, t - r0);
      if (use_int8 && int8_block(b, r0, rows, sc, slot)) continue;
      Status st = float_block(b, r0, rows, sc);
      if (!st.is_ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.is_ok()) error = std::move(st);
      }
    }
  });
  return error;
}

}  // namespace sarai::kernels
