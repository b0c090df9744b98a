package analyze_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// tinyModel imports a synthetic 2-block model (no download needed) at
// float32 precision.
func tinyModel(t *testing.T) *store.Model {
	t.Helper()
	return tinyModelAt(t, store.PrecisionF32)
}

// tinyModelAt imports the synthetic 2-block model at a precision.
func tinyModelAt(t *testing.T, precision string) *store.Model {
	t.Helper()
	testutil.Runtime(t)
	m := testutil.ImportTinyAt(t, testutil.WriteTiny(t, testutil.DefaultTiny()), precision)
	t.Cleanup(func() { m.Close() })
	return m
}

func analyzeOnce(t *testing.T, m *store.Model, opt analyze.Options, prompts ...string) []*analyze.Result {
	t.Helper()
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	var out []*analyze.Result
	for _, p := range prompts {
		r, err := an.Analyze(p)
		if err != nil {
			t.Fatalf("Analyze(%q): %v", p, err)
		}
		out = append(out, r)
	}
	return out
}

func base() analyze.Options {
	return analyze.Options{HiddenStates: []int{2}, Samples: 6, Sigma: 0.01, Seed: 3}
}

func TestDeterministicAndBatchIndependent(t *testing.T) {
	m := tinyModel(t)
	a := analyzeOnce(t, m, base(), "hello world", "abc def ghi")
	b := analyzeOnce(t, m, base(), "hello world", "abc def ghi")
	if !reflect.DeepEqual(a, b) {
		t.Fatal("same seed and inputs gave different results")
	}
	small := base()
	small.BatchRows = 2 // clean + 1 nudge, then 2 nudges per pass
	c := analyzeOnce(t, m, small, "hello world", "abc def ghi")
	iso := base()
	iso.Isolate, iso.BatchRows = true, 5
	isoA := analyzeOnce(t, m, iso, "hello world")
	iso.BatchRows = 64
	if isoB := analyzeOnce(t, m, iso, "hello world"); !reflect.DeepEqual(isoA, isoB) {
		t.Error("isolation results depend on the batch split")
	}
	for i := range a {
		if a[i].Layers[0].Ratio.Mean != c[i].Layers[0].Ratio.Mean {
			t.Errorf("prompt %d: batch split changed the ratio: %v vs %v", i, a[i].Layers[0].Ratio, c[i].Layers[0].Ratio)
		}
	}
	other := base()
	other.Seed = 4
	d := analyzeOnce(t, m, other, "hello world")
	if d[0].Layers[0].Ratio.Mean == a[0].Layers[0].Ratio.Mean {
		t.Error("a different seed gave the same ratio")
	}
}

// TestOrderIndependent: a prompt's result does not depend on the prompts
// scored before it.
func TestOrderIndependent(t *testing.T) {
	m := tinyModel(t)
	a := analyzeOnce(t, m, base(), "first prompt", "second prompt")
	b := analyzeOnce(t, m, base(), "second prompt", "first prompt")
	if !reflect.DeepEqual(a[0], b[1]) || !reflect.DeepEqual(a[1], b[0]) {
		t.Error("scores depend on the order of prompts")
	}
}

func TestLayersAgree(t *testing.T) {
	m := tinyModel(t)
	one := analyzeOnce(t, m, base(), "the cat sat")[0]
	many := base()
	many.HiddenStates = []int{1, 2, 0}
	all := analyzeOnce(t, m, many, "the cat sat")[0]
	l2, ok := all.Layer(2)
	if !ok || l2.Ratio.Mean != one.Layers[0].Ratio.Mean {
		t.Errorf("hidden state 2 alone %v, among others %v", one.Layers[0].Ratio, l2)
	}
	// Hidden state 0 is the input itself: ratio exactly 1 for every token.
	l0, _ := all.Layer(0)
	if l0.Ratio.Mean < 0.999999 || l0.Ratio.Mean > 1.000001 {
		t.Errorf("hidden state 0 ratio = %v, want 1", l0.Ratio)
	}
	// Every aggregation is reported for every hidden state; at hidden
	// state 0 every per-token ratio is 1, so every aggregation is 1 too.
	for i := range all.Layers {
		l := &all.Layers[i]
		if l.Aggregate[drift.Flat] != l.Ratio {
			t.Errorf("hidden state %d: Aggregate[flat] %+v != Ratio %+v", l.Index, l.Aggregate[drift.Flat], l.Ratio)
		}
		for a, st := range l.Aggregate {
			if !st.Defined || !(st.Mean > 0) {
				t.Errorf("hidden state %d %v: %+v", l.Index, drift.Aggregation(a), st)
			}
			if l.Index == 0 && (st.Mean < 0.999999 || st.Mean > 1.000001) {
				t.Errorf("hidden state 0 %v = %v, want 1", drift.Aggregation(a), st.Mean)
			}
		}
	}
	if one.FirstToken != "excluded" || one.Selected != len(one.Tokens)-1 {
		t.Errorf("first token %q, selected %d of %d", one.FirstToken, one.Selected, len(one.Tokens))
	}
}

func TestIsolation(t *testing.T) {
	m := tinyModel(t)
	opt := base()
	opt.Isolate = true
	r := analyzeOnce(t, m, opt, "ab cd")[0]
	l := r.Layers[0]
	if l.Ratio.Defined {
		t.Error("isolation mode reported a prompt-level ratio")
	}
	for a, st := range l.Aggregate {
		if st.Defined {
			t.Errorf("isolation mode reported a prompt-level %v ratio", drift.Aggregation(a))
		}
	}
	for i, s := range l.TokenRatio {
		if !s.Defined || s.Mean <= 0 {
			t.Errorf("token %d: %+v", i, s)
		}
	}
}

func TestBadPrompts(t *testing.T) {
	m := tinyModel(t)
	opt := base()
	opt.MaxTokens = 8
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	cases := []struct {
		prompt string
		want   error
		text   string
	}{
		{"", analyze.ErrEmptyPrompt, "empty"},
		{" \t\n ", analyze.ErrEmptyPrompt, "whitespace"},
		{"ok\xff", analyze.ErrInvalidUTF8, "UTF-8"},
		{strings.Repeat("zq ", 5), analyze.ErrTooLong, "refused rather than truncated"},
		{strings.Repeat("x", 8<<20), analyze.ErrTooLong, "refused without tokenizing"},
	}
	for _, tc := range cases {
		_, err := an.Analyze(tc.prompt)
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Analyze(%q) = %v, want %v containing %q", tc.prompt, err, tc.want, tc.text)
		}
	}
	// After failures the analyzer still works, and control characters are
	// just text to the model.
	r, err := an.Analyze("a\x1b[2Jb")
	if err != nil || !r.Layers[0].Ratio.Defined {
		t.Errorf("control characters: %v %+v", err, r)
	}
	one, err := an.Analyze("a")
	if err != nil || one.FirstToken != "included (only token)" || !one.Layers[0].Ratio.Defined {
		t.Errorf("one-token prompt: %v %+v", err, one)
	}
}

func TestTinySigmaWarns(t *testing.T) {
	m := tinyModel(t)
	opt := base()
	opt.Sigma = 1e-9
	r := analyzeOnce(t, m, opt, "hello world")[0]
	if !strings.Contains(strings.Join(r.Warnings, "\n"), "float32 rounding") {
		t.Errorf("no precision warning for sigma 1e-9: %q", r.Warnings)
	}
	if r := analyzeOnce(t, m, base(), "hello world")[0]; len(r.Warnings) != 0 {
		t.Errorf("warnings at the default sigma: %q", r.Warnings)
	}
}

// TestDamagedGraphRebuilt: a cached graph file that onnxruntime cannot
// load is rebuilt instead of failing every later run.
func TestDamagedGraphRebuilt(t *testing.T) {
	m := tinyModel(t)
	want := analyzeOnce(t, m, base(), "hello")[0]
	graphs, _ := filepath.Glob(filepath.Join(m.Dir, "graph-*.onnx"))
	if len(graphs) != 1 {
		t.Fatalf("graphs: %v", graphs)
	}
	if err := os.WriteFile(graphs[0], []byte("not a protobuf"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := analyzeOnce(t, m, base(), "hello")[0]
	if !reflect.DeepEqual(got, want) {
		t.Error("result changed after rebuilding the graph")
	}
}

func TestOptionErrors(t *testing.T) {
	m := tinyModel(t)
	for _, tc := range []struct {
		name string
		mod  func(*analyze.Options)
		want string
	}{
		{"layer too deep", func(o *analyze.Options) { o.HiddenStates = []int{3} }, "site resid has indices 0..2, got 3"},
		{"attn.0", func(o *analyze.Options) { o.Site, o.HiddenStates = analyze.SiteAttn, []int{0} }, "site attn has indices 1..2, got 0"},
		{"mlp too deep", func(o *analyze.Options) { o.Site, o.HiddenStates = analyze.SiteMLP, []int{3} }, "site mlp has indices 1..2, got 3"},
		{"logits with an index", func(o *analyze.Options) { o.Site = analyze.SiteLogits }, "site logits has no layer index"},
		{"unknown site", func(o *analyze.Options) { o.Site = "hidden" }, `unknown site "hidden"`},
		{"norm without index", func(o *analyze.Options) { o.Site, o.HiddenStates = analyze.SiteNorm, nil }, "no hidden state"},
		{"duplicate layer", func(o *analyze.Options) { o.HiddenStates = []int{1, 1} }, "twice"},
		{"no samples", func(o *analyze.Options) { o.Samples = 0 }, "samples"},
		{"bad sigma", func(o *analyze.Options) { o.Sigma = -1 }, "sigma"},
	} {
		opt := base()
		tc.mod(&opt)
		if _, err := analyze.New(m, opt, runtime.SessionOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestLogitBaselines(t *testing.T) {
	// Two positions, vocab 2: position 0 predicts token 1 with logits (0, ln 3),
	// so p = 3/4, surprisal ln(4/3), entropy -(1/4 ln 1/4 + 3/4 ln 3/4), max-softmax 3/4.
	logits := []float32{0, 1.0986123, 0, 0}
	b := analyze.LogitBaselines(logits, []int{0, 1}, 2)
	near := func(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }
	if !near(b.Surprisal, 0.2876821) || !near(b.Entropy, 0.5623351) || !near(b.MaxSoftmax, 0.75) || b.Tokens[0] != 0 {
		t.Errorf("baselines = %+v", b)
	}
	_ = drift.Pinch
}

// TestAdaptiveK: with Stop, nudges are drawn in rounds of FirstRound, then
// doubling, and a run that stopped after n nudges gives exactly the result
// of a fixed run with Samples = n (same nudges, same order).
func TestAdaptiveK(t *testing.T) {
	m := tinyModel(t)
	prompts := []string{"hello world", "abc def ghi jkl"}
	cases := []struct {
		name    string
		samples int
		stopAt  int   // first Result.Samples Stop says yes to (0: never)
		seen    []int // Samples of the partial results Stop sees
		used    int
	}{
		{"stops after the first round", 40, 8, []int{8}, 8},
		{"stops after the second round", 40, 16, []int{8, 16}, 16},
		{"never stops: capped at Samples", 40, 0, []int{8, 16, 32}, 40},
		{"Samples below the first round", 5, 0, nil, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var seen []int
			opt := base()
			opt.Samples = tc.samples
			opt.BatchRows = 7 // rounds and batches do not line up
			opt.Stop = func(r *analyze.Result) bool {
				seen = append(seen, r.Samples)
				return tc.stopAt > 0 && r.Samples >= tc.stopAt
			}
			got := analyzeOnce(t, m, opt, prompts[0])[0]
			if got.Samples != tc.used {
				t.Errorf("used %d nudges, want %d", got.Samples, tc.used)
			}
			if !reflect.DeepEqual(seen, tc.seen) {
				t.Errorf("Stop saw results after %v nudges, want %v", seen, tc.seen)
			}
			fixed := base()
			fixed.Samples = tc.used
			want := analyzeOnce(t, m, fixed, prompts[0])[0]
			if !reflect.DeepEqual(got, want) {
				t.Errorf("adaptive run of %d nudges differs from a fixed run of %d:\n%+v\n%+v", tc.used, tc.used, got.Layers[0].Aggregate, want.Layers[0].Aggregate)
			}
		})
	}
	// Isolation mode has no per-nudge prompt value: Stop is not asked.
	iso := base()
	iso.Isolate = true
	iso.Stop = func(*analyze.Result) bool { t.Error("Stop called in isolation mode"); return true }
	if r := analyzeOnce(t, m, iso, prompts[1])[0]; r.Samples != iso.Samples {
		t.Errorf("isolation mode used %d nudges per token, want %d", r.Samples, iso.Samples)
	}
}

// TestMatmulAccuracyOption: the level is checked, applies to a quantized
// store only, and leaves the model it was given unchanged.
func TestMatmulAccuracyOption(t *testing.T) {
	m := tinyModel(t)
	opt := base()
	opt.MatmulAccuracy = 5
	if _, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1}); err == nil || !strings.Contains(err.Error(), "accuracy") {
		t.Errorf("level 5 accepted: %v", err)
	}
	opt.MatmulAccuracy = 4
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	if got := an.Options().MatmulAccuracy; got != 0 {
		t.Errorf("float32 store: effective level %d, want 0", got)
	}
	if m.AccuracyLevel != 0 {
		t.Errorf("the model's level changed to %d", m.AccuracyLevel)
	}
}

// TestEstimateMemory: the estimate counts the weights of the blocks the
// graph runs (more for a deeper point), and a batch within the budget.
func TestEstimateMemory(t *testing.T) {
	m := tinyModel(t)
	shallow, deep := base(), base()
	shallow.HiddenStates, deep.HiddenStates = []int{1}, []int{2}
	a, err := analyze.EstimateMemory(m, shallow)
	if err != nil {
		t.Fatal(err)
	}
	b, err := analyze.EstimateMemory(m, deep)
	if err != nil {
		t.Fatal(err)
	}
	if !(a.Weights > 0 && b.Weights > a.Weights) {
		t.Errorf("weights: hidden state 1 %d bytes, 2 %d bytes; want 0 < first < second", a.Weights, b.Weights)
	}
	if a.Batch <= 0 || a.Batch > 2*analyze.DefaultBatchMiB<<20 || a.Runtime != analyze.RuntimeBytes || a.Total() != a.Weights+a.Batch+a.Runtime {
		t.Errorf("estimate %+v: batch must be within twice the %d MiB budget, runtime %d", a, analyze.DefaultBatchMiB, analyze.RuntimeBytes)
	}
	small := deep
	small.BatchMiB, small.MaxTokens = 1, 64
	c, err := analyze.EstimateMemory(m, small)
	if err != nil {
		t.Fatal(err)
	}
	if c.Batch >= b.Batch || c.Weights != b.Weights {
		t.Errorf("a 1 MiB budget and 64 tokens: %+v, default: %+v; want a smaller batch, the same weights", c, b)
	}
}
