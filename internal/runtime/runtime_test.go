package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// These run before anything loads a real library in this test binary.
func TestInitErrors(t *testing.T) {
	dir := t.TempDir()
	notLib := filepath.Join(dir, "libonnxruntime.so")
	if err := os.WriteFile(notLib, []byte("not a shared library"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		want       []string
	}{
		{"missing", filepath.Join(dir, "absent", "libonnxruntime.so"), []string{"no file at", "lmood setup", "--ort-lib", EnvLib}},
		{"directory", dir, []string{"no file at", "lmood setup"}},
		{"not a library", notLib, []string{"loading " + notLib + " failed", "1.24 or newer", "lmood setup"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := Init(tc.path)
			if !errors.Is(err, ErrNoLibrary) {
				t.Fatalf("Init(%s) = %v, want ErrNoLibrary", tc.path, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := NewSession("x.onnx", "in", 4, nil, SessionOptions{}); !errors.Is(err, ErrNoLibrary) {
		t.Errorf("NewSession before Init: %v", err)
	}
}

func TestDefaultLibPath(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/cache")
	t.Setenv(EnvLib, "")
	if got, want := DefaultLibPath(), "/cache/lmood/runtime/onnxruntime-"+ORTVersion+"/libonnxruntime.so."+ORTVersion; got != want {
		t.Errorf("DefaultLibPath = %s, want %s", got, want)
	}
	t.Setenv(EnvLib, "/opt/ort/libonnxruntime.so")
	if got := DefaultLibPath(); got != "/opt/ort/libonnxruntime.so" {
		t.Errorf("DefaultLibPath with %s = %s", EnvLib, got)
	}
}
