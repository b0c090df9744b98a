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
				if err := media.Schema.Value.VisitJSON(v, schemaOpts(doc)...); err != nil {
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

// schemaOpts are the options that validate values by doc's dialect, as
// openapi3filter does for requests and responses: JSON Schema 2020-12 for
// OpenAPI 3.1.
func schemaOpts(doc *openapi3.T) []openapi3.SchemaValidationOption {
	if doc.IsOpenAPI31OrLater() {
		return []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()}
	}
	return nil
}

// TestOpenAPIRecordSchemas: the served document's record schemas are the
// core's record schemas (the one definition of the records), plus only
// what the server adds, and they hold real records to them: an unknown
// field, a missing one or a value out of its set is refused.
func TestOpenAPIRecordSchemas(t *testing.T) {
	served, err := openAPI()
	if err != nil {
		t.Fatalf("build the OpenAPI document: %v", err)
	}
	var raw struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(served, &raw); err != nil {
		t.Fatal(err)
	}
	for name, schema := range recordSchemas {
		var want map[string]any
		if err := json.Unmarshal(schema(), &want); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		delete(want, "$id")
		delete(want, "$schema")
		got := raw.Components.Schemas[name]
		if name == "ScoreRecord" {
			props, _ := got["properties"].(map[string]any)
			if _, ok := props["groups"]; !ok {
				t.Errorf("ScoreRecord lacks the server's \"groups\"")
			}
			delete(props, "groups")
		}
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) {
			t.Errorf("served %s differs from the core's schema:\n got %s\nwant %s", name, gb, wb)
		}
	}

	doc, err := openapi3.NewLoader().LoadFromData(served)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("not valid OpenAPI: %v", err)
	}
	_, ts := newTestServer(t, Config{})
	_, rec := post(t, ts.URL+"/api/score", `{"prompt": "Hello there", "options": {"samples": 2}}`)
	_, lrec := post(t, ts.URL+"/api/layers", `{"prompt": "Hello there", "options": {"samples": 2}}`)
	edit := func(b []byte, f func(map[string]any)) any {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		f(v)
		return v
	}
	keep := func(map[string]any) {}
	for _, tc := range []struct {
		name, schema string
		value        any
		ok           bool
	}{
		{"score record", "ScoreRecord", edit(rec, keep), true},
		{"score record, unknown field", "ScoreRecord", edit(rec, func(v map[string]any) { v["bogus"] = 1 }), false},
		{"score record, no site", "ScoreRecord", edit(rec, func(v map[string]any) { delete(v, "site") }), false},
		{"score record, unknown site", "ScoreRecord", edit(rec, func(v map[string]any) { v["site"] = "nowhere" }), false},
		{"score record, bad setup_id", "ScoreRecord", edit(rec, func(v map[string]any) { v["setup_id"] = "xyz" }), false},
		{"score record, string id", "ScoreRecord", edit(rec, func(v map[string]any) { v["id"] = "a1" }), true},
		{"score record, boolean id", "ScoreRecord", edit(rec, func(v map[string]any) { v["id"] = true }), false},
		{"score record, zero sigma", "ScoreRecord", edit(rec, func(v map[string]any) { v["sigma"] = 0 }), false},
		{"layers record", "LayersRecord", edit(lrec, keep), true},
		{"layers record, null ratio", "LayersRecord", edit(lrec, func(v map[string]any) { v["layers"].([]any)[0].(map[string]any)["ratio"] = nil }), true},
		{"layers record, string ratio", "LayersRecord", edit(lrec, func(v map[string]any) { v["layers"].([]any)[0].(map[string]any)["ratio"] = "1" }), false},
		{"layers record, unknown field", "LayersRecord", edit(lrec, func(v map[string]any) { v["bogus"] = 1 }), false},
		{"layers record, no site", "LayersRecord", edit(lrec, func(v map[string]any) { delete(v, "site") }), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := doc.Components.Schemas[tc.schema].Value.VisitJSON(tc.value, schemaOpts(doc)...)
			if (err == nil) != tc.ok {
				t.Errorf("valid = %v, want %v (%v)", err == nil, tc.ok, err)
			}
		})
	}
}

// TestBuildOpenAPIConflict: the template may add properties to a record,
// never redefine one of the record's own.
func TestBuildOpenAPIConflict(t *testing.T) {
	var doc map[string]any
	if err := json.Unmarshal(openAPITemplate, &doc); err != nil {
		t.Fatal(err)
	}
	rec := doc["components"].(map[string]any)["schemas"].(map[string]any)["ScoreRecord"].(map[string]any)
	rec["properties"].(map[string]any)["site"] = map[string]any{"type": "string"}
	bad, _ := json.Marshal(doc)
	if _, err := buildOpenAPI(bad); err == nil || !strings.Contains(err.Error(), `adds "site" to ScoreRecord`) {
		t.Errorf("err = %v, want the clash with the record's \"site\" reported", err)
	}
	if _, err := buildOpenAPI(openAPITemplate); err != nil {
		t.Errorf("the real template: %v", err)
	}
}
