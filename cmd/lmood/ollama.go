package main

import (
	"errors"
	"io"
)

// resolveOllama is a placeholder until ollama support lands.
func resolveOllama(g *globals, ref, name string, force bool) (string, error) {
	return "", errors.New("ollama: not implemented yet")
}

// listOllama is a placeholder until ollama support lands.
func listOllama(g *globals, w io.Writer) error { return errors.New("ollama: not implemented yet") }
