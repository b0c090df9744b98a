package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// TestOpenAPI checks that /api/openapi.json is a valid OpenAPI 3 document
// and that real responses of the server — successes, NDJSON lines, errors —
// match it (kin-openapi's openapi3filter).
func TestOpenAPI(t *testing.T) {
	s, ts := newTestServer(t, Config{MaxBody: 2048, Parallel: 1, Queue: 1, RetryAfter: 1})
	ctx := context.Background()
	_, served := get(t, ts.URL+"/api/openapi.json")
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(served)
	if err != nil {
		t.Fatalf("load /api/openapi.json: %v", err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("/api/openapi.json is not valid OpenAPI 3: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: ts.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, method, path, body string, wantStatus int) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, ts.URL+path, rd)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, wantStatus, rb)
		}
		// Validate the request too (the test's bodies must follow the
		// document), then the response.
		vreq, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
		vreq.Header.Set("Content-Type", "application/json")
		route, params, err := router.FindRoute(vreq)
		if err != nil {
			t.Fatalf("%s %s: not in the document: %v", method, path, err)
		}
		in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route}
		if wantStatus < 400 && body != "" {
			if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
				t.Errorf("%s %s: request does not match the document: %v", method, path, err)
			}
		}
		ct := resp.Header.Get("Content-Type")
		if ct == "application/x-ndjson" {
			// Each line is one record of the schema the document names
			// for application/x-ndjson.
			media := route.Operation.Responses.Status(wantStatus).Value.Content.Get("application/x-ndjson")
			if media == nil {
				t.Fatalf("%s %s: NDJSON answer but the document has no application/x-ndjson", method, path)
			}
			sc := bufio.NewScanner(bytes.NewReader(rb))
			sc.Buffer(nil, 1<<20)
			n := 0
			for sc.Scan() {
				var v any
				if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
					t.Fatal(err)
				}
				if err := media.Schema.Value.VisitJSON(v); err != nil {
					t.Errorf("%s %s: NDJSON line %d does not match: %v", method, path, n+1, err)
				}
				n++
			}
			if n == 0 {
				t.Errorf("%s %s: empty NDJSON answer", method, path)
			}
			return
		}
		out := &openapi3filter.ResponseValidationInput{
			RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body:    io.NopCloser(bytes.NewReader(rb)),
			Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
		}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Errorf("%s %s (%d): response does not match the document: %v\n%s", method, path, resp.StatusCode, err, rb)
		}
	}

	cases := []struct {
		name, method, path, body string
		status                   int
	}{
		{"score one", "POST", "/api/score", `{"prompt": "Hello there", "options": {"samples": 3, "surprisal": true}}`, 200},
		{"score isolate", "POST", "/api/score", `{"prompt": "Hello there", "layer": 2, "options": {"samples": 2, "isolate": true, "aggregate": "median"}}`, 200},
		{"score one token", "POST", "/api/score", `{"prompt": "H", "options": {"samples": 2}}`, 200},
		{"score many NDJSON", "POST", "/api/score", `{"prompts": ["a b", "c d e"], "options": {"samples": 2}}`, 200},
		{"score many records", "POST", "/api/score", `{"prompts": ["a b", "c"], "stream": false, "options": {"samples": 2}}`, 200},
		{"layers one", "POST", "/api/layers", `{"prompt": "Hello there", "options": {"samples": 2}}`, 200},
		{"layers isolate", "POST", "/api/layers", `{"prompt": "Hello there", "options": {"samples": 2, "isolate": true}}`, 200},
		{"layers one token", "POST", "/api/layers", `{"prompt": "H", "options": {"samples": 2}}`, 200},
		{"layers many records", "POST", "/api/layers", `{"prompts": ["a b", "c"], "stream": false, "options": {"samples": 2}}`, 200},
		{"layers many NDJSON", "POST", "/api/layers", `{"prompts": ["a b", "c"], "options": {"samples": 2}}`, 200},
		{"bad option", "POST", "/api/score", `{"prompt": "x", "options": {"samples": 0}}`, 400},
		{"unknown field", "POST", "/api/layers", `{"prompt": "x", "nope": 1}`, 400},
		{"too large", "POST", "/api/score", `{"prompt": "` + strings.Repeat("a", 3000) + `"}`, 413},
		{"score with groups", "POST", "/api/score", `{"prompt": "Кот 😀", "groups": true, "options": {"samples": 2, "surprisal": true}}`, 200},
		{"models", "GET", "/api/models", "", 200},
		{"palette", "GET", "/api/palette", "", 200},
		{"version", "GET", "/api/version", "", 200},
		{"healthz", "GET", "/healthz", "", 200},
		{"metrics", "GET", "/metrics", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { check(t, tc.method, tc.path, tc.body, tc.status) })
	}

	t.Run("busy", func(t *testing.T) {
		b := newBlocker()
		s.beforeAnalyze = b.hook
		defer func() { s.beforeAnalyze = nil }()
		done := make(chan struct{}, 2)
		for range 2 {
			go func() {
				post(t, ts.URL+"/api/score", `{"prompt": "hold", "options": {"samples": 2}}`)
				done <- struct{}{}
			}()
		}
		<-b.started
		for len(s.admit) < 2 {
			<-waitTick()
		}
		check(t, "POST", "/api/score", `{"prompt": "x", "options": {"samples": 2}}`, 429)
		close(b.release)
		<-done
		<-done
	})
}
