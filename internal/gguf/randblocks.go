package gguf

import (
	"fmt"
	"math/rand/v2"
)

// RandomBlocks returns n blocks of type t filled with random codes and
// scales of magnitude about scale (the f16 scale fields hold sane values,
// every other byte is random), for tests and synthetic models of
// realistic quantized shapes. Types without a known scale layout are an
// error.
func RandomBlocks(t Type, n int, scale float32, r *rand.Rand) ([]byte, error) {
	var scaleAt []int // offsets of f16 scale fields
	switch t {
	case Q4_0, Q5_0, Q8_0:
		scaleAt = []int{0}
	case Q4_1, Q5_1:
		scaleAt = []int{0, 2}
	case Q4_K, Q5_K, Q2_K:
		scaleAt = []int{0, 2}
	case Q6_K:
		scaleAt = []int{208}
	case Q3_K:
		scaleAt = []int{108}
	default:
		return nil, fmt.Errorf("gguf: random blocks of %s: %w", t, ErrUnsupportedType)
	}
	ts := int(t.TypeSize())
	b := make([]byte, n*ts)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	for k := 0; k < n; k++ {
		for j, off := range scaleAt {
			v := scale * float32(0.5+r.Float64())
			if j == 1 && (t == Q4_1 || t == Q5_1) {
				v = -v * 8 // a min about half a range below zero
			}
			le.PutUint16(b[k*ts+off:], f32ToF16(v))
		}
	}
	return b, nil
}
