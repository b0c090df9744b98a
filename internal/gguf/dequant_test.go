package gguf

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fixtureTypes are the types with python-generated reference fixtures in
// testdata/quant (see testdata/gen_quant_fixtures.py).
var fixtureTypes = []Type{F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K}

func readF32File(t testing.TB, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func loadFixture(t testing.TB, typ Type) (raw []byte, ref []float32) {
	t.Helper()
	dir := filepath.Join("testdata", "quant")
	raw, err := os.ReadFile(filepath.Join(dir, typ.String()+".bin"))
	if err != nil {
		t.Fatal(err)
	}
	return raw, readF32File(t, filepath.Join(dir, typ.String()+".f32"))
}

// sameFloat reports bit equality, treating all NaNs as equal.
func sameFloat(a, b float32) bool {
	if a != a && b != b {
		return true
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func compareExact(t *testing.T, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d values, want %d", len(got), len(want))
	}
	bad := 0
	for i := range got {
		if !sameFloat(got[i], want[i]) {
			if bad < 5 {
				t.Errorf("element %d: got %g (%#08x), want %g (%#08x)", i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			}
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d elements differ", bad, len(got))
	}
}

func TestDequantizeMatchesPythonReference(t *testing.T) {
	for _, typ := range fixtureTypes {
		t.Run(typ.String(), func(t *testing.T) {
			raw, ref := loadFixture(t, typ)
			got, err := Dequantize(typ, raw, len(ref))
			if err != nil {
				t.Fatal(err)
			}
			compareExact(t, got, ref)
			// The parallel path must agree with the serial one.
			big := make([]byte, 0, len(raw)*80)
			for range 80 {
				big = append(big, raw...)
			}
			dst := make([]float32, len(ref)*80)
			if err := DequantizeInto(dst, typ, big); err != nil {
				t.Fatal(err)
			}
			for k := range 80 {
				compareExact(t, dst[k*len(ref):(k+1)*len(ref)], ref)
			}
		})
	}
}

func TestQuantizersMatchPython(t *testing.T) {
	dir := filepath.Join("testdata", "quant")
	t.Run("Q8_0", func(t *testing.T) {
		src := readF32File(t, filepath.Join(dir, "Q8_0.src"))
		raw, _ := loadFixture(t, Q8_0)
		got := QuantizeQ8_0(src)
		if string(got) != string(raw[:len(got)]) {
			t.Errorf("QuantizeQ8_0 differs from gguf.quants.quantize")
		}
	})
	for _, tc := range []struct {
		typ  Type
		conv func(float32) uint16
	}{{F16, f32ToF16}, {BF16, f32ToBF16}} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			src := readF32File(t, filepath.Join(dir, tc.typ.String()+".src"))
			raw, _ := loadFixture(t, tc.typ)
			for i, x := range src {
				if got, want := tc.conv(x), binary.LittleEndian.Uint16(raw[2*i:]); got != want {
					t.Errorf("convert %g: got %#04x, want %#04x", x, got, want)
				}
			}
		})
	}
}

func TestF16Conversions(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := f16ToF32(uint16(h))
		exp, mant := (h>>10)&0x1f, h&0x3ff
		if exp == 0x1f && mant != 0 {
			if f == f {
				t.Fatalf("%#04x should be NaN, got %g", h, f)
			}
			continue
		}
		var want float64
		switch {
		case exp == 0x1f:
			want = math.Inf(1)
		case exp == 0:
			want = math.Ldexp(float64(mant), -24)
		default:
			want = math.Ldexp(float64(mant|0x400), exp-25)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("f16ToF32(%#04x) = %g, want %g", h, f, want)
		}
		if back := f32ToF16(f); back != uint16(h) {
			t.Fatalf("f32ToF16(f16ToF32(%#04x)) = %#04x", h, back)
		}
		if f16Table()[h] != f && f == f {
			t.Fatalf("table mismatch at %#04x", h)
		}
	}
	// Midpoints between adjacent finite halves round to the even one.
	for h := 0; h < 0x7bff; h++ {
		lo, hi := float64(f16ToF32(uint16(h))), float64(f16ToF32(uint16(h+1)))
		mid := float32((lo + hi) / 2)
		want := uint16(h)
		if h&1 == 1 {
			want = uint16(h + 1)
		}
		if got := f32ToF16(mid); got != want {
			t.Fatalf("f32ToF16(midpoint %g of %#04x,%#04x) = %#04x, want %#04x", mid, h, h+1, got, want)
		}
		if got := f32ToF16(math.Nextafter32(mid, float32(math.Inf(1)))); got != uint16(h+1) {
			t.Fatalf("just above midpoint of %#04x: got %#04x", h, got)
		}
	}
	if got := f32ToF16(65520); got != 0x7c00 {
		t.Errorf("65520 should overflow to +Inf, got %#04x", got)
	}
	if got := f32ToF16(float32(math.NaN())); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
		t.Errorf("NaN converted to %#04x", got)
	}
	if F16ToF32(F32ToF16(1.5)) != 1.5 {
		t.Error("exported F16 helpers do not round-trip 1.5")
	}
}

func TestDequantizeQ8K(t *testing.T) {
	b := make([]byte, 292)
	binary.LittleEndian.PutUint32(b, math.Float32bits(0.5))
	for i := 0; i < 256; i++ {
		b[4+i] = byte(int8(i - 128))
	}
	got, err := Dequantize(Q8_K, b, 256)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if want := 0.5 * float32(i-128); v != want {
			t.Fatalf("element %d = %g, want %g", i, v, want)
		}
	}
}

func TestDequantizeIntegerAndF64(t *testing.T) {
	cases := []struct {
		typ  Type
		raw  []byte
		want []float32
	}{
		{I8, []byte{0xff, 0x05}, []float32{-1, 5}},
		{I16, []byte{0xfe, 0xff, 0x00, 0x01}, []float32{-2, 256}},
		{I32, binary.LittleEndian.AppendUint32(nil, 0xfffffff9), []float32{-7}},
		{I64, binary.LittleEndian.AppendUint64(nil, 1<<40), []float32{1 << 40}},
		{F64, binary.LittleEndian.AppendUint64(nil, math.Float64bits(0.1)), []float32{0.1}},
	}
	for _, c := range cases {
		got, err := Dequantize(c.typ, c.raw, len(c.want))
		if err != nil {
			t.Fatalf("%s: %v", c.typ, err)
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s[%d] = %g, want %g", c.typ, i, got[i], c.want[i])
			}
		}
	}
}

func TestDequantizeErrors(t *testing.T) {
	cases := []struct {
		name    string
		typ     Type
		data    []byte
		n       int
		wantErr error
		want    string
	}{
		{"unsupported", IQ2_XXS, make([]byte, 66), 256, ErrUnsupportedType, "cannot dequantize type IQ2_XXS (16) (supported: F32, F16, Q4_0"},
		{"unknown", Type(99), nil, 0, ErrUnsupportedType, "type(99) (99)"},
		{"partial block", Q4_0, make([]byte, 36), 40, nil, "not a multiple of the block size 32"},
		{"short data", Q6_K, make([]byte, 209), 256, ErrTruncated, "need 210 bytes, have 209"},
		{"negative", F32, nil, -1, nil, "negative element count"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Dequantize(c.typ, c.data, c.n)
			if err == nil {
				t.Fatal("expected an error")
			}
			if c.wantErr != nil && !errors.Is(err, c.wantErr) {
				t.Errorf("error %v does not wrap %v", err, c.wantErr)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

func TestTypeNames(t *testing.T) {
	for typ, want := range map[Type]string{F32: "F32", Q4_K: "Q4_K", IQ2_XXS: "IQ2_XXS", BF16: "BF16", Type(4): "type(4)"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", uint32(typ), got, want)
		}
	}
	if typ, ok := ParseType("q6_k"); !ok || typ != Q6_K {
		t.Errorf("ParseType(q6_k) = %v, %v", typ, ok)
	}
	if _, ok := ParseType("Q4_2"); ok {
		t.Error("ParseType accepted a removed type")
	}
	// Geometry sanity: K-quant super-block sizes from the ggml headers.
	for typ, size := range map[Type]uint64{Q2_K: 84, Q3_K: 110, Q4_K: 144, Q5_K: 176, Q6_K: 210, Q8_K: 292, Q8_0: 34, Q4_1: 20} {
		if typ.TypeSize() != size {
			t.Errorf("%s type size %d, want %d", typ, typ.TypeSize(), size)
		}
	}
}

// randomBlocks returns n random blocks of typ with sane half-precision
// scales (the first two bytes of every legacy/Q4_K/Q5_K block, the last two
// of Q6_K/Q3_K, and the last four of Q2_K).
func randomBlocks(typ Type, n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	ts := int(typ.TypeSize())
	b := make([]byte, n*ts)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	var halves []int
	switch typ {
	case Q4_0, Q5_0, Q8_0:
		halves = []int{0}
	case Q4_1, Q5_1, Q4_K, Q5_K:
		halves = []int{0, 2}
	case Q2_K:
		halves = []int{80, 82}
	case Q3_K:
		halves = []int{108}
	case Q6_K:
		halves = []int{208}
	case F16:
		for i := 0; i < len(b); i += 2 {
			binary.LittleEndian.PutUint16(b[i:], f32ToF16(float32(r.NormFloat64())))
		}
	case F32:
		for i := 0; i < len(b); i += 4 {
			binary.LittleEndian.PutUint32(b[i:], math.Float32bits(float32(r.NormFloat64())))
		}
	}
	for blk := 0; blk < n; blk++ {
		for _, off := range halves {
			binary.LittleEndian.PutUint16(b[blk*ts+off:], f32ToF16(float32(r.Float64()*0.1-0.05)))
		}
	}
	return b
}

func BenchmarkDequantize(b *testing.B) {
	const elems = 1 << 20
	for _, typ := range fixtureTypes {
		b.Run(typ.String(), func(b *testing.B) {
			nblocks := elems / int(typ.BlockSize())
			raw := randomBlocks(typ, nblocks, 7)
			dst := make([]float32, elems)
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			deq := dequantizers[typ]
			for b.Loop() {
				deq(dst, raw) // single goroutine
			}
			b.ReportMetric(float64(elems)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		})
	}
}

func BenchmarkDequantizeParallel(b *testing.B) {
	const elems = 1 << 22
	for _, typ := range []Type{Q4_1, Q8_0, Q4_K, Q6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			raw := randomBlocks(typ, elems/int(typ.BlockSize()), 7)
			dst := make([]float32, elems)
			b.SetBytes(int64(len(raw)))
			b.ResetTimer()
			for b.Loop() {
				if err := DequantizeInto(dst, typ, raw); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(elems)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		})
	}
}
