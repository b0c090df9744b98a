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
		Size:   15152472,
		Name:   "onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl",
	},
}

// libSHA256 is the digest of the shared library inside each pinned wheel:
// the library lmood installs, and the only one it loads from its cache.
var libSHA256 = map[string]string{
	"amd64": "2d518e11c7767f9fdc4413bdbeb45acf30db504ff76a82fc19d9238a3f9f6c24",
	"arm64": "f373ae5fd4d878ed17ebea26e5480bd3d0a15e3bd6bc94b878e6c1b73998d22a",
}

const libMember = "onnxruntime/capi/libonnxruntime.so." + ORTVersion

// ErrNoCacheDir is returned when neither XDG_CACHE_HOME (absolute) nor
// HOME names a cache directory. lmood then refuses to guess: a shared
// fallback such as /tmp would let another user plant the library it loads.
var ErrNoCacheDir = errors.New("no cache directory")

// CacheRoot is lmood's cache root: $XDG_CACHE_HOME/lmood, else
// $HOME/.cache/lmood. A relative XDG_CACHE_HOME is ignored, as the XDG
// base directory specification says. With neither set it is an error,
// never a shared directory.
func CacheRoot() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "lmood"), nil
	}
	if home := os.Getenv("HOME"); home != "" && filepath.IsAbs(home) {
		return filepath.Join(home, ".cache", "lmood"), nil
	}
	return "", fmt.Errorf("runtime: %w: set XDG_CACHE_HOME or HOME to an absolute path (lmood keeps onnxruntime and its models under $XDG_CACHE_HOME/lmood or $HOME/.cache/lmood)", ErrNoCacheDir)
}

// CacheDir is CacheRoot without the error: "" when there is no cache
// directory (callers that write must use CacheRoot).
func CacheDir() string {
	d, _ := CacheRoot()
	return d
}

// installPath is where `lmood setup` installs the library.
func installPath() (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "runtime", "onnxruntime-"+ORTVersion, "libonnxruntime.so."+ORTVersion), nil
}

// DefaultLibPath is where `lmood setup` installs the library, unless
// LMOOD_ORT_LIB says otherwise ("" when there is no cache directory).
func DefaultLibPath() string {
	if p := os.Getenv(EnvLib); p != "" {
		return p
	}
	p, _ := installPath()
	return p
}

// ErrLibDigest reports a cached onnxruntime library whose SHA-256 is not
// the one of the library lmood installs (truncated, damaged or replaced).
var ErrLibDigest = errors.New("onnxruntime library does not match its pinned digest")

// VerifyLib checks that the library at path is the one lmood installs for
// this machine, by SHA-256.
func VerifyLib(path string) error {
	want, ok := libSHA256[goruntime.GOARCH]
	if !ok {
		return fmt.Errorf("runtime: %w: no pinned onnxruntime build for %s; install one yourself and set %s", ErrLibDigest, goruntime.GOARCH, EnvLib)
	}
	got, err := fetch.FileSHA256(path)
	if err != nil {
		return fmt.Errorf("runtime: check %s: %w", path, err)
	}
	if got != want {
		return fmt.Errorf("runtime: %w: %s has sha256 %s, want %s (truncated, damaged or replaced).\n  Fix: run `lmood setup` to install it again",
			ErrLibDigest, path, got, want)
	}
	return nil
}

// Install downloads the pinned onnxruntime wheel for this machine, checks
// its digest and extracts the shared library to the install location (or
// dest if set). An existing library is kept if it has the pinned digest;
// one that does not (truncated, damaged) is installed again.
func Install(ctx context.Context, dest string, p fetch.Progress) (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	if dest == "" {
		dest, _ = installPath()
	}
	if VerifyLib(dest) == nil {
		return dest, nil
	}
	if goruntime.GOOS != "linux" {
		return "", fmt.Errorf("runtime: automatic install supports Linux only; install onnxruntime %s yourself and set %s", ORTVersion, EnvLib)
	}
	a, ok := ortWheels[goruntime.GOARCH]
	if !ok {
		return "", fmt.Errorf("runtime: no pinned onnxruntime build for %s; install one yourself and set %s", goruntime.GOARCH, EnvLib)
	}
	whl, err := fetch.Get(ctx, a, filepath.Join(root, "downloads"), p)
	if err != nil {
		return "", fmt.Errorf("runtime: install onnxruntime: %w", err)
	}
	if _, err := fetch.ExtractZipMember(whl, libMember, dest); err != nil {
		return "", fmt.Errorf("runtime: install onnxruntime: %w", err)
	}
	if err := VerifyLib(dest); err != nil {
		os.Remove(dest)
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

// Init loads libonnxruntime once per process. libPath (or, if empty,
// $LMOOD_ORT_LIB) is the user's choice and is loaded as given once it is
// found to be a regular file; with neither, the library `lmood setup`
// installed in the cache is loaded, and only if its SHA-256 is the pinned
// one. Calling Init again with the same path is a no-op.
func Init(libPath string) error {
	initMu.Lock()
	defer initMu.Unlock()
	cached := false
	if libPath == "" {
		libPath = os.Getenv(EnvLib)
	}
	if libPath == "" {
		p, err := installPath()
		if err != nil {
			return fmt.Errorf("runtime: %w: %w", ErrNoLibrary, err)
		}
		libPath, cached = p, true
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
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("runtime: %w: %s is not a regular file; point --ort-lib or %s at libonnxruntime.so", ErrNoLibrary, libPath, EnvLib)
	}
	if cached {
		if err := VerifyLib(libPath); err != nil {
			return fmt.Errorf("runtime: %w: %w", ErrNoLibrary, err)
		}
	}
	ort.SetSharedLibraryPath(libPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		return fmt.Errorf("runtime: %w: loading %s failed: %v.\n  lmood needs onnxruntime 1.24 or newer (C API 24). Fix: run `lmood setup`, or point --ort-lib or %s at a compatible libonnxruntime.so",
			ErrNoLibrary, libPath, err, EnvLib)
	}
	initPath = libPath
	return nil
}

// DefaultLibPathNoEnv is the install location, ignoring LMOOD_ORT_LIB
// ("$XDG_CACHE_HOME/lmood/..." when there is no cache directory, for help
// texts).
func DefaultLibPathNoEnv() string {
	p, err := installPath()
	if err != nil {
		return filepath.Join("$XDG_CACHE_HOME", "lmood", "runtime", "onnxruntime-"+ORTVersion, "libonnxruntime.so."+ORTVersion)
	}
	return p
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
	// DisablePrepacking sets onnxruntime's session.disable_prepacking:
	// kernels then read weights where they lie (the external-data file,
	// which onnxruntime memory-maps when a tensor's offset is page
	// aligned) instead of copying them into packed buffers of their own.
	// LMOOD_ORT_DISABLE_PREPACKING=1 sets it for every session (for
	// measurements; see README, "Speed").
	DisablePrepacking bool
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
	if opt.DisablePrepacking || os.Getenv("LMOOD_ORT_DISABLE_PREPACKING") == "1" {
		if err := so.AddSessionConfigEntry("session.disable_prepacking", "1"); err != nil {
			return nil, fmt.Errorf("runtime: disable prepacking: %w", err)
		}
	}
	if prefix := os.Getenv("LMOOD_ORT_PROFILE"); prefix != "" {
		// onnxruntime writes a chrome-trace JSON of every node's run time
		// (prefix_<date>.json) when the session ends: for measurements.
		if err := so.EnableProfiling(prefix); err != nil {
			return nil, fmt.Errorf("runtime: enable profiling: %w", err)
		}
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
