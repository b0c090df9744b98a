package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyRoot != "" {
		os.RemoveAll(filepath.Dir(tinyRoot))
	}
	testutil.Cleanup()
	os.Exit(code)
}

const tinyName = "tiny"

var (
	tinyOnce sync.Once
	tinyRoot string
	tinyErr  error
)

// tinyStore returns a store holding the synthetic tiny model as "tiny"
// (imported once per test binary).
func tinyStore(t *testing.T) *store.Store {
	t.Helper()
	testutil.Runtime(t)
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "lmood-server-test-")
		if err != nil {
			tinyErr = err
			return
		}
		tinyRoot = filepath.Join(dir, "models")
		path := testutil.WriteTiny(t, testutil.DefaultTiny()) // converted below, so t's TempDir may go
		st := &store.Store{Root: tinyRoot}
		_, tinyErr = st.Import(path, tinyName, store.Source{Kind: "file", Ref: path}, nil)
	})
	if tinyErr != nil {
		t.Fatalf("import tiny model: %v", tinyErr)
	}
	return &store.Store{Root: tinyRoot}
}

// newTestServer starts a server on the tiny model.
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	cfg.Store = tinyStore(t)
	cfg.DefaultModel = tinyName
	if cfg.Version == "" {
		cfg.Version = "test"
	}
	s := New(cfg)
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.Close() })
	return s, ts
}

func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestBadInput(t *testing.T) {
	_, ts := newTestServer(t, Config{MaxPrompts: 3, MaxSamples: 50, MaxTokens: 64, MaxBody: 4096})
	tests := []struct {
		name   string
		route  string
		body   string
		status int
		field  string
	}{
		{"malformed JSON", "score", `{"prompt": "x"`, 400, ""},
		{"not an object", "score", `["x"]`, 400, ""},
		{"trailing data", "score", `{"prompt": "x"} {}`, 400, ""},
		{"empty body", "score", ``, 400, ""},
		{"unknown field", "score", `{"prompt": "x", "temperature": 1}`, 400, "temperature"},
		{"unknown option", "score", `{"prompt": "x", "options": {"k": 1}}`, 400, "k"},
		{"wrong type samples", "score", `{"prompt": "x", "options": {"samples": "ten"}}`, 400, "options.samples"},
		{"wrong type prompt", "score", `{"prompt": 42}`, 400, "prompt"},
		{"wrong type prompts", "score", `{"prompts": "x"}`, 400, "prompts"},
		{"wrong type layer", "score", `{"prompt": "x", "layer": 1.5}`, 400, "layer"},
		{"no prompt", "score", `{}`, 400, "prompt"},
		{"both prompt and prompts", "score", `{"prompt": "x", "prompts": ["y"]}`, 400, "prompts"},
		{"empty prompts", "score", `{"prompts": []}`, 400, "prompts"},
		{"too many prompts", "score", `{"prompts": ["a", "b", "c", "d"]}`, 400, "prompts"},
		{"empty prompt", "score", `{"prompt": ""}`, 400, "prompt"},
		{"blank prompt in list", "score", `{"prompts": ["a", "  \n"]}`, 400, "prompts[1]"},
		{"invalid UTF-8 prompt", "score", "{\"prompt\": \"a\xff\"}", 400, "prompt"},
		{"invalid UTF-8 in list", "score", "{\"prompts\": [\"a\", \"b\xd0\"]}", 400, "prompts[1]"},
		{"unknown model", "score", `{"prompt": "x", "model": "nope"}`, 400, "model"},
		{"model path refused", "score", `{"prompt": "x", "model": "/etc/passwd.gguf"}`, 400, "model"},
		{"zero samples", "score", `{"prompt": "x", "options": {"samples": 0}}`, 400, "options.samples"},
		{"samples over server limit", "score", `{"prompt": "x", "options": {"samples": 51}}`, 400, "options.samples"},
		{"absurd samples", "score", `{"prompt": "x", "options": {"samples": 1e12}}`, 400, "options.samples"},
		{"negative sigma", "score", `{"prompt": "x", "options": {"sigma": -1}}`, 400, "options.sigma"},
		{"bad noise", "score", `{"prompt": "x", "options": {"noise": "loud"}}`, 400, "options.noise"},
		{"bad direction", "score", `{"prompt": "x", "options": {"direction": "up"}}`, 400, "options.direction"},
		{"bad aggregate", "score", `{"prompt": "x", "options": {"aggregate": "max"}}`, 400, "options.aggregate"},
		{"negative max tokens", "score", `{"prompt": "x", "options": {"max_tokens": -1}}`, 400, "options.max_tokens"},
		{"max tokens over limit", "score", `{"prompt": "x", "options": {"max_tokens": 65}}`, 400, "options.max_tokens"},
		{"layer out of range", "score", `{"prompt": "x", "layer": 3}`, 400, "layer"},
		{"negative layer", "score", `{"prompt": "x", "layer": -2}`, 400, "layer"},
		{"prompt too long", "score", `{"prompt": "` + strings.Repeat("zq ", 100) + `", "options": {"max_tokens": 8}}`, 400, "prompt"},
		{"body too large", "score", `{"prompt": "` + strings.Repeat("a", 5000) + `"}`, 413, ""},
		{"layers takes no layer", "layers", `{"prompt": "x", "layer": 1}`, 400, "layer"},
		{"layers takes no surprisal", "layers", `{"prompt": "x", "options": {"surprisal": true}}`, 400, "options.surprisal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/api/"+tc.route, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			var e ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
				t.Fatalf("body %q is not a JSON error (%v)", body, err)
			}
			if e.Field != tc.field {
				t.Errorf("field %q, want %q (error %q)", e.Field, tc.field, e.Error)
			}
		})
	}
	// Nothing crashed and the server still answers.
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "still fine", "options": {"samples": 2}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("after bad input: %d %s", resp.StatusCode, body)
	}
}

func TestScoreEqualsCoreRecord(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	opt := core.DefaultOptions()
	opt.Samples, opt.Seed, opt.MaxTokens, opt.Surprisal = 4, 9, 512, true
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "Hello there, you", "layer": 1, "options": {"samples": 4, "seed": 9, "surprisal": true}}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	m, err := tinyStore(t).Open(tinyName)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	sess, err := core.NewSession(m, opt, []int{1}, 1, core.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	want, _ := json.Marshal(sess.Score("Hello there, you", 1))
	if got := bytes.TrimSpace(body); !bytes.Equal(got, want) {
		t.Errorf("server record differs from the core's:\n got %s\nwant %s", got, want)
	}

	// Layers likewise, against the core's layers record.
	resp, body = post(t, ts.URL+"/api/layers", `{"prompt": "Hello there, you", "options": {"samples": 4}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("layers: %d %s", resp.StatusCode, body)
	}
	lopt := core.DefaultOptions()
	lopt.Samples, lopt.MaxTokens = 4, 512
	ls, err := core.NewSession(m, lopt, core.AllHiddenStates(m.Config().Layers), 1, core.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	res, passes, err := ls.Analyze("Hello there, you")
	wantL, _ := json.Marshal(core.NewLayersRecord("Hello there, you", ls.Setup(), ls.Rule(), res, passes, err))
	if got := bytes.TrimSpace(body); !bytes.Equal(got, wantL) {
		t.Errorf("server layers record differs from the core's:\n got %s\nwant %s", got, wantL)
	}
}

func TestStreaming(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	prompts := []string{"one two", "three", "<b>x</b>"}
	pj, _ := json.Marshal(prompts)
	for _, tc := range []struct {
		name, body string
		ndjson     bool
	}{
		{"prompts stream by default", `{"prompts": ` + string(pj) + `, "options": {"samples": 2}}`, true},
		{"prompts without streaming", `{"prompts": ` + string(pj) + `, "stream": false, "options": {"samples": 2}}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, ts.URL+"/api/score", tc.body)
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			var recs []core.ScoreRecord
			if tc.ndjson {
				if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
					t.Errorf("Content-Type %q", ct)
				}
				sc := bufio.NewScanner(bytes.NewReader(body))
				for sc.Scan() {
					var r core.ScoreRecord
					if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
						t.Fatalf("line %q: %v", sc.Text(), err)
					}
					recs = append(recs, r)
				}
			} else {
				var rr RecordsResponse[core.ScoreRecord]
				if err := json.Unmarshal(body, &rr); err != nil {
					t.Fatal(err)
				}
				recs = rr.Records
			}
			if len(recs) != len(prompts) {
				t.Fatalf("%d records for %d prompts", len(recs), len(prompts))
			}
			for i, r := range recs {
				if r.Prompt != prompts[i] || r.Error != "" || len(r.Tokens) == 0 || r.Model != tinyName {
					t.Errorf("record %d: %+v", i, r)
				}
			}
		})
	}
	// One prompt with "stream": true is one NDJSON line.
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "one", "stream": true, "options": {"samples": 2}}`)
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || bytes.Count(body, []byte("\n")) != 1 {
		t.Errorf("stream of one: %s %q", resp.Header.Get("Content-Type"), body)
	}
}

// blocker holds analyses in their slot until released.
type blocker struct {
	started chan struct{}
	release chan struct{}
	n       atomic.Int32
}

func newBlocker() *blocker {
	return &blocker{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (b *blocker) hook(ctx context.Context) {
	b.n.Add(1)
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
}

func TestQueueFull(t *testing.T) {
	s, ts := newTestServer(t, Config{Parallel: 1, Queue: 1, RetryAfter: 7})
	b := newBlocker()
	s.beforeAnalyze = b.hook
	body := `{"prompt": "hold on", "options": {"samples": 2}}`
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := post(t, ts.URL+"/api/score", body)
			codes <- resp.StatusCode
		}()
	}
	<-b.started // one runs; wait for the other to be admitted (queued)
	deadline := time.Now().Add(5 * time.Second)
	for len(s.admit) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	resp, rb := post(t, ts.URL+"/api/score", body)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "7" {
		t.Errorf("third request: %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), rb)
	}
	// Metrics see the queued analysis.
	_, mb := get(t, ts.URL+"/metrics")
	if !strings.Contains(string(mb), "lmood_queue_depth 1") {
		t.Errorf("metrics do not show a queue of 1:\n%s", grepLines(string(mb), "lmood_queue"))
	}
	close(b.release)
	for range 2 {
		if c := <-codes; c != 200 {
			t.Errorf("admitted request answered %d", c)
		}
	}
}

func TestTimeout(t *testing.T) {
	s, ts := newTestServer(t, Config{Timeout: 100 * time.Millisecond})
	b := newBlocker()
	s.beforeAnalyze = b.hook
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "slow", "options": {"samples": 2}}`)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "timed out") {
		t.Errorf("timeout: %d %s", resp.StatusCode, body)
	}
}

func TestClientGoneStopsBetweenPrompts(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	b := newBlocker()
	s.beforeAnalyze = b.hook
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", ts.URL+"/api/score", strings.NewReader(`{"prompts": ["a", "b", "c", "d", "e"], "options": {"samples": 2}}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}()
	<-b.started
	b.release <- struct{}{} // first prompt goes on
	<-b.started             // second prompt waits in its slot
	cancel()
	<-done
	// The handler returns once it sees the cancellation: wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.admit) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(s.admit) > 0 {
		t.Fatal("the request is still in flight after the client went away")
	}
	if n := b.n.Load(); n != 2 {
		t.Errorf("%d analyses started for 5 prompts, want 2 (stop between prompts)", n)
	}
}

func TestShutdown(t *testing.T) {
	s, ts := newTestServer(t, Config{RetryAfter: 3})
	b := newBlocker()
	s.beforeAnalyze = b.hook
	type result struct {
		code int
		body string
	}
	res := make(chan result, 1)
	go func() {
		resp, body := post(t, ts.URL+"/api/score", `{"prompts": ["a", "b"], "options": {"samples": 2}}`)
		res <- result{resp.StatusCode, string(body)}
	}()
	<-b.started
	b.release <- struct{}{} // a is done; b blocks
	<-b.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	serr := make(chan error, 1)
	go func() { serr <- s.Shutdown(ctx) }()
	// While draining, new requests get 503 with Retry-After.
	deadline := time.Now().Add(time.Second)
	for !s.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "late", "options": {"samples": 2}}`)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("during shutdown: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if err := <-serr; err == nil {
		t.Error("Shutdown past its deadline returned nil")
	}
	r := <-res
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if r.code != 200 || len(lines) != 2 || !strings.Contains(lines[0], `"prompt":"a"`) || !strings.Contains(lines[1], "shut down") {
		t.Errorf("in-flight stream at shutdown: %d %q", r.code, r.body)
	}
}

func TestSessionCache(t *testing.T) {
	s, ts := newTestServer(t, Config{CacheSize: 2})
	send := func(seed int) {
		resp, body := post(t, ts.URL+"/api/score", `{"prompt": "hi", "options": {"samples": 2, "seed": `+itoa(seed)+`}}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	send(1)
	send(1)
	if _, _, opened := s.pool.stats(); opened != 1 {
		t.Errorf("the same options opened %d sessions, want 1 (kept warm)", opened)
	}
	send(2)
	send(3)
	idle, models, opened := s.pool.stats()
	if opened != 3 || idle != 2 || models != 1 {
		t.Errorf("after three option sets: %d opened, %d idle (cache 2), %d models", opened, idle, models)
	}
}

func TestInfoRoutes(t *testing.T) {
	_, ts := newTestServer(t, Config{Version: "9.9.9"})
	for _, tc := range []struct {
		path, want string
	}{
		{"/healthz", "ok"},
		{"/api/version", `{"version":"9.9.9"}`},
		{"/api/models", `"name":"tiny","default":true,"architecture":"llama","num_layers":2,"middle_layer":1`},
	} {
		resp, body := get(t, ts.URL+tc.path)
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d %s, want %s", tc.path, resp.StatusCode, body, tc.want)
		}
	}
	resp, body := get(t, ts.URL+"/nope")
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"error"`) {
		t.Errorf("GET /nope: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, ts.URL+"/api/score")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /api/score: %d", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	post(t, ts.URL+"/api/score", `{"prompt": "Hello there", "options": {"samples": 2}}`)
	post(t, ts.URL+"/api/score", `{"prompt": ""}`)
	_, body := get(t, ts.URL+"/metrics")
	m := string(body)
	for _, want := range []string{
		`lmood_http_requests_total{code="200",route="/api/score"} 1`,
		`lmood_http_requests_total{code="400",route="/api/score"} 1`,
		`lmood_http_request_duration_seconds_count{route="/api/score"} 2`,
		`lmood_prompts_total{outcome="ok",route="score"} 1`,
		`lmood_queue_depth 0`,
		`lmood_sessions_opened_total 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// Tokens scored: the tiny tokenizer's count for the prompt, > 0.
	if !strings.Contains(m, `lmood_tokens_scored_total{route="score"} `) || strings.Contains(m, `lmood_tokens_scored_total{route="score"} 0`) {
		t.Errorf("tokens scored: %s", grepLines(m, "lmood_tokens"))
	}
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// waitTick returns a channel that fires after a short pause (polling).
func waitTick() <-chan time.Time { return time.After(5 * time.Millisecond) }

func TestScoreGroups(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	resp, body := post(t, ts.URL+"/api/score", `{"prompt": "Кот", "groups": true, "options": {"samples": 2}}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var rec GroupedRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		t.Fatal(err)
	}
	// The tiny model has byte tokens only for Cyrillic: 6 tokens, 3 letters.
	var texts []string
	for _, g := range rec.Groups {
		texts = append(texts, g.Text)
	}
	if len(rec.Tokens) != 6 || strings.Join(texts, "|") != "К|о|т" {
		t.Fatalf("%d tokens, groups %q", len(rec.Tokens), texts)
	}
	g := rec.Groups[1]
	if want := (rec.Tokens[2].OOD + rec.Tokens[3].OOD) / 2; g.OOD == nil || *g.OOD != want || g.Start != 2 || g.End != 4 {
		t.Errorf("group %+v, want the mean OOD %v of tokens 2..3", g, want)
	}
	// Without "groups" the record is the CLI's: no groups field.
	_, body = post(t, ts.URL+"/api/score", `{"prompt": "Кот", "options": {"samples": 2}}`)
	if strings.Contains(string(body), `"groups"`) {
		t.Errorf("groups without asking: %s", body)
	}
}
