package gguf

import (
	"fmt"
	"math"
	"strings"
)

// ValueType is the type tag of a GGUF metadata value.
type ValueType uint32

// GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	"uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
	"bool", "string", "array", "uint64", "int64", "float64",
}

// String returns the GGUF name of the value type, e.g. "uint32".
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("valuetype(%d)", uint32(t))
}

// valid reports whether t is a defined value type.
func (t ValueType) valid() bool { return t <= ValueFloat64 }

// fixedSize returns the encoded size of a scalar of type t, or 0 for
// variable-length types (string, array) and invalid types.
func (t ValueType) fixedSize() int64 {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}

// minSize returns the smallest possible encoded size of a value of type t.
func (t ValueType) minSize() int64 {
	switch t {
	case ValueString:
		return 8 // length prefix
	case ValueArray:
		return 12 // element type + count
	}
	return t.fixedSize()
}

// Value is a typed GGUF metadata value. Scalars hold the Go type matching
// their GGUF type (uint8 ... float64, bool, string). Arrays hold a typed Go
// slice ([]uint8, []int32, []float32, []string, ...) or, for arrays of
// arrays, a []Value.
//
// The zero Value is invalid (Type is uint8 but holds nothing); values are
// obtained from [File.Value] or built with the New* constructors and
// [ArrayOf].
type Value struct {
	// Type is the GGUF type of the value.
	Type ValueType
	// ElemType is the element type when Type is ValueArray.
	ElemType ValueType
	v        any
}

// Constructors for scalar values, mainly for use with [Writer.Add].

// NewUint8 returns a uint8 Value.
func NewUint8(v uint8) Value { return Value{Type: ValueUint8, v: v} }

// NewInt8 returns an int8 Value.
func NewInt8(v int8) Value { return Value{Type: ValueInt8, v: v} }

// NewUint16 returns a uint16 Value.
func NewUint16(v uint16) Value { return Value{Type: ValueUint16, v: v} }

// NewInt16 returns an int16 Value.
func NewInt16(v int16) Value { return Value{Type: ValueInt16, v: v} }

// NewUint32 returns a uint32 Value.
func NewUint32(v uint32) Value { return Value{Type: ValueUint32, v: v} }

// NewInt32 returns an int32 Value.
func NewInt32(v int32) Value { return Value{Type: ValueInt32, v: v} }

// NewUint64 returns a uint64 Value.
func NewUint64(v uint64) Value { return Value{Type: ValueUint64, v: v} }

// NewInt64 returns an int64 Value.
func NewInt64(v int64) Value { return Value{Type: ValueInt64, v: v} }

// NewFloat32 returns a float32 Value.
func NewFloat32(v float32) Value { return Value{Type: ValueFloat32, v: v} }

// NewFloat64 returns a float64 Value.
func NewFloat64(v float64) Value { return Value{Type: ValueFloat64, v: v} }

// NewBool returns a bool Value.
func NewBool(v bool) Value { return Value{Type: ValueBool, v: v} }

// NewString returns a string Value.
func NewString(v string) Value { return Value{Type: ValueString, v: v} }

// Scalar is the set of Go types that map directly to GGUF scalar types.
type Scalar interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | uint64 | int64 |
		float32 | float64 | bool | string
}

// ArrayOf returns an array Value whose element type is derived from T. The
// slice is copied.
func ArrayOf[T Scalar](elems []T) Value {
	c := append([]T(nil), elems...)
	if c == nil {
		c = []T{}
	}
	var et ValueType
	switch any(c).(type) {
	case []uint8:
		et = ValueUint8
	case []int8:
		et = ValueInt8
	case []uint16:
		et = ValueUint16
	case []int16:
		et = ValueInt16
	case []uint32:
		et = ValueUint32
	case []int32:
		et = ValueInt32
	case []uint64:
		et = ValueUint64
	case []int64:
		et = ValueInt64
	case []float32:
		et = ValueFloat32
	case []float64:
		et = ValueFloat64
	case []bool:
		et = ValueBool
	case []string:
		et = ValueString
	}
	return Value{Type: ValueArray, ElemType: et, v: c}
}

// ArrayOfArrays returns an array Value whose elements are themselves
// arrays. Every element must have Type ValueArray; [Writer] reports an error
// otherwise.
func ArrayOfArrays(elems []Value) Value {
	return Value{Type: ValueArray, ElemType: ValueArray, v: append([]Value{}, elems...)}
}

// Any returns the underlying Go value: a scalar of the matching Go type, a
// typed slice for arrays of scalars, or []Value for arrays of arrays. The
// returned slice aliases the Value's storage and must not be modified.
func (v Value) Any() any { return v.v }

// AsUint returns the value as a uint64 if it is an integer of any GGUF
// integer type and is not negative.
func (v Value) AsUint() (uint64, bool) {
	switch x := v.v.(type) {
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	case int8:
		return uint64(x), x >= 0
	case int16:
		return uint64(x), x >= 0
	case int32:
		return uint64(x), x >= 0
	case int64:
		return uint64(x), x >= 0
	}
	return 0, false
}

// AsInt returns the value as an int64 if it is an integer of any GGUF
// integer type that fits in an int64.
func (v Value) AsInt() (int64, bool) {
	switch x := v.v.(type) {
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), x <= math.MaxInt64
	}
	return 0, false
}

// AsFloat returns the value as a float64 if it is a float32, float64 or
// any integer type.
func (v Value) AsFloat() (float64, bool) {
	switch x := v.v.(type) {
	case float32:
		return float64(x), true
	case float64:
		return x, true
	}
	if i, ok := v.AsInt(); ok {
		return float64(i), true
	}
	if u, ok := v.AsUint(); ok {
		return float64(u), true
	}
	return 0, false
}

// AsBool returns the value if it is a bool.
func (v Value) AsBool() (bool, bool) {
	b, ok := v.v.(bool)
	return b, ok
}

// AsString returns the value if it is a string.
func (v Value) AsString() (string, bool) {
	s, ok := v.v.(string)
	return s, ok
}

// Len returns the number of elements of an array value, or 0 for scalars.
func (v Value) Len() int {
	switch x := v.v.(type) {
	case []uint8:
		return len(x)
	case []int8:
		return len(x)
	case []uint16:
		return len(x)
	case []int16:
		return len(x)
	case []uint32:
		return len(x)
	case []int32:
		return len(x)
	case []uint64:
		return len(x)
	case []int64:
		return len(x)
	case []float32:
		return len(x)
	case []float64:
		return len(x)
	case []bool:
		return len(x)
	case []string:
		return len(x)
	case []Value:
		return len(x)
	}
	return 0
}

// Index returns element i of an array value as a Value.
func (v Value) Index(i int) (Value, bool) {
	if v.Type != ValueArray || i < 0 || i >= v.Len() {
		return Value{}, false
	}
	et := v.ElemType
	switch x := v.v.(type) {
	case []uint8:
		return Value{Type: et, v: x[i]}, true
	case []int8:
		return Value{Type: et, v: x[i]}, true
	case []uint16:
		return Value{Type: et, v: x[i]}, true
	case []int16:
		return Value{Type: et, v: x[i]}, true
	case []uint32:
		return Value{Type: et, v: x[i]}, true
	case []int32:
		return Value{Type: et, v: x[i]}, true
	case []uint64:
		return Value{Type: et, v: x[i]}, true
	case []int64:
		return Value{Type: et, v: x[i]}, true
	case []float32:
		return Value{Type: et, v: x[i]}, true
	case []float64:
		return Value{Type: et, v: x[i]}, true
	case []bool:
		return Value{Type: et, v: x[i]}, true
	case []string:
		return Value{Type: et, v: x[i]}, true
	case []Value:
		return x[i], true
	}
	return Value{}, false
}

// AsStrings returns a copy of an array of strings.
func (v Value) AsStrings() ([]string, bool) {
	s, ok := v.v.([]string)
	if !ok {
		return nil, false
	}
	return append([]string{}, s...), true
}

// AsInt32s returns a copy of an integer array converted to int32. Arrays
// of any integer type are accepted as long as every element fits in an
// int32.
func (v Value) AsInt32s() ([]int32, bool) {
	if v.Type != ValueArray {
		return nil, false
	}
	if s, ok := v.v.([]int32); ok {
		return append([]int32{}, s...), true
	}
	n := v.Len()
	out := make([]int32, n)
	for i := 0; i < n; i++ {
		e, _ := v.Index(i)
		x, ok := e.AsInt()
		if !ok || x < math.MinInt32 || x > math.MaxInt32 {
			return nil, false
		}
		out[i] = int32(x)
	}
	return out, true
}

// AsFloat32s returns a copy of a numeric array converted to float32.
// float32 arrays are returned exactly; float64 and integer arrays are
// converted (with rounding).
func (v Value) AsFloat32s() ([]float32, bool) {
	if v.Type != ValueArray {
		return nil, false
	}
	if s, ok := v.v.([]float32); ok {
		return append([]float32{}, s...), true
	}
	if v.ElemType == ValueBool || v.ElemType == ValueString || v.ElemType == ValueArray {
		return nil, false
	}
	n := v.Len()
	out := make([]float32, n)
	for i := 0; i < n; i++ {
		e, _ := v.Index(i)
		x, ok := e.AsFloat()
		if !ok {
			return nil, false
		}
		out[i] = float32(x)
	}
	return out, true
}

// String formats the value for display. Long arrays are abbreviated.
func (v Value) String() string {
	if v.Type != ValueArray {
		if s, ok := v.v.(string); ok {
			return fmt.Sprintf("%q", s)
		}
		return fmt.Sprint(v.v)
	}
	const maxShown = 8
	n := v.Len()
	var b strings.Builder
	fmt.Fprintf(&b, "[%s x %d: ", v.ElemType, n)
	for i := 0; i < n && i < maxShown; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		e, _ := v.Index(i)
		b.WriteString(e.String())
	}
	if n > maxShown {
		fmt.Fprintf(&b, ", ... (%d more)", n-maxShown)
	}
	b.WriteString("]")
	return b.String()
}
