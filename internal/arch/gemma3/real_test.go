package gemma3_test

import (
	"os"
	"slices"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/testutil"
)

// realGGUF returns the Gemma 3 270M GGUF from LMOOD_TEST_GGUF_GEMMA3
// (gemma-3-270m-q4_k_m.gguf, SHA-256 a5fd3b62…6818): skipped when unset,
// failing under LMOOD_REQUIRE_ORACLE=1.
func realGGUF(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LMOOD_TEST_GGUF_GEMMA3")
	if p == "" {
		testutil.Missing(t, "LMOOD_TEST_GGUF_GEMMA3 is not set (the Gemma 3 270M Q4_K_M GGUF)")
	}
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, "LMOOD_TEST_GGUF_GEMMA3=%s: %v", p, err)
	}
	return p
}

// realPrompts are the prompts of the real-model tests.
var realPrompts = []string{"The quick brown fox jumps over the lazy", "Gemma counts: one, two, three", "def add(a, b):\n    return a + b"}

// TestRealOracle imports Gemma 3 270M, tokenizes two short prompts and
// compares lmood's graph with the numpy oracle at hidden states 0, 1, 6
// (after the first global block), 9 and 18, at norm.18 and at the logits
// of every position; it also checks that the model completes a famous
// sentence, which the oracle alone could not show (it shares the reading of
// the GGUF: folded norm weights, the window pattern).
func TestRealOracle(t *testing.T) {
	path := realGGUF(t)
	py := testutil.Python(t)
	testutil.Runtime(t)
	m := testutil.SharedModel(t, path, "gemma3-270m")
	defer m.Close()
	man := m.Manifest
	t.Logf("imported %s: %d blocks, width %d, vocab %d, %d params, %.1fs", man.Arch, man.Config.Layers, man.Config.Dim, man.Config.Vocab, man.Params, man.ConvertSeconds)
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	n := m.Config().Layers
	points := []arch.Point{arch.Resid(0), arch.Resid(1), arch.Resid(6), arch.Resid(n / 2), arch.Resid(n),
		{Site: arch.SiteNorm, Index: n}, arch.Logits()}
	for _, prompt := range realPrompts[:2] {
		toks, err := tok.Encode(prompt)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, len(toks))
		for i, tk := range toks {
			ids[i] = tk.ID
		}
		t.Logf("%q → %v", prompt, ids)
		worst := testutil.CheckOracle(t, m, py, oracleScript, path, ids, points, nil, oracleTol)
		t.Logf("%q: worst relative error %.2e", prompt, worst)

		if prompt == "The quick brown fox jumps over the lazy" {
			emb, err := m.Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			lg := testutil.RunPoints(t, m, []arch.Point{arch.Logits()}, emb, len(ids))[arch.Logits()]
			v := m.Config().Vocab
			last := lg[(len(ids)-1)*v:]
			best := 0
			for i, x := range last {
				if x > last[best] {
					best = i
				}
			}
			next := tok.Decode([]int{best})
			t.Logf("next token after %q: %d %q", prompt, best, next)
			if !slices.Contains([]string{" dog", "dog"}, next) {
				t.Errorf("Gemma 3 270M continues %q with %q, not dog", prompt, next)
			}
		}
	}
}

// TestRealLlamaCpp compares Gemma 3 270M's logits at every position
// (lmood's f32 store) with llama.cpp's on the same Q4_K_M GGUF, an
// implementation that shares none of lmood's reading of the file; see
// testutil.RealLlamaRef for the tolerances.
func TestRealLlamaCpp(t *testing.T) {
	path := realGGUF(t)
	testutil.LlamaRef(t)
	testutil.Runtime(t)
	m := testutil.SharedModel(t, path, "gemma3-270m")
	defer m.Close()
	testutil.RealLlamaRef(t, m, path, realPrompts, testutil.RealLlamaRefTol, testutil.RealLlamaRefTop1)
}
