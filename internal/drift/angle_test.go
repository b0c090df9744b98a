package drift

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestAngleDeg(t *testing.T) {
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	tests := []struct {
		name string
		a, b []float32
		want float64
		ok   bool
	}{
		{"identical", []float32{1, 2, 3}, []float32{1, 2, 3}, 0, true},
		{"same direction scaled", []float32{1, 2, 3}, []float32{2, 4, 6}, 0, true},
		{"orthogonal", []float32{1, 0}, []float32{0, 5}, 90, true},
		{"antiparallel", []float32{1, -2}, []float32{-3, 6}, 180, true},
		{"45 degrees", []float32{1, 0}, []float32{1, 1}, 45, true},
		// cos = 3/5 -> acos(0.6) = 53.13010235415598 degrees.
		{"3-4-5 vs x axis", []float32{3, 4}, []float32{3, 0}, 53.13010235415598, true},
		// cos = 4/5 -> acos(0.8) = 36.86989764584402 degrees.
		{"3-4-5 vs y axis", []float32{3, 4}, []float32{0, 1}, 36.86989764584402, true},
		// cos = (1*1+0+0)/(1*sqrt(3)) -> acos(1/sqrt 3) = 54.735610317245346.
		{"cube diagonal", []float32{1, 0, 0}, []float32{1, 1, 1}, 54.735610317245346, true},
		{"zero vector", []float32{0, 0}, []float32{1, 0}, 0, false},
		{"both zero", []float32{0, 0}, []float32{0, 0}, 0, false},
		{"nan", []float32{nan, 1}, []float32{1, 0}, 0, false},
		{"inf", []float32{1, 0}, []float32{inf, 0}, 0, false},
		{"length mismatch", []float32{1, 0}, []float32{1, 0, 0}, 0, false},
		{"empty", nil, nil, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := AngleDeg(tc.a, tc.b)
			if ok != tc.ok || !near(got, tc.want, 1e-12) {
				t.Fatalf("AngleDeg = %.15g, %v; want %.15g, %v", got, ok, tc.want, tc.ok)
			}
			if math.IsNaN(got) {
				t.Fatal("NaN angle")
			}
		})
	}
}

func TestAngleFromCosDeg(t *testing.T) {
	tests := []struct {
		cos, want float64
	}{
		{1, 0},
		{1 + 1e-12, 0}, // rounding can push a cosine just above 1
		{-1 - 1e-12, 180},
		{0, 90},
		{0.5, 60},
		{-0.5, 120},
		{0.6, 53.13010235415598},
	}
	for _, tc := range tests {
		if got := AngleFromCosDeg(tc.cos); !near(got, tc.want, 1e-12) {
			t.Errorf("AngleFromCosDeg(%v) = %.15g, want %.15g", tc.cos, got, tc.want)
		}
	}
}

// Kahan's formula must agree with the clamped arccos away from 0 and 180.
func TestAngleMatchesArccos(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		a := make([]float32, 1+r.IntN(50))
		b := make([]float32, len(a))
		for j := range a {
			a[j], b[j] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		var dot, na, nb float64
		for j := range a {
			dot += float64(a[j]) * float64(b[j])
			na += float64(a[j]) * float64(a[j])
			nb += float64(b[j]) * float64(b[j])
		}
		want := AngleFromCosDeg(dot / math.Sqrt(na*nb))
		got, ok := AngleDeg(a, b)
		if !ok || !near(got, want, 1e-6) {
			t.Fatalf("len %d: AngleDeg %.12g vs arccos %.12g", len(a), got, want)
		}
	}
}

// A tiny angle is resolved accurately where arccos of the cosine is not.
func TestAngleSmall(t *testing.T) {
	eps := float32(1e-7)
	got, ok := AngleDeg([]float32{1, 0}, []float32{1, eps})
	want := math.Atan(float64(eps)) * 180 / math.Pi
	if !ok || math.Abs(got-want) > 1e-9*want {
		t.Fatalf("small angle %.15g, want %.15g", got, want)
	}
}

func TestTokenAndSelectionAngles(t *testing.T) {
	a := Matrix{3, 2, []float32{1, 0, 3, 4, 0, 0}}
	b := Matrix{3, 2, []float32{0, 1, 3, 0, 1, 1}}
	ang := make([]float64, 3)
	ok := make([]bool, 3)
	inv, err := TokenAnglesDeg(ang, ok, a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{90, 53.13010235415598, 0}
	wantOK := []bool{true, true, false}
	if inv != 1 {
		t.Errorf("invalid = %d, want 1", inv)
	}
	for i := range want {
		if ok[i] != wantOK[i] || !near(ang[i], want[i], 1e-12) {
			t.Errorf("token %d: %v %v, want %v %v", i, ang[i], ok[i], want[i], wantOK[i])
		}
	}

	// Rows 0 and 1 flattened: a=(1,0,3,4), b=(0,1,3,0): dot 9, |a|^2 26,
	// |b|^2 10 -> acos(9/sqrt(260)).
	sel := Selection{true, true, false}
	got, okSel, err := SelectionAngleDeg(a, b, sel)
	wantSel := AngleFromCosDeg(9 / math.Sqrt(260))
	if err != nil || !okSel || !near(got, wantSel, 1e-12) {
		t.Errorf("selection angle %v %v %v, want %v", got, okSel, err, wantSel)
	}
	// Rows 1 and 2 with SkipFirst: a=(3,4,0,0) b=(3,0,1,1): dot 9,
	// |a|^2 25, |b|^2 11.
	sel, _ = Select(3, true, nil)
	got, okSel, _ = SelectionAngleDeg(a, b, sel)
	if wantSel = AngleFromCosDeg(9 / math.Sqrt(275)); !okSel || !near(got, wantSel, 1e-12) {
		t.Errorf("skip-first angle %v, want %v", got, wantSel)
	}
	// nil selection = everything: dot 9, |a|^2 26, |b|^2 12.
	got, okSel, _ = SelectionAngleDeg(a, b, nil)
	if wantSel = AngleFromCosDeg(9 / math.Sqrt(312)); !okSel || !near(got, wantSel, 1e-12) {
		t.Errorf("all-rows angle %v, want %v", got, wantSel)
	}
	// Empty selection is invalid, not an error.
	if _, okSel, err = SelectionAngleDeg(a, b, Selection{false, false, false}); okSel || err != nil {
		t.Errorf("empty selection: ok=%v err=%v", okSel, err)
	}
	// Shape errors.
	if _, err := TokenAnglesDeg(ang, ok, a, Matrix{2, 3, make([]float32, 6)}); err == nil {
		t.Error("shape mismatch not reported")
	}
	if _, _, err := SelectionAngleDeg(a, b, Selection{true}); err == nil {
		t.Error("selection length mismatch not reported")
	}
	if _, err := TokenAnglesDeg(ang, ok, a, Matrix{3, 2, make([]float32, 5)}); err == nil {
		t.Error("bad data length not reported")
	}
}

func TestSelect(t *testing.T) {
	tests := []struct {
		name      string
		T         int
		skipFirst bool
		mask      []bool
		want      Selection
		err       bool
	}{
		{"all", 3, false, nil, Selection{true, true, true}, false},
		{"skip first", 3, true, nil, Selection{false, true, true}, false},
		{"mask", 3, false, []bool{true, true, false}, Selection{true, true, false}, false},
		{"mask and skip", 3, true, []bool{true, true, false}, Selection{false, true, false}, false},
		{"single token skip", 1, true, nil, Selection{false}, false},
		{"empty", 0, true, nil, Selection{}, false},
		{"bad mask", 2, false, []bool{true}, nil, true},
		{"negative", -1, false, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Select(tc.T, tc.skipFirst, tc.mask)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v", err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
	if n := (Selection{true, false, true}).Count(); n != 2 {
		t.Errorf("Count = %d", n)
	}
}
