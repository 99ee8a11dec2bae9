// What the fast convolution cores share (kernels/cpu/qconv.h): scratch
// carving, the per-channel epilogue, index helpers, and the three paths,
// each in its own file:
//   qconv_pointwise.cc  1x1 group 1: straight on the micro-kernels
//   qconv_im2col.cc     group 1: im2col blocks into the INT8 GEMM
//   qconv_grouped.cc    group > 1 (incl. depthwise): a direct kernel
//   qconv_transpose.cc  QConvTranspose: a direct scatter kernel
//   qconv_loops.cc      their vectorized inner loops, per ISA level
//   qconv.cc            the entry points of qconv.h
// Every output element is computed from the same integer products as the
// reference, by exactly one thread, whatever the thread count; the float
// epilogue performs the reference's operations in its order (the folder
// builds with -ffp-contract=off).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/conv_geometry.h"
#include "kernels/cpu/qconv.h"
#include "kernels/cpu/qconv_loops.h"

namespace sarai::kernels::qconv_detail {

using convgeo::ConvGeometry;
using convgeo::Ints;

// Carves the scratch memory of one call into 64-byte aligned arrays. With a
// null base it only measures (the *_scratch_bytes functions run the same
// carving code, so the sizes cannot drift apart).
class Carver {
 public:
  explicit Carver(uint8_t* base) : base_(base) {}
  template <class T> T* take(int64_t count) {
    T* r = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += (std::max<int64_t>(count, 0) * static_cast<int64_t>(sizeof(T)) + 63) / 64 * 64;
    return r;
  }
  int64_t used() const { return used_; }

 private:
  uint8_t* base_;
  int64_t used_ = 0;
};

// Scratch memory for a call that was given none (tests, benchmarks): owned
// here, on the heap.
class OwnedScratch {
 public:
  OwnedScratch(void* given, int64_t bytes) {
    if (given) {
      p_ = static_cast<uint8_t*>(given);
      return;
    }
    own_.resize(static_cast<size_t>(bytes + 64));
    const uintptr_t a = reinterpret_cast<uintptr_t>(own_.data());
    p_ = own_.data() + ((64 - a % 64) % 64);
  }
  uint8_t* get() const { return p_; }

 private:
  std::vector<uint8_t> own_;
  uint8_t* p_ = nullptr;
};

// The transposing epilogue's tile: 16 channels × 16 positions.
constexpr int kTile = 16;

// Row-major strides of dims (last dim contiguous).
inline Ints strides_of(const Ints& dims) {
  Ints st(dims.size(), 1);
  for (size_t d = dims.size(); d-- > 1;) st[d - 1] = st[d] * dims[d];
  return st;
}

// Unravels flat index i over dims into c.
inline void unravel(int64_t i, const Ints& dims, int64_t* c) {
  for (size_t d = dims.size(); d-- > 0;) {
    c[d] = i % dims[d];
    i /= dims[d];
  }
}

// y[j] = epilogue(acc[j]) over channel m's contiguous row of n outputs
// (res: that row of the residual, or null), then Gelu when asked: the
// direct kernels' epilogue (qconv_loops.cc).
void channel_epilogue(const QconvEpilogue& ep, int64_t m, const int32_t* acc, int64_t n,
                      const float* res, float* y);

// Where the direct kernels put each output channel's int32 row
// acc[b][m][:]: through the epilogue into y (ep set), or raw into acc.
struct RowSink {
  const QconvEpilogue* ep = nullptr;
  int32_t* acc = nullptr;
  void operator()(const qref::ConvProblem& p, int64_t b, int64_t m, const int32_t* row) const;
};

// The three paths. Scratch: the *_scratch_bytes of each, as carved by the
// path itself; `loops` is the micro-kernel's level's (platform_for(uk.isa)).
int64_t packed_scratch_bytes(const qref::ConvProblem& p);
void conv_packed(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                 const QconvEpilogue& ep, const QgemmUkernel& uk, const QconvLoops& loops,
                 uint8_t* scratch);
void conv_packed_s32(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                     int32_t* acc, const QgemmUkernel& uk, uint8_t* scratch);

// 1x1, stride 1, unpadded, group 1 (qconv_pointwise.cc): straight on the
// micro-kernels, one parallel region.
bool is_pointwise(const qref::ConvProblem& p);
int64_t pointwise_scratch_bytes(const qref::ConvProblem& p);
void conv_pointwise(const qref::ConvProblem& p, const uint8_t* xq, const int8_t* w,
                    const QconvEpilogue& ep, const QgemmUkernel& uk, const QconvLoops& loops,
                    uint8_t* scratch);
void conv_pointwise_s32(const qref::ConvProblem& p, const uint8_t* xq, const int8_t* w,
                        int32_t* acc, const QgemmUkernel& uk, uint8_t* scratch);

int64_t grouped_scratch_bytes(const qref::ConvProblem& p);
// zp_c: per input channel zero points (depthwise only), else zp for all.
void conv_grouped(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const uint8_t* zp_c, const int8_t* w,
                  const QconvLoops& loops, uint8_t* scratch, const RowSink& sink);

int64_t transpose_scratch_bytes(const qref::ConvProblem& p);
void conv_transpose(const qref::ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                    const QconvLoops& loops, uint8_t* scratch, const RowSink& sink);

}  // namespace sarai::kernels::qconv_detail
