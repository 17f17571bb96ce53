package loadprio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// What exitgw's /metrics serves (prometheus-cpp text format), trimmed.
const gatewayMetrics = `# HELP exitgw_worker_busy_ratio Share of a worker's cycles spent on loops that received packets, over the last 100 ms
# TYPE exitgw_worker_busy_ratio gauge
exitgw_worker_busy_ratio{region="eu \"west\", {1}",node="gw-a",worker="0",lcore="1"} 0.125
exitgw_worker_busy_ratio{region="eu \"west\", {1}",node="gw-a",worker="1",lcore="2"} 0.625
exitgw_worker_busy_ratio_other{worker="0"} 0.99
# HELP exitgw_worker_busy_cycles_total TSC cycles in loops that received packets
# TYPE exitgw_worker_busy_cycles_total counter
exitgw_worker_busy_cycles_total{region="eu",node="gw-a",worker="0",lcore="1"} 123456
`

func TestParseLoadTakesTheBusiestWorkerAndTheGatewayLabels(t *testing.T) {
	ld, err := ParseLoad([]byte(gatewayMetrics))
	if err != nil {
		t.Fatal(err)
	}
	want := Load{Busiest: 0.625, Workers: 2, Region: `eu "west", {1}`, Node: "gw-a"}
	if ld != want {
		t.Errorf("ParseLoad = %+v, want %+v", ld, want)
	}
}

func TestParseLoadAcceptsUnlabelledSamplesAndTimestamps(t *testing.T) {
	ld, err := ParseLoad([]byte("exitgw_worker_busy_ratio 0.5 1700000000000\nexitgw_worker_busy_ratio{} 0\n"))
	if err != nil || ld.Busiest != 0.5 || ld.Workers != 2 {
		t.Errorf("ParseLoad = %+v, %v; want busiest 0.5 of 2", ld, err)
	}
}

func TestParseLoadRejectsWhatIsNotAGatewaysBusyRatio(t *testing.T) {
	for _, tc := range []struct{ name, text, why string }{
		{"no series", "exitgw_workers 2\n", "no exitgw_worker_busy_ratio"},
		{"empty", "", "no exitgw_worker_busy_ratio"},
		{"above 1", `exitgw_worker_busy_ratio{worker="0"} 1.5` + "\n", "ratio in [0, 1]"},
		{"negative", `exitgw_worker_busy_ratio{worker="0"} -0.1` + "\n", "ratio in [0, 1]"},
		{"NaN", `exitgw_worker_busy_ratio{worker="0"} NaN` + "\n", "ratio in [0, 1]"},
		{"no value", `exitgw_worker_busy_ratio{worker="0"}` + "\n", "no value"},
		{"unterminated", `exitgw_worker_busy_ratio{worker="0} 0.5` + "\n", "unterminated"},
		{"malformed", `exitgw_worker_busy_ratio{worker} 0.5` + "\n", "malformed"},
	} {
		_, err := ParseLoad([]byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.why)
		}
	}
}

func TestScrapeReadsOverHTTPAndReportsStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(gatewayMetrics))
	}))
	defer srv.Close()
	ld, err := Scrape(context.Background(), srv.Client(), srv.URL+"/metrics")
	if err != nil || ld.Busiest != 0.625 {
		t.Errorf("Scrape = %+v, %v", ld, err)
	}
	if _, err := Scrape(context.Background(), srv.Client(), srv.URL+"/nothing"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Errorf("Scrape of a 404: %v", err)
	}
}
