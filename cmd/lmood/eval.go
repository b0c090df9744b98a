package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

// evalFlags are the flags of `lmood eval`.
type evalFlags struct {
	af             analysisFlags
	in             []string
	shifted        []string
	corrupt        string
	pairs          []string
	layers         string
	limit          int
	lengthTol      int
	asJSON         bool
	writeCorrupted string
	spans          string
	crossFitToo    bool
	cf             calibFlags
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
  fisher(drift,surprisal), minp(drift,surprisal)
                   combinations of calibrated components: the upper-tail
                   p-values of drift and of surprisal, combined by Fisher's
                   -2 sum ln p or by Tippett's -ln min p. The p-values come
                   from the model's own calibration ('lmood calibrate') when
                   one matches, else they are cross-fitted on the
                   in-distribution set: each in-distribution prompt is
                   placed among the others (never among a set holding
                   itself), each shifted prompt among all of them.
                   --cross-fit-too adds, with a calibration, the
                   cross-fitted combinations too (methods ending in
                   " cross-fit"): both on the same analyses.

Sets:
  --in FILE         in-distribution prompts (.txt one per line, or .jsonl
                    with {"text": ...}); repeatable, the files' prompts
                    are joined in order
  --shifted FILE    a shifted set, named after its file (repeatable)
  --corrupt KINDS   shifted twins of the --in prompts made by deterministic
                    corruptions seeded by --seed, one set per kind (twins
                    equal to their source are dropped)
  --pairs FILE.tsv  plain<TAB>twin lines: plain sentences join the
                    in-distribution set, twins form a set named after the file
  --spans KINDS     token-level evaluation: one-span edits of the --in
                    prompts (kinds: ` + strings.Join(eval.SpanKinds(), ", ") + `,
                    or all), the edited tokens known
--limit N keeps the first N prompts of each --in and --shifted file and the
first N pairs of each --pairs file.

Token level (--spans): each --in prompt gets one edit per kind (seeded by
--seed; a prompt with nothing the kind can edit, e.g. no number for digit,
is counted as n/a). For each kind and method the report gives the
token-level AUROC (edited tokens against the other tokens of the same
prompts) and top-1 / top-3 localization (the highest-scored token, or one
of the three highest, is an edited one; ties count against). Position 0 is
never evaluated. Methods: per-token drift at each --layers hidden state
(oriented by --direction), per-token surprisal, z(drift)+z(surprisal), and
Fisher and min-p of their p-values, each token placed among the unedited
--in prompts' tokens of its position bucket (leaving out the prompt it was
made from), or in the calibration when one matches. Edited prompts whose
tokens cannot be lined up with the text are counted and left out.

Length control: each shifted prompt is paired with an unused in-distribution
prompt whose token count differs by at most --length-tol; the AUROC of the
matched subsets is reported with the number of pairs.

--aggregate sets the prompt-level aggregation of drift; --aggregate all
(or a list such as flat,median) adds drift rows for each aggregation
("drift/mean L15", method names drift/NAME in --json), the first one
leading; the summary then gets a table of each aggregation's best layer.

Prompts that cannot be analyzed are reported on stderr and left out of every
set; the exit code is then 1 (after the report). An --in prompt that is not
valid UTF-8 is left out before any analysis together with its corrupted
twins (a pair, with both sentences).

` + siteHelp() + `
--layers picks the indices at the site (attn and mlp from 1); with --site
logits leave --layers out (logits have no index).`,
		Example: `  # CI-sized (about 75 s on 2 shared cores)
  lmood eval --in prompts/eval/plain.txt --corrupt shuffle,mash --limit 24 -k 8 --layers 15
  # the full evaluation behind the README's "Does it work?" (about 13 minutes)
  lmood eval --in prompts/eval/plain.txt --corrupt all --pairs prompts/eval/anomaly.tsv --layers all -k 8 --limit 120
  lmood eval --in my.jsonl --shifted odd.txt --json > eval.jsonl
  # token level: which token was edited?
  lmood eval --in prompts/eval/plain.txt --spans all --limit 40 -k 8 --layers 10,15`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			plan, err := ef.plan()
			if err != nil {
				return err
			}
			for _, d := range plan.Dropped {
				say(fmt.Sprintf("%s \"%s\": %s", d.Source, truncateRunes(d.Text, 60), d.Reason))
			}
			if ef.writeCorrupted != "" {
				if err := core.WriteCorruptedSets(ef.writeCorrupted, plan); err != nil {
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
			return runEval(ctx, g, ef, plan, m, cmd.OutOrStdout())
		},
	}
	ef.register(cmd, g)
	return cmd
}

// register defines the eval flags (the shared analysis flags included) on cmd.
func (ef *evalFlags) register(cmd *cobra.Command, g *globals) {
	ef.af.register(cmd, g, false)
	fl := cmd.Flags()
	fl.StringArrayVar(&ef.in, "in", nil, "in-distribution prompts: .txt (one per line) or .jsonl ({\"text\": ...}); repeatable (--limit applies to each file)")
	fl.StringArrayVar(&ef.shifted, "shifted", nil, "a shifted prompt set (.txt or .jsonl), named after its file; repeatable")
	fl.StringVar(&ef.corrupt, "corrupt", "", "make shifted twins of the --in prompts: comma-separated kinds from "+strings.Join(eval.Kinds(), ", ")+", or all")
	fl.StringArrayVar(&ef.pairs, "pairs", nil, "plain<TAB>twin TSV: plain lines join the in-distribution set, twins form a set named after the file; repeatable")
	fl.StringVar(&ef.layers, "layers", "default", "hidden states to evaluate: a list like 5,10,15 or 10-20, all (1..n), or default (six evenly spaced, incl. the middle and last)")
	fl.IntVar(&ef.limit, "limit", 0, "use only the first N prompts of --in and of each --shifted file, and the first N pairs of each --pairs file (0 = all)")
	fl.IntVar(&ef.lengthTol, "length-tol", 0, "length matching: pair prompts whose token counts differ by at most this much")
	fl.BoolVar(&ef.asJSON, "json", false, "write JSON Lines, one object per (set, method, layer)")
	fl.StringVar(&ef.writeCorrupted, "write-corrupted", "", "also write each --corrupt set to DIR/KIND.txt")
	fl.StringVar(&ef.spans, "spans", "", "token-level evaluation: one-span edits of the --in prompts, comma-separated kinds from "+strings.Join(eval.SpanKinds(), ", ")+", or all")
	fl.BoolVar(&ef.crossFitToo, "cross-fit-too", false, "with a calibration, also report the combinations (fisher, minp) with cross-fitted p-values, as methods ending in \" cross-fit\"")
	ef.cf.register(cmd, false)
}

// evalPlanOptions are the plan's inputs from the flags.
func (ef *evalFlags) planOptions() core.EvalPlanOptions {
	return core.EvalPlanOptions{In: ef.in, Shifted: ef.shifted, Corrupt: ef.corrupt, Seed: ef.af.seed, Pairs: ef.pairs, Limit: ef.limit, Spans: ef.spans}
}

// plan loads and builds the sets, without the model.
func (ef *evalFlags) plan() (core.EvalPlan, error) {
	if ef.lengthTol < 0 {
		return core.EvalPlan{}, usageError{fmt.Errorf("--length-tol must be >= 0, got %d", ef.lengthTol)}
	}
	aggs, err := ef.aggregates()
	if err != nil {
		return core.EvalPlan{}, err
	}
	// The session measures with the first aggregation (runEval); --aggregate
	// may be a list or "all", which the options alone do not accept.
	af := ef.af
	af.aggregate = aggs[0].String()
	if err := af.check(); err != nil {
		return core.EvalPlan{}, err
	}
	if err := ef.cf.check(); err != nil {
		return core.EvalPlan{}, err
	}
	p, err := core.NewEvalPlan(ef.planOptions())
	return p, cliErr(err)
}

// aggregates parses --aggregate: one name, a list, or all.
func (ef *evalFlags) aggregates() ([]drift.Aggregation, error) {
	aggs, err := core.ParseAggregates(ef.af.aggregate)
	return aggs, cliErr(err)
}

// runEval analyzes every distinct prompt once (all layers and baselines in
// one analysis) and reports each shifted set against the in-distribution set.
func runEval(ctx context.Context, g *globals, ef *evalFlags, plan core.EvalPlan, m *store.Model, w io.Writer) error {
	cfg := m.Config()
	layers, err := eval.ParseLayers(ef.layers, cfg.Layers)
	if err != nil {
		return usageError{fmt.Errorf("--layers: %w", err)}
	}
	site := ef.af.siteOf()
	hidden := layers
	if site == analyze.SiteLogits {
		if l := strings.TrimSpace(strings.ToLower(ef.layers)); l != "" && l != "default" {
			return usageError{fmt.Errorf("--layers %s: site logits has no index (it reads the output head after all %d blocks): leave --layers out", ef.layers, cfg.Layers)}
		}
		layers, hidden = []int{cfg.Layers}, nil // reported at index n
	} else {
		lo, hi := site.Range(cfg.Layers)
		for _, h := range layers {
			if h < lo || h > hi {
				return usageError{fmt.Errorf("--layers: site %s has indices %d..%d, not %d", site, lo, hi, h)}
			}
		}
	}
	aggs, err := ef.aggregates()
	if err != nil {
		return err
	}
	af := ef.af
	af.aggregate = aggs[0].String()
	sess, err := openSession(g, &af, m, hidden, true)
	if err != nil {
		return err
	}
	defer sess.Close()

	cal, err := ef.cf.calibration(g, sess)
	if err != nil {
		return err
	}
	ev := &core.Evaluator{Sess: sess, Layers: layers, Aggs: aggs, LengthTol: ef.lengthTol, Calib: cal, CrossFitToo: ef.crossFitToo}
	p := g.progress()
	p.Start("evaluating", int64(len(plan.Prompts())))
	ev.Hooks = core.EvalHooks{Done: func() { p.Add(1) }, Failed: promptFailed}
	err = ev.Analyze(ctx, plan)
	p.Finish()
	if err != nil {
		return err
	}
	var rep *core.EvalReport
	if len(plan.Sets) > 0 {
		rep = ev.Prompts(plan)
	}
	var trep *core.TokenEvalReport
	if len(plan.Spans) > 0 {
		trep = ev.Tokens(plan)
	}
	bw := bufio.NewWriter(w)
	switch {
	case ef.asJSON:
		if rep != nil {
			err = writeEvalJSON(bw, rep.Sets, rep.Meta)
		}
		if err == nil && trep != nil {
			err = writeTokenEvalJSON(bw, trep)
		}
	default:
		if rep != nil {
			err = writeEvalText(bw, rep.Sets, rep.Meta, rep.NIn, evalMiddle(layers, cfg.Middle()), aggs...)
			if err == nil {
				err = writeCombinationNote(bw, rep.Calibration)
			}
		}
		if err == nil && trep != nil {
			if rep != nil {
				fmt.Fprintln(bw)
			}
			err = writeTokenEvalText(bw, trep)
		}
	}
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = fmt.Errorf("eval: writing report: %w", ferr)
	}
	if err != nil {
		return err
	}
	badSets := 0
	if rep != nil {
		for _, r := range rep.Sets {
			if r.Err != nil {
				badSets++ // already in the report (text or JSON)
			}
		}
	}
	if trep != nil {
		for _, k := range trep.Kinds {
			if k.Unaligned > 0 {
				say(fmt.Sprintf("span %s: %d of %d edited prompts could not be lined up with their tokens and were left out, e.g. %s",
					k.Kind, k.Unaligned, k.Edits, truncateRunes(k.UnalignedExample, 160)))
			}
			if k.Err != nil && k.Edits > 0 { // a kind with nothing to edit is reported, not a failure
				badSets++
			}
		}
	}
	failed, total := ev.Failed()
	if failed > 0 {
		say(fmt.Sprintf("%d of %d prompts failed and were left out", failed, total))
	}
	if badSets > 0 {
		say(fmt.Sprintf("%d of %d shifted sets or span kinds could not be evaluated (see the report)", badSets, len(plan.Sets)+len(plan.Spans)))
	}
	if n := len(plan.Dropped); n > 0 {
		say(fmt.Sprintf("%d prompts (or pairs) were left out before analysis (see above)", n))
	}
	if failed > 0 || badSets > 0 || len(plan.Dropped) > 0 {
		return &partialError{failed: failed + len(plan.Dropped), total: total + len(plan.Dropped)}
	}
	return nil
}

// EvalRecord is one line of `lmood eval --json` (the core's record).
type EvalRecord = core.EvalRecord

// evalSetReport is the evaluation of one shifted set (the core's).
type evalSetReport = core.EvalSetReport

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
	r := core.EvalReport{Sets: reps, Meta: meta}
	for _, rec := range r.Records() {
		if err := report.WriteJSONL(w, rec); err != nil {
			return err
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

// evalMethodLabel names a row for the text table: "drift L15",
// "drift/median L15", "z(drift L15)+z(surprisal)", "length (tokens)".
func evalMethodLabel(r eval.Row) string {
	if r.Method == eval.MethodLength {
		return "length (tokens)"
	}
	if r.Layer >= 0 && (strings.HasPrefix(r.Method, "fisher(") || strings.HasPrefix(r.Method, "minp(")) {
		return strings.Replace(r.Method, ",surprisal)", fmt.Sprintf(" L%d,surprisal)", r.Layer), 1)
	}
	if r.Layer >= 0 && strings.HasPrefix(r.Method, eval.MethodDrift) {
		if d, ok := strings.CutSuffix(r.Method, "+surprisal"); ok {
			return fmt.Sprintf("z(%s L%d)+z(surprisal)", d, r.Layer)
		}
		return fmt.Sprintf("%s L%d", r.Method, r.Layer)
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
func evalSummaryTable(reps []evalSetReport, mid int, primary drift.Aggregation) (header []string, cells [][]string) {
	dm, cm := core.DriftMethod(primary), core.CombinedMethod(primary)
	header = []string{"shifted set", "n", "length", "surprisal", "entropy", "neg-max-softmax",
		fmt.Sprintf("%s@L%d", dm, mid), "best " + dm, "best " + dm + ", flipped", fmt.Sprintf("z+z@L%d", mid), "z+z@best", "best fisher", "best minp"}
	get := func(rows []eval.Row, method string, layer int) string {
		r, ok := evalFindRow(rows, method, layer)
		if !ok {
			return "n/a"
		}
		return evalFmt(r.AUROC)
	}
	for _, rep := range reps {
		if rep.Err != nil {
			cells = append(cells, []string{rep.Name, "0", "error: " + rep.Err.Error()})
			continue
		}
		n := 0
		if len(rep.Rows) > 0 {
			n = rep.Rows[0].Pos
		}
		best, flipped, comb := "n/a", "n/a", "n/a"
		if i := eval.BestLayer(rep.Rows, dm); i >= 0 {
			b := rep.Rows[i]
			best = fmt.Sprintf("%s (L%d)", evalFmt(b.AUROC), b.Layer)
			comb = get(rep.Rows, cm, b.Layer)
		}
		if i := eval.FlippedBestLayer(rep.Rows, dm); i >= 0 {
			b := rep.Rows[i]
			flipped = fmt.Sprintf("%s (L%d)", evalFmt(1-b.AUROC), b.Layer)
		}
		bestOf := func(method string) string {
			if i := eval.BestLayer(rep.Rows, method); i >= 0 {
				return fmt.Sprintf("%s (L%d)", evalFmt(rep.Rows[i].AUROC), rep.Rows[i].Layer)
			}
			return "n/a"
		}
		cells = append(cells, []string{rep.Name, strconv.Itoa(n),
			get(rep.Rows, eval.MethodLength, -1), get(rep.Rows, eval.MethodSurprisal, -1),
			get(rep.Rows, eval.MethodEntropy, -1), get(rep.Rows, eval.MethodMaxSoftmax, -1),
			get(rep.Rows, dm, mid), best, flipped,
			get(rep.Rows, cm, mid), comb, bestOf(core.FisherMethod(primary)), bestOf(core.MinPMethod(primary))})
	}
	return header, cells
}

// evalAggregateTable assembles one row per shifted set with the best
// drift layer of each aggregation: "0.912 (L5)".
func evalAggregateTable(reps []evalSetReport, aggs []drift.Aggregation) (header []string, cells [][]string) {
	header = []string{"shifted set"}
	for _, a := range aggs {
		header = append(header, a.String())
	}
	for _, rep := range reps {
		row := []string{rep.Name}
		for _, a := range aggs {
			cell := "n/a"
			if rep.Err == nil {
				if i := eval.BestLayer(rep.Rows, core.DriftMethod(a)); i >= 0 {
					cell = fmt.Sprintf("%s (L%d)", evalFmt(rep.Rows[i].AUROC), rep.Rows[i].Layer)
				}
			}
			row = append(row, cell)
		}
		cells = append(cells, row)
	}
	return header, cells
}

// writeEvalText writes the text report; aggs are the aggregations compared
// (none: flat alone), the first leading.
func writeEvalText(w io.Writer, reps []evalSetReport, meta EvalRecord, nIn, mid int, aggs ...drift.Aggregation) error {
	primary := drift.Flat
	if len(aggs) > 0 {
		primary = aggs[0]
	}
	dm := core.DriftMethod(primary)
	for _, rep := range reps {
		if rep.Err != nil {
			fmt.Fprintf(w, "%s\n\n", report.Sanitize(fmt.Sprintf("shifted set %s: %v", rep.Name, rep.Err)))
			continue
		}
		n, nm := 0, 0
		if len(rep.Rows) > 0 {
			n, nm = rep.Rows[0].Pos, rep.Rows[0].NMatched
		}
		fmt.Fprintf(w, "shifted set %s: %d shifted vs %d in-distribution prompts", report.Sanitize(rep.Name), n, nIn)
		if rep.Failed > 0 {
			fmt.Fprintf(w, " (%d failed, left out)", rep.Failed)
		}
		fmt.Fprintf(w, "; %d length-matched pairs (token counts within %d)\n", nm, meta.LengthTol)
		h, cells := evalTable(rep.Rows)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
		if i := eval.BestLayer(rep.Rows, dm); i >= 0 {
			fmt.Fprintf(w, "best %s layer: %d (AUROC %s)", dm, rep.Rows[i].Layer, evalFmt(rep.Rows[i].AUROC))
			if j := eval.FlippedBestLayer(rep.Rows, dm); j >= 0 && rep.Rows[j].AUROC < 0.5 {
				fmt.Fprintf(w, "; the opposite orientation does best at layer %d (AUROC %s)", rep.Rows[j].Layer, evalFmt(1-rep.Rows[j].AUROC))
			}
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w)
	}
	if len(reps) > 1 {
		fmt.Fprintln(w, "summary (AUROC):")
		h, cells := evalSummaryTable(reps, mid, primary)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
	}
	if len(aggs) > 1 {
		fmt.Fprintln(w, "best drift layer per prompt-level aggregation (AUROC):")
		h, cells := evalAggregateTable(reps, aggs)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
	}
	formula := "-ln(ratio): pinch, lower ratio = more unusual"
	if meta.Direction == drift.Expand.String() {
		formula = "+ln(ratio): expand, higher ratio = more unusual"
	}
	site := ""
	switch meta.Site {
	case "", string(analyze.SiteResid):
	case string(analyze.SiteLogits):
		site = fmt.Sprintf(", drift at site logits (L%d = the logits)", meta.NumLayers)
	default:
		site = fmt.Sprintf(", drift at site %s (L = its index)", meta.Site)
	}
	_, err := fmt.Fprintf(w, "%s, %d layers%s, K=%d, sigma=%g, %s noise, seed %d; position 0 %s; drift score = %s.\n"+
		"Shifted prompts are the positives; every score is oriented higher = more unusual, so AUROC < 0.5 means the opposite orientation separates (with AUROC 1 - x).\n",
		report.Sanitize(meta.Model), meta.NumLayers, site, meta.Samples, meta.Sigma, meta.Noise, meta.Seed, meta.FirstToken, formula)
	return err
}
