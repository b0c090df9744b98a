package lmood

import (
	"math"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

// Rule says how an analysis becomes prompt-level numbers.
type Rule struct {
	// Isolate: the analysis nudged one token at a time, so no nudge moved
	// the whole prompt and prompt-level values summarise per-token ones.
	Isolate bool
	// IncludeFirst counts position 0 (always counted when it is the only
	// token).
	IncludeFirst bool
	// Aggregate is the prompt-level aggregation.
	Aggregate drift.Aggregation
}

// RuleOf returns the rule for an analyzer's options and an aggregation.
func RuleOf(opt analyze.Options, agg drift.Aggregation) Rule {
	return Rule{Isolate: opt.Isolate, IncludeFirst: opt.IncludeFirst, Aggregate: agg}
}

// Summary is a prompt's value at one hidden state. Undefined numbers are
// NaN.
type Summary struct {
	// Ratio is the prompt-level drift ratio under the rule's aggregation,
	// RatioStd its spread: over the K nudges, or across tokens in
	// isolation mode.
	Ratio, RatioStd float64
	// Drift and InputAngle are the mean prompt-level drift and input
	// angles in degrees: of the flattened selection whatever the
	// aggregation, or the means over the selected tokens in isolation mode.
	Drift, InputAngle float64
	// N is the number of values behind RatioStd: valid nudges, or tokens
	// in isolation mode.
	N int
	// OK is true when Ratio is a finite number.
	OK bool
}

// StdErr is the standard error of Ratio over the nudges, RatioStd/√N
// (NaN below two values).
func (s Summary) StdErr() float64 {
	if !s.OK || s.N < 2 {
		return math.NaN()
	}
	return s.RatioStd / math.Sqrt(float64(s.N))
}

// Precise reports whether every prompt-level value of res (one per
// measurement point) is known to within target under r: its standard
// error over the nudges, relative to the value itself, is at most target
// (StdErr ≤ target × Ratio). A point with no defined value does not hold
// sampling up (more nudges of a prompt that gave none rarely help). This
// is the stopping rule of adaptive K (Options.PrecisionTarget); isolation
// mode has no per-nudge prompt value and is never precise.
func (r Rule) Precise(res *analyze.Result, target float64) bool {
	if r.Isolate {
		return false
	}
	for i := range res.Layers {
		s := Summarize(res, &res.Layers[i], r)
		if !s.OK {
			continue
		}
		if se := s.StdErr(); !(se <= target*s.Ratio) {
			return false
		}
	}
	return true
}

// Summarize is THE prompt-level rule every front end uses.
//
// Whole-prompt nudges: the ratio is the analysis' prompt-level ratio under
// r.Aggregate (mean and std over the K nudges, see drift.Aggregation).
//
// Isolation mode: there is no per-nudge prompt value, so the defined
// per-token mean ratios of the selected tokens (position 0 left out unless
// r.IncludeFirst or it is the only token) are combined with the same
// aggregation — the arithmetic mean for flat, exp(agg(ln r_t)) otherwise —
// and RatioStd is the standard deviation of those ratios across tokens.
func Summarize(res *analyze.Result, l *analyze.Layer, r Rule) Summary {
	nan := math.NaN()
	s := Summary{Ratio: nan, RatioStd: nan, Drift: nan, InputAngle: nan}
	if r.Isolate {
		skip := !r.IncludeFirst
		var ratios []float64
		var spread drift.Welford
		for i, st := range l.TokenRatio {
			if (i == 0 && skip && len(l.TokenRatio) > 1) || !st.Defined {
				continue
			}
			ratios = append(ratios, st.Mean)
			spread.Add(st.Mean)
		}
		v, ok := drift.AggregateRatios(r.Aggregate, ratios)
		if r.Aggregate == drift.Flat {
			// The running mean, as always reported (bit for bit).
			v, ok = spread.Mean(), spread.N() > 0
		}
		if ok && isFinite(v) {
			s.Ratio, s.RatioStd, s.N, s.OK = v, spread.Std(), spread.N(), true
		}
		s.Drift, _ = MeanDefined(l.TokenDrift, skip)
		s.InputAngle, _ = MeanDefined(res.InputTokens, skip)
		return s
	}
	st := l.Ratio
	if r.Aggregate > drift.Flat && r.Aggregate < drift.NumAggregations {
		st = l.Aggregate[r.Aggregate]
	}
	if res.Selected == 0 || !st.Defined || !isFinite(st.Mean) {
		return s
	}
	s.Ratio, s.RatioStd, s.N, s.OK = st.Mean, st.Std, st.N, true
	if l.Drift.Defined {
		s.Drift = l.Drift.Mean
	}
	if res.InputAngle.Defined {
		s.InputAngle = res.InputAngle.Mean
	}
	return s
}

// MeanDefined is the mean and standard deviation of the defined values
// among st, skipping position 0 when skipFirst and there is more than one
// value; NaN when none is defined.
func MeanDefined(st []analyze.Stat, skipFirst bool) (mean, std float64) {
	var w drift.Welford
	for i, s := range st {
		if (i == 0 && skipFirst && len(st) > 1) || !s.Defined {
			continue
		}
		w.Add(s.Mean)
	}
	if w.N() == 0 {
		return math.NaN(), math.NaN()
	}
	return w.Mean(), w.Std()
}

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// FinitePtr returns &v, or nil for NaN and infinities (JSON null).
func FinitePtr(v float64) *float64 {
	if !isFinite(v) {
		return nil
	}
	return &v
}
