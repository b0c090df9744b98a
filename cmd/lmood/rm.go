package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/lmood/lmood/internal/report"
	"github.com/lmood/lmood/internal/store"
)

func newRmCmd(g *globals) *cobra.Command {
	var unusable bool
	cmd := &cobra.Command{
		Use:     "rm NAME...",
		Aliases: []string{"remove"},
		Short:   "Remove converted models from the store (weights, graphs, calibrations)",
		Long: `rm removes converted models from lmood's store: each model's weights,
tokenizer, cached graphs and calibrations. The GGUF it came from (a file,
an ollama blob, the download cache) is left alone, so 'lmood pull' or
'lmood import' converts it again.

A model that a running lmood is reading (a 'serve', a long 'score') loses
its name at once; its files are freed when that process is done with
them. An import of the same name in progress makes rm refuse.

Examples:
    lmood rm qwen-i8                  remove one model
    lmood rm --unusable               remove every model this lmood cannot
                                      use (converted by another version:
                                      'lmood models' marks them)`,
		Args: func(cmd *cobra.Command, args []string) error {
			if unusable && len(args) > 0 {
				return errors.New("give model names or --unusable, not both")
			}
			if !unusable && len(args) == 0 {
				return errors.New("name the models to remove ('lmood models' lists them), or give --unusable")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			st := store.Default()
			names := args
			if unusable {
				entries, err := st.List()
				if err != nil {
					return err
				}
				for _, e := range entries {
					if !e.Usable() {
						names = append(names, e.Name)
					}
				}
				if len(names) == 0 {
					_, err := fmt.Fprintln(cmd.OutOrStdout(), "no unusable models")
					return err
				}
			}
			var errs []error
			for _, name := range names {
				r, err := st.Remove(name)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				line := fmt.Sprintf("removed %s (%s)", report.Sanitize(name), humanBytes(r.Size))
				if r.InUse {
					line = fmt.Sprintf("removed %s; its files (%s) are freed when the running lmood that reads them is done", report.Sanitize(name), humanBytes(r.Size))
				}
				if _, err := fmt.Fprintln(cmd.OutOrStdout(), line); err != nil {
					return err
				}
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&unusable, "unusable", false, "remove every model that this lmood cannot use (another converter version, a damaged manifest)")
	return cmd
}
