package gguf

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// TestToNBitsAgainstDequantize converts the python-made fixtures of every
// mapped type to MatMulNBits layout and compares the operator's values,
// (code - zero point) * scale, with the GGUF dequantization: exact types
// must agree bit for bit, the float-zero-point types within float32
// rounding of the block's magnitude. The measured errors are logged.
func TestToNBitsAgainstDequantize(t *testing.T) {
	for _, tc := range []struct {
		typ   Type
		bits  int
		block int
		exact bool
		bound float64 // max |error| / block max
	}{
		{Q4_0, 4, 32, true, 0}, {Q8_0, 8, 32, true, 0}, {Q5_0, 8, 32, true, 0},
		{Q3_K, 4, 16, true, 0}, {Q6_K, 8, 16, true, 0},
		// float zero points: float32 rounding
		{Q4_1, 4, 32, false, 4e-7}, {Q4_K, 4, 32, false, 4e-7},
		// re-quantized to 8 bits: half a step of absmax/127
		{Q5_1, 8, 32, false, 0.5/127 + 1e-6}, {Q5_K, 8, 32, false, 0.5/127 + 1e-6},
	} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			raw, ref := loadFixture(t, tc.typ)
			cols := int(tc.typ.BlockSize())
			rows := len(ref) / cols
			q, err := ToNBits(tc.typ, raw, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			if q.Bits != tc.bits || q.BlockSize != tc.block || q.Exact != tc.exact || tc.typ.NBitsExact() != tc.exact {
				t.Fatalf("layout %d-bit block %d exact %v, want %d-bit block %d exact %v", q.Bits, q.BlockSize, q.Exact, tc.bits, tc.block, tc.exact)
			}
			requant := tc.typ.NBitsRequantized()
			if (q.ZeroPoints == nil) != (tc.exact || requant) {
				t.Errorf("zero points present %v, want %v", q.ZeroPoints != nil, !tc.exact)
			}
			got := q.Dequantize()
			var maxErr, sumErr, maxRel float64
			for i := range ref {
				e := math.Abs(float64(got[i]) - float64(ref[i]))
				maxErr = max(maxErr, e)
				sumErr += e
				if tc.exact && !sameFloat(got[i], ref[i]) {
					t.Fatalf("element %d: %g, GGUF dequantization %g: an exact mapping must agree bit for bit", i, got[i], ref[i])
				}
				// Rounding bound: a few ulps of the block's largest magnitude.
				blk := i / q.BlockSize
				scale := 0.0
				for _, v := range ref[blk*q.BlockSize : (blk+1)*q.BlockSize] {
					scale = max(scale, math.Abs(float64(v)))
				}
				if scale > 0 {
					maxRel = max(maxRel, e/scale)
				}
			}
			t.Logf("%s → %d-bit block %d: max |err| %.3g, mean |err| %.3g, max err / block max %.3g (%d values)",
				tc.typ, q.Bits, q.BlockSize, maxErr, sumErr/float64(len(ref)), maxRel, len(ref))
			if maxRel > tc.bound {
				t.Errorf("error %.3g of the block's magnitude is more than the bound %.3g", maxRel, tc.bound)
			}
		})
	}
}

func TestToNBitsRefusesUnmappedTypes(t *testing.T) {
	for _, typ := range []Type{F32, F16, BF16, Q2_K, Q8_K, IQ4_XS} {
		if typ.CanNBits() {
			t.Errorf("%s claims a MatMulNBits mapping", typ)
		}
		if _, err := ToNBits(typ, make([]byte, 4096), 1, 256); !errors.Is(err, ErrUnsupportedType) {
			t.Errorf("%s: error %v, want ErrUnsupportedType", typ, err)
		}
	}
	if _, err := ToNBits(Q4_0, make([]byte, 17), 1, 32); !errors.Is(err, ErrTruncated) {
		t.Errorf("short data: error %v, want ErrTruncated", err)
	}
	if _, err := ToNBits(Q4_0, make([]byte, 18), 1, 33); err == nil {
		t.Error("a row of 33 elements was accepted for 32-element blocks")
	}
}

func TestNBitsConstantBlock(t *testing.T) {
	// A Q4_1 block with scale 0 holds its min in every element.
	b := make([]byte, 20)
	le.PutUint16(b[2:], f32ToF16(-0.75))
	for i := 4; i < 20; i++ {
		b[i] = 0x5a
	}
	q, err := ToNBits(Q4_1, b, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range q.Dequantize() {
		if v != -0.75 {
			t.Fatalf("element %d = %g, want -0.75", i, v)
		}
	}
}

func TestNBitsPermuteRows(t *testing.T) {
	raw, ref := loadFixture(t, Q4_0)
	rows := len(ref) / 32
	if rows < 3 {
		t.Skip("fixture too small")
	}
	q, err := ToNBits(Q4_0, raw, rows, 32)
	if err != nil {
		t.Fatal(err)
	}
	order := make([]int, rows)
	for i := range order {
		order[i] = rows - 1 - i
	}
	p, err := q.PermuteRows(order)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Dequantize()
	for i := 0; i < rows; i++ {
		for j := 0; j < 32; j++ {
			if !sameFloat(got[i*32+j], ref[order[i]*32+j]) {
				t.Fatalf("row %d col %d: %g, want row %d's %g", i, j, got[i*32+j], order[i], ref[order[i]*32+j])
			}
		}
	}
	if _, err := q.PermuteRows(order[1:]); err == nil {
		t.Error("a short order was accepted")
	}
}

// TestFactorsGiveScales checks that every mapped type's Factors (what a
// store keeps) give its Scales and ZeroPoints bit for bit through the one
// rule (ScaleZero), also after PermuteRows, including a block of scale 0;
// re-quantized types have no factors.
func TestFactorsGiveScales(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for typ := range nbitsLayouts {
		t.Run(typ.String(), func(t *testing.T) {
			const rows = 4
			cols := 2 * int(typ.BlockSize())
			raw, err := RandomBlocks(typ, rows*2, 1e-2, r)
			if err != nil {
				t.Fatal(err)
			}
			if typ == Q4_1 || typ == Q4_K {
				raw[0], raw[1] = 0, 0 // scale factor 0 in the first block
			}
			q, err := ToNBits(typ, raw, rows, cols)
			if err != nil {
				t.Fatal(err)
			}
			if typ.NBitsRequantized() {
				if q.Factors != nil {
					t.Error("a re-quantized matrix has factors")
				}
				return
			}
			p, err := q.PermuteRows([]int{3, 1, 0, 2})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range []*NBits{q, p} {
				f := m.Factors
				factor := func(half []uint16, sub []int8, b int) float32 {
					v := Half(half[b/f.Group])
					if sub != nil {
						v *= float32(sub[b])
					}
					return v
				}
				for b := range m.Scales {
					s, zp := factor(f.Scale, f.ScaleSub, b), float32(0)
					if f.Offset != nil {
						s, zp = ScaleZero(s, factor(f.Offset, f.OffsetSub, b))
						if !sameFloat(zp, m.ZeroPoints[b]) {
							t.Fatalf("block %d: zero point %g from factors, %g stored", b, zp, m.ZeroPoints[b])
						}
					}
					if !sameFloat(s, m.Scales[b]) {
						t.Fatalf("block %d: scale %g from factors, %g stored", b, s, m.Scales[b])
					}
				}
			}
		})
	}
}
