// How a source's peer update (upsert, remove, whole set) is checked before the control thread
// installs it: against the gateway itself and every other source's peers, with one kind of
// refusal per kind of problem, so every source and every admin endpoint answers alike.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "control/net_parse.h"
#include "control/peers_config.h"
#include "control/updates.h"
#include "control/wg/crypto.h"

namespace exitgw {

// What the gateway is: no peer may be it.
struct GatewaySelf {
  wg::Key public_key{};                             // the gateway's own WireGuard key
  std::vector<Ipv4Prefix> interfaces;               // each port address with its subnet length
  std::vector<std::array<uint8_t, 16>> addresses6;  // the ports' configured IPv6 addresses
  std::vector<Ipv4Prefix> nat_pool;                 // the public addresses it translates to
  std::vector<Ipv6Prefix> nat_pool6;                // the same for IPv6 (NPTv6 or NAT66)
};

// Refuses a peer that is the gateway: its public key, or an endpoint that is one of the
// gateway's addresses (ports, NAT pool), a port subnet's broadcast, or an address no peer can
// have (unspecified 0.0.0.0/8, loopback, multicast, reserved 240/4 with 255.255.255.255).
Status check_not_self(const PeerConfig& peer, const GatewaySelf& self);

// The peers one source holds, by source name ("file", "admin", "etcd").
using PeersBySource = std::map<std::string, std::vector<PeerConfig>>;

// The source's peer list after `update` (a PeerUpsert, PeerRemove or PeerSet), every rule
// checked; or the refusal: kInvalid for a value that breaks a rule (validate_peer, the gateway
// itself), kConflict for a key another source owns or an allowed IP another peer holds (in any
// source, or twice in one set), kNotFound for removing a peer the source does not have.
struct PeerPlan {
  UpdateResult refusal;           // ok() when `peers` is the answer
  std::vector<PeerConfig> peers;  // the source's new list
};
PeerPlan plan_peer_update(const PeersBySource& running, const Update& update,
                          const std::string& source, const GatewaySelf& self);

}  // namespace exitgw
