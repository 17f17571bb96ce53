package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"exitgw/connector/internal/derprelay"
)

var required = []string{"--login-server", "https://hs.example", "--admin-token-file", "/dev/null"}

// The DERP fallback is on by default (auto region), relaying from 169.254.77.1 to exitgw's
// 169.254.77.2:51820 with at most 4096 peers and a 5 minute idle timeout.
func TestDERPFlagsDefaultToAutoRegionAndTheExceptionInterface(t *testing.T) {
	o, err := parseFlags(required)
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.derp.config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Region != derprelay.RegionAuto || c.Local != netip.MustParseAddr("169.254.77.1") ||
		c.Gateway != netip.MustParseAddrPort("169.254.77.2:51820") || c.MaxPeers != 4096 || c.IdleTimeout != 5*time.Minute {
		t.Errorf("defaults %+v", c)
	}
}

func TestDERPFlagsRefuseBadValues(t *testing.T) {
	for _, bad := range [][]string{
		{"--derp-region", "-2"},
		{"--relay-local", "nowhere"},
		{"--relay-gateway", "169.254.77.2"},
		{"--relay-gateway", "169.254.77.2:0"},
		{"--relay-local", "fd00::1"},
		{"--relay-max-peers", "0"},
		{"--relay-idle-timeout", "0s"},
	} {
		if _, err := parseFlags(append(append([]string{}, required...), bad...)); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("%v: error %v, want one naming %s", bad, err, bad[0])
		}
	}
	o, err := parseFlags(append(append([]string{}, required...), "--derp-region", "0"))
	if err != nil || o.derp.region != derprelay.RegionOff {
		t.Errorf("--derp-region 0: %v, %+v", err, o)
	}
}
