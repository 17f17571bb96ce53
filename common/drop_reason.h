// Every reason the data path drops a packet, declared once: the enum and its metric names
// come from one table (VPP's error-counter idiom), grouped by the stage that drops.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

#include "common/nat_drops.h"

namespace exitgw::dp {

// X(enum name, metric label)
#define EXITGW_DROP_REASONS(X)                                   \
  /* eth_input */                                                \
  X(kEthTooShort, "eth_too_short")                               \
  X(kEthUnsupportedType, "eth_unsupported_type")                 \
  X(kEthNotForUs, "eth_not_for_us")                              \
  X(kEthGroupSource, "eth_group_source")                         \
  X(kMultiSegment, "multi_segment")                              \
  /* arp */                                                      \
  X(kArpMalformed, "arp_malformed")                              \
  X(kArpNotForUs, "arp_not_for_us")                              \
  /* ipv4_input */                                               \
  X(kIpv4TooShort, "ipv4_too_short")                             \
  X(kIpv4BadVersion, "ipv4_bad_version")                         \
  X(kIpv4BadIhl, "ipv4_bad_ihl")                                 \
  X(kIpv4BadTotalLength, "ipv4_bad_total_length")                \
  X(kIpv4BadChecksum, "ipv4_bad_checksum")                       \
  X(kIpv4Options, "ipv4_options")                                \
  X(kIpv4BadSource, "ipv4_bad_source")                           \
  X(kIpv4TtlExpired, "ipv4_ttl_expired")                         \
  X(kIpv4Fragment, "ipv4_fragment")                              \
  /* ipv6_input, ipv6_local */                                   \
  X(kIpv6TooShort, "ipv6_too_short")                             \
  X(kIpv6BadVersion, "ipv6_bad_version")                         \
  X(kIpv6BadPayloadLength, "ipv6_bad_payload_length")            \
  X(kIpv6BadSource, "ipv6_bad_source")                           \
  X(kIpv6NotForUs, "ipv6_not_for_us")                            \
  X(kIpv6ExtMalformed, "ipv6_ext_malformed")                     \
  X(kIpv6ExtChainTooLong, "ipv6_ext_chain_too_long")             \
  X(kIpv6RoutingHeader, "ipv6_routing_header")                   \
  X(kIpv6FragmentNoUpperHeader, "ipv6_fragment_no_upper")        \
  X(kIpv6Fragment, "ipv6_fragment")                              \
  X(kIcmp6Malformed, "icmp6_malformed")                          \
  X(kIcmp6BadChecksum, "icmp6_bad_checksum")                     \
  X(kIcmp6UnsupportedType, "icmp6_unsupported_type")             \
  X(kNdBadHopLimit, "nd_bad_hop_limit")                          \
  X(kNdMalformed, "nd_malformed")                                \
  X(kNdNotForUs, "nd_not_for_us")                                \
  /* local delivery */                                           \
  X(kLocalUnsupportedProtocol, "local_unsupported_protocol")     \
  X(kLocalPortUnreachable, "local_port_unreachable")             \
  X(kIcmpMalformed, "icmp_malformed")                            \
  X(kIcmpBadChecksum, "icmp_bad_checksum")                       \
  X(kIcmpUnsupportedType, "icmp_unsupported_type")               \
  X(kIcmpRateLimited, "icmp_rate_limited")                       \
  X(kUdpMalformed, "udp_malformed")                              \
  X(kUdpBadChecksum, "udp_bad_checksum")                         \
  /* IPv6 transit (ipv6_transit.cc, nptv6.cc, ipv6_output.cc) */ \
  X(kIpv6HopLimitExceeded, "ipv6_hop_limit_exceeded")            \
  X(kIpv6NoRoute, "ipv6_no_route")                               \
  X(kIpv6NoPool6, "ipv6_no_nat_pool6")                           \
  X(kNptv6SourceNotInside, "nptv6_source_not_inside")            \
  X(kNptv6NotInPool, "nptv6_not_in_pool6")                       \
  X(kNptv6Untranslatable, "nptv6_untranslatable")                \
  X(kNptv6QuotedNotMapped, "nptv6_quoted_not_mapped")            \
  X(kNat66NotInPool, "nat66_not_in_pool6")                       \
  /* wireguard */                                                \
  X(kWgMalformed, "wg_malformed")                                \
  X(kWgUnknownType, "wg_unknown_type")                           \
  X(kWgUnknownIndex, "wg_unknown_index")                         \
  X(kWgKeypairExpired, "wg_keypair_expired")                     \
  X(kWgReplay, "wg_replay")                                      \
  X(kWgDecryptFailed, "wg_decrypt_failed")                       \
  X(kWgInnerMalformed, "wg_inner_malformed")                     \
  X(kWgInnerBadChecksum, "wg_inner_bad_checksum")                \
  X(kWgBadSource, "wg_bad_source")                               \
  X(kWgNoPeerForDestination, "wg_no_peer_for_destination")       \
  X(kWgNoKeypair, "wg_no_keypair")                               \
  X(kWgNoEndpoint, "wg_no_endpoint")                             \
  X(kWgTooLarge, "wg_too_large")                                 \
  X(kWgCounterExhausted, "wg_counter_exhausted")                 \
  X(kTransitFromTunnel, "transit_from_tunnel")                   \
  /* exception path (the gateway's own tailnet addresses) */     \
  X(kExceptionPortOff, "exception_port_off")                     \
  X(kExceptionRateLimited, "exception_rate_limited")             \
  X(kExceptionMalformed, "exception_malformed")                  \
  X(kExceptionNotIpv4, "exception_not_ipv4")                     \
  X(kExceptionBadSource, "exception_bad_source")                 \
  X(kExceptionTooLarge, "exception_too_large")                   \
  X(kExceptionBadRelay, "exception_bad_relay")                   \
  /* nat (common/nat_drops.h), in NatDrop order */               \
  EXITGW_NAT_DROPS(X)                                            \
  X(kHandoffRingFull, "handoff_ring_full")                       \
  X(kFragmentParkFull, "fragment_park_full")                     \
  X(kFragmentTimeout, "fragment_timeout")                        \
  /* exit policy */                                              \
  X(kExitNotApproved, "exit_not_approved")                       \
  X(kPolicyDenied, "policy_denied")                              \
  X(kDomainBlocked, "domain_blocked")                            \
  /* output */                                                   \
  X(kPuntRingFull, "punt_ring_full")                             \
  X(kNeighborUnresolved, "neighbor_unresolved")                  \
  X(kNoMbuf, "no_mbuf")                                          \
  X(kTxQueueFull, "tx_queue_full")

enum class DropReason : uint8_t {
#define EXITGW_X(name, label) name,
  EXITGW_DROP_REASONS(EXITGW_X)
#undef EXITGW_X
      kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(DropReason::kCount)>
    kDropReasonNames = {
#define EXITGW_X(name, label) label,
        EXITGW_DROP_REASONS(EXITGW_X)
#undef EXITGW_X
};

// NAT's reasons sit in DropReason in NatDrop's order, starting at kMalformed.
template <typename NatDropT>
constexpr DropReason drop_reason_of(NatDropT d) {
  return static_cast<DropReason>(static_cast<unsigned>(DropReason::kMalformed) +
                                 static_cast<unsigned>(d));
}

constexpr std::string_view drop_reason_name(DropReason r) {
  return kDropReasonNames[static_cast<size_t>(r)];
}

}  // namespace exitgw::dp
