// Shared by NatWorker's source files only (nat_worker.cc, nat_alloc.cc, nat_expiry.cc,
// nat_in2out.cc, nat_out2in.cc, nat_icmp_error.cc, nat_fragments.cc): protocol constants,
// unaligned loads, the incremental rewrite, the table records, and the small lookups every
// path calls, defined inline so that splitting the paths across files costs no call.
#pragma once

#include <rte_byteorder.h>

#include <algorithm>
#include <cstring>

#include "dataplane/nat/checksum.h"
#include "dataplane/nat/nat_worker.h"

namespace exitgw::dp::nat {

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

inline bool is_query_request(uint8_t type) {
  return type == kIcmpEchoRequest || type == kIcmpTimestamp;
}
inline bool is_query_reply(uint8_t type) {
  return type == kIcmpEchoReply || type == kIcmpTimestampReply;
}
inline bool is_error(uint8_t type) {
  return type == kIcmpUnreachable || type == kIcmpTimeExceeded || type == kIcmpParameterProblem;
}

inline int8_t proto_index(uint8_t ip_proto) {
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
inline void rewrite(uint8_t* addr, uint32_t new_addr_host, uint8_t* ip_csum, uint8_t* port,
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

inline uint64_t inside_key(uint32_t ip, uint16_t port, uint8_t proto) {
  return uint64_t{ip} << 32 | uint32_t{port} << 8 | proto;
}

constexpr uint16_t kStage = 32;  // packets whose lookups are staged together

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

// ---- lookups (hot: every packet) --------------------------------------------------------------

inline uint32_t NatWorker::find_mapping_in(uint32_t ip, uint16_t port,
                                           uint8_t proto) const noexcept {
  return map_in_.find(hash_words(inside_key(ip, port, proto), 1, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.sub_ip == ip && x.sub_port == port && x.proto == proto;
  });
}

inline uint32_t NatWorker::find_mapping_out(uint32_t ip, uint16_t port,
                                            uint8_t proto) const noexcept {
  return map_out_.find(hash_words(inside_key(ip, port, proto), 2, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.pub_ip == ip && x.pub_port == port && x.proto == proto;
  });
}

inline uint32_t NatWorker::find_session(uint32_t m, uint32_t remote,
                                        uint16_t rport) const noexcept {
  return session_index_.find(hash_words(uint64_t{m} << 32 | remote, rport, seed_), [&](uint32_t s) {
    const Session& x = sessions_[s];
    return x.mapping == m && x.remote == remote && x.remote_port == rport;
  });
}

inline uint32_t NatWorker::find_subscriber(uint32_t ip) const noexcept {
  return sub_index_.find(hash_words(ip, 4, seed_), [&](uint32_t i) { return subs_[i].ip == ip; });
}

// Address-dependent filtering: has this mapping sent to `remote` (any port)? Newest sessions
// first, at most kAdfScanLimit of them, so an unsolicited flood cannot make this O(sessions);
// beyond the limit the answer errs on the side of filtering.
inline bool NatWorker::address_permitted(uint32_t m, uint32_t remote) const noexcept {
  uint32_t s = mappings_[m].sessions;
  for (unsigned n = 0; s != kNone && n < kAdfScanLimit; ++n, s = sessions_[s].in_mapping.next)
    if (sessions_[s].remote == remote) return true;
  return false;
}

inline void NatWorker::touch(uint32_t s, uint32_t now_s) noexcept {
  sessions_[s].last_seen = now_s;
}

// RFC 5382: SYN seen both ways -> established; FIN both ways or RST -> transitory (4 min);
// a SYN after the close reuses the session for a new connection.
inline void NatWorker::tcp_update(uint32_t s, uint8_t flags, bool outbound) noexcept {
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

// ---- parse and rewrite ------------------------------------------------------------------------

// Parses and bounds-checks; every later access stays inside [ip, ip + total_length) and
// total_length <= len.
inline bool NatWorker::parse(rte_ipv4_hdr* ip, uint32_t len, Packet& p, NatDrop* why) noexcept {
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

inline void NatWorker::rewrite_src(Packet& p, uint32_t ip, uint16_t port) noexcept {
  rewrite(p.base + 12, ip, p.base + 10, p.l4 ? p.l4 + kSrcPortOffset[p.proto] : nullptr, port,
          p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.src = ip;
  p.sport = port;
}

inline void NatWorker::rewrite_dst(Packet& p, uint32_t ip, uint16_t port) noexcept {
  rewrite(p.base + 16, ip, p.base + 10, p.l4 ? p.l4 + kDstPortOffset[p.proto] : nullptr, port,
          p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.dst = ip;
  p.dport = port;
}

// ---- bursts -----------------------------------------------------------------------------------

// Cache warming only: every decision is taken again by the per-packet path, so a prefetch
// that guessed wrong (a tag collision, a table change by an earlier packet) costs a miss,
// never a wrong verdict. The chain: key hash -> bucket -> candidate mapping -> session
// hash -> bucket -> candidate session, one step for the whole burst at a time.
template <bool kOutbound>
inline void NatWorker::prefetch_lookups(const Packet* p, const bool* parsed,
                                        uint16_t n) const noexcept {
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

// One burst loop for both directions: parse a stage of packets (prefetching a few ahead),
// warm their lookups together, then translate each in order.
template <bool kOutbound>
inline void NatWorker::burst(rte_ipv4_hdr* const* ips, const uint32_t* lens, uint16_t n,
                             uint64_t now, NatVerdict* verdicts, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p[kStage];
  bool parsed[kStage];
  for (uint16_t base = 0; base < n; base += kStage) {
    const uint16_t k = std::min<uint16_t>(kStage, static_cast<uint16_t>(n - base));
    for (uint16_t i = 0; i < k; ++i) {
      if (i + 4 < k) prefetch_line(ips[base + i + 4]);
      parsed[i] = parse(ips[base + i], lens[base + i], p[i], &why[base + i]);
    }
    prefetch_lookups<kOutbound>(p, parsed, k);
    for (uint16_t i = 0; i < k; ++i)
      verdicts[base + i] = kOutbound ? out_parsed(p[i], parsed[i], now_s, &why[base + i])
                                     : in_parsed(p[i], parsed[i], now_s, &why[base + i]);
  }
}

}  // namespace exitgw::dp::nat
