package gemma3

import (
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Build returns the ONNX graph of c. Input arch.InputEmbeds is hidden
// state 0: the token embedding rows already multiplied by √d. The graph is
// truncated right after the deepest requested output. Batches of unequal
// prompts are right-padded by the caller; attention is causal, so padding
// after a token never reaches it.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Graph: nn.NewGraph(c.Arch, w), c: c}
	return m.Decode(opt, nn.Decoder{Dims: c.Common(), Embed: m.embed,
		Norm: m.norm, Attention: m.attention, MLP: m.mlp, Head: m.project})
}

// model is a graph builder holding what every block shares: the rotary
// tables of local and global layers and their masks.
type model struct {
	*nn.Graph
	c             Config
	local, global nn.Rotary
	causal, slide onnx.Value // [seq, seq]: 0 where a query may attend, -max elsewhere
}

// embed: hidden state 0 is the input (√d · embedding rows); the rotary
// tables and the two masks are built for the blocks.
func (m *model) embed(h onnx.Value, blocks bool) onnx.Value {
	if !blocks {
		return h
	}
	pos := m.Positions(h) // [seq]
	m.local = m.NewRotary(pos, m.c.HeadDim, m.c.RopeLocal)
	m.global = m.NewScaledRotary(pos, m.c.HeadDim, m.c.RopeGlobal, m.c.RopeScale)

	// Query q sees key k when k <= q (causal) and, in a sliding-window
	// layer, also q - k < window.
	rows := m.Op("Unsqueeze", []onnx.Value{pos, m.Ints(1)})
	cols := m.Op("Unsqueeze", []onnx.Value{pos, m.Ints(0)})
	future := m.Op("Greater", []onnx.Value{cols, rows})
	back := m.Op("Sub", []onnx.Value{rows, cols})
	tooFar := m.Op("GreaterOrEqual", []onnx.Value{back, m.Ints(int64(m.c.Window))})
	hidden := m.Op("Or", []onnx.Value{future, tooFar})
	m.causal = m.Op("Where", []onnx.Value{future, m.Scalar(onnx.MinFloat32), m.Scalar(0)})
	m.slide = m.Op("Where", []onnx.Value{hidden, m.Scalar(onnx.MinFloat32), m.Scalar(0)})
	return h
}

// rmsNorm is RMSNorm with the weight as stored (llama.cpp's converter
// folded Gemma's 1 + w into it).
func (m *model) rmsNorm(x onnx.Value, weight string) onnx.Value {
	return m.RMSNorm(x, m.Weight(weight), m.c.RMSEps)
}

// norm is the RMSNorm block i+1 reads (attn_norm of GGUF blk.i), or the
// final one.
func (m *model) norm(i int, h onnx.Value) onnx.Value {
	if i == m.c.Layers {
		return m.rmsNorm(h, outputNorm)
	}
	return m.rmsNorm(h, block(i, "attn_norm.weight"))
}

// linear is x @ W: W stored as [in, out] by PrepareWeight, or kept
// block-quantized (see LinearRows), then multiplied with MatMulNBits.
func (m *model) linear(i int, name string, x onnx.Value) onnx.Value {
	return m.Linear(x, block(i, name+".weight"), "")
}

// attention is block i's grouped-query self-attention: q/k RMSNorm per
// head, rotary embeddings of the layer's kind, scaled queries, the layer's
// mask (sliding window or global causal), output projection, and the
// post-attention norm.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	r, mask := m.local, m.slide
	if c.Global(i) {
		r, mask = m.global, m.causal
	}
	q := m.Heads(m.linear(i, "attn_q", x), c.Heads, c.HeadDim) // [b, heads, s, hd]
	k := m.Heads(m.linear(i, "attn_k", x), c.KVHeads, c.HeadDim)
	v := m.Heads(m.linear(i, "attn_v", x), c.KVHeads, c.HeadDim)
	q = m.Rope(m.rmsNorm(q, block(i, "attn_q_norm.weight")), r, c.HeadDim)
	k = m.Rope(m.rmsNorm(k, block(i, "attn_k_norm.weight")), r, c.HeadDim)
	q = m.Mul(q, m.Scalar(float32(c.QueryScale)))
	ctx := m.Attention(q, k, v, mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.rmsNorm(m.linear(i, "attn_output", ctx), block(i, "post_attention_norm.weight"))
}

// mlp is GeGLU of the ffn_norm'd residual x, then the post-feed-forward
// norm: post_ffw_norm(down(gelu(gate(x)) · up(x))).
func (m *model) mlp(i int, h onnx.Value) onnx.Value {
	x := m.rmsNorm(h, block(i, "ffn_norm.weight"))
	f := m.linear(i, "ffn_down", m.Mul(m.GELUTanh(m.linear(i, "ffn_gate", x)), m.linear(i, "ffn_up", x)))
	return m.rmsNorm(f, block(i, "post_ffw_norm.weight"))
}

// project maps the final norm's output to logits; a tied head multiplies
// by the [vocab, dim] embedding matrix transposed (unscaled: √d applies to
// the input only).
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
