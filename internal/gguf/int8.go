package gguf

import (
	"fmt"
	"math"
)

// Int8Columns is a float32 matrix of In × Out (row-major, the [in, out]
// layout of x @ W) quantized to symmetric int8 codes with one scale per
// column (output): W[k, n] ≈ Codes[k*Out+n] * Scales[n], scale = the
// column's largest |value| / 127, so each value moves by at most half a
// step, absmax/254. This is the weight layout of an integer GEMM
// (onnxruntime's MatMulInteger), which cannot take block scales.
type Int8Columns struct {
	In, Out int
	Codes   []int8    // [In, Out]
	Scales  []float32 // [Out]
}

// QuantizeColumns8 quantizes v (In × Out, row-major) per column.
func QuantizeColumns8(v []float32, in, out int) (*Int8Columns, error) {
	if in <= 0 || out <= 0 || len(v) != in*out {
		return nil, fmt.Errorf("gguf: quantize %d values as %d×%d per column", len(v), in, out)
	}
	q := &Int8Columns{In: in, Out: out, Codes: make([]int8, in*out), Scales: make([]float32, out)}
	for k := 0; k < in; k++ {
		for n, f := range v[k*out : (k+1)*out] {
			q.Scales[n] = max(q.Scales[n], float32(math.Abs(float64(f))))
		}
	}
	for n := range q.Scales {
		q.Scales[n] /= 127
	}
	for k := 0; k < in; k++ {
		for n, f := range v[k*out : (k+1)*out] {
			if s := q.Scales[n]; s != 0 {
				q.Codes[k*out+n] = int8(min(max(math.Round(float64(f/s)), -127), 127))
			}
		}
	}
	return q, nil
}

// Dequantize returns codes × scales as float32 [In, Out].
func (q *Int8Columns) Dequantize() []float32 {
	v := make([]float32, len(q.Codes))
	for i, c := range q.Codes {
		v[i] = float32(c) * q.Scales[i%q.Out]
	}
	return v
}
