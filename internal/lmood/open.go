package lmood

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/ollama"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// Progress watches one long task (a download, a conversion). It matches
// store.ConvertProgress and fetch.Progress.
type Progress interface {
	Start(name string, total int64)
	Add(n int)
	Finish()
}

// Hooks let a front end watch what the core does. Every field may be nil.
type Hooks struct {
	// Logf receives details (timings, pass counts) a user asks for with
	// --verbose.
	Logf func(format string, args ...any)
	// Notef receives notes a user should see unless they asked for quiet:
	// a model conversion starting.
	Notef func(format string, args ...any)
	// Progress returns a new progress reporter for one task.
	Progress func() Progress
}

func (h Hooks) logf(format string, args ...any) {
	if h.Logf != nil {
		h.Logf(format, args...)
	}
}

func (h Hooks) notef(format string, args ...any) {
	if h.Notef != nil {
		h.Notef(format, args...)
	}
}

// progress returns a reporter, never nil.
func (h Hooks) progress() Progress {
	if h.Progress != nil {
		if p := h.Progress(); p != nil {
			return p
		}
	}
	return nopProgress{}
}

type nopProgress struct{}

func (nopProgress) Start(string, int64) {}
func (nopProgress) Add(int)             {}
func (nopProgress) Finish()             {}

// Opener resolves model references and opens models.
type Opener struct {
	// Store holds converted models (nil = store.Default()).
	Store *store.Store
	// ORTLib is the onnxruntime library path ("" = the default lookup).
	ORTLib string
	// Hooks watch conversions and downloads.
	Hooks Hooks
}

func (o *Opener) store() *store.Store {
	if o.Store != nil {
		return o.Store
	}
	return store.Default()
}

// OpenModel resolves ref — a store name, a path to a .gguf file (converted
// once, see [Opener.ImportFile]), or ollama:NAME[:TAG] (see
// [Opener.ResolveOllama]) — loads onnxruntime and opens the model. ctx
// cancels a conversion.
func (o *Opener) OpenModel(ctx context.Context, ref string) (*store.Model, error) {
	m, err := o.openModel(ctx, ref)
	return m, Classify(err)
}

func (o *Opener) openModel(ctx context.Context, ref string) (*store.Model, error) {
	if err := runtime.Init(o.ORTLib); err != nil {
		return nil, err
	}
	name := ref
	switch {
	case strings.HasPrefix(ref, ollama.Prefix):
		_, imp, err := o.ResolveOllama(ctx, ref, "", false)
		if err != nil {
			return nil, err
		}
		name = imp.Name
	case strings.HasSuffix(strings.ToLower(ref), ".gguf"):
		n, err := o.ImportFile(ctx, ref)
		if err != nil {
			return nil, err
		}
		name = n
	}
	return o.store().Open(name)
}

// ResolveOllama asks the ollama server at $OLLAMA_HOST about ref
// (ollama:NAME[:TAG]) and converts its weights into the store under name
// (empty = derived from the reference) if needed; force converts again.
// A malformed reference is a usage error.
func (o *Opener) ResolveOllama(ctx context.Context, ref, name string, force bool) (*ollama.Model, *ollama.Imported, error) {
	model, err := ollama.ParseRef(ref)
	if err != nil {
		return nil, nil, UsageError(err)
	}
	c, err := ollama.FromEnvironment()
	if err != nil {
		return nil, nil, err
	}
	o.Hooks.logf("asking the ollama server at %s about %s", c.Host(), model)
	m, err := c.Resolve(ctx, model)
	if err != nil {
		return nil, nil, err
	}
	o.Hooks.logf("%s: %s weights in %s", model, m.Arch, m.BlobPath)
	target := name
	if target == "" {
		target = ollama.StoreName(model)
	}
	note := func() {
		o.Hooks.notef("converting %s%s (%s, %s) into model %s", ollama.Prefix, model, m.Arch, m.Quantization, target)
	}
	imp, err := ollama.ImportContext(ctx, o.store(), m, name, force, &noteFirst{p: o.Hooks.progress(), note: note})
	if err != nil {
		return nil, nil, err
	}
	if !imp.Converted {
		o.Hooks.logf("%s is converted already as %s (sha256 %s…)", model, imp.Name, m.Digest[:12])
	}
	return m, imp, nil
}

// noteFirst sends a note when a conversion starts, then reports progress.
type noteFirst struct {
	p    Progress
	note func()
}

func (n *noteFirst) Start(name string, total int64) {
	if n.note != nil {
		n.note()
		n.note = nil
	}
	n.p.Start(name, total)
}

func (n *noteFirst) Add(k int) { n.p.Add(k) }

func (n *noteFirst) Finish() { n.p.Finish() }

// ImportFile converts the GGUF file at path once and returns its store
// name; later calls reuse the conversion while the file is unchanged (same
// absolute path, size and modification time). It never replaces a model
// converted from another source: if the file-derived name is taken, a
// suffix from the path's hash is added.
func (o *Opener) ImportFile(ctx context.Context, path string) (string, error) {
	st := o.store()
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("model file %s: %w", path, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("model file %s: %w", path, err)
	}
	name := NameFromPath(abs)
	for attempt := 0; ; attempt++ {
		m, err := st.ReadManifest(name)
		if err != nil && !errors.Is(err, store.ErrStale) {
			break // free name (or unreadable: replaced below)
		}
		if m != nil && m.Source.Kind == "file" && m.Source.GGUF == abs {
			if err == nil && m.Source.Size == fi.Size() && m.Source.ModTime.Equal(fi.ModTime().UTC()) {
				return name, nil
			}
			break // same file, changed or stale: convert again under this name
		}
		if attempt > 0 {
			return "", fmt.Errorf("model names %q and %q are taken by other models; import the file with `lmood import %s --name NAME`", NameFromPath(abs), name, path)
		}
		sum := sha256.Sum256([]byte(abs))
		name = fmt.Sprintf("%s-%x", strings.TrimRight(truncateName(NameFromPath(abs), 55), "-._"), sum[:4])
	}
	o.Hooks.notef("converting %s into model %q (once; later runs reuse it)", abs, name)
	if _, err := st.ImportContext(ctx, abs, name, store.Source{Kind: "file", Ref: abs}, o.Hooks.progress()); err != nil {
		return "", err
	}
	return name, nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// NameFromPath derives a store name from a GGUF file name.
func NameFromPath(p string) string {
	base := strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
	base = strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(base), "-"), "-._")
	if len(base) > 64 {
		base = base[:64]
	}
	if base == "" {
		base = "model"
	}
	return base
}

// truncateName cuts a store name to at most n bytes.
func truncateName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Session is one analyzer over a set of hidden states of an open model,
// with the request options it was opened with. It does not own the model.
type Session struct {
	model *store.Model
	an    *analyze.Analyzer
	opt   analyze.Options // effective
	rule  Rule
	hooks Hooks
}

// NewSession validates opt and opens an analyzer of model m over the given
// hidden states (threads: onnxruntime intra-op threads, 0 = one per core).
// An analyzer whose estimated peak memory (analyze.EstimateMemory) exceeds
// MemAvailable is refused with a *MemoryError before anything is loaded.
// runtime.Init must have succeeded (OpenModel does it).
func NewSession(m *store.Model, opt Options, hidden []int, threads int, hooks Hooks) (*Session, error) {
	if err := CheckThreads(threads); err != nil {
		return nil, err
	}
	r, err := opt.Resolve(hidden)
	if err != nil {
		return nil, err
	}
	if err := checkMemory(m, r.Analyze, hooks); err != nil {
		return nil, err
	}
	start := time.Now()
	an, err := analyze.New(m, r.Analyze, runtime.SessionOptions{Threads: threads})
	if err != nil {
		return nil, err
	}
	eff := an.Options()
	hooks.logf("model %s: %d hidden state(s) %s of %d, session ready in %v (onnxruntime %s)",
		m.Manifest.Name, len(hidden), DescribeLayers(hidden), m.Config().Layers, time.Since(start).Round(time.Millisecond), runtime.Version())
	return &Session{model: m, an: an, opt: eff, rule: RuleOf(eff, r.Aggregate), hooks: hooks}, nil
}

// Close releases the analyzer (not the model).
func (s *Session) Close() error { return s.an.Close() }

// Model returns the session's model.
func (s *Session) Model() *store.Model { return s.model }

// Options returns the analyzer's effective options.
func (s *Session) Options() analyze.Options {
	o := s.opt
	o.HiddenStates = append([]int(nil), o.HiddenStates...)
	return o
}

// Rule returns the prompt-level rule the session's summaries follow.
func (s *Session) Rule() Rule { return s.rule }

// Setup describes the session for records.
func (s *Session) Setup() Setup {
	return NewSetup(s.model.Manifest.Name, s.model.Config().Layers, s.opt, s.rule.Aggregate)
}

// Passes returns the forward passes run so far.
func (s *Session) Passes() int { return s.an.Passes() }

// Analyze runs one prompt and returns the forward passes it took.
func (s *Session) Analyze(prompt string) (*analyze.Result, int, error) {
	before := s.an.Passes()
	start := time.Now()
	res, err := s.an.Analyze(prompt)
	passes := s.an.Passes() - before
	if err == nil {
		s.hooks.logf("%d token(s) analyzed in %v", len(res.Tokens), time.Since(start).Round(time.Millisecond))
	}
	return res, passes, err
}

// DescribeLayers prints a list of hidden states compactly ("15", "1–30").
func DescribeLayers(hs []int) string {
	if len(hs) == 0 {
		return "none"
	}
	contiguous := true
	for i := 1; i < len(hs); i++ {
		contiguous = contiguous && hs[i] == hs[i-1]+1
	}
	if len(hs) > 1 && contiguous {
		return fmt.Sprintf("%d–%d", hs[0], hs[len(hs)-1])
	}
	parts := make([]string, len(hs))
	for i, h := range hs {
		parts[i] = fmt.Sprint(h)
	}
	return strings.Join(parts, ",")
}
