// NAT out2in: internet (or a hairpin hand-off) -> subscriber, one packet or a burst, and
// which worker an arriving packet belongs to.
#include "dataplane/nat/nat_internal.h"

namespace exitgw::dp::nat {

NatVerdict NatWorker::in(rte_ipv4_hdr* ip, uint32_t len, uint64_t now, NatDrop* why) noexcept {
  const uint32_t now_s = seconds(now);
  Packet p;
  const bool parsed = parse(ip, len, p, why);
  return in_parsed(p, parsed, now_s, why);
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

void NatWorker::in_burst(rte_ipv4_hdr* const* ips, const uint32_t* lens, uint16_t n, uint64_t now,
                         NatVerdict* verdicts, NatDrop* why) noexcept {
  burst<false>(ips, lens, n, now, verdicts, why);
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
