package main

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
)

// writeCombinationNote says where the p-value combinations of the
// prompt-level report took their p-values from.
func writeCombinationNote(w io.Writer, calibration string) error {
	from := "cross-fitted on the in-distribution set (each in-distribution prompt placed among the others, each shifted prompt among all of them)"
	if calibration != "" {
		from = "from the calibration " + report.Sanitize(calibration) + " for the primary aggregation (rows of other aggregations cross-fit on the in-distribution set)"
	}
	_, err := fmt.Fprintf(w, "fisher = -2 sum ln p, minp = -ln min p of the upper-tail p-values of drift and surprisal, %s.\n", from)
	return err
}

// tokenMethodLabel names a token-level row: "drift L15", "surprisal",
// "z(drift L15)+z(surprisal)", "fisher(drift L15,surprisal)".
func tokenMethodLabel(r core.TokenRow) string {
	switch {
	case r.Layer < 0:
		return r.Method
	case r.Method == core.TokenMethodCombined:
		return fmt.Sprintf("z(drift L%d)+z(surprisal)", r.Layer)
	case r.Method == core.TokenMethodDrift:
		return fmt.Sprintf("drift L%d", r.Layer)
	}
	return strings.Replace(r.Method, ",surprisal)", fmt.Sprintf(" L%d,surprisal)", r.Layer), 1)
}

// tokenRate formats a localization rate: "0.625".
func tokenRate(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

// tokenTable assembles the table of one span kind.
func tokenTable(rows []core.TokenRow) (header []string, cells [][]string) {
	header = []string{"method", "token AUROC", "top-1", "top-3"}
	for _, r := range rows {
		cells = append(cells, []string{tokenMethodLabel(r), evalFmt(r.AUROC), tokenRate(r.Top1), tokenRate(r.Top3)})
	}
	return header, cells
}

// bestTokenRow returns the row of method with the highest top-1 rate
// (ties: the higher AUROC, then the first), or -1.
func bestTokenRow(rows []core.TokenRow, method string) int {
	best := -1
	for i, r := range rows {
		if r.Method != method {
			continue
		}
		if best < 0 || r.Top1 > rows[best].Top1 || (r.Top1 == rows[best].Top1 && r.AUROC > rows[best].AUROC) {
			best = i
		}
	}
	return best
}

// tokenSummaryTable has one row per span kind: top-1 (and AUROC) of
// surprisal and of the best layer of drift and of each combination.
func tokenSummaryTable(kinds []core.TokenKindReport) (header []string, cells [][]string) {
	methods := []string{core.TokenMethodDrift, core.TokenMethodCombined, core.TokenMethodFisher, core.TokenMethodMinP}
	header = []string{"span kind", "n", "surprisal"}
	for _, m := range methods {
		header = append(header, "best "+m)
	}
	for _, k := range kinds {
		if k.Err != nil {
			cells = append(cells, []string{k.Kind, "0", "error: " + k.Err.Error()})
			continue
		}
		cell := func(i int) string {
			if i < 0 {
				return "n/a"
			}
			r := k.Rows[i]
			s := tokenRate(r.Top1) + " / " + evalFmt(r.AUROC)
			if r.Layer >= 0 {
				s += fmt.Sprintf(" (L%d)", r.Layer)
			}
			return s
		}
		n := 0
		if len(k.Rows) > 0 {
			n = k.Rows[0].Prompts
		}
		row := []string{k.Kind, strconv.Itoa(n), cell(bestTokenRow(k.Rows, core.TokenMethodSurprisal))}
		for _, m := range methods {
			row = append(row, cell(bestTokenRow(k.Rows, m)))
		}
		cells = append(cells, row)
	}
	return header, cells
}

// writeTokenEvalText writes the token-level report: a table per span kind,
// then a summary when there are several kinds.
func writeTokenEvalText(w io.Writer, rep *core.TokenEvalReport) error {
	for _, k := range rep.Kinds {
		fmt.Fprintf(w, "span edit %s: %d edited prompts", k.Kind, k.Edits)
		var left []string
		if k.NotApplicable > 0 {
			left = append(left, fmt.Sprintf("%d --in prompts had nothing to edit", k.NotApplicable))
		}
		if k.Unaligned > 0 {
			left = append(left, fmt.Sprintf("%d could not be lined up with their tokens, left out", k.Unaligned))
		}
		if k.Failed > 0 {
			left = append(left, fmt.Sprintf("%d failed, left out", k.Failed))
		}
		if len(left) > 0 {
			fmt.Fprintf(w, " (%s)", strings.Join(left, "; "))
		}
		if k.Err != nil {
			fmt.Fprintf(w, "\n%s\n\n", report.Sanitize(fmt.Sprintf("span edit %s: %v", k.Kind, k.Err)))
			continue
		}
		if len(k.Rows) > 0 {
			r := k.Rows[0]
			fmt.Fprintf(w, "; %d evaluated: %d edited tokens vs %d others", r.Prompts, r.Edited, r.Others)
		}
		fmt.Fprintln(w)
		h, cells := tokenTable(k.Rows)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
		fmt.Fprintln(w)
	}
	if len(rep.Kinds) > 1 {
		fmt.Fprintln(w, "token-level summary (top-1 / token AUROC; the best layer by top-1):")
		h, cells := tokenSummaryTable(rep.Kinds)
		if err := report.TextTable(w, h, cells, report.TableOptions{}); err != nil {
			return err
		}
	}
	from := fmt.Sprintf("the tokens of the %d unedited --in prompts at the same position bucket (the prompt an edit was made from left out)", rep.NIn)
	if rep.Calibration != "" {
		from = "the calibration " + report.Sanitize(rep.Calibration) + " (z-scores: the unedited --in prompts)"
	}
	m := rep.Meta
	_, err := fmt.Fprintf(w, "%s, K=%d, sigma=%g, %s noise, seed %d; per-token drift oriented %s; position 0 never evaluated.\n"+
		"top-1/top-3: the prompt's highest-scored token (one of the three highest) is an edited one, ties counting against.\n"+
		"z-scores and p-values place each token among %s; fisher = -2 sum ln p, minp = -ln min p.\n",
		report.Sanitize(m.Model), m.Samples, m.Sigma, m.Noise, m.Seed, m.Direction, from)
	return err
}

// writeTokenEvalJSON writes one JSON line per (span kind, method, layer).
func writeTokenEvalJSON(w io.Writer, rep *core.TokenEvalReport) error {
	for _, rec := range rep.Records() {
		if err := report.WriteJSONL(w, rec); err != nil {
			return err
		}
	}
	return nil
}
