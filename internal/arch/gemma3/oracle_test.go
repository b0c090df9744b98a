package gemma3_test

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for llama).
const oracleTol = 1e-3

// oracleScript is the family's numpy reference forward pass.
var oracleScript = filepath.Join("testdata", "oracle.py")

// tiny describes a synthetic gemma3 model.
type tiny struct {
	Layers, Dim, FFN, Heads, KVHeads, HeadDim, Vocab, Window int
	Untied                                                   bool
	RopeScaling                                              string  // "" or a rope.scaling.type
	RopeFactor                                               float64 // rope.scaling.factor
	LocalBase                                                float64 // rope.freq_base_swa (0 = leave out)
	Seed                                                     uint64
	Extra                                                    map[string]float32 // extra float metadata (to test refusals)
	BadTensor                                                string             // give this tensor a wrong shape
}

func defaultTiny() tiny {
	// 7 blocks: blk.5 is the global one, blk.6 a sliding-window block after
	// it; head dim 16 differs from dim/heads = 8, as in Gemma 3 (256 vs 160).
	return tiny{Layers: 7, Dim: 32, FFN: 48, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 300, Window: 3, Seed: 11}
}

// writeTiny writes a gemma3 GGUF with random F32 weights. Norm weights are
// drawn around 1 as llama.cpp's converter stores them (1 + w folded in).
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	g := testutil.NewTinyGGUF("gemma3", m.Seed, 5)
	g.Bad = m.BadTensor
	g.Uint("block_count", m.Layers)
	g.Uint("context_length", 128)
	g.Uint("embedding_length", m.Dim)
	g.Uint("feed_forward_length", m.FFN)
	g.Uint("attention.head_count", m.Heads)
	g.Uint("attention.head_count_kv", m.KVHeads)
	g.Uint("attention.key_length", m.HeadDim)
	g.Uint("attention.value_length", m.HeadDim)
	g.Uint("attention.sliding_window", m.Window)
	g.Float("attention.layer_norm_rms_epsilon", 1e-6)
	g.Float("rope.freq_base", 1e6)
	if m.LocalBase != 0 {
		g.Float("rope.freq_base_swa", m.LocalBase)
	}
	if m.RopeScaling != "" {
		g.AddString(g.Arch+".rope.scaling.type", m.RopeScaling)
		g.Float("rope.scaling.factor", m.RopeFactor)
	}
	for k, v := range m.Extra {
		g.Set(g.Arch+"."+k, gguf.NewFloat32(v))
	}
	testutil.AddTinyVocab(g.Writer, m.Vocab)

	d, hd := uint64(m.Dim), uint64(m.HeadDim)
	q, kv, f := uint64(m.Heads)*hd, uint64(m.KVHeads)*hd, uint64(m.FFN)
	s := 1 / math.Sqrt(float64(m.Dim))
	g.Normal("token_embd.weight", 0.2, d, uint64(m.Vocab))
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		g.Norm(p+"attn_norm.weight", m.Dim)
		g.Normal(p+"attn_q.weight", s, d, q)
		g.Normal(p+"attn_k.weight", s, d, kv)
		g.Normal(p+"attn_v.weight", s, d, kv)
		g.Norm(p+"attn_q_norm.weight", m.HeadDim)
		g.Norm(p+"attn_k_norm.weight", m.HeadDim)
		g.Normal(p+"attn_output.weight", s, q, d)
		g.Norm(p+"post_attention_norm.weight", m.Dim)
		g.Norm(p+"ffn_norm.weight", m.Dim)
		g.Normal(p+"ffn_gate.weight", s, d, f)
		g.Normal(p+"ffn_up.weight", s, d, f)
		g.Normal(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
		g.Norm(p+"post_ffw_norm.weight", m.Dim)
	}
	g.Norm("output_norm.weight", m.Dim)
	if m.Untied {
		g.Normal("output.weight", s, d, uint64(m.Vocab))
	}
	return g.Write(t)
}

// TestTinyOracle runs synthetic gemma3 models through the graph and the
// numpy oracle at every measurement point. The prompt (10 tokens) is longer
// than the sliding window (3), so the window shapes the local layers.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 12
	scaled := defaultTiny()
	scaled.RopeScaling, scaled.RopeFactor, scaled.Seed = "linear", 8, 13
	local := defaultTiny()
	local.LocalBase, local.Seed = 100, 14
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied-window3", defaultTiny()}, {"untied", untied}, {"linear-rope-scaling", scaled}, {"local-rope-base", local}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTiny(t, tc.tiny)
			testutil.CheckTinyOracle(t, py, path, testutil.TinyPrompt, oracleTol)
		})
	}
}

// TestWindowMatters guards the oracle test against a window that changes
// nothing: the same model with a window wider than the prompt has other
// hidden states after the first sliding-window block.
func TestWindowMatters(t *testing.T) {
	testutil.Runtime(t)
	narrow, wide := defaultTiny(), defaultTiny()
	wide.Window = 64
	ids := []int{5, 260, 17, 299, 42, 42, 0, 128}
	var got [2][]float32
	for i, tn := range []tiny{narrow, wide} {
		m := testutil.ImportTiny(t, writeTiny(t, tn))
		emb, err := m.Embeddings(ids)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = testutil.RunPoints(t, m, []arch.Point{arch.Resid(1)}, emb, len(ids))[arch.Resid(1)]
		m.Close()
	}
	if e := testutil.RelErr(got[0], got[1]); e < 1e-3 {
		t.Errorf("window 3 and window 64 give the same resid.1 (%.2e): the mask ignores the window", e)
	}
	// The first Window positions see the same keys either way.
	d := defaultTiny().Dim
	if e := testutil.RelErr(got[0][:3*d], got[1][:3*d]); e > 1e-6 {
		t.Errorf("positions inside the window differ (%.2e)", e)
	}
}
