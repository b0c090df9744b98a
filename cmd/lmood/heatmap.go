package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

// Values a heatmap can colour tokens by (--value).
const (
	valueOOD   = "ood"
	valueRatio = "ratio"
)

// heatmapFlags are the heatmap command's own flags.
type heatmapFlags struct {
	af     analysisFlags
	layer  int
	value  string
	color  string
	width  int
	grid   bool
	scale  string
	digits int
	cf     calibFlags
}

func newHeatmapCmd(g *globals) *cobra.Command {
	var hf heatmapFlags
	var lflag *layerFlag
	cmd := &cobra.Command{
		Use:   "heatmap [flags] [PROMPT...]",
		Short: "Colour each token of a prompt by its drift (OOD score or ratio)",
		Long: `heatmap prints each prompt's own text with every token coloured by its
per-token OOD score (default) or its raw drift ratio at one hidden state
(default: the middle of the model), followed by a legend with the scale, the
hidden state and the colour mode. A header line gives the prompt-level ratio
(mean ± std over the K nudges) and OOD score, as 'lmood score' reports them.

Position 0 (the attention-sink token) gets a per-token value too, but it is
left out of the prompt-level ratio and of the colour range (its value is
usually extreme and would wash out the rest; it is clamped to the scale's
end); --include-first counts it in both.

--grid prints, for each prompt, a token × hidden-state grid instead: rows
are hidden states 1..n (hidden state 0 is omitted; the legend says what it
is in the model's family: in most, the nudged input itself, whose ratio is
1 by definition), columns are tokens. All hidden states
come from one batched analysis: one forward pass over the clean copy and the
K nudges exposes every hidden state at once.

With --color none (or when stdout is not a terminal, or NO_COLOR is set)
the value is printed after each token in [brackets]. Token text is
sanitized: control characters, escape sequences, zero-width and bidi
characters are shown as visible stand-ins and never reach the terminal.

A prompt that cannot be analyzed is reported on stderr and the others are
still shown; the exit code is then 1.

` + siteHelp() + `
--layer picks the index at the site; --layer logits is --site logits. With
--grid, rows are the site's indices (logits has none: no grid).`,
		Example: `  lmood heatmap "Eggplants are fire-engine red."
  lmood heatmap --value ratio --layer 20 "lsadfhl; wiffle jfdalkgy burh lgoi"
  lmood heatmap --grid --color 256 "Eggplants are purple."
  lmood heatmap --color none -f prompts/probes.txt > heatmaps.txt`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := lflag.applyLogits(cmd, &hf.af); err != nil {
				return err
			}
			if hf.grid && hf.af.siteOf() == analyze.SiteLogits {
				return usageError{fmt.Errorf("--grid shows a site at every index, and site logits has none: use --site resid, norm, attn or mlp")}
			}
			if hf.grid && cmd.Flags().Changed("layer") {
				return usageError{fmt.Errorf("--layer and --grid cannot be combined: the grid shows every hidden state")}
			}
			if !cmd.Flags().Changed("width") {
				hf.width = report.DetectWidth(os.Stdout, 80)
			}
			style, err := hf.style(os.Stdout)
			if err != nil {
				return err
			}
			prompts, err := readPrompts(args, hf.af.file)
			if err != nil {
				return err
			}
			// Check the analysis flags before spending seconds loading the model.
			if err := hf.af.check(); err != nil {
				return err
			}
			if err := hf.cf.check(); err != nil {
				return err
			}
			m, err := openModel(g)
			if err != nil {
				return err
			}
			defer m.Close()
			return runHeatmap(g, &hf, style, m, prompts, cmd.OutOrStdout())
		},
	}
	hf.af.register(cmd, g, true)
	hf.cf.register(cmd, false)
	fl := cmd.Flags()
	lflag = registerLayer(cmd, &hf.layer, "index to show")
	fl.StringVar(&hf.value, "value", valueOOD, "what colours the tokens: ood (OOD score, higher = more unusual) or ratio (the raw drift ratio)")
	fl.StringVar(&hf.color, "color", "auto", "colour mode: auto, truecolor, 256, 16 or none (auto follows the terminal, NO_COLOR and CLICOLOR)")
	fl.IntVar(&hf.width, "width", 0, "wrap lines at this many terminal cells, 0 = never (unset: the terminal's width, else $COLUMNS, else 80)")
	fl.BoolVar(&hf.grid, "grid", false, "show a token × hidden-state grid (all hidden states from one batched analysis) instead of one layer")
	fl.StringVar(&hf.scale, "range", "", "fixed colour range MIN:MAX shared by all prompts (default: each prompt's own range, position 0 left out)")
	fl.IntVar(&hf.digits, "digits", 2, "decimals printed for values")
	return cmd
}

// heatmapStyle says how heatmaps are drawn. It holds no model state, so the
// renderers can be tested from hand-built results.
type heatmapStyle struct {
	Mode      report.Mode
	Width     int    // 0 = no wrapping
	Value     string // valueOOD or valueRatio
	Direction drift.Direction
	// IncludeFirst counts position 0 in the prompt ratio and colour range.
	IncludeFirst bool
	// Isolate: per-token nudges; the prompt ratio combines the per-token
	// ratios.
	Isolate bool
	// Aggregate is the prompt-level aggregation (zero: flat).
	Aggregate drift.Aggregation
	// NumLayers is the model's number of blocks (hidden states 0..NumLayers).
	NumLayers int
	// Resid0 is what hidden state 0 is in the model's family (grid label).
	Resid0 arch.Resid0
	// Site is where drift was measured (zero: resid).
	Site analyze.Site
	// Fixed sets a colour range shared by all prompts.
	Fixed    bool
	Min, Max float64
	Digits   int
}

// style resolves the presentation flags; out is the file auto-detection
// looks at.
func (hf *heatmapFlags) style(out *os.File) (heatmapStyle, error) {
	st := heatmapStyle{Width: hf.width, Digits: hf.digits}
	switch strings.ToLower(strings.TrimSpace(hf.value)) {
	case valueOOD, "score":
		st.Value = valueOOD
	case valueRatio:
		st.Value = valueRatio
	default:
		return st, usageError{fmt.Errorf("--value %q: want ood or ratio", hf.value)}
	}
	if c := strings.ToLower(strings.TrimSpace(hf.color)); c == "auto" || c == "" {
		st.Mode = report.DetectColorMode(out)
	} else {
		m, err := report.ParseMode(c)
		if err != nil {
			return st, usageError{fmt.Errorf("--color: %w", err)}
		}
		st.Mode = m
	}
	if hf.width < 0 {
		return st, usageError{fmt.Errorf("--width must be 0 (no wrapping) or positive, got %d", hf.width)}
	}
	if hf.digits < 1 || hf.digits > 10 {
		return st, usageError{fmt.Errorf("--digits must be between 1 and 10, got %d", hf.digits)}
	}
	if hf.scale != "" {
		lo, hi, err := parseRange(hf.scale)
		if err != nil {
			return st, usageError{fmt.Errorf("--range: %w", err)}
		}
		st.Fixed, st.Min, st.Max = true, lo, hi
	}
	return st, nil
}

// parseRange parses "MIN:MAX" with MIN < MAX, both finite.
func parseRange(s string) (lo, hi float64, err error) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want MIN:MAX, e.g. -1:3", s)
	}
	if lo, err = strconv.ParseFloat(strings.TrimSpace(a), 64); err != nil {
		return 0, 0, fmt.Errorf("%q: minimum: %w", s, err)
	}
	if hi, err = strconv.ParseFloat(strings.TrimSpace(b), 64); err != nil {
		return 0, 0, fmt.Errorf("%q: maximum: %w", s, err)
	}
	if !isFinite(lo) || !isFinite(hi) || !(lo < hi) {
		return 0, 0, fmt.Errorf("%q: want finite MIN < MAX", s)
	}
	if math.Abs(lo) > maxRange || math.Abs(hi) > maxRange {
		return 0, 0, fmt.Errorf("%q: want MIN and MAX within ±%g (ratios and OOD scores are of order 1; a wider range colours every token alike)", s, maxRange)
	}
	return lo, hi, nil
}

// maxRange bounds --range: drift ratios are positive numbers near 1 and
// OOD scores their logarithms.
const maxRange = 1e6

func isFinite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// runHeatmap analyzes each prompt against m and writes its heatmap (or grid)
// to w. Failed prompts are reported on stderr and counted.
func runHeatmap(g *globals, hf *heatmapFlags, st heatmapStyle, m *store.Model, prompts []string, w io.Writer) error {
	cfg := m.Config()
	site := hf.af.siteOf()
	var hidden []int
	at := 0
	if hf.grid {
		hidden = core.SiteIndices(site, cfg.Layers)
	} else {
		var err error
		if hidden, at, err = resolveLayer(site, hf.layer, m); err != nil {
			return err
		}
	}
	sess, err := openSession(g, &hf.af, m, hidden, false)
	if err != nil {
		return err
	}
	defer sess.Close()
	opt := sess.Options()
	st.Direction, st.IncludeFirst, st.Isolate, st.NumLayers = opt.Direction, opt.IncludeFirst, opt.Isolate, cfg.Layers
	st.Aggregate, st.Site, st.Resid0 = sess.Rule().Aggregate, opt.Site, cfg.Resid0()
	cal, err := hf.cf.calibration(g, sess)
	if err != nil {
		return err
	}

	out := bufio.NewWriter(w)
	failed := 0
	for i, prompt := range prompts {
		res, passes, err := sess.Analyze(prompt)
		if err != nil {
			failed++
			if err := out.Flush(); err != nil {
				return fmt.Errorf("writing output: %w", err)
			}
			promptFailed(i+1, prompt, err)
			continue
		}
		for _, wn := range res.Warnings {
			g.warnf("prompt %d: %s", i+1, wn)
		}
		g.logf("prompt %d: %d token(s), %d forward pass(es) for %d hidden state(s)", i+1, len(res.Tokens), passes, len(hidden))
		if i > 0 {
			fmt.Fprintln(out)
		}
		if hf.grid {
			err = renderGrid(out, i+1, res, st)
		} else {
			err = renderHeatmap(out, i+1, res, at, st)
		}
		if err != nil {
			return err
		}
		if err := calibratedLine(out, g, cal, i+1, res, hidden); err != nil {
			return err
		}
	}
	calibratedFooter(out, cal)
	return finish(out, failed, len(prompts))
}

// tokenValue is the number shown for a token: its mean ratio, or the OOD
// score of it. A statistic with no valid nudge is NaN (drawn uncoloured).
func (st heatmapStyle) tokenValue(s analyze.Stat) float64 {
	if undefinedStat(s) {
		return math.NaN()
	}
	if st.Value == valueRatio {
		return s.Mean
	}
	return drift.OODScore(s.Mean, st.Direction)
}

// undefinedStat reports whether s had no valid nudge.
func undefinedStat(s analyze.Stat) bool { return !s.Defined }

// valueLabel names the value in legends.
func (st heatmapStyle) valueLabel() string {
	if st.Value == valueRatio {
		return "drift ratio"
	}
	return "OOD score " + oodFormula(st.Direction)
}

// forResult adapts the style to one prompt: a one-token prompt has only
// position 0, which analyze then counts in the prompt ratio.
func (st heatmapStyle) forResult(res *analyze.Result) heatmapStyle {
	if len(res.Tokens) == 1 {
		st.IncludeFirst = true
	}
	return st
}

// firstNote explains how position 0 is treated.
func (st heatmapStyle) firstNote() string {
	switch {
	case st.IncludeFirst:
		return "position 0 included in the prompt ratio"
	case st.Mode == report.ModeNone || st.Fixed:
		return "position 0 shown but excluded from the prompt ratio"
	}
	return "position 0 shown but excluded from the prompt ratio and the colour range"
}

// colourRange returns the fixed range to colour values by: the user's, or
// the range of the finite values outside position 0 (unless position 0
// counts or is the only token). ok is false when the data should set the
// range itself, as in ModeNone, where the legend then gives the true
// minimum and maximum of the printed numbers.
func (st heatmapStyle) colourRange(rows [][]float64) (lo, hi float64, ok bool) {
	if st.Fixed {
		return st.Min, st.Max, true
	}
	if st.Mode == report.ModeNone {
		return 0, 0, false
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, row := range rows {
		start := 1
		if st.IncludeFirst || len(row) < 2 {
			start = 0
		}
		for _, v := range row[start:] {
			if isFinite(v) {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	if !(hi >= lo) {
		return 0, 0, false
	}
	return lo, hi, true
}

// promptRatio returns the prompt-level ratio at layer l as score reports
// it (the core's one rule). ok is false when there is none.
func (st heatmapStyle) promptRatio(res *analyze.Result, l *analyze.Layer) (mean, std float64, ok bool) {
	s := core.Summarize(res, l, core.Rule{Isolate: st.Isolate, IncludeFirst: st.IncludeFirst, Aggregate: st.Aggregate})
	return s.Ratio, s.RatioStd, s.OK
}

// promptHeader is the line above a prompt's heatmap or grid.
func promptHeader(idx int, res *analyze.Result, summary string) string {
	n := fmt.Sprintf("%d tokens", len(res.Tokens))
	if len(res.Tokens) == 1 {
		n = "1 token"
	}
	return fmt.Sprintf("[%d] \"%s\"  %s  %s", idx, report.Sanitize(truncateRunes(res.Prompt, 60)), n, summary)
}

// renderHeatmap writes one prompt's header line and its heatmap at hidden
// state h.
func renderHeatmap(w io.Writer, idx int, res *analyze.Result, h int, st heatmapStyle) error {
	l, ok := res.Layer(h)
	if !ok {
		return fmt.Errorf("heatmap: hidden state %d missing from the analysis of prompt %d", h, idx)
	}
	if len(l.TokenRatio) != len(res.Tokens) {
		return fmt.Errorf("heatmap: prompt %d has %d tokens but %d per-token ratios", idx, len(res.Tokens), len(l.TokenRatio))
	}
	st = st.forResult(res)
	summary := "ratio n/a (no valid nudge)"
	if m, s, ok := st.promptRatio(res, l); ok {
		summary = fmt.Sprintf("ratio %.3f ± %.3f  OOD %.3f", m, s, drift.OODScore(m, st.Direction))
		if st.Isolate {
			summary += " (isolation: " + core.IsolationWord(st.Aggregate) + " of per-token ratios, std across tokens)"
		}
		if st.Aggregate.String() != core.DefaultAggregate {
			summary += " (aggregate " + st.Aggregate.String() + ")"
		}
	}
	if _, err := fmt.Fprintln(w, promptHeader(idx, res, summary)); err != nil {
		return fmt.Errorf("heatmap: %w", err)
	}
	toks := make([]report.TokenScore, len(res.Tokens))
	vals := make([]float64, len(res.Tokens))
	for i, t := range res.Tokens {
		vals[i] = st.tokenValue(l.TokenRatio[i])
		toks[i] = report.TokenScore{Text: t.Text, ID: t.ID, Value: vals[i], Std: l.TokenRatio[i].Std}
	}
	opts := report.HeatmapOptions{
		Mode:   st.Mode,
		Width:  st.Width,
		Digits: st.Digits,
		Label:  fmt.Sprintf("per-token %s, %s; %s", st.valueLabel(), pointDesc(st.Site, h, st.NumLayers), st.firstNote()),
	}
	if lo, hi, ok := st.colourRange([][]float64{vals}); ok {
		opts.FixedRange, opts.Min, opts.Max = true, lo, hi
	}
	// Byte-level tokens that split a character are shown as the character,
	// with the mean of their values (JSON keeps one entry per token).
	if grouped := report.GroupScores(toks); len(grouped) < len(toks) {
		toks = grouped
		opts.Label += "; a character split across tokens shows their mean"
	}
	if err := report.Heatmap(w, toks, opts); err != nil {
		return fmt.Errorf("heatmap: prompt %d: %w", idx, err)
	}
	return nil
}

// renderGrid writes one prompt's header line and its token × hidden-state
// grid over every hidden state in res except 0.
func renderGrid(w io.Writer, idx int, res *analyze.Result, st heatmapStyle) error {
	st = st.forResult(res)
	var (
		layers []int
		values [][]float64
		trend  []float64
	)
	for i := range res.Layers {
		l := &res.Layers[i]
		if l.Index == 0 && isResid(st.Site) {
			continue
		}
		if len(l.TokenRatio) != len(res.Tokens) {
			return fmt.Errorf("heatmap: prompt %d hidden state %d has %d per-token ratios for %d tokens", idx, l.Index, len(l.TokenRatio), len(res.Tokens))
		}
		row := make([]float64, len(res.Tokens))
		for t := range row {
			row[t] = st.tokenValue(l.TokenRatio[t])
		}
		layers = append(layers, l.Index)
		values = append(values, row)
		m, _, ok := st.promptRatio(res, l)
		if !ok {
			m = math.NaN()
		}
		trend = append(trend, m)
	}
	if len(layers) == 0 {
		return fmt.Errorf("heatmap: prompt %d: no hidden state above 0 in the analysis", idx)
	}
	summary := fmt.Sprintf("prompt ratio by hidden state %d→%d: %s", layers[0], layers[len(layers)-1], report.Sparkline(trend))
	if lo, hi, ok := finiteRange(trend); ok {
		summary += fmt.Sprintf(" (%.3f … %.3f)", lo, hi)
	}
	if _, err := fmt.Fprintln(w, promptHeader(idx, res, summary)); err != nil {
		return fmt.Errorf("heatmap: %w", err)
	}
	grid := report.Grid{Tokens: make([]string, len(res.Tokens)), Layers: layers, Values: values}
	for i, t := range res.Tokens {
		grid.Tokens[i] = t.Text
	}
	// Byte-level tokens that split a character are one column, the
	// character, with the mean of their values (as in the one-row heatmap;
	// JSON keeps one entry per token).
	grid, grouped := report.GroupColumns(grid)
	// Columns are as wide as the widest token, between 6 and 10 cells.
	colWidth := 6
	for _, t := range grid.Tokens {
		colWidth = max(colWidth, min(10, tableCells.StringWidth(report.Sanitize(t))))
	}
	rows := fmt.Sprintf("rows = hidden states %d..%d of %d (%s)", layers[0], layers[len(layers)-1], st.NumLayers, st.Resid0.Omitted())
	if !isResid(st.Site) {
		rows = fmt.Sprintf("rows = site %s, indices %d..%d of %d", st.Site, layers[0], layers[len(layers)-1], st.NumLayers)
	}
	opts := report.GridOptions{
		Mode:        st.Mode,
		Width:       st.Width,
		ColumnWidth: colWidth,
		ShowValues:  true,
		Digits:      st.Digits,
		Label:       fmt.Sprintf("per-token %s; %s, columns = tokens; %s", st.valueLabel(), rows, st.firstNote()),
	}
	if grouped {
		opts.Label += "; a character split across tokens shows their mean"
	}
	if lo, hi, ok := st.colourRange(grid.Values); ok {
		opts.FixedRange, opts.Min, opts.Max = true, lo, hi
	}
	if err := report.GridHeatmap(w, grid, opts); err != nil {
		return fmt.Errorf("heatmap: prompt %d: %w", idx, err)
	}
	return nil
}

// isResid reports whether site is the residual stream (the zero site too).
func isResid(site analyze.Site) bool { return site == "" || site == analyze.SiteResid }

// finiteRange returns the smallest and largest finite values of vs.
func finiteRange(vs []float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, v := range vs {
		if isFinite(v) {
			lo, hi, ok = math.Min(lo, v), math.Max(hi, v), true
		}
	}
	return lo, hi, ok
}
