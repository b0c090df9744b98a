package qwen3_test

import (
	"fmt"
	"math"
	"testing"

	_ "github.com/lmood/lmood/internal/arch/qwen3"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for llama and gemma3).
const oracleTol = 1e-3

// tiny describes a synthetic qwen3 model.
type tiny struct {
	Layers, Dim, FFN, Heads, KVHeads, HeadDim, Vocab int
	Untied                                           bool
	Seed                                             uint64
	Meta                                             map[string]gguf.Value // extra or overriding metadata (to test refusals)
	BadTensor                                        string                // give this tensor a wrong shape
}

func defaultTiny() tiny {
	// Head dim 16 differs from dim/heads = 8, as in Qwen3 (128 vs 64).
	return tiny{Layers: 3, Dim: 32, FFN: 48, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 300, Seed: 21}
}

// writeTiny writes a qwen3 GGUF with random F32 weights.
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	g := testutil.NewTinyGGUF("qwen3", m.Seed, 3)
	g.Bad = m.BadTensor
	g.Uint("block_count", m.Layers)
	g.Uint("context_length", 128)
	g.Uint("embedding_length", m.Dim)
	g.Uint("feed_forward_length", m.FFN)
	g.Uint("attention.head_count", m.Heads)
	g.Uint("attention.head_count_kv", m.KVHeads)
	g.Uint("attention.key_length", m.HeadDim)
	g.Uint("attention.value_length", m.HeadDim)
	g.Float("attention.layer_norm_rms_epsilon", 1e-6)
	g.Float("rope.freq_base", 1e6)
	g.Meta(m.Meta)
	testutil.AddTinyVocab(g.Writer, m.Vocab)
	d, hd := uint64(m.Dim), uint64(m.HeadDim)
	q, kv, f := uint64(m.Heads)*hd, uint64(m.KVHeads)*hd, uint64(m.FFN)
	s := 1 / math.Sqrt(float64(m.Dim))
	g.Normal("token_embd.weight", 1, d, uint64(m.Vocab))
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		g.Norm(p+"attn_norm.weight", m.Dim)
		g.Normal(p+"attn_q.weight", s, d, q)
		g.Norm(p+"attn_q_norm.weight", m.HeadDim)
		g.Normal(p+"attn_k.weight", s, d, kv)
		g.Norm(p+"attn_k_norm.weight", m.HeadDim)
		g.Normal(p+"attn_v.weight", s, d, kv)
		g.Normal(p+"attn_output.weight", 1/math.Sqrt(float64(q)), q, d)
		g.Norm(p+"ffn_norm.weight", m.Dim)
		g.Normal(p+"ffn_gate.weight", s, d, f)
		g.Normal(p+"ffn_up.weight", s, d, f)
		g.Normal(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
	}
	g.Norm("output_norm.weight", m.Dim)
	if m.Untied {
		g.Normal("output.weight", s, d, uint64(m.Vocab))
	}
	return g.Write(t)
}

// TestTinyOracle runs synthetic qwen3 models through the graph and the
// numpy oracle at every measurement point.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 22
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied", defaultTiny()}, {"untied", untied}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTiny(t, tc.tiny)
			testutil.CheckTinyOracle(t, py, path, testutil.TinyPrompt, oracleTol)
		})
	}
}

// TestConfigRefusals: metadata the graph cannot honour, or that contradicts
// the tensors, is refused before conversion with the field named.
func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name string
		tiny func(*tiny)
		want []string
	}{
		{"yarn rope scaling", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"rope.scaling.type": gguf.NewString("yarn")}
		}, []string{`rope scaling "yarn"`, "qwen3.rope.scaling.type", "not supported"}},
		{"NaN epsilon", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"attention.layer_norm_rms_epsilon": gguf.NewFloat32(float32(math.NaN()))}
		}, []string{"qwen3.attention.layer_norm_rms_epsilon"}},
		{"infinite rope base", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"rope.freq_base": gguf.NewFloat32(float32(math.Inf(1)))}
		}, []string{"qwen3.rope.freq_base"}},
		{"k norm of the wrong length", func(m *tiny) { m.BadTensor = "blk.1.attn_k_norm.weight" }, []string{"blk.1.attn_k_norm.weight", "key_length 16"}},
		{"kv heads not dividing heads", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"attention.head_count_kv": gguf.NewUint32(3)}
		}, []string{"head_count_kv 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.tiny(&m)
			testutil.CheckRefused(t, writeTiny(t, m), tc.want...)
		})
	}
}
