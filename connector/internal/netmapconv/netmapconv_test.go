package netmapconv

import (
	"encoding/base64"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/netmap"
	"tailscale.com/types/views"

	"exitgw/connector/internal/adminapi"
)

var now = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func pfx(s ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, x := range s {
		out = append(out, netip.MustParsePrefix(x))
	}
	return out
}

func b64(raw [32]byte) string { return base64.StdEncoding.EncodeToString(raw[:]) }

// A stable node key per name, so expected peers can be written down.
var nodeKeys = map[string]key.NodePublic{}

func nodeKey(name string) key.NodePublic {
	if k, ok := nodeKeys[name]; ok {
		return k
	}
	k := key.NewNode().Public()
	nodeKeys[name] = k
	return k
}

func peerNode(name string, id tailcfg.NodeID, user tailcfg.UserID, addrs ...string) *tailcfg.Node {
	return &tailcfg.Node{
		ID: id, Name: name, User: user, Key: nodeKey(name), MachineAuthorized: true,
		Addresses: pfx(addrs...), AllowedIPs: pfx(addrs...),
	}
}

func makeNetmap(self *tailcfg.Node, peers []*tailcfg.Node, rules []tailcfg.FilterRule) *netmap.NetworkMap {
	nm := &netmap.NetworkMap{
		SelfNode:          self.View(),
		PacketFilterRules: views.SliceOf(rules),
		UserProfiles: map[tailcfg.UserID]tailcfg.UserProfileView{
			1: (&tailcfg.UserProfile{ID: 1, LoginName: "alice@example.com"}).View(),
			2: (&tailcfg.UserProfile{ID: 2, LoginName: "bob with space"}).View(),
		},
	}
	for _, p := range peers {
		nm.Peers = append(nm.Peers, p.View())
	}
	return nm
}

func selfNode(allowed ...string) *tailcfg.Node {
	return &tailcfg.Node{ID: 100, Name: "gw", Key: nodeKey("gw"), MachineAuthorized: true,
		Addresses: pfx("100.64.0.1/32"), AllowedIPs: pfx(allowed...)}
}

func TestConvertPeers(t *testing.T) {
	disco := key.NewDisco().Public()
	tests := []struct {
		name     string
		peers    []*tailcfg.Node
		want     []adminapi.Peer
		problems []string // substrings, one per expected problem
		counts   Counts
	}{{
		name: "a user's node: its IPv4 and IPv6 addresses, login name and disco key",
		peers: []*tailcfg.Node{func() *tailcfg.Node {
			n := peerNode("a", 1, 1, "100.64.0.5/32", "fd7a:115c:a1e0::5/128")
			n.DiscoKey = disco
			return n
		}()},
		want: []adminapi.Peer{{PublicKey: b64(nodeKey("a").Raw32()), AllowedIPs: []string{"100.64.0.5/32", "fd7a:115c:a1e0::5/128"},
			User: "alice@example.com", DiscoKey: b64(disco.Raw32())}},
	}, {
		name:  "IPv4 comes first whatever the netmap's order",
		peers: []*tailcfg.Node{peerNode("o", 11, 1, "fd7a:115c:a1e0::b/128", "100.64.0.13/32")},
		want: []adminapi.Peer{{PublicKey: b64(nodeKey("o").Raw32()),
			AllowedIPs: []string{"100.64.0.13/32", "fd7a:115c:a1e0::b/128"}, User: "alice@example.com"}},
	}, {
		name: "a tagged node carries its tags and no user",
		peers: []*tailcfg.Node{func() *tailcfg.Node {
			n := peerNode("t", 2, 1, "100.64.0.6/32")
			n.Tags = []string{"tag:exit", "tag:ci"}
			return n
		}()},
		want: []adminapi.Peer{{PublicKey: b64(nodeKey("t").Raw32()), AllowedIPs: []string{"100.64.0.6/32"}, Tags: []string{"tag:exit", "tag:ci"}}},
	}, {
		name: "expired nodes (flag or key expiry in the past) are removed",
		peers: []*tailcfg.Node{
			func() *tailcfg.Node { n := peerNode("e1", 3, 1, "100.64.0.7/32"); n.Expired = true; return n }(),
			func() *tailcfg.Node {
				n := peerNode("e2", 4, 1, "100.64.0.8/32")
				n.KeyExpiry = now.Add(-time.Second)
				return n
			}(),
		},
		want:   []adminapi.Peer{},
		counts: Counts{PeersExpired: 2},
	}, {
		name:   "an unauthorized node is removed",
		peers:  []*tailcfg.Node{func() *tailcfg.Node { n := peerNode("u", 5, 1, "100.64.0.9/32"); n.MachineAuthorized = false; return n }()},
		want:   []adminapi.Peer{},
		counts: Counts{PeersUnauthorized: 1},
	}, {
		name:  "an IPv6-only node is a peer",
		peers: []*tailcfg.Node{peerNode("v6", 6, 1, "fd7a:115c:a1e0::9/128")},
		want:  []adminapi.Peer{{PublicKey: b64(nodeKey("v6").Raw32()), AllowedIPs: []string{"fd7a:115c:a1e0::9/128"}, User: "alice@example.com"}},
	}, {
		name:     "a node without any address is named and left out",
		peers:    []*tailcfg.Node{peerNode("none", 12, 1)},
		want:     []adminapi.Peer{},
		problems: []string{"none (" + nodeKey("none").ShortString() + "): no tailnet address"},
	}, {
		name: "IPv6 addresses the gateway would refuse, or another node holds, are named",
		peers: []*tailcfg.Node{
			peerNode("v6ok", 13, 1, "100.64.0.14/32", "fd7a:115c:a1e0::e/128"),
			peerNode("v6dup", 14, 1, "100.64.0.15/32", "fd7a:115c:a1e0::e/128"),
			peerNode("ll", 15, 1, "100.64.0.16/32", "fe80::1/128"),
			peerNode("mc", 16, 1, "ff02::1/128"),
			peerNode("lo", 17, 1, "::1/128"),
			peerNode("short", 18, 1, "fd00::/8"),
			peerNode("hostbits", 19, 1, "fd7a:115c:a1e0::1/64"),
		},
		want: []adminapi.Peer{{PublicKey: b64(nodeKey("v6ok").Raw32()),
			AllowedIPs: []string{"100.64.0.14/32", "fd7a:115c:a1e0::e/128"}, User: "alice@example.com"}},
		problems: []string{
			"v6dup (" + nodeKey("v6dup").ShortString() + "): tailnet address fd7a:115c:a1e0::e/128 already belongs to v6ok",
			"tailnet address fe80::1/128 is link-local",
			"tailnet address ff02::1/128 is multicast",
			"tailnet address ::1/128 holds the unspecified or the loopback address",
			"tailnet address fd00::/8 is shorter than /16",
			"tailnet address fd7a:115c:a1e0::1/64 has host bits set",
		},
	}, {
		name: "nodes the gateway would refuse are named; the others stay",
		peers: []*tailcfg.Node{
			peerNode("ok", 7, 1, "100.64.0.10/32"),
			peerNode("space", 8, 2, "100.64.0.11/32"),
			func() *tailcfg.Node {
				n := peerNode("upper", 9, 1, "100.64.0.12/32")
				n.Tags = []string{"tag:Server"}
				return n
			}(),
			peerNode("dup", 10, 1, "100.64.0.10/32"),
		},
		want: []adminapi.Peer{{PublicKey: b64(nodeKey("ok").Raw32()), AllowedIPs: []string{"100.64.0.10/32"}, User: "alice@example.com"}},
		problems: []string{`user "bob with space" is not printable ASCII`, `tag "tag:Server" is not tag:<name>`,
			"dup (" + nodeKey("dup").ShortString() + "): tailnet address 100.64.0.10/32 already belongs to ok"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Convert(makeNetmap(selfNode(), tc.peers, nil), now)
			want := tc.want
			slicesSortPeers(want)
			if !reflect.DeepEqual(got.Peers.Peers, want) {
				t.Errorf("peers:\n got %+v\nwant %+v", got.Peers.Peers, want)
			}
			checkProblems(t, got.Problems, tc.problems)
			if got.Counts != tc.counts {
				t.Errorf("counts: got %+v, want %+v", got.Counts, tc.counts)
			}
		})
	}
}

func slicesSortPeers(p []adminapi.Peer) {
	for i := range p {
		for j := i + 1; j < len(p); j++ {
			if p[j].PublicKey < p[i].PublicKey {
				p[i], p[j] = p[j], p[i]
			}
		}
	}
}

func checkProblems(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("problems: got %q, want %d like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("problem %d: got %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

func TestNextExpiryIsTheEarliestKeptPeer(t *testing.T) {
	soon, later := now.Add(time.Hour), now.Add(2*time.Hour)
	a := peerNode("x1", 20, 1, "100.64.1.1/32")
	a.KeyExpiry = later
	b := peerNode("x2", 21, 1, "100.64.1.2/32")
	b.KeyExpiry = soon
	c := peerNode("x3", 22, 1, "100.64.1.3/32") // no expiry
	got := Convert(makeNetmap(selfNode(), []*tailcfg.Node{a, b, c}, nil), now)
	if !got.NextExpiry.Equal(soon) {
		t.Errorf("NextExpiry = %v, want %v", got.NextExpiry, soon)
	}
	if again := Convert(makeNetmap(selfNode(), []*tailcfg.Node{a, b, c}, nil), soon); len(again.Peers.Peers) != 2 {
		t.Errorf("at %v the peer whose key expired then must be gone: %+v", soon, again.Peers.Peers)
	}
}

func TestApproval(t *testing.T) {
	tests := []struct {
		name string
		self *tailcfg.Node
		want bool
	}{
		{"exit routes among AllowedIPs", selfNode("100.64.0.1/32", "0.0.0.0/0", "::/0"), true},
		{"exit route among PrimaryRoutes", func() *tailcfg.Node { n := selfNode("100.64.0.1/32"); n.PrimaryRoutes = pfx("0.0.0.0/0"); return n }(), true},
		{"advertised but not approved", selfNode("100.64.0.1/32"), false},
		{"only ::/0 approved: approval is the IPv4 exit route's", selfNode("100.64.0.1/32", "::/0"), false},
		{"a subnet route is not the exit route", selfNode("100.64.0.1/32", "10.0.0.0/8"), false},
		{"self node expired", func() *tailcfg.Node { n := selfNode("0.0.0.0/0"); n.Expired = true; return n }(), false},
		{"self node key past its expiry", func() *tailcfg.Node { n := selfNode("0.0.0.0/0"); n.KeyExpiry = now; return n }(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Convert(makeNetmap(tc.self, nil, nil), now).Approved; got != tc.want {
				t.Errorf("Approved = %v, want %v", got, tc.want)
			}
		})
	}
}

func ports(first, last uint16) tailcfg.PortRange { return tailcfg.PortRange{First: first, Last: last} }

func dst(prefix string, first, last uint16) adminapi.FilterDst {
	return adminapi.FilterDst{Prefix: prefix, Ports: [2]uint16{first, last}}
}

// The internet as Tailscale's control server sends autogroup:internet.
var internetRanges = []string{"0.0.0.0-9.255.255.255", "11.0.0.0-100.63.255.255", "100.128.0.0-169.253.255.255",
	"169.255.0.0-172.15.255.255", "172.32.0.0-192.167.255.255", "192.169.0.0-255.255.255.255", "2000::/3"}

func TestConvertFilter(t *testing.T) {
	tests := []struct {
		name     string
		rules    []tailcfg.FilterRule
		want     []adminapi.FilterRule
		problems []string
		counts   Counts
	}{{
		name:  `"*" is all of IPv4 and IPv6, empty IPProto is TCP, UDP, ICMP and ICMPv6`,
		rules: []tailcfg.FilterRule{{SrcIPs: []string{"*"}, DstPorts: []tailcfg.NetPortRange{{IP: "*", Ports: ports(0, 65535)}}}},
		want: []adminapi.FilterRule{{Src: []string{"0.0.0.0/0", "::/0"},
			Dst: []adminapi.FilterDst{dst("0.0.0.0/0", 0, 65535), dst("::/0", 0, 65535)}, Protocols: []int{6, 17, 1, 58}}},
	}, {
		name: "a CapGrant-only rule is dropped; cap: sources are left out",
		rules: []tailcfg.FilterRule{
			{SrcIPs: []string{"*"}, CapGrant: []tailcfg.CapGrant{{Dsts: pfx("0.0.0.0/0"), Caps: []tailcfg.PeerCapability{"ingress"}}}},
			{SrcIPs: []string{"cap:funnel", "100.64.0.5"}, DstPorts: []tailcfg.NetPortRange{{IP: "100.64.0.1", Ports: ports(22, 22)}}, IPProto: []int{6}},
		},
		want:   []adminapi.FilterRule{{Src: []string{"100.64.0.5/32"}, Dst: []adminapi.FilterDst{dst("100.64.0.1/32", 22, 22)}, Protocols: []int{6}}},
		counts: Counts{RulesCapGrantOnly: 1, CapSourcesOmitted: 1},
	}, {
		name: `an "a-b" range becomes the CIDRs that cover it exactly`,
		rules: []tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0-100.64.0.9"},
			DstPorts: []tailcfg.NetPortRange{{IP: "192.0.2.0/24", Ports: ports(80, 443)}}, IPProto: []int{6, 17}}},
		want: []adminapi.FilterRule{{Src: []string{"100.64.0.0/29", "100.64.0.8/31"},
			Dst: []adminapi.FilterDst{dst("192.0.2.0/24", 80, 443)}, Protocols: []int{6, 17}}},
	}, {
		name: "autogroup:internet arrives as ranges: the IPv4 internet without 10/8, CGNAT, link-local, 172.16/12, 192.168/16",
		rules: []tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0/10"}, DstPorts: func() []tailcfg.NetPortRange {
			var d []tailcfg.NetPortRange
			for _, r := range internetRanges {
				d = append(d, tailcfg.NetPortRange{IP: r, Ports: ports(0, 65535)})
			}
			return d
		}()}},
		want: []adminapi.FilterRule{{Src: []string{"100.64.0.0/10"}, Dst: func() []adminapi.FilterDst {
			var d []adminapi.FilterDst
			for _, p := range []string{"0.0.0.0/5", "8.0.0.0/7", "11.0.0.0/8", "12.0.0.0/6", "16.0.0.0/4", "32.0.0.0/3",
				"64.0.0.0/3", "96.0.0.0/6", "100.0.0.0/10", "100.128.0.0/9", "101.0.0.0/8", "102.0.0.0/7", "104.0.0.0/5",
				"112.0.0.0/4", "128.0.0.0/3", "160.0.0.0/5", "168.0.0.0/8", "169.0.0.0/9", "169.128.0.0/10",
				"169.192.0.0/11", "169.224.0.0/12", "169.240.0.0/13", "169.248.0.0/14", "169.252.0.0/15",
				"169.255.0.0/16",
				"170.0.0.0/7", "172.0.0.0/12", "172.32.0.0/11", "172.64.0.0/10", "172.128.0.0/9",
				"173.0.0.0/8", "174.0.0.0/7", "176.0.0.0/4", "192.0.0.0/9", "192.128.0.0/11", "192.160.0.0/13",
				"192.169.0.0/16", "192.170.0.0/15", "192.172.0.0/14", "192.176.0.0/12", "192.192.0.0/10",
				"193.0.0.0/8", "194.0.0.0/7", "196.0.0.0/6", "200.0.0.0/5", "208.0.0.0/4", "224.0.0.0/3", "2000::/3"} {
				d = append(d, dst(p, 0, 65535))
			}
			return d
		}(), Protocols: []int{6, 17, 1, 58}}},
	}, {
		name: "a node's sources of both families, IPv6 ranges and an ICMPv6-only rule are kept",
		rules: []tailcfg.FilterRule{
			{SrcIPs: []string{"100.64.0.5", "fd7a:115c:a1e0::5"}, DstPorts: []tailcfg.NetPortRange{
				{IP: "2000::/3", Ports: ports(0, 65535)}, {IP: "2001:db8::-2001:db8::3", Ports: ports(443, 443)}}},
			{SrcIPs: []string{"100.64.0.0/10"}, DstPorts: []tailcfg.NetPortRange{{IP: "::/0", Ports: ports(0, 65535)}}, IPProto: []int{58}},
		},
		want: []adminapi.FilterRule{
			{Src: []string{"100.64.0.5/32", "fd7a:115c:a1e0::5/128"},
				Dst: []adminapi.FilterDst{dst("2000::/3", 0, 65535), dst("2001:db8::/126", 443, 443)}, Protocols: []int{6, 17, 1, 58}},
			{Src: []string{"100.64.0.0/10"}, Dst: []adminapi.FilterDst{dst("::/0", 0, 65535)}, Protocols: []int{58}},
		},
	}, {
		name: "IPv4-mapped, zoned and host-bit IPv6 entries are named and skipped; a rule left empty is dropped",
		rules: []tailcfg.FilterRule{{
			SrcIPs:   []string{"::ffff:100.64.0.5", "fe80::1%eth0", "fd7a:115c:a1e0::5/64", "::ffff:1.0.0.0/104"},
			DstPorts: []tailcfg.NetPortRange{{IP: "2000::/3", Ports: ports(0, 65535)}},
		}},
		want: []adminapi.FilterRule{},
		problems: []string{`SrcIPs[0] "::ffff:100.64.0.5": a zoned or IPv4-mapped address`,
			`SrcIPs[1] "fe80::1%eth0"`, `SrcIPs[2] "fd7a:115c:a1e0::5/64": host bits set`,
			`SrcIPs[3] "::ffff:1.0.0.0/104": an IPv4-mapped IPv6 prefix`},
		counts: Counts{RulesEmpty: 1},
	}, {
		name: "bad entries are named and skipped; the rest of the rule stays",
		rules: []tailcfg.FilterRule{{
			SrcIPs: []string{"100.64.0.5", "not-an-ip", "100.64.0.7/24", "10.0.0.9-10.0.0.1"},
			DstPorts: []tailcfg.NetPortRange{{IP: "0.0.0.0/0", Ports: ports(443, 443)}, {IP: "1.2.3.4", Ports: ports(9, 1)},
				{IP: "1.2.3.4", Bits: new(int), Ports: ports(1, 2)}},
			IPProto: []int{6, 300, 0},
		}},
		want: []adminapi.FilterRule{{Src: []string{"100.64.0.5/32"}, Dst: []adminapi.FilterDst{dst("0.0.0.0/0", 443, 443)}, Protocols: []int{6}}},
		problems: []string{`filter rule 0 SrcIPs[1] "not-an-ip"`, `SrcIPs[2] "100.64.0.7/24": host bits set`,
			`SrcIPs[3] "10.0.0.9-10.0.0.1": not a valid range`, `DstPorts[1] "1.2.3.4": port range 9-1 is backwards`,
			`DstPorts[2] "1.2.3.4": Bits`, "IPProto 300", "IPProto 0"},
	}, {
		name:     "a rule with SrcBits is refused whole",
		rules:    []tailcfg.FilterRule{{SrcIPs: []string{"100.64.0.0"}, SrcBits: []int{10}, DstPorts: []tailcfg.NetPortRange{{IP: "*", Ports: ports(0, 65535)}}}},
		want:     []adminapi.FilterRule{},
		problems: []string{"filter rule 0: SrcBits"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Convert(makeNetmap(selfNode(), nil, tc.rules), now)
			if !reflect.DeepEqual(got.Filter.Rules, tc.want) {
				t.Errorf("rules:\n got %+v\nwant %+v", got.Filter.Rules, tc.want)
			}
			checkProblems(t, got.Problems, tc.problems)
			if got.Counts != tc.counts {
				t.Errorf("counts: got %+v, want %+v", got.Counts, tc.counts)
			}
		})
	}
}

func TestNoRulesMeansAnEmptyFilterNotNone(t *testing.T) {
	got := Convert(makeNetmap(selfNode(), nil, nil), now)
	if got.Filter.Rules == nil || len(got.Filter.Rules) != 0 {
		t.Errorf("an empty tailnet filter must be sent as no rules (deny all), got %#v", got.Filter.Rules)
	}
}
