// runtime/atomic_file.h: the converters' one way to write an output file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "runtime/atomic_file.h"
#include "onnx_builder.h"

namespace sarai {
namespace {

bool exists(const std::string& p) { return std::filesystem::exists(p); }

// What SIGKILL leaves (FINAL.tmp-PID of a process that no longer runs) is
// removed by the next create() for the same final path, and reported once;
// a live process's temp file and other names stay.
TEST(AtomicFile, CreateRemovesStaleTempFilesOfDeadWriters) {
  const std::string dir = test::temp_dir("atomic_stale");
  const std::string out = dir + "/out.bin";
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // a PID that no longer runs
  const std::string dead = out + ".tmp-" + std::to_string(child);
  const std::string alive = out + ".tmp-" + std::to_string(::getppid());
  const std::string other = dir + "/other.bin.tmp-" + std::to_string(child);
  for (const std::string& p : {dead, alive, other}) test::write_file(p, "partial");
  (void)take_removed_stale_temp_files();
  int err = -1;
  auto f = AtomicFile::create(out + ".tmp-" + std::to_string(::getpid()), out, &err);
  ASSERT_TRUE(f) << err;
  EXPECT_FALSE(exists(dead));
  EXPECT_TRUE(exists(alive));
  EXPECT_TRUE(exists(other)) << "only temp files of the same output are judged";
  EXPECT_EQ(take_removed_stale_temp_files(), std::vector<std::string>{dead});
  EXPECT_TRUE(take_removed_stale_temp_files().empty());
}

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
