package login_test

import (
	"fmt"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"

	"exitgw/connector/internal/login"
)

func waitNetmap(t *testing.T, c *login.Client) login.Snapshot {
	t.Helper()
	deadline := time.After(45 * time.Second)
	for {
		if s := c.Snapshot(); s.NetMap != nil {
			return s
		}
		select {
		case <-c.Changed():
		case <-deadline:
			t.Fatalf("no netmap; last status %+v", c.Snapshot())
		}
	}
}

// A restarted connector is the same machine and the same node: the machine key comes from
// the state directory and the node key is exitgw's WireGuard key, so the server does not
// see a new node (and a single-use auth key is not needed again).
func TestRestartKeepsTheMachineAndTheNode(t *testing.T) {
	ctl := &testcontrol.Server{RequireAuthKey: "tskey-once", Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()

	dir := t.TempDir()
	nodeKey := key.NewNode()
	cfg := login.Config{ServerURL: ctl.HTTPTestServer.URL, AuthKey: "tskey-once", StateDir: dir,
		NodeKey: nodeKey, Hostname: "gw", Logf: t.Logf}
	first, err := login.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := waitNetmap(t, first)
	if s.NetMap.NodeKey != nodeKey.Public() || s.Persist.PrivateNodeKey().Public() != nodeKey.Public() {
		t.Fatalf("logged in as %v, want the WireGuard key %v", s.NetMap.NodeKey, nodeKey.Public())
	}
	machine := ctl.Node(nodeKey.Public()).Machine
	first.Close()

	second, err := login.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	waitNetmap(t, second)
	if n := ctl.NumNodes(); n != 1 {
		t.Errorf("the server has %d nodes after a restart, want 1", n)
	}
	if got := ctl.Node(nodeKey.Public()).Machine; got != machine {
		t.Errorf("machine key %v after a restart, want %v", got, machine)
	}
}

func TestWrongAuthKeyIsAnErrorStatus(t *testing.T) {
	ctl := &testcontrol.Server{RequireAuthKey: "tskey-right", Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()
	c, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, AuthKey: "tskey-wrong", StateDir: t.TempDir(),
		NodeKey: key.NewNode(), Hostname: "gw", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.After(30 * time.Second)
	for c.Snapshot().Err == nil {
		select {
		case <-c.Changed():
		case <-deadline:
			t.Fatal("no error status for a refused auth key")
		}
	}
	if s := c.Snapshot(); s.NetMap != nil || s.LoggedIn {
		t.Errorf("logged in with a wrong auth key: %+v", s)
	}
	t.Logf("error status: %v", c.Snapshot().Err)
}

// A new priority goes to the server in Hostinfo with the rest of the location kept.
func TestSetLocationPriorityReachesTheServer(t *testing.T) {
	ctl := &testcontrol.Server{Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()
	nodeKey := key.NewNode()
	c, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, StateDir: t.TempDir(),
		NodeKey: nodeKey, Hostname: "gw", Logf: t.Logf,
		Location: &tailcfg.Location{City: "Toronto", CityCode: "YYZ", Latitude: 43.7, Longitude: -79.4, Priority: 100}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitNetmap(t, c)
	location := func() tailcfg.Location {
		if n := ctl.Node(nodeKey.Public()); n != nil && n.Hostinfo.Valid() && n.Hostinfo.Location().Valid() {
			return *n.Hostinfo.Location().AsStruct()
		}
		return tailcfg.Location{}
	}
	if got := location(); got.Priority != 100 || got.City != "Toronto" {
		t.Fatalf("the server holds location %+v after login, want Toronto at priority 100", got)
	}
	c.SetLocationPriority(40)
	deadline := time.Now().Add(30 * time.Second)
	for location().Priority != 40 {
		if time.Now().After(deadline) {
			t.Fatalf("the server holds location %+v 30 s after SetLocationPriority(40)", location())
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := tailcfg.Location{City: "Toronto", CityCode: "YYZ", Latitude: 43.7, Longitude: -79.4, Priority: 40}
	if got := location(); got != want {
		t.Errorf("location %+v, want %+v", got, want)
	}
	if n := ctl.Node(nodeKey.Public()); n.Hostinfo.Hostname() != "gw" || n.Hostinfo.RoutableIPs().Len() != 2 {
		t.Errorf("the rest of Hostinfo changed: %v", n.Hostinfo)
	}
}

// With a DoH port, the node advertises what tailscaled's PeerAPI does: peerapi4 (and peerapi6)
// with the port, and peerapi-dns-proxy version 1; without one, no services.
func TestHostinfoAdvertisesThePeerAPIOnlyWithAPort(t *testing.T) {
	tests := []struct {
		name   string
		p4, p6 uint16
		want   []tailcfg.Service
	}{
		{"off", 0, 0, nil},
		{"IPv4", 5380, 0, []tailcfg.Service{{Proto: tailcfg.PeerAPI4, Port: 5380}, {Proto: tailcfg.PeerAPIDNS, Port: 1}}},
		{"both", 5380, 5381, []tailcfg.Service{{Proto: tailcfg.PeerAPI4, Port: 5380}, {Proto: tailcfg.PeerAPI6, Port: 5381}, {Proto: tailcfg.PeerAPIDNS, Port: 1}}},
		{"IPv6 only", 0, 5380, []tailcfg.Service{{Proto: tailcfg.PeerAPI6, Port: 5380}, {Proto: tailcfg.PeerAPIDNS, Port: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hi := login.Hostinfo(login.Config{Hostname: "gw", PeerAPI4Port: tt.p4, PeerAPI6Port: tt.p6}, "log-id")
			if !reflect.DeepEqual(hi.Services, tt.want) {
				t.Errorf("Services %v, want %v", hi.Services, tt.want)
			}
		})
	}
}

// A client in the tailnet finds the gateway's DoH the way tailscaled does when it selects it as
// its exit node (ipn/ipnlocal/local.go: exitNodeCanProxyDNS, peerCanProxyDNS, peerAPIBase):
// the peer's capability version is 26 or later (or it lists peerapi-dns-proxy), and its
// peerapi4 port joined to its IPv4 tailnet address is the DoH URL.
func TestClientsSeeTheGatewaysDoHURL(t *testing.T) {
	ctl := &testcontrol.Server{Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()

	gwKey := key.NewNode()
	gw, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, StateDir: t.TempDir(), NodeKey: gwKey,
		Hostname: "gw", PeerAPI4Port: 5380, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	gwSelf := waitNetmap(t, gw).NetMap.SelfNode

	client, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, StateDir: t.TempDir(), NodeKey: key.NewNode(),
		Hostname: "laptop", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.After(45 * time.Second)
	for {
		if nm := client.Snapshot().NetMap; nm != nil {
			for _, p := range nm.Peers {
				if p.Key() != gwKey.Public() || !p.Hostinfo().Valid() || p.Hostinfo().Services().Len() == 0 {
					continue
				}
				canProxy := p.Cap() >= 26
				var p4 uint16
				for _, s := range p.Hostinfo().Services().All() {
					canProxy = canProxy || (s.Proto == tailcfg.PeerAPIDNS && s.Port >= 1)
					if s.Proto == tailcfg.PeerAPI4 {
						p4 = s.Port
					}
				}
				var ip4 netip.Addr
				for _, a := range p.Addresses().All() {
					if a.IsSingleIP() && a.Addr().Is4() {
						ip4 = a.Addr()
						break
					}
				}
				want := fmt.Sprintf("http://%s:5380/dns-query", gwSelf.Addresses().At(0).Addr())
				if got := fmt.Sprintf("http://%s/dns-query", netip.AddrPortFrom(ip4, p4)); !canProxy || got != want {
					t.Fatalf("client sees DoH %v at %s (cap %d), want true at %s", canProxy, got, p.Cap(), want)
				}
				return
			}
		}
		select {
		case <-client.Changed():
		case <-deadline:
			t.Fatal("the client never saw the gateway's services")
		}
	}
}

// The home DERP region goes to the server as Hostinfo.NetInfo.PreferredDERP, both from the
// Config at login and from SetHomeDERP later, and the server makes it the node's HomeDERP.
func TestHomeDERPReachesTheServer(t *testing.T) {
	ctl := &testcontrol.Server{Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()
	nodeKey := key.NewNode()
	c, err := login.Start(login.Config{ServerURL: ctl.HTTPTestServer.URL, StateDir: t.TempDir(),
		NodeKey: nodeKey, Hostname: "gw", HomeDERP: 7, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitNetmap(t, c)
	home := func() int {
		if n := ctl.Node(nodeKey.Public()); n != nil {
			return n.HomeDERP
		}
		return 0
	}
	for _, want := range []int{7, 3} {
		if want != 7 {
			c.SetHomeDERP(want)
		}
		deadline := time.Now().Add(30 * time.Second)
		for home() != want {
			if time.Now().After(deadline) {
				t.Fatalf("the server holds home DERP %d, want %d", home(), want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A later Hostinfo change (the load-following priority) keeps the home region.
	c.SetLocationPriority(5)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := ctl.Node(nodeKey.Public())
		if n.Hostinfo.Location().Valid() && n.Hostinfo.Location().Priority() == 5 {
			if ni := n.Hostinfo.NetInfo(); !ni.Valid() || ni.PreferredDERP() != 3 {
				t.Fatalf("after a priority change the Hostinfo's NetInfo is %v, want PreferredDERP 3", ni)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the priority change did not reach the server")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostinfoCarriesTheHomeDERPOnlyWhenSet(t *testing.T) {
	if hi := login.Hostinfo(login.Config{Hostname: "gw"}, "id"); hi.NetInfo != nil {
		t.Errorf("no home DERP: NetInfo %v, want none", hi.NetInfo)
	}
	if hi := login.Hostinfo(login.Config{Hostname: "gw", HomeDERP: 2}, "id"); hi.NetInfo == nil || hi.NetInfo.PreferredDERP != 2 {
		t.Errorf("home DERP 2: NetInfo %v, want PreferredDERP 2", hi.NetInfo)
	}
}
