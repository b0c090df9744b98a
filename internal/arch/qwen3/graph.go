package qwen3

import (
	"fmt"

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
	m := &model{Graph: nn.NewGraph(Arch, w), c: c}
	if opt.Head {
		if len(opt.Outputs) > 0 {
			return nil, fmt.Errorf("qwen3: a head-only graph has the single output %s; %d outputs requested", arch.LogitsName, len(opt.Outputs))
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

	h := m.Input(arch.InputEmbeds, onnx.Float, "batch", "seq", c.Dim)
	if plan.Beyond0() {
		pos := m.Positions(h)
		m.rotary = m.NewRotary(pos, c.HeadDim, c.RopeTheta)
		m.mask = m.CausalMask(pos)
	}
	for i := 0; ; i++ {
		emit(nn.At(arch.SiteResid, i), h)
		if i == c.Layers {
			if plan.Want(nn.At(arch.SiteNorm, i)) || plan.Want(arch.Logits()) {
				x := m.RMSNorm(h, m.Weight(outputNorm), c.RMSEps)
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
		x := m.RMSNorm(h, m.Weight(nn.Block(i, "attn_norm.weight")), c.RMSEps)
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
		f := m.mlp(i, m.RMSNorm(h, m.Weight(nn.Block(i, "ffn_norm.weight")), c.RMSEps))
		emit(nn.At(arch.SiteMLP, i+1), f)
		h = m.Add(h, f)
	}
	return m.Model("lmood")
}

// model is a graph builder holding what every block shares.
type model struct {
	*nn.Graph
	c      Config
	rotary nn.Rotary
	mask   onnx.Value // causal, [seq, seq]
}

// attention is block i's self-attention: q, k, v projections, per-head
// RMSNorm of queries and keys, rotary embeddings, scaled queries, causal
// grouped-query attention, output projection.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	b := func(n string) string { return nn.Block(i, n) }
	q := m.Heads(m.Linear(x, b("attn_q.weight"), ""), c.Heads, c.HeadDim) // [b, heads, s, hd]
	k := m.Heads(m.Linear(x, b("attn_k.weight"), ""), c.KVHeads, c.HeadDim)
	v := m.Heads(m.Linear(x, b("attn_v.weight"), ""), c.KVHeads, c.HeadDim)
	q = m.Rope(m.RMSNorm(q, m.Weight(b("attn_q_norm.weight")), c.RMSEps), m.rotary, c.HeadDim)
	k = m.Rope(m.RMSNorm(k, m.Weight(b("attn_k_norm.weight")), c.RMSEps), m.rotary, c.HeadDim)
	q = m.Mul(q, m.Scalar(c.queryScale()))
	ctx := m.Attention(q, k, v, m.mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.Linear(ctx, b("attn_output.weight"), "")
}

// mlp is SwiGLU: down(silu(gate(x)) · up(x)).
func (m *model) mlp(i int, x onnx.Value) onnx.Value {
	b := func(n string) string { return nn.Block(i, n) }
	gate := m.SiLU(m.Linear(x, b("ffn_gate.weight"), ""))
	return m.Linear(m.Mul(gate, m.Linear(x, b("ffn_up.weight"), "")), b("ffn_down.weight"), "")
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
