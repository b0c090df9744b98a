package store_test

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/onnx/onnxpb"
	"github.com/lmood/lmood/internal/runtime"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// normals returns n standard normal draws of the stream (a, b).
func normals(a, b uint64, n int) []float32 {
	r := rand.New(rand.NewPCG(a, b))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// hidden runs the model's graph for the last hidden state on x.
func hidden(t *testing.T, m *Model, x []float32, seq int) []float32 {
	t.Helper()
	return runPoints(t, m, x, seq, arch.Resid(m.Config().Layers))[0]
}

// runPoints runs one graph exposing the points on x (one copy of seq
// tokens) and returns each point's output.
func runPoints(t *testing.T, m *Model, x []float32, seq int, points ...arch.Point) [][]float32 {
	t.Helper()
	c := m.Config()
	outs := make([]runtime.Output, len(points))
	for i, p := range points {
		outs[i] = runtime.Output{Name: p.Name(), Width: c.Dim}
	}
	s, err := m.OpenSession(arch.GraphOptions{Outputs: points}, arch.InputEmbeds, outs, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(x, 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func relErr(a, b []float32) float64 {
	var d, n float64
	for i := range a {
		d += (float64(a[i]) - float64(b[i])) * (float64(a[i]) - float64(b[i]))
		n += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(d / n)
}

// TestQuantizedImportMatchesFloat32 imports tiny models whose linear
// weights are stored in each mapped GGUF type twice, at precision q
// (MatMulNBits) and f32, and compares the last hidden state: types mapped
// exactly or with float zero points agree to float32 rounding,
// re-quantized ones within a stated bound. The manifest records the
// choice, and q stores fewer bytes.
func TestQuantizedImportMatchesFloat32(t *testing.T) {
	testutil.Runtime(t)
	for _, tc := range []struct {
		typ     gguf.Type
		mapping string
		tol     float64
		prec    string // "" = PrecisionQuant
	}{
		{gguf.Q4_0, "exact", 1e-5, ""}, {gguf.Q8_0, "exact", 1e-5, ""}, {gguf.Q6_K, "exact", 1e-5, ""},
		{gguf.Q4_1, "rounding", 1e-5, ""}, {gguf.Q4_K, "rounding", 1e-5, ""},
		{gguf.Q5_K, "requantized", 2e-3, ""},
		{gguf.Q4_1, "requantized", 2e-3, PrecisionQuant8}, {gguf.Q4_K, "requantized", 2e-3, PrecisionQuant8},
		{gguf.Q4_0, "exact", 1e-5, PrecisionQuant8},
	} {
		if tc.prec == "" {
			tc.prec = PrecisionQuant
		}
		t.Run(tc.typ.String()+"/"+tc.prec, func(t *testing.T) {
			tiny := testutil.Tiny{Arch: "llama", Layers: 2, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 3, Untied: true, Quant: tc.typ}
			path := testutil.WriteTiny(t, tiny)
			st := &Store{Root: t.TempDir()}
			var models [2]*Model
			var sizes [2]int64
			for i, prec := range []string{tc.prec, PrecisionF32} {
				name := "tiny-" + prec
				man, _, err := st.ImportWith(t.Context(), path, name, Source{Kind: "file", Ref: path}, ImportOptions{Force: true, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				if man.Precision != prec {
					t.Errorf("manifest precision %q, want %q", man.Precision, prec)
				}
				q := man.Tensors["blk.0.attn_q.weight"].NBits
				if (q != nil) != (prec != PrecisionF32) {
					t.Fatalf("precision %s: attn_q quantized = %v", prec, q != nil)
				}
				if q != nil && (q.Mapping != tc.mapping || q.From != tc.typ.String() || q.Offsets != (tc.mapping == "rounding")) {
					t.Errorf("mapping %s from %s (offsets %v), want %s from %s", q.Mapping, q.From, q.Offsets, tc.mapping, tc.typ)
				}
				if man.Tensors[arch.TokenEmbd].NBits != nil {
					t.Error("the embedding matrix was quantized")
				}
				m, err := st.Open(name)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				fi, err := os.Stat(filepath.Join(m.Dir, m.Manifest.Weights))
				if err != nil {
					t.Fatal(err)
				}
				models[i], sizes[i] = m, fi.Size()
				if _, err := st.Verify(t.Context(), name); err != nil {
					t.Errorf("verify %s: %v", name, err)
				}
			}
			if sizes[0] >= sizes[1]*2/3 {
				t.Errorf("weights.bin: %d bytes quantized, %d float32: not smaller", sizes[0], sizes[1])
			}
			const seq = 7
			x := normals(5, 6, seq*tiny.Dim)
			q, f := hidden(t, models[0], x, seq), hidden(t, models[1], x, seq)
			e := relErr(q, f)
			t.Logf("%s %s (%s): weights.bin %d vs %d bytes; last hidden state relative error %.3g", tc.typ, tc.prec, tc.mapping, sizes[0], sizes[1], e)
			if e > tc.tol || math.IsNaN(e) {
				t.Errorf("quantized graph differs from float32 by %.3g > %.0e", e, tc.tol)
			}
			// int8 compute (accuracy level 4) builds a separate graph.
			models[0].AccuracyLevel = 4
			p4, err := models[0].Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(2)}})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(filepath.Base(p4), "acc4") {
				t.Errorf("accuracy level 4 graph cached as %s", filepath.Base(p4))
			}
			// A view at another level shares the model's files: closing it
			// leaves the model readable, and the model keeps its level.
			v := models[0].WithAccuracy(1)
			if v.AccuracyLevel != 1 || models[0].AccuracyLevel != 4 || models[0].WithAccuracy(4) != models[0] {
				t.Errorf("WithAccuracy(1): view level %d, model level %d", v.AccuracyLevel, models[0].AccuracyLevel)
			}
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := models[0].Embeddings([]int{1}); err != nil {
				t.Errorf("closing a view closed the model: %v", err)
			}
			// The graph's weights as stored: smaller quantized than float32.
			g := arch.GraphOptions{Outputs: []arch.Point{arch.Resid(2)}}
			wq, err := models[0].GraphWeightBytes(g)
			if err != nil {
				t.Fatal(err)
			}
			wf, err := models[1].GraphWeightBytes(g)
			if err != nil {
				t.Fatal(err)
			}
			if !(wq > 0 && wq < wf && wf <= sizes[1]) {
				t.Errorf("graph weights: %d bytes quantized, %d float32 (weights.bin %d)", wq, wf, sizes[1])
			}
			e4 := relErr(hidden(t, models[0], x, seq), f)
			t.Logf("%s accuracy_level 4: relative error %.3g", tc.typ, e4)
			if e4 > 0.05 {
				t.Errorf("int8 compute differs from float32 by %.3g", e4)
			}
		})
	}
}

// TestQuantizedFallbackNotes: linear weights of a type without a mapping
// stay float32, with a note, and the import succeeds.
func TestQuantizedFallbackNotes(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny()) // F32 weights
	st := &Store{Root: t.TempDir()}
	man, _, err := st.ImportWith(t.Context(), path, "tiny", Source{Kind: "file", Ref: path}, ImportOptions{Precision: PrecisionQuant})
	if err != nil {
		t.Fatal(err)
	}
	if len(man.Notes) != 1 || !strings.Contains(man.Notes[0], "F32") {
		t.Errorf("notes %q, want one about F32 weights kept float32", man.Notes)
	}
	for n, tt := range man.Tensors {
		if tt.NBits != nil {
			t.Errorf("%s quantized", n)
		}
	}
	if _, _, err := st.ImportWith(t.Context(), path, "tiny", Source{Kind: "file", Ref: path}, ImportOptions{Precision: "int3"}); err == nil {
		t.Error("an unknown precision was accepted")
	}
}

// logitsOf runs the model's head graph (every block and the output head)
// on x.
func logitsOf(t *testing.T, m *Model, x []float32, seq int) []float32 {
	t.Helper()
	c := m.Config()
	s, err := m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{arch.Logits()}}, arch.InputEmbeds, []runtime.Output{{Name: arch.LogitsName, Width: c.Vocab}}, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run(x, 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

// TestCompactEmbedding: at precision q, an embedding matrix whose GGUF
// type maps onto MatMulNBits exactly (or up to float32 rounding) stays in
// its blocks; gathered rows and the tied head's logits equal the float32
// import's, and weights.bin shrinks by more than the linear weights alone
// would make it. A type that would be re-quantized stays float32.
func TestCompactEmbedding(t *testing.T) {
	testutil.Runtime(t)
	for _, tc := range []struct {
		typ     gguf.Type
		compact bool
	}{{gguf.Q4_0, true}, {gguf.Q8_0, true}, {gguf.Q6_K, true}, {gguf.Q4_K, true}, {gguf.Q5_K, false}} {
		t.Run(tc.typ.String(), func(t *testing.T) {
			tiny := testutil.Tiny{Arch: "llama", Layers: 1, Dim: 256, FFN: 256, Heads: 4, KVHeads: 2, Vocab: 600, Seed: 4, Quant: tc.typ, QuantEmbd: true}
			path := testutil.WriteTiny(t, tiny)
			st := &Store{Root: t.TempDir()}
			var models [2]*Model
			for i, prec := range []string{PrecisionQuant, PrecisionF32} {
				man, _, err := st.ImportWith(t.Context(), path, "tiny-"+prec, Source{Kind: "file", Ref: path}, ImportOptions{Force: true, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				e := man.Tensors[arch.TokenEmbd].NBits
				if want := tc.compact && prec == PrecisionQuant; (e != nil) != want {
					t.Fatalf("precision %s: embedding block-quantized = %v, want %v", prec, e != nil, want)
				}
				if e != nil && (e.N != tiny.Vocab || e.K != tiny.Dim || e.From != tc.typ.String()) {
					t.Errorf("embedding recorded as %+v", *e)
				}
				if models[i], err = st.Open("tiny-" + prec); err != nil {
					t.Fatal(err)
				}
				defer models[i].Close()
				if _, err := st.Verify(t.Context(), "tiny-"+prec); err != nil {
					t.Errorf("verify: %v", err)
				}
			}
			ids := []int{0, 1, 299, 300, 599, 5}
			eq, err := models[0].Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			ef, err := models[1].Embeddings(ids)
			if err != nil {
				t.Fatal(err)
			}
			if e := relErr(eq, ef); e > 1e-6 {
				t.Errorf("gathered embeddings differ from float32 by %.3g", e)
			}
			if _, err := models[0].Embeddings([]int{600}); err == nil {
				t.Error("a token id past the vocabulary was accepted")
			}
			lq, lf := logitsOf(t, models[0], eq, len(ids)), logitsOf(t, models[1], ef, len(ids))
			e := relErr(lq, lf)
			t.Logf("%s: tied-head logits relative error %.3g", tc.typ, e)
			tol := 1e-5
			if !tc.compact { // its linear weights are re-quantized
				tol = 2e-3
			}
			if e > tol || math.IsNaN(e) {
				t.Errorf("logits differ from float32 by %.3g > %.0e", e, tol)
			}
		})
	}
}

// residentKB sums the resident kB of this process's mappings of path
// (/proc/self/smaps).
func residentKB(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	in, kb := false, 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"):
			in = f[len(f)-1] == path
		case in && len(f) >= 2 && f[0] == "Rss:":
			n, _ := strconv.Atoi(f[1])
			kb += n
		}
	}
	return kb
}

// TestFloat32SessionSharesWeights: a float32 model's session reads its
// weights through onnxruntime's map of weights.bin (pages other processes
// share) rather than prepacked private copies, and computes what a
// prepacking session computes.
func TestFloat32SessionSharesWeights(t *testing.T) {
	testutil.Runtime(t)
	tiny := testutil.Tiny{Arch: "llama", Layers: 2, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 5, Untied: true}
	m := testutil.ImportTinyAt(t, testutil.WriteTiny(t, tiny), PrecisionF32)
	defer m.Close()
	weights, err := filepath.EvalSymlinks(filepath.Join(m.Dir, m.Manifest.Weights))
	if err != nil {
		t.Fatal(err)
	}
	p := arch.Resid(2)
	outs := []runtime.Output{{Name: p.Name(), Width: tiny.Dim}}
	const seq = 5
	x := normals(1, 1, seq*tiny.Dim)
	before := residentKB(t, weights)
	s, err := m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{p}}, arch.InputEmbeds, outs, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	shared, err := s.Run(x, 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	// The linear weights: 2 blocks × (q, k, v, o, gate, up, down).
	linearKB := 2 * 4 * (256*256 + 2*256*128 + 256*256 + 3*256*512) / 1024
	if got := residentKB(t, weights) - before; got < linearKB/2 {
		t.Errorf("%d kB of weights.bin resident through the session, want about the %d kB of linear weights", got, linearKB)
	}
	graph, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{p}})
	if err != nil {
		t.Fatal(err)
	}
	packed, err := runtime.NewSession(graph, arch.InputEmbeds, tiny.Dim, outs, runtime.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer packed.Close()
	want, err := packed.Run(x, 1, seq)
	if err != nil {
		t.Fatal(err)
	}
	if e := relErr(shared[0], want[0]); e > 1e-6 {
		t.Errorf("the session without prepacking differs from the prepacking one by %.3g", e)
	}
}

// TestInt8ImportMatchesFloat32 imports tiny models at precision i8 and
// f32 and compares the last hidden state of one copy (the anchor row of
// the int8 linears, about 15-bit activations): what is left is the int8
// weights' rounding. Every linear weight is int8 (the tied embedding stays
// in its GGUF blocks), the store verifies, and it is smaller.
func TestInt8ImportMatchesFloat32(t *testing.T) {
	testutil.Runtime(t)
	for _, tc := range []struct {
		arch string
		typ  gguf.Type
	}{{"llama", gguf.Q4_K}, {"qwen2", gguf.Q4_0}, {"llama", gguf.F32}} {
		t.Run(tc.arch+"/"+tc.typ.String(), func(t *testing.T) {
			tiny := testutil.Tiny{Arch: tc.arch, Layers: 2, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 4, Quant: tc.typ}
			if tc.typ == gguf.F32 {
				tiny.Quant = 0
			}
			path := testutil.WriteTiny(t, tiny)
			st := &Store{Root: t.TempDir()}
			var models [2]*Model
			var sizes [2]int64
			for i, prec := range []string{PrecisionInt8, PrecisionF32} {
				man, _, err := st.ImportWith(t.Context(), path, prec, Source{Kind: "file", Ref: path}, ImportOptions{Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				for name, tn := range man.Tensors {
					linear := strings.HasPrefix(name, "blk.") && strings.HasSuffix(name, ".weight") && !strings.Contains(name, "norm")
					if prec == PrecisionInt8 && linear && (tn.Int8 == nil || tn.Type != "int8" || tn.Int8.From != tc.typ.String()) {
						t.Errorf("i8: %s stored as %+v, want int8 codes from %s", name, tn, tc.typ)
					}
					if prec == PrecisionF32 && tn.Int8 != nil {
						t.Errorf("f32: %s stored as int8", name)
					}
				}
				m, err := st.Open(prec)
				if err != nil {
					t.Fatal(err)
				}
				defer m.Close()
				if m.Int8() != (prec == PrecisionInt8) {
					t.Errorf("%s: Int8() = %v", prec, m.Int8())
				}
				fi, err := os.Stat(filepath.Join(m.Dir, m.Manifest.Weights))
				if err != nil {
					t.Fatal(err)
				}
				models[i], sizes[i] = m, fi.Size()
				if _, err := st.Verify(t.Context(), prec); err != nil {
					t.Errorf("verify %s: %v", prec, err)
				}
			}
			if sizes[0] >= sizes[1]/2 {
				t.Errorf("weights.bin: %d bytes int8, %d float32: not under half", sizes[0], sizes[1])
			}
			// Memory estimates: every graph of the int8 store, drift (anchored)
			// or on the way to logits (rowwise), loads the int8 codes and
			// their scales, under half of the float32 store's weights.
			for _, opt := range []arch.GraphOptions{
				{Outputs: []arch.Point{arch.Resid(2)}},
				{Outputs: []arch.Point{{Site: arch.SiteNorm, Index: 2}}},
			} {
				w8, err := models[0].GraphWeightBytes(opt)
				if err != nil {
					t.Fatal(err)
				}
				w32, err := models[1].GraphWeightBytes(opt)
				if err != nil {
					t.Fatal(err)
				}
				if w8 <= 0 || w8 >= w32/2 {
					t.Errorf("%+v: graph weights %d bytes int8, %d float32", opt, w8, w32)
				}
			}
			const seq = 7
			x := normals(5, 6, seq*tiny.Dim)
			e := relErr(hidden(t, models[0], x, seq), hidden(t, models[1], x, seq))
			t.Logf("weights.bin %d vs %d bytes; last hidden state relative error %.3g", sizes[0], sizes[1], e)
			if e > 0.01 || math.IsNaN(e) {
				t.Errorf("int8 graph differs from float32 by %.3g > 0.01", e)
			}
		})
	}
}

// TestInt8GraphForm: an int8 model's drift graphs anchor their batch on
// the clean copy (three int8 GEMMs per linear: the differences, the anchor
// row's value and its rounding error) at any depth; the graphs on the way
// to logits (the logits site, the final norm, the head) code each row on
// its own in two levels (two GEMMs per linear). Both multiply in int8 and
// none dequantizes a weight. For one copy the two forms compute the same
// numbers bit for bit: the anchor row is coded as a rowwise row is.
func TestInt8GraphForm(t *testing.T) {
	testutil.Runtime(t)
	const layers = 18
	tiny := testutil.Tiny{Arch: "llama", Layers: layers, Dim: 64, FFN: 128, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 5}
	m := testutil.ImportTinyAt(t, testutil.WriteTiny(t, tiny), PrecisionInt8)
	defer m.Close()
	// gemmsPerLinear reads the cached graph for opt: the int8 GEMMs over
	// the distinct weights they read (0: none); -1 if a stored weight is
	// dequantized.
	gemmsPerLinear := func(opt arch.GraphOptions) float64 {
		p, err := m.Graph(opt)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var mp onnxpb.ModelProto
		if err := proto.Unmarshal(data, &mp); err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, w := range mp.Graph.Initializer {
			stored[w.GetName()] = true
		}
		gemms, weights := 0, map[string]bool{}
		for _, n := range mp.Graph.Node {
			switch n.GetOpType() {
			case "MatMulIntegerToFloat":
				gemms++
				weights[n.Input[1]] = true
			case "DequantizeLinear":
				if stored[n.Input[0]] {
					return -1
				}
			}
		}
		if len(weights) == 0 {
			return 0
		}
		return float64(gemms) / float64(len(weights))
	}
	for _, tc := range []struct {
		opt   arch.GraphOptions
		gemms float64
	}{
		{arch.GraphOptions{Outputs: []arch.Point{arch.Resid(2)}}, 3},
		{arch.GraphOptions{Outputs: []arch.Point{arch.Resid(layers)}}, 3},
		{arch.GraphOptions{Outputs: []arch.Point{{Site: arch.SiteNorm, Index: layers - 1}}}, 3},
		{arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1), {Site: arch.SiteLogits}}}, 2},
		{arch.GraphOptions{Outputs: []arch.Point{{Site: arch.SiteNorm, Index: layers}}}, 2},
	} {
		if got := gemmsPerLinear(tc.opt); got != tc.gemms {
			t.Errorf("outputs %v: %.2f int8 GEMMs per linear weight, want %v", tc.opt.Outputs, got, tc.gemms)
		}
	}
	// The tiny model's head is its float32 token embedding (tied); an
	// int8 head would be rowwise.
	if got := gemmsPerLinear(arch.GraphOptions{Head: true}); got != 0 && got != 2 {
		t.Errorf("head graph: %.2f int8 GEMMs per linear weight, want 2 (or none)", got)
	}
	const seq = 5
	x := normals(1, 2, seq*tiny.Dim)
	// The same hidden state from an anchored graph and a rowwise one (the
	// second also outputs the final norm).
	p := arch.Resid(layers - 1)
	anchored := runPoints(t, m, x, seq, p)[0]
	out := runPoints(t, m, x, seq, p, arch.Point{Site: arch.SiteNorm, Index: layers})
	for i := range anchored {
		if anchored[i] != out[0][i] {
			t.Fatalf("hidden state %d, element %d: anchored %g, rowwise %g (relative difference of the state %.3g)", layers-1, i, anchored[i], out[0][i], relErr(anchored, out[0]))
		}
	}
}

// importAt imports the GGUF at path as the model name at precision prec.
func importAt(t *testing.T, st *Store, path, name, prec string) *Model {
	t.Helper()
	if _, _, err := st.ImportWith(t.Context(), path, name, Source{Kind: "file", Ref: path}, ImportOptions{Precision: prec, Force: true}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestBalancedFloat32IsExact: the families' rescalings (arch.Balanced),
// applied to a float32 store, change no measurement point beyond float32
// rounding — every site of every block, the "norm" site included (divided
// by the recorded factors) — while they do change the stored weights.
func TestBalancedFloat32IsExact(t *testing.T) {
	testutil.Runtime(t)
	for _, a := range []string{"llama", "qwen2", "gemma3"} {
		t.Run(a, func(t *testing.T) {
			tiny := testutil.Tiny{Arch: a, Layers: 2, Dim: 64, FFN: 128, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 8, Outliers: 20}
			path := testutil.WriteTiny(t, tiny)
			st := &Store{Root: t.TempDir()}
			plain := importAt(t, st, path, "plain", PrecisionF32)
			restore := SetBalance(false, true)
			balanced := importAt(t, st, path, "balanced", PrecisionF32)
			restore()
			for _, name := range []string{"blk.1.attn_norm.weight", "blk.1.attn_v.weight", "blk.1.ffn_up.weight", "blk.1.ffn_down.weight"} {
				if plain.Manifest.Tensors[name].SHA256 == balanced.Manifest.Tensors[name].SHA256 {
					t.Errorf("%s: the same bytes balanced and not", name)
				}
			}
			if _, ok := balanced.Manifest.Tensors["blk.1.attn_norm.balance"]; !ok {
				t.Error("the balanced store keeps no attention-norm factors")
			}
			if _, ok := plain.Manifest.Tensors["blk.1.attn_norm.balance"]; ok {
				t.Error("the plain store keeps attention-norm factors")
			}
			const seq = 6
			x := normals(3, 4, seq*tiny.Dim)
			var points []arch.Point
			for _, p := range testutil.AllPoints(tiny.Layers) {
				if p.Site != arch.SiteLogits { // the head reads no balanced weight
					points = append(points, p)
				}
			}
			want := runPoints(t, plain, x, seq, points...)
			got := runPoints(t, balanced, x, seq, points...)
			for i, p := range points {
				if e := relErr(got[i], want[i]); e > 1e-5 || math.IsNaN(e) {
					t.Errorf("%s: balanced differs from plain by %.3g", p.Name(), e)
				}
			}
		})
	}
}

// TestBalancedInt8IsCloser: on a model whose weights have a few input
// channels of large values, balancing before the int8 quantization brings
// every block's output closer to float32's than quantizing as is.
func TestBalancedInt8IsCloser(t *testing.T) {
	testutil.Runtime(t)
	tiny := testutil.Tiny{Arch: "qwen2", Layers: 2, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 9, Outliers: 20}
	path := testutil.WriteTiny(t, tiny)
	st := &Store{Root: t.TempDir()}
	f32 := importAt(t, st, path, "f32", PrecisionF32)
	balanced := importAt(t, st, path, "balanced", PrecisionInt8)
	restore := SetBalance(true, false)
	plain := importAt(t, st, path, "plain", PrecisionInt8)
	restore()
	if b := balanced.Manifest.Balance; b.Folds != 4*tiny.Layers || b.Applied == 0 {
		t.Errorf("balanced store: %+v, want some of %d folds applied", b, 4*tiny.Layers)
	}
	if b := plain.Manifest.Balance; b != (Balance{}) {
		t.Errorf("store without balancing records %+v", b)
	}
	const seq = 7
	x := normals(5, 6, seq*tiny.Dim)
	points := []arch.Point{{Site: arch.SiteNorm, Index: 0}, {Site: arch.SiteAttn, Index: 1}, {Site: arch.SiteMLP, Index: 1},
		{Site: arch.SiteNorm, Index: 1}, {Site: arch.SiteAttn, Index: 2}, {Site: arch.SiteMLP, Index: 2}}
	want := runPoints(t, f32, x, seq, points...)
	got := runPoints(t, balanced, x, seq, points...)
	old := runPoints(t, plain, x, seq, points...)
	for i, p := range points {
		eb, ep := relErr(got[i], want[i]), relErr(old[i], want[i])
		t.Logf("%s: int8 vs float32 %.3g balanced, %.3g as is", p.Name(), eb, ep)
		if p.Index == 0 {
			if eb > 1e-6 { // no int8 weight on the way: only the division's rounding
				t.Errorf("%s: balanced differs from float32 by %.3g", p.Name(), eb)
			}
			continue
		}
		if !(eb < ep) {
			t.Errorf("%s: balanced %.3g, not closer to float32 than as is (%.3g)", p.Name(), eb, ep)
		}
	}
}
