package kexec

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Linux makes the real system calls.
type Linux struct{}

var _ Syscalls = Linux{}

// Mount is mount(2).
func (Linux) Mount(source, target, fstype string, flags uintptr, data string) error {
	return unix.Mount(source, target, fstype, flags, data)
}

// Unmount is umount2(2).
func (Linux) Unmount(target string, flags int) error { return unix.Unmount(target, flags) }

// KexecFileLoad is kexec_file_load(2) (x86-64 nr 320, arm64 294).
func (Linux) KexecFileLoad(kernelFD, initrdFD int, cmdlineLen uintptr, cmdline *byte, flags uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_KEXEC_FILE_LOAD, uintptr(kernelFD), uintptr(initrdFD), cmdlineLen, uintptr(unsafe.Pointer(cmdline)), flags, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Reboot is reboot(2) with an argument (x86-64 nr 169, arm64 142).
func (Linux) Reboot(magic1, magic2, cmd uint32, arg unsafe.Pointer) error {
	_, _, e := unix.Syscall6(unix.SYS_REBOOT, uintptr(magic1), uintptr(magic2), uintptr(cmd), uintptr(arg), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
