package image

import (
	"fmt"
	"strings"

	"github.com/mkrt/mkrt/configs"
)

// CmdlineOptions describe the application kernel's command line.
type CmdlineOptions struct {
	// RTCPUs are the kernel's own CPU numbers that run control tasks;
	// every other CPU of the kernel does housekeeping.
	RTCPUs []int
	// Housekeeping are the CPUs that take IRQs, RCU callbacks and timers.
	Housekeeping []int
	// Console is the console device; default ttyS0,115200.
	Console string
	// Idle is "poll" to keep idle CPUs out of C-states, "" for the default.
	Idle string
	// MaxCState limits C-states (intel_idle.max_cstate, processor.max_cstate); -1 leaves them.
	MaxCState int
	// Mitigations is the CPU vulnerability mitigation policy ("auto", "off"); "" leaves the kernel default.
	Mitigations string
	// Shm tells mkrt-init where the shared region is: "ivshmem" or
	// "phys:<addr>,<size>" (kexec-family backends).
	Shm string
	// Extra is appended verbatim (the partition's kernel.cmdline).
	Extra string
}

// Cmdline builds the application kernel's command line: isolation of the
// RT CPUs (isolcpus, nohz_full, rcu_nocbs, irqaffinity), idle and
// mitigation policy, the console, reboot-on-panic (the supervisor sees a
// fault and restarts), and where mkrt-init finds the shared region.
func Cmdline(o CmdlineOptions) string {
	var a []string
	add := func(f string, v ...any) { a = append(a, fmt.Sprintf(f, v...)) }
	console := o.Console
	if console == "" {
		console = "ttyS0,115200"
	}
	add("console=%s", console)
	if len(o.RTCPUs) > 0 {
		rt := configs.CPUList(o.RTCPUs).String()
		add("isolcpus=nohz,domain,managed_irq,%s", rt)
		add("nohz_full=%s", rt)
		add("rcu_nocbs=%s", rt)
		a = append(a, "rcu_nocb_poll", "skew_tick=1", "nosoftlockup", "nowatchdog")
	}
	if len(o.Housekeeping) > 0 {
		add("irqaffinity=%s", configs.CPUList(o.Housekeeping).String())
	}
	if o.Idle != "" {
		add("idle=%s", o.Idle)
	}
	if o.MaxCState >= 0 {
		add("intel_idle.max_cstate=%d", o.MaxCState)
		add("processor.max_cstate=%d", o.MaxCState)
	}
	if o.Mitigations != "" {
		add("mitigations=%s", o.Mitigations)
	}
	// The kernel hands unknown key=value parameters to init as environment:
	// keep Go's asynchronous preemption signals out of the latency tail.
	a = append(a, "GODEBUG=asyncpreemptoff=1")
	// A kernel panic reboots at once; the supervisor treats it as a fault.
	a = append(a, "panic=-1", "oops=panic", "loglevel=4")
	if o.Shm != "" {
		add("mkrt.shm=%s", o.Shm)
	}
	if x := strings.TrimSpace(o.Extra); x != "" {
		a = append(a, x)
	}
	return strings.Join(a, " ")
}
