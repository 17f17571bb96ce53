// Non-blocking, bounded reads of watched files (bounded_file.h).
#include "control/bounded_file.h"

#include <sys/stat.h>

#include <cerrno>

namespace exitgw {

BoundedFileCounters& bounded_file_counters() {
  static BoundedFileCounters counters;
  return counters;
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
  ReadRefusal why = ReadRefusal::kNone;
  auto text = read_regular_file(path, what, max_bytes, false, &why);
  if (text) return text;
  switch (why) {
    case ReadRefusal::kNotRegular:
      bounded_file_counters().not_regular.fetch_add(1, std::memory_order_relaxed);
      return make_error(text.error() +
                        ": refused, running configuration kept (replace it with a regular "
                        "file, by an atomic rename)");
    case ReadRefusal::kTooLarge:
      bounded_file_counters().too_large.fetch_add(1, std::memory_order_relaxed);
      return make_error(text.error() + ": refused, running configuration kept");
    default:
      return text;
  }
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
