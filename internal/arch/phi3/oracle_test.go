package phi3_test

import (
	"fmt"
	"math"
	"testing"

	_ "github.com/lmood/lmood/internal/arch/phi3"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for llama and gemma3).
const oracleTol = 1e-3

// tiny describes a synthetic phi3 model.
type tiny struct {
	Layers, Dim, FFN, Heads, KVHeads, Vocab int
	Separate                                bool // attn_q/k/v instead of the fused attn_qkv
	Tied                                    bool // no output.weight
	Seed                                    uint64
	Meta                                    map[string]gguf.Value // extra metadata (to test refusals)
	RopeFactors                             bool                  // add LongRoPE factor tensors
	BadTensor                               string                // give this tensor a wrong shape
}

func defaultTiny() tiny {
	return tiny{Layers: 3, Dim: 48, FFN: 40, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 31}
}

// writeTiny writes a phi3 GGUF with random F32 weights.
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	g := testutil.NewTinyGGUF("phi3", m.Seed, 4)
	g.Bad = m.BadTensor
	hd := m.Dim / m.Heads
	g.Uint("block_count", m.Layers)
	g.Uint("context_length", 128)
	g.Uint("embedding_length", m.Dim)
	g.Uint("feed_forward_length", m.FFN)
	g.Uint("attention.head_count", m.Heads)
	g.Uint("attention.head_count_kv", m.KVHeads)
	g.Uint("rope.dimension_count", hd)
	g.Uint("attention.sliding_window", 2047)
	g.Float("attention.layer_norm_rms_epsilon", 1e-5)
	g.Float("rope.freq_base", 10000)
	g.Meta(m.Meta)
	testutil.AddTinyVocab(g.Writer, m.Vocab)
	d := uint64(m.Dim)
	q, kv, f := uint64(m.Heads*hd), uint64(m.KVHeads*hd), uint64(m.FFN)
	s := 1 / math.Sqrt(float64(m.Dim))
	g.Normal("token_embd.weight", 1, d, uint64(m.Vocab))
	if m.RopeFactors {
		g.Norm("rope_factors_long.weight", hd/2)
		g.Norm("rope_factors_short.weight", hd/2)
	}
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		g.Norm(p+"attn_norm.weight", m.Dim)
		if m.Separate {
			g.Normal(p+"attn_q.weight", s, d, q)
			g.Normal(p+"attn_k.weight", s, d, kv)
			g.Normal(p+"attn_v.weight", s, d, kv)
		} else {
			g.Normal(p+"attn_qkv.weight", s, d, q+2*kv)
		}
		g.Normal(p+"attn_output.weight", 1/math.Sqrt(float64(q)), q, d)
		g.Norm(p+"ffn_norm.weight", m.Dim)
		g.Normal(p+"ffn_up.weight", s, d, 2*f)
		g.Normal(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
	}
	g.Norm("output_norm.weight", m.Dim)
	if !m.Tied {
		g.Normal("output.weight", s, d, uint64(m.Vocab))
	}
	return g.Write(t)
}

// TestTinyOracle runs synthetic phi3 models through the graph and the numpy
// oracle at every measurement point: fused q/k/v with an untied head (as
// Phi-3-mini), and separate q/k/v with a tied head.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	sep := defaultTiny()
	sep.Separate, sep.Tied, sep.Seed = true, true, 32
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"fused-qkv", defaultTiny()}, {"separate-qkv-tied", sep}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTiny(t, tc.tiny)
			testutil.CheckTinyOracle(t, py, path, testutil.TinyPrompt, oracleTol)
		})
	}
}

// TestConfigRefusals: rope scaling the graph does not implement, and
// metadata that contradicts the tensors, are refused before conversion
// with what is missing named.
func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name string
		tiny func(*tiny)
		want []string
	}{
		{"longrope factors", func(m *tiny) { m.RopeFactors = true }, []string{"LongRoPE", "rope_factors_long.weight", `"longrope" is not supported`}},
		{"longrope type", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"rope.scaling.type": gguf.NewString("longrope")}
		}, []string{`rope scaling "longrope"`, "phi3.rope.scaling.type"}},
		{"attention factor", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"rope.scaling.attn_factor": gguf.NewFloat32(1.19)}
		}, []string{"phi3.rope.scaling.attn_factor"}},
		{"fused up of the wrong width", func(m *tiny) { m.BadTensor = "blk.2.ffn_up.weight" }, []string{"blk.2.ffn_up.weight", "[48 80]", "feed_forward_length 40"}},
		{"fused qkv of the wrong width", func(m *tiny) { m.BadTensor = "blk.0.attn_qkv.weight" }, []string{"blk.0.attn_qkv.weight", "[48 96]"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.tiny(&m)
			testutil.CheckRefused(t, writeTiny(t, m), tc.want...)
		})
	}
}
