package arch_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/testutil"
)

// The golden files in testdata/hfref come from scripts/hfref.sh: for each
// family a tiny, randomly initialised Hugging Face transformers model,
// converted to GGUF by llama.cpp's own convert_hf_to_gguf.py (--outtype
// f32), and what transformers computes on the same token IDs at every
// measurement site. The test needs no Python: it imports the committed GGUF
// with lmood and compares.

// hfIndex is testdata/hfref/index.json.
type hfIndex struct {
	IDs      []int                     `json:"ids"`
	Versions map[string]string         `json:"versions"`
	Families map[string]hfFamilyGolden `json:"families"`
}

type hfFamilyGolden struct {
	HFClass string `json:"hf_class"`
	Layers  int    `json:"layers"`
	Vocab   int    `json:"vocab"`
	Arrays  []struct {
		Name   string `json:"name"`
		Offset int    `json:"offset"`
		Shape  []int  `json:"shape"`
	} `json:"arrays"`
}

// hfRefTol is the relative Frobenius error allowed per site between lmood
// and transformers: both compute in float32 on the same weights, in a
// different order (onnxruntime vs torch kernels), so they agree to float32
// rounding amplified by a few blocks.
const hfRefTol = 1e-4

// hfFamilies are the families with golden files, in the order of the
// README's table; a family missing from index.json fails the test.
var hfFamilies = []string{"llama", "qwen2", "qwen3", "gemma3", "gemma2", "phi3", "gpt2"}

// TestTransformersReference checks the chain a real user's GGUF went
// through: a Hugging Face checkpoint, llama.cpp's converter, lmood's
// import and graph, against transformers' own hidden states, at every
// site (resid, norm, attn, mlp at every index, and the logits).
func TestTransformersReference(t *testing.T) {
	dir := filepath.Join("testdata", "hfref")
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatalf("read golden index (regenerate with scripts/hfref.sh): %v", err)
	}
	var idx hfIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatalf("parse %s/index.json: %v", dir, err)
	}
	testutil.Runtime(t)
	t.Logf("golden files from transformers %s, torch %s", idx.Versions["transformers"], idx.Versions["torch"])
	for _, fam := range hfFamilies {
		t.Run(fam, func(t *testing.T) {
			g, ok := idx.Families[fam]
			if !ok {
				t.Fatalf("no golden files for %s in %s/index.json (regenerate with scripts/hfref.sh)", fam, dir)
			}
			want := testutil.ReadF32(t, filepath.Join(dir, fam+".f32"))
			m := testutil.ImportTiny(t, filepath.Join(dir, fam+".gguf"))
			defer m.Close()
			c := m.Config()
			if got := m.Manifest.Arch; got != fam {
				t.Fatalf("imported as architecture %q, want %q", got, fam)
			}
			if c.Layers != g.Layers || c.Vocab != g.Vocab {
				t.Fatalf("imported %d blocks, vocabulary %d; transformers had %d, %d", c.Layers, c.Vocab, g.Layers, g.Vocab)
			}
			// The converter's tokenizer metadata must load too (the IDs below
			// are fixed, so only loading is checked here).
			if _, err := m.Tokenizer(); err != nil {
				t.Errorf("tokenizer written by convert_hf_to_gguf.py: %v", err)
			}
			points := testutil.AllPoints(c.Layers)
			if len(points) != len(g.Arrays) {
				t.Fatalf("%d golden arrays for %d points", len(g.Arrays), len(points))
			}
			emb, err := m.Embeddings(idx.IDs)
			if err != nil {
				t.Fatal(err)
			}
			got := testutil.RunPoints(t, m, points, emb, len(idx.IDs))
			worst := map[arch.Site]float64{}
			for _, a := range g.Arrays {
				p := parsePoint(t, a.Name)
				n := a.Shape[0] * a.Shape[1]
				if a.Shape[0] != len(idx.IDs) || a.Shape[1] != c.Width(p.Site) || a.Offset+n > len(want) {
					t.Fatalf("%s: golden shape %v at offset %d does not fit %d tokens × width %d (%d values in file)",
						a.Name, a.Shape, a.Offset, len(idx.IDs), c.Width(p.Site), len(want))
				}
				e := testutil.RelErr(got[p], want[a.Offset:a.Offset+n])
				worst[p.Site] = max(worst[p.Site], e)
				if !(e <= hfRefTol) {
					t.Errorf("%s: relative error %.2e against transformers > %.0e", a.Name, e, hfRefTol)
				}
			}
			for _, s := range arch.Sites {
				t.Logf("%s (%s) site %-6s worst relative error %.2e", fam, g.HFClass, s, worst[s])
			}
		})
	}
}

// parsePoint reads a golden array's name ("resid.3", "logits").
func parsePoint(t *testing.T, name string) arch.Point {
	t.Helper()
	for _, s := range arch.Sites {
		if !s.Indexed() {
			if name == string(s) {
				return arch.Point{Site: s}
			}
			continue
		}
		for i := range 64 {
			if name == (arch.Point{Site: s, Index: i}).Name() {
				return arch.Point{Site: s, Index: i}
			}
		}
	}
	t.Fatalf("golden array %q names no site", name)
	return arch.Point{}
}
