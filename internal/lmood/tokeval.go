package lmood

import (
	"errors"
	"fmt"
	"math"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/calibrate"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
)

// Token-level method names (see [EvaluateSpans]). Drift and the
// combinations come once per evaluated hidden state.
const (
	TokenMethodDrift     = eval.MethodDrift
	TokenMethodSurprisal = eval.MethodSurprisal
	TokenMethodCombined  = eval.MethodCombined
	TokenMethodFisher    = eval.MethodFisher
	TokenMethodMinP      = eval.MethodMinP
)

// TokenScores are the per-token numbers of one analyzed prompt that a
// token-level evaluation keeps.
type TokenScores struct {
	// Drift[i][t] is the drift OOD score (drift.OODScore of the mean
	// per-token ratio: higher = more unusual) of token t at the i-th
	// evaluated hidden state.
	Drift [][]float64
	// Surprisal[t] is -ln p(token t | prefix), nats (position 0: 0, not
	// predicted).
	Surprisal []float64
	// PDrift[i][t] and PSurprisal[t] are calibrated upper-tail p-values
	// (positions 1..; nil when no calibration applies to every token).
	PDrift     [][]float64
	PSurprisal []float64
}

// TokenScoresOf extracts the per-token scores of res at layers, oriented
// by dir, with calibrated p-values from c when c is set and places every
// token. Position 0 is kept (as a placeholder: it is never evaluated).
func TokenScoresOf(res *analyze.Result, layers []int, dir drift.Direction, c *Calibration) (TokenScores, error) {
	var s TokenScores
	n := len(res.Tokens)
	if n < 2 {
		return s, errors.New("a single token: nothing to localize")
	}
	b := res.Baselines
	if b == nil || len(b.Tokens) != n {
		return s, errors.New("no per-token surprisal (the analyzer ran without Surprisal)")
	}
	s.Surprisal = make([]float64, n)
	for t := 1; t < n; t++ {
		if v := b.Tokens[t]; math.IsNaN(v) || math.IsInf(v, 0) {
			return s, fmt.Errorf("token %d: non-finite surprisal %v", t, v)
		}
		s.Surprisal[t] = b.Tokens[t]
	}
	for _, h := range layers {
		l, ok := res.Layer(h)
		if !ok {
			return s, fmt.Errorf("hidden state %d missing from the analysis", h)
		}
		d := make([]float64, n)
		for t := 1; t < n; t++ {
			st := l.TokenRatio[t]
			if !st.Defined || !(st.Mean > 0) {
				return s, fmt.Errorf("hidden state %d, token %d: per-token ratio undefined", h, t)
			}
			d[t] = drift.OODScore(st.Mean, dir)
		}
		s.Drift = append(s.Drift, d)
	}
	if c != nil {
		s.PDrift, s.PSurprisal = tokenP(res, layers, c)
	}
	return s, nil
}

// tokenP places every token of res (positions 1..) in the calibration;
// nil, nil unless every token of every layer has both p-values.
func tokenP(res *analyze.Result, layers []int, c *Calibration) ([][]float64, []float64) {
	sc, err := c.Ref.Score(res, c.dir, c.rule.Aggregator())
	if err != nil || len(sc.TokenSurprisal) != len(res.Tokens) {
		return nil, nil
	}
	n := len(res.Tokens)
	ps := make([]float64, n)
	for t := 1; t < n; t++ {
		if sc.TokenSurprisal[t] == nil {
			return nil, nil
		}
		ps[t] = sc.TokenSurprisal[t].P
	}
	var pd [][]float64
	for _, h := range layers {
		var ls *calibrate.LayerScore
		for i := range sc.Layers {
			if sc.Layers[i].Index == h {
				ls = &sc.Layers[i]
			}
		}
		if ls == nil || len(ls.Tokens) != n {
			return nil, nil
		}
		d := make([]float64, n)
		for t := 1; t < n; t++ {
			if ls.Tokens[t] == nil {
				return nil, nil
			}
			d[t] = ls.Tokens[t].P
		}
		pd = append(pd, d)
	}
	return pd, ps
}

// SpanCase is one edited prompt for [EvaluateSpans].
type SpanCase struct {
	// Source is the index of the reference prompt it was made from (left
	// out of the reference when the case is scored), or -1.
	Source int
	Scores TokenScores
	// Edited are the indices of the tokens overlapping the edit.
	Edited []int
}

// TokenRow is one method's token-level result on one span kind.
type TokenRow struct {
	Method string
	// Layer is the hidden state for drift and the combinations, -1
	// otherwise.
	Layer int
	eval.TokenMetrics
	// PValues says where the p-values of Fisher and min-p came from
	// (eval.PValuesCalibration or eval.PValuesCrossFit).
	PValues string
}

// tokenRef holds reference distributions of one per-token score by
// position bucket (calibrate.BucketStarts), each value grouped by the
// reference prompt it came from, and pooled over positions 1.. .
type tokenRef struct {
	buckets []*eval.RefDist
	pooled  *eval.RefDist
}

func newTokenRef(get func(k, t int) float64, lens []int) tokenRef {
	nb := len(calibrate.BucketStarts)
	vals, groups := make([][]float64, nb), make([][]int, nb)
	var pv []float64
	var pg []int
	for k, n := range lens {
		for t := 1; t < n; t++ {
			b, v := calibrate.Bucket(t), get(k, t)
			vals[b], groups[b] = append(vals[b], v), append(groups[b], k)
			pv, pg = append(pv, v), append(pg, k)
		}
	}
	r := tokenRef{pooled: eval.NewRefDist(pv, pg)}
	for b := range nb {
		r.buckets = append(r.buckets, eval.NewRefDist(vals[b], groups[b]))
	}
	return r
}

// dist returns the distribution for position pos with group leaveOut
// left out: its position bucket's when that keeps at least
// calibrate.MinBucket values, else the pooled one.
func (r tokenRef) dist(pos, leaveOut int) *eval.RefDist {
	if d := r.buckets[calibrate.Bucket(pos)]; d.N(leaveOut) >= calibrate.MinBucket {
		return d
	}
	return r.pooled
}

// EvaluateSpans measures how well each per-token score points at the
// edited tokens of cases: token-level AUROC (edited tokens against the
// other tokens of the same prompts) and top-1/top-3 localization, position
// 0 excluded (eval.EvaluateTokens). Methods, in order: drift at each
// layer, surprisal, then at each layer z(drift)+z(surprisal), Fisher's
// −2 Σ ln p and Tippett's −ln min p of the drift and surprisal p-values.
//
// ref are the per-token scores of the unedited in-distribution prompts:
// the z-scores and, unless every case carries calibrated p-values, the
// p-values place each token among the reference tokens of its position
// bucket (calibrate.BucketStarts; the pooled positions when the bucket has
// fewer than calibrate.MinBucket values), leaving out the prompt the case
// was made from.
func EvaluateSpans(ref []TokenScores, cases []SpanCase, layers []int) ([]TokenRow, error) {
	if len(ref) == 0 {
		return nil, errors.New("no in-distribution prompt to build the per-token reference from")
	}
	for _, set := range [][]TokenScores{ref, scoresOf(cases)} {
		for _, s := range set {
			if len(s.Drift) != len(layers) {
				return nil, fmt.Errorf("a prompt has drift at %d layers, want %d", len(s.Drift), len(layers))
			}
		}
	}
	lens := make([]int, len(ref))
	for k, s := range ref {
		lens[k] = len(s.Surprisal)
	}
	surRef := newTokenRef(func(k, t int) float64 { return ref[k].Surprisal[t] }, lens)
	driftRef := make([]tokenRef, len(layers))
	for i := range layers {
		driftRef[i] = newTokenRef(func(k, t int) float64 { return ref[k].Drift[i][t] }, lens)
	}
	calibrated := true
	for _, c := range cases {
		calibrated = calibrated && len(c.Scores.PDrift) == len(layers) && len(c.Scores.PSurprisal) == len(c.Scores.Surprisal)
	}
	source := eval.PValuesCrossFit
	if calibrated {
		source = eval.PValuesCalibration
	}
	// score builds the cases of one method from a per-token function.
	var rows []TokenRow
	add := func(method string, layer int, pv string, f func(c SpanCase, t int) float64) error {
		tc := make([]eval.TokenCase, len(cases))
		for j, c := range cases {
			s := make([]float64, len(c.Scores.Surprisal))
			for t := 1; t < len(s); t++ {
				s[t] = f(c, t)
			}
			tc[j] = eval.TokenCase{Scores: s, Edited: c.Edited}
		}
		m, err := eval.EvaluateTokens(tc)
		if err != nil {
			return fmt.Errorf("%s: %w", method, err)
		}
		rows = append(rows, TokenRow{Method: method, Layer: layer, TokenMetrics: m, PValues: pv})
		return nil
	}
	for i, h := range layers {
		if err := add(TokenMethodDrift, h, "", func(c SpanCase, t int) float64 { return c.Scores.Drift[i][t] }); err != nil {
			return nil, err
		}
	}
	if err := add(TokenMethodSurprisal, -1, "", func(c SpanCase, t int) float64 { return c.Scores.Surprisal[t] }); err != nil {
		return nil, err
	}
	pSur := func(c SpanCase, t int) float64 {
		if calibrated {
			return c.Scores.PSurprisal[t]
		}
		return surRef.dist(t, c.Source).UpperP(c.Scores.Surprisal[t], c.Source)
	}
	pDrift := func(i int, c SpanCase, t int) float64 {
		if calibrated {
			return c.Scores.PDrift[i][t]
		}
		return driftRef[i].dist(t, c.Source).UpperP(c.Scores.Drift[i][t], c.Source)
	}
	for _, m := range []struct {
		name string
		pv   string
		f    func(i int, c SpanCase, t int) float64
	}{
		{TokenMethodCombined, "", func(i int, c SpanCase, t int) float64 {
			return driftRef[i].dist(t, c.Source).Z(c.Scores.Drift[i][t], c.Source) + surRef.dist(t, c.Source).Z(c.Scores.Surprisal[t], c.Source)
		}},
		{TokenMethodFisher, source, func(i int, c SpanCase, t int) float64 { return eval.FisherScore(pDrift(i, c, t), pSur(c, t)) }},
		{TokenMethodMinP, source, func(i int, c SpanCase, t int) float64 { return eval.TippettScore(pDrift(i, c, t), pSur(c, t)) }},
	} {
		for i, h := range layers {
			if err := add(m.name, h, m.pv, func(c SpanCase, t int) float64 { return m.f(i, c, t) }); err != nil {
				return nil, err
			}
		}
	}
	return rows, nil
}

// crossFitTokenRows are the Fisher and min-p rows of cases with
// cross-fitted p-values (the calibrated ones dropped), renamed with
// CrossFitSuffix.
func crossFitTokenRows(ref []TokenScores, cases []SpanCase, layers []int) ([]TokenRow, error) {
	plain := make([]SpanCase, len(cases))
	for i, c := range cases {
		c.Scores.PDrift, c.Scores.PSurprisal = nil, nil
		plain[i] = c
	}
	rows, err := EvaluateSpans(ref, plain, layers)
	if err != nil {
		return nil, err
	}
	var keep []TokenRow
	for _, r := range rows {
		if r.Method == TokenMethodFisher || r.Method == TokenMethodMinP {
			r.Method += CrossFitSuffix
			keep = append(keep, r)
		}
	}
	return keep, nil
}

func scoresOf(cases []SpanCase) []TokenScores {
	out := make([]TokenScores, len(cases))
	for i, c := range cases {
		out[i] = c.Scores
	}
	return out
}

// TokenKindReport is the token-level evaluation of one span kind.
type TokenKindReport struct {
	Kind string
	// Edits counts the edited prompts made; NotApplicable the
	// in-distribution prompts this kind could not edit.
	Edits, NotApplicable int
	// Unaligned counts edited prompts whose token texts could not be lined
	// up with the text (or whose edit covers no token), Failed those that
	// could not be analyzed; both are left out. UnalignedExample is the
	// first unaligned one, with the reason.
	Unaligned, Failed int
	UnalignedExample  string
	Rows              []TokenRow
	Err               error
}

// TokenEvalReport is a token-level evaluation.
type TokenEvalReport struct {
	Kinds []TokenKindReport
	// NIn counts the in-distribution prompts in the per-token reference.
	NIn    int
	Layers []int
	// Calibration describes the calibration the p-values came from (""
	// when cross-fitted).
	Calibration string
	Meta        TokenEvalRecord
}

// TokenEvalRecord is one line of `lmood eval --json` for the token-level
// evaluation: one method (at one layer) on one span kind. Undefined
// metrics are null.
type TokenEvalRecord struct {
	// Level is LevelToken.
	Level string `json:"level"`
	// Kind is the span corruption (eval.SpanKinds).
	Kind   string `json:"span_kind"`
	Method string `json:"method"`
	Layer  *int   `json:"layer"`
	// AUROC of edited tokens against the other tokens of the same
	// prompts; Top1 and Top3 the fractions of prompts whose highest-scored
	// (three highest-scored) tokens include an edited one.
	AUROC *float64 `json:"auroc"`
	Top1  *float64 `json:"top1"`
	Top3  *float64 `json:"top3"`
	// Prompts evaluated, and tokens on each side.
	Prompts      int `json:"n_prompts"`
	EditedTokens int `json:"n_edited_tokens"`
	OtherTokens  int `json:"n_other_tokens"`
	// NotApplicable, Unaligned and Failed count prompts left out (see
	// TokenKindReport).
	NotApplicable int    `json:"n_not_applicable"`
	Unaligned     int    `json:"n_unaligned"`
	Failed        int    `json:"failed"`
	NIn           int    `json:"n_in"`
	PValues       string `json:"p_values,omitempty"`
	Error         string `json:"error,omitempty"`
	Setup
	// FirstToken is always "excluded": position 0 is never evaluated.
	FirstToken string `json:"first_token"`
}

// Records returns the report as JSON records: one per (kind, method,
// layer), or one carrying the error of a kind that could not be evaluated.
func (r *TokenEvalReport) Records() []TokenEvalRecord {
	var out []TokenEvalRecord
	for _, k := range r.Kinds {
		rec := r.Meta
		rec.Kind, rec.NotApplicable, rec.Unaligned, rec.Failed = k.Kind, k.NotApplicable, k.Unaligned, k.Failed
		if k.Err != nil {
			rec.Error = k.Err.Error()
			out = append(out, rec)
			continue
		}
		for _, row := range k.Rows {
			x := rec
			x.Method, x.PValues = row.Method, row.PValues
			if row.Layer >= 0 {
				l := row.Layer
				x.Layer = &l
			}
			x.AUROC, x.Top1, x.Top3 = FinitePtr(row.AUROC), FinitePtr(row.Top1), FinitePtr(row.Top3)
			x.Prompts, x.EditedTokens, x.OtherTokens = row.Prompts, row.Edited, row.Others
			out = append(out, x)
		}
	}
	return out
}

// Tokens is the token-level report of plan's span sets (after Analyze):
// per span kind, how well per-token drift at each layer, per-token
// surprisal and their combinations point at the edited tokens (see
// [EvaluateSpans]), the unedited SpanIn prompts forming the reference.
func (e *Evaluator) Tokens(plan EvalPlan) *TokenEvalReport {
	dir := e.Sess.Options().Direction
	rep := &TokenEvalReport{Layers: e.Layers}
	var ref []TokenScores
	refIndex := map[int]int{} // SpanIn index -> ref index
	for i, t := range plan.SpanIn {
		res, err := e.result(t)
		if err != nil {
			continue
		}
		s, err := TokenScoresOf(res, e.Layers, dir, nil)
		if err != nil {
			continue
		}
		refIndex[i] = len(ref)
		ref = append(ref, s)
	}
	rep.NIn = len(ref)
	anyCalibrated := false
	for _, set := range plan.Spans {
		kr := TokenKindReport{Kind: set.Kind, Edits: len(set.Edits), NotApplicable: set.NotApplicable}
		var cases []SpanCase
		for _, it := range set.Edits {
			res, err := e.result(it.Edit.Text)
			var s TokenScores
			if err == nil {
				s, err = TokenScoresOf(res, e.Layers, dir, e.Calib)
			}
			if err != nil {
				kr.Failed++
				continue
			}
			toks := make([]string, len(res.Tokens))
			for i, tk := range res.Tokens {
				toks[i] = tk.Text
			}
			edited, err := eval.TokensInSpan(it.Edit.Text, toks, it.Edit.Start, it.Edit.End)
			if err == nil && len(edited) == 0 {
				err = fmt.Errorf("the edit %q covers no token", it.Edit.Edited())
			}
			if err != nil {
				kr.Unaligned++
				if kr.UnalignedExample == "" {
					kr.UnalignedExample = fmt.Sprintf("%q: %v", it.Edit.Text, err)
				}
				continue
			}
			src, ok := refIndex[it.Source]
			if !ok {
				src = -1
			}
			cases = append(cases, SpanCase{Source: src, Scores: s, Edited: edited})
		}
		switch {
		case kr.Edits == 0:
			kr.Err = fmt.Errorf("no --in prompt has anything %s can edit", set.Kind)
		case len(cases) == 0:
			kr.Err = fmt.Errorf("no edited prompt could be evaluated (%d made, %d unaligned, %d failed)", kr.Edits, kr.Unaligned, kr.Failed)
		default:
			kr.Rows, kr.Err = EvaluateSpans(ref, cases, e.Layers)
			if kr.Err == nil && e.Calib != nil && e.CrossFitToo {
				var rows []TokenRow
				rows, kr.Err = crossFitTokenRows(ref, cases, e.Layers)
				kr.Rows = append(kr.Rows, rows...)
			}
		}
		for _, r := range kr.Rows {
			anyCalibrated = anyCalibrated || r.PValues == eval.PValuesCalibration
		}
		rep.Kinds = append(rep.Kinds, kr)
	}
	if anyCalibrated {
		rep.Calibration = e.Calib.Describe()
	}
	rep.Meta = TokenEvalRecord{Level: LevelToken, Setup: e.Sess.Setup(), FirstToken: firstTokenWord(false), NIn: rep.NIn}
	return rep
}
