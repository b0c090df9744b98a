package eval

import (
	"math/rand/v2"
	"testing"
)

func benchScores(n int) (pos, neg []float64) {
	r := rand.New(rand.NewPCG(1, 2))
	pos, neg = make([]float64, n), make([]float64, n)
	for i := range pos {
		pos[i] = r.NormFloat64() + 0.5
		neg[i] = r.NormFloat64()
	}
	return pos, neg
}

func BenchmarkAUROC10k(b *testing.B) {
	pos, neg := benchScores(10000)
	for b.Loop() {
		_ = AUROC(pos, neg)
	}
}

func BenchmarkCorruptCharNoise(b *testing.B) {
	s := samples[1]
	for b.Loop() {
		_, _ = Corrupt(KindCharNoise, s, 1)
	}
}
