// Package calibrate turns raw drift and logit scores into calibrated ones:
// where a prompt's value falls among the values of a reference set of
// texts, by default text the model generated itself, so that a score reads
// as "more unusual than 97% of the model's own text".
//
// A Reference holds, per measurement point, the distribution of the
// prompt-level ln-ratio and of the per-token ln-ratio by position bucket
// (the ratio depends on position: under causal noise mixing a later token
// sees noise from every token before it) and by token class within each
// position bucket (TokenClasses: by default frequent or rare in the
// reference texts), and the distributions of the logit baselines
// (per-token surprisal by position bucket and class, prompt-level mean
// surprisal, entropy and max-softmax). It is saved as JSON in the
// model's store directory with the identity of the analysis it describes,
// and a file whose identity differs from the analysis asked for is
// refused, never applied.
//
// The package is pure apart from Save, Load and Find, and the reference
// builders in build.go, which run a model.
package calibrate

import (
	"math"
	"slices"
	"sort"
)

// SketchSize is the number of quantiles a Dist keeps when it has more
// values than that; with fewer it keeps every value.
const SketchSize = 1001

// Dist is an empirical distribution, kept as values at evenly spaced
// probabilities: Q[i] is the quantile at i/(len(Q)-1) (type 7, linear
// interpolation). With at most SketchSize values, Q is simply all of them,
// sorted.
type Dist struct {
	N    int       `json:"n"`    // values the distribution was built from
	Mean float64   `json:"mean"` // their mean
	Std  float64   `json:"std"`  // their standard deviation (n-1)
	Q    []float64 `json:"q"`    // quantiles, ascending
}

// NewDist builds the distribution of the finite values among vs (others
// are left out). vs is not modified.
func NewDist(vs []float64) Dist {
	x := make([]float64, 0, len(vs))
	for _, v := range vs {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			x = append(x, v)
		}
	}
	slices.Sort(x)
	d := Dist{N: len(x)}
	if d.N == 0 {
		return d
	}
	var s float64
	for _, v := range x {
		s += v
	}
	d.Mean = s / float64(d.N)
	if d.N > 1 {
		var ss float64
		for _, v := range x {
			ss += (v - d.Mean) * (v - d.Mean)
		}
		d.Std = math.Sqrt(ss / float64(d.N-1))
	}
	if d.N <= SketchSize {
		d.Q = x
		return d
	}
	d.Q = make([]float64, SketchSize)
	for i := range d.Q {
		d.Q[i] = quantile(x, float64(i)/float64(SketchSize-1))
	}
	return d
}

// quantile is the type-7 quantile of sorted x at probability p.
func quantile(x []float64, p float64) float64 {
	h := p * float64(len(x)-1)
	lo := int(math.Floor(h))
	if lo >= len(x)-1 {
		return x[len(x)-1]
	}
	return x[lo] + (h-float64(lo))*(x[lo+1]-x[lo])
}

// Empty reports whether the distribution has no values.
func (d *Dist) Empty() bool { return d == nil || d.N == 0 || len(d.Q) == 0 }

// CDF is the fraction of reference values at or below x, interpolated
// linearly between quantiles (the inverse of the type-7 quantile): 0 below
// the smallest value, 1 from the largest on. NaN for an empty
// distribution.
func (d *Dist) CDF(x float64) float64 {
	if d.Empty() || math.IsNaN(x) {
		return math.NaN()
	}
	q := d.Q
	m := len(q)
	if x < q[0] {
		return 0
	}
	if x >= q[m-1] {
		return 1
	}
	// j: the last quantile <= x, so q[j] <= x < q[j+1].
	j := sort.Search(m, func(i int) bool { return q[i] > x }) - 1
	return (float64(j) + (x-q[j])/(q[j+1]-q[j])) / float64(m-1)
}

// UpperP is the p-value of x in the upper tail: the estimated chance that
// a reference value is at least x, as (1 + N·(1−CDF(x))) / (N+1). It is
// never below 1/(N+1): a reference of N values cannot vouch for more.
func (d *Dist) UpperP(x float64) float64 {
	if d.Empty() || math.IsNaN(x) {
		return math.NaN()
	}
	n := float64(d.N)
	return (1 + n*(1-d.CDF(x))) / (n + 1)
}

// LowerP is the p-value of x in the lower tail, (1 + N·CDF(x)) / (N+1).
func (d *Dist) LowerP(x float64) float64 {
	if d.Empty() || math.IsNaN(x) {
		return math.NaN()
	}
	n := float64(d.N)
	return (1 + n*d.CDF(x)) / (n + 1)
}

// TwoSidedP is min(1, 2·min(UpperP, LowerP)): unusual on either side.
func (d *Dist) TwoSidedP(x float64) float64 {
	return math.Min(1, 2*math.Min(d.UpperP(x), d.LowerP(x)))
}

// Z is (x − Mean) / Std; 0 when the reference has no spread.
func (d *Dist) Z(x float64) float64 {
	if d.Empty() {
		return math.NaN()
	}
	if d.Std == 0 {
		return 0
	}
	return (x - d.Mean) / d.Std
}
