package gguf

import (
	"fmt"
	"strings"
)

// Type is a ggml tensor element type, as stored in a GGUF tensor descriptor.
// Quantized types store elements in fixed-size blocks; see
// [Type.BlockSize] and [Type.TypeSize].
type Type uint32

// ggml tensor type identifiers. The numbering follows ggml; gaps correspond
// to types that were removed from ggml and are no longer valid in files.
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
)

// qk is the super-block size of the K-quant and most IQ types.
const qk = 256

type typeTraits struct {
	name      string
	blockSize uint64 // elements per block
	typeSize  uint64 // bytes per block
}

// traits lists the block geometry of every type this package knows about.
// Geometry is needed to locate tensor data even for types that cannot be
// dequantized.
var traits = map[Type]typeTraits{
	F32:     {"F32", 1, 4},
	F16:     {"F16", 1, 2},
	Q4_0:    {"Q4_0", 32, 2 + 16},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	Q8_0:    {"Q8_0", 32, 2 + 32},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32},
	Q2_K:    {"Q2_K", qk, qk/16 + qk/4 + 2 + 2},
	Q3_K:    {"Q3_K", qk, qk/8 + qk/4 + 12 + 2},
	Q4_K:    {"Q4_K", qk, 2 + 2 + 12 + qk/2},
	Q5_K:    {"Q5_K", qk, 2 + 2 + 12 + qk/8 + qk/2},
	Q6_K:    {"Q6_K", qk, qk/2 + qk/4 + qk/16 + 2},
	Q8_K:    {"Q8_K", qk, 4 + qk + qk/16*2},
	IQ2_XXS: {"IQ2_XXS", qk, 2 + qk/4},
	IQ2_XS:  {"IQ2_XS", qk, 2 + qk/4 + qk/32},
	IQ3_XXS: {"IQ3_XXS", qk, 2 + qk/4 + qk/8},
	IQ1_S:   {"IQ1_S", qk, 2 + qk/8 + qk/16},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	IQ3_S:   {"IQ3_S", qk, 2 + qk/4 + qk/8 + qk/32 + 4},
	IQ2_S:   {"IQ2_S", qk, 2 + qk/4 + qk/16},
	IQ4_XS:  {"IQ4_XS", qk, 2 + 2 + qk/2 + qk/64},
	I8:      {"I8", 1, 1},
	I16:     {"I16", 1, 2},
	I32:     {"I32", 1, 4},
	I64:     {"I64", 1, 8},
	F64:     {"F64", 1, 8},
	IQ1_M:   {"IQ1_M", qk, qk/8 + qk/16 + qk/32},
	BF16:    {"BF16", 1, 2},
	TQ1_0:   {"TQ1_0", qk, 2 + 4*13},
	TQ2_0:   {"TQ2_0", qk, 2 + 64},
	MXFP4:   {"MXFP4", 32, 1 + 16},
}

// String returns the ggml name of the type, e.g. "Q4_K", or "type(N)" for
// an unknown identifier.
func (t Type) String() string {
	if tr, ok := traits[t]; ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// Known reports whether the block geometry of t is known to this package.
func (t Type) Known() bool {
	_, ok := traits[t]
	return ok
}

// BlockSize returns the number of elements in one block of t (1 for scalar
// types), or 0 if t is unknown.
func (t Type) BlockSize() uint64 { return traits[t].blockSize }

// TypeSize returns the number of bytes in one block of t, or 0 if t is
// unknown.
func (t Type) TypeSize() uint64 { return traits[t].typeSize }

// Quantized reports whether t is a block-quantized type (block size > 1).
func (t Type) Quantized() bool { return traits[t].blockSize > 1 }

// CanDequantize reports whether [Dequantize] supports t.
func (t Type) CanDequantize() bool {
	_, ok := dequantizers[t]
	return ok
}

// DequantizableTypes returns the types supported by [Dequantize], in
// ascending id order.
func DequantizableTypes() []Type {
	var out []Type
	for t := Type(0); t < 64; t++ {
		if t.CanDequantize() {
			out = append(out, t)
		}
	}
	return out
}

// supportedList is the human-readable list used in error messages.
func supportedList() string {
	var names []string
	for _, t := range DequantizableTypes() {
		names = append(names, t.String())
	}
	return strings.Join(names, ", ")
}

// ParseType returns the Type with the given ggml name (case-insensitive),
// e.g. "q4_k" or "F16".
func ParseType(name string) (Type, bool) {
	for t, tr := range traits {
		if strings.EqualFold(tr.name, name) {
			return t, true
		}
	}
	return 0, false
}
