// exitgw-connector makes exitgw a node of a tailnet: it logs in to the coordination server
// with the gateway's WireGuard key, advertises the exit routes, endpoints, disco key and
// location, turns each netmap into the gateway's updates over its admin API, serves the
// exit node's DNS to its clients (PeerAPI DNS-over-HTTP), and relays what peers send the
// gateway through its home DERP region to exitgw's WireGuard port (DERP fallback).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
	"tailscale.com/types/netmap"

	"exitgw/connector/internal/adminapi"
	"exitgw/connector/internal/bridge"
	"exitgw/connector/internal/derprelay"
	"exitgw/connector/internal/doh"
	"exitgw/connector/internal/loadprio"
	"exitgw/connector/internal/login"
	"exitgw/connector/internal/secretfile"
)

type endpointsFlag []netip.AddrPort

func (e *endpointsFlag) String() string { return fmt.Sprint(*e) }

func (e *endpointsFlag) Set(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("%q is not ip:port (e.g. 198.51.100.7:51820 or [2001:db8::7]:51820)", s)
	}
	*e = append(*e, ap)
	return nil
}

type options struct {
	loginServer, authKeyFile, stateDir, wgKeyFile, discoKeyFile, hostname string
	adminURL, adminTokenFile                                              string
	endpoints                                                             endpointsFlag
	location                                                              tailcfg.Location
	resync                                                                time.Duration
	load                                                                  loadprio.Config
	dns                                                                   doh.Options
	derp                                                                  derpOptions
	verbose                                                               bool
}

// derpOptions are the DERP fallback's flags.
type derpOptions struct {
	region                int
	relayLocal, relayGate string
	maxPeers              int
	idleTimeout           time.Duration
}

func (d *derpOptions) register(fs *flag.FlagSet) {
	fs.IntVar(&d.region, "derp-region", derprelay.RegionAuto,
		"The DERP region advertised as the gateway's home (Hostinfo.NetInfo.PreferredDERP), through which the connector relays "+
			"what clients without a direct UDP path send the gateway. -1 (the default) picks the lowest region ID in the netmap's "+
			"DERPMap that has a node; a positive value is that region; 0 turns DERP off: no home region is advertised and no DERP "+
			"connection kept, so clients without a direct path cannot reach the gateway at all. The choice also steers exit node "+
			"suggestions: tailscaled suggests exit nodes that have a home DERP region by the client's latency to that region and then "+
			"at random among the nodes of the region, ignoring Location and Priority (and so --priority-load-curve); only with no home "+
			"region (0) does it weigh Location.Priority and distance. Choose between DERP fallback and load-following suggestions.")
	fs.StringVar(&d.relayLocal, "relay-local", "169.254.77.1",
		"The address the DERP relay's per-peer UDP sockets bind (port 0, one socket and source port per relayed peer); exitgw puts it "+
			"on its exception interface. Until it is there, relayed packets are dropped and binding is retried with backoff.")
	fs.StringVar(&d.relayGate, "relay-gateway", "169.254.77.2:51820",
		"exitgw's relay endpoint ip:port, the far side of its exception interface: the DERP relay's sockets send peers' packets "+
			"there and take exitgw's answers from there.")
	fs.IntVar(&d.maxPeers, "relay-max-peers", 4096,
		"The most peers relayed at once (one UDP socket each); packets of further peers are dropped and counted as too_many_peers.")
	fs.DurationVar(&d.idleTimeout, "relay-idle-timeout", 5*time.Minute,
		"A relayed peer's socket with no packet in either direction for this long is closed; the peer's next packet opens a new "+
			"one from a new port, which WireGuard's roaming follows.")
}

func (d *derpOptions) config() (derprelay.Config, error) {
	var c derprelay.Config
	if d.region < derprelay.RegionAuto {
		return c, fmt.Errorf("--derp-region %d: want -1 (auto), 0 (off) or a region ID", d.region)
	}
	local, err := netip.ParseAddr(d.relayLocal)
	if err != nil {
		return c, fmt.Errorf("--relay-local %q is not an IP address", d.relayLocal)
	}
	gw, err := netip.ParseAddrPort(d.relayGate)
	if err != nil || gw.Port() == 0 {
		return c, fmt.Errorf("--relay-gateway %q is not ip:port", d.relayGate)
	}
	if local.Is4() != gw.Addr().Is4() {
		return c, fmt.Errorf("--relay-local %s and --relay-gateway %s are not of one address family", local, gw)
	}
	if d.maxPeers < 1 {
		return c, fmt.Errorf("--relay-max-peers %d: want at least 1", d.maxPeers)
	}
	if d.idleTimeout <= 0 {
		return c, fmt.Errorf("--relay-idle-timeout %v: want a positive duration", d.idleTimeout)
	}
	return derprelay.Config{Region: d.region, Local: local, Gateway: gw, MaxPeers: d.maxPeers, IdleTimeout: d.idleTimeout}, nil
}

func parseFlags(args []string) (*options, error) {
	var o options
	fs := flag.NewFlagSet("exitgw-connector", flag.ContinueOnError)
	host, _ := os.Hostname()
	fs.StringVar(&o.loginServer, "login-server", "", "coordination server URL (Headscale or Tailscale), e.g. https://headscale.example.com (required)")
	fs.StringVar(&o.authKeyFile, "auth-key-file", "", "file holding a pre-auth key (a tagged one, e.g. tag:exit); needed for the first login")
	fs.StringVar(&o.stateDir, "state-dir", "/var/lib/exitgw-connector", "directory for the machine key and login state (kept across restarts)")
	fs.StringVar(&o.wgKeyFile, "wg-key-file", "/etc/exitgw/private.key", "exitgw's WireGuard private key (its --private_key_file): used as the node key")
	fs.StringVar(&o.discoKeyFile, "disco-key-file", "", "exitgw's disco private key (its --disco_private_key_file); its public half is advertised. Empty: none, clients reach the gateway only through DERP")
	fs.StringVar(&o.hostname, "hostname", host, "node name shown in the tailnet")
	fs.Var(&o.endpoints, "endpoint", "the gateway's public WireGuard UDP endpoint ip:port (repeatable)")
	fs.StringVar(&o.location.Country, "location-country", "", "Hostinfo.Location country name, e.g. Canada")
	fs.StringVar(&o.location.CountryCode, "location-country-code", "", "ISO 3166-1 alpha-2 code, e.g. CA")
	fs.StringVar(&o.location.City, "location-city", "", "city name, e.g. Toronto")
	fs.StringVar(&o.location.CityCode, "location-city-code", "", "city code, e.g. YYZ")
	fs.Float64Var(&o.location.Latitude, "location-latitude", 0, "latitude in degrees")
	fs.Float64Var(&o.location.Longitude, "location-longitude", 0, "longitude in degrees")
	fs.IntVar(&o.location.Priority, "location-priority", 0, "priority among exit nodes near each other (higher is preferred; tailscaled ignores one below 0); with --priority-load-curve, the priority with no load")
	fs.StringVar(&o.adminURL, "admin-url", "http://127.0.0.1:9551", "exitgw's admin API (its --admin_listen)")
	fs.StringVar(&o.adminTokenFile, "admin-token-file", "", "exitgw's admin bearer token file (its --admin_token_file) (required)")
	fs.DurationVar(&o.resync, "resync-interval", 10*time.Second, "how often to check that the gateway still holds the updates (a restarted gateway gets them again)")
	loadFlags := loadprio.AddFlags(fs)
	o.dns.RegisterFlags(fs)
	o.derp.register(fs)
	fs.BoolVar(&o.verbose, "verbose", false, "log the control client's detailed messages too")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.loginServer == "" {
		return nil, errors.New("--login-server is required")
	}
	if u, err := url.Parse(o.loginServer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--login-server %q is not an http(s) URL", o.loginServer)
	}
	if o.adminTokenFile == "" {
		return nil, errors.New("--admin-token-file is required (exitgw's --admin_token_file)")
	}
	if o.hostname == "" {
		return nil, errors.New("--hostname is empty and the system has none")
	}
	var err error
	if o.load, err = loadFlags.Config(o.location.Priority); err != nil {
		return nil, err
	}
	if err := o.dns.Validate(); err != nil {
		return nil, err
	}
	if _, err := o.derp.config(); err != nil {
		return nil, err
	}
	return &o, nil
}

func run(ctx context.Context, o *options) error {
	nodeKey, err := login.ReadNodeKey(o.wgKeyFile)
	if err != nil {
		return err
	}
	var disco key.DiscoPublic
	if o.discoKeyFile != "" {
		d, err := login.ReadDiscoKey(o.discoKeyFile)
		if err != nil {
			return err
		}
		disco = d.Public()
	} else {
		log.Printf("no --disco-key-file: clients cannot find a direct path to the gateway")
	}
	var authKey string
	if o.authKeyFile != "" {
		if authKey, err = secretfile.Read(o.authKeyFile, "auth key file"); err != nil {
			return err
		}
	}
	token, err := secretfile.Read(o.adminTokenFile, "admin token file")
	if err != nil {
		return err
	}
	var loc *tailcfg.Location
	if o.location != (tailcfg.Location{}) {
		loc = &o.location
	}
	logf := func(format string, args ...any) {
		if !o.verbose && (strings.Contains(format, "[v1]") || strings.Contains(format, "[v2]")) {
			return
		}
		log.Printf(format, args...)
	}
	var metricsLn net.Listener
	if o.load.MetricsListen != "" {
		if metricsLn, err = o.load.Listen(); err != nil {
			return err
		}
		defer metricsLn.Close()
	}
	var dns *doh.Service // nil: DoH off
	if o.dns.Enabled() {
		dns = doh.Start(ctx, o.dns.Config(log.Printf))
		defer dns.Close()
	} else {
		log.Printf("no --dns-upstream: clients that select this exit node get no DNS from it")
	}
	p4, p6 := o.dns.PeerAPIPorts()
	client, err := login.Start(login.Config{
		ServerURL: o.loginServer, AuthKey: authKey, StateDir: o.stateDir, NodeKey: nodeKey,
		DiscoKey: disco, Hostname: o.hostname, Endpoints: o.endpoints, Location: loc,
		PeerAPI4Port: p4, PeerAPI6Port: p6, HomeDERP: max(o.derp.region, 0), Logf: logf,
	})
	if err != nil {
		return err
	}
	defer client.Close()
	var relay *derprelay.Relay // nil: DERP off
	if o.derp.region != derprelay.RegionOff {
		rc, _ := o.derp.config() // validated in parseFlags
		rc.NodeKey, rc.OnHomeRegion, rc.Logf = nodeKey, client.SetHomeDERP, logf
		relay = derprelay.New(rc)
		rctx, stopRelay := context.WithCancel(ctx)
		relayDone := make(chan struct{})
		go func() { defer close(relayDone); relay.Run(rctx) }()
		defer func() { stopRelay(); <-relayDone }() // before the client closes
	} else {
		log.Printf("--derp-region 0: no home DERP region; clients without a direct path cannot reach the gateway")
	}
	if o.load.Enabled() {
		lp := loadprio.NewFollower(o.load, client.SetLocationPriority, log.Printf)
		go lp.Run(ctx)
		if metricsLn != nil {
			go func() {
				if err := lp.Serve(ctx, metricsLn, dns.WriteMetrics, relay.WriteMetrics); err != nil {
					log.Printf("exitgw-connector: %v", err)
				}
			}()
		}
	}
	log.Printf("exitgw-connector: node %s logging in to %s; updates to %s", nodeKey.Public().ShortString(), o.loginServer, o.adminURL)
	return bridge.Run(ctx, bridge.Config{
		Admin:          adminapi.NewClient(o.adminURL, token),
		LoginServer:    o.loginServer,
		NodeKey:        nodeKey.Public(),
		ResyncInterval: o.resync,
		OnNetMap: func(nm *netmap.NetworkMap) {
			dns.SetNetMap(nm)
			relay.SetNetMap(nm)
		},
		Logf: log.Printf,
	}, client)
}

func main() {
	log.SetFlags(log.LstdFlags | log.LUTC)
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "exitgw-connector: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		log.Printf("exitgw-connector: %v", err)
		stop()
		os.Exit(1)
	}
	log.Printf("exitgw-connector: stopped")
}
