// Package shapes writes synthetic llama-family GGUF files at the shapes of
// real models (Qwen2.5 0.5B and 1.5B, Llama 3.2 3B, Llama 3.1 8B) with
// random weights in llama.cpp's Q4_K_M type mix, for benchmarks of
// conversion, memory and speed on models too large to keep in the test
// data. Weights are streamed to disk while the file is written, so an 8B
// model never sits in memory.
package shapes

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/lmood/lmood/internal/gguf"
)

// Shape is the architecture of a llama-family model.
type Shape struct {
	Name                 string
	Arch                 string // "llama" or "qwen2" (q/k/v biases)
	Layers, Dim, FFN     int
	Heads, KVHeads       int
	Vocab                int // embedding rows
	Tied                 bool
	RopeBase             float64
	Context              int
	Like                 string // the real model it copies
	ApproxParamsBillions float64
}

// Shapes are the benchmark shapes, smallest first. The Qwen shapes carry
// a separate output.weight, as the Qwen team's GGUFs of these tied models
// do (so llama.cpp gives the embedding Q5_0 and the head Q8_0).
var Shapes = []Shape{
	{Name: "qwen-0.5b", Arch: "qwen2", Layers: 24, Dim: 896, FFN: 4864, Heads: 14, KVHeads: 2, Vocab: 151936, RopeBase: 1e6, Context: 32768, Like: "Qwen2.5-0.5B", ApproxParamsBillions: 0.49},
	{Name: "qwen-1.5b", Arch: "qwen2", Layers: 28, Dim: 1536, FFN: 8960, Heads: 12, KVHeads: 2, Vocab: 151936, RopeBase: 1e6, Context: 32768, Like: "Qwen2.5-1.5B", ApproxParamsBillions: 1.5},
	{Name: "llama-3b", Arch: "llama", Layers: 28, Dim: 3072, FFN: 8192, Heads: 24, KVHeads: 8, Vocab: 128256, Tied: true, RopeBase: 5e5, Context: 131072, Like: "Llama-3.2-3B", ApproxParamsBillions: 3.2},
	{Name: "llama-8b", Arch: "llama", Layers: 32, Dim: 4096, FFN: 14336, Heads: 32, KVHeads: 8, Vocab: 128256, Tied: false, RopeBase: 5e5, Context: 131072, Like: "Llama-3.1-8B", ApproxParamsBillions: 8.0},
}

// Lookup finds a shape by name.
func Lookup(name string) (Shape, bool) {
	for _, s := range Shapes {
		if s.Name == name {
			return s, true
		}
	}
	return Shape{}, false
}

// Names lists the shapes' names.
func Names() []string {
	n := make([]string, len(Shapes))
	for i, s := range Shapes {
		n[i] = s.Name
	}
	return n
}

// useMoreBits is llama.cpp's choice of the layers that get more bits in the
// _M mixes: the first and last eighth, and every third layer between.
func useMoreBits(layer, layers int) bool {
	return layer < layers/8 || layer >= 7*layers/8 || (layer-layers/8)%3 == 2
}

// Q4KM returns the GGUF type llama.cpp's Q4_K_M mix (src/llama-quant.cpp)
// gives the tensor name of a model of this shape, whose rows have ne0
// values (GGUF's ne[0]); index is the tensor's position among the
// tensors of its name in the file (llama.cpp counts attn_v and ffn_down
// tensors in file order: the layer for files in layer order, which Write
// makes; files whose tensors are sorted as strings, blk.0, blk.1, blk.10,
// …, get the Q6_K layers shuffled accordingly):
// Q6_K for the output head (the embedding when tied), Q6_K for attn_v and
// ffn_down of the layers useMoreBits picks, Q4_K for every other matrix,
// F32 for vectors; a row length that is not a multiple of 256 falls back
// to the 32-value types (Q4_K → Q5_0, Q6_K → Q8_0), as llama.cpp does.
func (s Shape) Q4KM(name string, index int, ne0 uint64, dims int) gguf.Type {
	if dims < 2 {
		return gguf.F32
	}
	t := gguf.Q4_K
	switch {
	case name == "output.weight" || (s.Tied && name == "token_embd.weight"):
		t = gguf.Q6_K
		if ne0%256 != 0 {
			return gguf.Q8_0
		}
	case strings.HasSuffix(name, "attn_v.weight"), strings.HasSuffix(name, "ffn_down.weight"):
		if useMoreBits(index, s.Layers) {
			t = gguf.Q6_K
		}
	}
	if ne0%256 != 0 {
		switch t {
		case gguf.Q4_K:
			return gguf.Q5_0
		case gguf.Q6_K:
			return gguf.Q8_0
		}
	}
	return t
}

// tensorSpec is one tensor of the file: GGUF dims (ne[0] first), block.
type tensorSpec struct {
	name  string
	dims  []uint64
	layer int
}

func (s Shape) tensors() []tensorSpec {
	d, f := uint64(s.Dim), uint64(s.FFN)
	hd := uint64(s.Dim / s.Heads)
	q, kv := uint64(s.Heads)*hd, uint64(s.KVHeads)*hd
	ts := []tensorSpec{{"token_embd.weight", []uint64{d, uint64(s.Vocab)}, -1}}
	for i := 0; i < s.Layers; i++ {
		b := func(n string, dims ...uint64) { ts = append(ts, tensorSpec{fmt.Sprintf("blk.%d.%s", i, n), dims, i}) }
		b("attn_norm.weight", d)
		b("attn_q.weight", d, q)
		b("attn_k.weight", d, kv)
		b("attn_v.weight", d, kv)
		if s.Arch == "qwen2" {
			b("attn_q.bias", q)
			b("attn_k.bias", kv)
			b("attn_v.bias", kv)
		}
		b("attn_output.weight", q, d)
		b("ffn_norm.weight", d)
		b("ffn_gate.weight", d, f)
		b("ffn_up.weight", d, f)
		b("ffn_down.weight", f, d)
	}
	ts = append(ts, tensorSpec{"output_norm.weight", []uint64{d}, -1})
	if !s.Tied {
		ts = append(ts, tensorSpec{"output.weight", []uint64{d, uint64(s.Vocab)}, -1})
	}
	return ts
}

// Bytes is the size of the tensor data of the file Write makes (without
// metadata and alignment padding).
func (s Shape) Bytes() uint64 {
	var n uint64
	for _, t := range s.tensors() {
		typ := s.Q4KM(t.name, t.layer, t.dims[0], len(t.dims))
		info := gguf.TensorInfo{Dims: t.dims, Type: typ}
		b, _ := info.NumBytes()
		n += b
	}
	return n
}

// Options tunes Write.
type Options struct {
	Seed uint64
	// Vocab, if set, is a GGUF (e.g. llama.cpp's models/ggml-vocab-*.gguf)
	// whose tokenizer.* metadata is copied, so tokenization and the
	// tokenizer's memory are those of a real model. Without it the file
	// gets a byte-level BPE vocabulary of 256 bytes and 676 letter pairs.
	Vocab *gguf.File
}

// Write writes a GGUF of shape s with random weights in the Q4_K_M mix to
// path (through a temporary file renamed at the end, so an interrupted run
// leaves no file that looks complete).
func Write(path string, s Shape, opt Options) error {
	if s.Dim%s.Heads != 0 || s.Heads%s.KVHeads != 0 {
		return fmt.Errorf("shapes: %s: width %d, %d heads, %d kv heads do not divide", s.Name, s.Dim, s.Heads, s.KVHeads)
	}
	w := gguf.NewWriter()
	a := s.Arch
	w.AddString("general.architecture", a)
	w.AddString("general.name", "synthetic "+s.Name+" (random weights, shape of "+s.Like+")")
	w.AddUint32("general.file_type", 15) // LLAMA_FTYPE_MOSTLY_Q4_K_M
	w.AddUint32(a+".block_count", uint32(s.Layers))
	w.AddUint32(a+".context_length", uint32(s.Context))
	w.AddUint32(a+".embedding_length", uint32(s.Dim))
	w.AddUint32(a+".feed_forward_length", uint32(s.FFN))
	w.AddUint32(a+".attention.head_count", uint32(s.Heads))
	w.AddUint32(a+".attention.head_count_kv", uint32(s.KVHeads))
	w.AddFloat32(a+".attention.layer_norm_rms_epsilon", 1e-5)
	w.AddFloat32(a+".rope.freq_base", float32(s.RopeBase))
	if opt.Vocab != nil {
		n := 0
		for _, k := range opt.Vocab.Keys() {
			if strings.HasPrefix(k, "tokenizer.") {
				v, _ := opt.Vocab.Value(k)
				w.Set(k, v)
				n++
			}
		}
		toks, _ := opt.Vocab.Strings("tokenizer.ggml.tokens")
		if n == 0 || len(toks) == 0 {
			return fmt.Errorf("shapes: the vocabulary file has no tokenizer.ggml.tokens")
		}
		if len(toks) > s.Vocab {
			s.Vocab = len(toks)
		}
	} else {
		addByteVocab(w)
	}
	for i, t := range s.tensors() {
		t := t
		if t.name == "token_embd.weight" || t.name == "output.weight" {
			t.dims[1] = uint64(s.Vocab)
		}
		typ := s.Q4KM(t.name, t.layer, t.dims[0], len(t.dims))
		r := rand.New(rand.NewPCG(opt.Seed, uint64(i)))
		w.AddTensorStream(t.name, t.dims, typ, func(o io.Writer) error { return randomTensor(o, t, typ, r) })
	}
	if err := w.Err(); err != nil {
		return fmt.Errorf("shapes: %s: %w", s.Name, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("shapes: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := w.WriteTo(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("shapes: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("shapes: write %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("shapes: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("shapes: %w", err)
	}
	return nil
}

// randomTensor writes a tensor's data in chunks of rows: norm weights near
// 1, biases small normals, matrices random blocks whose values have a
// standard deviation of about 1/√(row length), as a trained model's.
func randomTensor(o io.Writer, t tensorSpec, typ gguf.Type, r *rand.Rand) error {
	ne0 := t.dims[0]
	if typ == gguf.F32 {
		b := make([]byte, 4*ne0)
		for j := uint64(0); j < ne0; j++ {
			v := 0.1 * r.NormFloat64()
			if strings.HasSuffix(t.name, "norm.weight") {
				v += 1
			}
			putF32(b[4*j:], float32(v))
		}
		_, err := o.Write(b)
		return err
	}
	rows := uint64(1)
	for _, d := range t.dims[1:] {
		rows *= d
	}
	perRow := int(ne0 / typ.BlockSize())
	scale := float32(1 / math.Sqrt(float64(ne0)) / codeSpread[typ])
	const chunk = 256
	for row := uint64(0); row < rows; row += chunk {
		n := min(chunk, rows-row)
		b, err := gguf.RandomBlocks(typ, perRow*int(n), scale, r)
		if err != nil {
			return err
		}
		centre(b, typ)
		if _, err := o.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// codeSpread is the standard deviation of a block's value over its scale
// (d) for random codes and sub-scales: Q4_K d·sc·q − dmin·m with
// sc, m in 0..63, q in 0..15 and dmin = 7.5·d (see centre); Q5_K the same
// with q in 0..31; Q6_K d·sc·(q−32) with int8 sc; Q8_0 d·int8; Q5_0
// d·(q−16); Q4_0 d·(q−8).
var codeSpread = map[gguf.Type]float64{
	gguf.Q4_K: 256, gguf.Q5_K: 500, gguf.Q6_K: 1370, gguf.Q8_0: 74, gguf.Q5_0: 9.2, gguf.Q4_0: 4.6,
}

// centre sets the minimum of Q4_K/Q5_K blocks (value = d·sc·q − dmin·m)
// so that the values average about zero, as trained weights do.
func centre(b []byte, typ gguf.Type) {
	var half float32
	switch typ {
	case gguf.Q4_K:
		half = 7.5
	case gguf.Q5_K:
		half = 15.5
	default:
		return
	}
	ts := int(typ.TypeSize())
	for k := 0; k+ts <= len(b); k += ts {
		d := gguf.F16ToF32(uint16(b[k]) | uint16(b[k+1])<<8)
		dm := gguf.F32ToF16(d * half)
		b[k+2], b[k+3] = byte(dm), byte(dm>>8)
	}
}

func putF32(b []byte, v float32) {
	u := math.Float32bits(v)
	b[0], b[1], b[2], b[3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
}

// addByteVocab adds a byte-level BPE vocabulary: GPT-2's 256 byte
// stand-ins, then the 676 merges of two lowercase letters.
func addByteVocab(w *gguf.Writer) {
	var tokens []string
	for b := 0; b < 256; b++ {
		tokens = append(tokens, byteRune(b))
	}
	var merges []string
	for x := 'a'; x <= 'z'; x++ {
		for y := 'a'; y <= 'z'; y++ {
			merges = append(merges, string(x)+" "+string(y))
			tokens = append(tokens, string(x)+string(y))
		}
	}
	w.AddString("tokenizer.ggml.model", "gpt2")
	w.AddString("tokenizer.ggml.pre", "gpt-2")
	w.AddStrings("tokenizer.ggml.tokens", tokens)
	w.AddStrings("tokenizer.ggml.merges", merges)
	w.AddBool("tokenizer.ggml.add_bos_token", false)
}

// byteRune is GPT-2's printable stand-in for byte b.
func byteRune(b int) string {
	if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
		return string(rune(b))
	}
	n := 0 // how many non-printable bytes come before b
	for c := 0; c < b; c++ {
		if !(c >= '!' && c <= '~' || c >= 0xA1 && c <= 0xAC || c >= 0xAE && c <= 0xFF) {
			n++
		}
	}
	return string(rune(256 + n))
}
