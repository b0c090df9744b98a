package tokenize

import (
	"errors"

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
