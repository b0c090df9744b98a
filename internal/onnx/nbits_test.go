package onnx_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

type mapSource map[string]onnx.ExternalTensor

func (m mapSource) Lookup(name string) (onnx.ExternalTensor, bool) {
	t, ok := m[name]
	return t, ok
}

// linearModel is the graph y = Linear(x, "w") for a weight of in inputs
// and out outputs.
func linearModel(tb testing.TB, w onnx.ExternalTensor, in, out int) *onnxpb.ModelProto {
	tb.Helper()
	b := onnx.NewBuilder("t", mapSource{"w": w})
	x := b.Input("x", onnx.Float, "batch", "seq", in)
	b.Output(b.Linear(x, "w"), "y", onnx.Float, "batch", "seq", out)
	m, err := b.Model("test")
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// open writes model m and the weights file into a temporary directory and
// opens a session on it (input "x" of width in); the session closes with
// the test.
func (w *weightsFile) open(tb testing.TB, m *onnxpb.ModelProto, in int, outs []runtime.Output, so runtime.SessionOptions) *runtime.Session {
	tb.Helper()
	data, err := onnx.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), w.Bytes(), 0o644); err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "g.onnx")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	s, err := runtime.NewSession(path, "x", in, outs, so)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// weightsFile collects tensors into one external-data file.
type weightsFile struct{ bytes.Buffer }

func (w *weightsFile) add(dims []int64, typ onnx.ElemType, data any) onnx.ExternalTensor {
	for w.Len()%64 != 0 {
		w.WriteByte(0)
	}
	off := int64(w.Len())
	binary.Write(&w.Buffer, binary.LittleEndian, data)
	return onnx.ExternalTensor{Location: "w.bin", Offset: off, Dims: dims, Type: typ}
}

// nbits adds a ToNBits matrix (rows × cols) as a MatMulNBits weight: its
// codes, float32 scales and zero points.
func (w *weightsFile) nbits(q *gguf.NBits, level int64) onnx.ExternalTensor {
	rows, nb := int64(q.Rows), int64(q.Blocks())
	t := w.add([]int64{rows, nb, int64(q.BlobSize())}, onnx.Uint8, q.Codes)
	t.NBits = &onnx.NBits{K: int64(q.Cols), N: rows, Bits: int64(q.Bits), BlockSize: int64(q.BlockSize), AccuracyLevel: level,
		Scales: w.add([]int64{rows, nb}, onnx.Float, q.Scales)}
	if q.ZeroPoints != nil {
		z := w.add([]int64{rows, nb}, onnx.Float, q.ZeroPoints)
		t.NBits.Zero = &z
	}
	return t
}

// TestLinearNBitsRunsInOnnxruntime builds a one-node graph per GGUF type
// (MatMulNBits on the ToNBits layout of random blocks) and checks
// onnxruntime's product against x @ W computed in float64 from the
// layout's own dequantization: at accuracy level 0 within float32
// rounding; at level 4 (int8 activations) the error is logged.
func TestLinearNBitsRunsInOnnxruntime(t *testing.T) {
	testutil.Runtime(t)
	const rows, cols, batch, seq = 48, 512, 2, 3
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*seq*cols)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	for _, typ := range []gguf.Type{gguf.Q4_0, gguf.Q4_1, gguf.Q5_0, gguf.Q5_1, gguf.Q8_0, gguf.Q3_K, gguf.Q4_K, gguf.Q5_K, gguf.Q6_K} {
		for _, level := range []int64{0, 4} {
			t.Run(typ.String()+"/acc"+string(rune('0'+level)), func(t *testing.T) {
				raw, err := gguf.RandomBlocks(typ, rows*cols/int(typ.BlockSize()), 1e-3, r)
				if err != nil {
					t.Fatal(err)
				}
				if typ == gguf.Q4_1 || typ == gguf.Q4_K {
					// A first block of scale 0 (and an offset) takes the
					// graph's other branch (gguf.ScaleZero).
					raw[0], raw[1] = 0, 0
				}
				q, err := gguf.ToNBits(typ, raw, rows, cols)
				if err != nil {
					t.Fatal(err)
				}
				var wf weightsFile
				w := wf.nbits(q, level)
				s := wf.open(t, linearModel(t, w, cols, rows), cols, []runtime.Output{{Name: "y", Width: rows}}, runtime.SessionOptions{Threads: 1})
				out, err := s.Run(x, batch, seq)
				if err != nil {
					t.Fatal(err)
				}
				deq := q.Dequantize()
				var maxErr, maxRef float64
				for p := 0; p < batch*seq; p++ {
					for n := 0; n < rows; n++ {
						var want, mag float64
						for k := 0; k < cols; k++ {
							v := float64(x[p*cols+k]) * float64(deq[n*cols+k])
							want += v
							mag += math.Abs(v)
						}
						maxErr = max(maxErr, math.Abs(float64(out[0][p*rows+n])-want)/mag)
						maxRef = max(maxRef, math.Abs(want))
					}
				}
				t.Logf("%s %d-bit block %d, accuracy_level %d: max |error| / sum |terms| = %.3g", typ, q.Bits, q.BlockSize, level, maxErr)
				if level == 0 && maxErr > 1e-5 {
					t.Errorf("float32 MatMulNBits differs from x @ W by %.3g of the terms' magnitude", maxErr)
				}
				if level == 4 && maxErr > 0.05 {
					t.Errorf("int8 MatMulNBits differs from x @ W by %.3g of the terms' magnitude", maxErr)
				}
			})
		}
	}
}
