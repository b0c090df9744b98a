package testutil

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// The helpers below compare a family's ONNX graph with a float64 reference
// forward pass (a family's testdata/oracle.py): the oracle is run as
//
//	python SCRIPT --gguf FILE --ids 1,2,3 --points resid.0,attn.1,logits --out FILE.bin
//
// and writes the points one after the other, each float32 [len(ids), width].

// ImportTiny converts a synthetic GGUF into a temporary store at float32
// precision (the reference the oracles compare with) and opens it. The
// caller closes the model.
func ImportTiny(t testing.TB, path string) *store.Model {
	t.Helper()
	return ImportTinyAt(t, path, store.PrecisionF32)
}

// ImportTinyAt is ImportTiny at the given import precision.
func ImportTinyAt(t testing.TB, path, precision string) *store.Model {
	t.Helper()
	st := &store.Store{Root: t.TempDir()}
	if _, _, err := st.ImportWith(context.Background(), path, "tiny", store.Source{Kind: "file", Ref: path}, store.ImportOptions{Precision: precision}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// AllPoints lists every measurement point of a model of layers blocks.
func AllPoints(layers int) []arch.Point {
	var points []arch.Point
	for _, s := range arch.Sites {
		lo, hi := s.Range(layers)
		for i := lo; i <= hi; i++ {
			points = append(points, arch.Point{Site: s, Index: i})
		}
	}
	return points
}

// ReadF32 reads a file of little-endian float32 values (as the oracles
// write them).
func ReadF32(t testing.TB, path string) []float32 {
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

// RelErr is |a-b| / |b| (Frobenius norms, in float64).
func RelErr(a, b []float32) float64 {
	var num, den float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / den)
}

// Oracle runs a reference script on a GGUF and returns the points, each
// [len(ids), width].
func Oracle(t testing.TB, py, script, gguf string, c arch.Spec, ids []int, points []arch.Point) map[arch.Point][]float32 {
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
	cmd := exec.Command(py, script, "--gguf", gguf, "--ids", strings.Join(strIDs, ","),
		"--points", strings.Join(names, ","), "--out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oracle %s: %v\n%s", script, err, msg)
	}
	all := ReadF32(t, out)
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

// RunPoints runs a graph of m exposing points on one prompt's embeddings
// (T tokens).
func RunPoints(t testing.TB, m *store.Model, points []arch.Point, emb []float32, T int) map[arch.Point][]float32 {
	t.Helper()
	c := m.Config()
	outs := make([]runtime.Output, len(points))
	for i, p := range points {
		outs[i] = runtime.Output{Name: p.Name(), Width: c.Width(p.Site)}
	}
	s, err := m.OpenSession(arch.GraphOptions{Outputs: points}, arch.InputEmbeds, outs, runtime.SessionOptions{})
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

// CheckOracle compares every point of m's graph on ids with the oracle
// script (relative error at most tol each), and, for each point of
// truncated, a graph truncated right after it with the full graph. It logs
// every error and the worst per site, and returns the worst.
func CheckOracle(t *testing.T, m *store.Model, py, script, gguf string, ids []int, points, truncated []arch.Point, tol float64) float64 {
	t.Helper()
	want := Oracle(t, py, script, gguf, m.Config(), ids, points)
	emb, err := m.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	got := RunPoints(t, m, points, emb, len(ids))
	worst := map[arch.Site]float64{}
	for _, p := range points {
		e := RelErr(got[p], want[p])
		worst[p.Site] = max(worst[p.Site], e)
		t.Logf("%-9s relative error %.2e", p.Name(), e)
		if e > tol || math.IsNaN(e) {
			t.Errorf("%s: relative error %.2e > %.0e", p.Name(), e, tol)
		}
	}
	all := 0.0
	for _, s := range arch.Sites {
		if e, ok := worst[s]; ok {
			t.Logf("site %-6s worst relative error %.2e", s, e)
			all = max(all, e)
		}
	}
	for _, p := range truncated {
		alone := RunPoints(t, m, []arch.Point{p}, emb, len(ids))[p]
		if e := RelErr(alone, got[p]); e > 1e-6 {
			t.Errorf("a graph truncated after %s differs from the full graph: %.2e", p.Name(), e)
		}
	}
	return all
}

// CheckRefused reads the GGUF file at path as lmood does before converting
// it (arch.FromGGUF, then every tensor's shape) and requires an error that
// mentions each of want.
func CheckRefused(t testing.TB, path string, want ...string) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	spec, err := arch.FromGGUF(f)
	if err == nil {
		for _, n := range spec.Config.TensorNames() {
			tt, _ := f.Tensor(n)
			if err = spec.Config.CheckTensorShape(n, tt.Dims); err != nil {
				break
			}
		}
	}
	if err == nil {
		t.Fatal("accepted")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
}

// TinyPrompt is the token IDs the family tests run their synthetic models
// on: 10 tokens (longer than the tiny sliding windows), a repeated token,
// and IDs from both ends of the 300-token tiny vocabulary.
var TinyPrompt = []int{5, 260, 17, 299, 42, 42, 0, 128, 77, 201}

// CheckTinyOracle imports the tiny GGUF at path and compares every
// measurement point of its graph (and every truncation) on ids with the
// family's numpy oracle, testdata/oracle.py of the calling package,
// within tol. It is what a family's oracle test calls; it logs and returns
// the worst relative error.
func CheckTinyOracle(t *testing.T, py, path string, ids []int, tol float64) float64 {
	t.Helper()
	m := ImportTiny(t, path)
	defer m.Close()
	points := AllPoints(m.Config().Layers)
	worst := CheckOracle(t, m, py, filepath.Join("testdata", "oracle.py"), path, ids, points, points, tol)
	t.Logf("worst relative error over %d points: %.2e", len(points), worst)
	return worst
}
