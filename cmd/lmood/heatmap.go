package main

import "github.com/spf13/cobra"

// newHeatmapCmd is a placeholder until the heatmap command lands.
func newHeatmapCmd(g *globals) *cobra.Command { return &cobra.Command{Use: "heatmap", Hidden: true} }
