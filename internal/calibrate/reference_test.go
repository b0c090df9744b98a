package calibrate

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

func testIdentity() Identity {
	return Identity{
		Model: "m", GGUFSHA256: "abc", ConverterVersion: 1, GraphRevision: 6, Site: "resid", HiddenStates: []int{3, 5},
		Samples: 8, Sigma: 0.05, Noise: "per-token", Aggregation: "angle", Reference: "self-generated test",
	}
}

func stat(v float64) analyze.Stat { return analyze.Stat{Mean: v, Defined: true} }

// fakeResult is a result of T tokens whose prompt ratio is e^x at every
// layer and whose token t has ratio e^(x+t) and surprisal x+t.
func fakeResult(id Identity, x float64, T int) *analyze.Result {
	r := &analyze.Result{Tokens: make([]analyze.Token, T), Baselines: &analyze.Baselines{Tokens: make([]float64, T), Surprisal: x, Entropy: 2 * x, MaxSoftmax: 1 / (1 + x)}}
	for _, h := range id.HiddenStates {
		l := analyze.Layer{Site: analyze.Site(id.Site), Index: h, Ratio: stat(math.Exp(x)), TokenRatio: make([]analyze.Stat, T)}
		for t := range l.TokenRatio {
			l.TokenRatio[t] = stat(math.Exp(x + float64(t)))
		}
		r.Layers = append(r.Layers, l)
	}
	for t := 1; t < T; t++ {
		r.Baselines.Tokens[t] = x + float64(t)
	}
	return r
}

// buildFake builds a reference of n results x = 0, 1, ..., n-1 of T tokens.
func buildFake(t *testing.T, id Identity, n, T int) *Reference {
	t.Helper()
	b := NewBuilder(id, nil)
	for i := 0; i < n; i++ {
		if err := b.Add(fakeResult(id, float64(i), T)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := b.Reference()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestBucket(t *testing.T) {
	want := map[int]int{0: 0, 1: 1, 2: 2, 3: 2, 4: 3, 7: 3, 8: 4, 15: 4, 16: 5, 31: 5, 32: 6, 1000: 6}
	for pos, b := range want {
		if got := Bucket(pos); got != b {
			t.Errorf("Bucket(%d) = %d, want %d", pos, got, b)
		}
	}
}

func TestBuilderTooSmall(t *testing.T) {
	id := testIdentity()
	b := NewBuilder(id, nil)
	for i := 0; i < MinPrompts-1; i++ {
		b.Add(fakeResult(id, float64(i), 3))
	}
	b.Skip()
	if _, err := b.Reference(); !errors.Is(err, ErrTooSmall) || !strings.Contains(err.Error(), "19 usable texts (1 refused)") {
		t.Errorf("err = %v, want ErrTooSmall naming 19 texts and 1 refused", err)
	}
	if _, err := NewBuilder(id, nil).Reference(); !errors.Is(err, ErrTooSmall) {
		t.Errorf("empty reference: err = %v", err)
	}
	bad := fakeResult(Identity{Site: "resid", HiddenStates: []int{3, 6}}, 0, 3)
	if err := NewBuilder(id, nil).Add(bad); err == nil || !strings.Contains(err.Error(), "resid.6") {
		t.Errorf("a result of other layers: err = %v", err)
	}
}

func TestBuildAndScore(t *testing.T) {
	id := testIdentity()
	const n, T = 21, 5
	r := buildFake(t, id, n, T)
	l, ok := r.Layer(5)
	if !ok || r.Prompts != n || r.MaxPosition != T-1 {
		t.Fatalf("layer 5 %v, prompts %d, max position %d", ok, r.Prompts, r.MaxPosition)
	}
	if l.Prompt.N != n || l.Prompt.Q[0] != 0 || math.Abs(l.Prompt.Q[n-1]-(n-1)) > 1e-12 {
		t.Errorf("prompt distribution %+v, want the ln-ratios 0..20", l.Prompt)
	}
	// Token buckets: {0}, {1}, {2, 3}, {4}, then empty.
	for b, want := range []int{n, n, 2 * n, n, 0, 0, 0} {
		if l.Tokens[b].N != want {
			t.Errorf("bucket %d has %d values, want %d", b, l.Tokens[b].N, want)
		}
	}
	if r.TokenSurprisal[0].N != 0 || r.TokenSurprisal[2].N != 2*n || r.Surprisal.N != n {
		t.Errorf("surprisal buckets %d %d, prompt %d", r.TokenSurprisal[0].N, r.TokenSurprisal[2].N, r.Surprisal.N)
	}

	// A prompt of the reference's length (5 tokens) at its 15th value
	// (x = 15 of 0..20, CDF 0.75).
	res := fakeResult(id, 15, 5)
	s, err := r.Score(res, drift.Expand, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := s.Layers[1].Prompt
	if math.Abs(p.Percentile-0.75) > 1e-12 || math.Abs(p.P-(1+21*0.25)/22) > 1e-12 {
		t.Errorf("expand: percentile %v p %v, want 0.75 and 6.25/22", p.Percentile, p.P)
	}
	s, _ = r.Score(res, drift.Pinch, nil)
	p = s.Layers[1].Prompt
	if math.Abs(p.Percentile-0.25) > 1e-12 || math.Abs(p.P-(1+21*0.75)/22) > 1e-12 || p.Z >= 0 {
		t.Errorf("pinch: percentile %v p %v z %v, want 0.25, 16.75/22, negative", p.Percentile, p.P, p.Z)
	}
	// Surprisal is oriented upward, max-softmax downward.
	if math.Abs(s.Surprisal.Percentile-0.75) > 1e-12 || math.Abs(s.MaxSoftmax.Percentile-0.75) > 1e-12 {
		t.Errorf("surprisal percentile %v, max-softmax %v; want 0.75 both", s.Surprisal.Percentile, s.MaxSoftmax.Percentile)
	}
	c := s.Layers[1].Combined
	stat, fp, _ := Fisher(p.P, s.Surprisal.P, s.Entropy.P)
	mp, _ := MinP(p.P, s.Surprisal.P, s.Entropy.P)
	if c == nil || c.Fisher != stat || c.FisherP != fp || c.MinP != mp {
		t.Errorf("combined %+v, want Fisher %v %v, min-p %v", c, stat, fp, mp)
	}
	if s.Layers[0].TokenCombined[0] != nil || s.Layers[0].TokenCombined[1] == nil || s.TokenSurprisal[0] != nil {
		t.Error("position 0 has a surprisal combination, or position 1 none")
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for a prompt within the reference: %v", s.Warnings)
	}
}

// TestLongPrompt: positions past the reference are still scored, flagged
// and warned about.
func TestLongPrompt(t *testing.T) {
	id := testIdentity()
	r := buildFake(t, id, 21, 5)
	s, err := r.Score(fakeResult(id, 3, 40), drift.Expand, nil)
	if err != nil {
		t.Fatal(err)
	}
	toks := s.Layers[0].Tokens
	for pos, v := range toks {
		if v == nil {
			t.Fatalf("token %d has no value", pos)
		}
		if want := pos > 4; v.Extrapolated != want {
			t.Errorf("token %d extrapolated = %v, want %v", pos, v.Extrapolated, want)
		}
	}
	// Position 39 is compared with bucket 3 (position 4 of the reference).
	if math.Abs(toks[39].Percentile-1) > 1e-12 || math.Abs(toks[4].Raw-7) > 1e-12 {
		t.Errorf("token 39 percentile %v, token 4 raw %v", toks[39].Percentile, toks[4].Raw)
	}
	// Two warnings: the prompt-length bucket (33+ tokens has no reference
	// values; 5–8 stands in) and the positions.
	if len(s.Warnings) != 2 || !strings.Contains(s.Warnings[0], "compared with prompts of 5–8 tokens") || !strings.Contains(s.Warnings[1], "40 tokens") {
		t.Errorf("warnings %v", s.Warnings)
	}
	if p := s.Layers[0].Prompt; !p.Extrapolated || p.Against != "5–8 tokens" {
		t.Errorf("prompt value %+v, want extrapolated against 5–8 tokens", p)
	}
	other := fakeResult(Identity{Site: "resid", HiddenStates: []int{4}}, 0, 3)
	if _, err := r.Score(other, drift.Expand, nil); !errors.Is(err, ErrMismatch) {
		t.Errorf("scoring an uncalibrated layer: err = %v", err)
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	id := testIdentity()
	r := buildFake(t, id, 21, 5)
	path, err := r.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != id.FileName() || !strings.HasPrefix(id.FileName(), "calibration-resid-") {
		t.Errorf("saved as %s", path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("saved file mode %v (%v), want 0644", fi.Mode(), err)
	}
	got, err := Load(path, id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Error("the loaded calibration differs from the saved one")
	}
	// A subset of the layers, and any reference, are accepted.
	sub := id
	sub.HiddenStates, sub.Reference = []int{5}, ""
	if _, err := Load(path, sub); err != nil {
		t.Errorf("subset: %v", err)
	}

	tests := []struct {
		name  string
		edit  func(*Identity)
		field string
	}{
		{"model", func(i *Identity) { i.Model = "other" }, "model"},
		{"gguf", func(i *Identity) { i.GGUFSHA256 = "def" }, "GGUF sha256"},
		{"converter", func(i *Identity) { i.ConverterVersion = 2 }, "converter version"},
		{"graph revision", func(i *Identity) { i.GraphRevision = 7 }, "graph revision: calibrated 6, asked 7"},
		{"site", func(i *Identity) { i.Site = "mlp" }, "site"},
		{"layers", func(i *Identity) { i.HiddenStates = []int{3, 7} }, "[7] not calibrated"},
		{"samples", func(i *Identity) { i.Samples = 4 }, "samples"},
		{"sigma", func(i *Identity) { i.Sigma = 0.01 }, "sigma"},
		{"noise", func(i *Identity) { i.Noise = "whole" }, "noise"},
		{"isolate", func(i *Identity) { i.Isolate = true }, "isolate"},
		{"include-first", func(i *Identity) { i.IncludeFirst = true }, "include-first"},
		{"aggregation", func(i *Identity) { i.Aggregation = "median" }, "aggregation"},
		{"reference", func(i *Identity) { i.Reference = "file x sha256 y" }, "reference"},
	}
	for _, tc := range tests {
		want := testIdentity()
		tc.edit(&want)
		_, err := Load(path, want)
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: err = %v, want a mismatch naming %q", tc.name, err, tc.field)
		}
	}
	// A file from before graph revisions were recorded (revision 0).
	old := testIdentity()
	old.GraphRevision = 0
	oldPath, err := buildFake(t, old, 21, 5).Save(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(oldPath, id); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "graph revision: calibrated on graphs older than revision 6, asked 6") {
		t.Errorf("revision 0: err = %v", err)
	}

	// Find: the covering file is found for a subset; another model's
	// request is refused with the reason.
	if _, p, err := Find(dir, sub); err != nil || p != path {
		t.Errorf("Find(subset) = %s, %v", p, err)
	}
	other := id
	other.Model = "other"
	if _, _, err := Find(dir, other); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "model: calibrated m, asked other") {
		t.Errorf("Find(other model): %v", err)
	}
	if _, _, err := Find(t.TempDir(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Find in an empty dir: %v", err)
	}

	// Corrupt and foreign-format files are refused.
	os.WriteFile(path, []byte("{not json"), 0o644)
	if _, err := Load(path, id); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt file: %v", err)
	}
	os.WriteFile(path, []byte(`{"format": 99}`), 0o644)
	if _, err := Load(path, id); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "format 99") {
		t.Errorf("format 99: %v", err)
	}
}

func TestLengthBucket(t *testing.T) {
	tests := []struct {
		n, bucket int
		label     string
	}{
		{1, 0, "1–4 tokens"}, {2, 0, "1–4 tokens"}, {4, 0, "1–4 tokens"}, {5, 1, "5–8 tokens"}, {8, 1, "5–8 tokens"},
		{9, 2, "9–16 tokens"}, {16, 2, "9–16 tokens"}, {17, 3, "17–32 tokens"}, {32, 3, "17–32 tokens"},
		{33, 4, "33+ tokens"}, {5000, 4, "33+ tokens"},
	}
	for _, tc := range tests {
		if b := LengthBucket(tc.n); b != tc.bucket || LengthLabel(b) != tc.label {
			t.Errorf("LengthBucket(%d) = %d (%s), want %d (%s)", tc.n, b, LengthLabel(b), tc.bucket, tc.label)
		}
	}
}

// TestPromptLengthBuckets: a prompt is compared with reference prompts of
// its length; a thin bucket falls back to the nearest full one, and with
// no full bucket to the pooled values, each time with a warning.
func TestPromptLengthBuckets(t *testing.T) {
	id := testIdentity()
	b := NewBuilder(id, nil)
	for i := 0; i < 21; i++ {
		b.Add(fakeResult(id, 100+float64(i), 3))    // short texts: ln-ratios 100..120
		b.AddPrefix(fakeResult(id, float64(i), 20)) // long prefixes: 0..20
	}
	r, err := b.Reference()
	if err != nil {
		t.Fatal(err)
	}
	if r.Prompts != 21 || r.Prefixes != 21 {
		t.Errorf("prompts %d prefixes %d, want 21 and 21", r.Prompts, r.Prefixes)
	}
	l, _ := r.Layer(3)
	if l.Prompt.N != 42 || l.PromptByLength[0].N != 21 || l.PromptByLength[3].N != 21 || l.PromptByLength[2].N != 0 {
		t.Errorf("pooled %d, by length %d %d %d", l.Prompt.N, l.PromptByLength[0].N, l.PromptByLength[2].N, l.PromptByLength[3].N)
	}
	// Prefixes add nothing per token: positions 3.. have no values.
	if l.Tokens[3].N != 0 || l.Tokens[0].N != 21 {
		t.Errorf("token buckets 0: %d, 3: %d; want 21 and 0", l.Tokens[0].N, l.Tokens[3].N)
	}
	tests := []struct {
		name    string
		x       float64
		tokens  int
		pct     float64
		against string
		warn    string
	}{
		{"short prompt, short texts", 105, 3, 0.25, "1–4 tokens", ""},
		{"long prompt, long prefixes", 5, 20, 0.25, "17–32 tokens", ""},
		{"same value, long prompt", 105, 20, 1, "17–32 tokens", ""},
		{"same value, short prompt", 5, 3, 0, "1–4 tokens", ""},
		{"thin bucket 9–16: nearest full one", 15, 12, 0.75, "17–32 tokens", "compared with prompts of 17–32 tokens"},
		{"thin bucket 5–8: nearest, shorter first", 110, 6, 0.5, "1–4 tokens", "compared with prompts of 1–4 tokens"},
		{"longer than any: 33+ falls back", 10, 50, 0.5, "17–32 tokens", "50-token prompt"},
	}
	for _, tc := range tests {
		s, err := r.Score(fakeResult(id, tc.x, tc.tokens), drift.Expand, nil)
		if err != nil {
			t.Fatal(err)
		}
		p := s.Layers[0].Prompt
		if math.Abs(p.Percentile-tc.pct) > 1e-12 || p.Against != tc.against || p.Extrapolated != (tc.warn != "") {
			t.Errorf("%s: percentile %v against %q extrapolated %v; want %v against %q", tc.name, p.Percentile, p.Against, p.Extrapolated, tc.pct, tc.against)
		}
		joined := strings.Join(s.Warnings, " | ")
		if tc.warn != "" && !strings.Contains(joined, tc.warn) || tc.warn == "" && strings.Contains(joined, "compared with prompts of") {
			t.Errorf("%s: warnings %q, want one containing %q", tc.name, joined, tc.warn)
		}
	}

	// No bucket has MinBucket values: the pooled distribution stands in.
	b = NewBuilder(id, nil)
	for i := 0; i < 10; i++ {
		b.Add(fakeResult(id, float64(i), 3))
		b.Add(fakeResult(id, float64(10+i), 20))
	}
	r, err = b.Reference()
	if err != nil {
		t.Fatal(err)
	}
	s, _ := r.Score(fakeResult(id, 10, 3), drift.Expand, nil)
	if p := s.Layers[0].Prompt; p.Against != "prompts of any length" || math.Abs(p.Percentile-10.0/19) > 1e-12 ||
		!strings.Contains(strings.Join(s.Warnings, " "), "every length") {
		t.Errorf("pooled fallback: %+v, warnings %v", p, s.Warnings)
	}
}

func TestPlanPrefixes(t *testing.T) {
	count := func(lengths []int, plan [][]int) []int {
		cnt := make([]int, len(LengthStarts))
		for i, ls := range plan {
			seen := map[int]bool{}
			for _, n := range ls {
				b := LengthBucket(n)
				if n < MinPrefixTokens || n >= lengths[i] || seen[b] {
					t.Errorf("text %d (%d tokens): prefix of %d tokens (bucket %d seen %v)", i, lengths[i], n, b, seen[b])
				}
				seen[b] = true
				cnt[b]++
			}
		}
		return cnt
	}
	rep := func(n, k int) []int { return slices.Repeat([]int{n}, k) }
	tests := []struct {
		name    string
		lengths []int
		target  int
		want    []int // prefixes per length bucket
	}{
		{"100 passages of 32 tokens", rep(32, 100), 50, []int{50, 50, 50, 0, 0}},
		{"few passages: one prefix per bucket each", rep(32, 10), 50, []int{10, 10, 10, 0, 0}},
		{"long texts feed 17–32 too", rep(40, 30), 20, []int{20, 20, 20, 20, 0}},
		{"short texts need none", rep(3, 100), 50, []int{0, 0, 0, 0, 0}},
		{"a full bucket gets none", append(rep(6, 60), rep(32, 60)...), 50, []int{50, 0, 50, 0, 0}},
		{"off", rep(32, 100), 0, []int{0, 0, 0, 0, 0}},
	}
	for _, tc := range tests {
		plan := PlanPrefixes(tc.lengths, tc.target, 1)
		if got := count(tc.lengths, plan); !slices.Equal(got, tc.want) {
			t.Errorf("%s: prefixes per bucket %v, want %v", tc.name, got, tc.want)
		}
		if again := PlanPrefixes(tc.lengths, tc.target, 1); !reflect.DeepEqual(again, plan) {
			t.Errorf("%s: two plans with the same seed differ", tc.name)
		}
	}
	// Prefixes spread over the texts: with 100 texts and 150 prefixes no
	// text gets more than 2.
	for i, p := range PlanPrefixes(rep(32, 100), 50, 1) {
		if len(p) > 2 {
			t.Errorf("text %d has %d prefixes", i, len(p))
		}
	}
}
