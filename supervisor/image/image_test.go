package image

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/u-root/u-root/pkg/cpio"
)

const depFixture = `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/ethernet/intel/igb/igb.ko: kernel/drivers/dca/dca.ko kernel/drivers/i2c/algos/i2c-algo-bit.ko
kernel/drivers/dca/dca.ko:
kernel/drivers/i2c/algos/i2c-algo-bit.ko:
`

func TestResolveOrdersDependenciesFirst(t *testing.T) {
	deps, err := ParseModulesDep(strings.NewReader(depFixture))
	if err != nil {
		t.Fatal(err)
	}
	order, missing := deps.Resolve([]string{"virtio_net", "virtio-pci", "igb", "e1000e"})
	if !reflect.DeepEqual(missing, []string{"e1000e"}) {
		t.Errorf("missing = %v, want [e1000e]", missing)
	}
	pos := map[string]int{}
	for i, p := range order {
		if _, dup := pos[ModuleName(p)]; dup {
			t.Fatalf("%s listed twice in %v", p, order)
		}
		pos[ModuleName(p)] = i
	}
	for mod, before := range map[string][]string{
		"virtio_net":   {"net_failover", "failover", "virtio", "virtio_ring"},
		"net_failover": {"failover"},
		"virtio_pci":   {"virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio", "virtio_ring"},
		"igb":          {"dca", "i2c_algo_bit"},
	} {
		for _, d := range before {
			if pos[d] >= pos[mod] {
				t.Errorf("%s (at %d) must load before %s (at %d): %v", d, pos[d], mod, pos[mod], order)
			}
		}
	}
	if len(order) != 11 {
		t.Errorf("got %d modules, want 11: %v", len(order), order)
	}
}

func TestParseModulesDepRejectsGarbage(t *testing.T) {
	if _, err := ParseModulesDep(strings.NewReader("no colon here\n")); err == nil {
		t.Fatal("want an error for a line without ':'")
	}
}

func TestCmdlineIsolatesRTCPUs(t *testing.T) {
	got := Cmdline(CmdlineOptions{RTCPUs: []int{2, 3}, Housekeeping: []int{0, 1}, Idle: "poll", MaxCState: 1, Mitigations: "off", Shm: "ivshmem", Extra: "foo=bar"})
	for _, want := range []string{"console=ttyS0,115200", "isolcpus=nohz,domain,managed_irq,2-3", "nohz_full=2-3", "rcu_nocbs=2-3", "irqaffinity=0-1", "idle=poll", "intel_idle.max_cstate=1", "processor.max_cstate=1", "mitigations=off", "panic=-1", "mkrt.shm=ivshmem", "foo=bar"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("cmdline %q lacks %q", got, want)
		}
	}
	if strings.Contains(Cmdline(CmdlineOptions{MaxCState: -1}), "max_cstate") {
		t.Error("MaxCState -1 must leave C-states alone")
	}
}

func fakeELF(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "init")
	if err := os.WriteFile(p, append([]byte("\x7fELF"), bytes.Repeat([]byte{1}, 1000)...), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBuildIsReproducibleAndComplete(t *testing.T) {
	init := fakeELF(t)
	o := Options{Init: init, Config: []byte("metadata: {name: x}\n"), Cmdline: "console=ttyS0", Extra: map[string][]byte{"etc/mkrt/board.yaml": []byte("name: b\n")}}
	a, m, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(init, time0, time0); err != nil { // a different mtime must not matter
		t.Fatal(err)
	}
	b, _, err := Build(o)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two builds from the same inputs differ")
	}
	names := map[string]cpio.Record{}
	for _, r := range archiveRecords(t, a) {
		if r.MTime != 0 || r.UID != 0 || r.GID != 0 {
			t.Errorf("%s: mtime %d uid %d gid %d, want zeros", r.Name, r.MTime, r.UID, r.GID)
		}
		names[r.Name] = r
	}
	for _, want := range []string{"init", "etc/mkrt/config.yaml", "etc/mkrt/board.yaml", "dev/console", "proc", "sys"} {
		if _, ok := names[want]; !ok {
			t.Errorf("archive lacks %s", want)
		}
	}
	if names["init"].Mode&0o111 == 0 {
		t.Error("init is not executable")
	}
	if m.Initramfs.Size != int64(len(a)) || len(m.Files) != 3 {
		t.Errorf("manifest: size %d (archive %d), %d files", m.Initramfs.Size, len(a), len(m.Files))
	}
}

func TestBuildRejectsNonELFInit(t *testing.T) {
	p := filepath.Join(t.TempDir(), "init")
	os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755)
	if _, _, err := Build(Options{Init: p}); err == nil || !strings.Contains(err.Error(), "not an ELF") {
		t.Fatalf("err = %v, want 'not an ELF'", err)
	}
}

func TestKernelReleaseFromBzImage(t *testing.T) {
	img := make([]byte, 0x1000)
	copy(img[0x202:], "HdrS")
	img[0x20E] = 0x00
	img[0x20F] = 0x02 // version string at 0x200 + 0x200
	copy(img[0x400:], "6.1.0-56-rt-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_RT\x00")
	p := filepath.Join(t.TempDir(), "vmlinuz")
	os.WriteFile(p, img, 0o644)
	rel, err := KernelRelease(p)
	if err != nil || rel != "6.1.0-56-rt-amd64" {
		t.Fatalf("KernelRelease = %q, %v", rel, err)
	}
	os.WriteFile(p, make([]byte, 0x1000), 0o644)
	if _, err := KernelRelease(p); err == nil {
		t.Fatal("want ErrNotBzImage for a file without HdrS")
	}
}

var time0 = time.Unix(1e9, 0)

func TestKernelReleaseOfInstalledRTKernel(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
	if len(ks) == 0 {
		t.Skip("no PREEMPT_RT kernel in /boot (apt-get install linux-image-rt-amd64)")
	}
	rel, err := KernelRelease(ks[0])
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimPrefix(filepath.Base(ks[0]), "vmlinuz-"); rel != want {
		t.Errorf("release %q, want %q (from the file name)", rel, want)
	}
}

// Debian's PREEMPT_RT kernel ships the i6300esb watchdog driver as a
// module: the default modules resolve it with the watchdog core before it.
func TestDefaultModulesHaveTheGuestWatchdog(t *testing.T) {
	ks, _ := filepath.Glob("/boot/vmlinuz-*-rt-*")
	if len(ks) == 0 {
		t.Skip("no PREEMPT_RT kernel in /boot (apt-get install linux-image-rt-amd64)")
	}
	rel, err := KernelRelease(ks[len(ks)-1])
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("/lib/modules", rel, "modules.dep"))
	if err != nil {
		t.Skipf("no modules for %s: %v", rel, err)
	}
	defer f.Close()
	deps, err := ParseModulesDep(f)
	if err != nil {
		t.Fatal(err)
	}
	order, missing := deps.Resolve(DefaultModules)
	at := map[string]int{}
	for i, p := range order {
		at[ModuleName(p)] = i
	}
	esb, ok := at["i6300esb"]
	if !ok {
		t.Fatalf("%s: i6300esb not resolved as a module (missing %v); the vm backend's guest watchdog needs it", rel, missing)
	}
	if core, ok := at["watchdog"]; !ok || core > esb {
		t.Errorf("%s: the watchdog core (at %d, %v) must load before i6300esb (at %d): %v", rel, core, ok, esb, order)
	}
}
