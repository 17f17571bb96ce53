// Files for unit tests: one way to write a file whole and one way to plant a FIFO, so every test
// that reads files makes them alike (and a failure to make one fails the test, not a later
// assertion).
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>

namespace exitgw::test {

// Writes `content` to `path` (created or truncated), then sets `mode` exactly (past the umask).
inline void write_file(const std::string& path, std::string_view content, mode_t mode = 0644) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  EXPECT_TRUE(out) << "writing " << path;
  EXPECT_EQ(::chmod(path.c_str(), mode), 0) << "chmod " << path << ": " << std::strerror(errno);
}

// Makes a FIFO (mode 0600) at `path`: what a reader that must never block is tested with.
inline void make_fifo(const std::string& path) {
  ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << "mkfifo " << path << ": " << std::strerror(errno);
}

}  // namespace exitgw::test
