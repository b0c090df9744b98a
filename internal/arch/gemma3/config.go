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
//     rotary base gemma3.rope.freq_base_swa, default 10,000) alternate
//     with one global layer (rotary base
//     gemma3.rope.freq_base, with linear rope scaling if the metadata has
//     it): block i (0-based) is global when (i+1) % 6 == 0, llama.cpp's
//     pattern for gemma3 (gemma3.attention.sliding_window_pattern may set
//     another period);
//   - the MLP is GeGLU with the tanh approximation of GELU;
//   - the output head is tied to the token embeddings unless the file has
//     output.weight. The released Gemma 3 models have no logit
//     soft-capping; a file that sets gemma3.final_logit_softcapping gets
//     it on the logits (as llama.cpp does), one that asks for attention
//     soft-capping is refused (llama.cpp's gemma3 does not read it).
//
// What gemma3 shares with gemma2 (configuration reading, masks, norms, the
// MLP, the head) is in package gemmacore; the attention, with its q/k
// norms, is written out here.
package gemma3

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/gemmacore"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "gemma3"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Pattern is the sliding-window pattern: every Pattern-th block is global.
const Pattern = 6

// LocalRopeBase is the rotary base of the sliding-window layers unless
// the file sets gemma3.rope.freq_base_swa.
const LocalRopeBase = 10000

// defaults are llama.cpp's choices for gemma3 files.
var defaults = gemmacore.Defaults{Pattern: Pattern, LocalBase: LocalRopeBase, GlobalBase: 1e6, LinearRope: true, LargeLayers: 62}

// Config holds the hyper-parameters of one Gemma 3 model.
type Config struct {
	gemmacore.Config
	TiedOutput   bool    `json:"tied_output"`             // logits reuse token_embd
	FinalSoftcap float64 `json:"final_softcap,omitempty"` // logits: cap · tanh(l / cap); 0 = none
}

// maxSoftcap bounds a soft-capping value (a finite, sane number).
const maxSoftcap = 1e6

// FromGGUF reads the configuration of a gemma3 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	g, err := gemmacore.Read(f, Arch, defaults)
	if err != nil {
		return nil, err
	}
	// llama.cpp's gemma3 reads no attention soft-capping: a file that asks
	// for it is refused rather than read one way or the other.
	if v, ok := f.Float(Arch + ".attn_logit_softcapping"); ok && v != 0 {
		return nil, fmt.Errorf("gemma3: %s.attn_logit_softcapping = %g: attention soft-capping is not supported for gemma3", Arch, v)
	}
	c := Config{Config: g}
	// Final logit soft-capping is optional (0 or absent = none, as in the
	// released Gemma 3 models); llama.cpp applies it when set.
	if v, ok := f.Float(Arch + ".final_logit_softcapping"); ok && v != 0 {
		if !(v > 0 && v <= maxSoftcap) {
			return nil, fmt.Errorf("gemma3: %s.final_logit_softcapping = %g is not a finite soft-capping value in (0, %g]", Arch, v, float64(maxSoftcap))
		}
		c.FinalSoftcap = v
	}
	_, hasOutput := f.TensorDims(gemmacore.Output)
	c.TiedOutput = !hasOutput
	return c, nil
}

// Decode reads a configuration stored as JSON and checks it.
func Decode(data []byte) (arch.Config, error) {
	var c Config
	if err := nn.Unmarshal(data, Arch, &c, &c.Hyper); err != nil {
		return nil, err
	}
	if !(c.FinalSoftcap >= 0 && c.FinalSoftcap <= maxSoftcap) {
		return nil, fmt.Errorf("gemma3: stored final_softcap %g is outside [0, %g]", c.FinalSoftcap, float64(maxSoftcap))
	}
	return c, c.Check()
}

// Resid0 says what hidden state 0 is: the scaled embedding row.
func (c Config) Resid0() arch.Resid0 { return gemmacore.Resid0() }

// tensors lists the tensors the graph reads, in file order, with their
// GGUF dims (q/k norms included).
func (c Config) tensors() nn.Tensors { return c.Tensors(true, c.TiedOutput) }

// Params returns the number of weights (tied embeddings counted once).
func (c Config) Params() int64 { return c.tensors().Params() }

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string { return c.tensors().Names() }

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	return c.tensors().Check(Arch, name, dims, c.ShapeSource())
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights transposed to [in, out] (the graph computes x @ W; GGUF's
// gemma3 q/k rows are already in rotate-half order, so nothing is
// permuted), the embedding matrix [vocab, dim], norms as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	return c.tensors().Prepare(Arch, name, dims, data, c.ShapeSource())
}

// LinearRows implements arch.QuantLinear: every linear weight may be kept
// block-quantized, its rows as in the GGUF (gemma3's q/k rows are already
// in rotate-half order).
func (c Config) LinearRows(name string, dims []uint64) ([]int, bool) {
	return nil, len(dims) == 2 && c.tensors().IsLinear(name)
}
