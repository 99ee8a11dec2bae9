// Tests for kernels/cpu/qgemm.h: the INT8 GEMM of every ISA level (scalar, avx2,
// avx2_vnni, avx512_vnni; each skipped where the CPU/OS lacks it) must equal
// the scalar reference qref::gemm_u8s8_n16k4 exactly (ASSERT_EQ on every
// int32, reported as "@[m x n] M=.. N=.. K=.."), over K, N and M tails, random
// data and the extreme case (activations 255, weights ±127); the fused float
// epilogue must equal the reference epilogue bit for bit; results must not
// depend on the thread count.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/int8_layout.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/qref.h"
#include "int8_reference.h"
#include "test_util.h"
#include "runtime/cpu_isa.h"
#include "runtime/parallel.h"

namespace sarai {
namespace {

using kernels::QgemmActivation;
using kernels::QgemmEpilogue;
using kernels::QgemmUkernel;

enum class Data { kRandom, kExtreme };

struct Problem {
  std::vector<uint8_t> a;
  std::vector<int8_t> packed;
};

Problem make(int64_t M, int64_t K, int64_t N, Data d, uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p;
  p.a.resize(static_cast<size_t>(M * K));
  std::vector<int8_t> w(static_cast<size_t>(K * N));
  if (d == Data::kRandom) {
    for (auto& v : p.a) v = static_cast<uint8_t>(rng() & 255);
    for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  } else {
    for (auto& v : p.a) v = 255;
    for (auto& v : w) v = rng() & 1 ? 127 : -127;
  }
  p.packed = test::pack_n16k4(w, K, N);
  return p;
}

void check(const QgemmUkernel& uk, int64_t M, int64_t K, int64_t N, Data d) {
  const Problem p = make(M, K, N, d, static_cast<uint32_t>(M * 1000003 + K * 101 + N));
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N), -7);
  kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), want.data());
  kernels::qgemm_u8s8_s32(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N, &uk);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(got[static_cast<size_t>(m * N + n)], want[static_cast<size_t>(m * N + n)])
          << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K
          << (d == Data::kExtreme ? " (255 x ±127)" : " (random)") << " isa " << isa_name(uk.isa);
}

// Every ISA level; the test body skips the ones this CPU/OS lacks.
using QgemmIsa = test::QgemmUkernelTest;

INSTANTIATE_TEST_SUITE_P(Levels, QgemmIsa,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni,
                                           Isa::kAvx512Vnni),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

const int64_t kKs[] = {1, 2, 3, 4, 5, 7, 13, 31, 61, 127, 251, 2048};
const int64_t kNs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 48, 79};
const int64_t kMs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};

TEST_P(QgemmIsa, EqualsReferenceOverTailsRandom) {
  for (int64_t K : kKs)
    for (int64_t N : kNs)
      for (int64_t M : kMs) ASSERT_NO_FATAL_FAILURE(check(*uk_, M, K, N, Data::kRandom));
}

TEST_P(QgemmIsa, EqualsReferenceOverTailsAt255AndPlusMinus127) {
  for (int64_t K : kKs)
    for (int64_t N : kNs)
      for (int64_t M : kMs) ASSERT_NO_FATAL_FAILURE(check(*uk_, M, K, N, Data::kExtreme));
}

TEST_P(QgemmIsa, LargestReductionDoesNotOverflow) {
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 5, kernels::qref::kMaxReduction, 17, Data::kExtreme));
}

TEST_P(QgemmIsa, ThreadedLargeProblemAndKBlocks) {
  // Several row blocks and panel groups, so parallel_for splits it, and
  // K > one k-block (2048), so partial sums accumulate across blocks.
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 203, 1031, 97, Data::kRandom));
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 130, 1024, 64, Data::kExtreme));
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 69, 4099, 35, Data::kRandom));
  ASSERT_NO_FATAL_FAILURE(check(*uk_, 66, 6144, 48, Data::kExtreme));
}

TEST_P(QgemmIsa, HonoursStridesAndLeavesOtherColumnsAlone) {
  const int64_t M = 7, K = 37, N = 19, lda = 45, ldc = 23;
  std::mt19937 rng(5);
  std::vector<uint8_t> a(static_cast<size_t>(M * lda));
  for (auto& v : a) v = static_cast<uint8_t>(rng() & 255);
  std::vector<int8_t> w(static_cast<size_t>(K * N));
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  const std::vector<int8_t> packed = test::pack_n16k4(w, K, N);
  std::vector<int32_t> c(static_cast<size_t>(M * ldc), -1);
  kernels::qgemm_u8s8_s32(a.data(), M, K, lda, packed.data(), N, c.data(), ldc, uk_);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<int32_t> want(static_cast<size_t>(N));
    kernels::qref::gemm_u8s8_n16k4(1, K, N, a.data() + m * lda, packed.data(), want.data());
    for (int64_t n = 0; n < ldc; ++n)
      ASSERT_EQ(c[static_cast<size_t>(m * ldc + n)], n < N ? want[static_cast<size_t>(n)] : -1)
          << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K;
  }
}

// The fused float epilogue (compensation, scale, bias, residual, Relu; row
// and column-major output; one (s_x, z_x) per row) against the reference epilogue
// (tests/int8_reference.h) applied to the reference integers, compared as bits.
TEST_P(QgemmIsa, FusedEpilogueEqualsReferenceBitForBit) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> u(-2.f, 2.f);
  for (int64_t M : {1, 3, 4, 5, 70})
    for (int64_t N : {1, 15, 16, 17, 33, 70})
      for (int variant = 0; variant < 8; ++variant) {
        const int64_t K = 37 + M;
        const Problem p = make(M, K, N, Data::kRandom, static_cast<uint32_t>(M * 31 + N + variant));
        std::vector<int32_t> acc(static_cast<size_t>(M * N));
        kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), acc.data());
        std::vector<int32_t> comp(static_cast<size_t>(N));
        std::vector<float> cs(static_cast<size_t>(N)), bias(static_cast<size_t>(N)),
            res(static_cast<size_t>(M * N));
        for (auto& v : comp) v = static_cast<int32_t>(rng() % 200000) - 100000;
        for (auto& v : cs) v = u(rng) * 1e-3f;
        for (auto& v : bias) v = u(rng);
        for (auto& v : res) v = u(rng);
        res[0] = -0.f;
        const bool with_bias = variant & 1, with_res = variant & 2;
        const QgemmActivation act = (M + N) % 2 ? QgemmActivation::kRelu : QgemmActivation::kNone;
        const bool col_major = (variant & 3) == 3;  // y[n][m], as QConv writes
        // Per-row activations: comp and cs are wsum and the weight scales,
        // row m's constants z_x[m] * wsum[n] and s_x[m] * scale[n].
        std::vector<kernels::QuantParams> rows;
        if (variant & 4)
          for (int64_t m = 0; m < M; ++m)
            rows.push_back({u(rng) * u(rng) + 2.5f, static_cast<uint8_t>(m == 0 ? 255 : m == 1 ? 0 : rng() % 256)});
        std::vector<float> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N), 7.f);
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = 0; n < N; ++n) {
            const size_t i = static_cast<size_t>(m * N + n), j = static_cast<size_t>(n);
            int32_t c = comp[j];
            float s = cs[j];
            if (!rows.empty()) {
              const kernels::QuantParams& r = rows[static_cast<size_t>(m)];
              c = static_cast<int32_t>(int64_t{r.zero_point} * comp[j]);
              s = r.scale * cs[j];
            }
            want[static_cast<size_t>(col_major ? n * M + m : m * N + n)] = test::epilogue_ref(
                acc[i], c, s, with_bias ? bias[j] : 0.f, with_res ? &res[i] : nullptr, act);
          }
        QgemmEpilogue ep;
        ep.comp = comp.data();
        ep.cscale = cs.data();
        ep.row_x = rows.empty() ? nullptr : rows.data();
        ep.bias = with_bias ? bias.data() : nullptr;
        ep.residual = with_res ? res.data() : nullptr;
        ep.ldr_m = N;
        ep.act = act;
        ep.y = got.data();
        ep.ldy_m = col_major ? 1 : N;
        ep.ldy_n = col_major ? M : 1;
        kernels::qgemm_u8s8(p.a.data(), M, K, K, p.packed.data(), N, ep, uk_);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)))
            << "M=" << M << " N=" << N << " variant " << variant << " isa " << isa_name(uk_->isa);
      }
}

TEST_P(QgemmIsa, ResultsDoNotDependOnThreadCount) {
  const int64_t M = 150, K = 515, N = 200;
  const Problem p = make(M, K, N, Data::kRandom, 23);
  const int saved = num_threads();
  std::vector<int32_t> first;
  for (int threads : {1, 2, 3, 5}) {
    set_num_threads(threads);
    std::vector<int32_t> got(static_cast<size_t>(M * N));
    kernels::qgemm_u8s8_s32(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N, uk_);
    if (first.empty()) first = got;
    EXPECT_EQ(got, first) << threads << " threads";
  }
  set_num_threads(saved);
}

TEST(Qgemm, DefaultIsTheBestAllowedLevel) {
  const QgemmUkernel& uk = kernels::qgemm_default_ukernel();
  EXPECT_TRUE(isa_allowed(uk.isa)) << isa_name(uk.isa);
  for (int i = static_cast<int>(uk.isa) + 1; i <= static_cast<int>(Isa::kAvx512Vnni); ++i)
    EXPECT_FALSE(isa_allowed(static_cast<Isa>(i)) && kernels::qgemm_ukernel(static_cast<Isa>(i)))
        << isa_name(static_cast<Isa>(i)) << " is allowed but " << isa_name(uk.isa) << " was chosen";
}

// Timing, run by hand:
//   qgemm_test --gtest_also_run_disabled_tests --gtest_filter='*Time*'
// QMatMul's core at M = 1500, K = N = 2048 on one thread; GOPS = 2 M N K / s.
TEST(Qgemm, DISABLED_TimeM1500K2048N2048OneThread) {
  const int64_t M = 1500, K = 2048, N = 2048;
  const Problem p = make(M, K, N, Data::kRandom, 3);
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N));
  const int saved = num_threads();
  set_num_threads(1);
  auto seconds = [](auto&& f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  const double ops = 2.0 * M * N * K;
  double best = 1e30;
  for (int r = 0; r < 5; ++r)
    best = std::min(best, seconds([&] {
      kernels::qgemm_u8s8_s32(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N);
    }));
  const double ref = seconds([&] {
    kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), want.data());
  });
  set_num_threads(saved);
  std::printf("%s: %.2f ms (best of 5), %.1f GOPS; ref: %.1f ms, %.2f GOPS; speedup %.0fx\n",
              isa_name(kernels::qgemm_default_ukernel().isa), best * 1e3, ops / best * 1e-9, ref * 1e3, ops / ref * 1e-9, ref / best);
  ASSERT_EQ(got, want);
}

}  // namespace
}  // namespace sarai
