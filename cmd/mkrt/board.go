package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/boards"
)

// newBoardCmd is `mkrt board list|show NAME|check [NAME] [--json]`.
func newBoardCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "board",
		Short: "reference boards and host readiness checks",
		Long: "Reference boards: CPU topology, partition cores, the recommended kernel\n" +
			"command line, NICs, kernel and latency budget.\n\n" +
			"Your own boards are NAME.yaml files in $" + boards.EnvDirs + " (colon-separated\n" +
			"directories) or " + boards.SystemDir + "; `mkrt board show NAME` prints the format.",
	}
	cmd.AddCommand(boardListCmd(), boardShowCmd(), boardCheckCmd())
	return cmd
}

func boardCatalog() boards.Catalog {
	return boards.Catalog{Dirs: boards.SearchDirs(os.Getenv)}
}

func boardListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "list the reference boards and your own board files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			all, err := boardCatalog().All()
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tARCH\tCPUS\tPARTITION\tMIN PERIOD\tBUDGET\tSOURCE\tDESCRIPTION")
			for _, b := range all {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%v\t%v\t%s\t%s\n", b.Name, b.Arch, b.CPUs,
					boards.FormatCPUList(b.PartitionCPUs), b.MinPeriod, b.Budget, b.Source, b.Description)
			}
			if ferr := tw.Flush(); ferr != nil {
				return ferr
			}
			// Broken user files are reported after the boards that loaded.
			return err
		},
	}
}

func boardShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME|FILE",
		Short: "print a board's definition, with the recommended kernel command line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := boardCatalog().Lookup(args[0])
			if err != nil {
				return err
			}
			return writeBoard(cmd.OutOrStdout(), b)
		},
	}
}

func writeBoard(w io.Writer, b boards.Board) error {
	data, err := boards.Marshal(b)
	if err != nil {
		return err
	}
	var s strings.Builder
	fmt.Fprintf(&s, "# board %s (%s)\n", b.Name, b.Source)
	fmt.Fprintf(&s, "# recommended kernel command line:\n#   %s\n", b.CmdlineString())
	s.Write(data)
	_, err = io.WriteString(w, s.String())
	return err
}

func boardCheckCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "check [NAME|FILE]",
		Short: "check this host's readiness for a board (default " + boards.Default + "); exit 1 when an item fails",
		Long: "Check this host's readiness for real-time partitions on a board: PREEMPT_RT\n" +
			"kernel, isolated and tickless partition cores, IRQ affinity, RT throttling,\n" +
			"cpufreq, C-states, SMT, timer migration, swap, THP, KSM, /dev/cpu_dma_latency,\n" +
			"SCHED_FIFO permission and which partition backends the kernel supports.\n" +
			"Each item is pass, info, warn, fail or unknown (unreadable, with the reason),\n" +
			"with the fix. Exit status 0 when nothing fails, 1 otherwise.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := boards.Default
			if len(args) == 1 {
				name = args[0]
			}
			b, err := boardCatalog().Lookup(name)
			if err != nil {
				return err
			}
			r := boards.Check(os.DirFS("/"), b)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			} else {
				err = r.WriteText(out)
			}
			if err != nil {
				return err
			}
			if r.Failed() {
				return &exitError{code: 1, err: fmt.Errorf("board check: host not ready for %s: %d item(s) failed", b.Name, r.Count(boards.Fail))}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
