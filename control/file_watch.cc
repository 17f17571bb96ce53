// inotify on a file's directory, filtered to the file's name.
#include "control/file_watch.h"

#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

namespace exitgw {

namespace {

// The events that can change what a reader of the file would see. IN_MODIFY is left out: a
// writer that has not closed the file yet may have written only half of it.
constexpr uint32_t kDirectoryEvents =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR;

}  // namespace

FileWatch::~FileWatch() {
  if (fd_ >= 0) ::close(fd_);
}

bool FileWatch::add_directory_watch() {
  wd_ = inotify_add_watch(fd_, directory_.c_str(), kDirectoryEvents);
  return wd_ >= 0;
}

Status FileWatch::watch(const std::string& path) {
  const size_t slash = path.rfind('/');
  std::string directory = slash == std::string::npos ? "." : path.substr(0, slash);
  if (directory.empty()) directory = "/";
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (name.empty() || name == "." || name == "..")
    return make_error("cannot watch '" + path + "': it does not name a file");
  if (fd_ < 0) {
    fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd_ < 0) {
      return make_error("cannot watch '" + path + "': inotify_init1: " +
                        std::error_code(errno, std::generic_category()).message());
    }
  }
  if (wd_ >= 0) inotify_rm_watch(fd_, wd_);
  directory_ = std::move(directory);
  name_ = std::move(name);
  if (!add_directory_watch()) {
    const int err = errno;
    std::string hint;
    if (err == ENOSPC) hint = " (raise fs.inotify.max_user_watches)";
    return make_error("cannot watch directory '" + directory_ + "' for '" + name_ +
                      "': " + std::error_code(err, std::generic_category()).message() + hint);
  }
  (void)changed();  // a fresh watch starts with nothing pending, whatever an earlier one queued
  return Ok{};
}

bool FileWatch::changed() {
  if (fd_ < 0) return false;
  bool changed = false;
  if (wd_ < 0) {
    // The directory was removed or unmounted; once it is back, the file may be too.
    if (!add_directory_watch()) return false;
    changed = true;
  }
  alignas(inotify_event) char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // EAGAIN: drained
    for (ssize_t offset = 0; offset < n;) {
      inotify_event event;
      std::memcpy(&event, buffer + offset, sizeof(event));
      const char* event_name = buffer + offset + sizeof(inotify_event);
      offset += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
      if (event.mask & IN_Q_OVERFLOW) {
        changed = true;
        continue;
      }
      if (event.wd != wd_) continue;  // a watch replaced by watch() may still have events queued
      if (event.mask & IN_IGNORED) {
        wd_ = -1;
        changed = true;
        continue;
      }
      // The name is NUL-padded to event.len.
      if (event.len > 0 && name_ == std::string_view(event_name, strnlen(event_name, event.len)))
        changed = true;
    }
  }
  return changed;
}

}  // namespace exitgw
