// Command lmood tells which parts of a prompt a language model finds
// unusual, from the model's weights alone: it nudges the prompt's token
// embeddings with small Gaussian noise and measures how far the model's
// mid-layer residual stream turns (the drift ratio). See README.md.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lmood/lmood/internal/report"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// stderr receives lmood's messages (errors, warnings, notes); run points it
// at the writer it is given. Progress bars draw on os.Stderr itself, and
// only when that is a terminal.
var stderr io.Writer = os.Stderr

// run executes lmood with args, writing results to stdout and messages to
// errw, and returns the exit code: 0, 1 (failure), or 2 (usage error). A
// failed write to stdout (a full disk, a closed pipe) is a failure, even
// when the command itself ignored it.
func run(args []string, stdout, errw io.Writer) int {
	old := stderr
	stderr = errw
	defer func() { stderr = old }()
	out := &checkedWriter{w: stdout}
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(out) // also where cobra prints a failed --version write: once, to out
	root.SetErr(errw)
	err := root.Execute()
	if err == nil && out.err != nil {
		err = fmt.Errorf("writing output: %w", out.err)
	}
	if err == nil {
		return 0
	}
	var pe *partialError
	if !errors.As(err, &pe) {
		say(err.Error())
	}
	return exitCode(err)
}

// checkedWriter remembers the first write error, so that output a command
// wrote without checking still fails the run.
type checkedWriter struct {
	w   io.Writer
	err error
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// say prints a message on stderr as "lmood: TEXT", every line of it
// sanitized: file names, paths, model names and prompts inside messages
// never put escape sequences or bidi controls on the terminal.
func say(text string) {
	fmt.Fprintln(stderr, "lmood: "+safeLines(text))
}

// safeLines sanitizes each line of s for the terminal, keeping the line
// breaks.
func safeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = report.Sanitize(l)
	}
	return strings.Join(lines, "\n")
}
