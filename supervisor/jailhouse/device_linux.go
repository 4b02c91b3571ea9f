package jailhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// OpenDevice opens /dev/jailhouse (path "" means DevicePath).
func OpenDevice(path string) (Device, error) {
	if path == "" {
		path = DevicePath
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%w: open %s: %w", ErrNoDriver, path, err)
		}
		return nil, fmt.Errorf("jailhouse: open %s: %w", path, err)
	}
	return &device{fd: fd, path: path}, nil
}

type device struct {
	fd   int
	path string
}

// Ioctl fills the argument's address fields with the buffers' addresses and
// issues the ioctl; the buffers stay reachable until it returns (Go's heap
// does not move objects).
func (d *device) Ioctl(r Request) error {
	for _, p := range r.Pointers {
		if p.Offset < 0 || p.Offset+8 > len(r.Arg) {
			return fmt.Errorf("jailhouse: %s: pointer at %d outside a %d-byte argument", IoctlName(r.Cmd), p.Offset, len(r.Arg))
		}
		var a uintptr
		if len(p.Buf) > 0 {
			a = uintptr(unsafe.Pointer(&p.Buf[0]))
		}
		binary.LittleEndian.PutUint64(r.Arg[p.Offset:], uint64(a))
	}
	var arg uintptr
	if len(r.Arg) > 0 {
		arg = uintptr(unsafe.Pointer(&r.Arg[0]))
	}
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), uintptr(r.Cmd), arg)
	runtime.KeepAlive(r.Arg)
	for _, p := range r.Pointers {
		runtime.KeepAlive(p.Buf)
	}
	if errno != 0 {
		return &IoctlError{Cmd: r.Cmd, Path: d.path, Errno: errno}
	}
	return nil
}

func (d *device) Close() error {
	if err := unix.Close(d.fd); err != nil {
		return fmt.Errorf("jailhouse: close %s: %w", d.path, err)
	}
	return nil
}
