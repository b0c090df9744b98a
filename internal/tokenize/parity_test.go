package tokenize

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The parity test compares Encode with an independent reference: the Hugging
// Face `tokenizers` library, driven by testdata/reference_tokenize.py, which
// reads the same GGUF with the `gguf` package. It runs when LMOOD_TEST_GGUF
// names a GGUF file; the interpreter is LMOOD_PYTHON (default python3). If
// the interpreter or its packages are missing the test is skipped, unless
// LMOOD_REQUIRE_ORACLE=1.

const referenceScript = "testdata/reference_tokenize.py"

type parityCase struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// referenceVocab is the JSON printed by `reference_tokenize.py vocab`.
type referenceVocab struct {
	Model      string    `json:"model"`
	Pre        string    `json:"pre"`
	Tokens     []string  `json:"tokens"`
	TokenTypes []int32   `json:"token_types"`
	Scores     []float32 `json:"scores"`
	Merges     []string  `json:"merges"`
	BOS        int       `json:"bos"`
	EOS        int       `json:"eos"`
	AddBOS     bool      `json:"add_bos"`
	AddEOS     bool      `json:"add_eos"`
}

func (r referenceVocab) vocab() Vocab {
	return Vocab{
		Model: r.Model, Pre: r.Pre, Tokens: r.Tokens, TokenTypes: r.TokenTypes,
		Scores: r.Scores, Merges: r.Merges, BOS: r.BOS, EOS: r.EOS,
		AddBOS: r.AddBOS, AddEOS: r.AddEOS,
	}
}

// oracle returns the python interpreter to use, or skips/fails the test.
func oracle(t *testing.T) (python, gguf string) {
	t.Helper()
	gguf = os.Getenv("LMOOD_TEST_GGUF")
	if gguf == "" {
		t.Skip("LMOOD_TEST_GGUF not set; skipping tokenizer parity test")
	}
	python = os.Getenv("LMOOD_PYTHON")
	if python == "" {
		python = "python3"
	}
	out, err := exec.Command(python, "-c", "import tokenizers, gguf").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		msg := "reference tokenizer unavailable (" + python + ": " + lines[len(lines)-1] + ", " + err.Error() +
			"); install it with: " + python + " -m pip install -r internal/tokenize/testdata/requirements.txt"
		if os.Getenv("LMOOD_REQUIRE_ORACLE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return python, gguf
}

func runReference(t *testing.T, python string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(python, append([]string{referenceScript}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", python, strings.Join(append([]string{referenceScript}, args...), " "), err, stderr.String())
	}
	return out
}

func readParityCases(t *testing.T) []parityCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "parity_cases.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []parityCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var c parityCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("parity_cases.jsonl: %v", err)
		}
		cases = append(cases, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cases
}

func TestParityWithReference(t *testing.T) {
	python, gguf := oracle(t)

	var rv referenceVocab
	if err := json.Unmarshal(runReference(t, python, "vocab", gguf), &rv); err != nil {
		t.Fatalf("decoding vocab JSON: %v", err)
	}
	cases := readParityCases(t)
	// The file's own pre-tokenizer first, then the other supported ones on
	// the same vocabulary, to check their regexes against the reference too.
	for _, pre := range []string{rv.Pre, "gpt-2", "llama-bpe", "qwen2"} {
		t.Run("pre="+pre, func(t *testing.T) {
			v := rv.vocab()
			v.Pre = pre
			tok, err := New(v)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			casesPath := filepath.Join("testdata", "parity_cases.jsonl")
			out := runReference(t, python, "encode", gguf, casesPath, pre)
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(cases) {
				t.Fatalf("reference printed %d results for %d cases", len(lines), len(cases))
			}
			matched := 0
			for i, c := range cases {
				var want []int
				if err := json.Unmarshal([]byte(lines[i]), &want); err != nil {
					t.Fatalf("case %q: bad reference output %q: %v", c.Name, lines[i], err)
				}
				toks, err := tok.Encode(c.Text)
				if err != nil {
					t.Errorf("case %q: Encode: %v", c.Name, err)
					continue
				}
				got := ids(toks)
				if v.AddBOS && len(got) > 0 && got[0] == v.BOS {
					got = got[1:] // the reference is run without BOS/EOS
				}
				if v.AddEOS && len(got) > 0 && got[len(got)-1] == v.EOS {
					got = got[:len(got)-1]
				}
				if !equalInts(got, want) {
					t.Errorf("case %q (%q):\n got  %v\n want %v", c.Name, c.Text, got, want)
					continue
				}
				if dec := tok.Decode(got); dec != c.Text {
					t.Errorf("case %q: Decode(Encode(x)) = %q, want %q", c.Name, dec, c.Text)
					continue
				}
				checkOffsets(t, c.Name, c.Text, toks)
				matched++
			}
			t.Logf("pre=%s: %d/%d parity cases matched the reference", pre, matched, len(cases))
		})
	}
}

// checkOffsets verifies that offsets are ordered and, for byte-level tokens,
// that each token's text is exactly the input span it covers.
func checkOffsets(t *testing.T, name, text string, toks []Token) {
	t.Helper()
	prev := 0
	for _, tk := range toks {
		if tk.Start < prev || tk.End < tk.Start || tk.End > len(text) {
			t.Errorf("case %q: bad offsets [%d,%d) after %d", name, tk.Start, tk.End, prev)
			return
		}
		if tk.End > tk.Start && text[tk.Start:tk.End] != tk.Text {
			t.Errorf("case %q: token %d text %q != input span %q", name, tk.ID, tk.Text, text[tk.Start:tk.End])
			return
		}
		prev = tk.End
	}
}

func ids(toks []Token) []int {
	out := make([]int, len(toks))
	for i, tk := range toks {
		out[i] = tk.ID
	}
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// loadReferenceVocab returns the GGUF vocabulary via the reference script,
// for benchmarks; it skips when the oracle is unavailable.
func loadReferenceVocab(b *testing.B) Vocab {
	b.Helper()
	gguf := os.Getenv("LMOOD_TEST_GGUF")
	if gguf == "" {
		b.Skip("LMOOD_TEST_GGUF not set")
	}
	python := os.Getenv("LMOOD_PYTHON")
	if python == "" {
		python = "python3"
	}
	out, err := exec.Command(python, referenceScript, "vocab", gguf).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.Skipf("reference script failed: %s", ee.Stderr)
		}
		b.Skip(err)
	}
	var rv referenceVocab
	if err := json.Unmarshal(out, &rv); err != nil {
		b.Fatal(err)
	}
	return rv.vocab()
}

func BenchmarkNewFromGGUF(b *testing.B) {
	v := loadReferenceVocab(b)
	b.ResetTimer()
	for b.Loop() {
		if _, err := New(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGGUF(b *testing.B) {
	v := loadReferenceVocab(b)
	tok, err := New(v)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Repeat("The quick brown fox jumps over the lazy dog 12345. Привет, мир! 我爱自然语言处理。\n", 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := tok.Encode(text); err != nil {
			b.Fatal(err)
		}
	}
}
