package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
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

// TestCacheRootNoSharedFallback: without HOME and XDG_CACHE_HOME there is no
// cache (never a directory under the shared /tmp), and a relative
// XDG_CACHE_HOME is ignored as the XDG spec says.
func TestCacheRootNoSharedFallback(t *testing.T) {
	tests := []struct {
		name, xdg, home, want, err string
	}{
		{name: "xdg", xdg: "/x", home: "/h", want: "/x/lmood"},
		{name: "home", home: "/h", want: "/h/.cache/lmood"},
		{name: "relative xdg ignored", xdg: "rel/cache", home: "/h", want: "/h/.cache/lmood"},
		{name: "nothing", err: "XDG_CACHE_HOME or HOME"},
		{name: "relative only", xdg: "rel", home: "also-rel", err: "XDG_CACHE_HOME or HOME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			t.Setenv(EnvLib, "")
			got, err := CacheRoot()
			if tt.err != "" {
				if !errors.Is(err, ErrNoCacheDir) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("CacheRoot = %q, %v; want ErrNoCacheDir naming %s", got, err, tt.err)
				}
				if err := Init(""); !errors.Is(err, ErrNoCacheDir) || !errors.Is(err, ErrNoLibrary) {
					t.Errorf("Init without a cache: %v", err)
				}
				if _, err := Install(context.Background(), "", nil); !errors.Is(err, ErrNoCacheDir) {
					t.Errorf("Install without a cache: %v", err)
				}
				if d := CacheDir(); d != "" {
					t.Errorf("CacheDir = %q, want empty", d)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("CacheRoot = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestCachedLibVerified: a library in lmood's cache is loaded only if its
// SHA-256 is the pinned one, so a truncated copy (which crashed with SIGBUS)
// or one planted by someone else is refused with a clear error.
func TestCachedLibVerified(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv(EnvLib, "")
	lib := DefaultLibPathNoEnv()
	if !strings.HasPrefix(lib, cache) {
		t.Fatalf("install path %s is not under %s", lib, cache)
	}
	os.MkdirAll(filepath.Dir(lib), 0o755)
	for name, content := range map[string][]byte{
		"truncated": []byte("\x7fELF\x02\x01\x01"),
		"planted":   []byte("a library with a constructor"),
	} {
		if err := os.WriteFile(lib, content, 0o755); err != nil {
			t.Fatal(err)
		}
		err := Init("")
		if !errors.Is(err, ErrLibDigest) || !errors.Is(err, ErrNoLibrary) {
			t.Fatalf("%s: Init = %v, want ErrLibDigest", name, err)
		}
		for _, w := range []string{lib, "lmood setup", "sha256"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", name, err, w)
			}
		}
	}
	// A path the user gives must be a regular file.
	fifo := filepath.Join(cache, "fifo.so")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Init(fifo); !errors.Is(err, ErrNoLibrary) || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Init(FIFO) = %v", err)
	}
}

// TestInstallReplacesDamagedLib: `lmood setup` re-installs a cached library
// that fails the digest check (it used to keep any non-empty file). The
// wheel is taken from the real cache's downloads, so no network is needed.
func TestInstallReplacesDamagedLib(t *testing.T) {
	a, ok := ortWheels[goruntime.GOARCH]
	if !ok {
		t.Skip("no pinned wheel for", goruntime.GOARCH)
	}
	home, _ := os.UserHomeDir()
	whl := filepath.Join(home, ".cache", "lmood", "downloads", a.Name)
	data, err := os.ReadFile(whl)
	if err != nil {
		t.Skipf("wheel not cached (%v); run scripts/test.sh setup", err)
	}
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	os.MkdirAll(filepath.Join(cache, "lmood", "downloads"), 0o755)
	if err := os.WriteFile(filepath.Join(cache, "lmood", "downloads", a.Name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	lib := DefaultLibPathNoEnv()
	os.MkdirAll(filepath.Dir(lib), 0o755)
	os.WriteFile(lib, []byte("truncated library"), 0o755)
	got, err := Install(context.Background(), "", nil)
	if err != nil || got != lib {
		t.Fatalf("Install = %s, %v", got, err)
	}
	if err := VerifyLib(lib); err != nil {
		t.Fatalf("after Install: %v", err)
	}
}
