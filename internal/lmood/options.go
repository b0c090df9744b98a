package lmood

import (
	goruntime "runtime"
	"strings"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/store"
)

// Defaults shared by every front end.
const (
	DefaultSamples   = 32
	DefaultSigma     = 1e-2
	DefaultSeed      = 1
	DefaultNoise     = "per-token"
	DefaultMaxTokens = 1024
	// DefaultAggregate is the prompt-level aggregation (see
	// drift.Aggregation), chosen from measurements on two models (README,
	// "Does it work?"): over seven shifted sets at the middle hidden state,
	// the mean AUROC of "trimmed" is 0.840 on SmolLM2-135M (flat 0.837)
	// and 0.868 on Qwen2.5-Coder-0.5B, where flat, the method's original
	// rule, falls to 0.660 (a few high-norm tokens decide the flattened
	// angle).
	DefaultAggregate = "trimmed"
	// MaxSamples bounds K.
	MaxSamples = 10000
	// DefaultPrecisionTarget is the adaptive-K target (Options.PrecisionTarget)
	// unless a request says; 0 = off. Chosen from measurements (README,
	// "Adaptive K").
	DefaultPrecisionTarget = 0
	// MaxPrecisionTarget bounds the target from above (exclusive): a
	// standard error as large as the value itself says nothing.
	MaxPrecisionTarget = 1
	// DefaultMatmulAccuracy is the MatMulNBits accuracy level
	// (Options.MatmulAccuracy) unless a request says. Chosen from
	// measurements (README, "Precision"): on Qwen2.5-Coder-0.5B stored
	// with --precision q, level 4 (int8 activations) moved prompt ratios
	// by at most 0.15 and token ratios by at most 0.30 of their spread over
	// K, for 1.8× less CPU time; on SmolLM2-135M (Q4_1, float zero points)
	// onnxruntime keeps float32 compute and levels 0, 1 and 4 agree bit for
	// bit. A float32 store ignores it.
	DefaultMatmulAccuracy = 4
	// MaxBatchMemory bounds Options.BatchMemory (MiB): 1 TiB.
	MaxBatchMemory = 1 << 20
	// DefaultSite is where drift is measured unless a request says.
	DefaultSite = "resid"
	// MinSigma is the smallest relative nudge accepted. Embeddings are
	// float32 (about 7 significant digits, relative spacing 6e-8): a
	// nudge much smaller than 1e-6 of a component is rounded away, so the
	// input angle is zero (or pure rounding noise) and no ratio can be
	// measured. 1e-6 keeps each nudge over ten times the float32 spacing.
	MinSigma = 1e-6
	// MaxSigma bounds the relative nudge size from above (exclusive).
	MaxSigma = 10
	// MaxThreadsCap is the most onnxruntime threads a request may ask for
	// on any machine (see MaxThreads).
	MaxThreadsCap = 256
)

// MaxThreads is the most onnxruntime intra-op threads a request may ask
// for here: four per core, at most MaxThreadsCap. More threads than cores
// only add contention (a thousand threads ran many times slower and took
// gigabytes of stacks).
func MaxThreads() int { return min(4*goruntime.NumCPU(), MaxThreadsCap) }

// CheckThreads validates an onnxruntime thread count: 0 (one per core)
// to MaxThreads(). The error is an *OptionError for "threads".
func CheckThreads(n int) error {
	if n < 0 || n > MaxThreads() {
		return optionErr("threads", "must be between 0 (one per core) and %d (4 per core on this %d-core machine, at most %d), got %d",
			MaxThreads(), goruntime.NumCPU(), MaxThreadsCap, n)
	}
	return nil
}

// SiteHelp describes each measurement site, one line each, for help texts.
func SiteHelp() string {
	return strings.Join([]string{
		"resid   the residual stream after block i (0 = the embeddings; the default)",
		"norm    the normalised residual the next block (or, at n, the output head) reads",
		"attn    block i's attention output, before it joins the residual (i = 1..n)",
		"mlp     block i's MLP output, before it joins the residual (i = 1..n)",
		"logits  the output head's logits over the vocabulary (no index: the whole model)",
	}, "\n")
}

// ParseSite reads a site name; "" is DefaultSite. The error is an
// *OptionError for "site".
func ParseSite(s string) (analyze.Site, error) {
	if strings.TrimSpace(s) == "" {
		s = DefaultSite
	}
	site, err := analyze.ParseSite(s)
	if err != nil {
		return "", &OptionError{Option: "site", Err: err}
	}
	return site, nil
}

// SiteIndices returns the indices a whole-model view (lmood layers) shows
// at site in a model of n blocks: 1..n for resid (0, the input, has ratio 1
// by definition), attn and mlp; 0..n for norm (norm.0 is not the input);
// none for logits, which has no index.
func SiteIndices(site analyze.Site, n int) []int {
	switch site {
	case analyze.SiteLogits:
		return nil
	case analyze.SiteNorm:
		return append([]int{0}, AllHiddenStates(n)...)
	}
	return AllHiddenStates(n)
}

// ResolveSiteLayer turns a requested index at site into the hidden states
// to analyze and the index records report: -1 means the middle (for attn
// and mlp, at least 1). Logits take no index (layer must be -1): they are
// analyzed with no hidden states and reported at index numLayers.
func ResolveSiteLayer(site analyze.Site, layer int, model string, numLayers, mid int) (hidden []int, at int, err error) {
	if site == analyze.SiteLogits {
		if layer != -1 {
			return nil, 0, optionErr("layer", "site logits has no index (it reads the output head after all %d blocks): leave --layer out", numLayers)
		}
		return nil, numLayers, nil
	}
	if err := CheckLayer(layer); err != nil {
		return nil, 0, err
	}
	lo, hi := site.Range(numLayers)
	if layer < 0 {
		layer = max(mid, lo)
	}
	if layer < lo || layer > hi {
		return nil, 0, optionErr("layer", "site %s of model %s has indices %d..%d, not %d", site, model, lo, hi, layer)
	}
	return []int{layer}, layer, nil
}

// DefaultDirection orients the OOD score. It was chosen from measurements
// on the default model, not assumed: with `lmood eval` on SmolLM2-135M,
// every shifted set drifts more than plain text at hidden states 2..29
// (pinch AUROC < 0.5), so a higher ratio means more unusual (README, "Which
// way does drift point?"). Other models may differ: measure with `lmood
// eval`.
const DefaultDirection = "expand"

// DefaultModel is the model used when a request names none.
const DefaultModel = store.DefaultModel

// Options are the analysis options of a request: the CLI's shared flags,
// a server's JSON fields. Names match the flags (--samples, --include-first)
// and the JSON fields (samples, include_first).
type Options struct {
	// Samples is K, the nudges per prompt (1..MaxSamples).
	Samples int `json:"samples"`
	// Sigma is the relative nudge size, in (0, 10).
	Sigma float64 `json:"sigma"`
	// Seed seeds the noise: same seed and inputs give identical results.
	Seed uint64 `json:"seed"`
	// Noise is "per-token" or "whole" (see drift.Scale).
	Noise string `json:"noise"`
	// Direction is "pinch" or "expand" (see drift.Direction).
	Direction string `json:"direction"`
	// Isolate nudges one token at a time.
	Isolate bool `json:"isolate"`
	// IncludeFirst counts position 0 in prompt-level values.
	IncludeFirst bool `json:"include_first"`
	// MaxTokens refuses longer prompts (0 = the model's context length).
	MaxTokens int `json:"max_tokens"`
	// Aggregate names the prompt-level aggregation (drift.Aggregation).
	Aggregate string `json:"aggregate"`
	// Surprisal also computes the logit baselines (one more forward pass
	// per prompt, through the whole model).
	Surprisal bool `json:"surprisal"`
	// Site is where drift is measured: resid (the default when empty),
	// norm, attn, mlp or logits (see analyze.Site).
	Site string `json:"site"`
	// PrecisionTarget makes K adaptive when > 0: nudges are drawn in
	// rounds (analyze.FirstRound, then doubling) until every prompt-level
	// value's standard error over the nudges is at most PrecisionTarget
	// times the value (see Rule.Precise), or Samples nudges were drawn.
	// 0 draws Samples nudges. Isolation mode ignores it.
	PrecisionTarget float64 `json:"precision_target"`
	// MatmulAccuracy is onnxruntime's MatMulNBits accuracy_level for a
	// `--precision q` store: 0 computes in float32, 4 quantizes
	// activations to int8 (see analyze.Options.MatmulAccuracy). A float32
	// store ignores it.
	MatmulAccuracy int `json:"matmul_accuracy"`
	// BatchMemory bounds one forward batch in MiB (0 =
	// analyze.DefaultBatchMiB). Results do not depend on it; a smaller
	// bound runs more, smaller passes and needs less memory.
	BatchMemory int `json:"batch_memory"`
}

// DefaultOptions returns the options every front end starts from.
func DefaultOptions() Options {
	return Options{
		Samples: DefaultSamples, Sigma: DefaultSigma, Seed: DefaultSeed, Noise: DefaultNoise,
		Direction: DefaultDirection, MaxTokens: DefaultMaxTokens, Aggregate: DefaultAggregate,
		Site: DefaultSite, PrecisionTarget: DefaultPrecisionTarget, MatmulAccuracy: DefaultMatmulAccuracy,
	}
}

// Resolved are validated options in the analyzer's terms.
type Resolved struct {
	Analyze   analyze.Options // HiddenStates as given to Resolve
	Aggregate drift.Aggregation
}

// Validate checks the options without a model; the error is an
// *OptionError naming the first bad option.
func (o Options) Validate() error {
	_, err := o.Resolve(nil)
	return err
}

// Resolve validates the options and converts them for an analyzer of the
// given hidden states. An empty Aggregate means DefaultAggregate.
func (o Options) Resolve(hidden []int) (Resolved, error) {
	noise, err := drift.ParseScale(o.Noise)
	if err != nil {
		return Resolved{}, &OptionError{Option: "noise", Err: err}
	}
	dir, err := drift.ParseDirection(o.Direction)
	if err != nil {
		return Resolved{}, &OptionError{Option: "direction", Err: err}
	}
	aggName := o.Aggregate
	if aggName == "" {
		aggName = DefaultAggregate
	}
	agg, err := drift.ParseAggregation(aggName)
	if err != nil {
		return Resolved{}, &OptionError{Option: "aggregate", Err: err}
	}
	if o.MaxTokens < 0 {
		return Resolved{}, optionErr("max-tokens", "must be >= 0 (0 = the model's context length), got %d", o.MaxTokens)
	}
	if o.Samples < 1 || o.Samples > MaxSamples {
		return Resolved{}, optionErr("samples", "must be between 1 and %d, got %d", MaxSamples, o.Samples)
	}
	if !(o.Sigma >= MinSigma && o.Sigma < MaxSigma) {
		return Resolved{}, optionErr("sigma", "must be in [%g, %g), got %v (below %g the nudge is lost in float32 rounding of the embeddings)",
			MinSigma, float64(MaxSigma), o.Sigma, MinSigma)
	}
	site, err := ParseSite(o.Site)
	if err != nil {
		return Resolved{}, err
	}
	if !(o.PrecisionTarget >= 0 && o.PrecisionTarget < MaxPrecisionTarget) {
		return Resolved{}, optionErr("precision-target", "must be in [0, %g): the largest standard error allowed relative to the prompt ratio (0.02 = 2%%), 0 = always --samples nudges; got %v",
			float64(MaxPrecisionTarget), o.PrecisionTarget)
	}
	if o.MatmulAccuracy < 0 || o.MatmulAccuracy > analyze.MaxMatmulAccuracy {
		return Resolved{}, optionErr("matmul-accuracy", "must be 0 (float32) to %d (int8 activations), got %d", analyze.MaxMatmulAccuracy, o.MatmulAccuracy)
	}
	if o.BatchMemory < 0 || o.BatchMemory > MaxBatchMemory {
		return Resolved{}, optionErr("batch-memory", "must be between 0 (the default, %d MiB) and %d MiB, got %d", analyze.DefaultBatchMiB, MaxBatchMemory, o.BatchMemory)
	}
	r := Resolved{
		Analyze: analyze.Options{
			Site: site, HiddenStates: hidden, Samples: o.Samples, Sigma: o.Sigma, Seed: o.Seed,
			Noise: noise, Isolate: o.Isolate, IncludeFirst: o.IncludeFirst,
			MaxTokens: o.MaxTokens, Surprisal: o.Surprisal, Direction: dir,
			MatmulAccuracy: o.MatmulAccuracy, BatchMiB: o.BatchMemory,
		},
		Aggregate: agg,
	}
	if o.PrecisionTarget > 0 && !o.Isolate {
		rule, target := RuleOf(r.Analyze, agg), o.PrecisionTarget
		r.Analyze.PrecisionTarget = target
		r.Analyze.Stop = func(res *analyze.Result) bool { return rule.Precise(res, target) }
	}
	return r, nil
}

// ResolveLayer turns a requested hidden-state index into one of model m
// (numLayers blocks, middle mid): -1 means the middle. It refuses indices
// outside 0..numLayers with an *OptionError for "layer".
func ResolveLayer(layer int, model string, numLayers, mid int) (int, error) {
	if err := CheckLayer(layer); err != nil {
		return 0, err
	}
	if layer < 0 {
		return mid, nil
	}
	if layer > numLayers {
		return 0, optionErr("layer", "model %s has hidden states 0..%d (0 = embeddings, %d = after the last block), not %d", model, numLayers, numLayers, layer)
	}
	return layer, nil
}

// AllHiddenStates returns 1..n: every hidden state after a block.
func AllHiddenStates(n int) []int {
	hs := make([]int, n)
	for i := range hs {
		hs[i] = i + 1
	}
	return hs
}

// CheckLayer checks a requested hidden-state index without a model: -1
// (the middle) or any index >= 0.
func CheckLayer(layer int) error {
	if layer < -1 {
		return optionErr("layer", "want a hidden-state index >= 0 (or leave it out for the middle), got %d", layer)
	}
	return nil
}
