package store

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lmood/lmood/internal/arch"
	_ "github.com/lmood/lmood/internal/arch/all" // every supported family registers itself
	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/tokenize"
)

// weightAlign aligns each tensor in weights.bin to a page, so onnxruntime
// can map external data directly.
const weightAlign = 4096

// ConvertProgress is told about each tensor written; nil is silent.
type ConvertProgress interface {
	Start(name string, total int64)
	Add(n int)
	Finish()
}

// Import converts the GGUF file at path into the model called name,
// replacing any existing model of that name. src describes where the file
// came from (its checksum and size are filled in here). The conversion is
// written to a new version directory and the model's link moved to it, so
// an interrupted import never leaves a model that looks complete, and a
// reader never finds the model missing.
func (s *Store) Import(path, name string, src Source, p ConvertProgress) (*Manifest, error) {
	return s.ImportContext(context.Background(), path, name, src, p)
}

// ImportContext is Import that stops, leaving nothing behind, when ctx is
// cancelled (checked while hashing and between tensors).
func (s *Store) ImportContext(ctx context.Context, path, name string, src Source, p ConvertProgress) (*Manifest, error) {
	m, _, err := s.ImportWith(ctx, path, name, src, ImportOptions{Force: true, Progress: p})
	return m, err
}

// ImportOptions tunes ImportWith.
type ImportOptions struct {
	// Force replaces a model of that name converted from another source,
	// and converts again even if the same GGUF was converted already.
	Force bool
	// Progress is told about each tensor written; nil is silent.
	Progress ConvertProgress
	// Precision is PrecisionAuto, PrecisionQuant, PrecisionQuant8, PrecisionInt8, PrecisionF32 or "" (DefaultPrecision).
	Precision string
}

// ImportWith converts the GGUF file at path into the model called name.
//
// If src.SHA256 is set, the file must have that digest (ErrChecksum
// otherwise, and nothing in the store changes). Without opts.Force, a
// usable conversion of the same file under that name is kept (converted
// is false), and a model of that name converted from a different GGUF of
// another source (see CheckReplace) is not replaced (ErrExists).
//
// Imports of one name are serialized by a lock: a second import waits for
// the first, then finds its result. ctx cancels the hashing, the wait and
// the conversion.
func (s *Store) ImportWith(ctx context.Context, path, name string, src Source, opts ImportOptions) (m *Manifest, converted bool, err error) {
	start := time.Now()
	if err := CheckName(name); err != nil {
		return nil, false, err
	}
	precision, err := CheckPrecision(opts.Precision)
	if err != nil {
		return nil, false, err
	}
	if err := s.check(); err != nil {
		return nil, false, err
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs // the manifest records where the file is, wherever it is used from
	}
	fi, err := fetch.CheckRegular(path)
	if err != nil {
		return nil, false, fmt.Errorf("store: import %s: %w", path, err)
	}
	sum, err := fetch.FileSHA256Context(ctx, path)
	if err != nil {
		return nil, false, fmt.Errorf("store: read %s: %w", path, err)
	}
	if src.SHA256 != "" && src.SHA256 != sum {
		return nil, false, fmt.Errorf("store: import %s: %w: its SHA-256 is %s, not the expected %s; nothing was changed", path, fetch.ErrChecksum, sum, src.SHA256)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("store: import %s: %w", path, err)
	}
	defer f.Close()

	cfg, vocab, err := checkGGUF(f)
	if err != nil {
		return nil, false, fmt.Errorf("store: import %s: %w", path, err)
	}
	precision = ResolvePrecision(precision, cfg.Params())
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root, locksDir), 0o755); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	nameLock, err := lockFile(ctx, s.nameLock(name))
	if err != nil {
		return nil, false, fmt.Errorf("store: wait for another import of %q: %w", name, err)
	}
	defer nameLock.Close()
	src.GGUF, src.SHA256 = path, sum
	src.Size, src.ModTime = fi.Size(), fi.ModTime().UTC()
	if !opts.Force {
		old, err := s.CheckReplace(name, src)
		if err != nil {
			return nil, false, err
		}
		if old != nil && old.Precision == precision {
			return old, false, nil
		}
	}
	s.Prune() // what killed imports left; never anything in use

	tmp, err := os.MkdirTemp(s.Root, "."+name+versionInfix)
	if err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	dirLock := tryLock(tmp, unix.LOCK_EX) // a sweep leaves it alone while held
	if dirLock == nil {
		os.RemoveAll(tmp)
		return nil, false, fmt.Errorf("store: lock %s", tmp)
	}
	defer dirLock.Close()
	installed := false
	defer func() {
		if !installed {
			os.RemoveAll(tmp)
		}
	}()

	src.TensorTypes = map[string]int{}
	for _, t := range f.Tensors {
		src.TensorTypes[t.Type.String()]++
	}
	src.Quantization = quantizationName(f)
	src.Name, _ = f.String("general.name")

	m = &Manifest{
		Converter: Converter, ConverterVersion: ConverterVersion, Name: name,
		Arch: cfg.Arch, Config: cfg, Params: cfg.Params(), Source: src,
		Weights: "weights.bin", Tokenizer: "tokenizer.json", Tensors: map[string]Tensor{},
		Precision: precision,
	}
	if err := writeWeights(ctx, f, cfg.Config, filepath.Join(tmp, m.Weights), m, opts.Progress); err != nil {
		return nil, false, fmt.Errorf("store: import %s: %w", path, err)
	}
	if err := writeJSON(filepath.Join(tmp, m.Tokenizer), vocab); err != nil {
		return nil, false, err
	}
	m.Created = time.Now().UTC()
	m.ConvertSeconds = time.Since(start).Seconds()
	if err := writeJSON(filepath.Join(tmp, "manifest.json"), m); err != nil {
		return nil, false, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, false, fmt.Errorf("store: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("store: import %s: conversion stopped: %w", path, err)
	}
	prev, err := s.install(name, filepath.Base(tmp))
	if err != nil {
		return nil, false, err
	}
	installed = true
	dirLock.Close()
	if prev != "" {
		removeIfUnused(prev) // else a leftover, once its readers are done
	}
	return m, true, nil
}

// CheckReplace decides whether an import of the GGUF described by src
// (its SHA256, Kind and Ref set) may go to name. It returns the existing
// manifest when a usable conversion of the same GGUF is there already,
// nil when the import may go ahead (no model, an unusable one, or one from
// the same source, e.g. an updated file at the same path), and an error
// wrapping ErrExists when name holds a model converted from a different
// GGUF of another source: replacing it takes --force.
func (s *Store) CheckReplace(name string, src Source) (*Manifest, error) {
	m, err := s.ReadManifest(name)
	switch {
	case m == nil:
		return nil, nil
	case m.Source.SHA256 == src.SHA256:
		if err == nil {
			if model, err := s.Open(name); err == nil { // weights present and consistent
				model.Close()
				return m, nil
			}
		}
		return nil, nil
	case m.Source.Kind == src.Kind && m.Source.Ref == src.Ref:
		return nil, nil
	}
	from := m.Source.Kind + ":" + m.Source.Ref
	if m.Source.Kind == "" {
		from = "an unknown source"
	}
	return nil, fmt.Errorf("store: %w: a model named %q already exists, converted from %s; choose another --name, or --force to replace it", ErrExists, name, from)
}

// checkGGUF reads a GGUF file's configuration and tokenizer and checks
// them against its tensors and against sanity ranges, before anything is
// converted.
func checkGGUF(f *gguf.File) (arch.Spec, tokenize.Vocab, error) {
	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return cfg, tokenize.Vocab{}, err
	}
	vocab, err := VocabFromGGUF(f)
	if err != nil {
		return cfg, vocab, err
	}
	if err := vocab.Validate(cfg.Vocab); err != nil {
		return cfg, vocab, err
	}
	if _, err := tokenize.New(vocab); err != nil {
		return cfg, vocab, fmt.Errorf("tokenizer: %w", err)
	}
	for _, n := range cfg.Config.TensorNames() {
		t, ok := f.Tensor(n)
		if !ok {
			return cfg, vocab, fmt.Errorf("tensor %s is missing from the GGUF", n)
		}
		if err := cfg.Config.CheckTensorShape(n, t.Dims); err != nil {
			return cfg, vocab, err
		}
	}
	return cfg, vocab, nil
}

// ConfigFromGGUF reads the architecture of a GGUF file through the family
// registered for its general.architecture (see package arch), checking it
// before anything is converted. An architecture no family handles is an
// error wrapping arch.ErrUnsupported.
func ConfigFromGGUF(f *gguf.File) (arch.Spec, error) {
	cfg, err := arch.FromGGUF(f)
	if err != nil {
		return cfg, err
	}
	if cfg.Layers > len(f.Tensors) { // each block has several tensors
		return cfg, fmt.Errorf("GGUF claims %d blocks but holds only %d tensors: the file is corrupt", cfg.Layers, len(f.Tensors))
	}
	return cfg, nil
}

// VocabFromGGUF collects the tokenizer metadata of a GGUF file (see
// tokenize.FromGGUF).
func VocabFromGGUF(f *gguf.File) (tokenize.Vocab, error) { return tokenize.FromGGUF(f) }

// fileTypes names llama.cpp's general.file_type values (its llama_ftype
// enum): the mix a quantizer chose, e.g. Q4_K_M, which no single tensor
// type says (a Q4_K_M file holds Q4_K, Q6_K and often Q5_0/Q8_0 tensors).
var fileTypes = map[uint64]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
	10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
	16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S",
	22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M",
	28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0",
	37: "TQ2_0", 38: "MXFP4_MOE",
}

// quantizationName is how a GGUF was quantized, for people: the name of
// its general.file_type when it has a known one, else its dominant tensor
// type.
func quantizationName(f *gguf.File) string {
	if v, ok := f.Uint("general.file_type"); ok {
		if name, ok := fileTypes[v]; ok {
			return name
		}
	}
	return dominantType(f)
}

// dominantType names the tensor type holding most weights among matrices.
func dominantType(f *gguf.File) string {
	count := map[string]uint64{}
	for _, t := range f.Tensors {
		if len(t.Dims) >= 2 {
			count[t.Type.String()] += t.NumElements()
		}
	}
	best, n := "", uint64(0)
	for k, c := range count {
		if c > n || (c == n && k < best) {
			best, n = k, c
		}
	}
	return best
}

// weightWriter appends page-aligned tensors to weights.bin, recording
// each in the manifest's index.
type weightWriter struct {
	w     *bufio.Writer
	off   int64
	buf   []byte
	index map[string]Tensor
}

func (ww *weightWriter) write(name string, t Tensor, b []byte) error {
	if pad := (weightAlign - ww.off%weightAlign) % weightAlign; pad > 0 {
		if _, err := ww.w.Write(make([]byte, pad)); err != nil {
			return err
		}
		ww.off += pad
	}
	sum := sha256.Sum256(b)
	t.Offset, t.SHA256 = ww.off, hex.EncodeToString(sum[:])
	ww.index[name] = t
	if _, err := ww.w.Write(b); err != nil {
		return err
	}
	ww.off += int64(len(b))
	return nil
}

func (ww *weightWriter) floats(name string, t Tensor, v []float32) error {
	if cap(ww.buf) < 4*len(v) {
		ww.buf = make([]byte, 4*len(v))
	}
	b := ww.buf[:4*len(v)]
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return ww.write(name, t, b)
}

// quantized converts a linear weight to MatMulNBits layout, or returns
// nil (and a note when the type has no mapping) to keep it float32.
func quantized(f *gguf.File, t *gguf.TensorInfo, ql arch.QuantLinear, name, precision string) (*gguf.NBits, string, error) {
	rows, ok := ql.LinearRows(name, t.Dims)
	if !ok {
		return nil, "", nil
	}
	if !t.Type.CanNBits() {
		return nil, fmt.Sprintf("linear weights of type %s have no block-quantized mapping: kept float32", t.Type), nil
	}
	raw, err := f.ReadTensorRaw(t)
	if err != nil {
		return nil, "", err
	}
	rowsN, cols := int(t.Dims[1]), int(t.Dims[0])
	var q *gguf.NBits
	if precision == PrecisionQuant8 && !t.Type.NBitsExact() && !t.Type.NBitsRequantized() && cols%32 == 0 {
		var v []float32
		if v, err = gguf.Dequantize(t.Type, raw, rowsN*cols); err != nil {
			return nil, "", fmt.Errorf("tensor %s: %w", name, err)
		}
		q, err = gguf.Requantize8(v, rowsN, cols, 32)
	} else {
		q, err = gguf.ToNBits(t.Type, raw, rowsN, cols)
	}
	if err != nil {
		return nil, fmt.Sprintf("%s (%s): %v: kept float32", name, t.Type, err), nil
	}
	if rows != nil {
		if q, err = q.PermuteRows(rows); err != nil {
			return nil, "", fmt.Errorf("tensor %s: %w", name, err)
		}
	}
	return q, "", nil
}

// nbits writes a block-quantized weight: its codes, and its scales and
// offsets as the GGUF type stores them (float32 scales for a re-quantized
// weight).
func (ww *weightWriter) nbits(name string, from gguf.Type, q *gguf.NBits) error {
	nb := int64(q.Blocks())
	f := q.Factors
	info := &NBits{K: q.Cols, N: q.Rows, Bits: q.Bits, BlockSize: q.BlockSize, Offsets: f != nil && f.Offset != nil,
		From: from.String(), Mapping: mapping(from, q)}
	if err := ww.write(name, Tensor{Dims: []int64{int64(q.Rows), nb, int64(q.BlobSize())}, Type: "uint8", NBits: info}, q.Codes); err != nil {
		return err
	}
	if f == nil {
		return ww.floats(name+".scales", Tensor{Dims: []int64{int64(q.Rows), nb}}, q.Scales)
	}
	g := int64(f.Group)
	factored := func(aux string, half []uint16, sub []int8) error {
		b := make([]byte, 2*len(half))
		for i, h := range half {
			binary.LittleEndian.PutUint16(b[2*i:], h)
		}
		if err := ww.write(name+aux, Tensor{Dims: []int64{int64(q.Rows), nb / g, 1}, Type: "float16"}, b); err != nil {
			return err
		}
		if sub == nil {
			return nil
		}
		b = make([]byte, len(sub))
		for i, v := range sub {
			b[i] = byte(v)
		}
		return ww.write(name+aux+".sub", Tensor{Dims: []int64{int64(q.Rows), nb / g, g}, Type: "int8"}, b)
	}
	if err := factored(".scales", f.Scale, f.ScaleSub); err != nil {
		return err
	}
	if f.Offset == nil {
		return nil
	}
	return factored(".offsets", f.Offset, f.OffsetSub)
}

// int8Linear writes a linear weight (per ql) as int8 codes per output
// channel: its float32 values, prepared by the family as for a float32
// store ([in, out]), quantized column by column. It reports false, writing
// nothing, for a tensor that is not a linear weight.
func (ww *weightWriter) int8Linear(f *gguf.File, t *gguf.TensorInfo, cfg arch.Config, ql arch.QuantLinear, name string) (bool, error) {
	if _, ok := ql.LinearRows(name, t.Dims); !ok {
		return false, nil
	}
	data, err := f.ReadTensorF32(t)
	if err != nil {
		return false, err
	}
	prepared, dims, err := cfg.PrepareWeight(name, t.Dims, data)
	if err != nil {
		return false, err
	}
	return true, ww.int8(name, t.Type, arch.Prepared{Data: prepared, Dims: dims})
}

// int8 writes a prepared linear weight ([in, out]) as int8 codes per
// output channel and their scales (name+".scales").
func (ww *weightWriter) int8(name string, from gguf.Type, w arch.Prepared) error {
	if len(w.Dims) != 2 {
		return fmt.Errorf("tensor %s: a linear weight prepared as %v, not [in, out]", name, w.Dims)
	}
	q, err := gguf.QuantizeColumns8(w.Data, int(w.Dims[0]), int(w.Dims[1]))
	if err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	codes := make([]byte, len(q.Codes))
	for i, c := range q.Codes {
		codes[i] = byte(c)
	}
	info := &Int8{K: q.In, N: q.Out, From: from.String()}
	if err := ww.write(name, Tensor{Dims: w.Dims, Type: "int8", Int8: info}, codes); err != nil {
		return err
	}
	return ww.floats(name+".scales", Tensor{Dims: []int64{w.Dims[1]}}, q.Scales)
}

// balancedBlock writes the tensors names (one block's, in file order) after
// the family's exact rescalings (arch.Balanced): all of them are read and
// prepared first, the folds applied, then the linear weights (per ql; none
// if nil) quantized to int8 per output column and the rest kept float32,
// with the factors a fold records (for the "norm" site) after them.
func (ww *weightWriter) balancedBlock(f *gguf.File, cfg arch.Config, ql arch.QuantLinear, folds []arch.Fold, names []string) (applied int, err error) {
	w := make(map[string]arch.Prepared, len(names))
	infos := make(map[string]*gguf.TensorInfo, len(names))
	for _, name := range names {
		t, ok := f.Tensor(name)
		if !ok {
			return 0, fmt.Errorf("tensor %s is missing from the GGUF", name)
		}
		data, err := f.ReadTensorF32(t)
		if err != nil {
			return 0, err
		}
		prepared, dims, err := cfg.PrepareWeight(name, t.Dims, data)
		if err != nil {
			return 0, err
		}
		w[name], infos[name] = arch.Prepared{Data: prepared, Dims: dims}, t
	}
	type record struct {
		name    string
		factors []float32
	}
	var records []record
	for _, fold := range folds {
		factors, err := fold.Balance(w, int8RoundTrip)
		if err != nil {
			return applied, fmt.Errorf("balance %s: %w", names[0], err)
		}
		if factors == nil {
			continue
		}
		applied++
		if fold.Record != "" {
			records = append(records, record{fold.Record, factors})
		}
	}
	for _, name := range names {
		t := infos[name]
		if ql != nil {
			if _, linear := ql.LinearRows(name, t.Dims); linear {
				if err := ww.int8(name, t.Type, w[name]); err != nil {
					return applied, err
				}
				continue
			}
		}
		if err := ww.floats(name, Tensor{Dims: w[name].Dims}, w[name].Data); err != nil {
			return applied, err
		}
	}
	for _, r := range records {
		if err := ww.floats(r.name, Tensor{Dims: []int64{int64(len(r.factors))}}, r.factors); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// int8RoundTrip is a prepared linear weight as an int8 store holds it:
// quantized per output column, expanded back.
func int8RoundTrip(w arch.Prepared) ([]float32, error) {
	if len(w.Dims) != 2 {
		return nil, fmt.Errorf("a linear weight prepared as %v, not [in, out]", w.Dims)
	}
	q, err := gguf.QuantizeColumns8(w.Data, int(w.Dims[0]), int(w.Dims[1]))
	if err != nil {
		return nil, err
	}
	back := make([]float32, len(w.Data))
	for r := 0; r < q.In; r++ {
		row := back[r*q.Out : (r+1)*q.Out]
		for n, c := range q.Codes[r*q.Out : (r+1)*q.Out] {
			row[n] = float32(c) * q.Scales[n]
		}
	}
	return back, nil
}

// compactEmbedding returns the token embedding in MatMulNBits layout
// ([vocab, dim], rows as in the GGUF) when its GGUF type maps onto it
// exactly or up to float32 rounding, and nil to keep it float32 (types that
// would be re-quantized, or shapes the layout does not fit).
func compactEmbedding(f *gguf.File, t *gguf.TensorInfo) (*gguf.NBits, error) {
	if len(t.Dims) != 2 || !t.Type.CanNBits() || t.Type.NBitsRequantized() {
		return nil, nil
	}
	raw, err := f.ReadTensorRaw(t)
	if err != nil {
		return nil, err
	}
	q, err := gguf.ToNBits(t.Type, raw, int(t.Dims[1]), int(t.Dims[0]))
	if err != nil {
		return nil, nil // a layout that does not fit keeps float32
	}
	return q, nil
}

func mapping(t gguf.Type, q *gguf.NBits) string {
	switch {
	case t.NBitsExact():
		return "exact"
	case t.NBitsRequantized() || q.Factors == nil:
		return "requantized"
	}
	return "rounding"
}

// balanceOff and balanceFloat32 are for tests: the first converts int8
// stores without the families' rescalings (arch.Balanced), to measure what
// they do; the second applies them to float32 stores too, where they must
// change nothing but rounding.
var balanceOff, balanceFloat32 bool

// blockOf returns i for a tensor name of block i ("blk.i.…").
func blockOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(num)
	return i, err == nil
}

func writeWeights(ctx context.Context, f *gguf.File, cfg arch.Config, path string, m *Manifest, p ConvertProgress) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	ww := &weightWriter{w: bufio.NewWriterSize(out, 1<<20), index: m.Tensors}
	names := cfg.TensorNames()
	if p != nil {
		p.Start("converting", int64(len(names)))
		defer p.Finish()
	}
	ql, _ := cfg.(arch.QuantLinear)
	if m.Precision == PrecisionInt8 && !Int8Dot {
		m.Notes = append(m.Notes, "this CPU has no 8-bit dot-product instructions: onnxruntime's integer GEMM is slower here and its x86 kernel may saturate 16-bit sums with full-range int8 weights; f32 is the safer choice")
	}
	if m.Precision == PrecisionF32 {
		ql = nil
	} else if ql == nil {
		m.Notes = append(m.Notes, fmt.Sprintf("architecture %s reads float32 weights only: every weight kept float32", m.Arch))
	}
	// An int8 store's blocks are balanced before their weights are
	// quantized (see arch.Balanced).
	balanced, _ := cfg.(arch.Balanced)
	if !(ql != nil && m.Precision == PrecisionInt8 && !balanceOff || balanceFloat32 && m.Precision == PrecisionF32) {
		balanced = nil
	}
	for k := 0; k < len(names); k++ {
		name := names[k]
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("conversion stopped: %w", err)
		}
		if block, ok := blockOf(name); ok && balanced != nil {
			end := k + 1
			for end < len(names) {
				if b, ok := blockOf(names[end]); !ok || b != block {
					break
				}
				end++
			}
			folds := balanced.Folds(block)
			applied, err := ww.balancedBlock(f, cfg, ql, folds, names[k:end])
			if err != nil {
				return err
			}
			m.Balance.Applied += applied
			m.Balance.Folds += len(folds)
			if p != nil {
				p.Add(end - k)
			}
			k = end - 1
			continue
		}
		t, ok := f.Tensor(name)
		if !ok {
			return fmt.Errorf("tensor %s is missing from the GGUF", name)
		}
		if name == arch.TokenEmbd && ql != nil {
			// The embedding is gathered row by row (and is the tied head's
			// [N, K] MatMulNBits weight): kept in its GGUF blocks when they
			// map exactly (or up to float32 rounding), it takes a quarter to
			// a seventh of float32's room (a 128k × 4096 vocabulary: 0.4
			// instead of 2.1 GB).
			q, err := compactEmbedding(f, t)
			if err != nil {
				return err
			}
			if q != nil {
				if err := ww.nbits(name, t.Type, q); err != nil {
					return err
				}
				if p != nil {
					p.Add(1)
				}
				continue
			}
		}
		if ql != nil && m.Precision == PrecisionInt8 {
			done, err := ww.int8Linear(f, t, cfg, ql, name)
			if err != nil {
				return err
			}
			if done {
				if p != nil {
					p.Add(1)
				}
				continue
			}
		} else if ql != nil {
			q, note, err := quantized(f, t, ql, name, m.Precision)
			if err != nil {
				return err
			}
			if note != "" && !slices.Contains(m.Notes, note) {
				m.Notes = append(m.Notes, note)
			}
			if q != nil {
				if err := ww.nbits(name, t.Type, q); err != nil {
					return err
				}
				if p != nil {
					p.Add(1)
				}
				continue
			}
		}
		data, err := f.ReadTensorF32(t)
		if err != nil {
			return err
		}
		prepared, dims, err := cfg.PrepareWeight(name, t.Dims, data)
		if err != nil {
			return err
		}
		if err := ww.floats(name, Tensor{Dims: dims}, prepared); err != nil {
			return err
		}
		if p != nil {
			p.Add(1)
		}
	}
	if err := ww.w.Flush(); err != nil {
		return err
	}
	return out.Sync()
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
