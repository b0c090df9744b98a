package onnx_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

// quantRow is the graph's row quantization, in float64: codes
// round-half-even(v/s), s = float32(max|v|)/127.
func quantRow(v []float64) (codes []int64, s float64) {
	var amax float64
	for _, x := range v {
		amax = math.Max(amax, math.Abs(x))
	}
	s = float64(float32(math.Max(amax, 1e-30)) / 127)
	return quantStep(v, s), s
}

// quantStep is the graph's quantization with a given step s: codes
// round-half-even(v/s), saturated to the int8 range.
func quantStep(v []float64, s float64) []int64 {
	codes := make([]int64, len(v))
	for i, x := range v {
		codes[i] = min(127, max(-128, int64(math.RoundToEven(float64(float32(x/s))))))
	}
	return codes
}

// int8Product is codes·W(column n) in exact integers, times the scales.
func int8Product(codes []int64, s float64, q *gguf.Int8Columns, n int) float64 {
	var acc int64
	for k, c := range codes {
		acc += c * int64(q.Codes[k*q.Out+n])
	}
	return float64(acc) * float64(q.Scales[n]) * s
}

// int8Graph builds and opens a graph y_name = Linear(x, name) per weight,
// in the anchored form or the rowwise one, and checks that the graph codes
// x once for all linears: anchored, the difference, the anchor and its
// error (only the first two search for their scale; the two row shapes,
// batch and anchor, have one zero-point tensor each: three GEMMs per
// linear); rowwise, the value and its error over the batch (one scale
// search, one zero-point tensor, two GEMMs per linear, no anchor Gather).
func int8Graph(t *testing.T, in int, ws map[string]*gguf.Int8Columns, names []string, rowwise bool) *runtime.Session {
	t.Helper()
	var wf weightsFile
	src := mapSource{}
	for name, q := range ws {
		w := wf.add([]int64{int64(in), int64(q.Out)}, onnx.Int8, q.Codes)
		w.Int8 = &onnx.Int8Linear{K: int64(in), N: int64(q.Out), Scales: wf.add([]int64{int64(q.Out)}, onnx.Float, q.Scales), Rowwise: rowwise}
		src[name] = w
	}
	b := onnx.NewBuilder("t", src)
	xv := b.Input("x", onnx.Float, "batch", "seq", in)
	var outs []runtime.Output
	for _, name := range names {
		b.Output(b.Linear(xv, name), "y"+name, onnx.Float, "batch", "seq", ws[name].Out)
		outs = append(outs, runtime.Output{Name: "y" + name, Width: ws[name].Out})
	}
	m, err := b.Model("test")
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]int{}
	for _, n := range m.Graph.Node {
		ops[n.GetOpType()]++
	}
	want := map[string]int{"QuantizeLinear": 3, "ReduceMax": 2, "Expand": 2, "MatMulIntegerToFloat": 3 * len(names), "Gather": 1}
	if rowwise {
		want = map[string]int{"QuantizeLinear": 2, "ReduceMax": 1, "Expand": 1, "MatMulIntegerToFloat": 2 * len(names), "Gather": 0}
	}
	for op, n := range want {
		if ops[op] != n {
			t.Errorf("rowwise %v: the graph has %d %s nodes, want %d (ops %v)", rowwise, ops[op], op, n, ops)
		}
	}
	return wf.open(t, m, in, outs, runtime.SessionOptions{Threads: 1})
}

func randomInt8(t *testing.T, r *rand.Rand, in, out int) *gguf.Int8Columns {
	v := make([]float32, in*out)
	for i := range v {
		v[i] = float32(r.NormFloat64()) * 0.05
	}
	q, err := gguf.QuantizeColumns8(v, in, out)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestLinearInt8RunsInOnnxruntime checks the int8 Linear against the
// product it defines, computed in float64 with exact integer sums: for
// each row i of the batch, Q(x_i - x_0)·W + Q(x_0)·W + Q'(x_0 - Q(x_0))·W,
// Q quantizing a row to 8 bits with its own scale, Q' with Q(x_0)'s step
// over 254. onnxruntime's int32 sums are exact, so the two agree to
// float32 rounding. Two linears read
// the same input (the graph quantizes it once), one row equals row 0 (its
// difference is all zeros), one row has an outlier, one is all zeros and
// one differs from it by values halfway between two codes.
func TestLinearInt8RunsInOnnxruntime(t *testing.T) {
	testutil.Runtime(t)
	const in, out, batch, seq = 96, 40, 3, 2
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, batch*seq*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	clear(x[in : 2*in])                  // copy 0, token 1: zeros
	copy(x[seq*in:2*seq*in], x[:seq*in]) // copy 1 = copy 0
	x[2*seq*in+7] = 40                   // copy 2, token 0: an outlier
	// Copy 2, token 1 (a difference from zeros): max 127 gives the scale 1,
	// and k+0.5 are ties, which the quantizer must round to even.
	tie := x[(2*seq+1)*in : (2*seq+2)*in]
	clear(tie)
	tie[0] = 127
	for k := 1; k <= 20; k++ {
		tie[k] = float32(math.Copysign(float64(k)+0.5, float64(k%3-1)))
	}
	ws := map[string]*gguf.Int8Columns{"a": randomInt8(t, r, in, out), "b": randomInt8(t, r, in, 24)}
	s := int8Graph(t, in, ws, []string{"a", "b"}, false)
	got, err := s.Run(x, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	row := func(c, p int) []float64 {
		v := make([]float64, in)
		for k := range v {
			v[k] = float64(x[(c*seq+p)*in+k])
		}
		return v
	}
	for oi, name := range []string{"a", "b"} {
		q := ws[name]
		deq := q.Dequantize()
		var worst, worstFloat float64
		for c := 0; c < batch; c++ {
			for p := 0; p < seq; p++ {
				xi, x0 := row(c, p), row(0, p)
				d := make([]float64, in)
				for k := range d {
					d[k] = float64(float32(xi[k] - x0[k]))
				}
				dc, ds := quantRow(d)
				hc, hs := quantRow(x0)
				lo := make([]float64, in)
				for k := range lo {
					lo[k] = float64(float32(x0[k] - float64(float32(float64(hc[k])*hs))))
				}
				ls := float64(float32(hs) * float32(1.0/254))
				lc := quantStep(lo, ls)
				for n := 0; n < q.Out; n++ {
					want := int8Product(dc, ds, q, n) + int8Product(hc, hs, q, n) + int8Product(lc, ls, q, n)
					var exact, mag float64
					for k, v := range xi {
						exact += v * float64(deq[k*q.Out+n])
						mag += math.Abs(v * float64(deq[k*q.Out+n]))
					}
					g := float64(got[oi][(c*seq+p)*q.Out+n])
					if c == 1 && g != float64(got[oi][p*q.Out+n]) {
						t.Errorf("%s: copy 1 equals copy 0 but output %d of token %d differs: %g vs %g", name, n, p, g, got[oi][p*q.Out+n])
					}
					if mag == 0 { // a row of zeros
						if g != 0 {
							t.Errorf("%s: copy %d, token %d is zeros but output %d is %g", name, c, p, n, g)
						}
						continue
					}
					worst = math.Max(worst, math.Abs(g-want)/mag)
					worstFloat = math.Max(worstFloat, math.Abs(g-exact)/mag)
				}
			}
		}
		t.Logf("%s: against the int8 product it defines %.2g, against float x @ dequantized W %.2g (of the terms' magnitude)", name, worst, worstFloat)
		if worst > 1e-5 {
			t.Errorf("%s: onnxruntime's int8 linear differs from the quantized product by %.3g of the terms' magnitude", name, worst)
		}
	}
}

// TestLinearInt8KeepsSmallDifferences is why the int8 linear is anchored:
// rows that differ from row 0 by a nudge 1% of their size (lmood's
// situation) must keep that difference: (y_i - y_0) matches
// (x_i - x_0) @ W within a few percent. Quantizing each row by itself
// (computed here for contrast) rounds the difference away, with errors of
// the order of the difference itself.
func TestLinearInt8KeepsSmallDifferences(t *testing.T) {
	testutil.Runtime(t)
	const in, out, batch, seq = 256, 32, 5, 3
	r := rand.New(rand.NewPCG(7, 8))
	x := make([]float32, batch*seq*in)
	for i := 0; i < seq*in; i++ {
		x[i] = float32(r.NormFloat64())
		if i%in == 3 {
			x[i] *= 20 // an outlier channel, as LLM activations have
		}
	}
	for c := 1; c < batch; c++ {
		for i := 0; i < seq*in; i++ {
			x[c*seq*in+i] = x[i] + float32(r.NormFloat64())*0.01
		}
	}
	q := randomInt8(t, r, in, out)
	s := int8Graph(t, in, map[string]*gguf.Int8Columns{"w": q}, []string{"w"}, false)
	got, err := s.Run(x, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	deq := q.Dequantize()
	var errAnchored, errPlain, norm float64
	for c := 1; c < batch; c++ {
		for p := 0; p < seq; p++ {
			xi := make([]float64, in)
			x0 := make([]float64, in)
			for k := range xi {
				xi[k], x0[k] = float64(x[(c*seq+p)*in+k]), float64(x[p*in+k])
			}
			ci, si := quantRow(xi)
			c0, s0 := quantRow(x0)
			for n := 0; n < out; n++ {
				var want float64
				for k := range xi {
					want += (xi[k] - x0[k]) * float64(deq[k*out+n])
				}
				gotDiff := float64(got[0][(c*seq+p)*out+n] - got[0][p*out+n])
				plainDiff := int8Product(ci, si, q, n) - int8Product(c0, s0, q, n)
				errAnchored += (gotDiff - want) * (gotDiff - want)
				errPlain += (plainDiff - want) * (plainDiff - want)
				norm += want * want
			}
		}
	}
	rel, relPlain := math.Sqrt(errAnchored/norm), math.Sqrt(errPlain/norm)
	t.Logf("relative error of the row differences: anchored %.3g, each row quantized by itself %.3g", rel, relPlain)
	if rel > 0.03 {
		t.Errorf("anchored int8 linear: the nudges' effect is off by %.3g (relative), want ≤ 0.03", rel)
	}
	if relPlain < 5*rel {
		t.Errorf("the contrast does not show: plain row quantization is off by %.3g, anchored by %.3g", relPlain, rel)
	}
}

// TestLinearInt8Rowwise checks the rowwise form of the int8 linear (every
// row coded on its own in two levels, no anchor): against the product it
// defines, Q(x_i)·W + Q'(x_i - Q(x_i))·W in exact integers, to float32
// rounding; and against x @ (codes × scales) in float64 within the
// two-level code's precision (its error per element is at most max|x_i| /
// 127 / 508). The rows are unrelated and of very different sizes (row 0
// tiny, one with an outlier), which the anchored form could not code that
// closely: its differences from row 0 get 8 bits.
func TestLinearInt8Rowwise(t *testing.T) {
	testutil.Runtime(t)
	const in, out, batch, seq = 64, 24, 2, 3
	r := rand.New(rand.NewPCG(9, 10))
	ws := map[string]*gguf.Int8Columns{"a": randomInt8(t, r, in, out), "b": randomInt8(t, r, in, 16)}
	s := int8Graph(t, in, ws, []string{"a", "b"}, true)
	x := make([]float32, batch*seq*in)
	for i := range x {
		x[i] = float32(r.NormFloat64())
		if i < in {
			x[i] *= 1e-3 // row 0: tiny
		}
	}
	x[4*in+5] = 30 // an outlier
	got, err := s.Run(x, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	for oi, name := range []string{"a", "b"} {
		q := ws[name]
		deq := q.Dequantize()
		var worst, worstFloat float64
		for p := 0; p < batch*seq; p++ {
			xi := make([]float64, in)
			var amax float64
			for k := range xi {
				xi[k] = float64(x[p*in+k])
				amax = math.Max(amax, math.Abs(xi[k]))
			}
			hc, hs := quantRow(xi)
			lo := make([]float64, in)
			for k := range lo {
				lo[k] = float64(float32(xi[k] - float64(float32(float64(hc[k])*hs))))
			}
			lc := quantStep(lo, float64(float32(hs)*float32(1.0/254)))
			for n := 0; n < q.Out; n++ {
				want := int8Product(hc, hs, q, n) + int8Product(lc, float64(float32(hs)*float32(1.0/254)), q, n)
				var exact, colMag, mag float64
				for k := range xi {
					w := float64(deq[k*q.Out+n])
					exact += xi[k] * w
					colMag += math.Abs(w)
					mag += math.Abs(xi[k] * w)
				}
				g := float64(got[oi][p*q.Out+n])
				worst = math.Max(worst, math.Abs(g-want)/mag)
				// The code's error bound, plus float32 rounding.
				if bound := amax/127/508*colMag + 1e-6*mag; math.Abs(g-exact) > bound {
					t.Errorf("%s: row %d output %d: %g, float product %g: off by %.3g > %.3g", name, p, n, g, exact, math.Abs(g-exact), bound)
				}
				worstFloat = math.Max(worstFloat, math.Abs(g-exact)/mag)
			}
		}
		t.Logf("%s: against the int8 product it defines %.2g, against float x @ dequantized W %.2g (of the terms' magnitude)", name, worst, worstFloat)
		if worst > 1e-5 {
			t.Errorf("%s: the rowwise int8 linear differs from the product it defines by %.3g of the terms' magnitude", name, worst)
		}
	}
}
