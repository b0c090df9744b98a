package drift

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Aggregation says how the per-token drift of one nudge becomes one
// prompt-level number.
//
// Flat is the method's original rule: the angle between the flattened
// selected rows of the clean and nudged hidden states, divided by the same
// angle of the input. A few tokens with a large hidden-state norm dominate
// it. The other aggregations combine the per-token ratios r_{t,k} of nudge
// k over the selected tokens instead, on a log scale, so that every token
// weighs the same:
//
//	score_k = agg_t( ln r_{t,k} )      prompt ratio of nudge k = exp(score_k)
//
// and the prompt ratio reported is the mean of exp(score_k) over the K
// nudges, with its standard deviation over K as the spread (the same
// summary Flat gets). With one token every aggregation equals that token's
// ratio.
type Aggregation int

const (
	// Flat is the angle of the flattened selection (the method's original;
	// lmood's default is Trimmed, lmood.DefaultAggregate).
	Flat Aggregation = iota
	// Mean is the mean of ln r_t: the geometric mean of the ratios.
	Mean
	// Median is the median of ln r_t (the mean of the two middle values
	// for an even count).
	Median
	// Trimmed is the mean of ln r_t after dropping floor(n/10) values from
	// each end of the sorted list (nothing is dropped below 10 tokens).
	Trimmed
	// TopK is the mean of the k largest ln r_t, k = max(1, ceil(n/4)): it
	// looks at the most expanded quarter of the prompt.
	TopK
	// NumAggregations counts the aggregations; Aggregation values index
	// arrays of this length.
	NumAggregations
)

var aggregationNames = [NumAggregations]string{"flat", "mean", "median", "trimmed", "topk"}

// String returns the aggregation's name as used in flags, JSON and docs.
func (a Aggregation) String() string {
	if a >= 0 && a < NumAggregations {
		return aggregationNames[a]
	}
	return fmt.Sprintf("Aggregation(%d)", int(a))
}

// Aggregations returns every aggregation in order (Flat first).
func Aggregations() []Aggregation {
	out := make([]Aggregation, NumAggregations)
	for i := range out {
		out[i] = Aggregation(i)
	}
	return out
}

// AggregationNames returns the names of every aggregation in order.
func AggregationNames() []string { return slices.Clone(aggregationNames[:]) }

// ParseAggregation parses an aggregation name (case-insensitive).
func ParseAggregation(s string) (Aggregation, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	for i, n := range aggregationNames {
		if n == name {
			return Aggregation(i), nil
		}
	}
	return 0, fmt.Errorf("drift: unknown aggregation %q (want one of %s)", s, strings.Join(aggregationNames[:], ", "))
}

// TrimCount is the number of values Trimmed drops from each end of n
// sorted values: floor(n/10).
func TrimCount(n int) int { return n / 10 }

// TopCount is the number of largest values TopK averages out of n:
// max(1, ceil(n/4)); 0 when n is 0.
func TopCount(n int) int {
	if n <= 0 {
		return 0
	}
	return max(1, (n+3)/4)
}

// AggregateLogs combines log-ratios under a by-token aggregation (Mean,
// Median, Trimmed or TopK). It sorts xs in place. ok is false when xs is
// empty, holds a non-finite value, or a is Flat (which needs the hidden
// states, not per-token ratios) or unknown.
func AggregateLogs(a Aggregation, xs []float64) (float64, bool) {
	n := len(xs)
	if n == 0 {
		return 0, false
	}
	for _, x := range xs {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return 0, false
		}
	}
	switch a {
	case Mean:
		return meanOf(xs), true
	case Median:
		slices.Sort(xs)
		if n%2 == 1 {
			return xs[n/2], true
		}
		return (xs[n/2-1] + xs[n/2]) / 2, true
	case Trimmed:
		slices.Sort(xs)
		g := TrimCount(n)
		return meanOf(xs[g : n-g]), true
	case TopK:
		slices.Sort(xs)
		return meanOf(xs[n-TopCount(n):]), true
	}
	return 0, false
}

// AggregateRatios combines ratios (not logs) under a: exp(agg(ln r)) for the
// by-token aggregations, the arithmetic mean for Flat (the rule used when
// no flattened angle exists, as in isolation mode). Each ratio is clamped
// to [MinRatio, MaxRatio] before its logarithm is taken. ok is false when
// rs is empty or holds NaN.
func AggregateRatios(a Aggregation, rs []float64) (float64, bool) {
	if len(rs) == 0 {
		return 0, false
	}
	if a == Flat {
		for _, r := range rs {
			if math.IsNaN(r) {
				return 0, false
			}
		}
		return meanOf(rs), true
	}
	logs := make([]float64, len(rs))
	for i, r := range rs {
		if math.IsNaN(r) {
			return 0, false
		}
		logs[i] = logRatio(r)
	}
	s, ok := AggregateLogs(a, logs)
	if !ok {
		return 0, false
	}
	return math.Exp(s), true
}

// logRatio is ln(r) with r clamped to [MinRatio, MaxRatio].
func logRatio(r float64) float64 { return math.Log(min(MaxRatio, max(MinRatio, r))) }

func meanOf(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
