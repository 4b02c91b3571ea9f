// Command mkrt is the one command-line tool of mkrt: it validates control
// configs, runs partitions, measures latency and talks to a running
// supervisor. Each subcommand lives in its own file and calls a package.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	if err := newRoot().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "mkrt:", err)
		os.Exit(exitCode(err))
	}
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "mkrt",
		Short:         "real-time industrial control runtime for multi-kernel Linux",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(commands()...)
	return root
}

// exitError carries a specific exit code (e.g. 1 for "config invalid").
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitError); ok {
		return e.code
	}
	return 1
}
