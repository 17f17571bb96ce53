// ICMP errors the gateway originates (time exceeded, fragmentation needed) about a packet it
// cannot forward, built in a fresh mbuf as RFC 792 and RFC 1812 section 4.3.2 ask; and their
// ICMPv6 counterparts (time exceeded, packet too big) as RFC 4443 asks.
#pragma once

#include <cstdint>

#include <rte_ip.h>
#include <rte_mbuf.h>

namespace exitgw::dp {

// Whether RFC 1812 4.3.2.7 allows an error about this packet: never about an ICMP error, a
// non-first fragment, or a packet from a source that is not one host.
bool icmp_error_allowed(const rte_ipv4_hdr* orig) noexcept;

// A new packet (IPv4 header at the front, no L2) from `from_be` to the original's source,
// quoting the original's header and as much data as fits in 576 bytes. `mtu` is the next-hop
// MTU for fragmentation-needed (type 3 code 4), else 0. nullptr if the pool is empty.
rte_mbuf* make_icmp_error(rte_mempool* pool, const rte_ipv4_hdr* orig, uint32_t from_be,
                          uint8_t type, uint8_t code, uint16_t mtu) noexcept;

// Whether RFC 4443 2.4(e) allows an error about this IPv6 packet (header at the front, its
// chain walked): never about an ICMPv6 error message, nor one from an unspecified, loopback or
// multicast source or to a group (Packet Too Big to a group is allowed; not needed here).
bool icmp6_error_allowed(const rte_ipv6_hdr* orig) noexcept;

// A new packet (IPv6 header at the front, no L2) from `from` to the original's source, quoting
// as much of the original as fits in the minimum MTU, 1280 bytes (RFC 4443 2.4(c)). `param` is
// the message's 32-bit field (the MTU for Packet Too Big, else 0). nullptr if the pool is empty.
rte_mbuf* make_icmp6_error(rte_mempool* pool, const rte_ipv6_hdr* orig, const uint8_t from[16],
                           uint8_t type, uint8_t code, uint32_t param) noexcept;

}  // namespace exitgw::dp
