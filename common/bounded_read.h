// Reading a whole regular file without ever blocking and within a size bound: the one reader
// behind the daemon's watched files (control/bounded_file.h), its secret files and exitgwctl's
// files (control/admin/secret_file.h). Header-only because exitgwctl links nothing of the daemon.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

#include "common/log_escape.h"
#include "common/result.h"

namespace exitgw {

// Why read_regular_file refused, for the callers that count refusals by reason.
enum class ReadRefusal : uint8_t {
  kNone,
  kIo,            // cannot open, stat or read it (missing, no permission, I/O error)
  kNotRegular,    // a FIFO, directory, device or socket
  kNotOwnerOnly,  // owner_only and group or others may read or write it
  kTooLarge,      // more than max_bytes, at the open or while being read
};

// "a FIFO", "a directory", ... for an st_mode.
inline std::string_view file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a file";
}

// The whole content of `path`: opened O_NONBLOCK (a FIFO planted at the path cannot hang us
// before the type check), refused unless fstat says it is a regular file of at most
// `max_bytes` (with `owner_only`, also when group or others may read or write it), then read
// into a buffer sized by the file (not by the bound) that grows only while the file does, up
// to the bound: a file that grows past it while being read is refused too. Every message starts
// with `what_kind` and the (escaped) path; the content is never echoed. `refusal`, when given,
// says why it failed.
inline Result<std::string> read_regular_file(const std::string& path, std::string_view what_kind,
                                             size_t max_bytes, bool owner_only = false,
                                             ReadRefusal* refusal = nullptr) {
  const std::string name = std::string(what_kind) + " " + escape_for_log(path, 256);
  const auto refuse = [&](ReadRefusal why, std::string message) -> Result<std::string> {
    if (refusal != nullptr) *refusal = why;
    return make_error(std::move(message));
  };
  const auto errno_text = [](int err) {
    return std::error_code(err, std::generic_category()).message();
  };
  if (refusal != nullptr) *refusal = ReadRefusal::kNone;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENXIO)  // a socket (or a FIFO opened for writing elsewhere): never a file
      return refuse(ReadRefusal::kNotRegular,
                    name + " is not a regular file (" + errno_text(err) + ")");
    return refuse(ReadRefusal::kIo, "cannot read " + name + ": " + errno_text(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0)
    return refuse(ReadRefusal::kIo, "cannot read " + name + ": " + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    return refuse(ReadRefusal::kNotRegular,
                  name + " is " + std::string(file_kind(st.st_mode)) + ", not a regular file");
  if (owner_only && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(ReadRefusal::kNotOwnerOnly,
                  name + " has mode " + mode +
                      ", so group or others may read it; it must be owner-only: chmod 600 " +
                      escape_for_log(path, 256));
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max_bytes)
    return refuse(ReadRefusal::kTooLarge, name + " has " + std::to_string(st.st_size) +
                                              " bytes, more than the " + std::to_string(max_bytes) +
                                              " allowed");
  // One byte more than the file: reading it tells a file that grew after the fstat.
  const size_t cap = max_bytes < SIZE_MAX ? max_bytes + 1 : max_bytes;
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t size = 0;
  while (size < text.size()) {
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return refuse(ReadRefusal::kIo, "cannot read " + name + ": " + errno_text(errno));
    if (n == 0) break;
    size += static_cast<size_t>(n);
    if (size == text.size() && size < cap)
      text.resize(std::min(cap, std::max<size_t>(size * 2, 4096)));
  }
  if (size > max_bytes)
    return refuse(ReadRefusal::kTooLarge,
                  name + " grew past " + std::to_string(max_bytes) + " bytes while being read");
  text.resize(size);
  return text;
}

}  // namespace exitgw
