package analyze_test

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

// TestSitesMatchGraph: at every site, the analyzer's per-token and
// prompt-level drift are the angles between the clean and nudged vectors
// of that site, as a graph exposing the same points computes them.
func TestSitesMatchGraph(t *testing.T) {
	m := tinyModel(t)
	c := m.Config()
	const prompt, K = "the cat sat on it", 2
	for _, site := range arch.Sites {
		var idx []int
		if site.Indexed() {
			lo, hi := site.Range(c.Layers)
			for i := lo; i <= hi; i++ {
				idx = append(idx, i)
			}
		}
		t.Run(string(site), func(t *testing.T) {
			opt := analyze.Options{Site: site, HiddenStates: idx, Samples: K, Sigma: 0.05, Seed: 9}
			an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer an.Close()
			res, err := an.Analyze(prompt)
			if err != nil {
				t.Fatal(err)
			}
			eff := an.Options()
			if len(res.Layers) != len(eff.HiddenStates) {
				t.Fatalf("%d layers for %v", len(res.Layers), eff.HiddenStates)
			}

			// The same points, run by hand on the clean and nudged embeddings.
			toks, _ := an.Tokenize(prompt)
			ids := make([]int, len(toks))
			for i, tk := range toks {
				ids[i] = tk.ID
			}
			T := len(ids)
			emb, err := m.Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			e := drift.Matrix{Rows: T, Cols: c.Dim, Data: emb}
			batch := append([]float32{}, emb...)
			nudged := make([]float32, K*len(emb))
			if err := drift.NudgeBatch(nudged, e, drift.NudgeOptions{Sigma: opt.Sigma}, opt.Seed, analyze.PromptKey(prompt), 0, K); err != nil {
				t.Fatal(err)
			}
			batch = append(batch, nudged...)
			var points []arch.Point
			var outs []runtime.Output
			for _, h := range eff.HiddenStates {
				p := arch.Point{Site: site, Index: h}
				points = append(points, p)
				outs = append(outs, runtime.Output{Name: p.Name(), Width: c.Width(site)})
			}
			s, err := m.OpenSession(arch.GraphOptions{Outputs: points}, arch.InputEmbeds, outs, runtime.SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got, err := s.Run(batch, K+1, T)
			if err != nil {
				t.Fatal(err)
			}
			sel, _ := drift.Select(T, true, nil)
			for li, l := range res.Layers {
				if l.Site != site || l.Index != eff.HiddenStates[li] {
					t.Errorf("layer %d is %s %d, want %s %d", li, l.Site, l.Index, site, eff.HiddenStates[li])
				}
				w := c.Width(site)
				clean := drift.Matrix{Rows: T, Cols: w, Data: got[li][:T*w]}
				tokMean := make([]float64, T)
				var promptMean float64
				for k := 1; k <= K; k++ {
					nd := drift.Matrix{Rows: T, Cols: w, Data: got[li][k*T*w : (k+1)*T*w]}
					ang, ok := make([]float64, T), make([]bool, T)
					if _, err := drift.TokenAnglesDeg(ang, ok, clean, nd); err != nil {
						t.Fatal(err)
					}
					for i := range ang {
						tokMean[i] += ang[i] / K
					}
					pa, _, err := drift.SelectionAngleDeg(clean, nd, sel)
					if err != nil {
						t.Fatal(err)
					}
					promptMean += pa / K
				}
				near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*math.Abs(b)+1e-6 }
				for i := range tokMean {
					if !near(l.TokenDrift[i].Mean, tokMean[i]) {
						t.Errorf("%s token %d: drift %.6g°, by hand %.6g°", arch.Point{Site: site, Index: l.Index}, i, l.TokenDrift[i].Mean, tokMean[i])
					}
				}
				if !near(l.Drift.Mean, promptMean) || !l.Ratio.Defined {
					t.Errorf("%s prompt: drift %.6g°, by hand %.6g° (ratio %+v)", arch.Point{Site: site, Index: l.Index}, l.Drift.Mean, promptMean, l.Ratio)
				}
			}
			if site == arch.SiteLogits && (len(res.Layers) != 1 || res.Layers[0].Index != c.Layers) {
				t.Errorf("logits layers %+v, want one at index %d", res.Layers, c.Layers)
			}
		})
	}
}

// TestSitesDiffer: the sites are different vectors, so their drifts differ.
func TestSitesDiffer(t *testing.T) {
	m := tinyModel(t)
	seen := map[float64]arch.Site{}
	for _, site := range []arch.Site{arch.SiteResid, arch.SiteNorm, arch.SiteAttn, arch.SiteMLP} {
		opt := base()
		opt.Site, opt.HiddenStates = site, []int{1}
		r := analyzeOnce(t, m, opt, "hello world")[0]
		d := r.Layers[0].Drift.Mean
		if other, dup := seen[d]; dup {
			t.Errorf("sites %s and %s gave the same drift %v", site, other, d)
		}
		seen[d] = site
	}
}

// TestHugeContextLength: a manifest claiming a context of 2^62 tokens does
// not overflow the prompt-length pre-check (which refused every prompt).
func TestHugeContextLength(t *testing.T) {
	m := tinyModel(t)
	m.Manifest.Config.ContextLength = 1 << 62
	r := analyzeOnce(t, m, base(), "hello world")[0]
	if !r.Layers[0].Ratio.Defined {
		t.Errorf("no ratio: %+v", r.Layers[0])
	}
	for _, tc := range []struct{ a, b, want int }{
		{3, 4, 12}, {1 << 62, 3, math.MaxInt}, {math.MaxInt, 2, math.MaxInt}, {0, 5, 0}, {1 << 31, 1 << 31, 1 << 62},
	} {
		if got := analyze.SatMul(tc.a, tc.b); got != tc.want {
			t.Errorf("SatMul(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

// TestDamagedLogitsGraphRebuilt: the graphs behind the logit baselines are
// rebuilt when their cached files are damaged, like the drift graph.
func TestDamagedLogitsGraphRebuilt(t *testing.T) {
	m := tinyModel(t)
	opt := base()
	opt.Surprisal = true
	want := analyzeOnce(t, m, opt, "hello world")[0]
	graphs, _ := filepath.Glob(filepath.Join(m.Dir, "graph-*.onnx"))
	if len(graphs) != 3 {
		t.Fatalf("graphs: %v", graphs)
	}
	for _, g := range graphs {
		if err := os.WriteFile(g, []byte("not a protobuf"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := analyzeOnce(t, m, opt, "hello world")[0]
	if !reflect.DeepEqual(got, want) || got.Baselines == nil {
		t.Error("result changed after rebuilding the graphs")
	}
}

// TestLogitBuffersBounded: the logit baselines project the prompt onto the
// vocabulary in slices that fit the batch memory budget, with the same
// result, and a logits site takes fewer rows per batch than a resid site.
func TestLogitBuffersBounded(t *testing.T) {
	m := tinyModel(t)
	c := m.Config()
	opt := base()
	opt.Surprisal = true
	const prompt = "abc def ghi jkl"
	whole := analyzeOnce(t, m, opt, prompt)[0]

	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	// Room for two positions' logits (three [vocab] float32 copies each).
	analyze.SetBudget(an, 2*3*4*c.Vocab)
	before := an.Passes()
	sliced, err := an.Analyze(prompt)
	if err != nil {
		t.Fatal(err)
	}
	T := len(sliced.Tokens)
	drift1 := max(1, (opt.Samples+1+analyze.RowsPerBatch(an, T)-1)/analyze.RowsPerBatch(an, T))
	if head := an.Passes() - before - drift1 - 1; head != (T-1+1)/2 {
		t.Errorf("%d head passes for %d predicting positions in slices of 2, want %d", head, T-1, (T-1+1)/2)
	}
	wb, sb := whole.Baselines, sliced.Baselines
	if math.Abs(wb.Surprisal-sb.Surprisal) > 1e-6 || math.Abs(wb.Entropy-sb.Entropy) > 1e-6 || math.Abs(wb.MaxSoftmax-sb.MaxSoftmax) > 1e-6 {
		t.Errorf("sliced baselines %+v differ from whole %+v", sb, wb)
	}
	for i := range wb.Tokens {
		if math.Abs(wb.Tokens[i]-sb.Tokens[i]) > 1e-5 {
			t.Errorf("token %d surprisal %v sliced, %v whole", i, sb.Tokens[i], wb.Tokens[i])
		}
	}

	lo := base()
	lo.Site, lo.HiddenStates = analyze.SiteLogits, nil
	la, err := analyze.New(m, lo, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	ra, err := analyze.New(m, base(), runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	const budget = 4 << 20
	analyze.SetBudget(la, budget)
	analyze.SetBudget(ra, budget)
	const longT = 200
	if l, r := analyze.RowsPerBatch(la, longT), analyze.RowsPerBatch(ra, longT); l >= r {
		t.Errorf("rows per batch at %d tokens: logits %d, resid %d; the logits buffers are not counted", longT, l, r)
	} else if need := 4 * 3 * longT * c.Vocab * l; need > budget {
		t.Errorf("%d logits rows of %d tokens need %d bytes, over the %d budget", l, longT, need, budget)
	}
}

// probePairs reads the first n probe pairs (the published replication's).
func probePairs(t *testing.T, n int) [][2]string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "prompts", "probes.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pairs [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() && len(pairs) < n {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		parts := strings.Split(line, "\t")
		if len(parts) != 3 {
			t.Fatalf("probe line %q", line)
		}
		pairs = append(pairs, [2]string{parts[1], parts[2]})
	}
	return pairs
}

// TestLogitsProbeReplication runs the language-model replication's exact
// configuration on the real model: whole-prompt noise, position 0
// included, K = 50, sigma = 0.01, the logits as the probe, on the first
// two probe pairs it printed (all four take about a minute). It logs the
// side-by-side table.
func TestLogitsProbeReplication(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	c := m.Config()
	opt := analyze.Options{Site: analyze.SiteLogits, Noise: drift.Whole, IncludeFirst: true, Samples: 50, Sigma: 0.01, Seed: 1}
	an, err := analyze.New(m, opt, runtime.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer an.Close()
	for _, pair := range probePairs(t, 2) {
		var row []string
		for _, p := range pair {
			r, err := an.Analyze(p)
			if err != nil {
				t.Fatal(err)
			}
			l := r.Layers[0]
			if l.Site != analyze.SiteLogits || l.Index != c.Layers || r.FirstToken != "included" || r.Selected != len(r.Tokens) {
				t.Errorf("%q: site %s index %d, first token %s, %d of %d tokens selected", p, l.Site, l.Index, r.FirstToken, r.Selected, len(r.Tokens))
			}
			if !l.Ratio.Defined || l.Ratio.Invalid != 0 || !(l.Ratio.Mean > 0) || math.IsInf(l.Ratio.Mean, 0) {
				t.Errorf("%q: ratio %+v", p, l.Ratio)
			}
			// Whole-prompt noise sigma*|E|*Z with Z standard normal has a norm
			// of about sigma*|E|*sqrt(T*d): the input angle is about
			// atan(sigma*sqrt(T*d)).
			want := math.Atan(opt.Sigma*math.Sqrt(float64(len(r.Tokens)*c.Dim))) * 180 / math.Pi
			if in := r.InputAngle.Mean; math.Abs(in-want) > 0.1*want {
				t.Errorf("%q: input angle %.3f°, want about %.3f°", p, in, want)
			}
			row = append(row, fmt.Sprintf("%s %.3f ± %.3f", p, l.Ratio.Mean, l.Ratio.Std))
		}
		t.Logf("%s  |  %s", row[0], row[1])
	}
}
