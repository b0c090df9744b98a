package nn

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Decoder is what differs between pre-norm decoder-only families: each
// family's graph file supplies these parts, written like its model, and
// Graph.Decode chains them block by block. Block i+1 (GGUF blk.i) is
//
//	x = Norm(i, h)           norm.i
//	a = Attention(i, x)      attn.i+1
//	h = h + a
//	f = MLP(i, h)            mlp.i+1 (the MLP applies its own norms)
//	h = h + f                resid.i+1
//
// and after the last block, Head(Norm(layers, h)) gives the logits.
type Decoder struct {
	Dims arch.Dims // layers, widths and vocabulary
	// Embed turns the input (the token embedding rows, [batch, seq, dim])
	// into hidden state 0. blocks reports whether the graph runs past it,
	// so that position tables are built only when some block reads them.
	Embed func(in onnx.Value, blocks bool) onnx.Value
	// Norm is the norm block i+1 reads (GGUF blk.i), or, with i equal to
	// the number of layers, the final norm the output head reads.
	Norm func(i int, h onnx.Value) onnx.Value
	// Attention is block i+1's self-attention of its normed input x, as
	// added to the residual stream.
	Attention func(i int, x onnx.Value) onnx.Value
	// MLP is block i+1's feed-forward of the residual h, its norms
	// included, as added to the residual stream.
	MLP func(i int, h onnx.Value) onnx.Value
	// Head maps the final norm's output to vocabulary logits.
	Head func(x onnx.Value) onnx.Value
}

// Decode builds the graph of d for opt: either the output head alone (input
// arch.HeadInput, output arch.LogitsName) or the blocks from input
// arch.InputEmbeds up to the deepest requested output, each requested point
// an output named by arch.Point.Name. Nothing past the deepest output is
// computed (and no weight of it read).
func (g *Graph) Decode(opt arch.GraphOptions, d Decoder) (*onnxpb.ModelProto, error) {
	dims := d.Dims
	if opt.Head {
		if len(opt.Outputs) > 0 {
			return nil, fmt.Errorf("%s: a head-only graph has the single output %s; %d outputs requested", g.arch, arch.LogitsName, len(opt.Outputs))
		}
		x := g.Input(arch.HeadInput, onnx.Float, "batch", "seq", dims.Dim)
		g.Output(d.Head(x), arch.LogitsName, onnx.Float, "batch", "seq", dims.Vocab)
		return g.Model("lmood")
	}
	plan, err := NewPlan(g.arch, dims.Layers, opt.Outputs)
	if err != nil {
		return nil, err
	}
	emit := func(p arch.Point, v onnx.Value) { g.Emit(plan, p, v, dims.Width(p.Site)) }

	h := d.Embed(g.Input(arch.InputEmbeds, onnx.Float, "batch", "seq", dims.Dim), plan.Beyond0())
	for i := 0; ; i++ {
		emit(At(arch.SiteResid, i), h)
		if i == dims.Layers {
			if plan.Want(At(arch.SiteNorm, i)) || plan.Want(arch.Logits()) {
				x := d.Norm(i, h)
				emit(At(arch.SiteNorm, i), x)
				if plan.Want(arch.Logits()) {
					emit(arch.Logits(), d.Head(x))
				}
			}
			break
		}
		runAttn := plan.Reaches(At(arch.SiteAttn, i+1))
		if !runAttn && !plan.Want(At(arch.SiteNorm, i)) {
			break
		}
		x := d.Norm(i, h)
		if plan.Want(At(arch.SiteNorm, i)) {
			emit(At(arch.SiteNorm, i), g.unbalanced(i, x))
		}
		if !runAttn {
			break
		}
		a := d.Attention(i, x)
		emit(At(arch.SiteAttn, i+1), a)
		if !plan.Reaches(At(arch.SiteMLP, i+1)) {
			break
		}
		h = g.Add(h, a)
		f := d.MLP(i, h)
		emit(At(arch.SiteMLP, i+1), f)
		h = g.Add(h, f)
	}
	return g.Model("lmood")
}

// unbalanced is block i+1's normed input as the model defines it: x
// divided by the factors a store folded into the attention norm's weight
// (arch.Fold.Record, NormBalance), x itself when none were.
func (g *Graph) unbalanced(i int, x onnx.Value) onnx.Value {
	if !g.Has(NormBalance(i)) {
		return x
	}
	return g.Div(x, g.Weight(NormBalance(i)))
}
