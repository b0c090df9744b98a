package arch

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
)

// Graph input and output names shared by every family.
const (
	InputEmbeds = "inputs_embeds" // float32 [batch, seq, dim]: hidden state 0, the embeddings the first block sees
	HeadInput   = "normed"        // float32 [batch, seq, dim]: norm.n, input of a head-only graph
	LogitsName  = "logits"        // float32 [batch, seq, vocab]
)

// TokenEmbd is the GGUF name of the token embedding matrix, which every
// family stores as [vocab, dim] (row = token): the rows are gathered
// outside the graph, scaled by [Dims.EmbedScale], and fed as InputEmbeds.
const TokenEmbd = "token_embd.weight"

// Resid is the measurement point of hidden state i: the residual stream
// after block i (i = 0: the embeddings the first block sees).
func Resid(i int) Point { return Point{Site: SiteResid, Index: i} }

// Logits is the measurement point of the output head.
func Logits() Point { return Point{Site: SiteLogits} }

// GraphOptions selects what a graph computes.
type GraphOptions struct {
	// Outputs lists the measurement points the graph exposes (at least
	// one, no repeats), each as an output named by [Point.Name]. The graph
	// is truncated right after the deepest one: analyses of early sites do
	// not pay for the rest.
	Outputs []Point
	// Head builds the output head alone instead (Outputs must be empty):
	// input HeadInput, the final norm's output norm.n, and output logits. It
	// lets a caller project long prompts onto the vocabulary a slice of
	// positions at a time.
	Head bool
}

// Dims are the numbers every decoder-only family has, the ones callers
// size buffers and choose layers from.
type Dims struct {
	Arch          string // GGUF general.architecture
	Layers        int    // transformer blocks
	Dim           int    // residual stream width (d_model)
	Heads         int    // query heads
	KVHeads       int    // key/value heads
	HeadDim       int    // width of one head
	FFN           int    // MLP hidden width
	Vocab         int    // vocabulary size (rows of token_embd)
	ContextLength int    // trained context length
	// EmbedScale multiplies a token's embedding row before the first block
	// reads it (Gemma: √dim); 0 means 1. Hidden state 0, and so the nudge,
	// is the scaled row: what the first block actually sees.
	EmbedScale float64
}

// Middle returns the default analysis hidden-state index: the middle of
// the stack (hidden state Layers/2).
func (d Dims) Middle() int { return d.Layers / 2 }

// Width is the last-axis size of a site's output: the vocabulary for
// logits, the residual width for every other site.
func (d Dims) Width(s Site) int {
	if s == SiteLogits {
		return d.Vocab
	}
	return d.Dim
}

// Scale is the factor applied to embedding rows (EmbedScale, or 1).
func (d Dims) Scale() float32 {
	if d.EmbedScale == 0 {
		return 1
	}
	return float32(d.EmbedScale)
}

// Check refuses impossible numbers (from a corrupt manifest or file).
func (d Dims) Check() error {
	if d.Layers <= 0 || d.Dim <= 0 || d.Heads <= 0 || d.KVHeads <= 0 || d.Heads%d.KVHeads != 0 ||
		d.HeadDim <= 0 || d.HeadDim%2 != 0 || d.FFN <= 0 || d.Vocab <= 0 || d.ContextLength <= 0 || d.Layers > 10000 ||
		math.IsNaN(d.EmbedScale) || math.IsInf(d.EmbedScale, 0) || d.EmbedScale < 0 {
		return fmt.Errorf("impossible configuration %+v", d)
	}
	return nil
}

// Resid0 says what hidden state 0 (resid.0, the graph's input) is in a
// family, for documentation and output footers.
type Resid0 struct {
	// What describes it, e.g. "the token's embedding row".
	What string
	// Nudged reports whether it is the nudged tensor itself, so that its
	// drift ratio is 1 by definition. It is false when the graph adds
	// something to the nudged tensor first (GPT-2's position rows).
	Nudged bool
}

// Omitted is the footer note of an output that leaves hidden state 0 out:
// what it is and, when its ratio is 1 by definition, that.
func (r Resid0) Omitted() string {
	if r.What == "" {
		return "0 omitted"
	}
	if r.Nudged {
		return "0 omitted: " + r.What + ", the nudged input itself, ratio 1 by definition"
	}
	return "0 omitted: " + r.What
}

// Config is one family's configuration of one model: everything needed to
// check a GGUF's tensors, lay out its weights and build its graph.
type Config interface {
	// Common returns the numbers every family has.
	Common() Dims
	// Params is the number of weights (tied embeddings counted once).
	Params() int64
	// TensorNames lists every GGUF tensor the graph reads, in file order;
	// it includes TokenEmbd.
	TensorNames() []string
	// CheckTensorShape checks a GGUF tensor's dims (fastest varying first)
	// against the configuration, naming the metadata it contradicts.
	CheckTensorShape(name string, dims []uint64) error
	// PrepareWeight turns a dequantized GGUF tensor into the layout the
	// graph reads, returning the data and its shape. TokenEmbd must come
	// out as [vocab, dim].
	PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error)
	// Resid0 says what hidden state 0 is in this family.
	Resid0() Resid0
	// Build returns the ONNX graph, its weights resolved through w (which
	// maps GGUF tensor names to data prepared by PrepareWeight). Input
	// InputEmbeds (or HeadInput for a head-only graph).
	Build(w onnx.WeightSource, opt GraphOptions) (*onnxpb.ModelProto, error)
}

// Metadata is the GGUF key/value metadata a configuration is read from.
// *gguf.File satisfies it.
type Metadata interface {
	String(key string) (string, bool)
	Uint(key string) (uint64, bool)
	Float(key string) (float64, bool)
	Bool(key string) (bool, bool)
}

// File is a GGUF file as a family sees it: metadata and tensor dims.
// *gguf.File satisfies it.
type File interface {
	Metadata
	// TensorDims returns a tensor's dims (GGUF order), if present.
	TensorDims(name string) ([]uint64, bool)
}

// Family describes one architecture family.
type Family struct {
	// Name is the GGUF general.architecture value it is registered for.
	Name string
	// FromGGUF reads and checks the configuration of a GGUF file of this
	// architecture, before any tensor data is read.
	FromGGUF func(f File) (Config, error)
	// Decode reads a configuration the family's Config marshalled to JSON
	// (as stored in a model manifest), checking it.
	Decode func(data []byte) (Config, error)
}

// ErrUnsupported is returned for a GGUF architecture no family handles.
var ErrUnsupported = errors.New("unsupported architecture")

var (
	mu       sync.RWMutex
	registry = map[string]Family{}
)

// Register makes a family available under f.Name. Families call it from
// an init function; registering a name twice, or an incomplete family, is
// a programming error and panics.
func Register(f Family) {
	mu.Lock()
	defer mu.Unlock()
	if f.Name == "" || f.FromGGUF == nil || f.Decode == nil {
		panic("arch: Register of an incomplete family " + f.Name)
	}
	if _, dup := registry[f.Name]; dup {
		panic("arch: architecture " + f.Name + " registered twice")
	}
	registry[f.Name] = f
}

// Lookup returns the family registered for a general.architecture value.
func Lookup(name string) (Family, bool) {
	mu.RLock()
	defer mu.RUnlock()
	f, ok := registry[name]
	return f, ok
}

// Supported lists the registered architectures, sorted.
func Supported() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// IsSupported reports whether a family is registered for name.
func IsSupported(name string) bool {
	_, ok := Lookup(name)
	return ok
}

func unsupported(name string) error {
	return fmt.Errorf("architecture %q: %w (lmood supports %v)", name, ErrUnsupported, Supported())
}

// Spec is a model's architecture: the common numbers (promoted, so
// spec.Layers, spec.Middle() work) and the family's configuration.
type Spec struct {
	Dims
	Config Config
}

// NewSpec wraps a family configuration.
func NewSpec(c Config) Spec { return Spec{Dims: c.Common(), Config: c} }

// Params is the family's weight count (0 for an empty Spec).
func (s Spec) Params() int64 {
	if s.Config == nil {
		return 0
	}
	return s.Config.Params()
}

// Build builds the model's graph (see [Config.Build]).
func (s Spec) Build(w onnx.WeightSource, opt GraphOptions) (*onnxpb.ModelProto, error) {
	if s.Config == nil {
		return nil, fmt.Errorf("arch: no configuration to build a graph from")
	}
	return s.Config.Build(w, opt)
}

// Resid0 says what hidden state 0 is (zero for an empty Spec).
func (s Spec) Resid0() Resid0 {
	if s.Config == nil {
		return Resid0{}
	}
	return s.Config.Resid0()
}

// MarshalJSON writes the family's configuration.
func (s Spec) MarshalJSON() ([]byte, error) { return json.Marshal(s.Config) }

// FromGGUF reads general.architecture and the registered family's
// configuration of f.
func FromGGUF(f File) (Spec, error) {
	name, _ := f.String("general.architecture")
	fam, ok := Lookup(name)
	if !ok {
		return Spec{}, unsupported(name)
	}
	c, err := fam.FromGGUF(f)
	if err != nil {
		return Spec{}, err
	}
	s := NewSpec(c)
	if s.Arch != name {
		return Spec{}, fmt.Errorf("arch: family %s returned a configuration of %q", name, s.Arch)
	}
	if err := s.Dims.Check(); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// Decode reads the stored configuration of a model of architecture name.
func Decode(name string, data []byte) (Spec, error) {
	fam, ok := Lookup(name)
	if !ok {
		return Spec{}, unsupported(name)
	}
	c, err := fam.Decode(data)
	if err != nil {
		return Spec{}, fmt.Errorf("%s configuration: %w", name, err)
	}
	s := NewSpec(c)
	if s.Arch != name {
		return Spec{}, fmt.Errorf("%s configuration names architecture %q", name, s.Arch)
	}
	if err := s.Dims.Check(); err != nil {
		return Spec{}, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}
