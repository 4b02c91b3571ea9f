package deploy_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mkrt/mkrt/bridge/shm"
	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/multikernel/multikerneltest"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

// The fake host: four CPUs (APIC ids 0, 2, 4, 6), of which the baseline
// gives 4 and 6 (CPUs 2 and 3) and 1 GiB at 2 GiB to the multikernel pool.
const (
	mkCPUInfo = "processor\t: 0\napicid\t\t: 0\n\nprocessor\t: 1\napicid\t\t: 2\n\nprocessor\t: 2\napicid\t\t: 4\n\nprocessor\t: 3\napicid\t\t: 6\n\n"
	mkIOMem   = "00100000-7fffffff : System RAM\n80000000-bfffffff : multikernel\n"
)

// stepClock is CLOCK_MONOTONIC moved by off: the clock of a kernel that
// booted at another time.
type stepClock time.Duration

func (c stepClock) Now() time.Duration { return rt.Monotonic{}.Now() + time.Duration(c) }
func (c stepClock) SleepUntil(t time.Duration) {
	rt.Monotonic{}.SleepUntil(t - time.Duration(c))
}

// secondKernels stands in for the application kernels the fake multikernel
// kernel starts: each instance runs the control program in this process,
// on its own clock (a boot 40 s apart per instance) and boot ID, on the
// region its command line names in the /dev/mem file, and taking over
// from the one mkrt.take= names, as mkrt-init does in a real instance.
type secondKernels struct {
	t       *testing.T
	devmem  string
	configs func(instance string) string // the config file the instance's initramfs would carry

	mu   sync.Mutex
	n    int
	runs map[string]error // instance -> how its control program ended
}

func (s *secondKernels) boot(name, cmdline string) (halt func()) {
	s.mu.Lock()
	s.n++
	k := s.n
	s.mu.Unlock()
	params := pid1.ParseCmdline(cmdline)
	loc := func(p string) shm.Location {
		var addr, size uint64
		if rest, ok := strings.CutPrefix(p, "phys:"); ok {
			a, b, _ := strings.Cut(rest, ",")
			addr, _ = strconv.ParseUint(a, 0, 64)
			size, _ = strconv.ParseUint(b, 0, 64)
		}
		l := shm.Phys(addr, int64(size))
		l.Path = s.devmem
		return l
	}
	cfg, err := configs.Load(s.configs(name))
	if err != nil {
		s.t.Errorf("instance %s: %v", name, err)
		return func() {}
	}
	o := app.Options{Config: cfg, Shm: loc(params["shm"]), ClockID: shm.ClockID{byte(k)},
		Executive: executive.Options{NoRealtime: true, KeepGC: true, Clock: stepClock(time.Duration(k) * 40 * time.Second)}}
	if take := params["take"]; take != "" {
		o.TakeFrom = loc(take)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := app.Run(ctx, o)
		s.mu.Lock()
		s.runs[name] = err
		s.mu.Unlock()
	}()
	return func() { cancel(); <-done }
}

// TestMultikernelRunAndHandOver runs the tank plant on the multikernel
// backend against the fake kernel: mkrt run plans the instance, formats
// its region in the instance's memory (through the /dev/mem stand-in),
// loads and starts it; the control program in the "second kernel" polls
// the real simulator and the bridge serves it. A structural apply starts a
// second instance on the standby CPU, clear of the running one's memory,
// which takes over across the two kernels' clocks; the old instance is
// halted and removed, and a stop leaves the kernel as it was.
func TestMultikernelRunAndHandOver(t *testing.T) {
	dir := t.TempDir()
	kernel, devmem := supervisortest.KexecFiles(t, dir, 0xc0000000)
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	if err := os.WriteFile(initrd, []byte("stand-in: the fake kernel boots nothing from it"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := multikerneltest.New(true, map[string]string{"/proc/cpuinfo": mkCPUInfo, "/proc/iomem": mkIOMem, "/proc/filesystems": "nodev\tsysfs\n"},
		multikerneltest.Baseline(multikerneltest.BaselineSpec{CPUs: []uint64{4, 6}, MemoryBase: 0x80000000, MemoryBytes: 0x40000000}))
	var p *testPlant
	kernels := &secondKernels{t: t, devmem: devmem, runs: map[string]error{}, configs: func(instance string) string {
		if n, ok := strings.CutPrefix(instance, p.name+"-"); ok {
			return filepath.Join(p.stateDir, "generation-"+n+".yaml")
		}
		return p.cfgPath
	}}
	k.Boot = kernels.boot
	p = newPlant(t, plantOptions{level: 2.0, sp: 2.0, standbyCPUs: "3", noRun: true,
		kexec: kexec.Host{FS: k, Sys: k, DevMem: devmem, TempDir: dir, Poll: 5 * time.Millisecond, BootTimeout: 5 * time.Second, HaltTimeout: 5 * time.Second,
			Log: slog.New(slog.DiscardHandler)},
		edit: func(cfg string) string {
			return replaceOnce(t, cfg,
				"backend: process", "backend: multikernel",
				`  cpus: "1"`+"\n", fmt.Sprintf("  cpus: \"2\"\n  memory: 256Mi\n  kernel:\n    image: %s\n    initrd: %s\n", kernel, initrd))
		}})
	p.start()

	st := p.status()
	if st.Backend != "multikernel" || !strings.Contains(p.ready.Region, "mem:") && !strings.Contains(p.ready.Region, "0x8fc00000") {
		t.Fatalf("backend %q, region %q", st.Backend, p.ready.Region)
	}
	if s, cmdline := k.Status(p.name); s != multikerneltest.StatusActive || !strings.Contains(cmdline, "mkrt.shm=phys:0x8fc00000,0x400000") {
		t.Fatalf("instance %s: %q, cmdline %q", p.name, s, cmdline)
	}
	eventually(t, 20*time.Second, "level good through the second kernel", func() (bool, string) {
		tv := p.tag("level")
		return tv.Quality == "good", fmt.Sprintf("%+v", tv)
	})

	res, err := p.apply(p.structuralChange(nil))
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	t.Logf("apply: %s", res.Message)
	fmt.Printf("multikernel hand-over (fake kernel): %s\n", res.Message)
	if !strings.Contains(res.Message, "on the standby CPUs 3") || !strings.Contains(res.Message, " 0 missed cycles") {
		t.Errorf("apply message %q", res.Message)
	}
	next := p.name + "-2"
	s2, cmdline2 := k.Status(next)
	if s2 != multikerneltest.StatusActive || !strings.Contains(cmdline2, "mkrt.take=phys:0x8fc00000,0x400000") || !strings.Contains(cmdline2, "mkrt.shm=phys:0x9fc00000,0x400000") {
		t.Fatalf("second instance %s: %q, cmdline %q", next, s2, cmdline2)
	}
	eventually(t, 10*time.Second, "the first instance halted and removed", func() (bool, string) {
		s, _ := k.Status(p.name)
		return s == "", k.State()
	})
	if st := p.status(); st.HandOver == nil || st.HandOver.Missed != 0 || st.HandOver.Mode != "driving" {
		t.Fatalf("status after the hand-over: %+v", st.HandOver)
	}
	eventually(t, 10*time.Second, "level good through the second instance", func() (bool, string) {
		tv := p.tag("level_filtered")
		return tv.Quality == "good", fmt.Sprintf("%+v", tv)
	})

	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := k.State(); st != "mounted=false baseline="+strconv.Itoa(len(multikerneltest.Baseline(multikerneltest.BaselineSpec{CPUs: []uint64{4, 6}, MemoryBase: 0x80000000, MemoryBytes: 0x40000000}))) {
		t.Errorf("kernel after the stop: %s", st)
	}
	if v := k.Violations(); len(v) > 0 {
		t.Errorf("argument layouts the kernel refuses: %v", v)
	}
	kernels.mu.Lock()
	defer kernels.mu.Unlock()
	for name, err := range kernels.runs {
		if err != nil {
			t.Errorf("control program of instance %s: %v", name, err)
		}
	}
	if len(kernels.runs) != 2 {
		t.Errorf("%d instances ran a control program, want 2", len(kernels.runs))
	}
}
