package calibrate

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestDist(t *testing.T) {
	d := NewDist([]float64{3, 1, 2, math.NaN(), 4, math.Inf(1)})
	if d.N != 4 || d.Mean != 2.5 || !near(d.Std, math.Sqrt(5.0/3)) || len(d.Q) != 4 {
		t.Fatalf("NewDist = %+v, want 4 values, mean 2.5, std √(5/3)", d)
	}
	tests := []struct {
		x                                  float64
		cdf, upper, lower, twoSided, score float64
	}{
		// Q = [1 2 3 4] at probabilities 0, 1/3, 2/3, 1; N = 4.
		{0.5, 0, 1, 0.2, 0.4, -2 / math.Sqrt(5.0/3)},
		{1, 0, 1, 0.2, 0.4, -1.5 / math.Sqrt(5.0/3)},
		{2.5, 0.5, 0.6, 0.6, 1, 0},
		{3.25, 0.75, 0.4, 0.8, 0.8, 0.75 / math.Sqrt(5.0/3)},
		{4, 1, 0.2, 1, 0.4, 1.5 / math.Sqrt(5.0/3)},
		{9, 1, 0.2, 1, 0.4, 6.5 / math.Sqrt(5.0/3)},
	}
	for _, tc := range tests {
		if got := d.CDF(tc.x); !near(got, tc.cdf) {
			t.Errorf("CDF(%v) = %v, want %v", tc.x, got, tc.cdf)
		}
		if got := d.UpperP(tc.x); !near(got, tc.upper) {
			t.Errorf("UpperP(%v) = %v, want %v", tc.x, got, tc.upper)
		}
		if got := d.LowerP(tc.x); !near(got, tc.lower) {
			t.Errorf("LowerP(%v) = %v, want %v", tc.x, got, tc.lower)
		}
		if got := d.TwoSidedP(tc.x); !near(got, tc.twoSided) {
			t.Errorf("TwoSidedP(%v) = %v, want %v", tc.x, got, tc.twoSided)
		}
		if got := d.Z(tc.x); !near(got, tc.score) {
			t.Errorf("Z(%v) = %v, want %v", tc.x, got, tc.score)
		}
	}
	var empty Dist
	if !math.IsNaN(empty.CDF(1)) || !math.IsNaN(empty.UpperP(1)) || !empty.Empty() {
		t.Error("an empty distribution gave a number")
	}
	tied := NewDist([]float64{1, 2, 2, 2, 3})
	if got := tied.CDF(2); got != 0.75 {
		t.Errorf("CDF at a tie = %v, want 0.75 (the last of the tied values)", got)
	}
}

// TestSketch: with more than SketchSize values the distribution keeps
// SketchSize type-7 quantiles; 0..2000 gives Q[i] = 2i exactly.
func TestSketch(t *testing.T) {
	vs := make([]float64, 2001)
	for i := range vs {
		vs[len(vs)-1-i] = float64(i) // descending: NewDist sorts
	}
	d := NewDist(vs)
	if d.N != 2001 || len(d.Q) != SketchSize || d.Mean != 1000 {
		t.Fatalf("N=%d len(Q)=%d mean=%v", d.N, len(d.Q), d.Mean)
	}
	for _, i := range []int{0, 1, 500, 999, 1000} {
		if d.Q[i] != float64(2*i) {
			t.Errorf("Q[%d] = %v, want %d", i, d.Q[i], 2*i)
		}
	}
	for _, tc := range []struct{ x, want float64 }{{1000, 0.5}, {1001, 0.5005}, {2000, 1}, {0, 0}} {
		if got := d.CDF(tc.x); !near(got, tc.want) {
			t.Errorf("CDF(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	if got, want := d.UpperP(5000), 1/2002.0; !near(got, want) {
		t.Errorf("UpperP beyond the maximum = %v, want 1/(N+1) = %v", got, want)
	}
}

func TestChiSquareSurvivalEven(t *testing.T) {
	tests := []struct {
		x    float64
		k    int
		want float64
	}{
		{2, 1, math.Exp(-1)},
		{4, 2, 3 * math.Exp(-2)},
		{6, 3, 8.5 * math.Exp(-3)},
		{0, 3, 1},
		{-1, 2, 1},
		{2000, 2, 1001 * math.Exp(-1000)}, // underflows to 0 without overflow
	}
	for _, tc := range tests {
		if got := ChiSquareSurvivalEven(tc.x, tc.k); !near(got, tc.want) {
			t.Errorf("S(%v; 2·%d dof) = %v, want %v", tc.x, tc.k, got, tc.want)
		}
	}
	if !math.IsNaN(ChiSquareSurvivalEven(1, 0)) {
		t.Error("0 components gave a number")
	}
}

func TestCombine(t *testing.T) {
	stat, p, err := Fisher(0.5, 0.5)
	if err != nil || !near(stat, 4*math.Ln2) || !near(p, 0.25*(1+2*math.Ln2)) {
		t.Errorf("Fisher(0.5, 0.5) = %v, %v, %v; want 4 ln 2, (1+2 ln 2)/4", stat, p, err)
	}
	stat, p, err = Fisher(0.01, 0.2, 0.9)
	if err != nil || !near(stat, 12.639937228160035) || !near(p, 0.04912374646000491) {
		t.Errorf("Fisher(0.01, 0.2, 0.9) = %v, %v, %v", stat, p, err)
	}
	if _, p, _ := Fisher(0.3); !near(p, 0.3) {
		t.Errorf("Fisher of one p-value = %v, want it unchanged", p)
	}
	for _, tc := range []struct {
		ps   []float64
		want float64
	}{{[]float64{0.01, 0.2, 0.9}, 0.03}, {[]float64{0.5, 0.9}, 1}, {[]float64{0.2}, 0.2}} {
		if got, err := MinP(tc.ps...); err != nil || !near(got, tc.want) {
			t.Errorf("MinP(%v) = %v, %v; want %v", tc.ps, got, err, tc.want)
		}
	}
	for _, bad := range [][]float64{nil, {0}, {1.5}, {math.NaN()}, {0.5, -0.1}} {
		if _, _, err := Fisher(bad...); err == nil {
			t.Errorf("Fisher(%v) succeeded", bad)
		}
		if _, err := MinP(bad...); err == nil {
			t.Errorf("MinP(%v) succeeded", bad)
		}
	}
}
