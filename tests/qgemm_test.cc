// Tests for kernels/qgemm.h: the AVX-512 VNNI QMatMul core must equal the
// scalar reference qref::gemm_u8s8_n16k4 exactly (ASSERT_EQ on every int32,
// reported as "@[m x n] M=.. N=.. K=.."), over K, N and M tails, random data
// and the extreme case (activations 255, weights ±127). Skipped when the
// CPU/OS lack AVX-512 VNNI.
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/int8_layout.h"
#include "kernels/qgemm.h"
#include "kernels/qlinear.h"
#include "runtime/parallel.h"

namespace sarai {
namespace {

using kernels::qgemm_u8s8_n16k4_avx512vnni;

// Row-major w [K, N] -> N16K4 bytes (zero padding).
std::vector<int8_t> pack(const std::vector<int8_t>& w, int64_t K, int64_t N) {
  std::vector<int8_t> p(static_cast<size_t>(int8::packed_size(K, N)), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n)
      p[static_cast<size_t>(int8::packed_index(k, n, K))] = w[static_cast<size_t>(k * N + n)];
  return p;
}

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
  p.packed = pack(w, K, N);
  return p;
}

void check(int64_t M, int64_t K, int64_t N, Data d) {
  const Problem p = make(M, K, N, d, static_cast<uint32_t>(M * 1000003 + K * 101 + N));
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N), -7);
  kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), want.data());
  qgemm_u8s8_n16k4_avx512vnni(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n)
      ASSERT_EQ(got[static_cast<size_t>(m * N + n)], want[static_cast<size_t>(m * N + n)])
          << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K
          << (d == Data::kExtreme ? " (255 x ±127)" : " (random)");
}

#define SKIP_WITHOUT_VNNI() \
  if (!kernels::cpu_has_avx512vnni()) GTEST_SKIP() << "CPU/OS without AVX-512 VNNI"

const int64_t kKs[] = {1, 2, 3, 4, 5, 7, 13, 31, 61, 127, 251, 2048};
const int64_t kNs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 31, 32, 33, 48};
const int64_t kMs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17};

TEST(QgemmAvx512Vnni, EqualsReferenceOverTailsRandom) {
  SKIP_WITHOUT_VNNI();
  for (int64_t K : kKs)
    for (int64_t N : kNs)
      for (int64_t M : kMs) ASSERT_NO_FATAL_FAILURE(check(M, K, N, Data::kRandom));
}

TEST(QgemmAvx512Vnni, EqualsReferenceOverTailsAt255AndPlusMinus127) {
  SKIP_WITHOUT_VNNI();
  for (int64_t K : kKs)
    for (int64_t N : kNs)
      for (int64_t M : kMs) ASSERT_NO_FATAL_FAILURE(check(M, K, N, Data::kExtreme));
}

TEST(QgemmAvx512Vnni, LargestReductionDoesNotOverflow) {
  SKIP_WITHOUT_VNNI();
  ASSERT_NO_FATAL_FAILURE(check(5, kernels::qref::kMaxReduction, 17, Data::kExtreme));
}

TEST(QgemmAvx512Vnni, ThreadedLargeProblemAndKBlocks) {
  SKIP_WITHOUT_VNNI();
  // Several row blocks and panel pairs, so parallel_for splits it, and
  // K > one k-block (2048), so partial sums accumulate through c.
  ASSERT_NO_FATAL_FAILURE(check(203, 1031, 97, Data::kRandom));
  ASSERT_NO_FATAL_FAILURE(check(130, 1024, 64, Data::kExtreme));
  ASSERT_NO_FATAL_FAILURE(check(69, 4099, 35, Data::kRandom));
  ASSERT_NO_FATAL_FAILURE(check(66, 6144, 48, Data::kExtreme));
}

TEST(QgemmAvx512Vnni, HonoursStridesAndLeavesOtherColumnsAlone) {
  SKIP_WITHOUT_VNNI();
  const int64_t M = 7, K = 37, N = 19, lda = 45, ldc = 23;
  std::mt19937 rng(5);
  std::vector<uint8_t> a(static_cast<size_t>(M * lda));
  for (auto& v : a) v = static_cast<uint8_t>(rng() & 255);
  std::vector<int8_t> w(static_cast<size_t>(K * N));
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  const std::vector<int8_t> packed = pack(w, K, N);
  std::vector<int32_t> c(static_cast<size_t>(M * ldc), -1);
  qgemm_u8s8_n16k4_avx512vnni(a.data(), M, K, lda, packed.data(), N, c.data(), ldc);
  for (int64_t m = 0; m < M; ++m) {
    std::vector<int32_t> want(static_cast<size_t>(N));
    kernels::qref::gemm_u8s8_n16k4(1, K, N, a.data() + m * lda, packed.data(), want.data());
    for (int64_t n = 0; n < ldc; ++n)
      ASSERT_EQ(c[static_cast<size_t>(m * ldc + n)], n < N ? want[static_cast<size_t>(n)] : -1)
          << "@[" << m << " x " << n << "] M=" << M << " N=" << N << " K=" << K;
  }
}

TEST(Qgemm, DispatchEqualsReference) {
  // Whatever implementation was chosen (see SARAI_MAX_CPU_ISA).
  const int64_t M = 9, K = 61, N = 33;
  const Problem p = make(M, K, N, Data::kRandom, 11);
  std::vector<int32_t> want(static_cast<size_t>(M * N)), got(static_cast<size_t>(M * N));
  kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), want.data());
  kernels::qgemm_u8s8_n16k4(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N);
  EXPECT_EQ(got, want) << "isa " << kernels::qgemm_u8s8_n16k4_isa();
}

// Timing, run by hand:
//   qgemm_test --gtest_also_run_disabled_tests --gtest_filter='*Time*'
// QMatMul's core at M = 1500, K = N = 2048 on one thread; GOPS = 2 M N K / s.
TEST(Qgemm, DISABLED_TimeM1500K2048N2048OneThread) {
  SKIP_WITHOUT_VNNI();
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
      qgemm_u8s8_n16k4_avx512vnni(p.a.data(), M, K, K, p.packed.data(), N, got.data(), N);
    }));
  const double ref = seconds([&] {
    kernels::qref::gemm_u8s8_n16k4(M, K, N, p.a.data(), p.packed.data(), want.data());
  });
  set_num_threads(saved);
  std::printf("vnni: %.2f ms (best of 5), %.1f GOPS; ref: %.1f ms, %.2f GOPS; speedup %.0fx\n",
              best * 1e3, ops / best * 1e-9, ref * 1e3, ops / ref * 1e-9, ref / best);
  ASSERT_EQ(got, want);
}

}  // namespace
}  // namespace sarai
