//go:build !linux

package kexec

import "unsafe"

// Linux is the system-call implementation; elsewhere every call fails.
type Linux struct{}

var _ Syscalls = Linux{}

// Mount returns ErrUnsupported.
func (Linux) Mount(string, string, string, uintptr, string) error { return ErrUnsupported }

// Unmount returns ErrUnsupported.
func (Linux) Unmount(string, int) error { return ErrUnsupported }

// KexecFileLoad returns ErrUnsupported.
func (Linux) KexecFileLoad(int, int, uintptr, *byte, uintptr) error { return ErrUnsupported }

// Reboot returns ErrUnsupported.
func (Linux) Reboot(uint32, uint32, uint32, unsafe.Pointer) error { return ErrUnsupported }
