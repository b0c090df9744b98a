package generate

import (
	"math"
	"testing"
	"unicode/utf8"
)

func TestSample(t *testing.T) {
	all := []bool{true, true, true}
	ln := func(x float64) float32 { return float32(math.Log(x)) }
	tests := []struct {
		name       string
		logits     []float32
		allowed    []bool
		temp, topP float64
		u          float64
		want       int
	}{
		// p = [0.25, 0.75, 0] (token 2 not allowed).
		{"first", []float32{0, ln(3), 5}, []bool{true, true, false}, 1, 1, 0.2, 0},
		{"second", []float32{0, ln(3), 5}, []bool{true, true, false}, 1, 1, 0.3, 1},
		{"top of range", []float32{0, ln(3), 5}, []bool{true, true, false}, 1, 1, 0.999999, 1},
		// Temperature 2 halves the logits: [0, ln 9]/2 = [0, ln 3].
		{"temperature", []float32{0, ln(9), -100}, all, 2, 1, 0.26, 1},
		{"temperature low u", []float32{0, ln(9), -100}, all, 2, 1, 0.24, 0},
		// p = [0.1, 0.6, 0.3]: top-p 0.5 keeps token 1 alone.
		{"nucleus of one", []float32{ln(0.1), ln(0.6), ln(0.3)}, all, 1, 0.5, 0.01, 1},
		{"nucleus of one, high u", []float32{ln(0.1), ln(0.6), ln(0.3)}, all, 1, 0.5, 0.99, 1},
		// top-p 0.7 keeps {1, 2} with masses 0.6, 0.3: u < 2/3 picks 1.
		{"nucleus of two, low", []float32{ln(0.1), ln(0.6), ln(0.3)}, all, 1, 0.7, 0.66, 1},
		{"nucleus of two, high", []float32{ln(0.1), ln(0.6), ln(0.3)}, all, 1, 0.7, 0.67, 2},
		// NaN and infinite logits never win.
		{"non-finite", []float32{float32(math.NaN()), float32(math.Inf(1)), 0}, all, 1, 1, 0.5, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSampler(len(tc.logits), tc.temp, tc.topP, tc.allowed)
			got, err := s.sample(tc.logits, tc.u)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("sample(u=%v) = %d, want %d", tc.u, got, tc.want)
			}
		})
	}
	s := newSampler(2, 1, 1, []bool{false, false})
	if _, err := s.sample([]float32{1, 2}, 0.5); err == nil {
		t.Error("sampling with no allowed token succeeded")
	}
}

func TestValidText(t *testing.T) {
	tests := []struct {
		in, want string
		repaired bool
	}{
		{"héllo", "héllo", false},
		{"ab\xe2\x82", "ab", true},      // cut € at the end
		{"a\xffb", "a\uFFFDb", true},    // a stray byte inside
		{"\xe2\x82\xac\xe2", "€", true}, // one full char, then a cut one
		{"x\x82", "x\uFFFD", true},      // continuation byte alone at the end
	}
	for _, tc := range tests {
		got, rep := validText(tc.in)
		if got != tc.want || rep != tc.repaired || !utf8.ValidString(got) {
			t.Errorf("validText(%q) = %q, %v; want %q, %v", tc.in, got, rep, tc.want, tc.repaired)
		}
	}
}
