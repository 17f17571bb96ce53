// The gateway's metric set, read from per-lcore counters and the control loop's stats.
#include <rte_lcore.h>
#include <rte_mempool.h>

#include <algorithm>
#include <chrono>

#include "common/log_escape.h"
#include "control/bounded_file.h"
#include "control/flags.h"
#include "control/gateway.h"
#include "control/net_parse.h"
#include "control/ports.h"
#include "common/nat_types.h"

namespace exitgw {

using prometheus::MetricType;

std::string Gateway::render_metrics() {
  const dp::DataplaneContext& ctx = *ctx_;
  MetricFamilies mf(constant_labels_);
  auto& rx_pkts = mf.family("exitgw_port_rx_packets_total", "Packets received, by port and queue",
                            MetricType::Counter);
  auto& rx_bytes = mf.family("exitgw_port_rx_bytes_total", "Bytes received, by port and queue",
                             MetricType::Counter);
  auto& tx_pkts = mf.family("exitgw_port_tx_packets_total", "Packets sent, by port and queue",
                            MetricType::Counter);
  auto& tx_bytes =
      mf.family("exitgw_port_tx_bytes_total", "Bytes sent, by port and queue", MetricType::Counter);
  auto& drops = mf.family("exitgw_drops_total", "Packets dropped, by input port, queue and reason",
                          MetricType::Counter);
  auto& busy = mf.family("exitgw_worker_busy_ratio",
                         "Share of a worker's cycles spent on loops that received packets, over "
                         "the last 100 ms",
                         MetricType::Gauge);
  auto& busy_cycles = mf.family("exitgw_worker_busy_cycles_total",
                                "TSC cycles in loops that received packets", MetricType::Counter);
  auto& idle_cycles = mf.family("exitgw_worker_idle_cycles_total",
                                "TSC cycles in empty polls and idle sleeps", MetricType::Counter);
  auto& punted = mf.family("exitgw_punted_packets_total",
                           "Packets a worker handed to the control thread", MetricType::Counter);
  auto& events_lost =
      mf.family("exitgw_worker_events_lost_total", "Worker-to-control events lost to a full ring",
                MetricType::Counter);
  auto& arp_replies = mf.family("exitgw_arp_replies_sent_total",
                                "ARP requests for our addresses answered", MetricType::Counter);
  auto& echo = mf.family("exitgw_icmp_echo_replies_total", "ICMP echo requests answered",
                         MetricType::Counter);
  auto& echo6 = mf.family("exitgw_icmpv6_echo_replies_total",
                          "ICMPv6 echo requests to the gateway's IPv6 addresses answered",
                          MetricType::Counter);
  auto& nd_adverts = mf.family("exitgw_nd_advertisements_sent_total",
                               "Neighbor solicitations for the gateway's IPv6 addresses answered",
                               MetricType::Counter);
  auto& nd_learned = mf.family("exitgw_nd_learned_total",
                               "IPv6 neighbors' MACs workers passed to control (from neighbor "
                               "solicitations and advertisements)",
                               MetricType::Counter);
  auto& icmp_errors_limited =
      mf.family("exitgw_icmp_errors_rate_limited_total",
                "ICMP errors (time exceeded, fragmentation needed) not sent because the worker's "
                "ICMP rate limit (--icmp_rate, --icmp_burst) held them back",
                MetricType::Counter);
  auto& exception =
      mf.family("exitgw_exception_packets_total",
                "Inner packets for the gateway's own tailnet addresses handed to the host through "
                "--exception_port (direction=to_host), and the host's packets sealed back to peers "
                "(direction=from_host)",
                MetricType::Counter);
  auto& relay = mf.family(
      "exitgw_derp_relay_packets_total",
      "Peers' packets the connector relayed from DERP through --exception_port "
      "(direction=from_peers), and packets sealed back to peers behind the relay (to_peers)",
      MetricType::Counter);
  auto& tsmp = mf.family("exitgw_tsmp_consumed_total",
                         "TSMP messages (IP protocol 99) addressed to the gateway, consumed",
                         MetricType::Counter);

  const auto queue_label = [](unsigned q) { return std::to_string(q); };
  const auto add_block = [&](const dp::LcoreCounters& c, const std::string& queue) {
    for (unsigned p = 0; p < ctx.n_ports; ++p) {
      const Labels l{{"port", port_labels_[p]}, {"queue", queue}};
      mf.counter(rx_pkts, l, double(c.port[p].rx_packets.get()));
      mf.counter(rx_bytes, l, double(c.port[p].rx_bytes.get()));
      mf.counter(tx_pkts, l, double(c.port[p].tx_packets.get()));
      mf.counter(tx_bytes, l, double(c.port[p].tx_bytes.get()));
      for (size_t r = 0; r < size_t(dp::DropReason::kCount); ++r) {
        const uint64_t v = c.drops[p][r].get();
        // Every reason is exported (zeros too) so alerts and rate() see the series from start.
        mf.counter(drops,
                   {{"port", port_labels_[p]},
                    {"queue", queue},
                    {"reason", std::string(dp::kDropReasonNames[r])}},
                   double(v));
      }
    }
  };
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    const dp::LcoreCounters& c = ctx.workers[w].counters;
    add_block(c, queue_label(w));
    const Labels wl{{"worker", std::to_string(w)},
                    {"lcore", std::to_string(ctx.workers[w].lcore_id)}};
    mf.gauge(busy, wl, stats_.busy_ratio[w].load());
    mf.counter(busy_cycles, wl, double(c.busy_cycles.get()));
    mf.counter(idle_cycles, wl, double(c.idle_cycles.get()));
    mf.counter(punted, wl, double(c.punted.get()));
    mf.counter(events_lost, wl, double(c.events_lost.get()));
    mf.counter(arp_replies, wl, double(c.arp_replies_sent.get()));
    mf.counter(echo, wl, double(c.icmp_echo_replies.get()));
    mf.counter(echo6, wl, double(c.icmp6_echo_replies.get()));
    mf.counter(nd_adverts, wl, double(c.nd_advertisements_sent.get()));
    mf.counter(nd_learned, wl, double(c.nd_learned.get()));
    mf.counter(icmp_errors_limited, wl, double(c.icmp_errors_rate_limited.get()));
    Labels el = wl;
    el.push_back({"direction", "to_host"});
    mf.counter(exception, el, double(c.exception_to_host.get()));
    el.back().second = "from_host";
    mf.counter(exception, el, double(c.exception_from_host.get()));
    mf.counter(tsmp, wl, double(c.tsmp_consumed.get()));
    el.back().second = "from_peers";
    mf.counter(relay, el, double(c.relay_from_peers.get()));
    el.back().second = "to_peers";
    mf.counter(relay, el, double(c.relay_to_peers.get()));
  }
  add_block(ctx.control_counters, "control");

  auto& link = mf.family("exitgw_port_link_up", "1 when the port's link is up", MetricType::Gauge);
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    mf.gauge(link, {{"port", port_labels_[p]}, {"device", port_name(ctx.ports[p].port_id)}},
             stats_.link_up[p].load() ? 1 : 0);
  // The device's counters: packets lost before any worker saw them (a full RX ring: a worker
  // too slow or descheduled), and the device's own receive and send errors.
  struct DeviceCounter {
    const char* name;
    const char* help;
    std::atomic<uint64_t> ControlStats::PortDeviceStats::*field;
  };
  static constexpr DeviceCounter kDeviceCounters[] = {
      {"exitgw_port_rx_missed_total",
       "Packets the device dropped because its receive ring was full (rte_eth_stats imissed; "
       "not reported by DPDK 22.11's af_packet driver)",
       &ControlStats::PortDeviceStats::rx_missed},
      {"exitgw_port_rx_errors_total", "Erroneous packets the device received (ierrors)",
       &ControlStats::PortDeviceStats::rx_errors},
      {"exitgw_port_rx_nombuf_total", "Receive failures for want of an mbuf (rx_nombuf)",
       &ControlStats::PortDeviceStats::rx_nombuf},
      {"exitgw_port_tx_errors_total", "Packets the device failed to send (oerrors)",
       &ControlStats::PortDeviceStats::tx_errors},
  };
  for (const DeviceCounter& dc : kDeviceCounters) {
    auto& fam = mf.family(dc.name, dc.help, MetricType::Counter);
    for (unsigned p = 0; p < ctx.n_ports; ++p)
      mf.counter(fam, {{"port", port_labels_[p]}, {"device", port_name(ctx.ports[p].port_id)}},
                 double((stats_.port_device[p].*dc.field).load()));
  }
  mf.gauge(mf.family("exitgw_neighbors", "Entries in the neighbor (ARP) table", MetricType::Gauge),
           {}, double(stats_.neighbors.load()));
  mf.counter(
      mf.family("exitgw_neighbor_unresolved_drops_total",
                "Packets dropped because their next hop never answered ARP", MetricType::Counter),
      {}, double(stats_.neighbor_unresolved_drops.load()));
  mf.counter(mf.family("exitgw_arp_requests_sent_total", "ARP requests the gateway sent",
                       MetricType::Counter),
             {}, double(stats_.arp_requests_sent.load()));
  mf.gauge(mf.family("exitgw_ipv6_neighbors",
                     "Entries in the IPv6 neighbor table (learned and wanted, resolved or not)",
                     MetricType::Gauge),
           {}, double(stats_.neighbors6.load()));
  mf.counter(mf.family("exitgw_nd_solicitations_sent_total",
                       "Neighbor solicitations the gateway sent (resolving and refreshing IPv6 "
                       "neighbors such as --internet_gateway6)",
                       MetricType::Counter),
             {}, double(stats_.nd_solicitations_sent.load()));
  mf.gauge(mf.family("exitgw_workers", "Worker lcores", MetricType::Gauge), {},
           double(ctx.n_workers));
  mf.gauge(mf.family("exitgw_control_heartbeat_age_seconds",
                     "Seconds since the control thread last completed a loop iteration (/readyz "
                     "fails past --control_stall_ms)",
                     MetricType::Gauge),
           {}, heartbeat_.age_seconds(steady_now_ns()));
  {
    const ControlHeartbeat::Gaps gaps = heartbeat_.gaps();
    mf.histogram(mf.family("exitgw_control_loop_gap_seconds",
                           "Seconds between consecutive control loop iterations (an idle loop "
                           "beats every ~0.2 ms; a long gap is a stall, however short)",
                           MetricType::Histogram),
                 {}, ControlHeartbeat::kGapBounds, gaps.counts, gaps.sum_seconds);
  }
  auto& refused = mf.family("exitgw_watched_file_refusals_total",
                            "Reloads of watched files (peers, policy, approvals, domains) refused "
                            "before reading, by why",
                            MetricType::Counter);
  mf.counter(refused, {{"reason", "not_regular"}}, double(bounded_file_counters().not_regular));
  mf.counter(refused, {{"reason", "too_large"}}, double(bounded_file_counters().too_large));
  mf.counter(mf.family("exitgw_log_bytes_escaped_total",
                       "Control and non-ASCII bytes escaped in log lines and errors that quote "
                       "file or client content",
                       MetricType::Counter),
             {}, double(g_log_bytes_escaped.load()));
  // Every mempool of the process (rte_mempool_walk), so a leak of mbufs shows as a rising
  // in-use count. Mbufs in the lcores' caches count as available, as DPDK counts them.
  auto& pool_size =
      mf.family("exitgw_mempool_size", "Objects in the DPDK mempool, by pool", MetricType::Gauge);
  auto& pool_in_use = mf.family("exitgw_mempool_in_use",
                                "Objects of the DPDK mempool in use (allocated, not in the pool's "
                                "ring or an lcore cache), by pool",
                                MetricType::Gauge);
  struct PoolFamilies {
    MetricFamilies* mf;
    prometheus::MetricFamily* size;
    prometheus::MetricFamily* in_use;
  } pools{&mf, &pool_size, &pool_in_use};
  rte_mempool_walk(
      [](rte_mempool* mp, void* arg) {
        auto* p = static_cast<PoolFamilies*>(arg);
        const Labels l{{"pool", mp->name}};
        p->mf->gauge(*p->size, l, double(mp->size));
        p->mf->gauge(*p->in_use, l, double(rte_mempool_in_use_count(mp)));
      },
      &pools);
  if (const auto view = admin_view_.load()) {
    mf.gauge(mf.family("exitgw_config_generation",
                       "Generation of the running configuration (every applied update)",
                       MetricType::Gauge),
             {{"last_source", view->last_update_source}}, double(view->generation));
    auto& health =
        mf.family("exitgw_update_source_healthy",
                  "1 when an update source's last load or connection succeeded", MetricType::Gauge);
    for (const auto& [name, h] : view->sources) mf.gauge(health, {{"source", name}}, h.ok ? 1 : 0);
  }
  if (wg_) render_wireguard_metrics(mf);
  if (nat_ || nat66_) render_nat_metrics(mf);
  if (policy_) render_policy_metrics(mf);
  render_tailnet_metrics(mf);
  if (flow_export_) flow_export_->render_metrics(mf);
  // Always present (zero without --domains_file), so the reload-rejected alert has a series.
  auto& domain_reloads = mf.family("exitgw_domain_reloads_total",
                                   "Domain list file reloads, by result", MetricType::Counter);
  mf.counter(domain_reloads, {{"result", "ok"}},
             domains_ ? double(domains_->reloads_applied()) : 0.0);
  mf.counter(domain_reloads, {{"result", "rejected"}},
             domains_ ? double(domains_->reload_errors()) : 0.0);
  if (domains_) {
    auto& m = mf.family("exitgw_domain_matches_total",
                        "Exit packets whose DNS name, TLS SNI or HTTP Host matched a domain rule",
                        MetricType::Counter);
    uint64_t blocked = 0, logged = 0, errors = 0;
    for (unsigned w = 0; w < ctx.n_workers; ++w) {
      blocked += ctx.workers[w].counters.domain_blocked.get();
      logged += ctx.workers[w].counters.domain_logged.get();
      errors += ctx.workers[w].counters.domain_scan_errors.get();
    }
    mf.counter(m, {{"action", "block"}}, double(blocked));
    mf.counter(m, {{"action", "log"}}, double(logged));
    mf.counter(mf.family("exitgw_domain_scan_errors_total",
                         "Packets passed unscanned (no Hyperscan scratch)", MetricType::Counter),
               {}, double(errors));
    mf.gauge(
        mf.family("exitgw_domain_rules", "Rules in the running domain list", MetricType::Gauge), {},
        double(domains_->rules()));
    auto& per_rule = mf.family(
        "exitgw_domain_rule_matches_total",
        "Exit packets matched, by the deciding domain rule (its 0-based index in the list, its "
        "pattern and action), summed over workers; only rules that matched at least once",
        MetricType::Counter);
    for (const DomainRuleMatches& r : domains_->status()->rules)
      mf.counter(per_rule,
                 {{"rule", std::to_string(r.rule)},
                  {"pattern", r.pattern},
                  {"action", std::string(dp::domain::kActionNames[size_t(r.action)])}},
                 double(r.matches));
  }
  add_listener_metrics(mf, "metrics", services_.metrics_counters());
  add_listener_metrics(mf, "admin", services_.admin_counters());
  return serialize(mf.take());
}

void Gateway::render_wireguard_metrics(MetricFamilies& mf) {
  const WireGuardStats& s = wg_->stats();
  const dp::DataplaneContext& ctx = *ctx_;
  auto& hs = mf.family("exitgw_wg_handshake_messages_total",
                       "WireGuard handshake messages, by direction and type", MetricType::Counter);
  mf.counter(hs, {{"direction", "rx"}, {"type", "initiation"}}, double(s.initiations_received));
  mf.counter(hs, {{"direction", "rx"}, {"type", "response"}}, double(s.responses_received));
  mf.counter(hs, {{"direction", "rx"}, {"type", "cookie_reply"}}, double(s.cookies_received));
  mf.counter(hs, {{"direction", "tx"}, {"type", "initiation"}}, double(s.initiations_sent));
  mf.counter(hs, {{"direction", "tx"}, {"type", "response"}}, double(s.responses_sent));
  mf.counter(hs, {{"direction", "tx"}, {"type", "cookie_reply"}}, double(s.cookies_sent));
  auto& result = mf.family("exitgw_wg_handshakes_total",
                           "WireGuard handshake messages by result: ok (a session was made) or "
                           "the reason it was rejected",
                           MetricType::Counter);
  mf.counter(result, {{"result", "ok"}}, double(s.handshakes_completed));
  for (size_t i = 0; i < s.rejected.size(); ++i)
    mf.counter(result, {{"result", std::string(wg::kHandshakeErrorNames[i])}},
               double(s.rejected[i]));
  mf.counter(result, {{"result", "rate_limited"}}, double(s.rate_limited));
  auto& disco = mf.family("exitgw_disco_frames_total",
                          "Tailscale disco frames on the WireGuard port, by what became of them: "
                          "pong_sent or the reason the frame was ignored",
                          MetricType::Counter);
  for (size_t i = 0; i < s.disco.size(); ++i)
    mf.counter(disco, {{"result", std::string(disco::kVerdictNames[i])}}, double(s.disco[i]));
  mf.counter(mf.family("exitgw_wg_cookies_sent_total", "Cookie replies sent while under load",
                       MetricType::Counter),
             {}, double(s.cookies_sent));
  mf.gauge(mf.family("exitgw_wg_under_load", "1 while handshakes need a cookie (MAC2)",
                     MetricType::Gauge),
           {}, s.under_load ? 1 : 0);
  mf.counter(mf.family("exitgw_wg_keepalives_sent_total", "Keepalives the control thread sent",
                       MetricType::Counter),
             {}, double(s.keepalives_sent));
  mf.gauge(mf.family("exitgw_wg_peers", "Configured WireGuard peers", MetricType::Gauge), {},
           double(s.active_peers));
  mf.gauge(mf.family("exitgw_allowed_ips6_routes",
                     "IPv6 allowed-IPs prefixes in the published cryptokey-routing table "
                     "(rte_lpm6)",
                     MetricType::Gauge),
           {}, double(s.allowed_ips6_routes));
  mf.gauge(mf.family("exitgw_wg_keypairs", "Live WireGuard keypairs (previous, current, next)",
                     MetricType::Gauge),
           {}, double(s.keypairs));
  mf.counter(mf.family("exitgw_wg_keypairs_expired_total",
                       "Keypairs zeroed after REJECT_AFTER_TIME", MetricType::Counter),
             {}, double(s.keypairs_expired));
  mf.gauge(mf.family("exitgw_worker_commands_waiting",
                     "Commands to workers (NAT removals of a prefix that left its peer) waiting "
                     "for room in a full command ring; retried every tick",
                     MetricType::Gauge),
           {}, double(s.worker_commands_waiting));
  mf.gauge(mf.family("exitgw_worker_commands_in_ring",
                     "Commands in workers' rings not carried out yet; a moved prefix is routed "
                     "to its new owner only once every worker has removed its NAT state",
                     MetricType::Gauge),
           {}, double(s.worker_commands_in_ring));
  mf.counter(mf.family("exitgw_worker_commands_overdue_total",
                       "Commands a worker left undone for 2 s: the routes waiting for them were "
                       "released anyway (the worker is stuck or starved)",
                       MetricType::Counter),
             {}, double(s.worker_commands_overdue));
  mf.counter(mf.family("exitgw_worker_commands_dropped_total",
                       "NAT removals dropped because a worker let the most allowed wait (it "
                       "takes no commands); the prefix's old NAT state may stay behind",
                       MetricType::Counter),
             {}, double(s.worker_commands_dropped));
  mf.counter(mf.family("exitgw_wg_peers_reloads_total", "Peers file reloads, by result",
                       MetricType::Counter),
             {{"result", "ok"}}, double(s.peers_reloads - s.peers_reload_errors));
  mf.counter(mf.family("exitgw_wg_peers_reloads_total", "", MetricType::Counter),
             {{"result", "rejected"}}, double(s.peers_reload_errors));
  auto& tp = mf.family("exitgw_wg_transport_packets_total",
                       "WireGuard transport packets authenticated (rx) or sealed (tx)",
                       MetricType::Counter);
  auto& tb = mf.family("exitgw_wg_transport_bytes_total",
                       "WireGuard transport message bytes, by direction", MetricType::Counter);
  auto& ka = mf.family("exitgw_wg_keepalives_received_total",
                       "Authenticated keepalives (empty transport messages) received",
                       MetricType::Counter);
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    const dp::LcoreCounters& c = ctx.workers[w].counters;
    const Labels wl{{"worker", std::to_string(w)}};
    Labels rx = wl, tx = wl;
    rx.push_back({"direction", "rx"});
    tx.push_back({"direction", "tx"});
    mf.counter(tp, rx, double(c.wg_rx_packets.get()));
    mf.counter(tp, tx, double(c.wg_tx_packets.get()));
    mf.counter(tb, rx, double(c.wg_rx_bytes.get()));
    mf.counter(tb, tx, double(c.wg_tx_bytes.get()));
    mf.counter(ka, wl, double(c.wg_keepalives_received.get()));
  }
  const auto peers = peer_status_.load();
  if (peers) {
    auto& age = mf.family("exitgw_wg_peer_last_handshake_seconds",
                          "Unix time of the peer's newest handshake (0: none)", MetricType::Gauge);
    auto& prx = mf.family("exitgw_wg_peer_rx_bytes_total", "Transport bytes from the peer",
                          MetricType::Counter);
    auto& ptx =
        mf.family("exitgw_wg_peer_tx_bytes_total", "Bytes sent to the peer", MetricType::Counter);
    for (const PeerStatus& p : *peers) {
      const Labels l{{"peer", p.public_key}, {"user", p.user}};
      mf.gauge(age, l, double(p.last_handshake_unix_ms) / 1000.0);
      mf.counter(prx, l, double(p.rx_bytes));
      mf.counter(ptx, l, double(p.tx_bytes));
    }
  }
}

void Gateway::render_nat_metrics(MetricFamilies& mf) {
  if (ctx_->nat || ctx_->nat66) {
    auto& steering = mf.family("exitgw_nat_nic_steering",
                               "1 when the internet port's rte_flow rules queue the family's pool "
                               "ports to their worker; 0: the software hand-off steers them",
                               MetricType::Gauge);
    if (ctx_->nat) mf.gauge(steering, {{"family", "ipv4"}}, nat_nic_steering_ ? 1.0 : 0.0);
    if (ctx_->nat66) mf.gauge(steering, {{"family", "ipv6"}}, nat66_nic_steering_ ? 1.0 : 0.0);
  }
  if (nat_) render_nat_family_metrics(mf, *nat_);
  if (nat66_) render_nat_family_metrics(mf, *nat66_);
}

void Gateway::render_nat_family_metrics(MetricFamilies& mf, const dp::nat::NatConfig& cfg) {
  const dp::DataplaneContext& ctx = *ctx_;
  const bool v6 = cfg.family == dp::nat::NatFamily::kIpv6;
  const std::string p = v6 ? "exitgw_nat66_" : "exitgw_nat_";
  const std::string what = v6 ? "NAT66 " : "NAT ";
  auto& sessions =
      mf.family(p + "sessions", what + "sessions by protocol and TCP state", MetricType::Gauge);
  auto& translations = mf.family(p + "translations_total",
                                 what + "packets translated, by direction", MetricType::Counter);
  auto& created =
      mf.family(p + "sessions_created_total", what + "sessions created", MetricType::Counter);
  auto& expired =
      mf.family(p + "sessions_expired_total", what + "sessions removed after their idle timeout",
                MetricType::Counter);
  auto& removed = mf.family(p + "sessions_removed_total",
                            what +
                                "sessions removed with their peer (or a prefix it no longer "
                                "has)",
                            MetricType::Counter);
  auto& blocks =
      mf.family(p + "blocks_allocated_total",
                "Port blocks allocated (released: the release counter)", MetricType::Counter);
  auto& released =
      mf.family(p + "blocks_released_total", "Port blocks released", MetricType::Counter);
  auto& exhausted =
      mf.family(p + "pool_exhausted_total",
                "Times a subscriber found its paired address's slice full", MetricType::Counter);
  auto& subscribers =
      mf.family(p + "subscribers", "Subscribers holding " + what + "state", MetricType::Gauge);
  auto& hairpin =
      mf.family(p + "hairpinned_total", "Packets between two subscribers through a public address",
                MetricType::Counter);
  auto& in_use =
      mf.family(p + "blocks_in_use", "Port blocks in use per public address", MetricType::Gauge);
  // NAT44's drops are the data path's drop reasons (exitgw_drops_total); NAT66's share those
  // reasons, so its own count per reason is here.
  prometheus::MetricFamily* drops =
      v6 ? &mf.family("exitgw_nat66_drops_total", "NAT66 drops by reason", MetricType::Counter)
         : nullptr;
  std::vector<uint64_t> by_address(cfg.pool_size(), 0);
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    const dp::nat::NatCounters* c =
        (v6 ? ctx.workers[w].nat66_counters : ctx.workers[w].nat_counters)
            .load(std::memory_order_acquire);
    if (c == nullptr) continue;
    const std::string ws = std::to_string(w);
    mf.gauge(sessions, {{"worker", ws}, {"protocol", "tcp"}, {"state", "established"}},
             double(c->sessions_tcp_established.get()));
    mf.gauge(sessions, {{"worker", ws}, {"protocol", "tcp"}, {"state", "transitory"}},
             double(c->sessions_tcp_transitory.get()));
    mf.gauge(sessions, {{"worker", ws}, {"protocol", "udp"}, {"state", ""}},
             double(c->sessions_udp.get()));
    mf.gauge(sessions, {{"worker", ws}, {"protocol", "icmp"}, {"state", ""}},
             double(c->sessions_icmp.get()));
    mf.counter(translations, {{"worker", ws}, {"direction", "out"}},
               double(c->translated_out.get()));
    mf.counter(translations, {{"worker", ws}, {"direction", "in"}}, double(c->translated_in.get()));
    mf.counter(created, {{"worker", ws}}, double(c->sessions_created.get()));
    mf.counter(expired, {{"worker", ws}}, double(c->sessions_expired.get()));
    mf.counter(removed, {{"worker", ws}}, double(c->sessions_removed.get()));
    mf.counter(blocks, {{"worker", ws}}, double(c->blocks_allocated.get()));
    mf.counter(released, {{"worker", ws}}, double(c->blocks_released.get()));
    mf.counter(exhausted, {{"worker", ws}}, double(c->pool_exhausted.get()));
    mf.gauge(subscribers, {{"worker", ws}}, double(c->subscribers.get()));
    mf.counter(hairpin, {{"worker", ws}}, double(c->hairpinned.get()));
    for (size_t a = 0; a < by_address.size() && c->blocks_by_address; ++a)
      by_address[a] += c->blocks_by_address[a].get();
    if (drops)
      for (size_t d = 0; d < dp::nat::kNatDropNames.size(); ++d)
        mf.counter(*drops, {{"worker", ws}, {"reason", std::string(dp::nat::kNatDropNames[d])}},
                   double(c->drops[d].get()));
  }
  // Per address only for pools an operator can read; a /16 pool would be 65536 series.
  if (by_address.size() <= 256)
    for (size_t a = 0; a < by_address.size(); ++a) {
      const auto i = static_cast<uint32_t>(a);
      mf.gauge(in_use,
               {{"address",
                 v6 ? format_ipv6(cfg.address6(i).bytes().data()) : format_ipv4(cfg.address(i))}},
               double(by_address[a]));
    }
}

// The connector's health as it last reported it; "none" until one reports. The netmap age grows
// from the report's last netmap time, so a connector that stopped reporting still shows up.
void Gateway::render_tailnet_metrics(MetricFamilies& mf) {
  const auto h = tailnet_health_.load();
  const std::string state = h ? h->state : "none";
  auto& st = mf.family("exitgw_tailnet_state",
                       "1 for the tailnet connector's current state (none: no connector has "
                       "reported; ok; stale: the coordination server is unreachable and the last "
                       "netmap stays in force; logged_out; error)",
                       MetricType::Gauge);
  for (std::string_view s : kTailnetStates) mf.gauge(st, {{"state", std::string(s)}}, s == state);
  double age = 0;
  if (h && h->last_netmap_unix_ms != 0) {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    age = double(std::max<int64_t>(0, now - h->last_netmap_unix_ms)) / 1000.0;
  }
  mf.gauge(mf.family("exitgw_tailnet_netmap_age_seconds",
                     "Seconds since the connector's last netmap (0 without a connector or "
                     "netmap)",
                     MetricType::Gauge),
           {}, age);
}

void Gateway::render_policy_metrics(MetricFamilies& mf) {
  const auto st = policy_->status();
  if (!st) return;
  mf.gauge(
      mf.family("exitgw_exit_approved",
                "1 when this node is advertised and approved as an exit node", MetricType::Gauge),
      {}, st->approved ? 1 : 0);
  auto& hits = mf.family("exitgw_policy_rule_hits_total",
                         "Exit packets matched per policy rule (default-deny, builtin:<range>, "
                         "acls[i], grants[i])",
                         MetricType::Counter);
  for (const auto& [rule, n] : st->rule_hits) mf.counter(hits, {{"rule", rule}}, double(n));
  mf.gauge(mf.family("exitgw_policy_rules", "Compiled exit-policy rules", MetricType::Gauge), {},
           double(st->rules));
  // One series per source, 1 for the one in force, so a change of source is a value change.
  auto& source = mf.family("exitgw_policy_source",
                           "1 for the source of the running exit policy (default, file, the "
                           "update source of an override: admin, etcd; or tailnet: the "
                           "connector's packet filter)",
                           MetricType::Gauge);
  bool known = false;
  for (const std::string_view s :
       {kPolicySourceDefault, kPolicySourceFile, std::string_view("admin"),
        std::string_view("etcd"), kPolicySourceTailnet}) {
    known |= s == st->source;
    mf.gauge(source, {{"source", std::string(s)}}, s == st->source ? 1 : 0);
  }
  if (!known) mf.gauge(source, {{"source", st->source}}, 1);
  auto& reloads = mf.family("exitgw_policy_reloads_total",
                            "Policy or approvals file reloads, by result", MetricType::Counter);
  mf.counter(reloads, {{"result", "ok"}}, double(policy_->reloads() - policy_->reload_errors()));
  mf.counter(reloads, {{"result", "rejected"}}, double(policy_->reload_errors()));
  mf.counter(mf.family("exitgw_policy_build_errors_total",
                       "Policy classifier builds that failed (out of DPDK memory); the changes "
                       "they carried were refused (file reloads also count as rejected)",
                       MetricType::Counter),
             {}, double(policy_->build_errors()));
  mf.counter(mf.family("exitgw_policy_builds_skipped_total",
                       "Policy changes published with the running classifier: only peers' "
                       "classes or the approval changed, no rte_acl build was needed",
                       MetricType::Counter),
             {}, double(policy_->builds_skipped()));
  auto& builds = mf.family("exitgw_build_seconds",
                           "Seconds the builder threads took per build, superseded ones too: "
                           "rte_acl policy classifiers (builder=policy) and Hyperscan domain "
                           "lists (builder=domains), which never run on the control thread",
                           MetricType::Histogram);
  {
    const auto d = policy_->build_durations();
    mf.histogram(builds, {{"builder", "policy"}}, kBuildSecondsBounds, d.counts, d.sum_seconds);
  }
  if (domains_) {
    const auto d = domains_->build_durations();
    mf.histogram(builds, {{"builder", "domains"}}, kBuildSecondsBounds, d.counts, d.sum_seconds);
  }
}

Readiness Gateway::readiness() {
  const dp::DataplaneContext& ctx = *ctx_;
  // Served by the metrics thread, so a stalled control thread shows here.
  if (Readiness r =
          heartbeat_.readiness(steady_now_ns(), uint64_t{FLAGS_control_stall_ms} * 1'000'000);
      !r.ready)
    return r;
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    if (!stats_.link_up[p].load()) return {false, "port " + port_labels_[p] + " link down"};
  for (unsigned w = 0; w < ctx.n_workers; ++w)
    if (!ctx.workers[w].running.load(std::memory_order_acquire))
      return {false, "worker " + std::to_string(w) + " not running"};
  return {true, ""};
}

}  // namespace exitgw
