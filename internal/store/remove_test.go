package store_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/lmood/lmood/internal/arch"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestRemove: Remove takes a model's name and files away; a model a
// reader holds loses its name at once and its files at the reader's Close;
// an import of the name in progress makes it refuse; unknown and invalid
// names are errors; a model of the old layout and one the store cannot use
// are removed too; the name can be imported again.
func TestRemove(t *testing.T) {
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	exists := func(p string) bool { _, err := os.Lstat(p); return err == nil }
	imp := func(t *testing.T, st *Store) string {
		t.Helper()
		if _, err := st.Import(path, "tiny", Source{Kind: "file"}, nil); err != nil {
			t.Fatal(err)
		}
		target, err := os.Readlink(st.Dir("tiny"))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(st.Root, target)
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, st *Store) (dir string, release func())
		inUse bool
		err   string // "": removed; else the error says so
	}{
		{"unused", func(t *testing.T, st *Store) (string, func()) { return imp(t, st), nil }, false, ""},
		{"read by a running process", func(t *testing.T, st *Store) (string, func()) {
			dir := imp(t, st)
			m, err := st.Open("tiny")
			if err != nil {
				t.Fatal(err)
			}
			return dir, func() {
				if _, err := m.Embeddings([]int{1}); err != nil {
					t.Errorf("the reader cannot read the removed model: %v", err)
				}
				m.Close()
			}
		}, true, ""},
		{"another converter version", func(t *testing.T, st *Store) (string, func()) {
			dir := imp(t, st)
			if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"converter":"lmood-convert","converter_version":1}`), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir, nil
		}, false, ""},
		{"old layout", func(t *testing.T, st *Store) (string, func()) {
			dir := imp(t, st)
			if err := os.Remove(st.Dir("tiny")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dir, st.Dir("tiny")); err != nil {
				t.Fatal(err)
			}
			return st.Dir("tiny"), nil
		}, false, ""},
		{"import in progress", func(t *testing.T, st *Store) (string, func()) {
			dir := imp(t, st)
			f, err := os.Open(filepath.Join(st.Root, ".locks", "tiny"))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
				t.Fatal(err)
			}
			return dir, func() { f.Close() }
		}, false, `an import of "tiny" is in progress`},
		{"unknown", func(t *testing.T, st *Store) (string, func()) { return "", nil }, false, ErrNotFound.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &Store{Root: t.TempDir()}
			dir, release := tc.setup(t, st)
			r, err := st.Remove("tiny")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Remove = %v, want %v", err, tc.err)
				}
				if dir != "" && (!exists(dir) || !exists(st.Dir("tiny"))) {
					t.Errorf("a refused Remove removed something")
				}
				if release != nil {
					release()
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Size <= 0 || r.InUse != tc.inUse {
				t.Errorf("Remove = %+v, want a size and InUse %v", r, tc.inUse)
			}
			if exists(st.Dir("tiny")) {
				t.Errorf("the name is still there")
			}
			if _, err := st.Open("tiny"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Open after Remove = %v, want ErrNotFound", err)
			}
			if exists(dir) != tc.inUse {
				t.Errorf("files there after Remove: %v, want %v", exists(dir), tc.inUse)
			}
			if release != nil {
				release()
			}
			if exists(dir) {
				t.Errorf("%s is still there after its last reader closed", dir)
			}
			if lo, _ := st.Leftovers(); len(lo) != 0 {
				t.Errorf("leftovers: %v", lo)
			}
			imp(t, st)
			m, err := st.Open("tiny")
			if err != nil {
				t.Fatalf("import after Remove: %v", err)
			}
			m.Close()
		})
	}
	st := &Store{Root: t.TempDir()}
	if _, err := st.Remove("../tiny"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Remove(../tiny) = %v, want ErrInvalidName", err)
	}
}

// TestPruneStaleGraphs: graphs cached by another graph revision are
// leftovers (`lmood prune` removes them); the current revision's graphs
// and files that only look alike are kept.
func TestPruneStaleGraphs(t *testing.T) {
	st := &Store{Root: t.TempDir()}
	if _, err := st.Import(testutil.WriteTiny(t, testutil.DefaultTiny()), "tiny", Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	m, err := st.Open("tiny")
	if err != nil {
		t.Fatal(err)
	}
	current, err := m.Graph(arch.GraphOptions{Outputs: []arch.Point{arch.Resid(1)}})
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	stale := []string{"graph-resid.1.r3.onnx", "graph-head-acc4.r5.onnx", fmt.Sprintf("graph-norm.2+resid.1.r%d.onnx", GraphRevision+1)}
	kept := []string{"graph-notes.txt", "graph-resid.1.rx.onnx", "tokenizer.json"}
	for _, n := range append(stale, kept[:2]...) {
		if err := os.WriteFile(filepath.Join(m.Dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lo, err := st.Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, l := range lo {
		listed = append(listed, filepath.Base(l.Path))
	}
	slices.Sort(listed)
	want := slices.Clone(stale)
	slices.Sort(want)
	if !slices.Equal(listed, want) {
		t.Errorf("leftovers %v, want %v", listed, want)
	}
	if _, err := st.Prune(); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(m.Dir, n)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after prune", n)
		}
	}
	for _, p := range append([]string{current}, filepath.Join(m.Dir, kept[0]), filepath.Join(m.Dir, kept[1]), filepath.Join(m.Dir, kept[2])) {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("prune removed %s: %v", filepath.Base(p), err)
		}
	}
}
