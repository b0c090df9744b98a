package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// evalFlags are the flags of `lmood eval`.
type evalFlags struct {
	af             analysisFlags
	in             string
	shifted        []string
	corrupt        string
	pairs          []string
	layers         string
	limit          int
	lengthTol      int
	asJSON         bool
	writeCorrupted string
}

func newEvalCmd(g *globals) *cobra.Command {
	ef := &evalFlags{}
	cmd := &cobra.Command{
		Use:   "eval --in FILE [--shifted FILE]... [--corrupt KIND,...] [--pairs FILE.tsv]...",
		Short: "Measure how well drift separates in-distribution from shifted prompts (AUROC, length-matched)",
		Long: `eval scores an in-distribution prompt set and one or more shifted sets and
reports, for each shifted set, how well each score separates them: AUROC,
AUROC on length-matched pairs, AUPR and FPR at 95% TPR, with the shifted
prompts as positives and every score oriented so that higher = more unusual.

Scores compared (all from one analysis per prompt):
  drift            the drift OOD score at each --layers hidden state, oriented
                   by --direction (pinch: -ln ratio, expand: +ln ratio). An
                   AUROC below 0.5 means the data supports the other direction
                   (its AUROC is 1 - the value shown).
  surprisal        mean -ln p(token | prefix) from the model's own logits
                   (log perplexity)
  entropy          mean next-token entropy
  neg-max-softmax  minus the mean max-softmax probability
  length           the token count alone: a confound check. If length
                   separates the sets, so can any score that tracks length;
                   read the length-matched column.
  drift+surprisal  z(drift) + z(surprisal), z fitted on the in-distribution
                   set: are the two complementary?

Sets:
  --in FILE         in-distribution prompts (.txt one per line, or .jsonl
                    with {"text": ...})
  --shifted FILE    a shifted set, named after its file (repeatable)
  --corrupt KINDS   shifted twins of the --in prompts made by deterministic
                    corruptions seeded by --seed, one set per kind (twins
                    equal to their source are dropped)
  --pairs FILE.tsv  plain<TAB>twin lines: plain sentences join the
                    in-distribution set, twins form a set named after the file
--limit N keeps the first N prompts of --in, of each --shifted file and the
first N pairs of each --pairs file.

Length control: each shifted prompt is paired with an unused in-distribution
prompt whose token count differs by at most --length-tol; the AUROC of the
matched subsets is reported with the number of pairs.

Prompts that cannot be analyzed are reported on stderr and left out of every
set; the exit code is then 1 (after the report).`,
		Example: `  # CI-sized (about 75 s on 2 shared cores)
  lmood eval --in prompts/eval/plain.txt --corrupt shuffle,mash --limit 24 -k 8 --layers 15
  # the full evaluation behind the README's "Does it work?" (about 13 minutes)
  lmood eval --in prompts/eval/plain.txt --corrupt all --pairs prompts/eval/anomaly.tsv --layers all -k 8 --limit 120
  lmood eval --in my.jsonl --shifted odd.txt --json > eval.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := ef.plan()
			if err != nil {
				return err
			}
			if ef.writeCorrupted != "" {
				if err := writeCorruptedSets(ef.writeCorrupted, plan); err != nil {
					return err
				}
			}
			m, err := openModel(g)
			if err != nil {
				return err
			}
			defer m.Close()
			ctx, cancel := signalContext()
			defer cancel()
			return runEval(ctx, g, ef, plan, m, stdout)
		},
	}
	ef.register(cmd, g)
	return cmd
}

// register defines the eval flags (the shared analysis flags included) on cmd.
func (ef *evalFlags) register(cmd *cobra.Command, g *globals) {
	ef.af.register(cmd, g, false)
	fl := cmd.Flags()
	fl.StringVar(&ef.in, "in", "", "in-distribution prompts: .txt (one per line) or .jsonl ({\"text\": ...})")
	fl.StringArrayVar(&ef.shifted, "shifted", nil, "a shifted prompt set (.txt or .jsonl), named after its file; repeatable")
	fl.StringVar(&ef.corrupt, "corrupt", "", "make shifted twins of the --in prompts: comma-separated kinds from "+strings.Join(eval.Kinds(), ", ")+", or all")
	fl.StringArrayVar(&ef.pairs, "pairs", nil, "plain<TAB>twin TSV: plain lines join the in-distribution set, twins form a set named after the file; repeatable")
	fl.StringVar(&ef.layers, "layers", "default", "hidden states to evaluate: a list like 5,10,15 or 10-20, all (1..n), or default (six evenly spaced, incl. the middle and last)")
	fl.IntVar(&ef.limit, "limit", 0, "use only the first N prompts of --in and of each --shifted file, and the first N pairs of each --pairs file (0 = all)")
	fl.IntVar(&ef.lengthTol, "length-tol", 0, "length matching: pair prompts whose token counts differ by at most this much")
	fl.BoolVar(&ef.asJSON, "json", false, "write JSON Lines, one object per (set, method, layer)")
	fl.StringVar(&ef.writeCorrupted, "write-corrupted", "", "also write each --corrupt set to DIR/KIND.txt")
}

// evalSet is a named shifted set.
type evalSet struct {
	name  string
	texts []string
}

// evalPlan is what an evaluation scores: one in-distribution set and the
// shifted sets, each as prompt texts.
type evalPlan struct {
	in   []string
	sets []evalSet
	// corrupted names the sets made by --corrupt (for --write-corrupted).
	corrupted map[string]bool
}

func evalLimit[T any](xs []T, n int) []T {
	if n > 0 && len(xs) > n {
		return xs[:n]
	}
	return xs
}

// plan loads and builds the sets, without the model.
func (ef *evalFlags) plan() (evalPlan, error) {
	var p evalPlan
	if ef.limit < 0 {
		return p, usageError{fmt.Errorf("--limit must be >= 0, got %d", ef.limit)}
	}
	if ef.lengthTol < 0 {
		return p, usageError{fmt.Errorf("--length-tol must be >= 0, got %d", ef.lengthTol)}
	}
	if ef.in == "" && len(ef.pairs) == 0 {
		return p, usageError{errors.New("no in-distribution prompts: give --in FILE (or --pairs FILE.tsv)")}
	}
	if ef.corrupt != "" && ef.in == "" {
		return p, usageError{errors.New("--corrupt corrupts the --in prompts: give --in FILE")}
	}
	if len(ef.shifted) == 0 && ef.corrupt == "" && len(ef.pairs) == 0 {
		return p, usageError{errors.New("no shifted set: give --shifted FILE, --corrupt KIND[,KIND...] or --pairs FILE.tsv")}
	}
	seen := map[string]bool{}
	addSet := func(name string, texts []string) error {
		if seen[name] {
			return usageError{fmt.Errorf("two shifted sets are named %q: rename one of the files", name)}
		}
		seen[name] = true
		p.sets = append(p.sets, evalSet{name: name, texts: texts})
		return nil
	}
	var base []string
	if ef.in != "" {
		texts, err := eval.ReadTexts(ef.in)
		if err != nil {
			return p, fmt.Errorf("--in: %w", err)
		}
		base = evalLimit(texts, ef.limit)
		p.in = append(p.in, base...)
	}
	for _, path := range ef.shifted {
		texts, err := eval.ReadTexts(path)
		if err != nil {
			return p, fmt.Errorf("--shifted: %w", err)
		}
		if err := addSet(eval.SetName(path), evalLimit(texts, ef.limit)); err != nil {
			return p, err
		}
	}
	if ef.corrupt != "" {
		kinds, err := eval.ParseKinds(ef.corrupt)
		if err != nil {
			return p, usageError{fmt.Errorf("--corrupt: %w", err)}
		}
		p.corrupted = map[string]bool{}
		for _, k := range kinds {
			twins, _, err := eval.CorruptAll(k, base, ef.af.seed)
			if err != nil {
				return p, err
			}
			if len(twins) == 0 {
				return p, fmt.Errorf("--corrupt %s: no --in prompt could be corrupted", k)
			}
			if err := addSet(k, twins); err != nil {
				return p, err
			}
			p.corrupted[k] = true
		}
	}
	for _, path := range ef.pairs {
		ps, err := eval.ReadPairs(path)
		if err != nil {
			return p, fmt.Errorf("--pairs: %w", err)
		}
		ps = evalLimit(ps, ef.limit)
		twins := make([]string, len(ps))
		for i, pr := range ps {
			p.in = append(p.in, pr.Plain)
			twins[i] = pr.Twin
		}
		if err := addSet(eval.SetName(path), twins); err != nil {
			return p, err
		}
	}
	p.in = evalDedupe(p.in)
	for i := range p.sets {
		p.sets[i].texts = evalDedupe(p.sets[i].texts)
	}
	return p, nil
}

// evalDedupe drops repeated texts, keeping the first of each.
func evalDedupe(xs []string) []string {
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

// writeCorruptedSets writes every --corrupt set to dir/KIND.txt.
func writeCorruptedSets(dir string, plan evalPlan) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("--write-corrupted: %w", err)
	}
	for _, s := range plan.sets {
		if !plan.corrupted[s.name] {
			continue
		}
		var b strings.Builder
		for _, t := range s.texts {
			b.WriteString(strings.NewReplacer("\r", " ", "\n", " ").Replace(t))
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, s.name+".txt"), []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("--write-corrupted: %w", err)
		}
	}
	return nil
}

// evalScores converts one analysis into the numbers an evaluation keeps.
// layers must be the analyzer's hidden states.
func evalScores(res *analyze.Result, layers []int, opt analyze.Options) (eval.Scores, error) {
	s := eval.Scores{Tokens: len(res.Tokens), Drift: make([]float64, len(layers))}
	if res.Baselines == nil {
		return s, errors.New("no logit baselines (the analyzer ran without Surprisal)")
	}
	if len(res.Tokens) < 2 {
		return s, errors.New("a single token: no next-token prediction to score")
	}
	if res.Selected == 0 && !opt.Isolate {
		return s, errors.New("no token counts in the prompt-level ratio (use --include-first)")
	}
	for i, h := range layers {
		l, ok := res.Layer(h)
		if !ok {
			return s, fmt.Errorf("hidden state %d missing from the analysis", h)
		}
		ratio := l.Ratio.Mean
		if opt.Isolate {
			ratio, _ = meanDefined(l.TokenRatio, !opt.IncludeFirst)
		}
		if !(ratio > 0) || math.IsInf(ratio, 0) {
			return s, fmt.Errorf("hidden state %d: ratio %v is not a positive number", h, ratio)
		}
		s.Drift[i] = drift.OODScore(ratio, opt.Direction)
	}
	b := res.Baselines
	s.Surprisal, s.Entropy, s.MaxSoftmax = b.Surprisal, b.Entropy, b.MaxSoftmax
	for _, v := range []float64{s.Surprisal, s.Entropy, s.MaxSoftmax} {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return s, errors.New("non-finite logit baseline")
		}
	}
	return s, nil
}

// evalResult is the outcome of one prompt, cached by text.
type evalResult struct {
	scores eval.Scores
	err    error
}

// EvalRecord is one line of `lmood eval --json`: one method (at one layer)
// on one shifted set. Undefined metrics are null.
type EvalRecord struct {
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
	Setup
	FirstToken string `json:"first_token"`
	LengthTol  int    `json:"length_tol"`
}

// evalFinite maps NaN and infinities to null.
func evalFinite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// evalSetReport is the evaluation of one shifted set.
type evalSetReport struct {
	name   string
	rows   []eval.Row
	failed int // prompts of this set that failed
	err    error
}

// runEval analyzes every distinct prompt once (all layers and baselines in
// one analysis) and reports each shifted set against the in-distribution set.
func runEval(ctx context.Context, g *globals, ef *evalFlags, plan evalPlan, m *store.Model, w io.Writer) error {
	cfg := m.Config()
	layers, err := eval.ParseLayers(ef.layers, cfg.Layers)
	if err != nil {
		return usageError{fmt.Errorf("--layers: %w", err)}
	}
	opt, err := ef.af.options(layers, true)
	if err != nil {
		return err
	}
	start := time.Now()
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: g.threads})
	if err != nil {
		return err
	}
	defer an.Close()
	opt = an.Options()
	g.logf("model %s: hidden states %v of %d, session ready in %v", m.Manifest.Name, layers, cfg.Layers, time.Since(start).Round(time.Millisecond))

	order := append([]string(nil), plan.in...)
	for _, s := range plan.sets {
		order = append(order, s.texts...)
	}
	order = evalDedupe(order)
	cache := make(map[string]*evalResult, len(order))
	p := g.progress()
	p.Start("evaluating", int64(len(order)))
	failed := 0
	start = time.Now()
	for _, text := range order {
		if err := ctx.Err(); err != nil {
			p.Finish()
			return fmt.Errorf("eval interrupted after %d of %d prompts: %w", len(cache), len(order), err)
		}
		r := &evalResult{}
		res, err := an.Analyze(text)
		if err == nil {
			r.scores, err = evalScores(res, layers, opt)
		}
		if err != nil {
			r.err = err
			failed++
			promptFailed(len(cache)+1, text, fmt.Errorf("%w (left out)", err))
		}
		cache[text] = r
		p.Add(1)
	}
	p.Finish()
	g.logf("%d prompts analyzed in %v (%d forward passes)", len(order), time.Since(start).Round(time.Millisecond), an.Passes())

	in, _ := evalCollect(plan.in, cache)
	var reps []evalSetReport
	for _, s := range plan.sets {
		out, nf := evalCollect(s.texts, cache)
		rep := evalSetReport{name: s.name, failed: nf}
		rep.rows, rep.err = eval.Evaluate(in, out, layers, ef.lengthTol)
		reps = append(reps, rep)
	}
	meta := EvalRecord{
		Setup:      newSetup(m.Manifest.Name, cfg.Layers, opt),
		FirstToken: firstTokenWord(opt.IncludeFirst), LengthTol: ef.lengthTol,
	}
	bw := bufio.NewWriter(w)
	if ef.asJSON {
		err = writeEvalJSON(bw, reps, meta)
	} else {
		err = writeEvalText(bw, reps, meta, len(in), evalMiddle(layers, cfg.Middle()))
	}
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("eval: writing report: %w", ferr)
	}
	if err != nil {
		return err
	}
	badSets := 0
	for _, r := range reps {
		if r.err != nil {
			badSets++ // already in the report (text or JSON)
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "lmood: %d of %d prompts failed and were left out\n", failed, len(order))
	}
	if badSets > 0 {
		fmt.Fprintf(os.Stderr, "lmood: %d of %d shifted sets could not be evaluated (see the report)\n", badSets, len(reps))
	}
	if failed > 0 || badSets > 0 {
		return &partialError{failed: failed, total: len(order)}
	}
	return nil
}

// evalCollect returns the scores of the texts that were analyzed successfully
// and the number that failed.
func evalCollect(texts []string, cache map[string]*evalResult) ([]eval.Scores, int) {
	var out []eval.Scores
	failed := 0
	for _, t := range texts {
		r, ok := cache[t]
		if !ok || r.err != nil {
			failed++
			continue
		}
		out = append(out, r.scores)
	}
	return out, failed
}

// evalMiddle returns the evaluated layer closest to the model's middle.
func evalMiddle(layers []int, mid int) int {
	best := layers[0]
	for _, h := range layers {
		if evalAbs(h-mid) < evalAbs(best-mid) {
			best = h
		}
	}
	return best
}

func evalAbs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func writeEvalJSON(w io.Writer, reps []evalSetReport, meta EvalRecord) error {
	for _, rep := range reps {
		if rep.err != nil {
			rec := meta
			rec.Set, rec.Failed, rec.Error = rep.name, rep.failed, rep.err.Error()
			if err := report.WriteJSONL(w, rec); err != nil {
				return err
			}
			continue
		}
		for _, r := range rep.rows {
			rec := meta
			rec.Set, rec.Method, rec.Failed = rep.name, r.Method, rep.failed
			if r.Layer >= 0 {
				l := r.Layer
				rec.Layer = &l
			}
			rec.Positives, rec.Negatives, rec.NMatched = r.Pos, r.Neg, r.NMatched
			rec.AUROC, rec.AUROCMatched, rec.AUPR, rec.FPR95 = evalFinite(r.AUROC), evalFinite(r.Matched), evalFinite(r.AUPR), evalFinite(r.FPR95)
			if err := report.WriteJSONL(w, rec); err != nil {
				return err
			}
		}
	}
	return nil
}

// evalFmt formats a metric with three decimals, "n/a" when undefined.
func evalFmt(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// evalMethodLabel names a row for the text table.
func evalMethodLabel(r eval.Row) string {
	switch r.Method {
	case eval.MethodDrift:
		return fmt.Sprintf("drift L%d", r.Layer)
	case eval.MethodCombined:
		return fmt.Sprintf("z(drift L%d)+z(surprisal)", r.Layer)
	case eval.MethodLength:
		return "length (tokens)"
	}
	return r.Method
}

// evalTable assembles the text table of one shifted set.
func evalTable(rows []eval.Row) (header []string, cells [][]string) {
	header = []string{"method", "AUROC", "AUROC len-matched", "AUPR", "FPR95"}
	for _, r := range rows {
		cells = append(cells, []string{evalMethodLabel(r), evalFmt(r.AUROC), evalFmt(r.Matched), evalFmt(r.AUPR), evalFmt(r.FPR95)})
	}
	return header, cells
}

// evalFindRow returns the row of method at layer (-1 for layerless methods).
func evalFindRow(rows []eval.Row, method string, layer int) (eval.Row, bool) {
	for _, r := range rows {
		if r.Method == method && r.Layer == layer {
			return r, true
		}
	}
	return eval.Row{}, false
}

// evalSummaryTable assembles one row per shifted set: the AUROC of each
// baseline, drift at the middle layer and at its best layer, and the
// combination at the middle and best layers.
func evalSummaryTable(reps []evalSetReport, mid int) (header []string, cells [][]string) {
	header = []string{"shifted set", "n", "length", "surprisal", "entropy", "neg-max-softmax",
		fmt.Sprintf("drift@L%d", mid), "best drift", "best drift, flipped", fmt.Sprintf("z+z@L%d", mid), "z+z@best"}
	get := func(rows []eval.Row, method string, layer int) string {
		r, ok := evalFindRow(rows, method, layer)
		if !ok {
			return "n/a"
		}
		return evalFmt(r.AUROC)
	}
	for _, rep := range reps {
		if rep.err != nil {
			cells = append(cells, []string{rep.name, "0", "error: " + rep.err.Error()})
			continue
		}
		n := 0
		if len(rep.rows) > 0 {
			n = rep.rows[0].Pos
		}
		best, flipped, comb := "n/a", "n/a", "n/a"
		if i := eval.BestLayer(rep.rows, eval.MethodDrift); i >= 0 {
			b := rep.rows[i]
			best = fmt.Sprintf("%s (L%d)", evalFmt(b.AUROC), b.Layer)
			comb = get(rep.rows, eval.MethodCombined, b.Layer)
		}
		if i := eval.FlippedBestLayer(rep.rows, eval.MethodDrift); i >= 0 {
			b := rep.rows[i]
			flipped = fmt.Sprintf("%s (L%d)", evalFmt(1-b.AUROC), b.Layer)
		}
		cells = append(cells, []string{rep.name, strconv.Itoa(n),
			get(rep.rows, eval.MethodLength, -1), get(rep.rows, eval.MethodSurprisal, -1),
			get(rep.rows, eval.MethodEntropy, -1), get(rep.rows, eval.MethodMaxSoftmax, -1),
			get(rep.rows, eval.MethodDrift, mid), best, flipped,
			get(rep.rows, eval.MethodCombined, mid), comb})
	}
	return header, cells
}

func writeEvalText(w io.Writer, reps []evalSetReport, meta EvalRecord, nIn, mid int) error {
	for _, rep := range reps {
		if rep.err != nil {
			fmt.Fprintf(w, "shifted set %s: %v\n\n", rep.name, rep.err)
			continue
		}
		n, nm := 0, 0
		if len(rep.rows) > 0 {
			n, nm = rep.rows[0].Pos, rep.rows[0].NMatched
		}
		fmt.Fprintf(w, "shifted set %s: %d shifted vs %d in-distribution prompts", rep.name, n, nIn)
		if rep.failed > 0 {
			fmt.Fprintf(w, " (%d failed, left out)", rep.failed)
		}
		fmt.Fprintf(w, "; %d length-matched pairs (token counts within %d)\n", nm, meta.LengthTol)
		h, cells := evalTable(rep.rows)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
		if i := eval.BestLayer(rep.rows, eval.MethodDrift); i >= 0 {
			fmt.Fprintf(w, "best drift layer: %d (AUROC %s)", rep.rows[i].Layer, evalFmt(rep.rows[i].AUROC))
			if j := eval.FlippedBestLayer(rep.rows, eval.MethodDrift); j >= 0 && rep.rows[j].AUROC < 0.5 {
				fmt.Fprintf(w, "; the opposite orientation does best at layer %d (AUROC %s)", rep.rows[j].Layer, evalFmt(1-rep.rows[j].AUROC))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	if len(reps) > 1 {
		fmt.Fprintln(w, "summary (AUROC):")
		h, cells := evalSummaryTable(reps, mid)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
	}
	formula := "-ln(ratio): pinch, lower ratio = more unusual"
	if meta.Direction == drift.Expand.String() {
		formula = "+ln(ratio): expand, higher ratio = more unusual"
	}
	_, err := fmt.Fprintf(w, "%s, %d layers, K=%d, sigma=%g, %s noise, seed %d; position 0 %s; drift score = %s.\n"+
		"Shifted prompts are the positives; every score is oriented higher = more unusual, so AUROC < 0.5 means the opposite orientation separates (with AUROC 1 - x).\n",
		meta.Model, meta.NumLayers, meta.Samples, meta.Sigma, meta.Noise, meta.Seed, meta.FirstToken, formula)
	return err
}
