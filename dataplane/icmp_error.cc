// ICMP error construction for the worker (rate limited by the caller's token bucket).
#include "dataplane/icmp_error.h"

#include <rte_icmp.h>

#include <algorithm>
#include <cstring>

#include "common/ipv4_header.h"
#include "common/ipv6_addr.h"
#include "dataplane/checksum.h"
#include "dataplane/ipv6_walk.h"

namespace exitgw::dp {

namespace {
constexpr uint16_t kMaxErrorLen = 576;    // RFC 1812 4.3.2.3
constexpr uint16_t kMaxError6Len = 1280;  // RFC 4443 2.4(c): the IPv6 minimum MTU
}  // namespace

bool icmp_error_allowed(const rte_ipv4_hdr* orig) noexcept {
  if (orig->fragment_offset & RTE_BE16(RTE_IPV4_HDR_OFFSET_MASK)) return false;
  const uint32_t src = rte_be_to_cpu_32(orig->src_addr);
  if (src == 0 || (src >> 24) == 127 || (src >> 28) >= 0xe) return false;
  if (orig->next_proto_id == IPPROTO_ICMP) {
    const auto* icmp = reinterpret_cast<const rte_icmp_hdr*>(orig + 1);
    // Only queries may draw an error: echo (8), echo reply (0), timestamp (13, 14).
    const uint8_t t = icmp->icmp_type;
    if (t != 0 && t != 8 && t != 13 && t != 14) return false;
  }
  return true;
}

rte_mbuf* make_icmp_error(rte_mempool* pool, const rte_ipv4_hdr* orig, uint32_t from_be,
                          uint8_t type, uint8_t code, uint16_t mtu) noexcept {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  const uint16_t orig_len = rte_be_to_cpu_16(orig->total_length);
  const uint16_t quote = static_cast<uint16_t>(
      std::min<unsigned>(orig_len, kMaxErrorLen - sizeof(rte_ipv4_hdr) - sizeof(rte_icmp_hdr)));
  const uint16_t total = static_cast<uint16_t>(sizeof(rte_ipv4_hdr) + sizeof(rte_icmp_hdr) + quote);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(rte_pktmbuf_append(m, total));
  if (ip == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(ip + 1);
  fill_ipv4_header(ip, from_be, orig->src_addr, total, IPPROTO_ICMP);
  icmp->icmp_type = type;
  icmp->icmp_code = code;
  icmp->icmp_cksum = 0;
  // Unused word; for fragmentation needed its low half is the next-hop MTU (RFC 1191).
  icmp->icmp_ident = 0;
  icmp->icmp_seq_nb = rte_cpu_to_be_16(mtu);
  std::memcpy(icmp + 1, orig, quote);
  icmp->icmp_cksum = static_cast<uint16_t>(~checksum(icmp, sizeof(*icmp) + quote));
  return m;
}

bool icmp6_error_allowed(const rte_ipv6_hdr* orig) noexcept {
  if (ipv6_unspecified(orig->src_addr) || ipv6_loopback(orig->src_addr) ||
      ipv6_multicast(orig->src_addr) || ipv6_multicast(orig->dst_addr))
    return false;
  Ipv6Layers l;
  if (ipv6_walk(orig, rte_be_to_cpu_16(orig->payload_len), l) != DropReason::kCount) return false;
  if (l.proto != kIcmpv6) return true;
  // Types 0-127 are errors (RFC 4443 2.1); a later fragment's type is not in it: no error.
  if (l.fragment && (l.frag_field & 0xfff8) != 0) return false;
  // A chain that ends with the payload names ICMPv6 but carries none: not an error message.
  if (l.l4_offset >= sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(orig->payload_len)) return true;
  const auto* icmp = reinterpret_cast<const uint8_t*>(orig) + l.l4_offset;
  return icmp[0] >= 128;
}

rte_mbuf* make_icmp6_error(rte_mempool* pool, const rte_ipv6_hdr* orig, const uint8_t from[16],
                           uint8_t type, uint8_t code, uint32_t param) noexcept {
  rte_mbuf* m = rte_pktmbuf_alloc(pool);
  if (m == nullptr) return nullptr;
  constexpr uint32_t kHead = sizeof(rte_ipv6_hdr) + 8;  // IPv6 + ICMPv6 type..param
  const uint32_t orig_len = sizeof(rte_ipv6_hdr) + rte_be_to_cpu_16(orig->payload_len);
  const uint32_t quote = std::min<uint32_t>(orig_len, kMaxError6Len - kHead);
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(rte_pktmbuf_append(m, kHead + quote));
  if (ip == nullptr) {
    rte_pktmbuf_free(m);
    return nullptr;
  }
  auto* icmp = reinterpret_cast<uint8_t*>(ip + 1);
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(static_cast<uint16_t>(8 + quote));
  ip->proto = kIcmpv6;
  ip->hop_limits = 64;
  std::memcpy(ip->src_addr, from, 16);
  std::memcpy(ip->dst_addr, orig->src_addr, 16);
  icmp[0] = type;
  icmp[1] = code;
  icmp[2] = icmp[3] = 0;
  const uint32_t param_be = rte_cpu_to_be_32(param);
  std::memcpy(icmp + 4, &param_be, 4);
  std::memcpy(icmp + 8, orig, quote);
  const uint16_t c = icmp6_checksum(ip, icmp, 8 + quote);
  std::memcpy(icmp + 2, &c, 2);
  return m;
}

}  // namespace exitgw::dp
