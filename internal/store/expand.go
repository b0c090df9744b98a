package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"sync"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/runtime"
)

// A block-quantized weight whose scales (and offsets) are stored factored,
// as the GGUF type stores them (see NBits), reaches onnxruntime's
// MatMulNBits as float32 scales and zero points, one per block. Those are
// computed when a session opens, by the converter's own rule
// (gguf.ScaleZero), into a scratch file in memory that the graph reads as
// external data, expandedFile, beside weights.bin; onnxruntime maps it
// like weights.bin, and the file is removed once it has. (Computing them
// in the graph instead, from constants, made onnxruntime's constant
// folding take 8.7 s to open the middle graph of an 8B model, against
// 1.4 s, and left 4.7 GB of heap after opening, against 0.8 GB.)
const expandedFile = "expanded-scales.bin"

// expandedLayout places each factored weight's float32 scales and zero
// points in expandedFile: page-aligned offsets, in name order, for every
// such weight of the model (a session's file holds only those its graph
// reads; the rest stay holes).
type expandedLayout struct {
	entries map[string]expandedEntry
	size    int64
}

type expandedEntry struct {
	rows, blocks int
	scales, zero int64 // offsets; zero is -1 without offsets
}

// bytes is the size of the entry's scales, one float32 per block, and of
// its zero points if it has them.
func (e expandedEntry) bytes() int64 {
	n := 4 * int64(e.rows) * int64(e.blocks)
	if e.zero >= 0 {
		n *= 2
	}
	return n
}

// newExpandedLayout lays out the factored weights of m's manifest; nil
// when it has none.
func newExpandedLayout(m *Manifest) *expandedLayout {
	var names []string
	for name, t := range m.Tensors {
		if t.NBits != nil && m.Tensors[name+".scales"].Type == "float16" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	l := &expandedLayout{entries: map[string]expandedEntry{}}
	put := func(n int64) int64 {
		off := l.size
		l.size += (n + weightAlign - 1) / weightAlign * weightAlign
		return off
	}
	for _, name := range names {
		q := m.Tensors[name].NBits
		e := expandedEntry{rows: q.N, blocks: q.K / q.BlockSize, zero: -1}
		n := 4 * int64(e.rows) * int64(e.blocks)
		e.scales = put(n)
		if q.Offsets {
			e.zero = put(n)
		}
		l.entries[name] = e
	}
	return l
}

// entry returns the place of the factored weight name (false: it is not
// one, or l is nil).
func (l *expandedLayout) entry(name string) (expandedEntry, bool) {
	if l == nil {
		return expandedEntry{}, false
	}
	e, ok := l.entries[name]
	return e, ok
}

// expandedScales returns the float32 MatMulNBits scales and zero points
// (nil without offsets) of the factored weight name, [rows, blocks].
func (m *Model) expandedScales(name string) (scales, zero []float32, err error) {
	q := m.Manifest.Tensors[name].NBits
	return m.scalesZeros(name, q, 0, q.N)
}

// scalesZeros returns rows [row0, row0+rows) of the MatMulNBits scales and
// zero points (nil without offsets) of the block-quantized weight name
// (described by q), computed from what the store keeps by the converter's
// rule (gguf.ScaleZero).
func (m *Model) scalesZeros(name string, q *NBits, row0, rows int) (scales, zero []float32, err error) {
	scales = make([]float32, rows*q.K/q.BlockSize)
	if err := m.factoredRows(name+".scales", row0, rows, scales); err != nil {
		return nil, nil, err
	}
	if !q.Offsets {
		return scales, nil, nil
	}
	zero = make([]float32, len(scales))
	if err := m.factoredRows(name+".offsets", row0, rows, zero); err != nil {
		return nil, nil, err
	}
	for b, o := range zero {
		scales[b], zero[b] = gguf.ScaleZero(scales[b], o)
	}
	return scales, zero, nil
}

// factoredRows reads rows [row0, row0+rows) of the scales or offsets
// called name (see NBits) into v, one value per block: float32 as stored,
// or a float16 factor times the block's integer (gguf.Factors).
func (m *Model) factoredRows(name string, row0, rows int, v []float32) error {
	t := m.Manifest.Tensors[name]
	nb := len(v) / rows
	if t.Type == "" {
		b := make([]byte, 4*len(v))
		if _, err := m.weights.ReadAt(b, t.Offset+int64(row0)*int64(4*nb)); err != nil {
			return err
		}
		for j := range v {
			v[j] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:]))
		}
		return nil
	}
	ng := int(t.Dims[1])
	g := nb / ng
	h := make([]byte, 2*rows*ng)
	if _, err := m.weights.ReadAt(h, t.Offset+int64(row0)*int64(2*ng)); err != nil {
		return err
	}
	for j := range v {
		v[j] = gguf.Half(binary.LittleEndian.Uint16(h[2*(j/g):]))
	}
	sub, ok := m.Manifest.Tensors[name+".sub"]
	if !ok {
		return nil
	}
	b := make([]byte, len(v))
	if _, err := m.weights.ReadAt(b, sub.Offset+int64(row0)*int64(nb)); err != nil {
		return err
	}
	for j := range v {
		v[j] *= float32(int8(b[j]))
	}
	return nil
}

// graphFactored lists the factored weights the graph for opt reads.
func (m *Model) graphFactored(opt arch.GraphOptions) ([]string, error) {
	rec := &weightCounter{m: m, seen: map[string]bool{}}
	if _, err := m.Manifest.Config.Build(rec, opt); err != nil {
		return nil, fmt.Errorf("store: graph of %s: %w", m.Manifest.Name, err)
	}
	var names []string
	for name := range rec.seen {
		if _, ok := m.expanded.entry(name); ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// newSession opens the graph at path; for a graph that reads factored
// weights, with their expanded scales (expandedFile) written for it
// first. The graph is opened through a scratch directory (in memory when
// /dev/shm has room) holding that file and links to the graph and
// weights.bin, removed once onnxruntime has mapped what it reads.
func (m *Model) newSession(opt arch.GraphOptions, path, input string, outs []runtime.Output, so runtime.SessionOptions) (*runtime.Session, error) {
	var names []string
	if m.expanded != nil {
		var err error
		if names, err = m.graphFactored(opt); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return runtime.NewSession(path, input, m.Config().Dim, outs, so)
	}
	var need int64
	for _, name := range names {
		need += m.expanded.entries[name].bytes()
	}
	// onnxruntime reads external data only from the graph's directory
	// (as named, or after resolving links): the expanded scales are a file
	// of the scratch directory, the graph and weights.bin links into the
	// model's directory.
	dir, err := scratchDir(need)
	if err != nil {
		return nil, fmt.Errorf("store: scratch directory for expanded scales: %w", err)
	}
	defer os.RemoveAll(dir)
	f, err := os.Create(filepath.Join(dir, expandedFile))
	if err != nil {
		return nil, fmt.Errorf("store: scratch file for expanded scales: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(m.expanded.size); err != nil {
		return nil, fmt.Errorf("store: scratch file for expanded scales: %w", err)
	}
	if err := m.writeExpanded(f, names); err != nil {
		return nil, err
	}
	for _, l := range [][2]string{{path, "graph.onnx"}, {filepath.Join(m.Dir, m.Manifest.Weights), m.Manifest.Weights}} {
		abs, err := filepath.Abs(l[0])
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		if err := os.Symlink(abs, filepath.Join(dir, l[1])); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return runtime.NewSession(filepath.Join(dir, "graph.onnx"), input, m.Config().Dim, outs, so)
}

// writeExpanded writes the expanded scales of the named weights into f,
// one weight at a time on each core.
func (m *Model) writeExpanded(f *os.File, names []string) error {
	work := make(chan string)
	errs := make(chan error, len(names))
	var wg sync.WaitGroup
	for range min(goruntime.GOMAXPROCS(0), len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				errs <- m.writeExpandedOne(f, name)
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *Model) writeExpandedOne(f *os.File, name string) error {
	scales, zero, err := m.expandedScales(name)
	if err != nil {
		return fmt.Errorf("store: read scales of %s: %w; run `lmood verify %s`", name, err, m.Manifest.Name)
	}
	e := m.expanded.entries[name]
	if err := writeFloats(f, e.scales, scales); err != nil {
		return fmt.Errorf("store: write expanded scales: %w", err)
	}
	if zero != nil {
		if err := writeFloats(f, e.zero, zero); err != nil {
			return fmt.Errorf("store: write expanded scales: %w", err)
		}
	}
	return nil
}

// writeFloats writes v at off, little-endian, through a small buffer.
func writeFloats(f *os.File, off int64, v []float32) error {
	var b [1 << 16]byte
	for len(v) > 0 {
		n := min(len(v), len(b)/4)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		if _, err := f.WriteAt(b[:4*n], off); err != nil {
			return err
		}
		off += int64(4 * n)
		v = v[n:]
	}
	return nil
}
