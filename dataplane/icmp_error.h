// ICMP errors the gateway originates (time exceeded, fragmentation needed) about a packet it
// cannot forward, built in a fresh mbuf as RFC 792 and RFC 1812 section 4.3.2 ask.
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

}  // namespace exitgw::dp
