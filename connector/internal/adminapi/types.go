// Package adminapi is exitgw's admin API as the connector uses it: the typed updates and a client.
package adminapi

import (
	"net/netip"
	"slices"
)

// Peer is one entry of PUT /v1/tailnet/peers (control/admin/peer_json.cc on the gateway side).
type Peer struct {
	PublicKey  string   `json:"public_key"`
	AllowedIPs []string `json:"allowed_ips"`
	User       string   `json:"user,omitempty"`
	Tags       []string `json:"tags,omitempty"`
	DiscoKey   string   `json:"disco_key,omitempty"`
}

// PeerSet is the body of PUT /v1/tailnet/peers: it replaces the tailnet source's whole peer set.
type PeerSet struct {
	Peers []Peer `json:"peers"`
}

// SamePeers reports whether a and b hold the same peers, whatever their order and that of
// their allowed IPs and tags (the gateway's GET answers sorted by key), and however an allowed
// IP is spelled (the gateway writes IPv6 as inet_ntop does, "::1.2.3.4" where Go writes
// "::102:304").
func SamePeers(a, b PeerSet) bool {
	if len(a.Peers) != len(b.Peers) {
		return false
	}
	norm := func(s PeerSet) map[string]Peer {
		m := make(map[string]Peer, len(s.Peers))
		for _, p := range s.Peers {
			p.AllowedIPs = canonicalPrefixes(p.AllowedIPs)
			p.Tags = slices.Sorted(slices.Values(p.Tags))
			m[p.PublicKey] = p
		}
		return m
	}
	ma, mb := norm(a), norm(b)
	if len(ma) != len(a.Peers) {
		return false
	}
	for k, pa := range ma {
		pb, ok := mb[k]
		if !ok || pa.User != pb.User || pa.DiscoKey != pb.DiscoKey ||
			!slices.Equal(pa.AllowedIPs, pb.AllowedIPs) || !slices.Equal(pa.Tags, pb.Tags) {
			return false
		}
	}
	return true
}

// FilterDst is one destination of a filter rule: an IPv4 prefix and an inclusive port range.
type FilterDst struct {
	Prefix string    `json:"prefix"`
	Ports  [2]uint16 `json:"ports"`
}

// FilterRule allows a packet whose inner source is in Src, destination and port in Dst and
// IP protocol in Protocols.
type FilterRule struct {
	Src       []string    `json:"src"`
	Dst       []FilterDst `json:"dst"`
	Protocols []int       `json:"protocols"`
}

// Filter is the body of PUT /v1/filter: the tailnet's packet filter for this node, compiled.
// No rules means nothing is allowed.
type Filter struct {
	Rules []FilterRule `json:"rules"`
}

// Tailnet states reported with PUT /v1/tailnet.
const (
	StateOK        = "ok"         // in the map poll, the last netmap applied
	StateStale     = "stale"      // the coordination server is away; the gateway keeps the last netmap
	StateLoggedOut = "logged_out" // the server wants a (new) login: a valid auth key is needed
	StateError     = "error"      // no netmap yet and login fails, or the connector refuses to go on
)

// Tailnet is the body of PUT /v1/tailnet: the connector's health as the gateway reports it.
type Tailnet struct {
	State            string `json:"state"`
	SinceUnixMs      int64  `json:"since_unix_ms"`
	LastNetmapUnixMs int64  `json:"last_netmap_unix_ms"`
	Message          string `json:"message"`
	NodeKey          string `json:"node_key"`
	LoginServer      string `json:"login_server"`
	// The node's own tailnet addresses (netmap SelfNode.Addresses, bare IPs): exitgw puts
	// the IPv4 one on its exception port, where the PeerAPI DoH server listens.
	Addresses []string `json:"addresses,omitempty"`
}

// canonicalPrefixes is in, each prefix in Go's text (left as it is if it does not parse), sorted.
func canonicalPrefixes(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		if p, err := netip.ParsePrefix(s); err == nil {
			s = p.String()
		}
		out[i] = s
	}
	slices.Sort(out)
	return out
}
