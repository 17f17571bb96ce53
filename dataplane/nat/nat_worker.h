// One worker's NAT44 or NAT66 (one core, NatCore<Family>; nat_family.h says what differs):
// endpoint-independent mapping, paired pooling, port blocks (or RFC 7422 deterministic
// ranges), filtering, TCP state, ICMP/ICMPv6 query and error translation, fragments,
// hairpinning and budgeted expiry, over tables allocated once at construction.
//
// Ownership: a NatCore is used by exactly one lcore (the one that owns its port slice);
// nothing in it is shared except the counters (read by control) and the event ring (drained
// by its consumer). It needs no EAL: only DPDK's header structs and inline helpers.
#pragma once

#include <rte_ip.h>

#include <cstdint>
#include <memory>
#include <optional>

#include "dataplane/nat/bucket_index.h"
#include "dataplane/nat/huge_array.h"
#include "dataplane/nat/nat_config.h"
#include "dataplane/nat/nat_family.h"
#include "common/nat_types.h"

namespace exitgw::dp::nat {

enum class NatProto : uint8_t { kTcp = 0, kUdp = 1, kIcmp = 2, kCount = 3 };

// The worker a packet arriving from the internet must be handed to: the owner of its
// destination port, ICMP identifier, or (ICMP error) embedded source port. kNone when the
// packet carries none (non-first fragments: see the note in nat_fragments.cc).
uint32_t inbound_owner(const NatConfig& config, const rte_ipv4_hdr* ip, uint32_t len) noexcept;
uint32_t inbound_owner(const NatConfig& config, const rte_ipv6_hdr* ip, uint32_t len) noexcept;

template <class F>
class NatCore {
 public:
  using Address = typename F::Address;
  using Header = typename F::Header;

  // `config` must have passed validate() (NAT66: family kIpv6); `events` may be null (events
  // are then only counted).
  NatCore(const NatConfig& config, unsigned worker_index, NatEventRing* events = nullptr);
  ~NatCore();
  NatCore(const NatCore&) = delete;
  NatCore& operator=(const NatCore&) = delete;

  // Subscriber -> internet. `ip` points at a contiguous IPv4 (IPv6) packet of `len` buffer
  // bytes; `now` is in config ticks and must not go backwards. On kDrop, *why says why.
  NatVerdict out(Header* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept;
  // Internet (or a hairpin hand-off) -> subscriber.
  NatVerdict in(Header* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept;

  // Bursts: the same verdicts and rewrites as out()/in() packet by packet, in order; the
  // lookups are staged across the burst (parse and hash all, prefetch the buckets, then the
  // records they point to) so each packet's chain of cache misses overlaps the others'.
  void out_burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                 NatVerdict* verdicts, NatDrop* why) noexcept;
  void in_burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                NatVerdict* verdicts, NatDrop* why) noexcept;

  // Frees at most `budget` expired sessions (and what they alone held: mappings, ports,
  // blocks, subscribers); returns how many were freed. Call once per loop.
  uint32_t expire(uint64_t now, uint32_t budget) noexcept;

  // Deletes every session, mapping, port and block of the subscribers in prefix/len (a peer
  // that was removed), with block-release events; returns the sessions freed. A /32 costs one
  // lookup and the subscriber's sessions; a wider prefix scans every subscriber slot.
  uint32_t remove_subscribers(const Address& prefix, uint8_t len) noexcept;

  // ---- inspection (control, tests) ----
  struct Translation {
    Address public_address;
    uint16_t public_port;
  };
  std::optional<Translation> find_mapping(const Address& subscriber, uint16_t port,
                                          NatProto proto) const noexcept;
  bool has_session(const Address& subscriber, uint16_t port, NatProto proto, const Address& remote,
                   uint16_t remote_port) const noexcept;
  uint32_t subscriber_blocks(const Address& subscriber) const noexcept;
  uint32_t sessions() const noexcept { return n_sessions_; }
  uint32_t mappings() const noexcept { return n_mappings_; }
  uint32_t subscribers() const noexcept { return n_subscribers_; }
  uint32_t capacity() const noexcept { return cap_; }
  size_t memory_bytes() const noexcept;
  const NatCounters& counters() const noexcept { return counters_; }
  unsigned worker_index() const noexcept { return worker_; }

 private:
  struct Session;
  struct Mapping;
  struct Subscriber;
  struct Block;
  struct FragEntry;
  struct Packet;
  struct Link {
    uint32_t prev, next;
  };

  NatVerdict out_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept;
  NatVerdict in_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept;
  // The burst loop of out_burst() and in_burst(), and its lookup warming (nat_internal.h).
  template <bool kOutbound>
  void burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
             NatVerdict* verdicts, NatDrop* why) noexcept;
  template <bool kOutbound>
  void prefetch_lookups(const Packet* p, const bool* parsed, uint16_t n) const noexcept;
  NatVerdict translate_out(Packet& p, uint32_t now_s, NatDrop* why) noexcept;
  NatVerdict translate_in(Packet& p, uint32_t now_s, NatDrop* why) noexcept;
  NatVerdict icmp_error(Packet& p, bool outbound, NatDrop* why) noexcept;
  NatVerdict fragment_follow(Packet& p, bool outbound, uint32_t now_s, NatDrop* why) noexcept;
  void fragment_record(const Packet& p, bool outbound, const Address& orig_src,
                       const Address& orig_dst, NatVerdict v, uint32_t now_s) noexcept;

  uint32_t seconds(uint64_t now) noexcept;
  inline uint32_t find_mapping_in(const Address& sub_ip, uint16_t sub_port,
                                  uint8_t proto) const noexcept;
  inline uint32_t find_mapping_out(const Address& pub_ip, uint16_t pub_port,
                                   uint8_t proto) const noexcept;
  inline uint32_t find_session(uint32_t mapping, const Address& remote,
                               uint16_t remote_port) const noexcept;
  inline uint32_t find_subscriber(const Address& ip) const noexcept;
  inline bool address_permitted(uint32_t mapping, const Address& remote) const noexcept;

  uint32_t get_subscriber(const Address& ip, uint64_t now, NatDrop* why) noexcept;
  uint32_t create_mapping(uint32_t sub, const Address& sub_ip, uint16_t sub_port, uint8_t proto,
                          uint64_t now, NatDrop* why) noexcept;
  uint32_t create_session(uint32_t mapping, const Address& remote, uint16_t remote_port,
                          uint32_t now_s, uint64_t now, NatDrop* why) noexcept;
  void delete_session(uint32_t s) noexcept;
  uint32_t any_mapping_of(uint32_t subscriber) const noexcept;
  uint32_t remove_subscriber(uint32_t subscriber) noexcept;
  void delete_mapping(uint32_t m) noexcept;
  void maybe_free_subscriber(uint32_t sub) noexcept;
  bool session_admissible(uint32_t sub, const Address& pub_ip, uint64_t now, NatDrop* why) noexcept;
  static inline bool parse(Header* ip, uint32_t len, Packet& p, NatDrop* why) noexcept;
  inline void rewrite_src(Packet& p, const Address& ip, uint16_t port) noexcept;
  inline void rewrite_dst(Packet& p, const Address& ip, uint16_t port) noexcept;
  uint64_t ticks(uint32_t now_s) const noexcept {
    return epoch_ + uint64_t{now_s} * config_.ticks_per_second;
  }
  void release_block(uint32_t sub, uint32_t slot) noexcept;
  bool allocate_port(Subscriber& sub, uint32_t sub_index, uint8_t proto, uint16_t want,
                     uint64_t now, uint16_t* port, NatDrop* why) noexcept;
  uint32_t new_block(Subscriber& sub, uint32_t sub_index, uint64_t now, NatDrop* why) noexcept;
  bool take_port_in_block(uint32_t block, uint8_t proto, uint16_t want, int mode,
                          uint16_t* port) noexcept;
  inline void touch(uint32_t s, uint32_t now_s) noexcept;
  inline void tcp_update(uint32_t s, uint8_t tcp_flags, bool outbound) noexcept;
  void count_session(uint8_t proto, uint8_t timeout_class, int64_t delta) noexcept;
  void event(NatEventType type, const Address& sub_ip, const Address& pub_ip, uint16_t first,
             uint16_t last, uint64_t now) noexcept;

  // timer wheel
  Link& link(uint32_t i) noexcept;
  void wheel_unlink(uint32_t s) noexcept;
  void wheel_link(uint32_t s, uint32_t slot_head) noexcept;
  void wheel_schedule(uint32_t s) noexcept;
  uint32_t deadline(uint32_t s) const noexcept;

  const NatConfig config_;
  const unsigned worker_;
  NatEventRing* events_;
  NatCounters counters_;

  uint32_t cap_, sub_cap_, block_size_, blocks_per_slice_, n_addresses_, words_per_block_;
  uint32_t slice_first_;
  uint32_t timeout_[4];
  uint64_t seed_;

  // The big tables sit on huge pages (huge_array.h): lookups touch them at random.
  HugeArray<Session> sessions_;
  HugeArray<Mapping> mappings_;
  HugeArray<Subscriber> subs_;
  std::unique_ptr<Block[]> blocks_;
  HugeArray<uint64_t> port_bits_;            // per block: kCount protocols x words_per_block_
  std::unique_ptr<uint32_t[]> free_blocks_;  // per address: a stack of free block numbers
  std::unique_ptr<uint32_t[]> n_free_blocks_;
  std::unique_ptr<uint8_t[]> exhaust_reported_;  // per address
  std::unique_ptr<FragEntry[]> frags_;
  uint32_t n_frag_sets_;
  BucketIndex map_in_, map_out_, session_index_, sub_index_;

  uint32_t free_session_ = kNone, free_mapping_ = kNone, free_sub_ = kNone;
  uint32_t n_sessions_ = 0, n_mappings_ = 0, n_subscribers_ = 0;

  // Hashed timer wheel, one-second slots; heads are sentinels cap_..cap_+kWheelSlots, and
  // one more (the "due" list) holds a slot being drained across expire() calls.
  static constexpr uint32_t kWheelSlots = 4096;
  std::unique_ptr<Link[]> wheel_heads_;
  uint32_t wheel_now_ = 0;  // next second to drain
  uint64_t epoch_ = 0;      // `now` of second 0
  bool started_ = false;
  uint64_t next_second_tick_ = 0;
  uint32_t now_s_ = 0;
  uint64_t now_ = 0;  // the latest `now` given, for event timestamps
};

// Classes rather than aliases so that they can be declared ahead (class NatWorker;).
class NatWorker final : public NatCore<Nat44> {  // NAT44
 public:
  using NatCore::NatCore;
};
class Nat66Worker final : public NatCore<Nat66> {  // stateful NAT66
 public:
  using NatCore::NatCore;
};

}  // namespace exitgw::dp::nat
