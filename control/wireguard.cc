// WireGuard control: handshakes, keypair lifecycle, timers and peer-table publication.
#include "control/wireguard.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <set>
#include <thread>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_lpm.h>
#include <rte_lpm6.h>
#include <rte_malloc.h>
#include <rte_pause.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_udp.h>

#include "common/ipv4_header.h"
#include "control/log.h"
#include "control/net_parse.h"
#include "control/wg/crypto.h"
#include "dataplane/checksum.h"
#include "dataplane/events.h"
#include "dataplane/packet_meta.h"

namespace exitgw {

namespace {

// A configured endpoint as the handshake code holds endpoints.
wg::Endpoint configured_endpoint(const PeerConfig& pc) {
  if (pc.endpoint_is_ipv6) return wg::Endpoint::ipv6(pc.endpoint_ip6, pc.endpoint_port);
  const uint32_t be = rte_cpu_to_be_32(pc.endpoint_ip);
  std::array<uint8_t, 4> a;
  std::memcpy(a.data(), &be, 4);
  return wg::Endpoint::ipv4(a, pc.endpoint_port);
}

constexpr uint32_t kNoSlot = UINT32_MAX;
constexpr uint64_t kNs = 1'000'000'000;
// A command a worker has left undone for this many ticks (2 s) no longer holds routes back.
constexpr uint64_t kCommandOverdueTicks = 20;

uint64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t route_key(const Ipv4Prefix& p) {
  return uint64_t{p.addr & p.mask()} << 8 | p.len;
}

// The worker command removing the NAT state of an allowed prefix (route_key() for IPv4), and
// back: the two families' removals are one mechanism keyed by the prefix.
dp::WorkerCommand removal_command(const std::variant<uint64_t, Ipv6Prefix>& route) {
  dp::WorkerCommand c{};
  if (const uint64_t* v4 = std::get_if<uint64_t>(&route)) {
    c.type = dp::WorkerCommandType::kNatRemoveSubscribers;
    c.len = static_cast<uint8_t>(*v4 & 0xff);
    c.prefix = static_cast<uint32_t>(*v4 >> 8);
  } else {
    const Ipv6Prefix& p = std::get<Ipv6Prefix>(route);
    c.type = dp::WorkerCommandType::kNat66RemoveSubscribers;
    c.len = p.len;
    std::memcpy(c.prefix6, p.addr.data(), sizeof(c.prefix6));
  }
  return c;
}

std::variant<uint64_t, Ipv6Prefix> route_of(const dp::WorkerCommand& c) {
  if (c.type == dp::WorkerCommandType::kNatRemoveSubscribers)
    return uint64_t{c.prefix} << 8 | c.len;
  Ipv6Prefix p;
  std::memcpy(p.addr.data(), c.prefix6, sizeof(c.prefix6));
  p.len = c.len;
  return p;
}

// A new IPv6 allowed-IPs table holding `routes` (next hop: the peer slot), or why not.
Result<rte_lpm6*> build_allowed_ips6(const std::map<Ipv6Prefix, uint32_t>& routes) {
  // rte_lpm6 resolves the first 24 bits in its tbl24 and each further byte in a tbl8 group: a
  // prefix covering bytes 0..n-1 needs the groups for bytes 3..n-1 on its path, each shared by
  // every prefix with the same leading bytes. Counting the distinct paths gives what it needs.
  std::set<std::pair<unsigned, std::array<uint8_t, 16>>> groups;
  for (const auto& [prefix, slot] : routes) {
    std::array<uint8_t, 16> path{};
    const unsigned bytes = (prefix.len + 7u) / 8u;
    for (unsigned i = 0; i + 1 < bytes; ++i) {
      path[i] = prefix.addr[i];
      if (i >= 2) groups.emplace(i + 1, path);  // the group for byte i + 1, below bytes 0..i
    }
  }
  rte_lpm6_config config{};
  config.max_rules = static_cast<uint32_t>(routes.size() + routes.size() / 4 + 16);
  config.number_tbl8s = static_cast<uint32_t>(groups.size() + groups.size() / 4 + 16);
  // Names are process-wide and a replaced table lives on for a grace period: each is new.
  static std::atomic<uint32_t> generation{0};
  const std::string name = "exitgw_aip6_" + std::to_string(generation++);
  rte_lpm6* table = rte_lpm6_create(name.c_str(), static_cast<int>(rte_socket_id()), &config);
  if (table == nullptr)
    return make_error("cannot create an IPv6 allowed-IPs table for " +
                      std::to_string(routes.size()) + " prefixes: " + rte_strerror(rte_errno));
  for (const auto& [prefix, slot] : routes) {
    if (int rc = rte_lpm6_add(table, prefix.addr.data(), prefix.len, slot); rc != 0) {
      rte_lpm6_free(table);
      return make_error("cannot add allowed IP " + format_allowed_ip(prefix) +
                        " to a new IPv6 allowed-IPs table: " + rte_strerror(-rc));
    }
  }
  return table;
}

}  // namespace

Status create_wireguard_tables(dp::DataplaneContext& ctx, uint32_t max_peers) {
  ctx.max_peers = max_peers;
  ctx.peers = static_cast<PeerRuntime*>(
      rte_zmalloc("exitgw_peers", sizeof(PeerRuntime) * max_peers, RTE_CACHE_LINE_SIZE));
  if (ctx.peers == nullptr) return make_error("cannot allocate the peer table (DPDK memory)");
  for (uint32_t i = 0; i < max_peers; ++i) new (&ctx.peers[i]) PeerRuntime();
  ctx.endpoints6 = static_cast<PeerEndpoint6*>(rte_zmalloc(
      "exitgw_peer_endpoints6", sizeof(PeerEndpoint6) * max_peers, RTE_CACHE_LINE_SIZE));
  if (ctx.endpoints6 == nullptr)
    return make_error("cannot allocate the peers' IPv6 endpoint table (DPDK memory)");
  for (uint32_t i = 0; i < max_peers; ++i) new (&ctx.endpoints6[i]) PeerEndpoint6();
  const uint32_t rows = std::max(ctx.n_workers, 1u);
  void* counters = rte_zmalloc("exitgw_peer_counters", PeerCounterTable::bytes_for(rows, max_peers),
                               RTE_CACHE_LINE_SIZE);
  if (counters == nullptr)
    return make_error("cannot allocate the per-worker peer counters (DPDK memory)");
  ctx.peer_counters.init(counters, rows, max_peers);

  rte_hash_parameters hp{};
  hp.name = "exitgw_keypairs";
  hp.entries = std::max<uint32_t>(max_peers * 4, 64);
  hp.key_len = sizeof(uint32_t);
  hp.socket_id = static_cast<int>(rte_socket_id());
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  ctx.keypairs = rte_hash_create(&hp);
  if (ctx.keypairs == nullptr)
    return make_error(std::string("cannot create the keypair table: ") + rte_strerror(rte_errno));
  rte_hash_rcu_config hrcu{};
  hrcu.v = ctx.rcu;
  hrcu.mode = RTE_HASH_QSBR_MODE_DQ;
  if (rte_hash_rcu_qsbr_add(ctx.keypairs, &hrcu) != 0)
    return make_error("cannot attach RCU to the keypair table");

  rte_lpm_config lc{};
  lc.max_rules = max_peers * 4 + 64;
  lc.number_tbl8s = max_peers + 256;  // a /32 per /24 needs its own tbl8 group
  ctx.allowed_ips = rte_lpm_create("exitgw_allowed_ips", static_cast<int>(rte_socket_id()), &lc);
  if (ctx.allowed_ips == nullptr)
    return make_error(std::string("cannot create the allowed-IPs table: ") +
                      rte_strerror(rte_errno));
  rte_lpm_rcu_config lrcu{};
  lrcu.v = ctx.rcu;
  lrcu.mode = RTE_LPM_QSBR_MODE_DQ;
  if (rte_lpm_rcu_qsbr_add(ctx.allowed_ips, &lrcu) != 0)
    return make_error("cannot attach RCU to the allowed-IPs table");

  return Ok{};
}

void destroy_wireguard_tables(dp::DataplaneContext& ctx) {
  if (ctx.keypairs) rte_hash_free(ctx.keypairs);
  if (ctx.allowed_ips) rte_lpm_free(ctx.allowed_ips);
  rte_free(ctx.peers);
  rte_free(ctx.endpoints6);
  rte_free(ctx.peer_counters.counters);
  ctx.peer_counters = PeerCounterTable{};
  ctx.keypairs = nullptr;
  ctx.allowed_ips = nullptr;
  ctx.peers = nullptr;
  ctx.endpoints6 = nullptr;
}

Keypair* publish_keypair(dp::DataplaneContext& ctx, const wg::SessionKeys& keys, uint32_t slot,
                         unsigned rekey_after_s, unsigned reject_after_s) {
  void* mem = rte_zmalloc("exitgw_keypair", sizeof(Keypair), RTE_CACHE_LINE_SIZE);
  if (mem == nullptr) return nullptr;
  auto* kp = new (mem) Keypair();
  std::memcpy(kp->send_key, keys.send_key.data(), wg::kKeyLen);
  std::memcpy(kp->recv_key, keys.recv_key.data(), wg::kKeyLen);
  kp->local_index = keys.local_index;
  kp->remote_index = keys.remote_index;
  kp->peer_slot = slot;
  kp->is_initiator = keys.is_initiator;
  const uint64_t hz = rte_get_tsc_hz();
  kp->created_tsc = rte_rdtsc();
  kp->reject_after_tsc = kp->created_tsc + hz * reject_after_s;
  kp->rekey_after_tsc = kp->created_tsc + hz * rekey_after_s;
  if (rte_hash_add_key_data(ctx.keypairs, &kp->local_index, kp) != 0) {
    wg::secure_zero(kp, sizeof(Keypair));
    rte_free(kp);
    return nullptr;
  }
  return kp;
}

WireGuard::WireGuard(dp::DataplaneContext& ctx, NeighborTable& neighbors, rte_mempool* pool,
                     WireGuardOptions opt)
    : ctx_(ctx),
      neighbors_(neighbors),
      pool_(pool),
      opt_(std::move(opt)),
      indices_(size_t{opt_.max_peers} * 4 + 64),
      hz_(rte_get_tsc_hz()) {}

WireGuard::~WireGuard() {
  for (auto& [key, p] : peers_) retire_all(*p);
  ctx_.allowed_ips6.store(nullptr, std::memory_order_release);
  if (ctx_.rcu) rte_rcu_qsbr_synchronize(ctx_.rcu, RTE_QSBR_THRID_INVALID);
  for (Deferred& d : deferred_) {
    if (d.keypair) {
      wg::secure_zero(d.keypair, sizeof(Keypair));
      rte_free(d.keypair);
    }
    if (d.table6) rte_lpm6_free(d.table6);
  }
  if (allowed_ips6_) rte_lpm6_free(allowed_ips6_);
  destroy_wireguard_tables(ctx_);
}

uint64_t WireGuard::tsc_of_seconds(double s) const {
  return static_cast<uint64_t>(s * hz_);
}

Status WireGuard::init() {
  if (Status s = wg::crypto_init(); !s) return s;
  if (opt_.max_peers == 0 || opt_.max_peers > (1u << 24) - 1)
    return make_error("--max_peers must be 1..16777215");
  if (opt_.reject_after_s <= opt_.rekey_after_s)
    return make_error("--wg_reject_after_time must be larger than --wg_rekey_after_time");
  if (opt_.private_key_file.empty())
    return make_error(
        "--private_key_file is required (create one: umask 077; wg genkey > "
        "/etc/exitgw/private.key)");
  auto key = load_private_key(opt_.private_key_file);
  if (!key) return make_error("--private_key_file: " + key.error());
  auto identity = wg::LocalIdentity::from_private_key(*key);
  wg::secure_zero(*key);
  if (!identity) return make_error("--private_key_file: " + identity.error());
  identity_ = std::make_unique<wg::LocalIdentity>(std::move(*identity));
  opt_.self.public_key = identity_->public_key;
  cookies_ = std::make_unique<wg::CookieChecker>(identity_->mac1_key, identity_->cookie_key);

  if (!opt_.disco_private_key_file.empty()) {
    auto disco_key = load_private_key(opt_.disco_private_key_file);
    if (!disco_key) return make_error("--disco_private_key_file: " + disco_key.error());
    auto responder = disco::Responder::create(*disco_key);
    wg::secure_zero(*disco_key);
    if (!responder) return make_error("--disco_private_key_file: " + responder.error());
    disco_.emplace(std::move(*responder));
    log_info("disco: answering pings from peers' disco keys, public key " +
             disco_public_key_base64());
  }

  ctx_.tunnel_mtu = opt_.tunnel_mtu;
  if (Status s = create_wireguard_tables(ctx_, opt_.max_peers); !s) return s;
  by_slot_.assign(opt_.max_peers, nullptr);
  for (uint32_t i = opt_.max_peers; i > 0; --i) free_slots_.push_back(i - 1);

  if (!opt_.peers_file.empty()) {
    if (Status s = watch_.watch(opt_.peers_file); !s)
      return make_error("--peers_file: " + s.error());
    if (Status s = load_peers_file(); !s) return s;
  }
  log_info("wireguard: public key " + public_key_base64() + ", " + std::to_string(peers_.size()) +
           " peer(s), listening on UDP " + std::to_string(rte_be_to_cpu_16(ctx_.wg_port_be)));
  return Ok{};
}

std::string WireGuard::public_key_base64() const {
  return identity_ ? wg::key_to_base64(identity_->public_key) : "";
}

std::string WireGuard::disco_public_key_base64() const {
  return disco_ ? wg::key_to_base64(disco_->public_key()) : "";
}

Status WireGuard::load_peers_file() {
  auto text = read_bounded_file(opt_.peers_file, "peers file", kPeersFileMaxBytes);
  if (!text) return make_error("--peers_file: " + text.error());
  auto peers = parse_peers_reload(*text, opt_.peers_file, source_peers("file").size());
  if (!peers) return make_error(peers.error());
  return set_source_peers("file", std::move(*peers));
}

Status WireGuard::set_source_peers(const std::string& source, std::vector<PeerConfig> peers) {
  // The running set is the union of every source's peers; apply_peers rejects a key or an
  // allowed IP that two sources both claim, so one source cannot silently take over another's.
  std::vector<PeerConfig> all;
  for (const auto& [name, list] : sources_)
    if (name != source) all.insert(all.end(), list.begin(), list.end());
  all.insert(all.end(), peers.begin(), peers.end());
  if (Status s = apply_peers(all); !s) return s;
  sources_[source] = std::move(peers);
  return Ok{};
}

const std::vector<PeerConfig>& WireGuard::source_peers(const std::string& source) const {
  static const std::vector<PeerConfig> kNone;
  auto it = sources_.find(source);
  return it == sources_.end() ? kNone : it->second;
}

WireGuard::Peer* WireGuard::peer_by_slot(uint32_t slot) {
  return slot < by_slot_.size() ? by_slot_[slot] : nullptr;
}

Status WireGuard::apply_peers(const std::vector<PeerConfig>& wanted) {
  // Validate everything first: capacity, keys usable for DH, prefixes unique.
  std::map<wg::Key, const PeerConfig*> by_key;
  std::unordered_map<uint64_t, const PeerConfig*> prefixes;
  std::set<Ipv6Prefix> prefixes6;
  for (const PeerConfig& pc : wanted) {
    if (!by_key.emplace(pc.public_key, &pc).second)
      return make_error("peer " + wg::key_to_base64(pc.public_key) + " appears twice");
    // Whatever the source (file, admin, etcd, tailnet): a peer that is the gateway itself.
    if (Status s = check_not_self(pc, opt_.self); !s)
      return make_error("peer " + wg::key_to_base64(pc.public_key) + ": " + s.error());
    for (const Ipv4Prefix& p : pc.allowed_ips)
      if (!prefixes.emplace(route_key(p), &pc).second)
        return make_error("allowed IP " + format_ipv4(p.addr) + "/" + std::to_string(p.len) +
                          " is given to two peers");
    for (const Ipv6Prefix& p : pc.allowed_ips6)
      if (!prefixes6.emplace(p).second)
        return make_error("allowed IP " + format_allowed_ip(p) + " is given to two peers");
  }
  // The allowed-IPs table is sized at start; refuse what it could not hold rather than half
  // install it (each prefix longer than /24 may need its own tbl8 group).
  size_t long_prefixes = 0;
  for (const PeerConfig& pc : wanted)
    for (const Ipv4Prefix& p : pc.allowed_ips) long_prefixes += p.len > 24;
  if (prefixes.size() > size_t{opt_.max_peers} * 4 + 64 || long_prefixes > opt_.max_peers + 256)
    return make_error("the peers file has " + std::to_string(prefixes.size()) +
                      " allowed IPs; --max_peers=" + std::to_string(opt_.max_peers) +
                      " holds at most " + std::to_string(opt_.max_peers * 4 + 64) + " (and " +
                      std::to_string(opt_.max_peers + 256) + " longer than /24)");
  if (prefixes6.size() > size_t{opt_.max_peers} * 4 + 64)
    return make_error("the peers have " + std::to_string(prefixes6.size()) +
                      " IPv6 allowed IPs; --max_peers=" + std::to_string(opt_.max_peers) +
                      " holds at most " + std::to_string(opt_.max_peers * 4 + 64));
  size_t added = 0;
  for (const auto& [key, pc] : by_key)
    if (!peers_.count(key)) ++added;
  size_t removed = 0;
  for (const auto& [key, p] : peers_)
    if (!by_key.count(key)) ++removed;
  if (peers_.size() - removed + added > opt_.max_peers)
    return make_error("the peers file has more peers than --max_peers=" +
                      std::to_string(opt_.max_peers));
  std::map<wg::Key, std::unique_ptr<wg::PeerCrypto>> crypto;
  for (const auto& [key, pc] : by_key) {
    auto it = peers_.find(key);
    if (it != peers_.end() && it->second->config.preshared_key == pc->preshared_key) continue;
    auto c = wg::PeerCrypto::create(*identity_, pc->public_key, pc->preshared_key);
    if (!c)
      return make_error("peer " + wg::key_to_base64(key) + " (line " + std::to_string(pc->line) +
                        "): " + c.error());
    crypto[key] = std::make_unique<wg::PeerCrypto>(std::move(*c));
  }
  // A change of the IPv6 routes builds a new table: first free the replaced ones a grace period
  // has released (this may free peer slots too, so it comes before slots are planned).
  if (!prefixes6.empty() || !route6_slot_.empty()) reclaim_before_new_table6();
  // The slot each peer will have: its own, or for a new peer a free one, taken below in this
  // order. A removed peer's slot is free again only after a grace period.
  std::map<wg::Key, uint32_t> slot_of;
  size_t free_left = free_slots_.size();
  for (const auto& [key, pc] : by_key) {
    if (auto it = peers_.find(key); it != peers_.end()) {
      slot_of[key] = it->second->slot;
    } else if (free_left == 0) {
      return make_error(
          "no free peer slot yet: the slots of peers removed a moment ago are "
          "reused once every worker has let them go; retry shortly");
    } else {
      slot_of[key] = free_slots_[--free_left];
    }
  }
  // The IPv6 routes are one table built whole, last of all the checks: if it cannot be built
  // nothing of the update applies. Routes whose NAT66 removal still waits are left out.
  std::map<Ipv6Prefix, uint32_t> next_routes6;
  for (const auto& [key, pc] : by_key)
    for (const Ipv6Prefix& p : pc->allowed_ips6) next_routes6[p] = slot_of.at(key);
  const bool routes6_change = next_routes6 != route6_slot_;
  rte_lpm6* table6 = nullptr;
  std::map<Ipv6Prefix, uint32_t> built6;
  if (routes6_change) built6 = routes_to_publish6(next_routes6);
  if (!built6.empty()) {
    auto built = build_allowed_ips6(built6);
    if (!built) return make_error(built.error());
    table6 = *built;
  }
  // Published before any peer is removed, so the grace period after which a removed peer's slot
  // is reused starts after no worker can find that slot in the IPv6 table any more. A new
  // peer's slot may be routed a moment before it is set up below: it has no keypair yet, so
  // nothing is sent to or accepted from it until then.
  if (routes6_change) {
    routes6_stale_ = false;  // the new table has every route not held
    // A prefix that left its peer takes the NAT66 state its addresses held along; a route still
    // held for the peer it left is void.
    for (const auto& [p, slot] : route6_slot_) {
      auto next = next_routes6.find(p);
      if (next != next_routes6.end() && next->second == slot) continue;
      held_routes_.erase(p);
      remove_nat_state(p);
    }
    // As for IPv4 (install_route): a prefix whose removal some worker has not carried out yet
    // is held out of the table until every worker has (command_done). The table is not
    // published yet, so it is edited in place; one built without a route whose removal was
    // done meanwhile is replaced at the next tick.
    for (const auto& [p, slot] : next_routes6) {
      const bool in_table = built6.contains(p);
      if (removal_waiting_.contains(p)) {
        held_routes_[p] = slot;
        if (in_table) rte_lpm6_delete(table6, p.addr.data(), p.len);
      } else if (!in_table) {
        routes6_stale_ = true;
      }
    }
    publish_table6(table6);
    route6_slot_ = std::move(next_routes6);
    stats_.allowed_ips6_routes = route6_slot_.size();
  }

  // Apply: removals first (frees slots), then additions and changes. A bulk load logs the
  // first few peers by name and the rest as a count.
  constexpr size_t kLogPeersPerApply = 16;
  size_t logged = 0;
  for (auto it = peers_.begin(); it != peers_.end();) {
    if (by_key.count(it->first)) {
      ++it;
      continue;
    }
    if (++logged <= kLogPeersPerApply)
      log_info("wireguard: peer " + wg::key_to_base64(it->first) + " removed");
    remove_peer(*it->second);
    it = peers_.erase(it);
  }
  for (const auto& [key, pc] : by_key) {
    auto it = peers_.find(key);
    Peer* p;
    if (it == peers_.end()) {
      auto np = std::make_unique<Peer>();
      np->slot = slot_of.at(key);
      p = np.get();
      by_slot_[p->slot] = p;
      peers_.emplace(key, std::move(np));
      PeerRuntime& rt = ctx_.peers[p->slot];
      rt.endpoint.store(0);
      if (pc->has_endpoint) set_endpoint(p->slot, configured_endpoint(*pc));
      rt.active.store(1, std::memory_order_release);
      if (++logged <= kLogPeersPerApply)
        log_info("wireguard: peer " + wg::key_to_base64(key) + " added (slot " +
                 std::to_string(p->slot) + ")");
    } else {
      p = it->second.get();
      if (pc->has_endpoint && !(ctx_.peers[p->slot].endpoint.load() & kEndpointValid))
        set_endpoint(p->slot, configured_endpoint(*pc));
    }
    if (auto c = crypto.find(key); c != crypto.end()) {
      // A new preshared key changes every future handshake; running sessions stay valid.
      if (p->crypto) c->second->last_timestamp = p->crypto->last_timestamp;
      p->crypto = std::move(c->second);
    }
    p->config = *pc;
  }

  free_slots_.resize(free_left);
  if (logged > kLogPeersPerApply)
    log_info("wireguard: and " + std::to_string(logged - kLogPeersPerApply) +
             " more peers added or removed");

  std::unordered_map<uint64_t, uint32_t> next_routes;
  for (const auto& [key, pc] : by_key) {
    const uint32_t slot = peers_.at(key)->slot;
    for (const Ipv4Prefix& p : pc->allowed_ips) next_routes[route_key(p)] = slot;
  }
  // A prefix that left its peer takes the NAT state its addresses held along. The removals go
  // first, so a new owner's route can wait for one its workers have not done (install_route);
  // a route still held for the peer it left is void.
  for (const auto& [k, slot] : route_slot_) {
    auto next = next_routes.find(k);
    if (next != next_routes.end() && next->second == slot) continue;
    held_routes_.erase(k);
    remove_nat_state(k);
  }
  // Routes: add or re-point every wanted prefix, then delete the ones no longer wanted, so a
  // prefix that moves between peers is never absent (unless its NAT removal waits).
  for (const auto& [k, slot] : next_routes) {
    auto old = route_slot_.find(k);
    if (old == route_slot_.end() || old->second != slot) install_route(k, slot);
  }
  for (const auto& [k, slot] : route_slot_) {
    if (next_routes.contains(k)) continue;
    rte_lpm_delete(ctx_.allowed_ips, static_cast<uint32_t>(k >> 8), static_cast<uint8_t>(k));
  }
  route_slot_ = std::move(next_routes);
  // The old routes are gone from both tables: the removals may be carried out now.
  send_worker_commands();
  if (disco_) {
    std::vector<disco::DiscoPeer> with_disco;
    for (const auto& [key, p] : peers_)
      if (p->config.has_disco_key) with_disco.push_back({p->config.disco_key, key});
    for (const std::string& note : disco_->set_peers(with_disco)) log_error("disco: " + note);
  }
  stats_.active_peers = peers_.size();
  stats_.generation++;
  return Ok{};
}

std::map<Ipv6Prefix, uint32_t> WireGuard::routes_to_publish6(
    const std::map<Ipv6Prefix, uint32_t>& routes) const {
  std::map<Ipv6Prefix, uint32_t> out;
  for (const auto& [p, slot] : routes)
    if (!removal_waiting_.contains(p)) out.emplace_hint(out.end(), p, slot);
  return out;
}

void WireGuard::publish_table6(rte_lpm6* table) {
  ctx_.allowed_ips6.store(table, std::memory_order_release);
  if (allowed_ips6_)
    deferred_.push_back(Deferred{rte_rcu_qsbr_start(ctx_.rcu), nullptr, kNoSlot, allowed_ips6_});
  allowed_ips6_ = table;
}

void WireGuard::republish_routes6() {
  reclaim_before_new_table6();
  const std::map<Ipv6Prefix, uint32_t> routes = routes_to_publish6(route6_slot_);
  rte_lpm6* table = nullptr;
  if (!routes.empty()) {
    auto built = build_allowed_ips6(routes);
    if (!built) {
      if (!republish_failing_)  // said once per failing streak, not every tick
        log_error("wireguard: IPv6 routes whose NAT66 removal was delivered not published yet: " +
                  built.error() + " (retried every tick)");
      republish_failing_ = true;
      return;
    }
    table = *built;
  }
  publish_table6(table);
  routes6_stale_ = false;
  if (republish_failing_) log_info("wireguard: the held IPv6 routes are published now");
  republish_failing_ = false;
}

void WireGuard::reclaim_before_new_table6() {
  reclaim();
  const auto waiting = std::find_if(deferred_.rbegin(), deferred_.rend(),
                                    [](const Deferred& d) { return d.table6 != nullptr; });
  if (waiting == deferred_.rend()) return;
  // Workers pass a quiescent state every burst (or are offline while idle): a grace period is
  // normally microseconds. A stuck worker costs this wait, never a hang.
  constexpr auto kMaxWait = std::chrono::milliseconds(20);
  const auto until = std::chrono::steady_clock::now() + kMaxWait;
  while (rte_rcu_qsbr_check(ctx_.rcu, waiting->token, false) != 1 &&
         std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  reclaim();
}

void WireGuard::install_route(uint64_t route, uint32_t slot) {
  const auto addr = static_cast<uint32_t>(route >> 8);
  const auto len = static_cast<uint8_t>(route);
  if (removal_waiting_.contains(route)) {
    // The new owner's sessions would be deleted by the removal, or inherit the old owner's
    // flows: no route (its packets are dropped as unknown sources) until every worker has it.
    held_routes_[route] = slot;
    rte_lpm_delete(ctx_.allowed_ips, addr, len);
    return;
  }
  held_routes_.erase(route);
  if (int rc = rte_lpm_add(ctx_.allowed_ips, addr, len, slot); rc != 0)
    log_error("wireguard: allowed IP " + format_ipv4(addr) + "/" + std::to_string(len) +
              " not installed: " + rte_strerror(-rc) + " (raise --max_peers)");
}

// Every worker may hold NAT state for the prefix (the owner changes when a peer is re-added),
// so each is told; the worker frees it between bursts. A full ring delays the command (it is
// retried every tick, in order); one waiting removal of a prefix serves every later one. Only a
// worker that let max_waiting_worker_commands prefixes wait (stuck) loses more, counted.
// Queued only: apply_peers sends them once the old routes are gone (send_worker_commands), so
// no worker carries out a removal while the old owner can still make new state.
void WireGuard::remove_nat_state(const RouteKey& route) {
  const bool ipv4 = std::holds_alternative<uint64_t>(route);
  if (ipv4 ? ctx_.nat == nullptr : ctx_.nat66 == nullptr) return;
  const dp::WorkerCommand c = removal_command(route);
  uint32_t waiting = 0;
  if (auto it = removal_waiting_.find(route); it != removal_waiting_.end()) waiting = it->second;
  for (unsigned w = 0; w < ctx_.n_workers; ++w) {
    if (ctx_.workers[w].commands == nullptr || (waiting & (1u << w)) != 0) continue;
    if (waiting_commands_[w].size() >= opt_.max_waiting_worker_commands) {
      if (stats_.worker_commands_dropped++ == 0)
        log_error("wireguard: worker " + std::to_string(w) +
                  " takes no commands: " + std::to_string(opt_.max_waiting_worker_commands) +
                  " NAT removals wait, further ones are dropped (counted)");
      continue;
    }
    waiting_commands_[w].push_back(QueuedCommand{c, ticks_});
    waiting |= 1u << w;
  }
  if (waiting != 0) removal_waiting_[route] = waiting;
}

void WireGuard::command_done(unsigned worker, const dp::WorkerCommand& c) {
  const RouteKey route = route_of(c);
  auto it = removal_waiting_.find(route);
  if (it == removal_waiting_.end() || (it->second &= ~(1u << worker)) != 0) return;
  removal_waiting_.erase(it);
  auto held = held_routes_.find(route);
  if (held == held_routes_.end()) return;
  if (const uint64_t* v4 = std::get_if<uint64_t>(&route)) {
    install_route(*v4, held->second);
  } else {
    held_routes_.erase(held);
    routes6_stale_ = true;  // published with the next table (republish_routes6)
  }
}

void WireGuard::send_worker_commands() {
  uint64_t waiting = 0;
  for (unsigned w = 0; w < ctx_.n_workers; ++w) {
    std::deque<QueuedCommand>& q = waiting_commands_[w];
    if (q.empty() || ctx_.workers[w].commands == nullptr) continue;
    while (!q.empty() && rte_ring_enqueue_elem(ctx_.workers[w].commands, &q.front().command,
                                               sizeof(q.front().command)) == 0) {
      q.front().seq = ++commands_sent_[w];
      in_ring_[w].push_back(q.front());
      q.pop_front();
    }
    waiting += q.size();
  }
  if (waiting != 0 && stats_.worker_commands_waiting == 0)
    log_error("wireguard: a worker's command ring is full: " + std::to_string(waiting) +
              " NAT removal(s) wait and are retried every tick");
  stats_.worker_commands_waiting = waiting;
}

void WireGuard::collect_done_commands() {
  uint64_t in_ring = 0;
  bool overdue_left = false;
  for (unsigned w = 0; w < ctx_.n_workers; ++w) {
    std::deque<QueuedCommand>& ring = in_ring_[w];
    if (ring.empty() && waiting_commands_[w].empty()) continue;
    const uint64_t done = ctx_.workers[w].commands_done.load(std::memory_order_acquire);
    for (; !ring.empty() && ring.front().seq <= done; ring.pop_front())
      if (!ring.front().released) command_done(w, ring.front().command);
    in_ring += ring.size();
    // Queued in order, the ring's before the waiting ones: the oldest are in front.
    for (std::deque<QueuedCommand>* q : {&ring, &waiting_commands_[w]}) {
      for (QueuedCommand& c : *q) {
        if (ticks_ - c.tick <= kCommandOverdueTicks) break;
        overdue_left = true;
        if (c.released) continue;
        c.released = true;  // still carried out when the worker gets to it
        stats_.worker_commands_overdue++;
        if (!overdue_logged_)
          log_error("wireguard: worker " + std::to_string(w) + " left a NAT removal undone for " +
                    std::to_string(kCommandOverdueTicks / 10) +
                    " s: the moved prefix is routed to its new owner anyway (counted)");
        overdue_logged_ = true;
        command_done(w, c.command);
      }
    }
  }
  if (!overdue_left) overdue_logged_ = false;  // the next stuck spell is logged again
  stats_.worker_commands_in_ring = in_ring;
}

void WireGuard::remove_peer(Peer& p) {
  PeerRuntime& rt = ctx_.peers[p.slot];
  rt.active.store(0, std::memory_order_release);
  rt.send_keypair.store(nullptr, std::memory_order_release);
  retire_all(p);
  if (p.handshake_index) indices_.release(p.handshake_index);
  p.handshake_index = 0;
  by_slot_[p.slot] = nullptr;
  // The slot is reused only after every worker has passed a quiescent state.
  deferred_.push_back(Deferred{rte_rcu_qsbr_start(ctx_.rcu), nullptr, p.slot, nullptr});
}

Keypair* WireGuard::create_keypair(const wg::SessionKeys& keys, uint32_t slot) {
  Keypair* kp = publish_keypair(ctx_, keys, slot, opt_.rekey_after_s, opt_.reject_after_s);
  if (kp == nullptr) return nullptr;
  stats_.keypairs_created++;
  stats_.keypairs++;
  return kp;
}

void WireGuard::retire(Keypair*& kp) {
  if (kp == nullptr) return;
  PeerRuntime& rt = ctx_.peers[kp->peer_slot];
  Keypair* expected = kp;
  rt.send_keypair.compare_exchange_strong(expected, nullptr);
  rte_hash_del_key(ctx_.keypairs, &kp->local_index);
  indices_.release(kp->local_index);
  deferred_.push_back(Deferred{rte_rcu_qsbr_start(ctx_.rcu), kp, kNoSlot, nullptr});
  stats_.keypairs--;
  kp = nullptr;
}

void WireGuard::retire_all(Peer& p) {
  retire(p.previous);
  retire(p.current);
  retire(p.next);
}

void WireGuard::publish_send(Peer& p) {
  ctx_.peers[p.slot].send_keypair.store(p.current, std::memory_order_release);
  ctx_.peers[p.slot].handshake_wanted.store(0, std::memory_order_relaxed);
}

void WireGuard::reclaim() {
  while (!deferred_.empty() && rte_rcu_qsbr_check(ctx_.rcu, deferred_.front().token, false) == 1) {
    Deferred d = deferred_.front();
    deferred_.pop_front();
    if (d.keypair) {
      // Expired keys are zeroed before the memory goes back to the heap.
      wg::secure_zero(d.keypair, sizeof(Keypair));
      rte_free(d.keypair);
    }
    if (d.slot != kNoSlot) {
      PeerRuntime& rt = ctx_.peers[d.slot];
      rt.~PeerRuntime();
      new (&rt) PeerRuntime();
      ctx_.peer_counters.clear(d.slot);
      free_slots_.push_back(d.slot);
    }
    if (d.table6) rte_lpm6_free(d.table6);
  }
}

void WireGuard::note_backlog(unsigned queued, uint64_t now_ns) {
  // As the kernel does: under load while the queue is deep, and for a second after.
  if (queued >= opt_.under_load_backlog) under_load_until_ns_ = now_ns + kNs;
  stats_.under_load = now_ns < under_load_until_ns_;
}

bool WireGuard::admit(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns) {
  const bool loaded = now_ns < under_load_until_ns_;
  const auto check = cookies_->check(msg, src, now_ns, loaded);
  if (check == wg::CookieChecker::MacCheck::kBadMac1) {
    reject(wg::HandshakeError::kBadMac1);
    return false;
  }
  if (!loaded) return true;
  if (check != wg::CookieChecker::MacCheck::kValidMac1And2) {
    // Under load a source must prove it owns its address before we spend a DH on it.
    auto reply = cookies_->create_reply(msg, src, now_ns);
    if (reply) {
      send_udp(src, &reply.value(), sizeof(wg::MessageCookieReply));
      stats_.cookies_sent++;
    }
    return false;
  }
  if (!ratelimit_.allow(src, now_ns)) {
    stats_.rate_limited++;
    return false;
  }
  return true;
}

namespace {

// A punted datagram's source and UDP header (Ethernet, then IPv4 or IPv6 with the UDP header
// right behind: local delivery checked the lengths and cut IPv6 extension headers out).
const rte_udp_hdr* punt_source(const rte_mbuf* m, wg::Endpoint* src) {
  const auto* l3 = rte_pktmbuf_mtod_offset(m, const uint8_t*, sizeof(rte_ether_hdr));
  const rte_udp_hdr* udp;
  if ((l3[0] >> 4) == 6) {
    const auto* ip6 = reinterpret_cast<const rte_ipv6_hdr*>(l3);
    udp = reinterpret_cast<const rte_udp_hdr*>(ip6 + 1);
    std::array<uint8_t, 16> addr;
    std::memcpy(addr.data(), ip6->src_addr, 16);
    *src = wg::Endpoint::ipv6(addr, rte_be_to_cpu_16(udp->src_port));
  } else {
    const auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(l3);
    udp = reinterpret_cast<const rte_udp_hdr*>(ip + 1);
    std::array<uint8_t, 4> addr;
    std::memcpy(addr.data(), &ip->src_addr, 4);
    *src = wg::Endpoint::ipv4(addr, rte_be_to_cpu_16(udp->src_port));
  }
  return udp;
}

}  // namespace

void WireGuard::handle_punt(rte_mbuf* m, uint64_t now_ns) {
  wg::Endpoint src;
  const rte_udp_hdr* udp = punt_source(m, &src);
  const size_t len = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
  const wg::Bytes msg(reinterpret_cast<const uint8_t*>(udp + 1), len);
  const auto type = wg::message_type_of(msg);
  if (!type) {
    reject(wg::HandshakeError::kBadType);
  } else if (*type == wg::MessageType::kInitiation) {
    stats_.initiations_received++;
    on_initiation(msg, src, now_ns);
  } else if (*type == wg::MessageType::kResponse) {
    stats_.responses_received++;
    on_response(msg, src, now_ns);
  } else if (*type == wg::MessageType::kCookieReply) {
    stats_.cookies_received++;
    on_cookie_reply(msg, now_ns);
  } else {
    reject(wg::HandshakeError::kBadType);
  }
  rte_pktmbuf_free(m);
}

void WireGuard::handle_disco_punt(rte_mbuf* m, uint64_t now_ns) {
  wg::Endpoint src;
  const rte_udp_hdr* udp = punt_source(m, &src);
  const size_t len = rte_be_to_cpu_16(udp->dgram_len) - sizeof(rte_udp_hdr);
  disco::Verdict verdict = disco::Verdict::kDisabled;
  if (disco_) {
    auto out = disco_->handle({reinterpret_cast<const uint8_t*>(udp + 1), len}, src, now_ns);
    verdict = out.verdict;
    if (verdict == disco::Verdict::kPongSent && !send_udp(src, out.reply.data(), out.reply.size()))
      verdict = disco::Verdict::kSendFailed;
  }
  stats_.disco[static_cast<size_t>(verdict)]++;
  rte_pktmbuf_free(m);
}

std::optional<wg::Endpoint> WireGuard::endpoint_of(uint32_t slot) const {
  const PeerRuntime& rt = ctx_.peers[slot];
  uint64_t ep = rt.endpoint.load(std::memory_order_acquire);
  std::array<uint8_t, 16> addr6;
  if (endpoint_is_ipv6(ep) && load_endpoint6(rt, ctx_.endpoints6[slot], &ep, addr6.data()))
    return wg::Endpoint::ipv6(addr6, rte_be_to_cpu_16(endpoint_port(ep)));
  if (!(ep & kEndpointValid) || endpoint_is_ipv6(ep)) return std::nullopt;
  const uint32_t ip_be = endpoint_ip(ep);
  std::array<uint8_t, 4> addr;
  std::memcpy(addr.data(), &ip_be, 4);
  return wg::Endpoint::ipv4(addr, rte_be_to_cpu_16(endpoint_port(ep)));
}

void WireGuard::set_endpoint(uint32_t slot, const wg::Endpoint& e) {
  PeerRuntime& rt = ctx_.peers[slot];
  if (!e.is_ipv6) {
    uint32_t ip_be;
    std::memcpy(&ip_be, e.address.data(), 4);
    rt.endpoint.store(pack_endpoint(ip_be, rte_cpu_to_be_16(e.port)), std::memory_order_relaxed);
    return;
  }
  // A worker roaming the same peer holds the entry for a few stores at most; its endpoint is
  // as new as this one, so after a short wait either may stand.
  for (unsigned i = 0; i < 1000; ++i) {
    if (store_endpoint6(rt, ctx_.endpoints6[slot], e.address.data(), rte_cpu_to_be_16(e.port)))
      return;
    rte_pause();
  }
}

void WireGuard::on_initiation(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns) {
  if (msg.size() != sizeof(wg::MessageInitiation)) {
    reject(wg::HandshakeError::kBadSize);
    return;
  }
  if (draining_) {
    stats_.refused_draining++;
    return;
  }
  if (!admit(msg, src, now_ns)) return;
  Peer* found = nullptr;
  auto consumed = wg::consume_initiation(
      *identity_, msg,
      [&](const wg::Key& key) -> wg::PeerCrypto* {
        auto it = peers_.find(key);
        if (it == peers_.end()) return nullptr;
        found = it->second.get();
        return found->crypto.get();
      },
      now_ns);
  if (!consumed) {
    reject(consumed.error());
    return;
  }
  Peer& p = *found;
  auto index = indices_.allocate(p.slot);
  if (!index) return;
  auto response = wg::create_response(*p.crypto, consumed->handshake, *index, now_ns);
  if (!response) {
    indices_.release(*index);
    reject(response.error());
    return;
  }
  Keypair* kp = create_keypair(response->keys, p.slot);
  if (kp == nullptr) {
    indices_.release(*index);
    return;
  }
  // Responder: the new keypair waits as "next" until the initiator uses it.
  retire(p.next);
  p.next = kp;
  set_endpoint(p.slot, src);
  send_udp(src, &response->message, sizeof(wg::MessageResponse));
  stats_.responses_sent++;
  stats_.handshakes_completed++;
  p.last_handshake_ns = now_ns;
  p.last_handshake_unix_ms = unix_ms();
}

void WireGuard::on_response(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns) {
  if (msg.size() != sizeof(wg::MessageResponse)) {
    reject(wg::HandshakeError::kBadSize);
    return;
  }
  if (!admit(msg, src, now_ns)) return;
  const uint32_t index = wg::receiver_index_of(msg);
  const auto owner = indices_.lookup(index);
  Peer* p = owner ? peer_by_slot(static_cast<uint32_t>(*owner)) : nullptr;
  if (p == nullptr || p->handshake_index != index ||
      p->handshake.state != wg::HandshakeState::kInitiationCreated) {
    reject(wg::HandshakeError::kUnexpectedResponse);
    return;
  }
  auto keys = wg::consume_response(*identity_, *p->crypto, p->handshake, msg);
  if (!keys) {
    reject(keys.error());
    return;
  }
  Keypair* kp = create_keypair(*keys, p->slot);
  p->handshake_index = 0;  // now owned by the keypair
  if (kp == nullptr) return;
  // Initiator: the new keypair is usable at once; the old current becomes previous.
  retire(p->previous);
  retire(p->next);
  p->previous = p->current;
  p->current = kp;
  publish_send(*p);
  set_endpoint(p->slot, src);
  p->attempt_start_ns = 0;
  p->last_handshake_ns = now_ns;
  p->last_handshake_unix_ms = unix_ms();
  stats_.handshakes_completed++;
  // Confirm the session to the responder straight away.
  send_keepalive(*p);
}

void WireGuard::on_cookie_reply(wg::Bytes msg, uint64_t now_ns) {
  if (msg.size() != sizeof(wg::MessageCookieReply)) {
    reject(wg::HandshakeError::kBadSize);
    return;
  }
  const auto owner = indices_.lookup(wg::receiver_index_of(msg));
  Peer* p = owner ? peer_by_slot(static_cast<uint32_t>(*owner)) : nullptr;
  if (p == nullptr) {
    reject(wg::HandshakeError::kUnexpectedCookie);
    return;
  }
  auto r = wg::consume_cookie_reply(msg, p->crypto->cookie_key, p->crypto->cookie, now_ns);
  if (!r) reject(r.error());
}

void WireGuard::on_event(const dp::Event& e, uint64_t now_ns) {
  switch (e.type) {
    case dp::EventType::kKeypairConfirmed: {
      const auto owner = indices_.lookup(e.value);
      Peer* p = owner ? peer_by_slot(static_cast<uint32_t>(*owner)) : nullptr;
      if (p == nullptr || p->next == nullptr || p->next->local_index != e.value) return;
      retire(p->previous);
      p->previous = p->current;
      p->current = p->next;
      p->next = nullptr;
      publish_send(*p);
      return;
    }
    case dp::EventType::kRekeyWanted:
    case dp::EventType::kHandshakeWanted: {
      Peer* p = peer_by_slot(e.value);
      if (p != nullptr) begin_handshake(*p, now_ns);
      return;
    }
    default:
      return;
  }
}

void WireGuard::begin_handshake(Peer& p, uint64_t now_ns) {
  if (p.attempt_start_ns != 0) return;  // already trying; retries run from the timers
  p.attempt_start_ns = now_ns;
  send_initiation(p, now_ns);
}

void WireGuard::send_initiation(Peer& p, uint64_t now_ns) {
  const auto ep = endpoint_of(p.slot);
  // REKEY_TIMEOUT plus up to a third of a second of jitter, as the protocol asks.
  p.retry_at_ns = now_ns + wg::kRekeyTimeout * kNs + wg::random_u32() % (kNs / 3);
  if (!ep) return;  // nowhere to send: the peer must reach us first
  if (p.handshake_index) indices_.release(p.handshake_index);
  auto index = indices_.allocate(p.slot);
  if (!index) return;
  p.handshake_index = *index;
  auto init = wg::create_initiation(*identity_, *p.crypto, *index, wg::tai64n_now(), now_ns);
  if (!init) {
    reject(init.error());
    return;
  }
  p.handshake = std::move(init->handshake);
  send_udp(*ep, &init->message, sizeof(wg::MessageInitiation));
  stats_.initiations_sent++;
}

void WireGuard::send_keepalive(Peer& p) {
  Keypair* kp = p.current;
  const auto ep = kp != nullptr ? endpoint_of(p.slot) : std::nullopt;
  if (!ep) return;
  struct __attribute__((packed)) {
    wg::MessageTransportHeader hdr;
    uint8_t tag[wg::kTagLen];
  } msg{};
  msg.hdr.type = static_cast<uint32_t>(wg::MessageType::kTransport);
  msg.hdr.receiver_index = kp->remote_index;
  msg.hdr.counter = kp->send_counter.fetch_add(1, std::memory_order_relaxed);
  wg::Key key;
  std::memcpy(key.data(), kp->send_key, wg::kKeyLen);
  wg::aead_encrypt(msg.tag, key, msg.hdr.counter, {}, {});
  wg::secure_zero(key);
  send_udp(*ep, &msg, sizeof(msg));
  const uint64_t now = rte_rdtsc();
  ctx_.peers[p.slot].last_tx_tsc.store(now, std::memory_order_relaxed);
  p.last_keepalive_tsc = now;
  stats_.keepalives_sent++;
}

bool WireGuard::send_udp(const wg::Endpoint& dst, const void* payload, size_t len) {
  rte_mbuf* m = rte_pktmbuf_alloc(pool_);
  if (m == nullptr) return false;
  const size_t l3 = dst.is_ipv6 ? sizeof(rte_ipv6_hdr) : sizeof(rte_ipv4_hdr);
  const size_t total = l3 + sizeof(rte_udp_hdr) + len;
  auto* front = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, static_cast<uint16_t>(total)));
  if (front == nullptr) {
    rte_pktmbuf_free(m);
    return false;
  }
  auto* udp = reinterpret_cast<rte_udp_hdr*>(front + l3);
  std::memcpy(udp + 1, payload, len);
  udp->src_port = ctx_.wg_port_be;
  udp->dst_port = rte_cpu_to_be_16(dst.port);
  udp->dgram_len = rte_cpu_to_be_16(static_cast<uint16_t>(sizeof(rte_udp_hdr) + len));
  udp->dgram_cksum = 0;
  const dp::PortInfo& tunnel = ctx_.port(dp::PortRole::kTunnel);
  const uint8_t tunnel_index = ctx_.port_index(dp::PortRole::kTunnel);
  const uint64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now().time_since_epoch())
                              .count();
  dp::meta(m)->in_port = tunnel_index;
  if (dst.is_ipv6) {
    auto* ip6 = reinterpret_cast<rte_ipv6_hdr*>(front);
    ip6->vtc_flow = RTE_BE32(6u << 28);
    ip6->payload_len = udp->dgram_len;
    ip6->proto = IPPROTO_UDP;
    ip6->hop_limits = 64;
    std::memcpy(ip6->dst_addr, dst.address.data(), 16);
    std::memcpy(ip6->src_addr, tunnel.source6(ip6->dst_addr), 16);
    udp->dgram_cksum = dp::udp6_checksum(ip6, udp);
    if (!tunnel.ipv6()) {  // a peer cannot have reached us over IPv6 then; stay safe
      rte_pktmbuf_free(m);
      return false;
    }
    neighbors_.output(tunnel_index, m, now_ms);
    return true;
  }
  uint32_t dst_ip_be;
  std::memcpy(&dst_ip_be, dst.address.data(), 4);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(front);
  // A peer behind the DERP relay: through the exception TUN to the connector's socket.
  const bool relayed = dst_ip_be == ctx_.relay_host && ctx_.relay_host != 0;
  fill_ipv4_header(ip, relayed ? ctx_.relay_gateway : tunnel.addrs[0], dst_ip_be,
                   static_cast<uint16_t>(total), IPPROTO_UDP);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  if (relayed) {
    const dp::PortInfo& e = ctx_.ports[ctx_.exception_port];
    dp::meta(m)->in_port = ctx_.exception_port;
    if (rte_eth_tx_burst(e.port_id, e.tx_queue_control, &m, 1) != 1) {
      ctx_.control_counters.drop(ctx_.exception_port, dp::DropReason::kTxQueueFull);
      rte_pktmbuf_free(m);
      return false;
    }
    ctx_.control_counters.port[ctx_.exception_port].tx_packets.add();
    ctx_.control_counters.port[ctx_.exception_port].tx_bytes.add(total);
    return true;
  }
  neighbors_.output(tunnel_index, m, now_ms);
  return true;
}

void WireGuard::peer_timers(Peer& p, uint64_t now_ns, uint64_t now_tsc) {
  PeerRuntime& rt = ctx_.peers[p.slot];
  // Keypairs past REJECT_AFTER_TIME are useless in both directions: zero and free them.
  for (Keypair** slot : {&p.previous, &p.current, &p.next}) {
    if (*slot && now_tsc >= (*slot)->reject_after_tsc) {
      stats_.keypairs_expired++;
      retire(*slot);
    }
  }
  // Handshake attempts: retry every REKEY_TIMEOUT (+jitter) for up to REKEY_ATTEMPT_TIME.
  if (p.attempt_start_ns != 0) {
    if (now_ns - p.attempt_start_ns >= wg::kRekeyAttemptTime * kNs) {
      p.attempt_start_ns = 0;
      p.handshake.clear();
      rt.handshake_wanted.store(0, std::memory_order_relaxed);
    } else if (now_ns >= p.retry_at_ns) {
      send_initiation(p, now_ns);
    }
  }
  const uint64_t last_rx = rt.last_rx_tsc.load(std::memory_order_relaxed);
  const uint64_t last_data_rx = rt.last_data_rx_tsc.load(std::memory_order_relaxed);
  const uint64_t last_tx = rt.last_tx_tsc.load(std::memory_order_relaxed);
  const uint64_t last_data_tx = rt.last_data_tx_tsc.load(std::memory_order_relaxed);
  Keypair* cur = p.current;
  // Initiator, receiving on a keypair near the end of its life: rekey now rather than let the
  // session lapse (REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT).
  if (cur && cur->is_initiator && last_data_rx > cur->created_tsc &&
      now_tsc >=
          cur->reject_after_tsc - tsc_of_seconds(wg::kKeepaliveTimeout + wg::kRekeyTimeout) &&
      now_tsc - last_data_rx < tsc_of_seconds(1))
    begin_handshake(p, now_ns);
  // Sent data but heard nothing for KEEPALIVE_TIMEOUT + REKEY_TIMEOUT since: the session may
  // be dead; start a new handshake. unanswered_since_tsc approximates (to one tick) the first
  // data packet sent after the last one received.
  if (last_data_tx > last_rx) {
    if (p.unanswered_since_tsc == 0) p.unanswered_since_tsc = now_tsc;
    if (now_tsc - p.unanswered_since_tsc >=
        tsc_of_seconds(wg::kKeepaliveTimeout + wg::kRekeyTimeout)) {
      p.unanswered_since_tsc = 0;
      begin_handshake(p, now_ns);
    }
  } else {
    p.unanswered_since_tsc = 0;
  }
  // Passive keepalive: data came in and we have sent nothing back for KEEPALIVE_TIMEOUT.
  if (cur && last_data_rx > last_tx &&
      now_tsc - last_data_rx >= tsc_of_seconds(wg::kKeepaliveTimeout))
    send_keepalive(p);
  // Persistent keepalive, when configured.
  if (cur && p.config.persistent_keepalive &&
      now_tsc - std::max(last_tx, p.last_keepalive_tsc) >=
          tsc_of_seconds(p.config.persistent_keepalive))
    send_keepalive(p);
}

void WireGuard::tick(uint64_t now_ns) {
  const uint64_t now_tsc = rte_rdtsc();
  for (auto& [key, p] : peers_) peer_timers(*p, now_ns, now_tsc);
  reclaim();
  ++ticks_;
  send_worker_commands();
  collect_done_commands();
  if (routes6_stale_) republish_routes6();
  if (watch_.due(now_ns)) {  // changed, then stood still (a writer may not have finished)
    stats_.peers_reloads++;
    Status s = load_peers_file();
    last_reload_error_ = s ? std::string() : s.error();
    if (!s) {
      stats_.peers_reload_errors++;
      log_error("wireguard: peers file not applied, running peers unchanged: " + s.error());
    }
  }
}

std::vector<policy::PolicyPeer> WireGuard::policy_peers() const {
  std::vector<policy::PolicyPeer> out;
  out.reserve(peers_.size());
  for (const auto& [key, p] : peers_)
    out.push_back(policy::PolicyPeer{p->slot, p->config.user, p->config.tags, p->config.allowed_ips,
                                     p->config.allowed_ips6});
  return out;
}

std::vector<PeerStatus> WireGuard::peer_status() const {
  std::vector<PeerStatus> out;
  for (const auto& [key, p] : peers_) {
    PeerStatus s;
    s.public_key = wg::key_to_base64(key);
    s.user = p->config.user;
    s.last_handshake_unix_ms = p->last_handshake_unix_ms;
    // Each worker counts in its own row; the peer's figure is their sum.
    const PeerTotals t = ctx_.peer_counters.sum(p->slot);
    s.rx_bytes = t.rx_bytes;
    s.tx_bytes = t.tx_bytes;
    if (const auto ep = endpoint_of(p->slot); ep) {
      if (ep->is_ipv6) {
        s.endpoint = "[" + format_ipv6(ep->address.data()) + "]:" + std::to_string(ep->port);
      } else {
        uint32_t ip_be;
        std::memcpy(&ip_be, ep->address.data(), 4);
        s.endpoint = format_ipv4(rte_be_to_cpu_32(ip_be)) + ":" + std::to_string(ep->port);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace exitgw
