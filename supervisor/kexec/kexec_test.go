package kexec_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/mkrt/mkrt/supervisor/kexec"
	"github.com/mkrt/mkrt/supervisor/kexec/kexectest"
)

func TestMKID(t *testing.T) {
	for id, want := range map[int]uintptr{1: 0x20, 7: 0xe0, 256: 0x2000, 511: 0x3fe0, 512: 0x4000, 2048: 0} {
		if got := kexec.MKID(id); got != want {
			t.Errorf("MKID(%d) = %#x, want %#x", id, got, want)
		}
	}
	if kexec.IDOf(kexec.Multikernel|kexec.MKID(300)|kexec.FileNoInitramfs) != 300 {
		t.Error("IDOf does not invert MKID")
	}
}

func openELF(t *testing.T) *os.File {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vmlinux")
	if err := os.WriteFile(p, fakeELF(), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestLoadLayout checks kexec_file_load's arguments byte for byte.
func TestLoadLayout(t *testing.T) {
	var r kexectest.Recorder
	k := openELF(t)
	if err := kexec.Load(&r, k, nil, "console=mktty mkrt.shm=phys:0x8fc00000,0x400000", kexec.Multikernel|kexec.MKID(7)); err != nil {
		t.Fatal(err)
	}
	initrd := openELF(t)
	if err := kexec.Load(&r, k, initrd, "", 0); err != nil {
		t.Fatal(err)
	}
	if err := kexec.Unload(&r, kexec.Multikernel|kexec.MKID(7)); err != nil {
		t.Fatal(err)
	}
	if v := r.Violations(); len(v) > 0 {
		t.Fatalf("layout violations: %v", v)
	}
	c := r.Calls()
	if len(c) != 3 {
		t.Fatalf("calls %v", c)
	}
	want := []byte("console=mktty mkrt.shm=phys:0x8fc00000,0x400000\x00")
	if c[0].Flags != 0xf4 || c[0].CmdlineLen != uintptr(len(want)) || !bytes.Equal(c[0].Cmdline, want) {
		t.Errorf("load: flags %#x (want 0xf4 = NO_INITRAMFS|MULTIKERNEL|MK_ID(7)), len %d, cmdline %q", c[0].Flags, c[0].CmdlineLen, c[0].Cmdline)
	}
	if c[0].KernelFD != int(k.Fd()) || c[0].InitrdFD != -1 || !bytes.HasPrefix(c[0].KernelHead, []byte("\x7fELF")) {
		t.Errorf("load: fds %d %d, kernel head % x", c[0].KernelFD, c[0].InitrdFD, c[0].KernelHead[:4])
	}
	if c[1].Flags != 0 || c[1].InitrdFD != int(initrd.Fd()) || c[1].CmdlineLen != 1 || !bytes.Equal(c[1].Cmdline, []byte{0}) {
		t.Errorf("plain load with initrd: %v", c[1])
	}
	if c[2].Flags != 0xf1 || c[2].KernelFD != -1 || c[2].InitrdFD != -1 || c[2].CmdlineLen != 0 || c[2].Cmdline != nil {
		t.Errorf("unload: %v, want flags 0xf1 and no image", c[2])
	}
}

// TestRebootLayout checks reboot's magic numbers, command and the bytes
// of struct { int32 id }.
func TestRebootLayout(t *testing.T) {
	var r kexectest.Recorder
	for _, cmd := range []uint32{kexec.CmdStart, kexec.CmdHalt, kexec.CmdForceHalt} {
		if err := kexec.Reboot(&r, cmd, 258); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range r.Calls() {
		if c.Magic1 != 0xfee1dead || c.Magic2 != 0x28121969 {
			t.Errorf("magic %#x %#x", c.Magic1, c.Magic2)
		}
		if want := []byte{0x02, 0x01, 0, 0}; !bytes.Equal(c.Arg, want) || c.ID() != 258 {
			t.Errorf("arg % x, want % x", c.Arg, want)
		}
		if want := []uint32{0x4d4b4c49, 0x4d4b4c48, 0x4d4b4c46}[i]; c.Cmd != want {
			t.Errorf("cmd %#x, want %#x", c.Cmd, want)
		}
	}
	if unsafe.Sizeof(kexec.Instance{}) != 4 {
		t.Errorf("the reboot argument is %d bytes, want 4", unsafe.Sizeof(kexec.Instance{}))
	}
}

func TestRecorderRefusesBadLayouts(t *testing.T) {
	var r kexectest.Recorder
	k := openELF(t)
	noNUL := []byte("console=ttyS0")
	bad := []func() error{
		func() error {
			return r.KexecFileLoad(int(k.Fd()), -1, uintptr(len(noNUL)), &noNUL[0], kexec.FileNoInitramfs)
		},
		func() error { return r.KexecFileLoad(int(k.Fd()), -1, 0, nil, kexec.Multikernel) },             // id 0 is the host
		func() error { return r.KexecFileLoad(int(k.Fd()), -1, 0, nil, kexec.MKID(3)) },                 // id without MULTIKERNEL
		func() error { return r.KexecFileLoad(int(k.Fd()), -1, 0, nil, 0) },                             // no initrd, flag missing
		func() error { return r.KexecFileLoad(int(k.Fd()), -1, 0, nil, 0x10000|kexec.FileNoInitramfs) }, // unknown bit
		func() error { return r.Reboot(0xfee1dead, 0x12345678, kexec.CmdStart, nil) },
		func() error { return r.Reboot(0xfee1dead, kexec.Magic2, kexec.CmdHalt, nil) },
	}
	for i, f := range bad {
		if err := f(); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("bad call %d: err = %v, want EINVAL", i, err)
		}
	}
	if len(r.Violations()) != len(bad) {
		t.Errorf("violations %v", r.Violations())
	}
}

func TestErrorsCarrySyscallPathErrno(t *testing.T) {
	r := kexectest.Recorder{Unprivileged: true}
	k := openELF(t)
	err := kexec.Load(&r, k, nil, "", kexec.Multikernel|kexec.MKID(1))
	var ke *kexec.Error
	if !errors.As(err, &ke) || ke.Syscall != "kexec_file_load" || ke.Path != k.Name() || !errors.Is(err, syscall.EPERM) {
		t.Errorf("err = %#v", err)
	}
	if kexec.Errno(err) != syscall.EPERM || !strings.Contains(err.Error(), "kexec: kexec_file_load") {
		t.Errorf("errno %v, message %q", kexec.Errno(err), err)
	}
	if err := kexec.Reboot(&r, kexec.CmdStart, 3); !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "instance 3") {
		t.Errorf("reboot: %v", err)
	}
}
