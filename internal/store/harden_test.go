package store_test

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	"github.com/lmood/lmood/internal/fetch"
	"github.com/lmood/lmood/internal/runtime"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestRelativePathRecordedAbsolute: `lmood import rel.gguf` records the
// absolute path, so `-m rel.gguf` later finds the conversion (issue 14.12).
func TestRelativePathRecordedAbsolute(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	t.Chdir(filepath.Dir(path))
	st := &Store{Root: t.TempDir()}
	m, err := st.Import(filepath.Base(path), "tiny", Source{Kind: "file"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.GGUF != path {
		t.Errorf("manifest records %q, want %q", m.Source.GGUF, path)
	}
}

// TestImportNonRegular: /dev/zero, a symlink to it and a FIFO are refused
// up front instead of hanging (issue 14.6).
func TestImportNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "pipe.gguf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero.gguf")
	os.Symlink("/dev/zero", link)
	st := &Store{Root: t.TempDir()}
	for _, p := range []string{"/dev/zero", link, fifo} {
		done := make(chan error, 1)
		go func() { _, err := st.Import(p, "m", Source{Kind: "file"}, nil); done <- err }()
		if err := <-done; !errors.Is(err, fetch.ErrNotRegular) {
			t.Errorf("Import(%s) = %v, want ErrNotRegular", p, err)
		}
	}
}

// TestExpectedDigestChecksFirst: a file whose content does not match the
// digest it should have (an ollama blob) leaves the existing model intact
// (issue 14.5).
func TestExpectedDigestChecksFirst(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	orig, err := st.Import(path, "m", Source{Kind: "ollama", Ref: "x:latest"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	other := testutil.DefaultTiny()
	other.Seed = 99
	p2 := testutil.WriteTiny(t, other)
	_, _, err = st.ImportWith(context.Background(), p2, "m", Source{Kind: "ollama", Ref: "x:latest", SHA256: orig.Source.SHA256}, ImportOptions{Force: true})
	if !errors.Is(err, fetch.ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	m, err := st.ReadManifest("m")
	if err != nil || m.Source.SHA256 != orig.Source.SHA256 {
		t.Fatalf("existing model damaged: %v, %+v", err, m)
	}
}

// TestCheckReplace: without Force an unrelated model is not replaced; the
// same GGUF is reused; the same source (an updated file) is replaced
// (issue 14.4).
func TestCheckReplace(t *testing.T) {
	a := testutil.WriteTiny(t, testutil.DefaultTiny())
	other := testutil.DefaultTiny()
	other.Seed = 99
	b := testutil.WriteTiny(t, other)
	st := &Store{Root: t.TempDir()}
	ctx := context.Background()
	if _, conv, err := st.ImportWith(ctx, a, "m", Source{Kind: "file", Ref: a}, ImportOptions{}); err != nil || !conv {
		t.Fatal(conv, err)
	}
	if _, conv, err := st.ImportWith(ctx, a, "m", Source{Kind: "ollama", Ref: "y:latest"}, ImportOptions{}); err != nil || conv {
		t.Errorf("same GGUF: converted %v, %v; want reused", conv, err)
	}
	if _, _, err := st.ImportWith(ctx, b, "m", Source{Kind: "ollama", Ref: "y:latest"}, ImportOptions{}); !errors.Is(err, ErrExists) {
		t.Errorf("unrelated model: %v, want ErrExists", err)
	}
	if _, conv, err := st.ImportWith(ctx, b, "m", Source{Kind: "file", Ref: a}, ImportOptions{}); err != nil || !conv {
		t.Errorf("same source, new content: converted %v, %v", conv, err)
	}
	if _, conv, err := st.ImportWith(ctx, a, "m", Source{Kind: "ollama", Ref: "z"}, ImportOptions{Force: true}); err != nil || !conv {
		t.Errorf("forced: converted %v, %v", conv, err)
	}
}

// TestConcurrentImports: imports of one name wait for each other; all
// succeed and nothing is left behind (issue 14.8).
func TestConcurrentImports(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = st.Import(path, "tiny", Source{Kind: "file"}, nil)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("import %d: %v", i, err)
		}
	}
	if got := storeFiles(st); len(got) != 2 {
		t.Errorf("store holds %v, want the link and one version", got)
	}
	if lo, _ := st.Leftovers(); len(lo) != 0 {
		t.Errorf("leftovers: %v", lo)
	}
}

// TestReimportAtomicForReaders: while a model is re-imported again and
// again, opening it never fails, and a model opened before a re-import
// stays readable (issue 14.9).
func TestReimportAtomicForReaders(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	held, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 8; i++ {
			if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
				t.Error(err)
			}
		}
		close(stop)
	}()
	opens := 0
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		default:
		}
		m, err := st.Open("tiny")
		if err != nil {
			t.Fatalf("open during re-import: %v", err)
		}
		if _, err := m.Embeddings([]int{1}); err != nil {
			t.Fatalf("read during re-import: %v", err)
		}
		m.Close()
		opens++
	}
	wg.Wait()
	if _, err := held.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}}); err != nil {
		t.Errorf("model opened before the re-imports: %v", err)
	}
	// Versions replaced while a reader had them open were removed by that
	// reader's Close; only the held one is still there.
	if got := storeFiles(st); len(got) != 3 || !slices.Contains(got, filepath.Base(held.Dir)) {
		t.Errorf("store holds %v before the held reader closes, want the link, the current version and %s", got, filepath.Base(held.Dir))
	}
	held.Close()
	if _, err := os.Stat(held.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the held reader's replaced version is still there after its Close: %v", err)
	}
	if lo, _ := st.Leftovers(); len(lo) != 0 {
		t.Errorf("leftovers after readers closed: %v, want none (the last reader removes a replaced version)", lo)
	}
	if got := storeFiles(st); len(got) != 2 {
		t.Errorf("after readers closed: %v, want the link and one version", got)
	}
	t.Logf("%d opens during 8 re-imports", opens)
}

// TestCloseRemovesOnlyReplaced: Close removes the version it read only
// once that version has been replaced and nobody else reads it; the
// current version, a version another reader holds, and a model directory
// of the old layout stay.
func TestCloseRemovesOnlyReplaced(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	open := func() *Model {
		t.Helper()
		m, err := st.Open("tiny")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	exists := func(dir string) bool { _, err := os.Stat(dir); return err == nil }

	cur := open()
	cur.Close()
	if !exists(cur.Dir) {
		t.Fatalf("Close of the current version removed it")
	}

	a, b := open(), open()
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	if !exists(a.Dir) {
		t.Fatalf("the import removed a version two readers hold")
	}
	a.Close()
	if !exists(b.Dir) {
		t.Errorf("Close removed a replaced version another reader still holds")
	}
	if _, err := b.Embeddings([]int{1}); err != nil {
		t.Errorf("read after the other reader closed: %v", err)
	}
	b.Close()
	if exists(b.Dir) {
		t.Errorf("the last reader's Close left the replaced version %s", b.Dir)
	}
	if lo, _ := st.Leftovers(); len(lo) != 0 {
		t.Errorf("leftovers: %v", lo)
	}

	// Old layout: the name is a plain directory, never removed by a reader.
	old := &Store{Root: t.TempDir()}
	if _, err := old.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	target, err := os.Readlink(old.Dir("tiny"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(old.Dir("tiny")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(old.Root, target), old.Dir("tiny")); err != nil {
		t.Fatal(err)
	}
	m, err := old.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	if !exists(filepath.Join(old.Dir("tiny"), "manifest.json")) {
		t.Errorf("Close removed a model directory of the old layout")
	}
}

// TestOldLayoutStale: a model directory of converter version 1 (a plain
// directory) still gets the "re-convert" message, and a forced import
// replaces it.
func TestOldLayoutStale(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	dir := filepath.Join(st.Root, "tiny")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"converter":"lmood-convert","converter_version":1,"name":"tiny"}`), 0o644)
	if _, err := st.Open("tiny"); !errors.Is(err, ErrStale) {
		t.Fatalf("Open = %v, want ErrStale", err)
	}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	if m, err := st.Open("tiny"); err != nil {
		t.Fatal(err)
	} else {
		m.Close()
	}
}

// TestGraphPermissions: graph files are 0644 like the rest of the store
// (they were 0600), honouring the umask (issue 14.18).
func TestGraphPermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	g, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{g, filepath.Join(m.Dir, "weights.bin"), filepath.Join(m.Dir, "manifest.json")} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v (%v), want 0644", filepath.Base(p), fi.Mode(), err)
		}
	}
}

// TestVerify: changed weights are found by Verify; a non-finite value in a
// gathered embedding is a clear "corrupt" error (issue 14.19).
func TestVerify(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if bad, err := st.Verify(ctx, "tiny"); err != nil || len(bad) != 0 {
		t.Fatalf("fresh model: %v, %v", bad, err)
	}
	m, _ := st.ReadManifest("tiny")
	w := filepath.Join(st.Dir("tiny"), "weights.bin")
	f, err := os.OpenFile(w, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A finite change in one block, a NaN in the embedding of token 5.
	q := m.Tensors["blk.1.attn_q.weight"]
	binary.Write(&offsetWriter{f, q.Offset + 40}, binary.LittleEndian, float32(0.123))
	e := m.Tensors[arch.TokenEmbd]
	binary.Write(&offsetWriter{f, e.Offset + 5*4*e.Dims[1]}, binary.LittleEndian, float32(math.NaN()))
	f.Close()
	bad, err := st.Verify(ctx, "tiny")
	if !errors.Is(err, ErrCorrupt) || len(bad) != 2 {
		t.Fatalf("Verify = %v, %v; want the two changed tensors", bad, err)
	}
	model, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	if _, err := model.Embeddings([]int{4}); err != nil {
		t.Errorf("intact row: %v", err)
	}
	if _, err := model.Embeddings([]int{5}); !errors.Is(err, ErrCorrupt) || !contains(err, "lmood verify tiny") {
		t.Errorf("NaN row: %v", err)
	}
}

type offsetWriter struct {
	f   *os.File
	off int64
}

func (w *offsetWriter) Write(b []byte) (int, error) {
	n, err := w.f.WriteAt(b, w.off)
	w.off += int64(n)
	return n, err
}

func contains(err error, s string) bool {
	return err != nil && strings.Contains(err.Error(), s)
}

// TestDefaultWithoutHome: with neither HOME nor XDG_CACHE_HOME the default
// store is an error naming them, not a directory under /tmp (issue 14.2).
func TestDefaultWithoutHome(t *testing.T) {
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	st := Default()
	for _, err := range []error{
		func() error { _, err := st.List(); return err }(),
		func() error { _, err := st.Open("x"); return err }(),
		func() error { _, err := st.Import("x.gguf", "x", Source{}, nil); return err }(),
		func() error { _, err := st.Leftovers(); return err }(),
	} {
		if !errors.Is(err, runtime.ErrNoCacheDir) {
			t.Errorf("err = %v, want ErrNoCacheDir", err)
		}
	}
}
