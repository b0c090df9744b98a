package gguf

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestQuantizeColumns8(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		name    string
		in, out int
		fill    func(k, n int) float32
	}{
		{"gaussian", 37, 11, func(k, n int) float32 { return float32(r.NormFloat64()) * float32(n+1) }},
		{"zero column", 5, 3, func(k, n int) float32 {
			if n == 1 {
				return 0
			}
			return float32(k - 2)
		}},
		{"exact codes", 4, 2, func(k, n int) float32 { return float32(k*40-127) * 0.5 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := make([]float32, tc.in*tc.out)
			for k := 0; k < tc.in; k++ {
				for n := 0; n < tc.out; n++ {
					v[k*tc.out+n] = tc.fill(k, n)
				}
			}
			q, err := QuantizeColumns8(v, tc.in, tc.out)
			if err != nil {
				t.Fatal(err)
			}
			d := q.Dequantize()
			for i, want := range v {
				n := i % tc.out
				step := float64(q.Scales[n])
				if e := math.Abs(float64(d[i] - want)); e > step/2*(1+1e-6) {
					t.Fatalf("value %d (column %d): %g dequantizes to %g, error %g > half a step %g", i, n, want, d[i], e, step/2)
				}
				if c := q.Codes[i]; c < -127 {
					t.Fatalf("code %d out of the symmetric range", c)
				}
			}
			if tc.name == "exact codes" {
				for i, want := range v {
					if d[i] != want {
						t.Errorf("value %d: %g, want exactly %g (values on the int8 grid)", i, d[i], want)
					}
				}
			}
		})
	}
	if _, err := QuantizeColumns8(make([]float32, 5), 2, 3); err == nil {
		t.Error("5 values as 2×3: no error")
	}
}
