package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/blocks"
)

// configCheck is a further check of a config that loaded and validated,
// such as compiling its function blocks; it returns configs.Errors.
type configCheck func(*configs.Config) error

// compileBlocks checks the function blocks (ports, parameters, types,
// loops) by compiling them as the executive does.
func compileBlocks(cfg *configs.Config) error {
	tab, err := cfg.TagTable()
	if err != nil {
		return err
	}
	_, err = blocks.Compile(cfg, tab)
	return err
}

// newValidateCmd is `mkrt validate FILE...`. checks run on each config
// that loads cleanly (the block compiler adds its own here).
func newValidateCmd(checks ...configCheck) *cobra.Command {
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
func validateFiles(w io.Writer, files []string, checks []configCheck) int {
	bad := 0
	for _, f := range files {
		if err := validateFile(f, checks); err != nil {
			bad++
			fmt.Fprintln(w, err)
			continue
		}
		fmt.Fprintf(w, "%s: ok\n", f)
	}
	return bad
}

func validateFile(file string, checks []configCheck) error {
	cfg, err := configs.Load(file)
	if err != nil {
		var errs configs.Errors
		if errors.As(err, &errs) {
			return err
		}
		return fmt.Errorf("%s: %w", file, err)
	}
	var all configs.Errors
	for _, check := range checks {
		err := check(cfg)
		var errs configs.Errors
		switch {
		case err == nil:
		case errors.As(err, &errs):
			all = append(all, errs...)
		default:
			all.Add(configs.Pos{File: file}, "%v", err)
		}
	}
	return all.Err()
}
