package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// newSetCmd is `mkrt set TAG VALUE`.
func newSetCmd() *cobra.Command {
	var f socketFlags
	cmd := &cobra.Command{
		Use:   "set TAG VALUE",
		Short: "write a tag of the running partition",
		Long: "Write VALUE to a writable tag of the running partition. The executive applies\n" +
			"it at the start of its next cycle; limits (min/max) are checked first.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			res, err := c.Set(ctx, args[0], args[1])
			if err != nil {
				return fmt.Errorf("set %s: %w", args[0], err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			state := "applied"
			if !res.Applied {
				state = "queued"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s = %s (%s)", res.Tag, res.Value, state)
			if res.Message != "" {
				fmt.Fprintf(cmd.OutOrStdout(), ": %s", res.Message)
			}
			fmt.Fprintln(cmd.OutOrStdout())
			return nil
		},
	}
	f.add(cmd)
	return cmd
}
