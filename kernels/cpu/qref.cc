// The scalar reference cores of the INT8 GEMM and convolutions
// (kernels/cpu/qref.h): plain loops, the oracle every fast kernel is tested
// against bit for bit.
#include "kernels/cpu/qref.h"

#include <vector>

#include "kernels/cpu/int8_layout.h"
#include "runtime/parallel.h"

namespace sarai::kernels {
namespace qref {

void gemm_u8s8_n16k4(int64_t M, int64_t K, int64_t N, const uint8_t* a, const int8_t* w,
                     int32_t* acc) {
  parallel_for(M, 1, [&](int64_t begin, int64_t end) {
    for (int64_t m = begin; m < end; ++m) {
      const uint8_t* row = a + m * K;
      for (int64_t n = 0; n < N; ++n) {
        int32_t s = 0;
        for (int64_t k = 0; k < K; ++k)
          s += static_cast<int32_t>(row[k]) * static_cast<int32_t>(w[int8::packed_index(k, n, K)]);
        acc[m * N + n] = s;
      }
    }
  });
}

using convgeo::tap_table;

void conv_u8s8(const ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w, int32_t* acc,
               const uint8_t* zp_c) {
  const auto& g = p.g;
  const int64_t cg = p.C / p.group, mg = p.M / p.group, ks = g.kernel_size();
  const int64_t kg = cg * ks, in_size = g.in_size(), out_size = g.out_size();
  assert(!p.packed || p.group == 1);
  const std::vector<int64_t> taps = tap_table(g);
  parallel_for(p.batch * p.M, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bm = begin; bm < end; ++bm) {
      const int64_t b = bm / p.M, m = bm % p.M, grp = m / mg;
      const uint8_t* x = xq + (b * p.C + grp * cg) * in_size;
      int32_t* out = acc + bm * out_size;
      for (int64_t o = 0; o < out_size; ++o) {
        const int64_t* t = taps.data() + o * ks;
        int32_t s = 0;
        for (int64_t c = 0; c < cg; ++c) {
          for (int64_t r = 0; r < ks; ++r) {
            const int64_t kk = c * ks + r;  // row of W's [K, N] view
            const int32_t wv = p.packed ? w[int8::packed_index(kk, m, kg)] : w[m * kg + kk];
            const int32_t pad = zp_c ? zp_c[grp * cg + c] : zp;
            const int32_t xv = t[r] < 0 ? pad : x[c * in_size + t[r]];
            s += xv * wv;
          }
        }
        out[o] = s;
      }
    }
  });
}

void conv_transpose_u8s8(const ConvProblem& p, const uint8_t* xq, uint8_t zp, const int8_t* w,
                         int32_t* acc) {
  // Output o = i*stride - pad_begin + k*dilation: Conv's index formula with
  // the roles of input and output swapped, so the tap table of the swapped
  // geometry lists, per input position i and tap r, the output it reaches.
  convgeo::ConvGeometry h = p.g;
  std::swap(h.in, h.out);
  const std::vector<int64_t> targets = tap_table(h);
  const int64_t cg = p.C / p.group, mg = p.M / p.group, ks = h.kernel_size();
  const int64_t in_size = h.out_size(), out_size = h.in_size();
  parallel_for(p.batch * p.M, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bch = begin; bch < end; ++bch) {
      const int64_t b = bch / p.M, ch = bch % p.M, grp = ch / mg, m = ch % mg;
      int32_t* out = acc + bch * out_size;
      std::fill(out, out + out_size, 0);
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t ci = grp * cg + c;
        const uint8_t* x = xq + (b * p.C + ci) * in_size;
        const int8_t* wk = w + (ci * mg + m) * ks;  // W[ci][m][:]
        for (int64_t i = 0; i < in_size; ++i) {
          const int32_t xv = static_cast<int32_t>(x[i]) - zp;
          const int64_t* t = targets.data() + i * ks;
          for (int64_t r = 0; r < ks; ++r)
            if (t[r] >= 0) out[t[r]] += xv * static_cast<int32_t>(wk[r]);
        }
      }
    }
  });
}

}  // namespace qref

}  // namespace sarai::kernels
