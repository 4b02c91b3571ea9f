package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mkrt/mkrt/supervisor/image"
)

func TestArgs(t *testing.T) {
	c := Config{Kernel: "/k", Initrd: "/i", Cmdline: "console=ttyS0", ShmPath: "/dev/shm/a,b", ShmSize: 4 << 20,
		NIC: NIC{Kind: "tap", Tap: "mkrt0", MAC: "52:54:00:00:00:01"}, Accel: "tcg", QMP: "/run/q.sock"}
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

func TestRing(t *testing.T) {
	r := newRing(3)
	for _, s := range []string{"a", "b", "c", "d"} {
		r.add(s)
	}
	if got := r.lines(); !reflect.DeepEqual(got, []string{"b", "c", "d"}) {
		t.Fatalf("lines = %v", got)
	}
}

// rtKernel finds Debian's PREEMPT_RT kernel or skips.
func rtKernel(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
	if len(ks) == 0 {
		t.Skip("no PREEMPT_RT kernel in /boot (apt-get install linux-image-rt-amd64)")
	}
	return ks[len(ks)-1]
}

// buildImage builds mkrt-init and an initramfs for kernel.
func buildImage(t *testing.T, kernel, cmdline string, config []byte) (initrd string, m *image.Manifest) {
	t.Helper()
	dir := t.TempDir()
	init := filepath.Join(dir, "mkrt-init")
	cmd := exec.Command("go", "build", "-o", init, "github.com/mkrt/mkrt/cmd/mkrt-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building mkrt-init: %v\n%s", err, out)
	}
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
	kernel := rtKernel(t)
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
