package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/lmood/lmood/internal/runtime"
)

var (
	buildMu   sync.Mutex
	buildDir  string
	buildDone = map[string]string{}
)

// BuildCommand builds the command package pkg (an import path such as
// github.com/lmood/lmood/cmd/lmood) once per test binary and returns the
// executable's path, for tests that must run the real binary as a
// subprocess (to kill it, for instance). Call Cleanup (or Main) to remove
// it.
func BuildCommand(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := buildDone[pkg]; ok {
		return p
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "lmood-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	out := filepath.Join(buildDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	buildDone[pkg] = out
	return out
}

// SubprocessEnv returns an environment for an lmood subprocess with its
// own empty cache directory (so model imports never touch the user's
// store) and LMOOD_ORT_LIB pointing at the onnxruntime library the tests
// use. It skips the test when there is no library (see Runtime).
func SubprocessEnv(t testing.TB) []string {
	t.Helper()
	Runtime(t)
	lib := runtime.DefaultLibPath()
	if _, err := os.Stat(lib); err != nil {
		Missing(t, "onnxruntime library %s: %v", lib, err)
	}
	return append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir(), runtime.EnvLib+"="+lib)
}
