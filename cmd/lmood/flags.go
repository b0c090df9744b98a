package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
	file         string
}

func (f *analysisFlags) register(cmd *cobra.Command, g *globals, withFile bool) {
	fl := cmd.Flags()
	fl.StringVarP(&g.model, "model", "m", store.DefaultModel, "model: a name listed by 'lmood models', a path to a .gguf file, or ollama:NAME[:TAG]")
	fl.IntVar(&g.threads, "threads", 0, "onnxruntime intra-op threads (0 = one per core)")
	fl.IntVarP(&f.samples, "samples", "k", defaultSamples, "nudges per prompt (K); the reference used 50")
	fl.Float64Var(&f.sigma, "sigma", defaultSigma, "relative nudge size: noise = sigma * |e| * N(0, I), then rescaled to |e|")
	fl.Uint64Var(&f.seed, "seed", defaultSeed, "noise seed: same seed and inputs give identical results on this machine")
	fl.StringVar(&f.noise, "noise", core.DefaultNoise, "noise scale: per-token (each token's noise scaled by its own embedding norm) or whole (by the whole prompt's norm, as the reference)")
	fl.StringVar(&f.direction, "direction", defaultDirection, "OOD score orientation: pinch (lower ratio = more unusual, score -ln ratio) or expand (+ln ratio)")
	fl.BoolVar(&f.isolate, "isolate", false, "nudge one token at a time (K passes per token), so a token's drift excludes noise from tokens before it")
	fl.BoolVar(&f.includeFirst, "include-first", false, "count position 0 (the attention-sink token) in prompt-level ratios; excluded by default")
	fl.IntVar(&f.maxTokens, "max-tokens", core.DefaultMaxTokens, "refuse prompts longer than this many tokens (0 = the model's context length; capped at it)")
	fl.StringVar(&f.aggregate, "aggregate", core.DefaultAggregate, "prompt-level aggregation of drift: "+strings.Join(drift.AggregationNames(), ", ")+
		" (flat = angle of the flattened tokens; the others combine per-token log-ratios per nudge, see README)")
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
		Aggregate: f.aggregate, Surprisal: surprisal,
	}
}

// check validates the flags before a model is loaded or converted.
func (f *analysisFlags) check() error {
	return cliErr(f.options(false).Validate())
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

// resolveLayer turns --layer (-1 = middle) into a hidden-state index of m.
func resolveLayer(layer int, m *store.Model) (int, error) {
	c := m.Config()
	h, err := core.ResolveLayer(layer, m.Manifest.Name, c.Layers, c.Middle())
	return h, cliErr(err)
}

// openSession opens the core's analyzer over hidden states of m with the
// analysis flags.
func openSession(g *globals, af *analysisFlags, m *store.Model, hidden []int, surprisal bool) (*core.Session, error) {
	s, err := core.NewSession(m, af.options(surprisal), hidden, g.threads, g.hooks())
	return s, cliErr(err)
}
