package gemma2_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for gemma3).
const oracleTol = 1e-3

// prompt is 10 tokens: longer than the window of the tiny models (3).
var prompt = testutil.TinyPrompt

// tiny describes a synthetic gemma2 model.
type tiny struct {
	Layers, Dim, FFN, Heads, KVHeads, HeadDim, Vocab, Window int
	AttnCap, FinalCap                                        float64 // soft-capping values written
	Seed                                                     uint64
	Omit                                                     map[string]bool       // metadata keys (after "gemma2.") left out
	Extra                                                    map[string]gguf.Value // metadata set or overridden (after "gemma2.")
	BadTensor                                                string                // give this tensor a wrong shape
	Output                                                   bool                  // add an output.weight tensor
}

func defaultTiny() tiny {
	// 4 blocks: blk.0 and blk.2 slide, blk.1 and blk.3 are global; head dim
	// 16 differs from dim/heads = 8, as in Gemma 2 (256 vs 144 for the 9B).
	// The caps are small enough to squash the tiny model's scores and
	// logits (TestSoftcapMatters).
	return tiny{Layers: 4, Dim: 32, FFN: 48, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 300, Window: 3,
		AttnCap: 1.5, FinalCap: 2, Seed: 21}
}

// writeTiny writes a gemma2 GGUF with random F32 weights. Norm weights are
// drawn around 1, as llama.cpp's converter stores them (1 + w).
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	g := testutil.NewTinyGGUF("gemma2", m.Seed, 7)
	g.Bad = m.BadTensor
	u := func(key string, v int) {
		if !m.Omit[key] {
			g.Uint(key, v)
		}
	}
	fl := func(key string, v float64) {
		if !m.Omit[key] {
			g.Float(key, v)
		}
	}
	u("block_count", m.Layers)
	u("context_length", 128)
	u("embedding_length", m.Dim)
	u("feed_forward_length", m.FFN)
	u("attention.head_count", m.Heads)
	u("attention.head_count_kv", m.KVHeads)
	u("attention.key_length", m.HeadDim)
	u("attention.value_length", m.HeadDim)
	u("attention.sliding_window", m.Window)
	fl("attention.layer_norm_rms_epsilon", 1e-6)
	fl("attn_logit_softcapping", m.AttnCap)
	fl("final_logit_softcapping", m.FinalCap)
	g.Meta(m.Extra)
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
		g.Normal(p+"attn_output.weight", s, q, d)
		g.Norm(p+"post_attention_norm.weight", m.Dim)
		g.Norm(p+"ffn_norm.weight", m.Dim)
		g.Normal(p+"ffn_gate.weight", s, d, f)
		g.Normal(p+"ffn_up.weight", s, d, f)
		g.Normal(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
		g.Norm(p+"post_ffw_norm.weight", m.Dim)
	}
	g.Norm("output_norm.weight", m.Dim)
	if m.Output {
		g.Normal("output.weight", s, d, uint64(m.Vocab))
	}
	return g.Write(t)
}

// TestTinyOracle runs synthetic gemma2 models through the graph and the
// numpy oracle at every measurement point and the logits. The prompt (10
// tokens) is longer than the sliding window (3), and the soft-capping
// values are small enough to change the scores and the logits.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	gqa := defaultTiny()
	gqa.KVHeads, gqa.Window, gqa.Seed = 1, 4, 22
	gqa.Extra = map[string]gguf.Value{"rope.freq_base": gguf.NewFloat32(5e4)}
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"window3-caps", defaultTiny()}, {"one-kv-head-window4", gqa}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTiny(t, tc.tiny)
			testutil.CheckTinyOracle(t, py, path, prompt, oracleTol)
		})
	}
}

// runPoints imports a tiny model and runs the prompt to the given points.
func runPoints(t *testing.T, tn tiny, points ...arch.Point) map[arch.Point][]float32 {
	t.Helper()
	m := testutil.ImportTiny(t, writeTiny(t, tn))
	defer m.Close()
	emb, err := m.Embeddings(prompt)
	if err != nil {
		t.Fatal(err)
	}
	return testutil.RunPoints(t, m, points, emb, len(prompt))
}

// TestSoftcapMatters guards the oracle test against caps that change
// nothing: the same weights with caps so large that tanh is linear (1e6)
// give attention outputs and logits that differ from the capped model's by
// far more than the oracle tolerance, each cap on its own.
func TestSoftcapMatters(t *testing.T) {
	testutil.Runtime(t)
	points := []arch.Point{{Site: arch.SiteAttn, Index: 1}, arch.Logits()}
	capped := runPoints(t, defaultTiny(), points...)
	noAttn, noFinal := defaultTiny(), defaultTiny()
	noAttn.AttnCap, noFinal.FinalCap = 1e6, 1e6
	uncappedAttn := runPoints(t, noAttn, points...)
	uncappedFinal := runPoints(t, noFinal, points...)
	for _, tc := range []struct {
		name     string
		got      []float32
		want     []float32
		differ   bool
		minDelta float64
	}{
		{"attention cap changes attn.1", capped[points[0]], uncappedAttn[points[0]], true, 10 * oracleTol},
		{"final cap leaves attn.1", capped[points[0]], uncappedFinal[points[0]], false, 0},
		{"final cap changes the logits", capped[points[1]], uncappedFinal[points[1]], true, 10 * oracleTol},
	} {
		e := testutil.RelErr(tc.got, tc.want)
		t.Logf("%s: relative difference %.2e", tc.name, e)
		if tc.differ && !(e > tc.minDelta) {
			t.Errorf("%s: relative difference %.2e, want > %.0e: the cap changes nothing", tc.name, e, tc.minDelta)
		}
		if !tc.differ && e > 1e-6 {
			t.Errorf("%s: relative difference %.2e, want none", tc.name, e)
		}
	}
	// The capped logits lie strictly inside (-cap, cap).
	for i, v := range capped[points[1]] {
		if math.Abs(float64(v)) >= defaultTiny().FinalCap {
			t.Fatalf("logit %d = %v is outside (-%g, %g)", i, v, defaultTiny().FinalCap, defaultTiny().FinalCap)
		}
	}
}

// TestWindowMatters: blk.0 attends within the window (3), so a window
// wider than the prompt changes resid.1, except at the first 3 positions.
func TestWindowMatters(t *testing.T) {
	testutil.Runtime(t)
	wide := defaultTiny()
	wide.Window = 64
	p := arch.Resid(1)
	narrow, broad := runPoints(t, defaultTiny(), p)[p], runPoints(t, wide, p)[p]
	if e := testutil.RelErr(narrow, broad); e < 1e-3 {
		t.Errorf("window 3 and window 64 give the same resid.1 (%.2e): the mask ignores the window", e)
	}
	d := defaultTiny().Dim
	if e := testutil.RelErr(narrow[:3*d], broad[:3*d]); e > 1e-6 {
		t.Errorf("positions inside the window differ (%.2e)", e)
	}
}
