package gemma2

import (
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemmacore"
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
	m := &model{Graph: gemmacore.NewGraph(c.Config, w), c: c}
	return m.Decode(opt, nn.Decoder{Dims: c.Common(), Embed: m.Embed,
		Norm: m.Norm, Attention: m.attention, MLP: m.MLP, Head: m.head})
}

// model is a graph builder: the parts Gemma 2 shares with Gemma 3
// (gemmacore.Graph: masks, rotary tables, norms, MLP) and its own
// attention and head.
type model struct {
	*gemmacore.Graph
	c Config
}

// attention is block i's grouped-query self-attention: rotary embeddings,
// scaled queries, scores soft-capped (cap · tanh(q·k / cap)) before the
// layer's mask (sliding window or global causal) and the softmax, output
// projection, and the post-attention norm.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	r, rq, mask := m.Layer(i)
	q, k, v := m.QKV(i, x)                // [b, s, heads, hd], [b, s, kv, hd] twice
	q = m.Rope(q, rq, c.Heads, c.HeadDim) // scaled by QueryScale too
	k = m.Rope(k, r, c.KVHeads, c.HeadDim)
	ctx := m.SoftCappedAttention(q, k, v, mask, c.AttnSoftcap, c.Heads, c.KVHeads, c.HeadDim)
	return m.AttnOut(i, ctx)
}

// head maps the final norm's output to logits through the token
// embeddings, then soft-caps them: cap · tanh(logits / cap).
func (m *model) head(x onnx.Value) onnx.Value {
	return m.SoftCap(m.Logits(x, true), m.c.FinalSoftcap)
}
