package tokenize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/lmood/lmood/internal/gguf"
)

// The llama.cpp conformance suite runs lmood's tokenizer over llama.cpp's
// own vocabulary tests: models/ggml-vocab-*.gguf (vocabulary-only GGUF
// files) with .inp (texts separated by "\n__ggml_vocab_test__\n") and .out
// (the expected token IDs, one line per text), as tests/test-tokenizer-0
// uses them: no BOS/EOS added, control tokens not parsed. scripts/test.sh
// extracts them from the pinned llama-cpp-python source archive into the
// cache and points LMOOD_LLAMACPP_VOCABS at the directory. Without it the
// test is skipped, unless LMOOD_REQUIRE_ORACLE=1.

// VocabTestSep separates the texts of a llama.cpp .inp file.
const vocabTestSep = "\n__ggml_vocab_test__\n"

// encoderOnly lists the suite's vocabularies of encoder models, which lmood
// (a causal-LM tool) does not tokenize; they must still be refused clearly.
var encoderOnly = map[string]bool{"bert-bge": true}

// VocabCase is one text of a llama.cpp vocabulary test and its expected IDs.
type vocabCase struct {
	text string
	ids  []int
}

// ReadVocabCases parses a .inp/.out pair.
func readVocabCases(inp, out string) ([]vocabCase, error) {
	in, err := os.ReadFile(inp)
	if err != nil {
		return nil, err
	}
	exp, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	texts := strings.Split(string(in), vocabTestSep)
	// The file ends with the separator (minus its trailing newline).
	last := texts[len(texts)-1]
	if strings.HasSuffix(last, strings.TrimSuffix(vocabTestSep, "\n")) {
		texts[len(texts)-1] = strings.TrimSuffix(last, strings.TrimSuffix(vocabTestSep, "\n"))
	}
	if texts[len(texts)-1] == "" {
		texts = texts[:len(texts)-1]
	}
	lines := strings.Split(strings.TrimSuffix(string(exp), "\n"), "\n")
	if len(lines) != len(texts) {
		return nil, fmt.Errorf("%s has %d texts but %s has %d lines", inp, len(texts), out, len(lines))
	}
	cases := make([]vocabCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s line %d: %w", out, i+1, err)
			}
			cases[i].ids = append(cases[i].ids, id)
		}
	}
	return cases, nil
}

// llamacppVocabDir returns the suite's directory or skips the test.
func llamacppVocabDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("LMOOD_LLAMACPP_VOCABS")
	if dir == "" {
		if os.Getenv("LMOOD_REQUIRE_ORACLE") == "1" {
			t.Fatal("LMOOD_LLAMACPP_VOCABS is not set but LMOOD_REQUIRE_ORACLE=1: run scripts/test.sh, which extracts llama.cpp's vocabulary tests")
		}
		t.Skip("LMOOD_LLAMACPP_VOCABS not set; skipping llama.cpp's tokenizer tests")
	}
	return dir
}

func TestLlamaCppVocabSuite(t *testing.T) {
	dir := llamacppVocabDir(t)
	inps, err := filepath.Glob(filepath.Join(dir, "ggml-vocab-*.gguf.inp"))
	if err != nil || len(inps) == 0 {
		t.Fatalf("no ggml-vocab-*.gguf.inp files in %s (err %v)", dir, err)
	}
	sort.Strings(inps)
	var table strings.Builder
	fmt.Fprintf(&table, "%-16s %-8s %-16s %s\n", "vocabulary", "model", "pre-tokenizer", "cases passed")
	for _, inp := range inps {
		path := strings.TrimSuffix(inp, ".inp")
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "ggml-vocab-"), ".gguf")
		t.Run(name, func(t *testing.T) {
			cases, err := readVocabCases(inp, path+".out")
			if err != nil {
				t.Fatal(err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			v, err := FromGGUF(f)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := New(v)
			if encoderOnly[name] {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("encoder vocabulary %s: want an ErrUnsupported error, got %v", name, err)
				}
				t.Logf("refused as expected: %v", err)
				fmt.Fprintf(&table, "%-16s %-8s %-16s refused (encoder-only: %v)\n", name, v.Model, v.Pre, err)
				return
			}
			if err != nil {
				t.Fatalf("building the tokenizer: %v", err)
			}
			passed := 0
			for i, c := range cases {
				toks, err := tok.EncodeWith(c.text, EncodeOptions{})
				if err != nil {
					t.Errorf("case %d %q: %v", i, c.text, err)
					continue
				}
				got := make([]int, len(toks))
				for j, tk := range toks {
					got[j] = tk.ID
				}
				if fmt.Sprint(got) != fmt.Sprint(c.ids) {
					t.Errorf("case %d %q:\n got  %v\n want %v", i, c.text, got, c.ids)
					continue
				}
				passed++
			}
			fmt.Fprintf(&table, "%-16s %-8s %-16s %d/%d\n", name, v.Model, v.Pre, passed, len(cases))
		})
	}
	t.Logf("llama.cpp vocabulary tests:\n%s", table.String())
}
