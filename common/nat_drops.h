// Why NAT drops a packet: one table that yields NatDrop here and the matching entries of the
// data path's DropReason (common/drop_reason.h), so every NAT drop is counted once.
#pragma once

// X(enum name, metric label): declared once, the enum and the names come from this table.
#define EXITGW_NAT_DROPS(X)                                \
  X(kMalformed, "nat_malformed")                           \
  X(kUnsupportedProtocol, "nat_unsupported_protocol")      \
  X(kUnsupportedIcmp, "nat_unsupported_icmp")              \
  X(kNoMapping, "nat_no_mapping")                          \
  X(kFiltered, "nat_filtered")                             \
  X(kPoolExhausted, "nat_pool_exhausted")                  \
  X(kPortLimit, "nat_port_limit")                          \
  X(kSessionLimit, "nat_session_limit")                    \
  X(kTableFull, "nat_table_full")                          \
  X(kFragmentNoState, "nat_fragment_no_state")             \
  X(kNotDeterministicSubscriber, "nat_not_det_subscriber") \
  X(kHairpinUnsupported, "nat_hairpin_unsupported")        \
  X(kFragmentNoUpperHeader, "nat_fragment_no_upper")
