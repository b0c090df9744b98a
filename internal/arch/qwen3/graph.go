package qwen3

import (
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Build returns the ONNX graph of c. Input arch.InputEmbeds is hidden
// state 0, the token embedding rows. The graph is truncated right after the
// deepest requested output. Batches of unequal prompts are right-padded by
// the caller; attention is causal, so padding after a token never reaches it.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Causal: &nn.Causal{Graph: nn.NewGraph(Arch, w), Layers: c.Layers, RopeDim: c.HeadDim, RopeBase: c.RopeTheta, Eps: c.RMSEps}, c: c}
	return m.Decode(opt, nn.Decoder{Dims: c.Common(), Embed: m.Embed,
		Norm: m.Norm, Attention: m.attention, MLP: m.mlp, Head: m.project})
}

// model is a graph builder holding what every block shares.
type model struct {
	*nn.Causal // rotary tables, causal mask, embed and norm
	c          Config
}

// attention is block i's self-attention: q, k, v projections, per-head
// RMSNorm of queries and keys, rotary embeddings, scaled queries, causal
// grouped-query attention, output projection.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	b := func(n string) string { return nn.Block(i, n) }
	q := m.Heads(m.Linear(x, b("attn_q.weight"), ""), c.Heads, c.HeadDim) // [b, s, heads, hd]
	k := m.Heads(m.Linear(x, b("attn_k.weight"), ""), c.KVHeads, c.HeadDim)
	v := m.Heads(m.Linear(x, b("attn_v.weight"), ""), c.KVHeads, c.HeadDim)
	q = m.Rope(m.RMSNorm(q, m.Weight(b("attn_q_norm.weight")), c.RMSEps), m.Query, c.Heads, c.HeadDim) // scaled by 1/√head_dim too
	k = m.Rope(m.RMSNorm(k, m.Weight(b("attn_k_norm.weight")), c.RMSEps), m.Rotary, c.KVHeads, c.HeadDim)
	ctx := m.Attention(q, k, v, m.Mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.Linear(ctx, b("attn_output.weight"), "")
}

// mlp is SwiGLU of the normed residual x: down(silu(gate(x)) · up(x)).
func (m *model) mlp(i int, h onnx.Value) onnx.Value {
	b := func(n string) string { return nn.Block(i, n) }
	x := m.RMSNorm(h, m.Weight(b("ffn_norm.weight")), m.c.RMSEps)
	gate := m.SiLU(m.Linear(x, b("ffn_gate.weight"), ""))
	return m.Linear(m.Mul(gate, m.Linear(x, b("ffn_up.weight"), "")), b("ffn_down.weight"), "")
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
