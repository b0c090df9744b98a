package gguf

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
)

// TensorInfo describes one tensor of a GGUF file.
type TensorInfo struct {
	// Name is the tensor name, e.g. "blk.0.attn_q.weight".
	Name string
	// Dims are the dimensions in ggml order: Dims[0] (ne[0]) is the
	// fastest-varying (innermost, row length) dimension.
	Dims []uint64
	// Type is the element type of the stored data.
	Type Type
	// Offset is the offset of the tensor data relative to
	// File.DataOffset.
	Offset uint64
}

// numElements returns the product of the dimensions and whether it fits in
// an int64.
func (t TensorInfo) numElements() (uint64, bool) {
	n := uint64(1)
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, false
		}
		n = lo
	}
	return n, true
}

// NumElements returns the number of elements (the product of Dims; 1 for a
// tensor with no dimensions). For descriptors whose product overflows,
// which Parse rejects, it returns math.MaxUint64.
func (t TensorInfo) NumElements() uint64 {
	n, ok := t.numElements()
	if !ok {
		return math.MaxUint64
	}
	return n
}

// Shape returns the dimensions in numpy / row-major order, i.e. Dims
// reversed. The data returned by File.ReadTensorF32 is laid out row-major
// in this shape.
func (t TensorInfo) Shape() []uint64 {
	s := make([]uint64, len(t.Dims))
	for i, d := range t.Dims {
		s[len(s)-1-i] = d
	}
	return s
}

// NumBytes returns the size of the tensor data in bytes. It fails if the
// type is unknown, the row length is not a multiple of the type's block
// size, or the size overflows.
func (t TensorInfo) NumBytes() (uint64, error) {
	tr, ok := traits[t.Type]
	if !ok {
		return 0, fmt.Errorf("type %s (%d) has unknown block size: %w", t.Type, uint32(t.Type), ErrUnsupportedType)
	}
	n, ok := t.numElements()
	if !ok {
		return 0, fmt.Errorf("dimensions %v overflow the element count: %w", t.Dims, ErrCorrupt)
	}
	if len(t.Dims) > 0 && t.Dims[0]%tr.blockSize != 0 {
		return 0, fmt.Errorf("row length %d is not a multiple of the %s block size %d: %w",
			t.Dims[0], t.Type, tr.blockSize, ErrCorrupt)
	}
	if len(t.Dims) == 0 && tr.blockSize != 1 {
		return 0, fmt.Errorf("scalar tensor cannot have block type %s: %w", t.Type, ErrCorrupt)
	}
	hi, lo := bits.Mul64(n/tr.blockSize, tr.typeSize)
	if hi != 0 || lo > math.MaxInt64 {
		return 0, fmt.Errorf("byte size of %d %s elements overflows: %w", n, t.Type, ErrCorrupt)
	}
	return lo, nil
}

// String formats the descriptor for display, e.g.
// `blk.0.attn_q.weight Q4_K [576 576] @1234`.
func (t TensorInfo) String() string {
	return fmt.Sprintf("%s %s %v @%d", t.Name, t.Type, t.Dims, t.Offset)
}

// TensorDataOffset returns the absolute file offset of the tensor's data.
func (f *File) TensorDataOffset(t *TensorInfo) int64 {
	return f.DataOffset + int64(t.Offset)
}

// ReadTensorRaw returns the raw bytes of a tensor's data exactly as stored.
func (f *File) ReadTensorRaw(t *TensorInfo) ([]byte, error) {
	if t == nil {
		return nil, errors.New("gguf: nil tensor")
	}
	b, err := f.readRaw(t)
	if err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	return b, nil
}

func (f *File) readRaw(t *TensorInfo) ([]byte, error) {
	nb, err := f.dataRange(t)
	if err != nil {
		return nil, err
	}
	off := f.DataOffset + int64(t.Offset)
	buf := make([]byte, nb)
	got, err := f.r.ReadAt(buf, off)
	if uint64(got) < nb {
		if err == nil || errors.Is(err, io.EOF) {
			err = ErrTruncated
		}
		return nil, fmt.Errorf("reading %d bytes at offset %d: got %d: %w", nb, off, got, err)
	}
	return buf, nil
}

// ReadTensorF32 reads a tensor and dequantizes it to float32. The result has
// NumElements() values in storage order: the element with ggml indices
// (i0, i1, i2, i3) is at i0 + ne0*(i1 + ne1*(i2 + ne2*i3)), which is
// row-major order for Shape(). Large tensors are read and dequantized in
// parallel.
func (f *File) ReadTensorF32(t *TensorInfo) ([]float32, error) {
	if t == nil {
		return nil, errors.New("gguf: nil tensor")
	}
	if !t.Type.CanDequantize() {
		return nil, unsupportedTensorError(t.Name, t.Type)
	}
	if _, err := f.dataRange(t); err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	out := make([]float32, t.NumElements())
	if err := f.readF32(t, out); err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	return out, nil
}

// ReadTensorF32Into is like ReadTensorF32 but writes into dst, which must
// have exactly NumElements() elements. It lets callers reuse buffers.
func (f *File) ReadTensorF32Into(t *TensorInfo, dst []float32) error {
	if t == nil {
		return errors.New("gguf: nil tensor")
	}
	if !t.Type.CanDequantize() {
		return unsupportedTensorError(t.Name, t.Type)
	}
	if _, err := f.dataRange(t); err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	if uint64(len(dst)) != t.NumElements() {
		return fmt.Errorf("gguf: tensor %q: destination has %d elements, tensor has %d", t.Name, len(dst), t.NumElements())
	}
	if err := f.readF32(t, dst); err != nil {
		return fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	return nil
}

// dataRange validates that t's data lies within the file and returns its
// size in bytes.
func (f *File) dataRange(t *TensorInfo) (uint64, error) {
	if f.closed {
		return 0, ErrClosed
	}
	nb, err := t.NumBytes()
	if err != nil {
		return 0, err
	}
	if nb == 0 {
		return 0, nil
	}
	start := uint64(f.DataOffset)
	if t.Offset > uint64(f.Size) || start > uint64(f.Size)-t.Offset || nb > uint64(f.Size)-start-t.Offset {
		return 0, fmt.Errorf("data at offset %d (+%d bytes) extends past the end of the file (size %d): %w",
			satAdd(start, t.Offset), nb, f.Size, ErrTruncated)
	}
	if nb > math.MaxInt {
		return 0, fmt.Errorf("%d bytes do not fit in memory: %w", nb, ErrCorrupt)
	}
	return nb, nil
}

// chunkPool recycles the per-worker read buffers of readF32.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkBytes); return &b }}

// chunkBytes is the amount of encoded data each worker reads at a time.
const chunkBytes = 256 << 10

// readF32 reads and dequantizes t into dst (len(dst) == NumElements(),
// range already validated). The tensor is split into chunks of whole blocks;
// workers read their chunk with ReadAt into a private buffer and
// dequantize it straight into dst, so reading and decoding both run in
// parallel and no tensor-sized byte buffer is needed.
func (f *File) readF32(t *TensorInfo, dst []float32) error {
	bs, ts := int64(t.Type.BlockSize()), int64(t.Type.TypeSize())
	nblocks := int64(len(dst)) / bs
	if nblocks == 0 {
		return nil
	}
	base := f.DataOffset + int64(t.Offset)
	perChunk := max(1, chunkBytes/ts)
	nchunks := (nblocks + perChunk - 1) / perChunk
	workers := int64(runtime.GOMAXPROCS(0))
	workers = min(workers, nchunks, max(1, int64(len(dst))/(parallelMinElems/4)))

	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var failed atomic.Bool
	work := func() {
		bp := chunkPool.Get().(*[]byte)
		defer chunkPool.Put(bp)
		need := int(min(perChunk, nblocks) * ts)
		if cap(*bp) < need {
			*bp = make([]byte, need)
		}
		buf := (*bp)[:need]
		for !failed.Load() {
			c := next.Add(1) - 1
			if c >= nchunks {
				return
			}
			lo := c * perChunk
			hi := min(lo+perChunk, nblocks)
			b := buf[:(hi-lo)*ts]
			off := base + lo*ts
			got, err := f.r.ReadAt(b, off)
			if got < len(b) {
				if err == nil || errors.Is(err, io.EOF) {
					err = ErrTruncated
				}
				errOnce.Do(func() {
					firstErr = fmt.Errorf("reading %d bytes at offset %d: got %d: %w", len(b), off, got, err)
				})
				failed.Store(true)
				return
			}
			dequantizers[t.Type](dst[lo*bs:hi*bs], b)
		}
	}
	if workers <= 1 {
		work()
		return firstErr
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work()
		}()
	}
	wg.Wait()
	return firstErr
}

func unsupportedTensorError(name string, typ Type) error {
	return fmt.Errorf("gguf: tensor %q has quantization type %s (%d), which lmood cannot dequantize (supported: %s): %w",
		name, typ, uint32(typ), supportedList(), ErrUnsupportedType)
}

// parallelMinElems is the tensor size below which dequantization stays on
// the calling goroutine.
const parallelMinElems = 1 << 16

// dequantizeParallel dequantizes raw into dst, splitting whole blocks
// across goroutines for large inputs. The caller has validated the type and
// sizes (see checkDequant).
func dequantizeParallel(dst []float32, typ Type, raw []byte) {
	deq := dequantizers[typ]
	// Give every worker at least parallelMinElems/4 elements.
	workers := min(runtime.GOMAXPROCS(0), len(dst)/(parallelMinElems/4))
	if len(dst) < parallelMinElems || workers < 2 {
		deq(dst, raw)
		return
	}
	bs, ts := int(typ.BlockSize()), int(typ.TypeSize())
	nblocks := len(dst) / bs
	per := (nblocks + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < nblocks; lo += per {
		hi := min(lo+per, nblocks)
		wg.Add(1)
		go func() {
			defer wg.Done()
			deq(dst[lo*bs:hi*bs], raw[lo*ts:hi*ts])
		}()
	}
	wg.Wait()
}
