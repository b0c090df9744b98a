package tokenize

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// toyByteLevel is a tiny byte-level BPE vocabulary: "<|end|>" (control) is
// ID 0, byte b's token is ID b+1, then a few merged tokens from 257 on.
func toyByteLevel(pre string) Vocab {
	toks := []string{"<|end|>"}
	types := []int32{typeControl}
	for b := 0; b < 256; b++ {
		toks = append(toks, byteToChar[b])
		types = append(types, typeNormal)
	}
	merged := []string{"Ġt", "he", "Ġthe", "aa", "aaaa", "ĠĠ", "ll", "'s"} // 257..264
	toks = append(toks, merged...)
	for range merged {
		types = append(types, typeNormal)
	}
	return Vocab{
		Model: "gpt2", Pre: pre, Tokens: toks, TokenTypes: types,
		Merges: []string{"Ġ t", "h e", "Ġt he", "a a", "aa aa", "Ġ Ġ", "l l", "' s"},
		BOS:    -1, EOS: 0,
	}
}

// bid is the toy ID of a single byte.
func bid(c byte) int { return int(c) + 1 }

func TestEncodeByteLevelToy(t *testing.T) {
	tok, err := New(toyByteLevel("smollm"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, text string
		want       []int
	}{
		{"merge chain", " the", []int{259}},
		{"partial merge", "the", []int{bid('t'), 258}},
		{"equal ranks merge leftmost first", "aaaaa", []int{261, bid('a')}},
		{"equal ranks seven", "aaaaaaa", []int{261, 260, bid('a')}},
		{"digits split individually", "a12", []int{bid('a'), bid('1'), bid('2')}},
		{"control token", "x<|end|>y", []int{bid('x'), 0, bid('y')}},
		{"space before word stays apart", "  the", []int{bid(' '), 259}},
		{"trailing spaces", "hi   ", []int{bid('h'), bid('i'), 262, bid(' ')}},
		{"contraction", "it's", []int{bid('i'), bid('t'), 264}},
		{"multibyte letters", "héllo", []int{bid('h'), 0xC3 + 1, 0xA9 + 1, 263, bid('o')}},
		{"newline", "a\nb", []int{bid('a'), bid('\n'), bid('b')}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			toks, err := tok.Encode(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(toks); !equalInts(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if got := tok.Decode(tc.want); got != tc.text {
				t.Errorf("Decode(Encode(%q)) = %q", tc.text, got)
			}
			checkOffsets(t, tc.name, tc.text, toks)
		})
	}
}

func TestPreTokenizerVariants(t *testing.T) {
	tests := []struct {
		pre, text string
		want      []string
	}{
		{"gpt-2", "I'm 12345 ok  \n", []string{"I", "'m", " 12345", " ok", "  \n"}},
		{"gpt-2", "a  b", []string{"a", " ", " b"}},
		{"default", "hello world", []string{"hello", " world"}},
		{"smollm", "x 2024!", []string{"x", " ", "2", "0", "2", "4", "!"}},
		{"llama-bpe", "I'M 12345 ok\n\n", []string{"I", "'M", " ", "123", "45", " ok", "\n\n"}},
		{"qwen2", "ab 123\n", []string{"ab", " ", "1", "2", "3", "\n"}},
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
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tc.want) {
				t.Errorf("split(%q) = %q, want %q", tc.text, got, tc.want)
			}
		})
	}
}

// toySPM is a tiny SentencePiece vocabulary with byte fallback tokens.
func toySPM() Vocab {
	toks := []string{"<unk>", "<s>", "</s>"}
	types := []int32{typeUnknown, typeControl, typeControl}
	scores := []float32{0, 0, 0}
	for b := 0; b < 256; b++ { // IDs 3..258
		toks = append(toks, fmt.Sprintf("<0x%02X>", b))
		types = append(types, typeByte)
		scores = append(scores, 0)
	}
	for _, p := range []struct {
		s     string
		score float32
	}{ // IDs 259..269
		{"▁", -1}, {"h", -2}, {"e", -2}, {"l", -2}, {"o", -2},
		{"▁h", -5}, {"ll", -3}, {"▁he", -6}, {"▁hell", -7}, {"▁hello", -8}, {"lo", -4},
	} {
		toks = append(toks, p.s)
		types = append(types, typeNormal)
		scores = append(scores, p.score)
	}
	return Vocab{Model: "llama", Tokens: toks, TokenTypes: types, Scores: scores, BOS: 1, EOS: 2, AddBOS: true}
}

func TestEncodeSPMToy(t *testing.T) {
	tok, err := New(toySPM())
	if err != nil {
		t.Fatal(err)
	}
	byteID := func(b byte) int { return int(b) + 3 }
	tests := []struct {
		name, text string
		want       []int
	}{
		{"score merges", "hello", []int{1, 268}},
		{"byte fallback", "hello!", []int{1, 268, byteID('!')}},
		{"multibyte fallback", "héllo", []int{1, 264, byteID(0xC3), byteID(0xA9), 265, 263}},
		{"inner spaces", "a hello", []int{1, 259, byteID('a'), 268}},
		{"special then text", "<s>hello", []int{1, 1, 268}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			toks, err := tok.Encode(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(toks); !equalInts(got, tc.want) {
				t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
			}
			if got := tok.Decode(tc.want[1:]); got != tc.text {
				t.Errorf("Decode(Encode(%q)) = %q", tc.text, got)
			}
		})
	}
}

func TestEncodeEdgeCases(t *testing.T) {
	tok, err := New(toyByteLevel("gpt-2"))
	if err != nil {
		t.Fatal(err)
	}
	toks, err := tok.Encode("")
	if err != nil || toks == nil || len(toks) != 0 {
		t.Errorf("Encode(\"\") = %v, %v; want empty slice, nil", toks, err)
	}
	if _, err := tok.Encode("ok\xff"); !errors.Is(err, ErrInvalidUTF8) {
		t.Errorf("Encode(invalid UTF-8) error = %v, want ErrInvalidUTF8", err)
	}
	if got := tok.VocabSize(); got != 265 {
		t.Errorf("VocabSize() = %d, want 265", got)
	}
	if got := tok.Decode([]int{-1, 1000, bid('o'), bid('k')}); got != "ok" {
		t.Errorf("Decode with out-of-range IDs = %q, want %q", got, "ok")
	}

	v := toyByteLevel("gpt-2")
	v.BOS, v.AddBOS, v.AddEOS = bid('^'), true, true
	tb, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	toks, err = tb.Encode("the")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(toks), []int{bid('^'), bid('t'), 258, 0}; !equalInts(got, want) {
		t.Errorf("Encode with BOS/EOS = %v, want %v", got, want)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Vocab)
		want   string
	}{
		{"unknown pre", func(v *Vocab) { v.Pre = "tekken" }, `pre-tokenizer "tekken" for model "gpt2" (supported: command-r, deepseek-coder, deepseek-llm, default, falcon, gpt-2, llama-bpe, llama3, mpt, qwen2, qwen35, refact, smollm, starcoder)`},
		{"unknown model", func(v *Vocab) { v.Model = "bert" }, "unsupported tokenizer model"},
		{"empty vocab", func(v *Vocab) { v.Tokens = nil }, "empty"},
		{"bad merge", func(v *Vocab) { v.Merges = append(v.Merges, "nospace") }, "not an \"a b\" pair"},
		{"types length", func(v *Vocab) { v.TokenTypes = v.TokenTypes[:3] }, "token types"},
		{"bos out of range", func(v *Vocab) { v.BOS = 99999 }, "out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := toyByteLevel("smollm")
			tc.mutate(&v)
			_, err := New(v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestConcurrentEncode(t *testing.T) {
	tok, err := New(toyByteLevel("smollm"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func(g int) {
			for i := 0; i < 200; i++ {
				text := fmt.Sprintf("the aaaa %d it's  héllo", i*g)
				toks, err := tok.Encode(text)
				if err == nil && tok.Decode(ids(toks)) != text {
					err = fmt.Errorf("round trip failed for %q", text)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}(g)
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// TestVocabValidate: hostile tokenizer metadata is refused at import,
// naming the field.
func TestVocabValidate(t *testing.T) {
	ok := Vocab{Model: "gpt2", Tokens: []string{"a", "b", "c"}, BOS: -1, EOS: -1}
	tests := []struct {
		name string
		v    Vocab
		rows int
		err  string
	}{
		{"fine", ok, 3, ""},
		{"padded embedding", ok, 64, ""},
		{"more tokens than rows", ok, 1, "3 entries but the embedding matrix has 1 rows"},
		{"duplicate", Vocab{Tokens: []string{"a", "b", "a"}}, 3, `"a" twice (IDs 0 and 2)`},
		{"too many", Vocab{Tokens: make([]string, MaxTokens+1)}, MaxTokens + 1, "tokenizer.ggml.tokens has"},
		{"too many merges", Vocab{Tokens: []string{"a"}, Merges: make([]string, MaxMerges+1)}, 1, "tokenizer.ggml.merges"},
		{"empty", Vocab{}, 1, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.v.Validate(tt.rows)
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("Validate = %v, want %q", err, tt.err)
			}
		})
	}
}
