package derprelay

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/derp/derpserver"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/netmap"
)

// derpServer is a real DERP server on a TLS loopback port; region is a DERPMap region for it.
type derpServer struct {
	srv    *derpserver.Server
	http   *httptest.Server
	region *tailcfg.DERPRegion
}

func startDERP(t *testing.T, regionID int) *derpServer {
	t.Helper()
	s := derpserver.New(key.NewNode(), t.Logf)
	h := httptest.NewUnstartedServer(derpserver.Handler(s))
	h.StartTLS()
	t.Cleanup(func() { s.Close(); h.Close() })
	port, err := strconv.Atoi(h.Listener.Addr().(*net.TCPAddr).AddrPort().String()[len("127.0.0.1:"):])
	if err != nil {
		t.Fatal(err)
	}
	return &derpServer{srv: s, http: h, region: &tailcfg.DERPRegion{
		RegionID: regionID, RegionCode: fmt.Sprintf("test%d", regionID),
		Nodes: []*tailcfg.DERPNode{{Name: fmt.Sprintf("%da", regionID), RegionID: regionID,
			HostName: "127.0.0.1", IPv4: "127.0.0.1", DERPPort: port, InsecureForTests: true}},
	}}
}

func derpMapOf(regions ...*tailcfg.DERPRegion) *tailcfg.DERPMap {
	dm := &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{}}
	for _, r := range regions {
		dm.Regions[r.RegionID] = r
	}
	return dm
}

func netmapOf(dm *tailcfg.DERPMap, peers ...key.NodePrivate) *netmap.NetworkMap {
	nm := &netmap.NetworkMap{DERPMap: dm}
	for i, p := range peers {
		nm.Peers = append(nm.Peers, (&tailcfg.Node{ID: tailcfg.NodeID(i + 1), Key: p.Public()}).View())
	}
	return nm
}

// echoGateway stands in for exitgw's relay endpoint: a UDP socket on 127.0.0.1 that answers
// each datagram with the same bytes and remembers who sent what.
type echoGateway struct {
	conn *net.UDPConn
	mu   sync.Mutex
	from []netip.AddrPort
}

func startEcho(t *testing.T) *echoGateway {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g := &echoGateway{conn: conn}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			g.mu.Lock()
			g.from = append(g.from, from)
			g.mu.Unlock()
			conn.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return g
}

func (g *echoGateway) addr() netip.AddrPort { return g.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (g *echoGateway) senders() []netip.AddrPort {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]netip.AddrPort(nil), g.from...)
}

// peerClient is a tailnet peer speaking DERP with its own key.
type peerClient struct {
	key key.NodePrivate
	c   *derphttp.Client
	got chan derp.ReceivedPacket
}

func connectPeer(t *testing.T, k key.NodePrivate, region *tailcfg.DERPRegion) *peerClient {
	t.Helper()
	c := derphttp.NewRegionClient(k, t.Logf, netmon.NewStatic(), func() *tailcfg.DERPRegion { return region })
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("peer connect: %v", err)
	}
	p := &peerClient{key: k, c: c, got: make(chan derp.ReceivedPacket, 16)}
	go func() {
		for {
			m, err := c.Recv()
			if err != nil {
				return
			}
			if pkt, ok := m.(derp.ReceivedPacket); ok {
				p.got <- derp.ReceivedPacket{Source: pkt.Source, Data: bytes.Clone(pkt.Data)}
			}
		}
	}()
	return p
}

func (p *peerClient) send(t *testing.T, to key.NodePublic, data []byte) {
	t.Helper()
	if err := p.c.Send(to, data); err != nil {
		t.Fatalf("peer send: %v", err)
	}
}

func (p *peerClient) receive(t *testing.T) derp.ReceivedPacket {
	t.Helper()
	select {
	case m := <-p.got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("nothing came back through DERP in 10 s")
		return derp.ReceivedPacket{}
	}
}

func (p *peerClient) receiveNothing(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case m := <-p.got:
		t.Fatalf("got %q from %s, want nothing", m.Data, m.Source.ShortString())
	case <-time.After(d):
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runRelay starts a relay for gw with cfg's limits, relaying to g, fed nm, and waits until
// it is connected to DERP.
func runRelay(t *testing.T, cfg Config, nm *netmap.NetworkMap) *Relay {
	t.Helper()
	r := New(cfg)
	r.SetNetMap(nm)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the relay's DERP connection", r.Connected)
	return r
}

func testConfig(gw key.NodePrivate, g *echoGateway) Config {
	return Config{NodeKey: gw, Region: RegionAuto, Local: netip.MustParseAddr("127.0.0.1"),
		Gateway: g.addr(), MaxPeers: 4096, IdleTimeout: time.Minute}
}

func metricValue(t *testing.T, r *Relay, series string) uint64 {
	t.Helper()
	var b bytes.Buffer
	r.WriteMetrics(&b)
	for line := range strings.Lines(b.String()) {
		if name, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == series {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no series %s in\n%s", series, b.String())
	return 0
}

// A peer's WireGuard and disco packets sent through DERP to the gateway's node key reach
// exitgw's relay endpoint unchanged, from one source port for that peer, and what exitgw
// answers on that port comes back to the peer through DERP unchanged.
func TestPeerPacketsReachExitgwAndAnswersReturnThroughDERP(t *testing.T) {
	d := startDERP(t, 3)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	var homes []int
	var homesMu sync.Mutex
	cfg := testConfig(gw, g)
	cfg.Logf = t.Logf
	cfg.OnHomeRegion = func(region int) { homesMu.Lock(); homes = append(homes, region); homesMu.Unlock() }
	r := runRelay(t, cfg, netmapOf(derpMapOf(d.region), peerKey))
	peer := connectPeer(t, peerKey, d.region)

	wgInit := append([]byte{1, 0, 0, 0}, bytes.Repeat([]byte{0xa5}, 144)...) // a handshake initiation's size
	disco := append([]byte("TS\xf0\x9f\x92\xac"), bytes.Repeat([]byte{7}, 80)...)
	for _, pkt := range [][]byte{wgInit, disco, bytes.Repeat([]byte{0xff}, 1400)} {
		peer.send(t, gw.Public(), pkt)
		m := peer.receive(t)
		if m.Source != gw.Public() {
			t.Fatalf("answer from %s, want the gateway %s", m.Source.ShortString(), gw.Public().ShortString())
		}
		if !bytes.Equal(m.Data, pkt) {
			t.Fatalf("answer %x, want the echo of %x", m.Data, pkt)
		}
	}
	local, ok := r.LocalAddr(peerKey.Public())
	if !ok {
		t.Fatal("no relay socket for the peer")
	}
	for _, from := range g.senders() {
		if from != local {
			t.Errorf("exitgw saw a packet from %s, want every one from the peer's socket %s", from, local)
		}
	}
	if n := len(g.senders()); n != 3 {
		t.Errorf("exitgw got %d packets, want 3", n)
	}
	if got := r.HomeRegion(); got != 3 {
		t.Errorf("home region %d, want 3", got)
	}
	homesMu.Lock()
	if fmt.Sprint(homes) != "[3]" {
		t.Errorf("OnHomeRegion told %v, want [3]", homes)
	}
	homesMu.Unlock()
	want := map[string]uint64{
		`exitgw_connector_derp_connected`:                               1,
		`exitgw_connector_derp_home_region`:                             3,
		`exitgw_connector_derp_packets_total{direction="from_derp"}`:    3,
		`exitgw_connector_derp_packets_total{direction="to_derp"}`:      3,
		`exitgw_connector_derp_bytes_total{direction="from_derp"}`:      uint64(len(wgInit) + len(disco) + 1400),
		`exitgw_connector_derp_bytes_total{direction="to_derp"}`:        uint64(len(wgInit) + len(disco) + 1400),
		`exitgw_connector_derp_relay_peers`:                             1,
		`exitgw_connector_derp_drops_total{reason="not_a_peer"}`:        0,
		`exitgw_connector_derp_drops_total{reason="too_many_peers"}`:    0,
		`exitgw_connector_derp_drops_total{reason="relay_write_error"}`: 0,
		`exitgw_connector_derp_drops_total{reason="derp_send_error"}`:   0,
	}
	for series, v := range want {
		if got := metricValue(t, r, series); got != v {
			t.Errorf("%s = %d, want %d", series, got, v)
		}
	}
}

// Each peer gets its own socket, so exitgw tells relayed peers apart by source port, and each
// answer goes back to the peer whose port it was sent to.
func TestEachPeerHasItsOwnSourcePort(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, a, b := key.NewNode(), key.NewNode(), key.NewNode()
	r := runRelay(t, testConfig(gw, g), netmapOf(derpMapOf(d.region), a, b))
	pa, pb := connectPeer(t, a, d.region), connectPeer(t, b, d.region)
	pa.send(t, gw.Public(), []byte("from a"))
	if m := pa.receive(t); string(m.Data) != "from a" {
		t.Fatalf("a got %q", m.Data)
	}
	pb.send(t, gw.Public(), []byte("from b"))
	if m := pb.receive(t); string(m.Data) != "from b" {
		t.Fatalf("b got %q", m.Data)
	}
	pa.receiveNothing(t, 100*time.Millisecond)
	la, _ := r.LocalAddr(a.Public())
	lb, _ := r.LocalAddr(b.Public())
	if la == lb || !la.IsValid() || !lb.IsValid() {
		t.Errorf("peer sockets %s and %s, want two different ports", la, lb)
	}
	if r.Peers() != 2 {
		t.Errorf("%d relay sockets, want 2", r.Peers())
	}
}

// A packet through DERP from a node that is not a peer in the netmap goes nowhere and is
// counted as not_a_peer.
func TestNonPeerPacketsAreDroppedAndCounted(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey, stranger := key.NewNode(), key.NewNode(), key.NewNode()
	r := runRelay(t, testConfig(gw, g), netmapOf(derpMapOf(d.region), peerKey))
	s := connectPeer(t, stranger, d.region)
	s.send(t, gw.Public(), []byte("let me in"))
	waitFor(t, "a not_a_peer drop", func() bool {
		return metricValue(t, r, `exitgw_connector_derp_drops_total{reason="not_a_peer"}`) == 1
	})
	s.receiveNothing(t, 100*time.Millisecond)
	if n := len(g.senders()); n != 0 {
		t.Errorf("exitgw got %d packets, want none", n)
	}
	if r.Peers() != 0 {
		t.Errorf("%d relay sockets, want none", r.Peers())
	}
}

// Peers beyond --relay-max-peers get no socket: their packets are dropped as too_many_peers
// while the peers that have one keep being relayed.
func TestPeersBeyondMaxPeersAreDroppedAndCounted(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, a, b := key.NewNode(), key.NewNode(), key.NewNode()
	cfg := testConfig(gw, g)
	cfg.MaxPeers = 1
	r := runRelay(t, cfg, netmapOf(derpMapOf(d.region), a, b))
	pa, pb := connectPeer(t, a, d.region), connectPeer(t, b, d.region)
	pa.send(t, gw.Public(), []byte("first"))
	pa.receive(t)
	pb.send(t, gw.Public(), []byte("second"))
	waitFor(t, "a too_many_peers drop", func() bool {
		return metricValue(t, r, `exitgw_connector_derp_drops_total{reason="too_many_peers"}`) == 1
	})
	pb.receiveNothing(t, 100*time.Millisecond)
	pa.send(t, gw.Public(), []byte("again"))
	if m := pa.receive(t); string(m.Data) != "again" {
		t.Fatalf("a got %q, want its echo", m.Data)
	}
	if got := metricValue(t, r, "exitgw_connector_derp_relay_peers"); got != 1 {
		t.Errorf("relay_peers %d, want 1", got)
	}
}

// A socket with no packet either way for --relay-idle-timeout is closed; the peer's next
// packet opens a new one.
func TestIdleSocketIsClosedAndTheNextPacketOpensAnother(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	cfg := testConfig(gw, g)
	cfg.IdleTimeout = 300 * time.Millisecond
	r := runRelay(t, cfg, netmapOf(derpMapOf(d.region), peerKey))
	peer := connectPeer(t, peerKey, d.region)
	peer.send(t, gw.Public(), []byte("hello"))
	peer.receive(t)
	if r.Peers() != 1 {
		t.Fatalf("%d relay sockets after a packet, want 1", r.Peers())
	}
	start := time.Now()
	waitFor(t, "the idle socket to close", func() bool { return r.Peers() == 0 })
	if el := time.Since(start); el < 150*time.Millisecond {
		t.Errorf("closed after %v, before the idle timeout", el)
	}
	peer.send(t, gw.Public(), []byte("back"))
	if m := peer.receive(t); string(m.Data) != "back" {
		t.Fatalf("got %q after the idle close, want the echo", m.Data)
	}
	if r.Peers() != 1 {
		t.Errorf("%d relay sockets after the next packet, want 1", r.Peers())
	}
}

// A socket that keeps carrying packets is not closed however long it lives.
func TestBusySocketOutlivesTheIdleTimeout(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	cfg := testConfig(gw, g)
	cfg.IdleTimeout = 300 * time.Millisecond
	r := runRelay(t, cfg, netmapOf(derpMapOf(d.region), peerKey))
	peer := connectPeer(t, peerKey, d.region)
	peer.send(t, gw.Public(), []byte("0"))
	peer.receive(t)
	first, _ := r.LocalAddr(peerKey.Public())
	for i := range 8 {
		time.Sleep(100 * time.Millisecond)
		peer.send(t, gw.Public(), []byte{byte(i)})
		peer.receive(t)
	}
	if now, ok := r.LocalAddr(peerKey.Public()); !ok || now != first {
		t.Errorf("socket %s (open %v) after 800 ms of traffic, want still %s", now, ok, first)
	}
}

// A peer that leaves the netmap loses its socket, and its packets are no longer relayed.
func TestPeerRemovedFromTheNetmapLosesItsSocket(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	dm := derpMapOf(d.region)
	r := runRelay(t, testConfig(gw, g), netmapOf(dm, peerKey))
	peer := connectPeer(t, peerKey, d.region)
	peer.send(t, gw.Public(), []byte("hello"))
	peer.receive(t)
	r.SetNetMap(netmapOf(dm))
	if r.Peers() != 0 {
		t.Fatalf("%d relay sockets after the peer left the netmap, want 0", r.Peers())
	}
	peer.send(t, gw.Public(), []byte("still there?"))
	waitFor(t, "a not_a_peer drop", func() bool {
		return metricValue(t, r, `exitgw_connector_derp_drops_total{reason="not_a_peer"}`) == 1
	})
}

// When the DERP connection breaks, the relay reconnects (here to the region's new node, from
// the next netmap's DERPMap) and relays again.
func TestRelayReconnectsWhenDERPGoesAway(t *testing.T) {
	first, second := startDERP(t, 1), startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	r := runRelay(t, testConfig(gw, g), netmapOf(derpMapOf(first.region), peerKey))
	r.SetNetMap(netmapOf(derpMapOf(second.region), peerKey))
	first.srv.Close()
	waitFor(t, "the relay to notice", func() bool { return !r.Connected() })
	waitFor(t, "the relay to reconnect", r.Connected)
	peer := connectPeer(t, peerKey, second.region)
	peer.send(t, gw.Public(), []byte("after"))
	if m := peer.receive(t); string(m.Data) != "after" {
		t.Fatalf("got %q, want the echo", m.Data)
	}
}

// When the relay address is not on any interface (exitgw has not put it on its exception
// interface yet), packets are dropped as relay_write_error, the error is logged once, and
// binding is tried again only after a backoff, not for every packet.
func TestUnbindableRelayAddressDropsLogsOnceAndRetriesAfterBackoff(t *testing.T) {
	d := startDERP(t, 1)
	g := startEcho(t)
	gw, peerKey := key.NewNode(), key.NewNode()
	var logs logBuf
	cfg := testConfig(gw, g)
	cfg.Local = netip.MustParseAddr("192.0.2.77") // TEST-NET-1: on no interface here
	cfg.Logf = logs.logf
	r := runRelay(t, cfg, netmapOf(derpMapOf(d.region), peerKey))
	peer := connectPeer(t, peerKey, d.region)
	for range 3 {
		peer.send(t, gw.Public(), []byte("x"))
	}
	waitFor(t, "three relay_write_error drops", func() bool {
		return metricValue(t, r, `exitgw_connector_derp_drops_total{reason="relay_write_error"}`) == 3
	})
	if n := logs.count("cannot open a relay socket"); n != 1 {
		t.Errorf("the bind error was logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "not on any interface") {
		t.Errorf("the log does not say the address is missing:\n%s", logs.String())
	}
	if r.Peers() != 0 {
		t.Errorf("%d relay sockets, want none", r.Peers())
	}
	// Once the backoff has passed, the next packet tries to bind again (and backs off longer);
	// the same error is still not logged again.
	r.mu.Lock()
	r.bindRetry = time.Now().Add(-time.Millisecond)
	r.mu.Unlock()
	peer.send(t, gw.Public(), []byte("y"))
	waitFor(t, "a fourth relay_write_error drop", func() bool {
		return metricValue(t, r, `exitgw_connector_derp_drops_total{reason="relay_write_error"}`) == 4
	})
	r.mu.Lock()
	delay := r.bindDelay
	r.mu.Unlock()
	if delay != 2*backoffMin {
		t.Errorf("bind backoff %v after the second try, want %v", delay, 2*backoffMin)
	}
	if n := logs.count("cannot open a relay socket"); n != 1 {
		t.Errorf("the bind error was logged %d times, want once:\n%s", n, logs.String())
	}
}

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) count(s string) int { return strings.Count(l.String(), s) }

// Every series is exported from the start, each drop reason with its zero; a nil relay
// (--derp-region 0) writes nothing.
func TestMetricsExportEverySeriesAndNilWritesNothing(t *testing.T) {
	var b bytes.Buffer
	(*Relay)(nil).WriteMetrics(&b)
	if b.Len() != 0 {
		t.Errorf("nil relay wrote %q", b.String())
	}
	r := New(Config{})
	r.WriteMetrics(&b)
	for _, want := range []string{
		"exitgw_connector_derp_connected 0\n",
		"exitgw_connector_derp_home_region 0\n",
		`exitgw_connector_derp_packets_total{direction="from_derp"} 0` + "\n",
		`exitgw_connector_derp_packets_total{direction="to_derp"} 0` + "\n",
		`exitgw_connector_derp_bytes_total{direction="from_derp"} 0` + "\n",
		`exitgw_connector_derp_bytes_total{direction="to_derp"} 0` + "\n",
		`exitgw_connector_derp_drops_total{reason="not_a_peer"} 0` + "\n",
		`exitgw_connector_derp_drops_total{reason="too_many_peers"} 0` + "\n",
		`exitgw_connector_derp_drops_total{reason="relay_write_error"} 0` + "\n",
		`exitgw_connector_derp_drops_total{reason="derp_send_error"} 0` + "\n",
		"exitgw_connector_derp_relay_peers 0\n",
		"# TYPE exitgw_connector_derp_drops_total counter\n",
		"# TYPE exitgw_connector_derp_relay_peers gauge\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	(*Relay)(nil).SetNetMap(&netmap.NetworkMap{}) // nil-safe
}
