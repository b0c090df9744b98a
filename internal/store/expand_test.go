package store_test

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/runtime"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestExpandedScales checks the float32 scales and zero points a session
// reads for factored weights against the converter's own (gguf.ToNBits on
// the GGUF tensor), bit for bit, per mapped type; and that opening a
// session leaves no scratch files behind.
func TestExpandedScales(t *testing.T) {
	testutil.Runtime(t)
	shm := t.TempDir()
	defer SetShmDir(shm)()
	// A scratch directory left by a process that no longer runs (a PID
	// above the kernel's limit) goes with the next session.
	if err := os.Mkdir(filepath.Join(shm, "lmood-session-2147483647-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []gguf.Type{gguf.Q4_0, gguf.Q4_1, gguf.Q8_0, gguf.Q4_K, gguf.Q6_K, gguf.Q5_K} {
		t.Run(typ.String(), func(t *testing.T) {
			tiny := testutil.Tiny{Arch: "llama", Layers: 1, Dim: 256, FFN: 512, Heads: 4, KVHeads: 2, Vocab: 300, Seed: 5, Untied: true, Quant: typ}
			path := testutil.WriteTiny(t, tiny)
			m := testutil.ImportTinyAt(t, path, PrecisionQuant)
			defer m.Close()
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const name = "blk.0.ffn_down.weight" // rows as in the GGUF (not permuted)
			ti, _ := f.Tensor(name)
			raw, err := f.ReadTensorRaw(ti)
			if err != nil {
				t.Fatal(err)
			}
			want, err := gguf.ToNBits(ti.Type, raw, int(ti.Dims[1]), int(ti.Dims[0]))
			if err != nil {
				t.Fatal(err)
			}
			scales, zero, factored, err := m.ExpandedScales(name)
			if err != nil {
				t.Fatal(err)
			}
			if factored != (want.Factors != nil) {
				t.Fatalf("%s stored factored = %v, want %v", typ, factored, want.Factors != nil)
			}
			same := func(a, b []float32) bool {
				if len(a) != len(b) {
					return false
				}
				for i := range a {
					if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
						return false
					}
				}
				return true
			}
			if factored && (!same(scales, want.Scales) || !same(zero, want.ZeroPoints)) {
				t.Errorf("expanded scales or zero points differ from the converter's")
			}
			s, err := m.OpenSession(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}}, arch.InputEmbeds,
				[]runtime.Output{{Name: arch.Resid(1).Name(), Width: tiny.Dim}}, runtime.SessionOptions{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			s.Close()
			if left, _ := os.ReadDir(shm); len(left) != 0 {
				t.Errorf("opening a session left %d scratch entries in %s", len(left), shm)
			}
		})
	}
}
