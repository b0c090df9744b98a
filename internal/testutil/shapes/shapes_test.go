package shapes

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
)

// TestUseMoreBits checks the layer choice against llama.cpp's rule worked
// out by hand for 32 layers: 0-3, 28-31, and 6, 9, …, 27.
func TestUseMoreBits(t *testing.T) {
	want := map[int]bool{0: true, 1: true, 2: true, 3: true, 6: true, 9: true, 12: true, 15: true, 18: true, 21: true, 24: true, 27: true, 28: true, 29: true, 30: true, 31: true}
	for i := 0; i < 32; i++ {
		if got := useMoreBits(i, 32); got != want[i] {
			t.Errorf("layer %d: %v, want %v", i, got, want[i])
		}
	}
}

func TestQ4KM(t *testing.T) {
	l8, _ := Lookup("llama-8b")
	q05, _ := Lookup("qwen-0.5b")
	cases := []struct {
		s     Shape
		name  string
		layer int
		ne0   uint64
		dims  int
		want  gguf.Type
	}{
		{l8, "token_embd.weight", -1, 4096, 2, gguf.Q4_K},
		{l8, "output.weight", -1, 4096, 2, gguf.Q6_K},
		{l8, "blk.0.attn_v.weight", 0, 4096, 2, gguf.Q6_K},
		{l8, "blk.4.attn_v.weight", 4, 4096, 2, gguf.Q4_K},
		{l8, "blk.6.ffn_down.weight", 6, 14336, 2, gguf.Q6_K},
		{l8, "blk.7.ffn_down.weight", 7, 14336, 2, gguf.Q4_K},
		{l8, "blk.0.attn_q.weight", 0, 4096, 2, gguf.Q4_K},
		{l8, "blk.0.attn_norm.weight", 0, 4096, 1, gguf.F32},
		{q05, "token_embd.weight", -1, 896, 2, gguf.Q5_0}, // 896 is no multiple of 256
		{q05, "output.weight", -1, 896, 2, gguf.Q8_0},
		{q05, "blk.5.attn_q.weight", 5, 896, 2, gguf.Q5_0},
		{q05, "blk.0.attn_v.weight", 0, 896, 2, gguf.Q8_0},
		{q05, "blk.0.ffn_down.weight", 0, 4864, 2, gguf.Q6_K},
		{q05, "blk.4.ffn_down.weight", 4, 4864, 2, gguf.Q4_K},
	}
	for _, c := range cases {
		if got := c.s.Q4KM(c.name, c.layer, c.ne0, c.dims); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.s.Name, c.name, got, c.want)
		}
	}
}

// TestQ4KMMatchesRealQwen compares the mix with the types of the real
// Qwen2.5-Coder-0.5B Q4_K_M file (LMOOD_TEST_GGUF_QWEN), tensor by tensor.
func TestQ4KMMatchesRealQwen(t *testing.T) {
	p := os.Getenv("LMOOD_TEST_GGUF_QWEN")
	if p == "" {
		t.Skip("LMOOD_TEST_GGUF_QWEN is not set")
	}
	f, err := gguf.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, _ := Lookup("qwen-0.5b")
	differ := 0
	seen := map[string]int{} // tensors of each kind so far, in file order
	for _, ti := range f.Tensors {
		kind := ti.Name
		if rest, ok := strings.CutPrefix(ti.Name, "blk."); ok {
			kind = rest[strings.IndexByte(rest, '.')+1:]
		}
		index := seen[kind]
		seen[kind]++
		if got := s.Q4KM(ti.Name, index, ti.Dims[0], len(ti.Dims)); got != ti.Type {
			differ++
			t.Logf("%s: mix says %s, the real file has %s", ti.Name, got, ti.Type)
		}
	}
	if differ > 0 {
		t.Errorf("%d of %d tensors differ from the real Q4_K_M file", differ, len(f.Tensors))
	}
}

// TestWrite writes small shapes of both families and checks that every
// tensor has the mix's type, dequantizes to finite values of about the
// intended spread, and that the streamed file parses.
func TestWrite(t *testing.T) {
	for _, s := range []Shape{
		{Name: "small-llama", Arch: "llama", Layers: 3, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 1000, RopeBase: 1e4, Context: 512},
		{Name: "small-qwen", Arch: "qwen2", Layers: 2, Dim: 96, FFN: 256, Heads: 4, KVHeads: 2, Vocab: 1000, Tied: true, RopeBase: 1e6, Context: 512},
	} {
		t.Run(s.Name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), s.Name+".gguf")
			if err := Write(path, s, Options{Seed: 3}); err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if len(f.Tensors) != len(s.tensors()) {
				t.Fatalf("%d tensors, want %d", len(f.Tensors), len(s.tensors()))
			}
			var data uint64
			for i, spec := range s.tensors() {
				ti := f.Tensors[i]
				nb, _ := ti.NumBytes()
				data += nb
				if want := s.Q4KM(spec.name, spec.layer, spec.dims[0], len(spec.dims)); ti.Name != spec.name || ti.Type != want {
					t.Errorf("tensor %d: %s %s, want %s %s", i, ti.Name, ti.Type, spec.name, want)
				}
				v, err := f.ReadTensorF32(&ti)
				if err != nil {
					t.Fatalf("%s: %v", ti.Name, err)
				}
				var sum, sq float64
				for _, x := range v {
					if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
						t.Fatalf("%s holds %v", ti.Name, x)
					}
					sum += float64(x)
					sq += float64(x) * float64(x)
				}
				if len(ti.Dims) == 2 {
					n := float64(len(v))
					mean, std := sum/n, math.Sqrt(sq/n-(sum/n)*(sum/n))
					want := 1 / math.Sqrt(float64(ti.Dims[0]))
					if std < want/4 || std > want*4 || math.Abs(mean) > std/2 {
						t.Errorf("%s (%s): mean %.3g std %.3g, want mean ≈ 0 and std ≈ %.3g", ti.Name, ti.Type, mean, std, want)
					}
				}
			}
			if data != s.Bytes() {
				t.Errorf("tensor data %d bytes, Bytes says %d", data, s.Bytes())
			}
		})
	}
}
