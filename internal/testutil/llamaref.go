package testutil

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/store"
)

// The helpers below compare lmood's logits with llama.cpp's on the same
// GGUF. llama.cpp is built from the pinned llama-cpp-python source archive
// with a small driver of ours (internal/arch/testdata/llamaref):
//
//	llamaref -m FILE.gguf -ids 1,2,3 -t THREADS -o OUT.bin
//
// writes the logits at every position, float32 [len(ids), vocab].
// scripts/llamaref.sh build builds it and prints its path; scripts/test.sh
// exports it as LMOOD_LLAMAREF.

// LlamaRef returns the llama.cpp reference driver named by LMOOD_LLAMAREF;
// without it the test skips, or fails under LMOOD_REQUIRE_ORACLE=1.
func LlamaRef(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LMOOD_LLAMAREF")
	if p == "" {
		Missing(t, "LMOOD_LLAMAREF is not set (export LMOOD_LLAMAREF=$(scripts/llamaref.sh build))")
	}
	if _, err := os.Stat(p); err != nil {
		Missing(t, "LMOOD_LLAMAREF=%s: %v (rebuild with scripts/llamaref.sh build)", p, err)
	}
	return p
}

// LlamaRefThreads is how many threads llama.cpp computes with in the tests.
const LlamaRefThreads = 2

// LlamaRefLogits runs llama.cpp on gguf with the token ids as one sequence
// and returns its logits, [len(ids), vocab] position-major.
func LlamaRefLogits(t testing.TB, bin, gguf string, ids []int, vocab int) []float32 {
	t.Helper()
	strIDs := make([]string, len(ids))
	for i, id := range ids {
		strIDs[i] = fmt.Sprint(id)
	}
	out := filepath.Join(t.TempDir(), "logits.bin")
	cmd := exec.Command(bin, "-m", gguf, "-ids", strings.Join(strIDs, ","), "-t", fmt.Sprint(LlamaRefThreads), "-o", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("llama.cpp (%s) on %s: %v\n%s", bin, gguf, err, msg)
	}
	got := ReadF32(t, out)
	if len(got) != len(ids)*vocab {
		t.Fatalf("llama.cpp wrote %d logits, want %d positions × vocab %d", len(got), len(ids), vocab)
	}
	return got
}

// LogitStats sums up how two sets of logits [T, vocab] differ.
type LogitStats struct {
	// RelErr is the largest relative Frobenius error of one position's
	// logits, |a−b| / |b| over the vocabulary.
	RelErr float64
	// MaxAbs is the largest |a−b| of any logit, and Scale the largest
	// standard deviation of one position's reference logits.
	MaxAbs, Scale float64
	// Top1 counts the positions whose highest logit is the same token.
	Top1, Positions int
	// Top1Gap is the largest amount by which the reference's logit of
	// got's top token falls short of the reference's highest logit (0 when
	// every top-1 agrees): a disagreement by less than the logits' float32
	// error is a tie.
	Top1Gap float64
}

// String reports the statistics in one line.
func (s LogitStats) String() string {
	msg := fmt.Sprintf("worst position relative error %.2e, max |Δlogit| %.2e (logit std up to %.2f), top-1 agrees at %d/%d positions",
		s.RelErr, s.MaxAbs, s.Scale, s.Top1, s.Positions)
	if s.Top1 < s.Positions {
		msg += fmt.Sprintf(" (the reference's logit of lmood's top token is at most %.2e below its top)", s.Top1Gap)
	}
	return msg
}

// CompareLogits compares got with the reference want, both [T, vocab].
func CompareLogits(got, want []float32, vocab int) LogitStats {
	s := LogitStats{Positions: len(want) / vocab}
	for r := range s.Positions {
		a, b := got[r*vocab:(r+1)*vocab], want[r*vocab:(r+1)*vocab]
		e := RelErr(a, b)
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		s.RelErr = max(s.RelErr, e)
		var mean, sq float64
		for i := range b {
			mean += float64(b[i])
			s.MaxAbs = max(s.MaxAbs, math.Abs(float64(a[i])-float64(b[i])))
		}
		mean /= float64(vocab)
		for i := range b {
			sq += (float64(b[i]) - mean) * (float64(b[i]) - mean)
		}
		s.Scale = max(s.Scale, math.Sqrt(sq/float64(vocab)))
		if ia, ib := argmax(a), argmax(b); ia == ib {
			s.Top1++
		} else {
			s.Top1Gap = max(s.Top1Gap, float64(b[ib])-float64(b[ia]))
		}
	}
	return s
}

func argmax(xs []float32) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// ModelLogits runs m's graph with the logits site on ids (one sequence)
// and returns them, [len(ids), vocab].
func ModelLogits(t testing.TB, m *store.Model, ids []int) []float32 {
	t.Helper()
	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	return RunPoints(t, m, []arch.Point{arch.Logits()}, emb, len(ids))[arch.Logits()]
}

// TieGap is how far below llama.cpp's highest logit the logit of lmood's
// top token may be for CheckLlamaRef's top-1 check to call it a tie: the
// synthetic models' logits agree to about 5e-6 (float32 through a few
// blocks), and a soft-capped head squeezes them close together.
const TieGap = 2e-5

// CheckLlamaRef compares m's logits on ids with llama.cpp's on the GGUF m
// was imported from (path): it requires a relative error of at most tol at
// every position and, when top1 is set, the same top-1 token at every
// position up to ties (TieGap); it logs and returns the statistics.
func CheckLlamaRef(t *testing.T, m *store.Model, path string, ids []int, tol float64, top1 bool) LogitStats {
	t.Helper()
	bin := LlamaRef(t)
	v := m.Config().Vocab
	want := LlamaRefLogits(t, bin, path, ids, v)
	got := ModelLogits(t, m, ids)
	s := CompareLogits(got, want, v)
	t.Logf("lmood vs llama.cpp on %d tokens: %s", len(ids), s)
	if !(s.RelErr <= tol) {
		t.Errorf("logits differ from llama.cpp's: worst position relative error %.2e > %.0e", s.RelErr, tol)
	}
	if top1 && s.Top1 != s.Positions && !(s.Top1Gap <= TieGap) {
		t.Errorf("top-1 token differs from llama.cpp's at %d of %d positions, by up to %.2e in llama.cpp's logits (ties: %.0e)", s.Positions-s.Top1, s.Positions, s.Top1Gap, TieGap)
	}
	return s
}

// TinyLlamaRefTol is the relative error per position allowed between
// lmood's float32 graph and llama.cpp on a tiny model with float32 weights:
// both compute in float32 (llama.cpp's KV cache kept in float32 by the
// driver), only in a different order, so they agree to a few float32 ulps
// per operation, amplified by the few blocks.
const TinyLlamaRefTol = 1e-4

// CheckTinyLlamaRef writes nothing itself: it imports the tiny GGUF at
// path, runs llama.cpp and lmood on ids and compares the logits at every
// position (TinyLlamaRefTol, same top-1 everywhere). It is what a family's
// llama.cpp test calls.
func CheckTinyLlamaRef(t *testing.T, path string, ids []int) LogitStats {
	t.Helper()
	LlamaRef(t)
	Runtime(t)
	m := ImportTiny(t, path)
	defer m.Close()
	return CheckLlamaRef(t, m, path, ids, TinyLlamaRefTol, true)
}

// RealLlamaRef compares a real model's logits (m, imported from the GGUF at
// path at f32 precision) with llama.cpp's on each prompt, tokenized by
// lmood. llama.cpp multiplies quantized weights with activations quantized
// to 8 bits, lmood with dequantized float32 weights, so the logits differ
// more than on a float32 model: each prompt's worst position must stay
// within tol, and the top-1 token must agree at no fewer than minTop1 of
// all positions. It returns the statistics per prompt.
func RealLlamaRef(t *testing.T, m *store.Model, path string, prompts []string, tol, minTop1 float64) []LogitStats {
	t.Helper()
	if m.Manifest.Precision != store.PrecisionF32 {
		t.Fatalf("model stored at precision %q, the comparison needs %q", m.Manifest.Precision, store.PrecisionF32)
	}
	bin := LlamaRef(t)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	v := m.Config().Vocab
	var all []LogitStats
	agree, positions := 0, 0
	for _, p := range prompts {
		toks, err := tok.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, len(toks))
		for i, tk := range toks {
			ids[i] = tk.ID
		}
		s := CompareLogits(ModelLogits(t, m, ids), LlamaRefLogits(t, bin, path, ids, v), v)
		t.Logf("%q (%d tokens): %s", p, len(ids), s)
		if !(s.RelErr <= tol) {
			t.Errorf("%q: logits differ from llama.cpp's: worst position relative error %.2e > %.2g", p, s.RelErr, tol)
		}
		agree, positions = agree+s.Top1, positions+s.Positions
		all = append(all, s)
	}
	if frac := float64(agree) / float64(positions); frac < minTop1 {
		t.Errorf("top-1 token agrees with llama.cpp's at %d/%d positions, want at least %.0f%%", agree, positions, 100*minTop1)
	}
	return all
}

// Tolerances of the real-model comparisons (RealLlamaRef); see the README.
const (
	RealLlamaRefTol  = 0.3
	RealLlamaRefTop1 = 0.8
)

// DequantizedGGUF writes a copy of the GGUF at src with every tensor
// dequantized to float32 (lmood's dequantization, checked against the PyPI
// gguf package by the numpy oracles) and the same metadata, and returns
// its path. llama.cpp then multiplies in float32 too, which separates the
// error of its 8-bit activation quantization from any disagreement about
// the model. It holds the whole model in memory: use it on small models.
func DequantizedGGUF(t testing.TB, src string) string {
	t.Helper()
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := gguf.NewWriter()
	for _, k := range f.Keys() {
		if k == gguf.KeyAlignment {
			continue
		}
		v, _ := f.Value(k)
		w.Add(k, v)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data, err := f.ReadTensorF32(ti)
		if err != nil {
			t.Fatalf("dequantize %s: %v", ti.Name, err)
		}
		w.AddTensorF32(ti.Name, ti.Dims, data)
	}
	path := filepath.Join(t.TempDir(), "f32-"+filepath.Base(src))
	if err := w.WriteFile(path); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
	return path
}

// RealF32LlamaRefTol is the relative error per position allowed between
// lmood and llama.cpp on a real model whose GGUF holds float32 weights.
const RealF32LlamaRefTol = 1e-4
