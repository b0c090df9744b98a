package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// windowSize is the read-ahead window of the metadata decoder.
const windowSize = 64 << 10

// maxArrayDepth bounds the nesting of arrays of arrays.
const maxArrayDepth = 8

// MaxArrayLen bounds the element count of one metadata array. The largest
// arrays real models carry are tokenizer vocabularies and merge lists
// (about 262,000 tokens for Gemma, under a million merges); 4 Mi elements
// leaves ample room while keeping a hostile header from making the parser
// allocate gigabytes (10 M empty strings cost 80 MB of file but 160 MB of
// string headers, and more once a tokenizer indexes them).
const MaxArrayLen = 1 << 22

// MaxMetadataElems bounds the array elements of all metadata together, so
// that many arrays just under MaxArrayLen cannot add up either.
const MaxMetadataElems = 1 << 24

// truncError describes a read that runs past the end of the input.
type truncError struct {
	off, need, have int64
	ioErr           error
}

// Error implements error.
func (e *truncError) Error() string {
	msg := fmt.Sprintf("at offset %d: need %d bytes but only %d remain", e.off, e.need, e.have)
	if e.ioErr != nil && !errors.Is(e.ioErr, io.EOF) && !errors.Is(e.ioErr, io.ErrUnexpectedEOF) {
		msg += fmt.Sprintf(" (read error: %v)", e.ioErr)
	}
	return msg + ": " + ErrTruncated.Error()
}

// Unwrap exposes ErrTruncated and any underlying I/O error.
func (e *truncError) Unwrap() []error {
	if e.ioErr != nil {
		return []error{ErrTruncated, e.ioErr}
	}
	return []error{ErrTruncated}
}

// decoder reads little-endian GGUF primitives sequentially from an
// io.ReaderAt, through a read-ahead window, never reading (or allocating)
// past the declared input size.
type decoder struct {
	r      io.ReaderAt
	size   int64
	off    int64 // logical position
	buf    []byte
	bufOff int64 // input offset of buf[0]
	elems  int64 // array elements decoded so far (MaxMetadataElems)
}

func newDecoder(r io.ReaderAt, size int64) *decoder {
	return &decoder{r: r, size: size}
}

func (d *decoder) remaining() int64 { return d.size - d.off }

// next returns the next n bytes and advances. The slice is only valid until
// the following call unless n exceeds the window size, in which case it is
// freshly allocated.
func (d *decoder) next(n int64) ([]byte, error) {
	if n < 0 || n > d.remaining() {
		return nil, &truncError{off: d.off, need: n, have: d.remaining()}
	}
	if d.off >= d.bufOff && d.off+n <= d.bufOff+int64(len(d.buf)) {
		s := d.buf[d.off-d.bufOff : d.off-d.bufOff+n]
		d.off += n
		return s, nil
	}
	if n > windowSize {
		b := make([]byte, n)
		got, err := d.r.ReadAt(b, d.off)
		if int64(got) < n {
			return nil, &truncError{off: d.off, need: n, have: int64(got), ioErr: err}
		}
		d.off += n
		return b, nil
	}
	want := min(int64(windowSize), d.remaining())
	if cap(d.buf) < windowSize {
		d.buf = make([]byte, windowSize)
	}
	d.buf = d.buf[:want]
	got, err := d.r.ReadAt(d.buf, d.off)
	d.buf = d.buf[:got]
	d.bufOff = d.off
	if int64(got) < n {
		return nil, &truncError{off: d.off, need: n, have: int64(got), ioErr: err}
	}
	s := d.buf[:n]
	d.off += n
	return s, nil
}

func (d *decoder) u8() (uint8, error) {
	b, err := d.next(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

func (d *decoder) u16() (uint16, error) {
	b, err := d.next(2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

func (d *decoder) u32() (uint32, error) {
	b, err := d.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64() (uint64, error) {
	b, err := d.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// str reads a length-prefixed string.
func (d *decoder) str() (string, error) {
	at := d.off
	n, err := d.u64()
	if err != nil {
		return "", fmt.Errorf("string length: %w", err)
	}
	if n > uint64(d.remaining()) {
		return "", fmt.Errorf("string at offset %d declares length %d but only %d bytes remain: %w",
			at, n, d.remaining(), ErrTruncated)
	}
	b, err := d.next(int64(n))
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// value reads a value of type t. depth counts enclosing arrays.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	at := d.off
	switch t {
	case ValueUint8:
		x, err := d.u8()
		return Value{Type: t, v: x}, err
	case ValueInt8:
		x, err := d.u8()
		return Value{Type: t, v: int8(x)}, err
	case ValueBool:
		x, err := d.u8()
		return Value{Type: t, v: x != 0}, err
	case ValueUint16:
		x, err := d.u16()
		return Value{Type: t, v: x}, err
	case ValueInt16:
		x, err := d.u16()
		return Value{Type: t, v: int16(x)}, err
	case ValueUint32:
		x, err := d.u32()
		return Value{Type: t, v: x}, err
	case ValueInt32:
		x, err := d.u32()
		return Value{Type: t, v: int32(x)}, err
	case ValueFloat32:
		x, err := d.u32()
		return Value{Type: t, v: math.Float32frombits(x)}, err
	case ValueUint64:
		x, err := d.u64()
		return Value{Type: t, v: x}, err
	case ValueInt64:
		x, err := d.u64()
		return Value{Type: t, v: int64(x)}, err
	case ValueFloat64:
		x, err := d.u64()
		return Value{Type: t, v: math.Float64frombits(x)}, err
	case ValueString:
		s, err := d.str()
		return Value{Type: t, v: s}, err
	case ValueArray:
		return d.array(depth)
	}
	return Value{}, fmt.Errorf("unknown value type %d at offset %d: %w", uint32(t), at, ErrCorrupt)
}

// array reads an array header and its elements.
func (d *decoder) array(depth int) (Value, error) {
	at := d.off
	if depth >= maxArrayDepth {
		return Value{}, fmt.Errorf("array at offset %d nested more than %d levels deep: %w", at, maxArrayDepth, ErrCorrupt)
	}
	et32, err := d.u32()
	if err != nil {
		return Value{}, fmt.Errorf("array element type: %w", err)
	}
	et := ValueType(et32)
	if !et.valid() {
		return Value{}, fmt.Errorf("array at offset %d has unknown element type %d: %w", at, et32, ErrCorrupt)
	}
	count, err := d.u64()
	if err != nil {
		return Value{}, fmt.Errorf("array length: %w", err)
	}
	minSz := et.minSize()
	if count > uint64(d.remaining()/minSz) || count > math.MaxInt {
		return Value{}, fmt.Errorf("array at offset %d declares %d elements of type %s (at least %d bytes each) but only %d bytes remain: %w",
			at, count, et, minSz, d.remaining(), ErrTruncated)
	}
	if count > MaxArrayLen {
		return Value{}, fmt.Errorf("array at offset %d declares %d elements of type %s, more than the %d any model needs: %w",
			at, count, et, MaxArrayLen, ErrCorrupt)
	}
	if d.elems += int64(count); d.elems > MaxMetadataElems {
		return Value{}, fmt.Errorf("array at offset %d brings the metadata to %d array elements, more than the %d any model needs: %w",
			at, d.elems, MaxMetadataElems, ErrCorrupt)
	}
	n := int(count)
	v := Value{Type: ValueArray, ElemType: et}
	if sz := et.fixedSize(); sz > 0 {
		b, err := d.next(int64(n) * sz)
		if err != nil {
			return Value{}, err
		}
		v.v = decodeFixedArray(et, b, n)
		return v, nil
	}
	switch et {
	case ValueString:
		s := make([]string, n)
		for i := range s {
			if s[i], err = d.str(); err != nil {
				return Value{}, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		v.v = s
	case ValueArray:
		s := make([]Value, n)
		for i := range s {
			if s[i], err = d.array(depth + 1); err != nil {
				return Value{}, fmt.Errorf("array element %d: %w", i, err)
			}
		}
		v.v = s
	}
	return v, nil
}

// decodeFixedArray converts n little-endian scalars of type t.
func decodeFixedArray(t ValueType, b []byte, n int) any {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return append([]uint8{}, b[:n]...)
	case ValueInt8:
		s := make([]int8, n)
		for i := range s {
			s[i] = int8(b[i])
		}
		return s
	case ValueBool:
		s := make([]bool, n)
		for i := range s {
			s[i] = b[i] != 0
		}
		return s
	case ValueUint16:
		s := make([]uint16, n)
		for i := range s {
			s[i] = le.Uint16(b[2*i:])
		}
		return s
	case ValueInt16:
		s := make([]int16, n)
		for i := range s {
			s[i] = int16(le.Uint16(b[2*i:]))
		}
		return s
	case ValueUint32:
		s := make([]uint32, n)
		for i := range s {
			s[i] = le.Uint32(b[4*i:])
		}
		return s
	case ValueInt32:
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(le.Uint32(b[4*i:]))
		}
		return s
	case ValueFloat32:
		s := make([]float32, n)
		for i := range s {
			s[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return s
	case ValueUint64:
		s := make([]uint64, n)
		for i := range s {
			s[i] = le.Uint64(b[8*i:])
		}
		return s
	case ValueInt64:
		s := make([]int64, n)
		for i := range s {
			s[i] = int64(le.Uint64(b[8*i:]))
		}
		return s
	case ValueFloat64:
		s := make([]float64, n)
		for i := range s {
			s[i] = math.Float64frombits(le.Uint64(b[8*i:]))
		}
		return s
	}
	return nil
}
