package jailhouse_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mkrt/mkrt/supervisor/jailhouse"
)

func TestOpenDeviceMissing(t *testing.T) {
	_, err := jailhouse.OpenDevice(filepath.Join(t.TempDir(), "jailhouse"))
	if !errors.Is(err, jailhouse.ErrNoDriver) {
		t.Fatalf("err %v", err)
	}
}

// TestRealIoctlPath issues a request through the real device code on an
// ordinary file: the kernel answers ENOTTY, after the address fields were
// filled in with the buffers' addresses.
func TestRealIoctlPath(t *testing.T) {
	f := filepath.Join(t.TempDir(), "not-a-device")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := jailhouse.OpenDevice(f)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := jailhouse.CellCreate(make([]byte, 100))
	err = d.Ioctl(r)
	var ie *jailhouse.IoctlError
	if !errors.As(err, &ie) || ie.Errno != syscall.ENOTTY || ie.Path != f || ie.Cmd != jailhouse.IoctlCellCreate {
		t.Fatalf("err %v", err)
	}
	if binary.LittleEndian.Uint64(r.Arg) == 0 || binary.LittleEndian.Uint32(r.Arg[8:]) != 100 {
		t.Errorf("argument % x: address not filled in", r.Arg)
	}
	bad := jailhouse.Request{Cmd: jailhouse.IoctlCellCreate, Arg: make([]byte, 4), Pointers: []jailhouse.Pointer{{Offset: 0, Buf: []byte{1}}}}
	if err := d.Ioctl(bad); err == nil {
		t.Error("pointer outside the argument accepted")
	}
}

// TestRealDriver talks to a loaded Jailhouse driver without changing
// anything: destroying a cell that does not exist must fail.
func TestRealDriver(t *testing.T) {
	if _, err := os.Stat(jailhouse.DevicePath); err != nil {
		t.Skipf("no %s (jailhouse.ko %s not loaded): %v", jailhouse.DevicePath, jailhouse.Release, err)
	}
	if os.Geteuid() != 0 {
		t.Skip("opening /dev/jailhouse needs root")
	}
	d, err := jailhouse.OpenDevice("")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ioctl(jailhouse.CellDestroy("mkrt-test-no-such-cell")); err == nil {
		t.Fatal("destroying a cell that does not exist succeeded")
	}
}
