package arch

import (
	"fmt"
	"math"
	"sync"
)

// Balanced is implemented by a family configuration whose blocks allow
// exact per-channel rescalings of their weights: a factor moved from the
// input channels of a linear weight to wherever those channels are made
// (a norm's weight, the output columns of an earlier linear weight and its
// bias) leaves every value the graph computes unchanged, up to float32
// rounding. The store weighs them before it re-quantizes weights to int8
// per output column: a row (input channel) of much larger weights than
// the others sets every column's scale, and balancing the rows first
// spends the int8 steps on all of them (SmoothQuant's migration, from the
// weights alone); it keeps those that pay (Fold.Balance). No operation is
// added to the graph.
type Balanced interface {
	// Folds lists the rescalings of block i (GGUF blk.i), in the order
	// they are applied: a later fold sees the weights an earlier one
	// changed.
	Folds(i int) []Fold
}

// Fold is one exact rescaling: the input channel c of every linear weight
// in Consumers (row c of its [in, out] form) is divided by the factor
// f[Channel(c)], and element j of every vector in Producers (a norm weight,
// a bias), or column j of every [in, out] matrix in Producers, is
// multiplied by f[j]. Channel maps the consumers' inputs onto the
// producers' outputs: nil is the identity; grouped-query attention maps
// several query heads' channels onto one key/value head's (GroupedChannel).
type Fold struct {
	Consumers []string
	Producers []string
	Channel   func(c int) int
	// Record, when set, names a vector the store keeps holding f: the graph
	// divides by it where it exposes a producer's output as a measurement
	// site (the attention norm's output is the site "norm").
	Record string
}

// GroupedChannel maps channel c of heads query heads of headDim (the
// input of an attention output projection) onto the channel of the
// key/value head its head reads, among kvHeads: query head h reads
// key/value head h / (heads/kvHeads).
func GroupedChannel(heads, kvHeads, headDim int) func(int) int {
	group := heads / kvHeads
	return func(c int) int {
		h, d := c/headDim, c%headDim
		return (h/group)*headDim + d
	}
}

// Prepared is a tensor in the layout a graph reads (a family's
// PrepareWeight): a vector, or a linear weight [in, out].
type Prepared struct {
	Data []float32
	Dims []int64
}

// BalanceExponent is α in a fold's factors: f_j = m_j^α over its mean for
// all channels, m_j the largest |weight| of channel j's consumer rows, so
// the factors stay near 1. α = 0 changes nothing; α = 1 would give every
// row the same largest weight. What it costs is on the activations' side:
// the consumers' inputs are multiplied by f, which widens their range,
// and lmood codes the nudged copies' differences in 8 bits relative to
// each row's largest value. README, Precision, has the measurements.
const BalanceExponent = 0.25

// MinBalanceGain is how much a fold must cut its consumers' int8 error
// (Fold.Balance) to be kept: the gain on the weights' side has to pay for
// the cost on the activations' side, which the weights cannot show.
// Measured (README, Precision): every fold applied moved SmolLM2-135M's
// drift AUROCs further from float32 (mash −0.015), where no fold cuts the
// error by more than 19%, while Qwen2.5-Coder's ffn_down and q/k/v folds
// cut it by 12–46% and bring its AUROCs closer.
const MinBalanceGain = 0.2

// Apply performs the fold on the prepared tensors of w (changed in place)
// and returns the factors (see BalanceExponent): rows of outlying weights
// shrink towards the others, and the producers grow by as much. A channel
// whose consumer rows are all zero keeps factor 1.
func (f Fold) Apply(w map[string]Prepared) ([]float32, error) {
	if len(f.Consumers) == 0 || len(f.Producers) == 0 {
		return nil, fmt.Errorf("fold: needs consumers and producers")
	}
	channel := f.Channel
	if channel == nil {
		channel = func(c int) int { return c }
	}
	width := -1 // the producers' channels
	for _, name := range f.Producers {
		p, ok := w[name]
		if !ok {
			return nil, fmt.Errorf("fold: producer %s missing", name)
		}
		n := int(p.Dims[len(p.Dims)-1])
		if len(p.Dims) > 2 || (width >= 0 && n != width) {
			return nil, fmt.Errorf("fold: producer %s has dims %v, want %d channels", name, p.Dims, width)
		}
		width = n
	}
	peak := make([]float64, width)
	for _, name := range f.Consumers {
		c, ok := w[name]
		if !ok || len(c.Dims) != 2 {
			return nil, fmt.Errorf("fold: consumer %s missing or not [in, out]", name)
		}
		in, out := int(c.Dims[0]), int(c.Dims[1])
		for r := 0; r < in; r++ {
			j := channel(r)
			if j < 0 || j >= width {
				return nil, fmt.Errorf("fold: consumer %s row %d maps to channel %d of %d", name, r, j, width)
			}
			var m float32
			for _, v := range c.Data[r*out : (r+1)*out] {
				if v < 0 {
					v = -v
				}
				if v > m || v != v { // NaN wins, as math.Max would have it
					m = v
				}
			}
			peak[j] = math.Max(peak[j], float64(m))
		}
	}
	usable := func(p float64) bool { return p > 0 && !math.IsInf(p, 0) && !math.IsNaN(p) }
	var sum float64
	n := 0
	for _, p := range peak {
		if usable(p) {
			sum += math.Pow(p, BalanceExponent)
			n++
		}
	}
	factors := make([]float32, width)
	for j, p := range peak {
		factors[j] = 1
		if usable(p) {
			factors[j] = float32(math.Pow(p, BalanceExponent) / (sum / float64(n)))
		}
	}
	for _, name := range f.Consumers {
		c := w[name]
		out := int(c.Dims[1])
		for r := 0; r < int(c.Dims[0]); r++ {
			s := factors[channel(r)]
			row := c.Data[r*out : (r+1)*out]
			for k := range row {
				row[k] /= s
			}
		}
	}
	for _, name := range f.Producers {
		p := w[name]
		for i := range p.Data {
			p.Data[i] *= factors[i%width]
		}
	}
	return factors, nil
}

// Balance applies the fold where it pays: roundTrip returns a prepared
// [in, out] weight as the store will hold it (quantized, then expanded
// back). The fold is kept when the consumers' error, measured on what the
// graph effectively multiplies by (each row's factor times its stored
// values, against the original weights), is at least MinBalanceGain below
// their error without it; otherwise every tensor is restored and nil is
// returned.
func (f Fold) Balance(w map[string]Prepared, roundTrip func(Prepared) ([]float32, error)) ([]float32, error) {
	saved := map[string][]float32{}
	for _, name := range append(append([]string(nil), f.Consumers...), f.Producers...) {
		if p, ok := w[name]; ok {
			saved[name] = append([]float32(nil), p.Data...)
		}
	}
	for _, name := range f.Consumers {
		if _, ok := saved[name]; !ok {
			return f.Apply(w) // which says what is missing
		}
	}
	before, err := f.roundTripError(w, saved, roundTrip, func(int) float64 { return 1 })
	if err != nil {
		return nil, err
	}
	factors, err := f.Apply(w)
	if err != nil {
		return nil, err
	}
	channel := f.Channel
	if channel == nil {
		channel = func(c int) int { return c }
	}
	after, err := f.roundTripError(w, saved, roundTrip, func(row int) float64 { return float64(factors[channel(row)]) })
	if err != nil {
		return nil, err
	}
	if after <= before*(1-MinBalanceGain)*(1-MinBalanceGain) && !math.IsNaN(after) {
		return factors, nil
	}
	for name, data := range saved {
		copy(w[name].Data, data)
	}
	return nil, nil
}

// roundTripError is the summed squared error, over the consumers (one
// goroutine each), of their stored form — the round trip of their current
// weights in w, row r times scale(r) — against orig.
func (f Fold) roundTripError(w map[string]Prepared, orig map[string][]float32, roundTrip func(Prepared) ([]float32, error), scale func(row int) float64) (float64, error) {
	sums := make([]float64, len(f.Consumers))
	errs := make([]error, len(f.Consumers))
	var wg sync.WaitGroup
	for i, name := range f.Consumers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := w[name]
			back, err := roundTrip(c)
			if err != nil {
				errs[i] = fmt.Errorf("fold: %s: %w", name, err)
				return
			}
			out := int(c.Dims[len(c.Dims)-1])
			o := orig[name]
			for r := 0; r*out < len(o); r++ {
				s := scale(r)
				for k := r * out; k < (r+1)*out; k++ {
					d := s*float64(back[k]) - float64(o[k])
					sums[i] += d * d
				}
			}
		}()
	}
	wg.Wait()
	var total float64
	for i := range sums {
		if errs[i] != nil {
			return 0, errs[i]
		}
		total += sums[i]
	}
	return total, nil
}
