// Package kexec is the seam through which the kexec-family partition
// backends (supervisor/multikernel, supervisor/parker) reach the kernel:
// mount(2), umount(2), kexec_file_load(2) and reboot(2) with an argument,
// behind the Syscalls interface, plus the helpers that lay the arguments out
// as the kernel reads them (the command line NUL-terminated with its length
// counting the NUL; the reboot argument a struct { int32 id }), and the
// extraction of the ELF vmlinux from an x86 bzImage.
//
// Secondary is what the two backends share of a secondary kernel's life:
// the kernel-support check, the shared kernfs mount, the shared region
// mapped through /dev/mem, the load and unload of the image, the start and
// its wait, the halt (the executive first, then the kernel, then by force)
// and the wait for the kernel to stop, as supervisor.Steps each backend
// lists among its own. kexectest.Host is the matching part of their fakes.
//
// The multikernel flag values are those of the interface pinned in
// supervisor/multikernel (kerf 0.3.x, commit 210659e): KEXEC_MULTIKERNEL is
// 0x10 and the instance id sits in bits 5-15. Mainline kernels give the
// same bits other meanings (KEXEC_FILE_NO_CMA 0x10, KEXEC_FILE_FORCE_DTB
// 0x20): never mix the two vocabularies.
//
// Linux runs the real system calls (Linux); they need CAP_SYS_ADMIN
// (mount) and CAP_SYS_BOOT (kexec_file_load, reboot). kexectest.Recorder
// is the fake that checks every argument byte for byte. On other systems
// the calls return ErrUnsupported. Secondary also maps the shared region
// through /dev/mem (root; CONFIG_STRICT_DEVMEM lets reserved ranges
// through).
package kexec

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// kexec_file_load flags.
const (
	// FileUnload unloads the loaded image (KEXEC_FILE_UNLOAD).
	FileUnload = 0x1
	// FileOnCrash loads a crash kernel (KEXEC_FILE_ON_CRASH).
	FileOnCrash = 0x2
	// FileNoInitramfs loads no initramfs (KEXEC_FILE_NO_INITRAMFS).
	FileNoInitramfs = 0x4
	// Multikernel loads into a multikernel instance (KEXEC_MULTIKERNEL,
	// pinned multikernel interface only).
	Multikernel = 0x10
	// MKIDMask covers the instance id bits of the flags.
	MKIDMask = 0xffe0
)

// MKID returns the flag bits naming multikernel instance id
// (KEXEC_MK_ID(id) = (id << 5) & 0xFFE0).
func MKID(id int) uintptr { return uintptr(id<<5) & MKIDMask }

// IDOf returns the instance id in kexec_file_load flags.
func IDOf(flags uintptr) int { return int(flags&MKIDMask) >> 5 }

// reboot(2) magic numbers and the multikernel commands.
const (
	Magic1 = 0xfee1dead
	Magic2 = 0x28121969
	// CmdStart starts a loaded instance ("MKLI").
	CmdStart = 0x4d4b4c49
	// CmdHalt halts an active instance ("MKLH").
	CmdHalt = 0x4d4b4c48
	// CmdForceHalt halts a loaded or active instance at once ("MKLF").
	CmdForceHalt = 0x4d4b4c46
)

// Syscalls is the kernel seam. Arguments are passed as the kernel takes
// them: pointers stay pointers so a fake can read the bytes behind them.
type Syscalls interface {
	// Mount is mount(2).
	Mount(source, target, fstype string, flags uintptr, data string) error
	// Unmount is umount2(2).
	Unmount(target string, flags int) error
	// KexecFileLoad is kexec_file_load(2): fds (-1 for none), the length
	// of the command line including its NUL, the command line, flags.
	KexecFileLoad(kernelFD, initrdFD int, cmdlineLen uintptr, cmdline *byte, flags uintptr) error
	// Reboot is reboot(2) with an argument.
	Reboot(magic1, magic2, cmd uint32, arg unsafe.Pointer) error
}

// ErrUnsupported is a system without these system calls.
var ErrUnsupported = errors.New("kexec: not supported on this system")

// Error is a failed system call with its inputs and errno.
type Error struct {
	Syscall string
	// Path names what the call was about (a kernel image, a mount point,
	// "instance 7").
	Path string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("kexec: %s %s: %v", e.Syscall, e.Path, e.Err) }

// Unwrap returns the errno.
func (e *Error) Unwrap() error { return e.Err }

// Errno returns the error's errno, 0 when it has none.
func Errno(err error) syscall.Errno {
	var en syscall.Errno
	if errors.As(err, &en) {
		return en
	}
	return 0
}

// Load calls kexec_file_load with kernel (an ELF vmlinux for multikernel),
// initrd (nil: none, and FileNoInitramfs is added) and cmdline.
func Load(sys Syscalls, kernel, initrd *os.File, cmdline string, flags uintptr) error {
	if kernel == nil {
		return errors.New("kexec: no kernel image")
	}
	ifd := -1
	if initrd != nil {
		ifd = int(initrd.Fd())
	} else {
		flags |= FileNoInitramfs
	}
	// The kernel reads cmdline_len bytes and requires the last to be NUL.
	buf := append([]byte(cmdline), 0)
	err := sys.KexecFileLoad(int(kernel.Fd()), ifd, uintptr(len(buf)), &buf[0], flags)
	runtime.KeepAlive(kernel)
	runtime.KeepAlive(initrd)
	if err != nil {
		return &Error{Syscall: "kexec_file_load", Path: kernel.Name(), Err: err}
	}
	return nil
}

// Unload unloads the image flags name (FileUnload is added).
func Unload(sys Syscalls, flags uintptr) error {
	if err := sys.KexecFileLoad(-1, -1, 0, nil, flags|FileUnload); err != nil {
		return &Error{Syscall: "kexec_file_load", Path: fmt.Sprintf("unload (flags %#x)", flags|FileUnload), Err: err}
	}
	return nil
}

// Instance is the reboot(2) argument of the multikernel commands.
type Instance struct{ ID int32 }

// Reboot sends a multikernel command (CmdStart, CmdHalt, CmdForceHalt)
// for instance id.
func Reboot(sys Syscalls, cmd uint32, id int) error {
	arg := &Instance{ID: int32(id)}
	err := sys.Reboot(Magic1, Magic2, cmd, unsafe.Pointer(arg))
	runtime.KeepAlive(arg)
	if err != nil {
		return &Error{Syscall: "reboot", Path: fmt.Sprintf("cmd %#x instance %d", cmd, id), Err: err}
	}
	return nil
}

// Mount mounts fstype at target, wrapping the errno.
func Mount(sys Syscalls, fstype, target string) error {
	if err := sys.Mount("none", target, fstype, 0, ""); err != nil {
		return &Error{Syscall: "mount", Path: target + " (" + fstype + ")", Err: err}
	}
	return nil
}

// Unmount unmounts target, wrapping the errno.
func Unmount(sys Syscalls, target string) error {
	if err := sys.Unmount(target, 0); err != nil {
		return &Error{Syscall: "umount2", Path: target, Err: err}
	}
	return nil
}
