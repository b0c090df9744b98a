package eval

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// MatchByLength pairs each shifted item with an unused in-distribution
// item of exactly the same token count. It is MatchByLengthTol with
// tolerance 0.
func MatchByLength(inLens, outLens []int) [][2]int {
	return MatchByLengthTol(inLens, outLens, 0)
}

// MatchByLengthTol pairs shifted items (outLens) with distinct
// in-distribution items (inLens) whose token counts differ by at most tol
// (negative tol is treated as 0). Each pair is {inIndex, outIndex}.
//
// The matching is greedy and deterministic: shifted items are visited in
// index order; each takes the unused in-distribution item with the
// smallest length difference, preferring the shorter one when a shorter
// and a longer candidate are equally far, and the lowest index among
// items of that length. Shifted items without a candidate are left out.
// With tol = 0 the greedy result is a maximum matching; with tol > 0 it
// may pair fewer items than the optimum.
func MatchByLengthTol(inLens, outLens []int, tol int) [][2]int {
	tol = max(tol, 0)
	buckets := make(map[int][]int) // length -> unused in indices, ascending
	for i, l := range inLens {
		buckets[l] = append(buckets[l], i)
	}
	var pairs [][2]int
	for j, l := range outLens {
		for delta := 0; delta <= tol; delta++ {
			cands := []int{l - delta}
			if delta > 0 {
				cands = append(cands, l+delta)
			}
			found := false
			for _, c := range cands {
				if b := buckets[c]; len(b) > 0 {
					pairs = append(pairs, [2]int{b[0], j})
					buckets[c] = b[1:]
					found = true
					break
				}
			}
			if found {
				break
			}
		}
	}
	return pairs
}

// Bin is one length bin of a [BinnedAUROC] result.
type Bin struct {
	// Lo and Hi bound the bin: Lo <= length < Hi.
	Lo, Hi int
	// Pos and Neg count the items of each class in the bin.
	Pos, Neg int
	// AUROC within the bin; meaningful only when Defined (both classes
	// present), otherwise 0.
	AUROC   float64
	Defined bool
}

// Binned is the result of [BinnedAUROC].
type Binned struct {
	// AUROC is the average of the bins' AUROCs weighted by Pos*Neg, i.e.
	// the probability that a random (positive, negative) pair drawn from
	// the same length bin is ordered correctly (ties 1/2).
	AUROC float64
	// Bins lists every bin, defined or not, in length order.
	Bins []Bin
	// Pairs is the total weight Σ Pos*Neg over defined bins.
	Pairs float64
	// Skipped counts items whose length falls outside every bin or whose
	// bin lacks the other class.
	Skipped int
}

// BinnedAUROC computes AUROC within length bins and combines them (see
// [Binned]). posLens and negLens give each item's length (token count).
// edges, if non-nil, must be strictly increasing and define bins
// [edges[i], edges[i+1]); lengths outside [edges[0], edges[last]) are
// skipped. nil edges put each distinct length in its own bin (exact
// length stratification). It fails on mismatched slices, bad edges, NaN
// scores, or when no bin holds both classes.
//
// The AUROC of length alone — how well length by itself separates the
// classes — is just AUROC on the lengths converted to float64.
func BinnedAUROC(pos, neg []float64, posLens, negLens []int, edges []int) (Binned, error) {
	if len(pos) != len(posLens) || len(neg) != len(negLens) {
		return Binned{}, errors.New("eval: scores and lengths differ in size")
	}
	if edges == nil {
		set := append(slices.Clone(posLens), negLens...)
		slices.Sort(set)
		set = slices.Compact(set)
		if len(set) > 0 {
			edges = append(set, set[len(set)-1]+1)
		}
	} else {
		if len(edges) < 2 {
			return Binned{}, errors.New("eval: need at least two bin edges")
		}
		for i := 1; i < len(edges); i++ {
			if edges[i] <= edges[i-1] {
				return Binned{}, fmt.Errorf("eval: bin edges not strictly increasing at %d", i)
			}
		}
	}
	nb := max(len(edges)-1, 0)
	bp := make([][]float64, nb)
	bn := make([][]float64, nb)
	var res Binned
	binOf := func(l int) int {
		// First edge > l, minus one.
		k, _ := slices.BinarySearch(edges, l+1)
		if k == 0 || k > nb {
			return -1
		}
		return k - 1
	}
	for i, l := range posLens {
		if b := binOf(l); b >= 0 {
			bp[b] = append(bp[b], pos[i])
		} else {
			res.Skipped++
		}
	}
	for i, l := range negLens {
		if b := binOf(l); b >= 0 {
			bn[b] = append(bn[b], neg[i])
		} else {
			res.Skipped++
		}
	}
	var sum float64
	for b := 0; b < nb; b++ {
		bin := Bin{Lo: edges[b], Hi: edges[b+1], Pos: len(bp[b]), Neg: len(bn[b])}
		if bin.Pos > 0 && bin.Neg > 0 {
			a := AUROC(bp[b], bn[b])
			if math.IsNaN(a) {
				return Binned{}, errors.New("eval: NaN score")
			}
			bin.AUROC, bin.Defined = a, true
			w := float64(bin.Pos) * float64(bin.Neg)
			sum += w * a
			res.Pairs += w
		} else {
			res.Skipped += bin.Pos + bin.Neg
		}
		res.Bins = append(res.Bins, bin)
	}
	if res.Pairs == 0 {
		return res, errors.New("eval: no length bin holds both classes")
	}
	res.AUROC = sum / res.Pairs
	return res, nil
}
