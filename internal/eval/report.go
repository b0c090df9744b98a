package eval

import (
	"errors"
	"fmt"
	"math"
)

// Scores are one prompt's numbers under every method, as cached by an
// evaluation run: nothing else of the analysis is kept.
type Scores struct {
	// Tokens is the prompt's token count.
	Tokens int
	// Drift holds the drift OOD score (oriented: higher = more unusual) at
	// each evaluated layer, in the order of the run's layer list.
	Drift []float64
	// Surprisal is the mean -ln p(token | prefix), nats.
	Surprisal float64
	// Entropy is the mean next-token entropy, nats.
	Entropy float64
	// MaxSoftmax is the mean probability of the most likely next token.
	MaxSoftmax float64
	// PDrift (one per layer, like Drift) and PSurprisal are calibrated
	// upper-tail p-values of drift and surprisal from a reference outside
	// the evaluation (the model's own calibration), when known. The
	// combinations use them only when every prompt of both sets has them;
	// otherwise they cross-fit p-values on the in-distribution set.
	PDrift     []float64
	PSurprisal float64
}

// calibrated reports whether s carries calibrated p-values for n layers.
func (s Scores) calibrated(n int) bool {
	if len(s.PDrift) != n || !(s.PSurprisal > 0 && s.PSurprisal <= 1) {
		return false
	}
	for _, p := range s.PDrift {
		if !(p > 0 && p <= 1) {
			return false
		}
	}
	return true
}

// Method names used in [Row].
const (
	MethodDrift      = "drift"
	MethodSurprisal  = "surprisal"
	MethodEntropy    = "entropy"
	MethodMaxSoftmax = "neg-max-softmax"
	MethodLength     = "length"
	MethodCombined   = "drift+surprisal"
	// MethodFisher and MethodMinP combine the upper-tail p-values of drift
	// and surprisal: Fisher's −2 Σ ln p ([FisherScore]) and Tippett's
	// −ln min p ([TippettScore]).
	MethodFisher = "fisher(drift,surprisal)"
	MethodMinP   = "minp(drift,surprisal)"
)

// Where the p-values of [MethodFisher] and [MethodMinP] come from (Row.PValues).
const (
	// PValuesCalibration: the model's own calibration (Scores.PDrift,
	// Scores.PSurprisal).
	PValuesCalibration = "calibration"
	// PValuesCrossFit: the in-distribution set itself, each
	// in-distribution prompt placed among the others (leave-one-out), each
	// shifted prompt among all of them.
	PValuesCrossFit = "cross-fit"
)

// Row is the evaluation of one method (at one layer) on one shifted set.
// Undefined metrics are NaN.
type Row struct {
	// Method is one of the Method* constants.
	Method string
	// Layer is the hidden state for drift and drift+surprisal, -1 otherwise.
	Layer int
	// Pos and Neg count the shifted and in-distribution items scored.
	Pos, Neg int
	// AUROC, AUPR and FPR95 (FPR at 95% TPR) with the shifted items as
	// positives and higher score = more unusual.
	AUROC, AUPR, FPR95 float64
	// Matched is the AUROC on length-matched pairs only; NMatched counts
	// the pairs.
	Matched  float64
	NMatched int
	// PValues says where a p-value combination's p-values came from
	// (PValuesCalibration or PValuesCrossFit); empty for other methods.
	PValues string
}

// scorer extracts one method's score from a prompt's Scores.
type scorer func(Scores) float64

// zParams are the in-distribution mean and standard deviation of a score.
type zParams struct{ mean, std float64 }

// fitZ returns the mean and population standard deviation of xs. The
// standard deviation is NaN when it is zero or xs is empty, so z-scores
// built on a constant score are undefined rather than infinite.
func fitZ(xs []float64) zParams {
	if len(xs) == 0 {
		return zParams{math.NaN(), math.NaN()}
	}
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	s := math.Sqrt(v / float64(len(xs)))
	if !(s > 0) || math.IsInf(s, 0) {
		s = math.NaN()
	}
	return zParams{m, s}
}

func (z zParams) z(x float64) float64 { return (x - z.mean) / z.std }

// ZScore returns (x - mean(ref)) / std(ref) for each x, with the
// population standard deviation of ref. All results are NaN when ref is
// empty or constant.
func ZScore(xs, ref []float64) []float64 {
	p := fitZ(ref)
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = p.z(x)
	}
	return out
}

// method is one row of an evaluation: its scores on both sets.
type method struct {
	name     string
	layer    int
	neg, pos []float64
	pvalues  string
}

// methods lists the rows of an evaluation in report order, with their
// scores on in (neg) and out (pos). Drift and the combinations get one
// row per layer; the z-sum is fitted on in, the p-value combinations use
// calibrated p-values when every prompt has them, else p-values
// cross-fitted on in (see PValuesCrossFit).
func methods(in, out []Scores, layers []int) []method {
	var ms []method
	add := func(name string, layer int, f scorer) {
		ms = append(ms, method{name: name, layer: layer, neg: apply(f, in), pos: apply(f, out)})
	}
	for i, h := range layers {
		add(MethodDrift, h, func(s Scores) float64 { return s.Drift[i] })
	}
	add(MethodSurprisal, -1, func(s Scores) float64 { return s.Surprisal })
	add(MethodEntropy, -1, func(s Scores) float64 { return s.Entropy })
	add(MethodMaxSoftmax, -1, func(s Scores) float64 { return -s.MaxSoftmax })
	add(MethodLength, -1, func(s Scores) float64 { return float64(s.Tokens) })
	sur := apply(func(s Scores) float64 { return s.Surprisal }, in)
	zs := fitZ(sur)
	for i, h := range layers {
		zd := fitZ(apply(func(s Scores) float64 { return s.Drift[i] }, in))
		add(MethodCombined, h, func(s Scores) float64 { return zd.z(s.Drift[i]) + zs.z(s.Surprisal) })
	}
	calibrated := true
	for _, set := range [][]Scores{in, out} {
		for _, s := range set {
			calibrated = calibrated && s.calibrated(len(layers))
		}
	}
	// pv[i] are the (drift at layer i, surprisal) p-values of each prompt.
	pvs := func(set []Scores, i int, p func(Scores, int, int) (float64, float64)) [][2]float64 {
		out := make([][2]float64, len(set))
		for j, s := range set {
			out[j][0], out[j][1] = p(s, i, j)
		}
		return out
	}
	var pIn, pOut func(Scores, int, int) (float64, float64)
	source := PValuesCalibration
	if calibrated {
		pIn = func(s Scores, i, _ int) (float64, float64) { return s.PDrift[i], s.PSurprisal }
		pOut = pIn
	} else {
		source = PValuesCrossFit
		refS := NewRefDist(sur, nil)
		refD := make([]*RefDist, len(layers))
		for i := range layers {
			refD[i] = NewRefDist(apply(func(s Scores) float64 { return s.Drift[i] }, in), nil)
		}
		pIn = func(s Scores, i, j int) (float64, float64) {
			return refD[i].UpperP(s.Drift[i], j), refS.UpperP(s.Surprisal, j)
		}
		pOut = func(s Scores, i, _ int) (float64, float64) {
			return refD[i].UpperP(s.Drift[i], -1), refS.UpperP(s.Surprisal, -1)
		}
	}
	for _, c := range []struct {
		name string
		f    func(...float64) float64
	}{{MethodFisher, FisherScore}, {MethodMinP, TippettScore}} {
		for i, h := range layers {
			m := method{name: c.name, layer: h, pvalues: source}
			for _, p := range pvs(in, i, pIn) {
				m.neg = append(m.neg, c.f(p[0], p[1]))
			}
			for _, p := range pvs(out, i, pOut) {
				m.pos = append(m.pos, c.f(p[0], p[1]))
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// Evaluate scores a shifted set (out, the positives) against the
// in-distribution set (in) under every method: drift at each layer (the
// i-th entry of Scores.Drift belongs to layers[i]), surprisal, entropy,
// negative max-softmax, length alone (the token count: a confound check)
// z(drift)+z(surprisal) at each layer, with z fitted on in, and Fisher's
// and Tippett's combinations of the upper-tail p-values of drift and
// surprisal at each layer (from the calibration when every prompt carries
// calibrated p-values, else cross-fitted on in: an in-distribution prompt
// is placed among the other in-distribution prompts, never among a set
// holding itself, a shifted one among all of them). The
// length-matched AUROC pairs each shifted item with an unused
// in-distribution item whose token count differs by at most tol
// ([MatchByLengthTol]); the same pairs serve every method.
func Evaluate(in, out []Scores, layers []int, tol int) ([]Row, error) {
	if len(in) == 0 || len(out) == 0 {
		return nil, errors.New("eval: both sets need at least one scored prompt")
	}
	for _, set := range [][]Scores{in, out} {
		for _, s := range set {
			if len(s.Drift) != len(layers) {
				return nil, fmt.Errorf("eval: a prompt has %d drift scores for %d layers", len(s.Drift), len(layers))
			}
		}
	}
	inLens, outLens := lengths(in), lengths(out)
	pairs := MatchByLengthTol(inLens, outLens, tol)
	ms := methods(in, out, layers)
	rows := make([]Row, len(ms))
	for m, me := range ms {
		neg, pos := me.neg, me.pos
		r := Row{
			Method: me.name, Layer: me.layer, Pos: len(pos), Neg: len(neg),
			AUROC: AUROC(pos, neg), AUPR: AUPR(pos, neg), FPR95: FPRAtTPR(pos, neg, 0.95),
			Matched: math.NaN(), NMatched: len(pairs), PValues: me.pvalues,
		}
		if len(pairs) > 0 {
			mp, mn := make([]float64, len(pairs)), make([]float64, len(pairs))
			for k, p := range pairs {
				mn[k], mp[k] = neg[p[0]], pos[p[1]]
			}
			r.Matched = AUROC(mp, mn)
		}
		rows[m] = r
	}
	return rows, nil
}

func lengths(ss []Scores) []int {
	out := make([]int, len(ss))
	for i, s := range ss {
		out[i] = s.Tokens
	}
	return out
}

func apply(f scorer, ss []Scores) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = f(s)
	}
	return out
}

// BestLayer returns the index into rows of the row of the given method
// (e.g. MethodDrift) with the highest AUROC, or -1 when no such row has a
// defined AUROC. Ties keep the first (shallowest) row.
func BestLayer(rows []Row, method string) int {
	best := -1
	for i, r := range rows {
		if r.Method != method || math.IsNaN(r.AUROC) {
			continue
		}
		if best < 0 || r.AUROC > rows[best].AUROC {
			best = i
		}
	}
	return best
}

// FlippedBestLayer returns the index into rows of the row of the given
// method with the lowest AUROC — the best row for the opposite score
// orientation, whose AUROC is 1 minus the value in the row — or -1 when no
// such row has a defined AUROC. Ties keep the first (shallowest) row.
func FlippedBestLayer(rows []Row, method string) int {
	best := -1
	for i, r := range rows {
		if r.Method != method || math.IsNaN(r.AUROC) {
			continue
		}
		if best < 0 || r.AUROC < rows[best].AUROC {
			best = i
		}
	}
	return best
}
