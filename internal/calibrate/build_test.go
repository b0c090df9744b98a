package calibrate_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/calibrate"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// tinyModel is a synthetic model with an untied head: with a tied one the
// random model mostly repeats its input token, and the passages it
// generates are nearly all the same.
func tinyModel(t *testing.T) *store.Model {
	t.Helper()
	testutil.Runtime(t)
	tm := testutil.DefaultTiny()
	tm.Untied = true
	path := testutil.WriteTiny(t, tm)
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func analyzeAll(t *testing.T, m *store.Model, opt analyze.Options, texts []string) []*analyze.Result {
	t.Helper()
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	var out []*analyze.Result
	for _, s := range texts {
		r, err := an.Analyze(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func texts(ps []generate.Passage) []string {
	var out []string
	for _, p := range ps {
		if strings.TrimSpace(p.Text) != "" {
			out = append(out, p.Text)
		}
	}
	return out
}

// TestFromModelTiny builds a self-generated reference on the tiny model
// end to end and checks (1) an exact property: without prefixes, the
// reference texts themselves, scored again, have percentiles 0, 1/(n-1),
// ..., 1 within each prompt-length bucket (mean exactly 1/2), (2) held-out
// passages of the same generator land in the middle (median percentile in
// [0.3, 0.7]) and (3) with prefixes, the length buckets below the
// passages' own get values.
func TestFromModelTiny(t *testing.T) {
	m := tinyModel(t)
	aopt := analyze.Options{HiddenStates: []int{1, 2}, Samples: 4, Sigma: 0.05, Seed: 5}
	gopt := generate.Options{Passages: 300, Tokens: 8, Seed: 1, Start: []int{'T'}}
	ref, ps, err := calibrate.FromModel(m, gopt, calibrate.Options{Analyze: aopt, Session: runtime.SessionOptions{Threads: 1}, PrefixTarget: -1})
	if err != nil {
		t.Fatal(err)
	}
	id := ref.Identity
	if id.Model != "tiny" || id.Site != "resid" || !slices.Equal(id.HiddenStates, []int{1, 2}) || id.Aggregation != "flat" ||
		!strings.HasPrefix(id.Reference, `self-generated 300 passages of up to 8 tokens from "T", seed 1`) {
		t.Errorf("identity %+v", id)
	}
	if ref.Prompts+ref.Skipped != 300 || ref.Prompts < calibrate.MinPrompts || ref.Surprisal.Empty() || ref.Prefixes != 0 {
		t.Fatalf("prompts %d skipped %d prefixes %d", ref.Prompts, ref.Skipped, ref.Prefixes)
	}

	own := analyzeAll(t, m, aopt, texts(ps))
	for _, h := range []int{1, 2} {
		l, _ := ref.Layer(h)
		sum := map[string]float64{}
		n := map[string]int{}
		seen := map[float64]bool{}
		for _, r := range own {
			s, err := ref.Score(r, drift.Expand, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, ls := range s.Layers {
				if ls.Index == h && !ls.Prompt.Extrapolated {
					sum[ls.Prompt.Against] += ls.Prompt.Percentile
					n[ls.Prompt.Against]++
					seen[ls.Prompt.Percentile] = true
				}
			}
		}
		for b, d := range l.PromptByLength {
			label := calibrate.LengthLabel(b)
			if d.N < calibrate.MinBucket {
				continue
			}
			if n[label] != d.N {
				t.Errorf("layer %d, %s: %d own texts scored against it, the bucket has %d", h, label, n[label], d.N)
			}
			if mean := sum[label] / float64(n[label]); math.Abs(mean-0.5) > 1e-9 {
				t.Errorf("layer %d, %s: mean percentile of the reference's own texts = %v, want 1/2", h, label, mean)
			}
			t.Logf("layer %d: %s: %d texts", h, label, d.N)
		}
		if len(n) == 0 {
			t.Fatalf("layer %d: no length bucket has %d texts", h, calibrate.MinBucket)
		}
		if len(seen) < 2 {
			t.Errorf("layer %d: %d distinct percentiles", h, len(seen))
		}
	}

	// With prefixes (the default), every bucket below the longest texts'
	// gets values.
	withPrefixes, _, err := calibrate.FromModel(m, gopt, calibrate.Options{Analyze: aopt, Session: runtime.SessionOptions{Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	l0, _ := ref.Layer(2)
	l1, _ := withPrefixes.Layer(2)
	if withPrefixes.Prefixes == 0 || l1.PromptByLength[0].N < calibrate.MinBucket ||
		l1.PromptByLength[0].N <= l0.PromptByLength[0].N || l1.Tokens[1].N != l0.Tokens[1].N {
		t.Errorf("prefixes %d: bucket 1–4 has %d values (without prefixes %d); position 1 %d (want unchanged %d)",
			withPrefixes.Prefixes, l1.PromptByLength[0].N, l0.PromptByLength[0].N, l1.Tokens[1].N, l0.Tokens[1].N)
	}
	t.Logf("with prefixes: %d prefixes; by length %d %d %d %d %d", withPrefixes.Prefixes,
		l1.PromptByLength[0].N, l1.PromptByLength[1].N, l1.PromptByLength[2].N, l1.PromptByLength[3].N, l1.PromptByLength[4].N)

	gen, err := generate.New(m, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	gopt.Seed = 2
	held, err := gen.Generate(gopt, nil)
	gen.Close()
	if err != nil {
		t.Fatal(err)
	}
	var pct []float64
	for _, r := range analyzeAll(t, m, aopt, texts(held)) {
		s, err := withPrefixes.Score(r, drift.Expand, nil)
		if err != nil {
			t.Fatal(err)
		}
		pct = append(pct, s.Layers[1].Prompt.Percentile)
	}
	slices.Sort(pct)
	med := pct[len(pct)/2]
	t.Logf("held-out: %d passages, median percentile %.3f, quartiles %.3f %.3f", len(pct), med, pct[len(pct)/4], pct[3*len(pct)/4])
	if med < 0.3 || med > 0.7 {
		t.Errorf("held-out median percentile %.3f, want within [0.3, 0.7]", med)
	}
}

func TestFromTextsTooFew(t *testing.T) {
	m := tinyModel(t)
	aopt := analyze.Options{HiddenStates: []int{1}, Samples: 2, Sigma: 0.05}
	_, err := calibrate.FromTexts(m, []string{"a b", "  ", "c d"}, "file x sha256 y", calibrate.Options{Analyze: aopt})
	if err == nil || !strings.Contains(err.Error(), "2 usable texts (1 refused)") {
		t.Errorf("err = %v", err)
	}
}

// TestRealModel builds a small self-generated reference on the real model
// at one layer and reports (asserting only what is guaranteed) where a
// plain sentence and its keyboard-mash twin fall. LMOOD_CALIB_PASSAGES
// sets the reference size (default 24).
func TestRealModel(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	n := 24
	if s := os.Getenv("LMOOD_CALIB_PASSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	layers := []int{15}
	if os.Getenv("LMOOD_CALIB_ALL_LAYERS") == "1" {
		layers = nil
		for i := 0; i <= m.Config().Layers; i++ {
			layers = append(layers, i)
		}
	}
	aopt := analyze.Options{HiddenStates: layers, Samples: 8, Sigma: 0.05, Seed: 1}
	gopt := generate.Options{Passages: n, Tokens: 24, Seed: 1}
	t0 := time.Now()
	var genDone time.Duration
	ref, _, err := calibrate.FromModel(m, gopt, calibrate.Options{Analyze: aopt, Progress: func(stage string, done, total int) {
		if stage == "generate" && done == total {
			genDone = time.Since(t0)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d passages × 24 tokens, K=8, %d layer(s): generate %v, generate+analyze %v; %d used, %d skipped, max position %d",
		n, len(layers), genDone.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond), ref.Prompts, ref.Skipped, ref.MaxPosition)
	dir := t.TempDir()
	path, err := ref.Save(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	t.Logf("calibration file %s: %d bytes", fi.Name(), fi.Size())
	want := calibrate.IdentityFor(m, aopt, "", "")
	if _, _, err := calibrate.Find(dir, want); err != nil {
		t.Fatal(err)
	}
	pairs := [][2]string{
		{"The cat sat on the mat and looked out of the window.", "The cat sat on the mat and lkjh qwpo zxmv asdf the window."},
		{"Eggplants are purple.", "Eggplants are sdfkj."},
	}
	aopt.Surprisal = true
	h := layers[len(layers)/2]
	for _, pr := range pairs {
		for _, r := range analyzeAll(t, m, aopt, pr[:]) {
			for _, dir := range []drift.Direction{drift.Pinch, drift.Expand} {
				s, err := ref.Score(r, dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				var l calibrate.LayerScore
				for _, x := range s.Layers {
					if x.Index == h {
						l = x
					}
				}
				t.Logf("%-60q %-6s layer %d: ln-ratio %.3f percentile %.3f p %.3f | surprisal pct %.3f p %.3f | entropy pct %.3f | fisher p %.4f min-p %.4f %v",
					r.Prompt, dir, h, l.Prompt.Raw, l.Prompt.Percentile, l.Prompt.P, s.Surprisal.Percentile, s.Surprisal.P, s.Entropy.Percentile, l.Combined.FisherP, l.Combined.MinP, s.Warnings)
			}
		}
	}
}

// TestPassagesCached: the passages of a self-generated reference are
// saved in the model's store directory and read back by a later run with
// the same options (a run with another seed generates its own).
func TestPassagesCached(t *testing.T) {
	m := tinyModel(t)
	g := generate.Options{Passages: 3, Tokens: 4, Seed: 1, Start: []int{'T'}}
	ps, start, err := calibrate.Passages(m, g, runtime.SessionOptions{Threads: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(m.Dir, "passages-*.json"))
	if len(ps) != 3 || start != "T" || len(files) != 1 {
		t.Fatalf("%d passages from %q, cache files %v", len(ps), start, files)
	}
	// Mark the cached copy: a second run must return the mark.
	data, _ := os.ReadFile(files[0])
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	raw["passages"].([]any)[0].(map[string]any)["Text"] = "from the cache"
	data, _ = json.Marshal(raw)
	os.WriteFile(files[0], data, 0o644)
	again, _, err := calibrate.Passages(m, g, runtime.SessionOptions{Threads: 1}, nil)
	if err != nil || again[0].Text != "from the cache" || !slices.Equal(again[1].IDs, ps[1].IDs) {
		t.Fatalf("second run: %v, first passage %q", err, again[0].Text)
	}
	// Passages sampled by graphs of another rounding revision are sampled
	// again (the cache key holds the revision too; a file that says
	// otherwise is not trusted).
	raw["graph_revision"] = store.RoundingRevision - 1
	data, _ = json.Marshal(raw)
	os.WriteFile(files[0], data, 0o644)
	if fresh, _, err := calibrate.Passages(m, g, runtime.SessionOptions{Threads: 1}, nil); err != nil || fresh[0].Text == "from the cache" || !slices.Equal(fresh[0].IDs, ps[0].IDs) {
		t.Fatalf("passages of graph revision %d were reused (or differ when sampled again): %v", store.RoundingRevision-1, err)
	}
	g.Seed = 2
	other, _, err := calibrate.Passages(m, g, runtime.SessionOptions{Threads: 1}, nil)
	if err != nil || other[0].Text == "from the cache" {
		t.Fatalf("another seed: %v, %q", err, other[0].Text)
	}
	if files, _ = filepath.Glob(filepath.Join(m.Dir, "passages-*.json")); len(files) != 2 {
		t.Errorf("cache files %v, want one per seed", files)
	}
}
