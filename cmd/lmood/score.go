package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

// ScoreRecord is one line of `lmood score --json` (the core's record).
type ScoreRecord = core.ScoreRecord

func newScoreCmd(g *globals) *cobra.Command {
	var af analysisFlags
	var layer int
	var asJSON bool
	var pairs string
	var surprisal bool
	var lflag *layerFlag
	var cf calibFlags
	var bf batchFlags
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
--max-tokens are refused, never silently truncated.

` + siteHelp() + `
--layer picks the index at the site; --layer logits is --site logits.

Corpora: with -f FILE --json -o OUT, records are appended to OUT and a run
that was stopped (Ctrl-C, kill -9, a crash) resumes where it left off when
run again: prompts OUT already holds are skipped. Every record carries an
id (a JSON Lines input's "id", else a hash of the prompt) and a setup_id
(the options, layer and model); OUT never mixes setups. --shard I/N lets N
processes split one input. See README, "Scoring a corpus".`,
		Example: `  lmood score "Eggplants are purple." "Eggplants are fire-engine red."
  lmood score -f prompts/probes.txt --json > scores.jsonl
  lmood score --pairs prompts/probes.tsv        # the replication's side-by-side table
  echo "lsadfhl; wiffle jfdalkgy burh lgoi" | lmood score --layer 20 --samples 50
  lmood score --site logits --noise whole --include-first -k 50 --pairs prompts/probes.tsv   # the LM replication's setup
  lmood score -f corpus.jsonl --json -o scores.jsonl     # resumable; rerun to continue
  lmood score -f corpus.txt --json -o part1.jsonl --shard 1/4`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if layer < -1 {
				return cliErr(core.CheckLayer(layer))
			}
			if err := lflag.applyLogits(cmd, &af); err != nil {
				return err
			}
			// Check the cheap flags before a model is loaded or converted.
			if err := af.check(); err != nil {
				return err
			}
			if err := cf.check(); err != nil {
				return err
			}
			sf := scoreFlags{af: &af, layer: layer, asJSON: asJSON, surprisal: surprisal, cf: &cf}
			if pairs != "" {
				if len(args) > 0 || af.file != "" {
					return usageError{fmt.Errorf("--pairs reads its prompts from the TSV: give no other prompts or -f")}
				}
				return runPairs(g, sf, pairs, cmd.OutOrStdout())
			}
			shard, err := core.ParseShard(bf.shard)
			if err != nil {
				return cliErr(err)
			}
			if bf.output != "" && !asJSON {
				return usageError{fmt.Errorf("-o writes JSON Lines records: add --json")}
			}
			if bf.output != "" && len(args) > 0 {
				return usageError{fmt.Errorf("-o scores a corpus: give it with -f FILE (or on stdin), not as arguments")}
			}
			prompts, err := scorePrompts(args, af.file, bf)
			if err != nil {
				return err
			}
			if bf.output != "" {
				return runBatch(g, sf, bf, prompts, shard)
			}
			if prompts = filterShard(prompts, shard); len(prompts) == 0 {
				return usageError{fmt.Errorf("shard %s holds none of the prompts", shard)}
			}
			return runScore(g, sf, prompts, cmd.OutOrStdout())
		},
	}
	af.register(cmd, g, true)
	lflag = registerLayer(cmd, &layer, "index to measure")
	cmd.Flags().BoolVar(&asJSON, "json", false, "write JSON Lines, one object per prompt (schema in README)")
	cmd.Flags().BoolVar(&surprisal, "surprisal", false, "also report the model's own surprisal: the prompt's mean -ln p(token | prefix) in nats in the table; per token, next-token entropy and max-softmax in --json (one more forward pass per prompt)")
	cmd.Flags().StringVar(&pairs, "pairs", "", "score a TSV of kind<TAB>plain<TAB>twin lines and print them side by side")
	cf.register(cmd, true)
	cmd.Flags().StringVarP(&bf.output, "output", "o", "", "append --json records to FILE and resume: prompts it holds records of are skipped")
	cmd.Flags().StringVar(&bf.shard, "shard", "", "score only shard I/N of the input (0 <= I < N; split by a hash of each prompt's id)")
	cmd.Flags().StringVar(&bf.inputFormat, "input-format", "auto", "input of -f: text (one prompt per line), jsonl ({\"id\": ..., \"text\": ...} per line) or auto (jsonl for .jsonl/.ndjson/.json files)")
	cmd.Flags().IntVar(&bf.syncEvery, "sync-every", core.DefaultSyncEvery, "with -o: fsync the output every N records (and on exit)")
	return cmd
}

// scoreFlags are the score command's settings.
type scoreFlags struct {
	af        *analysisFlags
	layer     int // -1 = the middle
	asJSON    bool
	surprisal bool
	cf        *calibFlags // nil: no calibration
}

// scorer scores prompts at one hidden state of an open model.
type scorer struct {
	model *store.Model
	sess  *core.Session
	layer int
	opt   analyze.Options
	g     *globals
	calib *core.Calibration // nil: uncalibrated
}

func newScorer(g *globals, sf scoreFlags) (*scorer, error) {
	m, err := openModel(g)
	if err != nil {
		return nil, err
	}
	s, err := newScorerFor(g, sf, m)
	if err != nil {
		m.Close()
		return nil, err
	}
	return s, nil
}

// newScorerFor scores with an opened model; the scorer closes it.
func newScorerFor(g *globals, sf scoreFlags, m *store.Model) (*scorer, error) {
	hidden, at, err := resolveLayer(sf.af.siteOf(), sf.layer, m)
	if err != nil {
		return nil, err
	}
	sess, err := openSession(g, sf.af, m, hidden, sf.surprisal)
	if err != nil {
		return nil, err
	}
	cal, err := sf.cf.calibration(g, sess)
	if err != nil {
		sess.Close()
		return nil, err
	}
	return &scorer{model: m, sess: sess, layer: at, opt: sess.Options(), g: g, calib: cal}, nil
}

// where names the measurement point for footers.
func (s *scorer) where() string {
	return pointDesc(s.opt.Site, s.layer, s.model.Config().Layers)
}

func (s *scorer) Close() {
	s.sess.Close()
	s.model.Close()
}

// record scores one prompt into a JSON record (Error set on failure).
func (s *scorer) record(prompt string) ScoreRecord {
	start := time.Now()
	rec := s.sess.ScoreCalibrated(prompt, s.layer, s.calib)
	if rec.Error == "" {
		s.g.logf("%d tokens scored in %v", len(rec.Tokens), time.Since(start).Round(time.Millisecond))
	}
	return rec
}

func runScore(g *globals, sf scoreFlags, prompts []core.Prompt, w io.Writer) error {
	asJSON := sf.asJSON
	s, err := newScorer(g, sf)
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(w)
	p := g.progress()
	if len(prompts) > 1 {
		p.Start("scoring", int64(len(prompts)))
	}
	var rows []report.PromptRow
	var recs []ScoreRecord
	failed := 0
	for i, pr := range prompts {
		prompt := pr.Text
		rec := s.record(prompt)
		rec.ID = pr.ID
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
		recs = append(recs, rec)
		row := report.PromptRow{Prompt: prompt, Tokens: len(rec.Tokens), Ratio: rec.Ratio, RatioStd: rec.RatioStd, OOD: rec.OOD, Surprisal: rec.Surprisal, Err: rec.Error}
		if s.opt.PrecisionTarget > 0 {
			row.Samples = rec.SamplesUsed
		}
		rows = append(rows, row)
	}
	p.Finish()
	if !asJSON {
		table := func() error { return report.Table(out, rows, report.TableOptions{}) }
		if s.calib != nil {
			table = func() error { return calibratedTable(out, recs) }
		}
		if err := table(); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s, %s, %s, sigma=%g, %s noise, seed %d; position 0 %s%s; OOD = %s\n",
			report.Sanitize(s.model.Manifest.Name), s.where(), samplesNote(s.opt, samplesUsed(recs)), s.opt.Sigma, s.opt.Noise, s.opt.Seed,
			firstTokenWord(s.opt.IncludeFirst), aggregateNote(s.sess.Rule().Aggregate), oodFormula(s.opt.Direction))
		if s.opt.Isolate {
			fmt.Fprintf(out, "isolation mode: one token nudged at a time; prompt ratio = %s of per-token ratios\n", core.IsolationWord(s.sess.Rule().Aggregate))
		}
		if sf.surprisal {
			fmt.Fprintln(out, "surprisal = the model's mean -ln p(token | prefix) over tokens 2..n, nats (no perturbation)")
		}
		calibratedFooter(out, s.calib)
	}
	return finish(out, failed, len(prompts))
}

// samplesNote describes K in footers: "K=32", or with adaptive K
// "K adaptive ≤ 32 (precision target 0.02): mean 12.3 used, 8–32", from
// the nudges each analyzed prompt used.
func samplesNote(opt analyze.Options, used []int) string {
	if opt.PrecisionTarget <= 0 {
		return fmt.Sprintf("K=%d", opt.Samples)
	}
	note := fmt.Sprintf("K adaptive ≤ %d (precision target %g)", opt.Samples, opt.PrecisionTarget)
	if len(used) > 0 {
		sum := 0
		for _, n := range used {
			sum += n
		}
		note += fmt.Sprintf(": mean %.1f used, %d–%d", float64(sum)/float64(len(used)), slices.Min(used), slices.Max(used))
	}
	return note
}

// samplesUsed lists the nudges used by the records that did not fail.
func samplesUsed(recs []ScoreRecord) []int {
	var used []int
	for _, r := range recs {
		if r.Error == "" {
			used = append(used, r.SamplesUsed)
		}
	}
	return used
}

// aggregateNote names the prompt-level aggregation in footers
// ("; aggregate trimmed").
func aggregateNote(a drift.Aggregation) string {
	return "; aggregate " + a.String()
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
func runPairs(g *globals, sf scoreFlags, path string, w io.Writer) error {
	asJSON := sf.asJSON
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("pairs file: %w", err)
	}
	type pair struct{ kind, plain, twin string }
	var ps []pair
	err = eval.ScanLines(fh, true, func(n int, line string) error {
		f := strings.Split(line, "\t")
		if len(f) != 3 {
			return usageError{fmt.Errorf("%s:%d: want kind<TAB>plain<TAB>twin, found %d tab-separated fields", path, n, len(f))}
		}
		for i, name := range []string{"", "plain sentence (field 2)", "odd twin (field 3)"} {
			if i > 0 && strings.TrimSpace(f[i]) == "" {
				return usageError{fmt.Errorf("%s:%d: the %s is blank: want kind<TAB>plain<TAB>twin with non-empty sentences", path, n, name)}
			}
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
	s, err := newScorer(g, sf)
	if err != nil {
		return err
	}
	defer s.Close()
	out := bufio.NewWriter(w)
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
		if s.calib != nil {
			rows = append(rows, []string{p.kind, p.plain, ca, percentCell(a.Percentile), p.twin, cb, percentCell(b.Percentile), delta})
		} else {
			rows = append(rows, []string{p.kind, p.plain, ca, p.twin, cb, delta})
		}
	}
	bar.Finish()
	if !asJSON {
		header := []string{"kind", "plain", "ratio", "odd twin", "ratio", "twin − plain"}
		if s.calib != nil {
			header = []string{"kind", "plain", "ratio", "pct", "odd twin", "ratio", "pct", "twin − plain"}
		}
		if err := report.TextTable(out, header, rows, report.TableOptions{}); err != nil {
			return err
		}
		fmt.Fprintf(out, "%s, %s, %s, sigma=%g, %s noise, seed %d; position 0 %s%s\n",
			report.Sanitize(s.model.Manifest.Name), s.where(), samplesNote(s.opt, samplesUsed(slices.Collect(maps.Values(seen)))), s.opt.Sigma, s.opt.Noise, s.opt.Seed,
			firstTokenWord(s.opt.IncludeFirst), aggregateNote(s.sess.Rule().Aggregate))
		calibratedFooter(out, s.calib)
	}
	return finish(out, failed, 2*len(ps))
}
