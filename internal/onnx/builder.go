// Package onnx builds ONNX models in Go.
//
// The protobuf types live in the generated package onnxpb (from the
// official onnx.proto, see onnxpb/generate.sh); this package adds a small
// graph-building helper on top of them so that architecture code can read
// like the model it describes:
//
//	b := onnx.NewBuilder("llama")
//	x := b.Input("inputs_embeds", onnx.Float, "batch", "seq", 576)
//	h := b.MatMul(x, b.Weight("blk.0.attn_q.weight"))
//
// Large weights are never embedded in the graph: they are referenced as
// ONNX external data (a file beside the graph plus an offset), so one
// weights file can serve several graphs (for example graphs truncated at
// different layers).
package onnx

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// ElemType is an ONNX tensor element type.
type ElemType int32

// The element types lmood uses.
const (
	Float ElemType = ElemType(onnxpb.TensorProto_FLOAT)
	Int64 ElemType = ElemType(onnxpb.TensorProto_INT64)
	Bool  ElemType = ElemType(onnxpb.TensorProto_BOOL)
	Uint8 ElemType = ElemType(onnxpb.TensorProto_UINT8)
	Int8  ElemType = ElemType(onnxpb.TensorProto_INT8)
)

// Size is the byte size of one element (float32 for an unset type).
func (t ElemType) Size() int64 {
	switch t {
	case Uint8, Int8, Bool:
		return 1
	case Int64:
		return 8
	}
	return 4
}

// MSDomain is the operator domain of onnxruntime's contrib operators
// (MatMulNBits).
const MSDomain = "com.microsoft"

// Opset is the default-domain operator set version the builder targets
// (21: QuantizeLinear with blocks, see quantizeRows).
const Opset = 21

// IRVersion is the ONNX IR version written into models (IR 10 goes with
// opset 21).
const IRVersion = 10

// Value names a tensor flowing through the graph.
type Value string

// Attr is a node attribute.
type Attr = *onnxpb.AttributeProto

// ExternalTensor locates a tensor's raw little-endian bytes in a weights
// file beside the graph.
type ExternalTensor struct {
	Location string   // file name relative to the graph file
	Offset   int64    // byte offset in that file
	Dims     []int64  // tensor shape
	Type     ElemType // element type; 0 means Float
	// NBits is set for a linear weight kept block-quantized: the tensor
	// itself holds MatMulNBits's packed codes [N, blocks, blob], and
	// Linear multiplies by it with MatMulNBits.
	NBits *NBits
	// Int8 is set for a linear weight kept as int8 codes per output
	// channel: the tensor itself holds the codes [K, N] (int8), and
	// Linear multiplies with onnxruntime's integer GEMM (MatMulIntegerToFloat)
	// on activations quantized to 8 bits per row.
	Int8 *Int8Linear
}

// Int8Linear describes a linear weight y = x @ W kept as symmetric int8 codes
// with one float32 scale per output: W[k, n] = codes[k, n] * Scales[n].
type Int8Linear struct {
	K, N   int64
	Scales ExternalTensor // float32 [N]
	// Rowwise codes every row of the input on its own, as the anchor row
	// is coded (its 8-bit value plus its 8-bit rounding error, about 15
	// bits), instead of anchoring the rows on row 0: for graphs whose rows
	// are not nudged copies of row 0 (logits, the final norm, the output
	// head). See Builder.linearInt8.
	Rowwise bool
}

// NBits describes a block-quantized linear weight y = x @ W, W of K
// inputs and N outputs, for onnxruntime's com.microsoft MatMulNBits.
type NBits struct {
	K, N      int64
	Bits      int64 // 4 or 8
	BlockSize int64
	Scales    ExternalTensor  // float32 [N, blocks]
	Zero      *ExternalTensor // float32 [N, blocks]; nil: the default zero point 2^(bits-1)
	// AccuracyLevel is MatMulNBits's accuracy_level: 0 computes in
	// float32, 4 lets onnxruntime quantize the activations to int8 per
	// block.
	AccuracyLevel int64
}

// Bytes returns the byte length of the tensor's data.
func (t ExternalTensor) Bytes() int64 {
	n := t.Type.Size()
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// WeightSource resolves weight names to their external data.
type WeightSource interface {
	Lookup(name string) (ExternalTensor, bool)
}

// Builder accumulates a single ONNX graph.
type Builder struct {
	graph   *onnxpb.GraphProto
	weights WeightSource
	used    map[string]bool
	n       int
	err     error
	ms      bool // a com.microsoft operator is used
	// anchors caches the int8 form of a value that several int8 linears
	// read (q, k and v; gate and up).
	anchors map[Value]anchored
	// rows caches the rowwise two-level codes of a value (Int8Linear.Rowwise).
	rows map[Value]twoLevelCodes
	// zeros holds the zero points of the int8 codes, one per kind of row
	// set (the batch's rows, the anchor row): every anchored linear
	// quantizes rows of the same shape.
	zeros  map[rowSet]Value
	consts map[string]Value // small constants by type and value
}

// NewBuilder starts a graph. Weights referenced with Weight are resolved
// through src.
func NewBuilder(name string, src WeightSource) *Builder {
	return &Builder{
		graph:   &onnxpb.GraphProto{Name: proto.String(name)},
		weights: src,
		used:    map[string]bool{},
	}
}

// Err reports the first error met while building (for example a weight
// missing from the source). Model returns it too.
func (b *Builder) Err() error { return b.err }

func (b *Builder) fail(format string, args ...any) {
	if b.err == nil {
		b.err = fmt.Errorf(format, args...)
	}
}

// fresh returns a unique value name with a readable prefix.
func (b *Builder) fresh(prefix string) Value {
	b.n++
	return Value(fmt.Sprintf("%s_%d", prefix, b.n))
}

func valueInfo(name string, t ElemType, dims []any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch v := d.(type) {
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}
		case int64:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: v}
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: v}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{
			TensorType: &onnxpb.TypeProto_Tensor{ElemType: proto.Int32(int32(t)), Shape: shape},
		}},
	}
}

// Input declares a graph input. Dimensions are ints (fixed) or strings
// (symbolic, such as "batch").
func (b *Builder) Input(name string, t ElemType, dims ...any) Value {
	b.graph.Input = append(b.graph.Input, valueInfo(name, t, dims))
	return Value(name)
}

// Output exposes v as a graph output called name.
func (b *Builder) Output(v Value, name string, t ElemType, dims ...any) {
	if string(v) != name {
		b.node("Identity", []Value{v}, []Value{Value(name)})
	}
	b.graph.Output = append(b.graph.Output, valueInfo(name, t, dims))
}

// DeclareShape records the shape of the intermediate value v (graph
// value_info; dimensions as in Input) and returns v. It names an axis that
// shape inference cannot (e.g. one merged by a reshape that infers its
// size), so that every use shares one symbol.
func (b *Builder) DeclareShape(v Value, t ElemType, dims ...any) Value {
	b.graph.ValueInfo = append(b.graph.ValueInfo, valueInfo(string(v), t, dims))
	return v
}

// Weight references a named weight as an external-data initializer.
func (b *Builder) Weight(name string) Value {
	if b.used[name] {
		return Value(name)
	}
	t, ok := b.weights.Lookup(name)
	if !ok {
		b.fail("onnx: weight %q is missing from the weights file", name)
		return Value(name)
	}
	if t.NBits != nil || t.Int8 != nil {
		b.fail("onnx: weight %q is quantized; the graph must read it through Linear", name)
		return Value(name)
	}
	return b.external(name, t)
}

// external adds an external-data initializer.
func (b *Builder) external(name string, t ExternalTensor) Value {
	if b.used[name] {
		return Value(name)
	}
	typ := t.Type
	if typ == 0 {
		typ = Float
	}
	init := &onnxpb.TensorProto{
		Name:         proto.String(name),
		Dims:         t.Dims,
		DataType:     proto.Int32(int32(typ)),
		DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
		ExternalData: []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(t.Location)},
			{Key: proto.String("offset"), Value: proto.String(fmt.Sprint(t.Offset))},
			{Key: proto.String("length"), Value: proto.String(fmt.Sprint(t.Bytes()))},
		},
	}
	b.graph.Initializer = append(b.graph.Initializer, init)
	b.used[name] = true
	return Value(name)
}

// Has reports whether the weight source holds the named weight.
func (b *Builder) Has(name string) bool {
	_, ok := b.weights.Lookup(name)
	return ok
}

// BlockQuantized reports whether the weight source keeps the named weight
// block-quantized (Linear then multiplies with MatMulNBits).
func (b *Builder) BlockQuantized(name string) bool {
	t, ok := b.weights.Lookup(name)
	return ok && t.NBits != nil
}

// Linear returns x @ W for the linear weight called name: a MatMul by a
// float32 [in, out] weight, or, when the weight source keeps it
// block-quantized (ExternalTensor.NBits), onnxruntime's MatMulNBits on its
// codes, scales and zero points (named name+".scales", name+".zero_points").
func (b *Builder) Linear(x Value, name string) Value {
	t, ok := b.weights.Lookup(name)
	if ok && t.Int8 != nil {
		return b.linearInt8(x, name, t)
	}
	if !ok || t.NBits == nil {
		return b.MatMul(x, b.Weight(name))
	}
	q := t.NBits
	in := []Value{x, b.external(name, t), b.external(name+".scales", q.Scales)}
	if q.Zero != nil {
		in = append(in, b.external(name+".zero_points", *q.Zero))
	}
	b.ms = true
	out := b.fresh("MatMulNBits")
	b.node("MatMulNBits", in, []Value{out},
		IntAttr("K", q.K), IntAttr("N", q.N), IntAttr("bits", q.Bits),
		IntAttr("block_size", q.BlockSize), IntAttr("accuracy_level", q.AccuracyLevel))
	b.graph.Node[len(b.graph.Node)-1].Domain = proto.String(MSDomain)
	return out
}

// linearInt8 is x @ W for an int8 weight, computed in onnxruntime's
// integer GEMM (com.microsoft MatMulIntegerToFloat: int32 sums, exact,
// times each output's weight scale) on activations quantized to 8 bits per
// row (one token of one copy) with the row's own scale.
//
// Rows are anchored on row 0 of the batch (lmood puts the clean copy
// there): row i is split into row 0 plus its difference from row 0,
//
//	x_i @ W = x_0 @ W + (x_i - x_0) @ W
//
// and the difference is what gets quantized, so its rounding error is
// relative to the nudge's effect, not to the activation's size (quantizing
// x_i itself buries the small differences lmood measures in rounding
// noise: drift ratios moved by 16-28%). Row 0 is quantized twice (the
// value, then its rounding error), about 15 bits. The result is right for
// any batch; it is most precise when the rows are near row 0.
//
// A Rowwise weight codes every row the way row 0 is coded (two levels, no
// anchor): two GEMMs over the batch instead of one over the batch and two
// over one copy, for graphs whose rows are unrelated texts.
func (b *Builder) linearInt8(x Value, name string, t ExternalTensor) Value {
	w, ws := b.external(name, t), b.external(name+".scales", t.Int8.Scales)
	// codes @ W with every code counted step times (a constant).
	mm := func(codes Value, step float32) Value {
		return b.MSOp("MatMulIntegerToFloat", []Value{codes, w, b.Scalar(step), ws, b.uint8Scalar(128)})
	}
	// A two-level code's product: hi's codes plus lo's (whose step is hi's
	// over loSteps), times hi's step.
	twoLevel := func(c twoLevelCodes) Value {
		return b.Mul(b.Add(mm(c.hi.codes, 1), mm(c.lo, 1.0/loSteps)), c.hi.scale)
	}
	if t.Int8.Rowwise {
		return twoLevel(b.rowwise(x))
	}
	a := b.anchor(x)
	x0W := twoLevel(a.x0)
	return b.Add(b.Mul(mm(a.diff.codes, 1), a.diff.scale), x0W)
}

// rowCodes are 8-bit codes of a value along its last axis with a scale
// per row.
type rowCodes struct{ codes, scale Value }

// anchored is the int8 form of a linear's input x: x - x[0] for every row
// of the batch, and x[0] ([1, ...]) in two levels. It is built once per x
// and shared by the linears that read it (q, k and v; gate and up).
type anchored struct {
	diff rowCodes
	x0   twoLevelCodes
}

// twoLevelCodes code a value as its 8-bit value (hi) plus the 8-bit codes of
// its rounding error (lo, whose step is hi's over loSteps): about 15 bits.
type twoLevelCodes struct {
	hi rowCodes
	lo Value
}

// loSteps is how many steps of the anchor's rounding error (lo) make one
// step of its value (hi): 2·127, so that an error of up to half a step
// of hi codes to at most ±127.
const loSteps = 254

// rowSet tells which rows a quantization covers: those of the whole batch
// ([batch, seq, 1] scales) or those of the anchor row ([1, seq, 1]).
type rowSet int

const (
	batchRows rowSet = iota
	anchorRows
)

// anchor returns the int8 form of x (see anchored), built on first use.
func (b *Builder) anchor(x Value) anchored {
	if a, ok := b.anchors[x]; ok {
		return a
	}
	// Gather keeps the batch axis a plain 1 (a Slice of the symbolic batch
	// axis makes onnxruntime's session start quadratic in graph size).
	x0 := b.Op("Gather", []Value{x, b.Ints(0)}, IntAttr("axis", 0))
	a := anchored{diff: b.quantizeRows(b.Sub(x, x0), batchRows), x0: b.twoLevel(x0, anchorRows)}
	if b.anchors == nil {
		b.anchors = map[Value]anchored{}
	}
	b.anchors[x] = a
	return a
}

// rowwise returns x coded in two levels row by row, built on first use.
func (b *Builder) rowwise(x Value) twoLevelCodes {
	if c, ok := b.rows[x]; ok {
		return c
	}
	c := b.twoLevel(x, batchRows)
	if b.rows == nil {
		b.rows = map[Value]twoLevelCodes{}
	}
	b.rows[x] = c
	return c
}

// twoLevel codes x (rows of the given set) as its 8-bit value and its
// rounding error. The error x - dequantized(hi) is at most half of hi's
// step: with a step of hi's over loSteps its codes lie in ±127, so no
// maximum needs finding.
func (b *Builder) twoLevel(x Value, rows rowSet) twoLevelCodes {
	hi := b.quantizeRows(x, rows)
	back := b.Op("DequantizeLinear", []Value{hi.codes, hi.scale, b.zero(hi.scale, rows)},
		IntAttr("axis", -1), IntAttr("block_size", rowBlock))
	return twoLevelCodes{hi: hi, lo: b.quantize(b.Sub(x, back), b.Mul(hi.scale, b.Scalar(1.0/loSteps)), rows)}
}

// quantizeRows returns x quantized to 8 bits along its last axis: codes
// round(x/s)+128 in 1..255 (uint8, symmetric around the zero point 128)
// and the per-row scales s = max|x|/127 (a row of zeros gets a tiny scale
// and codes 128).
func (b *Builder) quantizeRows(x Value, rows rowSet) rowCodes {
	absmax := b.Op("ReduceMax", []Value{b.Op("Abs", []Value{x}), b.Ints(-1)}, IntAttr("keepdims", 1))
	s := b.Div(b.Op("Max", []Value{absmax, b.Scalar(1e-30)}), b.Scalar(127))
	return rowCodes{codes: b.quantize(x, s, rows), scale: s}
}

// quantize returns the codes round(x/s)+128 (uint8, saturated) of x with
// one scale per row, s shaped like x but for a last axis of 1. They come
// from one QuantizeLinear with a block per row (opset 21 blocked
// quantization), where Div, Round, Add and Cast took four passes over x;
// it rounds halves to even as Round does.
func (b *Builder) quantize(x, s Value, rows rowSet) Value {
	return b.Op("QuantizeLinear", []Value{x, s, b.zero(s, rows)}, IntAttr("axis", -1), IntAttr("block_size", rowBlock))
}

// zero returns the zero point (128) of codes with the row scales s: with
// blocked quantization it must have the scale's shape, and one tensor per
// rowSet serves the whole graph.
func (b *Builder) zero(s Value, rows rowSet) Value {
	zp, ok := b.zeros[rows]
	if !ok {
		zp = b.Op("Expand", []Value{b.uint8Scalar(128), b.Op("Shape", []Value{s})})
		if b.zeros == nil {
			b.zeros = map[rowSet]Value{}
		}
		b.zeros[rows] = zp
	}
	return zp
}

// rowBlock is QuantizeLinear's block_size for one block per row: with one
// scale along the axis, any size at least the row's length is valid.
const rowBlock = math.MaxInt32

// uint8Scalar adds a uint8 scalar constant to the graph.
func (b *Builder) uint8Scalar(v uint8) Value {
	return b.constant(fmt.Sprint("u8 ", v), "u8", &onnxpb.TensorProto{
		DataType: proto.Int32(int32(Uint8)), RawData: []byte{v}})
}

// Ints adds a small int64 constant tensor (shape [len(v)]) to the graph.
func (b *Builder) Ints(v ...int64) Value {
	return b.constant(fmt.Sprint("i", v), "ints", &onnxpb.TensorProto{
		Dims: []int64{int64(len(v))}, DataType: proto.Int32(int32(Int64)), Int64Data: v})
}

// Scalar adds a float32 scalar constant to the graph.
func (b *Builder) Scalar(v float32) Value {
	return b.constant(fmt.Sprint("f", math.Float32bits(v)), "scalar", &onnxpb.TensorProto{
		DataType: proto.Int32(int32(Float)), FloatData: []float32{v}})
}

// constant adds the small constant t (identified by key: its type and
// value) as an initializer named after prefix, once per graph: every
// later use of the same value shares it.
func (b *Builder) constant(key, prefix string, t *onnxpb.TensorProto) Value {
	if c, ok := b.consts[key]; ok {
		return c
	}
	if b.consts == nil {
		b.consts = map[string]Value{}
	}
	name := b.fresh(prefix)
	t.Name = proto.String(string(name))
	b.graph.Initializer = append(b.graph.Initializer, t)
	b.consts[key] = name
	return name
}

// Floats adds a small float32 constant tensor with the given shape.
func (b *Builder) Floats(dims []int64, v []float32) Value {
	name := b.fresh("floats")
	b.graph.Initializer = append(b.graph.Initializer, &onnxpb.TensorProto{
		Name: proto.String(string(name)), Dims: dims,
		DataType: proto.Int32(int32(Float)), FloatData: v,
	})
	return name
}

func (b *Builder) node(op string, in []Value, out []Value, attrs ...Attr) {
	n := &onnxpb.NodeProto{OpType: proto.String(op), Attribute: attrs,
		Name: proto.String(fmt.Sprintf("%s_%d", op, len(b.graph.Node)))}
	for _, v := range in {
		n.Input = append(n.Input, string(v))
	}
	for _, v := range out {
		n.Output = append(n.Output, string(v))
	}
	b.graph.Node = append(b.graph.Node, n)
}

// Op adds a node with one output and returns that output.
func (b *Builder) Op(op string, in []Value, attrs ...Attr) Value {
	out := b.fresh(op)
	b.node(op, in, []Value{out}, attrs...)
	return out
}

// MSOp adds a com.microsoft contrib node with one output.
func (b *Builder) MSOp(op string, in []Value, attrs ...Attr) Value {
	out := b.Op(op, in, attrs...)
	b.ms = true
	b.graph.Node[len(b.graph.Node)-1].Domain = proto.String(MSDomain)
	return out
}

// IntAttr is an integer attribute.
func IntAttr(name string, v int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// IntsAttr is an integer-list attribute.
func IntsAttr(name string, v ...int64) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

// FloatAttr is a float attribute.
func FloatAttr(name string, v float32) Attr {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

// Elementwise and linear-algebra shorthands, named after the ONNX operators.

// Add returns a + b (broadcasting).
func (b *Builder) Add(x, y Value) Value { return b.Op("Add", []Value{x, y}) }

// Sub returns x - y (broadcasting).
func (b *Builder) Sub(x, y Value) Value { return b.Op("Sub", []Value{x, y}) }

// Mul returns x * y (broadcasting).
func (b *Builder) Mul(x, y Value) Value { return b.Op("Mul", []Value{x, y}) }

// Div returns x / y (broadcasting).
func (b *Builder) Div(x, y Value) Value { return b.Op("Div", []Value{x, y}) }

// MatMul returns the (batched, broadcasting) matrix product x @ y.
func (b *Builder) MatMul(x, y Value) Value { return b.Op("MatMul", []Value{x, y}) }

// Sigmoid returns 1 / (1 + exp(-x)).
func (b *Builder) Sigmoid(x Value) Value { return b.Op("Sigmoid", []Value{x}) }

// Sqrt returns the elementwise square root.
func (b *Builder) Sqrt(x Value) Value { return b.Op("Sqrt", []Value{x}) }

// Pow returns x raised to the scalar power p.
func (b *Builder) Pow(x Value, p float32) Value { return b.Op("Pow", []Value{x, b.Scalar(p)}) }

// ReduceMean averages over the given axes, keeping them as size-1 dims.
func (b *Builder) ReduceMean(x Value, axes ...int64) Value {
	return b.Op("ReduceMean", []Value{x, b.Ints(axes...)}, IntAttr("keepdims", 1))
}

// Softmax normalises along axis.
func (b *Builder) Softmax(x Value, axis int64) Value {
	return b.Op("Softmax", []Value{x}, IntAttr("axis", axis))
}

// Reshape reshapes x; 0 copies the input dimension, -1 is inferred.
func (b *Builder) Reshape(x Value, shape ...int64) Value {
	return b.Op("Reshape", []Value{x, b.Ints(shape...)})
}

// Transpose permutes the axes of x.
func (b *Builder) Transpose(x Value, perm ...int64) Value {
	return b.Op("Transpose", []Value{x}, IntsAttr("perm", perm...))
}

// Slice takes x[start:end] along axis.
func (b *Builder) Slice(x Value, axis, start, end int64) Value {
	return b.Op("Slice", []Value{x, b.Ints(start), b.Ints(end), b.Ints(axis)})
}

// Concat joins values along axis.
func (b *Builder) Concat(axis int64, xs ...Value) Value {
	return b.Op("Concat", xs, IntAttr("axis", axis))
}

// Neg returns -x.
func (b *Builder) Neg(x Value) Value { return b.Op("Neg", []Value{x}) }

// Model wraps the graph in a ModelProto.
func (b *Builder) Model(producer string) (*onnxpb.ModelProto, error) {
	if b.err != nil {
		return nil, b.err
	}
	opsets := []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(Opset)}}
	if b.ms {
		opsets = append(opsets, &onnxpb.OperatorSetIdProto{Domain: proto.String(MSDomain), Version: proto.Int64(1)})
	}
	return &onnxpb.ModelProto{
		IrVersion:    proto.Int64(IRVersion),
		ProducerName: proto.String(producer),
		OpsetImport:  opsets,
		Graph:        b.graph,
	}, nil
}

// Marshal encodes a model as ONNX protobuf bytes.
func Marshal(m *onnxpb.ModelProto) ([]byte, error) {
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("onnx: encode model: %w", err)
	}
	return data, nil
}

// MinFloat32 is the most negative finite float32, used for additive masks.
const MinFloat32 = -math.MaxFloat32
