// Tensor names <-> .npy file names (loader/tensor_file_name.h): the escaping
// round-trips odd names, never makes '.', '..', empty, hidden or '/'
// names, keeps long names under the limit (hashed, matched by
// recomputing), and reading back refuses what the rule cannot have written.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "loader/tensor_file_name.h"

namespace sarai {
namespace {

TEST(TensorFileName, EscapesAndRoundTripsOddNames) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"y", "y.npy"},
      {"encoder_out.1", "encoder_out.1.npy"},
      {"a+b-c", "a+b-c.npy"},
      {"a/b", "a%2Fb.npy"},
      {"a_b", "a_b.npy"},
      {"a\\b:c", "a%5Cb%3Ac.npy"},
      {"{\"1\": \"1_minute_timer\"}", "%7B%221%22%3A%20%221_minute_timer%22%7D.npy"},
      {"it's", "it%27s.npy"},
      {"50%", "50%25.npy"},
      {"%2F", "%252F.npy"},
      {".", "%2E.npy"},
      {"..", "%2E..npy"},
      {".hidden", "%2Ehidden.npy"},
      {"", "%.npy"},
      {"caf\xC3\xA9", "caf%C3%A9.npy"},
      {std::string("nul\0byte", 8), "nul%00byte.npy"},
      {"tab\there\n", "tab%09here%0A.npy"},
      {"~x", "%7Ex.npy"},
  };
  std::set<std::string> files;
  for (const auto& [name, file] : cases) {
    const std::string f = tensor_file_name(name);
    EXPECT_EQ(f, file) << name;
    EXPECT_NE(f, ".npy");
    EXPECT_NE(f[0], '.') << name;
    EXPECT_EQ(f.find('/'), std::string::npos) << name;
    EXPECT_TRUE(files.insert(f).second) << "two names share " << f;
    auto back = tensor_name_from_file(f);
    ASSERT_TRUE(back.has_value()) << f;
    EXPECT_EQ(*back, name) << f;
    EXPECT_EQ(tensor_name_from_file(f.substr(0, f.size() - 4)), name) << "without .npy: " << f;
  }
}

TEST(TensorFileName, LongNamesAreCutAndHashedUnderTheLimit) {
  const std::string a(300, 'a');
  std::string b = a;
  b.back() = 'b';
  const std::string fa = tensor_file_name(a), fb = tensor_file_name(b);
  EXPECT_LE(fa.size(), kMaxStemBytes + 4);
  EXPECT_NE(fa, fb);  // differ only past the cut: the hash tells them apart
  EXPECT_EQ(fa.substr(0, 10), "aaaaaaaaaa");
  EXPECT_EQ(fa[fa.size() - 4 - 17], '~');
  EXPECT_FALSE(tensor_name_from_file(fa).has_value());  // not decodable...
  EXPECT_EQ(match_tensor_file(fa, {"x", b, a}), a);     // ...but matched by recomputing
  EXPECT_EQ(match_tensor_file(fb, {"x", b, a}), b);
  // Escapes are never cut in half, and the limit holds for 3-byte escapes.
  const std::string slashes(150, '/');
  const std::string fs = tensor_file_name(slashes);
  EXPECT_LE(fs.size(), kMaxStemBytes + 4);
  const std::string kept = fs.substr(0, fs.find('~'));
  EXPECT_EQ(kept.size() % 3, 0u);
  EXPECT_EQ(match_tensor_file(fs, {slashes}), slashes);
  // The same hash as tools/scripts/compare_ort.py and ort/run_ort.js write.
  EXPECT_EQ(tensor_file_name(std::string(300, 'n')), std::string(183, 'n') + "~28da431d8a252e13.npy");
  std::string e_acute;
  for (int i = 0; i < 80; ++i) e_acute += "\xC3\xA9";
  const std::string fe = tensor_file_name(e_acute);
  EXPECT_EQ(fe.size(), 204u);
  EXPECT_EQ(fe.substr(fe.size() - 24), "%C3~edd020ce67578483.npy");
  // Exactly at the limit: not hashed.
  const std::string edge(kMaxStemBytes, 'e');
  EXPECT_EQ(tensor_file_name(edge), edge + ".npy");
  EXPECT_EQ(tensor_name_from_file(tensor_file_name(edge)), edge);
  EXPECT_NE(tensor_file_name(edge + "e").find('~'), std::string::npos);
}

TEST(TensorFileName, ReadingRefusesWhatTheRuleDoesNotWrite) {
  for (const char* f : {"a%2.npy", "a%.npy", "a%zz.npy", "a%2f.npy", "%41.npy", "a b.npy", ".h.npy", "a~0123.npy",
                        ".npy", "a/b.npy"})
    EXPECT_FALSE(tensor_name_from_file(f).has_value()) << f;
}

TEST(TensorFileName, MatchingPrefersExpectedNames) {
  const std::vector<std::string> inputs = {"a/b", "q:r", "mel"};
  EXPECT_EQ(match_tensor_file("a%2Fb.npy", inputs), "a/b");
  EXPECT_EQ(match_tensor_file("q%3Ar.npy", inputs), "q:r");
  EXPECT_EQ(match_tensor_file("q:r.npy", inputs), "q:r");  // a folder another tool wrote with the raw name
  EXPECT_EQ(match_tensor_file("mel.npy", inputs), "mel");
  EXPECT_EQ(match_tensor_file("x%20y.npy", inputs), "x y");  // unknown: decoded, the caller reports it
  EXPECT_EQ(match_tensor_file("x y.npy", inputs), "x y");    // not decodable: the stem as is
}

}  // namespace
}  // namespace sarai
