// A tester for the convolution cores' inner loops (kernels/cpu/qconv_loops.h)
// at every ISA level, driving each directly, as qgemm_ukernel_test.cc does
// for the GEMM micro-kernels: every length 0..70 (every tail of 16, 32 and 64
// lanes), strides 1, 2 and 3, every buffer at a PROT_NONE page on one side
// and then on the other, so a read or write outside what the contract
// allows faults. Integer results equal the contract's formula computed here
// in int64; float results equal qgemm_epilogue_row_scalar's (the reference
// epilogue) bit for bit. Then the three convolution paths through their
// entry points (kernels/cpu/qconv.h), input, weights and output at guard
// pages, against the scalar reference cores (kernels/cpu/qref.h).
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/platform.h"
#include "kernels/cpu/qconv.h"
#include "kernels/cpu/qref.h"
#include "runtime/cpu_isa.h"
#include "test_util.h"

namespace sarai {
namespace {

namespace qref = kernels::qref;
namespace convgeo = kernels::convgeo;
using kernels::QconvLoops;
using kernels::QgemmActivation;
using test::GuardSide;

constexpr GuardSide kSides[] = {GuardSide::kAfter, GuardSide::kBefore};
const char* side_name(GuardSide s) { return s == GuardSide::kAfter ? "guard after" : "guard before"; }

class QconvLoopsTest : public test::QgemmUkernelTest {
 protected:
  void SetUp() override {
    test::QgemmUkernelTest::SetUp();
    if (IsSkipped()) return;
    loops_ = kernels::platform_row(GetParam()).qconv;  // uk_ passed the CPU check
    ASSERT_NE(loops_, nullptr);
  }
  const QconvLoops* loops_ = nullptr;
};

TEST_P(QconvLoopsTest, AxpyEveryLengthAndStride) {
  std::mt19937 rng(11);
  for (GuardSide side : kSides)
    for (int64_t s : {1, 2, 3})
      for (int64_t n = 0; n <= 70; ++n)
        for (int16_t w : {int16_t{-128}, int16_t{127}, int16_t{-3}}) {
          // x holds exactly the bytes read: x[o * s] for o < n.
          const int64_t x_bytes = n == 0 ? 0 : (n - 1) * s + 1;
          test::Guarded<uint8_t> x(x_bytes, side);
          test::Guarded<int32_t> acc(n, side);
          std::vector<int64_t> want(static_cast<size_t>(n));
          for (int64_t i = 0; i < x_bytes; ++i) x[i] = static_cast<uint8_t>(rng());
          for (int64_t o = 0; o < n; ++o) {
            acc[o] = static_cast<int32_t>(rng() % 2000000) - 1000000;
            want[static_cast<size_t>(o)] = acc[o] + int64_t{x[o * s]} * w;
          }
          loops_->axpy(acc.data(), x.data(), s, n, w);
          for (int64_t o = 0; o < n; ++o)
            ASSERT_EQ(acc[o], want[static_cast<size_t>(o)])
                << "o=" << o << " n=" << n << " s=" << s << " w=" << w << " " << side_name(side);
        }
}

TEST_P(QconvLoopsTest, AxpyZpEveryLength) {
  std::mt19937 rng(12);
  for (GuardSide side : kSides)
    for (int64_t n = 0; n <= 70; ++n)
      for (int16_t zp : {int16_t{0}, int16_t{128}, int16_t{255}})
        for (int16_t w : {int16_t{-128}, int16_t{127}, int16_t{5}}) {
          test::Guarded<uint8_t> x(n, side);
          test::Guarded<int32_t> acc(n, side);
          std::vector<int64_t> want(static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i) {
            x[i] = static_cast<uint8_t>(rng());
            acc[i] = static_cast<int32_t>(rng() % 2000000) - 1000000;
            want[static_cast<size_t>(i)] = acc[i] + (int64_t{x[i]} - zp) * w;
          }
          loops_->axpy_zp(acc.data(), x.data(), n, zp, w);
          for (int64_t i = 0; i < n; ++i)
            ASSERT_EQ(acc[i], want[static_cast<size_t>(i)])
                << "i=" << i << " n=" << n << " zp=" << zp << " w=" << w << " " << side_name(side);
        }
}

// transpose_epilogue over an int32 block of ni rows (positions) x lda
// (channels), writing channels [m0, m0 + nm) of y [channels, ldy]: every
// element equals the reference epilogue of its accumulator, nothing else
// of y changes.
// dw_row: every length 0..70 (every tail of its 16-output tiles), strides
// 1, 2 and 3, 1..26 taps at offsets like a padded 2-D kernel's (rows apart,
// with dilation), the extreme inputs (x = 255 with w = -128 and 127, as
// well as random bytes), x ending kDwRowSlack bytes after the last byte
// the formula uses (guard after) or starting at the first (guard before),
// acc exactly n int32 at a guard page.
TEST_P(QconvLoopsTest, DwRowEveryLengthStrideAndTapCount) {
  std::mt19937 rng(13);
  for (GuardSide side : kSides)
    for (int64_t s : {1, 2, 3})
      for (int64_t taps : {1, 2, 3, 9, 25, 26})
        for (int64_t n = 0; n <= 70; ++n)
          for (int extreme = 0; extreme < 3; ++extreme) {
            // Taps on kernel lines of up to 5, lines 97 bytes apart, dilation 1 or 2.
            const int64_t kw = std::min<int64_t>(taps, 5), dil = 1 + (n + taps) % 2;
            std::vector<int64_t> koff(static_cast<size_t>(taps));
            for (int64_t r = 0; r < taps; ++r) koff[static_cast<size_t>(r)] = (r / kw) * 97 + (r % kw) * dil;
            const int64_t kmax = koff.back();
            const int64_t used = n == 0 ? 0 : (n - 1) * s + kmax + 1;
            const int64_t x_bytes = n == 0 ? 0 : used + kernels::kDwRowSlack;
            test::Guarded<uint8_t> x(x_bytes, side);
            test::Guarded<int32_t> acc(n, side);
            std::vector<int8_t> w(static_cast<size_t>(taps));
            for (int64_t i = 0; i < x_bytes; ++i) x[i] = extreme ? 255 : static_cast<uint8_t>(rng());
            for (int8_t& v : w)
              v = extreme == 1 ? int8_t{-128} : extreme == 2 ? int8_t{127} : static_cast<int8_t>(rng());
            std::vector<int32_t> wp(static_cast<size_t>((taps + 1) / 2));
            kernels::dw_weight_pairs(w.data(), taps, wp.data());
            for (int64_t o = 0; o < n; ++o) acc[o] = 0x5a5a5a5a;  // overwritten, not added to
            loops_->dw_row(x.data(), s, koff.data(), wp.data(), taps, n, acc.data());
            for (int64_t o = 0; o < n; ++o) {
              int64_t want = 0;
              for (int64_t r = 0; r < taps; ++r)
                want += int64_t{x[o * s + koff[static_cast<size_t>(r)]]} * w[static_cast<size_t>(r)];
              ASSERT_EQ(acc[o], want) << "o=" << o << " n=" << n << " s=" << s << " taps=" << taps
                                      << " extreme=" << extreme << " " << side_name(side);
            }
          }
}

TEST_P(QconvLoopsTest, TransposeEpilogueEveryTail) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uni(-2.f, 2.f);
  struct Shape2 {
    int64_t ni, m0, nm, lda;
  };
  const Shape2 shapes[] = {{1, 0, 1, 1},   {16, 0, 16, 16}, {17, 0, 33, 33}, {5, 3, 20, 40},
                           {33, 16, 16, 48}, {40, 1, 7, 9},   {3, 0, 70, 70}};
  for (GuardSide side : kSides)
    for (const Shape2& sh : shapes)
      for (QgemmActivation act : {QgemmActivation::kNone, QgemmActivation::kRelu})
        for (int variant = 0; variant < 3; ++variant) {  // 0 plain, 1 residual, 2 residual = y
          const int64_t channels = sh.m0 + sh.nm, ldy = sh.ni + 3;
          test::Guarded<int32_t> acc(sh.ni * sh.lda, side);
          test::Guarded<int32_t> comp(channels, side);
          test::Guarded<float> cs(channels, side), bias(channels, side);
          test::Guarded<float> y(channels * ldy, side), res(channels * ldy, side);
          for (int64_t i = 0; i < sh.ni * sh.lda; ++i) acc[i] = static_cast<int32_t>(rng() % 200001) - 100000;
          for (int64_t m = 0; m < channels; ++m) {
            comp[m] = static_cast<int32_t>(rng() % 2001) - 1000;
            cs[m] = std::ldexp(uni(rng), -10);
            bias[m] = uni(rng);
          }
          for (int64_t i = 0; i < channels * ldy; ++i) {
            y[i] = uni(rng);
            res[i] = uni(rng);
          }
          std::vector<float> want(y.data(), y.data() + channels * ldy);
          const float* r = variant == 0 ? nullptr : variant == 1 ? res.data() : y.data();
          for (int64_t m = sh.m0; m < channels; ++m)
            for (int64_t i = 0; i < sh.ni; ++i) {
              const int64_t at = m * ldy + i;
              kernels::qgemm_epilogue_row_scalar(&acc[i * sh.lda + m], 1, &comp[m], &cs[m], nullptr, &bias[m],
                                                 r ? &r[at] : nullptr, act, &want[static_cast<size_t>(at)]);
            }
          loops_->transpose_epilogue(acc.data(), sh.lda, sh.ni, sh.m0, sh.nm, comp.data(), cs.data(),
                                     bias.data(), r, y.data(), ldy, act);
          for (int64_t i = 0; i < channels * ldy; ++i)
            ASSERT_EQ(std::memcmp(&y[i], &want[static_cast<size_t>(i)], sizeof(float)), 0)
                << "element " << i << " (channel " << i / ldy << ", position " << i % ldy << "): " << y[i]
                << " vs " << want[static_cast<size_t>(i)] << "; ni=" << sh.ni << " m0=" << sh.m0 << " nm=" << sh.nm
                << " variant " << variant << " " << side_name(side);
        }
}

// The three paths through qconv.h's entry points with x, w and the outputs
// at guard pages: the raw accumulators equal the reference cores', the
// epilogue outputs the reference epilogue of those.
struct PathCase {
  const char* name;
  int64_t batch, C, M, group, H, W, kh, kw, stride, pad, dil;
  bool transpose;
};
constexpr PathCase kPaths[] = {
    {"im2col 3x3", 2, 5, 19, 1, 7, 9, 3, 3, 1, 1, 1, false},
    {"im2col 1-D k3 s2", 1, 8, 33, 1, 1, 31, 1, 3, 2, 1, 1, false},
    {"depthwise 3x3 s2", 1, 12, 12, 12, 9, 10, 3, 3, 2, 1, 1, false},
    {"grouped dilated", 2, 8, 6, 2, 6, 11, 2, 3, 1, 2, 2, false},
    {"pointwise 1x1", 2, 19, 37, 1, 5, 29, 1, 1, 1, 0, 1, false},
    {"pointwise 1x1 K tail 1", 1, 5, 70, 1, 1, 67, 1, 1, 1, 0, 1, false},
    {"depthwise 5x5 wide lines", 1, 24, 24, 24, 12, 40, 5, 5, 1, 2, 1, false},
    {"depthwise x2 3x3 s2 wide", 2, 8, 16, 8, 6, 37, 3, 3, 2, 1, 1, false},
    {"depthwise 1-D k3 unpadded", 2, 5, 5, 5, 1, 50, 1, 3, 1, 0, 1, false},
    {"depthwise 3x3 dilated s3", 1, 4, 4, 4, 9, 61, 3, 3, 3, 2, 2, false},
    {"transpose 3x3 s2", 1, 6, 5, 1, 5, 6, 3, 3, 2, 1, 1, true},
    {"transpose grouped 1-D s3", 2, 4, 6, 2, 1, 13, 1, 4, 3, 0, 1, true},
};

qref::ConvProblem problem(const PathCase& c) {
  qref::ConvProblem p;
  p.batch = c.batch;
  p.C = c.C;
  p.M = c.M;
  p.group = c.group;
  p.packed = !c.transpose && c.group == 1;
  convgeo::ConvGeometry& g = p.g;
  g.nsp = 2;
  g.in = {c.H, c.W};
  g.kernel = {c.kh, c.kw};
  g.strides = {c.H == 1 ? 1 : c.stride, c.stride};
  g.dilations = {c.dil, c.dil};
  g.pad_begin = {c.H == 1 ? 0 : c.pad, c.pad};
  g.pad_end = g.pad_begin;
  g.out = convgeo::Ints(2);
  for (size_t d = 0; d < 2; ++d) {
    const int64_t span = (g.kernel[d] - 1) * g.dilations[d] + 1;
    g.out[d] = c.transpose ? (g.in[d] - 1) * g.strides[d] + span - g.pad_begin[d] - g.pad_end[d]
                           : (g.in[d] + g.pad_begin[d] + g.pad_end[d] - span) / g.strides[d] + 1;
  }
  return p;
}

TEST_P(QconvLoopsTest, PathsUnderGuardPages) {
  for (const PathCase& c : kPaths)
    for (GuardSide side : kSides) {
      SCOPED_TRACE(std::string(c.name) + ", " + side_name(side));
      const qref::ConvProblem p = problem(c);
      const int64_t taps = c.kh * c.kw, in_size = p.g.in_size(), out_size = p.g.out_size();
      const int64_t x_bytes = c.batch * c.C * in_size;
      const int64_t w_count = c.transpose ? c.C * (c.M / c.group) * taps : c.M * (c.C / c.group) * taps;
      const int64_t y_count = c.batch * c.M * out_size;
      std::mt19937 rng(static_cast<uint32_t>(x_bytes + w_count));
      test::Guarded<uint8_t> x(x_bytes, side);
      for (int64_t i = 0; i < x_bytes; ++i) x[i] = static_cast<uint8_t>(rng());
      std::vector<int8_t> plain(static_cast<size_t>(w_count));
      for (int8_t& v : plain) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
      // Packed (group 1): W as [K = C * taps, N = M] in N16K4, from plain [M, C, taps].
      std::vector<int8_t> wbytes = plain;
      if (p.packed) {
        const int64_t K = c.C * taps;
        std::vector<int8_t> kn(static_cast<size_t>(K * c.M));
        for (int64_t m = 0; m < c.M; ++m)
          for (int64_t k = 0; k < K; ++k) kn[static_cast<size_t>(k * c.M + m)] = plain[static_cast<size_t>(m * K + k)];
        wbytes = test::pack_n16k4(kn, K, c.M);
      }
      test::Guarded<int8_t> w(static_cast<int64_t>(wbytes.size()), side);
      std::memcpy(w.data(), wbytes.data(), wbytes.size());
      const uint8_t zp = 131;

      std::vector<int32_t> ref(static_cast<size_t>(y_count));
      if (c.transpose) qref::conv_transpose_u8s8(p, x.data(), zp, plain.data(), ref.data());
      else qref::conv_u8s8(p, x.data(), zp, p.packed ? w.data() : plain.data(), ref.data());

      test::Guarded<int32_t> acc(y_count, side);
      if (c.transpose) kernels::qconv_transpose_u8s8_s32(p, x.data(), zp, w.data(), acc.data(), uk_);
      else kernels::qconv_u8s8_s32(p, x.data(), zp, w.data(), acc.data(), uk_);
      for (int64_t i = 0; i < y_count; ++i) ASSERT_EQ(acc[i], ref[static_cast<size_t>(i)]) << "accumulator " << i;

      std::vector<int32_t> comp(static_cast<size_t>(c.M));
      std::vector<float> cs(static_cast<size_t>(c.M)), bias(static_cast<size_t>(c.M));
      for (int64_t m = 0; m < c.M; ++m) {
        comp[static_cast<size_t>(m)] = c.transpose ? 0 : static_cast<int32_t>(rng() % 4001) - 2000;
        cs[static_cast<size_t>(m)] = 1e-4f * static_cast<float>(1 + m);
        bias[static_cast<size_t>(m)] = 0.25f * static_cast<float>(m % 5) - 0.5f;
      }
      test::Guarded<float> res(y_count, side), y(y_count, side);
      for (int64_t i = 0; i < y_count; ++i) res[i] = static_cast<float>(static_cast<int>(rng() % 200) - 100) / 64.f;
      for (QgemmActivation act : {QgemmActivation::kNone, QgemmActivation::kRelu}) {
        kernels::QconvEpilogue ep;
        ep.comp = c.transpose ? nullptr : comp.data();
        ep.cscale = cs.data();
        ep.bias = bias.data();
        ep.residual = res.data();
        ep.act = act;
        ep.y = y.data();
        if (c.transpose) kernels::qconv_transpose_u8s8(p, x.data(), zp, w.data(), ep, uk_);
        else kernels::qconv_u8s8(p, x.data(), zp, w.data(), ep, uk_);
        for (int64_t b = 0; b < c.batch; ++b)
          for (int64_t m = 0; m < c.M; ++m) {
            const int64_t off = (b * c.M + m) * out_size;
            std::vector<float> want(static_cast<size_t>(out_size));
            std::vector<int32_t> cm(static_cast<size_t>(out_size), ep.comp ? comp[static_cast<size_t>(m)] : 0);
            std::vector<float> csm(static_cast<size_t>(out_size), cs[static_cast<size_t>(m)]);
            std::vector<float> bm(static_cast<size_t>(out_size), bias[static_cast<size_t>(m)]);
            kernels::qgemm_epilogue_row_scalar(&ref[static_cast<size_t>(off)], out_size, cm.data(), csm.data(),
                                               nullptr, bm.data(), &res[off], act, want.data());
            ASSERT_EQ(std::memcmp(&y[off], want.data(), want.size() * sizeof(float)), 0)
                << "image " << b << " channel " << m << (act == QgemmActivation::kRelu ? " relu" : "");
          }
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Levels, QconvLoopsTest,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace sarai
