package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randMatrix returns a [T, d] matrix with rows of varied norms.
func randMatrix(T, d int, seed uint64) Matrix {
	r := rand.New(rand.NewPCG(seed, 99))
	m, _ := NewMatrix(T, d)
	for t := 0; t < T; t++ {
		s := 0.5 + 3*r.Float64()
		for i := 0; i < d; i++ {
			m.Data[t*d+i] = float32(s * r.NormFloat64())
		}
	}
	return m
}

func rowNorm(x []float32) float64 { return math.Sqrt(sumSq(x)) }

func TestNudgePreservesNorms(t *testing.T) {
	e := randMatrix(8, 64, 1)
	for _, sigma := range []float64{0, 1e-4, 1e-2, 0.5} {
		for _, sc := range []Scale{PerToken, Whole} {
			dst := make([]float32, len(e.Data))
			if err := Nudge(dst, e, NudgeOptions{Sigma: sigma, Scale: sc}, NewRand(7, 0, 0, AllTokens)); err != nil {
				t.Fatal(err)
			}
			n := Matrix{e.Rows, e.Cols, dst}
			if sc == PerToken {
				for r := 0; r < e.Rows; r++ {
					a, b := rowNorm(e.Row(r)), rowNorm(n.Row(r))
					if math.Abs(a-b) > 1e-6*a {
						t.Errorf("%v sigma=%g row %d: norm %v -> %v", sc, sigma, r, a, b)
					}
				}
			} else {
				a, b := rowNorm(e.Data), rowNorm(dst)
				if math.Abs(a-b) > 1e-6*a {
					t.Errorf("%v sigma=%g: Frobenius norm %v -> %v", sc, sigma, a, b)
				}
			}
			if sigma == 0 {
				for i := range dst {
					if dst[i] != e.Data[i] {
						t.Fatalf("sigma 0 changed value %d: %v -> %v", i, e.Data[i], dst[i])
					}
				}
			}
		}
	}
}

func TestNudgeIsolation(t *testing.T) {
	e := randMatrix(5, 32, 2)
	for _, sc := range []Scale{PerToken, Whole} {
		dst := make([]float32, len(e.Data))
		opt := NudgeOptions{Sigma: 0.05, Scale: sc, Isolate: true, Token: 2}
		if err := Nudge(dst, e, opt, NewRand(1, 0, 0, 2)); err != nil {
			t.Fatal(err)
		}
		n := Matrix{e.Rows, e.Cols, dst}
		for r := 0; r < e.Rows; r++ {
			changed := false
			for i, v := range n.Row(r) {
				if v != e.Row(r)[i] {
					changed = true
				}
			}
			if changed != (r == 2) {
				t.Errorf("%v: row %d changed=%v", sc, r, changed)
			}
		}
		a, b := rowNorm(e.Row(2)), rowNorm(n.Row(2))
		if math.Abs(a-b) > 1e-6*a {
			t.Errorf("%v: isolated row norm %v -> %v", sc, a, b)
		}
	}
	// Whole-scale isolation uses the larger |E|_F amplitude: its angle on
	// the row must exceed the PerToken one for the same draw.
	d1 := make([]float32, len(e.Data))
	d2 := make([]float32, len(e.Data))
	_ = Nudge(d1, e, NudgeOptions{Sigma: 0.01, Isolate: true, Token: 1}, NewRand(3, 0, 0, 1))
	_ = Nudge(d2, e, NudgeOptions{Sigma: 0.01, Scale: Whole, Isolate: true, Token: 1}, NewRand(3, 0, 0, 1))
	a1, _ := AngleDeg(e.Row(1), Matrix{5, 32, d1}.Row(1))
	a2, _ := AngleDeg(e.Row(1), Matrix{5, 32, d2}.Row(1))
	if !(a2 > a1) {
		t.Errorf("whole-scale isolated angle %v not above per-token %v", a2, a1)
	}
}

func TestNudgeDeterminism(t *testing.T) {
	e := randMatrix(4, 16, 3)
	run := func(seed uint64, prompt, nudge int) []float32 {
		dst := make([]float32, len(e.Data))
		if err := Nudge(dst, e, NudgeOptions{Sigma: 0.01}, NewRand(seed, prompt, nudge, AllTokens)); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	same := func(a, b []float32) bool {
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				return false
			}
		}
		return true
	}
	base := run(42, 3, 5)
	if !same(base, run(42, 3, 5)) {
		t.Error("same stream gave different bits")
	}
	for _, c := range []struct {
		name          string
		seed          uint64
		prompt, nudge int
	}{
		{"other nudge", 42, 3, 6},
		{"other prompt", 42, 4, 5},
		{"other seed", 43, 3, 5},
		{"swapped prompt/nudge", 42, 5, 3},
	} {
		if same(base, run(c.seed, c.prompt, c.nudge)) {
			t.Errorf("%s gave identical noise", c.name)
		}
	}
	h1, l1 := StreamSeeds(1, 0, 0, AllTokens)
	h2, l2 := StreamSeeds(1, 0, 0, 0)
	if h1 == h2 && l1 == l2 {
		t.Error("token key ignored")
	}
}

func TestNudgeBatchMatchesSingle(t *testing.T) {
	e := randMatrix(3, 8, 4)
	n := len(e.Data)
	opt := NudgeOptions{Sigma: 0.02, Scale: Whole}
	all := make([]float32, 5*n)
	if err := NudgeBatch(all, e, opt, 9, 2, 0, 5); err != nil {
		t.Fatal(err)
	}
	// Split differently: nudges 3..4 on their own.
	part := make([]float32, 2*n)
	if err := NudgeBatch(part, e, opt, 9, 2, 3, 2); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 5; k++ {
		one := make([]float32, n)
		_ = Nudge(one, e, opt, NewRand(9, 2, k, AllTokens))
		for i := range one {
			if one[i] != all[k*n+i] || (k >= 3 && one[i] != part[(k-3)*n+i]) {
				t.Fatalf("nudge %d differs between batch and single", k)
			}
		}
	}
	if err := NudgeBatch(make([]float32, n), e, opt, 9, 2, 0, 2); err == nil {
		t.Error("short batch buffer not reported")
	}
}

func TestNudgeErrors(t *testing.T) {
	e := randMatrix(2, 4, 5)
	r := NewRand(0, 0, 0, AllTokens)
	buf := make([]float32, len(e.Data))
	bad := Matrix{2, 4, []float32{1, 2, 3, float32(math.NaN()), 0, 0, 0, 0}}
	tests := []struct {
		name string
		dst  []float32
		e    Matrix
		opt  NudgeOptions
		r    *rand.Rand
	}{
		{"negative sigma", buf, e, NudgeOptions{Sigma: -1}, r},
		{"nan sigma", buf, e, NudgeOptions{Sigma: math.NaN()}, r},
		{"inf sigma", buf, e, NudgeOptions{Sigma: math.Inf(1)}, r},
		{"bad scale", buf, e, NudgeOptions{Sigma: 1, Scale: 7}, r},
		{"short dst", buf[:3], e, NudgeOptions{Sigma: 1}, r},
		{"alias", e.Data, e, NudgeOptions{Sigma: 1}, r},
		{"isolate out of range", buf, e, NudgeOptions{Sigma: 1, Isolate: true, Token: 2}, r},
		{"isolate negative", buf, e, NudgeOptions{Sigma: 1, Isolate: true, Token: -1}, r},
		{"non-finite input", buf, bad, NudgeOptions{Sigma: 1}, r},
		{"bad shape", buf, Matrix{3, 4, e.Data}, NudgeOptions{Sigma: 1}, r},
		{"nil rng", buf, e, NudgeOptions{Sigma: 1}, nil},
	}
	for _, tc := range tests {
		if err := Nudge(tc.dst, tc.e, tc.opt, tc.r); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestNudgeZeroRow(t *testing.T) {
	e := Matrix{2, 3, []float32{0, 0, 0, 1, 2, 3}}
	dst := make([]float32, 6)
	if err := Nudge(dst, e, NudgeOptions{Sigma: 0.1}, NewRand(0, 0, 0, AllTokens)); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if dst[i] != 0 {
			t.Fatalf("zero row became %v", dst[:3])
		}
	}
}

// Expected input angle. For one row e (width d) with PerToken noise,
// v = e + sigma*|e|*z with z ~ N(0, I_d). Split z into its component along
// e, z_par ~ N(0,1), and the orthogonal rest z_perp with |z_perp|^2 ~
// chi^2_{d-1}. The rescale does not change direction, so
//
//	tan(theta) = sigma*|z_perp| / (1 + sigma*z_par).
//
// For large d, |z_perp| concentrates at sqrt(d-1) (relative spread about
// 1/sqrt(2d)) and sigma*z_par is a small symmetric term, so
// theta ≈ atan(sigma*sqrt(d-1)) — NOT atan(sigma): the noise norm is
// sigma*|e|*sqrt(d). With sigma=0.01, d=576: atan(0.2398) = 13.49 degrees.
// For Whole scale, the noise on row t is sigma*|E|_F*z_t, so the per-row
// angle is ≈ atan(sigma*|E|_F*sqrt(d-1)/|e_t|) (the global rescale keeps
// directions), and the whole-matrix angle ≈ atan(sigma*sqrt(T*d-1)).
func TestNudgeAngleScale(t *testing.T) {
	const T, d, K = 16, 576, 16
	e := randMatrix(T, d, 6)
	frob := rowNorm(e.Data)
	for _, sigma := range []float64{1e-3, 1e-2, 5e-2} {
		var sumTok, sumTokWant, sumWhole, sumWholeRow, sumWholeRowWant float64
		var in InputAngles
		dst := make([]float32, len(e.Data))
		for k := 0; k < K; k++ {
			_ = Nudge(dst, e, NudgeOptions{Sigma: sigma}, NewRand(1, 0, k, AllTokens))
			_ = ComputeInputAngles(&in, e, Matrix{T, d, dst}, nil)
			for ti := 0; ti < T; ti++ {
				sumTok += in.Tokens[ti]
				sumTokWant += math.Atan(sigma*math.Sqrt(d-1)) * rad2deg
			}
			_ = Nudge(dst, e, NudgeOptions{Sigma: sigma, Scale: Whole}, NewRand(1, 0, k, AllTokens))
			_ = ComputeInputAngles(&in, e, Matrix{T, d, dst}, nil)
			sumWhole += in.Prompt
			for ti := 0; ti < T; ti++ {
				sumWholeRow += in.Tokens[ti]
				sumWholeRowWant += math.Atan(sigma*frob*math.Sqrt(d-1)/rowNorm(e.Row(ti))) * rad2deg
			}
		}
		check := func(name string, got, want float64) {
			if math.Abs(got-want) > 0.01*want {
				t.Errorf("sigma=%g %s: mean angle %.4f, expected %.4f", sigma, name, got, want)
			}
		}
		check("per-token rows", sumTok/(T*K), sumTokWant/(T*K))
		check("whole matrix", sumWhole/K, math.Atan(sigma*math.Sqrt(T*d-1))*rad2deg)
		check("whole rows", sumWholeRow/(T*K), sumWholeRowWant/(T*K))
	}
}
