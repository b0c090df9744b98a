package arch

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func randomPrepared(r *rand.Rand, dims ...int64) Prepared {
	n := int64(1)
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	return Prepared{Data: data, Dims: dims}
}

// TestFoldApplyIsExact: a fold changes the tensors but not what the graph
// computes from them: producer output p (a vector times a per-channel
// weight, or x @ P) read through the consumer (p @ C, channels mapped) is
// the same before and after, and the factors follow BalanceExponent.
func TestFoldApplyIsExact(t *testing.T) {
	const heads, kvHeads, headDim, in, out = 4, 2, 3, 5, 7
	for _, tc := range []struct {
		name    string
		channel func(int) int
		width   int // producer channels
		rows    int // consumer input rows
		vector  bool
	}{
		{"norm into one consumer", nil, 6, 6, true},
		{"value columns, grouped heads", GroupedChannel(heads, kvHeads, headDim), kvHeads * headDim, heads * headDim, false},
		{"up columns", nil, 8, 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			w := map[string]Prepared{}
			if tc.vector {
				w["p"] = randomPrepared(r, int64(tc.width))
			} else {
				w["p"] = randomPrepared(r, in, int64(tc.width))
				w["b"] = randomPrepared(r, int64(tc.width)) // a bias
			}
			w["c"] = randomPrepared(r, int64(tc.rows), out)
			w["c"].Data[0] *= 50 // an outlying row
			x := randomPrepared(r, int64(in))
			channel := tc.channel
			if channel == nil {
				channel = func(c int) int { return c }
			}
			// through computes the consumer's output from the producers.
			through := func(w map[string]Prepared) []float64 {
				p := make([]float64, tc.width)
				for j := range p {
					if tc.vector {
						p[j] = float64(x.Data[j%in]) * float64(w["p"].Data[j])
						continue
					}
					for k := 0; k < in; k++ {
						p[j] += float64(x.Data[k]) * float64(w["p"].Data[k*tc.width+j])
					}
					p[j] += float64(w["b"].Data[j])
				}
				y := make([]float64, out)
				for c := 0; c < tc.rows; c++ {
					for n := 0; n < out; n++ {
						y[n] += p[channel(c)] * float64(w["c"].Data[c*out+n])
					}
				}
				return y
			}
			want := through(w)
			before := append([]float32(nil), w["c"].Data...)
			producers := []string{"p"}
			if !tc.vector {
				producers = append(producers, "b")
			}
			factors, err := Fold{Consumers: []string{"c"}, Producers: producers, Channel: tc.channel}.Apply(w)
			if err != nil {
				t.Fatal(err)
			}
			got := through(w)
			for n := range want {
				if math.Abs(got[n]-want[n]) > 1e-5*(1+math.Abs(want[n])) {
					t.Errorf("output %d: %g after the fold, %g before", n, got[n], want[n])
				}
			}
			// Factors: the consumer rows' peak to the power α, over its mean.
			peak := make([]float64, tc.width)
			for c := 0; c < tc.rows; c++ {
				for _, v := range before[c*out : (c+1)*out] {
					peak[channel(c)] = math.Max(peak[channel(c)], math.Abs(float64(v)))
				}
			}
			var mean float64
			for _, p := range peak {
				mean += math.Pow(p, BalanceExponent) / float64(tc.width)
			}
			for j, p := range peak {
				if want := math.Pow(p, BalanceExponent) / mean; math.Abs(float64(factors[j])-want) > 1e-5*want {
					t.Errorf("factor %d: %g, want %g", j, factors[j], want)
				}
			}
			if f := factors[channel(0)]; f <= 1 {
				t.Errorf("the outlying row's factor is %g, not above 1", f)
			}
		})
	}
}

func TestFoldApplyErrors(t *testing.T) {
	vec := func(n int64) Prepared { return Prepared{Data: make([]float32, n), Dims: []int64{n}} }
	mat := func(a, b int64) Prepared { return Prepared{Data: make([]float32, a*b), Dims: []int64{a, b}} }
	for _, tc := range []struct {
		name string
		fold Fold
		w    map[string]Prepared
		want string
	}{
		{"no producers", Fold{Consumers: []string{"c"}}, map[string]Prepared{"c": mat(2, 2)}, "needs consumers and producers"},
		{"missing producer", Fold{Consumers: []string{"c"}, Producers: []string{"p"}}, map[string]Prepared{"c": mat(2, 2)}, "producer p missing"},
		{"missing consumer", Fold{Consumers: []string{"c"}, Producers: []string{"p"}}, map[string]Prepared{"p": vec(2)}, "consumer c missing"},
		{"producer widths differ", Fold{Consumers: []string{"c"}, Producers: []string{"p", "q"}}, map[string]Prepared{"p": vec(2), "q": vec(3), "c": mat(2, 2)}, "want 2 channels"},
		{"consumer too wide", Fold{Consumers: []string{"c"}, Producers: []string{"p"}}, map[string]Prepared{"p": vec(2), "c": mat(3, 2)}, "maps to channel 2 of 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.fold.Apply(tc.w); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestFoldZeroRows: a channel whose consumer rows are all zero keeps
// factor 1, and nothing becomes NaN.
func TestFoldZeroRows(t *testing.T) {
	w := map[string]Prepared{
		"p": {Data: []float32{1, 2, 3}, Dims: []int64{3}},
		"c": {Data: []float32{0, 0, 4, 1, 1, 1}, Dims: []int64{3, 2}},
	}
	f, err := Fold{Consumers: []string{"c"}, Producers: []string{"p"}}.Apply(w)
	if err != nil {
		t.Fatal(err)
	}
	if f[0] != 1 {
		t.Errorf("zero row's factor %g, want 1", f[0])
	}
	for _, v := range append(w["p"].Data, w["c"].Data...) {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("non-finite value after the fold: %v %v", w["p"].Data, w["c"].Data)
		}
	}
}

func TestGroupedChannel(t *testing.T) {
	ch := GroupedChannel(4, 2, 3) // query heads 0,1 read kv head 0; 2,3 read 1
	for c, want := range []int{0, 1, 2, 0, 1, 2, 3, 4, 5, 3, 4, 5} {
		if got := ch(c); got != want {
			t.Errorf("channel %d → %d, want %d", c, got, want)
		}
	}
}

// columnInt8 is a per-column symmetric int8 round trip of an [in, out]
// weight, as an int8 store keeps it.
func columnInt8(p Prepared) ([]float32, error) {
	in, out := int(p.Dims[0]), int(p.Dims[1])
	back := make([]float32, len(p.Data))
	for n := 0; n < out; n++ {
		var peak float64
		for k := 0; k < in; k++ {
			peak = math.Max(peak, math.Abs(float64(p.Data[k*out+n])))
		}
		if peak == 0 {
			continue
		}
		step := peak / 127
		for k := 0; k < in; k++ {
			back[k*out+n] = float32(math.Round(float64(p.Data[k*out+n])/step) * step)
		}
	}
	return back, nil
}

// TestFoldBalanceKeepsWhatPays: a fold is kept where a few outlying rows
// dominate the consumers' column scales (the int8 error drops by far more
// than MinBalanceGain), and undone — every tensor restored bit for bit —
// where the rows are alike.
func TestFoldBalanceKeepsWhatPays(t *testing.T) {
	for _, tc := range []struct {
		name     string
		outliers float32
		keep     bool
	}{{"outlying rows", 30, true}, {"rows alike", 1, false}} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, 8))
			w := map[string]Prepared{"p": randomPrepared(r, 64), "c": randomPrepared(r, 64, 48)}
			for k := 0; k < 64; k += 16 {
				for n := 0; n < 48; n++ {
					w["c"].Data[k*48+n] *= tc.outliers
				}
			}
			orig := map[string][]float32{"p": append([]float32(nil), w["p"].Data...), "c": append([]float32(nil), w["c"].Data...)}
			fold := Fold{Consumers: []string{"c"}, Producers: []string{"p"}}
			factors, err := fold.Balance(w, columnInt8)
			if err != nil {
				t.Fatal(err)
			}
			if (factors != nil) != tc.keep {
				t.Fatalf("fold kept: %v, want %v", factors != nil, tc.keep)
			}
			same := true
			for name, data := range orig {
				for i := range data {
					same = same && data[i] == w[name].Data[i]
				}
			}
			if same == tc.keep {
				t.Errorf("tensors unchanged: %v, with the fold kept: %v", same, tc.keep)
			}
		})
	}
	if _, err := (Fold{Consumers: []string{"missing"}, Producers: []string{"p"}}).Balance(map[string]Prepared{"p": {Data: []float32{1}, Dims: []int64{1}}}, columnInt8); err == nil {
		t.Error("a missing consumer: no error")
	}
}
