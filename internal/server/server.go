// Package server is lmood's HTTP API and web page (`lmood serve`): JSON
// over HTTP in the style of ollama's API, on the core in internal/lmood.
//
// Routes:
//
//	POST /api/score        score prompts at one hidden state (ScoreRecord)
//	POST /api/layers       prompt-level ratio at every hidden state (LayersRecord)
//	GET  /api/models       models in the store
//	GET  /api/version      the server's version
//	GET  /api/openapi.json the OpenAPI 3 description of the above
//	GET  /healthz          liveness ("ok")
//	GET  /metrics          Prometheus metrics
//	GET  /                 the web heatmap
//
// Load: a request is admitted if fewer than Parallel+Queue requests are in
// flight, else refused with 429 and Retry-After; each prompt then waits
// for one of Parallel analysis slots. A request has Timeout in all; the
// client going away or the timeout cancels it between prompts (one
// prompt's analysis is not interrupted). While shutting down, new requests
// get 503 with Retry-After.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lmood/lmood/internal/analyze"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
)

// DefaultAddr is where `lmood serve` listens by default (ollama's port
// plus one, on loopback only).
const DefaultAddr = "127.0.0.1:11435"

// Config configures a Server. Zero fields take the defaults in brackets.
type Config struct {
	// Store holds the models the server may open (store.Default()). The
	// API opens models by store name only: never files or ollama
	// references, which a remote client must not be able to trigger.
	Store *store.Store
	// DefaultModel is used when a request names none (store.DefaultModel).
	DefaultModel string
	// Version is reported by /api/version.
	Version string
	// Parallel is the number of analyses run at once (NumCPU/2, at least 1).
	Parallel int
	// Queue is the number of requests that may wait beyond Parallel (8).
	Queue int
	// MaxBody bounds a request body in bytes (1 MiB).
	MaxBody int64
	// MaxPrompts bounds the prompts of one request (64).
	MaxPrompts int
	// MaxTokens bounds the tokens of one prompt (512); it is also the
	// default of options.max_tokens.
	MaxTokens int
	// MaxSamples bounds options.samples, K (256).
	MaxSamples int
	// Timeout bounds a whole request (2m).
	Timeout time.Duration
	// CacheSize is the number of idle analyzer sessions kept warm (4).
	CacheSize int
	// MaxModels is the number of models kept open (2).
	MaxModels int
	// Threads is onnxruntime's intra-op threads per session (NumCPU/Parallel).
	Threads int
	// RetryAfter is the Retry-After of 429 and 503 answers, in seconds (2).
	RetryAfter int
	// Logf receives one line per notable event (nil: silent).
	Logf func(format string, args ...any)
}

func (c Config) withDefaults() Config {
	if c.Store == nil {
		c.Store = store.Default()
	}
	if c.DefaultModel == "" {
		c.DefaultModel = store.DefaultModel
	}
	if c.Parallel <= 0 {
		c.Parallel = max(1, runtime.NumCPU()/2)
	}
	if c.Queue < 0 {
		c.Queue = 0
	} else if c.Queue == 0 {
		c.Queue = 8
	}
	if c.MaxBody <= 0 {
		c.MaxBody = 1 << 20
	}
	if c.MaxPrompts <= 0 {
		c.MaxPrompts = 64
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = 512
	}
	if c.MaxSamples <= 0 {
		c.MaxSamples = 256
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.CacheSize <= 0 {
		c.CacheSize = 4
	}
	if c.MaxModels <= 0 {
		c.MaxModels = 2
	}
	if c.Threads <= 0 {
		c.Threads = max(1, runtime.NumCPU()/c.Parallel)
	}
	if c.RetryAfter <= 0 {
		c.RetryAfter = 2
	}
	return c
}

// Server answers the API. Create it with New, serve Handler, and call
// Close when done.
type Server struct {
	cfg     Config
	pool    *pool
	metrics *metrics
	mux     *http.ServeMux

	admit chan struct{} // in-flight requests (Parallel+Queue)
	slots chan struct{} // running analyses (Parallel)

	// base is the parent of every request's context: cancelling it stops
	// all requests between prompts (shutdown past its deadline).
	base     context.Context
	cancel   context.CancelFunc
	draining atomic.Bool
	wg       sync.WaitGroup // admitted requests

	// beforeAnalyze, when set (tests), runs in a slot before each analysis.
	beforeAnalyze func(ctx context.Context)
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, admit: make(chan struct{}, cfg.Parallel+cfg.Queue), slots: make(chan struct{}, cfg.Parallel)}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.pool = newPool(cfg.Store, cfg.CacheSize, cfg.MaxModels, cfg.Threads, core.Hooks{Logf: cfg.Logf})
	s.metrics = newMetrics(s.pool)
	s.routes()
	return s
}

// Config returns the effective configuration (defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	s.mux = http.NewServeMux()
	handle := func(pattern, route string, h http.HandlerFunc) {
		s.mux.Handle(pattern, s.metrics.instrument(route, h))
	}
	handle("POST /api/score", "/api/score", s.handleScore)
	handle("POST /api/layers", "/api/layers", s.handleLayers)
	handle("GET /api/models", "/api/models", s.handleModels)
	handle("GET /api/version", "/api/version", s.handleVersion)
	handle("GET /api/openapi.json", "/api/openapi.json", s.handleOpenAPI)
	handle("GET /healthz", "/healthz", s.handleHealth)
	handle("GET /api/palette", "/api/palette", s.handlePalette)
	handle("GET /{$}", "/", s.handleIndex)
	handle("GET /static/", "/static", s.handleStatic)
	s.mux.Handle("GET /metrics", s.metrics.handler())
	allowed := map[string]string{"/api/score": "POST", "/api/layers": "POST", "/api/models": "GET", "/api/version": "GET",
		"/api/openapi.json": "GET", "/api/palette": "GET", "/healthz": "GET", "/metrics": "GET"}
	handle("/", "other", func(w http.ResponseWriter, r *http.Request) {
		if m, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", m)
			writeError(w, &apiError{status: http.StatusMethodNotAllowed, err: fmt.Errorf("%s %s: use %s", r.Method, r.URL.Path, m)})
			return
		}
		writeError(w, &apiError{status: http.StatusNotFound, err: fmt.Errorf("no route %s %s (see /api/openapi.json)", r.Method, r.URL.Path)})
	})
}

// Drain makes the server refuse new analysis requests with 503 (call it
// when shutdown starts).
func (s *Server) Drain() { s.draining.Store(true) }

// Shutdown drains the server and waits for admitted requests to finish;
// when ctx ends first, it cancels them (they stop between prompts) and
// waits for them to return. Use it with http.Server.Shutdown, which stops
// accepting connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Drain()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.cancel()
		<-done
		return fmt.Errorf("server: in-flight requests cancelled at the shutdown deadline: %w", ctx.Err())
	}
}

// Close releases models and sessions. Call it after Shutdown.
func (s *Server) Close() {
	s.cancel()
	s.pool.close()
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if s.draining.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "shutting down")
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, VersionResponse{Version: s.cfg.Version})
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	entries, err := s.cfg.Store.List()
	if err != nil {
		writeError(w, err)
		return
	}
	resp := ModelsResponse{Models: []ModelInfo{}}
	for _, e := range entries {
		mi := ModelInfo{Name: e.Name, Default: e.Name == s.cfg.DefaultModel}
		if e.Manifest != nil {
			c := e.Manifest.Config
			mi.Architecture, mi.NumLayers, mi.MiddleLayer, mi.Context = c.Arch, c.Layers, c.Middle(), c.ContextLength
		}
		if e.Err != nil {
			mi.Error = e.Err.Error()
		}
		resp.Models = append(resp.Models, mi)
	}
	writeJSON(w, http.StatusOK, resp)
}

// job is a validated analysis request.
type job struct {
	model   string
	prompts []string
	single  bool // one prompt, answered as one object
	stream  bool
	opt     core.Options
	hidden  []int
	layer   int        // score: the hidden state reported
	groups  bool       // add display groups to score records
	setup   core.Setup // for records of prompts that failed before a session opened
	rule    core.Rule
}

// parse decodes and validates a request for route ("score" or "layers")
// before anything is queued.
func (s *Server) parse(w http.ResponseWriter, r *http.Request, route string) (*job, error) {
	req := ScoreRequest{Options: core.DefaultOptions()}
	req.Options.MaxTokens = s.cfg.MaxTokens
	if ae := decodeRequest(w, r, s.cfg.MaxBody, &req); ae != nil {
		return nil, ae
	}
	j := &job{model: req.Model, opt: req.Options, groups: req.Groups}
	if j.model == "" {
		j.model = s.cfg.DefaultModel
	}
	switch {
	case req.Prompt != nil && req.Prompts != nil:
		return nil, badRequest("prompts", "give prompt or prompts, not both")
	case req.Prompt != nil:
		j.prompts, j.single = []string{*req.Prompt}, true
	case req.Prompts != nil:
		j.prompts = req.Prompts
	default:
		return nil, badRequest("prompt", "no prompt: give \"prompt\": \"text\" or \"prompts\": [\"text\", ...]")
	}
	if len(j.prompts) == 0 {
		return nil, badRequest("prompts", "prompts is empty")
	}
	if len(j.prompts) > s.cfg.MaxPrompts {
		return nil, badRequest("prompts", "%d prompts: the server takes at most %d per request (--max-prompts)", len(j.prompts), s.cfg.MaxPrompts)
	}
	for i, p := range j.prompts {
		field := fmt.Sprintf("prompts[%d]", i)
		if j.single {
			field = "prompt"
		}
		if !utf8Valid(p) {
			return nil, badRequest(field, "%s is not valid UTF-8", field)
		}
		if isBlank(p) {
			return nil, badRequest(field, "%s is empty: nothing to score", field)
		}
	}
	j.stream = !j.single
	if req.Stream != nil {
		j.stream = *req.Stream
	}
	if err := j.opt.Validate(); err != nil {
		f, _ := optionField(err)
		return nil, &apiError{status: http.StatusBadRequest, field: f, err: err}
	}
	if j.opt.Samples > s.cfg.MaxSamples {
		return nil, badRequest("options.samples", "options.samples: %d nudges: the server allows at most %d (--max-samples)", j.opt.Samples, s.cfg.MaxSamples)
	}
	if j.opt.MaxTokens == 0 {
		j.opt.MaxTokens = s.cfg.MaxTokens
	}
	if j.opt.MaxTokens > s.cfg.MaxTokens {
		return nil, badRequest("options.max_tokens", "options.max_tokens: %d: the server allows at most %d tokens per prompt (--max-tokens)", j.opt.MaxTokens, s.cfg.MaxTokens)
	}
	if route == "layers" {
		if req.Groups {
			return nil, badRequest("groups", "groups: only /api/score groups tokens")
		}
		if req.Layer != nil {
			return nil, badRequest("layer", "layer: /api/layers reports every hidden state; use /api/score for one")
		}
		if j.opt.Surprisal {
			return nil, badRequest("options.surprisal", "options.surprisal: not reported by /api/layers; use /api/score")
		}
	}
	if err := store.CheckName(j.model); err != nil {
		return nil, badRequest("model", "model %q: not a model name (see GET /api/models)", j.model)
	}
	man, err := s.cfg.Store.ReadManifest(j.model)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, badRequest("model", "model %q is not in the server's store (see GET /api/models; add it with `lmood pull` or `lmood import`)", j.model)
		}
		return nil, &apiError{status: http.StatusServiceUnavailable, field: "model", err: fmt.Errorf("model %q cannot be used: %w", j.model, err)}
	}
	c := man.Config
	defer func() {
		if res, err := j.opt.Resolve(j.hidden); err == nil {
			j.setup = core.NewSetup(j.model, c.Layers, res.Analyze, res.Aggregate)
			j.rule = core.RuleOf(res.Analyze, res.Aggregate)
		}
	}()
	if route == "layers" {
		j.hidden = core.AllHiddenStates(c.Layers)
		return j, nil
	}
	layer := -1
	if req.Layer != nil {
		layer = *req.Layer
	}
	h, err := core.ResolveLayer(layer, j.model, c.Layers, c.Middle())
	if err != nil {
		return nil, &apiError{status: http.StatusBadRequest, field: "layer", err: err}
	}
	j.layer, j.hidden = h, []int{h}
	return j, nil
}

// admitRequest takes an in-flight place or refuses with 429/503.
func (s *Server) admitRequest() (release func(), err error) {
	if s.draining.Load() {
		s.metrics.rejected.WithLabelValues("shutting_down").Inc()
		return nil, &apiError{status: http.StatusServiceUnavailable, retryAfter: s.cfg.RetryAfter, err: errors.New("the server is shutting down")}
	}
	select {
	case s.admit <- struct{}{}:
		s.wg.Add(1)
		return func() { <-s.admit; s.wg.Done() }, nil
	default:
		s.metrics.rejected.WithLabelValues("queue_full").Inc()
		return nil, &apiError{status: http.StatusTooManyRequests, retryAfter: s.cfg.RetryAfter,
			err: fmt.Errorf("the server is busy: %d requests in flight (--parallel %d, --queue %d); retry later", cap(s.admit), s.cfg.Parallel, s.cfg.Queue)}
	}
}

// requestContext derives a request's context: the client's, bounded by
// Timeout, and cancelled when the server gives up at shutdown.
func (s *Server) requestContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// analysis is the outcome of one prompt's analysis and the session
// settings that shaped it.
type analysis struct {
	res    *analyze.Result
	passes int
	setup  core.Setup
	rule   core.Rule
	// setupID is the session's SetupID at the job's layer (score records
	// carry it, like `lmood score --json`'s).
	setupID string
}

// analyze runs one prompt of j in an analysis slot. The returned setup is
// empty when no session was reached.
func (s *Server) analyze(ctx context.Context, j *job, prompt string) (analysis, error) {
	s.metrics.queue.Inc()
	select {
	case s.slots <- struct{}{}:
		s.metrics.queue.Dec()
	case <-ctx.Done():
		s.metrics.queue.Dec()
		return analysis{}, ctx.Err()
	}
	defer func() { <-s.slots }()
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	if s.beforeAnalyze != nil {
		s.beforeAnalyze(ctx)
	}
	if err := ctx.Err(); err != nil {
		return analysis{}, err
	}
	l, err := s.pool.acquire(j.model, j.opt, j.hidden)
	if err != nil {
		if errors.Is(err, errModelsBusy) {
			return analysis{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: s.cfg.RetryAfter, err: err}
		}
		return analysis{}, err
	}
	defer s.pool.release(l)
	res, passes, err := l.sess.Analyze(prompt)
	return analysis{res: res, passes: passes, setup: l.sess.Setup(), rule: l.sess.Rule(), setupID: l.sess.SetupID(j.layer, nil)}, err
}

// run admits, validates and analyzes a request of route, answering with
// records built by build.
func (s *Server) run(w http.ResponseWriter, r *http.Request, route string,
	build func(j *job, prompt string, a analysis, err error) (rec any, tokens int, failed bool)) {
	j, err := s.parse(w, r, route)
	if err != nil {
		writeError(w, err)
		return
	}
	release, err := s.admitRequest()
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	ctx, cancel := s.requestContext(r)
	defer cancel()

	var enc *ndjsonWriter
	if j.stream {
		enc = newNDJSON(w)
	}
	var records []any
	for i, prompt := range j.prompts {
		a, err := s.analyze(ctx, j, prompt)
		if ctxErr := ctx.Err(); ctxErr != nil || isCtxErr(err) {
			s.stopped(w, r, ctx, enc, i, len(j.prompts))
			return
		}
		var ae *apiError
		if errors.As(err, &ae) {
			if enc == nil || !enc.started {
				writeError(w, ae)
				return
			}
			enc.write(ErrorResponse{Error: ae.Error()})
			return
		}
		if j.single && err != nil {
			if errors.Is(err, core.ErrUsage) || isPromptError(err) {
				writeError(w, &apiError{status: http.StatusBadRequest, field: "prompt", err: err})
			} else {
				writeError(w, err)
			}
			return
		}
		if a.setup.Model == "" {
			a.setup, a.rule = j.setup, j.rule
		}
		rec, tokens, failed := build(j, prompt, a, err)
		outcome := "ok"
		if failed {
			outcome = "error"
		} else {
			s.metrics.tokens.WithLabelValues(route).Add(float64(tokens))
		}
		s.metrics.prompts.WithLabelValues(route, outcome).Inc()
		if enc != nil {
			if err := enc.write(rec); err != nil {
				return // the client went away
			}
			continue
		}
		records = append(records, rec)
	}
	if enc != nil {
		return
	}
	if j.single {
		writeJSON(w, http.StatusOK, records[0])
		return
	}
	writeJSON(w, http.StatusOK, RecordsResponse[any]{Records: records})
}

// stopped answers a request stopped by its context after done of total
// prompts: nothing when the client went away, else a timeout or shutdown
// error (as a last NDJSON line when a stream has started).
func (s *Server) stopped(w http.ResponseWriter, r *http.Request, ctx context.Context, enc *ndjsonWriter, done, total int) {
	if r.Context().Err() != nil {
		s.metrics.rejected.WithLabelValues("canceled").Inc()
		return
	}
	reason, msg := "timeout", fmt.Sprintf("request timed out after %v (--timeout) with %d of %d prompts done", s.cfg.Timeout, done, total)
	if s.base.Err() != nil {
		reason, msg = "shutting_down", fmt.Sprintf("the server shut down with %d of %d prompts done", done, total)
	}
	s.metrics.rejected.WithLabelValues(reason).Inc()
	if enc != nil && enc.started {
		enc.write(ErrorResponse{Error: msg})
		return
	}
	writeError(w, &apiError{status: http.StatusServiceUnavailable, err: errors.New(msg)})
}

func (s *Server) handleScore(w http.ResponseWriter, r *http.Request) {
	s.run(w, r, "score", func(j *job, prompt string, a analysis, err error) (any, int, bool) {
		rec := core.NewScoreRecord(prompt, a.setup, j.layer, a.rule, a.res, err)
		rec.SetupID = a.setupID
		if j.groups {
			return GroupedRecord{ScoreRecord: rec, Groups: groupTokens(rec.Tokens)}, len(rec.Tokens), rec.Error != ""
		}
		return rec, len(rec.Tokens), rec.Error != ""
	})
}

func (s *Server) handleLayers(w http.ResponseWriter, r *http.Request) {
	s.run(w, r, "layers", func(j *job, prompt string, a analysis, err error) (any, int, bool) {
		rec := core.NewLayersRecord(prompt, a.setup, a.rule, a.res, a.passes, err)
		return rec, rec.Tokens, rec.Error != ""
	})
}

func isCtxErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// isPromptError reports whether err is the analyzer refusing a prompt as
// given (too long, empty after tokenizing, invalid UTF-8).
func isPromptError(err error) bool {
	return errors.Is(err, analyze.ErrTooLong) || errors.Is(err, analyze.ErrEmptyPrompt) || errors.Is(err, analyze.ErrInvalidUTF8)
}
