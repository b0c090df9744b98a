package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

func newPruneCmd(g *globals) *cobra.Command {
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "prune",
		Short: "Remove what interrupted imports and downloads left in the cache, and stale graphs",
		Long: `prune removes conversions that were interrupted or replaced, partial
downloads, and graphs an older lmood cached (another graph revision: they
are never read again; the current ones are rebuilt when needed). Anything
a running lmood still uses (an import in progress, a model being read, a
download) holds a lock and is left alone. To remove a whole model, use
'lmood rm'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st := store.Default()
			var lo []store.Leftover
			var err error
			if dryRun {
				lo, err = st.Leftovers()
			} else {
				lo, err = st.Prune()
			}
			var size int64
			for _, l := range lo {
				size += l.Size
				if g.verbose || dryRun {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s (%s, %s)\n", report.Sanitize(l.Path), l.What, humanBytes(l.Size))
				}
			}
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			if _, werr := fmt.Fprintf(cmd.OutOrStdout(), "%s %d leftovers (%s)\n", verb, len(lo), humanBytes(size)); werr != nil && err == nil {
				err = werr
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "list what would be removed, remove nothing")
	return cmd
}

// humanBytes formats a byte count.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
