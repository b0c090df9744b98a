package gguf

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// oracleOutput is the JSON printed by testdata/oracle_real.py.
type oracleOutput struct {
	Keys       []string `json:"keys"`
	DataOffset int64    `json:"data_offset"`
	Tensors    []struct {
		Name   string   `json:"name"`
		Dims   []uint64 `json:"dims"`
		Type   uint32   `json:"type"`
		Offset int64    `json:"offset"`
	} `json:"tensors"`
	Samples map[string]string `json:"samples"`
}

// TestRealFile checks a real GGUF model named by $LMOOD_TEST_GGUF against
// the python gguf package (found via $LMOOD_PYTHON, default python3). If
// the oracle is unavailable the comparison is skipped, unless
// $LMOOD_REQUIRE_ORACLE=1.
func TestRealFile(t *testing.T) {
	path := os.Getenv("LMOOD_TEST_GGUF")
	if path == "" {
		t.Skip("set LMOOD_TEST_GGUF to a GGUF file to run")
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	t.Logf("%s: GGUF v%d, %d keys, %d tensors, alignment %d, data at %d, arch %q",
		filepath.Base(path), f.Version, len(f.Keys()), len(f.Tensors), f.Alignment, f.DataOffset, f.Architecture())

	// Dequantize everything, timing the whole model.
	counts := map[Type]int{}
	var elems uint64
	start := time.Now()
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		x, err := f.ReadTensorF32(ti)
		if err != nil {
			t.Fatalf("%s: %v", ti.Name, err)
		}
		if uint64(len(x)) != ti.NumElements() {
			t.Fatalf("%s: %d values, want %d", ti.Name, len(x), ti.NumElements())
		}
		counts[ti.Type]++
		elems += uint64(len(x))
	}
	elapsed := time.Since(start)
	t.Logf("ReadTensorF32 of all %d tensors (%d elements, types %v) took %v (%.0f MB/s of file)",
		len(f.Tensors), elems, counts, elapsed, float64(f.Size)/elapsed.Seconds()/1e6)

	names := []string{"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight"}
	for _, n := range names {
		if _, ok := f.Tensor(n); !ok {
			t.Fatalf("model has no tensor %s", n)
		}
	}
	const nSamples = 4096
	python := os.Getenv("LMOOD_PYTHON")
	if python == "" {
		python = "python3"
	}
	args := append([]string{filepath.Join("testdata", "oracle_real.py"), path, "4096"}, names...)
	cmd := exec.Command(python, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := "python oracle unavailable (" + python + "): " + err.Error() + ": " + stderr.String()
		if os.Getenv("LMOOD_REQUIRE_ORACLE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	var ref oracleOutput
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("oracle output: %v", err)
	}

	if got := f.Keys(); len(got) != len(ref.Keys) {
		t.Errorf("%d keys, python has %d", len(got), len(ref.Keys))
	} else {
		for i := range got {
			if got[i] != ref.Keys[i] {
				t.Errorf("key %d = %q, python has %q", i, got[i], ref.Keys[i])
			}
		}
	}
	if f.DataOffset != ref.DataOffset {
		t.Errorf("data offset %d, python %d", f.DataOffset, ref.DataOffset)
	}
	if len(f.Tensors) != len(ref.Tensors) {
		t.Fatalf("%d tensors, python has %d", len(f.Tensors), len(ref.Tensors))
	}
	for i, rt := range ref.Tensors {
		ti := &f.Tensors[i]
		same := ti.Name == rt.Name && uint32(ti.Type) == rt.Type && f.TensorDataOffset(ti) == rt.Offset && len(ti.Dims) == len(rt.Dims)
		for j := 0; same && j < len(rt.Dims); j++ {
			same = ti.Dims[j] == rt.Dims[j]
		}
		if !same {
			t.Errorf("tensor %d: %v at %d, python has %+v", i, ti, f.TensorDataOffset(ti), rt)
		}
	}
	for _, name := range names {
		ti, _ := f.Tensor(name)
		n := int(min(nSamples, ti.NumElements()))
		b, err := base64.StdEncoding.DecodeString(ref.Samples[name])
		if err != nil || len(b) != 4*n {
			t.Fatalf("%s: bad sample from oracle (%d bytes, want %d; %v)", name, len(b), 4*n, err)
		}
		want := make([]float32, n)
		for i := range want {
			want[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		got, err := f.ReadTensorF32(ti)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { compareExact(t, got[:n], want) })
		t.Logf("%s (%s): first %d values match python exactly", name, ti.Type, n)
	}
}

// BenchmarkReadAllTensors dequantizes every tensor of $LMOOD_TEST_GGUF.
func BenchmarkReadAllTensors(b *testing.B) {
	path := os.Getenv("LMOOD_TEST_GGUF")
	if path == "" {
		b.Skip("set LMOOD_TEST_GGUF to a GGUF file to run")
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	b.SetBytes(f.Size)
	for b.Loop() {
		for i := range f.Tensors {
			if _, err := f.ReadTensorF32(&f.Tensors[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkReadAllTensorsInto is BenchmarkReadAllTensors with a reused
// destination buffer, isolating decode cost from allocation.
func BenchmarkReadAllTensorsInto(b *testing.B) {
	path := os.Getenv("LMOOD_TEST_GGUF")
	if path == "" {
		b.Skip("set LMOOD_TEST_GGUF to a GGUF file to run")
	}
	f, err := Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var maxN uint64
	for i := range f.Tensors {
		maxN = max(maxN, f.Tensors[i].NumElements())
	}
	buf := make([]float32, maxN)
	b.SetBytes(f.Size)
	for b.Loop() {
		for i := range f.Tensors {
			ti := &f.Tensors[i]
			if err := f.ReadTensorF32Into(ti, buf[:ti.NumElements()]); err != nil {
				b.Fatal(err)
			}
		}
	}
}
