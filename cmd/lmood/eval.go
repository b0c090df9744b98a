package main

import "github.com/spf13/cobra"

// newEvalCmd is a placeholder until the eval command lands.
func newEvalCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "eval", Hidden: true} }
