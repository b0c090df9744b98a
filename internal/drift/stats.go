package drift

import "math"

// Welford accumulates a running mean and variance with Welford's
// numerically stable update. The zero value is empty and ready to use.
type Welford struct {
	n    int
	mean float64
	m2   float64
}

// Add includes x.
func (w *Welford) Add(x float64) {
	w.n++
	delta := x - w.mean
	w.mean += delta / float64(w.n)
	w.m2 += delta * (x - w.mean)
}

// N returns the number of values added.
func (w Welford) N() int { return w.n }

// Mean returns the mean, 0 when empty.
func (w Welford) Mean() float64 { return w.mean }

// Var returns the sample variance (divisor n-1), 0 when n < 2.
func (w Welford) Var() float64 {
	if w.n < 2 {
		return 0
	}
	return max(0, w.m2/float64(w.n-1))
}

// Std returns the sample standard deviation, 0 when n < 2.
func (w Welford) Std() float64 { return math.Sqrt(w.Var()) }

// Stats summarises K values of one quantity (a ratio or an angle).
type Stats struct {
	// Mean and Std are the mean and sample standard deviation (divisor
	// N-1; 0 when N < 2) over the valid values.
	Mean, Std float64
	// N counts valid values, Invalid the excluded ones (zero norms, zero
	// input angle, non-finite values).
	N, Invalid int
	// Undefined is true when N == 0; Mean and Std are then 0 placeholders
	// and must not be read as measurements.
	Undefined bool
}

// Running collects values with validity flags into a [Stats]. The zero
// value is ready to use.
type Running struct {
	w       Welford
	invalid int
}

// Add includes x if ok and x is finite, otherwise counts it as invalid.
func (r *Running) Add(x float64, ok bool) {
	if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
		r.invalid++
		return
	}
	r.w.Add(x)
}

// Stats returns the summary so far.
func (r Running) Stats() Stats {
	return Stats{
		Mean:      r.w.Mean(),
		Std:       r.w.Std(),
		N:         r.w.N(),
		Invalid:   r.invalid,
		Undefined: r.w.N() == 0,
	}
}

// Ratio returns drift/input. It is valid only when both angles are valid,
// the input angle is positive and the quotient is finite; otherwise it
// returns (0, false).
func Ratio(drift float64, driftOK bool, input float64, inputOK bool) (float64, bool) {
	if !driftOK || !inputOK || !(input > 0) {
		return 0, false
	}
	r := drift / input
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return 0, false
	}
	return r, true
}
