package drift

import "testing"

const benchT, benchD, benchK = 32, 576, 32

func BenchmarkNudgePerToken(b *testing.B) {
	e := randMatrix(benchT, benchD, 1)
	dst := make([]float32, len(e.Data))
	r := NewRand(1, 0, 0, AllTokens)
	b.ReportAllocs()
	for b.Loop() {
		_ = Nudge(dst, e, NudgeOptions{Sigma: 0.01}, r)
	}
}

func BenchmarkNudgeWhole(b *testing.B) {
	e := randMatrix(benchT, benchD, 1)
	dst := make([]float32, len(e.Data))
	r := NewRand(1, 0, 0, AllTokens)
	b.ReportAllocs()
	for b.Loop() {
		_ = Nudge(dst, e, NudgeOptions{Sigma: 0.01, Scale: Whole}, r)
	}
}

// BenchmarkNudgeBatchK32 fills one [K, T, d] batch.
func BenchmarkNudgeBatchK32(b *testing.B) {
	e := randMatrix(benchT, benchD, 1)
	dst := make([]float32, benchK*len(e.Data))
	b.ReportAllocs()
	for b.Loop() {
		_ = NudgeBatch(dst, e, NudgeOptions{Sigma: 0.01}, 1, 0, 0, benchK)
	}
}

func BenchmarkTokenAngles(b *testing.B) {
	e := randMatrix(benchT, benchD, 1)
	f := randMatrix(benchT, benchD, 2)
	ang := make([]float64, benchT)
	ok := make([]bool, benchT)
	b.ReportAllocs()
	for b.Loop() {
		_, _ = TokenAnglesDeg(ang, ok, e, f)
	}
}

// BenchmarkAccumulatorK32 streams K=32 nudges through one hidden state.
func BenchmarkAccumulatorK32(b *testing.B) {
	e := randMatrix(benchT, benchD, 1)
	h := randMatrix(benchT, benchD, 2)
	buf := make([]float32, benchK*len(e.Data))
	_ = NudgeBatch(buf, e, NudgeOptions{Sigma: 0.01}, 1, 0, 0, benchK)
	sel, _ := Select(benchT, true, nil)
	b.ReportAllocs()
	for b.Loop() {
		acc, _ := NewAccumulator(e, []Matrix{h}, sel)
		for k := 0; k < benchK; k++ {
			x, _ := BatchItem(buf, k, benchT, benchD)
			_ = acc.Add(x, []Matrix{x})
		}
	}
}
