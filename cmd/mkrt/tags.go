package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/supervisor/control"
)

// newTagsCmd is `mkrt tags [--watch]`.
func newTagsCmd() *cobra.Command {
	var f socketFlags
	var watch bool
	var every time.Duration
	cmd := &cobra.Command{
		Use:   "tags",
		Short: "list tag values of the running partition",
		Long: "List every tag of the running partition with its value, unit, quality and\n" +
			"source time. With --watch, print them again every --every until interrupted\n" +
			"(with --json: one JSON array per line).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			show := func(tv []control.TagValue) error {
				if f.json {
					return printJSON(out, tv)
				}
				return control.WriteTags(out, tv)
			}
			if !watch {
				ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				defer cancel()
				tv, err := c.Tags(ctx)
				if err != nil {
					return err
				}
				return show(tv)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return c.Watch(ctx, every, func(tv []control.TagValue) error {
				if !f.json {
					fmt.Fprintf(out, "\n%s\n", time.Now().Format("15:04:05.000"))
				}
				return show(tv)
			})
		},
	}
	f.add(cmd)
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "keep printing values until interrupted")
	cmd.Flags().DurationVar(&every, "every", time.Second, "period of --watch")
	return cmd
}
