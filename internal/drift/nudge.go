package drift

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Scale selects how the noise of a nudge is sized.
type Scale int

const (
	// PerToken (the default) nudges each token row on its own scale:
	// e'_t = e_t + sigma*|e_t|*z_t, then e'_t is rescaled to norm |e_t|.
	// Every row's expected input angle is then independent of prompt length.
	PerToken Scale = iota
	// Whole is the reference method: E' = E + sigma*|E|_F*Z, then E' is
	// rescaled to Frobenius norm |E|_F. The per-token noise grows with the
	// prompt length T (|E|_F grows like sqrt(T)).
	Whole
)

// String returns "per-token" or "whole".
func (s Scale) String() string {
	switch s {
	case PerToken:
		return "per-token"
	case Whole:
		return "whole"
	}
	return fmt.Sprintf("Scale(%d)", int(s))
}

// ParseScale parses "per-token" (also "pertoken", "token") or "whole".
func ParseScale(s string) (Scale, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "per-token", "pertoken", "per_token", "token", "":
		return PerToken, nil
	case "whole", "frobenius":
		return Whole, nil
	}
	return 0, fmt.Errorf("drift: unknown noise scale %q (want per-token or whole)", s)
}

// NudgeOptions configures [Nudge].
type NudgeOptions struct {
	// Sigma is the relative nudge size (>= 0). Note that the noise vector
	// z has norm about sqrt(n) for n noised values, so the expected input
	// angle is about atan(sigma*sqrt(n)), not atan(sigma): for PerToken,
	// n = d; for Whole, n = T*d (see the tests for the derivation).
	Sigma float64
	// Scale chooses PerToken (default) or Whole noise sizing.
	Scale Scale
	// Isolate nudges only row Token; all other rows are copied exactly.
	// The noise size is sigma*|e_t| (PerToken) or sigma*|E|_F (Whole), and
	// the nudged row is rescaled to |e_t|, which for Whole also keeps the
	// Frobenius norm of the whole matrix unchanged.
	Isolate bool
	// Token is the isolated row when Isolate is set.
	Token int
}

func (o NudgeOptions) check(e Matrix) error {
	if math.IsNaN(o.Sigma) || math.IsInf(o.Sigma, 0) || o.Sigma < 0 {
		return fmt.Errorf("drift: sigma must be finite and >= 0, got %v", o.Sigma)
	}
	if o.Scale != PerToken && o.Scale != Whole {
		return fmt.Errorf("drift: unknown noise scale %v", o.Scale)
	}
	if o.Isolate && (o.Token < 0 || o.Token >= e.Rows) {
		return fmt.Errorf("drift: isolated token %d out of range [0, %d)", o.Token, e.Rows)
	}
	return nil
}

// tokenKey is the stream token key for these options.
func (o NudgeOptions) tokenKey() int {
	if o.Isolate {
		return o.Token
	}
	return AllTokens
}

// Nudge writes one nudged copy of the clean embeddings e into dst, which
// must have length e.Rows*e.Cols and must not overlap e.Data. Noise comes
// from r (see [NewRand]); rows are drawn in row-major order.
//
// Computation: the standard normal draws are first stored in dst as
// float32 (a float32-rounded Gaussian is still a valid noise draw), then
// the nudged values and norms are computed in float64 from e and the
// stored draws, and the rescaled result is stored back as float32. No
// allocation happens. Rows (or the whole matrix) with zero norm stay zero.
// Inputs containing NaN or Inf are rejected.
func Nudge(dst []float32, e Matrix, opt NudgeOptions, r *rand.Rand) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if err := opt.check(e); err != nil {
		return err
	}
	if len(dst) != len(e.Data) {
		return fmt.Errorf("drift: nudge buffer has %d values, want %d", len(dst), len(e.Data))
	}
	if overlaps(dst, e.Data) {
		return errAlias
	}
	if r == nil {
		return fmt.Errorf("drift: nil random generator")
	}
	frob := sumSq(e.Data)
	if math.IsNaN(frob) || math.IsInf(frob, 0) {
		return fmt.Errorf("drift: embeddings contain non-finite values")
	}
	frob = math.Sqrt(frob)
	d := e.Cols

	if opt.Isolate {
		copy(dst, e.Data)
		t := opt.Token
		src := e.Row(t)
		norm := math.Sqrt(sumSq(src))
		amp := opt.Sigma * norm
		if opt.Scale == Whole {
			amp = opt.Sigma * frob
		}
		nudgeSpan(dst[t*d:(t+1)*d], src, amp, norm, r)
		return nil
	}

	switch opt.Scale {
	case PerToken:
		for t := 0; t < e.Rows; t++ {
			src := e.Row(t)
			norm := math.Sqrt(sumSq(src))
			nudgeSpan(dst[t*d:(t+1)*d], src, opt.Sigma*norm, norm, r)
		}
	case Whole:
		nudgeSpan(dst, e.Data, opt.Sigma*frob, frob, r)
	}
	return nil
}

// nudgeSpan writes normalize(src + amp*z) * target into dst (same length).
func nudgeSpan(dst, src []float32, amp, target float64, r *rand.Rand) {
	dst = dst[:len(src)]
	for i := range dst {
		dst[i] = float32(r.NormFloat64())
	}
	var ss float64
	for i, s := range src {
		v := float64(s) + amp*float64(dst[i])
		ss += v * v
	}
	if ss == 0 {
		for i := range dst {
			dst[i] = 0
		}
		return
	}
	k := target / math.Sqrt(ss)
	for i, s := range src {
		v := float64(s) + amp*float64(dst[i])
		dst[i] = float32(v * k)
	}
}

// NudgeBatch fills dst, a [count, T, d] buffer, with nudges
// firstNudge..firstNudge+count-1 of prompt number prompt. Nudge k uses the
// stream NewRand(seed, prompt, k, token) with token = opt.Token when
// isolating and AllTokens otherwise, so the result is identical to calling
// [Nudge] nudge by nudge, whatever the batch split.
func NudgeBatch(dst []float32, e Matrix, opt NudgeOptions, seed uint64, prompt, firstNudge, count int) error {
	if err := e.Validate(); err != nil {
		return err
	}
	if count < 0 {
		return fmt.Errorf("drift: negative nudge count %d", count)
	}
	n := len(e.Data)
	if len(dst) != count*n {
		return fmt.Errorf("drift: batch buffer has %d values, want %d x %d", len(dst), count, n)
	}
	src := rand.NewPCG(0, 0)
	r := rand.New(src)
	for k := 0; k < count; k++ {
		src.Seed(StreamSeeds(seed, prompt, firstNudge+k, opt.tokenKey()))
		if err := Nudge(dst[k*n:(k+1)*n], e, opt, r); err != nil {
			return err
		}
	}
	return nil
}

// sumSq returns the float64 sum of squares of x (four accumulators).
func sumSq(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		f0, f1, f2, f3 := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += f0 * f0
		s1 += f1 * f1
		s2 += f2 * f2
		s3 += f3 * f3
	}
	for ; i < len(x); i++ {
		f := float64(x[i])
		s0 += f * f
	}
	return (s0 + s1) + (s2 + s3)
}
