package phi3

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

// qkv projects x to queries, keys and values ([b, s, ·] each): one fused
// projection cut into [q | k | v], or three separate ones.
func (m *model) qkv(i int, x onnx.Value) (q, k, v onnx.Value) {
	c := m.c
	b := func(n string) string { return nn.Block(i, n) }
	if !c.FusedQKV {
		return m.Linear(x, b("attn_q.weight"), ""), m.Linear(x, b("attn_k.weight"), ""), m.Linear(x, b("attn_v.weight"), "")
	}
	parts := m.Split(m.Linear(x, b("attn_qkv.weight"), ""), c.Heads*c.HeadDim, c.KVHeads*c.HeadDim, c.KVHeads*c.HeadDim)
	return parts[0], parts[1], parts[2]
}

// attention is block i's self-attention: fused q/k/v projection, rotary
// embeddings, scaled queries, causal grouped-query attention, output
// projection.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	q, k, v := m.qkv(i, x)
	q = m.Rope(m.Heads(q, c.Heads, c.HeadDim), m.Query, c.Heads, c.HeadDim) // [b, s, heads, hd], scaled by 1/√head_dim
	k = m.Rope(m.Heads(k, c.KVHeads, c.HeadDim), m.Rotary, c.KVHeads, c.HeadDim)
	v = m.Heads(v, c.KVHeads, c.HeadDim)
	ctx := m.Attention(q, k, v, m.Mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.Linear(ctx, nn.Block(i, "attn_output.weight"), "")
}

// mlp is SwiGLU of the normed residual x, with gate and up fused in
// ffn_up ([gate | up]): down(silu(gate) · up).
func (m *model) mlp(i int, h onnx.Value) onnx.Value {
	x := m.RMSNorm(h, m.Weight(nn.Block(i, "ffn_norm.weight")), m.c.RMSEps)
	gu := m.Split(m.Linear(x, nn.Block(i, "ffn_up.weight"), ""), m.c.FFN, m.c.FFN)
	return m.Linear(m.Mul(m.SiLU(gu[0]), gu[1]), nn.Block(i, "ffn_down.weight"), "")
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
