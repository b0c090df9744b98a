package lmood

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
)

// CorpusSummary accumulates score records of a corpus into a small
// summary: counts, OOD-score quantiles per hidden state and the most
// unusual prompts. Partial summaries merge (for distributed runs); the
// result does not depend on the order records arrive or merge in.
type CorpusSummary struct {
	Records int               `json:"records"`
	Errors  int               `json:"errors"`
	OOD     map[int][]float64 `json:"ood"` // per hidden state
	Top     []CorpusTopPrompt `json:"top"` // most unusual first, at most TopN
	TopN    int               `json:"top_n"`
}

// CorpusTopPrompt is one of the most unusual prompts of a corpus.
type CorpusTopPrompt struct {
	ID     json.RawMessage `json:"id"`
	Prompt string          `json:"prompt"`
	Layer  int             `json:"layer"`
	OOD    float64         `json:"ood"`
}

// NewCorpusSummary starts a summary that keeps the topN most unusual
// prompts.
func NewCorpusSummary(topN int) CorpusSummary {
	return CorpusSummary{OOD: map[int][]float64{}, TopN: topN}
}

// Add counts one record.
func (c *CorpusSummary) Add(rec ScoreRecord) {
	c.Records++
	if rec.Error != "" {
		c.Errors++
		return
	}
	if c.OOD == nil {
		c.OOD = map[int][]float64{}
	}
	c.OOD[rec.Layer] = append(c.OOD[rec.Layer], rec.OOD)
	c.Top = topPrompts(append(c.Top, CorpusTopPrompt{ID: rec.ID, Prompt: rec.Prompt, Layer: rec.Layer, OOD: rec.OOD}), c.TopN)
}

// Merge adds another partial summary of the same corpus.
func (c *CorpusSummary) Merge(o CorpusSummary) {
	c.Records += o.Records
	c.Errors += o.Errors
	if c.OOD == nil {
		c.OOD = map[int][]float64{}
	}
	for l, v := range o.OOD {
		c.OOD[l] = append(c.OOD[l], v...)
	}
	if o.TopN > c.TopN {
		c.TopN = o.TopN
	}
	c.Top = topPrompts(append(c.Top, o.Top...), c.TopN)
}

// topPrompts sorts by OOD score (highest first, ties by id) and keeps n.
func topPrompts(ps []CorpusTopPrompt, n int) []CorpusTopPrompt {
	slices.SortFunc(ps, func(a, b CorpusTopPrompt) int {
		switch {
		case a.OOD > b.OOD:
			return -1
		case a.OOD < b.OOD:
			return 1
		}
		return strings.Compare(string(a.ID), string(b.ID))
	})
	if len(ps) > n {
		ps = ps[:n]
	}
	return ps
}

// LayerQuantiles are OOD-score statistics of one hidden state.
type LayerQuantiles struct {
	Layer int     `json:"layer"`
	Count int     `json:"count"`
	Mean  float64 `json:"mean"`
	Min   float64 `json:"min"`
	P05   float64 `json:"p05"`
	P25   float64 `json:"p25"`
	P50   float64 `json:"p50"`
	P75   float64 `json:"p75"`
	P95   float64 `json:"p95"`
	Max   float64 `json:"max"`
}

// CorpusReport is the summary a corpus run writes.
type CorpusReport struct {
	Records int               `json:"records"`
	Errors  int               `json:"errors"`
	Layers  []LayerQuantiles  `json:"layers"`
	Top     []CorpusTopPrompt `json:"top"`
}

// Report computes the summary: quantiles interpolate linearly between
// order statistics.
func (c *CorpusSummary) Report() CorpusReport {
	r := CorpusReport{Records: c.Records, Errors: c.Errors, Layers: []LayerQuantiles{}, Top: c.Top}
	if r.Top == nil {
		r.Top = []CorpusTopPrompt{}
	}
	layers := make([]int, 0, len(c.OOD))
	for l := range c.OOD {
		layers = append(layers, l)
	}
	slices.Sort(layers)
	for _, l := range layers {
		v := slices.Clone(c.OOD[l])
		slices.Sort(v)
		sum := 0.0
		for _, x := range v {
			sum += x
		}
		r.Layers = append(r.Layers, LayerQuantiles{
			Layer: l, Count: len(v), Mean: sum / float64(len(v)), Min: v[0], Max: v[len(v)-1],
			P05: quantile(v, 0.05), P25: quantile(v, 0.25), P50: quantile(v, 0.5), P75: quantile(v, 0.75), P95: quantile(v, 0.95),
		})
	}
	return r
}

// quantile of sorted non-empty v at q in [0, 1], by linear interpolation.
func quantile(v []float64, q float64) float64 {
	pos := q * float64(len(v)-1)
	lo := int(math.Floor(pos))
	if lo >= len(v)-1 {
		return v[len(v)-1]
	}
	return v[lo] + (pos-float64(lo))*(v[lo+1]-v[lo])
}
