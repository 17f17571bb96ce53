package doh

import (
	"flag"
	"strings"
	"testing"
)

func TestOptionsValidateAndAdvertisedPorts(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		p4, p6  uint16
	}{
		{nil, "", 0, 0}, // DoH off: nothing advertised
		{[]string{"--dns-upstream=192.0.2.53:53"}, "", DefaultPort, 0},
		{[]string{"--dns-upstream=192.0.2.53:53", "--peerapi-port=8053", "--peerapi-listen=100.64.0.7", "--peerapi-listen=fd7a:115c:a1e0::7"}, "", 8053, 8053},
		{[]string{"--dns-upstream=[2001:db8::53]:53", "--peerapi-listen=fd7a:115c:a1e0::7"}, "", 0, DefaultPort},
		{[]string{"--dns-upstream=192.0.2.53"}, "not ip:port", 0, 0},
		{[]string{"--dns-upstream=192.0.2.53:0"}, "not ip:port", 0, 0},
		{[]string{"--dns-upstream=dns.example:53"}, "not ip:port", 0, 0},
		{[]string{"--dns-upstream=192.0.2.53:53", "--peerapi-port=0"}, "--peerapi-port 0", 0, 0},
		{[]string{"--dns-upstream=192.0.2.53:53", "--peerapi-port=70000"}, "--peerapi-port 70000", 0, 0},
		{[]string{"--dns-upstream=192.0.2.53:53", "--dns-timeout=0s"}, "--dns-timeout", 0, 0},
		{[]string{"--peerapi-listen=100.64.0.7:5380"}, "not an IP address", 0, 0},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var o Options
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			o.RegisterFlags(fs)
			err := fs.Parse(tt.args)
			if err == nil {
				err = o.Validate()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr != "":
				return
			}
			if p4, p6 := o.PeerAPIPorts(); p4 != tt.p4 || p6 != tt.p6 {
				t.Errorf("PeerAPIPorts() = %d, %d; want %d, %d", p4, p6, tt.p4, tt.p6)
			}
		})
	}
}
