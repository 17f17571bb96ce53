// Non-blocking, bounded reads of watched files (bounded_file.h).
#include "control/bounded_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <system_error>

#include "common/log_escape.h"

namespace exitgw {

namespace {

std::string errno_text(int err) {
  return std::error_code(err, std::generic_category()).message();
}

std::string name_of(const std::string& path, std::string_view what) {
  return std::string(what) + " " + escape_for_log(path, 256);
}

// The checks both entry points share: a regular file, not larger than the bound.
Status check_stat(const struct stat& st, const std::string& path, std::string_view what,
                  size_t max_bytes) {
  if (!S_ISREG(st.st_mode)) {
    bounded_file_counters().not_regular.fetch_add(1, std::memory_order_relaxed);
    return make_error(name_of(path, what) + " is " + std::string(file_kind(st.st_mode)) +
                      ", not a regular file: refused, running configuration kept (replace it "
                      "with a regular file, by an atomic rename)");
  }
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max_bytes) {
    bounded_file_counters().too_large.fetch_add(1, std::memory_order_relaxed);
    return make_error(name_of(path, what) + " has " + std::to_string(st.st_size) +
                      " bytes, more than the " + std::to_string(max_bytes) +
                      " allowed: refused, running configuration kept");
  }
  return Ok{};
}

}  // namespace

BoundedFileCounters& bounded_file_counters() {
  static BoundedFileCounters counters;
  return counters;
}

std::string_view file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a file";
}

FileStamp file_stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileStamp{.error = errno};
  return FileStamp{0,          st.st_mode,
                   st.st_dev,  st.st_ino,
                   st.st_size, int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec};
}

Result<std::string> read_bounded_file(const std::string& path, std::string_view what,
                                      size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int err = errno;
    if (err == ENXIO) {  // a socket (or a FIFO opened for writing elsewhere): never a file
      bounded_file_counters().not_regular.fetch_add(1, std::memory_order_relaxed);
      return make_error(name_of(path, what) + " is not a regular file (" + errno_text(err) +
                        "): refused, running configuration kept");
    }
    return make_error(name_of(path, what) + ": " + errno_text(err));
  }
  struct stat st {};
  Status checked = ::fstat(fd, &st) == 0
                       ? check_stat(st, path, what, max_bytes)
                       : Status(make_error(name_of(path, what) + ": " + errno_text(errno)));
  if (!checked) {
    ::close(fd);
    return make_error(checked.error());
  }
  // One byte more than the bound tells a file that grew while we read it.
  std::string text(static_cast<size_t>(st.st_size) + 1, '\0');
  size_t size = 0;
  while (size < text.size()) {
    const ssize_t n = ::read(fd, text.data() + size, text.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return make_error(name_of(path, what) + ": " + errno_text(err));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
    if (size == text.size() && size <= max_bytes) text.resize(std::min(max_bytes + 1, size * 2));
  }
  ::close(fd);
  if (size > max_bytes) {
    bounded_file_counters().too_large.fetch_add(1, std::memory_order_relaxed);
    return make_error(name_of(path, what) + " grew past " + std::to_string(max_bytes) +
                      " bytes while being read: refused, running configuration kept");
  }
  text.resize(size);
  return text;
}

Status StableFileWatch::watch(const std::string& path) {
  path_ = path;
  return watch_.watch(path);
}

bool StableFileWatch::due(uint64_t now_ns) {
  if (watch_.changed()) {
    // Something changed: look again after settle_ns, whatever was pending.
    last_ = file_stamp(path_);
    check_at_ns_ = now_ns + settle_ns_;
    return false;
  }
  if (check_at_ns_ == 0 || now_ns < check_at_ns_) return false;
  const FileStamp now = file_stamp(path_);
  if (!(now == last_)) {
    // Still being written: wait for it to stand still for another settle_ns.
    last_ = now;
    check_at_ns_ = now_ns + settle_ns_;
    return false;
  }
  check_at_ns_ = 0;
  return true;
}

}  // namespace exitgw
