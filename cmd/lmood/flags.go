package main

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// Defaults shared by every analysis command.
const (
	defaultSamples = 32
	defaultSigma   = 1e-2
	defaultSeed    = 1
)

// defaultDirection orients the OOD score. It was chosen from measurements on
// the default model, not assumed: with `lmood eval` on SmolLM2-135M, every
// shifted set drifts more than plain text at hidden states 2..29 (pinch
// AUROC < 0.5), so a higher ratio means more unusual (README, "Which way
// does drift point?"). Other models may differ: measure with `lmood eval`.
const defaultDirection = "expand"

// analysisFlags are the flags score, heatmap, layers and eval share; this is
// the one place that defines them.
type analysisFlags struct {
	samples      int
	sigma        float64
	seed         uint64
	noise        string
	direction    string
	isolate      bool
	includeFirst bool
	maxTokens    int
	file         string
}

func (f *analysisFlags) register(cmd *cobra.Command, g *globals, withFile bool) {
	fl := cmd.Flags()
	fl.StringVarP(&g.model, "model", "m", store.DefaultModel, "model: a name listed by 'lmood models', a path to a .gguf file, or ollama:NAME[:TAG]")
	fl.IntVar(&g.threads, "threads", 0, "onnxruntime intra-op threads (0 = one per core)")
	fl.IntVarP(&f.samples, "samples", "k", defaultSamples, "nudges per prompt (K); the reference used 50")
	fl.Float64Var(&f.sigma, "sigma", defaultSigma, "relative nudge size: noise = sigma * |e| * N(0, I), then rescaled to |e|")
	fl.Uint64Var(&f.seed, "seed", defaultSeed, "noise seed: same seed and inputs give identical results on this machine")
	fl.StringVar(&f.noise, "noise", "per-token", "noise scale: per-token (each token's noise scaled by its own embedding norm) or whole (by the whole prompt's norm, as the reference)")
	fl.StringVar(&f.direction, "direction", defaultDirection, "OOD score orientation: pinch (lower ratio = more unusual, score -ln ratio) or expand (+ln ratio)")
	fl.BoolVar(&f.isolate, "isolate", false, "nudge one token at a time (K passes per token), so a token's drift excludes noise from tokens before it")
	fl.BoolVar(&f.includeFirst, "include-first", false, "count position 0 (the attention-sink token) in prompt-level ratios; excluded by default")
	fl.IntVar(&f.maxTokens, "max-tokens", 1024, "refuse prompts longer than this many tokens (0 = the model's context length; capped at it)")
	if withFile {
		fl.StringVarP(&f.file, "file", "f", "", "read prompts from FILE, one per line ('-' = stdin); blank lines and lines starting with '#' are skipped")
	}
}

func (f *analysisFlags) options(hidden []int, surprisal bool) (analyze.Options, error) {
	noise, err := drift.ParseScale(f.noise)
	if err != nil {
		return analyze.Options{}, usageError{fmt.Errorf("--noise: %w", err)}
	}
	dir, err := drift.ParseDirection(f.direction)
	if err != nil {
		return analyze.Options{}, usageError{fmt.Errorf("--direction: %w", err)}
	}
	if f.maxTokens < 0 {
		return analyze.Options{}, usageError{fmt.Errorf("--max-tokens must be >= 0 (0 = the model's context length), got %d", f.maxTokens)}
	}
	if f.samples < 1 || f.samples > 10000 {
		return analyze.Options{}, usageError{fmt.Errorf("--samples must be between 1 and 10000, got %d", f.samples)}
	}
	if !(f.sigma > 0 && f.sigma < 10) {
		return analyze.Options{}, usageError{fmt.Errorf("--sigma must be in (0, 10), got %v", f.sigma)}
	}
	return analyze.Options{
		HiddenStates: hidden, Samples: f.samples, Sigma: f.sigma, Seed: f.seed,
		Noise: noise, Isolate: f.isolate, IncludeFirst: f.includeFirst,
		MaxTokens: f.maxTokens, Surprisal: surprisal, Direction: dir,
	}, nil
}

// openModel resolves --model (a store name, a .gguf path, or ollama:NAME)
// and loads onnxruntime.
func openModel(g *globals) (*store.Model, error) {
	if err := runtime.Init(g.ortLib); err != nil {
		return nil, err
	}
	name := g.model
	st := store.Default()
	switch {
	case strings.HasPrefix(name, "ollama:"):
		n, err := resolveOllama(g, name, "", false)
		if err != nil {
			return nil, err
		}
		name = n
	case strings.HasSuffix(strings.ToLower(name), ".gguf"):
		n, err := importIfNeeded(g, st, name)
		if err != nil {
			return nil, err
		}
		name = n
	}
	m, err := st.Open(name)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// importIfNeeded converts a GGUF path given as --model once and reuses the
// conversion while the file is unchanged (same absolute path, size and
// modification time). It never replaces a model converted from another
// source: if the file-derived name is taken, a suffix from the path's hash
// is added.
func importIfNeeded(g *globals, st *store.Store, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("model file %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("model file %s: %w", path, err)
	}
	name := nameFromPath(abs)
	for attempt := 0; ; attempt++ {
		m, err := st.ReadManifest(name)
		if err != nil && !errors.Is(err, store.ErrStale) {
			break // free name (or unreadable: replaced below)
		}
		if m != nil && m.Source.Kind == "file" && m.Source.GGUF == abs {
			if err == nil && m.Source.Size == fi.Size() && m.Source.ModTime.Equal(fi.ModTime().UTC()) {
				return name, nil
			}
			break // same file, changed or stale: convert again under this name
		}
		if attempt > 0 {
			return "", fmt.Errorf("model names %q and %q are taken by other models; import the file with `lmood import %s --name NAME`", nameFromPath(abs), name, path)
		}
		sum := sha256.Sum256([]byte(abs))
		name = fmt.Sprintf("%s-%x", strings.TrimRight(truncateName(nameFromPath(abs), 55), "-._"), sum[:4])
	}
	path = abs
	if !g.quiet {
		fmt.Fprintf(os.Stderr, "lmood: converting %s into model %q (once; later runs reuse it)\n", path, name)
	}
	ctx, cancel := signalContext()
	defer cancel()
	if _, err := st.ImportContext(ctx, path, name, store.Source{Kind: "file", Ref: path}, g.progress()); err != nil {
		return "", err
	}
	return name, nil
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

// resolveLayer turns --layer (-1 = middle) into a hidden-state index.
func resolveLayer(layer int, m *store.Model) (int, error) {
	c := m.Config()
	if layer < 0 {
		return c.Middle(), nil
	}
	if layer > c.Layers {
		return 0, usageError{fmt.Errorf("--layer %d: model %s has hidden states 0..%d (0 = embeddings, %d = after the last block)", layer, m.Manifest.Name, c.Layers, c.Layers)}
	}
	return layer, nil
}

// Setup is the analysis setup every JSON record carries (score, layers and
// eval embed it, so the three agree on names and meaning).
type Setup struct {
	Model     string  `json:"model"`
	NumLayers int     `json:"num_layers"`
	Samples   int     `json:"samples"`
	Sigma     float64 `json:"sigma"`
	Seed      uint64  `json:"seed"`
	Noise     string  `json:"noise"`
	Isolate   bool    `json:"isolate"`
	Direction string  `json:"direction"`
}

// newSetup describes an analysis of model name with numLayers blocks.
func newSetup(name string, numLayers int, opt analyze.Options) Setup {
	return Setup{Model: name, NumLayers: numLayers, Samples: opt.Samples, Sigma: opt.Sigma, Seed: opt.Seed,
		Noise: opt.Noise.String(), Isolate: opt.Isolate, Direction: opt.Direction.String()}
}

// truncateName cuts a store name to at most n bytes.
func truncateName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
