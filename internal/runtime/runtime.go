// Package runtime locates and loads the onnxruntime shared library and runs
// lmood's graphs: embeddings in, hidden states (and optionally logits) out.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/lmood/lmood/internal/fetch"
)

// EnvLib names the environment variable that points at libonnxruntime.
const EnvLib = "LMOOD_ORT_LIB"

// ORTVersion is the onnxruntime release lmood installs. onnxruntime_go
// v1.27.0 speaks C API 24 (onnxruntime 1.24); newer libraries accept it.
const ORTVersion = "1.24.4"

// ORT wheels on PyPI, pinned by digest. The wheel is a zip; lmood takes only
// the shared library out of it. Any CPython tag carries the same library.
var ortWheels = map[string]fetch.Artifact{
	"amd64": {
		URL:    "https://files.pythonhosted.org/packages/d5/b6/7a4df417cdd01e8f067a509e123ac8b31af450a719fa7ed81787dd6057ec/onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
		SHA256: "e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330",
		Size:   17222993,
		Name:   "onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
	},
	"arm64": {
		URL:    "https://files.pythonhosted.org/packages/38/e9/8c901c150ce0c368da38638f44152fb411059c0c7364b497c9e5c957321a/onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
		SHA256: "046ff290045a387676941a02a8ae5c3ebec6b4f551ae228711968c4a69d8f6b7",
		Name:   "onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
	},
}

const libMember = "onnxruntime/capi/libonnxruntime.so." + ORTVersion

// CacheDir is lmood's cache root: $XDG_CACHE_HOME/lmood, else ~/.cache/lmood.
func CacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "lmood")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "lmood")
	}
	return filepath.Join(os.TempDir(), "lmood-cache")
}

// DefaultLibPath is where `lmood setup` installs the library, unless
// LMOOD_ORT_LIB says otherwise.
func DefaultLibPath() string {
	if p := os.Getenv(EnvLib); p != "" {
		return p
	}
	return filepath.Join(CacheDir(), "runtime", "onnxruntime-"+ORTVersion, "libonnxruntime.so."+ORTVersion)
}

// Install downloads the pinned onnxruntime wheel for this machine, checks
// its digest and extracts the shared library to DefaultLibPath (or dest if
// set). An existing library is kept.
func Install(ctx context.Context, dest string, p fetch.Progress) (string, error) {
	if dest == "" {
		dest = filepath.Join(CacheDir(), "runtime", "onnxruntime-"+ORTVersion, "libonnxruntime.so."+ORTVersion)
	}
	if fi, err := os.Stat(dest); err == nil && fi.Size() > 0 {
		return dest, nil
	}
	if goruntime.GOOS != "linux" {
		return "", fmt.Errorf("runtime: automatic install supports Linux only; install onnxruntime %s yourself and set %s", ORTVersion, EnvLib)
	}
	a, ok := ortWheels[goruntime.GOARCH]
	if !ok {
		return "", fmt.Errorf("runtime: no pinned onnxruntime build for %s; install one yourself and set %s", goruntime.GOARCH, EnvLib)
	}
	whl, err := fetch.Get(ctx, a, filepath.Join(CacheDir(), "downloads"), p)
	if err != nil {
		return "", fmt.Errorf("runtime: install onnxruntime: %w", err)
	}
	if _, err := fetch.ExtractZipMember(whl, libMember, dest); err != nil {
		return "", fmt.Errorf("runtime: install onnxruntime: %w", err)
	}
	return dest, nil
}

// ErrNoLibrary is returned when libonnxruntime cannot be found or loaded.
var ErrNoLibrary = errors.New("onnxruntime library not available")

var (
	initMu   sync.Mutex
	initPath string
)

// Init loads libonnxruntime from libPath ("" = DefaultLibPath) once per
// process. Calling it again with the same path is a no-op.
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	if libPath == "" {
		libPath = DefaultLibPath()
	}
	if ort.IsInitialized() {
		if libPath != initPath {
			return fmt.Errorf("runtime: onnxruntime already loaded from %s, cannot also load %s", initPath, libPath)
		}
		return nil
	}
	fi, err := os.Stat(libPath)
	if err != nil || fi.IsDir() {
		return fmt.Errorf("runtime: %w: no file at %s.\n  Fix: run `lmood setup` (installs onnxruntime %s into %s), or point --ort-lib or %s at an existing libonnxruntime.so (version 1.24 or newer)",
			ErrNoLibrary, libPath, ORTVersion, filepath.Dir(filepath.Dir(DefaultLibPathNoEnv())), EnvLib)
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("runtime: %w: loading %s failed: %v.\n  lmood needs onnxruntime 1.24 or newer (C API 24). Fix: run `lmood setup`, or point --ort-lib or %s at a compatible libonnxruntime.so",
			ErrNoLibrary, libPath, err, EnvLib)
	}
	initPath = libPath
	return nil
}

// DefaultLibPathNoEnv is the install location, ignoring LMOOD_ORT_LIB.
func DefaultLibPathNoEnv() string {
	return filepath.Join(CacheDir(), "runtime", "onnxruntime-"+ORTVersion, "libonnxruntime.so."+ORTVersion)
}

// Version returns the loaded onnxruntime version string.
func Version() string {
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}

// SessionOptions tunes a session.
type SessionOptions struct {
	Threads int // intra-op threads; 0 = one per core
}

// Session runs one graph with a single float32 input of shape
// [batch, seq, dim] and float32 outputs of shape [batch, seq, width].
type Session struct {
	sess    *ort.DynamicAdvancedSession
	input   string
	outputs []string
	widths  []int
	dim     int
	mu      sync.Mutex
	runs    atomic.Int64 // forward passes run, for --verbose pass counting
}

// Runs returns the number of forward passes run so far.
func (s *Session) Runs() int { return int(s.runs.Load()) }

// Output describes one graph output to fetch.
type Output struct {
	Name  string
	Width int // size of the last axis (dim for hidden states, vocab for logits)
}

// NewSession loads the graph at path. Init must have succeeded.
func NewSession(path, input string, dim int, outputs []Output, opt SessionOptions) (*Session, error) {
	if !ort.IsInitialized() {
		return nil, fmt.Errorf("runtime: %w: call Init first", ErrNoLibrary)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("runtime: session options: %w", err)
	}
	defer so.Destroy()
	threads := opt.Threads
	if threads <= 0 {
		threads = goruntime.NumCPU()
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, fmt.Errorf("runtime: set threads: %w", err)
	}
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, fmt.Errorf("runtime: set threads: %w", err)
	}
	if err := so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll); err != nil {
		return nil, fmt.Errorf("runtime: optimization level: %w", err)
	}
	names := make([]string, len(outputs))
	widths := make([]int, len(outputs))
	for i, o := range outputs {
		names[i], widths[i] = o.Name, o.Width
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{input}, names, so)
	if err != nil {
		return nil, fmt.Errorf("runtime: load graph %s: %w", path, err)
	}
	return &Session{sess: s, input: input, outputs: names, widths: widths, dim: dim}, nil
}

// Run feeds embeds ([batch, seq, dim], row-major) and returns one buffer per
// output, each [batch, seq, width] row-major.
func (s *Session) Run(embeds []float32, batch, seq int) ([][]float32, error) {
	if batch <= 0 || seq <= 0 || len(embeds) != batch*seq*s.dim {
		return nil, fmt.Errorf("runtime: input has %d values, want %d×%d×%d", len(embeds), batch, seq, s.dim)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil, errors.New("runtime: session is closed")
	}
	in, err := ort.NewTensor(ort.NewShape(int64(batch), int64(seq), int64(s.dim)), embeds)
	if err != nil {
		return nil, fmt.Errorf("runtime: input tensor: %w", err)
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(s.outputs))
	bufs := make([][]float32, len(s.outputs))
	for i, w := range s.widths {
		bufs[i] = make([]float32, batch*seq*w)
		t, err := ort.NewTensor(ort.NewShape(int64(batch), int64(seq), int64(w)), bufs[i])
		if err != nil {
			return nil, fmt.Errorf("runtime: output tensor: %w", err)
		}
		defer t.Destroy()
		outs[i] = t
	}
	if err := s.sess.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("runtime: forward pass (batch %d, %d tokens): %w", batch, seq, err)
	}
	s.runs.Add(1)
	return bufs, nil
}

// Close releases the session.
func (s *Session) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sess == nil {
		return nil
	}
	err := s.sess.Destroy()
	s.sess = nil
	return err
}
