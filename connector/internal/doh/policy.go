package doh

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"tailscale.com/tailcfg"
	"tailscale.com/types/ipproto"
	"tailscale.com/types/netmap"
	"tailscale.com/util/dnsname"
	"tailscale.com/wgengine/filter"
	"tailscale.com/wgengine/filter/filtertype"
)

// The probe tailscaled uses for "may this peer use the internet through me": would the packet
// filter accept a TCP SYN from the peer to "the internet" on port 53 (ipn/ipnlocal/peerapi.go,
// offersExitNodeOrAppConnectorAndPeerHasAutogroupInternet). autogroup:internet for IPv6 starts
// at 2000::/3, so an IPv6 source is probed against 2000::.
var (
	probe4 = netip.IPv4Unspecified()
	probe6 = netip.MustParseAddr("2000::")
)

const probePort = 53

type peer struct {
	id   tailcfg.NodeID
	name string
}

// Policy is who may use this node's DoH and which names it refuses to answer, computed from one
// netmap. It never changes: each netmap gives a new one.
type Policy struct {
	allowed map[netip.Addr]peer // tailnet address → the peer that holds it, of the peers allowed
	peers   int                 // peers considered (authorized, not expired)
	// filtered is the netmap's DNS.ExitNodeFilteredSet: names (".suffix" or exact) an exit
	// node must not resolve for its peers, answered REFUSED, as tailscaled does.
	filtered []string
	// Problem is set when part of the packet filter did not parse; the rules that did parse
	// still apply and the ones that did not allow nothing (fail closed).
	Problem string
}

// NewPolicy computes the policy of nm (nil: nobody is allowed). It is a pure function.
//
// A peer may use the DoH exactly when tailscaled, as an exit node with this netmap, would let
// it: its tailnet address is one of the peer's own addresses (tailscaled's WhoIs) and the
// packet filter accepts TCP from that address to 0.0.0.0:53 (2000:: for IPv6), source
// capabilities ("cap:NAME") taken from the peer's CapMap. Two deliberate narrowings: a peer
// the gateway does not carry (not authorized, expired, or only allowed PeerAPI under tailnet
// lock) is not allowed, and tailscaled's "same user as this node" shortcut is not taken: the
// gateway forwards only what the filter allows, so a peer it would not forward for has no use
// for its DNS.
func NewPolicy(nm *netmap.NetworkMap) *Policy {
	p := &Policy{allowed: map[netip.Addr]peer{}}
	if nm == nil {
		return p
	}
	matches, err := filter.MatchesFromFilterRules(nm.PacketFilterRules.AsSlice())
	if err != nil {
		p.Problem = fmt.Sprintf("packet filter: %v", err)
	}
	for _, n := range nm.Peers {
		if !n.Valid() || n.Expired() || !n.MachineAuthorized() || n.UnsignedPeerAPIOnly() {
			continue
		}
		p.peers++
		for _, a := range n.Addresses().All() {
			if !a.IsSingleIP() {
				continue
			}
			if mayUseExit(matches, a.Addr(), n) {
				p.allowed[a.Addr()] = peer{id: n.ID(), name: n.Name()}
			}
		}
	}
	if nm.DNS.ExitNodeFilteredSet != nil {
		for _, s := range nm.DNS.ExitNodeFilteredSet {
			if s != "" {
				p.filtered = append(p.filtered, strings.ToLower(s))
			}
		}
	}
	return p
}

// mayUseExit is tailscaled's filter decision (wgengine/filter: Check with a TCP SYN, for a
// destination in the exit node's local nets) for one source address of node n.
func mayUseExit(matches []filtertype.Match, src netip.Addr, n tailcfg.NodeView) bool {
	dst := probe4
	if src.Is6() {
		dst = probe6
	}
	for i := range matches {
		m := &matches[i]
		if !m.IPProto.ContainsFunc(func(p ipproto.Proto) bool { return p == ipproto.TCP }) {
			continue
		}
		if !sourceMatches(m, src, n) {
			continue
		}
		for _, d := range m.Dsts {
			if d.Net.Contains(dst) && d.Ports.Contains(probePort) {
				return true
			}
		}
	}
	return false
}

func sourceMatches(m *filtertype.Match, src netip.Addr, n tailcfg.NodeView) bool {
	if slices.ContainsFunc(m.Srcs, func(p netip.Prefix) bool { return p.Contains(src) }) {
		return true
	}
	return slices.ContainsFunc(m.SrcCaps, n.HasCap)
}

// Allows reports whether a request from src (a tailnet address) may be answered, and the
// name of the node that holds it.
func (p *Policy) Allows(src netip.Addr) (node string, ok bool) {
	n, ok := p.allowed[src.Unmap()]
	return n.name, ok
}

// ServesName reports whether a query for name (with or without the final dot) may be answered;
// false means REFUSED, as tailscaled's allowExitNodeDNSProxyToServeName.
func (p *Policy) ServesName(name string) bool {
	name = strings.ToLower(name)
	for _, bad := range p.filtered {
		if bad[0] == '.' {
			if dnsname.HasSuffix(name, bad) {
				return false
			}
		} else if strings.TrimSuffix(name, ".") == strings.TrimSuffix(bad, ".") {
			return false
		}
	}
	return true
}

// Summary is one line for the log.
func (p *Policy) Summary() string {
	nodes := map[tailcfg.NodeID]bool{}
	for _, n := range p.allowed {
		nodes[n.id] = true
	}
	s := fmt.Sprintf("%d of %d peers may use the exit node's DNS (%d addresses); %d names filtered",
		len(nodes), p.peers, len(p.allowed), len(p.filtered))
	if p.Problem != "" {
		s += "; " + p.Problem
	}
	return s
}
