package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// errNotAvailable is what a subcommand that is not built yet returns.
var errNotAvailable = errors.New("not available yet")

// placeholders are subcommands announced but not built yet: each says so and
// exits non-zero. Remove a line here when its subcommand file lands.
func placeholders() []*cobra.Command {
	return []*cobra.Command{}
}

func placeholder(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Short:              short + " (not available yet)",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fmt.Errorf("%s: %w", cmd.Name(), errNotAvailable)
		},
	}
}
