package lmood

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
)

// spanFixture is a hand-checked token-level evaluation at one layer (5):
// two reference prompts, two edited prompts made from them.
func spanFixture() ([]TokenScores, []SpanCase) {
	ref := []TokenScores{
		{Drift: [][]float64{{0, 1, 2}}, Surprisal: []float64{0, 1, 3}},
		{Drift: [][]float64{{0, 3, 4}}, Surprisal: []float64{0, 2, 4}},
	}
	cases := []SpanCase{
		// Made from ref 0, which is left out: the reference is then drift
		// {3, 4}, surprisal {2, 4}.
		{Source: 0, Edited: []int{2}, Scores: TokenScores{
			Drift: [][]float64{{0, 3.5, 0.5, 2.5}}, Surprisal: []float64{0, 1.5, 5, 0.5}}},
		// Made from ref 1: reference drift {1, 2}, surprisal {1, 3}.
		{Source: 1, Edited: []int{1}, Scores: TokenScores{
			Drift: [][]float64{{0, 9, 1}}, Surprisal: []float64{0, 0.1, 0.2}}},
	}
	return ref, cases
}

func TestEvaluateSpans(t *testing.T) {
	ref, cases := spanFixture()
	rows, err := EvaluateSpans(ref, cases, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	// With two reference prompts every position bucket is thin, so the
	// pooled reference (positions 1..) serves, leaving out the source.
	//   case 0 p-values (drift, surprisal): t1 (2/3, 1), t2 (1, 1/3),
	//     t3 (1, 1); z: t1 0-1.5, t2 -6+2, t3 -2-2.5.
	//   case 1: t1 (1/3, 1), t2 (1, 1); z: t1 15-1.9, t2 -1-1.8.
	want := []struct {
		method            string
		layer             int
		auroc, top1, top3 float64
		pvalues           string
	}{
		// edited 0.5 and 9 against 3.5, 2.5, 1.
		{TokenMethodDrift, 5, 0.5, 0.5, 1, ""},
		// edited 5 and 0.1 against 1.5, 0.5, 0.2.
		{TokenMethodSurprisal, -1, 0.5, 0.5, 1, ""},
		// edited -4 and 13.1 against -1.5, -4.5, -2.8.
		{TokenMethodCombined, 5, 4.0 / 6, 0.5, 1, ""},
		// edited 2.20 twice against 0.81, 0, 0.
		{TokenMethodFisher, 5, 1, 1, 1, eval.PValuesCrossFit},
		{TokenMethodMinP, 5, 1, 1, 1, eval.PValuesCrossFit},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d rows, want %d: %+v", len(rows), len(want), rows)
	}
	for i, w := range want {
		r := rows[i]
		if r.Method != w.method || r.Layer != w.layer || math.Abs(r.AUROC-w.auroc) > 1e-12 || r.Top1 != w.top1 || r.Top3 != w.top3 || r.PValues != w.pvalues {
			t.Errorf("row %d = %s L%d AUROC %v top1 %v top3 %v p %q; want %+v", i, r.Method, r.Layer, r.AUROC, r.Top1, r.Top3, r.PValues, w)
		}
		if r.Prompts != 2 || r.Edited != 2 || r.Others != 3 {
			t.Errorf("row %d counts %d/%d/%d, want 2/2/3", i, r.Prompts, r.Edited, r.Others)
		}
	}

	// Calibrated p-values, when every case has them, replace the
	// cross-fitted ones: here they point at the wrong tokens. Fisher:
	// case 0 t1 9.21, t2 0 (edited), t3 0; case 1 t1 2.77 (edited), t2
	// 10.6: AUROC (0 + 0.5 + 0 + 0 + 1 + 0) / 6.
	cases[0].Scores.PDrift, cases[0].Scores.PSurprisal = [][]float64{{0, 0.01, 1, 1}}, []float64{0, 1, 1, 1}
	cases[1].Scores.PDrift, cases[1].Scores.PSurprisal = [][]float64{{0, 0.5, 0.5}}, []float64{0, 0.5, 0.01}
	rows, err = EvaluateSpans(ref, cases, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	if f := rows[3]; f.Method != TokenMethodFisher || f.Top1 != 0 || f.AUROC != 0.25 || f.PValues != eval.PValuesCalibration {
		t.Errorf("calibrated Fisher row %+v, want top-1 0, AUROC 0.25", f)
	}
	if _, err := EvaluateSpans(nil, cases, []int{5}); err == nil {
		t.Error("no reference: no error")
	}
	if _, err := EvaluateSpans(ref, cases, []int{5, 6}); err == nil {
		t.Error("layer count mismatch: no error")
	}
}

func TestTokenScoresOf(t *testing.T) {
	stat := func(m float64) analyze.Stat { return analyze.Stat{Mean: m, Defined: true} }
	res := &analyze.Result{
		Tokens:    []analyze.Token{{Text: "a"}, {Text: "b"}, {Text: "c"}},
		Layers:    []analyze.Layer{{Index: 3, TokenRatio: []analyze.Stat{{}, stat(2), stat(0.5)}}},
		Baselines: &analyze.Baselines{Tokens: []float64{0, 1.5, 2.5}},
	}
	for _, tc := range []struct {
		dir  drift.Direction
		want float64
	}{{drift.Expand, math.Log(2)}, {drift.Pinch, -math.Log(2)}} {
		s, err := TokenScoresOf(res, []int{3}, tc.dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(s.Drift[0][1]-tc.want) > 1e-12 || math.Abs(s.Drift[0][2]+tc.want) > 1e-12 || s.Surprisal[2] != 2.5 || s.PDrift != nil {
			t.Errorf("%v: %+v", tc.dir, s)
		}
	}
	res.Layers[0].TokenRatio[2] = analyze.Stat{}
	if _, err := TokenScoresOf(res, []int{3}, drift.Expand, nil); err == nil || !strings.Contains(err.Error(), "token 2") {
		t.Errorf("undefined ratio: %v", err)
	}
	if _, err := TokenScoresOf(res, []int{4}, drift.Expand, nil); err == nil {
		t.Error("missing layer: no error")
	}
	res.Baselines = nil
	if _, err := TokenScoresOf(res, []int{3}, drift.Expand, nil); err == nil {
		t.Error("no baselines: no error")
	}
}

func TestTokenEvalRecords(t *testing.T) {
	ref, cases := spanFixture()
	rows, err := EvaluateSpans(ref, cases, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	rep := &TokenEvalReport{
		Kinds: []TokenKindReport{
			{Kind: "mashword", Edits: 3, Unaligned: 1, Rows: rows},
			{Kind: "digit", NotApplicable: 4, Err: os.ErrNotExist},
		},
		Meta: TokenEvalRecord{Level: LevelToken, FirstToken: "excluded", NIn: 2},
	}
	recs := rep.Records()
	if len(recs) != len(rows)+1 {
		t.Fatalf("%d records, want %d", len(recs), len(rows)+1)
	}
	r := recs[3]
	if r.Kind != "mashword" || r.Method != TokenMethodFisher || r.Layer == nil || *r.Layer != 5 || *r.Top1 != 1 || r.Unaligned != 1 || r.PValues != eval.PValuesCrossFit || r.NIn != 2 || r.Level != LevelToken {
		t.Errorf("record %+v", r)
	}
	if recs[1].Layer != nil {
		t.Error("surprisal record has a layer")
	}
	if last := recs[len(recs)-1]; last.Kind != "digit" || last.Error == "" || last.NotApplicable != 4 || last.AUROC != nil {
		t.Errorf("error record %+v", last)
	}
}

func TestEvalPlanSpans(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("The cat sat on the mat.\nThe train leaves at 9 tonight.\nThe cat sat on the mat.\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := NewEvalPlan(EvalPlanOptions{In: []string{in}, Spans: "digit,mashword", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SpanIn) != 2 || len(p.Spans) != 2 || len(p.Sets) != 0 {
		t.Fatalf("plan %+v", p)
	}
	dg, mw := p.Spans[0], p.Spans[1]
	if dg.Kind != "digit" || len(dg.Edits) != 1 || dg.NotApplicable != 1 || dg.Edits[0].Source != 1 {
		t.Errorf("digit set %+v", dg)
	}
	if mw.Kind != "mashword" || len(mw.Edits) != 2 || mw.NotApplicable != 0 {
		t.Errorf("mashword set %+v", mw)
	}
	for _, e := range append(dg.Edits, mw.Edits...) {
		if !strings.Contains(strings.Join(p.Prompts(), "\n"), e.Edit.Text) {
			t.Errorf("edit %q not among the prompts to analyze", e.Edit.Text)
		}
	}
	if _, err := NewEvalPlan(EvalPlanOptions{In: []string{in}, Spans: "nope"}); err == nil || !strings.Contains(err.Error(), "spans") {
		t.Errorf("unknown kind: %v", err)
	}
	if _, err := NewEvalPlan(EvalPlanOptions{Pairs: []string{in}, Spans: "digit"}); err == nil || !strings.Contains(err.Error(), "--in") {
		t.Errorf("spans without --in: %v", err)
	}
}

// TestEvalPlanNumberSentences plans the digit edits of the repository's
// evaluation sets: plain.txt has no number, numbers.txt one in every
// line, so with both --in files every numbers.txt sentence gets an edit
// that changes exactly one digit into another, and plain.txt sentences are
// not applicable.
func TestEvalPlanNumberSentences(t *testing.T) {
	dir := filepath.Join("..", "..", "prompts", "eval")
	plain, numbers := filepath.Join(dir, "plain.txt"), filepath.Join(dir, "numbers.txt")
	nums, err := eval.ReadTexts(numbers)
	if err != nil {
		t.Fatal(err)
	}
	if len(nums) < 40 {
		t.Fatalf("numbers.txt has %d sentences, want at least 40", len(nums))
	}
	const limit = 50
	p, err := NewEvalPlan(EvalPlanOptions{In: []string{plain, numbers}, Spans: "digit", Seed: 1, Limit: limit})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.SpanIn) != limit+len(nums) || len(p.Spans) != 1 {
		t.Fatalf("%d span sources, %d kinds: want %d plain + %d number sentences, one kind", len(p.SpanIn), len(p.Spans), limit, len(nums))
	}
	set := p.Spans[0]
	if len(set.Edits) != len(nums) || set.NotApplicable != limit {
		t.Fatalf("digit: %d edits, %d n/a; want %d and %d", len(set.Edits), set.NotApplicable, len(nums), limit)
	}
	for _, it := range set.Edits {
		src, e := p.SpanIn[it.Source], it.Edit
		if it.Source < limit || len(src) != len(e.Text) || e.End != e.Start+1 {
			t.Fatalf("edit %+v of %q: want one byte of a numbers.txt sentence", e, src)
		}
		old, now := src[e.Start], e.Text[e.Start]
		if old < '0' || old > '9' || now < '0' || now > '9' || old == now || src[:e.Start] != e.Text[:e.Start] || src[e.End:] != e.Text[e.End:] {
			t.Errorf("%q → %q: want exactly one digit changed into another", src, e.Text)
		}
	}
}

// TestCrossFitTokenRows: with calibrated p-values on the cases, the
// cross-fit rows are the Fisher and min-p rows the cases give without
// them (here AUROC 1, see TestEvaluateSpans), renamed; the calibrated rows
// differ (the calibrated p-values point at the wrong tokens).
func TestCrossFitTokenRows(t *testing.T) {
	ref, cases := spanFixture()
	for i := range cases {
		n := len(cases[i].Scores.Surprisal)
		pd, ps := make([]float64, n), make([]float64, n)
		for t := range pd {
			pd[t], ps[t] = 0.5, 0.5
			if !slicesContains(cases[i].Edited, t) {
				pd[t], ps[t] = 0.01, 0.01
			}
		}
		cases[i].Scores.PDrift, cases[i].Scores.PSurprisal = [][]float64{pd}, ps
	}
	cal, err := EvaluateSpans(ref, cases, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := crossFitTokenRows(ref, cases, []int{5})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Method != TokenMethodFisher+CrossFitSuffix || rows[1].Method != TokenMethodMinP+CrossFitSuffix {
		t.Fatalf("rows %+v", rows)
	}
	for _, r := range rows {
		if r.PValues != eval.PValuesCrossFit || r.AUROC != 1 || r.Top1 != 1 {
			t.Errorf("%s: %+v, want cross-fitted AUROC 1, top-1 1", r.Method, r)
		}
	}
	for _, r := range cal {
		if r.Method == TokenMethodFisher && (r.PValues != eval.PValuesCalibration || r.AUROC != 0) {
			t.Errorf("calibrated fisher %+v, want AUROC 0 from the calibrated p-values", r)
		}
	}
	if cases[0].Scores.PDrift == nil {
		t.Error("crossFitTokenRows changed the cases")
	}
}

func slicesContains(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// TestCrossFitRows: the prompt-level cross-fit rows of calibrated scores
// are the Fisher and min-p rows of the same scores without p-values.
func TestCrossFitRows(t *testing.T) {
	mk := func(d, s, p float64) eval.Scores {
		return eval.Scores{Tokens: 5, Drift: []float64{d}, Surprisal: s, Entropy: s, MaxSoftmax: 0.5, PDrift: []float64{p}, PSurprisal: p}
	}
	// Raw scores separate perfectly; the calibrated p-values point the
	// other way.
	in := []eval.Scores{mk(0, 1, 0.01), mk(0.1, 1.1, 0.02), mk(0.2, 1.2, 0.03), mk(0.3, 1.3, 0.04)}
	out := []eval.Scores{mk(5, 6, 0.9), mk(6, 7, 0.8)}
	rows, err := crossFitRows(in, out, []int{7}, 0, drift.Flat)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := eval.Evaluate(withoutP(in), withoutP(out), []int{7}, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{}
	for _, r := range plain {
		want[r.Method] = r.AUROC
	}
	if len(rows) != 2 {
		t.Fatalf("rows %+v", rows)
	}
	for i, m := range []string{eval.MethodFisher, eval.MethodMinP} {
		r := rows[i]
		if !strings.HasSuffix(r.Method, CrossFitSuffix) || r.PValues != eval.PValuesCrossFit || r.AUROC != want[m] || r.AUROC != 1 {
			t.Errorf("%s: %+v, want the cross-fitted %s row (AUROC %v)", r.Method, r, m, want[m])
		}
	}
	cal, _ := eval.Evaluate(in, out, []int{7}, 0)
	for _, r := range cal {
		if r.Method == eval.MethodFisher && (r.PValues != eval.PValuesCalibration || r.AUROC != 0) {
			t.Errorf("calibrated fisher %+v, want AUROC 0", r)
		}
	}
	if in[0].PDrift == nil {
		t.Error("crossFitRows changed its input")
	}
}
