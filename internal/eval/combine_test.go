package eval

import (
	"math"
	"testing"
)

func nearNaN(a, b float64) bool { return math.Abs(a-b) < 1e-9 || (math.IsNaN(a) && math.IsNaN(b)) }

func TestRefDist(t *testing.T) {
	single := NewRefDist([]float64{1, 2, 3, 4, math.NaN()}, nil)
	grouped := NewRefDist([]float64{1, 2, 3, 4}, []int{0, 0, 1, 1})
	for _, tc := range []struct {
		name string
		got  float64
		want float64
	}{
		{"p of 3 among 1..4: (1+2)/5", single.UpperP(3, -1), 0.6},
		{"p of 3, its own value left out: (1+1)/4", single.UpperP(3, 2), 0.5},
		{"above everything: 1/(n+1)", single.UpperP(5, -1), 0.2},
		{"below everything: 1", single.UpperP(0, -1), 1},
		{"NaN in, NaN out", single.UpperP(math.NaN(), -1), math.NaN()},
		{"group 0 left out: 2.5 among {3,4}", grouped.UpperP(2.5, 0), 1},
		{"group 1 left out: 2.5 among {1,2}", grouped.UpperP(2.5, 1), 1.0 / 3},
		{"z of 5: mean 2.5, population var 1.25", single.Z(5, -1), 2.5 / math.Sqrt(1.25)},
		{"z of 4, value 4 left out: mean 2, var 2/3", single.Z(4, 3), 2 / math.Sqrt(2.0/3)},
		{"z with one value left: NaN", grouped.Z(1, 0) * 0, 0},
	} {
		if !nearNaN(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if single.N(-1) != 4 || single.N(0) != 3 || grouped.N(1) != 2 {
		t.Errorf("N: %d %d %d", single.N(-1), single.N(0), grouped.N(1))
	}
	if z := NewRefDist([]float64{2, 2, 2}, nil).Z(3, -1); !math.IsNaN(z) {
		t.Errorf("z against a constant reference = %v, want NaN", z)
	}
	if p := NewRefDist(nil, nil).UpperP(1, -1); !math.IsNaN(p) {
		t.Errorf("p against an empty reference = %v, want NaN", p)
	}
}

func TestCombinationScores(t *testing.T) {
	if got, want := FisherScore(0.5, 0.25), -2*(math.Log(0.5)+math.Log(0.25)); !nearNaN(got, want) || !nearNaN(got, 4.1588830833596715) {
		t.Errorf("Fisher(0.5, 0.25) = %v, want %v", got, want)
	}
	if got := TippettScore(0.5, 0.25); !nearNaN(got, math.Log(4)) {
		t.Errorf("Tippett(0.5, 0.25) = %v, want ln 4", got)
	}
	if got := TippettScore(0.5, math.NaN()); !math.IsNaN(got) {
		t.Errorf("Tippett with NaN = %v", got)
	}
}

// TestEvaluateCombinations checks the p-value combinations by hand: three
// in-distribution prompts, one shifted, one layer.
func TestEvaluateCombinations(t *testing.T) {
	in := []Scores{
		{Tokens: 4, Drift: []float64{0}, Surprisal: 3},
		{Tokens: 4, Drift: []float64{1}, Surprisal: 1},
		{Tokens: 4, Drift: []float64{2}, Surprisal: 2},
	}
	out := []Scores{{Tokens: 4, Drift: []float64{1.5}, Surprisal: 2.5}}
	rows, err := Evaluate(in, out, []int{7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	get := func(rows []Row, m string) Row {
		for _, r := range rows {
			if r.Method == m {
				return r
			}
		}
		t.Fatalf("no %s row", m)
		return Row{}
	}
	// Leave-one-out p-values of the in prompts, (drift, surprisal):
	// (3/3, 1/3), (2/3, 3/3), (1/3, 2/3); the shifted prompt among all
	// three: (2/4, 2/4). Fisher: 2.197, 0.811, 3.008 vs 2.773 → 2/3.
	// Tippett: 1.099, 0.405, 1.099 vs 0.693 → 1/3.
	f, m := get(rows, MethodFisher), get(rows, MethodMinP)
	if !nearNaN(f.AUROC, 2.0/3) || f.Layer != 7 || f.PValues != PValuesCrossFit {
		t.Errorf("fisher row %+v, want AUROC 2/3 at L7 cross-fit", f)
	}
	if !nearNaN(m.AUROC, 1.0/3) || m.PValues != PValuesCrossFit {
		t.Errorf("minp row %+v, want AUROC 1/3 cross-fit", m)
	}
	if get(rows, MethodDrift).PValues != "" {
		t.Error("a drift row names a p-value source")
	}

	// Calibrated p-values are used when every prompt has them.
	ps := [][2]float64{{0.5, 0.5}, {0.9, 0.9}, {0.2, 0.8}}
	for i := range in {
		in[i].PDrift, in[i].PSurprisal = []float64{ps[i][0]}, ps[i][1]
	}
	out[0].PDrift, out[0].PSurprisal = []float64{0.01}, 0.9
	rows, err = Evaluate(in, out, []int{7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Fisher: 2.77, 0.42, 3.66 vs 9.42 → 1; Tippett: 0.69, 0.11, 1.61 vs 4.61 → 1.
	if f := get(rows, MethodFisher); f.AUROC != 1 || f.PValues != PValuesCalibration {
		t.Errorf("calibrated fisher row %+v", f)
	}
	if m := get(rows, MethodMinP); m.AUROC != 1 {
		t.Errorf("calibrated minp row %+v", m)
	}
	// One prompt without: back to cross-fitting for all.
	in[1].PDrift = nil
	rows, _ = Evaluate(in, out, []int{7}, 0)
	if f := get(rows, MethodFisher); !nearNaN(f.AUROC, 2.0/3) || f.PValues != PValuesCrossFit {
		t.Errorf("partly calibrated: fisher row %+v, want the cross-fitted one", f)
	}
}
