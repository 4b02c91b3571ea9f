package latency

import (
	"fmt"
	"strings"

	"github.com/mkrt/mkrt/latency/report"
)

// ReportSections are a run's own parts of its report folder's README.md,
// beside the wake-up table that latency/report writes: mkrt's execution
// time per cycle and the page faults after warm-up.
func ReportSections(s Summary) []report.Section {
	var b strings.Builder
	fmt.Fprintf(&b, "Each cycle's execution time (program, inputs, outputs, image); program: %s.\n\n", ProgramDesc(s.Blocks))
	b.WriteString("| series | samples | p50 | p99 | p99.9 | max |\n|---|--:|--:|--:|--:|--:|\n")
	row := func(name string, st Stats) {
		fmt.Fprintf(&b, "| %s | %d | %.1f | %.1f | %.1f | %.1f |\n", name, st.Samples, st.P50US, st.P99US, st.P999US, st.MaxUS)
	}
	for _, t := range s.MkrtExec.Threads {
		row(fmt.Sprintf("mkrt exec cpu%d", t.CPU), t.Stats)
	}
	if len(s.MkrtExec.Threads) > 1 {
		row("**mkrt exec (all)**", s.MkrtExec.Merged)
	}
	var f strings.Builder
	for i, l := range PageFaultLines(s.PageFaults) {
		if i == 0 {
			f.WriteString(strings.ToUpper(l[:1]) + l[1:] + "\n")
			continue
		}
		fmt.Fprintf(&f, "- %s\n", strings.TrimSpace(l))
	}
	return []report.Section{
		{Title: "Execution time (µs)", Markdown: b.String()},
		{Title: "Page faults", Markdown: f.String()},
	}
}

// ReportSection is the minimum-period search as a section of the report
// folder's README.md; shown names the step whose figures the rest of the
// README shows.
func (mp *MinPeriod) ReportSection(shown string) report.Section {
	var b strings.Builder
	fmt.Fprintf(&b, "**%s**\n\n", mp.Result)
	if mp.Board != "" {
		fmt.Fprintf(&b, "Board %s. ", mp.Board)
	}
	fmt.Fprintf(&b, "Budget %s, program %s, CPUs %v, %.1f s per step.", fmtUS(mp.BudgetUS), ProgramDesc(mp.Blocks), mp.CPUs, mp.StepS)
	if shown != "" {
		fmt.Fprintf(&b, " The figures above are the step at %s.", shown)
	}
	b.WriteString("\n\n| period | p50 | p99 | p99.9 | max | exec p99.9 | overruns | cyclictest p99.9 | verdict |\n|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, st := range mp.Steps {
		ct, verdict := st.cells("–", "**fail**")
		fmt.Fprintf(&b, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %d | %s | %s: %s |\n", fmtUS(st.PeriodUS), st.Wake.P50US, st.Wake.P99US,
			st.Wake.P999US, st.Wake.MaxUS, st.ExecP999US, st.Overruns, ct, verdict, st.Why)
	}
	b.WriteString("\nLatencies in µs. A step fails when its p99.9 wake-up latency exceeds the budget, when it overran, or when p99.9 wake-up plus p99.9 execution time exceeds the period; the minimum period is the last step that passed.\n")
	return report.Section{Title: "Minimum period", Markdown: b.String()}
}
