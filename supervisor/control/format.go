package control

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mkrt/mkrt/supervisor"
)

// WriteStatus prints a status for people.
func WriteStatus(w io.Writer, st supervisor.Status) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, format string, args ...any) { fmt.Fprintf(tw, "%s:\t%s\n", k, fmt.Sprintf(format, args...)) }
	row("partition", "%s (%s backend)", st.Partition, st.Backend)
	state := st.State.String()
	if st.State == supervisor.Running {
		state += fmt.Sprintf(" for %v", st.Uptime.Round(time.Second))
	}
	row("state", "%s (executive %s, cycle %d)", state, st.Exec, st.Cycle)
	if st.PID != 0 {
		row("pid", "%d", st.PID)
	}
	if st.RT {
		row("rt", "yes")
	} else {
		row("rt", "degraded: %s", orDash(st.RTWhy))
	}
	iso := st.Isolation
	row("cpus", "%s (cpuset %s)", orDash(iso.CPUs), orDash(iso.CPUSet))
	row("irqs", "%d moved off, %d left (kernel refused)", iso.IRQsMoved, iso.IRQsSkipped)
	if iso.NetNS != "" {
		row("nics", "%s in netns %s", strings.Join(iso.NICs, ", "), iso.NetNS)
	}
	if o := st.Outputs; o.Driver != "" {
		held := o.Driver
		if o.Safe {
			held += " (safe since " + o.Since.Format(time.RFC3339) + ")"
		}
		if o.Detail != "" && o.Driver != "partition" {
			held += ": " + o.Detail
		}
		row("outputs", "%s", held)
	}
	row("restarts", "%d", st.Restarts)
	if f := st.LastFault; f != nil {
		row("last fault", "%s (%s)", f.Reason, f.Time.Format(time.RFC3339))
	}
	if h := st.HandOver; h != nil {
		row("hand-over", "%s", HandOverLine(*h))
	}
	for _, d := range iso.Degradations {
		row("degraded", "%s", d)
	}
	for _, l := range st.Links {
		conn := "down"
		if l.Connected {
			conn = "up"
		}
		row("link "+l.Name, "%s %s %s", conn, l.Peer, l.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(st.Tasks) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "task\tperiod\tcycles\toverruns\tp50\tp99\tmax\t")
	for _, t := range st.Tasks {
		fmt.Fprintf(tw, "%s\t%v\t%d\t%d\t%v\t%v\t%v\t\n", t.Name, t.Period, t.Cycles, t.Overruns, t.P50, t.P99, t.Max)
	}
	return tw.Flush()
}

// WriteTags prints tag values as a table.
func WriteTags(w io.Writer, tags []TagValue) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TAG\tVALUE\tUNIT\tQUALITY\tUPDATED")
	for _, t := range tags {
		v := t.Text
		if t.Type != "string" {
			v = strconv.FormatFloat(t.Value, 'g', -1, 64)
		}
		q := t.Quality
		if t.Reason != "" {
			q += " (" + t.Reason + ")"
		}
		when := "-"
		if !t.Time.IsZero() {
			when = t.Time.Format("15:04:05.000")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Name, v, orDash(t.Unit), q, when)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// HandOverLine is the hand-over summary `mkrt status` prints: "generation
// 2 at cycle 1234, 0 missed cycles, 0 retries, carried 3 blocks (2 fresh,
// 0 dropped), 240ms from apply to switch".
func HandOverLine(h supervisor.HandOver) string {
	return fmt.Sprintf("generation %d at cycle %d, %d missed cycles, %d retries, carried %d blocks (%d fresh, %d dropped), %v from apply to switch",
		h.Generation, h.Cycle, h.Missed, h.Retries, h.Carried, h.Fresh, h.Dropped, h.Took.Round(time.Millisecond))
}
