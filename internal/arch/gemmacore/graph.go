package gemmacore

import (
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/onnx"
)

// Graph is a graph builder holding what every block of a Gemma 2 or
// Gemma 3 graph shares (the rotary tables of local and global layers and
// their masks), with the parts of a block that are the same in both.
type Graph struct {
	*nn.Graph
	c             Config
	local, global nn.Rotary
	// localQ and globalQ are local and global scaled by QueryScale: they
	// rotate and scale queries.
	localQ, globalQ nn.Rotary
	causal, slide   onnx.Value // [seq, seq]: 0 where a query may attend, -max elsewhere
}

// NewGraph starts the graph of c.
func NewGraph(c Config, w onnx.WeightSource) *Graph {
	return &Graph{Graph: nn.NewGraph(c.Arch, w), c: c}
}

// Embed is the decoder's Embed: hidden state 0 is the input (√d ·
// embedding rows, scaled by the caller); the rotary tables of both layer
// kinds and the two masks are built for the blocks.
func (g *Graph) Embed(h onnx.Value, blocks bool) onnx.Value {
	if !blocks {
		return h
	}
	pos := g.Positions(h) // [seq]
	g.local = g.NewRotary(pos, g.c.HeadDim, g.c.RopeLocal)
	g.global = g.NewScaledRotary(pos, g.c.HeadDim, g.c.RopeGlobal, g.c.RopeScale)
	g.localQ, g.globalQ = g.ScaledRotary(g.local, g.c.QueryScale), g.ScaledRotary(g.global, g.c.QueryScale)
	g.causal = g.CausalMask(pos)
	g.slide = g.SlidingMask(pos, g.c.Window)
	return h
}

// Layer returns block i's rotary tables (for keys, and for queries with
// the query scale folded in) and attention mask: those of a global layer
// (causal over the whole prompt) or of a sliding-window one.
func (g *Graph) Layer(i int) (keys, queries nn.Rotary, mask onnx.Value) {
	if g.c.Global(i) {
		return g.global, g.globalQ, g.causal
	}
	return g.local, g.localQ, g.slide
}

// RMS is RMSNorm with the weight as stored: llama.cpp's converter folded
// Gemma's (1 + w) into the GGUF weights.
func (g *Graph) RMS(x onnx.Value, weight string) onnx.Value {
	return g.RMSNorm(x, g.Weight(weight), g.c.RMSEps)
}

// Norm is the decoder's Norm: the RMSNorm block i+1 reads (attn_norm of
// GGUF blk.i), or the final one.
func (g *Graph) Norm(i int, h onnx.Value) onnx.Value {
	if i == g.c.Layers {
		return g.RMS(h, OutputNorm)
	}
	return g.RMS(h, nn.Block(i, "attn_norm.weight"))
}

// BlockLinear is x @ W of block i's weight name (without ".weight"): stored
// [in, out], or kept block-quantized and multiplied with MatMulNBits.
func (g *Graph) BlockLinear(i int, name string, x onnx.Value) onnx.Value {
	return g.Linear(x, nn.Block(i, name+".weight"), "")
}

// QKV returns block i's query, key and value heads of its normed input x:
// [batch, seq, heads, head_dim] and twice [batch, seq, kv_heads, head_dim].
func (g *Graph) QKV(i int, x onnx.Value) (q, k, v onnx.Value) {
	c := g.c
	q = g.Heads(g.BlockLinear(i, "attn_q", x), c.Heads, c.HeadDim)
	k = g.Heads(g.BlockLinear(i, "attn_k", x), c.KVHeads, c.HeadDim)
	v = g.Heads(g.BlockLinear(i, "attn_v", x), c.KVHeads, c.HeadDim)
	return q, k, v
}

// AttnOut is block i's output projection of the heads' contexts, then the
// post-attention norm: what is added to the residual stream (attn.i+1).
func (g *Graph) AttnOut(i int, ctx onnx.Value) onnx.Value {
	return g.RMS(g.BlockLinear(i, "attn_output", ctx), nn.Block(i, "post_attention_norm.weight"))
}

// MLP is the decoder's MLP: GeGLU (tanh GELU) of the ffn_norm'd residual,
// then the post-feed-forward norm: post_ffw_norm(down(gelu(gate(x)) ·
// up(x))), x = ffn_norm(h).
func (g *Graph) MLP(i int, h onnx.Value) onnx.Value {
	x := g.RMS(h, nn.Block(i, "ffn_norm.weight"))
	f := g.BlockLinear(i, "ffn_down", g.Mul(g.GELUTanh(g.BlockLinear(i, "ffn_gate", x)), g.BlockLinear(i, "ffn_up", x)))
	return g.RMS(f, nn.Block(i, "post_ffw_norm.weight"))
}

// Logits maps the final norm's output to logits; a tied head multiplies
// by the [vocab, dim] embedding matrix transposed (unscaled: √d applies to
// the input only).
func (g *Graph) Logits(x onnx.Value, tied bool) onnx.Value {
	return g.Project(x, tied, Output, g.c.Dim, g.c.Vocab)
}
