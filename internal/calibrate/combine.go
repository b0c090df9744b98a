package calibrate

import (
	"fmt"
	"math"
)

// ChiSquareSurvivalEven is P(X > x) for X ~ χ² with 2k degrees of freedom,
// in closed form: e^{−x/2} Σ_{j<k} (x/2)^j / j!.
func ChiSquareSurvivalEven(x float64, k int) float64 {
	if k < 1 || math.IsNaN(x) {
		return math.NaN()
	}
	if x <= 0 {
		return 1
	}
	h := x / 2
	// Sum in log space term by term so that large x does not overflow.
	term, sum := 1.0, 1.0
	for j := 1; j < k; j++ {
		term *= h / float64(j)
		sum += term
	}
	return math.Min(1, math.Exp(-h+math.Log(sum)))
}

// checkP validates p-values for the combiners.
func checkP(ps []float64) error {
	if len(ps) == 0 {
		return fmt.Errorf("calibrate: no p-values to combine")
	}
	for i, p := range ps {
		if !(p > 0 && p <= 1) {
			return fmt.Errorf("calibrate: p-value %d is %v, want one in (0, 1]", i, p)
		}
	}
	return nil
}

// Fisher combines k p-values with Fisher's method: the statistic
// −2 Σ ln p, and its p-value under χ² with 2k degrees of freedom. That
// null distribution assumes the components are independent; drift,
// surprisal and entropy of one text are not, so the combined p-value is a
// heuristic ranking score, not an exact probability (correlated
// components make it too small).
func Fisher(ps ...float64) (stat, p float64, err error) {
	if err := checkP(ps); err != nil {
		return 0, 0, err
	}
	for _, v := range ps {
		stat -= 2 * math.Log(v)
	}
	return stat, ChiSquareSurvivalEven(stat, len(ps)), nil
}

// MinP combines k p-values by their minimum with Bonferroni's correction
// (Tippett's test made conservative): min(1, k·min p). It is valid under
// any dependence between the components, and a text that any one
// component finds extreme (p small) stays extreme after combining, at the
// cost of the factor k.
func MinP(ps ...float64) (float64, error) {
	if err := checkP(ps); err != nil {
		return 0, err
	}
	m := 1.0
	for _, v := range ps {
		m = math.Min(m, v)
	}
	return math.Min(1, float64(len(ps))*m), nil
}
