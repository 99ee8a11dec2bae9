#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/crc32c.h"

namespace sarai {
namespace {

TEST(Crc32c, KnownVectors) {
  // RFC 3720 (iSCSI) B.4 and the usual "123456789" check value.
  EXPECT_EQ(crc32c(0, "123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xff);
  EXPECT_EQ(crc32c(0, zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c(0, ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(crc32c(0, "", 0), 0u);
}

TEST(Crc32c, IncrementalEqualsWholeAtEveryAlignment) {
  std::string s;
  for (int i = 0; i < 1000; ++i) s += static_cast<char>(i * 31 + 7);
  const uint32_t whole = crc32c(0, s.data(), s.size());
  for (size_t cut : {0, 1, 3, 7, 8, 9, 31, 32, 33, 500, 999, 1000}) {
    uint32_t c = crc32c(0, s.data(), cut);
    c = crc32c(c, s.data() + cut, s.size() - cut);
    EXPECT_EQ(c, whole) << "cut at " << cut;
  }
  // Unaligned starts must agree with the aligned computation too.
  for (size_t off = 1; off < 9; ++off)
    EXPECT_EQ(crc32c(0, s.data() + off, 200), crc32c(0, std::string(s.data() + off, 200).data(), 200));
}

}  // namespace
}  // namespace sarai
