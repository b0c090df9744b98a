// Command lmood tells which parts of a prompt a language model finds
// unusual, from the model's weights alone: it nudges the prompt's token
// embeddings with small Gaussian noise and measures how far the model's
// mid-layer residual stream turns (the drift ratio). See README.md.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := newRootCmd().Execute()
	if err == nil {
		return
	}
	var pe *partialError
	if !errors.As(err, &pe) {
		fmt.Fprintln(os.Stderr, "lmood:", err)
	}
	os.Exit(exitCode(err))
}
