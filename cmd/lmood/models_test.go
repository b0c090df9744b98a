package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/ollama"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/testutil"
)

// TestModelRowsTokenizer: `lmood models` names each model's architecture and
// tokenizer and says whether they are supported; a broken entry says no.
func TestModelRowsTokenizer(t *testing.T) {
	st := &store.Store{Root: t.TempDir()}
	if _, err := st.Import(testutil.WriteTiny(t, testutil.DefaultTiny()), "tiny", store.Source{Kind: "file"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(st.Root, "broken"), 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := st.List()
	if err != nil {
		t.Fatal(err)
	}
	header, rows := modelRows(st, entries)
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	got := map[string][]string{}
	for _, r := range rows {
		got[r[0]] = r
	}
	tiny, broken := got["tiny"], got["broken"]
	if tiny == nil || broken == nil {
		t.Fatalf("rows %v lack tiny or broken", rows)
	}
	if tiny[col["arch"]] != "llama" || tiny[col["tokenizer"]] != "gpt2/gpt-2" || tiny[col["supported"]] != "yes" {
		t.Errorf("tiny row = %v", tiny)
	}
	if broken[col["supported"]] != "no" {
		t.Errorf("broken row = %v", broken)
	}
	// The size column is what `lmood rm` frees: the version directory.
	if m, err := st.Open("tiny"); err != nil {
		t.Fatal(err)
	} else {
		var n int64
		des, _ := os.ReadDir(m.Dir)
		for _, de := range des {
			if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
				n += fi.Size()
			}
		}
		m.Close()
		if got, want := tiny[col["size"]], humanBytes(n); n == 0 || got != want {
			t.Errorf("tiny size %q, want %q", got, want)
		}
	}
}

// TestOllamaRowsTokenizer: `lmood models --ollama` names architecture and
// tokenizer per model and refuses an unsupported architecture or tokenizer
// with the reason.
func TestOllamaRowsTokenizer(t *testing.T) {
	models := []ollama.Listed{
		{Model: ollama.Model{Name: "qwen:latest", Arch: "qwen2", TokenizerModel: "gpt2", TokenizerPre: "qwen2", Digest: "aa"}},
		{Model: ollama.Model{Name: "mistral-nemo:latest", Arch: "llama", TokenizerModel: "gpt2", TokenizerPre: "tekken", Digest: "bb"}},
		{Model: ollama.Model{Name: "embed:latest", Arch: "bert", TokenizerModel: "bert", Digest: "cc"}},
		{Model: ollama.Model{Name: "gone:latest", Arch: "llama"}, Err: errors.New("show failed")},
		{Model: ollama.Model{Name: "gemma2:2b", Arch: "gemma2", TokenizerModel: "llama", TokenizerPre: "default", Digest: "dd"}},
		{Model: ollama.Model{Name: "gemma3:270m", Arch: "gemma3", TokenizerModel: "llama", TokenizerPre: "default", Digest: "ee"}},
	}
	header, rows := ollamaRows(models, map[string][]string{"aa": {"ollama-qwen"}})
	col := map[string]int{}
	for i, h := range header {
		col[h] = i
	}
	want := []struct{ tokenizer, supported, status string }{
		{"gpt2/qwen2", "yes", "converted: ollama-qwen"},
		{"gpt2/tekken", "no", "tokenizer gpt2/tekken not supported"},
		{"bert", "no", "architecture bert not supported"},
		{"?", "?", "error: show failed"},
		{"llama", "yes", "weights not readable here"},
		{"llama", "yes", "weights not readable here"},
	}
	for i, w := range want {
		r := rows[i]
		if r[col["tokenizer"]] != w.tokenizer || r[col["supported"]] != w.supported || !strings.Contains(r[col["lmood"]], w.status) {
			t.Errorf("row %d = %v, want tokenizer %q, supported %q, status %q", i, r, w.tokenizer, w.supported, w.status)
		}
	}
}

// TestRmCLI: `lmood rm` removes named models and, with --unusable, those
// `lmood models` marks unusable (and says so); a missing name is an error
// that leaves the other names removed; no names, or names with
// --unusable, are usage errors.
func TestRmCLI(t *testing.T) {
	emptyCache(t)
	st := store.Default()
	path := testutil.WriteTiny(t, testutil.DefaultTiny())
	for _, name := range []string{"a", "b", "old"} {
		if _, err := st.Import(path, name, store.Source{Kind: "file"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// "old": a store this lmood cannot use.
	if err := os.WriteFile(filepath.Join(st.Dir("old"), "manifest.json"), []byte(`{"converter":"lmood-convert","converter_version":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args    []string
		code    int
		out     string // in stdout
		errText string // in stderr
		left    []string
	}{
		{[]string{"rm"}, 2, "", "name the models to remove", []string{"a", "b", "old"}},
		{[]string{"rm", "--unusable", "a"}, 2, "", "not both", []string{"a", "b", "old"}},
		{[]string{"models"}, 0, "1 unusable model(s)", "", []string{"a", "b", "old"}},
		{[]string{"rm", "nosuch", "a"}, 1, "removed a (", `"nosuch" is not in`, []string{"b", "old"}},
		{[]string{"rm", "--unusable"}, 0, "removed old (", "", []string{"b"}},
		{[]string{"rm", "--unusable"}, 0, "no unusable models", "", []string{"b"}},
		{[]string{"remove", "b"}, 0, "removed b (", "", nil},
	} {
		out, errOut, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errText) {
			t.Errorf("lmood %v: exit %d, stdout %q, stderr %q; want exit %d, %q, %q", tc.args, code, out, errOut, tc.code, tc.out, tc.errText)
		}
		entries, err := st.List()
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, e := range entries {
			left = append(left, e.Name)
		}
		if strings.Join(left, ",") != strings.Join(tc.left, ",") {
			t.Errorf("after lmood %v the store holds %v, want %v", tc.args, left, tc.left)
		}
	}
}
