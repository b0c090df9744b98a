package llama

import (
	"fmt"
	"strings"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/nn"
)

// GGUF tensor names of the llama family.
const (
	TokenEmbd  = arch.TokenEmbd
	OutputNorm = nn.OutputNorm
	Output     = "output.weight"
)

// Block returns the GGUF name of a tensor in block i, e.g.
// Block(3, "attn_q.weight") = "blk.3.attn_q.weight".
func Block(i int, name string) string { return fmt.Sprintf("blk.%d.%s", i, name) }

// TensorNames lists every tensor the graph needs, in file order.
func (c Config) TensorNames() []string {
	names := []string{TokenEmbd}
	for i := 0; i < c.Layers; i++ {
		names = append(names,
			Block(i, "attn_norm.weight"),
			Block(i, "attn_q.weight"), Block(i, "attn_k.weight"), Block(i, "attn_v.weight"))
		if c.QKVBias {
			names = append(names, Block(i, "attn_q.bias"), Block(i, "attn_k.bias"), Block(i, "attn_v.bias"))
		}
		names = append(names,
			Block(i, "attn_output.weight"),
			Block(i, "ffn_norm.weight"),
			Block(i, "ffn_gate.weight"), Block(i, "ffn_up.weight"), Block(i, "ffn_down.weight"))
	}
	names = append(names, OutputNorm)
	if !c.TiedOutput {
		names = append(names, Output)
	}
	return names
}

// PrepareWeight turns a dequantized GGUF tensor into the layout the graph
// reads. dims are GGUF dimensions (ne[0] varies fastest), so a linear layer
// y = W x arrives as row-major [out, in]. It returns the data and shape to
// store:
//
//   - linear weights are transposed to [in, out], so the graph computes x @ W;
//   - for architecture "llama", the rows of attn_q and attn_k are first
//     un-permuted: GGUF stores each head's rotary pairs interleaved
//     (dimension 2j, 2j+1), the graph uses the rotate-half order
//     (dimension j, j+hd/2);
//   - the embedding matrix stays [vocab, dim]; norms and biases are vectors.
func (c Config) PrepareWeight(name string, dims []uint64, data []float32) ([]float32, []int64, error) {
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	if uint64(len(data)) != n {
		return nil, nil, fmt.Errorf("llama: tensor %s: %d values for dims %v", name, len(data), dims)
	}
	switch {
	case name == TokenEmbd:
		if len(dims) != 2 || int(dims[0]) != c.Dim {
			return nil, nil, fmt.Errorf("llama: %s has dims %v, want [%d, vocab]", name, dims, c.Dim)
		}
		return data, []int64{int64(dims[1]), int64(dims[0])}, nil
	case strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, ".bias"):
		if len(dims) != 1 {
			return nil, nil, fmt.Errorf("llama: %s has dims %v, want a vector", name, dims)
		}
		return data, []int64{int64(dims[0])}, nil
	}
	if len(dims) != 2 {
		return nil, nil, fmt.Errorf("llama: %s has dims %v, want a matrix", name, dims)
	}
	in, out := int(dims[0]), int(dims[1])
	if wantIn, wantOut, ok := c.linearShape(name); ok && (in != wantIn || out != wantOut) {
		return nil, nil, fmt.Errorf("llama: %s is %d×%d (in×out), the configuration says %d×%d: the file is inconsistent", name, in, out, wantIn, wantOut)
	}
	rows := data // [out, in]
	if c.Arch == "llama" {
		switch {
		case strings.HasSuffix(name, "attn_q.weight"):
			rows = unpermuteRows(data, out, in, c.Heads)
		case strings.HasSuffix(name, "attn_k.weight"):
			rows = unpermuteRows(data, out, in, c.KVHeads)
		}
	}
	t := make([]float32, len(data))
	for o := 0; o < out; o++ {
		row := rows[o*in : (o+1)*in]
		for i, v := range row {
			t[i*out+o] = v
		}
	}
	return t, []int64{int64(in), int64(out)}, nil
}

// linearShape is the (in, out) size the configuration implies for a linear
// weight, by the suffix of its GGUF name.
func (c Config) linearShape(name string) (in, out int, ok bool) {
	q, kv := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	for _, s := range []struct {
		suffix  string
		in, out int
	}{
		{"attn_q.weight", c.Dim, q}, {"attn_k.weight", c.Dim, kv}, {"attn_v.weight", c.Dim, kv},
		{"attn_output.weight", q, c.Dim},
		{"ffn_gate.weight", c.Dim, c.FFN}, {"ffn_up.weight", c.Dim, c.FFN}, {"ffn_down.weight", c.FFN, c.Dim},
		{Output, c.Dim, c.Vocab},
	} {
		if strings.HasSuffix(name, s.suffix) {
			return s.in, s.out, true
		}
	}
	return 0, 0, false
}

// unpermuteRows reorders the rows of a [out, in] projection from GGUF's
// interleaved rotary layout to rotate-half layout, head by head: GGUF row
// h*hd + 2j + s holds what rotate-half expects at row h*hd + s*hd/2 + j.
func unpermuteRows(data []float32, out, in, heads int) []float32 {
	hd := out / heads
	half := hd / 2
	res := make([]float32, len(data))
	for h := 0; h < heads; h++ {
		for j := 0; j < half; j++ {
			for s := 0; s < 2; s++ {
				src := h*hd + 2*j + s
				dst := h*hd + s*half + j
				copy(res[dst*in:(dst+1)*in], data[src*in:(src+1)*in])
			}
		}
	}
	return res
}

// LinearRows implements arch.QuantLinear: every linear weight (attention,
// MLP, an untied output head) may be kept block-quantized. For
// architecture "llama" the rows of attn_q and attn_k are un-permuted to
// rotate-half order, as PrepareWeight does for float32 weights.
func (c Config) LinearRows(name string, dims []uint64) ([]int, bool) {
	if _, _, ok := c.linearShape(name); !ok || len(dims) != 2 {
		return nil, false
	}
	if c.Arch != "llama" {
		return nil, true
	}
	switch {
	case strings.HasSuffix(name, "attn_q.weight"):
		return unpermuteOrder(int(dims[1]), c.Heads), true
	case strings.HasSuffix(name, "attn_k.weight"):
		return unpermuteOrder(int(dims[1]), c.KVHeads), true
	}
	return nil, true
}

// unpermuteOrder is the row order unpermuteRows applies: rotate-half row
// h*hd + s*hd/2 + j comes from GGUF row h*hd + 2j + s.
func unpermuteOrder(out, heads int) []int {
	hd := out / heads
	half := hd / 2
	order := make([]int, out)
	for h := 0; h < heads; h++ {
		for j := 0; j < half; j++ {
			for s := 0; s < 2; s++ {
				order[h*hd+s*half+j] = h*hd + 2*j + s
			}
		}
	}
	return order
}

// Folds implements arch.Balanced: the rescalings of a gated pre-norm
// block (nn.GatedFolds), with Qwen2's value bias.
func (c Config) Folds(i int) []arch.Fold {
	return nn.GatedFolds(i, c.Heads, c.KVHeads, c.HeadDim, c.QKVBias)
}
