// The worker's stages. Each takes a burst, sends every packet to one exit (the next stage,
// a TX buffer, the punt ring or a counted drop) and returns how many continue.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

namespace exitgw::dp {

class Worker;

// L2: own MAC or broadcast, ARP handled, IPv4 continues (Ethernet header left in place).
uint16_t eth_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;
// The ARP responder and learner (called by eth_input for each ARP frame).
void arp_input(Worker& w, uint8_t port, rte_mbuf* m) noexcept;
// IPv4 header checks; packets for our own addresses go to local delivery, others continue.
uint16_t ipv4_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;
// Local delivery: ICMP echo, the WireGuard UDP port; everything else is counted and dropped.
void local_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;
// Packets with meta out_port set and an IPv4 header at the front of the data (no L2 yet):
// the next hop's MAC from the neighbor table, an Ethernet header, then TX or a punt to ARP.
void ipv4_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// WireGuard transport messages (Ethernet header in front): decrypt, check, forward out.
void wg_input(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Transit packets from the internet (Ethernet header in front): seal toward the peer that
// owns the destination.
void wg_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Peers' decrypted packets bound for the internet (IPv4 header in front, meta peer_slot set):
// dropped unless the node is an approved exit and the policy allows the destination; returns
// how many continue, compacted.
uint16_t exit_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Domain rules (DNS names, TLS SNI, HTTP Host) on the same packets: blocked ones dropped.
uint16_t domain_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Internet packets (IPv4 header in front) for the NAT pool: each goes to the worker owning
// its public port, is translated back to the subscriber, then sealed (routed mode: sealed).
void nat_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Source translation of peers' packets bound for the internet (IPv4 header in front, on the
// worker owning the subscriber); returns how many go on to the internet port, compacted.
uint16_t nat_out(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// IPv4 packets (header at the front) for peers: peer by destination, seal, UDP to endpoint.
void wg_seal(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

}  // namespace exitgw::dp
