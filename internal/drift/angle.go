package drift

import (
	"fmt"
	"math"
)

const rad2deg = 180 / math.Pi

// AngleFromCosDeg returns degrees(arccos(clamp(cos, -1, 1))). A NaN cosine
// gives NaN.
func AngleFromCosDeg(cos float64) float64 {
	return math.Acos(max(-1, min(1, cos))) * rad2deg
}

// AngleDeg returns the angle in degrees between a and b, accumulated in
// float64. ok is false (and the angle 0) when the lengths differ, a vector
// is empty or has zero norm, or any value is non-finite. The result lies in
// [0, 180]; identical non-zero vectors give exactly 0.
func AngleDeg(a, b []float32) (float64, bool) {
	if len(a) != len(b) || len(a) == 0 {
		return 0, false
	}
	na, nb := math.Sqrt(sumSq(a)), math.Sqrt(sumSq(b))
	if !goodNorm(na) || !goodNorm(nb) {
		return 0, false
	}
	dm, dp := diffSums(a, b, 1/na, 1/nb)
	return kahan(dm, dp), true
}

// diffSums returns |a*ia - b*ib|^2 and |a*ia + b*ib|^2 (len(b) >= len(a)),
// with four independent accumulators to shorten the dependency chains.
func diffSums(a, b []float32, ia, ib float64) (dm, dp float64) {
	b = b[:len(a)]
	var m0, m1, m2, m3, p0, p1, p2, p3 float64
	i := 0
	for ; i+4 <= len(a); i += 4 {
		u0, v0 := float64(a[i])*ia, float64(b[i])*ib
		u1, v1 := float64(a[i+1])*ia, float64(b[i+1])*ib
		u2, v2 := float64(a[i+2])*ia, float64(b[i+2])*ib
		u3, v3 := float64(a[i+3])*ia, float64(b[i+3])*ib
		m0 += (u0 - v0) * (u0 - v0)
		m1 += (u1 - v1) * (u1 - v1)
		m2 += (u2 - v2) * (u2 - v2)
		m3 += (u3 - v3) * (u3 - v3)
		p0 += (u0 + v0) * (u0 + v0)
		p1 += (u1 + v1) * (u1 + v1)
		p2 += (u2 + v2) * (u2 + v2)
		p3 += (u3 + v3) * (u3 + v3)
	}
	for ; i < len(a); i++ {
		u, v := float64(a[i])*ia, float64(b[i])*ib
		m0 += (u - v) * (u - v)
		p0 += (u + v) * (u + v)
	}
	return (m0 + m1) + (m2 + m3), (p0 + p1) + (p2 + p3)
}

// kahan turns the squared norms of â-b̂ and â+b̂ into degrees.
func kahan(dm, dp float64) float64 {
	return 2 * math.Atan2(math.Sqrt(dm), math.Sqrt(dp)) * rad2deg
}

func goodNorm(n float64) bool {
	return n > 0 && !math.IsInf(n, 0) && !math.IsNaN(n)
}

// TokenAnglesDeg writes the angle between row t of a and row t of b into
// dst[t] for every token. valid, if non-nil, receives the ok flag of each
// row; invalid rows get the angle 0. Both slices need length a.Rows. It
// returns the number of invalid rows.
func TokenAnglesDeg(dst []float64, valid []bool, a, b Matrix) (invalid int, err error) {
	if err := sameShape(a, b); err != nil {
		return 0, err
	}
	if len(dst) != a.Rows || (valid != nil && len(valid) != a.Rows) {
		return 0, fmt.Errorf("drift: token angle buffers need length %d", a.Rows)
	}
	for t := 0; t < a.Rows; t++ {
		ang, ok := AngleDeg(a.Row(t), b.Row(t))
		dst[t] = ang
		if valid != nil {
			valid[t] = ok
		}
		if !ok {
			invalid++
		}
	}
	return invalid, nil
}

// SelectionAngleDeg returns the angle between a and b flattened over the
// selected rows only (the rows are concatenated into one long vector). ok
// is false for an empty selection, zero norm or non-finite values. A nil
// selection selects every row.
func SelectionAngleDeg(a, b Matrix, sel Selection) (angle float64, ok bool, err error) {
	if err := sameShape(a, b); err != nil {
		return 0, false, err
	}
	if sel != nil && len(sel) != a.Rows {
		return 0, false, fmt.Errorf("drift: selection has %d entries, matrix %d rows", len(sel), a.Rows)
	}
	if sel == nil {
		ang, ok := AngleDeg(a.Data, b.Data)
		return ang, ok, nil
	}
	var sa, sb float64
	n := 0
	for t, on := range sel {
		if on {
			sa += sumSq(a.Row(t))
			sb += sumSq(b.Row(t))
			n++
		}
	}
	na, nb := math.Sqrt(sa), math.Sqrt(sb)
	if n == 0 || a.Cols == 0 || !goodNorm(na) || !goodNorm(nb) {
		return 0, false, nil
	}
	ia, ib := 1/na, 1/nb
	var dm, dp float64
	for t, on := range sel {
		if !on {
			continue
		}
		m, p := diffSums(a.Row(t), b.Row(t), ia, ib)
		dm += m
		dp += p
	}
	return kahan(dm, dp), true, nil
}

// Selection marks which token rows take part in prompt-level angles.
// A nil Selection means "all rows" where documented.
type Selection []bool

// Select builds a selection over T tokens. mask, if non-nil, must have
// length T and marks real (non-padding) tokens; skipFirst drops position 0
// (the BOS / attention-sink token, whose hidden states have abnormal norms
// in most causal LMs). Per-token values are still computed for skipped
// positions; only prompt-level angles ignore them. A single-token prompt
// with skipFirst yields an empty selection, whose prompt angles are
// reported invalid.
func Select(T int, skipFirst bool, mask []bool) (Selection, error) {
	if T < 0 {
		return nil, fmt.Errorf("drift: negative token count %d", T)
	}
	if mask != nil && len(mask) != T {
		return nil, fmt.Errorf("drift: mask has %d entries, want %d", len(mask), T)
	}
	s := make(Selection, T)
	for t := range s {
		s[t] = mask == nil || mask[t]
	}
	if skipFirst && T > 0 {
		s[0] = false
	}
	return s, nil
}

// Count returns the number of selected rows.
func (s Selection) Count() int {
	n := 0
	for _, on := range s {
		if on {
			n++
		}
	}
	return n
}
