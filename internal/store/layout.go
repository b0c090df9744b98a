package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lmood/lmood/internal/fetch"
)

// On-disk layout (converter version 2). Each conversion lives in its own
// hidden version directory; the model's name is a symbolic link to it:
//
//	models/NAME            -> .NAME.v-RANDOM   (replaced atomically)
//	models/.NAME.v-RANDOM/ manifest.json, weights.bin, tokenizer.json, graph-*.onnx
//	models/.locks/NAME     held (flock) by the import of NAME
//
// An import writes a new version directory while holding an exclusive
// flock on it, then renames a new link over the old one: a reader sees the
// old model or the new one, never none. Readers hold a shared flock on the
// version directory they use, so the old one is removed only once nobody
// reads it: by the import if nobody does, else by the Close of its last
// reader. What a killed process leaves is a leftover for the next import's
// sweep or `lmood prune`.

const (
	versionInfix = ".v-"
	linkInfix    = ".link-"
	locksDir     = ".locks"
)

// nameLock is the file an import of name holds a flock on.
func (s *Store) nameLock(name string) string { return filepath.Join(s.Root, locksDir, name) }

// resolve returns the directory holding the named model's files: the
// target of its link, or the name itself for a store of the old layout.
// A link pointing anywhere but a version directory of that name is refused.
func (s *Store) resolve(name string) (string, error) {
	p := s.Dir(name)
	target, err := os.Readlink(p)
	if err != nil {
		return p, nil // missing (reported by the reader), or an old-layout directory
	}
	if filepath.Base(target) != target || !strings.HasPrefix(target, "."+name+versionInfix) {
		return "", fmt.Errorf("store: %s links to %q, outside its own versions: the store is corrupt; remove the link and re-convert the model", p, target)
	}
	return filepath.Join(s.Root, target), nil
}

// lockFile takes an exclusive flock on path (created if needed), waiting
// while another process holds it, until ctx is done.
func lockFile(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tryLock opens path and takes a flock of the given kind without waiting;
// it returns nil when someone else holds a conflicting lock.
func tryLock(path string, how int) *os.File {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	if err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); err != nil {
		f.Close()
		return nil
	}
	return f
}

// install points the link of name at the version directory dir (a base
// name in s.Root), atomically: readers see either the old target or the
// new one. It returns the directory the link pointed at before ("" if
// none). A model directory of the old layout is moved aside first (not
// atomic, once per model).
func (s *Store) install(name, dir string) (string, error) {
	link := s.Dir(name)
	prev := ""
	if target, err := os.Readlink(link); err == nil {
		prev = filepath.Join(s.Root, filepath.Base(target))
	} else if fi, err := os.Lstat(link); err == nil && fi.IsDir() {
		prev = filepath.Join(s.Root, fmt.Sprintf(".%s.old-%d", name, time.Now().UnixNano()))
		if err := os.Rename(link, prev); err != nil {
			return "", fmt.Errorf("store: replace %s: %w", link, err)
		}
	}
	tmp := filepath.Join(s.Root, fmt.Sprintf(".%s%s%d", name, linkInfix, time.Now().UnixNano()))
	if err := os.Symlink(dir, tmp); err != nil {
		return "", fmt.Errorf("store: install %s: %w", name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("store: install %s: %w", name, err)
	}
	return prev, nil
}

// replaced reports whether dir, a version directory a reader opened
// through link, has been replaced or removed: link points at another
// version directory of the same name, or is gone (Remove). A link that is
// a directory of the old layout replaces nothing. A version directory,
// once unlinked, is never linked again.
func replaced(link, dir string) bool {
	base := filepath.Base(dir)
	name := filepath.Base(link)
	if filepath.Dir(dir) != filepath.Dir(link) || !strings.HasPrefix(base, "."+name+versionInfix) {
		return false
	}
	target, err := os.Readlink(link)
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	return err == nil && filepath.Base(target) != base
}

// Removed says what Remove did with a model.
type Removed struct {
	// Size is the bytes of the model's files: weights, tokenizer, cached
	// graphs and calibrations.
	Size int64
	// InUse: a running lmood still reads the model, so its files stay
	// until that process closes it (it then removes them; `lmood prune`
	// would too).
	InUse bool
}

// Remove deletes the named model from the store: its name at once (opening
// it then finds no model), and its files unless a running process reads
// them (Removed.InUse), like unlinking an open file. It fails, removing
// nothing, while an import of that name is in progress. Models the store
// cannot use (another converter version, a damaged manifest) are removed
// the same way.
func (s *Store) Remove(name string) (Removed, error) {
	var r Removed
	if err := CheckName(name); err != nil {
		return r, err
	}
	if err := s.check(); err != nil {
		return r, err
	}
	link := s.Dir(name)
	fi, err := os.Lstat(link)
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("store: %w: %q is not in %s (`lmood models` lists what is there)", ErrNotFound, name, s.Root)
	}
	if err != nil {
		return r, fmt.Errorf("store: remove %s: %w", name, err)
	}
	if err := os.MkdirAll(filepath.Join(s.Root, locksDir), 0o755); err != nil {
		return r, fmt.Errorf("store: remove %s: %w", name, err)
	}
	lock, err := os.OpenFile(s.nameLock(name), os.O_RDONLY|os.O_CREATE, 0o644)
	if err != nil {
		return r, fmt.Errorf("store: remove %s: %w", name, err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		return r, fmt.Errorf("store: remove %s: an import of %q is in progress; try again when it is done", name, name)
	} else if err != nil {
		return r, fmt.Errorf("store: remove %s: lock: %w", name, err)
	}
	if fi.Mode()&os.ModeSymlink == 0 {
		// A directory of the old layout: readers lock the directory itself.
		r.Size = dirSize(link)
		r.InUse = !removeIfUnused(link)
		if r.InUse {
			return r, fmt.Errorf("store: remove %s: the model is in use by a running lmood (old store layout: stop it, then remove the model)", name)
		}
		return r, nil
	}
	// A link pointing outside its own versions (resolve refuses it) is
	// removed alone.
	dir, rerr := s.resolve(name)
	if rerr != nil {
		dir = ""
	} else {
		r.Size = dirSize(dir)
	}
	if err := os.Remove(link); err != nil {
		return r, fmt.Errorf("store: remove %s: %w", name, err)
	}
	if dir != "" {
		r.InUse = !removeIfUnused(dir)
	}
	return r, nil
}

// removeIfUnused removes a version directory nobody reads (no flock on
// it); it reports whether it did.
func removeIfUnused(dir string) bool {
	f := tryLock(dir, unix.LOCK_EX)
	if f == nil {
		return false
	}
	defer f.Close()
	return os.RemoveAll(dir) == nil
}

// Leftover is something an interrupted import or download left behind.
type Leftover struct {
	Path string
	Size int64  // bytes
	What string // what it is, for listings
}

// Leftovers lists what interrupted imports and downloads left in the store
// (and in s.TempDirs): version directories no model links to, temporary
// files of graph writes and downloads. Anything locked by a running
// process (an import in progress, a reader, a download) is skipped, so
// removing what is listed is safe.
func (s *Store) Leftovers() ([]Leftover, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(s.Root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", s.Root, err)
	}
	linked := map[string]bool{}
	var dirs []string // every model directory, to look for graph temp files
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		if d, err := s.resolve(de.Name()); err == nil {
			linked[filepath.Base(d)] = true
			dirs = append(dirs, d)
		}
	}
	var out []Leftover
	for _, de := range des {
		n := de.Name()
		p := filepath.Join(s.Root, n)
		if !strings.HasPrefix(n, ".") || linked[n] {
			continue
		}
		switch {
		case de.IsDir() && (strings.Contains(n, versionInfix) || strings.Contains(n, ".converting-") || strings.Contains(n, ".old-")):
			if f := tryLock(p, unix.LOCK_EX); f != nil {
				f.Close()
				out = append(out, Leftover{Path: p, Size: dirSize(p), What: "interrupted or replaced conversion"})
			}
		case de.Type()&os.ModeSymlink != 0 && strings.Contains(n, linkInfix):
			name := n[1:strings.Index(n, linkInfix)]
			if f := tryLock(s.nameLock(name), unix.LOCK_EX); f != nil {
				f.Close()
				out = append(out, Leftover{Path: p, What: "temporary link"})
			}
		}
	}
	for _, d := range dirs {
		// Graphs of another graph revision are never opened again (their
		// names carry the revision: graphPath); they are rebuilt as needed.
		graphs, _ := filepath.Glob(filepath.Join(d, "graph-*.onnx"))
		for _, p := range graphs {
			if rev, ok := graphRevision(filepath.Base(p)); ok && rev != GraphRevision {
				var size int64
				if fi, err := os.Stat(p); err == nil {
					size = fi.Size()
				}
				out = append(out, Leftover{Path: p, Size: size, What: staleGraph})
			}
		}
	}
	for _, d := range append(dirs, s.TempDirs...) {
		parts, _ := fetch.Leftovers(d)
		for _, p := range parts {
			var size int64
			if fi, err := os.Stat(p); err == nil {
				size = fi.Size()
			}
			out = append(out, Leftover{Path: p, Size: size, What: "partial download or write"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Prune removes what Leftovers lists (checking each lock again) and
// returns what it removed.
func (s *Store) Prune() ([]Leftover, error) {
	lo, err := s.Leftovers()
	if err != nil {
		return nil, err
	}
	var done []Leftover
	var errs []error
	for _, l := range lo {
		var err error
		switch {
		case fetch.IsPart(filepath.Base(l.Path)):
			err = fetch.RemoveLeftover(l.Path)
		case l.What == "temporary link" || l.What == staleGraph:
			err = os.Remove(l.Path)
		default:
			if !removeIfUnused(l.Path) {
				err = fmt.Errorf("%s is in use", l.Path)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		done = append(done, l)
	}
	if len(errs) > 0 {
		return done, fmt.Errorf("store: prune: %w", errors.Join(errs...))
	}
	return done, nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// staleGraph is the Leftover.What of a graph cached by another revision.
const staleGraph = "graph of another graph revision"

// graphRevision reads the revision from a cached graph's file name
// ("graph-resid.12-acc4.r8.onnx": 8); false for other names.
func graphRevision(base string) (int, bool) {
	stem, ok := strings.CutSuffix(base, ".onnx")
	i := strings.LastIndex(stem, ".r")
	if !ok || !strings.HasPrefix(base, "graph-") || i < 0 {
		return 0, false
	}
	rev, err := strconv.Atoi(stem[i+2:])
	return rev, err == nil && rev >= 0
}
