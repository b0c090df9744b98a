package gguf

import (
	"math"
	"sync"
)

// f16ToF32 converts an IEEE 754 binary16 value to float32 exactly. NaN
// payloads are preserved.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // Inf / NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	}
	// Subnormal: shift the mantissa up until its leading bit becomes the
	// implicit one, adjusting the exponent accordingly.
	e := uint32(127 - 15 + 1)
	for mant&0x400 == 0 {
		mant <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
}

// f32ToF16 converts a float32 to binary16 with round-to-nearest-even,
// overflowing to infinity. NaNs become a quiet NaN of the same sign.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Result is subnormal (or zero): value = m * 2^-24.
		if e < -10 {
			return sign
		}
		full := mant | 0x800000
		shift := uint32(14 - e)
		m := full >> shift
		rem := full & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++
		}
		return sign | uint16(m)
	}
	m := mant >> 13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && m&1 == 1) {
		m++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(uint32(e)<<10+m)
}

// f32ToBF16 converts a float32 to bfloat16 with round-to-nearest-even,
// quieting NaNs (as ggml does).
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((uint64(b) + 0x7fff + uint64((b>>16)&1)) >> 16)
}

// f16Table maps every binary16 bit pattern to its float32 value.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = f16ToF32(uint16(i))
	}
	return &t
})

// F16ToF32 converts IEEE 754 half-precision bits to a float32 (exact).
func F16ToF32(h uint16) float32 { return f16ToF32(h) }

// F32ToF16 converts a float32 to IEEE 754 half-precision bits, rounding to
// nearest even.
func F32ToF16(f float32) uint16 { return f32ToF16(f) }
