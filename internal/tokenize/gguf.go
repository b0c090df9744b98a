package tokenize

import (
	"errors"
	"fmt"

	"github.com/lmood/lmood/internal/gguf"
)

// FromGGUF collects the tokenizer metadata (tokenizer.ggml.*) of a GGUF
// file. It works on vocabulary-only files (no tensors) too. The result is
// not checked against any model; see Vocab.Validate and New.
func FromGGUF(f *gguf.File) (Vocab, error) {
	v := Vocab{BOS: -1, EOS: -1}
	v.Model, _ = f.String("tokenizer.ggml.model")
	v.Pre, _ = f.String("tokenizer.ggml.pre")
	var ok bool
	if v.Tokens, ok = f.Strings("tokenizer.ggml.tokens"); !ok || len(v.Tokens) == 0 {
		return v, errors.New("GGUF has no tokenizer.ggml.tokens: lmood needs the tokenizer inside the file")
	}
	v.TokenTypes, _ = f.Int32s("tokenizer.ggml.token_type")
	v.Scores, _ = f.Float32s("tokenizer.ggml.scores")
	v.Merges, _ = f.Strings("tokenizer.ggml.merges")
	if id, ok := f.Uint("tokenizer.ggml.bos_token_id"); ok {
		v.BOS = int(id)
	}
	if id, ok := f.Uint("tokenizer.ggml.eos_token_id"); ok {
		v.EOS = int(id)
	}
	if b, ok := f.Bool("tokenizer.ggml.add_bos_token"); ok {
		v.AddBOS = b
	} else {
		v.AddBOS = v.Model == "llama" // SentencePiece models add BOS unless told otherwise
	}
	if v.Model == "gemma4" {
		v.AddBOS = true // Gemma 4 always starts with BOS (llama.cpp overrides the flag too)
	}
	v.AddEOS, _ = f.Bool("tokenizer.ggml.add_eos_token")
	if b, ok := f.Bool("tokenizer.ggml.add_space_prefix"); ok {
		v.AddSpacePrefix = &b
	}
	return v, nil
}

// LoadGGUF builds the tokenizer of the GGUF file at path from its metadata
// alone: the file may hold a whole model or only a vocabulary (no tensors,
// like llama.cpp's models/ggml-vocab-*.gguf). Nothing is converted.
func LoadGGUF(path string) (*Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %w", err)
	}
	defer f.Close()
	v, err := FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("tokenize: %s: %w", path, err)
	}
	if len(v.Tokens) > MaxTokens || len(v.Merges) > MaxMerges {
		return nil, fmt.Errorf("tokenize: %s: vocabulary of %d tokens and %d merges exceeds lmood's limits (%d, %d)", path, len(v.Tokens), len(v.Merges), MaxTokens, MaxMerges)
	}
	t, err := New(v)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return t, nil
}
