package llama_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// Tolerance of the oracle comparison: relative Frobenius error per hidden
// state, float32 graph vs float64 numpy reference.
const oracleTol = 1e-3

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// relErr is |a-b| / |b| (Frobenius).
func relErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

func runGraph(t *testing.T, m *store.Model, opt llama.GraphOptions, outs []runtime.Output, embeds []float32, batch, seq int) [][]float32 {
	t.Helper()
	path, err := m.Graph(opt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := runtime.NewSession(path, llama.InputEmbeds, m.Config().Dim, outs, runtime.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	res, err := s.Run(embeds, batch, seq)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestOracle checks the ONNX graph's hidden states (0, 1, middle, last) and
// logits on the real SmolLM2-135M against an independent numpy forward pass
// that dequantizes with the PyPI gguf package and applies rotary
// embeddings in GGUF's own interleaved layout.
func TestOracle(t *testing.T) {
	gguf := testutil.GGUF(t)
	py := testutil.Python(t)
	m := testutil.RealModel(t)
	defer m.Close()
	c := m.Config()

	tok, err := m.Tokenizer()
	if err != nil {
		t.Fatal(err)
	}
	toks, err := tok.Encode("The quick brown fox jumps over the lazy dog; 12345 émigré 🙂!")
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int, len(toks))
	strIDs := make([]string, len(toks))
	for i, tk := range toks {
		ids[i], strIDs[i] = tk.ID, fmt.Sprint(tk.ID)
	}
	layers := []int{0, 1, c.Middle(), c.Layers}

	dir := t.TempDir()
	refPath, logitsPath := filepath.Join(dir, "ref.bin"), filepath.Join(dir, "logits.bin")
	strLayers := make([]string, len(layers))
	for i, l := range layers {
		strLayers[i] = fmt.Sprint(l)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "oracle.py"), "--gguf", gguf,
		"--ids", strings.Join(strIDs, ","), "--layers", strings.Join(strLayers, ","),
		"--out", refPath, "--logits-out", logitsPath)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oracle: %v\n%s", err, out)
	}
	ref := readF32(t, refPath)
	refLogits := readF32(t, logitsPath)

	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	T, d := len(ids), c.Dim
	outs := make([]runtime.Output, 0, len(layers)+1)
	for _, l := range layers {
		outs = append(outs, runtime.Output{Name: llama.HiddenStateName(l), Width: d})
	}
	outs = append(outs, runtime.Output{Name: llama.LogitsName, Width: c.Vocab})
	got := runGraph(t, m, llama.GraphOptions{Blocks: c.Layers, Logits: true}, outs, emb, 1, T)

	for i, l := range layers {
		want := ref[i*T*d : (i+1)*T*d]
		e := relErr(got[i], want)
		t.Logf("hidden state %2d: relative error %.2e", l, e)
		if e > oracleTol {
			t.Errorf("hidden state %d: relative error %.2e > %.0e", l, e, oracleTol)
		}
	}
	e := relErr(got[len(layers)], refLogits)
	t.Logf("logits: relative error %.2e", e)
	if e > oracleTol {
		t.Errorf("logits: relative error %.2e > %.0e", e, oracleTol)
	}

	// A graph truncated at the middle layer computes the same state.
	mid := runGraph(t, m, llama.GraphOptions{Blocks: c.Middle(), HiddenStates: []int{c.Middle()}},
		[]runtime.Output{{Name: llama.HiddenStateName(c.Middle()), Width: d}}, emb, 1, T)
	if e := relErr(mid[0], got[2]); e > 1e-6 {
		t.Errorf("truncated graph differs from full graph at hidden state %d: %.2e", c.Middle(), e)
	}
}

// TestRightPaddingNeedsNoMask checks the claim in Build's doc: a prompt
// right-padded inside a batch gets the same hidden states as alone.
func TestRightPaddingNeedsNoMask(t *testing.T) {
	m := testutil.RealModel(t)
	defer m.Close()
	c := m.Config()
	short, long := []int{1, 504, 3458}, []int{1, 504, 3458, 314, 253, 2387}
	es, err := m.Embeddings(short)
	if err != nil {
		t.Fatal(err)
	}
	el, err := m.Embeddings(long)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Middle()
	outs := []runtime.Output{{Name: llama.HiddenStateName(h), Width: c.Dim}}
	opt := llama.GraphOptions{Blocks: h, HiddenStates: []int{h}}
	alone := runGraph(t, m, opt, outs, es, 1, len(short))[0]
	padded := make([]float32, len(el))
	copy(padded, es) // zeros after the short prompt
	batch := append(append([]float32{}, padded...), el...)
	got := runGraph(t, m, opt, outs, batch, 2, len(long))[0]
	if e := relErr(got[:len(es)], alone); e > 1e-5 {
		t.Errorf("padded prompt differs from the prompt alone: %.2e", e)
	}
}

// TestTinyOracle runs synthetic models of each supported variant (llama
// with grouped-query attention and a tied head; qwen2 with q/k/v bias,
// rotate-half rotary and an untied head) through the graph and the numpy
// oracle.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	qwen := testutil.DefaultTiny()
	qwen.Arch, qwen.Untied, qwen.Layers = "qwen2", true, 3
	mha := testutil.DefaultTiny()
	mha.KVHeads = mha.Heads
	for _, tc := range []struct {
		name string
		tiny testutil.Tiny
	}{{"llama-gqa-tied", testutil.DefaultTiny()}, {"llama-mha", mha}, {"qwen2-bias-untied", qwen}} {
		t.Run(tc.name, func(t *testing.T) {
			path := testutil.WriteTiny(t, tc.tiny)
			st := &store.Store{Root: t.TempDir()}
			if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
				t.Fatal(err)
			}
			m, err := st.Open("tiny")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			c := m.Config()
			ids := []int{5, 260, 17, 299, 42, 42, 0, 128}
			strIDs := make([]string, len(ids))
			for i, id := range ids {
				strIDs[i] = fmt.Sprint(id)
			}
			dir := t.TempDir()
			ref, lg := filepath.Join(dir, "ref.bin"), filepath.Join(dir, "logits.bin")
			layers := fmt.Sprintf("0,1,%d", c.Layers)
			out, err := exec.Command(py, filepath.Join("testdata", "oracle.py"), "--gguf", path,
				"--ids", strings.Join(strIDs, ","), "--layers", layers, "--out", ref, "--logits-out", lg).CombinedOutput()
			if err != nil {
				t.Fatalf("oracle: %v\n%s", err, out)
			}
			want, wantLogits := readF32(t, ref), readF32(t, lg)
			emb, err := m.Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			T, d := len(ids), c.Dim
			outs := []runtime.Output{
				{Name: llama.HiddenStateName(0), Width: d}, {Name: llama.HiddenStateName(1), Width: d},
				{Name: llama.HiddenStateName(c.Layers), Width: d}, {Name: llama.LogitsName, Width: c.Vocab}}
			got := runGraph(t, m, llama.GraphOptions{Blocks: c.Layers, Logits: true}, outs, emb, 1, T)
			for i := 0; i < 3; i++ {
				if e := relErr(got[i], want[i*T*d:(i+1)*T*d]); e > oracleTol {
					t.Errorf("output %s: relative error %.2e", outs[i].Name, e)
				}
			}
			if e := relErr(got[3], wantLogits); e > oracleTol {
				t.Errorf("logits: relative error %.2e", e)
			}
		})
	}
}
