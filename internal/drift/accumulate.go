package drift

import (
	"errors"
	"fmt"
	"math"
)

// InputAngles holds the input angles of one nudge: per token and over the
// selection. Reuse one value across nudges to avoid allocation.
type InputAngles struct {
	Tokens   []float64
	TokenOK  []bool
	Prompt   float64
	PromptOK bool
}

// ComputeInputAngles fills in with the angles between the clean embeddings
// and one nudged copy, reusing in's slices when large enough.
func ComputeInputAngles(in *InputAngles, clean, nudged Matrix, sel Selection) error {
	if err := sameShape(clean, nudged); err != nil {
		return err
	}
	in.Tokens = grow(in.Tokens, clean.Rows)
	in.TokenOK = growBool(in.TokenOK, clean.Rows)
	if _, err := TokenAnglesDeg(in.Tokens, in.TokenOK, clean, nudged); err != nil {
		return err
	}
	var err error
	in.Prompt, in.PromptOK, err = SelectionAngleDeg(clean, nudged, sel)
	return err
}

// LayerResult summarises the K nudges at one hidden state.
type LayerResult struct {
	// Prompt is the prompt-level ratio: angle over the flattened selected
	// rows of the hidden state divided by the same angle of the input.
	Prompt Stats
	// PromptDrift is the prompt-level drift angle in degrees.
	PromptDrift Stats
	// Tokens[t] is the per-token ratio r_t and TokenDrift[t] the per-token
	// drift angle in degrees; computed for every position, selected or not.
	Tokens     []Stats
	TokenDrift []Stats
	// Aggregate[a] is the prompt-level ratio under aggregation a: for each
	// nudge the per-token ratios of the selected tokens are combined (see
	// [Aggregation]) and the K values exp(score_k) are summarised.
	// Aggregate[Flat] equals Prompt. A nudge with no valid selected token
	// counts as invalid. Undefined in isolation mode (no nudge moves the
	// whole prompt).
	Aggregate [NumAggregations]Stats
}

// LayerAccumulator streams nudges for one hidden state. It keeps a
// reference to the clean hidden state, which must not change while in use.
type LayerAccumulator struct {
	clean       Matrix
	sel         Selection
	prompt      Running
	promptDrift Running
	tokens      []Running
	tokenDrift  []Running
	ang         []float64
	ok          []bool
	// aggregate[a] collects exp(score_k) of every by-token aggregation
	// (aggregate[Flat] is unused: prompt holds it); logs is scratch.
	aggregate [NumAggregations]Running
	logs      []float64
}

// NewLayerAccumulator starts accumulating for the clean hidden state clean
// with prompt-level selection sel (nil = all rows).
func NewLayerAccumulator(clean Matrix, sel Selection) (*LayerAccumulator, error) {
	if err := clean.Validate(); err != nil {
		return nil, err
	}
	if sel != nil && len(sel) != clean.Rows {
		return nil, fmt.Errorf("drift: selection has %d entries, hidden state %d rows", len(sel), clean.Rows)
	}
	return &LayerAccumulator{
		clean:      clean,
		sel:        sel,
		tokens:     make([]Running, clean.Rows),
		tokenDrift: make([]Running, clean.Rows),
		ang:        make([]float64, clean.Rows),
		ok:         make([]bool, clean.Rows),
		logs:       make([]float64, 0, clean.Rows),
	}, nil
}

// Add includes one whole-prompt nudge: nudged is the hidden state for the
// nudged input and in its input angles (from [ComputeInputAngles]).
func (l *LayerAccumulator) Add(nudged Matrix, in *InputAngles) error {
	if err := sameShape(l.clean, nudged); err != nil {
		return err
	}
	if in == nil || len(in.Tokens) != l.clean.Rows || len(in.TokenOK) != l.clean.Rows {
		return fmt.Errorf("drift: input angles do not match %d tokens", l.clean.Rows)
	}
	if _, err := TokenAnglesDeg(l.ang, l.ok, l.clean, nudged); err != nil {
		return err
	}
	l.logs = l.logs[:0]
	for t := range l.ang {
		l.tokenDrift[t].Add(l.ang[t], l.ok[t])
		r, ok := Ratio(l.ang[t], l.ok[t], in.Tokens[t], in.TokenOK[t])
		l.tokens[t].Add(r, ok)
		if ok && (l.sel == nil || l.sel[t]) {
			l.logs = append(l.logs, logRatio(r))
		}
	}
	l.addAggregates()
	d, ok, err := SelectionAngleDeg(l.clean, nudged, l.sel)
	if err != nil {
		return err
	}
	l.promptDrift.Add(d, ok)
	l.prompt.Add(Ratio(d, ok, in.Prompt, in.PromptOK))
	return nil
}

// addAggregates adds this nudge's by-token aggregations of the log-ratios
// in l.logs.
func (l *LayerAccumulator) addAggregates() {
	for a := Flat + 1; a < NumAggregations; a++ {
		// AggregateLogs sorts in place; every aggregation is order-free.
		s, ok := AggregateLogs(a, l.logs)
		l.aggregate[a].Add(math.Exp(s), ok)
	}
}

// AddIsolated includes one isolation nudge of token t with the given input
// angle of that token; only token t's statistics change.
func (l *LayerAccumulator) AddIsolated(t int, nudged Matrix, input float64, inputOK bool) error {
	if err := sameShape(l.clean, nudged); err != nil {
		return err
	}
	if t < 0 || t >= l.clean.Rows {
		return fmt.Errorf("drift: token %d out of range [0, %d)", t, l.clean.Rows)
	}
	d, ok := AngleDeg(l.clean.Row(t), nudged.Row(t))
	l.tokenDrift[t].Add(d, ok)
	l.tokens[t].Add(Ratio(d, ok, input, inputOK))
	return nil
}

// Result returns the statistics so far.
func (l *LayerAccumulator) Result() LayerResult {
	r := LayerResult{
		Prompt:      l.prompt.Stats(),
		PromptDrift: l.promptDrift.Stats(),
		Tokens:      make([]Stats, len(l.tokens)),
		TokenDrift:  make([]Stats, len(l.tokens)),
	}
	for t := range l.tokens {
		r.Tokens[t] = l.tokens[t].Stats()
		r.TokenDrift[t] = l.tokenDrift[t].Stats()
	}
	r.Aggregate[Flat] = r.Prompt
	for a := Flat + 1; a < NumAggregations; a++ {
		r.Aggregate[a] = l.aggregate[a].Stats()
	}
	return r
}

// Result summarises an [Accumulator].
type Result struct {
	// Input and InputTokens summarise the input angles in degrees
	// (prompt-level over the selection, and per token).
	Input       Stats
	InputTokens []Stats
	// Layers[i] corresponds to the i-th clean hidden state passed to
	// [NewAccumulator].
	Layers []LayerResult
}

type accMode int

const (
	modeUnset accMode = iota
	modeWhole
	modeIsolated
)

// Accumulator streams K nudges of one prompt for many hidden states at
// once: the caller feeds nudges one at a time (for example item k of each
// [K, T, d] batch output, see [BatchItem]) in any order. Whole-prompt and
// isolation nudges cannot be mixed in one Accumulator. It keeps references
// to the clean matrices, which must not change while in use.
type Accumulator struct {
	emb      Matrix
	sel      Selection
	in       InputAngles
	input    Running
	inputTok []Running
	layers   []*LayerAccumulator
	mode     accMode
}

// NewAccumulator starts accumulating for a prompt with clean embeddings
// emb and clean hidden states hidden (any subset of layers, in the
// caller's order), all [T, ·]. sel selects rows for prompt-level ratios
// (see [Select]; nil = all rows).
func NewAccumulator(emb Matrix, hidden []Matrix, sel Selection) (*Accumulator, error) {
	if err := emb.Validate(); err != nil {
		return nil, err
	}
	if sel != nil && len(sel) != emb.Rows {
		return nil, fmt.Errorf("drift: selection has %d entries, embeddings %d rows", len(sel), emb.Rows)
	}
	a := &Accumulator{emb: emb, sel: sel, inputTok: make([]Running, emb.Rows)}
	for i, h := range hidden {
		if h.Rows != emb.Rows {
			return nil, fmt.Errorf("drift: hidden state %d has %d rows, embeddings %d", i, h.Rows, emb.Rows)
		}
		l, err := NewLayerAccumulator(h, sel)
		if err != nil {
			return nil, fmt.Errorf("drift: hidden state %d: %w", i, err)
		}
		a.layers = append(a.layers, l)
	}
	return a, nil
}

var errMixed = errors.New("drift: cannot mix whole-prompt and isolation nudges in one accumulator")

func (a *Accumulator) checkNudge(mode accMode, emb Matrix, hidden []Matrix) error {
	if a.mode != modeUnset && a.mode != mode {
		return errMixed
	}
	if len(hidden) != len(a.layers) {
		return fmt.Errorf("drift: got %d nudged hidden states, want %d", len(hidden), len(a.layers))
	}
	if err := sameShape(a.emb, emb); err != nil {
		return err
	}
	for i, h := range hidden {
		if err := sameShape(a.layers[i].clean, h); err != nil {
			return fmt.Errorf("drift: hidden state %d: %w", i, err)
		}
	}
	a.mode = mode
	return nil
}

// Add includes one whole-prompt nudge: emb are the nudged embeddings and
// hidden[i] the matching nudged hidden states (same order as at creation).
func (a *Accumulator) Add(emb Matrix, hidden []Matrix) error {
	if err := a.checkNudge(modeWhole, emb, hidden); err != nil {
		return err
	}
	if err := ComputeInputAngles(&a.in, a.emb, emb, a.sel); err != nil {
		return err
	}
	a.input.Add(a.in.Prompt, a.in.PromptOK)
	for t := range a.inputTok {
		a.inputTok[t].Add(a.in.Tokens[t], a.in.TokenOK[t])
	}
	for i, l := range a.layers {
		if err := l.Add(hidden[i], &a.in); err != nil {
			return fmt.Errorf("drift: hidden state %d: %w", i, err)
		}
	}
	return nil
}

// AddIsolated includes one isolation nudge of token t (see
// NudgeOptions.Isolate); only token t's per-token statistics change, and
// prompt-level statistics stay undefined.
func (a *Accumulator) AddIsolated(t int, emb Matrix, hidden []Matrix) error {
	if t < 0 || t >= a.emb.Rows {
		return fmt.Errorf("drift: token %d out of range [0, %d)", t, a.emb.Rows)
	}
	if err := a.checkNudge(modeIsolated, emb, hidden); err != nil {
		return err
	}
	in, ok := AngleDeg(a.emb.Row(t), emb.Row(t))
	a.inputTok[t].Add(in, ok)
	for i, l := range a.layers {
		if err := l.AddIsolated(t, hidden[i], in, ok); err != nil {
			return fmt.Errorf("drift: hidden state %d: %w", i, err)
		}
	}
	return nil
}

// Result returns the statistics so far.
func (a *Accumulator) Result() Result {
	r := Result{
		Input:       a.input.Stats(),
		InputTokens: make([]Stats, len(a.inputTok)),
		Layers:      make([]LayerResult, len(a.layers)),
	}
	for t := range a.inputTok {
		r.InputTokens[t] = a.inputTok[t].Stats()
	}
	for i, l := range a.layers {
		r.Layers[i] = l.Result()
	}
	return r
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

func growBool(s []bool, n int) []bool {
	if cap(s) < n {
		return make([]bool, n)
	}
	return s[:n]
}
