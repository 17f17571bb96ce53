// ARP resolution on the control thread; workers only ever read the published rte_hash.
#include "control/neighbor.h"

#include <cstring>

#include <rte_arp.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ip.h>

#include "dataplane/checksum.h"
#include "dataplane/packet_meta.h"

namespace exitgw {

// The tables go with their writer (workers stopped by then).
NeighborTable::~NeighborTable() {
  for (auto& [k, e] : entries_)
    for (rte_mbuf* m : e.pending) rte_pktmbuf_free(m);
  for (auto& [k, e] : entries6_)
    for (rte_mbuf* m : e.pending) rte_pktmbuf_free(m);
  for (rte_hash** h : {&ctx_.neighbors, &ctx_.neighbors6}) {
    rte_hash_free(*h);
    *h = nullptr;
  }
}

namespace {

// Lock-free readers, one writer (this thread): workers never block on an update.
Result<rte_hash*> create_hash(const char* name, unsigned capacity, uint32_t key_len,
                              rte_rcu_qsbr* rcu_v) {
  rte_hash_parameters params{};
  params.name = name;
  params.entries = std::max(capacity, 64u);
  params.key_len = key_len;
  params.socket_id = static_cast<int>(rte_socket_id());
  params.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  rte_hash* h = rte_hash_create(&params);
  if (h == nullptr)
    return make_error(std::string("cannot create ") + name + ": " + rte_strerror(rte_errno));
  rte_hash_rcu_config rcu{};
  rcu.v = rcu_v;
  rcu.mode = RTE_HASH_QSBR_MODE_DQ;
  if (rte_hash_rcu_qsbr_add(h, &rcu) != 0) {
    rte_hash_free(h);
    return make_error(std::string("cannot attach RCU to ") + name);
  }
  return h;
}

}  // namespace

Status NeighborTable::create_table() {
  auto v4 = create_hash("exitgw_neighbors", opt_.capacity, sizeof(dp::NeighborKey), ctx_.rcu);
  if (!v4) return make_error(v4.error());
  ctx_.neighbors = *v4;
  auto v6 = create_hash("exitgw_neighbors6", opt_.capacity, sizeof(dp::Neighbor6Key), ctx_.rcu);
  if (!v6) return make_error(v6.error());
  ctx_.neighbors6 = *v6;
  return Ok{};
}

void NeighborTable::publish(uint8_t port, uint32_t ip_be, const rte_ether_addr& mac) {
  const dp::NeighborKey k{ip_be, port, 0};
  const uint64_t word = dp::neighbor_word(mac);
  // In lock-free mode an update of an existing key's data is one atomic store.
  rte_hash_add_key_data(ctx_.neighbors, &k, reinterpret_cast<void*>(static_cast<uintptr_t>(word)));
}

Status NeighborTable::add_static(uint32_t ip_host_order, const uint8_t mac[6]) {
  const uint32_t ip_be = rte_cpu_to_be_32(ip_host_order);
  bool placed = false;
  for (unsigned p = 0; p < ctx_.n_ports; ++p) {
    const dp::PortInfo& info = ctx_.ports[p];
    if (!info.on_link(ip_be)) continue;
    Entry& e = entries_[key(static_cast<uint8_t>(p), ip_be)];
    std::memcpy(e.mac.addr_bytes, mac, 6);
    e.resolved = e.permanent = true;
    publish(static_cast<uint8_t>(p), ip_be, e.mac);
    placed = true;
  }
  if (!placed)
    return make_error("static neighbor " + std::to_string(ip_host_order >> 24) +
                      ".x.x.x is on "
                      "no port's subnet; give an address inside --tunnel_addr or --internet_addr");
  return Ok{};
}

void NeighborTable::learn(uint8_t port, uint32_t ip_be, const uint8_t mac[6], uint64_t now_ms) {
  if (port >= ctx_.n_ports) return;
  const dp::PortInfo& info = ctx_.ports[port];
  // Only on-link addresses become neighbors; anything else in an ARP packet is noise.
  if (!info.on_link(ip_be) || info.subnet_edge(ip_be)) return;
  auto it = entries_.find(key(port, ip_be));
  if (it == entries_.end()) {
    if (entries_.size() >= opt_.capacity) return;
    it = entries_.emplace(key(port, ip_be), Entry{}).first;
  }
  Entry& e = it->second;
  if (e.permanent) return;
  rte_ether_addr m;
  std::memcpy(m.addr_bytes, mac, 6);
  if (!e.resolved || !rte_is_same_ether_addr(&m, &e.mac)) publish(port, ip_be, m);
  e.mac = m;
  e.resolved = true;
  e.updated_ms = now_ms;
  e.tries = 0;
  while (!e.pending.empty()) {
    send_with_l2(port, e.pending.front(), e.mac);
    e.pending.pop_front();
  }
}

// A packet for a next hop not resolved yet, of either family: queued (the newest max_pending
// kept, like the kernel's arp_queue); the first one asks (ARP request, neighbor solicitation).
template <typename E, typename Ask>
void NeighborTable::hold(E& e, rte_mbuf* m, uint64_t now_ms, Ask&& ask) {
  if (e.pending.size() >= opt_.max_pending) {
    drop_unresolved(e.pending.front());
    e.pending.pop_front();
  }
  e.pending.push_back(m);
  if (e.tries == 0) {
    ask();
    e.tries = 1;
    e.last_request_ms = now_ms;
  }
}

void NeighborTable::resolve(rte_mbuf* m, uint64_t now_ms) {
  const dp::PacketMeta* pm = dp::meta(m);
  const uint8_t port = pm->out_port;
  auto it = entries_.find(key(port, pm->next_hop));
  if (it == entries_.end()) {
    if (entries_.size() >= opt_.capacity) {
      drop_unresolved(m);
      return;
    }
    it = entries_.emplace(key(port, pm->next_hop), Entry{}).first;
  }
  Entry& e = it->second;
  if (e.resolved) {  // published after the worker looked
    send_with_l2(port, m, e.mac);
    return;
  }
  hold(e, m, now_ms, [&] { send_request(port, pm->next_hop, nullptr); });
}

// Counted twice on purpose: under the per-reason drop counter every drop has (control's row,
// by the packet's input port) and in the neighbor table's own total.
void NeighborTable::drop_unresolved(rte_mbuf* m) {
  ++unresolved_drops_;
  ctx_.control_counters.drop(dp::meta(m)->in_port, dp::DropReason::kNeighborUnresolved);
  rte_pktmbuf_free(m);
}

void NeighborTable::output(uint8_t port, rte_mbuf* m, uint64_t now_ms) {
  const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
  dp::PacketMeta* pm = dp::meta(m);
  pm->out_port = port;
  if ((ip->version_ihl >> 4) == 6) {
    resolve6(m, now_ms);
    return;
  }
  pm->next_hop = ctx_.ports[port].next_hop(ip->dst_addr);
  auto it = entries_.find(key(port, pm->next_hop));
  if (it != entries_.end() && it->second.resolved)
    send_with_l2(port, m, it->second.mac);
  else
    resolve(m, now_ms);
}

void NeighborTable::tick(uint64_t now_ms) {
  tick6(now_ms);
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    const uint8_t port = static_cast<uint8_t>(it->first >> 32);
    const uint32_t ip_be = static_cast<uint32_t>(it->first);
    if (!e.resolved && e.tries > 0 && now_ms - e.last_request_ms >= opt_.retry_ms) {
      if (e.tries >= opt_.retries) {
        for (rte_mbuf* m : e.pending) drop_unresolved(m);
        it = entries_.erase(it);
        continue;
      }
      send_request(port, ip_be, nullptr);
      ++e.tries;
      e.last_request_ms = now_ms;
    } else if (e.resolved && !e.permanent && now_ms - e.updated_ms >= opt_.reachable_s * 1000ull &&
               now_ms - e.last_request_ms >= opt_.retry_ms) {
      // Refresh by unicast; the entry stays usable meanwhile (the kernel's STALE state).
      send_request(port, ip_be, &e.mac);
      e.last_request_ms = now_ms;
    }
    ++it;
  }
}

void NeighborTable::send_request(uint8_t port, uint32_t ip_be, const rte_ether_addr* unicast) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  const dp::PortInfo& info = ctx_.ports[port];
  auto* eth = reinterpret_cast<rte_ether_hdr*>(
      rte_pktmbuf_append(m, sizeof(rte_ether_hdr) + sizeof(rte_arp_hdr)));
  auto* arp = reinterpret_cast<rte_arp_hdr*>(eth + 1);
  if (unicast)
    eth->dst_addr = *unicast;
  else
    memset(&eth->dst_addr, 0xff, sizeof(eth->dst_addr));
  eth->src_addr = info.mac;
  eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_ARP);
  arp->arp_hardware = RTE_BE16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = RTE_BE16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = sizeof(uint32_t);
  arp->arp_opcode = RTE_BE16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = info.mac;
  arp->arp_data.arp_sip = info.addrs[0];
  memset(&arp->arp_data.arp_tha, 0, sizeof(arp->arp_data.arp_tha));
  arp->arp_data.arp_tip = ip_be;
  ++requests_sent_;
  dp::meta(m)->in_port = port;
  transmit(port, m);
}

void NeighborTable::send_with_l2(uint8_t port, rte_mbuf* m, const rte_ether_addr& dst,
                                 uint16_t ether_type) {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(rte_pktmbuf_prepend(m, sizeof(rte_ether_hdr)));
  if (eth == nullptr) {
    rte_pktmbuf_free(m);
    return;
  }
  eth->dst_addr = dst;
  eth->src_addr = ctx_.ports[port].mac;
  eth->ether_type = rte_cpu_to_be_16(ether_type);
  transmit(port, m);
}

void NeighborTable::transmit(uint8_t port, rte_mbuf* m) {
  const dp::PortInfo& info = ctx_.ports[port];
  const uint32_t len = rte_pktmbuf_pkt_len(m);
  if (rte_eth_tx_burst(info.port_id, info.tx_queue_control, &m, 1) == 1) {
    ctx_.control_counters.port[port].tx_packets.add();
    ctx_.control_counters.port[port].tx_bytes.add(len);
  } else {
    ctx_.control_counters.drop(port, dp::DropReason::kTxQueueFull);
    rte_pktmbuf_free(m);
  }
}

NeighborTable::Key6 NeighborTable::key6(uint8_t port, const uint8_t ip6[16]) {
  Key6 k{port, {}};
  std::memcpy(k.second.data(), ip6, 16);
  return k;
}

void NeighborTable::learn6(uint8_t port, const uint8_t ip6[16], const uint8_t mac[6],
                           uint64_t now_ms) {
  if (port >= ctx_.n_ports || !ctx_.ports[port].on_link6(ip6) || ctx_.ports[port].owns6(ip6))
    return;
  auto it = entries6_.find(key6(port, ip6));
  if (it == entries6_.end()) {
    if (entries6_.size() >= opt_.capacity) return;
    it = entries6_.emplace(key6(port, ip6), Entry6{}).first;
  }
  Entry6& e = it->second;
  std::memcpy(e.mac.addr_bytes, mac, 6);
  e.resolved = true;
  e.updated_ms = now_ms;
  e.tries = 0;
  publish6(it->first, e);
  while (!e.pending.empty()) {
    send_with_l2(port, e.pending.front(), e.mac, RTE_ETHER_TYPE_IPV6);
    e.pending.pop_front();
  }
}

// Workers read the newest MAC of every neighbor that has answered; a stale one stays usable
// while it is asked again (RFC 4861 7.3.2), so only forgetting the entry unpublishes it.
void NeighborTable::publish6(const Key6& k, Entry6& e) {
  if (ctx_.neighbors6 == nullptr) return;
  dp::Neighbor6Key hk{};
  std::memcpy(hk.ip, k.second.data(), 16);
  hk.port = k.first;
  const uint64_t word = dp::neighbor_word(e.mac);
  if (rte_hash_add_key_data(ctx_.neighbors6, &hk,
                            reinterpret_cast<void*>(static_cast<uintptr_t>(word))) == 0)
    e.published = true;
}

void NeighborTable::unpublish6(const Key6& k, Entry6& e) {
  for (rte_mbuf* m : e.pending) drop_unresolved(m);
  e.pending.clear();
  if (!e.published || ctx_.neighbors6 == nullptr) return;
  dp::Neighbor6Key hk{};
  std::memcpy(hk.ip, k.second.data(), 16);
  hk.port = k.first;
  rte_hash_del_key(ctx_.neighbors6, &hk);  // freed after a grace period (RCU defer queue)
  e.published = false;
}

void NeighborTable::resolve6(rte_mbuf* m, uint64_t now_ms) {
  const uint8_t port = dp::meta(m)->out_port;
  if (port >= ctx_.n_ports) {
    drop_unresolved(m);
    return;
  }
  const dp::PortInfo& info = ctx_.ports[port];
  const uint8_t* hop = rte_pktmbuf_mtod(m, const rte_ipv6_hdr*)->dst_addr;
  if (!info.on_link6(hop)) hop = info.gateway6;
  if (!info.on_link6(hop)) {  // no gateway: the worker checked, but stay safe
    drop_unresolved(m);
    return;
  }
  auto it = entries6_.find(key6(port, hop));
  if (it == entries6_.end()) {
    if (entries6_.size() >= opt_.capacity) {
      drop_unresolved(m);
      return;
    }
    it = entries6_.emplace(key6(port, hop), Entry6{}).first;
  }
  Entry6& e = it->second;
  if (e.resolved) {  // published after the worker looked
    send_with_l2(port, m, e.mac, RTE_ETHER_TYPE_IPV6);
    return;
  }
  hold(e, m, now_ms, [&] { send_solicitation(port, hop, nullptr); });
}

void NeighborTable::want6(uint8_t port, const uint8_t ip6[16], uint64_t now_ms) {
  if (port >= ctx_.n_ports || !ctx_.ports[port].on_link6(ip6)) return;
  Entry6& e = entries6_[key6(port, ip6)];
  e.wanted = true;
  if (e.resolved) return;
  send_solicitation(port, ip6, nullptr);
  e.tries = 1;
  e.last_request_ms = now_ms;
}

const rte_ether_addr* NeighborTable::lookup6(uint8_t port, const uint8_t ip6[16]) const {
  auto it = entries6_.find(key6(port, ip6));
  return it != entries6_.end() && it->second.resolved ? &it->second.mac : nullptr;
}

void NeighborTable::tick6(uint64_t now_ms) {
  for (auto it = entries6_.begin(); it != entries6_.end();) {
    Entry6& e = it->second;
    const uint8_t port = it->first.first;
    const uint8_t* ip6 = it->first.second.data();
    if (now_ms - e.last_request_ms < opt_.retry_ms) {
      ++it;
      continue;
    }
    if (!e.resolved) {
      // A wanted neighbor is asked for until it answers, once per retry_ms; the packets
      // waiting for it are dropped after `retries`, and a next hop nobody wants is forgotten.
      if (e.tries >= opt_.retries) {
        for (rte_mbuf* m : e.pending) drop_unresolved(m);
        e.pending.clear();
        if (!e.wanted) {
          unpublish6(it->first, e);
          it = entries6_.erase(it);
          continue;
        }
      }
      send_solicitation(port, ip6, nullptr);
      e.last_request_ms = now_ms;
      ++e.tries;
    } else if (now_ms - e.updated_ms >= opt_.reachable_s * 1000ull) {
      // Unanswered refreshes: a learned neighbor is forgotten, a wanted one asked for again by
      // multicast (it may have a new MAC); meanwhile it stays usable (STALE, RFC 4861 7.3.2).
      if (e.tries >= opt_.retries) {
        if (!e.wanted) {
          unpublish6(it->first, e);
          it = entries6_.erase(it);
          continue;
        }
        e.resolved = false;
        e.tries = 0;
        send_solicitation(port, ip6, nullptr);
      } else {
        send_solicitation(port, ip6, &e.mac);
      }
      ++e.tries;
      e.last_request_ms = now_ms;
    }
    ++it;
  }
}

// A neighbor solicitation (RFC 4861 4.3) from the port's address on the target's link (the
// link-local one for link-local targets), with our MAC as source link-layer address option.
void NeighborTable::send_solicitation(uint8_t port, const uint8_t ip6[16],
                                      const rte_ether_addr* unicast) {
  const dp::PortInfo& info = ctx_.ports[port];
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return;
  constexpr uint32_t kNsLen = 24 + 8;
  auto* eth = reinterpret_cast<rte_ether_hdr*>(
      rte_pktmbuf_append(m, sizeof(rte_ether_hdr) + sizeof(rte_ipv6_hdr) + kNsLen));
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(eth + 1);
  auto* ns = reinterpret_cast<uint8_t*>(ip + 1);
  const uint8_t* src = ipv6_link_local(ip6) || info.n_addrs6 < 2 ? info.addrs6[0] : info.addrs6[1];
  uint8_t dst[16];
  ipv6_solicited_node(ip6, dst);
  if (unicast) {
    std::memcpy(dst, ip6, 16);
    eth->dst_addr = *unicast;
  } else {
    eth->dst_addr = rte_ether_addr{{0x33, 0x33, 0xff, ip6[13], ip6[14], ip6[15]}};
  }
  eth->src_addr = info.mac;
  eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
  ip->vtc_flow = RTE_BE32(6u << 28);
  ip->payload_len = rte_cpu_to_be_16(kNsLen);
  ip->proto = 58;
  ip->hop_limits = 255;
  std::memcpy(ip->src_addr, src, 16);
  std::memcpy(ip->dst_addr, dst, 16);
  std::memset(ns, 0, kNsLen);
  ns[0] = 135;
  std::memcpy(ns + 8, ip6, 16);
  ns[24] = 1;  // source link-layer address
  ns[25] = 1;
  std::memcpy(ns + 26, info.mac.addr_bytes, 6);
  const uint16_t c = dp::icmp6_checksum(ip, ns, kNsLen);
  std::memcpy(ns + 2, &c, 2);
  ++solicitations_sent_;
  dp::meta(m)->in_port = port;
  transmit(port, m);
}

}  // namespace exitgw
