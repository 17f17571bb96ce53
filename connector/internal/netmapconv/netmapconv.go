// Package netmapconv turns a tailnet netmap into exitgw's typed updates. It is pure: the same
// netmap and time always give the same updates, and nothing here does I/O.
//
// Choices, each fail-closed:
//   - A node the gateway would refuse (no tailnet address, an address the gateway cannot take as
//     an allowed IP, a user or tag it cannot carry, an address already held by another node, a
//     duplicate key) is left out and named in Problems; the rest of the peer set applies.
//     Leaving a node out only takes access away.
//   - A peer's allowed IPs are its tailnet addresses of both families (IPv4 first, then IPv6,
//     such as the tailnet's fd7a:115c:a1e0::/48 /128s).
//   - A filter entry that does not parse is skipped and named; a rule left with no source, no
//     destination or no protocol is dropped. Skipping can only narrow what a rule allows.
//   - The packet filter keeps both families: IPv6 sources (the nodes' fd7a:115c:a1e0::/48
//     addresses) and destinations (2000::/3 for autogroup:internet), with ICMPv6 beside ICMP
//     in the default protocols. The gateway names dual-stack peers by their IPv4 sources and
//     IPv6-only peers by their IPv6 ones (control/policy): the same nodes, since a
//     coordination server lists each node's addresses of both families together.
//   - Approval is the IPv4 exit route's (0.0.0.0/0): servers approve ::/0 with it, and a
//     client routes IPv6 to an exit node only when ::/0 is in its AllowedIPs as well.
package netmapconv

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
	"tailscale.com/types/netmap"

	"exitgw/connector/internal/adminapi"
)

// Limits mirrored from the gateway's peer validation (control/peers_config.cc), so a node it
// would refuse is named here instead of failing the whole PUT.
const (
	maxUserBytes    = 256
	maxTagNameBytes = 63
	shortestPrefix  = 8
	shortestPrefix6 = 16
)

// Protocol numbers used in filter rules.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// defaultProtocols is what an empty FilterRule.IPProto means (tailcfg: TCP, UDP, ICMP and
// ICMPv6). Sent as this explicit list, every protocol applies to destinations of both
// families, as in tailscaled's filter (an IPv4 packet never carries ICMPv6 in practice).
var defaultProtocols = []int{protoTCP, protoUDP, protoICMP, protoICMPv6}

var (
	exitRouteV4 = netip.MustParsePrefix("0.0.0.0/0")
	allIPv4     = netip.MustParsePrefix("0.0.0.0/0")
	allIPv6     = netip.MustParsePrefix("::/0")
)

// Counts are the things left out by design, for the log.
type Counts struct {
	PeersExpired      int // key expired: removed from the gateway
	PeersUnauthorized int // not authorized by the tailnet admin: removed
	RulesCapGrantOnly int // application-capability rules: no ports, nothing to forward
	RulesEmpty        int // rules left with no source, destination or protocol
	CapSourcesOmitted int // "cap:NAME" sources (peer capabilities, not addresses)
}

// Result is the gateway's state for one netmap.
type Result struct {
	Peers    adminapi.PeerSet
	Filter   adminapi.Filter
	Approved bool // the netmap gives this node the IPv4 exit route (see the package comment)
	// NextExpiry is the earliest key expiry among the peers kept (zero if none expires): the
	// netmap must be converted again then, even if the server sends nothing new.
	NextExpiry time.Time
	Problems   []string // entries left out because the gateway cannot take them, named
	Counts     Counts
}

// Convert translates nm as of now.
func Convert(nm *netmap.NetworkMap, now time.Time) Result {
	var r Result
	if nm == nil {
		r.Filter.Rules = []adminapi.FilterRule{}
		r.Peers.Peers = []adminapi.Peer{}
		return r
	}
	r.Approved = approved(nm, now)
	r.convertPeers(nm, now)
	r.convertFilter(nm.PacketFilterRules.AsSlice())
	return r
}

// approved: the self node has the IPv4 exit route among its AllowedIPs or PrimaryRoutes,
// which is how a coordination server says an admin (or autoApprovers) approved it.
func approved(nm *netmap.NetworkMap, now time.Time) bool {
	self := nm.SelfNode
	if !self.Valid() || expired(self, now) {
		return false
	}
	return slices.Contains(self.AllowedIPs().AsSlice(), exitRouteV4) ||
		slices.Contains(self.PrimaryRoutes().AsSlice(), exitRouteV4)
}

// expired: the server says so, or the node key's expiry has passed.
func expired(n tailcfg.NodeView, now time.Time) bool {
	return n.Expired() || (!n.KeyExpiry().IsZero() && !n.KeyExpiry().After(now))
}

func (r *Result) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

func nodeName(n tailcfg.NodeView) string {
	name := n.Name()
	if name == "" {
		name = fmt.Sprintf("node %d", n.ID())
	}
	return fmt.Sprintf("%s (%s)", name, n.Key().ShortString())
}

func (r *Result) convertPeers(nm *netmap.NetworkMap, now time.Time) {
	r.Peers.Peers = []adminapi.Peer{}
	keys := map[string]bool{}
	owner := map[netip.Prefix]string{}
	for _, n := range nm.Peers {
		if !n.Valid() {
			continue
		}
		if n.Key().IsZero() {
			r.problem("%s: no node key", nodeName(n))
			continue
		}
		if expired(n, now) {
			r.Counts.PeersExpired++
			continue
		}
		if !n.MachineAuthorized() {
			r.Counts.PeersUnauthorized++
			continue
		}
		peer, ok := r.convertPeer(nm, n, owner)
		if !ok {
			continue
		}
		if keys[peer.PublicKey] {
			r.problem("%s: the node key appears twice in the netmap", nodeName(n))
			continue
		}
		keys[peer.PublicKey] = true
		for _, ip := range peer.AllowedIPs {
			owner[netip.MustParsePrefix(ip)] = nodeName(n)
		}
		if exp := n.KeyExpiry(); !exp.IsZero() && (r.NextExpiry.IsZero() || exp.Before(r.NextExpiry)) {
			r.NextExpiry = exp
		}
		r.Peers.Peers = append(r.Peers.Peers, peer)
	}
	slices.SortFunc(r.Peers.Peers, func(a, b adminapi.Peer) int {
		return strings.Compare(a.PublicKey, b.PublicKey)
	})
}

func (r *Result) convertPeer(nm *netmap.NetworkMap, n tailcfg.NodeView, owner map[netip.Prefix]string) (adminapi.Peer, bool) {
	raw := n.Key().Raw32()
	peer := adminapi.Peer{PublicKey: base64.StdEncoding.EncodeToString(raw[:])}
	// IPv4 first, then IPv6, as the gateway lists them.
	addrs := slices.Clone(n.Addresses().AsSlice())
	slices.SortStableFunc(addrs, func(a, b netip.Prefix) int { return a.Addr().BitLen() - b.Addr().BitLen() })
	for _, p := range addrs {
		if err := checkAllowedIP(p); err != nil {
			r.problem("%s: tailnet address %s %v", nodeName(n), p, err)
			return adminapi.Peer{}, false
		}
		if other, taken := owner[p]; taken {
			r.problem("%s: tailnet address %s already belongs to %s", nodeName(n), p, other)
			return adminapi.Peer{}, false
		}
		if !slices.Contains(peer.AllowedIPs, p.String()) {
			peer.AllowedIPs = append(peer.AllowedIPs, p.String())
		}
	}
	if len(peer.AllowedIPs) == 0 {
		r.problem("%s: no tailnet address", nodeName(n))
		return adminapi.Peer{}, false
	}
	if n.IsTagged() {
		for _, tag := range n.Tags().All() {
			if err := checkTag(tag); err != nil {
				r.problem("%s: %v", nodeName(n), err)
				return adminapi.Peer{}, false
			}
			if !slices.Contains(peer.Tags, tag) {
				peer.Tags = append(peer.Tags, tag)
			}
		}
	} else if profile, ok := nm.UserProfiles[n.User()]; ok && profile.Valid() {
		// A tagged node's identity is its tags; only a user's node carries the login name.
		peer.User = profile.LoginName()
		if err := checkUser(peer.User); err != nil {
			r.problem("%s: %v", nodeName(n), err)
			return adminapi.Peer{}, false
		}
	}
	if d := n.DiscoKey(); !d.IsZero() {
		raw := d.Raw32()
		peer.DiscoKey = base64.StdEncoding.EncodeToString(raw[:])
	}
	return peer, true
}

// checkAllowedIP holds p to the gateway's rules for an allowed IP (control/peers_config.cc
// check_allowed_ip): canonical; IPv4 /8 or longer; IPv6 /16 or longer and holding no address a
// peer's packets can never come from (multicast, link-local, unspecified, loopback).
func checkAllowedIP(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("is not a prefix")
	case p.Masked() != p:
		return fmt.Errorf("has host bits set (the network is %s)", p.Masked())
	case p.Addr().Is4() && p.Bits() < shortestPrefix:
		return fmt.Errorf("is shorter than /%d, which the gateway needs", shortestPrefix)
	case p.Addr().Is4():
		return nil
	case p.Bits() < shortestPrefix6:
		return fmt.Errorf("is shorter than /%d, which the gateway needs for IPv6", shortestPrefix6)
	case p.Addr().IsMulticast():
		return fmt.Errorf("is multicast")
	case p.Addr().IsLinkLocalUnicast():
		return fmt.Errorf("is link-local")
	case p.Contains(netip.IPv6Unspecified()) || p.Contains(netip.IPv6Loopback()):
		return fmt.Errorf("holds the unspecified or the loopback address")
	}
	return nil
}

func checkUser(user string) error {
	if len(user) > maxUserBytes {
		return fmt.Errorf("user %q is longer than %d bytes", user, maxUserBytes)
	}
	for _, c := range []byte(user) {
		if c <= 0x20 || c >= 0x7f || c == ',' {
			return fmt.Errorf("user %q is not printable ASCII without spaces or commas, which the gateway needs", user)
		}
	}
	return nil
}

func checkTag(tag string) error {
	name, ok := strings.CutPrefix(tag, "tag:")
	ok = ok && name != "" && len(name) <= maxTagNameBytes
	for _, c := range []byte(name) {
		ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')
	}
	if !ok {
		return fmt.Errorf("tag %q is not tag:<name> with a name of 1 to %d characters of a-z, 0-9 and '-', which the gateway needs", tag, maxTagNameBytes)
	}
	return nil
}

func (r *Result) convertFilter(rules []tailcfg.FilterRule) {
	r.Filter.Rules = []adminapi.FilterRule{}
	for i, rule := range rules {
		where := fmt.Sprintf("filter rule %d", i)
		if len(rule.SrcBits) > 0 {
			r.problem("%s: SrcBits (a pre-2021 form) is not supported; rule dropped", where)
			continue
		}
		if len(rule.DstPorts) == 0 {
			if len(rule.CapGrant) > 0 {
				r.Counts.RulesCapGrantOnly++
			}
			continue
		}
		out := adminapi.FilterRule{Src: []string{}, Dst: []adminapi.FilterDst{}}
		for j, s := range rule.SrcIPs {
			if strings.HasPrefix(s, "cap:") {
				r.Counts.CapSourcesOmitted++
				continue
			}
			prefixes, err := r.addrSet(s)
			if err != nil {
				r.problem("%s SrcIPs[%d] %q: %v; entry skipped", where, j, s, err)
				continue
			}
			for _, p := range prefixes {
				if !slices.Contains(out.Src, p.String()) {
					out.Src = append(out.Src, p.String())
				}
			}
		}
		for j, d := range rule.DstPorts {
			if d.Bits != nil {
				r.problem("%s DstPorts[%d] %q: Bits (a pre-2021 form) is not supported; entry skipped", where, j, d.IP)
				continue
			}
			if d.Ports.First > d.Ports.Last {
				r.problem("%s DstPorts[%d] %q: port range %d-%d is backwards; entry skipped", where, j, d.IP, d.Ports.First, d.Ports.Last)
				continue
			}
			prefixes, err := r.addrSet(d.IP)
			if err != nil {
				r.problem("%s DstPorts[%d] %q: %v; entry skipped", where, j, d.IP, err)
				continue
			}
			for _, p := range prefixes {
				dst := adminapi.FilterDst{Prefix: p.String(), Ports: [2]uint16{d.Ports.First, d.Ports.Last}}
				if !slices.Contains(out.Dst, dst) {
					out.Dst = append(out.Dst, dst)
				}
			}
		}
		out.Protocols = r.protocols(where, rule.IPProto)
		if len(out.Src) == 0 || len(out.Dst) == 0 || len(out.Protocols) == 0 {
			r.Counts.RulesEmpty++
			continue
		}
		r.Filter.Rules = append(r.Filter.Rules, out)
	}
}

// protocols: empty means TCP, UDP, ICMP and ICMPv6; numbers outside 1-255 (what exitgw
// takes) are named and skipped. An explicit list that ends up empty gives none (the rule is
// dropped).
func (r *Result) protocols(where string, in []int) []int {
	if len(in) == 0 {
		return slices.Clone(defaultProtocols)
	}
	out := []int{}
	for _, p := range in {
		switch {
		case p < 1 || p > 255:
			r.problem("%s: IPProto %d is not a protocol number 1-255; skipped", where, p)
		case !slices.Contains(out, p):
			out = append(out, p)
		}
	}
	return out
}

// addrSet parses one address set as tailcfg writes them (IP, CIDR, "a-b" range or "*") into
// prefixes of either family.
func (r *Result) addrSet(s string) ([]netip.Prefix, error) {
	if s == "*" {
		return []netip.Prefix{allIPv4, allIPv6}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("not a CIDR prefix: %w", err)
		}
		if p.Addr().Is4In6() {
			return nil, fmt.Errorf("an IPv4-mapped IPv6 prefix; write the IPv4 prefix")
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("host bits set (the network is %s)", p.Masked())
		}
		return []netip.Prefix{p}, nil
	}
	if first, last, ok := strings.Cut(s, "-"); ok {
		a, err := netip.ParseAddr(first)
		if err != nil {
			return nil, fmt.Errorf("range start: %w", err)
		}
		b, err := netip.ParseAddr(last)
		if err != nil {
			return nil, fmt.Errorf("range end: %w", err)
		}
		rng := netipx.IPRangeFrom(a, b)
		if !rng.IsValid() || a.Zone() != "" || b.Zone() != "" || a.Is4In6() || b.Is4In6() {
			return nil, fmt.Errorf("not a valid range (mixed families, a zone, an IPv4-mapped end or end before start)")
		}
		return rng.Prefixes(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil, fmt.Errorf("not an IP, CIDR, range or \"*\"")
	}
	if a.Zone() != "" || a.Is4In6() {
		return nil, fmt.Errorf("a zoned or IPv4-mapped address")
	}
	return []netip.Prefix{netip.PrefixFrom(a, a.BitLen())}, nil
}
