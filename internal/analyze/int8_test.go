package analyze_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestInt8BatchIndependent: with int8 weights every batch carries the
// clean copy (the int8 linears' anchor), so splitting the nudges over
// batches (also in isolation mode), or drawing them in adaptive rounds,
// gives the same numbers bit for bit as one batch.
func TestInt8BatchIndependent(t *testing.T) {
	m := tinyModelAt(t, store.PrecisionInt8)
	if !m.Int8() {
		t.Fatal("the i8 import keeps no int8 weights")
	}
	whole := analyzeOnce(t, m, base(), "hello world", "abc def ghi")
	for _, rows := range []int{2, 3, 5} {
		split := base()
		split.BatchRows = rows
		if got := analyzeOnce(t, m, split, "hello world", "abc def ghi"); !reflect.DeepEqual(whole, got) {
			t.Errorf("batches of %d rows: results differ from one batch", rows)
		}
	}
	iso := base()
	iso.Isolate, iso.BatchRows = true, 3
	isoSplit := analyzeOnce(t, m, iso, "hello world")
	iso.BatchRows = 64
	if isoWhole := analyzeOnce(t, m, iso, "hello world"); !reflect.DeepEqual(isoSplit, isoWhole) {
		t.Error("isolation mode: results depend on the batch split")
	}
	fixed := base()
	fixed.Samples = 16
	adaptive := fixed
	adaptive.Samples, adaptive.BatchRows = 40, 7
	adaptive.Stop = func(r *analyze.Result) bool { return r.Samples >= 16 }
	if a, f := analyzeOnce(t, m, adaptive, "hello world"), analyzeOnce(t, m, fixed, "hello world"); !reflect.DeepEqual(a, f) {
		t.Error("an adaptive run that stops at 16 nudges differs from a fixed run of 16")
	}
}

// TestInt8AgreesWithFloat32 scores probe prompts on the real default
// model stored int8 and float32 with the same nudges. The stated
// tolerance (README, "Precision"): prompt ratios within 0.35 of their
// spread over K (ratio_std), tokens within 0.6 of theirs, and on average
// within 0.15. Measured on 20 probes at K = 32: prompts 0.05 mean / 0.13
// max, tokens 0.06 / 0.30.
func TestInt8AgreesWithFloat32(t *testing.T) {
	f32 := testutil.RealModel(t)
	defer f32.Close()
	i8 := testutil.SharedModelAt(t, testutil.GGUF(t), "smollm2-i8", store.PrecisionInt8)
	defer i8.Close()
	prompts := []string{"Eggplants are purple.", "Eggplants are fire-engine red.", "The cat sat on the mat.", "lsadfhl; wiffle jfdalkgy burh lgoi", "Water boils at 100 degrees Celsius at sea level."}
	opt := analyze.Options{HiddenStates: []int{15}, Samples: 16, Sigma: 0.01, Seed: 1}
	a, b := analyzeOnce(t, f32, opt, prompts...), analyzeOnce(t, i8, opt, prompts...)
	var sumP, sumT float64
	var nT int
	for i := range prompts {
		fa, ia := a[i].Layers[0], b[i].Layers[0]
		dp := math.Abs(fa.Ratio.Mean-ia.Ratio.Mean) / fa.Ratio.Std
		sumP += dp
		if dp > 0.35 || math.IsNaN(dp) {
			t.Errorf("%q: prompt ratio %.4f (int8) vs %.4f (float32): %.2f of its spread", prompts[i], ia.Ratio.Mean, fa.Ratio.Mean, dp)
		}
		for k := range fa.TokenRatio {
			if !fa.TokenRatio[k].Defined || fa.TokenRatio[k].Std == 0 {
				continue
			}
			dt := math.Abs(fa.TokenRatio[k].Mean-ia.TokenRatio[k].Mean) / fa.TokenRatio[k].Std
			sumT += dt
			nT++
			if dt > 0.6 || math.IsNaN(dt) {
				t.Errorf("%q token %d: ratio %.4f vs %.4f: %.2f of its spread", prompts[i], k, ia.TokenRatio[k].Mean, fa.TokenRatio[k].Mean, dt)
			}
		}
	}
	mp, mt := sumP/float64(len(prompts)), sumT/float64(nT)
	t.Logf("int8 vs float32, in units of the spread over K: prompts mean %.3f, %d tokens mean %.3f", mp, nT, mt)
	if mp > 0.15 || mt > 0.15 {
		t.Errorf("mean differences %.3f (prompts), %.3f (tokens) exceed 0.15 of the spread", mp, mt)
	}
}
