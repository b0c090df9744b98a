package eval

import (
	"math"
	"slices"
	"sort"
)

// RefDist is an empirical reference distribution of scores whose values
// belong to groups (one group per in-distribution prompt), so that a value
// can be placed among the reference with its own group left out: an
// in-distribution prompt (or a corrupted copy of one) is then never
// compared with itself. This is cross-fitting taken to its limit
// (leave-one-group-out), and the p-values are the conformal ones.
type RefDist struct {
	all    []float64         // every finite value, ascending
	groups map[int][]float64 // each group's finite values, ascending
	sum    map[int][2]float64
	total  [2]float64 // Σx, Σx²
}

// NewRefDist builds a reference from values and their groups (groups[i]
// is the group of values[i]; nil groups puts each value in a group of its
// own, numbered by its index). NaN and ±Inf values are left out.
func NewRefDist(values []float64, groups []int) *RefDist {
	d := &RefDist{groups: map[int][]float64{}, sum: map[int][2]float64{}}
	for i, v := range values {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		g := i
		if groups != nil {
			g = groups[i]
		}
		d.all = append(d.all, v)
		d.groups[g] = append(d.groups[g], v)
		s := d.sum[g]
		d.sum[g] = [2]float64{s[0] + v, s[1] + v*v}
		d.total[0] += v
		d.total[1] += v * v
	}
	slices.Sort(d.all)
	for _, vs := range d.groups {
		slices.Sort(vs)
	}
	return d
}

// atLeast counts the values of ascending xs that are >= x.
func atLeast(xs []float64, x float64) int {
	return len(xs) - sort.SearchFloat64s(xs, x)
}

// N is the number of reference values once group leaveOut is left out (a
// group that does not exist, e.g. -1, leaves nothing out).
func (d *RefDist) N(leaveOut int) int { return len(d.all) - len(d.groups[leaveOut]) }

// UpperP is the upper-tail conformal p-value of x among the reference
// values outside group leaveOut: (1 + #{r >= x}) / (n + 1), n the number
// of those values. Ties count against x (the p-value is conservative),
// and it is never below 1/(n+1). NaN when x is NaN or no value is left.
func (d *RefDist) UpperP(x float64, leaveOut int) float64 {
	n := d.N(leaveOut)
	if math.IsNaN(x) || n == 0 {
		return math.NaN()
	}
	k := atLeast(d.all, x) - atLeast(d.groups[leaveOut], x)
	return float64(1+k) / float64(n+1)
}

// Z is (x − mean) / sd of the reference values outside group leaveOut
// (population sd); NaN when fewer than two values are left or they are
// all equal.
func (d *RefDist) Z(x float64, leaveOut int) float64 {
	n := float64(d.N(leaveOut))
	if n < 2 {
		return math.NaN()
	}
	g := d.sum[leaveOut]
	s, ss := d.total[0]-g[0], d.total[1]-g[1]
	m := s / n
	v := ss/n - m*m
	if !(v > 1e-24*max(1, m*m)) {
		return math.NaN()
	}
	return (x - m) / math.Sqrt(v)
}

// FisherScore is Fisher's combination statistic −2 Σ ln p of p-values in
// (0, 1]: higher = more unusual. It ranks like Fisher's combined p-value
// (χ² with 2k degrees of freedom, see calibrate.Fisher) without its
// underflow. NaN if any p is NaN.
func FisherScore(ps ...float64) float64 {
	var s float64
	for _, p := range ps {
		s -= 2 * math.Log(p)
	}
	return s
}

// TippettScore is −ln min p: Tippett's (min-p) combination as a score,
// higher = more unusual. It ranks like min(1, k·min p) (calibrate.MinP)
// except that it does not tie every text whose smallest p-value is above
// 1/k. NaN if any p is NaN.
func TippettScore(ps ...float64) float64 {
	m := math.Inf(1)
	for _, p := range ps {
		if math.IsNaN(p) {
			return math.NaN()
		}
		m = min(m, p)
	}
	return -math.Log(m)
}
