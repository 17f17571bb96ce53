// Small fixed-size messages from workers to control over per-worker rings (no mbufs).
#pragma once

#include <cstdint>

namespace exitgw::dp {

enum class EventType : uint8_t {
  kNeighborSeen,      // an ARP packet told us ip -> mac on a port
  kKeypairConfirmed,  // first authenticated packet on a responder's new keypair
  kRekeyWanted,       // send counter or age passed the rekey threshold (value = peer slot)
  kHandshakeWanted,   // traffic for a peer without a usable keypair (value = peer slot)
  kDomainMatch,       // a domain rule matched (value = rule, ip = peer slot, port = blocked)
  kNeighborSeen6,     // neighbor discovery told us ip6 -> mac on a port
};

struct Event {
  EventType type;
  uint8_t port;
  uint8_t mac[6];
  uint32_t ip;      // network order (kNeighborSeen)
  uint32_t value;   // receiver index or peer slot (WireGuard events)
  uint8_t ip6[16];  // kNeighborSeen6
};
static_assert(sizeof(Event) == 32);

// Control -> worker, over each worker's command ring (control the only producer).
enum class WorkerCommandType : uint8_t {
  kNatRemoveSubscribers,    // prefix/len no longer belongs to the peer that held NAT state for it
  kNat66RemoveSubscribers,  // the same for an IPv6 prefix (prefix6/len), NAT66 state
};

struct WorkerCommand {
  WorkerCommandType type;
  uint8_t len;
  uint8_t pad[2];
  uint32_t prefix;      // host order (kNatRemoveSubscribers)
  uint8_t prefix6[16];  // network order (kNat66RemoveSubscribers)
};
static_assert(sizeof(WorkerCommand) == 24);

}  // namespace exitgw::dp
