package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/supervisor/control"
)

// socketFlags are the flags every control-socket subcommand takes.
type socketFlags struct {
	socket    string
	partition string
	json      bool
}

func (f *socketFlags) add(cmd *cobra.Command) {
	dirs := strings.Join(control.Dirs(), " or ")
	cmd.Flags().StringVar(&f.socket, "socket", "", "control socket of the partition (default: <partition>.sock, or the only socket, in "+dirs+")")
	cmd.Flags().StringVarP(&f.partition, "partition", "p", "", "partition name (selects <name>.sock in "+dirs+")")
	cmd.Flags().BoolVar(&f.json, "json", false, "print JSON instead of text")
}

// client resolves the socket and returns a client for it.
func (f *socketFlags) client() (*control.Client, error) {
	sock := f.socket
	if sock == "" && f.partition != "" {
		sock = control.Find(f.partition)
	}
	path, err := control.Resolve(sock, control.Dirs()...)
	if err != nil {
		return nil, err
	}
	return control.NewClient(path), nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newStatusCmd is `mkrt status`.
func newStatusCmd() *cobra.Command {
	var f socketFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "show the running partition's state",
		Long: "Show the running partition's state: backend, pid, real-time mode, isolation\n" +
			"(cpuset, IRQs, NICs) and what was degraded, restarts and the last fault,\n" +
			"per-task latency and overruns, and the bridge's connections.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			st, err := c.Status(ctx)
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			return control.WriteStatus(cmd.OutOrStdout(), st)
		},
	}
	f.add(cmd)
	return cmd
}
