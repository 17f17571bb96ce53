// af_packet ports without the kernel's IPv4 reassembly: the fanout argument the daemon lets
// DPDK's af_packet driver use, and how often it had to change it (af_packet_fanout.cc).
#pragma once

#include <linux/if_packet.h>

namespace exitgw {

// PACKET_FANOUT's argument: the group id in the low 16 bits, the mode and its flags above.
// The same argument without PACKET_FANOUT_FLAG_DEFRAG; mode, other flags and group kept.
constexpr unsigned fanout_without_defrag(unsigned arg) noexcept {
  return arg & ~(unsigned{PACKET_FANOUT_FLAG_DEFRAG} << 16);
}

// How many PACKET_FANOUT joins in this process were made without the defrag flag they asked
// for (one per af_packet queue socket). Zero with af_packet ports means the daemon's
// setsockopt was not the one the driver called (af_packet_fanout.cc says why it must be).
unsigned af_packet_defrag_removed() noexcept;

}  // namespace exitgw
