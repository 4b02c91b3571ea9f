package parker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/configs"
	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/parker"
	"github.com/mkrt/mkrt/supervisor/parker/parkertest"
	"github.com/mkrt/mkrt/supervisor/supervisortest"
)

const shmAddr = 0x3f000000

const iomem = `00100000-3effffff : System RAM
3f000000-3f3fffff : Reserved
3f400000-7fffffff : System RAM
`

type rig struct {
	k *parkertest.Kernel
	o parker.Options
}

func newRig(t *testing.T) *rig {
	t.Helper()
	dir := t.TempDir()
	kernel, devmem := supervisortest.KexecFiles(t, dir, shmAddr+4<<20)
	k := parkertest.New(true, 4, 1<<30, []string{"0000:03:00.0"}, map[string]string{"/proc/iomem": iomem})
	cfg := &configs.Config{Metadata: configs.Metadata{Name: "tank"}, Partition: configs.Partition{
		Backend: configs.BackendParker, CPUs: configs.CPUList{2, 3}, Memory: 256 << 20, SharedMemory: 4 << 20,
		NICs: []configs.NIC{{PCI: "03:00.0"}}, Kernel: configs.Kernel{Cmdline: "ip=dhcp"}}}
	r := &rig{k: k}
	r.o = parker.Options{Config: cfg, SharedMemory: shmAddr, Options: kexec.Options{Kernel: kernel,
		Host: kexec.Host{FS: k, Sys: k, DevMem: devmem, TempDir: dir, Poll: time.Millisecond, BootTimeout: time.Second, HaltTimeout: 200 * time.Millisecond},
		Halt: func(context.Context) error { k.Offline("tank"); return nil }}}
	return r
}

func (r *rig) partition(t *testing.T) *parker.Partition {
	t.Helper()
	p, err := parker.New(r.o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func ctx(t *testing.T) context.Context { return supervisortest.Context(t, 30*time.Second) }

const initial = "mounted=false loaded=false"

func TestLifecycle(t *testing.T) {
	r := newRig(t)
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.k.State(); s != "mounted=true loaded=true tank(cpus=[2 3] mem=268435456 devs=[0000:03:00.0] online=true)" {
		t.Errorf("state %s", s)
	}
	cmdline, _ := r.k.Loaded()
	for _, want := range []string{"parker=0x7f001000", "mkrt.shm=phys:0x3f000000,0x400000", "memmap=0x400000$0x3f000000", "ip=dhcp"} {
		if !strings.Contains(cmdline, want) {
			t.Errorf("cmdline %q lacks %q", cmdline, want)
		}
	}
	if v := r.k.Violations(); len(v) > 0 {
		t.Fatalf("layout violations: %v", v)
	}
	for _, c := range r.k.Calls() {
		if c.Syscall == "kexec_file_load" && c.Flags != kexec.FileNoInitramfs {
			t.Errorf("load flags %#x, want plain kexec_file_load with KEXEC_FILE_NO_INITRAMFS", c.Flags)
		}
		if c.Syscall == "mount" && (c.FSType != "parker" || c.Target != "/sys/fs/parker") {
			t.Errorf("mount %v", c)
		}
	}
	done := make(chan supervisor.Exit, 1)
	go func() {
		e, err := p.Wait(ctx(t))
		if err != nil {
			t.Error(err)
		}
		done <- e
	}()
	r.k.Offline("tank")
	if e := <-done; e.Code != 0 {
		t.Errorf("exit %v", e)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.k.State(); s != initial {
		t.Errorf("after stop: %s", s)
	}
}

func TestStopAsksTheExecutiveToHalt(t *testing.T) {
	r := newRig(t)
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if s := r.k.State(); s != initial {
		t.Errorf("after stop: %s", s)
	}
}

func TestStopWithoutHaltKeepsResources(t *testing.T) {
	r := newRig(t)
	r.o.Halt = func(context.Context) error { return nil } // the executive never goes offline
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	err := p.Stop(ctx(t))
	if !errors.Is(err, parker.ErrNoHalt) {
		t.Errorf("err = %v, want ErrNoHalt", err)
	}
	if !errors.Is(p.Kill(), parker.ErrNoHalt) {
		t.Error("Kill should say Parker cannot halt")
	}
}

func TestFailureAtEveryStep(t *testing.T) {
	dir := parkertest.Root + "/tank"
	steps := map[string]func(r *rig){
		"check":         func(r *rig) { r.o.SharedMemory = 0x50000000 }, // not reserved
		"mount":         func(r *rig) { r.k.Recorder.Fail("mount", syscall.EPERM) },
		"mkdir":         func(r *rig) { r.k.Fail("mkdir", dir, syscall.ENOMEM) },
		"assign":        func(r *rig) { r.k.Fail("write", dir+"/bind", syscall.EBUSY) },
		"shared-memory": func(r *rig) { r.o.DevMem = filepath.Join(r.o.TempDir, "missing") },
		"load":          func(r *rig) { r.k.Recorder.Fail("kexec_file_load", syscall.ENOEXEC) },
		"start":         func(r *rig) { r.k.Fail("write", dir+"/online", syscall.EINVAL) },
	}
	supervisortest.FailEachStep(t, (&parker.Partition{}).Steps(), func(t *testing.T, step string) (supervisor.Partition, func() string) {
		inject, ok := steps[step]
		if !ok {
			return nil, nil
		}
		r := newRig(t)
		inject(r)
		return r.partition(t), r.k.State
	})
}

func TestRFCErrors(t *testing.T) {
	r := newRig(t)
	p := r.partition(t)
	if err := p.Start(ctx(t)); err != nil {
		t.Fatal(err)
	}
	// A second entry may not take a CPU the first holds (EINVAL in the RFC).
	o := r.o
	o.Config = &configs.Config{Metadata: configs.Metadata{Name: "boiler"}, Partition: configs.Partition{CPUs: configs.CPUList{3}}}
	p2, _ := parker.New(o)
	if err := p2.Start(ctx(t)); !errors.Is(err, syscall.EINVAL) {
		t.Errorf("second entry on CPU 3: %v, want EINVAL", err)
	}
	if err := p.Stop(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestUnsupported(t *testing.T) {
	r := newRig(t)
	r.k = parkertest.New(false, 4, 1<<30, nil, map[string]string{"/proc/iomem": iomem, "/proc/filesystems": "nodev\tsysfs\n"})
	r.o.FS, r.o.Sys = r.k, r.k
	if err := r.partition(t).Start(ctx(t)); !errors.Is(err, parker.ErrUnsupported) {
		t.Errorf("err = %v", err)
	}
}
