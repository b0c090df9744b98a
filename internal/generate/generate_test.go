package generate_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/generate"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

func tinyModel(t *testing.T) *store.Model {
	t.Helper()
	testutil.Runtime(t)
	// No BOS, EOS or <|endoftext|>: generation never stops early, and there
	// is no default start token.
	tm := testutil.DefaultTiny()
	tm.NoSpecials = true
	path := testutil.WriteTiny(t, tm)
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newGen(t *testing.T, m *store.Model) *generate.Generator {
	t.Helper()
	g, err := generate.New(m, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// TestDeterministic: the same seed gives the same passages whatever the
// batch size; another seed gives others.
func TestDeterministic(t *testing.T) {
	g := newGen(t, tinyModel(t))
	opt := generate.Options{Passages: 7, Tokens: 6, Seed: 3, Start: []int{'T'}}
	run := func(o generate.Options) []generate.Passage {
		ps, err := g.Generate(o, nil)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}
	a := run(opt)
	opt.BatchRows = 2
	b := run(opt)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("batch size changed the passages:\n%+v\n%+v", a, b)
	}
	opt.Seed = 4
	c := run(opt)
	if reflect.DeepEqual(a, c) {
		t.Error("seeds 3 and 4 gave the same passages")
	}
	for i, p := range a {
		if p.Index != i || len(p.IDs) != 6 || p.Stopped || !utf8.ValidString(p.Text) {
			t.Errorf("passage %d: %+v", i, p)
		}
	}
}

// TestMatchesLogitsGraph replays the sampling against the model's full
// logits graph: each token is the one the same uniform draw selects from
// the softmax of the last position's logits.
func TestMatchesLogitsGraph(t *testing.T) {
	m := tinyModel(t)
	g := newGen(t, m)
	const seed, temp = 11, 0.8
	start := []int{'A', 'b'}
	ps, err := g.Generate(generate.Options{Passages: 3, Tokens: 5, Seed: seed, Temperature: temp, Start: start}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config()
	s, err := m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{arch.Logits()}}, arch.InputEmbeds, []runtime.Output{{Name: arch.LogitsName, Width: c.Vocab}}, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, p := range ps {
		rng := rand.New(rand.NewPCG(seed, uint64(p.Index)))
		ids := append([]int{}, start...)
		for step, want := range p.IDs {
			emb, err := m.Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.Run(emb, 1, len(ids))
			if err != nil {
				t.Fatal(err)
			}
			last := out[0][(len(ids)-1)*c.Vocab:]
			if got := generate.SampleForTest(last, temp, rng.Float64()); got != want {
				t.Fatalf("passage %d step %d: the logits graph draws %d, the generator drew %d", p.Index, step, got, want)
			}
			ids = append(ids, want)
		}
	}
}

func TestBadOptions(t *testing.T) {
	g := newGen(t, tinyModel(t))
	tests := []struct {
		name string
		opt  generate.Options
		want string
	}{
		{"no passages", generate.Options{Start: []int{1}}, "passages must be at least 1"},
		{"negative temperature", generate.Options{Passages: 1, Temperature: -1, Start: []int{1}}, "temperature"},
		{"top-p", generate.Options{Passages: 1, TopP: 1.5, Start: []int{1}}, "top-p"},
		{"start outside", generate.Options{Passages: 1, Start: []int{100000}}, "outside the vocabulary"},
		// The tiny vocabulary has no BOS and no <|endoftext|>.
		{"no start", generate.Options{Passages: 1}, "give start tokens"},
		{"too long", generate.Options{Passages: 1, Tokens: 1000, Start: []int{1}}, "context"},
	}
	for _, tc := range tests {
		if _, err := g.Generate(tc.opt, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestRealModel samples 8 short passages from the real model twice.
func TestRealModel(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	g := newGen(t, m)
	start, name := g.DefaultStart()
	if len(start) != 1 || name != "<|endoftext|>" {
		t.Errorf("default start = %v %q, want <|endoftext|>", start, name)
	}
	opt := generate.Options{Passages: 8, Tokens: 16, Seed: 1}
	t0 := time.Now()
	a, err := g.Generate(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("8 passages × 16 tokens in %v", time.Since(t0))
	opt.BatchRows = 3
	b, err := g.Generate(opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Error("the same seed gave other passages with another batch size")
	}
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range a {
		if !utf8.ValidString(p.Text) || len(p.IDs) > 16 || (!p.Stopped && len(p.IDs) != 16) {
			t.Errorf("passage %d: %+v", p.Index, p)
		}
		for _, id := range p.IDs {
			if tok.IsSpecial(id) {
				t.Errorf("passage %d holds special token %d", p.Index, id)
			}
		}
		t.Logf("%d stopped=%v repaired=%v %q", p.Index, p.Stopped, p.Repaired, p.Text)
	}
}
