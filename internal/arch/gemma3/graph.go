package gemma3

import (
	"fmt"
	"math"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// stage orders measurement points along the forward pass (as in package
// llama): resid.i and norm.i at 2i, attn.i at 2i-1, mlp.i at 2i, logits
// after the last block.
func stage(p arch.Point, layers int) int {
	switch p.Site {
	case arch.SiteAttn:
		return 2*p.Index - 1
	case arch.SiteLogits:
		return 2 * layers
	}
	return 2 * p.Index
}

// Build returns the ONNX graph of c. Input arch.InputEmbeds is hidden
// state 0: the token embedding rows already multiplied by √d. The graph is
// truncated right after the deepest requested output. Batches of unequal
// prompts are right-padded by the caller; attention is causal, so padding
// after a token never reaches it.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Builder: onnx.NewBuilder("lmood-"+c.Arch, w), c: c}
	if opt.Head {
		if len(opt.Outputs) > 0 {
			return nil, fmt.Errorf("gemma3: a head-only graph has the single output %s; %d outputs requested", arch.LogitsName, len(opt.Outputs))
		}
		x := m.Input(arch.HeadInput, onnx.Float, "batch", "seq", c.Dim)
		m.Output(m.project(x), arch.LogitsName, onnx.Float, "batch", "seq", c.Vocab)
		return m.Model("lmood")
	}
	if len(opt.Outputs) == 0 {
		return nil, fmt.Errorf("gemma3: a graph needs at least one output")
	}
	want := map[arch.Point]bool{}
	last := 0
	for _, p := range opt.Outputs {
		p, err := p.Check(c.Layers)
		if err != nil {
			return nil, fmt.Errorf("gemma3: graph output: %w", err)
		}
		if want[p] {
			return nil, fmt.Errorf("gemma3: graph output %s requested twice", p.Name())
		}
		want[p] = true
		last = max(last, stage(p, c.Layers))
	}
	emit := func(p arch.Point, v onnx.Value) {
		if want[p] {
			m.Output(v, p.Name(), onnx.Float, "batch", "seq", c.Common().Width(p.Site))
		}
	}
	at := func(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }

	h := m.Input(arch.InputEmbeds, onnx.Float, "batch", "seq", c.Dim) // √d · embedding rows
	if last > 0 {
		m.positions(h)
	}
	for i := 0; ; i++ {
		emit(at(arch.SiteResid, i), h)
		if i == c.Layers {
			if want[at(arch.SiteNorm, i)] || want[arch.Logits()] {
				x := m.rmsNorm(h, m.Weight(outputNorm))
				emit(at(arch.SiteNorm, i), x)
				if want[arch.Logits()] {
					emit(arch.Logits(), m.project(x))
				}
			}
			break
		}
		runAttn := stage(at(arch.SiteAttn, i+1), c.Layers) <= last
		if !runAttn && !want[at(arch.SiteNorm, i)] {
			break
		}
		// Block i+1 (GGUF blk.i).
		x := m.rmsNorm(h, m.Weight(block(i, "attn_norm.weight")))
		emit(at(arch.SiteNorm, i), x)
		if !runAttn {
			break
		}
		a := m.rmsNorm(m.attention(i, x), m.Weight(block(i, "post_attention_norm.weight")))
		emit(at(arch.SiteAttn, i+1), a)
		if stage(at(arch.SiteMLP, i+1), c.Layers) > last {
			break
		}
		h = m.Add(h, a)
		f := m.mlp(i, m.rmsNorm(h, m.Weight(block(i, "ffn_norm.weight"))))
		f = m.rmsNorm(f, m.Weight(block(i, "post_ffw_norm.weight")))
		emit(at(arch.SiteMLP, i+1), f)
		h = m.Add(h, f)
	}
	return m.Model("lmood")
}

// rotary holds the cos and sin tables of one rotary base, [seq, head_dim].
type rotary struct{ cos, sin onnx.Value }

// model is a graph builder holding what every block shares: the rotary
// tables of local and global layers and their masks.
type model struct {
	*onnx.Builder
	c             Config
	local, global rotary
	causal, slide onnx.Value // [seq, seq]: 0 where a query may attend, -max elsewhere
}

func (m *model) intScalar(v int64) onnx.Value {
	return m.Op("Squeeze", []onnx.Value{m.Ints(v), m.Ints(0)})
}

// positions builds the rotary tables and the two masks for the input's
// sequence length.
func (m *model) positions(x onnx.Value) {
	seqLen := m.Op("Squeeze", []onnx.Value{
		m.Op("Shape", []onnx.Value{x}, onnx.IntAttr("start", 1), onnx.IntAttr("end", 2)),
		m.Ints(0)})
	pos := m.Op("Range", []onnx.Value{m.intScalar(0), seqLen, m.intScalar(1)}) // [seq]
	p := m.Op("Unsqueeze", []onnx.Value{m.Op("Cast", []onnx.Value{pos}, onnx.IntAttr("to", int64(onnx.Float))), m.Ints(1)})
	m.local = m.rotaryTable(p, m.c.RopeLocal, 1)
	m.global = m.rotaryTable(p, m.c.RopeGlobal, m.c.RopeScale)

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
}

// rotaryTable: position p (divided by the linear scaling factor), frequency
// j: angle p/scale · base^(-2j/head_dim), duplicated for rotate-half.
func (m *model) rotaryTable(p onnx.Value, base, scale float64) rotary {
	hd := m.c.HeadDim
	invFreq := make([]float32, hd/2)
	for j := range invFreq {
		invFreq[j] = float32(math.Pow(base, -2*float64(j)/float64(hd)) / scale)
	}
	angles := m.MatMul(p, m.Floats([]int64{1, int64(hd / 2)}, invFreq)) // [seq, hd/2]
	emb := m.Concat(-1, angles, angles)
	return rotary{cos: m.Op("Cos", []onnx.Value{emb}), sin: m.Op("Sin", []onnx.Value{emb})}
}

// rmsNorm is x / sqrt(mean(x²) + eps) · weight over the last axis (the
// weight as stored: llama.cpp's converter folded Gemma's 1 + w into it).
func (m *model) rmsNorm(x, weight onnx.Value) onnx.Value {
	meanSquare := m.ReduceMean(m.Pow(x, 2), -1)
	rms := m.Sqrt(m.Add(meanSquare, m.Scalar(float32(m.c.RMSEps))))
	return m.Mul(m.Div(x, rms), weight)
}

// linear is x @ W: W stored as [in, out] by PrepareWeight, or kept
// block-quantized (see LinearRows), then multiplied with MatMulNBits.
func (m *model) linear(i int, name string, x onnx.Value) onnx.Value {
	return m.Linear(x, block(i, name+".weight"))
}

// heads splits [batch, seq, n*head_dim] into [batch, n, seq, head_dim].
func (m *model) heads(x onnx.Value, n int) onnx.Value {
	return m.Transpose(m.Reshape(x, 0, 0, int64(n), int64(m.c.HeadDim)), 0, 2, 1, 3)
}

// rope rotates each head's dimension pairs (j, j+head_dim/2).
func (m *model) rope(x onnx.Value, r rotary) onnx.Value {
	hd, half := int64(m.c.HeadDim), int64(m.c.HeadDim/2)
	rotated := m.Concat(-1, m.Neg(m.Slice(x, -1, half, hd)), m.Slice(x, -1, 0, half))
	return m.Add(m.Mul(x, r.cos), m.Mul(rotated, r.sin))
}

// attention is block i's grouped-query self-attention: q/k RMSNorm per
// head, rotary embeddings of the layer's kind, scaled queries, the layer's
// mask (sliding window or global causal), output projection.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	kv, group, hd := int64(c.KVHeads), int64(c.Heads/c.KVHeads), int64(c.HeadDim)
	r, mask := m.local, m.slide
	if c.Global(i) {
		r, mask = m.global, m.causal
	}
	q := m.heads(m.linear(i, "attn_q", x), c.Heads) // [b, heads, s, hd]
	k := m.heads(m.linear(i, "attn_k", x), c.KVHeads)
	v := m.heads(m.linear(i, "attn_v", x), c.KVHeads)
	q = m.rope(m.rmsNorm(q, m.Weight(block(i, "attn_q_norm.weight"))), r)
	k = m.rope(m.rmsNorm(k, m.Weight(block(i, "attn_k_norm.weight"))), r)

	q = m.Mul(q, m.Scalar(float32(c.QueryScale)))
	qg := m.Reshape(q, 0, kv, group, -1, hd)            // [b, kv, g, s, hd]
	kg := m.Op("Unsqueeze", []onnx.Value{k, m.Ints(2)}) // [b, kv, 1, s, hd]
	vg := m.Op("Unsqueeze", []onnx.Value{v, m.Ints(2)})

	scores := m.Add(m.MatMul(qg, m.Transpose(kg, 0, 1, 2, 4, 3)), mask) // [b, kv, g, s, s]
	ctx := m.MatMul(m.Softmax(scores, -1), vg)                          // [b, kv, g, s, hd]
	ctx = m.Transpose(m.Reshape(ctx, 0, int64(c.Heads), -1, hd), 0, 2, 1, 3)
	ctx = m.Reshape(ctx, 0, 0, int64(c.Heads)*hd)
	return m.linear(i, "attn_output", ctx)
}

// gelu is the tanh approximation: x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))).
func (m *model) gelu(x onnx.Value) onnx.Value {
	inner := m.Mul(m.Add(x, m.Mul(m.Pow(x, 3), m.Scalar(0.044715))), m.Scalar(float32(math.Sqrt(2/math.Pi))))
	return m.Mul(m.Mul(x, m.Scalar(0.5)), m.Add(m.Op("Tanh", []onnx.Value{inner}), m.Scalar(1)))
}

// mlp is GeGLU: down(gelu(gate(x)) · up(x)).
func (m *model) mlp(i int, x onnx.Value) onnx.Value {
	return m.linear(i, "ffn_down", m.Mul(m.gelu(m.linear(i, "ffn_gate", x)), m.linear(i, "ffn_up", x)))
}

// project maps the final norm's output to logits; a tied head multiplies
// by the [vocab, dim] embedding matrix transposed (unscaled: √d applies to
// the input only).
func (m *model) project(x onnx.Value) onnx.Value {
	if !m.c.TiedOutput {
		return m.Linear(x, output)
	}
	flat := m.Reshape(x, -1, int64(m.c.Dim))
	logits := m.Op("Gemm", []onnx.Value{flat, m.Weight(arch.TokenEmbd)}, onnx.IntAttr("transB", 1))
	shape := m.Concat(0, m.Op("Shape", []onnx.Value{x}, onnx.IntAttr("start", 0), onnx.IntAttr("end", 2)), m.Ints(int64(m.c.Vocab)))
	return m.Op("Reshape", []onnx.Value{logits, shape})
}
