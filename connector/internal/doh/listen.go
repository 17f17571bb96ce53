package doh

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

var errAddrNotAvail = syscall.EADDRNOTAVAIL

// binding is one address the service wants to listen on.
type binding struct {
	ln      net.Listener // nil while not bound
	next    time.Time    // when to try binding again
	delay   time.Duration
	lastErr string // the last bind error logged, so a run of the same one is logged once
}

type serveDone struct {
	ln  net.Listener
	err error
}

// Run listens on the wanted addresses until ctx ends, binding each when it can: an address
// that is not on an interface yet (the gateway's tailnet address before the exception
// interface carries it) is retried with backoff, its error logged once. It returns when ctx
// ends, after closing the listeners and letting requests in progress finish (up to 5 s).
func (s *Service) Run(ctx context.Context) {
	s.logf("doh: resolving through %s; serving /dns-query on port %d of %s", s.cfg.Upstream, s.cfg.Port, s.listenWhat())
	bindings := map[netip.Addr]*binding{}
	done := make(chan serveDone)
	serving := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	summary := time.NewTicker(summaryInterval)
	defer summary.Stop()
	lastCounts := ""
	for {
		s.mu.Lock()
		want := slices.Clone(s.want)
		s.mu.Unlock()
		// Let go of addresses no longer wanted.
		for a, b := range bindings {
			if !slices.Contains(want, a) {
				if b.ln != nil {
					s.logf("doh: no longer serving on %s", b.ln.Addr())
					b.ln.Close()
				}
				delete(bindings, a)
			}
		}
		now := time.Now()
		var next time.Time
		for _, a := range want {
			b := bindings[a]
			if b == nil {
				b = &binding{}
				bindings[a] = b
			}
			if b.ln == nil && !now.Before(b.next) {
				if s.bind(a, b) {
					serving++
					go func(ln net.Listener) { done <- serveDone{ln, s.http.Serve(ln)} }(b.ln)
				}
			}
			if b.ln == nil && (next.IsZero() || b.next.Before(next)) {
				next = b.next
			}
		}
		s.publishBound(bindings)
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			s.http.Shutdown(sctx) // closes the listeners
			cancel()
			for ; serving > 0; serving-- {
				<-done
			}
			s.listening.Store(0)
			return
		case <-s.wake:
		case <-timer.C:
		case d := <-done:
			serving--
			for _, b := range bindings {
				if b.ln == d.ln {
					// Serve failed on a listener still wanted: bind it again after a pause.
					s.logf("doh: serving on %s stopped: %v; binding again", d.ln.Addr(), d.err)
					b.ln, b.delay, b.next = nil, retryMin, time.Now().Add(retryMin)
				}
			}
		case <-summary.C:
			if c := s.counters.Summary(); c != lastCounts {
				s.logf("doh: requests since start: %s", c)
				lastCounts = c
			}
		}
	}
}

func (s *Service) listenWhat() string {
	if len(s.cfg.Listen) > 0 {
		return "the --peerapi-listen addresses"
	}
	return "the node's IPv4 tailnet address (from the netmap)"
}

// bind tries to listen on a; on failure it schedules the next try with backoff.
func (s *Service) bind(a netip.Addr, b *binding) bool {
	ap := netip.AddrPortFrom(a, s.cfg.Port)
	ln, err := net.Listen("tcp", ap.String())
	if err == nil {
		s.logf("doh: serving DNS-over-HTTP on http://%s/dns-query", ln.Addr())
		b.ln, b.delay, b.lastErr = ln, 0, ""
		return true
	}
	b.delay = min(max(2*b.delay, retryMin), retryMax)
	b.next = time.Now().Add(b.delay)
	if msg := err.Error(); msg != b.lastErr {
		hint := ""
		if errors.Is(err, errAddrNotAvail) {
			hint = " (the address is not on any interface yet: the gateway's exception interface must carry it)"
		}
		s.logf("doh: cannot listen on %s yet: %v%s; retrying with backoff up to %v", ap, err, hint, retryMax)
		b.lastErr = msg
	}
	return false
}

// publishBound records the bound addresses for Listening and wakes its waiters.
func (s *Service) publishBound(bindings map[netip.Addr]*binding) {
	var bound []netip.AddrPort
	for _, b := range bindings {
		if b.ln != nil {
			bound = append(bound, b.ln.Addr().(*net.TCPAddr).AddrPort())
		}
	}
	slices.SortFunc(bound, netip.AddrPort.Compare)
	s.listening.Store(int64(len(bound)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !slices.Equal(bound, s.bound) {
		s.bound = bound
		close(s.boundCh)
		s.boundCh = make(chan struct{})
	}
}

// Listening returns the addresses served now and a channel closed when they change.
func (s *Service) Listening() ([]netip.AddrPort, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.bound), s.boundCh
}

var _ http.Handler = (*Service)(nil)
