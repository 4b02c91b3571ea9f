package boards

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// readyHost is a fake /proc, /sys and /dev of a 4-cpu PREEMPT_RT host prepared
// for board rpi4 (partition core 3): every item passes.
func readyHost() fstest.MapFS {
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	m := fstest.MapFS{
		"sys/kernel/realtime":                        f("1"),
		"proc/sys/kernel/version":                    f("#1 SMP PREEMPT_RT Debian 6.1.158-1"),
		"sys/devices/system/cpu/online":              f("0-3"),
		"sys/devices/system/cpu/isolated":            f("3"),
		"sys/devices/system/cpu/nohz_full":           f("3"),
		"proc/cmdline":                               f("console=ttyS0 isolcpus=3 nohz_full=3 rcu_nocbs=3 irqaffinity=0-2 cpufreq.default_governor=performance root=/dev/mmcblk0p2"),
		"proc/irq/default_smp_affinity":              f("7"),
		"proc/irq/9/smp_affinity_list":               f("0-2"),
		"proc/irq/27/smp_affinity_list":              f("0"),
		"proc/sys/kernel/sched_rt_runtime_us":        f("-1"),
		"proc/sys/kernel/timer_migration":            f("0"),
		"proc/swaps":                                 f("Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"),
		"sys/kernel/mm/transparent_hugepage/enabled": f("always madvise [never]"),
		"sys/kernel/mm/ksm/run":                      f("0"),
		"dev/cpu_dma_latency":                        &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600},
		"dev/kvm":                                    &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o660},
		"dev/jailhouse":                              &fstest.MapFile{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600},
		"sys/fs/multikernel":                         &fstest.MapFile{Mode: fs.ModeDir | 0o755},
		"proc/filesystems":                           f("nodev\tsysfs\nnodev\tproc\n\text4\nnodev\tmultikernel\nnodev\tparker"),
		"proc/self/status":                           f("Name:\tmkrt\nCapEff:\t000001ffffffffff"),
		"proc/self/limits":                           f("Max realtime priority     0                    0"),
	}
	for c := 0; c < 4; c++ {
		m[cpuPath(c, "cpufreq/scaling_governor")] = f("performance")
		m[cpuPath(c, "topology/thread_siblings_list")] = f(string(rune('0' + c)))
		m[cpuPath(c, "cpuidle/state0/name")] = f("WFI")
		m[cpuPath(c, "cpuidle/state0/latency")] = f("1")
		m[cpuPath(c, "cpuidle/state0/disable")] = f("0")
	}
	return m
}

func rpi4(t *testing.T) Board {
	t.Helper()
	b, err := Lookup("rpi4")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func item(t *testing.T, r *Report, id string) Item {
	t.Helper()
	for _, it := range r.Items {
		if it.ID == id {
			return it
		}
	}
	t.Fatalf("no item %q", id)
	return Item{}
}

func TestCheckReadyHostPassesEverything(t *testing.T) {
	r := Check(readyHost(), rpi4(t))
	for _, it := range r.Items {
		if it.Status != Pass {
			t.Errorf("%s: %s: %s", it.ID, it.Status, it.Detail)
		}
	}
	if !r.Ready || r.Failed() || len(r.Items) != len(checks) {
		t.Fatalf("ready=%v failed=%v items=%d", r.Ready, r.Failed(), len(r.Items))
	}
}

// TestCheckItems changes one thing on the ready host per case and expects
// exactly that item's status to change, with a fix for every non-pass.
func TestCheckItems(t *testing.T) {
	f := func(s string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(s + "\n")} }
	cases := []struct {
		name, id string
		edit     func(m fstest.MapFS)
		want     Status
		detail   string
	}{
		{"rt from uname", "rt-kernel", func(m fstest.MapFS) { delete(m, "sys/kernel/realtime") }, Pass, "PREEMPT_RT"},
		{"not rt", "rt-kernel", func(m fstest.MapFS) {
			delete(m, "sys/kernel/realtime")
			m["proc/sys/kernel/version"] = f("#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1")
		}, Fail, "not a PREEMPT_RT kernel"},
		{"realtime 0", "rt-kernel", func(m fstest.MapFS) { m["sys/kernel/realtime"] = f("0") }, Fail, "realtime"},
		{"rt unreadable", "rt-kernel", func(m fstest.MapFS) {
			delete(m, "sys/kernel/realtime")
			delete(m, "proc/sys/kernel/version")
		}, Unknown, "cannot read"},
		{"cpu offline", "partition-cpus", func(m fstest.MapFS) { m["sys/devices/system/cpu/online"] = f("0-2") }, Fail, "not online"},
		{"not isolated", "isolcpus", func(m fstest.MapFS) { m["sys/devices/system/cpu/isolated"] = f("") }, Fail, "not isolated"},
		{"isolated wider", "isolcpus", func(m fstest.MapFS) { m["sys/devices/system/cpu/isolated"] = f("2-3") }, Pass, "also 2"},
		{"isolated garbage", "isolcpus", func(m fstest.MapFS) { m["sys/devices/system/cpu/isolated"] = f("x-y") }, Unknown, "bad cpulist"},
		{"nohz missing cpu", "nohz-full", func(m fstest.MapFS) { m["sys/devices/system/cpu/nohz_full"] = f("(null)") }, Warn, "not nohz_full"},
		{"nohz unsupported", "nohz-full", func(m fstest.MapFS) { delete(m, "sys/devices/system/cpu/nohz_full") }, Warn, "absent"},
		{"cmdline missing", "cmdline", func(m fstest.MapFS) { m["proc/cmdline"] = f("isolcpus=3 nohz_full=3") }, Warn, "rcu_nocbs=3"},
		{"irq on partition", "irq-affinity", func(m fstest.MapFS) { m["proc/irq/27/smp_affinity_list"] = f("0-3") }, Warn, "(27)"},
		{"default affinity", "irq-affinity", func(m fstest.MapFS) { m["proc/irq/default_smp_affinity"] = f("f") }, Warn, "default affinity"},
		{"irq unreadable", "irq-affinity", func(m fstest.MapFS) {
			for k := range m {
				if strings.HasPrefix(k, "proc/irq/") {
					delete(m, k)
				}
			}
		}, Unknown, "cannot read"},
		{"throttled", "rt-throttling", func(m fstest.MapFS) { m["proc/sys/kernel/sched_rt_runtime_us"] = f("950000") }, Warn, "950000"},
		{"ondemand", "cpufreq", func(m fstest.MapFS) { m[cpuPath(3, "cpufreq/scaling_governor")] = f("ondemand") }, Warn, "cpu3=ondemand"},
		{"no cpufreq", "cpufreq", func(m fstest.MapFS) { delete(m, cpuPath(3, "cpufreq/scaling_governor")) }, Info, "no cpufreq"},
		{"deep cstate", "cstates", func(m fstest.MapFS) {
			m[cpuPath(3, "cpuidle/state2/name")] = f("C6")
			m[cpuPath(3, "cpuidle/state2/latency")] = f("133")
			m[cpuPath(3, "cpuidle/state2/disable")] = f("0")
		}, Warn, "C6 exit 133us"},
		{"deep cstate disabled", "cstates", func(m fstest.MapFS) {
			m[cpuPath(3, "cpuidle/state2/name")] = f("C6")
			m[cpuPath(3, "cpuidle/state2/latency")] = f("133")
			m[cpuPath(3, "cpuidle/state2/disable")] = f("1")
		}, Pass, "C6"},
		{"cstate garbage", "cstates", func(m fstest.MapFS) { m[cpuPath(3, "cpuidle/state0/latency")] = f("soon") }, Unknown, "not a number"},
		{"smt sibling", "smt", func(m fstest.MapFS) { m[cpuPath(3, "topology/thread_siblings_list")] = f("1,3") }, Warn, "shares its core with 1"},
		{"timer migration", "timer-migration", func(m fstest.MapFS) { m["proc/sys/kernel/timer_migration"] = f("1") }, Warn, "is 1"},
		{"swap", "swap", func(m fstest.MapFS) {
			m["proc/swaps"] = f("Filename Type Size Used Priority\n/dev/sda2 partition 1000 0 -2")
		}, Warn, "/dev/sda2"},
		{"swaps unreadable", "swap", func(m fstest.MapFS) { delete(m, "proc/swaps") }, Unknown, "cannot read"},
		{"thp always", "thp", func(m fstest.MapFS) { m["sys/kernel/mm/transparent_hugepage/enabled"] = f("[always] madvise never") }, Warn, "[always]"},
		{"ksm on", "ksm", func(m fstest.MapFS) { m["sys/kernel/mm/ksm/run"] = f("1") }, Warn, "run=1"},
		{"no dma latency", "cpu-dma-latency", func(m fstest.MapFS) { delete(m, "dev/cpu_dma_latency") }, Warn, "absent"},
		{"rtprio limit", "sched-fifo", func(m fstest.MapFS) {
			m["proc/self/status"] = f("CapEff:\t0000000000000000")
			m["proc/self/limits"] = f("Max realtime priority     95                   95")
		}, Pass, "RLIMIT_RTPRIO is 95"},
		{"no fifo", "sched-fifo", func(m fstest.MapFS) { m["proc/self/status"] = f("CapEff:\t0000000000000000") }, Fail, "SCHED_OTHER"},
		{"fifo unreadable", "sched-fifo", func(m fstest.MapFS) { delete(m, "proc/self/status"); delete(m, "proc/self/limits") }, Unknown, "cannot read"},
		{"multikernel fs only", "multikernel", func(m fstest.MapFS) { delete(m, "sys/fs/multikernel") }, Pass, "present"},
		{"no multikernel", "multikernel", func(m fstest.MapFS) {
			delete(m, "sys/fs/multikernel")
			m["proc/filesystems"] = f("nodev\tsysfs")
		}, Info, "absent"},
		{"no parker", "parker", func(m fstest.MapFS) { m["proc/filesystems"] = f("nodev\tsysfs") }, Info, "absent"},
		{"parker unknown", "parker", func(m fstest.MapFS) { delete(m, "proc/filesystems") }, Unknown, "cannot tell"},
		{"no jailhouse", "jailhouse", func(m fstest.MapFS) { delete(m, "dev/jailhouse") }, Info, "absent"},
		{"no kvm", "kvm", func(m fstest.MapFS) { delete(m, "dev/kvm") }, Warn, "TCG"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := readyHost()
			c.edit(m)
			r := Check(m, rpi4(t))
			it := item(t, r, c.id)
			if it.Status != c.want || !strings.Contains(it.Detail, c.detail) {
				t.Fatalf("%s = %s %q, want %s containing %q", c.id, it.Status, it.Detail, c.want, c.detail)
			}
			if (it.Status == Warn || it.Status == Fail) && it.Fix == "" {
				t.Errorf("%s: %s without a fix", c.id, it.Status)
			}
			for _, other := range r.Items {
				if other.ID != c.id && other.Status != Pass && c.id != "multikernel" {
					t.Errorf("unrelated item %s changed to %s: %s", other.ID, other.Status, other.Detail)
				}
			}
			if r.Ready != (c.want != Fail) {
				t.Errorf("Ready = %v with a %s item", r.Ready, c.want)
			}
		})
	}
}

func TestCheckEmptyHostIsHonest(t *testing.T) {
	r := Check(fstest.MapFS{}, rpi4(t))
	var text bytes.Buffer
	if err := r.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if r.Count(Unknown) < 5 {
		t.Errorf("an empty tree should leave items unknown:\n%s", text.String())
	}
	for _, it := range r.Items {
		if it.Status == Unknown && !strings.Contains(it.Detail, "cannot") && !strings.Contains(it.Detail, "no ") {
			t.Errorf("%s unknown without a reason: %q", it.ID, it.Detail)
		}
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatal(err)
	}
}

func TestReportText(t *testing.T) {
	m := readyHost()
	m["sys/devices/system/cpu/isolated"] = &fstest.MapFile{Data: []byte("\n")}
	r := Check(m, rpi4(t))
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"FAIL    isolcpus", "fix: add isolcpus=3", "cmdline.txt", "NOT ready", "1 fail"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
