// dohload sends DNS-over-HTTP (RFC 8484 GET) queries from -c concurrent keep-alive
// connections for -d and prints what was answered: queries per second, latency percentiles
// and failures, as one JSON line. perf/doh_bench.py runs it inside a lab client namespace
// against the exit node's PeerAPI DoH (exitgw's connector, and tailscaled's own for reference).
package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type result struct {
	URL        string  `json:"url"`
	Concurrent int     `json:"concurrent"`
	Seconds    float64 `json:"seconds"`
	Answered   int     `json:"answered"`
	Failed     int     `json:"failed"`
	QPS        float64 `json:"qps"`
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	FirstError string  `json:"first_error,omitempty"`
}

// query is an RFC 1035 query for name's A record with id.
func query(name string, id uint16) []byte {
	q := binary.BigEndian.AppendUint16(nil, id)
	q = append(q, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0) // RD; one question
	for _, l := range strings.Split(name, ".") {
		q = append(q, byte(len(l)))
		q = append(q, l...)
	}
	return append(q, 0, 0, 1, 0, 1)
}

func main() {
	url := flag.String("url", "", "the DoH endpoint, e.g. http://100.64.0.1:5380/dns-query")
	conc := flag.Int("c", 16, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	name := flag.String("name", "bench.lab.test", "the name asked (its A record)")
	flag.Parse()
	if *url == "" || *conc < 1 {
		fmt.Fprintln(os.Stderr, "dohload: -url is required and -c must be at least 1")
		os.Exit(2)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc, DisableCompression: true}
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var mu sync.Mutex
	var lat []time.Duration
	failed := 0
	firstErr := ""
	stop := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []time.Duration
			bad := 0
			errText := ""
			for i := 0; time.Now().Before(stop); i++ {
				q := base64.RawURLEncoding.EncodeToString(query(*name, uint16(w<<10+i)))
				t0 := time.Now()
				resp, err := client.Get(*url + "?dns=" + q)
				if err == nil {
					body, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					switch {
					case rerr != nil:
						err = rerr
					case resp.StatusCode != http.StatusOK:
						err = fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
					case len(body) < 12 || binary.BigEndian.Uint16(body[6:8]) == 0:
						err = fmt.Errorf("an answer without records (%d bytes)", len(body))
					}
				}
				if err != nil {
					bad++
					if errText == "" {
						errText = err.Error()
					}
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			failed += bad
			if firstErr == "" {
				firstErr = errText
			}
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))]) / 1e6
	}
	r := result{URL: *url, Concurrent: *conc, Seconds: secs, Answered: len(lat), Failed: failed,
		QPS: float64(len(lat)) / secs, P50Ms: pct(0.5), P99Ms: pct(0.99), FirstError: firstErr}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	if len(lat) == 0 {
		os.Exit(1)
	}
}
