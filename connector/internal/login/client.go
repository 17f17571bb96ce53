package login

import (
	"fmt"
	"net/netip"
	"sync"

	"tailscale.com/control/controlclient"
	"tailscale.com/health"
	"tailscale.com/hostinfo"
	"tailscale.com/net/netmon"
	"tailscale.com/net/tsdial"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/logger"
	"tailscale.com/types/netmap"
	"tailscale.com/types/persist"
	"tailscale.com/util/eventbus"
)

// exitRoutes are what tailscaled advertises for `--advertise-exit-node`.
var exitRoutes = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}

// Config is what the node advertises and how it logs in.
type Config struct {
	ServerURL string
	AuthKey   string
	StateDir  string
	NodeKey   key.NodePrivate // exitgw's WireGuard static key
	DiscoKey  key.DiscoPublic // the public half of exitgw's disco key
	Hostname  string
	Endpoints []netip.AddrPort // the gateway's public WireGuard UDP endpoints
	Location  *tailcfg.Location
	// PeerAPI4Port and PeerAPI6Port are the DoH server's ports (zero: not offered); see
	// peerAPIServices.
	PeerAPI4Port, PeerAPI6Port uint16
	// HomeDERP is the DERP region advertised as the node's home (Hostinfo.NetInfo.PreferredDERP,
	// which Headscale and Tailscale take as the node's DERP region); zero: none. SetHomeDERP
	// changes it later (e.g. once the region is chosen from the first netmap's DERPMap).
	HomeDERP int
	Logf     logger.Logf
}

// Snapshot is the latest of everything the control client reported. The control client
// sends a netmap only with good news; errors and login URLs come in statuses of their own,
// so the last netmap is kept beside the last error.
type Snapshot struct {
	NetMap    *netmap.NetworkMap // the last netmap received (nil before the first)
	Err       error              // the last status's error (nil once things work)
	URL       string             // an interactive login URL: the auth key was not enough
	LoggedIn  bool
	InMapPoll bool
	Persist   persist.PersistView // valid with each netmap
	Seq       uint64              // counts statuses, so a reader can tell a new one
}

// Client is a logged-in (or logging-in) node: controlclient.Auto and its observer.
type Client struct {
	auto   *controlclient.Auto
	bus    *eventbus.Bus
	dialer *tsdial.Dialer
	state  *State
	cfg    Config

	mu      sync.Mutex
	snap    Snapshot
	changed chan struct{} // gets a value (never blocks) after each status
}

// Hostinfo is what the node tells the server about itself.
func Hostinfo(cfg Config, backendLogID string) *tailcfg.Hostinfo {
	hi := hostinfo.New()
	hi.App = "exitgw-connector"
	hi.Hostname = cfg.Hostname
	hi.BackendLogID = backendLogID
	hi.RoutableIPs = append([]netip.Prefix(nil), exitRoutes...)
	if cfg.Location != nil {
		hi.Location = cfg.Location.Clone()
	}
	hi.Services = peerAPIServices(cfg)
	if cfg.HomeDERP != 0 {
		hi.NetInfo = netInfo(cfg.HomeDERP)
	}
	return hi
}

// netInfo is the NetInfo the node reports: only its home DERP region. The control client
// keeps NetInfo apart from the rest of Hostinfo and sends it with each Hostinfo.
func netInfo(region int) *tailcfg.NetInfo {
	return &tailcfg.NetInfo{PreferredDERP: region}
}

// peerAPIServices is what tailscaled advertises for its PeerAPI (ipn/ipnlocal/local.go,
// peerAPIServicesLocked): peerapi4/peerapi6 with the port of each family's listener, which
// clients join to this node's tailnet address as http://IP:PORT/dns-query once they select it
// as their exit node, and peerapi-dns-proxy (port 1: the version) saying it resolves for peers,
// which clients check when the server does not tell them this node's capability version.
func peerAPIServices(cfg Config) []tailcfg.Service {
	var svcs []tailcfg.Service
	if cfg.PeerAPI4Port != 0 {
		svcs = append(svcs, tailcfg.Service{Proto: tailcfg.PeerAPI4, Port: cfg.PeerAPI4Port})
	}
	if cfg.PeerAPI6Port != 0 {
		svcs = append(svcs, tailcfg.Service{Proto: tailcfg.PeerAPI6, Port: cfg.PeerAPI6Port})
	}
	if len(svcs) > 0 {
		svcs = append(svcs, tailcfg.Service{Proto: tailcfg.PeerAPIDNS, Port: 1})
	}
	return svcs
}

// Start loads the state, starts the control client and asks it to log in. Progress comes as
// snapshots (Changed, Snapshot); Close stops it.
func Start(cfg Config) (*Client, error) {
	st, err := LoadState(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	if st.NodeKey != (key.NodePublic{}) && st.NodeKey != cfg.NodeKey.Public() {
		cfg.Logf("login: the WireGuard key changed since the last run (was %s, now %s): this registers as a new node; delete the old one in the coordination server",
			st.NodeKey.ShortString(), cfg.NodeKey.Public().ShortString())
	}
	c := &Client{bus: eventbus.New(), state: st, cfg: cfg, changed: make(chan struct{}, 1)}
	c.dialer = tsdial.NewDialer(netmon.NewStatic())
	c.dialer.SetBus(c.bus)
	machineKey := st.MachineKey
	c.auto, err = controlclient.New(controlclient.Options{
		ServerURL:            cfg.ServerURL,
		AuthKey:              cfg.AuthKey,
		Persist:              st.persistFor(cfg.NodeKey),
		GetMachinePrivateKey: func() (key.MachinePrivate, error) { return machineKey, nil },
		Hostinfo:             Hostinfo(cfg, st.BackendLogID),
		DiscoPublicKey:       cfg.DiscoKey,
		HealthTracker:        health.NewTracker(c.bus),
		Dialer:               c.dialer,
		Bus:                  c.bus,
		Logf:                 cfg.Logf,
		Observer:             c,
	})
	if err != nil {
		c.bus.Close()
		return nil, fmt.Errorf("starting the control client: %w", err)
	}
	if len(cfg.Endpoints) > 0 {
		eps := make([]tailcfg.Endpoint, len(cfg.Endpoints))
		for i, ap := range cfg.Endpoints {
			eps[i] = tailcfg.Endpoint{Addr: ap, Type: tailcfg.EndpointExplicitConf}
		}
		c.auto.UpdateEndpoints(eps)
	}
	c.auto.Login(controlclient.LoginDefault)
	return c, nil
}

// SetControlClientStatus implements controlclient.Observer. It must not block: it records the
// status and wakes the reader.
func (c *Client) SetControlClientStatus(_ controlclient.Client, s controlclient.Status) {
	c.mu.Lock()
	c.snap.Seq++
	c.snap.Err = s.Err
	c.snap.URL = s.URL
	c.snap.LoggedIn = s.LoggedIn
	c.snap.InMapPoll = s.InMapPoll
	if s.NetMap != nil {
		c.snap.NetMap = s.NetMap
		c.snap.Persist = s.Persist
	}
	if s.Persist.Valid() && s.Persist.PrivateNodeKey().Public() == c.cfg.NodeKey.Public() &&
		c.state.remember(*s.Persist.AsStruct()) {
		if err := c.state.Save(c.cfg.StateDir); err != nil {
			c.cfg.Logf("login: %v", err)
		}
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// SetLocationPriority sends a Hostinfo whose Location.Priority is p (the rest unchanged) to
// the coordination server; nothing is sent when p is what the node already advertises.
func (c *Client) SetLocationPriority(p int) {
	c.mu.Lock()
	loc := tailcfg.Location{}
	if c.cfg.Location != nil {
		loc = *c.cfg.Location
	}
	if c.cfg.Location != nil && loc.Priority == p {
		c.mu.Unlock()
		return
	}
	loc.Priority = p
	c.cfg.Location = &loc
	hi := Hostinfo(c.cfg, c.state.BackendLogID)
	c.mu.Unlock()
	c.auto.SetHostinfo(hi)
}

// SetHomeDERP advertises region as the node's home DERP region (zero: none), so that clients
// without a direct path send to the node through that region. Nothing is sent when the
// region is what the node already advertises.
func (c *Client) SetHomeDERP(region int) {
	c.mu.Lock()
	same := c.cfg.HomeDERP == region
	c.cfg.HomeDERP = region
	c.mu.Unlock()
	if !same {
		c.auto.SetNetInfo(netInfo(region))
	}
}

// Changed is readable after each new status.
func (c *Client) Changed() <-chan struct{} { return c.changed }

// Snapshot returns the latest statuses merged.
func (c *Client) Snapshot() Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// Close logs nothing out: it stops polling, so the server marks the node offline while the
// gateway keeps its last state.
func (c *Client) Close() {
	c.auto.Shutdown()
	c.dialer.Close()
	c.bus.Close()
}
