package netmapconv

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go4.org/mem"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/netmap"
	"tailscale.com/types/views"
)

// fuzzNetmap builds a netmap from the fuzzer's text, so that mutations reach the conversion
// rather than die in a JSON decoder:
//   - peers: one node per line, space-separated; "tag:..." words are its tags, "user:N" its
//     user (1 or 2, else none), "expired" and "unauthorized" flags, "disco" gives it a disco key,
//     anything else that parses as a prefix is one of its addresses;
//   - rules: one filter rule per line, "SRC,SRC;DST,DST" with each DST as IP or "IP:first-last"
//     (the address sets go to Convert as the server writes them, unparsed);
//   - protos: IPProto for every rule, one number per byte (0xff means 300, out of range).
func fuzzNetmap(peers, rules string, protos []byte) *netmap.NetworkMap {
	nm := &netmap.NetworkMap{
		SelfNode: selfNode("0.0.0.0/0").View(),
		UserProfiles: map[tailcfg.UserID]tailcfg.UserProfileView{
			1: (&tailcfg.UserProfile{ID: 1, LoginName: "alice@example.com"}).View(),
			2: (&tailcfg.UserProfile{ID: 2, LoginName: "bob with space"}).View(),
		},
	}
	for i, line := range strings.Split(peers, "\n") {
		n := peerNode(fmt.Sprintf("n%d", i%8), tailcfg.NodeID(i+1), 0)
		for _, w := range strings.Fields(line) {
			switch {
			case strings.HasPrefix(w, "tag:"):
				n.Tags = append(n.Tags, w)
			case w == "user:1" || w == "user:2":
				n.User = tailcfg.UserID(w[5] - '0')
			case w == "expired":
				n.Expired = true
			case w == "unauthorized":
				n.MachineAuthorized = false
			case w == "disco":
				n.DiscoKey = key.DiscoPublicFromRaw32(mem.B(bytes.Repeat([]byte{byte(i + 1)}, 32)))
			default:
				if p, err := netip.ParsePrefix(w); err == nil {
					n.Addresses = append(n.Addresses, p)
				}
			}
		}
		nm.Peers = append(nm.Peers, n.View())
	}
	var ipProto []int
	for _, b := range protos {
		if b == 0xff {
			ipProto = append(ipProto, 300)
		} else {
			ipProto = append(ipProto, int(b))
		}
	}
	var fr []tailcfg.FilterRule
	for _, line := range strings.Split(rules, "\n") {
		src, dst, _ := strings.Cut(line, ";")
		r := tailcfg.FilterRule{SrcIPs: strings.Split(src, ","), IPProto: ipProto}
		for _, d := range strings.Split(dst, ",") {
			npr := tailcfg.NetPortRange{IP: d, Ports: tailcfg.PortRange{First: 0, Last: 65535}}
			if ip, ports, ok := strings.Cut(d, ":"); ok && !strings.Contains(ports, ":") {
				first, last, _ := strings.Cut(ports, "-")
				a, errA := strconv.ParseUint(first, 10, 16)
				b, errB := strconv.ParseUint(last, 10, 16)
				if errA == nil && errB == nil {
					npr = tailcfg.NetPortRange{IP: ip, Ports: tailcfg.PortRange{First: uint16(a), Last: uint16(b)}}
				}
			}
			r.DstPorts = append(r.DstPorts, npr)
		}
		fr = append(fr, r)
	}
	nm.PacketFilterRules = views.SliceOf(fr)
	return nm
}

// The seeds reach each branch: IPv6 and IPv4 addresses, tags good and bad, users with and
// without a usable name, a shared address, a short prefix, expiry, ranges, "*", cap: sources,
// backwards ports, ICMPv6 and an out-of-range protocol.
var fuzzSeeds = []struct {
	peers, rules string
	protos       []byte
}{
	{"100.64.0.5/32 fd7a:115c:a1e0::5/128 user:1 disco\ntag:exit tag:Bad 100.64.0.6/32\n100.64.0.7/32 expired\n100.64.0.5/32 user:2\n10.0.0.0/7\n",
		"100.64.0.0/10,cap:x,fd7a:115c:a1e0::/48;*\n100.64.0.5-100.64.0.9,*;203.0.113.0/24:443-80,10.0.0.1:53-53,::/0",
		[]byte{6, 17, 58, 0xff}},
	{"100.64.0.8/32 tag:ci unauthorized\n100.64.0.9/32 tag:exit tag:exit\n100.64.0.10/31 user:2", "100.64.0.1/8,100.64.0.0/10;1.2.3.4:80-90", nil},
	// IPv6: alone, beside IPv4 in either order, shared, and each kind the gateway refuses.
	{"fd7a:115c:a1e0::8/128\nfd7a:115c:a1e0::9/128 100.64.0.9/32\nfd7a:115c:a1e0::8/128\nfe80::1/128 100.64.0.11/32\nff02::1/128\n::1/128\n::/0\nfd00::/8\nfd7a:115c:a1e0::1/64\n::ffff:100.64.0.12/128 user:1",
		"100.64.0.0/10,fd7a:115c:a1e0::/48;100.64.0.0/10:0-65535", []byte{6}},
}

// FuzzConvert: whatever the server sends, the peer set and filter Convert gives are ones the
// gateway takes whole (what control/peers_config.cc and the filter API validate), and the
// same netmap converts the same way every time.
func FuzzConvert(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s.peers, s.rules, s.protos)
	}
	f.Fuzz(func(t *testing.T, peers, rules string, protos []byte) {
		if len(peers) > 4096 || len(rules) > 4096 {
			return
		}
		nm := fuzzNetmap(peers, rules, protos)
		r := Convert(nm, now)
		checkAcceptable(t, r)
		if again := Convert(nm, now); !reflect.DeepEqual(r, again) {
			t.Fatalf("the same netmap converted twice differs:\n%+v\n%+v", r, again)
		}
	})
}

func TestFuzzSeedsKeepSomeAndRefuseSome(t *testing.T) {
	for i, s := range fuzzSeeds {
		r := Convert(fuzzNetmap(s.peers, s.rules, s.protos), now)
		checkAcceptable(t, r)
		if len(r.Peers.Peers) == 0 || len(r.Problems) == 0 || len(r.Filter.Rules) == 0 {
			t.Errorf("seed %d: %d peers, %d rules, %d problems: a seed should keep some and refuse some",
				i, len(r.Peers.Peers), len(r.Filter.Rules), len(r.Problems))
		}
	}
}

// checkAcceptable fails unless the gateway would take r's peers and filter as they are.
func checkAcceptable(t *testing.T, r Result) {
	t.Helper()
	owner := map[netip.Prefix]string{}
	for i, p := range r.Peers.Peers {
		if i > 0 && strings.Compare(r.Peers.Peers[i-1].PublicKey, p.PublicKey) >= 0 {
			t.Fatalf("peers not sorted by key or a key twice: %q then %q", r.Peers.Peers[i-1].PublicKey, p.PublicKey)
		}
		if raw, err := base64.StdEncoding.DecodeString(p.PublicKey); err != nil || len(raw) != 32 || allZero(raw) {
			t.Fatalf("public key %q is not 32 bytes of base64, not all zero", p.PublicKey)
		}
		if p.DiscoKey != "" {
			if raw, err := base64.StdEncoding.DecodeString(p.DiscoKey); err != nil || len(raw) != 32 {
				t.Fatalf("disco key %q is not 32 bytes of base64", p.DiscoKey)
			}
		}
		if len(p.AllowedIPs) == 0 {
			t.Fatalf("peer %s has no allowed IPs", p.PublicKey)
		}
		sawIPv6 := false
		for _, s := range p.AllowedIPs {
			pfx, err := netip.ParsePrefix(s)
			if err != nil || !gatewayTakesAllowedIP(pfx) {
				t.Fatalf("peer %s: allowed IP %q is not one the gateway takes", p.PublicKey, s)
			}
			if sawIPv6 && pfx.Addr().Is4() {
				t.Fatalf("peer %s: IPv4 allowed IP %q after an IPv6 one: %q", p.PublicKey, s, p.AllowedIPs)
			}
			sawIPv6 = !pfx.Addr().Is4()
			if other, taken := owner[pfx]; taken {
				t.Fatalf("allowed IP %s belongs to %s and %s", s, other, p.PublicKey)
			}
			owner[pfx] = p.PublicKey
		}
		if p.User != "" && len(p.Tags) > 0 {
			t.Fatalf("peer %s has a user and tags", p.PublicKey)
		}
		if err := checkUser(p.User); err != nil {
			t.Fatal(err)
		}
		for j, tag := range p.Tags {
			if err := checkTag(tag); err != nil {
				t.Fatal(err)
			}
			if slices.Contains(p.Tags[:j], tag) {
				t.Fatalf("peer %s lists %s twice", p.PublicKey, tag)
			}
		}
	}
	for i, rule := range r.Filter.Rules {
		if len(rule.Src) == 0 || len(rule.Dst) == 0 || len(rule.Protocols) == 0 {
			t.Fatalf("rule %d is empty somewhere: %+v", i, rule)
		}
		for _, s := range rule.Src {
			if !filterNetwork(s) {
				t.Fatalf("rule %d: source %q is not a network the gateway takes", i, s)
			}
		}
		for _, d := range rule.Dst {
			if !filterNetwork(d.Prefix) || d.Ports[0] > d.Ports[1] {
				t.Fatalf("rule %d: destination %+v is not a network with a port range", i, d)
			}
		}
		for j, p := range rule.Protocols {
			if p < 1 || p > 255 || slices.Contains(rule.Protocols[:j], p) {
				t.Fatalf("rule %d: protocols %v", i, rule.Protocols)
			}
		}
	}
	if r.Peers.Peers == nil || r.Filter.Rules == nil {
		t.Fatal("nil peers or rules: the gateway wants JSON arrays")
	}
}

// filterNetwork: a canonical prefix written as the gateway's filter parser reads it (an IPv4
// one dotted, an IPv6 one neither zoned nor IPv4-mapped).
func filterNetwork(s string) bool {
	pfx, err := netip.ParsePrefix(s)
	return err == nil && pfx.Masked() == pfx && !pfx.Addr().Is4In6() && pfx.String() == s
}

// gatewayTakesAllowedIP restates, on the bytes and independently of checkAllowedIP, what the
// gateway's check_allowed_ip (control/peers_config.cc) takes: canonical; IPv4 /8 or longer;
// IPv6 /16 or longer, not in ff00::/8 or fe80::/10, holding neither :: nor ::1.
func gatewayTakesAllowedIP(p netip.Prefix) bool {
	if !p.IsValid() || p.Masked() != p {
		return false
	}
	if p.Addr().Is4() {
		return p.Bits() >= 8
	}
	a := p.Addr().As16()
	if p.Bits() < 16 || a[0] == 0xff || (a[0] == 0xfe && a[1]&0xc0 == 0x80) {
		return false
	}
	// A canonical prefix holds :: only when its address is ::, and ::1 only when it is :: (any
	// shorter length) or ::1 (a /128).
	return a != [16]byte{} && a != [16]byte{15: 1}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
