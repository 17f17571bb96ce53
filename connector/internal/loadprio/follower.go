package loadprio

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Flags are the connector's load-priority flags (registered by AddFlags).
type Flags struct {
	curve         string
	band          float64
	interval      time.Duration
	smoothing     time.Duration
	metricsURL    string
	metricsListen string
}

// AddFlags registers the flags on fs.
func AddFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.StringVar(&f.curve, "priority-load-curve", "", "let the advertised --location-priority follow the gateway's load: steps RATIO:DELTA,... over the busiest worker's busy ratio, e.g. \"0.5:-10,0.8:-50\" (from a ratio of 0.5 the priority is the base - 10, from 0.8 the base - 50; never below 0). Empty: the priority stays --location-priority")
	fs.Float64Var(&f.band, "priority-hysteresis", 0.1, "a curve step, once entered, is left only when the busy ratio falls this far below its RATIO")
	fs.DurationVar(&f.interval, "load-poll-interval", 2*time.Second, "how often to read the gateway's busy ratio from --load-metrics-url")
	fs.DurationVar(&f.smoothing, "load-smoothing", 10*time.Second, "time constant of the moving average the busy ratio goes through before the curve (each sample covers only 100 ms and is noisy); 0: each sample as it is")
	fs.StringVar(&f.metricsURL, "load-metrics-url", "http://127.0.0.1:9550/metrics", "exitgw's /metrics (its --metrics_listen), read for exitgw_worker_busy_ratio")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "serve the connector's own Prometheus metrics (busy ratio seen, base and effective priority) on this address, e.g. 127.0.0.1:9552. Empty: off")
	return f
}

// Config is a validated set of flags.
type Config struct {
	Curve         Curve
	Band          float64
	Interval      time.Duration
	Smoothing     time.Duration
	MetricsURL    string
	MetricsListen string
	Base          int // --location-priority: the priority with no load
}

// Enabled reports whether anything needs the gateway's load read: a curve or the metrics
// endpoint.
func (c Config) Enabled() bool { return len(c.Curve) > 0 || c.MetricsListen != "" }

// Config validates the flags; base is --location-priority.
func (f *Flags) Config(base int) (Config, error) {
	c, err := ParseCurve(f.curve)
	if err != nil {
		return Config{}, fmt.Errorf("--priority-load-curve: %w", err)
	}
	if err := c.CheckBand(f.band); err != nil {
		return Config{}, fmt.Errorf("--priority-hysteresis: %w", err)
	}
	if len(c) > 0 && base <= 0 {
		return Config{}, fmt.Errorf("--priority-load-curve needs a --location-priority above 0 to lower (it is %d; tailscaled ignores priorities below 0)", base)
	}
	if f.interval < 100*time.Millisecond {
		return Config{}, errors.New("--load-poll-interval must be at least 100ms (the busy ratio covers 100 ms)")
	}
	if f.smoothing < 0 {
		return Config{}, errors.New("--load-smoothing must not be negative")
	}
	if !strings.HasPrefix(f.metricsURL, "http://") && !strings.HasPrefix(f.metricsURL, "https://") {
		return Config{}, fmt.Errorf("--load-metrics-url %q is not an http(s) URL", f.metricsURL)
	}
	if f.metricsListen != "" {
		if _, _, err := net.SplitHostPort(f.metricsListen); err != nil {
			return Config{}, fmt.Errorf("--metrics-listen %q: want host:port, e.g. 127.0.0.1:9552", f.metricsListen)
		}
	}
	return Config{Curve: c, Band: f.band, Interval: f.interval, Smoothing: f.smoothing, MetricsURL: f.metricsURL,
		MetricsListen: f.metricsListen, Base: base}, nil
}

// Follower reads the load, keeps the curve level and tells Apply each new priority.
type Follower struct {
	cfg   Config
	apply func(priority int)
	logf  func(string, ...any)
	http  *http.Client

	mu        sync.Mutex
	load      Load
	haveLoad  bool
	smoothed  float64 // the moving average of load.Busiest the curve sees
	level     int
	priority  int
	scrapesOK uint64
	scrapeErr uint64
	changes   uint64
	failing   bool
}

// NewFollower starts at level 0 (the base priority, what the first Hostinfo carries); apply
// is called from Run with each changed priority.
func NewFollower(cfg Config, apply func(priority int), logf func(string, ...any)) *Follower {
	return &Follower{cfg: cfg, apply: apply, logf: logf, priority: cfg.Curve.Priority(cfg.Base, 0),
		http: &http.Client{Timeout: 5 * time.Second}}
}

// Smooth is an exponentially weighted moving average with time constant tau: the new average
// after a sample taken dt after the previous one (tau <= 0: the sample itself).
func Smooth(avg, sample float64, dt, tau time.Duration) float64 {
	if tau <= 0 {
		return sample
	}
	alpha := 1 - math.Exp(-dt.Seconds()/tau.Seconds())
	return avg + alpha*(sample-avg)
}

// Observe takes one scrape's load, dt after the previous one, and returns the effective
// priority and whether it changed.
func (f *Follower) Observe(ld Load, dt time.Duration) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.haveLoad {
		f.smoothed = Smooth(f.smoothed, ld.Busiest, dt, f.cfg.Smoothing)
	} else {
		f.smoothed = ld.Busiest
	}
	f.load, f.haveLoad = ld, true
	f.scrapesOK++
	f.failing = false
	f.level = f.cfg.Curve.Level(f.smoothed, f.level, f.cfg.Band)
	p := f.cfg.Curve.Priority(f.cfg.Base, f.level)
	if p == f.priority {
		return p, false
	}
	f.priority = p
	f.changes++
	return p, true
}

// Run polls the gateway until ctx ends. A failed scrape keeps the last level: the gateway
// being briefly unreachable says nothing about its load.
func (f *Follower) Run(ctx context.Context) {
	t := time.NewTicker(f.cfg.Interval)
	defer t.Stop()
	last := time.Now()
	for {
		ld, err := Scrape(ctx, f.http, f.cfg.MetricsURL)
		now := time.Now()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			f.mu.Lock()
			f.scrapeErr++
			first := !f.failing
			f.failing = true
			f.mu.Unlock()
			if first {
				f.logf("loadprio: %v (keeping priority %d; logged once until a scrape works)", err, f.Priority())
			}
		} else {
			old := f.Priority()
			p, changed := f.Observe(ld, now.Sub(last))
			last = now
			if changed {
				f.logf("loadprio: busiest worker %.3f (average %.3f): Location.Priority %d -> %d", ld.Busiest, f.Smoothed(), old, p)
				f.apply(p)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Smoothed is the moving average of the busiest worker's ratio the curve last saw.
func (f *Follower) Smoothed() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.smoothed
}

// Priority is the effective priority last decided.
func (f *Follower) Priority() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.priority
}

// WriteMetrics writes the connector's series in Prometheus text format. They carry the
// gateway's own region and node labels once a scrape has seen them.
func (f *Follower) WriteMetrics(w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	labels := ""
	if f.load.Region != "" || f.load.Node != "" {
		labels = fmt.Sprintf(`region=%s,node=%s`, strconv.Quote(f.load.Region), strconv.Quote(f.load.Node))
	}
	series := func(name, typ, help, extra string, v float64) {
		l := labels
		if extra != "" {
			l = strings.TrimPrefix(l+","+extra, ",")
		}
		if l != "" {
			l = "{" + l + "}"
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, typ, name, l,
			strconv.FormatFloat(v, 'g', -1, 64))
	}
	if f.haveLoad {
		series("exitgw_connector_busy_ratio", "gauge", "The busiest worker's exitgw_worker_busy_ratio at the last scrape of the gateway", "", f.load.Busiest)
		series("exitgw_connector_busy_ratio_average", "gauge", "The moving average (--load-smoothing) of exitgw_connector_busy_ratio: what --priority-load-curve sees", "", f.smoothed)
	}
	series("exitgw_connector_location_priority", "gauge", "Location.Priority the connector advertises (the base, lowered by --priority-load-curve)", "", float64(f.priority))
	series("exitgw_connector_location_priority_base", "gauge", "--location-priority: the priority with no load", "", float64(f.cfg.Base))
	series("exitgw_connector_load_level", "gauge", "Steps of --priority-load-curve in effect (0: none)", "", float64(f.level))
	series("exitgw_connector_location_priority_changes_total", "counter", "Times the effective priority changed (each one a Hostinfo update to the coordination server)", "", float64(f.changes))
	fmt.Fprintf(&b, "# HELP exitgw_connector_load_scrapes_total Scrapes of the gateway's /metrics, by result\n# TYPE exitgw_connector_load_scrapes_total counter\n")
	for _, r := range []struct {
		result string
		n      uint64
	}{{"ok", f.scrapesOK}, {"error", f.scrapeErr}} {
		l := strings.TrimPrefix(labels+`,result="`+r.result+`"`, ",")
		fmt.Fprintf(&b, "exitgw_connector_load_scrapes_total{%s} %d\n", l, r.n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Listen opens cfg.MetricsListen (before the connector logs in, so a taken port fails the
// start-up).
func (c Config) Listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", c.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	return ln, nil
}

// Serve answers GET (and HEAD) /metrics on ln until ctx ends: the follower's series, then
// those of each of `more` (the DoH service's).
func (f *Follower) Serve(ctx context.Context, ln net.Listener, more ...func(io.Writer)) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_ = f.WriteMetrics(w)
		for _, write := range more {
			write(w)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
