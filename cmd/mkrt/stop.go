package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/supervisor/control"
	"github.com/mkrt/mkrt/supervisor/deploy"
)

// newStopCmd is `mkrt stop NAME`: stop a partition that runs without a
// supervisor.
func newStopCmd() *cobra.Command {
	var o deploy.Options
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "stop a partition whose mkrt run is gone (the control program outlives it)",
		Long: "A partition's control program keeps running when its mkrt run dies (the next mkrt run\n" +
			"adopts it). mkrt stop stops such a partition: the executive drives its outputs to\n" +
			"their safe state and stops, and its cpuset, IRQ affinities, NIC namespace and shared\n" +
			"region are released. A partition served by a running mkrt run is stopped there.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Log = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelInfo}))
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if err := deploy.Stop(ctx, args[0], o); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mkrt: %s stopped; outputs at their safe values, host resources released\n", args[0])
			return nil
		},
	}
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "the partition's state directory, as given to mkrt run (default /var/lib/mkrt/NAME as root)")
	cmd.Flags().StringVar(&o.Kernel, "kernel", "", "vm and second-kernel backends: the kernel image given to mkrt run")
	cmd.Flags().StringVar(&o.Init, "init", "", "vm and second-kernel backends: the mkrt-init binary given to mkrt run")
	cmd.Flags().StringVar(&o.Socket, "socket", "", "control socket of its mkrt run, if any (default "+control.SocketPath("NAME")+")")
	return cmd
}
