package gemma3_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }

// oracleTol is the relative Frobenius error allowed per measurement point,
// float32 graph vs the float64 numpy reference (as for llama).
const oracleTol = 1e-3

// tiny describes a synthetic gemma3 model.
type tiny struct {
	Layers, Dim, FFN, Heads, KVHeads, HeadDim, Vocab, Window int
	Untied                                                   bool
	RopeScaling                                              string  // "" or a rope.scaling.type
	RopeFactor                                               float64 // rope.scaling.factor
	Seed                                                     uint64
	Extra                                                    map[string]float32 // extra float metadata (to test refusals)
	BadTensor                                                string             // give this tensor a wrong shape
}

func defaultTiny() tiny {
	// 7 blocks: blk.5 is the global one, blk.6 a sliding-window block after
	// it; head dim 16 differs from dim/heads = 8, as in Gemma 3 (256 vs 160).
	return tiny{Layers: 7, Dim: 32, FFN: 48, Heads: 4, KVHeads: 2, HeadDim: 16, Vocab: 300, Window: 3, Seed: 11}
}

// writeTiny writes a gemma3 GGUF with random F32 weights. Norm weights are
// drawn around 1 as llama.cpp's converter stores them (1 + w folded in).
func writeTiny(t testing.TB, m tiny) string {
	t.Helper()
	r := rand.New(rand.NewPCG(m.Seed, 5))
	w := gguf.NewWriter()
	a := "gemma3"
	w.AddString("general.architecture", a)
	w.AddString("general.name", "tiny gemma3")
	w.AddUint32(a+".block_count", uint32(m.Layers))
	w.AddUint32(a+".context_length", 128)
	w.AddUint32(a+".embedding_length", uint32(m.Dim))
	w.AddUint32(a+".feed_forward_length", uint32(m.FFN))
	w.AddUint32(a+".attention.head_count", uint32(m.Heads))
	w.AddUint32(a+".attention.head_count_kv", uint32(m.KVHeads))
	w.AddUint32(a+".attention.key_length", uint32(m.HeadDim))
	w.AddUint32(a+".attention.value_length", uint32(m.HeadDim))
	w.AddUint32(a+".attention.sliding_window", uint32(m.Window))
	w.AddFloat32(a+".attention.layer_norm_rms_epsilon", 1e-6)
	w.AddFloat32(a+".rope.freq_base", 1e6)
	if m.RopeScaling != "" {
		w.AddString(a+".rope.scaling.type", m.RopeScaling)
		w.AddFloat32(a+".rope.scaling.factor", float32(m.RopeFactor))
	}
	for k, v := range m.Extra {
		w.Set(a+"."+k, gguf.NewFloat32(v))
	}
	testutil.AddTinyVocab(w, m.Vocab)

	tensor := func(name string, scale float64, dims ...uint64) {
		if name == m.BadTensor {
			dims[0]++
		}
		n := uint64(1)
		for _, d := range dims {
			n *= d
		}
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(r.NormFloat64() * scale)
		}
		w.AddTensorF32(name, dims, data)
	}
	norm := func(name string, n int) {
		data := make([]float32, n)
		for i := range data {
			data[i] = float32(1 + 0.3*r.NormFloat64())
		}
		if name == m.BadTensor {
			data = append(data, 1)
		}
		w.AddTensorF32(name, []uint64{uint64(len(data))}, data)
	}
	d, hd := uint64(m.Dim), uint64(m.HeadDim)
	q, kv, f := uint64(m.Heads)*hd, uint64(m.KVHeads)*hd, uint64(m.FFN)
	s := 1 / math.Sqrt(float64(m.Dim))
	tensor("token_embd.weight", 0.2, d, uint64(m.Vocab))
	for i := 0; i < m.Layers; i++ {
		p := fmt.Sprintf("blk.%d.", i)
		norm(p+"attn_norm.weight", m.Dim)
		tensor(p+"attn_q.weight", s, d, q)
		tensor(p+"attn_k.weight", s, d, kv)
		tensor(p+"attn_v.weight", s, d, kv)
		norm(p+"attn_q_norm.weight", m.HeadDim)
		norm(p+"attn_k_norm.weight", m.HeadDim)
		tensor(p+"attn_output.weight", s, q, d)
		norm(p+"post_attention_norm.weight", m.Dim)
		norm(p+"ffn_norm.weight", m.Dim)
		tensor(p+"ffn_gate.weight", s, d, f)
		tensor(p+"ffn_up.weight", s, d, f)
		tensor(p+"ffn_down.weight", 1/math.Sqrt(float64(m.FFN)), f, d)
		norm(p+"post_ffw_norm.weight", m.Dim)
	}
	norm("output_norm.weight", m.Dim)
	if m.Untied {
		tensor("output.weight", s, d, uint64(m.Vocab))
	}
	path := filepath.Join(t.TempDir(), "tiny-gemma3.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatalf("write tiny GGUF: %v", err)
	}
	return path
}

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

// oracle runs testdata/oracle.py and returns the points, each [len(ids), width].
func oracle(t *testing.T, py, path string, c arch.Spec, ids []int, points []arch.Point) map[arch.Point][]float32 {
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
	cmd := exec.Command(py, filepath.Join("testdata", "oracle.py"), "--gguf", path,
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
	path, err := m.Graph(arch.GraphOptions{Outputs: points})
	if err != nil {
		t.Fatal(err)
	}
	outs := make([]runtime.Output, len(points))
	for i, p := range points {
		outs[i] = runtime.Output{Name: p.Name(), Width: c.Width(p.Site)}
	}
	s, err := runtime.NewSession(path, arch.InputEmbeds, c.Dim, outs, runtime.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Run(emb, 1, T)
	if err != nil {
		t.Fatal(err)
	}
	res := map[arch.Point][]float32{}
	for i, p := range points {
		res[p] = got[i]
	}
	return res
}

// checkOracle compares every point with the oracle, and a graph truncated
// after each of truncated with the full graph. It returns the worst error.
func checkOracle(t *testing.T, m *store.Model, py, path string, ids []int, points, truncated []arch.Point) float64 {
	t.Helper()
	want := oracle(t, py, path, m.Config(), ids, points)
	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	got := runPoints(t, m, points, emb, len(ids))
	worst := 0.0
	for _, p := range points {
		e := relErr(got[p], want[p])
		worst = max(worst, e)
		t.Logf("%-9s relative error %.2e", p.Name(), e)
		if e > oracleTol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.2e > %.0e", p.Name(), e, oracleTol)
		}
	}
	for _, p := range truncated {
		alone := runPoints(t, m, []arch.Point{p}, emb, len(ids))[p]
		if e := relErr(alone, got[p]); e > 1e-6 {
			t.Errorf("a graph truncated after %s differs from the full graph: %.2e", p.Name(), e)
		}
	}
	return worst
}

func importTiny(t *testing.T, path string) *store.Model {
	t.Helper()
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTinyOracle runs synthetic gemma3 models through the graph and the
// numpy oracle at every measurement point. The prompt (10 tokens) is longer
// than the sliding window (3), so the window shapes the local layers.
func TestTinyOracle(t *testing.T) {
	py := testutil.Python(t)
	testutil.Runtime(t)
	untied := defaultTiny()
	untied.Untied, untied.Seed = true, 12
	scaled := defaultTiny()
	scaled.RopeScaling, scaled.RopeFactor, scaled.Seed = "linear", 8, 13
	for _, tc := range []struct {
		name string
		tiny tiny
	}{{"tied-window3", defaultTiny()}, {"untied", untied}, {"linear-rope-scaling", scaled}} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeTiny(t, tc.tiny)
			m := importTiny(t, path)
			defer m.Close()
			var points []arch.Point
			for _, s := range arch.Sites {
				lo, hi := s.Range(m.Config().Layers)
				for i := lo; i <= hi; i++ {
					points = append(points, arch.Point{Site: s, Index: i})
				}
			}
			worst := checkOracle(t, m, py, path, []int{5, 260, 17, 299, 42, 42, 0, 128, 77, 201}, points, points)
			t.Logf("worst relative error over %d points: %.2e", len(points), worst)
		})
	}
}

// TestWindowMatters guards the oracle test against a window that changes
// nothing: the same model with a window wider than the prompt has other
// hidden states after the first sliding-window block.
func TestWindowMatters(t *testing.T) {
	testutil.Runtime(t)
	narrow, wide := defaultTiny(), defaultTiny()
	wide.Window = 64
	ids := []int{5, 260, 17, 299, 42, 42, 0, 128}
	var got [2][]float32
	for i, tn := range []tiny{narrow, wide} {
		m := importTiny(t, writeTiny(t, tn))
		emb, err := m.Embeddings(ids)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = runPoints(t, m, []arch.Point{arch.Resid(1)}, emb, len(ids))[arch.Resid(1)]
		m.Close()
	}
	if e := relErr(got[0], got[1]); e < 1e-3 {
		t.Errorf("window 3 and window 64 give the same resid.1 (%.2e): the mask ignores the window", e)
	}
	// The first Window positions see the same keys either way.
	d := defaultTiny().Dim
	if e := relErr(got[0][:3*d], got[1][:3*d]); e > 1e-6 {
		t.Errorf("positions inside the window differ (%.2e)", e)
	}
}
