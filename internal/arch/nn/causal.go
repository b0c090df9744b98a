package nn

import (
	"math"

	"github.com/lmood/lmood/internal/onnx"
)

// OutputNorm is the GGUF name of the final norm's weight.
const OutputNorm = "output_norm.weight"

// Causal is the part of a graph builder that the RMSNorm, rotary,
// causally masked families (llama, qwen2, qwen3, phi3) share: hidden state 0
// is the token embedding rows, the rotary tables and the causal mask are
// built once for the blocks, and the norm block i+1 reads is blk.i's
// attn_norm (output_norm after the last block).
type Causal struct {
	*Graph
	Layers   int     // blocks in the model
	RopeDim  int     // rotated dimensions per head
	RopeBase float64 // rotary base
	Eps      float64 // RMSNorm epsilon

	Rotary Rotary     // built by Embed
	Query  Rotary     // Rotary scaled by 1/√RopeDim: rotates and scales queries
	Mask   onnx.Value // [seq, seq]: 0 on and below the diagonal, -max above
}

// Embed is a Decoder's Embed: h itself, with the rotary tables and the
// causal mask built when blocks follow.
func (c *Causal) Embed(h onnx.Value, blocks bool) onnx.Value {
	if blocks {
		c.Rotary, c.Mask = c.CausalRotary(h, c.RopeDim, c.RopeBase)
		c.Query = c.ScaledRotary(c.Rotary, 1/math.Sqrt(float64(c.RopeDim)))
	}
	return h
}

// Norm is a Decoder's Norm: the RMSNorm block i+1 reads (attn_norm of GGUF
// blk.i) or, after the last block, the one the output head reads.
func (c *Causal) Norm(i int, h onnx.Value) onnx.Value {
	if i == c.Layers {
		return c.RMSNorm(h, c.Weight(OutputNorm), c.Eps)
	}
	return c.RMSNorm(h, c.Weight(Block(i, "attn_norm.weight")), c.Eps)
}
