package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
)

// Defaults shared by every analysis command (the core's).
const (
	defaultSamples   = core.DefaultSamples
	defaultSigma     = core.DefaultSigma
	defaultSeed      = core.DefaultSeed
	defaultDirection = core.DefaultDirection
)

// analysisFlags are the flags score, heatmap, layers and eval share; this is
// the one place that defines them. They map one to one onto core.Options.
type analysisFlags struct {
	samples      int
	sigma        float64
	seed         uint64
	noise        string
	direction    string
	isolate      bool
	includeFirst bool
	maxTokens    int
	aggregate    string
	site         string
	file         string
	// precisionTarget, matmulAccuracy and batchMemory are
	// --precision-target, --matmul-accuracy and --batch-memory.
	precisionTarget float64
	matmulAccuracy  int
	batchMemory     int
	// threads is the --threads of the command (globals), checked with the
	// other flags.
	threads *int
}

func (f *analysisFlags) register(cmd *cobra.Command, g *globals, withFile bool) {
	fl := cmd.Flags()
	fl.StringVarP(&g.model, "model", "m", store.DefaultModel, "model: a name listed by 'lmood models', a path to a .gguf file, or ollama:NAME[:TAG]")
	fl.IntVar(&g.threads, "threads", 0, fmt.Sprintf("onnxruntime intra-op threads: 0 = one per core, at most %d here (4 per core, at most %d)", core.MaxThreads(), core.MaxThreadsCap))
	f.threads = &g.threads
	fl.IntVarP(&f.samples, "samples", "k", defaultSamples, "nudges per prompt (K); the reference used 50")
	fl.Float64Var(&f.sigma, "sigma", defaultSigma, fmt.Sprintf("relative nudge size in [%g, %g): noise = sigma * |e| * N(0, I), then rescaled to |e| (smaller nudges vanish in float32 rounding)", core.MinSigma, float64(core.MaxSigma)))
	fl.Uint64Var(&f.seed, "seed", defaultSeed, "noise seed: same seed and inputs give identical results on this machine")
	fl.StringVar(&f.noise, "noise", core.DefaultNoise, "noise scale: per-token (each token's noise scaled by its own embedding norm) or whole (by the whole prompt's norm, as the reference)")
	fl.StringVar(&f.direction, "direction", defaultDirection, "OOD score orientation: pinch (lower ratio = more unusual, score -ln ratio) or expand (+ln ratio)")
	fl.BoolVar(&f.isolate, "isolate", false, "nudge one token at a time (K passes per token), so a token's drift excludes noise from tokens before it")
	fl.BoolVar(&f.includeFirst, "include-first", false, "count position 0 (the attention-sink token) in prompt-level ratios; excluded by default")
	fl.IntVar(&f.maxTokens, "max-tokens", core.DefaultMaxTokens, "refuse prompts longer than this many tokens (0 = the model's context length; capped at it)")
	fl.StringVar(&f.aggregate, "aggregate", core.DefaultAggregate, "prompt-level aggregation of drift: "+strings.Join(drift.AggregationNames(), ", ")+
		" (flat = angle of the flattened tokens; the others combine per-token log-ratios per nudge, see README)")
	fl.StringVar(&f.site, "site", core.DefaultSite, "where drift is measured (see --help): resid, norm, attn, mlp or logits")
	fl.Float64Var(&f.precisionTarget, "precision-target", core.DefaultPrecisionTarget,
		"adaptive K: stop drawing nudges once the prompt ratio's standard error is at most this fraction of it (0.02 = 2%), or at --samples; 0 = always --samples nudges")
	fl.IntVar(&f.matmulAccuracy, "matmul-accuracy", core.DefaultMatmulAccuracy,
		"onnxruntime MatMulNBits accuracy level for a --precision q model: 0 = float32 compute, 4 = int8 activations (a float32 model ignores it)")
	fl.IntVar(&f.batchMemory, "batch-memory", 0, fmt.Sprintf("MiB one forward batch may take (0 = %d); results do not depend on it, a smaller value needs less memory", analyze.DefaultBatchMiB))
	if withFile {
		fl.StringVarP(&f.file, "file", "f", "", "read prompts from FILE, one per line ('-' = stdin); blank lines and lines starting with '#' are skipped")
	}
}

// options returns the request options the flags set (surprisal: also
// compute the logit baselines).
func (f *analysisFlags) options(surprisal bool) core.Options {
	return core.Options{
		Samples: f.samples, Sigma: f.sigma, Seed: f.seed, Noise: f.noise, Direction: f.direction,
		Isolate: f.isolate, IncludeFirst: f.includeFirst, MaxTokens: f.maxTokens,
		Aggregate: f.aggregate, Surprisal: surprisal, Site: f.site,
		PrecisionTarget: f.precisionTarget, MatmulAccuracy: f.matmulAccuracy, BatchMemory: f.batchMemory,
	}
}

// check validates the flags before a model is loaded or converted.
func (f *analysisFlags) check() error {
	if f.threads != nil {
		if err := core.CheckThreads(*f.threads); err != nil {
			return cliErr(err)
		}
	}
	return cliErr(f.options(false).Validate())
}

// siteOf returns the --site the flags name (checked by check).
func (f *analysisFlags) siteOf() analyze.Site {
	s, _ := core.ParseSite(f.site)
	return s
}

// siteHelp is the help paragraph that teaches the site vocabulary.
func siteHelp() string {
	return "Measurement sites (--site), where drift is read; i counts blocks from 1:\n" +
		indent(core.SiteHelp(), "  ")
}

// indent prefixes every line of s.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// layerFlag is --layer: a hidden-state index, or "logits" (the logits
// site, which has no index), or "middle" (-1, the default).
type layerFlag struct {
	n      *int
	logits bool
}

func (l *layerFlag) String() string {
	if l.logits {
		return "logits"
	}
	if *l.n < 0 {
		return "middle"
	}
	return strconv.Itoa(*l.n)
}

func (l *layerFlag) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "logits":
		l.logits, *l.n = true, -1
		return nil
	case "middle":
		l.logits, *l.n = false, -1
		return nil
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want an index, middle or logits")
	}
	l.logits, *l.n = false, v
	return nil
}

func (l *layerFlag) Type() string { return "index" }

// registerLayer defines --layer/-l on cmd into *n, accepting "logits" as
// a shorthand for --site logits.
func registerLayer(cmd *cobra.Command, n *int, what string) *layerFlag {
	lf := &layerFlag{n: n}
	*n = -1
	cmd.Flags().VarP(lf, "layer", "l", what+" at --site (0 = embeddings, n = after the last block; default the middle); 'logits' = --site logits")
	cmd.Flags().Lookup("layer").DefValue = "middle"
	return lf
}

// applyLogits makes --layer logits mean --site logits; it refuses
// --layer logits with another --site.
func (l *layerFlag) applyLogits(cmd *cobra.Command, af *analysisFlags) error {
	if !l.logits {
		return nil
	}
	if cmd.Flags().Changed("site") && !strings.EqualFold(strings.TrimSpace(af.site), string(analyze.SiteLogits)) {
		return usageError{fmt.Errorf("--layer logits is --site logits: it cannot be combined with --site %s", af.site)}
	}
	af.site = string(analyze.SiteLogits)
	return nil
}

// readPrompts gathers prompts from arguments, -f FILE, or stdin.
func readPrompts(args []string, file string) ([]string, error) {
	if len(args) > 0 && file != "" {
		return nil, usageError{fmt.Errorf("give prompts as arguments or with -f, not both")}
	}
	if len(args) > 0 {
		return args, nil
	}
	var r io.Reader
	switch {
	case file == "-" || (file == "" && !isTerminal(os.Stdin)):
		r = os.Stdin
	case file != "":
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("prompts file: %w", err)
		}
		defer fh.Close()
		r = fh
	default:
		return nil, usageError{fmt.Errorf("no prompts: give them as arguments, with -f FILE, or on stdin")}
	}
	prompts, err := eval.ParseTexts(r, false)
	if errors.Is(err, eval.ErrNoPrompts) {
		return nil, usageError{fmt.Errorf("no prompts found in the input")}
	}
	if err != nil {
		return nil, fmt.Errorf("read prompts: %w", err)
	}
	return prompts, nil
}

// resolveLayer turns --layer (-1 = middle) at site into the indices to
// analyze (none for logits) and the index measured.
func resolveLayer(site analyze.Site, layer int, m *store.Model) (hidden []int, at int, err error) {
	c := m.Config()
	hidden, at, err = core.ResolveSiteLayer(site, layer, m.Manifest.Name, c.Layers, c.Middle())
	return hidden, at, cliErr(err)
}

// pointDesc names the measurement point in footers and legends: "hidden
// state 15 of 30" for the residual stream, "site mlp.15 of 30" or "site
// logits (after all 30 blocks)" otherwise.
func pointDesc(site analyze.Site, at, n int) string {
	switch site {
	case "", analyze.SiteResid:
		return fmt.Sprintf("hidden state %d of %d", at, n)
	case analyze.SiteLogits:
		return fmt.Sprintf("site logits (after all %d blocks)", n)
	}
	return fmt.Sprintf("site %s.%d of %d", site, at, n)
}

// openSession opens the core's analyzer over hidden states of m with the
// analysis flags.
func openSession(g *globals, af *analysisFlags, m *store.Model, hidden []int, surprisal bool) (*core.Session, error) {
	s, err := core.NewSession(m, af.options(surprisal), hidden, g.threads, g.hooks())
	return s, cliErr(err)
}
