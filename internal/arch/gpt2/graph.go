package gpt2

import (
	"math"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Build returns the ONNX graph of c. Input arch.InputEmbeds holds the token
// embedding rows; the graph adds the position embeddings, and that sum is
// hidden state 0 (see the package documentation). The graph is truncated
// right after the deepest requested output. Batches of unequal prompts are
// right-padded by the caller; attention is causal and positions count from
// the start, so padding after a token never reaches it.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Graph: nn.NewGraph(Arch, w), c: c}
	return m.Decode(opt, nn.Decoder{Dims: c.Common(), Embed: m.embed,
		Norm: m.norm, Attention: m.attention, MLP: m.mlp, Head: m.project})
}

// embed adds the learned position embeddings to the token embedding rows:
// hidden state 0.
func (m *model) embed(tok onnx.Value, _ bool) onnx.Value {
	pos := m.Positions(tok)
	m.mask = m.CausalMask(pos)
	return m.Add(tok, m.Op("Gather", []onnx.Value{m.Weight(positionEmbd), pos})) // [b, s, d] + [s, d]
}

// norm is the LayerNorm block i+1 reads (attn_norm of GGUF blk.i), or the
// final one.
func (m *model) norm(i int, h onnx.Value) onnx.Value {
	if i == m.c.Layers {
		return m.layerNorm(h, outputNorm)
	}
	return m.layerNorm(h, nn.Block(i, "attn_norm"))
}

// model is a graph builder holding what every block shares.
type model struct {
	*nn.Graph
	c    Config
	mask onnx.Value // causal, [seq, seq]
}

// layerNorm applies the LayerNorm whose GGUF tensors are prefix.weight and
// prefix.bias.
func (m *model) layerNorm(x onnx.Value, prefix string) onnx.Value {
	return m.LayerNorm(x, m.Weight(prefix+".weight"), m.Weight(prefix+".bias"), m.c.NormEps)
}

// attention is block i's self-attention: fused q/k/v projection with bias,
// scaled queries, causal multi-head attention, output projection with bias.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	b := func(n string) string { return nn.Block(i, n) }
	qkv := m.Split(m.Linear(x, b("attn_qkv.weight"), b("attn_qkv.bias")), c.Dim, c.Dim, c.Dim)
	q := m.Mul(m.Heads(qkv[0], c.Heads, c.HeadDim), m.Scalar(float32(1/math.Sqrt(float64(c.HeadDim))))) // [b, s, heads, hd]
	k := m.Heads(qkv[1], c.Heads, c.HeadDim)
	v := m.Heads(qkv[2], c.Heads, c.HeadDim)
	ctx := m.Attention(q, k, v, m.mask, c.Heads, c.Heads, c.HeadDim)
	return m.Linear(ctx, b("attn_output.weight"), b("attn_output.bias"))
}

// mlp is down(gelu(up(x))) of the normed residual x, with biases and the
// tanh approximation of GELU.
func (m *model) mlp(i int, h onnx.Value) onnx.Value {
	b := func(n string) string { return nn.Block(i, n) }
	x := m.layerNorm(h, b("ffn_norm"))
	return m.Linear(m.GELUTanh(m.Linear(x, b("ffn_up.weight"), b("ffn_up.bias"))), b("ffn_down.weight"), b("ffn_down.bias"))
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
