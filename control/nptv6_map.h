// --nptv6_map: the NPTv6 (RFC 6296) mappings beside the gateway's IPv6 pool, parsed and
// checked whole before any is installed.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "control/net_parse.h"

namespace exitgw {

struct Nptv6Mapping {
  Ipv6Prefix inside;   // the peers' prefix
  Ipv6Prefix outside;  // the public prefix routed to --internet_addr6, as long as `inside`
};

// What --nptv6_map's mappings must not collide with.
struct Nptv6MapContext {
  std::vector<Nptv6Mapping> existing;                   // --nat_inside6/--nat_pool6 (nptv6 mode)
  std::vector<Ipv6Prefix> stateful_pool6;               // --nat_pool6 (stateful mode)
  std::vector<std::array<uint8_t, 16>> own_addresses6;  // the ports' IPv6 addresses
};

// "INSIDE=OUTSIDE,INSIDE=OUTSIDE" (empty: none): each pair of equal length /1../48, no special
// prefix (multicast, link-local, loopback, unspecified), no two insides or two outsides
// overlapping, no inside overlapping an outside (these checks count `existing` too), no
// outside overlapping the stateful pool or holding one of the gateway's own addresses, and
// with `existing` Nptv6Table::kMax mappings in all. The error names --nptv6_map and the
// prefixes at fault.
Result<std::vector<Nptv6Mapping>> parse_nptv6_map(std::string_view text,
                                                  const Nptv6MapContext& context);

}  // namespace exitgw
