// Package doh is the exit node's DNS for its clients: the PeerAPI DNS-over-HTTP endpoint
// (RFC 8484, GET ?dns= and POST application/dns-message at /dns-query) that tailscaled clients
// use as their resolver once they select this node as their exit node. Queries are validated,
// answered only for peers the netmap's packet filter lets use the exit node (tailscaled's own
// rule), and forwarded to the operator's resolver over UDP, then TCP when truncated.
package doh

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/types/logger"
	"tailscale.com/types/netmap"
)

// Config is how the service resolves and where it listens.
type Config struct {
	Upstream netip.AddrPort // the operator's resolver
	Timeout  time.Duration  // per query, UDP retransmissions and TCP included (0: 5 s)
	Port     uint16         // the PeerAPI port (0 only in tests: an ephemeral port)
	// Listen are the addresses to serve on; empty: the self node's IPv4 tailnet address from
	// the netmap, once one arrives.
	Listen []netip.Addr
	// MaxInFlight bounds the queries waiting for the upstream at once; more get 503 (0: 512).
	MaxInFlight int
	Logf        logger.Logf
}

// Listen retry backoff while an address cannot be bound (not on an interface yet).
const (
	retryMin = time.Second
	retryMax = 30 * time.Second
)

// summaryInterval is how often the counts are logged (when they changed).
const summaryInterval = time.Minute

// Service is the DoH endpoint: its policy (from the last netmap), the upstream, the counters
// and the listeners. SetNetMap and the HTTP handlers may be called from any goroutine.
type Service struct {
	cfg      Config
	logf     logger.Logf
	limited  logger.Logf // rate-limited, for per-request messages
	upstream *Upstream
	counters Counters
	policy   atomic.Pointer[Policy]
	inflight chan struct{}

	listening atomic.Int64
	mu        sync.Mutex
	want      []netip.Addr       // addresses to listen on (fixed, or from the netmap)
	bound     []netip.AddrPort   // what is listening now
	summary   string             // the last policy summary logged
	upstreamE string             // the last upstream error logged ("" while it answers)
	wake      chan struct{}      // want changed
	boundCh   chan struct{}      // closed and replaced when bound changes
	cancel    context.CancelFunc // stops Run
	done      chan struct{}      // closed when Run returned
	http      *http.Server       // serves every DoH listener
}

// New makes the service; Run (or Start) serves it.
func New(cfg Config) *Service {
	if cfg.Logf == nil {
		cfg.Logf = logger.Discard
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 512
	}
	s := &Service{
		cfg:      cfg,
		logf:     cfg.Logf,
		limited:  logger.RateLimitedFn(cfg.Logf, time.Minute, 3, 64),
		upstream: &Upstream{Addr: cfg.Upstream},
		inflight: make(chan struct{}, cfg.MaxInFlight),
		want:     append([]netip.Addr(nil), cfg.Listen...),
		wake:     make(chan struct{}, 1),
		boundCh:  make(chan struct{}),
	}
	mux := http.NewServeMux()
	mux.Handle("/dns-query", s)
	s.http = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.Timeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    128 << 10, // a GET's ?dns= of a 65535-byte query is 87380 bytes
		Protocols:         new(http.Protocols),
	}
	// Like tailscaled's PeerAPI: HTTP/1.1, and HTTP/2 without TLS (the tunnel encrypts).
	s.http.Protocols.SetHTTP1(true)
	s.http.Protocols.SetUnencryptedHTTP2(true)
	return s
}

// Start runs the service until Close.
func Start(ctx context.Context, cfg Config) *Service {
	s := New(cfg)
	ctx, s.cancel = context.WithCancel(ctx)
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		s.Run(ctx)
	}()
	return s
}

// Close stops a started service and waits for its listeners to close. Nil-safe.
func (s *Service) Close() {
	if s == nil || s.cancel == nil {
		return
	}
	s.cancel()
	<-s.done
}

// Counters are the service's counts.
func (s *Service) Counters() *Counters { return &s.counters }

// SetNetMap takes a new netmap: the policy changes at once; without fixed listen addresses,
// the service moves to the self node's IPv4 tailnet address. Nil-safe (DoH off).
func (s *Service) SetNetMap(nm *netmap.NetworkMap) {
	if s == nil || nm == nil {
		return
	}
	p := NewPolicy(nm)
	s.policy.Store(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if sum := p.Summary(); sum != s.summary {
		s.logf("doh: %s", sum)
		s.summary = sum
	}
	if len(s.cfg.Listen) > 0 {
		return
	}
	var want []netip.Addr
	for _, a := range nm.GetAddresses().All() {
		if a.IsSingleIP() && a.Addr().Is4() {
			want = []netip.Addr{a.Addr()}
			break
		}
	}
	if !equalAddrs(want, s.want) {
		s.want = want
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func equalAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// ServeHTTP answers one request to /dns-query and counts its outcome.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.counters.add(s.serve(w, r))
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) Outcome {
	pol := s.policy.Load()
	if pol == nil {
		http.Error(w, "no netmap yet: try again shortly", http.StatusServiceUnavailable)
		return OutcomeNoNetmap
	}
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	node, ok := pol.Allows(src.Addr())
	if err != nil || !ok {
		s.limited("doh: refused %s: not a peer the packet filter lets use this exit node", r.RemoteAddr)
		http.Error(w, "DNS access denied: the tailnet's policy does not let this node use the exit node", http.StatusForbidden)
		return OutcomeForbidden
	}
	msg, rerr := readQuery(w, r)
	if rerr != nil {
		s.limited("doh: %s (%s): %s", node, src.Addr(), rerr.msg)
		http.Error(w, rerr.msg, rerr.status)
		return rerr.outcome
	}
	q, err := ParseQuery(msg)
	if err != nil {
		s.limited("doh: %s (%s): not a valid DNS query: %v", node, src.Addr(), err)
		http.Error(w, "not a valid DNS query: "+err.Error(), http.StatusBadRequest)
		return OutcomeMalformed
	}
	if !pol.ServesName(q.Question.Name.String()) {
		answer, err := refusedAnswer(msg, q)
		if err != nil { // cannot happen for a query ParseQuery took
			http.Error(w, "building the REFUSED answer: "+err.Error(), http.StatusInternalServerError)
			return OutcomeMalformed
		}
		writeAnswer(w, answer)
		return OutcomeRefusedName
	}
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		s.limited("doh: %d queries already wait for the upstream: answering 503", s.cfg.MaxInFlight)
		http.Error(w, "too many queries in flight", http.StatusServiceUnavailable)
		return OutcomeOverloaded
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	defer cancel()
	answer, err := s.upstream.Exchange(ctx, msg, q)
	if err != nil {
		if r.Context().Err() != nil {
			return OutcomeCanceled
		}
		s.upstreamFailed(err)
		if errors.Is(err, context.DeadlineExceeded) {
			http.Error(w, "the upstream resolver did not answer in time", http.StatusGatewayTimeout)
			return OutcomeUpstreamTimeout
		}
		http.Error(w, "the upstream resolver failed", http.StatusBadGateway)
		return OutcomeUpstreamError
	}
	s.upstreamAnswered()
	writeAnswer(w, answer)
	return OutcomeAnswered
}

func writeAnswer(w http.ResponseWriter, answer []byte) {
	w.Header().Set("Content-Type", MediaType)
	w.Header().Set("Content-Length", strconv.Itoa(len(answer)))
	w.Write(answer)
}

// upstreamFailed logs the first error of a run of upstream failures, and a few a minute after.
func (s *Service) upstreamFailed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upstreamE == "" {
		s.logf("doh: ERROR: %v (clients get 502/504, which tailscaled turns into SERVFAIL)", err)
	} else {
		s.limited("doh: the upstream still fails: %v", err)
	}
	s.upstreamE = err.Error()
}

func (s *Service) upstreamAnswered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upstreamE != "" {
		s.logf("doh: the upstream resolver %s answers again", s.cfg.Upstream)
		s.upstreamE = ""
	}
}
