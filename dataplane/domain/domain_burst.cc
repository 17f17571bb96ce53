// Burst classification of inner IPv4 and IPv6 packets against the domain policy
// (domain_burst.h).
#include "dataplane/domain/domain_burst.h"

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "dataplane/ipv6_walk.h"

namespace exitgw::dp::domain {
namespace {

constexpr uint16_t kChunk = 64;

inline uint16_t be16(const uint8_t* p) noexcept {
  return uint16_t(p[0] << 8 | p[1]);
}

// The upper layer of an inner packet of either family: its protocol and bytes (as far as the
// header's length and the buffer both go), or false when there is none to inspect (a header
// that does not parse, a non-first fragment; a first fragment is inspected as far as it goes).
bool upper_layer(const uint8_t* ip, uint32_t len, uint8_t& proto, const uint8_t*& l4,
                 uint32_t& l4_len) noexcept {
  if (len < sizeof(rte_ipv4_hdr)) [[unlikely]]
    return false;
  if ((ip[0] >> 4) == 6) {
    if (len < sizeof(rte_ipv6_hdr)) [[unlikely]]
      return false;
    const auto* h = reinterpret_cast<const rte_ipv6_hdr*>(ip);
    uint32_t payload = be16(reinterpret_cast<const uint8_t*>(&h->payload_len));
    const uint32_t held = len - uint32_t(sizeof(rte_ipv6_hdr));
    if (payload > held) payload = held;  // a packet cut short is inspected for what it holds
    Ipv6Layers layers;
    if (ipv6_walk(h, payload, layers) != DropReason::kCount) [[unlikely]]
      return false;
    if (layers.fragment && (layers.frag_field & 0xfff8) != 0) return false;
    proto = layers.proto;
    l4 = ip + layers.l4_offset;
    l4_len = uint32_t(sizeof(rte_ipv6_hdr)) + payload - layers.l4_offset;
    return true;
  }
  const auto* h = reinterpret_cast<const rte_ipv4_hdr*>(ip);
  const uint32_t ihl = uint32_t(h->version_ihl & 0x0f) * 4;
  if ((h->version_ihl >> 4) != 4 || ihl < sizeof(rte_ipv4_hdr)) [[unlikely]]
    return false;
  if ((be16(reinterpret_cast<const uint8_t*>(&h->fragment_offset)) & RTE_IPV4_HDR_OFFSET_MASK) != 0)
    return false;
  uint32_t end = be16(reinterpret_cast<const uint8_t*>(&h->total_length));
  if (end > len) end = len;  // a packet cut short is inspected for what it holds
  if (end < ihl) [[unlikely]]
    return false;
  proto = h->next_proto_id;
  l4 = ip + ihl;
  l4_len = end - ihl;
  return true;
}

}  // namespace

Candidate prefilter(const uint8_t* ip, uint32_t len) noexcept {
  uint8_t proto;
  const uint8_t* l4;
  uint32_t l4_len;
  if (!upper_layer(ip, len, proto, l4, l4_len) || (proto != IPPROTO_UDP && proto != IPPROTO_TCP))
    return {};
  if (proto == IPPROTO_UDP) {
    if (l4_len < sizeof(rte_udp_hdr) || be16(l4 + 2) != kDnsPort) return {};
    uint32_t datagram = be16(l4 + 4);
    if (datagram < sizeof(rte_udp_hdr)) [[unlikely]]
      return {};
    if (datagram > l4_len) datagram = l4_len;
    return {Protocol::kDns, l4 + sizeof(rte_udp_hdr), datagram - uint32_t(sizeof(rte_udp_hdr))};
  }
  if (l4_len < sizeof(rte_tcp_hdr)) return {};
  const uint16_t port = be16(l4 + 2);
  Protocol p;
  if (port == kTlsPort) {
    p = Protocol::kTls;
  } else if (port == kHttpPort) {
    p = Protocol::kHttp;
  } else {
    return {};
  }
  const uint32_t doff = uint32_t(l4[12] >> 4) * 4;
  if (doff < sizeof(rte_tcp_hdr) || doff >= l4_len) return {};  // bad offset, or no payload
  return {p, l4 + doff, l4_len - doff};
}

DomainResult classify_payload(const DomainDatabase& db, DomainScratch& scratch, Protocol protocol,
                              const uint8_t* payload, size_t len, DomainName* name) noexcept {
  DomainResult r;
  r.protocol = protocol;
  size_t n = 0;
  switch (protocol) {
    case Protocol::kDns:
      r.status = dns_query_name(payload, len, name->text, kNameCapacity, &n);
      break;
    case Protocol::kTls:
      r.status = tls_client_hello_sni(payload, len, name->text, kNameCapacity, &n);
      break;
    case Protocol::kHttp:
      r.status = http_host(payload, len, name->text, kNameCapacity, &n);
      break;
    default:
      return {};
  }
  if (r.status != NameStatus::kFound) return r;
  r.name_length = uint16_t(n);
  const Verdict v = match(db, scratch, std::string_view(name->text, n));
  r.action = v.action;
  r.rule = v.rule;
  return r;
}

void classify_burst(const DomainDatabase& db, DomainScratch& scratch, const uint8_t* const* packets,
                    const uint32_t* lens, uint16_t n, DomainResult* results,
                    DomainName* names) noexcept {
  // No prefetch: the headers were just written by decryption and are in cache.
  DomainName spare;
  for (uint16_t base = 0; base < n; base += kChunk) {
    const uint16_t count = n - base < kChunk ? uint16_t(n - base) : kChunk;
    // 1. Pre-filter: gather the few candidates.
    Candidate candidates[kChunk];
    uint16_t index[kChunk];
    uint16_t found = 0;
    for (uint16_t i = 0; i < count; ++i) {
      const uint16_t k = base + i;
      results[k] = DomainResult{};
      const Candidate c = prefilter(packets[k], lens[k]);
      if (c.protocol != Protocol::kNone) [[unlikely]] {
        candidates[found] = c;
        index[found++] = k;
      }
    }
    // 2. Extract and scan each candidate (Hyperscan has no multi-buffer block scan).
    for (uint16_t j = 0; j < found; ++j) {
      const uint16_t k = index[j];
      DomainName* name = names != nullptr ? &names[k] : &spare;
      results[k] = classify_payload(db, scratch, candidates[j].protocol, candidates[j].payload,
                                    candidates[j].payload_length, name);
    }
  }
}

}  // namespace exitgw::dp::domain
