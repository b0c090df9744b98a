// Package gemma2 describes Google's Gemma 2 text models (GGUF architecture
// "gemma2": Gemma 2 2B, 9B, 27B) and builds an ONNX graph of them that takes
// the scaled token embeddings as input and exposes the measurement sites of
// package arch.
//
// Gemma 2 as llama.cpp reads its GGUF files (src/models/gemma2.cpp):
//
//   - the token embedding row is multiplied by √d before the first block.
//     Hidden state 0 (resid.0), and so the nudge, is that scaled row: what
//     the first block actually sees (arch.Dims.EmbedScale);
//   - RMSNorm multiplies by the stored weight: Gemma's reference code
//     multiplies by (1 + w), and llama.cpp's converter (Gemma2Model) adds
//     the 1 to every norm weight when it writes the GGUF;
//   - each block: x + postnorm(attention(prenorm(x))), then
//     x + postnorm(mlp(prenorm(x))); attn.i and mlp.i are the post-normed
//     outputs, what is added to the residual stream;
//   - attention: q, k, v projections without bias and without q/k norms,
//     rotate-half rotary embeddings with one base (gemma2.rope.freq_base,
//     default 10,000; llama.cpp reads gemma2.rope.freq_base_swa for the
//     sliding-window layers if present), queries scaled by 1/√key_length
//     (1/√(d/heads) for the 46-block 27B: llama.cpp derives the scale
//     from the size; no GGUF key carries Hugging Face's
//     query_pre_attn_scalar), grouped-query attention;
//   - attention logit soft-capping: scores = cap · tanh(q·k / cap), cap =
//     gemma2.attn_logit_softcapping (default 50), before the mask and the
//     softmax;
//   - sliding-window layers (window gemma2.attention.sliding_window,
//     default 4096) alternate with global ones: block i (0-based) is local
//     when i is even, global when odd (llama.cpp's pattern 2: local when
//     i % 2 < 1), a query of a local layer seeing keys less than window
//     positions back;
//   - the MLP is GeGLU with the tanh approximation of GELU;
//   - the output head is always the token embedding matrix (llama.cpp's
//     gemma2 reads no output.weight; a file with one is refused), then
//     final logit soft-capping: logits = cap · tanh(logits / cap), cap =
//     gemma2.final_logit_softcapping (default 30).
//
// The defaults are llama.cpp's, for files written before the converter
// stored those keys; gemma2.attention.layer_norm_rms_epsilon is required,
// as in llama.cpp. Rope scaling is refused. What gemma2 shares with gemma3
// is in package gemmacore; the attention and the head are written out here.
package gemma2

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemmacore"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "gemma2"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Pattern is the sliding-window pattern: every second block is global.
const Pattern = 2

// Defaults of the soft-capping values (llama.cpp's, those of every Gemma 2
// size).
const (
	DefaultAttnSoftcap  = 50
	DefaultFinalSoftcap = 30
)

// defaults are llama.cpp's choices for gemma2 files.
var defaults = gemmacore.Defaults{Pattern: Pattern, Window: 4096, GlobalBase: 10000, LargeLayers: 46}

// maxSoftcap bounds the soft-capping values: far above any model's (50,
// 30), finite.
const maxSoftcap = 1e6

// Config holds the hyper-parameters of one Gemma 2 model.
type Config struct {
	gemmacore.Config
	AttnSoftcap  float64 `json:"attn_softcap"`  // attention scores: cap · tanh(s / cap)
	FinalSoftcap float64 `json:"final_softcap"` // logits: cap · tanh(l / cap)
}

// FromGGUF reads the configuration of a gemma2 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	if _, ok := f.TensorDims(gemmacore.Output); ok {
		return nil, fmt.Errorf("gemma2: the file has %s; llama.cpp's gemma2 reads the output head from %s only (and refuses such a file): not supported", gemmacore.Output, arch.TokenEmbd)
	}
	g, err := gemmacore.Read(f, Arch, defaults)
	if err != nil {
		return nil, err
	}
	c := Config{Config: g}
	if c.AttnSoftcap, err = readSoftcap(f, "attn_logit_softcapping", DefaultAttnSoftcap); err != nil {
		return nil, err
	}
	if c.FinalSoftcap, err = readSoftcap(f, "final_logit_softcapping", DefaultFinalSoftcap); err != nil {
		return nil, err
	}
	return c, nil
}

// readSoftcap reads a soft-capping value (def if absent); it must be a
// finite positive number (llama.cpp divides by it).
func readSoftcap(f arch.Metadata, key string, def float64) (float64, error) {
	v, ok := f.Float(Arch + "." + key)
	if !ok {
		return def, nil
	}
	if !(v > 0 && v <= maxSoftcap) {
		return 0, fmt.Errorf("gemma2: %s.%s = %g is not a finite soft-capping value in (0, %g]", Arch, key, v, float64(maxSoftcap))
	}
	return v, nil
}

// Decode reads a configuration stored as JSON and checks it.
func Decode(data []byte) (arch.Config, error) {
	var c Config
	if err := nn.Unmarshal(data, Arch, &c, &c.Hyper); err != nil {
		return nil, err
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	for _, v := range []float64{c.AttnSoftcap, c.FinalSoftcap} {
		if !(v > 0 && v <= maxSoftcap) {
			return nil, fmt.Errorf("gemma2: impossible soft-capping value %g in the stored configuration", v)
		}
	}
	return c, nil
}

// Resid0 says what hidden state 0 is: the scaled embedding row.
func (c Config) Resid0() arch.Resid0 { return gemmacore.Resid0() }

// tensors lists the tensors the graph reads, in file order, with their
// GGUF dims: no q/k norms, the head tied to token_embd.
func (c Config) tensors() nn.Tensors { return c.Tensors(false, true) }

// Params returns the number of weights (the tied embeddings counted once).
func (c Config) Params() int64 { return c.tensors().Params() }

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string { return c.tensors().Names() }

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	return c.tensors().Check(Arch, name, dims, c.ShapeSource())
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights transposed to [in, out] (GGUF's gemma2 q/k rows are in
// rotate-half order already: nothing is permuted), the embedding matrix
// [vocab, dim], norms as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	return c.tensors().Prepare(Arch, name, dims, data, c.ShapeSource())
}

// LinearRows implements arch.QuantLinear: every linear weight may be kept
// block-quantized, its rows as in the GGUF.
func (c Config) LinearRows(name string, dims []uint64) ([]int, bool) {
	return nil, len(dims) == 2 && c.tensors().IsLinear(name)
}
