package testutil

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
)

// Tiny describes a synthetic llama-family model small enough for unit tests.
type Tiny struct {
	Arch             string // "llama", "qwen2" or "gemma3" (or anything, to test refusals)
	Layers, Dim, FFN int
	Heads, KVHeads   int
	Vocab            int  // at least 260: the byte alphabet, merges, 4 control tokens
	Untied           bool // add a separate output.weight
	Seed             uint64
	SkipTensor       string // leave this tensor out (to test errors)
	RawType          gguf.Type
	RawTensor        string // store this tensor with RawType and garbage bytes
	// Quant stores every linear weight (not the embeddings) as random
	// blocks of this GGUF type (see gguf.RandomBlocks); 0 keeps F32.
	// Dim and FFN must then be multiples of its block size.
	Quant gguf.Type
	// NoSpecials leaves the four control tokens (BOS, EOS, …) out of the
	// vocabulary: merges fill it instead (llama.cpp cannot load it then).
	NoSpecials bool
	// Outliers multiplies every 16th input channel of each float32 linear
	// weight of the blocks by this factor (0: none), as trained models have
	// a few input channels of much larger weights than the others.
	Outliers float64
	// QuantEmbd stores the embedding matrix as Quant blocks too (as
	// llama.cpp's mixes do).
	QuantEmbd bool
}

// DefaultTiny is a 2-block model with grouped-query attention.
func DefaultTiny() Tiny {
	return Tiny{Arch: "llama", Layers: 2, Dim: 32, FFN: 48, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 7}
}

// byteAlphabet returns GPT-2's printable stand-ins for the 256 byte values.
func byteAlphabet() []string {
	var direct []int
	for b := '!'; b <= '~'; b++ {
		direct = append(direct, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		direct = append(direct, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		direct = append(direct, b)
	}
	isDirect := map[int]bool{}
	for _, b := range direct {
		isDirect[b] = true
	}
	out := make([]string, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if isDirect[b] {
			out[b] = string(rune(b))
		} else {
			out[b] = string(rune(256 + n))
			n++
		}
	}
	return out
}

// tinySpecials end the tiny vocabulary, as the control tokens of a real
// one do. llama.cpp's loader needs them in a model named like Phi-3 (it
// looks them up by text to set their strip attributes).
var tinySpecials = []string{"<unk>", "<s>", "</s>", "<|endoftext|>"}

// AddTinyVocab adds a GPT-2-style byte-level BPE tokenizer of vocab tokens
// (at least 260) to w, for synthetic models of any family: the byte
// alphabet (IDs 0-255), merges of letter pairs, and four control tokens
// (tinySpecials; <s> is BOS, </s> EOS, never added), with token types, so
// that llama.cpp loads it too.
func AddTinyVocab(w *gguf.Writer, vocab int) { addTinyVocab(w, vocab, true) }

func addTinyVocab(w *gguf.Writer, vocab int, specials bool) {
	tokens := byteAlphabet()
	var merges []string
	n := vocab
	if specials {
		n -= len(tinySpecials)
	}
	for len(tokens) < n {
		x, y := tokens[65+len(merges)%26], tokens[97+len(merges)/26%26]
		merges = append(merges, x+" "+y)
		tokens = append(tokens, x+y)
	}
	w.AddString("tokenizer.ggml.model", "gpt2")
	w.AddString("tokenizer.ggml.pre", "gpt-2")
	w.AddStrings("tokenizer.ggml.merges", merges)
	w.AddBool("tokenizer.ggml.add_bos_token", false)
	if !specials {
		w.AddStrings("tokenizer.ggml.tokens", tokens)
		return
	}
	types := make([]int32, len(tokens), vocab)
	for i := range types {
		types[i] = 1 // normal
	}
	first := len(tokens)
	tokens = append(tokens, tinySpecials...)
	types = append(types, 2, 3, 3, 3) // unknown, control ×3
	w.AddStrings("tokenizer.ggml.tokens", tokens)
	w.AddInt32s("tokenizer.ggml.token_type", types)
	w.AddUint32("tokenizer.ggml.unknown_token_id", uint32(first))
	w.AddUint32("tokenizer.ggml.bos_token_id", uint32(first+1))
	w.AddUint32("tokenizer.ggml.eos_token_id", uint32(first+2))
	w.AddBool("tokenizer.ggml.add_eos_token", false)
}

// WriteTiny writes the synthetic model as a GGUF file and returns its path.
// Weights are F32 random normals scaled like a trained model's.
func WriteTiny(t testing.TB, m Tiny) string {
	t.Helper()
	r := rand.New(rand.NewPCG(m.Seed, 99))
	w := gguf.NewWriter()
	a := m.Arch
	w.AddString("general.architecture", a)
	w.AddString("general.name", "tiny "+a)
	w.AddUint32(a+".block_count", uint32(m.Layers))
	w.AddUint32(a+".context_length", 256)
	w.AddUint32(a+".embedding_length", uint32(m.Dim))
	w.AddUint32(a+".feed_forward_length", uint32(m.FFN))
	w.AddUint32(a+".attention.head_count", uint32(m.Heads))
	w.AddUint32(a+".attention.head_count_kv", uint32(m.KVHeads))
	w.AddFloat32(a+".attention.layer_norm_rms_epsilon", 1e-6)
	w.AddFloat32(a+".rope.freq_base", 10000)
	gemma := a == "gemma3" // its extra norms, and a sliding window of 3
	if gemma {
		w.AddUint32(a+".attention.sliding_window", 3)
	}

	addTinyVocab(w, m.Vocab, !m.NoSpecials)

	tensor := func(name string, scale float64, dims ...uint64) {
		if name == m.SkipTensor {
			return
		}
		n := uint64(1)
		for _, d := range dims {
			n *= d
		}
		if name == m.RawTensor {
			w.AddTensorRaw(name, dims, m.RawType, make([]byte, n/m.RawType.BlockSize()*m.RawType.TypeSize()))
			return
		}
		if m.Quant != 0 && len(dims) == 2 && (name != "token_embd.weight" || m.QuantEmbd) {
			// Random codes; the scale makes values of about the wanted size.
			per := float32(scale) / 8
			if m.Quant.BlockSize() == 256 {
				per = float32(scale) / 250
			}
			raw, err := gguf.RandomBlocks(m.Quant, int(n/m.Quant.BlockSize()), per, r)
			if err != nil {
				t.Fatalf("tiny GGUF: %v", err)
			}
			w.AddTensorRaw(name, dims, m.Quant, raw)
			return
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * scale)
			if m.Outliers != 0 && len(dims) == 2 && strings.HasPrefix(name, "blk.") && uint64(i)%dims[0]%16 == 0 {
				data[i] *= float32(m.Outliers)
			}
		}
		w.AddTensorF32(name, dims, data)
	}
	d, hd := uint64(m.Dim), uint64(m.Dim/m.Heads)
	normOf := func(name string, n uint64) {
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(1 + 0.1*r.NormFloat64())
		}
		w.AddTensorF32(name, []uint64{n}, data)
	}
	norm := func(name string) { normOf(name, d) }
	q, kv, f := uint64(m.Heads)*hd, uint64(m.KVHeads)*hd, uint64(m.FFN)
	s := 1 / float64(m.Dim)
	tensor("token_embd.weight", 1, d, uint64(m.Vocab))
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		norm(p + "attn_norm.weight")
		tensor(p+"attn_q.weight", 3*s, d, q)
		tensor(p+"attn_k.weight", 3*s, d, kv)
		tensor(p+"attn_v.weight", 3*s, d, kv)
		if gemma {
			normOf(p+"attn_q_norm.weight", hd)
			normOf(p+"attn_k_norm.weight", hd)
		}
		if m.Arch == "qwen2" {
			tensor(p+"attn_q.bias", 0.5, q)
			tensor(p+"attn_k.bias", 0.5, kv)
			tensor(p+"attn_v.bias", 0.5, kv)
		}
		tensor(p+"attn_output.weight", 3*s, q, d)
		if gemma {
			norm(p + "post_attention_norm.weight")
		}
		norm(p + "ffn_norm.weight")
		tensor(p+"ffn_gate.weight", 3*s, d, f)
		tensor(p+"ffn_up.weight", 3*s, d, f)
		tensor(p+"ffn_down.weight", 3*s, f, d)
		if gemma {
			norm(p + "post_ffw_norm.weight")
		}
	}
	norm("output_norm.weight")
	if m.Untied {
		tensor("output.weight", 3*s, d, uint64(m.Vocab))
	}
	path := filepath.Join(t.TempDir(), "tiny-"+a+".gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatalf("write tiny GGUF: %v", err)
	}
	return path
}

// TinyGGUF writes a synthetic GGUF of one architecture with random F32
// weights drawn from R in call order. The tensor named Bad gets a wrong
// shape (to test refusals): a matrix one more on its last axis, a norm
// weight one value more.
type TinyGGUF struct {
	*gguf.Writer
	Arch string
	R    *rand.Rand
	Bad  string
}

// NewTinyGGUF starts a GGUF of architecture arch ("tiny <arch>") with the
// random stream (seed, stream).
func NewTinyGGUF(arch string, seed, stream uint64) *TinyGGUF {
	w := gguf.NewWriter()
	w.AddString("general.architecture", arch)
	w.AddString("general.name", "tiny "+arch)
	return &TinyGGUF{Writer: w, Arch: arch, R: rand.New(rand.NewPCG(seed, stream))}
}

// Uint sets the metadata <arch>.key.
func (g *TinyGGUF) Uint(key string, v int) { g.AddUint32(g.Arch+"."+key, uint32(v)) }

// Float sets the metadata <arch>.key.
func (g *TinyGGUF) Float(key string, v float64) { g.AddFloat32(g.Arch+"."+key, float32(v)) }

// Meta sets (or overrides) the metadata <arch>.key for every key of m.
func (g *TinyGGUF) Meta(m map[string]gguf.Value) {
	for k, v := range m {
		g.Set(g.Arch+"."+k, v)
	}
}

// Normal adds a tensor of GGUF dims (ne[0] first) holding normals times
// scale.
func (g *TinyGGUF) Normal(name string, scale float64, dims ...uint64) {
	if name == g.Bad {
		dims[len(dims)-1]++
	}
	n := uint64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(g.R.NormFloat64() * scale)
	}
	g.AddTensorF32(name, dims, data)
}

// Norm adds a norm weight of n values 1 + 0.3·normal.
func (g *TinyGGUF) Norm(name string, n int) {
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(1 + 0.3*g.R.NormFloat64())
	}
	if name == g.Bad {
		data = append(data, 1)
	}
	g.AddTensorF32(name, []uint64{uint64(len(data))}, data)
}

// Write writes the file into a temporary directory of t and returns its
// path.
func (g *TinyGGUF) Write(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tiny-"+g.Arch+".gguf")
	if err := g.WriteFile(path); err != nil {
		t.Fatalf("write tiny GGUF: %v", err)
	}
	return path
}
