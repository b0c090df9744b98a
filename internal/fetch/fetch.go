// Package fetch downloads files from package registries into lmood's cache,
// verifies them by SHA-256 and writes them atomically: a download that is
// killed half-way leaves only a temporary file, never a file that a later
// run would trust.
package fetch

import (
	"archive/zip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Artifact is a pinned file in a registry.
type Artifact struct {
	URL    string // where to get it
	SHA256 string // lowercase hex digest it must have
	Size   int64  // expected size in bytes (0 = unknown), for progress and checked
	Name   string // file name to store it under
}

// Progress receives download progress; a nil Progress is silent.
type Progress interface {
	Start(name string, total int64)
	Add(n int)
	Finish()
}

// FileSHA256 returns the hex SHA-256 of a file's contents.
func FileSHA256(path string) (string, error) {
	return FileSHA256Context(context.Background(), path)
}

// ErrNotRegular reports a path that is not a regular file (a device, a
// FIFO, a directory): reading it could block or never end.
var ErrNotRegular = errors.New("not a regular file")

// CheckRegular makes sure path (after following symlinks) is a regular
// file, so that reading it ends: /dev/zero, a FIFO or a directory is
// refused with ErrNotRegular.
func CheckRegular(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return fi, fmt.Errorf("%s: %w (it is a %s)", path, ErrNotRegular, kind(fi.Mode()))
	}
	return fi, nil
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&os.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&os.ModeSocket != 0:
		return "socket"
	case m&os.ModeCharDevice != 0:
		return "character device"
	case m&os.ModeDevice != 0:
		return "block device"
	}
	return "special file"
}

// FileSHA256Context is FileSHA256 that refuses files that are not regular
// (they may never end) and stops when ctx is cancelled.
func FileSHA256Context(ctx context.Context, path string) (string, error) {
	if _, err := CheckRegular(path); err != nil {
		return "", err
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx, f}, make([]byte, 1<<20)); err != nil {
		return "", fmt.Errorf("fetch: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ctxReader fails with ctx's error once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// partInfix names the temporary files of downloads and atomic
// writes: "." + name + ".part-" + random. A process writing one holds an
// exclusive flock on it (see CreateTemp), so a sweep can tell leftovers of
// killed processes from files being written right now.
const partInfix = ".part-"

// partialSuffix names the resumable file of an interrupted download.
const partialSuffix = ".partial"

// CreateTemp creates a new temporary file next to path, named
// "."+base(path)+".part-*", with permissions perm as modified by the umask
// (os.CreateTemp would always make it 0600), and holds an exclusive flock
// on it until it is closed.
func CreateTemp(path string, perm os.FileMode) (*os.File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	var buf [8]byte
	for try := 0; try < 100; try++ {
		if _, err := rand.Read(buf[:]); err != nil {
			return nil, err
		}
		name := filepath.Join(dir, "."+base+partInfix+hex.EncodeToString(buf[:]))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			os.Remove(name)
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		return f, nil
	}
	return nil, fmt.Errorf("fetch: cannot create a temporary file in %s", dir)
}

// IsPart reports whether a file name is a temporary file of CreateTemp or
// the partial file of an interrupted download.
func IsPart(name string) bool {
	return strings.HasPrefix(name, ".") && (strings.Contains(name, partInfix) || strings.HasSuffix(name, partialSuffix))
}

// Leftovers lists the temporary files in dir that no running process is
// writing (their flock is free): what killed downloads and writes left.
func Leftovers(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		if !de.Type().IsRegular() || !IsPart(de.Name()) {
			continue
		}
		p := filepath.Join(dir, de.Name())
		if unlocked(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// unlocked reports whether nobody holds a flock on path.
func unlocked(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return false
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return true
}

// RemoveLeftover removes a temporary file listed by Leftovers, unless a
// process has started writing it since (it then holds its flock).
func RemoveLeftover(path string) error {
	if !IsPart(filepath.Base(path)) {
		return fmt.Errorf("fetch: %s is not a temporary file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return fmt.Errorf("fetch: %s is being written by a running process", path)
	}
	return os.Remove(path)
}

// ErrChecksum reports a file whose digest is not the pinned one.
var ErrChecksum = errors.New("checksum mismatch")

// Get makes sure dir/a.Name exists with the pinned checksum, downloading it
// if it is missing or does not match. It returns the file's path.
//
// A download that was interrupted resumes: what was received is kept in
// dir/.NAME.partial and, when the server honours an HTTP Range request,
// only the rest is fetched (the digest of the whole file is still checked).
func Get(ctx context.Context, a Artifact, dir string, p Progress) (string, error) {
	dest := filepath.Join(dir, a.Name)
	if sum, err := FileSHA256Context(ctx, dest); err == nil && sum == a.SHA256 {
		return dest, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch: create %s: %w", dir, err)
	}
	// The partial file is locked while a download writes it: two processes
	// fetching the same file wait for each other.
	partial := filepath.Join(dir, "."+a.Name+partialSuffix)
	pf, err := openLocked(ctx, partial)
	if err != nil {
		return "", fmt.Errorf("fetch: wait for another download of %s: %w", a.Name, err)
	}
	defer pf.Close()
	defer func() { // an empty partial file is not worth keeping
		if fi, err := pf.Stat(); err == nil && fi.Size() == 0 {
			os.Remove(partial)
		}
	}()
	if sum, err := FileSHA256Context(ctx, dest); err == nil && sum == a.SHA256 {
		return dest, nil // the other download finished it
	}
	have, err := pf.Seek(0, io.SeekEnd)
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if a.Size > 0 && have > a.Size {
		have = 0
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", fmt.Errorf("fetch: %s: %w", a.URL, err)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	client := &http.Client{Timeout: 30 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch: download %s: %w (is the registry reachable from this machine?); run the command again to resume", a.URL, err)
	}
	defer resp.Body.Close()
	switch {
	case have > 0 && resp.StatusCode == http.StatusPartialContent && contentRangeStart(resp.Header.Get("Content-Range")) == have:
		// resume
	case resp.StatusCode == http.StatusOK:
		have = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		have = 0 // the partial file is as long as the file or longer: check it
	default:
		return "", fmt.Errorf("fetch: download %s: HTTP %s", a.URL, resp.Status)
	}
	if err := pf.Truncate(have); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if _, err := pf.Seek(have, io.SeekStart); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	total := a.Size
	if resp.ContentLength > 0 && resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		total = have + resp.ContentLength
	}
	var body io.Reader = resp.Body
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		body = strings.NewReader("")
	}
	if p != nil {
		p.Start(a.Name, total)
		defer p.Finish()
		p.Add(int(have))
		body = &progressReader{r: body, p: p}
	}
	if _, err := io.Copy(pf, body); err != nil {
		pf.Sync()
		return "", fmt.Errorf("fetch: download %s: %w; run the command again to resume", a.URL, err)
	}
	if err := pf.Sync(); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	got, err := FileSHA256Context(ctx, partial)
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if fi, err := os.Stat(partial); err == nil && a.Size > 0 && fi.Size() != a.Size {
		os.Remove(partial)
		return "", fmt.Errorf("fetch: %s: %w: got %d bytes, want %d", a.URL, ErrChecksum, fi.Size(), a.Size)
	}
	if got != a.SHA256 {
		os.Remove(partial)
		return "", fmt.Errorf("fetch: %s: %w: got sha256 %s, want %s", a.URL, ErrChecksum, got, a.SHA256)
	}
	if err := os.Rename(partial, dest); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	return dest, nil
}

// contentRangeStart returns the first byte of a "bytes START-END/TOTAL"
// Content-Range header, or -1.
func contentRangeStart(h string) int64 {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return -1
	}
	start, _, ok := strings.Cut(rest, "-")
	if !ok {
		return -1
	}
	n, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// openLocked opens (creating it) the file at path and takes an exclusive
// flock on it, waiting while another process holds it. If the file was
// removed or replaced while waiting, the new one is opened instead.
func openLocked(ctx context.Context, path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := lockWait(ctx, f); err != nil {
			f.Close()
			return nil, err
		}
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(fi, pi) {
			return f, nil
		}
		f.Close()
	}
}

// lockWait takes an exclusive flock on f, waiting (cancellably) while
// another process holds it.
func lockWait(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type progressReader struct {
	r io.Reader
	p Progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	pr.p.Add(n)
	return n, err
}

// ExtractZipMember copies one member of a zip archive (a Python wheel is
// one) to dest atomically and returns the SHA-256 of what it wrote.
func ExtractZipMember(archive, member, dest string) (string, error) {
	zr, err := zip.OpenReader(archive)
	if err != nil {
		return "", fmt.Errorf("fetch: open %s: %w", archive, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != member {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return "", fmt.Errorf("fetch: %s in %s: %w", member, archive, err)
		}
		defer rc.Close()
		return WriteAtomic(dest, rc)
	}
	return "", fmt.Errorf("fetch: %s has no member %s", archive, member)
}

// WriteAtomic writes r to path through a temporary file and a rename, and
// returns the SHA-256 of the bytes written. The file is created 0644 as
// modified by the umask, like the rest of lmood's cache.
func WriteAtomic(path string, r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	tmp, err := CreateTemp(path, 0o644)
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		tmp.Close()
		return "", fmt.Errorf("fetch: write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("fetch: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("fetch: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
