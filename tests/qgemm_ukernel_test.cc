// A tester for the QGEMM micro-kernels (kernels/cpu/qgemm.h, QgemmUkernel::tile),
// driving each directly rather than through the driver (XNNPACK's
// GemmMicrokernelTester is the model): every row count 1..mr, panel count
// 1..np, reduction K = 4 groups + kt over short, odd and long K, with and
// without accumulate, row strides lda and ldc with padding, and every
// buffer (a, w, c) at a PROT_NONE page on one side and then on the other,
// so any read or write outside what the contract allows faults. Results
// equal the contract's formula, computed here in int64, exactly; the
// padding of c (columns past panels * 16, rows past `rows`) is never
// written. One instantiation per ISA; a level this CPU lacks is skipped.
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "kernels/cpu/qgemm.h"
#include "runtime/cpu_isa.h"
#include "test_util.h"

namespace sarai {
namespace {

using kernels::QgemmUkernel;
using test::GuardSide;

constexpr int32_t kSentinel = 0x5a5a5a5a;

struct TileCase {
  int64_t rows, panels, groups, kt, lda_pad, ldc_pad;
  bool accumulate;
  GuardSide side;
  std::string str() const {
    return "rows=" + std::to_string(rows) + " panels=" + std::to_string(panels) + " K=4*" + std::to_string(groups) +
           "+" + std::to_string(kt) + " lda+" + std::to_string(lda_pad) + " ldc+" + std::to_string(ldc_pad) +
           (accumulate ? " accumulate" : "") + (side == GuardSide::kAfter ? " guard after" : " guard before");
  }
};

// Runs uk.tile on one case and checks every int32 of c against the
// contract, and the padding of c against the sentinel.
void check_tile(const QgemmUkernel& uk, const TileCase& tc, uint32_t seed) {
  const int64_t K = 4 * tc.groups + tc.kt;
  const int64_t lda = K + tc.lda_pad;
  const int64_t full_groups = tc.groups + (tc.kt > 0 ? 1 : 0);
  const int64_t pstride = full_groups * 64;  // Kp * 16 bytes per panel
  const int64_t cols = tc.panels * 16;
  const int64_t ldc = cols + tc.ldc_pad;
  const int64_t c_rows = uk.mr;  // rows past tc.rows must stay untouched
  std::mt19937 rng(seed);

  // a: rows x lda, the last row ending at its last read byte (after-guard)
  // or the first row starting at the guard (before-guard).
  const int64_t a_bytes = (tc.rows - 1) * lda + K;
  test::Guarded<uint8_t> a(a_bytes, tc.side);
  for (int64_t i = 0; i < a_bytes; ++i) a[i] = static_cast<uint8_t>(rng());
  // w: every byte of every panel's groups, the partial group's bytes past kt
  // included (random: the sum runs over t < kt only).
  const int64_t w_bytes = tc.panels * pstride;
  test::Guarded<int8_t> w(std::max<int64_t>(w_bytes, 1), tc.side);
  for (int64_t i = 0; i < w_bytes; ++i) w[i] = static_cast<int8_t>(rng());
  test::Guarded<int32_t> c(c_rows * ldc, tc.side);
  std::vector<int32_t> before(static_cast<size_t>(c_rows * ldc));
  for (int64_t i = 0; i < c_rows * ldc; ++i) {
    const bool inside = i / ldc < tc.rows && i % ldc < cols;
    c[i] = inside ? static_cast<int32_t>(rng() % 2000001) - 1000000 : kSentinel;
    before[static_cast<size_t>(i)] = c[i];
  }

  uk.tile(a.data(), lda, tc.rows, w.data(), pstride, tc.panels, tc.groups, tc.kt, c.data(), ldc, tc.accumulate);

  for (int64_t i = 0; i < tc.rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) {
      int64_t want = tc.accumulate ? before[static_cast<size_t>(i * ldc + j)] : 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t g = k / 4, t = k % 4;
        want += static_cast<int64_t>(a[i * lda + k]) * w[(j / 16) * pstride + g * 64 + (j % 16) * 4 + t];
      }
      ASSERT_EQ(c[i * ldc + j], static_cast<int32_t>(want)) << "@[" << i << " x " << j << "] " << tc.str();
    }
  }
  for (int64_t i = 0; i < c_rows * ldc; ++i) {
    if (i / ldc >= tc.rows || i % ldc >= cols) {
      ASSERT_EQ(c[i], kSentinel) << "wrote c[" << i / ldc << "][" << i % ldc << "] outside the tile: " << tc.str();
    }
  }
}

using QgemmUkernelTester = test::QgemmUkernelTest;

// Every tile shape (1..mr rows, 1..np panels) over K = 1..23 and a few long
// ones, fresh and accumulating, each buffer guarded on each side.
TEST_P(QgemmUkernelTester, EveryTileShapeAndKTailMatchesTheContract) {
  uint32_t seed = 1;
  int cases = 0;
  for (GuardSide side : {GuardSide::kAfter, GuardSide::kBefore})
    for (int64_t rows = 1; rows <= uk_->mr; ++rows)
      for (int64_t panels = 1; panels <= uk_->np; ++panels)
        for (int64_t K : {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 15, 16, 17, 23, 64, 127, 515})
          for (bool accumulate : {false, true}) {
            const TileCase tc{rows, panels, K / 4, K % 4, (K % 3) * 3, (rows + panels) % 2 ? 5 : 0, accumulate, side};
            check_tile(*uk_, tc, seed++);
            if (HasFatalFailure()) return;
            ++cases;
          }
  RecordProperty("cases", cases);
}

// Extreme values: activations 255 against weights of -128 and +127 over a
// long reduction (products that saturate a pairwise int16 sum) stay exact.
TEST_P(QgemmUkernelTester, ExtremeProductsAreExact) {
  const int64_t groups = 512, rows = uk_->mr, panels = uk_->np, cols = panels * 16, pstride = groups * 64;
  std::vector<uint8_t> a(static_cast<size_t>(rows * groups * 4), 255);
  for (int8_t wv : {int8_t{-128}, int8_t{127}}) {
    std::vector<int8_t> w(static_cast<size_t>(panels * pstride), wv);
    std::vector<int32_t> c(static_cast<size_t>(rows * cols), 0);
    uk_->tile(a.data(), groups * 4, rows, w.data(), pstride, panels, groups, 0, c.data(), cols, false);
    for (int32_t v : c) ASSERT_EQ(v, 255 * wv * groups * 4) << "w = " << int(wv);
  }
}

// The optional packed path (QgemmUkernel::pack_a + tile_packed, where a
// micro-kernel has it): pack_a's bytes equal the contract's layout and never
// read past a[i * lda + K - 1] (a guarded on each side); tile_packed on them
// equals the same formula as `tile`, every row count, K tail and
// accumulate, c guarded, its padding untouched.
TEST_P(QgemmUkernelTester, PackedPathMatchesTheContract) {
  if (uk_->pack_a == nullptr) GTEST_SKIP() << "no packed path";
  ASSERT_NE(uk_->tile_packed, nullptr);
  uint32_t seed = 1000;
  for (GuardSide side : {GuardSide::kAfter, GuardSide::kBefore})
    for (int64_t rows = 1; rows <= uk_->mr; ++rows)
      for (int64_t K : {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 19, 31, 32, 33, 64, 127, 515})
        for (bool accumulate : {false, true}) {
          std::mt19937 rng(seed++);
          const int64_t lda = K + (K % 3) * 3, groups = (K + 3) / 4, kp = 4 * groups;
          const int64_t ldap = 2 * kp + (rows % 2 ? 8 : 0);
          const int64_t a_bytes = (rows - 1) * lda + K;
          test::Guarded<uint8_t> a(a_bytes, side);
          for (int64_t i = 0; i < a_bytes; ++i) a[i] = static_cast<uint8_t>(rng());
          std::vector<uint8_t> ap(static_cast<size_t>(rows * ldap), 0xee);
          uk_->pack_a(a.data(), lda, rows, K, ap.data(), ldap);
          for (int64_t i = 0; i < rows; ++i)
            for (int64_t g = 0; g < groups; ++g)
              for (int64_t l = 0; l < 4; ++l) {
                const int64_t kk = 4 * g + (l == 0 ? 0 : l == 1 ? 2 : l == 2 ? 1 : 3);
                const uint16_t want = kk < K ? a[i * lda + kk] : 0;
                uint16_t got;
                std::memcpy(&got, &ap[static_cast<size_t>(i * ldap + 8 * g + 2 * l)], 2);
                ASSERT_EQ(got, want) << "packed row " << i << " group " << g << " lane " << l << " K=" << K;
              }
          const int64_t pstride = groups * 64, cols = 16, ldc = cols + (rows % 2 ? 0 : 5);
          test::Guarded<int8_t> w(pstride, side);
          for (int64_t i = 0; i < pstride; ++i) w[i] = static_cast<int8_t>(rng());
          // Weights past K are the layout's zero padding.
          for (int64_t g = 0; g < groups; ++g)
            for (int64_t j = 0; j < 16; ++j)
              for (int64_t t = 0; t < 4; ++t)
                if (4 * g + t >= K) w[g * 64 + j * 4 + t] = 0;
          test::Guarded<int32_t> c(uk_->mr * ldc, side);
          std::vector<int32_t> before(static_cast<size_t>(uk_->mr * ldc));
          for (int64_t i = 0; i < uk_->mr * ldc; ++i) {
            const bool inside = i / ldc < rows && i % ldc < cols;
            c[i] = inside ? static_cast<int32_t>(rng() % 2000001) - 1000000 : kSentinel;
            before[static_cast<size_t>(i)] = c[i];
          }
          uk_->tile_packed(ap.data(), ldap, rows, w.data(), pstride, 1, groups, c.data(), ldc, accumulate);
          for (int64_t i = 0; i < uk_->mr * ldc; ++i) {
            const int64_t r = i / ldc, j = i % ldc;
            if (r >= rows || j >= cols) {
              ASSERT_EQ(c[i], kSentinel) << "wrote outside the tile, rows=" << rows << " K=" << K;
              continue;
            }
            int64_t want = accumulate ? before[static_cast<size_t>(i)] : 0;
            for (int64_t k = 0; k < K; ++k) want += int64_t{a[r * lda + k]} * w[(k / 4) * 64 + j * 4 + k % 4];
            ASSERT_EQ(c[i], static_cast<int32_t>(want))
                << "@[" << r << " x " << j << "] rows=" << rows << " K=" << K << (accumulate ? " accumulate" : "");
          }
        }
}

// The packed path at the extremes: 255 against -128 and +127.
TEST_P(QgemmUkernelTester, PackedPathExtremeProductsAreExact) {
  if (uk_->pack_a == nullptr) GTEST_SKIP() << "no packed path";
  const int64_t groups = 512, rows = uk_->mr, K = groups * 4, pstride = groups * 64;
  std::vector<uint8_t> a(static_cast<size_t>(rows * K), 255), ap(static_cast<size_t>(rows * 2 * K));
  uk_->pack_a(a.data(), K, rows, K, ap.data(), 2 * K);
  for (int8_t wv : {int8_t{-128}, int8_t{127}}) {
    std::vector<int8_t> w(static_cast<size_t>(pstride), wv);
    std::vector<int32_t> c(static_cast<size_t>(rows * 16), 0);
    uk_->tile_packed(ap.data(), 2 * K, rows, w.data(), pstride, 1, groups, c.data(), 16, false);
    for (int32_t v : c) ASSERT_EQ(v, 255 * wv * K) << "w = " << int(wv);
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, QgemmUkernelTester,
                         ::testing::Values(Isa::kScalar, Isa::kAvx2, Isa::kAvx2Vnni, Isa::kAvx512Vnni),
                         [](const auto& info) { return std::string(isa_name(info.param)); });

}  // namespace
}  // namespace sarai
