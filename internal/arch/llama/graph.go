package llama

import (
	"fmt"
	"math"

	"github.com/lmood/lmood/internal/arch"
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

// stage orders measurement points along the forward pass of a model of
// layers blocks: resid.i and norm.i at 2i, attn.i at 2i-1, mlp.i after its
// block (2i), logits after the last block.
func stage(p arch.Point, layers int) int {
	switch p.Site {
	case arch.SiteAttn:
		return 2*p.Index - 1
	case arch.SiteLogits:
		return 2 * layers
	}
	return 2 * p.Index
}

// Build returns the ONNX graph of c (see [Config.Build]).
func Build(c Config, w onnx.WeightSource, opt GraphOptions) (*onnxpb.ModelProto, error) {
	return c.Build(w, opt)
}

// Build returns the ONNX model of c. Weights are resolved through w, which
// maps GGUF tensor names to external data prepared by PrepareWeight.
//
// Batches of prompts with unequal lengths are right-padded by the caller:
// attention is causal, so a real token never attends to a padding position
// that follows it, and rotary positions stay correct. No attention-mask
// input is needed.
func (c Config) Build(w onnx.WeightSource, opt arch.GraphOptions) (*onnxpb.ModelProto, error) {
	m := &model{Builder: onnx.NewBuilder("lmood-"+c.Arch, w), c: c}
	if opt.Head {
		if len(opt.Outputs) > 0 {
			return nil, fmt.Errorf("llama: a head-only graph has the single output %s; %d outputs requested", LogitsName, len(opt.Outputs))
		}
		x := m.Input(HeadInput, onnx.Float, "batch", "seq", c.Dim)
		m.Output(m.project(x), LogitsName, onnx.Float, "batch", "seq", c.Vocab)
		return m.Model("lmood")
	}
	if len(opt.Outputs) == 0 {
		return nil, fmt.Errorf("llama: a graph needs at least one output")
	}
	want := map[arch.Point]bool{}
	last := 0
	for _, p := range opt.Outputs {
		p, err := p.Check(c.Layers)
		if err != nil {
			return nil, fmt.Errorf("llama: graph output: %w", err)
		}
		if want[p] {
			return nil, fmt.Errorf("llama: graph output %s requested twice", p.Name())
		}
		want[p] = true
		last = max(last, stage(p, c.Layers))
	}
	emit := func(p arch.Point, v onnx.Value) {
		if want[p] {
			m.Output(v, p.Name(), onnx.Float, "batch", "seq", c.Width(p.Site))
		}
	}
	at := func(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }

	h := m.Input(InputEmbeds, onnx.Float, "batch", "seq", c.Dim)
	if last > 0 {
		m.positions(h)
	}
	for i := 0; ; i++ {
		// h is resid.i. Its norm is what block i+1 (GGUF blk.i) reads, or,
		// after the last block, what the output head reads.
		emit(at(arch.SiteResid, i), h)
		if i == c.Layers {
			if want[at(arch.SiteNorm, i)] || want[Logits()] {
				x := m.rmsNorm(h, m.Weight(OutputNorm))
				emit(at(arch.SiteNorm, i), x)
				if want[Logits()] {
					emit(Logits(), m.project(x))
				}
			}
			break
		}
		runAttn := stage(at(arch.SiteAttn, i+1), c.Layers) <= last
		if !runAttn && !want[at(arch.SiteNorm, i)] {
			break
		}
		x := m.rmsNorm(h, m.Weight(Block(i, "attn_norm.weight")))
		emit(at(arch.SiteNorm, i), x)
		if !runAttn {
			break
		}
		a := m.attention(i, x)
		emit(at(arch.SiteAttn, i+1), a)
		if stage(at(arch.SiteMLP, i+1), c.Layers) > last {
			break
		}
		h = m.Add(h, a)
		f := m.mlp(i, m.rmsNorm(h, m.Weight(Block(i, "ffn_norm.weight"))))
		emit(at(arch.SiteMLP, i+1), f)
		h = m.Add(h, f)
	}
	return m.Model("lmood")
}

// model is a graph builder that knows the configuration and holds the
// values shared by every block: rotary tables and the causal mask.
type model struct {
	*onnx.Builder
	c        Config
	cos, sin onnx.Value // [seq, head_dim]
	mask     onnx.Value // [seq, seq]: 0 on and below the diagonal, -max above
}

// positions builds the rotary tables and causal mask for the input's
// sequence length.
func (m *model) positions(x onnx.Value) {
	seqLen := m.Op("Squeeze", []onnx.Value{
		m.Op("Shape", []onnx.Value{x}, onnx.IntAttr("start", 1), onnx.IntAttr("end", 2)),
		m.Ints(0)})
	pos := m.Op("Range", []onnx.Value{m.intScalar(0), seqLen, m.intScalar(1)}) // [seq]

	// Rotary angles: position p, frequency j: p * theta^(-2j/rope_dim).
	half := m.c.RopeDim / 2
	invFreq := make([]float32, half)
	for j := range invFreq {
		invFreq[j] = float32(math.Pow(m.c.RopeTheta, -2*float64(j)/float64(m.c.RopeDim)))
	}
	p := m.Op("Unsqueeze", []onnx.Value{m.Op("Cast", []onnx.Value{pos}, onnx.IntAttr("to", int64(onnx.Float))), m.Ints(1)})
	angles := m.MatMul(p, m.Floats([]int64{1, int64(half)}, invFreq)) // [seq, half]
	emb := m.Concat(-1, angles, angles)                               // [seq, head_dim]
	m.cos = m.Op("Cos", []onnx.Value{emb})
	m.sin = m.Op("Sin", []onnx.Value{emb})

	// Causal mask: key position k is hidden from query position q when k > q.
	rows := m.Op("Unsqueeze", []onnx.Value{pos, m.Ints(1)})
	cols := m.Op("Unsqueeze", []onnx.Value{pos, m.Ints(0)})
	future := m.Op("Greater", []onnx.Value{cols, rows})
	m.mask = m.Op("Where", []onnx.Value{future, m.Scalar(onnx.MinFloat32), m.Scalar(0)})
}

func (m *model) intScalar(v int64) onnx.Value {
	return m.Op("Squeeze", []onnx.Value{m.Ints(v), m.Ints(0)})
}

// rmsNorm is x / sqrt(mean(x^2) + eps) * weight over the last axis.
func (m *model) rmsNorm(x, weight onnx.Value) onnx.Value {
	meanSquare := m.ReduceMean(m.Pow(x, 2), -1)
	rms := m.Sqrt(m.Add(meanSquare, m.Scalar(float32(m.c.RMSEps))))
	return m.Mul(m.Div(x, rms), weight)
}

// linear is x @ W (+ b): W stored as [in, out] by PrepareWeight, or kept
// block-quantized (see LinearRows), then multiplied with MatMulNBits.
func (m *model) linear(i int, name string, x onnx.Value, bias bool) onnx.Value {
	y := m.Linear(x, Block(i, name+".weight"))
	if bias {
		y = m.Add(y, m.Weight(Block(i, name+".bias")))
	}
	return y
}

// heads splits [batch, seq, n*head_dim] into [batch, n, seq, head_dim].
func (m *model) heads(x onnx.Value, n int) onnx.Value {
	return m.Transpose(m.Reshape(x, 0, 0, int64(n), int64(m.c.HeadDim)), 0, 2, 1, 3)
}

// rope rotates each head's dimension pairs (j, j+head_dim/2) by the
// position's angle: x*cos + rotate_half(x)*sin.
func (m *model) rope(x onnx.Value) onnx.Value {
	hd, half := int64(m.c.HeadDim), int64(m.c.HeadDim/2)
	rotated := m.Concat(-1, m.Neg(m.Slice(x, -1, half, hd)), m.Slice(x, -1, 0, half))
	return m.Add(m.Mul(x, m.cos), m.Mul(rotated, m.sin))
}

// attention is causal grouped-query self-attention. Query heads are grouped
// G = heads/kv_heads to a key/value head; broadcasting in MatMul shares each
// key/value head with its group without copying it.
func (m *model) attention(i int, x onnx.Value) onnx.Value {
	c := m.c
	kv, group, hd := int64(c.KVHeads), int64(c.Heads/c.KVHeads), int64(c.HeadDim)

	q := m.rope(m.heads(m.linear(i, "attn_q", x, c.QKVBias), c.Heads))   // [b, heads, s, hd]
	k := m.rope(m.heads(m.linear(i, "attn_k", x, c.QKVBias), c.KVHeads)) // [b, kv, s, hd]
	v := m.heads(m.linear(i, "attn_v", x, c.QKVBias), c.KVHeads)         // [b, kv, s, hd]

	q = m.Mul(q, m.Scalar(float32(1/math.Sqrt(float64(hd)))))
	qg := m.Reshape(q, 0, kv, group, -1, hd)            // [b, kv, g, s, hd]
	kg := m.Op("Unsqueeze", []onnx.Value{k, m.Ints(2)}) // [b, kv, 1, s, hd]
	vg := m.Op("Unsqueeze", []onnx.Value{v, m.Ints(2)}) // [b, kv, 1, s, hd]

	scores := m.Add(m.MatMul(qg, m.Transpose(kg, 0, 1, 2, 4, 3)), m.mask) // [b, kv, g, s, s]
	ctx := m.MatMul(m.Softmax(scores, -1), vg)                            // [b, kv, g, s, hd]

	ctx = m.Transpose(m.Reshape(ctx, 0, int64(c.Heads), -1, hd), 0, 2, 1, 3) // [b, s, heads, hd]
	ctx = m.Reshape(ctx, 0, 0, int64(c.Heads)*hd)
	return m.linear(i, "attn_output", ctx, false)
}

// mlp is the SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
func (m *model) mlp(i int, x onnx.Value) onnx.Value {
	gate := m.linear(i, "ffn_gate", x, false)
	silu := m.Mul(gate, m.Sigmoid(gate))
	return m.linear(i, "ffn_down", m.Mul(silu, m.linear(i, "ffn_up", x, false)), false)
}

// project is the output projection of the final norm's output to
// vocabulary logits. A tied head multiplies by the [vocab, dim] embedding
// matrix transposed (Gemm with transB), so it needs no second copy of the
// matrix.
func (m *model) project(x onnx.Value) onnx.Value {
	if !m.c.TiedOutput {
		return m.Linear(x, Output)
	}
	flat := m.Reshape(x, -1, int64(m.c.Dim))
	logits := m.Op("Gemm", []onnx.Value{flat, m.Weight(TokenEmbd)}, onnx.IntAttr("transB", 1))
	shape := m.Concat(0, m.Op("Shape", []onnx.Value{x}, onnx.IntAttr("start", 0), onnx.IntAttr("end", 2)), m.Ints(int64(m.c.Vocab)))
	return m.Op("Reshape", []onnx.Value{logits, shape})
}
