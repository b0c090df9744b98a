package tokenize

// BOS returns the begin-of-sequence token ID, or -1 if the vocabulary has
// none.
func (t *Tokenizer) BOS() int { return t.vocab.BOS }

// EOS returns the end-of-sequence token ID, or -1 if the vocabulary has
// none.
func (t *Tokenizer) EOS() int { return t.vocab.EOS }

// IsSpecial reports whether id is not ordinary text: a control,
// user-defined, unknown or unused token (token types 2–5), or an ID outside
// the vocabulary. Normal and byte tokens are text.
func (t *Tokenizer) IsSpecial(id int) bool {
	if id < 0 || id >= len(t.vocab.Tokens) {
		return true
	}
	switch t.tokenType(id) {
	case typeNormal, typeByte:
		return false
	}
	return true
}

// ID returns the ID of the token whose stored text is s (as in the GGUF
// vocabulary, e.g. "<|endoftext|>"), if there is one.
func (t *Tokenizer) ID(s string) (int, bool) {
	id, ok := t.ids[s]
	return id, ok
}
