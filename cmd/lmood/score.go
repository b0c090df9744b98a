package main

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
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

// TokenRecord is one token in a JSON score record.
type TokenRecord struct {
	ID       int     `json:"id"`
	Text     string  `json:"text"`
	Ratio    float64 `json:"ratio"`
	RatioStd float64 `json:"ratio_std"`
	OOD      float64 `json:"ood"`
}

// ScoreRecord is one line of `lmood score --json` (schema in README).
type ScoreRecord struct {
	Prompt string `json:"prompt"`
	Setup
	Layer      int           `json:"layer"`
	FirstToken string        `json:"first_token"`
	Ratio      float64       `json:"ratio"`
	RatioStd   float64       `json:"ratio_std"`
	OOD        float64       `json:"ood"`
	InputAngle float64       `json:"input_angle_deg"`
	Drift      float64       `json:"drift_deg"`
	Tokens     []TokenRecord `json:"tokens"`
	Warnings   []string      `json:"warnings,omitempty"`
	Error      string        `json:"error,omitempty"`
}

func newScoreCmd(g *globals) *cobra.Command {
	var af analysisFlags
	var layer int
	var asJSON bool
	var pairs string
	cmd := &cobra.Command{
		Use:   "score [flags] [PROMPT...]",
		Short: "Score prompts: drift ratio and OOD score per prompt and per token",
		Long: `score nudges each prompt's token embeddings K times and reports, at one
hidden state (default: the middle of the model), the ratio of how far the
residual stream turned to how far the input turned, with its spread over the
K nudges, and an OOD score (higher = more unusual).

Prompts come from the arguments, from -f FILE (one per line), or from stdin.
A prompt that cannot be scored (empty, invalid UTF-8, too long) is reported
and the others are still scored; the exit code is then 1.

Position 0 is left out of the prompt-level ratio (its hidden state has an
abnormal norm in causal LMs); --include-first counts it. Prompts longer than
--max-tokens are refused, never silently truncated.`,
		Example: `  lmood score "Eggplants are purple." "Eggplants are fire-engine red."
  lmood score -f prompts/probes.txt --json > scores.jsonl
  lmood score --pairs prompts/probes.tsv        # the replication's side-by-side table
  echo "lsadfhl; wiffle jfdalkgy burh lgoi" | lmood score --layer 20 --samples 50`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if layer < -1 {
				return usageError{fmt.Errorf("--layer %d: want a hidden-state index >= 0 (or leave it out for the middle)", layer)}
			}
			// Check the cheap flags before a model is loaded or converted.
			if _, err := af.options(nil, false); err != nil {
				return err
			}
			if pairs != "" {
				if len(args) > 0 || af.file != "" {
					return usageError{fmt.Errorf("--pairs reads its prompts from the TSV: give no other prompts or -f")}
				}
				return runPairs(g, &af, layer, pairs, asJSON)
			}
			prompts, err := readPrompts(args, af.file)
			if err != nil {
				return err
			}
			return runScore(g, &af, layer, prompts, asJSON)
		},
	}
	af.register(cmd, g, true)
	cmd.Flags().IntVarP(&layer, "layer", "l", -1, "hidden-state index to measure (0 = embeddings, n = after the last block; default the middle)")
	cmd.Flags().Lookup("layer").DefValue = "middle"
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON Lines, one object per prompt (schema in README)")
	cmd.Flags().StringVar(&pairs, "pairs", "", "score a TSV of kind<TAB>plain<TAB>twin lines and print them side by side")
	return cmd
}

// scorer wraps an analyzer for one hidden state.
type scorer struct {
	g     *globals
	model *store.Model
	an    *analyze.Analyzer
	layer int
	opt   analyze.Options
}

func newScorer(g *globals, af *analysisFlags, layer int) (*scorer, error) {
	m, err := openModel(g)
	if err != nil {
		return nil, err
	}
	return newScorerFor(g, af, layer, m)
}

// newScorerFor scores with an opened model; the scorer closes it.
func newScorerFor(g *globals, af *analysisFlags, layer int, m *store.Model) (*scorer, error) {
	h, err := resolveLayer(layer, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	opt, err := af.options([]int{h}, false)
	if err != nil {
		m.Close()
		return nil, err
	}
	start := time.Now()
	an, err := analyze.New(m, opt, runtime.SessionOptions{Threads: g.threads})
	if err != nil {
		m.Close()
		return nil, err
	}
	g.logf("model %s: hidden state %d of %d, session ready in %v (onnxruntime %s)", m.Manifest.Name, h, m.Config().Layers, time.Since(start).Round(time.Millisecond), runtime.Version())
	return &scorer{g: g, model: m, an: an, layer: h, opt: an.Options()}, nil
}

func (s *scorer) Close() {
	s.an.Close()
	s.model.Close()
}

// record scores one prompt into a JSON record (Error set on failure).
func (s *scorer) record(prompt string) ScoreRecord {
	rec := ScoreRecord{
		Prompt: prompt, Setup: newSetup(s.model.Manifest.Name, s.model.Config().Layers, s.opt),
		Layer: s.layer, Tokens: []TokenRecord{},
	}
	start := time.Now()
	res, err := s.an.Analyze(prompt)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	l, ok := res.Layer(s.layer)
	if !ok {
		rec.Error = fmt.Sprintf("internal error: hidden state %d was not measured", s.layer)
		return rec
	}
	if !s.opt.Isolate && !l.Ratio.Defined {
		rec.Error = fmt.Sprintf("no valid nudge: all %d gave a zero or non-finite angle (zero embeddings or overflow); no ratio can be reported", s.opt.Samples)
		return rec
	}
	rec.FirstToken = res.FirstToken
	rec.Ratio, rec.RatioStd = l.Ratio.Mean, l.Ratio.Std
	rec.InputAngle, rec.Drift = res.InputAngle.Mean, l.Drift.Mean
	if s.opt.Isolate {
		// No prompt-level nudge exists: summarise the per-token values.
		skip := !s.opt.IncludeFirst
		rec.Ratio, rec.RatioStd = meanDefined(l.TokenRatio, skip)
		if math.IsNaN(rec.Ratio) {
			rec.Error = "no token had a valid nudge: no ratio can be reported"
			return rec
		}
		rec.InputAngle, _ = meanDefined(res.InputTokens, skip)
		rec.Drift, _ = meanDefined(l.TokenDrift, skip)
		rec.Warnings = append(rec.Warnings, "isolation mode: ratio, input_angle_deg and drift_deg are means over tokens (ratio_std is across tokens)")
	}
	rec.OOD = drift.OODScore(rec.Ratio, s.opt.Direction)
	for i, t := range res.Tokens {
		tr := l.TokenRatio[i]
		rec.Tokens = append(rec.Tokens, TokenRecord{ID: t.ID, Text: t.Text, Ratio: tr.Mean, RatioStd: tr.Std, OOD: drift.OODScore(tr.Mean, s.opt.Direction)})
	}
	rec.Warnings = append(rec.Warnings, res.Warnings...)
	s.g.logf("%d tokens scored in %v", len(res.Tokens), time.Since(start).Round(time.Millisecond))
	return rec
}

func runScore(g *globals, af *analysisFlags, layer int, prompts []string, asJSON bool) error {
	s, err := newScorer(g, af, layer)
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(stdout)
	p := g.progress()
	if len(prompts) > 1 {
		p.Start("scoring", int64(len(prompts)))
	}
	var rows []report.PromptRow
	failed := 0
	for i, prompt := range prompts {
		rec := s.record(prompt)
		p.Add(1)
		if rec.Error != "" {
			failed++
			if !asJSON {
				promptFailed(i+1, prompt, errors.New(rec.Error))
			}
		}
		for _, w := range rec.Warnings {
			g.warnf("prompt %d: %s", i+1, w)
		}
		if asJSON {
			if err := report.WriteJSONL(out, rec); err != nil {
				return err
			}
			continue
		}
		rows = append(rows, report.PromptRow{Prompt: prompt, Tokens: len(rec.Tokens), Ratio: rec.Ratio, RatioStd: rec.RatioStd, OOD: rec.OOD, Err: rec.Error})
	}
	p.Finish()
	if !asJSON {
		if err := report.Table(out, rows, report.TableOptions{}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s, hidden state %d of %d, K=%d, sigma=%g, %s noise, seed %d; position 0 %s; OOD = %s\n",
			s.model.Manifest.Name, s.layer, s.model.Config().Layers, s.opt.Samples, s.opt.Sigma, s.opt.Noise, s.opt.Seed,
			firstTokenWord(s.opt.IncludeFirst), oodFormula(s.opt.Direction))
		if s.opt.Isolate {
			fmt.Fprintln(out, "isolation mode: one token nudged at a time; prompt ratio = mean of per-token ratios")
		}
	}
	return finish(out, failed, len(prompts))
}

func oodFormula(d drift.Direction) string {
	if d == drift.Expand {
		return "+ln(ratio)"
	}
	return "-ln(ratio)"
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// runPairs scores plain/twin pairs and prints them side by side.
func runPairs(g *globals, af *analysisFlags, layer int, path string, asJSON bool) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pairs file: %w", err)
	}
	type pair struct{ kind, plain, twin string }
	var ps []pair
	err = eval.ScanLines(fh, true, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 3 || strings.TrimSpace(f[1]) == "" || strings.TrimSpace(f[2]) == "" {
			return usageError{fmt.Errorf("%s:%d: want kind<TAB>plain<TAB>twin with non-empty sentences, found %d fields", path, n, len(f))}
		}
		ps = append(ps, pair{f[0], f[1], f[2]})
		return nil
	})
	fh.Close()
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return usageError{errors.New("no pairs in " + path)}
	}
	s, err := newScorer(g, af, layer)
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(stdout)
	var rows [][]string
	failed := 0
	seen := map[string]ScoreRecord{} // a sentence used twice is scored once
	score := func(i int, text string) ScoreRecord {
		r, ok := seen[text]
		if !ok {
			r = s.record(text)
			seen[text] = r
			if r.Error != "" && !asJSON {
				promptFailed(i, text, errors.New(r.Error))
			}
		}
		return r
	}
	bar := g.progress()
	bar.Start("scoring pairs", int64(len(ps)))
	for i, p := range ps {
		a, b := score(2*i+1, p.plain), score(2*i+2, p.twin)
		bar.Add(1)
		if asJSON {
			for _, r := range []ScoreRecord{a, b} {
				if err := report.WriteJSONL(out, struct {
					Kind string `json:"kind"`
					ScoreRecord
				}{p.kind, r}); err != nil {
					return err
				}
			}
		}
		cell := func(r ScoreRecord) string {
			if r.Error != "" {
				failed++
				return "error: " + r.Error
			}
			return fmt.Sprintf("%.3f ± %.3f", r.Ratio, r.RatioStd)
		}
		ca, cb := cell(a), cell(b)
		delta := ""
		if a.Error == "" && b.Error == "" {
			delta = fmt.Sprintf("%+.3f", b.Ratio-a.Ratio)
		}
		rows = append(rows, []string{p.kind, p.plain, ca, p.twin, cb, delta})
	}
	bar.Finish()
	if !asJSON {
		if err := report.TextTable(out, []string{"kind", "plain", "ratio", "odd twin", "ratio", "twin − plain"}, rows, report.TableOptions{}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s, hidden state %d of %d, K=%d, sigma=%g, %s noise, seed %d; position 0 %s\n",
			s.model.Manifest.Name, s.layer, s.model.Config().Layers, s.opt.Samples, s.opt.Sigma, s.opt.Noise, s.opt.Seed,
			firstTokenWord(s.opt.IncludeFirst))
	}
	return finish(out, failed, 2*len(ps))
}
