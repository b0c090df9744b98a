package gguf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Writer builds a GGUF version 3 file in memory. It is intended for tests
// and fixtures (e.g. tiny synthetic models): tensor data is held in memory
// until written, except for tensors added with AddTensorStream, whose data
// is generated while the file is written (multi-gigabyte synthetic models).
//
// Metadata is written in the order it was added. The Add* methods never
// fail; the first problem (duplicate key or tensor name, data length not
// matching the dimensions, ...) is remembered and returned by WriteTo,
// Bytes and WriteFile, and by Err.
//
// Tensor dimensions are given in ggml order: dims[0] is the row length (the
// fastest-varying dimension), so a numpy array of shape (rows, cols) has
// dims []uint64{cols, rows}. Tensor data is given in storage (row-major)
// order.
type Writer struct {
	kvs     []writerKV
	keyIdx  map[string]int
	tensors []writerTensor
	names   map[string]bool
	err     error
}

type writerKV struct {
	key string
	v   Value
}

type writerTensor struct {
	name string
	dims []uint64
	typ  Type
	data []byte
	size uint64                // bytes of data, or what gen writes
	gen  func(io.Writer) error // writes the data at WriteTo time (AddTensorStream)
}

// NewWriter returns an empty Writer.
func NewWriter() *Writer {
	return &Writer{keyIdx: map[string]int{}, names: map[string]bool{}}
}

// Err returns the first error recorded by an Add or Set method, if any.
func (w *Writer) Err() error { return w.err }

func (w *Writer) fail(format string, args ...any) {
	if w.err == nil {
		w.err = fmt.Errorf("gguf: writer: "+format, args...)
	}
}

// Add appends a metadata entry. Adding a key twice is an error.
func (w *Writer) Add(key string, v Value) {
	if _, dup := w.keyIdx[key]; dup {
		w.fail("duplicate metadata key %q", key)
		return
	}
	w.keyIdx[key] = len(w.kvs)
	w.kvs = append(w.kvs, writerKV{key, v})
}

// Set adds a metadata entry or replaces the value of an existing key in
// place (keeping its position).
func (w *Writer) Set(key string, v Value) {
	if i, ok := w.keyIdx[key]; ok {
		w.kvs[i].v = v
		return
	}
	w.Add(key, v)
}

// AddUint8 adds a uint8 metadata entry.
func (w *Writer) AddUint8(key string, v uint8) { w.Add(key, NewUint8(v)) }

// AddInt8 adds an int8 metadata entry.
func (w *Writer) AddInt8(key string, v int8) { w.Add(key, NewInt8(v)) }

// AddUint16 adds a uint16 metadata entry.
func (w *Writer) AddUint16(key string, v uint16) { w.Add(key, NewUint16(v)) }

// AddInt16 adds an int16 metadata entry.
func (w *Writer) AddInt16(key string, v int16) { w.Add(key, NewInt16(v)) }

// AddUint32 adds a uint32 metadata entry.
func (w *Writer) AddUint32(key string, v uint32) { w.Add(key, NewUint32(v)) }

// AddInt32 adds an int32 metadata entry.
func (w *Writer) AddInt32(key string, v int32) { w.Add(key, NewInt32(v)) }

// AddUint64 adds a uint64 metadata entry.
func (w *Writer) AddUint64(key string, v uint64) { w.Add(key, NewUint64(v)) }

// AddInt64 adds an int64 metadata entry.
func (w *Writer) AddInt64(key string, v int64) { w.Add(key, NewInt64(v)) }

// AddFloat32 adds a float32 metadata entry.
func (w *Writer) AddFloat32(key string, v float32) { w.Add(key, NewFloat32(v)) }

// AddFloat64 adds a float64 metadata entry.
func (w *Writer) AddFloat64(key string, v float64) { w.Add(key, NewFloat64(v)) }

// AddBool adds a bool metadata entry.
func (w *Writer) AddBool(key string, v bool) { w.Add(key, NewBool(v)) }

// AddString adds a string metadata entry.
func (w *Writer) AddString(key string, v string) { w.Add(key, NewString(v)) }

// AddStrings adds an array-of-strings metadata entry (e.g.
// tokenizer.ggml.tokens).
func (w *Writer) AddStrings(key string, v []string) { w.Add(key, ArrayOf(v)) }

// AddInt32s adds an array-of-int32 metadata entry (e.g.
// tokenizer.ggml.token_type).
func (w *Writer) AddInt32s(key string, v []int32) { w.Add(key, ArrayOf(v)) }

// AddUint32s adds an array-of-uint32 metadata entry.
func (w *Writer) AddUint32s(key string, v []uint32) { w.Add(key, ArrayOf(v)) }

// AddFloat32s adds an array-of-float32 metadata entry (e.g.
// tokenizer.ggml.scores).
func (w *Writer) AddFloat32s(key string, v []float32) { w.Add(key, ArrayOf(v)) }

// SetAlignment sets general.alignment (a uint32 entry) and uses it for the
// data section. The default is DefaultAlignment.
func (w *Writer) SetAlignment(a uint32) { w.Set(KeyAlignment, NewUint32(a)) }

// AddTensorF32 adds a float32 tensor. len(data) must equal the product of
// dims (ggml order, dims[0] fastest).
func (w *Writer) AddTensorF32(name string, dims []uint64, data []float32) {
	if !w.checkLen(name, dims, len(data)) {
		return
	}
	b := make([]byte, 4*len(data))
	for i, x := range data {
		le.PutUint32(b[4*i:], math.Float32bits(x))
	}
	w.AddTensorRaw(name, dims, F32, b)
}

// AddTensorF16 adds a tensor stored as IEEE half precision, converting
// data with round-to-nearest-even.
func (w *Writer) AddTensorF16(name string, dims []uint64, data []float32) {
	if !w.checkLen(name, dims, len(data)) {
		return
	}
	b := make([]byte, 2*len(data))
	for i, x := range data {
		le.PutUint16(b[2*i:], f32ToF16(x))
	}
	w.AddTensorRaw(name, dims, F16, b)
}

// AddTensorBF16 adds a tensor stored as bfloat16, converting data with
// round-to-nearest-even.
func (w *Writer) AddTensorBF16(name string, dims []uint64, data []float32) {
	if !w.checkLen(name, dims, len(data)) {
		return
	}
	b := make([]byte, 2*len(data))
	for i, x := range data {
		le.PutUint16(b[2*i:], f32ToBF16(x))
	}
	w.AddTensorRaw(name, dims, BF16, b)
}

// AddTensorQ8_0 adds a tensor quantized to Q8_0 (blocks of 32 int8 values
// with a half-precision scale), using the same rounding as ggml's reference
// quantizer. dims[0] must be a multiple of 32.
func (w *Writer) AddTensorQ8_0(name string, dims []uint64, data []float32) {
	if !w.checkLen(name, dims, len(data)) {
		return
	}
	if len(dims) == 0 || dims[0]%32 != 0 {
		w.fail("tensor %q: Q8_0 needs a row length that is a multiple of 32, got dims %v", name, dims)
		return
	}
	w.AddTensorRaw(name, dims, Q8_0, QuantizeQ8_0(data))
}

// QuantizeQ8_0 quantizes data (whose length must be a multiple of 32; any
// remainder is ignored) to Q8_0 blocks, matching ggml's reference
// quantizer: scale = max|x|/127 stored as half precision, q =
// round-half-away-from-zero(x/scale) computed with the unrounded scale.
func QuantizeQ8_0(data []float32) []byte {
	nb := len(data) / 32
	out := make([]byte, nb*34)
	for i := 0; i < nb; i++ {
		x := data[i*32 : i*32+32]
		b := out[i*34 : i*34+34]
		var amax float32
		for _, v := range x {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		var id float32
		if d != 0 {
			id = 1 / d
		}
		le.PutUint16(b, f32ToF16(d))
		for j, v := range x {
			b[2+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
	return out
}

// AddTensorRaw adds a tensor of any known type from its encoded bytes,
// which must be exactly the size implied by dims and typ.
func (w *Writer) AddTensorRaw(name string, dims []uint64, typ Type, raw []byte) {
	ti, nb, ok := w.newTensor(name, dims, typ)
	if !ok {
		return
	}
	if uint64(len(raw)) != nb {
		w.fail("tensor %q: %s data with dims %v needs %d bytes, got %d", name, typ, dims, nb, len(raw))
		return
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{name: name, dims: ti.Dims, typ: typ, data: append([]byte{}, raw...), size: nb})
}

// AddTensorStream adds a tensor of any known type whose encoded bytes gen
// writes when the file is written, so multi-gigabyte synthetic models need
// not be held in memory. gen must write exactly the size implied by dims
// and typ (WriteTo fails otherwise); it is called once per WriteTo.
func (w *Writer) AddTensorStream(name string, dims []uint64, typ Type, gen func(io.Writer) error) {
	ti, nb, ok := w.newTensor(name, dims, typ)
	if !ok {
		return
	}
	w.names[name] = true
	w.tensors = append(w.tensors, writerTensor{name: name, dims: ti.Dims, typ: typ, size: nb, gen: gen})
}

// newTensor checks a tensor about to be added (a new name, at most
// MaxDims dims, a size its type can encode) and returns its info and
// encoded size; on a problem it records the error and returns false.
func (w *Writer) newTensor(name string, dims []uint64, typ Type) (TensorInfo, uint64, bool) {
	if w.names[name] {
		w.fail("duplicate tensor name %q", name)
		return TensorInfo{}, 0, false
	}
	if len(dims) > MaxDims {
		w.fail("tensor %q: %d dimensions, at most %d allowed", name, len(dims), MaxDims)
		return TensorInfo{}, 0, false
	}
	ti := TensorInfo{Name: name, Dims: append([]uint64{}, dims...), Type: typ}
	nb, err := ti.NumBytes()
	if err != nil {
		w.fail("tensor %q: %v", name, err)
		return TensorInfo{}, 0, false
	}
	return ti, nb, true
}

// sizeCheck counts what a stream generator writes.
type sizeCheck struct {
	c *countingWriter
	n uint64
}

func (s *sizeCheck) Write(p []byte) (int, error) {
	s.c.write(p)
	s.n += uint64(len(p))
	return len(p), s.c.err
}

func (w *Writer) checkLen(name string, dims []uint64, n int) bool {
	ti := TensorInfo{Dims: dims}
	if ne, ok := ti.numElements(); !ok || ne != uint64(n) {
		w.fail("tensor %q: dims %v hold %d elements but %d values were given", name, dims, ti.NumElements(), n)
		return false
	}
	return true
}

func (w *Writer) alignment() (uint64, error) {
	i, ok := w.keyIdx[KeyAlignment]
	if !ok {
		return DefaultAlignment, nil
	}
	a, ok := w.kvs[i].v.AsUint()
	if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
		return 0, fmt.Errorf("gguf: writer: %s = %v is not a power of two", KeyAlignment, w.kvs[i].v)
	}
	return a, nil
}

// countingWriter counts bytes written through it.
type countingWriter struct {
	w   *bufio.Writer
	n   int64
	err error
}

func (c *countingWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u32(v uint32) { c.write(le.AppendUint32(nil, v)) }
func (c *countingWriter) u64(v uint64) { c.write(le.AppendUint64(nil, v)) }
func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	c.write([]byte(s))
}

func (c *countingWriter) pad(align uint64) {
	if r := uint64(c.n) % align; r != 0 {
		c.write(make([]byte, align-r))
	}
}

// WriteTo writes the GGUF file to dst. It implements io.WriterTo.
func (w *Writer) WriteTo(dst io.Writer) (int64, error) {
	if w.err != nil {
		return 0, w.err
	}
	align, err := w.alignment()
	if err != nil {
		return 0, err
	}
	c := &countingWriter{w: bufio.NewWriterSize(dst, 1<<16)}
	c.write([]byte(Magic))
	c.u32(3)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		c.str(kv.key)
		c.u32(uint32(kv.v.Type))
		if err := encodeValue(c, kv.v); err != nil {
			return c.n, fmt.Errorf("gguf: writer: metadata key %q: %w", kv.key, err)
		}
	}
	var off uint64
	for _, t := range w.tensors {
		c.str(t.name)
		c.u32(uint32(len(t.dims)))
		for _, d := range t.dims {
			c.u64(d)
		}
		c.u32(uint32(t.typ))
		c.u64(off)
		off += t.size
		if r := off % align; r != 0 {
			off += align - r
		}
	}
	c.pad(align)
	for _, t := range w.tensors {
		if t.gen != nil && c.err == nil {
			sc := &sizeCheck{c: c}
			if err := t.gen(sc); err != nil {
				return c.n, fmt.Errorf("gguf: writer: tensor %q: %w", t.name, err)
			}
			if sc.n != t.size {
				return c.n, fmt.Errorf("gguf: writer: tensor %q: its generator wrote %d bytes, the dims need %d", t.name, sc.n, t.size)
			}
		} else {
			c.write(t.data)
		}
		c.pad(align)
	}
	if c.err == nil {
		c.err = c.w.Flush()
	}
	if c.err != nil {
		return c.n, fmt.Errorf("gguf: writer: %w", c.err)
	}
	return c.n, nil
}

// encodeValue writes v's payload (without its type tag, which the caller
// writes for top-level values).
func encodeValue(c *countingWriter, v Value) error {
	var b []byte
	switch x := v.v.(type) {
	case uint8:
		b = []byte{x}
	case int8:
		b = []byte{byte(x)}
	case bool:
		if x {
			b = []byte{1}
		} else {
			b = []byte{0}
		}
	case uint16:
		b = le.AppendUint16(nil, x)
	case int16:
		b = le.AppendUint16(nil, uint16(x))
	case uint32:
		b = le.AppendUint32(nil, x)
	case int32:
		b = le.AppendUint32(nil, uint32(x))
	case float32:
		b = le.AppendUint32(nil, math.Float32bits(x))
	case uint64:
		b = le.AppendUint64(nil, x)
	case int64:
		b = le.AppendUint64(nil, uint64(x))
	case float64:
		b = le.AppendUint64(nil, math.Float64bits(x))
	case string:
		c.str(x)
		return c.err
	default:
		if v.Type != ValueArray {
			return fmt.Errorf("value of type %s holds %T", v.Type, v.v)
		}
		return encodeArray(c, v)
	}
	if want := v.Type.fixedSize(); want != int64(len(b)) || scalarType(v.v) != v.Type {
		return fmt.Errorf("value tagged %s holds Go type %T", v.Type, v.v)
	}
	c.write(b)
	return c.err
}

func scalarType(x any) ValueType {
	switch x.(type) {
	case uint8:
		return ValueUint8
	case int8:
		return ValueInt8
	case bool:
		return ValueBool
	case uint16:
		return ValueUint16
	case int16:
		return ValueInt16
	case uint32:
		return ValueUint32
	case int32:
		return ValueInt32
	case float32:
		return ValueFloat32
	case uint64:
		return ValueUint64
	case int64:
		return ValueInt64
	case float64:
		return ValueFloat64
	case string:
		return ValueString
	}
	return ValueArray
}

func encodeArray(c *countingWriter, v Value) error {
	if !v.ElemType.valid() {
		return fmt.Errorf("array with invalid element type %d", uint32(v.ElemType))
	}
	n := v.Len()
	if n == 0 && v.v == nil {
		return errors.New("array value holds no slice")
	}
	c.u32(uint32(v.ElemType))
	c.u64(uint64(n))
	if nested, ok := v.v.([]Value); ok {
		if v.ElemType != ValueArray {
			return fmt.Errorf("array of %s holds nested values", v.ElemType)
		}
		for i, e := range nested {
			if e.Type != ValueArray {
				return fmt.Errorf("element %d of an array of arrays has type %s", i, e.Type)
			}
			if err := encodeArray(c, e); err != nil {
				return fmt.Errorf("element %d: %w", i, err)
			}
		}
		return c.err
	}
	for i := 0; i < n; i++ {
		e, _ := v.Index(i)
		if scalarType(e.v) != v.ElemType {
			return fmt.Errorf("array tagged %s holds %T", v.ElemType, v.v)
		}
		if err := encodeValue(c, e); err != nil {
			return err
		}
	}
	return c.err
}

// Bytes returns the encoded GGUF file.
func (w *Writer) Bytes() ([]byte, error) {
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteFile writes the GGUF file to path, replacing any existing file.
func (w *Writer) WriteFile(path string) error {
	if w.err != nil {
		return w.err
	}
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	if _, err := w.WriteTo(fh); err != nil {
		fh.Close()
		return err
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	return nil
}

var _ io.WriterTo = (*Writer)(nil)
