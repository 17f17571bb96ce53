package doh

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"go4.org/netipx"
	"tailscale.com/tailcfg"
	"tailscale.com/types/logger"
	"tailscale.com/types/netmap"
	"tailscale.com/types/views"
	"tailscale.com/wgengine/filter"
)

// autogroupInternet is autogroup:internet as a coordination server sends it.
var autogroupInternet = []string{
	"0.0.0.0-9.255.255.255", "11.0.0.0-100.63.255.255", "100.128.0.0-169.253.255.255",
	"169.255.0.0-172.15.255.255", "172.32.0.0-192.167.255.255", "192.169.0.0-255.255.255.255",
	"2000::/3",
}

func dsts(ips []string, first, last uint16) []tailcfg.NetPortRange {
	var out []tailcfg.NetPortRange
	for _, ip := range ips {
		out = append(out, tailcfg.NetPortRange{IP: ip, Ports: tailcfg.PortRange{First: first, Last: last}})
	}
	return out
}

type testPeer struct {
	id    tailcfg.NodeID
	addrs []string
	caps  []tailcfg.NodeCapability
	// unauthorized, expired, unsigned: the peers the gateway does not carry
	unauthorized, expired, unsigned bool
}

func testNetMap(peers []testPeer, rules []tailcfg.FilterRule) *netmap.NetworkMap {
	nm := &netmap.NetworkMap{
		SelfNode: (&tailcfg.Node{ID: 1000, Name: "gw.", Addresses: []netip.Prefix{netip.MustParsePrefix("100.64.0.100/32")},
			MachineAuthorized: true}).View(),
		PacketFilterRules: views.SliceOf(rules),
	}
	for _, p := range peers {
		n := &tailcfg.Node{ID: p.id, Name: fmt.Sprintf("peer%d.", p.id), MachineAuthorized: !p.unauthorized,
			Expired: p.expired, UnsignedPeerAPIOnly: p.unsigned}
		for _, a := range p.addrs {
			n.Addresses = append(n.Addresses, netip.MustParsePrefix(a))
		}
		if len(p.caps) > 0 {
			n.CapMap = tailcfg.NodeCapMap{}
			for _, c := range p.caps {
				n.CapMap[c] = nil
			}
		}
		nm.Peers = append(nm.Peers, n.View())
	}
	return nm
}

func TestPolicyAllowsPeersTheFilterLetsUseTheExitNode(t *testing.T) {
	alice := testPeer{id: 1, addrs: []string{"100.64.0.1/32", "fd7a:115c:a1e0::1/128"}}
	bob := testPeer{id: 2, addrs: []string{"100.64.0.2/32", "fd7a:115c:a1e0::2/128"}}
	tests := []struct {
		name  string
		peers []testPeer
		rules []tailcfg.FilterRule
		want  []string // addresses allowed
	}{
		{"autogroup:internet granted to alice", []testPeer{alice, bob},
			[]tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.1", "fd7a:115c:a1e0::1"}, DstPorts: dsts(autogroupInternet, 0, 65535)}},
			[]string{"100.64.0.1", "fd7a:115c:a1e0::1"}},
		{"IPv4 source only: its IPv6 address is not allowed", []testPeer{alice},
			[]tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.1"}, DstPorts: dsts(autogroupInternet, 0, 65535)}},
			[]string{"100.64.0.1"}},
		{"allow all", []testPeer{alice, bob},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: dsts([]string{"*"}, 0, 65535)}},
			[]string{"100.64.0.1", "fd7a:115c:a1e0::1", "100.64.0.2", "fd7a:115c:a1e0::2"}},
		{"internet on ports 80 and 443 only: not port 53", []testPeer{alice},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: append(dsts(autogroupInternet, 80, 80), dsts(autogroupInternet, 443, 443)...)}},
			nil},
		{"internet port 53 only is enough", []testPeer{alice},
			[]tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0/10"}, DstPorts: dsts([]string{"0.0.0.0/0"}, 53, 53)}},
			[]string{"100.64.0.1"}},
		{"UDP only: tailscaled probes with TCP, so no", []testPeer{alice},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: dsts(autogroupInternet, 0, 65535), IPProto: []int{17}}},
			nil},
		{"tailnet destinations only", []testPeer{alice, bob},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: dsts([]string{"100.64.0.0/10", "fd7a:115c:a1e0::/48"}, 0, 65535)}},
			nil},
		{"granted by capability", []testPeer{{id: 1, addrs: alice.addrs, caps: []tailcfg.NodeCapability{"internet-users"}}, bob},
			[]tailcfg.FilterRule{{SrcIPs: []string{"cap:internet-users"}, DstPorts: dsts(autogroupInternet, 0, 65535)}},
			[]string{"100.64.0.1", "fd7a:115c:a1e0::1"}},
		{"a range source", []testPeer{alice, bob},
			[]tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.2-100.64.0.9"}, DstPorts: dsts(autogroupInternet, 0, 65535)}},
			[]string{"100.64.0.2"}},
		{"unauthorized, expired and unsigned peers are not carried",
			[]testPeer{{id: 1, addrs: alice.addrs, unauthorized: true}, {id: 2, addrs: bob.addrs, expired: true},
				{id: 3, addrs: []string{"100.64.0.3/32"}, unsigned: true}, {id: 4, addrs: []string{"100.64.0.4/32"}}},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: dsts([]string{"*"}, 0, 65535)}},
			[]string{"100.64.0.4"}},
		{"a subnet a peer routes is not the peer's own address", []testPeer{{id: 1, addrs: []string{"100.64.0.1/32", "192.168.7.0/24"}}},
			[]tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: dsts([]string{"*"}, 0, 65535)}},
			[]string{"100.64.0.1"}},
		{"no rules", []testPeer{alice, bob}, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy(testNetMap(tt.peers, tt.rules))
			if p.Problem != "" {
				t.Errorf("Problem %q", p.Problem)
			}
			want := map[netip.Addr]bool{}
			for _, a := range tt.want {
				want[netip.MustParseAddr(a)] = true
			}
			probe := []string{"100.64.0.1", "100.64.0.2", "100.64.0.3", "100.64.0.4", "100.64.0.100", "100.64.0.9",
				"192.168.7.1", "fd7a:115c:a1e0::1", "fd7a:115c:a1e0::2", "::ffff:100.64.0.1", "1.1.1.1"}
			for _, s := range probe {
				a := netip.MustParseAddr(s)
				_, got := p.Allows(a)
				if got != want[a.Unmap()] {
					t.Errorf("Allows(%v) = %v, want %v", a, got, want[a.Unmap()])
				}
			}
		})
	}
}

func TestPolicyWithoutNetMapAllowsNobody(t *testing.T) {
	if _, ok := NewPolicy(nil).Allows(netip.MustParseAddr("100.64.0.1")); ok {
		t.Error("a nil netmap allowed a source")
	}
}

// A filter with the pre-2021 SrcBits form does not parse at all: nobody, and the reason.
func TestPolicyUnparsableFilterAllowsNobodyAndSaysWhy(t *testing.T) {
	p := NewPolicy(testNetMap([]testPeer{{id: 1, addrs: []string{"100.64.0.1/32"}}},
		[]tailcfg.FilterRule{{SrcBits: []int{32}, SrcIPs: []string{"*"}, DstPorts: dsts([]string{"*"}, 0, 65535)}}))
	if _, ok := p.Allows(netip.MustParseAddr("100.64.0.1")); ok {
		t.Error("allowed under a filter that does not parse")
	}
	if p.Problem == "" {
		t.Error("no Problem for a filter that does not parse")
	}
}

func TestPolicyServesNameRefusesTheExitNodeFilteredSet(t *testing.T) {
	nm := testNetMap(nil, nil)
	nm.DNS.ExitNodeFilteredSet = []string{".internal.example", "secret.example.com", ""}
	p := NewPolicy(nm)
	tests := map[string]bool{
		"www.example.com.":       true,
		"db.internal.example.":   false,
		"internal.example.":      true, // ".suffix" entries match names under it (dnsname.HasSuffix), as in tailscaled
		"DB.Internal.Example.":   false,
		"notinternal.example.":   true,
		"secret.example.com.":    false,
		"SECRET.example.com":     false,
		"a.secret.example.com.":  true, // exact entries match exactly
		"secret.example.com.org": true,
	}
	for name, want := range tests {
		if got := p.ServesName(name); got != want {
			t.Errorf("ServesName(%q) = %v, want %v", name, got, want)
		}
	}
}

// NewPolicy agrees with tailscaled's own filter (wgengine/filter, as an exit node: local nets
// 0.0.0.0/0 and ::/0, capabilities from the peers' CapMap) on random netmaps: the "model" is
// the code tailscaled runs.
func TestPolicyAgreesWithTailscaledsFilterOnRandomNetmaps(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	srcChoices := []string{"*", "100.64.0.1", "100.64.0.2", "100.64.0.0/30", "100.64.0.3-100.64.0.6",
		"fd7a:115c:a1e0::1", "fd7a:115c:a1e0::/120", "cap:a", "cap:b", "10.0.0.0/8", "100.64.0.7"}
	dstChoices := [][]string{{"*"}, autogroupInternet, autogroupInternet[:6], {"0.0.0.0/0"}, {"2000::/3"},
		{"::/0"}, {"100.64.0.0/10"}, {"0.0.0.0"}, {"8.8.8.8"}, {"1.0.0.0-255.255.255.255"}}
	portChoices := [][2]uint16{{0, 65535}, {53, 53}, {80, 443}, {1, 52}, {54, 65535}, {0, 53}}
	protoChoices := [][]int{nil, {6}, {17}, {6, 17}, {1}, {132}}
	capChoices := []tailcfg.NodeCapability{"a", "b", "c"}
	setKnownAddr := func(n int) string { return fmt.Sprintf("100.64.0.%d", n) }

	disagreements, allowed, refused := 0, 0, 0
	for round := range 2000 {
		var peers []testPeer
		for i := 1; i <= 7; i++ {
			p := testPeer{id: tailcfg.NodeID(i), addrs: []string{setKnownAddr(i) + "/32", fmt.Sprintf("fd7a:115c:a1e0::%d/128", i)}}
			if rng.IntN(3) == 0 {
				p.caps = append(p.caps, capChoices[rng.IntN(len(capChoices))])
			}
			peers = append(peers, p)
		}
		var rules []tailcfg.FilterRule
		for range rng.IntN(4) {
			var r tailcfg.FilterRule
			for range 1 + rng.IntN(3) {
				r.SrcIPs = append(r.SrcIPs, srcChoices[rng.IntN(len(srcChoices))])
			}
			ports := portChoices[rng.IntN(len(portChoices))]
			for range 1 + rng.IntN(2) {
				r.DstPorts = append(r.DstPorts, dsts(dstChoices[rng.IntN(len(dstChoices))], ports[0], ports[1])...)
			}
			r.IPProto = protoChoices[rng.IntN(len(protoChoices))]
			rules = append(rules, r)
		}
		nm := testNetMap(peers, rules)
		policy := NewPolicy(nm)
		reference := tailscaledFilter(t, nm)
		for _, n := range nm.Peers {
			for _, a := range n.Addresses().All() {
				src := a.Addr()
				dst := probe4
				if src.Is6() {
					dst = probe6
				}
				want := reference.CheckTCP(src, dst, 53) == filter.Accept
				_, got := policy.Allows(src)
				if want {
					allowed++
				} else {
					refused++
				}
				if got != want {
					disagreements++
					if disagreements <= 5 {
						t.Errorf("round %d: Allows(%v) = %v, tailscaled's filter says %v; rules %+v; caps of the peer %v",
							round, src, got, want, rules, n.CapMap().AsMap())
					}
				}
			}
		}
	}
	if disagreements > 0 {
		t.Errorf("%d disagreements", disagreements)
	}
	// Both answers must be common, or the comparison proves little.
	if allowed < 2000 || refused < 2000 {
		t.Errorf("tailscaled's filter allowed %d and refused %d of the sources: the random netmaps do not exercise both", allowed, refused)
	}
	t.Logf("%d sources allowed, %d refused, all as tailscaled's filter", allowed, refused)
}

// tailscaledFilter builds the filter tailscaled runs as an exit node for nm (updateFilterLocked
// and srcIPHasCapForFilter in ipn/ipnlocal/local.go).
func tailscaledFilter(t *testing.T, nm *netmap.NetworkMap) *filter.Filter {
	matches, err := filter.MatchesFromFilterRules(nm.PacketFilterRules.AsSlice())
	if err != nil {
		t.Fatal(err)
	}
	byAddr := map[netip.Addr]tailcfg.NodeView{}
	for _, n := range nm.Peers {
		for _, a := range n.Addresses().All() {
			if a.IsSingleIP() {
				byAddr[a.Addr()] = n
			}
		}
	}
	hasCap := func(src netip.Addr, c tailcfg.NodeCapability) bool {
		n, ok := byAddr[src]
		return ok && !n.UnsignedPeerAPIOnly() && n.HasCap(c)
	}
	var local netipx.IPSetBuilder
	local.AddPrefix(netip.MustParsePrefix("0.0.0.0/0"))
	local.AddPrefix(netip.MustParsePrefix("::/0"))
	localNets, err := local.IPSet()
	if err != nil {
		t.Fatal(err)
	}
	return filter.New(matches, hasCap, localNets, &netipx.IPSet{}, nil, logger.Discard)
}
