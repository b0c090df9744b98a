package main

import (
	"bufio"
	"fmt"

	"github.com/lmood/lmood/internal/report"
)

// promptLabel names prompt i (1-based) for messages: its number and its
// first 60 characters, sanitized for the terminal.
func promptLabel(i int, prompt string) string {
	return fmt.Sprintf("prompt %d \"%s\"", i, report.Sanitize(truncateRunes(prompt, 60)))
}

// promptFailed reports on stderr that prompt i could not be analyzed.
// Errors are printed even with --quiet: they are not warnings.
func promptFailed(i int, prompt string, err error) {
	say(fmt.Sprintf("%s: %v", promptLabel(i, prompt), err))
}

// finish flushes a command's output and turns failed prompts into the
// exit status: a write error (a full disk, a closed pipe) fails the
// command; otherwise, when some prompts failed, it says how many on stderr
// and returns a partialError (exit 1).
func finish(out *bufio.Writer, failed, total int) error {
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if failed > 0 {
		say(fmt.Sprintf("%d of %d prompts failed", failed, total))
		return &partialError{failed: failed, total: total}
	}
	return nil
}

// firstTokenWord says how position 0 counts in prompt-level ratios.
func firstTokenWord(included bool) string {
	if included {
		return "included"
	}
	return "excluded"
}
