package gguf

import (
	"encoding/binary"
	"fmt"
	"math"
)

// A dequantizer converts len(dst)/BlockSize whole blocks from src to dst.
// Callers guarantee len(dst) is a multiple of the block size and src holds
// at least the corresponding number of blocks.
type dequantizer func(dst []float32, src []byte)

var dequantizers map[Type]dequantizer

func init() {
	// Assigned in init to break the initialization cycle through
	// CanDequantize.
	dequantizers = map[Type]dequantizer{
		F32:  deqF32,
		F16:  deqF16,
		BF16: deqBF16,
		F64:  deqF64,
		I8:   deqI8,
		I16:  deqI16,
		I32:  deqI32,
		I64:  deqI64,
		Q4_0: deqQ4_0,
		Q4_1: deqQ4_1,
		Q5_0: deqQ5_0,
		Q5_1: deqQ5_1,
		Q8_0: deqQ8_0,
		Q2_K: deqQ2K,
		Q3_K: deqQ3K,
		Q4_K: deqQ4K,
		Q5_K: deqQ5K,
		Q6_K: deqQ6K,
		Q8_K: deqQ8K,
	}
}

// Dequantize converts the first n elements stored in data, encoded as type
// t, to float32. n must be a multiple of t's block size and data must hold
// at least the corresponding number of bytes. The result is in storage
// order. Large inputs are dequantized in parallel.
func Dequantize(t Type, data []byte, n int) ([]float32, error) {
	if n < 0 {
		return nil, fmt.Errorf("gguf: dequantize %s: negative element count %d", t, n)
	}
	if err := checkDequant(t, n, len(data)); err != nil {
		return nil, err
	}
	dst := make([]float32, n)
	dequantizeParallel(dst, t, data)
	return dst, nil
}

// DequantizeInto is like Dequantize but writes len(dst) elements into dst.
func DequantizeInto(dst []float32, t Type, data []byte) error {
	if err := checkDequant(t, len(dst), len(data)); err != nil {
		return err
	}
	dequantizeParallel(dst, t, data)
	return nil
}

func checkDequant(t Type, n, have int) error {
	if !t.CanDequantize() {
		return fmt.Errorf("gguf: cannot dequantize type %s (%d) (supported: %s): %w",
			t, uint32(t), supportedList(), ErrUnsupportedType)
	}
	bs, ts := t.BlockSize(), t.TypeSize()
	if uint64(n)%bs != 0 {
		return fmt.Errorf("gguf: dequantize %s: element count %d is not a multiple of the block size %d", t, n, bs)
	}
	if need := uint64(n) / bs * ts; need > uint64(have) {
		return fmt.Errorf("gguf: dequantize %s: %d elements need %d bytes, have %d: %w", t, n, need, have, ErrTruncated)
	}
	return nil
}

var le = binary.LittleEndian

func deqF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
	}
}

func deqF16(dst []float32, src []byte) {
	tab := f16Table()
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = tab[le.Uint16(src[2*i:])]
	}
}

func deqBF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
	}
}

func deqF64(dst []float32, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
	}
}

func deqI8(dst []float32, src []byte) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] = float32(int8(src[i]))
	}
}

func deqI16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	for i := range dst {
		dst[i] = float32(int16(le.Uint16(src[2*i:])))
	}
}

func deqI32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = float32(int32(le.Uint32(src[4*i:])))
	}
}

func deqI64(dst []float32, src []byte) {
	src = src[:8*len(dst)]
	for i := range dst {
		dst[i] = float32(int64(le.Uint64(src[8*i:])))
	}
}

// Legacy 32-element block formats. Explicit float32 conversions around
// products prevent the compiler from fusing a*b+c into an FMA, keeping the
// results bit-identical to the reference (numpy / ggml) implementations.

func deqQ4_0(dst []float32, src []byte) {
	tab := f16Table()
	for i := 0; i < len(dst)/32; i++ {
		b := src[i*18 : i*18+18]
		y := dst[i*32 : i*32+32]
		d := tab[le.Uint16(b)]
		qs := b[2:18]
		for j := 0; j < 16; j++ {
			y[j] = d * float32(int32(qs[j]&0x0f)-8)
			y[j+16] = d * float32(int32(qs[j]>>4)-8)
		}
	}
}

func deqQ4_1(dst []float32, src []byte) {
	tab := f16Table()
	for i := 0; i < len(dst)/32; i++ {
		b := src[i*20 : i*20+20]
		y := dst[i*32 : i*32+32]
		d := tab[le.Uint16(b)]
		m := tab[le.Uint16(b[2:])]
		qs := b[4:20]
		for j := 0; j < 16; j++ {
			y[j] = float32(d*float32(qs[j]&0x0f)) + m
			y[j+16] = float32(d*float32(qs[j]>>4)) + m
		}
	}
}

func deqQ5_0(dst []float32, src []byte) {
	tab := f16Table()
	for i := 0; i < len(dst)/32; i++ {
		b := src[i*22 : i*22+22]
		y := dst[i*32 : i*32+32]
		d := tab[le.Uint16(b)]
		qh := le.Uint32(b[2:])
		qs := b[6:22]
		for j := 0; j < 16; j++ {
			lo := int32(qs[j]&0x0f) | int32((qh>>j)&1)<<4
			hi := int32(qs[j]>>4) | int32((qh>>(j+16))&1)<<4
			y[j] = d * float32(lo-16)
			y[j+16] = d * float32(hi-16)
		}
	}
}

func deqQ5_1(dst []float32, src []byte) {
	tab := f16Table()
	for i := 0; i < len(dst)/32; i++ {
		b := src[i*24 : i*24+24]
		y := dst[i*32 : i*32+32]
		d := tab[le.Uint16(b)]
		m := tab[le.Uint16(b[2:])]
		qh := le.Uint32(b[4:])
		qs := b[8:24]
		for j := 0; j < 16; j++ {
			lo := uint32(qs[j]&0x0f) | ((qh>>j)&1)<<4
			hi := uint32(qs[j]>>4) | ((qh>>(j+16))&1)<<4
			y[j] = float32(d*float32(lo)) + m
			y[j+16] = float32(d*float32(hi)) + m
		}
	}
}

func deqQ8_0(dst []float32, src []byte) {
	tab := f16Table()
	for i := 0; i < len(dst)/32; i++ {
		b := src[i*34 : i*34+34]
		y := dst[i*32 : i*32+32]
		d := tab[le.Uint16(b)]
		qs := b[2:34]
		for j := range y {
			y[j] = d * float32(int8(qs[j]))
		}
	}
}

// K-quants: 256-element super-blocks.

func deqQ2K(dst []float32, src []byte) {
	const ts = 84
	tab := f16Table()
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		scales := b[0:16]
		qs := b[16:80]
		d := tab[le.Uint16(b[80:])]
		dmin := tab[le.Uint16(b[82:])]
		// Element j = 128*c + 32*s + l takes 2 bits at shift 2*s of
		// qs[32*c + l] and uses scale byte j/16.
		for c := 0; c < 2; c++ {
			q := qs[32*c : 32*c+32]
			for s := 0; s < 4; s++ {
				shift := uint(2 * s)
				for h := 0; h < 2; h++ {
					sc := scales[8*c+2*s+h]
					dl := d * float32(sc&0x0f)
					ml := dmin * float32(sc>>4)
					out := y[128*c+32*s+16*h : 128*c+32*s+16*h+16]
					qq := q[16*h : 16*h+16]
					for l := range out {
						out[l] = float32(dl*float32((qq[l]>>shift)&3)) - ml
					}
				}
			}
		}
	}
}

func deqQ3K(dst []float32, src []byte) {
	const ts = 110
	tab := f16Table()
	var scales [16]float32
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		hmask := b[0:32]
		qs := b[32:96]
		sc := b[96:108]
		d := tab[le.Uint16(b[108:])]
		// 16 six-bit signed scales: low nibbles in bytes 0..7 (two per
		// byte), high two bits in bytes 8..11 (four per byte).
		for k := 0; k < 16; k++ {
			var lo byte
			if k < 8 {
				lo = sc[k] & 0x0f
			} else {
				lo = sc[k-8] >> 4
			}
			hi := (sc[8+k%4] >> (2 * (k / 4))) & 3
			scales[k] = d * float32(int32(lo|hi<<4)-32)
		}
		// Element j = 128*c + 32*s + l: low 2 bits at shift 2*s of
		// qs[32*c + l]; the high bit is bit j/32 of hmask[l], and a clear
		// high bit subtracts 4.
		for c := 0; c < 2; c++ {
			q := qs[32*c : 32*c+32]
			for s := 0; s < 4; s++ {
				shift := uint(2 * s)
				hbit := uint(4*c + s)
				for h := 0; h < 2; h++ {
					dl := scales[8*c+2*s+h]
					out := y[128*c+32*s+16*h : 128*c+32*s+16*h+16]
					qq := q[16*h : 16*h+16]
					hm := hmask[16*h : 16*h+16]
					for l := range out {
						v := int32((qq[l] >> shift) & 3)
						if (hm[l]>>hbit)&1 == 0 {
							v -= 4
						}
						out[l] = dl * float32(v)
					}
				}
			}
		}
	}
}

// scaleMinK4 unpacks the eight 6-bit scales and mins of a Q4_K/Q5_K
// super-block from its 12 packed bytes.
func scaleMinK4(s []byte, sc, mn *[8]uint8) {
	s = s[:12]
	for k := 0; k < 4; k++ {
		sc[k] = s[k] & 63
		mn[k] = s[k+4] & 63
	}
	for k := 4; k < 8; k++ {
		sc[k] = (s[k+4] & 0x0f) | (s[k-4]>>6)<<4
		mn[k] = (s[k+4] >> 4) | (s[k]>>6)<<4
	}
}

func deqQ4K(dst []float32, src []byte) {
	const ts = 144
	tab := f16Table()
	var sc, mn [8]uint8
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		d := tab[le.Uint16(b)]
		dmin := tab[le.Uint16(b[2:])]
		scaleMinK4(b[4:16], &sc, &mn)
		qs := b[16:144]
		// Sub-block 2c uses the low nibbles of qs[32c:32c+32], sub-block
		// 2c+1 the high nibbles.
		for c := 0; c < 4; c++ {
			q := qs[32*c : 32*c+32]
			d1, m1 := d*float32(sc[2*c]), dmin*float32(mn[2*c])
			d2, m2 := d*float32(sc[2*c+1]), dmin*float32(mn[2*c+1])
			y1 := y[64*c : 64*c+32]
			y2 := y[64*c+32 : 64*c+64]
			for l := range q {
				y1[l] = float32(d1*float32(q[l]&0x0f)) - m1
				y2[l] = float32(d2*float32(q[l]>>4)) - m2
			}
		}
	}
}

func deqQ5K(dst []float32, src []byte) {
	const ts = 176
	tab := f16Table()
	var sc, mn [8]uint8
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		d := tab[le.Uint16(b)]
		dmin := tab[le.Uint16(b[2:])]
		scaleMinK4(b[4:16], &sc, &mn)
		qh := b[16:48]
		qs := b[48:176]
		// As Q4_K, plus a fifth bit: bit k of qh[l] for sub-block k.
		for c := 0; c < 4; c++ {
			q := qs[32*c : 32*c+32]
			d1, m1 := d*float32(sc[2*c]), dmin*float32(mn[2*c])
			d2, m2 := d*float32(sc[2*c+1]), dmin*float32(mn[2*c+1])
			y1 := y[64*c : 64*c+32]
			y2 := y[64*c+32 : 64*c+64]
			s1, s2 := uint(2*c), uint(2*c+1)
			qh := qh[:32]
			for l := range q {
				v1 := q[l]&0x0f | ((qh[l]>>s1)&1)<<4
				v2 := q[l]>>4 | ((qh[l]>>s2)&1)<<4
				y1[l] = float32(d1*float32(v1)) - m1
				y2[l] = float32(d2*float32(v2)) - m2
			}
		}
	}
}

func deqQ6K(dst []float32, src []byte) {
	const ts = 210
	tab := f16Table()
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		ql := b[0:128]
		qh := b[128:192]
		scales := b[192:208]
		d := tab[le.Uint16(b[208:])]
		// Element j = 128*c + r: low nibble from ql[64c + r%64] (high
		// nibble when r >= 64), two high bits at shift 2*(r/32) of
		// qh[32c + r%32]; scale int8 scales[j/16].
		for c := 0; c < 2; c++ {
			l4 := ql[64*c : 64*c+64]
			h2 := qh[32*c : 32*c+32]
			yc := y[128*c : 128*c+128]
			for s := 0; s < 4; s++ {
				shiftL := uint(4 * (s / 2))
				shiftH := uint(2 * s)
				base := 32 * (s % 2)
				for h := 0; h < 2; h++ {
					dl := d * float32(int8(scales[8*c+2*s+h]))
					out := yc[32*s+16*h : 32*s+16*h+16]
					lq := l4[base+16*h : base+16*h+16]
					hq := h2[16*h : 16*h+16]
					for l := range out {
						v := int32((lq[l]>>shiftL)&0x0f) | int32((hq[l]>>shiftH)&3)<<4
						out[l] = dl * float32(v-32)
					}
				}
			}
		}
	}
}

func deqQ8K(dst []float32, src []byte) {
	const ts = 292
	for i := 0; i < len(dst)/qk; i++ {
		b := src[i*ts : i*ts+ts]
		y := dst[i*qk : i*qk+qk]
		d := math.Float32frombits(le.Uint32(b))
		qs := b[4 : 4+qk]
		for j := range y {
			y[j] = d * float32(int8(qs[j]))
		}
	}
}
