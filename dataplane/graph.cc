// The stage graph: how a packet moves between the stages, outbound and inbound, in one file.
// Each stage sorts its burst into named exits (dataplane/stages.h); this file passes each
// exit's sub-burst on, in the order the packets must leave. Drops are counted and freed by the
// stage that drops them (Worker::drop); TX, punt and hand-off are the worker's sinks.
//
//   rx ─ eth_input ─┬─ kArp ── arp_input ─ tx (reply)
//                   ├─ kIpv6 ─ ipv6_input ─┬─ kLocal ── ipv6_local ─┬─ echo, ND ─ tx / event
//                   │                      │                        ├─ handshake, disco ─ punt
//                   │                      │                        └─ kWireGuard ─ outbound
//                   │                      └─ kTransit ─ inbound6 (internet port; else dropped)
//                   └─ kIpv4 ─ ipv4_input ─┬─ kLocal ── local_input ─┬─ echo reply ─ tx
//                                          │                         ├─ handshake, disco ─ punt
//                                          │                         └─ kWireGuard ─ outbound
//                                          └─ kTransit ─ inbound (internet port; else dropped)
//
//   rx(exception port, the host's TUN) ─ exception_input ─┬─ kToPeer (IPv4, IPv6) ─ to_peer
//                                                         └─ kRelay (DERP) ─ local_input ─ ...
//
//   outbound: wg_input ─┬─ kIpv4 ─ outbound4
//                       └─ kIpv6 ─ outbound6
//   outbound4: tailnet_local (own tailnet address: TSMP consumed, rest ─ tx(E))
//             ─ transit_out_checks ─┬─ kIcmpError (time exceeded) ─ to_peer
//             └─ kForward ─ exit_policy ─ domain_policy ─ [note_source]
//                ─ nat_out_steer (hand-off to the owner) ─ nat44_out ─ to_internet
//   nat44_out: nat_out ─┬─ kInternet ─ (back to the caller)
//                       ├─ kHairpin ─ to_peer
//                       ├─ kHairpinOtherWorker ─ nat44_in
//                       └─ parked fragments follow their first: nat44_out ─ to_internet
//   outbound6: tailnet_local6 (own tailnet IPv6 address: TSMP consumed, rest ─ tx(E))
//             ─ transit_out_checks6 ─┬─ kIcmpError (time exceeded) ─ to_peer
//             └─ kForward ─ exit_policy6 ─ domain_policy
//                  ─┬─ (NPTv6 only, or routed) nptv6_out_all
//                   ├─ (stateful NAT66 only) nat_out_steer ─ nat66_out_all
//                   └─ (both) nptv6_select_out
//                         ─┬─ kMapped (source in an NPTv6 inside prefix) ─ nptv6_out_all
//                          └─ kUnmapped ─ nat_out_steer ─ nat66_out_all
//   nptv6_out_all: [note_source6] ─ nptv6_out ─ [account_out6] ─ ipv6_output ─ tx(I) / punt
//   nat66_out_all: [note_source6] ─ nat66_out ─┬─ kInternet ─ [account_out6] ─ ipv6_output
//                                              ├─ kHairpin ─ to_peer
//                                              └─ kHairpinOtherWorker ─ nat66_in_all
//   inbound:  transit_in_checks ─┬─ kIcmpError ─ ipv4_output ─ tx(I)
//                                └─ kForward ─ nat44_in
//   nat44_in: nat_in (hand-off by port; routed mode: none) ─ [account_in] ─ to_peer;
//             parked fragments follow their first: nat44_in
//   inbound6: transit_in_checks6 ─┬─ kIcmpError (time exceeded, packet too big) ─ ipv6_output
//                                 └─ kForward
//                  ─┬─ (NPTv6 only, or routed) nptv6_in_all
//                   ├─ (stateful NAT66 only) nat66_in_all
//                   └─ (both) nptv6_select_in
//                         ─┬─ kMapped (destination in an NPTv6 outside prefix) ─ nptv6_in_all
//                          └─ kUnmapped ─ nat66_in_all
//   nptv6_in_all: nptv6_in ─ [account_in6] ─ to_peer
//   nat66_in_all: nat66_in (hand-off by port) ─ [account_in6] ─ to_peer;
//             parked fragments follow their first: nat66_in_all
//   (nat66_out_all: parked fragments follow their first: nat66_out_all)
//   to_peer:     wg_seal ─┬─ kIpv4 (the peer's endpoint) ─ ipv4_output ─ tx(T) / punt (no neighbor)
//                         └─ kIpv6 ─ ipv6_output ─ tx(T) / punt (no neighbor);
//                peers behind the DERP relay: wg_seal ─ tx(E)
//   to_internet: [account_out] ─ ipv4_output ─ tx(I) / punt (no neighbor yet)
//   hand-off:    handoff_input ─┬─ kNatOut ─ nat44_out ─ to_internet
//                               ├─ kNatIn ── nat44_in
//                               ├─ kNat66Out ─ nat66_out_all
//                               ├─ kNat66In ── nat66_in_all
//                               └─ kSeal ─── to_peer (control handed it back: keypair now there)
//   [...]: only when flow accounting is on.
//
// IPv6 is a sibling chain, not branches inside IPv4 stages. Its translation is per packet:
// NPTv6 (RFC 6296, stateless) when one of its mappings holds the peer's address, else
// stateful NAT66 (the NAT44 core over IPv6, same hand-off) when there is a stateful pool.
#include "dataplane/graph.h"

#include <rte_cycles.h>

#include "dataplane/flow/flow_stage.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"

namespace exitgw::dp {

namespace {

void to_peer(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  Exits<SealExit> s;
  wg_seal(w, pkts, n, s);
  ipv4_output(w, s.of(SealExit::kIpv4), s.count(SealExit::kIpv4));
  if (s.count(SealExit::kIpv6)) [[unlikely]]
    ipv6_output(w, s.of(SealExit::kIpv6), s.count(SealExit::kIpv6));
}

// Every IPv4 packet leaving for the internet passes here once (from outbound4, a hand-off,
// or a parked fragment following its first), so forwarded_out counts each once.
void to_internet(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  w.counters().forwarded_out.add(n);
  if (w.flows()) flow::account_out(*w.flows(), pkts, n, rte_rdtsc());
  ipv4_output(w, pkts, n);
}

// Inbound NAT and on to the peer; in routed mode straight to the peer.
void nat44_in(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  nat::NatWorker* nat = w.nat();
  FirstFragments firsts;
  if (nat) n = nat_in(w, pkts, n, firsts);
  if (w.flows()) flow::account_in(*w.flows(), nat, w.ctx(), pkts, n, rte_rdtsc());
  to_peer(w, pkts, n);
  // Fragments that waited for a first fragment translated just now follow it.
  for (uint16_t f = 0; f < firsts.n && w.frag_park().holding(); ++f) {
    rte_mbuf* held[FragmentPark::kHeld];
    const unsigned n_held = w.frag_park().release(firsts.keys[f], held);
    for (unsigned i = 0; i < n_held; ++i) meta(held[i])->flags |= kMetaNatIn;
    nat44_in(w, held, static_cast<uint16_t>(n_held));
  }
}

// Outbound NAT on this worker; the translated packets are left in x's kInternet exit for the
// caller, everything else goes on from here.
void nat44_out(Worker& w, rte_mbuf** pkts, uint16_t n, Exits<NatOutExit>& x) noexcept {
  FirstFragments firsts;
  nat_out(w, pkts, n, x, firsts);
  to_peer(w, x.of(NatOutExit::kHairpin), x.count(NatOutExit::kHairpin));
  // Translated as if from the internet: inbound NAT steers them as it steers arrivals.
  nat44_in(w, x.of(NatOutExit::kHairpinOtherWorker), x.count(NatOutExit::kHairpinOtherWorker));
  for (uint16_t f = 0; f < firsts.n && w.frag_park().holding(); ++f) {
    rte_mbuf* held[FragmentPark::kHeld];
    const auto n_held = static_cast<uint16_t>(w.frag_park().release(firsts.keys[f], held));
    Exits<NatOutExit> y;
    nat44_out(w, held, n_held, y);
    to_internet(w, y.of(NatOutExit::kInternet), y.count(NatOutExit::kInternet));
  }
}

// Inbound NAT66 and on to the peer; fragments that waited for a first fragment translated
// just now follow it.
void nat66_in_all(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  FirstFragments firsts;
  const uint16_t in = nat66_in(w, pkts, n, firsts);
  if (w.flows6()) flow::account_in6(*w.flows6(), w.nat66(), w.ctx(), pkts, in, rte_rdtsc());
  to_peer(w, pkts, in);
  for (uint16_t f = 0; f < firsts.n && w.frag_park().holding(); ++f) {
    rte_mbuf* held[FragmentPark::kHeld];
    const unsigned n_held = w.frag_park().release(firsts.keys[f], held);
    for (unsigned i = 0; i < n_held; ++i) meta(held[i])->flags |= kMetaNatIn;
    nat66_in_all(w, held, static_cast<uint16_t>(n_held));
  }
}

// Outbound NAT66 on this worker, everything on from here.
void nat66_out_all(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  Exits<NatOutExit> x;
  FirstFragments firsts;
  flow::Sources6 sources;  // filled only when flow accounting is on
  if (w.flows6()) flow::note_source6(pkts, n, sources);
  nat66_out(w, pkts, n, x, firsts);
  if (w.flows6())
    flow::account_out6(*w.flows6(), sources, x.of(NatOutExit::kInternet),
                       x.count(NatOutExit::kInternet), rte_rdtsc());
  w.counters().forwarded_out.add(x.count(NatOutExit::kInternet));
  ipv6_output(w, x.of(NatOutExit::kInternet), x.count(NatOutExit::kInternet));
  to_peer(w, x.of(NatOutExit::kHairpin), x.count(NatOutExit::kHairpin));
  // Translated as if from the internet: inbound NAT66 steers them as it steers arrivals.
  nat66_in_all(w, x.of(NatOutExit::kHairpinOtherWorker), x.count(NatOutExit::kHairpinOtherWorker));
  for (uint16_t f = 0; f < firsts.n && w.frag_park().holding(); ++f) {
    rte_mbuf* held[FragmentPark::kHeld];
    const auto n_held = static_cast<uint16_t>(w.frag_park().release(firsts.keys[f], held));
    nat66_out_all(w, held, n_held);
  }
}

// Peers' IPv4 packets, decrypted, on to the internet.
void outbound4(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  n = tailnet_local(w, pkts, n);
  if (n == 0) return;
  Exits<TransitExit> t;
  transit_out_checks(w, pkts, n, t);
  rte_mbuf** fwd = t.of(TransitExit::kForward);
  uint16_t out = t.count(TransitExit::kForward);
  out = exit_policy(w, fwd, out);
  out = domain_policy(w, fwd, out);
  if (w.flows()) flow::note_source(fwd, out);
  Exits<NatOutExit> x;
  if (w.nat()) {
    out = nat_out_steer(w, fwd, out);
    nat44_out(w, fwd, out, x);
    fwd = x.of(NatOutExit::kInternet);
    out = x.count(NatOutExit::kInternet);
  }
  to_internet(w, fwd, out);
  to_peer(w, t.of(TransitExit::kIcmpError), t.count(TransitExit::kIcmpError));
}

// Peers' IPv6 packets leaving through NPTv6 (or untranslated, routed), on to the internet.
void nptv6_out_all(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  flow::Sources6 sources;  // filled only when flow accounting is on
  if (w.flows6()) flow::note_source6(pkts, n, sources);
  n = nptv6_out(w, pkts, n);
  if (w.flows6()) flow::account_out6(*w.flows6(), sources, pkts, n, rte_rdtsc());
  w.counters().forwarded_out.add(n);
  ipv6_output(w, pkts, n);
}

// Peers' IPv6 packets, decrypted, on to the internet.
void outbound6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  n = tailnet_local6(w, pkts, n);
  if (n == 0) return;
  Exits<TransitExit> t;
  transit_out_checks6(w, pkts, n, t);
  rte_mbuf** fwd = t.of(TransitExit::kForward);
  uint16_t out = t.count(TransitExit::kForward);
  out = exit_policy6(w, fwd, out);
  out = domain_policy(w, fwd, out);  // the same stage: it reads either family's header
  if (w.nat66() == nullptr) {
    nptv6_out_all(w, fwd, out);  // NPTv6 only (its stage drops what no mapping holds), or routed
  } else if (!w.ctx().nptv6.on()) {
    // Accounted by nat66_out_all on the worker that owns the peer's NAT66 state.
    nat66_out_all(w, fwd, nat_out_steer(w, fwd, out));
  } else {  // both: the mappings first, the stateful pool for the rest
    Exits<Nptv6Exit> x;
    nptv6_select_out(w, fwd, out, x);
    nptv6_out_all(w, x.of(Nptv6Exit::kMapped), x.count(Nptv6Exit::kMapped));
    rte_mbuf** rest = x.of(Nptv6Exit::kUnmapped);
    nat66_out_all(w, rest, nat_out_steer(w, rest, x.count(Nptv6Exit::kUnmapped)));
  }
  to_peer(w, t.of(TransitExit::kIcmpError), t.count(TransitExit::kIcmpError));
}

// Peers' WireGuard transport messages, on to the internet.
void outbound(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  Exits<WgExit> inner;
  wg_input(w, pkts, n, inner);
  outbound4(w, inner.of(WgExit::kIpv4), inner.count(WgExit::kIpv4));
  outbound6(w, inner.of(WgExit::kIpv6), inner.count(WgExit::kIpv6));
}

// Transit packets from the internet, on to the peers.
void inbound(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  Exits<TransitExit> t;
  transit_in_checks(w, pkts, n, t);
  ipv4_output(w, t.of(TransitExit::kIcmpError), t.count(TransitExit::kIcmpError));
  nat44_in(w, t.of(TransitExit::kForward), t.count(TransitExit::kForward));
}

// Internet IPv6 for the peers through NPTv6 (or untranslated, routed), on to the peers.
void nptv6_in_all(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  n = nptv6_in(w, pkts, n);
  if (w.flows6()) flow::account_in6(*w.flows6(), nullptr, w.ctx(), pkts, n, rte_rdtsc());
  to_peer(w, pkts, n);
}

// IPv6 transit from the internet, on to the peers.
void inbound6(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  if (n == 0) return;
  Exits<TransitExit> t;
  transit_in_checks6(w, pkts, n, t);
  ipv6_output(w, t.of(TransitExit::kIcmpError), t.count(TransitExit::kIcmpError));
  rte_mbuf** fwd = t.of(TransitExit::kForward);
  const uint16_t n_fwd = t.count(TransitExit::kForward);
  if (w.nat66() == nullptr) {
    nptv6_in_all(w, fwd, n_fwd);  // NPTv6 only, or routed
  } else if (!w.ctx().nptv6.on()) {
    nat66_in_all(w, fwd, n_fwd);
  } else {  // both: a destination in a mapping's outside prefix to NPTv6, the rest to NAT66
    Exits<Nptv6Exit> x;
    nptv6_select_in(w, fwd, n_fwd, x);
    nptv6_in_all(w, x.of(Nptv6Exit::kMapped), x.count(Nptv6Exit::kMapped));
    nat66_in_all(w, x.of(Nptv6Exit::kUnmapped), x.count(Nptv6Exit::kUnmapped));
  }
}

// IPv6 on the gateway's ports: its own addresses' ICMPv6 (echo, neighbor discovery), and
// transit from the internet for the peers.
void ipv6(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept {
  Exits<Ipv6Exit> l3;
  ipv6_input(w, port, pkts, n, l3);
  Exits<LocalExit> local;
  ipv6_local(w, port, l3.of(Ipv6Exit::kLocal), l3.count(Ipv6Exit::kLocal), local);
  outbound(w, local.of(LocalExit::kWireGuard), local.count(LocalExit::kWireGuard));
  if (port == w.ctx().port_index(PortRole::kInternet))
    inbound6(w, l3.of(Ipv6Exit::kTransit), l3.count(Ipv6Exit::kTransit));
  else
    w.drop_all(l3.of(Ipv6Exit::kTransit), l3.count(Ipv6Exit::kTransit),
               DropReason::kTransitFromTunnel);
}

}  // namespace

void receive(Worker& w, uint8_t port, rte_mbuf** pkts, uint16_t n) noexcept {
  if (port == w.ctx().exception_port) [[unlikely]] {
    Exits<ExceptionExit> e;
    exception_input(w, pkts, n, e);
    to_peer(w, e.of(ExceptionExit::kToPeer), e.count(ExceptionExit::kToPeer));
    Exits<LocalExit> relayed;
    local_input(w, port, e.of(ExceptionExit::kRelay), e.count(ExceptionExit::kRelay), relayed);
    outbound(w, relayed.of(LocalExit::kWireGuard), relayed.count(LocalExit::kWireGuard));
    return;
  }
  Exits<EthExit> l2;
  eth_input(w, port, pkts, n, l2);
  arp_input(w, port, l2.of(EthExit::kArp), l2.count(EthExit::kArp));
  Exits<Ipv4Exit> l3;
  ipv4_input(w, port, l2.of(EthExit::kIpv4), l2.count(EthExit::kIpv4), l3);
  Exits<LocalExit> local;
  local_input(w, port, l3.of(Ipv4Exit::kLocal), l3.count(Ipv4Exit::kLocal), local);
  // Transit packets: from the internet they are replies for peers; on a separate tunnel port
  // peers must use the tunnel, so plain IP from there is refused.
  if (port == w.ctx().port_index(PortRole::kInternet))
    inbound(w, l3.of(Ipv4Exit::kTransit), l3.count(Ipv4Exit::kTransit));
  else
    w.drop_all(l3.of(Ipv4Exit::kTransit), l3.count(Ipv4Exit::kTransit),
               DropReason::kTransitFromTunnel);
  outbound(w, local.of(LocalExit::kWireGuard), local.count(LocalExit::kWireGuard));
  if (l2.count(EthExit::kIpv6)) [[unlikely]]
    ipv6(w, port, l2.of(EthExit::kIpv6), l2.count(EthExit::kIpv6));
}

void receive_handoff(Worker& w, rte_mbuf** pkts, uint16_t n) noexcept {
  Exits<HandoffExit> h;
  handoff_input(w, pkts, n, h);
  if (h.count(HandoffExit::kNatOut)) {
    Exits<NatOutExit> x;
    nat44_out(w, h.of(HandoffExit::kNatOut), h.count(HandoffExit::kNatOut), x);
    to_internet(w, x.of(NatOutExit::kInternet), x.count(NatOutExit::kInternet));
  }
  nat44_in(w, h.of(HandoffExit::kNatIn), h.count(HandoffExit::kNatIn));
  nat66_out_all(w, h.of(HandoffExit::kNat66Out), h.count(HandoffExit::kNat66Out));
  nat66_in_all(w, h.of(HandoffExit::kNat66In), h.count(HandoffExit::kNat66In));
  to_peer(w, h.of(HandoffExit::kSeal), h.count(HandoffExit::kSeal));
}

}  // namespace exitgw::dp
