package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// newApplyCmd is `mkrt apply CONFIG`.
func newApplyCmd() *cobra.Command {
	var f socketFlags
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "apply CONFIG",
		Short: "apply a changed config to the running partition",
		Long: "Send a changed control config to the running partition. The supervisor\n" +
			"validates it, says what changed, and applies it (restarting the partition\n" +
			"when the change needs it). An invalid config changes nothing.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			res, err := c.Apply(ctx, args[0], cfg)
			if err != nil {
				return fmt.Errorf("apply %s: %w", args[0], err)
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			out := cmd.OutOrStdout()
			switch {
			case res.Applied && res.Restarted:
				fmt.Fprintf(out, "%s: applied (partition restarted)\n", args[0])
			case res.Applied:
				fmt.Fprintf(out, "%s: applied\n", args[0])
			default:
				fmt.Fprintf(out, "%s: not applied\n", args[0])
			}
			for _, ch := range res.Changes {
				fmt.Fprintf(out, "  %s\n", ch)
			}
			if res.Message != "" {
				fmt.Fprintln(out, res.Message)
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&timeout, "timeout", time.Minute, "how long to wait for the partition to take the config")
	return cmd
}
