package calibrate

import (
	"fmt"
	"math"
	"slices"
)

// Token class schemes (TokenClasses.Scheme).
const (
	// ClassNorm classes a token by the norm of its embedding row as the
	// model consumes it (scaled like hidden state 0), cut at the terciles
	// of the reference's token occurrences: "low", "mid", "high" norm.
	ClassNorm = "norm"
	// ClassFreq classes a token by how often the reference texts use it:
	// "frequent" when it occurs at least FreqThreshold times in them
	// (the median count over the reference's token occurrences, so that
	// about half the reference tokens are frequent), else "rare" (a token
	// the reference never used is rare).
	ClassFreq = "freq"
	// ClassNone turns token classes off: per-token values are bucketed by
	// position only.
	ClassNone = "none"
)

// DefaultClassScheme is the token class a calibration buckets per-token
// values by, besides position. Chosen by measurement (README,
// "Calibration"; scripts/calibclass).
const DefaultClassScheme = ClassFreq

// ClassSchemes are the valid TokenClasses schemes.
var ClassSchemes = []string{ClassFreq, ClassNorm, ClassNone}

// TokenClasses assigns each vocabulary token a class, computed from the
// model alone (its embedding rows, or its own generated text), so that a
// token's per-token values are compared with reference tokens of the same
// position bucket and class.
type TokenClasses struct {
	Scheme string   `json:"scheme"`
	Labels []string `json:"labels"`
	// Edges are the class boundaries on the norm (ClassNorm): class c
	// holds norms in [Edges[c-1], Edges[c]).
	Edges []float64 `json:"edges,omitempty"`
	// FreqThreshold is the count from which a token is frequent
	// (ClassFreq).
	FreqThreshold int `json:"freq_threshold,omitempty"`
	// Of holds the class of every token id, one byte each: '0' + class.
	Of string `json:"of"`
}

// N is the number of classes (0 for none).
func (c *TokenClasses) N() int {
	if c == nil {
		return 0
	}
	return len(c.Labels)
}

// Class returns the class of token id, or -1 when there are no classes
// or the id is outside the vocabulary.
func (c *TokenClasses) Class(id int) int {
	if c == nil || id < 0 || id >= len(c.Of) {
		return -1
	}
	return int(c.Of[id] - '0')
}

// Label names class k: "rare tokens", "high-norm tokens".
func (c *TokenClasses) Label(k int) string {
	if c == nil || k < 0 || k >= len(c.Labels) {
		return "any tokens"
	}
	if c.Scheme == ClassNorm {
		return c.Labels[k] + "-norm tokens"
	}
	return c.Labels[k] + " tokens"
}

// check reports an inconsistent class table.
func (c *TokenClasses) check() error {
	if c == nil {
		return nil
	}
	if n := len(c.Labels); n < 2 || n > 9 || !slices.Contains(ClassSchemes, c.Scheme) || c.Scheme == ClassNone {
		return fmt.Errorf("token classes: scheme %q with %d labels", c.Scheme, n)
	}
	for i := 0; i < len(c.Of); i++ {
		if k := int(c.Of[i] - '0'); k < 0 || k >= len(c.Labels) {
			return fmt.Errorf("token classes: token %d has class %q", i, c.Of[i])
		}
	}
	return nil
}

// classString encodes one class per token id.
func classString(classes []int) string {
	b := make([]byte, len(classes))
	for i, k := range classes {
		b[i] = byte('0' + k)
	}
	return string(b)
}

// NormClasses classes every token of a vocabulary by its embedding norm
// (norms[id]), cut at the terciles of the norms of the reference's token
// occurrences (ids, with repeats).
func NormClasses(norms []float64, ids []int) (*TokenClasses, error) {
	var occ []float64
	for _, id := range ids {
		if id >= 0 && id < len(norms) {
			occ = append(occ, norms[id])
		}
	}
	if len(occ) < 3 {
		return nil, fmt.Errorf("calibrate: %w: %d reference tokens, too few to cut embedding norms into classes", ErrTooSmall, len(occ))
	}
	slices.Sort(occ)
	edges := []float64{quantile(occ, 1.0/3), quantile(occ, 2.0/3)}
	cls := make([]int, len(norms))
	for id, v := range norms {
		switch {
		case math.IsNaN(v) || v < edges[0]:
			cls[id] = 0
		case v < edges[1]:
			cls[id] = 1
		default:
			cls[id] = 2
		}
	}
	return &TokenClasses{Scheme: ClassNorm, Labels: []string{"low", "mid", "high"}, Edges: edges, Of: classString(cls)}, nil
}

// FreqClasses classes every token of a vocabulary of size vocab by how
// often the reference uses it (ids: its token occurrences, with repeats):
// frequent from the median occurrence's count on (at least 2), else rare.
func FreqClasses(vocab int, ids []int) (*TokenClasses, error) {
	count := make([]int, vocab)
	var occ []int
	for _, id := range ids {
		if id >= 0 && id < vocab {
			count[id]++
		}
	}
	for _, id := range ids {
		if id >= 0 && id < vocab {
			occ = append(occ, count[id])
		}
	}
	if len(occ) < 2 {
		return nil, fmt.Errorf("calibrate: %w: %d reference tokens, too few to class tokens by frequency", ErrTooSmall, len(occ))
	}
	slices.Sort(occ)
	thr := max(2, occ[len(occ)/2])
	cls := make([]int, vocab)
	for id, n := range count {
		if n < thr {
			cls[id] = 1
		}
	}
	return &TokenClasses{Scheme: ClassFreq, Labels: []string{"frequent", "rare"}, FreqThreshold: thr, Of: classString(cls)}, nil
}
