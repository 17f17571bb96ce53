// The one IPv4 header fill for packets this program builds (WireGuard encapsulation, ICMP
// errors, control's handshake replies): no options, no fragmentation, TTL 64.
#pragma once

#include <cstdint>

#include <rte_ip.h>

namespace exitgw {

// Addresses in network order; `total` is the IP total length in host order. The header
// checksum is computed last, over the filled header.
inline void fill_ipv4_header(rte_ipv4_hdr* ip, uint32_t src_be, uint32_t dst_be, uint16_t total,
                             uint8_t proto) noexcept {
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->type_of_service = 0;
  ip->total_length = rte_cpu_to_be_16(total);
  ip->packet_id = 0;
  ip->fragment_offset = 0;
  ip->time_to_live = 64;
  ip->next_proto_id = proto;
  ip->src_addr = src_be;
  ip->dst_addr = dst_be;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
}

}  // namespace exitgw
