// Package ollama lets lmood analyze the models of a local ollama server.
//
// ollama keeps every model's weights as a GGUF file in its blob store, named
// after the file's SHA-256 (…/blobs/sha256-<hex>). This package asks the
// server (over its HTTP API, at $OLLAMA_HOST as the ollama client itself
// does) where a model's weights are, what architecture they are, and whether
// this process can read them; Import then converts that file into lmood's
// model store once, keyed by the digest, so a model re-pulled with new
// weights is converted again and an unchanged one never is.
//
// Nothing is downloaded and the server is never asked to load a model: the
// only calls are /api/tags (List) and /api/show (Show), each bounded by a
// timeout (30 s, or $LMOOD_OLLAMA_TIMEOUT).
package ollama

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ollama/ollama/api"
	"github.com/ollama/ollama/envconfig"

	"github.com/lmood/lmood/internal/fetch"
)

// EnvTimeout names the environment variable that bounds each request to
// the server: a Go duration ("45s", "2m") or a number of seconds; "0"
// means no limit.
const EnvTimeout = "LMOOD_OLLAMA_TIMEOUT"

// DefaultTimeout bounds each request when EnvTimeout is unset.
const DefaultTimeout = 30 * time.Second

// Sentinel errors; every error this package returns that matches one of
// them also explains what to do about it.
var (
	// ErrUnreachable: nothing answers at the server address.
	ErrUnreachable = errors.New("no ollama server answers")
	// ErrTimeout: the server accepted the request but did not answer in time.
	ErrTimeout = errors.New("no answer in time")
	// ErrNotFound: the server does not have the model.
	ErrNotFound = errors.New("model not found")
	// ErrNoWeights: the server's description names no GGUF blob.
	ErrNoWeights = errors.New("no GGUF weights")
	// ErrUnreadable: the weights exist on the server's side but this
	// process cannot read them (another machine, user or container).
	ErrUnreadable = errors.New("weights not readable from here")
	// ErrBadRef: the ollama:NAME[:TAG] reference is malformed.
	ErrBadRef = errors.New("invalid ollama model reference")
)

// Client talks to one ollama server.
type Client struct {
	api     *api.Client
	host    string
	timeout time.Duration
}

// FromEnvironment returns a client for the server at $OLLAMA_HOST (default
// http://127.0.0.1:11434, the ollama client's own convention), with the
// request timeout from $LMOOD_OLLAMA_TIMEOUT.
func FromEnvironment() (*Client, error) {
	timeout, err := TimeoutFromEnv()
	if err != nil {
		return nil, err
	}
	c, err := api.ClientFromEnvironment()
	if err != nil {
		return nil, fmt.Errorf("ollama: %w", err)
	}
	return &Client{api: c, host: envconfig.Host().String(), timeout: timeout}, nil
}

// New returns a client for the server at host, given as OLLAMA_HOST would
// be ("127.0.0.1:11434", "http://box:11434", "box"); timeout bounds each
// request (0 = no limit).
func New(host string, timeout time.Duration) (*Client, error) {
	u, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	return &Client{api: api.NewClient(u, &http.Client{}), host: u.String(), timeout: timeout}, nil
}

// parseHost reads an OLLAMA_HOST-style address: the scheme defaults to
// http and the port to 11434.
func parseHost(host string) (*url.URL, error) {
	s := strings.TrimSpace(host)
	if s == "" {
		return nil, fmt.Errorf("ollama: empty server address")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("ollama: invalid server address %q: want [http://]HOST[:PORT]", host)
	}
	if u.Port() == "" {
		port := "11434"
		if strings.Contains(host, "://") {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	return u, nil
}

// TimeoutFromEnv reads $LMOOD_OLLAMA_TIMEOUT (default DefaultTimeout).
func TimeoutFromEnv() (time.Duration, error) {
	s := strings.TrimSpace(os.Getenv(EnvTimeout))
	if s == "" {
		return DefaultTimeout, nil
	}
	return ParseTimeout(s)
}

// ParseTimeout reads a timeout given as a Go duration ("45s", "2m") or a
// number of seconds ("45", "0.5"); 0 means no limit.
func ParseTimeout(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, err2 := strconv.ParseFloat(s, 64)
		if err2 != nil || secs > 1e9 {
			return 0, fmt.Errorf("ollama: %s=%q: want a duration such as 30s or 2m, or a number of seconds", EnvTimeout, s)
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("ollama: %s=%q: the timeout cannot be negative", EnvTimeout, s)
	}
	return d, nil
}

// Host is the server address the client talks to, for messages.
func (c *Client) Host() string { return c.host }

// Timeout is the bound on each request (0 = none).
func (c *Client) Timeout() time.Duration { return c.timeout }

// API is the underlying ollama API client, for calls this package does not
// wrap (tests use it to create models).
func (c *Client) API() *api.Client { return c.api }

// call runs fn with the client's timeout and turns transport failures into
// errors that name the server and say what to do.
func (c *Client) call(ctx context.Context, what string, fn func(context.Context) error) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	err := fn(ctx)
	if err == nil {
		return nil
	}
	return c.classify(ctx, what, err)
}

func (c *Client) classify(ctx context.Context, what string, err error) error {
	var se api.StatusError
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("ollama: %s: the server at %s said: %w", what, c.host, se)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		return fmt.Errorf("ollama: %s: the server at %s accepted the connection but gave %w (limit %s).\n  Fix: check the server is healthy (`ollama ps`, its log), or allow more time with %s=2m",
			what, c.host, ErrTimeout, c.timeout, EnvTimeout)
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("ollama: %s: %w", what, err)
	case errors.As(err, &dns), errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("ollama: %w at %s (%v).\n  Fix: start one with `ollama serve` (and `ollama pull NAME` the model), or point %s at a running server, e.g. OLLAMA_HOST=http://otherhost:11434",
			ErrUnreachable, c.host, rootCause(err), "OLLAMA_HOST")
	}
	return fmt.Errorf("ollama: %s: talking to the server at %s: %w", what, c.host, err)
}

// rootCause drops the url.Error wrapper ("Post "http://…": …"), whose URL
// the message already names.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CreateFromFile uploads a GGUF file to the server and creates model name
// from it, as `ollama create` does for a Modelfile holding only "FROM
// FILE", replacing any model of that name. It returns the file's SHA-256.
// lmood itself never changes the server; tests and scripts use this to set
// up models. The client's timeout does not apply (uploads can be large):
// bound it with ctx.
func (c *Client) CreateFromFile(ctx context.Context, name, path string) (string, error) {
	sum, err := fetch.FileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("ollama: create %s: %w", name, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("ollama: create %s: %w", name, err)
	}
	defer f.Close()
	digest := "sha256:" + sum
	if err := c.api.CreateBlob(ctx, digest, f); err != nil {
		return "", c.classify(ctx, "upload "+path, err)
	}
	req := &api.CreateRequest{Model: name, Files: map[string]string{"model.gguf": digest}}
	if err := c.api.Create(ctx, req, func(api.ProgressResponse) error { return nil }); err != nil {
		return "", c.classify(ctx, "create "+name, err)
	}
	return sum, nil
}
