package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

func newVerifyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify [NAME...]",
		Short: "Check converted models' weights against the digests recorded at conversion",
		Long: `verify re-reads each model's weights.bin and compares every tensor with the
SHA-256 recorded when it was converted. With no NAME, every model in the
store is checked. A model that fails must be converted again
(lmood import --force, or lmood pull).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			st := store.Default()
			names := args
			if len(names) == 0 {
				entries, err := st.List()
				if err != nil {
					return err
				}
				for _, e := range entries {
					names = append(names, e.Name)
				}
				if len(names) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), "no models to verify")
					return nil
				}
			}
			ctx, cancel := signalContext()
			defer cancel()
			failed := 0
			for _, n := range names {
				_, err := st.Verify(ctx, n)
				if errors.Is(err, ctx.Err()) && ctx.Err() != nil {
					return err
				}
				if err != nil {
					failed++
					fmt.Fprintf(cmd.OutOrStdout(), "%s: FAILED: %s\n", report.Sanitize(n), report.Sanitize(firstLine(err)))
					continue
				}
				if _, err := fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", report.Sanitize(n)); err != nil {
					return err
				}
			}
			if failed > 0 {
				return &partialError{failed: failed, total: len(names)}
			}
			return nil
		},
	}
}
