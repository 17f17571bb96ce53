// WireGuard on the control thread: the gateway's identity, the peer table (from the peers
// file), handshakes punted by workers (responder and initiator), cookies under load, keypair
// rotation and expiry, the protocol's timers, and publication of keypairs, allowed IPs and
// per-peer runtime blocks to the workers.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include <rte_lpm6.h>
#include <rte_mbuf.h>

#include "common/result.h"
#include "common/wg_state.h"
#include "control/bounded_file.h"
#include "control/neighbor.h"
#include "control/peer_update.h"
#include "control/peers_config.h"
#include "control/policy/compile.h"
#include "control/wg/cookie.h"
#include "control/wg/disco.h"
#include "control/wg/handshake_error.h"
#include "control/wg/index_table.h"
#include "control/wg/noise.h"
#include "control/wg/ratelimit.h"
#include "common/dataplane_context.h"
#include "dataplane/events.h"

namespace exitgw {

struct WireGuardOptions {
  std::string private_key_file;
  std::string peers_file;
  std::string disco_private_key_file;  // empty: disco frames are counted and dropped
  uint32_t max_peers = 4096;
  uint16_t tunnel_mtu = 1420;
  unsigned rekey_after_s = wg::kRekeyAfterTime;
  unsigned reject_after_s = wg::kRejectAfterTime;
  unsigned under_load_backlog = 128;  // punted packets waiting that mean "under load"
  // NAT removals that may wait per worker to enter its command ring (those one update queues
  // before it sends them, and those a full ring refused); beyond, further ones are dropped
  // (counted): the worker is stuck, or one update removed more prefixes than this.
  size_t max_waiting_worker_commands = 65536;
  // What no peer may be, from any source (the peers file too): the gateway's port addresses and
  // NAT pool (its own key is added once loaded).
  GatewaySelf self;
};

// Counters the metrics thread reads.
struct WireGuardStats {
  std::atomic<uint64_t> initiations_received{0}, responses_sent{0}, initiations_sent{0},
      responses_received{0}, cookies_sent{0}, cookies_received{0}, rate_limited{0},
      keepalives_sent{0}, keypairs_created{0}, keypairs_expired{0}, handshakes_completed{0},
      refused_draining{0}, peers_reloads{0}, peers_reload_errors{0};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(wg::HandshakeError::kCount)> rejected{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(disco::Verdict::kCount)> disco{};
  std::atomic<uint64_t> active_peers{0}, keypairs{0}, generation{0};
  // IPv6 allowed prefixes in the published rte_lpm6 (ctx.allowed_ips6).
  std::atomic<uint64_t> allowed_ips6_routes{0};
  // Commands for workers that their full command rings have not taken yet (retried each tick).
  std::atomic<uint64_t> worker_commands_waiting{0};
  // Commands in workers' rings not carried out yet (a moved prefix's route waits for them).
  std::atomic<uint64_t> worker_commands_in_ring{0};
  // Commands a worker left undone for 2 s (20 ticks) after they were queued, in its ring or
  // waiting for room in it: the routes waiting for them were
  // released anyway (a stuck worker must not keep a prefix unrouted for ever).
  std::atomic<uint64_t> worker_commands_overdue{0};
  // NAT removals dropped for a worker with max_waiting_worker_commands waiting (stuck).
  std::atomic<uint64_t> worker_commands_dropped{0};
  std::atomic<bool> under_load{false};
};

// Per-peer summary for status and metrics, refreshed by the control loop.
struct PeerStatus {
  std::string public_key;
  std::string user;
  uint64_t last_handshake_unix_ms = 0;
  uint64_t rx_bytes = 0, tx_bytes = 0;
  std::string endpoint;
};

// The worker-visible WireGuard tables (keypairs by index, allowed IPs, peer runtime blocks),
// attached to the context's RCU. Used by WireGuard and by benchmarks that drive workers.
Status create_wireguard_tables(dp::DataplaneContext& ctx, uint32_t max_peers);
void destroy_wireguard_tables(dp::DataplaneContext& ctx);
// Allocates a keypair for `slot` and publishes it under keys.local_index; nullptr on failure.
Keypair* publish_keypair(dp::DataplaneContext& ctx, const wg::SessionKeys& keys, uint32_t slot,
                         unsigned rekey_after_s, unsigned reject_after_s);

class WireGuard {
 public:
  WireGuard(dp::DataplaneContext& ctx, NeighborTable& neighbors, rte_mempool* pool,
            WireGuardOptions opt);
  ~WireGuard();

  // Loads the key and the peers file, creates the worker-visible tables. Nothing is sent.
  Status init();
  // Takes ownership of a punted handshake packet (Ethernet header in front).
  void handle_punt(rte_mbuf* m, uint64_t now_ns);
  // Takes ownership of a punted disco frame (Ethernet header in front): a ping from a current
  // peer's disco key is answered with a pong from the WireGuard port; the rest is counted.
  void handle_disco_punt(rte_mbuf* m, uint64_t now_ns);
  void on_event(const dp::Event& e, uint64_t now_ns);
  // Called with the number of punted packets waiting: decides "under load".
  void note_backlog(unsigned queued, uint64_t now_ns);
  // Timers, expiry, reclamation and the peers-file watch; call every ~100 ms.
  void tick(uint64_t now_ns);
  // Releases what waited for commands the workers have carried out since (a moved IPv4
  // prefix's route at once, a moved IPv6 one with the next tick's table); cheap, call every
  // control loop iteration.
  void collect_done_commands();
  // Validates the whole set, then applies it (diff against the running peers) or nothing.
  Status apply_peers(const std::vector<PeerConfig>& peers);
  // Replaces one source's peers ("file", "api", "etcd"); the running set is the union of all
  // sources, validated whole before anything changes.
  Status set_source_peers(const std::string& source, std::vector<PeerConfig> peers);
  const std::vector<PeerConfig>& source_peers(const std::string& source) const;
  const std::map<std::string, std::vector<PeerConfig>>& sources() const { return sources_; }
  // Why the latest peers file reload was refused; empty when it applied (control thread only).
  const std::string& last_reload_error() const { return last_reload_error_; }

  const WireGuardStats& stats() const { return stats_; }
  // Draining: initiations are refused so peers move to other nodes; sessions run out.
  void set_draining(bool on) { draining_ = on; }
  std::string public_key_base64() const;
  std::string disco_public_key_base64() const;  // empty without --disco_private_key_file
  std::vector<PeerStatus> peer_status() const;  // control thread only
  // The peers as the exit policy sees them (slot, user, tags, allowed IPs).
  std::vector<policy::PolicyPeer> policy_peers() const;

 private:
  struct Peer {
    uint32_t slot = 0;
    PeerConfig config;
    std::unique_ptr<wg::PeerCrypto> crypto;
    wg::Handshake handshake;  // our initiation in flight
    uint32_t handshake_index = 0;
    Keypair* previous = nullptr;
    Keypair* current = nullptr;
    Keypair* next = nullptr;
    uint64_t last_handshake_ns = 0;
    uint64_t last_handshake_unix_ms = 0;
    uint64_t attempt_start_ns = 0;  // 0: not trying to handshake
    uint64_t retry_at_ns = 0;
    uint64_t last_keepalive_tsc = 0;
    uint64_t unanswered_since_tsc = 0;
  };

  Status load_peers_file();
  Peer* peer_by_slot(uint32_t slot);
  Keypair* create_keypair(const wg::SessionKeys& keys, uint32_t slot);
  void retire(Keypair*& kp);
  void retire_all(Peer& p);
  void publish_send(Peer& p);
  void remove_peer(Peer& p);
  // An allowed prefix of either family: IPv4 as route_key() (addr << 8 | len), or IPv6. A
  // removal of NAT state, and the route that waits for it, are keyed by it.
  using RouteKey = std::variant<uint64_t, Ipv6Prefix>;
  // Tells every worker to remove the NAT44 or NAT66 state of a prefix that left its peer (now,
  // or queued); nothing when that family has no stateful NAT.
  void remove_nat_state(const RouteKey& route);
  void send_worker_commands();
  // Worker `worker` carried out `c` (or left it overdue): a route held for its prefix is
  // released once every worker has.
  void command_done(unsigned worker, const dp::WorkerCommand& c);
  // Points the IPv4 prefix at `slot` now, or once no worker's removal of its NAT state waits.
  void install_route(uint64_t route, uint32_t slot);
  // The IPv6 routes a published table holds: `routes` but those held for a waiting removal.
  std::map<Ipv6Prefix, uint32_t> routes_to_publish6(
      const std::map<Ipv6Prefix, uint32_t>& routes) const;
  // Publishes `table` (null: no IPv6 routes) as ctx.allowed_ips6; the table it replaces is freed
  // after an RCU grace period.
  void publish_table6(rte_lpm6* table);
  // A held IPv6 route was released: a table with it replaces the published one (once per tick,
  // however many were released; retried next tick if it cannot be built).
  void republish_routes6();
  // Frees what a grace period has released; with an IPv6 table still waiting, first waits a
  // little for one, so a stream of updates does not pile up whole tables (each holds 64 MiB).
  void reclaim_before_new_table6();
  void begin_handshake(Peer& p, uint64_t now_ns);
  void send_initiation(Peer& p, uint64_t now_ns);
  void send_keepalive(Peer& p);
  // From the tunnel port's WireGuard port to `dst`, over IPv4 or IPv6 (the DERP relay's host
  // through the exception port). False when no mbuf could be had (the send is lost).
  bool send_udp(const wg::Endpoint& dst, const void* payload, size_t len);
  // The peer's endpoint (PeerRuntime::endpoint and, for IPv6, ctx.endpoints6), read and set.
  std::optional<wg::Endpoint> endpoint_of(uint32_t slot) const;
  void set_endpoint(uint32_t slot, const wg::Endpoint& e);
  void reject(wg::HandshakeError e) { stats_.rejected[static_cast<size_t>(e)]++; }
  void on_initiation(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns);
  void on_response(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns);
  void on_cookie_reply(wg::Bytes msg, uint64_t now_ns);
  bool admit(wg::Bytes msg, const wg::Endpoint& src, uint64_t now_ns);
  void peer_timers(Peer& p, uint64_t now_ns, uint64_t now_tsc);
  void reclaim();
  uint64_t tsc_of_seconds(double s) const;

  dp::DataplaneContext& ctx_;
  NeighborTable& neighbors_;
  rte_mempool* pool_;
  WireGuardOptions opt_;
  std::unique_ptr<wg::LocalIdentity> identity_;
  std::unique_ptr<wg::CookieChecker> cookies_;
  std::optional<disco::Responder> disco_;
  wg::RateLimiter ratelimit_;
  wg::IndexTable indices_;
  std::map<wg::Key, std::unique_ptr<Peer>> peers_;          // by public key
  std::map<std::string, std::vector<PeerConfig>> sources_;  // what each source asked for
  std::string last_reload_error_;
  std::vector<Peer*> by_slot_;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<uint64_t, uint32_t> route_slot_;  // allowed prefix (addr << 8 | len) -> slot
  // The IPv6 routes (prefix -> slot) and the table holding them (but the held ones), published
  // whole as ctx.allowed_ips6 (rte_lpm6 has no RCU mode: a change builds a new table). Null:
  // none.
  std::map<Ipv6Prefix, uint32_t> route6_slot_;
  rte_lpm6* allowed_ips6_ = nullptr;
  bool routes6_stale_ = false;      // a held IPv6 route was released since the table was built
  bool republish_failing_ = false;  // the last republish_routes6 could not build its table
  struct Deferred {
    uint64_t token;
    Keypair* keypair;  // zeroed and freed after the grace period
    uint32_t slot;     // or a peer slot to reuse (UINT32_MAX: none)
    rte_lpm6* table6;  // or a replaced IPv6 allowed-IPs table to free
  };
  std::deque<Deferred> deferred_;
  // Per worker, in order, the commands its full ring refused so far: dropped only past
  // max_waiting_worker_commands (a stuck worker; counted), since a removed prefix's NAT state left
  // behind would hand its next owner the old owner's flows.
  // A command for a worker: queued at `tick`, then given sequence number `seq` by its ring
  // (the worker's commands_done reaches it once carried out); `released` once it went overdue
  // and stopped holding its route back.
  struct QueuedCommand {
    dp::WorkerCommand command;
    uint64_t tick = 0;
    uint64_t seq = 0;
    bool released = false;
  };
  std::array<std::deque<QueuedCommand>, dp::kMaxWorkers> waiting_commands_;
  // Per worker, the commands its ring took and it has not carried out yet, oldest first.
  std::array<std::deque<QueuedCommand>, dp::kMaxWorkers> in_ring_;
  std::array<uint64_t, dp::kMaxWorkers> commands_sent_{};  // per worker, ever taken by its ring
  uint64_t ticks_ = 0;
  bool overdue_logged_ = false;
  // Per prefix with a waiting removal, the workers that have not carried it out (bit w: worker
  // w), whether it waits in control's queue or in the worker's ring.
  std::map<RouteKey, uint32_t> removal_waiting_;
  static_assert(dp::kMaxWorkers <= 32);
  // Routes (prefix -> slot) held back until no removal of the prefix's NAT state waits: absent
  // from the IPv4 table, or from the published IPv6 one, so the new owner's packets are dropped
  // as from an unknown source meanwhile and its sessions are neither deleted nor inherited.
  std::map<RouteKey, uint32_t> held_routes_;
  StableFileWatch watch_;
  uint64_t under_load_until_ns_ = 0;
  bool draining_ = false;
  uint64_t hz_;
  WireGuardStats stats_;
};

}  // namespace exitgw
