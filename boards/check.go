package boards

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Status is the outcome of one readiness item.
type Status string

// The readiness outcomes. Only Fail makes a host "not ready".
const (
	Pass    Status = "pass"
	Info    Status = "info"    // worth knowing, not a problem (an optional backend absent)
	Warn    Status = "warn"    // costs latency or robustness; runs anyway
	Fail    Status = "fail"    // the board's latency budget cannot hold
	Unknown Status = "unknown" // could not be read; Detail says why
)

// Item is one readiness check's outcome.
type Item struct {
	ID     string `json:"id"`
	Title  string `json:"title"`
	Status Status `json:"status"`
	// Detail says what was found (or why it could not be read).
	Detail string `json:"detail"`
	// Fix says how to make the item pass, when it does not.
	Fix string `json:"fix,omitempty"`
}

// Report is a host readiness report against one board.
type Report struct {
	Board string `json:"board"`
	// PartitionCPUs are the cores the report checked.
	PartitionCPUs string `json:"partition_cpus"`
	Items         []Item `json:"items"`
	Ready         bool   `json:"ready"`
}

// Failed reports whether any item failed.
func (r *Report) Failed() bool { return r.Count(Fail) > 0 }

// Count returns how many items have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, it := range r.Items {
		if it.Status == s {
			n++
		}
	}
	return n
}

// WriteText prints the report for a terminal, one item per line and the fix
// indented below each item that does not pass.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "host readiness for board %s (partition cpus %s)\n", r.Board, r.PartitionCPUs)
	for _, it := range r.Items {
		fmt.Fprintf(&b, "  %-7s %-18s %s\n", strings.ToUpper(string(it.Status)), it.ID, it.Detail)
		if it.Fix != "" && it.Status != Pass {
			fmt.Fprintf(&b, "  %-7s %-18s fix: %s\n", "", "", it.Fix)
		}
	}
	verdict := "ready"
	if !r.Ready {
		verdict = "NOT ready"
	}
	fmt.Fprintf(&b, "%s: %d pass, %d info, %d warn, %d fail, %d unknown\n", verdict,
		r.Count(Pass), r.Count(Info), r.Count(Warn), r.Count(Fail), r.Count(Unknown))
	_, err := io.WriteString(w, b.String())
	return err
}

// host reads the host's /proc, /sys and /dev through an fs.FS rooted at "/".
type host struct{ fsys fs.FS }

func (h host) read(p string) (string, error) {
	data, err := fs.ReadFile(h.fsys, p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(data)), nil
}

func (h host) exists(p string) bool {
	_, err := fs.Stat(h.fsys, p)
	return err == nil
}

// cpuPath is sys/devices/system/cpu/cpuN/<rest>.
func cpuPath(cpu int, rest string) string {
	return "sys/devices/system/cpu/cpu" + strconv.Itoa(cpu) + "/" + rest
}

// unknown builds the item for a file that could not be read.
func unknown(p string, err error) (Status, string, string) {
	return Unknown, fmt.Sprintf("cannot read /%s: %v", p, err), ""
}

// check is one readiness item: it returns status, detail and fix.
type check struct {
	id, title string
	run       func(h host, b Board) (Status, string, string)
}

// checks is the ordered list of readiness items; read-only.
var checks = []check{
	{"rt-kernel", "PREEMPT_RT kernel", checkRTKernel},
	{"partition-cpus", "partition cores online", checkOnline},
	{"isolcpus", "partition cores isolated", checkIsolated},
	{"nohz-full", "tickless partition cores", checkNohzFull},
	{"cmdline", "recommended kernel command line", checkCmdline},
	{"irq-affinity", "IRQs off partition cores", checkIRQs},
	{"rt-throttling", "RT throttling", checkThrottling},
	{"cpufreq", "cpufreq governor", checkGovernor},
	{"cstates", "deep C-states", checkCStates},
	{"smt", "SMT siblings of partition cores", checkSMT},
	{"timer-migration", "timer migration", checkTimerMigration},
	{"swap", "swap", checkSwap},
	{"thp", "transparent huge pages", checkTHP},
	{"ksm", "kernel same-page merging", checkKSM},
	{"cpu-dma-latency", "/dev/cpu_dma_latency", checkDMALatency},
	{"sched-fifo", "SCHED_FIFO permitted", checkSchedFIFO},
	{"multikernel", "multikernel backend support", checkMultikernel},
	{"parker", "Parker backend support", checkParker},
	{"jailhouse", "Jailhouse backend support", checkJailhouse},
	{"kvm", "KVM for the vm backend", checkKVM},
}

// Check compares the host whose root directory is fsys (os.DirFS("/") in
// production) with board b. Partition cores are b.PartitionCPUs. An item
// whose files cannot be read reports Unknown with the reason; it never fails
// the report on its own.
func Check(fsys fs.FS, b Board) *Report {
	h := host{fsys}
	r := &Report{Board: b.Name, PartitionCPUs: FormatCPUList(b.PartitionCPUs)}
	for _, c := range checks {
		st, detail, fix := c.run(h, b)
		r.Items = append(r.Items, Item{ID: c.id, Title: c.title, Status: st, Detail: detail, Fix: fix})
	}
	r.Ready = !r.Failed()
	return r
}

func checkRTKernel(h host, b Board) (Status, string, string) {
	fix := "install and boot a PREEMPT_RT kernel: " + b.Kernel.Package
	if b.Kernel.Notes != "" {
		fix += " (" + b.Kernel.Notes + ")"
	}
	if v, err := h.read("sys/kernel/realtime"); err == nil {
		if v == "1" {
			return Pass, "/sys/kernel/realtime is 1", ""
		}
		return Fail, fmt.Sprintf("/sys/kernel/realtime is %q", v), fix
	}
	const p = "proc/sys/kernel/version"
	v, err := h.read(p)
	if err != nil {
		return unknown(p, err)
	}
	if strings.Contains(v, "PREEMPT_RT") {
		return Pass, fmt.Sprintf("kernel version %q", v), ""
	}
	return Fail, fmt.Sprintf("not a PREEMPT_RT kernel: no /sys/kernel/realtime, version %q", v), fix
}

func checkOnline(h host, b Board) (Status, string, string) {
	const p = "sys/devices/system/cpu/online"
	v, err := h.read(p)
	if err != nil {
		return unknown(p, err)
	}
	online, err := ParseCPUList(v)
	if err != nil {
		return Unknown, fmt.Sprintf("/%s: %v", p, err), ""
	}
	if miss := minus(b.PartitionCPUs, online); len(miss) > 0 {
		return Fail, fmt.Sprintf("partition cpus %s are not online (online: %s)", FormatCPUList(miss), v),
			"use a board whose partition_cpus exist on this host (a board file in " + SystemDir + ") or bring the cores online"
	}
	return Pass, fmt.Sprintf("partition cpus %s online (online: %s)", FormatCPUList(b.PartitionCPUs), v), ""
}

// cmdlineFix says how to add kernel arguments on this board.
func cmdlineFix(b Board, args ...string) string {
	where := "GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot"
	if strings.HasPrefix(b.Name, "rpi") {
		where = "/boot/firmware/cmdline.txt (one line), then reboot"
	}
	return fmt.Sprintf("add %s to the kernel command line: %s", strings.Join(args, " "), where)
}

// cpuSetItem checks that the cpulist file p covers the partition cores.
func cpuSetItem(h host, b Board, p, what, arg string, missing Status) (Status, string, string) {
	v, err := h.read(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && missing != Fail {
			return missing, fmt.Sprintf("/%s absent: the kernel has no %s support", p, what), "use a kernel built with it: " + b.Kernel.Package
		}
		return unknown(p, err)
	}
	set, err := ParseCPUList(v)
	if err != nil {
		return Unknown, fmt.Sprintf("/%s: %v", p, err), ""
	}
	want, _ := b.CmdlineValue(arg)
	if want == "" {
		want = FormatCPUList(b.PartitionCPUs)
	}
	if miss := minus(b.PartitionCPUs, set); len(miss) > 0 {
		return missing, fmt.Sprintf("partition cpus %s are not %s (%s: %q)", FormatCPUList(miss), what, path.Base(p), v),
			cmdlineFix(b, arg+"="+want)
	}
	detail := fmt.Sprintf("partition cpus %s are %s", FormatCPUList(b.PartitionCPUs), what)
	if extra := minus(set, b.PartitionCPUs); len(extra) > 0 {
		detail += fmt.Sprintf(" (also %s)", FormatCPUList(extra))
	}
	return Pass, detail, ""
}

func checkIsolated(h host, b Board) (Status, string, string) {
	return cpuSetItem(h, b, "sys/devices/system/cpu/isolated", "isolated", "isolcpus", Fail)
}

func checkNohzFull(h host, b Board) (Status, string, string) {
	return cpuSetItem(h, b, "sys/devices/system/cpu/nohz_full", "nohz_full", "nohz_full", Warn)
}

func checkCmdline(h host, b Board) (Status, string, string) {
	const p = "proc/cmdline"
	v, err := h.read(p)
	if err != nil {
		return unknown(p, err)
	}
	have := map[string]bool{}
	for _, f := range strings.Fields(v) {
		have[f] = true
	}
	var miss []string
	for _, s := range b.Cmdline {
		if !have[s.Value] {
			miss = append(miss, s.Value)
		}
	}
	if len(miss) > 0 {
		return Warn, fmt.Sprintf("%d of %d recommended arguments missing: %s", len(miss), len(b.Cmdline), strings.Join(miss, " ")),
			cmdlineFix(b, miss...) + " (mkrt board show " + b.Name + " says why each one)"
	}
	return Pass, fmt.Sprintf("all %d recommended arguments present", len(b.Cmdline)), ""
}

func checkIRQs(h host, b Board) (Status, string, string) {
	hk := FormatCPUList(b.HousekeepingCPUs)
	if hk == "" {
		hk = "0"
	}
	fix := fmt.Sprintf("irqaffinity=%s on the kernel command line; now: echo %s > /proc/irq/N/smp_affinity_list for each IRQ listed (mkrt moves them when a partition starts)", hk, hk)
	var problems []string
	const def = "proc/irq/default_smp_affinity"
	readable := false
	if v, err := h.read(def); err == nil {
		readable = true
		mask, err := ParseCPUMask(v)
		if err == nil && len(intersect(b.PartitionCPUs, mask)) > 0 {
			problems = append(problems, fmt.Sprintf("default affinity %s includes partition cpus", FormatCPUList(mask)))
		}
	}
	files, _ := fs.Glob(h.fsys, "proc/irq/*/smp_affinity_list")
	var onPart []string
	for _, f := range files {
		v, err := h.read(f)
		if err != nil {
			continue
		}
		readable = true
		cpus, err := ParseCPUList(v)
		if err == nil && len(intersect(b.PartitionCPUs, cpus)) > 0 {
			onPart = append(onPart, path.Base(path.Dir(f)))
		}
	}
	if !readable {
		return Unknown, "cannot read /proc/irq/default_smp_affinity or any /proc/irq/*/smp_affinity_list", ""
	}
	if len(onPart) > 0 {
		sort.Slice(onPart, func(i, j int) bool { return atoiOr(onPart[i]) < atoiOr(onPart[j]) })
		list := onPart
		if len(list) > 12 {
			list = append(list[:12:12], "...")
		}
		problems = append(problems, fmt.Sprintf("%d of %d IRQs may run on partition cpus (%s)", len(onPart), len(files), strings.Join(list, " ")))
	}
	if len(problems) > 0 {
		return Warn, strings.Join(problems, "; "), fix
	}
	return Pass, fmt.Sprintf("no IRQ (of %d) routed to partition cpus %s", len(files), FormatCPUList(b.PartitionCPUs)), ""
}

func atoiOr(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 1 << 30
	}
	return n
}

func checkThrottling(h host, _ Board) (Status, string, string) {
	const p = "proc/sys/kernel/sched_rt_runtime_us"
	v, err := h.read(p)
	if err != nil {
		return unknown(p, err)
	}
	if v == "-1" {
		return Pass, "sched_rt_runtime_us is -1 (no RT throttling)", ""
	}
	return Warn, fmt.Sprintf("sched_rt_runtime_us is %s: RT tasks are stopped for the rest of each period once they use that much", v),
		"sysctl -w kernel.sched_rt_runtime_us=-1 (persist in /etc/sysctl.d/); safe only with isolated partition cores"
}

func checkGovernor(h host, b Board) (Status, string, string) {
	want := b.Governor
	if want == "" {
		want = "performance"
	}
	var bad, seen []string
	for _, c := range b.PartitionCPUs {
		p := cpuPath(c, "cpufreq/scaling_governor")
		v, err := h.read(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return unknown(p, err)
		}
		seen = append(seen, fmt.Sprintf("cpu%d=%s", c, v))
		if v != want {
			bad = append(bad, fmt.Sprintf("cpu%d=%s", c, v))
		}
	}
	if len(seen) == 0 {
		return Info, "no cpufreq driver on the partition cores: the clock is set by firmware", ""
	}
	if len(bad) > 0 {
		return Warn, "governor is not " + want + ": " + strings.Join(bad, " "),
			"cpufreq.default_governor=" + want + " on the kernel command line; now: echo " + want + " | tee /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
	}
	return Pass, strings.Join(seen, " "), ""
}

func checkCStates(h host, b Board) (Status, string, string) {
	limit := b.Budget / 10
	if limit <= 0 {
		limit = 10 * time.Microsecond
	}
	var deep, all []string
	var fixes []string
	for _, c := range b.PartitionCPUs {
		states, _ := fs.Glob(h.fsys, cpuPath(c, "cpuidle/state*"))
		for _, s := range states {
			name, err1 := h.read(s + "/name")
			lat, err2 := h.read(s + "/latency")
			dis, err3 := h.read(s + "/disable")
			if err := errors.Join(err1, err2, err3); err != nil {
				return Unknown, fmt.Sprintf("cannot read /%s: %v", s, err), ""
			}
			us, err := strconv.Atoi(lat)
			if err != nil {
				return Unknown, fmt.Sprintf("/%s/latency: %q is not a number", s, lat), ""
			}
			all = append(all, fmt.Sprintf("cpu%d:%s(%dus)", c, name, us))
			if dis == "0" && time.Duration(us)*time.Microsecond > limit {
				deep = append(deep, fmt.Sprintf("cpu%d:%s exit %dus", c, name, us))
				fixes = append(fixes, "/"+s+"/disable")
			}
		}
	}
	if len(all) == 0 {
		return Pass, "no cpuidle states on the partition cores (idle=poll or no idle driver)", ""
	}
	if len(deep) > 0 {
		return Warn, fmt.Sprintf("enabled idle states with exit latency above %v: %s", limit, strings.Join(deep, ", ")),
			"intel_idle.max_cstate=0 processor.max_cstate=1 on the kernel command line, or now: echo 1 > " + strings.Join(fixes, " ") +
				" (mkrt holds /dev/cpu_dma_latency at 0 while it runs, which also keeps cores out of them)"
	}
	return Pass, "enabled idle states all exit within " + limit.String() + ": " + strings.Join(all, " "), ""
}

func checkSMT(h host, b Board) (Status, string, string) {
	var shared []string
	var extra []int
	for _, c := range b.PartitionCPUs {
		p := cpuPath(c, "topology/thread_siblings_list")
		v, err := h.read(p)
		if err != nil {
			return unknown(p, err)
		}
		sib, err := ParseCPUList(v)
		if err != nil {
			return Unknown, fmt.Sprintf("/%s: %v", p, err), ""
		}
		if o := minus(sib, b.PartitionCPUs); len(o) > 0 {
			shared = append(shared, fmt.Sprintf("cpu%d shares its core with %s", c, FormatCPUList(o)))
			extra = append(extra, o...)
		}
	}
	if len(shared) > 0 {
		return Warn, strings.Join(shared, "; "),
			fmt.Sprintf("leave the siblings idle: isolate %s too (isolcpus/nohz_full) and give no work to them, or boot with nosmt", FormatCPUList(extra))
	}
	return Pass, "no partition core shares its physical core with a non-partition cpu", ""
}

func checkTimerMigration(h host, _ Board) (Status, string, string) {
	const p = "proc/sys/kernel/timer_migration"
	v, err := h.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Info, "/proc/sys/kernel/timer_migration absent (kernel without NO_HZ_COMMON)", ""
	}
	if err != nil {
		return unknown(p, err)
	}
	if v == "0" {
		return Pass, "timer_migration is 0", ""
	}
	return Warn, "timer_migration is " + v + ": timers may be pulled onto partition cores",
		"sysctl -w kernel.timer_migration=0 (persist in /etc/sysctl.d/)"
}

func checkSwap(h host, _ Board) (Status, string, string) {
	const p = "proc/swaps"
	v, err := h.read(p)
	if err != nil {
		return unknown(p, err)
	}
	var dev []string
	for i, line := range strings.Split(v, "\n") {
		if f := strings.Fields(line); i > 0 && len(f) > 0 {
			dev = append(dev, f[0])
		}
	}
	if len(dev) > 0 {
		return Warn, "swap active: " + strings.Join(dev, " ") + " (mkrt locks its own memory; paging of other processes still loads the I/O path)",
			"swapoff -a and remove swap entries from /etc/fstab"
	}
	return Pass, "no swap", ""
}

func checkTHP(h host, _ Board) (Status, string, string) {
	const p = "sys/kernel/mm/transparent_hugepage/enabled"
	v, err := h.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Pass, "transparent huge pages not built in", ""
	}
	if err != nil {
		return unknown(p, err)
	}
	if strings.Contains(v, "[always]") {
		return Warn, "transparent huge pages: " + v + " (khugepaged compaction stalls)",
			"transparent_hugepage=madvise on the kernel command line; now: echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
	}
	return Pass, "transparent huge pages: " + v, ""
}

func checkKSM(h host, _ Board) (Status, string, string) {
	const p = "sys/kernel/mm/ksm/run"
	v, err := h.read(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Pass, "KSM not built in", ""
	}
	if err != nil {
		return unknown(p, err)
	}
	if v == "1" {
		return Warn, "KSM is merging pages (run=1): ksmd scans memory and copy-on-write faults follow",
			"echo 0 > /sys/kernel/mm/ksm/run (and disable ksmtuned)"
	}
	return Pass, "KSM run=" + v, ""
}

func checkDMALatency(h host, _ Board) (Status, string, string) {
	if h.exists("dev/cpu_dma_latency") {
		return Pass, "/dev/cpu_dma_latency present: mkrt holds it at 0 while running", ""
	}
	return Warn, "/dev/cpu_dma_latency absent: cores may enter deep idle states between cycles",
		"use a kernel with CONFIG_CPU_IDLE PM QoS (any distribution kernel) and a mounted devtmpfs"
}

// capSysNice is CAP_SYS_NICE's bit in /proc/self/status CapEff.
const capSysNice = 23

func checkSchedFIFO(h host, _ Board) (Status, string, string) {
	const st = "proc/self/status"
	status, err1 := h.read(st)
	if err1 == nil {
		for _, line := range strings.Split(status, "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
				if err == nil && caps&(1<<capSysNice) != 0 {
					return Pass, "CAP_SYS_NICE held: SCHED_FIFO permitted", ""
				}
			}
		}
	}
	const lim = "proc/self/limits"
	limits, err2 := h.read(lim)
	if err2 == nil {
		for _, line := range strings.Split(limits, "\n") {
			if v, ok := strings.CutPrefix(line, "Max realtime priority"); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					if n, err := strconv.Atoi(f[0]); err == nil && n > 0 {
						return Pass, fmt.Sprintf("RLIMIT_RTPRIO is %d: SCHED_FIFO permitted up to that priority", n), ""
					}
					return Fail, "no CAP_SYS_NICE and RLIMIT_RTPRIO is " + f[0] + ": tasks would run as SCHED_OTHER (rt: degraded)",
						"run mkrt as root, or grant rtprio (/etc/security/limits.d/mkrt.conf: '<user> - rtprio 99') or CAP_SYS_NICE (setcap cap_sys_nice+ep)"
				}
			}
		}
	}
	if err1 != nil && err2 != nil {
		return Unknown, fmt.Sprintf("cannot read /%s (%v) or /%s (%v)", st, err1, lim, err2), ""
	}
	return Unknown, "no CapEff or Max realtime priority line found", ""
}

// filesystems lists the kernel's filesystem types from /proc/filesystems.
func (h host) filesystems() (map[string]bool, error) {
	v, err := h.read("proc/filesystems")
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, line := range strings.Split(v, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[len(f)-1]] = true
		}
	}
	return m, nil
}

// backendItem reports an optional backend's kernel support: present or not,
// never a failure.
func backendItem(present bool, err error, what, backend, fix string) (Status, string, string) {
	if present {
		return Pass, what + " present: the " + backend + " backend can run", ""
	}
	if err != nil {
		return Unknown, fmt.Sprintf("cannot tell whether %s is present: %v", what, err), ""
	}
	return Info, what + " absent: the " + backend + " backend is not available (process and vm are)", fix
}

func checkMultikernel(h host, _ Board) (Status, string, string) {
	fss, err := h.filesystems()
	present := h.exists("sys/fs/multikernel") || fss["multikernel"]
	return backendItem(present, err, "multikernel filesystem", "multikernel",
		"boot a kernel from github.com/multikernel/linux")
}

func checkParker(h host, _ Board) (Status, string, string) {
	fss, err := h.filesystems()
	return backendItem(fss["parker"], err, "parker filesystem", "parker",
		"boot a kernel with the Parker patch set")
}

func checkJailhouse(h host, _ Board) (Status, string, string) {
	return backendItem(h.exists("dev/jailhouse"), nil, "/dev/jailhouse", "jailhouse",
		"build and load the Jailhouse driver (modprobe jailhouse) on a host with VT-x/VT-d")
}

func checkKVM(h host, _ Board) (Status, string, string) {
	fi, err := fs.Stat(h.fsys, "dev/kvm")
	if err != nil {
		return Warn, "/dev/kvm absent: the vm backend falls back to TCG emulation (latencies in milliseconds)",
			"enable VT-x/AMD-V in the firmware and modprobe kvm_intel or kvm_amd"
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return Warn, "/dev/kvm is not a character device", "modprobe kvm_intel or kvm_amd"
	}
	return Pass, "/dev/kvm present: the vm backend can use KVM", ""
}
