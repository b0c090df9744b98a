package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/calibrate"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
)

func newCalibrateCmd(g *globals) *cobra.Command {
	var af analysisFlags
	var req core.CalibrateRequest
	var layers []int
	cmd := &cobra.Command{
		Use:   "calibrate [flags]",
		Short: "Build a calibration: where scores fall among the model's own text (percentiles, p-values)",
		Long: `calibrate lets the model write --passages short passages of its own (--tokens
tokens each, sampled from the model), analyzes them, and a bounded number of
their prefixes so that every prompt-length bucket (1–4, 5–8, 9–16, 17–32
tokens) has enough values, with the analysis flags given, and saves the
distributions of prompt-level and per-token drift in the model's store
directory. With --reference FILE the texts of FILE (one per line, or .jsonl)
are the reference instead. Per-token values are bucketed by position and by
token class (--token-classes): by default whether the token is frequent or
rare in the reference texts, so that a rare word is compared with rare words;
a (position, class) cell with fewer than 20 values falls back to every token
of its position.

score, heatmap and layers then find the calibration that matches their
analysis (same model, hidden states, K, sigma, noise, aggregation ...) and add
percentiles: "more unusual than 97% of the model's own text". A calibration of
other settings is never applied: run calibrate again with the same flags.
By default every hidden state after a block is calibrated, so that all
three commands find it; --layer limits it (faster).`,
		Example: `  lmood calibrate                        # 200 self-generated passages, all hidden states
  lmood calibrate --passages 100 --layer 15
  lmood calibrate --reference my-corpus.txt
  lmood score "Eggplants are purple."    # now with a percentile column`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := af.check(); err != nil {
				return err
			}
			if req.Passages < 1 || req.Tokens < 2 {
				return usageError{fmt.Errorf("--passages must be >= 1 and --tokens >= 2, got %d and %d", req.Passages, req.Tokens)}
			}
			if cmd.Flags().Changed("reference") && (cmd.Flags().Changed("passages") || cmd.Flags().Changed("tokens")) {
				return usageError{errors.New("--passages and --tokens size a self-generated reference: give them or --reference, not both")}
			}
			for _, l := range layers {
				if l < 0 {
					return usageError{fmt.Errorf("--layer: want hidden-state indices >= 0, got %d", l)}
				}
			}
			m, err := openModel(g)
			if err != nil {
				return err
			}
			defer m.Close()
			for _, l := range layers {
				if l > m.Config().Layers {
					return usageError{fmt.Errorf("--layer: model %s has hidden states 0..%d, not %d", m.Manifest.Name, m.Config().Layers, l)}
				}
			}
			req.Hidden, req.Threads = layers, g.threads
			start := time.Now()
			ref, path, err := core.Calibrate(m, af.options(true), req, g.hooks())
			if err != nil {
				return cliErr(err)
			}
			return calibrationSummary(cmd.OutOrStdout(), ref, path, time.Since(start))
		},
	}
	af.register(cmd, g, false)
	fl := cmd.Flags()
	fl.IntVar(&req.Passages, "passages", core.DefaultCalibrationPassages, "self-generated reference passages")
	fl.IntVar(&req.Tokens, "tokens", core.DefaultCalibrationTokens, "tokens per self-generated passage (at most)")
	fl.StringVar(&req.Start, "start", "", "text every generated passage continues (default: the model's <|endoftext|> or BOS token)")
	fl.Uint64Var(&req.Seed, "passage-seed", core.DefaultCalibrationSeed, "seed of the passage sampling")
	fl.StringVar(&req.ReferenceFile, "reference", "", "reference texts FILE (.txt one per line, or .jsonl with a \"text\" field) instead of self-generated passages")
	fl.IntSliceVarP(&layers, "layer", "l", nil, "hidden states to calibrate (repeat or comma-separate; default every one after a block)")
	fl.StringVar(&req.TokenClasses, "token-classes", calibrate.DefaultClassScheme, "bucket per-token values by token class as well as position: freq (frequent or rare in the reference texts), norm (embedding-norm tercile) or none")
	return cmd
}

// calibrationSummary prints where a calibration was saved, how long it
// took and how many reference values each prompt-length bucket got.
func calibrationSummary(w io.Writer, ref *calibrate.Reference, path string, took time.Duration) error {
	id := ref.Identity
	fmt.Fprintf(w, "calibrated %s (%s, hidden states %s) against %s\n", id.Model, id.Site, core.DescribeLayers(id.HiddenStates), id.Reference)
	fmt.Fprintf(w, "  %d texts (%d skipped) and %d prefixes analyzed in %v; K=%d, sigma=%g, %s noise, aggregate %s\n",
		ref.Prompts, ref.Skipped, ref.Prefixes, took.Round(100*time.Millisecond), id.Samples, id.Sigma, id.Noise, id.Aggregation)
	if len(ref.Layers) > 0 {
		l := ref.Layers[len(ref.Layers)/2]
		var parts []string
		for b, d := range l.PromptByLength {
			parts = append(parts, fmt.Sprintf("%s: %d", calibrate.LengthLabel(b), d.N))
		}
		fmt.Fprintf(w, "  prompt-level values by length at hidden state %d: %s (buckets under %d fall back to the nearest)\n", l.Index, strings.Join(parts, ", "), calibrate.MinBucket)
	}
	if c := ref.Classes; c != nil && len(ref.Layers) > 0 {
		l := ref.Layers[len(ref.Layers)/2]
		var parts []string
		for k := range c.Labels {
			n := 0
			for _, d := range l.TokensByClass[k] {
				n += d.N
			}
			parts = append(parts, fmt.Sprintf("%s: %d", c.Label(k), n))
		}
		fmt.Fprintf(w, "  per-token values by token class (%s) at hidden state %d: %s\n", c.Scheme, l.Index, strings.Join(parts, ", "))
	}
	_, err := fmt.Fprintf(w, "saved to %s\n", path)
	return err
}

// calibFlags choose the calibration score, heatmap and layers apply.
type calibFlags struct {
	path      string
	reference string
	off       bool
}

func (c *calibFlags) register(cmd *cobra.Command, withReference bool) {
	fl := cmd.Flags()
	fl.StringVar(&c.path, "calibration", "", "apply this calibration file (refused, with an error, unless it was built for this model and these analysis flags); default: the matching one 'lmood calibrate' saved, if any")
	fl.BoolVar(&c.off, "no-calibration", false, "do not look for a calibration (no percentiles)")
	if withReference {
		fl.StringVar(&c.reference, "reference", "", "calibrate against the texts of FILE (.txt one per line, or .jsonl): a calibration built from it is used, built and saved first if needed")
	}
}

func (c *calibFlags) check() error {
	if c.off && (c.path != "" || c.reference != "") {
		return usageError{errors.New("--no-calibration turns calibration off: give no --calibration or --reference with it")}
	}
	if c.path != "" && c.reference != "" {
		return usageError{errors.New("give --calibration FILE or --reference FILE, not both")}
	}
	return nil
}

// calibration returns the calibration for sess: nil when turned off or,
// found automatically, when none matches (said with -v). An explicit
// --calibration that does not match is an error.
func (c *calibFlags) calibration(g *globals, sess *core.Session) (*core.Calibration, error) {
	if c == nil || c.off {
		return nil, nil
	}
	switch {
	case c.path != "":
		cal, err := sess.FindCalibration(c.path, "")
		if err != nil {
			return nil, fmt.Errorf("--calibration: %w", err)
		}
		g.logf("calibration %s applied", cal.Path)
		return cal, nil
	case c.reference != "":
		cal, err := sess.FindCalibration("", c.reference)
		if err == nil {
			g.logf("calibration %s (from %s) applied", cal.Path, c.reference)
			return cal, nil
		}
		if !errors.Is(err, calibrate.ErrNotFound) {
			return nil, fmt.Errorf("--reference: %w", err)
		}
		g.hooks().Notef("building a calibration from %s for these settings (saved; later runs reuse it)", c.reference)
		cal, err = sess.CalibrateSession(c.reference, g.threads)
		if err != nil {
			return nil, fmt.Errorf("--reference: %w", err)
		}
		g.logf("calibration saved to %s", cal.Path)
		return cal, nil
	default:
		cal, err := sess.FindCalibration("", "")
		if err != nil {
			g.logf("no calibration applied: %v", err)
			return nil, nil
		}
		g.logf("calibration %s applied", cal.Path)
		return cal, nil
	}
}

// calibratedTable writes score's table with the calibrated columns.
func calibratedTable(w io.Writer, recs []ScoreRecord) error {
	header := []string{"#", "prompt", "tokens", "ratio (mean ± std)", "OOD score", "percentile", "p-value"}
	hasSurprisal := slices.ContainsFunc(recs, func(r ScoreRecord) bool { return r.Surprisal != nil })
	if hasSurprisal {
		header = append(header, "surprisal")
	}
	var rows [][]string
	for i, r := range recs {
		row := []string{fmt.Sprint(i + 1), truncateRunes(r.Prompt, 40)}
		if r.Error != "" {
			row = append(row, "-", "-", "-", "-", "-")
			if hasSurprisal {
				row = append(row, "-")
			}
			row = append(row, r.Error)
		} else {
			row = append(row, fmt.Sprint(len(r.Tokens)), fmt.Sprintf("%.3f ± %.3f", r.Ratio, r.RatioStd), fmt.Sprintf("%.3f", r.OOD),
				percentCell(r.Percentile), pCell(r.PValue))
			if hasSurprisal {
				row = append(row, report.SurprisalCell(r.Surprisal, 3), "")
			}
		}
		rows = append(rows, row)
	}
	return report.TextTable(w, append(header, "error"), rows, report.TableOptions{})
}

// percentCell shows a percentile, "-" when absent.
func percentCell(p *float64) string {
	if p == nil {
		return "-"
	}
	return core.FormatPercentile(*p)
}

// pCell shows a p-value, "-" when absent.
func pCell(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprintf("%.3g", *p)
}

// calibratedFooter says what the percentiles compare with.
func calibratedFooter(w io.Writer, cal *core.Calibration) {
	if cal != nil {
		fmt.Fprintf(w, "calibrated against %s; percentile = share of reference prompts of about the same length that are less unusual\n", cal.Describe())
	}
}

// calibratedLine writes, under a prompt's heatmap or layers row, where
// the prompt falls in the calibration: its percentile at one hidden state,
// or over several the percentile at the middle one and the highest. The
// calibration's warnings go to stderr.
func calibratedLine(w io.Writer, g *globals, cal *core.Calibration, idx int, res *analyze.Result, hidden []int) error {
	if cal == nil || res == nil {
		return nil
	}
	pct, warns, err := cal.LayerPercentiles(res)
	if err != nil {
		return err
	}
	for _, wn := range warns {
		g.warnf("prompt %d: calibration: %s", idx, wn)
	}
	if len(hidden) == 1 {
		_, err = fmt.Fprintf(w, "  calibrated: percentile %s at hidden state %d\n", core.FormatPercentile(pct[hidden[0]]), hidden[0])
		return err
	}
	mid := hidden[len(hidden)/2]
	best, bestH := math.Inf(-1), -1
	for _, h := range hidden {
		if p := pct[h]; !math.IsNaN(p) && p > best {
			best, bestH = p, h
		}
	}
	if bestH < 0 {
		_, err = fmt.Fprintf(w, "  [%d] calibrated: no percentile (no prompt-level value)\n", idx)
		return err
	}
	_, err = fmt.Fprintf(w, "  [%d] calibrated: percentile %s at hidden state %d, highest %s at hidden state %d\n",
		idx, core.FormatPercentile(pct[mid]), mid, core.FormatPercentile(best), bestH)
	return err
}

// calibratedLayers adds the calibration's percentiles to a layers record
// (cal nil: unchanged); a calibration that cannot be applied is a warning
// in the record.
func calibratedLayers(rec LayersRecord, cal *core.Calibration, res *analyze.Result) LayersRecord {
	if cal != nil {
		if err := cal.ApplyLayers(&rec, res); err != nil {
			rec.Warnings = append(rec.Warnings, "calibration not applied: "+err.Error())
		}
	}
	return rec
}
