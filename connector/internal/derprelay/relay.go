package derprelay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/types/netmap"
)

const (
	backoffMin = time.Second
	backoffMax = 30 * time.Second
	// stableAfter is how long a DERP connection must have lasted for its failure to count as
	// a first failure again (backoff from backoffMin) rather than one more of a series.
	stableAfter = time.Minute
	// maxDatagram bounds what exitgw sends to a relay socket: a WireGuard message of at most
	// its --tunnel_mtu (576..9000) plus 32 bytes, or a disco frame; each socket's reader holds
	// a buffer of this size (9 KiB, not DERP's 64 KiB: 36 MiB at 4096 peers).
	maxDatagram = 9216
)

// Config is what the relay needs; the flags of the same names set it.
type Config struct {
	NodeKey key.NodePrivate // exitgw's WireGuard key: the node key DERP knows the gateway by
	// Region is the --derp-region value: RegionAuto, or a region ID (RegionOff: use no Relay).
	Region int
	// Local is the address the per-peer sockets bind (--relay-local); Gateway is exitgw's
	// relay endpoint they are connected to (--relay-gateway).
	Local   netip.Addr
	Gateway netip.AddrPort
	// MaxPeers bounds the open sockets (--relay-max-peers); IdleTimeout closes a socket with no
	// packet either way for that long (--relay-idle-timeout).
	MaxPeers    int
	IdleTimeout time.Duration
	// OnHomeRegion, if set, is told each home region chosen (the login client's SetHomeDERP).
	OnHomeRegion func(region int)
	Logf         logger.Logf
}

// Drop reasons, each counted on its own.
type dropReason int

const (
	dropNotAPeer        dropReason = iota // from DERP, but the source is no peer in the netmap
	dropTooManyPeers                      // a new peer while MaxPeers sockets are open
	dropRelayWriteError                   // the packet could not be written to exitgw (or no socket could be bound)
	dropDERPSendError                     // exitgw's answer could not be sent over DERP
	dropCount
)

var dropNames = [dropCount]string{"not_a_peer", "too_many_peers", "relay_write_error", "derp_send_error"}

// Relay keeps the DERP connection and the per-peer sockets. Create it with New, feed it
// netmaps with SetNetMap and run it with Run.
type Relay struct {
	cfg    Config
	netMon *netmon.Monitor
	wake   chan struct{}

	mu      sync.Mutex
	derpMap *tailcfg.DERPMap
	peers   map[key.NodePublic]bool // the netmap's peers
	conns   map[key.NodePublic]*peerConn
	region  int              // the home region chosen (0: none yet)
	client  *derphttp.Client // the DERP connection to region (nil: none)
	running bool             // Run is on; sockets may be opened
	// Binding the relay sockets: after a failure, none is tried before bindRetry.
	bindRetry time.Time
	bindDelay time.Duration
	bindErr   string // the last bind error logged, so a run of the same one is logged once

	connected  atomic.Bool
	homeRegion atomic.Int64
	openConns  atomic.Int64
	packets    [2]atomic.Uint64 // fromDERP, toDERP
	bytes      [2]atomic.Uint64
	drops      [dropCount]atomic.Uint64
}

const (
	fromDERP = 0
	toDERP   = 1
)

// peerConn is one peer's socket to exitgw's relay endpoint.
type peerConn struct {
	peer key.NodePublic
	conn *net.UDPConn
	last atomic.Int64 // unix nanoseconds of the last packet either way
}

func (p *peerConn) touch() { p.last.Store(time.Now().UnixNano()) }

// New returns a relay for cfg; nothing happens before Run.
func New(cfg Config) *Relay {
	if cfg.Logf == nil {
		cfg.Logf = logger.Discard
	}
	if cfg.MaxPeers <= 0 {
		cfg.MaxPeers = 4096
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	return &Relay{
		cfg:    cfg,
		netMon: netmon.NewStatic(),
		wake:   make(chan struct{}, 1),
		peers:  map[key.NodePublic]bool{},
		conns:  map[key.NodePublic]*peerConn{},
	}
}

// SetNetMap takes the peers and the DERPMap of a new netmap: packets from peers no longer in
// it are dropped and their sockets closed. Nil-safe (the relay off: nothing).
func (r *Relay) SetNetMap(nm *netmap.NetworkMap) {
	if r == nil || nm == nil {
		return
	}
	peers := make(map[key.NodePublic]bool, len(nm.Peers))
	for _, p := range nm.Peers {
		if p.Valid() {
			peers[p.Key()] = true
		}
	}
	r.mu.Lock()
	r.peers = peers
	if nm.DERPMap != nil {
		r.derpMap = nm.DERPMap
	}
	var gone []*peerConn
	for k, pc := range r.conns {
		if !peers[k] {
			gone = append(gone, pc)
			r.removeLocked(pc)
		}
	}
	r.mu.Unlock()
	for _, pc := range gone {
		pc.conn.Close()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// HomeRegion is the home region chosen (0 before the first netmap with a usable DERPMap).
func (r *Relay) HomeRegion() int { return int(r.homeRegion.Load()) }

// Run relays until ctx ends: it waits for a netmap, chooses the home region, tells
// OnHomeRegion, and keeps a DERP connection to it, moving to another region if an automatic
// choice disappears from the DERPMap. On return every socket is closed.
func (r *Relay) Run(ctx context.Context) {
	r.mu.Lock()
	r.running = true
	r.mu.Unlock()
	var stopSession func()
	defer func() {
		if stopSession != nil {
			stopSession()
		}
		r.mu.Lock()
		r.running = false
		conns := r.conns
		r.conns = map[key.NodePublic]*peerConn{}
		r.openConns.Store(0)
		r.mu.Unlock()
		for _, pc := range conns {
			pc.conn.Close()
		}
	}()
	janitor := time.NewTicker(min(max(r.cfg.IdleTimeout/4, 5*time.Millisecond), 10*time.Second))
	defer janitor.Stop()
	for {
		if region := r.wantRegion(); region != 0 && region != r.HomeRegion() {
			if stopSession != nil {
				stopSession()
			}
			r.cfg.Logf("derprelay: home DERP region %d; relaying to exitgw at %s from %s", region, r.cfg.Gateway, r.cfg.Local)
			r.homeRegion.Store(int64(region))
			if r.cfg.OnHomeRegion != nil {
				r.cfg.OnHomeRegion(region)
			}
			stopSession = r.startSession(ctx, region)
		}
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-janitor.C:
			r.closeIdle()
		}
	}
}

// wantRegion is the home region for the latest DERPMap: the configured one, or with
// RegionAuto the current one while it is still usable, else ChooseRegion's.
func (r *Relay) wantRegion() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.derpMap == nil {
		return 0 // no netmap yet
	}
	if r.cfg.Region > 0 {
		return r.cfg.Region
	}
	if cur := r.HomeRegion(); cur != 0 && usable(r.derpMap.Regions[cur]) {
		return cur
	}
	return ChooseRegion(RegionAuto, r.derpMap)
}

// regionInfo is the latest DERPMap's region id (nil: not in it).
func (r *Relay) regionInfo(id int) *tailcfg.DERPRegion {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.derpMap == nil {
		return nil
	}
	return r.derpMap.Regions[id]
}

// startSession connects to region and receives from it until the returned stop is called.
func (r *Relay) startSession(ctx context.Context, region int) (stop func()) {
	if r.regionInfo(region) == nil {
		r.cfg.Logf("derprelay: DERP region %d is not in the netmap's DERPMap (yet); connecting once it is", region)
	}
	c := derphttp.NewRegionClient(r.cfg.NodeKey, r.cfg.Logf, r.netMon, func() *tailcfg.DERPRegion {
		return r.regionInfo(region)
	})
	c.NotePreferred(true) // it is the node's home region
	ctx, cancel := context.WithCancel(ctx)
	r.mu.Lock()
	r.client = c
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.receive(ctx, c, region)
	}()
	return func() {
		cancel()
		c.Close()
		<-done
		r.mu.Lock()
		if r.client == c {
			r.client = nil
		}
		r.mu.Unlock()
		r.connected.Store(false)
	}
}

// receive reads from the DERP connection until ctx ends. derphttp reconnects on the Recv
// after an error; between failures it waits, 1 s doubling to 30 s, so a server that is down
// or refuses the node is never hammered.
func (r *Relay) receive(ctx context.Context, c *derphttp.Client, region int) {
	var (
		delay   time.Duration
		failing bool
		since   time.Time // when the current connection started working
	)
	for ctx.Err() == nil {
		m, err := c.Recv()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, derphttp.ErrClientClosed) {
				return
			}
			r.connected.Store(false)
			if !since.IsZero() && time.Since(since) >= stableAfter {
				delay = 0
			}
			since = time.Time{}
			delay = min(max(2*delay, backoffMin), backoffMax)
			if !failing {
				r.cfg.Logf("derprelay: DERP region %d: %v; reconnecting, with backoff up to %v while it fails", region, err, backoffMax)
				failing = true
			} else {
				r.cfg.Logf("[v1] derprelay: DERP region %d: %v; next try in %v", region, err, delay)
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		}
		if since.IsZero() {
			since = time.Now()
			r.connected.Store(true)
			if failing {
				r.cfg.Logf("derprelay: DERP region %d: reconnected", region)
				failing = false
			} else {
				r.cfg.Logf("derprelay: DERP region %d: connected as %s", region, r.cfg.NodeKey.Public().ShortString())
			}
		}
		switch m := m.(type) {
		case derp.ReceivedPacket:
			r.relayIn(m.Source, m.Data)
		case derp.PingMessage:
			if err := c.SendPong(m); err != nil {
				r.cfg.Logf("[v1] derprelay: pong: %v", err)
			}
		case derp.HealthMessage:
			if m.Problem != "" {
				r.cfg.Logf("derprelay: DERP region %d reports a problem: %s", region, m.Problem)
			}
		case derp.ServerRestartingMessage:
			r.cfg.Logf("derprelay: DERP region %d is restarting (reconnect in %v)", region, m.ReconnectIn)
		}
	}
}

// relayIn writes one packet from peer src (from DERP) to exitgw through src's socket.
func (r *Relay) relayIn(src key.NodePublic, data []byte) {
	for attempt := 0; ; attempt++ {
		pc, reason, ok := r.connFor(src)
		if !ok {
			r.drops[reason].Add(1)
			return
		}
		pc.touch()
		_, err := pc.conn.Write(data)
		if err == nil {
			r.packets[fromDERP].Add(1)
			r.bytes[fromDERP].Add(uint64(len(data)))
			return
		}
		if errors.Is(err, net.ErrClosed) && attempt == 0 {
			continue // closed (idle) just now: take a new socket
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			r.cfg.Logf("[v1] derprelay: writing to %s for %s: %v", r.cfg.Gateway, src.ShortString(), err)
		}
		r.drops[dropRelayWriteError].Add(1)
		return
	}
}

// connFor returns src's socket, opening one if src is a peer and there is room.
func (r *Relay) connFor(src key.NodePublic) (*peerConn, dropReason, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pc := r.conns[src]; pc != nil {
		return pc, 0, true
	}
	if !r.peers[src] {
		return nil, dropNotAPeer, false
	}
	if !r.running {
		return nil, dropRelayWriteError, false
	}
	if len(r.conns) >= r.cfg.MaxPeers {
		return nil, dropTooManyPeers, false
	}
	now := time.Now()
	if now.Before(r.bindRetry) {
		return nil, dropRelayWriteError, false
	}
	conn, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(r.cfg.Local, 0)),
		net.UDPAddrFromAddrPort(r.cfg.Gateway))
	if err != nil {
		r.bindDelay = min(max(2*r.bindDelay, backoffMin), backoffMax)
		r.bindRetry = now.Add(r.bindDelay)
		if msg := err.Error(); msg != r.bindErr {
			hint := ""
			if errors.Is(err, syscall.EADDRNOTAVAIL) {
				hint = " (the address is not on any interface yet: exitgw's exception interface must carry it)"
			}
			r.cfg.Logf("derprelay: cannot open a relay socket from %s to %s: %v%s; dropping relayed packets, retrying with backoff up to %v",
				r.cfg.Local, r.cfg.Gateway, err, hint, backoffMax)
			r.bindErr = msg
		}
		return nil, dropRelayWriteError, false
	}
	if r.bindErr != "" {
		r.cfg.Logf("derprelay: relay sockets from %s open again", r.cfg.Local)
		r.bindErr = ""
	}
	r.bindDelay = 0
	pc := &peerConn{peer: src, conn: conn}
	pc.touch()
	r.conns[src] = pc
	r.openConns.Store(int64(len(r.conns)))
	r.cfg.Logf("[v1] derprelay: peer %s relayed from %s", src.ShortString(), conn.LocalAddr())
	go r.relayOut(pc)
	return pc, 0, true
}

// relayOut sends what exitgw writes to pc's socket to its peer over DERP, until the socket
// is closed.
func (r *Relay) relayOut(pc *peerConn) {
	buf := make([]byte, maxDatagram)
	for {
		n, err := pc.conn.Read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				continue // an ICMP port unreachable for an earlier write: exitgw was not listening
			}
			r.cfg.Logf("derprelay: reading the relay socket of %s: %v; closing it", pc.peer.ShortString(), err)
			r.close(pc)
			return
		}
		pc.touch()
		r.mu.Lock()
		c := r.client
		r.mu.Unlock()
		// While DERP is down, drop rather than have each socket's Send try to connect.
		if c == nil || !r.connected.Load() {
			r.drops[dropDERPSendError].Add(1)
			continue
		}
		if err := c.Send(pc.peer, buf[:n]); err != nil {
			r.drops[dropDERPSendError].Add(1)
			r.cfg.Logf("[v1] derprelay: sending to %s over DERP: %v", pc.peer.ShortString(), err)
			continue
		}
		r.packets[toDERP].Add(1)
		r.bytes[toDERP].Add(uint64(n))
	}
}

// removeLocked forgets pc (if it is still the peer's socket); the caller closes it.
func (r *Relay) removeLocked(pc *peerConn) {
	if r.conns[pc.peer] == pc {
		delete(r.conns, pc.peer)
		r.openConns.Store(int64(len(r.conns)))
	}
}

func (r *Relay) close(pc *peerConn) {
	r.mu.Lock()
	r.removeLocked(pc)
	r.mu.Unlock()
	pc.conn.Close()
}

// closeIdle closes the sockets with no packet either way for IdleTimeout.
func (r *Relay) closeIdle() {
	cutoff := time.Now().Add(-r.cfg.IdleTimeout).UnixNano()
	var idle []*peerConn
	r.mu.Lock()
	for _, pc := range r.conns {
		if pc.last.Load() < cutoff {
			idle = append(idle, pc)
			r.removeLocked(pc)
		}
	}
	r.mu.Unlock()
	for _, pc := range idle {
		r.cfg.Logf("[v1] derprelay: peer %s idle for %v: closing %s", pc.peer.ShortString(), r.cfg.IdleTimeout, pc.conn.LocalAddr())
		pc.conn.Close()
	}
}

// Peers returns the number of open relay sockets.
func (r *Relay) Peers() int { return int(r.openConns.Load()) }

// LocalAddr is the address of peer's relay socket (false: none open).
func (r *Relay) LocalAddr(peer key.NodePublic) (netip.AddrPort, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if pc := r.conns[peer]; pc != nil {
		return pc.conn.LocalAddr().(*net.UDPAddr).AddrPort(), true
	}
	return netip.AddrPort{}, false
}

// Connected reports whether the DERP connection works now.
func (r *Relay) Connected() bool { return r.connected.Load() }

func (d dropReason) String() string {
	if d < 0 || d >= dropCount {
		return fmt.Sprintf("dropReason(%d)", int(d))
	}
	return dropNames[d]
}
