// Tests for the AVX2 and AVX-VNNI micro-kernels of kernels/cpu/qgemm.h
// (kernels/cpu/qgemm_u8s8_4x16c4__avx2.cc), each run through the real driver:
//  - qgemm_u8s8_s32 must equal the scalar reference qref::gemm_u8s8_n16k4
//    exactly (ASSERT_EQ on every int32, reported as "@[m x n] M=.. N=.. K=..")
//    over K, M and N tails, random data and the cases where pairs of u8 × s8
//    products overflow int16 (activations 255 with weights ±127, and -128);
//  - the tile never reads an activation past a[m][K-1] and epilogue_row
//    never touches memory past element n-1 (buffers end at a PROT_NONE page);
//  - epilogue_row equals qgemm_epilogue_row_scalar bit for bit (memcmp),
//    NaN and -0 included, and so does qgemm_u8s8 with the scalar micro-kernel.
// Every test runs once per ISA (Avx2/QgemmAvx2Exact.*/avx2, .../avx2_vnni) and is
// skipped where the CPU/OS lack it. tests/qgemm_test.cc runs every level
// (Levels/QgemmIsa.*); this file goes deeper on the two AVX2 ones.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"
#include "test_util.h"

namespace sarai {
namespace {

using kernels::QgemmActivation;
using kernels::QgemmEpilogue;
using kernels::QgemmUkernel;

using test::Guarded;

enum class Data { kRandom, kPlus127, kMinus127, kAlternating, kPairs, kMinus128 };

const char* data_name(Data d) {
  switch (d) {
    case Data::kRandom: return "random";
    case Data::kPlus127: return "255 x +127";
    case Data::kMinus127: return "255 x -127";
    case Data::kAlternating: return "255 x ±127 alternating in k";
    case Data::kPairs: return "255 x ±127 alternating by k pairs";
    case Data::kMinus128: return "255 x -128";
  }
  return "?";
}

// a [M, lda] (row m's bytes past K are noise the result must not depend on:
// their weights are the zero padding or another group's) and w [K, N].
void fill(Data d, int64_t M, int64_t K, int64_t N, int64_t lda, uint8_t* a, std::vector<int8_t>* w,
          uint32_t seed) {
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < M * lda; ++i) {
    const bool in_row = i % lda < K;
    a[i] = static_cast<uint8_t>(d == Data::kRandom || !in_row ? rng() & 255 : 255);
  }
  w->resize(static_cast<size_t>(K * N));
  for (int64_t k = 0; k < K; ++k) {
    for (int64_t n = 0; n < N; ++n) {
      int v = 0;
      switch (d) {
        case Data::kRandom: v = static_cast<int>(rng() % 255) - 127; break;
        case Data::kPlus127: v = 127; break;
        case Data::kMinus127: v = -127; break;
        case Data::kAlternating: v = (k + n) % 2 ? -127 : 127; break;
        case Data::kPairs: v = (k / 2 + n) % 2 ? -127 : 127; break;
        case Data::kMinus128: v = -128; break;
      }
      (*w)[static_cast<size_t>(k * N + n)] = static_cast<int8_t>(v);
    }
  }
}

// qgemm_u8s8_s32 with `uk` == the reference, every int32. The last row of
// `a` ends at a guard page (lda == K) so a read past a[M-1][K-1] faults.
void check(const QgemmUkernel& uk, int64_t M, int64_t K, int64_t N, Data d, int64_t lda_pad = 0) {
  const int64_t lda = K + lda_pad;
  Guarded<uint8_t> a(M * lda);
  std::vector<int8_t> w;
  fill(d, M, K, N, lda, a.data(), &w, static_cast<uint32_t>(M * 1000003 + K * 101 + N));
  const std::vector<int8_t> packed = test::pack_n16k4(w, K, N);
  std::vector<uint8_t> dense(static_cast<size_t>(M * K));
  for (int64_t m = 0; m < M; ++m) std::memcpy(&dense[m * K], &a[m * lda], static_cast<size_t>(K));
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N), -7);
  kernels::qref::gemm_u8s8_n16k4(M, K, N, dense.data(), packed.data(), want.data());
  kernels::qgemm_u8s8_s32(a.data(), M, K, lda, packed.data(), N, got.data(), N, &uk);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(got[static_cast<size_t>(m * N + n)], want[static_cast<size_t>(m * N + n)])
          << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K << " lda=" << lda
          << " (" << data_name(d) << ", " << isa_name(uk.isa) << ")";
}

std::vector<int64_t> sorted_unique(std::vector<int64_t> v) {
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

const int64_t kKs[] = {1, 2, 3, 4, 5, 7, 31, 61, 127, 257, 2053};

class QgemmAvx2Exact : public test::QgemmUkernelTest {
 protected:
  void SetUp() override {
    test::QgemmUkernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    ASSERT_EQ(64 % uk_->mr, 0);
    ASSERT_LE(uk_->np * 16, 64);
  }
  std::vector<int64_t> ms() const {
    std::vector<int64_t> v;
    for (int64_t m = 1; m <= uk_->mr + 1; ++m) v.push_back(m);
    v.push_back(64);
    v.push_back(65);
    return sorted_unique(v);
  }
  std::vector<int64_t> ns() const { return sorted_unique({1, 15, 16, 17, 31, 47, uk_->np * 16 + 15}); }
};

TEST_P(QgemmAvx2Exact, EqualsReferenceOverTailsRandom) {
  for (int64_t K : kKs)
    for (int64_t N : ns())
      for (int64_t M : ms()) ASSERT_NO_FATAL_FAILURE(check(*uk_, M, K, N, Data::kRandom));
}

TEST_P(QgemmAvx2Exact, EqualsReferenceWherePairsOverflowInt16) {
  // 255·127·2 = 64770 > 32767: a vpmaddubsw pair would saturate.
  for (Data d : {Data::kPlus127, Data::kMinus127, Data::kAlternating, Data::kPairs, Data::kMinus128})
    for (int64_t K : {4, 7, 61, 2053})
      for (int64_t N : {17, 47})
        for (int64_t M : {int64_t{1}, int64_t{uk_->mr}, int64_t{uk_->mr + 1}, int64_t{65}})
          ASSERT_NO_FATAL_FAILURE(check(*uk_, M, K, N, d));
}

TEST_P(QgemmAvx2Exact, LargestReductionDoesNotOverflow) {
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 5, kernels::qref::kMaxReduction, 17, Data::kPlus127));
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 5, kernels::qref::kMaxReduction, 17, Data::kMinus127));
}

TEST_P(QgemmAvx2Exact, HonoursRowStride) {
  for (int64_t K : {3, 61, 257})
    for (int64_t pad : {1, 5, 64})
      ASSERT_NO_FATAL_FAILURE(check(*uk_, uk_->mr + 3, K, 33, Data::kRandom, pad));
}

// Random epilogue inputs; residual, cscale and bias sprinkled with values
// that exercise the float corner cases (NaN, ±0, ±inf, huge).
struct EpilogueCase {
  std::vector<int32_t> acc, comp;
  std::vector<float> cscale, bias, residual;
};

EpilogueCase make_epilogue_case(int64_t n, std::mt19937& rng) {
  const float kSpecial[] = {0.f, -0.f, std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(), 3e38f, -1e-40f};
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  auto special_or = [&](float v) { return rng() % 5 == 0 ? kSpecial[rng() % 7] : v; };
  EpilogueCase c;
  for (int64_t j = 0; j < n; ++j) {
    const int32_t acc = static_cast<int32_t>(rng());
    c.acc.push_back(rng() % 4 == 0 ? static_cast<int32_t>(rng() % 2001) - 1000 : acc);
    // Sometimes comp == acc, so v = 0 and the sign of zero matters below.
    c.comp.push_back(rng() % 4 == 0 ? c.acc.back() : static_cast<int32_t>(rng()));
    c.cscale.push_back(rng() % 8 == 0 ? -0.f : u(rng) * 1e-6f);
    c.bias.push_back(special_or(rng() % 4 == 0 ? 0.f : u(rng)));
    c.residual.push_back(special_or(u(rng)));
  }
  return c;
}

TEST_P(QgemmAvx2Exact, EpilogueRowEqualsScalarBitForBit) {
  std::mt19937 rng(7);
  for (int64_t n = 1; n <= 40; ++n) {
    const EpilogueCase c = make_epilogue_case(n, rng);
    // Inputs and output at guard pages: nothing past element n-1 is touched.
    Guarded<int32_t> acc(n), comp(n);
    Guarded<float> cscale(n), bias(n), residual(n), y(n);
    std::copy(c.acc.begin(), c.acc.end(), acc.data());
    std::copy(c.comp.begin(), c.comp.end(), comp.data());
    std::copy(c.cscale.begin(), c.cscale.end(), cscale.data());
    std::copy(c.bias.begin(), c.bias.end(), bias.data());
    std::copy(c.residual.begin(), c.residual.end(), residual.data());
    // A row's own (s_x, z_x) (per-row activations) takes comp as wsum: the
    // extreme zero point 255 times int32 extremes wraps, as the scalar does.
    const kernels::QuantParams row{0.0371f, 255};
    for (int with = 0; with < 12; ++with) {
      const int32_t* cp = with & 1 ? comp.data() : nullptr;
      const float* bp = with & 2 ? bias.data() : nullptr;
      const float* rp = with & 4 ? residual.data() : nullptr;
      const kernels::QuantParams* rowp = with & 8 ? &row : nullptr;
      if (rowp && !cp) continue;  // a row's constants need wsum
      for (QgemmActivation act : {QgemmActivation::kNone, QgemmActivation::kRelu}) {
        std::vector<float> want(static_cast<size_t>(n));
        kernels::qgemm_epilogue_row_scalar(acc.data(), n, cp, cscale.data(), rowp, bp, rp, act, want.data());
        std::fill(y.data(), y.data() + n, 12345.f);
        uk_->epilogue_row(acc.data(), n, cp, cscale.data(), rowp, bp, rp, act, y.data());
        ASSERT_EQ(std::memcmp(y.data(), want.data(), static_cast<size_t>(n) * sizeof(float)), 0)
            << "n=" << n << " comp=" << (cp != nullptr) << " bias=" << (bp != nullptr)
            << " residual=" << (rp != nullptr) << " row=" << (rowp != nullptr) << " relu=" << (act == QgemmActivation::kRelu)
            << " (" << isa_name(uk_->isa) << ")";
      }
    }
  }
}

TEST_P(QgemmAvx2Exact, FusedGemmEqualsScalarMicroKernelBitForBit) {
  // Tile + epilogue_row through the driver against the scalar micro-kernel,
  // with a residual of another row stride and a K spanning two k-blocks.
  for (int64_t K : {61, 2053}) {
    const int64_t M = 37, N = 47, ldr = 50;
    std::mt19937 rng(static_cast<uint32_t>(K));
    std::vector<uint8_t> a(static_cast<size_t>(M * K));
    std::vector<int8_t> w;
    fill(Data::kRandom, M, K, N, K, a.data(), &w, static_cast<uint32_t>(K) + 1);
    const std::vector<int8_t> packed = test::pack_n16k4(w, K, N);
    const EpilogueCase c = make_epilogue_case(N, rng);
    std::vector<float> residual(static_cast<size_t>(M * ldr));
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& v : residual) v = u(rng);
    residual[3] = -0.f;
    residual[ldr + 5] = std::numeric_limits<float>::quiet_NaN();
    for (QgemmActivation act : {QgemmActivation::kNone, QgemmActivation::kRelu}) {
      QgemmEpilogue ep;
      ep.comp = c.comp.data();
      ep.cscale = c.cscale.data();
      ep.bias = c.bias.data();
      ep.residual = residual.data();
      ep.ldr_m = ldr;
      ep.act = act;
      ep.ldy_m = N;
      std::vector<float> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N));
      ep.y = want.data();
      kernels::qgemm_u8s8(a.data(), M, K, K, packed.data(), N, ep, kernels::qgemm_ukernel(Isa::kScalar));
      ep.y = got.data();
      kernels::qgemm_u8s8(a.data(), M, K, K, packed.data(), N, ep, uk_);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0)
          << "K=" << K << " relu=" << (act == QgemmActivation::kRelu) << " ("
          << isa_name(uk_->isa) << ")";
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Avx2, QgemmAvx2Exact, ::testing::Values(Isa::kAvx2, Isa::kAvx2Vnni),
                         [](const ::testing::TestParamInfo<Isa>& info) {
                           return std::string(isa_name(info.param));
                         });

}  // namespace
}  // namespace sarai
