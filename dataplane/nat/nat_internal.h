// Shared by NatWorker's source files only (nat_worker.cc, nat_alloc.cc, nat_expiry.cc,
// nat_in2out.cc, nat_out2in.cc, nat_icmp_error.cc, nat_fragments.cc): protocol constants,
// the table records, the per-family parse, and the small lookups every path calls, defined
// inline so that splitting the paths across files costs no call. Each source file defines its
// NatCore<F> members for any family and instantiates them for Nat44 and Nat66 at its end.
#pragma once

#include <rte_byteorder.h>

#include <algorithm>
#include <cstring>

#include "dataplane/ipv6_walk.h"
#include "dataplane/nat/checksum.h"
#include "dataplane/nat/nat_worker.h"

namespace exitgw::dp::nat {

constexpr uint8_t kTcpFin = 0x01, kTcpSyn = 0x02, kTcpRst = 0x04;
constexpr uint8_t kSynOut = 1, kSynIn = 2, kFinOut = 4, kFinIn = 8, kRstSeen = 16;
constexpr uint8_t kClassUdp = 0, kClassTcpEstablished = 1, kClassTcpTransitory = 2, kClassIcmp = 3;
constexpr uint8_t kLimitReported = 1, kPortLimitReported = 2, kSubscriberInUse = 4;
constexpr unsigned kAdfScanLimit = 32;  // sessions of one mapping searched for an address

template <class F>
inline int8_t proto_index(uint8_t ip_proto) {
  switch (ip_proto) {
    case kIpProtoTcp:
      return 0;
    case kIpProtoUdp:
      return 1;
    case F::kIpProtoIcmp:
      return 2;
    default:
      return -1;
  }
}

// The L4 port (TCP/UDP) or identifier (ICMP) field offsets.
constexpr unsigned kSrcPortOffset[3] = {0, 0, 4};
constexpr unsigned kDstPortOffset[3] = {2, 2, 4};
constexpr unsigned kCsumOffset[3] = {16, 6, 2};

constexpr uint16_t kStage = 32;  // packets whose lookups are staged together

template <class F>
struct NatCore<F>::Session {
  uint32_t mapping;
  Address remote;
  uint16_t remote_port;
  uint8_t tcp_state;
  uint8_t timeout_class;
  uint32_t last_seen;  // seconds since the worker's epoch
  Link wheel;          // wheel slot list; wheel.next doubles as the free-list link
  Link in_mapping;     // the mapping's sessions, newest first; kNone-terminated
};

template <class F>
struct NatCore<F>::Mapping {
  Address sub_ip, pub_ip;
  uint16_t sub_port, pub_port;
  uint8_t proto;
  uint8_t pad;
  uint16_t n_sessions;
  uint32_t subscriber;
  uint32_t sessions;  // head of the session list
  uint32_t next_free;
  uint32_t pad2;
};

template <class F>
struct NatCore<F>::Subscriber {
  Address ip;
  uint32_t address_index;
  uint32_t n_sessions;
  uint32_t next_free;
  uint8_t n_blocks;
  uint8_t flags;
  uint16_t pad;
  uint32_t blocks[kMaxBlocksPerSubscriber];
};

template <class F>
struct NatCore<F>::Block {
  uint32_t owner;  // subscriber index or kNone
  uint32_t used;   // ports in use, all protocols
};

template <class F>
struct NatCore<F>::FragEntry {
  Address src, dst;  // as the fragments arrive
  typename F::FragId id;
  uint8_t proto;
  uint8_t outbound;  // 0/1; 0xff = empty
  Address new_src, new_dst;
  uint32_t expires;
  NatVerdict verdict;
};

template <class F>
struct NatCore<F>::Packet {
  Header* ip;
  uint8_t* base;               // == ip
  uint8_t* l4;                 // null for non-first fragments
  uint32_t l4_len;             // bytes of L4 header and payload in this packet
  Address src, dst;            // IPv4: host order; IPv6: as in the packet
  typename F::FragId frag_id;  // IPv6 fragments: the Fragment header's id (IPv4 reads the header)
  uint16_t sport, dport;       // host order; ICMP query: both are the identifier
  uint8_t proto;               // NatProto
  uint8_t icmp_type;
  uint8_t tcp_flags;
  bool fragment, non_first;
};

// ---- lookups (hot: every packet) --------------------------------------------------------------

template <class F>
inline uint32_t NatCore<F>::find_mapping_in(const Address& ip, uint16_t port,
                                            uint8_t proto) const noexcept {
  return map_in_.find(F::key_hash(ip, port, proto, 1, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.sub_ip == ip && x.sub_port == port && x.proto == proto;
  });
}

template <class F>
inline uint32_t NatCore<F>::find_mapping_out(const Address& ip, uint16_t port,
                                             uint8_t proto) const noexcept {
  return map_out_.find(F::key_hash(ip, port, proto, 2, seed_), [&](uint32_t m) {
    const Mapping& x = mappings_[m];
    return x.pub_ip == ip && x.pub_port == port && x.proto == proto;
  });
}

template <class F>
inline uint32_t NatCore<F>::find_session(uint32_t m, const Address& remote,
                                         uint16_t rport) const noexcept {
  return session_index_.find(F::session_hash(m, remote, rport, seed_), [&](uint32_t s) {
    const Session& x = sessions_[s];
    return x.mapping == m && x.remote == remote && x.remote_port == rport;
  });
}

template <class F>
inline uint32_t NatCore<F>::find_subscriber(const Address& ip) const noexcept {
  return sub_index_.find(F::subscriber_hash(ip, seed_),
                         [&](uint32_t i) { return subs_[i].ip == ip; });
}

// Address-dependent filtering: has this mapping sent to `remote` (any port)? Newest sessions
// first, at most kAdfScanLimit of them, so an unsolicited flood cannot make this O(sessions);
// beyond the limit the answer errs on the side of filtering.
template <class F>
inline bool NatCore<F>::address_permitted(uint32_t m, const Address& remote) const noexcept {
  uint32_t s = mappings_[m].sessions;
  for (unsigned n = 0; s != kNone && n < kAdfScanLimit; ++n, s = sessions_[s].in_mapping.next)
    if (sessions_[s].remote == remote) return true;
  return false;
}

template <class F>
inline void NatCore<F>::touch(uint32_t s, uint32_t now_s) noexcept {
  sessions_[s].last_seen = now_s;
}

// RFC 5382: SYN seen both ways -> established; FIN both ways or RST -> transitory (4 min);
// a SYN after the close reuses the session for a new connection.
template <class F>
inline void NatCore<F>::tcp_update(uint32_t s, uint8_t flags, bool outbound) noexcept {
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

// What follows the addresses, common to both families: the protocol and, unless this is a
// later fragment, the L4 header at `l4` (`l4_len` bytes of it and its payload).
template <class F, class Packet>
inline bool parse_l4(Packet& p, int8_t pi, uint8_t* l4, uint32_t l4_len, NatDrop* why) noexcept {
  p.proto = static_cast<uint8_t>(pi);
  p.tcp_flags = 0;
  p.icmp_type = 0;
  p.sport = p.dport = 0;
  if (p.non_first) {
    p.l4 = nullptr;
    p.l4_len = 0;
    return true;
  }
  p.l4 = l4;
  p.l4_len = l4_len;
  static constexpr uint32_t kMinL4[3] = {20, 8, 8};
  if (l4_len < kMinL4[pi]) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  if (pi == 2) {
    p.icmp_type = l4[0];
    if (!F::is_query_request(p.icmp_type) && !F::is_query_reply(p.icmp_type) &&
        !F::is_error(p.icmp_type)) [[unlikely]] {
      *why = NatDrop::kUnsupportedIcmp;
      return false;
    }
    p.sport = p.dport = be16(l4 + 4);
  } else {
    p.sport = be16(l4);
    p.dport = be16(l4 + 2);
    if (pi == 0) p.tcp_flags = l4[13];
  }
  return true;
}

// Parses and bounds-checks; every later access stays inside [ip, ip + total_length) and
// total_length <= len.
template <>
inline bool NatCore<Nat44>::parse(rte_ipv4_hdr* ip, uint32_t len, Packet& p,
                                  NatDrop* why) noexcept {
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
  const int8_t pi = proto_index<Nat44>(b[9]);
  if (pi < 0) [[unlikely]] {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  const uint16_t frag = be16(b + 6);
  p.ip = ip;
  p.base = b;
  p.non_first = (frag & 0x1fff) != 0;
  p.fragment = p.non_first || (frag & 0x2000);
  p.src = be32(b + 12);
  p.dst = be32(b + 16);
  return parse_l4<Nat44>(p, pi, b + ihl, total - ihl, why);
}

// IPv6: the extension-header chain is walked (bounded, ipv6_walk.h) to the upper layer or to
// the Fragment header of a later fragment. A first fragment that does not carry the whole
// upper-layer header (RFC 7112) has no ports to translate by: its own drop reason.
template <>
inline bool NatCore<Nat66>::parse(rte_ipv6_hdr* ip, uint32_t len, Packet& p,
                                  NatDrop* why) noexcept {
  auto* b = reinterpret_cast<uint8_t*>(ip);
  if (len < 40 || (b[0] >> 4) != 6) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  const uint32_t payload = be16(b + 4);
  if (40 + payload > len) [[unlikely]] {
    *why = NatDrop::kMalformed;
    return false;
  }
  uint32_t l4_off = 40;
  uint8_t nh = b[6];
  p.fragment = p.non_first = false;
  if (nh != kIpProtoTcp && nh != kIpProtoUdp && nh != Nat66::kIpProtoIcmp) [[unlikely]] {
    Ipv6Layers layers;
    const DropReason r = ipv6_walk(ip, payload, layers);
    if (r != DropReason::kCount) {
      *why = r == DropReason::kIpv6FragmentNoUpperHeader ? NatDrop::kFragmentNoUpperHeader
                                                         : NatDrop::kMalformed;
      return false;
    }
    nh = layers.proto;
    l4_off = layers.l4_offset;
    p.fragment = layers.fragment;
    p.non_first = (layers.frag_field & 0xfff8) != 0;
    p.frag_id = layers.frag_id;
  }
  const int8_t pi = proto_index<Nat66>(nh);
  if (pi < 0) [[unlikely]] {
    *why = NatDrop::kUnsupportedProtocol;
    return false;
  }
  p.ip = ip;
  p.base = b;
  p.src = Ipv6Address::from_bytes(b + 8);
  p.dst = Ipv6Address::from_bytes(b + 24);
  return parse_l4<Nat66>(p, pi, b + l4_off, 40 + payload - l4_off, why);
}

template <class F>
inline void NatCore<F>::rewrite_src(Packet& p, const Address& ip, uint16_t port) noexcept {
  F::rewrite_address(p.base, F::kSrcOffset, ip, p.l4 ? p.l4 + kSrcPortOffset[p.proto] : nullptr,
                     port, p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.src = ip;
  p.sport = port;
}

template <class F>
inline void NatCore<F>::rewrite_dst(Packet& p, const Address& ip, uint16_t port) noexcept {
  F::rewrite_address(p.base, F::kDstOffset, ip, p.l4 ? p.l4 + kDstPortOffset[p.proto] : nullptr,
                     port, p.l4 ? p.l4 + kCsumOffset[p.proto] : nullptr, p.proto);
  p.dst = ip;
  p.dport = port;
}

// ---- bursts -----------------------------------------------------------------------------------

// Cache warming only: every decision is taken again by the per-packet path, so a prefetch
// that guessed wrong (a tag collision, a table change by an earlier packet) costs a miss,
// never a wrong verdict. The chain: key hash -> bucket -> candidate mapping -> session
// hash -> bucket -> candidate session, one step for the whole burst at a time.
template <class F>
template <bool kOutbound>
inline void NatCore<F>::prefetch_lookups(const Packet* p, const bool* parsed,
                                         uint16_t n) const noexcept {
  uint64_t h[kStage];
  bool go[kStage];
  for (uint16_t i = 0; i < n; ++i) {
    // ICMP errors and later fragments take other paths: no session lookup to warm.
    go[i] = parsed[i] && !p[i].non_first && !(p[i].proto == 2 && F::is_error(p[i].icmp_type));
    if (!go[i]) continue;
    h[i] = kOutbound ? F::key_hash(p[i].src, p[i].sport, p[i].proto, 1, seed_)
                     : F::key_hash(p[i].dst, p[i].dport, p[i].proto, 2, seed_);
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
    const Address& remote = kOutbound ? p[i].dst : p[i].src;
    const uint16_t rport = p[i].proto == 2 ? 0 : kOutbound ? p[i].dport : p[i].sport;
    h[i] = F::session_hash(m[i], remote, rport, seed_);
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
template <class F>
template <bool kOutbound>
inline void NatCore<F>::burst(Header* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
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
    prefetch_lookups<kOutbound>(p, parsed, k);
    for (uint16_t i = 0; i < k; ++i)
      verdicts[base + i] = kOutbound ? out_parsed(p[i], parsed[i], now_s, &why[base + i])
                                     : in_parsed(p[i], parsed[i], now_s, &why[base + i]);
  }
}

}  // namespace exitgw::dp::nat
