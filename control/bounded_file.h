// Reading a watched configuration file without ever blocking the control thread: the path must
// name a regular file (a FIFO, directory, device or socket is refused, never read), it is
// opened non-blocking, checked again after the open, and read up to a size bound. Every
// watched-file reader (peers, policy, approvals, domains) goes through here, each with the bound
// its parser declares (kPeersFileMaxBytes, policy::kHujsonMaxBytes, policy::kApprovalsMaxBytes,
// dp::domain::kMaxListBytes).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/bounded_read.h"
#include "common/result.h"
#include "control/file_watch.h"

namespace exitgw {

// Refusals by bounded-file reads since start, by why (exported as metrics).
struct BoundedFileCounters {
  std::atomic<uint64_t> not_regular{0};  // FIFO, directory, device, socket
  std::atomic<uint64_t> too_large{0};
};
BoundedFileCounters& bounded_file_counters();

// What identifies one version of a path: a writer that is still writing changes size or mtime;
// a path that is missing (or not statable) has only `error` set.
struct FileStamp {
  int error = 0;  // errno of stat(), 0 when it succeeded
  mode_t mode = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

// The stamp of whatever `path` names now (stat, following symlinks; never opens it).
FileStamp file_stamp(const std::string& path);

// The whole content of `path` (common/bounded_read.h's read_regular_file: non-blocking, a
// regular file of at most `max_bytes`, read within that bound); a refusal is counted and says
// the running configuration is kept. Errors name the file and say what it is.
Result<std::string> read_bounded_file(const std::string& path, std::string_view what,
                                      size_t max_bytes);

// A FileWatch that says a change is due only once the file has stopped changing: its stamp
// (size, mtime, inode) is the same at two checks `settle_ns` apart, so a writer that is still
// writing (or a copy in progress) is not applied half-way. An atomic rename into place is
// still the way to publish a file (README, conf/*.conf); this only guards the careless writer.
// Owned by one thread (the control thread).
class StableFileWatch {
 public:
  explicit StableFileWatch(uint64_t settle_ns = 200'000'000) : settle_ns_(settle_ns) {}
  Status watch(const std::string& path);
  // True once after each change has settled; call every tick.
  bool due(uint64_t now_ns);

 private:
  FileWatch watch_;
  std::string path_;
  uint64_t settle_ns_;
  uint64_t check_at_ns_ = 0;  // 0: nothing pending
  FileStamp last_{};
};

}  // namespace exitgw
