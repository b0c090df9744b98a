package drift

import (
	"math"
	"testing"
)

// fakeLayers returns toy "hidden states" for embeddings x: identity, a
// doubled copy, a constant (ignores the input) and a causal running sum
// (row t = sum of rows <= t), which mixes upstream noise into later rows.
func fakeLayers(x Matrix) []Matrix {
	T, d := x.Rows, x.Cols
	id := Matrix{T, d, append([]float32(nil), x.Data...)}
	dbl := Matrix{T, d, make([]float32, T*d)}
	cst := Matrix{T, d, make([]float32, T*d)}
	cum := Matrix{T, d, make([]float32, T*d)}
	for i, v := range x.Data {
		dbl.Data[i] = 2 * v
		cst.Data[i] = 1
	}
	for t := 0; t < T; t++ {
		for i := 0; i < d; i++ {
			v := x.Data[t*d+i]
			if t > 0 {
				v += cum.Data[(t-1)*d+i]
			}
			cum.Data[t*d+i] = v
		}
	}
	return []Matrix{id, dbl, cst, cum}
}

func TestAccumulatorToyLayers(t *testing.T) {
	const T, d, K = 6, 40, 8
	e := randMatrix(T, d, 11)
	sel, _ := Select(T, true, nil)
	acc, err := NewAccumulator(e, fakeLayers(e), sel)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, K*T*d)
	if err := NudgeBatch(buf, e, NudgeOptions{Sigma: 0.01}, 1, 0, 0, K); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < K; k++ {
		x, _ := BatchItem(buf, k, T, d)
		if err := acc.Add(x, fakeLayers(x)); err != nil {
			t.Fatal(err)
		}
	}
	res := acc.Result()
	if res.Input.N != K || res.Input.Mean <= 0 {
		t.Fatalf("input stats %+v", res.Input)
	}
	// Identity and doubling: every ratio is 1 up to float32 rounding.
	for _, li := range []int{0, 1} {
		l := res.Layers[li]
		if l.Prompt.N != K || !near(l.Prompt.Mean, 1, 1e-4) || l.Prompt.Std > 1e-4 {
			t.Errorf("layer %d prompt %+v", li, l.Prompt)
		}
		for ti, s := range l.Tokens {
			if s.N != K || !near(s.Mean, 1, 1e-4) {
				t.Errorf("layer %d token %d %+v", li, ti, s)
			}
		}
	}
	// Constant layer: zero drift is a valid ratio 0.
	if c := res.Layers[2].Prompt; c.N != K || c.Mean != 0 || c.Undefined {
		t.Errorf("constant layer %+v", c)
	}
	// Running sum: token 0 sees only itself (ratio exactly 1); later
	// tokens mix in upstream noise, so their ratio departs from 1.
	cum := res.Layers[3]
	if !near(cum.Tokens[0].Mean, 1, 1e-4) {
		t.Errorf("causal token 0 ratio %v", cum.Tokens[0].Mean)
	}
	if r := cum.Tokens[T-1]; r.N != K || near(r.Mean, 1, 1e-4) || !(r.Std > 0) {
		t.Errorf("causal last-token ratio %+v, want != 1 with spread", r)
	}
	// Per-token stats exist for the skipped first position too.
	if cum.Tokens[0].N != K || res.InputTokens[0].N != K {
		t.Error("position 0 per-token stats missing")
	}
}

func TestAccumulatorInvalid(t *testing.T) {
	const T, d = 3, 4
	e := randMatrix(T, d, 12)
	zero := Matrix{T, d, make([]float32, T*d)}
	acc, _ := NewAccumulator(e, []Matrix{zero}, nil)
	x := make([]float32, T*d)
	for k := 0; k < 3; k++ {
		_ = Nudge(x, e, NudgeOptions{Sigma: 0.1}, NewRand(0, 0, k, AllTokens))
		if err := acc.Add(Matrix{T, d, x}, []Matrix{zero}); err != nil {
			t.Fatal(err)
		}
	}
	l := acc.Result().Layers[0]
	if !l.Prompt.Undefined || l.Prompt.Invalid != 3 || l.Prompt.Mean != 0 || math.IsNaN(l.Prompt.Std) {
		t.Errorf("zero hidden state: %+v", l.Prompt)
	}
	// sigma 0: input angle 0 makes every ratio invalid.
	acc, _ = NewAccumulator(e, []Matrix{e}, nil)
	_ = acc.Add(e, []Matrix{e})
	if p := acc.Result().Layers[0].Prompt; !p.Undefined || p.Invalid != 1 {
		t.Errorf("zero input angle: %+v", p)
	}
}

func TestAccumulatorIsolated(t *testing.T) {
	const T, d = 4, 16
	e := randMatrix(T, d, 13)
	acc, _ := NewAccumulator(e, fakeLayers(e), nil)
	x := make([]float32, T*d)
	for k := 0; k < 5; k++ {
		_ = Nudge(x, e, NudgeOptions{Sigma: 0.01, Isolate: true, Token: 2}, NewRand(0, 0, k, 2))
		m := Matrix{T, d, x}
		if err := acc.AddIsolated(2, m, fakeLayers(m)); err != nil {
			t.Fatal(err)
		}
	}
	res := acc.Result()
	for ti := 0; ti < T; ti++ {
		want := 0
		if ti == 2 {
			want = 5
		}
		if res.Layers[0].Tokens[ti].N != want || res.InputTokens[ti].N != want {
			t.Errorf("token %d: N=%d, want %d", ti, res.Layers[0].Tokens[ti].N, want)
		}
	}
	if !near(res.Layers[0].Tokens[2].Mean, 1, 1e-4) {
		t.Errorf("isolated identity ratio %v", res.Layers[0].Tokens[2].Mean)
	}
	if !res.Layers[0].Prompt.Undefined {
		t.Error("prompt stats should stay undefined in isolation mode")
	}
	if err := acc.Add(e, fakeLayers(e)); err == nil {
		t.Error("mixing modes accepted")
	}
	if err := acc.AddIsolated(9, e, fakeLayers(e)); err == nil {
		t.Error("bad token accepted")
	}
}

func TestAccumulatorErrors(t *testing.T) {
	e := randMatrix(3, 4, 14)
	if _, err := NewAccumulator(e, []Matrix{{2, 4, make([]float32, 8)}}, nil); err == nil {
		t.Error("row mismatch accepted")
	}
	if _, err := NewAccumulator(e, nil, Selection{true}); err == nil {
		t.Error("selection mismatch accepted")
	}
	acc, _ := NewAccumulator(e, []Matrix{e}, nil)
	if err := acc.Add(e, nil); err == nil {
		t.Error("missing hidden states accepted")
	}
	if err := acc.Add(e, []Matrix{{3, 5, make([]float32, 15)}}); err == nil {
		t.Error("hidden shape mismatch accepted")
	}
	if _, err := BatchItem(make([]float32, 10), 1, 2, 5); err == nil {
		t.Error("out-of-range batch item accepted")
	}
}
