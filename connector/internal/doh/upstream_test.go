package doh

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func exchange(t *testing.T, u *Upstream, timeout time.Duration, id uint16, name string) ([]byte, error) {
	t.Helper()
	msg := query(t, id, name)
	q, err := ParseQuery(msg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return u.Exchange(ctx, msg, q)
}

// The upstream sees a random message ID, never the client's, and the client gets its own
// back: a guessable ID would let anyone who sees the client's queries forge answers.
func TestUpstreamUsesARandomIDAndRestoresTheClients(t *testing.T) {
	srv := startDNSServer(t)
	u := &Upstream{Addr: srv.addr}
	for _, id := range []uint16{0, 0, 0, 4242} {
		answer, err := exchange(t, u, 2*time.Second, id, "www.example.com.")
		if err != nil {
			t.Fatal(err)
		}
		h, addrs := parseAnswer(t, answer)
		if h.ID != id || !h.Response || len(addrs) != 1 || addrs[0] != netip.MustParseAddr("192.0.2.1") {
			t.Fatalf("answer ID %d response %v A %v; want ID %d, one A 192.0.2.1", h.ID, h.Response, addrs, id)
		}
	}
	srv.mu.Lock()
	ids := srv.ids
	srv.mu.Unlock()
	if ids[0] == 0 && ids[1] == 0 && ids[2] == 0 {
		t.Errorf("the upstream saw IDs %v: the client's ID 0 went out unchanged", ids)
	}
}

// A truncated UDP answer is asked again over TCP, and the whole answer comes back.
func TestUpstreamRetriesTruncatedAnswersOverTCP(t *testing.T) {
	srv := startDNSServer(t)
	u := &Upstream{Addr: srv.addr}
	answer, err := exchange(t, u, 2*time.Second, 7, "big.example.com.")
	if err != nil {
		t.Fatal(err)
	}
	h, addrs := parseAnswer(t, answer)
	if h.Truncated || len(addrs) != 200 || h.ID != 7 {
		t.Fatalf("answer TC=%v with %d A records, ID %d; want the full TCP answer (200) with ID 7", h.Truncated, len(addrs), h.ID)
	}
	if udp, tcp := srv.counts(); udp != 1 || tcp != 1 {
		t.Errorf("the server saw %d UDP and %d TCP queries, want 1 and 1", udp, tcp)
	}
	if n := u.tcpRetries.Load(); n != 1 {
		t.Errorf("tcpRetries = %d, want 1", n)
	}
}

// A datagram that is not the answer (another ID) is ignored and counted; the real answer
// that follows is taken.
func TestUpstreamIgnoresDatagramsThatAreNotTheAnswer(t *testing.T) {
	srv := startDNSServer(t)
	u := &Upstream{Addr: srv.addr}
	answer, err := exchange(t, u, 2*time.Second, 9, "stray.example.com.")
	if err != nil {
		t.Fatal(err)
	}
	if h, addrs := parseAnswer(t, answer); h.ID != 9 || len(addrs) != 1 {
		t.Fatalf("answer ID %d with %v", h.ID, addrs)
	}
	if n := u.strays.Load(); n != 1 {
		t.Errorf("strays = %d, want 1", n)
	}
}

func TestAnswersChecksIDAndQuestion(t *testing.T) {
	q, err := ParseQuery(query(t, 5, "a.example."))
	if err != nil {
		t.Fatal(err)
	}
	resp := func(id uint16, name string, response bool) []byte {
		m := query(t, id, name)
		if response {
			m[2] |= 0x80
		}
		return m
	}
	tests := []struct {
		name string
		msg  []byte
		ok   bool
	}{
		{"the answer", resp(5, "a.example.", true), true},
		{"the answer in other case", resp(5, "A.EXAMPLE.", true), true},
		{"another ID", resp(6, "a.example.", true), false},
		{"a query, not a response", resp(5, "a.example.", false), false},
		{"another name", resp(5, "b.example.", true), false},
		{"header only (FORMERR without question)", []byte{0, 5, 0x80, 1, 0, 0, 0, 0, 0, 0, 0, 0}, true},
		{"garbage", []byte{1, 2, 3}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := answers(tt.msg, 5, q.Question)
			if (err == nil) != tt.ok {
				t.Errorf("answers() error %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// No answer within the deadline: the exchange ends with DeadlineExceeded, having sent the
// query again meanwhile (UDP loses packets).
func TestUpstreamTimesOutAndRetransmits(t *testing.T) {
	srv := startDNSServer(t)
	u := &Upstream{Addr: srv.addr, Retransmit: 100 * time.Millisecond}
	start := time.Now()
	_, err := exchange(t, u, 550*time.Millisecond, 1, "slow.example.com.")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d < 500*time.Millisecond || d > 2*time.Second {
		t.Errorf("gave up after %v, want about 550ms", d)
	}
	if udp, _ := srv.counts(); udp < 4 {
		t.Errorf("the query went out %d times in 550ms with a 100ms retransmit, want at least 4", udp)
	}
}

// Cancelling the context (the client went away) ends the exchange at once.
func TestUpstreamStopsWhenCancelled(t *testing.T) {
	srv := startDNSServer(t)
	u := &Upstream{Addr: srv.addr}
	msg := query(t, 1, "slow.example.com.")
	q, _ := ParseQuery(msg)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err := u.Exchange(ctx, msg, q)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v to notice the cancel", d)
	}
}

// An upstream that is not there fails fast (ICMP port unreachable on the connected socket),
// not after the timeout.
func TestUpstreamRefusedFailsFast(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close() // nothing listens there now
	u := &Upstream{Addr: addr}
	start := time.Now()
	_, err = exchange(t, u, 5*time.Second, 1, "www.example.com.")
	if err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want a refusal", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}
