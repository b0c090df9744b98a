package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lmood/lmood/internal/arch/llama"
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
// written to a temporary directory and renamed into place, so an
// interrupted import never leaves a model that looks complete.
func (s *Store) Import(path, name string, src Source, p ConvertProgress) (*Manifest, error) {
	return s.ImportContext(context.Background(), path, name, src, p)
}

// ImportContext is Import that stops, leaving nothing behind, when ctx is
// cancelled (checked between tensors).
func (s *Store) ImportContext(ctx context.Context, path, name string, src Source, p ConvertProgress) (*Manifest, error) {
	start := time.Now()
	if err := CheckName(name); err != nil {
		return nil, err
	}
	sum, err := fetch.FileSHA256(path)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: import %s: %w", path, err)
	}
	defer f.Close()
	fi, _ := os.Stat(path)

	cfg, err := ConfigFromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("store: import %s: %w", path, err)
	}
	vocab, err := VocabFromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("store: import %s: %w", path, err)
	}
	if _, err := tokenize.New(vocab); err != nil {
		return nil, fmt.Errorf("store: import %s: tokenizer: %w", path, err)
	}

	for _, n := range cfg.TensorNames() {
		if _, ok := f.Tensor(n); !ok {
			return nil, fmt.Errorf("store: import %s: tensor %s is missing from the GGUF", path, n)
		}
	}
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.sweep()
	tmp, err := os.MkdirTemp(s.Root, "."+name+".converting-")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	defer os.RemoveAll(tmp)

	src.GGUF, src.SHA256 = path, sum
	if fi != nil {
		src.Size, src.ModTime = fi.Size(), fi.ModTime().UTC()
	}
	src.TensorTypes = map[string]int{}
	for _, t := range f.Tensors {
		src.TensorTypes[t.Type.String()]++
	}
	src.Quantization = dominantType(f)
	src.Name, _ = f.String("general.name")

	m := &Manifest{
		Converter: Converter, ConverterVersion: ConverterVersion, Name: name,
		Config: cfg, Params: cfg.Params(), Source: src,
		Weights: "weights.bin", Tokenizer: "tokenizer.json", Tensors: map[string]Tensor{},
	}
	if err := writeWeights(ctx, f, cfg, filepath.Join(tmp, m.Weights), m.Tensors, p); err != nil {
		return nil, fmt.Errorf("store: import %s: %w", path, err)
	}
	if err := writeJSON(filepath.Join(tmp, m.Tokenizer), vocab); err != nil {
		return nil, err
	}
	m.Created = time.Now().UTC()
	m.ConvertSeconds = time.Since(start).Seconds()
	if err := writeJSON(filepath.Join(tmp, "manifest.json"), m); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	// Swap: the old model stays whole until the new one is in place.
	dir := s.Dir(name)
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = filepath.Join(s.Root, fmt.Sprintf(".%s.old-%d", name, time.Now().UnixNano()))
		if err := os.Rename(dir, old); err != nil {
			return nil, fmt.Errorf("store: replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return nil, fmt.Errorf("store: install %s: %w", dir, err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return m, nil
}

// sweep removes what interrupted imports left behind: temporary
// directories older than an hour (a younger one may belong to an import
// running right now).
func (s *Store) sweep() {
	des, err := os.ReadDir(s.Root)
	if err != nil {
		return
	}
	for _, de := range des {
		n := de.Name()
		if !strings.HasPrefix(n, ".") || !(strings.Contains(n, ".converting-") || strings.Contains(n, ".old-")) {
			continue
		}
		if fi, err := de.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(s.Root, n))
		}
	}
}

// ConfigFromGGUF reads the llama configuration of a GGUF file, checking the
// architecture before anything is converted.
func ConfigFromGGUF(f *gguf.File) (llama.Config, error) {
	emb, ok := f.Tensor(llama.TokenEmbd)
	if !ok || len(emb.Dims) != 2 {
		arch, _ := f.String("general.architecture")
		if !llama.Supported(arch) {
			return llama.Config{}, fmt.Errorf("architecture %q: %w (lmood supports %v)", arch, llama.ErrUnsupportedArch, llama.SupportedArchs)
		}
		return llama.Config{}, fmt.Errorf("GGUF has no 2-D %s tensor", llama.TokenEmbd)
	}
	_, hasOutput := f.Tensor(llama.Output)
	cfg, err := llama.ConfigFromMetadata(f, int(emb.Dims[1]), hasOutput)
	if err != nil {
		return cfg, err
	}
	if cfg.Layers > len(f.Tensors) { // each block has several tensors
		return cfg, fmt.Errorf("GGUF claims %d blocks but holds only %d tensors: the file is corrupt", cfg.Layers, len(f.Tensors))
	}
	return cfg, nil
}

// VocabFromGGUF collects the tokenizer metadata of a GGUF file.
func VocabFromGGUF(f *gguf.File) (tokenize.Vocab, error) {
	v := tokenize.Vocab{BOS: -1, EOS: -1}
	v.Model, _ = f.String("tokenizer.ggml.model")
	v.Pre, _ = f.String("tokenizer.ggml.pre")
	var ok bool
	if v.Tokens, ok = f.Strings("tokenizer.ggml.tokens"); !ok || len(v.Tokens) == 0 {
		return v, fmt.Errorf("GGUF has no tokenizer.ggml.tokens: lmood needs the tokenizer inside the file")
	}
	v.TokenTypes, _ = f.Int32s("tokenizer.ggml.token_type")
	v.Scores, _ = f.Float32s("tokenizer.ggml.scores")
	v.Merges, _ = f.Strings("tokenizer.ggml.merges")
	if id, ok := f.Uint("tokenizer.ggml.bos_token_id"); ok {
		v.BOS = int(id)
	}
	if id, ok := f.Uint("tokenizer.ggml.eos_token_id"); ok {
		v.EOS = int(id)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		v.AddBOS = b
	} else {
		v.AddBOS = v.Model == "llama" // SentencePiece models add BOS unless told otherwise
	}
	v.AddEOS, _ = f.Bool("tokenizer.ggml.add_eos_token")
	if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); ok {
		v.AddSpacePrefix = &b
	}
	return v, nil
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

func writeWeights(ctx context.Context, f *gguf.File, cfg llama.Config, path string, index map[string]Tensor, p ConvertProgress) error {
	out, err := os.Create(path)
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
		index[name] = Tensor{Offset: off, Dims: dims}
		if cap(buf) < 4*len(prepared) {
			buf = make([]byte, 4*len(prepared))
		}
		b := buf[:4*len(prepared)]
		for i, v := range prepared {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
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
