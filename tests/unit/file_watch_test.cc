// FileWatch sees every way a config file gets replaced, and nothing else in its directory.
#include "control/file_watch.h"
#include "tests/support/test_files.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace exitgw {
namespace {

class FileWatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/file_watch_test.XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/peers.conf";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string dir_;
  std::string path_;
};

TEST_F(FileWatchTest, NoEventMeansNotChanged) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  EXPECT_FALSE(watch.changed());
  EXPECT_FALSE(watch.changed());
}

TEST_F(FileWatchTest, UnwatchedFileNeverChanges) {
  FileWatch watch;
  EXPECT_FALSE(watch.changed());
  EXPECT_EQ(watch.fd(), -1);
}

TEST_F(FileWatchTest, WriteInPlaceDetectedOnceThenDrained) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  std::ofstream(path_, std::ios::app) << "b\n";
  EXPECT_TRUE(watch.changed());
  EXPECT_FALSE(watch.changed());
}

TEST_F(FileWatchTest, CopyOverDetected) {
  test::write_file(path_, "a\n");
  test::write_file(dir_ + "/staged", "b\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  ASSERT_TRUE(std::filesystem::copy_file(dir_ + "/staged", path_,
                                         std::filesystem::copy_options::overwrite_existing));
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, AtomicRenameIntoPlaceDetected) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  test::write_file(dir_ + "/.peers.conf.swp", "b\n");
  EXPECT_FALSE(watch.changed());  // the editor's temporary file is not the watched one
  ASSERT_EQ(std::rename((dir_ + "/.peers.conf.swp").c_str(), path_.c_str()), 0);
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, RenameAwayDetected) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  ASSERT_EQ(std::rename(path_.c_str(), (dir_ + "/peers.conf.old").c_str()), 0);
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, DeleteAndRecreateEachDetected) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  ASSERT_EQ(unlink(path_.c_str()), 0);
  EXPECT_TRUE(watch.changed());
  EXPECT_FALSE(watch.changed());
  test::write_file(path_, "b\n");
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, FileCreatedAfterTheWatchStartedDetected) {
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  EXPECT_FALSE(watch.changed());
  test::write_file(path_, "a\n");
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, UnrelatedFileInTheSameDirectoryNotReported) {
  test::write_file(path_, "a\n");
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  const std::string other = dir_ + "/other.conf";
  test::write_file(other, "x\n");
  std::ofstream(other, std::ios::app) << "y\n";
  ASSERT_EQ(std::rename(other.c_str(), (dir_ + "/peers.conf.bak").c_str()), 0);
  ASSERT_EQ(unlink((dir_ + "/peers.conf.bak").c_str()), 0);
  std::filesystem::create_directory(dir_ + "/sub");
  test::write_file(dir_ + "/sub/peers.conf", "z\n");  // same name, other directory
  EXPECT_FALSE(watch.changed());
}

TEST_F(FileWatchTest, DirectoryRemovedThenRecreatedDetected) {
  const std::string sub = dir_ + "/conf";
  std::filesystem::create_directory(sub);
  FileWatch watch;
  ASSERT_TRUE(watch.watch(sub + "/peers.conf").ok());
  std::filesystem::remove(sub);
  EXPECT_TRUE(watch.changed());   // the directory's watch is gone: a change may be missed
  EXPECT_FALSE(watch.changed());  // and cannot come back while the directory is missing
  std::filesystem::create_directory(sub);
  EXPECT_TRUE(watch.changed());  // watched again
  test::write_file(sub + "/peers.conf", "a\n");
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, RewatchingReportsOnlyTheNewFile) {
  FileWatch watch;
  ASSERT_TRUE(watch.watch(path_).ok());
  test::write_file(path_, "a\n");  // pending for the old watch, dropped by the new one
  std::filesystem::create_directory(dir_ + "/b");
  ASSERT_TRUE(watch.watch(dir_ + "/b/peers.conf").ok());
  EXPECT_FALSE(watch.changed());
  test::write_file(path_, "b\n");
  EXPECT_FALSE(watch.changed());
  test::write_file(dir_ + "/b/peers.conf", "c\n");
  EXPECT_TRUE(watch.changed());
}

TEST_F(FileWatchTest, MissingDirectoryRefusedWithTheReason) {
  FileWatch watch;
  auto status = watch.watch(dir_ + "/absent/peers.conf");
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.error().find("No such file or directory"), std::string::npos) << status.error();
  EXPECT_FALSE(watch.watch(dir_ + "/").ok());  // names a directory, not a file
}

}  // namespace
}  // namespace exitgw
