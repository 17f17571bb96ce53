package bridge_test

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
	"tailscale.com/types/netmap"
	"tailscale.com/types/persist"

	"exitgw/connector/internal/adminapi"
	"exitgw/connector/internal/admintest"
	"exitgw/connector/internal/bridge"
	"exitgw/connector/internal/login"
)

const authKey = "tskey-auth-test"

// cutter is a TCP proxy in front of the control server: stop() cuts every connection the way
// a network outage or a killed server does; start() brings it back on the same address.
type cutter struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  []net.Conn
}

func (c *cutter) start() {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		c.t.Fatalf("proxy listen: %v", err)
	}
	c.mu.Lock()
	c.ln, c.addr = ln, ln.Addr().String()
	c.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", c.target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
}

func (c *cutter) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ln.Close()
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func b64(raw [32]byte) string { return base64.StdEncoding.EncodeToString(raw[:]) }

func lastTailnet(admin *admintest.Server) adminapi.Tailnet {
	if t := admintest.Last[adminapi.Tailnet](admin, "/v1/tailnet"); t != nil {
		return *t
	}
	return adminapi.Tailnet{}
}

func lastApproval(admin *admintest.Server) *bool {
	if a := admintest.Last[admintest.Approval](admin, "/v1/approval"); a != nil {
		return a.Approved
	}
	return nil
}

func hasPeer(admin *admintest.Server, publicKey string) (adminapi.Peer, bool) {
	if set := admintest.Last[adminapi.PeerSet](admin, "/v1/tailnet/peers"); set != nil {
		for _, p := range set.Peers {
			if p.PublicKey == publicKey {
				return p, true
			}
		}
	}
	return adminapi.Peer{}, false
}

// The whole path against Tailscale's in-memory control server: login with the gateway's key,
// what it advertises, netmap → peers, filter, approval, control away → stale, control back →
// ok, a restarted gateway gets everything again.
func TestLoginAndNetmapRoundTripAgainstTestControl(t *testing.T) {
	ctl := &testcontrol.Server{RequireAuthKey: authKey, Logf: func(string, ...any) {}}
	ctl.HTTPTestServer = httptest.NewUnstartedServer(ctl)
	ctl.HTTPTestServer.Start()
	defer ctl.HTTPTestServer.Close()
	proxy := &cutter{t: t, target: ctl.HTTPTestServer.Listener.Addr().String(), addr: "127.0.0.1:0"}
	proxy.start()
	controlURL := "http://" + proxy.addr

	admin := admintest.New("admin-token")
	defer admin.Close()

	gwKey := key.NewNode()
	disco := key.NewDisco().Public()
	endpoint := netip.MustParseAddrPort("198.51.100.7:51820")
	location := &tailcfg.Location{Country: "Canada", CountryCode: "CA", City: "Toronto", CityCode: "YYZ",
		Latitude: 43.65, Longitude: -79.38, Priority: 10}
	gw, err := login.Start(login.Config{ServerURL: controlURL, AuthKey: authKey, StateDir: t.TempDir(),
		NodeKey: gwKey, DiscoKey: disco, Hostname: "exitgw-test", Endpoints: []netip.AddrPort{endpoint},
		Location: location, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Config{Admin: adminapi.NewClient(admin.URL, "admin-token"),
			LoginServer: controlURL, NodeKey: gwKey.Public(), ResyncInterval: 200 * time.Millisecond, Logf: t.Logf}, gw)
	}()

	// Logged in with the WireGuard key as node key; the server sees what it advertises.
	waitFor(t, "the gateway node with its endpoint and disco key in the control server", func() bool {
		n := ctl.Node(gwKey.Public())
		return n != nil && slices.Contains(n.Endpoints, endpoint) && n.DiscoKey == disco
	})
	node := ctl.Node(gwKey.Public())
	hi := node.Hostinfo
	if want := []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}; !reflect.DeepEqual(hi.RoutableIPs().AsSlice(), want) {
		t.Errorf("Hostinfo.RoutableIPs = %v, want the exit routes %v", hi.RoutableIPs(), want)
	}
	if got := hi.Location(); !got.Valid() || *got.AsStruct() != *location {
		t.Errorf("Hostinfo.Location = %+v, want %+v", got, location)
	}
	if hi.Hostname() != "exitgw-test" || hi.BackendLogID() == "" {
		t.Errorf("Hostinfo hostname %q, BackendLogID %q", hi.Hostname(), hi.BackendLogID())
	}

	// The first netmap: health ok, testcontrol's allow-all filter, not approved, no peers yet.
	waitFor(t, "tailnet ok", func() bool { return lastTailnet(admin).State == adminapi.StateOK })
	if h := lastTailnet(admin); h.NodeKey != gwKey.Public().String() || h.LoginServer != controlURL || h.LastNetmapUnixMs == 0 {
		t.Errorf("tailnet health %+v", h)
	}
	waitFor(t, "the filter", func() bool { return admintest.Last[adminapi.Filter](admin, "/v1/filter") != nil })
	wantFilter := adminapi.Filter{Rules: []adminapi.FilterRule{{Src: []string{"0.0.0.0/0", "::/0"},
		Dst:       []adminapi.FilterDst{{Prefix: "0.0.0.0/0", Ports: [2]uint16{0, 65535}}, {Prefix: "::/0", Ports: [2]uint16{0, 65535}}},
		Protocols: []int{6, 17, 1, 58}}}}
	if got := admintest.Last[adminapi.Filter](admin, "/v1/filter"); !reflect.DeepEqual(*got, wantFilter) {
		t.Errorf("filter %+v, want %+v (the CapGrant rule dropped)", *got, wantFilter)
	}
	waitFor(t, "approval false", func() bool { a := lastApproval(admin); return a != nil && !*a })

	// A client joins the tailnet: it appears in the gateway's peer set.
	clientKey := key.NewNode()
	clientDisco := key.NewDisco().Public()
	client, err := login.Start(login.Config{ServerURL: controlURL, AuthKey: authKey, StateDir: t.TempDir(),
		NodeKey: clientKey, DiscoKey: clientDisco, Hostname: "laptop", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitFor(t, "the client in PUT /v1/tailnet/peers", func() bool { _, ok := hasPeer(admin, b64(clientKey.Public().Raw32())); return ok })
	peer, _ := hasPeer(admin, b64(clientKey.Public().Raw32()))
	clientNode := ctl.Node(clientKey.Public())
	// Its tailnet addresses of both families, IPv4 first.
	var wantIPs []string
	for _, four := range []bool{true, false} {
		for _, a := range clientNode.Addresses {
			if a.Addr().Is4() == four {
				wantIPs = append(wantIPs, a.String())
			}
		}
	}
	if len(wantIPs) != 2 || !reflect.DeepEqual(peer.AllowedIPs, wantIPs) || peer.DiscoKey != b64(clientDisco.Raw32()) || peer.User == "" {
		t.Errorf("peer %+v; want allowed IPs %q (IPv4 then IPv6), its disco key and its login name", peer, wantIPs)
	}

	// The admin approves the exit routes.
	ctl.SetSubnetRoutes(gwKey.Public(), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	waitFor(t, "approval true", func() bool { a := lastApproval(admin); return a != nil && *a })

	// Nothing identical is sent twice in a row.
	for _, path := range []string{"/v1/tailnet/peers", "/v1/filter"} {
		var last any
		for _, r := range admin.Requests() {
			if r.Path != path {
				continue
			}
			if reflect.DeepEqual(r.Body, last) {
				t.Errorf("%s: the same body was sent twice in a row", path)
			}
			last = r.Body
		}
	}
	peersBefore := len(admintest.Of[adminapi.PeerSet](admin, "/v1/tailnet/peers"))

	// Control goes away: stale, and the gateway keeps its peers (nothing cleared).
	proxy.stop()
	waitFor(t, "tailnet stale", func() bool { return lastTailnet(admin).State == adminapi.StateStale })
	if h := lastTailnet(admin); h.Message == "" || h.SinceUnixMs == 0 {
		t.Errorf("stale health without a message or since: %+v", h)
	}
	if n := len(admintest.Of[adminapi.PeerSet](admin, "/v1/tailnet/peers")); n != peersBefore {
		t.Errorf("the peer set was sent %d more times while control was away", n-peersBefore)
	}

	// Control comes back: ok again.
	proxy.start()
	waitFor(t, "tailnet ok again", func() bool { return lastTailnet(admin).State == adminapi.StateOK })

	// The gateway restarts and forgets: it gets everything again.
	before := len(admintest.Of[adminapi.Filter](admin, "/v1/filter"))
	admin.Forget()
	waitFor(t, "the filter sent again after the gateway forgot", func() bool {
		return len(admintest.Of[adminapi.Filter](admin, "/v1/filter")) > before
	})
	if _, ok := hasPeer(admin, b64(clientKey.Public().Raw32())); !ok {
		t.Error("the peer set sent again lacks the client")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run on cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// source is a Source fed by the test.
type source struct {
	ch   chan struct{}
	snap login.Snapshot
}

func (s *source) Changed() <-chan struct{} { return s.ch }
func (s *source) Snapshot() login.Snapshot { return s.snap }

// startBridge runs the bridge on src until the returned stop is called.
func startBridge(t *testing.T, admin *admintest.Server, nodeKey key.NodePublic, src bridge.Source) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Config{Admin: adminapi.NewClient(admin.URL, "tok"), NodeKey: nodeKey,
			ResyncInterval: time.Hour, Logf: t.Logf}, src)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestRotatedNodeKeyStopsWithAClearError(t *testing.T) {
	admin := admintest.New("tok")
	defer admin.Close()
	gwKey, other := key.NewNode(), key.NewNode()
	self := (&tailcfg.Node{ID: 1, Key: other.Public(), MachineAuthorized: true}).View()
	src := &source{ch: make(chan struct{}, 1), snap: login.Snapshot{
		NetMap:    &netmap.NetworkMap{SelfNode: self, NodeKey: other.Public()},
		Persist:   (&persist.Persist{PrivateNodeKey: other}).View(),
		LoggedIn:  true,
		InMapPoll: true,
	}}
	src.ch <- struct{}{}
	err := bridge.Run(context.Background(), bridge.Config{Admin: adminapi.NewClient(admin.URL, "tok"),
		NodeKey: gwKey.Public(), Logf: t.Logf}, src)
	if !errors.Is(err, bridge.ErrNodeKeyRotated) {
		t.Fatalf("Run = %v, want ErrNodeKeyRotated", err)
	}
	if h := lastTailnet(admin); h.State != adminapi.StateError || h.Message == "" {
		t.Errorf("the gateway must be told why: health %+v", h)
	}
	if admintest.Last[adminapi.PeerSet](admin, "/v1/tailnet/peers") != nil || lastApproval(admin) != nil {
		t.Error("nothing from a netmap for another node key may reach the gateway")
	}
}

func TestRefusedUpdateIsReportedAndNotRetriedUnchanged(t *testing.T) {
	admin := admintest.New("tok")
	defer admin.Close()
	admin.Refuse("/v1/filter", "rules[0].dst[0]: bad")
	gwKey := key.NewNode()
	self := (&tailcfg.Node{ID: 1, Key: gwKey.Public(), MachineAuthorized: true}).View()
	src := &source{ch: make(chan struct{}, 1), snap: login.Snapshot{
		NetMap:   &netmap.NetworkMap{SelfNode: self, NodeKey: gwKey.Public()},
		LoggedIn: true, InMapPoll: true,
	}}
	src.ch <- struct{}{}
	stop := startBridge(t, admin, gwKey.Public(), src)
	defer stop()
	waitFor(t, "health error naming the refusal", func() bool {
		h := lastTailnet(admin)
		return h.State == adminapi.StateError && h.Message == "the gateway refused the filter: admin API PUT /v1/filter: HTTP 400: rules[0].dst[0]: bad"
	})
	src.ch <- struct{}{} // the same netmap again
	time.Sleep(300 * time.Millisecond)
	if n := len(admintest.Of[adminapi.Filter](admin, "/v1/filter")); n != 1 {
		t.Errorf("the refused filter was sent %d times; once is enough until it changes", n)
	}
}

func TestUnauthorizedSelfIsLoggedOutAndLongMessagesFit(t *testing.T) {
	admin := admintest.New("tok")
	defer admin.Close()
	gwKey := key.NewNode()
	self := (&tailcfg.Node{ID: 1, Key: gwKey.Public()}).View() // MachineAuthorized false
	src := &source{ch: make(chan struct{}, 1), snap: login.Snapshot{
		NetMap:   &netmap.NetworkMap{SelfNode: self, NodeKey: gwKey.Public()},
		LoggedIn: true, InMapPoll: true,
	}}
	src.ch <- struct{}{}
	stop := startBridge(t, admin, gwKey.Public(), src)
	defer stop()
	waitFor(t, "logged_out for an unauthorized machine", func() bool { return lastTailnet(admin).State == adminapi.StateLoggedOut })
	if a := lastApproval(admin); a == nil || *a {
		t.Errorf("approval %v; an unauthorized node is not approved", a)
	}

	src.snap.NetMap = &netmap.NetworkMap{SelfNode: (&tailcfg.Node{ID: 1, Key: gwKey.Public(), MachineAuthorized: true}).View(), NodeKey: gwKey.Public()}
	src.snap.InMapPoll = false
	src.snap.Err = errors.New(strings.Repeat("é", 2000))
	src.ch <- struct{}{}
	waitFor(t, "a stale health with the long error cut to fit", func() bool {
		h := lastTailnet(admin)
		return h.State == adminapi.StateStale && len(h.Message) <= 1024 && strings.HasSuffix(h.Message, "é...") && utf8.ValidString(h.Message)
	})
}

// The gateway's tailnet peer source is compared on every resync: a set someone else PUT (or
// one the gateway lost while keeping the health) is replaced by the netmap's again.
func TestResyncSendsThePeersAgainWhenTheGatewayHoldsOthers(t *testing.T) {
	admin := admintest.New("tok")
	defer admin.Close()
	gwKey, peerKey := key.NewNode(), key.NewNode()
	self := (&tailcfg.Node{ID: 1, Key: gwKey.Public(), MachineAuthorized: true}).View()
	peer := &tailcfg.Node{ID: 2, Key: peerKey.Public(), MachineAuthorized: true, User: 1,
		Addresses:  []netip.Prefix{netip.MustParsePrefix("100.64.0.5/32")},
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("100.64.0.5/32")}}
	src := &source{ch: make(chan struct{}, 1), snap: login.Snapshot{
		NetMap: &netmap.NetworkMap{SelfNode: self, NodeKey: gwKey.Public(), Peers: []tailcfg.NodeView{peer.View()},
			UserProfiles: map[tailcfg.UserID]tailcfg.UserProfileView{
				1: (&tailcfg.UserProfile{ID: 1, LoginName: "alice@example.com"}).View()}},
		LoggedIn: true, InMapPoll: true,
	}}
	src.ch <- struct{}{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Config{Admin: adminapi.NewClient(admin.URL, "tok"), NodeKey: gwKey.Public(),
			ResyncInterval: 100 * time.Millisecond, Logf: t.Logf}, src)
	}()
	defer func() {
		cancel()
		<-done
	}()
	want := b64(peerKey.Public().Raw32())
	waitFor(t, "the peer in PUT /v1/tailnet/peers", func() bool { _, ok := hasPeer(admin, want); return ok })
	// Several resyncs of an unchanged gateway send nothing again.
	time.Sleep(500 * time.Millisecond)
	if n := len(admintest.Of[adminapi.PeerSet](admin, "/v1/tailnet/peers")); n != 1 {
		t.Fatalf("the peer set was sent %d times to a gateway that holds it; once is enough", n)
	}
	admin.SetPeers(adminapi.PeerSet{Peers: []adminapi.Peer{}})
	waitFor(t, "the peer set sent again", func() bool {
		return len(admintest.Of[adminapi.PeerSet](admin, "/v1/tailnet/peers")) == 2
	})
	if _, ok := hasPeer(admin, want); !ok {
		t.Error("the peer set sent again lacks the peer")
	}
}

// OnNetMap (the DoH policy) gets each new netmap of this node, once, and never one for another
// node key.
func TestOnNetMapGetsEachNewNetmapOfThisNode(t *testing.T) {
	admin := admintest.New("tok")
	defer admin.Close()
	gwKey, other := key.NewNode(), key.NewNode()
	self := (&tailcfg.Node{ID: 1, Key: gwKey.Public(), MachineAuthorized: true}).View()
	first := &netmap.NetworkMap{SelfNode: self, NodeKey: gwKey.Public()}
	src := &lockedSource{ch: make(chan struct{}, 1), snap: login.Snapshot{NetMap: first, LoggedIn: true, InMapPoll: true}}
	got := make(chan *netmap.NetworkMap, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- bridge.Run(ctx, bridge.Config{Admin: adminapi.NewClient(admin.URL, "tok"), NodeKey: gwKey.Public(),
			ResyncInterval: time.Hour, OnNetMap: func(nm *netmap.NetworkMap) { got <- nm }, Logf: t.Logf}, src)
	}()
	next := func() *netmap.NetworkMap {
		select {
		case nm := <-got:
			return nm
		case <-time.After(10 * time.Second):
			t.Fatal("no netmap handed on")
			return nil
		}
	}
	src.ch <- struct{}{}
	if nm := next(); nm != first {
		t.Fatalf("handed on %p, want the first netmap %p", nm, first)
	}
	src.ch <- struct{}{} // the same netmap again: nothing new
	waitFor(t, "the status taken", func() bool { return len(src.ch) == 0 })
	rotated := &netmap.NetworkMap{SelfNode: (&tailcfg.Node{ID: 1, Key: other.Public(), MachineAuthorized: true}).View(), NodeKey: other.Public()}
	src.set(rotated)
	src.ch <- struct{}{}
	if err := <-done; !errors.Is(err, bridge.ErrNodeKeyRotated) {
		t.Fatalf("Run = %v, want ErrNodeKeyRotated", err)
	}
	select {
	case nm := <-got:
		t.Fatalf("handed on %p after the first; the same netmap again or another node key's must not be", nm)
	default:
	}
}

// lockedSource is a source whose snapshot the test changes while the bridge runs.
type lockedSource struct {
	ch   chan struct{}
	mu   sync.Mutex
	snap login.Snapshot
}

func (s *lockedSource) Changed() <-chan struct{} { return s.ch }
func (s *lockedSource) Snapshot() login.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}
func (s *lockedSource) set(nm *netmap.NetworkMap) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.NetMap = nm
}
