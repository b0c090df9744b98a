package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
	"github.com/lmood/lmood/internal/testutil"
)

// writeVocabOnly writes a GGUF with the tiny byte-level vocabulary and no
// tensors.
func writeVocabOnly(t *testing.T) string {
	t.Helper()
	w := gguf.NewWriter()
	w.AddString("general.architecture", "llama")
	testutil.AddTinyVocab(w, 300)
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenizeVocabOnly(t *testing.T) {
	emptyCache(t)
	vocab := writeVocabOnly(t)
	// The tiny vocabulary: byte b is ID b, then merge n joins upper-case
	// letter n%26 and lower-case letter n/26%26 ("Ab" is merge 26, ID 282).
	stdout, stderr, code := runCLI(t, "tokenize", "--vocab", vocab, "--json", "Ab c", "\x1b[2J")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want one JSON line per text, got %q", stdout)
	}
	var first tokenizedText
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(first.IDs) != fmt.Sprint([]int{282, ' ', 'c'}) || strings.Join(first.Tokens, "|") != "Ab| |c" {
		t.Errorf("Ab c -> ids %v tokens %q", first.IDs, first.Tokens)
	}

	stdout, _, code = runCLI(t, "tokenize", "--vocab", vocab, "Ab c", "\x1b[2J")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(stdout, "text 1: Ab c\n3 tokens\n     282  Ab\n") {
		t.Errorf("text output lacks the first text's tokens:\n%s", stdout)
	}
	if strings.Contains(stdout, "\x1b") || !strings.Contains(stdout, "      27  ␛\n") {
		t.Errorf("the escape character is not made visible:\n%s", stdout)
	}

	if _, stderr, code := runCLI(t, "tokenize", "--vocab", vocab, "-m", "x", "hi"); code != 2 {
		t.Errorf("--vocab with --model: exit %d, want 2 (stderr %q)", code, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.gguf")
	os.WriteFile(bad, []byte("not a gguf"), 0o644)
	if _, stderr, code := runCLI(t, "tokenize", "--vocab", bad, "hi"); code != 1 || !strings.Contains(stderr, "bad.gguf") {
		t.Errorf("bad vocabulary file: exit %d, stderr %q", code, stderr)
	}
}

// TestTokenizeLlamaCppVocab runs one of llama.cpp's vocabulary tests through
// the CLI (see internal/tokenize's TestLlamaCppVocabSuite for all of them).
func TestTokenizeLlamaCppVocab(t *testing.T) {
	dir := os.Getenv("LMOOD_LLAMACPP_VOCABS")
	if dir == "" {
		testutil.Missing(t, "LMOOD_LLAMACPP_VOCABS not set (scripts/test.sh extracts llama.cpp's vocabulary tests)")
	}
	emptyCache(t)
	path := filepath.Join(dir, "ggml-vocab-deepseek-coder.gguf")
	inp, err := os.ReadFile(path + ".inp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path + ".out")
	if err != nil {
		t.Fatal(err)
	}
	texts := strings.Split(strings.TrimSuffix(string(inp), "\n__ggml_vocab_test__\n"), "\n__ggml_vocab_test__\n")
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(texts) != len(want) || len(texts) < 10 {
		t.Fatalf("%d texts, %d expected lines", len(texts), len(want))
	}
	args := append([]string{"tokenize", "--vocab", path, "--json", "--parse-special=false", "--"}, texts...)
	stdout, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%d output lines for %d texts", len(lines), len(texts))
	}
	for i, line := range lines {
		var r tokenizedText
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		var exp []int
		for _, f := range strings.Fields(want[i]) {
			id, _ := strconv.Atoi(f)
			exp = append(exp, id)
		}
		if fmt.Sprint(r.IDs) != fmt.Sprint(exp) {
			t.Errorf("case %d %q: got %v, want %v", i, texts[i], r.IDs, exp)
		}
	}
}
