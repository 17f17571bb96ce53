// Gateway: data plane construction, worker launch, the control loop and shutdown.
#include "control/gateway.h"

#include <unistd.h>

#include <array>
#include <chrono>
#include <cstring>
#include <thread>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_rcu_qsbr.h>

#include "common/log_escape.h"
#include "control/flags.h"
#include "control/log.h"
#include "control/nat_steering.h"
#include "control/net_parse.h"
#include "control/nptv6_map.h"
#include "control/ports.h"
#include "dataplane/events.h"
#include "control/export/nat_event.h"
#include "common/nat_types.h"
#include "dataplane/packet_meta.h"
#include "dataplane/worker.h"

namespace exitgw {

namespace {

Status set_addr(dp::PortInfo& info, const std::string& flag, const std::string& value,
                const std::string& gateway_flag, const std::string& gateway) {
  auto prefix = parse_ipv4_prefix(value);
  if (!prefix) return make_error("--" + flag + ": " + prefix.error());
  if (prefix->len == 0 || prefix->len > 31)
    return make_error("--" + flag + "=" + value + ": the prefix length must be 1..31");
  const uint32_t addr = rte_cpu_to_be_32(prefix->addr);
  if (!info.owns(addr)) {
    if (info.n_addrs == dp::kMaxPortAddrs) return make_error("too many addresses on one port");
    info.netmasks[info.n_addrs] = rte_cpu_to_be_32(prefix->mask());
    info.addrs[info.n_addrs++] = addr;
  }
  if (!gateway.empty()) {
    auto gw = parse_ipv4(gateway);
    if (!gw) return make_error("--" + gateway_flag + ": " + gw.error());
    if (!info.on_link(rte_cpu_to_be_32(*gw)))
      return make_error("--" + gateway_flag + "=" + gateway + " is not inside " + value);
    info.gateway = rte_cpu_to_be_32(*gw);
  }
  return Ok{};
}

// IPv6 on a port (its MAC known): the link-local address from the MAC (RFC 4291 appendix A),
// then the configured one; the gateway, link-local or inside that prefix.
Status set_addr6(dp::PortInfo& info, const std::string& flag, const std::string& value,
                 const std::string& gateway_flag, const std::string& gateway) {
  if (value.empty()) {
    if (!gateway.empty()) return make_error("--" + gateway_flag + " needs --" + flag);
    return Ok{};
  }
  auto p = parse_ipv6_prefix(value);
  if (!p) return make_error("--" + flag + ": " + p.error());
  const uint8_t* a = p->addr.data();
  if (p->len == 0 || ipv6_multicast(a) || ipv6_link_local(a) || ipv6_unspecified_or_loopback(a))
    return make_error("--" + flag + "=" + value +
                      ": give a unicast address that is not link-local (the link-local one "
                      "comes from the port's MAC) and a prefix length 1..128");
  if (info.n_addrs6 == 0) {
    dp::PortInfo::link_local6(info.mac, info.addrs6[0]);
    info.prefix6[0] = 64;
    info.n_addrs6 = 1;
  }
  // One port for tunnel and internet: both addresses on it.
  if (!info.owns6(a)) {
    if (info.n_addrs6 == dp::kMaxPortAddrs6)
      return make_error("too many IPv6 addresses on one port");
    std::memcpy(info.addrs6[info.n_addrs6], a, 16);
    info.prefix6[info.n_addrs6++] = p->len;
  }
  if (!gateway.empty()) {
    auto gw = parse_ipv6(gateway);
    if (!gw) return make_error("--" + gateway_flag + ": " + gw.error());
    const uint8_t* g = gw->data();
    if (ipv6_multicast(g) || info.owns6(g) ||
        !(ipv6_link_local(g) || ipv6_prefix_match(g, a, p->len)))
      return make_error("--" + gateway_flag + "=" + gateway +
                        " must be a link-local address or inside " + value +
                        ", and not the gateway's own");
    std::memcpy(info.gateway6, g, 16);
  }
  return Ok{};
}

}  // namespace

Gateway::Gateway() : ctx_(std::make_unique<dp::DataplaneContext>()) {}

Gateway::~Gateway() {
  shutdown();
}

Status Gateway::init() {
  dp::DataplaneContext& ctx = *ctx_;
  if (FLAGS_wg_udp_checksum == "full" || FLAGS_wg_udp_checksum == "aead")
    ctx.wg_udp_checksum_aead = FLAGS_wg_udp_checksum == "aead";
  else
    return make_error("--wg_udp_checksum=" + FLAGS_wg_udp_checksum + ": use 'full' or 'aead'");
  if (FLAGS_poll_mode == "adaptive")
    ctx.poll_mode = dp::PollMode::kAdaptive;
  else if (FLAGS_poll_mode == "busy")
    ctx.poll_mode = dp::PollMode::kBusy;
  else
    return make_error("--poll_mode=" + FLAGS_poll_mode + ": use 'adaptive' or 'busy'");
  if (FLAGS_wg_listen_port == 0 || FLAGS_wg_listen_port > 65535)
    return make_error("--wg_listen_port must be 1..65535");
  if (FLAGS_mbufs < 1024) return make_error("--mbufs must be at least 1024");
  if (FLAGS_rx_desc == 0 || FLAGS_rx_desc > 16384 || FLAGS_tx_desc == 0 || FLAGS_tx_desc > 16384)
    return make_error("--rx_desc and --tx_desc must be 1..16384");
  ctx.idle_sleep_max_us = std::max(1u, FLAGS_idle_sleep_max_us);
  ctx.icmp_rate_per_sec = FLAGS_icmp_rate;
  ctx.icmp_burst = std::max(1u, FLAGS_icmp_burst);
  ctx.exception_rate_per_sec = FLAGS_exception_rate;
  ctx.exception_burst = std::max(1u, FLAGS_exception_rate / 10);
  ctx.wg_port_be = rte_cpu_to_be_16(static_cast<uint16_t>(FLAGS_wg_listen_port));
  if (auto hp = parse_host_port(FLAGS_metrics_listen); !FLAGS_metrics_listen.empty() && !hp)
    return make_error("--metrics_listen: " + hp.error());
  auto statics = parse_static_neighbors(FLAGS_static_neighbors);
  if (!statics) return make_error("--static_neighbors: " + statics.error());

  std::string node = FLAGS_node;
  if (node.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    node = host;
  }
  constant_labels_ = {{"region", FLAGS_region}, {"node", node}};
  flow_export_ = std::make_unique<FlowExport>(ctx);
  if (Status s = flow_export_->init_exporter(node); !s) return s;

  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) {
    worker_lcores_.push_back(lcore);
  }
  if (worker_lcores_.empty())
    return make_error(
        "no worker lcores: give the main lcore and at least one worker, e.g. "
        "-l 0-1, or --lcores=0@0,1@1,2@1 to share CPUs");
  if (worker_lcores_.size() > dp::kMaxWorkers)
    return make_error("at most " + std::to_string(dp::kMaxWorkers) + " worker lcores");
  ctx.n_workers = static_cast<unsigned>(worker_lcores_.size());

  const size_t rcu_size = rte_rcu_qsbr_get_memsize(ctx.n_workers);
  ctx.rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("exitgw_rcu", rcu_size, RTE_CACHE_LINE_SIZE));
  if (ctx.rcu == nullptr || rte_rcu_qsbr_init(ctx.rcu, ctx.n_workers) != 0)
    return make_error("cannot allocate the RCU state (out of DPDK memory? give -m or hugepages)");

  pool_ =
      rte_pktmbuf_pool_create("exitgw_mbufs", FLAGS_mbufs, FLAGS_mbuf_cache, sizeof(dp::PacketMeta),
                              RTE_MBUF_DEFAULT_BUF_SIZE, static_cast<int>(rte_socket_id()));
  if (pool_ == nullptr)
    return make_error("cannot allocate " + std::to_string(FLAGS_mbufs) +
                      " mbufs: " + rte_strerror(rte_errno) +
                      "; reserve more hugepages, lower --mbufs, or run with --no-huge -m 512");

  ctx.pool = pool_;
  if (Status s = init_ports(); !s) return s;

  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    dp::WorkerShared& ws = ctx.workers[w];
    ws.lcore_id = worker_lcores_[w];
    ws.queue = static_cast<uint16_t>(w);
    const std::string punt = "punt" + std::to_string(w), events = "events" + std::to_string(w);
    ws.punt = rte_ring_create(punt.c_str(), 1024, rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
    ws.events = rte_ring_create_elem(events.c_str(), sizeof(dp::Event), 4096, rte_socket_id(),
                                     RING_F_SP_ENQ | RING_F_SC_DEQ);
    const std::string handoff = "handoff" + std::to_string(w);
    ws.handoff = rte_ring_create(handoff.c_str(), 4096, rte_socket_id(), RING_F_SC_DEQ);
    const std::string commands = "commands" + std::to_string(w);
    ws.commands = rte_ring_create_elem(commands.c_str(), sizeof(dp::WorkerCommand), 1024,
                                       rte_socket_id(), RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (ws.punt == nullptr || ws.events == nullptr || ws.handoff == nullptr ||
        ws.commands == nullptr)
      return make_error("cannot create worker rings: " + std::string(rte_strerror(rte_errno)));
  }

  if (Status s = init_nat(); !s) return s;
  if (Status s = flow_export_->init_flows(); !s) return s;

  NeighborOptions nopt{FLAGS_neighbor_capacity, FLAGS_arp_retry_ms, FLAGS_arp_retries,
                       FLAGS_arp_max_pending, FLAGS_neighbor_reachable_s};
  neighbors_ = std::make_unique<NeighborTable>(ctx, pool_, nopt);
  if (Status s = neighbors_->create_table(); !s) return s;
  for (const StaticNeighbor& n : *statics)
    if (Status s = neighbors_->add_static(n.ip, n.mac); !s)
      return make_error("--static_neighbors: " + s.error());
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    if (ctx.ports[p].has_gateway6())
      neighbors_->want6(static_cast<uint8_t>(p), ctx.ports[p].gateway6, steady_now_ns() / 1000000);
  WireGuardOptions wopt;
  wopt.private_key_file = FLAGS_private_key_file;
  wopt.peers_file = FLAGS_peers_file;
  wopt.disco_private_key_file = FLAGS_disco_private_key_file;
  wopt.max_peers = FLAGS_max_peers;
  if (FLAGS_tunnel_mtu < 576 || FLAGS_tunnel_mtu > 9000)
    return make_error("--tunnel_mtu must be 576..9000");
  // IPv6 links carry 1280 bytes at least (RFC 8200 5): a smaller Packet Too Big is ignored by
  // hosts, and the gateway's own ICMPv6 errors (up to 1280 bytes) would not fit the tunnel.
  if (!FLAGS_internet_addr6.empty() && FLAGS_tunnel_mtu < 1280)
    return make_error("--tunnel_mtu=" + std::to_string(FLAGS_tunnel_mtu) +
                      " is below IPv6's minimum MTU (1280, RFC 8200 section 5); with "
                      "--internet_addr6 the tunnel carries IPv6: give 1280 or more");
  wopt.tunnel_mtu = static_cast<uint16_t>(FLAGS_tunnel_mtu);
  wopt.rekey_after_s = FLAGS_wg_rekey_after_time;
  wopt.reject_after_s = FLAGS_wg_reject_after_time;
  wopt.under_load_backlog = std::max(1u, FLAGS_handshake_under_load);
  // What no peer may be: these addresses (the NAT pool is noted by init_nat), this key.
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    for (unsigned a = 0; a < ctx.ports[p].n_addrs; ++a)
      self_.interfaces.push_back(
          {rte_be_to_cpu_32(ctx.ports[p].addrs[a]),
           static_cast<uint8_t>(__builtin_popcount(ctx.ports[p].netmasks[a]))});
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    for (unsigned a = 0; a < ctx.ports[p].n_addrs6; ++a) {
      std::array<uint8_t, 16> own;
      std::memcpy(own.data(), ctx.ports[p].addrs6[a], 16);
      self_.addresses6.push_back(own);
    }
  wopt.self = self_;
  wg_ = std::make_unique<WireGuard>(ctx, *neighbors_, pool_, wopt);
  if (Status s = wg_->init(); !s) return s;
  if (auto own = wg::key_from_base64(wg_->public_key_base64())) self_.public_key = *own;
  if (Status s = init_policy(); !s) return s;
  if (!FLAGS_domain_list_file.empty()) {
    domains_ = std::make_unique<DomainPolicy>(ctx, FLAGS_domain_list_file);
    if (Status s = domains_->init(); !s) return s;
  }
  dp::set_worker_context(&ctx);
  return Ok{};
}

Status Gateway::init_ports() {
  dp::DataplaneContext& ctx = *ctx_;
  auto tunnel = find_port(FLAGS_tunnel_port);
  if (!tunnel) return make_error("--tunnel_port: " + tunnel.error());
  uint16_t internet_id = *tunnel;
  if (!FLAGS_internet_port.empty()) {
    auto internet = find_port(FLAGS_internet_port);
    if (!internet) return make_error("--internet_port: " + internet.error());
    internet_id = *internet;
  }
  ctx.n_ports = internet_id == *tunnel ? 1 : 2;
  ctx.role_port[static_cast<size_t>(dp::PortRole::kTunnel)] = 0;
  ctx.role_port[static_cast<size_t>(dp::PortRole::kInternet)] = ctx.n_ports == 1 ? 0 : 1;
  ctx.ports[0].port_id = *tunnel;
  ctx.ports[1].port_id = internet_id;
  dp::PortInfo& t = ctx.ports[0];
  dp::PortInfo& i = ctx.ports[ctx.port_index(dp::PortRole::kInternet)];
  if (Status s =
          set_addr(t, "tunnel_addr", FLAGS_tunnel_addr, "tunnel_gateway", FLAGS_tunnel_gateway);
      !s)
    return s;
  if (Status s = set_addr(i, "internet_addr", FLAGS_internet_addr, "internet_gateway",
                          FLAGS_internet_gateway);
      !s)
    return s;
  if (!FLAGS_exception_port.empty()) {
    auto exception = find_port(FLAGS_exception_port);
    if (!exception) return make_error("--exception_port: " + exception.error());
    if (*exception == *tunnel || *exception == internet_id)
      return make_error(
          "--exception_port must be a port of its own (a TUN), not the tunnel or "
          "internet port");
    ctx.exception_port = static_cast<uint8_t>(ctx.n_ports);
    ctx.ports[ctx.n_ports].port_id = *exception;
    ctx.ports[ctx.n_ports].l3 = true;
    ++ctx.n_ports;
  }
  PortOptions opt;
  opt.workers = ctx.n_workers;
  opt.rx_desc = static_cast<uint16_t>(FLAGS_rx_desc);
  opt.tx_desc = static_cast<uint16_t>(FLAGS_tx_desc);
  opt.rss = FLAGS_rss;
  for (unsigned p = 0; p < ctx.n_ports; ++p) {
    dp::PortInfo& info = ctx.ports[p];
    info.tx_queue_control = static_cast<uint16_t>(ctx.n_workers);
    std::string notes;
    auto rxq = start_port(info.port_id, opt, pool_, &notes);
    if (!rxq) return make_error(rxq.error());
    ports_started_ = true;
    info.n_rx_queues = *rxq;
    if (!notes.empty()) log_info(notes);
    rte_eth_macaddr_get(info.port_id, &info.mac);
    std::string role = p == ctx.exception_port ? "exception"
                       : p == ctx.port_index(dp::PortRole::kInternet)
                           ? (p == 0 ? "tunnel+internet" : "internet")
                           : "tunnel";
    port_labels_.push_back(role);
    char mac[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(mac, sizeof(mac), &info.mac);
    log_info("port " + port_name(info.port_id) + " (" + role + ") mac " + mac + " address " +
             (info.n_addrs ? format_ipv4(rte_be_to_cpu_32(info.addrs[0])) : "none") + ", " +
             std::to_string(info.n_rx_queues) + " RX / " + std::to_string(ctx.n_workers + 1) +
             " TX queues");
  }
  if (Status s = set_addr6(t, "tunnel_addr6", FLAGS_tunnel_addr6, "", ""); !s) return s;
  if (Status s = set_addr6(i, "internet_addr6", FLAGS_internet_addr6, "internet_gateway6",
                           FLAGS_internet_gateway6);
      !s)
    return s;
  for (unsigned p = 0; p < ctx.n_ports; ++p)
    if (const dp::PortInfo& info = ctx.ports[p]; info.ipv6()) {
      std::string addrs;
      for (unsigned a = 0; a < info.n_addrs6; ++a)
        addrs +=
            (a ? ", " : "") + format_ipv6(info.addrs6[a]) + "/" + std::to_string(info.prefix6[a]);
      log_info("port " + port_name(info.port_id) + " IPv6 " + addrs +
               (info.has_gateway6() ? "; gateway " + format_ipv6(info.gateway6) : std::string()));
    }
  if (ctx.exception_port != dp::kNoPort) {
    auto e = ExceptionInterface::open(ctx.ports[ctx.exception_port].port_id,
                                      static_cast<uint16_t>(FLAGS_tunnel_mtu));
    if (!e) return make_error("--exception_port: " + e.error());
    exception_ = std::move(*e);
    log_info("exception port: kernel interface " + exception_->name() +
             "; it gets the node's tailnet address when the connector reports it");
    if (!FLAGS_relay_net.empty()) {
      auto net = parse_ipv4_prefix(FLAGS_relay_net);
      if (!net || net->len > 30 || (net->addr & ~net->mask()) != 0)
        return make_error("--relay_net=" + FLAGS_relay_net +
                          ": give a network of at least 4 addresses, e.g. 169.254.77.0/30");
      const uint32_t host = net->addr + 1, gateway = net->addr + 2;
      if (Status s = exception_->set_relay_address(host, net->len); !s)
        return make_error("--relay_net: " + s.error());
      ctx.relay_host = rte_cpu_to_be_32(host);
      ctx.relay_gateway = rte_cpu_to_be_32(gateway);
      log_info("DERP relay: the connector's sockets on " + format_ipv4(host) + ", exitgw at " +
               format_ipv4(gateway) + ":" + std::to_string(FLAGS_wg_listen_port));
    }
  }
  return Ok{};
}

void Gateway::set_tailnet_addresses(const std::vector<std::string>& addresses) {
  dp::DataplaneContext& ctx = *ctx_;
  uint32_t v4[dp::kMaxTailnetAddrs] = {};
  uint8_t v6[dp::kMaxTailnetAddrs][16] = {};
  unsigned n = 0, n6 = 0;
  for (const std::string& a : addresses) {
    if (auto ip = parse_ipv4(a)) {
      if (n < dp::kMaxTailnetAddrs) v4[n++] = *ip;
    } else if (auto ip6 = parse_ipv6(a); ip6 && n6 < dp::kMaxTailnetAddrs) {
      std::memcpy(v6[n6++], ip6->data(), 16);
    }
  }
  // IPv4 one word at a time: a worker may see a mix for one burst, never a wrong address.
  // IPv6 addresses are wider than an atomic word: a seqlock (common/tailnet_addrs.h).
  for (unsigned i = 0; i < dp::kMaxTailnetAddrs; ++i)
    ctx.tailnet_addrs[i].store(rte_cpu_to_be_32(v4[i]), std::memory_order_relaxed);
  ctx.tailnet_addrs6.publish(v6, n6);
  std::string shown;
  for (unsigned i = 0; i < n; ++i) shown += (i ? ", " : "") + format_ipv4(v4[i]);
  for (unsigned i = 0; i < n6; ++i) shown += (shown.empty() ? "" : ", ") + format_ipv6(v6[i]);
  log_info("tailnet addresses: " + (shown.empty() ? std::string("none") : shown));
  if (exception_) {
    if (Status s = exception_->set_address(v4[0]); !s) log_error(s.error());
    std::array<uint8_t, 16> first6{};
    std::memcpy(first6.data(), v6[0], 16);
    if (Status s = exception_->set_address6(first6); !s) log_error(s.error());
  }
}

std::optional<UpdateResult> Gateway::apply_update(const Update& u, const std::string& source) {
  UpdateResult r;
  if (const auto* tr = std::get_if<TailnetReport>(&u)) {
    // Health, not configuration: shown, never a new generation; logged when the state changes.
    if (tr->health.state != tailnet_.state)
      log_info("tailnet: " + tr->health.state +
               (tr->health.message.empty()
                    ? ""
                    : " (" + escape_for_log(tr->health.message, 1024) + ")"));
    if (tr->health.addresses != tailnet_.addresses) set_tailnet_addresses(tr->health.addresses);
    tailnet_ = tr->health;
    tailnet_.reported_unix_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
    tailnet_health_.store(std::make_shared<const TailnetHealth>(tailnet_));
    r.generation = generation_;
    return r;
  }
  if (std::holds_alternative<PeerUpsert>(u) || std::holds_alternative<PeerRemove>(u) ||
      std::holds_alternative<PeerSet>(u)) {
    PeerPlan plan = plan_peer_update(wg_->sources(), u, source, self_);
    if (!plan.refusal.ok()) {
      r = std::move(plan.refusal);
    } else if (Status s = wg_->set_source_peers(source, std::move(plan.peers)); !s) {
      r.error = UpdateError::kInvalid;  // what only installing finds: capacity (--max_peers)
      r.message = s.error();
    }
  } else if (std::holds_alternative<ApprovalSet>(u) || std::holds_alternative<PolicyReplace>(u) ||
             std::holds_alternative<FilterReplace>(u)) {
    // Accepted changes are in force once their classifier is: at once when the running one
    // serves them, else when the builder thread has built it (the loop finishes the update).
    policy_done_.reset();
    auto done = [this](Status s) { policy_done_ = std::move(s); };
    Status s = Ok{};
    if (const auto* ap = std::get_if<ApprovalSet>(&u))
      s = policy_->set_approval_override(ap->approved, done);
    else if (const auto* pr = std::get_if<PolicyReplace>(&u))
      s = policy_->set_policy_override(pr->text, source, done);
    else
      s = policy_->set_tailnet_filter(std::get<FilterReplace>(u).filter, done);
    if (s && !policy_done_) return std::nullopt;  // building; finished by finish_policy_update()
    if (!s) policy_done_ = std::move(s);
    if (!*policy_done_) {
      r.error = UpdateError::kInvalid;
      r.message = policy_done_->error();
    }
    policy_done_.reset();
  } else if (const auto* dl = std::get_if<DestinationLogging>(&u)) {
    flow_export_->set_destination_logging(dl->on);
  } else if (const auto* dr = std::get_if<Drain>(&u)) {
    draining_ = dr->on;
    wg_->set_draining(dr->on);
  }
  return settle_update(std::move(r), source);
}

UpdateResult Gateway::settle_update(UpdateResult r, const std::string& source) {
  if (r.ok()) {
    note_applied(source);
    log_info("update from " + source + " applied, generation " + std::to_string(generation_));
  } else {
    log_warn("update from " + source + " rejected: " + r.message);
  }
  r.generation = generation_;
  return r;
}

void Gateway::finish_policy_update() {
  if (!updates_.in_flight() || !policy_done_) return;
  UpdateResult r;
  if (!*policy_done_) {
    r.error = UpdateError::kInvalid;  // what only building finds: out of DPDK memory
    r.message = policy_done_->error();
  }
  policy_done_.reset();
  const std::string source = *updates_.in_flight_source();
  updates_.finish(settle_update(std::move(r), source));
  publish_admin_view();
}

void Gateway::publish_admin_view() {
  auto v = std::make_shared<admin::AdminView>();
  v->generation = generation_;
  v->last_update_source = last_update_source_;
  v->last_update_unix_ms = last_update_unix_ms_;
  if (policy_) {
    const auto st = policy_->status();
    v->approved = st && st->approved;
    v->approval_reason = st ? st->approval_reason : "";
    v->approval_override = policy_->approval_override();
    if (st) {
      v->policy_source = st->source;
      v->policy_text = st->text;
      v->policy_rules = st->rules;
      v->policy_classes = st->classes;
      v->tailnet_filter = st->tailnet_filter;
    }
  }
  v->destination_logging = flow_export_->destination_logging();
  v->draining = draining_;
  v->tailnet = tailnet_;
  // A source is healthy when its latest reload applied (a fixed file heals it).
  v->sources["file:peers"].ok = wg_->last_reload_error().empty();
  v->sources["file:peers"].message = wg_->last_reload_error();
  v->sources["file:policy"].ok = !policy_ || policy_->last_reload_error().empty();
  if (policy_) v->sources["file:policy"].message = policy_->last_reload_error();
  if (domains_) {
    auto& d = v->sources["file:domains"];
    d.ok = domains_->last_reload_error().empty();
    d.message = domains_->last_reload_error();
  }
  if (const etcd::EtcdSource* etcd = services_.etcd()) {
    const auto h = etcd->health();
    auto& e = v->sources["etcd"];
    e.ok = h.connected && h.loaded;
    e.message = h.last_error;
  }
  for (auto& [name, health] : v->sources) {
    auto it = source_last_ok_ms_.find(name);
    if (it != source_last_ok_ms_.end()) health.last_ok_unix_ms = it->second;
  }
  if (flow_export_->has_exporter()) v->sources["ipfix"].ok = flow_export_->collector_up();
  const auto rows = wg_->peer_status();
  std::map<std::string, const PeerStatus*> by_key;
  for (const PeerStatus& ps : rows) by_key[ps.public_key] = &ps;
  for (const char* src : {"file", "admin", "etcd", "tailnet"}) {
    for (const PeerConfig& pc : wg_->source_peers(src)) {
      admin::AdminView::Peer p;
      p.public_key = pc.public_key;
      p.source = src;
      p.user = pc.user;
      p.tags = pc.tags;
      p.allowed_ips = pc.allowed_ips;
      p.allowed_ips6 = pc.allowed_ips6;
      if (pc.has_endpoint) p.endpoint = peer_endpoint_text(pc);
      p.persistent_keepalive = pc.persistent_keepalive;
      p.has_preshared_key = pc.has_preshared_key;
      p.has_disco_key = pc.has_disco_key;
      p.disco_key = pc.disco_key;
      if (auto it = by_key.find(wg::key_to_base64(pc.public_key)); it != by_key.end()) {
        p.last_handshake_unix_ms = static_cast<int64_t>(it->second->last_handshake_unix_ms);
        p.rx_bytes = it->second->rx_bytes;
        p.tx_bytes = it->second->tx_bytes;
        p.current_endpoint = it->second->endpoint;
      }
      v->peers.push_back(std::move(p));
    }
  }
  admin_view_.store(std::move(v));
}

Status Gateway::init_policy() {
  ExitPolicyOptions opt;
  opt.policy_file = FLAGS_policy_file;
  opt.approvals_file = FLAGS_approvals_file;
  opt.advertised = FLAGS_exit_node_advertised;
  opt.node_user = FLAGS_node_user;
  std::string_view tags = FLAGS_node_tags;
  while (!tags.empty()) {
    const size_t comma = tags.find(',');
    std::string tag(tags.substr(0, comma));
    if (tag.rfind("tag:", 0) != 0) return make_error("--node_tags: '" + tag + "' is not tag:NAME");
    opt.node_tags.push_back(tag);
    tags = comma == std::string_view::npos ? std::string_view{} : tags.substr(comma + 1);
  }
  for (unsigned p = 0; p < ctx_->n_ports; ++p)
    for (unsigned a = 0; a < ctx_->ports[p].n_addrs; ++a)
      opt.own_addresses.push_back(rte_be_to_cpu_32(ctx_->ports[p].addrs[a]));
  for (unsigned p = 0; p < ctx_->n_ports; ++p)
    for (unsigned a = 0; a < ctx_->ports[p].n_addrs6; ++a) {
      std::array<uint8_t, 16> addr;
      std::memcpy(addr.data(), ctx_->ports[p].addrs6[a], 16);
      opt.own_addresses6.push_back(addr);
    }
  policy_ = std::make_unique<ExitPolicy>(*ctx_, opt);
  policy_peers_generation_ = wg_->stats().generation;
  return policy_->init(wg_->policy_peers());
}

// NPTv6 (RFC 6296) from --nat_pool6 and --nat_inside6: equal lengths of /48 or shorter (the
// adjustment goes in bits 48-63), neither inside the other, never a group or link-local.
Status Gateway::init_nptv6() {
  if (FLAGS_nat_pool6.empty()) {
    if (!FLAGS_nptv6_map.empty())
      log_info("nat: no --nat_pool6: peers' IPv6 leaves only through --nptv6_map");
    else
      log_info(FLAGS_nat_pool.empty()
                   ? "nat: no --nat_pool6, routed mode: peers' IPv6 addresses leave untranslated"
                   : "nat: no --nat_pool6: peers' IPv6 packets are dropped (ipv6_no_nat_pool6)");
    return Ok{};
  }
  auto pool = parse_ipv6_prefix(FLAGS_nat_pool6);
  if (!pool) return make_error("--nat_pool6: " + pool.error());
  auto inside = parse_ipv6_prefix(FLAGS_nat_inside6);
  if (!inside) return make_error("--nat_inside6: " + inside.error());
  if (pool->len > dp::Nptv6::kMaxLen || pool->len == 0)
    return make_error("--nat_pool6=" + FLAGS_nat_pool6 +
                      ": NPTv6 needs a prefix of /1 to /48 (RFC 6296 adjusts bits 48-63)");
  if (inside->len != pool->len)
    return make_error("--nat_pool6=" + FLAGS_nat_pool6 + " and --nat_inside6=" + FLAGS_nat_inside6 +
                      ": NPTv6 maps prefixes 1:1, give both the same length");
  const uint8_t shorter = pool->len;
  if (ipv6_prefix_match(pool->addr.data(), inside->addr.data(), shorter))
    return make_error("--nat_pool6=" + FLAGS_nat_pool6 +
                      " overlaps --nat_inside6=" + FLAGS_nat_inside6);
  for (const auto& [flag, p] :
       {std::pair{"--nat_pool6", &*pool}, std::pair{"--nat_inside6", &*inside}}) {
    if (ipv6_prefix_overlaps_special(p->addr.data(), p->len))
      return make_error(std::string(flag) + ": a prefix holding multicast, link-local, loopback, " +
                        "unspecified or IPv4-mapped addresses cannot be translated to or from");
  }
  if (!ctx_->port(dp::PortRole::kInternet).ipv6())
    return make_error("--nat_pool6 needs --internet_addr6 (the pool is routed to it)");
  ctx_->nptv6 = dp::Nptv6(inside->addr.data(), pool->addr.data(), pool->len);
  self_.nat_pool6.push_back(*pool);
  log_info("nat: NPTv6 " + FLAGS_nat_inside6 + " <-> " + FLAGS_nat_pool6 + " (RFC 6296)");
  return Ok{};
}

// --nptv6_map: NPTv6 mappings beside --nat_inside6/--nat_pool6's (nptv6 mode) or the stateful
// pool (stateful mode), checked whole against both and the gateway's own addresses. Each
// outside is routed to --internet_addr6 like the pool; stateless, so no NIC steering.
Status Gateway::init_nptv6_map() {
  if (FLAGS_nptv6_map.empty()) return Ok{};
  Nptv6MapContext c;
  if (nat66_) {
    c.stateful_pool6 = self_.nat_pool6;
  } else if (ctx_->nptv6.on()) {
    const dp::Nptv6& one = ctx_->nptv6[0];
    Nptv6Mapping m;
    std::memcpy(m.inside.addr.data(), one.inside(), 16);
    std::memcpy(m.outside.addr.data(), one.outside(), 16);
    m.inside.len = m.outside.len = one.length();
    c.existing.push_back(m);
  }
  for (unsigned p = 0; p < ctx_->n_ports; ++p)
    for (unsigned a = 0; a < ctx_->ports[p].n_addrs6; ++a) {
      std::array<uint8_t, 16> own;
      std::memcpy(own.data(), ctx_->ports[p].addrs6[a], 16);
      c.own_addresses6.push_back(own);
    }
  auto maps = parse_nptv6_map(FLAGS_nptv6_map, c);
  if (!maps) return make_error(maps.error());
  if (!ctx_->port(dp::PortRole::kInternet).ipv6())
    return make_error("--nptv6_map needs --internet_addr6 (each outside prefix is routed to it)");
  // Routed mode with the mappings alone: what none holds is routed untranslated, as all IPv6
  // is in routed mode without them.
  ctx_->nptv6_route_unmapped = FLAGS_nat_pool.empty() && !nat66_ && FLAGS_nat_pool6.empty();
  if (ctx_->nptv6_route_unmapped)
    log_info("nat: routed mode: IPv6 that no --nptv6_map mapping holds leaves untranslated");
  for (const Nptv6Mapping& m : *maps) {
    if (!ctx_->nptv6.add(dp::Nptv6(m.inside.addr.data(), m.outside.addr.data(), m.inside.len)))
      return make_error("--nptv6_map: more than " + std::to_string(dp::Nptv6Table::kMax) +
                        " mappings");
    self_.nat_pool6.push_back(m.outside);  // no peer endpoint in it
    log_info("nat: NPTv6 " + format_ipv6(m.inside.addr.data()) + "/" +
             std::to_string(m.inside.len) + " <-> " + format_ipv6(m.outside.addr.data()) + "/" +
             std::to_string(m.outside.len) + " (--nptv6_map, RFC 6296" +
             (nat66_ ? ", before the stateful pool)" : ")"));
  }
  return Ok{};
}

Status Gateway::nat_settings(dp::nat::NatConfig* cfg) {
  if (FLAGS_nat_mode == "pba")
    cfg->mode = dp::nat::NatMode::kPortBlock;
  else if (FLAGS_nat_mode == "deterministic")
    cfg->mode = dp::nat::NatMode::kDeterministic;
  else
    return make_error("--nat_mode=" + FLAGS_nat_mode + ": use 'pba' or 'deterministic'");
  if (FLAGS_nat_filtering == "address-dependent")
    cfg->filtering = dp::nat::NatFiltering::kAddressDependent;
  else if (FLAGS_nat_filtering == "endpoint-independent")
    cfg->filtering = dp::nat::NatFiltering::kEndpointIndependent;
  else
    return make_error("--nat_filtering=" + FLAGS_nat_filtering +
                      ": use 'address-dependent' or 'endpoint-independent'");
  if (FLAGS_nat_port_min > 65535 || FLAGS_nat_port_max > 65535)
    return make_error("--nat_port_min and --nat_port_max must be 0..65535");
  cfg->port_min = static_cast<uint16_t>(FLAGS_nat_port_min);
  cfg->port_max = static_cast<uint16_t>(FLAGS_nat_port_max);
  cfg->n_workers = ctx_->n_workers;
  cfg->block_size = FLAGS_nat_block_size;
  cfg->max_blocks_per_subscriber = FLAGS_nat_max_blocks;
  cfg->max_sessions_per_subscriber = FLAGS_nat_max_sessions_per_subscriber;
  cfg->max_sessions = FLAGS_nat_max_sessions;
  cfg->timeouts.udp = FLAGS_nat_timeout_udp;
  cfg->timeouts.tcp_established = FLAGS_nat_timeout_tcp_established;
  cfg->timeouts.tcp_transitory = FLAGS_nat_timeout_tcp_transitory;
  cfg->timeouts.icmp = FLAGS_nat_timeout_icmp;
  cfg->hairpinning = FLAGS_nat_hairpinning;
  // Workers pass rte_rdtsc() as the time.
  cfg->ticks_per_second = rte_get_tsc_hz();
  return Ok{};
}

// Stateful NAT66 (--nat6_mode=stateful): --nat_pool6 as a list of addresses or /112../128
// prefixes, the rest of the settings NAT44's.
Status Gateway::init_nat66() {
  if (FLAGS_nat_pool6.empty())
    return make_error(
        "--nat6_mode=stateful needs --nat_pool6 (IPv6 addresses or /112../128 "
        "prefixes routed to --internet_addr6)");
  auto cfg = std::make_unique<dp::nat::NatConfig>();
  if (Status s = nat_settings(cfg.get()); !s) return s;
  cfg->family = dp::nat::NatFamily::kIpv6;
  std::string_view rest = FLAGS_nat_pool6;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    auto p = parse_ipv6_prefix(rest.substr(0, comma));
    if (!p) return make_error("--nat_pool6: " + p.error());
    if (ipv6_multicast(p->addr.data()) || ipv6_link_local(p->addr.data()) ||
        ipv6_unspecified_or_loopback(p->addr.data()))
      return make_error("--nat_pool6: " + format_ipv6(p->addr.data()) +
                        " is multicast, link-local, loopback or unspecified");
    cfg->pool6.push_back({dp::nat::Ipv6Address::from_array(p->addr), p->len});
    self_.nat_pool6.push_back(*p);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  if (!FLAGS_nat_deterministic_inside6.empty()) {
    auto p = parse_ipv6_prefix(FLAGS_nat_deterministic_inside6);
    if (!p) return make_error("--nat_deterministic_inside6: " + p.error());
    cfg->deterministic_inside6 = {dp::nat::Ipv6Address::from_array(p->addr), p->len};
  } else if (cfg->mode == dp::nat::NatMode::kDeterministic) {
    return make_error(
        "--nat_mode=deterministic with --nat6_mode=stateful needs "
        "--nat_deterministic_inside6 (the peers' IPv6 prefix, /104../128)");
  }
  if (!ctx_->port(dp::PortRole::kInternet).ipv6())
    return make_error("--nat_pool6 needs --internet_addr6 (the pool is routed to it)");
  if (Status s = cfg->validate(); !s) return make_error("--nat_pool6: " + s.error());
  log_info("nat: stateful NAT66 pool " + FLAGS_nat_pool6 + " (" + std::to_string(cfg->pool_size()) +
           " addresses), " + FLAGS_nat_mode + ", " + FLAGS_nat_filtering + " filtering");
  nat66_ = std::move(cfg);
  ctx_->nat66 = nat66_.get();
  return Ok{};
}

Status Gateway::init_nat() {
  if (FLAGS_nat6_mode == "stateful") {
    if (Status s = init_nat66(); !s) return s;
  } else if (FLAGS_nat6_mode == "nptv6") {
    if (Status s = init_nptv6(); !s) return s;
  } else {
    return make_error("--nat6_mode=" + FLAGS_nat6_mode + ": use 'nptv6' or 'stateful'");
  }
  if (Status s = init_nptv6_map(); !s) return s;
  if (FLAGS_nat_pool.empty()) {
    log_info("nat: no --nat_pool, routed mode: peers' tailnet addresses leave untranslated");
    if (nat66_) flow_export_->init_nat_events();
    install_steering();
    return Ok{};
  }
  auto cfg = std::make_unique<dp::nat::NatConfig>();
  std::string_view rest = FLAGS_nat_pool;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    auto p = parse_ipv4_prefix(rest.substr(0, comma));
    if (!p) return make_error("--nat_pool: " + p.error());
    cfg->pool.push_back(dp::nat::Ipv4Prefix{p->addr, p->len});
    self_.nat_pool.push_back(*p);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  if (Status s = nat_settings(cfg.get()); !s) return s;
  if (!FLAGS_nat_deterministic_inside.empty()) {
    auto p = parse_ipv4_prefix(FLAGS_nat_deterministic_inside);
    if (!p) return make_error("--nat_deterministic_inside: " + p.error());
    cfg->deterministic_inside = dp::nat::Ipv4Prefix{p->addr, p->len};
  }
  if (Status s = cfg->validate(); !s) return make_error("nat: " + s.error());
  log_info("nat: pool " + FLAGS_nat_pool + " (" + std::to_string(cfg->pool_size()) +
           " addresses), " + FLAGS_nat_mode + ", ports " + std::to_string(cfg->port_min) + "-" +
           std::to_string(cfg->port_max) + " in " + std::to_string(ctx_->n_workers) +
           " worker slice(s), " + FLAGS_nat_filtering + " filtering");
  nat_ = std::move(cfg);
  ctx_->nat = nat_.get();
  flow_export_->init_nat_events();
  install_steering();
  return Ok{};
}

// NIC steering of the stateful pools (NAT44's and NAT66's) to their workers, when asked for
// and more than one worker shares the internet port; each family on its own (a NIC that takes
// IPv4 rules but not IPv6 ones still steers NAT44), and a port that cannot keeps the software
// hand-off, said once.
void Gateway::install_steering() {
  if (ctx_->n_workers < 2 || !FLAGS_nat_nic_steering) return;
  const uint16_t port = ctx_->port(dp::PortRole::kInternet).port_id;
  for (const dp::nat::NatConfig* cfg : {nat_.get(), nat66_.get()}) {
    if (cfg == nullptr) continue;
    const bool ipv6 = cfg == nat66_.get();
    const std::string what = ipv6 ? "NAT66" : "NAT44";
    auto rules = install_nat_steering(port, *cfg, ctx_->n_workers);
    (ipv6 ? nat66_nic_steering_ : nat_nic_steering_) = rules.ok();
    if (rules)
      log_info("nat: port " + port_name(port) + " steers " + what +
               " pool ports to their worker (" + std::to_string(*rules) + " rte_flow rules)");
    else
      log_info("nat: port " + port_name(port) + ", " + what + ": " + rules.error() +
               "; inbound packets reach their worker through the hand-off ring");
  }
}

void Gateway::drain_events(uint64_t now, uint64_t ns) {
  dp::DataplaneContext& ctx = *ctx_;
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    dp::WorkerShared& ws = ctx.workers[w];
    dp::Event events[64];
    unsigned n;
    while ((n = rte_ring_dequeue_burst_elem(ws.events, events, sizeof(dp::Event), 64, nullptr))) {
      for (unsigned i = 0; i < n; ++i) {
        const dp::Event& e = events[i];
        if (e.type == dp::EventType::kNeighborSeen)
          neighbors_->learn(e.port, e.ip, e.mac, now);
        else if (e.type == dp::EventType::kNeighborSeen6)
          neighbors_->learn6(e.port, e.ip6, e.mac, now);
        else if (e.type == dp::EventType::kDomainMatch && domains_)
          // The rule, not the name: names are destinations, logged only by the flow exporter
          // when destination logging is on.
          log_info(std::string("domain_match action=") + (e.port ? "block" : "log") +
                   " rule=" + std::to_string(e.value) + " (" +
                   escape_for_log(domains_->rule_text(e.value), 256) +
                   ") peer_slot=" + std::to_string(e.ip));
        else if (wg_)
          wg_->on_event(e, ns);
      }
    }
  }
}

void Gateway::drain_workers(uint64_t now, uint64_t ns) {
  dp::DataplaneContext& ctx = *ctx_;
  // Bounded work per pass: under a handshake flood the rings never empty, and timers,
  // reloads and the other workers' rings must still get their turn (each pass is at most
  // kPuntBursts bursts per worker; the loop calls again at once when there was work).
  constexpr unsigned kPuntBursts = 4;
  unsigned backlog = 0;
  // Every worker's events before any punt: a keypair one worker confirmed is published before
  // a packet another worker could not seal without it is looked at (kNeedKeypair).
  drain_events(now, ns);
  bool events_redrained = false;
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    dp::WorkerShared& ws = ctx.workers[w];
    unsigned n;
    // How deep the queue is decides "under load", as the kernel judges by its queue length.
    backlog += rte_ring_count(ws.punt);
    if (wg_) wg_->note_backlog(backlog, ns);
    rte_mbuf* pkts[dp::kBurst];
    for (unsigned b = 0; b < kPuntBursts; ++b) {
      n = rte_ring_dequeue_burst(ws.punt, reinterpret_cast<void**>(pkts), dp::kBurst, nullptr);
      if (n == 0) break;
      for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        switch (dp::meta(m)->punt) {
          case dp::PuntReason::kNeedNeighbor:
            neighbors_->resolve(m, now);
            break;
          case dp::PuntReason::kNeedNeighbor6:
            neighbors_->resolve6(m, now);
            break;
          case dp::PuntReason::kNeedKeypair: {
            // Back to the worker that punted it, to be sealed, if the peer has a sending
            // keypair now; else it is what the worker would have dropped.
            // The confirming event may have been queued after this pass drained the events
            // (the packet's round trip is that short): look once more before giving up.
            const dp::PacketMeta* pm = dp::meta(m);
            const auto has_keypair = [&] {
              return pm->peer_slot < ctx.max_peers && ctx.peers[pm->peer_slot].send_keypair.load(
                                                          std::memory_order_acquire) != nullptr;
            };
            bool ready = has_keypair();
            if (!ready && !events_redrained) {
              events_redrained = true;
              drain_events(now, ns);
              ready = has_keypair();
            }
            if (ready) {
              dp::meta(m)->flags |= dp::kMetaSeal;
              if (rte_ring_enqueue(ws.handoff, m) == 0) break;
              dp::meta(m)->flags &= static_cast<uint8_t>(~dp::kMetaSeal);
            }
            ctx.control_counters.drop(pm->in_port, ready ? dp::DropReason::kHandoffRingFull
                                                         : dp::DropReason::kWgNoKeypair);
            rte_pktmbuf_free(m);
            break;
          }
          case dp::PuntReason::kDisco:
            if (wg_) {
              wg_->handle_disco_punt(m, ns);
              break;
            }
            [[fallthrough]];
          case dp::PuntReason::kHandshake:
            if (wg_) {
              wg_->handle_punt(m, ns);
              break;
            }
            [[fallthrough]];
          default:
            ctx.control_counters.drop(dp::meta(m)->in_port, dp::DropReason::kWgUnknownType);
            rte_pktmbuf_free(m);
        }
      }
    }
  }
  flow_export_->drain();
}

void Gateway::sample_stats() {
  dp::DataplaneContext& ctx = *ctx_;
  // Per-peer series are for small fleets of peers; beyond that the totals must do.
  constexpr size_t kMaxPeerSeries = 1024;
  if (wg_ && wg_->stats().active_peers <= kMaxPeerSeries)
    peer_status_.store(std::make_shared<const std::vector<PeerStatus>>(wg_->peer_status()));
  else
    peer_status_.store(nullptr);
  stats_.neighbors = neighbors_->size();
  stats_.neighbor_unresolved_drops = neighbors_->unresolved_drops();
  stats_.arp_requests_sent = neighbors_->requests_sent();
  stats_.neighbors6 = neighbors_->size6();
  stats_.nd_solicitations_sent = neighbors_->solicitations_sent();
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    const uint64_t busy = ctx.workers[w].counters.busy_cycles.get();
    const uint64_t idle = ctx.workers[w].counters.idle_cycles.get();
    const uint64_t db = busy - last_busy_[w], di = idle - last_idle_[w];
    stats_.busy_ratio[w] = db + di ? double(db) / double(db + di) : 0.0;
    last_busy_[w] = busy;
    last_idle_[w] = idle;
  }
  for (unsigned p = 0; p < ctx.n_ports; ++p) {
    const bool up = port_link_up(ctx.ports[p].port_id);
    if (stats_.link_up[p].exchange(up) != up)
      log_info("port " + port_name(ctx.ports[p].port_id) + " link " + (up ? "up" : "down"));
    rte_eth_stats es{};
    if (rte_eth_stats_get(ctx.ports[p].port_id, &es) == 0) {
      ControlStats::PortDeviceStats& d = stats_.port_device[p];
      d.rx_missed = es.imissed;
      d.rx_errors = es.ierrors;
      d.rx_nombuf = es.rx_nombuf;
      d.tx_errors = es.oerrors;
    }
  }
}

int Gateway::run(const std::atomic<bool>& stop) {
  dp::DataplaneContext& ctx = *ctx_;
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    if (rte_eal_remote_launch(dp::worker_main, reinterpret_cast<void*>(uintptr_t{w}),
                              ctx.workers[w].lcore_id) != 0) {
      log_error("cannot launch worker on lcore " + std::to_string(ctx.workers[w].lcore_id));
      ctx.stop = true;
      rte_eal_mp_wait_lcore();
      return 1;
    }
  }
  workers_launched_ = true;
  heartbeat_.beat(steady_now_ns());
  sample_stats();
  publish_admin_view();
  Services::Hooks hooks;
  hooks.render_metrics = [this] { return render_metrics(); };
  hooks.readiness = [this] { return readiness(); };
  hooks.admin_view = [this] { return admin_view_.load(); };
  hooks.node_status = [this] {
    double busy = 0;
    for (unsigned w = 0; w < ctx_->n_workers; ++w)
      busy = std::max(busy, stats_.busy_ratio[w].load());
    return etcd::NodeStatus{generation_.load(), wg_->stats().active_peers.load(), busy, true};
  };
  if (Status s = services_.start(updates_, constant_labels_[1].second, std::move(hooks)); !s) {
    log_error(s.error());
    shutdown();
    return 1;
  }
  log_info("running with " + std::to_string(ctx.n_workers) + " worker(s)");
  uint64_t last_tick = steady_now_ns();
  heartbeat_.start(last_tick);  // services' start-up is no control-loop gap
  while (!stop.load(std::memory_order_relaxed)) {
    const uint64_t ns = steady_now_ns();
    heartbeat_.beat(ns);
    const uint64_t ms = ns / 1000000;
    drain_workers(ms, ns);
    bool applied = false;
    updates_.drain([&](const Update& u, const std::string& source) {
      applied = true;
      return apply_update(u, source);
    });
    if (applied) {
      sync_policy_peers();
      publish_admin_view();
    }
    if (ns - last_tick >= 100'000'000) {
      neighbors_->tick(ms);
      wg_->tick(ns);
      // The peers file was reloaded: an update from the file source.
      if (sync_policy_peers()) note_file_update("file");
      // Policy, approvals and domain files reloaded by their watchers are updates too.
      policy_->tick(ns);
      if (domains_) domains_->tick(ns);
      sample_stats();
      if (++admin_view_ticks_ % 10 == 0) publish_admin_view();
      last_tick = ns;
    }
    // A moved IPv4 prefix is routed as soon as every worker removed its NAT state.
    wg_->collect_done_commands();
    // Builds finished on the builder threads are published at once, not at the next tick.
    policy_->publish_finished_build();
    finish_policy_update();
    if (domains_) domains_->publish_finished_build();
    // Only applied reloads advance the generation; a rejected one changes nothing.
    if (const uint64_t n = policy_->reloads_applied(); n != policy_reloads_seen_) {
      policy_reloads_seen_ = n;
      note_file_update("policy file");
    }
    if (const uint64_t n = domains_ ? domains_->reloads_applied() : 0; n != domain_reloads_seen_) {
      domain_reloads_seen_ = n;
      note_file_update("domain list file");
    }
    // Control is not on the fast path: a short sleep keeps it off a shared CPU, unless
    // punted packets are still queued.
    bool queued = false;
    for (unsigned w = 0; w < ctx.n_workers; ++w) queued |= rte_ring_count(ctx.workers[w].punt) > 0;
    if (!queued) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  log_info("stopping");
  shutdown();
  return 0;
}

bool Gateway::sync_policy_peers() {
  const uint64_t g = wg_->stats().generation;
  if (g == policy_peers_generation_) return false;
  policy_peers_generation_ = g;
  policy_->set_peers(wg_->policy_peers());
  return true;
}

void Gateway::note_applied(const std::string& source) {
  ++generation_;
  last_update_source_ = source;
  last_update_unix_ms_ =
      static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count());
  // The admin view's source names: the files by what they hold.
  static const std::map<std::string, std::string> kHealthName = {
      {"file", "file:peers"}, {"policy file", "file:policy"}, {"domain list file", "file:domains"}};
  auto it = kHealthName.find(source);
  source_last_ok_ms_[it == kHealthName.end() ? source : it->second] = last_update_unix_ms_;
}

void Gateway::note_file_update(const char* source) {
  note_applied(source);
  publish_admin_view();
}

void Gateway::shutdown() {
  dp::DataplaneContext& ctx = *ctx_;
  services_.stop();
  if (workers_launched_) {
    ctx.stop.store(true);
    rte_eal_mp_wait_lcore();  // each worker flushes its TX buffers before it returns
    workers_launched_ = false;
    drain_workers(steady_now_ns() / 1000000, steady_now_ns());
  }
  if (flow_export_) flow_export_->flush_flows();
  domains_.reset();
  policy_.reset();
  wg_.reset();
  if (flow_export_) flow_export_->close();
  neighbors_.reset();
  if (ports_started_) {
    if (nat_nic_steering_ || nat66_nic_steering_)
      remove_nat_steering(ctx.port(dp::PortRole::kInternet).port_id);
    for (unsigned p = 0; p < ctx.n_ports; ++p) {
      rte_eth_dev_stop(ctx.ports[p].port_id);
      rte_eth_dev_close(ctx.ports[p].port_id);
    }
    ports_started_ = false;
  }
  for (unsigned w = 0; w < ctx.n_workers; ++w) {
    rte_mbuf* m;
    while (ctx.workers[w].punt &&
           rte_ring_dequeue(ctx.workers[w].punt, reinterpret_cast<void**>(&m)) == 0)
      rte_pktmbuf_free(m);
    while (ctx.workers[w].handoff &&
           rte_ring_dequeue(ctx.workers[w].handoff, reinterpret_cast<void**>(&m)) == 0)
      rte_pktmbuf_free(m);
    rte_ring_free(ctx.workers[w].punt);
    rte_ring_free(ctx.workers[w].events);
    rte_ring_free(ctx.workers[w].handoff);
    rte_ring_free(ctx.workers[w].commands);
    ctx.workers[w].punt = ctx.workers[w].events = ctx.workers[w].handoff = nullptr;
    ctx.workers[w].commands = nullptr;
  }
  if (pool_) {
    rte_mempool_free(pool_);
    pool_ = nullptr;
  }
  rte_free(ctx.rcu);
  ctx.rcu = nullptr;
}

}  // namespace exitgw
