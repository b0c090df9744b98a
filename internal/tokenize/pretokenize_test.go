package tokenize

import (
	"errors"
	"reflect"
	"testing"
)

// TestPreTokenizerSplits checks the multi-pattern pre-tokenizers on texts
// where each pattern of the sequence matters.
func TestPreTokenizerSplits(t *testing.T) {
	tests := []struct {
		pre, text string
		want      []string
	}{
		// Digits are isolated before the GPT-2 split.
		{"starcoder", "x 123 ab", []string{"x", " ", "1", "2", "3", " ab"}},
		// Punctuation runs are cut out first, then ASCII numbers in threes.
		{"falcon", "Hi, there!! 12345", []string{"Hi", ",", " there", "!!", " ", "123", "45"}},
		// Newlines alone; cased-letter runs with one leading space; trailing
		// whitespace; CJK runs; digit runs.
		{"deepseek-llm", "Ab cd\n中文 42  ", []string{"Ab", " cd", "\n", "中文", " ", "42", "  "}},
		// Letters and punctuation runs with one leading space; single digits.
		{"deepseek-coder", "a.b 42", []string{"a", ".", "b", " ", "4", "2"}},
		// Combining marks stay with their letters (Qwen2 starts a new piece at one).
		{"qwen35", "e\u0301t\u00e9", []string{"e\u0301t\u00e9"}},
		{"qwen2", "e\u0301t\u00e9", []string{"e", "\u0301t\u00e9"}},
	}
	for _, tc := range tests {
		t.Run(tc.pre, func(t *testing.T) {
			p, err := newPreTokenizer(tc.pre)
			if err != nil {
				t.Fatal(err)
			}
			pieces, err := p.split(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, pc := range pieces {
				got = append(got, tc.text[pc.start:pc.end])
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("split(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

// toyGemma4 is a "gemma4" vocabulary: raw UTF-8 tokens with ▁ for spaces,
// merges over them, <0xNN> byte fallback and a whole-newlines token.
func toyGemma4() Vocab {
	toks := []string{"<pad>", "<bos>", "a", "b", "▁", "ab", "▁ab", "\n", "\n\n"} // 0..8
	types := []int32{typeControl, typeControl, 1, 1, 1, 1, 1, 1, 1}
	for b := 0; b < 256; b++ { // 9..264
		toks = append(toks, "<0x"+string("0123456789ABCDEF"[b>>4])+string("0123456789ABCDEF"[b&15])+">")
		types = append(types, typeByte)
	}
	return Vocab{Model: "gemma4", Tokens: toks, TokenTypes: types,
		Merges: []string{"a b", "▁ ab"}, BOS: 1, EOS: -1, AddBOS: true}
}

func TestEncodeGemma4Toy(t *testing.T) {
	tok, err := New(toyGemma4())
	if err != nil {
		t.Fatal(err)
	}
	byteID := func(b byte) int { return 9 + int(b) }
	tests := []struct {
		name, text string
		want       []int
	}{
		{"merges over raw text with escaped space", "ab ab", []int{5, 6}},
		{"whole newline run", "a\n\nb", []int{2, 8, 3}},
		{"newline run without a token falls back to merging", "\n\n\n", []int{7, 7, 7}},
		{"byte fallback", "aé", []int{2, byteID(0xC3), byteID(0xA9)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			toks, err := tok.EncodeWith(tc.text, EncodeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(toks); !equalInts(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if got := tok.Decode(ids(toks)); got != tc.text {
				t.Errorf("Decode = %q, want %q", got, tc.text)
			}
		})
	}
	toks, err := tok.Encode("ab")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(toks); !equalInts(got, []int{1, 5}) {
		t.Errorf("Encode with special tokens = %v, want BOS then 5", got)
	}
}

func TestEncodeParseSpecial(t *testing.T) {
	tok, err := New(toyByteLevel("smollm"))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := tok.EncodeWith("<|end|>", EncodeOptions{ParseSpecial: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(parsed); !equalInts(got, []int{0}) {
		t.Errorf("with ParseSpecial = %v, want the control token [0]", got)
	}
	plain, err := tok.EncodeWith("<|end|>", EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) < 2 || plain[0].ID == 0 {
		t.Errorf("without ParseSpecial = %v, want the text tokenized as ordinary bytes", ids(plain))
	}
}

func TestSupportedAndKind(t *testing.T) {
	tests := []struct {
		model, pre, kind string
		ok               bool
	}{
		{"gpt2", "qwen35", "gpt2/qwen35", true},
		{"gpt2", "", "gpt2/default", true},
		{"gpt2", "tekken", "gpt2/tekken", false},
		{"llama", "default", "llama", true},
		{"gemma4", "", "gemma4", true},
		{"bert", "bert-bge", "bert", false},
		{"", "", "?", false},
	}
	for _, tc := range tests {
		err := Supported(tc.model, tc.pre)
		if (err == nil) != tc.ok {
			t.Errorf("Supported(%q, %q) = %v, want ok=%v", tc.model, tc.pre, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsupported) {
			t.Errorf("Supported(%q, %q) error %v does not wrap ErrUnsupported", tc.model, tc.pre, err)
		}
		if k := Kind(tc.model, tc.pre); k != tc.kind {
			t.Errorf("Kind(%q, %q) = %q, want %q", tc.model, tc.pre, k, tc.kind)
		}
	}
}
