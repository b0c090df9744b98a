package lmood

import (
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/calibrate"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/eval"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// Calibration defaults (`lmood calibrate`).
const (
	// DefaultCalibrationPassages is the number of self-generated passages.
	DefaultCalibrationPassages = 200
	// DefaultCalibrationTokens is the length of a self-generated passage.
	DefaultCalibrationTokens = 32
	// DefaultCalibrationSeed seeds the generation.
	DefaultCalibrationSeed = 1
)

// Aggregator is the calibration hook of the rule: the natural log of the
// prompt-level ratio Summarize gives, so that a calibration and the scores
// placed in it aggregate drift the same way.
func (r Rule) Aggregator() calibrate.Aggregator {
	return func(res *analyze.Result, l *analyze.Layer) (float64, bool) {
		s := Summarize(res, l, r)
		if !s.OK || !(s.Ratio > 0) {
			return 0, false
		}
		return math.Log(s.Ratio), true
	}
}

// CalibrationIdentity is the identity of an analysis with options opt
// (effective, as Session.Options returns them) and rule r on m; reference
// describes the reference texts, "" for any.
func CalibrationIdentity(m *store.Model, opt analyze.Options, r Rule, reference string) calibrate.Identity {
	return calibrate.IdentityFor(m, opt, r.Aggregate.String(), reference)
}

// CalibrateRequest says how to build a calibration.
type CalibrateRequest struct {
	// Passages and Tokens size a self-generated reference (0 = the
	// defaults); Seed seeds its generation.
	Passages, Tokens int
	Seed             uint64
	// Start is the text every self-generated passage continues ("" = the
	// model's <|endoftext|> or BOS token).
	Start string
	// ReferenceFile, when set, is a file of reference texts (.txt one per
	// line, or .jsonl with a "text" field) used instead of generated ones.
	ReferenceFile string
	// Hidden are the hidden states to calibrate (nil = all after a block,
	// so that score, heatmap and layers all find them).
	Hidden []int
	// Threads are onnxruntime intra-op threads (0 = one per core).
	Threads int
	// TokenClasses is the token class scheme per-token values are bucketed
	// by besides position: "freq", "norm" or "none" ("" =
	// calibrate.DefaultClassScheme).
	TokenClasses string
}

// ReferenceSource reads a reference file and returns its texts and its
// description (base name and SHA-256 of the content, as calibrations
// record it).
func ReferenceSource(path string) ([]string, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("reference file: %w", err)
	}
	texts, err := eval.ReadTexts(path)
	if errors.Is(err, eval.ErrNoPrompts) {
		return nil, "", fmt.Errorf("reference file %s has no texts (one per line; blank lines and lines starting with '#' are skipped): give at least %d texts", path, calibrate.MinPrompts)
	}
	if err != nil {
		return nil, "", fmt.Errorf("reference file: %w", err)
	}
	return texts, calibrate.FileSource(path, data), nil
}

// Calibrate builds a calibration of the analysis opt (with rule from
// opt.Aggregate) on m, from passages m generates itself or from
// req.ReferenceFile, saves it in the model's store directory and returns
// it with the file's path. The progress hook shows generation and
// analysis.
func Calibrate(m *store.Model, opt Options, req CalibrateRequest, hooks Hooks) (*calibrate.Reference, string, error) {
	hidden := req.Hidden
	if len(hidden) == 0 {
		hidden = AllHiddenStates(m.Config().Layers)
	}
	r, err := opt.Resolve(hidden)
	if err != nil {
		return nil, "", err
	}
	if req.TokenClasses != "" && !slices.Contains(calibrate.ClassSchemes, req.TokenClasses) {
		return nil, "", optionErr("token-classes", "want one of %s, got %q", strings.Join(calibrate.ClassSchemes, ", "), req.TokenClasses)
	}
	if req.Passages < 0 || req.Tokens < 0 {
		return nil, "", UsageError(fmt.Errorf("passages and tokens must be >= 0 (0 = the defaults %d and %d)", DefaultCalibrationPassages, DefaultCalibrationTokens))
	}
	rule := RuleOf(r.Analyze, r.Aggregate)
	prog := newStageProgress(hooks)
	co := calibrate.Options{
		Analyze: r.Analyze, Aggregation: r.Aggregate.String(), Agg: rule.Aggregator(),
		Session: runtime.SessionOptions{Threads: req.Threads}, Progress: prog.update, Classes: req.TokenClasses,
	}
	start := time.Now()
	var ref *calibrate.Reference
	if req.ReferenceFile != "" {
		texts, source, err := ReferenceSource(req.ReferenceFile)
		if err != nil {
			return nil, "", err
		}
		hooks.logf("calibrating against %d texts of %s", len(texts), req.ReferenceFile)
		ref, err = calibrate.FromTexts(m, texts, source, co)
		prog.finish()
		if err != nil {
			return nil, "", err
		}
	} else {
		g := generate.Options{Passages: req.Passages, Tokens: req.Tokens, Seed: req.Seed}
		if req.Start != "" {
			tok, err := m.Tokenizer()
			if err != nil {
				return nil, "", err
			}
			toks, err := tok.Encode(req.Start)
			if err != nil || len(toks) == 0 {
				return nil, "", UsageError(fmt.Errorf("start text %q gives no tokens (%v)", req.Start, err))
			}
			for _, t := range toks {
				g.Start = append(g.Start, t.ID)
			}
		}
		if g.Passages == 0 {
			g.Passages = DefaultCalibrationPassages
		}
		if g.Tokens == 0 {
			g.Tokens = DefaultCalibrationTokens
		}
		var err error
		ref, _, err = calibrate.FromModel(m, g, co)
		prog.finish()
		if err != nil {
			return nil, "", err
		}
	}
	hooks.logf("calibration: %d texts, %d prefixes, %d skipped, in %v", ref.Prompts, ref.Prefixes, ref.Skipped, time.Since(start).Round(time.Millisecond))
	path, err := ref.Save(m.Dir)
	if err != nil {
		return nil, "", err
	}
	return ref, path, nil
}

// stageProgress turns calibrate's (stage, done, total) reports into one
// progress bar per stage.
type stageProgress struct {
	hooks Hooks
	p     Progress
	stage string
	done  int
}

func newStageProgress(h Hooks) *stageProgress { return &stageProgress{hooks: h} }

func (s *stageProgress) update(stage string, done, total int) {
	if stage != s.stage || s.p == nil {
		s.finish()
		s.p, s.stage, s.done = s.hooks.progress(), stage, 0
		name := "analyzing"
		if stage == "generate" {
			name = "generating"
		}
		s.p.Start(name, int64(total))
	}
	if done > s.done {
		s.p.Add(done - s.done)
		s.done = done
	}
}

func (s *stageProgress) finish() {
	if s.p != nil {
		s.p.Finish()
		s.p = nil
	}
}

// Calibration is a calibration applied to a session's scores.
type Calibration struct {
	Ref  *calibrate.Reference
	Path string // the file it was read from
	rule Rule
	dir  drift.Direction
}

// Describe says what the calibration compares with, for a report footer:
// "self-generated 200 passages … (200 texts, 150 prefixes)".
func (c *Calibration) Describe() string {
	return fmt.Sprintf("%s (%d texts, %d prefixes)", c.Ref.Identity.Reference, c.Ref.Prompts, c.Ref.Prefixes)
}

// FindCalibration returns the calibration that applies to the session's
// analysis.
//
// With path set, that file is loaded and refused, with an error wrapping
// calibrate.ErrMismatch that names each difference, unless it describes
// this analysis (model, GGUF, converter version, site, hidden states, K,
// sigma, noise, isolation, position 0, aggregation). Otherwise the model's
// store directory is searched (calibrate.Find): the error then wraps
// calibrate.ErrNotFound and says why each file there does not apply.
// referenceFile, when set, asks for a calibration built from that file's
// content (ReferenceSource); otherwise any reference is accepted, a
// self-generated one first.
func (s *Session) FindCalibration(path, referenceFile string) (*Calibration, error) {
	source := ""
	if referenceFile != "" {
		var err error
		if _, source, err = ReferenceSource(referenceFile); err != nil {
			return nil, err
		}
	}
	want := CalibrationIdentity(s.model, s.opt, s.rule, source)
	var ref *calibrate.Reference
	var err error
	if path != "" {
		ref, err = calibrate.Load(path, want)
	} else {
		ref, path, err = calibrate.Find(s.model.Dir, want)
	}
	if err != nil {
		return nil, err
	}
	return &Calibration{Ref: ref, Path: path, rule: s.rule, dir: s.opt.Direction}, nil
}

// CalibrateSession builds, saves and returns a calibration of the
// session's own analysis (its hidden states only) from referenceFile.
func (s *Session) CalibrateSession(referenceFile string, threads int) (*Calibration, error) {
	texts, source, err := ReferenceSource(referenceFile)
	if err != nil {
		return nil, err
	}
	prog := newStageProgress(s.hooks)
	ref, err := calibrate.FromTexts(s.model, texts, source, calibrate.Options{
		Analyze: s.opt, Aggregation: s.rule.Aggregate.String(), Agg: s.rule.Aggregator(),
		Session: runtime.SessionOptions{Threads: threads}, Progress: prog.update,
	})
	prog.finish()
	if err != nil {
		return nil, err
	}
	path, err := ref.Save(s.model.Dir)
	if err != nil {
		return nil, err
	}
	return &Calibration{Ref: ref, Path: path, rule: s.rule, dir: s.opt.Direction}, nil
}

// CalibratedScore are the calibrated fields of a score record, present
// when a calibration was applied.
type CalibratedScore struct {
	// Percentile is the fraction of the calibration's reference prompts
	// (of about this prompt's length) whose prompt-level value is less
	// unusual than this prompt's: 0.97 = more unusual than 97% of them.
	Percentile *float64 `json:"percentile,omitempty"`
	// PValue is the upper-tail p-value of the prompt-level value among the
	// reference's, at least 1/(N+1).
	PValue *float64 `json:"p_value,omitempty"`
	// Calibration describes the reference texts.
	Calibration string `json:"calibration,omitempty"`
}

// Apply adds calibrated values to a score record built from res: the
// prompt's percentile and p-value, each token's percentile, and the
// calibration's warnings (a thin length bucket, positions past the
// reference). It does nothing to a failed record.
func (c *Calibration) Apply(rec *ScoreRecord, res *analyze.Result) error {
	if rec.Error != "" || res == nil {
		return nil
	}
	sc, err := c.Ref.Score(res, c.dir, c.rule.Aggregator())
	if err != nil {
		return err
	}
	var ls *calibrate.LayerScore
	for i := range sc.Layers {
		if sc.Layers[i].Index == rec.Layer {
			ls = &sc.Layers[i]
		}
	}
	if ls == nil {
		return fmt.Errorf("calibration %s: %w: hidden state %d", c.Path, calibrate.ErrMismatch, rec.Layer)
	}
	rec.Calibration = c.Ref.Identity.Reference
	if v := ls.Prompt; v != nil {
		rec.Percentile, rec.PValue = FinitePtr(v.Percentile), FinitePtr(v.P)
	}
	for i := range rec.Tokens {
		if i < len(ls.Tokens) && ls.Tokens[i] != nil {
			rec.Tokens[i].Percentile = FinitePtr(ls.Tokens[i].Percentile)
		}
	}
	for _, w := range sc.Warnings {
		rec.Warnings = append(rec.Warnings, "calibration: "+w)
	}
	return nil
}

// ScoreCalibrated analyzes prompt and builds its record at hidden state
// layer (one of the session's), with calibrated values from c (nil: none)
// and the setup_id of both (SetupID). A failure is reported in the
// record's Error.
func (s *Session) ScoreCalibrated(prompt string, layer int, c *Calibration) ScoreRecord {
	res, _, err := s.Analyze(prompt)
	rec := NewScoreRecord(prompt, s.Setup(), layer, s.rule, res, err)
	rec.SetupID = s.SetupID(layer, c)
	if c != nil {
		if err := c.Apply(&rec, res); err != nil {
			rec.Warnings = append(rec.Warnings, "calibration not applied: "+err.Error())
		}
	}
	return rec
}

// LayerPercentiles places a result in the calibration and returns, per
// hidden state, the prompt-level percentile (NaN where undefined) and the
// calibration's warnings.
func (c *Calibration) LayerPercentiles(res *analyze.Result) (map[int]float64, []string, error) {
	sc, err := c.Ref.Score(res, c.dir, c.rule.Aggregator())
	if err != nil {
		return nil, nil, err
	}
	out := map[int]float64{}
	for _, ls := range sc.Layers {
		out[ls.Index] = math.NaN()
		if ls.Prompt != nil {
			out[ls.Index] = ls.Prompt.Percentile
		}
	}
	return out, sc.Warnings, nil
}

// FormatPercentile writes a percentile for people: "97.3%", "n/a".
func FormatPercentile(p float64) string {
	if !isFinite(p) {
		return "n/a"
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", 100*p), ".0") + "%"
}

// ApplyLayers adds each hidden state's percentile to a layers record built
// from res, and the calibration's warnings. It does nothing to a failed
// record.
func (c *Calibration) ApplyLayers(rec *LayersRecord, res *analyze.Result) error {
	if rec.Error != "" || res == nil {
		return nil
	}
	pct, warns, err := c.LayerPercentiles(res)
	if err != nil {
		return err
	}
	rec.Calibration = c.Ref.Identity.Reference
	for i := range rec.Layers {
		if p, ok := pct[rec.Layers[i].Layer]; ok {
			rec.Layers[i].Percentile = FinitePtr(p)
		}
	}
	rec.Warnings = slices.Clip(rec.Warnings) // it may share the result's
	for _, w := range warns {
		rec.Warnings = append(rec.Warnings, "calibration: "+w)
	}
	return nil
}
