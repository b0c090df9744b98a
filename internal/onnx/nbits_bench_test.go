package onnx_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

// BenchmarkLinear compares the ways lmood can multiply by a linear weight,
// at lmood's batch (a clean copy and 32 nudged copies of an 18-token
// prompt) and the shapes of SmolLM2-135M's and Qwen2.5-0.5B's MLP: float32
// MatMul, MatMulNBits on 4-bit (Q4_0: default zero point; Q4_1: float zero
// points) and 8-bit blocks at accuracy levels 0 (float32) and 4 (int8
// activations per block), and the int8 linear (int8 weights per output,
// anchored int8 activations per row; see Builder.Linear). GFLOP/s counts
// 2·rows·in·out per run.
func BenchmarkLinear(b *testing.B) {
	testutil.Runtime(b)
	const copies, seq = 33, 18
	kinds := []struct {
		name  string
		typ   gguf.Type // MatMulNBits blocks of this type, unless f32 or int8
		level int64
		f32   bool
		int8  bool
	}{
		{name: "f32", f32: true}, {name: "q4_0-acc0", typ: gguf.Q4_0}, {name: "q4_0-acc4", typ: gguf.Q4_0, level: 4},
		{name: "q4_1-acc4", typ: gguf.Q4_1, level: 4}, {name: "q8_0-acc4", typ: gguf.Q8_0, level: 4}, {name: "int8", int8: true},
	}
	for _, sh := range [][2]int{{576, 1536}, {896, 4864}} {
		in, out := sh[0], sh[1]
		r := rand.New(rand.NewPCG(1, 2))
		x := make([]float32, copies*seq*in)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for c := 1; c < copies; c++ { // nudged copies of copy 0
			for i := 0; i < seq*in; i++ {
				x[c*seq*in+i] = x[i] + 0.01*float32(r.NormFloat64())
			}
		}
		for _, k := range kinds {
			b.Run(fmt.Sprintf("%dx%d/%s", in, out, k.name), func(b *testing.B) {
				var wf weightsFile
				var w onnx.ExternalTensor
				v := make([]float32, in*out)
				for i := range v {
					v[i] = float32(r.NormFloat64()) * 0.05
				}
				switch {
				case k.f32:
					w = wf.add([]int64{int64(in), int64(out)}, onnx.Float, v)
				case k.int8:
					q, err := gguf.QuantizeColumns8(v, in, out)
					if err != nil {
						b.Fatal(err)
					}
					w = wf.add([]int64{int64(in), int64(out)}, onnx.Int8, q.Codes)
					w.Int8 = &onnx.Int8Linear{K: int64(in), N: int64(out), Scales: wf.add([]int64{int64(out)}, onnx.Float, q.Scales)}
				default:
					raw, err := gguf.RandomBlocks(k.typ, out*in/int(k.typ.BlockSize()), 1e-3, r)
					if err != nil {
						b.Fatal(err)
					}
					q, err := gguf.ToNBits(k.typ, raw, out, in)
					if err != nil {
						b.Fatal(err)
					}
					w = wf.nbits(q, k.level)
				}
				s := wf.open(b, linearModel(b, w, in, out), in, []runtime.Output{{Name: "y", Width: out}}, runtime.SessionOptions{})
				if _, err := s.Run(x, copies, seq); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if _, err := s.Run(x, copies, seq); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(copies*seq*in*out)/(b.Elapsed().Seconds()/float64(b.N))/1e9, "GFLOP/s")
			})
		}
	}
}
