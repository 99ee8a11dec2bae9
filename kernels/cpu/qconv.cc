// The entry points of the fast QConv / QConvTranspose cores
// (kernels/cpu/qconv.h): scratch, the choice of path, and the row sinks.
// The paths: qconv_im2col.cc, qconv_grouped.cc, qconv_transpose.cc
// (qconv_internal.h).
#include "kernels/cpu/qconv.h"

#include <cassert>
#include <cstring>

#include "kernels/cpu/platform.h"
#include "kernels/cpu/qconv_internal.h"

namespace sarai::kernels {
namespace qconv_detail {

void RowSink::operator()(const qref::ConvProblem& p, int64_t b, int64_t m, const int32_t* row) const {
  const int64_t out_size = p.g.out_size(), off = (b * p.M + m) * out_size;
  if (ep != nullptr)
    channel_epilogue(*ep, m, row, out_size, ep->residual ? ep->residual + off : nullptr, ep->y + off);
  else
    std::memcpy(acc + off, row, static_cast<size_t>(out_size) * sizeof(int32_t));
}

namespace {

// The loops of the micro-kernel's level (the caller's uk passed the CPU
// check: qgemm_ukernel or the platform table; or it is the tests' EVEX build
// of the avx2_vnni kernel, whose row's loops are avx2's).
const QconvLoops& loops_for(const QgemmUkernel& uk) { return *platform_row(uk.isa).qconv; }

}  // namespace
}  // namespace qconv_detail

using namespace qconv_detail;

int64_t qconv_scratch_bytes(const qref::ConvProblem& p) {
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return 0;
  if (is_pointwise(p)) return pointwise_scratch_bytes(p);
  return p.packed ? packed_scratch_bytes(p) : grouped_scratch_bytes(p);
}

int64_t qconv_transpose_scratch_bytes(const qref::ConvProblem& p) {
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return 0;
  return transpose_scratch_bytes(p);
}

void qconv_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                const QconvEpilogue& ep, const QgemmUkernel* uk, void* scratch, const uint8_t* zp_c) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  assert(!p.packed || p.group == 1);
  assert(zp_c == nullptr || (p.C == p.group && !p.packed));
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_scratch_bytes(p));
  if (is_pointwise(p)) return conv_pointwise(p, xq, w, ep, u, loops_for(u), sc.get());
  if (p.packed) return conv_packed(p, xq, zp, w, ep, u, loops_for(u), sc.get());
  conv_grouped(p, xq, zp, zp_c, w, loops_for(u), sc.get(), RowSink{&ep, nullptr});
}

void qconv_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    int32_t* acc, const QgemmUkernel* uk, void* scratch, const uint8_t* zp_c) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  assert(!p.packed || p.group == 1);
  assert(zp_c == nullptr || (p.C == p.group && !p.packed));
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_scratch_bytes(p));
  if (is_pointwise(p)) return conv_pointwise_s32(p, xq, w, acc, u, sc.get());
  if (p.packed) return conv_packed_s32(p, xq, zp, w, acc, u, sc.get());
  conv_grouped(p, xq, zp, zp_c, w, loops_for(u), sc.get(), RowSink{nullptr, acc});
}

void qconv_transpose_u8s8(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                          const int8_t* w, const QconvEpilogue& ep, const QgemmUkernel* uk,
                          void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_transpose_scratch_bytes(p));
  conv_transpose(p, xq, zp, w, loops_for(u), sc.get(), RowSink{&ep, nullptr});
}

void qconv_transpose_u8s8_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp,
                              const int8_t* w, int32_t* acc, const QgemmUkernel* uk,
                              void* scratch) {
  const QgemmUkernel& u = uk ? *uk : qgemm_default_ukernel();
  if (p.batch == 0 || p.M == 0 || p.g.out_size() == 0) return;
  const OwnedScratch sc(scratch, qconv_transpose_scratch_bytes(p));
  conv_transpose(p, xq, zp, w, loops_for(u), sc.get(), RowSink{nullptr, acc});
}

}  // namespace sarai::kernels
