package gpt2_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	_ "github.com/lmood/lmood/internal/arch/gpt2"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for llama and gemma3).
const oracleTol = 1e-3

// tiny describes a synthetic gpt2 model.
type tiny struct {
	Layers, Dim, FFN, Heads, Vocab, Context int
	Untied                                  bool
	Seed                                    uint64
	Meta                                    map[string]gguf.Value // extra metadata (to test refusals)
	BadTensor                               string                // give this tensor a wrong shape
}

func defaultTiny() tiny {
	return tiny{Layers: 3, Dim: 32, FFN: 128, Heads: 4, Vocab: 300, Context: 64, Seed: 41}
}

// writeTiny writes a gpt2 GGUF with random F32 weights.
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	g := testutil.NewTinyGGUF("gpt2", m.Seed, 6)
	g.Bad = m.BadTensor
	g.Uint("block_count", m.Layers)
	g.Uint("context_length", m.Context)
	g.Uint("embedding_length", m.Dim)
	g.Uint("feed_forward_length", m.FFN)
	g.Uint("attention.head_count", m.Heads)
	g.Float("attention.layer_norm_epsilon", 1e-5)
	g.Meta(m.Meta)
	testutil.AddTinyVocab(g.Writer, m.Vocab)
	norm := func(prefix string) {
		g.Norm(prefix+".weight", m.Dim)
		g.Normal(prefix+".bias", 0.1, uint64(m.Dim))
	}
	d, f := uint64(m.Dim), uint64(m.FFN)
	s := 1 / math.Sqrt(float64(m.Dim))
	g.Normal("token_embd.weight", 1, d, uint64(m.Vocab))
	g.Normal("position_embd.weight", 0.5, d, uint64(m.Context))
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		norm(p + "attn_norm")
		g.Normal(p+"attn_qkv.weight", s, d, 3*d)
		g.Normal(p+"attn_qkv.bias", 0.2, 3*d)
		g.Normal(p+"attn_output.weight", s, d, d)
		g.Normal(p+"attn_output.bias", 0.1, d)
		norm(p + "ffn_norm")
		g.Normal(p+"ffn_up.weight", s, d, f)
		g.Normal(p+"ffn_up.bias", 0.2, f)
		g.Normal(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
		g.Normal(p+"ffn_down.bias", 0.1, d)
	}
	norm("output_norm")
	if m.Untied {
		g.Normal("output.weight", s, d, uint64(m.Vocab))
	}
	return g.Write(t)
}

// TestTinyOracle runs synthetic gpt2 models through the graph and the numpy
// oracle at every measurement point. resid.0 is token row + position row.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 42
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

// TestHiddenState0AddsPositions: the graph's input is the token rows, and
// resid.0 is them plus position_embd's rows: the same token at two
// positions has two different hidden states 0, and resid.0 minus the input
// is the position row.
func TestHiddenState0AddsPositions(t *testing.T) {
	testutil.Runtime(t)
	m := testutil.ImportTiny(t, writeTiny(t, defaultTiny()))
	defer m.Close()
	ids := []int{42, 42}
	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	h0 := testutil.RunPoints(t, m, []arch.Point{arch.Resid(0)}, emb, len(ids))[arch.Resid(0)]
	d := m.Config().Dim
	if testutil.RelErr(h0[:d], h0[d:]) < 1e-3 {
		t.Fatal("the same token at positions 0 and 1 has the same hidden state 0: positions are not added")
	}
	diff := make([]float32, 2*d)
	for i := range diff {
		diff[i] = h0[i] - emb[i]
	}
	if testutil.RelErr(diff[:d], diff[d:]) < 1e-3 {
		t.Error("hidden state 0 minus the token rows is the same at positions 0 and 1")
	}
}

// TestConfigRefusals: metadata that contradicts the tensors, or that GPT-2
// cannot have, is refused before conversion with the field named.
func TestConfigRefusals(t *testing.T) {
	tests := []struct {
		name string
		tiny func(*tiny)
		want []string
	}{
		{"grouped-query heads", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"attention.head_count_kv": gguf.NewUint32(2)}
		}, []string{"head_count_kv 2", "no grouped-query attention"}},
		{"position table shorter than the context", func(m *tiny) { m.BadTensor = "position_embd.weight" }, []string{"position_embd.weight", "context_length 64"}},
		{"fused qkv bias of the wrong length", func(m *tiny) { m.BadTensor = "blk.1.attn_qkv.bias" }, []string{"blk.1.attn_qkv.bias", "[96]"}},
		{"NaN epsilon", func(m *tiny) {
			m.Meta = map[string]gguf.Value{"attention.layer_norm_epsilon": gguf.NewFloat32(float32(math.NaN()))}
		}, []string{"gpt2.attention.layer_norm_epsilon"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := defaultTiny()
			tc.tiny(&m)
			testutil.CheckRefused(t, writeTiny(t, m), tc.want...)
		})
	}
}
