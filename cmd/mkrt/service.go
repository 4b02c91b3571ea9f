package main

import (
	_ "embed"
	"fmt"

	"github.com/spf13/cobra"
)

//go:embed mkrt@.service
var serviceUnit string

// newServiceCmd is `mkrt service unit`: the systemd unit that runs a
// partition's mkrt run (Type=notify, Restart=always, WatchdogSec=).
func newServiceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Short: "run partitions under systemd"}
	cmd.AddCommand(&cobra.Command{
		Use:   "unit",
		Short: "print the systemd unit template mkrt@.service",
		Long: "Print the systemd unit template that runs /etc/mkrt/NAME.yaml as mkrt@NAME:\n" +
			"  mkrt service unit > /etc/systemd/system/mkrt@.service\n" +
			"  systemctl daemon-reload && systemctl enable --now mkrt@tank-level",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprint(cmd.OutOrStdout(), serviceUnit)
			return err
		},
	})
	return cmd
}
