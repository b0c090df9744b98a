package phi3

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
			return nil, fmt.Errorf("phi3: a head-only graph has the single output %s; %d outputs requested", arch.LogitsName, len(opt.Outputs))
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
	q = m.Rope(m.Heads(q, c.Heads, c.HeadDim), m.rotary, c.HeadDim) // [b, heads, s, hd]
	k = m.Rope(m.Heads(k, c.KVHeads, c.HeadDim), m.rotary, c.HeadDim)
	v = m.Heads(v, c.KVHeads, c.HeadDim)
	q = m.Mul(q, m.Scalar(c.queryScale()))
	ctx := m.Attention(q, k, v, m.mask, c.Heads, c.KVHeads, c.HeadDim)
	return m.Linear(ctx, nn.Block(i, "attn_output.weight"), "")
}

// mlp is SwiGLU with gate and up fused in ffn_up ([gate | up]):
// down(silu(gate) · up).
func (m *model) mlp(i int, x onnx.Value) onnx.Value {
	gu := m.Split(m.Linear(x, nn.Block(i, "ffn_up.weight"), ""), m.c.FFN, m.c.FFN)
	return m.Linear(m.Mul(m.SiLU(gu[0]), gu[1]), nn.Block(i, "ffn_down.weight"), "")
}

// project maps the final norm's output to logits.
func (m *model) project(x onnx.Value) onnx.Value {
	return m.Project(x, m.c.TiedOutput, output, m.c.Dim, m.c.Vocab)
}
