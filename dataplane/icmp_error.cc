// ICMP error construction for the worker (rate limited by the caller's token bucket).
#include "dataplane/icmp_error.h"

#include <rte_icmp.h>

#include <algorithm>
#include <cstring>

#include "common/ipv4_header.h"
#include "dataplane/checksum.h"

namespace exitgw::dp {

namespace {
constexpr uint16_t kMaxErrorLen = 576;  // RFC 1812 4.3.2.3
}

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

}  // namespace exitgw::dp
