// Package gemma3 describes Google's Gemma 3 text models (GGUF architecture
// "gemma3", e.g. Gemma 3 270M, 1B) and builds an ONNX graph of them that
// takes the scaled token embeddings as input and exposes the measurement
// sites of package arch.
//
// Gemma 3 as llama.cpp reads its GGUF files:
//
//   - the token embedding row is multiplied by √d before the first block.
//     Hidden state 0 (resid.0), and so the nudge, is that scaled row: what
//     the first block actually sees (arch.Dims.EmbedScale);
//   - RMSNorm multiplies by the stored weight. Gemma's reference code
//     multiplies by (1 + w); llama.cpp's converter folds the 1 into the GGUF
//     weights, so the graph uses them as stored (the Gemma 3 270M GGUF's
//     norm weights average 13, with a minimum of exactly 0 = 1 + (-1));
//   - each block: x + postnorm(attention(prenorm(x))), then
//     x + postnorm(mlp(prenorm(x))); attn.i and mlp.i are the post-normed
//     outputs, what is added to the residual stream, so that
//     resid.i = resid.(i-1) + attn.i + mlp.i;
//   - attention has per-head RMSNorms on queries and keys (before the rotary
//     embedding), rotate-half rotary embeddings, queries scaled by
//     1/√key_length (1/√(d/heads) for the 62-block 27B, as llama.cpp does);
//   - five sliding-window layers (window gemma3.attention.sliding_window,
//     rotary base gemma3.rope.freq_base_swa, 10,000 when absent) alternate
//     with one global layer (rotary base gemma3.rope.freq_base, with linear
//     rope scaling if the metadata has it): block i (0-based) is global when (i+1) % 6 == 0, llama.cpp's
//     pattern for gemma3;
//   - the MLP is GeGLU with the tanh approximation of GELU;
//   - the output head is tied to the token embeddings unless the file has
//     output.weight. Gemma 3 has no logit soft-capping; a file that asks
//     for it is refused.
package gemma3

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "gemma3"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Pattern is the sliding-window pattern: every Pattern-th block is global.
const Pattern = 6

// LocalRopeBase is the rotary base of the sliding-window layers when the
// metadata has no rope.freq_base_swa.
const LocalRopeBase = 10000

// Config holds the hyper-parameters of one Gemma 3 model.
type Config struct {
	Arch          string  `json:"arch"`
	Layers        int     `json:"layers"`
	Dim           int     `json:"dim"`
	Heads         int     `json:"heads"`
	KVHeads       int     `json:"kv_heads"`
	HeadDim       int     `json:"head_dim"` // key_length = value_length
	FFN           int     `json:"ffn"`
	Vocab         int     `json:"vocab"`
	ContextLength int     `json:"context_length"`
	RMSEps        float64 `json:"rms_eps"`
	RopeGlobal    float64 `json:"rope_global"` // rotary base of global layers
	RopeLocal     float64 `json:"rope_local"`  // rotary base of sliding-window layers
	RopeScale     float64 `json:"rope_scale"`  // linear rope scaling factor of global layers (1 = none)
	Window        int     `json:"window"`      // sliding window: a query sees keys less than Window positions back
	Pattern       int     `json:"pattern"`     // block i is global when (i+1) % Pattern == 0
	QueryScale    float64 `json:"query_scale"` // queries are multiplied by it before q·k
	EmbedScale    float64 `json:"embed_scale"` // √Dim
	TiedOutput    bool    `json:"tied_output"` // logits reuse token_embd
}

// Sanity limits: those of every family (package nn).
const (
	maxLayers = nn.MaxLayers
	maxDim    = nn.MaxDim
	maxHeads  = nn.MaxHeads
	maxFFN    = nn.MaxFFN
	maxVocab  = nn.MaxVocab
	maxCtx    = nn.MaxContextLength
)

// FromGGUF reads the configuration of a gemma3 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	emb, ok := f.TensorDims(arch.TokenEmbd)
	if !ok || len(emb) != 2 {
		return nil, fmt.Errorf("gemma3: GGUF has no 2-D %s tensor", arch.TokenEmbd)
	}
	_, hasOutput := f.TensorDims("output.weight")
	c := Config{Arch: Arch, Vocab: int(emb[1]), TiedOutput: !hasOutput, Pattern: Pattern, RopeLocal: LocalRopeBase}
	get := func(key string) int {
		v, ok := f.Uint(Arch + "." + key)
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
		{"block_count", &c.Layers}, {"embedding_length", &c.Dim}, {"attention.head_count", &c.Heads},
		{"feed_forward_length", &c.FFN}, {"context_length", &c.ContextLength},
		{"attention.sliding_window", &c.Window},
	} {
		if *fld.dst = get(fld.key); *fld.dst <= 0 {
			missing = append(missing, Arch+"."+fld.key)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("gemma3: GGUF metadata lacks or has zero %v", missing)
	}
	if c.KVHeads = get("attention.head_count_kv"); c.KVHeads <= 0 {
		c.KVHeads = c.Heads
	}
	c.HeadDim = c.Dim / c.Heads
	if v := get("attention.key_length"); v > 0 {
		c.HeadDim = v
	}
	if v := get("attention.value_length"); v > 0 && v != c.HeadDim {
		return nil, fmt.Errorf("gemma3: attention.value_length %d differs from key_length %d: not supported", v, c.HeadDim)
	}
	if v := get("rope.dimension_count"); v > 0 && v != c.HeadDim {
		return nil, fmt.Errorf("gemma3: partial rotary embeddings (rope.dimension_count %d < head dim %d) are not supported", v, c.HeadDim)
	}
	c.RMSEps = 1e-6
	if v, ok := f.Float(Arch + ".attention.layer_norm_rms_epsilon"); ok {
		if !(v > 0 && v <= 1e-2) {
			return nil, fmt.Errorf("gemma3: %s.attention.layer_norm_rms_epsilon = %g is outside (0, 0.01]", Arch, v)
		}
		c.RMSEps = v
	}
	c.RopeGlobal = 1e6
	if v, ok := f.Float(Arch + ".rope.freq_base"); ok {
		if !(v > 1 && v <= 1e12) {
			return nil, fmt.Errorf("gemma3: %s.rope.freq_base = %g is not a finite base in (1, 1e12]", Arch, v)
		}
		c.RopeGlobal = v
	}
	// llama.cpp reads the local base from rope.freq_base_swa (newer
	// converters write Gemma 3's rope_local_base_freq there), 10,000 when
	// absent.
	if v, ok := f.Float(Arch + ".rope.freq_base_swa"); ok {
		if !(v > 1 && v <= 1e12) {
			return nil, fmt.Errorf("gemma3: %s.rope.freq_base_swa = %g is not a finite base in (1, 1e12]", Arch, v)
		}
		c.RopeLocal = v
	}
	c.RopeScale = 1
	if s, ok := f.String(Arch + ".rope.scaling.type"); ok && s != "" && s != "none" {
		if s != "linear" {
			return nil, fmt.Errorf("gemma3: rope scaling %q is not supported (only linear)", s)
		}
		v, ok := f.Float(Arch + ".rope.scaling.factor")
		if !ok || !(v >= 1 && v <= 1024) {
			return nil, fmt.Errorf("gemma3: %s.rope.scaling.factor = %v is missing or outside [1, 1024]", Arch, v)
		}
		c.RopeScale = v
	}
	for _, key := range []string{"attn_logit_softcapping", "final_logit_softcapping"} {
		if v, ok := f.Float(Arch + "." + key); ok && v != 0 {
			return nil, fmt.Errorf("gemma3: %s.%s = %g: logit soft-capping is not supported for gemma3", Arch, key, v)
		}
	}
	if v := get("attention.sliding_window_pattern"); v > 0 {
		c.Pattern = v
	}
	// llama.cpp (after gemma_pytorch): the 27B scales queries by
	// 1/√(d/heads), every other size by 1/√key_length.
	c.QueryScale = 1 / math.Sqrt(float64(c.HeadDim))
	if c.Layers == 62 {
		c.QueryScale = 1 / math.Sqrt(float64(c.Dim/c.Heads))
	}
	c.EmbedScale = math.Sqrt(float64(c.Dim))
	if err := c.check(); err != nil {
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
	if c.Arch != Arch {
		return nil, fmt.Errorf("gemma3: stored configuration has architecture %q", c.Arch)
	}
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// check refuses sizes no real model has, naming the GGUF field.
func (c Config) check() error {
	for _, f := range []struct {
		key      string
		v, limit int
	}{
		{"block_count", c.Layers, maxLayers}, {"embedding_length", c.Dim, maxDim},
		{"attention.head_count", c.Heads, maxHeads}, {"attention.head_count_kv", c.KVHeads, c.Heads},
		{"attention.key_length", c.HeadDim, maxDim}, {"feed_forward_length", c.FFN, maxFFN},
		{"context_length", c.ContextLength, maxCtx}, {"attention.sliding_window", c.Window, maxCtx},
		{"attention.sliding_window_pattern", c.Pattern, maxLayers},
	} {
		if f.v <= 0 || f.v > f.limit {
			return fmt.Errorf("gemma3: %s.%s = %d is outside 1..%d: the file is corrupt", Arch, f.key, f.v, f.limit)
		}
	}
	if c.Vocab <= 0 || c.Vocab > maxVocab {
		return fmt.Errorf("gemma3: %s has %d rows (the vocabulary size), outside 1..%d", arch.TokenEmbd, c.Vocab, maxVocab)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("gemma3: head_count %d is not a multiple of head_count_kv %d", c.Heads, c.KVHeads)
	}
	if c.HeadDim%2 != 0 {
		return fmt.Errorf("gemma3: head dimension %d is odd; rotary embeddings need it even", c.HeadDim)
	}
	for _, v := range []float64{c.RMSEps, c.RopeGlobal, c.RopeLocal, c.RopeScale, c.QueryScale, c.EmbedScale} {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("gemma3: impossible configuration %+v", c)
		}
	}
	return nil
}

// Common returns the numbers every family has.
func (c Config) Common() arch.Dims {
	return arch.Dims{Arch: c.Arch, Layers: c.Layers, Dim: c.Dim, Heads: c.Heads, KVHeads: c.KVHeads,
		HeadDim: c.HeadDim, FFN: c.FFN, Vocab: c.Vocab, ContextLength: c.ContextLength, EmbedScale: c.EmbedScale}
}

// Global reports whether block i (0-based, GGUF blk.i) attends globally;
// the others attend within the sliding window.
func (c Config) Global(i int) bool { return (i+1)%c.Pattern == 0 }

// Params returns the number of weights (tied embeddings counted once).
func (c Config) Params() int64 {
	d, f, hd := int64(c.Dim), int64(c.FFN), int64(c.HeadDim)
	q, kv := int64(c.Heads)*hd, int64(c.KVHeads)*hd
	block := d*q + 2*d*kv + q*d + 3*d*f + 4*d + 2*hd
	total := int64(c.Layers)*block + int64(c.Vocab)*d + d
	if !c.TiedOutput {
		total += int64(c.Vocab) * d
	}
	return total
}

// GGUF tensor names of the family.
const (
	outputNorm = "output_norm.weight"
	output     = "output.weight"
)

func block(i int, name string) string { return fmt.Sprintf("blk.%d.%s", i, name) }

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string {
	names := []string{arch.TokenEmbd}
	for i := 0; i < c.Layers; i++ {
		for _, n := range []string{"attn_norm", "attn_q", "attn_k", "attn_v", "attn_q_norm", "attn_k_norm",
			"attn_output", "post_attention_norm", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down", "post_ffw_norm"} {
			names = append(names, block(i, n+".weight"))
		}
	}
	names = append(names, outputNorm)
	if !c.TiedOutput {
		names = append(names, output)
	}
	return names
}

// linearShape is the (in, out) size of a linear weight, by name suffix.
func (c Config) linearShape(name string) (in, out int, ok bool) {
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	for _, s := range []struct {
		suffix  string
		in, out int
	}{
		{"attn_q.weight", c.Dim, q}, {"attn_k.weight", c.Dim, kv}, {"attn_v.weight", c.Dim, kv},
		{"attn_output.weight", q, c.Dim},
		{"ffn_gate.weight", c.Dim, c.FFN}, {"ffn_up.weight", c.Dim, c.FFN}, {"ffn_down.weight", c.FFN, c.Dim},
		{output, c.Dim, c.Vocab},
	} {
		if strings.HasSuffix(name, s.suffix) {
			return s.in, s.out, true
		}
	}
	return 0, 0, false
}

// vectorLen is the length of a norm weight, by name suffix.
func (c Config) vectorLen(name string) (int, bool) {
	switch {
	case strings.HasSuffix(name, "attn_q_norm.weight"), strings.HasSuffix(name, "attn_k_norm.weight"):
		return c.HeadDim, true
	case strings.HasSuffix(name, "norm.weight"):
		return c.Dim, true
	}
	return 0, false
}

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	var exp []int
	if name == arch.TokenEmbd {
		exp = []int{c.Dim, c.Vocab}
	} else if n, ok := c.vectorLen(name); ok {
		exp = []int{n}
	} else if in, out, ok := c.linearShape(name); ok {
		exp = []int{in, out}
	} else {
		return nil
	}
	same := len(dims) == len(exp)
	for i := 0; same && i < len(exp); i++ {
		same = dims[i] == uint64(exp[i])
	}
	if !same {
		return fmt.Errorf("gemma3: tensor %s has dims %v, the metadata says %v (embedding_length %d, head_count %d, head_count_kv %d, key_length %d, feed_forward_length %d): the file is inconsistent",
			name, dims, exp, c.Dim, c.Heads, c.KVHeads, c.HeadDim, c.FFN)
	}
	return nil
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights transposed to [in, out] (the graph computes x @ W; GGUF's
// gemma3 q/k rows are already in rotate-half order, so nothing is
// permuted), the embedding matrix [vocab, dim], norms as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	if err := c.CheckTensorShape(name, dims); err != nil {
		return nil, nil, err
	}
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	if uint64(len(data)) != n {
		return nil, nil, fmt.Errorf("gemma3: tensor %s: %d values for dims %v", name, len(data), dims)
	}
	if name == arch.TokenEmbd {
		return data, []int64{int64(dims[1]), int64(dims[0])}, nil
	}
	if len(dims) == 1 {
		return data, []int64{int64(dims[0])}, nil
	}
	in, out := int(dims[0]), int(dims[1])
	t := make([]float32, len(data))
	for o := 0; o < out; o++ {
		for i, v := range data[o*in : (o+1)*in] {
			t[i*out+o] = v
		}
	}
	return t, []int64{int64(in), int64(out)}, nil
}

// LinearRows implements arch.QuantLinear: every linear weight may be kept
// block-quantized, its rows as in the GGUF (gemma3's q/k rows are already
// in rotate-half order).
func (c Config) LinearRows(name string, dims []uint64) ([]int, bool) {
	_, _, ok := c.linearShape(name)
	return nil, ok && len(dims) == 2
}
