package gguf

import (
	"fmt"
	"math"
)

// NBits is a matrix in the layout of onnxruntime's com.microsoft
// MatMulNBits operator: rows (the operator's N, GGUF's outer dimension)
// of cols (K, GGUF's ne[0]) elements, each row cut into blocks of
// BlockSize elements along K. Element e of block b of row r has the
// integer code c and the value
//
//	(c - zp) * Scales[r*blocks + b]
//
// where zp is ZeroPoints[r*blocks + b], or 2^(Bits-1) when ZeroPoints is
// nil (the operator's default).
type NBits struct {
	Rows, Cols int
	Bits       int // 4 or 8
	BlockSize  int // 16 or 32
	// Codes holds the packed codes, [Rows, blocks, BlockSize*Bits/8]
	// bytes: with 4 bits, element 2i in the low nibble of byte i and 2i+1
	// in the high nibble (the operator's packing).
	Codes      []byte
	Scales     []float32 // [Rows, blocks]
	ZeroPoints []float32 // [Rows, blocks] or nil (the default zero point)
	// Exact is true when every value equals the GGUF dequantization
	// bit for bit; false when a float zero point stands in for a block
	// minimum (the values then differ by float32 rounding only).
	Exact bool
	// Factors, when set, hold Scales and ZeroPoints in the GGUF type's
	// own compact form, which a store keeps instead of them (nil for
	// re-quantized matrices, whose scales are float32).
	Factors *Factors
}

// Factors are the scales, and the block offsets when a type has them, of
// a block-quantized matrix the way GGUF block types store them: a
// half-precision factor per group of Group blocks, times a small integer
// per block (the K-quants), or a half-precision value per block (Group 1
// and no integers). For block b of a row, g = b/Group:
//
//	scale  = Scale[g]  · ScaleSub[b]    (ScaleSub nil: 1)
//	offset = Offset[g] · OffsetSub[b]   (OffsetSub nil: 1)
//
// and a value is scale·code − offset. ScaleZero turns a block's scale and
// offset into MatMulNBits's scale and zero point; NBits.Scales and
// NBits.ZeroPoints are exactly that (products of a half-precision value
// and an integer of at most 8 bits are exact in float32).
type Factors struct {
	Group     int
	Scale     []uint16 // binary16 bits, [Rows, blocks/Group]
	ScaleSub  []int8   // [Rows, blocks], or nil
	Offset    []uint16 // binary16 bits, [Rows, blocks/Group]; nil: no offsets
	OffsetSub []int8   // [Rows, blocks], or nil
}

// ScaleZero returns the MatMulNBits scale and zero point of a block whose
// values are scale·code − offset: zero point offset/scale, or, for a
// block of scale 0, scale offset and zero point 1 (the converter sets
// such a block's codes to 0, so every value is −offset). One rule for the
// converter, the store's embedding reader and the expanded scales a
// session reads (store).
func ScaleZero(scale, offset float32) (s, zp float32) {
	if scale == 0 {
		return offset, 1
	}
	return scale, offset / scale
}

// Half returns the float32 value of binary16 bits h.
func Half(h uint16) float32 { return f16Table()[h] }

// Blocks is the number of blocks in each row.
func (q *NBits) Blocks() int { return q.Cols / q.BlockSize }

// BlobSize is the number of bytes of one block's codes.
func (q *NBits) BlobSize() int { return q.BlockSize * q.Bits / 8 }

// code returns the code of element e of row r.
func (q *NBits) code(r, e int) int {
	if q.Bits == 8 {
		return int(q.Codes[r*q.Cols+e])
	}
	b := q.Codes[(r*q.Cols+e)/2]
	if e%2 == 1 {
		return int(b >> 4)
	}
	return int(b & 0x0f)
}

// Dequantize returns the matrix as float32, row-major [Rows, Cols], the
// way MatMulNBits defines its values: (code - zero point) * scale.
func (q *NBits) Dequantize() []float32 {
	out := make([]float32, q.Rows*q.Cols)
	nb := q.Blocks()
	def := float32(int(1) << (q.Bits - 1))
	for r := 0; r < q.Rows; r++ {
		for b := 0; b < nb; b++ {
			s := q.Scales[r*nb+b]
			zp := def
			if q.ZeroPoints != nil {
				zp = q.ZeroPoints[r*nb+b]
			}
			for e := b * q.BlockSize; e < (b+1)*q.BlockSize; e++ {
				out[r*q.Cols+e] = (float32(q.code(r, e)) - zp) * s
			}
		}
	}
	return out
}

// PermuteRows returns a copy of q whose row i is row order[i] of q.
func (q *NBits) PermuteRows(order []int) (*NBits, error) {
	if len(order) != q.Rows {
		return nil, fmt.Errorf("gguf: permute %d rows with an order of %d", q.Rows, len(order))
	}
	p := *q
	rb := q.Cols * q.Bits / 8
	nb := q.Blocks()
	p.Codes = make([]byte, len(q.Codes))
	p.Scales = make([]float32, len(q.Scales))
	if q.ZeroPoints != nil {
		p.ZeroPoints = make([]float32, len(q.ZeroPoints))
	}
	for i, src := range order {
		if src < 0 || src >= q.Rows {
			return nil, fmt.Errorf("gguf: permute rows: row %d does not exist", src)
		}
		copy(p.Codes[i*rb:(i+1)*rb], q.Codes[src*rb:(src+1)*rb])
		copy(p.Scales[i*nb:(i+1)*nb], q.Scales[src*nb:(src+1)*nb])
		if q.ZeroPoints != nil {
			copy(p.ZeroPoints[i*nb:(i+1)*nb], q.ZeroPoints[src*nb:(src+1)*nb])
		}
	}
	if f := q.Factors; f != nil {
		ng := nb / f.Group
		p.Factors = &Factors{Group: f.Group,
			Scale: permute(f.Scale, order, ng), ScaleSub: permute(f.ScaleSub, order, nb),
			Offset: permute(f.Offset, order, ng), OffsetSub: permute(f.OffsetSub, order, nb)}
	}
	return &p, nil
}

// permute returns the rows of v (of n elements each) in the given order;
// nil for nil.
func permute[T any](v []T, order []int, n int) []T {
	if v == nil {
		return nil
	}
	out := make([]T, len(v))
	for i, src := range order {
		copy(out[i*n:(i+1)*n], v[src*n:(src+1)*n])
	}
	return out
}

// nbitsLayout says how one GGUF block type maps onto MatMulNBits.
//
// Types whose values are scale*(q - offset) with an integer offset keep
// their codes, shifted so the operator's default zero point 2^(bits-1)
// plays the offset: exact, bit for bit, with no zero-point tensor. Types
// whose values are scale*q - offset (Q4_1, Q4_K; Q5_1 and Q5_K are
// re-quantized) get a float zero point offset/scale per block: (q -
// offset/scale) * scale equals scale*q - offset up to float32 rounding.
type nbitsLayout struct {
	bits, block int
	withMin     bool // float zero points stand in for block offsets
	// subScale and subOffset: each block (sub-block of the GGUF block)
	// has an integer factor of its own (Factors.ScaleSub, OffsetSub).
	subScale, subOffset bool
	// decode reads one GGUF block (ggml block of the type) into codes
	// q (one per element, unshifted), its half-precision scale factor d
	// and offset factor dOff, and per sub-block of `block` elements the
	// integer factors sc and off (see Factors).
	decode func(src []byte, q []uint8, d, dOff *uint16, sc, off []int8)
	offset int // integer offset of the offset types
	// requant types are dequantized and quantized again to symmetric
	// 8-bit blocks (onnxruntime computes 8-bit MatMulNBits only with
	// integer zero points, which a block minimum is not in general).
	requant bool
}

var nbitsLayouts = map[Type]nbitsLayout{
	Q4_0: {bits: 4, block: 32, offset: 8, decode: nbQ4_0},
	Q4_1: {bits: 4, block: 32, withMin: true, decode: nbQ4_1},
	Q5_0: {bits: 8, block: 32, offset: 16, decode: nbQ5_0},
	Q5_1: {bits: 8, block: 32, requant: true},
	Q8_0: {bits: 8, block: 32, offset: 0, decode: nbQ8_0},
	Q3_K: {bits: 4, block: 16, offset: 4, subScale: true, decode: nbQ3K},
	Q4_K: {bits: 4, block: 32, withMin: true, subScale: true, subOffset: true, decode: nbQ4K},
	Q5_K: {bits: 8, block: 32, requant: true},
	Q6_K: {bits: 8, block: 16, offset: 32, subScale: true, decode: nbQ6K},
}

// CanNBits reports whether tensors of type t can be kept block-quantized
// as MatMulNBits weights (see ToNBits).
func (t Type) CanNBits() bool {
	_, ok := nbitsLayouts[t]
	return ok
}

// NBitsExact reports whether type t maps onto MatMulNBits bit for bit
// (false: up to float32 rounding, re-quantized, or no mapping at all).
func (t Type) NBitsExact() bool {
	l, ok := nbitsLayouts[t]
	return ok && !l.withMin && !l.requant
}

// NBitsRequantized reports whether type t is re-quantized (rather than
// mapped) onto MatMulNBits.
func (t Type) NBitsRequantized() bool { return nbitsLayouts[t].requant }

// ToNBits converts the raw GGUF data of a rows × cols matrix of type t
// (cols = ne[0], the fastest-varying dimension) to MatMulNBits layout
// without expanding it to float32. The mapping per type:
//
//	Q4_0  4-bit, block 32, default zero point 8            exact
//	Q8_0  8-bit, block 32, codes +128                      exact
//	Q5_0  8-bit, block 32, codes +112                      exact
//	Q3_K  4-bit, block 16, codes +4 (scale d*(sc-32))      exact
//	Q6_K  8-bit, block 16, codes +96 (scale d*sc)          exact
//	Q4_1  4-bit, block 32, float zero point -m/d           float32 rounding
//	Q4_K  4-bit, block 32 (sub-block), zp dmin*m/(d*sc)   float32 rounding
//	Q5_1  8-bit, block 32, symmetric absmax/127           re-quantized
//	Q5_K  8-bit, block 32, symmetric absmax/127           re-quantized
//
// (onnxruntime's CPU MatMulNBits takes float zero points only with 4-bit
// codes, and then computes in float32 whatever the accuracy level; 8-bit
// codes need integer zero points, so the 5-bit types with a minimum are
// re-quantized: each value moves by at most half an 8-bit step,
// absmax/254, about a sixteenth of the 5-bit step.)
//
// Other types return an error wrapping ErrUnsupportedType: the caller
// keeps such a tensor as float32.
func ToNBits(t Type, data []byte, rows, cols int) (*NBits, error) {
	l, ok := nbitsLayouts[t]
	if !ok {
		return nil, fmt.Errorf("gguf: no MatMulNBits layout for %s: %w", t, ErrUnsupportedType)
	}
	bs, ts := int(t.BlockSize()), int(t.TypeSize())
	if rows <= 0 || cols <= 0 || cols%bs != 0 {
		return nil, fmt.Errorf("gguf: %s matrix of %d×%d: rows must be a whole number of %d-element blocks", t, rows, cols, bs)
	}
	if need := rows * (cols / bs) * ts; len(data) < need {
		return nil, fmt.Errorf("gguf: %s matrix of %d×%d needs %d bytes, have %d: %w", t, rows, cols, need, len(data), ErrTruncated)
	}
	if l.requant {
		v, err := Dequantize(t, data, rows*cols)
		if err != nil {
			return nil, err
		}
		return Requantize8(v, rows, cols, l.block)
	}
	q := &NBits{Rows: rows, Cols: cols, Bits: l.bits, BlockSize: l.block, Exact: !l.withMin}
	nb, ng := cols/l.block, cols/bs
	sub := bs / l.block
	q.Codes = make([]byte, rows*cols*l.bits/8)
	q.Scales = make([]float32, rows*nb)
	f := &Factors{Group: sub, Scale: make([]uint16, rows*ng)}
	if l.subScale {
		f.ScaleSub = make([]int8, rows*nb)
	}
	if l.withMin {
		q.ZeroPoints = make([]float32, rows*nb)
		f.Offset = make([]uint16, rows*ng)
		if l.subOffset {
			f.OffsetSub = make([]int8, rows*nb)
		}
	}
	q.Factors = f
	codes := make([]uint8, bs)
	zeros := make([]uint8, l.block)
	var d, dOff uint16
	sc, off := make([]int8, sub), make([]int8, sub)
	shift := (1 << (l.bits - 1)) - l.offset
	for r := 0; r < rows; r++ {
		for g := 0; g < ng; g++ {
			gi := r*ng + g
			off0 := gi * ts
			l.decode(data[off0:off0+ts], codes, &d, &dOff, sc, off)
			f.Scale[gi] = d
			if l.withMin {
				f.Offset[gi] = dOff
			}
			for s := 0; s < sub; s++ {
				bi := r*nb + g*sub + s // block index in the NBits layout
				c := codes[s*l.block : (s+1)*l.block]
				scale := Half(d)
				if l.subScale {
					f.ScaleSub[bi] = sc[s]
					scale *= float32(sc[s])
				}
				if l.withMin {
					o := Half(dOff)
					if l.subOffset {
						f.OffsetSub[bi] = off[s]
						o *= float32(off[s])
					}
					if scale == 0 {
						c = zeros // every value is -offset (see ScaleZero)
					}
					scale, q.ZeroPoints[bi] = ScaleZero(scale, o)
				}
				q.Scales[bi] = scale
				e0 := r*cols + (g*sub+s)*l.block
				for i, v := range c {
					code := int(v)
					if !l.withMin {
						code += shift
					}
					q.put(e0+i, uint8(code))
				}
			}
		}
	}
	return q, nil
}

// Requantize8 quantizes a float32 rows × cols matrix (row-major) to
// symmetric 8-bit MatMulNBits blocks of block elements: scale absmax/127,
// codes round(v/scale)+128, the default zero point 128.
func Requantize8(v []float32, rows, cols, block int) (*NBits, error) {
	if rows <= 0 || cols <= 0 || block <= 0 || cols%block != 0 || len(v) != rows*cols {
		return nil, fmt.Errorf("gguf: requantize %d values as %d×%d in blocks of %d", len(v), rows, cols, block)
	}
	q := &NBits{Rows: rows, Cols: cols, Bits: 8, BlockSize: block,
		Codes: make([]byte, rows*cols), Scales: make([]float32, rows*cols/block)}
	for b := range q.Scales {
		x := v[b*block : (b+1)*block]
		m := float32(0)
		for _, f := range x {
			m = max(m, float32(math.Abs(float64(f))))
		}
		s := m / 127
		q.Scales[b] = s
		for i, f := range x {
			c := 128
			if s != 0 {
				c = 128 + int(math.Round(float64(f/s)))
			}
			q.Codes[b*block+i] = uint8(min(max(c, 1), 255))
		}
	}
	return q, nil
}

// put stores code v of element index e (row-major over the whole matrix).
func (q *NBits) put(e int, v uint8) {
	if q.Bits == 8 {
		q.Codes[e] = v
		return
	}
	if e%2 == 0 {
		q.Codes[e/2] = q.Codes[e/2]&0xf0 | v&0x0f
	} else {
		q.Codes[e/2] = q.Codes[e/2]&0x0f | v<<4
	}
}

// Decoders of single ggml blocks into codes and scale (and offset)
// factors.

func nbQ4_0(b []byte, q []uint8, d, _ *uint16, _, _ []int8) {
	*d = le.Uint16(b)
	for j := 0; j < 16; j++ {
		q[j], q[j+16] = b[2+j]&0x0f, b[2+j]>>4
	}
}

func nbQ4_1(b []byte, q []uint8, d, dOff *uint16, _, _ []int8) {
	// value = d*q + m: the offset is -m (the sign bit flipped, exact).
	*d, *dOff = le.Uint16(b), le.Uint16(b[2:])^0x8000
	for j := 0; j < 16; j++ {
		q[j], q[j+16] = b[4+j]&0x0f, b[4+j]>>4
	}
}

func nbQ5_0(b []byte, q []uint8, d, _ *uint16, _, _ []int8) {
	*d = le.Uint16(b)
	qh := le.Uint32(b[2:])
	for j := 0; j < 16; j++ {
		q[j] = b[6+j]&0x0f | uint8((qh>>j)&1)<<4
		q[j+16] = b[6+j]>>4 | uint8((qh>>(j+16))&1)<<4
	}
}

func nbQ8_0(b []byte, q []uint8, d, _ *uint16, _, _ []int8) {
	*d = le.Uint16(b)
	// An int8 code v is kept as its byte; the shift of 128 (offset 0)
	// turns it into v+128 modulo 256, which the default zero point 128
	// maps back to v.
	copy(q, b[2:34])
}

func nbQ3K(b []byte, q []uint8, d, _ *uint16, scale, _ []int8) {
	*d = le.Uint16(b[108:])
	hmask, qs, sc := b[0:32], b[32:96], b[96:108]
	for k := 0; k < 16; k++ {
		var lo byte
		if k < 8 {
			lo = sc[k] & 0x0f
		} else {
			lo = sc[k-8] >> 4
		}
		hi := (sc[8+k%4] >> (2 * (k / 4))) & 3
		scale[k] = int8(int32(lo|hi<<4) - 32)
	}
	for c := 0; c < 2; c++ {
		for s := 0; s < 4; s++ {
			for h := 0; h < 2; h++ {
				for l := 0; l < 16; l++ {
					v := (qs[32*c+16*h+l] >> (2 * s)) & 3
					if (hmask[16*h+l]>>(4*c+s))&1 != 0 {
						v += 4 // a set high bit: value v; clear: v-4 (code v, offset 4)
					}
					q[128*c+32*s+16*h+l] = v
				}
			}
		}
	}
}

func nbQ4K(b []byte, q []uint8, d, dOff *uint16, scale, off []int8) {
	*d, *dOff = le.Uint16(b), le.Uint16(b[2:])
	var sc, mn [8]uint8
	scaleMinK4(b[4:16], &sc, &mn)
	for k := 0; k < 8; k++ {
		scale[k], off[k] = int8(sc[k]), int8(mn[k]) // 6-bit values
	}
	qs := b[16:144]
	for c := 0; c < 4; c++ {
		for l := 0; l < 32; l++ {
			q[64*c+l], q[64*c+32+l] = qs[32*c+l]&0x0f, qs[32*c+l]>>4
		}
	}
}

func nbQ6K(b []byte, q []uint8, d, _ *uint16, scale, _ []int8) {
	*d = le.Uint16(b[208:])
	ql, qh, sc := b[0:128], b[128:192], b[192:208]
	for k := 0; k < 16; k++ {
		scale[k] = int8(sc[k])
	}
	for c := 0; c < 2; c++ {
		for s := 0; s < 4; s++ {
			base := 32 * (s % 2)
			for h := 0; h < 2; h++ {
				for l := 0; l < 16; l++ {
					lo := (ql[64*c+base+16*h+l] >> (4 * (s / 2))) & 0x0f
					hi := (qh[32*c+16*h+l] >> (2 * s)) & 3
					q[128*c+32*s+16*h+l] = lo | hi<<4
				}
			}
		}
	}
}
