// Reading bounded regular files and small owner-only secret files (the admin token, a preshared
// key). Header-only so that exitgwctl, which links nothing of the daemon, holds its files to the
// same rules.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <system_error>

#include "common/result.h"

namespace exitgw::admin {

inline constexpr size_t kMinTokenChars = 16;
inline constexpr size_t kMaxTokenChars = 1024;

// "a FIFO", "a directory", ... for a file type that is not a regular file.
inline std::string_view file_type_name(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// The whole content of a regular file of at most `max_bytes`: opened non-blocking so a FIFO
// planted at the path cannot hang us before the type check, refused unless fstat says it is a
// regular file (/dev/zero, a directory, a FIFO), and read no further than the bound. With
// `owner_only`, refused too when group or others may read or write it. `what_kind` starts every
// message ("admin token file"); the content is never echoed.
inline Result<std::string> read_regular_file(const std::string& path, std::string_view what_kind,
                                             size_t max_bytes, bool owner_only = false) {
  const std::string what = std::string(what_kind) + " " + path;
  const auto errno_text = [](int err) {
    return std::error_code(err, std::generic_category()).message();
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return make_error("cannot read " + what + ": " + errno_text(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error("cannot read " + what + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(what + " is " + std::string(file_type_name(st.st_mode)) +
                      ", not a regular file");
  }
  if (owner_only && (st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error(what + " has mode " + mode +
                      ", so group or others may read it; it must be owner-only: chmod 600 " + path);
  }
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    ::close(fd);
    return make_error(what + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  std::string text(max_bytes + 1, '\0');
  size_t size = 0;
  while (size < text.size()) {
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error("cannot read " + what + ": " + errno_text(err));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);
  if (size > max_bytes)  // it grew while being read
    return make_error(what + " is larger than " + std::to_string(max_bytes) + " bytes");
  text.resize(size);
  return text;
}

// The trimmed content of a regular file that only its owner may read or write (see
// read_regular_file). Refuses more than `max_bytes`, and a file holding only white space.
inline Result<std::string> read_secret_file(const std::string& path, std::string_view what_kind,
                                            size_t max_bytes) {
  auto text = read_regular_file(path, what_kind, max_bytes, true);
  if (!text) return text;
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t first = text->find_first_not_of(kSpace);
  if (first == std::string::npos)
    return make_error(std::string(what_kind) + " " + path + " is empty");
  return text->substr(first, text->find_last_not_of(kSpace) - first + 1);
}

// An admin token: kMinTokenChars to kMaxTokenChars printable ASCII characters without spaces,
// so it fits an Authorization header as is.
inline Result<std::string> read_token_file(const std::string& path) {
  auto token = read_secret_file(path, "admin token file", kMaxTokenChars + 2);
  if (!token) return token;
  if (token->size() > kMaxTokenChars) {
    return make_error("admin token file " + path + " holds more than " +
                      std::to_string(kMaxTokenChars) + " characters");
  }
  for (char c : *token) {
    if (c < 0x21 || c > 0x7e) {
      return make_error("admin token file " + path +
                        " holds a space or a non-printable byte inside the token; a token is "
                        "printable ASCII, as `openssl rand -hex 32` writes it");
    }
  }
  if (token->size() < kMinTokenChars) {
    return make_error("admin token file " + path + " holds a token of " +
                      std::to_string(token->size()) + " characters; use at least " +
                      std::to_string(kMinTokenChars) +
                      " (e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`)");
  }
  return token;
}

}  // namespace exitgw::admin
