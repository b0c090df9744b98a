package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-runewidth"
	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

// LayersRecord is one line of `lmood layers --json` (the core's record).
type LayersRecord = core.LayersRecord

// layersFlags are the layers command's own flags.
type layersFlags struct {
	af     analysisFlags
	asJSON bool
	png    string
	width  int
	cf     calibFlags
}

func newLayersCmd(g *globals) *cobra.Command {
	var lf layersFlags
	cmd := &cobra.Command{
		Use:   "layers [flags] [PROMPT...]",
		Short: "Compare the drift ratio across every hidden state",
		Long: `layers measures each prompt's prompt-level drift ratio at every hidden
state 1..n at once (hidden state 0 is omitted; the footer says what it is in
the model's family: in most, the nudged input itself, whose ratio is 1 by
definition). The graph exposes all hidden states as
outputs, so one batched forward pass over the clean copy and the K nudges
serves every layer: the cost per prompt is ceil((K+1)/batch) passes, not one
per layer (--verbose prints the count).

It prints a compact sparkline per prompt, then a table of the ratio at each
hidden state (split into bands of columns that fit --width); --json writes
JSON Lines instead, --png draws the ratio against the hidden state, one line
per prompt with a ±std band.

Position 0 is left out of the prompt-level ratio unless --include-first.
A prompt that cannot be analyzed is reported and the others still are; the
exit code is then 1.

` + siteHelp() + `
layers shows the chosen site at every index: resid 1..n, norm 0..n, attn and
mlp 1..n (logits has a single value: use 'lmood score --site logits').`,
		Example: `  lmood layers "Eggplants are purple." "Eggplants are fire-engine red."
  lmood layers -f prompts/probes.txt --png layers.png
  lmood layers --json -k 50 "lsadfhl; wiffle jfdalkgy burh lgoi" > layers.jsonl
  lmood layers --site mlp "Eggplants are fire-engine red."`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("width") {
				lf.width = report.DetectWidth(os.Stdout, 100)
			}
			if lf.width < 0 {
				return usageError{fmt.Errorf("--width must be 0 (no limit) or positive, got %d", lf.width)}
			}
			prompts, err := readPrompts(args, lf.af.file)
			if err != nil {
				return err
			}
			if err := lf.af.check(); err != nil {
				return err
			}
			if lf.af.siteOf() == analyze.SiteLogits {
				return usageError{fmt.Errorf("--site logits has no index to compare across: use 'lmood score --site logits'")}
			}
			if lf.png != "" {
				// Fail now, not after minutes of analysis.
				if err := checkOutputFile(lf.png); err != nil {
					return usageError{fmt.Errorf("--png: %w", err)}
				}
			}
			if err := lf.cf.check(); err != nil {
				return err
			}
			m, err := openModel(g)
			if err != nil {
				return err
			}
			defer m.Close()
			return runLayers(g, &lf, m, prompts, cmd.OutOrStdout())
		},
	}
	lf.af.register(cmd, g, true)
	lf.cf.register(cmd, false)
	fl := cmd.Flags()
	fl.BoolVar(&lf.asJSON, "json", false, "write JSON Lines, one object per prompt with a ratio per hidden state")
	fl.StringVar(&lf.png, "png", "", "also draw the ratio against the hidden state to FILE (PNG; .svg and .pdf by extension)")
	fl.IntVar(&lf.width, "width", 0, "fit the table in this many cells by splitting its columns into bands, 0 = one table (unset: the terminal's width, else $COLUMNS, else 100)")
	return cmd
}

// allHiddenStates returns 1..n: every hidden state after a block.
func allHiddenStates(n int) []int { return core.AllHiddenStates(n) }

// describeLayers prints a list of hidden states compactly ("15", "1–30").
func describeLayers(hs []int) string { return core.DescribeLayers(hs) }

// layersItem is one prompt's outcome.
type layersItem struct {
	prompt string
	res    *analyze.Result // nil on failure
	passes int
	err    error
}

// layersMeta is what the renderers need to know about the run.
type layersMeta struct {
	Model     string
	NumLayers int
	// Resid0 is what hidden state 0 is in the model's family (footer).
	Resid0 arch.Resid0
	Opt    analyze.Options
	// Agg is the prompt-level aggregation (zero: flat).
	Agg drift.Aggregation
}

// rule is the core's prompt-level rule for this run.
func (m layersMeta) rule() core.Rule { return core.RuleOf(m.Opt, m.Agg) }

// runLayers analyzes every prompt at all hidden states 1..n against m and
// writes the table (or JSON Lines) to w, and the plot to --png.
func runLayers(g *globals, lf *layersFlags, m *store.Model, prompts []string, w io.Writer) error {
	cfg := m.Config()
	indices := core.SiteIndices(lf.af.siteOf(), cfg.Layers)
	if len(indices) == 0 {
		return usageError{fmt.Errorf("--site %s has no index to compare across", lf.af.site)}
	}
	sess, err := openSession(g, &lf.af, m, indices, false)
	if err != nil {
		return err
	}
	defer sess.Close()
	meta := layersMeta{Model: m.Manifest.Name, NumLayers: cfg.Layers, Resid0: cfg.Resid0(), Opt: sess.Options(), Agg: sess.Rule().Aggregate}
	cal, err := lf.cf.calibration(g, sess)
	if err != nil {
		return err
	}

	out := bufio.NewWriter(w)
	p := g.progress()
	if len(prompts) > 1 {
		p.Start("layers", int64(len(prompts)))
	}
	items := make([]layersItem, 0, len(prompts))
	failed := 0
	for i, prompt := range prompts {
		res, passes, err := sess.Analyze(prompt)
		p.Add(1)
		it := layersItem{prompt: prompt, res: res, passes: passes, err: err}
		items = append(items, it)
		if err != nil {
			failed++
			if !lf.asJSON {
				promptFailed(i+1, prompt, err)
			}
		} else {
			g.logf("prompt %d: %d forward pass(es) for %d copies (clean + K=%d) of %d tokens, all %d indices at once",
				i+1, passes, meta.Opt.Samples+1, meta.Opt.Samples, len(res.Tokens), len(indices))
			for _, wn := range res.Warnings {
				g.warnf("prompt %d: %s", i+1, wn)
			}
		}
		if lf.asJSON {
			if err := report.WriteJSONL(out, calibratedLayers(layersRecord(it, meta), cal, it.res)); err != nil {
				return err
			}
		}
	}
	p.Finish()
	if !lf.asJSON {
		if err := renderLayers(out, items, meta, lf.width); err != nil {
			return err
		}
		for i, it := range items {
			if err := calibratedLine(out, g, cal, i+1, it.res, allHiddenStates(cfg.Layers)); err != nil {
				return err
			}
		}
		calibratedFooter(out, cal)
	}
	if lf.png != "" {
		series := layerSeries(items, meta)
		if len(series) == 0 {
			g.warnf("no prompt was analyzed: %s not written", lf.png)
		} else {
			what, xlabel := "hidden state", ""
			if !isResid(meta.Opt.Site) {
				what, xlabel = "site "+string(meta.Opt.Site), string(meta.Opt.Site)+" index"
			}
			title := fmt.Sprintf("Distortion ratio by %s — %s, K=%d, σ=%g", what, meta.Model, meta.Opt.Samples, meta.Opt.Sigma)
			if err := report.PlotLayers(lf.png, series, report.PlotOptions{Title: title, XLabel: xlabel}); err != nil {
				return fmt.Errorf("--png: %w", err)
			}
			g.logf("plot written to %s", lf.png)
		}
	}
	return finish(out, failed, len(prompts))
}

// layersRecord builds the JSON record of one prompt.
func layersRecord(it layersItem, meta layersMeta) LayersRecord {
	setup := core.NewSetup(meta.Model, meta.NumLayers, meta.Opt, meta.Agg)
	return core.NewLayersRecord(it.prompt, setup, meta.rule(), it.res, it.passes, it.err)
}

// layerSeries turns the analyzed prompts into one series each, skipping
// failures and hidden state 0.
func layerSeries(items []layersItem, meta layersMeta) []report.LayerSeries {
	var out []report.LayerSeries
	for _, it := range items {
		if it.err != nil || it.res == nil {
			continue
		}
		s := report.LayerSeries{Prompt: it.prompt}
		for i := range it.res.Layers {
			l := &it.res.Layers[i]
			if l.Index == 0 && isResid(meta.Opt.Site) {
				continue // hidden state 0 is not analyzed (see Resid0 in the footer)
			}
			sum := core.Summarize(it.res, l, meta.rule())
			s.Layers = append(s.Layers, l.Index)
			s.Mean = append(s.Mean, sum.Ratio)
			s.Std = append(s.Std, sum.RatioStd)
		}
		out = append(out, s)
	}
	return out
}

// tableCells measures rendered tables the way report does: East Asian
// ambiguous characters (box drawing) count as one cell.
var tableCells = &runewidth.Condition{EastAsianWidth: false, StrictEmojiNeutral: true}

// renderLayers writes one sparkline line per prompt, the layer table (in
// bands of hidden states no wider than width, 0 = one table) and a footer.
func renderLayers(w io.Writer, items []layersItem, meta layersMeta, width int) error {
	series := layerSeries(items, meta)
	if len(series) == 0 {
		_, err := fmt.Fprintln(w, "no prompt could be analyzed")
		return err
	}
	// Compact summary: one sparkline across all hidden states per prompt.
	var b strings.Builder
	num := 0
	for _, it := range items {
		if it.err != nil {
			continue
		}
		s := series[num]
		num++
		fmt.Fprintf(&b, "%2d  %s  %s\n", num, report.Sparkline(s.Mean), sparkSummary(s))
	}
	// The table: as many hidden-state columns per band as fit the width.
	layers := series[0].Layers
	opts := report.TableOptions{PromptWidth: 24, Digits: 3}
	// Find how many columns fit, then spread the hidden states evenly over
	// as few bands as that allows (6+6+6+6+6 rather than 7+7+7+7+2).
	most, _, err := widestBand(series, 0, len(layers), width, opts)
	if err != nil {
		return err
	}
	bands := (len(layers) + most - 1) / most
	even := (len(layers) + bands - 1) / bands
	for start := 0; start < len(layers); {
		n, tbl, err := widestBand(series, start, even, width, opts)
		if err != nil {
			return err
		}
		if len(layers) > n || start > 0 {
			what := "hidden states"
			if n == 1 {
				what = "hidden state"
			}
			fmt.Fprintf(&b, "\n%s %s (trend = this band only)\n", what, describeLayers(layers[start:start+n]))
		} else {
			b.WriteByte('\n')
		}
		b.Write(tbl)
		start += n
	}
	opt := meta.Opt
	where := fmt.Sprintf("ratio per hidden state 1..%d (%s)", meta.NumLayers, meta.Resid0.Omitted())
	if !isResid(opt.Site) {
		where = fmt.Sprintf("ratio at site %s, indices %s of %d", opt.Site, describeLayers(layers), meta.NumLayers)
	}
	var used []int
	for _, it := range items {
		if it.err == nil {
			used = append(used, it.res.Samples)
		}
	}
	fmt.Fprintf(&b, "%s, %s, %s, sigma=%g, %s noise, seed %d; position 0 %s%s",
		report.Sanitize(meta.Model), where, samplesNote(opt, used), opt.Sigma, opt.Noise, opt.Seed, firstTokenWord(opt.IncludeFirst), aggregateNote(meta.Agg))
	if opt.Isolate {
		b.WriteString("; isolation mode: " + core.IsolationWord(meta.Agg) + " of per-token ratios")
	}
	b.WriteByte('\n')
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("layers: %w", err)
	}
	return nil
}

// sparkSummary describes a series' extremes next to its sparkline, e.g.
// "h1 0.812 → h30 2.301, min 0.412 at h3, max 2.913 at h27: Eggplants…".
func sparkSummary(s report.LayerSeries) string {
	lo, hi := -1, -1
	for i, v := range s.Mean {
		if !isFinite(v) {
			continue
		}
		if lo < 0 || v < s.Mean[lo] {
			lo = i
		}
		if hi < 0 || v > s.Mean[hi] {
			hi = i
		}
	}
	prompt := report.Sanitize(truncateRunes(s.Prompt, 40))
	if lo < 0 {
		return "no finite ratio  " + prompt
	}
	return fmt.Sprintf("min %.3f at h%d, max %.3f at h%d  %s", s.Mean[lo], s.Layers[lo], s.Mean[hi], s.Layers[hi], prompt)
}

// widestBand renders the table for up to limit hidden-state columns from
// start and returns the largest column count (at least one) whose table
// fits width cells (any count when width is 0).
func widestBand(series []report.LayerSeries, start, limit, width int, opts report.TableOptions) (int, []byte, error) {
	total := min(limit, len(series[0].Layers)-start)
	var best []byte
	bestN := 0
	for n := total; n >= 1; n-- {
		var buf bytes.Buffer
		if err := report.LayerTable(&buf, bandSeries(series, start, n), opts); err != nil {
			return 0, nil, fmt.Errorf("layers: %w", err)
		}
		best, bestN = buf.Bytes(), n
		if width <= 0 || maxLineWidth(best) <= width {
			break
		}
	}
	return bestN, best, nil
}

// bandSeries restricts each series to n hidden states from index start.
func bandSeries(series []report.LayerSeries, start, n int) []report.LayerSeries {
	out := make([]report.LayerSeries, len(series))
	for i, s := range series {
		end := min(start+n, len(s.Layers))
		out[i] = report.LayerSeries{Prompt: s.Prompt, Layers: s.Layers[start:end], Mean: s.Mean[start:end], Std: s.Std[start:end]}
	}
	return out
}

// maxLineWidth returns the widest line of text in terminal cells.
func maxLineWidth(text []byte) int {
	widest := 0
	for line := range strings.SplitSeq(string(text), "\n") {
		widest = max(widest, tableCells.StringWidth(line))
	}
	return widest
}

// checkOutputFile checks, before any work, that a file can be written at
// path the way report writes plots: a temporary file in its directory,
// renamed into place. It leaves nothing behind.
func checkOutputFile(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("cannot write %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check-*")
	if err != nil {
		return fmt.Errorf("cannot write %s: %w", path, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
