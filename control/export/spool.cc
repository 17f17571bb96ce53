// Segment files: write, index on open, read back with CRC checks, drop oldest over the limit.
#include "control/export/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "control/log.h"

namespace exitgw::exporter {
namespace {

constexpr char kMagic[8] = {'E', 'X', 'G', 'W', 'S', 'P', 'L', '1'};
constexpr size_t kHeaderBytes = 16;
constexpr size_t kEntryHeaderBytes = 8;
constexpr uint64_t kFirstSegment = 1ull << 40;  // room below for prepended segments

constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr auto kCrcTable = make_crc_table();

uint32_t crc32(uint32_t crc, const uint8_t* p, size_t n) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrcTable[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

void put_le16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v);
  p[1] = uint8_t(v >> 8);
}
void put_le32(uint8_t* p, uint32_t v) {
  put_le16(p, uint16_t(v));
  put_le16(p + 2, uint16_t(v >> 16));
}
uint16_t get_le16(const uint8_t* p) {
  return uint16_t(p[0] | p[1] << 8);
}
uint32_t get_le32(const uint8_t* p) {
  return get_le16(p) | uint32_t(get_le16(p + 2)) << 16;
}

Status write_all(int fd, const uint8_t* p, size_t n) {
  while (n) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return make_error(std::strerror(errno));
    }
    p += w;
    n -= size_t(w);
  }
  return Ok{};
}

Result<std::vector<uint8_t>> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(path + ": " + std::strerror(errno));
  std::vector<uint8_t> out;
  uint8_t buf[65536];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof(buf));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const std::string err = std::strerror(errno);
      ::close(fd);
      return make_error(path + ": " + err);
    }
    if (r == 0) break;
    out.insert(out.end(), buf, buf + r);
  }
  ::close(fd);
  return out;
}

// Valid records of a segment image; *corrupt counts entries lost to a bad or torn tail.
std::vector<EncodedRecord> parse_segment(const std::vector<uint8_t>& data, uint64_t* corrupt) {
  std::vector<EncodedRecord> out;
  if (data.size() < kHeaderBytes || std::memcmp(data.data(), kMagic, 8) != 0) {
    ++*corrupt;
    return out;
  }
  size_t off = kHeaderBytes;
  while (off < data.size()) {
    if (data.size() - off < kEntryHeaderBytes) {
      ++*corrupt;
      break;
    }
    const uint8_t* e = data.data() + off;
    const uint16_t len = get_le16(e + 2);
    if (len > EncodedRecord::kMaxBytes || data.size() - off - kEntryHeaderBytes < len ||
        crc32(crc32(0, e, 4), e + kEntryHeaderBytes, len) != get_le32(e + 4)) {
      ++*corrupt;
      break;
    }
    EncodedRecord r;
    r.template_id = get_le16(e);
    r.length = len;
    std::memcpy(r.bytes.data(), e + kEntryHeaderBytes, len);
    out.push_back(r);
    off += kEntryHeaderBytes + len;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Spool>> Spool::open(const SpoolOptions& options) {
  if (options.dir.empty()) return make_error("spool: no directory given");
  if (options.max_bytes < 64 * 1024)
    return make_error("spool: limit " + std::to_string(options.max_bytes) +
                      " bytes is below the 64 KiB minimum");
  std::unique_ptr<Spool> s(new Spool(options));
  // Several segments fit under the limit, so dropping the oldest frees a fraction, not all.
  s->options_.segment_bytes =
      std::max<uint64_t>(4096, std::min(options.segment_bytes, options.max_bytes / 4));
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) return make_error("spool: cannot create " + options.dir + ": " + ec.message());
  for (const auto& entry : std::filesystem::directory_iterator(options.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != 24 || name.substr(20) != ".seg") continue;
    uint64_t id = 0;
    bool digits = true;
    for (size_t i = 0; i < 20; ++i) {
      if (name[i] < '0' || name[i] > '9') digits = false;
      id = id * 10 + uint64_t(name[i] - '0');
    }
    if (!digits) continue;
    auto data = read_file(entry.path().string());
    if (!data) return make_error("spool: " + data.error());
    uint64_t corrupt = 0;
    const auto records = parse_segment(*data, &corrupt);
    s->corrupt_ += corrupt;
    s->segments_[id] = Segment{data->size(), records.size()};
  }
  if (ec) return make_error("spool: cannot list " + options.dir + ": " + ec.message());
  // A test write: a read-only or full directory is a start-up error, not a silent loss later.
  const std::string probe = options.dir + "/.probe";
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("spool: cannot write in " + options.dir + ": " + strerror(errno));
  ::close(fd);
  ::unlink(probe.c_str());
  s->account();
  return s;
}

Spool::~Spool() {
  close_active();
}

std::string Spool::path_of(uint64_t id) const {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.seg", static_cast<unsigned long long>(id));
  return options_.dir + "/" + name;
}

void Spool::account() {
  uint64_t b = 0, r = 0;
  for (const auto& [id, seg] : segments_) {
    b += seg.bytes;
    r += seg.records;
  }
  bytes_.store(b, std::memory_order_relaxed);
  records_.store(r, std::memory_order_relaxed);
}

void Spool::sync_dir() const {
  if (!options_.fsync) return;
  const int fd = ::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

Status Spool::write_segment_entries(int fd, uint64_t id, std::span<const EncodedRecord> records) {
  std::vector<uint8_t> buf;
  buf.reserve(records.size() * (kEntryHeaderBytes + 80));
  for (const EncodedRecord& r : records) {
    uint8_t h[kEntryHeaderBytes];
    put_le16(h, r.template_id);
    put_le16(h + 2, r.length);
    put_le32(h + 4, crc32(crc32(0, h, 4), r.bytes.data(), r.length));
    buf.insert(buf.end(), h, h + kEntryHeaderBytes);
    buf.insert(buf.end(), r.bytes.begin(), r.bytes.begin() + r.length);
  }
  if (Status st = write_all(fd, buf.data(), buf.size()); !st) return st;
  if (options_.fsync && ::fdatasync(fd) != 0) return make_error(std::strerror(errno));
  Segment& seg = segments_[id];
  seg.bytes += buf.size();
  seg.records += records.size();
  return Ok{};
}

Status Spool::open_active() {
  const uint64_t id = segments_.empty() ? kFirstSegment : segments_.rbegin()->first + 1;
  const std::string path = path_of(id);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("spool: " + path + ": " + std::strerror(errno));
  uint8_t header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  put_le32(header + 8, 1);
  if (Status st = write_all(fd, header, sizeof(header)); !st) {
    ::close(fd);
    ::unlink(path.c_str());
    return make_error("spool: " + path + ": " + st.error());
  }
  segments_[id] = Segment{kHeaderBytes, 0};
  active_fd_ = fd;
  active_id_ = id;
  sync_dir();
  return Ok{};
}

void Spool::close_active() {
  if (active_fd_ >= 0) ::close(active_fd_);
  active_fd_ = -1;
}

Status Spool::append(std::span<const EncodedRecord> records) {
  if (records.empty()) return Ok{};
  if (active_fd_ >= 0 && segments_[active_id_].bytes >= options_.segment_bytes) close_active();
  if (active_fd_ < 0)
    if (Status st = open_active(); !st) return st;
  Status st = write_segment_entries(active_fd_, active_id_, records);
  if (!st) {
    // A partial write leaves a torn entry: seal the segment so nothing lands after it.
    close_active();
    st = make_error("spool: " + path_of(active_id_) + ": " + st.error());
  }
  enforce_limit();
  account();
  return st;
}

Status Spool::prepend(std::span<const EncodedRecord> records) {
  if (records.empty()) return Ok{};
  if (segments_.empty()) return append(records);
  const uint64_t id = segments_.begin()->first - 1;
  const std::string path = path_of(id);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return make_error("spool: " + path + ": " + std::strerror(errno));
  uint8_t header[kHeaderBytes] = {};
  std::memcpy(header, kMagic, 8);
  put_le32(header + 8, 1);
  segments_[id] = Segment{kHeaderBytes, 0};
  Status st = write_all(fd, header, sizeof(header));
  if (st) st = write_segment_entries(fd, id, records);
  ::close(fd);
  if (!st) st = make_error("spool: " + path + ": " + st.error());
  sync_dir();
  enforce_limit();
  account();
  return st;
}

Result<SpoolBatch> Spool::read_oldest() {
  if (segments_.empty()) return make_error("spool: empty");
  const uint64_t id = segments_.begin()->first;
  if (id == active_id_) close_active();
  auto data = read_file(path_of(id));
  if (!data) return make_error("spool: " + data.error());
  uint64_t corrupt = 0;
  SpoolBatch batch{id, parse_segment(*data, &corrupt)};
  corrupt_ += corrupt;
  return batch;
}

Status Spool::remove(uint64_t segment) {
  if (segment == active_id_) close_active();
  const bool failed = ::unlink(path_of(segment).c_str()) != 0 && errno != ENOENT;
  const std::string err = failed ? std::strerror(errno) : "";
  segments_.erase(segment);
  sync_dir();
  account();
  if (failed) return make_error("spool: " + path_of(segment) + ": " + err);
  return Ok{};
}

void Spool::enforce_limit() {
  uint64_t total = 0;
  for (const auto& [id, seg] : segments_) total += seg.bytes;
  while (total > options_.max_bytes && !segments_.empty()) {
    const auto oldest = segments_.begin();
    const uint64_t id = oldest->first;
    const Segment seg = oldest->second;
    if (id == active_id_) close_active();
    ::unlink(path_of(id).c_str());
    segments_.erase(oldest);
    total -= seg.bytes;
    dropped_ += seg.records;
    log_warn("export spool over its " + std::to_string(options_.max_bytes) +
             "-byte limit: dropped the oldest segment, " + std::to_string(seg.records) +
             " records lost");
  }
}

}  // namespace exitgw::exporter
