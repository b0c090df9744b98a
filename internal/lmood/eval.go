package lmood

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
)

// EvalSet is a named shifted set.
type EvalSet struct {
	Name  string
	Texts []string
}

// EvalPlan is what an evaluation scores: one in-distribution set and the
// shifted sets, each as prompt texts (deduplicated).
type EvalPlan struct {
	In   []string
	Sets []EvalSet
	// Corrupted names the sets made by corruptions.
	Corrupted map[string]bool
	// SpanIn are the --in prompts the span edits are made from (distinct,
	// valid UTF-8); with Spans they also form the per-token reference of
	// the token-level evaluation.
	SpanIn []string
	// Spans are the token-level sets: one-span edits of SpanIn, one set per
	// kind.
	Spans []SpanSet
	// Dropped are prompts left out before any analysis: an --in prompt
	// (or a pair) that is not valid UTF-8 is dropped whole, so that no
	// corrupted twin of it (which may be valid) is scored without it.
	Dropped []DroppedPrompt
}

// SpanSet is the token-level set of one span corruption kind.
type SpanSet struct {
	Kind  string
	Edits []SpanItem
	// NotApplicable counts the SpanIn prompts with nothing this kind can
	// edit (no number for digit, no determiner phrase for swap, ...).
	NotApplicable int
}

// SpanItem is one edited prompt: Edit.Text with its edited bytes, made
// from SpanIn[Source].
type SpanItem struct {
	Source int
	Edit   eval.SpanEdit
}

// DroppedPrompt is a prompt an evaluation plan left out, and why.
type DroppedPrompt struct {
	// Source says where it came from ("--in FILE line-or-record N",
	// "--pairs FILE pair N").
	Source string
	Text   string
	Reason string
}

// validUTF8 keeps the texts that are valid UTF-8 and reports the others
// as dropped (source names the i-th text, 1-based).
func (p *EvalPlan) validUTF8(texts []string, source func(i int) string, reason string) []string {
	out := texts[:0:0]
	for i, t := range texts {
		if !utf8.ValidString(t) {
			p.Dropped = append(p.Dropped, DroppedPrompt{Source: source(i + 1), Text: t, Reason: reason})
			continue
		}
		out = append(out, t)
	}
	return out
}

// EvalPlanOptions say where an evaluation's sets come from (the flags of
// `lmood eval`).
type EvalPlanOptions struct {
	// In are the in-distribution files (.txt one per line or .jsonl),
	// read in order; Limit applies to each.
	In []string
	// Shifted are shifted-set files, each named after its file.
	Shifted []string
	// Corrupt lists corruption kinds (comma-separated, or "all") applied
	// to the In prompts, seeded by Seed.
	Corrupt string
	Seed    uint64
	// Pairs are plain<TAB>twin files: plain lines join In, twins form a
	// set named after the file.
	Pairs []string
	// Limit keeps the first Limit prompts of each In file and of each shifted file
	// and the first Limit pairs of each pairs file (0 = all).
	Limit int
	// Spans lists span corruption kinds (comma-separated, or "all", see
	// eval.SpanKinds) for the token-level evaluation: each In prompt gets
	// one edit per kind, seeded by Seed.
	Spans string
}

func evalLimit[T any](xs []T, n int) []T {
	if n > 0 && len(xs) > n {
		return xs[:n]
	}
	return xs
}

// NewEvalPlan loads and builds the sets, without a model. Bad requests
// (nothing to compare, clashing names, unknown kinds) are usage errors.
func NewEvalPlan(o EvalPlanOptions) (EvalPlan, error) {
	var p EvalPlan
	if o.Limit < 0 {
		return p, optionErr("limit", "must be >= 0, got %d", o.Limit)
	}
	if len(o.In) == 0 && len(o.Pairs) == 0 {
		return p, UsageError(errors.New("no in-distribution prompts: give --in FILE (or --pairs FILE.tsv)"))
	}
	if o.Corrupt != "" && len(o.In) == 0 {
		return p, UsageError(errors.New("--corrupt corrupts the --in prompts: give --in FILE"))
	}
	if o.Spans != "" && len(o.In) == 0 {
		return p, UsageError(errors.New("--spans edits the --in prompts: give --in FILE"))
	}
	if len(o.Shifted) == 0 && o.Corrupt == "" && len(o.Pairs) == 0 && o.Spans == "" {
		return p, UsageError(errors.New("no shifted set: give --shifted FILE, --corrupt KIND[,KIND...], --pairs FILE.tsv or --spans KIND[,KIND...]"))
	}
	seen := map[string]bool{}
	addSet := func(name string, texts []string) error {
		if seen[name] {
			return UsageError(fmt.Errorf("two shifted sets are named %q: rename one of the files", name))
		}
		seen[name] = true
		p.Sets = append(p.Sets, EvalSet{Name: name, Texts: texts})
		return nil
	}
	var base []string
	for _, path := range o.In {
		texts, err := eval.ReadTexts(path)
		if err != nil {
			return p, fmt.Errorf("--in: %w", err)
		}
		base = append(base, p.validUTF8(evalLimit(texts, o.Limit), func(i int) string { return fmt.Sprintf("--in %s prompt %d", path, i) },
			"not valid UTF-8: left out, and no corrupted twin is made from it")...)
	}
	p.In = append(p.In, base...)
	for _, path := range o.Shifted {
		texts, err := eval.ReadTexts(path)
		if err != nil {
			return p, fmt.Errorf("--shifted: %w", err)
		}
		if err := addSet(eval.SetName(path), evalLimit(texts, o.Limit)); err != nil {
			return p, err
		}
	}
	if o.Corrupt != "" {
		kinds, err := eval.ParseKinds(o.Corrupt)
		if err != nil {
			return p, &OptionError{Option: "corrupt", Err: err}
		}
		p.Corrupted = map[string]bool{}
		for _, k := range kinds {
			twins, _, err := eval.CorruptAll(k, base, o.Seed)
			if err != nil {
				return p, err
			}
			if len(twins) == 0 {
				return p, fmt.Errorf("--corrupt %s: no --in prompt could be corrupted", k)
			}
			if err := addSet(k, twins); err != nil {
				return p, err
			}
			p.Corrupted[k] = true
		}
	}
	if o.Spans != "" {
		kinds, err := eval.ParseSpanKinds(o.Spans)
		if err != nil {
			return p, &OptionError{Option: "spans", Err: err}
		}
		p.SpanIn = dedupe(base)
		for _, k := range kinds {
			set := SpanSet{Kind: k}
			for i, t := range p.SpanIn {
				e, ok, err := eval.CorruptSpan(k, t, eval.ItemSeed(o.Seed, t))
				if err != nil {
					return p, err
				}
				if !ok {
					set.NotApplicable++
					continue
				}
				set.Edits = append(set.Edits, SpanItem{Source: i, Edit: e})
			}
			p.Spans = append(p.Spans, set)
		}
	}
	for _, path := range o.Pairs {
		ps, err := eval.ReadPairs(path)
		if err != nil {
			return p, fmt.Errorf("--pairs: %w", err)
		}
		ps = evalLimit(ps, o.Limit)
		twins := make([]string, 0, len(ps))
		for i, pr := range ps {
			if !utf8.ValidString(pr.Plain) || !utf8.ValidString(pr.Twin) {
				p.Dropped = append(p.Dropped, DroppedPrompt{Source: fmt.Sprintf("--pairs %s pair %d", path, i+1),
					Text: pr.Plain + "\t" + pr.Twin, Reason: "not valid UTF-8: the pair is left out (plain and twin)"})
				continue
			}
			p.In = append(p.In, pr.Plain)
			twins = append(twins, pr.Twin)
		}
		if err := addSet(eval.SetName(path), twins); err != nil {
			return p, err
		}
	}
	p.In = dedupe(p.In)
	for i := range p.Sets {
		p.Sets[i].Texts = dedupe(p.Sets[i].Texts)
	}
	return p, nil
}

// Prompts returns every distinct prompt of the plan, in-distribution first,
// the span edits last.
func (p EvalPlan) Prompts() []string {
	order := append([]string(nil), p.In...)
	for _, s := range p.Sets {
		order = append(order, s.Texts...)
	}
	order = append(order, p.SpanIn...)
	for _, s := range p.Spans {
		for _, e := range s.Edits {
			order = append(order, e.Edit.Text)
		}
	}
	return dedupe(order)
}

// dedupe drops repeated texts, keeping the first of each.
func dedupe(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// WriteCorruptedSets writes every corrupted set of the plan to dir/KIND.txt,
// one prompt per line (line breaks inside a prompt become spaces).
func WriteCorruptedSets(dir string, plan EvalPlan) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--write-corrupted: %w", err)
	}
	for _, s := range plan.Sets {
		if !plan.Corrupted[s.Name] {
			continue
		}
		var b strings.Builder
		for _, t := range s.Texts {
			b.WriteString(strings.NewReplacer("\r", " ", "\n", " ").Replace(t))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, s.Name+".txt"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("--write-corrupted: %w", err)
		}
	}
	return nil
}

// ParseAggregates parses the aggregations an evaluation compares: "all"
// (every aggregation, flat first) or a comma-separated list of names. The
// first is the primary one (its drift rows lead the report).
func ParseAggregates(s string) ([]drift.Aggregation, error) {
	if strings.EqualFold(strings.TrimSpace(s), "all") {
		return drift.Aggregations(), nil
	}
	var out []drift.Aggregation
	seen := map[drift.Aggregation]bool{}
	for _, part := range strings.Split(s, ",") {
		a, err := drift.ParseAggregation(part)
		if err != nil {
			return nil, &OptionError{Option: "aggregate", Err: err}
		}
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out, nil
}

// DriftMethod is the evaluation method name of drift under agg: "drift"
// for flat (as before aggregations existed), "drift/NAME" otherwise.
func DriftMethod(agg drift.Aggregation) string {
	if agg == drift.Flat {
		return eval.MethodDrift
	}
	return eval.MethodDrift + "/" + agg.String()
}

// FisherMethod is the method name of Fisher's combination of the drift
// and surprisal p-values under agg: "fisher(drift,surprisal)" for flat,
// "fisher(drift/NAME,surprisal)" otherwise. MinPMethod is the same for
// the min-p (Tippett) combination.
func FisherMethod(agg drift.Aggregation) string {
	return "fisher(" + DriftMethod(agg) + ",surprisal)"
}

// MinPMethod: see [FisherMethod].
func MinPMethod(agg drift.Aggregation) string {
	return "minp(" + DriftMethod(agg) + ",surprisal)"
}

// CombinedMethod is the method name of z(drift)+z(surprisal) under agg:
// "drift+surprisal" for flat, "drift/NAME+surprisal" otherwise.
func CombinedMethod(agg drift.Aggregation) string {
	return DriftMethod(agg) + "+surprisal"
}

// EvalScores converts one analysis into the numbers an evaluation keeps,
// one eval.Scores per aggregation in aggs (prompt-level values by
// [Summarize] under r with r.Aggregate replaced). layers must be hidden
// states of the analysis.
func EvalScores(res *analyze.Result, layers []int, r Rule, dir drift.Direction, aggs []drift.Aggregation) ([]eval.Scores, error) {
	if res.Baselines == nil {
		return nil, errors.New("no logit baselines (the analyzer ran without Surprisal)")
	}
	if len(res.Tokens) < 2 {
		return nil, errors.New("a single token: no next-token prediction to score")
	}
	if res.Selected == 0 && !r.Isolate {
		return nil, errors.New("no token counts in the prompt-level ratio (use --include-first)")
	}
	b := res.Baselines
	for _, v := range []float64{b.Surprisal, b.Entropy, b.MaxSoftmax} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, errors.New("non-finite logit baseline")
		}
	}
	out := make([]eval.Scores, len(aggs))
	for j, agg := range aggs {
		s := eval.Scores{Tokens: len(res.Tokens), Drift: make([]float64, len(layers)),
			Surprisal: b.Surprisal, Entropy: b.Entropy, MaxSoftmax: b.MaxSoftmax}
		ra := r
		ra.Aggregate = agg
		for i, h := range layers {
			l, ok := res.Layer(h)
			if !ok {
				return nil, fmt.Errorf("hidden state %d missing from the analysis", h)
			}
			sum := Summarize(res, l, ra)
			if !sum.OK || !(sum.Ratio > 0) {
				return nil, fmt.Errorf("hidden state %d: %s ratio %v is not a positive number", h, agg, sum.Ratio)
			}
			s.Drift[i] = drift.OODScore(sum.Ratio, dir)
		}
		out[j] = s
	}
	return out, nil
}

// EvalSetReport is the evaluation of one shifted set.
type EvalSetReport struct {
	Name   string
	Rows   []eval.Row
	Failed int // prompts of this set that failed
	Err    error
}

// EvalReport is a whole evaluation.
type EvalReport struct {
	Sets []EvalSetReport
	// NIn counts the in-distribution prompts scored.
	NIn int
	// Failed of Total distinct prompts could not be analyzed.
	Failed, Total int
	// Meta is the setup every record of the report carries.
	Meta EvalRecord
	// Layers are the hidden states evaluated, Aggregates the aggregations
	// (the first is the primary one).
	Layers     []int
	Aggregates []drift.Aggregation
	// Calibration describes the calibration the combinations' p-values
	// came from ("" when they were cross-fitted; a row's PValues says
	// which it used).
	Calibration string
}

// Record levels: a prompt-level record compares prompts, a token-level
// one tokens inside edited prompts.
const (
	LevelPrompt = "prompt"
	LevelToken  = "token"
)

// EvalRecord is one line of `lmood eval --json`: one method (at one layer)
// on one shifted set. Undefined metrics are null.
type EvalRecord struct {
	// Level is LevelPrompt.
	Level        string   `json:"level"`
	Set          string   `json:"set"`
	Method       string   `json:"method"`
	Layer        *int     `json:"layer"`
	Positives    int      `json:"n_shifted"`
	Negatives    int      `json:"n_in"`
	AUROC        *float64 `json:"auroc"`
	AUROCMatched *float64 `json:"auroc_length_matched"`
	NMatched     int      `json:"n_matched"`
	AUPR         *float64 `json:"aupr"`
	FPR95        *float64 `json:"fpr95"`
	Error        string   `json:"error,omitempty"`
	Failed       int      `json:"failed"`
	// PValues says where a combination's p-values came from:
	// "calibration" or "cross-fit" (eval.PValues*); empty for other methods.
	PValues string `json:"p_values,omitempty"`
	Setup
	FirstToken string `json:"first_token"`
	LengthTol  int    `json:"length_tol"`
}

// Records returns the report as JSON records: one per (set, method,
// layer), or one carrying the error of a set that could not be evaluated.
func (r *EvalReport) Records() []EvalRecord {
	var out []EvalRecord
	for _, rep := range r.Sets {
		if rep.Err != nil {
			rec := r.Meta
			rec.Set, rec.Failed, rec.Error = rep.Name, rep.Failed, rep.Err.Error()
			out = append(out, rec)
			continue
		}
		for _, row := range rep.Rows {
			rec := r.Meta
			rec.Set, rec.Method, rec.Failed = rep.Name, row.Method, rep.Failed
			if row.Layer >= 0 {
				l := row.Layer
				rec.Layer = &l
			}
			rec.Positives, rec.Negatives, rec.NMatched = row.Pos, row.Neg, row.NMatched
			rec.AUROC, rec.AUROCMatched, rec.AUPR, rec.FPR95 = FinitePtr(row.AUROC), FinitePtr(row.Matched), FinitePtr(row.AUPR), FinitePtr(row.FPR95)
			rec.PValues = row.PValues
			out = append(out, rec)
		}
	}
	return out
}

// EvalHooks watch an evaluation; every field may be nil.
type EvalHooks struct {
	// Done is called after each prompt.
	Done func()
	// Failed is called for the i-th prompt (1-based) that could not be
	// analyzed; it is left out of every set.
	Failed func(i int, text string, err error)
}

// Evaluator runs evaluations on one session: every distinct prompt is
// analyzed once (Analyze), and the prompt-level (Prompts) and token-level
// (Tokens) reports are read from those analyses.
type Evaluator struct {
	Sess *Session
	// Layers are the hidden states evaluated (the session's).
	Layers []int
	// Aggs are the prompt-level aggregations compared (nil: the
	// session's); the first is the primary one.
	Aggs []drift.Aggregation
	// LengthTol is the length-matching tolerance in tokens.
	LengthTol int
	// Calib, when set, supplies the p-values of the combinations (Fisher,
	// min-p): for the primary aggregation at prompt level and per token.
	// Without it they are cross-fitted on the in-distribution prompts.
	Calib *Calibration
	// CrossFitToo, with Calib, adds the combinations with cross-fitted
	// p-values as well (method names with CrossFitSuffix), so that one run
	// compares the calibration with cross-fitting on the same analyses.
	CrossFitToo bool
	Hooks       EvalHooks

	results map[string]*evalResult
}

type evalResult struct {
	res *analyze.Result
	err error
}

// Analyze analyzes every prompt of plan not analyzed yet. ctx interrupts
// between prompts. A prompt that fails is reported to Hooks.Failed and
// left out of every set.
func (e *Evaluator) Analyze(ctx context.Context, plan EvalPlan) error {
	if !e.Sess.Options().Surprisal {
		return errors.New("eval: the session was opened without surprisal")
	}
	if e.results == nil {
		e.results = map[string]*evalResult{}
	}
	order := plan.Prompts()
	start := time.Now()
	failed, done := 0, 0
	for _, text := range order {
		if _, ok := e.results[text]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("eval interrupted after %d of %d prompts: %w", done, len(order), err)
		}
		res, _, err := e.Sess.Analyze(text)
		e.results[text] = &evalResult{res: res, err: err}
		done++
		if err != nil {
			failed++
			if e.Hooks.Failed != nil {
				e.Hooks.Failed(done, text, fmt.Errorf("%w (left out)", err))
			}
		}
		if e.Hooks.Done != nil {
			e.Hooks.Done()
		}
	}
	e.Sess.hooks.logf("%d prompts analyzed in %v (%d forward passes)", done, time.Since(start).Round(time.Millisecond), e.Sess.Passes())
	return nil
}

// result returns the analysis of text (an error when it failed or was
// never analyzed).
func (e *Evaluator) result(text string) (*analyze.Result, error) {
	r, ok := e.results[text]
	if !ok {
		return nil, errors.New("not analyzed")
	}
	return r.res, r.err
}

func (e *Evaluator) aggs() []drift.Aggregation {
	if len(e.Aggs) == 0 {
		return []drift.Aggregation{e.Sess.rule.Aggregate}
	}
	return e.Aggs
}

// RunEval analyzes every distinct prompt of plan once on sess (whose
// hidden states must include layers and which must compute surprisal),
// then evaluates each shifted set against the in-distribution set under
// every aggregation in aggs: the first aggregation's report comes whole
// (drift, baselines, length, combinations), the others add their drift and
// combination rows (see [DriftMethod]). ctx interrupts between prompts.
// The p-value combinations are cross-fitted (see [Evaluator] for a
// calibrated run).
func RunEval(ctx context.Context, sess *Session, plan EvalPlan, layers []int, aggs []drift.Aggregation, lengthTol int, hooks EvalHooks) (*EvalReport, error) {
	e := &Evaluator{Sess: sess, Layers: layers, Aggs: aggs, LengthTol: lengthTol, Hooks: hooks}
	if err := e.Analyze(ctx, plan); err != nil {
		return nil, err
	}
	return e.Prompts(plan), nil
}

// calibratedP sets the calibrated p-values of s (the primary
// aggregation's scores of res) from c; it leaves them unset when c does
// not cover every layer.
func calibratedP(s *eval.Scores, res *analyze.Result, layers []int, c *Calibration) {
	sc, err := c.Ref.Score(res, c.dir, c.rule.Aggregator())
	if err != nil || sc.Surprisal == nil {
		return
	}
	pd := make([]float64, len(layers))
	for i, h := range layers {
		ok := false
		for _, ls := range sc.Layers {
			if ls.Index == h && ls.Prompt != nil {
				pd[i], ok = ls.Prompt.P, true
			}
		}
		if !ok {
			return
		}
	}
	s.PDrift, s.PSurprisal = pd, sc.Surprisal.P
}

// CrossFitSuffix ends the method names of combination rows whose p-values
// were cross-fitted although a calibration was applied
// (Evaluator.CrossFitToo): "fisher(drift,surprisal) cross-fit".
const CrossFitSuffix = " cross-fit"

// withoutP returns copies of scores without calibrated p-values, so that
// their combinations are cross-fitted.
func withoutP(scores []eval.Scores) []eval.Scores {
	out := make([]eval.Scores, len(scores))
	for i, s := range scores {
		s.PDrift, s.PSurprisal = nil, 0
		out[i] = s
	}
	return out
}

// crossFitRows are the combination rows of in against out with
// cross-fitted p-values, renamed with CrossFitSuffix.
func crossFitRows(in, out []eval.Scores, layers []int, tol int, agg drift.Aggregation) ([]eval.Row, error) {
	rows, err := eval.Evaluate(withoutP(in), withoutP(out), layers, tol)
	if err != nil {
		return nil, err
	}
	var keep []eval.Row
	for _, row := range rows {
		switch row.Method {
		case eval.MethodFisher:
			row.Method = FisherMethod(agg) + CrossFitSuffix
		case eval.MethodMinP:
			row.Method = MinPMethod(agg) + CrossFitSuffix
		default:
			continue
		}
		keep = append(keep, row)
	}
	return keep, nil
}

// Prompts is the prompt-level report of plan's shifted sets (after
// Analyze).
func (e *Evaluator) Prompts(plan EvalPlan) *EvalReport {
	aggs, layers, sess := e.aggs(), e.Layers, e.Sess
	opt := sess.Options()
	scores := map[string][]eval.Scores{}
	failed := 0
	order := dedupe(append(append([]string(nil), plan.In...), setTexts(plan.Sets)...))
	for k, t := range order {
		res, err := e.result(t)
		var sc []eval.Scores
		if err == nil {
			sc, err = EvalScores(res, layers, sess.rule, opt.Direction, aggs)
		}
		if err != nil {
			failed++
			if r := e.results[t]; r != nil && r.err == nil && e.Hooks.Failed != nil {
				e.Hooks.Failed(k+1, t, fmt.Errorf("%w (left out)", err))
			}
			continue
		}
		if e.Calib != nil {
			calibratedP(&sc[0], res, layers, e.Calib)
		}
		scores[t] = sc
	}
	collect := func(texts []string, j int) ([]eval.Scores, int) {
		var out []eval.Scores
		nf := 0
		for _, t := range texts {
			sc, ok := scores[t]
			if !ok {
				nf++
				continue
			}
			out = append(out, sc[j])
		}
		return out, nf
	}
	rep := &EvalReport{Failed: failed, Total: len(order), Layers: layers, Aggregates: aggs}
	in0, _ := collect(plan.In, 0)
	rep.NIn = len(in0)
	for _, s := range plan.Sets {
		sr := EvalSetReport{Name: s.Name}
		for j, agg := range aggs {
			in, _ := collect(plan.In, j)
			out, nf := collect(s.Texts, j)
			rows, err := eval.Evaluate(in, out, layers, e.LengthTol)
			if err != nil {
				sr.Err = err
				break
			}
			sr.Failed = nf
			for _, row := range rows {
				switch row.Method {
				case eval.MethodDrift:
					row.Method = DriftMethod(agg)
				case eval.MethodCombined:
					row.Method = CombinedMethod(agg)
				case eval.MethodFisher:
					row.Method = FisherMethod(agg)
				case eval.MethodMinP:
					row.Method = MinPMethod(agg)
				default:
					if j > 0 {
						continue // baselines once, from the primary aggregation
					}
				}
				sr.Rows = append(sr.Rows, row)
			}
			if j == 0 && e.Calib != nil && e.CrossFitToo {
				rows, err := crossFitRows(in, out, layers, e.LengthTol, agg)
				if err != nil {
					sr.Err = err
					break
				}
				sr.Rows = append(sr.Rows, rows...)
			}
		}
		rep.Sets = append(rep.Sets, sr)
	}
	setup := sess.Setup()
	setup.Aggregate = aggs[0].String()
	rep.Meta = EvalRecord{Level: LevelPrompt, Setup: setup, FirstToken: firstTokenWord(opt.IncludeFirst), LengthTol: e.LengthTol}
	for _, sr := range rep.Sets {
		for _, r := range sr.Rows {
			if r.PValues == eval.PValuesCalibration {
				rep.Calibration = e.Calib.Describe()
			}
		}
	}
	return rep
}

func setTexts(sets []EvalSet) []string {
	var out []string
	for _, s := range sets {
		out = append(out, s.Texts...)
	}
	return out
}

// firstTokenWord says how position 0 counts in prompt-level ratios.
func firstTokenWord(included bool) string {
	if included {
		return "included"
	}
	return "excluded"
}

// Failed returns how many of the distinct prompts analyzed so far failed,
// and how many were analyzed.
func (e *Evaluator) Failed() (failed, total int) {
	for _, r := range e.results {
		if r.err != nil {
			failed++
		}
	}
	return failed, len(e.results)
}
