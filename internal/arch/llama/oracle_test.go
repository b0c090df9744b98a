package llama_test

import (
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// Tolerance of the oracle comparison: relative Frobenius error per hidden
// state, float32 graph vs float64 numpy reference.
const oracleTol = 1e-3

// oracleScript is the family's numpy reference forward pass.
var oracleScript = filepath.Join("testdata", "oracle.py")

func runGraph(t *testing.T, m *store.Model, opt llama.GraphOptions, outs []runtime.Output, embeds []float32, batch, seq int) [][]float32 {
	t.Helper()
	s, err := m.OpenSession(opt, llama.InputEmbeds, outs, runtime.SessionOptions{})
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

func pt(s arch.Site, i int) arch.Point { return arch.Point{Site: s, Index: i} }

// TestOracle checks the ONNX graph on the real SmolLM2-135M against an
// independent numpy forward pass that dequantizes with the PyPI gguf
// package and applies rotary embeddings in GGUF's own interleaved layout:
// the residual stream at 0, 1, the middle and the last hidden state, every
// other site at block 1, the middle block and the last, and the logits.
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
	for i, tk := range toks {
		ids[i] = tk.ID
	}
	n, mid := c.Layers, c.Middle()
	points := []arch.Point{llama.Resid(0), llama.Resid(1), llama.Resid(mid), llama.Resid(n), llama.Logits()}
	for _, i := range []int{1, mid, n} {
		points = append(points, pt(arch.SiteNorm, i), pt(arch.SiteAttn, i), pt(arch.SiteMLP, i))
	}
	points = append(points, pt(arch.SiteNorm, 0))
	// Graphs truncated after the middle block's sites compute the same values.
	truncated := []arch.Point{llama.Resid(mid), pt(arch.SiteNorm, mid), pt(arch.SiteAttn, mid), pt(arch.SiteMLP, mid)}
	testutil.CheckOracle(t, m, py, oracleScript, gguf, ids, points, truncated, oracleTol)
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
	h := llama.Resid(c.Middle())
	outs := []runtime.Output{{Name: h.Name(), Width: c.Dim}}
	opt := llama.GraphOptions{Outputs: []arch.Point{h}}
	alone := runGraph(t, m, opt, outs, es, 1, len(short))[0]
	padded := make([]float32, len(el))
	copy(padded, es) // zeros after the short prompt
	batch := append(append([]float32{}, padded...), el...)
	got := runGraph(t, m, opt, outs, batch, 2, len(long))[0]
	if e := testutil.RelErr(got[:len(es)], alone); e > 1e-5 {
		t.Errorf("padded prompt differs from the prompt alone: %.2e", e)
	}
}

// TestTinyOracle runs synthetic models of each supported variant (llama
// with grouped-query attention and a tied head; qwen2 with q/k/v bias,
// rotate-half rotary and an untied head) through the graph and the numpy
// oracle, at every measurement point, and checks that a graph truncated
// after any point computes it as the full graph does.
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
			testutil.CheckTinyOracle(t, py, path, []int{5, 260, 17, 299, 42, 42, 0, 128}, oracleTol)
		})
	}
}
