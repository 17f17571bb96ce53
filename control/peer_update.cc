// Checking a peer update against the gateway and the other sources, and naming its refusal.
#include "control/peer_update.h"

#include "common/ipv6_addr.h"

#include <algorithm>

namespace exitgw {

namespace {

bool inside(uint32_t ip, const Ipv4Prefix& p) {
  return (ip & p.mask()) == (p.addr & p.mask());
}

std::string key_text(const wg::Key& key) {
  return wg::key_to_base64(key);
}

UpdateResult refusal(UpdateError error, std::string message) {
  return UpdateResult{error, std::move(message), 0};
}

}  // namespace

Status check_not_self(const PeerConfig& peer, const GatewaySelf& self) {
  if (peer.public_key == self.public_key)
    return make_error("PublicKey " + key_text(peer.public_key) +
                      " is the gateway's own key; a peer is another node");
  if (!peer.has_endpoint) return Ok{};
  const std::string shown = "Endpoint " + peer_endpoint_text(peer);
  const auto refuse = [&](std::string_view why) {
    return make_error(shown + " is " + std::string(why));
  };
  if (peer.endpoint_is_ipv6) {  // the special ranges were refused by parse_peer_endpoint
    for (const std::array<uint8_t, 16>& own : self.addresses6)
      if (own == peer.endpoint_ip6) return refuse("the gateway's own address");
    for (const Ipv6Prefix& pool : self.nat_pool6)
      if (ipv6_prefix_match(peer.endpoint_ip6.data(), pool.addr.data(), pool.len))
        return refuse("in the gateway's own NAT pool");
    return Ok{};
  }
  const uint32_t ip = peer.endpoint_ip;
  if (ip == 0xffffffffu) return refuse("the broadcast address");
  if ((ip >> 24) == 0) return refuse("unspecified (0.0.0.0/8)");
  if ((ip >> 24) == 127) return refuse("a loopback address (the gateway itself)");
  if ((ip >> 28) == 0xe) return refuse("a multicast address");
  if ((ip >> 28) == 0xf) return refuse("a reserved address (240.0.0.0/4)");
  for (const Ipv4Prefix& port : self.interfaces) {
    if (ip == port.addr) return refuse("the gateway's own address");
    if (port.len < 31 && inside(ip, port) && ip == (port.addr | ~port.mask()))
      return refuse("the broadcast address of the gateway's subnet " +
                    format_ipv4(port.addr & port.mask()) + "/" + std::to_string(port.len));
  }
  for (const Ipv4Prefix& pool : self.nat_pool)
    if (inside(ip, pool)) return refuse("in the gateway's own NAT pool");
  return Ok{};
}

PeerPlan plan_peer_update(const PeersBySource& running, const Update& update,
                          const std::string& source, const GatewaySelf& self) {
  PeerPlan plan;
  // Who holds each key, indexed once: a set of thousands of peers (an etcd load) is checked in
  // n log n, not n squared.
  std::map<wg::Key, const std::string*> owners;
  for (const auto& [name, peers] : running)
    for (const PeerConfig& p : peers) owners.emplace(p.public_key, &name);
  const auto owner_of = [&](const wg::Key& key) -> std::string {
    const auto it = owners.find(key);
    return it == owners.end() ? std::string() : *it->second;
  };
  const auto mine = running.find(source);
  if (mine != running.end()) plan.peers = mine->second;
  std::vector<const PeerConfig*> changed;  // the peers the update brings in
  if (const auto* up = std::get_if<PeerUpsert>(&update)) {
    std::erase_if(plan.peers,
                  [&](const PeerConfig& p) { return p.public_key == up->peer.public_key; });
    plan.peers.push_back(up->peer);
    changed.push_back(&up->peer);
  } else if (const auto* rm = std::get_if<PeerRemove>(&update)) {
    const std::string owner = owner_of(rm->public_key);
    if (owner.empty()) {
      plan.refusal = refusal(UpdateError::kNotFound, "no peer " + key_text(rm->public_key));
    } else if (owner != source) {
      plan.refusal = refusal(UpdateError::kConflict,
                             "peer " + key_text(rm->public_key) + " belongs to source " + owner);
    }
    std::erase_if(plan.peers, [&](const PeerConfig& p) { return p.public_key == rm->public_key; });
    return plan;
  } else if (const auto* set = std::get_if<PeerSet>(&update)) {
    plan.peers = set->peers;
    for (const PeerConfig& p : set->peers) changed.push_back(&p);
  } else {
    plan.refusal = refusal(UpdateError::kInvalid, "not a peer update");
    return plan;
  }
  // A value that breaks a rule on its own: 400 whatever else is wrong.
  for (const PeerConfig* p : changed) {
    Status s = validate_peer(*p);
    if (s) s = check_not_self(*p, self);
    if (!s) {
      plan.refusal =
          refusal(UpdateError::kInvalid, "peer " + key_text(p->public_key) + ": " + s.error());
      return plan;
    }
  }
  // Then what clashes with another peer: 409.
  for (const PeerConfig* p : changed) {
    const std::string owner = owner_of(p->public_key);
    if (!owner.empty() && owner != source) {
      plan.refusal = refusal(UpdateError::kConflict,
                             "peer " + key_text(p->public_key) + " belongs to source " + owner);
      return plan;
    }
  }
  std::vector<PeerConfig> all = plan.peers;
  for (const auto& [name, peers] : running)
    if (name != source) all.insert(all.end(), peers.begin(), peers.end());
  // Every peer passed validate_peer, so what validate_peers finds now is between two peers:
  // a key or an allowed IP given twice.
  if (Status s = validate_peers(all); !s) plan.refusal = refusal(UpdateError::kConflict, s.error());
  return plan;
}

}  // namespace exitgw
