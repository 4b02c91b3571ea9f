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

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/rtkernel/app"
	"github.com/mkrt/mkrt/rtkernel/executive"
	"github.com/mkrt/mkrt/rtkernel/pid1"
	"github.com/mkrt/mkrt/rtkernel/rt"
	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/wire"
	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/jailhouse/jailhousetest"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/multikernel/multikerneltest"
	"github.com/mkrt/mkrt/supervisor/parker/parkertest"
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
	// exited, when set, tells the fake kernel the instance's kernel went
	// down (a halted control program powers its kernel off).
	exited func(instance string)

	mu       sync.Mutex
	n        int
	runs     map[string]error  // instance -> how its control program ended
	cmdlines map[string]string // instance -> the command line it booted with
	overran  uint64            // overruns of the control programs that ended
}

// overrunsIn reads the first task's overruns from the heartbeat of the
// region at loc (0 when it cannot be read).
func overrunsIn(loc shm.Location) uint64 {
	reg, err := shm.Open(loc)
	if err != nil {
		return 0
	}
	defer reg.Close()
	r, err := shm.AttachReader(reg, nil, shm.ReaderOptions{})
	if err != nil {
		return 0
	}
	if o := r.Heartbeat().Overruns; len(o) > 0 {
		return o[0]
	}
	return 0
}

// checkMissed fails the test unless every cycle the hand-over reports
// missed is explained by an overrun of a stand-in control program: they
// run without real-time scheduling in the test process, and a stalled
// executive skips cycles with or without a hand-over. Call it once the
// old program has ended.
func (s *secondKernels) checkMissed(missed uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if missed > s.overran {
		s.t.Errorf("%d missed cycles with %d overruns of the stand-in control programs", missed, s.overran)
	} else if missed > 0 {
		s.t.Logf("%d missed cycles, explained by %d overruns of the stand-in control programs (this machine is loaded)", missed, s.overran)
	}
}

func (s *secondKernels) cmdline(instance string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmdlines[instance]
}

func (s *secondKernels) boot(name, cmdline string) (halt func()) {
	s.mu.Lock()
	s.n++
	k := s.n
	s.cmdlines[name] = cmdline
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
		n := overrunsIn(o.Shm)
		s.mu.Lock()
		s.runs[name] = err
		s.overran += n
		s.mu.Unlock()
		if s.exited != nil {
			s.exited(name)
		}
	}()
	return func() { cancel(); <-done }
}

func newSecondKernels(t *testing.T, devmem string, p **testPlant) *secondKernels {
	return &secondKernels{t: t, devmem: devmem, runs: map[string]error{}, cmdlines: map[string]string{}, configs: func(instance string) string {
		if n, ok := strings.CutPrefix(instance, (*p).name+"-"); ok {
			return filepath.Join((*p).stateDir, "generation-"+n+".yaml")
		}
		return (*p).cfgPath
	}}
}

// check reports control programs that ended with an error, and how many ran.
func (s *secondKernels) check(want int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, err := range s.runs {
		if err != nil {
			s.t.Errorf("control program of %s: %v", name, err)
		}
	}
	if len(s.runs) != want {
		s.t.Errorf("%d second kernels ran a control program, want %d", len(s.runs), want)
	}
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
	kernels := newSecondKernels(t, devmem, &p)
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
	if st.Backend != "multikernel" || !strings.Contains(p.ready.Region, "0x8fc00000") {
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
	if !strings.Contains(res.Message, "on the standby CPUs 3") {
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
	st = p.status()
	if st.HandOver == nil || st.HandOver.Mode != wire.Driving || st.HandOver.Carried != 3 {
		t.Fatalf("status after the hand-over: %+v", st.HandOver)
	}
	kernels.checkMissed(st.HandOver.Missed)
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
	kernels.check(2)
}

// TestParkerRunAndHandOver runs the tank plant on the Parker backend
// against the fake boot kernel: the shared region is the first memmap=
// reservation on the host's command line, the secondary's control program
// runs on its own clock over it, and a structural apply starts a second
// secondary on the standby CPU over the second reservation. Parker cannot
// halt a secondary: the old control program halts on request and its
// kernel goes offline by itself, after which its entry is removed.
func TestParkerRunAndHandOver(t *testing.T) {
	dir := t.TempDir()
	kernel, devmem := supervisortest.KexecFiles(t, dir, 0xc0000000)
	initrd := filepath.Join(dir, "initramfs.cpio.gz")
	if err := os.WriteFile(initrd, []byte("stand-in: the fake kernel boots nothing from it"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := parkertest.New(true, 4, 1<<30, nil, map[string]string{
		"/proc/filesystems": "nodev\tsysfs\nnodev\tparker\n",
		"/proc/iomem":       "00100000-9fbfffff : System RAM\n9fc00000-a03fffff : Reserved\n",
		"/proc/cmdline":     "BOOT_IMAGE=/vmlinuz ro parker_cma=1G memmap=4M$0x9fc00000 memmap=4M$0xa0000000 quiet",
	})
	var p *testPlant
	kernels := newSecondKernels(t, devmem, &p)
	kernels.exited = k.Offline
	k.Boot = func(name, cmdline string) { kernels.boot(name, cmdline) }
	p = newPlant(t, plantOptions{level: 2.0, sp: 2.0, standbyCPUs: "3", noRun: true,
		kexec: kexec.Host{FS: k, Sys: k, DevMem: devmem, TempDir: dir, Poll: 5 * time.Millisecond, BootTimeout: 5 * time.Second, HaltTimeout: 5 * time.Second,
			Log: slog.New(slog.DiscardHandler)},
		edit: func(cfg string) string {
			return replaceOnce(t, cfg,
				"backend: process", "backend: parker",
				`  cpus: "1"`+"\n", fmt.Sprintf("  cpus: \"2\"\n  memory: 256Mi\n  kernel:\n    image: %s\n    initrd: %s\n", kernel, initrd))
		}})
	p.start()

	st := p.status()
	if st.Backend != "parker" || !strings.Contains(p.ready.Region, "0x9fc00000") {
		t.Fatalf("backend %q, region %q", st.Backend, p.ready.Region)
	}
	if img, _ := k.Loaded(); !strings.Contains(img, "mkrt.shm=phys:0x9fc00000,0x400000") {
		t.Fatalf("loaded image's command line %q", img)
	}
	eventually(t, 20*time.Second, "level good through the secondary kernel", func() (bool, string) {
		tv := p.tag("level")
		return tv.Quality == "good", fmt.Sprintf("%+v", tv)
	})

	res, err := p.apply(p.structuralChange(nil))
	if err != nil || !res.Applied {
		t.Fatalf("apply: %+v, %v", res, err)
	}
	t.Logf("apply: %s", res.Message)
	fmt.Printf("parker hand-over (fake kernel): %s\n", res.Message)
	if !strings.Contains(res.Message, "on the standby CPUs 3") {
		t.Errorf("apply message %q", res.Message)
	}
	if c := kernels.cmdline(p.name + "-2"); !strings.Contains(c, "mkrt.shm=phys:0xa0000000,0x400000") || !strings.Contains(c, "mkrt.take=phys:0x9fc00000,0x400000") {
		t.Fatalf("second secondary's command line %q", c)
	}
	eventually(t, 10*time.Second, "the first secondary offline and its entry removed", func() (bool, string) {
		st := k.State()
		return !strings.Contains(st, p.name+"(") && strings.Contains(st, p.name+"-2("), st
	})
	st = p.status()
	if st.HandOver == nil || st.HandOver.Mode != wire.Driving || st.HandOver.Carried != 3 {
		t.Fatalf("status after the hand-over: %+v", st.HandOver)
	}
	kernels.checkMissed(st.HandOver.Missed)
	eventually(t, 10*time.Second, "level good through the second secondary", func() (bool, string) {
		tv := p.tag("level_filtered")
		return tv.Quality == "good", fmt.Sprintf("%+v", tv)
	})
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st := k.State(); strings.Contains(st, p.name) || strings.Contains(st, "mounted=true") {
		t.Errorf("boot kernel after the stop: %s", st)
	}
	if v := k.Violations(); len(v) > 0 {
		t.Errorf("argument layouts the kernel refuses: %v", v)
	}
	kernels.check(2)
}

// TestJailhouseRun runs the tank plant in a Jailhouse cell against the fake
// hypervisor: mkrt run plans the cell in the host's memmap= reservation,
// formats the ivshmem read-write section through the /dev/mem stand-in,
// creates, loads and starts the cell; the control program standing in for
// the cell's Linux runs over that section. A structural change is refused
// with the reason, and a stop halts the control program, which shuts its
// cell down, and destroys the cell, leaving the hypervisor as it was.
func TestJailhouseRun(t *testing.T) {
	dir := t.TempDir()
	_, devmem := supervisortest.KexecFiles(t, dir, 0x60000000)
	files := map[string][]byte{"bzImage": jailhousetest.BzImage(4 << 20), "initramfs.cpio.gz": make([]byte, 1<<20), "linux-loader.bin": []byte("loader")}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev := &jailhousetest.Device{}
	dev.SetEnabled(true) // the administrator enabled the hypervisor
	host := map[string]string{"/proc/cmdline": "BOOT_IMAGE=/vmlinuz ro intel_iommu=off memmap=512M$0x40000000 quiet"}
	var p *testPlant
	kernels := newSecondKernels(t, devmem, &p)
	kernels.exited = func(name string) { dev.SetState(name, "shut down") }
	dev.Boot = func(c *jailhouse.Cell) {
		cfg, err := configs.Load(p.cfgPath)
		if err != nil {
			t.Error(err)
			return
		}
		plan, err := jailhouse.Generate(cfg, jailhouse.Options{MemoryBase: 0x40000000})
		if err != nil {
			t.Error(err)
			return
		}
		kernels.boot(c.Name, fmt.Sprintf("console=ttyS0 mkrt.shm=phys:%#x,%#x", plan.Shm, plan.ShmSize))
	}
	p = newPlant(t, plantOptions{level: 2.0, sp: 2.0, noRun: true,
		kexec: kexec.Host{FS: supervisortest.NewFS(host), DevMem: devmem},
		jailhouse: jailhouse.Host{Open: func() (jailhouse.Device, error) { return dev, nil }, Sys: dev.Sysfs(),
			Loader: filepath.Join(dir, "linux-loader.bin")},
		edit: func(cfg string) string {
			return replaceOnce(t, cfg,
				"backend: process", "backend: jailhouse",
				`  cpus: "1"`+"\n", fmt.Sprintf("  cpus: \"1\"\n  memory: 256Mi\n  kernel:\n    image: %s\n    initrd: %s\n",
					filepath.Join(dir, "bzImage"), filepath.Join(dir, "initramfs.cpio.gz")))
		}})
	p.start()

	if st := p.status(); st.Backend != "jailhouse" || !strings.Contains(p.ready.Region, "mem:") {
		t.Fatalf("backend %q, region %q", st.Backend, p.ready.Region)
	}
	if c := dev.Cell(p.name); c == nil || c.State != "running" {
		t.Fatalf("cell %s: %+v", p.name, c)
	}
	eventually(t, 20*time.Second, "level good through the cell", func() (bool, string) {
		tv := p.tag("level")
		return tv.Quality == "good", fmt.Sprintf("%+v", tv)
	})
	if res, err := p.apply(p.structuralChange(nil)); err == nil || res.Applied || !strings.Contains(err.Error(), "does not hand over on jailhouse") {
		t.Errorf("structural apply on jailhouse = %+v, %v; want refused with the reason", res, err)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if c := dev.Cell(p.name); c != nil || !dev.Enabled() {
		t.Errorf("after the stop: cell %+v, hypervisor enabled %v; want no cell, still enabled", c, dev.Enabled())
	}
	names := strings.Join(dev.Names(), ",")
	if !strings.Contains(names, "JAILHOUSE_CELL_CREATE,JAILHOUSE_CELL_LOAD,JAILHOUSE_CELL_START") || !strings.HasSuffix(names, "JAILHOUSE_CELL_DESTROY") {
		t.Errorf("requests %s", names)
	}
	kernels.check(1)
}
