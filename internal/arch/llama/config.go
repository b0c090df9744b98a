// Package llama describes the llama family of decoder-only transformers
// (Llama 2/3, TinyLlama, Mistral, SmolLM2, and Qwen2 with its q/k/v bias)
// and builds an ONNX graph of it that takes token embeddings as input and
// exposes any set of measurement sites (the sites of package arch): the residual
// stream, the normalised residual, the attention and MLP outputs of each
// block, and the logits.
package llama

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

func init() {
	for _, name := range SupportedArchs {
		arch.Register(arch.Family{Name: name, FromGGUF: FromGGUF, Decode: Decode})
	}
}

// FromGGUF reads the configuration of a llama-family GGUF file: the
// metadata, the vocabulary size from token_embd's rows, and whether the
// output head is tied (no output.weight).
func FromGGUF(f arch.File) (arch.Config, error) {
	dims, ok := f.TensorDims(TokenEmbd)
	if !ok || len(dims) != 2 {
		return nil, fmt.Errorf("llama: GGUF has no 2-D %s tensor", TokenEmbd)
	}
	_, hasOutput := f.TensorDims(Output)
	c, err := ConfigFromMetadata(f, int(dims[1]), hasOutput)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Decode reads a configuration stored as JSON and checks it.
func Decode(data []byte) (arch.Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, err
	}
	if !Supported(c.Arch) {
		return nil, fmt.Errorf("llama: stored configuration has architecture %q", c.Arch)
	}
	if err := c.checkRanges(); err != nil {
		return nil, err
	}
	if c.HeadDim%2 != 0 || c.Heads%c.KVHeads != 0 || !(c.RMSEps > 0) || !(c.RopeTheta > 1) || math.IsInf(c.RopeTheta, 0) {
		return nil, fmt.Errorf("llama: impossible stored configuration %+v", c)
	}
	return c, nil
}

// Resid0 says what hidden state 0 is: the token's embedding row.
func (Config) Resid0() arch.Resid0 { return nn.TokenRow }

// Common returns the numbers every family has.
func (c Config) Common() arch.Dims {
	return arch.Dims{Arch: c.Arch, Layers: c.Layers, Dim: c.Dim, Heads: c.Heads, KVHeads: c.KVHeads,
		HeadDim: c.HeadDim, FFN: c.FFN, Vocab: c.Vocab, ContextLength: c.ContextLength}
}

// Metadata is the subset of a GGUF file's key/value metadata the
// configuration is read from. *gguf.File satisfies it.
type Metadata interface {
	String(key string) (string, bool)
	Uint(key string) (uint64, bool)
	Float(key string) (float64, bool)
}

// Config holds the hyper-parameters of one llama-family model.
type Config struct {
	Arch          string  `json:"arch"`           // GGUF general.architecture ("llama" or "qwen2")
	Layers        int     `json:"layers"`         // transformer blocks
	Dim           int     `json:"dim"`            // residual stream width (d_model)
	Heads         int     `json:"heads"`          // query heads
	KVHeads       int     `json:"kv_heads"`       // key/value heads (grouped-query attention)
	HeadDim       int     `json:"head_dim"`       // width of one head
	FFN           int     `json:"ffn"`            // MLP hidden width
	Vocab         int     `json:"vocab"`          // vocabulary size
	ContextLength int     `json:"context_length"` // trained context length
	RMSEps        float64 `json:"rms_eps"`        // RMSNorm epsilon
	RopeTheta     float64 `json:"rope_theta"`     // rotary base frequency
	RopeDim       int     `json:"rope_dim"`       // rotary dimensions per head
	QKVBias       bool    `json:"qkv_bias"`       // q/k/v projections carry a bias (Qwen2)
	TiedOutput    bool    `json:"tied_output"`    // logits reuse the token embedding matrix
}

// ErrUnsupportedArch is returned for a GGUF architecture this package does
// not describe (the same error as arch.ErrUnsupported).
var ErrUnsupportedArch = arch.ErrUnsupported

// SupportedArchs lists the GGUF general.architecture values understood here.
var SupportedArchs = []string{"llama", "qwen2"}

// Supported reports whether arch is a GGUF architecture this package builds.
func Supported(arch string) bool {
	for _, a := range SupportedArchs {
		if a == arch {
			return true
		}
	}
	return false
}

// ConfigFromMetadata reads the model configuration from GGUF metadata.
// vocab is the number of rows of token_embd.weight and hasOutput tells
// whether the file carries a separate output.weight (untied head).
func ConfigFromMetadata(md Metadata, vocab int, hasOutput bool) (Config, error) {
	arch, _ := md.String("general.architecture")
	if !Supported(arch) {
		return Config{}, fmt.Errorf("llama: architecture %q: %w (lmood supports %v)", arch, ErrUnsupportedArch, SupportedArchs)
	}
	c := Config{Arch: arch, Vocab: vocab, TiedOutput: !hasOutput, QKVBias: arch == "qwen2"}
	need := func(key string) int {
		v, ok := md.Uint(arch + "." + key)
		if !ok {
			return -1
		}
		return int(v)
	}
	var missing []string
	for _, f := range []struct {
		key string
		dst *int
	}{
		{"block_count", &c.Layers},
		{"embedding_length", &c.Dim},
		{"attention.head_count", &c.Heads},
		{"feed_forward_length", &c.FFN},
		{"context_length", &c.ContextLength},
	} {
		if *f.dst = need(f.key); *f.dst <= 0 {
			missing = append(missing, arch+"."+f.key)
		}
	}
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("llama: GGUF metadata lacks or has zero %v", missing)
	}
	c.KVHeads = need("attention.head_count_kv")
	if c.KVHeads <= 0 {
		c.KVHeads = c.Heads
	}
	if c.Dim%c.Heads != 0 {
		return Config{}, fmt.Errorf("llama: embedding_length %d is not divisible by head_count %d", c.Dim, c.Heads)
	}
	c.HeadDim = c.Dim / c.Heads
	if kl := need("attention.key_length"); kl > 0 {
		c.HeadDim = kl
	}
	if c.Heads%c.KVHeads != 0 {
		return Config{}, fmt.Errorf("llama: head_count %d is not a multiple of head_count_kv %d", c.Heads, c.KVHeads)
	}
	c.RMSEps = 1e-5
	if v, ok := md.Float(arch + ".attention.layer_norm_rms_epsilon"); ok {
		if !(v > 0 && v <= MaxRMSEps) { // also refuses NaN
			return Config{}, fmt.Errorf("llama: %s.attention.layer_norm_rms_epsilon = %g is outside (0, %g]: with it the norms would flatten every hidden state", arch, v, MaxRMSEps)
		}
		c.RMSEps = v
	}
	c.RopeTheta = 10000
	if v, ok := md.Float(arch + ".rope.freq_base"); ok {
		if !(v > 1 && v <= MaxRopeTheta) { // also refuses NaN and +Inf
			return Config{}, fmt.Errorf("llama: %s.rope.freq_base = %g is not a finite base in (1, %g]", arch, v, MaxRopeTheta)
		}
		c.RopeTheta = v
	}
	c.RopeDim = c.HeadDim
	if v := need("rope.dimension_count"); v > 0 {
		c.RopeDim = v
	}
	if c.RopeDim != c.HeadDim {
		return Config{}, fmt.Errorf("llama: partial rotary embeddings (rope.dimension_count %d < head dim %d) are not supported", c.RopeDim, c.HeadDim)
	}
	if c.HeadDim%2 != 0 {
		return Config{}, fmt.Errorf("llama: head dimension %d is odd; rotary embeddings need it even", c.HeadDim)
	}
	if s, ok := md.String(arch + ".rope.scaling.type"); ok && s != "" && s != "none" {
		return Config{}, fmt.Errorf("llama: rope scaling %q is not supported", s)
	}
	if err := c.checkRanges(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Sanity limits for GGUF metadata: those of every family (package nn).
const (
	MaxLayers        = nn.MaxLayers
	MaxDim           = nn.MaxDim
	MaxHeads         = nn.MaxHeads
	MaxFFN           = nn.MaxFFN
	MaxVocab         = nn.MaxVocab
	MaxContextLength = nn.MaxContextLength
	MaxRMSEps        = nn.MaxEps
	MaxRopeTheta     = nn.MaxRopeBase
)

// checkRanges refuses sizes no real model has, naming the GGUF field.
func (c Config) checkRanges() error {
	for _, f := range []struct {
		key      string
		v, limit int
	}{
		{"block_count", c.Layers, MaxLayers},
		{"embedding_length", c.Dim, MaxDim},
		{"attention.head_count", c.Heads, MaxHeads},
		{"attention.head_count_kv", c.KVHeads, c.Heads},
		{"attention.key_length", c.HeadDim, MaxDim},
		{"feed_forward_length", c.FFN, MaxFFN},
		{"context_length", c.ContextLength, MaxContextLength},
	} {
		if f.v <= 0 || f.v > f.limit {
			return fmt.Errorf("llama: %s.%s = %d is outside 1..%d: the file is corrupt", c.Arch, f.key, f.v, f.limit)
		}
	}
	if c.Vocab <= 0 || c.Vocab > MaxVocab {
		return fmt.Errorf("llama: %s has %d rows (the vocabulary size), outside 1..%d", TokenEmbd, c.Vocab, MaxVocab)
	}
	if math.IsNaN(c.RMSEps) || math.IsNaN(c.RopeTheta) {
		return fmt.Errorf("llama: NaN in the configuration")
	}
	return nil
}

// CheckTensorShape checks a GGUF tensor's dims (GGUF order: the fastest
// varying first) against the configuration before anything is converted,
// naming the tensor and the metadata field it contradicts.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	want := func(exp ...int) error {
		ok := len(dims) == len(exp)
		for i := 0; ok && i < len(exp); i++ {
			ok = dims[i] == uint64(exp[i])
		}
		if ok {
			return nil
		}
		return fmt.Errorf("llama: tensor %s has dims %v, the metadata says %v (%s): the file is inconsistent", name, dims, exp, c.shapeSource(name))
	}
	switch {
	case name == TokenEmbd:
		return want(c.Dim, c.Vocab)
	case strings.HasSuffix(name, "norm.weight"):
		return want(c.Dim)
	case strings.HasSuffix(name, "attn_q.bias"):
		return want(c.Heads * c.HeadDim)
	case strings.HasSuffix(name, "attn_k.bias"), strings.HasSuffix(name, "attn_v.bias"):
		return want(c.KVHeads * c.HeadDim)
	}
	if in, out, ok := c.linearShape(name); ok {
		return want(in, out)
	}
	return nil
}

// shapeSource names the metadata a tensor's expected shape comes from.
func (c Config) shapeSource(name string) string {
	switch {
	case name == TokenEmbd:
		return fmt.Sprintf("%s.embedding_length %d × vocabulary %d", c.Arch, c.Dim, c.Vocab)
	case strings.HasSuffix(name, "norm.weight"):
		return fmt.Sprintf("%s.embedding_length %d", c.Arch, c.Dim)
	case strings.Contains(name, "ffn_"):
		return fmt.Sprintf("%s.embedding_length %d, %s.feed_forward_length %d", c.Arch, c.Dim, c.Arch, c.FFN)
	}
	return fmt.Sprintf("%s.embedding_length %d, head_count %d, head_count_kv %d, head dim %d", c.Arch, c.Dim, c.Heads, c.KVHeads, c.HeadDim)
}

// Params returns the number of weights in the model (embeddings counted once
// when the output head is tied).
func (c Config) Params() int64 {
	d, f, hd := int64(c.Dim), int64(c.FFN), int64(c.HeadDim)
	q := d * int64(c.Heads) * hd
	kv := 2 * d * int64(c.KVHeads) * hd
	o := int64(c.Heads) * hd * d
	block := q + kv + o + 3*d*f + 2*d
	if c.QKVBias {
		block += int64(c.Heads)*hd + 2*int64(c.KVHeads)*hd
	}
	total := int64(c.Layers)*block + int64(c.Vocab)*d + d
	if !c.TiedOutput {
		total += int64(c.Vocab) * d
	}
	return total
}

// Middle returns the default analysis hidden-state index: the middle of the
// stack (hidden state Layers/2).
func (c Config) Middle() int { return c.Common().Middle() }
