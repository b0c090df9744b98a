package drift

import (
	"math"
	"testing"
)

func TestAggregateLogsHand(t *testing.T) {
	seq := func(lo, hi int) []float64 {
		var xs []float64
		for i := lo; i <= hi; i++ {
			xs = append(xs, float64(i))
		}
		return xs
	}
	tests := []struct {
		name string
		agg  Aggregation
		xs   []float64
		want float64
		ok   bool
	}{
		{"mean", Mean, []float64{1, 2, 6}, 3, true},
		{"median odd", Median, []float64{5, 1, 3}, 3, true},
		{"median even", Median, []float64{4, 1, 3, 2}, 2.5, true},
		// 10 values: floor(10/10) = 1 dropped from each end: mean(2..9).
		{"trimmed 10", Trimmed, append(seq(1, 9), 100), 5.5, true},
		// 9 values: nothing dropped, the plain mean.
		{"trimmed 9", Trimmed, seq(1, 9), 5, true},
		// 20 values 1..20: 2 dropped each end, mean(3..18) = 10.5.
		{"trimmed 20", Trimmed, seq(1, 20), 10.5, true},
		// 5 values: k = ceil(5/4) = 2 largest: (9+7)/2.
		{"topk 5", TopK, []float64{1, 5, 3, 9, 7}, 8, true},
		// 4 values: k = 1, the maximum.
		{"topk 4", TopK, []float64{-1, -5, -3, -2}, -1, true},
		{"topk 1", TopK, []float64{0.5}, 0.5, true},
		{"empty", Mean, nil, 0, false},
		{"nan", Median, []float64{1, math.NaN()}, 0, false},
		{"inf", TopK, []float64{1, math.Inf(1)}, 0, false},
		{"flat is not by-token", Flat, []float64{1, 2}, 0, false},
		{"unknown", Aggregation(42), []float64{1, 2}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AggregateLogs(tc.agg, append([]float64(nil), tc.xs...))
			if ok != tc.ok || (ok && math.Abs(got-tc.want) > 1e-12) {
				t.Errorf("AggregateLogs(%v, %v) = %v, %v; want %v, %v", tc.agg, tc.xs, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestAggregateRatiosHand(t *testing.T) {
	tests := []struct {
		name string
		agg  Aggregation
		rs   []float64
		want float64
		ok   bool
	}{
		{"flat is the arithmetic mean", Flat, []float64{1, 4}, 2.5, true},
		{"mean is the geometric mean", Mean, []float64{1, 4}, 2, true},
		{"median", Median, []float64{16, 1, 4}, 4, true},
		{"topk", TopK, []float64{1, 4, 16, 64}, 64, true},
		{"trimmed below 10 is the geometric mean", Trimmed, []float64{1, 8}, math.Sqrt(8), true},
		// A zero ratio is clamped to MinRatio before the log.
		{"zero clamps", Mean, []float64{0, 1e12}, 1, true},
		{"empty", Median, nil, 0, false},
		{"nan", Flat, []float64{math.NaN()}, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AggregateRatios(tc.agg, tc.rs)
			if ok != tc.ok || (ok && math.Abs(got-tc.want) > 1e-9*math.Max(1, tc.want)) {
				t.Errorf("AggregateRatios(%v, %v) = %v, %v; want %v, %v", tc.agg, tc.rs, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestTopAndTrimCounts(t *testing.T) {
	for _, tc := range []struct{ n, top, trim int }{
		{0, 0, 0}, {1, 1, 0}, {4, 1, 0}, {5, 2, 0}, {8, 2, 0}, {9, 3, 0}, {10, 3, 1}, {19, 5, 1}, {20, 5, 2},
	} {
		if got := TopCount(tc.n); got != tc.top {
			t.Errorf("TopCount(%d) = %d, want %d", tc.n, got, tc.top)
		}
		if got := TrimCount(tc.n); got != tc.trim {
			t.Errorf("TrimCount(%d) = %d, want %d", tc.n, got, tc.trim)
		}
	}
}

func TestParseAggregation(t *testing.T) {
	for i, name := range AggregationNames() {
		a, err := ParseAggregation(" " + name + " ")
		if err != nil || a != Aggregation(i) || a.String() != name {
			t.Errorf("ParseAggregation(%q) = %v, %v", name, a, err)
		}
	}
	if a, err := ParseAggregation("TopK"); err != nil || a != TopK {
		t.Errorf("case-insensitive parse: %v, %v", a, err)
	}
	if _, err := ParseAggregation("max"); err == nil {
		t.Error("ParseAggregation(max) succeeded")
	}
	if got := Aggregation(9).String(); got != "Aggregation(9)" {
		t.Errorf("unknown String() = %q", got)
	}
}

// rot returns the unit row (cos a, sin a), a in degrees.
func rot(deg float64) []float32 {
	r := deg * math.Pi / 180
	return []float32{float32(math.Cos(r)), float32(math.Sin(r))}
}

func rows(rs ...[]float32) Matrix {
	m := Matrix{Rows: len(rs), Cols: 2}
	for _, r := range rs {
		m.Data = append(m.Data, r...)
	}
	return m
}

// TestAccumulatorAggregatesHand builds two nudges whose per-token ratios
// are known: 3 tokens, position 0 not selected. Nudge 1 turns the inputs
// of tokens 1 and 2 by 1° and their hidden states by 2° and 4° (ratios 2
// and 4); nudge 2 turns inputs and hidden states alike (ratios 1 and 1).
//
//	mean/median/trimmed: exp(mean(ln 2, ln 4)) = sqrt(8) and 1 →
//	   mean (sqrt(8)+1)/2 = 1.9142, std |sqrt(8)-1|/sqrt(2) = 1.2929
//	topk (k = 1 of 2): 4 and 1 → mean 2.5, std 3/sqrt(2) = 2.1213
func TestAccumulatorAggregatesHand(t *testing.T) {
	clean := rows(rot(0), rot(0), rot(0))
	sel, _ := Select(3, true, nil)
	acc, err := NewAccumulator(clean, []Matrix{clean}, sel)
	if err != nil {
		t.Fatal(err)
	}
	// Token 0 gets a wild ratio (30): unselected, it must not count.
	if err := acc.Add(rows(rot(1), rot(1), rot(1)), []Matrix{rows(rot(30), rot(2), rot(4))}); err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(rows(rot(3), rot(1), rot(2)), []Matrix{rows(rot(3), rot(1), rot(2))}); err != nil {
		t.Fatal(err)
	}
	l := acc.Result().Layers[0]
	s8 := math.Sqrt(8)
	want := map[Aggregation][2]float64{
		Mean:    {(s8 + 1) / 2, (s8 - 1) / math.Sqrt2},
		Median:  {(s8 + 1) / 2, (s8 - 1) / math.Sqrt2},
		Trimmed: {(s8 + 1) / 2, (s8 - 1) / math.Sqrt2},
		TopK:    {2.5, 3 / math.Sqrt2},
	}
	for a, w := range want {
		got := l.Aggregate[a]
		if got.N != 2 || got.Undefined || !near(got.Mean, w[0], 1e-4) || !near(got.Std, w[1], 1e-4) {
			t.Errorf("%v: %+v, want mean %.4f std %.4f over 2 nudges", a, got, w[0], w[1])
		}
	}
	if l.Aggregate[Flat] != l.Prompt {
		t.Errorf("Aggregate[Flat] %+v != Prompt %+v", l.Aggregate[Flat], l.Prompt)
	}
}

// TestAccumulatorAggregatesInvalid: a nudge whose selected tokens all have
// an invalid ratio counts as invalid for every aggregation, and isolation
// nudges leave the aggregates undefined.
func TestAccumulatorAggregatesInvalid(t *testing.T) {
	clean := rows(rot(0), rot(0))
	acc, _ := NewAccumulator(clean, []Matrix{clean}, nil)
	// Zero input angle everywhere: no ratio.
	if err := acc.Add(clean, []Matrix{rows(rot(1), rot(2))}); err != nil {
		t.Fatal(err)
	}
	l := acc.Result().Layers[0]
	for a := Mean; a < NumAggregations; a++ {
		if s := l.Aggregate[a]; !s.Undefined || s.Invalid != 1 {
			t.Errorf("%v: %+v, want undefined with 1 invalid nudge", a, s)
		}
	}
	iso, _ := NewAccumulator(clean, []Matrix{clean}, nil)
	if err := iso.AddIsolated(1, rows(rot(0), rot(1)), []Matrix{rows(rot(0), rot(2))}); err != nil {
		t.Fatal(err)
	}
	for a, s := range iso.Result().Layers[0].Aggregate {
		if !s.Undefined || s.Invalid != 0 {
			t.Errorf("isolation %v: %+v, want undefined and untouched", Aggregation(a), s)
		}
	}
}
