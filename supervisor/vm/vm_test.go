package vm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor"
	"github.com/mkrt/mkrt/supervisor/image"
	"github.com/mkrt/mkrt/supervisor/vm/vmtest"
)

func TestArgs(t *testing.T) {
	c := Config{Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0", ShmPath: "/dev/shm/a,b", ShmSize: 4 << 20,
		NIC: NIC{Kind: "tap", Tap: "mkrt0", MAC: "52:54:00:00:00:01"}, Accel: "tcg", QMP: "/run/q.sock", Events: "/run/e.sock"}
	args, err := c.Args()
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-kernel /k", "-initrd /i", "-append console=ttyS0", "-accel tcg,thread=multi", "-smp 2", "-m 256", "-no-reboot",
		"memory-backend-file,id=mkrtshm,share=on,mem-path=/dev/shm/a,,b,size=4194304", "ivshmem-plain,memdev=mkrtshm",
		"tap,id=nic0,ifname=mkrt0,script=no,downscript=no", "virtio-net-pci,netdev=nic0,mac=52:54:00:00:00:01",
		"-qmp unix:/run/q.sock,server=on,wait=off",
		// The guest's watchdog pauses it when it fires; the events come on
		// a second monitor.
		"-device i6300esb -action watchdog=pause",
		"-chardev socket,id=mkrtevents,path=/run/e.sock,server=on,wait=off -mon chardev=mkrtevents,mode=control",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	c.Accel = "kvm"
	c.NIC = NIC{Kind: "vfio", PCI: "0000:03:00.0"}
	// A guest taking over maps the running partition's region as a second
	// device, at the address its command line names.
	c.TakeFromPath, c.TakeFromSize = "/dev/shm/old", 2<<20
	args, _ = c.Args()
	line = strings.Join(args, " ")
	for _, want := range []string{"-accel kvm", "-cpu host", "vfio-pci,host=0000:03:00.0",
		"ivshmem-plain,memdev=mkrtshm,addr=0x10", "memory-backend-file,id=mkrttake,share=on,mem-path=/dev/shm/old,size=2097152",
		"ivshmem-plain,memdev=mkrttake,addr=0x11"} {
		if !strings.Contains(line, want) {
			t.Errorf("args lack %q:\n%s", want, line)
		}
	}
	for _, bad := range []Config{
		{Kernel: "/k"},
		{Kernel: "/k", Initrd: "/i", ShmPath: "/x", ShmSize: 3 << 20},
		{Kernel: "/k", Initrd: "/i", ShmPath: "/x", ShmSize: 4 << 20, TakeFromPath: "/y", TakeFromSize: 5 << 20},
		{Kernel: "/k", Initrd: "/i", Accel: "hvf"},
		{Kernel: "/k", Initrd: "/i", NIC: NIC{Kind: "tap"}},
		{Kernel: "/k", Initrd: "/i", NIC: NIC{Kind: "bridge"}},
	} {
		if _, err := bad.Args(); err == nil {
			t.Errorf("%+v: want an error", bad)
		}
	}
}

// fakeQEMU writes a stand-in for qemu-system-x86_64 that prints a serial
// console with CRLF line ends and runs until killed, creating no QMP socket.
func fakeQEMU(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qemu")
	script := "#!/bin/sh\nprintf 'SeaBIOS\\r\\nLinux version 6.1.0-rt\\r\\n'\nexec sleep 60\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestLifecycleWithoutQEMU runs the bring-up against a stand-in QEMU that
// never opens QMP: the partition answers Info while the start dials QMP,
// the failed dial is a degradation, the serial console lands in the ring,
// and the stop kills the stand-in when its context ends and undoes every
// step.
func TestLifecycleWithoutQEMU(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no /bin/sh for the stand-in QEMU")
	}
	v := New(Options{Name: "fake", RunDir: t.TempDir(), HostCPUs: []int{0, 1},
		QEMU: Config{QEMU: fakeQEMU(t), Kernel: "/k", Initrd: "/i", Accel: "tcg"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sctx, scancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer scancel()
	started := make(chan error, 1)
	go func() { started <- v.Start(sctx) }()
	// The start is dialling QMP now (for up to 1.5s): Info must not wait for it.
	deadline := time.Now().Add(5 * time.Second)
	for v.Info().PID == 0 {
		if time.Now().After(deadline) {
			t.Fatal("QEMU stand-in not started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	infoAt := time.Now()
	info := v.Info()
	if took := time.Since(infoAt); took > 100*time.Millisecond {
		t.Errorf("Info took %v during the QMP dial", took)
	}
	if info.CPUs != "0-1" {
		t.Errorf("info CPUs %q, want the cpulist 0-1", info.CPUs)
	}
	if err := <-started; err != nil {
		t.Fatalf("start: %v", err)
	}
	info = v.Info()
	if len(info.Degradations) != 2 || !strings.HasPrefix(info.Degradations[0], "accel: tcg") || !strings.HasPrefix(info.Degradations[1], "vcpu pinning: ") {
		t.Errorf("degradations %q, want tcg and vcpu pinning", info.Degradations)
	}
	if err := v.Start(ctx); !errors.Is(err, supervisor.ErrStarted) {
		t.Errorf("second start: %v, want ErrStarted", err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for len(v.Console()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := v.Console(); !reflect.DeepEqual(got, []string{"SeaBIOS", "Linux version 6.1.0-rt"}) {
		t.Errorf("console %q", got)
	}
	stopCtx, stopCancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer stopCancel()
	if err := v.Stop(stopCtx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	e, err := v.Wait(ctx)
	if err != nil || e.Signal != "killed" {
		t.Errorf("exit %v, %v; want killed", e, err)
	}
	var ran []string
	for _, r := range v.Records() {
		ran = append(ran, r.Action+" "+r.Name)
	}
	if want := []string{"do tap", "do qemu", "do pin-vcpus", "undo qemu", "undo tap"}; !reflect.DeepEqual(ran, want) {
		t.Errorf("ran %q, want %q", ran, want)
	}
	if err := v.Kill(); err != nil {
		t.Errorf("kill after the end: %v", err)
	}
}

// buildImage builds mkrt-init and an initramfs for kernel.
func buildImage(t *testing.T, kernel, cmdline string, config []byte) (initrd string, m *image.Manifest) {
	t.Helper()
	dir := t.TempDir()
	init := vmtest.Init(t)
	b, m, err := image.Build(image.Options{Init: init, Config: config, Kernel: kernel, Cmdline: cmdline})
	if err != nil {
		t.Fatal(err)
	}
	initrd = filepath.Join(dir, "initramfs.cpio.gz")
	if err := os.WriteFile(initrd, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return initrd, m
}

// TestProbeBootUnderTCG boots Debian's PREEMPT_RT kernel with the mkrt
// initramfs in probe mode and reads the guest's report through ivshmem.
func TestProbeBootUnderTCG(t *testing.T) {
	kernel := vmtest.Kernel(t)
	cmdline := image.Cmdline(image.CmdlineOptions{RTCPUs: []int{1}, Housekeeping: []int{0}, MaxCState: -1, Extra: "mkrt.mode=probe"})
	initrd, m := buildImage(t, kernel, cmdline, []byte("metadata: {name: probe}\n"))
	t.Logf("initramfs: %d bytes compressed, %d uncompressed, modules %v", m.Initramfs.Size, m.Uncompressed, m.Modules)
	if m.Initramfs.Size > 10<<20 {
		t.Errorf("initramfs is %d bytes, over the 10 MiB budget", m.Initramfs.Size)
	}

	shm := filepath.Join("/dev/shm", "mkrt-test-"+strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.WriteFile(shm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(shm)
	if err := os.Truncate(shm, 1<<20); err != nil {
		t.Fatal(err)
	}
	v := New(Options{Name: "probe", RunDir: t.TempDir(), QEMU: Config{Kernel: kernel, Initrd: initrd, Cmdline: cmdline, Accel: "tcg", ShmPath: shm, ShmSize: 1 << 20}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	start := time.Now()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	exit, err := v.Wait(ctx)
	if err != nil {
		_ = v.Kill()
		t.Fatalf("guest did not power off: %v\nconsole:\n%s", err, strings.Join(v.Console(), "\n"))
	}
	t.Logf("boot to power-off under TCG: %s", time.Since(start))
	console := strings.Join(v.Console(), "\n")
	if exit.Code != 0 {
		t.Errorf("qemu exit %v, want 0 (guest powered off)\n%s", exit, console)
	}
	got, _ := os.ReadFile(shm)
	report := string(got[:strings.IndexByte(string(got), 0)])
	t.Logf("guest report through ivshmem: %q", report)
	if !strings.HasPrefix(report, "MKRT-PROBE ") || !strings.Contains(report, "realtime=true") || !strings.Contains(report, "cpus=2") {
		t.Errorf("shared region holds %q, want a probe report with realtime=true and cpus=2\nconsole:\n%s", report, console)
	}
	if !strings.Contains(console, "MKRT-PROBE") {
		t.Errorf("serial console lacks the probe report:\n%s", console)
	}
	if err := v.Stop(ctx); err != nil {
		t.Error(err)
	}
}
