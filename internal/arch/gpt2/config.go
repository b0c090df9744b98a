// Package gpt2 describes OpenAI's GPT-2 (GGUF architecture "gpt2": the
// 124M … 1.5B models, and others converted to it) and builds an ONNX graph
// of it that takes token embeddings as input and exposes the measurement
// sites of package arch. GPT-2 is the model of the language-model
// replication lmood follows.
//
// GPT-2 as llama.cpp reads its GGUF files (src/models/gpt2.cpp):
//
//   - learned absolute positions: the first block sees the token's
//     embedding row plus position_embd's row for its position;
//   - each block: x + attention(LayerNorm(x)), then x + MLP(LayerNorm(x)),
//     LayerNorms with weight and bias (epsilon
//     gpt2.attention.layer_norm_epsilon);
//   - attention: one fused projection blk.i.attn_qkv with bias, output
//     [q | k | v]; queries scaled by 1/√head_dim, causal multi-head
//     attention without rotary embeddings; output projection with bias;
//   - MLP: down(gelu(up(x))) with biases, GELU in its tanh approximation
//     (ggml_gelu; Hugging Face's "gelu_new");
//   - a final LayerNorm, then output.weight, or the token embeddings when
//     the file has none (tied, as in the original checkpoints).
//
// What is nudged, and hidden state 0: lmood feeds and nudges the token
// embedding rows, the tensor Hugging Face calls inputs_embeds (the one the
// GPT-2 replication perturbed); the graph adds the position embeddings
// itself. Hidden state 0 (resid.0) is token row + position row, what the
// first block sees (Hugging Face's hidden_states[0]). The position rows are
// the same for the clean and the nudged prompt, so the nudge itself reaches
// the first block unchanged, but the input angle is measured between token
// rows, and resid.0's angle (with the position rows added) is smaller.
// Prompts are limited to gpt2.context_length tokens, the rows of
// position_embd.
package gpt2

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// Arch is the GGUF general.architecture value of this family.
const Arch = "gpt2"

func init() {
	arch.Register(arch.Family{Name: Arch, FromGGUF: FromGGUF, Decode: Decode})
}

// Config holds the hyper-parameters of one GPT-2 model.
type Config struct {
	nn.Hyper
	NormEps    float64 `json:"norm_eps"`    // LayerNorm epsilon
	TiedOutput bool    `json:"tied_output"` // logits reuse token_embd
}

// GGUF tensor names of the family.
const (
	positionEmbd = "position_embd.weight"
	outputNorm   = "output_norm"
	output       = "output.weight"
)

// FromGGUF reads the configuration of a gpt2 GGUF file.
func FromGGUF(f arch.File) (arch.Config, error) {
	h, err := nn.ReadHyper(f, Arch)
	if err != nil {
		return nil, err
	}
	if h.KVHeads != h.Heads {
		return nil, fmt.Errorf("gpt2: %s.attention.head_count_kv %d differs from head_count %d: GPT-2 has no grouped-query attention", Arch, h.KVHeads, h.Heads)
	}
	if h.HeadDim*h.Heads != h.Dim {
		return nil, fmt.Errorf("gpt2: %s.attention.key_length %d × head_count %d is not embedding_length %d", Arch, h.HeadDim, h.Heads, h.Dim)
	}
	_, hasOutput := f.TensorDims(output)
	c := Config{Hyper: h, TiedOutput: !hasOutput}
	if c.NormEps, err = nn.ReadFloat(f, Arch, "attention.layer_norm_epsilon", 1e-5, 0, nn.MaxEps); err != nil {
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
	if c.KVHeads != c.Heads || c.HeadDim*c.Heads != c.Dim {
		return nil, fmt.Errorf("gpt2: impossible stored configuration %+v", c)
	}
	return c, nn.CheckFinite(Arch, map[string]float64{"norm_eps": c.NormEps})
}

// tensors lists the tensors the graph reads, in file order, with their
// GGUF dims.
func (c Config) tensors() nn.Tensors {
	d, f := c.Dim, c.FFN
	vec := func(name string, n int) nn.Tensor { return nn.Tensor{Name: name, Dims: []int{n}, Kind: nn.Vector} }
	ts := nn.Tensors{
		{Name: arch.TokenEmbd, Dims: []int{d, c.Vocab}, Kind: nn.Rows},
		{Name: positionEmbd, Dims: []int{d, c.ContextLength}, Kind: nn.Rows},
	}
	for i := 0; i < c.Layers; i++ {
		b := func(n string) string { return nn.Block(i, n) }
		ts = append(ts,
			vec(b("attn_norm.weight"), d), vec(b("attn_norm.bias"), d),
			nn.Tensor{Name: b("attn_qkv.weight"), Dims: []int{d, 3 * d}}, vec(b("attn_qkv.bias"), 3*d),
			nn.Tensor{Name: b("attn_output.weight"), Dims: []int{d, d}}, vec(b("attn_output.bias"), d),
			vec(b("ffn_norm.weight"), d), vec(b("ffn_norm.bias"), d),
			nn.Tensor{Name: b("ffn_up.weight"), Dims: []int{d, f}}, vec(b("ffn_up.bias"), f),
			nn.Tensor{Name: b("ffn_down.weight"), Dims: []int{f, d}}, vec(b("ffn_down.bias"), d),
		)
	}
	ts = append(ts, vec(outputNorm+".weight", d), vec(outputNorm+".bias", d))
	if !c.TiedOutput {
		ts = append(ts, nn.Tensor{Name: output, Dims: []int{d, c.Vocab}})
	}
	return ts
}

func (c Config) shapeSource() string {
	return fmt.Sprintf("embedding_length %d, head_count %d, feed_forward_length %d, context_length %d, vocabulary %d",
		c.Dim, c.Heads, c.FFN, c.ContextLength, c.Vocab)
}

// TensorNames lists every tensor the graph reads, in file order.
func (c Config) TensorNames() []string { return c.tensors().Names() }

// CheckTensorShape checks a GGUF tensor's dims against the configuration.
func (c Config) CheckTensorShape(name string, dims []uint64) error {
	return c.tensors().Check(Arch, name, dims, c.shapeSource())
}

// PrepareWeight lays a dequantized GGUF tensor out for the graph: linear
// weights (the fused qkv included) transposed to [in, out], the token and
// position embeddings [rows, dim], norm weights and biases as vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	return c.tensors().Prepare(Arch, name, dims, data, c.shapeSource())
}

// Params returns the number of weights (tied embeddings counted once).
func (c Config) Params() int64 { return c.tensors().Params() }

// Resid0 says what hidden state 0 is: token row + position row (see the
// package documentation); the nudge applies to the token row alone.
func (Config) Resid0() arch.Resid0 {
	return arch.Resid0{What: "token row + position row (the nudge applies to the token row)", Nudged: false}
}
