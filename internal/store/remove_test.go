package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

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
