package doh

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
)

// Outcome is what became of one request to /dns-query; each is counted on its own.
type Outcome int

const (
	OutcomeAnswered        Outcome = iota // 200: the upstream's answer
	OutcomeRefusedName                    // 200: REFUSED, the name is in the netmap's ExitNodeFilteredSet
	OutcomeForbidden                      // 403: the source may not use the exit node (or is no peer)
	OutcomeNoNetmap                       // 503: no netmap yet, nobody can be authorized
	OutcomeMalformed                      // 400: no query, bad base64, or not a valid DNS query
	OutcomeMethod                         // 405: not GET or POST
	OutcomeMediaType                      // 415: a POST whose Content-Type is not application/dns-message
	OutcomeTooLarge                       // 413: a query longer than 65535 bytes
	OutcomeOverloaded                     // 503: too many queries waiting for the upstream
	OutcomeUpstreamError                  // 502: the upstream refused the connection or answered garbage
	OutcomeUpstreamTimeout                // 504: no answer from the upstream in time
	OutcomeCanceled                       // the client went away before the answer
	OutcomeCount
)

var outcomeNames = [OutcomeCount]string{
	"answered", "refused_name", "forbidden", "no_netmap", "malformed", "method_not_allowed",
	"unsupported_media_type", "too_large", "overloaded", "upstream_error", "upstream_timeout",
	"canceled",
}

func (o Outcome) String() string {
	if o < 0 || o >= OutcomeCount {
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
	return outcomeNames[o]
}

// Counters are the DoH service's counts since start; safe for concurrent use.
type Counters struct {
	outcomes [OutcomeCount]atomic.Uint64
}

func (c *Counters) add(o Outcome) { c.outcomes[o].Add(1) }

// Get returns the count of one outcome.
func (c *Counters) Get(o Outcome) uint64 { return c.outcomes[o].Load() }

// Summary is one log line of the non-zero counts (empty when there are none).
func (c *Counters) Summary() string {
	var parts []string
	for o := range OutcomeCount {
		if n := c.Get(o); n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", o, n))
		}
	}
	return strings.Join(parts, " ")
}

// WriteMetrics writes the service's series in Prometheus text format. Nil-safe (DoH off:
// nothing).
func (s *Service) WriteMetrics(w io.Writer) {
	if s == nil {
		return
	}
	fmt.Fprintf(w, "# HELP exitgw_connector_doh_requests_total DNS-over-HTTP requests at /dns-query by outcome.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_doh_requests_total counter\n")
	for o := range OutcomeCount {
		fmt.Fprintf(w, "exitgw_connector_doh_requests_total{result=%q} %d\n", o.String(), s.counters.Get(o))
	}
	fmt.Fprintf(w, "# HELP exitgw_connector_doh_upstream_tcp_retries_total UDP answers truncated and asked again over TCP.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_doh_upstream_tcp_retries_total counter\n")
	fmt.Fprintf(w, "exitgw_connector_doh_upstream_tcp_retries_total %d\n", s.upstream.tcpRetries.Load())
	fmt.Fprintf(w, "# HELP exitgw_connector_doh_upstream_stray_datagrams_total UDP datagrams from the upstream that did not answer the query (ID or question differ): ignored.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_doh_upstream_stray_datagrams_total counter\n")
	fmt.Fprintf(w, "exitgw_connector_doh_upstream_stray_datagrams_total %d\n", s.upstream.strays.Load())
	allowed, listening := 0, 0
	if p := s.policy.Load(); p != nil {
		allowed = len(p.allowed)
	}
	listening = int(s.listening.Load())
	fmt.Fprintf(w, "# HELP exitgw_connector_doh_allowed_addresses Peer tailnet addresses the netmap's filter lets use the exit node's DNS.\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_doh_allowed_addresses gauge\n")
	fmt.Fprintf(w, "exitgw_connector_doh_allowed_addresses %d\n", allowed)
	fmt.Fprintf(w, "# HELP exitgw_connector_doh_listening Addresses the DoH server listens on (0 while the tailnet address is not on an interface yet).\n")
	fmt.Fprintf(w, "# TYPE exitgw_connector_doh_listening gauge\n")
	fmt.Fprintf(w, "exitgw_connector_doh_listening %d\n", listening)
}
