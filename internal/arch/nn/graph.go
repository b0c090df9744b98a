package nn

import (
	"math"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/onnx"
)

// Graph is an ONNX builder with the building blocks of decoder-only
// transformers. Weights are read by GGUF name through the builder's weight
// source, as laid out by Tensors.Prepare.
type Graph struct {
	*onnx.Builder
	arch string // GGUF architecture, naming the graph and its errors

	groupMasks map[groupKey]onnx.Value // see groupMask
}

// NewGraph starts the graph of architecture a.
func NewGraph(a string, w onnx.WeightSource) *Graph {
	return &Graph{Builder: onnx.NewBuilder("lmood-"+a, w), arch: a}
}

// Emit adds v as output p if the plan asks for it; width is its last axis.
func (g *Graph) Emit(plan *Plan, p arch.Point, v onnx.Value, width int) {
	if plan.Want(p) {
		g.Output(v, p.Name(), onnx.Float, "batch", "seq", width)
	}
}

func (g *Graph) intScalar(v int64) onnx.Value {
	return g.Op("Squeeze", []onnx.Value{g.Ints(v), g.Ints(0)})
}

// Positions returns 0, 1, …, seq-1 (int64) for x of shape [batch, seq, …].
//
// They are counted along x's own seq axis (a running sum of x[0, :, 0]^0,
// which is 1 for every value, NaN included) rather than by Range over
// Shape(x): shape inference then knows the positions, the rotary tables,
// the mask and everything computed from them have x's symbolic seq
// length, where Range's data-dependent length left a fresh unknown
// dimension after every broadcast. With such dimensions (and those of
// reshapes inferring the seq axis, see SoftCappedAttention) onnxruntime
// opened the int8 graphs in time growing with the square of their depth
// (SmolLM2-135M, 30 blocks: 13.8 s); with both fixed, in time linear in it.
func (g *Graph) Positions(x onnx.Value) onnx.Value {
	zero := g.intScalar(0)
	first := g.Op("Gather", []onnx.Value{g.Op("Gather", []onnx.Value{x, zero}, onnx.IntAttr("axis", 0)), zero}, onnx.IntAttr("axis", 1))
	ones := g.Pow(first, 0)
	count := g.Op("CumSum", []onnx.Value{ones, zero})
	return g.Op("Cast", []onnx.Value{g.Sub(count, g.Scalar(1))}, onnx.IntAttr("to", int64(onnx.Int64)))
}

// CausalMask is [seq, seq]: 0 where query q may see key k (k <= q), the
// lowest float32 elsewhere, to be added to attention scores.
func (g *Graph) CausalMask(pos onnx.Value) onnx.Value {
	rows := g.Op("Unsqueeze", []onnx.Value{pos, g.Ints(1)})
	cols := g.Op("Unsqueeze", []onnx.Value{pos, g.Ints(0)})
	future := g.Op("Greater", []onnx.Value{cols, rows})
	return g.Op("Where", []onnx.Value{future, g.Scalar(onnx.MinFloat32), g.Scalar(0)})
}

// SlidingMask is CausalMask restricted to a sliding window: 0 where query
// q may see key k (k <= q and q - k < window), the lowest float32
// elsewhere.
func (g *Graph) SlidingMask(pos onnx.Value, window int) onnx.Value {
	rows := g.Op("Unsqueeze", []onnx.Value{pos, g.Ints(1)})
	cols := g.Op("Unsqueeze", []onnx.Value{pos, g.Ints(0)})
	future := g.Op("Greater", []onnx.Value{cols, rows})
	tooFar := g.Op("GreaterOrEqual", []onnx.Value{g.Op("Sub", []onnx.Value{rows, cols}), g.Ints(int64(window))})
	hidden := g.Op("Or", []onnx.Value{future, tooFar})
	return g.Op("Where", []onnx.Value{hidden, g.Scalar(onnx.MinFloat32), g.Scalar(0)})
}

// CausalRotary builds, for the positions of x [batch, seq, …], the rotary
// tables of base (NewRotary) and the causal mask (CausalMask): what every
// block of a rotary model shares.
func (g *Graph) CausalRotary(x onnx.Value, headDim int, base float64) (Rotary, onnx.Value) {
	pos := g.Positions(x)
	return g.NewRotary(pos, headDim, base), g.CausalMask(pos)
}

// Rotary holds the tables of rotate-half rotary embeddings for the
// positions of a prompt, [seq, head_dim/2]: the cos and sin of each
// frequency's angle, possibly scaled (ScaledRotary).
type Rotary struct{ Cos, Sin onnx.Value }

// NewRotary builds the tables for positions pos: position p, frequency j,
// angle p · base^(-2j/headDim).
func (g *Graph) NewRotary(pos onnx.Value, headDim int, base float64) Rotary {
	return g.NewScaledRotary(pos, headDim, base, 1)
}

// NewScaledRotary is NewRotary with linear position scaling: angle
// p/scale · base^(-2j/headDim).
func (g *Graph) NewScaledRotary(pos onnx.Value, headDim int, base, scale float64) Rotary {
	invFreq := make([]float32, headDim/2)
	for j := range invFreq {
		invFreq[j] = float32(math.Pow(base, -2*float64(j)/float64(headDim)) / scale)
	}
	p := g.Op("Unsqueeze", []onnx.Value{g.Op("Cast", []onnx.Value{pos}, onnx.IntAttr("to", int64(onnx.Float))), g.Ints(1)})
	angles := g.MatMul(p, g.Floats([]int64{1, int64(headDim / 2)}, invFreq)) // [seq, hd/2]
	return Rotary{Cos: g.Op("Cos", []onnx.Value{angles}), Sin: g.Op("Sin", []onnx.Value{angles})}
}

// ScaledRotary is r with both tables multiplied by s: Rope with it rotates
// and scales (queries by 1/√head_dim, in one pass with the rotation).
func (g *Graph) ScaledRotary(r Rotary, s float64) Rotary {
	f := g.Scalar(float32(s))
	return Rotary{Cos: g.Mul(r.Cos, f), Sin: g.Mul(r.Sin, f)}
}

// Rope rotates each head's dimension pairs (j, j + head_dim/2) of x
// [batch, seq, heads, head_dim] by its position's angles:
// x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁]. The whole head
// rotates (r's tables are head_dim/2 wide; families refuse partial rotary
// embeddings when reading their configuration).
//
// It runs as onnxruntime's RotaryEmbedding (com.microsoft): one pass over
// x where the slices, concatenation, products and sum of the formula took
// five. The operator reads the heads flattened, [batch, seq,
// heads·head_dim], and positions counted from 0 (position_ids [0]).
func (g *Graph) Rope(x onnx.Value, r Rotary, heads, headDim int) onnx.Value {
	flat := g.Reshape(x, 0, 0, int64(heads*headDim))
	y := g.MSOp("RotaryEmbedding", []onnx.Value{flat, g.Ints(0), r.Cos, r.Sin},
		onnx.IntAttr("interleaved", 0), onnx.IntAttr("num_heads", int64(heads)), onnx.IntAttr("rotary_embedding_dim", int64(headDim)))
	return g.Reshape(y, 0, 0, int64(heads), int64(headDim))
}

// RMSNorm is x / sqrt(mean(x²) + eps) · weight over the last axis.
func (g *Graph) RMSNorm(x, weight onnx.Value, eps float64) onnx.Value {
	meanSquare := g.ReduceMean(g.Pow(x, 2), -1)
	return g.Mul(g.Div(x, g.Sqrt(g.Add(meanSquare, g.Scalar(float32(eps))))), weight)
}

// LayerNorm is (x - mean) / sqrt(var + eps) · weight + bias over the last
// axis.
func (g *Graph) LayerNorm(x, weight, bias onnx.Value, eps float64) onnx.Value {
	centred := g.Sub(x, g.ReduceMean(x, -1))
	variance := g.ReduceMean(g.Pow(centred, 2), -1)
	return g.Add(g.Mul(g.Div(centred, g.Sqrt(g.Add(variance, g.Scalar(float32(eps))))), weight), bias)
}

// Linear is x @ W (+ b) for the GGUF weight name and an optional bias name
// ("" for none). W is stored [in, out], or, for a family implementing
// arch.QuantLinear, possibly kept block-quantized and multiplied with
// MatMulNBits (see onnx.Builder.Linear).
func (g *Graph) Linear(x onnx.Value, weight, bias string) onnx.Value {
	y := g.Builder.Linear(x, weight)
	if bias != "" {
		y = g.Add(y, g.Weight(bias))
	}
	return y
}

// Heads splits [batch, seq, n·head_dim] into [batch, seq, n, head_dim]
// (a reshape: heads stay in the token-major order of the projections;
// Attention moves them where its products need them).
func (g *Graph) Heads(x onnx.Value, n, headDim int) onnx.Value {
	return g.Reshape(x, 0, 0, int64(n), int64(headDim))
}

// Attention is masked grouped-query attention of queries q [b, s, heads, hd]
// (already scaled) over keys and values [b, s, kv, hd]: query heads are
// grouped heads/kv to a key/value head. It returns the heads' contexts
// concatenated, [b, s, heads·hd], before the output projection.
func (g *Graph) Attention(q, k, v, mask onnx.Value, heads, kvHeads, headDim int) onnx.Value {
	return g.SoftCappedAttention(q, k, v, mask, 0, heads, kvHeads, headDim)
}

// SoftCappedAttention is Attention with the scores q·k soft-capped before
// the mask and the softmax: cap · tanh(q·k / cap) (Gemma 2's
// attn_logit_softcapping). A cap of 0 leaves the scores as they are.
//
// The g query heads of a group are one matrix: q moves to [b, kv, s, g·hd]
// (one transpose, rows g·hd floats long) and is read as [b, kv, s·g, hd],
// so each key/value head takes one product with all its queries; keys and
// values move to [b, kv, s, hd], keys transposed inside the product
// (com.microsoft FusedMatMul, transB). Row s·g + j of the scores is
// position s of the group's head j, so the mask's rows repeat g times.
func (g *Graph) SoftCappedAttention(q, k, v, mask onnx.Value, softcap float64, heads, kvHeads, headDim int) onnx.Value {
	kv, group, hd := int64(kvHeads), int64(heads/kvHeads), int64(headDim)
	// The merged axis s·g is inferred (-1) by the reshapes and named
	// (value_info) rather than left to shape inference, whose fresh symbol
	// per block made onnxruntime open the graphs 4-5 times slower.
	sg := seqGroup
	if group == 1 {
		sg = "seq"
	}
	qg := g.Reshape(g.Transpose(g.Reshape(q, 0, 0, kv, group*hd), 0, 2, 1, 3), 0, 0, -1, hd)
	g.DeclareShape(qg, onnx.Float, "batch", kv, sg, hd)
	kh := g.Transpose(k, 0, 2, 1, 3) // [b, kv, s, hd]
	vh := g.Transpose(v, 0, 2, 1, 3)
	scores := g.MSOp("FusedMatMul", []onnx.Value{qg, kh}, onnx.IntAttr("transB", 1))
	g.DeclareShape(scores, onnx.Float, "batch", kv, sg, "seq")
	if softcap != 0 {
		scores = g.SoftCap(scores, softcap)
	}
	ctx := g.MatMul(g.Softmax(g.Add(scores, g.groupMask(mask, group)), -1), vh)
	g.DeclareShape(ctx, onnx.Float, "batch", kv, sg, hd)
	ctx = g.Reshape(ctx, 0, 0, -1, group*hd)
	g.DeclareShape(ctx, onnx.Float, "batch", kv, "seq", group*hd)
	ctx = g.Transpose(ctx, 0, 2, 1, 3)           // [b, s, kv, g·hd]
	return g.Reshape(ctx, 0, 0, int64(heads)*hd) // [b, s, heads·hd]
}

// seqGroup names the merged seq·group axis of grouped queries.
const seqGroup = "seq_group"

// groupMask repeats each row of mask [s, t] group times, [s·group, t]: the
// mask of a key/value head's grouped queries (SoftCappedAttention). Built
// once per mask and group size.
func (g *Graph) groupMask(mask onnx.Value, group int64) onnx.Value {
	if group == 1 {
		return mask
	}
	key := groupKey{mask, group}
	if m, ok := g.groupMasks[key]; ok {
		return m
	}
	rep := g.Op("Expand", []onnx.Value{g.Op("Unsqueeze", []onnx.Value{mask, g.Ints(1)}), g.Ints(1, group, 1)}) // [s, group, t]
	m := g.DeclareShape(g.Op("Flatten", []onnx.Value{rep}, onnx.IntAttr("axis", 2)), onnx.Float, seqGroup, "seq")
	if g.groupMasks == nil {
		g.groupMasks = map[groupKey]onnx.Value{}
	}
	g.groupMasks[key] = m
	return m
}

type groupKey struct {
	mask  onnx.Value
	group int64
}

// SoftCap is c · tanh(x / c): x squashed smoothly into (-c, c).
func (g *Graph) SoftCap(x onnx.Value, c float64) onnx.Value {
	return g.Mul(g.Op("Tanh", []onnx.Value{g.Mul(x, g.Scalar(float32(1/c)))}), g.Scalar(float32(c)))
}

// SiLU is x · sigmoid(x).
func (g *Graph) SiLU(x onnx.Value) onnx.Value { return g.Mul(x, g.Sigmoid(x)) }

// GELUTanh is the tanh approximation of GELU:
// x/2 · (1 + tanh(√(2/π) (x + 0.044715 x³))).
func (g *Graph) GELUTanh(x onnx.Value) onnx.Value {
	inner := g.Mul(g.Add(x, g.Mul(g.Pow(x, 3), g.Scalar(0.044715))), g.Scalar(float32(math.Sqrt(2/math.Pi))))
	return g.Mul(g.Mul(x, g.Scalar(0.5)), g.Add(g.Op("Tanh", []onnx.Value{inner}), g.Scalar(1)))
}

// Split cuts the last axis of x into consecutive parts of the given sizes.
func (g *Graph) Split(x onnx.Value, sizes ...int) []onnx.Value {
	out := make([]onnx.Value, len(sizes))
	start := int64(0)
	for i, n := range sizes {
		out[i] = g.Slice(x, -1, start, start+int64(n))
		start += int64(n)
	}
	return out
}

// Project maps x [batch, seq, dim] to vocabulary logits with the GGUF
// weight output (as Linear reads it), or, if tied, with the [vocab, dim]
// token embedding matrix transposed (Gemm with transB: no second copy; a
// block-quantized embedding is already MatMulNBits's [N, K] layout).
func (g *Graph) Project(x onnx.Value, tied bool, output string, dim, vocab int) onnx.Value {
	if !tied {
		return g.Linear(x, output, "")
	}
	if g.Builder.BlockQuantized(arch.TokenEmbd) {
		return g.Builder.Linear(x, arch.TokenEmbd)
	}
	flat := g.Reshape(x, -1, int64(dim))
	logits := g.Op("Gemm", []onnx.Value{flat, g.Weight(arch.TokenEmbd)}, onnx.IntAttr("transB", 1))
	shape := g.Concat(0, g.Op("Shape", []onnx.Value{x}, onnx.IntAttr("start", 0), onnx.IntAttr("end", 2)), g.Ints(int64(vocab)))
	return g.Op("Reshape", []onnx.Value{logits, shape})
}
