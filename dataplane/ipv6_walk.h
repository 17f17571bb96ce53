// The IPv6 extension-header walk (RFC 8200 4): bounded in headers and bytes, every length
// checked against the payload, so a chain can neither run past the packet nor loop. Shared by
// every IPv6 stage that needs the upper-layer header (local delivery now; inner IPv6 next).
#pragma once

#include <cstdint>
#include <cstring>

#include <rte_byteorder.h>
#include <rte_ip.h>

#include "common/drop_reason.h"

namespace exitgw::dp {

inline constexpr uint8_t kIpv6HopByHop = 0;
inline constexpr uint8_t kIpv6Routing = 43;
inline constexpr uint8_t kIpv6Fragment = 44;
inline constexpr uint8_t kIpv6NoNext = 59;
inline constexpr uint8_t kIpv6DestOptions = 60;
inline constexpr uint8_t kIcmpv6 = 58;
// More extension headers than this is an attack, not a packet (Linux stops at 8 options per
// header and RFC 8504 lets a node set such a limit); the chain is dropped, counted.
inline constexpr unsigned kIpv6MaxExtHeaders = 8;

struct Ipv6Layers {
  uint8_t proto = 0;        // the upper-layer protocol (or kIpv6NoNext)
  uint16_t l4_offset = 0;   // from the IPv6 header's start
  bool fragment = false;    // a Fragment header was in the chain
  uint16_t frag_field = 0;  // its offset and M flag, host order (offset << 3 | M)
  uint32_t frag_id = 0;     // network order
};

// The smallest upper-layer header a first fragment must carry whole (RFC 7112).
inline unsigned ipv6_upper_min(uint8_t proto) noexcept {
  switch (proto) {
    case IPPROTO_TCP:
      return 20;
    case IPPROTO_UDP:
    case kIcmpv6:
      return 8;
    default:
      return 0;
  }
}

// Walks the chain after the fixed header; `payload` is the header's payload length, already
// checked against the frame. Returns DropReason::kCount when the chain is well formed.
inline DropReason ipv6_walk(const rte_ipv6_hdr* ip, uint32_t payload, Ipv6Layers& out) noexcept {
  const auto* base = reinterpret_cast<const uint8_t*>(ip);
  uint32_t off = sizeof(rte_ipv6_hdr);
  const uint32_t end = sizeof(rte_ipv6_hdr) + payload;
  uint8_t nh = ip->proto;
  for (unsigned h = 0;; ++h) {
    switch (nh) {
      case kIpv6HopByHop:
        if (h != 0) return DropReason::kIpv6ExtMalformed;  // only ever first (RFC 8200 4.1)
        [[fallthrough]];
      case kIpv6DestOptions:
      case kIpv6Routing:
      case kIpv6Fragment:
        break;
      default:
        out.proto = nh;
        out.l4_offset = static_cast<uint16_t>(off);
        // A first fragment must hold the whole header chain and the upper-layer header.
        if (out.fragment && (out.frag_field & 0xfff8) == 0 && nh != kIpv6NoNext &&
            end - off < ipv6_upper_min(nh))
          return DropReason::kIpv6FragmentNoUpperHeader;
        return DropReason::kCount;
    }
    if (h == kIpv6MaxExtHeaders) return DropReason::kIpv6ExtChainTooLong;
    if (end - off < 8) {
      // A later fragment's chain ends where its data starts; a first one must not end here.
      if (out.fragment && (out.frag_field & 0xfff8) == 0)
        return DropReason::kIpv6FragmentNoUpperHeader;
      return DropReason::kIpv6ExtMalformed;
    }
    const uint8_t* e = base + off;
    const uint32_t len = nh == kIpv6Fragment ? 8u : (uint32_t{e[1]} + 1) * 8;
    if (len > end - off) return DropReason::kIpv6ExtMalformed;
    if (nh == kIpv6Fragment) {
      if (out.fragment) return DropReason::kIpv6ExtMalformed;  // one per packet
      out.fragment = true;
      out.frag_field = static_cast<uint16_t>((e[2] << 8 | e[3]) & 0xfff9);
      std::memcpy(&out.frag_id, e + 4, 4);  // 2-byte aligned behind Ethernet
      // A non-first fragment's next header names what the first one carries: stop here.
      if ((out.frag_field & 0xfff8) != 0) {
        out.proto = e[0];
        out.l4_offset = static_cast<uint16_t>(off + 8);
        return DropReason::kCount;
      }
    } else if (nh == kIpv6Routing && e[3] != 0) {
      // Segments left: this node would have to forward it on a source route it did not
      // choose (type 0 is deprecated by RFC 5095; no other type is served here).
      return DropReason::kIpv6RoutingHeader;
    }
    nh = e[0];
    off += len;
  }
}

}  // namespace exitgw::dp
