// runtime/atomic_file.h: the converters' one way to write an output file.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "runtime/atomic_file.h"
#include "onnx_builder.h"

namespace sarai {
namespace {

bool exists(const std::string& p) { return std::filesystem::exists(p); }

TEST(AtomicFile, CommitRenamesTheCompleteFileIntoPlace) {
  const std::string dir = test::temp_dir("atomic_commit");
  const std::string out = dir + "/out.bin", tmp = out + ".tmp-1";
  test::write_file(out, "old");
  int err = -1;
  auto f = AtomicFile::create(tmp, out, &err);
  ASSERT_TRUE(f);
  EXPECT_EQ(err, 0);
  EXPECT_TRUE(exists(tmp));
  EXPECT_EQ(f->write_all("hello, ", 7), 0);
  EXPECT_EQ(f->write_all("world", 5), 0);
  EXPECT_EQ(f->pwrite_all("H", 1, 0), 0);
  EXPECT_EQ(f->size(), 12u);
  EXPECT_EQ(test::read_file(out), "old") << "untouched until commit";
  EXPECT_EQ(f->commit(), 0);
  EXPECT_TRUE(f->committed());
  EXPECT_FALSE(exists(tmp));
  EXPECT_EQ(test::read_file(out), "Hello, world");
  f.reset();  // destroying a committed file keeps it
  EXPECT_EQ(test::read_file(out), "Hello, world");
}

TEST(AtomicFile, AnUncommittedFileLeavesNothingAndTheOldFileStands) {
  const std::string dir = test::temp_dir("atomic_discard");
  const std::string out = dir + "/out.bin", tmp = out + ".tmp-1";
  test::write_file(out, "old");
  int err = 0;
  {
    auto f = AtomicFile::create(tmp, out, &err);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->write_all("new", 3), 0);
  }
  EXPECT_FALSE(exists(tmp));
  EXPECT_EQ(test::read_file(out), "old");
  auto f = AtomicFile::create(tmp, out, &err);
  ASSERT_TRUE(f);
  f->discard();
  f->discard();  // idempotent
  EXPECT_FALSE(exists(tmp));
  // revoke() removes a committed file again (a two-file output whose other half failed).
  auto g = AtomicFile::create(tmp, out, &err);
  ASSERT_TRUE(g);
  ASSERT_EQ(g->commit(), 0);
  g->revoke();
  EXPECT_FALSE(exists(out));
}

TEST(AtomicFile, RefusesAForeignFolderAnExistingTempAndAMissingFolder) {
  const std::string dir = test::temp_dir("atomic_refuse");
  int err = 0;
  EXPECT_FALSE(AtomicFile::create(dir + "/a.tmp", dir + "/sub/a.bin", &err));
  EXPECT_EQ(err, EXDEV);
  test::write_file(dir + "/b.tmp", "someone's");
  EXPECT_FALSE(AtomicFile::create(dir + "/b.tmp", dir + "/b.bin", &err));
  EXPECT_EQ(err, EEXIST);
  EXPECT_EQ(test::read_file(dir + "/b.tmp"), "someone's");
  EXPECT_FALSE(AtomicFile::create(dir + "/none/c.tmp", dir + "/none/c.bin", &err));
  EXPECT_EQ(err, ENOENT);
}

TEST(AtomicFile, TheSignalHelperRemovesEveryUncommittedTempFile) {
  const std::string dir = test::temp_dir("atomic_signal");
  int err = 0;
  auto a = AtomicFile::create(dir + "/a.tmp", dir + "/a.bin", &err);
  auto b = AtomicFile::create(dir + "/b.tmp", dir + "/b.bin", &err);
  auto c = AtomicFile::create(dir + "/c.tmp", dir + "/c.bin", &err);
  ASSERT_TRUE(a && b && c);
  ASSERT_EQ(c->commit(), 0);
  unlink_unfinished_temp_files_from_signal_handler();
  EXPECT_FALSE(exists(dir + "/a.tmp"));
  EXPECT_FALSE(exists(dir + "/b.tmp"));
  EXPECT_TRUE(exists(dir + "/c.bin")) << "a committed file is not a temp file";
}

}  // namespace
}  // namespace sarai
