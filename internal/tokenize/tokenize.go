// Package tokenize turns text into token IDs (and back) using only the
// tokenizer metadata embedded in a GGUF file (the tokenizer.ggml.* keys), so
// lmood never needs a separate tokenizer.json.
//
// Three tokenizer families are supported:
//
//   - Model "gpt2": byte-level BPE (GPT-2, SmolLM, Llama 3, Qwen2, ...). The
//     text is first split into pieces by a pre-tokenizer chosen from
//     tokenizer.ggml.pre, then each piece is mapped to the GPT-2 byte alphabet
//     and merged with the ranked merge list.
//   - Model "llama": SentencePiece-style BPE (Llama 2, TinyLlama, Mistral, ...),
//     driven by token scores, with the "▁" space marker and <0xNN> byte
//     fallback tokens.
//   - Model "gemma4": BPE with a merge list over raw UTF-8 (not the byte
//     alphabet), spaces written "▁", whole lines as pieces, and <0xNN> byte
//     fallback tokens (Gemma 4).
//
// Control tokens (token type 3) and user-defined tokens (type 4) that occur
// literally in the input are always emitted as single tokens.
//
// Pre-tokenization uses github.com/sugarme/tokenizer (PreTokenizedString for
// offset tracking, its Digits pre-tokenizer, and its GPT-2 byte alphabet).
// The regular expressions themselves run on github.com/dlclark/regexp2
// because the reference patterns need a negative lookahead, and the BPE merge
// loop is implemented here; see pretokenize.go and bpe.go for why.
package tokenize

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Token types as stored in tokenizer.ggml.token_type.
const (
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

// ErrUnsupported is wrapped by the errors New returns for a tokenizer model or
// pre-tokenizer this package does not implement.
var ErrUnsupported = errors.New("unsupported tokenizer")

// ErrInvalidUTF8 is wrapped by the error Encode returns for input text that is
// not valid UTF-8.
var ErrInvalidUTF8 = errors.New("input is not valid UTF-8")

// Vocab is the tokenizer metadata a GGUF file carries (tokenizer.ggml.*).
type Vocab struct {
	// Model is tokenizer.ggml.model, e.g. "gpt2" (byte-level BPE) or
	// "llama" (SentencePiece BPE).
	Model string
	// Pre is tokenizer.ggml.pre, e.g. "smollm", "llama-bpe", "qwen2",
	// "default", "gpt-2". Only used by "gpt2" models; empty means "default".
	Pre string
	// Tokens is tokenizer.ggml.tokens; the index is the token ID.
	Tokens []string
	// TokenTypes is tokenizer.ggml.token_type (1 normal, 2 unknown,
	// 3 control, 4 user-defined, 5 unused, 6 byte). May be nil.
	TokenTypes []int32
	// Scores is tokenizer.ggml.scores. May be nil; used by "llama" models.
	Scores []float32
	// Merges is tokenizer.ggml.merges, each an "a b" pair, best first.
	Merges []string
	// BOS and EOS are the begin/end-of-sequence token IDs, -1 if absent.
	BOS, EOS int
	// AddBOS is tokenizer.ggml.add_bos_token.
	AddBOS bool
	// AddEOS is tokenizer.ggml.add_eos_token.
	AddEOS bool
	// AddSpacePrefix is tokenizer.ggml.add_space_prefix. Nil means the
	// model's default: true for "llama", false for "gpt2" (which ignores it).
	AddSpacePrefix *bool
}

// Token is one token of an encoded text.
type Token struct {
	// ID is the token's index in the vocabulary.
	ID int
	// Text is the token's decoded surface text. For byte-level tokens that
	// cover only part of a UTF-8 sequence it holds those raw bytes as-is
	// (so it may not be valid UTF-8); callers that display it must sanitize.
	Text string
	// Start and End are byte offsets of the token in the input text
	// (End exclusive). Tokens added by the tokenizer itself (BOS, EOS) have
	// Start == End. For SentencePiece byte-fallback tokens the span is that
	// of the whole symbol they were split from.
	Start, End int
}

// Tokenizer encodes text to token IDs and decodes IDs back to text. It is
// safe for concurrent use.
type Tokenizer struct {
	vocab   Vocab
	ids     map[string]int  // token text (as stored in the GGUF) -> ID
	surface []string        // ID -> decoded surface text
	special *specialMatcher // control and user-defined tokens
	// userDefined matches user-defined tokens only (EncodeOptions.ParseSpecial off).
	userDefined *specialMatcher
	bpe         *bpeModel // model "gpt2"
	pre         *preTokenizer
	spm         *spmModel // model "llama"
}

// New builds a Tokenizer from GGUF tokenizer metadata.
func New(v Vocab) (*Tokenizer, error) {
	if len(v.Tokens) == 0 {
		return nil, errors.New("tokenize: vocabulary is empty")
	}
	if v.TokenTypes != nil && len(v.TokenTypes) != len(v.Tokens) {
		return nil, fmt.Errorf("tokenize: %d token types for %d tokens", len(v.TokenTypes), len(v.Tokens))
	}
	if v.Scores != nil && len(v.Scores) != len(v.Tokens) {
		return nil, fmt.Errorf("tokenize: %d scores for %d tokens", len(v.Scores), len(v.Tokens))
	}
	for _, id := range []int{v.BOS, v.EOS} {
		if id >= len(v.Tokens) {
			return nil, fmt.Errorf("tokenize: special token ID %d out of range (vocabulary has %d tokens)", id, len(v.Tokens))
		}
	}
	if v.BOS < 0 {
		v.AddBOS = false
	}
	if v.EOS < 0 {
		v.AddEOS = false
	}

	t := &Tokenizer{vocab: v, ids: make(map[string]int, len(v.Tokens))}
	for i, s := range v.Tokens {
		// Keep the first ID for duplicated token texts, as llama.cpp does.
		if _, dup := t.ids[s]; !dup {
			t.ids[s] = i
		}
	}

	var err error
	if err := Supported(v.Model, v.Pre); err != nil {
		return nil, err
	}
	switch v.Model {
	case "gpt2":
		if t.pre, err = newPreTokenizer(v.Pre); err != nil {
			return nil, err
		}
		if t.bpe, err = newBPEModel(t.ids, v.Merges); err != nil {
			return nil, err
		}
		t.bpe.ignoreMerges = t.pre.ignoreMerges
		t.surface = make([]string, len(v.Tokens))
		for i, s := range v.Tokens {
			if t.tokenType(i) == typeNormal {
				t.surface[i] = byteLevelDecode(s)
			} else {
				t.surface[i] = s
			}
		}
	case "gemma4":
		if t.pre, err = compilePre("gemma4", gemma4Pre); err != nil {
			return nil, err
		}
		if t.bpe, err = newBPEModel(t.ids, v.Merges); err != nil {
			return nil, err
		}
		t.bpe.useRawUTF8()
		t.surface = make([]string, len(v.Tokens))
		for i, s := range v.Tokens {
			t.surface[i] = rawSurface(s, t.tokenType(i))
		}
	case "llama":
		addSpace := true
		if v.AddSpacePrefix != nil {
			addSpace = *v.AddSpacePrefix
		}
		t.spm = newSPMModel(t.ids, v.Tokens, v.Scores, v.TokenTypes, addSpace)
		t.surface = make([]string, len(v.Tokens))
		for i, s := range v.Tokens {
			t.surface[i] = t.spm.surface(i, s)
		}
	default:
		return nil, fmt.Errorf("tokenize: %w model %q (supported: \"gpt2\", \"llama\", \"gemma4\")", ErrUnsupported, v.Model)
	}

	var specials, userDefined []string
	for i, s := range v.Tokens {
		if tt := t.tokenType(i); (tt == typeControl || tt == typeUserDefined) && s != "" && t.ids[s] == i {
			specials = append(specials, s)
			if tt == typeUserDefined {
				userDefined = append(userDefined, s)
			}
		}
	}
	t.special = newSpecialMatcher(specials, t.ids)
	t.userDefined = newSpecialMatcher(userDefined, t.ids)
	return t, nil
}

func (t *Tokenizer) tokenType(id int) int32 {
	if t.vocab.TokenTypes == nil {
		return typeNormal
	}
	return t.vocab.TokenTypes[id]
}

// VocabSize returns the number of tokens in the vocabulary.
func (t *Tokenizer) VocabSize() int { return len(t.vocab.Tokens) }

// EncodeOptions choose how EncodeWith treats special tokens.
type EncodeOptions struct {
	// AddSpecial adds BOS and EOS where the vocabulary asks for them
	// (AddBOS, AddEOS), as a model's input would have them.
	AddSpecial bool
	// ParseSpecial turns control tokens written literally in the text (e.g.
	// "<|im_start|>") into their single token. Without it their text is
	// tokenized as ordinary text. User-defined tokens are matched either
	// way, as llama.cpp does.
	ParseSpecial bool
}

// Encode splits text into tokens as a model's input: special tokens parsed
// and BOS/EOS added (EncodeOptions{AddSpecial: true, ParseSpecial: true}).
// Empty text yields an empty slice; text that is not valid UTF-8 yields an
// error wrapping ErrInvalidUTF8.
func (t *Tokenizer) Encode(text string) ([]Token, error) {
	return t.EncodeWith(text, EncodeOptions{AddSpecial: true, ParseSpecial: true})
}

// EncodeWith splits text into tokens with the given options. Empty text
// yields an empty slice (no BOS even with AddSpecial); text that is not
// valid UTF-8 yields an error wrapping ErrInvalidUTF8.
func (t *Tokenizer) EncodeWith(text string, o EncodeOptions) (toks []Token, err error) {
	if !utf8.ValidString(text) {
		i := 0
		for i < len(text) {
			r, n := utf8.DecodeRuneInString(text[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return nil, fmt.Errorf("tokenize: %w (first bad byte at offset %d)", ErrInvalidUTF8, i)
	}
	if text == "" {
		return []Token{}, nil
	}
	defer func() {
		// The third-party pre-tokenization code may panic on inputs it does
		// not expect; never let that cross the package boundary.
		if r := recover(); r != nil {
			toks, err = nil, fmt.Errorf("tokenize: internal error encoding text: %v", r)
		}
	}()

	toks = make([]Token, 0, len(text)/3+2)
	if o.AddSpecial && t.vocab.AddBOS {
		toks = append(toks, t.token(t.vocab.BOS, 0, 0))
	}
	matcher := t.special
	if !o.ParseSpecial {
		matcher = t.userDefined
	}
	prevSpecial := true // for SentencePiece: the text start behaves like a special token
	for _, seg := range matcher.split(text) {
		if seg.id >= 0 {
			toks = append(toks, t.token(seg.id, seg.start, seg.end))
			prevSpecial = true
			continue
		}
		if t.spm != nil {
			toks = t.spm.encode(toks, text[seg.start:seg.end], seg.start, prevSpecial, t.surface)
		} else {
			toks, err = t.encodeByteLevel(toks, text[seg.start:seg.end], seg.start)
			if err != nil {
				return nil, err
			}
		}
		prevSpecial = false
	}
	if o.AddSpecial && t.vocab.AddEOS {
		toks = append(toks, t.token(t.vocab.EOS, len(text), len(text)))
	}
	return toks, nil
}

func (t *Tokenizer) token(id, start, end int) Token {
	return Token{ID: id, Text: t.surface[id], Start: start, End: end}
}

// encodeByteLevel pre-tokenizes one special-token-free segment and runs BPE
// on every piece, appending the tokens to dst.
func (t *Tokenizer) encodeByteLevel(dst []Token, seg string, offset int) ([]Token, error) {
	pieces, err := t.pre.split(seg)
	if err != nil {
		return nil, err
	}
	for _, p := range pieces {
		ids, lens, err := t.bpe.encodeWord(seg[p.start:p.end])
		if err != nil {
			return nil, err
		}
		pos := offset + p.start
		for i, id := range ids {
			dst = append(dst, t.token(id, pos, pos+lens[i]))
			pos += lens[i]
		}
	}
	return dst, nil
}

// Decode turns token IDs back into text. IDs outside the vocabulary are
// skipped. Control tokens decode to their literal text (e.g. "<|im_end|>").
// The result may contain invalid UTF-8 if ids end inside a multi-byte
// character.
func (t *Tokenizer) Decode(ids []int) string {
	var b strings.Builder
	first := true
	for _, id := range ids {
		if id < 0 || id >= len(t.surface) {
			continue
		}
		s := t.surface[id]
		if first && t.spm != nil && t.spm.addSpacePrefix && t.tokenType(id) != typeControl {
			// SentencePiece adds a space in front of the text; drop it again.
			s = strings.TrimPrefix(s, " ")
		}
		if t.tokenType(id) != typeControl || t.spm == nil {
			first = false
		}
		b.WriteString(s)
	}
	return b.String()
}

// rawSurface is the decoded text of a "gemma4" token: a <0xNN> byte token
// is that byte, "▁" is a space.
func rawSurface(s string, tokenType int32) string {
	if tokenType == typeByte && len(s) == 6 && strings.HasPrefix(s, "<0x") && s[5] == '>' {
		if b, err := strconv.ParseUint(s[3:5], 16, 8); err == nil {
			return string([]byte{byte(b)})
		}
	}
	if tokenType == typeNormal || tokenType == typeUserDefined {
		return strings.ReplaceAll(s, spaceMarker, " ")
	}
	return s
}

// Supported reports whether lmood implements the tokenizer model (as in
// tokenizer.ggml.model) with the pre-tokenizer pre (tokenizer.ggml.pre; only
// "gpt2" models use it, empty meaning "default"): nil if so, else an error
// wrapping ErrUnsupported that names what is missing.
func Supported(model, pre string) error {
	switch model {
	case "llama", "gemma4":
		return nil
	case "gpt2":
		if pre == "" {
			pre = "default"
		}
		if _, ok := prePatterns[pre]; ok {
			return nil
		}
		return fmt.Errorf("tokenize: %w pre-tokenizer %q for model \"gpt2\" (supported: %s)",
			ErrUnsupported, pre, strings.Join(supportedPre(), ", "))
	}
	return fmt.Errorf("tokenize: %w model %q (supported: \"gpt2\", \"llama\", \"gemma4\")", ErrUnsupported, model)
}

// Kind names a tokenizer for listings: the model, and for "gpt2" models
// the pre-tokenizer, e.g. "gpt2/qwen2", "llama", "gemma4". An empty model
// is "?".
func Kind(model, pre string) string {
	switch {
	case model == "":
		return "?"
	case model == "gpt2" && pre == "":
		return "gpt2/default"
	case model == "gpt2":
		return model + "/" + pre
	}
	return model
}

// supportedPre returns the sorted list of accepted tokenizer.ggml.pre names.
func supportedPre() []string {
	names := make([]string, 0, len(prePatterns))
	for n := range prePatterns {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// MaxTokens and MaxMerges bound a vocabulary's size: far above any real
// tokenizer, low enough that a hostile file cannot make lmood allocate
// gigabytes.
const (
	MaxTokens = 1 << 20
	MaxMerges = 1 << 22
)

// Validate checks a vocabulary read from a GGUF file before a model is
// converted: sizes within MaxTokens and MaxMerges, no more token entries
// than the embedding matrix has rows (embRows; a token beyond them would
// have no embedding), and no token text given twice (the tokenizer could
// not tell the two IDs apart). Errors name the GGUF field.
func (v Vocab) Validate(embRows int) error {
	switch {
	case len(v.Tokens) == 0:
		return errors.New("tokenize: tokenizer.ggml.tokens is empty")
	case len(v.Tokens) > MaxTokens:
		return fmt.Errorf("tokenize: tokenizer.ggml.tokens has %d entries, more than the %d lmood accepts", len(v.Tokens), MaxTokens)
	case len(v.Tokens) > embRows:
		return fmt.Errorf("tokenize: tokenizer.ggml.tokens has %d entries but the embedding matrix has %d rows: the file is inconsistent", len(v.Tokens), embRows)
	case len(v.Merges) > MaxMerges:
		return fmt.Errorf("tokenize: tokenizer.ggml.merges has %d entries, more than the %d lmood accepts", len(v.Merges), MaxMerges)
	}
	seen := make(map[string]int, len(v.Tokens))
	for i, s := range v.Tokens {
		if j, dup := seen[s]; dup {
			return fmt.Errorf("tokenize: tokenizer.ggml.tokens holds %q twice (IDs %d and %d): the file is corrupt", s, j, i)
		}
		seen[s] = i
	}
	return nil
}
