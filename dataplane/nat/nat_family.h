// What differs between NAT44 and NAT66 for the one NAT core (NatCore<Family>): the address
// type, the header's layout, the ICMP and ICMPv6 type sets, the keyed hash of an address, the
// address rewrite with its checksum updates, and which pool of the config the family reads.
// Everything else (mapping, filtering, port blocks, sessions, expiry) is the same code.
#pragma once

#include <rte_byteorder.h>
#include <rte_ip.h>

#include <cstdint>
#include <cstring>

#include "common/nat_types.h"
#include "dataplane/nat/bucket_index.h"
#include "dataplane/nat/checksum.h"
#include "dataplane/nat/nat_config.h"

namespace exitgw::dp::nat {

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

// NatProto indices: TCP 0, UDP 1, ICMP/ICMPv6 2.
constexpr uint8_t kIpProtoTcp = 6, kIpProtoUdp = 17;

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

// The IPv6 rewrite: no header checksum; every L4 checksum (ICMPv6's too, RFC 4443 2.3)
// covers the pseudo-header, so the address's eight words always go into it.
inline void rewrite6(uint8_t* addr, const Ipv6Address& new_addr, uint8_t* port,
                     uint16_t new_port_host, uint8_t* l4_csum, uint8_t proto) noexcept {
  uint8_t old[16];
  std::memcpy(old, addr, 16);
  new_addr.to_bytes(addr);
  uint16_t old_p = 0, new_p = 0;
  if (port) {
    old_p = ld16(port);
    new_p = rte_cpu_to_be_16(new_port_host);
    st16(port, new_p);
  }
  if (!l4_csum) return;
  uint16_t c = ld16(l4_csum);
  if (proto == 1 && c == 0) return;  // an (invalid) zero UDP checksum is left for the host
  c = csum_replace_sum(c, csum_partial(old, 16), csum_partial(addr, 16));
  if (port) c = csum_replace16(c, old_p, new_p);
  if (proto == 1) c = udp_csum_fixup(c);
  st16(l4_csum, c);
}

inline uint64_t inside_key(uint32_t ip, uint16_t port, uint8_t proto) {
  return uint64_t{ip} << 32 | uint32_t{port} << 8 | proto;
}

struct Nat44 {
  using Address = uint32_t;  // host order
  using Header = rte_ipv4_hdr;
  using FragId = uint16_t;
  static constexpr NatFamily kFamily = NatFamily::kIpv4;
  static constexpr unsigned kBits = 32;
  static constexpr unsigned kSrcOffset = 12, kDstOffset = 16;
  static constexpr uint8_t kIpProtoIcmp = 1;
  // ICMPv4's checksum has no pseudo-header: an outer address change leaves it alone.
  static constexpr bool kIcmpPseudoHeader = false;
  static constexpr uint8_t kEchoReply = 0, kUnreachable = 3, kEchoRequest = 8, kTimeExceeded = 11,
                           kParameterProblem = 12, kTimestamp = 13, kTimestampReply = 14;

  static bool is_query_request(uint8_t type) { return type == kEchoRequest || type == kTimestamp; }
  static bool is_query_reply(uint8_t type) { return type == kEchoReply || type == kTimestampReply; }
  static bool is_error(uint8_t type) {
    return type == kUnreachable || type == kTimeExceeded || type == kParameterProblem;
  }

  static Address load(const uint8_t* p) noexcept { return be32(p); }
  static uint64_t key_hash(Address ip, uint16_t port, uint8_t proto, uint64_t salt,
                           uint64_t seed) noexcept {
    return hash_words(inside_key(ip, port, proto), salt, seed);
  }
  static uint64_t session_hash(uint32_t mapping, Address remote, uint16_t rport,
                               uint64_t seed) noexcept {
    return hash_words(uint64_t{mapping} << 32 | remote, rport, seed);
  }
  static uint64_t subscriber_hash(Address ip, uint64_t seed) noexcept {
    return hash_words(ip, 4, seed);
  }
  static uint64_t frag_hash(Address src, Address dst, FragId id, uint8_t proto, bool out,
                            uint64_t seed) noexcept {
    return hash_words(uint64_t{src} << 32 | dst, uint64_t{id} << 16 | proto << 1 | out, seed);
  }
  static bool in_prefix(Address a, Address prefix, uint8_t len) noexcept {
    const uint32_t mask = len == 0 ? 0 : ~uint32_t{0} << (32 - (len < 32 ? len : 32));
    return ((a ^ prefix) & mask) == 0;
  }
  // An address field at hdr + offset, with the header checksum and an L4 checksum.
  static void rewrite_address(uint8_t* hdr, unsigned offset, Address a, uint8_t* port,
                              uint16_t new_port, uint8_t* l4_csum, uint8_t proto) noexcept {
    rewrite(hdr + offset, a, hdr + 10, port, new_port, l4_csum, proto);
  }

  static Address address(const NatConfig& c, uint32_t i) noexcept { return c.address(i); }
  static uint32_t address_index(const NatConfig& c, Address a) noexcept {
    return c.address_index(a);
  }
  static uint32_t paired_address_index(const NatConfig& c, Address a) noexcept {
    return c.paired_address_index(a);
  }
  // Deterministic mode: the subscriber's public address index and first port, or false.
  static bool det_forward(const NatConfig& c, Address sub, uint32_t worker, uint32_t* address_index,
                          uint16_t* port_first) noexcept {
    NatConfig::DetRange det{};
    if (!c.det_forward(sub, worker, &det)) return false;
    *address_index = c.address_index(det.public_address);
    *port_first = det.port_first;
    return true;
  }
  static void event_addresses(NatEvent& e, Address sub, Address pub) noexcept {
    e.subscriber = sub;
    e.public_address = pub;
  }
};

struct Nat66 {
  using Address = Ipv6Address;  // network order
  using Header = rte_ipv6_hdr;
  using FragId = uint32_t;  // the Fragment header's identification, network order
  static constexpr NatFamily kFamily = NatFamily::kIpv6;
  static constexpr unsigned kBits = 128;
  static constexpr unsigned kSrcOffset = 8, kDstOffset = 24;
  static constexpr uint8_t kIpProtoIcmp = 58;
  static constexpr bool kIcmpPseudoHeader = true;
  // RFC 4443: errors 1-4 (destination unreachable, packet too big, time exceeded, parameter
  // problem); echo request 128 and reply 129 are the only queries mapped.
  static constexpr uint8_t kUnreachable = 1, kPacketTooBig = 2, kTimeExceeded = 3,
                           kParameterProblem = 4, kEchoRequest = 128, kEchoReply = 129;

  static bool is_query_request(uint8_t type) { return type == kEchoRequest; }
  static bool is_query_reply(uint8_t type) { return type == kEchoReply; }
  static bool is_error(uint8_t type) { return type >= kUnreachable && type <= kParameterProblem; }

  static Address load(const uint8_t* p) noexcept { return Ipv6Address::from_bytes(p); }
  // The address folded to one keyed word first: a remote host cannot pick colliding flows.
  static uint64_t fold(const Address& a, uint64_t seed) noexcept {
    return hash_words(a.hi, a.lo, seed);
  }
  static uint64_t key_hash(const Address& ip, uint16_t port, uint8_t proto, uint64_t salt,
                           uint64_t seed) noexcept {
    return hash_words(fold(ip, seed) ^ (uint32_t{port} << 8 | proto), salt, seed);
  }
  static uint64_t session_hash(uint32_t mapping, const Address& remote, uint16_t rport,
                               uint64_t seed) noexcept {
    return hash_words(fold(remote, seed) ^ uint64_t{mapping} << 32, rport, seed);
  }
  static uint64_t subscriber_hash(const Address& ip, uint64_t seed) noexcept {
    return hash_words(fold(ip, seed), 4, seed);
  }
  static uint64_t frag_hash(const Address& src, const Address& dst, FragId id, uint8_t proto,
                            bool out, uint64_t seed) noexcept {
    return hash_words(fold(src, seed) ^ fold(dst, ~seed), uint64_t{id} << 16 | proto << 1 | out,
                      seed);
  }
  static bool in_prefix(const Address& a, const Address& prefix, uint8_t len) noexcept {
    const uint64_t ah = rte_be_to_cpu_64(a.hi), al = rte_be_to_cpu_64(a.lo);
    const uint64_t ph = rte_be_to_cpu_64(prefix.hi), pl = rte_be_to_cpu_64(prefix.lo);
    if (len >= 128) return ah == ph && al == pl;
    if (len >= 64)
      return ah == ph && (len == 64 || ((al ^ pl) & (~uint64_t{0} << (128 - len))) == 0);
    return len == 0 || ((ah ^ ph) & (~uint64_t{0} << (64 - len))) == 0;
  }
  static void rewrite_address(uint8_t* hdr, unsigned offset, const Address& a, uint8_t* port,
                              uint16_t new_port, uint8_t* l4_csum, uint8_t proto) noexcept {
    rewrite6(hdr + offset, a, port, new_port, l4_csum, proto);
  }

  static Address address(const NatConfig& c, uint32_t i) noexcept { return c.address6(i); }
  static uint32_t address_index(const NatConfig& c, const Address& a) noexcept {
    return c.address_index6(a);
  }
  static uint32_t paired_address_index(const NatConfig& c, const Address& a) noexcept {
    return c.paired_address_index6(a);
  }
  static bool det_forward(const NatConfig& c, const Address& sub, uint32_t worker,
                          uint32_t* address_index, uint16_t* port_first) noexcept {
    NatConfig::DetRange det{};
    if (!c.det_forward6(sub, worker, &det)) return false;
    *address_index = det.public_address;
    *port_first = det.port_first;
    return true;
  }
  static void event_addresses(NatEvent& e, const Address& sub, const Address& pub) noexcept {
    e.family = 6;
    e.subscriber6 = sub.bytes();
    e.public_address6 = pub.bytes();
  }
};

}  // namespace exitgw::dp::nat
