package gpt2

import (
	"fmt"

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
	if opt.Head {
		if len(opt.Outputs) > 0 {
			return nil, fmt.Errorf("gpt2: a head-only graph has the single output %s; %d outputs requested", arch.LogitsName, len(opt.Outputs))
		}
		x := m.Input(arch.HeadInput, onnx.Float, "batch", "seq", c.Dim)
		m.Output(m.project(x), arch.LogitsName, onnx.Float, "batch", "seq", c.Vocab)
		return m.Model("lmood")
	}
	plan, err := nn.NewPlan(Arch, c.Layers, opt.Outputs)
	if err != nil {
		return nil, err
	}
	emit := func(p arch.Point, v onnx.Value) { m.Emit(plan, p, v, c.Common().Width(p.Site)) }

	tok := m.Input(arch.InputEmbeds, onnx.Float, "batch", "seq", c.Dim)
	pos := m.Positions(tok)
	m.mask = m.CausalMask(pos)
	h := m.Add(tok, m.Op("Gather", []onnx.Value{m.Weight(positionEmbd), pos})) // [b, s, d] + [s, d]
	for i := 0; ; i++ {
		emit(nn.At(arch.SiteResid, i), h)
		if i == c.Layers {
			if plan.Want(nn.At(arch.SiteNorm, i)) || plan.Want(arch.Logits()) {
				x := m.layerNorm(h, outputNorm)
				emit(nn.At(arch.SiteNorm, i), x)
				if plan.Want(arch.Logits()) {
					emit(arch.Logits(), m.project(x))
				}
			}
			break
		}
		runAttn := plan.Reaches(nn.At(arch.SiteAttn, i+1))
		if !runAttn && !plan.Want(nn.At(arch.SiteNorm, i)) {
			break
		}
		// Block i+1 (GGUF blk.i).
		x := m.layerNorm(h, nn.Block(i, "attn_norm"))
		emit(nn.At(arch.SiteNorm, i), x)
		if !runAttn {
			break
		}
		a := m.attention(i, x)
		emit(nn.At(arch.SiteAttn, i+1), a)
		if !plan.Reaches(nn.At(arch.SiteMLP, i+1)) {
			break
		}
		h = m.Add(h, a)
		f := m.mlp(i, m.layerNorm(h, nn.Block(i, "ffn_norm")))
		emit(nn.At(arch.SiteMLP, i+1), f)
		h = m.Add(h, f)
	}
	return m.Model("lmood")
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
	q := m.Mul(m.Heads(qkv[0], c.Heads, c.HeadDim), m.Scalar(c.queryScale())) // [b, heads, s, hd]
	k := m.Heads(qkv[1], c.Heads, c.HeadDim)
	v := m.Heads(qkv[2], c.Heads, c.HeadDim)
	ctx := m.Attention(q, k, v, m.mask, c.Heads, c.Heads, c.HeadDim)
	return m.Linear(ctx, b("attn_output.weight"), b("attn_output.bias"))
}

// mlp is down(gelu(up(x))), with biases and the tanh approximation of GELU.
func (m *model) mlp(i int, x onnx.Value) onnx.Value {
	b := func(n string) string { return nn.Block(i, n) }
	return m.Linear(m.GELUTanh(m.Linear(x, b("ffn_up.weight"), b("ffn_up.bias"))), b("ffn_down.weight"), b("ffn_down.bias"))
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
