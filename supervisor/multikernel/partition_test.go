package multikernel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/multikernel"
	"github.com/mkrt/mkrt/supervisor/multikernel/multikerneltest"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

var baselineSpec = multikerneltest.BaselineSpec{
	CPUs: []uint64{4, 6}, MemoryBase: 0x80000000, MemoryBytes: 0x40000000,
	Devices: []multikerneltest.Device{{Label: "eth0", PCI: "0000:01:00.0"}},
}

type rig struct {
	k      *multikerneltest.Kernel
	o      multikernel.Options
	devmem string
}

func newRig(t *testing.T, supported bool) *rig {
	t.Helper()
	dir := t.TempDir()
	// The /dev/mem file covers the pool.
	kernel, devmem := supervisortest.KexecFiles(t, dir, 0xc0000000)
	k := multikerneltest.New(supported, map[string]string{"/proc/cpuinfo": cpuinfo, "/proc/iomem": iomem, "/proc/filesystems": "nodev\tsysfs\n"}, nil)
	return &rig{k: k, devmem: devmem, o: multikernel.Options{
		Config: config(), Baseline: multikerneltest.Baseline(baselineSpec), Options: kexec.Options{Kernel: kernel,
			Host: kexec.Host{FS: k, Sys: k, DevMem: devmem, TempDir: dir, Poll: time.Millisecond, BootTimeout: time.Second, HaltTimeout: time.Second}},
	}}
}

func (r *rig) partition(t *testing.T) *multikernel.Partition {
	t.Helper()
	p, err := multikernel.New(r.o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctx(t *testing.T) context.Context { return supervisortest.Context(t, 30*time.Second) }

// initial is the fake's state before any start: the baseline the first
// start writes stays (it is the host's, written once).
const initial = "mounted=false baseline=0"

func TestLifecycle(t *testing.T) {
	r := newRig(t, true)
	// A stale header at the shared region must not survive the start.
	f, _ := os.OpenFile(r.devmem, os.O_WRONLY, 0)
	f.WriteAt([]byte("stale header"), 0x8fc00000)
	f.Close()
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	plan := p.Plan()
	st, cmdline := r.k.Status("tank")
	if st != multikerneltest.StatusActive || !strings.Contains(cmdline, "mkrt.shm=phys:0x8fc00000,0x400000") {
		t.Fatalf("status %q cmdline %q", st, cmdline)
	}
	if v := r.k.Violations(); len(v) > 0 {
		t.Fatalf("argument layouts the kernel refuses: %v", v)
	}
	var calls []string
	for _, c := range r.k.Calls() {
		calls = append(calls, c.Syscall)
		switch c.Syscall {
		case "mount":
			if c.Source != "none" || c.Target != "/sys/fs/multikernel" || c.FSType != "multikernel" || c.MountFlags != 0 {
				t.Errorf("mount %v", c)
			}
		case "kexec_file_load":
			if want := kexec.Multikernel | kexec.MKID(plan.ID) | kexec.FileNoInitramfs; c.Flags != want || c.ID() != plan.ID {
				t.Errorf("load flags %#x, want %#x", c.Flags, want)
			}
			if c.CmdlineString() != plan.Cmdline || int(c.CmdlineLen) != len(plan.Cmdline)+1 {
				t.Errorf("cmdline %q (len %d)", c.CmdlineString(), c.CmdlineLen)
			}
		case "reboot":
			if c.Cmd != kexec.CmdStart || c.ID() != plan.ID {
				t.Errorf("reboot %v", c)
			}
		}
	}
	if strings.Join(calls, ",") != "mount,kexec_file_load,reboot" {
		t.Errorf("calls %v", calls)
	}
	got := make([]byte, 64)
	if f, err := os.Open(r.devmem); err == nil {
		f.ReadAt(got, 0x8fc00000)
		f.Close()
	}
	if strings.Contains(string(got), "stale") {
		t.Error("the shared region was not cleared")
	}
	if loc := p.SharedMemory(); loc.Addr != 0x8fc00000 || loc.Size != 4<<20 || loc.Path != r.devmem {
		t.Errorf("shared memory %v", loc)
	}
	in := p.Info()
	if in.CPUs != "2-3" || len(in.NICs) != 1 || in.NICs[0] != "eth0" || len(in.Degradations) != 1 {
		t.Errorf("info %+v", in)
	}

	done := make(chan supervisor.Exit, 1)
	go func() {
		e, err := p.Wait(ctx(t))
		if err != nil {
			t.Error(err)
		}
		done <- e
	}()
	r.k.Exit("tank", multikerneltest.StatusFailed)
	if e := <-done; e.Code != -1 || e.Signal != "failed" {
		t.Errorf("exit %v", e)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.k.State(); s != "mounted=false baseline="+strconv.Itoa(len(r.o.Baseline)) {
		t.Errorf("after stop: %s", s)
	}
	// A second start on the same partition works from where the first left.
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.k.State(); s != "mounted=false baseline="+strconv.Itoa(len(r.o.Baseline)) {
		t.Errorf("after second stop: %s", s)
	}
}

func TestStopHaltsActiveInstance(t *testing.T) {
	r := newRig(t, true)
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	halted := false
	r.o.Halt = nil
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	for _, c := range r.k.Calls() {
		if c.Syscall == "reboot" && c.Cmd == kexec.CmdHalt {
			halted = true
		}
	}
	if !halted {
		t.Error("Stop did not halt the instance")
	}
	if r.k.Mounted() {
		t.Error("kernfs left mounted")
	}
}

func TestKillForceHalts(t *testing.T) {
	r := newRig(t, true)
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.k.Status("tank"); st != multikerneltest.StatusReady {
		t.Errorf("after kill: %s", st)
	}
	e, err := p.Wait(ctx(t))
	if err != nil || e.Code != 0 {
		t.Errorf("wait after kill: %v %v", e, err)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestFailureAtEveryStep injects a failure into each step and checks the
// fake kernel ends exactly as it began, with no argument layout refused.
func TestFailureAtEveryStep(t *testing.T) {
	steps := map[string]func(r *rig){
		"check":           func(r *rig) { r.k.Fail("read", "/proc/filesystems", syscall.EIO) },
		"mount":           func(r *rig) { r.k.Recorder.Fail("mount", syscall.EPERM) },
		"baseline":        func(r *rig) { r.k.Fail("write", multikerneltest.Path("device_tree"), syscall.EINVAL) },
		"create-instance": func(r *rig) { r.k.Fail("write", multikerneltest.Path("overlays", "new"), syscall.EBUSY) },
		"shared-memory":   func(r *rig) { r.o.DevMem = filepath.Join(filepath.Dir(r.devmem), "missing") },
		"load":            func(r *rig) { r.k.Recorder.Fail("kexec_file_load", syscall.ENOEXEC) },
		"start":           func(r *rig) { r.k.Recorder.Fail("reboot", syscall.EINVAL) },
	}
	supervisortest.FailEachStep(t, (&multikernel.Partition{}).Steps(), func(t *testing.T, step string) (supervisor.Partition, func() string) {
		inject, ok := steps[step]
		if !ok {
			return nil, nil
		}
		r := newRig(t, true)
		r.o.Baseline = nil
		r.k = multikerneltest.New(true, map[string]string{"/proc/cpuinfo": cpuinfo, "/proc/iomem": iomem, "/proc/filesystems": ""},
			multikerneltest.Baseline(baselineSpec))
		r.o.FS, r.o.Sys = r.k, r.k
		if step == "baseline" {
			r.k = multikerneltest.New(true, map[string]string{"/proc/cpuinfo": cpuinfo, "/proc/iomem": iomem}, nil)
			r.o.FS, r.o.Sys, r.o.Baseline = r.k, r.k, multikerneltest.Baseline(baselineSpec)
		}
		inject(r)
		return r.partition(t), func() string { return fmt.Sprintf("%s violations=%q", r.k.State(), r.k.Violations()) }
	})
}

func TestUnsupportedKernel(t *testing.T) {
	r := newRig(t, false)
	err := r.partition(t).Start(ctx(t))
	if !errors.Is(err, multikernel.ErrUnsupported) || !strings.Contains(err.Error(), "kerf") {
		t.Errorf("err = %v", err)
	}
}

func TestUnprivileged(t *testing.T) {
	r := newRig(t, true)
	r.k.Recorder.Unprivileged = true
	err := r.partition(t).Start(ctx(t))
	var ke *kexec.Error
	if !errors.Is(err, syscall.EPERM) || !errors.As(err, &ke) || ke.Syscall != "mount" {
		t.Errorf("err = %v", err)
	}
	if r.k.State() != initial {
		t.Errorf("state %s", r.k.State())
	}
}

func TestSecondInstanceSameCPU(t *testing.T) {
	r := newRig(t, true)
	if err := r.partition(t).Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	o := r.o
	o.Config = config()
	o.Config.Metadata.Name = "boiler"
	o.Config.Partition.Memory = 128 << 20
	o.Config.Partition.NICs = nil
	p2, _ := multikernel.New(o)
	err := p2.Start(ctx(t))
	if !errors.Is(err, syscall.EBUSY) {
		t.Errorf("second instance on the same CPUs: %v, want EBUSY", err)
	}
}

// A hand-over runs a second instance beside the first: another name, its
// own CPU, memory placed clear of the first's, the kernfs mount shared. The
// first to stop leaves the mount to the second, which unmounts it.
func TestSecondInstanceBesideTheFirst(t *testing.T) {
	r := newRig(t, true)
	one := config()
	one.Partition.CPUs, one.Partition.NICs = []int{2}, nil
	r.o.Config = one
	first := r.partition(t)
	if err := first.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	p1 := first.Plan()
	two := config()
	two.Partition.CPUs, two.Partition.NICs = []int{3}, nil
	o := r.o
	o.Config, o.Name = two, "tank-2"
	o.Beside = []multikernel.Range{{Base: p1.MemoryBase, Bytes: p1.MemoryBytes}}
	second, err := multikernel.New(o)
	if err != nil {
		t.Fatal(err)
	}
	loc, err := second.Locate()
	if err != nil {
		t.Fatal(err)
	}
	if want := p1.MemoryBase + p1.MemoryBytes + p1.MemoryBytes - p1.ShmBytes; loc.Addr != want {
		t.Fatalf("second region at %#x, want %#x (right after the first instance's memory)", loc.Addr, want)
	}
	if err := second.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if p2 := second.Plan(); p2.Name != "tank-2" || p2.ID == p1.ID || p2.MemoryBase != p1.MemoryBase+p1.MemoryBytes {
		t.Fatalf("second plan %+v beside %+v", p2, p1)
	}
	if err := first.Stop(ctx(t)); err != nil {
		t.Fatalf("stopping the first: %v", err)
	}
	if !r.k.Mounted() {
		t.Fatal("the first instance unmounted the kernfs the second still uses")
	}
	if err := second.Stop(ctx(t)); err != nil {
		t.Fatalf("stopping the second: %v", err)
	}
	if st := r.k.State(); r.k.Mounted() || strings.Contains(st, "tank") {
		t.Fatalf("after both stopped: %s", st)
	}
}

// A pool that changed between Locate and the start would move the region
// the caller formatted: the start refuses and unwinds. Here /proc/iomem
// gives the pool at 2 GiB, but the baseline the start writes puts it at
// 2.25 GiB.
func TestStartRefusesAMovedRegion(t *testing.T) {
	r := newRig(t, true)
	spec := baselineSpec
	spec.MemoryBase, spec.MemoryBytes = 0x90000000, 0x30000000
	r.o.Baseline = multikerneltest.Baseline(spec)
	p := r.partition(t)
	loc, err := p.Locate()
	if err != nil || loc.Addr != 0x8fc00000 {
		t.Fatalf("Locate = %v, %v", loc, err)
	}
	err = p.Start(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "moved from 0x8fc00000") {
		t.Fatalf("start = %v; want the moved region refused", err)
	}
	if st := r.k.State(); r.k.Mounted() || strings.Contains(st, "tank") {
		t.Fatalf("after the refused start: %s", st)
	}
}
