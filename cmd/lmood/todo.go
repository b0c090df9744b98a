package main

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

func newHeatmapCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "heatmap", Hidden: true} }
func newLayersCmd(g *globals) *cobra.Command  { return &cobra.Command{Use: "layers", Hidden: true} }
func newEvalCmd(g *globals) *cobra.Command    { return &cobra.Command{Use: "eval", Hidden: true} }
func resolveOllama(g *globals, ref, name string, force bool) (string, error) {
	return "", errors.New("ollama: not implemented yet")
}
func listOllama(g *globals, w io.Writer) error { return errors.New("ollama: not implemented yet") }
