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

var (
	once     sync.Once
	realDir  string
	realErr  error
	realName = "smollm2-test"
)

// RealModel imports the real GGUF once per test binary into a temporary
// store and opens it. The caller closes the model.
func RealModel(t testing.TB) *store.Model {
	t.Helper()
	path := GGUF(t)
	Runtime(t)
	once.Do(func() {
		realDir, realErr = os.MkdirTemp("", "lmood-test-store-")
		if realErr != nil {
			return
		}
		st := &store.Store{Root: filepath.Join(realDir, "models")}
		_, realErr = st.Import(path, realName, store.Source{Kind: "file", Ref: path}, nil)
	})
	if realErr != nil {
		t.Fatalf("import real model: %v", realErr)
	}
	st := &store.Store{Root: filepath.Join(realDir, "models")}
	m, err := st.Open(realName)
	if err != nil {
		t.Fatalf("open real model: %v", err)
	}
	return m
}

// Cleanup removes the shared temporary store; call it from TestMain.
func Cleanup() {
	if realDir != "" {
		os.RemoveAll(realDir)
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
