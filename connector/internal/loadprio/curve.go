// Package loadprio lets the gateway's advertised Location.Priority follow its load: the
// busiest worker's busy ratio (from exitgw's /metrics) goes through a step curve with
// hysteresis, and a changed priority is sent to the coordination server in Hostinfo, so
// `tailscale exit-node suggest` names a loaded gateway less often.
//
// Why Location.Priority: tailscaled v1.102 (ipn/ipnlocal suggestExitNodeUsingDERP) picks among
// candidates with no home DERP (exitgw speaks no DERP, so it has none) by the distance of
// their Hostinfo.Location from the client's home DERP region, keeps those within 100 km of
// the nearest, and among them the highest Location.Priority (pickWeighted). Candidates with a
// negative priority are left out of that choice, so the priority never goes below 0.
package loadprio

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Step lowers the priority by -Delta once the busy ratio reaches Ratio.
type Step struct {
	Ratio float64 // in (0, 1]
	Delta int     // <= 0: what the step adds to the base priority
}

// Curve is a step function of the busy ratio: Ratio strictly increasing, Delta never rising.
// Level k (1..len) means steps[k-1] is in effect; level 0 means none (the base priority).
type Curve []Step

// ParseCurve reads "RATIO:DELTA,RATIO:DELTA,..." (e.g. "0.5:-10,0.8:-50": from a busy ratio
// of 0.5 the priority is base-10, from 0.8 base-50). Empty means no curve.
func ParseCurve(s string) (Curve, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var c Curve
	for _, item := range strings.Split(s, ",") {
		r, d, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return nil, fmt.Errorf("curve step %q: write RATIO:DELTA, e.g. 0.5:-10", item)
		}
		ratio, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || math.IsNaN(ratio) || ratio <= 0 || ratio > 1 {
			return nil, fmt.Errorf("curve step %q: the busy ratio must be a number in (0, 1]", item)
		}
		delta, err := strconv.Atoi(strings.TrimSpace(d))
		if err != nil || delta > 0 {
			return nil, fmt.Errorf("curve step %q: the delta must be an integer <= 0 (load lowers the priority)", item)
		}
		if n := len(c); n > 0 {
			if ratio <= c[n-1].Ratio {
				return nil, fmt.Errorf("curve step %q: busy ratios must increase from step to step", item)
			}
			if delta > c[n-1].Delta {
				return nil, fmt.Errorf("curve step %q: a higher busy ratio must not raise the priority (delta %d after %d)", item, delta, c[n-1].Delta)
			}
		}
		c = append(c, Step{Ratio: ratio, Delta: delta})
	}
	return c, nil
}

func (c Curve) String() string {
	parts := make([]string, len(c))
	for i, s := range c {
		parts[i] = strconv.FormatFloat(s.Ratio, 'g', -1, 64) + ":" + strconv.Itoa(s.Delta)
	}
	return strings.Join(parts, ",")
}

// CheckBand validates the hysteresis band against the curve: in [0, 1) and below the first
// step's ratio (else the first step, once entered, could never be left).
func (c Curve) CheckBand(band float64) error {
	if math.IsNaN(band) || band < 0 || band >= 1 {
		return errors.New("the hysteresis band must be in [0, 1)")
	}
	if len(c) > 0 && band >= c[0].Ratio {
		return fmt.Errorf("the hysteresis band %g must be below the curve's first busy ratio %g, or that step could never be left", band, c[0].Ratio)
	}
	return nil
}

// Level is the curve level for busy ratio r when cur was in effect: a level is entered when r
// reaches its ratio, and held until r falls below its ratio minus band. So a ratio that
// wobbles around a step's edge does not flip the priority (and the tailnet's netmaps) back
// and forth.
func (c Curve) Level(r float64, cur int, band float64) int {
	if cur < 0 {
		cur = 0
	}
	if cur > len(c) {
		cur = len(c)
	}
	up := 0
	for up < len(c) && r >= c[up].Ratio {
		up++
	}
	if up >= cur {
		return up
	}
	k := cur
	for k > up && r < c[k-1].Ratio-band {
		k--
	}
	return k
}

// Priority is the priority at a level: base plus the level's delta, never below 0
// (tailscaled ignores a negative Location.Priority when it weighs candidates).
func (c Curve) Priority(base, level int) int {
	p := base
	if level > 0 && level <= len(c) {
		p += c[level-1].Delta
	}
	return max(p, 0)
}
