// Package eval holds the pure math used to judge an out-of-distribution
// score: ranking metrics (AUROC, average precision, FPR at a target TPR),
// length-control helpers (matching and length-binned AUROC) and
// deterministic text corruptions that produce shifted twins of
// in-distribution prompts.
//
// Conventions: "pos" holds scores of shifted / out-of-distribution items
// (the positive class) and "neg" scores of in-distribution items. A higher
// score means "more unusual". Metrics return NaN when undefined (an empty
// class, a NaN score or a bad target); callers should check with
// math.IsNaN before reporting.
package eval

import (
	"math"
	"slices"
)

type scored struct {
	s   float64
	pos bool
}

// group is a run of equal scores with its class counts.
type group struct {
	s    float64
	p, n int
}

// groups merges pos and neg into runs of equal scores, sorted by
// descending score. ok is false if either class is empty or a score is NaN.
func groups(pos, neg []float64) (gs []group, ok bool) {
	if len(pos) == 0 || len(neg) == 0 {
		return nil, false
	}
	all := make([]scored, 0, len(pos)+len(neg))
	for _, s := range pos {
		if math.IsNaN(s) {
			return nil, false
		}
		all = append(all, scored{s, true})
	}
	for _, s := range neg {
		if math.IsNaN(s) {
			return nil, false
		}
		all = append(all, scored{s, false})
	}
	slices.SortFunc(all, func(a, b scored) int {
		switch {
		case a.s > b.s:
			return -1
		case a.s < b.s:
			return 1
		}
		return 0
	})
	for i, x := range all {
		if i == 0 || x.s != all[i-1].s {
			gs = append(gs, group{s: x.s})
		}
		g := &gs[len(gs)-1]
		if x.pos {
			g.p++
		} else {
			g.n++
		}
	}
	return gs, true
}

// AUROC returns the area under the ROC curve: the probability that a
// random positive scores higher than a random negative, ties counting 1/2
// (the Mann–Whitney U statistic divided by |pos|*|neg|). O(n log n).
// It is NaN if either slice is empty or contains NaN; ±Inf are ordinary
// (extreme) scores.
func AUROC(pos, neg []float64) float64 {
	gs, ok := groups(pos, neg)
	if !ok {
		return math.NaN()
	}
	// Sweep from the lowest score up: each positive in a group beats all
	// negatives strictly below it and ties with the group's negatives.
	var u float64
	below := 0
	for i := len(gs) - 1; i >= 0; i-- {
		g := gs[i]
		u += float64(g.p) * (float64(below) + 0.5*float64(g.n))
		below += g.n
	}
	return u / (float64(len(pos)) * float64(len(neg)))
}

// AUPR returns the average precision with the positives (shifted items) as
// the positive class: AP = Σ_k (R_k - R_{k-1}) * P_k, where k runs over
// the distinct score values in descending order and (P_k, R_k) is the
// precision and recall when every item scoring >= that value is flagged.
// Tied items enter together, so the result does not depend on input
// order. A random score gives about |pos|/(|pos|+|neg|). NaN if a class is
// empty or a score is NaN.
func AUPR(pos, neg []float64) float64 {
	gs, ok := groups(pos, neg)
	if !ok {
		return math.NaN()
	}
	P := float64(len(pos))
	var ap float64
	tp, fp := 0, 0
	for _, g := range gs {
		tp += g.p
		fp += g.n
		if g.p > 0 {
			ap += float64(g.p) / P * float64(tp) / float64(tp+fp)
		}
	}
	return ap
}

// FPRAtTPR returns the false-positive rate at the strictest threshold that
// still reaches true-positive rate >= tpr (0 < tpr <= 1), e.g. FPR95 with
// tpr = 0.95. See [FPRAtTPRThreshold] for the convention.
func FPRAtTPR(pos, neg []float64, tpr float64) float64 {
	fpr, _ := FPRAtTPRThreshold(pos, neg, tpr)
	return fpr
}

// FPRAtTPRThreshold returns the FPR and the threshold used by [FPRAtTPR].
//
// Convention: an item is flagged when score >= threshold, and the
// candidate thresholds are the observed scores. Lowering the threshold
// only adds flags, so among all thresholds with TPR >= tpr the largest
// one has the smallest FPR; that one is used (reading "the threshold
// reaching the target TPR" as the first one met while sweeping down from
// the top score). All items tied at the threshold are flagged together —
// there is no interpolation inside a tie, so a tie spanning the target
// counts in full. Both results are NaN if a class is empty, a score is
// NaN, or tpr is outside (0, 1].
func FPRAtTPRThreshold(pos, neg []float64, tpr float64) (fpr, threshold float64) {
	if !(tpr > 0 && tpr <= 1) {
		return math.NaN(), math.NaN()
	}
	gs, ok := groups(pos, neg)
	if !ok {
		return math.NaN(), math.NaN()
	}
	P, N := float64(len(pos)), float64(len(neg))
	tp, fp := 0, 0
	for _, g := range gs {
		tp += g.p
		fp += g.n
		// Compare counts, not rates, to avoid rounding at exact targets:
		// tp/P >= tpr  <=>  tp >= tpr*P (up to a relative epsilon).
		if float64(tp) >= tpr*P*(1-1e-12) {
			return float64(fp) / N, g.s
		}
	}
	// Unreachable: the last group has tp == P.
	return 1, gs[len(gs)-1].s
}
