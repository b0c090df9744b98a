package llama

import (
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Graph input and output names (see package arch).
const (
	InputEmbeds = arch.InputEmbeds
	HeadInput   = arch.HeadInput
	LogitsName  = arch.LogitsName
)

// Resid is arch.Resid: the measurement point of hidden state i.
func Resid(i int) arch.Point { return arch.Resid(i) }

// Logits is arch.Logits: the measurement point of the output head.
func Logits() arch.Point { return arch.Logits() }

// Width is the last-axis size of a site's output.
func (c Config) Width(s arch.Site) int { return c.Common().Width(s) }

// GraphOptions selects what a graph computes (see arch.GraphOptions).
type GraphOptions = arch.GraphOptions

// Build returns the ONNX graph of c (see [Config.Build]).
func Build(c Config, w onnx.WeightSource, opt GraphOptions) (*onnxpb.ModelProto, error) {
	return c.Build(w, opt)
}

// Build returns the ONNX model of c. Weights are resolved through w, which
// maps GGUF tensor names to external data prepared by PrepareWeight.
// Input InputEmbeds is hidden state 0, the token embedding rows. The graph
// is truncated right after the deepest requested output.
//
// Batches of prompts with unequal lengths are right-padded by the caller:
// attention is causal, so a real token never attends to a padding position
// that follows it, and rotary positions stay correct. No attention-mask
// input is needed.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Causal: &nn.Causal{Graph: nn.NewGraph(c.Arch, w), Layers: c.Layers, RopeDim: c.RopeDim, RopeBase: c.RopeTheta, Eps: c.RMSEps}, c: c}
	return m.Decode(opt, nn.Decoder{Dims: c.Common(), Embed: m.Embed,
		Norm: m.Norm, Attention: m.attention, MLP: m.mlp, Head: m.project})
}

// model is a graph builder that knows the configuration and holds the
// values shared by every block: rotary tables and the causal mask.
type model struct {
	*nn.Causal // rotary tables, causal mask, embed and norm
	c          Config
}

// linear is x @ W (+ b) of block i's weight name.weight (and bias
// name.bias): W stored as [in, out] by PrepareWeight, or kept
// block-quantized (see LinearRows), then multiplied with MatMulNBits.
func (m *model) linear(i int, name string, x onnx.Value, bias bool) onnx.Value {
	b := ""
	if bias {
		b = Block(i, name+".bias")
	}
	return m.Linear(x, Block(i, name+".weight"), b)
}

// attention is causal grouped-query self-attention: q, k, v projections
// (with biases in Qwen2), rotary embeddings (queries also scaled by
// 1/√head_dim: m.Query), output projection.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	q := m.Rope(m.Heads(m.linear(i, "attn_q", x, c.QKVBias), c.Heads, c.HeadDim), m.Query, c.Heads, c.HeadDim)      // [b, s, heads, hd]
	k := m.Rope(m.Heads(m.linear(i, "attn_k", x, c.QKVBias), c.KVHeads, c.HeadDim), m.Rotary, c.KVHeads, c.HeadDim) // [b, s, kv, hd]
	v := m.Heads(m.linear(i, "attn_v", x, c.QKVBias), c.KVHeads, c.HeadDim)                                         // [b, s, kv, hd]
	ctx := m.Attention(q, k, v, m.Mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.linear(i, "attn_output", ctx, false)
}

// mlp is the SwiGLU feed-forward of the ffn_norm'd residual x:
// down(silu(gate(x)) * up(x)).
func (m *model) mlp(i int, h onnx.Value) onnx.Value {
	x := m.RMSNorm(h, m.Weight(Block(i, "ffn_norm.weight")), m.c.RMSEps)
	gate := m.linear(i, "ffn_gate", x, false)
	return m.linear(i, "ffn_down", m.Mul(m.SiLU(gate), m.linear(i, "ffn_up", x, false)), false)
}

// project is the output projection of the final norm's output to
// vocabulary logits; a tied head reuses the token embedding matrix.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, Output, m.c.Dim, m.c.Vocab)
}
