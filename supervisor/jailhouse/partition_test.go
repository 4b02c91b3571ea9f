package jailhouse_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
	"github.com/mkrt/mkrt/supervisor/jailhouse/jailhousetest"
)

type rig struct {
	dev  *jailhousetest.Device
	part *jailhouse.Partition
	plan *jailhouse.Plan
}

func newRig(t *testing.T, enabled bool) *rig {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"loader":  []byte("linux-loader"),
		"bzImage": fakeBzImage(4 << 20),
		"initrd":  make([]byte, 1<<20),
		"sys":     jailhousetest.SystemConfig(),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dev := &jailhousetest.Device{}
	dev.SetEnabled(enabled)
	plan := tankPlan(t)
	p, err := jailhouse.NewPartition(jailhouse.PartitionOptions{
		Plan:   plan,
		Loader: filepath.Join(dir, "loader"), Kernel: filepath.Join(dir, "bzImage"), Initrd: filepath.Join(dir, "initrd"),
		Cmdline:      "console=ttyS0 mkrt.shm=ivshmem",
		SystemConfig: filepath.Join(dir, "sys"),
		Open:         func() (jailhouse.Device, error) { return dev, nil },
		Sys:          dev.Sysfs(),
		Poll:         time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{dev: dev, part: p, plan: plan}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestBringUpAndStop(t *testing.T) {
	r := newRig(t, false)
	ctx := ctxT(t)
	if err := r.part.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"JAILHOUSE_ENABLE", "JAILHOUSE_CELL_CREATE", "JAILHOUSE_CELL_LOAD", "JAILHOUSE_CELL_START"}
	if got := r.dev.Names(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	calls := r.dev.Calls()
	cell, _ := jailhouse.Encode(r.plan.Cell)
	if !slices.Equal(calls[1].Buffers[0], cell) {
		t.Error("CELL_CREATE did not point at the encoded cell config")
	}
	if c := r.dev.Cell("tank-level"); c == nil || c.State != "running" || len(c.Images) != 4 {
		t.Fatalf("cell %+v", c)
	}
	if i := r.part.Info(); i.CPUs != "1" || i.CPUSet != "jailhouse cell" {
		t.Errorf("info %+v", i)
	}
	if err := r.part.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "JAILHOUSE_CELL_DESTROY", "JAILHOUSE_DISABLE")
	if got := r.dev.Names(); !slices.Equal(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	if r.dev.Enabled() || r.dev.Closed() != 1 {
		t.Errorf("enabled %v closed %d", r.dev.Enabled(), r.dev.Closed())
	}
	e, err := r.part.Wait(ctx)
	if err != nil || e.Signal != "stopped" {
		t.Errorf("wait after stop: %v %v", e, err)
	}
}

// TestAlreadyEnabled leaves a hypervisor enabled by someone else enabled.
func TestAlreadyEnabled(t *testing.T) {
	r := newRig(t, true)
	ctx := ctxT(t)
	if err := r.part.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.part.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"JAILHOUSE_CELL_CREATE", "JAILHOUSE_CELL_LOAD", "JAILHOUSE_CELL_START", "JAILHOUSE_CELL_DESTROY"}
	if got := r.dev.Names(); !slices.Equal(got, want) || !r.dev.Enabled() {
		t.Fatalf("calls %v, enabled %v", got, r.dev.Enabled())
	}
}

// TestFailureAtEveryStep injects a failure into each ioctl in turn: the
// step's errno comes back and everything done before is undone.
func TestFailureAtEveryStep(t *testing.T) {
	steps := []struct {
		cmd  uint32
		want []string
	}{
		{jailhouse.IoctlEnable, []string{"JAILHOUSE_ENABLE!"}},
		{jailhouse.IoctlCellCreate, []string{"JAILHOUSE_ENABLE", "JAILHOUSE_CELL_CREATE!", "JAILHOUSE_DISABLE"}},
		{jailhouse.IoctlCellLoad, []string{"JAILHOUSE_ENABLE", "JAILHOUSE_CELL_CREATE", "JAILHOUSE_CELL_LOAD!", "JAILHOUSE_CELL_DESTROY", "JAILHOUSE_DISABLE"}},
		{jailhouse.IoctlCellStart, []string{"JAILHOUSE_ENABLE", "JAILHOUSE_CELL_CREATE", "JAILHOUSE_CELL_LOAD", "JAILHOUSE_CELL_START!", "JAILHOUSE_CELL_DESTROY", "JAILHOUSE_DISABLE"}},
	}
	for _, s := range steps {
		t.Run(jailhouse.IoctlName(s.cmd), func(t *testing.T) {
			r := newRig(t, false)
			r.dev.Fail = map[uint32]syscall.Errno{s.cmd: syscall.EIO}
			err := r.part.Start(ctxT(t))
			var ie *jailhouse.IoctlError
			if !errors.Is(err, syscall.EIO) || !errors.As(err, &ie) || ie.Cmd != s.cmd {
				t.Fatalf("err %v", err)
			}
			if got := r.dev.Names(); !slices.Equal(got, s.want) {
				t.Fatalf("calls %v, want %v", got, s.want)
			}
			if r.dev.Enabled() || r.dev.Cell("tank-level") != nil || r.dev.Closed() != 1 {
				t.Errorf("not unwound: enabled %v, cell %v, closed %d", r.dev.Enabled(), r.dev.Cell("tank-level"), r.dev.Closed())
			}
		})
	}
	t.Run("open", func(t *testing.T) {
		r := newRig(t, false)
		p, _ := jailhouse.NewPartition(jailhouse.PartitionOptions{Plan: r.plan, Open: func() (jailhouse.Device, error) { return nil, jailhouse.ErrNoDriver }, Sys: r.dev.Sysfs()})
		if err := p.Start(ctxT(t)); !errors.Is(err, jailhouse.ErrNoDriver) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("kernel file", func(t *testing.T) {
		r := newRig(t, false)
		p, _ := jailhouse.NewPartition(jailhouse.PartitionOptions{Plan: r.plan, Kernel: "/nonexistent", Loader: "/nonexistent", Initrd: "/nonexistent",
			SystemConfig: "", Open: func() (jailhouse.Device, error) { return r.dev, nil }, Sys: r.dev.Sysfs()})
		r.dev.SetEnabled(true)
		if err := p.Start(ctxT(t)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("err %v", err)
		}
		if got := r.dev.Names(); !slices.Equal(got, []string{"JAILHOUSE_CELL_CREATE", "JAILHOUSE_CELL_DESTROY"}) {
			t.Fatalf("calls %v", got)
		}
	})
	t.Run("not enabled, no system config", func(t *testing.T) {
		r := newRig(t, false)
		p, _ := jailhouse.NewPartition(jailhouse.PartitionOptions{Plan: r.plan, Open: func() (jailhouse.Device, error) { return r.dev, nil }, Sys: r.dev.Sysfs()})
		if err := p.Start(ctxT(t)); err == nil || len(r.dev.Calls()) != 0 || r.dev.Closed() != 1 {
			t.Fatalf("err %v, calls %v", err, r.dev.Names())
		}
	})
}

func TestWaitSeesCellEnd(t *testing.T) {
	for state, code := range map[string]int{"shut down": 0, "failed": -1} {
		r := newRig(t, true)
		ctx := ctxT(t)
		if err := r.part.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.dev.SetState("tank-level", state); err != nil {
			t.Fatal(err)
		}
		e, err := r.part.Wait(ctx)
		if err != nil || e.Code != code {
			t.Errorf("%s: exit %v, %v", state, e, err)
		}
		if err := r.part.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := newRig(t, true)
	ctx := ctxT(t)
	if err := r.part.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.part.Kill(); err != nil {
		t.Fatal(err)
	}
	if e, err := r.part.Wait(ctx); err != nil || e.Signal != "cell destroyed" {
		t.Errorf("after kill: %v %v", e, err)
	}
}

func TestStopAsksHaltFirst(t *testing.T) {
	r := newRig(t, true)
	ctx := ctxT(t)
	halted := false
	p, _ := jailhouse.NewPartition(jailhouse.PartitionOptions{
		Plan: r.plan, Loader: "x", Kernel: "y", Initrd: "z",
		ReadFile: func(name string) ([]byte, error) {
			if name == "y" {
				return fakeBzImage(1 << 20), nil
			}
			return []byte{1}, nil
		},
		Open: func() (jailhouse.Device, error) { return r.dev, nil }, Sys: r.dev.Sysfs(), Poll: time.Millisecond,
		Halt: func(context.Context) error { halted = true; return r.dev.SetState("tank-level", "shut down") },
	})
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(ctx); err != nil || !halted {
		t.Fatalf("stop %v halted %v", err, halted)
	}
	if e, _ := p.Wait(ctx); e.Code != 0 {
		t.Errorf("exit %v, want a clean shut down", e)
	}
}

// TestFakeStateMachine checks the fake refuses what the driver refuses.
func TestFakeStateMachine(t *testing.T) {
	d := &jailhousetest.Device{}
	cell, _ := jailhouse.Encode(tankPlan(t).Cell)
	errno := func(err error) syscall.Errno {
		var e syscall.Errno
		errors.As(err, &e)
		return e
	}
	check := func(what string, err error, want syscall.Errno) {
		t.Helper()
		if errno(err) != want {
			t.Errorf("%s: %v, want %v", what, err, want)
		}
	}
	check("create while disabled", d.Ioctl(jailhouse.CellCreate(cell)), syscall.EINVAL)
	check("disable while disabled", d.Ioctl(jailhouse.Disable()), syscall.EINVAL)
	check("enable with a cell config", d.Ioctl(jailhouse.Enable(cell)), syscall.EINVAL)
	check("enable", d.Ioctl(jailhouse.Enable(jailhousetest.SystemConfig())), 0)
	check("enable twice", d.Ioctl(jailhouse.Enable(jailhousetest.SystemConfig())), syscall.EBUSY)
	bad := append([]byte(nil), cell...)
	bad[6] = 13
	check("create bad revision", d.Ioctl(jailhouse.CellCreate(bad)), syscall.EINVAL)
	bad[6], bad[0] = 12, 'X'
	check("create bad signature", d.Ioctl(jailhouse.CellCreate(bad)), syscall.EINVAL)
	short := jailhouse.CellCreate(cell)
	short.Arg[8]--
	check("create with a wrong size", d.Ioctl(short), syscall.EFAULT)
	check("load unknown", d.Ioctl(jailhouse.CellLoad("tank-level", nil)), syscall.ENOENT)
	check("create", d.Ioctl(jailhouse.CellCreate(cell)), 0)
	check("create twice", d.Ioctl(jailhouse.CellCreate(cell)), syscall.EEXIST)
	other := tankPlan(t).Cell
	other.Name = "other"
	oc, _ := jailhouse.Encode(other)
	check("create on busy CPUs", d.Ioctl(jailhouse.CellCreate(oc)), syscall.EBUSY)
	check("start before load", d.Ioctl(jailhouse.CellStart("tank-level")), syscall.EINVAL)
	check("load outside RAM", d.Ioctl(jailhouse.CellLoad("tank-level", []jailhouse.Image{{Data: []byte{1}, Target: 0x4a000000}})), syscall.EINVAL)
	check("load", d.Ioctl(jailhouse.CellLoad("tank-level", []jailhouse.Image{{Data: []byte{1}, Target: 0xf0000}})), 0)
	check("start", d.Ioctl(jailhouse.CellStart("tank-level")), 0)
	check("destroy unknown", d.Ioctl(jailhouse.CellDestroy("nope")), syscall.ENOENT)
	check("destroy", d.Ioctl(jailhouse.CellDestroy("tank-level")), 0)
	check("start destroyed", d.Ioctl(jailhouse.CellStart("tank-level")), syscall.ENOENT)
	check("unknown ioctl", d.Ioctl(jailhouse.Request{Cmd: 0x1234}), syscall.ENOTTY)
	check("disable", d.Ioctl(jailhouse.Disable()), 0)
}

// The hypervisor console is copied into the console ring while the cell
// runs, each line once, also after the console's own ring has wrapped.
func TestConsole(t *testing.T) {
	r := newRig(t, true)
	r.dev.Console = "Initializing Jailhouse hypervisor v0.12\n"
	ctx := ctxT(t)
	if err := r.part.Start(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"Initializing Jailhouse hypervisor v0.12"}
	for i := range 100 { // 100 lines of 28 bytes wrap the 2 KiB console
		line := fmt.Sprintf("cell tank-level: line %06d", i)
		r.dev.Print(line + "\n")
		want = append(want, line)
		if i%10 == 9 { // let the watch see each tenth of it
			waitFor(t, func() bool { got := r.part.Console(); return len(got) > 0 && got[len(got)-1] == line })
		}
	}
	if err := r.part.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.part.Console(); !slices.Equal(got, want) {
		t.Fatalf("console %q\nwant %q", got, want)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(time.Millisecond)
	}
}
