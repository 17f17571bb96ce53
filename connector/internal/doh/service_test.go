package doh

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"tailscale.com/tailcfg"
	"tailscale.com/types/netmap"
)

// logBuffer collects a service's log lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuffer) contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			return true
		}
	}
	return false
}

// waitListening waits until the service listens on exactly n addresses and returns them.
func waitListening(t *testing.T, s *Service, n int, within time.Duration) []netip.AddrPort {
	t.Helper()
	deadline := time.After(within)
	for {
		bound, changed := s.Listening()
		if len(bound) == n {
			return bound
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("listening on %v after %v, want %d addresses", bound, within, n)
		}
	}
}

// clientFrom is an HTTP client whose connections come from the loopback address src, as a
// tailnet peer's come from its tailnet address.
func clientFrom(src string, h2 bool) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 2 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: !h2}
	if h2 {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

// The netmap of the integration test: alice (127.0.0.2) may use the exit node, bob
// (127.0.0.3) is a peer the filter gives only tailnet destinations; 127.0.0.4 is no peer.
func loopbackNetMap() *netmap.NetworkMap {
	nm := testNetMap([]testPeer{
		{id: 1, addrs: []string{"127.0.0.2/32"}},
		{id: 2, addrs: []string{"127.0.0.3/32"}},
	}, []tailcfg.FilterRule{
		{SrcIPs: []string{"127.0.0.2"}, DstPorts: dsts(autogroupInternet, 0, 65535)},
		{SrcIPs: []string{"127.0.0.3"}, DstPorts: dsts([]string{"100.64.0.0/10"}, 0, 65535)},
	})
	nm.DNS.ExitNodeFilteredSet = []string{".corp.example"}
	return nm
}

type reply struct {
	status int
	ctype  string
	body   []byte
	proto  int
}

func do(t *testing.T, c *http.Client, method, url, ctype string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res.StatusCode, res.Header.Get("Content-Type"), b, res.ProtoMajor}
}

// Real DoH requests over HTTP to the service on loopback, which resolves through a real DNS
// server: every kind of request gets its status, and each outcome is counted.
func TestServiceAnswersAllowedPeersAndRefusesTheRest(t *testing.T) {
	upstream := startDNSServer(t)
	var logs logBuffer
	svc := Start(context.Background(), Config{Upstream: upstream.addr, Timeout: 400 * time.Millisecond,
		Listen: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Logf: logs.logf})
	defer svc.Close()
	bound := waitListening(t, svc, 1, 5*time.Second)
	url := fmt.Sprintf("http://%s/dns-query", bound[0])
	alice, bob, stranger := clientFrom("127.0.0.2", false), clientFrom("127.0.0.3", false), clientFrom("127.0.0.4", false)
	get := func(c *http.Client, msg []byte) reply {
		return do(t, c, "GET", url+"?dns="+base64.RawURLEncoding.EncodeToString(msg), "", nil)
	}
	want := [OutcomeCount]uint64{}
	expect := func(what string, r reply, status int, o Outcome) {
		t.Helper()
		want[o]++
		if r.status != status {
			t.Errorf("%s: status %d (%q), want %d", what, r.status, r.body, status)
		}
		if status == http.StatusOK && r.ctype != MediaType {
			t.Errorf("%s: Content-Type %q", what, r.ctype)
		}
	}
	expectAnswer := func(what string, r reply, id uint16, rcode dnsmessage.RCode, records int) {
		t.Helper()
		expect(what, r, http.StatusOK, OutcomeAnswered)
		if r.status != http.StatusOK {
			return
		}
		h, addrs := parseAnswer(t, r.body)
		if h.ID != id || h.RCode != rcode || len(addrs) != records {
			t.Errorf("%s: ID %d rcode %v, %d A records; want ID %d rcode %v, %d", what, h.ID, h.RCode, len(addrs), id, rcode, records)
		}
	}

	// Before the first netmap nobody can be authorized.
	expect("before the netmap", get(alice, query(t, 0, "www.example.com.")), http.StatusServiceUnavailable, OutcomeNoNetmap)

	svc.SetNetMap(loopbackNetMap())
	expectAnswer("GET", get(alice, query(t, 0, "www.example.com.")), 0, dnsmessage.RCodeSuccess, 1)
	expectAnswer("POST", do(t, alice, "POST", url, MediaType, query(t, 0xbeef, "www.example.com.")), 0xbeef, dnsmessage.RCodeSuccess, 1)
	expectAnswer("NXDOMAIN passes through", get(alice, query(t, 3, "nx.example.com.")), 3, dnsmessage.RCodeNameError, 0)
	expectAnswer("truncated over UDP, whole over TCP", do(t, alice, "POST", url, MediaType, query(t, 4, "big.example.com.")), 4, dnsmessage.RCodeSuccess, 200)
	h2 := do(t, clientFrom("127.0.0.2", true), "POST", url, MediaType, query(t, 5, "www.example.com."))
	expectAnswer("HTTP/2 without TLS", h2, 5, dnsmessage.RCodeSuccess, 1)
	if h2.proto != 2 {
		t.Errorf("HTTP/2 client got HTTP/%d", h2.proto)
	}

	refused := get(alice, query(t, 6, "db.corp.example."))
	expect("a name in ExitNodeFilteredSet", refused, http.StatusOK, OutcomeRefusedName)
	if h, _ := parseAnswer(t, refused.body); h.RCode != dnsmessage.RCodeRefused || h.ID != 6 {
		t.Errorf("filtered name: rcode %v ID %d, want REFUSED, 6", h.RCode, h.ID)
	}

	expect("a peer without internet access", get(bob, query(t, 0, "www.example.com.")), http.StatusForbidden, OutcomeForbidden)
	expect("no peer", do(t, stranger, "POST", url, MediaType, query(t, 0, "www.example.com.")), http.StatusForbidden, OutcomeForbidden)
	expect("a forbidden peer's garbage is still 403", do(t, bob, "PUT", url, "text/plain", []byte("x")), http.StatusForbidden, OutcomeForbidden)

	expect("bad base64", do(t, alice, "GET", url+"?dns=***", "", nil), http.StatusBadRequest, OutcomeMalformed)
	expect("not a DNS query", do(t, alice, "POST", url, MediaType, []byte("hello, world")), http.StatusBadRequest, OutcomeMalformed)
	resp := query(t, 1, "www.example.com.")
	resp[2] |= 0x80
	expect("a response, not a query", do(t, alice, "POST", url, MediaType, resp), http.StatusBadRequest, OutcomeMalformed)
	expect("wrong media type", do(t, alice, "POST", url, "application/json", query(t, 0, "www.example.com.")), http.StatusUnsupportedMediaType, OutcomeMediaType)
	expect("PUT", do(t, alice, "PUT", url, MediaType, query(t, 0, "www.example.com.")), http.StatusMethodNotAllowed, OutcomeMethod)
	expect("too large", do(t, alice, "POST", url, MediaType, make([]byte, MaxMessage+1)), http.StatusRequestEntityTooLarge, OutcomeTooLarge)
	expect("no answer in time", get(alice, query(t, 0, "slow.example.com.")), http.StatusGatewayTimeout, OutcomeUpstreamTimeout)

	if r := do(t, alice, "GET", strings.Replace(url, "/dns-query", "/other", 1), "", nil); r.status != http.StatusNotFound {
		t.Errorf("another path: %d, want 404", r.status)
	}

	for o := range OutcomeCount {
		if got := svc.Counters().Get(o); got != want[o] {
			t.Errorf("counter %v = %d, want %d", o, got, want[o])
		}
	}
	var metrics bytes.Buffer
	svc.WriteMetrics(&metrics)
	for _, line := range []string{
		fmt.Sprintf("exitgw_connector_doh_requests_total{result=\"answered\"} %d\n", want[OutcomeAnswered]),
		fmt.Sprintf("exitgw_connector_doh_requests_total{result=\"forbidden\"} %d\n", want[OutcomeForbidden]),
		"exitgw_connector_doh_upstream_tcp_retries_total 1\n",
		"exitgw_connector_doh_allowed_addresses 1\n",
		"exitgw_connector_doh_listening 1\n",
	} {
		if !strings.Contains(metrics.String(), line) {
			t.Errorf("metrics lack %q:\n%s", line, metrics.String())
		}
	}
	if !logs.contains("1 of 2 peers may use the exit node's DNS") {
		t.Errorf("no policy summary in the log: %q", logs.lines)
	}
}

// An upstream that is not there: 502, logged once as an error.
func TestServiceUpstreamDownIs502(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	var logs logBuffer
	svc := Start(context.Background(), Config{Upstream: dead, Listen: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Logf: logs.logf})
	defer svc.Close()
	svc.SetNetMap(loopbackNetMap())
	url := fmt.Sprintf("http://%s/dns-query", waitListening(t, svc, 1, 5*time.Second)[0])
	for range 3 {
		if r := do(t, clientFrom("127.0.0.2", false), "POST", url, MediaType, query(t, 0, "www.example.com.")); r.status != http.StatusBadGateway {
			t.Errorf("status %d, want 502", r.status)
		}
	}
	if n := svc.Counters().Get(OutcomeUpstreamError); n != 3 {
		t.Errorf("upstream_error = %d, want 3", n)
	}
	if !logs.contains("doh: ERROR: upstream " + dead.String()) {
		t.Errorf("upstream failure not logged: %q", logs.lines)
	}
}

// Without --peerapi-listen the service waits for the netmap's IPv4 tailnet address, keeps
// trying while that address is on no interface (saying so), and moves when it changes.
func TestServiceListensOnTheTailnetAddressOnceItExists(t *testing.T) {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_nonlocal_bind"); err == nil && strings.TrimSpace(string(b)) == "1" {
		t.Skip("net.ipv4.ip_nonlocal_bind=1: any address binds")
	}
	var logs logBuffer
	svc := Start(context.Background(), Config{Upstream: netip.MustParseAddrPort("127.0.0.1:53"), Logf: logs.logf})
	defer svc.Close()
	if bound, _ := svc.Listening(); len(bound) != 0 {
		t.Fatalf("listening on %v before any netmap", bound)
	}
	nm := loopbackNetMap()
	nm.SelfNode = (&tailcfg.Node{ID: 1000, Addresses: []netip.Prefix{
		netip.MustParsePrefix("fd7a:115c:a1e0::64/128"), netip.MustParsePrefix("192.0.2.77/32")}}).View()
	svc.SetNetMap(nm)
	deadline := time.Now().Add(5 * time.Second)
	for !logs.contains("cannot listen on 192.0.2.77:0 yet") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !logs.contains("the gateway's exception interface must carry it") {
		t.Fatalf("no clear log for an address on no interface: %q", logs.lines)
	}
	if bound, _ := svc.Listening(); len(bound) != 0 {
		t.Fatalf("listening on %v", bound)
	}
	nm.SelfNode = (&tailcfg.Node{ID: 1000, Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}).View()
	svc.SetNetMap(nm)
	bound := waitListening(t, svc, 1, 5*time.Second)
	if bound[0].Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("listening on %v, want 127.0.0.1", bound)
	}
}

// A port someone else holds is bound as soon as it is free, with backoff meanwhile.
func TestServiceBindsOnceThePortIsFree(t *testing.T) {
	holder, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := holder.Addr().(*net.TCPAddr).Port
	var logs logBuffer
	svc := Start(context.Background(), Config{Upstream: netip.MustParseAddrPort("127.0.0.1:53"), Port: uint16(port),
		Listen: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Logf: logs.logf})
	defer svc.Close()
	time.Sleep(300 * time.Millisecond)
	if bound, _ := svc.Listening(); len(bound) != 0 {
		t.Fatalf("listening on %v while the port is taken", bound)
	}
	if !logs.contains(fmt.Sprintf("cannot listen on 127.0.0.1:%d yet", port)) {
		t.Errorf("no log for the taken port: %q", logs.lines)
	}
	holder.Close()
	bound := waitListening(t, svc, 1, 5*time.Second)
	if int(bound[0].Port()) != port {
		t.Fatalf("listening on %v, want port %d", bound, port)
	}
}

// Close stops the listeners: nothing answers afterwards.
func TestServiceCloseStopsListening(t *testing.T) {
	svc := Start(context.Background(), Config{Upstream: netip.MustParseAddrPort("127.0.0.1:53"),
		Listen: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	bound := waitListening(t, svc, 1, 5*time.Second)
	svc.Close()
	if c, err := net.DialTimeout("tcp", bound[0].String(), time.Second); err == nil {
		c.Close()
		t.Fatalf("%v still accepts after Close", bound[0])
	}
}

// A client that gives up is counted as canceled; a query beyond MaxInFlight gets 503 at once.
func TestServiceCountsCanceledAndOverloaded(t *testing.T) {
	upstream := startDNSServer(t)
	svc := Start(context.Background(), Config{Upstream: upstream.addr, Timeout: 2 * time.Second, MaxInFlight: 1,
		Listen: []netip.Addr{netip.MustParseAddr("127.0.0.1")}})
	defer svc.Close()
	svc.SetNetMap(loopbackNetMap())
	url := fmt.Sprintf("http://%s/dns-query", waitListening(t, svc, 1, 5*time.Second)[0])

	impatient := clientFrom("127.0.0.2", false)
	impatient.Timeout = 500 * time.Millisecond
	go impatient.Post(url, MediaType, bytes.NewReader(query(t, 0, "slow.example.com."))) // holds the one slot
	deadline := time.Now().Add(2 * time.Second)
	for len(svc.inflight) == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if r := do(t, clientFrom("127.0.0.2", false), "POST", url, MediaType, query(t, 0, "www.example.com.")); r.status != http.StatusServiceUnavailable {
		t.Errorf("second query while one is in flight: %d, want 503", r.status)
	}
	for svc.Counters().Get(OutcomeCanceled) == 0 && time.Now().Before(deadline.Add(2*time.Second)) {
		time.Sleep(10 * time.Millisecond)
	}
	if c, o := svc.Counters().Get(OutcomeCanceled), svc.Counters().Get(OutcomeOverloaded); c != 1 || o != 1 {
		t.Errorf("canceled %d, overloaded %d; want 1 and 1", c, o)
	}
	if r := do(t, clientFrom("127.0.0.2", false), "POST", url, MediaType, query(t, 0, "www.example.com.")); r.status != http.StatusOK {
		t.Errorf("after the slot is free: %d, want 200", r.status)
	}
}
