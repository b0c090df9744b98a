package analyze_test

// Benchmarks on the real default model. Run them with scripts/bench.sh,
// which sets up the model and copies the numbers into the README.
//
// Each benchmark reports, besides ns/op, the figure the README quotes:
// tokens/s, GFLOP/s, prompts/s or seconds.

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/drift"
	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/onnx"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// prompt20 tokenizes to 20 tokens with SmolLM2's tokenizer.
const prompt20 = "The old lighthouse keeper walked down to the harbour every single morning to count all of the fishing boats."

func randomEmbeds(n int) []float32 {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * 0.05)
	}
	return x
}

// BenchmarkConvert measures converting the default model's GGUF.
func BenchmarkConvert(b *testing.B) {
	path := testutil.GGUF(b)
	dir := b.TempDir()
	st := &store.Store{Root: dir}
	for b.Loop() {
		if _, err := st.Import(path, "bench", store.Source{Kind: "file"}, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/convert")
}

// BenchmarkSessionLoad measures loading the middle-truncated graph.
func BenchmarkSessionLoad(b *testing.B) {
	m := testutil.RealModel(b)
	defer m.Close()
	c := m.Config()
	h := arch.Resid(c.Middle())
	path, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{h}})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := runtime.NewSession(path, arch.InputEmbeds, c.Dim, []runtime.Output{{Name: h.Name(), Width: c.Dim}}, runtime.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/load")
}

// flopsPerToken counts multiply-adds x2 of the blocks' matmuls and the
// attention products for a sequence of T tokens, per token.
func flopsPerToken(c arch.Spec, blocks, T int) float64 {
	d, f, hd := float64(c.Dim), float64(c.FFN), float64(c.HeadDim)
	proj := d*float64(c.Heads)*hd + 2*d*float64(c.KVHeads)*hd + float64(c.Heads)*hd*d
	mlp := 3 * d * f
	attn := 2 * float64(c.Heads) * hd * float64(T) // QK^T and PV, averaged over a causal row ~ T/2 each, counted full
	return 2 * float64(blocks) * (proj + mlp + attn)
}

// BenchmarkForward measures forward throughput on 32-token inputs, for the
// full graph and the graph truncated at the middle layer, at batch 1 and 32.
func BenchmarkForward(b *testing.B) {
	m := testutil.RealModel(b)
	defer m.Close()
	c := m.Config()
	const T = 32
	for _, tc := range []struct {
		name   string
		blocks int
	}{{"full", c.Layers}, {"mid", c.Middle()}} {
		path, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(tc.blocks)}})
		if err != nil {
			b.Fatal(err)
		}
		s, err := runtime.NewSession(path, arch.InputEmbeds, c.Dim, []runtime.Output{{Name: arch.Resid(tc.blocks).Name(), Width: c.Dim}}, runtime.SessionOptions{})
		if err != nil {
			b.Fatal(err)
		}
		benchBatches(b, tc.name+"/", s, c, tc.blocks, T, 1, 32)
		s.Close()
	}
}

// matmulSource serves one weight matrix for the peak benchmark.
type matmulSource struct{ t onnx.ExternalTensor }

func (m matmulSource) Lookup(string) (onnx.ExternalTensor, bool) { return m.t, true }

// BenchmarkMatMulPeak measures this machine's fp32 matmul rate through
// onnxruntime: [n, n] x [n, n] with a constant right operand (the same
// situation as the model's weights), for two sizes; scripts/bench.sh takes
// the faster as the peak.
func BenchmarkMatMulPeak(b *testing.B) {
	testutil.Runtime(b)
	for _, n := range []int{1024, 2048} {
		b.Run(fmt.Sprintf("n%d", n), func(b *testing.B) { benchMatMul(b, n) })
	}
}

func benchMatMul(b *testing.B, n int) {
	dir := b.TempDir()
	w := randomEmbeds(n * n)
	buf := new(bytes.Buffer)
	for _, v := range w {
		buf.Write(f32le(v))
	}
	if err := os.WriteFile(filepath.Join(dir, "w.bin"), buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	bd := onnx.NewBuilder("matmul", matmulSource{onnx.ExternalTensor{Location: "w.bin", Dims: []int64{int64(n), int64(n)}}})
	x := bd.Input(arch.InputEmbeds, onnx.Float, 1, n, n)
	bd.Output(bd.MatMul(x, bd.Weight("w")), "y", onnx.Float, 1, n, n)
	model, err := bd.Model("bench")
	if err != nil {
		b.Fatal(err)
	}
	data, err := onnx.Marshal(model)
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, "matmul.onnx")
	if _, err := fetch.WriteAtomic(path, bytes.NewReader(data)); err != nil {
		b.Fatal(err)
	}
	s, err := runtime.NewSession(path, arch.InputEmbeds, n, []runtime.Output{{Name: "y", Width: n}}, runtime.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	in := randomEmbeds(n * n)
	if _, err := s.Run(in, 1, n); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Run(in, 1, n); err != nil {
			b.Fatal(err)
		}
	}
	fn := float64(n)
	b.ReportMetric(2*fn*fn*fn/(b.Elapsed().Seconds()/float64(b.N))/1e9, "GFLOP/s")
}

func f32le(v float32) []byte {
	u := math.Float32bits(v)
	return []byte{byte(u), byte(u >> 8), byte(u >> 16), byte(u >> 24)}
}

// BenchmarkScore measures lmood's scoring of a 20-token prompt at K=32,
// middle layer: one clean + 32 nudged copies in batches, truncated graph;
// on the model stored i8 (the default on CPUs with 8-bit dot products) and
// f32.
func BenchmarkScore(b *testing.B) {
	for _, prec := range []string{store.PrecisionInt8, store.PrecisionF32} {
		b.Run(prec, func(b *testing.B) {
			testutil.Runtime(b)
			var m *store.Model
			if prec == store.PrecisionF32 {
				m = testutil.RealModel(b)
			} else {
				m = testutil.SharedModelAt(b, testutil.GGUF(b), "smollm2-"+prec, prec)
			}
			defer m.Close()
			an, err := analyze.New(m, analyze.Options{HiddenStates: []int{m.Config().Middle()}, Samples: 32, Sigma: 0.01, Seed: 1}, runtime.SessionOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer an.Close()
			toks, err := an.Tokenize(prompt20)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := an.Analyze(prompt20); err != nil { // warm-up
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := an.Analyze(prompt20); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(1/sec, "prompts/s")
			b.ReportMetric(float64(len(toks))/sec, "tokens/s")
			b.ReportMetric(float64(len(toks)), "prompt-tokens")
		})
	}
}

// BenchmarkNaiveLoop is the reference implementation's loop, for the
// speed-up figure: for each of K nudges, one clean and one nudged forward
// pass of the full model with logits, batch 1.
func BenchmarkNaiveLoop(b *testing.B) {
	m := testutil.RealModel(b)
	defer m.Close()
	c := m.Config()
	an, err := analyze.New(m, analyze.Options{HiddenStates: []int{c.Middle()}, Samples: 1, Sigma: 0.01, Seed: 1}, runtime.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	toks, err := an.Tokenize(prompt20)
	an.Close()
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]int, len(toks))
	for i, t := range toks {
		ids[i] = t.ID
	}
	path, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(c.Middle()), arch.Logits()}})
	if err != nil {
		b.Fatal(err)
	}
	outs := []runtime.Output{{Name: arch.Resid(c.Middle()).Name(), Width: c.Dim}, {Name: arch.LogitsName, Width: c.Vocab}}
	s, err := runtime.NewSession(path, arch.InputEmbeds, c.Dim, outs, runtime.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	emb, err := m.Embeddings(ids)
	if err != nil {
		b.Fatal(err)
	}
	T := len(ids)
	e := drift.Matrix{Rows: T, Cols: c.Dim, Data: emb}
	nudged := make([]float32, len(emb))
	const K = 32
	for b.Loop() {
		for k := 0; k < K; k++ {
			if _, err := s.Run(emb, 1, T); err != nil {
				b.Fatal(err)
			}
			if err := drift.NudgeBatch(nudged, e, drift.NudgeOptions{Sigma: 0.01}, 1, 0, k, 1); err != nil {
				b.Fatal(err)
			}
			if _, err := s.Run(nudged, 1, T); err != nil {
				b.Fatal(err)
			}
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(1/sec, "prompts/s")
	b.ReportMetric(float64(T)/sec, "tokens/s")
}

// benchModel opens the converted model named by LMOOD_BENCH_MODEL in the
// store under $XDG_CACHE_HOME/lmood/models (scripts/bench.sh shapes sets
// both); without it the benchmark is skipped.
func benchModel(b *testing.B) *store.Model {
	name := os.Getenv("LMOOD_BENCH_MODEL")
	if name == "" {
		b.Skip("LMOOD_BENCH_MODEL is not set (scripts/bench.sh shapes sets it)")
	}
	testutil.Runtime(b)
	m, err := store.Default().Open(name)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// BenchmarkShapeSessionOpen measures opening an onnxruntime session on the
// LMOOD_BENCH_MODEL graph truncated at its middle hidden state (the graph
// file is built once before timing).
func BenchmarkShapeSessionOpen(b *testing.B) {
	m := benchModel(b)
	defer m.Close()
	c := m.Config()
	h := arch.Resid(c.Middle())
	opt := arch.GraphOptions{Outputs: []arch.Point{h}}
	if _, err := m.Graph(opt); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := m.OpenSession(opt, arch.InputEmbeds, []runtime.Output{{Name: h.Name(), Width: c.Dim}}, runtime.SessionOptions{Threads: 2})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/open")
}

// BenchmarkShapeForward measures forward throughput of the LMOOD_BENCH_MODEL
// graph truncated at its middle hidden state (the analysis graph) on
// 20-token inputs at batch 1 and 33 (one clean + 32 nudged copies), two
// threads.
func BenchmarkShapeForward(b *testing.B) {
	m := benchModel(b)
	defer m.Close()
	c := m.Config()
	const T = 20
	h := arch.Resid(c.Middle())
	s, err := m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{h}}, arch.InputEmbeds, []runtime.Output{{Name: h.Name(), Width: c.Dim}}, runtime.SessionOptions{Threads: 2})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchBatches(b, "", s, c, c.Middle(), T, 1, 33)
}

// benchBatches runs sub-benchmarks prefix+"batch<n>" of s (a graph through
// blocks blocks of a model shaped like c) on random embeddings of batch
// copies of T tokens, reporting tokens/s and GFLOP/s.
func benchBatches(b *testing.B, prefix string, s *runtime.Session, c arch.Spec, blocks, T int, batches ...int) {
	for _, batch := range batches {
		x := randomEmbeds(batch * T * c.Dim)
		b.Run(fmt.Sprintf("%sbatch%d", prefix, batch), func(b *testing.B) {
			if _, err := s.Run(x, batch, T); err != nil { // warm-up
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := s.Run(x, batch, T); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(float64(batch*T)/sec, "tokens/s")
			b.ReportMetric(flopsPerToken(c, blocks, T)*float64(batch*T)/sec/1e9, "GFLOP/s")
		})
	}
}
