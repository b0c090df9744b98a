// Package qwen3 describes Alibaba's Qwen3 dense text models (GGUF
// architecture "qwen3", e.g. Qwen3-0.6B … 32B) and builds an ONNX graph of
// them that takes token embeddings as input and exposes the measurement
// sites of package arch.
//
// Qwen3 as llama.cpp reads its GGUF files:
//
//   - hidden state 0 (resid.0) is the token's embedding row, unscaled: what
//     the first block sees, and what lmood nudges;
//   - each block: x + attention(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)),
//     as in Llama;
//   - attention: q, k, v projections without bias (unlike Qwen2), a
//     per-head RMSNorm on queries and keys (weights of head-dim length,
//     shared by all heads) before rotate-half rotary embeddings, queries
//     scaled by 1/√key_length, grouped-query attention; the head dim
//     (attention.key_length) need not be embedding_length/head_count;
//   - the output head is tied to the token embeddings unless the file has
//     output.weight. Rope scaling (e.g. YaRN for long contexts) is refused.
package qwen3

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "qwen3"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Config holds the hyper-parameters of one Qwen3 model.
type Config struct {
	nn.Hyper
	RMSEps     float64 `json:"rms_eps"`     // RMSNorm epsilon
	RopeTheta  float64 `json:"rope_theta"`  // rotary base
	TiedOutput bool    `json:"tied_output"` // logits reuse token_embd
}

// GGUF tensor names of the family.
const (
	outputNorm = nn.OutputNorm
	output     = "output.weight"
)

// FromGGUF reads the configuration of a qwen3 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	h, err := nn.ReadHyper(f, Arch)
	if err != nil {
		return nil, err
	}
	_, hasOutput := f.TensorDims(output)
	c := Config{Hyper: h, TiedOutput: !hasOutput}
	if c.RMSEps, err = nn.ReadFloat(f, Arch, "attention.layer_norm_rms_epsilon", 1e-6, 0, nn.MaxEps); err != nil {
		return nil, err
	}
	if c.RopeTheta, err = nn.ReadRope(f, Arch, c.HeadDim, 1e6); err != nil {
		return nil, err
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
		return nil, fmt.Errorf("qwen3: stored head dimension %d is odd", c.HeadDim)
	}
	return c, nn.CheckFinite(Arch, map[string]float64{"rms_eps": c.RMSEps, "rope_theta": c.RopeTheta})
}

// tensors lists the tensors the graph reads, in file order, with their
// GGUF dims.
func (c Config) tensors() nn.Tensors {
	d, hd, f := c.Dim, c.HeadDim, c.FFN
	q, kv := c.Heads*hd, c.KVHeads*hd
	ts := nn.Tensors{{Name: arch.TokenEmbd, Dims: []int{d, c.Vocab}, Kind: nn.Rows}}
	for i := 0; i < c.Layers; i++ {
		b := func(n string) string { return nn.Block(i, n) }
		ts = append(ts,
			nn.Tensor{Name: b("attn_norm.weight"), Dims: []int{d}, Kind: nn.Vector},
			nn.Tensor{Name: b("attn_q.weight"), Dims: []int{d, q}},
			nn.Tensor{Name: b("attn_q_norm.weight"), Dims: []int{hd}, Kind: nn.Vector},
			nn.Tensor{Name: b("attn_k.weight"), Dims: []int{d, kv}},
			nn.Tensor{Name: b("attn_k_norm.weight"), Dims: []int{hd}, Kind: nn.Vector},
			nn.Tensor{Name: b("attn_v.weight"), Dims: []int{d, kv}},
			nn.Tensor{Name: b("attn_output.weight"), Dims: []int{q, d}},
			nn.Tensor{Name: b("ffn_norm.weight"), Dims: []int{d}, Kind: nn.Vector},
			nn.Tensor{Name: b("ffn_gate.weight"), Dims: []int{d, f}},
			nn.Tensor{Name: b("ffn_up.weight"), Dims: []int{d, f}},
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
	return fmt.Sprintf("embedding_length %d, head_count %d, head_count_kv %d, key_length %d, feed_forward_length %d, vocabulary %d",
		c.Dim, c.Heads, c.KVHeads, c.HeadDim, c.FFN, c.Vocab)
}

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string { return c.tensors().Names() }

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	return c.tensors().Check(Arch, name, dims, c.shapeSource())
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights transposed to [in, out] (qwen3's q/k rows are already in
// rotate-half order: nothing is permuted), the embedding matrix
// [vocab, dim], norms as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	return c.tensors().Prepare(Arch, name, dims, data, c.shapeSource())
}

// Params returns the number of weights (tied embeddings counted once).
func (c Config) Params() int64 { return c.tensors().Params() }

// Resid0 says what hidden state 0 is: the token's embedding row.
func (Config) Resid0() arch.Resid0 { return nn.TokenRow }
