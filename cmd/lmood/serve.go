package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/server"
	"github.com/lmood/lmood/internal/store"
)

// serveFlags are the serve command's flags.
type serveFlags struct {
	addr     string
	cfg      server.Config
	shutdown time.Duration
}

func newServeCmd(g *globals) *cobra.Command {
	var sf serveFlags
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Serve the API (JSON over HTTP) and a web heatmap",
		Long: `serve answers JSON over HTTP, in the style of ollama's API, on 127.0.0.1:11435
by default:

  POST /api/score     {"prompt": "..."} or {"prompts": [...]}, optional "model",
                      "layer", "stream" and "options" (samples, sigma, seed, noise,
                      direction, isolate, include_first, max_tokens, aggregate,
                      surprisal: the analysis flags under their JSON names). One
                      prompt: the record 'lmood score --json' writes; several (or
                      "stream": true): NDJSON, one record per line as each is done.
  POST /api/layers    the same body without "layer": the records of 'lmood layers --json'
  GET  /api/models    models in the store;  GET /api/version;  GET /healthz
  GET  /api/openapi.json   the OpenAPI 3 description;  GET /metrics (Prometheus)
  GET  /              a web page: type text, see each token coloured by its score

--model may be a store name, a .gguf path or ollama:NAME (converted once at
start); requests name models of the store only. Bad requests get 400 with
{"error": ..., "field": ...}; when --parallel analyses run and --queue
requests wait, more get 429 with Retry-After. SIGTERM or Ctrl-C stops
accepting requests, lets running ones finish for --shutdown-timeout, then
cancels them between prompts.`,
		Example: `  lmood serve
  curl -s localhost:11435/api/score -d '{"prompt": "Eggplants are fire-engine red.", "options": {"samples": 16}}'
  curl -s localhost:11435/api/score -d '{"prompts": ["one", "two"], "layer": 20}'   # NDJSON`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runServe(g, &sf)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&sf.addr, "addr", server.DefaultAddr, "address to listen on (host:port); keep it on loopback unless a proxy guards it")
	fl.StringVarP(&g.model, "model", "m", store.DefaultModel, "default model for requests that name none: a store name, a .gguf path or ollama:NAME[:TAG]")
	fl.IntVar(&g.threads, "threads", 0, "onnxruntime intra-op threads per analysis (0 = cores / --parallel)")
	fl.IntVar(&sf.cfg.Parallel, "parallel", 0, "analyses run at once (0 = half the cores, at least 1)")
	fl.IntVar(&sf.cfg.Queue, "queue", 8, "requests that may wait beyond --parallel before the server answers 429")
	fl.DurationVar(&sf.cfg.Timeout, "timeout", 2*time.Minute, "longest time one request may take")
	fl.Int64Var(&sf.cfg.MaxBody, "max-body", 1<<20, "largest request body in bytes")
	fl.IntVar(&sf.cfg.MaxPrompts, "max-prompts", 64, "most prompts in one request")
	fl.IntVar(&sf.cfg.MaxTokens, "max-tokens", 512, "most tokens in one prompt (also the default of options.max_tokens)")
	fl.IntVar(&sf.cfg.MaxSamples, "max-samples", 256, "largest K (options.samples) a request may ask for")
	fl.IntVar(&sf.cfg.CacheSize, "cache", 4, "idle analyzer sessions kept warm (one per model, options and layer)")
	fl.IntVar(&sf.cfg.MaxModels, "max-models", 2, "models kept open at once")
	fl.DurationVar(&sf.shutdown, "shutdown-timeout", 30*time.Second, "on SIGTERM, how long running requests may finish before they are cancelled")
	return cmd
}

func runServe(g *globals, sf *serveFlags) error {
	for _, c := range []struct {
		name string
		v    int64
	}{{"--queue", int64(sf.cfg.Queue)}, {"--max-body", sf.cfg.MaxBody}, {"--max-prompts", int64(sf.cfg.MaxPrompts)},
		{"--max-tokens", int64(sf.cfg.MaxTokens)}, {"--max-samples", int64(sf.cfg.MaxSamples)}, {"--cache", int64(sf.cfg.CacheSize)},
		{"--max-models", int64(sf.cfg.MaxModels)}, {"--parallel", int64(sf.cfg.Parallel)}} {
		if c.v < 0 {
			return usageError{fmt.Errorf("%s must be >= 0, got %d", c.name, c.v)}
		}
	}
	// Resolve (and convert once) the default model before listening.
	m, err := openModel(g)
	if err != nil {
		return err
	}
	name := m.Manifest.Name
	m.Close()

	cfg := sf.cfg
	cfg.DefaultModel, cfg.Version, cfg.Threads = name, version, g.threads
	cfg.Logf = g.logf
	srv := server.New(cfg)
	defer srv.Close()

	ln, err := net.Listen("tcp", sf.addr)
	if err != nil {
		return fmt.Errorf("serve: listen on %s: %w (is another lmood serve running? choose another with --addr)", sf.addr, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	eff := srv.Config()
	fmt.Fprintf(os.Stderr, "lmood: serving on http://%s (model %s, %d parallel, queue %d); Ctrl-C to stop\n", ln.Addr(), name, eff.Parallel, eff.Queue)

	ctx, stop := signalContext()
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	stop()
	fmt.Fprintf(os.Stderr, "lmood: shutting down (waiting up to %v for running requests)\n", sf.shutdown)
	sctx, cancel := context.WithTimeout(context.Background(), sf.shutdown)
	defer cancel()
	srv.Drain()
	closed := make(chan struct{})
	go func() { _ = hs.Shutdown(sctx); close(closed) }() // stop accepting, close idle connections
	serr := srv.Shutdown(sctx)                           // finish or cancel admitted requests
	select {
	case <-closed:
	case <-time.After(2 * time.Second):
	}
	_ = hs.Close()
	if serr != nil {
		fmt.Fprintf(os.Stderr, "lmood: %v\n", serr)
	}
	return nil
}
