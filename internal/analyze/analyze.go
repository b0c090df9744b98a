// Package analyze turns prompts into drift results: it tokenizes a prompt,
// gathers its embeddings, builds the batch of K nudged copies, runs them
// (with the clean copy) through a graph truncated after the deepest
// measurement point asked for, and accumulates drift statistics per token,
// per prompt and per layer at one site (resid, norm, attn, mlp or logits).
// It renders nothing.
package analyze

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

// Site is where drift is read (see package arch): the residual stream
// after block i (resid), the normalised residual the next block reads
// (norm), the attention or MLP output of block i (attn, mlp), or the output
// head's logits (logits, no index).
type Site = arch.Site

// The measurement sites.
const (
	SiteResid  = arch.SiteResid
	SiteNorm   = arch.SiteNorm
	SiteAttn   = arch.SiteAttn
	SiteMLP    = arch.SiteMLP
	SiteLogits = arch.SiteLogits
)

// ParseSite reads a site name: resid, norm, attn, mlp or logits.
func ParseSite(s string) (Site, error) { return arch.ParseSite(s) }

// Options configure an Analyzer.
type Options struct {
	// Site is where drift is measured, for every index in HiddenStates
	// (default resid).
	Site Site
	// HiddenStates are the indices to measure at Site: for resid and norm
	// 0..layers (0 = the embeddings, i = after block i), for attn and mlp
	// 1..layers (block i). The graph is truncated after the deepest one.
	// The logits site has no index: leave HiddenStates empty.
	HiddenStates []int
	Samples      int         // K nudges per prompt
	Sigma        float64     // relative nudge size
	Seed         uint64      // noise seed
	Noise        drift.Scale // per-token (default) or whole-prompt noise sizing
	// Isolate nudges one token at a time (K nudges per token) so that a
	// token's drift is not mixed with noise injected upstream of it.
	Isolate bool
	// IncludeFirst counts position 0 (the attention-sink token) in the
	// prompt-level ratio. By default it is excluded: its hidden state has
	// an abnormal norm in most causal LMs. Per-token values are always
	// reported for it.
	IncludeFirst bool
	// MaxTokens refuses longer prompts (0 = the model's context length).
	MaxTokens int
	// BatchMiB bounds the memory of one forward batch (0 = 512 MiB),
	// logits included: the logit baselines project a long prompt onto the
	// vocabulary a slice of positions at a time to stay within it.
	BatchMiB int
	// BatchRows caps the prompt copies per forward pass (0 = up to 64,
	// within BatchMiB). Results do not depend on it.
	BatchRows int
	// Surprisal also runs the full model with its output head once per
	// prompt (clean input only) and reports logit baselines.
	Surprisal bool
	// Direction orients the OOD score (see drift.OODScore).
	Direction drift.Direction
	// Stop, when set, makes K adaptive: nudges are drawn in rounds —
	// FirstRound of them, then as many again as were drawn so far (the
	// total doubles), never more than Samples — and after every round but
	// the last Stop sees the result so far; sampling ends when it returns
	// true. Nudge k is the same whatever the rounds (noise is keyed by
	// seed, prompt, nudge and token) and nudges are accumulated in order,
	// so a run that stopped after n nudges equals a run with Samples = n.
	// Result.Samples says how many were drawn. Isolation mode ignores it.
	Stop func(*Result) bool
	// PrecisionTarget is the target Stop applies, for the records of
	// callers that set one (analyze itself does not read it).
	PrecisionTarget float64
	// MatmulAccuracy is onnxruntime's accuracy_level for the
	// block-quantized weights of a `--precision q` store (MatMulNBits): 0
	// and 1 compute in float32, 4 quantizes activations to int8 (2 and 3,
	// float16 and bfloat16, fall back to float32 on CPU). It has no effect
	// on a float32 store: New sets it to 0 there.
	MatmulAccuracy int
}

// DefaultBatchMiB is the batch memory bound when Options.BatchMiB is 0.
const DefaultBatchMiB = 512

// MaxMatmulAccuracy is the largest MatMulNBits accuracy level (int8).
const MaxMatmulAccuracy = 4

// FirstRound is the number of nudges an adaptive run (Options.Stop) draws
// before it first looks at its result: fewer make the spread over nudges,
// and so the standard error Stop judges, too uncertain to stop on.
const FirstRound = 8

// Analyzer scores prompts against one model, keeping its sessions loaded.
type Analyzer struct {
	model  *store.Model
	cfg    arch.Spec
	tok    *tokenize.Tokenizer
	opt    Options
	sess   *runtime.Session
	widths []int // last-axis size of each output of sess
	// final (the full model up to norm.n) and head (the output head alone)
	// give the logit baselines when Surprisal is set.
	final, head *runtime.Session
	// budget is the batch memory bound in bytes (BatchMiB).
	budget int
	// anchored is set for an int8 model, whose drift graphs anchor their
	// int8 linears on row 0 of each batch (onnx.Builder.Linear): every
	// batch then carries the clean copy first, not only the first one (one
	// row more per later batch, also for graphs on the way to logits, which
	// are in the float form and where it is harmless).
	anchored bool
	// maxTokenBytes is the longest token's text in bytes: a prompt longer
	// than MaxTokens*maxTokenBytes bytes cannot fit and is refused before
	// tokenizing it.
	maxTokenBytes int
}

// Sentinel errors for bad prompts.
var (
	ErrEmptyPrompt = errors.New("empty prompt")
	ErrTooLong     = errors.New("prompt is longer than allowed")
	ErrInvalidUTF8 = errors.New("prompt is not valid UTF-8")
)

// prepare validates opt for model m and fills in its defaults; it returns
// the effective options, the measurement points, and m at the options'
// accuracy level.
func prepare(m *store.Model, opt Options) (Options, []arch.Point, *store.Model, error) {
	cfg := m.Config()
	if opt.Samples < 1 {
		return opt, nil, nil, fmt.Errorf("analyze: samples must be at least 1, got %d", opt.Samples)
	}
	if !(opt.Sigma > 0) || math.IsInf(opt.Sigma, 0) {
		return opt, nil, nil, fmt.Errorf("analyze: sigma must be a positive number, got %v", opt.Sigma)
	}
	if opt.Site == "" {
		opt.Site = SiteResid
	}
	site, err := ParseSite(string(opt.Site))
	if err != nil {
		return opt, nil, nil, fmt.Errorf("analyze: %w", err)
	}
	opt.Site = site
	opt.HiddenStates = slices.Clone(opt.HiddenStates) // the caller may reuse its slice
	if site == SiteLogits {
		if len(opt.HiddenStates) > 0 {
			return opt, nil, nil, fmt.Errorf("analyze: site logits has no layer index (it reads the output head after all %d blocks); got %v", cfg.Layers, opt.HiddenStates)
		}
		opt.HiddenStates = []int{cfg.Layers}
	} else if len(opt.HiddenStates) == 0 {
		return opt, nil, nil, fmt.Errorf("analyze: no hidden state requested")
	}
	points := make([]arch.Point, len(opt.HiddenStates))
	seen := map[int]bool{}
	for i, h := range opt.HiddenStates {
		p, err := arch.Point{Site: site, Index: h}.Check(cfg.Layers)
		if err != nil {
			return opt, nil, nil, fmt.Errorf("analyze: %w for model %s (%d layers)", err, m.Manifest.Name, cfg.Layers)
		}
		if seen[h] {
			return opt, nil, nil, fmt.Errorf("analyze: hidden state %d requested twice", h)
		}
		seen[h] = true
		points[i] = p
	}
	if opt.MaxTokens <= 0 || opt.MaxTokens > cfg.ContextLength {
		opt.MaxTokens = cfg.ContextLength
	}
	if opt.BatchMiB <= 0 {
		opt.BatchMiB = DefaultBatchMiB
	}
	opt.BatchMiB = min(opt.BatchMiB, 1<<20) // a TiB: keeps BatchMiB<<20 from overflowing
	if opt.MatmulAccuracy < 0 || opt.MatmulAccuracy > MaxMatmulAccuracy {
		return opt, nil, nil, fmt.Errorf("analyze: matmul accuracy level must be 0..%d, got %d", MaxMatmulAccuracy, opt.MatmulAccuracy)
	}
	if !m.Quantized() {
		opt.MatmulAccuracy = 0 // float32 weights: MatMul, no accuracy level
	}
	m = m.WithAccuracy(opt.MatmulAccuracy)
	return opt, points, m, nil
}

// New opens sessions for m. runtime.Init must have succeeded.
func New(m *store.Model, opt Options, so runtime.SessionOptions) (*Analyzer, error) {
	opt, points, m, err := prepare(m, opt)
	if err != nil {
		return nil, err
	}
	cfg := m.Config()
	tok, err := m.Tokenizer()
	if err != nil {
		return nil, err
	}
	a := &Analyzer{model: m, cfg: cfg, tok: tok, opt: opt, maxTokenBytes: 1, budget: opt.BatchMiB << 20, anchored: m.Int8()}
	for id := 0; id < tok.VocabSize(); id++ {
		// +1: a SentencePiece token's leading space is dropped when decoded alone.
		a.maxTokenBytes = max(a.maxTokenBytes, len(tok.Decode([]int{id}))+1)
	}
	outs := make([]runtime.Output, len(points))
	a.widths = make([]int, len(points))
	for i, p := range points {
		a.widths[i] = cfg.Width(p.Site)
		outs[i] = runtime.Output{Name: p.Name(), Width: a.widths[i]}
	}
	// The baselines' sessions (the full-depth final norm and the head) open
	// beside the drift session: onnxruntime builds and packs each on one
	// thread, so on two cores `--surprisal` costs little extra start-up.
	var baseErr error
	opened := make(chan struct{})
	go func() {
		defer close(opened)
		if !opt.Surprisal {
			return
		}
		final := arch.Point{Site: SiteNorm, Index: cfg.Layers}
		a.final, baseErr = m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{final}}, arch.InputEmbeds,
			[]runtime.Output{{Name: final.Name(), Width: cfg.Dim}}, so)
		if baseErr == nil {
			a.head, baseErr = m.OpenSession(arch.GraphOptions{Head: true}, arch.HeadInput,
				[]runtime.Output{{Name: arch.LogitsName, Width: cfg.Vocab}}, so)
		}
	}()
	a.sess, err = m.OpenSession(arch.GraphOptions{Outputs: points}, arch.InputEmbeds, outs, so)
	<-opened
	if err := errors.Join(err, baseErr); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close releases the sessions.
func (a *Analyzer) Close() error {
	var errs []error
	if a.sess != nil {
		errs = append(errs, a.sess.Close())
	}
	if a.final != nil {
		errs = append(errs, a.final.Close())
	}
	if a.head != nil {
		errs = append(errs, a.head.Close())
	}
	return errors.Join(errs...)
}

// Passes returns the number of forward passes run so far.
func (a *Analyzer) Passes() int {
	n := a.sess.Runs()
	if a.final != nil {
		n += a.final.Runs() + a.head.Runs()
	}
	return n
}

// Options returns the analyzer's effective options.
func (a *Analyzer) Options() Options {
	o := a.opt
	o.HiddenStates = slices.Clone(o.HiddenStates)
	return o
}

// Config returns the model configuration.
func (a *Analyzer) Config() arch.Spec { return a.cfg }

// Token is one token of an analyzed prompt.
type Token struct {
	ID   int
	Text string // decoded surface text; may hold control characters
}

// Stat is a mean and standard deviation over nudges.
type Stat struct {
	Mean, Std float64
	N         int  // nudges behind Mean and Std
	Invalid   int  // nudges excluded for a zero or non-finite angle
	Defined   bool // false when no nudge gave a valid value (Mean and Std are then 0)
}

// Layer holds the drift at one measurement point: a site at an index.
type Layer struct {
	Site       Site   // where drift was read (Options.Site)
	Index      int    // index at Site (for logits: the number of layers)
	Ratio      Stat   // prompt-level ratio (undefined in isolation mode: zero value)
	Drift      Stat   // prompt-level drift angle, degrees
	TokenRatio []Stat // per-token ratio r_t
	TokenDrift []Stat // per-token drift angle, degrees
	// Aggregate[a] is the prompt-level ratio under aggregation a (see
	// drift.Aggregation), mean and spread over the K nudges;
	// Aggregate[drift.Flat] equals Ratio. Zero values in isolation mode.
	Aggregate [drift.NumAggregations]Stat
}

// Baselines are per-prompt scores from the model's own logits on the clean
// input, for comparison with drift.
type Baselines struct {
	Surprisal  float64   // mean -ln p(token | prefix) over positions 1.., nats
	Entropy    float64   // mean next-token entropy over the predicting positions, nats
	MaxSoftmax float64   // mean max-probability over the predicting positions
	Tokens     []float64 // per-token surprisal (position 0: 0, it is not predicted)
}

// Result is the analysis of one prompt.
type Result struct {
	Prompt      string
	Tokens      []Token
	Layers      []Layer // in the order of Options.HiddenStates
	InputAngle  Stat    // prompt-level input angle, degrees
	InputTokens []Stat  // per-token input angles, degrees
	Selected    int     // tokens counted in prompt-level ratios
	FirstToken  string  // "excluded" or "included"
	// Samples is the number of nudges drawn (per token in isolation
	// mode): Options.Samples, or fewer when Options.Stop ended sampling.
	Samples   int
	Baselines *Baselines
	Warnings  []string
}

// Layer returns the result at index h (results hold one site).
func (r *Result) Layer(h int) (*Layer, bool) {
	for i := range r.Layers {
		if r.Layers[i].Index == h {
			return &r.Layers[i], true
		}
	}
	return nil, false
}

// Tokenize checks and tokenizes a prompt the way Analyze does.
func (a *Analyzer) Tokenize(prompt string) ([]Token, error) {
	if !utf8.ValidString(prompt) {
		return nil, ErrInvalidUTF8
	}
	if strings.TrimSpace(prompt) == "" {
		return nil, fmt.Errorf("%w: nothing to score (the prompt is empty or only whitespace)", ErrEmptyPrompt)
	}
	if limit := satMul(a.opt.MaxTokens, a.maxTokenBytes); len(prompt) > limit {
		return nil, fmt.Errorf("%w: %d bytes is more than %d tokens can hold (refused without tokenizing; raise --max-tokens up to the model's context of %d)",
			ErrTooLong, len(prompt), a.opt.MaxTokens, a.cfg.ContextLength)
	}
	toks, err := a.tok.Encode(prompt)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("%w: the tokenizer produced no tokens", ErrEmptyPrompt)
	}
	if len(toks) > a.opt.MaxTokens {
		return nil, fmt.Errorf("%w: %d tokens, limit %d (refused rather than truncated, so that no score describes text it did not see; raise --max-tokens up to the model's context of %d)",
			ErrTooLong, len(toks), a.opt.MaxTokens, a.cfg.ContextLength)
	}
	out := make([]Token, len(toks))
	for i, t := range toks {
		out[i] = Token{ID: t.ID, Text: t.Text}
	}
	return out, nil
}

// MinInputAngle (degrees) is the input angle below which float32 rounding
// inside the model, not the nudge, sets the drift; smaller nudges are
// reported with a warning.
const MinInputAngle = 0.01

// MaxBatchRows is the default cap on prompt copies per forward pass.
const MaxBatchRows = 64

// satMul is a*b for non-negative a and b, or math.MaxInt when that
// overflows (a manifest may claim any context length).
func satMul(a, b int) int {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

// logitsCopies is how many [T, vocab] float32 buffers one row of a logits
// output keeps alive at once: the projection, its reshape, the Go copy.
const logitsCopies = 3

// rowsPerBatch bounds how many [T, d] copies go into one forward pass, from
// an estimate of the largest live tensors per copy: the residual stream and
// its outputs, attention scores, the MLP, and logits (vocab wide) when
// they are an output. At least one row runs, whatever its size.
func (a *Analyzer) rowsPerBatch(T int) int {
	n := a.budget / max(a.rowBytes(T), 1)
	if a.anchored {
		return max(2, min(n, a.rowsLimit())) // the clean anchor and one nudge at least
	}
	return max(1, min(n, a.rowsLimit()))
}

// rowsLimit is the most copies one forward pass takes (BatchRows or
// MaxBatchRows).
func (a *Analyzer) rowsLimit() int {
	if a.opt.BatchRows > 0 {
		return a.opt.BatchRows
	}
	return MaxBatchRows
}

// rowBytes estimates the bytes of the largest live tensors of one [T, d]
// copy in a forward pass (see rowsPerBatch).
func (a *Analyzer) rowBytes(T int) int {
	c := a.cfg
	outputs := 0
	for _, w := range a.widths {
		outputs += w
	}
	if a.opt.Site == SiteLogits {
		outputs *= logitsCopies
	}
	return satMul(4, satMul(T, 4*c.Dim+outputs+3*c.FFN)+satMul(2*c.Heads, satMul(T, T)))
}

// headPositions is how many positions one run of the output head projects
// onto the vocabulary within the batch memory budget (at least one).
func (a *Analyzer) headPositions() int {
	return max(1, a.budget/max(1, 4*logitsCopies*a.cfg.Vocab))
}

// Analyze scores one prompt.
func (a *Analyzer) Analyze(prompt string) (*Result, error) {
	promptKey := PromptKey(prompt)
	toks, err := a.Tokenize(prompt)
	if err != nil {
		return nil, err
	}
	T, d := len(toks), a.cfg.Dim
	ids := make([]int, T)
	for i, t := range toks {
		ids[i] = t.ID
	}
	clean, err := a.model.Embeddings(ids)
	if err != nil {
		return nil, err
	}
	emb := drift.Matrix{Rows: T, Cols: d, Data: clean}
	res := &Result{Prompt: prompt, Tokens: toks, FirstToken: "excluded"}
	skipFirst := !a.opt.IncludeFirst
	if a.opt.IncludeFirst {
		res.FirstToken = "included"
	} else if T == 1 {
		// A one-token prompt has nothing but position 0 to measure.
		skipFirst = false
		res.FirstToken = "included (only token)"
		res.Warnings = append(res.Warnings, "the prompt is a single token, so position 0 (normally excluded as the attention sink) is the whole prompt")
	}
	sel, err := drift.Select(T, skipFirst, nil)
	if err != nil {
		return nil, err
	}
	res.Selected = sel.Count()

	// The nudge plan: K whole-prompt nudges, or K nudges of each token.
	type job struct{ token, nudge int }
	var jobs []job
	for t := 0; t < T; t++ {
		if !a.opt.Isolate && t > 0 {
			break
		}
		for k := 0; k < a.opt.Samples; k++ {
			jobs = append(jobs, job{token: t, nudge: k})
		}
	}

	rows := a.rowsPerBatch(T)
	n := T * d
	var acc *drift.Accumulator
	w := a.widths
	hs := len(a.opt.HiddenStates)
	cleanHidden := make([]drift.Matrix, hs)
	nudgedEmb := drift.Matrix{Rows: T, Cols: d}
	nudgedHidden := make([]drift.Matrix, hs)

	// Nudges are drawn up to limit: all of them, or in rounds when K is
	// adaptive. Batch 0 carries the clean copy first, then nudges; later
	// batches only nudges.
	limit := len(jobs)
	if a.opt.Stop != nil && !a.opt.Isolate {
		limit = min(FirstRound, len(jobs))
	}
	next := 0
	first := true
	for {
		for first || next < limit {
			anchor := first || a.anchored
			count := min(rows, limit-next+boolInt(anchor))
			batch := make([]float32, count*n)
			off := 0
			if anchor {
				copy(batch, clean)
				off = 1
			}
			for i := off; i < count; i++ {
				j := jobs[next+i-off]
				opt := drift.NudgeOptions{Sigma: a.opt.Sigma, Scale: a.opt.Noise, Isolate: a.opt.Isolate, Token: j.token}
				if err := drift.NudgeBatch(batch[i*n:(i+1)*n], emb, opt, a.opt.Seed, promptKey, j.nudge, 1); err != nil {
					return nil, err
				}
			}
			outs, err := a.sess.Run(batch, count, T)
			if err != nil {
				return nil, err
			}
			if first {
				for h := range cleanHidden {
					// Copy: the batch buffer is reused by nothing, but keep clean states independent.
					cleanHidden[h] = drift.Matrix{Rows: T, Cols: w[h], Data: append([]float32(nil), outs[h][:T*w[h]]...)}
				}
				if acc, err = drift.NewAccumulator(emb, cleanHidden, sel); err != nil {
					return nil, err
				}
			}
			for i := off; i < count; i++ {
				j := jobs[next+i-off]
				nudgedEmb.Data = batch[i*n : (i+1)*n]
				for h := range nudgedHidden {
					nudgedHidden[h] = drift.Matrix{Rows: T, Cols: w[h], Data: outs[h][i*T*w[h] : (i+1)*T*w[h]]}
				}
				if a.opt.Isolate {
					err = acc.AddIsolated(j.token, nudgedEmb, nudgedHidden)
				} else {
					err = acc.Add(nudgedEmb, nudgedHidden)
				}
				if err != nil {
					return nil, err
				}
			}
			next += count - off
			first = false
		}
		if limit == len(jobs) || a.opt.Stop(a.summary(res, acc, limit)) {
			break
		}
		limit = min(2*limit, len(jobs))
	}
	used := limit
	if a.opt.Isolate {
		used = a.opt.Samples
	}
	res = a.summary(res, acc, used)
	if a.final != nil {
		b, err := a.baselines(clean, ids)
		if err != nil {
			return nil, err
		}
		res.Baselines = b
	}
	return res, nil
}

// summary returns base (a prompt's tokens, selection and warnings) with
// the statistics of the used nudges accumulated in acc.
func (a *Analyzer) summary(base *Result, acc *drift.Accumulator, used int) *Result {
	r := acc.Result()
	T := len(base.Tokens)
	res := *base
	res.Warnings = slices.Clone(base.Warnings)
	res.Samples = used
	res.Layers = nil
	res.InputAngle = stat(r.Input)
	if in := res.InputAngle; in.Defined && in.Mean < MinInputAngle {
		res.Warnings = append(res.Warnings, fmt.Sprintf("the input angle is only %.2g°: at this size float32 rounding in the model dominates the drift, so ratios are unreliable; use a larger --sigma", in.Mean))
	}
	res.InputTokens = make([]Stat, T)
	for t, s := range r.InputTokens {
		res.InputTokens[t] = stat(s)
	}
	for i, h := range a.opt.HiddenStates {
		lr := r.Layers[i]
		l := Layer{Site: a.opt.Site, Index: h, TokenRatio: make([]Stat, T), TokenDrift: make([]Stat, T)}
		if !a.opt.Isolate {
			l.Ratio, l.Drift = stat(lr.Prompt), stat(lr.PromptDrift)
			for k, s := range lr.Aggregate {
				l.Aggregate[k] = stat(s)
			}
		}
		for t := 0; t < T; t++ {
			l.TokenRatio[t], l.TokenDrift[t] = stat(lr.Tokens[t]), stat(lr.TokenDrift[t])
		}
		if lr.Prompt.Invalid > 0 && !a.opt.Isolate {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d of %d nudges gave a zero or non-finite angle and were left out", a.pointName(h), lr.Prompt.Invalid, used))
		}
		tokInvalid := 0
		for _, s := range lr.Tokens {
			tokInvalid += s.Invalid
		}
		if tokInvalid > 0 {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s: %d per-token values (of %d tokens × %d nudges) had a zero or non-finite angle and were left out (is sigma too small?)", a.pointName(h), tokInvalid, T, used))
		}
		res.Layers = append(res.Layers, l)
	}
	return &res
}

// PromptKey is the prompt's part of the noise stream's seed: a hash of its
// text, so a prompt gets the same nudges (and the same scores) whatever
// other prompts are scored with it and in whatever order.
func PromptKey(prompt string) int {
	h := fnv.New64a()
	h.Write([]byte(prompt))
	return int(h.Sum64() >> 1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func stat(s drift.Stats) Stat {
	if s.Undefined {
		return Stat{Invalid: s.Invalid}
	}
	return Stat{Mean: s.Mean, Std: s.Std, N: s.N, Invalid: s.Invalid, Defined: true}
}

// pointName names the measurement point at index h of the analyzer's site
// for messages: "hidden state 15" for the residual stream, else "attn.15".
func (a *Analyzer) pointName(h int) string {
	if a.opt.Site == SiteResid {
		return fmt.Sprintf("hidden state %d", h)
	}
	return arch.Point{Site: a.opt.Site, Index: h}.Name()
}

// baselines runs the full model once on the clean embeddings, up to the
// final norm, then projects the predicting positions onto the vocabulary a
// slice at a time (within the batch memory budget) and derives surprisal,
// entropy and max-softmax from the logits.
func (a *Analyzer) baselines(clean []float32, ids []int) (*Baselines, error) {
	T, d := len(ids), a.cfg.Dim
	var acc baselineAcc
	acc.init(T)
	if T < 2 {
		return acc.result(), nil
	}
	outs, err := a.final.Run(clean, 1, T)
	if err != nil {
		return nil, err
	}
	normed := outs[0]
	// Position t-1 predicts token t: positions 0..T-2 are projected.
	step := a.headPositions()
	for s := 0; s < T-1; s += step {
		e := min(s+step, T-1)
		lg, err := a.head.Run(normed[s*d:e*d], 1, e-s)
		if err != nil {
			return nil, err
		}
		acc.add(lg[0], ids[s+1:e+1], a.cfg.Vocab)
	}
	return acc.result(), nil
}

// LogitBaselines computes per-prompt logit baselines from [T, V] logits:
// position t-1 predicts token t.
func LogitBaselines(logits []float32, ids []int, V int) *Baselines {
	var acc baselineAcc
	acc.init(len(ids))
	if len(ids) >= 2 {
		acc.add(logits[:(len(ids)-1)*V], ids[1:], V)
	}
	return acc.result()
}

// baselineAcc accumulates logit baselines over slices of positions.
type baselineAcc struct {
	b *Baselines
	n int // predicted tokens so far
}

func (acc *baselineAcc) init(T int) { acc.b = &Baselines{Tokens: make([]float64, T)} }

// add includes rows of [len(next), V] logits, row j predicting token
// next[j], which is token acc.n+1+j of the prompt.
func (acc *baselineAcc) add(logits []float32, next []int, V int) {
	b := acc.b
	for j, id := range next {
		row := logits[j*V : (j+1)*V]
		mx := math.Inf(-1)
		for _, v := range row {
			mx = math.Max(mx, float64(v))
		}
		var z, ez float64
		for _, v := range row {
			e := math.Exp(float64(v) - mx)
			z += e
			ez += e * (float64(v) - mx)
		}
		logZ := math.Log(z)
		s := -(float64(row[id]) - mx - logZ)
		acc.n++
		b.Tokens[acc.n] = s
		b.Surprisal += s
		b.Entropy += logZ - ez/z
		b.MaxSoftmax += 1 / z
	}
}

func (acc *baselineAcc) result() *Baselines {
	if acc.n > 0 {
		n := float64(acc.n)
		acc.b.Surprisal /= n
		acc.b.Entropy /= n
		acc.b.MaxSoftmax /= n
	}
	return acc.b
}
