package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/supervisor"
)

// newExecutiveCmd is `mkrt executive`: the control program of a process
// partition, started by the supervisor (not by hand).
func newExecutiveCmd() *cobra.Command {
	var cfgPath, shmLoc, backend, takeFrom string
	var force bool
	cmd := &cobra.Command{
		Use:    "executive --config FILE --shm LOCATION",
		Short:  "run the control program on a shared region (started by mkrt run)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("partition", os.Getenv("MKRT_PARTITION"))
			if shmLoc == "" {
				shmLoc = os.Getenv("MKRT_SHM")
			}
			cfg, err := configs.Load(cfgPath)
			if err != nil {
				return &exitError{supervisor.ExitDoNotRestart, err}
			}
			if backend != "" {
				cfg.Partition.Backend = configs.Backend(backend)
			}
			loc, err := shm.ParseLocation(shmLoc)
			if err != nil {
				return &exitError{supervisor.ExitDoNotRestart, fmt.Errorf("--shm: %w", err)}
			}
			var from shm.Location
			if takeFrom != "" {
				if from, err = shm.ParseLocation(takeFrom); err != nil {
					return &exitError{supervisor.ExitDoNotRestart, fmt.Errorf("--take-from: %w", err)}
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			err = app.Run(ctx, app.Options{Config: cfg, Shm: loc, Force: force, Log: log, TakeFrom: from})
			if errors.Is(err, app.ErrConfig) {
				return &exitError{supervisor.ExitDoNotRestart, err}
			}
			return err
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "control config")
	cmd.Flags().StringVar(&shmLoc, "shm", "", "shared region: /dev/shm/NAME, pci:BDF or mem:ADDR+SIZE (default $MKRT_SHM)")
	cmd.Flags().StringVar(&backend, "backend", "", "the backend mkrt run was told to use (keeps the config hash equal on both sides)")
	cmd.Flags().StringVar(&takeFrom, "take-from", "", "region of the running partition to take over from (hand-over): start on standby")
	cmd.Flags().BoolVar(&force, "force", false, "take the region over from a writer that still looks alive")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}
