package calibrate

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
)

func TestFreqClasses(t *testing.T) {
	tests := []struct {
		name    string
		vocab   int
		ids     []int
		thr     int
		classes string
	}{
		// counts 0:4, 1:3, 2:1; occurrences' counts sorted 1,3,3,3,4,4,4,4: median (index 4) 4.
		{"median count", 4, []int{0, 0, 0, 0, 1, 1, 1, 2}, 4, "0111"},
		// every token once: threshold at least 2, so all rare.
		{"all once", 3, []int{0, 1, 2}, 2, "111"},
		{"ids outside the vocabulary ignored", 2, []int{0, 0, 5, -1, 0, 1}, 3, "01"},
	}
	for _, tt := range tests {
		c, err := FreqClasses(tt.vocab, tt.ids)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if c.Scheme != ClassFreq || c.FreqThreshold != tt.thr || c.Of != tt.classes || c.N() != 2 {
			t.Errorf("%s: %+v, want threshold %d classes %q", tt.name, c, tt.thr, tt.classes)
		}
	}
	if _, err := FreqClasses(3, []int{1}); !errors.Is(err, ErrTooSmall) {
		t.Errorf("one token: %v, want ErrTooSmall", err)
	}
}

func TestNormClasses(t *testing.T) {
	norms := []float64{1, 2, 3, 4, 5, 6}
	// Occurrences: norms 1,2,3,4,5,6 once each: terciles (type 7) at 2.667 and 4.333.
	c, err := NormClasses(norms, []int{0, 1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	if c.Of != "001122" || math.Abs(c.Edges[0]-8.0/3) > 1e-12 || math.Abs(c.Edges[1]-13.0/3) > 1e-12 {
		t.Errorf("classes %q edges %v", c.Of, c.Edges)
	}
	if c.Class(5) != 2 || c.Class(6) != -1 || c.Label(2) != "high-norm tokens" {
		t.Errorf("class(5) %d, class(6) %d, label %q", c.Class(5), c.Class(6), c.Label(2))
	}
	// The edges follow the reference's occurrences, not the vocabulary.
	c, _ = NormClasses(norms, []int{5, 5, 5, 4, 4, 0})
	if c.Of[0] != '0' || c.Of[3] != '0' || c.Of[5] != '2' {
		t.Errorf("occurrence-weighted classes %q edges %v", c.Of, c.Edges)
	}
	if _, err := NormClasses(norms, []int{1}); !errors.Is(err, ErrTooSmall) {
		t.Errorf("one token: %v", err)
	}
}

// classedResult is fakeResult with token ids: token t has id ids[t].
func classedResult(id Identity, x float64, ids []int) *analyze.Result {
	r := fakeResult(id, x, len(ids))
	for t, v := range ids {
		r.Tokens[t].ID = v
	}
	return r
}

// TestClassBuckets builds a reference whose class-1 tokens have ratios 10
// (ln) above the others and checks that a token is placed among its own
// class at its position, and among every token of its position when its
// class is thin there.
func TestClassBuckets(t *testing.T) {
	id := testIdentity()
	classes := &TokenClasses{Scheme: ClassFreq, Labels: []string{"frequent", "rare"}, FreqThreshold: 2, Of: "0011"}
	b := NewBuilder(id, nil)
	b.SetClasses(classes)
	const n = 40
	for i := range n {
		// positions 1, 2, 3: ids 0 (frequent), 2 (rare), and at position 3
		// a rare token only in every fourth text (10 values: too few).
		ids := []int{0, 0, 2, 1}
		if i%4 == 0 {
			ids[3] = 3
		}
		r := classedResult(id, float64(i)/n, ids)
		for h := range r.Layers {
			r.Layers[h].TokenRatio[2] = stat(math.Exp(10 + float64(i)/n))
		}
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := b.Reference()
	if err != nil {
		t.Fatal(err)
	}
	l, _ := ref.Layer(5)
	if got := l.TokensByClass[1][2].N; got != n+n/4 { // position 2 (all rare) and 3 (rare in a quarter): bucket 2–3
		t.Errorf("rare tokens at positions 2–3: %d values, want %d", got, n+n/4)
	}
	// A rare token at position 2 with ratio e^10.5 is typical among rare
	// tokens but would be extreme among all tokens of positions 2–3.
	res := classedResult(id, 0.5, []int{0, 0, 2, 0})
	for h := range res.Layers {
		res.Layers[h].TokenRatio[2] = stat(math.Exp(10.5))
	}
	s, err := ref.Score(res, drift.Expand, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := s.Layers[1].Tokens[2]
	if v.Against != "rare tokens" || v.Percentile < 0.3 || v.Percentile > 0.7 {
		t.Errorf("rare token: against %q percentile %v, want among rare tokens, mid-range", v.Against, v.Percentile)
	}
	if v := s.Layers[1].Tokens[1]; v.Against != "frequent tokens" {
		t.Errorf("frequent token against %q", v.Against)
	}
	// With the classes taken away, the same token is compared with the
	// frequent tokens of positions 2–3 too (ln-ratios about 3): 60 of the
	// 80 values are below it.
	flat := *ref
	flat.Classes = nil
	s2, _ := flat.Score(res, drift.Expand, nil)
	if p := s2.Layers[1].Tokens[2]; math.Abs(p.Percentile-0.75) > 0.02 || p.Against != "" {
		t.Errorf("without classes: %+v, want percentile about 0.75 and no class", p)
	}
	// A token of a class with too few values at its position falls back
	// to every token of the position, and says so.
	thin := classedResult(id, 0.5, []int{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3})
	s3, _ := ref.Score(thin, drift.Expand, nil)
	if v := s3.Layers[1].Tokens[1]; v.Against != "frequent tokens" {
		t.Errorf("position 1: %q", v.Against)
	}
	found := false
	for _, w := range s3.Warnings {
		found = found || strings.Contains(w, "compared with every reference token of their position")
	}
	if v := s3.Layers[1].Tokens[4]; v == nil || v.Against != "any tokens" || !found {
		t.Errorf("thin class: %+v, warnings %v", v, s3.Warnings)
	}
	// AddClassed overrides the table's classes.
	b2 := NewBuilder(id, nil)
	b2.SetClasses(classes)
	if err := b2.AddClassed(classedResult(id, 0, []int{0, 0}), []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	if got := b2.byClass[5][1][1]; len(got) != 1 {
		t.Errorf("AddClassed: rare values at position 1: %v", got)
	}
	if err := b2.AddClassed(classedResult(id, 0, []int{0, 0}), []int{0}); err == nil {
		t.Error("AddClassed with too few classes: no error")
	}
}

// TestFormat2Refused: a calibration file of the previous format (no
// token classes) is refused with a message that says to recalibrate.
func TestFormat2Refused(t *testing.T) {
	dir := t.TempDir()
	id := testIdentity()
	r := buildFake(t, id, 21, 5)
	r.Format = 2
	data, _ := json.Marshal(r)
	path := filepath.Join(dir, id.FileName())
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, id)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "format 2") || !strings.Contains(err.Error(), "run `lmood calibrate` again") {
		t.Errorf("format 2: %v", err)
	}
	// A class table that does not match its cells is refused as inconsistent.
	r.Format = FormatVersion
	r.Classes = &TokenClasses{Scheme: ClassFreq, Labels: []string{"frequent", "rare"}, Of: "01"}
	r.TokenSurprisalByClass = [][]Dist{{}}
	data, _ = json.Marshal(r)
	os.WriteFile(path, data, 0o644)
	if _, err := Load(path, id); err == nil || !strings.Contains(err.Error(), "inconsistent") {
		t.Errorf("inconsistent classes: %v", err)
	}
}
