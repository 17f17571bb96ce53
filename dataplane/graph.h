// The packet path: entry points into the chains that dataplane/graph.cc wires.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace exitgw::dp {

class Worker;

// One received burst on `port` through every stage it reaches.
void receive(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;
// Packets another worker handed to this one (the NAT state they need lives here).
void receive_handoff(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

}  // namespace exitgw::dp
