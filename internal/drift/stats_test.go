package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestWelfordMatchesTwoPass(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{1, 2, 3, 10, 1000} {
		xs := make([]float64, n)
		var w Welford
		for i := range xs {
			// Large offset: the naive sum-of-squares formula would lose
			// precision here, Welford and two-pass must not.
			xs[i] = 1e6 + r.NormFloat64()
			w.Add(xs[i])
		}
		var mean float64
		for _, x := range xs {
			mean += x
		}
		mean /= float64(n)
		var ss float64
		for _, x := range xs {
			ss += (x - mean) * (x - mean)
		}
		std := 0.0
		if n > 1 {
			std = math.Sqrt(ss / float64(n-1))
		}
		if !near(w.Mean(), mean, 1e-12*math.Abs(mean)) || !near(w.Std(), std, 1e-6) || w.N() != n {
			t.Errorf("n=%d: welford %v±%v, two-pass %v±%v", n, w.Mean(), w.Std(), mean, std)
		}
	}
}

func TestWelfordHand(t *testing.T) {
	// 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sum of squared deviations 32,
	// sample variance 32/7.
	var w Welford
	for _, x := range []float64{2, 4, 4, 4, 5, 5, 7, 9} {
		w.Add(x)
	}
	if w.Mean() != 5 || !near(w.Var(), 32.0/7, 1e-12) {
		t.Fatalf("mean %v var %v", w.Mean(), w.Var())
	}
}

func TestRunning(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		ok   []bool
		want Stats
	}{
		{"empty", nil, nil, Stats{Undefined: true}},
		{"single", []float64{3}, []bool{true}, Stats{Mean: 3, N: 1}},
		{"all invalid", []float64{1, 2}, []bool{false, false}, Stats{Invalid: 2, Undefined: true}},
		{"nan and inf excluded", []float64{1, math.NaN(), math.Inf(1), 3}, []bool{true, true, true, true},
			Stats{Mean: 2, Std: math.Sqrt2, N: 2, Invalid: 2}},
	}
	for _, tc := range tests {
		var r Running
		for i, x := range tc.xs {
			r.Add(x, tc.ok[i])
		}
		got := r.Stats()
		if got.N != tc.want.N || got.Invalid != tc.want.Invalid || got.Undefined != tc.want.Undefined ||
			!near(got.Mean, tc.want.Mean, 1e-12) || !near(got.Std, tc.want.Std, 1e-12) {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		d      float64
		dok    bool
		in     float64
		inok   bool
		want   float64
		wantOK bool
	}{
		{2, true, 4, true, 0.5, true},
		{0, true, 4, true, 0, true},
		{2, true, 0, true, 0, false},
		{2, false, 4, true, 0, false},
		{2, true, 4, false, 0, false},
		{2, true, -1, true, 0, false},
		{2, true, math.NaN(), true, 0, false},
		{math.Inf(1), true, 1, true, 0, false},
		{1, true, 1e-320, true, 0, false}, // overflows to +Inf
	}
	for _, tc := range tests {
		got, ok := Ratio(tc.d, tc.dok, tc.in, tc.inok)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Ratio(%v,%v,%v,%v) = %v,%v", tc.d, tc.dok, tc.in, tc.inok, got, ok)
		}
	}
}

func TestOODScore(t *testing.T) {
	tests := []struct {
		ratio float64
		dir   Direction
		want  float64
	}{
		{1, Pinch, 0},
		{1, Expand, 0},
		{math.E, Pinch, -1},
		{math.E, Expand, 1},
		{0.5, Pinch, math.Ln2},
		{0, Pinch, -math.Log(MinRatio)},
		{-3, Expand, math.Log(MinRatio)},
		{math.Inf(1), Pinch, -math.Log(MaxRatio)},
		{math.NaN(), Expand, 0},
	}
	for _, tc := range tests {
		got := OODScore(tc.ratio, tc.dir)
		if !near(got, tc.want, 1e-12) {
			t.Errorf("OODScore(%v, %v) = %v, want %v", tc.ratio, tc.dir, got, tc.want)
		}
	}
	// Monotonicity: Pinch ranks smaller ratios as more unusual.
	if !(OODScore(0.5, Pinch) > OODScore(0.9, Pinch)) || !(OODScore(0.5, Expand) < OODScore(0.9, Expand)) {
		t.Error("direction not respected")
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"pinch", "expand"} {
		d, err := ParseDirection(s)
		if err != nil || d.String() != s {
			t.Errorf("ParseDirection(%q) = %v, %v", s, d, err)
		}
	}
	if _, err := ParseDirection("up"); err == nil {
		t.Error("bad direction accepted")
	}
	for _, s := range []string{"per-token", "whole"} {
		sc, err := ParseScale(s)
		if err != nil || sc.String() != s {
			t.Errorf("ParseScale(%q) = %v, %v", s, sc, err)
		}
	}
	if _, err := ParseScale("rows"); err == nil {
		t.Error("bad scale accepted")
	}
}
