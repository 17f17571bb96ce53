// Tells the control thread when a config file has changed, by inotify on its directory.
#pragma once

#include <string>

#include "common/result.h"

namespace exitgw {

// Watches one file by name through its directory, so editors that write a temporary file and
// rename it into place, `cp`, in-place writes, and delete-then-recreate are all seen, and the
// file need not exist yet. Non-blocking and thread-free: the control loop polls changed().
// Owned and used by one thread (the control thread).
class FileWatch {
 public:
  FileWatch() = default;
  FileWatch(const FileWatch&) = delete;
  FileWatch& operator=(const FileWatch&) = delete;
  ~FileWatch();

  // Starts watching `path` (replacing any earlier watch). Fails if its directory cannot be
  // watched (missing, not a directory, no permission, out of inotify watches).
  Status watch(const std::string& path);

  // Drains pending events without blocking; true if the watched file was written, created,
  // deleted or renamed to or from its name since the last call. Also true if the kernel's event
  // queue overflowed or the directory went away, since a change may then have been missed.
  bool changed();

  // The inotify descriptor (-1 before watch()), for callers that want to poll() it.
  int fd() const { return fd_; }

 private:
  bool add_directory_watch();

  int fd_ = -1;
  int wd_ = -1;  // -1 once the directory's watch is gone; changed() then tries to restore it
  std::string directory_;
  std::string name_;
};

}  // namespace exitgw
