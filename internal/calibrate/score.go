package calibrate

import (
	"fmt"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

// Value is one raw score placed in its reference distribution, oriented
// so that higher means more unusual.
type Value struct {
	// Raw is the value compared: ln-ratio for drift, nats for surprisal
	// and entropy, a probability for max-softmax.
	Raw float64 `json:"raw"`
	// Percentile is the fraction of reference values less unusual than Raw
	// (in the OOD orientation): 0.97 = "more unusual than 97% of the
	// reference".
	Percentile float64 `json:"percentile"`
	// Z is the z-score against the reference, in the OOD orientation.
	Z float64 `json:"z"`
	// P is the upper-tail p-value in the OOD orientation, at least
	// 1/(N+1) for a reference of N values.
	P float64 `json:"p"`
	// Extrapolated says the reference had too few values at this token's
	// position (or none that long), so an earlier position bucket stood in.
	Extrapolated bool `json:"extrapolated,omitempty"`
	// Against names the reference values compared with. Prompt-level
	// drift: "17–32 tokens" (the prompt's length bucket or, when
	// Extrapolated, the nearest one with enough values). A token, when the
	// calibration has token classes: its class ("rare tokens") when the
	// reference has at least MinBucket tokens of that class in the
	// token's position bucket, else "any tokens" (every token of the
	// position bucket).
	Against string `json:"against,omitempty"`
}

// place puts x in d, higher-is-unusual when upper, else lower-is-unusual.
func place(d *Dist, x float64, upper bool) Value {
	v := Value{Raw: x}
	if upper {
		v.Percentile, v.Z, v.P = d.CDF(x), d.Z(x), d.UpperP(x)
	} else {
		v.Percentile, v.Z, v.P = 1-d.CDF(x), -d.Z(x), d.LowerP(x)
	}
	return v
}

// Combined is a combination of calibrated component p-values.
type Combined struct {
	Components []string `json:"components"` // e.g. ["drift", "surprisal", "entropy"]
	Fisher     float64  `json:"fisher"`     // −2 Σ ln p
	FisherP    float64  `json:"fisher_p"`   // its χ² tail (a heuristic: components are not independent)
	MinP       float64  `json:"min_p"`      // min(1, k·min p)
}

func combine(names []string, ps []float64) *Combined {
	stat, fp, err := Fisher(ps...)
	if err != nil {
		return nil
	}
	mp, _ := MinP(ps...)
	return &Combined{Components: names, Fisher: stat, FisherP: fp, MinP: mp}
}

// LayerScore is one measurement point of a calibrated result.
type LayerScore struct {
	Index int `json:"index"`
	// Prompt is the prompt-level drift (nil when undefined, e.g. in
	// isolation mode).
	Prompt *Value `json:"prompt,omitempty"`
	// Tokens are per-token drift values (nil entries where undefined).
	Tokens []*Value `json:"tokens"`
	// Combined is the prompt-level combination of drift with the logit
	// baselines' surprisal and entropy, when all are available.
	Combined *Combined `json:"combined,omitempty"`
	// TokenCombined combines per-token drift with per-token surprisal
	// (positions 1..; position 0 is not predicted and has none).
	TokenCombined []*Combined `json:"token_combined,omitempty"`
}

// Scores is a result placed in a reference.
type Scores struct {
	Reference string       `json:"reference"` // the reference's description
	Layers    []LayerScore `json:"layers"`
	// Logit baselines, when the result and the reference both have them.
	Surprisal      *Value   `json:"surprisal,omitempty"`
	Entropy        *Value   `json:"entropy,omitempty"`
	MaxSoftmax     *Value   `json:"max_softmax,omitempty"`
	TokenSurprisal []*Value `json:"token_surprisal,omitempty"`
	Warnings       []string `json:"warnings,omitempty"`
}

// Score places a result in the reference. dir orients drift (Pinch: a
// lower ratio is more unusual); surprisal and entropy are unusual when
// high, max-softmax when low. agg must be the Aggregator the reference was
// built with (nil = LnRatio). Every layer of res must be calibrated.
func (r *Reference) Score(res *analyze.Result, dir drift.Direction, agg Aggregator) (*Scores, error) {
	if agg == nil {
		agg = LnRatio
	}
	up := dir == drift.Expand
	s := &Scores{Reference: r.Identity.Reference}
	extrapolated := false
	lengthNote := ""
	pooled := 0 // tokens whose class cell was too thin
	// token places the per-token value x of token t among ds (by position)
	// or byClass (by class and position).
	token := func(ds []Dist, byClass [][]Dist, t int, x float64, upper bool) *Value {
		k := r.Classes.Class(res.Tokens[t].ID)
		d, ext, pool := r.classDist(ds, byClass, t, k)
		if d == nil {
			return nil
		}
		v := place(d, x, upper)
		v.Extrapolated = ext
		extrapolated = extrapolated || ext
		if r.Classes.N() > 0 {
			v.Against = r.Classes.Label(k)
			if pool {
				v.Against = "any tokens"
				pooled++
			}
		}
		return &v
	}
	for i := range res.Layers {
		l := &res.Layers[i]
		if string(l.Site) != r.Identity.Site {
			return nil, fmt.Errorf("calibrate: %w: result measured at %s, calibration at %s", ErrMismatch, l.Site, r.Identity.Site)
		}
		ref, ok := r.Layer(l.Index)
		if !ok {
			return nil, fmt.Errorf("calibrate: %w: %s.%d is not calibrated (calibrated: %v)", ErrMismatch, l.Site, l.Index, r.Identity.HiddenStates)
		}
		ls := LayerScore{Index: l.Index, Tokens: make([]*Value, len(l.TokenRatio))}
		if x, ok := agg(res, l); ok {
			if d, label, note := ref.promptDist(len(res.Tokens)); !d.Empty() {
				v := place(d, x, up)
				v.Against, v.Extrapolated = label, note != ""
				ls.Prompt = &v
				if note != "" {
					lengthNote = note
				}
			}
		}
		for t, st := range l.TokenRatio {
			x, ok := lnStat(st)
			if !ok {
				continue
			}
			ls.Tokens[t] = token(ref.Tokens, ref.TokensByClass, t, x, up)
		}
		s.Layers = append(s.Layers, ls)
	}
	if bl := res.Baselines; bl != nil && len(res.Tokens) > 1 && !r.Surprisal.Empty() {
		sv, ev, mv := place(&r.Surprisal, bl.Surprisal, true), place(&r.Entropy, bl.Entropy, true), place(&r.MaxSoftmax, bl.MaxSoftmax, false)
		s.Surprisal, s.Entropy, s.MaxSoftmax = &sv, &ev, &mv
		s.TokenSurprisal = make([]*Value, len(bl.Tokens))
		for t := 1; t < len(bl.Tokens); t++ {
			s.TokenSurprisal[t] = token(r.TokenSurprisal, r.TokenSurprisalByClass, t, bl.Tokens[t], true)
		}
		for i := range s.Layers {
			ls := &s.Layers[i]
			if ls.Prompt != nil {
				ls.Combined = combine([]string{"drift", "surprisal", "entropy"}, []float64{ls.Prompt.P, sv.P, ev.P})
			}
			ls.TokenCombined = make([]*Combined, len(ls.Tokens))
			for t := 1; t < len(ls.Tokens); t++ {
				if ls.Tokens[t] != nil && s.TokenSurprisal[t] != nil {
					ls.TokenCombined[t] = combine([]string{"drift", "surprisal"}, []float64{ls.Tokens[t].P, s.TokenSurprisal[t].P})
				}
			}
		}
	}
	if lengthNote != "" {
		s.Warnings = append(s.Warnings, lengthNote)
	}
	if pooled > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d per-token values were compared with every reference token of their position (their token class, by %s, had fewer than %d reference values there)", pooled, r.Classes.Scheme, MinBucket))
	}
	if extrapolated {
		s.Warnings = append(s.Warnings, fmt.Sprintf("the prompt has %d tokens; the calibration's texts reached position %d and some positions had too few reference values, so later tokens were compared with an earlier position bucket", len(res.Tokens), r.MaxPosition))
	}
	return s, nil
}
