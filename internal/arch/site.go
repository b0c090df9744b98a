// Package arch holds what every model family shares: the vocabulary of
// measurement sites, the places in a decoder-only transformer where drift
// can be read. Families (arch/llama, ...) build graphs that expose them.
package arch

import (
	"fmt"
	"strings"
)

// Site names a place in the model where a vector per token is read. The
// names follow TransformerLens, shortened; they are the same in code, JSON,
// flags and docs.
type Site string

// The measurement sites. Index i of a site counts blocks from 1 (block i is
// GGUF's blk.(i-1)); index 0 is the input embeddings.
const (
	// SiteResid is the residual stream after block i (i = 0..n; 0 = the
	// embeddings fed in), Hugging Face's hidden_states[i].
	SiteResid Site = "resid"
	// SiteNorm is the normalised residual the next consumer reads: for
	// i < n, RMSNorm(resid.i) times block i+1's attention-norm weight (what
	// block i+1's attention sees); for i = n, the final norm's output (what
	// the output head sees). i = 0..n.
	SiteNorm Site = "norm"
	// SiteAttn is the output of block i's attention after its output
	// projection, before it is added to the residual stream (i = 1..n).
	SiteAttn Site = "attn"
	// SiteMLP is the output of block i's MLP, before it is added to the
	// residual stream (i = 1..n): resid.i = resid.(i-1) + attn.i + mlp.i.
	SiteMLP Site = "mlp"
	// SiteLogits is the output head's logits over the vocabulary: a single
	// site with no index (it reads the whole model).
	SiteLogits Site = "logits"
)

// Sites lists every site, in the order a forward pass reaches them.
var Sites = []Site{SiteResid, SiteNorm, SiteAttn, SiteMLP, SiteLogits}

// ParseSite reads a site name (case-insensitive, surrounding space ignored).
func ParseSite(s string) (Site, error) {
	name := Site(strings.ToLower(strings.TrimSpace(s)))
	for _, v := range Sites {
		if v == name {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown site %q (sites: %s)", s, siteList())
}

func siteList() string {
	names := make([]string, len(Sites))
	for i, s := range Sites {
		names[i] = string(s)
	}
	return strings.Join(names, ", ")
}

// Valid reports whether s is one of [Sites].
func (s Site) Valid() bool {
	for _, v := range Sites {
		if v == s {
			return true
		}
	}
	return false
}

// Indexed reports whether the site takes an index (every site but logits).
func (s Site) Indexed() bool { return s != SiteLogits }

// Range returns the valid indices lo..hi of the site in a model of layers
// blocks. Logits have no index: their range is the single value 0.
func (s Site) Range(layers int) (lo, hi int) {
	switch s {
	case SiteAttn, SiteMLP:
		return 1, layers
	case SiteLogits:
		return 0, 0
	}
	return 0, layers
}

// Point is one measurement point: a site at an index.
type Point struct {
	Site  Site
	Index int // ignored for logits (Check sets it to 0)
}

// Check validates p against a model of layers blocks and returns it with
// a logits index set to 0, so that equal points compare equal.
func (p Point) Check(layers int) (Point, error) {
	if !p.Site.Valid() {
		return p, fmt.Errorf("unknown site %q (sites: %s)", p.Site, siteList())
	}
	if !p.Site.Indexed() {
		return Point{Site: p.Site}, nil
	}
	if lo, hi := p.Site.Range(layers); p.Index < lo || p.Index > hi {
		return p, fmt.Errorf("site %s has indices %d..%d, got %d", p.Site, lo, hi, p.Index)
	}
	return p, nil
}

// Name is the graph output name of p: "resid.15", "norm.0", "attn.3",
// "mlp.30", or "logits".
func (p Point) Name() string {
	if !p.Site.Indexed() {
		return string(p.Site)
	}
	return fmt.Sprintf("%s.%d", p.Site, p.Index)
}

// String is the same as Name.
func (p Point) String() string { return p.Name() }
