package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	core "github.com/lmood/lmood/internal/lmood"
)

// batchFlags are score's corpus flags: a resumable output, a shard, and
// the input format.
type batchFlags struct {
	output      string
	shard       string
	inputFormat string
	syncEvery   int
}

// scorePrompts reads the prompts of a score run with their ids: a JSON
// Lines file (by --input-format or its extension) keeps its ids; text
// prompts, arguments and stdin lines get core.TextID.
func scorePrompts(args []string, file string, bf batchFlags) ([]core.Prompt, error) {
	format, err := core.ParseInputFormat(bf.inputFormat, file)
	if err != nil {
		return nil, cliErr(err)
	}
	if format == core.FormatJSONL && len(args) == 0 {
		var r io.Reader = os.Stdin
		if file != "" && file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return nil, fmt.Errorf("prompts file: %w", err)
			}
			defer fh.Close()
			r = fh
		}
		ps, _, err := core.ReadCorpus(r, format)
		if err != nil {
			return nil, cliErr(fmt.Errorf("prompts file %s: %w", file, err))
		}
		return ps, nil
	}
	texts, err := readPrompts(args, file)
	if err != nil {
		return nil, err
	}
	ps := make([]core.Prompt, len(texts))
	for i, t := range texts {
		ps[i] = core.Prompt{ID: core.TextID(t), Text: t}
	}
	return ps, nil
}

// filterShard keeps the prompts of shard.
func filterShard(ps []core.Prompt, shard core.Shard) []core.Prompt {
	var out []core.Prompt
	for _, p := range ps {
		if shard.Has(p.ID) {
			out = append(out, p)
		}
	}
	return out
}

// runBatch scores prompts into the resumable output bf.output: prompts it
// holds a record of are skipped, and Ctrl-C or SIGTERM stop between
// prompts with everything written kept.
func runBatch(g *globals, sf scoreFlags, bf batchFlags, prompts []core.Prompt, shard core.Shard) error {
	s, err := newScorer(g, sf)
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := core.OpenOutput(bf.output, s.sess.SetupID(s.layer, s.calib))
	if err != nil {
		return cliErr(err)
	}
	out.SyncEvery = bf.syncEvery
	if out.Truncated > 0 {
		g.warnf("%s: removed a partial last line (%d bytes) left by an interrupted run", bf.output, out.Truncated)
	}
	ctx, cancel := signalContext()
	defer cancel()
	rep := newBatchReporter(g)
	st, err := core.RunBatch(ctx, func(p core.Prompt) core.ScoreRecord {
		rec := s.sess.ScorePrompt(p, s.layer, s.calib)
		if rec.Error != "" {
			fmt.Fprintf(os.Stderr, "lmood: prompt %s \"%s\": %s\n", p.ID, truncateRunes(p.Text, 60), rec.Error)
		}
		return rec
	}, prompts, shard, out, rep.update)
	rep.finish()
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if !g.quiet {
		shardNote := ""
		if shard.N > 1 {
			shardNote = fmt.Sprintf(" (shard %s: %d of %d)", shard, st.Shard, st.Input)
		}
		fmt.Fprintf(os.Stderr, "lmood: %s: %d prompts%s, %d had records, %d scored in %v (%.2f prompts/s), %d failed\n",
			bf.output, st.Input, shardNote, st.Skipped, st.Scored, st.Elapsed.Round(time.Second),
			core.BatchProgress{Done: st.Scored, Elapsed: st.Elapsed}.Rate(), st.Failed)
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("interrupted after %d records of this run; run the same command again to resume", st.Scored)
	}
	if err != nil {
		return cliErr(err)
	}
	if st.Failed > 0 {
		return &partialError{failed: st.Failed, total: st.Scored}
	}
	return nil
}

// batchReporter shows a batch run's progress on stderr: a progress bar on
// a terminal, else a line with rate and ETA every interval.
type batchReporter struct {
	g        *globals
	bar      *bar
	tty      bool
	started  bool
	last     time.Time
	interval time.Duration
}

func newBatchReporter(g *globals) *batchReporter {
	return &batchReporter{g: g, bar: g.progress(), tty: isTerminal(os.Stderr), interval: 10 * time.Second}
}

func (r *batchReporter) update(p core.BatchProgress) {
	if r.g.quiet {
		return
	}
	if r.tty {
		if !r.started {
			r.bar.Start("scoring", int64(p.Total))
			r.started = true
		}
		r.bar.Add(1)
		return
	}
	now := time.Now()
	if r.last.IsZero() {
		r.last = now
	}
	if now.Sub(r.last) >= r.interval || p.Done == p.Total {
		r.last = now
		fmt.Fprintln(os.Stderr, progressLine(p))
	}
}

func (r *batchReporter) finish() {
	if r.started {
		r.bar.Finish()
	}
}

// progressLine describes a batch run's progress for a log.
func progressLine(p core.BatchProgress) string {
	eta := "unknown"
	if d := p.ETA(); d >= 0 {
		eta = d.Round(time.Second).String()
	}
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Done) / float64(p.Total)
	}
	return fmt.Sprintf("lmood: scored %d/%d (%.1f%%), %.2f prompts/s, ETA %s", p.Done, p.Total, pct, p.Rate(), eta)
}
