package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// compileBlocks checks the function blocks against the block catalogue
// (types, ports, parameters, units, loops) as the executive's compiler does.
func compileBlocks(cfg *configs.Config) error { return blocks.Validate(cfg) }

// newValidateCmd is `mkrt validate FILE...`. checks are rules beyond
// configs' own (the block catalogue's: compileBlocks); they run on each
// config, and their problems are printed with configs' in file order.
func newValidateCmd(checks ...configs.Check) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "validate control configs",
		Long: "Validate control configs: print \"FILE: ok\" for each valid file and every problem\n" +
			"of the others as file:line:col: what is wrong. Exits 0 only when all are valid.",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			bad := validateFiles(cmd.OutOrStdout(), args, checks)
			if bad > 0 {
				return &exitError{code: 1, err: fmt.Errorf("%d of %d configs are invalid", bad, len(args))}
			}
			return nil
		},
	}
}

// validateFiles validates each file, prints the outcome and returns how
// many are invalid.
func validateFiles(w io.Writer, files []string, checks []configs.Check) int {
	bad := 0
	for _, f := range files {
		cfg, err := validateFile(f, checks)
		if err != nil {
			bad++
			fmt.Fprintln(w, err)
			continue
		}
		for _, warn := range cfg.Warnings() {
			fmt.Fprintf(w, "%s: warning: %s\n", warn.Pos, warn.Msg)
		}
		fmt.Fprintf(w, "%s: ok\n", f)
	}
	return bad
}

func validateFile(file string, checks []configs.Check) (*configs.Config, error) {
	cfg, err := configs.Load(file, checks...)
	var errs configs.Errors
	if err == nil || errors.As(err, &errs) {
		return cfg, err
	}
	return nil, fmt.Errorf("%s: %w", file, err)
}
