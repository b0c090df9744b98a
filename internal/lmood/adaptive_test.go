package lmood

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// stat is a prompt-level value over n valid nudges.
func statN(mean, std float64, n int) analyze.Stat {
	return analyze.Stat{Mean: mean, Std: std, N: n, Defined: true}
}

// TestPrecise: the stopping rule of adaptive K is the relative standard
// error of the prompt value under the rule's aggregation, at every point.
func TestPrecise(t *testing.T) {
	layer := func(idx int, flat, trimmed analyze.Stat) analyze.Layer {
		l := analyze.Layer{Index: idx, Ratio: flat}
		l.Aggregate[drift.Flat], l.Aggregate[drift.Trimmed] = flat, trimmed
		return l
	}
	// SE = std/√n: 0.4/√16 = 0.1, relative to 2: 0.05; 0.2/√16 = 0.05, relative 0.025.
	wide, narrow := statN(2, 0.4, 16), statN(2, 0.2, 16)
	tests := []struct {
		name   string
		rule   Rule
		layers []analyze.Layer
		target float64
		want   bool
	}{
		{"trimmed within target", Rule{Aggregate: drift.Trimmed}, []analyze.Layer{layer(1, wide, narrow)}, 0.03, true},
		{"flat outside target", Rule{Aggregate: drift.Flat}, []analyze.Layer{layer(1, wide, narrow)}, 0.03, false},
		{"exactly at target", Rule{Aggregate: drift.Flat}, []analyze.Layer{layer(1, wide, narrow)}, 0.05, true},
		{"every layer must be precise", Rule{Aggregate: drift.Trimmed}, []analyze.Layer{layer(1, wide, narrow), layer(2, wide, wide)}, 0.03, false},
		{"one nudge: no standard error", Rule{Aggregate: drift.Flat}, []analyze.Layer{layer(1, statN(2, 0, 1), narrow)}, 0.5, false},
		{"an undefined value does not hold sampling up", Rule{Aggregate: drift.Flat},
			[]analyze.Layer{layer(1, narrow, narrow), layer(2, analyze.Stat{Invalid: 16}, analyze.Stat{Invalid: 16})}, 0.03, true},
		{"isolation mode is never precise", Rule{Isolate: true}, []analyze.Layer{layer(1, narrow, narrow)}, 0.5, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := &analyze.Result{Tokens: make([]analyze.Token, 3), Selected: 2, Layers: tc.layers}
			if got := tc.rule.Precise(res, tc.target); got != tc.want {
				t.Errorf("Precise(%g) = %v, want %v", tc.target, got, tc.want)
			}
		})
	}
	s := Summary{Ratio: 2, RatioStd: 0.4, N: 16, OK: true}
	if se := s.StdErr(); math.Abs(se-0.1) > 1e-15 {
		t.Errorf("StdErr = %v, want 0.1", se)
	}
}

// TestAdaptiveOptions: the new options are validated, and a target sets the
// analyzer's stopping rule (not in isolation mode).
func TestAdaptiveOptions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Options)
		option string
	}{
		{"negative target", func(o *Options) { o.PrecisionTarget = -0.1 }, "precision-target"},
		{"target 1", func(o *Options) { o.PrecisionTarget = 1 }, "precision-target"},
		{"NaN target", func(o *Options) { o.PrecisionTarget = math.NaN() }, "precision-target"},
		{"accuracy 5", func(o *Options) { o.MatmulAccuracy = 5 }, "matmul-accuracy"},
		{"negative accuracy", func(o *Options) { o.MatmulAccuracy = -1 }, "matmul-accuracy"},
		{"negative batch memory", func(o *Options) { o.BatchMemory = -1 }, "batch-memory"},
	} {
		o := DefaultOptions()
		tc.mod(&o)
		var oe *OptionError
		if _, err := o.Resolve([]int{1}); !errors.As(err, &oe) || oe.Option != tc.option {
			t.Errorf("%s: err = %v, want an *OptionError for %s", tc.name, err, tc.option)
		}
	}
	o := DefaultOptions()
	o.PrecisionTarget, o.MatmulAccuracy, o.BatchMemory = 0.02, 4, 64
	r, err := o.Resolve([]int{1})
	if err != nil {
		t.Fatal(err)
	}
	if r.Analyze.Stop == nil || r.Analyze.PrecisionTarget != 0.02 || r.Analyze.MatmulAccuracy != 4 || r.Analyze.BatchMiB != 64 {
		t.Errorf("resolved %+v", r.Analyze)
	}
	// The stop rule is Rule.Precise at the target: a 1% standard error
	// passes 0.02, a 5% one does not.
	mk := func(std float64) *analyze.Result {
		l := analyze.Layer{Index: 1}
		l.Aggregate[drift.Trimmed] = statN(1, std, 16)
		return &analyze.Result{Tokens: make([]analyze.Token, 3), Selected: 2, Layers: []analyze.Layer{l}}
	}
	if !r.Analyze.Stop(mk(0.04)) || r.Analyze.Stop(mk(0.2)) {
		t.Error("Stop does not apply the 0.02 target")
	}
	o.Isolate = true
	if r, _ := o.Resolve([]int{1}); r.Analyze.Stop != nil || r.Analyze.PrecisionTarget != 0 {
		t.Error("isolation mode got an adaptive K")
	}
	if d := DefaultOptions(); d.PrecisionTarget != DefaultPrecisionTarget || d.MatmulAccuracy != DefaultMatmulAccuracy {
		t.Errorf("defaults %+v", d)
	}
}

func TestParseMemAvailable(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   16000000 kB\n", 16000000 << 10, true},
		{"MemTotal: 1 kB\n", 0, false},
		{"MemAvailable: lots kB\n", 0, false},
	} {
		got, ok := parseMemAvailable([]byte(tc.in))
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseMemAvailable(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	if n, ok := MemAvailable(); ok && n <= 0 {
		t.Errorf("this machine: MemAvailable %d", n)
	}
}

// TestMemoryRefusal: a session whose estimate exceeds the memory available
// is refused before anything is loaded, with the estimate, what is
// available and what to try; with enough memory it is not.
func TestMemoryRefusal(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	old := MemAvailable
	defer func() { MemAvailable = old }()
	MemAvailable = func() (int64, bool) { return 100 << 20, true }
	_, err = NewSession(m, DefaultOptions(), []int{1}, 1, Hooks{})
	var me *MemoryError
	if !errors.As(err, &me) || !errors.Is(err, ErrNoMemory) {
		t.Fatalf("100 MiB available: err = %v, want a *MemoryError", err)
	}
	msg := err.Error()
	for _, want := range []string{"needs about", "only 100 MiB is available", "--batch-memory", "--precision q"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if me.Need.Total() <= 100<<20 || me.Available != 100<<20 {
		t.Errorf("error holds %+v", me)
	}
	r, err := DefaultOptions().Resolve([]int{1})
	if err != nil {
		t.Fatal(err)
	}
	MemAvailable = func() (int64, bool) { return me.Need.Total(), true }
	if err := checkMemory(m, r.Analyze, Hooks{}); err != nil {
		t.Errorf("exactly the estimate available: %v", err)
	}
	MemAvailable = func() (int64, bool) { return 0, false }
	if err := checkMemory(m, r.Analyze, Hooks{}); err != nil {
		t.Errorf("unknown memory: %v", err)
	}
	// A smaller batch budget is what the message suggests: it lowers the estimate.
	r.Analyze.BatchMiB = 8
	small, err := analyze.EstimateMemory(m, r.Analyze)
	if err != nil {
		t.Fatal(err)
	}
	if small.Total() >= me.Need.Total() {
		t.Errorf("--batch-memory 8: estimate %v, default %v", small, me.Need)
	}
}
