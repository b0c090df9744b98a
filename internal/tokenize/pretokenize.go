package tokenize

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	sugar "github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretokenizer"
)

// Split patterns used by the reference tokenizers (Hugging Face tokenizers
// and llama.cpp) for byte-level BPE models.
const (
	// gpt2Pattern is GPT-2's pre-tokenizer regex.
	gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	// llama3Pattern is Llama 3's pre-tokenizer regex (numbers in groups of
	// at most three digits, case-insensitive contractions).
	llama3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	// qwen2Pattern is Qwen2's pre-tokenizer regex (single digits).
	qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// preSpec describes one tokenizer.ggml.pre variant.
type preSpec struct {
	digits       bool   // split every digit into its own piece first
	pattern      string // then split with this regex (matches and gaps kept)
	ignoreMerges bool   // a piece that is a whole vocabulary token skips BPE
}

// prePatterns maps tokenizer.ggml.pre names to their pre-tokenizers.
var prePatterns = map[string]preSpec{
	"default":   {pattern: gpt2Pattern},
	"gpt-2":     {pattern: gpt2Pattern},
	"smollm":    {digits: true, pattern: gpt2Pattern},
	"llama-bpe": {pattern: llama3Pattern, ignoreMerges: true},
	"llama3":    {pattern: llama3Pattern, ignoreMerges: true},
	"qwen2":     {pattern: qwen2Pattern},
}

// preTokenizer splits text into the pieces BPE runs on.
//
// It drives sugarme/tokenizer's PreTokenizedString (which tracks offsets
// back into the original text) with sugarme's Digits pre-tokenizer where the
// variant needs it. sugarme's own ByteLevel pre-tokenizer is not used: it
// compiles its split regex with Go's regexp package, which has no lookahead,
// so its pattern lacks the `\s+(?!\S)|\s+` alternatives and silently drops
// whitespace. The regex split here runs on regexp2 (a backtracking engine
// with lookahead and the same Unicode classes as Oniguruma / the Rust
// regex used by the references) wrapped as a sugarme normalizer.Pattern.
type preTokenizer struct {
	digits       *pretokenizer.Digits
	re           *regexp2.Regexp // safe for concurrent use
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
	re, err := regexp2.Compile(spec.pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("tokenize: compiling %q pre-tokenizer regex: %w", name, err)
	}
	p := &preTokenizer{re: re, ignoreMerges: spec.ignoreMerges}
	if spec.digits {
		p.digits = pretokenizer.NewDigits(true)
	}
	return p, nil
}

// split returns the pieces of text, in order, covering all of it.
func (p *preTokenizer) split(text string) ([]piece, error) {
	pts := sugar.NewPreTokenizedString(text)
	if p.digits != nil {
		var err error
		if pts, err = p.digits.PreTokenize(pts); err != nil {
			return nil, fmt.Errorf("tokenize: splitting digits: %w", err)
		}
	}
	pat := &regexpPattern{re: p.re}
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
