package llama_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/testutil"
)

// qwenGGUF returns the real Qwen2.5-Coder-0.5B GGUF named by
// LMOOD_TEST_GGUF_QWEN (`lmood pull qwen2.5-coder-0.5b` puts it in
// ~/.cache/lmood/downloads/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf).
func qwenGGUF(t *testing.T) string {
	t.Helper()
	p := os.Getenv("LMOOD_TEST_GGUF_QWEN")
	if p == "" {
		testutil.Missing(t, "LMOOD_TEST_GGUF_QWEN is not set (run `lmood pull qwen2.5-coder-0.5b` and point it at the GGUF in the cache's downloads dir)")
	}
	if _, err := os.Stat(p); err != nil {
		testutil.Missing(t, "LMOOD_TEST_GGUF_QWEN=%s: %v", p, err)
	}
	return p
}

// TestOracleQwen checks the ONNX graph on the real Qwen2.5-Coder-0.5B
// (qwen2: q/k/v biases, rotate-half rotary, 14 heads over 2 KV heads,
// massive activations) against the float64 numpy oracle: hidden states 1,
// middle and last, and the logits, on three short prompts run as separate
// sequences. The oracle dequantizes the model once for all prompts (about
// 4 GB of float64 at its peak, 30-60 s).
func TestOracleQwen(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: imports a 0.5B model and runs a float64 reference")
	}
	gguf := qwenGGUF(t)
	py := testutil.Python(t)
	testutil.Runtime(t)
	m := testutil.SharedModel(t, gguf, "qwen")
	defer m.Close()
	c := m.Config()
	if c.Arch != "qwen2" {
		t.Fatalf("LMOOD_TEST_GGUF_QWEN holds a %s model, want qwen2", c.Arch)
	}
	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	prompts := []string{
		"Eggplants are fire-engine red.",
		"def add(a, b):\n    return a + b  # 12345 émigré",
		"The quick brown fox jumps over the lazy dog.",
	}
	var seqs [][]int
	var idLists []string
	for _, p := range prompts {
		toks, err := tok.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]int, len(toks))
		strs := make([]string, len(toks))
		for i, tk := range toks {
			ids[i], strs[i] = tk.ID, fmt.Sprint(tk.ID)
		}
		seqs = append(seqs, ids)
		idLists = append(idLists, strings.Join(strs, ","))
	}
	layers := []int{1, c.Middle(), c.Layers}
	strLayers := make([]string, len(layers))
	for i, l := range layers {
		strLayers[i] = fmt.Sprint(l)
	}

	dir := t.TempDir()
	refPath, logitsPath := filepath.Join(dir, "ref.bin"), filepath.Join(dir, "logits.bin")
	start := time.Now()
	cmd := exec.Command(py, filepath.Join("testdata", "oracle.py"), "--gguf", gguf,
		"--ids", strings.Join(idLists, ";"), "--layers", strings.Join(strLayers, ","),
		"--out", refPath, "--logits-out", logitsPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oracle: %v\n%s", err, out)
	}
	t.Logf("oracle: %s", time.Since(start).Round(time.Second))
	ref := testutil.ReadF32(t, refPath)
	refLogits := testutil.ReadF32(t, logitsPath)
	total := 0
	for _, s := range seqs {
		total += len(s)
	}
	if len(ref) != len(layers)*total*c.Dim || len(refLogits) != total*c.Vocab {
		t.Fatalf("oracle wrote %d states and %d logits, want %d and %d", len(ref), len(refLogits), len(layers)*total*c.Dim, total*c.Vocab)
	}

	outs := make([]runtime.Output, 0, len(layers)+1)
	points := make([]arch.Point, 0, len(layers)+1)
	for _, l := range layers {
		outs = append(outs, runtime.Output{Name: llama.Resid(l).Name(), Width: c.Dim})
		points = append(points, llama.Resid(l))
	}
	outs = append(outs, runtime.Output{Name: llama.LogitsName, Width: c.Vocab})
	points = append(points, llama.Logits())
	off := 0 // rows of the oracle's output before this prompt
	for p, ids := range seqs {
		emb, err := m.Embeddings(ids)
		if err != nil {
			t.Fatal(err)
		}
		T := len(ids)
		got := runGraph(t, m, llama.GraphOptions{Outputs: points}, outs, emb, 1, T)
		for i, l := range layers {
			base := i*total*c.Dim + off*c.Dim
			want := ref[base : base+T*c.Dim]
			e := testutil.RelErr(got[i], want)
			// Position 0's massive activations dominate a whole-state norm;
			// the worst single position shows the error of the others too.
			worst := 0.0
			for r := range T {
				worst = max(worst, testutil.RelErr(got[i][r*c.Dim:(r+1)*c.Dim], want[r*c.Dim:(r+1)*c.Dim]))
			}
			t.Logf("prompt %d (%d tokens) hidden state %2d: relative error %.2e (worst position %.2e)", p, T, l, e, worst)
			if e > oracleTol || worst > oracleTol {
				t.Errorf("prompt %d hidden state %d: relative error %.2e, worst position %.2e; want both <= %.0e", p, l, e, worst, oracleTol)
			}
		}
		want := refLogits[off*c.Vocab : (off+T)*c.Vocab]
		e := testutil.RelErr(got[len(layers)], want)
		agree := 0
		for r := range T {
			if argmax(got[len(layers)][r*c.Vocab:(r+1)*c.Vocab]) == argmax(want[r*c.Vocab:(r+1)*c.Vocab]) {
				agree++
			}
		}
		t.Logf("prompt %d logits: relative error %.2e, top-1 token agrees at %d/%d positions", p, e, agree, T)
		if e > oracleTol {
			t.Errorf("prompt %d logits: relative error %.2e > %.0e", p, e, oracleTol)
		}
		off += T
	}
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
