package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/gguf"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestImportOpen(t *testing.T) {
	tiny := testutil.DefaultTiny()
	path := testutil.WriteTiny(t, tiny)
	st := &Store{Root: t.TempDir()}
	m, err := st.Import(path, "tiny", Source{Kind: "file", Ref: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Layers != 2 || c.Dim != 32 || c.Heads != 4 || c.KVHeads != 2 || c.Vocab != 300 || m.Arch != "llama" || m.Tensors["output.weight"].Dims != nil {
		t.Fatalf("config = %+v", c)
	}
	if m.Source.Quantization != "F32" || m.Source.SHA256 == "" || m.Params != c.Params() {
		t.Errorf("source = %+v, params %d", m.Source, m.Params)
	}

	model, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()

	// Gathered rows equal the GGUF's embedding rows.
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, _ := f.Tensor(arch.TokenEmbd)
	want, err := f.ReadTensorF32(ti)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int{0, 299, 17}
	got, err := model.Embeddings(ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		for j := 0; j < c.Dim; j++ {
			if got[i*c.Dim+j] != want[id*c.Dim+j] {
				t.Fatalf("embedding of token %d differs at %d", id, j)
			}
		}
	}
	if _, err := model.Embeddings([]int{300}); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("out-of-range id: err = %v", err)
	}

	// Graphs are built once and cached.
	g1, err := model.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}})
	if err != nil {
		t.Fatal(err)
	}
	fi1, _ := os.Stat(g1)
	g2, _ := model.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}})
	fi2, _ := os.Stat(g2)
	if g1 != g2 || !fi1.ModTime().Equal(fi2.ModTime()) {
		t.Errorf("graph rebuilt: %s vs %s", g1, g2)
	}
	if _, err := model.Tokenizer(); err != nil {
		t.Errorf("tokenizer: %v", err)
	}

	list, err := st.List()
	if err != nil || len(list) != 1 || list[0].Name != "tiny" || list[0].Err != nil {
		t.Errorf("List = %+v, %v", list, err)
	}
}

func TestImportErrors(t *testing.T) {
	good := testutil.WriteTiny(t, testutil.DefaultTiny())
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "truncated.gguf")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	bert := testutil.DefaultTiny()
	bert.Arch = "bert"
	iq := testutil.DefaultTiny()
	iq.RawTensor, iq.RawType = "blk.0.attn_q.weight", gguf.Type(20) // IQ4_NL
	missing := testutil.DefaultTiny()
	missing.SkipTensor = "blk.1.ffn_up.weight"
	notGGUF := filepath.Join(t.TempDir(), "notes.gguf")
	if err := os.WriteFile(notGGUF, []byte("hello, this is not a model"), 0o644); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, path string
		want       []string
	}{
		{"truncated", truncated, []string{"truncated"}},
		{"unsupported architecture", testutil.WriteTiny(t, bert), []string{`architecture "bert"`, "unsupported architecture", "llama"}},
		{"unknown quant type", testutil.WriteTiny(t, iq), []string{"IQ4_NL", "cannot dequantize"}},
		{"missing tensor", testutil.WriteTiny(t, missing), []string{"blk.1.ffn_up.weight", "missing"}},
		{"not a GGUF", notGGUF, []string{"not a GGUF file"}},
		{"no file", filepath.Join(t.TempDir(), "absent.gguf"), []string{"no such file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := &Store{Root: t.TempDir()}
			_, err := st.Import(tc.path, "m", Source{Kind: "file"}, nil)
			if err == nil {
				t.Fatal("import succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			// Nothing that looks like a model is left behind.
			if entries, _ := st.List(); len(entries) != 0 {
				t.Errorf("failed import left %v", entries)
			}
			if left := storeFiles(st); len(left) != 0 {
				t.Errorf("failed import left files: %v", left)
			}
		})
	}
}

func TestStaleManifest(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, _, err := st.ImportWith(t.Context(), path, "tiny", Source{Kind: "file"}, ImportOptions{Force: true, Precision: PrecisionF32}); err != nil {
		t.Fatal(err)
	}
	mpath := filepath.Join(st.Dir("tiny"), "manifest.json")
	raw, _ := os.ReadFile(mpath)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["converter_version"] = ConverterVersion + 1
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(mpath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := st.Open("tiny")
	if !errors.Is(err, ErrStale) || !strings.Contains(err.Error(), "re-convert") {
		t.Fatalf("Open of stale model: %v", err)
	}
	// Version 4 stored block-quantized scales differently and version 5
	// did not balance int8 weights, and nothing else: their models without
	// such tensors are read as they are, the others refused.
	tensors := m["tensors"].(map[string]any)
	q := tensors["blk.0.attn_q.weight"].(map[string]any)
	for _, tc := range []struct {
		version int
		kind    string // a tensor kind the manifest claims ("" none)
		current bool
	}{
		{4, "", true}, {4, "nbits", false}, {4, "int8", false},
		{5, "", true}, {5, "nbits", true}, {5, "int8", false},
		{3, "", false},
	} {
		m["converter_version"] = tc.version
		if tc.kind != "" {
			q[tc.kind] = map[string]any{"k": 1}
		}
		raw, _ = json.Marshal(m)
		delete(q, tc.kind)
		if err := os.WriteFile(mpath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := st.ReadManifest("tiny")
		if tc.current && err != nil {
			t.Errorf("a version-%d manifest with %q tensors: %v", tc.version, tc.kind, err)
		}
		if !tc.current && !errors.Is(err, ErrStale) {
			t.Errorf("a version-%d manifest with %q tensors: %v, want ErrStale", tc.version, tc.kind, err)
		}
	}
	m["converter_version"] = 4
	raw, _ = json.Marshal(m)
	if err := os.WriteFile(mpath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if mod, err := st.Open("tiny"); err != nil {
		t.Fatalf("Open of a version-4 model without quantized tensors: %v", err)
	} else {
		mod.Close()
	}
	// The manifest names the architecture whose family decodes its config.
	m["converter_version"] = ConverterVersion
	if m["arch"] != "llama" {
		t.Fatalf("manifest arch = %v, want llama", m["arch"])
	}
	for _, tc := range []struct{ arch, want string }{{"nosuch", "unsupported architecture"}, {"", "unsupported architecture"}} {
		m["arch"] = tc.arch
		raw, _ = json.Marshal(m)
		if err := os.WriteFile(mpath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Open("tiny"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Open of a manifest of architecture %q: %v, want %q", tc.arch, err, tc.want)
		}
	}
	if err := os.WriteFile(mpath, []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open("tiny"); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Open of corrupt manifest: %v", err)
	}
}

func TestTruncatedWeights(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	w := filepath.Join(st.Dir("tiny"), "weights.bin")
	fi, _ := os.Stat(w)
	if err := os.Truncate(w, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Open("tiny"); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("Open with truncated weights: %v", err)
	}
}

func TestOpenUnknown(t *testing.T) {
	st := &Store{Root: t.TempDir()}
	_, err := st.Open("nope")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "lmood pull") {
		t.Fatalf("Open unknown: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden", strings.Repeat("x", 65)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) accepted", bad)
		}
	}
}

// TestCorruptManifestValues: numbers in a manifest that would crash or
// allocate wildly are refused by Open.
func TestCorruptManifestValues(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	for _, tc := range []struct {
		name string
		mod  func(m map[string]any)
	}{
		{"negative dims", func(m map[string]any) {
			m["tensors"].(map[string]any)["token_embd.weight"].(map[string]any)["dims"] = []any{300, -32}
		}},
		{"huge dims", func(m map[string]any) {
			m["tensors"].(map[string]any)["token_embd.weight"].(map[string]any)["dims"] = []any{1 << 62, 32}
		}},
		{"negative offset", func(m map[string]any) {
			m["tensors"].(map[string]any)["blk.0.attn_q.weight"].(map[string]any)["offset"] = -4096
		}},
		{"zero kv heads", func(m map[string]any) { m["config"].(map[string]any)["kv_heads"] = 0 }},
		{"weights outside", func(m map[string]any) { m["weights"] = "../../etc/passwd" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &Store{Root: t.TempDir()}
			if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
				t.Fatal(err)
			}
			mpath := filepath.Join(st.Dir("tiny"), "manifest.json")
			raw, _ := os.ReadFile(mpath)
			var m map[string]any
			json.Unmarshal(raw, &m)
			tc.mod(m)
			raw, _ = json.Marshal(m)
			os.WriteFile(mpath, raw, 0o644)
			_, err := st.Open("tiny")
			if err == nil || !strings.Contains(err.Error(), "re-convert") {
				t.Fatalf("Open = %v, want an error asking to re-convert", err)
			}
		})
	}
}

// TestSweep: leftovers of a killed import are removed by the next import,
// whatever their age; a temporary directory whose import still runs (it
// holds a flock on it) is kept, however old.
func TestSweep(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	dead := filepath.Join(st.Root, ".tiny.converting-123")
	os.MkdirAll(dead, 0o755)
	deadV := filepath.Join(st.Root, ".other.v-456")
	os.MkdirAll(deadV, 0o755)
	running := filepath.Join(st.Root, ".other.v-789")
	os.MkdirAll(running, 0o755)
	old := time.Now().Add(-48 * time.Hour)
	os.Chtimes(running, old, old)
	lock := holdFlock(t, running)
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dead, deadV} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("leftover %s was not removed", p)
		}
	}
	if _, err := os.Stat(running); err != nil {
		t.Error("the directory of an import in progress was removed")
	}
	lock.Close()
	// Replacing a model keeps nothing of the old one around.
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	if got := storeFiles(st); len(got) != 2 { // the link and its version
		t.Errorf("store holds %v, want the link tiny and one version", got)
	}
}

// TestImportCancelled: a cancelled import stops and leaves nothing behind.
func TestImportCancelled(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := st.ImportContext(ctx, path, "tiny", Source{Kind: "file"}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(st.Root); len(left) != 0 {
		t.Errorf("cancelled import left %v", left)
	}
}

// storeFiles lists the store's top level, without the lock directory.
func storeFiles(st *Store) []string {
	des, _ := os.ReadDir(st.Root)
	var out []string
	for _, de := range des {
		if de.Name() != ".locks" {
			out = append(out, de.Name())
		}
	}
	return out
}

// holdFlock takes an exclusive flock on path as a running import would.
func holdFlock(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
