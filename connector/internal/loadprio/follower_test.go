package loadprio

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFlagsConfigValidates(t *testing.T) {
	for _, tc := range []struct {
		args []string
		base int
		why  string // "" = valid
	}{
		{nil, 0, ""},
		{[]string{"--priority-load-curve", "0.5:-10,0.8:-50"}, 100, ""},
		{[]string{"--priority-load-curve", "0.5:-10"}, 0, "above 0"},
		{[]string{"--priority-load-curve", "0.5:10"}, 100, "<= 0"},
		{[]string{"--priority-load-curve", "0.3:-10", "--priority-hysteresis", "0.3"}, 100, "could never be left"},
		{[]string{"--load-poll-interval", "10ms"}, 0, "at least 100ms"},
		{[]string{"--load-smoothing", "-1s"}, 0, "must not be negative"},
		{[]string{"--load-metrics-url", "127.0.0.1:9550/metrics"}, 0, "not an http(s) URL"},
		{[]string{"--metrics-listen", "9552"}, 0, "want host:port"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f := AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		_, err := f.Config(tc.base)
		if tc.why == "" && err != nil || tc.why != "" && (err == nil || !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("%v base %d: error %v, want %q", tc.args, tc.base, err, tc.why)
		}
	}
}

func TestObserveReportsOnlyChangesOfTheEffectivePriority(t *testing.T) {
	cfg := Config{Curve: Curve{{0.5, -10}, {0.8, -50}}, Band: 0.1, Base: 100}
	f := NewFollower(cfg, nil, t.Logf)
	type obs struct {
		r       float64
		p       int
		changed bool
	}
	for i, o := range []obs{
		{0.1, 100, false}, {0.55, 90, true}, {0.45, 90, false}, {0.85, 50, true},
		{0.75, 50, false}, {0.6, 90, true}, {0.3, 100, true}, {0.3, 100, false},
	} {
		p, changed := f.Observe(Load{Busiest: o.r, Workers: 1}, time.Second)
		if p != o.p || changed != o.changed {
			t.Errorf("step %d (ratio %g): priority %d changed %v, want %d %v", i, o.r, p, changed, o.p, o.changed)
		}
	}
}

func TestSmoothIsAnExponentialAverageWithTheGivenTimeConstant(t *testing.T) {
	for _, tc := range []struct {
		avg, sample float64
		dt, tau     time.Duration
		want        float64
	}{
		{0.2, 0.8, time.Second, 0, 0.8},                              // no smoothing
		{0.2, 0.8, 0, 10 * time.Second, 0.2},                         // no time passed
		{0, 1, 10 * time.Second, 10 * time.Second, 1 - math.Exp(-1)}, // one time constant: 63%
		{1, 0, 20 * time.Second, 10 * time.Second, math.Exp(-2)},
		{0.5, 0.5, time.Second, 10 * time.Second, 0.5},
	} {
		if got := Smooth(tc.avg, tc.sample, tc.dt, tc.tau); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("Smooth(%g, %g, %v, %v) = %g, want %g", tc.avg, tc.sample, tc.dt, tc.tau, got, tc.want)
		}
	}
}

// With smoothing a one-sample spike does not move the priority; sustained load does.
func TestSmoothedLoadIgnoresASpikeAndFollowsSustainedLoad(t *testing.T) {
	cfg := Config{Curve: Curve{{0.2, -50}}, Band: 0.1, Base: 100, Smoothing: 10 * time.Second}
	f := NewFollower(cfg, nil, t.Logf)
	f.Observe(Load{Busiest: 0}, time.Second)
	if p, changed := f.Observe(Load{Busiest: 1}, time.Second); changed || p != 100 {
		t.Fatalf("a 1 s spike to 1.0 moved the priority to %d", p)
	}
	var when int
	for i := 1; i <= 30; i++ {
		if _, changed := f.Observe(Load{Busiest: 0.5}, time.Second); changed {
			when = i
			break
		}
	}
	// The average of 0.5 reaches 0.2 after about tau*ln(0.5/0.3), 5 s (the spike helps).
	if when == 0 || when > 6 {
		t.Errorf("sustained 0.5 lowered the priority after %d s, want within 6 s", when)
	}
	if f.Priority() != 50 {
		t.Errorf("priority %d, want 50", f.Priority())
	}
}

// Run against an HTTP server standing in for exitgw's /metrics: the priority follows the
// served ratio, apply sees each change once, and a failing scrape keeps the last priority.
func TestRunFollowsTheServedBusyRatio(t *testing.T) {
	var ratio atomic.Value
	ratio.Store("0.1")
	var down atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "gone", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "exitgw_worker_busy_ratio{region=\"r1\",node=\"gw1\",worker=\"0\"} %s\n", ratio.Load())
	}))
	defer srv.Close()
	var mu sync.Mutex
	var applied []int
	cfg := Config{Curve: Curve{{0.5, -40}}, Band: 0.1, Base: 100, Interval: 100 * time.Millisecond, MetricsURL: srv.URL}
	f := NewFollower(cfg, func(p int) { mu.Lock(); applied = append(applied, p); mu.Unlock() }, t.Logf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitPriority := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for f.Priority() != want {
			if time.Now().After(deadline) {
				t.Fatalf("priority %d, want %d", f.Priority(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	waitPriority(100)
	ratio.Store("0.7")
	waitPriority(60)
	down.Store(true)
	time.Sleep(400 * time.Millisecond)
	waitPriority(60)
	down.Store(false)
	ratio.Store("0.45") // inside the band: held
	time.Sleep(400 * time.Millisecond)
	waitPriority(60)
	ratio.Store("0.2")
	waitPriority(100)
	mu.Lock()
	got := fmt.Sprint(applied)
	mu.Unlock()
	if got != "[60 100]" {
		t.Errorf("apply saw %s, want [60 100]", got)
	}
	var b strings.Builder
	if err := f.WriteMetrics(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`exitgw_connector_busy_ratio{region="r1",node="gw1"} 0.2`,
		`exitgw_connector_busy_ratio_average{region="r1",node="gw1"} 0.2`,
		`exitgw_connector_location_priority{region="r1",node="gw1"} 100`,
		`exitgw_connector_location_priority_base{region="r1",node="gw1"} 100`,
		`exitgw_connector_load_level{region="r1",node="gw1"} 0`,
		`exitgw_connector_location_priority_changes_total{region="r1",node="gw1"} 2`,
		`exitgw_connector_load_scrapes_total{region="r1",node="gw1",result="error"} `,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), `result="error"} 0`) {
		t.Errorf("failed scrapes not counted:\n%s", b.String())
	}
}

func TestServeAnswersMetrics(t *testing.T) {
	cfg := Config{Base: 7, MetricsListen: "127.0.0.1:0"}
	f := NewFollower(cfg, nil, t.Logf)
	ln, err := cfg.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Serve(ctx, ln) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "exitgw_connector_location_priority 7\n") {
		t.Errorf("metrics:\n%s", body)
	}
	if strings.Contains(string(body), "exitgw_connector_busy_ratio") {
		t.Errorf("a busy ratio before any scrape:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
