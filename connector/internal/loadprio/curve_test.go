package loadprio

import (
	"strings"
	"testing"
)

func TestParseCurveAcceptsIncreasingRatiosAndFallingDeltas(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Curve
	}{
		{"", nil},
		{"  ", nil},
		{"0.5:-10", Curve{{0.5, -10}}},
		{"0.5:-10,0.8:-50", Curve{{0.5, -10}, {0.8, -50}}},
		{" 0.2 : 0 , 0.9:-5 ,1:-5", Curve{{0.2, 0}, {0.9, -5}, {1, -5}}},
	} {
		got, err := ParseCurve(tc.in)
		if err != nil {
			t.Errorf("ParseCurve(%q): %v", tc.in, err)
			continue
		}
		if got.String() != tc.want.String() || len(got) != len(tc.want) {
			t.Errorf("ParseCurve(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseCurveRejectsBadSteps(t *testing.T) {
	for _, tc := range []struct{ in, why string }{
		{"0.5", "RATIO:DELTA"},
		{"0.5:-10,", "RATIO:DELTA"},
		{"x:-10", "(0, 1]"},
		{"0:-10", "(0, 1]"},
		{"1.5:-10", "(0, 1]"},
		{"NaN:-10", "(0, 1]"},
		{"0.5:10", "<= 0"},
		{"0.5:-1.5", "<= 0"},
		{"0.8:-10,0.5:-20", "increase"},
		{"0.5:-10,0.5:-20", "increase"},
		{"0.5:-20,0.8:-10", "must not raise"},
	} {
		_, err := ParseCurve(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.why) {
			t.Errorf("ParseCurve(%q) error %v, want one saying %q", tc.in, err, tc.why)
		}
	}
}

func TestCheckBandKeepsTheFirstStepLeavable(t *testing.T) {
	c := Curve{{0.3, -10}, {0.6, -50}}
	for _, tc := range []struct {
		band float64
		ok   bool
	}{{0, true}, {0.1, true}, {0.29, true}, {0.3, false}, {0.5, false}, {-0.1, false}, {1, false}} {
		if err := c.CheckBand(tc.band); (err == nil) != tc.ok {
			t.Errorf("CheckBand(%g) = %v, want ok=%v", tc.band, err, tc.ok)
		}
	}
	if err := Curve(nil).CheckBand(0.5); err != nil {
		t.Errorf("no curve, band 0.5: %v", err)
	}
}

func TestLevelEntersAtTheRatioAndLeavesBelowTheBand(t *testing.T) {
	c := Curve{{0.5, -10}, {0.8, -50}}
	const band = 0.1
	for _, tc := range []struct {
		name string
		r    float64
		cur  int
		want int
	}{
		{"idle stays at 0", 0.1, 0, 0},
		{"just below the first step", 0.49, 0, 0},
		{"at the first step", 0.5, 0, 1},
		{"straight to the second", 0.95, 0, 2},
		{"at the second from the first", 0.8, 1, 2},
		{"first held inside the band", 0.41, 1, 1},
		{"first held at its edge", 0.4, 1, 1},
		{"first left below the band", 0.39, 1, 0},
		{"second held inside the band", 0.75, 2, 2},
		{"second left to the first", 0.69, 2, 1},
		{"second left past the first's band", 0.2, 2, 0},
		{"second left, first still reached", 0.55, 2, 1},
		{"out-of-range level clamped", 0.9, 7, 2},
		{"negative level clamped", 0.1, -3, 0},
	} {
		if got := c.Level(tc.r, tc.cur, band); got != tc.want {
			t.Errorf("%s: Level(%g, %d) = %d, want %d", tc.name, tc.r, tc.cur, got, tc.want)
		}
	}
}

// A ratio wobbling across a step's edge changes the level once, not on every sample.
func TestLevelDoesNotFlapAroundAnEdge(t *testing.T) {
	c := Curve{{0.5, -10}}
	wobble := []float64{0.2, 0.51, 0.47, 0.52, 0.45, 0.5, 0.42, 0.55, 0.3}
	changes := func(band float64) (n, level int) {
		for _, r := range wobble {
			next := c.Level(r, level, band)
			if next != level {
				n++
			}
			level = next
		}
		return n, level
	}
	if n, level := changes(0.1); n != 2 || level != 0 {
		t.Errorf("%d changes ending at level %d, want 2 (in at 0.51, out at 0.3) ending at 0", n, level)
	}
	if n, _ := changes(0); n != 8 {
		t.Errorf("without a band: %d changes, want 8 (every crossing)", n)
	}
}

func TestPriorityAddsTheLevelsDeltaAndStopsAtZero(t *testing.T) {
	c := Curve{{0.5, -10}, {0.8, -50}}
	for _, tc := range []struct{ base, level, want int }{
		{100, 0, 100}, {100, 1, 90}, {100, 2, 50}, {30, 2, 0}, {30, 1, 20}, {100, 9, 100}, {0, 0, 0},
	} {
		if got := c.Priority(tc.base, tc.level); got != tc.want {
			t.Errorf("Priority(%d, %d) = %d, want %d", tc.base, tc.level, got, tc.want)
		}
	}
}
