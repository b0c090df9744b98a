// Package nn holds what the graph builders and configurations of decoder-only
// families share: reading and checking the common GGUF hyper-parameters,
// describing a family's tensors once (for checking, ordering and laying them
// out), choosing which measurement points a graph must reach, and ONNX
// building blocks (norms, rotary embeddings, causal grouped-query attention,
// a tied output head). Each family's graph stays written out in its own
// package, block by block, so that it reads like the model.
package nn

import (
	"encoding/json"
	"fmt"
	"math"

	"github.com/lmood/lmood/internal/arch"
)

// Sanity limits for GGUF metadata: far above any real model, low enough
// that a hostile file cannot make lmood allocate wildly or compute garbage.
const (
	MaxLayers        = 1024
	MaxDim           = 1 << 16
	MaxHeads         = 1024
	MaxFFN           = 1 << 20
	MaxVocab         = 1 << 20
	MaxContextLength = 1 << 24
	MaxEps           = 1e-2
	MaxRopeBase      = 1e12
)

// Hyper are the hyper-parameters every family here has, as stored in a
// model manifest (JSON) and read from GGUF metadata.
type Hyper struct {
	Arch          string `json:"arch"`           // GGUF general.architecture
	Layers        int    `json:"layers"`         // transformer blocks
	Dim           int    `json:"dim"`            // residual stream width
	Heads         int    `json:"heads"`          // query heads
	KVHeads       int    `json:"kv_heads"`       // key/value heads
	HeadDim       int    `json:"head_dim"`       // width of one head
	FFN           int    `json:"ffn"`            // MLP hidden width
	Vocab         int    `json:"vocab"`          // rows of token_embd
	ContextLength int    `json:"context_length"` // trained context length
}

// ReadHyper reads the common hyper-parameters of architecture a from a GGUF
// file (vocabulary size: token_embd's rows) and checks them, naming the
// field that is missing or impossible.
func ReadHyper(f arch.File, a string) (Hyper, error) {
	emb, ok := f.TensorDims(arch.TokenEmbd)
	if !ok || len(emb) != 2 {
		return Hyper{}, fmt.Errorf("%s: GGUF has no 2-D %s tensor", a, arch.TokenEmbd)
	}
	h := Hyper{Arch: a, Vocab: int(emb[1])}
	get := func(key string) int {
		v, ok := f.Uint(a + "." + key)
		if !ok || v > math.MaxInt32 {
			return -1
		}
		return int(v)
	}
	var missing []string
	for _, fld := range []struct {
		key string
		dst *int
	}{
		{"block_count", &h.Layers}, {"embedding_length", &h.Dim}, {"attention.head_count", &h.Heads},
		{"feed_forward_length", &h.FFN}, {"context_length", &h.ContextLength},
	} {
		if *fld.dst = get(fld.key); *fld.dst <= 0 {
			missing = append(missing, a+"."+fld.key)
		}
	}
	if len(missing) > 0 {
		return Hyper{}, fmt.Errorf("%s: GGUF metadata lacks or has zero %v", a, missing)
	}
	if h.KVHeads = get("attention.head_count_kv"); h.KVHeads <= 0 {
		h.KVHeads = h.Heads
	}
	if h.Dim%h.Heads != 0 && get("attention.key_length") <= 0 {
		return Hyper{}, fmt.Errorf("%s: %s.embedding_length %d is not divisible by attention.head_count %d", a, a, h.Dim, h.Heads)
	}
	h.HeadDim = h.Dim / h.Heads
	if v := get("attention.key_length"); v > 0 {
		h.HeadDim = v
	}
	if v := get("attention.value_length"); v > 0 && v != h.HeadDim {
		return Hyper{}, fmt.Errorf("%s: %s.attention.value_length %d differs from the key length %d: not supported", a, a, v, h.HeadDim)
	}
	return h, h.Check()
}

// Check refuses sizes no real model has, naming the GGUF field.
func (h Hyper) Check() error {
	for _, f := range []struct {
		key      string
		v, limit int
	}{
		{"block_count", h.Layers, MaxLayers}, {"embedding_length", h.Dim, MaxDim},
		{"attention.head_count", h.Heads, MaxHeads}, {"attention.head_count_kv", h.KVHeads, h.Heads},
		{"attention.key_length", h.HeadDim, MaxDim}, {"feed_forward_length", h.FFN, MaxFFN},
		{"context_length", h.ContextLength, MaxContextLength},
	} {
		if f.v <= 0 || f.v > f.limit {
			return fmt.Errorf("%s: %s.%s = %d is outside 1..%d: the file is corrupt", h.Arch, h.Arch, f.key, f.v, f.limit)
		}
	}
	if h.Vocab <= 0 || h.Vocab > MaxVocab {
		return fmt.Errorf("%s: %s has %d rows (the vocabulary size), outside 1..%d", h.Arch, arch.TokenEmbd, h.Vocab, MaxVocab)
	}
	if h.Heads%h.KVHeads != 0 {
		return fmt.Errorf("%s: %s.attention.head_count %d is not a multiple of head_count_kv %d", h.Arch, h.Arch, h.Heads, h.KVHeads)
	}
	return nil
}

// Unmarshal reads a configuration stored as JSON into c, a family's
// configuration that embeds h, and checks h: architecture a, every size
// within limits.
func Unmarshal(data []byte, a string, c any, h *Hyper) error {
	if err := json.Unmarshal(data, c); err != nil {
		return err
	}
	if h.Arch != a {
		return fmt.Errorf("%s: stored configuration has architecture %q", a, h.Arch)
	}
	return h.Check()
}

// Common returns the numbers every family has (arch.Dims), with an
// embedding scale of 1: a family configuration embedding Hyper gets
// arch.Config's Common from it.
func (h Hyper) Common() arch.Dims {
	return arch.Dims{Arch: h.Arch, Layers: h.Layers, Dim: h.Dim, Heads: h.Heads, KVHeads: h.KVHeads,
		HeadDim: h.HeadDim, FFN: h.FFN, Vocab: h.Vocab, ContextLength: h.ContextLength}
}

// TokenRow is hidden state 0 of the families whose first block reads the
// token's embedding row as it is (arch.Config's Resid0).
var TokenRow = arch.Resid0{What: "the token's embedding row", Nudged: true}

// ReadFloat reads the float metadata a+"."+key, def if absent. A present
// value must lie in (lo, hi] (NaN and ±Inf never do).
func ReadFloat(f arch.Metadata, a, key string, def, lo, hi float64) (float64, error) {
	v, ok := f.Float(a + "." + key)
	if !ok {
		return def, nil
	}
	if !(v > lo && v <= hi) {
		return 0, fmt.Errorf("%s: %s.%s = %g is outside (%g, %g]", a, a, key, v, lo, hi)
	}
	return v, nil
}

// ReadRope reads the rotary settings of architecture a: the base
// (rope.freq_base, default def) and the number of rotated dimensions, which
// must be the whole head (partial rotary embeddings are refused). Any rope
// scaling is refused with the type named: these families implement none.
func ReadRope(f arch.Metadata, a string, headDim int, def float64) (float64, error) {
	base, err := ReadFloat(f, a, "rope.freq_base", def, 1, MaxRopeBase)
	if err != nil {
		return 0, err
	}
	if v, ok := f.Uint(a + ".rope.dimension_count"); ok && int(v) != headDim {
		return 0, fmt.Errorf("%s: partial rotary embeddings (%s.rope.dimension_count %d, head dim %d) are not supported", a, a, v, headDim)
	}
	if headDim%2 != 0 {
		return 0, fmt.Errorf("%s: head dimension %d is odd; rotary embeddings need it even", a, headDim)
	}
	if s, ok := f.String(a + ".rope.scaling.type"); ok && s != "" && s != "none" {
		return 0, fmt.Errorf("%s: rope scaling %q (%s.rope.scaling.type) is not supported by lmood's %s graph; it would compute other hidden states than the model", a, s, a, a)
	}
	return base, nil
}

// CheckFinite refuses non-positive, NaN or infinite values of a stored
// configuration.
func CheckFinite(a string, vals map[string]float64) error {
	for k, v := range vals {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("%s: impossible %s %g in the configuration", a, k, v)
		}
	}
	return nil
}
