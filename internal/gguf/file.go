package gguf

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/bits"
	"os"
	"sort"
)

// Magic is the four-byte signature at the start of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment used when a file has no
// general.alignment key.
const DefaultAlignment = 32

// MaxDims is the maximum number of tensor dimensions (GGML_MAX_DIMS).
const MaxDims = 4

// KeyAlignment is the metadata key that overrides the data alignment.
const KeyAlignment = "general.alignment"

// File is a parsed GGUF file: its header, metadata and tensor table. Tensor
// data is read on demand through the underlying io.ReaderAt.
//
// A File is immutable after parsing and safe for concurrent use, except that
// Close must not race with reads.
type File struct {
	// Version is the GGUF format version (2 or 3).
	Version uint32
	// Tensors lists the tensor descriptors in file order.
	Tensors []TensorInfo
	// Alignment is the data alignment in bytes (general.alignment, or
	// DefaultAlignment).
	Alignment uint64
	// DataOffset is the absolute file offset of the tensor data section.
	// Tensor offsets are relative to it.
	DataOffset int64
	// Size is the size of the input in bytes.
	Size int64

	keys   []string
	kv     map[string]Value
	byName map[string]int
	r      io.ReaderAt
	closer io.Closer
	closed bool
}

// Open opens and parses the GGUF file at path. The returned File keeps the
// file open for tensor reads; call Close to release it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := parse(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Parse parses a GGUF file of the given size read through r. The File reads
// tensor data from r on demand, so r must remain usable for as long as the
// File is; Close does not close r.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	f, err := parse(r, size)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	return f, nil
}

// ParseBytes parses a GGUF file held in memory.
func ParseBytes(b []byte) (*File, error) {
	return Parse(bytes.NewReader(b), int64(len(b)))
}

// Close releases the underlying file if the File was created by Open. It is
// safe to call more than once. Tensor reads after Close fail with
// ErrClosed; metadata remains accessible.
func (f *File) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	if f.closer != nil {
		if err := f.closer.Close(); err != nil {
			return fmt.Errorf("gguf: close: %w", err)
		}
	}
	return nil
}

func parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("negative input size %d", size)
	}
	d := newDecoder(r, size)

	magic, err := d.next(4)
	if err != nil {
		return nil, fmt.Errorf("%w (input is only %d bytes, too short for the magic)", ErrNotGGUF, size)
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("%w (magic at offset 0 is %q, want %q)", ErrNotGGUF, magic, Magic)
	}
	version, err := d.u32()
	if err != nil {
		return nil, fmt.Errorf("header: version: %w", err)
	}
	switch {
	case version == 2 || version == 3:
	case version&0xFFFF == 0 && bits.ReverseBytes32(version) <= 3 && bits.ReverseBytes32(version) >= 1:
		return nil, fmt.Errorf("%w: file appears to be big-endian (version field %#08x); only little-endian GGUF is supported",
			ErrUnsupportedVersion, version)
	case version == 1:
		return nil, fmt.Errorf("%w: GGUF version 1 is obsolete; only versions 2 and 3 are supported", ErrUnsupportedVersion)
	default:
		return nil, fmt.Errorf("%w: version %d (only versions 2 and 3 are supported)", ErrUnsupportedVersion, version)
	}
	f := &File{Version: version, Size: size, Alignment: DefaultAlignment, r: r}

	tensorCount, err := d.u64()
	if err != nil {
		return nil, fmt.Errorf("header: tensor count: %w", err)
	}
	kvCount, err := d.u64()
	if err != nil {
		return nil, fmt.Errorf("header: metadata count: %w", err)
	}
	// Smallest encodings: a KV is key length (8) + type (4) + 1-byte value;
	// a tensor descriptor is name length (8) + n_dims (4) + type (4) +
	// offset (8).
	const minKV, minTensor = 13, 24
	if kvCount > uint64(d.remaining()/minKV) {
		return nil, fmt.Errorf("header declares %d metadata entries but only %d bytes remain after the header (offset %d): %w",
			kvCount, d.remaining(), d.off, ErrTruncated)
	}
	if tensorCount > uint64(d.remaining()/minTensor) {
		return nil, fmt.Errorf("header declares %d tensors but only %d bytes remain after the header (offset %d): %w",
			tensorCount, d.remaining(), d.off, ErrTruncated)
	}
	if kvCount*minKV+tensorCount*minTensor > uint64(d.remaining()) {
		return nil, fmt.Errorf("header declares %d metadata entries and %d tensors, which cannot fit in the %d bytes remaining after the header (offset %d): %w",
			kvCount, tensorCount, d.remaining(), d.off, ErrTruncated)
	}

	if err := f.readMetadata(d, int(kvCount)); err != nil {
		return nil, err
	}
	if err := f.readTensorInfos(d, int(tensorCount)); err != nil {
		return nil, err
	}
	// The data section starts at the next multiple of the alignment.
	end := uint64(d.off)
	if pad := end % f.Alignment; pad != 0 {
		end += f.Alignment - pad
	}
	if end > math.MaxInt64 {
		return nil, fmt.Errorf("data section offset overflows: %w", ErrCorrupt)
	}
	f.DataOffset = int64(end)
	if err := f.validateTensorData(); err != nil {
		return nil, err
	}
	return f, nil
}

func (f *File) readMetadata(d *decoder, n int) error {
	f.keys = make([]string, 0, n)
	f.kv = make(map[string]Value, n)
	for i := 0; i < n; i++ {
		at := d.off
		key, err := d.str()
		if err != nil {
			return fmt.Errorf("metadata entry %d at offset %d: key: %w", i, at, err)
		}
		t, err := d.u32()
		if err != nil {
			return fmt.Errorf("metadata entry %d (key %q): value type: %w", i, key, err)
		}
		vt := ValueType(t)
		if !vt.valid() {
			return fmt.Errorf("metadata entry %d (key %q) at offset %d: unknown value type %d: %w", i, key, at, t, ErrCorrupt)
		}
		v, err := d.value(vt, 0)
		if err != nil {
			return fmt.Errorf("metadata entry %d (key %q): %s value: %w", i, key, vt, err)
		}
		if _, dup := f.kv[key]; dup {
			return fmt.Errorf("metadata entry %d at offset %d: duplicate key %q: %w", i, at, key, ErrCorrupt)
		}
		f.keys = append(f.keys, key)
		f.kv[key] = v
	}
	if v, ok := f.kv[KeyAlignment]; ok {
		a, ok := v.AsUint()
		if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
			return fmt.Errorf("metadata key %s = %v is not a valid alignment (want a power of two): %w", KeyAlignment, v, ErrCorrupt)
		}
		f.Alignment = a
	}
	return nil
}

func (f *File) readTensorInfos(d *decoder, n int) error {
	f.Tensors = make([]TensorInfo, n)
	f.byName = make(map[string]int, n)
	for i := range f.Tensors {
		at := d.off
		name, err := d.str()
		if err != nil {
			return fmt.Errorf("tensor descriptor %d at offset %d: name: %w", i, at, err)
		}
		ctx := func() string { return fmt.Sprintf("tensor descriptor %d (%q) at offset %d", i, name, at) }
		nd, err := d.u32()
		if err != nil {
			return fmt.Errorf("%s: n_dims: %w", ctx(), err)
		}
		if nd > MaxDims {
			return fmt.Errorf("%s: n_dims %d exceeds the maximum of %d: %w", ctx(), nd, MaxDims, ErrCorrupt)
		}
		dims := make([]uint64, nd)
		for j := range dims {
			if dims[j], err = d.u64(); err != nil {
				return fmt.Errorf("%s: dimension %d: %w", ctx(), j, err)
			}
			if dims[j] > math.MaxInt64 {
				return fmt.Errorf("%s: dimension %d is %d, larger than int64 allows: %w", ctx(), j, dims[j], ErrCorrupt)
			}
		}
		t, err := d.u32()
		if err != nil {
			return fmt.Errorf("%s: type: %w", ctx(), err)
		}
		off, err := d.u64()
		if err != nil {
			return fmt.Errorf("%s: data offset: %w", ctx(), err)
		}
		ti := TensorInfo{Name: name, Dims: dims, Type: Type(t), Offset: off}
		if _, ok := ti.numElements(); !ok {
			return fmt.Errorf("%s: dimensions %v overflow the element count: %w", ctx(), dims, ErrCorrupt)
		}
		if _, dup := f.byName[name]; dup {
			return fmt.Errorf("%s: duplicate tensor name: %w", ctx(), ErrCorrupt)
		}
		f.byName[name] = i
		f.Tensors[i] = ti
	}
	return nil
}

// validateTensorData checks alignment, bounds and overlap of tensor data.
// Tensors of unknown type cannot be sized; only their alignment and start
// offset are checked.
func (f *File) validateTensorData() error {
	type span struct {
		start, end uint64
		idx        int
	}
	spans := make([]span, 0, len(f.Tensors))
	if len(f.Tensors) > 0 && f.DataOffset > f.Size {
		// Even empty tensors sit in the data section, which must begin
		// inside the file: its alignment padding is missing.
		return fmt.Errorf("the data section starts at offset %d, past the end of the file (size %d): %w",
			f.DataOffset, f.Size, ErrTruncated)
	}
	dataSize := uint64(0)
	if f.Size > f.DataOffset {
		dataSize = uint64(f.Size - f.DataOffset)
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if t.Offset%f.Alignment != 0 {
			return fmt.Errorf("tensor %q: data offset %d is not a multiple of the alignment %d: %w",
				t.Name, t.Offset, f.Alignment, ErrCorrupt)
		}
		if !t.Type.Known() {
			if t.Offset > dataSize {
				return fmt.Errorf("tensor %q: data offset %d (absolute %d) is past the end of the file (size %d): %w",
					t.Name, t.Offset, uint64(f.DataOffset)+t.Offset, f.Size, ErrTruncated)
			}
			continue
		}
		nb, err := t.NumBytes()
		if err != nil {
			return fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if t.Offset > dataSize || nb > dataSize-t.Offset {
			return fmt.Errorf("tensor %q: data [%d, %d) (absolute offset %d, %d bytes) extends past the end of the file (size %d): %w",
				t.Name, t.Offset, satAdd(t.Offset, nb), satAdd(uint64(f.DataOffset), t.Offset), nb, f.Size, ErrTruncated)
		}
		if nb > 0 {
			spans = append(spans, span{t.Offset, t.Offset + nb, i})
		}
	}
	sort.Slice(spans, func(a, b int) bool { return spans[a].start < spans[b].start })
	for k := 1; k < len(spans); k++ {
		p, c := spans[k-1], spans[k]
		if c.start < p.end {
			return fmt.Errorf("tensor %q data [%d, %d) overlaps tensor %q data [%d, %d): %w",
				f.Tensors[c.idx].Name, c.start, c.end, f.Tensors[p.idx].Name, p.start, p.end, ErrCorrupt)
		}
	}
	return nil
}

func satAdd(a, b uint64) uint64 {
	s, carry := bits.Add64(a, b, 0)
	if carry != 0 {
		return math.MaxUint64
	}
	return s
}

// Keys returns the metadata keys in file order.
func (f *File) Keys() []string { return append([]string{}, f.keys...) }

// Value returns the metadata value stored under key.
func (f *File) Value(key string) (Value, bool) {
	v, ok := f.kv[key]
	return v, ok
}

// String returns the string value of key. It reports false if the key is
// missing or not a string.
func (f *File) String(key string) (string, bool) { return f.kv[key].AsString() }

// Uint returns the value of key as a uint64. Any integer type is accepted
// as long as the value is not negative.
func (f *File) Uint(key string) (uint64, bool) { return f.kv[key].AsUint() }

// Int returns the value of key as an int64. Any integer type is accepted as
// long as the value fits.
func (f *File) Int(key string) (int64, bool) { return f.kv[key].AsInt() }

// Float returns the value of key as a float64. float32, float64 and integer
// values are accepted.
func (f *File) Float(key string) (float64, bool) { return f.kv[key].AsFloat() }

// Bool returns the boolean value of key.
func (f *File) Bool(key string) (bool, bool) { return f.kv[key].AsBool() }

// Strings returns a copy of the string array stored under key.
func (f *File) Strings(key string) ([]string, bool) { return f.kv[key].AsStrings() }

// Int32s returns a copy of the integer array stored under key, converted to
// int32 (e.g. tokenizer.ggml.token_type). It reports false if the key is
// missing, not an integer array, or holds a value that does not fit.
func (f *File) Int32s(key string) ([]int32, bool) { return f.kv[key].AsInt32s() }

// Float32s returns a copy of the numeric array stored under key, converted
// to float32 (e.g. tokenizer.ggml.scores).
func (f *File) Float32s(key string) ([]float32, bool) { return f.kv[key].AsFloat32s() }

// Architecture returns general.architecture, or "" if absent.
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// Tensor returns the descriptor of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorDims returns the dims (fastest varying first) of the named tensor.
func (f *File) TensorDims(name string) ([]uint64, bool) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, false
	}
	return t.Dims, true
}
