// NatWorker: the per-packet translation paths, the port-block allocator and the timer wheel.
//
// Tables (all allocated in the constructor, sized from max_sessions; nothing per packet):
//  - Session (32 B): one per (mapping, remote address, remote port); TCP state, last-seen
//    second, wheel links, links in its mapping's list.
//  - Mapping (32 B): one per (subscriber address, port, protocol) -> (public address, port):
//    endpoint-independent mapping (RFC 4787 REQ-1). Lives while it has sessions.
//  - Three BucketIndex hashes (~11.4 B per entry each): mapping by inside key, mapping by
//    outside key, session by (mapping, remote). A packet costs two lookups either way.
//  - Subscriber: paired public address, its blocks, session count. Block: owner and use
//    count, plus one bit per port per protocol (bitmaps for the worker's whole slice).
// Expiry: a hashed timer wheel of one-second slots. A packet only stores its second in the
//  session (no list move); when a slot comes due each session is freed if truly idle, else
//  moved to the slot of its real deadline. expire(budget) bounds the work per call.
// Fragments: the first fragment (it has the L4 header) is translated through the session
//  and its (src, dst, IP id, protocol) -> rewritten addresses kept in a 4-way set-associative
//  table that evicts the oldest; later fragments follow it. Non-first fragments arriving
//  before the first are dropped and counted (no buffering: bounded memory, no hold verdict).
//  With several workers, inbound non-first fragments carry no port to steer by; the caller
//  must send them to the worker that saw the first (VPP does shallow virtual reassembly
//  at the hand-off for this); inbound_owner() returns kNone for them.
// Port choice inside a subscriber's blocks (RFC 4787 REQ-3/4, RFC 6888 REQ-3/4 allow it):
//  1. the same offset: the subscriber's own port if it falls in the block (preservation),
//     otherwise the port with the same position modulo block_size;
//  2. any free port of the same parity (REQ-4 parity preservation);
//  3. any free port in a block it holds;
//  4. a new block (up to max_blocks_per_subscriber) from its paired address's free blocks,
//     which are kept shuffled so a subscriber's block cannot be predicted.
//  New blocks come only after the held ones are full, so logs stay per block.
#include "dataplane/nat/nat_worker.h"

#include <rte_byteorder.h>

#include <algorithm>
#include <cstring>

#include "dataplane/nat/checksum.h"

namespace exitgw::dp::nat {

namespace {

constexpr uint8_t kIpProtoIcmp = 1, kIpProtoTcp = 6, kIpProtoUdp = 17;
constexpr uint8_t kIcmpEchoReply = 0, kIcmpUnreachable = 3, kIcmpEchoRequest = 8,
                  kIcmpTimeExceeded = 11, kIcmpParameterProblem = 12, kIcmpTimestamp = 13,
                  kIcmpTimestampReply = 14;
constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04;
constexpr uint8_t kSynOut = 1, kSynIn = 2, kFinOut = 4, kFinIn = 8, kRstSeen = 16;
constexpr uint8_t kClassUdp = 0, kClassTcpEstablished = 1, kClassTcpTransitory = 2, kClassIcmp = 3;
constexpr uint8_t kLimitReported = 1, kPortLimitReported = 2, kSubscriberInUse = 4;
constexpr unsigned kAdfScanLimit = 32;  // sessions of one mapping searched for an address

// Unaligned raw (network order) loads and stores: packets may sit at any offset.
inline uint16_t ld16(const uint8_t* p) noexcept {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline void st16(uint8_t* p, uint16_t v) noexcept {
  std::memcpy(p, &v, 2);
}
inline uint32_t ld32(const uint8_t* p) noexcept {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline void st32(uint8_t* p, uint32_t v) noexcept {
  std::memcpy(p, &v, 4);
}
inline uint16_t be16(const uint8_t* p) noexcept {
  return rte_be_to_cpu_16(ld16(p));
}
inline uint32_t be32(const uint8_t* p) noexcept {
  return rte_be_to_cpu_32(ld32(p));
}

bool is_query_request(uint8_t type) {
  return type == kIcmpEchoRequest || type == kIcmpTimestamp;
}
bool is_query_reply(uint8_t type) {
  return type == kIcmpEchoReply || type == kIcmpTimestampReply;
}
bool is_error(uint8_t type) {
  return type == kIcmpUnreachable || type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
}

int8_t proto_index(uint8_t ip_proto) {
  switch (ip_proto) {
    case kIpProtoTcp:
      return 0;
    case kIpProtoUdp:
      return 1;
    case kIpProtoIcmp:
      return 2;
    default:
      return -1;
  }
}

// The L4 port (TCP/UDP) or identifier (ICMP) field offsets.
constexpr unsigned kSrcPortOffset[3] = {0, 0, 4};
constexpr unsigned kDstPortOffset[3] = {2, 2, 4};
constexpr unsigned kCsumOffset[3] = {16, 6, 2};

// Rewrites an address at `addr` (and its L4 port/id at `port`, if given) and fixes the IP
// header checksum at `ip_csum` and the L4 checksum at `l4_csum` (if given; for TCP/UDP the
// pseudo-header includes the address, for ICMP it does not).
void rewrite(uint8_t* addr, uint32_t new_addr_host, uint8_t* ip_csum, uint8_t* port,
             uint16_t new_port_host, uint8_t* l4_csum, uint8_t proto) noexcept {
  const uint32_t old_a = ld32(addr), new_a = rte_cpu_to_be_32(new_addr_host);
  st16(ip_csum, csum_replace32(ld16(ip_csum), old_a, new_a));
  st32(addr, new_a);
  uint16_t old_p = 0, new_p = 0;
  if (port) {
    old_p = ld16(port);
    new_p = rte_cpu_to_be_16(new_port_host);
    st16(port, new_p);
  }
  if (!l4_csum) return;
  uint16_t c = ld16(l4_csum);
  if (proto == 1 && c == 0) return;  // UDP without checksum stays without
  if (proto != 2) c = csum_replace32(c, old_a, new_a);
  if (port) c = csum_replace16(c, old_p, new_p);
  if (proto == 1) c = udp_csum_fixup(c);
  st16(l4_csum, c);
}

}  // namespace

struct NatWorker::Session {
  uint32_t mapping;
  uint32_t remote;
  uint16_t remote_port;
  uint8_t tcp_state;
  uint8_t timeout_class;
  uint32_t last_seen;  // seconds since the worker's epoch
  Link wheel;          // wheel slot list; wheel.next doubles as the free-list link
  Link in_mapping;     // the mapping's sessions, newest first; kNone-terminated
};

struct NatWorker::Mapping {
  uint32_t sub_ip, pub_ip;
  uint16_t sub_port, pub_port;
  uint8_t proto;
  uint8_t pad;
  uint16_t n_sessions;
  uint32_t subscriber;
  uint32_t sessions;  // head of the session list
  uint32_t next_free;
  uint32_t pad2;
};

struct NatWorker::Subscriber {
  uint32_t ip;
  uint32_t address_index;
  uint32_t n_sessions;
  uint32_t next_free;
  uint8_t n_blocks;
  uint8_t flags;
  uint16_t pad;
  uint32_t blocks[kMaxBlocksPerSubscriber];
};

struct NatWorker::Block {
  uint32_t owner;  // subscriber index or kNone
  uint32_t used;   // ports in use, all protocols
};

struct NatWorker::FragEntry {
  uint32_t src, dst;  // as the fragments arrive
  uint16_t id;
  uint8_t proto;
  uint8_t outbound;  // 0/1; 0xff = empty
  uint32_t new_src, new_dst;
  uint32_t expires;
  NatVerdict verdict;
  uint8_t pad[3];
};

struct NatWorker::Packet {
  rte_ipv4_hdr* ip;
  uint8_t* base;          // == ip
  uint8_t* l4;            // null for non-first fragments
  uint32_t l4_len;        // bytes of L4 header and payload in this packet
  uint32_t src, dst;      // host order
  uint16_t sport, dport;  // host order; ICMP query: both are the identifier
  uint8_t proto;          // NatProto
  uint8_t icmp_type;
  uint8_t tcp_flags;
  bool fragment, non_first;
};

// ---------------------------------------------------------------------------------------------

NatWorker::NatWorker(const NatConfig& config, unsigned worker_index, NatEventRing* events)
    : config_(config),
      worker_(worker_index),
      events_(events),
      cap_(config.max_sessions),
      sub_cap_(config.effective_max_subscribers()),
      block_size_(config.effective_block_size()),
      blocks_per_slice_(config.blocks_per_slice()),
      n_addresses_(config.pool_size()),
      words_per_block_((config.effective_block_size() + 63) / 64),
      slice_first_(config.slice_first(worker_index)),
      timeout_{config.timeouts.udp, config.timeouts.tcp_established, config.timeouts.tcp_transitory,
               config.timeouts.icmp},
      seed_(hash_words(config.hash_seed, worker_index, 0x5eed5eed5eed5eedull)),
      sessions_(cap_),
      mappings_(cap_),
      subs_(sub_cap_),
      blocks_(new Block[uint64_t{n_addresses_} * blocks_per_slice_]),
      port_bits_(uint64_t{n_addresses_} * blocks_per_slice_ * 3 * words_per_block_),
      free_blocks_(new uint32_t[uint64_t{n_addresses_} * blocks_per_slice_]),
      n_free_blocks_(new uint32_t[n_addresses_]),
      exhaust_reported_(new uint8_t[n_addresses_]()),
      frags_(new FragEntry[((config.fragment_entries + 3) / 4) * 4]),
      n_frag_sets_((config.fragment_entries + 3) / 4),
      map_in_(cap_),
      map_out_(cap_),
      session_index_(cap_),
      sub_index_(sub_cap_),
      wheel_heads_(new Link[kWheelSlots + 1]) {
  // The memory budget (<128 B per session at 1M) relies on these.
  static_assert(sizeof(Session) == 32 && sizeof(Mapping) == 32 && sizeof(FragEntry) == 28);
  counters_.blocks_by_address.reset(new Gauge[n_addresses_]);
  for (uint32_t i = 0; i < cap_; ++i) {
    sessions_[i].wheel.next = i + 1 < cap_ ? i + 1 : kNone;
    mappings_[i].next_free = i + 1 < cap_ ? i + 1 : kNone;
  }
  free_session_ = free_mapping_ = 0;
  for (uint32_t i = 0; i < sub_cap_; ++i) {
    subs_[i].next_free = i + 1 < sub_cap_ ? i + 1 : kNone;
    subs_[i].flags = 0;
  }
  free_sub_ = 0;
  const uint64_t n_blocks = uint64_t{n_addresses_} * blocks_per_slice_;
  uint64_t rng = seed_ | 1;
  for (uint32_t a = 0; a < n_addresses_; ++a) {
    uint32_t* stack = &free_blocks_[uint64_t{a} * blocks_per_slice_];
    for (uint32_t k = 0; k < blocks_per_slice_; ++k) stack[k] = k;
    for (uint32_t k = blocks_per_slice_; k > 1; --k) {  // Fisher-Yates with xorshift
      rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
      std::swap(stack[k - 1], stack[rng % k]);
    }
    n_free_blocks_[a] = blocks_per_slice_;
  }
  // Bits past block_size in the last word are permanently "in use".
  const uint64_t tail = block_size_ % 64 ? ~uint64_t{0} << (block_size_ % 64) : 0;
  for (uint64_t b = 0; b < n_blocks; ++b) {
    blocks_[b] = Block{kNone, 0};
    for (unsigned p = 0; p < 3; ++p) {
      uint64_t* w = &port_bits_[(b * 3 + p) * words_per_block_];
      for (uint32_t i = 0; i < words_per_block_; ++i) w[i] = 0;
      w[words_per_block_ - 1] |= tail;
    }
  }
  for (uint32_t i = 0; i < n_frag_sets_ * 4; ++i) frags_[i].outbound = 0xff;
  for (uint32_t i = 0; i <= kWheelSlots; ++i) wheel_heads_[i] = Link{cap_ + i, cap_ + i};
}

NatWorker::~NatWorker() = default;

size_t NatWorker::memory_bytes() const noexcept {
  const uint64_t n_blocks = uint64_t{n_addresses_} * blocks_per_slice_;
  return sizeof(*this) + sizeof(Session) * cap_ + sizeof(Mapping) * cap_ +
         sizeof(Subscriber) * sub_cap_ + sizeof(Block) * n_blocks +
         sizeof(uint64_t) * n_blocks * 3 * words_per_block_ + sizeof(uint32_t) * n_blocks +
         (sizeof(uint32_t) + 1) * n_addresses_ + sizeof(FragEntry) * n_frag_sets_ * 4 +
         map_in_.memory_bytes() + map_out_.memory_bytes() + session_index_.memory_bytes() +
         sub_index_.memory_bytes() + sizeof(Link) * (kWheelSlots + 1) +
         sizeof(Gauge) * n_addresses_;
}

uint32_t NatWorker::seconds(uint64_t now) noexcept {
  now_ = now;
  if (!started_) [[unlikely]] {
    started_ = true;
    epoch_ = now;
    next_second_tick_ = now + config_.ticks_per_second;
    return now_s_ = 0;
  }
  if (now >= next_second_tick_) {
    now_s_ = static_cast<uint32_t>((now - epoch_) / config_.ticks_per_second);
    next_second_tick_ = epoch_ + (uint64_t{now_s_} + 1) * config_.ticks_per_second;
  }
  return now_s_;
}

// ---- lookups ----------------------------------------------------------------------------------

namespace {
inline uint64_t inside_key(uint32_t ip, uint16_t port, uint8_t proto) {
  return uint64_t{ip} << 32 | uint32_t{port} << 8 | proto;
}
}  // namespace

uint32_t NatWorker::find_mapping_in(uint32_t ip, uint16_t port, uint8_t proto) const noexcept {
  return map_in_.find(hash_words(inside_key(ip, port, proto), 1, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.sub_ip == ip && x.sub_port == port && x.proto == proto;
  });
}

uint32_t NatWorker::find_mapping_out(uint32_t ip, uint16_t port, uint8_t proto) const noexcept {
  return map_out_.find(hash_words(inside_key(ip, port, proto), 2, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.pub_ip == ip && x.pub_port == port && x.proto == proto;
  });
}

uint32_t NatWorker::find_session(uint32_t m, uint32_t remote, uint16_t rport) const noexcept {
  return session_index_.find(hash_words(uint64_t{m} << 32 | remote, rport, seed_), [&](uint32_t s) {
    const Session& x = sessions_[s];
    return x.mapping == m && x.remote == remote && x.remote_port == rport;
  });
}

uint32_t NatWorker::find_subscriber(uint32_t ip) const noexcept {
  return sub_index_.find(hash_words(ip, 4, seed_), [&](uint32_t i) { return subs_[i].ip == ip; });
}

// Address-dependent filtering: has this mapping sent to `remote` (any port)? Newest sessions
// first, at most kAdfScanLimit of them, so an unsolicited flood cannot make this O(sessions);
// beyond the limit the answer errs on the side of filtering.
bool NatWorker::address_permitted(uint32_t m, uint32_t remote) const noexcept {
  uint32_t s = mappings_[m].sessions;
  for (unsigned n = 0; s != kNone && n < kAdfScanLimit; ++n, s = sessions_[s].in_mapping.next)
    if (sessions_[s].remote == remote) return true;
  return false;
}

std::optional<NatWorker::Translation> NatWorker::find_mapping(uint32_t sub, uint16_t port,
                                                              NatProto proto) const noexcept {
  const uint32_t m = find_mapping_in(sub, port, static_cast<uint8_t>(proto));
  if (m == kNone) return std::nullopt;
  return Translation{mappings_[m].pub_ip, mappings_[m].pub_port};
}

bool NatWorker::has_session(uint32_t sub, uint16_t port, NatProto proto, uint32_t remote,
                            uint16_t rport) const noexcept {
  const uint32_t m = find_mapping_in(sub, port, static_cast<uint8_t>(proto));
  return m != kNone && find_session(m, remote, rport) != kNone;
}

uint32_t NatWorker::subscriber_blocks(uint32_t ip) const noexcept {
  const uint32_t i = find_subscriber(ip);
  return i == kNone ? 0 : subs_[i].n_blocks;
}

// ---- events and counters ----------------------------------------------------------------------

void NatWorker::event(NatEventType type, uint32_t sub_ip, uint32_t pub_ip, uint16_t first,
                      uint16_t last, uint64_t now) noexcept {
  if (!events_) return;
  NatEvent e{};
  e.time = now;
  e.subscriber = sub_ip;
  e.public_address = pub_ip;
  e.port_first = first;
  e.port_last = last;
  e.type = type;
  e.worker = static_cast<uint8_t>(worker_);
  if (!events_->push(e)) [[unlikely]]
    counters_.events_lost.add();
}

void NatWorker::count_session(uint8_t proto, uint8_t cls, int64_t delta) noexcept {
  if (proto == 0)
    (cls == kClassTcpEstablished ? counters_.sessions_tcp_established
                                 : counters_.sessions_tcp_transitory)
        .add(delta);
  else if (proto == 1)
    counters_.sessions_udp.add(delta);
  else
    counters_.sessions_icmp.add(delta);
}

// ---- subscribers, blocks and ports ------------------------------------------------------------

uint32_t NatWorker::get_subscriber(uint32_t ip, uint64_t now, NatDrop* why) noexcept {
  uint32_t i = find_subscriber(ip);
  if (i != kNone) return i;
  NatConfig::DetRange det{};
  const bool deterministic = config_.mode == NatMode::kDeterministic;
  if (deterministic && !config_.det_forward(ip, worker_, &det)) {
    *why = NatDrop::kNotDeterministicSubscriber;
    return kNone;
  }
  if (free_sub_ == kNone) [[unlikely]] {
    *why = NatDrop::kTableFull;
    return kNone;
  }
  i = free_sub_;
  Subscriber& s = subs_[i];
  free_sub_ = s.next_free;
  s.ip = ip;
  s.n_sessions = 0;
  s.n_blocks = 0;
  s.flags = kSubscriberInUse;
  if (deterministic) {
    s.address_index = config_.address_index(det.public_address);
    const uint32_t k = (det.port_first - slice_first_) / block_size_;
    s.blocks[0] = s.address_index * blocks_per_slice_ + k;
    s.n_blocks = 1;
    blocks_[s.blocks[0]].owner = i;
  } else {
    s.address_index = config_.paired_address_index(ip);
  }
  sub_index_.insert(hash_words(ip, 4, seed_), i);
  ++n_subscribers_;
  counters_.subscribers.add(1);
  (void)now;
  return i;
}

bool NatWorker::take_port_in_block(uint32_t block, uint8_t proto, uint16_t want, int mode,
                                   uint16_t* port) noexcept {
  uint64_t* w = &port_bits_[(uint64_t{block} * 3 + proto) * words_per_block_];
  const uint32_t first = slice_first_ + (block % blocks_per_slice_) * block_size_;
  const uint32_t offset =
      static_cast<uint32_t>(((int64_t{want} - first) % block_size_ + block_size_) % block_size_);
  uint32_t bit = kNone;
  if (mode == 0) {
    if (!(w[offset / 64] >> (offset % 64) & 1)) bit = offset;
  } else {
    // Parity of the port, expressed as parity of the offset within the block.
    const uint64_t mask = mode == 2                   ? ~uint64_t{0}
                          : ((want ^ first) & 1) == 0 ? 0x5555555555555555ull
                                                      : 0xaaaaaaaaaaaaaaaaull;
    const uint32_t start = offset / 64;
    for (uint32_t i = 0; i < words_per_block_; ++i) {
      const uint32_t wi = (start + i) % words_per_block_;
      const uint64_t free_bits = ~w[wi] & mask;
      if (free_bits) {
        bit = wi * 64 + static_cast<uint32_t>(__builtin_ctzll(free_bits));
        break;
      }
    }
  }
  if (bit == kNone) return false;
  w[bit / 64] |= uint64_t{1} << (bit % 64);
  ++blocks_[block].used;
  *port = static_cast<uint16_t>(first + bit);
  return true;
}

uint32_t NatWorker::new_block(Subscriber& s, uint32_t si, uint64_t now, NatDrop* why) noexcept {
  const uint32_t a = s.address_index;
  if (n_free_blocks_[a] == 0) {
    // Paired pooling: never another address. Reported once until a block frees up here.
    *why = NatDrop::kPoolExhausted;
    if (!exhaust_reported_[a]) {
      exhaust_reported_[a] = 1;
      counters_.pool_exhausted.add();
      event(NatEventType::kPoolExhausted, s.ip, config_.address(a), 0, 0, now);
    }
    return kNone;
  }
  const uint32_t k = free_blocks_[uint64_t{a} * blocks_per_slice_ + --n_free_blocks_[a]];
  const uint32_t b = a * blocks_per_slice_ + k;
  blocks_[b] = Block{si, 0};
  s.blocks[s.n_blocks++] = b;
  counters_.blocks_allocated.add();
  counters_.blocks_in_use.add(1);
  counters_.blocks_by_address[a].add(1);
  const uint32_t first = slice_first_ + k * block_size_;
  event(NatEventType::kBlockAllocated, s.ip, config_.address(a), static_cast<uint16_t>(first),
        static_cast<uint16_t>(first + block_size_ - 1), now);
  return b;
}

bool NatWorker::allocate_port(Subscriber& s, uint32_t si, uint8_t proto, uint16_t want,
                              uint64_t now, uint16_t* port, NatDrop* why) noexcept {
  for (int mode = 0; mode < 3; ++mode)
    for (unsigned i = 0; i < s.n_blocks; ++i)
      if (take_port_in_block(s.blocks[i], proto, want, mode, port)) return true;
  if (config_.mode == NatMode::kPortBlock && s.n_blocks < config_.max_blocks_per_subscriber) {
    const uint32_t b = new_block(s, si, now, why);
    if (b == kNone) return false;
    for (int mode = 0; mode < 3; ++mode)
      if (take_port_in_block(b, proto, want, mode, port)) return true;
  }
  *why = NatDrop::kPortLimit;
  if (!(s.flags & kPortLimitReported)) {
    s.flags |= kPortLimitReported;
    event(NatEventType::kPortLimit, s.ip, config_.address(s.address_index), 0, 0, now);
  }
  return false;
}

void NatWorker::release_block(uint32_t si, uint32_t slot) noexcept {
  Subscriber& s = subs_[si];
  const uint32_t b = s.blocks[slot];
  blocks_[b].owner = kNone;
  if (config_.mode == NatMode::kPortBlock) {
    const uint32_t a = b / blocks_per_slice_, k = b % blocks_per_slice_;
    free_blocks_[uint64_t{a} * blocks_per_slice_ + n_free_blocks_[a]++] = k;
    exhaust_reported_[a] = 0;
    counters_.blocks_released.add();
    counters_.blocks_in_use.add(-1);
    counters_.blocks_by_address[a].add(-1);
    const uint32_t first = slice_first_ + k * block_size_;
    event(NatEventType::kBlockReleased, s.ip, config_.address(a), static_cast<uint16_t>(first),
          static_cast<uint16_t>(first + block_size_ - 1), now_);
  }
  s.blocks[slot] = s.blocks[--s.n_blocks];
  s.flags &= static_cast<uint8_t>(~kPortLimitReported);
}

// A subscriber lives while it holds ports: in port-block mode while it has a block, in
// deterministic mode while its fixed range has a port in use.
void NatWorker::maybe_free_subscriber(uint32_t si) noexcept {
  Subscriber& s = subs_[si];
  if (config_.mode == NatMode::kDeterministic) {
    if (blocks_[s.blocks[0]].used != 0) return;
    blocks_[s.blocks[0]].owner = kNone;
    s.n_blocks = 0;
  } else if (s.n_blocks != 0) {
    return;
  }
  sub_index_.erase(hash_words(s.ip, 4, seed_), si);
  s.flags = 0;
  s.next_free = free_sub_;
  free_sub_ = si;
  --n_subscribers_;
  counters_.subscribers.add(-1);
}

// Whether one more session may be created for the subscriber (table room, per-subscriber
// limit); reports the limit once per episode.
bool NatWorker::session_admissible(uint32_t si, uint32_t pub_ip, uint64_t now,
                                   NatDrop* why) noexcept {
  Subscriber& sub = subs_[si];
  if (free_session_ == kNone) [[unlikely]] {
    *why = NatDrop::kTableFull;
    return false;
  }
  if (sub.n_sessions >= config_.max_sessions_per_subscriber) [[unlikely]] {
    *why = NatDrop::kSessionLimit;
    if (!(sub.flags & kLimitReported)) {
      sub.flags |= kLimitReported;
      event(NatEventType::kSessionLimit, sub.ip, pub_ip, 0, 0, now);
    }
    return false;
  }
  return true;
}

// ---- mappings and sessions --------------------------------------------------------------------

uint32_t NatWorker::create_mapping(uint32_t si, uint32_t sub_ip, uint16_t sub_port, uint8_t proto,
                                   uint64_t now, NatDrop* why) noexcept {
  Subscriber& s = subs_[si];
  uint16_t port;
  if (!allocate_port(s, si, proto, sub_port, now, &port, why)) return kNone;
  const uint32_t m = free_mapping_;  // never empty: mappings <= sessions < capacity here
  free_mapping_ = mappings_[m].next_free;
  Mapping& x = mappings_[m];
  x.sub_ip = sub_ip;
  x.sub_port = sub_port;
  x.pub_ip = config_.address(s.address_index);
  x.pub_port = port;
  x.proto = proto;
  x.n_sessions = 0;
  x.subscriber = si;
  x.sessions = kNone;
  map_in_.insert(hash_words(inside_key(sub_ip, sub_port, proto), 1, seed_), m);
  map_out_.insert(hash_words(inside_key(x.pub_ip, port, proto), 2, seed_), m);
  ++n_mappings_;
  counters_.mappings.add(1);
  return m;
}

void NatWorker::delete_mapping(uint32_t m) noexcept {
  Mapping& x = mappings_[m];
  map_in_.erase(hash_words(inside_key(x.sub_ip, x.sub_port, x.proto), 1, seed_), m);
  map_out_.erase(hash_words(inside_key(x.pub_ip, x.pub_port, x.proto), 2, seed_), m);
  const uint32_t si = x.subscriber;
  Subscriber& s = subs_[si];
  const uint32_t off = x.pub_port - slice_first_;
  const uint32_t b = s.address_index * blocks_per_slice_ + off / block_size_;
  const uint32_t bit = off % block_size_;
  port_bits_[(uint64_t{b} * 3 + x.proto) * words_per_block_ + bit / 64] &=
      ~(uint64_t{1} << (bit % 64));
  s.flags &= static_cast<uint8_t>(~kPortLimitReported);
  if (--blocks_[b].used == 0) {
    if (config_.mode == NatMode::kPortBlock) {
      for (uint32_t i = 0; i < s.n_blocks; ++i)
        if (s.blocks[i] == b) {
          release_block(si, i);
          break;
        }
    }
    maybe_free_subscriber(si);
  }
  x.next_free = free_mapping_;
  free_mapping_ = m;
  --n_mappings_;
  counters_.mappings.add(-1);
}

uint32_t NatWorker::create_session(uint32_t m, uint32_t remote, uint16_t rport, uint32_t now_s,
                                   uint64_t now, NatDrop* why) noexcept {
  Mapping& x = mappings_[m];
  Subscriber& sub = subs_[x.subscriber];
  if (!session_admissible(x.subscriber, x.pub_ip, now, why)) return kNone;
  const uint32_t s = free_session_;
  Session& e = sessions_[s];
  free_session_ = e.wheel.next;
  e.mapping = m;
  e.remote = remote;
  e.remote_port = rport;
  e.tcp_state = 0;
  e.timeout_class = x.proto == 0 ? kClassTcpTransitory : x.proto == 1 ? kClassUdp : kClassIcmp;
  e.last_seen = now_s;
  e.in_mapping = Link{kNone, x.sessions};
  if (x.sessions != kNone) sessions_[x.sessions].in_mapping.prev = s;
  x.sessions = s;
  ++x.n_sessions;
  ++sub.n_sessions;
  session_index_.insert(hash_words(uint64_t{m} << 32 | remote, rport, seed_), s);
  wheel_schedule(s);
  ++n_sessions_;
  count_session(x.proto, e.timeout_class, 1);
  counters_.sessions_created.add();
  return s;
}

void NatWorker::delete_session(uint32_t s) noexcept {
  Session& e = sessions_[s];
  const uint32_t m = e.mapping;
  Mapping& x = mappings_[m];
  wheel_unlink(s);
  if (e.in_mapping.prev != kNone)
    sessions_[e.in_mapping.prev].in_mapping.next = e.in_mapping.next;
  else
    x.sessions = e.in_mapping.next;
  if (e.in_mapping.next != kNone) sessions_[e.in_mapping.next].in_mapping.prev = e.in_mapping.prev;
  session_index_.erase(hash_words(uint64_t{m} << 32 | e.remote, e.remote_port, seed_), s);
  count_session(x.proto, e.timeout_class, -1);
  Subscriber& sub = subs_[x.subscriber];
  --sub.n_sessions;
  sub.flags &= static_cast<uint8_t>(~kLimitReported);
  e.wheel.next = free_session_;
  free_session_ = s;
  --n_sessions_;
  if (--x.n_sessions == 0) delete_mapping(m);
}

void NatWorker::touch(uint32_t s, uint32_t now_s) noexcept {
  sessions_[s].last_seen = now_s;
}

// RFC 5382: SYN seen both ways -> established; FIN both ways or RST -> transitory (4 min);
// a SYN after the close reuses the session for a new connection.
void NatWorker::tcp_update(uint32_t s, uint8_t flags, bool outbound) noexcept {
  Session& e = sessions_[s];
  uint8_t st = e.tcp_state;
  const bool closed = (st & kRstSeen) || ((st & kFinOut) && (st & kFinIn));
  if (flags & kTcpRst) {
    st |= kRstSeen;
  } else {
    if (flags & kTcpSyn) {
      if (closed) st = 0;
      st |= outbound ? kSynOut : kSynIn;
    }
    if (flags & kTcpFin) st |= outbound ? kFinOut : kFinIn;
  }
  e.tcp_state = st;
  const bool established =
      (st & kSynOut) && (st & kSynIn) && !(st & kRstSeen) && !((st & kFinOut) && (st & kFinIn));
  const uint8_t cls = established ? kClassTcpEstablished : kClassTcpTransitory;
  if (cls != e.timeout_class) {
    count_session(0, e.timeout_class, -1);
    count_session(0, cls, 1);
    e.timeout_class = cls;
    wheel_unlink(s);
    wheel_schedule(s);
  }
}

// ---- removal ----------------------------------------------------------------------------------

// One mapping the subscriber holds (its port bits name the public port), or kNone.
uint32_t NatWorker::any_mapping_of(uint32_t si) const noexcept {
  const Subscriber& s = subs_[si];
  const uint32_t pub_ip = config_.address(s.address_index);
  // The last word's bits past the block are kept set (never free): not ports.
  const uint64_t tail = block_size_ % 64 ? ~uint64_t{0} << (block_size_ % 64) : 0;
  for (uint32_t i = 0; i < s.n_blocks; ++i) {
    const uint32_t b = s.blocks[i];
    const uint32_t first = slice_first_ + (b % blocks_per_slice_) * block_size_;
    for (uint8_t proto = 0; proto < 3; ++proto) {
      const uint64_t* w = &port_bits_[(uint64_t{b} * 3 + proto) * words_per_block_];
      for (uint32_t k = 0; k < words_per_block_; ++k) {
        const uint64_t used = k + 1 == words_per_block_ ? w[k] & ~tail : w[k];
        if (used == 0) continue;
        const auto port = static_cast<uint16_t>(first + k * 64 + __builtin_ctzll(used));
        return find_mapping_out(pub_ip, port, proto);
      }
    }
  }
  return kNone;
}

uint32_t NatWorker::remove_subscriber(uint32_t si) noexcept {
  const uint32_t ip = subs_[si].ip;
  uint32_t freed = 0;
  // Deleting a mapping's last session deletes the mapping, its port, an emptied block (with
  // its release event) and finally the subscriber: rescan after each mapping.
  while ((subs_[si].flags & kSubscriberInUse) && subs_[si].ip == ip) {
    const uint32_t m = any_mapping_of(si);
    if (m == kNone) break;
    for (uint32_t n = mappings_[m].n_sessions; n > 0; --n) {
      delete_session(mappings_[m].sessions);
      ++freed;
    }
  }
  return freed;
}

uint32_t NatWorker::remove_subscribers(uint32_t prefix, uint8_t len) noexcept {
  const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - std::min<uint8_t>(len, 32));
  uint32_t freed = 0;
  if (len >= 32) {
    const uint32_t si = find_subscriber(prefix);
    if (si != kNone) freed = remove_subscriber(si);
  } else {
    for (uint32_t si = 0; si < sub_cap_; ++si)
      if ((subs_[si].flags & kSubscriberInUse) && (subs_[si].ip & mask) == (prefix & mask))
        freed += remove_subscriber(si);
  }
  counters_.sessions_removed.add(freed);
  return freed;
}

// ---- timer wheel ------------------------------------------------------------------------------

NatWorker::Link& NatWorker::link(uint32_t i) noexcept {
  return i < cap_ ? sessions_[i].wheel : wheel_heads_[i - cap_];
}

void NatWorker::wheel_unlink(uint32_t s) noexcept {
  Link& l = sessions_[s].wheel;
  link(l.prev).next = l.next;
  link(l.next).prev = l.prev;
}

void NatWorker::wheel_link(uint32_t s, uint32_t head) noexcept {
  Link& h = link(head);
  sessions_[s].wheel = Link{head, h.next};
  link(h.next).prev = s;
  h.next = s;
}

uint32_t NatWorker::deadline(uint32_t s) const noexcept {
  return sessions_[s].last_seen + timeout_[sessions_[s].timeout_class];
}

void NatWorker::wheel_schedule(uint32_t s) noexcept {
  const uint32_t d = std::max(deadline(s), wheel_now_);
  wheel_link(s, cap_ + (d & (kWheelSlots - 1)));
}

uint32_t NatWorker::expire(uint64_t now, uint32_t budget) noexcept {
  const uint32_t now_s = seconds(now);
  const uint32_t due = cap_ + kWheelSlots;
  uint32_t freed = 0;
  for (uint32_t work = 0; work < budget; ++work) {
    Link& d = wheel_heads_[kWheelSlots];
    if (d.next == due) {
      if (wheel_now_ > now_s) break;
      // Move the whole slot to the due list, so sessions re-filed into the same slot (a
      // deadline a wheel turn away) wait for the next turn.
      const uint32_t head = cap_ + (wheel_now_++ & (kWheelSlots - 1));
      Link& h = link(head);
      if (h.next != head) {
        d = h;
        link(d.next).prev = due;
        link(d.prev).next = due;
        h = Link{head, head};
      }
      continue;
    }
    const uint32_t s = d.next;
    if (deadline(s) <= now_s) {
      delete_session(s);
      counters_.sessions_expired.add();
      ++freed;
    } else {
      wheel_unlink(s);
      wheel_schedule(s);
    }
  }
  return freed;
}

// ---- packets ----------------------------------------------------------------------------------

// Parses and bounds-checks; every later access stays inside [ip, ip + total_length) and
// total_length <= len.
bool NatWorker::parse(rte_ipv4_hdr* ip, uint32_t len, Packet& p, NatDrop* why) noexcept {
  auto* b = reinterpret_cast<uint8_t*>(ip);
  if (len < 20 || (b[0] >> 4) != 4) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  const uint32_t ihl = (b[0] & 0xf) * 4u;
  const uint32_t total = be16(b + 2);
  if (ihl < 20 || total < ihl || total > len) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  const int8_t pi = proto_index(b[9]);
  if (pi < 0) [[unlikely]] {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  const uint16_t frag = be16(b + 6);
  p.ip = ip;
  p.base = b;
  p.proto = static_cast<uint8_t>(pi);
  p.non_first = (frag & 0x1fff) != 0;
  p.fragment = p.non_first || (frag & 0x2000);
  p.src = be32(b + 12);
  p.dst = be32(b + 16);
  p.tcp_flags = 0;
  p.icmp_type = 0;
  p.sport = p.dport = 0;
  if (p.non_first) {
    p.l4 = nullptr;
    p.l4_len = 0;
    return true;
  }
  p.l4 = b + ihl;
  p.l4_len = total - ihl;
  static constexpr uint32_t kMinL4[3] = {20, 8, 8};
  if (p.l4_len < kMinL4[pi]) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  if (pi == 2) {
    p.icmp_type = p.l4[0];
    if (!is_query_request(p.icmp_type) && !is_query_reply(p.icmp_type) && !is_error(p.icmp_type))
        [[unlikely]] {
      *why = NatDrop::kUnsupportedIcmp;
      return false;
    }
    p.sport = p.dport = be16(p.l4 + 4);
  } else {
    p.sport = be16(p.l4);
    p.dport = be16(p.l4 + 2);
    if (pi == 0) p.tcp_flags = p.l4[13];
  }
  return true;
}

void NatWorker::rewrite_src(Packet& p, uint32_t ip, uint16_t port) noexcept {
  rewrite(p.base + 12, ip, p.base + 10, p.l4 ? p.l4 + kSrcPortOffset[p.proto] : nullptr, port,
          p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.src = ip;
  p.sport = port;
}

void NatWorker::rewrite_dst(Packet& p, uint32_t ip, uint16_t port) noexcept {
  rewrite(p.base + 16, ip, p.base + 10, p.l4 ? p.l4 + kDstPortOffset[p.proto] : nullptr, port,
          p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.dst = ip;
  p.dport = port;
}

NatVerdict NatWorker::out(rte_ipv4_hdr* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p;
  const bool parsed = parse(ip, len, p, why);
  return out_parsed(p, parsed, now_s, why);
}

NatVerdict NatWorker::in(rte_ipv4_hdr* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p;
  const bool parsed = parse(ip, len, p, why);
  return in_parsed(p, parsed, now_s, why);
}

NatVerdict NatWorker::out_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept {
  NatVerdict v;
  if (!parsed) [[unlikely]] {
    v = NatVerdict::kDrop;
  } else if (p.non_first) [[unlikely]] {
    v = fragment_follow(p, true, now_s, why);
  } else {
    const uint32_t src = p.src, dst = p.dst;
    v = p.proto == 2 && is_error(p.icmp_type) ? icmp_error(p, true, why)
                                              : translate_out(p, now_s, why);
    if (p.fragment && v != NatVerdict::kDrop) [[unlikely]]
      fragment_record(p, true, src, dst, v, now_s);
  }
  if (v == NatVerdict::kDrop) [[unlikely]] {
    counters_.drop(*why);
  } else {
    counters_.translated_out.add();
    if (v == NatVerdict::kHairpin) counters_.hairpinned.add();
  }
  return v;
}

NatVerdict NatWorker::in_parsed(Packet& p, bool parsed, uint32_t now_s, NatDrop* why) noexcept {
  NatVerdict v;
  if (!parsed) [[unlikely]] {
    v = NatVerdict::kDrop;
  } else if (p.non_first) [[unlikely]] {
    v = fragment_follow(p, false, now_s, why);
  } else {
    const uint32_t src = p.src, dst = p.dst;
    v = p.proto == 2 && is_error(p.icmp_type) ? icmp_error(p, false, why)
                                              : translate_in(p, now_s, why);
    if (p.fragment && v != NatVerdict::kDrop) [[unlikely]]
      fragment_record(p, false, src, dst, v, now_s);
  }
  if (v == NatVerdict::kDrop) [[unlikely]]
    counters_.drop(*why);
  else
    counters_.translated_in.add();
  return v;
}

NatVerdict NatWorker::translate_out(Packet& p, uint32_t now_s, NatDrop* why) noexcept {
  const uint8_t proto = p.proto;
  if (proto == 2 && !is_query_request(p.icmp_type)) [[unlikely]] {
    *why = NatDrop::kUnsupportedIcmp;  // a reply to a ping of a subscriber: nothing maps it in
    return NatVerdict::kDrop;
  }
  const bool hairpin = config_.address_index(p.dst) != kNone;
  if (hairpin && !config_.hairpinning) [[unlikely]] {
    *why = NatDrop::kHairpinUnsupported;
    return NatVerdict::kDrop;
  }
  uint32_t m = find_mapping_in(p.src, p.sport, proto);
  if (m == kNone) [[unlikely]] {
    const uint32_t si = get_subscriber(p.src, now_, why);
    if (si == kNone) return NatVerdict::kDrop;
    if (!session_admissible(si, config_.address(subs_[si].address_index), now_, why) ||
        (m = create_mapping(si, p.src, p.sport, proto, now_, why)) == kNone) {
      maybe_free_subscriber(si);
      return NatVerdict::kDrop;
    }
  }
  const uint16_t rport = proto == 2 ? 0 : p.dport;
  uint32_t s = find_session(m, p.dst, rport);
  if (s == kNone) [[unlikely]] {
    s = create_session(m, p.dst, rport, now_s, now_, why);
    if (s == kNone) {
      if (mappings_[m].n_sessions == 0) delete_mapping(m);
      return NatVerdict::kDrop;
    }
  }
  touch(s, now_s);
  if (proto == 0) tcp_update(s, p.tcp_flags, true);
  const Mapping& x = mappings_[m];
  rewrite_src(p, x.pub_ip, x.pub_port);
  if (!hairpin) [[likely]]
    return NatVerdict::kForward;
  // Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): the packet now comes from the sender's
  // public endpoint and goes in through the destination's mapping.
  if (config_.owner_worker(p.dport) != worker_) return NatVerdict::kHairpinHandoff;
  return translate_in(p, now_s, why) == NatVerdict::kDrop ? NatVerdict::kDrop
                                                          : NatVerdict::kHairpin;
}

NatVerdict NatWorker::translate_in(Packet& p, uint32_t now_s, NatDrop* why) noexcept {
  const uint8_t proto = p.proto;
  if (proto == 2 && !is_query_reply(p.icmp_type)) [[unlikely]] {
    *why = NatDrop::kUnsupportedIcmp;  // pings to a public address are the gateway's to answer
    return NatVerdict::kDrop;
  }
  const uint32_t m = find_mapping_out(p.dst, p.dport, proto);
  if (m == kNone) [[unlikely]] {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const uint16_t rport = proto == 2 ? 0 : p.sport;
  uint32_t s = find_session(m, p.src, rport);
  if (s == kNone) [[unlikely]] {
    if (config_.filtering == NatFiltering::kAddressDependent && !address_permitted(m, p.src)) {
      *why = NatDrop::kFiltered;
      return NatVerdict::kDrop;
    }
    s = create_session(m, p.src, rport, now_s, now_, why);
    if (s == kNone) return NatVerdict::kDrop;
  }
  touch(s, now_s);
  if (proto == 0) tcp_update(s, p.tcp_flags, false);
  const Mapping& x = mappings_[m];
  rewrite_dst(p, x.sub_ip, x.sub_port);
  return NatVerdict::kForward;
}

// ICMP errors (RFC 5508 REQ-3/4): the embedded packet is the one the error is about; it is
// rewritten (address, port/id, its IP checksum, its L4 checksum if included) along with the
// outer header, and the outer ICMP checksum follows the change of the embedded bytes.
namespace {

struct Embedded {
  uint8_t* ip;
  uint32_t ihl;
  uint8_t* l4;
  uint32_t l4_avail;
  uint8_t proto;  // NatProto
  uint32_t src, dst;
  uint16_t sport, dport;  // ICMP: the identifier in both
  uint8_t icmp_type;
};

bool parse_embedded(uint8_t* icmp, uint32_t icmp_len, Embedded& e, NatDrop* why) noexcept {
  if (icmp_len < 8 + 20) {
    *why = NatDrop::kMalformed;
    return false;
  }
  e.ip = icmp + 8;
  if ((e.ip[0] >> 4) != 4) {
    *why = NatDrop::kMalformed;
    return false;
  }
  e.ihl = (e.ip[0] & 0xf) * 4u;
  if (e.ihl < 20 || 8 + e.ihl + 8 > icmp_len) {  // RFC 792: the header and 8 bytes
    *why = NatDrop::kMalformed;
    return false;
  }
  if (be16(e.ip + 6) & 0x1fff) {  // a non-first fragment: no ports to translate by
    *why = NatDrop::kUnsupportedIcmp;
    return false;
  }
  const int8_t pi = proto_index(e.ip[9]);
  if (pi < 0) {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  e.proto = static_cast<uint8_t>(pi);
  e.l4 = e.ip + e.ihl;
  e.l4_avail = icmp_len - 8 - e.ihl;
  e.src = be32(e.ip + 12);
  e.dst = be32(e.ip + 16);
  e.icmp_type = 0;
  if (pi == 2) {
    e.icmp_type = e.l4[0];
    e.sport = e.dport = be16(e.l4 + 4);
  } else {
    e.sport = be16(e.l4);
    e.dport = be16(e.l4 + 2);
  }
  return true;
}

// The embedded bytes whose sum the outer ICMP checksum must follow: the IP header and the
// L4 words we may touch (TCP's checksum sits at 16, present only in longer quotes).
uint32_t embedded_cover(const Embedded& e) noexcept {
  return e.ihl + (e.proto == 0 && e.l4_avail >= 18 ? 18 : 8);
}

// Rewrites the embedded source (dst_side false) or destination, fixing its checksums.
void rewrite_embedded(Embedded& e, bool dst_side, uint32_t ip, uint16_t port) noexcept {
  uint8_t* csum = nullptr;
  if (e.proto == 1 || e.proto == 2 || e.l4_avail >= 18) csum = e.l4 + kCsumOffset[e.proto];
  const unsigned port_off = dst_side ? kDstPortOffset[e.proto] : kSrcPortOffset[e.proto];
  rewrite(e.ip + (dst_side ? 16 : 12), ip, e.ip + 10, e.l4 + port_off, port, csum, e.proto);
}

}  // namespace

// Outbound, the embedded packet is one the subscriber received (remote -> its inside
// endpoint): the outer source and the embedded destination become the public endpoint.
// Inbound, it is one we sent (public endpoint -> remote): the outer destination and the
// embedded source go back to the subscriber. An outbound error for another subscriber's
// public address is hairpinned: translated out, then in through that subscriber's mapping.
NatVerdict NatWorker::icmp_error(Packet& p, bool outbound, NatDrop* why) noexcept {
  Embedded e;
  if (!parse_embedded(p.l4, p.l4_len, e, why)) return NatVerdict::kDrop;
  const bool hairpin = outbound && config_.address_index(p.dst) != kNone;
  if (hairpin && !config_.hairpinning) {
    *why = NatDrop::kHairpinUnsupported;
    return NatVerdict::kDrop;
  }
  const uint32_t ours = outbound ? e.dst : e.src;  // the embedded endpoint on our side
  const uint16_t our_port = outbound ? e.dport : e.sport;
  const uint32_t remote = outbound ? e.src : e.dst;
  const uint16_t remote_port = e.proto == 2 ? 0 : outbound ? e.sport : e.dport;
  const bool query_ok = outbound ? is_query_reply(e.icmp_type) : is_query_request(e.icmp_type);
  if (ours != (outbound ? p.src : p.dst) || (e.proto == 2 && !query_ok)) {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const uint32_t m = outbound ? find_mapping_in(ours, our_port, e.proto)
                              : find_mapping_out(ours, our_port, e.proto);
  if (m == kNone || find_session(m, remote, remote_port) == kNone) {
    *why = NatDrop::kNoMapping;
    return NatVerdict::kDrop;
  }
  const Mapping& x = mappings_[m];
  const uint32_t ip = outbound ? x.pub_ip : x.sub_ip;
  const uint16_t port = outbound ? x.pub_port : x.sub_port;
  const uint32_t cover = embedded_cover(e);
  const uint32_t before = csum_partial(e.ip, cover);
  rewrite_embedded(e, outbound, ip, port);
  st16(p.l4 + 2, csum_replace_sum(ld16(p.l4 + 2), before, csum_partial(e.ip, cover)));
  rewrite(p.base + (outbound ? 12 : 16), ip, p.base + 10, nullptr, 0, nullptr, 2);
  (outbound ? p.src : p.dst) = ip;
  if (!hairpin) [[likely]]
    return NatVerdict::kForward;
  // The quoted packet came from the other subscriber's public endpoint: its owner by that port.
  if (config_.owner_worker(e.sport) != worker_) return NatVerdict::kHairpinHandoff;
  return icmp_error(p, false, why) == NatVerdict::kDrop ? NatVerdict::kDrop : NatVerdict::kHairpin;
}

// ---- fragments --------------------------------------------------------------------------------

namespace {
inline uint64_t frag_hash(uint32_t src, uint32_t dst, uint16_t id, uint8_t proto, bool out,
                          uint64_t seed) {
  return hash_words(uint64_t{src} << 32 | dst, uint64_t{id} << 16 | proto << 1 | out, seed);
}
}  // namespace

void NatWorker::fragment_record(const Packet& p, bool outbound, uint32_t src, uint32_t dst,
                                NatVerdict v, uint32_t now_s) noexcept {
  const uint16_t id = ld16(p.base + 4);
  const uint64_t h = frag_hash(src, dst, id, p.proto, outbound, seed_);
  FragEntry* set = &frags_[((h >> 32) * n_frag_sets_ >> 32) * 4];
  FragEntry* victim = &set[0];
  for (unsigned i = 0; i < 4; ++i) {
    FragEntry& f = set[i];
    if (f.outbound == outbound && f.src == src && f.dst == dst && f.id == id &&
        f.proto == p.proto) {
      victim = &f;
      break;
    }
    if (f.outbound == 0xff || f.expires <= now_s) {
      victim = &f;
    } else if (victim->outbound != 0xff && victim->expires > now_s && f.expires < victim->expires) {
      victim = &f;
    }
  }
  *victim = FragEntry{src,
                      dst,
                      id,
                      p.proto,
                      static_cast<uint8_t>(outbound),
                      p.src,
                      p.dst,
                      now_s + config_.fragment_timeout,
                      v,
                      {}};
}

NatVerdict NatWorker::fragment_follow(Packet& p, bool outbound, uint32_t now_s,
                                      NatDrop* why) noexcept {
  const uint16_t id = ld16(p.base + 4);
  const uint64_t h = frag_hash(p.src, p.dst, id, p.proto, outbound, seed_);
  FragEntry* set = &frags_[((h >> 32) * n_frag_sets_ >> 32) * 4];
  for (unsigned i = 0; i < 4; ++i) {
    const FragEntry& f = set[i];
    if (f.outbound == outbound && f.src == p.src && f.dst == p.dst && f.id == id &&
        f.proto == p.proto && f.expires > now_s) {
      if (f.new_src != p.src) rewrite(p.base + 12, f.new_src, p.base + 10, nullptr, 0, nullptr, 2);
      if (f.new_dst != p.dst) rewrite(p.base + 16, f.new_dst, p.base + 10, nullptr, 0, nullptr, 2);
      counters_.fragments_followed.add();
      return f.verdict;
    }
  }
  *why = NatDrop::kFragmentNoState;
  return NatVerdict::kDrop;
}

// ---- bursts -----------------------------------------------------------------------------------

namespace {
constexpr uint16_t kStage = 32;  // packets whose lookups are staged together
}  // namespace

// Cache warming only: every decision is taken again by the per-packet path, so a prefetch
// that guessed wrong (a tag collision, a table change by an earlier packet) costs a miss,
// never a wrong verdict. The chain: key hash -> bucket -> candidate mapping -> session
// hash -> bucket -> candidate session, one step for the whole burst at a time.
template <bool kOutbound>
void NatWorker::prefetch_lookups(const Packet* p, const bool* parsed, uint16_t n) const noexcept {
  uint64_t h[kStage];
  bool go[kStage];
  for (uint16_t i = 0; i < n; ++i) {
    // ICMP errors and later fragments take other paths: no session lookup to warm.
    go[i] = parsed[i] && !p[i].non_first && !(p[i].proto == 2 && is_error(p[i].icmp_type));
    if (!go[i]) continue;
    h[i] = kOutbound ? hash_words(inside_key(p[i].src, p[i].sport, p[i].proto), 1, seed_)
                     : hash_words(inside_key(p[i].dst, p[i].dport, p[i].proto), 2, seed_);
    (kOutbound ? map_in_ : map_out_).prefetch(h[i]);
  }
  uint32_t m[kStage];
  for (uint16_t i = 0; i < n; ++i) {
    if (!go[i]) continue;
    m[i] = (kOutbound ? map_in_ : map_out_).candidate(h[i]);
    if (m[i] != kNone) prefetch_line(&mappings_[m[i]]);
  }
  for (uint16_t i = 0; i < n; ++i) {
    if (!go[i]) continue;
    m[i] = kOutbound ? find_mapping_in(p[i].src, p[i].sport, p[i].proto)
                     : find_mapping_out(p[i].dst, p[i].dport, p[i].proto);
    if (m[i] == kNone) {
      go[i] = false;
      continue;
    }
    const uint32_t remote = kOutbound ? p[i].dst : p[i].src;
    const uint16_t rport = p[i].proto == 2 ? 0 : kOutbound ? p[i].dport : p[i].sport;
    h[i] = hash_words(uint64_t{m[i]} << 32 | remote, rport, seed_);
    session_index_.prefetch(h[i]);
  }
  for (uint16_t i = 0; i < n; ++i) {
    if (!go[i]) continue;
    const uint32_t s = session_index_.candidate(h[i]);
    if (s != kNone) prefetch_line_write(&sessions_[s]);  // touch() writes it
  }
}

void NatWorker::out_burst(rte_ipv4_hdr* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                          NatVerdict* verdicts, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p[kStage];
  bool parsed[kStage];
  for (uint16_t base = 0; base < n; base += kStage) {
    const uint16_t k = std::min<uint16_t>(kStage, static_cast<uint16_t>(n - base));
    for (uint16_t i = 0; i < k; ++i) {
      if (i + 4 < k) prefetch_line(ips[base + i + 4]);
      parsed[i] = parse(ips[base + i], lens[base + i], p[i], &why[base + i]);
    }
    prefetch_lookups<true>(p, parsed, k);
    for (uint16_t i = 0; i < k; ++i)
      verdicts[base + i] = out_parsed(p[i], parsed[i], now_s, &why[base + i]);
  }
}

void NatWorker::in_burst(rte_ipv4_hdr* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                         NatVerdict* verdicts, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p[kStage];
  bool parsed[kStage];
  for (uint16_t base = 0; base < n; base += kStage) {
    const uint16_t k = std::min<uint16_t>(kStage, static_cast<uint16_t>(n - base));
    for (uint16_t i = 0; i < k; ++i) {
      if (i + 4 < k) prefetch_line(ips[base + i + 4]);
      parsed[i] = parse(ips[base + i], lens[base + i], p[i], &why[base + i]);
    }
    prefetch_lookups<false>(p, parsed, k);
    for (uint16_t i = 0; i < k; ++i)
      verdicts[base + i] = in_parsed(p[i], parsed[i], now_s, &why[base + i]);
  }
}

// ---- steering ---------------------------------------------------------------------------------

uint32_t inbound_owner(const NatConfig& config, const rte_ipv4_hdr* ip, uint32_t len) noexcept {
  const auto* b = reinterpret_cast<const uint8_t*>(ip);
  if (len < 20 || (b[0] >> 4) != 4) return kNone;
  const uint32_t ihl = (b[0] & 0xf) * 4u;
  const uint32_t total = be16(b + 2);
  if (ihl < 20 || total < ihl || total > len || (be16(b + 6) & 0x1fff)) return kNone;
  const uint8_t* l4 = b + ihl;
  const uint32_t l4_len = total - ihl;
  if (b[9] == kIpProtoTcp || b[9] == kIpProtoUdp) {
    return l4_len >= 4 ? config.owner_worker(be16(l4 + 2)) : kNone;
  }
  if (b[9] != kIpProtoIcmp || l4_len < 8) return kNone;
  if (!is_error(l4[0])) return config.owner_worker(be16(l4 + 4));
  if (l4_len < 8 + 20 + 8) return kNone;
  const uint8_t* e = l4 + 8;
  const uint32_t eihl = (e[0] & 0xf) * 4u;
  if (eihl < 20 || 8 + eihl + 8 > l4_len) return kNone;
  const uint8_t* el4 = e + eihl;
  return config.owner_worker(be16(el4 + (e[9] == kIpProtoIcmp ? 4 : 0)));
}

}  // namespace exitgw::dp::nat
