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
		if old != nil {
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
	src.Quantization = dominantType(f)
	src.Name, _ = f.String("general.name")

	m = &Manifest{
		Converter: Converter, ConverterVersion: ConverterVersion, Name: name,
		Arch: cfg.Arch, Config: cfg, Params: cfg.Params(), Source: src,
		Weights: "weights.bin", Tokenizer: "tokenizer.json", Tensors: map[string]Tensor{},
	}
	if err := writeWeights(ctx, f, cfg.Config, filepath.Join(tmp, m.Weights), m.Tensors, opts.Progress); err != nil {
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

func writeWeights(ctx context.Context, f *gguf.File, cfg arch.Config, path string, index map[string]Tensor, p ConvertProgress) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	w := bufio.NewWriterSize(out, 1<<20)
	names := cfg.TensorNames()
	if p != nil {
		p.Start("converting", int64(len(names)))
		defer p.Finish()
	}
	var off int64
	buf := make([]byte, 0)
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("conversion stopped: %w", err)
		}
		t, ok := f.Tensor(name)
		if !ok {
			return fmt.Errorf("tensor %s is missing from the GGUF", name)
		}
		data, err := f.ReadTensorF32(t)
		if err != nil {
			return err
		}
		prepared, dims, err := cfg.PrepareWeight(name, t.Dims, data)
		if err != nil {
			return err
		}
		if pad := (weightAlign - off%weightAlign) % weightAlign; pad > 0 {
			if _, err := w.Write(make([]byte, pad)); err != nil {
				return err
			}
			off += pad
		}
		if cap(buf) < 4*len(prepared) {
			buf = make([]byte, 4*len(prepared))
		}
		b := buf[:4*len(prepared)]
		for i, v := range prepared {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		sum := sha256.Sum256(b)
		index[name] = Tensor{Offset: off, Dims: dims, SHA256: hex.EncodeToString(sum[:])}
		if _, err := w.Write(b); err != nil {
			return err
		}
		off += int64(len(b))
		if p != nil {
			p.Add(1)
		}
	}
	if err := w.Flush(); err != nil {
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
