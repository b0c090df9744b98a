package nn

import (
	"fmt"

	"github.com/lmood/lmood/internal/arch"
)

// Stage orders measurement points along the forward pass of a model of
// layers blocks: resid.i and norm.i at 2i, attn.i at 2i-1, mlp.i after its
// block (2i), logits after the last block.
func Stage(p arch.Point, layers int) int {
	switch p.Site {
	case arch.SiteAttn:
		return 2*p.Index - 1
	case arch.SiteLogits:
		return 2 * layers
	}
	return 2 * p.Index
}

// Plan is the set of points a graph exposes and how far it must run.
type Plan struct {
	want   map[arch.Point]bool
	last   int
	layers int
}

// NewPlan checks the requested outputs of a graph of a model of architecture
// a with layers blocks: at least one, each valid, none twice.
func NewPlan(a string, layers int, outputs []arch.Point) (*Plan, error) {
	if len(outputs) == 0 {
		return nil, fmt.Errorf("%s: a graph needs at least one output", a)
	}
	p := &Plan{want: map[arch.Point]bool{}, layers: layers}
	for _, o := range outputs {
		o, err := o.Check(layers)
		if err != nil {
			return nil, fmt.Errorf("%s: graph output: %w", a, err)
		}
		if p.want[o] {
			return nil, fmt.Errorf("%s: graph output %s requested twice", a, o.Name())
		}
		p.want[o] = true
		p.last = max(p.last, Stage(o, layers))
	}
	return p, nil
}

// Want reports whether point p is an output.
func (p *Plan) Want(pt arch.Point) bool { return p.want[pt] }

// Reaches reports whether the graph must compute point pt (it is an output
// or comes before one).
func (p *Plan) Reaches(pt arch.Point) bool { return Stage(pt, p.layers) <= p.last }

// Beyond0 reports whether the graph goes past the input (needs positions).
func (p *Plan) Beyond0() bool { return p.last > 0 }

// At is the point of site s with index i.
func At(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }
