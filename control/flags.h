// The daemon's process options (gflags). Defined in flags.cc, each with its help text.
#pragma once

#include <gflags/gflags.h>

DECLARE_string(tunnel_port);
DECLARE_string(internet_port);
DECLARE_string(tunnel_addr);
DECLARE_string(tunnel_gateway);
DECLARE_string(internet_addr);
DECLARE_string(internet_gateway);
DECLARE_string(static_neighbors);
DECLARE_uint32(wg_listen_port);
DECLARE_uint32(mbufs);
DECLARE_uint32(mbuf_cache);
DECLARE_uint32(rx_desc);
DECLARE_uint32(tx_desc);
DECLARE_string(poll_mode);
DECLARE_uint32(idle_sleep_max_us);
DECLARE_uint32(icmp_rate);
DECLARE_uint32(icmp_burst);
DECLARE_uint32(neighbor_capacity);
DECLARE_uint32(arp_retry_ms);
DECLARE_uint32(arp_retries);
DECLARE_uint32(arp_max_pending);
DECLARE_uint32(neighbor_reachable_s);
DECLARE_string(metrics_listen);
DECLARE_string(region);
DECLARE_string(node);
DECLARE_bool(rss);
DECLARE_string(private_key_file);
DECLARE_string(peers_file);
DECLARE_uint32(max_peers);
DECLARE_uint32(tunnel_mtu);
DECLARE_uint32(wg_rekey_after_time);
DECLARE_uint32(wg_reject_after_time);
DECLARE_uint32(handshake_under_load);
DECLARE_string(nat_pool);
DECLARE_string(nat_mode);
DECLARE_string(nat_filtering);
DECLARE_uint32(nat_port_min);
DECLARE_uint32(nat_port_max);
DECLARE_uint32(nat_block_size);
DECLARE_uint32(nat_max_blocks);
DECLARE_uint32(nat_max_sessions_per_subscriber);
DECLARE_uint32(nat_max_sessions);
DECLARE_uint32(nat_timeout_udp);
DECLARE_uint32(nat_timeout_tcp_established);
DECLARE_uint32(nat_timeout_tcp_transitory);
DECLARE_uint32(nat_timeout_icmp);
DECLARE_string(nat_deterministic_inside);
DECLARE_bool(nat_hairpinning);
DECLARE_string(policy_file);
DECLARE_string(approvals_file);
DECLARE_bool(exit_node_advertised);
DECLARE_string(node_user);
DECLARE_string(node_tags);
