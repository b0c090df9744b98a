package lmood

import (
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
	// drift.Aggregation). It stays "flat", the method's original rule,
	// until measurements on two models choose another.
	DefaultAggregate = "flat"
	// MaxSamples bounds K.
	MaxSamples = 10000
)

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
}

// DefaultOptions returns the options every front end starts from.
func DefaultOptions() Options {
	return Options{
		Samples: DefaultSamples, Sigma: DefaultSigma, Seed: DefaultSeed, Noise: DefaultNoise,
		Direction: DefaultDirection, MaxTokens: DefaultMaxTokens, Aggregate: DefaultAggregate,
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
	if !(o.Sigma > 0 && o.Sigma < 10) {
		return Resolved{}, optionErr("sigma", "must be in (0, 10), got %v", o.Sigma)
	}
	return Resolved{
		Analyze: analyze.Options{
			HiddenStates: hidden, Samples: o.Samples, Sigma: o.Sigma, Seed: o.Seed,
			Noise: noise, Isolate: o.Isolate, IncludeFirst: o.IncludeFirst,
			MaxTokens: o.MaxTokens, Surprisal: o.Surprisal, Direction: dir,
		},
		Aggregate: agg,
	}, nil
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
