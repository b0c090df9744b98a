package lmood

import (
	"math"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

// TestRuleAggregator: the calibration hook is ln of the prompt-level rule
// (Summarize), whatever the aggregation and mode, and undefined where the
// rule is.
func TestRuleAggregator(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
		mod  func(*analyze.Result)
		want float64 // NaN: undefined
	}{
		{"flat", Rule{}, nil, math.Log(2)},
		{"median", Rule{Aggregate: drift.Median}, nil, math.Log(3)},
		{"isolate flat: mean of 1 and 4", Rule{Isolate: true}, nil, math.Log(2.5)},
		{"isolate topk", Rule{Isolate: true, Aggregate: drift.TopK}, nil, math.Log(4)},
		{"nothing selected", Rule{}, func(r *analyze.Result) { r.Selected = 0 }, math.NaN()},
		{"mean not measured", Rule{Aggregate: drift.Mean}, nil, math.NaN()},
		{"zero ratio", Rule{}, func(r *analyze.Result) { r.Layers[0].Ratio = def(0) }, math.NaN()},
	}
	for _, tc := range tests {
		res, l := result()
		if tc.mod != nil {
			tc.mod(res)
		}
		got, ok := tc.rule.Aggregator()(res, l)
		if ok != !math.IsNaN(tc.want) || (ok && math.Abs(got-tc.want) > 1e-12) {
			t.Errorf("%s: %v %v, want %v", tc.name, got, ok, tc.want)
		}
		if s := Summarize(res, l, tc.rule); ok && math.Abs(math.Exp(got)-s.Ratio) > 1e-12 {
			t.Errorf("%s: exp(aggregator) %v, Summarize %v", tc.name, math.Exp(got), s.Ratio)
		}
	}
}

func TestFormatPercentile(t *testing.T) {
	for p, want := range map[float64]string{0.973: "97.3%", 1: "100%", 0: "0%", 0.5: "50%", math.NaN(): "n/a"} {
		if got := FormatPercentile(p); got != want {
			t.Errorf("FormatPercentile(%v) = %q, want %q", p, got, want)
		}
	}
}
