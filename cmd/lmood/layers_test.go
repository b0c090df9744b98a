package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemma2"
	"github.com/lmood/lmood/internal/arch/gpt2"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/testutil"
)

// TestMain removes the temporary model store and cache the real-model
// tests share.
func TestMain(m *testing.M) {
	code := m.Run()
	if cliCacheDir != "" {
		os.RemoveAll(cliCacheDir)
	}
	testutil.Cleanup()
	os.Exit(code)
}

// testMeta describes a fake run of a 30-block model.
func testMeta() layersMeta {
	return layersMeta{Model: "fake-30", NumLayers: 30, Resid0: nn.TokenRow, Opt: analyze.Options{
		Samples: 8, Sigma: 0.01, Seed: 1, Noise: drift.PerToken, Direction: drift.Pinch,
	}}
}

// testItems are two analyzed prompts and a failed one.
func testItems() []layersItem {
	hs := allHiddenStates(30)
	return []layersItem{
		{prompt: "Eggplants are fire-engine red.", res: eggplant(hs...), passes: 1},
		{prompt: "", err: analyze.ErrEmptyPrompt},
		{prompt: hostileResult().Prompt, res: hostileResult(hs...), passes: 1},
	}
}

func TestRenderLayersGolden(t *testing.T) {
	isolated := testMeta()
	isolated.Opt.Isolate = true
	tests := []struct {
		name  string
		items []layersItem
		meta  layersMeta
		width int
	}{
		{"nowrap", testItems(), testMeta(), 0},
		{"w100", testItems(), testMeta(), 100},
		{"w1", testItems()[:1], testMeta(), 1},
		{"isolate_w80", testItems(), isolated, 80},
		{"all_failed", []layersItem{{prompt: "x", err: analyze.ErrTooLong}}, testMeta(), 80},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := renderLayers(&buf, tc.items, tc.meta, tc.width); err != nil {
				t.Fatal(err)
			}
			assertTerminalSafe(t, buf.String())
			if tc.width > 1 {
				for i, line := range strings.Split(buf.String(), "\n") {
					// The footer and the summary lines are plain text; tables must fit.
					if strings.HasPrefix(line, "│") || strings.HasPrefix(line, "┌") {
						if w := tableCells.StringWidth(line); w > tc.width {
							t.Errorf("line %d is %d cells wide, limit %d: %q", i+1, w, tc.width, line)
						}
					}
				}
			}
			cmdGolden(t, "layers_"+tc.name, buf.Bytes())
		})
	}
}

func TestLayersRecord(t *testing.T) {
	meta := testMeta()
	one := fakeResult("Hi", []string{"Hi"}, []float64{0.8}, allHiddenStates(3))
	noValid := fakeResult("Hi", []string{"Hi"}, []float64{0.8}, allHiddenStates(3))
	for i := range noValid.Layers {
		noValid.Layers[i].Ratio = analyze.Stat{Invalid: 8}
		noValid.Layers[i].Drift = analyze.Stat{Invalid: 8}
	}
	tests := []struct {
		name      string
		item      layersItem
		meta      func(layersMeta) layersMeta
		wantLen   int
		wantNull  bool // the ratios are null
		wantError bool
	}{
		{"analyzed", layersItem{prompt: "Eggplants", res: eggplant(allHiddenStates(30)...), passes: 1}, nil, 30, false, false},
		{"one token", layersItem{prompt: "Hi", res: one, passes: 1}, nil, 3, false, false},
		{"one token, isolation", layersItem{prompt: "Hi", res: one, passes: 8}, func(m layersMeta) layersMeta { m.Opt.Isolate = true; return m }, 3, false, false},
		{"no valid nudge", layersItem{prompt: "Hi", res: noValid, passes: 1}, nil, 3, true, false},
		{"isolation", layersItem{prompt: "Eggplants", res: eggplant(1, 2), passes: 17}, func(m layersMeta) layersMeta { m.Opt.Isolate = true; return m }, 2, false, false},
		{"failed", layersItem{prompt: "x", err: analyze.ErrTooLong}, nil, 0, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := meta
			if tc.meta != nil {
				m = tc.meta(m)
			}
			rec := layersRecord(tc.item, m)
			var buf bytes.Buffer
			if err := report.WriteJSONL(&buf, rec); err != nil {
				t.Fatalf("WriteJSONL: %v", err)
			}
			var back map[string]any
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
				t.Fatalf("decoding %s: %v", buf.String(), err)
			}
			checkLayersSchema(t, buf.String())
			layers, _ := back["layers"].([]any)
			if len(layers) != tc.wantLen {
				t.Fatalf("%d layers, want %d: %s", len(layers), tc.wantLen, buf.String())
			}
			if _, has := back["error"]; has != tc.wantError {
				t.Errorf("error field present = %v, want %v", has, tc.wantError)
			}
			for i, l := range layers {
				lm := l.(map[string]any)
				if int(lm["layer"].(float64)) != rec.Layers[i].Layer {
					t.Errorf("layer %d: index %v", i, lm["layer"])
				}
				if isNull := lm["ratio"] == nil; isNull != tc.wantNull {
					t.Errorf("layer %d: ratio null = %v, want %v", i, isNull, tc.wantNull)
				}
				if m.Opt.Isolate && lm["drift_deg"] != nil {
					t.Errorf("layer %d: isolation mode has no prompt drift, got %v", i, lm["drift_deg"])
				}
			}
		})
	}
}

// checkLayersSchema validates each line of out, `lmood layers --json`
// records, against docs/layers.schema.json.
func checkLayersSchema(t *testing.T, out string) { checkRecords(t, out, "layers") }

func TestLayerSeriesSkipsFailuresAndInput(t *testing.T) {
	items := []layersItem{
		{prompt: "a", res: eggplant(0, 1, 2)},
		{prompt: "b", err: errors.New("boom")},
	}
	got := layerSeries(items, testMeta())
	if len(got) != 1 || got[0].Prompt != "a" {
		t.Fatalf("want the one analyzed prompt, got %+v", got)
	}
	if want := []int{1, 2}; len(got[0].Layers) != 2 || got[0].Layers[0] != want[0] || got[0].Layers[1] != want[1] {
		t.Errorf("layers %v, want %v", got[0].Layers, want)
	}
}

func TestDescribeLayers(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, "none"},
		{[]int{15}, "15"},
		{[]int{1, 2, 3}, "1–3"},
		{[]int{1, 3, 7}, "1,3,7"},
	}
	for _, tc := range tests {
		if got := describeLayers(tc.in); got != tc.want {
			t.Errorf("describeLayers(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// maxBatchRows is analyze's cap on copies per forward pass; short prompts
// reach it.
const maxBatchRows = analyze.MaxBatchRows

// TestLayersRealModel runs `layers --json --png` on the real model: one
// record per prompt, one entry per hidden state 1..n, ceil((K+1)/batch)
// forward passes per prompt (the same as for a single hidden state), and a
// PNG that decodes to a non-blank image.
func TestLayersRealModel(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	const K = 4
	g := &globals{quiet: true}
	lf := layersFlags{asJSON: true, png: filepath.Join(t.TempDir(), "layers.png")}
	lf.af = analysisFlags{samples: K, sigma: defaultSigma, seed: 1, noise: "per-token", direction: "pinch", maxTokens: 64}
	prompts := []string{"Eggplants are purple.", "", "lsadfhl; wiffle jfdalkgy burh lgoi"}
	var buf bytes.Buffer
	err := runLayers(g, &lf, m, prompts, &buf)
	var pe *partialError
	if !errors.As(err, &pe) || pe.failed != 1 || pe.total != 3 {
		t.Fatalf("want 1 of 3 prompts failed, got %v", err)
	}

	n := m.Config().Layers
	wantPasses := (K + 1 + maxBatchRows - 1) / maxBatchRows
	var recs []LayersRecord
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		var r LayersRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		recs = append(recs, r)
	}
	if len(recs) != len(prompts) {
		t.Fatalf("%d records for %d prompts", len(recs), len(prompts))
	}
	for i, r := range recs {
		if r.Prompt != prompts[i] {
			t.Errorf("record %d is for %q, want %q", i, r.Prompt, prompts[i])
		}
		if prompts[i] == "" {
			if r.Error == "" || len(r.Layers) != 0 {
				t.Errorf("empty prompt: want an error and no layers, got %+v", r)
			}
			continue
		}
		if r.Error != "" {
			t.Fatalf("prompt %q: %s", r.Prompt, r.Error)
		}
		if len(r.Layers) != n {
			t.Fatalf("prompt %q: %d layers, want %d", r.Prompt, len(r.Layers), n)
		}
		for j, l := range r.Layers {
			if l.Layer != j+1 {
				t.Errorf("prompt %q: entry %d is hidden state %d, want %d", r.Prompt, j, l.Layer, j+1)
			}
			if l.Ratio == nil || l.RatioStd == nil || l.Drift == nil || !(*l.Ratio > 0) || math.IsInf(*l.Ratio, 0) {
				t.Errorf("prompt %q hidden state %d: want a finite positive ratio, got %+v", r.Prompt, l.Layer, l)
			}
		}
		if r.Passes != wantPasses {
			t.Errorf("prompt %q: %d forward passes for %d hidden states, want ceil((K+1)/%d) = %d", r.Prompt, r.Passes, n, maxBatchRows, wantPasses)
		}
		if r.Samples != K || r.Model == "" || r.Noise != "per-token" {
			t.Errorf("prompt %q: bad metadata %+v", r.Prompt, r)
		}
	}

	// A single hidden state costs the same number of passes.
	one, err := openSession(g, &lf.af, m, []int{n / 2}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if _, passes, err := one.Analyze(prompts[0]); err != nil || passes != recs[0].Passes {
		t.Errorf("one hidden state: %d passes (err %v), all %d: %d", passes, err, n, recs[0].Passes)
	}

	f, err := os.Open(lf.png)
	if err != nil {
		t.Fatalf("--png: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("--png does not decode: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 100 || b.Dy() < 100 {
		t.Fatalf("PNG is %dx%d", b.Dx(), b.Dy())
	}
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 3 {
		for x := b.Min.X; x < b.Max.X; x += 3 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	if len(colours) < 8 {
		t.Errorf("PNG looks blank: %d distinct colours", len(colours))
	}
}

// TestLayersFooterResid0: the footer says what hidden state 0 is in the
// model's family, and claims a ratio of 1 only where it is the nudged input
// itself (not GPT-2's token row + position row).
func TestLayersFooterResid0(t *testing.T) {
	for _, tc := range []struct {
		name    string
		resid0  arch.Resid0
		want    []string
		notWant string
	}{
		{"llama", nn.TokenRow, []string{"the token's embedding row", "ratio 1 by definition"}, ""},
		{"gemma2", gemma2.Config{}.Resid0(), []string{"× √d", "ratio 1 by definition"}, ""},
		{"gpt2", gpt2.Config{}.Resid0(), []string{"token row + position row"}, "ratio 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			meta := testMeta()
			meta.Resid0 = tc.resid0
			var buf bytes.Buffer
			if err := renderLayers(&buf, testItems()[:1], meta, 0); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("footer lacks %q:\n%s", w, out)
				}
			}
			if tc.notWant != "" && strings.Contains(out, tc.notWant) {
				t.Errorf("footer claims %q:\n%s", tc.notWant, out)
			}
		})
	}
}
