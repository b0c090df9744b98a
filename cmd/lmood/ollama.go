package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/lmood/lmood/internal/ollama"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

// ollamaModel asks the ollama server at $OLLAMA_HOST about ref
// (ollama:NAME[:TAG]) and converts its weights into the store if needed.
func ollamaModel(g *globals, ref, name string, force bool) (*ollama.Model, *ollama.Imported, error) {
	ctx, cancel := signalContext()
	defer cancel()
	m, imp, err := g.opener().ResolveOllama(ctx, ref, name, force)
	return m, imp, cliErr(err)
}

// resolveOllama turns --model ollama:NAME[:TAG] into a store model name,
// converting the ollama model's GGUF once (again only when its weights
// change). name and force are import's --name and --force.
func resolveOllama(g *globals, ref, name string, force bool) (string, error) {
	_, imp, err := ollamaModel(g, ref, name, force)
	if err != nil {
		return "", err
	}
	return imp.Name, nil
}

// importOllama is `lmood import ollama:NAME[:TAG]`: like resolveOllama,
// and it says on stdout what it did.
func importOllama(g *globals, ref, name string, force bool, stdout io.Writer) error {
	m, imp, err := ollamaModel(g, ref, name, force)
	if err != nil {
		return err
	}
	man := imp.Manifest
	if !imp.Converted {
		fmt.Fprintf(stdout, "%s is already imported from %s%s (sha256 %s…); use --force to convert again\n",
			imp.Name, ollama.Prefix, m.Name, m.Digest[:12])
		return nil
	}
	fmt.Fprintf(stdout, "imported %s: %s, %d layers, width %d, %s parameters (source %s%s, %s) in %.1fs\n",
		imp.Name, man.Config.Arch, man.Config.Layers, man.Config.Dim, humanCount(man.Params),
		ollama.Prefix, m.Name, man.Source.Quantization, man.ConvertSeconds)
	return nil
}

// listOllama prints the models of the ollama server at $OLLAMA_HOST for
// `lmood models --ollama`: what they are, whether lmood supports them, and
// whether they are converted.
func listOllama(g *globals, w io.Writer) error {
	c, err := ollama.FromEnvironment()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	models, err := c.List(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "ollama models at %s\n", c.Host())
	if len(models) == 0 {
		fmt.Fprintln(w, "  (none: `ollama pull qwen2.5:0.5b` adds one)")
		return nil
	}
	header, rows := ollamaRows(models, ollama.Converted(store.Default()))
	return report.TextTable(w, header, rows, report.TableOptions{PromptWidth: 72})
}

// ollamaRows is the table of `lmood models --ollama`: per model its
// architecture and tokenizer, whether lmood supports both, and what to do
// with it.
func ollamaRows(models []ollama.Listed, converted map[string][]string) (header []string, rows [][]string) {
	header = []string{"model", "arch", "tokenizer", "params", "quant", "supported", "lmood"}
	for _, m := range models {
		if m.Err != nil {
			rows = append(rows, []string{m.Name, m.Arch, "?", m.ParameterSize, m.Quantization, "?", "error: " + firstLine(m.Err)})
			continue
		}
		why := unsupportedWhy(&m.Model)
		rows = append(rows, []string{m.Name, m.Arch, tokenize.Kind(m.TokenizerModel, m.TokenizerPre), m.ParameterSize,
			m.Quantization, yesNo(why == ""), ollamaStatus(&m.Model, converted, why)})
	}
	return header, rows
}

// unsupportedWhy says what lmood lacks for an ollama model ("" if nothing
// it can tell before reading the weights).
func unsupportedWhy(m *ollama.Model) string {
	if !m.Supported() {
		return fmt.Sprintf("architecture %s not supported", m.Arch)
	}
	if m.TokenizerSupported() != nil {
		return fmt.Sprintf("tokenizer %s not supported", tokenize.Kind(m.TokenizerModel, m.TokenizerPre))
	}
	return ""
}

// ollamaStatus says whether an ollama model is converted, convertible, or
// why not (why: see unsupportedWhy).
func ollamaStatus(m *ollama.Model, converted map[string][]string, why string) string {
	if names := converted[m.Digest]; len(names) > 0 {
		return "converted: " + strings.Join(names, ", ")
	}
	if why != "" {
		return why
	}
	if err := m.Check(); err != nil {
		return "weights not readable here"
	}
	return "lmood import " + ollama.Prefix + strings.TrimSuffix(m.Name, ":latest")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
