// The worker's stages. Each takes a burst and sends every packet to one exit: a named exit
// (dataplane/exits.h) that dataplane/graph.cc wires to the next stage, or one of the worker's
// sinks (TX buffer, punt ring, hand-off ring, counted drop). Single-exit stages return how many
// continue, compacted at the front of `pkts`.
#pragma once

#include <cstdint>

#include <rte_mbuf.h>

#include "dataplane/exits.h"
#include "dataplane/frag_park.h"

namespace exitgw::dp {

class Worker;

// ---- L2 and IPv4 in (eth_input.cc, ipv4_input.cc, local_input.cc) ----

enum class EthExit : uint8_t { kIpv4, kArp, kIpv6, kCount };
// Own MAC or broadcast (and, on a port with IPv6, the groups of its addresses); IPv4, ARP and
// IPv6 sorted (Ethernet header left in place), the rest dropped. IPv6 only where it is on.
void eth_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<EthExit>& x) noexcept;
// The ARP responder and learner: replies go out of `port`, learned neighbors to control.
void arp_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept;

enum class Ipv4Exit : uint8_t {
  kLocal,    // for one of the port's own addresses
  kTransit,  // for somewhere else
  kCount
};
// IPv4 header checks, each with its own drop reason.
void ipv4_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<Ipv4Exit>& x) noexcept;

enum class Ipv6Exit : uint8_t {
  kLocal,    // for one of the port's addresses, all-nodes, or one of its solicited-node groups
  kTransit,  // for somewhere else
  kCount
};
// IPv6 header checks (ipv6_input.cc), each with its own drop reason; other groups dropped.
void ipv6_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<Ipv6Exit>& x) noexcept;
enum class LocalExit : uint8_t {
  kWireGuard,  // transport messages on the WireGuard port (outer IPv4 or IPv6), one burst
  kCount
};
// Local delivery: ICMP echo answered (rate limited), WireGuard handshakes and disco frames
// punted to control; everything else counted and dropped.
void local_input(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n,
                 Exits<LocalExit>& x) noexcept;
// Local IPv6 delivery: the bounded extension-header walk (dataplane/ipv6_walk.h), ICMPv6 echo
// answered (rate limited), neighbor solicitations for our addresses answered, neighbors
// learned (events to control); UDP on the tunnel port's WireGuard port as local_input does it
// (the checksum mandatory, extension headers removed so that the UDP header follows the fixed
// one); everything else counted and dropped.
void ipv6_local(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n, Exits<LocalExit>& x) noexcept;
// Both families' WireGuard port (local_input.cc): whether --wg_udp_checksum=aead leaves this
// datagram's checksum unverified (transport messages only), and the dispatch of a datagram
// `msg` of `len` bytes: disco and handshakes punted, transport to kWireGuard, else dropped.
bool wg_checksum_left_to_aead(const DataplaneContext& ctx, bool wg, const void* msg,
                              unsigned len) noexcept;
void wg_deliver(Worker& w, rte_mbuf* m, const uint8_t* msg, unsigned len,
                Exits<LocalExit>& x) noexcept;

// ---- outbound, peer -> internet ----

enum class WgExit : uint8_t {
  kIpv4,  // inner IPv4 header in front
  kIpv6,  // inner IPv6 header in front, its extension-header chain walked
  kCount
};
// WireGuard transport messages (Ethernet header in front): receiver index, replay, ONE batched
// decrypt, roaming, keepalives, inner checks, cryptokey routing (one bulk lookup per family).
// Continue with the inner header in front and meta peer_slot set, sorted by family.
void wg_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<WgExit>& x) noexcept;

// Decrypted packets for the gateway's own tailnet addresses leave the exit path here: TSMP
// (IP protocol 99) is consumed and counted, the rest goes to the host through the exception
// port (rate limited per worker; without the port, dropped). The others continue, compacted.
uint16_t tailnet_local(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// The same for peers' IPv6 packets (IPv6 header in front) to the node's tailnet IPv6 addresses
// (TSMP: the first next header 99).
uint16_t tailnet_local6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
enum class ExceptionExit : uint8_t {
  kToPeer,  // the host's own packet for a peer (from the node's tailnet address): seal it
  kRelay,   // a peer's WireGuard/disco datagram the connector relays from DERP (relay_host ->
            // relay_gateway:wg port), an Ethernet header put in front: local delivery
  kCount
};
// The host's packets from the exception port (IPv4 or IPv6 header in front): length, version,
// size and source checked, sorted into the host's own and (IPv4 only) the DERP relay's.
void exception_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<ExceptionExit>& x) noexcept;

enum class TransitExit : uint8_t {
  kForward,    // TTL decremented, out_port set: continues
  kIcmpError,  // a new ICMP error (time exceeded, fragmentation needed) about a dropped packet
  kCount
};
// Peers' packets leaving through the exit (IPv4 header in front): TTL checked and decremented;
// an expired one is answered with time exceeded, which goes back into the tunnel.
void transit_out_checks(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept;
// The same for peers' IPv6 packets (ipv6_transit.cc): hop limit checked and decremented, an
// expired one answered with ICMPv6 time exceeded into the tunnel; the exit needs an IPv6
// address on the internet port and, in NAT mode, an IPv6 pool (each a counted drop).
void transit_out_checks6(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept;
// Dropped unless the node is an approved exit and the policy allows the destination.
uint16_t exit_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// The same for inner IPv6 (header at the front, payload length and extension headers already
// checked by ipv6_walk): approval, then the IPv6 classifier; the allowed ones compacted first.
uint16_t exit_policy6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Domain rules (DNS names, TLS SNI, HTTP Host) on the same packets: blocked ones dropped.
uint16_t domain_policy(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

// ---- NAT44 (nat_stage.cc): steering to the owning worker, translation, fragments ----

// First fragments translated in a burst: the fragments parked for them follow (graph.cc).
struct FirstFragments {
  FragmentPark::Key keys[kBurst];
  uint16_t n = 0;
};

// A subscriber's NAT state lives on one worker, claimed by the first to forward for its peer;
// packets of peers claimed elsewhere are handed there. Continue: this worker's.
uint16_t nat_out_steer(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

enum class NatOutExit : uint8_t {
  kInternet,            // source translated
  kHairpin,             // to another subscriber's public address, translated both ways
  kHairpinOtherWorker,  // same, but the destination port is another worker's: inbound NAT
  kCount
};
// Source translation (IPv4 header in front) on the worker owning the subscriber. A later
// fragment before its first one is parked; first fragments are listed in `firsts`.
void nat_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x,
             FirstFragments& firsts) noexcept;

// Internet packets for the NAT pool (IPv4 header in front): each is handed to the worker owning
// its public port (fragments through their datagram's home worker) or translated back to the
// subscriber here. Continue: translated, for a peer. First fragments are listed in `firsts`.
uint16_t nat_in(Worker& w, rte_mbuf** pkts, uint16_t n, FirstFragments& firsts) noexcept;

enum class HandoffExit : uint8_t {
  kNatOut,    // another worker's peer, for this worker's NAT state: outbound NAT here
  kNatIn,     // a public port of this worker's slice (or a fragment's home): inbound NAT here
  kSeal,      // handed back by control once its peer has a sending keypair: seal and send
  kNat66Out,  // kNatOut for an IPv6 packet (stateful NAT66)
  kNat66In,   // kNatIn for an IPv6 packet
  kCount
};
// Packets other workers handed to this one, sorted by what is left to do.
void handoff_input(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<HandoffExit>& x) noexcept;

// ---- stateful NAT66 (nat_stage.cc, --nat6_mode=stateful): the NAT core over IPv6 ----

// Source translation (IPv6 header in front) on the worker owning the subscriber (after
// nat_out_steer, as NAT44): the exits mean what nat_out's do.
// A later fragment before its first one is parked; first fragments are listed in `firsts`.
void nat66_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x,
               FirstFragments& firsts) noexcept;
// Internet packets for the IPv6 pool: handed to the worker owning the public port, identifier
// or (ICMPv6 error) quoted port (fragments through their datagram's home worker, as NAT44's),
// or translated back here. Continue: translated, for a peer. First fragments are listed in
// `firsts`.
uint16_t nat66_in(Worker& w, rte_mbuf** pkts, uint16_t n, FirstFragments& firsts) noexcept;

// ---- NPTv6 (nptv6.cc; RFC 6296, ctx.nptv6's mappings): stateless, checksum-neutral ----

enum class Nptv6Exit : uint8_t {
  kMapped,    // an NPTv6 mapping holds it (outbound: the source; inbound: the destination)
  kUnmapped,  // to the stateful pool
  kCount
};
// With NPTv6 mappings beside a stateful pool: which translation a peer's IPv6 packet takes, by
// its source (the mappings first). The graph calls these only when both are configured.
void nptv6_select_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept;
// The same for an internet packet, by its destination.
void nptv6_select_in(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<Nptv6Exit>& x) noexcept;
// Peers' IPv6 sources, inside prefix -> outside, through the first mapping holding them; a
// source no mapping holds is dropped (nptv6_source_not_inside), or passes untranslated in
// routed mode with mappings only (ctx.nptv6_route_unmapped). In an ICMPv6 error the quoted
// destination too, through the mapping holding it (nptv6_quoted_not_mapped when none does).
// Continue: translated (all of them when NPTv6 is off).
uint16_t nptv6_out(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// Internet packets for an outside prefix, destination outside -> inside, and in an ICMPv6
// error the quoted packet's source too, through the mapping holding it (so Packet Too Big
// reaches the peer); others dropped (or passed, as nptv6_out).
uint16_t nptv6_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

// ---- inbound, internet -> peer ----

// Transit packets from the internet (Ethernet header in front; stripped): TTL and the tunnel
// MTU checked, with ICMP errors back to the internet source quoting the packet as it came.
void transit_in_checks(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept;
// IPv6 transit from the internet (Ethernet header in front; stripped): hop limit, and the
// tunnel MTU with Packet Too Big (RFC 8201: IPv6 routers never fragment), errors to the source.
void transit_in_checks6(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<TransitExit>& x) noexcept;
enum class SealExit : uint8_t {
  kIpv4,  // outer IPv4/UDP header in front, out_port the tunnel port
  kIpv6,  // outer IPv6/UDP header in front (UDP checksum always computed), out_port the tunnel
  kCount
};
// IPv4 and IPv6 packets (header at the front) for peers: peer by destination (one bulk lookup
// per family), ONE batched seal, UDP to the peer's endpoint, sorted by the endpoint's family.
void wg_seal(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<SealExit>& x) noexcept;

// ---- out ----

// Packets with meta out_port set and an IPv4 header at the front of the data (no L2 yet):
// the next hop's MAC from the neighbor table, an Ethernet header, then TX or a punt to ARP.
void ipv4_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;
// The same for IPv6 (ipv6_output.cc): next hop on-link or the port's IPv6 gateway, its MAC
// from the IPv6 neighbor table; unresolved ones punted to control (neighbor solicitation).
void ipv6_output(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept;

}  // namespace exitgw::dp
