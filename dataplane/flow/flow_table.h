// Per-worker flow accounting: a fixed-size table of flows keyed by the subscriber-side 5-tuple
// and peer, and the ring of finished or interval records it hands to the control thread.
// One table per address family (FlowTable for IPv4, FlowTable6 for IPv6: the same code over
// two key types), so an IPv4 entry stays one cache line and IPv6 pays only for its own.
//
// Ownership: one table of each family per worker, allocated once by control before the workers
// start; while the worker runs only that worker touches the table (control reads `counters()` and
// pops `ring()`); after the worker has stopped, control may call expire_all() to flush it.
// Nothing here allocates, locks or makes a system call after construction.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include "common/spsc_ring.h"
#include "common/counters.h"
#include "dataplane/nat/huge_array.h"

namespace exitgw::dp::flow {

// Addresses and ports as they are on the wire (network order): the data path copies header
// fields without swapping; control converts when it builds the export record. 16 bytes, so a
// lookup compares two words and an entry with its counters fits one cache line.
struct FlowKey {
  uint32_t src_address;     // the subscriber's inner (pre-NAT) address
  uint32_t dst_address;     // the internet side
  uint16_t src_port;        // TCP/UDP port, ICMP query identifier, else 0
  uint16_t dst_port;        // TCP/UDP port, else 0
  uint32_t peer_slot : 24;  // an allowed-IPs next hop: rte_lpm's are 24 bits wide
  uint32_t protocol : 8;

  bool operator==(const FlowKey&) const = default;
};
static_assert(sizeof(FlowKey) == 16);

// The IPv6 flow key: the same fields with 16-byte addresses (as on the wire), 40 bytes.
struct FlowKey6 {
  uint8_t src_address[16];  // the subscriber's inner (pre-translation) address
  uint8_t dst_address[16];  // the internet side
  uint16_t src_port;
  uint16_t dst_port;
  uint32_t peer_slot : 24;
  uint32_t protocol : 8;

  bool operator==(const FlowKey6&) const = default;
};
static_assert(sizeof(FlowKey6) == 40 && sizeof(FlowKey6) % 8 == 0);

enum class FlowDirection : uint8_t { kOut, kIn };  // subscriber -> internet, and back

// Why a record was emitted.
enum class FlowEnd : uint8_t {
  kActive,    // the active timeout: a long flow's counts for the last interval; it goes on
  kIdle,      // no packet for the idle timeout
  kFinished,  // TCP FIN seen both ways, or an RST (emitted once the flow is quiet for a moment)
  kFlushed,   // the worker stopped (shutdown)
  kCount
};

// One record on the worker → control ring: counts since the previous record of the same flow.
struct FlowExport {
  FlowKey key;
  uint32_t post_nat_address;  // network order; 0 when not known (routed mode: = source)
  uint16_t post_nat_port;
  uint16_t tcp_flags;  // OR of the flags seen both ways
  FlowEnd end;
  uint8_t worker;
  uint8_t pad[6];
  uint64_t first_tsc, last_tsc;
  uint64_t tx_packets, tx_bytes;  // subscriber -> internet (IP total length)
  uint64_t rx_packets, rx_bytes;  // internet -> subscriber
};
static_assert(sizeof(FlowExport) == 80);

// The IPv6 record: the same counts, 16-byte addresses.
struct FlowExport6 {
  FlowKey6 key;
  uint8_t post_nat_address[16];  // all zero when not known
  uint16_t post_nat_port;
  uint16_t tcp_flags;
  FlowEnd end;
  uint8_t worker;
  uint8_t pad[2];
  uint64_t first_tsc, last_tsc;
  uint64_t tx_packets, tx_bytes;
  uint64_t rx_packets, rx_bytes;
};
static_assert(sizeof(FlowExport6) == 112);

// What differs between the families: the key, the post-NAT address, the record.
template <class Key>
struct FlowFamily;
template <>
struct FlowFamily<FlowKey> {
  using Address = uint32_t;  // network order
  using Export = FlowExport;
  static void set(uint32_t& to, Address a) noexcept { to = a; }
};
template <>
struct FlowFamily<FlowKey6> {
  struct Address {
    uint8_t bytes[16];
  };
  using Export = FlowExport6;
  static void set(uint8_t (&to)[16], const Address& a) noexcept {
    __builtin_memcpy(to, a.bytes, 16);
  }
};

// Worker -> control flow records.
template <class Export>
class BasicFlowRing : public SpscRing<Export> {
 public:
  using SpscRing<Export>::SpscRing;
};
using FlowRing = BasicFlowRing<FlowExport>;
using FlowRing6 = BasicFlowRing<FlowExport6>;

// Written by the owning worker only; read by control for metrics.
struct alignas(64) FlowCounters {
  Counter created;          // flows that got an entry
  Counter removed;          // entries freed (active = created - removed)
  Counter records;          // records pushed to the ring
  Counter ring_full;        // records lost: the ring to control was full
  Counter untracked;        // packets of flows that found the table full (not accounted)
  Counter packets_counted;  // packets accounted into some flow
  uint64_t active() const noexcept { return created.get() - removed.get(); }
};

struct FlowConfig {
  uint32_t max_flows = 65536;       // per worker
  uint32_t ring_capacity = 8192;    // records; rounded up to a power of two
  uint64_t idle_ticks = 0;          // no packet this long: emit and forget
  uint64_t active_ticks = 0;        // a flow older than this emits its interval and goes on
  uint64_t linger_ticks = 0;        // a finished TCP flow waits this long for its last ACKs
  uint64_t sweep_period_ticks = 0;  // the whole table is examined once per period
  uint8_t worker = 0;
  // Seconds → ticks (rte_get_tsc_hz() on workers) with the usual sweep and linger choices.
  static FlowConfig with_timeouts(uint32_t max_flows, double idle_s, double active_s,
                                  uint64_t ticks_per_second, uint8_t worker);
};

// The flow table of one family: Key is FlowKey (IPv4) or FlowKey6 (IPv6).
template <class Key>
class BasicFlowTable {
 public:
  using Address = typename FlowFamily<Key>::Address;
  using Export = typename FlowFamily<Key>::Export;
  using Ring = BasicFlowRing<Export>;
  static constexpr size_t kKeyWords = sizeof(Key) / 8;

  explicit BasicFlowTable(const FlowConfig& config);
  BasicFlowTable(const BasicFlowTable&) = delete;
  BasicFlowTable& operator=(const BasicFlowTable&) = delete;

  uint32_t hash(const Key& k) const noexcept {
    uint64_t w[kKeyWords];
    __builtin_memcpy(w, &k, sizeof(Key));
    // The seed keeps peers from choosing keys that pile onto one probe run.
    uint64_t h = (w[0] ^ seed_) * 0x9E3779B97F4A7C15ull;
    h ^= (w[1] ^ (seed_ >> 17)) * 0xC2B2AE3D27D4EB4Full;
    // IPv6: the further words folded in the same way (IPv4's key is two words, no loop).
    for (size_t i = 2; i < kKeyWords; ++i) {
      h ^= h >> 29;
      h ^= (w[i] ^ (seed_ >> (7 * i))) * 0x9E3779B97F4A7C15ull;
    }
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return static_cast<uint32_t>(h);
  }
  // Hints that `hash`'s slot is about to be probed (a burst prefetches all, then accounts).
  void prefetch(uint32_t h) const noexcept { __builtin_prefetch(&index_[h & mask_]); }

  static constexpr uint32_t kUntracked = UINT32_MAX;
  // Counts one packet of `bytes` (IP total length) into the flow of `key` (`h` = hash(key)),
  // creating it when new; `tcp_flags` is the TCP header's flag byte (0 for other protocols).
  // Returns the flow's entry, or kUntracked when the table is full (counted as untracked).
  uint32_t account(const Key& key, uint32_t h, FlowDirection dir, uint32_t bytes, uint8_t tcp_flags,
                   uint64_t now) noexcept;
  uint32_t account(const Key& key, FlowDirection dir, uint32_t bytes, uint8_t tcp_flags,
                   uint64_t now) noexcept {
    return account(key, hash(key), dir, bytes, tcp_flags, now);
  }
  // A burst's packets, all one direction, in three passes so that the misses overlap: hash
  // every key and prefetch its index slot; read each home slot and prefetch the entry it names;
  // then count each packet as account() does. entries[i] receives packet i's entry (or
  // kUntracked). Packets of one flow in the same burst count in order.
  static constexpr uint16_t kMaxBurst = 64;  // n of account_burst()
  void account_burst(const Key* keys, const uint16_t* bytes, const uint8_t* tcp_flags, uint16_t n,
                     FlowDirection dir, uint64_t now, uint32_t* entries) noexcept;

  // The post-NAT source of a flow (network order), recorded once: the first packet that knows it.
  bool has_post_nat(uint32_t entry) const noexcept { return entries_[entry].state & kHasPostNat; }
  void set_post_nat(uint32_t entry, const Address& address, uint16_t port) noexcept {
    FlowFamily<Key>::set(entries_[entry].post_nat_address, address);
    entries_[entry].post_nat_port = port;
    entries_[entry].state |= kHasPostNat;
  }

  // Examines at most `budget` entries, paced so the whole table is seen once per sweep
  // period: emits finished, idle and active-timeout records. Returns entries examined.
  uint32_t sweep(uint64_t now, uint32_t budget) noexcept;
  // Emits every flow with counts (FlowEnd::kFlushed) and frees them, at most `budget` entries
  // examined; returns how many entries remain. For a stopped worker (control) and tests.
  uint32_t expire_all(uint32_t budget) noexcept;

  Ring& ring() noexcept { return ring_; }
  const FlowCounters& counters() const noexcept { return counters_; }
  uint32_t active() const noexcept { return n_used_; }
  uint32_t max_flows() const noexcept { return config_.max_flows; }
  const FlowConfig& config() const noexcept { return config_; }

  // A flow's packet counts are 32 bits (to fit the entry in one line): the sweep, which sees
  // every entry at least once a second, emits an interval record once either passes this.
  static constexpr uint32_t kPacketsEmitAt = 1u << 31;

 private:
  // IPv4: one cache line, a packet touches nothing else of its flow. IPv6: two.
  struct alignas(64) Entry {
    Key key;
    uint64_t first_tsc;  // first packet of the current interval, 0 = none since the last record
    uint64_t last_tsc;
    uint64_t tx_bytes, rx_bytes;
    uint32_t tx_packets, rx_packets;
    decltype(Export::post_nat_address) post_nat_address;
    uint16_t post_nat_port;
    uint8_t tcp_flags;
    uint8_t state;  // kUsed | kFinOut | kFinIn | kFinished | kHasPostNat
  };
  static_assert(sizeof(Entry) == (sizeof(Key) == 16 ? 64 : 128));
  // Open addressing with linear probing over entry indices + 1 (0 = empty); at most half full.
  // Eight slots to a line: a probe run rarely leaves its first line.
  struct Slot {
    uint32_t hash;
    uint32_t entry;  // index + 1
  };
  static_assert(sizeof(Slot) == 8);
  static constexpr uint8_t kUsed = 1, kFinOut = 2, kFinIn = 4, kFinished = 8, kHasPostNat = 16;

  uint32_t lookup_or_insert(const Key& key, uint32_t h) noexcept;
  uint32_t insert(const Key& key, uint32_t h, uint32_t slot) noexcept;
  void count(uint32_t idx, FlowDirection dir, uint32_t bytes, uint8_t tcp_flags,
             uint64_t now) noexcept;
  void emit(Entry& e, FlowEnd why) noexcept;
  void remove(uint32_t entry) noexcept;

  FlowConfig config_;
  uint32_t mask_;
  nat::HugeArray<Slot> index_;
  nat::HugeArray<Entry> entries_;
  nat::HugeArray<uint32_t> free_;  // stack of free entry indices
  uint32_t n_free_;
  uint32_t n_used_ = 0;
  uint32_t cursor_ = 0;  // next entry the sweep examines
  uint64_t sweep_tsc_ = 0;
  uint64_t seed_;
  Ring ring_;
  FlowCounters counters_;
};

extern template class BasicFlowTable<FlowKey>;
extern template class BasicFlowTable<FlowKey6>;
using FlowTable = BasicFlowTable<FlowKey>;
using FlowTable6 = BasicFlowTable<FlowKey6>;

}  // namespace exitgw::dp::flow
