package doh

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"tailscale.com/types/logger"
)

// DefaultPort is the PeerAPI port advertised and served when --peerapi-port is not given.
// tailscaled picks a port from a hash of its address; a fixed one is easier to firewall and
// to reach through the gateway's exception interface. Clients take it from Hostinfo.Services.
const DefaultPort = 5380

// Options are the service's command-line flags.
type Options struct {
	Upstream string
	Timeout  time.Duration
	Port     uint
	Listen   addrList
}

type addrList []netip.Addr

func (l *addrList) String() string {
	var s []string
	for _, a := range *l {
		s = append(s, a.String())
	}
	return strings.Join(s, ",")
}

func (l *addrList) Set(v string) error {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return fmt.Errorf("%q is not an IP address (e.g. 100.64.0.7); the port is --peerapi-port", v)
	}
	*l = append(*l, a.Unmap())
	return nil
}

// RegisterFlags adds the DoH flags to fs.
func (o *Options) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Upstream, "dns-upstream", "", "the resolver ip:port that answers the DNS of clients using this exit node (DNS-over-HTTP at http://<tailnet IP>:<--peerapi-port>/dns-query); empty: no DNS for them, and no PeerAPI advertised")
	fs.DurationVar(&o.Timeout, "dns-timeout", 5*time.Second, "how long one client query may wait for the upstream (UDP retransmissions and the TCP retry included); then 504")
	fs.UintVar(&o.Port, "peerapi-port", DefaultPort, "TCP port of the PeerAPI DNS-over-HTTP server, advertised in Hostinfo.Services (peerapi4/peerapi6)")
	fs.Var(&o.Listen, "peerapi-listen", "IP address for the DNS-over-HTTP server (repeatable; an IPv6 one also advertises peerapi6); default: the node's IPv4 tailnet address from the netmap, bound once it is on an interface")
}

// Enabled reports whether DoH is on (--dns-upstream given).
func (o *Options) Enabled() bool { return o.Upstream != "" }

// Validate checks the flags once parsed.
func (o *Options) Validate() error {
	if !o.Enabled() {
		return nil
	}
	ap, err := netip.ParseAddrPort(o.Upstream)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("--dns-upstream %q is not ip:port (e.g. 192.0.2.53:53 or [2001:db8::53]:53)", o.Upstream)
	}
	if o.Port < 1 || o.Port > 65535 {
		return fmt.Errorf("--peerapi-port %d is not a port 1-65535", o.Port)
	}
	if o.Timeout <= 0 {
		return errors.New("--dns-timeout must be positive")
	}
	return nil
}

// PeerAPIPorts are the ports to advertise in Hostinfo.Services as peerapi4 and peerapi6 (zero:
// not offered): IPv4 always (the default listen address is the IPv4 tailnet address), IPv6
// only when an IPv6 --peerapi-listen address is given.
func (o *Options) PeerAPIPorts() (p4, p6 uint16) {
	if !o.Enabled() {
		return 0, 0
	}
	if len(o.Listen) == 0 {
		return uint16(o.Port), 0
	}
	for _, a := range o.Listen {
		if a.Is4() {
			p4 = uint16(o.Port)
		} else {
			p6 = uint16(o.Port)
		}
	}
	return p4, p6
}

// Config is the service's configuration from the flags (Validate first).
func (o *Options) Config(logf logger.Logf) Config {
	return Config{
		Upstream: netip.MustParseAddrPort(o.Upstream),
		Timeout:  o.Timeout,
		Port:     uint16(o.Port),
		Listen:   append([]netip.Addr(nil), o.Listen...),
		Logf:     logf,
	}
}
