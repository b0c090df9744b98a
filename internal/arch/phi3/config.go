// Package phi3 describes Microsoft's Phi-3 family (GGUF architecture
// "phi3": Phi-3-mini/medium 4k, Phi-4 14B) and builds an ONNX graph of it
// that takes token embeddings as input and exposes the measurement sites of
// package arch.
//
// Phi-3 as llama.cpp reads its GGUF files (src/models/phi3.cpp):
//
//   - hidden state 0 (resid.0) is the token's embedding row, unscaled: what
//     the first block sees, and what lmood nudges;
//   - each block: x + attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x));
//   - attention: one fused projection blk.i.attn_qkv whose output is
//     [q | k | v] (files with separate attn_q/k/v are read too), no biases,
//     rotate-half rotary embeddings over the whole head, queries scaled by
//     1/√head_dim, causal grouped-query attention over the whole prompt
//     (llama.cpp disables Phi-3's sliding window; so does lmood);
//   - the MLP's gate and up projections are fused in blk.i.ffn_up, output
//     [gate | up]: down(silu(gate) · up);
//   - the output head is output.weight (tied to the token embeddings if the
//     file has none).
//
// Rope scaling is refused, never approximated: the 128k-context models
// (Phi-3-mini-128k, Phi-3.5, Phi-4-mini) carry LongRoPE factors
// (rope_factors_long/short tensors, rope.scaling.* metadata) that lmood does
// not implement.
package phi3

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "phi3"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Config holds the hyper-parameters of one Phi-3 model.
type Config struct {
	nn.Hyper
	RMSEps     float64 `json:"rms_eps"`     // RMSNorm epsilon
	RopeTheta  float64 `json:"rope_theta"`  // rotary base
	FusedQKV   bool    `json:"fused_qkv"`   // q, k, v in one blk.i.attn_qkv tensor
	TiedOutput bool    `json:"tied_output"` // logits reuse token_embd
}

// GGUF tensor names of the family.
const (
	outputNorm = nn.OutputNorm
	output     = "output.weight"
)

// FromGGUF reads the configuration of a phi3 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	for _, n := range []string{"rope_factors_long.weight", "rope_factors_short.weight", "blk.0.rope_factors_long.weight"} {
		if _, ok := f.TensorDims(n); ok {
			return nil, fmt.Errorf("phi3: the file carries LongRoPE factors (%s): rope scaling \"longrope\" is not supported by lmood's phi3 graph; it would compute other hidden states than the model (Phi-3 4k-context models have none)", n)
		}
	}
	h, err := nn.ReadHyper(f, Arch)
	if err != nil {
		return nil, err
	}
	_, hasOutput := f.TensorDims(output)
	_, fused := f.TensorDims(nn.Block(0, "attn_qkv.weight"))
	c := Config{Hyper: h, TiedOutput: !hasOutput, FusedQKV: fused}
	if c.RMSEps, err = nn.ReadFloat(f, Arch, "attention.layer_norm_rms_epsilon", 1e-5, 0, nn.MaxEps); err != nil {
		return nil, err
	}
	if c.RopeTheta, err = nn.ReadRope(f, Arch, c.HeadDim, 10000); err != nil {
		return nil, err
	}
	if v, ok := f.Float(Arch + ".rope.scaling.attn_factor"); ok && v != 1 {
		return nil, fmt.Errorf("phi3: %s.rope.scaling.attn_factor = %g: rope scaling is not supported by lmood's phi3 graph", Arch, v)
	}
	return c, nil
}

// Decode reads a configuration stored as JSON and checks it.
func Decode(data []byte) (arch.Config, error) {
	var c Config
	if err := nn.Unmarshal(data, Arch, &c, &c.Hyper); err != nil {
		return nil, err
	}
	if c.HeadDim%2 != 0 {
		return nil, fmt.Errorf("phi3: stored head dimension %d is odd", c.HeadDim)
	}
	return c, nn.CheckFinite(Arch, map[string]float64{"rms_eps": c.RMSEps, "rope_theta": c.RopeTheta})
}

// tensors lists the tensors the graph reads, in file order, with their
// GGUF dims.
func (c Config) tensors() nn.Tensors {
	d, f := c.Dim, c.FFN
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	ts := nn.Tensors{{Name: arch.TokenEmbd, Dims: []int{d, c.Vocab}, Kind: nn.Rows}}
	for i := 0; i < c.Layers; i++ {
		b := func(n string) string { return nn.Block(i, n) }
		ts = append(ts, nn.Tensor{Name: b("attn_norm.weight"), Dims: []int{d}, Kind: nn.Vector})
		if c.FusedQKV {
			ts = append(ts, nn.Tensor{Name: b("attn_qkv.weight"), Dims: []int{d, q + 2*kv}})
		} else {
			ts = append(ts,
				nn.Tensor{Name: b("attn_q.weight"), Dims: []int{d, q}},
				nn.Tensor{Name: b("attn_k.weight"), Dims: []int{d, kv}},
				nn.Tensor{Name: b("attn_v.weight"), Dims: []int{d, kv}})
		}
		ts = append(ts,
			nn.Tensor{Name: b("attn_output.weight"), Dims: []int{q, d}},
			nn.Tensor{Name: b("ffn_norm.weight"), Dims: []int{d}, Kind: nn.Vector},
			nn.Tensor{Name: b("ffn_up.weight"), Dims: []int{d, 2 * f}},
			nn.Tensor{Name: b("ffn_down.weight"), Dims: []int{f, d}},
		)
	}
	ts = append(ts, nn.Tensor{Name: outputNorm, Dims: []int{d}, Kind: nn.Vector})
	if !c.TiedOutput {
		ts = append(ts, nn.Tensor{Name: output, Dims: []int{d, c.Vocab}})
	}
	return ts
}

func (c Config) shapeSource() string {
	return fmt.Sprintf("embedding_length %d, head_count %d, head_count_kv %d, head dim %d, feed_forward_length %d (ffn_up holds gate and up: 2×), vocabulary %d",
		c.Dim, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
}

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string { return c.tensors().Names() }

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	return c.tensors().Check(Arch, name, dims, c.shapeSource())
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights (fused ones included) transposed to [in, out], so the fused
// outputs stay consecutive column ranges; q/k rows are in rotate-half order
// already (nothing is permuted); the embedding matrix [vocab, dim]; norms
// as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	return c.tensors().Prepare(Arch, name, dims, data, c.shapeSource())
}

// Params returns the number of weights (tied embeddings counted once).
func (c Config) Params() int64 { return c.tensors().Params() }

// Resid0 says what hidden state 0 is: the token's embedding row.
func (Config) Resid0() arch.Resid0 { return nn.TokenRow }
