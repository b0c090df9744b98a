package drift

import (
	"fmt"
	"math"
	"strings"
)

// Direction says which side of the distortion ratio is taken as unusual.
// The method's authors claim networks "pinch" out-of-distribution inputs
// (smaller ratio); that claim must be measured per model, so the direction
// is a parameter, never a constant.
type Direction int

const (
	// Pinch: a lower ratio means more unusual.
	Pinch Direction = iota
	// Expand: a higher ratio means more unusual.
	Expand
)

// String returns "pinch" or "expand".
func (d Direction) String() string {
	switch d {
	case Pinch:
		return "pinch"
	case Expand:
		return "expand"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// ParseDirection parses "pinch" or "expand".
func ParseDirection(s string) (Direction, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "pinch":
		return Pinch, nil
	case "expand":
		return Expand, nil
	}
	return 0, fmt.Errorf("drift: unknown direction %q (want pinch or expand)", s)
}

// Bounds applied to ratios before taking logarithms in [OODScore].
const (
	MinRatio = 1e-12
	MaxRatio = 1e12
)

// OODScore maps a distortion ratio to an out-of-distribution score where
// larger always means more unusual: -ln(ratio) for Pinch, +ln(ratio) for
// Expand. The log makes a ratio halving and a ratio doubling equally far
// from 1 and is monotone, so AUROC is the same as for the raw ratio.
// The ratio is clamped to [MinRatio, MaxRatio] first (so ratio <= 0 scores
// as the most extreme small ratio and +Inf as the largest); NaN scores 0
// (ratio 1, neutral). The result is always finite. An unknown direction is
// treated as Pinch.
func OODScore(ratio float64, dir Direction) float64 {
	if math.IsNaN(ratio) {
		return 0
	}
	l := math.Log(min(MaxRatio, max(MinRatio, ratio)))
	if dir == Expand {
		return l
	}
	return -l
}
