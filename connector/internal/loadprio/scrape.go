package loadprio

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// BusyMetric is exitgw's per-worker busy ratio (control/gateway_metrics.cc): the share of the
// worker's cycles spent on loops that received packets, over the last 100 ms.
const BusyMetric = "exitgw_worker_busy_ratio"

// Load is what one scrape of the gateway's /metrics says.
type Load struct {
	Busiest float64 // the highest BusyMetric among the workers
	Workers int     // how many workers reported one
	Region  string  // the gateway's region and node labels, for the connector's own series
	Node    string
}

// ParseLoad reads Prometheus text exposition (what exitgw's /metrics serves) and returns the
// busiest worker's ratio. A sample outside [0, 1] or no BusyMetric sample at all is an error.
func ParseLoad(text []byte) (Load, error) {
	var ld Load
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, BusyMetric) {
			continue
		}
		rest := line[len(BusyMetric):]
		if rest == "" || (rest[0] != '{' && rest[0] != ' ' && rest[0] != '\t') {
			continue // a longer name, e.g. exitgw_worker_busy_ratio_something
		}
		labels, value, err := splitSample(rest)
		if err != nil {
			return Load{}, fmt.Errorf("%s sample %q: %w", BusyMetric, line, err)
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
			return Load{}, fmt.Errorf("%s sample %q: the value must be a ratio in [0, 1]", BusyMetric, line)
		}
		if ld.Workers == 0 || v > ld.Busiest {
			ld.Busiest = v
		}
		ld.Workers++
		if r, ok := labels["region"]; ok {
			ld.Region = r
		}
		if n, ok := labels["node"]; ok {
			ld.Node = n
		}
	}
	if err := sc.Err(); err != nil {
		return Load{}, fmt.Errorf("reading the metrics: %w", err)
	}
	if ld.Workers == 0 {
		return Load{}, fmt.Errorf("no %s series (is this exitgw's /metrics?)", BusyMetric)
	}
	return ld, nil
}

// splitSample splits what follows a metric name: an optional {label="value",...} set and the
// value (a timestamp after it is ignored). Label values may hold escaped quotes, commas and
// braces.
func splitSample(s string) (map[string]string, string, error) {
	labels := map[string]string{}
	if strings.HasPrefix(s, "{") {
		i := 1
		for {
			for i < len(s) && (s[i] == ' ' || s[i] == ',') {
				i++
			}
			if i < len(s) && s[i] == '}' {
				i++
				break
			}
			eq := strings.IndexByte(s[i:], '=')
			if eq <= 0 || i+eq+1 >= len(s) || s[i+eq+1] != '"' {
				return nil, "", errors.New("malformed labels")
			}
			name := strings.TrimSpace(s[i : i+eq])
			j := i + eq + 2
			var val strings.Builder
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) {
					j++
					switch s[j] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(s[j])
					}
					continue
				}
				val.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, "", errors.New("unterminated label value")
			}
			labels[name] = val.String()
			i = j + 1
		}
		s = s[i:]
	}
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return nil, "", errors.New("no value")
	}
	return labels, fields[0], nil
}

// Scrape fetches url (exitgw's /metrics) and parses the load from it.
func Scrape(ctx context.Context, client *http.Client, url string) (Load, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Load{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	res, err := client.Do(req)
	if err != nil {
		return Load{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	if err != nil {
		return Load{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	if res.StatusCode != http.StatusOK {
		return Load{}, fmt.Errorf("scraping %s: HTTP %d", url, res.StatusCode)
	}
	ld, err := ParseLoad(body)
	if err != nil {
		return Load{}, fmt.Errorf("scraping %s: %w", url, err)
	}
	return ld, nil
}
