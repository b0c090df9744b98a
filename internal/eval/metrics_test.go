package eval

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12 }

// Fixture with ties, shared by the metric tests:
//
//	pos (shifted): 0.9 0.7 0.7 0.3
//	neg (in-dist): 0.8 0.7 0.2
//
// AUROC by pairs (4*3 = 12): 0.9 beats all 3 negatives -> 3; each 0.7
// beats 0.2, ties 0.7 (1/2), loses to 0.8 -> 1.5, twice -> 3; 0.3 beats
// 0.2 -> 1. Total 7/12.
//
// AP, descending score groups (P = 4):
//
//	0.9: tp 1 fp 0 -> precision 1,   recall +1/4 -> 0.25
//	0.8: tp 1 fp 1 (no positives, no term)
//	0.7: tp 3 fp 2 -> precision 3/5, recall +2/4 -> 0.30
//	0.3: tp 4 fp 2 -> precision 4/6, recall +1/4 -> 1/6
//	0.2: negatives only
//	AP = 0.25 + 0.3 + 1/6 = 0.716666...
//
// FPR at TPR >= 0.95: TPR first reaches 1 at threshold 0.3 with fp 2 ->
// 2/3. At TPR >= 0.5: threshold 0.7 gives TPR 3/4 and fp 2 (0.8, 0.7) ->
// 2/3. At TPR >= 0.25: threshold 0.9, fp 0 -> 0.
var (
	fixPos = []float64{0.9, 0.7, 0.7, 0.3}
	fixNeg = []float64{0.8, 0.7, 0.2}
)

func TestMetrics(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name           string
		pos, neg       []float64
		auroc, ap, fpr float64 // fpr at TPR >= 0.95
	}{
		{"hand fixture with ties", fixPos, fixNeg, 7.0 / 12, 0.25 + 0.3 + 1.0/6, 2.0 / 3},
		{"perfect separation", []float64{3, 4}, []float64{1, 2}, 1, 1, 0},
		// Reversed: AP: 2 -> tp1 fp2 prec 1/3 (*1/2); 1 -> tp2 fp2 prec
		// 1/2 (*1/2) -> 1/6 + 1/4.
		{"reversed", []float64{1, 2}, []float64{3, 4}, 0, 1.0/6 + 1.0/4, 1},
		// All tied: one group, precision 2/4 over the whole recall.
		{"all tied", []float64{1, 1}, []float64{1, 1}, 0.5, 0.5, 1},
		{"single pair tie", []float64{5}, []float64{5}, 0.5, 0.5, 1},
		// Infinities are ordinary extreme scores.
		{"infinities", []float64{math.Inf(1)}, []float64{math.Inf(-1), 0}, 1, 1, 0},
		{"empty pos", nil, []float64{1}, nan, nan, nan},
		{"empty neg", []float64{1}, nil, nan, nan, nan},
		{"nan score", []float64{1, nan}, []float64{0}, nan, nan, nan},
	}
	same := func(a, b float64) bool { return near(a, b) || (math.IsNaN(a) && math.IsNaN(b)) }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := AUROC(tc.pos, tc.neg); !same(got, tc.auroc) {
				t.Errorf("AUROC = %v, want %v", got, tc.auroc)
			}
			if got := AUPR(tc.pos, tc.neg); !same(got, tc.ap) {
				t.Errorf("AUPR = %v, want %v", got, tc.ap)
			}
			if got := FPRAtTPR(tc.pos, tc.neg, 0.95); !same(got, tc.fpr) {
				t.Errorf("FPRAtTPR = %v, want %v", got, tc.fpr)
			}
		})
	}
}

func TestFPRAtTPRTargets(t *testing.T) {
	tests := []struct {
		tpr, fpr, thr float64
	}{
		{0.25, 0, 0.9},
		{0.3, 2.0 / 3, 0.7},
		{0.5, 2.0 / 3, 0.7},
		{0.75, 2.0 / 3, 0.7}, // exactly reached at 0.7
		{1, 2.0 / 3, 0.3},
	}
	for _, tc := range tests {
		fpr, thr := FPRAtTPRThreshold(fixPos, fixNeg, tc.tpr)
		if !near(fpr, tc.fpr) || thr != tc.thr {
			t.Errorf("tpr %v: fpr %v thr %v, want %v %v", tc.tpr, fpr, thr, tc.fpr, tc.thr)
		}
	}
	for _, bad := range []float64{0, -0.1, 1.5, math.NaN()} {
		if got := FPRAtTPR(fixPos, fixNeg, bad); !math.IsNaN(got) {
			t.Errorf("tpr %v: got %v, want NaN", bad, got)
		}
	}
}

// AUROC must equal the brute-force pair count on random data with many
// ties, and be invariant to input order.
func TestAUROCBruteForce(t *testing.T) {
	pos := []float64{1, 3, 3, 2, 5, 0, 3, 4}
	neg := []float64{2, 2, 3, 0, 1, 1, 3}
	var u float64
	for _, p := range pos {
		for _, n := range neg {
			switch {
			case p > n:
				u++
			case p == n:
				u += 0.5
			}
		}
	}
	want := u / float64(len(pos)*len(neg))
	if got := AUROC(pos, neg); !near(got, want) {
		t.Fatalf("AUROC %v, brute force %v", got, want)
	}
	rev := func(x []float64) []float64 {
		y := make([]float64, len(x))
		for i := range x {
			y[len(x)-1-i] = x[i]
		}
		return y
	}
	if got := AUROC(rev(pos), rev(neg)); !near(got, want) {
		t.Fatalf("order dependence: %v vs %v", got, want)
	}
	if a, b := AUPR(pos, neg), AUPR(rev(pos), rev(neg)); !near(a, b) {
		t.Fatalf("AUPR order dependence: %v vs %v", a, b)
	}
	// Swapping the classes mirrors the AUROC.
	if got := AUROC(neg, pos); !near(got, 1-want) {
		t.Fatalf("swapped AUROC %v, want %v", got, 1-want)
	}
}
