package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	core "github.com/lmood/lmood/internal/lmood"
	"github.com/lmood/lmood/internal/runtime"
	"github.com/lmood/lmood/internal/store"
)

// version is lmood's release.
const version = "0.1.0"

// globals are the flags every command shares.
type globals struct {
	model   string
	ortLib  string
	threads int
	verbose bool
	quiet   bool
}

// partialError reports that some items failed after each was reported on
// its own; main prints nothing more and exits 1.
type partialError struct{ failed, total int }

func (e *partialError) Error() string {
	return fmt.Sprintf("%d of %d prompts failed", e.failed, e.total)
}

// usageError marks bad invocations (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, core.ErrUsage) || strings.HasPrefix(err.Error(), "unknown command ") {
		return 2
	}
	return 1
}

// cliErr turns the core's usage errors into CLI usage errors (exit 2),
// naming a bad option as its flag ("--samples: ..."). Other errors pass
// through unchanged.
func cliErr(err error) error {
	err = core.Classify(err)
	if err == nil || !errors.Is(err, core.ErrUsage) {
		return err
	}
	if oe, ok := err.(*core.OptionError); ok {
		return usageError{&flagError{oe}}
	}
	return usageError{err}
}

// flagError shows a core option error with the option spelled as a flag.
type flagError struct{ oe *core.OptionError }

func (e *flagError) Error() string { return "--" + e.oe.Option + ": " + e.oe.Err.Error() }
func (e *flagError) Unwrap() error { return e.oe }

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "lmood",
		Short: "Find which parts of a prompt a language model finds unusual, from its weights alone",
		Long: `lmood nudges a prompt's token embeddings with small Gaussian noise, runs
them through a transformer (onnxruntime, CPU), and measures how far the
residual stream turns at a chosen depth, relative to how far the input turned:

    ratio = angle(h, h') / angle(e, e')      (per token and per prompt)

A published finding says networks "pinch" inputs they were not trained on, so
those drift less. On the default model lmood measures the opposite (unusual
text drifts more), so the OOD score is oriented that way (--direction
expand); 'lmood eval' measures it on your model and data. lmood reports the
ratio, the OOD score, per-token heatmaps and per-layer comparisons.

Start here:
    lmood setup                       install onnxruntime and the default model
    lmood score "Eggplants are purple." "Eggplants are fire-engine red."
    lmood heatmap "lsadfhl; wiffle jfdalkgy burh lgoi"
    lmood layers -f prompts/probes.txt`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       fmt.Sprintf("%s (model converter v%d, installs onnxruntime %s)", version, store.ConverterVersion, runtime.ORTVersion),
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
	})
	pf := root.PersistentFlags()
	pf.StringVar(&g.ortLib, "ort-lib", "", "path to libonnxruntime.so (default $"+runtime.EnvLib+", else the copy 'lmood setup' installs)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "explain what is happening on stderr (timings, forward-pass counts)")
	pf.BoolVarP(&g.quiet, "quiet", "q", false, "no progress bars or warnings on stderr")

	root.AddCommand(
		newSetupCmd(g), newPullCmd(g), newImportCmd(g), newModelsCmd(g),
		newScoreCmd(g), newHeatmapCmd(g), newLayersCmd(g), newEvalCmd(g),
		newRmCmd(g), newPruneCmd(g), newVerifyCmd(g), newServeCmd(g), newCalibrateCmd(g),
		newTokenizeCmd(g),
	)
	for _, c := range root.Commands() {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	}
	return root
}

// usageArgs makes a positional-argument check fail as a usage error (exit 2).
func usageArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := check(c, args); err != nil {
			return usageError{fmt.Errorf("%w\nRun '%s --help' for usage", err, c.CommandPath())}
		}
		return nil
	}
}

// signalContext is cancelled on Ctrl-C and on SIGTERM (sent by timeout,
// kill, container runtimes and systemd), so imports clean up either way.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

// bar adapts a progress bar to fetch.Progress / store.ConvertProgress. It
// draws only when stderr is a terminal and --quiet is off.
type bar struct {
	g *globals
	b *progressbar.ProgressBar
}

func (g *globals) progress() *bar { return &bar{g: g} }

func (p *bar) Start(name string, total int64) {
	if p.g.quiet || !isTerminal(os.Stderr) {
		return
	}
	opts := []progressbar.Option{
		progressbar.OptionSetDescription(name),
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionThrottle(100 * time.Millisecond),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	}
	if total > 1<<20 {
		opts = append(opts, progressbar.OptionShowBytes(true))
	}
	p.b = progressbar.NewOptions64(total, opts...)
}

func (p *bar) Add(n int) {
	if p.b != nil {
		_ = p.b.Add(n)
	}
}

func (p *bar) Finish() {
	if p.b != nil {
		_ = p.b.Finish()
		p.b = nil
	}
}

// logf prints a line on stderr with --verbose.
func (g *globals) logf(format string, args ...any) {
	if g.verbose {
		say(fmt.Sprintf(format, args...))
	}
}

// warnf prints a warning on stderr unless --quiet.
func (g *globals) warnf(format string, args ...any) {
	if !g.quiet {
		say("warning: " + fmt.Sprintf(format, args...))
	}
}

// opener resolves --model for the core, reporting through the CLI's
// progress bars and stderr messages.
func (g *globals) opener() *core.Opener {
	return &core.Opener{ORTLib: g.ortLib, Hooks: g.hooks()}
}

// hooks are the core's callbacks: --verbose lines, notes unless --quiet,
// progress bars on a terminal.
func (g *globals) hooks() core.Hooks {
	return core.Hooks{
		Logf: g.logf,
		Notef: func(format string, args ...any) {
			if !g.quiet {
				say(fmt.Sprintf(format, args...))
			}
		},
		Progress: func() core.Progress { return g.progress() },
	}
}

// openModel resolves --model (a store name, a .gguf path, or ollama:NAME)
// and loads onnxruntime; Ctrl-C cancels a conversion.
func openModel(g *globals) (*store.Model, error) {
	ctx, cancel := signalContext()
	defer cancel()
	m, err := g.opener().OpenModel(ctx, g.model)
	return m, cliErr(err)
}
