package tokenize

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
)

// Split patterns used by the reference tokenizers (Hugging Face tokenizers
// and llama.cpp) for byte-level BPE models. A pre-tokenizer applies one or
// more of them in turn: each one splits every piece the previous ones left
// into its matches and the gaps between them (llama.cpp's
// unicode_regex_split; Hugging Face's Split with "Isolated" behaviour).
const (
	// gpt2Pattern is GPT-2's pre-tokenizer regex.
	gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// llama3Pattern is Llama 3's pre-tokenizer regex (numbers in groups of
	// at most three digits, case-insensitive contractions).
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// qwen2Pattern is Qwen2's pre-tokenizer regex (single digits).
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// qwen35Pattern is Qwen3.5's: like Qwen2's, but combining marks (\p{M})
	// stay attached to the letters they follow.
	qwen35Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// digitPattern isolates every digit (Hugging Face's Digits pre-tokenizer
	// with individual_digits).
	digitPattern = `\p{N}`
	// falconPunctPattern groups punctuation and ASCII symbols before the
	// GPT-2 split (Falcon).
	falconPunctPattern = "[\\p{P}$+<=>^~|`]+"
	// threeDigitsPattern splits ASCII numbers into groups of three (Falcon).
	threeDigitsPattern = `[0-9][0-9][0-9]`
	// newlinePattern splits text into runs of newlines and runs of anything
	// else (Gemma 4's BPE runs on whole lines).
	newlinePattern = `[^\n]+|\n+`
)

// DeepSeek's pre-tokenizers list their letters and punctuation explicitly.
var (
	// cjkPattern isolates runs of CJK ideographs, the range before them and
	// Hangul syllables.
	cjkPattern = `[` + runeClass([][2]rune{{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}}) + `]+`

	// deepseekLLMPatterns is DeepSeek LLM's sequence: newlines, runs of
	// cased letters, runs of ASCII and full-width punctuation, trailing
	// whitespace, CJK runs, runs of digits.
	deepseekLLMPatterns = []string{
		`[\r\n]`,
		`\s?[` + runeClass(casedLetterRanges) + `]+`,
		`\s?[!-/:-~` + runeClass([][2]rune{{0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}}) + `]+`,
		`\s+\z`,
		cjkPattern,
		`\p{N}+`,
	}
	// deepseekCoderPatterns is DeepSeek Coder's sequence: newlines, letter
	// runs, punctuation runs, CJK runs, single digits.
	deepseekCoderPatterns = []string{
		`[\r\n]`,
		`\s?\p{L}+`,
		`\s?\p{P}+`,
		cjkPattern,
		`\p{N}`,
	}
)

// casedLetterRanges are the code points DeepSeek LLM's pre-tokenizer treats
// as letters: the cased letters (Lu, Ll, Lt) of the Unicode version its
// tokenizer was built with. They are listed rather than taken from Go's
// tables so that newer Unicode versions do not change the split.
var casedLetterRanges = [][2]rune{
	{0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA},
	{0x1BC, 0x1BF}, {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377},
	{0x37B, 0x37D}, {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C},
	{0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481}, {0x48A, 0x52F}, {0x531, 0x556},
	{0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF},
	{0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
	{0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
	{0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
	{0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC},
	{0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113},
	{0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
	{0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
	{0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
	{0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787},
	{0xA78B, 0xA78E}, {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A},
	{0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2},
	{0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
}

// runeClass renders code point ranges as the inside of a regex character
// class, with the characters written literally (regexp2 matches runes; none
// of the ranges used here contains a character special in a class).
func runeClass(ranges [][2]rune) string {
	var b strings.Builder
	for _, r := range ranges {
		b.WriteRune(r[0])
		if r[1] != r[0] {
			b.WriteByte('-')
			b.WriteRune(r[1])
		}
	}
	return b.String()
}

// preSpec describes one tokenizer.ggml.pre variant.
type preSpec struct {
	patterns     []string // split with these regexes in turn (matches and gaps kept)
	ignoreMerges bool     // a piece that is a whole vocabulary token skips BPE
}

// prePatterns maps tokenizer.ggml.pre names to their pre-tokenizers, as
// llama.cpp defines them (src/llama-vocab.cpp).
var prePatterns = map[string]preSpec{
	"default":        {patterns: []string{gpt2Pattern}},
	"gpt-2":          {patterns: []string{gpt2Pattern}},
	"mpt":            {patterns: []string{gpt2Pattern}},
	"smollm":         {patterns: []string{digitPattern, gpt2Pattern}},
	"starcoder":      {patterns: []string{digitPattern, gpt2Pattern}},
	"refact":         {patterns: []string{digitPattern, gpt2Pattern}},
	"command-r":      {patterns: []string{digitPattern, gpt2Pattern}},
	"falcon":         {patterns: []string{falconPunctPattern, gpt2Pattern, threeDigitsPattern}},
	"llama-bpe":      {patterns: []string{llama3Pattern}, ignoreMerges: true},
	"llama3":         {patterns: []string{llama3Pattern}, ignoreMerges: true},
	"qwen2":          {patterns: []string{qwen2Pattern}},
	"qwen35":         {patterns: []string{qwen35Pattern}},
	"deepseek-llm":   {patterns: deepseekLLMPatterns},
	"deepseek-coder": {patterns: deepseekCoderPatterns},
}

// gemma4Pre is the pre-tokenizer of the "gemma4" tokenizer model (which
// has no tokenizer.ggml.pre of its own).
var gemma4Pre = preSpec{patterns: []string{newlinePattern}}

// preTokenizer splits text into the pieces BPE runs on.
//
// It drives sugarme/tokenizer's PreTokenizedString (which tracks offsets
// back into the original text) through one split per pattern. sugarme's own
// ByteLevel pre-tokenizer is not used: it compiles its split regex with
// Go's regexp package, which has no lookahead, so its pattern lacks the
// `\s+(?!\S)|\s+` alternatives and silently drops whitespace. The regex
// splits here run on regexp2 (a backtracking engine with lookahead and the
// same Unicode classes as Oniguruma / the Rust regex used by the
// references) wrapped as a sugarme normalizer.Pattern.
type preTokenizer struct {
	res          []*regexp2.Regexp // safe for concurrent use
	ignoreMerges bool
}

// piece is a byte range of a pre-tokenized segment.
type piece struct{ start, end int }

func newPreTokenizer(name string) (*preTokenizer, error) {
	if name == "" {
		name = "default"
	}
	spec, ok := prePatterns[name]
	if !ok {
		return nil, fmt.Errorf("tokenize: %w pre-tokenizer %q for model \"gpt2\" (supported: %s)",
			ErrUnsupported, name, strings.Join(supportedPre(), ", "))
	}
	return compilePre(name, spec)
}

func compilePre(name string, spec preSpec) (*preTokenizer, error) {
	p := &preTokenizer{ignoreMerges: spec.ignoreMerges}
	for _, pat := range spec.patterns {
		re, err := regexp2.Compile(pat, regexp2.None)
		if err != nil {
			return nil, fmt.Errorf("tokenize: compiling %q pre-tokenizer regex: %w", name, err)
		}
		p.res = append(p.res, re)
	}
	return p, nil
}

// split returns the pieces of text, in order, covering all of it.
func (p *preTokenizer) split(text string) ([]piece, error) {
	pts := sugar.NewPreTokenizedString(text)
	for _, re := range p.res {
		pat := &regexpPattern{re: re}
		pts = pts.Split(func(_ int, n *normalizer.NormalizedString) []sugar.SplitIdx {
			parts := n.Split(pat, normalizer.IsolatedBehavior)
			out := make([]sugar.SplitIdx, len(parts))
			for i := range parts {
				out[i] = sugar.SplitIdx{Normalized: &parts[i]}
			}
			return out
		})
		if pat.err != nil {
			return nil, pat.err
		}
	}
	splits := pts.GetSplits(normalizer.OriginalTarget, sugar.Byte)
	pieces := make([]piece, 0, len(splits))
	for _, s := range splits {
		if len(s.Offsets) != 2 || s.Offsets[0] < 0 || s.Offsets[1] > len(text) || s.Offsets[0] > s.Offsets[1] {
			return nil, fmt.Errorf("tokenize: pre-tokenizer produced bad offsets %v", s.Offsets)
		}
		pieces = append(pieces, piece{s.Offsets[0], s.Offsets[1]})
	}
	return pieces, nil
}

// regexpPattern adapts a regexp2 regex to sugarme's normalizer.Pattern: it
// is used for one split call only. It reports every match and every gap between matches as contiguous byte
// ranges covering the whole input.
type regexpPattern struct {
	re  *regexp2.Regexp
	err error // first matching error (regexp2 only fails on timeouts)
}

// FindMatches implements normalizer.Pattern.
func (p *regexpPattern) FindMatches(s string) []normalizer.OffsetsMatch {
	if s == "" {
		return []normalizer.OffsetsMatch{{Offsets: []int{0, 0}, Match: false}}
	}
	// regexp2 reports positions in runes; map them back to bytes.
	runes := []rune(s)
	byteAt := make([]int, len(runes)+1)
	off := 0
	for i, r := range runes {
		byteAt[i] = off
		off += utf8.RuneLen(r)
	}
	byteAt[len(runes)] = off

	var out []normalizer.OffsetsMatch
	prev := 0
	m, err := p.re.FindRunesMatch(runes)
	for m != nil && err == nil {
		start, end := byteAt[m.Index], byteAt[m.Index+m.Length]
		if start > prev {
			out = append(out, normalizer.OffsetsMatch{Offsets: []int{prev, start}, Match: false})
		}
		if end > start {
			out = append(out, normalizer.OffsetsMatch{Offsets: []int{start, end}, Match: true})
		}
		prev = end
		m, err = p.re.FindNextMatch(m)
	}
	if err != nil && p.err == nil {
		p.err = fmt.Errorf("tokenize: pre-tokenizer regex: %w", err)
	}
	if prev < len(s) {
		out = append(out, normalizer.OffsetsMatch{Offsets: []int{prev, len(s)}, Match: false})
	}
	return out
}
