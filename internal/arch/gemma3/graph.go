package gemma3

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

// model is a graph builder: the parts Gemma 3 shares with Gemma 2
// (gemmacore.Graph: masks, rotary tables, norms, MLP) and its own
// attention.
type model struct {
	*gemmacore.Graph
	c Config
}

// attention is block i's grouped-query self-attention: q/k RMSNorm per
// head, rotary embeddings of the layer's kind, scaled queries, the layer's
// mask (sliding window or global causal), output projection, and the
// post-attention norm.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	r, rq, mask := m.Layer(i)
	q, k, v := m.QKV(i, x)                                                          // [b, s, heads, hd], [b, s, kv, hd] twice
	q = m.Rope(m.RMS(q, nn.Block(i, "attn_q_norm.weight")), rq, c.Heads, c.HeadDim) // scaled by QueryScale too
	k = m.Rope(m.RMS(k, nn.Block(i, "attn_k_norm.weight")), r, c.KVHeads, c.HeadDim)
	return m.AttnOut(i, m.Attention(q, k, v, mask, c.Heads, c.KVHeads, c.HeadDim))
}

// head maps the final norm's output to logits (tied to the token
// embeddings unless the file has output.weight).
func (m *model) head(x onnx.Value) onnx.Value {
	logits := m.Logits(x, m.c.TiedOutput)
	if m.c.FinalSoftcap > 0 {
		logits = m.SoftCap(logits, m.c.FinalSoftcap)
	}
	return logits
}
