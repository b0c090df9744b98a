package lmood

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

// Setup is the analysis setup every JSON record carries (score, layers and
// eval embed it, so they agree on names and meaning).
type Setup struct {
	Model     string  `json:"model"`
	NumLayers int     `json:"num_layers"`
	Samples   int     `json:"samples"`
	Sigma     float64 `json:"sigma"`
	Seed      uint64  `json:"seed"`
	Noise     string  `json:"noise"`
	Isolate   bool    `json:"isolate"`
	Direction string  `json:"direction"`
	// Aggregate names the prompt-level aggregation (drift.Aggregation).
	Aggregate string `json:"aggregate"`
	// Site is where drift was measured: resid, norm, attn, mlp or logits
	// (for logits, layer is num_layers).
	Site string `json:"site"`
	// PrecisionTarget is the adaptive-K target (0: Samples nudges per
	// prompt; see Options.PrecisionTarget).
	PrecisionTarget float64 `json:"precision_target"`
	// MatmulAccuracy is the MatMulNBits accuracy level of a block-quantized
	// model (0 for a float32 one).
	MatmulAccuracy int `json:"matmul_accuracy"`
}

// NewSetup describes an analysis of model name with numLayers blocks.
func NewSetup(name string, numLayers int, opt analyze.Options, agg drift.Aggregation) Setup {
	return Setup{Model: name, NumLayers: numLayers, Samples: opt.Samples, Sigma: opt.Sigma, Seed: opt.Seed,
		Noise: opt.Noise.String(), Isolate: opt.Isolate, Direction: opt.Direction.String(), Aggregate: agg.String(),
		Site: SiteName(opt.Site), PrecisionTarget: opt.PrecisionTarget, MatmulAccuracy: opt.MatmulAccuracy}
}

// SiteName names a site for records and footers; the zero site is resid.
func SiteName(s analyze.Site) string {
	if s == "" {
		return DefaultSite
	}
	return string(s)
}

// promptBytes returns the prompt's raw bytes when it is not valid UTF-8
// (JSON would replace the invalid bytes with U+FFFD), else nil.
func promptBytes(prompt string) []byte {
	if utf8.ValidString(prompt) {
		return nil
	}
	return []byte(prompt)
}

// TokenRecord is one token in a score record.
type TokenRecord struct {
	ID       int     `json:"id"`
	Text     string  `json:"text"`
	Ratio    float64 `json:"ratio"`
	RatioStd float64 `json:"ratio_std"`
	OOD      float64 `json:"ood"`
	// Surprisal is -ln p(token | prefix) in nats, with Options.Surprisal;
	// absent for position 0 (not predicted).
	Surprisal *float64 `json:"surprisal,omitempty"`

	// Percentile places the token's ratio among the calibration's
	// reference tokens at its position (calibration.go).
	Percentile *float64 `json:"percentile,omitempty"`
}

// ScoreRecord is one prompt scored at one hidden state: a line of `lmood
// score --json` (schema: [ScoreSchema]).
type ScoreRecord struct {
	// ID identifies the prompt in its input (see [Prompt]); set by the
	// caller, absent when it gave none.
	ID     json.RawMessage `json:"id,omitempty"`
	Prompt string          `json:"prompt"`
	// PromptBytes holds the prompt's raw bytes (base64 in JSON) when it is
	// not valid UTF-8: Prompt then has U+FFFD in place of invalid bytes.
	PromptBytes []byte `json:"prompt_bytes,omitempty"`
	Setup
	// SetupID fingerprints everything that shapes the numbers (see
	// [Session.SetupID]): records with equal SetupID are comparable.
	SetupID    string  `json:"setup_id,omitempty"`
	Layer      int     `json:"layer"`
	FirstToken string  `json:"first_token"`
	Ratio      float64 `json:"ratio"`
	RatioStd   float64 `json:"ratio_std"`
	// SamplesUsed is the number of nudges behind the values: Samples, or
	// fewer when adaptive K stopped early (0 on error).
	SamplesUsed int     `json:"samples_used"`
	OOD         float64 `json:"ood"`
	InputAngle  float64 `json:"input_angle_deg"`
	Drift       float64 `json:"drift_deg"`
	// Logit baselines on the clean prompt, with Options.Surprisal and at
	// least two tokens: mean surprisal and next-token entropy (nats) and
	// mean max-softmax probability.
	Surprisal  *float64      `json:"surprisal,omitempty"`
	Entropy    *float64      `json:"entropy,omitempty"`
	MaxSoftmax *float64      `json:"max_softmax,omitempty"`
	Tokens     []TokenRecord `json:"tokens"`
	Warnings   []string      `json:"warnings,omitempty"`
	Error      string        `json:"error,omitempty"`

	// CalibratedScore holds the calibrated values (calibration.go).
	CalibratedScore
}

// Score analyzes prompt and builds its record at hidden state layer (one
// of the session's). A failure is reported in the record's Error. It is
// ScoreCalibrated without a calibration.
func (s *Session) Score(prompt string, layer int) ScoreRecord {
	return s.ScoreCalibrated(prompt, layer, nil)
}

// NewScoreRecord builds the score record of one analysis (err: the
// analysis failed) at hidden state layer under rule r.
func NewScoreRecord(prompt string, setup Setup, layer int, r Rule, res *analyze.Result, err error) ScoreRecord {
	rec := ScoreRecord{Prompt: prompt, PromptBytes: promptBytes(prompt), Setup: setup, Layer: layer, Tokens: []TokenRecord{}}
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	l, ok := res.Layer(layer)
	if !ok {
		rec.Error = fmt.Sprintf("internal error: hidden state %d was not measured", layer)
		return rec
	}
	sum := Summarize(res, l, r)
	if !sum.OK {
		if r.Isolate {
			rec.Error = "no token had a valid nudge: no ratio can be reported"
		} else {
			rec.Error = fmt.Sprintf("no valid nudge: all %d gave a zero or non-finite angle (zero embeddings or overflow); no ratio can be reported", res.Samples)
		}
		return rec
	}
	dir, _ := drift.ParseDirection(setup.Direction)
	rec.FirstToken, rec.SamplesUsed = res.FirstToken, res.Samples
	rec.Ratio, rec.RatioStd = sum.Ratio, sum.RatioStd
	rec.InputAngle, rec.Drift = zeroNaN(sum.InputAngle), zeroNaN(sum.Drift)
	if r.Isolate {
		rec.Warnings = append(rec.Warnings, isolationNote(r.Aggregate))
	}
	rec.OOD = drift.OODScore(rec.Ratio, dir)
	b := res.Baselines
	if b != nil && len(res.Tokens) >= 2 {
		rec.Surprisal, rec.Entropy, rec.MaxSoftmax = FinitePtr(b.Surprisal), FinitePtr(b.Entropy), FinitePtr(b.MaxSoftmax)
	}
	for i, t := range res.Tokens {
		tr := l.TokenRatio[i]
		tok := TokenRecord{ID: t.ID, Text: t.Text, Ratio: tr.Mean, RatioStd: tr.Std, OOD: drift.OODScore(tr.Mean, dir)}
		if b != nil && i > 0 && i < len(b.Tokens) {
			tok.Surprisal = FinitePtr(b.Tokens[i])
		}
		rec.Tokens = append(rec.Tokens, tok)
	}
	rec.Warnings = append(rec.Warnings, res.Warnings...)
	return rec
}

// isolationNote explains a score record's prompt-level values in isolation
// mode.
func isolationNote(agg drift.Aggregation) string {
	if agg == drift.Flat {
		return "isolation mode: ratio, input_angle_deg and drift_deg are means over tokens (ratio_std is across tokens)"
	}
	return fmt.Sprintf("isolation mode: ratio is the %s aggregation of per-token ratios, input_angle_deg and drift_deg are means over tokens (ratio_std is across tokens)", agg)
}

// zeroNaN maps NaN to 0 (score records hold numbers, not nulls).
func zeroNaN(v float64) float64 {
	if !isFinite(v) {
		return 0
	}
	return v
}

// LayerRecord is one hidden state in a layers record. A value that is
// undefined (e.g. a one-token prompt with position 0 excluded) is null,
// never NaN.
type LayerRecord struct {
	Layer    int      `json:"layer"`
	Ratio    *float64 `json:"ratio"`
	RatioStd *float64 `json:"ratio_std"`
	OOD      *float64 `json:"ood"`
	Drift    *float64 `json:"drift_deg"`

	// Percentile places the prompt-level ratio in the calibration, when
	// one was applied (calibration.go).
	Percentile *float64 `json:"percentile,omitempty"`
}

// LayersRecord is one line of `lmood layers --json`: one prompt's
// prompt-level ratio at every hidden state analyzed (schema: [LayersSchema]).
type LayersRecord struct {
	Prompt string `json:"prompt"`
	// PromptBytes is as in ScoreRecord.
	PromptBytes []byte `json:"prompt_bytes,omitempty"`
	Setup
	FirstToken string `json:"first_token"`
	Tokens     int    `json:"tokens"`
	Passes     int    `json:"passes"` // forward passes run for this prompt
	// SamplesUsed is as in ScoreRecord (adaptive K stops when every
	// layer's value is precise enough).
	SamplesUsed int           `json:"samples_used"`
	InputAngle  *float64      `json:"input_angle_deg"`
	Layers      []LayerRecord `json:"layers"`
	Warnings    []string      `json:"warnings,omitempty"`
	Error       string        `json:"error,omitempty"`

	// Calibration describes the reference of the percentiles, when a
	// calibration was applied (calibration.go).
	Calibration string `json:"calibration,omitempty"`
}

// NewLayersRecord builds the layers record of one analysis (err: it
// failed) that took passes forward passes. In isolation mode drift_deg and
// input_angle_deg are null: no nudge moved the whole prompt.
func NewLayersRecord(prompt string, setup Setup, r Rule, res *analyze.Result, passes int, err error) LayersRecord {
	rec := LayersRecord{Prompt: prompt, PromptBytes: promptBytes(prompt), Setup: setup, Passes: passes, Layers: []LayerRecord{}}
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	dir, _ := drift.ParseDirection(setup.Direction)
	rec.FirstToken, rec.Tokens, rec.Warnings, rec.SamplesUsed = res.FirstToken, len(res.Tokens), res.Warnings, res.Samples
	if res.InputAngle.Defined && !r.Isolate {
		rec.InputAngle = FinitePtr(res.InputAngle.Mean)
	}
	if r.Isolate {
		rec.Warnings = append(rec.Warnings, "isolation mode: ratio is the "+IsolationWord(r.Aggregate)+" of per-token ratios (std is across tokens); drift_deg is null")
	}
	for i := range res.Layers {
		l := &res.Layers[i]
		sum := Summarize(res, l, r)
		lr := LayerRecord{Layer: l.Index, Ratio: FinitePtr(sum.Ratio), RatioStd: FinitePtr(sum.RatioStd)}
		if !r.Isolate {
			lr.Drift = FinitePtr(sum.Drift)
		}
		if lr.Ratio != nil {
			lr.OOD = FinitePtr(drift.OODScore(sum.Ratio, dir))
		}
		rec.Layers = append(rec.Layers, lr)
	}
	return rec
}

// IsolationWord names how isolation mode combines per-token ratios under
// agg ("mean", "median aggregation", …).
func IsolationWord(agg drift.Aggregation) string {
	if agg == drift.Flat {
		return "mean"
	}
	return agg.String() + " aggregation"
}
