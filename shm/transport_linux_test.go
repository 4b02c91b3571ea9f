package shm_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mkrt/mkrt/shm"
	"github.com/mkrt/mkrt/shm/shmtest"
)

// attachBoth formats a region through one mapping and reads it through
// another, proving the two mappings share memory.
func attachBoth(t *testing.T, wr, rr *shm.Region, l *shm.Layout) {
	t.Helper()
	w, err := shm.AttachWriter(context.Background(), wr, l, shm.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := shm.AttachReader(rr, l, shm.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Beat(99, 1)
	if hb := r.Heartbeat(); hb.Cycle != 99 || hb.BootID != w.BootID() {
		t.Fatalf("second mapping does not see the first: %+v", hb)
	}
}

func TestFileTransport(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(10, 1, 1))
	path := filepath.Join(t.TempDir(), "mkrt-test")
	old := syscall.Umask(0)
	host, err := shm.Open(shm.File(path, l.Size(), true))
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Size() != l.Size() {
		t.Errorf("file mode %v size %d, want 0600 and %d", st.Mode().Perm(), st.Size(), l.Size())
	}
	guest, err := shm.Open(shm.File(path, 0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	attachBoth(t, guest, host, l)
	// Re-creating keeps an existing region (a restarted supervisor must not
	// wipe a running executive's).
	again, err := shm.Open(shm.File(path, l.Size(), true))
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if _, err := shm.AttachReader(again, l, shm.ReaderOptions{}); err != nil {
		t.Errorf("region lost on re-create: %v", err)
	}
	if _, err := shm.Open(shm.File(filepath.Join(t.TempDir(), "missing"), 0, false)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	var se *shm.SyscallError
	dir := t.TempDir()
	if _, err := shm.Open(shm.File(dir, 0, false)); !errors.As(err, &se) || se.Path != dir || se.Syscall != "open" || !errors.Is(err, syscall.EISDIR) {
		t.Errorf("a directory: %v", err)
	}
}

func TestPCITransport(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(10, 1, 1))
	dev := shmtest.PCIDevice(t, t.TempDir(), 1<<20) // a BAR is a power of two, bigger than the layout
	loc := shm.Location{Kind: shm.KindPCI, Path: dev, BAR: 2}
	guest, err := shm.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer guest.Close()
	if b, _ := os.ReadFile(filepath.Join(dev, "enable")); string(b) != "1" {
		t.Errorf("enable = %q, want 1", b)
	}
	if guest.Len() != 1<<20 {
		t.Errorf("BAR mapped %d bytes", guest.Len())
	}
	host, err := shm.Open(shm.File(filepath.Join(dev, "resource2"), 0, false))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	attachBoth(t, guest, host, l)
	if _, err := shm.Open(shm.Location{Kind: shm.KindPCI, Path: filepath.Join(t.TempDir(), "nodev"), BAR: 2}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing device: %v", err)
	}
}

// TestPhysTransport maps "physical memory" through an ordinary file standing
// in for /dev/mem, at an unaligned-to-page address.
func TestPhysTransport(t *testing.T) {
	l := shmtest.Layout(t, shmtest.Params(10, 1, 1))
	devmem := filepath.Join(t.TempDir(), "mem")
	const addr = 3*4096 + 512
	f, err := os.Create(devmem)
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(addr + l.Size())
	f.Close()
	loc := shm.Location{Kind: shm.KindPhys, Path: devmem, Addr: addr, Size: l.Size()}
	a, err := shm.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := shm.Open(loc)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	attachBoth(t, a, b, l)
	// The region really starts at addr in the "physical memory".
	raw, _ := os.ReadFile(devmem)
	if string(raw[addr:addr+8]) != "mkrt-shm" {
		t.Errorf("magic not at the address: %q", raw[addr:addr+8])
	}
	loc.Size = 1 << 30
	if _, err := shm.Open(loc); !errors.Is(err, shm.ErrSize) {
		t.Errorf("range beyond the stand-in file: %v", err)
	}
}

func TestParseLocation(t *testing.T) {
	for in, want := range map[string]shm.Location{
		"/dev/shm/mkrt-a":            {Kind: shm.KindFile, Path: "/dev/shm/mkrt-a"},
		"file:/dev/shm/b":            {Kind: shm.KindFile, Path: "/dev/shm/b"},
		"pci:0000:00:04.0":           {Kind: shm.KindPCI, Path: "/sys/bus/pci/devices/0000:00:04.0", BAR: 2},
		"pci:0000:00:04.0/resource0": {Kind: shm.KindPCI, Path: "/sys/bus/pci/devices/0000:00:04.0", BAR: 0},
		"mem:0x3f000000+4Mi":         {Kind: shm.KindPhys, Path: "/dev/mem", Addr: 0x3f000000, Size: 4 << 20},
	} {
		got, err := shm.ParseLocation(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v, want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "file:", "pci:04.0", "pci:0000:00:04.0/resource9", "mem:0x10", "mem:zz+4Mi", "mem:0x10+0", "nfs:/x"} {
		if _, err := shm.ParseLocation(in); !errors.Is(err, shm.ErrInvalid) {
			t.Errorf("%q: %v", in, err)
		}
	}
}
