package llama_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/onnx"
)

// anyWeights serves every tensor name, so Build can run without a file.
type anyWeights struct{}

func (anyWeights) Lookup(name string) (onnx.ExternalTensor, bool) {
	return onnx.ExternalTensor{Location: "weights.bin", Dims: []int64{1}}, true
}

func tinyConfig() llama.Config {
	return llama.Config{Arch: "llama", Layers: 3, Dim: 8, Heads: 2, KVHeads: 1, HeadDim: 4, FFN: 12,
		Vocab: 300, ContextLength: 64, RMSEps: 1e-6, RopeTheta: 10000, RopeDim: 4, TiedOutput: true}
}

// TestBuildTruncates: a graph reads only the weights its outputs need, and
// its outputs are named by the site vocabulary.
func TestBuildTruncates(t *testing.T) {
	pt := func(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }
	for _, tc := range []struct {
		name    string
		outputs []arch.Point
		need    []string // weights that must be read
		avoid   []string // weights that must not be read
	}{
		{"resid.0", []arch.Point{llama.Resid(0)}, nil, []string{"blk.0.attn_norm.weight"}},
		{"norm.0", []arch.Point{pt(arch.SiteNorm, 0)}, []string{"blk.0.attn_norm.weight"}, []string{"blk.0.attn_q.weight"}},
		{"norm.1", []arch.Point{pt(arch.SiteNorm, 1)},
			[]string{"blk.0.ffn_down.weight", "blk.1.attn_norm.weight"}, []string{"blk.1.attn_q.weight"}},
		{"attn.2", []arch.Point{pt(arch.SiteAttn, 2)},
			[]string{"blk.1.attn_output.weight"}, []string{"blk.1.ffn_norm.weight", "blk.1.ffn_gate.weight", "blk.2.attn_norm.weight"}},
		{"mlp.2", []arch.Point{pt(arch.SiteMLP, 2)},
			[]string{"blk.1.ffn_down.weight"}, []string{"blk.2.attn_norm.weight"}},
		{"norm.3", []arch.Point{pt(arch.SiteNorm, 3)}, []string{llama.OutputNorm}, []string{llama.TokenEmbd}},
		{"logits", []arch.Point{llama.Logits()}, []string{llama.OutputNorm, llama.TokenEmbd}, nil},
		{"mixed", []arch.Point{pt(arch.SiteMLP, 1), llama.Resid(0), pt(arch.SiteNorm, 1)},
			[]string{"blk.1.attn_norm.weight"}, []string{"blk.1.attn_q.weight"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := llama.Build(tinyConfig(), anyWeights{}, llama.GraphOptions{Outputs: tc.outputs})
			if err != nil {
				t.Fatal(err)
			}
			var inits, outs []string
			for _, in := range m.Graph.Initializer {
				inits = append(inits, in.GetName())
			}
			for _, o := range m.Graph.Output {
				outs = append(outs, o.GetName())
			}
			for _, n := range tc.need {
				if !slices.Contains(inits, n) {
					t.Errorf("graph does not read %s", n)
				}
			}
			for _, n := range tc.avoid {
				if slices.Contains(inits, n) {
					t.Errorf("graph reads %s, which its outputs do not need", n)
				}
			}
			for _, p := range tc.outputs {
				if !slices.Contains(outs, p.Name()) {
					t.Errorf("outputs %v lack %s", outs, p.Name())
				}
			}
			if len(outs) != len(tc.outputs) {
				t.Errorf("outputs %v, want %d", outs, len(tc.outputs))
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  llama.GraphOptions
		want string
	}{
		{"none", llama.GraphOptions{}, "at least one output"},
		{"attn.0", llama.GraphOptions{Outputs: []arch.Point{{Site: arch.SiteAttn}}}, "site attn has indices 1..3, got 0"},
		{"resid.4", llama.GraphOptions{Outputs: []arch.Point{llama.Resid(4)}}, "site resid has indices 0..3, got 4"},
		{"twice", llama.GraphOptions{Outputs: []arch.Point{llama.Resid(1), llama.Resid(1)}}, "resid.1 requested twice"},
		{"head with outputs", llama.GraphOptions{Head: true, Outputs: []arch.Point{llama.Resid(1)}}, "head-only"},
	} {
		if _, err := llama.Build(tinyConfig(), anyWeights{}, tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	m, err := llama.Build(tinyConfig(), anyWeights{}, llama.GraphOptions{Head: true})
	if err != nil {
		t.Fatal(err)
	}
	if in, out := m.Graph.Input[0].GetName(), m.Graph.Output[0].GetName(); in != llama.HeadInput || out != llama.LogitsName {
		t.Errorf("head graph: %s -> %s", in, out)
	}
}
