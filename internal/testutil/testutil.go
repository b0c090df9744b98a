// Package testutil finds the real model, onnxruntime and the Python oracle
// for tests that need them. Such tests skip when a piece is missing, unless
// LMOOD_REQUIRE_ORACLE=1 (as CI sets it), in which case they fail and say
// what to install.
//
// Environment:
//
//	LMOOD_TEST_GGUF       path to the default model's GGUF (SmolLM2-135M Q4_1)
//	LMOOD_ORT_LIB         path to libonnxruntime (default: where `lmood setup` puts it)
//	LMOOD_PYTHON          python with the oracle's packages (default python3)
//	LMOOD_REQUIRE_ORACLE  1 = missing pieces fail instead of skip
package testutil

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// Required reports whether missing test dependencies must fail the test.
func Required() bool { return os.Getenv("LMOOD_REQUIRE_ORACLE") == "1" }

// Missing skips the test, or fails it when dependencies are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("LMOOD_REQUIRE_ORACLE=1 but "+format, args...)
	}
	t.Skipf(format, args...)
}

// GGUF returns the real model's GGUF path.
func GGUF(t testing.TB) string {
	t.Helper()
	p := os.Getenv("LMOOD_TEST_GGUF")
	if p == "" {
		Missing(t, "LMOOD_TEST_GGUF is not set (run the tests through scripts/test.sh, which sets it)")
	}
	if _, err := os.Stat(p); err != nil {
		Missing(t, "LMOOD_TEST_GGUF=%s: %v", p, err)
	}
	return p
}

// Python returns the interpreter that runs the oracles.
func Python(t testing.TB) string {
	t.Helper()
	py := os.Getenv("LMOOD_PYTHON")
	if py == "" {
		py = "python3"
	}
	if err := exec.Command(py, "-c", "import numpy, gguf").Run(); err != nil {
		Missing(t, "%s cannot import numpy and gguf (%v): pip install -r scripts/oracle-requirements.txt", py, err)
	}
	return py
}

// Runtime loads onnxruntime.
func Runtime(t testing.TB) {
	t.Helper()
	if err := runtime.Init(""); err != nil {
		Missing(t, "%v", err)
	}
}

// shared is one GGUF imported once per test binary.
type shared struct {
	once sync.Once
	err  error
}

var (
	sharedMu  sync.Mutex
	sharedDir string                 // temporary store of the shared imports
	imports   = map[string]*shared{} // by name
	realName  = "smollm2-test"
)

// SharedModel imports the GGUF at path under name into a temporary store
// shared by the whole test binary, once, at float32 precision (the
// reference the numeric tests compare with), and opens it: tests of one
// package that need the same real model convert it only once. The caller
// closes the model; Main removes the store.
func SharedModel(t testing.TB, path, name string) *store.Model {
	t.Helper()
	return SharedModelAt(t, path, name, store.PrecisionF32)
}

// SharedModelAt is SharedModel at the given import precision (names must
// differ between precisions).
func SharedModelAt(t testing.TB, path, name, precision string) *store.Model {
	t.Helper()
	sharedMu.Lock()
	if sharedDir == "" {
		dir, err := os.MkdirTemp("", "lmood-test-store-")
		if err != nil {
			sharedMu.Unlock()
			t.Fatal(err)
		}
		sharedDir = dir
	}
	sh := imports[name]
	if sh == nil {
		sh = &shared{}
		imports[name] = sh
	}
	st := &store.Store{Root: filepath.Join(sharedDir, "models")}
	sharedMu.Unlock()
	sh.once.Do(func() {
		_, _, sh.err = st.ImportWith(context.Background(), path, name, store.Source{Kind: "file", Ref: path}, store.ImportOptions{Precision: precision})
	})
	if sh.err != nil {
		t.Fatalf("import %s: %v", path, sh.err)
	}
	m, err := st.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	return m
}

// RealModel imports the real GGUF (LMOOD_TEST_GGUF) once per test binary
// into a temporary store and opens it. The caller closes the model.
func RealModel(t testing.TB) *store.Model {
	t.Helper()
	path := GGUF(t)
	Runtime(t)
	return SharedModel(t, path, realName)
}

// Cleanup removes the shared temporary store; call it from TestMain.
func Cleanup() {
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
}

// Main runs a package's tests and then removes the shared temporary store;
// call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// OllamaHost returns the test ollama server's address from
// LMOOD_TEST_OLLAMA_HOST. Without one the test skips (always with
// LMOOD_SKIP_OLLAMA=1), or fails when LMOOD_REQUIRE_ORACLE=1.
func OllamaHost(t testing.TB) string {
	t.Helper()
	if os.Getenv("LMOOD_SKIP_OLLAMA") == "1" {
		t.Skip("LMOOD_SKIP_OLLAMA=1: no ollama server for this run")
	}
	host := os.Getenv("LMOOD_TEST_OLLAMA_HOST")
	if host == "" {
		Missing(t, "LMOOD_TEST_OLLAMA_HOST is not set (scripts/ollama.sh build && export LMOOD_TEST_OLLAMA_HOST=$(scripts/ollama.sh start))")
	}
	return host
}
