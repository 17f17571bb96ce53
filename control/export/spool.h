// The on-disk spool: records the collector could not take, kept in order until it returns.
//
// A directory of append-only segment files named by a 20-digit number; lower numbers are
// older. A segment is a 16-byte header ("EXGWSPL1", u32 version, u32 reserved) and entries of
// {u16 template id, u16 length, u32 CRC-32 of those 4 bytes and the payload, payload}, little
// endian, the payload being one IPFIX data record (EncodedRecord). Appends go to the newest
// ("active") segment until it reaches segment_bytes; a segment is never appended to after a
// restart, so a torn tail from a crash stays at the end of a sealed file, where the reader
// stops at the first bad CRC (counted as corrupt). Records are replayed oldest segment first
// and a segment is deleted only once all its records were sent. Records whose send failed
// are put back in a segment numbered before all others (prepend), so order is kept.
// fsync policy: with fsync on, each append is fdatasync'ed and the directory synced when a
// segment is created or removed: a record acknowledged as spooled survives power loss.
// Over max_bytes the OLDEST segments are deleted, their records counted as dropped.
// Owned by one thread (the exporter's I/O thread); counters readable from any.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/export/ipfix.h"

namespace exitgw::exporter {

struct SpoolOptions {
  std::string dir;
  uint64_t max_bytes = 256ull << 20;
  uint64_t segment_bytes = 4ull << 20;
  bool fsync = true;
};

struct SpoolBatch {
  uint64_t segment = 0;
  std::vector<EncodedRecord> records;
};

class Spool {
 public:
  // Creates the directory if needed and indexes the segments already there (a restart).
  static Result<std::unique_ptr<Spool>> open(const SpoolOptions& options);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  Status append(std::span<const EncodedRecord> records);   // after everything spooled
  Status prepend(std::span<const EncodedRecord> records);  // before everything spooled
  // The oldest segment's valid records (seals it first when it is the active one).
  Result<SpoolBatch> read_oldest();
  // Forgets the segment even when unlinking fails (the error is returned).
  Status remove(uint64_t segment);
  uint64_t oldest_segment() const { return segments_.empty() ? 0 : segments_.begin()->first; }

  bool empty() const { return segments_.empty(); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t records() const { return records_.load(std::memory_order_relaxed); }
  uint64_t dropped_records() const { return dropped_.load(std::memory_order_relaxed); }
  uint64_t corrupt_records() const { return corrupt_.load(std::memory_order_relaxed); }
  size_t segment_count() const { return segments_.size(); }
  const std::string& dir() const { return options_.dir; }

 private:
  struct Segment {
    uint64_t bytes = 0, records = 0;
  };
  explicit Spool(const SpoolOptions& options) : options_(options) {}
  std::string path_of(uint64_t id) const;
  Status write_segment_entries(int fd, uint64_t id, std::span<const EncodedRecord> records);
  Status open_active();
  void close_active();
  void enforce_limit();
  void sync_dir() const;
  void account();

  SpoolOptions options_;
  std::map<uint64_t, Segment> segments_;
  int active_fd_ = -1;
  uint64_t active_id_ = 0;
  std::atomic<uint64_t> bytes_{0}, records_{0}, dropped_{0}, corrupt_{0};
};

}  // namespace exitgw::exporter
