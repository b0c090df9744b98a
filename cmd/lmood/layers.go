package main

import "github.com/spf13/cobra"

// newLayersCmd is a placeholder until the layers command lands.
func newLayersCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "layers", Hidden: true} }
