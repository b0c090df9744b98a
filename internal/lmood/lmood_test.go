package lmood

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/store"
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
	if r.Aggregate != drift.Trimmed || r.Analyze.Direction != drift.Expand || r.Analyze.Noise != drift.PerToken {
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

// TestOptionsSiteSigmaThreads: the site defaults to resid and is checked;
// sigma below MinSigma (lost in float32 rounding) is refused with the
// range; threads run 0..MaxThreads().
func TestOptionsSiteSigmaThreads(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Options)
		option string
		site   analyze.Site
	}{
		{"default site", func(o *Options) {}, "", analyze.SiteResid},
		{"empty site", func(o *Options) { o.Site = "" }, "", analyze.SiteResid},
		{"logits", func(o *Options) { o.Site = "Logits" }, "", analyze.SiteLogits},
		{"mlp", func(o *Options) { o.Site = "mlp" }, "", analyze.SiteMLP},
		{"bad site", func(o *Options) { o.Site = "head" }, "site", ""},
		{"sigma at the floor", func(o *Options) { o.Sigma = MinSigma }, "", analyze.SiteResid},
		{"sigma 1e-300", func(o *Options) { o.Sigma = 1e-300 }, "sigma", ""},
		{"sigma 1e-7", func(o *Options) { o.Sigma = 1e-7 }, "sigma", ""},
		{"sigma 10", func(o *Options) { o.Sigma = 10 }, "sigma", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := DefaultOptions()
			tc.mod(&o)
			r, err := o.Resolve(nil)
			if tc.option == "" {
				if err != nil || r.Analyze.Site != tc.site {
					t.Fatalf("site %q, err %v; want %q", r.Analyze.Site, err, tc.site)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Option != tc.option || !errors.Is(err, ErrUsage) {
				t.Fatalf("err = %v, want an *OptionError for %q", err, tc.option)
			}
			if tc.option == "sigma" && !strings.Contains(err.Error(), "[1e-06, 10)") {
				t.Errorf("sigma error does not give the range: %v", err)
			}
		})
	}
	for _, n := range []int{-1, MaxThreads() + 1, 1 << 20} {
		if err := CheckThreads(n); !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "between 0") {
			t.Errorf("CheckThreads(%d) = %v", n, err)
		}
	}
	for _, n := range []int{0, 1, MaxThreads()} {
		if err := CheckThreads(n); err != nil {
			t.Errorf("CheckThreads(%d) = %v", n, err)
		}
	}
	if m := MaxThreads(); m < 4 || m > MaxThreadsCap {
		t.Errorf("MaxThreads() = %d", m)
	}
}

func TestResolveSiteLayer(t *testing.T) {
	for _, tc := range []struct {
		site   analyze.Site
		layer  int
		hidden []int
		at     int
		bad    bool
	}{
		{analyze.SiteResid, -1, []int{15}, 15, false},
		{analyze.SiteResid, 0, []int{0}, 0, false},
		{analyze.SiteResid, 30, []int{30}, 30, false},
		{analyze.SiteResid, 31, nil, 0, true},
		{analyze.SiteNorm, 0, []int{0}, 0, false},
		{analyze.SiteAttn, 0, nil, 0, true},
		{analyze.SiteMLP, 1, []int{1}, 1, false},
		{analyze.SiteMLP, -2, nil, 0, true},
		{analyze.SiteLogits, -1, nil, 30, false},
		{analyze.SiteLogits, 12, nil, 0, true},
	} {
		hidden, at, err := ResolveSiteLayer(tc.site, tc.layer, "m", 30, 15)
		if tc.bad {
			if !errors.Is(err, ErrUsage) {
				t.Errorf("%s %d: err %v, want a usage error", tc.site, tc.layer, err)
			}
			continue
		}
		if err != nil || at != tc.at || len(hidden) != len(tc.hidden) || (len(hidden) == 1 && hidden[0] != tc.hidden[0]) {
			t.Errorf("%s %d: %v %d %v, want %v %d", tc.site, tc.layer, hidden, at, err, tc.hidden, tc.at)
		}
	}
	// A one-block model's middle is 0: attn and mlp still start at 1.
	if hidden, _, err := ResolveSiteLayer(analyze.SiteMLP, -1, "m", 1, 0); err != nil || hidden[0] != 1 {
		t.Errorf("mlp middle of a 1-block model: %v %v", hidden, err)
	}
	for site, want := range map[analyze.Site][2]int{
		analyze.SiteResid: {1, 30}, analyze.SiteNorm: {0, 30}, analyze.SiteAttn: {1, 30}, analyze.SiteMLP: {1, 30},
	} {
		got := SiteIndices(site, 30)
		if got[0] != want[0] || got[len(got)-1] != want[1] || len(got) != want[1]-want[0]+1 {
			t.Errorf("SiteIndices(%s) = %v", site, got)
		}
	}
	if got := SiteIndices(analyze.SiteLogits, 30); got != nil {
		t.Errorf("SiteIndices(logits) = %v", got)
	}
	if lines := strings.Split(SiteHelp(), "\n"); len(lines) != len(arch.Sites) {
		t.Errorf("SiteHelp has %d lines for %d sites", len(lines), len(arch.Sites))
	}
}

// TestClassify: store errors that mean a bad request become usage errors.
func TestClassify(t *testing.T) {
	bad := store.CheckName("../x")
	if !errors.Is(Classify(bad), ErrUsage) || Classify(bad).Error() != bad.Error() {
		t.Errorf("invalid name: %v", Classify(bad))
	}
	if err := Classify(fmt.Errorf("store: %w: %q", store.ErrNotPullable, "nosuch")); !errors.Is(err, ErrUsage) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown pull name: %v", err)
	}
	for _, err := range []error{nil, store.ErrCorrupt, fmt.Errorf("x: %w", store.ErrNotFound)} {
		if got := Classify(err); got != err {
			t.Errorf("Classify(%v) = %v, want it unchanged", err, got)
		}
	}
}

// TestPromptBytes: records of a prompt that is not valid UTF-8 carry its
// exact bytes (base64 in JSON); valid prompts carry none; records say
// their site.
func TestPromptBytes(t *testing.T) {
	setup := NewSetup("m", 30, analyze.Options{Samples: 2, Sigma: 0.01}, drift.Flat)
	if setup.Site != "resid" {
		t.Errorf("zero site recorded as %q", setup.Site)
	}
	for _, tc := range []struct {
		prompt string
		want   string // base64, "" = absent
	}{
		{"bad \xff utf-8", "YmFkIP8gdXRmLTg="},
		{"fine", ""},
	} {
		for name, rec := range map[string]any{
			"score":  NewScoreRecord(tc.prompt, setup, 15, Rule{}, nil, errors.New("x")),
			"layers": NewLayersRecord(tc.prompt, setup, Rule{}, nil, 0, errors.New("x")),
		} {
			b, err := json.Marshal(rec)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			json.Unmarshal(b, &m)
			got, _ := m["prompt_bytes"].(string)
			if got != tc.want || m["site"] != "resid" {
				t.Errorf("%s %q: prompt_bytes %q (want %q), site %v", name, tc.prompt, got, tc.want, m["site"])
			}
			if raw, _ := base64.StdEncoding.DecodeString(got); tc.want != "" && string(raw) != tc.prompt {
				t.Errorf("%s: prompt_bytes decode to %q", name, raw)
			}
		}
	}
}

// TestEvalPlanDropsInvalidUTF8: an --in prompt that is not valid UTF-8 is
// dropped with every corrupted twin of it (a twin is valid UTF-8 and would
// otherwise be scored without its source), and a pair with invalid UTF-8
// is dropped whole; both are reported in Dropped.
func TestEvalPlanDropsInvalidUTF8(t *testing.T) {
	dir := t.TempDir()
	bad := "bad \xff bytes in this sentence here"
	in := filepath.Join(dir, "in.txt")
	os.WriteFile(in, []byte("The cat sat on the mat today.\n"+bad+"\nAnother plain sentence is here.\n"), 0o644)
	pairs := filepath.Join(dir, "p.tsv")
	os.WriteFile(pairs, []byte("Fine plain.\tFine twin.\nOdd plain.\tOdd \xfe twin.\n"), 0o644)
	p, err := NewEvalPlan(EvalPlanOptions{In: []string{in}, Corrupt: "mash", Seed: 3, Pairs: []string{pairs}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Dropped) != 2 || p.Dropped[0].Text != bad || !strings.Contains(p.Dropped[1].Source, "pair 2") {
		t.Fatalf("dropped %+v", p.Dropped)
	}
	badTwin, _, err := eval.CorruptAll("mash", []string{bad}, 3)
	if err != nil || len(badTwin) != 1 {
		t.Fatalf("corrupting the bad prompt: %v %v", badTwin, err)
	}
	for _, s := range p.Sets {
		for _, text := range s.Texts {
			if text == badTwin[0] || !utf8.ValidString(text) {
				t.Errorf("set %s keeps %q", s.Name, text)
			}
		}
	}
	for _, text := range p.In {
		if !utf8.ValidString(text) || text == "Odd plain." {
			t.Errorf("in-distribution set keeps %q", text)
		}
	}
	if len(p.In) != 3 || len(p.Sets) != 2 || len(p.Sets[0].Texts) != 2 || len(p.Sets[1].Texts) != 1 {
		t.Errorf("in %q, sets %+v", p.In, p.Sets)
	}
}
