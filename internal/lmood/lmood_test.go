package lmood

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

func TestOptionsResolve(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Options)
		option string // "" = valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"empty aggregate is the default", func(o *Options) { o.Aggregate = "" }, ""},
		{"median", func(o *Options) { o.Aggregate = "median" }, ""},
		{"bad aggregate", func(o *Options) { o.Aggregate = "max" }, "aggregate"},
		{"bad noise", func(o *Options) { o.Noise = "loud" }, "noise"},
		{"bad direction", func(o *Options) { o.Direction = "up" }, "direction"},
		{"zero samples", func(o *Options) { o.Samples = 0 }, "samples"},
		{"too many samples", func(o *Options) { o.Samples = MaxSamples + 1 }, "samples"},
		{"zero sigma", func(o *Options) { o.Sigma = 0 }, "sigma"},
		{"NaN sigma", func(o *Options) { o.Sigma = math.NaN() }, "sigma"},
		{"negative max tokens", func(o *Options) { o.MaxTokens = -1 }, "max-tokens"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			r, err := o.Resolve([]int{3})
			if tc.option == "" {
				if err != nil {
					t.Fatal(err)
				}
				if r.Analyze.Samples != o.Samples || len(r.Analyze.HiddenStates) != 1 {
					t.Errorf("resolved %+v", r.Analyze)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option || !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want an *OptionError for %q that is ErrUsage", err, tc.option)
			}
		})
	}
	r, _ := DefaultOptions().Resolve(nil)
	if r.Aggregate != drift.Flat || r.Analyze.Direction != drift.Expand || r.Analyze.Noise != drift.PerToken {
		t.Errorf("defaults resolve to %+v", r)
	}
}

func TestResolveLayer(t *testing.T) {
	for _, tc := range []struct {
		layer, want int
		bad         bool
	}{{-1, 15, false}, {0, 0, false}, {30, 30, false}, {31, 0, true}, {-2, 0, true}} {
		got, err := ResolveLayer(tc.layer, "m", 30, 15)
		if (err != nil) != tc.bad || (!tc.bad && got != tc.want) {
			t.Errorf("ResolveLayer(%d) = %d, %v", tc.layer, got, err)
		}
		if tc.bad && !errors.Is(err, ErrUsage) {
			t.Errorf("ResolveLayer(%d): %v is not a usage error", tc.layer, err)
		}
	}
}

func TestUsageErrorKeepsIdentity(t *testing.T) {
	base := errors.New("boom")
	err := UsageError(base)
	if !errors.Is(err, ErrUsage) || !errors.Is(err, base) || err.Error() != "boom" {
		t.Errorf("UsageError: %v", err)
	}
	if UsageError(nil) != nil {
		t.Error("UsageError(nil) != nil")
	}
}

func def(m float64) analyze.Stat { return analyze.Stat{Mean: m, Defined: true} }

// result builds an analysis of 3 tokens at hidden state 5 with token
// ratios 9 (position 0), 1 and 4, flat prompt ratio 2 ± 0.5 and a median
// aggregate 3 ± 0.25.
func result() (*analyze.Result, *analyze.Layer) {
	l := analyze.Layer{Index: 5, Ratio: analyze.Stat{Mean: 2, Std: 0.5, Defined: true}, Drift: def(6),
		TokenRatio: []analyze.Stat{def(9), def(1), def(4)}, TokenDrift: []analyze.Stat{def(1), def(2), def(4)}}
	l.Aggregate[drift.Flat] = l.Ratio
	l.Aggregate[drift.Median] = analyze.Stat{Mean: 3, Std: 0.25, Defined: true}
	res := &analyze.Result{Tokens: make([]analyze.Token, 3), Selected: 2, InputAngle: def(12),
		InputTokens: []analyze.Stat{def(10), def(20), def(30)}, Layers: []analyze.Layer{l}}
	return res, &res.Layers[0]
}

func TestSummarize(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name                     string
		rule                     Rule
		mod                      func(*analyze.Result)
		ratio, std, drift, input float64
	}{
		{"flat", Rule{}, nil, 2, 0.5, 6, 12},
		{"median", Rule{Aggregate: drift.Median}, nil, 3, 0.25, 6, 12},
		// Not computed (zero Stat): undefined.
		{"mean not measured", Rule{Aggregate: drift.Mean}, nil, nan, nan, nan, nan},
		{"nothing selected", Rule{}, func(r *analyze.Result) { r.Selected = 0 }, nan, nan, nan, nan},
		{"no valid nudge", Rule{}, func(r *analyze.Result) { r.Layers[0].Ratio = analyze.Stat{Invalid: 4} }, nan, nan, nan, nan},
		// Isolation, position 0 excluded: ratios 1 and 4, drifts 2 and 4,
		// inputs 20 and 30; std across tokens = 3/sqrt(2).
		{"isolate flat", Rule{Isolate: true}, nil, 2.5, 3 / math.Sqrt2, 3, 25},
		{"isolate mean (geometric)", Rule{Isolate: true, Aggregate: drift.Mean}, nil, 2, 3 / math.Sqrt2, 3, 25},
		{"isolate topk", Rule{Isolate: true, Aggregate: drift.TopK}, nil, 4, 3 / math.Sqrt2, 3, 25},
		// Position 0 included: ratios 9, 1, 4; median 4, std sqrt(((13/3)²+(11/3)²+(2/3)²)/2) = sqrt(49/3).
		{"isolate median, first included", Rule{Isolate: true, IncludeFirst: true, Aggregate: drift.Median}, nil, 4, math.Sqrt(49.0 / 3), 7.0 / 3, 20},
		{"isolate, no token defined", Rule{Isolate: true}, func(r *analyze.Result) {
			for i := range r.Layers[0].TokenRatio {
				r.Layers[0].TokenRatio[i] = analyze.Stat{Invalid: 1}
			}
		}, nan, nan, 3, 25},
	}
	same := func(a, b float64) bool { return (math.IsNaN(a) && math.IsNaN(b)) || math.Abs(a-b) < 1e-12 }
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, l := result()
			if tc.mod != nil {
				tc.mod(res)
			}
			s := Summarize(res, l, tc.rule)
			if !same(s.Ratio, tc.ratio) || !same(s.RatioStd, tc.std) || !same(s.Drift, tc.drift) || !same(s.InputAngle, tc.input) {
				t.Errorf("got %+v, want ratio %v std %v drift %v input %v", s, tc.ratio, tc.std, tc.drift, tc.input)
			}
			if s.OK != !math.IsNaN(tc.ratio) {
				t.Errorf("OK = %v", s.OK)
			}
		})
	}
}

func TestEvalScores(t *testing.T) {
	layer := func(h int, ratio float64, tokens ...float64) analyze.Layer {
		l := analyze.Layer{Index: h, Ratio: def(ratio)}
		l.Aggregate[drift.Flat] = l.Ratio
		l.Aggregate[drift.Median] = def(ratio * 2)
		for _, v := range tokens {
			l.TokenRatio = append(l.TokenRatio, def(v))
		}
		return l
	}
	base := &analyze.Baselines{Surprisal: 3, Entropy: 2, MaxSoftmax: 0.25}
	toks := []analyze.Token{{ID: 1}, {ID: 2}, {ID: 3}}
	good := &analyze.Result{Tokens: toks, Selected: 2, Baselines: base,
		Layers: []analyze.Layer{layer(5, 0.5, 9, 1, 4), layer(10, 2, 9, 2, 2)}}
	flatMedian := []drift.Aggregation{drift.Flat, drift.Median}
	tests := []struct {
		name    string
		res     *analyze.Result
		rule    Rule
		dir     drift.Direction
		aggs    []drift.Aggregation
		want    [][]float64
		wantErr string
	}{
		{"pinch", good, Rule{}, drift.Pinch, nil, [][]float64{{math.Log(2), -math.Log(2)}}, ""},
		{"expand", good, Rule{}, drift.Expand, nil, [][]float64{{-math.Log(2), math.Log(2)}}, ""},
		{"flat and median", good, Rule{}, drift.Expand, flatMedian, [][]float64{{-math.Log(2), math.Log(2)}, {0, math.Log(4)}}, ""},
		// Isolation: mean of per-token ratios without position 0: (1+4)/2, (2+2)/2;
		// median of (1, 4) on a log scale: exp((ln 1 + ln 4)/2) = 2.
		{"isolate", good, Rule{Isolate: true}, drift.Pinch, flatMedian, [][]float64{{-math.Log(2.5), -math.Log(2)}, {-math.Log(2), -math.Log(2)}}, ""},
		{"no baselines", &analyze.Result{Tokens: toks, Selected: 2, Layers: good.Layers}, Rule{}, drift.Pinch, nil, nil, "baselines"},
		{"one token", &analyze.Result{Tokens: toks[:1], Baselines: base, Layers: good.Layers}, Rule{}, drift.Pinch, nil, nil, "single token"},
		{"nothing selected", &analyze.Result{Tokens: toks, Baselines: base, Layers: good.Layers}, Rule{}, drift.Pinch, nil, nil, "--include-first"},
		{"zero ratio", &analyze.Result{Tokens: toks, Selected: 2, Baselines: base, Layers: []analyze.Layer{layer(5, 0), layer(10, 1)}}, Rule{}, drift.Pinch, nil, nil, "not a positive"},
		{"missing layer", &analyze.Result{Tokens: toks, Selected: 2, Baselines: base, Layers: []analyze.Layer{layer(5, 1)}}, Rule{}, drift.Pinch, nil, nil, "missing"},
		{"nan baseline", &analyze.Result{Tokens: toks, Selected: 2, Baselines: &analyze.Baselines{Surprisal: math.NaN()}, Layers: good.Layers}, Rule{}, drift.Pinch, nil, nil, "non-finite"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			aggs := tc.aggs
			if aggs == nil {
				aggs = []drift.Aggregation{drift.Flat}
			}
			ss, err := EvalScores(tc.res, []int{5, 10}, tc.rule, tc.dir, aggs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(ss) != len(aggs) {
				t.Fatalf("%d score sets for %d aggregations", len(ss), len(aggs))
			}
			for j, want := range tc.want {
				s := ss[j]
				for i, w := range want {
					if math.Abs(s.Drift[i]-w) > 1e-12 {
						t.Errorf("%v drift[%d] = %v, want %v", aggs[j], i, s.Drift[i], w)
					}
				}
				if s.Tokens != 3 || s.Surprisal != 3 || s.Entropy != 2 || s.MaxSoftmax != 0.25 {
					t.Errorf("scores %+v", s)
				}
			}
		})
	}
}

func TestParseAggregatesAndMethods(t *testing.T) {
	all, err := ParseAggregates("all")
	if err != nil || len(all) != int(drift.NumAggregations) || all[0] != drift.Flat {
		t.Fatalf("all: %v, %v", all, err)
	}
	two, err := ParseAggregates("median, flat,median")
	if err != nil || len(two) != 2 || two[0] != drift.Median || two[1] != drift.Flat {
		t.Errorf("list: %v, %v", two, err)
	}
	if _, err := ParseAggregates("flat,max"); !errors.Is(err, ErrUsage) {
		t.Errorf("bad list: %v", err)
	}
	for _, tc := range []struct {
		agg             drift.Aggregation
		drift, combined string
	}{{drift.Flat, "drift", "drift+surprisal"}, {drift.TopK, "drift/topk", "drift/topk+surprisal"}} {
		if DriftMethod(tc.agg) != tc.drift || CombinedMethod(tc.agg) != tc.combined {
			t.Errorf("%v: %q %q", tc.agg, DriftMethod(tc.agg), CombinedMethod(tc.agg))
		}
	}
}

func TestDescribeLayersAndNames(t *testing.T) {
	for _, tc := range []struct {
		hs   []int
		want string
	}{{nil, "none"}, {[]int{15}, "15"}, {[]int{1, 2, 3}, "1–3"}, {[]int{5, 10}, "5,10"}} {
		if got := DescribeLayers(tc.hs); got != tc.want {
			t.Errorf("DescribeLayers(%v) = %q, want %q", tc.hs, got, tc.want)
		}
	}
	for in, want := range map[string]string{"/x/SmolLM2-135M-Instruct.Q4_1.gguf": "smollm2-135m-instruct.q4_1", "/x/@@.gguf": "model"} {
		if got := NameFromPath(in); got != want {
			t.Errorf("NameFromPath(%q) = %q, want %q", in, got, want)
		}
	}
}
