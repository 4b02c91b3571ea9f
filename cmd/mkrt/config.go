package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// newConfigCmd is `mkrt config`: tools for control configs.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "config tools (schema, defaults)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "schema",
		Short: "print the JSON Schema of control configs, with every function-block type (for editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := configs.Schema(blocks.Catalogue())
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(s)
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "defaults FILE",
		Short: "print a config with every default filled in, and its hash",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := configs.Load(args[0], blocks.Validate)
			if err != nil {
				return &exitError{code: 1, err: err}
			}
			out, err := cfg.Marshal()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "# hash %x\n", cfg.Hash())
			_, err = w.Write(out)
			return err
		},
	})
	return cmd
}
