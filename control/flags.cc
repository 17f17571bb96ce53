// Process options. Every flag is documented here and in conf/exitgw.flags.
#include "control/flags.h"

DEFINE_string(tunnel_port, "0",
              "DPDK port facing the WireGuard peers: a device name (PCI address such as "
              "0000:3b:00.0 or a vdev name such as net_af_packet0) or a port number");
DEFINE_string(internet_port, "",
              "DPDK port facing the upstream router and owning the NAT pool; empty means the "
              "same port as --tunnel_port");
DEFINE_string(exception_port, "",
              "DPDK port (name or number) of a TUN for inner packets addressed to the gateway's "
              "own tailnet addresses, e.g. net_tun0 with --vdev=net_tun0,iface=exitgw0: the "
              "gateway brings the interface up with --tunnel_mtu (IPv6 on, no link-local address) "
              "and the IPv4 and IPv6 addresses the connector reports, and seals what the host "
              "sends back (the connector's PeerAPI DNS). "
              "Empty: no exception port (such packets are dropped as exception_port_off)");
DEFINE_string(relay_net, "169.254.77.0/30",
              "with --exception_port: the DERP relay's subnet on the exception TUN; its first "
              "address goes on the kernel side (the connector's relay sockets bind it, its "
              "--relay-local), the second is the gateway's relay endpoint (the connector's "
              "--relay-gateway, at --wg_listen_port). Peers whose endpoint is the first address "
              "are answered through the TUN. Empty: no relay");
DEFINE_uint32(exception_rate, 20000,
              "packets per second each worker may hand to the host through --exception_port "
              "(a tenth of it back to back); the rest are dropped as exception_rate_limited");
DEFINE_string(tunnel_addr, "10.77.0.1/24",
              "IPv4 address/prefix of the gateway on the tunnel port (peers send WireGuard "
              "UDP to it)");
DEFINE_string(tunnel_gateway, "",
              "next hop for peer endpoints outside the tunnel port's subnet; empty: only "
              "on-link endpoints are reachable");
DEFINE_string(internet_addr, "192.0.2.1/24",
              "IPv4 address/prefix of the gateway on the internet port");
DEFINE_string(internet_gateway, "192.0.2.2",
              "upstream router on the internet port; the next hop for internet destinations");
DEFINE_string(tunnel_addr6, "",
              "IPv6 address/prefix of the gateway on the tunnel port (with its link-local "
              "address from the MAC: neighbor discovery and ICMPv6 echo); peers may then reach "
              "the WireGuard port over IPv6; empty: no IPv6 there");
DEFINE_string(internet_addr6, "",
              "IPv6 address/prefix of the gateway on the internet port (with its link-local "
              "address: neighbor discovery and ICMPv6 echo); empty: no IPv6 there");
DEFINE_string(internet_gateway6, "",
              "upstream IPv6 router on the internet port (link-local or inside "
              "--internet_addr6), resolved by neighbor discovery; empty: none");
DEFINE_string(static_neighbors, "",
              "comma-separated IP=MAC pairs installed as permanent neighbors (no ARP), "
              "e.g. 192.0.2.2=02:00:00:00:00:02");
DEFINE_uint32(wg_listen_port, 51820, "UDP port for WireGuard on the tunnel address");
DEFINE_uint32(mbufs, 16383, "mbufs in the packet pool (best as 2^n - 1)");
DEFINE_uint32(mbuf_cache, 256, "per-lcore mbuf cache size");
DEFINE_uint32(rx_desc, 1024, "RX descriptors per queue");
DEFINE_uint32(tx_desc, 1024, "TX descriptors per queue");
DEFINE_string(poll_mode, "adaptive",
              "worker idle behaviour: 'adaptive' (pause, then growing sleeps while RX is "
              "empty; for shared CPUs) or 'busy' (pure polling; for dedicated cores)");
DEFINE_uint32(idle_sleep_max_us, 200, "longest idle sleep of a worker in adaptive mode");
DEFINE_uint32(icmp_rate, 1000, "ICMP messages per second each worker may originate");
DEFINE_uint32(icmp_burst, 50, "ICMP messages a worker may originate back to back");
DEFINE_uint32(neighbor_capacity, 4096, "entries in the neighbor (ARP) table");
DEFINE_uint32(arp_retry_ms, 1000, "interval between ARP requests for an unresolved next hop");
DEFINE_uint32(arp_retries, 3, "ARP requests sent before queued packets are dropped");
DEFINE_uint32(arp_max_pending, 64, "packets queued per unresolved next hop");
DEFINE_uint32(neighbor_reachable_s, 300,
              "age after which a learned neighbor is refreshed with a unicast ARP request");
DEFINE_string(metrics_listen, "127.0.0.1:9550",
              "HOST:PORT for /metrics, /healthz and /readyz; empty disables the listener");
DEFINE_string(region, "default", "value of the region label on every metric");
DEFINE_string(node, "", "value of the node label on every metric; empty means the host name");
DEFINE_bool(rss, true, "spread flows over the RX queues with RSS where the port supports it");
DEFINE_string(private_key_file, "",
              "the gateway's WireGuard private key: one base64 key as `wg genkey` writes it, in "
              "a file only its owner may read (chmod 600)");
DEFINE_string(peers_file, "",
              "peers file (wg-style [Peer] sections plus User and Tags); watched and reloaded on "
              "change; empty: no peers");
DEFINE_string(disco_private_key_file, "",
              "the gateway's disco private key (Tailscale path discovery), same format as "
              "--private_key_file (`wg genkey`, chmod 600); with it, disco pings from peers' disco "
              "keys on the WireGuard port are answered; empty: disco frames are counted and "
              "dropped");
DEFINE_uint32(max_peers, 4096,
              "capacity of the peer table (allowed-IP and keypair tables scale with it)");
DEFINE_string(wg_udp_checksum, "full",
              "Outer UDP checksum of WireGuard transport messages on ports without checksum "
              "offload: 'full' verifies received ones and computes sent ones; 'aead' trusts the "
              "AEAD tag that already authenticates the payload (received ones are not verified, "
              "sent ones carry checksum 0, which IPv4 allows). Handshakes are always verified.");
DEFINE_uint32(tunnel_mtu, 1420,
              "largest inner IPv4 packet sent to a peer (the clients' tunnel MTU)");
DEFINE_uint32(wg_rekey_after_time, 120,
              "REKEY_AFTER_TIME in seconds: the initiator rekeys a session this old (protocol "
              "value 120; lower only for tests)");
DEFINE_uint32(wg_reject_after_time, 180,
              "REJECT_AFTER_TIME in seconds: a session this old is unusable (protocol value 180)");
DEFINE_uint32(handshake_under_load, 128,
              "punted packets waiting for the control thread that put WireGuard 'under load' "
              "for a second: cookies (MAC2) and per-source rate limits are enforced then");
DEFINE_string(nat_pool, "",
              "carrier-grade NAT public pool: comma-separated IPv4 addresses or prefixes routed "
              "to --internet_addr; empty: routed mode (peers' addresses leave untranslated)");
DEFINE_string(nat_pool6, "",
              "IPv6 pool routed to --internet_addr6, translated as --nat6_mode says: nptv6 (the "
              "default): one prefix of /48 or shorter, peers' IPv6 addresses in --nat_inside6 "
              "map onto it 1:1 (RFC 6296: stateless, checksum-neutral); stateful: comma-separated "
              "IPv6 addresses or /112../128 prefixes (65536 addresses at most) shared by ports "
              "as --nat_pool is. Empty: IPv6 leaves untranslated in routed mode and is dropped "
              "(ipv6_no_nat_pool6) in NAT mode");
DEFINE_string(nat6_mode, "nptv6",
              "how --nat_pool6 translates peers' IPv6: 'nptv6' (RFC 6296 prefix translation, "
              "stateless, with --nat_inside6) or 'stateful' (NAT66: the NAT44 core over IPv6, "
              "with --nat_mode, --nat_filtering, --nat_port_min/max, --nat_block_size, "
              "--nat_max_blocks, --nat_max_sessions*, the timeouts and --nat_hairpinning as for "
              "NAT44; deterministic mode maps --nat_deterministic_inside6)");
DEFINE_string(nat_inside6, "fd7a:115c:a1e0::/48",
              "the peers' IPv6 prefix NPTv6 maps onto --nat_pool6 (same length; default: the "
              "tailnet's ULA prefix)");
DEFINE_string(nptv6_map, "",
              "more NPTv6 (RFC 6296) mappings, with either --nat6_mode: comma-separated "
              "INSIDE=OUTSIDE IPv6 prefix pairs of equal length /1../48 (16 mappings at most in "
              "all), each OUTSIDE routed to --internet_addr6. They come first: a peer's IPv6 "
              "source in an INSIDE leaves translated to its OUTSIDE, every other source through "
              "--nat_pool6 as --nat6_mode says (with no --nat_pool6: dropped in NAT mode, "
              "untranslated in routed mode); inbound, a destination in an OUTSIDE goes back "
              "to its INSIDE. Empty: none");
DEFINE_string(nat_mode, "pba",
              "'pba': port blocks allocated on demand and logged per block; 'deterministic': "
              "RFC 7422 arithmetic mapping of --nat_deterministic_inside, no per-block logs");
DEFINE_string(nat_filtering, "address-dependent",
              "inbound filtering: 'address-dependent' (RFC 4787 REQ-8 recommended) or "
              "'endpoint-independent' (full-cone, friendlier to games and WebRTC)");
DEFINE_uint32(nat_port_min, 1024, "lowest public port the pool hands out");
DEFINE_uint32(nat_port_max, 65535, "highest public port the pool hands out");
DEFINE_uint32(nat_block_size, 512, "ports per block (pba mode); one log record per block");
DEFINE_uint32(nat_max_blocks, 4, "blocks one subscriber may hold at once (pba mode)");
DEFINE_uint32(nat_max_sessions_per_subscriber, 4096, "sessions one subscriber may hold");
DEFINE_uint32(nat_max_sessions, 1u << 20,
              "session table capacity per worker (about 100 bytes each, allocated at start)");
DEFINE_uint32(nat_timeout_udp, 300, "UDP session idle timeout, seconds (RFC 4787: >= 120)");
DEFINE_uint32(nat_timeout_tcp_established, 7440,
              "established TCP idle timeout, seconds (RFC 5382: >= 7440)");
DEFINE_uint32(nat_timeout_tcp_transitory, 240, "TCP SYN/FIN/RST state timeout, seconds");
DEFINE_uint32(nat_timeout_icmp, 60, "ICMP query idle timeout, seconds (RFC 5508)");
DEFINE_string(nat_deterministic_inside, "",
              "deterministic mode: the subscriber prefix mapped onto the pool, e.g. "
              "100.64.0.0/16");
DEFINE_string(nat_deterministic_inside6, "",
              "--nat6_mode=stateful with --nat_mode=deterministic: the peers' IPv6 prefix "
              "(/104../128, e.g. fd7a:115c:a1e0::/104) mapped onto --nat_pool6");
DEFINE_bool(nat_hairpinning, true,
            "let one subscriber reach another through its public address (RFC 4787 REQ-9)");
DEFINE_bool(nat_nic_steering, true,
            "with several workers, ask the internet port (rte_flow) to queue packets for the "
            "NAT44 pool and the stateful NAT66 pool by destination port to the worker owning "
            "that slice; ports that cannot keep RSS and the software hand-off");
DEFINE_string(policy_file, "",
              "tailnet policy file (HuJSON; see conf/policy.hujson), watched and reloaded; "
              "empty: the default policy (every member may use the exit)");
DEFINE_string(approvals_file, "",
              "approvals file (see conf/approvals.conf): 'exit-node approved' lets this node "
              "forward; watched and reloaded; empty: approval only through autoApprovers");
DEFINE_bool(exit_node_advertised, true,
            "advertise this node as an exit node; without it (and approval) it forwards nothing");
DEFINE_string(node_user, "", "this node's tailnet user, for autoApprovers.exitNode");
DEFINE_string(node_tags, "",
              "this node's tailnet tags, comma-separated (e.g. tag:exit), for autoApprovers");
DEFINE_string(ipfix_collector, "",
              "IPFIX collector for NAT events (RFC 8158) and flow records: udp://HOST:PORT or "
              "tcp://HOST:PORT; empty: no IPFIX");
DEFINE_string(flow_log_json, "",
              "write NAT events and flow records as JSON lines to this file ('-': stdout); "
              "empty: off");
DEFINE_string(export_spool_dir, "/var/spool/exitgw",
              "directory for records kept while the collector is unreachable, replayed in order");
DEFINE_uint32(export_spool_max_mb, 256,
              "spool limit in MiB; past it the oldest records are dropped, counted and logged");
DEFINE_bool(destination_logging, false,
            "include destination addresses and ports in exit-traffic flow records (off by "
            "default, as the tailnet model asks)");
DEFINE_bool(flow_accounting, true,
            "count packets and bytes per flow on the workers and export them as flow records; "
            "takes effect only with an exporter (--ipfix_collector or --flow_log_json)");
DEFINE_uint32(flow_table_size, 65536,
              "flows each worker tracks at once, per address family (IPv4 and IPv6 each have "
              "a table this size); packets of further flows are counted as untracked");
DEFINE_uint32(flow_idle_timeout, 15, "seconds without a packet after which a flow is exported");
DEFINE_uint32(flow_active_timeout, 60,
              "seconds between records of a long-lived flow (each carries that interval's counts)");
DEFINE_string(admin_listen, "127.0.0.1:9551",
              "HOST:PORT of the admin API (exitgwctl); loopback only unless "
              "--admin_allow_non_loopback; used only with --admin_token_file");
DEFINE_string(admin_token_file, "",
              "bearer token for the admin API, in a file only its owner may read (chmod 600, "
              "at least 16 characters); empty: no admin API");
DEFINE_bool(admin_allow_non_loopback, false,
            "let --admin_listen bind a non-loopback address (put TLS in front of it)");
DEFINE_uint32(admin_max_body_kb, 64,
              "largest admin API request body in KiB (larger: 413); a whole peer set through "
              "PUT /v1/peers needs about 0.2 KiB per peer");
DEFINE_uint32(
    control_stall_ms, 3000,
    "/readyz answers 503 when the control thread (handshakes, reloads, updates) has "
    "not completed a loop iteration for this long (exitgw_control_heartbeat_age_seconds)");
DEFINE_string(etcd_endpoints, "",
              "etcd v3 endpoints (JSON gateway), e.g. http://10.0.0.5:2379,http://10.0.0.6:2379; "
              "the region's peers and this node's approval are watched there; empty: no etcd");
DEFINE_string(etcd_prefix, "/exitgw/default/",
              "key prefix of this node's region in etcd (ends in '/'): peers/<key>, "
              "nodes/<node>/approval, status/<node>");
DEFINE_uint32(etcd_status_ttl, 10,
              "lease TTL in seconds of this node's status key in etcd (0: write no status)");
DEFINE_string(
    domain_list_file, "",
    "domain rules (see conf/domains.conf: block/log exact, suffix or regex) matched "
    "against DNS query names, TLS SNI and HTTP Host of exit traffic; watched; empty: off");
