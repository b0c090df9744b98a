package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/ollama"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

// tokenizeFlags are the options of 'lmood tokenize'.
type tokenizeFlags struct {
	vocab        string
	json         bool
	addSpecial   bool
	parseSpecial bool
}

func newTokenizeCmd(g *globals) *cobra.Command {
	f := &tokenizeFlags{}
	cmd := &cobra.Command{
		Use:   "tokenize [-m MODEL | --vocab FILE.gguf] TEXT...",
		Short: "Show the token IDs and pieces a model's tokenizer makes of each text",
		Long: `tokenize prints, for each TEXT, the token IDs and the pieces of text they
stand for (made visible for the terminal: spaces of a whitespace-only piece,
newlines and control characters are marked). No BOS/EOS is added unless
--add-special. Control tokens written in the text (e.g. "<|im_start|>") become
their token, as in lmood's analyses; --parse-special=false tokenizes them as
plain text, as llama.cpp's tokenizer tests do.

The tokenizer comes from --vocab FILE.gguf (any GGUF with tokenizer.ggml.*
metadata, including vocabulary-only files without tensors; nothing is
converted), or from --model: a converted model's name, a .gguf path (read
directly, not converted), or ollama:NAME[:TAG] (converted once like
'lmood import').

--json prints one JSON object per text and line: {"text", "ids", "tokens"}.`,
		Example: `  lmood tokenize "Hello world"
  lmood tokenize --vocab ggml-vocab-qwen2.gguf --json "int x = 42;"`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.vocab != "" && cmd.Flags().Changed("model") {
				return usageError{fmt.Errorf("give either --model or --vocab, not both")}
			}
			tok, err := tokenizerFor(g, f.vocab)
			if err != nil {
				return err
			}
			return printTokens(cmd.OutOrStdout(), tok, args, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&g.model, "model", "m", store.DefaultModel, "model: a name listed by 'lmood models', a path to a .gguf file, or ollama:NAME[:TAG]")
	fl.StringVar(&f.vocab, "vocab", "", "read the tokenizer from this GGUF file (a vocabulary-only file is enough)")
	fl.BoolVar(&f.json, "json", false, "one JSON object per text: {\"text\", \"ids\", \"tokens\"}")
	fl.BoolVar(&f.addSpecial, "add-special", false, "add BOS/EOS where the vocabulary asks for them, as a model's input has them")
	fl.BoolVar(&f.parseSpecial, "parse-special", true, "turn control tokens written in the text into their token")
	return cmd
}

// tokenizerFor resolves --vocab or --model to a tokenizer, converting
// nothing except an ollama model not yet in the store.
func tokenizerFor(g *globals, vocab string) (*tokenize.Tokenizer, error) {
	ref := g.model
	if vocab != "" {
		ref = vocab
	}
	switch {
	case vocab != "" || strings.HasSuffix(strings.ToLower(ref), ".gguf"):
		tok, err := tokenize.LoadGGUF(ref)
		if err != nil {
			return nil, fmt.Errorf("reading the tokenizer of %s: %w", report.Sanitize(ref), err)
		}
		return tok, nil
	case strings.HasPrefix(ref, ollama.Prefix):
		m, err := openModel(g)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		return m.Tokenizer()
	}
	tok, err := store.Default().Tokenizer(ref)
	return tok, cliErr(err)
}

// tokenizedText is the JSON form of one tokenized text.
type tokenizedText struct {
	Text   string   `json:"text"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

func printTokens(w io.Writer, tok *tokenize.Tokenizer, texts []string, f *tokenizeFlags) error {
	out := bufio.NewWriter(w)
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	opt := tokenize.EncodeOptions{AddSpecial: f.addSpecial, ParseSpecial: f.parseSpecial}
	for i, text := range texts {
		toks, err := tok.EncodeWith(text, opt)
		if err != nil {
			out.Flush()
			return fmt.Errorf("text %d: %w", i+1, err)
		}
		r := tokenizedText{Text: text, IDs: make([]int, len(toks)), Tokens: make([]string, len(toks))}
		for j, t := range toks {
			r.IDs[j], r.Tokens[j] = t.ID, t.Text
		}
		if f.json {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		if len(texts) > 1 {
			if i > 0 {
				fmt.Fprintln(out)
			}
			fmt.Fprintf(out, "text %d: %s\n", i+1, report.Sanitize(text))
		}
		fmt.Fprintf(out, "%d tokens\n", len(toks))
		for j, t := range toks {
			fmt.Fprintf(out, "%8d  %s\n", r.IDs[j], report.Sanitize(t.Text))
		}
	}
	return out.Flush()
}
