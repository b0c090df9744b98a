package generate

import (
	"fmt"
	"math"
	"sort"
)

// sampler draws a token from one row of logits: softmax at a temperature,
// restricted to allowed tokens, optionally to the top-p nucleus.
type sampler struct {
	temp, topP float64
	allowed    []bool
	p          []float64 // scratch: unnormalised probabilities
	order      []int     // scratch: token order for top-p
}

func newSampler(V int, temp, topP float64, allowed []bool) *sampler {
	return &sampler{temp: temp, topP: topP, allowed: allowed, p: make([]float64, V), order: make([]int, 0, V)}
}

// sample returns the token that u ∈ [0, 1) selects by inverse transform
// over the (nucleus-restricted) distribution, tokens in ID order (in
// probability order under top-p). Tokens not allowed or with a non-finite
// logit have probability 0.
func (s *sampler) sample(logits []float32, u float64) (int, error) {
	mx := math.Inf(-1)
	for i, l := range logits {
		if s.allowed[i] && !math.IsNaN(float64(l)) && !math.IsInf(float64(l), 0) {
			mx = math.Max(mx, float64(l)/s.temp)
		}
	}
	if math.IsInf(mx, -1) {
		return -1, fmt.Errorf("generate: no token has a finite logit (the model output is broken)")
	}
	var z float64
	for i, l := range logits {
		x := float64(l)
		s.p[i] = 0
		if s.allowed[i] && !math.IsNaN(x) && !math.IsInf(x, 0) {
			s.p[i] = math.Exp(x/s.temp - mx)
			z += s.p[i]
		}
	}
	if s.topP >= 1 {
		target := u * z
		var cum float64
		last := -1
		for i, p := range s.p {
			if p == 0 {
				continue
			}
			cum += p
			last = i
			if cum > target {
				return i, nil
			}
		}
		return last, nil // rounding: u*z at the very top
	}
	s.order = s.order[:0]
	for i, p := range s.p {
		if p > 0 {
			s.order = append(s.order, i)
		}
	}
	sort.SliceStable(s.order, func(a, b int) bool { return s.p[s.order[a]] > s.p[s.order[b]] })
	var mass float64
	n := 0
	for n < len(s.order) {
		mass += s.p[s.order[n]]
		n++
		if mass >= s.topP*z {
			break
		}
	}
	target := u * mass
	var cum float64
	for _, id := range s.order[:n] {
		cum += s.p[id]
		if cum > target {
			return id, nil
		}
	}
	return s.order[n-1], nil
}
