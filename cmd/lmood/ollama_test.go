package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/lmood/lmood/internal/analyze"
	"github.com/lmood/lmood/internal/ollama"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// ollamaTestHost returns the test server (scripts/ollama.sh start) from
// LMOOD_TEST_OLLAMA_HOST, skipping (or failing with LMOOD_REQUIRE_ORACLE=1)
// when there is none.
func ollamaTestHost(t *testing.T) string { return testutil.OllamaHost(t) }

// createOllamaModel creates model name in the server from a GGUF file,
// deleting it when the test ends, and returns the file's SHA-256.
func createOllamaModel(t *testing.T, host, name, gguf string) string {
	t.Helper()
	c, err := ollama.New(host, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sum, err := c.CreateFromFile(ctx, name, gguf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.API().Delete(context.Background(), &api.DeleteRequest{Model: name}) })
	return sum
}

// ollamaIsolate points the store at a fresh cache and ollama at host, and
// captures stdout. It returns the onnxruntime path resolved before the
// cache moved, and the captured output.
func ollamaIsolate(t *testing.T, host string) (string, *bytes.Buffer) {
	t.Helper()
	lib := runtime.DefaultLibPath()
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("OLLAMA_HOST", host)
	t.Setenv(ollama.EnvTimeout, "")
	var out bytes.Buffer
	return lib, &out
}

// TestOllamaScoreMatchesDirectImport scores a prompt through --model
// ollama:NAME (openModel, as `lmood score -m ollama:NAME` does) and through
// the same GGUF imported as a file: the drift ratios must be identical.
func TestOllamaScoreMatchesDirectImport(t *testing.T) {
	host := ollamaTestHost(t)
	gguf := testutil.GGUF(t)
	testutil.Runtime(t)
	lib, _ := ollamaIsolate(t, host)
	const name = "lmood-test-cli:latest"
	sum := createOllamaModel(t, host, name, gguf)

	g := &globals{model: "ollama:lmood-test-cli", ortLib: lib, quiet: true}
	viaOllama, err := openModel(g)
	if err != nil {
		t.Fatal(err)
	}
	defer viaOllama.Close()
	src := viaOllama.Manifest.Source
	if viaOllama.Manifest.Name != "ollama-lmood-test-cli-latest" || src.Kind != "ollama" || src.SHA256 != sum || src.Ref != name {
		t.Fatalf("--model ollama:… opened %s from %+v; want a conversion of sha256 %s", viaOllama.Manifest.Name, src, sum)
	}
	// A second run reuses the conversion.
	again, err := openModel(g)
	if err != nil {
		t.Fatal(err)
	}
	if again.Manifest.Name != viaOllama.Manifest.Name || !again.Manifest.Created.Equal(viaOllama.Manifest.Created) {
		t.Errorf("second --model ollama:… converted again (%s, created %v then %v)", again.Manifest.Name, viaOllama.Manifest.Created, again.Manifest.Created)
	}
	again.Close()

	st := store.Default()
	if _, err := st.Import(gguf, "direct", store.Source{Kind: "file", Ref: gguf}, nil); err != nil {
		t.Fatal(err)
	}
	direct, err := st.Open("direct")
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()

	const prompt = "Eggplants are fire-engine red."
	score := func(m *store.Model) *analyze.Result {
		an, err := analyze.New(m, analyze.Options{HiddenStates: []int{15}, Samples: 4, Sigma: 0.01, Seed: 1}, runtime.SessionOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer an.Close()
		res, err := an.Analyze(prompt)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	a, b := score(viaOllama), score(direct)
	ra, rb := a.Layers[0], b.Layers[0]
	t.Logf("ratio via ollama %.9f ± %.9f, direct %.9f ± %.9f (%d tokens)", ra.Ratio.Mean, ra.Ratio.Std, rb.Ratio.Mean, rb.Ratio.Std, len(a.Tokens))
	if ra.Ratio != rb.Ratio || len(ra.TokenRatio) != len(rb.TokenRatio) {
		t.Fatalf("ratio via ollama %+v, direct %+v; want identical", ra.Ratio, rb.Ratio)
	}
	for i := range ra.TokenRatio {
		if ra.TokenRatio[i] != rb.TokenRatio[i] {
			t.Errorf("token %d (%q): ratio via ollama %+v, direct %+v", i, a.Tokens[i].Text, ra.TokenRatio[i], rb.TokenRatio[i])
		}
	}
}

// TestOllamaImportAndList runs `lmood import ollama:NAME` (importOllama)
// and `lmood models --ollama` against the real server.
func TestOllamaImportAndList(t *testing.T) {
	host := ollamaTestHost(t)
	gguf := testutil.GGUF(t)
	_, out := ollamaIsolate(t, host)
	createOllamaModel(t, host, "lmood-test-list:q4", gguf)
	bert := testutil.DefaultTiny()
	bert.Arch = "bert"
	createOllamaModel(t, host, "lmood-test-list-bert:latest", testutil.WriteTiny(t, bert))

	g := &globals{quiet: true}
	if err := importOllama(g, "ollama:lmood-test-list:q4", "", false, out); err != nil {
		t.Fatal(err)
	}
	if err := importOllama(g, "ollama:lmood-test-list:q4", "", false, out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "imported ollama-lmood-test-list-q4: llama, 30 layers") ||
		!strings.HasPrefix(lines[1], "ollama-lmood-test-list-q4 is already imported from ollama:lmood-test-list:q4") {
		t.Fatalf("import output:\n%s", out)
	}
	out.Reset()

	root := newRootCmd()
	root.SetArgs([]string{"models", "--ollama"})
	root.SetOut(out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	t.Logf("lmood models --ollama:\n%s", out)
	listing := out.String()
	for _, want := range []string{"ollama models at http://" + strings.TrimPrefix(host, "http://"), "Q4_1", "converted: ollama-lmood-test-list-q4", "bert"} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing does not mention %q", want)
		}
	}
	for _, line := range strings.Split(listing, "\n") {
		if strings.Contains(line, "lmood-test-list-bert") && !strings.Contains(line, " no ") {
			t.Errorf("bert model not marked unsupported: %s", line)
		}
	}
}

// TestOllamaUnknownAndUnsupported checks the messages of `import` for a
// model the server does not have and one lmood cannot convert.
func TestOllamaUnknownAndUnsupported(t *testing.T) {
	host := ollamaTestHost(t)
	ollamaIsolate(t, host)
	bert := testutil.DefaultTiny()
	bert.Arch = "bert"
	createOllamaModel(t, host, "lmood-test-bert-cli:latest", testutil.WriteTiny(t, bert))
	tests := []struct {
		ref  string
		want []string
	}{
		{"ollama:lmood-test-missing", []string{`no model "lmood-test-missing:latest"`, "ollama pull lmood-test-missing"}},
		{"ollama:lmood-test-bert-cli", []string{`architecture "bert"`, "unsupported architecture", "gpt2, llama, phi3, qwen2, qwen3"}},
	}
	for _, tt := range tests {
		_, err := resolveOllama(&globals{quiet: true}, tt.ref, "", false)
		if err == nil {
			t.Errorf("%s: no error", tt.ref)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tt.ref, err, w)
			}
		}
	}
}

// TestOllamaErrorsWithoutServer needs no real server: a closed port, a
// server that never answers, and malformed references.
func TestOllamaErrorsWithoutServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer slow.Close()
	defer close(release)

	tests := []struct {
		name, host, timeout string
		args                []string
		usage               bool
		want                []string
	}{
		{name: "import, unreachable", host: closed, args: []string{"import", "ollama:qwen2.5:0.5b"},
			want: []string{"no ollama server answers at http://" + closed, "ollama serve", "OLLAMA_HOST"}},
		{name: "models --ollama, unreachable", host: closed, args: []string{"models", "--ollama"},
			want: []string{"no ollama server answers at http://" + closed}},
		{name: "import, slow server", host: slow.URL, timeout: "300ms", args: []string{"import", "ollama:qwen2.5:0.5b"},
			want: []string{slow.URL, "no answer in time (limit 300ms)", "LMOOD_OLLAMA_TIMEOUT"}},
		{name: "bad timeout", host: closed, timeout: "soon", args: []string{"import", "ollama:x"},
			want: []string{`LMOOD_OLLAMA_TIMEOUT="soon"`}},
		{name: "empty name", host: closed, args: []string{"import", "ollama:"}, usage: true,
			want: []string{"give a model name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ollamaIsolate(t, tt.host)
			t.Setenv(ollama.EnvTimeout, tt.timeout)
			root := newRootCmd()
			root.SetArgs(append(tt.args, "--quiet"))
			start := time.Now()
			err := root.Execute()
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if err == nil {
				t.Fatal("no error")
			}
			var ue usageError
			if errors.As(err, &ue) != tt.usage {
				t.Errorf("usage error = %v, want %v (%v)", !tt.usage, tt.usage, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
