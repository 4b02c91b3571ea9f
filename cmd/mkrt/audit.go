package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/mkrt/mkrt/bridge/audit"
	"github.com/mkrt/mkrt/supervisor/control"
)

// auditFile is the audit log's name in a partition's state directory.
const auditFile = "audit.jsonl"

// newAuditCmd is `mkrt audit [NAME]`.
func newAuditCmd() *cobra.Command {
	var (
		stateDir string
		since    string
		asJSON   bool
		follow   bool
	)
	cmd := &cobra.Command{
		Use:   "audit [NAME]",
		Short: "show who wrote what to a partition, accepted or refused",
		Long: "Show the audit log of a partition: every write attempt from SCADA (Sparkplug B,\n" +
			"JSON MQTT, Modbus TCP), mkrt set, mkrt apply and hand-overs, with who made it,\n" +
			"the old and the new value, and the result or the reason it was refused. It reads\n" +
			"<state dir>/audit.jsonl and its rotated files (audit.jsonl.1 … .N), oldest first.\n" +
			"NAME is the partition (default: the only one with an audit log in " + strings.Join(stateBases(), " or ") + ").",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			dir := stateDir
			if dir == "" {
				name := ""
				if len(args) == 1 {
					name = args[0]
				}
				if dir, err = findStateDir(stateBases(), name); err != nil {
					return err
				}
			}
			path := filepath.Join(dir, auditFile)
			out := cmd.OutOrStdout()
			p := newAuditPrinter(out, asJSON)
			show := func(e audit.Entry) error {
				if !from.IsZero() && e.Time.Before(from) {
					return nil
				}
				return p.print(e)
			}
			bad := func(where string, err error) {
				fmt.Fprintf(cmd.ErrOrStderr(), "mkrt: %s: skipped a damaged line: %v\n", where, err)
			}
			err = audit.Scan(path, show, bad)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no audit log in %s (nothing was written yet, or give the partition's --state-dir)", dir)
			}
			if errors.Is(err, fs.ErrPermission) {
				return fmt.Errorf("%w (the audit log is readable by root and the state directory's group)", err)
			}
			if err != nil {
				return err
			}
			if err := p.flush(); err != nil {
				return err
			}
			if follow {
				return followAudit(cmd.Context(), path, time.Second/2, func(e audit.Entry) error {
					if err := show(e); err != nil {
						return err
					}
					return p.flush()
				}, bad)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&stateDir, "state-dir", "", "the partition's state directory, as given to mkrt run (default "+filepath.Join(control.UserStateBase(), "NAME")+")")
	cmd.Flags().StringVar(&since, "since", "", "only entries since a duration ago (1h, 30m) or a time (2026-12-03, 2026-12-03 14:00, RFC 3339)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON lines instead of a table")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new entries until interrupted")
	return cmd
}

// parseSince is the start of --since: now less a duration, or a time
// (local unless it names its zone); zero when s is empty.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %s: give a positive duration (1h) or a time", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: write a duration (1h, 30m) or a time (2026-12-03, 2026-12-03 14:00, 2026-12-03T14:00:00Z)", s)
}

// stateBases are where mkrt audit looks for state directories: this
// user's supervisors' first, then a root supervisor's (its socket group
// may read its audit log).
func stateBases() []string {
	if b := control.UserStateBase(); b != control.StateBase {
		return []string{b, control.StateBase}
	}
	return []string{control.StateBase}
}

// findStateDir is the state directory of the named partition: the first
// of bases that has its audit log (else its place under the first). With
// no name, it is the only partition under bases that has an audit log.
func findStateDir(bases []string, name string) (string, error) {
	if name != "" {
		for _, b := range bases {
			if _, err := os.Stat(filepath.Join(b, name, auditFile)); err == nil {
				return filepath.Join(b, name), nil
			}
		}
		return filepath.Join(bases[0], name), nil
	}
	var dirs []string
	for _, b := range bases {
		found, _ := filepath.Glob(filepath.Join(b, "*", auditFile))
		sort.Strings(found)
		for _, f := range found {
			dirs = append(dirs, filepath.Dir(f))
		}
	}
	switch len(dirs) {
	case 0:
		return "", fmt.Errorf("no partition's audit log in %s (give the partition's NAME or --state-dir)", strings.Join(bases, " or "))
	case 1:
		return dirs[0], nil
	}
	return "", fmt.Errorf("%d partitions have audit logs (%s): choose one, mkrt audit NAME", len(dirs), strings.Join(dirs, ", "))
}

// auditPrinter prints entries as a table or as JSON lines.
type auditPrinter struct {
	json bool
	enc  *json.Encoder
	tw   *tabwriter.Writer
	head bool
}

func newAuditPrinter(w io.Writer, asJSON bool) *auditPrinter {
	if asJSON {
		return &auditPrinter{json: true, enc: json.NewEncoder(w)}
	}
	return &auditPrinter{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
}

func (p *auditPrinter) print(e audit.Entry) error {
	if p.json {
		return p.enc.Encode(e)
	}
	if !p.head {
		fmt.Fprintln(p.tw, "TIME\tWHO\tPROTOCOL\tTAG\tCHANGE\tRESULT")
		p.head = true
	}
	_, err := fmt.Fprintf(p.tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.Local().Format("2006-01-02 15:04:05"), who(e), dash(e.Source), dash(e.Tag), change(e), result(e))
	return err
}

func (p *auditPrinter) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// who is the entry's user, with the client id or peer that says more.
func who(e audit.Entry) string {
	w := e.Who
	if p := e.Principal; p != nil {
		var more []string
		for _, s := range []string{p.ClientID, p.Peer, p.Role} {
			if s != "" && s != w {
				more = append(more, s)
			}
		}
		if len(more) > 0 {
			w += " (" + strings.Join(more, ", ") + ")"
		}
	}
	return dash(strings.TrimSpace(w))
}

func show(v any) string {
	switch x := v.(type) {
	case nil:
		return "?"
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case string:
		return strconv.Quote(x)
	}
	return fmt.Sprint(v)
}

// change is "old → new", or what an apply changed.
func change(e audit.Entry) string {
	if e.Changes != nil || e.Generation != 0 {
		s := strings.Join(e.Changes, "; ")
		if e.Generation != 0 {
			s = strings.TrimSpace(fmt.Sprintf("generation %d: %s", e.Generation, s))
		}
		return dash(strings.TrimSuffix(s, ":"))
	}
	if e.New == nil {
		return "-"
	}
	if e.Old == nil {
		return "→ " + show(e.New)
	}
	return show(e.Old) + " → " + show(e.New)
}

// result is "applied (cycle N)", "refused: why" or "failed: why".
func result(e audit.Entry) string {
	switch {
	case e.OK && e.Cycle != 0:
		return fmt.Sprintf("applied (cycle %d)", e.Cycle)
	case e.OK:
		return "applied"
	case e.Refused:
		r := e.Reason
		if r == "" {
			r = e.Error
		}
		return "refused: " + r
	}
	return "failed: " + e.Error
}

// followAudit calls fn with the entries appended to the audit log at path
// from now on, across rotations, until ctx ends.
func followAudit(ctx context.Context, path string, every time.Duration, fn func(audit.Entry) error, bad func(string, error)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer func() { f.Close() }()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	var partial []byte
	// drain passes on the whole lines added to f since the last drain.
	drain := func() error {
		b, err := io.ReadAll(f)
		if err != nil {
			return err
		}
		partial = append(partial, b...)
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				return nil
			}
			line := partial[:i]
			partial = partial[i+1:]
			if len(line) == 0 {
				continue
			}
			var e audit.Entry
			if err := json.Unmarshal(line, &e); err != nil {
				bad(f.Name(), err)
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := drain(); err != nil {
			return err
		}
		st, err := os.Stat(path)
		cur, cerr := f.Stat()
		if err != nil || cerr != nil || os.SameFile(st, cur) {
			continue
		}
		// Rotated: what was added before the rotation, then the new file.
		if err := drain(); err != nil {
			return err
		}
		nf, err := os.Open(path)
		if err != nil {
			return err
		}
		f.Close()
		f, partial = nf, nil
	}
}
