package eval

import (
	"math"
	"testing"
)

func TestZScore(t *testing.T) {
	tests := []struct {
		name    string
		xs, ref []float64
		want    []float64
	}{
		{"standard", []float64{1, 3, 5}, []float64{1, 3}, []float64{-1, 1, 3}},
		{"constant ref", []float64{1, 2}, []float64{4, 4}, []float64{math.NaN(), math.NaN()}},
		{"empty ref", []float64{1}, nil, []float64{math.NaN()}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ZScore(tc.xs, tc.ref)
			for i := range got {
				w := tc.want[i]
				if math.IsNaN(w) != math.IsNaN(got[i]) || (!math.IsNaN(w) && math.Abs(got[i]-w) > 1e-12) {
					t.Errorf("z[%d] = %v, want %v", i, got[i], w)
				}
			}
		})
	}
}

func sc(tokens int, drift []float64, sur, ent, ms float64) Scores {
	return Scores{Tokens: tokens, Drift: drift, Surprisal: sur, Entropy: ent, MaxSoftmax: ms}
}

func findRow(t *testing.T, rows []Row, method string, layer int) Row {
	t.Helper()
	for _, r := range rows {
		if r.Method == method && r.Layer == layer {
			return r
		}
	}
	t.Fatalf("no row %s L%d", method, layer)
	return Row{}
}

func TestEvaluate(t *testing.T) {
	// Drift at layer 3 separates perfectly, at layer 7 it is inverted;
	// surprisal separates perfectly; entropy is constant; max-softmax is
	// higher for the shifted items (so its negation ranks them lower);
	// length separates perfectly except for matched lengths.
	in := []Scores{
		sc(5, []float64{0, 3}, 1, 2, 0.1),
		sc(6, []float64{1, 2}, 2, 2, 0.2),
		sc(7, []float64{2, 1}, 3, 2, 0.3),
	}
	out := []Scores{
		sc(7, []float64{3, 0}, 4, 2, 0.4),
		sc(8, []float64{4, -1}, 5, 2, 0.5),
	}
	rows, err := Evaluate(in, out, []int{3, 7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// 2 drift + surprisal, entropy, max-softmax, length + 2 combined + 2
	// Fisher + 2 min-p.
	if len(rows) != 12 {
		t.Fatalf("%d rows, want 12", len(rows))
	}
	tests := []struct {
		method  string
		layer   int
		auroc   float64
		matched float64
	}{
		{MethodDrift, 3, 1, 1},
		{MethodDrift, 7, 0, 0},
		{MethodSurprisal, -1, 1, 1},
		{MethodEntropy, -1, 0.5, 0.5},
		{MethodMaxSoftmax, -1, 0, 0},
		{MethodLength, -1, 1 - 0.5/6, 0.5},
		// z(drift L3) = z(surprisal) here, so the sum still separates.
		{MethodCombined, 3, 1, 1},
		// z(drift L7) = -z(surprisal): the sum is constant.
		{MethodCombined, 7, 0.5, 0.5},
		// Leave-one-out p-values of the in prompts at L3 (drift, surprisal):
		// (1, 1), (2/3, 2/3), (1/3, 1/3); the shifted ones (1/4, 1/4):
		// Fisher 0, 1.62, 4.39 vs 5.55 twice; Tippett 0, 0.41, 1.10 vs 1.39.
		{MethodFisher, 3, 1, 1},
		{MethodMinP, 3, 1, 1},
		// At L7 drift is inverted: in p (1/3, 1), (2/3, 2/3), (1, 1/3),
		// shifted (1, 1/4): Fisher 2.20, 1.62, 2.20 vs 2.77 — the
		// combination keeps surprisal's separation where the z-sum loses it.
		{MethodFisher, 7, 1, 1},
		{MethodMinP, 7, 1, 1},
	}
	for _, tc := range tests {
		r := findRow(t, rows, tc.method, tc.layer)
		if math.Abs(r.AUROC-tc.auroc) > 1e-12 {
			t.Errorf("%s L%d: AUROC %v, want %v", tc.method, tc.layer, r.AUROC, tc.auroc)
		}
		if math.Abs(r.Matched-tc.matched) > 1e-12 {
			t.Errorf("%s L%d: matched AUROC %v, want %v", tc.method, tc.layer, r.Matched, tc.matched)
		}
		if r.Pos != 2 || r.Neg != 3 || r.NMatched != 1 {
			t.Errorf("%s L%d: pos/neg/matched = %d/%d/%d, want 2/3/1", tc.method, tc.layer, r.Pos, r.Neg, r.NMatched)
		}
		if math.IsNaN(r.AUPR) || math.IsNaN(r.FPR95) {
			t.Errorf("%s L%d: NaN AUPR or FPR95", tc.method, tc.layer)
		}
	}
	// With a tolerance of 2 both shifted items find a partner (7-7, 8-6;
	// with 1, length 8 would find 7 taken and no 9).
	rows, err = Evaluate(in, out, []int{3, 7}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r := findRow(t, rows, MethodLength, -1); r.NMatched != 2 {
		t.Errorf("tol 2: %d matched, want 2", r.NMatched)
	}
}

func TestEvaluateUnmatchedAndErrors(t *testing.T) {
	in := []Scores{sc(5, []float64{0}, 1, 1, 0.5)}
	out := []Scores{sc(9, []float64{1}, 2, 1, 0.5)}
	rows, err := Evaluate(in, out, []int{1}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := findRow(t, rows, MethodDrift, 1)
	if r.NMatched != 0 || !math.IsNaN(r.Matched) {
		t.Errorf("no length match: NMatched %d, Matched %v; want 0, NaN", r.NMatched, r.Matched)
	}
	// A single in-distribution item has zero spread: z is undefined.
	if c := findRow(t, rows, MethodCombined, 1); !math.IsNaN(c.AUROC) {
		t.Errorf("combined with constant reference: AUROC %v, want NaN", c.AUROC)
	}
	if _, err := Evaluate(nil, out, []int{1}, 0); err == nil {
		t.Error("empty in-distribution set: no error")
	}
	if _, err := Evaluate(in, out, []int{1, 2}, 0); err == nil {
		t.Error("drift/layer size mismatch: no error")
	}
}

func TestBestLayer(t *testing.T) {
	rows := []Row{
		{Method: MethodDrift, Layer: 1, AUROC: 0.6},
		{Method: MethodDrift, Layer: 2, AUROC: math.NaN()},
		{Method: MethodDrift, Layer: 3, AUROC: 0.7},
		{Method: MethodDrift, Layer: 4, AUROC: 0.7},
		{Method: MethodSurprisal, Layer: -1, AUROC: 0.9},
	}
	if got := BestLayer(rows, MethodDrift); got != 2 {
		t.Errorf("BestLayer = %d, want 2", got)
	}
	if got := FlippedBestLayer(rows, MethodDrift); got != 0 {
		t.Errorf("FlippedBestLayer = %d, want 0", got)
	}
	if got := FlippedBestLayer(rows, MethodCombined); got != -1 {
		t.Errorf("FlippedBestLayer of an absent method = %d, want -1", got)
	}
	if got := BestLayer(rows, MethodCombined); got != -1 {
		t.Errorf("BestLayer of an absent method = %d, want -1", got)
	}
}
