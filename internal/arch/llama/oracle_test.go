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

// oracle runs testdata/oracle.py on ids and returns the named measurement
// points, each [len(ids), width].
func oracle(t *testing.T, py, gguf string, c arch.Spec, ids []int, points []arch.Point) map[arch.Point][]float32 {
	t.Helper()
	strIDs := make([]string, len(ids))
	for i, id := range ids {
		strIDs[i] = fmt.Sprint(id)
	}
	names := make([]string, len(points))
	for i, p := range points {
		names[i] = p.Name()
	}
	out := filepath.Join(t.TempDir(), "points.bin")
	cmd := exec.Command(py, filepath.Join("testdata", "oracle.py"), "--gguf", gguf,
		"--ids", strings.Join(strIDs, ","), "--points", strings.Join(names, ","), "--out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oracle: %v\n%s", err, msg)
	}
	all := readF32(t, out)
	res := map[arch.Point][]float32{}
	off := 0
	for _, p := range points {
		n := len(ids) * c.Width(p.Site)
		if off+n > len(all) {
			t.Fatalf("oracle wrote %d values, fewer than the points need", len(all))
		}
		res[p] = all[off : off+n]
		off += n
	}
	if off != len(all) {
		t.Fatalf("oracle wrote %d values, the points need %d", len(all), off)
	}
	return res
}

// runPoints runs a graph exposing points on one prompt's embeddings.
func runPoints(t *testing.T, m *store.Model, points []arch.Point, emb []float32, T int) map[arch.Point][]float32 {
	t.Helper()
	c := m.Config()
	outs := make([]runtime.Output, len(points))
	for i, p := range points {
		outs[i] = runtime.Output{Name: p.Name(), Width: c.Width(p.Site)}
	}
	got := runGraph(t, m, llama.GraphOptions{Outputs: points}, outs, emb, 1, T)
	res := map[arch.Point][]float32{}
	for i, p := range points {
		res[p] = got[i]
	}
	return res
}

// checkOracle compares every point of the graph with the oracle and, for
// each point, a graph truncated right after it with the full graph.
func checkOracle(t *testing.T, m *store.Model, py, gguf string, ids []int, points []arch.Point, truncated []arch.Point) {
	t.Helper()
	c := m.Config()
	want := oracle(t, py, gguf, c, ids, points)
	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	got := runPoints(t, m, points, emb, len(ids))
	worst := map[arch.Site]float64{}
	for _, p := range points {
		e := relErr(got[p], want[p])
		worst[p.Site] = max(worst[p.Site], e)
		t.Logf("%-9s relative error %.2e", p.Name(), e)
		if e > oracleTol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.2e > %.0e", p.Name(), e, oracleTol)
		}
	}
	for _, s := range arch.Sites {
		if e, ok := worst[s]; ok {
			t.Logf("site %-6s worst relative error %.2e", s, e)
		}
	}
	for _, p := range truncated {
		alone := runPoints(t, m, []arch.Point{p}, emb, len(ids))[p]
		if e := relErr(alone, got[p]); e > 1e-6 {
			t.Errorf("a graph truncated after %s differs from the full graph: %.2e", p.Name(), e)
		}
	}
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
	checkOracle(t, m, py, gguf, ids, points, truncated)
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
	if e := relErr(got[:len(es)], alone); e > 1e-5 {
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
			st := &store.Store{Root: t.TempDir()}
			if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
				t.Fatal(err)
			}
			m, err := st.Open("tiny")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			var points []arch.Point
			for _, s := range arch.Sites {
				lo, hi := s.Range(m.Config().Layers)
				for i := lo; i <= hi; i++ {
					points = append(points, pt(s, i))
				}
			}
			checkOracle(t, m, py, path, []int{5, 260, 17, 299, 42, 42, 0, 128}, points, points)
		})
	}
}
